#!/usr/bin/python3
"""Fixtures for tests/test_image.c, test_npy.c, test_preprocess.c, test_labels.c.

Writes tests/data/io/. Deterministic (fixed seeds). Needs numpy, torch and PIL
(/usr/bin/python3 on the dev machine); CI only reads the committed output.

Independent references:
  * PNG files are written by a small encoder below (zlib + struct, all five
    filter types, Adam7) or by PIL -- never by libpng through our code; the
    expected pixels are the numpy arrays that were encoded.
  * JPEG files are written by PIL; expected = PIL's decode, plus the smooth
    source the JPEG was made from.
  * PPM/PGM files are written byte by byte here.
  * .npy files are written by numpy itself; values follow formulas that the C
    tests recompute.
  * resize references: torch float64 (bilinear, adaptive_avg_pool2d), numpy
    float64 (nearest as cv2, box filter), PIL mode "F" (bicubic).
  * preprocess references: numpy float64 on top of torch float64 bilinear.
Run: /usr/bin/python3 tests/tools/make_io_fixtures.py
"""
import os
import struct
import zlib

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "data", "io")
SHARED = os.path.join(os.path.dirname(os.path.dirname(ROOT)), "shared")


def path(name):
    return os.path.join(OUT, name)


def save_expect(name, arr):
    """Expected pixels/values as little-endian float64 .npy (numpy writes it)."""
    np.save(path(name), np.ascontiguousarray(arr, dtype="<f8"))


# ---------------------------------------------------------------- PNG encoder

def png_chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def pack_row(row, depth):
    """row: (W, S) ints -> scanline bytes (big-endian 16-bit, MSB-first bits)."""
    flat = row.reshape(-1).astype(np.int64)
    if depth == 16:
        return b"".join(struct.pack(">H", int(v)) for v in flat)
    if depth == 8:
        return bytes(int(v) for v in flat)
    per = 8 // depth
    out = bytearray()
    for i in range(0, len(flat), per):
        b = 0
        for j in range(per):
            v = int(flat[i + j]) if i + j < len(flat) else 0
            b |= v << (8 - depth * (j + 1))
        out.append(b)
    return bytes(out)


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def filter_row(raw, prior, ftype, bpp):
    out = bytearray([ftype])
    for i, x in enumerate(raw):
        a = raw[i - bpp] if i >= bpp else 0
        b = prior[i] if prior is not None else 0
        c = prior[i - bpp] if (prior is not None and i >= bpp) else 0
        pred = [0, a, b, (a + b) // 2, paeth(a, b, c)][ftype]
        out.append((x - pred) & 0xFF)
    return bytes(out)


def encode_image_rows(img, depth, bpp, filter_base):
    data = b""
    prior = None
    for y in range(img.shape[0]):
        raw = pack_row(img[y], depth)
        data += filter_row(raw, prior, (y + filter_base) % 5, bpp)
        prior = raw
    return data


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
         (0, 1, 1, 2)]


