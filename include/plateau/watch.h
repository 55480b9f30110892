/* Watched inputs: the one identity check of every file a run reads (model weights, SAE, direction
 * files, prompts).
 *
 * A file is identified when it is opened (device, inode, size, modification and change time, from
 * stat/fstat) and pl_watch_check compares every watched file with that identity: the sweep checks
 * before and after each batch and before it writes its output, so a file rewritten, replaced or
 * truncated during a run stops it (exit 2, naming the file) instead of mixing two versions of an
 * input into one result. Files mapped with pl_map_file are watched from the map until the unmap;
 * files read whole are watched with pl_watch_file until the process ends.
 *
 * A mapped file truncated while plateau reads it raises SIGBUS on the first page past the new end:
 * pl_watch_sigbus installs a handler that maps the faulting address to the watched file and exits 2
 * with one line naming it (async-signal-safe write), so no run dies of a bare "Bus error".
 */
#ifndef PLATEAU_WATCH_H
#define PLATEAU_WATCH_H

#include <stddef.h>
#include <sys/stat.h>

/* Watch PATH as it is now (call it before reading the file). WHAT names it in messages ("SAE
 * weights", "[data] prompts"). A path watched already keeps its first identity. A path that cannot
 * be stat'ed is not watched (PL_OK): the read that follows reports why. */
int pl_watch_file(const char *path, const char *what);

/* Watch the mapping MAP[0..SIZE) of PATH, whose identity at open is SB (pl_map_file calls this). */
int pl_watch_mapping(const char *path, const char *what, const void *map, size_t size, const struct stat *sb);
/* Stop watching the mapping at MAP (pl_unmap_file calls this). */
void pl_watch_unmap(const void *map);

/* PL_OK when every watched file is still the one identified at open; otherwise an error naming the
 * first that changed, how, and that the run stops. Thread-safe. */
int pl_watch_check(void);

/* Memory BASE[0..SIZE) that is no watched file's but can fault (a shared-memory window whose tmpfs runs
 * out of space): a SIGBUS in it exits 3 with LINE (copied, one line). Until pl_watch_region_end(BASE). */
void pl_watch_region(const void *base, size_t size, const char *line);
void pl_watch_region_end(const void *base);

/* Install the SIGBUS handler (process-wide). PREFIX starts its line after "plateau: " ("rank 3: ",
 * or ""; copied). A SIGBUS outside every watched mapping is not ours: it is re-raised as it was. */
void pl_watch_sigbus(const char *prefix);

#endif
