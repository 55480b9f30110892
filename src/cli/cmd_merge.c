/* Placeholder until this subcommand is written. */
#include <stdio.h>
#include "cli.h"
#include "plateau/error.h"
int cmd_merge(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "plateau merge: not implemented yet\n"); return PL_EXIT_INPUT; }
