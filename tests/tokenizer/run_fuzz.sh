#!/bin/bash
# run_fuzz.sh SECONDS [TARGET]: build a tokenizer fuzz target with Debian clang's libFuzzer, ASan and
# UBSan (directly with clang, independent of the gcc build) and fuzz for SECONDS seconds.
#   gpt2 (default): fuzz_tokenizer.c, text into GPT-2's encode/decode, seeded with the hard cases; uses
#                   ../shared/gpt2 when present, else a generated tiny vocab
#   hf_json:        fuzz_tokenizer_files.c, the bytes are a tokenizer.json; seeded with the synthetic files
#   llama2c:        fuzz_tokenizer_files.c, a text and a tokenizer.bin; seeded with stories260K's tok512.bin
#                   when present and a generated one
# Skips (77) when clang or its libFuzzer runtime is missing.
set -u
seconds=${1:-15}
target=${2:-gpt2}
src=$PLATEAU_SRC_DIR
here=$src/tests/tokenizer
py=${PYTHON:-/usr/bin/python3}
command -v clang >/dev/null || { echo "SKIP: clang not installed (Debian package clang)"; exit 77; }
work=$(mktemp -d) || exit 2
trap 'rm -rf "$work"' EXIT
printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' >"$work/probe.c"
clang -fsanitize=fuzzer "$work/probe.c" -o "$work/probe" 2>"$work/probe.log" ||
    { echo "SKIP: clang cannot link -fsanitize=fuzzer (libFuzzer runtime missing):"; head -3 "$work/probe.log"; exit 77; }

flags=() source=$here/fuzz_tokenizer.c max_len=4096
case $target in
gpt2) ;;
hf_json) flags=(-DFUZZ_HF_JSON) source=$here/fuzz_tokenizer_files.c max_len=65536 ;;
llama2c) flags=(-DFUZZ_LLAMA2C) source=$here/fuzz_tokenizer_files.c max_len=16384 ;;
*) echo "unknown fuzz target $target"; exit 2 ;;
esac
# shellcheck disable=SC2046
clang -std=c11 -g -O1 -Wall -Wextra -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE "${flags[@]}" \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer \
    -I"$src/include" $(pkg-config --cflags libpcre2-8 jansson icu-uc) \
    "$source" "$src"/src/tokenizer/*.c "$src/src/util/error.c" "$src/src/util/fileio.c" \
    $(pkg-config --libs libpcre2-8 jansson icu-uc) -o "$work/fuzz_tokenizer" || { echo "FAIL: cannot build the fuzz target"; exit 1; }

mkdir "$work/corpus"
if [ "$target" = hf_json ]; then
    "$py" "$here/make_hf_synthetic.py" "$work/synthetic" "$here/hf_hard_cases.jsonl" || exit 2
    for f in "$work"/synthetic/*/tokenizer.json; do cp "$f" "$work/corpus/$(basename "$(dirname "$f")")"; done
    printf '{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}, "decoder": null}' >"$work/corpus/tiny"
elif [ "$target" = llama2c ]; then
    "$py" - "$work/corpus" "$PLATEAU_SHARED_DIR/models/stories260K/tok512.bin" <<'PY' || exit 2
import os, struct, sys
out, real = sys.argv[1:]
def entry(score, piece):
    return struct.pack("<fi", score, len(piece)) + piece
pieces = [b"<unk>", b"\n<s>\n", b"\n</s>\n"] + [b"<0x%02X>" % b for b in range(256)] + [b" ", b"a", b"b", b" a", b"ab", b" ab"]
small = struct.pack("<i", 4) + b"".join(entry(-float(i), p) for i, p in enumerate(pieces))
texts = [b"ab ab a", b"h\xc3\xa9llo \xf0\x9f\x98\x80", b""]
for i, t in enumerate(texts):
    open(f"{out}/small{i}", "wb").write(struct.pack("<H", len(t)) + t + small)
if os.path.exists(real):
    open(f"{out}/tok512", "wb").write(struct.pack("<H", 11) + b"Once upon a" + open(real, "rb").read())
PY
else
    if [ -f "$PLATEAU_SHARED_DIR/gpt2/vocab.json" ] && [ -f "$PLATEAU_SHARED_DIR/gpt2/merges.txt" ]; then
        export PLATEAU_FUZZ_MODEL_DIR=$PLATEAU_SHARED_DIR/gpt2
    else
        echo "note: $PLATEAU_SHARED_DIR/gpt2 absent, fuzzing with a generated tiny vocab"
        "$py" "$here/make_tiny_vocab.py" "$work/tiny" || exit 2
        export PLATEAU_FUZZ_MODEL_DIR=$work/tiny
    fi
    "$py" -c '
import json, sys
for i, line in enumerate(open(sys.argv[1], encoding="utf-8")):
    open(f"{sys.argv[2]}/seed{i:03d}", "wb").write(json.loads(line)["text"].encode("utf-8", "surrogatepass"))
' "$here/hard_cases.jsonl" "$work/corpus" || exit 2
    printf 'abc\xffdef' >"$work/corpus/bad1"
    printf '\xed\xa0\x80\xf4\x90\x80\x80\xe2\x82' >"$work/corpus/bad2"
fi

cd "$work" && ./fuzz_tokenizer -max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 corpus >fuzz.log 2>&1
rc=$?
if [ "$rc" -ne 0 ]; then
    tail -n 60 fuzz.log
    for crash in crash-* leak-* timeout-* oom-*; do
        [ -f "$crash" ] && { echo "input $crash (hex):"; od -An -tx1 "$crash" | head -20; }
    done
    echo "FAIL: the fuzzer found a problem (exit $rc)"
    exit 1
fi
grep -E '^#[0-9]+ +DONE|number_of_executed_units' fuzz.log
echo "OK: fuzzed the tokenizer ($target) for $seconds s without a finding"
