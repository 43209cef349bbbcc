/* fuzz_h5: any bytes as a Keras .h5 file, opened in memory (HDF5's core
 * driver with a file image: fv_model_load_image), then the whole load (string
 * attributes, model_config, weights, layouts) and one forward pass on a tiny
 * input when the model takes images of at most 64x64 (or any size). */
#include "fuzz_common.h"

#include "featviz/formats.h"
#include "fuzz_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_init_once();
    struct fv_load_opts o = {.flip_kernels = -1, .max_bytes = (size_t)64 << 20};
    struct fv_error err = {0};
    struct fv_model m;
    if (fv_model_load_image(&m, data, size, "fuzz.h5", &o, &err) == FV_OK) {
        fuzz_forward_once(&m);
        fv_model_free(&m);
    } else {
        fuzz_check_error(&err);
    }
    return 0;
}
