#!/usr/bin/python3
"""Issue 17's Fisher metric, sphere optimiser, clustering and alignment (src/experiment/fisher.h)
against numpy, on the toy model z(x) = W2 tanh(W1 x + b1) + b2 that tests/experiment/fisher_probe.c
implements in C (its own JVP, VJP and KL objective).

The references here are independent of the C code: the toy's Jacobian by float64 central finite
differences (which also checks the C toy's JVP, VJP and gradient), the explicit
F = sum_b w_b J_b^T (diag p_b - p_b p_b^T) J_b and numpy's eigh, KL's second-order identity
KL(eps u) ~ eps^2/2 u^T F u, 2000 random directions on the sphere against every optimum, and hand-made
cases for clustering. The hidden width (16) is below C (24), so F has a null space and Lanczos must
deflate (restart) when its Krylov space becomes invariant.

    test_fisher.py WORK_DIR FISHER_PROBE
"""
import os
import subprocess
import sys

import numpy as np

WORK, PROBE = sys.argv[1], sys.argv[2]
C, H, V, P = 24, 16, 12, 2
K, STARTS, TOL, MAX_ITER, DCOS, SEED, MAX_ROWS, Q = 6, 6, 1e-3, 500, 0.95, 7, 5, 3
failures = []


def expect(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


rng = np.random.default_rng(2017)
W1 = (rng.standard_normal((H, C)) * 1.2 / np.sqrt(C)).astype(np.float32)
b1 = (rng.standard_normal(H) * 0.1).astype(np.float32)
W2 = (rng.standard_normal((P * V, H)) * 2.5 / np.sqrt(H)).astype(np.float32)
b2 = (rng.standard_normal(P * V) * 0.5).astype(np.float32)
x0 = rng.standard_normal(C).astype(np.float32)
w = np.array([1.0, 0.5])
W1d, b1d, W2d, b2d, x0d = (a.astype(np.float64) for a in (W1, b1, W2, b2, x0))


def logits(x):
    return W2d @ np.tanh(W1d @ x + b1d) + b2d


def log_softmax_blocks(z):
    z = z.reshape(P, V)
    z = z - z.max(axis=1, keepdims=True)
    return (z - np.log(np.exp(z).sum(axis=1, keepdims=True))).reshape(-1)


logp = log_softmax_blocks(logits(x0d))
p = np.exp(logp)
wv = np.repeat(w, V)
p32 = p.astype(np.float32).astype(np.float64)  # the clean distribution as the interface carries it


def kl(delta):
    return float(np.sum(wv * p32 * (np.log(p32) - log_softmax_blocks(logits(x0d + delta)))))


def kl_grad(delta):
    """The gradient by float64 central differences (independent of any analytic form)."""
    g, e = np.zeros(C), 1e-5
    for i in range(C):
        d = np.zeros(C)
        d[i] = e
        g[i] = (kl(delta + d) - kl(delta - d)) / (2 * e)
    return g


def fd_jacobian(x):
    Jm, e = np.zeros((P * V, C)), 1e-5
    for i in range(C):
        d = np.zeros(C)
        d[i] = e
        Jm[:, i] = (logits(x + d) - logits(x - d)) / (2 * e)
    return Jm


J = fd_jacobian(x0d)
F = np.zeros((C, C))
for b in range(P):
    Jb, pb = J[b * V:(b + 1) * V], p[b * V:(b + 1) * V]
    F += w[b] * Jb.T @ (np.diag(pb) - np.outer(pb, pb)) @ Jb
evals, evecs = np.linalg.eigh(F)
evals, evecs = evals[::-1], evecs[:, ::-1].T  # descending, rows


def unit(a):
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def write_inputs(d, radius):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "model.bin"), "wb") as f:
        f.write(np.array([C, H, V, P], np.int32).tobytes())
        for a in (W1, b1, W2, b2, x0):
            f.write(a.tobytes())
        f.write(w.tobytes())
    r = np.random.default_rng(5)
    dirs = r.standard_normal((8, C))
    dirs[1] = evecs[0] * 3.0  # inside the top-k subspace: fraction 1
    M = r.standard_normal((10, C)).astype(np.float32)
    M[6] = 0.0  # a dead feature: no direction, skipped
    M[7] = 3.0 * M[2]  # a tie with row 2: the lower index wins
    dirs[2] = -2.0 * M[2]
    A = r.standard_normal((C, 2 * C))
    sigma = A @ A.T / (2 * C) + np.diag(np.linspace(3.0, 0.0, C))
    files = {
        "dirs.f64": dirs, "starts.f64": r.standard_normal((STARTS, C)), "M.f32": M, "sigma.f64": sigma,
        "objpts.f64": unit(r.standard_normal((4, C))) * radius, "cluster.f64": cluster_rows(),
        "jvp_in.f32": r.standard_normal((4, C)).astype(np.float32),
        "vjp_in.f32": r.standard_normal((4, P * V)).astype(np.float32),
    }
    for name, a in files.items():
        a.tofile(os.path.join(d, name))
    return files


