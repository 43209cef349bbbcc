#!/usr/bin/env python3
"""Reference numbers for tests/test_act.c and tests/test_layers_misc.c.

Writes, with PyTorch in float64 (inputs are rounded to float32 first, so the C
code sees exactly the same inputs):
  tests/data/act/act_forward.txt     every activation kind
  tests/data/act/layers_forward.txt  Max/AveragePooling2D with TF 'same'/'valid'
                                     padding, UpSampling2D bilinear

File format: one array per line, `name count v0 v1 ...`; lines starting with
'#' are comments. Layer tensors are stored NHWC (featviz layout), row-major.

Keras semantics reproduced here (independently of the C code):
  ReLU(max_value, negative_slope, threshold), from the Keras docs:
      f(x) = max_value if x >= max_value; x if threshold <= x < max_value;
      negative_slope * (x - threshold) otherwise
  hard_sigmoid Keras 2: clip(0.2x + 0.5, 0, 1); Keras 3: relu6(x + 3) / 6
  pooling 'same': out = ceil(H/s), total pad = max((out-1)*s + k - H, 0),
      top = total // 2, rest at the bottom; max ignores pads, avg divides by
      the number of real pixels
  UpSampling2D bilinear = tf.image.resize half-pixel = torch align_corners=False

Run from the repo root: /usr/bin/python3 tests/tools/make_act_fixtures.py
Deterministic (fixed seeds).
"""
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "act")


