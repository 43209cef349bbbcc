#!/usr/bin/env python3
"""Fixtures for tests/test_stats.c (`featviz stats`): a small conv net with two
planted dead filters, 24 images, and per-channel statistics computed here by an
independent NumPy float64 forward pass.

    /usr/bin/python3 tests/tools/make_stats_fixtures.py   # rewrites tests/data/stats/

Deterministic (seeded). Keras is not needed: keras_h5.py writes the .h5 in the
Keras 2.2.4 layout.

Model (Sequential, input 16x16x3, channels_last):
  conv2d_1  Conv2D 6 3x3 relu          -> 14x14x6
  max_pooling2d_1 2x2                  -> 7x7x6
  conv2d_2  Conv2D 8 3x3 relu          -> 5x5x8   filter 3 PLANTED DEAD: zero kernel, bias -0.5
  conv2d_3  Conv2D 8 2x2 linear        -> 4x4x8   filter 5 PLANTED DEAD: zero kernel, bias -0.5
  batch_normalization_1 (channel 5: gamma 1, beta 0, mean 0, var 1: stays negative)
  activation_1 Activation relu         -> 4x4x8   so channel 5 is zero on every image
  flatten_1                            -> 128
  dense_1   Dense 12 relu
  dense_2   Dense 4 softmax
(conv2d_2 is the Keras-2 style, ReLU fused into the conv; conv2d_3 ->
BatchNormalization -> Activation is the Keras-3 style.)

Files:
  stats_net.h5      the model
  images.npy        uint8 (24, 16, 16, 3): 16 random images, 8 structured ones
  pngs/img_K_NN.png images 0, 16, 17, 19, 23 as PNG files (a folder input; K = order)
  ref.json          {"npy": S, "folder": S}, S = {"images": n, "topk": 5,
                    "layers": {name: {"channels", "mean", "max", "zero_fraction",
                    "dead", "top", "top_checkable", "where", "where_checkable",
                    "hist", "hist_checkable"}}}
Statistics, with x = image * (1/255) (featviz's default preprocessing) and
imax[i, c] = max over positions of channel c on image i:
  mean = mean over images and positions, max = max, zero_fraction = mean(imax <= 0),
  dead = all(imax <= 0), top = the 5 images with the largest imax, best first
  (ties: lower index first; NumPy stable argsort; indices count the
  input's items: the folder's in file name order). top_checkable is false where
  two imax values around the top-5 cut are closer than 1e-4 (relative), which
  float32 rounding could swap.
  where = per top image [y, x, y0, x0, y1, x1]: the first position (row-major)
  of the maximum, and the input pixels it reads (inclusive), from the layers'
  kernel sizes and strides written out by hand in GEOMETRY (the whole image
  after Flatten); where_checkable: the maximum is ahead of the runner-up by
  1e-4 (relative) on each top image.
  hist = {"width", "silent", "counts"}: the per-image maxima > 0 in 32 bins of
  width w, w = 2^ceil(log2(first such maximum / 16)), doubled (bins merged in
  pairs) while a maximum is >= 32 w, images in input order; hist_checkable:
  no maximum within 1e-5 (relative) of a bin edge or a power of two.
"""
import json
import os
import sys

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import keras_h5 as kh  # noqa: E402

OUT = os.path.join(HERE, '..', 'data', 'stats')
TOPK = 5
DEAD = {'conv2d_2': 3, 'conv2d_3': 5}
FOLDER = [0, 16, 17, 19, 23]  # the images written as PNGs, in file name order


