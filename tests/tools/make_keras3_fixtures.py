#!/usr/bin/env python3
"""Keras 3 native fixtures for the .keras loader: small models written WITHOUT
Keras in the exact layout Keras 3.15 writes (checked against the real file
/work/shared/keras3/mnist_cnn_keras3.15.1.keras and Keras' saving_lib.py), with
references computed by an independent PyTorch float64 forward/backward pass.

    /usr/bin/python3 tests/tools/make_keras3_fixtures.py   # rewrites tests/data/keras3/

Deterministic (fixed seeds, fixed zip dates). Each fixture <m> is written three ways:
  <m>.keras                       zip: metadata.json, config.json, model.weights.h5 (stored)
  <m>_unzipped/                   the same three files in a folder
  <m>.weights.h5 + <m>.config.json  what model.save_weights() / model.to_json() write
plus its references (<m>.input.npy, .output.npy, .<layer>.npy, .grad_*.npy), all listed
in manifest.json, and the bad archives in bad/. tests/data/keras3/README.md describes them.

The layout of model.weights.h5 (saving_lib._save_state / _save_container_state):
  /vars                           @name = model name, no datasets
  /layers/<key>/vars/0,1,..       @name = the layer's real name; trainable, then non-trainable
  /layers/<key>/layers/<key>/...  nested models recurse (their own /vars @name too)
  /optimizer/vars/0,..            @name = 'adam': iterations, learning_rate[, (m, v) per variable]
<key> is NOT the layer name: it is the snake_case class name, made unique per container in
the order of the container's `layers` (conv2d, conv2d_1, ...). For a Functional model that
order is Keras' map_graph order, which is also the order of config.layers (InputLayer
included); a Sequential's `layers` excludes its InputLayer. Every layer gets its vars group,
even without weights (the @name metadata forces it). bfloat16 variables are 2-byte HDF5
OPAQUE datasets with the attribute dtype = "bfloat16" (h5py stores ml_dtypes.bfloat16 as
void); float16 variables are IEEE half datasets.

Every model is written, then read back from the written .keras like a loader would
(config order -> keys), and the references are computed from what was read back. A
second forward pass in NumPy checks every layer, central differences check the
gradients, and the same reader + torch forward is run on the real Keras 3.15 file and
compared with its independent expected outputs (this validates the reader's key scheme
and the conv/dense conventions).
"""
import copy
import io
import json
import math
import os
import re
import shutil
import sys
import zipfile
import zlib

import h5py
import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_golden as mg  # noqa: E402  (reference layers shared with the legacy fixtures)

OUT = os.path.join(HERE, '..', 'data', 'keras3')
REAL = os.path.join(HERE, '..', '..', '..', 'shared', 'keras3')
KERAS_VERSION = '3.15.1'
DATE_SAVED = '2026-08-17@21:11:34'
ZIP_DATE = (2026, 8, 17, 21, 11, 34)     # writestr date of model.weights.h5 (fixed: reproducible)
FWD_TOL, GRAD_TOL = 1e-5, 1e-4

# ---------------------------------------------------------------------------
# Keras 3 serialization helpers


def snake(name):
    """keras.src.utils.naming.to_snake_case."""
    name = re.sub(r'\W+', '', name)
    name = re.sub('(.)([A-Z][a-z]+)', r'\1_\2', name)
    return re.sub('([a-z])([A-Z])', r'\1_\2', name).lower()


def k3obj(module, cls, config, registered_name=None):
    return {'module': module, 'class_name': cls, 'config': config,
            'registered_name': registered_name}


def init(cls, config=None):
    return k3obj('keras.initializers', cls, config if config is not None else {})


def GLOROT():
    return init('GlorotUniform', {'seed': None, 'input_axes': None, 'output_axes': None})


def ZEROS():
    return init('Zeros')


def ONES():
    return init('Ones')


class Policy:
    """A DTypePolicy object; layers sharing one object get its shared_object_id
    (Keras' ObjectSharingScope), like the real 3.15 file."""
    next_id = 140052728541024

    def __init__(self, name):
        self.name = name
        self.sid = Policy.next_id
        Policy.next_id += 4096

    def variable_dtype(self):
        return {'float32': 'float32', 'mixed_float16': 'float32', 'mixed_bfloat16': 'float32',
                'float16': 'float16', 'bfloat16': 'bfloat16'}[self.name]

    def compute_dtype(self):
        return {'mixed_float16': 'float16', 'mixed_bfloat16': 'bfloat16'}.get(self.name,
                                                                             self.name)

    def serialize(self, shared=True):
        d = k3obj('keras', 'DTypePolicy', {'name': self.name})
        if shared:
            d['shared_object_id'] = self.sid
        return d


REQ = object()   # a field without a default


def conv_fields():
    return [('filters', REQ), ('kernel_size', REQ), ('strides', [1, 1]),
            ('padding', 'valid'), ('data_format', 'channels_last'), ('dilation_rate', [1, 1]),
            ('groups', 1), ('activation', 'linear'), ('use_bias', True),
            ('kernel_initializer', GLOROT()), ('bias_initializer', ZEROS()),
            ('kernel_regularizer', None), ('bias_regularizer', None),
            ('activity_regularizer', None), ('kernel_constraint', None),
            ('bias_constraint', None)]


def fields(cls):
    """(key, default) in the order Keras 3 get_config() writes them after
    name, trainable, dtype."""
    if cls == 'Conv2D':
        return conv_fields()
    if cls == 'DepthwiseConv2D':
        return [('depth_multiplier', 1), ('kernel_size', REQ), ('strides', [1, 1]),
                ('padding', 'valid'), ('data_format', 'channels_last'),
                ('dilation_rate', [1, 1]), ('activation', 'linear'), ('use_bias', True),
                ('depthwise_initializer', GLOROT()), ('bias_initializer', ZEROS()),
                ('depthwise_regularizer', None), ('bias_regularizer', None),
                ('activity_regularizer', None), ('depthwise_constraint', None),
                ('bias_constraint', None)]
    if cls == 'Dense':
        return [('units', REQ), ('activation', 'linear'), ('use_bias', True),
                ('kernel_initializer', GLOROT()), ('bias_initializer', ZEROS()),
                ('kernel_regularizer', None), ('bias_regularizer', None),
                ('kernel_constraint', None), ('bias_constraint', None),
                ('quantization_config', None)]
    if cls == 'BatchNormalization':
        return [('axis', -1), ('momentum', 0.99), ('epsilon', 0.001), ('center', True),
                ('scale', True), ('beta_initializer', ZEROS()), ('gamma_initializer', ONES()),
                ('moving_mean_initializer', ZEROS()), ('moving_variance_initializer', ONES()),
                ('beta_regularizer', None), ('gamma_regularizer', None),
                ('beta_constraint', None), ('gamma_constraint', None),
                ('synchronized', False), ('renorm', False), ('renorm_clipping', None),
                ('renorm_momentum', 0.99)]
    if cls in ('MaxPooling2D', 'AveragePooling2D'):
        return [('pool_size', [2, 2]), ('padding', 'valid'), ('strides', 'POOL'),
                ('data_format', 'channels_last')]
    if cls == 'GlobalAveragePooling2D':
        return [('data_format', 'channels_last'), ('keepdims', False)]
    if cls == 'Flatten':
        return [('data_format', 'channels_last')]
    if cls == 'Dropout':
        return [('rate', 0.5), ('seed', None), ('noise_shape', None)]
    if cls == 'ReLU':
        return [('max_value', None), ('negative_slope', 0.0), ('threshold', 0.0)]
    if cls == 'Activation':
        return [('activation', REQ)]
    if cls == 'Add':
        return []
    if cls == 'Concatenate':
        return [('axis', -1)]
    if cls == 'Rescaling':
        return [('scale', REQ), ('offset', 0.0)]
    if cls == 'Normalization':
        return [('axis', [-1]), ('invert', False), ('mean', None), ('variance', None)]
    if cls == 'Resizing':
        return [('height', REQ), ('width', REQ), ('interpolation', 'bilinear'),
                ('crop_to_aspect_ratio', False), ('pad_to_aspect_ratio', False),
                ('fill_mode', 'constant'), ('fill_value', 0.0), ('antialias', False),
                ('data_format', 'channels_last')]
    if cls == 'RandomFlip':
        return [('seed', None), ('mode', 'horizontal_and_vertical'),
                ('data_format', 'channels_last')]
    if cls == 'RandomRotation':
        return [('factor', REQ), ('data_format', 'channels_last'), ('fill_mode', 'reflect'),
                ('fill_value', 0.0), ('interpolation', 'bilinear'), ('seed', None)]
    if cls == 'RandomZoom':
        return [('height_factor', REQ), ('width_factor', None), ('fill_mode', 'reflect'),
                ('interpolation', 'bilinear'), ('seed', None), ('fill_value', 0.0),
                ('data_format', 'channels_last')]
    raise ValueError(cls)


