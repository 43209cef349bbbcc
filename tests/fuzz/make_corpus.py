#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets, tests/fuzz/corpus/<reader>/:
small real files, written by the real tools (h5py, PIL, NumPy) or copied
from the repository (examples/, configs/, tests/data/). Deterministic.
Regenerate with: /usr/bin/python3 tests/fuzz/make_corpus.py"""
import io
import json
import os
import shutil

import h5py
import numpy as np
from PIL import Image

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "tests", "fuzz", "corpus")


def out(reader, name, data):
    d = os.path.join(OUT, reader)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def copy(reader, path, name=None):
    with open(os.path.join(ROOT, path), "rb") as f:
        out(reader, name or os.path.basename(path), f.read())


def image_bytes(img, fmt, **kw):
    b = io.BytesIO()
    img.save(b, fmt, **kw)
    return b.getvalue()


def images():
    rng = np.random.default_rng(17)
    rgb = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    for p in ("examples/14_stop.png", "examples/17_no-entry.png"):
        copy("png", p)
    out("png", "rgb8.png", image_bytes(rgb, "PNG"))
    out("png", "gray8.png", image_bytes(rgb.convert("L"), "PNG"))
    out("png", "rgba8.png", image_bytes(rgb.convert("RGBA"), "PNG"))
    out("png", "palette.png", image_bytes(rgb.convert("P"), "PNG"))
    out("png", "gray1.png", image_bytes(rgb.convert("1"), "PNG"))
    out("png", "gray16.png", image_bytes(Image.fromarray((rng.integers(0, 65536, (6, 5))).astype(np.uint16)), "PNG"))
    for p in ("tests/data/io/jpeg_gray_q95.jpg", "tests/data/io/jpeg_rgb_prog.jpg", "tests/data/io/jpeg_cmyk.jpg"):
        copy("jpeg", p)
    out("jpeg", "rgb_q50.jpg", image_bytes(rgb, "JPEG", quality=50))
    out("jpeg", "rgb_420.jpg", image_bytes(rgb.resize((16, 16)), "JPEG", quality=75, subsampling=2))


def arrays():
    for name in ("npy_b1", "npy_bigendian", "npy_empty", "npy_f2", "npy_f4", "npy_f8", "npy_fortran",
                 "npy_i1", "npy_i8", "npy_rank0", "npy_rank8"):
        copy("npy", "tests/data/io/%s.npy" % name)
    b = io.BytesIO()
    np.save(b, np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3))
    out("npy", "images_u1.npy", b.getvalue())


def labels():
    for name in ("labels_plain.txt", "labels_quoted.csv", "labels_dup.csv", "labels_half_header.csv",
                 "labels_unterminated.csv", "labels_not_indexed.txt"):
        copy("labels", "tests/data/io/" + name)
    copy("labels", "models/gtsrb-labels.csv")
    out("labels", "teachable.txt", b"0 cardboard\n1 glass\n2 metal\n")


def configs():
    for p in ("configs/fast.ini", "configs/quality.ini", "configs/channels_first.ini"):
        copy("config", p)
    # an INI, a NUL, then --set lines, objectives and lists (see fuzz_config.c)
    out("config", "overrides.ini", b"[model]\nscale = 1/255\nmean = 0.5,0.5,0.5\n[classes]\nsteps = 4\n\0"
        b"model.lambda=lambda_1=identity lambda_2=0.5,-1\nclasses.targets=0,5,14\n"
        b"obj class:3 - 0.5*class:1\nobj filter:conv2d_1:2:pre + dream:conv2d_1\nobj neuron:conv2d_1:0:1:1\n"
        b"list 0, 5,14\nlist all\nmodel.std=1,2,3\npredict.top=3\n")


def model_json():
    for p in ("tests/data/golden/cl_convnet.h5", "tests/data/golden/cl_merge.h5", "tests/data/golden/cf_sep_dw.h5",
              "tests/data/bad/valid.h5", "tests/data/bad/cycle.h5"):
        with h5py.File(os.path.join(ROOT, p), "r") as f:
            cfg = f.attrs["model_config"]
            cfg = cfg.decode() if isinstance(cfg, bytes) else cfg
        name = os.path.basename(p).replace(".h5", ".json")
        out("json", name, json.dumps(json.loads(cfg), separators=(",", ":")).encode())


def tiny_model(path, config, weights):
    """A Keras 2 model file, as small as HDF5 makes it."""
    with h5py.File(path, "w", libver="latest") as f:
        f.attrs["keras_version"] = np.bytes_("2.2.4")
        f.attrs["backend"] = np.bytes_("tensorflow")
        f.attrs["model_config"] = np.bytes_(json.dumps(config, separators=(",", ":")))
        g = f.create_group("model_weights")
        g.attrs["layer_names"] = np.array([k.encode() for k in weights], dtype="S%d" % max(len(k) for k in weights))
        for layer, ws in weights.items():
            lg = g.create_group(layer)
            if ws:
                lg.attrs["weight_names"] = np.array([n.encode() for n, _ in ws], dtype="S%d" % max(len(n) for n, _ in ws))
            else:
                lg.attrs["weight_names"] = np.zeros((0,), dtype="float64")
            for n, v in ws:
                lg.create_dataset(n, data=np.asarray(v, dtype="float32"))


def models():
    rng = np.random.default_rng(3)
    tmp = os.path.join(OUT, "h5")
    os.makedirs(tmp, exist_ok=True)
    seq = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "Conv2D", "config": {"name": "c", "filters": 2, "kernel_size": [3, 3], "strides": [1, 1],
                                            "padding": "same", "activation": "relu", "use_bias": True,
                                            "batch_input_shape": [None, 4, 4, 1]}},
        {"class_name": "MaxPooling2D", "config": {"name": "p", "pool_size": [2, 2], "strides": [2, 2], "padding": "valid"}},
        {"class_name": "Flatten", "config": {"name": "f"}},
        {"class_name": "Dense", "config": {"name": "d", "units": 2, "activation": "softmax", "use_bias": True}}]}}
    tiny_model(os.path.join(tmp, "seq_conv_pool_dense.h5"), seq, {
        "c": [("c/kernel:0", rng.standard_normal((3, 3, 1, 2))), ("c/bias:0", rng.standard_normal(2))],
        "p": [], "f": [],
        "d": [("d/kernel:0", rng.standard_normal((8, 2))), ("d/bias:0", rng.standard_normal(2))]})
    fn = {"class_name": "Model", "config": {"name": "m", "layers": [
        {"class_name": "InputLayer", "name": "i", "inbound_nodes": [], "config": {"name": "i", "batch_input_shape": [None, 3, 3, 2]}},
        {"class_name": "BatchNormalization", "name": "b", "inbound_nodes": [[["i", 0, 0, {}]]], "config": {"name": "b", "axis": -1, "epsilon": 0.001, "center": True, "scale": True}},
        {"class_name": "Add", "name": "a", "inbound_nodes": [[["i", 0, 0, {}], ["b", 0, 0, {}]]], "config": {"name": "a"}},
        {"class_name": "GlobalAveragePooling2D", "name": "g", "inbound_nodes": [[["a", 0, 0, {}]]], "config": {"name": "g"}}],
        "input_layers": [["i", 0, 0]], "output_layers": [["g", 0, 0]]}}
    tiny_model(os.path.join(tmp, "func_bn_add_gap.h5"), fn, {
        "i": [], "b": [("b/gamma:0", [1.0, 2.0]), ("b/beta:0", [0.0, 0.5]), ("b/moving_mean:0", [0.1, 0.2]),
                        ("b/moving_variance:0", [1.0, 0.5])], "a": [], "g": []})
    copy("h5", "tests/data/bad/valid.h5")
    copy("h5", "tests/data/bad/duplicate_names.h5")


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    images()
    arrays()
    labels()
    configs()
    model_json()
    models()


if __name__ == "__main__":
    main()
