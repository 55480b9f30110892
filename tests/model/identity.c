/* Test driver: a model's identity. Prints pl_model_sha256, then touches FILE_TO_CHANGE (a new
 * modification time, same bytes) and prints what pl_model_check_unchanged says.
 * usage: identity MODEL FILE_TO_CHANGE */
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <utime.h>

#include "plateau/error.h"
#include "plateau/model.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: identity MODEL FILE_TO_CHANGE\n");
        return 1;
    }
    pl_model *m;
    char sha[65];
    if (pl_model_open(&m, argv[1]) || pl_model_sha256(m, sha)) {
        fprintf(stderr, "identity: %s\n", pl_error());
        return 2;
    }
    printf("sha256 %s\n", sha);
    printf("before %s\n", pl_model_check_unchanged(m) == PL_OK ? "unchanged" : pl_error());
    struct utimbuf t = {.actime = time(NULL) - 1000, .modtime = time(NULL) - 1000};
    if (utime(argv[2], &t) != 0) {
        perror(argv[2]);
        return 2;
    }
    printf("after %s\n", pl_model_check_unchanged(m) == PL_OK ? "unchanged" : pl_error());
    pl_model_close(m);
    return 0;
}
