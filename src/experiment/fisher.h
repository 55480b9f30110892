/* The local geometry of sensitivity at a base (issue 17): the pull-back of the output distribution's
 * Fisher metric, local optima of sensitivity on a sphere, and how directions line up with others.
 *
 * Everything here is written against two small operator structs of callbacks, so that it neither
 * knows the model nor MPI: the sweep fills them from the exact derivatives (include/plateau/grad.h)
 * at one base, tests fill them from a toy model (tests/experiment/fisher_probe.c).
 *
 *   x       the activation at the perturbed hook and positions, flattened: C numbers (C = d_model
 *           times the number of perturbed positions)
 *   z       the logits at the readout positions: P blocks of V numbers, p the clean (δ = 0)
 *           next-token probabilities in the same layout
 *   J       = ∂z/∂x [P·V, C]
 *   F       = Σ_b w_b J_bᵀ (diag p_b − p_b p_bᵀ) J_b [C, C], the Fisher metric of the readout
 *           distributions pulled back to x (½ δᵀFδ is KL(clean ‖ perturbed)'s second-order term
 *           when the KL readout is Σ_b w_b KL_b; w = 1 for one readout position)
 *
 * Every callback takes n rows at once (n ≤ max_rows), returns PL_OK or PL_ERR after pl_fail() with
 * a message naming the place (a non-finite value, memory); the modules here pass PL_ERR up unchanged.
 * Vectors cross the interface as float32 rows because the model computes in float32; the modules
 * accumulate in double.
 */
#ifndef PLATEAU_FISHER_H
#define PLATEAU_FISHER_H

#include <stddef.h>
#include <stdint.h>

#include "experiment.h"

/* ------------------------------------------------------------ the operators */

/* J and Jᵀ at one base. */
typedef struct pl_local_op {
    void *ctx;
    int C;               /* width of x */
    int V;               /* vocabulary (width of one readout block) */
    int P;               /* readout blocks (positions); 1 for a next-token readout */
    int max_rows;        /* most rows one call accepts */
    const float *p;      /* [P, V] clean probabilities, each block summing to 1 */
    const double *w;     /* [P] block weights of the KL readout; NULL: all 1 */
    /* dz[n, P·V] = v[n, C] Jᵀ (row i: J v_i) */
    int (*jvp)(void *ctx, const float *v, int n, float *dz);
    /* g[n, C] = u[n, P·V] J (row i: Jᵀ u_i) */
    int (*vjp)(void *ctx, const float *u, int n, float *g);
} pl_local_op;

/* The objective maximised on the sphere: f(δ) = KL(clean ‖ perturbed at x + δ) (or any smooth readout)
 * and its gradient ∇f(δ), for n rows δ at once. */
typedef struct pl_sphere_op {
    void *ctx;
    int C;
    int max_rows;
    /* value[n], grad[n, C] at delta[n, C] */
    int (*objective)(void *ctx, const float *delta, int n, double *value, float *grad);
} pl_sphere_op;

/* ------------------------------------------------------------ the Fisher metric (fisher.c) */

enum { PL_FISHER_AUTO, PL_FISHER_EXACT, PL_FISHER_LANCZOS };

/* The rule PL_FISHER_AUTO follows (documented in fisher.c): the exact F (C JVP rows, then one
 * symmetric eigendecomposition) when that costs no more model rows than Lanczos is expected to and
 * J fits in PL_FISHER_EXACT_BYTES; Lanczos otherwise. Returns PL_FISHER_EXACT or PL_FISHER_LANCZOS. */
#define PL_FISHER_EXACT_BYTES ((size_t)512 << 20)
int pl_fisher_method(int C, int V, int P, int k);

typedef struct pl_fisher_opts {
    int method;       /* PL_FISHER_* */
    double tol;       /* Lanczos: a Ritz pair is converged when ‖F u − θ u‖ ≤ tol·θ_1; 0: 1e-6 */
    int block;        /* Lanczos: vectors per block (rows per JVP/VJP call); 0: min(k, 8, max_rows) */
} pl_fisher_opts;

