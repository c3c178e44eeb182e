"""Contact sheets for a human check: scenes with captions underneath and masks outlined.

write_previews("OUT.png") writes OUT.png (16 dataset scenes) and OUT-characters.png (the named
individuals' textual-inversion renders with their templates, pair scenes, and four dataset
scenes with random characters).
"""

from __future__ import annotations

import os
import textwrap

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from toyworld import world

OUTLINES = [(255, 0, 255), (0, 230, 255), (255, 255, 255), (0, 0, 0)]
SCALE = 2
FONT_PATHS = ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"]


def _font(size: int):
    for p in FONT_PATHS:
        if os.path.exists(p):
            return ImageFont.truetype(p, size)
    return ImageFont.load_default()


def outline(mask: np.ndarray) -> np.ndarray:
    """Pixels of the mask that touch a pixel outside it."""
    m = np.pad(mask, 1)
    inner = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
    return mask & ~inner


def tile(s: world.Scene, masks: bool = True, label: str | None = None,
         image: np.ndarray | None = None) -> Image.Image:
    img = image if image is not None else s.image
    big = np.kron(img, np.ones((SCALE, SCALE, 1), dtype=np.uint8))
    if masks:
        for o in s.objects:
            m = np.kron(o.mask, np.ones((SCALE, SCALE), dtype=bool))
            big[outline(m)] = OUTLINES[o.id % len(OUTLINES)]
    w = big.shape[1]
    font = _font(12)
    text = label if label is not None else s.caption
    lines = textwrap.wrap(text, width=max(10, w // 7))[:4]
    out = Image.new("RGB", (w, big.shape[0] + 4 + 15 * 4), (255, 255, 255))
    out.paste(Image.fromarray(big), (0, 0))
    d = ImageDraw.Draw(out)
    for i, line in enumerate(lines):
        d.text((3, big.shape[0] + 3 + 15 * i), line, fill=(0, 0, 0), font=font)
    return out


def sheet(tiles: list[Image.Image], cols: int = 4, title: str | None = None) -> Image.Image:
    w, h = tiles[0].size
    rows = (len(tiles) + cols - 1) // cols
    top = 24 if title else 0
    out = Image.new("RGB", (cols * (w + 6) + 6, rows * (h + 6) + 6 + top), (200, 200, 200))
    if title:
        ImageDraw.Draw(out).text((8, 5), title, fill=(0, 0, 0), font=_font(14))
    for i, t in enumerate(tiles):
        out.paste(t, (6 + (i % cols) * (w + 6), top + 6 + (i // cols) * (h + 6)))
    return out


def write_previews(path: str, split: str = "train", start: int = 0, size: int = 128,
                   seed: int = 0, degraded: bool = False) -> list[str]:
    def img(s):
        return world.degrade(s.image, seed=s.index) if degraded else None

    scenes = list(world.dataset(split, 16, size, seed, start))
    sheet([tile(s, image=img(s)) for s in scenes], 4,
          f"{split} scenes {start}..{start + 15} ({size} px)").save(path)
    tiles = []
    for name in world.NAMED:
        for s in world.individual_images(name, 4, size, seed):
            tiles.append(tile(s, label=f"{name}: {s.template}", image=img(s)))
    for a, b in (("alex", "cora"), ("cora", "koko")):
        for s in world.pair_scenes(a, b, 2, size, seed):
            tiles.append(tile(s, label=s.template, image=img(s)))
    found, i = 0, 0
    while found < 4 and i < 200:  # a row of random (unnamed) characters from the dataset
        s = world.scene(split, start + 16 + i, size, seed)
        i += 1
        if any(o.character is not None for o in s.objects):
            tiles.append(tile(s, image=img(s)))
            found += 1
    root, ext = os.path.splitext(path)
    chars = f"{root}-characters{ext or '.png'}"
    title = "named individuals (textual-inversion renders), pairs, random characters"
    sheet(tiles, 4, title).save(chars)
    return [path, chars]
