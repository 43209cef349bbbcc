/* Every setting featviz knows: one row per key (section, name, type, default,
 * choices, range, help). Command-line options are the same keys: --top 3 is
 * predict.top = 3. The README's option tables are written from this list. */
#include "featviz/settings.h"

#define NORANGE 1, 0
#define ANY_INT 1, 0

const struct fv_key fv_keys[] = {
    /* [model]: what to load and how inputs are prepared */
    {"model", "path", FV_KEY_PATH, NULL, NULL, NORANGE, "the Keras .h5 file (model.save() or save_weights())"},
    {"model", "arch", FV_KEY_PATH, NULL, NULL, NORANGE, "architecture JSON (model.to_json()) for a weights-only .h5"},
    {"model", "labels", FV_KEY_PATH, NULL, NULL, NORANGE, "class names: one per line, or a CSV with ClassId,SignName"},
    {"model", "resize", FV_KEY_CHOICE, "bilinear", "bilinear|nearest|area|bicubic", NORANGE, "how images are resized to the model's input size"},
    {"model", "color", FV_KEY_CHOICE, "rgb", "rgb|bgr|gray", NORANGE, "channel order the model was trained on"},
    {"model", "scale", FV_KEY_FLOAT, "1/255", NULL, NORANGE, "pixel values 0..255 are multiplied by this"},
    {"model", "offset", FV_KEY_FLOAT, "0", NULL, NORANGE, "then this is added"},
    {"model", "mean", FV_KEY_FLOATS, "", NULL, NORANGE, "then this per-channel mean is subtracted (model channel order)"},
    {"model", "std", FV_KEY_FLOATS, "", NULL, NORANGE, "then the result is divided by this per-channel std"},
    {"model", "preprocess", FV_KEY_CHOICE, "none", "none|caffe|tf|torch", NORANGE, "a Keras named mode instead of scale/offset/mean/std: caffe (BGR, minus ImageNet means), tf (x/127.5-1), torch (x/255, ImageNet mean/std)"},
    {"model", "lambda", FV_KEY_STRING, NULL, NULL, NORANGE, "what Lambda layers compute: NAME=identity or NAME=SCALE,OFFSET (x*SCALE+OFFSET); several separated by spaces"},
    {"model", "flip_kernels", FV_KEY_CHOICE, "auto", "auto|yes|no", NORANGE, "rotate convolution kernels by 180 degrees (Theano-trained files); auto decides from the file"},

    /* [output]: where results go */
    {"output", "dir", FV_KEY_PATH, "outputs", NULL, NORANGE, "output directory"},

    /* jobs */
    {"info", "json", FV_KEY_BOOL, "false", NULL, NORANGE, "print JSON instead of a table"},

    {"predict", "inputs", FV_KEY_LIST, NULL, NULL, NORANGE, "images, directories or .npy files (comma-separated in config files)"},
    {"predict", "top", FV_KEY_INT, "5", NULL, 1, 100000, "how many classes to list per input"},
    {"predict", "json", FV_KEY_BOOL, "false", NULL, NORANGE, "print JSON instead of text"},
    {"predict", "batch", FV_KEY_INT, "64", NULL, 1, 65536, "images per forward pass"},

    {"activations", "inputs", FV_KEY_LIST, NULL, NULL, NORANGE, "images, directories or .npy files"},
    {"activations", "layers", FV_KEY_LIST, "all", NULL, NORANGE, "layer names, comma-separated, or all"},
    {"activations", "npy", FV_KEY_BOOL, "false", NULL, NORANGE, "write each layer's raw output as DIR/<input>/<layer>.npy (Keras layout, batch axis first)"},
    {"activations", "pre", FV_KEY_BOOL, "false", NULL, NORANGE, "also write the value before each layer's fused activation as <layer>.pre.npy"},

    {NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
};
