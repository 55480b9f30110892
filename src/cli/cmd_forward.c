/* Placeholder until this subcommand is written. */
#include <stdio.h>
#include "cli.h"
#include "plateau/error.h"
int cmd_logits(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "plateau logits: not implemented yet\n"); return PL_EXIT_INPUT; }
int cmd_generate(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "plateau generate: not implemented yet\n"); return PL_EXIT_INPUT; }
