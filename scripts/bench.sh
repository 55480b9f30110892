#!/usr/bin/env bash
# The performance tables of docs/performance.md: forward and fast-path throughput (bench_forward) on synthetic
# models of the exact GPT-2-small shape and of SmolLM-135M's shape (Llama family: 30 layers, width
# 576, 9 heads, 3 key/value heads, MLP 1536, vocabulary 49,152, tied; same FLOPs as the real ones),
# and sweep throughput on 1 and 2 ranks against --naive and the FLOP limit (scripts/bench_sweep.sh),
# with machine and date.
#   bash scripts/bench.sh [BUILD_DIR] [--quick]
# (default build; builds what is missing; ~6 minutes. --quick: 0.2 s per figure and no sweep
# benchmark, to check that everything runs; its figures mean nothing.)
set -euo pipefail
cd "$(dirname "$0")/.."
build=build
seconds=3
quick=0
for a in "$@"; do
  case $a in
    --quick) quick=1; seconds=0.2 ;;
    *) build=$a ;;
  esac
done
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)" --target plateau bench_forward bench_sweep >/dev/null
mkdir -p "$build/bench-sweep"
gpt2=$build/bench-sweep/gpt2-small-synth
if [ ! -f "$gpt2/model.safetensors" ]; then
  "$build/plateau" synth "$gpt2" --layers 12 --embd 768 --heads 12 --ctx 1024 --vocab 50257 >/dev/null
fi
smollm=$build/bench-sweep/smollm-135m-synth
if [ ! -f "$smollm/model.safetensors" ]; then
  "$build/plateau" synth "$smollm" --family llama --layers 30 --embd 576 --heads 9 --kv-heads 3 --mlp 1536 \
    --vocab 49152 --ctx 2048 --tied >/dev/null
fi
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
echo "Machine: ${cpu:-$(uname -m)}, $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M') UTC; OpenBLAS 1 thread."
echo
echo "Forward pass and fast path (bench_forward, GPT-2-small-shaped synthetic model):"
echo
OPENBLAS_NUM_THREADS=1 "$build/bench_forward" "$gpt2" --seconds $seconds
echo
echo "Forward pass and fast path (bench_forward, SmolLM-135M-shaped synthetic Llama model: grouped-query"
echo "attention 9/3 heads, RoPE, SwiGLU, RMSNorm, tied 49,152-token unembedding):"
echo
OPENBLAS_NUM_THREADS=1 "$build/bench_forward" "$smollm" --seconds $seconds
echo
[ $quick = 1 ] || bash scripts/bench_sweep.sh "$build"
