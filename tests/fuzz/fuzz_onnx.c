/* fuzz_onnx: any bytes as an ONNX model (protobuf ModelProto), read as
 * featviz reads a file the user names (external data beside it: none),
 * then the whole load and one forward pass on a tiny input. */
#include "fuzz_common.h"

#include "featviz/formats.h"
#include "fuzz_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_init_once();
    const char *path = fuzz_file(data, size, "fuzz.onnx");
    struct fv_load_opts o = {.flip_kernels = -1, .max_bytes = (size_t)64 << 20};
    struct fv_error err = {0};
    struct fv_model m;
    if (fv_model_load(&m, path, &o, &err) == FV_OK) {
        fuzz_forward_once(&m);
        fv_model_free(&m);
    } else {
        fuzz_check_error(&err);
    }
    return 0;
}
