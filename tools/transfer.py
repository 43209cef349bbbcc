#!/usr/bin/python3
"""Transfer rate of synthesized class images: the images `featviz classes` makes
for one GTSRB model, classified by the other, independently trained models.

    /usr/bin/python3 tools/transfer.py [--steps 512] [--featviz build/release/featviz]
                                       [--out /tmp/transfer] [-- extra classes options]

Uses the real models of ../shared/keras-real (and models/gtsrb32.h5), each with
the preprocessing its repository documents. One of them was trained with
permuted labels (its README); that mapping is recovered by majority vote of its
predictions on the real GTSRB images of ../shared/gtsrb/train48_x.npy.
Prints, per source model, how many of the 43 images each judge classifies as
their class, and the mean transfer rate. A measurement tool, not a test.

Each source's folder gets transfer.json: per class, which judges recognize its
image ({"judges": [...], "classes": [{"class": i, "transfer_hits": k,
"transfer_judges": n, "recognized_by": [...]}]}); `featviz report` shows these
numbers beside the class images when the file is in a run's classes/ folder.
To judge the class images of a run instead of making new ones:

    /usr/bin/python3 tools/transfer.py --sources demo32 --judge outputs/gtsrb/classes
    build/release/featviz report outputs/gtsrb
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED = os.path.join(ROOT, "..", "shared")
KR = os.path.join(SHARED, "keras-real")

MODELS = {
    "tfkeras2.4": (os.path.join(KR, "gtsrb_seq_tfkeras2.4_bn_30x30.h5"), ["--color", "rgb", "--resize", "bilinear", "--scale", "1"]),
    "keras3.8": (os.path.join(KR, "gtsrb_seq_keras3.8_bn_gap_30x30.h5"), ["--color", "bgr", "--resize", "bicubic", "--scale", "1/255"]),
    "tfkeras2.1.6": (os.path.join(KR, "gtsrb_seq_tfkeras2.1.6tf_avgpool_30x30_permuted_labels.h5"), ["--color", "bgr", "--resize", "bilinear", "--scale", "1"]),
    "demo32": (os.path.join(ROOT, "models", "gtsrb32.h5"), ["--color", "rgb", "--resize", "bilinear", "--scale", "1/255"]),
}


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        sys.exit("failed: %s\n%s" % (" ".join(cmd), r.stderr))
    return r.stdout


def predict(fv, name, npy):
    path, pre = MODELS[name]
    out = json.loads(run([fv, "predict", path, npy, "--top", "1", "--json", "--batch", "256"] + pre))
    return np.array([o["top"][0]["class"] for o in out])


def label_map(fv, name, out):
    """Model output index -> GTSRB ClassId, by majority vote on real images."""
    x = np.load(os.path.join(SHARED, "gtsrb", "train48_x.npy"), mmap_mode="r")
    y = np.load(os.path.join(SHARED, "gtsrb", "train48_y.npy"))
    pick = np.arange(0, len(x), 3)
    npy = os.path.join(out, "real_subset.npy")
    np.save(npy, np.ascontiguousarray(x[pick]))
    p = predict(fv, name, npy)
    mapping = np.arange(43)
    for k in range(43):
        votes = y[pick][p == k]
        if len(votes):
            mapping[k] = np.bincount(votes, minlength=43).argmax()
    acc = (mapping[p] == y[pick]).mean()
    return mapping, acc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--featviz", default=os.path.join(ROOT, "build", "release", "featviz"))
    ap.add_argument("--out", default="/tmp/featviz-transfer")
    ap.add_argument("--steps", default="512")
    ap.add_argument("--sources", default="tfkeras2.4,keras3.8,tfkeras2.1.6,demo32")
    ap.add_argument("--judge", help="judge the class images already in this featviz classes folder "
                    "(made from the one model of --sources) instead of making new ones")
    ap.add_argument("extra", nargs="*", help="more options for featviz classes")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    names = [n for n in MODELS if os.path.exists(MODELS[n][0])]
    maps = {}
    for n in names:
        maps[n], acc = label_map(a.featviz, n, a.out)
        print("%-14s accuracy on real GTSRB images (every 3rd of train48): %.3f" % (n, acc))
    rates = []
    for src in a.sources.split(","):
        if src not in names:
            continue
        path, pre = MODELS[src]
        d = a.judge or os.path.join(a.out, src)
        if not a.judge:
            run([a.featviz, "classes", path, "--steps", a.steps, "-o", d] + pre + a.extra)
        u = np.load(os.path.join(d, "classes.npy"))
        imgs = os.path.join(a.out, src + "_classes_u8.npy")
        np.save(imgs, np.clip(np.rint(u * 255), 0, 255).astype(np.uint8))
        own = np.loadtxt(os.path.join(d, "classes.csv"), delimiter=",", skiprows=1, usecols=(3,))
        line = "%-14s own p>=0.9: %2d/43 |" % (src, int((own >= 0.9).sum()))
        judges = [j for j in names if j != src]
        by = [[] for _ in range(43)]
        for judge in judges:
            got = maps[judge][predict(a.featviz, judge, imgs)]
            want = maps[src][np.arange(43)]  # image i maximized output i of the source
            hit = int((got == want).sum())
            rates.append(hit / 43)
            line += " %s %2d/43" % (judge, hit)
            for i in np.nonzero(got == want)[0]:
                by[i].append(judge)
        print(line)
        with open(os.path.join(d, "transfer.json"), "w") as f:
            json.dump({"judges": judges, "classes": [
                {"class": i, "transfer_hits": len(by[i]), "transfer_judges": len(judges), "recognized_by": by[i]}
                for i in range(43)]}, f, indent=1)
            f.write("\n")
    if rates:
        print("mean transfer rate: %.3f over %d (source, judge) pairs" % (np.mean(rates), len(rates)))


if __name__ == "__main__":
    main()
