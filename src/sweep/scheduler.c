/* The MPI scheduler (the only file of plateau that talks MPI).
 *
 * Phases, every rank: parse the config, load the model, get the prompts from rank 0, run the clean
 * forwards of a contiguous share of all prompts (sweep + covariance); rank 0 gathers the
 * activations, fits mu and Sigma and broadcasts them. Then rank 0 hands out work dynamically, a
 * batch of consecutive units at a time (a batch is one fast-path call; see PL_BATCH_ROWS). A worker
 * holds one batch at a time: a batch takes far longer than the round trip for the next, and a deeper
 * queue leaves batches stranded behind a busy rank at the end of the run. Rank 0 computes
 * batches too, between rounds of messages, so one process does the whole job alone and two ranks
 * are twice one. Batches are fixed by the config, never by the number of ranks, so every value is
 * bitwise the same on any number of ranks.
 *
 * Rank 0 computes its batches on a second thread (the local worker) so that its main thread, the
 * only one that calls MPI, answers messages, signals and silent ranks at once even while a batch
 * takes seconds: mpirun follows its SIGTERM with SIGKILL about a second later.
 *
 * Faults: rank 0 tracks when it last heard from each worker. A worker with units outstanding that
 * has been silent for worker_timeout + 2 x the longest gap seen so far (or the unit time estimated
 * from the clean forwards) is declared lost: rank 0 names it and its unit, writes the checkpoint and
 * aborts with PL_EXIT_FAULT. A signal (SIGTERM, SIGINT, SIGUSR1) on any rank makes rank 0 write the
 * checkpoint at once, stop the workers, collect their last results, write it again, and every rank
 * exits with PL_EXIT_PREEMPTED. A batch in an `optimized` optimisation is not finished then but given
 * up at its next optimiser step, its optimisation's state kept for --resume ("optimisations in
 * flight" below).
 */
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cblas.h>
#include <dirent.h>
#include <mpi.h>
#include <pthread.h>

#include "plateau/error.h"
#include "plateau/fileio.h"
#include "plateau/forward.h"
#include "plateau/grad.h"
#include "plateau/hash.h"
#include "plateau/model.h"
#include "plateau/watch.h"
#include "sweep_internal.h"

enum { TAG_UNIT = 1, TAG_WORKER = 2, TAG_STATES = 4 };
/* MSG_BAD_INPUT: a batch met bad input (non-finite values, a changed model file): the run stops
 * with PL_EXIT_INPUT after the other ranks' batches are in. MSG_ERROR: anything else, a fault. */
enum { MSG_RESULT = 1, MSG_ERROR, MSG_SIGNALLED, MSG_BYE, MSG_BAD_INPUT, MSG_OPTSTATE, MSG_PREEMPTED };
#define QUEUE_DEPTH 1 /* batches handed to a worker before it returns one */
#define STOP_UNIT (-1L)
#define MAX_ERROR_TEXT 2048

static volatile sig_atomic_t g_signal = 0;
/* The run is stopping (a signal here, or rank 0 stopping every rank on one): an optimisation under way
 * saves its state and gives its batch up (pl_opt_store.stopping). */
static volatile sig_atomic_t g_stop = 0;

/* What every worker is computing, kept ready as text so that the signal handler can print it at
 * once: after a rank dies, mpirun's SIGTERM to the others is followed by SIGKILL about a second
 * later, and rank 0's main thread may be busy then (a checkpoint's fsync). Two buffers: the main
 * thread rebuilds one while the handler may read the other. Only rank 0 fills them. */
static char g_work_text[2][8192];
static volatile sig_atomic_t g_work_len[2];
static volatile sig_atomic_t g_work_current = 0;
static volatile sig_atomic_t g_work_told = 0;

static void on_signal(int sig)
{
    g_signal = sig;
    g_stop = 1;
    if (!g_work_told) {
        g_work_told = 1;
        int i = g_work_current;
        if (g_work_len[i] > 0) {
            ssize_t rc = write(STDERR_FILENO, g_work_text[i], (size_t)g_work_len[i]);
            (void)rc;
        }
    }
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

static const char *signal_name(int sig)
{
    return sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : sig == SIGUSR1 ? "SIGUSR1" : "a signal";
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static void nap_for(double seconds)
{
    struct timespec ts = {(time_t)seconds, (long)(1e9 * (seconds - (double)(time_t)seconds))};
    nanosleep(&ts, NULL);
}

static void nap(void)
{
    nap_for(1e-3); /* idle polling, far below a batch's time */
}

/* A condition variable whose timed waits run on CLOCK_MONOTONIC (a wall-clock step neither cuts
 * nor stretches them). */
static void cond_init_monotonic(pthread_cond_t *c)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(c, &attr);
    pthread_condattr_destroy(&attr);
}

/* Wait on C (its mutex M held) for at most SECONDS, or until it is signalled. */
static void cond_wait_for(pthread_cond_t *c, pthread_mutex_t *m, double seconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long ns = ts.tv_nsec + (long)(1e9 * seconds);
    ts.tv_sec += ns / 1000000000L;
    ts.tv_nsec = ns % 1000000000L;
    pthread_cond_timedwait(c, m, &ts);
}

typedef struct setup_agent setup_agent;

typedef struct {
    int rank, size;
    int quiet;
    pl_sweep_config cfg;
    pl_model *model;
    pl_sweep sw;
    char model_sha[65], data_sha[65];
    char *config_text, *hashed_text;
    char sigma_note[256];
    double unit_estimate; /* seconds, from the clean forwards */
    char *command_line;   /* "plateau run ARGS" (the output's history) */
    int ckpt_lock;        /* rank 0: the descriptor holding CHECKPOINT.lock, or -1 */
    setup_agent *agent;   /* during setup: the main thread that runs its collectives */
    MPI_Comm node;        /* the ranks sharing this rank's memory (MPI_COMM_TYPE_SHARED), or MPI_COMM_NULL */
    int node_rank;
    MPI_Win window;       /* the node's shared weight window, or MPI_WIN_NULL */
    pl_weight_arena arena; /* the model's view of it (base NULL: private weights) */
} run_state;

/* ------------------------------------------------------------ setup's watch
 *
 * Setup runs on a thread of its own (the setup thread); the main thread, the only one that calls MPI,
 * is its agent: it runs setup's collectives for it as nonblocking ones (MPI_Iallgather, MPI_Ibcast,
 * ...) polled with MPI_Test, and meanwhile exchanges heartbeats (rank 0 with every worker, every
 * 0.5 s) and watches them. A rank whose heartbeats stop for worker_timeout + SETUP_GRACE s is lost,
 * whatever setup is doing (the clean forwards, the Sigma fit, a collective): rank 0 names it, a
 * worker names rank 0, and the job is aborted with PL_EXIT_FAULT. Without this a stopped rank would
 * leave every other rank in a blocking collective forever. */

enum { TAG_ALIVE = 3 };
#define SETUP_HEARTBEAT 0.5 /* seconds between heartbeats */
#define SETUP_GRACE 5.0     /* beyond worker_timeout: a loaded node's scheduling delays */
#define SETUP_TIMEOUT_DEFAULT 10.0 /* worker_timeout before the config is read ([run] worker_timeout's default) */

enum { COLL_NONE, COLL_ALLGATHER, COLL_BCAST, COLL_ALLREDUCE_MAX, COLL_GATHERV, COLL_ABORT, COLL_WINDOW };

typedef struct {
    int kind;
    const void *send;
    void *recv;
    int count;
    MPI_Datatype type;
    const int *counts, *displs; /* gatherv at rank 0 */
} collective;

struct setup_agent {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    collective job;      /* posted by the setup thread, run by the main thread */
    int posted, done;
    int finished, code;  /* the setup thread's end and its exit code */
    double timeout;      /* worker_timeout, once the config is read */
    const char *phase;   /* what setup is doing, for the messages */
};

/* Setup thread: have the main thread run collective J, and wait for it. */
static void agent_run(run_state *st, const collective *j)
{
    setup_agent *a = st->agent;
    pthread_mutex_lock(&a->lock);
    a->job = *j;
    a->posted = 1;
    a->done = 0;
    pthread_cond_broadcast(&a->wake);
    while (!a->done)
        pthread_cond_wait(&a->wake, &a->lock);
    a->posted = 0;
    pthread_mutex_unlock(&a->lock);
}

static void setup_phase(run_state *st, const char *phase)
{
    pthread_mutex_lock(&st->agent->lock);
    st->agent->phase = phase;
    pthread_mutex_unlock(&st->agent->lock);
}

static void coll_bcast(run_state *st, void *buf, int count, MPI_Datatype type)
{
    collective j = {.kind = COLL_BCAST, .recv = buf, .count = count, .type = type};
    agent_run(st, &j);
}

static void coll_allreduce_max(run_state *st, void *buf, MPI_Datatype type)
{
    collective j = {.kind = COLL_ALLREDUCE_MAX, .recv = buf, .count = 1, .type = type};
    agent_run(st, &j);
}

/* The setup thread cannot call MPI_Abort itself (only the main thread calls MPI). */
static void setup_abort(run_state *st)
{
    collective j = {.kind = COLL_ABORT};
    agent_run(st, &j);
}

/* The node's shared weight window (COLL_WINDOW: blocking, on the main thread; the node's ranks
 * arrive together, from an all_ok). */
typedef struct {
    run_state *st;
    size_t bytes;       /* in: what the converted weights take */
    char *base;         /* out: the window, 64-byte aligned */
    int ok;
    char message[256];  /* why not (the setup thread records it: messages are per thread) */
} window_job;

static void window_allocate(window_job *w)
{
    run_state *st = w->st;
    int rc = MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, st->rank, MPI_INFO_NULL, &st->node);
    int node_size = 1, fullest = 1;
    if (rc == MPI_SUCCESS) {
        MPI_Comm_set_errhandler(st->node, MPI_ERRORS_RETURN);
        MPI_Comm_rank(st->node, &st->node_rank);
        MPI_Comm_size(st->node, &node_size);
        rc = MPI_Allreduce(&node_size, &fullest, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    }
    /* A rank alone on every node shares nothing: each keeps its own copy, as --dry-run counts it (and a
     * small /dev/shm cannot fail the run). Decided by the fullest node, so every rank decides alike. */
    if (rc == MPI_SUCCESS && fullest == 1) {
        MPI_Comm_free(&st->node); /* a series opens one per model */
        w->ok = 1;
        w->base = NULL;
        return;
    }
    if (rc == MPI_SUCCESS) {
        MPI_Info info;
        MPI_Info_create(&info);
        MPI_Info_set(info, "alloc_shared_noncontig", "true"); /* all of it is the first rank's */
        void *base = NULL;
        rc = MPI_Win_allocate_shared(st->node_rank == 0 ? (MPI_Aint)w->bytes + 64 : 0, 1, info, st->node, &base,
                                     &st->window);
        MPI_Info_free(&info);
        MPI_Aint size = 0;
        int unit;
        if (rc == MPI_SUCCESS)
            rc = MPI_Win_shared_query(st->window, 0, &size, &unit, &base);
        if (rc == MPI_SUCCESS && (size_t)size < w->bytes + 64)
            rc = MPI_ERR_SIZE;
        w->base = base ? (char *)base + (64 - (uintptr_t)base % 64) % 64 : NULL;
    }
    w->ok = rc == MPI_SUCCESS;
    if (!w->ok) {
        char text[MPI_MAX_ERROR_STRING];
        int len = 0;
        MPI_Error_string(rc, text, &len);
        snprintf(w->message, sizeof w->message, "rank %d: cannot allocate the node's shared weight window of %zu "
                 "bytes (MPI_Win_allocate_shared: %.*s); [run] shared_weights = false keeps a copy per rank",
                 st->rank, w->bytes, len, text);
    }
}

static MPI_Request agent_start(const run_state *st, const collective *j)
{
    MPI_Request req = MPI_REQUEST_NULL;
    switch (j->kind) {
    case COLL_ALLGATHER:
        MPI_Iallgather(j->send, j->count, j->type, j->recv, j->count, j->type, MPI_COMM_WORLD, &req);
        break;
    case COLL_BCAST:
        MPI_Ibcast(j->recv, j->count, j->type, 0, MPI_COMM_WORLD, &req);
        break;
    case COLL_ALLREDUCE_MAX:
        MPI_Iallreduce(MPI_IN_PLACE, j->recv, j->count, j->type, MPI_MAX, MPI_COMM_WORLD, &req);
        break;
    case COLL_GATHERV:
        MPI_Igatherv(j->send, j->count, j->type, j->recv, j->counts, j->displs, j->type, 0, MPI_COMM_WORLD, &req);
        break;
    case COLL_WINDOW: /* blocking; MPI_REQUEST_NULL tests as done */
        window_allocate(j->recv);
        break;
    default:
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, PL_EXIT_FAULT);
    }
    (void)st;
    return req;
}

typedef struct {
    run_state *st;
    double *last_heard; /* [size]: when each peer was last heard from */
    int *closed;        /* [size]: the peer said its setup is over (no more heartbeats from it) */
    double last_sent;
} heartbeats;

static void heartbeat_send(heartbeats *h, int value)
{
    static const int alive = 0, over = 1; /* sent buffers must outlive the (freed) requests */
    const run_state *st = h->st;
    for (int r = 0; r < st->size; r++) {
        if (r == st->rank || (st->rank != 0 && r != 0))
            continue;
        MPI_Request req;
        MPI_Isend(value ? &over : &alive, 1, MPI_INT, r, TAG_ALIVE, MPI_COMM_WORLD, &req);
        MPI_Request_free(&req);
    }
    h->last_sent = now_seconds();
}

/* Take every heartbeat waiting; send ours when due; a peer silent beyond the limit ends the job. */
static void heartbeat_poll(heartbeats *h)
{
    run_state *st = h->st;
    setup_agent *a = st->agent;
    double t = now_seconds();
    if (t - h->last_sent >= SETUP_HEARTBEAT)
        heartbeat_send(h, 0);
    for (;;) {
        int flag = 0, value;
        MPI_Status status;
        MPI_Iprobe(MPI_ANY_SOURCE, TAG_ALIVE, MPI_COMM_WORLD, &flag, &status);
        if (!flag)
            break;
        MPI_Recv(&value, 1, MPI_INT, status.MPI_SOURCE, TAG_ALIVE, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        h->last_heard[status.MPI_SOURCE] = t;
        if (value == 1)
            h->closed[status.MPI_SOURCE] = 1;
    }
    pthread_mutex_lock(&a->lock);
    double timeout = a->timeout;
    const char *phase = a->phase;
    pthread_mutex_unlock(&a->lock);
    double limit = timeout + SETUP_GRACE;
    for (int r = 0; r < st->size; r++) {
        if (r == st->rank || (st->rank != 0 && r != 0) || h->closed[r] || t - h->last_heard[r] <= limit)
            continue;
        if (st->rank == 0)
            fprintf(stderr, "plateau: rank %d stopped answering during setup (%s): no message for %.1f s (limit %.1f "
                    "s = worker_timeout %.1f s + %.0f s)\n", r, phase, t - h->last_heard[r], limit, timeout,
                    SETUP_GRACE);
        else
            fprintf(stderr, "plateau: rank %d: no word from rank 0 for %.1f s during setup (%s; limit %.1f s = "
                    "worker_timeout %.1f s + %.0f s): aborting\n", st->rank, t - h->last_heard[r], phase, limit,
                    timeout, SETUP_GRACE);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, PL_EXIT_FAULT);
        _exit(PL_EXIT_FAULT);
    }
}

/* The main thread between two polls while no collective runs: until the setup thread posts one or
 * ends (both signal a->wake), or SETUP_IDLE s pass. Polling every millisecond instead cost ~2 % of a
 * core (each wakeup ~30 us of system and MPI time on a virtual machine), taken from the setup
 * thread's clean forwards when the ranks fill the cores. */
#define SETUP_IDLE 0.02 /* seconds; heartbeats go every SETUP_HEARTBEAT */
static void agent_idle(setup_agent *a)
{
    pthread_mutex_lock(&a->lock);
    if (!a->finished && !(a->posted && !a->done))
        cond_wait_for(&a->wake, &a->lock, SETUP_IDLE);
    pthread_mutex_unlock(&a->lock);
}

/* The main thread's side: run the posted collectives until the setup thread ends. */
static void agent_serve(run_state *st, heartbeats *h)
{
    setup_agent *a = st->agent;
    MPI_Request req = MPI_REQUEST_NULL;
    int running = 0;
    for (;;) {
        pthread_mutex_lock(&a->lock);
        int finished = a->finished, posted = a->posted && !a->done;
        collective j = a->job;
        pthread_mutex_unlock(&a->lock);
        if (finished)
            break;
        if (posted && !running) {
            req = agent_start(st, &j);
            running = 1;
        }
        if (running) {
            int flag = 0;
            MPI_Test(&req, &flag, MPI_STATUS_IGNORE);
            if (flag) {
                running = 0;
                pthread_mutex_lock(&a->lock);
                a->done = 1;
                pthread_cond_broadcast(&a->wake);
                pthread_mutex_unlock(&a->lock);
                continue;
            }
        }
        heartbeat_poll(h);
        if (running)
            nap(); /* MPI_Test polls the collective */
        else
            agent_idle(a);
    }
}

/* After setup, on every rank: say so to the peers and wait until each has said so, so that no
 * heartbeat is left in flight when the sweep's messages begin (one sender's messages of one tag
 * arrive in order: the last one is the end). */
static void heartbeats_close(heartbeats *h)
{
    const run_state *st = h->st;
    heartbeat_send(h, 1);
    for (;;) {
        int open = 0;
        for (int r = 0; r < st->size; r++)
            open |= r != st->rank && (st->rank == 0 || r == 0) && !h->closed[r];
        if (!open)
            return;
        h->last_sent = now_seconds(); /* no heartbeat after the end */
        heartbeat_poll(h);
        nap();
    }
}


/* Every rank reports whether its step worked; on failure the failing ranks' messages are printed
 * (rank 0's alone when it failed, so identical failures print once). Returns 1 when all succeeded. */
static int all_ok(run_state *st, int ok)
{
    int *oks = malloc(sizeof(int) * st->size);
    if (!oks) {
        fprintf(stderr, "plateau: rank %d: out of memory\n", st->rank);
        setup_abort(st);
    }
    collective j = {.kind = COLL_ALLGATHER, .send = &ok, .recv = oks, .count = 1, .type = MPI_INT};
    agent_run(st, &j);
    int all = 1;
    for (int r = 0; r < st->size; r++)
        all &= oks[r];
    if (!all && !ok) {
        if (st->rank == 0)
            fprintf(stderr, "plateau: %s\n", pl_error());
        else if (oks[0])
            fprintf(stderr, "plateau: rank %d: %s\n", st->rank, pl_error());
    }
    free(oks);
    return all;
}

