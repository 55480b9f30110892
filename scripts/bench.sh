#!/usr/bin/env bash
# The performance tables of docs/performance.md: forward and fast-path throughput (bench_forward) on the
# synthetic models of scripts/bench_shapes.sh (random weights in the exact shapes of GPT-2 small,
# SmolLM-135M, Llama-3.2-1B and Gemma-2-2B: same FLOPs as the real ones), the fast path up to 1010 rows
# (the sweep's batch), one VJP row's and one JVP row's cost against one fast-path row (issue 17: a VJP
# row at most 3x), in FLOPs (pl_patch_vjp_flops, pl_patch_jvp_flops / pl_patch_flops) and in time from
# the same process (tests/core/grad_probe.c --bench; GPT-2 and SmolLM shapes), and sweep throughput on 1
# and 2 ranks against --naive and the FLOP limit (scripts/bench_sweep.sh), with machine and date.
#   bash scripts/bench.sh [BUILD_DIR] [--quick] [--model DIR]
#   PLATEAU_BENCH_SHAPES="gpt2 smollm llama1b gemma2b" bash scripts/bench.sh   (or "all"; default "gpt2 smollm")
# Time on an idle 2-core machine: ~20 minutes for gpt2 + smollm, 55 for all four (2026-12-07, the models
# already written; gemma2b's 5.2 GB BF16 model takes ~80 s to write, and 10.5 GB of fp32 weights in memory:
# 24 GB machine).
# --quick: 0.2 s per figure, 1 call and 4 rows per derivative figure and no sweep benchmark, to check that
# everything runs; its figures mean nothing. --model DIR: that model in place of the synthetic ones, e.g. a
# tiny `plateau synth` model to check the script on a busy machine.)
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
. scripts/bench_shapes.sh
shapes=$(bench_shapes)
[ -n "$model" ] && shapes=model
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
echo "Machine: ${cpu:-$(uname -m)}, $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M') UTC; OpenBLAS 1 thread."
for s in $shapes; do
  if [ "$s" = model ]; then dir=$model title="the model $model"; else
    dir=$(bench_model "$build/plateau" "$build/bench-sweep" "$s") title=$(bench_shape_title "$s"); fi
  # the large shapes: shorter full forwards and one call minimum (a 1010-row Gemma-2-2B call is ~5 TFLOP)
  opts=()
  case $s in llama1b | gemma2b) opts=(--ctx 1,10,64 --rows 1,101,1010 --calls 1) ;; esac
  if [ $quick = 1 ]; then
    case $s in llama1b | gemma2b) opts=(--ctx 1,10 --rows 1,16 --calls 1) ;; *) opts=(--calls 1) ;; esac
  fi
  echo
  echo "Forward pass and fast path (bench_forward, $title):"
  echo
  OPENBLAS_NUM_THREADS=1 "$build/bench_forward" "$dir" --seconds $seconds "${opts[@]}"
done
echo
reps=7 rows=101
[ $quick = 1 ] && reps=1 rows=4
echo "Derivatives (grad_probe --bench MODEL T POS RESID M REPS: M rows patched at blocks.1.hook_resid_pre, the"
echo "last of T positions; FLOPs per row and best-of-REPS seconds per call of the fast path, the VJP of a logits"
echo "cotangent and the JVP; issue 17's goal: a VJP row at most 3x a fast-path row in both):"
echo
for s in $shapes; do
  case $s in gpt2 | smollm) m=$(bench_model "$build/plateau" "$build/bench-sweep" "$s") ;; model) m=$model ;; *) continue ;; esac
  echo "$(basename "$m"):"
  for M in $rows 1; do
    OPENBLAS_NUM_THREADS=1 "$build/tests/grad_probe" --bench "$m" 10 9 1 "$M" $reps
  done
done
echo
[ $quick = 1 ] || [ -n "$model" ] || bash scripts/bench_sweep.sh "$build" $shapes