typedef struct pl_fisher_result {
    int k;              /* eigenpairs returned */
    double *values;     /* [k], descending */
    double *vectors;    /* [k, C] unit rows, the largest-|component| entry positive (ties: lowest index) */
    double trace;       /* tr F, exact (from C JVP rows) */
    int method;         /* PL_FISHER_EXACT or PL_FISHER_LANCZOS, as used */
    int krylov_dim;     /* Lanczos: size of the Krylov basis at convergence; exact: C */
    double max_residual;/* max over the k pairs of ‖F u − θ u‖ / max(θ_1, tiny) (exact: 0 by construction) */
    long jvp_rows, vjp_rows; /* model rows spent */
} pl_fisher_result;

/* Top-k eigenpairs of F and its trace. RNG seeds Lanczos's start block (the caller keys it by the
 * base, e.g. pl_rng_init(&r, seed, prompt, base, tag)), so the result depends on nothing else;
 * exact runs draw nothing. k ≤ C. */
int pl_fisher_top(const pl_local_op *op, int k, const pl_fisher_opts *opts, pl_rng *rng, pl_fisher_result *res);
void pl_fisher_result_free(pl_fisher_result *res);

/* F v for n rows v[n, C] (one JVP and one VJP call per max_rows rows): out[n, C]. */
int pl_fisher_matvec(const pl_local_op *op, const double *v, int n, double *out);
/* dᵀFd / ‖d‖² for n rows d[n, C] (JVP rows only): q[n]. A zero row is an error. */
int pl_fisher_rayleigh(const pl_local_op *op, const double *d, int n, double *q);
/* tr F = Σ_i e_iᵀ F e_i: C JVP rows in calls of max_rows. */
int pl_fisher_trace(const pl_local_op *op, double *trace);
/* The explicit F[C, C] (C JVP rows); trace optional. */
int pl_fisher_explicit(const pl_local_op *op, double *F, double *trace);
/* Fraction of each row d[n, C]'s squared norm inside span(U[k, C]) (U orthonormal rows): frac[n]. */
int pl_subspace_fraction(const double *U, int k, int C, const double *d, int n, double *frac);
/* Flip row u[C] so that its largest-|component| entry is positive (ties: the lowest index). */
void pl_fix_sign(double *u, int C);

/* ------------------------------------------------------------ optima on the sphere (sphere_opt.c) */

enum {
    PL_OPT_RUNNING = 0,
    PL_OPT_GRADIENT,    /* converged: ‖tangential ∇f‖ ≤ tol·‖∇f‖ */
    PL_OPT_FLAT,        /* converged: an accepted step changed f by ≤ tol²·|f| */
    PL_OPT_CAP,         /* max_iterations accepted steps without convergence */
    PL_OPT_STALL,       /* backtracking shrank the step below what float32 resolves */
};
const char *pl_opt_status_name(int status);

typedef struct pl_sphere_opts {
    double radius;      /* r > 0 */
    int max_iterations; /* accepted steps per row; 0: 200 */
    double tol;         /* 0: 1e-3 (sphere_opt.c says why not smaller) */
    int orthogonal;     /* row j constrained orthogonal to the optima of rows 0..j-1 */
    const double *exclude; /* [n_exclude, C] directions every optimum is kept orthogonal to (e.g. the
                            * all-ones direction under residual_basis = centered); NULL: none */
    int n_exclude;
} pl_sphere_opts;

/* The whole state of one optimisation, plain arrays, so that it can be checkpointed between any two
 * calls of pl_sphere_step and resumed bitwise (everything a step reads is here).
 * Rows are the starts; under `orthogonal` only row `current` runs, the others wait or are done. */
typedef struct pl_sphere_state {
    int n, C;
    double radius, tol;
    int max_iterations, orthogonal;
    int current;        /* orthogonal: the row running now (n when all are done) */
    double *delta;      /* [n, C] current points, ‖δ‖ = r */
    double *value;      /* [n] f at delta */
    double *grad;       /* [n, C] ∇f at delta (full, not projected) */
    double *step;       /* [n] step length t of the next trial (δ + t·g_tan, then back to the sphere) */
    double *last_change;/* [n] |Δf| of the last accepted step (-1 before the first) */
    int *iterations;    /* [n] accepted steps */
    int *evaluations;   /* [n] objective rows spent */
    int *status;        /* [n] PL_OPT_*; RUNNING until done */
    int *evaluated;     /* [n] 0 until value/grad hold f at delta */
    int *backtracked;   /* [n] 1 when a trial was rejected since the last accepted step */
    int n_exclude;
    double *exclude;    /* [n_exclude, C] opts.exclude orthonormalised (fixed after init) */
} pl_sphere_state;

