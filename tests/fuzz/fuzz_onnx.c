/* fuzz_onnx: any bytes as an ONNX model (protobuf ModelProto), read as
 * featviz reads a file the user names (external data beside it: none),
 * then the whole load and one forward pass on a tiny input. */
#include "fuzz_common.h"

#include "fuzz_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_model_file(data, size, "fuzz.onnx");
}