# layers whose build() Keras records in build_config
HAS_BUILD = {'Conv2D', 'DepthwiseConv2D', 'Dense', 'BatchNormalization', 'Flatten', 'Add',
             'Concatenate', 'Normalization'}


def layer_config(cls, name, policy, shared_policy, **kw):
    cfg = {'name': name, 'trainable': True, 'dtype': policy.serialize(shared_policy)}
    for key, default in fields(cls):
        if key in kw:
            cfg[key] = kw.pop(key)
        elif default is REQ:
            raise ValueError('%s %s: %s required' % (cls, name, key))
        elif default == 'POOL':
            cfg[key] = list(cfg['pool_size'])
        else:
            cfg[key] = copy.deepcopy(default)
    if kw:
        raise ValueError('%s %s: unknown %s' % (cls, name, sorted(kw)))
    return cfg


def input_layer_entry(name, batch_shape):
    return k3obj('keras.layers', 'InputLayer',
                 {'batch_shape': list(batch_shape), 'dtype': 'float32', 'sparse': False,
                  'ragged': False, 'name': name, 'optional': False})


def adam_compile_config():
    return {'optimizer': k3obj('keras.optimizers', 'Adam', {
        'name': 'adam', 'learning_rate': 0.0010000000474974513, 'weight_decay': None,
        'clipnorm': None, 'global_clipnorm': None, 'clipvalue': None, 'use_ema': False,
        'ema_momentum': 0.99, 'ema_overwrite_frequency': None, 'loss_scale_factor': None,
        'gradient_accumulation_steps': None, 'beta_1': 0.9, 'beta_2': 0.999,
        'epsilon': 1e-07, 'amsgrad': False}),
        'loss': 'sparse_categorical_crossentropy', 'loss_weights': None,
        'metrics': ['accuracy'], 'weighted_metrics': None, 'run_eagerly': False,
        'steps_per_execution': 1, 'jit_compile': False}


# ---------------------------------------------------------------------------
# Model description (graph of layer calls), Keras 3 semantics


class Tensor:
    def __init__(self, layer, node, shape, dtype='float32'):
        self.layer, self.node, self.shape, self.dtype = layer, node, tuple(shape), dtype

    def history(self):
        return [self.layer.name, self.layer.config_node_index(self.node), 0]

    def serialize(self):
        return {'class_name': '__keras_tensor__',
                'config': {'shape': [None] + list(self.shape), 'dtype': self.dtype,
                           'keras_history': self.history()}}


class Layer:
    def __init__(self, cls, name, cfg, weights, policy):
        self.cls, self.name, self.cfg, self.weights, self.policy = cls, name, cfg, weights, policy
        self.nodes = []            # list of (inputs list, merge?, output Tensor)
        self.build_shape = None

    def config_node_index(self, node):
        return node

    def serialize(self):
        d = k3obj('keras.layers', self.cls, self.cfg)
        if self.cls in HAS_BUILD:
            d['build_config'] = {'input_shape': self.build_shape}
        return d

    def trainable(self):
        nt = {'moving_mean', 'moving_variance', 'mean', 'variance', 'count'}
        return [a for r, a in self.weights if r not in nt]


class Net:
    """A Keras 3 model being built: Functional (calls recorded) or Sequential."""

    def __init__(self, name, kind, input_shape, seed, policy='float32'):
        self.name, self.kind = name, kind
        self.rng = np.random.default_rng(seed)
        self.policy = Policy(policy)
        self.input_shape = tuple(input_shape)
        self.layers_seq = []       # Sequential: layers in order
        self.input_layer = None
        self.first_weighted = True
        self.cls = 'Functional' if kind == 'functional' else 'Sequential'
        self.weights = []
        self.nodes = []

    # --- weights -----------------------------------------------------------
    def w(self, shape, scale):
        return (self.rng.standard_normal(shape) * scale).astype(np.float32)

    def u(self, shape, lo, hi):
        return self.rng.uniform(lo, hi, shape).astype(np.float32)

    def make_weights(self, cls, cfg, s, gain):
        W = []
        if cls == 'Conv2D':
            k0, k1 = cfg['kernel_size']
            W.append(('kernel', self.w((k0, k1, s[-1], cfg['filters']),
                                       gain / math.sqrt(k0 * k1 * s[-1]))))
            if cfg['use_bias']:
                W.append(('bias', self.u((cfg['filters'],), -0.2, 0.2)))
        elif cls == 'DepthwiseConv2D':
            k0, k1 = cfg['kernel_size']
            m = cfg['depth_multiplier']
            W.append(('depthwise_kernel', self.w((k0, k1, s[-1], m), gain / math.sqrt(k0 * k1))))
            if cfg['use_bias']:
                W.append(('bias', self.u((s[-1] * m,), -0.2, 0.2)))
        elif cls == 'Dense':
            W.append(('kernel', self.w((s[-1], cfg['units']), gain / math.sqrt(s[-1]))))
            if cfg['use_bias']:
                W.append(('bias', self.u((cfg['units'],), -0.2, 0.2)))
        elif cls == 'BatchNormalization':
            d = s[-1]
            W += [('gamma', self.u((d,), 0.6, 1.4)), ('beta', self.u((d,), -0.3, 0.3)),
                  ('moving_mean', self.u((d,), -0.4, 0.4)),
                  ('moving_variance', self.u((d,), 0.3, 1.8))]
        elif cls == 'Normalization' and cfg['mean'] is None:
            d = s[-1]
            W += [('mean', self.u((d,), -0.5, 0.5)), ('variance', self.u((d,), 0.2, 2.0)),
                  ('count', np.array(5000, np.int64))]
        return W

    # --- building ------------------------------------------------------------
    def new_layer(self, cls, name, in_shapes, gain=1.0, policy=None, **kw):
        pol = Policy(policy) if policy else self.policy
        weighted = cls in ('Conv2D', 'DepthwiseConv2D', 'Dense', 'BatchNormalization')
        shared = pol is self.policy and not (weighted and self.first_weighted)
        if weighted:
            self.first_weighted = False
        cfg = layer_config(cls, name, pol, shared, **kw)
        W = self.make_weights(cls, cfg, in_shapes[0], gain)
        vd = pol.variable_dtype()
        W = [(r, round_to(a, vd) if a.dtype == np.float32 else a) for r, a in W]
        L = Layer(cls, name, cfg, W, pol)
        L.build_shape = ([[None] + list(s) for s in in_shapes] if cls in ('Add', 'Concatenate')
                         else [None] + list(in_shapes[0]))
        return L

    def out_shape(self, L, in_shapes):
        xs = [torch.zeros((1,) + tuple(s), dtype=torch.float64) for s in in_shapes]
        _, y = ref_layer(L, xs)
        return tuple(y.shape[1:])

    def Input(self, name='input_layer'):
        self.input_layer = Layer('InputLayer', name, None, [], self.policy)
        t = Tensor(self.input_layer, 0, self.input_shape)
        self.input_layer.nodes.append(([], False, t, {}))
        self.input_tensor = t
        return t

    def call(self, L, inputs, kwargs=None):
        """Calls layer (or nested model) L on inputs; kwargs are recorded in the node."""
        merge = isinstance(inputs, list)
        ins = inputs if merge else [inputs]
        dt = 'float32' if L.policy.compute_dtype() == 'float32' else L.policy.compute_dtype()
        shape = (L.output_shape() if isinstance(L, Net)
                 else self.out_shape(L, [i.shape for i in ins]))
        t = Tensor(L, len(L.nodes), shape, dt)
        L.nodes.append((ins, merge, t, kwargs or {}))
        return t

    def __call__(self, cls, x, name=None, **kw):
        """Functional: a fresh layer called once on x (a Tensor or list)."""
        ins = x if isinstance(x, list) else [x]
        L = self.new_layer(cls, name or self.auto(cls), [i.shape for i in ins], **kw)
        return self.call(L, x)

    def add(self, cls, name=None, **kw):
        """Sequential."""
        prev = self.last_shape()
        L = self.new_layer(cls, name or self.auto(cls), [prev], **kw)
        L.out = self.out_shape(L, [prev])
        self.layers_seq.append(L)
        return L

    def add_model(self, sub):
        sub.out = sub.output_shape()
        sub.build_shape = None
        self.layers_seq.append(sub)

    def last_shape(self):
        return self.layers_seq[-1].out if self.layers_seq else self.input_shape

    def auto(self, cls):
        base = snake(cls)
        used = {l.name for l in self.all_layers()}
        n, name = 0, base
        while name in used:
            n += 1
            name = '%s_%d' % (base, n)
        return name

    def all_layers(self):
        out = []
        for L in self.layers():
            out.append(L)
            if isinstance(L, Net):
                out += L.all_layers()
        return out

    def finish(self, outputs, input_list=False):
        self.outputs = outputs
        self.input_list = input_list

    def output_shape(self):
        return self.outputs.shape if self.kind == 'functional' else self.last_shape()

    # --- Keras order -----------------------------------------------------------
    def layers(self):
        """model.layers: Functional = map_graph order incl. InputLayer;
        Sequential = the added layers (no InputLayer)."""
        if self.kind == 'sequential':
            return list(self.layers_seq)
        return map_graph(self.input_tensor, self.outputs)

    def config_node_index(self, node):
        return node + 1 if self.kind == 'functional' else node

    # --- serialization ----------------------------------------------------------
    def serialize(self, top=True):
        if self.kind == 'sequential':
            layers = []
            if getattr(self, 'with_input', True):
                layers.append(input_layer_entry(self.seq_input_name,
                                                [None] + list(self.input_shape)))
            layers += [L.serialize(top=False) if isinstance(L, Net) else L.serialize()
                       for L in self.layers_seq]
            cfg = {'name': self.name, 'trainable': True, 'dtype': self.policy.serialize(),
                   'layers': layers, 'build_input_shape': [None] + list(self.input_shape)}
            d = k3obj('keras', 'Sequential', cfg)
            d['build_config'] = {'input_shape': [None] + list(self.input_shape)}
        else:
            entries = []
            for L in self.layers():
                if L.cls == 'InputLayer':
                    e = input_layer_entry(L.name, [None] + list(self.input_shape))
                else:
                    e = L.serialize(top=False) if isinstance(L, Net) else L.serialize()
                e['name'] = L.name
                e['inbound_nodes'] = [
                    {'args': [[t.serialize() for t in ins]] if merge else [ins[0].serialize()],
                     'kwargs': kw} for ins, merge, _, kw in L.nodes if ins]
                entries.append(e)
            inp = [self.input_layer.name, 0, 0]
            out = self.outputs.history()
            cfg = {'name': self.name, 'trainable': True, 'layers': entries,
                   'input_layers': [inp] if self.input_list else inp,
                   'output_layers': [out] if self.input_list else out}
            d = k3obj('keras.src.models.functional', 'Functional', cfg, 'Functional')
            d['build_config'] = {'input_shape': None}
        if top:
            d['compile_config'] = adam_compile_config()
        return d


