/* Placeholder until this subcommand is written. */
#include <stdio.h>
#include "cli.h"
#include "plateau/error.h"
int cmd_info(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "plateau info: not implemented yet\n"); return PL_EXIT_INPUT; }
int cmd_verify(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "plateau verify: not implemented yet\n"); return PL_EXIT_INPUT; }
int cmd_synth(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "plateau synth: not implemented yet\n"); return PL_EXIT_INPUT; }
