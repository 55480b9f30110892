/* The Fisher metric, the sphere optimiser and the alignment helpers (src/experiment/fisher.h) on a toy
 * differentiable model written here, for the numpy comparison in test_fisher.py:
 *
 *   z(x) = W2 · tanh(W1 · x + b1) + b2        x [C], hidden [H], z [P·V] (P readout blocks of V)
 *   f(δ) = Σ_b w_b KL(softmax z_b(x) ‖ softmax z_b(x + δ))
 *
 *   fisher_probe IN_DIR OUT_DIR K RADIUS TOL MAX_ITER DISTINCT_COS SEED MAX_ROWS Q
 *
 * IN_DIR holds model.bin (int32 C H V P, float32 W1[H,C] b1[H] W2[PV,H] b2[PV] x[C], float64 w[P]),
 * and float64 rows: dirs.f64 [nd, C] (Rayleigh quotients, subspace fractions, alignment), starts.f64
 * [S, C], objpts.f64 [no, C] (objective points), cluster.f64 [mc, C]; float32 jvp_in.f32 [nj, C],
 * vjp_in.f32 [nj, PV], M.f32 [m, C] (decoder-like rows), and sigma.f64 [C, C]. Counts come from the
 * file sizes. Every result goes to OUT_DIR as a raw file (names below, dtype in the suffix); exit 2
 * with "plateau: <message>" when a library call fails. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plateau/error.h"
#include "fisher.h"

typedef struct toy {
    int C, H, V, P;
    float *W1, *b1, *W2, *b2, *x;
    double *w;
    float *p;      /* [PV] clean probabilities */
    double *sech2; /* [H] tanh' at the base */
    int calls;     /* callback calls, to check that max_rows is honoured */
    int max_rows;
    void *buf;     /* model.bin's bytes, which W1 .. x point into */
    int poison;    /* 1: every JVP and objective row comes out NaN (the error paths) */
} toy;

static const char *g_in, *g_out;

static void *read_file(const char *name, size_t elem, size_t *count)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", g_in, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fisher_probe: cannot open %s\n", path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    long bytes = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc(bytes > 0 ? (size_t)bytes : 1);
    if (!buf || fread(buf, 1, (size_t)bytes, f) != (size_t)bytes)
        exit(1);
    fclose(f);
    *count = (size_t)bytes / elem;
    return buf;
}

static void write_file(const char *name, const void *data, size_t bytes)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", g_out, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, bytes, f) != bytes || fclose(f) != 0) {
        fprintf(stderr, "fisher_probe: cannot write %s\n", path);
        exit(1);
    }
}

static void check(int rc)
{
    if (rc == PL_ERR) {
        fprintf(stderr, "plateau: %s\n", pl_error());
        exit(2);
    }
}

/* hidden pre-activation h[H] at x + delta (delta may be NULL) */
static void hidden(const toy *t, const float *delta, double *h)
{
    for (int i = 0; i < t->H; i++) {
        double s = t->b1[i];
        for (int j = 0; j < t->C; j++)
            s += (double)t->W1[(size_t)i * t->C + j] * (t->x[j] + (delta ? (double)delta[j] : 0.0));
        h[i] = s;
    }
}

/* z[PV] = W2 a + b2 (with_bias) or W2 a */
static void out_layer(const toy *t, const double *a, double *z, int with_bias)
{
    for (int r = 0; r < t->P * t->V; r++) {
        double s = with_bias ? t->b2[r] : 0.0;
        for (int i = 0; i < t->H; i++)
            s += (double)t->W2[(size_t)r * t->H + i] * a[i];
        z[r] = s;
    }
}

/* g[C] = W1ᵀ (d ⊙ W2ᵀ u) */
static void back(const toy *t, const double *u, const double *d, double *g)
{
    double *a = calloc((size_t)t->H, sizeof(double));
    for (int r = 0; r < t->P * t->V; r++)
        for (int i = 0; i < t->H; i++)
            a[i] += (double)t->W2[(size_t)r * t->H + i] * u[r];
    for (int j = 0; j < t->C; j++)
        g[j] = 0.0;
    for (int i = 0; i < t->H; i++)
        for (int j = 0; j < t->C; j++)
            g[j] += (double)t->W1[(size_t)i * t->C + j] * a[i] * d[i];
    free(a);
}

