#!/usr/bin/env bash
# Sweep throughput on a GPT-2-small-shaped synthetic model with the default protocol (n_ctx 10,
# 101 steps, blocks.1.hook_resid_pre -> blocks.11.hook_resid_post, all four metrics): evaluations/s
# on 1 and 2 ranks, against --naive (a full forward per evaluation) and against the FLOP limit
# (pl_patch_flops per evaluation x evals/s, over OpenBLAS's sgemm peak measured in the same run).
# Prints a markdown table with the machine and the date.
#   bash scripts/bench_sweep.sh [BUILD_DIR]        (default: build; needs plateau and bench_sweep built)
# One OpenBLAS thread per rank, so "2 ranks" uses two cores. cov_prompts is lowered to 100 (the
# covariance fit is not timed: evals/s counts the unit loop only).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
plateau=$build/plateau
bench=$build/bench_sweep
for f in "$plateau" "$bench"; do
  [ -x "$f" ] || { echo "bench_sweep.sh: $f not built (cmake --build $build)" >&2; exit 2; }
done
work=$build/bench-sweep
model=$work/gpt2-small-synth
mkdir -p "$work"
if [ ! -f "$model/model.safetensors" ]; then
  "$plateau" synth "$model" --layers 12 --embd 768 --heads 12 --ctx 1024 --vocab 50257 >/dev/null
fi
# random token windows (the content does not change the cost)
/usr/bin/python3 -c "import numpy as np; np.random.default_rng(0).integers(0, 50257, size=10 * 400).astype('<u2').tofile('$work/tokens.bin')"
cat > "$work/bench.ini" <<INI
[model]
path = $model
[data]
prompts = $work/tokens.bin
[perturb]
bases = real
directions = cov_random
cov_prompts = 100
[output]
path = $work/bench.nc
INI
export OPENBLAS_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

rate() { # evals/s recorded in the output file (unit loop only)
  /usr/bin/python3 -c "import netCDF4, sys; print(netCDF4.Dataset(sys.argv[1]).evals_per_second)" "$1"
}
units=${PLATEAU_BENCH_UNITS:-200}
"$plateau" run "$work/bench.ini" --quiet --set data.n_prompts=$units -o "$work/r1.nc"
mpirun --oversubscribe -n 2 "$plateau" run "$work/bench.ini" --quiet --set data.n_prompts=$units -o "$work/r2.nc"
"$plateau" run "$work/bench.ini" --quiet --naive --set data.n_prompts=2 -o "$work/rn.nc"
r1=$(rate "$work/r1.nc"); r2=$(rate "$work/r2.nc"); rn=$(rate "$work/rn.nc")
eval "$("$bench" "$model" --seconds 6 | sed 's/^\([a-z0-9_]*\) \(.*\)$/\1=\2/')"
# Sustained sgemm throughput of the batch shape, one process alone and two at once: what two ranks
# can get from this machine at best.
solo=$("$bench" "$model" --sustained --seconds 5 | awk '{ print $2 }')
"$bench" "$model" --sustained --seconds 5 > "$work/peak-a.txt" &
"$bench" "$model" --sustained --seconds 5 > "$work/peak-b.txt"
wait
duo=$(awk '{ s += $2; n++ } END { printf "%.2f", s / n }' "$work/peak-a.txt" "$work/peak-b.txt")

python3_=/usr/bin/python3
$python3_ - "$r1" "$r2" "$rn" "$sgemm_peak_gflops" "$patch_flops" "$forward_flops" "$units" "$sgemm_101x3072x768_gflops" "$solo" "$duo" <<'PY'
import sys, platform, subprocess, datetime
r1, r2, rn, peak, pf, ff, units, shape, solo, duo = map(float, sys.argv[1:])
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
print("Sweep throughput, GPT-2-small-shaped synthetic model, default protocol (n_ctx 10, 101 steps, "
      "blocks.1.hook_resid_pre, all metrics), %d units per run." % units)
print("Machine: %s, %s cores; %s UTC; OpenBLAS 1 thread per rank." %
      (cpu, cores, datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M")))
print("FLOPs per evaluation (pl_patch_flops): %.1f M; per full forward: %.1f M; sgemm peak (1 core, this run): "
      "%.1f GFLOP/s (a single unit's shape, 101 x 3072 x 768, reaches %.1f GFLOP/s: the sweep evaluates "
      "batches of 10 units, 1010 rows, per call).\n" % (pf / 1e6, ff / 1e6, peak, shape))
print("| run | evals/s | GFLOP/s | of FLOP limit | vs --naive | scaling |")
print("|---|---:|---:|---:|---:|---:|")
print("| 1 rank, fast path | %.1f | %.1f | %.0f %% | %.1fx | 1.00 |" % (r1, r1 * pf / 1e9, 100 * r1 * pf / 1e9 / peak, r1 / rn))
print("| 2 ranks, fast path | %.1f | %.1f | %.0f %% (of 2 cores) | %.1fx | %.2f |" %
      (r2, r2 * pf / 1e9, 100 * r2 * pf / 1e9 / (2 * peak), r2 / rn, r2 / (2 * r1)))
print("| 1 rank, --naive | %.1f | %.1f | %.0f %% | 1.0x | |" % (rn, rn * ff / 1e9, 100 * rn * ff / 1e9 / peak))
print()
print("Sustained sgemm of the batch shape (1010 x 3072 x 768): %.1f GFLOP/s in one process alone, %.1f GFLOP/s "
      "each with two processes at once: sgemm-bound work scales by at most %.2f from 1 to 2 ranks on this machine."
      % (solo, duo, duo / solo))
PY
