#!/usr/bin/env bash
# Sweep throughput with the default protocol (n_ctx 10, 101 steps, blocks.1.hook_resid_pre ->
# the last block's hook_resid_post, all four metrics) on the synthetic models of scripts/bench_shapes.sh
# (GPT-2 small's shape by default): evaluations/s on 1 and 2 ranks, against --naive (a full forward per
# evaluation) and against the FLOP limit (pl_patch_flops per evaluation x evals/s, over OpenBLAS's sgemm
# peak measured in the same run). Each unit there has its own prompt, one base, one direction kind and
# all four metrics: the costliest work per evaluation a job can give (its own clean forward, a log per
# vocabulary entry for JSD). Then the main job's protocol, jobs/quickstart.ini as it is (6 units per
# prompt, KL), on 2 ranks. Prints a markdown table per shape with the machine and the date.
#   bash scripts/bench_sweep.sh [BUILD_DIR] [SHAPE ...]   (default: build gpt2; needs plateau and bench_sweep built)
# SHAPE: gpt2, smollm, llama1b, gemma2b or all. Units per run: $PLATEAU_BENCH_UNITS, else 600 (gpt2,
# smollm), 60 (llama1b: 20-35 s per 10-unit batch on one core, so 3 batches per rank on two) or 40
# (gemma2b: 45-65 s per batch, 2 per rank); the large shapes take ~8 (llama1b) and ~12 minutes (gemma2b)
# in all on an idle 2-core machine, the small ones ~6.
# Why 600: at the end of a run one rank may wait up to a batch for the other's last one (batches are
# fixed by the config, never split by rank count: the bits). With N batches that costs the 2-rank run
# up to 1/(N + 1) of its time, 1/(2N) on average: with 200 units (N = 20) up to 4.8 % (2.4 % on
# average), with 600 (N = 60) up to 1.6 % (0.8 %). Real jobs have hundreds of batches
# (jobs/post-plateau.ini: thousands of units), so the 2-rank figure of a short run understates them.
# The table prints this bound for its N.
# One OpenBLAS thread per rank, so "2 ranks" uses two cores. cov_prompts is lowered to 100 (the
# covariance fit is not timed: evals/s counts the unit loop only).
set -euo pipefail
cd "$(dirname "$0")/.."
build=build
shapes=()
for a in "$@"; do
  case $a in
    gpt2 | smollm | llama1b | gemma2b) shapes+=("$a") ;;
    all) shapes+=(gpt2 smollm llama1b gemma2b) ;;
    *) build=$a ;;
  esac
