"""Writes Keras model files (.h5) in the layout `model.save()` produced with
standalone Keras 2.2.4 (TensorFlow backend, h5py 2.x era), and optionally in the
tf.keras 2.4.0 layout, without Keras itself.

Layout (see /work/shared/docs/keras-h5-format.md, sections 2-7):

  /                       @keras_version @backend (vlen ASCII; vlen UTF-8 for tf.keras 2.4)
                          @model_config (vlen ASCII JSON) [@training_config]
  /model_weights          @layer_names (fixed-length S<n>, NULLPAD) @backend @keras_version
  /model_weights/<layer>  @weight_names (fixed-length S<n>; empty list = float64[0])
  /model_weights/<layer>/<layer>/kernel:0 ...   contiguous float32 datasets
  [/optimizer_weights]    @weight_names + datasets (Adam state), ignored by loaders

Layer configs carry every field the Keras version's get_config() writes, in the
same key order. Only the pieces the golden models use are implemented.
"""
import json
import re

import h5py
import numpy as np

# ---------------------------------------------------------------------------
# Names

def snake(cls):
    """Keras' _to_snake_case: Conv2D -> conv2d, LeakyReLU -> leaky_re_lu."""
    s = re.sub('(.)([A-Z][a-z0-9]+)', r'\1_\2', cls)
    return re.sub('([a-z])([A-Z])', r'\1_\2', s).lower()


class Namer:
    """Keras' per-session unique layer names: 2.2.4 counts from 1 (conv2d_1),
    tf.keras 2.4 starts without suffix (conv2d, conv2d_1)."""

    def __init__(self, tf24=False):
        self.tf24 = tf24
        self.count = {}

    def __call__(self, cls):
        base = 'input' if cls == 'InputLayer' else snake(cls)
        n = self.count.get(base, 0)
        self.count[base] = n + 1
        if self.tf24:
            return base if n == 0 else '%s_%d' % (base, n)
        return '%s_%d' % (base, n + 1)


# ---------------------------------------------------------------------------
# Layer configs

REQUIRED = object()
POOL = object()


def _init(kind, tf24):
    if kind == 'glorot_uniform':
        if tf24:
            return {'class_name': 'GlorotUniform', 'config': {'seed': None}}
        return {'class_name': 'VarianceScaling',
                'config': {'scale': 1.0, 'mode': 'fan_avg', 'distribution': 'uniform',
                           'seed': None}}
    if kind == 'zeros':
        return {'class_name': 'Zeros', 'config': {}}
    if kind == 'ones':
        return {'class_name': 'Ones', 'config': {}}
    raise ValueError(kind)


def _conv_fields(tf24):
    f = [('filters', REQUIRED), ('kernel_size', REQUIRED), ('strides', [1, 1]), ('padding', 'valid'),
         ('data_format', 'channels_last'), ('dilation_rate', [1, 1])]
    if tf24:
        f.append(('groups', 1))
    f += [('activation', 'linear'), ('use_bias', True),
          ('kernel_initializer', _init('glorot_uniform', tf24)),
          ('bias_initializer', _init('zeros', tf24)),
          ('kernel_regularizer', None), ('bias_regularizer', None),
          ('activity_regularizer', None), ('kernel_constraint', None), ('bias_constraint', None)]
    return f


