#!/usr/bin/env python3
"""Draws the demo's example inputs: simple synthetic German traffic signs,
64x64 RGB PNG, into examples/ (the project's own pictures, no photographs).

    /usr/bin/python3 tools/draw_examples.py [--out examples]

Each sign is drawn with PIL at 4x size on a vertical gradient background
(sky, overcast or dusk) with a grey pole, scaled down with a Lanczos filter
and blurred slightly, so it looks roughly like a GTSRB crop: the sign fills
about 80% of the frame. The file name starts with the GTSRB ClassId the
picture is meant to show (models/gtsrb-labels.csv), e.g. 14_stop.png.
Deterministic: no randomness; the same PIL version writes the same bytes.
"""
import argparse
import math
import os

from PIL import Image, ImageDraw, ImageFilter, ImageFont

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = 64               # output size
S = 4                  # supersampling factor
N = OUT * S            # drawing canvas size
C = N / 2              # centre
R = N * 0.41           # sign radius: ~82% of the frame

RED = (200, 30, 40)
WHITE = (240, 240, 236)
BLACK = (20, 20, 24)
BLUE = (20, 70, 170)
YELLOW = (245, 185, 20)
GREY = (120, 120, 125)

BACKGROUNDS = {          # top colour, bottom colour
    'sky': ((120, 160, 210), (200, 215, 230)),
    'overcast': ((175, 178, 185), (120, 125, 120)),
    'dusk': ((70, 75, 95), (110, 100, 90)),
    'green': ((95, 120, 80), (60, 75, 55)),
}


def font(size, bold=True):
    names = ['DejaVuSans-Bold.ttf', 'DejaVuSansCondensed-Bold.ttf'] if bold else ['DejaVuSans.ttf']
    for name in names:
        for d in ('/usr/share/fonts/truetype/dejavu', ''):
            try:
                return ImageFont.truetype(os.path.join(d, name) if d else name, size)
            except OSError:
                pass
    return ImageFont.load_default()


def canvas(bg):
    top, bottom = BACKGROUNDS[bg]
    im = Image.new('RGB', (N, N))
    d = ImageDraw.Draw(im)
    for yy in range(N):
        t = yy / (N - 1)
        d.line([(0, yy), (N, yy)], fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom)))
    d.rectangle([C - N * 0.03, C, C + N * 0.03, N], fill=GREY)       # pole
    return im, d


def circle(d, r, fill):
    d.ellipse([C - r, C - r, C + r, C + r], fill=fill)


def polygon(d, n, r, rot, fill):
    """Regular n-gon around the centre; rot in degrees (0: a vertex at the top)."""
    pts = [(C + r * math.sin(math.radians(rot + 360.0 * k / n)),
            C - r * math.cos(math.radians(rot + 360.0 * k / n))) for k in range(n)]
    d.polygon(pts, fill=fill)


def text(d, s, size, fill, dy=0.0, condensed=False):
    f = font(int(size))
    x0, y0, x1, y1 = d.textbbox((0, 0), s, font=f)
    w, h = x1 - x0, y1 - y0
    if condensed and w > 1.45 * R:                     # squeeze wide text (STOP)
        f = font(int(size * 1.45 * R / w))
        x0, y0, x1, y1 = d.textbbox((0, 0), s, font=f)
        w, h = x1 - x0, y1 - y0
    d.text((C - w / 2 - x0, C - h / 2 - y0 + dy), s, font=f, fill=fill)


def arrow(d, pts_fn, width, head, fill):
    """A white arrow: a polyline shaft and a triangular head at its end.
    pts_fn: list of points in units of R around the centre."""
    pts = [(C + x * R, C + y * R) for x, y in pts_fn]
    d.line(pts, fill=fill, width=int(width * R), joint='curve')
    (xa, ya), (xb, yb) = pts[-2], pts[-1]
    ang = math.atan2(yb - ya, xb - xa)
    h, w = head * R, head * R * 0.75
    tip = (xb + math.cos(ang) * h * 0.6, yb + math.sin(ang) * h * 0.6)
    base = (xb - math.cos(ang) * h * 0.4, yb - math.sin(ang) * h * 0.4)
    nx, ny = -math.sin(ang), math.cos(ang)
    d.polygon([tip, (base[0] + nx * w, base[1] + ny * w), (base[0] - nx * w, base[1] - ny * w)],
              fill=fill)


