#include "plateau/version.h"

const char *pl_version(void) { return PLATEAU_VERSION; }