def build(rng):
    """Layer list [(cls, name, cfg, weights dict)] with the planted filters."""
    layers = []

    def add(cls, name, weights=None, first=False, **kw):
        cfg = kh.layer_config(cls, name, batch_input_shape=[None, 16, 16, 3] if first else None, **kw)
        layers.append((cls, name, cfg, weights or {}))

    def conv_w(kh_, kw_, cin, cout, bias_lo, bias_hi):
        k = (rng.standard_normal((kh_, kw_, cin, cout)) / np.sqrt(kh_ * kw_ * cin) * 1.5).astype(np.float32)
        b = rng.uniform(bias_lo, bias_hi, cout).astype(np.float32)
        return k, b

    k1, b1 = conv_w(3, 3, 3, 6, -0.1, 0.2)
    add('Conv2D', 'conv2d_1', {'kernel': k1, 'bias': b1}, first=True, filters=6, kernel_size=[3, 3],
        activation='relu')
    add('MaxPooling2D', 'max_pooling2d_1', pool_size=[2, 2], strides=[2, 2])
    k2, b2 = conv_w(3, 3, 6, 8, -0.05, 0.2)
    k2[..., DEAD['conv2d_2']] = 0
    b2[DEAD['conv2d_2']] = -0.5
    add('Conv2D', 'conv2d_2', {'kernel': k2, 'bias': b2}, filters=8, kernel_size=[3, 3], activation='relu')
    k3, b3 = conv_w(2, 2, 8, 8, 0.0, 0.3)
    k3[..., DEAD['conv2d_3']] = 0
    b3[DEAD['conv2d_3']] = -0.5
    add('Conv2D', 'conv2d_3', {'kernel': k3, 'bias': b3}, filters=8, kernel_size=[2, 2], activation='linear')
    gamma = rng.uniform(0.7, 1.3, 8).astype(np.float32)
    beta = rng.uniform(0.0, 0.3, 8).astype(np.float32)
    mean = rng.uniform(-0.2, 0.2, 8).astype(np.float32)
    var = rng.uniform(0.5, 1.5, 8).astype(np.float32)
    d = DEAD['conv2d_3']
    gamma[d], beta[d], mean[d], var[d] = 1, 0, 0, 1
    add('BatchNormalization', 'batch_normalization_1',
        {'gamma': gamma, 'beta': beta, 'moving_mean': mean, 'moving_variance': var})
    add('Activation', 'activation_1', activation='relu')
    add('Flatten', 'flatten_1')
    kd1 = (rng.standard_normal((128, 12)) / np.sqrt(128) * 1.5).astype(np.float32)
    bd1 = rng.uniform(-0.1, 0.1, 12).astype(np.float32)
    add('Dense', 'dense_1', {'kernel': kd1, 'bias': bd1}, units=12, activation='relu')
    kd2 = (rng.standard_normal((12, 4)) / np.sqrt(12)).astype(np.float32)
    bd2 = rng.uniform(-0.1, 0.1, 4).astype(np.float32)
    add('Dense', 'dense_2', {'kernel': kd2, 'bias': bd2}, units=4, activation='softmax')
    return layers


def save(path, layers):
    cfg = {'class_name': 'Sequential',
           'config': {'name': 'sequential_1',
                      'layers': [{'class_name': c, 'config': g} for c, _, g, _ in layers]}}
    lw = []
    for cls, name, g, w in layers:
        roles = kh.weight_roles(cls, g)
        lw.append((name, [('%s/%s:0' % (name, r), w[r]) for r in roles]))
    kh.save_model(path, cfg, lw)


# ---------------------------------------------------------------------------
# NumPy float64 forward pass, from the weights read back from the file

def conv_valid(x, k, b):
    n, H, W, _ = x.shape
    kh_, kw_, _, co = k.shape
    oh, ow = H - kh_ + 1, W - kw_ + 1
    y = np.zeros((n, oh, ow, co))
    for i in range(kh_):
        for j in range(kw_):
            y += np.einsum('nhwc,co->nhwo', x[:, i:i + oh, j:j + ow, :], k[i, j])
    return y + b