/* Set up the state for n starts start[n, C] (any nonzero scale; each is scaled to radius r). Each start
 * is projected off opts.exclude and, under `orthogonal`, off the earlier optima when its turn comes. */
int pl_sphere_init(pl_sphere_state *s, const double *start, int n, int C, const pl_sphere_opts *opts);
void pl_sphere_free(pl_sphere_state *s);
/* One objective call over the running rows (all of them, or row `current` under orthogonal): the
 * trial points of rows that have a current point, the current point of rows that have none.
 * Returns PL_OK; *done = 1 when every row has a status. */
int pl_sphere_step(pl_sphere_state *s, const pl_sphere_op *op, int *done);
/* pl_sphere_step until done. */
int pl_sphere_run(pl_sphere_state *s, const pl_sphere_op *op);
/* The state as bytes (pl_sphere_state_size(n, C, n_exclude) of them, malloc'ed into *bytes) and back:
 * pl_sphere_load fills S, set up by pl_sphere_init with the same starts' shape, sphere and options,
 * from a saved state of that optimisation (refused, naming the difference, when they differ), so that
 * the next pl_sphere_step is the one the saved state would have taken, bit for bit. */
size_t pl_sphere_state_size(int n, int C, int n_exclude);
int pl_sphere_save(const pl_sphere_state *s, unsigned char **bytes, size_t *len);
int pl_sphere_load(pl_sphere_state *s, const unsigned char *bytes, size_t len);

/* What drives one optimisation from outside (the sweep's checkpoints): RESUME (may be NULL) loads a
 * saved state into S after pl_sphere_init (PL_OK when there is none); BETWEEN (may be NULL) is called
 * before every step and stops the run with its return value when that is not PL_OK (it saves S first);
 * FINISHED (may be NULL) gets the final state; a failure of either is the run's. */
typedef struct pl_sphere_hooks {
    void *ctx;
    int (*resume)(void *ctx, pl_sphere_state *s);
    int (*between)(void *ctx, const pl_sphere_state *s);
    int (*finished)(void *ctx, const pl_sphere_state *s);
} pl_sphere_hooks;
/* pl_sphere_step until done, under HOOKS (NULL: none). */
int pl_sphere_run_hooked(pl_sphere_state *s, const pl_sphere_op *op, const pl_sphere_hooks *hooks);

/* One step split in two, so that several states share one objective call (pl_sphere_run_many):
 * pl_sphere_propose writes the state's trial rows tr->x[tr->k, C] (as pl_sphere_step evaluates them;
 * tr is allocated here, freed by pl_sphere_trial_free, also after a failure); pl_sphere_accept takes
 * their values value[k] and gradients grad[k, C] (PL_ERR naming the start and iteration when one is not
 * finite, the state then unchanged) and sets *done as pl_sphere_step. pl_sphere_step is exactly propose,
 * the objective in calls of max_rows, accept. */
typedef struct pl_sphere_trial {
    int k;              /* rows proposed */
    int *rows;          /* [k] the state's rows they are */
    int m;              /* the constraint basis' rows */
    double *B;          /* [n_exclude + n, C] the constraint basis */
    double *t, *gn;     /* [k] the step and ‖g_tan‖ of each trial */
    float *x;           /* [k, C] the trial points, as evaluated */
    double *work;       /* [C] */
} pl_sphere_trial;
int pl_sphere_propose(pl_sphere_state *s, pl_sphere_trial *tr);
int pl_sphere_accept(pl_sphere_state *s, pl_sphere_trial *tr, const double *value, const float *grad, int *done);
void pl_sphere_trial_free(pl_sphere_trial *tr);

