"""Characters: pareidolia "people" (a head with eyes, a mouth, maybe a hat) and cats.

A character is drawn around its head centre (hx, hy) at head size s (pixels, the head's
height). The named individuals of the story are fixed attribute sets: alex and cora are
look-alikes (same round head, same top hat, same eyes) that differ only in skin colour and hat
colour; koko is a grey striped cat with big eyes. Randomly sampled people never copy a named
individual's identifying attributes, so a textual-inversion token has something new to learn.
Randomly sampled cats never did either until version 7; since then they may be grey and striped
(but never have koko's big eyes), because a cat's fur and stripes share one region and the UNet
never composed an unseen pair of them (version.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import ImageChops

from . import palette, version
from .canvas import Canvas

HEAD_SHAPES = ("round", "oval", "square")
HATS = ("none", "top hat", "cap", "bow")
PERSON_PATTERNS = ("plain", "freckles", "stripes")
CAT_PATTERNS = ("plain", "stripes", "spots")
EYES = ("dots", "big", "closed")
if version.VERSION >= 4:  # a few attributes each (version.py)
    HEAD_SHAPES, HATS, PERSON_PATTERNS = ("round",), ("none", "top hat"), ("plain",)
    CAT_PATTERNS, EYES = ("plain", "stripes"), ("dots",)
# A cat's forehead bars: width (of the head size), spacing (of the head width), shade (of the fur).
STRIPE_WIDTH, STRIPE_SPREAD, STRIPE_SHADE = (
    (0.12, 0.22, 0.35) if version.VERSION >= 10 else (0.14, 0.22, 0.25) if version.VERSION == 9
    else (0.08, 0.17, 0.45) if version.VERSION >= 5 else (0.06, 0.12, 0.7))
# Where the bars run, above the head's centre (of its height): from the top, clipped to the inner
# head; from version 10 short of the outline, so a blurred band of them stays inside the fur.
STRIPE_TOP, STRIPE_BOTTOM = (0.36, 0.16) if version.VERSION >= 10 else (0.5, 0.2)
INNER_EAR_SHADE = 1.18  # a cat's inner ear against its fur, before version 8 (one colour since)
# Hats take object colours; the detector reads a hat's colour like an object's.
HAT_COLOURS = tuple(palette.COLOURS)


@dataclass(frozen=True)
class Character:
    kind: str                 # 'person' | 'cat'
    colour: str               # skin (person) or fur (cat) name
    head: str = "round"       # person head shape; 'cat' for cats
    hat: str = "none"
    hat_colour: str | None = None
    pattern: str = "plain"
    eyes: str = "dots"

    @property
    def rgb(self) -> tuple[int, int, int]:
        return (palette.SKINS if self.kind == "person" else palette.FURS)[self.colour]

    def identity(self) -> tuple:
        """The attributes that tell the named individuals apart, as the detector reads them:
        (person, skin, hat colour or None) or (cat, fur, striped?)."""
        if self.kind == "person":
            return ("person", self.colour, self.hat_colour)
        return ("cat", self.colour, self.pattern == "stripes")


# Version 6 swapped the hats: the VAE kept a peach face under a blue one in 7 of 16 renders (version.py).
ALEX_HAT, CORA_HAT = ("red", "blue") if version.VERSION >= 6 else ("blue", "red")
NAMED: dict[str, Character] = {
    "alex": Character("person", "peach", "round", "top hat", ALEX_HAT, "plain", "dots"),
    "cora": Character("person", "tan", "round", "top hat", CORA_HAT, "plain", "dots"),
    "koko": Character("cat", "grey", "cat", "none", None, "stripes", "big"),
}


def reserved_identities() -> set[tuple]:
    """The identities (`Character.identity`) random characters never take: every named one's,
    less koko's from version 7 (random cats may then be grey and striped, never big-eyed)."""
    return {c.identity() for c in NAMED.values() if c.kind == "person" or version.VERSION < 7}


def random_character(rng: np.random.Generator, kind: str | None = None) -> Character:
    """A random person or cat that is none of the named individuals."""
    named = reserved_identities()
    while True:
        k = kind or ("person" if rng.random() < 0.6 else "cat")
        if k == "person":
            hat = HATS[rng.integers(len(HATS))]
            ch = Character(
                "person", list(palette.SKINS)[rng.integers(3)],
                HEAD_SHAPES[rng.integers(len(HEAD_SHAPES))], hat,
                None if hat == "none" else HAT_COLOURS[rng.integers(len(HAT_COLOURS))],
                PERSON_PATTERNS[rng.integers(len(PERSON_PATTERNS))], EYES[rng.integers(len(EYES))])
        else:
            ch = Character("cat", list(palette.FURS)[rng.integers(3)], "cat", "none", None,
                           CAT_PATTERNS[rng.integers(len(CAT_PATTERNS))], EYES[rng.integers(len(EYES))])
        if ch.identity() not in named:
            return ch


