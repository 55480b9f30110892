/* libFuzzer target for plateau verify's manifest parser (src/model/verify.c): any byte string is
 * accepted or refused with a message, never read outside, and the parse of a manifest of many lines
 * stays linear-logarithmic (a duplicate is found by sorting, not by comparing every pair). */
#include <stdint.h>
#include <stdlib.h>

#include "plateau/error.h"
#include "plateau/verify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (pl_verify_check_manifest((const char *)data, size) != PL_OK && !pl_error()[0])
        abort(); /* a refusal always says why */
    return 0;
}
