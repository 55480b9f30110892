#!/bin/bash
# run_reference.sh REFERENCE CORPUS TOK_DRIVER NPM_DIR
#   REFERENCE: gpt3-encoder (npm package, via node) | encoder-py (encoder.py's algorithm + Python regex)
#   CORPUS:    docs (every document of $PLATEAU_SHARED_DIR/data/*.jsonl) | hard (hand-written cases;
#              for encoder-py also whitespace_cases.jsonl, where JavaScript's \s differs) | tiny (the
#              hand-written cases through a generated 40-merge vocab: needs no ../shared; encoder-py only)
# Asserts that plateau's ids (tok_driver, which also checks decode(encode(s)) == s) equal the reference's.
set -u
reference=$1 corpus=$2 driver=$3 npm_dir=$4
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d) || exit 2
trap 'rm -rf "$work"' EXIT
model=$PLATEAU_SHARED_DIR/gpt2
if [ "$corpus" = tiny ]; then
    model=$work/tiny
    "${PYTHON:-/usr/bin/python3}" "$here/make_tiny_vocab.py" "$model" || exit 2
fi
[ -f "$model/vocab.json" ] && [ -f "$model/merges.txt" ] ||
    { echo "SKIP: $model/vocab.json and merges.txt not found (../shared is absent)"; exit 77; }
case $corpus in
docs)
    files=("$PLATEAU_SHARED_DIR"/data/*.jsonl)
    [ -f "${files[0]}" ] || { echo "SKIP: no $PLATEAU_SHARED_DIR/data/*.jsonl"; exit 77; } ;;
hard | tiny)
    files=("$here/hard_cases.jsonl")
    [ "$reference" = encoder-py ] && files+=("$here/whitespace_cases.jsonl") ;;
*) echo "unknown corpus $corpus"; exit 2 ;;
esac

case $reference in
gpt3-encoder)
    "$here/ensure_gpt3_encoder.sh" "$npm_dir" || exit $?
    node "$here/gpt3_encoder_ref.js" "$npm_dir/node_modules" "$model" "${files[@]}" >"$work/ref" || exit $? ;;
encoder-py)
    "${PYTHON:-/usr/bin/python3}" "$here/gpt2_encoder_ref.py" "$model" "${files[@]}" >"$work/ref" || exit $? ;;
*) echo "unknown reference $reference"; exit 2 ;;
esac
"$driver" "$model" encode "${files[@]}" >"$work/plateau" || { echo "FAIL: tok_driver exited $?"; exit 1; }
"${PYTHON:-/usr/bin/python3}" "$here/compare_ids.py" plateau "$work/plateau" "$reference" "$work/ref" "${files[@]}"
