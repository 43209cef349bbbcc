/* Without libFuzzer: runs every file named on the command line (directories:
 * every file in them) through LLVMFuzzerTestOneInput once, so the committed
 * corpus and every crash reproducer run in the ordinary test suite (and under
 * ASan there). Exit 0 unless a file cannot be read or one input takes more
 * than the 10 s libFuzzer allows it (-timeout=10); a crash is a crash. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define MAX_SECONDS 10.0

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        return 1;
    }
    size_t cap = 1 << 16, n = 0, got;
    unsigned char *buf = malloc(cap);
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            unsigned char *b = realloc(buf, cap *= 2);
            if (!b) free(buf);
            buf = b;
        }
    }
    fclose(f);
    if (!buf) return 1;
    /* an exact-size copy, so ASan sees reads past the input's end */
    unsigned char *exact = malloc(n ? n : 1);
    if (!exact) return 1;
    memcpy(exact, buf, n);
    free(buf);
    printf("replay %s (%zu bytes)\n", path, n);
    fflush(stdout);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    LLVMFuzzerTestOneInput(exact, n);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    free(exact);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    if (s > MAX_SECONDS) {
        fprintf(stderr, "replay: %s took %.1f s (more than %.0f s)\n", path, s, MAX_SECONDS);
        return 1;
    }
    return 0;
}

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int run_path(const char *path, int *files) {
    struct stat st;
    if (stat(path, &st)) return 0; /* an empty regress/<reader>/ may be absent */
    if (!S_ISDIR(st.st_mode)) return ++*files, run_file(path);
    DIR *d = opendir(path);
    if (!d) return 1;
    char **names = NULL;
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue; /* ., .., .gitkeep */
        char **nn = realloc(names, (n + 1) * sizeof *names);
        if (!nn) break;
        names = nn;
        size_t len = strlen(path) + strlen(e->d_name) + 2;
        names[n] = malloc(len);
        snprintf(names[n++], len, "%s/%s", path, e->d_name);
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, cmp);
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        bad |= run_path(names[i], files);
        free(names[i]);
    }
    free(names);
    return bad;
}

int main(int argc, char **argv) {
    int bad = 0, files = 0;
    for (int i = 1; i < argc; i++) bad |= run_path(argv[i], &files);
    printf("replayed %d files\n", files);
    return bad || files == 0;
}