done
[ ${#shapes[@]} -gt 0 ] || shapes=(gpt2)
. scripts/bench_shapes.sh
plateau=$build/plateau
bench=$build/bench_sweep
for f in "$plateau" "$bench"; do
  [ -x "$f" ] || { echo "bench_sweep.sh: $f not built (cmake --build $build)" >&2; exit 2; }
done
work=$build/bench-sweep
mkdir -p "$work"
export OPENBLAS_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

rate() { # evals/s recorded in the output file (unit loop only)
  /usr/bin/python3 -c "import netCDF4, sys; print(netCDF4.Dataset(sys.argv[1]).evals_per_second)" "$1"
}

sweep_shape() { # SHAPE: its table
  local shape=$1 model units naive_units
  model=$(bench_model "$plateau" "$work" "$shape")
  case $shape in llama1b) units=60 naive_units=2 ;; gemma2b) units=40 naive_units=2 ;; *) units=600 naive_units=2 ;; esac
  units=${PLATEAU_BENCH_UNITS:-$units}
  # random token windows below the vocabulary (uint16 ids; the content does not change the cost): the units'
  # prompts, the 100 covariance prompts and 10 more (the main protocol runs at least 10 prompts)
  /usr/bin/python3 -c "import numpy as np; np.random.default_rng(0).integers(0, min($(bench_vocab "$shape"), 65536), size=10 * ($units + 110)).astype('<u2').tofile('$work/tokens.bin')"
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
  # The sgemm peak is measured on each side of each run (this virtual machine's speed drifts by 10 % and
  # more within minutes): one process alone around the 1-rank run, two at once around the 2-rank run
  # (each one's best call while the other core works: the peak two ranks can reach).
  eval "$("$bench" "$model" --seconds 6 | sed 's/^\([a-z0-9_]*\) \(.*\)$/\1=\2/')"
  local solo_a=$sgemm_peak_gflops solo_b duo_a duo_b duo_c
  "$plateau" run "$work/bench.ini" --quiet --set data.n_prompts=$units -o "$work/r1.nc"
  solo_b=$(peak_of 1)
  duo_a=$(peak_of 2)
  mpirun --oversubscribe -n 2 "$plateau" run "$work/bench.ini" --quiet --set data.n_prompts=$units -o "$work/r2.nc"
  duo_b=$(peak_of 2)
  # The main job's protocol: jobs/quickstart.ini as it is (the post's two experiments: 2 bases x 3 direction
  # kinds, 6 units per prompt sharing one clean forward; KL only), on this shape and these tokens; as many
  # prompts as give the units above, rounded up to a multiple of 10: 60 units are 6 whole batches of 10, so
  # the run is whole batches, an even count of them, and two ranks can end together (7 prompts, 42 units,
  # gave Gemma-2-2B 4 whole batches and a fifth of 2 units, which one rank ran while the other idled).
  # 2 ranks, the issue's figure. An RMSNorm model takes the raw basis (TransformerLens's centred one is
  # LayerNorm's; jobs/quickstart-stories260K.ini does the same): the same work.
  local main_prompts=$(( (units + 59) / 60 * 10 )) basis=centered
  [ "$shape" = gpt2 ] || basis=raw
  mpirun --oversubscribe -n 2 "$plateau" run jobs/quickstart.ini --quiet --set model.path="$model" \
    --set data.prompts="$work/tokens.bin" --set data.n_prompts=$main_prompts --set perturb.cov_prompts=100 \
    --set perturb.residual_basis=$basis -o "$work/r2m.nc"
  duo_c=$(peak_of 2)
  "$plateau" run "$work/bench.ini" --quiet --naive --set data.n_prompts=$naive_units -o "$work/rn.nc"
  local r1 r2 rn r2m solo duo
  r1=$(rate "$work/r1.nc"); r2=$(rate "$work/r2.nc"); rn=$(rate "$work/rn.nc"); r2m=$(rate "$work/r2m.nc")
  # Sustained sgemm of the batch shape, one process alone and two at once: what two ranks can get from
  # this machine at best.
  solo=$("$bench" --shape "$width" "$mlp" --sustained --seconds 5 | awk '{ print $2 }')
  "$bench" --shape "$width" "$mlp" --sustained --seconds 5 > "$work/peak-a.txt" &
  "$bench" --shape "$width" "$mlp" --sustained --seconds 5 > "$work/peak-b.txt"
  wait
  duo=$(awk '{ s += $2; n++ } END { printf "%.2f", s / n }' "$work/peak-a.txt" "$work/peak-b.txt")
  table "$(bench_shape_title "$shape")" "$r1" "$r2" "$rn" "$solo_a" "$solo_b" "$duo_a" "$duo_b" "$patch_flops" \
    "$forward_flops" "$units" "$sgemm_101_mlp_gflops" "$solo" "$duo" "$sgemm_mlp_shape" "$openblas_core" \
    "$r2m" "$duo_c" "$main_prompts" "$basis"
}

peak_of() { # N (1 or 2): the sgemm peak of N processes at once, each alone on a core (their mean)
  local i
  for i in $(seq 1 "$1"); do "$bench" --shape "$width" "$mlp" --seconds 6 > "$work/peak-$i.txt" & done
  wait
  awk '$1 == "sgemm_peak_gflops" { s += $2; n++ } END { printf "%.2f", s / n }' "$work"/peak-[1-9].txt
  rm -f "$work"/peak-[1-9].txt
}

