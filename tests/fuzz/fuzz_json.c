/* fuzz_json: any bytes as the architecture JSON featviz reads (model.to_json()
 * given with --arch; the same parser reads the model_config attribute of every
 * .h5): the graph is built from it, then the weights of a real small model
 * (tests/data/golden/cl_convnet.h5) are matched to it, and the shapes checked. */
#include "fuzz_common.h"

#include "featviz/formats.h"
#include "featviz/graph.h"

#ifndef FV_FUZZ_MODEL
#error "FV_FUZZ_MODEL: the .h5 whose weights the JSON is matched with"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_init_once();
    struct fv_load_opts o = {.flip_kernels = -1, .max_bytes = (size_t)64 << 20};
    o.arch_json = fuzz_file(data, size, "arch.json");
    struct fv_error err = {0};
    struct fv_model m;
    if (fv_model_load(&m, FV_FUZZ_MODEL, &o, &err) == FV_OK) {
        for (int i = 0; i < m.n_layers; i++) fv_model_find(&m, m.layers[i].name);
        int pre;
        fv_model_logits(&m, &pre);
        fv_model_free(&m);
    } else {
        fuzz_check_error(&err);
    }
    return 0;
}
