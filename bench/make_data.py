#!/usr/bin/env python3
"""Writes the benchmark's inputs into bench/data/ (deterministic, seeded):

  gtsrb48_bench.h5   the 48x48 GTSRB tutorial network, channels_first, as
                     Keras 2.2.4's model.save() writes it (tests/tools/keras_h5.py):
                       Conv2D 32 same, Conv2D 32 valid, MaxPool 2,
                       Conv2D 64 same, Conv2D 64 valid, MaxPool 2,
                       Conv2D 128 same, Conv2D 128 valid, MaxPool 2,
                       Flatten, Dense 512, Dense 43 (softmax); relu elsewhere.
                     Random He-normal kernels (sd = sqrt(2 / fan_in)), small
                     random biases, from SEED. Layer names conv2d_1 .. conv2d_6,
                     max_pooling2d_1 .. 3, flatten_1, dense_1, dense_2.
  images1000.npy     uint8 (1000, 48, 48, 3): random smooth colour blobs.
  one48.png          one 48x48 RGB picture (the first of those images).
  dream512.png       a 512x512 RGB picture (stripes, circles and noise).

    /usr/bin/python3 bench/make_data.py [OUT_DIR]    (default: bench/data)

Needs numpy and h5py (and zlib from the standard library for the PNGs).
"""
import os
import struct
import sys
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, 'tests', 'tools'))
import keras_h5 as kh  # noqa: E402

SEED = 4848
SIZE = 48
CLASSES = 43


def he_conv(rng, kh_, kw, c, oc):
    return (rng.standard_normal((kh_, kw, c, oc)) * np.sqrt(2.0 / (kh_ * kw * c))).astype(np.float32)


def he_dense(rng, n_in, n_out):
    return (rng.standard_normal((n_in, n_out)) * np.sqrt(2.0 / n_in)).astype(np.float32)


def write_model(path):
    rng = np.random.default_rng(SEED)
    namer = kh.Namer()
    layers, weights = [], []
    first = [True]

    def add(cls, w=None, **kw):
        name = namer(cls)
        bis = [None, 3, SIZE, SIZE] if first[0] else None
        first[0] = False
        cfg = kh.layer_config(cls, name, batch_input_shape=bis, **kw)
        layers.append({'class_name': cls, 'config': cfg})
        ws = []
        if w is not None:
            ws = [('%s/kernel:0' % name, w[0]), ('%s/bias:0' % name, w[1])]
        weights.append((name, ws))
        return name

    c = 3
    for oc in (32, 64, 128):
        for pad in ('same', 'valid'):
            k = he_conv(rng, 3, 3, c, oc)
            b = (rng.standard_normal(oc) * 0.01).astype(np.float32)
            add('Conv2D', (k, b), filters=oc, kernel_size=[3, 3], padding=pad,
                data_format='channels_first', activation='relu')
            c = oc
        add('MaxPooling2D', pool_size=[2, 2], data_format='channels_first')
    add('Flatten', data_format='channels_first')
    add('Dense', (he_dense(rng, 128 * 4 * 4, 512), (rng.standard_normal(512) * 0.01).astype(np.float32)),
        units=512, activation='relu')
    add('Dense', (he_dense(rng, 512, CLASSES), np.zeros(CLASSES, np.float32)),
        units=CLASSES, activation='softmax')
    cfg = {'class_name': 'Sequential', 'config': {'name': 'sequential_1', 'layers': layers}}
    kh.save_model(path, cfg, weights)


def smooth_images(rng, n, h, w):
    """Random colour blobs: sums of a few Gaussian bumps per channel, in 0..255."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        img = np.full((h, w, 3), 0.3, np.float32)
        for _ in range(4):
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
            s = rng.uniform(3, 12)
            col = rng.uniform(-0.5, 0.7, 3).astype(np.float32)
            img += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))[..., None] * col
        img += rng.standard_normal((h, w, 3)).astype(np.float32) * 0.03
        out[i] = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out


def dream_picture(rng, size):
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    r = 0.5 + 0.4 * np.sin(12 * xx + 3 * yy)
    g = 0.5 + 0.4 * np.cos(20 * np.hypot(xx - 0.4, yy - 0.6))
    b = 0.5 + 0.3 * np.sin(7 * yy * yy + 5 * xx)
    img = np.stack([r, g, b], -1) + rng.standard_normal((size, size, 3)).astype(np.float32) * 0.04
    return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)


def write_png(path, rgb):
    """Minimal 8-bit RGB PNG writer (no filter, zlib)."""
    h, w, _ = rgb.shape
    raw = b''.join(b'\x00' + rgb[y].tobytes() for y in range(h))

    def chunk(tag, data):
        c = struct.pack('>I', len(data)) + tag + data
        return c + struct.pack('>I', zlib.crc32(tag + data) & 0xffffffff)

    with open(path, 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n')
        f.write(chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0)))
        f.write(chunk(b'IDAT', zlib.compress(raw, 6)))
        f.write(chunk(b'IEND', b''))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, 'data')
    os.makedirs(out, exist_ok=True)
    write_model(os.path.join(out, 'gtsrb48_bench.h5'))
    rng = np.random.default_rng(SEED + 1)
    imgs = smooth_images(rng, 1000, SIZE, SIZE)
    np.save(os.path.join(out, 'images1000.npy'), imgs)
    write_png(os.path.join(out, 'one48.png'), imgs[0])
    write_png(os.path.join(out, 'dream512.png'), dream_picture(rng, 512))
    print('wrote', out)


if __name__ == '__main__':
    main()
