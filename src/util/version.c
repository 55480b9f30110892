#include "plateau/version.h"

/* The build writes git_commit.h (cmake/git_commit.cmake) and says so; a build outside CMake (the
 * fuzz scripts compile sources by hand) has no commit to tell. */
#ifdef PLATEAU_HAVE_GIT_COMMIT_H
#include "git_commit.h"
#else
#define PLATEAU_GIT_COMMIT "unknown"
#endif

const char *pl_version(void) { return PLATEAU_VERSION; }

const char *pl_git_commit(void) { return PLATEAU_GIT_COMMIT; }
