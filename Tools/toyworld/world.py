"""The Shapes world's public API: splits, named individuals, degradation, and a preview CLI.

    from toyworld import world
    for s in world.dataset("train", 1000):       # Scene objects; also unpack as a tuple:
        image, caption, objects = s               # uint8 HxWx3, str, list[scenes.Obj]
        s.mentions                                # caption word -> object ids (captions.Mention)

Scene `index` of split `split` is always the same picture: it is drawn from
`np.random.default_rng(SeedSequence(seed, spawn_key=(split id, index)))`.
`train` and `heldout` are disjoint by construction: different seed streams, captions that fall
in different buckets of a stable hash (so no held-out caption string ever occurs in train),
and, when HOLDOUT_PAIRS names any, colour-shape pairs that train never shows.

    python Tools/toyworld/world.py --preview OUT.png   # OUT.png and OUT-characters.png
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

if __package__ in (None, ""):  # run as a script: make `toyworld` importable
    import os

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from toyworld import captions, scenes, version  # noqa: E402
from toyworld.imageops import gaussian_blur  # noqa: E402
from toyworld.captions import Mention  # noqa: E402
from toyworld.characters import NAMED  # noqa: E402
from toyworld.scenes import Obj  # noqa: E402

# Bumped by every change that alters a scene: caches of rendered scenes are keyed by it (the
# versions and how to draw another are in version.py).
WORLD_VERSION = version.VERSION
SPLITS = {"train": 0, "heldout": 1, "individual": 2, "pair": 3}
HELDOUT_PERCENT = 10          # share of caption hash buckets reserved for heldout
# Colour-shape pairs train never shows, a probe of compositional generalisation. Empty: the demo
# model is asked to draw any caption. Blue stars and purple squares (a ninth of the held-out
# objects) were held out until UNet step 51 500 (see presets.py's cpu preset); there 5 of the 27 in
# 200 held-out captions were drawn, against 68% of the other shapes.
HOLDOUT_PAIRS: tuple[tuple[str, str], ...] = ()


@dataclass
class Scene:
    image: np.ndarray                  # uint8 HxWx3
    caption: str
    objects: list[Obj]
    mentions: list[Mention] = field(default_factory=list)
    background: str = "plain"
    split: str = "train"
    index: int = 0
    template: str | None = None        # caption with '{name}' placeholders (individual, pair)
    facts: list[tuple] = field(default_factory=list)  # claims of the caption (captions.caption)

    def __iter__(self) -> Iterator:
        """Unpacks as (image, caption, objects)."""
        return iter((self.image, self.caption, self.objects))


def scene_rng(split: str, index: int, seed: int = 0,
              sub: tuple[int, ...] = ()) -> np.random.Generator:
    """The generator of one scene: its own SeedSequence child, so scenes are independent."""
    key = (SPLITS[split], *sub, index)
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def is_heldout_caption(text: str) -> bool:
    """Whether a caption string belongs to the heldout side (stable across runs and machines)."""
    h = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
    return h % 100 < HELDOUT_PERCENT


def scene(split: str, index: int, size: int = 128, seed: int = 0) -> Scene:
    """Scene `index` of 'train' or 'heldout'."""
    if split not in ("train", "heldout"):
        raise ValueError("split must be 'train' or 'heldout'")
    rng = scene_rng(split, index, seed)
    want_heldout = split == "heldout"
    avoid = HOLDOUT_PAIRS if split == "train" else ()
    while True:
        items = scenes.plan_scene(rng, size, avoid_pairs=avoid)
        layout = scenes.place(items, rng, size)
        if layout is None:
            continue
        bg = scenes.random_background(rng)
        image, objs = scenes.render(items, layout, bg, rng, size)
        # Re-word the caption until it lands on this split's side of the hash.
        for _ in range(80 if want_heldout else 20):
            text, mentions, facts = captions.caption(objs, bg, rng)
            if is_heldout_caption(text) == want_heldout:
                return Scene(image, text, objs, mentions, bg, split, index, facts=facts)


def place_captions(index: int, variants: int, place_rate: float = 0.9, size: int = 128,
                   seed: int = 0) -> list[str]:
    """More captions of train scene `index` that say where things are far more often (a training
    augmentation: the scene is the same picture; each caption stays on train's side of the hash,
    or is the scene's own caption where 20 tries do not get there)."""
    return [text for text, _ in place_caption_variants(scene("train", index, size, seed), variants, place_rate, seed)]


def place_caption_variants(s: Scene, variants: int, place_rate: float = 0.9,
                           seed: int = 0) -> list[tuple[str, list]]:
    """place_captions of a rendered train scene, each with its mentions (captions.Mention)."""
    out = []
    for v in range(variants):
        rng = scene_rng("train", s.index, seed, (PLACE_CAPTIONS_KEY, v))
        text, mentions = s.caption, s.mentions
        for _ in range(20):
            t, m, _ = captions.caption(s.objects, s.background, rng, place_rate=place_rate)
            if not is_heldout_caption(t):
                text, mentions = t, m
                break
        out.append((text, mentions))
    return out


PLACE_CAPTIONS_KEY = 100   # spawn-key branch of place_captions' generators


def dataset(split: str, n: int, size: int = 128, seed: int = 0, start: int = 0) -> Iterator[Scene]:
    """Scenes start .. start+n-1 of a split ('train' or 'heldout')."""
    for i in range(start, start + n):
        yield scene(split, i, size, seed)


def heldout_captions(n: int, size: int = 128, seed: int = 0) -> list[tuple[str, list[Obj]]]:
    """(caption, ground-truth objects of its reference render) for the quality measurement."""
    return [(s.caption, s.objects) for s in dataset("heldout", n, size, seed)]


def individual_images(name: str, n: int = 50, size: int = 128, seed: int = 0) -> list[Scene]:
    """n varied renders of a named individual for textual inversion.

    Captions use the class word ("a photo of a person on grass"); `template` has the name as a
    placeholder ("a photo of {alex} on grass"). About 30% also show one shape.
    """
    ch = NAMED[name]
    out = []
    idx = list(NAMED).index(name)
    for i in range(n):
        rng = scene_rng("individual", i, seed, (idx,))
        while True:
            items = [scenes.character_item(rng, size, ch, name=name)]
            cells = [str(rng.choice(["left", "centre", "right", "bottom", "top"],
                                    p=[.25, .3, .25, .12, .08]))]
            if rng.random() < 0.3:
                items.append(scenes.shape_item(rng, size, size="small",
                                               avoid_pairs=HOLDOUT_PAIRS))
                cells = None
            layout = scenes.place(items, rng, size, cells=cells)
            if layout is not None:
                break
        bg = scenes.random_background(rng)
        image, objs = scenes.render(items, layout, bg, rng, size)
        text, mentions, tmpl = captions.ti_caption(objs[0], objs[1:], bg, rng, name)
        out.append(Scene(image, text, objs, mentions, bg, "individual", i, tmpl))
    return out


def pair_scenes(a: str, b: str, n: int = 8, size: int = 128, seed: int = 0) -> list[Scene]:
    """n renders of two named individuals side by side (a on the left), for "A and B"."""
    out = []
    ia, ib = list(NAMED).index(a), list(NAMED).index(b)
    for i in range(n):
        rng = scene_rng("pair", i, seed, (ia, ib))
        while True:
            sz = str(rng.choice(["medium", "large"]))
            items = [scenes.character_item(rng, size, NAMED[a], name=a, size=sz),
                     scenes.character_item(rng, size, NAMED[b], name=b, size=sz)]
            layout = scenes.place(items, rng, size, cells=("left", "right"))
            if layout is not None:
                break
        bg = scenes.random_background(rng)
        image, objs = scenes.render(items, layout, bg, rng, size)
        text, mentions, tmpl = captions.character_pair_caption(objs, bg, rng, names=(a, b))
        out.append(Scene(image, text, objs, mentions, bg, "pair", i, tmpl))
    return out


def degrade(image: np.ndarray, blur_sigma: float = 1.5, noise_std: float = 10.0,
            seed: int = 0) -> np.ndarray:
    """Gaussian blur + Gaussian noise: a stand-in for a small model's blurrier, noisier output."""
    x = image.astype(np.float32)
    if blur_sigma > 0:
        x = gaussian_blur(x, blur_sigma)
    if noise_std > 0:
        x = x + np.random.default_rng(seed).normal(0, noise_std, x.shape)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def main(argv: list[str] | None = None) -> int:
    import argparse

    from toyworld import preview

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preview", metavar="OUT.png", required=True)
    ap.add_argument("--split", default="train", choices=["train", "heldout"])
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--degrade", action="store_true", help="show blurred+noisy renders")
    args = ap.parse_args(argv)
    paths = preview.write_previews(args.preview, split=args.split, start=args.start,
                                   size=args.size, seed=args.seed, degraded=args.degrade)
    print("\n".join(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
