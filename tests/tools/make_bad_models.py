#!/usr/bin/python3
"""Writes small broken Keras .h5 files for the loader's bad-input tests.

Each file starts from a valid Keras 2.2.4 model (Conv2D 4 -> Flatten -> Dense 3)
and breaks one thing. Regenerate with: /usr/bin/python3 tests/tools/make_bad_models.py
Output: tests/data/bad/*.h5 (small, deterministic).
"""
import copy
import json
import os

import h5py
import numpy as np

OUT = os.path.join(os.path.dirname(__file__), "..", "data", "bad")


def conv(name, filters=4, inbound=None):
    layer = {"class_name": "Conv2D", "config": {
        "name": name, "trainable": True, "filters": filters, "kernel_size": [3, 3],
        "strides": [1, 1], "padding": "valid", "data_format": "channels_last",
        "dilation_rate": [1, 1], "activation": "relu", "use_bias": True}}
    if inbound is not None:
        layer["name"] = name
        layer["inbound_nodes"] = [[[i, 0, 0, {}] for i in inbound]]
    return layer


def sequential(first_extra=None):
    c = conv("conv2d_1")
    c["config"]["batch_input_shape"] = [None, 8, 8, 3]
    if first_extra:
        c["config"].update(first_extra)
    return {"class_name": "Sequential", "config": {"name": "sequential_1", "layers": [
        c,
        {"class_name": "Flatten", "config": {"name": "flatten_1", "trainable": True, "data_format": "channels_last"}},
        {"class_name": "Dense", "config": {"name": "dense_1", "trainable": True, "units": 3,
                                             "activation": "softmax", "use_bias": True}},
    ]}}


def weights(rng):
    return {
        "conv2d_1": [("conv2d_1/kernel:0", rng.standard_normal((3, 3, 3, 4))),
                     ("conv2d_1/bias:0", rng.standard_normal(4))],
        "flatten_1": [],
        "dense_1": [("dense_1/kernel:0", rng.standard_normal((144, 3))),
                    ("dense_1/bias:0", rng.standard_normal(3))],
    }


def fixed(strings):
    n = max(len(s) for s in strings)
    return np.array([s.encode() for s in strings], dtype="S%d" % n)


def write(name, config, w, layer_names=None, root_attrs=True, names_attr=True):
    path = os.path.join(OUT, name)
    with h5py.File(path, "w", libver="earliest") as f:
        if root_attrs:
            f.attrs["keras_version"] = np.bytes_("2.2.4")
            f.attrs["backend"] = np.bytes_("tensorflow")
            if config is not None:
                f.attrs["model_config"] = np.bytes_(config if isinstance(config, str) else json.dumps(config))
        g = f.create_group("model_weights")
        names = layer_names if layer_names is not None else list(w.keys())
        if names_attr:
            g.attrs["layer_names"] = fixed(names)
        for layer, ws in w.items():
            lg = g.create_group(layer)
            if ws:
                lg.attrs["weight_names"] = fixed([n for n, _ in ws])
            else:
                lg.attrs["weight_names"] = np.zeros((0,), dtype="float64")
            for n, v in ws:
                lg.create_dataset(n, data=np.asarray(v, dtype="float32"))


def functional(layers, outputs):
    inp = {"class_name": "InputLayer", "name": "input_1", "inbound_nodes": [],
           "config": {"name": "input_1", "batch_input_shape": [None, 8, 8, 3], "dtype": "float32"}}
    return {"class_name": "Model", "config": {"name": "model_1", "layers": [inp] + layers,
                                              "input_layers": [["input_1", 0, 0]],
                                              "output_layers": [[outputs, 0, 0]]}}


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(7)
    w = weights(rng)
    write("valid.h5", sequential(), w)
    write("no_model_config.h5", None, w)
    write("no_layer_names.h5", sequential(), w, names_attr=False)
    write("bad_json.h5", '{"class_name": "Sequential", "config": [', w)
    bad = copy.deepcopy(w)
    bad["conv2d_1"] = bad["conv2d_1"][:1]
    write("weight_count.h5", sequential(), bad)
    bad = copy.deepcopy(w)
    bad["conv2d_1"][0] = ("conv2d_1/kernel:0", rng.standard_normal((3, 3, 3, 5)))
    write("weight_shape.h5", sequential(), bad)
    bad = copy.deepcopy(w)
    bad["dense_1"][0] = ("dense_1/kernel:0", rng.standard_normal((100, 3)))
    write("dense_mismatch.h5", sequential(), bad)
    write("missing_group.h5", sequential(), w, layer_names=["conv2d_1", "flatten_1"])
    write("huge_input.h5", sequential({"batch_input_shape": [None, 16000000, 16000000, 3]}), w)
    write("huge_kernel.h5", sequential({"kernel_size": [100000, 3]}), w)
    cfg = sequential()
    cfg["config"]["layers"][1] = {"class_name": "LSTM", "config": {"name": "lstm_1", "units": 4}}
    write("unknown_layer.h5", cfg, w)
    fw = {"conv2d_1": w["conv2d_1"], "conv2d_2": [("conv2d_2/kernel:0", rng.standard_normal((3, 3, 4, 4))),
                                                   ("conv2d_2/bias:0", rng.standard_normal(4))]}
    fwi = dict({"input_1": []}, **fw)
    write("missing_ref.h5", functional([conv("conv2d_1", inbound=["input_1"]),
                                       conv("conv2d_2", inbound=["nonexistent_7"])], "conv2d_2"), fwi)
    fw3 = dict(fwi)
    fw3["add_1"] = []
    cyc = functional([conv("conv2d_1", inbound=["input_1"]),
                      {"class_name": "Add", "name": "add_1", "config": {"name": "add_1"},
                       "inbound_nodes": [[["conv2d_1", 0, 0, {}], ["conv2d_2", 0, 0, {}]]]},
                      conv("conv2d_2", inbound=["add_1"])], "conv2d_2")
    write("cycle.h5", cyc, fw3)
    # issue 17: inputs that were misreported, and a dataset that claims 3.6 GB
    bad_inb = functional([conv("conv2d_1", inbound=["input_1"]), conv("conv2d_2", inbound=["conv2d_1"])], "conv2d_2")
    bad_inb["config"]["layers"][2]["inbound_nodes"] = "conv2d_1"
    write("inbound_string.h5", bad_inb, fwi)
    write("duplicate_names.h5", functional([conv("conv2d_1", inbound=["input_1"]),
                                           conv("conv2d_1", inbound=["conv2d_1"])], "conv2d_1"), fwi)
    dup = sequential()
    dup["config"]["layers"][2]["config"]["name"] = "conv2d_1"
    write("duplicate_names_seq.h5", dup, w)
    nan = copy.deepcopy(w)
    k = np.array(nan["conv2d_1"][0][1])
    k[0, 0, 0, 1] = np.nan
    nan["conv2d_1"][0] = ("conv2d_1/kernel:0", k)
    write("nan_weights.h5", sequential(), nan)
    write("declared_huge.h5", sequential(), w)
    with h5py.File(os.path.join(OUT, "declared_huge.h5"), "a") as f:
        del f["model_weights/dense_1/dense_1/kernel:0"]
        f.create_dataset("model_weights/dense_1/dense_1/kernel:0", shape=(30000, 30000), dtype="float32")
    # an architecture JSON (--arch) that names a layer twice
    with open(os.path.join(OUT, "arch_duplicate.json"), "w") as f:
        json.dump(dup, f)


if __name__ == "__main__":
    main()
