"""Fixed colours, sizes and positions of the Shapes world.

Object colours are saturated and far apart; backgrounds are light and low-saturation (or, for
grass, a muted olive well away from the object green); head/fur colours of the characters sit
between them. Every pair of colours that the detector must tell apart is at least ~60 apart in
RGB, so nearest-colour segmentation stays reliable after blur and noise (test_world checks the
minimum distance).
"""

from __future__ import annotations

# Object colours (name -> RGB). The order is the canonical order used everywhere.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (225, 35, 35),
    "yellow": (245, 220, 30),
    "green": (35, 160, 60),
    "blue": (40, 80, 220),
    "purple": (135, 55, 185),
    "black": (30, 30, 30),
}
# (The first world also had orange and pink: each sits between two others, red-yellow and
# red-purple, and a small VAE's round trip drifted one into the other.)

# Head colours of people (skin) and fur colours of cats. "ginger" fur is the tan tone.
SKINS: dict[str, tuple[int, int, int]] = {
    "peach": (250, 210, 175),
    "tan": (215, 160, 110),
    "brown": (140, 90, 55),
}
FURS: dict[str, tuple[int, int, int]] = {
    "grey": (150, 150, 155),
    "ginger": SKINS["tan"],
    "brown": SKINS["brown"],
}
# Colours of the characters' small features (eyes, mouth, whiskers, eye whites).
FEATURE_DARK = (35, 30, 30)
EYE_WHITE = (250, 250, 250)

# Background styles and the colours they are painted with (also the detector's references).
BACKGROUNDS: dict[str, list[tuple[int, int, int]]] = {
    "plain": [(236, 236, 238)],
    "grass": [(118, 163, 82), (104, 150, 72), (132, 176, 92)],
}
# Phrases that name each background in captions (all true of the whole picture).
BACKGROUND_PHRASES: dict[str, list[str]] = {
    "plain": ["on a plain background", "on a white background"],
    "grass": ["on grass", "on the grass", "in a field"],
}

# Size classes: the extent (largest bbox side) as a fraction of the image width, before the
# per-shape scale in shapes.SHAPE_SCALE. Geometric means between classes are the detector's
# thresholds, so they are spaced by a factor of ~1.45.
# Two classes, both at least 3 latent pixels (24 px) across after the per-shape scale, so a
# word's 16x16 heat map has room inside the object.
SIZES: dict[str, float] = {"small": 0.27, "large": 0.38}


def size_class(extent_frac: float) -> str:
    """The size class nearest (in log scale) to an extent given as a fraction of the width."""
    names = list(SIZES)
    best = min(names, key=lambda n: abs(_log(extent_frac) - _log(SIZES[n])))
    return best


def _log(x: float) -> float:
    import math

    return math.log(max(x, 1e-6))


# Positions: a 3x3 grid. Cell names double as caption keys.
ROWS = ("top", "middle", "bottom")
COLS = ("left", "centre", "right")
POSITIONS: tuple[str, ...] = (
    "top left", "top", "top right",
    "left", "centre", "right",
    "bottom left", "bottom", "bottom right",
)


def cell_of(cx: float, cy: float, width: int, height: int) -> str:
    """The grid cell (position name) that the point (cx, cy) falls in."""
    col = min(2, max(0, int(3 * cx / width)))
    row = min(2, max(0, int(3 * cy / height)))
    return POSITIONS[3 * row + col]


def row_col(position: str) -> tuple[str, str]:
    """('top'|'middle'|'bottom', 'left'|'centre'|'right') of a position name."""
    i = POSITIONS.index(position)
    return ROWS[i // 3], COLS[i % 3]


# Where objects are placed: five of the nine cells. The corners are left out (five places are
# what the budget can teach; every caption still says left, right, top, bottom or centre).
PLACES: tuple[str, ...] = ("top", "left", "centre", "right", "bottom")


def cell_centre(position: str, width: int, height: int) -> tuple[float, float]:
    """Centre of a grid cell in pixels."""
    i = POSITIONS.index(position)
    return (width * (2 * (i % 3) + 1) / 6, height * (2 * (i // 3) + 1) / 6)


# Caption phrases for a single object's position.
POSITION_PHRASES: dict[str, list[str]] = {
    "top left": ["in the top left corner", "at the top left", "in the upper left corner"],
    "top": ["at the top", "at the top of the picture"],
    "top right": ["in the top right corner", "at the top right", "in the upper right corner"],
    "left": ["on the left", "at the left"],
    "centre": ["in the centre", "in the middle"],
    "right": ["on the right", "at the right"],
    "bottom left": ["in the bottom left corner", "at the bottom left", "in the lower left corner"],
    "bottom": ["at the bottom", "at the bottom of the picture"],
    "bottom right": ["in the bottom right corner", "at the bottom right",
                     "in the lower right corner"],
}
# Phrases for a group sharing a row or a column.
ROW_PHRASES = {"top": "at the top", "bottom": "at the bottom"}
COL_PHRASES = {"left": "on the left", "right": "on the right"}


def reference_colours() -> list[tuple[str, str, tuple[int, int, int]]]:
    """Every colour the detector classifies pixels into: (name, kind, rgb).

    kind is 'object', 'head' (skin/fur), 'feature' (eye whites; dark features are 'black'),
    or 'background'. Duplicate RGBs (ginger = tan) appear once, under the skin name.
    """
    refs: list[tuple[str, str, tuple[int, int, int]]] = []
    refs += [(n, "object", c) for n, c in COLOURS.items()]
    seen = set()
    for n, c in list(SKINS.items()) + list(FURS.items()):
        if c not in seen:
            refs.append((n, "head", c))
            seen.add(c)
    refs.append(("white", "background", EYE_WHITE))
    for style, cols in BACKGROUNDS.items():
        refs += [(f"{style}{i}", "background", c) for i, c in enumerate(cols)]
    return refs
