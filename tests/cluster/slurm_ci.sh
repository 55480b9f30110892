#!/usr/bin/env bash
# The Slurm scripts on a real (single-node, private) Slurm: slurm/plateau.sbatch with jobs/smoke.ini
# on 2 ranks (bitwise a run by hand outside Slurm and a -n 1 -c 2 job), slurm/plateau-hooks.sbatch as a 2-task array and `plateau merge` of its outputs, a job
# preempted through the time-limit signal path (SIGTERM to the batch shell) that requeues itself and
# resumes to the uninterrupted bits, the same with SIGTERM straight to a 1-rank step, and SIGKILL of
# a worker rank ending the job within 15 s with the checkpoint intact.
#
#   tests/cluster/slurm_ci.sh            (ctest: cluster_slurm; env PLATEAU_BIN, PLATEAU_SRC_DIR,
#                                          PLATEAU_SHARED_DIR, PYTHON as set by plateau_test)
#
# Needs root (slurmd runs jobs as their user and must be root; munged and slurmctld run as root
# here). Installs slurm-wlm and munge with apt-get when they are missing. Skips (77) when it cannot
# (not root, no apt) or when ../shared (tokenizer, prompts) is absent; with CI=true set, those are
# failures instead. Every daemon and job it starts is stopped by PID on exit; nothing else is touched.
# Work files are kept under $TMPDIR/plateau-slurm.* when a check fails (always with PLATEAU_SLURM_KEEP=1).
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=${PLATEAU_SRC_DIR:-$(cd "$here/../.." && pwd)}
bin=${PLATEAU_BIN:-$src/build/plateau}
shared=${PLATEAU_SHARED_DIR:-$src/../shared}
PY=${PYTHON:-/usr/bin/python3}
strict=0
[[ -n ${CI:-} && ${CI:-} != false && ${CI:-} != 0 ]] && strict=1
# shellcheck source=tests/cluster/slurm_lib.sh
source "$here/slurm_lib.sh"

say() { echo "slurm_ci: $*"; }
cannot() { # a missing prerequisite: skip, or fail under CI
    if ((strict)); then
        say "FAIL (CI): $*"
        exit 1
    fi
    say "SKIP: $*"
    exit 77
}
failures=0
fail() {
    say "FAIL: $*"
    failures=$((failures + 1))
}

[[ -x $bin ]] || { say "FAIL: plateau binary $bin not found (set PLATEAU_BIN)"; exit 1; }
[[ -r $shared/gpt2/vocab.json && -r $shared/data/webtext.valid.jsonl ]] ||
    cannot "$shared (gpt2 tokenizer and data/webtext.valid.jsonl, needed by jobs/smoke.ini) is absent"

# --- Slurm and munge -----------------------------------------------------------------------------
need_install=0
for cmd in sbatch srun scontrol squeue slurmctld slurmd munged; do
    command -v "$cmd" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin command -v "$cmd" >/dev/null 2>&1 || need_install=1
done
export PATH=$PATH:/usr/sbin
if ((need_install)); then
    [[ $(id -u) == 0 ]] || cannot "slurm-wlm/munge are not installed and we are not root to install them"
    command -v apt-get >/dev/null || cannot "slurm-wlm/munge are not installed and there is no apt-get"
    say "installing slurm-wlm munge (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null 2>&1; then
        apt-get update -qq >/dev/null 2>&1
        apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null ||
            cannot "apt-get install slurm-wlm munge failed"
    fi
fi
[[ $(id -u) == 0 ]] || cannot "a private slurmd must run as root (it starts jobs as their owner)"

work=$(mktemp -d "${TMPDIR:-/tmp}/plateau-slurm.XXXXXX")
finish() {
    local rc=$?
    slurm_down
    if ((failures == 0 && rc == 0)) && [[ -z ${PLATEAU_SLURM_KEEP:-} ]]; then
        rm -rf "$work"
    else
        say "work files kept in $work"
    fi
}
trap finish EXIT
trap 'exit 130' INT TERM