# --- signs ------------------------------------------------------------------

def speed_limit(value):
    def draw(d):
        circle(d, R, RED)
        circle(d, R * 0.78, WHITE)
        text(d, str(value), R * 1.0, BLACK)
    return draw


def stop(d):
    polygon(d, 8, R * 1.04, 22.5, WHITE)
    polygon(d, 8, R * 0.96, 22.5, RED)
    text(d, 'STOP', R * 0.62, WHITE, condensed=True)


def yield_sign(d):
    polygon(d, 3, R * 1.12, 180, RED)      # point down
    polygon(d, 3, R * 0.66, 180, WHITE)


def no_entry(d):
    circle(d, R, RED)
    d.rectangle([C - R * 0.72, C - R * 0.17, C + R * 0.72, C + R * 0.17], fill=WHITE)


def no_vehicles(d):
    circle(d, R, RED)
    circle(d, R * 0.78, WHITE)


def priority_road(d):
    polygon(d, 4, R * 1.08, 0, WHITE)
    polygon(d, 4, R * 0.98, 0, BLACK)
    polygon(d, 4, R * 0.9, 0, WHITE)
    polygon(d, 4, R * 0.62, 0, YELLOW)


def warning(symbol):
    def draw(d):
        polygon(d, 3, R * 1.12, 0, RED)    # point up
        polygon(d, 3, R * 0.70, 0, WHITE)
        symbol(d)
    return draw


def exclamation(d):
    d.polygon([(C - R * 0.08, C - R * 0.28), (C + R * 0.08, C - R * 0.28),
               (C + R * 0.04, C + R * 0.2), (C - R * 0.04, C + R * 0.2)], fill=BLACK)
    circle_at(d, C, C + R * 0.33, R * 0.065, BLACK)


def circle_at(d, x, y, r, fill):
    d.ellipse([x - r, y - r, x + r, y + r], fill=fill)


def blue_round(draw_arrow):
    def draw(d):
        circle(d, R, WHITE)
        circle(d, R * 0.93, BLUE)
        draw_arrow(d)
    return draw


def ahead_only(d):
    arrow(d, [(0, 0.62), (0, -0.25)], 0.2, 0.7, WHITE)


def keep_right(d):
    arrow(d, [(-0.38, -0.38), (0.2, 0.2)], 0.2, 0.65, WHITE)


def turn_right_ahead(d):
    pts = [(-0.25, 0.62), (-0.25, 0.05)]
    pts += [(-0.25 + 0.3 - 0.3 * math.cos(math.radians(a)), 0.05 - 0.3 * math.sin(math.radians(a)))
            for a in range(10, 91, 10)]
    pts.append((0.2, -0.25))
    arrow(d, pts, 0.18, 0.6, WHITE)


SIGNS = [
    ('01_speed-limit-30', speed_limit(30), 'sky'),
    ('02_speed-limit-50', speed_limit(50), 'overcast'),
    ('12_priority-road', priority_road, 'sky'),
    ('13_yield', yield_sign, 'green'),
    ('14_stop', stop, 'overcast'),
    ('15_no-vehicles', no_vehicles, 'dusk'),
    ('17_no-entry', no_entry, 'sky'),
    ('18_general-caution', warning(exclamation), 'overcast'),
    ('33_turn-right-ahead', blue_round(turn_right_ahead), 'green'),
    ('35_ahead-only', blue_round(ahead_only), 'sky'),
    ('38_keep-right', blue_round(keep_right), 'dusk'),
]


def render(draw, bg):
    im, d = canvas(bg)
    draw(d)
    im = im.resize((OUT, OUT), Image.LANCZOS)
    return im.filter(ImageFilter.GaussianBlur(0.6))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default=os.path.join(ROOT, 'examples'))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for name, draw, bg in SIGNS:
        path = os.path.join(args.out, name + '.png')
        render(draw, bg).save(path, optimize=True)
        print(path)


if __name__ == '__main__':
    main()