def _fields(cls, tf24):
    """(key, default) in the order Keras' get_config writes them (after name,
    trainable[, batch_input_shape, dtype])."""
    g = lambda k: _init(k, tf24)
    if cls == 'Conv2D':
        return _conv_fields(tf24)
    if cls == 'SeparableConv2D':
        f = [kv for kv in _conv_fields(tf24)
             if kv[0] not in ('kernel_initializer', 'kernel_regularizer', 'kernel_constraint')]
        return f + [('depth_multiplier', 1), ('depthwise_initializer', g('glorot_uniform')),
                    ('pointwise_initializer', g('glorot_uniform')),
                    ('depthwise_regularizer', None), ('pointwise_regularizer', None),
                    ('depthwise_constraint', None), ('pointwise_constraint', None)]
    if cls == 'DepthwiseConv2D':
        f = [kv for kv in _conv_fields(tf24)
             if kv[0] not in ('filters', 'kernel_initializer', 'kernel_regularizer',
                              'kernel_constraint')]
        return f + [('depth_multiplier', 1), ('depthwise_initializer', g('glorot_uniform')),
                    ('depthwise_regularizer', None), ('depthwise_constraint', None)]
    if cls == 'Dense':
        return [('units', REQUIRED), ('activation', 'linear'), ('use_bias', True),
                ('kernel_initializer', g('glorot_uniform')), ('bias_initializer', g('zeros')),
                ('kernel_regularizer', None), ('bias_regularizer', None),
                ('activity_regularizer', None), ('kernel_constraint', None),
                ('bias_constraint', None)]
    if cls in ('MaxPooling2D', 'AveragePooling2D'):
        return [('pool_size', [2, 2]), ('padding', 'valid'), ('strides', POOL),
                ('data_format', 'channels_last')]
    if cls in ('GlobalAveragePooling2D', 'GlobalMaxPooling2D', 'Flatten'):
        return [('data_format', 'channels_last')]
    if cls == 'BatchNormalization':
        return [('axis', [3] if tf24 else -1), ('momentum', 0.99), ('epsilon', 0.001),
                ('center', True), ('scale', True),
                ('beta_initializer', g('zeros')), ('gamma_initializer', g('ones')),
                ('moving_mean_initializer', g('zeros')),
                ('moving_variance_initializer', g('ones')),
                ('beta_regularizer', None), ('gamma_regularizer', None),
                ('beta_constraint', None), ('gamma_constraint', None)]
    if cls == 'ZeroPadding2D':
        return [('padding', [[1, 1], [1, 1]]), ('data_format', 'channels_last')]
    if cls == 'Cropping2D':
        return [('cropping', [[0, 0], [0, 0]]), ('data_format', 'channels_last')]
    if cls == 'UpSampling2D':
        return [('size', [2, 2]), ('data_format', 'channels_last'), ('interpolation', 'nearest')]
    if cls == 'Dropout':
        return [('rate', 0.5), ('noise_shape', None), ('seed', None)]
    if cls == 'Activation':
        return [('activation', REQUIRED)]
    if cls == 'Reshape':
        return [('target_shape', REQUIRED)]
    if cls == 'ReLU':
        return [('max_value', None), ('negative_slope', 0.0), ('threshold', 0.0)]
    if cls in ('LeakyReLU', 'ELU'):
        return [('alpha', 0.3 if cls == 'LeakyReLU' else 1.0)]
    if cls == 'PReLU':
        return [('alpha_initializer', g('zeros')), ('alpha_regularizer', None),
                ('alpha_constraint', None), ('shared_axes', None)]
    if cls == 'Softmax':
        return [('axis', -1)]
    if cls == 'Concatenate':
        return [('axis', -1)]
    if cls in ('Add', 'Subtract', 'Multiply', 'Average', 'Maximum', 'Minimum'):
        return []
    raise ValueError('no config fields for ' + cls)


def layer_config(cls, name, tf24=False, batch_input_shape=None, **kw):
    """The `config` object of one layer as Keras' get_config() returns it."""
    cfg = {'name': name, 'trainable': True}
    if batch_input_shape is not None:
        cfg['batch_input_shape'] = list(batch_input_shape)
        cfg['dtype'] = 'float32'
    elif tf24:
        cfg['dtype'] = 'float32'
    for key, default in _fields(cls, tf24):
        if key in kw:
            cfg[key] = kw.pop(key)
        elif default is REQUIRED:
            raise ValueError('%s %s: %s is required' % (cls, name, key))
        elif default is POOL:
            cfg[key] = list(cfg['pool_size'])   # pooling strides default to pool_size
        else:
            cfg[key] = default
    if kw:
        raise ValueError('%s %s: unknown fields %s' % (cls, name, sorted(kw)))
    return cfg


def input_layer_config(name, batch_input_shape, tf24=False):
    if tf24:
        return {'batch_input_shape': list(batch_input_shape), 'dtype': 'float32',
                'sparse': False, 'ragged': False, 'name': name}
    return {'batch_input_shape': list(batch_input_shape), 'dtype': 'float32',
            'sparse': False, 'name': name}


# ---------------------------------------------------------------------------
# Weights: names and order per layer type

def weight_roles(cls, cfg):
    """Names of the weights in weight_names order (Keras: trainable, then
    non-trainable)."""
    if cls in ('Conv2D', 'Dense'):
        return ['kernel', 'bias'] if cfg['use_bias'] else ['kernel']
    if cls == 'SeparableConv2D':
        return ['depthwise_kernel', 'pointwise_kernel'] + (['bias'] if cfg['use_bias'] else [])
    if cls == 'DepthwiseConv2D':
        return ['depthwise_kernel'] + (['bias'] if cfg['use_bias'] else [])
    if cls == 'BatchNormalization':
        return ((['gamma'] if cfg['scale'] else []) + (['beta'] if cfg['center'] else [])
                + ['moving_mean', 'moving_variance'])
    if cls == 'PReLU':
        return ['alpha']
    return []