def forward(path, x):
    """Returns {layer name: output (n, ...)} in float64."""
    _, cfg, weights, _ = kh.load_model(path)
    w = {n: {wn.split('/')[-1].split(':')[0]: a.astype(np.float64) for wn, a in ws} for n, ws in weights.items()}
    outs = {}
    for L in cfg['config']['layers']:
        cls, c = L['class_name'], L['config']
        name = c['name']
        if cls == 'Conv2D':
            assert c['padding'] == 'valid' and c['strides'] == [1, 1]
            x = conv_valid(x, w[name]['kernel'], w[name]['bias'])
            if c['activation'] == 'relu':
                x = np.maximum(x, 0)
        elif cls == 'MaxPooling2D':
            n, H, W, C = x.shape
            x = x[:, :H // 2 * 2, :W // 2 * 2].reshape(n, H // 2, 2, W // 2, 2, C).max(axis=(2, 4))
        elif cls == 'BatchNormalization':
            p = w[name]
            x = (x - p['moving_mean']) / np.sqrt(p['moving_variance'] + c['epsilon']) * p['gamma'] + p['beta']
        elif cls == 'Activation':
            assert c['activation'] == 'relu'
            x = np.maximum(x, 0)
        elif cls == 'Flatten':
            x = x.reshape(x.shape[0], -1)
        elif cls == 'Dense':
            x = x @ w[name]['kernel'] + w[name]['bias']
            if c['activation'] == 'relu':
                x = np.maximum(x, 0)
            elif c['activation'] == 'softmax':
                e = np.exp(x - x.max(axis=1, keepdims=True))
                x = e / e.sum(axis=1, keepdims=True)
        else:
            raise ValueError(cls)
        outs[name] = x
    return outs


MEASURED = ['conv2d_1', 'conv2d_2', 'conv2d_3', 'activation_1', 'dense_1', 'dense_2']
# (kernel, stride) of the rows and columns of each layer, input first: all
# 'valid' (no padding); None: mixes every position
GEOMETRY = [('conv2d_1', 3, 1), ('max_pooling2d_1', 2, 2), ('conv2d_2', 3, 1), ('conv2d_3', 2, 1),
            ('batch_normalization_1', 1, 1), ('activation_1', 1, 1), ('flatten_1', None, None)]
HIST_BINS = 32


def receptive(name, y, size=16):
    """Input rows [lo, hi] that row y of layer `name` reads."""
    chain = []
    for n, k, st in GEOMETRY:
        chain.append((k, st))
        if n == name:
            break
    else:
        return 0, size - 1  # a Dense layer: after Flatten
    if any(k is None for k, _ in chain):
        return 0, size - 1
    lo = hi = y
    for k, st in reversed(chain):
        lo, hi = lo * st, hi * st + k - 1
    return lo, min(hi, size - 1)


def histogram(vals):
    """The streaming histogram of featviz stats, and whether float32 could bin differently."""
    w, counts, ok = 0.0, [0] * HIST_BINS, True
    for v in vals:
        if not v > 0:
            continue
        if w == 0:
            e = np.log2(v / (HIST_BINS / 2))
            ok &= abs(e - round(e)) > 1e-5
            w = 2.0 ** np.ceil(e)
        while v >= w * HIST_BINS:
            counts = [counts[2 * i] + counts[2 * i + 1] for i in range(HIST_BINS // 2)] + [0] * (HIST_BINS // 2)
            w *= 2
        counts[min(HIST_BINS - 1, int(v // w))] += 1
    for v in vals:
        if v > 0:
            q = v / w
            ok &= abs(q - round(q)) > 1e-5 * max(1.0, q)
    return {'width': float(w), 'silent': int(sum(1 for v in vals if not v > 0)), 'counts': counts}, bool(ok)


def stats(outs, rows):
    n = len(rows)
    res = {'images': n, 'topk': TOPK, 'layers': {}}
    for name in MEASURED:
        y = outs[name][rows]
        C = y.shape[-1]
        flat = y.reshape(n, -1, C)
        imax = flat.max(axis=1)                  # (n, C)
        top, checkable, where, where_ok, hist, hist_ok = [], [], [], [], [], []
        for c in range(C):
            order = np.argsort(-imax[:, c], kind='stable')
            top.append([int(i) for i in order[:TOPK]])
            v = imax[order, c]
            scale = max(1e-6, float(np.abs(v).max()))
            gaps = np.abs(np.diff(v[:min(n, TOPK + 1)]))
            checkable.append(bool(np.all((gaps == 0) | (gaps > 1e-4 * scale))))
            wh, ok = [], True
            for i in order[:TOPK]:
                m = y[i, ..., c].reshape(-1)
                q = int(np.argmax(m))
                second = np.sort(m)[-2] if m.size > 1 else -np.inf
                ok &= bool(m[q] - second > 1e-4 * max(1e-6, abs(m[q])))
                if y.ndim == 4:
                    yy, xx = divmod(q, y.shape[2])
                    (y0, y1), (x0, x1) = receptive(name, yy), receptive(name, xx)
                else:
                    yy = xx = y0 = x0 = 0
                    y1 = x1 = 15
                wh.append([yy, xx, y0, x0, y1, x1])
            where.append(wh)
            where_ok.append(bool(ok) or y.ndim != 4)
            h, hok = histogram(imax[:, c])
            hist.append(h)
            hist_ok.append(hok)
        res['layers'][name] = {
            'channels': C,
            'mean': [float(v) for v in flat.mean(axis=(0, 1))],
            'max': [float(v) for v in imax.max(axis=0)],
            'zero_fraction': [float(v) for v in (imax <= 0).mean(axis=0)],
            'dead': [bool(v) for v in (imax <= 0).all(axis=0)],
            'top': top,
            'top_checkable': checkable,
            'where': where,
            'where_checkable': where_ok,
            'hist': hist,
            'hist_checkable': hist_ok,
        }
    return res


def images(rng):
    imgs = [rng.integers(0, 256, (16, 16, 3)) for _ in range(16)]
    yy, xx = np.mgrid[0:16, 0:16]
    imgs.append(np.stack([xx * 16, yy * 16, 255 - xx * 16], -1))            # gradients
    imgs.append(np.stack([(xx % 4 < 2) * 255] * 3, -1))                     # vertical stripes
    imgs.append(np.stack([(yy % 4 < 2) * 255] * 3, -1))                     # horizontal stripes
    imgs.append(np.stack([((xx // 2 + yy // 2) % 2) * 255] * 3, -1))        # checkerboard
    imgs.append(np.zeros((16, 16, 3)))                                      # black
    imgs.append(np.full((16, 16, 3), 255))                                  # white
    imgs.append(np.stack([np.full((16, 16), 230), np.full((16, 16), 20), np.full((16, 16), 30)], -1))  # red
    ring = ((xx - 7.5) ** 2 + (yy - 7.5) ** 2)
    imgs.append(np.stack([((ring > 20) & (ring < 45)) * 255] * 3, -1))      # ring
    return np.clip(np.array(imgs), 0, 255).astype(np.uint8)


def main():
    rng = np.random.default_rng(20261129)
    os.makedirs(os.path.join(OUT, 'pngs'), exist_ok=True)
    for old in os.listdir(os.path.join(OUT, 'pngs')):
        os.remove(os.path.join(OUT, 'pngs', old))
    model = os.path.join(OUT, 'stats_net.h5')
    save(model, build(rng))
    u8 = images(rng)
    np.save(os.path.join(OUT, 'images.npy'), u8)
    for k, i in enumerate(FOLDER):
        Image.fromarray(u8[i]).save(os.path.join(OUT, 'pngs', 'img_%d_%02d.png' % (k, i)), optimize=False)
    x = u8.astype(np.float64) * (1.0 / 255.0)
    outs = forward(model, x)
    ref = {'npy': stats(outs, list(range(len(u8)))), 'folder': stats(outs, FOLDER)}
    # the planted filters are dead, their neighbours fire on some image,
    # and nothing else in those layers is dead
    for which in ('npy', 'folder'):
        L = ref[which]['layers']
        for name, c in (('conv2d_2', 3), ('conv2d_3', 5), ('activation_1', 5)):
            assert L[name]['dead'][c], (which, name)
            assert not L[name]['dead'][c - 1] and not L[name]['dead'][c + 1], (which, name)
    L = ref['npy']['layers']
    for name in ('conv2d_2', 'activation_1'):
        assert sum(L[name]['dead']) == 1, (name, L[name]['dead'])
    assert any(0 < z < 1 for z in L['conv2d_2']['zero_fraction']), L['conv2d_2']['zero_fraction']
    assert sum(all(L[n]['top_checkable']) for n in L) >= 3
    with open(os.path.join(OUT, 'ref.json'), 'w') as f:
        json.dump(ref, f, indent=1, sort_keys=True)
        f.write('\n')
    for n in MEASURED:
        print(n, 'dead', [i for i, d in enumerate(L[n]['dead']) if d],
              'zero_fraction', ['%.2f' % z for z in L[n]['zero_fraction']],
              'checkable', sum(L[n]['top_checkable']), '/', L[n]['channels'])


if __name__ == '__main__':
    main()
