#!/usr/bin/env python3
"""PyTorch reference for the featviz benchmark: the same work as each
bench/<workload>.ini, written as a fair PyTorch user would write it.

    /usr/bin/python3 bench/torch_ref.py WORKLOAD MODEL.h5 DATA_DIR OUT_DIR

WORKLOAD: classviz48 | filterviz48 | activations48 | predict48 | dream512
(MODEL: the 48x48 GTSRB network of bench/make_data.py) or mnv2_filters |
mnv2_classes (MODEL: the shared Teachable Machine MobileNetV2, see MobileNetV2
below).

Tuning (same for every workload): torch.set_num_threads(2) (or the
BENCH_THREADS environment variable), float32, channels_last tensors and
weights (oneDNN convolutions), no autograd on the weights (requires_grad
False), torch.no_grad() where no gradient is needed. Debian's torch runs
matmul on the reference BLAS, so the Dense layers run as convolutions through
oneDNN: dense_1 as a 4x4 valid convolution over the (128, 4, 4) map (exactly
Keras' channels_first Flatten + Dense) and dense_2 as a 1x1 convolution.

The model is read from the same .h5 file as featviz reads (h5py), Keras
kernels (KH, KW, C, OC) -> torch (OC, C, KH, KW).
"""
import os
import sys
import time

T_START = time.time()

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

THREADS = int(os.environ.get('BENCH_THREADS', '2'))
torch.set_num_threads(THREADS)
CL = torch.channels_last


# ---------------------------------------------------------------------------
# The network (the layer list of bench/make_data.py)