static int toy_jvp(void *ctx, const float *v, int n, float *dz)
{
    toy *t = ctx;
    if (n > t->max_rows)
        return pl_fail("toy: %d rows in one call, max %d", n, t->max_rows);
    t->calls++;
    double *a = malloc(sizeof(double) * t->H), *z = malloc(sizeof(double) * t->P * t->V);
    for (int r = 0; r < n; r++) {
        for (int i = 0; i < t->H; i++) {
            double s = 0.0;
            for (int j = 0; j < t->C; j++)
                s += (double)t->W1[(size_t)i * t->C + j] * v[(size_t)r * t->C + j];
            a[i] = t->sech2[i] * s;
        }
        out_layer(t, a, z, 0);
        for (int j = 0; j < t->P * t->V; j++)
            dz[(size_t)r * t->P * t->V + j] = t->poison ? NAN : (float)z[j];
    }
    free(a), free(z);
    return PL_OK;
}

static int toy_vjp(void *ctx, const float *u, int n, float *g)
{
    toy *t = ctx;
    if (n > t->max_rows)
        return pl_fail("toy: %d rows in one call, max %d", n, t->max_rows);
    t->calls++;
    int PV = t->P * t->V;
    double *ud = malloc(sizeof(double) * PV), *gd = malloc(sizeof(double) * t->C);
    for (int r = 0; r < n; r++) {
        for (int j = 0; j < PV; j++)
            ud[j] = u[(size_t)r * PV + j];
        back(t, ud, t->sech2, gd);
        for (int j = 0; j < t->C; j++)
            g[(size_t)r * t->C + j] = (float)gd[j];
    }
    free(ud), free(gd);
    return PL_OK;
}

/* softmax of each block of z[PV] into q, log q into lq */
static void softmax_blocks(const toy *t, const double *z, double *q, double *lq)
{
    for (int b = 0; b < t->P; b++) {
        const double *zb = z + (size_t)b * t->V;
        double mx = zb[0], s = 0.0;
        for (int v = 1; v < t->V; v++)
            mx = zb[v] > mx ? zb[v] : mx;
        for (int v = 0; v < t->V; v++)
            s += exp(zb[v] - mx);
        for (int v = 0; v < t->V; v++) {
            lq[(size_t)b * t->V + v] = zb[v] - mx - log(s);
            q[(size_t)b * t->V + v] = exp(lq[(size_t)b * t->V + v]);
        }
    }
}

static int toy_objective(void *ctx, const float *delta, int n, double *value, float *grad)
{
    toy *t = ctx;
    if (n > t->max_rows)
        return pl_fail("toy: %d rows in one call, max %d", n, t->max_rows);
    t->calls++;
    int PV = t->P * t->V;
    double *h = malloc(sizeof(double) * t->H), *d = malloc(sizeof(double) * t->H);
    double *z = malloc(sizeof(double) * PV), *q = malloc(sizeof(double) * PV), *lq = malloc(sizeof(double) * PV);
    double *lp = malloc(sizeof(double) * PV), *u = malloc(sizeof(double) * PV), *g = malloc(sizeof(double) * t->C);
    for (int r = 0; r < n; r++) {
        hidden(t, delta + (size_t)r * t->C, h);
        for (int i = 0; i < t->H; i++)
            d[i] = 1.0 - tanh(h[i]) * tanh(h[i]), h[i] = tanh(h[i]);
        out_layer(t, h, z, 1);
        softmax_blocks(t, z, q, lq);
        double kl = 0.0;
        for (int j = 0; j < PV; j++) {
            double wb = t->w[j / t->V];
            lp[j] = log((double)t->p[j]);
            kl += wb * t->p[j] * (lp[j] - lq[j]);
            u[j] = wb * (q[j] - t->p[j]); /* ∂KL/∂z */
        }
        back(t, u, d, g);
        value[r] = t->poison ? NAN : kl;
        for (int j = 0; j < t->C; j++)
            grad[(size_t)r * t->C + j] = (float)g[j];
    }
    free(h), free(d), free(z), free(q), free(lq), free(lp), free(u), free(g);
    return PL_OK;
}

