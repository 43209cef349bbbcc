#!/usr/bin/env python3
"""Writes the small HDF5 fixtures of tests/test_h5.c into tests/data/h5/.

They cover what the real files in ../shared/keras-real/ do not: chunked
`layer_names0/1` and `weight_names0/1`, SPACEPAD / NULLTERM / full NULLPAD
fixed-length strings, fixed UTF-8, a UTF-8 vlen list, float64 / float16 /
integer datasets, and broken files (a missing dataset, wrong attribute types,
a non-numeric dataset, a rank-9 dataset and a 2^32-element dataset that is
never written, so it costs no space).

All values are literals written here; tests/test_h5.c checks against the same
literals (h5py/NumPy is the independent reference). Deterministic: no random
numbers, no timestamps (track_times=False, libver='earliest').

    python3 tests/tools/make_h5_fixtures.py            # writes the fixtures
    python3 tests/tools/make_h5_fixtures.py --reference  # prints the numbers
        of the real files that tests/test_h5.c hard-codes (shapes, first
        values, float64 sums), as read by h5py
"""
import os
import sys

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "data", "h5")
REAL = os.path.join(HERE, "..", "..", "..", "shared", "keras-real")


def fixed_attr(obj, name, values, size, pad, cset=h5py.h5t.CSET_ASCII, scalar=False):
    """A fixed-length string attribute with an explicit padding type."""
    t = h5py.h5t.C_S1.copy()
    t.set_size(size)
    t.set_strpad(pad)
    t.set_cset(cset)
    raw = [v.encode("utf-8") if isinstance(v, str) else v for v in values]
    for r in raw:
        assert len(r) <= size, r
    if pad == h5py.h5t.STR_SPACEPAD:
        raw = [r.ljust(size, b" ") for r in raw]
    arr = np.array(raw, dtype="S%d" % size)
    space = h5py.h5s.create(h5py.h5s.SCALAR) if scalar else h5py.h5s.create_simple((len(raw),))
    if scalar:
        arr = arr.reshape(())
    if h5py.h5a.exists(obj.id, name.encode()):
        h5py.h5a.delete(obj.id, name.encode())
    a = h5py.h5a.create(obj.id, name.encode(), t, space)
    a.write(arr, mtype=t)


def vlen_attr(obj, name, values, utf8=True, scalar=False):
    dt = h5py.string_dtype("utf-8" if utf8 else "ascii")
    if scalar:
        obj.attrs.create(name, values[0], dtype=dt)
    else:
        obj.attrs.create(name, np.array(values, dtype=object), dtype=dt)


def dataset(g, path, data, dtype=None):
    g.create_dataset(path, data=np.asarray(data, dtype=dtype), track_times=False)


def make_chunked(path):
    """Chunked name lists (Keras >= 2.1.5 for > 64512 bytes) and non-float32 datasets."""
    with h5py.File(path, "w", libver="earliest") as f:
        f.attrs["keras_version"] = np.bytes_(b"2.1.5")
        fixed_attr(f, "layer_names0", ["dense", "ints"], 5, h5py.h5t.STR_NULLPAD)
        fixed_attr(f, "layer_names1", ["empty"], 5, h5py.h5t.STR_NULLPAD)
        # layer_names2 is missing, so the reader stops; layer_names4 must be ignored.
        fixed_attr(f, "layer_names4", ["ignored"], 7, h5py.h5t.STR_NULLPAD)

        g = f.create_group("dense")
        fixed_attr(g, "weight_names0", ["dense/kernel:0"], 14, h5py.h5t.STR_NULLPAD)
        vlen_attr(g, "weight_names1", ["dense/bias:0", "dense/extra:0"], utf8=False)
        dataset(g, "dense/kernel:0", [[1.5, -2.25], [1e-3, 3.0e5], [-0.0, 7.125]], "<f8")
        dataset(g, "dense/bias:0", [0.5, -1.75, 65504.0], "<f2")
        dataset(g, "dense/extra:0", [[[0.1, 0.2], [0.3, 0.4]]], ">f4")  # big-endian

        g = f.create_group("ints")
        vlen_attr(g, "weight_names", ["i8", "u16", "deep/a/b:0", "scalar"])
        dataset(g, "i8", [-128, 0, 127], "i1")
        dataset(g, "u16", [[0, 65535]], "<u2")
        dataset(g, "deep/a/b:0", np.arange(24).reshape(2, 3, 4) - 12, ">i4")
        dataset(g, "scalar", 1234567, "<i8")

        g = f.create_group("empty")
        g.attrs["weight_names"] = []  # h5py: float64[0]


def make_strings(path):
    """One attribute per string storage variant."""
    with h5py.File(path, "w", libver="earliest") as f:
        P = h5py.h5t
        fixed_attr(f, "spacepad", ["abc"], 8, P.STR_SPACEPAD, scalar=True)
        fixed_attr(f, "nullterm", ["hello"], 8, P.STR_NULLTERM, scalar=True)
        fixed_attr(f, "nullpad_full", ["abcde"], 5, P.STR_NULLPAD, scalar=True)
        fixed_attr(f, "fixed_utf8", ["h\u00e9llo"], 6, P.STR_NULLPAD, cset=P.CSET_UTF8,
                   scalar=True)
        fixed_attr(f, "spacepad_list", ["x", "yy  z", "full_fill"], 9, P.STR_SPACEPAD)
        fixed_attr(f, "nullterm_list", ["a", "bcd"], 4, P.STR_NULLTERM)
        vlen_attr(f, "utf8_list", ["conv2d", "\u00df/kernel:0", "\u00dcn\u00efc\u00f6de"])
        vlen_attr(f, "utf8_scalar", ["2.4.0"], scalar=True)
        vlen_attr(f, "ascii_scalar", ["tensorflow"], utf8=False, scalar=True)
        vlen_attr(f, "one_elem", ["only"], utf8=False)
        vlen_attr(f, "two", ["a", "b"])
        f.attrs.create("int_attr", 42, dtype="<i8")
        f.attrs.create("float_list", [1.0, 2.0], dtype="<f4")
        f.attrs["empty"] = []
        g = f.create_group("sub/inner")
        vlen_attr(g, "note", ["deep"])


