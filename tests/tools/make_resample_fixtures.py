#!/usr/bin/env python3
"""Reference numbers for tests/test_resample.c (src/kernels/resample.c), from
PyTorch in float64, independent of the C code:

  aa_HxW_OHxOW_in/_out    torch interpolate(bilinear, antialias=True,
                          align_corners=False) = PIL Image.resize(BILINEAR)
  cubic_HxW_OHxOW_in/_out torch interpolate(bicubic, antialias=True) = PIL BICUBIC
                          (PIL's a = -0.5)

Writes tests/data/resample/resample.txt, one array per line: `name count v...`.
Inputs are rounded to float32 first. Images NHWC (featviz layout), 2 images,
3 channels. Run: /usr/bin/python3 tests/tools/make_resample_fixtures.py
"""
import os

import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "resample")
CASES = [((16, 16), (4, 4)), ((13, 10), (4, 7)), ((32, 32), (30, 30)), ((5, 6), (11, 9)), ((40, 36), (10, 9))]


def emit(lines, name, a):
    a = np.asarray(a, dtype=np.float64).ravel()
    lines.append("%s %d %s" % (name, a.size, " ".join(repr(float(v)) for v in a)))


def main():
    rng = np.random.default_rng(20261204)
    lines = ["# made by tests/tools/make_resample_fixtures.py; see its docstring"]
    for mode, tag in (("bilinear", "aa"), ("bicubic", "cubic")):
        for (h, w), (oh, ow) in CASES:
            x = rng.uniform(size=(2, h, w, 3)).astype(np.float32).astype(np.float64)
            t = torch.from_numpy(x).permute(0, 3, 1, 2)
            y = F.interpolate(t, size=(oh, ow), mode=mode, antialias=True, align_corners=False)
            name = "%s_%dx%d_%dx%d" % (tag, h, w, oh, ow)
            emit(lines, name + "_in", x)
            emit(lines, name + "_out", y.permute(0, 2, 3, 1).numpy())
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "resample.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
