#!/usr/bin/env python3
"""Trains featviz's demo model, models/gtsrb32.h5 (and the same weights as
models/gtsrb32.onnx), and writes its labels.

The shipped model is made in two runs: a plain one, then adversarial
fine-tuning of its weights (models/README.md):

    /usr/bin/python3 tools/train_gtsrb.py --out /tmp/plain/gtsrb32.h5 \
        --labels /tmp/plain/labels.csv             # plain: train, write, verify
    /usr/bin/python3 tools/train_gtsrb.py --init /tmp/plain/gtsrb32.h5 --epochs 20 \
        --lr 5e-4 --adv-norm l2 --adv-eps 0.25      # adversarial fine-tuning -> models/
    /usr/bin/python3 tools/train_gtsrb.py --verify --min-acc 0.95  # only re-check the file
    /usr/bin/python3 tools/train_gtsrb.py --onnx-only  # gtsrb32.onnx from the .h5's weights

Data: ../shared/gtsrb/train48_{x,y,track}.npy (GTSRB training images at 48x48,
10 frames per track; see that folder's README.md). The path can be changed
with --data or the FV_SHARED_DIR environment variable (its gtsrb/ folder).

Split: by TRACK, never by image (frames of one track are near-duplicates).
For every class its tracks are shuffled with a seeded RNG and 20% of them
(at least one) go to validation, so every class has validation tracks.

Preprocessing (the same for training, validation and featviz later):
RGB, bilinear resize to 32x32 with half-pixel centres and no antialiasing
(cv2 INTER_LINEAR = torch interpolate(mode='bilinear', align_corners=False,
antialias=False) = featviz --resize bilinear), in float (no rounding back
to bytes), then x / 255.

Architecture: the classic Keras GTSRB tutorial network, written in PyTorch
with Keras semantics (channels_last input, 'same' 3x3 = 1 px of zeros on each
side, Flatten in (h, w, c) order):
    Conv2D 32 same relu, Conv2D 32 valid relu, MaxPool 2, Dropout 0.2,
    Conv2D 64 same relu, Conv2D 64 valid relu, MaxPool 2, Dropout 0.2,
    Conv2D 128 same relu, Conv2D 128 valid relu, MaxPool 2, Dropout 0.2,
    Flatten, Dense 512 relu, Dropout 0.5, Dense 43 softmax.

Training: Adam (lr 1e-3, cosine decay to 0 over the run), batch 64,
cross-entropy, Keras' initialisers (glorot_uniform kernels, zero biases).
Augmentation on the fly, per image, in one bilinear resampling from the 48x48
source straight into the 32x32 input (F.affine_grid + F.grid_sample with
align_corners=False; the identity transform gives exactly the resize above):
rotation +-10 deg, scale 0.9..1.1, shift +-2 px (of 32), then brightness
x0.7..1.3, contrast x0.8..1.2 around the image mean, clipped to 0..1.
No flips: signs are not mirror-symmetric.
Classes are unbalanced (50 to 540 training images): each epoch draws as many
images as the training split has, with replacement, with a probability per
image proportional to 1/sqrt(images of its class), so a class is seen in
proportion to the square root of its size.

Adversarial training (--adv-eps E > 0, Madry et al. 2018): every augmented
batch is replaced by its adversarial version before the weight step, the
input x + d that (approximately) maximizes the cross-entropy over the ball
|d| <= E (--adv-norm l2: Euclidean norm over the 3x32x32 input in 0..1 units;
linf: every pixel within E; E may be written as a fraction, 2/255), clipped
to 0..1. d starts at a random point of the ball and takes --adv-steps K
gradient steps (sign of the gradient for linf, gradient / its L2 norm for
l2), each projected back onto the ball, of size --adv-step-size (default
1.25 E for K = 1, the "fast" FGSM with random start of Wong et al. 2020, and
2.5 E / K for PGD). The attack runs on the network in inference mode
(no dropout) and differentiates only with respect to the input; the weight
step then trains on the adversarial batch alone. Robust models have
perceptually aligned gradients: their class visualizations look like the
objects (Santurkar et al. 2019, Engstrom et al. 2019), which is why featviz's
demo model is trained this way. A step costs about (K + 1) times a plain one.
With --init the run starts from the weights of an earlier .h5 (adversarial
fine-tuning of the plain model: a few epochs instead of a whole run; the
data, split, augmentation and seeds are the same). After training the
script also reports the accuracy under a 10-step PGD
attack of the same norm and E on the validation images.

Reproducible: seeds for numpy and torch, torch.use_deterministic_algorithms,
one intra-op thread by default (--threads; a different count may change the
last bits of the sums and so the trained weights). One thread is also the
fastest on a shared 2-core machine: with 2 OpenMP threads and another job
running, a training step was 6x slower.

Output, written the way Keras 2.2.4's model.save() writes HDF5 (layout in
../shared/docs/keras-h5-format.md; tests/tools/keras_h5.py does the writing):
a compiled Sequential (training_config: Adam, categorical_crossentropy)
without optimizer_weights. Afterwards the file is read back with h5py and the
network is rebuilt from it in NumPy float64 (channels_last, no torch), and the
validation accuracy is measured again from the file; the script fails if it
is below 97% (--min-acc; 90% by default with --adv-eps).
"""
import argparse
import csv
import json
import math
import os
import sys
import time

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, 'tests', 'tools'))
import keras_h5 as kh  # noqa: E402