def cluster_rows():
    """Hand-made: a, b, c at 0, 16 and 32 degrees in the (e0, e1) plane (cos(a, b) = cos(b, c) = 0.961,
    cos(a, c) = 0.848): one cluster at 0.95 through the chain; e2 and -2 e2 one cluster (|cos| 1);
    e3 alone; e2 + e3 (cos 0.707 with both) alone. Expected labels [0, 1, 0, 3, 0, 1, 6], 4 clusters."""
    X = np.zeros((7, C))
    for row, deg in ((0, 0.0), (2, 16.0), (4, 32.0)):
        X[row, 0], X[row, 1] = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    X[1, 2] = 1.0
    X[3, 3] = 1.0
    X[5, 2] = -2.0
    X[6, 2] = X[6, 3] = 1.0
    return X


def run(tag, radius):
    d = os.path.join(WORK, tag)
    files = write_inputs(d, radius)
    global last_stdout
    proc = subprocess.run([PROBE, d, d, str(K), repr(radius), repr(TOL), str(MAX_ITER), repr(DCOS),
                           str(SEED), str(MAX_ROWS), str(Q)], capture_output=True, text=True)
    print(proc.stdout, end="")
    last_stdout = proc.stdout
    if proc.returncode != 0:
        print(proc.stderr)
        sys.exit(1)

    def load(name, shape=None):
        dt = {"f64": np.float64, "f32": np.float32, "i32": np.int32}[name.rsplit(".", 1)[1]]
        a = np.fromfile(os.path.join(d, name), dtype=dt)
        return a.reshape(shape) if shape else a

    return files, load


def relerr(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / max(np.max(np.abs(b)), 1e-300))


def check_derivatives(files, load):
    jv, vj = files["jvp_in.f32"].astype(np.float64), files["vjp_in.f32"].astype(np.float64)
    expect(relerr(load("jvp_out.f32", (4, P * V)), jv @ J.T) < 1e-4, "toy JVP rows = finite-difference J v")
    expect(relerr(load("vjp_out.f32", (4, C)), vj @ J) < 1e-4, "toy VJP rows = u^T (finite-difference J)")
    expect(relerr(load("p.f32"), p) < 1e-6, "clean probabilities")
    pts = load("objpts.f32", (4, C)).astype(np.float64)
    vals = np.array([kl(q) for q in pts])
    grads = np.array([kl_grad(q) for q in pts])
    expect(relerr(load("obj_value.f64"), vals) < 1e-6, "toy objective = numpy KL(clean || perturbed)")
    expect(relerr(load("obj_grad.f32", (4, C)), grads) < 1e-4, "toy objective gradient = finite differences")


