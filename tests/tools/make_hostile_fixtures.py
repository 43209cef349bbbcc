#!/usr/bin/python3
"""Writes the tiny hostile image files of issue 17: headers that declare huge
images (tests/test_hostile.c checks they are refused before any allocation).
Regenerate with: /usr/bin/python3 tests/tools/make_hostile_fixtures.py
Output: tests/data/hostile/ (a few hundred bytes each, deterministic)."""
import io
import os
import struct
import zlib

from PIL import Image

OUT = os.path.join(os.path.dirname(__file__), "..", "data", "hostile")


def png(w, h, data):
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(data, 9)) + chunk(b"IEND", b"")


def jpeg(w, h):
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (120, 30, 200)).save(buf, "JPEG", quality=90)
    b = bytearray(buf.getvalue())
    i = b.index(b"\xff\xc0")  # SOF0: length(2) precision(1) height(2) width(2)
    b[i + 5:i + 9] = struct.pack(">HH", h, w)
    return bytes(b)


def main():
    os.makedirs(OUT, exist_ok=True)
    files = {
        "huge_100000.png": png(100000, 100000, b"\0" * 1000),     # 28 GB as floats
        "mid_3000.png": png(3000, 3000, b"\0" * 1000),            # under the limit, more than 74 bytes hold
        "huge_100000.ppm": b"P6 100000 100000 255\n" + b"\0" * 64,  # 120 GB as floats
        "mid_3000.pgm": b"P5 3000 3000 255\n" + b"\0" * 64,
        "huge_65000.jpg": jpeg(65000, 65000),
        "mid_6000.jpg": jpeg(6000, 6000),
    }
    for name, data in files.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