/* "batch 7 (units 70..79: unit 70 (prompt ...) .. unit 79 (...))" */
static void batch_name(const pl_sweep *sw, long b, char *out, size_t size)
{
    int n;
    long first = pl_batch_first_unit(sw, b, &n);
    char a[192], z[192];
    pl_unit_name(sw, first, a, sizeof a);
    if (n == 1) {
        snprintf(out, size, "batch %ld: %s", b, a);
        return;
    }
    pl_unit_name(sw, first + n - 1, z, sizeof z);
    snprintf(out, size, "batch %ld, units %ld..%ld: %s .. %s", b, first, first + n - 1, a, z);
}

/* ------------------------------------------------------------ setup */

/* Create the parent directories of PATH (mkdir -p) and prove, now rather than after hours of
 * compute, that a file can be written there (pl_check_output). */
static int prepare_output_dir(const char *path, const char *what)
{
    char *dir = pl_malloc(strlen(path) + 64, "path");
    if (!dir)
        return PL_ERR;
    strcpy(dir, path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        for (char *p = dir + 1; *p; p++) {
            if (*p != '/')
                continue;
            *p = '\0';
            if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
                int err = errno;
                free(dir);
                return pl_fail("%s %s: cannot create directory: %s", what, path, strerror(err));
            }
            *p = '/';
        }
        if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
            int err = errno;
            free(dir);
            return pl_fail("%s %s: cannot create directory: %s", what, path, strerror(err));
        }
    }
    free(dir);
    return pl_check_output(path, what);
}

/* Is TARGET (a file plateau will write) one of the files of MODEL_PATH (a model, or an SAE)? It is a
 * file or a dir of files (config.json, weights, tokenizer files): any of them. */
static int is_model_file(const char *model_path, const char *target, char *which, size_t size)
{
    struct stat sb;
    if (stat(model_path, &sb) != 0)
        return 0;
    if (!S_ISDIR(sb.st_mode)) {
        snprintf(which, size, "%s", model_path);
        return pl_same_file(model_path, target);
    }
    DIR *d = opendir(model_path);
    if (!d)
        return 0;
    int found = 0;
    for (struct dirent *e; !found && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(which, size, "%s/%s", model_path, e->d_name);
        found = pl_same_file(which, target);
    }
    closedir(d);
    return found;
}

/* The files a run writes (output, checkpoint) may not be a file it reads, nor each other: a run
 * would otherwise overwrite its own model or prompts, or delete them at the end. */
static int check_paths(const pl_sweep_config *cfg)
{
    const char *outs[2] = {cfg->output_path, cfg->checkpoint_path};
    const char *out_keys[2] = {"[output] path", "[run] checkpoint"};
    const char *out_names[2] = {"output", "checkpoint"};
    if (pl_same_target(cfg->output_path, cfg->checkpoint_path))
        return pl_fail("%s: [run] checkpoint %s is the output file: give the checkpoint a name of its own",
                       pl_sweep_config_origin(cfg, "run", "checkpoint"), cfg->checkpoint_path);
    for (int o = 0; o < 2; o++) {
        const char *origin = pl_sweep_config_origin(cfg, o ? "run" : "output", o ? "checkpoint" : "path");
        char which[4096];
        const char *input = NULL, *owner = "";
        if (pl_same_file(outs[o], cfg->file))
            input = "the config file";
        else if (pl_same_file(outs[o], cfg->data_path))
            input = "[data] prompts";
        else if (cfg->tokenizer_path && pl_same_file(outs[o], cfg->tokenizer_path))
            input = "[model] tokenizer";
        else if (cfg->models_file && pl_same_file(outs[o], cfg->models_file))
            input = "[model] paths";
        else if (is_model_file(cfg->model_path, outs[o], which, sizeof which))
            input = which, owner = "the model's file ";
        for (int k = 0; !input && k < cfg->n_models; k++) { /* a series' other models */
            if (is_model_file(cfg->models[k].path, outs[o], which, sizeof which))
                input = which, owner = "the model's file ";
        }
        if (!input && cfg->sae_path && is_model_file(cfg->sae_path, outs[o], which, sizeof which))
            input = which, owner = "the SAE's file ";
        for (int d = 0; !input && d < cfg->n_dirs; d++)
            if (cfg->dirs[d].path && pl_same_file(outs[o], cfg->dirs[d].path)) /* file: directions */
                input = cfg->dirs[d].label;
        if (input)
            return pl_fail("%s: %s %s is an input of this run (%s%s): plateau would overwrite it; write the %s "
                           "elsewhere",
                           origin, out_keys[o], outs[o], owner, input, out_names[o]);
    }
    return PL_OK;
}

/* A fresh run does not start over an interrupted one's checkpoint. Asked with the checkpoint's lock
 * held, so that no other run can create it meanwhile. */
static int check_fresh_checkpoint(const pl_sweep_config *cfg, const pl_run_options *opt)
{
    struct stat sb;
    if (!opt->resume && lstat(cfg->checkpoint_path, &sb) == 0)
        return pl_fail("checkpoint %s exists (a run of this config was interrupted): pass --resume to continue from "
                       "it, or remove it to start again",
                       cfg->checkpoint_path);
    return PL_OK;
}

/* Every rank's OpenBLAS runs THREADS threads, whatever the machine or OPENBLAS_NUM_THREADS say:
 * OpenBLAS's results depend on its thread count, so it is part of the config. */
static int set_blas_threads(const pl_sweep_config *cfg)
{
    openblas_set_num_threads(cfg->threads);
    int got = openblas_get_num_threads();
    if (got != cfg->threads)
        return pl_fail("%s: [run] threads: %d, but this OpenBLAS runs at most %d (%s)",
                       pl_sweep_config_origin(cfg, "run", "threads"), cfg->threads, got, openblas_get_config());
    return PL_OK;
}

/* Every rank computes with the same arithmetic (pl_compute_kernels: OpenBLAS's kernel, the vector
 * exp/log), or none runs: a batch's bits would depend on the rank that evaluated it (a job across CPU
 * types, or OPENBLAS_CORETYPE set on some nodes only). Rank 0 names the first rank that differs. */
#define KERNELS_LEN 64
static int same_kernels(run_state *st)
{
    char mine[KERNELS_LEN] = {0};
    pl_compute_kernels(mine, sizeof mine);
    char *all = calloc((size_t)st->size, KERNELS_LEN);
    if (!all) {
        fprintf(stderr, "plateau: rank %d: out of memory\n", st->rank);
        setup_abort(st);
    }
    collective j = {.kind = COLL_ALLGATHER, .send = mine, .recv = all, .count = KERNELS_LEN, .type = MPI_CHAR};
    agent_run(st, &j);
    int ok = 1;
    for (int r = 1; r < st->size && ok; r++)
        if (strncmp(all, all + (size_t)r * KERNELS_LEN, KERNELS_LEN)) {
            ok = 0;
            pl_fail("rank %d computes with %.*s, rank 0 with %.*s: a batch's bits would depend on the rank that "
                    "evaluated it; run on one CPU type (Slurm: --constraint) or set OPENBLAS_CORETYPE to one "
                    "kernel every node runs", r, KERNELS_LEN, all + (size_t)r * KERNELS_LEN, KERNELS_LEN, all);
        }
    free(all);
    return ok;
}

/* Every value of the activations X[n, C] of N prompts is finite (mu and Sigma are fitted to them),
 * else a message naming the prompt (WHAT: "sweep prompt", "covariance prompt") and where. */
static int check_activations(const pl_sweep *sw, const float *X, int n, const char *what)
{
    for (size_t i = 0; i < (size_t)n * sw->C; i++)
        if (!isfinite(X[i]))
            return pl_fail("%s %d: the activation at %s, position %d, is %s (component %zu): the model computes "
                           "non-finite values on it; check its weights",
                           what, (int)(i / sw->C), sw->cfg->hook, sw->pos, isnan(X[i]) ? "NaN" : "infinite",
                           i % sw->C);
    return PL_OK;
}

/* Token rows per batched clean forward of the setup: a chunk is max(1, SETUP_ROWS / T) prompts. The
 * chunks are fixed by the config alone, so every activation comes out of the same sgemm shapes
 * whatever the number of ranks (bitwise equal results); ~500 rows let OpenBLAS's packing pay. */
#define SETUP_ROWS 512

static int setup_chunk(int T) { return T < SETUP_ROWS ? SETUP_ROWS / T : 1; }

/* Rank R's share of the setup's N prompts, whole chunks of CHUNK prompts: prompts [*LO, *HI). */
static void setup_share(int n, int chunk, int r, int size, int *lo, int *hi)
{
    long n_chunks = (n + chunk - 1) / chunk;
    long c0 = n_chunks * r / size, c1 = n_chunks * (r + 1) / size;
    *lo = (int)(c0 * chunk < n ? c0 * chunk : n);
    *hi = (int)(c1 * chunk < n ? c1 * chunk : n);
}

/* Prompts whose tokens 0..pos agree have, by causality, one activation at (hook, pos); but the
 * batched forward computes each row inside a larger sgemm whose kernels may round a row by where it
 * sits, so two such prompts can differ in the last bits. The experiment tells activations apart by
 * exact equality (real_other redraws a partner equal to its base): give every such group the
 * activation of its first prompt, so equal inputs have equal activations again. Prompt i's activation
 * at ACTS + i * STRIDE (C floats). */
static const int *g_prefix_tokens; /* for qsort: tokens[N, T], compared over the first g_prefix_len */
static int g_prefix_T, g_prefix_len;

static int by_prefix(const void *a, const void *b)
{
    int i = *(const int *)a, j = *(const int *)b;
    int c = memcmp(g_prefix_tokens + (size_t)i * g_prefix_T, g_prefix_tokens + (size_t)j * g_prefix_T,
                   sizeof(int) * g_prefix_len);
    return c ? c : (i > j) - (i < j);
}

static int unify_equal_prefixes(const int *tokens, int N, int T, int pos, float *acts, int C, size_t stride)
{
    int *order = pl_malloc(sizeof(int) * (size_t)(N ? N : 1), "prompt order");
    if (!order)
        return PL_ERR;
    for (int i = 0; i < N; i++)
        order[i] = i;
    g_prefix_tokens = tokens, g_prefix_T = T, g_prefix_len = pos + 1;
    qsort(order, (size_t)N, sizeof(int), by_prefix);
    for (int k = 1; k < N; k++) {
        int first = order[k - 1], i = order[k];
        if (!memcmp(tokens + (size_t)first * T, tokens + (size_t)i * T, sizeof(int) * (pos + 1))) {
            memcpy(acts + (size_t)i * stride, acts + (size_t)first * stride, sizeof(float) * C);
            order[k] = first; /* the group's first (smallest index) stays the source */
        }
    }
    free(order);
    return PL_OK;
}

/* file: directions are read (on every rank) by the experiment's setup: identified first. */
static int watch_direction_files(const pl_sweep_config *cfg)
{
    for (int d = 0; d < cfg->n_dirs; d++)
        if (cfg->dirs[d].path && pl_watch_file(cfg->dirs[d].path, "direction file") != PL_OK)
            return PL_ERR;
    return PL_OK;
}

/* The run's shapes, from the config and the model's (the hook resolved): setup and --dry-run alike. */
static void set_shapes(pl_sweep *sw, const pl_sweep_config *cfg, const pl_model_info *mc)
{
    sw->C = pl_hook_width(sw->model, sw->hook); /* the perturbed activation's: H*head_dim at attn.hook_z */
    sw->C_read = mc->d_model;
    sw->V = mc->n_vocab;
    sw->T = cfg->n_ctx;
    int first;
    if (pl_sweep_config_positions(cfg, &first, &sw->n_pos) != PL_OK) /* checked by the resolve already */
        sw->n_pos = 1;
    if (sw->n_pos > 1) /* whole contexts: read at every perturbed position, the last one last */
        sw->read_pos = sw->pos + sw->n_pos - 1;
    sw->NPC = sw->n_pos > 1 && cfg->read_positions == PL_READ_POSITIONS_EACH ? sw->n_pos : 1;
    /* the setup gathers the perturbed position alone, or (whole contexts, fit_positions = all) every one */
    int one = sw->n_pos == 1 && cfg->fit_positions == PL_FIT_POSITIONS_SWEEP;
    sw->act_first = one ? sw->pos : 0;
    sw->act_count = one ? 1 : sw->T;
    sw->T_eval = sw->read_pos + 1;
    sw->P = cfg->n_prompts;
    sw->S = cfg->n_directions;
    sw->NB = cfg->n_bases;
    sw->slice = cfg->slice;
    sw->ND = cfg->slice ? 1 : cfg->n_dirs; /* a slice's unit holds both kinds */
    sw->NM = cfg->n_metrics;
    sw->n_alpha = cfg->steps;
    sw->steps = cfg->slice ? cfg->steps * cfg->steps : cfg->steps;
    sw->n_units = (long)sw->P * sw->NB * sw->ND * sw->S;
    pl_sweep_set_batches(sw);
}

static double physical_memory(void);

/* The directory that holds the node's window, Open MPI's osc/sm backing file: the one the environment
 * names (OMPI_MCA_osc_sm_backing_directory), else /dev/shm, its default. Its free bytes now, or -1 when
 * it cannot be read. A container's /dev/shm is often small (Docker's default: 64 MB), and a window
 * that does not fit fails only when it is allocated. */
static double window_dir_free(const char **dir)
{
    const char *env = getenv("OMPI_MCA_osc_sm_backing_directory");
    *dir = env && *env ? env : "/dev/shm";
    struct statvfs s;
    if (statvfs(*dir, &s) != 0)
        return -1;
    return (double)s.f_bavail * (double)s.f_frsize;
}

/* The node's window for the converted weights of CONVERTED bytes (every rank plans the same). The
 * window must fit the machine: a model too large is refused here, naming it, not by the kernel. */
static int open_window(run_state *st, size_t converted)
{
    double phys = physical_memory();
    int ok = !(phys > 0 && (double)converted > phys);
    if (!ok)
        pl_fail("%s: [model] path = %s: its converted weights need %.3g GiB in the node's shared window, more "
                "than this machine's %.3g GiB of physical memory", pl_sweep_config_origin(&st->cfg, "model", "path"),
                st->cfg.model_path, (double)converted / (1 << 30), phys / (1 << 30));
    if (!all_ok(st, ok))
        return PL_EXIT_INPUT;
    window_job w = {.st = st, .bytes = converted};
    collective j = {.kind = COLL_WINDOW, .recv = &w};
    setup_phase(st, "allocating the node's shared weight window");
    agent_run(st, &j);
    /* Said at once, by the rank that failed: Open MPI's osc/sm returns a failure of the node's
     * segment to the node's first rank alone and leaves the others in the window's collective, so
     * the vote below may never end; the heartbeats then end the job naming a silent rank, not why. */
    if (!w.ok) {
        fprintf(stderr, "plateau: %s\n", w.message);
        fflush(stderr);
    }
    int failed = !w.ok;
    coll_allreduce_max(st, &failed, MPI_INT);
    if (failed)
        return PL_EXIT_FAULT;
    if (!w.base) /* one rank per node: private copies */
        return PL_EXIT_OK;
    /* Open MPI checks the backing directory's room when it creates the window's file, which is sparse:
     * jobs starting together on one node all pass, and the first page that finds the tmpfs full faults. */
    const char *dir;
    window_dir_free(&dir);
    char line[600];
    snprintf(line, sizeof line, "the node's shared weight window (%zu bytes in %s, osc_sm_backing_directory) ran out "
             "of space while its pages were written or read: %s is full (other jobs' windows on this node?); give it "
             "more room, or set [run] shared_weights = false (a copy per rank)", converted, dir, dir);
    pl_watch_region(w.base, converted, line);
    setup_phase(st, "opening the model");
    st->arena = (pl_weight_arena){w.base, converted, st->node_rank == 0, 0};
    if (st->rank == 0 && !st->quiet)
        fprintf(stderr, "plateau: setup: converted and fused weights: %.3g MiB, one copy per node (shared window)\n",
                (double)converted / (1 << 20));
    return PL_EXIT_OK;
}

/* Maps the window's pages into this process now, in setup. The node's first rank wrote them; another
 * rank's first touch of each 4 KB page is a fault (1.2 million for Llama-3.2-1B's 4.7 GB), taken in its
 * first batch and so counted in the sweep's time, a cost the filling rank does not have. Not bits. */
static void map_window(const pl_weight_arena *a)
{
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t lo = (uintptr_t)a->base & ~(uintptr_t)(page - 1);
#ifdef MADV_POPULATE_READ
    if (madvise((void *)lo, (uintptr_t)a->base + a->size - lo, MADV_POPULATE_READ) == 0)
        return;
#endif
    /* kernels before 5.14: a read of every page */
    volatile const char *p = a->base;
    for (size_t off = 0; off < a->size; off += (size_t)page)
        (void)p[off];
}

/* Every rank built the model from the same config.json (its sha256 against rank 0's): each rank
 * reads it itself, so one rewritten while the ranks opened the model would give them two
 * architectures and a result mixing both. The weights' identity is checked by the watch. */
static int same_model_config(run_state *st)
{
    char first[65] = {0};
    memcpy(first, pl_model_config_sha256(st->model), sizeof first - 1);
    coll_bcast(st, first, sizeof first, MPI_CHAR);
    if (strcmp(first, pl_model_config_sha256(st->model)))
        return pl_fail("%s/config.json changed while the ranks opened the model: this rank read sha256 %.12s..., rank "
                       "0 %.12s...; start the run again once it stays put",
                       st->cfg.model_path, pl_model_config_sha256(st->model), first);
    return PL_OK;
}

/* Open the model, every rank. Under MPI (and [run] shared_weights) the converted and fused weights go
 * to the node's window: every rank plans their bytes from the files, the window is allocated, the
 * node's first rank converts into it while the others wait (all_ok), then they take the same
 * pointers. The bits are those of a private copy: the same conversion, the same layout. */
