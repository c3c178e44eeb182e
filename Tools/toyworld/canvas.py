"""Anti-aliased drawing: paint at `ss`x the final size with Pillow, then box-downsample.

Every paint goes through a coverage mask, so each object's mask (and its named parts, e.g. a
person's hat) is recorded while drawing; downsampled with the same box filter and thresholded
at 50% coverage, the masks line up with the pixels that mostly show the object.
Backgrounds are painted here too, from the scene's own numpy Generator.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageChops, ImageDraw

from . import palette

RGB = tuple[int, int, int]


class Canvas:
    """A supersampled RGB picture that remembers which object painted where."""

    def __init__(self, size: int, ss: int = 4):
        self.size, self.ss = size, ss
        self.big = size * ss
        self.image = Image.new("RGB", (self.big, self.big), (0, 0, 0))
        self._masks: dict[tuple[int, str], Image.Image] = {}

    # --- background -----------------------------------------------------------------------
    def background(self, style: str, rng: np.random.Generator) -> None:
        self.image = Image.fromarray(paint_background(style, self.big, self.ss, rng))

    # --- painting -------------------------------------------------------------------------
    def new_layer(self) -> tuple[Image.Image, ImageDraw.ImageDraw]:
        layer = Image.new("L", (self.big, self.big), 0)
        return layer, ImageDraw.Draw(layer)

    def paint(self, layer: Image.Image, colour: RGB, obj: int | None, part: str = "body") -> None:
        """Paint `colour` through `layer` (coverage, 0..255 at full resolution)."""
        self.image.paste(tuple(colour), (0, 0), layer)
        if obj is not None:
            key = (obj, part)
            old = self._masks.get(key)
            self._masks[key] = layer if old is None else ImageChops.lighter(old, layer)

    def polygons(self, fills, holes, colour: RGB, obj: int | None, part: str = "body") -> None:
        """Fill polygons given in final-resolution pixel coordinates, minus holes."""
        layer, draw = self.new_layer()
        for p in fills:
            draw.polygon([(x * self.ss, y * self.ss) for x, y in p], fill=255)
        for p in holes:
            draw.polygon([(x * self.ss, y * self.ss) for x, y in p], fill=0)
        self.paint(layer, colour, obj, part)

    def ellipse(self, box, colour: RGB, obj: int | None, part: str = "body") -> None:
        layer, draw = self.new_layer()
        draw.ellipse(self._scale(box), fill=255)
        self.paint(layer, colour, obj, part)

    def rounded_rect(self, box, radius: float, colour: RGB, obj: int | None,
                     part: str = "body") -> None:
        layer, draw = self.new_layer()
        draw.rounded_rectangle(self._scale(box), radius=radius * self.ss, fill=255)
        self.paint(layer, colour, obj, part)

    def lines(self, segments, width: float, colour: RGB, obj: int | None,
              part: str = "body") -> None:
        layer, draw = self.new_layer()
        for (x0, y0), (x1, y1) in segments:
            draw.line(self._scale((x0, y0, x1, y1)), fill=255, width=max(1, round(width * self.ss)))
        self.paint(layer, colour, obj, part)

    def arc(self, box, start: float, end: float, width: float, colour: RGB, obj: int | None,
            part: str = "body") -> None:
        layer, draw = self.new_layer()
        draw.arc(self._scale(box), start, end, fill=255, width=max(1, round(width * self.ss)))
        self.paint(layer, colour, obj, part)

    def _scale(self, box):
        return [v * self.ss for v in box]

    # --- result ---------------------------------------------------------------------------
    def finish(self) -> tuple[np.ndarray, dict[int, dict[str, np.ndarray]]]:
        """(uint8 HxWx3 image, {object id: {part: bool HxW mask}}), parts include 'all'."""
        small = (self.size, self.size)
        image = np.asarray(self.image.resize(small, Image.BOX), dtype=np.uint8).copy()
        masks: dict[int, dict[str, np.ndarray]] = {}
        for (obj, part), layer in self._masks.items():
            cov = np.asarray(layer.resize(small, Image.BOX)) >= 128
            parts = masks.setdefault(obj, {})
            parts[part] = cov
            parts["all"] = parts.get("all", np.zeros_like(cov)) | cov
        return image, masks


def paint_background(style: str, big: int, ss: int, rng: np.random.Generator) -> np.ndarray:
    """A big x big uint8 background of the given style (colours from palette.BACKGROUNDS)."""
    cols = [np.array(c, dtype=float) for c in palette.BACKGROUNDS[style]]
    if style == "plain":
        out = np.broadcast_to(cols[0], (big, big, 3)).copy()
    elif style == "grass":
        # Base colour, then short vertical blades in the two other greens.
        img = Image.new("RGB", (big, big), tuple(int(v) for v in cols[0]))
        draw = ImageDraw.Draw(img)
        n = int(0.5 * (big / ss) ** 2 / 16)
        xs, ys = rng.uniform(0, big, n), rng.uniform(0, big, n)
        hs = rng.uniform(2, 5, n) * ss
        which = rng.integers(1, 3, n)
        lean = rng.uniform(-1.5, 1.5, n) * ss
        for x, y, h, w, d in zip(xs, ys, hs, which, lean):
            draw.line([(x, y), (x + d, y - h)], fill=palette.BACKGROUNDS["grass"][w], width=ss)
        out = np.asarray(img, dtype=float)
    else:
        raise ValueError(f"unknown background {style!r}")
    return np.clip(out, 0, 255).astype(np.uint8)
