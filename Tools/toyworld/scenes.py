"""Scene sampling: what is in a scene, where it goes, and drawing it.

A scene is planned as a list of `Item`s (a shape or a character with a size and a grid cell),
placed by rejection sampling so that footprints keep a gap between them and stay inside the
picture, then drawn on a supersampled canvas. Everything random comes from the one
numpy Generator passed in, so a scene is a pure function of its seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import characters, palette, shapes
from .canvas import Canvas
from .characters import Character

# Head size (fraction of the width) of characters, by size class.
CHARACTER_SIZES = {"medium": 0.28, "large": 0.36}


@dataclass
class Obj:
    """One object of a rendered scene, with its ground truth."""
    id: int
    kind: str                      # 'shape' | 'person' | 'cat'
    shape: str                     # shape name, or 'person' / 'cat'
    colour: str                    # object colour, or skin / fur name for characters
    size: str                      # 'small' | 'large' (shapes), 'medium' | 'large' (characters)
    position: str                  # grid cell of the centre (palette.POSITIONS)
    centre: tuple[float, float]    # (x, y) placement centre in pixels (head centre for characters)
    bbox: tuple[int, int, int, int] = (0, 0, 0, 0)   # x0, y0, x1, y1 (exclusive) of the mask
    mask: np.ndarray | None = field(default=None, repr=False)
    parts: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # head, hat, face
    character: Character | None = None
    name: str | None = None        # named individual, if any


@dataclass
class Item:
    """A planned object before drawing."""
    kind: str
    shape: str
    colour: str
    size: str
    character: Character | None = None
    name: str | None = None
    px: float = 0.0                # extent (shapes) or head size (characters) in pixels

    def footprint(self, cx: float, cy: float) -> tuple[float, float, float, float]:
        if self.character is not None:
            l, t, r, b = characters.extent(self.character, self.px)
            return (cx + l, cy + t, cx + r, cy + b)
        fills, _ = shapes.placed(self.shape, cx, cy, self.px)
        pts = np.concatenate(fills)
        (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
        return (float(x0), float(y0), float(x1), float(y1))


def shape_item(rng: np.random.Generator, width: int, *, shape=None, colour=None, size=None,
               avoid_pairs=()) -> Item:
    while True:
        sh = shape or shapes.SHAPES[rng.integers(len(shapes.SHAPES))]
        co = colour or list(palette.COLOURS)[rng.integers(len(palette.COLOURS))]
        if (co, sh) not in avoid_pairs:
            break
        shape = colour = None  # a forced pair that is held out: draw a free one instead
    sz = size or list(palette.SIZES)[rng.integers(len(palette.SIZES))]
    px = palette.SIZES[sz] * shapes.SHAPE_SCALE[sh] * width * rng.uniform(0.94, 1.06)
    return Item("shape", sh, co, sz, px=px)


def character_item(rng: np.random.Generator, width: int, ch: Character, *, name=None,
                   size=None) -> Item:
    sz = size or list(CHARACTER_SIZES)[rng.integers(len(CHARACTER_SIZES))]
    px = CHARACTER_SIZES[sz] * width * rng.uniform(0.94, 1.06)
    return Item(ch.kind, ch.kind, ch.colour, sz, character=ch, name=name, px=px)


def place(items: list[Item], rng: np.random.Generator, width: int, *, cells=None,
          tries: int = 60) -> list[tuple[float, float, str]] | None:
    """Centres and cells for the items, or None if no layout was found.

    Each item gets its own grid cell (given in `cells`, else random); its centre is jittered
    inside the cell, clamped into the picture, and must still be in that cell; footprints keep
    a gap of 3% of the width.
    """
    gap, margin = 0.03 * width, 2.0
    for _ in range(tries):
        chosen = (list(cells) if cells else
                  [str(c) for c in rng.permutation(palette.PLACES)[:len(items)]])
        out, boxes, ok = [], [], True
        for item, cell in zip(items, chosen):
            cx, cy = palette.cell_centre(cell, width, width)
            cx += rng.uniform(-1, 1) * width / 16
            cy += rng.uniform(-1, 1) * width / 16
            l, t, r, b = item.footprint(0.0, 0.0)
            cx = min(max(cx, margin - l), width - margin - r)
            cy = min(max(cy, margin - t), width - margin - b)
            box = (cx + l, cy + t, cx + r, cy + b)
            if (palette.cell_of(cx, cy, width, width) != cell or r - l > width - 2 * margin
                    or any(_near(box, o, gap) for o in boxes)):
                ok = False
                break
            out.append((cx, cy, cell))
            boxes.append(box)
        if ok:
            return out
    return None


def _near(a, b, gap: float) -> bool:
    apart_x = a[2] + gap <= b[0] or b[2] + gap <= a[0]
    apart_y = a[3] + gap <= b[1] or b[3] + gap <= a[1]
    return not (apart_x or apart_y)


def render(items: list[Item], layout, background: str, rng: np.random.Generator,
           width: int) -> tuple[np.ndarray, list[Obj]]:
    """Draw the placed items on a background; returns the image and the objects."""
    cv = Canvas(width)
    cv.background(background, rng)
    objs = []
    for i, (item, (cx, cy, cell)) in enumerate(zip(items, layout)):
        if item.character is not None:
            characters.draw(cv, item.character, cx, cy, item.px, i)
        else:
            fills, holes = shapes.placed(item.shape, cx, cy, item.px)
            cv.polygons(fills, holes, palette.COLOURS[item.colour], i)
        objs.append(Obj(i, item.kind, item.shape, item.colour, item.size, cell, (cx, cy),
                        character=item.character, name=item.name))
    image, masks = cv.finish()
    for o in objs:
        parts = masks.get(o.id, {})
        o.mask = parts.get("all", np.zeros((width, width), bool))
        o.parts = {k: v for k, v in parts.items() if k not in ("all", "body")}
        ys, xs = np.nonzero(o.mask)
        if len(xs):
            o.bbox = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return image, objs


def plan_scene(rng: np.random.Generator, width: int, avoid_pairs=()) -> list[Item]:
    """What a random dataset scene holds: 1-2 shapes (75%) or characters (25%)."""
    if rng.random() < 0.75:
        n = int(rng.choice([1, 2], p=[0.45, 0.55]))
        first = shape_item(rng, width, avoid_pairs=avoid_pairs)
        items = [first]
        for _ in range(n - 1):
            if rng.random() < 0.3:  # a duplicate (same shape and colour) for count captions
                same = rng.random() < 0.6
                items.append(shape_item(rng, width, shape=first.shape, colour=first.colour,
                                        size=first.size if same else None,
                                        avoid_pairs=avoid_pairs))
            else:
                items.append(shape_item(rng, width, avoid_pairs=avoid_pairs))
        return items
    r = rng.random()
    items = [character_item(rng, width, characters.random_character(rng))]
    if r < 0.3:
        items.append(character_item(rng, width, characters.random_character(rng),
                                    size=items[0].size))
    elif r < 0.55:
        items.append(shape_item(rng, width, size="small",
                                avoid_pairs=avoid_pairs))
    return items


def random_background(rng: np.random.Generator) -> str:
    return list(palette.BACKGROUNDS)[rng.integers(len(palette.BACKGROUNDS))]
