/* Readout cotangents for the derivatives of plateau/grad.h: the value of a sweep's metric at one row
 * and its gradient with respect to that row's logits (or read residual), the metrics defined exactly
 * as in metrics.c (natural log, KL(clean || perturbed), the same double accumulation), so that
 * pl_patch_vjp of the gradient is the metric's gradient with respect to the perturbed activation.
 * Each G is optional (NULL: the value only). Logits and gradients are float32, values double. */
#ifndef PLATEAU_METRIC_GRAD_H
#define PLATEAU_METRIC_GRAD_H

/* KL(p || q), p = softmax(CLEAN[V]), q = softmax(LOGITS[V]), nats; g[V] = dKL/dlogits = q - p. */
double pl_kl_grad(const float *clean, const float *logits, int V, float *g);

/* JSD(p, q) = (KL(p || m) + KL(q || m)) / 2, m = (p + q) / 2, nats (metric jsd; js_dist =
 * sqrt(jsd / ln 2)); g[V] = dJSD/dlogits = q * (a - sum(q a)), a = log(q / m) / 2. */
double pl_jsd_grad(const float *clean, const float *logits, int V, float *g);

/* Cross-entropy -log q(NEXT) of LOGITS[V] (metric ce_loss); g[V] = q - onehot(NEXT). NEXT outside
 * 0..V-1: NaN and g = 0 (the prompt has no next token). */
double pl_ce_grad(const float *logits, int V, int next, float *g);

/* L2 distance ||READ - CLEAN|| of residuals [C] (metric l2); g[C] = (READ - CLEAN) / ||.||, and 0 at
 * distance 0 (where l2 has no derivative; its subgradients include 0). */
double pl_l2_grad(const float *clean, const float *read, int C, float *g);

/* out[V] = (diag p - p p^T) u, p = softmax(LOGITS[V]): the Hessian of KL(p0 || softmax(z)) in z at
 * z = LOGITS when p0 = p, i.e. the output Fisher metric G of issue 17 (F = J^T G J). In double, out
 * rounded to float. OUT may alias U. */
void pl_softmax_fisher_apply(const float *logits, int V, const float *u, float *out);

#endif
