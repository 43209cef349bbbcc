#!/usr/bin/env python3
"""Reference numbers for tests/test_optim.c (src/optim/), in float64 NumPy
(and PyTorch for the bilinear resize), written independently of the C code
from the definitions in include/featviz/optim.h.

Writes tests/data/optim/optim.txt: one array per line, `name count v0 v1 ...`
('#' lines are comments). Inputs are rounded to float32 first so the C test
sees exactly the same numbers. Images are NHWC (featviz layout), row-major.

Contents:
  irfft2_HxW_spec/_out    numpy.fft.irfft2(spec, s=(H, W)), random complex spectra
                          including imaginary parts on the DC/Nyquist columns
  rfft2_HxW_x/_spec       numpy.fft.rfft2(x)
  fscale_HxW_dD           Lucid's spectrum scale 1/max(f, 1/max(h,w))^D * sqrt(h*w)
  fparam_HxWxC_theta/_u   the whole Fourier parameterization (Lucid fft_image +
                          _linear_decorrelate_color + sigmoid), theta (C, H, W/2+1, 2)
  imagenet_m              Lucid color_correlation_svd_sqrt / max column norm
  cstats_images/_m        colour matrix from data (dream-creator calc_cm.py style)
  adam_*, ascent_*, rmsprop_*   update rules, 3 steps
  blur_*                  Gaussian blur, scipy.ndimage.gaussian_filter conventions
  resize_*                torch.nn.functional.interpolate(bilinear, align_corners=False)
  warp_*                  the composite affine warp, per-pixel reference
  reg_*                   regularizer values
  rng_*                   splitmix64 + xoshiro256** streams

Run from anywhere: /usr/bin/python3 tests/tools/make_optim_fixtures.py
Deterministic (fixed seeds).
"""
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "optim")
rng = np.random.default_rng(20240611)


def f32(a):
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def emit(lines, name, arr):
    arr = np.asarray(arr, dtype=np.float64).ravel()
    lines.append(name + " " + str(arr.size) + " " + " ".join("%.17g" % v for v in arr))


# ---------------------------------------------------------------- Fourier

def fft_cases(lines):
    for h, w in [(4, 6), (5, 7), (6, 5), (1, 4), (3, 1), (8, 8), (7, 3), (2, 2)]:
        wf = w // 2 + 1
        spec = f32(rng.normal(size=(h, wf, 2)))
        out = np.fft.irfft2(spec[..., 0] + 1j * spec[..., 1], s=(h, w))
        emit(lines, "irfft2_%dx%d_spec" % (h, w), spec)
        emit(lines, "irfft2_%dx%d_out" % (h, w), out)
        x = f32(rng.normal(size=(h, w)))
        X = np.fft.rfft2(x)
        emit(lines, "rfft2_%dx%d_x" % (h, w), x)
        emit(lines, "rfft2_%dx%d_spec" % (h, w), np.stack([X.real, X.imag], -1))


def lucid_scale(h, w, decay):
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    freqs = np.sqrt(fx * fx + fy * fy)
    scale = 1.0 / np.maximum(freqs, 1.0 / max(w, h)) ** decay
    return scale * np.sqrt(w * h)


IMAGENET = np.asarray([[0.26, 0.09, 0.02],
                       [0.27, 0.00, -0.05],
                       [0.27, -0.09, 0.03]]).astype(np.float32).astype(np.float64)


def imagenet_normalized():
    return IMAGENET / np.max(np.linalg.norm(IMAGENET, axis=0))


def fourier_param(theta, h, w, c, decorrelate):
    """theta (C, H, W/2+1, 2) -> u (H, W, C), Lucid's pipeline with numpy's irfft2."""
    scale = lucid_scale(h, w, 1.0)
    spec = scale * (theta[..., 0] + 1j * theta[..., 1])          # (C, H, wf)
    img = np.fft.irfft2(spec, s=(h, w)) / 4.0                    # (C, H, W)
    t = np.transpose(img, (1, 2, 0))                             # (H, W, C)
    if decorrelate and c == 3:
        t = (t.reshape(-1, 3) @ imagenet_normalized().T).reshape(t.shape)
    return 1.0 / (1.0 + np.exp(-t))


