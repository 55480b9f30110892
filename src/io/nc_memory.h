/* The name plateau gives netCDF for files it builds or opens in memory (nc_create_mem, nc_open_mem).
 *
 * netCDF keeps the name of an in-memory file as if it were a path, and its nc_abort() of a file being
 * created removes the file of that name from disk (checked: netCDF 4.9.0 deleted an existing output
 * this way). plateau never calls nc_abort on such files, and names them with a path that cannot exist
 * (a file "inside" /dev/null), so nothing on disk can ever be touched through it. */
#ifndef PLATEAU_NC_MEMORY_H
#define PLATEAU_NC_MEMORY_H

#define PL_NC_MEMORY_NAME "/dev/null/plateau-in-memory.nc"

#endif
