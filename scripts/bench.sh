#!/usr/bin/env bash
# The performance tables of docs/performance.md: forward and fast-path throughput (bench_forward) on synthetic
# models of the exact GPT-2-small shape and of SmolLM-135M's shape (Llama family: 30 layers, width
# 576, 9 heads, 3 key/value heads, MLP 1536, vocabulary 49,152, tied; same FLOPs as the real ones),
# one VJP row's and one JVP row's cost against one fast-path row (issue 17: a VJP row at most 3x), in FLOPs
# (pl_patch_vjp_flops, pl_patch_jvp_flops / pl_patch_flops) and in time from the same process (tests/core/grad_probe.c
# --bench), and sweep throughput on 1 and 2 ranks against --naive and the FLOP limit (scripts/bench_sweep.sh),
# with machine and date.
#   bash scripts/bench.sh [BUILD_DIR] [--quick] [--model DIR]
# (default build; builds what is missing; ~9 minutes. --quick: 0.2 s per figure, 1 call and 4 rows per
# derivative figure and no sweep benchmark, to check that everything runs; its figures mean nothing.
# --model DIR: that model in place of the two synthetic ones, e.g. a tiny `plateau synth` model to check
# the script on a busy machine.)
set -euo pipefail
cd "$(dirname "$0")/.."
build=build
seconds=3
quick=0
model=
while [ $# -gt 0 ]; do
  case $1 in
    --quick) quick=1; seconds=0.2 ;;
    --model) model=${2:?--model needs a directory}; shift ;;
    *) build=$1 ;;
  esac
  shift
done
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)" --target plateau bench_forward bench_sweep grad_probe >/dev/null
mkdir -p "$build/bench-sweep"
if [ -n "$model" ]; then
  gpt2=$model smollm=$model
else
  gpt2=$build/bench-sweep/gpt2-small-synth
  if [ ! -f "$gpt2/model.safetensors" ]; then
    "$build/plateau" synth "$gpt2" --layers 12 --embd 768 --heads 12 --ctx 1024 --vocab 50257 >/dev/null
  fi
  smollm=$build/bench-sweep/smollm-135m-synth
  if [ ! -f "$smollm/model.safetensors" ]; then
    "$build/plateau" synth "$smollm" --family llama --layers 30 --embd 576 --heads 9 --kv-heads 3 --mlp 1536 \
      --vocab 49152 --ctx 2048 --tied >/dev/null
  fi
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
reps=7 rows=101
[ $quick = 1 ] && reps=1 rows=4
echo "Derivatives (grad_probe --bench MODEL T POS RESID M REPS: M rows patched at blocks.1.hook_resid_pre, the"
echo "last of T positions; FLOPs per row and best-of-REPS seconds per call of the fast path, the VJP of a logits"
echo "cotangent and the JVP; issue 17's goal: a VJP row at most 3x a fast-path row in both):"
echo
for m in "$gpt2" "$smollm"; do
  [ "$m" = "$gpt2" ] || [ "$m" != "$model" ] || continue  # --model: once
  echo "$(basename "$m"):"
  for M in $rows 1; do
    OPENBLAS_NUM_THREADS=1 "$build/tests/grad_probe" --bench "$m" 10 9 1 "$M" $reps
  done
done
echo
[ $quick = 1 ] || bash scripts/bench_sweep.sh "$build"