def fparam_cases(lines):
    for h, w, d in [(8, 8, 1.0), (6, 5, 1.0), (5, 8, 1.5)]:
        emit(lines, "fscale_%dx%d_d%g" % (h, w, d), lucid_scale(h, w, d))
    for h, w, c in [(8, 8, 3), (6, 5, 3), (5, 6, 1)]:
        theta = f32(rng.normal(scale=1.5, size=(c, h, w // 2 + 1, 2)))
        emit(lines, "fparam_%dx%dx%d_theta" % (h, w, c), theta)
        emit(lines, "fparam_%dx%dx%d_u" % (h, w, c), fourier_param(theta, h, w, c, True))


# ---------------------------------------------------------------- colour

def colour_cases(lines):
    emit(lines, "imagenet_m", imagenet_normalized())
    # correlated colours: x = base @ mix + noise, three 4x5 images
    mix = np.array([[0.6, 0.5, 0.4], [0.1, -0.2, 0.3], [0.05, 0.1, -0.1]])
    imgs = f32(rng.normal(size=(3, 4, 5, 3)) @ mix + 0.5)
    emit(lines, "cstats_images", imgs)
    cov = np.zeros((3, 3))
    for im in imgs:
        cov += np.cov(im.reshape(-1, 3), rowvar=False, ddof=1)
    cov /= len(imgs)
    val, vec = np.linalg.eigh(cov)
    order = np.argsort(-val)
    val, vec = val[order], vec[:, order]
    for j in range(3):
        col = vec[:, j]
        big = np.max(np.abs(col))
        first = next(i for i in range(3) if abs(col[i]) > 1e-4 * big)
        if col[first] < 0:
            vec[:, j] = -col
    m = vec @ np.diag(np.sqrt(np.maximum(val, 0) + 1e-10))
    m /= np.max(np.linalg.norm(m, axis=0))
    emit(lines, "cstats_m", m)


# ---------------------------------------------------------------- steps

def step_cases(lines):
    n, size = 2, 5
    theta0 = f32(rng.normal(size=(n, size)))
    grads = [f32(rng.normal(size=(n, size)) * s) for s in (1.0, 0.3, 2.0)]
    emit(lines, "steps_theta0", theta0)
    for k, g in enumerate(grads):
        emit(lines, "steps_g%d" % k, g)
    # Adam (Kingma & Ba, PyTorch form), ascent
    lr, b1, b2, eps = 0.05, 0.9, 0.999, 1e-8
    th, m, v = theta0.copy(), np.zeros_like(theta0), np.zeros_like(theta0)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        th = th + lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
        emit(lines, "adam_theta%d" % t, th)
    # normalized gradient ascent, one step from theta0 with g0, per image
    g = grads[0]
    norms = {
        "none": np.ones((n, 1)),
        "meanabs": np.mean(np.abs(g), axis=1, keepdims=True),
        "rms": np.sqrt(np.mean(g * g, axis=1, keepdims=True)),
        "l2": np.sqrt(np.sum(g * g, axis=1, keepdims=True)),
    }
    for name, nv in norms.items():
        d = 1e-8 if name != "none" else 0.0
        emit(lines, "ascent_%s" % name, theta0 + 0.01 * g / (nv + d))
    # RMSprop (Keras form), ascent
    rho, eps_r, lr_r = 0.9, 1e-7, 0.01
    th, v = theta0.copy(), np.zeros_like(theta0)
    for t, g in enumerate(grads, start=1):
        v = rho * v + (1 - rho) * g * g
        th = th + lr_r * g / (np.sqrt(v) + eps_r)
        emit(lines, "rmsprop_theta%d" % t, th)
    # clipping
    gc = grads[2]
    emit(lines, "clipvalue", np.clip(gc, -0.5, 0.5))
    nrm = np.sqrt(np.sum(gc * gc, axis=1, keepdims=True))
    emit(lines, "clipnorm", gc * np.minimum(1.0, 1.5 / nrm))


# ---------------------------------------------------------------- blur

def gauss_kernel(sigma):
    r = int(4.0 * sigma + 0.5)
    x = np.arange(-r, r + 1)
    k = np.exp(-0.5 * x * x / (sigma * sigma))
    return k / k.sum(), r


def reflect_half(i, n):
    # scipy 'reflect': d c b a | a b c d | d c b a
    i = i % (2 * n)
    return i if i < n else 2 * n - 1 - i


def blur1d(a, axis, sigma):
    k, r = gauss_kernel(sigma)
    n = a.shape[axis]
    out = np.zeros_like(a)
    for i in range(n):
        idx = [reflect_half(i + j, n) for j in range(-r, r + 1)]
        taken = np.take(a, idx, axis=axis)                       # kernel taps on axis
        taken = np.moveaxis(taken, axis, -1)
        val = taken @ k
        sl = [slice(None)] * a.ndim
        sl[axis] = i
        out[tuple(sl)] = val
    return out


def blur_cases(lines):
    img = f32(rng.uniform(size=(2, 5, 7, 3)))
    emit(lines, "blur_in", img)
    for sigma in (0.8, 1.7):
        out = blur1d(blur1d(img, 2, sigma), 1, sigma)
        emit(lines, "blur_out_%g" % sigma, out)


# ---------------------------------------------------------------- resize

def resize_cases(lines):
    for (h, w), (H, W) in [((4, 5), (8, 10)), ((3, 5), (7, 9)), ((6, 6), (4, 3))]:
        x = f32(rng.uniform(size=(2, h, w, 3)))
        t = torch.from_numpy(x).permute(0, 3, 1, 2)
        y = F.interpolate(t, size=(H, W), mode="bilinear", align_corners=False)
        name = "resize_%dx%d_%dx%d" % (h, w, H, W)
        emit(lines, name + "_in", x)
        emit(lines, name + "_out", y.permute(0, 2, 3, 1).numpy())


# ---------------------------------------------------------------- warp

def warp_reference(u, p, pad, mode, fill):
    """v(p) = canvas(q), q = R(-a)(p - t2)/s - t1 in centred coordinates."""
    h, w, c = u.shape
    jx1, jy1, s, adeg, jx2, jy2 = p
    a = math.radians(adeg)
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0

    def canvas_index(i, n):
        if mode == "wrap":
            return i % n
        if pad == 0 or mode == "edge":
            return min(max(i, 0), n - 1)
        i = min(max(i, -pad), n - 1 + pad)
        if 0 <= i < n:
            return i
        if mode == "constant":
            return None
        if n == 1:
            return 0
        per = 2 * (n - 1)
        m = i % per
        return m if m < n else per - m

    v = np.zeros_like(u)
    for y in range(h):
        for x in range(w):
            px, py = x - cx - jx2, y - cy - jy2
            qx = (math.cos(a) * px - math.sin(a) * py) / s - jx1 + cx
            qy = (math.sin(a) * px + math.cos(a) * py) / s - jy1 + cy
            x0, y0 = math.floor(qx), math.floor(qy)
            tx, ty = qx - x0, qy - y0
            acc = np.zeros(c)
            for dy, wy in ((0, 1 - ty), (1, ty)):
                for dx, wx in ((0, 1 - tx), (1, tx)):
                    iy, ix = canvas_index(y0 + dy, h), canvas_index(x0 + dx, w)
                    val = np.full(c, fill) if iy is None or ix is None else u[iy, ix]
                    acc += wy * wx * val
            v[y, x] = acc
    return v


def warp_cases(lines):
    u = f32(rng.uniform(size=(7, 9, 3)))
    emit(lines, "warp_u", u)
    cases = [
        ("a", (1.3, -0.7, 1.1, 17.0, 0.4, 0.2), 2, "constant", 0.5),
        ("b", (-2.0, 1.0, 0.8, -33.0, 1.5, -0.5), 3, "reflect", 0.5),
        ("c", (0.25, 0.5, 1.3, 5.0, 0.0, 0.0), 1, "edge", 0.5),
        ("d", (3.5, -2.25, 0.9, 60.0, -1.0, 0.75), 0, "constant", 0.25),
        ("e", (6.0, 4.0, 0.5, 0.0, 0.0, 0.0), 8, "reflect", 0.0),
        ("f", (2.6, -3.3, 0.85, 25.0, 1.0, 0.5), 1, "wrap", 0.5),
    ]
    for name, p, pad, mode, fill in cases:
        p32 = f32(p)
        emit(lines, "warp_%s_params" % name, p32)
        emit(lines, "warp_%s_cfg" % name,
             [pad, {"constant": 0, "reflect": 1, "edge": 2, "wrap": 3}[mode], fill])
        emit(lines, "warp_%s_v" % name, warp_reference(u, tuple(p32), pad, mode, fill))


# ---------------------------------------------------------------- regularizers

def reg_cases(lines):
    u = f32(rng.uniform(size=(2, 4, 5, 3)))
    emit(lines, "reg_u", u)
    n = u[0].size
    for p in (2.0, 6.0, 1.5):
        emit(lines, "reg_lp_%g" % p, [np.sum(np.abs(im - 0.5) ** p) / n for im in u])
    tv1 = [(np.sum(np.abs(np.diff(im, axis=0))) + np.sum(np.abs(np.diff(im, axis=1)))) / n
           for im in u]
    emit(lines, "reg_tv_l1", tv1)
    for beta in (2.0, 1.5):
        vals = []
        for im in u:
            dy = im[1:, :-1] - im[:-1, :-1]
            dx = im[:-1, 1:] - im[:-1, :-1]
            vals.append(np.sum((dy * dy + dx * dx) ** (beta / 2)) / n)
        emit(lines, "reg_tv_beta_%g" % beta, vals)


# ---------------------------------------------------------------- rng

M64 = (1 << 64) - 1


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & M64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return state, z ^ (z >> 31)


def mix(x):
    return splitmix64(x)[1]


def rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M64


class Xoshiro:
    def __init__(self, seed, domain, a, b):
        h = mix(seed)
        h = mix(h ^ domain)
        h = mix(h ^ a)
        h = mix(h ^ b)
        self.s = []
        for _ in range(4):
            h, z = splitmix64(h)
            self.s.append(z)

    def next(self):
        s = self.s
        result = (rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result


def rng_cases(lines):
    keys = [(0, 1, 0, 0), (12345, 2, 7, 99), (M64, 16, 3, 1)]
    for i, key in enumerate(keys):
        g = Xoshiro(*key)
        halves = []
        for _ in range(4):
            x = g.next()
            halves += [x >> 32, x & 0xFFFFFFFF]
        emit(lines, "rng_%d_key_halves" % i, [[k >> 32, k & 0xFFFFFFFF] for k in key])
        emit(lines, "rng_%d_u64_halves" % i, halves)
        # then: uniform (top 24 bits), normal (Box-Muller, two draws)
        u = (g.next() >> 40) * 2.0 ** -24
        u1 = ((g.next() >> 11) + 1) * 2.0 ** -53
        u2 = (g.next() >> 11) * 2.0 ** -53
        z = math.sqrt(-2.0 * math.log(u1)) * math.cos(2 * math.pi * u2)
        emit(lines, "rng_%d_uniform_normal" % i, [u, z])


def main():
    os.makedirs(OUT, exist_ok=True)
    lines = ["# made by tests/tools/make_optim_fixtures.py; see its docstring"]
    fft_cases(lines)
    fparam_cases(lines)
    colour_cases(lines)
    step_cases(lines)
    blur_cases(lines)
    resize_cases(lines)
    warp_cases(lines)
    reg_cases(lines)
    rng_cases(lines)
    with open(os.path.join(OUT, "optim.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