def f32(a):
    """Round to float32, return float64 (the values the C test will use)."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def emit(lines, name, arr):
    arr = np.asarray(arr, dtype=np.float64).ravel()
    lines.append(name + " " + str(arr.size) + " " + " ".join("%.17g" % v for v in arr))


# ---------------------------------------------------------------- activations

def keras_relu(x, max_value, slope, thr):
    y = torch.where(x >= thr, x, slope * (x - thr))
    if max_value is not None:
        y = torch.where(x >= max_value, torch.full_like(x, max_value), y)
    return y


# name, function of a float64 tensor. The C test has the matching table.
RELU_CASES = [
    # name, max_value, negative_slope, threshold
    ("relu", None, 0.0, 0.0),
    ("relu6", 6.0, 0.0, 0.0),
    ("leaky_relu", None, 0.2, 0.0),
    ("relu_max4_slope0.1", 4.0, 0.1, 0.0),
    ("relu_max3_thr1", 3.0, 0.0, 1.0),
    ("relu_max5_slope0.3_thr1.5", 5.0, 0.3, 1.5),
    ("relu_slope0.5_thr2", None, 0.5, 2.0),
    ("relu_thr0.5", None, 0.0, 0.5),
]


def act_cases():
    cases = [
        ("linear", lambda x: x),
        ("elu", lambda x: F.elu(x, alpha=1.0)),
        ("elu_alpha0.5", lambda x: F.elu(x, alpha=0.5)),
        ("selu", F.selu),
        ("sigmoid", torch.sigmoid),
        ("hard_sigmoid", lambda x: torch.clamp(0.2 * x + 0.5, 0.0, 1.0)),
        ("hard_sigmoid3", lambda x: F.relu6(x + 3.0) / 6.0),
        ("tanh", torch.tanh),
        # threshold raised: no switch to the identity for large x
        ("softplus", lambda x: F.softplus(x, beta=1, threshold=1000.0)),
        ("softsign", F.softsign),
        ("swish", F.silu),
        ("gelu", lambda x: F.gelu(x, approximate="none")),
        ("gelu_tanh", lambda x: F.gelu(x, approximate="tanh")),
        ("exponential", torch.exp),
    ]
    for name, mv, sl, th in RELU_CASES:
        cases.append((name, (lambda mv, sl, th: lambda x: keras_relu(x, mv, sl, th))(mv, sl, th)))
    return cases


def make_act():
    rng = np.random.default_rng(20240611)
    lines = ["# featviz activation fixtures: x (float32-exact) and y = act(x) in float64"]
    base = np.concatenate([
        rng.uniform(-6.0, 6.0, 96),
        [-30.0, -20.0, -9.5, 9.5, 20.0, 0.0, 1e-3, -1e-3, 0.37, -0.37, 2.9, -2.9, 7.5],
    ])
    x = f32(base)
    emit(lines, "x", x)
    xt = torch.tensor(x, dtype=torch.float64)
    for name, fn in act_cases():
        emit(lines, name + ".y", fn(xt).numpy())
    # softmax over (outer, dim, inner), dim = 1; the big/very negative ranges
    # overflow/underflow expf in float32 unless the max is subtracted first
    for outer, dim, inner, lo, hi in [(3, 5, 4, -3.0, 3.0), (2, 7, 1, -3.0, 3.0),
                                      (1, 6, 3, -120.0, 120.0), (2, 4, 3, -140.0, -120.0),
                                      (4, 1, 2, -3.0, 3.0)]:
        xs = f32(rng.uniform(lo, hi, (outer, dim, inner)))
        tag = "softmax_%dx%dx%d" % (outer, dim, inner)
        emit(lines, tag + ".x", xs)
        emit(lines, tag + ".y", torch.softmax(torch.tensor(xs), dim=1).numpy())
    return lines


# ---------------------------------------------------------------- layers

def tf_pads(size, k, s, same):
    if not same:
        return (size - k) // s + 1, 0, 0
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return out, total // 2, total - total // 2


def pool_ref(x_nhwc, kind, ph, pw, sh, sw, same):
    x = torch.tensor(x_nhwc).permute(0, 3, 1, 2)  # NCHW
    H, W = x.shape[2], x.shape[3]
    _, top, bottom = tf_pads(H, ph, sh, same)
    _, left, right = tf_pads(W, pw, sw, same)
    pad = (left, right, top, bottom)
    if kind == "max":
        xp = F.pad(x, pad, value=-math.inf)
        y = F.max_pool2d(xp, (ph, pw), (sh, sw))
    else:
        # sum of real pixels / number of real pixels
        xp = F.pad(x, pad, value=0.0)
        ones = F.pad(torch.ones_like(x[:, :1]), pad, value=0.0)
        s = F.avg_pool2d(xp, (ph, pw), (sh, sw)) * (ph * pw)
        c = F.avg_pool2d(ones, (ph, pw), (sh, sw)) * (ph * pw)
        y = s / c
    return y.permute(0, 2, 3, 1).numpy()


# kind, n, H, W, C, ph, pw, sh, sw, same. The C test has the matching table.
POOL_CASES = [
    ("max", 2, 7, 5, 3, 2, 2, 2, 2, 0),
    ("max", 2, 7, 5, 3, 3, 3, 2, 2, 1),
    ("max", 1, 7, 5, 2, 2, 2, 2, 2, 1),
    ("max", 1, 6, 6, 2, 3, 3, 1, 1, 1),
    ("max", 2, 5, 8, 2, 2, 3, 1, 2, 0),
    ("avg", 2, 7, 5, 3, 3, 3, 2, 2, 1),
    ("avg", 2, 7, 5, 3, 3, 3, 2, 2, 0),
    ("avg", 1, 5, 6, 2, 2, 2, 1, 1, 1),
    ("avg", 1, 7, 5, 2, 2, 2, 2, 2, 1),
    ("avg", 2, 5, 8, 2, 2, 3, 1, 2, 1),
    ("avg", 1, 9, 4, 1, 1, 1, 2, 2, 1),
]

# n, H, W, C, fh, fw
UP_CASES = [
    (2, 4, 3, 2, 2, 2),
    (1, 3, 5, 2, 3, 2),
    (1, 2, 4, 3, 1, 3),
]


def pool_tag(c):
    return "%spool_n%d_%dx%dx%d_p%dx%d_s%dx%d_%s" % (
        c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], "same" if c[9] else "valid")


def make_layers():
    rng = np.random.default_rng(7)
    lines = ["# featviz layer fixtures (NHWC): pooling with TF padding, bilinear upsampling"]
    for c in POOL_CASES:
        kind, n, H, W, C, ph, pw, sh, sw, same = c
        x = f32(rng.uniform(-2.0, 2.0, (n, H, W, C)))
        tag = pool_tag(c)
        emit(lines, tag + ".x", x)
        emit(lines, tag + ".y", pool_ref(x, kind, ph, pw, sh, sw, same))
    for n, H, W, C, fh, fw in UP_CASES:
        x = f32(rng.uniform(-2.0, 2.0, (n, H, W, C)))
        tag = "bilinear_n%d_%dx%dx%d_f%dx%d" % (n, H, W, C, fh, fw)
        xt = torch.tensor(x).permute(0, 3, 1, 2)
        y = F.interpolate(xt, size=(H * fh, W * fw), mode="bilinear", align_corners=False)
        emit(lines, tag + ".x", x)
        emit(lines, tag + ".y", y.permute(0, 2, 3, 1).numpy())
    return lines


def main():
    os.makedirs(OUT, exist_ok=True)
    for fname, lines in [("act_forward.txt", make_act()), ("layers_forward.txt", make_layers())]:
        with open(os.path.join(OUT, fname), "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