class Net:
    """conv2d_1..6 (3x3, relu), max_pooling2d_1..3, flatten_1, dense_1 (relu),
    dense_2 (logits; softmax only for predict)."""

    CONVS = [('conv2d_1', 1), ('conv2d_2', 0), ('conv2d_3', 1), ('conv2d_4', 0),
             ('conv2d_5', 1), ('conv2d_6', 0)]  # (name, 'same' padding)

    def __init__(self, path):
        with h5py.File(path, 'r') as f:
            g = f['model_weights']

            def w(layer, role):
                return np.array(g[layer]['%s/%s:0' % (layer, role)])
            self.conv = []
            for name, same in self.CONVS:
                k = torch.from_numpy(w(name, 'kernel').transpose(3, 2, 0, 1).copy())
                b = torch.from_numpy(w(name, 'bias'))
                self.conv.append((name, k.contiguous(memory_format=CL), b, same))
            k1 = w('dense_1', 'kernel')  # (2048, 512), rows in (c, y, x) order
            self.d1 = torch.from_numpy(k1.T.reshape(512, 128, 4, 4).copy()).contiguous(memory_format=CL)
            self.b1 = torch.from_numpy(w('dense_1', 'bias'))
            k2 = w('dense_2', 'kernel')  # (512, 43)
            self.d2 = torch.from_numpy(k2.T.reshape(43, 512, 1, 1).copy()).contiguous(memory_format=CL)
            self.b2 = torch.from_numpy(w('dense_2', 'bias'))

    def forward(self, x, upto=None, hook=None):
        """x (B, 3, H, W) channels_last. Runs up to layer `upto` (after its
        relu); hook(name, tensor) sees every layer's output."""
        for i, (name, k, b, same) in enumerate(self.conv):
            x = F.relu(F.conv2d(x, k, b, padding=1 if same else 0))
            if hook:
                hook(name, x)
            if name == upto:
                return x
            if i % 2 == 1:
                x = F.max_pool2d(x, 2)
                if hook:
                    hook('max_pooling2d_%d' % (i // 2 + 1), x)
        if hook:
            hook('flatten_1', x.reshape(x.shape[0], -1))
        x = F.relu(F.conv2d(x, self.d1, self.b1))
        if hook:
            hook('dense_1', x.reshape(x.shape[0], -1))
        x = F.conv2d(x, self.d2, self.b2)
        return x.reshape(x.shape[0], -1)  # logits


# ---------------------------------------------------------------------------
# Image optimization (classviz48, filterviz48)

def roll_batch(u, dy, dx):
    """Per-image circular shift of u (B, H, W, C): out[b, y, x] = u[b, y - dy[b], x - dx[b]]
    (np.roll by (dy, dx)); one gather, differentiable."""
    B, H, W, _ = u.shape
    rows = (torch.arange(H)[None, :] - dy[:, None]) % H
    cols = (torch.arange(W)[None, :] - dx[:, None]) % W
    return u[torch.arange(B)[:, None, None], rows[:, :, None], cols[:, None, :]]


def optimize(net, n, objective, upto, steps=256, lr=0.05, l2=1e-3, jitter=2, seed=0):
    """n images (B, 48, 48, 3) from 0.01 * N(0,1); each step a random integer
    roll in [-jitter, jitter] per image and axis, maximize
    objective(acts)[b] - l2 * sum(u_b^2) with Adam(lr)."""
    g = torch.Generator().manual_seed(seed)
    u = (0.01 * torch.randn(n, 48, 48, 3, generator=g)).requires_grad_(True)
    opt = torch.optim.Adam([u], lr=lr)
    for _ in range(steps):
        dy = torch.randint(-jitter, jitter + 1, (n,), generator=g)
        dx = torch.randint(-jitter, jitter + 1, (n,), generator=g)
        v = roll_batch(u, dy, dx)
        x = v.permute(0, 3, 1, 2)  # (B, 3, H, W) view, channels_last memory
        acts = net.forward(x, upto=upto)
        obj = objective(acts).sum() - l2 * (u * u).sum()
        opt.zero_grad(set_to_none=True)
        (-obj).backward()
        opt.step()
    return u.detach()


def classviz48(net, data, out):
    n = 43
    idx = torch.arange(n)
    u = optimize(net, n, lambda logits: logits[idx, idx], None)
    np.save(os.path.join(out, 'classes.npy'), u.numpy())


def filterviz48(net, data, out):
    # Truncated at conv2d_3 (after its relu), as featviz plans only the layers
    # up to the target layer; the objective is the mean of image b's channel b.
    n = 64
    idx = torch.arange(n)
    u = optimize(net, n, lambda a: a[idx, idx].mean(dim=(1, 2)), 'conv2d_3')
    np.save(os.path.join(out, 'filters.npy'), u.numpy())


# ---------------------------------------------------------------------------
# Inference workloads

def activations48(net, data, out):
    """Every layer's output for 1000 images, batches of 100, written as one
    .npy per layer (Keras layout: (N, C, H, W) for channels_first maps,
    (N, D) for vectors), streamed: each file's header first, then each
    batch's rows appended (memory stays bounded by one batch)."""
    imgs = np.load(os.path.join(data, 'images1000.npy'))  # uint8 (N, 48, 48, 3)
    N, bs = imgs.shape[0], 100
    files = {}

    def hook(name, t):
        a = t.contiguous().numpy()  # NCHW order (Keras channels_first)
        if name not in files:
            f = open(os.path.join(out, name + '.npy'), 'wb')
            np.lib.format.write_array_header_1_0(f, {'descr': '<f4', 'fortran_order': False,
                                                     'shape': (N,) + a.shape[1:]})
            files[name] = f
        files[name].write(np.ascontiguousarray(a, dtype='<f4').tobytes())

    with torch.no_grad():
        for s in range(0, N, bs):
            x = torch.from_numpy(imgs[s:s + bs]).float().div_(255.0).permute(0, 3, 1, 2)
            logits = net.forward(x, hook=hook)
            hook('dense_2', torch.softmax(logits, 1))
    for f in files.values():
        f.close()


def predict48(net, data, out):
    from PIL import Image
    img = np.asarray(Image.open(os.path.join(data, 'one48.png')).convert('RGB'), dtype=np.float32)
    x = torch.from_numpy(img / 255.0).permute(2, 0, 1)[None].contiguous(memory_format=CL)
    with torch.no_grad():
        p = torch.softmax(net.forward(x), 1)[0]
    top = torch.topk(p, 5)
    for v, i in zip(top.values.tolist(), top.indices.tolist()):
        print('%5d %10.6f' % (i, v))


def dream512(net, data, out):
    """featviz's dream (src/jobs/dream.c) with its defaults: octaves 4, scale
    1.4, 10 steps each, layer conv2d_4, objective mean(y^2), roll jitter
    int(0.125 * max(H, W)), step lr / mean|g| with lr 0.01, clip to 0..1;
    bilinear resizes with half-pixel centres."""
    from PIL import Image
    u = torch.from_numpy(np.asarray(Image.open(os.path.join(data, 'dream512.png')).convert('RGB'),
                                    dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    h, w = u.shape[2], u.shape[3]
    octaves, scale, steps, lr = 4, 1.4, 10, 0.01
    sizes = [(int(round(h / scale ** k)), int(round(w / scale ** k))) for k in range(octaves)]
    g = torch.Generator().manual_seed(0)
    detail = None

    def resize(t, hw):
        return F.interpolate(t, size=hw, mode='bilinear', align_corners=False)
    for k in range(octaves - 1, -1, -1):
        H, W = sizes[k]
        base = resize(u, (H, W))
        src = base + (resize(detail, (H, W)) if detail is not None else 0)
        jit = int(0.125 * max(H, W))
        for _ in range(steps):
            oy, ox = [int(v) for v in torch.randint(-jit, jit + 1, (2,), generator=g)]
            x = torch.roll(src, (oy, ox), (2, 3)).contiguous(memory_format=CL).requires_grad_(True)
            y = net.forward(x, upto='conv2d_4')
            (y * y).mean().backward()
            gr = torch.roll(x.grad, (-oy, -ox), (2, 3))
            step = lr / (gr.abs().mean().item() + 1e-8)
            src = (src + step * gr).clamp_(0.0, 1.0)
        detail = src - base
        if k == 0:
            u = src
    np.save(os.path.join(out, 'dream.npy'), u[0].permute(1, 2, 0).numpy())


# ---------------------------------------------------------------------------
# The real-size network: torchvision's mobilenet_v2(width_mult=0.35) with the
# weights of ../shared/keras-real/teachable_nested_mobilenetv2_tfkeras2.4_224.h5

class MobileNetV2:
    """torchvision.models.mobilenet_v2(width_mult=0.35), the same layer sizes as
    Keras' MobileNetV2(alpha=0.35), loaded from the Keras .h5 (h5py): the
    Conv2D / DepthwiseConv2D / BatchNormalization layers of Keras come in the
    same order as torchvision's Conv2d / BatchNorm2d modules. Differences
    made to compute what Keras computes: the stride-2 convolutions pad
    (0, 1) on each axis (Keras' ZeroPadding2D 'correct_pad' before a 'valid'
    conv) instead of 1 on each side; BatchNorm eps 1e-3; the head is
    GlobalAveragePooling + Dense(100, relu) + Dense(4, no bias) (logits).
    Tuned: eval mode, each BatchNorm folded into its convolution
    (torch.nn.utils.fusion.fuse_conv_bn_eval, as deployment does), channels_last
    weights, requires_grad False on every weight."""

    def __init__(self, path):
        import torchvision
        from torch import nn
        from torch.nn.utils.fusion import fuse_conv_bn_eval
        with h5py.File(path, 'r') as f:
            g = f['model_weights']
            base, head = g['sequential_1'], g['sequential_3']

            def names(grp):
                return [n.decode() if isinstance(n, bytes) else n for n in grp.attrs['weight_names']]
            kw = {}
            for grp in (base, head):
                for n in names(grp):
                    kw[n] = np.array(grp[n])
            convs = [n.split('/')[0] for n in names(base)
                     if n.endswith('/kernel:0') or n.endswith('/depthwise_kernel:0')]
            bns = [n.split('/')[0] for n in names(base) if n.endswith('/gamma:0')]
        m = torchvision.models.mobilenet_v2(width_mult=0.35)
        m.eval()
        tconv = [x for x in m.features.modules() if isinstance(x, nn.Conv2d)]
        tbn = [x for x in m.features.modules() if isinstance(x, nn.BatchNorm2d)]
        assert len(tconv) == len(convs) == len(tbn) == len(bns), (len(tconv), len(convs))
        for c, name in zip(tconv, convs):
            k = kw.get(name + '/kernel:0')
            if k is None:  # depthwise (KH, KW, C, 1) -> (C, 1, KH, KW)
                k = kw[name + '/depthwise_kernel:0'].transpose(2, 3, 0, 1)
            else:  # (KH, KW, C, OC) -> (OC, C, KH, KW)
                k = k.transpose(3, 2, 0, 1)
            assert tuple(c.weight.shape) == k.shape, (name, tuple(c.weight.shape), k.shape)
            c.weight.data = torch.from_numpy(np.ascontiguousarray(k))
        for b, name in zip(tbn, bns):
            b.weight.data = torch.from_numpy(kw[name + '/gamma:0'])
            b.bias.data = torch.from_numpy(kw[name + '/beta:0'])
            b.running_mean.data = torch.from_numpy(kw[name + '/moving_mean:0'])
            b.running_var.data = torch.from_numpy(kw[name + '/moving_variance:0'])
            b.eps = 1e-3
        # fold each BatchNorm into the conv before it; stride-2 convs pad as Keras
        def fold(seq):
            mods = list(seq.children())
            out, i = [], 0
            while i < len(mods):
                if isinstance(mods[i], nn.Conv2d) and i + 1 < len(mods) and isinstance(mods[i + 1], nn.BatchNorm2d):
                    c = fuse_conv_bn_eval(mods[i], mods[i + 1])
                    if c.stride == (2, 2):
                        c.padding = (0, 0)
                        out += [nn.ZeroPad2d((0, 1, 0, 1)), c]
                    else:
                        out.append(c)
                    i += 2
                elif isinstance(mods[i], nn.Sequential):
                    out.append(fold(mods[i]))
                    i += 1
                elif hasattr(mods[i], 'conv') and isinstance(mods[i].conv, nn.Sequential):
                    mods[i].conv = fold(mods[i].conv)  # an InvertedResidual keeps its skip
                    out.append(mods[i])
                    i += 1
                else:
                    out.append(mods[i])
                    i += 1
            return nn.Sequential(*out)
        feats = fold(m.features)
        self.blocks = list(feats.children())
        self.d1 = nn.Linear(1280, 100)
        self.d1.weight.data = torch.from_numpy(kw['dense_Dense1/kernel:0'].T.copy())
        self.d1.bias.data = torch.from_numpy(kw['dense_Dense1/bias:0'])
        self.d2 = nn.Linear(100, 4, bias=False)
        self.d2.weight.data = torch.from_numpy(kw['dense_Dense2/kernel:0'].T.copy())
        for mod in self.blocks + [self.d1, self.d2]:
            mod.eval()
            mod.to(memory_format=CL)
            for p in mod.parameters():
                p.requires_grad_(False)

    def forward(self, x, upto=None):
        """x (B, 3, 224, 224) channels_last, already preprocessed. upto =
        'block_6_expand_relu': the output of block 6's expansion (after ReLU6),
        block k being torchvision's features[k + 1]; else the logits."""
        if upto == 'block_6_expand_relu':
            for b in self.blocks[:7]:
                x = b(x)
            return self.blocks[7].conv[0](x)
        for b in self.blocks:
            x = b(x)
        x = x.mean(dim=(2, 3))
        return self.d2(torch.relu(self.d1(x)))


def optimize224(net, n, objective, upto, steps=128, lr=0.05, jitter=2, seed=0):
    """As optimize(), 224 x 224, no L2 term, model input x = 2u - 1 (Teachable
    Machine's x / 127.5 - 1 of the display values 255 u)."""
    g = torch.Generator().manual_seed(seed)
    u = (0.01 * torch.randn(n, 224, 224, 3, generator=g)).requires_grad_(True)
    opt = torch.optim.Adam([u], lr=lr)
    for _ in range(steps):
        dy = torch.randint(-jitter, jitter + 1, (n,), generator=g)
        dx = torch.randint(-jitter, jitter + 1, (n,), generator=g)
        v = roll_batch(u, dy, dx)
        x = (2.0 * v - 1.0).permute(0, 3, 1, 2)  # (B, 3, H, W) view, channels_last memory
        obj = objective(net.forward(x, upto=upto)).sum()
        opt.zero_grad(set_to_none=True)
        (-obj).backward()
        opt.step()
    return u.detach()


def mnv2_filters(net, data, out):
    # channels 0..31 of block_6_expand_relu, image b maximizes the mean of channel b
    n = 32
    idx = torch.arange(n)
    u = optimize224(net, n, lambda a: a[idx, idx].mean(dim=(1, 2)), 'block_6_expand_relu')
    np.save(os.path.join(out, 'filters.npy'), u.numpy())


def mnv2_classes(net, data, out):
    n = 4
    idx = torch.arange(n)
    u = optimize224(net, n, lambda logits: logits[idx, idx], None)
    np.save(os.path.join(out, 'classes.npy'), u.numpy())


WORKLOADS = {f.__name__: f for f in (classviz48, filterviz48, activations48, predict48, dream512,
                                     mnv2_filters, mnv2_classes)}


def main():
    if len(sys.argv) != 5 or sys.argv[1] not in WORKLOADS:
        sys.exit('usage: torch_ref.py {%s} MODEL.h5 DATA_DIR OUT_DIR' % '|'.join(WORKLOADS))
    name, model, data, out = sys.argv[1:]
    os.makedirs(out, exist_ok=True)
    net = MobileNetV2(model) if name.startswith('mnv2_') else Net(model)
    WORKLOADS[name](net, data, out)
    if os.environ.get('BENCH_VERBOSE'):
        print('%s: %.3f s in python' % (name, time.time() - T_START), file=sys.stderr)


if __name__ == '__main__':
    main()