# ---------------------------------------------------------------------------
# Writing

def _fixed_names(names):
    """Keras: group.attrs[name] = [b'...', ...] -> NumPy S<n> array -> fixed-length
    NULLPAD strings (h5py 2.x). An empty list becomes float64[0]."""
    if not names:
        return np.asarray([])
    enc = [n.encode('utf8') for n in names]
    return np.array(enc, dtype='S%d' % max(len(e) for e in enc))


def _vlen(s, utf8):
    # h5py: str -> vlen UTF-8, bytes -> vlen ASCII
    return s if utf8 else s.encode('utf8')


def save_model(path, model_config, layer_weights, keras_version='2.2.4', backend='tensorflow',
               training_config=None, optimizer_weights=None):
    """layer_weights: list of (layer_name, [(weight_name, float32 array), ...]) in
    model.layers order. optimizer_weights: list of (name, array) or None."""
    utf8_root = keras_version.startswith('2.4')
    with h5py.File(path, 'w') as f:  # libver 'earliest' as Keras (superblock 0, old groups)
        f.attrs['keras_version'] = _vlen(keras_version, utf8_root)
        f.attrs['backend'] = _vlen(backend, utf8_root)
        f.attrs['model_config'] = json.dumps(model_config).encode('utf8')
        g = f.create_group('model_weights')
        g.attrs['layer_names'] = _fixed_names([name for name, _ in layer_weights])
        g.attrs['backend'] = backend.encode('utf8')
        g.attrs['keras_version'] = keras_version.encode('utf8')
        for lname, weights in layer_weights:
            lg = g.create_group(lname)
            lg.attrs['weight_names'] = _fixed_names([wn for wn, _ in weights])
            for wn, val in weights:
                d = lg.create_dataset(wn, val.shape, dtype=val.dtype)
                if val.shape:
                    d[:] = val
                else:
                    d[()] = val
        if training_config is not None:
            f.attrs['training_config'] = json.dumps(training_config).encode('utf8')
        if optimizer_weights:
            og = f.create_group('optimizer_weights')
            og.attrs['weight_names'] = _fixed_names([wn for wn, _ in optimizer_weights])
            for wn, val in optimizer_weights:
                d = og.create_dataset(wn, val.shape, dtype=val.dtype)
                if val.shape:
                    d[:] = val
                else:
                    d[()] = val


def adam_training_config():
    """training_config of a model compiled with Adam() and categorical crossentropy
    (Keras 2.2.4: optimizer values are float32 variables read back)."""
    f32 = lambda v: float(np.float32(v))
    return {'optimizer_config': {'class_name': 'Adam',
                                 'config': {'lr': f32(0.001), 'beta_1': f32(0.9),
                                            'beta_2': f32(0.999), 'decay': 0.0,
                                            'epsilon': 1e-07, 'amsgrad': False}},
            'loss': 'categorical_crossentropy', 'metrics': ['accuracy'],
            'sample_weight_mode': None, 'loss_weights': None}


def adam_weights(params, rng):
    """Keras 2.2.4 Adam.weights: [iterations] + ms + vs + vhats."""
    out = [('Adam/iterations:0', np.array(1234, dtype=np.int64))]
    k = 0
    for kind in ('m', 'v', 'vhat'):
        for p in params:
            name = 'training/Adam/Variable:0' if k == 0 else 'training/Adam/Variable_%d:0' % k
            k += 1
            if kind == 'vhat':
                out.append((name, np.zeros((1,), np.float32)))
            else:
                val = rng.standard_normal(p.shape).astype(np.float32) * 1e-3
                out.append((name, np.abs(val) if kind == 'v' else val))
    return out


# ---------------------------------------------------------------------------
# Reading back (for the generator's own checks)

def _names(attr):
    if attr.dtype.kind == 'f':
        assert attr.shape == (0,)
        return []
    return [a.decode('utf8') if isinstance(a, bytes) else a for a in attr]


def load_model(path):
    """Reads a file written by save_model like a loader would: returns
    (root attrs dict, model_config dict, {layer: [(weight_name, array)]}, layer_names)."""
    with h5py.File(path, 'r') as f:
        attrs = {k: (v.decode('utf8') if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        cfg = json.loads(attrs['model_config'])
        g = f['model_weights']
        names = _names(g.attrs['layer_names'])
        weights = {}
        for n in names:
            wn = _names(g[n].attrs['weight_names'])
            weights[n] = [(w, np.array(g[n][w])) for w in wn]
    return attrs, cfg, weights, names