SEED = 20240613
SIZE = 32
NUM_CLASSES = 43
VAL_FRACTION = 0.2
MIN_VAL_ACC = 0.97

# The 43 GTSRB classes (ClassId order), as published with the data set.
SIGN_NAMES = [
    'Speed limit (20km/h)', 'Speed limit (30km/h)', 'Speed limit (50km/h)',
    'Speed limit (60km/h)', 'Speed limit (70km/h)', 'Speed limit (80km/h)',
    'End of speed limit (80km/h)', 'Speed limit (100km/h)', 'Speed limit (120km/h)',
    'No passing', 'No passing for vehicles over 3.5 metric tons',
    'Right-of-way at the next intersection', 'Priority road', 'Yield', 'Stop',
    'No vehicles', 'Vehicles over 3.5 metric tons prohibited', 'No entry',
    'General caution', 'Dangerous curve to the left', 'Dangerous curve to the right',
    'Double curve', 'Bumpy road', 'Slippery road', 'Road narrows on the right',
    'Road work', 'Traffic signals', 'Pedestrians', 'Children crossing',
    'Bicycles crossing', 'Beware of ice/snow', 'Wild animals crossing',
    'End of all speed and passing limits', 'Turn right ahead', 'Turn left ahead',
    'Ahead only', 'Go straight or right', 'Go straight or left', 'Keep right',
    'Keep left', 'Roundabout mandatory', 'End of no passing',
    'End of no passing by vehicles over 3.5 metric tons',
]
assert len(SIGN_NAMES) == NUM_CLASSES

# (filters, padding) of the six convolutions; a MaxPool 2 + Dropout 0.2 after
# every second one.
CONVS = [(32, 'same'), (32, 'valid'), (64, 'same'), (64, 'valid'),
         (128, 'same'), (128, 'valid')]


# ---------------------------------------------------------------------------
# Data

def default_data_dir():
    shared = os.environ.get('FV_SHARED_DIR') or os.path.join(os.path.dirname(ROOT), 'shared')
    return os.path.join(shared, 'gtsrb')


def load_data(data_dir):
    x = np.load(os.path.join(data_dir, 'train48_x.npy'))        # (N, 48, 48, 3) uint8 RGB
    y = np.load(os.path.join(data_dir, 'train48_y.npy')).astype(np.int64)
    track = np.load(os.path.join(data_dir, 'train48_track.npy'))
    assert x.dtype == np.uint8 and x.ndim == 4 and x.shape[3] == 3
    assert len(x) == len(y) == len(track)
    return x, y, track


def split_by_track(y, track, seed=SEED, fraction=VAL_FRACTION):
    """Boolean mask of validation images: per class, a seeded random 20% of
    its tracks (at least one)."""
    rng = np.random.RandomState(seed)
    val_tracks = []
    for c in range(NUM_CLASSES):
        tracks = np.unique(track[y == c])          # sorted, so the shuffle is reproducible
        assert len(tracks) >= 2, 'class %d has fewer than 2 tracks' % c
        rng.shuffle(tracks)
        n_val = max(1, int(round(fraction * len(tracks))))
        val_tracks.extend(tracks[:n_val].tolist())
    val = np.isin(track, val_tracks)
    # a track never straddles the split
    assert not set(track[val].tolist()) & set(track[~val].tolist())
    return val


