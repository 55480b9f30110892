/* Placeholder until this subcommand is written. */
#include <stdio.h>
#include "cli.h"
#include "plateau/error.h"
int cmd_tokenize(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "plateau tokenize: not implemented yet\n"); return PL_EXIT_INPUT; }