# --- a submit dir laid out like a fresh clone's root ---------------------------------------------
# sbatch runs jobs in the submit dir and every path in the scripts and configs is relative to it:
# slurm/ and jobs/ copied from the source tree, build/plateau the binary under test, data/ and the
# smoke model made the way the README says.
root=$work/repo
mkdir -p "$root/build"
cp -r "$src/slurm" "$src/jobs" "$root/"
ln -s "$(realpath "$bin")" "$root/build/plateau"
cd "$root" || exit 1
PLATEAU_DATA=$shared/data/webtext.valid.jsonl bash jobs/fetch-data.sh >/dev/null 2>&1 ||
    { say "FAIL: jobs/fetch-data.sh could not link the prompts"; exit 1; }
model=$(build/plateau config jobs/smoke.ini --get model.path)
[[ -n $model ]] || { say "FAIL: no [model] path in jobs/smoke.ini"; exit 1; }
build/plateau synth "$model" --layers 2 --embd 64 --heads 4 --ctx 32 --vocab-from "$shared/gpt2" >/dev/null ||
    { say "FAIL: plateau synth $model"; exit 1; }

# Argument errors end at once, with the documented codes (no Slurm needed for these).
bash slurm/plateau.sbatch >/dev/null 2>&1
[[ $? == 1 ]] || fail "plateau.sbatch without a config: want exit 1"
bash slurm/plateau.sbatch jobs/no-such.ini >/dev/null 2>&1
[[ $? == 2 ]] || fail "plateau.sbatch with a missing config: want exit 2"
bash slurm/plateau-hooks.sbatch jobs/smoke.ini >/dev/null 2>&1
[[ $? == 1 ]] || fail "plateau-hooks.sbatch outside an array: want exit 1"
# -N 4 --ntasks-per-node=64 without -n: Slurm keeps the script's --ntasks=4 (its environment as sbatch sets it)
err=$(SLURM_NTASKS=4 SLURM_NNODES=4 SLURM_NTASKS_PER_NODE=64 bash slurm/plateau.sbatch jobs/smoke.ini 2>&1 >/dev/null)
[[ $? == 2 && $err == *"this job has 4 tasks, this script's --ntasks default, but --ntasks-per-node=64 on 4 node(s) asks for 256"*"submit with -n 256"* ]] ||
    fail "plateau.sbatch, 4 tasks for 4 nodes x 64: want exit 2 naming -n 256: $err"

t_start=$(date +%s)
slurm_up "$work/cluster" || { say "FAIL: the private Slurm did not come up"; exit 1; }
say "Slurm up in $(($(date +%s) - t_start)) s: node $(sinfo -h -o '%n %c CPUs %m MB' | head -1)"
# Jobs must use the defaults of a fresh clone (build/plateau), not the test's PLATEAU_BIN.
unset PLATEAU_BIN
# -O (oversubscribe): a job asking for more tasks than the node has CPUs would pend forever without it
# (a 1- or 2-CPU CI machine); the partition allows it.
SB=(sbatch --parsable -O --mem-per-cpu=256M --time=10)
log_of() { # the log(s) of job or array ID
    local f
    for f in "slurm-plateau-$1.out" "slurm-merge-$1.out" slurm-plateau-hooks-"$1"_*.out; do [[ -f $f ]] && echo "$f"; done
}
show_log() { local f; for f in "$@"; do [[ -f $f ]] && sed 's/^/    | /' "$f"; done; }

# job_done ID SECONDS NAME: wait for the end; fail (with the log) unless COMPLETED with exit 0.
job_done() {
    local id=$1 limit=$2 name=$3 state
    state=$(slurm_wait_job "$id" "$limit")
    if [[ $state != "COMPLETED " ]]; then
        fail "$name (job $id) ended as '$state' ($(slurm_job_field "$id" ExitCode)); log:"
        show_log $(log_of "$id")
        return 1
    fi
    return 0
}

