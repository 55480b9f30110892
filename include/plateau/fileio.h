#ifndef PLATEAU_FILEIO_H
#define PLATEAU_FILEIO_H

#include <stddef.h>

/* Read all of PATH (any file, pipes included) into a malloc'ed buffer *data of *size bytes, plus a
 * terminating NUL. Errors name the file. */
int pl_read_file(const char *path, char **data, size_t *size);

#endif
