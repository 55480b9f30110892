#!/usr/bin/env bash
# The memory of a node (issue 19): one fp32 copy of the weights per node. On a Llama-3.2-1B-shaped BF16
# synthetic model (hidden 2048, 16 layers, 32/8 heads, MLP 8192, vocabulary 128,256, tied; 1.24 G
# parameters: a 2.3 GiB file, 4.6 GiB in fp32) one small sweep runs on 1 rank and on 2 ranks (mpirun);
# the node's memory is the sum of the ranks' proportional set sizes (Pss of /proc/PID/smaps_rollup:
# a page shared by n processes counts 1/n in each), sampled every 0.2 s, its peak reported. Goal: the
# second rank adds at most a quarter of the fp32 weights' size. --private adds a 2-rank run with
# [run] shared_weights = false (a copy per rank) for comparison: it needs ~12 GiB.
#   bash scripts/bench_memory.sh [BUILD_DIR] [--private]
# The model (written by plateau synth, ~2.3 GiB) goes to a temporary directory under ${TMPDIR:-/tmp},
# removed at the end. Takes a few minutes (writing the model; each run's setup and one batch).
set -euo pipefail
cd "$(dirname "$0")/.."
build=build
private=0
for a in "$@"; do
  case $a in
    --private) private=1 ;;
    *) build=$a ;;
  esac
done
command -v mpirun >/dev/null || { echo "bench_memory.sh: mpirun not found" >&2; exit 1; }
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)" --target plateau >/dev/null
plateau=$(realpath "$build/plateau")
work=$(mktemp -d "${TMPDIR:-/tmp}/plateau-bench-memory.XXXXXX")
trap 'rm -rf "$work"' EXIT
mpi=(mpirun)
[ "$(id -u)" = 0 ] && mpi+=(--allow-run-as-root)

"$plateau" synth "$work/model" --family llama --layers 16 --embd 2048 --heads 32 --kv-heads 8 --mlp 8192 \
  --vocab 128256 --ctx 2048 --tied --dtype bf16 >/dev/null
head -c 200000 /dev/urandom >"$work/tokens.bin" # uint16 ids below 65,536 < the vocabulary
cat >"$work/bench.ini" <<EOF
[model]
path = $work/model
[data]
prompts = $work/tokens.bin
n_prompts = 4
n_ctx = 8
[perturb]
hook = blocks.8.hook_resid_pre
bases = real
directions = isotropic
n_directions = 1
steps = 11
cov_prompts = 8
[readout]
metrics = kl
[output]
path = $work/out.nc
EOF

# The peak over the run of the sum of its ranks' Pss (kB): the plateau processes under mpirun.
peak_pss() {
  local pid=$1 peak=0 sum p kb
  while kill -0 "$pid" 2>/dev/null; do
    sum=0
    for p in $(pgrep -P "$pid" -x plateau || true); do
      kb=$(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
      sum=$((sum + ${kb:-0}))
    done
    [ "$sum" -gt "$peak" ] && peak=$sum
    sleep 0.2
  done
  wait "$pid" || { echo "bench_memory.sh: the run failed" >&2; exit 1; }
  echo "$peak"
}

run() { # RANKS [--set ...]: the peak node Pss in kB
  local n=$1
  shift
  "${mpi[@]}" -n "$n" "$plateau" run "$work/bench.ini" --quiet -o "$work/out-$n.nc" "$@" &
  peak_pss $!
}

dry=$("$plateau" run "$work/bench.ini" --dry-run --ranks 2)
converted=$(awk '/^memory_weights_converted_bytes/ { print $3 }' <<<"$dry")
mapped=$(awk '/^memory_weights_mapped_bytes/ { print $3 }' <<<"$dry")
per_rank=$(awk '/^memory_per_rank_bytes/ { print $3 }' <<<"$dry")
one=$(run 1)
two=$(run 2)
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
echo "Machine: ${cpu:-$(uname -m)}, $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M') UTC."
echo "Llama-3.2-1B-shaped BF16 synthetic model: file $(awk -v b="$mapped" 'BEGIN { printf "%.2f", b / 2^30 }') GiB,"\
" fp32 weights $(awk -v b="$converted" 'BEGIN { printf "%.2f", b / 2^30 }') GiB;"\
" --dry-run's own memory per rank $(awk -v b="$per_rank" 'BEGIN { printf "%.2f", b / 2^30 }') GiB."
awk -v one="$one" -v two="$two" -v w="$converted" 'BEGIN {
  gib = 1024 * 1024; add = (two - one) / gib; q = w / 2^30 / 4
  printf "node memory (sum of the ranks'"'"' Pss, peak): 1 rank %.2f GiB, 2 ranks %.2f GiB (shared window)\n", one / gib, two / gib
  printf "the second rank adds %.2f GiB; goal: at most a quarter of the fp32 weights, %.2f GiB: %s\n", add, q,
    add <= q ? "met" : "NOT met"
}'
if [ $private = 1 ]; then
  priv=$(run 2 --set run.shared_weights=false)
  awk -v p="$priv" -v one="$one" 'BEGIN { printf "2 ranks, a copy per rank (shared_weights = false): %.2f GiB (+%.2f GiB)\n",
    p / 1048576, (p - one) / 1048576 }'
fi