/* The objective of several optimisations at once (e.g. one per base, each at its own clean run): rows
 * delta[n, C] (n ≤ max_rows) of the states state[n] (non-decreasing: each state's rows together, in its
 * row order) into value[n] and grad[n, C]. Non-finite values are the driver's to find, not an error here.
 *
 * MIX_STATES 0: every call holds the rows of one state only, cut exactly as pl_sphere_step cuts them,
 * so each state gets the bits it would get alone whatever the objective. MIX_STATES 1: the running rows
 * of all states share calls, which is right only for an objective whose row r depends on state[r] and
 * its delta alone. The sweep's model is NOT such an objective on OpenBLAS 0.3.21 (Haswell kernels, the
 * build CI uses): a row's sgemm result depends on its position in the call and on the call's row count
 * (the tail kernels, the tile halves), measured in sphere_opt.c's file comment; so the sweep runs 0. */
typedef struct pl_sphere_many_op {
    void *ctx;
    int C;
    int max_rows;
    int (*objective)(void *ctx, const int *state, const float *delta, int n, double *value, float *grad);
    int mix_states;
} pl_sphere_many_op;
/* As pl_sphere_hooks, per state i (RESUME, FINISHED) or once before every combined step (BETWEEN, with
 * active[n]: which states still run); FAILED (NULL: the run fails) is told that state i's objective or
 * gradient is not finite (pl_error() says where): PL_OK drops that state and the others go on. */
typedef struct pl_sphere_many_hooks {
    void *ctx;
    int (*resume)(void *ctx, int i, pl_sphere_state *s);
    int (*between)(void *ctx, pl_sphere_state *const *s, const unsigned char *active, int n);
    int (*finished)(void *ctx, int i, const pl_sphere_state *s);
    int (*failed)(void *ctx, int i);
} pl_sphere_many_hooks;
/* The n optimisations S[n] until each is done (or failed), in combined steps: every running state
 * proposes, their rows are evaluated (op->mix_states says how they share calls), each state accepts
 * its own: each state steps exactly as under pl_sphere_run_hooked (MIX_STATES 1: given a row-
 * independent objective).
 * On a failure *which is the state it belongs to (-1: none in particular). HOOKS may be NULL. */
int pl_sphere_run_many(pl_sphere_state **s, int n, const pl_sphere_many_op *op, const pl_sphere_many_hooks *hooks,
                       int *which);

/* ‖tangential part of ∇f‖ at row i (projected off opts.exclude and, under orthogonal, off the earlier
 * optima). */
double pl_sphere_tangential_norm(const pl_sphere_state *s, int i);
/* ‖∇f‖ of row i projected off its constraint basis (not off δ): the reference of the GRADIENT rule. */
double pl_sphere_grad_norm(const pl_sphere_state *s, int i);

/* Cluster m unit-free rows X[m, C] by |cos| ≥ threshold: two rows share a cluster when a chain of
 * pairs each at |cos| ≥ threshold joins them (connected components, so the order of rows does not
 * matter). label[m] (may be NULL) gets the lowest row index of each row's cluster. Returns the number
 * of clusters, or PL_ERR for a zero row. */
int pl_cluster_by_cos(const double *X, int m, int C, double threshold, int *label);

/* ------------------------------------------------------------ alignment (alignment.c) */

/* For each row v[n, C]: the largest |cos| with the rows of M[m, C] (float32, e.g. an SAE's W_dec) and
 * which row (ties: the lowest index). Rows of M with zero norm have no direction and are skipped
 * (index -1 and cos 0 only if all are zero). A zero v row is an error. */
int pl_max_abs_cos(const double *v, int n, const float *M, int m, int C, double *best, int *which);
/* |cos| of every row v[n, C] with every row of D[m, C] (double): out[n, m]. Zero rows are errors. */
int pl_abs_cos(const double *v, int n, const double *D, int m, int C, double *out);
/* The q leading principal components of a covariance S[C, C] (symmetric): pcs[q, C] unit rows with
 * fixed sign (pl_fix_sign), var[q] their variances (descending). */
int pl_principal_components(const double *S, int C, int q, double *pcs, double *var);

#endif