def check_fisher(files, load):
    expect(relerr(load("F.f64", (C, C)), F) < 1e-5, "explicit F = numpy J^T (diag p - p p^T) J")
    dirs = files["dirs.f64"]
    expect(relerr(load("matvec.f64", (8, C)), dirs @ F) < 1e-4, "F v by JVP then VJP")
    ray = np.einsum("ij,jk,ik->i", dirs, F, dirs) / np.sum(dirs * dirs, axis=1)
    expect(relerr(load("rayleigh.f64"), ray) < 1e-5, "Rayleigh quotients d^T F d / |d|^2")
    # a top-k eigenvector is well defined when its eigenvalue is apart from its neighbours
    gap = np.minimum(np.abs(evals[:K] - evals[1:K + 1]), np.abs(evals[:K] - np.r_[np.inf, evals[:K - 1]]))
    sep = gap > 1e-2 * evals[0]
    expect(sep.sum() >= 3, f"the toy has well separated eigenvalues ({sep.sum()} of {K})")
    for method in ("exact", "lanczos"):
        vals, vecs = load(f"values_{method}.f64"), load(f"vectors_{method}.f64", (K, C))
        expect(np.max(np.abs(vals - evals[:K])) < 1e-5 * evals[0], f"{method}: top-{K} eigenvalues = numpy eigh")
        cos = np.abs(np.sum(vecs * evecs[:K], axis=1))
        expect(np.all(cos[sep] >= 0.999), f"{method}: |cos| with numpy's eigenvectors {np.round(cos, 6)}")
        expect(np.allclose(vecs @ vecs.T, np.eye(K), atol=1e-8), f"{method}: eigenvectors orthonormal")
        top = vecs[np.arange(K), np.argmax(np.abs(vecs), axis=1)]
        expect(np.all(top > 0), f"{method}: largest-|component| entry of every eigenvector positive")
        tr = load(f"trace_{method}.f64")[0]
        expect(abs(tr - np.trace(F)) < 1e-5 * np.trace(F), f"{method}: trace {tr:.8g} = numpy {np.trace(F):.8g}")
    U = load("vectors_exact.f64", (K, C))
    frac = np.sum((dirs @ evecs[:K].T) ** 2, axis=1) / np.sum(dirs * dirs, axis=1)
    if evals[K - 1] - evals[K] > 1e-2 * evals[0]:
        expect(relerr(load("fraction.f64"), frac) < 1e-5, "fraction of |d|^2 inside the top-k subspace")
    expect(abs(load("fraction.f64")[1] - 1.0) < 1e-9, "an eigenvector lies wholly inside the top-k subspace")
    # KL's second-order term: KL(eps u) / (eps^2 / 2) -> u^T F u = lambda, independent of F's formula
    eps = 1e-3
    ratio = kl(eps * U[0]) / (0.5 * eps * eps)
    expect(abs(ratio - load("values_exact.f64")[0]) < 1e-2 * evals[0],
           f"KL(eps u_1) / (eps^2/2) = {ratio:.6g} ~ lambda_1 {evals[0]:.6g}")


def tangential_ratio(delta, basis):
    """|tangential gradient| / |gradient|, both projected off span(basis), by finite differences."""
    g = kl_grad(delta)
    for q in basis:
        g = g - (g @ q) * q
    gt = g - (g @ delta) / (delta @ delta) * delta
    return np.linalg.norm(gt) / np.linalg.norm(g)


def random_on_sphere(r, radius, n, basis):
    u = r.standard_normal((n, C))
    for q in basis:
        u = u - np.outer(u @ q, q)
    return unit(u) * radius


def orthonormal(rows):
    return np.linalg.qr(np.asarray(rows).T)[0].T if len(rows) else np.zeros((0, C))


def check_optima(load, radius, small):
    r = np.random.default_rng(99)
    for tag in ("plain", "orth", "centred"):
        delta, value = load(f"opt_{tag}_delta.f64", (STARTS, C)), load(f"opt_{tag}_value.f64")
        status = load(f"opt_{tag}_status.i32")
        expect(np.all((status == 1) | (status == 2)), f"{tag}: every start converged (status {status})")
        expect(np.allclose(np.linalg.norm(delta, axis=1), radius, rtol=1e-6), f"{tag}: |delta| = r")
        expect(relerr(value, np.array([kl(d) for d in delta])) < 1e-6, f"{tag}: objective = numpy KL at the optimum")
        for name in ("delta.f64", "value.f64", "iterations.i32", "status.i32") if tag != "centred" else ():
            same = load(f"opt_{tag}_{name}").tobytes() == load(f"opt_{tag}_resumed_{name}").tobytes()
            expect(same, f"{tag}: resumed through a checkpoint = uninterrupted, bitwise ({name})")
        for j in range(STARTS):
            basis = orthonormal(delta[:j]) if tag == "orth" else np.zeros((0, C))
            if tag == "centred":
                basis = np.ones((1, C)) / np.sqrt(C)
                expect(abs(delta[j].sum()) < 1e-6 * radius, f"centred {j}: the optimum has mean zero")
            ratio = tangential_ratio(delta[j], basis)
            expect(ratio < 20 * TOL, f"{tag} {j}: numpy tangential/full gradient {ratio:.2e} ~ 0")
            f_rand = np.array([kl(u) for u in random_on_sphere(r, radius, 2000 if j < 2 else 300, basis)])
            if small or (tag != "orth" and j == int(np.argmax(value))):
                expect(value[j] >= f_rand.max() * (1 - 1e-6),
                       f"{tag} {j}: f {value[j]:.6g} >= every random direction at r (max {f_rand.max():.6g})")
            near = random_on_sphere(r, 0.02 * radius, 200, np.vstack([basis, unit(delta[j])[None]]))
            f_near = np.array([kl(radius * unit(delta[j] + e)) for e in near])
            expect(value[j] >= f_near.max() - 1e-9 * abs(value[j]), f"{tag} {j}: a local maximum on the sphere")
    orth = unit(load("opt_orth_delta.f64", (STARTS, C)))
    off = np.abs(orth @ orth.T - np.eye(STARTS)).max()
    expect(off < 1e-6, f"orthogonal optima mutually orthogonal (max |cos| {off:.1e})")
    if small:  # the quadratic regime: optima are the eigenvectors of F, in order
        gap = np.abs(np.diff(evals[:STARTS + 1])) > 1e-2 * evals[0]
        n_sep = int(np.argmin(gap)) if not gap.all() else STARTS
        cos = np.abs(np.sum(orth[:n_sep] * evecs[:n_sep], axis=1))
        expect(np.all(cos >= 0.99),
               f"small r: orthogonal optima ~ eigenvectors 1..{n_sep} of F (|cos| {np.round(cos, 4)})")
        plain = unit(load("opt_plain_delta.f64", (STARTS, C)))
        expect(np.all(np.abs(plain @ evecs[0]) >= 0.99), "small r: every plain optimum ~ +-u_1")
    plain = load("opt_plain_delta.f64", (STARTS, C))
    expect(load("opt_plain_distinct.i32")[0] == components(plain, DCOS)[1], "distinct optima = numpy components")


