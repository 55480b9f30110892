/* pl_curves groups its rows as a sweep's batches do (that decides the bits); this fails to compile
 * when src/api's PL_API_BATCH_ROWS and the sweep's PL_BATCH_ROWS differ. */
#include <stdio.h>

#include "../../src/api/api_internal.h"
#include "../../src/sweep/sweep_internal.h"

_Static_assert(PL_API_BATCH_ROWS == PL_BATCH_ROWS, "src/api/api_internal.h: PL_API_BATCH_ROWS must equal PL_BATCH_ROWS");

int main(void)
{
    printf("ok: pl_curves and the sweep both evaluate %d rows per fast-path call\n", PL_BATCH_ROWS);
    return 0;
}
