/* fuzz_jpeg: any bytes as a JPEG file, through featviz's decoder (src/io/jpeg.c,
 * the only user of libjpeg); then, as featviz does with every input
 * image, resized to a model's 32x32. */
#include "fuzz_common.h"

#include "featviz/image.h"
#include "featviz/preprocess.h"
#include "io/decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_init_once();
    struct fv_error err = {0};
    struct fv_image img, small;
    if (fv_jpeg_read(fuzz_file(data, size, "in.jpeg"), &img, &err) == FV_OK) {
        if (img.h < 1 || img.w < 1 || (img.c != 1 && img.c != 3)) abort();
        if (fv_image_resize(&img, 32, 32, FV_RESIZE_BILINEAR, &small, &err) == FV_OK) fv_image_free(&small);
        fv_image_free(&img);
    } else {
        fuzz_check_error(&err);
    }
    return 0;
}
