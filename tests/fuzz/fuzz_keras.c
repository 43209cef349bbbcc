/* fuzz_keras: any bytes as a Keras 3 .keras archive (zip: metadata.json,
 * config.json, model.weights.h5), read as featviz reads a file the user names,
 * then the whole load and one forward pass on a tiny input. */
#include "fuzz_common.h"

#include "fuzz_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_model_file(data, size, "fuzz.keras");
}
