"""Reference for llama2.c's tokenizer.bin, written from the algorithm of llama2.c's run.c (encode and
decode), independent of plateau's code.

usage: llama2c_ref.py TOKENIZER_BIN MODE FILE.jsonl...
  MODE ids:    run.c's encode(text, bos=0, eos=0) of each document's "text", one line each
       special: encode(text, bos=1, eos=0)
       both:    "IDS<tab>HEX" a line: the ids, and the hex of the bytes run.c prints for those tokens
                generated after a BOS (decode(prev, token) for each, prev = 1 for the first; raw
                bytes for <0xXX> pieces)
Texts are taken as their UTF-8 bytes (run.c reads a C string)."""
import json
import re
import struct
import sys

path, mode, *corpora = sys.argv[1:]
data = open(path, "rb").read()
(max_token_length,) = struct.unpack_from("<i", data, 0)
pieces, scores = [], []
at = 4
while at < len(data):
    score, length = struct.unpack_from("<fi", data, at)
    pieces.append(data[at + 8 : at + 8 + length])
    scores.append(score)
    at += 8 + length
# run.c looks a string up by bsearch over the sorted vocabulary; a repeated piece is taken as its
# lowest id (plateau's documented choice; no real tokenizer.bin repeats a piece).
lookup = {}
for i, p in enumerate(pieces):
    lookup.setdefault(p, i)
# run.c compares float scores against best_score = -1e10 held in a float
THRESHOLD = struct.unpack("<f", struct.pack("<f", -1e10))[0]


def encode(text, bos):
    tokens = [1] if bos else []
    if text:
        tokens.append(lookup[b" "])  # the dummy prefix
    i = 0
    while i < len(text):
        # a code point: a byte and the continuation bytes after it, at most 4 bytes
        k = 1
        while i + k < len(text) and (text[i + k] & 0xC0) == 0x80 and k < 4:
            k += 1
        chunk = text[i : i + k]
        if chunk in lookup:
            tokens.append(lookup[chunk])
        else:
            tokens.extend(b + 3 for b in chunk)  # byte fallback: <0xXX> is id byte + 3
        i += k
    # merge the best pair while one exists: run.c rescans every pair each time, keeping the first
    # (leftmost) pair with the highest score. The pair scores are kept in a list and only the two
    # pairs next to a merge are recomputed, which gives the same choice.
    def pair_score(j):
        merged = lookup.get(pieces[tokens[j]] + pieces[tokens[j + 1]])
        if merged is None or not scores[merged] > THRESHOLD:
            return float("-inf"), None
        return scores[merged], merged

    pairs = [pair_score(j) for j in range(len(tokens) - 1)]
    values = [s for s, _ in pairs]
    while values:
        best = max(values)
        if best == float("-inf"):
            break
        j = values.index(best)
        tokens[j : j + 2] = [pairs[j][1]]
        del pairs[j], values[j]
        for k in (j - 1, j):
            if 0 <= k < len(pairs):
                pairs[k] = pair_score(k)
                values[k] = pairs[k][0]
    return tokens


def decode_piece(prev, token):
    piece = pieces[token].split(b"\0")[0]  # a C string
    if prev == 1 and piece[:1] == b" ":
        piece = piece[1:]
    m = re.match(rb"<0x([0-9A-Fa-f]{1,2})", piece)  # sscanf(piece, "<0x%02hhX>", &byte)
    if m:
        return bytes([int(m.group(1), 16)])
    return piece


out = []
for corpus in corpora:
    for line in open(corpus, encoding="utf-8"):
        if not line.strip():
            continue
        text = json.loads(line)["text"].encode("utf-8", "surrogatepass")
        if mode == "both":
            tokens = encode(text, False)
            printed = b"".join(decode_piece(([1] + tokens)[i], t) for i, t in enumerate(tokens))
            out.append(" ".join(map(str, tokens)) + "\t" + printed.hex())
        else:
            out.append(" ".join(map(str, encode(text, mode == "special"))))
sys.stdout.write("".join(line + "\n" for line in out))