# same_results A B: every variable bitwise equal, and the global attributes equal except the ones
# that describe the run (created, history, speed, ranks, and config, which holds run-only keys like the output
# path). Prints the differences.
same_results() {
    "$PY" - "$1" "$2" <<'EOF'
import sys
import netCDF4
a, b = (netCDF4.Dataset(p) for p in sys.argv[1:3])
bad = sorted(set(a.variables) ^ set(b.variables))
for k in set(a.variables) & set(b.variables):
    x, y = a[k][...], b[k][...]
    if a[k].dtype is str or getattr(x, "dtype", None) is object:
        same = list(x) == list(y)
    else:
        same = x.shape == y.shape and x.dtype == y.dtype and x.tobytes() == y.tobytes()
    if not same:
        bad.append(k)
skip = {"created", "history", "evals_per_second", "n_ranks", "config"}
for k in (set(a.ncattrs()) | set(b.ncattrs())) - skip:
    if str(a.__dict__.get(k)) != str(b.__dict__.get(k)):
        bad.append("@" + k)
print(" ".join(sorted(bad)))
sys.exit(1 if bad else 0)
EOF
}

# --- 1. plateau.sbatch with jobs/smoke.ini on 2 ranks ---------------------------------------------
a=$("${SB[@]}" -n 2 slurm/plateau.sbatch jobs/smoke.ini) || { fail "sbatch plateau.sbatch"; exit 1; }
if job_done "$a" 120 "smoke job"; then
    "$PY" - results/smoke.nc <<'EOF' || fail "results/smoke.nc is not the smoke sweep's result"
import sys
import numpy as np
import xarray as xr
ds = xr.open_dataset(sys.argv[1])
assert ds.attrs["n_ranks"] == 2, ds.attrs["n_ranks"]
assert ds.attrs["hook"] == "blocks.1.hook_resid_pre", ds.attrs["hook"]
assert list(ds["base"].values) == ["real", "synthetic"], ds["base"].values
assert set(ds["direction"].values) == {"real_other", "cov_random", "isotropic"}, ds["direction"].values
assert ds.sizes["prompt"] == 16 and ds.sizes["sample"] == 2 and ds.sizes["alpha"] == 21, dict(ds.sizes)
for m in ("kl", "jsd", "l2", "cosine"):
    assert np.isfinite(ds[m].values).all(), m
# alpha = 0 is the unperturbed run: no divergence, no distance, cosine 1
at0 = {m: ds[m].isel(alpha=0).values for m in ("kl", "jsd", "l2", "cosine")}
assert np.abs(at0["kl"]).max() < 1e-5 and np.abs(at0["jsd"]).max() < 1e-5, (at0["kl"].max(), at0["jsd"].max())
assert np.abs(at0["l2"]).max() < 1e-3 and np.abs(at0["cosine"] - 1).max() < 1e-5
assert (ds["kl"].values >= -1e-6).all() and ds["kl"].isel(alpha=-1).values.max() > 0
print("slurm_ci: ok   smoke job: results/smoke.nc opens with xarray: %s" % dict(ds.sizes))
EOF
    grep -q "plateau.sbatch: done" "$(log_of "$a")" || fail "smoke job log lacks 'plateau.sbatch: done'"
fi

# --- 1b. the same bits outside Slurm and with -c 2 ------------------------------------------------------
# plateau sets OpenBLAS's thread count from [run] threads (default 1) itself: a run by hand in one
# process (OpenBLAS's own default: a thread per core) and a job with -c 2 give the 2-rank job's bits.
if [[ -f results/smoke.nc ]]; then
    if env -u OPENBLAS_NUM_THREADS -u OMP_NUM_THREADS build/plateau run jobs/smoke.ini --quiet -o results/single.nc; then
        if diff=$(same_results results/smoke.nc results/single.nc); then
            say "ok   one process outside Slurm (OpenBLAS's default threads): bitwise the 2-rank job's result"
        else
            fail "one process outside Slurm differs from the 2-rank job in: $diff"
        fi
    else
        fail "plateau run jobs/smoke.ini by hand"
    fi
    c2=$("${SB[@]}" -n 1 -c 2 slurm/plateau.sbatch jobs/smoke.ini -o results/c2.nc) || fail "sbatch -c 2"
    if job_done "$c2" 120 "-c 2 job"; then
        if diff=$(same_results results/smoke.nc results/c2.nc); then
            say "ok   -n 1 -c 2: bitwise the -n 2 -c 1 job's result"
        else
            fail "-n 1 -c 2 differs from -n 2 -c 1 in: $diff"
        fi
        grep -q "cpus-per-task is 2 but \[run\] threads is 1" "$(log_of "$c2")" ||
            fail "-c 2 job: the script did not note that -c differs from [run] threads"
    fi