static void load_toy(toy *t)
{
    size_t nb;
    char *buf = read_file("model.bin", 1, &nb);
    t->buf = buf;
    int *dims = (int *)buf;
    t->C = dims[0], t->H = dims[1], t->V = dims[2], t->P = dims[3];
    int C = t->C, H = t->H, PV = t->P * t->V;
    float *f = (float *)(buf + 16);
    t->W1 = f, f += (size_t)H * C;
    t->b1 = f, f += H;
    t->W2 = f, f += (size_t)PV * H;
    t->b2 = f, f += PV;
    t->x = f, f += C;
    t->w = malloc(sizeof(double) * t->P);
    memcpy(t->w, f, sizeof(double) * t->P); /* may be unaligned in buf */
    double *h = malloc(sizeof(double) * H), *z = malloc(sizeof(double) * PV);
    double *q = malloc(sizeof(double) * PV), *lq = malloc(sizeof(double) * PV);
    t->sech2 = malloc(sizeof(double) * H);
    hidden(t, NULL, h);
    for (int i = 0; i < H; i++)
        t->sech2[i] = 1.0 - tanh(h[i]) * tanh(h[i]), h[i] = tanh(h[i]);
    out_layer(t, h, z, 1);
    softmax_blocks(t, z, q, lq);
    t->p = malloc(sizeof(float) * PV);
    for (int j = 0; j < PV; j++)
        t->p[j] = (float)q[j];
    free(h), free(z), free(q), free(lq);
}

/* The toy's own derivatives, for the finite-difference check. */
static void probe_derivatives(toy *t, const pl_sphere_op *sop)
{
    size_t nj, nu, no;
    float *vin = read_file("jvp_in.f32", sizeof(float) * t->C, &nj);
    float *uin = read_file("vjp_in.f32", sizeof(float) * t->P * t->V, &nu);
    double *pts = read_file("objpts.f64", sizeof(double) * t->C, &no);
    float *dz = malloc(sizeof(float) * nj * t->P * t->V), *g = malloc(sizeof(float) * nu * t->C);
    for (size_t r = 0; r < nj; r++)
        check(toy_jvp(t, vin + r * t->C, 1, dz + r * t->P * t->V));
    for (size_t r = 0; r < nu; r++)
        check(toy_vjp(t, uin + r * t->P * t->V, 1, g + r * t->C));
    write_file("jvp_out.f32", dz, sizeof(float) * nj * t->P * t->V);
    write_file("vjp_out.f32", g, sizeof(float) * nu * t->C);
    write_file("p.f32", t->p, sizeof(float) * t->P * t->V);
    float *x = malloc(sizeof(float) * no * t->C), *og = malloc(sizeof(float) * no * t->C);
    double *ov = malloc(sizeof(double) * no);
    for (size_t j = 0; j < no * t->C; j++)
        x[j] = (float)pts[j];
    for (size_t r = 0; r < no; r++)
        check(sop->objective(sop->ctx, x + r * t->C, 1, ov + r, og + r * t->C));
    write_file("objpts.f32", x, sizeof(float) * no * t->C);
    write_file("obj_value.f64", ov, sizeof(double) * no);
    write_file("obj_grad.f32", og, sizeof(float) * no * t->C);
    free(vin), free(uin), free(pts), free(dz), free(g), free(x), free(og), free(ov);
}

