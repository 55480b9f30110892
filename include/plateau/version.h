#ifndef PLATEAU_VERSION_H
#define PLATEAU_VERSION_H
/* plateau's version, recorded in every output file. */
const char *pl_version(void);
#endif
