/* Atomic file writing: every writer goes through "<path>.tmp.XXXXXX" in the
 * same directory (so the final rename cannot cross file systems), and the
 * output appears whole or not at all. */
#include "featviz/tmpfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

int fv_tmpfile_open(struct fv_tmpfile *t, const char *path, struct fv_error *err) {
    memset(t, 0, sizeof *t);
    size_t n = strlen(path);
    if (n == 0) return fv_error_set(err, FV_ERR_USAGE, "empty output file name");
    if (n >= sizeof t->path)
        return fv_error_set(err, FV_ERR_USAGE, "%.64s...: output path too long", path);
    memcpy(t->path, path, n + 1);
    /* rename() would replace a device, a FIFO or a symbolic link (as root,
     * -o /dev/full replaced the device node): only files are replaced */
    struct stat st;
    if (!lstat(path, &st) && !S_ISREG(st.st_mode))
        return fv_error_set(err, FV_ERR_USAGE, "%s: exists and is not a regular file; featviz "
                            "replaces only regular files", path);
    snprintf(t->tmp, sizeof t->tmp, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(t->tmp);
    if (fd < 0) {
        int e = errno;
        t->tmp[0] = 0;
        return fv_error_set(err, FV_ERR_IO, "%s: cannot create a temporary file beside it: %s",
                            path, strerror(e));
    }
    (void)fchmod(fd, 0644); /* mkstemp makes 0600; outputs are ordinary files */
    (void)flock(fd, LOCK_EX); /* held until close: fv_tmpfile_sweep leaves it alone */
    FILE *fp = fdopen(fd, "wb");
    if (!fp) {
        int e = errno;
        close(fd);
        unlink(t->tmp);
        t->tmp[0] = 0;
        return fv_error_set(err, FV_ERR_IO, "%s: cannot open temporary file: %s", path,
                            strerror(e));
    }
    t->fp = fp;
    return FV_OK;
}

int fv_tmpfile_commit(struct fv_tmpfile *t, struct fv_error *err) {
    FILE *fp = t->fp;
    if (!fp || !t->tmp[0])
        return fv_error_set(err, FV_ERR_USAGE, "%s: temporary file is not open", t->path);
    t->fp = NULL;
    int bad = fflush(fp) != 0 || ferror(fp);
    int e = errno;
    if (fclose(fp) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    if (bad) {
        unlink(t->tmp);
        t->tmp[0] = 0;
        return fv_error_set(err, FV_ERR_IO, "%s: write failed: %s", t->path, strerror(e));
    }
    if (rename(t->tmp, t->path) != 0) {
        e = errno;
        unlink(t->tmp);
        t->tmp[0] = 0;
        return fv_error_set(err, FV_ERR_IO, "%s: cannot rename temporary file into place: %s",
                            t->path, strerror(e));
    }
    t->tmp[0] = 0;
    return FV_OK;
}

void fv_tmpfile_abort(struct fv_tmpfile *t) {
    if (t->fp) fclose((FILE *)t->fp);
    t->fp = NULL;
    if (t->tmp[0]) unlink(t->tmp);
    t->tmp[0] = 0;
}

/* "NAME.tmp.XXXXXX" as mkstemp makes it */
static int is_tmp_name(const char *name) {
    size_t n = strlen(name);
    if (n < 12 || memcmp(name + n - 11, ".tmp.", 5)) return 0;
    for (const char *p = name + n - 6; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
            return 0;
    return 1;
}

int fv_tmpfile_sweep(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int removed = 0;
    time_t now = time(NULL);
    for (struct dirent *e; (e = readdir(d));) {
        if (!is_tmp_name(e->d_name)) continue;
        char p[4352];
        if (snprintf(p, sizeof p, "%s/%s", dir, e->d_name) >= (int)sizeof p) continue;
        int fd = open(p, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
        if (fd < 0) continue;
        struct stat st;
        /* a writer holds its lock from mkstemp to rename; the age covers the
         * instant between the two */
        if (!fstat(fd, &st) && S_ISREG(st.st_mode) && now - st.st_mtime >= 2 &&
            !flock(fd, LOCK_EX | LOCK_NB) && !unlink(p))
            removed++;
        close(fd);
    }
    closedir(d);
    return removed;
}
