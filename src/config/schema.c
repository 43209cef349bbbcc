/* Every setting featviz knows: one row per key (section, name, type, default,
 * choices, range, help). Command-line options are the same keys: --top 3 is
 * predict.top = 3. The README's option tables are written from this list. */
#include "featviz/settings.h"

#define NORANGE 1, 0
#define ANY_INT 1, 0

/* The gradient-ascent settings shared by [classes] and [filters]: each job
 * has its own copy, with defaults that suit it. Sizes (pad, jitter) below 1
 * are fractions of the input size, so one setting fits 30 px signs and
 * 224 px photos alike. */
#define SYNTH_KEYS(sec, steps, lr, jitter, tv, escape)                                                          \
    {sec, "steps", FV_KEY_INT, steps, NULL, 1, 1000000, "optimization steps"},                                 \
    {sec, "seed", FV_KEY_INT, "0", NULL, 0, 2000000000, "random seed (each image draws from its own stream, keyed by its class or filter)"},                \
    {sec, "optimizer", FV_KEY_CHOICE, "adam", "adam|normalized", NORANGE, "adam, or normalized gradient ascent (step lr * g / mean|g|)"}, \
    {sec, "lr", FV_KEY_FLOAT, lr, NULL, 0, 1e6, "learning rate"},                                            \
    {sec, "param", FV_KEY_CHOICE, "fourier", "fourier|pixel", NORANGE, "fourier: Lucid's decorrelated Fourier space with a sigmoid; pixel: raw pixels kept in the valid range"}, \
    {sec, "decay", FV_KEY_FLOAT, "1", NULL, 0, 4, "fourier: spectrum decay power (1/f^decay)"},              \
    {sec, "decorrelate", FV_KEY_BOOL, "true", NULL, NORANGE, "fourier: ImageNet colour decorrelation"},      \
    {sec, "init_sd", FV_KEY_FLOAT, "0.01", NULL, 0, 10, "standard deviation of the random start"},           \
    {sec, "init_mean", FV_KEY_FLOAT, "0.5", NULL, -10, 10, "pixel: mean of the random start (0..1 display units)"}, \
    {sec, "clip", FV_KEY_BOOL, "true", NULL, NORANGE, "pixel: keep pixels in the valid range after each step"}, \
    {sec, "pad", FV_KEY_FLOAT, "0.0625", NULL, 0, 4096, "padding before the transforms (px, or fraction of the size if < 1)"}, \
    {sec, "pad_mode", FV_KEY_CHOICE, "constant", "constant|reflect|edge|wrap", NORANGE, "what the transforms see outside the image: gray, mirror, edge pixels, or the image repeated (wrap + integer jitter = np.roll)"}, \
    {sec, "jitter_integer", FV_KEY_BOOL, "false", NULL, NORANGE, "jitter by whole pixels"}, \
    {sec, "jitter", FV_KEY_FLOAT, jitter, NULL, 0, 4096, "random shift each step (px, or fraction if < 1)"}, \
    {sec, "scale_min", FV_KEY_FLOAT, "0.9", NULL, 0.1, 10, "random scale each step: lower bound"},            \
    {sec, "scale_max", FV_KEY_FLOAT, "1.1", NULL, 0.1, 10, "random scale each step: upper bound"},            \
    {sec, "rotate", FV_KEY_FLOAT, "10", NULL, 0, 180, "random rotation each step, degrees (+-)"},             \
    {sec, "jitter2", FV_KEY_FLOAT, "0.03", NULL, 0, 4096, "second random shift after scale and rotation"},   \
    {sec, "l2", FV_KEY_FLOAT, "0", NULL, 0, 1e9, "weight of the Lp pixel penalty (distance from gray)"},    \
    {sec, "p", FV_KEY_FLOAT, "2", NULL, 1, 16, "exponent of that penalty"},                                   \
    {sec, "l2_center", FV_KEY_FLOAT, "0.5", NULL, -10, 10, "the pixel value that penalty pulls towards"},      \
    {sec, "tv", FV_KEY_FLOAT, tv, NULL, 0, 1e9, "weight of the total variation (sum over the image of absolute differences of neighbouring pixels, 0..1 units)"},                     \
    {sec, "blur_every", FV_KEY_INT, "0", NULL, 0, 1000000, "blur the image every N steps (pixel param; 0: never)"}, \
    {sec, "blur_sigma", FV_KEY_FLOAT, "0.5", NULL, 0, 100, "Gaussian blur sigma, px"},                        \
    {sec, "coarse", FV_KEY_FLOAT, "0", NULL, 0, 1, "pixel param: fraction of the steps spent at lower resolution first"}, \
    {sec, "coarse_factor", FV_KEY_INT, "2", NULL, 1, 16, "how much lower that resolution is"},             \
    {sec, "escape_steps", FV_KEY_INT, escape, NULL, 0, 1000000, "dead-ReLU escape: let gradients through switched-off ReLUs for this many steps"}, \
    {sec, "keep_best", FV_KEY_BOOL, "true", NULL, NORANGE, "keep the image with the best objective (judged without transforms)"}, \
    {sec, "batch", FV_KEY_INT, "64", NULL, 1, 4096, "images optimized together"},                            \
    {sec, "size", FV_KEY_STRING, "auto", NULL, NORANGE, "size of the images made and written: pixels of the longer side (128), a multiple of the model input (4x), or auto (4x, at least 128 px); each step the model sees an anti-aliased downsample"}, \
    {sec, "spectrum_from", FV_KEY_PATH, "", NULL, NORANGE, "fourier: fix the magnitude spectrum to that of these images and optimize the phase only (MACO): a directory or .npy of 8-bit images, or a spectrum.npy that an earlier run wrote"}, \
    {sec, "relative", FV_KEY_BOOL, "true", NULL, NORANGE, "penalty weights (l2, tv, diversity) are relative to the objective: its gradient is scaled to mean |g| = 1 per display value first"}, \
    {sec, "min_size", FV_KEY_INT, "128", NULL, 1, 4096, "images are upscaled (nearest) to at least this many pixels"}

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
    {"model", "class_map", FV_KEY_PATH, NULL, NULL, NORANGE, "what each output means when the labels were permuted in training: one class index per line, output 0 first (used when the model is a transfer judge)"},
    {"model", "flip_kernels", FV_KEY_CHOICE, "auto", "auto|yes|no", NORANGE, "rotate convolution kernels by 180 degrees (Theano-trained files); auto decides from the file"},
    {"model", "max_model_mb", FV_KEY_INT, "2048", NULL, 1, 1048576, "refuse model files whose weights and attributes would need more memory than this (MB), before reading them"},
    {"model", "max_image_pixels", FV_KEY_INT, "50000000", NULL, 1, 2000000000, "refuse images larger than this (width x height), before decoding them"},

    /* [output]: where results go */
    {"output", "dir", FV_KEY_PATH, "outputs", NULL, NORANGE, "output directory"},
    {"output", "report", FV_KEY_BOOL, "true", NULL, NORANGE, "featviz run: end by writing the report, <dir>/index.html and report.json (featviz report DIR writes it for an existing folder)"},

    /* jobs */
    {"info", "json", FV_KEY_BOOL, "false", NULL, NORANGE, "print JSON instead of a table"},

    {"predict", "inputs", FV_KEY_LIST, NULL, NULL, NORANGE, "images, directories or .npy files (comma-separated in config files)"},
    {"predict", "top", FV_KEY_INT, "5", NULL, 1, 100000, "how many classes to list per input"},
    {"predict", "json", FV_KEY_BOOL, "false", NULL, NORANGE, "print JSON instead of text"},
    {"predict", "batch", FV_KEY_INT, "64", NULL, 1, 65536, "images per forward pass"},

    {"activations", "inputs", FV_KEY_LIST, NULL, NULL, NORANGE, "images, directories or .npy files"},
    {"activations", "layers", FV_KEY_LIST, "all", NULL, NORANGE, "layer names, comma-separated, or all"},
    {"activations", "npy", FV_KEY_BOOL, "false", NULL, NORANGE, "also write each layer's raw output as DIR/<input>/<layer>.npy (Keras layout, batch axis first)"},
    {"activations", "pre", FV_KEY_BOOL, "false", NULL, NORANGE, "with npy: also write the value before each layer's fused activation as <layer>.pre.npy"},
    {"activations", "png", FV_KEY_BOOL, "true", NULL, NORANGE, "write activation maps as pictures"},
    {"activations", "format", FV_KEY_CHOICE, "color", "color|png8", NORANGE, "what png writes: color: a coloured PNG per map (upscaled, cmap, overlay), a numbered grid per layer, Dense layers as bars; png8: only the maps, fast: one 8-bit gray PNG per layer, DIR/<input>/<layer>.png, maps at their own size tiled in ceil(sqrt(C)) columns, pixel round(255 t) with t as for norm, lo and hi in its text chunks"},
    {"activations", "norm", FV_KEY_CHOICE, "layer", "map|layer|fixed", NORANGE, "map: each map stretched on its own (Quiver); layer: one scale per layer, so a dark map is really weak; fixed: the range lo..hi"},
    {"activations", "lo", FV_KEY_FLOAT, "0", NULL, NORANGE, "norm = fixed: value drawn darkest"},
    {"activations", "hi", FV_KEY_FLOAT, "1", NULL, NORANGE, "norm = fixed: value drawn brightest"},
    {"activations", "cmap", FV_KEY_CHOICE, "viridis", "gray|viridis", NORANGE, "colour map"},
    {"activations", "overlay", FV_KEY_FLOAT, "0", NULL, 0, 1, "blend each map over the input image with this opacity (0: off)"},
    {"activations", "min_size", FV_KEY_INT, "96", NULL, 1, 4096, "maps are upscaled (nearest) to at least this many pixels"},
    {"activations", "top", FV_KEY_INT, "5", NULL, 1, 100000, "top-N predictions written beside the maps"},
    {"activations", "batch", FV_KEY_INT, "16", NULL, 1, 65536, "images per forward pass; each thread runs its own passes over an array of several batches, so memory holds one batch per thread"},

    {"stats", "inputs", FV_KEY_LIST, NULL, NULL, NORANGE, "a folder of images or an .npy array of N images"},
    {"stats", "layers", FV_KEY_LIST, "all", NULL, NORANGE, "conv and Dense layers to measure, or all"},
    {"stats", "topk", FV_KEY_INT, "9", NULL, 1, 1000, "images that excite each channel most, kept per channel"},
    {"stats", "batch", FV_KEY_INT, "64", NULL, 1, 65536, "images per forward pass (memory stays bounded by it)"},
    {"stats", "montage", FV_KEY_BOOL, "true", NULL, NORANGE, "write a montage of each channel's top-k images"},
    {"stats", "examples", FV_KEY_BOOL, "true", NULL, NORANGE, "write each top-k image as examples/<image>.png, with where each channel peaks on it and the receptive field there in stats.json (the report's dataset examples)"},
    {"stats", "limit", FV_KEY_INT, "0", NULL, 0, 2000000000, "use only the first N images (0: all)"},
    {"stats", "shard", FV_KEY_INT, "1024", NULL, 1, 2000000000, "images per work item: measured apart (by any MPI rank) and summed in shard order"},

    SYNTH_KEYS("classes", "512", "0.05", "0.0625", "0.1", "0"),
    {"classes", "targets", FV_KEY_LIST, "all", NULL, NORANGE, "classes to draw: all, or a list such as 0,5,14"},
    {"classes", "objective", FV_KEY_STRING, "class:{c}", NULL, NORANGE, "objective per class; {c} is the class index (e.g. class:{c} - 0.2*class:13)"},
    {"classes", "cols", FV_KEY_INT, "7", NULL, 1, 1000, "montage columns (with per_class > 1: a multiple of per_class, the images of a class side by side)"},
    {"classes", "per_class", FV_KEY_INT, "1", NULL, 1, 64, "distinct images per class (files class_NN_label_K.png; a diversity penalty keeps them apart)"},
    {"classes", "diversity", FV_KEY_FLOAT, "0.5", NULL, 0, 1e6, "with per_class > 1: weight of Lucid's diversity penalty (cosine similarity of the Gram matrices of diversity_layer between the images of a class), times |objective|"},
    {"classes", "diversity_layer", FV_KEY_STRING, "", NULL, NORANGE, "layer whose Gram matrices the diversity penalty compares; empty: the deepest layer with an image output"},
    {"classes", "drop", FV_KEY_FLOAT, "0", NULL, 0, 0.9, "each step, drop this fraction of the outputs of every conv and Dense layer with a ReLU at random (a slightly different model each step: Ghost networks)"},
    {"classes", "copies", FV_KEY_INT, "1", NULL, 1, 64, "random transforms per step whose gradients are summed (each costs a pass through the model)"},
    {"classes", "contrast", FV_KEY_FLOAT, "0", NULL, 0, 0.9, "each step, scale what the model sees about mid-gray by a random factor in 1 +- this, and shift each channel by up to +- half of it (the lighting real photos vary in)"},
    {"classes", "noise", FV_KEY_FLOAT, "0", NULL, 0, 10, "standard deviation of Gaussian noise added to what the model sees each step (0..1 display units)"},
    {"classes", "features_from", FV_KEY_PATH, "", NULL, NORANGE, "DeepInversion's prior: pull each image's per-channel mean and variance of features_layers towards those of these real images (a directory or .npy of 8-bit images, through the model), or a features.npy that an earlier run wrote"},
    {"classes", "features_weight", FV_KEY_FLOAT, "0.01", NULL, 0, 1e6, "with features_from: weight of that prior (the relative distance of means plus that of variances, summed over the layers), times |objective|"},
    {"classes", "features_layers", FV_KEY_STRING, "all", NULL, NORANGE, "with features_from: the layers whose statistics are matched: all (every conv layer) or names, comma-separated"},

    SYNTH_KEYS("filters", "256", "0.05", "0.0625", "0", "128"),
    {"filters", "layer", FV_KEY_LIST, "all", NULL, NORANGE, "conv layers: one, several (comma-separated) or all"},
    {"filters", "filters", FV_KEY_LIST, "all", NULL, NORANGE, "filters to draw: all, or a list such as 0,3,7"},
    {"filters", "pre", FV_KEY_BOOL, "false", NULL, NORANGE, "maximize the value before the layer's activation"},
    {"filters", "cols", FV_KEY_INT, "8", NULL, 1, 1000, "montage columns"},

    {"dream", "input", FV_KEY_PATH, NULL, NULL, NORANGE, "the photo to dream on"},
    {"dream", "layer", FV_KEY_STRING, NULL, NULL, NORANGE, "layer whose activations are amplified (default: the model's last convolution)"},
    {"dream", "objective", FV_KEY_STRING, NULL, NULL, NORANGE, "objective instead of dream:LAYER (e.g. filter:conv2d_3:5)"},
    {"dream", "size", FV_KEY_INT, "0", NULL, 0, 8192, "resize the photo so its longer side has this many pixels (0: its own size)"},
    {"dream", "octaves", FV_KEY_INT, "4", NULL, 1, 20, "number of scales"},
    {"dream", "octave_scale", FV_KEY_FLOAT, "1.4", NULL, 1.01, 4, "size ratio between octaves"},
    {"dream", "steps", FV_KEY_INT, "10", NULL, 1, 100000, "steps per octave"},
    {"dream", "lr", FV_KEY_FLOAT, "0.01", NULL, 0, 100, "step size (normalized gradient, in 0..1 pixel units)"},
    {"dream", "jitter", FV_KEY_FLOAT, "0.125", NULL, 0, 4096, "random roll each step (px, or fraction of the size if < 1)"},
    {"dream", "seed", FV_KEY_INT, "0", NULL, 0, 2000000000, "random seed"},
    {"dream", "max_mb", FV_KEY_INT, "64", NULL, 0, 1048576, "memory for one pass through the network: a bigger image runs in bands of rows with the same gradient, tall enough that their overlap at most doubles the work (0: whole images)"},
    {"dream", "frames", FV_KEY_INT, "0", NULL, 0, 10000, "also write this many zoomed frames (dream, zoom, dream again)"},
    {"dream", "zoom", FV_KEY_FLOAT, "1.05", NULL, 1, 4, "zoom between frames"},
    {"dream", "out", FV_KEY_PATH, NULL, NULL, NORANGE, "output PNG (default: <output.dir>/dream.png)"},

    {"saliency", "inputs", FV_KEY_LIST, NULL, NULL, NORANGE, "images or .npy files"},
    {"saliency", "objective", FV_KEY_STRING, "class:top", NULL, NORANGE, "objective to explain; class:top is each input's top-1 class"},
    {"saliency", "npy", FV_KEY_PATH, NULL, NULL, NORANGE, "write the raw input gradient here (input layout and shape); suffixed with the input name when there are several"},
    {"saliency", "out", FV_KEY_PATH, NULL, NULL, NORANGE, "heat map PNG (default: <output.dir>/<input>.saliency.png); suffixed like npy"},
    {"saliency", "smoothgrad", FV_KEY_INT, "0", NULL, 0, 10000, "SmoothGrad: average the gradient over this many noisy copies (0: off)"},
    {"saliency", "noise", FV_KEY_FLOAT, "0.15", NULL, 0, 10, "SmoothGrad noise sd as a fraction of the input's value range"},
    {"saliency", "gradcam", FV_KEY_STRING, NULL, NULL, NORANGE, "draw Grad-CAM of this conv layer instead of the gradient magnitude"},
    {"saliency", "seed", FV_KEY_INT, "0", NULL, 0, 2000000000, "seed of the SmoothGrad noise"},

    {"transfer", "judges", FV_KEY_LIST, NULL, NULL, NORANGE, "the judge models: INI files with a [model] section (path, preprocessing, class_map), or .h5 files with the default preprocessing"},
    {"transfer", "input", FV_KEY_PATH, NULL, NULL, NORANGE, "a featviz classes output directory (classes.npy, classes.csv); empty: make the class images first with [classes] into output.dir"},

    {NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
};
