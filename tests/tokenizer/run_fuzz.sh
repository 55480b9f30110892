#!/bin/bash
# run_fuzz.sh SECONDS: build tests/tokenizer/fuzz_tokenizer.c with Debian clang's libFuzzer, ASan and
# UBSan (directly with clang, independent of the gcc build) and fuzz for SECONDS seconds, seeded with
# the hand-written hard cases. Uses ../shared/gpt2 when present, else a generated tiny vocab.
# Skips (77) when clang or its libFuzzer runtime is missing.
set -u
seconds=${1:-15}
src=$PLATEAU_SRC_DIR
here=$src/tests/tokenizer
py=${PYTHON:-/usr/bin/python3}
command -v clang >/dev/null || { echo "SKIP: clang not installed (Debian package clang)"; exit 77; }
work=$(mktemp -d) || exit 2
trap 'rm -rf "$work"' EXIT
printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' >"$work/probe.c"
clang -fsanitize=fuzzer "$work/probe.c" -o "$work/probe" 2>"$work/probe.log" ||
    { echo "SKIP: clang cannot link -fsanitize=fuzzer (libFuzzer runtime missing):"; head -3 "$work/probe.log"; exit 77; }

# shellcheck disable=SC2046
clang -std=c11 -g -O1 -Wall -Wextra -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer \
    -I"$src/include" $(pkg-config --cflags libpcre2-8 jansson) \
    "$here/fuzz_tokenizer.c" "$src"/src/tokenizer/*.c "$src/src/util/error.c" "$src/src/util/fileio.c" \
    $(pkg-config --libs libpcre2-8 jansson) -o "$work/fuzz_tokenizer" || { echo "FAIL: cannot build the fuzz target"; exit 1; }

if [ -f "$PLATEAU_SHARED_DIR/gpt2/vocab.json" ] && [ -f "$PLATEAU_SHARED_DIR/gpt2/merges.txt" ]; then
    export PLATEAU_FUZZ_MODEL_DIR=$PLATEAU_SHARED_DIR/gpt2
else
    echo "note: $PLATEAU_SHARED_DIR/gpt2 absent, fuzzing with a generated tiny vocab"
    "$py" "$here/make_tiny_vocab.py" "$work/tiny" || exit 2
    export PLATEAU_FUZZ_MODEL_DIR=$work/tiny
fi
mkdir "$work/corpus"
"$py" -c '
import json, sys
for i, line in enumerate(open(sys.argv[1], encoding="utf-8")):
    open(f"{sys.argv[2]}/seed{i:03d}", "wb").write(json.loads(line)["text"].encode("utf-8", "surrogatepass"))
' "$here/hard_cases.jsonl" "$work/corpus" || exit 2
printf 'abc\xffdef' >"$work/corpus/bad1"
printf '\xed\xa0\x80\xf4\x90\x80\x80\xe2\x82' >"$work/corpus/bad2"

cd "$work" && ./fuzz_tokenizer -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
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
echo "OK: fuzzed the tokenizer for $seconds s without a finding"