def map_graph(input_tensor, output):
    """keras.src.ops.function.map_graph: operations sorted by decreasing depth,
    ties by first DFS visit from the outputs."""
    finished, order, op_index = set(), [], {}

    def visit(t):
        node = (id(t.layer), t.node)
        if node in finished:
            return
        if id(t.layer) not in op_index:
            op_index[id(t.layer)] = (len(op_index), t.layer)
        ins = t.layer.nodes[t.node][0]
        if t is not input_tensor:
            for i in ins:
                visit(i)
        finished.add(node)
        order.append(t)

    visit(output)
    node_depth, op_depth = {}, {}
    for t in reversed(order):
        key = (id(t.layer), t.node)
        depth = node_depth.setdefault(key, 0)
        depth = max(depth, op_depth.get(id(t.layer), 0))
        op_depth[id(t.layer)] = depth
        node_depth[key] = depth
        for i in t.layer.nodes[t.node][0]:
            pk = (id(i.layer), i.node)
            node_depth[pk] = max(depth + 1, node_depth.get(pk, 0))
    ops = sorted(op_index.values(), key=lambda p: (-op_depth[id(p[1])], p[0]))
    return [L for _, L in ops]


# ---------------------------------------------------------------------------
# dtypes as stored


def bf16_bits(a):
    """float32 -> bfloat16 bits (round to nearest even), as uint16."""
    b = np.ascontiguousarray(a, np.float32).view(np.uint32).astype(np.uint64)
    b = (b + 0x7FFF + ((b >> 16) & 1)) >> 16
    return b.astype(np.uint16)