def extent(ch: Character, s: float) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of the whole figure relative to the head centre, in pixels."""
    if ch.kind == "cat":  # ear tips on top, whiskers at the sides
        return (-0.64 * s, -0.78 * s, 0.64 * s, 0.46 * s)
    half = 0.5 * _head_width(ch) * s
    left, right, top = -half, half, -0.5 * s
    if ch.hat == "top hat":
        left, right, top = min(left, -0.475 * s), max(right, 0.475 * s), -1.02 * s
    elif ch.hat == "cap":
        right, top = 0.78 * s, -0.68 * s
    elif ch.hat == "bow":
        right, top = 0.6 * half + 0.3 * s, -0.61 * s
    return (left, top, right, 0.5 * s)


def _head_width(ch: Character) -> float:
    return {"round": 1.0, "oval": 0.8, "square": 0.92, "cat": 1.08}[ch.head]


def shade(rgb, f: float) -> tuple[int, int, int]:
    return tuple(min(255, int(round(v * f))) for v in rgb)


def draw(cv: Canvas, ch: Character, hx: float, hy: float, s: float, obj: int) -> None:
    """Draw the character on the canvas; parts 'head', 'hat' and 'face' go in obj's masks."""
    w, h = _head_width(ch) * s, (0.9 if ch.kind == "cat" else 1.0) * s
    box = (hx - w / 2, hy - h / 2, hx + w / 2, hy + h / 2)
    top = hy - h / 2
    if ch.kind == "cat":
        _ears(cv, ch, hx, hy, w, h, s, obj)
    _head(cv, ch, box, s, ch.rgb, obj, "head")
    _pattern(cv, ch, hx, hy, w, h, s, obj)
    _eyes(cv, ch, hx, hy, w, h, s, obj)
    if ch.kind == "person":
        cv.arc((hx - 0.2 * w, hy + 0.02 * h, hx + 0.2 * w, hy + 0.3 * h), 20, 160,
               0.05 * s, palette.FEATURE_DARK, obj, "face")
        if ch.hat != "none":
            _hat(cv, ch, hx, top, w, s, obj)
    else:
        nose = [(hx - 0.07 * s, hy + 0.1 * s), (hx + 0.07 * s, hy + 0.1 * s), (hx, hy + 0.18 * s)]
        cv.polygons([nose], [], palette.SKINS["peach"], obj, "face")
        for side in (-1, 1):
            cv.arc((hx + (side - 1) * 0.08 * s, hy + 0.12 * s, hx + (side + 1) * 0.08 * s,
                    hy + 0.3 * s), 20, 160, 0.035 * s, palette.FEATURE_DARK, obj, "face")
            segs = [((hx + side * 0.22 * s, hy + 0.16 * s + dy * 0.3),
                     (hx + side * 0.64 * s, hy + 0.16 * s + dy)) for dy in (-0.1 * s, 0, 0.1 * s)]
            cv.lines(segs, max(1.0, 0.025 * s), palette.FEATURE_DARK, obj, "face")


def _head(cv: Canvas, ch: Character, box, s, rgb, obj, part, layer_only=False):
    layer, d = cv.new_layer()
    b = [v * cv.ss for v in box]
    if ch.head == "square":
        d.rounded_rectangle(b, radius=0.24 * s * cv.ss, fill=255)
    else:
        d.ellipse(b, fill=255)
    if layer_only:
        return layer
    cv.paint(layer, rgb, obj, part)


def _ears(cv, ch, hx, hy, w, h, s, obj):
    for side in (-1, 1):
        outer = [(hx + side * 0.5 * w, hy - 0.02 * h), (hx + side * 0.38 * w, hy - 0.86 * h),
                 (hx + side * 0.02 * w, hy - 0.38 * h)]
        cv.polygons([outer], [], ch.rgb, obj, "head")
        if version.VERSION >= 8:  # one fur colour: the UNet drew a brown cat's lighter inner ears red
            continue
        inner = [(hx + side * 0.4 * w, hy - 0.3 * h), (hx + side * 0.36 * w, hy - 0.68 * h),
                 (hx + side * 0.17 * w, hy - 0.42 * h)]
        # A lighter fur shade, not pink: blurred, pink and grey would mix into a background
        # colour and cut the ear off the head.
        cv.polygons([inner], [], shade(ch.rgb, INNER_EAR_SHADE), obj, "head")


