#!/bin/bash
# test_roundtrip.sh TOK_DRIVER gpt2|tiny: decode(encode(s)) == s for 3,000 seeded random strings built
# from hard pieces (contractions, every kind of whitespace, CJK, emoji, combining marks, JSON-ish
# punctuation), with the real GPT-2 tokenizer or a generated tiny one.
set -u
driver=$1 which=$2
here=$(cd "$(dirname "$0")" && pwd)
if [ "$which" = gpt2 ]; then
    model=$PLATEAU_SHARED_DIR/gpt2
    [ -f "$model/vocab.json" ] || { echo "SKIP: $model/vocab.json not found (../shared is absent)"; exit 77; }
    seed=1
else
    work=$(mktemp -d) || exit 2
    trap 'rm -rf "$work"' EXIT
    model=$work/tiny
    "${PYTHON:-/usr/bin/python3}" "$here/make_tiny_vocab.py" "$model" || exit 2
    seed=2
fi
"$driver" "$model" roundtrip 3000 "$seed"