static void probe_fisher(toy *t, const pl_local_op *op, int k, uint64_t seed)
{
    const char *names[] = {"exact", "lanczos"};
    int methods[] = {PL_FISHER_EXACT, PL_FISHER_LANCZOS};
    int C = t->C;
    size_t nd;
    double *dirs = read_file("dirs.f64", sizeof(double) * C, &nd);
    pl_fisher_result res[2];
    for (int m = 0; m < 2; m++) {
        pl_rng rng;
        pl_rng_init(&rng, seed, 1, 2, 3);
        pl_fisher_opts o = {.method = methods[m]};
        check(pl_fisher_top(op, k, &o, &rng, &res[m]));
        char name[64];
        snprintf(name, sizeof name, "values_%s.f64", names[m]);
        write_file(name, res[m].values, sizeof(double) * k);
        snprintf(name, sizeof name, "vectors_%s.f64", names[m]);
        write_file(name, res[m].vectors, sizeof(double) * k * C);
        snprintf(name, sizeof name, "trace_%s.f64", names[m]);
        write_file(name, &res[m].trace, sizeof(double));
        printf("%s krylov_dim %d jvp_rows %ld vjp_rows %ld max_residual %.3g\n", names[m], res[m].krylov_dim,
               res[m].jvp_rows, res[m].vjp_rows, res[m].max_residual);
    }
    double *F = malloc(sizeof(double) * C * C), *Fd = malloc(sizeof(double) * nd * C);
    double *q = malloc(sizeof(double) * nd), *frac = malloc(sizeof(double) * nd), tr;
    check(pl_fisher_explicit(op, F, &tr));
    check(pl_fisher_matvec(op, dirs, (int)nd, Fd));
    check(pl_fisher_rayleigh(op, dirs, (int)nd, q));
    check(pl_subspace_fraction(res[0].vectors, k, C, dirs, (int)nd, frac));
    write_file("F.f64", F, sizeof(double) * C * C);
    write_file("matvec.f64", Fd, sizeof(double) * nd * C);
    write_file("rayleigh.f64", q, sizeof(double) * nd);
    write_file("fraction.f64", frac, sizeof(double) * nd);
    printf("auto method %s\n", pl_fisher_method(C, t->V, t->P, k) == PL_FISHER_EXACT ? "exact" : "lanczos");
    pl_fisher_result_free(&res[0]), pl_fisher_result_free(&res[1]);
    free(dirs), free(F), free(Fd), free(q), free(frac);
}

static void write_optima(const pl_sphere_state *s, const char *tag)
{
    char name[64];
    double *tan = malloc(sizeof(double) * s->n);
    for (int i = 0; i < s->n; i++)
        tan[i] = pl_sphere_tangential_norm(s, i);
    snprintf(name, sizeof name, "opt_%s_delta.f64", tag);
    write_file(name, s->delta, sizeof(double) * s->n * s->C);
    snprintf(name, sizeof name, "opt_%s_value.f64", tag);
    write_file(name, s->value, sizeof(double) * s->n);
    snprintf(name, sizeof name, "opt_%s_tangential.f64", tag);
    write_file(name, tan, sizeof(double) * s->n);
    snprintf(name, sizeof name, "opt_%s_iterations.i32", tag);
    write_file(name, s->iterations, sizeof(int) * s->n);
    snprintf(name, sizeof name, "opt_%s_status.i32", tag);
    write_file(name, s->status, sizeof(int) * s->n);
    for (int i = 0; i < s->n; i++)
        printf("%s optimum %d: f %.6g iterations %d evaluations %d status %s tangential %.3g\n", tag, i, s->value[i],
               s->iterations[i], s->evaluations[i], pl_opt_status_name(s->status[i]), tan[i]);
    free(tan);
}

/* The state through pl_sphere_save's bytes and back (pl_sphere_load) into a fresh state, as the sweep's
 * checkpoint carries it; a state of another sphere or shape is refused. */
static void checkpoint_roundtrip(pl_sphere_state *s, const double *start, const pl_sphere_opts *o)
{
    unsigned char *buf;
    size_t len;
    int n = s->n, C = s->C;
    check(pl_sphere_save(s, &buf, &len));
    if (len != pl_sphere_state_size(n, C, s->n_exclude)) {
        fprintf(stderr, "pl_sphere_save: %zu bytes, pl_sphere_state_size %zu\n", len,
                pl_sphere_state_size(n, C, s->n_exclude));
        exit(1);
    }
    pl_sphere_free(s);
    pl_sphere_opts other = *o;
    other.radius = 2.0 * o->radius;
    check(pl_sphere_init(s, start, n, C, &other));
    if (pl_sphere_load(s, buf, len) == PL_OK || pl_sphere_load(s, buf, len - 1) == PL_OK) {
        fprintf(stderr, "pl_sphere_load took a state of another radius, or a torn one\n");
        exit(1);
    }
    pl_sphere_free(s);
    check(pl_sphere_init(s, start, n, C, o)); /* a fresh process would do the same */
    check(pl_sphere_load(s, buf, len));
    free(buf);
}