def make_broken(path):
    """Keras-like groups whose weights cannot be read."""
    with h5py.File(path, "w", libver="earliest") as f:
        vlen_attr(f, "layer_names", ["dense", "badnames", "text", "rank9", "huge"])
        g = f.create_group("dense")
        vlen_attr(g, "weight_names", ["dense/kernel:0", "dense/bias:0"])
        dataset(g, "dense/kernel:0", [[1.0, 2.0]], "<f4")  # dense/bias:0 is missing
        g = f.create_group("badnames")
        g.attrs.create("weight_names", [1, 2], dtype="<i4")  # int where strings belong
        g = f.create_group("text")
        vlen_attr(g, "weight_names", ["t"])
        g.create_dataset("t", data=np.array([b"abc"], dtype="S3"), track_times=False)
        g = f.create_group("rank9")
        vlen_attr(g, "weight_names", ["r"])
        dataset(g, "r", np.zeros((1,) * 9), "<f4")
        g = f.create_group("huge")
        vlen_attr(g, "weight_names", ["h"])
        # 2^32 elements, chunked and never written: a few hundred bytes on disk.
        g.create_dataset("h", shape=(65536, 65536), dtype="<f4", chunks=(1, 1024),
                         track_times=False)
        g = f.create_group("nonames")  # a group without weight_names


def reference():
    """The numbers of the real files that tests/test_h5.c hard-codes."""
    cases = [
        ("gtsrb_seq_keras3.8_bn_gap_30x30.h5", "model_weights/conv2d"),
        ("gtsrb_seq_keras3.8_bn_gap_30x30.h5", "model_weights/batch_normalization_2"),
        ("gtsrb_seq_keras3.8_bn_gap_30x30.h5", "model_weights/dense_1"),
        ("gtsrb_seq_tfkeras2.4_bn_30x30.h5", "model_weights/conv2d"),
        ("gtsrb_seq_tfkeras2.4_bn_30x30.h5", "model_weights/dense"),
        ("gtsrb_seq_tfkeras2.1.6tf_avgpool_30x30_permuted_labels.h5", "model_weights/conv2d_2"),
        ("fer2013_func_keras2.0.5_sepconv_add_64x64x1.h5", "model_weights/conv2d_1"),
        ("fer2013_func_keras2.0.5_sepconv_add_64x64x1.h5", "model_weights/separable_conv2d_1"),
        ("mnist_keras1_theano_th_weights_only.h5", "convolution2d_1"),
        ("mnist_keras1_theano_th_weights_only.h5", "dense_2"),
        ("steering_seq_keras1.2.1_lambda_66x200.h5", "model_weights/dense_1"),
        ("devanagari_seq_keras2.1.5_listcfg_32x32x1.h5", "model_weights/conv2d_2"),
        ("teachable_nested_mobilenetv2_tfkeras2.4_224.h5", "model_weights/sequential_3"),
    ]
    for fn, grp in cases:
        with h5py.File(os.path.join(REAL, fn), "r") as f:
            g = f[grp]
            names = [n.decode() if isinstance(n, bytes) else n for n in g.attrs["weight_names"]]
            print("%s %s" % (fn, grp))
            for n in names:
                d = g[n][()].astype(np.float64)
                flat = d.reshape(-1)
                print("  %-45s %-18s first %s last %.9g sum %.12g abs %.12g" % (
                    n, d.shape, " ".join("%.9g" % v for v in flat[:3]), flat[-1],
                    d.sum(), np.abs(d).sum()))
    with h5py.File(os.path.join(REAL, "teachable_nested_mobilenetv2_tfkeras2.4_224.h5"), "r") as f:
        g = f["model_weights/sequential_1"]
        names = [n.decode() for n in g.attrs["weight_names"]]
        tot = sum(float(np.abs(g[n][()].astype(np.float64)).sum()) for n in names)
        print("teachable sequential_1: %d names, [155] %s [156] %s [259] %s, total abs %.12g" % (
            len(names), names[155], names[156], names[259], tot))
        for i in (0, 156, 259):
            d = g[names[i]][()].astype(np.float64)
            print("  %d %s %s first %s last %.9g sum %.12g abs %.12g" % (
                i, names[i], d.shape, " ".join("%.9g" % v for v in d.reshape(-1)[:3]),
                d.reshape(-1)[-1], d.sum(), np.abs(d).sum()))


def main():
    if "--reference" in sys.argv:
        reference()
        return
    os.makedirs(OUT, exist_ok=True)
    make_chunked(os.path.join(OUT, "chunked.h5"))
    make_strings(os.path.join(OUT, "strings.h5"))
    make_broken(os.path.join(OUT, "broken.h5"))


if __name__ == "__main__":
    main()
