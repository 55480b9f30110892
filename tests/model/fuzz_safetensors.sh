#!/bin/bash
# Build the st_parse libFuzzer target with Debian's clang and run it for a bounded time on a seed
# corpus of freshly synthesised model files. Skips (77) when clang or its libFuzzer runtime is missing.
set -u
src=${PLATEAU_SRC_DIR:?}
secs=${PLATEAU_FUZZ_SECONDS:-15}
clang=$(command -v clang || command -v clang-14 || true)
if [ -z "$clang" ]; then
    echo "skip: clang not installed"; exit 77
fi
work=$(mktemp -d /tmp/plateau-fuzz-st.XXXXXX)
trap 'rm -rf "$work"' EXIT
echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }' > "$work/probe.c"
if ! "$clang" -fsanitize=fuzzer "$work/probe.c" -o "$work/probe" 2>"$work/probe.log"; then
    echo "skip: clang's libFuzzer runtime is unavailable (install libclang-rt-dev):"; cat "$work/probe.log"; exit 77
fi
"$clang" -g -O1 -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$src/include" "$src/tests/model/fuzz_safetensors.c" "$src/src/model/safetensors.c" "$src/src/util/error.c" "$src/src/util/fileio.c" \
    $(pkg-config --cflags --libs jansson) -o "$work/fuzz" || { echo "FAIL: fuzz target does not build"; exit 1; }

# Seed corpus: tiny real model files (plain, bf16 with HF quirks) and a few hand-made headers.
mkdir -p "$work/corpus"
"$PLATEAU_BIN" synth "$work/m1" --layers 1 --embd 4 --heads 1 --ctx 2 --vocab 257 >/dev/null || exit 1
"$PLATEAU_BIN" synth "$work/m2" --layers 1 --embd 4 --heads 2 --ctx 3 --vocab 257 --dtype bf16 --hf-quirks >/dev/null || exit 1
cp "$work/m1/model.safetensors" "$work/corpus/plain"
cp "$work/m2/model.safetensors" "$work/corpus/quirks"
"$PYTHON" - "$work/corpus" <<'PY'
import json, struct, sys
out = sys.argv[1]
def w(name, header, data=b""):
    h = header.encode()
    open(f"{out}/{name}", "wb").write(struct.pack("<Q", len(h)) + h + data)
w("empty", "{}")
w("meta", '{"__metadata__":{"format":"pt"}}')
w("scalar", json.dumps({"s": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]}}), b"\0\0\x80?")
w("two", json.dumps({"a": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]},
                     "b": {"dtype": "I64", "shape": [1, 1], "data_offsets": [4, 12]}}), bytes(12))
PY
cat > "$work/dict" <<'DICT'
"\"dtype\""
"\"shape\""
"\"data_offsets\""
"\"__metadata__\""
"\"F32\""
"\"BF16\""
"\"F16\""
"\"I64\""
"\"F8_E4M3\""
DICT
cd "$work"
"$work/fuzz" -max_total_time="$secs" -max_len=8192 -timeout=10 -rss_limit_mb=2048 -dict="$work/dict" \
    -print_final_stats=1 "$work/corpus" >"$work/log" 2>&1
rc=$?
tail -n 25 "$work/log"
if [ $rc -ne 0 ]; then
    echo "FAIL: fuzzer exited $rc (crash inputs were in $work, copied to /tmp)"; cp "$work"/crash-* "$work"/leak-* /tmp/ 2>/dev/null
    exit 1
fi
echo "ok: ${secs}s of fuzzing st_parse found nothing"
