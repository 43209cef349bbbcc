/* Shared by the fuzz targets (tests/fuzz/fuzz_<reader>.c): each defines
 * LLVMFuzzerTestOneInput, which libFuzzer calls (FEATVIZ_FUZZ=ON, clang) and
 * replay_main.c calls on every committed corpus and regress file (ctest). */
#ifndef FEATVIZ_FUZZ_COMMON_H
#define FEATVIZ_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "featviz/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The readers under test open files by path, as featviz does: the input is
 * written to one file per process and target (in /dev/shm when there is one),
 * rewritten for every input. Returns the path. */
static inline const char *fuzz_file(const uint8_t *data, size_t size, const char *name) {
    static char path[512];
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(path, sizeof path, "%s/featviz-fuzz-%ld-%s", dir, (long)getpid(), name);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    if (fclose(f)) abort();
    return path;
}

/* The same bytes as a NUL-terminated string (malloc'd). */
static inline char *fuzz_string(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s) abort();
    memcpy(s, data, size);
    s[size] = 0;
    return s;
}

/* A failure must say why, and never be featviz running out of memory: the
 * runs give every allocation 2 GB at most and make bigger ones fail
 * (ASAN_OPTIONS=allocator_may_return_null=1:max_allocation_size_mb=2048, set
 * by tools/fuzz-ci and the replay tests), so featviz allocating more than that
 * before checking a size ends here. A library that asks for more and handles
 * the failure (libhdf5 on some corrupt metadata) does not. */
static inline void fuzz_check_error(const struct fv_error *err) {
    if (!err->msg[0] || err->code == FV_ERR_NOMEM) abort();
}

/* Thread count 1: libFuzzer's rss and time limits are per process, and a
 * crash then has one stack. Called before featviz's first parallel region. */
static inline void fuzz_init_once(void) {
    static int done;
    if (done) return;
    done = 1;
    setenv("OMP_NUM_THREADS", "1", 1);
}

#endif
