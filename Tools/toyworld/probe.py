"""The character probe: the people and cats (and shapes) of the first N held-out captions through
diffusers, with the measurement's seeds (20000 + i), sampler and scoring (measure_pareidolia.match),
on the exported model or with a UNet seed (`train.py seed --seed-stage unet`) or another VAE
swapped in. What the toyworld README's trial figures were measured with: a UNet checkpoint can be
scored in minutes without exporting it or running textual inversion.

    python Tools/toyworld/probe.py --chars-only                        # the shipped model
    python Tools/toyworld/probe.py --unet-seed /work/tw/unet-seed.safetensors --vae /work/tw/decoder/final
    python Tools/toyworld/probe.py --strength 0.2   # redrawn from the true scene noised to 0.2 (img2img)
    python Tools/toyworld/probe.py --strength 0     # the VAE's round trip alone (the upper bound)

The world is TOYWORLD_VERSION's, so a model trained in version N is probed in version N. Prints how
many objects, characters by class and characters with every captioned attribute were found, then
each attribute's count (the misses with --misses)."""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from toyworld import stagekit as sk  # noqa: E402  (sets up the Hugging Face environment first)
from toyworld import detect, trainkit as tk, vae_check, world  # noqa: E402
from toyworld.measure_pareidolia import character_read, match  # noqa: E402
from toyworld.seedweights import read_seed  # noqa: E402

import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def load_pipeline(args):
    from diffusers import AutoencoderKL, StableDiffusionPipeline
    pipe = StableDiffusionPipeline.from_pretrained(args.model, dtype=torch.float32, safety_checker=None,
                                                   requires_safety_checker=False)
    pipe.scheduler = sk.make_scheduler(args.sampler)
    pipe.set_progress_bar_config(disable=True)
    if args.vae:
        pipe.vae = AutoencoderKL.from_pretrained(args.vae, dtype=torch.float32).eval()
    if args.unet_seed:
        own, text = read_seed(args.unet_seed)
        pipe.unet.load_state_dict(own)
        if text:  # a UNet seed carries the text encoder it was trained with, less the token table
            unused = pipe.text_encoder.load_state_dict(text, strict=False).unexpected_keys
            if unused:
                raise SystemExit(f"{args.unet_seed}: text-encoder keys the model does not have: {unused[:3]}")
    return pipe


def draw(args, pipe, scenes, seeds) -> list[np.ndarray]:
    """uint8 images: txt2img (strength 1), img2img from each true scene, or the round trip (0)."""
    if args.strength == 0:
        return list(vae_check.round_trip(pipe.vae, np.stack([s.image for s in scenes])))
    if args.strength == 1:
        return sk.generate(pipe, [s.caption for s in scenes], seeds, args.steps, args.guidance)
    from diffusers import StableDiffusionImg2ImgPipeline
    redraw = StableDiffusionImg2ImgPipeline(**pipe.components)
    redraw.set_progress_bar_config(disable=True)
    out = []
    for s, seed in zip(scenes, seeds):
        r = redraw(prompt=s.caption, image=tk.to_pixels(s.image[None]), strength=args.strength,
                   num_inference_steps=args.steps, guidance_scale=args.guidance, output_type="np",
                   generator=torch.Generator("cpu").manual_seed(seed))
        out.append(np.clip(np.rint(r.images[0] * 255), 0, 255).astype(np.uint8))
    return out


def score(scenes, images) -> tuple[dict, dict, list]:
    """(counts, per attribute [found, of], misses) as the measurement scores them."""
    counts = dict(objects=0, recognised=0, characters=0, by_class=0, with_attributes=0, attributes_ok=0)
    tally, misses = collections.defaultdict(lambda: [0, 0]), []
    for s, im in zip(scenes, images):
        found = match(s, *detect.analyse(im))
        for o in s.objects:
            d = found.get(o.id)
            if o.kind == "shape":
                counts["objects"] += 1
                counts["recognised"] += d is not None
                continue
            want, ok = character_read(s, o, d)
            counts["characters"] += 1
            counts["by_class"] += d is not None
            if not want:
                continue
            counts["with_attributes"] += 1
            counts["attributes_ok"] += ok
            for k, v in want.items():
                t = tally[f"{o.kind} {k} {v}"]
                t[0] += d is not None and getattr(d, k) == v
                t[1] += 1
            if not ok:
                seen = None if d is None else {"colour": d.colour, "hat_colour": d.hat_colour, "striped": d.striped}
                misses.append({"caption": s.caption, "kind": o.kind, "wanted": want, "read": seen})
    return counts, dict(tally), misses


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(REPO / "Assets" / "demo-model"), help="an exported diffusers folder")
    ap.add_argument("--unet-seed", help="a UNet seed file (train.py seed --seed-stage unet) in place of the model's UNet")
    ap.add_argument("--vae", help="a VAE folder (e.g. WORK/decoder/final) in place of the model's")
    ap.add_argument("--n", type=int, default=200, help="captions, from the first")
    ap.add_argument("--split", default="heldout", choices=["heldout", "train"])
    ap.add_argument("--chars-only", action="store_true", help="only the captions with a person or cat")
    ap.add_argument("--strength", type=float, default=1.0,
                    help="1: from noise (txt2img); 0 < s < 1: img2img from the true scene; 0: the VAE's round trip")
    ap.add_argument("--sampler", default="ddim")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--guidance", type=float, default=5.0)
    ap.add_argument("--sheet", help="write the first 48 images here (PNG)")
    ap.add_argument("--misses", action="store_true", help="print each character read wrong")
    args = ap.parse_args(argv)
    if not 0 <= args.strength <= 1:
        ap.error(f"--strength {args.strength}: expected 0 to 1")
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    # each caption keeps the measurement's seed, 20000 + its index among the first n
    picked = [(20000 + i, s) for i, s in enumerate(world.dataset(args.split, args.n))
              if not args.chars_only or any(o.kind != "shape" for o in s.objects)]
    seeds, scenes = [p[0] for p in picked], [p[1] for p in picked]
    images = draw(args, load_pipeline(args), scenes, seeds)
    counts, tally, misses = score(scenes, images)
    for key in sorted(tally):
        print(f"{key}: {tally[key][0]} of {tally[key][1]}")
    for m in misses if args.misses else ():
        print("miss", json.dumps(m))
    print(json.dumps({"world": world.WORLD_VERSION, "split": args.split, "captions": len(scenes),
                      "strength": args.strength, "sampler": args.sampler, "steps": args.steps,
                      "guidance": args.guidance, "unet_seed": args.unet_seed, "vae": args.vae, **counts}))
    if args.sheet and images:
        from PIL import Image
        k = min(48, len(images))
        rows = [np.concatenate(images[r:r + 8] + [np.zeros_like(images[0])] * max(0, r + 8 - k), 1)
                for r in range(0, k, 8)]
        Image.fromarray(np.concatenate(rows, 0)).save(args.sheet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
