"""Write a small but complete GPT-2-style tokenizer (vocab.json + merges.txt) to DIR: the 256 byte
tokens of bytes_to_unicode plus the results of a few dozen merges learned from a fixed sentence list.
Used where ../shared/gpt2 is not needed: CLI plumbing, broken-vocab tests, the fuzzer's fallback.

usage: make_tiny_vocab.py DIR"""
import json
import os
import sys

from byte_alphabet import bytes_to_unicode


corpus = ("the cat sat on the mat and the dog's tail went in the water; it's 2024, we'll see "
          "Привет мир 你好世界 naïve café 😀😀 the the the there then").split(" ")
enc = bytes_to_unicode()
words = [[enc[b] for b in (" " + w).encode()] for w in corpus]
vocab = {enc[b]: i for i, b in enumerate(sorted(enc))}
merges = []
for _ in range(40):  # greedy BPE training: merge the most frequent adjacent pair
    counts = {}
    for w in words:
        for p in zip(w, w[1:]):
            counts[p] = counts.get(p, 0) + 1
    if not counts:
        break
    best = max(counts, key=lambda p: (counts[p], p))
    merges.append(best)
    vocab.setdefault(best[0] + best[1], len(vocab))
    for w in words:
        i = 0
        while i < len(w) - 1:
            if (w[i], w[i + 1]) == best:
                w[i:i + 2] = [best[0] + best[1]]
            i += 1
os.makedirs(sys.argv[1], exist_ok=True)
with open(os.path.join(sys.argv[1], "vocab.json"), "w", encoding="utf-8") as f:
    json.dump(vocab, f, ensure_ascii=False)
with open(os.path.join(sys.argv[1], "merges.txt"), "w", encoding="utf-8") as f:
    f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
