#!/bin/bash
# run_llama2c_reference.sh CORPUS TOK_DRIVER
#   CORPUS: docs (the first 1,000 documents of $PLATEAU_SHARED_DIR/data/tinystories.jsonl) | hard
#           (hard_cases.jsonl + hf_hard_cases.jsonl)
# With stories260K's tok512.bin: plateau's ids and decode equal llama2c_ref.py (run.c's algorithm
# written in Python), and decode(encode(text)) == text (the tokenizer is lossless: every byte has a
# <0xXX> token). On the hard cases also the ids with BOS (pl_encode_special).
set -u
corpus=$1 driver=$2
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-/usr/bin/python3}
tok=$PLATEAU_SHARED_DIR/models/stories260K/tok512.bin
[ -f "$tok" ] || { echo "SKIP: $tok not found (../shared is absent)"; exit 77; }
work=$(mktemp -d) || exit 2
trap 'rm -rf "$work"' EXIT
case $corpus in
docs)
    [ -f "$PLATEAU_SHARED_DIR/data/tinystories.jsonl" ] || { echo "SKIP: no tinystories.jsonl"; exit 77; }
    head -n 1000 "$PLATEAU_SHARED_DIR/data/tinystories.jsonl" >"$work/corpus.jsonl" ;;
hard) cat "$here/hard_cases.jsonl" "$here/hf_hard_cases.jsonl" >"$work/corpus.jsonl" ;;
*) echo "unknown corpus $corpus"; exit 2 ;;
esac
failures=0
"$driver" "$tok" encode "$work/corpus.jsonl" >"$work/ids" 2>"$work/err" ||
    { echo "FAIL: tok_driver encode (with its decode(encode(s)) == s check): $(tail -3 "$work/err")"; exit 1; }
"$driver" "$tok" decode "$work/corpus.jsonl" >"$work/hex" 2>"$work/err" || { echo "FAIL: tok_driver decode"; exit 1; }
paste "$work/ids" "$work/hex" >"$work/plateau"
"$py" "$here/llama2c_ref.py" "$tok" both "$work/corpus.jsonl" >"$work/ref" || exit 2
"$py" "$here/compare_ids.py" plateau "$work/plateau" run.c-reference "$work/ref" "$work/corpus.jsonl" || failures=$((failures + 1))
if [ "$corpus" = hard ]; then
    "$driver" "$tok" special "$work/corpus.jsonl" >"$work/plateau_bos" 2>/dev/null || { echo "FAIL: tok_driver special"; exit 1; }
    "$py" "$here/llama2c_ref.py" "$tok" special "$work/corpus.jsonl" >"$work/ref_bos" || exit 2
    "$py" "$here/compare_ids.py" plateau-bos "$work/plateau_bos" run.c-reference-bos "$work/ref_bos" "$work/corpus.jsonl" ||
        failures=$((failures + 1))
fi
[ $failures -eq 0 ]