def bf16_to_f32(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


def round_to(a, vd):
    if vd == 'float16':
        return a.astype(np.float16)
    if vd == 'bfloat16':
        return Bf16(bf16_bits(a))
    return a


class Bf16:
    """A bfloat16 array (bits), stored like Keras stores ml_dtypes.bfloat16."""

    def __init__(self, bits):
        self.bits = bits
        self.shape = bits.shape
        self.dtype = 'bfloat16'

    def as_float(self):
        return bf16_to_f32(self.bits)


# ---------------------------------------------------------------------------
# Writing: model.weights.h5, config.json, metadata.json, the zip


def keyed_layers(layers):
    """_save_container_state: snake_case class name, unique per container."""
    used, out = {}, []
    for L in layers:
        key = snake(L.cls)
        if key in used:
            used[key] += 1
            key = '%s_%d' % (key, used[key])
        else:
            used[key] = 0
        out.append((key, L))
    return out


# Keras 3's saving_lib before the name metadata wrote vars groups without @name;
# fixtures with Net.vars_names = False are written that way (set while writing one).
WRITE_NAMES = [True]


def write_vars(group, name, weights):
    g = group.create_group('vars')
    if WRITE_NAMES[0]:
        g.attrs['name'] = name                  # h5py: str -> vlen UTF-8 scalar, as Keras
    for i, (_, a) in enumerate(weights):
        if isinstance(a, Bf16):
            d = g.create_dataset(str(i), data=a.bits.view(np.dtype((np.void, 2))))
            d.attrs['dtype'] = 'bfloat16'
        else:
            g[str(i)] = a


def write_model_vars(h5, path, net, key_map, prefix=''):
    root = h5 if not path else h5.require_group(path)
    write_vars(root, net.name, [])
    for key, L in keyed_layers(net.layers()):
        p = '%slayers/%s' % (prefix, key)
        key_map[L.name] = p
        if isinstance(L, Net):
            write_model_vars(h5, p, L, key_map, p + '/')
        else:
            write_vars(h5.create_group(p), L.name, L.weights)


def trainable_vars(net):
    out = []
    for L in net.layers():
        out += trainable_vars(L) if isinstance(L, Net) else L.trainable()
    return out


def weights_h5_bytes(net, rng, optimizer='adam_unbuilt'):
    """optimizer: 'adam' (trained: iterations, learning rate, m and v per trainable
    variable, as the real 3.15 file: vars/2, /3 = m, v of the first kernel),
    'adam_unbuilt' (compiled, no train step yet: iterations and learning rate only; keeps
    the files small), 'loss_scale' (mixed_float16: a LossScaleOptimizer around a trained
    Adam). A loader ignores optimizer/ whatever it holds."""
    bio = io.BytesIO()
    key_map = {}
    WRITE_NAMES[0] = getattr(net, 'vars_names', True)
    with h5py.File(bio, 'w') as h5:
        write_model_vars(h5, '', net, key_map)
        if optimizer == 'adam_unbuilt':
            opt = [('i', np.array(0, np.int64)), ('lr', np.array(0.001, np.float32))]
        else:
            opt = [('i', np.array(2532, np.int64)), ('lr', np.array(0.001, np.float32))]
            for a in trainable_vars(net):
                f = a.as_float() if isinstance(a, Bf16) else a.astype(np.float32)
                opt.append(('m', (rng.standard_normal(f.shape) * 1e-3).astype(np.float32)))
                opt.append(('v', np.abs(rng.standard_normal(f.shape) * 1e-6)
                            .astype(np.float32)))
        if optimizer == 'loss_scale':
            # mixed_float16: compile() wraps the optimizer in a LossScaleOptimizer
            og = h5.create_group('optimizer')
            write_vars(og, 'loss_scale_optimizer',
                       [('step_counter', np.array(12, np.int64)),
                        ('dynamic_scale', np.array(32768.0, np.float32))])
            write_vars(h5.create_group('optimizer/inner_optimizer'), 'adam', opt)
        else:
            write_vars(h5.create_group('optimizer'), 'adam', opt)
    WRITE_NAMES[0] = True
    return bio.getvalue(), key_map


def write_zip(path, entries, compress=zipfile.ZIP_STORED):
    """entries: list of (name, bytes). Like saving_lib: zf.open(name, 'w') for the
    two JSON files (date 1980-01-01), writestr for the weights (save time)."""
    with zipfile.ZipFile(path, 'w', compression=compress) as zf:
        for name, data in entries:
            if name.endswith('.json'):
                with zf.open(name, 'w') as f:
                    f.write(data)
            else:
                zi = zipfile.ZipInfo(name, ZIP_DATE)
                zi.compress_type = compress
                zi.external_attr = 0o600 << 16
                zf.writestr(zi, data)


def metadata_json():
    return json.dumps({'keras_version': KERAS_VERSION, 'date_saved': DATE_SAVED}).encode()


def save_fixture(net, name):
    rng = np.random.default_rng(4242)
    config = json.dumps(net.serialize()).encode()
    wbytes, key_map = weights_h5_bytes(net, rng, getattr(net, 'optimizer', 'adam_unbuilt'))
    meta = metadata_json()
    pre = os.path.join(OUT, name)
    write_zip(pre + '.keras', [('metadata.json', meta), ('config.json', config),
                               ('model.weights.h5', wbytes)])
    d = pre + '_unzipped'
    os.makedirs(d)
    for fn, data in (('metadata.json', meta), ('config.json', config),
                     ('model.weights.h5', wbytes)):
        with open(os.path.join(d, fn), 'wb') as f:
            f.write(data)
    with open(pre + '.weights.h5', 'wb') as f:     # model.save_weights(): the same store
        f.write(wbytes)
    with open(pre + '.config.json', 'wb') as f:    # model.to_json() = serialize_keras_object
        f.write(config)
    return key_map, config, wbytes, meta


# ---------------------------------------------------------------------------
# Reading back, as a loader would (config order -> class-derived keys)


class RNode:
    def __init__(self, name, cls, cfg, weights, inputs, sub=None):
        self.name, self.cls, self.cfg, self.W, self.inputs, self.sub = \
            name, cls, cfg, weights, inputs, sub


def read_vars(g):
    out = []
    for i in range(len(g.keys())):
        d = g[str(i)]
        if d.attrs.get('dtype') == 'bfloat16':
            a = bf16_to_f32(np.array(d).view(np.uint16))
        else:
            a = np.array(d)
        out.append(a)
    return out


class RModel:
    """A parsed model: nodes in execution order; each node = one call."""

    def __init__(self, obj, h5, path):
        self.name = obj['config']['name']
        self.cls = obj['class_name']
        c = obj['config']
        vars_name = h5[(path + '/vars') if path else 'vars'].attrs.get('name', self.name)
        assert vars_name == self.name, (vars_name, self.name)
        if self.cls == 'Sequential':
            entries = c['layers']
            weighted = [e for e in entries if e['class_name'] != 'InputLayer']
            if entries[0]['class_name'] == 'InputLayer':
                self.batch_shape = entries[0]['config']['batch_shape']
            else:
                self.batch_shape = c['build_input_shape']
            keys = keyed_entries(weighted)
            self.nodes = []
            prev = '__input__'
            for key, e in keys:
                n = self.make_node(e, h5, '%slayers/%s' % (path + '/' if path else '', key))
                n.inputs = [(prev, 0)]
                self.nodes.append(n)
                prev = n.name
            self.input, self.output = '__input__', (prev, 0)
        else:
            keys = keyed_entries(c['layers'])
            self.nodes = []
            pending = []
            for key, e in keys:
                if e['class_name'] == 'InputLayer':
                    self.batch_shape = e['config']['batch_shape']
                    self.input = e['name']
                    continue
                proto = self.make_node(e, h5, '%slayers/%s' % (path + '/' if path else '', key))
                for k, node in enumerate(e['inbound_nodes']):
                    a = node['args'][0]
                    ts = a if isinstance(a, list) else [a]
                    ins = []
                    for t in ts:
                        assert t['class_name'] == '__keras_tensor__'
                        ln, ni, ti = t['config']['keras_history']
                        assert ti == 0
                        ins.append((ln, ni))
                    pending.append((proto, k, ins))
            # execution order: repeat until every call has its inputs (shared layers)
            done = {(self.input, 0)}
            nested = {e['name'] for e in c['layers']
                      if e['class_name'] in ('Functional', 'Sequential')}
            while pending:
                rest = []
                for proto, k, ins in pending:
                    if all(self.fix(x, nested) in done for x in ins):
                        n = RNode(proto.name, proto.cls, proto.cfg, proto.W,
                                  [self.fix(x, nested) for x in ins], proto.sub)
                        n.call = k
                        self.nodes.append(n)
                        done.add((proto.name, k))
                    else:
                        rest.append((proto, k, ins))
                assert len(rest) < len(pending), 'graph cycle'
                pending = rest
            ol = c['output_layers']
            if isinstance(ol[0], list):
                (ol,) = ol
            self.output = self.fix((ol[0], ol[1]), nested)
            il = c['input_layers']
            if isinstance(il[0], list):
                (il,) = il
            assert il[0] == self.input

    @staticmethod
    def fix(x, nested):
        # a nested Functional's node 0 is its own input->output node
        return (x[0], x[1] - 1) if x[0] in nested else x

    def make_node(self, e, h5, path):
        cls, cfg = e['class_name'], e['config']
        if not (e['module'].startswith('keras.') or e['module'] == 'keras'):
            raise ValueError('custom layer %s' % cfg['name'])
        if cls in ('Functional', 'Sequential'):
            sub = RModel(e, h5, path)
            return RNode(cfg['name'], cls, cfg, {}, None, sub)
        g = h5[path + '/vars']
        assert g.attrs.get('name', cfg['name']) == cfg['name'], (path, cfg['name'])
        vals = read_vars(g)
        roles = layer_roles(cls, cfg)
        assert len(vals) == len(roles), (cfg['name'], len(vals), roles)
        return RNode(cfg['name'], cls, cfg, dict(zip(roles, vals)), None)


def keyed_entries(entries):
    used, out = {}, []
    for e in entries:
        key = snake(e['class_name'])
        if key in used:
            used[key] += 1
            key = '%s_%d' % (key, used[key])
        else:
            used[key] = 0
        out.append((key, e))
    return out


def layer_roles(cls, cfg):
    if cls == 'Normalization':
        return ['mean', 'variance', 'count'] if cfg.get('mean') is None else []
    if cls in ('Conv2D', 'Dense'):
        return ['kernel', 'bias'] if cfg['use_bias'] else ['kernel']
    if cls == 'DepthwiseConv2D':
        return ['depthwise_kernel'] + (['bias'] if cfg['use_bias'] else [])
    if cls == 'BatchNormalization':
        return ((['gamma'] if cfg['scale'] else []) + (['beta'] if cfg['center'] else [])
                + ['moving_mean', 'moving_variance'])
    return []


def read_archive(path):
    with zipfile.ZipFile(path) as zf:
        cfg = json.loads(zf.read('config.json'))
        meta = json.loads(zf.read('metadata.json'))
        h5 = h5py.File(io.BytesIO(zf.read('model.weights.h5')), 'r')
    m = RModel(cfg, h5, '')
    m.meta = meta
    return m


# ---------------------------------------------------------------------------
# Reference layers: PyTorch float64 (mg.torch_layer for the legacy kinds)


IDENTITY = ('InputLayer', 'RandomFlip', 'RandomRotation', 'RandomZoom', 'Dropout')


def t_resize(x, h, w):
    """Keras 3 Resizing bilinear, antialias False: half-pixel centres."""
    y = F.interpolate(x.permute(0, 3, 1, 2), size=(h, w), mode='bilinear', align_corners=False)
    return y.permute(0, 2, 3, 1)


def torch_node(cls, cfg, W, xs):
    x = xs[0]
    if cls in IDENTITY:
        return x, x
    if cls == 'Rescaling':
        y = x * cfg['scale'] + cfg['offset']
        return y, y
    if cls == 'Normalization':
        mean = W['mean'] if 'mean' in W else torch.tensor(cfg['mean'], dtype=x.dtype)
        var = W['variance'] if 'variance' in W else torch.tensor(cfg['variance'], dtype=x.dtype)
        y = (x - mean) / torch.clamp(torch.sqrt(var), min=1e-7)
        return y, y
    if cls == 'Resizing':
        y = t_resize(x, cfg['height'], cfg['width'])
        return y, y
    return mg.torch_layer(cls, cfg, W, xs, '3')


def ref_layer(L, xs):
    W = {}
    for r, a in L.weights:
        f = a.as_float() if isinstance(a, Bf16) else a
        W[r] = torch.from_numpy(np.asarray(f, np.float64))
    return torch_node(L.cls, L.cfg, W, xs)


def torch_run(model, x, dtype=torch.float64, vals=None, pres=None):
    """Returns (output, vals {(name, call): tensor}, pres)."""
    vals = {} if vals is None else vals
    pres = {} if pres is None else pres
    vals[(model.input, 0)] = x
    for n in model.nodes:
        xs = [vals[i] for i in n.inputs]
        k = getattr(n, 'call', 0)
        if n.sub is not None:
            y, _, _ = torch_run(n.sub, xs[0], dtype, vals, pres)
            pres[(n.name, k)] = vals[(n.name, k)] = y
            continue
        W = {r: torch.from_numpy(np.asarray(a, np.float64)).to(dtype) for r, a in n.W.items()
             if r != 'count'}
        pres[(n.name, k)], vals[(n.name, k)] = torch_node(n.cls, n.cfg, W, xs)
    return vals[model.output], vals, pres


# NumPy float64 (mg.numpy_layer for the legacy kinds)


def n_resize_axis(n, m):
    """(m, n) bilinear half-pixel matrix (TF resize, antialias off)."""
    A = np.zeros((m, n))
    for o in range(m):
        src = max((o + 0.5) * n / m - 0.5, 0.0)
        lo = min(int(math.floor(src)), n - 1)
        hi = min(lo + 1, n - 1)
        fr = src - lo
        A[o, lo] += 1 - fr
        A[o, hi] += fr
    return A


def numpy_node(cls, cfg, W, xs):
    x = xs[0]
    if cls in IDENTITY:
        return x, x
    if cls == 'Rescaling':
        return x * cfg['scale'] + cfg['offset'], x * cfg['scale'] + cfg['offset']
    if cls == 'Normalization':
        mean = W.get('mean', np.array(cfg['mean']))
        var = W.get('variance', np.array(cfg['variance']))
        y = (x - mean) / np.maximum(np.sqrt(var), 1e-7)
        return y, y
    if cls == 'Resizing':
        A = n_resize_axis(x.shape[1], cfg['height'])
        B = n_resize_axis(x.shape[2], cfg['width'])
        y = np.einsum('ph,nhwc,qw->npqc', A, x, B)
        return y, y
    return mg.numpy_layer(cls, cfg, W, xs, '3')


def numpy_run(model, x, vals=None, pres=None):
    vals = {} if vals is None else vals
    pres = {} if pres is None else pres
    vals[(model.input, 0)] = x
    for n in model.nodes:
        xs = [vals[i] for i in n.inputs]
        k = getattr(n, 'call', 0)
        if n.sub is not None:
            y, _, _ = numpy_run(n.sub, xs[0], vals, pres)
            pres[(n.name, k)] = vals[(n.name, k)] = y
            continue
        W = {r: np.asarray(a, np.float64) for r, a in n.W.items() if r != 'count'}
        pres[(n.name, k)], vals[(n.name, k)] = numpy_node(n.cls, n.cfg, W, xs)
    return vals[model.output], vals, pres


def all_nodes(model):
    for n in model.nodes:
        yield n
        if n.sub is not None:
            yield from all_nodes(n.sub)


def logit_node(model):
    """(name, pre_activation?) holding the pre-softmax logits."""
    byname = {n.name: n for n in all_nodes(model)}
    out = byname[model.output[0]]
    if out.sub is not None:
        return logit_node(out.sub)
    if out.cls == 'Activation' and out.cfg['activation'] == 'softmax':
        return out.inputs[0][0], False
    assert out.cfg.get('activation') == 'softmax'
    return out.name, True


# ---------------------------------------------------------------------------
# The fixtures


def fixture_func_merge():
    """a) Functional: Conv2D, BN, DepthwiseConv2D, Add, Concatenate, GAP, Dense softmax.
    Layer names differ from the weight keys: the Conv2D named 'conv2d' is stored under
    layers/conv2d_2 (layers/conv2d holds 'stem': a name lookup finds the wrong shape), and
    the two Dense layers named 'dense_1' and 'dense' are stored under layers/dense and
    layers/dense_1 (same shapes: a name lookup loads silently wrong weights, and only the
    reference notices)."""
    n = Net('functional_merge', 'functional', (12, 11, 3), seed=301)
    x = n.Input('image')
    s = n('Conv2D', x, 'stem', filters=8, kernel_size=[3, 3], padding='same', activation='relu',
          gain=1.5)
    b = n('BatchNormalization', s, 'stem_bn')
    a = n('DepthwiseConv2D', b, 'dw', kernel_size=[3, 3], padding='same', activation='relu',
          gain=1.5)
    a = n('Conv2D', a, 'conv2d_1', filters=8, kernel_size=[3, 3], padding='same', gain=1.5)
    c = n('Conv2D', b, 'conv2d', filters=8, kernel_size=[3, 3], padding='same', gain=1.5)
    add = n('Add', [a, c], 'add')
    cat = n('Concatenate', [add, b], 'concat', axis=-1)
    h = n('Conv2D', cat, 'head_conv', filters=12, kernel_size=[3, 3], strides=[2, 2],
          padding='same', activation='relu', gain=1.5)
    g = n('GlobalAveragePooling2D', h, 'gap')
    d = n('Dense', g, 'dense_1', units=12, activation='relu', gain=1.5)
    d = n('Dense', d, 'dense', units=12, activation='relu', gain=1.5)
    y = n('Dense', d, 'predictions', units=5, activation='softmax', gain=2.0)
    n.finish(y)
    return n, dict(layers=['stem_bn', 'add', 'head_conv', 'dense'],
                   cls=3, filt=('head_conv', 5))


def mobilenet_base(seed=302):
    b = Net('mobilenetv2_mini', 'functional', (16, 16, 3), seed=seed)
    x = b.Input('input_layer')
    relu6 = dict(max_value=6.0)
    t = b('Conv2D', x, 'Conv1', filters=8, kernel_size=[3, 3], strides=[2, 2], padding='same',
          use_bias=False, gain=2.0)
    t = b('BatchNormalization', t, 'bn_Conv1', epsilon=0.001, momentum=0.999)
    sc = b('ReLU', t, 'Conv1_relu', **relu6)
    t = b('Conv2D', sc, 'block_1_expand', filters=24, kernel_size=[1, 1], use_bias=False,
          gain=2.0)
    t = b('BatchNormalization', t, 'block_1_expand_BN', epsilon=0.001, momentum=0.999)
    t = b('ReLU', t, 'block_1_expand_relu', **relu6)
    t = b('DepthwiseConv2D', t, 'block_1_depthwise', kernel_size=[3, 3], padding='same',
          use_bias=False, gain=2.0)
    t = b('BatchNormalization', t, 'block_1_depthwise_BN', epsilon=0.001, momentum=0.999)
    t = b('ReLU', t, 'block_1_depthwise_relu', **relu6)
    t = b('Conv2D', t, 'block_1_project', filters=8, kernel_size=[1, 1], use_bias=False,
          gain=1.5)
    t = b('BatchNormalization', t, 'block_1_project_BN', epsilon=0.001, momentum=0.999)
    t = b('Add', [sc, t], 'block_1_add')
    t = b('Conv2D', t, 'Conv_1', filters=16, kernel_size=[1, 1], use_bias=False, gain=2.0)
    t = b('BatchNormalization', t, 'Conv_1_bn', epsilon=0.001, momentum=0.999)
    t = b('ReLU', t, 'out_relu', **relu6)
    b.finish(t)
    return b


def fixture_nested():
    """b) Sequential([MobileNetV2-style Functional base, GAP, Dropout, Dense]):
    weights under layers/functional/layers/..."""
    n = Net('sequential', 'sequential', (16, 16, 3), seed=303)
    n.seq_input_name = 'input_layer_1'
    base = mobilenet_base()
    n.add_model(base)
    n.add('GlobalAveragePooling2D', 'global_average_pooling2d')
    n.add('Dropout', 'dropout', rate=0.2)
    n.add('Dense', 'dense', units=4, activation='softmax', gain=3.0)
    return n, dict(layers=['block_1_expand_relu', 'block_1_add', 'mobilenetv2_mini',
                           'global_average_pooling2d'],
                   cls=2, filt=('block_1_expand', 7))


def mobilenet_first_block(seed):
    """MobileNetV2 up to its first block (no expansion, no residual), with Keras' names
    (the model name has a dot, as keras.applications' 'mobilenetv2_1.00_224')."""
    b = Net('mobilenetv2_1.00_16', 'functional', (16, 16, 3), seed=seed)
    x = b.Input('input_layer')
    t = b('Conv2D', x, 'Conv1', filters=8, kernel_size=[3, 3], strides=[2, 2], padding='same',
          use_bias=False, gain=2.0)
    t = b('BatchNormalization', t, 'bn_Conv1', epsilon=0.001, momentum=0.999)
    t = b('ReLU', t, 'Conv1_relu', max_value=6.0)
    t = b('DepthwiseConv2D', t, 'expanded_conv_depthwise', kernel_size=[3, 3],
          padding='same', use_bias=False, gain=2.0)
    t = b('BatchNormalization', t, 'expanded_conv_depthwise_BN', epsilon=0.001,
          momentum=0.999)
    t = b('ReLU', t, 'expanded_conv_depthwise_relu', max_value=6.0)
    t = b('Conv2D', t, 'expanded_conv_project', filters=8, kernel_size=[1, 1],
          use_bias=False, gain=1.5)
    t = b('BatchNormalization', t, 'expanded_conv_project_BN', epsilon=0.001, momentum=0.999)
    b.finish(t)
    return b


def fixture_nested_functional():
    """b') the Keras transfer-learning guide's shape (base: MobileNetV2's first block):
    inputs = keras.Input(...);
    x = base(inputs, training=False); GAP; Dropout; Dense; keras.Model(inputs, outputs).
    The outer Functional refers to the nested model's output as node 1
    (["mobilenetv2_1.00_16", 1, 0]: node 0 is the base's own input->output node) and records
    kwargs {"training": false}."""
    n = Net('functional_transfer', 'functional', (16, 16, 3), seed=308)
    x = n.Input('input_layer_1')
    base = mobilenet_first_block(seed=309)
    t = n.call(base, x, kwargs={'training': False})
    t = n('GlobalAveragePooling2D', t, 'global_average_pooling2d')
    t = n('Dropout', t, 'dropout', rate=0.2)
    y = n('Dense', t, 'dense', units=3, activation='softmax', gain=3.0)
    n.finish(y)
    return n, dict(layers=['expanded_conv_depthwise_relu', 'mobilenetv2_1.00_16'],
                   cls=1, filt=('expanded_conv_project', 5))


def fixture_preproc():
    """c) Rescaling, Normalization (adapted: mean/variance/count vars; and one with
    constant mean/variance in its config), RandomFlip/Rotation/Zoom, Resizing."""
    n = Net('sequential_preproc', 'sequential', (10, 9, 3), seed=304)
    n.seq_input_name = 'input_layer'
    n.add('Rescaling', 'rescaling', scale=0.00784313725490196, offset=-1.0)
    n.add('Normalization', 'normalization', axis=[-1])
    n.add('RandomFlip', 'random_flip', mode='horizontal', seed=None)
    n.add('RandomRotation', 'random_rotation', factor=[-0.1, 0.1])
    n.add('RandomZoom', 'random_zoom', height_factor=[-0.2, 0.2], width_factor=None)
    n.add('Resizing', 'resizing', height=14, width=13)
    n.add('Conv2D', 'conv2d', filters=6, kernel_size=[3, 3], activation='relu', gain=1.5)
    mean = [round(float(v), 4) for v in n.rng.uniform(0.0, 0.6, 6)]
    var = [round(float(v), 4) for v in n.rng.uniform(0.2, 1.5, 6)]
    n.add('Normalization', 'feature_norm', axis=[-1], mean=mean, variance=var)
    n.add('MaxPooling2D', 'max_pooling2d', pool_size=[2, 2])
    n.add('Flatten', 'flatten')
    n.add('Dense', 'dense', units=4, activation='softmax', gain=2.0)
    return n, dict(layers=['normalization', 'resizing', 'conv2d', 'feature_norm'],
                   cls=1, filt=('conv2d', 4), input_range=(0.0, 255.0))


def fixture_mixed():
    """d) mixed_float16 everywhere (variables float32, as Keras keeps them), one Conv2D
    with a float16 policy (float16 datasets), one Dense with a bfloat16 policy (OPAQUE
    2-byte datasets with @dtype='bfloat16'), a float32 softmax Activation at the end."""
    n = Net('sequential_mixed', 'sequential', (10, 10, 3), seed=305, policy='mixed_float16')
    n.seq_input_name = 'input_layer'
    n.optimizer = 'loss_scale'
    n.add('Conv2D', 'conv2d', filters=8, kernel_size=[3, 3], padding='same', activation='relu',
          gain=1.5)
    n.add('BatchNormalization', 'batch_normalization')
    n.add('Conv2D', 'conv2d_half', filters=8, kernel_size=[3, 3], strides=[2, 2],
          padding='same', activation='relu', gain=1.5, policy='float16')
    n.add('GlobalAveragePooling2D', 'global_average_pooling2d')
    n.add('Dense', 'dense_bf16', units=12, activation='relu', gain=1.5, policy='bfloat16')
    n.add('Dense', 'dense', units=5, gain=2.0)
    n.add('Activation', 'predictions', activation='softmax', policy='float32')
    return n, dict(layers=['batch_normalization', 'conv2d_half', 'dense_bf16'],
                   cls=4, filt=('conv2d_half', 3))


def fixture_shared():
    """e) Functional with one Conv2D called on two branches (one weights group),
    input_layers/output_layers in the nested-list form."""
    n = Net('functional_shared', 'functional', (10, 10, 3), seed=306)
    x = n.Input('input_layer')
    s = n('Conv2D', x, 'stem', filters=6, kernel_size=[3, 3], padding='same',
          activation='relu', gain=1.5)
    p1 = n('MaxPooling2D', s, 'max_pooling2d', pool_size=[2, 2])
    p2 = n('AveragePooling2D', s, 'average_pooling2d', pool_size=[2, 2])
    shared = n.new_layer('Conv2D', 'shared_conv', [p1.shape], filters=6, kernel_size=[3, 3],
                         padding='same', activation='relu', gain=1.5)
    a = n.call(shared, p1)
    b = n.call(shared, p2)
    t = n('Add', [a, b], 'add')
    t = n('GlobalAveragePooling2D', t, 'global_average_pooling2d')
    y = n('Dense', t, 'dense', units=4, activation='softmax', gain=2.0)
    n.finish(y, input_list=True)
    return n, dict(layers=['add', 'shared_conv@0', 'shared_conv@1'],
                   cls=0, filt=('stem', 2))


def fixture_seq(with_input):
    """f) the same small Sequential with and without an InputLayer entry (without:
    the input shape is only in build_input_shape / build_config). The one without also
    has no @name on its vars groups, as Keras 3 wrote them before the name metadata: the
    class-derived keys alone must find the weights."""
    n = Net('sequential_small', 'sequential', (11, 11, 2), seed=307)
    n.seq_input_name = 'input_layer'
    n.with_input = with_input
    n.vars_names = with_input   # without InputLayer: also without the vars @name (older writers)
    n.add('Conv2D', 'c1', filters=4, kernel_size=[3, 3], activation='relu', gain=1.5)
    n.add('MaxPooling2D', 'max_pooling2d', pool_size=[2, 2])
    n.add('Conv2D', 'features', filters=6, kernel_size=[3, 3], activation='relu', gain=1.5)
    n.add('Flatten', 'flatten')
    n.add('Dense', 'logits', units=3, activation='softmax', gain=2.0)
    return n, dict(layers=['c1', 'features'], cls=1, filt=('features', 3))


def fixtures():
    return [('k3_func_merge',) + fixture_func_merge(),
            ('k3_nested_mobilenet',) + fixture_nested(),
            ('k3_nested_functional',) + fixture_nested_functional(),
            ('k3_preproc',) + fixture_preproc(),
            ('k3_mixed',) + fixture_mixed(),
            ('k3_shared',) + fixture_shared(),
            ('k3_seq_input',) + fixture_seq(True),
            ('k3_seq_noinput',) + fixture_seq(False)]


# ---------------------------------------------------------------------------
# References


def rel(a, b):
    return mg.rel(a, b)


def parse_layer_ref(spec):
    name, _, call = spec.partition('@')
    return name, int(call or 0)


def objectives(model, spec, vals, pres, kind):
    if kind[0] == 'class':
        lname, pre = logit_node(model)
        t = (pres if pre else vals)[(lname, 0)]
        return t[:, kind[1]].sum()
    lname, f = kind[1], kind[2]
    t = vals[(lname, 0)]
    return t[..., f].mean(dim=(1, 2)).sum() if isinstance(t, torch.Tensor) else \
        t[..., f].mean(axis=(1, 2)).sum()


def references(name, model, spec, summary):
    rng = np.random.default_rng(9000 + len(summary))
    shape = (2,) + tuple(model.batch_shape[1:])
    lo, hi = spec.get('input_range', (-1.0, 1.0))
    x32 = rng.uniform(lo, hi, shape).astype(np.float32)
    pre = os.path.join(OUT, name)
    np.save(pre + '.input.npy', x32)
    files = {'input': name + '.input.npy'}

    x = torch.from_numpy(x32.astype(np.float64))
    out, vals, pres = torch_run(model, x)
    nout, nvals, npres = numpy_run(model, x32.astype(np.float64))
    for k in vals:
        e = rel(vals[k].numpy(), nvals[k])
        assert e < 1e-12, (name, k, e)
    np.save(pre + '.output.npy', out.numpy().astype(np.float64))
    files['output'] = name + '.output.npy'
    files['layers'] = {}
    for spec_l in spec['layers']:
        lname, call = parse_layer_ref(spec_l)
        fn = '%s.%s.npy' % (name, lname if '@' not in spec_l else '%s.call%d' % (lname, call))
        np.save(os.path.join(OUT, fn), vals[(lname, call)].numpy().astype(np.float32))
        files['layers'][spec_l] = fn

    objs = []
    lname, is_pre = logit_node(model)
    for kind in (('class', spec['cls']), ('filter',) + spec['filt']):
        xg = torch.from_numpy(x32.astype(np.float64)).requires_grad_(True)
        _, v, p = torch_run(model, xg)
        J = objectives(model, spec, v, p, kind)
        J.backward()
        g = xg.grad.numpy()
        # central differences of the NumPy forward along random directions
        for _ in range(3):
            d = rng.standard_normal(x32.shape)
            eps = 1e-6 * max(1.0, hi - lo) / 2   # small: thousands of ReLU/ReLU6 kinks
            _, vp, pp = numpy_run(model, x32.astype(np.float64) + eps * d)
            _, vm, pm = numpy_run(model, x32.astype(np.float64) - eps * d)
            fd = (objectives(model, spec, vp, pp, kind) - objectives(model, spec, vm, pm, kind)) \
                / (2 * eps)
            an = float((g * d).sum())
            assert abs(fd - an) <= 1e-5 * max(1.0, abs(an)), (name, kind, fd, an)
        # float32 conditioning: no kink so close that float32 rounding would cross it
        x32t = torch.from_numpy(x32).requires_grad_(True)
        _, v32, p32 = torch_run(model, x32t, torch.float32)
        objectives(model, spec, v32, p32, kind).backward()
        e_grad = rel(x32t.grad.numpy(), g)
        assert e_grad < 1e-5, (name, kind, e_grad)
        if kind[0] == 'class':
            fn = '%s.grad_class%d.npy' % (name, kind[1])
            obj = {'objective': 'class:%d' % kind[1], 'file': fn,
                   'definition': 'sum over the 2 images of the pre-softmax logit %d (%s of '
                                 'layer %s); each image\'s gradient depends only on it'
                                 % (kind[1], 'pre-activation' if is_pre else 'input',
                                    lname)}
        else:
            fn = '%s.grad_%s_f%d.npy' % (name, kind[1], kind[2])
            obj = {'objective': 'filter:%s:%d' % (kind[1], kind[2]), 'file': fn,
                   'definition': 'sum over the 2 images of the spatial mean of channel %d of '
                                 'the output of %s (after its activation)'
                                 % (kind[2], kind[1])}
        np.save(os.path.join(OUT, fn), g.astype(np.float64))
        obj['float32_rel_err'] = float('%.2g' % e_grad)
        objs.append(obj)
    _, v32, _ = torch_run(model, torch.from_numpy(x32), torch.float32)
    e_out = rel(v32[model.output].numpy(), out.numpy())
    assert e_out < 2e-6, (name, e_out)
    files['objectives'] = objs
    return files


def check_real_file():
    """The same reader and reference on the real Keras 3.15 file."""
    path = os.path.join(REAL, 'mnist_cnn_keras3.15.1.keras')
    if not os.path.exists(path):
        print('real Keras 3.15 file not found, skipped:', path)
        return None
    model = read_archive(path)
    exp = {}
    with open(os.path.join(REAL, 'expected', 'mnist_cnn_keras3.15.1.output.txt')) as f:
        for line in f:
            k, *v = line.split()
            exp[k] = np.array([float(t) for t in v])
    worst = 0.0
    for k, want in exp.items():
        x = np.load(os.path.join(REAL, 'expected', 'input_%s.npy' % k)).astype(np.float64)
        y, _, _ = torch_run(model, torch.from_numpy(x))
        e = rel(y.numpy()[0], want)
        worst = max(worst, e)
        assert e < 1e-5, (k, e)
    print('real Keras 3.15 file: reader + torch reference match expected/ to %.1e' % worst)
    return worst


# ---------------------------------------------------------------------------
# Bad archives


def bad_archives(src_name, src_config, src_weights, meta):
    bad = os.path.join(OUT, 'bad')
    os.makedirs(bad)
    out = {}

    def put(fn, why, entries=None, raw=None):
        p = os.path.join(bad, fn)
        if raw is not None:
            with open(p, 'wb') as f:
                f.write(raw)
        else:
            write_zip(p, entries)
        out['bad/' + fn] = why

    # the weights of <src_name> without the optimizer state (as a model saved before
    # compile()): the bad archives stay small
    slim = io.BytesIO()
    with h5py.File(io.BytesIO(src_weights), 'r') as src, h5py.File(slim, 'w') as dst:
        for k in ('layers', 'vars'):
            src.copy(k, dst)
    src_weights = slim.getvalue()
    good = [('metadata.json', meta), ('config.json', src_config),
            ('model.weights.h5', src_weights)]
    whole = io.BytesIO()
    write_zip(whole, good)
    whole = whole.getvalue()
    put('truncated.keras', 'the first 60%% of a valid archive of %s (no central directory)'
        % src_name,
        raw=whole[:len(whole) * 6 // 10])
    put('no_config.keras', 'zip without config.json', [good[0], good[2]])
    put('no_weights.keras', 'zip without model.weights.h5', good[:2])
    put('bad_json.keras', 'config.json is cut in the middle (invalid JSON)',
        [good[0], ('config.json', src_config[:len(src_config) // 2]), good[2]])
    put('evil_path.keras', 'a valid archive plus an entry named ../evil',
        good + [('../evil', b'must never be written outside\n')])

    # shape disagreeing with the config: first conv kernel (3,3,2,4) stored as (3,3,2,5)
    bio = io.BytesIO(src_weights)
    h5b = io.BytesIO()
    with h5py.File(bio, 'r') as src, h5py.File(h5b, 'w') as dst:
        for k in src.keys():
            src.copy(k, dst)
        g = dst['layers/conv2d/vars']
        k0 = np.array(g['0'])
        del g['0']
        g['0'] = np.concatenate([k0, k0[..., :1]], axis=-1)
    put('shape_mismatch.keras', 'layers/conv2d/vars/0 (layer c1) has shape (3,3,2,5), the '
        'config says filters 4: (3,3,2,4)', [good[0], good[1], ('model.weights.h5',
                                                               h5b.getvalue())])
    # a layer missing from the weights
    h5c = io.BytesIO()
    with h5py.File(io.BytesIO(src_weights), 'r') as src, h5py.File(h5c, 'w') as dst:
        for k in src.keys():
            src.copy(k, dst)
        del dst['layers/conv2d_1']
    put('missing_layer_weights.keras', 'model.weights.h5 has no layers/conv2d_1 (layer '
        '"features")', [good[0], good[1], ('model.weights.h5', h5c.getvalue())])

    # custom layer: registered_name Custom>MyLayer, module outside keras
    cfg = json.loads(src_config)
    lay = cfg['config']['layers']
    custom = {'module': 'my_package.layers', 'class_name': 'MyLayer',
              'config': {'name': 'my_layer', 'trainable': True,
                         'dtype': lay[1]['config']['dtype'], 'factor': 2.0},
              'registered_name': 'Custom>MyLayer',
              'build_config': {'input_shape': [None, 9, 9, 4]}}
    lay.insert(2, custom)
    h5d = io.BytesIO()
    with h5py.File(io.BytesIO(src_weights), 'r') as src, h5py.File(h5d, 'w') as dst:
        for k in src.keys():
            src.copy(k, dst)
        # container keys after the insert: conv2d, my_layer, max_pooling2d, conv2d_1, ...
        g = dst.create_group('layers/my_layer/vars')
        g.attrs['name'] = 'my_layer'
        g['0'] = np.ones((4,), np.float32)
    put('custom_layer.keras', 'layer "my_layer" of class MyLayer, registered_name '
        '"Custom>MyLayer", module "my_package.layers"',
        [good[0], ('config.json', json.dumps(cfg).encode()), ('model.weights.h5',
                                                               h5d.getvalue())])

    # zip bombs: a small deflate stream of zeros
    zeros = 8 << 20                                    # 8 MiB of zeros -> ~8 KB deflated
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(1 << 20)
    comp = b''.join(co.compress(chunk) for _ in range(zeros >> 20)) + co.flush()
    crc = 0
    for _ in range(zeros >> 20):
        crc = zlib.crc32(chunk, crc)
    declared = 3 << 30                                 # 3 GiB claimed
    put('zip_bomb_declared.keras', 'model.weights.h5 declares 3 GiB uncompressed (ZIP64 '
        'sizes); its deflate stream holds 8 MiB of zeros', raw=craft_zip(
            good[:2], ('model.weights.h5', comp, declared, crc)))
    put('zip_bomb_hidden.keras', 'model.weights.h5 declares %d bytes (the real size of '
        'the weights) but its deflate stream inflates to 8 MiB of zeros' % len(src_weights),
        raw=craft_zip(good[:2], ('model.weights.h5', comp, len(src_weights), crc)))
    return out


def craft_zip(stored, bomb):
    """A zip with stored entries and one deflated entry whose sizes in the local
    header and the central directory are whatever we say (ZIP64 when needed)."""
    import struct
    out = bytearray()
    cd = bytearray()
    dostime = (21 << 11) | (11 << 5) | 17
    dosdate = ((2026 - 1980) << 9) | (8 << 5) | 17
    ents = [(n, d, len(d), zlib.crc32(d), 0) for n, d in stored]
    bn, bdata, bsize, bcrc = bomb
    ents.append((bn, bdata, bsize, bcrc, 8))
    for name, data, usize, crc, method in ents:
        nb = name.encode()
        off = len(out)
        z64 = usize >= 0xFFFFFFFF
        extra = struct.pack('<HHQQ', 1, 16, usize, len(data)) if z64 else b''
        out += struct.pack('<IHHHHHIIIHH', 0x04034b50, 45 if z64 else 20, 0, method, dostime,
                           dosdate, crc, 0xFFFFFFFF if z64 else len(data),
                           0xFFFFFFFF if z64 else usize, len(nb), len(extra)) + nb + extra
        out += data
        cextra = struct.pack('<HHQQ', 1, 16, usize, len(data)) if z64 else b''
        cd += struct.pack('<IHHHHHHIIIHHHHHII', 0x02014b50, 45 if z64 else 20,
                          45 if z64 else 20, 0, method, dostime, dosdate, crc,
                          0xFFFFFFFF if z64 else len(data), 0xFFFFFFFF if z64 else usize,
                          len(nb), len(cextra), 0, 0, 0, 0o600 << 16, off) + nb + cextra
    cd_off = len(out)
    out += cd
    out += struct.pack('<IHHHHIIH', 0x06054b50, 0, 0, len(ents), len(ents), len(cd), cd_off, 0)
    return bytes(out)


# ---------------------------------------------------------------------------


def main():
    if os.path.isdir(OUT):
        for f in os.listdir(OUT):
            p = os.path.join(OUT, f)
            if f == 'README.md':
                continue
            shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
    os.makedirs(OUT, exist_ok=True)
    real_err = check_real_file()
    manifest = {'about': 'tests/data/keras3/README.md', 'keras_version': KERAS_VERSION,
                'tolerance': {'forward_rel': FWD_TOL, 'grad_rel': GRAD_TOL,
                              'metric': 'max|a-b| / max|b| over the whole array'},
                'fixtures': {}, 'bad': {}}
    summary = []
    seq_src = None
    for name, net, spec in fixtures():
        key_map, config, wbytes, meta = save_fixture(net, name)
        model = read_archive(os.path.join(OUT, name + '.keras'))
        files = references(name, model, spec, summary)
        ent = {'routes': {'keras': name + '.keras', 'folder': name + '_unzipped',
                          'weights': name + '.weights.h5', 'arch': name + '.config.json'},
               'class': net.cls, 'input_shape': [2] + list(model.batch_shape[1:]),
               'input_layout': 'NHWC float32',
               'input_range': list(spec.get('input_range', (-1.0, 1.0))),
               'output_dtype': 'float64',
               'inner_layers_dtype': 'float32', 'grad_dtype': 'float64',
               'weight_keys': key_map}
        ent.update(files)
        manifest['fixtures'][name] = ent
        summary.append(name)
        print('%-20s %-10s keys: %s' % (name, net.cls, ', '.join(
            '%s->%s' % (k, v) for k, v in list(key_map.items())[:6])))
        if name == 'k3_seq_input':
            seq_src = (name, config, wbytes, meta)
    manifest['bad'] = bad_archives(*seq_src)
    manifest['real_keras_3_15_check_rel_err'] = real_err
    with open(os.path.join(OUT, 'manifest.json'), 'w') as f:
        json.dump(manifest, f, indent=1)
        f.write('\n')
    total = 0
    for root, _, fs in os.walk(OUT):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in fs)
    print('total fixture size: %d bytes' % total)
    assert total < 1700000, total


if __name__ == '__main__':
    main()
