/* The Fisher metric of the readout distributions pulled back to the perturbed activation (issue 17,
 * item 2): F = Σ_b w_b J_bᵀ (diag p_b − p_b p_bᵀ) J_b, see fisher.h for the symbols.
 *
 * G = diag p − p pᵀ is applied as G u = p ⊙ (u − (pᵀu)·1): centring u first (in double) keeps the
 * softmax-invariant shift of the logits out of every sum, so F loses nothing to the cancellation
 * between Σ p u_i u_j and (pᵀu_i)(pᵀu_j) that the two-term form suffers when J has a large common
 * logit shift.
 *
 * Which method (pl_fisher_method): the exact trace needs the diagonal of F, i.e. C JVP rows (one per
 * unit vector e_i; Hutchinson's estimate would be a silent approximation), and those C rows are J
 * itself. So whenever J fits in memory, keeping it and forming F = Ãᵀ Ã (Ã the centred, √(w p)-scaled
 * J) costs no model rows beyond the trace's and gives every eigenpair exactly (one dsyevd, C³/3
 * flops): PL_FISHER_EXACT when C·P·V floats ≤ PL_FISHER_EXACT_BYTES and C ≤ 4096. Otherwise block
 * Lanczos: C JVP rows streamed for the trace plus one JVP and one VJP row per Krylov vector, with full
 * reorthogonalisation (classical Gram-Schmidt twice against the whole basis) and a Rayleigh-Ritz
 * projection H = Qᵀ(FQ) solved by dsyevd (equal to the block-tridiagonal problem of Lanczos in exact
 * arithmetic, and immune to the loss of orthogonality of the three-term recurrence). The basis grows
 * until every one of the k Ritz pairs has ‖F u − θ u‖ ≤ tol·θ_1, or spans all of R^C (then exact).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <lapacke.h>

#include "plateau/error.h"
#include "fisher.h"

int pl_fisher_method(int C, int V, int P, int k)
{
    (void)k; /* the trace's C JVP rows make exact never dearer in model rows; only memory decides */
    double bytes = (double)C * (double)P * (double)V * sizeof(float);
    return (bytes <= (double)PL_FISHER_EXACT_BYTES && C <= 4096) ? PL_FISHER_EXACT : PL_FISHER_LANCZOS;
}

void pl_fix_sign(double *u, int C)
{
    int best = 0;
    for (int i = 1; i < C; i++)
        if (fabs(u[i]) > fabs(u[best]))
            best = i;
    if (u[best] < 0)
        for (int i = 0; i < C; i++)
            u[i] = -u[i];
}

static double block_weight(const pl_local_op *op, int b) { return op->w ? op->w[b] : 1.0; }

/* dz[P·V] (one JVP row) -> centred copy c[P·V] (c_b = dz_b − p_bᵀdz_b). Returns Σ_b w_b Σ p c², the
 * row's quadratic form vᵀFv. */
static double centre_row(const pl_local_op *op, const float *dz, double *c)
{
    double q = 0.0;
    for (int b = 0; b < op->P; b++) {
        const float *pb = op->p + (size_t)b * op->V;
        const float *zb = dz + (size_t)b * op->V;
        double *cb = c + (size_t)b * op->V;
        double mean = 0.0, s = 0.0;
        for (int v = 0; v < op->V; v++)
            mean += (double)pb[v] * zb[v];
        for (int v = 0; v < op->V; v++) {
            cb[v] = zb[v] - mean;
            s += (double)pb[v] * cb[v] * cb[v];
        }
        q += block_weight(op, b) * s;
    }
    return q;
}

/* Every value of the n rows a[n, width] an operator returned is finite, else an error naming the row
 * (WHAT followed by ROW0 + its index in the call). */
static int finite_rows(const float *a, int n, int width, const char *what, int row0)
{
    for (size_t j = 0; j < (size_t)n * width; j++)
        if (!isfinite(a[j]))
            return pl_fail("fisher: the %s%d is %s at component %zu", what, row0 + (int)(j / width),
                           isnan(a[j]) ? "NaN" : "infinite", j % width);
    return PL_OK;
}

