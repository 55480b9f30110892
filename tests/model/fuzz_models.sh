#!/bin/bash
# libFuzzer runs of model opening (tests/model/fuzz_models.c), bounded in time: the config.json
# parsers of every family (gpt2, llama, mistral, qwen2, gpt_neox) through model_type dispatch, and
# llama2.c checkpoints (header, sizes, tensor walk). Each built with ASan/UBSan and run for
# $PLATEAU_FUZZ_SECONDS (default 15) on a seed corpus of real configs and small checkpoints.
# Skips (77) when clang or its libFuzzer runtime is missing.
set -u
src=${PLATEAU_SRC_DIR:?}
secs=${PLATEAU_FUZZ_SECONDS:-15}
clang=$(command -v clang || command -v clang-14 || true)
if [ -z "$clang" ]; then
    echo "skip: clang not installed"; exit 77
fi
work=$(mktemp -d /tmp/plateau-fuzz-models.XXXXXX)
trap 'rm -rf "$work" /tmp/plateau-fuzz-model.*' EXIT
echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }' > "$work/probe.c"
if ! "$clang" -fsanitize=fuzzer "$work/probe.c" -o "$work/probe" 2>"$work/probe.log"; then
    echo "skip: clang's libFuzzer runtime is unavailable (install libclang-rt-dev):"; cat "$work/probe.log"; exit 77
fi
# the model and util sources are compiled once (two at a time), then linked into both targets
cflags=(-g -O1 -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -DPLATEAU_VERSION=\"fuzz\"
    -fsanitize=address,undefined -fno-sanitize-recover=undefined -I"$src/include" $(pkg-config --cflags jansson openblas))
mkdir -p "$work/obj"
n=0
for f in $(find "$src/src/model" "$src/src/util" -name '*.c'); do
    n=$((n + 1))
    "$clang" "${cflags[@]}" -fsanitize=fuzzer-no-link -c "$f" -o "$work/obj/$n.o" &
    [ $((n % 2)) -eq 0 ] && wait
done
wait
[ "$(ls "$work/obj" | wc -l)" -eq $n ] || { echo "FAIL: model sources do not build for fuzzing"; exit 1; }
for kind in config llama2c; do
    def=""; [ $kind = llama2c ] && def="-DFUZZ_LLAMA2C"
    "$clang" "${cflags[@]}" $def -fsanitize=fuzzer "$src/tests/model/fuzz_models.c" "$work"/obj/*.o \
        $(pkg-config --libs jansson openblas libcrypto) -lm -o "$work/fuzz-$kind" \
        || { echo "FAIL: fuzz target $kind does not build"; exit 1; }
done

# Seeds: every family's synthetic config.json and tinystories-gpt2's; llama2.c files of both versions.
mkdir -p "$work/config" "$work/llama2c"
i=0
for fam in gpt2 llama mistral qwen2 gpt_neox; do
    extra=""; [ $fam = llama ] && extra="--kv-heads 2 --rope-scaling llama3:8:1:4:4"
    "$PLATEAU_BIN" synth "$work/m-$fam" --family $fam --layers 1 --embd 16 --heads 2 --ctx 4 --vocab 257 $extra \
        >/dev/null || exit 1
    cp "$work/m-$fam/config.json" "$work/config/$fam.json"
done
[ -f "${PLATEAU_SHARED_DIR:-/nonexistent}/models/tinystories-gpt2/config.json" ] &&
    cp "$PLATEAU_SHARED_DIR/models/tinystories-gpt2/config.json" "$work/config/tiny.json"
PYTHONPATH="$src/tests/core" "$PYTHON" - "$work/llama2c" <<'PY'
import sys
import numpy as np
import test_families
out = sys.argv[1]
rng = np.random.default_rng(0)
test_families.llama2c_file(f"{out}/v0", rng, 0, 4, 8, 1, 2, 1, 5, 2, True)
test_families.llama2c_file(f"{out}/v0u", rng, 0, 4, 8, 1, 2, 2, 3, 2, False)
test_families.llama2c_file(f"{out}/v1", rng, 1, 4, 8, 1, 2, 1, 5, 2, False)
PY
cat > "$work/dict-config" <<'DICT'
"\"model_type\""
"\"llama\""
"\"mistral\""
"\"qwen2\""
"\"gpt_neox\""
"\"gpt2\""
"\"hidden_size\""
"\"num_key_value_heads\""
"\"num_attention_heads\""
"\"head_dim\""
"\"rope_scaling\""
"\"rope_type\""
"\"llama3\""
"\"factor\""
"\"rotary_pct\""
"\"sliding_window\""
"\"use_sliding_window\""
"\"tie_word_embeddings\""
"\"intermediate_size\""
"\"max_position_embeddings\""
"null"
"true"
"1e308"
"-1"
DICT
status=0
for kind in config llama2c; do
    dict=""; [ $kind = config ] && dict="-dict=$work/dict-config"
    (cd "$work" && "$work/fuzz-$kind" -max_total_time="$secs" -max_len=4096 -timeout=10 -rss_limit_mb=2048 $dict \
        -print_final_stats=1 "$work/$kind" >"$work/log-$kind" 2>&1)
    rc=$?
    tail -n 12 "$work/log-$kind"
    if [ $rc -ne 0 ]; then
        echo "FAIL: $kind fuzzer exited $rc (crash inputs copied to /tmp)"; cp "$work"/crash-* /tmp/ 2>/dev/null
        status=1
    else
        echo "ok: ${secs}s of fuzzing $kind opening found nothing"
    fi
done
exit $status
