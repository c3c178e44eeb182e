"""The VAE bar of the demo model: held-out scenes through encode → decode, scored as issue 20 asks.

    /work/venv/bin/python Tools/toyworld/vae_check.py PATH [--n 200] [--sheet OUT.png]

PATH: a diffusers VAE folder (`vae/final`, `Assets/demo-model/vae`), a train.py checkpoint
(`vae/ckpt.pt`, the cpu preset's architecture) or a `train.py seed` file (a decoder's seed takes
its encoder from `vae.safetensors` beside it). Prints PSNR, the share of objects the world's
detector still recognises by shape, colour and place (the bar: ≥ 97%), the mean
colour shift inside each colour's objects (masks eroded by 2 px, so blurred edges do not count;
max over R, G, B, in levels), and how many scenes have a speck: a background pixel (3 px away
from every object and outside every object's convex hull) off by more than 60 levels. Such pixels
inside a hull are counted apart (`scenes_with_filled_concavity`): a decoder that rounds off a
heart's notch or a star's inner corner has blurred the object's outline, which the recognised
share already scores, not drawn an artefact on the background. And the ceiling the round trip sets
on the UNet's character targets: held-out people and cats found by class and with their captioned
attribute (`measure_pareidolia`'s matching), and each named individual identified in `--individuals`
renders of it alone. `--sheet` writes originals above round trips.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import binary_erosion
from scipy.spatial import Delaunay, QhullError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from toyworld import detect, palette, world  # noqa: E402


def load(path: str):
    from diffusers import AutoencoderKL
    p = Path(path)
    if p.is_dir():
        return AutoencoderKL.from_pretrained(str(p))
    from toyworld import stagekit, train
    args = train.parse_args(["vae"])
    vae = AutoencoderKL(**stagekit.vae_kwargs(args))
    if p.suffix == ".pt":
        vae.load_state_dict(torch.load(str(p), map_location="cpu", weights_only=False)["objects"]["model"])
    else:   # a seed; a decoder's holds the decoder alone, its encoder the VAE seed's beside it
        from toyworld.seedweights import load_seed_state, read_seed
        from toyworld.stage_decoder import DECODER_PARTS
        state, _ = read_seed(p)
        if all(k.startswith(DECODER_PARTS) for k in state):
            encoder = p.with_name("vae.safetensors")
            if not encoder.exists():
                raise SystemExit(f"{p}: a decoder's seed; its encoder is expected in {encoder}")
            load_seed_state(vae, read_seed(encoder)[0], (), str(encoder))
            load_seed_state(vae, state, DECODER_PARTS, str(p))
        else:
            load_seed_state(vae, state, (), str(p))
    return vae


def convex_hull(mask: np.ndarray) -> np.ndarray:
    """The pixels whose centres lie in the convex hull of the mask's pixel centres."""
    ys, xs = np.nonzero(mask)
    if len(ys) < 3:
        return mask.copy()
    try:
        hull = Delaunay(np.stack([ys, xs], 1).astype(float))
    except QhullError:  # collinear pixels: the mask is its own hull
        return mask.copy()
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    gy, gx = np.mgrid[y0:y1, x0:x1]
    inside = hull.find_simplex(np.stack([gy.ravel(), gx.ravel()], 1).astype(float)) >= 0
    out = np.zeros_like(mask)
    out[y0:y1, x0:x1] = inside.reshape(gy.shape)
    return out


