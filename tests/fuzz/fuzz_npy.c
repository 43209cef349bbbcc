/* fuzz_npy: any bytes as a .npy file: the whole load (src/io/npy.c), and the
 * streaming reader featviz stats uses on big arrays (header, then rows). */
#include "fuzz_common.h"

#include "featviz/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_init_once();
    const char *path = fuzz_file(data, size, "in.npy");
    struct fv_error err = {0};
    struct fv_array a;
    if (fv_npy_load(path, &a, &err) == FV_OK) {
        size_t count = 1;
        for (int i = 0; i < a.rank; i++) count *= a.dims[i];
        if (count != a.count) abort();
        fv_array_free(&a);
    } else {
        fuzz_check_error(&err);
    }
    struct fv_npy_reader *r;
    struct fv_array hdr;
    if (fv_npy_open(path, &r, &hdr, &err) == FV_OK) {
        size_t rows = hdr.rank ? hdr.dims[0] : 1, per = rows ? hdr.count / rows : 0;
        float *buf = malloc((per ? per : 1) * sizeof *buf);
        for (size_t i = 0; buf && i < rows && i < 4; i++)
            if (fv_npy_read_rows(r, i, 1, buf, &err)) break;
        free(buf);
        fv_npy_close(r);
    }
    return 0;
}