def to_nchw(x_u8):
    """uint8 (N, H, W, 3) -> float32 tensor (N, 3, H, W) in 0..255."""
    return torch.from_numpy(np.ascontiguousarray(x_u8.transpose(0, 3, 1, 2))).float()


def preprocess(x_u8):
    """The model's preprocessing: bilinear (half-pixel, no antialias) resize to
    32x32 in float, / 255. Returns float32 NCHW."""
    t = to_nchw(x_u8)
    t = F.interpolate(t, size=(SIZE, SIZE), mode='bilinear', align_corners=False)
    return t / 255.0


def augment(src, gen):
    """src: float32 (B, 3, 48, 48) in 0..255 -> augmented (B, 3, 32, 32) in 0..1.
    One bilinear resampling: output pixel centres mapped through a random
    rotation/scale/shift into the source (affine_grid, align_corners=False)."""
    b = src.shape[0]
    u = lambda lo, hi: lo + (hi - lo) * torch.rand(b, generator=gen)
    ang = u(-10.0, 10.0) * (math.pi / 180.0)
    scale = u(0.9, 1.1)                    # > 1: the sign looks bigger
    tx = u(-2.0, 2.0) * (2.0 / SIZE)       # pixels of the 32x32 output, normalised
    ty = u(-2.0, 2.0) * (2.0 / SIZE)
    cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
    theta = torch.stack([torch.stack([cos, -sin, tx], 1),
                         torch.stack([sin, cos, ty], 1)], 1)      # (B, 2, 3)
    grid = F.affine_grid(theta, (b, 3, SIZE, SIZE), align_corners=False)
    out = F.grid_sample(src / 255.0, grid, mode='bilinear', padding_mode='border',
                        align_corners=False)
    bright = u(0.7, 1.3).view(b, 1, 1, 1)
    contrast = u(0.8, 1.2).view(b, 1, 1, 1)
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = (out - mean) * contrast + mean
    return (out * bright).clamp(0.0, 1.0)


# ---------------------------------------------------------------------------
# Model (PyTorch, Keras semantics)

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        convs, cin = [], 3
        for filters, pad in CONVS:
            convs.append(nn.Conv2d(cin, filters, 3, padding=1 if pad == 'same' else 0))
            cin = filters
        self.convs = nn.ModuleList(convs)
        self.fc1 = nn.Linear(2 * 2 * 128, 512)
        self.fc2 = nn.Linear(512, NUM_CLASSES)
        for m in list(self.convs) + [self.fc1, self.fc2]:
            nn.init.xavier_uniform_(m.weight)   # Keras glorot_uniform
            nn.init.zeros_(m.bias)

    def forward(self, x):                       # x: (B, 3, 32, 32); returns logits
        for i, conv in enumerate(self.convs):
            x = F.relu(conv(x))
            if i % 2 == 1:
                x = F.dropout(F.max_pool2d(x, 2), 0.2, self.training)
        x = x.permute(0, 2, 3, 1).flatten(1)    # Keras Flatten: (h, w, c) order
        x = F.dropout(F.relu(self.fc1(x)), 0.5, self.training)
        return self.fc2(x)                      # softmax is in the loss / the .h5


def predict(net, x, batch=512):
    net.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out.append(net(x[i:i + batch]).argmax(1))
    return torch.cat(out).numpy()


def parse_eps(text):
    """'0.5', '2/255' -> float."""
    num, _, den = text.partition('/')
    return float(num) / (float(den) if den else 1.0)


def _l2_unit(g):
    n = g.flatten(1).norm(dim=1).clamp_min(1e-12)
    return g / n.view(-1, 1, 1, 1)


def _project(d, norm, eps):
    if norm == 'linf':
        return d.clamp(-eps, eps)
    n = d.flatten(1).norm(dim=1).clamp_min(1e-12)
    return d * (eps / n).clamp(max=1.0).view(-1, 1, 1, 1)


