#!/usr/bin/env python3
"""Golden fixtures for tests/test_golden.c: small Keras models written in the
Keras 2.2.4 .h5 layout (one in the tf.keras 2.4.0 layout), with the expected
outputs, intermediate activations and input gradients computed by an
independent PyTorch float64 forward pass.

    /usr/bin/python3 tests/tools/make_golden.py      # rewrites tests/data/golden/

Deterministic (fixed seeds). Keras is not needed: keras_h5.py writes the files.
Every model is written, read back from the .h5 (model_config + weight_names, as a
loader would), and the reference is computed from what was read back. A second
implementation in NumPy (sliding windows in NHWC, no torch) recomputes every
forward pass and checks the torch gradients by central differences; a float32
torch run checks that each fixture is well conditioned (no kink of ReLU / max /
clip so close that float32 rounding would cross it).

Semantics that are easy to get wrong and are written here on purpose:
  * 'same' padding puts the extra row/column at the bottom/right (TensorFlow).
  * AveragePooling2D 'same' divides by the number of non-padding cells.
  * Flatten(data_format='channels_first') transposes (C,H,W) -> (H,W,C) first (Keras >= 2.1.6).
  * A layer's data_format is applied literally to whatever 4-D tensor it gets.
  * UpSampling2D(interpolation='bilinear'): Keras 2.2.4 calls the TF1
    tf.image.resize_bilinear (align_corners=False, half_pixel_centers=False):
    src = dst * in/out. tf.keras 2.4 calls tf.image.resize: half-pixel centres
    (= torch align_corners=False). The file's keras_version decides.
  * hard_sigmoid (Keras 2) = clip(0.2 x + 0.5, 0, 1).
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import keras_h5 as kh  # noqa: E402

OUT = os.path.join(HERE, '..', 'data', 'golden')

# ---------------------------------------------------------------------------
# Model description -> .h5

class Builder:
    def __init__(self, name, input_shape, functional=False, tf24=False, seed=0, batch=2,
                 declared_shape=None):
        self.name = name
        self.functional = functional
        self.tf24 = tf24
        self.rng = np.random.default_rng(seed)
        self.batch = batch
        self.namer = kh.Namer(tf24)
        self.input_shape = list(input_shape)           # actual (Keras order, no batch)
        self.declared = [None] + list(declared_shape or input_shape)
        self.layers = []                                # dict(name, cls, cfg, weights, inbound)
        self.shapes = {}                                # name -> Keras shape (no batch)
        self.input_name = self.namer('InputLayer') if functional else '__input__'
        self.shapes[self.input_name] = tuple(input_shape)
        self.last = self.input_name
        self.intermediates = []
        self.training = False

    # weights ---------------------------------------------------------------
    def _w(self, shape, scale):
        return (self.rng.standard_normal(shape) * scale).astype(np.float32)

    def _u(self, shape, lo, hi):
        return self.rng.uniform(lo, hi, shape).astype(np.float32)

    def _make_weights(self, cls, cfg, in_shapes, gain):
        s = in_shapes[0]
        cf = cfg.get('data_format') == 'channels_first'
        roles = kh.weight_roles(cls, cfg)
        w = {}
        if cls in ('Conv2D', 'SeparableConv2D', 'DepthwiseConv2D'):
            cin = s[0] if cf else s[-1]
            kh_, kw_ = cfg['kernel_size']
            if cls == 'Conv2D':
                w['kernel'] = self._w((kh_, kw_, cin, cfg['filters']), gain / math.sqrt(kh_ * kw_ * cin))
                nb = cfg['filters']
            else:
                m = cfg['depth_multiplier']
                w['depthwise_kernel'] = self._w((kh_, kw_, cin, m), gain / math.sqrt(kh_ * kw_))
                nb = cin * m
                if cls == 'SeparableConv2D':
                    w['pointwise_kernel'] = self._w((1, 1, cin * m, cfg['filters']),
                                                    1.0 / math.sqrt(cin * m))
                    nb = cfg['filters']
            w['bias'] = self._u((nb,), -0.2, 0.2)
        elif cls == 'Dense':
            w['kernel'] = self._w((s[-1], cfg['units']), gain / math.sqrt(s[-1]))
            w['bias'] = self._u((cfg['units'],), -0.2, 0.2)
        elif cls == 'BatchNormalization':
            ax = cfg['axis'][0] if isinstance(cfg['axis'], list) else cfg['axis']
            d = s[ax - 1] if ax > 0 else s[ax]
            w['gamma'] = self._u((d,), 0.6, 1.4)
            w['beta'] = self._u((d,), -0.3, 0.3)
            w['moving_mean'] = self._u((d,), -0.3, 0.3)
            w['moving_variance'] = self._u((d,), 0.4, 1.6)
        elif cls == 'PReLU':
            shape = list(s)
            for a in cfg['shared_axes'] or []:
                shape[a - 1] = 1
            w['alpha'] = self._u(tuple(shape), 0.05, 0.5)
        return [(r, w[r]) for r in roles]

    # layers ----------------------------------------------------------------
    def add(self, cls, inputs=None, gain=1.0, keep=False, **kw):
        name = self.namer(cls)
        if inputs is None:
            inputs = [self.last]
        first = not self.functional and not self.layers
        cfg = kh.layer_config(cls, name, tf24=self.tf24,
                              batch_input_shape=self.declared if first else None, **kw)
        in_shapes = [self.shapes[i] for i in inputs]
        weights = self._make_weights(cls, cfg, in_shapes, gain)
        # shape inference with the reference itself, on a dummy batch of 1
        xs = [torch.zeros((1,) + tuple(sh), dtype=torch.float64) for sh in in_shapes]
        wd = {r: torch.from_numpy(a.astype(np.float64)) for r, a in weights}
        _, y = torch_layer(cls, cfg, wd, xs, '2.4.0' if self.tf24 else '2.2.4')
        self.shapes[name] = tuple(y.shape[1:])
        self.layers.append(dict(name=name, cls=cls, cfg=cfg, weights=weights, inbound=inputs))
        self.last = name
        if keep:
            self.intermediates.append(name)
        return name

    # writing ---------------------------------------------------------------
    def model_config(self):
        if not self.functional:
            layers = [{'class_name': L['cls'], 'config': L['cfg']} for L in self.layers]
            if self.tf24:
                first = self.layers[0]['name']
                layers.insert(0, {'class_name': 'InputLayer', 'config': kh.input_layer_config(
                    first + '_input', self.declared, tf24=True)})
            return {'class_name': 'Sequential',
                    'config': {'name': 'sequential' if self.tf24 else 'sequential_1',
                               'layers': layers}}
        layers = [{'name': self.input_name, 'class_name': 'InputLayer',
                   'config': kh.input_layer_config(self.input_name, self.declared),
                   'inbound_nodes': []}]
        for L in self.layers:
            layers.append({'name': L['name'], 'class_name': L['cls'], 'config': L['cfg'],
                           'inbound_nodes': [[[i, 0, 0, {}] for i in L['inbound']]]})
        return {'class_name': 'Model',
                'config': {'name': 'model_1', 'layers': layers,
                           'input_layers': [[self.input_name, 0, 0]],
                           'output_layers': [[self.last, 0, 0]]}}

    def save(self, path):
        lw = []
        if self.functional:
            lw.append((self.input_name, []))
        params = []
        for L in self.layers:
            ws = [('%s/%s:0' % (L['name'], r), a) for r, a in L['weights']]
            params += [a for _, a in ws]
            lw.append((L['name'], ws))
        tc = kh.adam_training_config() if self.training else None
        ow = kh.adam_weights(params, self.rng) if self.training else None
        kh.save_model(path, self.model_config(), lw,
                      keras_version='2.4.0' if self.tf24 else '2.2.4',
                      training_config=tc, optimizer_weights=ow)


# ---------------------------------------------------------------------------
# Reading a model back (as a loader would)

def parse_model(path):
    attrs, cfg, weights, layer_names = kh.load_model(path)
    c = cfg['config']
    nodes = []
    if cfg['class_name'] == 'Sequential':
        layers = c['layers'] if isinstance(c, dict) else c
        prev = '__input__'
        decl = None
        for L in layers:
            lc = L['config']
            if decl is None:
                decl = lc['batch_input_shape']
            if L['class_name'] == 'InputLayer':
                continue
            nodes.append((lc['name'], L['class_name'], lc, [prev]))
            prev = lc['name']
        inp, out = '__input__', prev
    else:
        for L in c['layers']:
            if L['class_name'] == 'InputLayer':
                decl = L['config']['batch_input_shape']
                continue
            (node,) = L['inbound_nodes']
            nodes.append((L['name'], L['class_name'], L['config'], [n[0] for n in node]))
        (inp,) = [x[0] for x in c['input_layers']]
        (out,) = [x[0] for x in c['output_layers']]
    model = dict(version=attrs['keras_version'], nodes=nodes, input=inp, output=out,
                 declared=decl, weights={}, layer_names=layer_names)
    for name, cls, lc, _ in nodes:
        ws = weights[name]
        roles = kh.weight_roles(cls, lc)
        assert [w.split('/')[-1].split(':')[0] for w, _ in ws] == roles, (name, ws)
        for w, a in ws:
            assert w.startswith(name + '/') and a.dtype == np.float32
        model['weights'][name] = dict(zip(roles, [a for _, a in ws]))
    return model


# ---------------------------------------------------------------------------
# Reference 1: PyTorch (float64), tensors kept in Keras layout

SELU_A = 1.6732632423543772848170429916717
SELU_S = 1.0507009873554804934193349852946


def t_act(name, x):
    if name == 'linear':
        return x
    if name == 'relu':
        return torch.relu(x)
    if name == 'tanh':
        return torch.tanh(x)
    if name == 'sigmoid':
        return torch.sigmoid(x)
    if name == 'elu':
        return torch.where(x > 0, x, torch.expm1(x))
    if name == 'selu':
        return SELU_S * torch.where(x > 0, x, SELU_A * torch.expm1(x))
    if name == 'softplus':
        return torch.log1p(torch.exp(x))
    if name == 'softsign':
        return x / (1 + torch.abs(x))
    if name == 'swish':
        return x * torch.sigmoid(x)
    if name == 'gelu':
        return 0.5 * x * (1 + torch.erf(x / math.sqrt(2.0)))
    if name == 'exponential':
        return torch.exp(x)
    if name == 'hard_sigmoid':
        return torch.clamp(0.2 * x + 0.5, 0.0, 1.0)
    if name == 'softmax':
        return torch.softmax(x, dim=-1)
    raise ValueError(name)


def same_pads(n, k, s, d=1):
    """TensorFlow 'same': out = ceil(n/s), the odd pixel goes to the end."""
    eff = (k - 1) * d + 1
    out = -(-n // s)
    total = max((out - 1) * s + eff - n, 0)
    return total // 2, total - total // 2


def nchw(x, cf):
    return x if cf else x.permute(0, 3, 1, 2)


def from_nchw(y, cf):
    return y if cf else y.permute(0, 2, 3, 1)


def t_pad_same(x, k, s, d, value=0.0):
    t, b = same_pads(x.shape[2], k[0], s[0], d[0])
    l, r = same_pads(x.shape[3], k[1], s[1], d[1])
    return F.pad(x, (l, r, t, b), value=value)


def t_legacy_bilinear(x, fh, fw):
    """TF1 resize_bilinear(align_corners=False, half_pixel_centers=False), NCHW."""
    def axis(t, dim, f):
        n = t.shape[dim]
        src = torch.arange(n * f, dtype=torch.float64) / f     # dst * in/out
        lo = torch.floor(src).long()
        hi = torch.clamp(lo + 1, max=n - 1)
        fr = (src - lo.to(torch.float64)).to(t.dtype)
        shape = [1] * t.dim()
        shape[dim] = -1
        fr = fr.reshape(shape)
        return t.index_select(dim, lo) * (1 - fr) + t.index_select(dim, hi) * fr
    return axis(axis(x, 2, fh), 3, fw)


def t_relu_layer(x, cfg):
    """Keras 2.2.4 K.relu(x, alpha=negative_slope, max_value, threshold)."""
    a, mv, th = cfg['negative_slope'], cfg['max_value'], cfg['threshold']
    y = torch.where(x > th, x, torch.zeros_like(x))
    if mv is not None:
        y = torch.clamp(y, 0.0, mv)
    if a != 0:
        y = y - a * torch.relu(th - x)
    return y


def torch_layer(cls, cfg, W, xs, version):
    """Returns (pre-activation, output), Keras layout."""
    x = xs[0]
    cf = cfg.get('data_format') == 'channels_first'
    if cls in ('Conv2D', 'DepthwiseConv2D', 'SeparableConv2D'):
        xn = nchw(x, cf)
        k = cfg['kernel_size']
        s, d = cfg['strides'], cfg['dilation_rate']
        if cfg['padding'] == 'same':
            xn = t_pad_same(xn, k, s, d)
        b = W.get('bias')
        if cls == 'Conv2D':
            y = F.conv2d(xn, W['kernel'].permute(3, 2, 0, 1), b, stride=s, dilation=d)
        else:
            dk = W['depthwise_kernel']
            c, m = dk.shape[2], dk.shape[3]
            wt = dk.reshape(k[0], k[1], c * m).permute(2, 0, 1).unsqueeze(1)
            y = F.conv2d(xn, wt, b if cls == 'DepthwiseConv2D' else None, stride=s,
                         dilation=d, groups=c)
            if cls == 'SeparableConv2D':
                y = F.conv2d(y, W['pointwise_kernel'].permute(3, 2, 0, 1), b)
        pre = from_nchw(y, cf)
        return pre, t_act(cfg['activation'], pre)
    if cls == 'Dense':
        pre = x @ W['kernel']
        if 'bias' in W:
            pre = pre + W['bias']
        return pre, t_act(cfg['activation'], pre)
    if cls in ('MaxPooling2D', 'AveragePooling2D'):
        xn = nchw(x, cf)
        k, s = cfg['pool_size'], cfg['strides']
        if cls == 'MaxPooling2D':
            if cfg['padding'] == 'same':
                xn = t_pad_same(xn, k, s, (1, 1), value=-math.inf)
            y = F.max_pool2d(xn, k, s)
        elif cfg['padding'] == 'same':
            num = F.avg_pool2d(t_pad_same(xn, k, s, (1, 1)), k, s)
            den = F.avg_pool2d(t_pad_same(torch.ones_like(xn), k, s, (1, 1)), k, s)
            y = num / den
        else:
            y = F.avg_pool2d(xn, k, s)
        y = from_nchw(y, cf)
        return y, y
    if cls in ('GlobalAveragePooling2D', 'GlobalMaxPooling2D'):
        dims = (2, 3) if cf else (1, 2)
        y = x.mean(dim=dims) if cls == 'GlobalAveragePooling2D' else x.amax(dim=dims)
        return y, y
    if cls == 'BatchNormalization':
        ax = cfg['axis'][0] if isinstance(cfg['axis'], list) else cfg['axis']
        shape = [1] * x.dim()
        shape[ax] = -1
        g = W.get('gamma', torch.ones_like(W['moving_mean']))
        b = W.get('beta', torch.zeros_like(W['moving_mean']))
        y = ((x - W['moving_mean'].reshape(shape)) / torch.sqrt(W['moving_variance'].reshape(shape)
                                                               + cfg['epsilon'])
             * g.reshape(shape) + b.reshape(shape))
        return y, y
    if cls == 'ZeroPadding2D':
        (t, b), (l, r) = cfg['padding']
        y = from_nchw(F.pad(nchw(x, cf), (l, r, t, b)), cf)
        return y, y
    if cls == 'Cropping2D':
        (t, b), (l, r) = cfg['cropping']
        xn = nchw(x, cf)
        y = from_nchw(xn[:, :, t:xn.shape[2] - b, l:xn.shape[3] - r], cf)
        return y, y
    if cls == 'UpSampling2D':
        fh, fw = cfg['size']
        xn = nchw(x, cf)
        if cfg['interpolation'] == 'nearest':
            y = xn.repeat_interleave(fh, dim=2).repeat_interleave(fw, dim=3)
        elif version.startswith('2.4'):
            y = F.interpolate(xn, scale_factor=(fh, fw), mode='bilinear', align_corners=False)
        else:
            y = t_legacy_bilinear(xn, fh, fw)
        y = from_nchw(y, cf)
        return y, y
    if cls == 'Flatten':
        if cfg['data_format'] == 'channels_first' and x.dim() > 2:
            x = x.permute(0, *range(2, x.dim()), 1)
        y = x.reshape(x.shape[0], -1)
        return y, y
    if cls == 'Reshape':
        y = x.reshape(x.shape[0], *cfg['target_shape'])
        return y, y
    if cls == 'Dropout':
        return x, x
    if cls == 'Activation':
        return x, t_act(cfg['activation'], x)
    if cls == 'ReLU':
        return x, t_relu_layer(x, cfg)
    if cls == 'LeakyReLU':
        return x, torch.where(x > 0, x, cfg['alpha'] * x)
    if cls == 'ELU':
        return x, torch.where(x > 0, x, cfg['alpha'] * torch.expm1(x))
    if cls == 'PReLU':
        return x, torch.relu(x) - W['alpha'] * torch.relu(-x)
    if cls == 'Softmax':
        return x, torch.softmax(x, dim=cfg['axis'])
    if cls == 'Add':
        return x, sum(xs[1:], x)
    if cls == 'Subtract':
        (a, b) = xs
        return x, a - b
    if cls == 'Multiply':
        y = x
        for o in xs[1:]:
            y = y * o
        return y, y
    if cls == 'Average':
        y = sum(xs[1:], x) / len(xs)
        return y, y
    if cls in ('Maximum', 'Minimum'):
        y = x
        for o in xs[1:]:
            y = torch.maximum(y, o) if cls == 'Maximum' else torch.minimum(y, o)
        return y, y
    if cls == 'Concatenate':
        y = torch.cat(xs, dim=cfg['axis'])
        return y, y
    raise ValueError(cls)


def torch_forward(model, x, dtype=torch.float64):
    vals = {model['input']: x}
    pres = {}
    for name, cls, cfg, inb in model['nodes']:
        W = {r: torch.from_numpy(a).to(dtype) for r, a in model['weights'][name].items()}
        pres[name], vals[name] = torch_layer(cls, cfg, W, [vals[i] for i in inb],
                                             model['version'])
    return vals, pres


# ---------------------------------------------------------------------------
# Reference 2: NumPy (float64), NHWC sliding windows, no torch

def n_act(name, x):
    f = {'linear': lambda v: v, 'relu': lambda v: np.maximum(v, 0), 'tanh': np.tanh,
         'sigmoid': lambda v: 1 / (1 + np.exp(-v)),
         'elu': lambda v: np.where(v > 0, v, np.exp(np.minimum(v, 0)) - 1),
         'selu': lambda v: SELU_S * np.where(v > 0, v, SELU_A * (np.exp(np.minimum(v, 0)) - 1)),
         'softplus': lambda v: np.log(1 + np.exp(v)), 'softsign': lambda v: v / (1 + abs(v)),
         'swish': lambda v: v / (1 + np.exp(-v)),
         'gelu': lambda v: 0.5 * v * (1 + np.vectorize(math.erf)(v / math.sqrt(2))),
         'exponential': np.exp, 'hard_sigmoid': lambda v: np.clip(0.2 * v + 0.5, 0, 1)}
    if name == 'softmax':
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    return f[name](x)


def n_softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def n_windows(x, k, s, d, padding, fill):
    """x (N,H,W,C). Yields (i, j, view (N,OH,OW,C)) for each kernel tap, TF padding."""
    n, h, w, c = x.shape
    eh, ew = (k[0] - 1) * d[0] + 1, (k[1] - 1) * d[1] + 1
    if padding == 'same':
        oh, ow = -(-h // s[0]), -(-w // s[1])
        ph = max((oh - 1) * s[0] + eh - h, 0)
        pw = max((ow - 1) * s[1] + ew - w, 0)
        top, left = ph // 2, pw // 2
    else:
        oh, ow = (h - eh) // s[0] + 1, (w - ew) // s[1] + 1
        ph = pw = top = left = 0
    xp = np.full((n, h + ph, w + pw, c), fill)
    xp[:, top:top + h, left:left + w] = x
    for i in range(k[0]):
        for j in range(k[1]):
            r0, c0 = i * d[0], j * d[1]
            yield i, j, xp[:, r0:r0 + (oh - 1) * s[0] + 1:s[0], c0:c0 + (ow - 1) * s[1] + 1:s[1]]


def to_nhwc(x, cf):
    return np.transpose(x, (0, 2, 3, 1)) if cf else x


def from_nhwc(y, cf):
    return np.transpose(y, (0, 3, 1, 2)) if cf else y


def n_bilinear_axis(n, f, half_pixel):
    """(n*f, n) interpolation matrix of one axis."""
    m = np.zeros((n * f, n))
    for o in range(n * f):
        src = (o + 0.5) / f - 0.5 if half_pixel else o / f
        src = max(src, 0.0)
        lo = min(int(math.floor(src)), n - 1)
        hi = min(lo + 1, n - 1)
        fr = src - lo
        m[o, lo] += 1 - fr
        m[o, hi] += fr
    return m


def numpy_layer(cls, cfg, W, xs, version):
    x = xs[0]
    cf = cfg.get('data_format') == 'channels_first'
    if cls in ('Conv2D', 'DepthwiseConv2D', 'SeparableConv2D'):
        xh = to_nhwc(x, cf)
        k, s, d = cfg['kernel_size'], cfg['strides'], cfg['dilation_rate']
        acc = None
        for i, j, v in n_windows(xh, k, s, d, cfg['padding'], 0.0):
            if cls == 'Conv2D':
                t = np.einsum('nhwc,co->nhwo', v, W['kernel'][i, j])
            else:
                dk = W['depthwise_kernel'][i, j]          # (C, M)
                t = (v[..., :, None] * dk).reshape(v.shape[:3] + (-1,))   # channel c*M+m
            acc = t if acc is None else acc + t
        if cls == 'SeparableConv2D':
            acc = np.einsum('nhwc,co->nhwo', acc, W['pointwise_kernel'][0, 0])
        if 'bias' in W:
            acc = acc + W['bias']
        pre = from_nhwc(acc, cf)
        return pre, n_act(cfg['activation'], pre)
    if cls == 'Dense':
        pre = np.tensordot(x, W['kernel'], axes=([x.ndim - 1], [0])) + W.get('bias', 0.0)
        return pre, n_act(cfg['activation'], pre)
    if cls in ('MaxPooling2D', 'AveragePooling2D'):
        xh = to_nhwc(x, cf)
        k, s, p = cfg['pool_size'], cfg['strides'], cfg['padding']
        if cls == 'MaxPooling2D':
            y = None
            for _, _, v in n_windows(xh, k, s, (1, 1), p, -np.inf):
                y = v.copy() if y is None else np.maximum(y, v)
        else:
            tot = cnt = 0
            for _, _, v in n_windows(xh, k, s, (1, 1), p, np.nan):
                tot = tot + np.nan_to_num(v)
                cnt = cnt + ~np.isnan(v)
            y = tot / cnt
        y = from_nhwc(y, cf)
        return y, y
    if cls in ('GlobalAveragePooling2D', 'GlobalMaxPooling2D'):
        xh = to_nhwc(x, cf)
        y = xh.mean(axis=(1, 2)) if cls == 'GlobalAveragePooling2D' else xh.max(axis=(1, 2))
        return y, y
    if cls == 'BatchNormalization':
        ax = cfg['axis'][0] if isinstance(cfg['axis'], list) else cfg['axis']
        xm = np.moveaxis(x, ax, -1)
        mean, var = W['moving_mean'], W['moving_variance']
        y = (xm - mean) / np.sqrt(var + cfg['epsilon'])
        y = y * W.get('gamma', 1.0) + W.get('beta', 0.0)
        y = np.moveaxis(y, -1, ax)
        return y, y
    if cls == 'ZeroPadding2D':
        (t, b), (l, r) = cfg['padding']
        xh = to_nhwc(x, cf)
        y = np.zeros((xh.shape[0], xh.shape[1] + t + b, xh.shape[2] + l + r, xh.shape[3]))
        y[:, t:t + xh.shape[1], l:l + xh.shape[2]] = xh
        y = from_nhwc(y, cf)
        return y, y
    if cls == 'Cropping2D':
        (t, b), (l, r) = cfg['cropping']
        xh = to_nhwc(x, cf)
        y = from_nhwc(xh[:, t:xh.shape[1] - b, l:xh.shape[2] - r], cf)
        return y, y
    if cls == 'UpSampling2D':
        fh, fw = cfg['size']
        xh = to_nhwc(x, cf)
        if cfg['interpolation'] == 'nearest':
            y = np.repeat(np.repeat(xh, fh, axis=1), fw, axis=2)
        else:
            hp = version.startswith('2.4')
            mh = n_bilinear_axis(xh.shape[1], fh, hp)
            mw = n_bilinear_axis(xh.shape[2], fw, hp)
            y = np.einsum('ph,nhwc,qw->npqc', mh, xh, mw)
        y = from_nhwc(y, cf)
        return y, y
    if cls == 'Flatten':
        if cfg['data_format'] == 'channels_first' and x.ndim == 4:
            x = np.transpose(x, (0, 2, 3, 1))
        y = x.reshape(x.shape[0], -1)
        return y, y
    if cls == 'Reshape':
        y = x.reshape((x.shape[0],) + tuple(cfg['target_shape']))
        return y, y
    if cls == 'Dropout':
        return x, x
    if cls == 'Activation':
        return x, n_act(cfg['activation'], x)
    if cls == 'ReLU':
        a, mv, th = cfg['negative_slope'], cfg['max_value'], cfg['threshold']
        y = np.where(x >= (mv if mv is not None else np.inf), mv if mv is not None else 0,
                     np.where(x > th, x, a * (x - th)))
        return x, y
    if cls == 'LeakyReLU':
        return x, np.maximum(x, cfg['alpha'] * x)
    if cls == 'ELU':
        return x, np.where(x > 0, x, cfg['alpha'] * (np.exp(np.minimum(x, 0)) - 1))
    if cls == 'PReLU':
        return x, np.where(x > 0, x, W['alpha'] * x)
    if cls == 'Softmax':
        return x, n_softmax(x, cfg['axis'])
    if cls == 'Add':
        return x, np.sum(xs, axis=0)
    if cls == 'Subtract':
        return x, xs[0] - xs[1]
    if cls == 'Multiply':
        y = np.prod(xs, axis=0)
        return y, y
    if cls == 'Average':
        y = np.mean(xs, axis=0)
        return y, y
    if cls == 'Maximum':
        y = np.max(xs, axis=0)
        return y, y
    if cls == 'Minimum':
        y = np.min(xs, axis=0)
        return y, y
    if cls == 'Concatenate':
        y = np.concatenate(xs, axis=cfg['axis'])
        return y, y
    raise ValueError(cls)


def numpy_forward(model, x):
    vals = {model['input']: x}
    pres = {}
    for name, cls, cfg, inb in model['nodes']:
        W = {r: a.astype(np.float64) for r, a in model['weights'][name].items()}
        pres[name], vals[name] = numpy_layer(cls, cfg, W, [vals[i] for i in inb],
                                             model['version'])
    return vals, pres


# ---------------------------------------------------------------------------
# Objectives

def logits_of(model):
    """(layer, pre_activation) whose value is the last softmax's input, or None."""
    byname = {n[0]: n for n in model['nodes']}
    name = model['output']
    _, cls, cfg, inb = byname[name]
    if cfg.get('activation') == 'softmax' and cls != 'Activation':
        return name, True
    if cls == 'Softmax' or (cls == 'Activation' and cfg['activation'] == 'softmax'):
        name = inb[0]
        while byname[name][1] == 'Dropout':
            name = byname[name][3][0]
        return name, False
    return None