static void probe_optimiser(toy *t, const pl_sphere_op *sop, double radius, double tol, int max_iter, double dcos)
{
    int C = t->C;
    size_t S;
    double *start = read_file("starts.f64", sizeof(double) * C, &S);
    for (int orth = 0; orth < 2; orth++) {
        pl_sphere_opts o = {.radius = radius, .max_iterations = max_iter, .tol = tol, .orthogonal = orth};
        pl_sphere_state s;
        int calls0 = t->calls;
        check(pl_sphere_init(&s, start, (int)S, C, &o));
        check(pl_sphere_run(&s, sop));
        printf("%s: %d objective calls\n", orth ? "orthogonal" : "plain", t->calls - calls0);
        write_optima(&s, orth ? "orth" : "plain");
        if (!orth) {
            int *label = malloc(sizeof(int) * S);
            int distinct = pl_cluster_by_cos(s.delta, (int)S, C, dcos, label);
            check(distinct);
            write_file("opt_plain_label.i32", label, sizeof(int) * S);
            write_file("opt_plain_distinct.i32", &distinct, sizeof(int));
            free(label);
        }
        /* interrupted after 7 calls, carried through a checkpoint, finished */
        pl_sphere_state r;
        int done = 0;
        check(pl_sphere_init(&r, start, (int)S, C, &o));
        for (int i = 0; i < 7 && !done; i++)
            check(pl_sphere_step(&r, sop, &done));
        checkpoint_roundtrip(&r, start, &o);
        check(pl_sphere_run(&r, sop));
        write_optima(&r, orth ? "orth_resumed" : "plain_resumed");
        pl_sphere_free(&s), pl_sphere_free(&r);
    }
    /* kept off the all-ones direction, as under residual_basis = centered */
    double *ones = malloc(sizeof(double) * C);
    for (int j = 0; j < C; j++)
        ones[j] = 1.0;
    pl_sphere_opts o = {.radius = radius, .max_iterations = max_iter, .tol = tol, .exclude = ones, .n_exclude = 1};
    pl_sphere_state s;
    check(pl_sphere_init(&s, start, (int)S, C, &o));
    check(pl_sphere_run(&s, sop));
    write_optima(&s, "centred");
    pl_sphere_free(&s);
    free(start), free(ones);
}

/* ------------------------------------------------------------ several optimisations together
 *
 * pl_sphere_run_many against each state run alone (pl_sphere_run): three optimisations (plain,
 * orthogonal, plain at another radius from other starts) together, with each state's rows in calls of
 * their own (mix_states 0: every call is checked to hold one state) and mixed (1: some call holds
 * several; the toy's rows are independent of each other, so both give each state its bits alone), and
 * stopped after 5 combined steps, carried through pl_sphere_save / pl_sphere_load, run on: bitwise the
 * same states. Exits 1 on a difference. */
typedef struct {
    toy *t;
    int mix, mixed_calls;
    int stop_after, steps;
} many_probe;

static int toy_many_objective(void *ctx, const int *state, const float *delta, int n, double *value, float *grad)
{
    many_probe *m = ctx;
    if (state[0] != state[n - 1]) {
        m->mixed_calls++;
        if (!m->mix)
            return pl_fail("mix_states 0, yet a call holds the rows of states %d and %d", state[0], state[n - 1]);
    }
    return toy_objective(m->t, delta, n, value, grad);
}

static int many_between(void *ctx, pl_sphere_state *const *s, const unsigned char *active, int n)
{
    (void)s, (void)active, (void)n;
    many_probe *m = ctx;
    return m->stop_after >= 0 && m->steps++ == m->stop_after ? 99 : PL_OK;
}

static int same_state(const pl_sphere_state *a, const pl_sphere_state *b)
{
    size_t n = (size_t)a->n, nc = n * a->C;
    return a->n == b->n && a->current == b->current && !memcmp(a->delta, b->delta, sizeof(double) * nc) &&
           !memcmp(a->grad, b->grad, sizeof(double) * nc) && !memcmp(a->value, b->value, sizeof(double) * n) &&
           !memcmp(a->step, b->step, sizeof(double) * n) && !memcmp(a->iterations, b->iterations, sizeof(int) * n) &&
           !memcmp(a->evaluations, b->evaluations, sizeof(int) * n) && !memcmp(a->status, b->status, sizeof(int) * n);
}