def adversarial(net, x, y, norm, eps, steps, step_size, gen):
    """x + d with |d| <= eps (norm 'l2' or 'linf'), x + d in 0..1, after `steps`
    projected gradient-ascent steps on the cross-entropy from a random start.
    The network is run in eval mode; its mode is restored afterwards."""
    was_training = net.training
    net.eval()
    b = x.shape[0]
    if norm == 'linf':
        d = (torch.rand(x.shape, generator=gen) * 2.0 - 1.0) * eps
    else:   # a random direction, a random radius up to eps
        d = _l2_unit(torch.randn(x.shape, generator=gen)) * (
            eps * torch.rand(b, generator=gen)).view(-1, 1, 1, 1)
    d = ((x + d).clamp(0.0, 1.0) - x).detach()
    for _ in range(steps):
        d.requires_grad_(True)
        loss = F.cross_entropy(net(x + d), y)
        g, = torch.autograd.grad(loss, d)
        step = g.sign() if norm == 'linf' else _l2_unit(g)
        d = _project(d.detach() + step_size * step, norm, eps)
        d = ((x + d).clamp(0.0, 1.0) - x).detach()
    net.train(was_training)
    return (x + d).detach()


def robust_accuracy(net, x, y, norm, eps, steps=10, batch=256):
    """Accuracy under a `steps`-step PGD attack (step 2.5 eps / steps)."""
    gen = torch.Generator().manual_seed(SEED + 2)
    yt = torch.from_numpy(y)
    correct = 0
    for i in range(0, len(x), batch):
        xa = adversarial(net, x[i:i + batch], yt[i:i + batch], norm, eps, steps,
                         2.5 * eps / steps, gen)
        with torch.no_grad():
            correct += int((net(xa).argmax(1) == yt[i:i + batch]).sum())
    return correct / len(x)