def objective(model, vals, pres, obj):
    if obj['kind'] == 'logit':
        t = (pres if obj['pre_activation'] else vals)[obj['layer']]
        return sum(t[i, c] for i, c in enumerate(obj['classes']))
    w = obj['w']
    out = vals[model['output']]
    return (out * w).sum()


def rel(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


# ---------------------------------------------------------------------------
# The models

def models():
    M = []

    # 1. channels_last Sequential convnet: same/stride 2 on odd sizes, even kernels
    #    (2x2 valid, 4x4 same), use_bias false, Flatten -> Reshape -> Conv, Dense softmax.
    b = Builder('cl_convnet', (11, 13, 3), seed=101, batch=3)
    b.training = True          # + training_config and Adam optimizer_weights
    b.add('Conv2D', filters=4, kernel_size=[3, 3], strides=[2, 2], padding='same',
          activation='relu', keep=True, gain=1.5)
    b.add('Conv2D', filters=5, kernel_size=[2, 2], activation='tanh', gain=1.5)
    b.add('Conv2D', filters=4, kernel_size=[4, 4], padding='same', activation='sigmoid',
          use_bias=False, gain=2.0)
    b.add('MaxPooling2D', pool_size=[3, 3], strides=[2, 2], padding='same', keep=True)
    b.add('Flatten')
    b.add('Reshape', target_shape=[3, 4, 3])
    b.add('Conv2D', filters=3, kernel_size=[2, 2], activation='linear', keep=True, gain=2.0)
    b.add('Flatten')
    b.add('Dense', units=8, activation='relu', gain=1.5)
    b.add('Dropout', rate=0.25)
    b.add('Dense', units=5, activation='softmax', gain=1.5)
    M.append(b)

    # 2. channels_first Sequential: valid stride 2, dilation 2 'same', BN axis 1,
    #    AveragePooling 'same' 3/2, even kernel stride 2 'same', Flatten(channels_first).
    b = Builder('cf_convnet', (3, 13, 11), seed=102, batch=2)
    cf = dict(data_format='channels_first')
    b.add('Conv2D', filters=4, kernel_size=[3, 3], strides=[2, 2], activation='elu', **cf)
    b.add('Conv2D', filters=5, kernel_size=[3, 3], dilation_rate=[2, 2], padding='same',
          activation='selu', keep=True, **cf)
    b.add('BatchNormalization', axis=1)
    b.add('AveragePooling2D', pool_size=[3, 3], strides=[2, 2], padding='same', keep=True, **cf)
    b.add('Conv2D', filters=4, kernel_size=[2, 2], strides=[2, 2], padding='same', gain=1.5, **cf)
    b.add('Flatten', keep=True, **cf)
    b.add('Dense', units=6, activation='softplus', gain=1.5)
    b.add('Dense', units=4, activation='softmax', gain=2.0)
    M.append(b)

    # 3. activations, fused and standalone (channels_last).
    b = Builder('cl_acts', (9, 7, 2), seed=103, batch=3)
    b.add('Conv2D', filters=4, kernel_size=[3, 3], padding='same', activation='softplus')
    b.add('Conv2D', filters=4, kernel_size=[1, 1], activation='softsign', gain=2.0)
    b.add('Conv2D', filters=4, kernel_size=[3, 3], activation='hard_sigmoid', gain=3.0)
    b.add('Conv2D', filters=3, kernel_size=[2, 2], padding='same', activation='exponential',
          keep=True)
    b.add('Conv2D', filters=4, kernel_size=[1, 1], activation='linear')
    b.add('Activation', activation='selu')
    b.add('ReLU', max_value=1.5, negative_slope=0.1, threshold=0.2, keep=True)
    b.add('LeakyReLU', alpha=float(np.float32(0.3)))
    b.add('Conv2D', filters=4, kernel_size=[3, 3], padding='same', gain=1.5)
    b.add('ELU', alpha=float(np.float32(0.7)))
    b.add('PReLU', shared_axes=[1, 2], keep=True)
    b.add('Activation', activation='tanh')
    b.add('GlobalMaxPooling2D')
    b.add('Dense', units=3, gain=2.0)
    b.add('Softmax', axis=-1)
    M.append(b)

    # 4. tf.keras 2.4.0 layout (InputLayer inside the Sequential config, dtype on
    #    every layer, Conv2D groups, BN axis as a list): swish, gelu, half-pixel bilinear.
    b = Builder('tfk24_swish_gelu', (10, 8, 3), tf24=True, seed=104, batch=2)
    b.add('Conv2D', filters=4, kernel_size=[3, 3], padding='same', activation='swish',
          keep=True, gain=1.5)
    b.add('Conv2D', filters=4, kernel_size=[3, 3], strides=[2, 2], padding='same',
          activation='gelu', gain=1.5)
    b.add('UpSampling2D', size=[2, 2], interpolation='bilinear', keep=True)
    b.add('BatchNormalization')
    b.add('GlobalAveragePooling2D')
    b.add('Dense', units=3, gain=2.0)
    b.add('Activation', activation='softmax')
    M.append(b)

    # 5. SeparableConv2D / DepthwiseConv2D, channels_last; BN center=False.
    b = Builder('cl_sep_dw', (12, 9, 3), seed=105, batch=2)
    b.add('SeparableConv2D', filters=5, kernel_size=[3, 3], padding='same',
          dilation_rate=[2, 2], activation='relu', keep=True, gain=1.5)
    b.add('DepthwiseConv2D', kernel_size=[3, 3], depth_multiplier=2, keep=True)
    b.add('BatchNormalization', center=False, keep=True)
    b.add('SeparableConv2D', filters=4, kernel_size=[3, 3], strides=[2, 2], depth_multiplier=2,
          use_bias=False, activation='tanh', gain=1.5)
    b.add('DepthwiseConv2D', kernel_size=[2, 2], strides=[2, 2], padding='same', gain=1.5)
    b.add('Flatten')
    b.add('Dense', units=3, activation='softmax', gain=2.0)
    M.append(b)

    # 6. Depthwise / Separable channels_first; BN axis 1 scale=False; MaxPool valid 3/2; GAP cf.
    b = Builder('cf_sep_dw', (3, 14, 17), seed=106, batch=2)
    b.add('DepthwiseConv2D', kernel_size=[3, 3], strides=[2, 2], padding='same',
          depth_multiplier=2, activation='relu', keep=True, gain=1.5, **cf)
    b.add('BatchNormalization', axis=1, scale=False)
    b.add('SeparableConv2D', filters=4, kernel_size=[2, 2], activation='elu', keep=True,
          gain=1.5, **cf)
    b.add('MaxPooling2D', pool_size=[3, 3], strides=[2, 2], keep=True, **cf)
    b.add('GlobalAveragePooling2D', **cf)
    b.add('Dense', units=3, activation='softmax', gain=3.0)
    M.append(b)

    # 7. padding / cropping / upsampling channels_last, input declared (None, None, None, 2).
    b = Builder('cl_pad_crop_up', (7, 9, 2), seed=107, batch=2, declared_shape=(None, None, 2))
    b.add('ZeroPadding2D', padding=[[1, 2], [0, 1]])
    b.add('Conv2D', filters=3, kernel_size=[3, 3], activation='relu', gain=1.5)
    b.add('Cropping2D', cropping=[[1, 0], [2, 1]], keep=True)
    b.add('UpSampling2D', size=[2, 3], keep=True)
    b.add('Conv2D', filters=3, kernel_size=[3, 3], strides=[2, 2], padding='same',
          activation='tanh', gain=1.5)
    b.add('UpSampling2D', size=[2, 2], interpolation='bilinear', keep=True)
    b.add('AveragePooling2D', pool_size=[3, 3], strides=[2, 2])
    b.add('Conv2D', filters=2, kernel_size=[1, 1])
    M.append(b)

    # 8. the same kinds channels_first; PReLU shared_axes [2,3]; Reshape of a CHW tensor.
    b = Builder('cf_pad_crop_up', (2, 8, 11), seed=108, batch=2)
    b.add('ZeroPadding2D', padding=[[1, 2], [0, 1]], **cf)
    b.add('Conv2D', filters=4, kernel_size=[3, 3], strides=[2, 2], gain=1.5, **cf)
    b.add('PReLU', shared_axes=[2, 3], keep=True)
    b.add('Cropping2D', cropping=[[0, 1], [1, 1]], **cf)
    b.add('UpSampling2D', size=[3, 2], interpolation='bilinear', keep=True, **cf)
    b.add('Reshape', target_shape=[4, 6, 12], keep=True)
    b.add('Conv2D', filters=3, kernel_size=[3, 3], padding='same', activation='relu',
          gain=1.5, **cf)
    b.add('UpSampling2D', size=[2, 1], **cf)
    b.add('MaxPooling2D', pool_size=[3, 3], strides=[2, 2], **cf)
    b.add('Conv2D', filters=2, kernel_size=[2, 2], gain=1.5, **cf)
    M.append(b)

    # 9. functional channels_last: fan-out, every merge, Concatenate on channels,
    #    on H and on vectors, AveragePooling 'same', Dense without bias.
    b = Builder('cl_merge', (10, 9, 3), functional=True, seed=109, batch=2)
    a = b.add('Conv2D', filters=4, kernel_size=[3, 3], padding='same', activation='relu', gain=1.5)
    bb = b.add('Conv2D', inputs=[a], filters=4, kernel_size=[1, 1], activation='tanh', gain=1.5)
    c = b.add('Conv2D', inputs=[a], filters=4, kernel_size=[3, 3], padding='same')
    add = b.add('Add', inputs=[a, bb, c], keep=True)
    sub = b.add('Subtract', inputs=[bb, c])
    mul = b.add('Multiply', inputs=[a, bb])
    avg = b.add('Average', inputs=[bb, c])
    mx = b.add('Maximum', inputs=[a, c])
    mn = b.add('Minimum', inputs=[bb, c, a])
    cat1 = b.add('Concatenate', inputs=[add, sub, mul], axis=-1)
    d = b.add('Conv2D', inputs=[cat1], filters=4, kernel_size=[1, 1], activation='relu')
    gap = b.add('GlobalAveragePooling2D', inputs=[d])
    cat2 = b.add('Concatenate', inputs=[avg, mx, mn], axis=1, keep=True)
    p = b.add('AveragePooling2D', inputs=[cat2], pool_size=[3, 3], strides=[2, 2],
              padding='same')
    e = b.add('Conv2D', inputs=[p], filters=2, kernel_size=[3, 3], strides=[2, 2],
              padding='same', gain=1.5)
    f = b.add('Flatten', inputs=[e])
    g = b.add('Dense', inputs=[f], units=4, use_bias=False, gain=1.5)
    b.add('Concatenate', inputs=[gap, g], axis=-1, keep=True)
    b.add('Dense', units=5, activation='softmax', gain=2.0)
    M.append(b)

    # 10. functional channels_first: Concatenate on channels (axis 1) and on W (axis -1),
    #     BN axis 1, GlobalMaxPooling cf, Flatten channels_first AND channels_last of one CHW tensor.
    b = Builder('cf_merge', (3, 9, 11), functional=True, seed=110, batch=2)
    a = b.add('Conv2D', filters=4, kernel_size=[3, 3], padding='same', activation='elu',
              gain=1.5, **cf)
    bb = b.add('Conv2D', inputs=[a], filters=4, kernel_size=[1, 1], activation='sigmoid',
               gain=2.0, **cf)
    add = b.add('Add', inputs=[a, bb])
    mul = b.add('Multiply', inputs=[a, bb])
    mx = b.add('Maximum', inputs=[a, bb])
    av = b.add('Average', inputs=[a, bb])
    cat1 = b.add('Concatenate', inputs=[add, mul], axis=1, keep=True)
    bn = b.add('BatchNormalization', inputs=[cat1], axis=1)
    c3 = b.add('Conv2D', inputs=[bn], filters=3, kernel_size=[3, 3], strides=[2, 2],
               padding='same', gain=1.5, **cf)
    cat2 = b.add('Concatenate', inputs=[mx, av], axis=-1, keep=True)
    mp = b.add('MaxPooling2D', inputs=[cat2], pool_size=[3, 3], strides=[2, 2],
               padding='same', **cf)
    gmp = b.add('GlobalMaxPooling2D', inputs=[mp], **cf)
    f1 = b.add('Flatten', inputs=[c3], keep=True, **cf)
    f2 = b.add('Flatten', inputs=[c3], keep=True, data_format='channels_last')
    b.add('Concatenate', inputs=[f1, f2, gmp], axis=-1)
    b.add('Dense', units=5, activation='softmax', gain=2.0)
    M.append(b)

    # 11. mixed data_format: a channels_first conv, then channels_last layers applied
    #     literally to the (C,H,W) tensor (C plays H, W plays channels).
    b = Builder('mixed_format', (4, 12, 7), seed=111, batch=2)
    b.add('Conv2D', filters=5, kernel_size=[3, 3], padding='same', activation='relu',
          keep=True, gain=1.5, **cf)
    b.add('BatchNormalization', axis=-1, keep=True)          # normalises W (7 values)
    b.add('MaxPooling2D', pool_size=[2, 2], keep=True)       # channels_last on (5,12,7)
    b.add('Conv2D', filters=4, kernel_size=[3, 3], padding='same', activation='tanh', gain=1.5)
    b.add('BatchNormalization', axis=-1)
    b.add('Flatten')
    b.add('Dense', units=3, activation='softmax', gain=2.0)
    M.append(b)

    # 12. channels_last, wide enough for featviz's Winograd convolutions (3x3,
    #     >= 32 channels in and out; 'valid' on odd sizes) and tiling max pools
    #     (one leaving a row over), with plain ReLUs everywhere.
    b = Builder('cl_wide', (20, 18, 3), seed=112, batch=2)
    b.fd_eps = 1e-7  # thousands of ReLUs: a larger step crosses some of their kinks
    b.add('Conv2D', filters=32, kernel_size=[3, 3], padding='same', activation='relu', gain=1.5)
    b.add('Conv2D', filters=32, kernel_size=[3, 3], activation='relu', keep=True, gain=1.5)
    b.add('MaxPooling2D', pool_size=[2, 2])                  # 18x16 -> 9x8
    b.add('Conv2D', filters=32, kernel_size=[3, 3], padding='same', activation='relu', gain=1.5)
    b.add('MaxPooling2D', pool_size=[2, 2], keep=True)       # 9x8 -> 4x4, a row over
    b.add('Flatten')
    b.add('Dense', units=10, activation='softmax', gain=2.0)
    M.append(b)
    return M


# ---------------------------------------------------------------------------

def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if f != 'README.md':
            os.remove(os.path.join(OUT, f))
    summary = []
    for b in models():
        path = os.path.join(OUT, b.name + '.h5')
        b.save(path)
        model = parse_model(path)
        rng = np.random.default_rng(7000 + len(summary))
        x32 = rng.uniform(-1, 1, (b.batch,) + tuple(b.input_shape)).astype(np.float32)

        # objective
        lg = logits_of(model)
        if lg:
            n_cls = b.shapes[lg[0]][-1]
            obj = {'kind': 'logit', 'layer': lg[0], 'pre_activation': lg[1],
                   'classes': [int(c) for c in rng.integers(0, n_cls, b.batch)]}
        else:
            w = rng.uniform(-1, 1, b.shapes[model['output']]).astype(np.float32)
            obj = {'kind': 'weighted_output', 'layer': model['output'],
                   'weights': b.name + '.weights_obj.npy'}

        def run(dtype):
            x = torch.from_numpy(x32).to(dtype).requires_grad_(True)
            vals, pres = torch_forward(model, x, dtype)
            o = dict(obj)
            if obj['kind'] != 'logit':
                o['w'] = torch.from_numpy(w).to(dtype)
            J = objective(model, vals, pres, o)
            J.backward()
            return vals, pres, x.grad, float(J)

        vals, pres, grad, J = run(torch.float64)
        vals = {k: v.detach().numpy() for k, v in vals.items()}
        grad = grad.numpy()

        # cross-check 1: NumPy forward (independent implementation)
        nv, npre = numpy_forward(model, x32.astype(np.float64))
        for name, _, _, _ in model['nodes']:
            e = rel(vals[name], nv[name])
            assert e < 1e-12, '%s: torch vs numpy at %s: %g' % (b.name, name, e)
        o = dict(obj)
        if obj['kind'] != 'logit':
            o['w'] = w.astype(np.float64)
        Jn = objective(model, nv, npre, o)
        assert abs(Jn - J) <= 1e-12 * max(1.0, abs(J)), (b.name, J, Jn)

        # cross-check 2: torch autograd vs central differences of the NumPy forward
        for k in range(3):
            v = rng.standard_normal(x32.shape)
            eps = getattr(b, 'fd_eps', 1e-5)
            xp = x32.astype(np.float64) + eps * v
            xm = x32.astype(np.float64) - eps * v
            fp = objective(model, *numpy_forward(model, xp), o)
            fm = objective(model, *numpy_forward(model, xm), o)
            fd = (fp - fm) / (2 * eps)
            an = float((grad * v).sum())
            assert abs(fd - an) <= 1e-6 * max(1.0, abs(an)), (b.name, fd, an)

        # conditioning: float32 torch must agree well inside the C test's tolerances
        v32, _, g32, _ = run(torch.float32)
        e_out = rel(v32[model['output']].detach().numpy(), vals[model['output']])
        e_grad = rel(g32.numpy(), grad)
        assert e_out < 2e-6 and e_grad < 1e-5, (b.name, e_out, e_grad)
        for name in b.intermediates:
            e = rel(v32[name].detach().numpy(), vals[name])
            assert e < 2e-6, (b.name, name, e)

        # save
        pre = os.path.join(OUT, b.name)
        np.save(pre + '.input.npy', x32)
        np.save(pre + '.output.npy', vals[model['output']].astype(np.float64))
        np.save(pre + '.grad.npy', grad.astype(np.float64))
        for name in b.intermediates:
            np.save('%s.%s.npy' % (pre, name), vals[name].astype(np.float32))
        if obj['kind'] != 'logit':
            np.save(pre + '.weights_obj.npy', w)
        with open(pre + '.objective.json', 'w') as fh:
            json.dump(obj, fh, indent=1)
            fh.write('\n')
        summary.append((b, model, obj, e_out, e_grad))
        print('%-18s %-10s in %-16s out %-12s obj %-15s f32 err out %.1e grad %.1e' % (
            b.name, 'Model' if b.functional else 'Sequential', (b.batch,) + tuple(b.input_shape),
            vals[model['output']].shape, obj['kind'] + ('' if obj['kind'] != 'logit'
                                                       else '(%s)' % obj['layer']),
            e_out, e_grad))
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print('total fixture size: %d bytes' % total)
    assert total < 1000000


if __name__ == '__main__':
    main()
