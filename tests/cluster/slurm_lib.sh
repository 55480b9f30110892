# A private single-node Slurm cluster for tests, started by hand (no systemd).
#
# Source this file, then:  slurm_up DIR  ...  slurm_down   (slurm_down also runs from an EXIT trap
# the caller installs). Everything lives under DIR: munge key and socket, slurm.conf, state, spool,
# logs. The daemons listen on free ports picked at start, so a second cluster (a concurrent test run,
# or a site's real Slurm) is never disturbed. Client commands find this cluster through SLURM_CONF,
# which slurm_up exports; jobs inherit it (sbatch exports the environment by default).
#
# Facts this rests on (measured on Debian 12, Slurm 22.05, Open MPI 4.1.4):
#  - munged, slurmctld and slurmd run fine as root in the foreground (-F / -D), so $! is their PID
#    and we stop exactly those processes;
#  - proctrack/linuxproc + task/none need no cgroups (containers often have none writable);
#  - `srun --mpi=pmix` starts Open MPI ranks; pmi2 does not work with Debian's Open MPI;
#  - a job asking for more tasks than the node has CPUs pends forever unless submitted with -O;
#  - srun answers SIGTERM by killing its tasks ("forcing job termination"); SIGUSR1 it forwards;
#  - a task killed by a signal makes the PMIx plugin cancel the whole step within ~2 s;
#  - a requeued job is held about 2.5 minutes (Reason=BeginTime) unless released with
#    `scontrol update JobId=ID StartTime=now`.

SLURM_LIB_PIDS=()
SLURM_LIB_DIR=
SLURM_LIB_WATCHDOG=

slurm_log() { echo "slurm_ci: $*" >&2; }