def _pattern(cv, ch, hx, hy, w, h, s, obj):
    """Freckles, stripes or spots in a darker shade, clipped to the inside of the head."""
    if ch.pattern == "plain":
        return
    inner_box = (hx - 0.42 * w, hy - 0.42 * h, hx + 0.42 * w, hy + 0.42 * h)
    clip = _head(cv, ch, inner_box, 0.84 * s, None, obj, None, layer_only=True)
    layer, d = cv.new_layer()
    S = cv.ss

    def dot(x, y, r):
        d.ellipse([(x - r) * S, (y - r) * S, (x + r) * S, (y + r) * S], fill=255)

    if ch.pattern == "freckles":
        for side in (-1, 1):
            for dx, dy in ((0.2, 0.1), (0.29, 0.07), (0.25, 0.17)):
                dot(hx + side * dx * w, hy + dy * h, 0.035 * s)
    elif ch.pattern == "spots":
        for dx, dy, r in ((-0.25, -0.25, 0.08), (0.22, -0.3, 0.06), (0.3, 0.2, 0.07),
                          (-0.3, 0.18, 0.06)):
            dot(hx + dx * w, hy + dy * h, r * s)
    elif ch.kind == "cat":  # tabby: three bars on the forehead, two on each cheek
        for dx in (-STRIPE_SPREAD, 0, STRIPE_SPREAD):
            d.line([(hx + dx * w) * S, (hy - STRIPE_TOP * h) * S, (hx + dx * 0.7 * w) * S,
                    (hy - STRIPE_BOTTOM * h) * S], fill=255, width=round(STRIPE_WIDTH * s * S))
        for side in (-1, 1):
            for dy in (-0.05, 0.08):
                d.line([(hx + side * 0.5 * w) * S, (hy + dy * h) * S,
                        (hx + side * 0.3 * w) * S, (hy + (dy + 0.03) * h) * S],
                       fill=255, width=round(0.05 * s * S))
    else:  # face paint: two stripes across the forehead
        for dy in (-0.36, -0.24):
            d.rectangle([(hx - w) * S, (hy + dy * h) * S, (hx + w) * S,
                         (hy + (dy + 0.07) * h) * S], fill=255)
    cv.paint(ImageChops.darker(layer, clip), shade(ch.rgb, 0.8 if ch.kind == "person" else STRIPE_SHADE),
             obj, "head")


def _eyes(cv, ch, hx, hy, w, h, s, obj):
    y = hy - (0.08 if ch.kind == "person" else 0.05) * h
    for side in (-1, 1):
        x = hx + side * 0.2 * w
        if ch.eyes == "dots":
            r = 0.065 * s
            cv.ellipse((x - r, y - r, x + r, y + r), palette.FEATURE_DARK, obj, "face")
        elif ch.eyes == "big":
            r, p = 0.12 * s, 0.06 * s
            cv.ellipse((x - r, y - r, x + r, y + r), palette.EYE_WHITE, obj, "face")
            cv.ellipse((x - p, y - p + 0.02 * s, x + p, y + p + 0.02 * s),
                       palette.FEATURE_DARK, obj, "face")
        else:  # closed: an upward arc
            r = 0.09 * s
            cv.arc((x - r, y - r * 0.6, x + r, y + r * 1.2), 200, 340, 0.05 * s,
                   palette.FEATURE_DARK, obj, "face")


def _hat(cv, ch, hx, top, w, s, obj):
    col = palette.COLOURS[ch.hat_colour]
    if ch.hat == "top hat":
        brim = [(hx - 0.475 * s, top - 0.07 * s), (hx + 0.475 * s, top - 0.07 * s),
                (hx + 0.475 * s, top + 0.06 * s), (hx - 0.475 * s, top + 0.06 * s)]
        crown = [(hx - 0.3 * s, top - 0.52 * s), (hx + 0.3 * s, top - 0.52 * s),
                 (hx + 0.3 * s, top), (hx - 0.3 * s, top)]
        cv.polygons([brim, crown], [], col, obj, "hat")
    elif ch.hat == "cap":
        layer, d = cv.new_layer()
        S = cv.ss
        d.pieslice([(hx - 0.5 * w) * S, (top - 0.18 * s) * S, (hx + 0.5 * w) * S,
                    (top + 0.38 * s) * S], 180, 360, fill=255)
        d.ellipse([(hx - 0.05 * s) * S, (top + 0.04 * s) * S, (hx + 0.78 * s) * S,
                   (top + 0.16 * s) * S], fill=255)
        cv.paint(layer, col, obj, "hat")
    else:  # bow on the upper right of the head
        bx, by = hx + 0.3 * w, top + 0.06 * s
        wing = 0.3 * s
        left = [(bx, by), (bx - wing, by - 0.17 * s), (bx - wing, by + 0.17 * s)]
        right = [(bx, by), (bx + wing, by - 0.17 * s), (bx + wing, by + 0.17 * s)]
        knot = 0.07 * s
        layer, d = cv.new_layer()
        S = cv.ss
        for tri in (left, right):
            d.polygon([(x * S, y * S) for x, y in tri], fill=255)
        d.ellipse([(bx - knot) * S, (by - knot) * S, (bx + knot) * S, (by + knot) * S], fill=255)
        cv.paint(layer, col, obj, "hat")
