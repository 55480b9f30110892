/* The SIGBUS path of the watched inputs (plateau/watch.h), which a sweep reaches only when a file is
 * truncated in the middle of a batch: map PATH (through src/util, as every mapped input is), truncate
 * it, then read its last byte. The handler must exit 2 with one line naming PATH; reaching the end of
 * main (exit 0) or dying of the signal is a failure. With "outside" as the second argument the fault
 * is in a mapping plateau does not watch: the signal must then kill the process as usual. With "region"
 * the mapping is a region (pl_watch_region: a shared window's pages, no watched file): exit 3 and the
 * region's line. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "plateau/fileio.h"
#include "plateau/watch.h"

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: watch_probe FILE [outside]\n");
        return 1;
    }
    pl_watch_sigbus("probe: ");
    void *map;
    size_t size;
    volatile const char *p;
    int region = argc > 2 && !strcmp(argv[2], "region");
    if (argc > 2 && (!strcmp(argv[2], "outside") || region)) {
        int fd = open(argv[1], O_RDONLY);
        size = (size_t)lseek(fd, 0, SEEK_END);
        map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        close(fd);
        if (region && map != MAP_FAILED)
            pl_watch_region(map, size, "the probe's region lost its pages");
    } else if (pl_map_file(argv[1], "probe file", &map, &size) != 0) {
        fprintf(stderr, "map failed\n");
        return 1;
    }
    if (map == MAP_FAILED || size < 8192 || truncate(argv[1], 0) != 0) {
        fprintf(stderr, "setup failed\n");
        return 1;
    }
    p = map;
    printf("read %d\n", p[size - 1]);
    return 0;
}