fi

# --- 2. the hooks array (2 tasks, 1 rank each) and merge -------------------------------------------
# The merge runs as a dependent job, the way the array script's header shows.
b=$("${SB[@]}" -n 1 --array=0-1 slurm/plateau-hooks.sbatch jobs/smoke.ini) || { fail "sbatch plateau-hooks.sbatch"; exit 1; }
files=$(echo results/smoke.hook{0..1}.nc)
bm=$("${SB[@]}" -n 1 -o slurm-merge-%j.out --dependency=afterok:"$b" \
    --wrap "build/plateau merge results/smoke.hooks.nc $files") || fail "sbatch the merge job"
if job_done "$b" 120 "hooks array"; then
    if job_done "$bm" 60 "merge job (afterok the array)"; then
        "$PY" - <<'EOF' || fail "merged file does not stack the array's outputs"
import numpy as np
import xarray as xr
m = xr.open_dataset("results/smoke.hooks.nc")
parts = [xr.open_dataset(f"results/smoke.hook{i}.nc") for i in (0, 1)]
hooks = [p.attrs["hook"] for p in parts]
assert hooks == ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre"], hooks
assert list(m["hook"].values) == hooks, m["hook"].values
assert m.attrs["swept_key"] == "perturb.hook", m.attrs.get("swept_key")
for name in parts[0].data_vars:
    if name in ("tokens", "partner", "prompt_text") and "hook" not in m[name].dims:
        assert (m[name].values == parts[0][name].values).all(), name
        continue
    for h, p in enumerate(parts):
        assert m[name].isel(hook=h).values.tobytes() == p[name].values.tobytes(), (name, h)
# different hooks really give different curves
assert not np.array_equal(parts[0]["kl"].values, parts[1]["kl"].values)
print("slurm_ci: ok   hooks array: 2 tasks, merged along hook %s" % hooks)
EOF
    else
        fail "plateau merge of the array's outputs"
    fi
    # Task 1 is the smoke sweep (hook blocks.1) on 1 rank: bitwise the 2-rank job's result.
    if [[ -f results/smoke.nc ]] && ! diff=$(same_results results/smoke.nc results/smoke.hook1.nc); then
        fail "array task 1 (1 rank) differs from the smoke job (2 ranks) in: $diff"
    fi
fi

# --- -n with --ntasks-per-node above it: a cap per node the user chose, run as asked (Slurm's own environment
# through the check above), to the uninterrupted bits
f=$("${SB[@]}" -N 1 --ntasks-per-node=2 -n 1 slurm/plateau.sbatch jobs/smoke.ini -o results/capped.nc) ||
    fail "sbatch (-n 1 --ntasks-per-node=2)"
if job_done "$f" 120 "-n 1 --ntasks-per-node=2" && diff=$(same_results results/smoke.nc results/capped.nc); then
    say "ok   -n 1 with --ntasks-per-node=2: a cap per node, run as asked; bitwise the smoke result"
else
    fail "-n 1 with --ntasks-per-node=2: ${diff:-the job failed}"
fi