def write_png(name, samples, color_type, depth, palette=None, trns=None, interlace=False):
    """samples: (H, W, S) ints as stored in the file (palette indices for type 3)."""
    h, w, s = samples.shape
    bpp = max(1, s * depth // 8)
    if interlace:
        data = b""
        for p, (xs, ys, dx, dy) in enumerate(ADAM7):
            sub = samples[ys::dy, xs::dx]
            if sub.shape[0] and sub.shape[1]:
                data += encode_image_rows(sub, depth, bpp, p)
    else:
        data = encode_image_rows(samples, depth, bpp, 0)
    png = b"\x89PNG\r\n\x1a\n"
    png += png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0,
                                          1 if interlace else 0))
    if palette is not None:
        png += png_chunk(b"PLTE", bytes(int(v) for v in np.asarray(palette).reshape(-1)))
    if trns is not None:
        png += png_chunk(b"tRNS", trns)
    comp = zlib.compress(data, 9)
    png += png_chunk(b"IDAT", comp[: len(comp) // 2]) + png_chunk(b"IDAT", comp[len(comp) // 2:])
    png += png_chunk(b"IEND", b"")
    with open(path(name), "wb") as f:
        f.write(png)


def make_png(rng):
    H, W = 7, 9
    rgb8 = rng.integers(0, 256, (H, W, 3))
    a8 = rng.integers(0, 256, (H, W, 1))
    g8 = rng.integers(0, 256, (H, W, 1))
    rgb16 = rng.integers(0, 65536, (H, W, 3))
    a16 = rng.integers(0, 65536, (H, W, 1))
    g16 = rng.integers(0, 65536, (H, W, 1))

    # hand-encoded: (name, samples, color type, depth, expected (H,W,C) in 0..255)
    write_png("png_gray8.png", g8, 0, 8)
    save_expect("png_gray8.expect.npy", g8)
    write_png("png_gray16.png", g16, 0, 16)
    save_expect("png_gray16.expect.npy", g16 / 257.0)
    write_png("png_la8.png", np.concatenate([g8, a8], 2), 4, 8)
    save_expect("png_la8.expect.npy", g8)
    write_png("png_la16.png", np.concatenate([g16, a16], 2), 4, 16)
    save_expect("png_la16.expect.npy", g16 / 257.0)
    write_png("png_rgb8.png", rgb8, 2, 8)
    save_expect("png_rgb8.expect.npy", rgb8)
    write_png("png_rgb16.png", rgb16, 2, 16)
    save_expect("png_rgb16.expect.npy", rgb16 / 257.0)
    write_png("png_rgba8.png", np.concatenate([rgb8, a8], 2), 6, 8)
    save_expect("png_rgba8.expect.npy", rgb8)
    write_png("png_rgba16.png", np.concatenate([rgb16, a16], 2), 6, 16)
    save_expect("png_rgba16.expect.npy", rgb16 / 257.0)
    g4 = rng.integers(0, 16, (H, W, 1))
    write_png("png_gray4.png", g4, 0, 4)
    save_expect("png_gray4.expect.npy", g4 * 17)
    g1 = rng.integers(0, 2, (H, W, 1))
    write_png("png_gray1.png", g1, 0, 1)
    save_expect("png_gray1.expect.npy", g1 * 255)
    # gray with a tRNS colour key: the key is ignored (alpha dropped)
    write_png("png_gray8_trns.png", g8, 0, 8, trns=struct.pack(">H", int(g8[0, 0, 0])))
    save_expect("png_gray8_trns.expect.npy", g8)
    # palette 8-bit with tRNS, palette 2-bit without
    pal = rng.integers(0, 256, (20, 3))
    idx = rng.integers(0, 20, (H, W, 1))
    write_png("png_pal8_trns.png", idx, 3, 8, palette=pal,
              trns=bytes(int(v) for v in rng.integers(0, 256, 12)))
    save_expect("png_pal8_trns.expect.npy", pal[idx[:, :, 0]])
    pal4 = rng.integers(0, 256, (4, 3))
    idx2 = rng.integers(0, 4, (H, W, 1))
    write_png("png_pal2.png", idx2, 3, 2, palette=pal4)
    save_expect("png_pal2.expect.npy", pal4[idx2[:, :, 0]])
    # Adam7 interlaced, sizes that leave some passes short
    big8 = rng.integers(0, 256, (13, 11, 3))
    write_png("png_rgb8_adam7.png", big8, 2, 8, interlace=True)
    save_expect("png_rgb8_adam7.expect.npy", big8)
    big16 = rng.integers(0, 65536, (10, 6, 1))
    write_png("png_gray16_adam7.png", big16, 0, 16, interlace=True)
    save_expect("png_gray16_adam7.expect.npy", big16 / 257.0)

    # PIL's own encoder (adaptive filtering, its zlib settings)
    Image.fromarray(rgb8.astype(np.uint8), "RGB").save(path("pil_rgb8.png"))
    save_expect("pil_rgb8.expect.npy", rgb8)
    rgba = np.concatenate([rgb8, a8], 2).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(path("pil_rgba8.png"))
    save_expect("pil_rgba8.expect.npy", rgb8)
    p = Image.fromarray(idx[:, :, 0].astype(np.uint8), "P")
    p.putpalette([int(v) for v in pal.reshape(-1)])
    p.info["transparency"] = bytes([0, 128, 255])
    p.save(path("pil_pal_trns.png"), transparency=bytes([0, 128, 255]))
    save_expect("pil_pal_trns.expect.npy", pal[idx[:, :, 0]])
    Image.fromarray(g16[:, :, 0].astype(np.uint16), "I;16").save(path("pil_gray16.png"))
    save_expect("pil_gray16.expect.npy", g16 / 257.0)


# ---------------------------------------------------------------- PPM / PGM

def make_pnm(rng):
    H, W = 5, 6

    def write(name, magic, samples, maxval, comment_header, ascii_=False):
        h, w, _ = samples.shape
        if comment_header:
            head = "%s\n# a comment\n%d # width\n# another\n%d\n%d\n" % (magic, w, h, maxval)
        else:
            head = "%s %d %d %d\n" % (magic, w, h, maxval)
        body = b""
        flat = samples.reshape(-1)
        if ascii_:
            lines = []
            for i in range(0, len(flat), 7):
                lines.append(" ".join(str(int(v)) for v in flat[i:i + 7]))
            body = ("\n".join(lines[:2]) + "\n# comment inside data\n" + "\n".join(lines[2:])
                    + "\n").encode()
        elif maxval < 256:
            body = bytes(int(v) for v in flat)
        else:
            body = b"".join(struct.pack(">H", int(v)) for v in flat)
        with open(path(name), "wb") as f:
            f.write(head.encode() + body)
        save_expect(name + ".expect.npy", samples * 255.0 / maxval)

    write("p6_255.ppm", "P6", rng.integers(0, 256, (H, W, 3)), 255, True)
    write("p5_255.pgm", "P5", rng.integers(0, 256, (H, W, 1)), 255, False)
    write("p5_65535.pgm", "P5", rng.integers(0, 65536, (H, W, 1)), 65535, True)
    write("p6_1000.ppm", "P6", rng.integers(0, 1001, (H, W, 3)), 1000, False)
    write("p6_100.ppm", "P6", rng.integers(0, 101, (H, W, 3)), 100, True)
    write("p6_1.ppm", "P6", rng.integers(0, 2, (H, W, 3)), 1, False)
    write("p3_ascii.ppm", "P3", rng.integers(0, 256, (H, W, 3)), 255, True, ascii_=True)
    write("p2_ascii.pgm", "P2", rng.integers(0, 4096, (H, W, 1)), 4095, True, ascii_=True)


# ---------------------------------------------------------------- JPEG

def make_jpeg():
    H, W = 24, 32
    y, x = np.mgrid[0:H, 0:W].astype(np.float64)
    src = np.stack([40 + 170 * x / (W - 1), 30 + 190 * y / (H - 1),
                    128 + 40 * np.sin(x / 12.0) * np.cos(y / 10.0)], 2)
    src = np.round(src).astype(np.uint8)
    Image.fromarray(src, "RGB").save(path("jpeg_rgb_q95.jpg"), quality=95, subsampling=0)
    save_expect("jpeg_rgb_q95.src.npy", src)
    save_expect("jpeg_rgb_q95.pil.npy", np.asarray(Image.open(path("jpeg_rgb_q95.jpg"))))
    Image.fromarray(src, "RGB").save(path("jpeg_rgb_prog.jpg"), quality=90, progressive=True)
    save_expect("jpeg_rgb_prog.pil.npy", np.asarray(Image.open(path("jpeg_rgb_prog.jpg"))))
    gray = src[:, :, 1]
    Image.fromarray(gray, "L").save(path("jpeg_gray_q95.jpg"), quality=95)
    save_expect("jpeg_gray_q95.src.npy", gray[:, :, None])
    save_expect("jpeg_gray_q95.pil.npy", np.asarray(Image.open(path("jpeg_gray_q95.jpg")))[:, :, None])
    cmyk = np.stack([255 - src[:, :, 0], 255 - src[:, :, 1], 255 - src[:, :, 2],
                     np.full((H, W), 40, np.uint8)], 2).astype(np.uint8)
    Image.fromarray(cmyk, "CMYK").save(path("jpeg_cmyk.jpg"), quality=95)
    save_expect("jpeg_cmyk.pil.npy", np.asarray(Image.open(path("jpeg_cmyk.jpg")).convert("RGB")))


# ---------------------------------------------------------------- real images

def make_real_sums():
    """Size and per-channel pixel sums (PIL's decode) of the shared real images."""
    lines = []
    for sub in ("gtsrb/samples", "keras-real/images"):
        d = os.path.join(SHARED, sub)
        for name in sorted(os.listdir(d)):
            im = Image.open(os.path.join(d, name))
            a = np.asarray(im.convert("RGB") if im.mode not in ("L", "RGB") else im)
            a = a.reshape(a.shape[0], a.shape[1], -1).astype(np.int64)
            sums = " ".join(str(int(a[:, :, k].sum())) for k in range(a.shape[2]))
            lines.append("%s/%s %d %d %d %s" % (sub, name, a.shape[1], a.shape[0], a.shape[2], sums))
    with open(path("real_images.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


# ---------------------------------------------------------------- npy

def formula(n, kind):
    """Values the C test recomputes: i-th element of an array of n."""
    i = np.arange(n)
    v = (i * 37) % 101
    if kind == "u":
        return v
    if kind == "i":
        return v - 50
    if kind == "b":
        return v % 3 == 0
    return (v - 50) * 0.25


def make_npy():
    shape = (2, 3, 4)
    n = 24
    for code in ("f2", "f4", "f8", "u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "b1"):
        kind = {"f": "f", "u": "u", "i": "i", "b": "b"}[code[0]]
        a = formula(n, kind).reshape(shape).astype(np.dtype("<" + code if code[1] != "1" else code))
        np.save(path("npy_%s.npy" % code), a)
    a = formula(15, "f").reshape(3, 5).astype("<f4")
    for ver in ((2, 0), (3, 0)):
        with open(path("npy_v%d.npy" % ver[0]), "wb") as f:
            np.lib.format.write_array(f, a, version=ver)
    np.save(path("npy_fortran.npy"), np.asfortranarray(a))
    np.save(path("npy_bigendian.npy"), a.astype(">f4"))
    np.save(path("npy_rank0.npy"), np.array(-12.5, dtype="<f4"))
    np.save(path("npy_empty.npy"), np.zeros((0, 3), "<f4"))
    np.save(path("npy_rank8.npy"), formula(16, "f").reshape(1, 2, 1, 2, 1, 2, 1, 2).astype("<f4"))
    np.save(path("npy_structured.npy"), np.zeros(3, dtype=[("a", "<f4"), ("b", "<i4")]))
    # references for fv_npy_save: numpy's own bytes for '<f4' arrays
    for tag, shp in (("2x3", (2, 3)), ("5", (5,)), ("scalar", ()), ("2x3x4x1", (2, 3, 4, 1)),
                     ("100001x0", (100001, 0)), ("rank8", (1, 2, 1, 2, 1, 2, 1, 2))):
        cnt = int(np.prod(shp)) if shp else 1
        np.save(path("npy_save_%s.npy" % tag), formula(cnt, "f").reshape(shp).astype("<f4"))
    # a few rows of the shared GTSRB dataset, to check the streaming reader
    x = np.load(os.path.join(SHARED, "gtsrb", "train48_x.npy"), mmap_mode="r")
    np.save(path("gtsrb_rows.npy"), np.ascontiguousarray(x[[0, 1, 5000, 11689]]))


# ---------------------------------------------------------------- resize

def torch_bilinear(a, h, w):
    t = torch.from_numpy(a.astype(np.float64)).permute(2, 0, 1)[None]
    return F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)[0].permute(1, 2, 0).numpy()


def nearest_cv2(a, h, w):
    H, W = a.shape[:2]
    ify, ifx = 1.0 / (h / H), 1.0 / (w / W)
    ys = np.minimum(np.floor(np.arange(h) * ify).astype(int), H - 1)
    xs = np.minimum(np.floor(np.arange(w) * ifx).astype(int), W - 1)
    return a[ys][:, xs].astype(np.float64)


def box_matrix(n_in, n_out):
    """(n_out, n_in) fractional-coverage box filter, float64."""
    s = n_in / n_out
    m = np.zeros((n_out, n_in))
    for o in range(n_out):
        lo, hi = o * s, (o + 1) * s
        for i in range(n_in):
            m[o, i] = max(0.0, min(i + 1, hi) - max(i, lo)) / s
    return m


def bilinear_matrix(n_in, n_out):
    """(n_out, n_in) from torch applied to the identity."""
    eye = np.eye(n_in)
    t = torch.from_numpy(eye)[None, None]          # (1,1,n_in,n_in): rows = samples
    r = F.interpolate(t, size=(n_in, n_out), mode="bilinear", align_corners=False)[0, 0].numpy()
    return r.T                                     # (n_out, n_in)


def area_ref(a, h, w):
    H, W = a.shape[:2]
    my = box_matrix(H, h) if h <= H else bilinear_matrix(H, h)
    mx = box_matrix(W, w) if w <= W else bilinear_matrix(W, w)
    return np.einsum("yi,xj,ijc->yxc", my, mx, a.astype(np.float64))


def pil_bicubic(a, h, w):
    chans = [np.asarray(Image.fromarray(a[:, :, k].astype(np.float32), "F")
                        .resize((w, h), Image.BICUBIC), dtype=np.float64)
             for k in range(a.shape[2])]
    return np.stack(chans, 2)


def make_resize(rng):
    src = rng.uniform(0, 255, (13, 11, 3)).astype(np.float32)
    np.save(path("rs_src.npy"), src)
    src2 = rng.uniform(0, 255, (12, 9, 3)).astype(np.float32)
    np.save(path("rs_src2.npy"), src2)
    srcg = rng.uniform(0, 255, (9, 10, 1)).astype(np.float32)
    np.save(path("rs_srcg.npy"), srcg)
    one = rng.uniform(0, 255, (1, 1, 3)).astype(np.float32)
    np.save(path("rs_src1.npy"), one)

    for h, w in ((5, 7), (20, 17), (13, 11), (26, 22), (7, 30), (1, 1)):
        save_expect("rs_bilinear_%dx%d.npy" % (h, w), torch_bilinear(src, h, w))
    save_expect("rs_bilinear_g_4x5.npy", torch_bilinear(srcg, 4, 5))
    save_expect("rs_bilinear_1_4x3.npy", torch_bilinear(one, 4, 3))

    for h, w in ((5, 7), (20, 17), (4, 4), (39, 33)):
        ref = nearest_cv2(src, h, w)
        tn = F.interpolate(torch.from_numpy(src.astype(np.float64)).permute(2, 0, 1)[None],
                           size=(h, w), mode="nearest")[0].permute(1, 2, 0).numpy()
        assert np.array_equal(ref, tn), "torch nearest disagrees with the cv2 formula"
        save_expect("rs_nearest_%dx%d.npy" % (h, w), ref)

    # area: integer factor against torch adaptive_avg_pool2d
    t = torch.from_numpy(src2.astype(np.float64)).permute(2, 0, 1)[None]
    pooled = F.adaptive_avg_pool2d(t, (4, 3))[0].permute(1, 2, 0).numpy()
    assert np.allclose(pooled, area_ref(src2, 4, 3), atol=1e-9)
    save_expect("rs_area2_4x3.npy", pooled)
    for h, w in ((5, 4), (4, 7), (13, 2), (20, 17), (5, 17)):
        save_expect("rs_area_%dx%d.npy" % (h, w), area_ref(src, h, w))

    for h, w in ((5, 7), (20, 17), (7, 30), (30, 30), (13, 11), (3, 2)):
        save_expect("rs_bicubic_%dx%d.npy" % (h, w), pil_bicubic(src, h, w))


# ---------------------------------------------------------------- preprocess

def make_preprocess(rng):
    src = rng.integers(0, 256, (10, 8, 3)).astype(np.float32)
    np.save(path("pp_src.npy"), src)
    srcg = rng.integers(0, 256, (10, 8, 1)).astype(np.float32)
    np.save(path("pp_srcg.npy"), srcg)
    r = torch_bilinear(src, 6, 5)                       # (6,5,3) RGB 0..255
    rg = torch_bilinear(srcg, 6, 5)                     # (6,5,1)
    luma = (r[:, :, 0:1] * 299 + r[:, :, 1:2] * 587 + r[:, :, 2:3] * 114) / 1000
    save_expect("pp_default.npy", r / 255.0)
    save_expect("pp_caffe.npy", r[:, :, ::-1] - np.array([103.939, 116.779, 123.68]))
    save_expect("pp_tf.npy", r / 127.5 - 1.0)
    save_expect("pp_torch.npy", (r / 255.0 - np.array([0.485, 0.456, 0.406]))
                / np.array([0.229, 0.224, 0.225]))
    save_expect("pp_torch_bgr.npy", (r[:, :, ::-1] / 255.0 - np.array([0.406, 0.456, 0.485]))
                / np.array([0.225, 0.224, 0.229]))
    save_expect("pp_gray1.npy", luma / 255.0)           # model wants 1 channel
    save_expect("pp_gray3.npy", np.repeat(luma, 3, 2) / 255.0)  # color=gray, 3 channels
    save_expect("pp_g2rgb.npy", np.repeat(rg, 3, 2) / 255.0)    # gray image, RGB model
    # real: the keras3.8 GTSRB model's documented input is PIL uint8 bicubic;
    # our float bicubic of the same image, for the record (test uses the shared file)
    im = np.asarray(Image.open(os.path.join(SHARED, "keras-real", "images",
                                            "gtsrb_00014_00002_00029.ppm")), dtype=np.float32)
    fb = pil_bicubic(im, 30, 30)[:, :, ::-1] / 255.0
    exp = np.fromfile(os.path.join(SHARED, "keras-real", "expected",
                                   "gtsrb_seq_keras3.8_bn_gap_30x30__gtsrb_00014_00002_00029.input.f32"),
                      "<f4").reshape(30, 30, 3)
    print("float bicubic vs PIL uint8 bicubic (keras3.8 stop): max abs %.5f" % np.abs(fb - exp).max())


# ---------------------------------------------------------------- labels

def make_labels():
    with open(path("labels_plain.txt"), "wb") as f:
        f.write(b"cat\r\ndog  \r\n\r\nhot dog\t\nzebra\n\n  \n")
    with open(path("labels_quoted.csv"), "wb") as f:
        f.write(b'SignName, ClassId,Extra\n'
                b'"Speed limit (20km/h)",0,x\n'
                b'"Say ""stop"", please", 2 ,y\n'
                b'\n'
                b'plain name,1,z\n')
    with open(path("labels_bad_id.csv"), "wb") as f:
        f.write(b"ClassId,SignName\n0,zero\nx,bad\n")
    with open(path("labels_dup.csv"), "wb") as f:
        f.write(b"ClassId,SignName\n0,zero\n1,one\n0,again\n")
    with open(path("labels_unterminated.csv"), "wb") as f:
        f.write(b'ClassId,SignName\n0,"open quote\n')
    with open(path("labels_half_header.csv"), "wb") as f:
        f.write(b"ClassId,Name\n0,zero\n")
    with open(path("labels_not_indexed.txt"), "wb") as f:
        f.write(b"0 zero\n1 one\n3 three\n")
    with open(path("labels_empty.txt"), "wb") as f:
        f.write(b"\n \n")


def main():
    os.makedirs(OUT, exist_ok=True)
    for name in os.listdir(OUT):
        os.remove(os.path.join(OUT, name))
    make_png(np.random.default_rng(1))
    make_pnm(np.random.default_rng(2))
    make_jpeg()
    make_real_sums()
    make_npy()
    make_resize(np.random.default_rng(3))
    make_preprocess(np.random.default_rng(4))
    make_labels()
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
    print("wrote %d files, %d bytes, to %s" % (len(os.listdir(OUT)), total, OUT))


if __name__ == "__main__":
    main()
