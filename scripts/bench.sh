#!/usr/bin/env bash
# The README's performance tables: forward and fast-path throughput (bench_forward) and sweep
# throughput on 1 and 2 ranks against --naive and the FLOP limit (scripts/bench_sweep.sh), on a
# synthetic model of the exact GPT-2-small shape (same FLOPs as the real one), with machine and date.
#   bash scripts/bench.sh [BUILD_DIR]     (default build; builds what is missing; ~5 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)" --target plateau bench_forward bench_sweep >/dev/null
model=$build/bench-sweep/gpt2-small-synth
if [ ! -f "$model/model.safetensors" ]; then
  "$build/plateau" synth "$model" --layers 12 --embd 768 --heads 12 --ctx 1024 --vocab 50257 >/dev/null
fi
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
echo "Machine: ${cpu:-$(uname -m)}, $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M') UTC; OpenBLAS 1 thread."
echo
echo "Forward pass and fast path (bench_forward, GPT-2-small-shaped synthetic model):"
echo
OPENBLAS_NUM_THREADS=1 "$build/bench_forward" "$model" --seconds 3
echo
bash scripts/bench_sweep.sh "$build"