table() {
python3_=/usr/bin/python3
$python3_ - "$@" <<'PY'
import sys, platform, subprocess, datetime
title, mlp, core = sys.argv[1], sys.argv[15].replace("x", " x "), sys.argv[16]
r1, r2, rn, solo_a, solo_b, duo_a, duo_b, pf, ff, units, shape, solo, duo = map(float, sys.argv[2:15])
r2m, duo_c, main_prompts, basis = float(sys.argv[17]), float(sys.argv[18]), int(sys.argv[19]), sys.argv[20]
peak1, peak2 = (solo_a + solo_b) / 2, (duo_a + duo_b) / 2
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
print("Sweep throughput, %s, default protocol (n_ctx 10, 101 steps, blocks.1.hook_resid_pre), one unit "
      "per prompt and all four metrics (the costliest work per evaluation), %d units per run." % (title, units))
print("Machine: %s, %s cores; %s UTC; OpenBLAS 1 thread per rank, %s kernel." %
      (cpu, cores, datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M"), core))
print("FLOPs per evaluation (pl_patch_flops): %.1f M; per full forward: %.1f M. sgemm peak, measured on each "
      "side of each run: one process alone %.1f and %.1f GFLOP/s around the 1-rank run (mean %.1f: the 1-rank "
      "and --naive runs' limit); two at once %.1f and %.1f GFLOP/s each around the 2-rank run (mean %.1f). "
      "A single unit's shape, 101 x %s, reaches %.1f GFLOP/s: the sweep evaluates batches of 10 units, "
      "1010 rows, per call.\n" % (pf / 1e6, ff / 1e6, solo_a, solo_b, peak1, duo_a, duo_b, peak2, mlp, shape))
print("| run | evals/s | GFLOP/s | of FLOP limit | vs --naive | scaling |")
print("|---|---:|---:|---:|---:|---:|")
print("| 1 rank, fast path | %.1f | %.1f | %.0f %% | %.1fx | 1.00 |" % (r1, r1 * pf / 1e9, 100 * r1 * pf / 1e9 / peak1, r1 / rn))
print("| 2 ranks, fast path | %.1f | %.1f | %.0f %% of 2 x the 1-process peak; %.0f %% of 2 x the 2-process peak | "
      "%.1fx | %.2f |" % (r2, r2 * pf / 1e9, 100 * r2 * pf / 1e9 / (2 * peak1), 100 * r2 * pf / 1e9 / (2 * peak2),
                          r2 / rn, r2 / (2 * r1)))
print("| 1 rank, --naive | %.1f | %.1f | %.0f %% | 1.0x | |" % (rn, rn * ff / 1e9, 100 * rn * ff / 1e9 / peak1))
print()
# The main job's protocol (jobs/quickstart.ini): units are prompt-major, 6 per prompt, so a batch of 10 units
# runs the clean forwards of the 2 or 3 prompts it touches; counted here from the unit indices.
main_units = 6 * main_prompts
cleans = sum(len({u // 6 for u in range(b, min(b + 10, main_units))}) for b in range(0, main_units, 10))
peak2m = (duo_b + duo_c) / 2
exm = pf + ff / 101 * cleans / main_units
print("The main job's protocol (jobs/quickstart.ini as it is: bases real and synthetic x directions real_other, "
      "cov_random and naive_isotropic, 6 units per prompt; KL only%s), %d prompts (%d units), 2 ranks: %.1f evals/s, "
      "%.1f GFLOP/s: **%.0f %% of 2 x the 1-process peak; %.0f %% of 2 x the 2-process peak** (read on its two "
      "sides: %.1f and %.1f GFLOP/s each). Its batches run %d clean forwards for %d units (%.1f %% of the FLOPs "
      "executed); against all of them: %.0f %% and %.0f %%."
      % ("" if basis == "centered" else "; residual_basis = raw, as RMSNorm models take", main_prompts, main_units,
         r2m, r2m * pf / 1e9, 100 * r2m * pf / 1e9 / (2 * peak1),
         100 * r2m * pf / 1e9 / (2 * peak2m), duo_b, duo_c, cleans, main_units,
         100 * (exm - pf) / exm, 100 * r2m * exm / 1e9 / (2 * peak1), 100 * r2m * exm / 1e9 / (2 * peak2m)))
print()
# Here every unit has its own prompt (one base, one direction kind, one sample), so each batch also runs its
# 10 prompts' clean forwards (T = 10), work the FLOP limit above leaves out: the same runs held against all
# the FLOPs they execute. Jobs with several units per prompt share one clean forward among them.
ex = pf + ff / 101
print("Clean forwards: each unit here has its own prompt, so every batch also runs 10 clean forwards, %.1f %% of "
      "the FLOPs executed, which the FLOP limit above does not count. Against all the FLOPs executed (%.1f M per "
      "evaluation): 1 rank %.0f %%; 2 ranks %.0f %% of 2 x the 1-process peak, %.0f %% of 2 x the 2-process peak."
      % (100 * (ff / 101) / ex, ex / 1e6, 100 * r1 * ex / 1e9 / peak1, 100 * r2 * ex / 1e9 / (2 * peak1),
         100 * r2 * ex / 1e9 / (2 * peak2)))
print()
nb = int((units + 9) // 10)  # batches of 10 units (1010 rows)
print("The run's tail: %d batches, so the 2-rank run's last batch may leave the other rank idle for up to "
      "%.1f %% of the run (%.1f %% on average). The main job's protocol: %d batches of 10 units."
      % (nb, 100.0 / (nb + 1), 50.0 / nb, (main_units + 9) // 10))
print()
print("Sustained sgemm of the batch shape (1010 x %s): %.1f GFLOP/s in one process alone, %.1f GFLOP/s "
      "each with two processes at once: sgemm-bound work scales by at most %.2f from 1 to 2 ranks on this machine."
      % (mlp, solo, duo, duo / solo))
PY
}

for s in "${shapes[@]}"; do
  sweep_shape "$s"
  echo
done