static void many_init(pl_sphere_state *st, const double *start, const double *start2, int S, int C,
                      const pl_sphere_opts *o)
{
    check(pl_sphere_init(&st[0], start, S, C, &o[0]));
    check(pl_sphere_init(&st[1], start, S, C, &o[1]));
    check(pl_sphere_init(&st[2], start2, S, C, &o[2]));
}

static void probe_many(toy *t, const pl_sphere_op *sop, double radius, double tol, int max_iter)
{
    int C = t->C, which;
    size_t S;
    double *start = read_file("starts.f64", sizeof(double) * C, &S), *start2 = malloc(sizeof(double) * S * C);
    for (size_t i = 0; i < S; i++) /* the starts in reverse order */
        memcpy(start2 + i * C, start + (S - 1 - i) * C, sizeof(double) * C);
    pl_sphere_opts o[3] = {{.radius = radius, .max_iterations = max_iter, .tol = tol},
                           {.radius = radius, .max_iterations = max_iter, .tol = tol, .orthogonal = 1},
                           {.radius = 0.5 * radius, .max_iterations = max_iter, .tol = tol}};
    pl_sphere_state ref[3], st[3], *sp[3] = {&st[0], &st[1], &st[2]};
    many_init(ref, start, start2, (int)S, C, o);
    for (int i = 0; i < 3; i++)
        check(pl_sphere_run(&ref[i], sop));
    for (int mix = 0; mix < 2; mix++)
        for (int stop = 0; stop < 2; stop++) {
            many_probe m = {t, mix, 0, stop ? 5 : -1, 0};
            pl_sphere_many_op op = {&m, C, t->max_rows, toy_many_objective, mix};
            pl_sphere_many_hooks hooks = {&m, NULL, many_between, NULL, NULL};
            many_init(st, start, start2, (int)S, C, o);
            int rc = pl_sphere_run_many(sp, 3, &op, &hooks, &which);
            if (stop && rc == 99) { /* stopped: through the checkpoint's bytes, then on */
                for (int i = 0; i < 3; i++)
                    checkpoint_roundtrip(&st[i], i == 2 ? start2 : start, &o[i]);
                m.stop_after = -1;
                rc = pl_sphere_run_many(sp, 3, &op, &hooks, &which);
            }
            check(rc);
            for (int i = 0; i < 3; i++)
                if (!same_state(&st[i], &ref[i])) {
                    fprintf(stderr, "pl_sphere_run_many (mix_states %d%s): state %d differs from its run alone\n", mix,
                            stop ? ", stopped and resumed" : "", i);
                    exit(1);
                }
            if (mix && !m.mixed_calls) {
                fprintf(stderr, "pl_sphere_run_many (mix_states 1): no call held the rows of two states\n");
                exit(1);
            }
            printf("run_many: mix_states %d%s: each state bitwise its run alone (%d mixed calls)\n", mix,
                   stop ? ", stopped after 5 steps and resumed" : "", m.mixed_calls);
            for (int i = 0; i < 3; i++)
                pl_sphere_free(&st[i]);
        }
    for (int i = 0; i < 3; i++)
        pl_sphere_free(&ref[i]);
    free(start), free(start2);
}