@torch.no_grad()
def round_trip(vae, imgs: np.ndarray, noise: float = 0.0) -> np.ndarray:
    """[N, H, W, 3] uint8 images through encode (the posterior's mode) and decode; `noise`: white
    noise of that many times the latents' spread (1 / scaling_factor, the train latents' std, as
    the decoder stage's --decoder-latent-noise) added first (the UNet's latents are not exact)."""
    rec = []
    g = torch.Generator().manual_seed(0)
    spread = 1 / float(vae.config.scaling_factor)
    for i in range(0, len(imgs), 16):
        x = torch.from_numpy(imgs[i:i + 16]).permute(0, 3, 1, 2).float() / 127.5 - 1  # [B, 3, H, W]
        z = vae.encode(x).latent_dist.mode()                                          # [B, 4, h, w]
        if noise > 0:
            z = z + noise * spread * torch.randn(z.shape, generator=g)
        r = vae.decode(z).sample.clamp(-1, 1)
        rec.append(((r + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy())    # [B, H, W, 3]
    return np.concatenate(rec)


def characters(vae, scenes, rec, per_individual: int) -> dict:
    """The UNet's ceiling for the character targets: held-out people and cats found by class and
    with their captioned attributes after the round trip (measure_pareidolia's matching), and
    each named individual identified in `per_individual` renders of it alone."""
    from toyworld.measure_pareidolia import character_read, match
    c = dict(chars=0, chars_class=0, attrs=0, attrs_ok=0)
    for s, im in zip(scenes, rec):
        found = match(s, *detect.analyse(im))
        for o in s.objects:
            if o.kind == "shape":
                continue
            det = found.get(o.id)
            want, ok = character_read(s, o, det)
            c["chars"] += 1
            c["chars_class"] += det is not None
            if want:
                c["attrs"] += 1
                c["attrs_ok"] += ok
    out = {"characters": c["chars"], "characters_class": c["chars_class"] / max(1, c["chars"]),
           "characters_attribute": c["attrs_ok"] / max(1, c["attrs"]), "individual_found": {}}
    for name in world.NAMED if per_individual else ():
        # seed 1: not the renders textual inversion learns from (seed 0)
        shots = world.individual_images(name, per_individual, seed=1)
        back = round_trip(vae, np.stack([x.image for x in shots]))
        hits = sum(any(ch.name == name for ch in detect.detect_characters(im)) for im in back)
        truth = sum(any(ch.name == name for ch in detect.detect_characters(x.image)) for x in shots)
        out["individual_found"][name] = {"found": int(hits), "renders": per_individual, "in_originals": int(truth)}
    return out


@torch.no_grad()
def check(vae, n: int, per_individual: int = 16) -> tuple[dict, np.ndarray, np.ndarray]:
    vae.eval()
    scenes = list(world.dataset("heldout", n))
    imgs = np.stack([s.image for s in scenes])
    rec = round_trip(vae, imgs)
    mse = float(((rec.astype(np.float64) - imgs) ** 2).mean() / 255 ** 2)
    objects = placed = specks = concavities = 0
    shift: dict[str, list[float]] = {}
    for s, im in zip(scenes, rec):
        objects += len(s.objects)
        placed += round(detect.recognised_fraction(s.objects, im, check_position=True) * len(s.objects))
        for o in s.objects:
            core = binary_erosion(o.mask, iterations=2)
            if o.kind == "shape" and core.any():
                shift.setdefault(o.colour, []).append(float(np.abs(im[core].mean(0) - palette.COLOURS[o.colour]).max()))
        bg = np.ones(im.shape[:2], bool)
        for o in s.objects:
            bg &= ~o.mask
        bg = binary_erosion(bg, iterations=3)
        off = (np.abs(im.astype(int) - s.image.astype(int)).max(-1) > 60) & bg
        hulls = np.zeros_like(bg)
        for o in s.objects:
            hulls |= convex_hull(o.mask)
        specks += int((off & ~hulls).any())
        concavities += int((off & hulls).any())
    result = {"scenes": n, "psnr": 10 * np.log10(1 / mse), "objects": objects, "recognised_with_place": placed / objects,
              "colour_shift": {c: float(np.mean(v)) for c, v in sorted(shift.items())}, "scenes_with_speck": specks,
              "scenes_with_filled_concavity": concavities}
    result.update(characters(vae, scenes, rec, per_individual))
    return result, imgs, rec


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("path")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--individuals", type=int, default=16, help="renders of each named individual alone")
    ap.add_argument("--sheet", default=None)
    args = ap.parse_args(argv)
    torch.set_flush_denormal(True)
    result, imgs, rec = check(load(args.path), args.n, args.individuals)
    print(json.dumps(result, indent=1))
    if args.sheet:
        from PIL import Image
        k = min(8, args.n)
        Image.fromarray(np.concatenate([np.concatenate(list(imgs[:k]), 1), np.concatenate(list(rec[:k]), 1)], 0)).save(args.sheet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