# --- 3. preemption: SIGTERM to the batch shell (what --signal=B:TERM@120 does), 2 ranks -----------
# The run checkpoints often (run.checkpoint_every, a run-only key) so the signal lands mid-run: it is
# sent as soon as the first checkpoint exists. The script must forward it, plateau checkpoint and
# exit 75, the script requeue the job, and the requeued job resume to the uninterrupted bits.
preempt() { # NAME NTASKS HOW(batch|step)
    local name=$1 n=$2 how=$3 id out=results/$1.nc t0 state
    id=$("${SB[@]}" -n "$n" slurm/plateau.sbatch jobs/smoke.ini -o "$out" --set run.checkpoint_every=0.2) ||
        { fail "$name: sbatch"; return; }
    t0=$(date +%s)
    while [[ ! -e $out.ckpt ]] && (($(date +%s) - t0 < 120)); do
        [[ $(slurm_job_field "$id" JobState) =~ ^(COMPLETED|FAILED|CANCELLED)$ ]] && break
        sleep 0.1
    done
    if [[ ! -e $out.ckpt ]]; then
        fail "$name: no checkpoint appeared while the job ran (state $(slurm_job_field "$id" JobState))"
        show_log $(log_of "$id")
        return
    fi
    case $how in
    batch) scancel --batch --signal=TERM "$id" ;;  # the time-limit warning of --signal=B:TERM@120
    step) scancel --signal=TERM "$id" ;;           # every rank gets SIGTERM itself
    requeue) scontrol requeue "$id" ;;             # an admin's or a preemption's requeue: SIGTERM to all
    esac
    # Requeued jobs are held (BeginTime, about 2 minutes here); release it so the test stays short.
    t0=$(date +%s)
    while (($(date +%s) - t0 < 60)); do
        state=$(slurm_job_field "$id" JobState)
        [[ $state == PENDING || $state =~ ^(COMPLETED|FAILED|CANCELLED)$ ]] && break
        sleep 0.2
    done
    if [[ $state != PENDING ]]; then
        fail "$name: after SIGTERM the job is $state, not requeued (exit $(slurm_job_field "$id" ExitCode))"
        show_log $(log_of "$id")
        return
    fi
    # Slurm revokes the first run's credential at the requeue and compares whole seconds: a new start
    # within the same second is refused ("Job credential revoked") and the job fails. Wait until the
    # node has finished cleaning up and the clock has moved past the revocation.
    t0=$(date +%s)
    while (($(date +%s) - t0 < 30)) && ! scontrol show node 2>/dev/null | grep -Eq "State=IDLE "; do
        sleep 0.2
    done
    sleep 1.1
    scontrol update JobId="$id" StartTime=now
    job_done "$id" 120 "$name" || return
    local log
    log=$(log_of "$id")
    local wants=("found checkpoint $out.ckpt: resuming" "resuming from $out.ckpt")
    case $how in
    # The batch shell passes SIGTERM on as SIGUSR1 (srun would turn SIGTERM into SIGKILL).
    batch) wants+=("got SIGTERM: sending SIGUSR1" "SIGUSR1 received" "checkpointed; job $id requeued") ;;
    step) wants+=("SIGTERM received" "checkpointed; job $id requeued") ;;
    # Slurm requeues by itself here; the script must not requeue a second time.
    requeue) wants+=("not requeued here") ;;
    esac
    for want in "${wants[@]}"; do
        grep -Eq "$want" "$log" || fail "$name: log lacks '$want'"
    done
    [[ $(slurm_job_field "$id" Restarts) == 1 ]] || fail "$name: Restarts=$(slurm_job_field "$id" Restarts), want 1"
    [[ ! -e $out.ckpt ]] || fail "$name: the finished run left its checkpoint"
    local diff
    if diff=$(same_results results/smoke.nc "$out"); then
        say "ok   $name: SIGTERM ($how) -> checkpoint, exit 75, requeued, resumed; bitwise the uninterrupted result"
    else
        fail "$name: resumed result differs from the uninterrupted one in: $diff"
        show_log "$log"
    fi
}
preempt preempt2 2 batch
preempt preempt1 1 step
# Requeue from outside: every process gets SIGTERM at once, srun included, which kills the ranks
# (SIGKILL) while they checkpoint; whatever checkpoint survives, the requeued job resumes from it.
preempt requeued 2 requeue

