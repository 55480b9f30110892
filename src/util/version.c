#include "plateau/version.h"
#include "git_commit.h" /* generated at build time (cmake/git_commit.cmake) */

const char *pl_version(void) { return PLATEAU_VERSION; }

const char *pl_git_commit(void) { return PLATEAU_GIT_COMMIT; }
