/* libFuzzer target for the INI config (src/sweep/config.c, libinih underneath): any text is accepted
 * or refused with a message; an accepted config's resolved text parses again to the same text (the
 * resolver is a fixed point, which plateau config, checkpoints and merge rely on). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plateau/error.h"
#include "plateau/sweep.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pl_sweep_config cfg;
    pl_error_clear();
    if (pl_sweep_config_parse(&cfg, "fuzz.ini", (const char *)data, size, NULL, 0, NULL) != PL_OK) {
        if (!pl_error()[0])
            abort();
        return 0;
    }
    char *text = pl_sweep_config_text(&cfg, 0);
    pl_sweep_config_free(&cfg);
    if (!text)
        abort();
    pl_sweep_config again;
    if (pl_sweep_config_parse(&again, "resolved.ini", text, strlen(text), NULL, 0, NULL) != PL_OK) {
        fprintf(stderr, "the resolved text does not parse: %s\n%s", pl_error(), text);
        abort();
    }
    char *text2 = pl_sweep_config_text(&again, 0);
    pl_sweep_config_free(&again);
    if (!text2 || strcmp(text, text2)) {
        fprintf(stderr, "the resolved text is not a fixed point:\n%s---\n%s", text, text2 ? text2 : "(null)");
        abort();
    }
    free(text);
    free(text2);
    return 0;
}