static int open_model(run_state *st)
{
    const char *path = st->cfg.model_path;
    size_t converted = 0, file_bytes = 0;
    int shared = st->size > 1 && st->cfg.shared_weights, code;
    int ok = !shared || pl_model_weight_bytes(path, &converted, &file_bytes) == PL_OK;
    if (!ok)
        pl_fail_prefix("%s: [model] path = %s", pl_sweep_config_origin(&st->cfg, "model", "path"), path);
    if (!all_ok(st, ok))
        return PL_EXIT_INPUT;
    unsigned long long most = converted; /* the same files everywhere: the same plan */
    coll_allreduce_max(st, &most, MPI_UNSIGNED_LONG_LONG);
    if (shared && most > 0 && (code = open_window(st, (size_t)most)) != PL_EXIT_OK)
        return code;
    pl_model_open_opts o = {.arena = st->arena.base ? &st->arena : NULL};
    ok = 1;
    if (!o.arena || st->node_rank == 0)
        ok = pl_model_open_with(&st->model, path, &o) == PL_OK;
    if (o.arena && !ok)
        pl_fail_prefix("%s: [model] path = %s", pl_sweep_config_origin(&st->cfg, "model", "path"), path);
    if (o.arena && !all_ok(st, ok)) /* the node's weights are in the window */
        return PL_EXIT_INPUT;
    if (o.arena && st->node_rank != 0 && (ok = pl_model_open_with(&st->model, path, &o) == PL_OK))
        map_window(&st->arena);
    if (ok && o.arena && st->arena.used != st->arena.size)
        ok = pl_fail("%s: the weights took %zu bytes of the node's window, planned %zu: the model files changed "
                     "while plateau read them", path, st->arena.used, st->arena.size) == PL_OK;
    if (!ok)
        pl_fail_prefix("%s: [model] path = %s", pl_sweep_config_origin(&st->cfg, "model", "path"), path);
    if (!all_ok(st, ok))
        return PL_EXIT_INPUT;
    return all_ok(st, same_model_config(st) == PL_OK) ? PL_EXIT_OK : PL_EXIT_INPUT;
}

/* --naive runs one perturbed position per full forward: whole contexts are the fast path's alone. Said
 * before any work (exit 2), not by the first batch as a fault with a checkpoint of nothing. */
static int check_naive(const pl_sweep *sw, const pl_run_options *opt)
{
    if (opt->naive && sw->n_pos > 1)
        return pl_fail("%s: [perturb] position: positions %d..%d at once (whole contexts) run only by the fast "
                       "path; --naive evaluates one perturbed position per full forward",
                       pl_sweep_config_origin(sw->cfg, "perturb", "position"), sw->pos, sw->pos + sw->n_pos - 1);
    return PL_OK;
}

/* Setup, every rank: read the config, check the output paths (rank 0), open the model, resolve the
 * hook, open the SAE. Returns an exit code. */
static int setup_open(run_state *st, const char *config_path, char *const *sets, int n_sets, const char *output,
                      const pl_run_options *opt)
{
    pl_sweep *sw = &st->sw;
    setup_phase(st, "reading the config");
    int ok = pl_sweep_config_load(&st->cfg, config_path, sets, n_sets, output) == PL_OK &&
             set_blas_threads(&st->cfg) == PL_OK;
    if (!all_ok(st, ok) || !all_ok(st, same_kernels(st)))
        return PL_EXIT_INPUT;
    pthread_mutex_lock(&st->agent->lock);
    st->agent->timeout = st->cfg.worker_timeout; /* every rank's config is read: the run's limit from now on */
    pthread_mutex_unlock(&st->agent->lock);
    setup_phase(st, "checking the output paths");
    if (st->rank == 0)
        ok = check_paths(&st->cfg) == PL_OK && prepare_output_dir(st->cfg.output_path, "output") == PL_OK &&
             prepare_output_dir(st->cfg.checkpoint_path, "checkpoint") == PL_OK &&
             pl_checkpoint_lock(st->cfg.checkpoint_path, &st->ckpt_lock) == PL_OK &&
             check_fresh_checkpoint(&st->cfg, opt) == PL_OK;
    if (!all_ok(st, ok))
        return PL_EXIT_INPUT;
    setup_phase(st, "opening the model");
    int code = open_model(st);
    if (code != PL_EXIT_OK)
        return code;
    const pl_model_info *mc = pl_model_get_info(st->model);
    sw->cfg = &st->cfg;
    sw->model = st->model;
    sw->naive = opt->naive;
    ok = pl_sweep_config_resolve(&st->cfg, st->model, &sw->hook, &sw->read, &sw->pos, &sw->read_pos) == PL_OK;
    if (!all_ok(st, ok))
        return PL_EXIT_INPUT;
    set_shapes(sw, &st->cfg, mc);
    if (!all_ok(st, check_naive(sw, opt) == PL_OK))
        return PL_EXIT_INPUT;
    setup_phase(st, "opening the SAE");
    ok = pl_sweep_open_sae(sw) == PL_OK; /* before the clean forwards: a bad SAE fails at once */
    if (!all_ok(st, ok))
        return PL_EXIT_INPUT;
    return PL_EXIT_OK;
}

/* Rank 0, a series' model: its prompts' token ids are the series' (a finished part's, or the first model
 * swept in this run's, which sets them). The stacker refuses other token ids, but only once every model
 * has run: a prompts file regenerated between two sessions of a --resume, a model dir with a tokenizer
 * of its own. */
static int check_series_prompts(const run_state *st, pl_series_prompts *sp)
{
    char sha[65];
    if (pl_tokens_sha256(&st->sw, sha) != PL_OK)
        return PL_ERR;
    if (!sp->tokens_sha256[0]) {
        memcpy(sp->tokens_sha256, sha, sizeof sha);
        return PL_OK;
    }
    if (!strcmp(sp->tokens_sha256, sha))
        return PL_OK;
    return pl_fail("model '%s': its prompts' token ids differ from those of model %d '%s' (%s): a model series runs "
                   "every model on the same prompts, so either the prompts file changed (%s) or this model's "
                   "tokenizer differs (give every model one with [model] tokenizer, or [data] bos when only the BOS "
                   "token differs)",
                   st->cfg.model_label ? st->cfg.model_label : st->cfg.model_path, sp->model + 1,
                   sp->label ? sp->label : "?", sp->from_part ? "its finished part" : "swept before it in this run",
                   sp->from_part ? "resume with the original one, or remove the series' parts to start again"
                                 : "run the series again");
}

/* Setup: rank 0 reads and tokenises the N_ALL prompts (sweep + covariance) and, for a series' model,
 * checks them against the series' token ids before any forward (SERIES; NULL outside a series);
 * everyone gets the ids; then the grid. Returns an exit code. */
static int setup_prompts(run_state *st, int n_all, pl_series_prompts *series)
{
    pl_sweep *sw = &st->sw;
    int T = sw->T, C = sw->C;
    if ((long long)n_all * T > INT_MAX || (long long)n_all * C > INT_MAX || (long long)C * C > INT_MAX) {
        if (st->rank == 0)
            fprintf(stderr, "plateau: %s: n_prompts + cov_prompts = %d prompts of %d tokens (width %d) are too many "
                    "for one MPI message; use fewer prompts\n", st->cfg.file, n_all, T, C);
        return PL_EXIT_INPUT;
    }
    int ok = 1;
    setup_phase(st, "reading the prompts");
    if (st->rank == 0)
        ok = pl_data_load(sw, !st->quiet) == PL_OK && (!series || check_series_prompts(st, series) == PL_OK);
    if (!all_ok(st, ok))
        return PL_EXIT_INPUT;
    if (st->rank != 0) {
        sw->tokens = pl_malloc(sizeof(int) * (size_t)n_all * T, "prompt tokens");
        sw->next_token = pl_malloc(sizeof(int) * (size_t)n_all, "next tokens");
        if (!sw->tokens || !sw->next_token) {
            fprintf(stderr, "plateau: rank %d: %s\n", st->rank, pl_error());
            setup_abort(st);
        }
    }
    coll_bcast(st, sw->tokens, n_all * T, MPI_INT);
    coll_bcast(st, sw->next_token, n_all, MPI_INT);
    ok = pl_sweep_setup_grid(sw) == PL_OK;
    if (!all_ok(st, ok))
        return PL_EXIT_INPUT;
    return PL_EXIT_OK;
}

/* This rank's clean forwards of the setup. */
typedef struct {
    int n_all;      /* prompts: sweep + covariance */
    int chunk;      /* prompts per batched forward (setup_chunk) */
    int lo, hi;     /* this rank's share: prompts [lo, hi) */
    float *mine;    /* [hi - lo, C]: their activations at (hook, pos) */
    double seconds; /* the forwards' wall time */
    int talking;    /* rank 0 reported progress */
} setup_forwards;

/* Setup: the clean forwards of this rank's share, stopping at the hook: fixed chunks of prompts, rank
 * r taking a contiguous run. Returns an exit code; F->mine is freed unless PL_EXIT_OK. */
static int clean_forwards(run_state *st, setup_forwards *f)
{
    pl_sweep *sw = &st->sw;
    int T = sw->T, C = sw->C;
    const int *tokens = sw->tokens; /* the sweep's prompts are the first P rows */
    setup_phase(st, "the clean forwards");
    f->chunk = setup_chunk(T);
    setup_share(f->n_all, f->chunk, st->rank, st->size, &f->lo, &f->hi);
    int chunk = f->chunk, lo = f->lo, hi = f->hi;
    size_t W = (size_t)sw->act_count * C; /* floats per prompt */
    f->mine = pl_malloc(sizeof(float) * (size_t)(hi - lo > 0 ? hi - lo : 1) * W, "activations");
    int ok = f->mine != NULL;
    /* Progress on rank 0 (its share stands for everyone's: the shares differ by at most one chunk),
     * only when the setup is slow enough to need it: after the first chunk, if its share will take
     * over 2 s, then every 2 s. */
    double t0 = now_seconds(), t_said = t0;
    for (int i = lo; i < hi && ok && !g_signal; i += chunk) {
        int n = hi - i < chunk ? hi - i : chunk;
        ok = (sw->act_count == 1 ? pl_forward_at(st->model, tokens + (size_t)i * T, n, T, sw->hook, sw->pos,
                                                 f->mine + (size_t)(i - lo) * C)
                                 : pl_forward_range_at(st->model, tokens + (size_t)i * T, n, T, sw->hook,
                                                       sw->act_first, sw->act_count,
                                                       f->mine + (size_t)(i - lo) * W)) == PL_OK;
        double t = now_seconds();
        if (st->rank != 0 || st->quiet || i + n >= hi)
            continue;
        if (!f->talking && (t - t0) * (hi - lo) / (i + n - lo) > 2.0) {
            fprintf(stderr, "plateau: setup: activations of %d prompts at %s (%d sweep + %d for Sigma) on %d rank%s\n",
                    f->n_all, st->cfg.hook, sw->P, st->cfg.cov_prompts, st->size, st->size > 1 ? "s" : "");
            f->talking = 1;
        }
        if (f->talking && t - t_said >= 2.0) {
            fprintf(stderr, "plateau: setup: activations %.0f %%\n", 100.0 * (i + n - lo) / (hi - lo));
            t_said = t;
        }
    }
    f->seconds = now_seconds() - t0;
    /* a signal during the clean forwards: stop now, nothing to checkpoint */
    int sig = g_signal;
    coll_allreduce_max(st, &sig, MPI_INT);
    int code = sig ? PL_EXIT_PREEMPTED : PL_EXIT_OK;
    if (sig && st->rank == 0)
        fprintf(stderr, "plateau: %s received during setup: stopping (checkpoint unchanged)\n", signal_name(sig));
    if (!sig && !all_ok(st, ok))
        code = PL_EXIT_INPUT;
    if (code != PL_EXIT_OK) {
        free(f->mine);
        f->mine = NULL;
    }
    return code;
}

/* Setup: every rank's activations to rank 0, in prompt order; frees F->mine. Returns ALL[n_all, C]
 * on rank 0, NULL on the others. */
static float *gather_activations(run_state *st, setup_forwards *f)
{
    int C = st->sw.C * st->sw.act_count; /* floats per prompt */
    float *all = NULL;
    int *counts = NULL, *displs = NULL;
    if (st->rank == 0) {
        all = pl_malloc(sizeof(float) * (size_t)f->n_all * C, "activations");
        counts = malloc(sizeof(int) * st->size);
        displs = malloc(sizeof(int) * st->size);
        if (!all || !counts || !displs) {
            fprintf(stderr, "plateau: out of memory (activations)\n");
            setup_abort(st);
        }
        for (int r = 0; r < st->size; r++) {
            int a, b;
            setup_share(f->n_all, f->chunk, r, st->size, &a, &b);
            counts[r] = (b - a) * C;
            displs[r] = a * C;
        }
    }
    setup_phase(st, "gathering the activations");
    collective gather = {.kind = COLL_GATHERV, .send = f->mine, .recv = all, .count = (f->hi - f->lo) * C,
                         .type = MPI_FLOAT, .counts = counts, .displs = displs};
    agent_run(st, &gather);
    setup_phase(st, "the Sigma fit");
    free(f->mine);
    f->mine = NULL;
    free(counts);
    free(displs);
    if (f->talking)
        fprintf(stderr, "plateau: setup: activations done in %.1f s; fitting Sigma on %d prompts\n", f->seconds,
                st->cfg.cov_prompts);
    return all;
}

/* unify_equal_prefixes at every gathered position (whole contexts: every BOS site is one activation,
 * as every prefix shared by two prompts is). ALL[n_all, act_count, C]. */
static int unify_positions(const pl_sweep *sw, int n_all, float *all)
{
    size_t C = (size_t)sw->C, stride = C * sw->act_count;
    for (int t = 0; t < sw->act_count; t++)
        if (unify_equal_prefixes(sw->tokens, n_all, sw->T, sw->act_first + t, all + t * C, sw->C, stride) != PL_OK)
            return PL_ERR;
    return PL_OK;
}

/* Setup: rank 0 checks the activations ALL[n_all, C] (freed here), fits mu and Sigma to them and
 * broadcasts the sweep's activations, mu and Sigma's factor. Returns an exit code. */
static int setup_fit(run_state *st, int n_all, float *all)
{
    pl_sweep *sw = &st->sw;
    int C = sw->C;
    sw->real_act = pl_malloc(sizeof(float) * (size_t)sw->P * sw->n_pos * C, "real activations");
    sw->mu = pl_malloc(sizeof(double) * C, "mu");
    sw->chol = pl_malloc(sizeof(double) * (size_t)C * C, "Sigma factor");
    int ok = sw->real_act && sw->mu && sw->chol;
    if (ok && st->rank == 0)
        ok = unify_positions(sw, n_all, all) == PL_OK &&
             check_activations(sw, all, sw->P * sw->act_count, "sweep prompt") == PL_OK &&
             check_activations(sw, all + (size_t)sw->P * sw->act_count * C, st->cfg.cov_prompts * sw->act_count,
                               "covariance prompt") == PL_OK;
    if (ok && st->rank == 0) {
        ok = pl_sweep_fit(sw, all) == PL_OK;
        if (ok && sw->pd.n_raised > 0)
            snprintf(st->sigma_note, sizeof st->sigma_note,
                     "%d of %d eigenvalues raised to %.3g (smallest was %.3g); relative Frobenius change %.3g",
                     sw->pd.n_raised, C, sw->pd.floor, sw->pd.min_eig, sw->pd.rel_change);
        else if (ok && sw->pd.n_raised < 0)
            snprintf(st->sigma_note, sizeof st->sigma_note,
                     "rebuilt from its eigendecomposition (Cholesky failed on rounding); relative Frobenius "
                     "change %.3g",
                     sw->pd.rel_change);
        if (ok && st->sigma_note[0] && !st->quiet)
            fprintf(stderr, "plateau: Sigma (%d prompts at %s) was not positive definite: %s\n",
                    st->cfg.cov_prompts, st->cfg.hook, st->sigma_note);
    }
    free(all);
    if (!all_ok(st, ok))
        return PL_EXIT_INPUT;
    coll_bcast(st, sw->real_act, sw->P * sw->n_pos * C, MPI_FLOAT);
    coll_bcast(st, sw->mu, C, MPI_DOUBLE);
    coll_bcast(st, sw->chol, C * C, MPI_DOUBLE);
    coll_bcast(st, &sw->trace, 1, MPI_DOUBLE);
    return PL_EXIT_OK;
}

/* The resid index the fast path goes on from: the hook's, or l + 1 for a point inside block l. */
static int sweep_depth(const pl_sweep *sw)
{
    int r = pl_hook_resid_index(sw->hook);
    return r >= 0 ? r : sw->hook.layer + 1;
}

/* Setup: st->unit_estimate, the slowest rank's time for one batch, from its clean forwards F.
 * A batch is about steps patched rows (or full forwards) plus one clean forward per unit. The
 * clean forwards stopped at the hook: a full one costs about L / max(depth, 1) of them
 * (the unembedding left aside; the estimate only bounds the fault timeouts). */
static void estimate_batch_time(run_state *st, const pl_run_options *opt, const setup_forwards *f)
{
    pl_sweep *sw = &st->sw;
    int L = pl_model_get_info(st->model)->n_layer, T = sw->T, lo = f->lo, hi = f->hi;
    int depth = sweep_depth(sw); /* blocks the clean forwards ran (a mid-block hook: its block too) */
    double t_fwd = hi > lo ? f->seconds / (hi - lo) * L / (depth > 0 ? depth : 1) : 0.0;
    /* the slowest rank's: a rank without prompts (fewer chunks than ranks) measured nothing */
    coll_allreduce_max(st, &t_fwd, MPI_DOUBLE);
    double per = opt->naive ? sw->steps
                            : 1.0 + sw->steps * pl_patch_flops(st->model, T, depth, sw->pos) /
                                        pl_forward_flops(st->model, T);
    st->unit_estimate = t_fwd * per * sw->batch_units;
    coll_bcast(st, &st->unit_estimate, 1, MPI_DOUBLE);
}

/* The config text a checkpoint is written for and compared with: the hashed keys, then the sha256 of
 * the model's config.json (the weights' hash leaves it out), so a resume with it changed is refused
 * naming it. NULL and the message on failure. */
static char *checkpoint_config_text(const run_state *st)
{
    char *keys = pl_sweep_config_text(&st->cfg, 1);
    const char *config_sha = pl_model_config_sha256(st->model);
    if (!keys || !config_sha[0])
        return keys;
    size_t n = strlen(keys) + 128;
    char *text = pl_malloc(n, "checkpoint config text");
    if (text)
        snprintf(text, n, "%s\n[model config.json]\nsha256 = %s\n", keys, config_sha);
    free(keys);
    return text;
}

