#ifndef PLATEAU_VERSION_H
#define PLATEAU_VERSION_H
/* plateau's version, recorded in every output file. */
const char *pl_version(void);
/* `git describe --always --dirty` of the source tree at build time, or "unknown" (not a git checkout). */
const char *pl_git_commit(void);
#endif