/* n ≤ max_rows rows of J e_i for i = i0 .. i0+n-1 into dz[n, P·V]. */
static int jvp_unit_rows(const pl_local_op *op, int i0, int n, float *e, float *dz)
{
    memset(e, 0, sizeof(float) * (size_t)n * op->C);
    for (int r = 0; r < n; r++)
        e[(size_t)r * op->C + i0 + r] = 1.0f;
    if (op->jvp(op->ctx, e, n, dz) != PL_OK)
        return PL_ERR;
    return finite_rows(dz, n, op->P * op->V, "JVP of unit vector e_", i0);
}

int pl_fisher_matvec(const pl_local_op *op, const double *v, int n, double *out)
{
    int C = op->C, PV = op->P * op->V, R = op->max_rows < n ? op->max_rows : n;
    float *x = pl_malloc(sizeof(float) * (size_t)R * (C > PV ? C : PV), "fisher matvec rows");
    float *dz = pl_malloc(sizeof(float) * (size_t)R * PV, "fisher matvec logits");
    double *c = pl_malloc(sizeof(double) * (size_t)PV, "fisher matvec centred row");
    int rc = (x && dz && c) ? PL_OK : PL_ERR;
    for (int i0 = 0; rc == PL_OK && i0 < n; i0 += R) {
        int m = n - i0 < R ? n - i0 : R;
        for (size_t j = 0; j < (size_t)m * C; j++)
            x[j] = (float)v[(size_t)i0 * C + j];
        if ((rc = op->jvp(op->ctx, x, m, dz)) != PL_OK ||
            (rc = finite_rows(dz, m, PV, "JVP of direction ", i0)) != PL_OK)
            break;
        for (int r = 0; r < m; r++) { /* dz row -> G dz row, in place */
            float *zr = dz + (size_t)r * PV;
            centre_row(op, zr, c);
            for (int b = 0; b < op->P; b++)
                for (int u = 0; u < op->V; u++) {
                    size_t j = (size_t)b * op->V + u;
                    zr[j] = (float)(block_weight(op, b) * op->p[j] * c[j]);
                }
        }
        if ((rc = op->vjp(op->ctx, dz, m, x)) != PL_OK ||
            (rc = finite_rows(x, m, C, "VJP of the metric applied to direction ", i0)) != PL_OK)
            break;
        for (size_t j = 0; j < (size_t)m * C; j++)
            out[(size_t)i0 * C + j] = x[j];
    }
    free(x), free(dz), free(c);
    return rc;
}

int pl_fisher_rayleigh(const pl_local_op *op, const double *d, int n, double *q)
{
    int C = op->C, PV = op->P * op->V, R = op->max_rows < n ? op->max_rows : n;
    for (int i = 0; i < n; i++) {
        double s = cblas_ddot(C, d + (size_t)i * C, 1, d + (size_t)i * C, 1);
        if (!(s > 0))
            return pl_fail("fisher: Rayleigh quotient of direction %d: its norm is zero", i);
    }
    float *x = pl_malloc(sizeof(float) * (size_t)R * C, "rayleigh rows");
    float *dz = pl_malloc(sizeof(float) * (size_t)R * PV, "rayleigh logits");
    double *c = pl_malloc(sizeof(double) * (size_t)PV, "rayleigh centred row");
    int rc = (x && dz && c) ? PL_OK : PL_ERR;
    for (int i0 = 0; rc == PL_OK && i0 < n; i0 += R) {
        int m = n - i0 < R ? n - i0 : R;
        for (size_t j = 0; j < (size_t)m * C; j++)
            x[j] = (float)d[(size_t)i0 * C + j];
        if ((rc = op->jvp(op->ctx, x, m, dz)) != PL_OK ||
            (rc = finite_rows(dz, m, PV, "JVP of direction ", i0)) != PL_OK)
            break;
        for (int r = 0; r < m; r++) {
            /* the float32 row itself is what went through J: its norm is the denominator */
            double s = 0.0;
            for (int j = 0; j < C; j++)
                s += (double)x[(size_t)r * C + j] * x[(size_t)r * C + j];
            q[i0 + r] = centre_row(op, dz + (size_t)r * PV, c) / s;
        }
    }
    free(x), free(dz), free(c);
    return rc;
}