/* Setup: the identity of what the checkpoint holds (rank 0): the config's text, the model's and the
 * prompts' hashes. Returns an exit code. */
static int hash_inputs(run_state *st)
{
    setup_phase(st, "hashing the inputs");
    int ok = 1;
    if (st->rank == 0) {
        st->config_text = pl_sweep_config_text(&st->cfg, 0);
        st->hashed_text = checkpoint_config_text(st);
        ok = st->config_text && st->hashed_text && pl_model_sha256(st->model, st->model_sha) == PL_OK;
        if (ok) {
            /* the tokens of every selected prompt, sweep and covariance */
            ok = pl_data_sha256(&st->sw, st->data_sha) == PL_OK;
        }
    }
    /* the hashes above are of the inputs as opened only if none changed meanwhile */
    if (ok)
        ok = pl_watch_check() == PL_OK;
    if (!all_ok(st, ok))
        return PL_EXIT_INPUT;
    return PL_EXIT_OK;
}

/* Runs on the setup thread: every collective through the agent (coll_*, all_ok). Returns an exit code. */
static int setup_steps(run_state *st, const char *config_path, char *const *sets, int n_sets, const char *output,
                       const pl_run_options *opt)
{
    int code = setup_open(st, config_path, sets, n_sets, output, opt);
    if (code != PL_EXIT_OK)
        return code;
    setup_forwards f = {.n_all = st->sw.P + st->cfg.cov_prompts};
    if ((code = setup_prompts(st, f.n_all, opt->series_prompts)) != PL_EXIT_OK || (code = clean_forwards(st, &f)) != PL_EXIT_OK)
        return code;
    float *all = gather_activations(st, &f);
    if ((code = setup_fit(st, f.n_all, all)) != PL_EXIT_OK)
        return code;
    setup_phase(st, "the directions and the experiment's setup");
    int ok = watch_direction_files(&st->cfg) == PL_OK && pl_sweep_setup_units(&st->sw) == PL_OK;
    if (!all_ok(st, ok))
        return PL_EXIT_INPUT;
    if (st->rank == 0 && !st->quiet)
        pl_experiment_notes(&st->sw.ex, stderr);
    estimate_batch_time(st, opt, &f);
    return hash_inputs(st);
}

/* Threads other than the main one block the run's signals: the main thread's handler takes them. */
static void block_run_signals(void)
{
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &block, NULL);
}

typedef struct {
    run_state *st;
    const char *config_path, *output;
    char *const *sets;
    int n_sets;
    const pl_run_options *opt;
} setup_call;

static void *setup_thread(void *arg)
{
    setup_call *c = arg;
    /* signals go to the main thread (its handler; g_signal is read here) */
    block_run_signals();
    int code = setup_steps(c->st, c->config_path, c->sets, c->n_sets, c->output, c->opt);
    setup_agent *a = c->st->agent;
    pthread_mutex_lock(&a->lock);
    a->code = code;
    a->finished = 1;
    pthread_cond_broadcast(&a->wake); /* the main thread may be waiting in agent_idle */
    pthread_mutex_unlock(&a->lock);
    return NULL;
}

/* Every rank: setup_steps on the setup thread, this thread its agent and watch (see "setup's
 * watch"). Returns its exit code. */
static int setup(run_state *st, const char *config_path, char *const *sets, int n_sets, const char *output,
                 const pl_run_options *opt)
{
    setup_agent agent;
    memset(&agent, 0, sizeof agent);
    pthread_mutex_init(&agent.lock, NULL);
    cond_init_monotonic(&agent.wake);
    agent.timeout = SETUP_TIMEOUT_DEFAULT;
    agent.phase = "starting";
    st->agent = &agent;
    heartbeats h = {.st = st};
    h.last_heard = malloc(sizeof(double) * st->size);
    h.closed = calloc((size_t)st->size, sizeof(int));
    setup_call call = {st, config_path, output, sets, n_sets, opt};
    pthread_t thread;
    if (!h.last_heard || !h.closed || pthread_create(&thread, NULL, setup_thread, &call) != 0) {
        fprintf(stderr, "plateau: rank %d: cannot start the setup thread\n", st->rank);
        MPI_Abort(MPI_COMM_WORLD, PL_EXIT_FAULT);
    }
    for (int r = 0; r < st->size; r++)
        h.last_heard[r] = now_seconds();
    heartbeat_send(&h, 0);
    agent_serve(st, &h);
    pthread_join(thread, NULL);
    heartbeats_close(&h);
    st->agent = NULL;
    free(h.last_heard);
    free(h.closed);
    pthread_mutex_destroy(&agent.lock);
    pthread_cond_destroy(&agent.wake);
    return agent.code;
}

/* ------------------------------------------------------------ --dry-run (rank 0) */

static double peak_rss_bytes(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return 1024.0 * ru.ru_maxrss; /* Linux: kilobytes */
}

