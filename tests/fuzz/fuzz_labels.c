/* fuzz_labels: any bytes as a labels file (--labels): one name per line, or a
 * CSV with ClassId,SignName (src/io/labels.c). */
#include "fuzz_common.h"

#include "featviz/labels.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_init_once();
    struct fv_error err = {0};
    struct fv_labels l;
    if (fv_labels_load(fuzz_file(data, size, "labels.csv"), &l, &err) == FV_OK) {
        for (int i = 0; i < l.n; i++) {
            const char *s = fv_labels_get(&l, i);
            if (s && strlen(s) > size) abort(); /* a name comes from the file */
        }
        fv_labels_free(&l);
    } else {
        fuzz_check_error(&err);
    }
    return 0;
}