int pl_fisher_trace(const pl_local_op *op, double *trace)
{
    int C = op->C, PV = op->P * op->V, R = op->max_rows < C ? op->max_rows : C;
    float *e = pl_malloc(sizeof(float) * (size_t)R * C, "trace unit rows");
    float *dz = pl_malloc(sizeof(float) * (size_t)R * PV, "trace logits");
    double *c = pl_malloc(sizeof(double) * (size_t)PV, "trace centred row");
    int rc = (e && dz && c) ? PL_OK : PL_ERR;
    double t = 0.0;
    for (int i0 = 0; rc == PL_OK && i0 < C; i0 += R) {
        int m = C - i0 < R ? C - i0 : R;
        if ((rc = jvp_unit_rows(op, i0, m, e, dz)) != PL_OK)
            break;
        for (int r = 0; r < m; r++)
            t += centre_row(op, dz + (size_t)r * PV, c);
    }
    *trace = t;
    free(e), free(dz), free(c);
    return rc;
}

/* Ã[C, P·V] (float): row i is J e_i centred per block and scaled by √(w_b p). Returns tr F. */
static int scaled_jacobian(const pl_local_op *op, float *A, double *trace)
{
    int C = op->C, PV = op->P * op->V, R = op->max_rows < C ? op->max_rows : C;
    float *e = pl_malloc(sizeof(float) * (size_t)R * C, "jacobian unit rows");
    double *c = pl_malloc(sizeof(double) * (size_t)PV, "jacobian centred row");
    int rc = (e && c) ? PL_OK : PL_ERR;
    double t = 0.0;
    for (int i0 = 0; rc == PL_OK && i0 < C; i0 += R) {
        int m = C - i0 < R ? C - i0 : R;
        float *rows = A + (size_t)i0 * PV;
        if ((rc = jvp_unit_rows(op, i0, m, e, rows)) != PL_OK)
            break;
        for (int r = 0; r < m; r++) {
            float *ar = rows + (size_t)r * PV;
            t += centre_row(op, ar, c);
            for (int b = 0; b < op->P; b++)
                for (int u = 0; u < op->V; u++) {
                    size_t j = (size_t)b * op->V + u;
                    ar[j] = (float)(sqrt(block_weight(op, b) * op->p[j]) * c[j]);
                }
        }
    }
    *trace = t;
    free(e), free(c);
    return rc;
}

int pl_fisher_explicit(const pl_local_op *op, double *F, double *trace)
{
    int C = op->C, PV = op->P * op->V, chunk = 1024;
    float *A = pl_malloc(sizeof(float) * (size_t)C * PV, "scaled jacobian");
    double *Ad = pl_malloc(sizeof(double) * (size_t)C * chunk, "scaled jacobian chunk");
    double t = 0.0;
    int rc = (A && Ad) ? scaled_jacobian(op, A, &t) : PL_ERR;
    if (rc == PL_OK) {
        /* F = Ã Ãᵀ accumulated in double over column chunks of Ã (lower triangle, then mirrored) */
        memset(F, 0, sizeof(double) * (size_t)C * C);
        for (int j0 = 0; j0 < PV; j0 += chunk) {
            int w = PV - j0 < chunk ? PV - j0 : chunk;
            for (int i = 0; i < C; i++)
                for (int j = 0; j < w; j++)
                    Ad[(size_t)i * w + j] = A[(size_t)i * PV + j0 + j];
            cblas_dsyrk(CblasRowMajor, CblasLower, CblasNoTrans, C, w, 1.0, Ad, w, 1.0, F, C);
        }
        for (int i = 0; i < C; i++)
            for (int j = i + 1; j < C; j++)
                F[(size_t)i * C + j] = F[(size_t)j * C + i];
        if (trace)
            *trace = t;
    }
    free(A), free(Ad);
    return rc;
}

int pl_subspace_fraction(const double *U, int k, int C, const double *d, int n, double *frac)
{
    for (int i = 0; i < n; i++) {
        const double *di = d + (size_t)i * C;
        double s = cblas_ddot(C, di, 1, di, 1), in = 0.0;
        if (!(s > 0))
            return pl_fail("fisher: subspace fraction of direction %d: its norm is zero", i);
        for (int j = 0; j < k; j++) {
            double c = cblas_ddot(C, U + (size_t)j * C, 1, di, 1);
            in += c * c;
        }
        frac[i] = in / s;
    }
    return PL_OK;
}