/* A duration as progress lines and --dry-run print it: "42s", "3m07s", "2h05m" ("?" when unknown). */
static void format_duration(double s, char *out, size_t size)
{
    if (!isfinite(s) || s < 0)
        snprintf(out, size, "?");
    else if (s < 60)
        snprintf(out, size, "%.0fs", s);
    else if (s < 3600)
        snprintf(out, size, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else
        snprintf(out, size, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
}

/* "KEY = VALUE ; comment" on stdout, the comments aligned. */
__attribute__((format(printf, 3, 4))) static void dry_line(const char *key, const char *value, const char *fmt, ...)
{
    char kv[128];
    snprintf(kv, sizeof kv, "%s = %s", key, value);
    printf("%-36s ; ", kv);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

/* The most rows --dry-run evaluates to time a batch (a batch has ~1024 rows unless steps > 1024, when it
 * is one unit of `steps` rows): the run's own buffers for 10^5 steps would be gigabytes, and a batch's
 * time is linear in its rows. */
#define CAL_MAX_ROWS 1024

/* The steps of the calibration batch of N units: all of them, or as many as CAL_MAX_ROWS allows. */
static int calibration_steps(const pl_sweep *sw, int n)
{
    int most = CAL_MAX_ROWS / (n > 0 ? n : 1);
    return sw->steps < most ? sw->steps : most > 0 ? most : 1;
}

/* Bytes that grow with a batch's ROWS (paper: from shapes): its step vectors, logits and read-hook rows
 * (whole contexts: one per perturbed position), the non-finite flags, and the fast path's residual and
 * block scratch for the N = T_eval - pos positions each row carries (layer norm, q/k/v, attention,
 * projection: ~7 C, and the MLP's width). */
static double batch_row_bytes(const pl_sweep *sw, const pl_model_info *mc, double rows)
{
    double n = sw->T_eval - sw->pos, C = sw->C, out = sw->n_pos > 1 ? sw->n_pos : 1; /* outputs per row */
    return rows * (4.0 * (out * (2.0 * C + sw->V) + n * (7.0 * C + mc->d_mlp)) + 1.0);
}

/* This machine's physical memory in bytes (0: unknown). */
static double physical_memory(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (double)pages * (double)size : 0.0;
}

/* Refuse a run whose rank 0 or other ranks would need more memory than this machine has, with the
 * figures (exit 2): a config of 10^6 directions x 10^5 steps is found on paper, not by allocating it. */
static int check_memory(double per_rank, double rank0, double curves)
{
    double phys = physical_memory(), gib = 1 << 30;
    if (phys > 0 && rank0 > phys)
        return pl_fail("--dry-run: rank 0 would need %.3g GiB (of which the results table, its checkpoint and "
                       "output images %.3g GiB), more than this machine's %.3g GiB of physical memory: fewer "
                       "prompts, directions, samples, steps or metrics", rank0 / gib, 3 * curves / gib, phys / gib);
    if (phys > 0 && per_rank > phys)
        return pl_fail("--dry-run: each rank would need %.3g GiB (the model and a batch's buffers), more than this "
                       "machine's %.3g GiB of physical memory: fewer steps", per_rank / gib, phys / gib);
    return PL_OK;
}

/* --dry-run's sizes from shapes: batch 0's rows (and the calibration's), the results table (one copy),
 * the setup's activations and the Gaussian fit. */
typedef struct {
    double rows, cal_rows, curves, fit;
} dry_sizes;

/* Fill *Z for SW and refuse, before anything of the run's size exists, a run whose model and batch
 * (every rank) or results table (rank 0) exceed this machine's memory. */
static int dry_size(const pl_sweep *sw, const pl_model_info *mc, int cov_prompts, dry_sizes *z)
{
    int n_first;
    pl_batch_first_unit(sw, 0, &n_first);
    z->rows = (double)n_first * sw->steps;
    z->cal_rows = (double)n_first * calibration_steps(sw, n_first);
    z->curves = 4.0 * sw->n_units * sw->NM * sw->NPC * sw->steps;
    z->fit = 4.0 * (sw->P + cov_prompts) * sw->C + 4 * 8.0 * sw->C * sw->C;
    double per_rank = 4.0 * mc->n_params + batch_row_bytes(sw, mc, z->rows);
    return check_memory(per_rank, per_rank + 3 * z->curves + z->fit, z->curves);
}

/* The measured part of --dry-run: the setup's first chunk of clean forwards (*T_CHUNK seconds for
 * *N_CHUNK prompts) and batch 0's shape evaluated once (*T_BATCH seconds): its prompts' clean runs,
 * all its rows through the fast path (or, --naive, one patched forward, times the rows) and the
 * log-softmax of every row. The rows are the prompts' own activations scaled, not the sweep's steps:
 * the time does not depend on the values. */
static int calibrate(run_state *st, double *t_chunk, int *n_chunk, double *t_batch)
{
    pl_sweep *sw = &st->sw;
    const pl_model *m = st->model;
    int C = sw->C, V = sw->V, T = sw->T, TE = sw->T_eval, n_all = sw->P + st->cfg.cov_prompts;
    int chunk = setup_chunk(T) < n_all ? setup_chunk(T) : n_all, n;
    long first = pl_batch_first_unit(sw, 0, &n);
    int S = calibration_steps(sw, n); /* a batch's time is linear in its rows: scaled by the caller */
    size_t rows = (size_t)n * S;
    float *act = pl_malloc(sizeof(float) * (size_t)chunk * C, "calibration");
    float *X = pl_malloc(sizeof(float) * rows * C, "calibration");
    float *logits = pl_malloc(sizeof(float) * rows * V, "calibration");
    float *read = pl_malloc(sizeof(float) * rows * sw->C_read, "calibration");
    int *tokens = pl_malloc(sizeof(int) * (size_t)n * TE, "calibration");
    int *group_rows = pl_malloc(sizeof(int) * (size_t)n, "calibration");
    const pl_run **cleans = pl_malloc(sizeof(pl_run *) * (size_t)n, "calibration");
    pl_run *runs = pl_calloc((size_t)n, sizeof(pl_run), "calibration");
    int rc = act && X && logits && read && tokens && group_rows && cleans && runs ? PL_OK : PL_ERR;
    double t0 = now_seconds();
    if (rc == PL_OK)
        rc = pl_forward_at(m, sw->tokens, chunk, T, sw->hook, sw->pos, act);
    *t_chunk = now_seconds() - t0;
    *n_chunk = chunk;
    /* batch 0: its units' distinct prompts (units are prompt-major) */
    int G = 0, *group = group_rows; /* reused: group of unit i, then S */
    int last = -1;
    for (int i = 0; rc == PL_OK && i < n; i++) {
        int p = pl_unit_decode(sw, first + i).p;
        if (p != last)
            memcpy(tokens + (size_t)G++ * TE, sw->tokens + (size_t)p * T, sizeof(int) * TE);
        last = p;
        group[i] = G - 1;
    }
    t0 = now_seconds();
    if (rc == PL_OK && !sw->naive)
        rc = pl_forward_batch(m, tokens, G, TE, runs);
    for (int i = 0; rc == PL_OK && i < n; i++) {
        const pl_run *r = &runs[sw->naive ? 0 : group[i]];
        int ri = pl_hook_resid_index(sw->hook); /* a mid-block point: the first prompt's (times only) */
        const float *x = sw->naive || ri < 0 ? act : r->resid + ((size_t)ri * TE + sw->pos) * C;
        for (int k = 0; k < S; k++)
            for (int c = 0; c < C; c++)
                X[((size_t)i * S + k) * C + c] = x[c] * (1.0f + 0.01f * k);
        cleans[i] = r;
    }
    for (int i = 0; i < n; i++)
        group_rows[i] = S;
    if (rc == PL_OK && sw->naive) {
        pl_run run;
        rc = pl_forward_patched_at(m, tokens, TE, sw->hook, sw->pos, X, &run);
        if (rc == PL_OK)
            pl_run_free(&run);
        *t_batch = (now_seconds() - t0) * (double)rows;
    } else if (rc == PL_OK) {
        rc = pl_patch_eval_groups_at(m, cleans, group_rows, n, sw->hook, sw->pos, X, logits, sw->read, read);
        if (rc == PL_OK)
            pl_log_softmax(logits, logits, (int)rows, V);
        *t_batch = now_seconds() - t0;
    }
    for (int g = 0; g < G; g++)
        pl_run_free(&runs[g]);
    free(act), free(X), free(logits), free(read), free(tokens), free(group_rows), free(cleans), free(runs);
    return rc;
}

/* --dry-run's form of prepare_output_dir: that PATH could be written, creating nothing that stays.
 * An existing directory gets the run's own check (a temporary file, removed at once); a missing one
 * needs its nearest existing ancestor to be a directory plateau may write in. */
static int dry_check_output(const char *path, const char *what)
{
    char *dir = pl_malloc(strlen(path) + 2, "path");
    if (!dir)
        return PL_ERR;
    strcpy(dir, path);
    char *slash = strrchr(dir, '/');
    if (!slash) {
        free(dir);
        return pl_check_output(path, what);
    }
    *slash = '\0';
    struct stat sb;
    int exists = stat(dir[0] ? dir : "/", &sb) == 0 && S_ISDIR(sb.st_mode);
    int rc = PL_OK;
    if (exists) {
        rc = pl_check_output(path, what);
    } else {
        /* up to the nearest ancestor that exists */
        while ((slash = strrchr(dir, '/')) && stat(dir, &sb) != 0)
            *slash = '\0';
        const char *ancestor = !dir[0] ? "/" : stat(dir, &sb) == 0 ? dir : ".";
        if (stat(ancestor, &sb) != 0 || !S_ISDIR(sb.st_mode) || access(ancestor, W_OK | X_OK) != 0)
            rc = pl_fail("%s %s: cannot create its directory: %s %s", what, path, ancestor,
                         stat(ancestor, &sb) == 0 && !S_ISDIR(sb.st_mode) ? "is not a directory"
                                                                           : "is not writable");
    }
    free(dir);
    return rc;
}

/* --resume --dry-run: the checks of the real resume (run_master), on the checkpoint as it is now:
 * whole (checksum), of this config, model and prompts, and of this table's shape. Nothing is loaded
 * but the file: the table itself is not allocated. */
static int dry_check_resume(run_state *st, const pl_run_options *opt)
{
    const char *path = st->cfg.checkpoint_path;
    if (!opt->resume || access(path, F_OK) != 0)
        return PL_OK;
    st->hashed_text = checkpoint_config_text(st);
    if (!st->hashed_text || pl_model_sha256(st->model, st->model_sha) != PL_OK ||
        pl_data_sha256(&st->sw, st->data_sha) != PL_OK)
        return PL_ERR;
    pl_results r;
    memset(&r, 0, sizeof r);
    r.sw = &st->sw; /* done and curves NULL: checked, not loaded */
    if (pl_checkpoint_read(path, &r, st->hashed_text, st->model_sha, st->data_sha) != PL_OK)
        return PL_ERR;
    if (!st->quiet)
        fprintf(stderr, "plateau: --resume: checkpoint %s holds %ld/%ld units of this run\n", path, r.n_done,
                st->sw.n_units);
    return PL_OK;
}

/* --dry-run: what setup() checks (config, paths, model, SAE, data) without writing anything. */
static int dry_open(run_state *st, const char *config_path, char *const *sets, int n_sets, const char *output,
                    const pl_run_options *opt)
{
    pl_sweep *sw = &st->sw;
    pl_sweep_config *cfg = &st->cfg;
    if (pl_sweep_config_load(cfg, config_path, sets, n_sets, output) != PL_OK || set_blas_threads(cfg) != PL_OK ||
        check_paths(cfg) != PL_OK || dry_check_output(cfg->output_path, "output") != PL_OK ||
        dry_check_output(cfg->checkpoint_path, "checkpoint") != PL_OK ||
        pl_checkpoint_lock_free(cfg->checkpoint_path) != PL_OK || check_fresh_checkpoint(cfg, opt) != PL_OK)
        return PL_ERR;
    if (pl_model_open(&st->model, cfg->model_path) != PL_OK)
        return pl_fail_prefix("%s: [model] path = %s", pl_sweep_config_origin(cfg, "model", "path"), cfg->model_path);
    sw->cfg = cfg;
    sw->model = st->model;
    sw->naive = opt->naive;
    if (pl_sweep_config_resolve(cfg, st->model, &sw->hook, &sw->read, &sw->pos, &sw->read_pos) != PL_OK)
        return PL_ERR;
    set_shapes(sw, cfg, pl_model_get_info(st->model));
    if (check_naive(sw, opt) != PL_OK || pl_sweep_check_local_sizes(sw) != PL_OK || pl_sweep_open_sae(sw) != PL_OK ||
        pl_data_load(sw, !st->quiet) != PL_OK || dry_check_resume(st, opt) != PL_OK)
        return PL_ERR;
    return PL_OK;
}

/* --dry-run's measurements: the calibration's times and the memory per rank. */
typedef struct {
    double t_chunk, t_batch; /* seconds: n_chunk prompts' clean forwards; batch 0, scaled to its rows */
    int n_chunk;
    double per_rank, rank0;  /* bytes: each rank's own (weights aside); rank 0's */
    double mapped, converted; /* bytes: the weight files (mmapped); converted and fused weights */
    double sae_mapped;       /* bytes: the SAE's weight file (mmapped; its converted tensors are per rank) */
    double per_node;         /* bytes: rank 0's node of n ranks, the weights counted once (or n times) */
} dry_measures;

/* --dry-run's layout: R ranks (--ranks, else the ranks it runs on), n of them a node (--ranks-per-node,
 * at most R; else all R on one node) on *NODES = ceil(R / n) nodes. Returns n. The first node, rank 0's,
 * is the fullest and holds rank 0's extra: its memory is the one a job must ask for per node. */
static int dry_layout(const run_state *st, const pl_run_options *opt, int *nodes)
{
    int R = opt->dry_run_ranks ? opt->dry_run_ranks : st->size, n = opt->dry_run_ranks_per_node;
    if (n <= 0 || n > R)
        n = R;
    *nodes = (R + n - 1) / n;
    return n;
}

/* --dry-run with local geometry ([fisher] or `optimized`): its model FLOPs per base (plateau/grad.h's
 * counts) and its time at the calibration's measured FLOP rate (batch 0's rows of pl_patch_flops in
 * T_BATCH seconds) on R ranks. Per base: the Fisher metric's C JVP rows (the trace), plus under the exact
 * method (fisher.c) forming F = ÃᵀÃ (2 V C² flops) and its eigenpairs (C³/3), under Lanczos at least
 * k more JVP and VJP rows; each optimisation at most max_iterations steps of n_opt rows, each row a
 * patched evaluation and a VJP (an upper bound: most stop well before the cap; a rejected trial adds a
 * row). Whole contexts: every perturbed position t is a base of its own (a one-position sweep at t, its first
 * t + 1 tokens), the figures per base their mean over the positions, and each unit adds one JVP row of the
 * whole context (the joint kl_rayleigh). Returns the seconds, 0 without local geometry or at a mid-block hook
 * (no FLOP counts there). */
static double dry_local(const run_state *st, double t_batch, double rows, int R)
{
    const pl_sweep *sw = &st->sw;
    const pl_sweep_config *cfg = &st->cfg;
    int ri = pl_hook_resid_index(sw->hook), C = sw->C, V = sw->V, NS = sw->n_pos > 1 ? sw->n_pos : 1;
    if (!sw->NX || ri < 0 || !(t_batch > 0))
        return 0.0;
    double rate = rows * pl_patch_flops(st->model, sw->T_eval, ri, sw->pos) / t_batch;
    int k = sw->fisher_k, exact = pl_fisher_method(C, V, 1, k) == PL_FISHER_EXACT;
    int its = cfg->opt_max_iterations > 0 ? cfg->opt_max_iterations : 200;
    double fisher = 0.0, optim = 0.0;
    for (int j = 0; j < NS; j++) { /* site j: position pos + j, its clean run pos + j + 1 tokens */
        int q = sw->pos + j, T = NS > 1 ? q + 1 : sw->T_eval;
        double jvp = pl_patch_jvp_flops(st->model, T, ri, q), vjp = pl_patch_vjp_flops(st->model, T, ri, q);
        fisher += (C * jvp + (exact ? 2.0 * V * (double)C * C + (double)C * C * C / 3.0 : k * (jvp + vjp))) / NS;
        optim += sw->n_opt ? (double)sw->n_opt * its * (pl_patch_flops(st->model, T, ri, q) + vjp) / NS : 0.0;
    }
    long bases = 0;
    for (int b = 0; b < sw->NB; b++)
        bases += PL_BASE_KINDS[cfg->bases[b]].per_sample ? sw->S : 1;
    bases *= (long)sw->P * NS;
    double seconds = (double)((bases + R - 1) / R) * (fisher + optim) / rate;
    if (NS > 1) /* the joint step's JVP row of every unit, over every perturbed position */
        seconds += (double)((sw->n_units + R - 1) / R) * pl_patch_jvp_flops(st->model, sw->T_eval, ri, sw->pos) / rate;
    char v[64];
    snprintf(v, sizeof v, "%ld", bases);
    dry_line("local_bases", v, "(%s, base) pairs, at each a Fisher metric%s", NS > 1 ? "prompt, position" : "prompt",
             sw->n_opt ? " and the optima" : "");
    snprintf(v, sizeof v, "%.4g", fisher);
    dry_line("fisher_flops_per_base", v, "%d JVP rows (the trace) + %s", C,
             exact ? "forming F and its eigenpairs (exact)" : "at least k JVP + VJP rows (Lanczos)");
    snprintf(v, sizeof v, "%.4g", optim);
    dry_line("optimizer_flops_per_base", v, "at most: %d starts x %d steps x (evaluation + VJP row)", sw->n_opt, its);
    snprintf(v, sizeof v, "%.3g", seconds);
    dry_line("local_seconds", v, "at %.3g FLOP/s (batch 0's rate), the optimiser at its cap: an upper bound", rate);
    return seconds;
}

/* The rows the busiest of R ranks evaluates when N of them come in batches of up to PER (the last one
 * short) handed out in turn (dispenser_next, batches of equal time): ceil(batches / R) batches, the
 * short one among them when no other rank has as many. A run smaller than one batch is N rows, not
 * PER (review: --dry-run timed 1023 rows for a run of 264). */
static double busiest_rows(double n, double per, int R)
{
    long parcels = (long)ceil(n / per), most = (parcels + R - 1) / R;
    if ((parcels - 1) % R == 0) /* the short parcel's rank is the only one with `most` */
        return (double)(most - 1) * per + (n - (double)(parcels - 1) * per);
    return (double)most * per;
}

/* The setup's prompts on its busiest rank: setup_share's largest share of N among R ranks. */
static int setup_busiest(int n, int chunk, int R)
{
    int most = 0, lo, hi;
    for (int r = 0; r < R; r++) {
        setup_share(n, chunk, r, R, &lo, &hi);
        most = hi - lo > most ? hi - lo : most;
    }
    return most;
}

/* --dry-run: the resolved config TEXT (freed here) and the run's size, memory and time on stdout. */
static int dry_report(const run_state *st, const pl_run_options *opt, const dry_sizes *z, const dry_measures *m,
                      char *text)
{
    const pl_sweep *sw = &st->sw;
    const pl_sweep_config *cfg = &st->cfg;
    int R = opt->dry_run_ranks ? opt->dry_run_ranks : st->size;
    int n_all = sw->P + cfg->cov_prompts, K = sw->steps;
    int chunk = setup_chunk(sw->T);
    long n_units = sw->n_units;
    /* linear in prompts and rows: the measured chunk's and batch 0's time per item, times the busiest rank's */
    int busy_prompts = setup_busiest(n_all, chunk, R);
    double setup_s = busy_prompts * m->t_chunk / m->n_chunk;
    double busy_rows = busiest_rows((double)n_units * K, (double)sw->batch_units * K, R);
    double sweep_s = busy_rows * m->t_batch / z->rows;
    char t_setup[64], t_sweep[64], t_all[64];
    format_duration(setup_s, t_setup, sizeof t_setup);
    format_duration(sweep_s, t_sweep, sizeof t_sweep);
    format_duration(setup_s + sweep_s, t_all, sizeof t_all);
    printf("; plateau run --dry-run: nothing was written; the run would be:\n%s\n[dry_run]\n", text);
    free(text);
    char v[64];
    snprintf(v, sizeof v, "%ld", n_units);
    if (sw->slice)
        dry_line("units", v, "%d prompts x %d bases x 1 slice (%s x %s) x %d samples", sw->P, sw->NB,
                 cfg->dirs[0].label, cfg->dirs[1].label, sw->S);
    else
        dry_line("units", v, "%d prompts x %d bases x %d directions x %d samples", sw->P, sw->NB, sw->ND, sw->S);
    snprintf(v, sizeof v, "%ld", n_units * K);
    if (sw->slice)
        dry_line("evaluations", v, "units x %d grid points (%d x %d: the slice), in %ld batches of up to %d units", K,
                 sw->n_alpha, sw->n_alpha, sw->n_batches, sw->batch_units);
    else
        dry_line("evaluations", v, "units x %d steps, in %ld batches of up to %d units", K, sw->n_batches,
                 sw->batch_units);
    snprintf(v, sizeof v, "%d", n_all);
    dry_line("setup_prompts", v, "clean forwards to %s: %d sweep + %d for Sigma", cfg->hook, sw->P, cfg->cov_prompts);
    snprintf(v, sizeof v, "%d", R);
    dry_line("ranks", v, "the estimate's (--ranks), each with %d OpenBLAS thread%s", cfg->threads,
             cfg->threads > 1 ? "s" : "");
    /* a comment line: the section's values are numbers, for scripts */
    char kernels[KERNELS_LEN];
    pl_compute_kernels(kernels, sizeof kernels);
    printf("; compute_kernels: %s; %s\n", kernels,
           pl_blas_kernel_slow() ? "this CPU has AVX-512 but OpenBLAS runs its AVX2 kernel: OPENBLAS_CORETYPE set to SkylakeX "
                                   "in every rank's environment runs sgemm ~2x faster (docs/performance.md)"
                                 : "OpenBLAS's sgemm kernel for this CPU (OPENBLAS_CORETYPE overrides it) and the "
                                   "vector exp/log; every rank must have the same");
    int nodes, n_node = dry_layout(st, opt, &nodes);
    int shared = n_node > 1 && cfg->shared_weights;
    snprintf(v, sizeof v, "%.0f", m->mapped);
    dry_line("memory_weights_mapped_bytes", v, "%.2f GiB: the weight files, mmapped read-only: one copy per node "
             "(page cache)", m->mapped / (1 << 30));
    snprintf(v, sizeof v, "%.0f", m->converted);
    dry_line("memory_weights_converted_bytes", v, "%.2f GiB: F16/BF16 weights in fp32 and the fused matrices: %s",
             m->converted / (1 << 30), shared ? "one copy per node (shared window)"
                                       : n_node > 1 ? "a copy per rank ([run] shared_weights = false)" : "one copy");
    if (m->sae_mapped > 0) {
        snprintf(v, sizeof v, "%.0f", m->sae_mapped);
        dry_line("memory_sae_mapped_bytes", v, "%.2f GiB: the SAE's weight file, mmapped read-only: one copy per node "
                 "(page cache)", m->sae_mapped / (1 << 30));
    }
    const char *window_dir;
    double window_free;
    if (shared && m->converted > 0 && (window_free = window_dir_free(&window_dir)) >= 0) {
        snprintf(v, sizeof v, "%.0f", window_free);
        dry_line("window_dir_free_bytes", v, "%.2f GiB free in %s on this machine now, where Open MPI keeps the node's window "
                 "(osc_sm_backing_directory)%s", window_free / (1 << 30), window_dir,
                 window_free < m->converted ? ": LESS than the converted weights, so the run would fail there; give "
                                              "it more room (a container's --shm-size) or set [run] shared_weights = "
                                              "false (a copy per rank)"
                                            : "");
    }
    snprintf(v, sizeof v, "%.0f", m->per_rank);
    dry_line("memory_per_rank_bytes", v, "%.2f GiB: each rank's own (batch buffers, clean runs' caches): the "
             "calibration batch's measured peak less the weights%s", m->per_rank / (1 << 30),
             z->cal_rows < z->rows ? ", its buffers scaled from shapes to the batch's rows" : "");
    snprintf(v, sizeof v, "%.0f", m->rank0);
    dry_line("memory_rank0_bytes", v, "%.2f GiB: + results table, its checkpoint and output images, activations, Sigma",
             m->rank0 / (1 << 30));
    snprintf(v, sizeof v, "%d", nodes);
    dry_line("nodes", v, "%d rank%s on each node (--ranks-per-node; default all on one)%s", n_node,
             n_node > 1 ? "s" : "", R % n_node ? ", fewer on the last" : "");
    snprintf(v, sizeof v, "%.0f", m->per_node);
    dry_line("memory_per_node_bytes", v, "%.2f GiB: %d rank%s on rank 0's node: mapped%s + converted%s + %d x per "
             "rank + rank 0's extra", m->per_node / (1 << 30), n_node, n_node > 1 ? "s" : "",
             m->sae_mapped > 0 ? " + SAE" : "", shared || n_node == 1 ? "" : " x ranks", n_node);
    snprintf(v, sizeof v, "%.3g", setup_s);
    dry_line("setup_seconds", v, "%s: %d prompts took %.3g s here; the busiest rank's %d prompts", t_setup,
             m->n_chunk, m->t_chunk, busy_prompts);
    snprintf(v, sizeof v, "%.3g", sweep_s);
    dry_line("sweep_seconds", v, "%s: batch 0 (%.0f rows) took %.3g s here%s%s; the busiest rank's %.0f rows", t_sweep,
             z->rows, m->t_batch, z->cal_rows < z->rows ? " (timed on its first rows, scaled)" : "",
             sw->naive ? " (--naive: one row, times the rows)" : "", busy_rows);
    double local_s = sw->naive ? 0.0 : dry_local(st, m->t_batch, z->rows, R);
    format_duration(setup_s + sweep_s + local_s, t_all, sizeof t_all);
    snprintf(v, sizeof v, "%.3g", setup_s + sweep_s + local_s);
    dry_line("time_seconds", v, "%s on %d rank%s, one core per rank%s; writing and statistics not counted", t_all, R,
             R > 1 ? "s" : "", local_s > 0 ? ", local geometry included" : "");
    return fflush(stdout) == 0 ? PL_OK : pl_fail("stdout: write error");
}

/* --dry-run's memory (M's figures): the weights from the files (pl_model_weight_bytes: the mmapped
 * files; the converted and fused fp32 weights, one copy per node in the shared window under MPI), each
 * rank's own as the calibration's measured peak less the weights (at least its buffers from shapes:
 * a weight page never touched is not in the peak), its rows' buffers scaled to the batch's; rank 0's
 * node of n ranks (dry_layout) adds them up. */
static int dry_weights(const run_state *st, const pl_run_options *opt, const dry_sizes *z, dry_measures *m)
{
    const pl_sweep *sw = &st->sw;
    const pl_model_info *mc = pl_model_get_info(st->model);
    size_t converted, mapped;
    if (pl_model_weight_bytes(st->cfg.model_path, &converted, &mapped) != PL_OK)
        return PL_ERR;
    int nodes, n = dry_layout(st, opt, &nodes);
    m->mapped = (double)mapped;
    m->converted = (double)converted;
    m->sae_mapped = sw->sae.file_open ? (double)sw->sae.file.size : 0.0;
    double own = peak_rss_bytes() - m->mapped - m->converted - m->sae_mapped, floor = batch_row_bytes(sw, mc, z->cal_rows);
    m->per_rank = (own > floor ? own : floor) + batch_row_bytes(sw, mc, z->rows) - batch_row_bytes(sw, mc, z->cal_rows);
    m->rank0 = m->per_rank + 3 * z->curves + z->fit;
    int copies = n > 1 && !st->cfg.shared_weights ? n : 1;
    m->per_node = m->mapped + m->sae_mapped + copies * m->converted + n * m->per_rank + (m->rank0 - m->per_rank);
    return PL_OK;
}

/* plateau run --dry-run: what setup() checks (config, paths, model, SAE, data) without writing
 * anything, then the resolved config and the run's size, memory and time on stdout, as INI. */
static int dry_run(run_state *st, const char *config_path, char *const *sets, int n_sets, const char *output,
                   const pl_run_options *opt)
{
    if (dry_open(st, config_path, sets, n_sets, output, opt) != PL_OK)
        return PL_ERR;
    pl_sweep *sw = &st->sw;
    const pl_model_info *mc = pl_model_get_info(st->model);
    dry_sizes z; /* on paper first: nothing of the run's size is allocated for a run that cannot fit */
    if (dry_size(sw, mc, st->cfg.cov_prompts, &z) != PL_OK)
        return PL_ERR;
    dry_measures m = {0};
    if (calibrate(st, &m.t_chunk, &m.n_chunk, &m.t_batch) != PL_OK)
        return PL_ERR;
    m.t_batch *= z.rows / z.cal_rows;
    /* Every rank: what the calibration's batch used at its peak (the model's pages it touched, the
     * clean runs, the fast path's buffers), measured, its rows' buffers scaled on paper to the batch's.
     * Rank 0 adds the results table (the curves, its checkpoint image and the output built in memory:
     * three copies), the setup's activations and the Gaussian fit (mu, Sigma, its factor, eigen work). */
    if (dry_weights(st, opt, &z, &m) != PL_OK)
        return PL_ERR;
    /* one process's view, as the physical memory check needs it */
    double weights = m.mapped + m.converted + m.sae_mapped;
    char *text = check_memory(weights + m.per_rank, weights + m.rank0, z.curves) == PL_OK
                     ? pl_sweep_config_text(&st->cfg, 0) : NULL;
    if (!text)
        return PL_ERR;
    return dry_report(st, opt, &z, &m, text);
}

/* Evaluate batch B between two checks that every input (model, SAE, direction files, prompts) is
 * still the file opened (plateau/watch.h): a batch that passes was computed before any change (a
 * rewrite changes the modification time), so no stored unit mixes two versions of an input; the
 * check before keeps a batch from touching pages a truncation has removed (SIGBUS). Returns PL_OK,
 * PL_ERR_BAD_INPUT or PL_ERR. */
static int eval_batch_checked(const pl_sweep *sw, pl_unit_cache *cache, long b, float *out)
{
    if (pl_watch_check() != PL_OK)
        return PL_ERR_BAD_INPUT;
    int rc = pl_batch_eval(sw, cache, b, out);
    if (rc == PL_OK && pl_watch_check() != PL_OK)
        rc = PL_ERR_BAD_INPUT;
    return rc;
}

/* ------------------------------------------------------------ optimisations in flight
 *
 * The `optimized` kind's optimisations save their state into the run's pl_opt_store every [run]
 * checkpoint_every seconds and when the run stops (local_ops.c): rank 0's compute thread into rank 0's
 * store, which every checkpoint writes; a worker sends each state to rank 0 (MSG_OPTSTATE) from
 * between two optimiser steps, in its main thread. A worker stops mid-optimisation on its own signal
 * or on rank 0's STOP, which it looks for between the steps (MPI_Test of the receive it has posted).
 * Rank 0 sends its states (--resume: the checkpoint's; else none) to every worker (TAG_STATES) before
 * any batch, and every worker waits for them. */

/* Test-only (tests/sweep/test_optresume.py): PLATEAU_TEST_SIGTERM_AFTER_OPT_STEPS=N makes a process send
 * itself SIGTERM before its N-th optimiser step and wait for it to land, so that a test stops a run
 * mid-optimisation at a place fixed by the work done, not by time. */
static long g_test_stop_after = -1, g_opt_steps = 0;

static void test_stop_init(void)
{
    const char *v = getenv("PLATEAU_TEST_SIGTERM_AFTER_OPT_STEPS");
    g_test_stop_after = v && *v ? strtol(v, NULL, 10) : -1;
}

static void test_stop_step(void)
{
    if (g_test_stop_after < 0 || ++g_opt_steps != g_test_stop_after)
        return;
    kill(getpid(), SIGTERM); /* to the process: rank 0's main thread takes it */
    for (int i = 0; i < 10000 && !g_stop; i++)
        nap();
}

/* Rank 0's compute thread, between two optimiser steps. */
static int rank0_stopping(void *ctx)
{
    (void)ctx;
    test_stop_step();
    return g_stop != 0;
}

/* A worker's view while it computes: the STOP (or unit) receive it has posted. */
typedef struct {
    MPI_Request *req;
    int64_t *incoming;
    int stop_seen;      /* STOP arrived during a batch */
    unsigned char *buf; /* MSG_OPTSTATE's */
    size_t buf_size;
} worker_watch;

static int worker_stopping(void *ctx)
{
    worker_watch *w = ctx;
    test_stop_step();
    if (!w->stop_seen) {
        int flag = 0;
        MPI_Test(w->req, &flag, MPI_STATUS_IGNORE);
        /* rank 0 sends a worker nothing but STOP while it has a batch (QUEUE_DEPTH 1) */
        if (flag && *w->incoming == STOP_UNIT)
            w->stop_seen = 1;
    }
    return g_stop || w->stop_seen;
}

/* MSG_OPTSTATE: int64 kind, int64 0, then int32 p, b, s, u64 len, the state. */
static void worker_publish(void *ctx, const pl_opt_saved *e)
{
    worker_watch *w = ctx;
    size_t n = 16 + 20 + e->len;
    if (n > w->buf_size) {
        unsigned char *nb = realloc(w->buf, n);
        if (!nb) {
            fprintf(stderr, "plateau: out of memory (an optimiser state, %zu bytes)\n", n);
            MPI_Abort(MPI_COMM_WORLD, PL_EXIT_FAULT);
        }
        w->buf = nb, w->buf_size = n;
    }
    int64_t head[2] = {MSG_OPTSTATE, 0};
    int32_t key[3] = {e->p, e->b, e->s};
    uint64_t len = e->len;
    memcpy(w->buf, head, 16);
    memcpy(w->buf + 16, key, 12);
    memcpy(w->buf + 28, &len, 8);
    if (e->len)
        memcpy(w->buf + 36, e->bytes, e->len);
    MPI_Send(w->buf, (int)n, MPI_BYTE, 0, TAG_WORKER, MPI_COMM_WORLD);
}

/* Rank 0: a worker's MSG_OPTSTATE payload (after the 16-byte head) into the store. */
static int take_optstate(pl_opt_store *store, const unsigned char *p, size_t n)
{
    int32_t key[3];
    uint64_t len;
    if (n < 20)
        return pl_fail("an optimiser state message of %zu bytes", n);
    memcpy(key, p, 12);
    memcpy(&len, p + 12, 8);
    if (len != n - 20)
        return pl_fail("an optimiser state message of %zu bytes says %llu", n, (unsigned long long)len);
    return pl_opt_store_put(store, key[0], key[1], key[2], p + 20, (size_t)len);
}

/* --resume: rank 0 sends its store (the checkpoint's states) to every worker. */
static void send_states(run_state *st)
{
    unsigned char *bytes = NULL;
    size_t len = 0;
    if (pl_opt_store_bytes(st->sw.opt_store, &bytes, &len) != PL_OK || len > INT_MAX) {
        fprintf(stderr, "plateau: %s\n", len > INT_MAX ? "optimiser states over 2 GiB" : pl_error());
        MPI_Abort(MPI_COMM_WORLD, PL_EXIT_FAULT);
    }
    for (int r = 1; r < st->size; r++)
        MPI_Send(bytes, (int)len, MPI_BYTE, r, TAG_STATES, MPI_COMM_WORLD);
    free(bytes);
}

/* A worker, before its first batch: rank 0's states. */
static void receive_states(run_state *st)
{
    MPI_Status status;
    int n;
    MPI_Probe(0, TAG_STATES, MPI_COMM_WORLD, &status);
    MPI_Get_count(&status, MPI_BYTE, &n);
    unsigned char *bytes = malloc(n > 0 ? (size_t)n : 1);
    if (!bytes) {
        fprintf(stderr, "plateau: rank %d: out of memory (optimiser states)\n", st->rank);
        MPI_Abort(MPI_COMM_WORLD, PL_EXIT_FAULT);
    }
    MPI_Recv(bytes, n, MPI_BYTE, 0, TAG_STATES, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    if (pl_opt_store_parse(st->sw.opt_store, bytes, (size_t)n, pl_opt_state_max(&st->sw)) != PL_OK) {
        fprintf(stderr, "plateau: rank %d: %s\n", st->rank, pl_error());
        MPI_Abort(MPI_COMM_WORLD, PL_EXIT_FAULT);
    }
    free(bytes);
}

/* ------------------------------------------------------------ batch hand-out (rank 0) */

typedef struct {
    const pl_sweep *sw;
    long next;      /* batches below this have gone out or were done before */
} dispenser;

static int batch_done(const pl_sweep *sw, const unsigned char *done, long b)
{
    int n;
    long first = pl_batch_first_unit(sw, b, &n);
    for (int i = 0; i < n; i++)
        if (!done[first + i])
            return 0;
    return 1;
}

static void dispenser_init(dispenser *ds, const pl_sweep *sw)
{
    ds->sw = sw;
    ds->next = 0;
}

/* The next batch with work left (a resumed run skips finished ones), or -1 when all are out. */
static long dispenser_next(dispenser *ds, const unsigned char *done)
{
    while (ds->next < ds->sw->n_batches && batch_done(ds->sw, done, ds->next))
        ds->next++;
    return ds->next < ds->sw->n_batches ? ds->next++ : -1;
}

/* ------------------------------------------------------------ rank 0's local worker (a thread) */

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t wake; /* to the thread: a batch or quit */
    pthread_cond_t done; /* from the thread: its batch is finished */
    pthread_t thread;
    int started;
    const pl_sweep *sw;
    pl_unit_cache cache;
    float *out;          /* [batch_units, NM, steps]; the thread's while busy */
    long batch;          /* the batch it computes (valid while busy) */
    int busy;            /* handed a batch, result not yet taken */
    int finished;        /* the batch is computed (or failed: error[0] != 0) */
    int bad_input;       /* the failure was bad input (PL_ERR_BAD_INPUT) */
    int preempted;       /* given up mid-optimisation as the run stops (PL_ERR_PREEMPTED): not a failure */
    int quit;
    double t_given;      /* when the batch was handed over (main thread only) */
    double batch_seconds; /* how long its last batch took, 0 before the first (main thread only) */
    char error[MAX_ERROR_TEXT];
} local_worker;

static void *local_worker_main(void *arg)
{
    local_worker *lw = arg;
    /* signals go to the main thread, whose handler may print the work table */
    block_run_signals();
    pthread_mutex_lock(&lw->lock);
    for (;;) {
        while (!lw->quit && !(lw->busy && !lw->finished))
            pthread_cond_wait(&lw->wake, &lw->lock);
        if (lw->quit)
            break;
        long b = lw->batch;
        pthread_mutex_unlock(&lw->lock);
        int rc = eval_batch_checked(lw->sw, &lw->cache, b, lw->out);
        pthread_mutex_lock(&lw->lock);
        lw->error[0] = '\0';
        lw->bad_input = rc == PL_ERR_BAD_INPUT;
        lw->preempted = rc == PL_ERR_PREEMPTED;
        if (rc != PL_OK) /* pl_error() is per thread: take the message here */
            snprintf(lw->error, sizeof lw->error, "%s", pl_error()[0] ? pl_error() : "unknown error");
        lw->finished = 1;
        pthread_cond_signal(&lw->done);
    }
    pthread_mutex_unlock(&lw->lock);
    return NULL;
}

static int local_worker_start(local_worker *lw, const pl_sweep *sw, size_t batch_floats)
{
    memset(lw, 0, sizeof *lw);
    lw->sw = sw;
    pl_unit_cache_init(&lw->cache);
    lw->out = malloc(sizeof(float) * batch_floats);
    if (!lw->out)
        return pl_fail("out of memory (rank 0's batch)");
    pthread_mutex_init(&lw->lock, NULL);
    pthread_cond_init(&lw->wake, NULL);
    cond_init_monotonic(&lw->done);
    if (pthread_create(&lw->thread, NULL, local_worker_main, lw) != 0)
        return pl_fail("cannot start rank 0's compute thread");
    lw->started = 1;
    return PL_OK;
}

static void local_worker_give(local_worker *lw, long b)
{
    pthread_mutex_lock(&lw->lock);
    lw->batch = b;
    lw->busy = 1;
    lw->finished = 0;
    lw->t_given = now_seconds();
    pthread_cond_signal(&lw->wake);
    pthread_mutex_unlock(&lw->lock);
}

/* 1 when the batch it had is done (its result in lw->out, or lw->error set); it is then idle. */
static int local_worker_take(local_worker *lw)
{
    pthread_mutex_lock(&lw->lock);
    int done = lw->busy && lw->finished;
    if (done)
        lw->busy = 0;
    pthread_mutex_unlock(&lw->lock);
    if (done)
        lw->batch_seconds = now_seconds() - lw->t_given;
    return done;
}

/* Rank 0's main thread with nothing to do: wait until the local worker's batch is finished, or
 * SECONDS pass (the workers' messages and the signals are polled for in between). */
static void local_worker_wait(local_worker *lw, double seconds)
{
    pthread_mutex_lock(&lw->lock);
    int computing = lw->busy && !lw->finished;
    if (computing)
        cond_wait_for(&lw->done, &lw->lock, seconds);
    pthread_mutex_unlock(&lw->lock);
    if (!computing)
        nap_for(seconds);
}

static int local_worker_busy(local_worker *lw)
{
    pthread_mutex_lock(&lw->lock);
    int busy = lw->busy;
    pthread_mutex_unlock(&lw->lock);
    return busy;
}

/* Stop the thread once its current batch (if any) is done. */
static void local_worker_stop(local_worker *lw)
{
    if (lw->started) {
        pthread_mutex_lock(&lw->lock);
        lw->quit = 1;
        pthread_cond_signal(&lw->wake);
        pthread_mutex_unlock(&lw->lock);
        pthread_join(lw->thread, NULL);
        pthread_mutex_destroy(&lw->lock);
        pthread_cond_destroy(&lw->wake);
        pthread_cond_destroy(&lw->done);
    }
    pl_unit_cache_free(&lw->cache);
    free(lw->out);
    lw->started = 0;
    lw->out = NULL;
}

/* ------------------------------------------------------------ rank 0 */

typedef struct {
    long queue[QUEUE_DEPTH]; /* outstanding batches, oldest first */
    int n_out;
    double last_heard;
    int stopped;          /* BYE received */
} worker_info;

typedef struct {
    run_state *st;
    pl_results res;
    dispenser ds;
    worker_info *w;       /* [size]; w[0] is rank 0 itself */
    double gap_max;       /* longest silence of a working worker so far */
    int draining;         /* STOP sent: every worker owes a BYE */
    long done_session;    /* units completed in this process's lifetime */
    double t_start, t_ckpt, t_progress;
    char bad_input[MAX_ERROR_TEXT + 768]; /* the first bad-input report: the run stops with exit 2 */
    int ckpt_ours;        /* the file at the checkpoint path is the one written or read by this run */
    dev_t ckpt_dev;
    ino_t ckpt_ino;
    unsigned char *buf;
    size_t buf_size;
} master;

/* Remember the file now at the checkpoint path as this run's: only that one is removed at the end. */
static void note_checkpoint_ours(master *ms)
{
    struct stat sb;
    ms->ckpt_ours = stat(ms->st->cfg.checkpoint_path, &sb) == 0;
    ms->ckpt_dev = sb.st_dev;
    ms->ckpt_ino = sb.st_ino;
}

/* Whether base (p, b, s) has a unit not yet stored (pl_opt_store_prune's test). */
static int base_needed(void *ctx, int p, int b, int s)
{
    const master *ms = ctx;
    const pl_sweep *sw = &ms->st->sw;
    if (sw->n_pos > 1) /* whole contexts: the base of a site (prompt, position), experiment prompt p */
        p /= sw->n_pos;
    if (p >= sw->P || b >= sw->NB)
        return 0;
    long first = ((long)p * sw->NB + b) * sw->ND * sw->S; /* units are prompt-, then base-major */
    for (long u = first; u < first + (long)sw->ND * sw->S; u++)
        if (!ms->res.done[u] && pl_base_sample(sw->cfg, pl_unit_decode(sw, u)) == s)
            return 1;
    return 0;
}

static int checkpoint_now(master *ms, const char *why)
{
    run_state *st = ms->st;
    if (st->sw.opt_store) /* only what a resumed run may still need */
        pl_opt_store_prune(st->sw.opt_store, base_needed, ms);
    if (pl_checkpoint_write(st->cfg.checkpoint_path, &ms->res, st->hashed_text, st->model_sha, st->data_sha) !=
        PL_OK) {
        fprintf(stderr, "plateau: %s\n", pl_error());
        return PL_ERR;
    }
    ms->t_ckpt = now_seconds();
    note_checkpoint_ours(ms);
    if (why && !st->quiet)
        fprintf(stderr, "plateau: checkpoint %s written (%ld/%ld units; %s)\n", st->cfg.checkpoint_path,
                ms->res.n_done, st->sw.n_units, why);
    return PL_OK;
}

static double evals_per_second(const master *ms)
{
    double dt = now_seconds() - ms->t_start;
    return dt > 0 ? ms->done_session * (double)ms->st->sw.steps / dt : 0.0;
}

static void progress(master *ms, int final)
{
    run_state *st = ms->st;
    double t = now_seconds();
    if (st->quiet || (!final && t - ms->t_progress < 5.0))
        return;
    ms->t_progress = t;
    double rate = evals_per_second(ms) / st->sw.steps;
    char eta[32];
    format_duration(rate > 0 ? (st->sw.n_units - ms->res.n_done) / rate : NAN, eta, sizeof eta);
    fprintf(stderr, "plateau: %ld/%ld units (%.1f%%), %.0f evals/s, ETA %s\n", ms->res.n_done, st->sw.n_units,
            100.0 * ms->res.n_done / st->sw.n_units, evals_per_second(ms), eta);
}

/* Record batch B's curves (CURVES[n_units, unit_floats]: each unit's [NM, NPC, steps], then its NX extras); units already done (a resumed run) keep
 * their values, which are the same bits. */
static void store_result(master *ms, long b, const float *curves)
{
    const pl_sweep *sw = &ms->st->sw;
    if (b < 0 || b >= sw->n_batches)
        return;
    int n;
    long first = pl_batch_first_unit(sw, b, &n);
    size_t per = (size_t)sw->NM * sw->NPC * sw->steps;
    for (int i = 0; i < n; i++) {
        long u = first + i;
        if (ms->res.done[u])
            continue;
        const float *unit = curves + (size_t)i * sw->unit_floats; /* its curves, then its extras */
        memcpy(ms->res.curves + (size_t)u * per, unit, sizeof(float) * per);
        if (sw->NX)
            memcpy(ms->res.local + (size_t)u * sw->NX, unit + per, sizeof(float) * sw->NX);
        ms->res.done[u] = 1;
        ms->res.n_done++;
        ms->done_session++;
    }
}

static void update_work_text(master *ms);

static void send_batch(master *ms, int r, long b)
{
    worker_info *wi = &ms->w[r];
    if (wi->n_out == 0)
        wi->last_heard = now_seconds(); /* the silence clock starts when it has work */
    wi->queue[wi->n_out++] = b;
    int64_t msg = b;
    MPI_Send(&msg, 1, MPI_INT64_T, r, TAG_UNIT, MPI_COMM_WORLD);
    update_work_text(ms);
}

static void fill_worker(master *ms, int r)
{
    while (ms->w[r].n_out < QUEUE_DEPTH) {
        long b = dispenser_next(&ms->ds, ms->res.done);
        if (b < 0)
            break;
        send_batch(ms, r, b);
    }
}

/* Abort the job: a worker failed or went silent. The checkpoint keeps every completed unit. */
static void fault(master *ms, const char *what)
{
    fprintf(stderr, "plateau: %s\n", what);
    if (checkpoint_now(ms, NULL) == PL_OK)
        fprintf(stderr, "plateau: checkpoint %s holds %ld/%ld units; fix the cause and run again with --resume\n",
                ms->st->cfg.checkpoint_path, ms->res.n_done, ms->st->sw.n_units);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, PL_EXIT_FAULT);
    _exit(PL_EXIT_FAULT);
}

/* Batch B came back from worker WI (a result or a report): it is no longer outstanding there. Batches
 * come back in the order they were sent; look further anyway. */
static void forget_batch(master *ms, worker_info *wi, long b)
{
    for (int k = 0; k < wi->n_out; k++)
        if (wi->queue[k] == b) {
            memmove(wi->queue + k, wi->queue + k + 1, sizeof(long) * (wi->n_out - k - 1));
            wi->n_out--;
            update_work_text(ms);
            return;
        }
}

/* Handle every message waiting from the workers. Returns the first signal a worker reported. */
static int poll_workers(master *ms, int *progressed)
{
    run_state *st = ms->st;
    const pl_sweep *sw = &st->sw;
    int signalled = 0;
    for (;;) {
        int flag = 0;
        MPI_Status status;
        MPI_Iprobe(MPI_ANY_SOURCE, TAG_WORKER, MPI_COMM_WORLD, &flag, &status);
        if (!flag)
            break;
        int r = status.MPI_SOURCE, n;
        MPI_Get_count(&status, MPI_BYTE, &n);
        if ((size_t)n > ms->buf_size || n < 16) {
            char what[128];
            snprintf(what, sizeof what, "rank %d sent a malformed message (%d bytes)", r, n);
            fault(ms, what);
        }
        MPI_Recv(ms->buf, n, MPI_BYTE, r, TAG_WORKER, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        int64_t kind, unit;
        memcpy(&kind, ms->buf, 8);
        memcpy(&unit, ms->buf + 8, 8);
        worker_info *wi = &ms->w[r];
        double t = now_seconds();
        if (wi->n_out > 0 && t - wi->last_heard > ms->gap_max)
            ms->gap_max = t - wi->last_heard;
        wi->last_heard = t;
        *progressed = 1;
        if (kind == MSG_RESULT) {
            forget_batch(ms, wi, (long)unit);
            store_result(ms, (long)unit, (const float *)(ms->buf + 16));
        } else if (kind == MSG_ERROR) {
            char name[512], what[MAX_ERROR_TEXT + 768];
            batch_name(sw, (long)unit, name, sizeof name);
            ms->buf[n - 1] = '\0';
            snprintf(what, sizeof what, "rank %d failed on %s: %s", r, name, (const char *)(ms->buf + 16));
            fault(ms, what);
        } else if (kind == MSG_BAD_INPUT) {
            if (!ms->bad_input[0]) { /* the message names the unit */
                ms->buf[n - 1] = '\0';
                snprintf(ms->bad_input, sizeof ms->bad_input, "rank %d: %s", r, (const char *)(ms->buf + 16));
            }
            forget_batch(ms, wi, (long)unit);
        } else if (kind == MSG_OPTSTATE) {
            if (st->sw.opt_store && take_optstate(st->sw.opt_store, ms->buf + 16, (size_t)n - 16) != PL_OK) {
                char what[MAX_ERROR_TEXT + 64];
                snprintf(what, sizeof what, "rank %d: %s", r, pl_error());
                fault(ms, what);
            }
        } else if (kind == MSG_PREEMPTED) {
            forget_batch(ms, wi, (long)unit); /* given up mid-optimisation: its state came before */
        } else if (kind == MSG_SIGNALLED) {
            signalled = (int)unit;
        } else if (kind == MSG_BYE) {
            wi->stopped = 1;
        }
    }
    return signalled;
}

/* A worker with work outstanding that has been silent too long is lost. */
static void check_timeouts(master *ms)
{
    run_state *st = ms->st;
    double t = now_seconds();
    double slow = ms->gap_max > st->unit_estimate ? ms->gap_max : st->unit_estimate;
    double limit = st->cfg.worker_timeout + 2.0 * slow;
    for (int r = 1; r < st->size; r++) {
        worker_info *wi = &ms->w[r];
        if (!wi->stopped && (wi->n_out > 0 || ms->draining) && t - wi->last_heard > limit) {
            char name[512], what[1024];
            if (wi->n_out > 0)
                batch_name(&st->sw, wi->queue[0], name, sizeof name);
            else
                snprintf(name, sizeof name, "no unit (stopping)");
            snprintf(what, sizeof what,
                     "rank %d stopped answering: no message for %.1f s (limit %.1f s = worker_timeout %.1f s + 2 x "
                     "the slowest batch %.2f s) while computing %s",
                     r, t - wi->last_heard, limit, st->cfg.worker_timeout, slow, name);
            fault(ms, what);
        }
    }
}

/* Rebuild the text the signal handler prints: one line per worker with a batch outstanding. */
static void update_work_text(master *ms)
{
    int next = 1 - g_work_current;
    char *buf = g_work_text[next];
    size_t used = 0, cap = sizeof g_work_text[next];
    for (int r = 1; r < ms->st->size && used < cap; r++)
        if (ms->w[r].n_out > 0) {
            char name[512];
            batch_name(&ms->st->sw, ms->w[r].queue[0], name, sizeof name);
            int n = snprintf(buf + used, cap - used, "plateau: rank %d was computing %s\n", r, name);
            used += n > 0 ? (size_t)n : 0;
        }
    g_work_len[next] = (sig_atomic_t)(used < cap ? used : cap - 1);
    g_work_current = next;
}

/* The work table, unless the signal handler printed it already. */
static void describe_outstanding(void)
{
    if (g_work_told)
        return;
    int i = g_work_current;
    fwrite(g_work_text[i], 1, (size_t)g_work_len[i], stderr);
}

/* The finished result to the writer the CLI registered (the sweep does not link the io library). */
static int write_result(const pl_results *res, const pl_output_meta *meta, const pl_run_options *opt)
{
    if (!opt->write_result)
        return pl_fail("output %s: no result writer registered", res->sw->cfg->output_path);
    pl_result_export e;
    if (pl_results_export(res, meta, &e) != PL_OK)
        return PL_ERR;
    int rc = opt->write_result(res->sw->cfg->output_path, &e.r);
    pl_result_export_free(&e);
    return rc;
}

/* Rank 0: --resume reads the checkpoint into the results table (none there: start from the
 * beginning). Returns an exit code; the table is freed unless PL_EXIT_OK. */
static int master_resume(master *ms, const pl_run_options *opt)
{
    run_state *st = ms->st;
    if (!opt->resume)
        return PL_EXIT_OK;
    if (access(st->cfg.checkpoint_path, F_OK) != 0) {
        if (!st->quiet)
            fprintf(stderr, "plateau: --resume: no checkpoint at %s; starting from the beginning\n",
                    st->cfg.checkpoint_path);
    } else if (pl_checkpoint_read(st->cfg.checkpoint_path, &ms->res, st->hashed_text, st->model_sha,
                                  st->data_sha) != PL_OK) {
        fprintf(stderr, "plateau: %s\n", pl_error());
        pl_results_free(&ms->res);
        return PL_EXIT_INPUT;
    } else {
        note_checkpoint_ours(ms);
        if (!st->quiet)
            fprintf(stderr, "plateau: resuming from %s: %ld/%ld units done%s\n", st->cfg.checkpoint_path,
                    ms->res.n_done, st->sw.n_units,
                    st->sw.opt_store && st->sw.opt_store->n ? ", optimisations under way go on where they were" : "");
    }
    return PL_EXIT_OK;
}

/* Rank 0's own share, computed by its local worker thread LW: a finished batch is stored (or its
 * failure reported), and an idle thread gets the next batch. Returns 1 if a batch finished. */
static int serve_local_worker(master *ms, local_worker *lw)
{
    int progressed = 0;
    if (local_worker_take(lw)) {
        if (lw->preempted) {
            /* stopping: the batch is given up, its optimisation's state is in the store */
        } else if (lw->error[0] && lw->bad_input) {
            snprintf(ms->bad_input, sizeof ms->bad_input, "%s", lw->error);
        } else if (lw->error[0]) {
            char name[512], what[MAX_ERROR_TEXT + 768];
            batch_name(&ms->st->sw, lw->batch, name, sizeof name);
            snprintf(what, sizeof what, "rank 0 failed on %s: %s", name, lw->error);
            fault(ms, what);
        } else {
            store_result(ms, lw->batch, lw->out);
        }
        progressed = 1;
    }
    if (!local_worker_busy(lw) && !ms->bad_input[0]) {
        long b = dispenser_next(&ms->ds, ms->res.done);
        if (b >= 0)
            local_worker_give(lw, b);
    }
    return progressed;
}

/* Rank 0's main thread between two polls while every rank computes. A worker's result waits for the
 * next poll, and the worker for its next batch: about half the interval, ~1/1000 of a batch (at least
 * the 1 ms of nap). Rank 0's own batch ends the wait at once. Polling every millisecond instead cost
 * ~2 % of a core (each wakeup ~30 us of system and MPI time on a virtual machine) and as many
 * preemptions of a compute thread, once the ranks fill the cores. */
static double poll_interval(const master *ms, const local_worker *lw)
{
    /* before rank 0's first batch is back, the estimate from the clean forwards */
    double t = (lw->batch_seconds > 0 ? lw->batch_seconds : ms->st->unit_estimate) / 512;
    return t < 1e-3 ? 1e-3 : t > 8e-3 ? 8e-3 : t;
}

/* Rank 0: hand out batches and collect their results until every unit is done, a signal comes
 * (*PREEMPT), a bad input is reported or a periodic checkpoint fails. Returns an exit code. */
static int hand_out_batches(master *ms, local_worker *lw, int *preempt)
{
    run_state *st = ms->st;
    const pl_sweep *sw = &st->sw;
    for (int r = 1; r < st->size; r++)
        fill_worker(ms, r);
    while (ms->res.n_done < sw->n_units) {
        int progressed = 0;
        int sig = poll_workers(ms, &progressed);
        if (!sig && g_signal)
            sig = g_signal;
        if (sig) {
            *preempt = sig;
            break;
        }
        if (ms->bad_input[0])
            break;
        for (int r = 1; r < st->size; r++)
            fill_worker(ms, r);
        check_timeouts(ms);
        if (serve_local_worker(ms, lw))
            progressed = 1;
        if (!progressed)
            local_worker_wait(lw, poll_interval(ms, lw));
        progress(ms, 0);
        if (now_seconds() - ms->t_ckpt >= st->cfg.checkpoint_every && ms->res.n_done < sw->n_units) {
            if (checkpoint_now(ms, "periodic") != PL_OK)
                return PL_EXIT_INPUT;
        }
    }
    return PL_EXIT_OK;
}

/* Rank 0: stop every rank, keeping the batches in flight; on a signal (PREEMPT), checkpoint first.
 * Returns CODE, or PL_EXIT_INPUT if that checkpoint failed. */
static int stop_workers(master *ms, local_worker *lw, int preempt, int code)
{
    run_state *st = ms->st;
    if (preempt) {
        /* Write what we have first: the launcher may follow its signal with SIGKILL soon. */
        char why[64];
        snprintf(why, sizeof why, "%s received", signal_name(preempt));
        fprintf(stderr, "plateau: %s: stopping\n", why);
        describe_outstanding();
        g_stop = 1; /* rank 0's own optimisation under way saves its state and stops */
        if (checkpoint_now(ms, why) != PL_OK)
            code = PL_EXIT_INPUT;
    }
    /* rank 0's own batch in flight is finished and kept, as the workers' are */
    if (local_worker_busy(lw)) {
        while (!local_worker_take(lw))
            local_worker_wait(lw, 0.01);
        if (!lw->error[0])
            store_result(ms, lw->batch, lw->out);
        else if (lw->bad_input && !ms->bad_input[0])
            snprintf(ms->bad_input, sizeof ms->bad_input, "%s", lw->error);
    }
    local_worker_stop(lw);
    /* stop the workers and collect what they still had */
    ms->draining = 1;
    for (int r = 1; r < st->size; r++) {
        int64_t stop = STOP_UNIT;
        if (ms->w[r].n_out == 0)
            ms->w[r].last_heard = now_seconds();
        MPI_Send(&stop, 1, MPI_INT64_T, r, TAG_UNIT, MPI_COMM_WORLD);
    }
    for (;;) {
        int all_stopped = 1, progressed = 0;
        for (int r = 1; r < st->size; r++)
            all_stopped &= ms->w[r].stopped;
        if (all_stopped)
            break;
        poll_workers(ms, &progressed);
        check_timeouts(ms);
        if (!progressed)
            nap();
    }
    return code;
}

/* Rank 0, every unit done: write the output (unless an input changed meanwhile) and remove this
 * run's checkpoint; on failure keep every unit in the checkpoint. Returns an exit code. */
static int finish_run(master *ms, const pl_run_options *opt)
{
    run_state *st = ms->st;
    int code = PL_EXIT_OK;
    progress(ms, 1);
    pl_output_meta meta = {
        .config_text = st->config_text,
        .model_sha256 = st->model_sha,
        .model_config_sha256 = pl_model_config_sha256(st->model),
        .synthetic_model = pl_model_get_info(st->model)->synthetic,
        .n_ranks = st->size,
        .evals_per_second = evals_per_second(ms),
        .sigma_note = st->sigma_note,
        .threads = st->cfg.threads,
        .openblas_config = openblas_get_config(),
        .command_line = st->command_line,
    };
    if (pl_watch_check() != PL_OK) {
        /* every stored batch passed the same check when it was computed: the checkpoint is sound */
        code = PL_EXIT_INPUT;
        char why[MAX_ERROR_TEXT];
        snprintf(why, sizeof why, "%s", pl_error());
        if (checkpoint_now(ms, NULL) == PL_OK)
            fprintf(stderr, "plateau: %s; no output written (its inputs would not be the ones it names); checkpoint "
                    "%s holds every unit, computed with the inputs as opened\n", why, st->cfg.checkpoint_path);
        else
            fprintf(stderr, "plateau: %s; no output written (its inputs would not be the ones it names)\n", why);
    } else if (pl_results_finish(&ms->res) != PL_OK || write_result(&ms->res, &meta, opt) != PL_OK) {
        fprintf(stderr, "plateau: %s\n", pl_error());
        code = PL_EXIT_INPUT;
        /* keep the work: every unit is in the checkpoint, so --resume (-o elsewhere) only writes */
        if (checkpoint_now(ms, NULL) == PL_OK)
            fprintf(stderr, "plateau: all %ld units are in checkpoint %s: run again with --resume (and -o) to "
                    "write the output\n", st->sw.n_units, st->cfg.checkpoint_path);
    } else {
        if (!st->quiet)
            fprintf(stderr, "plateau: wrote %s (%.0f evals/s on %d rank%s)\n", st->cfg.output_path,
                    meta.evals_per_second, st->size, st->size > 1 ? "s" : "");
        /* done: nothing to resume. Only the checkpoint this run wrote or read goes. */
        struct stat sb;
        if (ms->ckpt_ours && stat(st->cfg.checkpoint_path, &sb) == 0 && sb.st_dev == ms->ckpt_dev &&
            sb.st_ino == ms->ckpt_ino)
            unlink(st->cfg.checkpoint_path);
    }
    return code;
}

/* Rank 0, every rank stopped: the run's outcome (PREEMPT: the signal that stopped it; CODE: its exit
 * code so far). Returns the exit code. */
static int end_run(master *ms, const pl_run_options *opt, int preempt, int code)
{
    run_state *st = ms->st;
    if (preempt) {
        if (code == PL_EXIT_OK)
            code = checkpoint_now(ms, "all ranks stopped") == PL_OK ? PL_EXIT_PREEMPTED : PL_EXIT_INPUT;
    } else if (ms->bad_input[0] && code == PL_EXIT_OK) {
        /* one line: the problem, and where the units finished before it are kept (if any) */
        code = PL_EXIT_INPUT;
        if (ms->res.n_done > 0 && checkpoint_now(ms, NULL) == PL_OK)
            fprintf(stderr, "plateau: %s; the %ld/%ld units finished before are in checkpoint %s\n", ms->bad_input,
                    ms->res.n_done, st->sw.n_units, st->cfg.checkpoint_path);
        else
            fprintf(stderr, "plateau: %s\n", ms->bad_input);
    } else if (code == PL_EXIT_OK) {
        code = finish_run(ms, opt);
    }
    return code;
}

static int run_master(run_state *st, const pl_run_options *opt)
{
    master ms;
    memset(&ms, 0, sizeof ms);
    ms.st = st;
    pl_sweep *sw = &st->sw;
    if (pl_results_init(&ms.res, sw) != PL_OK) {
        fprintf(stderr, "plateau: %s\n", pl_error());
        return PL_EXIT_FAULT;
    }
    int code = master_resume(&ms, opt);
    if (sw->opt_store) { /* the workers wait for them (none after a refused checkpoint) */
        sw->opt_store->stopping = rank0_stopping;
        send_states(st);
    }
    if (code != PL_EXIT_OK)
        return code;
    ms.w = calloc((size_t)st->size, sizeof(worker_info));
    size_t batch_floats = (size_t)sw->batch_units * sw->unit_floats;
    ms.buf_size = 16 + sizeof(float) * batch_floats + MAX_ERROR_TEXT;
    if (ms.buf_size < 16 + 20 + pl_opt_state_max(sw)) /* a worker's MSG_OPTSTATE */
        ms.buf_size = 16 + 20 + pl_opt_state_max(sw);
    ms.buf = malloc(ms.buf_size);
    local_worker lw;
    if (!ms.w || !ms.buf || local_worker_start(&lw, sw, batch_floats) != PL_OK) {
        fprintf(stderr, "plateau: %s\n", ms.buf && ms.w ? pl_error() : "out of memory (scheduler)");
        MPI_Abort(MPI_COMM_WORLD, PL_EXIT_FAULT);
    }
    dispenser_init(&ms.ds, sw);
    ms.t_start = ms.t_ckpt = ms.t_progress = now_seconds();
    if (!st->quiet)
        fprintf(stderr, "plateau: %ld units x %d steps in batches of %d units on %d rank%s%s\n",
                sw->n_units - ms.res.n_done, sw->steps, sw->batch_units, st->size, st->size > 1 ? "s" : "",
                opt->naive ? " (naive: full forward per step)" : "");
    int preempt = 0;
    code = hand_out_batches(&ms, &lw, &preempt);
    code = stop_workers(&ms, &lw, preempt, code);
    code = end_run(&ms, opt, preempt, code);
    free(ms.w);
    free(ms.buf);
    pl_results_free(&ms.res);
    return code;
}

/* ------------------------------------------------------------ workers */

static void worker_send(int kind, long unit, const void *payload, size_t n, unsigned char *buf)
{
    int64_t k = kind, u = unit;
    memcpy(buf, &k, 8);
    memcpy(buf + 8, &u, 8);
    if (n)
        memcpy(buf + 16, payload, n);
    MPI_Send(buf, (int)(16 + n), MPI_BYTE, 0, TAG_WORKER, MPI_COMM_WORLD);
}

static void run_worker(run_state *st)
{
    const pl_sweep *sw = &st->sw;
    size_t payload = sizeof(float) * (size_t)sw->batch_units * sw->unit_floats;
    unsigned char *buf = malloc(16 + payload + MAX_ERROR_TEXT);
    float *out = malloc(payload);
    if (!buf || !out) {
        fprintf(stderr, "plateau: rank %d: out of memory\n", st->rank);
        MPI_Abort(MPI_COMM_WORLD, PL_EXIT_FAULT);
    }
    pl_unit_cache cache;
    pl_unit_cache_init(&cache);
    long queue[QUEUE_DEPTH + 1];
    int n_queue = 0, stop = 0, reported = 0;
    int64_t incoming;
    MPI_Request req;
    MPI_Irecv(&incoming, 1, MPI_INT64_T, 0, TAG_UNIT, MPI_COMM_WORLD, &req);
    worker_watch watch = {&req, &incoming, 0, NULL, 0};
    if (sw->opt_store) {
        sw->opt_store->ctx = &watch;
        sw->opt_store->stopping = worker_stopping;
        sw->opt_store->publish = worker_publish;
        receive_states(st);
    }
    /* rank 0 answers within a unit's time; silence for much longer means it is gone */
    double watchdog = 60.0 + 10.0 * st->cfg.worker_timeout + 10.0 * st->unit_estimate;
    double last_word = now_seconds();
    while (!stop) {
        int flag = 1;
        while (flag && !stop) {
            MPI_Test(&req, &flag, MPI_STATUS_IGNORE);
            if (flag) {
                last_word = now_seconds();
                if (incoming == STOP_UNIT)
                    stop = 1;
                else {
                    queue[n_queue++] = (long)incoming;
                    MPI_Irecv(&incoming, 1, MPI_INT64_T, 0, TAG_UNIT, MPI_COMM_WORLD, &req);
                }
            }
        }
        if (g_signal && !reported) {
            worker_send(MSG_SIGNALLED, g_signal, NULL, 0, buf);
            reported = 1;
        }
        if (stop)
            break;
        if (n_queue > 0) {
            long b = queue[0];
            memmove(queue, queue + 1, sizeof(long) * --n_queue);
            int rc = eval_batch_checked(sw, &cache, b, out);
            if (rc == PL_ERR_PREEMPTED) {
                worker_send(MSG_PREEMPTED, b, NULL, 0, buf);
                stop = watch.stop_seen; /* else its own signal: reported below, then rank 0's STOP */
            } else if (rc != PL_OK) {
                char msg[MAX_ERROR_TEXT];
                snprintf(msg, sizeof msg, "%s", pl_error());
                worker_send(rc == PL_ERR_BAD_INPUT ? MSG_BAD_INPUT : MSG_ERROR, b, msg, strlen(msg) + 1, buf);
            } else {
                int n;
                pl_batch_first_unit(sw, b, &n);
                worker_send(MSG_RESULT, b, out, sizeof(float) * (size_t)n * sw->unit_floats, buf);
            }
        } else {
            if (now_seconds() - last_word > watchdog) {
                fprintf(stderr, "plateau: rank %d: no word from rank 0 for %.0f s; aborting\n", st->rank,
                        now_seconds() - last_word);
                MPI_Abort(MPI_COMM_WORLD, PL_EXIT_FAULT);
            }
            nap();
        }
    }
    worker_send(MSG_BYE, 0, NULL, 0, buf);
    free(watch.buf);
    pl_unit_cache_free(&cache);
    free(buf);
    free(out);
}

/* ------------------------------------------------------------ entry */

/* "plateau ARGV..." as a shell would take it back: words with anything but [A-Za-z0-9_./=,:+-@%]
 * single-quoted. NULL when out of memory (the history attribute then says so). */
static char *command_line(int argc, char **argv)
{
    size_t size = 16;
    for (int i = 0; i < argc; i++)
        size += 4 * strlen(argv[i]) + 3;
    char *s = malloc(size), *p = s;
    if (!s)
        return NULL;
    p += sprintf(p, "plateau");
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int plain = *a != '\0';
        for (const char *c = a; *c && plain; c++)
            plain = strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./=,:+-@%", *c) != NULL;
        *p++ = ' ';
        if (plain) {
            p += sprintf(p, "%s", a);
            continue;
        }
        *p++ = '\'';
        for (const char *c = a; *c; c++) {
            if (*c == '\'')
                p += sprintf(p, "'\\''");
            else
                *p++ = *c;
        }
        *p++ = '\'';
    }
    *p = '\0';
    return s;
}

/* What a run state holds, released: the checkpoint's lock (after every checkpoint write, before the
 * config, its path, goes), the texts, the sweep, the model, then the window its weights live in. The
 * window is freed here, not at exit: a model series runs one model after another, and each window
 * held on would keep every model's converted weights on the node. Only a window every rank took
 * (arena.base): MPI_Win_free is the node's collective. */
static void run_state_close(run_state *st)
{
    if (st->ckpt_lock >= 0)
        pl_checkpoint_unlock(st->cfg.checkpoint_path, st->ckpt_lock);
    free(st->config_text);
    free(st->hashed_text);
    pl_sweep_free(&st->sw);
    pl_model_close(st->model);
    if (st->window != MPI_WIN_NULL && st->arena.base) {
        pl_watch_region_end(st->arena.base);
        MPI_Win_free(&st->window);
    }
    if (st->node != MPI_COMM_NULL && st->arena.base)
        MPI_Comm_free(&st->node);
    pl_sweep_config_free(&st->cfg);
}

/* One single-model sweep on every rank (setup, rank 0 the master, the others workers), from a fresh
 * state of this rank. Returns the exit code, the same on every rank. */
static int run_one(int rank, int size, int quiet, const char *command_line, const char *config_path,
                   char *const *sets, int n_sets, const char *output, const pl_run_options *opt)
{
    run_state st;
    memset(&st, 0, sizeof st);
    st.ckpt_lock = -1;
    st.node = MPI_COMM_NULL;
    st.window = MPI_WIN_NULL;
    st.rank = rank;
    st.size = size;
    st.quiet = quiet;
    st.command_line = (char *)command_line;
    int code;
    pl_opt_store store;
    pl_opt_store_init(&store);
    if ((code = setup(&st, config_path, sets, n_sets, output, opt)) == PL_EXIT_OK) {
        if (st.sw.n_opt) { /* the optimisations in flight, checkpointed and resumed */
            store.every = st.cfg.checkpoint_every;
            st.sw.opt_store = &store;
            test_stop_init();
        }
        if (st.rank == 0)
            code = run_master(&st, opt);
        else
            run_worker(&st);
        MPI_Bcast(&code, 1, MPI_INT, 0, MPI_COMM_WORLD);
    }
    st.sw.opt_store = NULL;
    pl_opt_store_free(&store);
    run_state_close(&st);
    return code;
}

/* Model K's finished PART against model K's run of this config (CONFIG_PATH, SETS): the listed model,
 * run under this config's identity, on the token ids of the series' other finished parts (SP: the first
 * sets them); the stacker's checks. */
static int series_part_check(const pl_sweep_config *cfg, int k, const char *part, const char *config_path,
                             char *const *sets, int n_sets, const pl_run_options *opt, pl_series_prompts *sp)
{
    pl_series_args a;
    pl_sweep_config ck;
    char *text = NULL;
    int rc = pl_model_series_sets(cfg, k, sets, n_sets, &a);
    if (rc == PL_OK && (rc = pl_sweep_config_load(&ck, config_path, a.sets, a.n_sets, part)) == PL_OK) {
        text = pl_sweep_config_text(&ck, 0);
        pl_sweep_config_free(&ck);
        rc = text ? PL_OK : pl_fail("out of memory (model series)");
    }
    char sha[65] = "";
    if (rc == PL_OK)
        rc = opt->check_model_part(part, k, cfg->models[k].label, cfg->models[k].path, text, sha);
    if (rc == PL_OK && sha[0] && !sp->tokens_sha256[0]) {
        memcpy(sp->tokens_sha256, sha, sizeof sha);
        sp->label = cfg->models[k].label, sp->model = k, sp->from_part = 1;
    } else if (rc == PL_OK && sha[0] && strcmp(sha, sp->tokens_sha256))
        rc = pl_fail("%s: its prompts' token ids differ from model %d '%s''s finished part: the parts did not see the "
                     "same prompts; remove the series' parts to start again", part, sp->model + 1, sp->label);
    free(text);
    pl_series_args_free(&a);
    return rc;
}

/* A fresh series run does not start over model K's checkpoint (check_fresh_checkpoint's rule), refused here:
 * that model's own run would refuse it only after every model before it had run. */
static int check_fresh_model_checkpoint(const pl_sweep_config *cfg, int k)
{
    char *ckpt = pl_model_series_checkpoint(cfg, k);
    struct stat sb;
    int rc = !ckpt ? pl_fail("out of memory (model series)")
             : lstat(ckpt, &sb) == 0 ? pl_fail("checkpoint %s exists (model %d '%s' of an interrupted series run): pass "
                                               "--resume to continue from it, or remove it to start again",
                                               ckpt, k + 1, cfg->models[k].label)
                                     : PL_OK;
    free(ckpt);
    return rc;
}

/* Rank 0, before a series runs: its models are one family and shape, the result can be stacked, and
 * no part of an interrupted series run is left unless --resume, which keeps them when each is its
 * listed model's, run under this config (the stacker's checks, made before any work: review, a
 * changed `paths` file or config ran every remaining model before the stacker refused). */
static int series_check(const pl_sweep_config *cfg, const char *config_path, char *const *sets, int n_sets,
                        const pl_run_options *opt, pl_series_prompts *sp)
{
    if (!opt->stack_models || !opt->check_model_part)
        return pl_fail("output %s: no stacker of model series registered", cfg->output_path);
    if (check_paths(cfg) != PL_OK) /* each model's run checks its part file only, not the stacked output */
        return PL_ERR;
    for (int k = 0; k < cfg->n_models; k++) {
        char *part = pl_model_series_part(cfg, k);
        struct stat sb;
        int exists = part && lstat(part, &sb) == 0, rc = part ? PL_OK : pl_fail("out of memory (model series)");
        if (exists && !opt->resume)
            rc = pl_fail("%s exists (model %d '%s' of an interrupted series run): pass --resume to keep it, or "
                         "remove it to start again", part, k + 1, cfg->models[k].label);
        else if (exists)
            rc = series_part_check(cfg, k, part, config_path, sets, n_sets, opt, sp);
        free(part);
        if (rc == PL_OK && !opt->resume)
            rc = check_fresh_model_checkpoint(cfg, k);
        if (rc != PL_OK)
            return PL_ERR;
    }
    return pl_model_series_check(cfg);
}

/* Rank 0: whether model K's part is done (--resume and its file there; the stacker checks that it
 * is that model's), and the progress line. */
static int series_part_done(const pl_sweep_config *cfg, int k, const char *part, const pl_run_options *opt)
{
    struct stat sb;
    int done = opt->resume && lstat(part, &sb) == 0;
    if (!opt->quiet)
        fprintf(stderr, "plateau: model %d/%d '%s' (%s)%s%s\n", k + 1, cfg->n_models, cfg->models[k].label,
                cfg->models[k].path, done ? ": done in " : "", done ? part : "");
    return done;
}

/* A model series (docs/models.md#model-series): each model's sweep in turn, as the single-model run
 * of that model (the series' config, --set to its path, label, step and a checkpoint of its own)
 * into a part file <output>.model-K.nc; one model is loaded at a time on every rank. Once all are
 * done, rank 0 stacks the parts along `model` into the output (the registered stacker: io's merge)
 * and removes them. A signal checkpoints the model at hand (exit 75); --resume keeps the finished
 * parts and resumes that model from its checkpoint. Every number is the single-model run's. */
static int run_series(int rank, int size, const char *command_line, const pl_sweep_config *cfg,
                      const char *config_path, char *const *sets, int n_sets, const pl_run_options *opt)
{
    int code = PL_EXIT_OK;
    /* rank 0's: the token ids every model must see, a finished part's or the first model swept's */
    pl_series_prompts prompts = {.tokens_sha256 = "", .label = NULL, .model = -1, .from_part = 0};
    pl_run_options model_opt = *opt;
    model_opt.series_prompts = rank == 0 ? &prompts : NULL;
    if (rank == 0 && series_check(cfg, config_path, sets, n_sets, opt, &prompts) != PL_OK) {
        fprintf(stderr, "plateau: %s\n", pl_error());
        code = PL_EXIT_INPUT;
    }
    MPI_Bcast(&code, 1, MPI_INT, 0, MPI_COMM_WORLD);
    char **parts = calloc((size_t)cfg->n_models, sizeof *parts);
    for (int k = 0; k < cfg->n_models && code == PL_EXIT_OK; k++) {
        pl_series_args a;
        parts[k] = pl_model_series_part(cfg, k);
        int done = 0;
        if (!parts[k] || pl_model_series_sets(cfg, k, sets, n_sets, &a) != PL_OK) {
            fprintf(stderr, "plateau: rank %d: out of memory (model series)\n", rank);
            MPI_Abort(MPI_COMM_WORLD, PL_EXIT_FAULT);
        }
        if (rank == 0)
            done = series_part_done(cfg, k, parts[k], opt);
        MPI_Bcast(&done, 1, MPI_INT, 0, MPI_COMM_WORLD);
        if (!done)
            code = run_one(rank, size, opt->quiet, command_line, config_path, a.sets, a.n_sets, parts[k], &model_opt);
        if (prompts.tokens_sha256[0] && !prompts.label) /* this model's run set them */
            prompts.label = cfg->models[k].label, prompts.model = k;
        pl_series_args_free(&a);
        MPI_Barrier(MPI_COMM_WORLD); /* the next model's setup starts together */
    }
    if (code == PL_EXIT_OK && rank == 0) {
        char **labels = calloc((size_t)cfg->n_models, sizeof *labels), **paths = calloc((size_t)cfg->n_models, sizeof *paths);
        for (int k = 0; labels && paths && k < cfg->n_models; k++)
            labels[k] = cfg->models[k].label, paths[k] = cfg->models[k].path;
        if (!labels || !paths ||
            opt->stack_models(cfg->output_path, parts, cfg->n_models, labels, paths, command_line) != PL_OK) {
            fprintf(stderr, "plateau: %s\n", pl_error());
            code = PL_EXIT_INPUT;
        }
        for (int k = 0; code == PL_EXIT_OK && k < cfg->n_models; k++)
            unlink(parts[k]); /* in the output now */
        free(labels);
        free(paths);
    }
    MPI_Bcast(&code, 1, MPI_INT, 0, MPI_COMM_WORLD);
    for (int k = 0; k < cfg->n_models; k++)
        free(parts[k]);
    free(parts);
    return code;
}

/* A series' dry run: the first model's (each model's run is that shape), and what the series adds. */
static void series_note(const pl_sweep_config *cfg)
{
    if (cfg->n_models == 1)
        printf("model series: 1 model (a series of one: the result has the model dimension); the figures above "
               "are its run's\n");
    else
        printf("model series: %d models of one family and shape (the figures above are the first's); the run "
               "sweeps each in turn: %d times its units, evaluations and time\n", cfg->n_models, cfg->n_models);
}

/* Started without a launcher (no mpirun, srun or PMI(x) environment), plateau is an MPI singleton, and
 * Open MPI would first start a supporting daemon (orted: ~0.2 s of every `plateau run`) for a process
 * that never spawns others; its isolated singleton mode skips it. Every isolated singleton on a machine
 * has the same name (job family 0, job 1), so all would share one session directory,
 * $TMPDIR/ompi.<host>.<uid>/jf.0/1/0, and each removes it when it ends: a second `plateau run` started
 * meanwhile failed in MPI_Init (mkdir: No such file or directory, exit 1). A process alone in its job
 * with no shared-memory peers or window (the window needs 2 ranks) puts nothing there, so it creates
 * none. A user's own setting of either wins (a user's isolated = 0 starts the daemon, whose singletons
 * have session directories of their own). */
static void singleton_without_daemon(void)
{
    static const char *launched[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof launched / sizeof *launched; i++)
        if (getenv(launched[i]))
            return;
    setenv("OMPI_MCA_ess_singleton_isolated", "1", 0);
    const char *isolated = getenv("OMPI_MCA_ess_singleton_isolated");
    if (strcmp(isolated, "0") && strcasecmp(isolated, "false") && strcasecmp(isolated, "no") &&
        strcasecmp(isolated, "disabled"))
        setenv("OMPI_MCA_orte_create_session_dirs", "0", 0);
}

/* The fast path allocates its scratch per batch (decoder.c's scratch_alloc: 34 MB at GPT-2 small's
 * shape and 1010 rows, ~110 MB at Llama-3.2-1B's), above glibc's largest mmap threshold (32 MB): each
 * batch got fresh pages and the kernel zeroed them in page faults (8,333 a batch at GPT-2 small's
 * shape, ~1 % of the CPU time). Freed memory now stays in the heap for the next batch, and all threads
 * use one arena (rank 0's compute thread's own arena has heaps of at most 64 MB). The peak is the
 * same: every batch reaches it. Not bits: where a buffer lies does not change a value. */
static void keep_freed_memory(void)
{
#if defined(M_ARENA_MAX) && defined(M_MMAP_MAX) && defined(M_TRIM_THRESHOLD)
    mallopt(M_ARENA_MAX, 1);
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_TRIM_THRESHOLD, INT_MAX); /* a model series' freed weights beyond 2 GB still go back */
#endif
}

int pl_sweep_main(int *argc, char ***argv, const char *config_path, char *const *sets, int n_sets,
                  const char *output, const pl_run_options *opt)
{
    keep_freed_memory();
    /* Only the main thread calls MPI; rank 0's compute thread does not. */
    int provided;
    singleton_without_daemon();
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    install_signals();
    run_state st;
    memset(&st, 0, sizeof st);
    st.ckpt_lock = -1;
    st.node = MPI_COMM_NULL;
    st.window = MPI_WIN_NULL;
    MPI_Comm_rank(MPI_COMM_WORLD, &st.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &st.size);
    char rank_prefix[32] = "";
    if (st.size > 1)
        snprintf(rank_prefix, sizeof rank_prefix, "rank %d: ", st.rank);
    pl_watch_sigbus(rank_prefix); /* a mapped input truncated under a forward: exit 2 naming it */
    st.quiet = opt->quiet;
    st.command_line = command_line(*argc, *argv);
    /* A series? A config that does not read is the single-model path's to report, as ever. */
    pl_sweep_config series;
    int is_series = pl_sweep_config_load(&series, config_path, sets, n_sets, output) == PL_OK;
    if (is_series && !series.n_models)
        pl_sweep_config_free(&series);
    is_series = is_series && series.n_models > 0;
    int code;
    if (opt->dry_run) { /* rank 0 alone; the others wait for its verdict */
        code = PL_EXIT_OK;
        /* a series' models checked first, as the run checks them: a bad one is named as the list's entry
         * (model K 'label'), not as the first model's single-model run would name it ([model] path) */
        if (st.rank == 0 && ((is_series && pl_model_series_check(&series) != PL_OK) ||
                             dry_run(&st, config_path, sets, n_sets, output, opt) != PL_OK)) {
            fprintf(stderr, "plateau: %s\n", pl_error());
            code = PL_EXIT_INPUT;
        } else if (st.rank == 0 && is_series)
            series_note(&series);
        MPI_Bcast(&code, 1, MPI_INT, 0, MPI_COMM_WORLD);
    } else if (is_series) {
        code = run_series(st.rank, st.size, st.command_line, &series, config_path, sets, n_sets, opt);
    } else {
        code = run_one(st.rank, st.size, st.quiet, st.command_line, config_path, sets, n_sets, output, opt);
    }
    if (is_series)
        pl_sweep_config_free(&series);
    free(st.command_line);
    run_state_close(&st); /* the dry run's */
    fflush(stderr);
    MPI_Finalize();
    return code;
}