# Print a TCP port nobody listens on (the kernel picks it).
slurm_free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# slurm_wait_for SECONDS CMD...: poll CMD once a second until it succeeds; 1 on timeout.
slurm_wait_for() {
    local limit=$1; shift
    local t
    for ((t = 0; t < limit; t++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 1
    done
    return 1
}

slurm_up() {
    local dir=$1
    SLURM_LIB_DIR=$dir
    mkdir -p "$dir"/munge "$dir"/ctld "$dir"/spool "$dir"/log
    chmod 700 "$dir"/munge

    # munge: own key, own socket; --force because the test dir may sit below a world-writable /tmp.
    dd if=/dev/urandom of="$dir"/munge/munge.key bs=1024 count=1 status=none
    chmod 400 "$dir"/munge/munge.key
    munged -F --force --key-file="$dir"/munge/munge.key --socket="$dir"/munge/munge.sock \
        --pid-file="$dir"/munge/munged.pid --seed-file="$dir"/munge/seed \
        --log-file="$dir"/log/munged.log >/dev/null 2>&1 &
    SLURM_LIB_PIDS+=($!)
    if ! slurm_wait_for 10 test -S "$dir"/munge/munge.sock; then
        slurm_log "munged did not start; log:"; cat "$dir"/log/munged.log >&2; return 1
    fi

    # The node's real shape, so slurmd registers without a mismatch (slurmd -C prints one line).
    local node_line host cpus mem
    node_line=$(slurmd -C | head -1)
    host=$(sed -n 's/^NodeName=\([^ ]*\).*/\1/p' <<<"$node_line")
    cpus=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$node_line")
    mem=$(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$node_line")
    SLURM_LIB_CPUS=$cpus
    local ctld_port slurmd_port
    ctld_port=$(slurm_free_port)
    slurmd_port=$(slurm_free_port)
    while [[ $slurmd_port == "$ctld_port" ]]; do slurmd_port=$(slurm_free_port); done

    cat >"$dir"/slurm.conf <<EOF
ClusterName=plateauci
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.sock
StateSaveLocation=$dir/ctld
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=3600
KillWait=30
Waittime=0
JobRequeue=1
PlugStackConfig=$dir/plugstack.conf
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=ci Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
    : >"$dir"/plugstack.conf
    export SLURM_CONF=$dir/slurm.conf

    slurmctld -D -i -f "$SLURM_CONF" >"$dir"/log/slurmctld.out 2>&1 &
    SLURM_LIB_PIDS+=($!)
    slurmd -D -f "$SLURM_CONF" >"$dir"/log/slurmd.out 2>&1 &
    SLURM_LIB_PIDS+=($!)

    # If the caller dies without running slurm_down (SIGKILL, e.g. a ctest timeout), a watchdog
    # cancels the jobs and stops these daemons, by PID, once the caller's PID is gone.
    (
        trap '' INT TERM HUP
        while kill -0 $$ 2>/dev/null; do sleep 2; done
        scancel --full --quiet --partition=ci 2>/dev/null
        sleep 3
        for ((i = ${#SLURM_LIB_PIDS[@]} - 1; i >= 0; i--)); do kill -TERM "${SLURM_LIB_PIDS[i]}" 2>/dev/null; done
    ) </dev/null >/dev/null 2>&1 &
    SLURM_LIB_WATCHDOG=$!

    # Up when the node is idle (registered and usable).
    if ! slurm_wait_for 30 slurm_node_idle; then
        slurm_log "the node did not come up; logs:"
        tail -n 30 "$dir"/log/*.log "$dir"/log/*.out >&2
        return 1
    fi
    return 0
}

slurm_node_idle() {
    [[ $(sinfo -h -o %t 2>/dev/null) == idle* ]]
}

# Stop what slurm_up started: cancel our jobs first (so no slurmstepd is left behind), then the
# daemons, each by the PID we recorded, newest first.
slurm_down() {
    [[ -n $SLURM_LIB_DIR ]] || return 0
    if [[ -n ${SLURM_LIB_WATCHDOG:-} ]]; then
        kill -KILL "$SLURM_LIB_WATCHDOG" 2>/dev/null
        wait "$SLURM_LIB_WATCHDOG" 2>/dev/null
        SLURM_LIB_WATCHDOG=
    fi
    if ((${#SLURM_LIB_PIDS[@]} >= 3)); then
        scancel --full --quiet --partition=ci 2>/dev/null
        slurm_wait_for 40 slurm_no_jobs_running ||
            slurm_log "jobs still running after scancel: $(squeue -h -o '%i %T' 2>/dev/null | tr '\n' ' ')"
    fi
    local i pid
    for ((i = ${#SLURM_LIB_PIDS[@]} - 1; i >= 0; i--)); do
        pid=${SLURM_LIB_PIDS[i]}
        kill -TERM "$pid" 2>/dev/null || continue
        slurm_wait_for 10 bash -c "! kill -0 $pid" || { slurm_log "PID $pid ignored TERM; KILL"; kill -KILL "$pid" 2>/dev/null; }
        wait "$pid" 2>/dev/null
    done
    SLURM_LIB_PIDS=()
    SLURM_LIB_DIR=
}

slurm_no_jobs_running() {
    [[ -z $(squeue -h -t RUNNING,COMPLETING,CONFIGURING -o %i 2>/dev/null) ]]
}

# slurm_job_field JOBID FIELD: one field of `scontrol show job` (JobState, ExitCode, Restarts, ...).
slurm_job_field() {
    scontrol -o show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1
}

# slurm_wait_job JOBID SECONDS: wait until the job (every array task) has ended; prints final state.
slurm_wait_job() {
    local id=$1 limit=$2 t states
    for ((t = 0; t < limit; t++)); do
        states=$(scontrol -o show job "$id" 2>/dev/null | tr ' ' '\n' | sed -n 's/^JobState=//p' | sort -u | tr '\n' ' ')
        if [[ -n $states ]] && ! grep -Eq 'PENDING|RUNNING|CONFIGURING|COMPLETING|REQUEUED|SUSPENDED|RESIZING' <<<"$states"; then
            echo "$states"
            return 0
        fi
        sleep 1
    done
    echo "TIMEOUT($states)"
    return 1
}