def components(X, thr):
    """Connected components of |cos| >= thr, by repeated relabelling (another algorithm than C's)."""
    U = unit(X)
    adj = np.abs(U @ U.T) >= thr
    label = np.arange(len(X))
    while True:
        new = np.array([label[adj[i]].min() for i in range(len(X))])
        if (new == label).all():
            return label, len(set(label))
        label = new


def check_cluster_alignment(files, load):
    labels, count = load("cluster_label.i32"), load("cluster_count.i32")[0]
    expect(list(labels) == [0, 1, 0, 3, 0, 1, 6] and count == 4, f"hand-made clusters {list(labels)}, {count}")
    dirs, M = files["dirs.f64"], files["M.f32"].astype(np.float64)
    nz = np.linalg.norm(M, axis=1) > 0
    cos = np.abs(unit(dirs) @ np.where(nz[:, None], unit(np.where(nz[:, None], M, 1.0)), 0.0).T)
    best, which = load("maxcos.f64"), load("maxcos_which.i32")
    expect(relerr(best, cos.max(axis=1)) < 1e-12, "max |cos| with the decoder rows")
    ok = all(which[i] == np.flatnonzero(cos[i] >= cos[i].max() - 1e-12)[0] for i in range(len(dirs)))
    expect(ok and which[2] == 2 and abs(best[2] - 1) < 1e-12, f"which row (ties: lowest index) {list(which)}")
    expect(relerr(load("abscos.f64", (len(dirs), 5)), cos[:, :5]) < 1e-12, "|cos| with given directions")
    sw, sv = np.linalg.eigh(files["sigma.f64"])
    pcs, var = load("pcs.f64", (Q, C)), load("pc_var.f64")
    expect(relerr(var, sw[::-1][:Q]) < 1e-10, "principal variances = numpy eigh")
    expect(np.all(np.abs(np.sum(pcs * sv[:, ::-1].T[:Q], axis=1)) > 1 - 1e-9), "principal components = numpy eigh")
    expect(np.all(pcs[np.arange(Q), np.argmax(np.abs(pcs), axis=1)] > 0), "principal components' sign fixed")


def check_errors():
    errors = [line[7:] for line in last_stdout.splitlines() if line.startswith("error: ")]
    want = [f"fisher: k = {C + 1} eigenpairs asked of a metric of dimension {C} (need 1 <= k <= {C})",
            "fisher: Rayleigh quotient of direction 0: its norm is zero",
            f"optimise: {C + 1} mutually orthogonal optima asked in dimension {C}",
            "fisher: the JVP of unit vector e_0 is NaN at component 0",
            "optimise: the objective or its gradient is not finite at start 0, iteration 0"]
    expect(errors == want, f"refused inputs and non-finite values, one line each: {errors}")


def main():
    xn = float(np.linalg.norm(x0d))
    rank = np.sum(evals > 1e-9 * evals[0])
    print(f"toy: C {C} H {H} V {V} P {P}; top eigenvalues {np.round(evals[:K + 1], 6)}; rank {rank}")
    for tag, radius, small in (("small", 0.02 * xn, True), ("large", 0.5 * xn, False)):
        print(f"--- radius {radius:.4g} ({tag})")
        files, load = run(tag, radius)
        if tag == "small":
            check_derivatives(files, load)
            check_fisher(files, load)
            check_cluster_alignment(files, load)
            check_errors()
        check_optima(load, radius, small)
    if failures:
        print(f"{len(failures)} checks failed")
        sys.exit(1)
    print("all checks passed")


main()