void pl_fisher_result_free(pl_fisher_result *res)
{
    free(res->values), free(res->vectors);
    res->values = res->vectors = NULL;
}

/* Eigenpairs of the symmetric H[m, m] (overwritten by its eigenvectors as columns, ascending):
 * w[m]. */
static int sym_eigen(double *H, int m, double *w, const char *what)
{
    int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'L', m, H, m, w);
    return info == 0 ? PL_OK : pl_fail("fisher: eigendecomposition of %s failed (LAPACK info %d)", what, info);
}

static int fisher_exact(const pl_local_op *op, int k, pl_fisher_result *res)
{
    int C = op->C;
    double *F = pl_malloc(sizeof(double) * (size_t)C * C, "fisher matrix");
    double *w = pl_malloc(sizeof(double) * (size_t)C, "fisher eigenvalues");
    int rc = (F && w) ? pl_fisher_explicit(op, F, &res->trace) : PL_ERR;
    if (rc == PL_OK)
        rc = sym_eigen(F, C, w, "F");
    for (int j = 0; rc == PL_OK && j < k; j++) {
        int col = C - 1 - j;
        res->values[j] = w[col];
        for (int i = 0; i < C; i++)
            res->vectors[(size_t)j * C + i] = F[(size_t)i * C + col];
    }
    res->krylov_dim = C;
    res->max_residual = 0.0;
    res->jvp_rows += C;
    free(F), free(w);
    return rc;
}

/* Rows X[b, C]: orthogonalise against Q[m, C] (twice) and among themselves; a row that loses all but
 * 1e-8 of its norm (the Krylov space became invariant, or F has a null space) is replaced by a fresh
 * random row and tried again, so the basis always grows by b. */
static void extend_basis(double *Q, int m, double *X, int b, int C, pl_rng *rng)
{
    for (int r = 0; r < b; r++) {
        double *x = X + (size_t)r * C;
        for (int attempt = 0;; attempt++) {
            double n0 = cblas_dnrm2(C, x, 1);
            for (int pass = 0; pass < 2; pass++) {
                for (int j = 0; j < m; j++)
                    cblas_daxpy(C, -cblas_ddot(C, Q + (size_t)j * C, 1, x, 1), Q + (size_t)j * C, 1, x, 1);
                for (int j = 0; j < r; j++)
                    cblas_daxpy(C, -cblas_ddot(C, X + (size_t)j * C, 1, x, 1), X + (size_t)j * C, 1, x, 1);
            }
            double n1 = cblas_dnrm2(C, x, 1);
            if (n1 > 1e-8 * n0 && n1 > 0) {
                cblas_dscal(C, 1.0 / n1, x, 1);
                break;
            }
            for (int i = 0; i < C; i++)
                x[i] = pl_rng_gaussian(rng);
        }
    }
}

/* Rayleigh-Ritz on Q[m, C], FQ[m, C]: top-k Ritz pairs into res; returns the largest relative
 * residual ‖F u − θ u‖ / θ_1, or a negative value on failure. */
static double ritz(const double *Q, const double *FQ, int m, int C, int k, pl_fisher_result *res)
{
    double *H = pl_malloc(sizeof(double) * (size_t)m * m, "ritz matrix");
    double *w = pl_malloc(sizeof(double) * (size_t)m, "ritz values");
    double *r = pl_malloc(sizeof(double) * (size_t)C, "ritz residual");
    double worst = -1.0;
    if (!H || !w || !r)
        goto done;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, m, C, 1.0, Q, C, FQ, C, 0.0, H, m);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < i; j++)
            H[(size_t)i * m + j] = H[(size_t)j * m + i] = 0.5 * (H[(size_t)i * m + j] + H[(size_t)j * m + i]);
    if (sym_eigen(H, m, w, "the Ritz matrix") != PL_OK)
        goto done;
    double scale = fabs(w[m - 1]) > 1e-300 ? fabs(w[m - 1]) : 1e-300;
    worst = 0.0;
    for (int j = 0; j < k; j++) {
        int col = m - 1 - j;
        double *u = res->vectors + (size_t)j * C;
        /* u = Qᵀ y, r = FQᵀ y − θ u (y column col of H) */
        cblas_dgemv(CblasRowMajor, CblasTrans, m, C, 1.0, Q, C, H + col, m, 0.0, u, 1);
        cblas_dgemv(CblasRowMajor, CblasTrans, m, C, 1.0, FQ, C, H + col, m, 0.0, r, 1);
        cblas_daxpy(C, -w[col], u, 1, r, 1);
        double rel = cblas_dnrm2(C, r, 1) / scale;
        worst = rel > worst ? rel : worst;
        res->values[j] = w[col];
    }