# --- 4. scancel: the ranks checkpoint, but a cancelled job must stay cancelled ----------------------
c=$("${SB[@]}" -n 2 slurm/plateau.sbatch jobs/smoke.ini -o results/cancelled.nc --set run.checkpoint_every=0.2) ||
    fail "sbatch (cancel)"
t0=$(date +%s)
while [[ ! -e results/cancelled.nc.ckpt ]] && (($(date +%s) - t0 < 120)); do
    [[ $(slurm_job_field "$c" JobState) =~ ^(COMPLETED|FAILED|CANCELLED)$ ]] && break
    sleep 0.1
done
scancel "$c"
state=$(slurm_wait_job "$c" 60)
sleep 3 # a wrongful requeue by the script would show up as PENDING now
state=$(slurm_job_field "$c" JobState)
if [[ $state == CANCELLED && $(slurm_job_field "$c" Restarts) == 0 && -e results/cancelled.nc.ckpt &&
    ! -e results/cancelled.nc ]]; then
    say "ok   scancel: job stays CANCELLED, checkpoint kept, no output"
else
    fail "scancel: state $state, restarts $(slurm_job_field "$c" Restarts), checkpoint" \
        "$([[ -e results/cancelled.nc.ckpt ]] && echo kept || echo missing)"
    show_log $(log_of "$c")
fi

# --- 5. SIGKILL of a worker rank --------------------------------------------------------------------
k=$("${SB[@]}" -n 3 slurm/plateau.sbatch jobs/smoke.ini -o results/killed.nc --set run.checkpoint_every=0.2) ||
    fail "sbatch (kill)"
t0=$(date +%s)
while [[ ! -e results/killed.nc.ckpt ]] && (($(date +%s) - t0 < 120)); do
    [[ $(slurm_job_field "$k" JobState) =~ ^(COMPLETED|FAILED|CANCELLED)$ ]] && break
    sleep 0.1
done
pid=$(scontrol listpids "$k" 2>/dev/null | awk '$3 == "0" && $5 == "1" {print $1}')
if [[ -z $pid ]]; then
    fail "SIGKILL: no PID of rank 1 (state $(slurm_job_field "$k" JobState))"
else
    ranks=$(scontrol listpids "$k" | awk '$3 == "0" {print $1}')
    kill -KILL "$pid"
    t_kill=$(date +%s)
    state=$(slurm_wait_job "$k" 30)
    dt=$(($(date +%s) - t_kill))
    alive=
    for r in $ranks; do kill -0 "$r" 2>/dev/null && alive+=" $r"; done
    log=$(log_of "$k")
    ((dt <= 15)) || fail "SIGKILL: the job took $dt s to end (limit 15)"
    [[ -z $alive ]] || fail "SIGKILL: ranks still alive:$alive"
    [[ $state == "FAILED " ]] || fail "SIGKILL: job state '$state', want FAILED"
    [[ $(slurm_job_field "$k" ExitCode) == 3:0 ]] || fail "SIGKILL: exit $(slurm_job_field "$k" ExitCode), want 3:0"
    grep -q "task 1: Killed" "$log" || fail "SIGKILL: log does not name the killed rank (task 1)"
    grep -q "a rank was killed by signal 9" "$log" || fail "SIGKILL: no plateau.sbatch fault message"
    [[ ! -e results/killed.nc ]] || fail "SIGKILL: an output file was written"
    if [[ -e results/killed.nc.ckpt ]]; then
        # The checkpoint is intact: resuming it (1 process, no Slurm) gives the uninterrupted bits.
        if build/plateau run jobs/smoke.ini -o results/killed.nc --resume --quiet &&
            diff=$(same_results results/smoke.nc results/killed.nc); then
            say "ok   SIGKILL of rank 1: every rank gone $dt s later, exit 3, checkpoint resumes to the same bits"
        else
            fail "SIGKILL: resuming the checkpoint did not give the uninterrupted result ($diff)"
        fi
    else
        fail "SIGKILL: the checkpoint is gone"
    fi
    ((failures)) && show_log "$log"
fi

say "total $(($(date +%s) - t_start)) s, $failures failure(s)"
((failures == 0))
