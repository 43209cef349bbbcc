#!/usr/bin/python3
"""The class map of a judge trained with permuted labels: output index ->
GTSRB ClassId, by majority vote of its predictions on every 3rd real image of
../shared/gtsrb/train48_x.npy (the method of tools/transfer.py).

    /usr/bin/python3 bench/judges/class_map.py JUDGE.ini OUT.txt [--featviz build/release/featviz]
"""
import argparse
import json
import os
import subprocess
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
G = os.path.join(ROOT, "..", "shared", "gtsrb")

ap = argparse.ArgumentParser()
ap.add_argument("judge")
ap.add_argument("out")
ap.add_argument("--featviz", default=os.path.join(ROOT, "build", "release", "featviz"))
a = ap.parse_args()
x = np.load(os.path.join(G, "train48_x.npy"), mmap_mode="r")
y = np.load(os.path.join(G, "train48_y.npy"))
pick = np.arange(0, len(x), 3)
with tempfile.TemporaryDirectory() as d:
    npy = os.path.join(d, "real.npy")
    np.save(npy, np.ascontiguousarray(x[pick]))
    r = subprocess.run([a.featviz, "predict", "--config", a.judge, npy, "--top", "1", "--json", "--batch", "256"],
                       capture_output=True, text=True, check=True)
p = np.array([o["top"][0]["class"] for o in json.loads(r.stdout)])
mapping = np.arange(43)
for k in range(43):
    votes = y[pick][p == k]
    if len(votes):
        mapping[k] = np.bincount(votes, minlength=43).argmax()
print("accuracy with the map: %.3f" % (mapping[p] == y[pick]).mean())
with open(a.out, "w") as f:
    f.write("# output index -> GTSRB ClassId, made by bench/judges/class_map.py (majority vote on real images)\n")
    f.write("\n".join(str(int(v)) for v in mapping) + "\n")
