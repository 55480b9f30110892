"""Compare two id files line by line (one document per line) and show the documents that differ.

usage: compare_ids.py NAME_A IDS_A NAME_B IDS_B FILE.jsonl...
Exit 0 when every line is equal, 1 otherwise."""
import json
import sys

name_a, path_a, name_b, path_b, *corpora = sys.argv[1:]
texts = []
for path in corpora:
    with open(path, encoding="utf-8") as f:
        texts += [json.loads(line)["text"] for line in f if line.strip()]
with open(path_a) as f:
    a = f.read().splitlines()
with open(path_b) as f:
    b = f.read().splitlines()
if len(a) != len(texts) or len(b) != len(texts):
    print(f"FAIL: {len(texts)} documents, but {name_a} printed {len(a)} lines and {name_b} {len(b)}")
    sys.exit(1)
bad = [i for i in range(len(texts)) if a[i] != b[i]]
for i in bad[:10]:
    print(f"document {i + 1}: {texts[i][:200]!r}\n  {name_a}: {a[i][:300]}\n  {name_b}: {b[i][:300]}")
n_tokens = sum(len(line.split()) for line in a)
if bad:
    print(f"FAIL: {len(bad)} of {len(texts)} documents differ between {name_a} and {name_b}")
    sys.exit(1)
print(f"OK: {len(texts)} documents, {n_tokens} tokens, ids of {name_a} equal {name_b}")
