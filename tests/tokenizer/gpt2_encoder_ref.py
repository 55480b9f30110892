"""Reference GPT-2 encoder: the algorithm of OpenAI's gpt-2/src/encoder.py (bytes_to_unicode, the
pre-tokenisation pattern through Python's `regex` module, rank-ordered BPE), reading vocab.json and
merges.txt from a directory. Independent of plateau's C code; used by the tokenizer tests.

usage: gpt2_encoder_ref.py MODEL_DIR FILE.jsonl...   prints the ids of each document's "text", one line each
Exits 77 when the `regex` module (Debian python3-regex) is missing.
"""
import json
import sys

from byte_alphabet import bytes_to_unicode

try:
    import regex
except ImportError:
    print("SKIP: Python module 'regex' is missing (Debian package python3-regex)", file=sys.stderr)
    sys.exit(77)


def get_pairs(word):
    return set(zip(word, word[1:]))


class Encoder:
    def __init__(self, model_dir):
        with open(f"{model_dir}/vocab.json", encoding="utf-8") as f:
            self.encoder = json.load(f)
        with open(f"{model_dir}/merges.txt", encoding="utf-8") as f:
            bpe_data = f.read()
        merges = [tuple(line.split()) for line in bpe_data.split("\n")[1:-1]]
        self.bpe_ranks = dict(zip(merges, range(len(merges))))
        self.byte_encoder = bytes_to_unicode()
        self.cache = {}
        self.pat = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        word = tuple(token)
        pairs = get_pairs(word)
        if not pairs:
            return [token]
        while True:
            bigram = min(pairs, key=lambda pair: self.bpe_ranks.get(pair, float("inf")))
            if bigram not in self.bpe_ranks:
                break
            first, second = bigram
            new_word = []
            i = 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                except ValueError:
                    new_word.extend(word[i:])
                    break
                new_word.extend(word[i:j])
                i = j
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new_word.append(first + second)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            word = tuple(new_word)
            if len(word) == 1:
                break
            pairs = get_pairs(word)
        self.cache[token] = list(word)
        return list(word)

    def encode(self, text):
        ids = []
        for token in regex.findall(self.pat, text):
            token = "".join(self.byte_encoder[b] for b in token.encode("utf-8"))
            ids.extend(self.encoder[t] for t in self.bpe(token))
        return ids


def main():
    enc = Encoder(sys.argv[1])
    out = sys.stdout
    for path in sys.argv[2:]:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    out.write(" ".join(map(str, enc.encode(json.loads(line)["text"]))) + "\n")


if __name__ == "__main__":
    main()
