/* The local geometry at one base as the sweep uses it (issue 17): see base_local.c. */
#ifndef PLATEAU_BASE_LOCAL_H
#define PLATEAU_BASE_LOCAL_H

#include <stdint.h>

#include "experiment.h"
#include "fisher.h"

/* Top-K eigenpairs and trace of F at one base (OP built there) into OUT (freed first), tagged with
 * (P, B). Lanczos (when fisher.c's rule picks it) draws its start block from the stream (SEED, P,
 * PL_RNG_FISHER_LANCZOS, BASE_KIND). */
int pl_base_local_compute(const pl_local_op *op, int k, uint64_t seed, int p, int b, int base_kind,
                          pl_base_local *out);
/* Free and mark empty (p = b = -1). Safe on a zeroed struct. */
void pl_base_local_free(pl_base_local *l);

#endif