def train(net, src_train, y_train, x_val, y_val, epochs, batch, lr, log, adv=None):
    """adv: None, or (norm, eps, steps, step_size) for adversarial training."""
    gen = torch.Generator().manual_seed(SEED + 1)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    n = len(src_train)
    steps_per_epoch = (n + batch - 1) // batch
    total = epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1.0 + math.cos(math.pi * min(s, total) / total)))
    yt = torch.from_numpy(y_train)
    counts = np.bincount(y_train, minlength=NUM_CLASSES).astype(np.float64)
    weights = torch.from_numpy(1.0 / np.sqrt(counts[y_train]))
    t_start = time.time()
    for ep in range(epochs):
        t0 = time.time()
        net.train()
        perm = torch.multinomial(weights, n, replacement=True, generator=gen)
        loss_sum, correct = 0.0, 0
        for i in range(0, n, batch):
            idx = perm[i:i + batch]
            xb = augment(src_train[idx], gen).contiguous(memory_format=torch.channels_last)
            yb = yt[idx]
            if adv:
                xb = adversarial(net, xb, yb, *adv, gen)
            logits = net(xb)
            loss = F.cross_entropy(logits, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += float(loss) * len(idx)
            correct += int((logits.argmax(1) == yb).sum())
        val_acc = float((predict(net, x_val) == y_val).mean())
        log('epoch %2d/%d  loss %.4f  train acc (augmented) %.4f  val acc %.4f  '
            'lr %.2e  %.1f s' % (ep + 1, epochs, loss_sum / n, correct / n, val_acc,
                                 sched.get_last_lr()[0], time.time() - t0))
    return time.time() - t_start


# ---------------------------------------------------------------------------
# Writing the Keras 2.2.4 file

def keras_layers():
    """[(class_name, layer name, config), ...] as Keras 2.2.4 names and
    configures them (a fresh session: conv2d_1, conv2d_2, ...)."""
    namer = kh.Namer()
    out = []

    def add(cls, **kw):
        name = namer(cls)
        first = not out
        cfg = kh.layer_config(cls, name, batch_input_shape=[None, SIZE, SIZE, 3] if first else None,
                              **kw)
        out.append((cls, name, cfg))

    for i, (filters, pad) in enumerate(CONVS):
        add('Conv2D', filters=filters, kernel_size=[3, 3], padding=pad, activation='relu')
        if i % 2 == 1:
            add('MaxPooling2D', pool_size=[2, 2])
            add('Dropout', rate=0.2)
    add('Flatten')
    add('Dense', units=512, activation='relu')
    add('Dropout', rate=0.5)
    add('Dense', units=NUM_CLASSES, activation='softmax')
    return out


def save_h5(net, path, lr):
    layers = keras_layers()
    torch_params = [(c.weight, c.bias) for c in net.convs] + [
        (net.fc1.weight, net.fc1.bias), (net.fc2.weight, net.fc2.bias)]
    torch_params.reverse()
    lw = []
    for cls, name, cfg in layers:
        ws = []
        if cls in ('Conv2D', 'Dense'):
            w, b = (p.detach().cpu().numpy() for p in torch_params.pop())
            if cls == 'Conv2D':
                k = w.transpose(2, 3, 1, 0)        # (out, in, kh, kw) -> (kh, kw, in, out)
            else:
                k = w.T                            # (out, in) -> (in, out)
            ws = [('%s/kernel:0' % name, np.ascontiguousarray(k, dtype=np.float32)),
                  ('%s/bias:0' % name, np.ascontiguousarray(b, dtype=np.float32))]
        lw.append((name, ws))
    assert not torch_params
    config = {'class_name': 'Sequential',
              'config': {'name': 'sequential_1',
                         'layers': [{'class_name': c, 'config': cfg} for c, _, cfg in layers]}}
    tc = kh.adam_training_config()
    tc['optimizer_config']['config']['lr'] = float(np.float32(lr))
    tmp = path + '.tmp'
    kh.save_model(tmp, config, lw, keras_version='2.2.4', backend='tensorflow',
                  training_config=tc)
    os.replace(tmp, path)


def net_from_h5(path):
    """The PyTorch Net holding the weights of a written .h5."""
    net = Net()
    params = [(c.weight, c.bias) for c in net.convs] + [
        (net.fc1.weight, net.fc1.bias), (net.fc2.weight, net.fc2.bias)]
    params.reverse()
    with torch.no_grad():
        for cls, _, ws in read_h5(path):
            if cls not in ('Conv2D', 'Dense'):
                continue
            w, b = params.pop()
            k = ws[0].transpose(3, 2, 0, 1) if cls == 'Conv2D' else ws[0].T
            w.copy_(torch.tensor(np.ascontiguousarray(k), dtype=torch.float32))
            b.copy_(torch.tensor(ws[1], dtype=torch.float32))
    assert not params
    return net.eval()


def save_onnx(net, path):
    """The network as ONNX (opset 13, NCHW input 'input', softmax output 'probabilities')."""
    model = nn.Sequential(net, nn.Softmax(dim=1)).eval()
    tmp = path + '.tmp'
    torch.onnx.export(model, torch.zeros(1, 3, 32, 32), tmp, opset_version=13,
                      input_names=['input'], output_names=['probabilities'])
    os.replace(tmp, path)


def write_labels(path):
    with open(path, 'w', newline='') as f:
        w = csv.writer(f, lineterminator='\n')   # quotes a name only if it has a comma
        w.writerow(['ClassId', 'SignName'])
        for i, name in enumerate(SIGN_NAMES):
            w.writerow([i, name])


# ---------------------------------------------------------------------------
# Independent check: the file, read back with h5py, run in NumPy float64

def _attr_names(attr):
    if attr.dtype.kind == 'f':                     # empty list stored as float64[0]
        assert attr.shape == (0,)
        return []
    return [a.decode('utf8') if isinstance(a, bytes) else str(a) for a in attr]


def read_h5(path):
    """-> list of (class_name, config, [arrays in weight_names order])."""
    with h5py.File(path, 'r') as f:
        cfg = f.attrs['model_config']
        cfg = json.loads(cfg.decode('utf8') if isinstance(cfg, bytes) else cfg)
        assert cfg['class_name'] == 'Sequential'
        g = f['model_weights']
        names = _attr_names(g.attrs['layer_names'])
        layers = []
        for L in cfg['config']['layers']:
            name = L['config']['name']
            assert name in names, name
            wn = _attr_names(g[name].attrs['weight_names'])
            layers.append((L['class_name'], L['config'],
                           [np.array(g[name][w], dtype=np.float64) for w in wn]))
    return layers


def np_resize_bilinear(x, size):
    """(N, H, W, C) float64 -> (N, size, size, C): half-pixel centres, no
    antialias, edge clamp (cv2 INTER_LINEAR), written out separately from torch."""
    def taps(n_in):
        src = (np.arange(size) + 0.5) * (n_in / size) - 0.5
        src = np.maximum(src, 0.0)
        i0 = np.minimum(np.floor(src).astype(int), n_in - 1)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, src - i0
    r0, r1, ry = taps(x.shape[1])
    c0, c1, cx = taps(x.shape[2])
    rows = x[:, r0] * (1 - ry)[None, :, None, None] + x[:, r1] * ry[None, :, None, None]
    return (rows[:, :, c0] * (1 - cx)[None, None, :, None]
            + rows[:, :, c1] * cx[None, None, :, None])


def np_forward(layers, x):
    """Keras inference in NumPy float64, channels_last. x: (N, 32, 32, 3)."""
    act = {'relu': lambda v: np.maximum(v, 0.0), 'linear': lambda v: v,
           'softmax': lambda v: (lambda e: e / e.sum(-1, keepdims=True))(
               np.exp(v - v.max(-1, keepdims=True)))}
    for cls, cfg, w in layers:
        if cls == 'Conv2D':
            k, b = w
            kh_, kw_ = k.shape[:2]
            assert cfg['strides'] == [1, 1] and cfg['dilation_rate'] == [1, 1]
            if cfg['padding'] == 'same':          # odd kernel: symmetric zeros
                x = np.pad(x, ((0, 0), (kh_ // 2, kh_ // 2), (kw_ // 2, kw_ // 2), (0, 0)))
            ho, wo = x.shape[1] - kh_ + 1, x.shape[2] - kw_ + 1
            y = np.zeros(x.shape[:1] + (ho, wo, k.shape[3]))
            for i in range(kh_):
                for j in range(kw_):
                    y += x[:, i:i + ho, j:j + wo, :] @ k[i, j]
            x = act[cfg['activation']](y + b)
        elif cls == 'MaxPooling2D':
            p = cfg['pool_size'][0]
            assert cfg['pool_size'] == [p, p] and cfg['strides'] == [p, p]
            assert cfg['padding'] == 'valid'
            n, h, wd, c = x.shape
            x = x[:, :h // p * p, :wd // p * p].reshape(n, h // p, p, wd // p, p, c).max((2, 4))
        elif cls == 'Dropout':
            pass
        elif cls == 'Flatten':
            x = x.reshape(len(x), -1)
        elif cls == 'Dense':
            x = act[cfg['activation']](x @ w[0] + w[1])
        else:
            raise ValueError('unexpected layer ' + cls)
    return x


def verify(path, x_val_u8, y_val, track_val, log):
    layers = read_h5(path)
    xs = np_resize_bilinear(x_val_u8.astype(np.float64), SIZE) / 255.0
    # the torch resize used in training is the same operation
    xt = preprocess(x_val_u8).permute(0, 2, 3, 1).numpy().astype(np.float64)
    diff = float(np.abs(xs - xt).max())
    assert diff < 1e-5, 'resize mismatch %g' % diff
    probs = np.concatenate([np_forward(layers, xs[i:i + 256]) for i in range(0, len(xs), 256)])
    pred = probs.argmax(1)
    acc = float((pred == y_val).mean())
    tracks = np.unique(track_val)
    maj = []
    for t in tracks:
        m = track_val == t
        maj.append(np.bincount(pred[m], minlength=NUM_CLASSES).argmax() == y_val[m][0])
    per_class = [float((pred[y_val == c] == c).mean()) for c in range(NUM_CLASSES)]
    worst = sorted(range(NUM_CLASSES), key=lambda c: per_class[c])[:5]
    log('verify %s (NumPy float64 from the file): %d validation images of %d tracks: '
        'accuracy %.4f (%d wrong); per-track majority vote %.4f; resize vs torch max diff %.1e'
        % (path, len(y_val), len(tracks), acc, int((pred != y_val).sum()),
           float(np.mean(maj)), diff))
    log('  weakest classes: ' + ', '.join('%d %.3f' % (c, per_class[c]) for c in worst))
    return acc, probs


# ---------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--data', default=default_data_dir(), help='folder with train48_*.npy')
    ap.add_argument('--out', default=os.path.join(ROOT, 'models', 'gtsrb32.h5'))
    ap.add_argument('--labels', default=os.path.join(ROOT, 'models', 'gtsrb-labels.csv'))
    ap.add_argument('--epochs', type=int, default=32)
    ap.add_argument('--batch', type=int, default=64)
    ap.add_argument('--lr', type=float, default=1e-3)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--adv-eps', type=parse_eps, default=0.0,
                    help='adversarial training radius in 0..1 input units (0.5, 2/255); 0: off')
    ap.add_argument('--adv-norm', choices=('l2', 'linf'), default='l2')
    ap.add_argument('--adv-steps', type=int, default=1,
                    help='attack steps per batch (1: fast FGSM with random start)')
    ap.add_argument('--adv-step-size', type=parse_eps, default=None,
                    help='attack step (default 1.25 eps for 1 step, else 2.5 eps / steps)')
    ap.add_argument('--init', default=None,
                    help='start from the weights of this .h5 (fine-tuning) instead of at random')
    ap.add_argument('--min-acc', type=float, default=None,
                    help='fail below this validation accuracy (0.97; 0.90 with --adv-eps)')
    ap.add_argument('--verify', action='store_true', help='only verify an existing --out')
    ap.add_argument('--onnx-only', action='store_true',
                    help='only write --out with .onnx from the weights of the existing --out')
    args = ap.parse_args()
    onnx_out = os.path.splitext(args.out)[0] + '.onnx'
    if args.onnx_only:
        save_onnx(net_from_h5(args.out), onnx_out)
        print('wrote %s (%d bytes) from %s' % (onnx_out, os.path.getsize(onnx_out), args.out))
        return 0

    log = lambda s: print(s, flush=True)
    adv = None
    if args.adv_eps > 0:
        if args.adv_steps < 1:
            ap.error('--adv-steps must be at least 1')
        step = args.adv_step_size or (1.25 * args.adv_eps if args.adv_steps == 1
                                      else 2.5 * args.adv_eps / args.adv_steps)
        adv = (args.adv_norm, args.adv_eps, args.adv_steps, step)
        log('adversarial training: %s eps %.6g, %d step(s) of %.6g from a random start'
            % (args.adv_norm, args.adv_eps, args.adv_steps, step))
    min_acc = args.min_acc if args.min_acc is not None else (0.90 if adv else MIN_VAL_ACC)
    torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    torch.use_deterministic_algorithms(True)

    x, y, track = load_data(args.data)
    val = split_by_track(y, track)
    log('data: %d images, %d tracks; train %d images / %d tracks, validation %d images / '
        '%d tracks (split by track, 20%% per class, seed %d)'
        % (len(y), len(np.unique(track)), int((~val).sum()), len(np.unique(track[~val])),
           int(val.sum()), len(np.unique(track[val])), SEED))

    if not args.verify:
        src_train = to_nchw(x[~val])              # 48x48, augmented into 32x32 per batch
        x_val = preprocess(x[val])
        net = Net() if not args.init else net_from_h5(args.init).train()
        net = net.to(memory_format=torch.channels_last)     # faster convolutions on CPU
        if args.init:
            log('starting from the weights of %s: validation accuracy %.4f'
                % (args.init, float((predict(net, x_val) == y[val]).mean())))
        secs = train(net, src_train, y[~val], x_val, y[val], args.epochs, args.batch,
                     args.lr, log, adv)
        log('training: %d epochs in %.0f s (%.1f min), %d threads'
            % (args.epochs, secs, secs / 60, args.threads))
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        save_h5(net, args.out, args.lr)
        save_onnx(net_from_h5(args.out), onnx_out)
        write_labels(args.labels)
        log('wrote %s (%d bytes) and %s' % (args.out, os.path.getsize(args.out), args.labels))
        torch_acc = float((predict(net, x_val) == y[val]).mean())
        if adv:
            t0 = time.time()
            log('validation accuracy under 10-step PGD, %s eps %.6g: %.4f (%.0f s)'
                % (adv[0], adv[1], robust_accuracy(net, x_val, y[val], adv[0], adv[1]),
                   time.time() - t0))

    acc, probs = verify(args.out, x[val], y[val], track[val], log)
    tmp_labels = args.labels + '.check'
    write_labels(tmp_labels)
    with open(tmp_labels) as f1, open(args.labels) as f2:
        same = f1.read() == f2.read()
    os.remove(tmp_labels)
    if not same:
        log('FAIL: %s differs from the class names in this script' % args.labels)
        return 1
    if not args.verify:
        assert abs(acc - torch_acc) < 2e-3, 'file %.4f vs torch %.4f' % (acc, torch_acc)
    if acc < min_acc:
        log('FAIL: validation accuracy %.4f < %.2f' % (acc, min_acc))
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