static void probe_clusters_alignment(int C, double dcos, int q)
{
    size_t mc, nd, m, ns;
    double *X = read_file("cluster.f64", sizeof(double) * C, &mc);
    double *dirs = read_file("dirs.f64", sizeof(double) * C, &nd);
    float *M = read_file("M.f32", sizeof(float) * C, &m);
    double *S = read_file("sigma.f64", sizeof(double) * C * C, &ns);
    int *label = malloc(sizeof(int) * mc), *which = malloc(sizeof(int) * nd);
    int count = pl_cluster_by_cos(X, (int)mc, C, dcos, label);
    check(count);
    write_file("cluster_label.i32", label, sizeof(int) * mc);
    write_file("cluster_count.i32", &count, sizeof(int));
    double *best = malloc(sizeof(double) * nd), *Md = malloc(sizeof(double) * m * C);
    double *cosm = malloc(sizeof(double) * nd * m), *pcs = malloc(sizeof(double) * q * C);
    double *var = malloc(sizeof(double) * q);
    check(pl_max_abs_cos(dirs, (int)nd, M, (int)m, C, best, which));
    /* |cos| with the first 5 rows (test_fisher.py keeps them nonzero; a zero row there is an error) */
    for (size_t j = 0; j < 5 * (size_t)C; j++)
        Md[j] = M[j];
    check(pl_abs_cos(dirs, (int)nd, Md, 5, C, cosm));
    check(pl_principal_components(S, C, q, pcs, var));
    write_file("maxcos.f64", best, sizeof(double) * nd);
    write_file("maxcos_which.i32", which, sizeof(int) * nd);
    write_file("abscos.f64", cosm, sizeof(double) * nd * 5);
    write_file("pcs.f64", pcs, sizeof(double) * q * C);
    write_file("pc_var.f64", var, sizeof(double) * q);
    free(X), free(dirs), free(M), free(S), free(label), free(which), free(best), free(Md), free(cosm), free(pcs);
    free(var);
}

/* Each refused input prints "error: <message>" (test_fisher.py checks the messages). */
static void probe_errors(toy *t, const pl_local_op *op, const pl_sphere_op *sop)
{
    pl_fisher_result res;
    pl_rng rng;
    pl_rng_init(&rng, 1, 2, 3, 4);
    int C = t->C;
    double *d = calloc((size_t)(C + 1) * C, sizeof(double)), q;
    if (pl_fisher_top(op, C + 1, NULL, &rng, &res) == PL_ERR)
        printf("error: %s\n", pl_error());
    if (pl_fisher_rayleigh(op, d, 1, &q) == PL_ERR)
        printf("error: %s\n", pl_error());
    pl_sphere_state s;
    pl_sphere_opts o = {.radius = 1.0, .orthogonal = 1};
    for (int i = 0; i < C + 1; i++)
        d[(size_t)i * C + i % C] = 1.0;
    if (pl_sphere_init(&s, d, C + 1, C, &o) == PL_ERR)
        printf("error: %s\n", pl_error());
    t->poison = 1;
    pl_fisher_opts lz = {.method = PL_FISHER_LANCZOS};
    if (pl_fisher_top(op, 2, &lz, &rng, &res) == PL_ERR)
        printf("error: %s\n", pl_error());
    check(pl_sphere_init(&s, d, 2, C, &o));
    if (pl_sphere_run(&s, sop) == PL_ERR)
        printf("error: %s\n", pl_error());
    pl_sphere_free(&s);
    t->poison = 0;
    free(d);
}

int main(int argc, char **argv)
{
    if (argc != 11) {
        fprintf(stderr, "usage: fisher_probe IN_DIR OUT_DIR K RADIUS TOL MAX_ITER DISTINCT_COS SEED MAX_ROWS Q\n");
        return 1;
    }
    g_in = argv[1], g_out = argv[2];
    int k = atoi(argv[3]), max_iter = atoi(argv[6]), q = atoi(argv[10]);
    double radius = atof(argv[4]), tol = atof(argv[5]), dcos = atof(argv[7]);
    toy t = {0};
    load_toy(&t);
    t.max_rows = atoi(argv[9]);
    pl_local_op op = {.ctx = &t, .C = t.C, .V = t.V, .P = t.P, .max_rows = t.max_rows, .p = t.p, .w = t.w,
                      .jvp = toy_jvp, .vjp = toy_vjp};
    pl_sphere_op sop = {.ctx = &t, .C = t.C, .max_rows = t.max_rows, .objective = toy_objective};
    probe_derivatives(&t, &sop);
    probe_fisher(&t, &op, k, strtoull(argv[8], NULL, 10));
    probe_optimiser(&t, &sop, radius, tol, max_iter, dcos);
    probe_many(&t, &sop, radius, tol, max_iter);
    probe_clusters_alignment(t.C, dcos, q);
    probe_errors(&t, &op, &sop);
    free(t.sech2), free(t.p), free(t.w), free(t.buf);
    return 0;
}