done:
    free(H), free(w), free(r);
    return worst;
}

static int fisher_lanczos(const pl_local_op *op, int k, const pl_fisher_opts *opts, pl_rng *rng,
                          pl_fisher_result *res)
{
    int C = op->C;
    int b = opts && opts->block > 0 ? opts->block : (k < 8 ? k : 8);
    b = b > op->max_rows ? op->max_rows : b;
    double tol = opts && opts->tol > 0 ? opts->tol : 1e-5;
    double *Q = pl_malloc(sizeof(double) * (size_t)C * C, "lanczos basis");
    double *FQ = pl_malloc(sizeof(double) * (size_t)C * C, "lanczos images");
    int rc = (Q && FQ) ? pl_fisher_trace(op, &res->trace) : PL_ERR;
    res->jvp_rows += C;
    for (size_t i = 0; rc == PL_OK && i < (size_t)b * C; i++)
        Q[i] = pl_rng_gaussian(rng); /* the start block, keyed by the caller's stream */
    int m = 0, checked = 0;
    while (rc == PL_OK) {
        int nb = C - m < b ? C - m : b;
        double *X = Q + (size_t)m * C;
        extend_basis(Q, m, X, nb, C, rng);
        if ((rc = pl_fisher_matvec(op, X, nb, FQ + (size_t)m * C)) != PL_OK)
            break;
        res->jvp_rows += nb, res->vjp_rows += nb;
        m += nb;
        /* Rayleigh-Ritz once the basis can hold k pairs, then whenever it grew by a quarter (its cost
         * is m³, and checking every block would dominate for large C) */
        if (m >= k && (m == C || m >= checked + (checked / 4 > b ? checked / 4 : b))) {
            double worst = ritz(Q, FQ, m, C, k, res);
            if (worst < 0) {
                rc = PL_ERR;
                break;
            }
            checked = m;
            res->max_residual = worst;
            if (worst <= tol || m == C)
                break;
        }
        if (m < C) /* the next block continues the Krylov sequence: F applied to the newest block */
            memcpy(Q + (size_t)m * C, FQ + (size_t)(m - nb) * C, sizeof(double) * (size_t)(C - m < b ? C - m : b) * C);
    }
    res->krylov_dim = m;
    free(Q), free(FQ);
    return rc;
}

int pl_fisher_top(const pl_local_op *op, int k, const pl_fisher_opts *opts, pl_rng *rng, pl_fisher_result *res)
{
    memset(res, 0, sizeof *res);
    if (k < 1 || k > op->C)
        return pl_fail("fisher: k = %d eigenpairs asked of a metric of dimension %d (need 1 <= k <= %d)", k, op->C,
                       op->C);
    int method = opts ? opts->method : PL_FISHER_AUTO;
    if (method == PL_FISHER_AUTO)
        method = pl_fisher_method(op->C, op->V, op->P, k);
    if (method == PL_FISHER_LANCZOS && !rng)
        return pl_fail("fisher: Lanczos needs a keyed random stream for its start block");
    res->k = k;
    res->method = method;
    res->values = pl_malloc(sizeof(double) * (size_t)k, "fisher eigenvalues");
    res->vectors = pl_malloc(sizeof(double) * (size_t)k * op->C, "fisher eigenvectors");
    int rc = (res->values && res->vectors) ? PL_OK : PL_ERR;
    if (rc == PL_OK)
        rc = method == PL_FISHER_EXACT ? fisher_exact(op, k, res) : fisher_lanczos(op, k, opts, rng, res);
    for (int j = 0; rc == PL_OK && j < k; j++)
        pl_fix_sign(res->vectors + (size_t)j * op->C, op->C);
    if (rc != PL_OK)
        pl_fisher_result_free(res);
    return rc;
}
