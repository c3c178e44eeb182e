"""The UNet stage's parts (stage_unet.py runs them): the held-out check (heldout_eval, measure's
too), captions that say where and the grounding data, pyramid noise, the min-SNR weight with its
floor, building, growing and widening the UNet, its learning rate, optimizer, grounding weights
and batch order (--unet-repeat: repeat_spec, focus_batch_order)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[1]
if str(TOOLS) not in sys.path:   # also when imported from Tools/toyworld itself (`import train`)
    sys.path.insert(0, str(TOOLS))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from toyworld import detect, world  # noqa: E402
from toyworld import grounding as gr  # noqa: E402
from toyworld import trainkit as tk  # noqa: E402
from toyworld.stagekit import (CAT_WORDS, CHARACTER_WORDS, IMAGE_SIZE, TOKENIZER_DIR, generate, log,  # noqa: E402
                               plain_attention, tokenize, unet_kwargs)


def heldout_eval(pipe, n: int, seed0: int, steps: int, guidance: float, world_seed: int):
    caps = world.heldout_captions(n, size=IMAGE_SIZE, seed=world_seed)
    images = generate(pipe, [c for c, _ in caps], [seed0 + i for i in range(n)], steps, guidance)
    plain = [detect.recognised_fraction(objs, im) for (_, objs), im in zip(caps, images)]
    pos = [detect.recognised_fraction(objs, im, check_position=True) for (_, objs), im in zip(caps, images)]
    return float(np.mean(plain)), float(np.mean(pos)), images, [c for c, _ in caps], plain


def place_caption_ids(args, latents_dir: Path, tok, n: int) -> torch.Tensor:
    """[K, N, 77] token ids of world.place_captions for the N train scenes, built once (about
    15 ms a scene, in --threads processes) into the latents folder."""
    k, rate = args.unet_place_captions, args.unet_place_rate
    path = latents_dir / f"place-captions-k{k}-r{rate:g}.npy"
    if not path.exists():
        t0 = time.time()
        caps = tk.place_captions(n, k, rate, IMAGE_SIZE, args.world_seed, workers=max(1, args.threads))
        ids = np.stack([tokenize(tok, [c[j] for c in caps]).numpy().astype(np.int32) for j in range(k)])
        tk.write_json_atomic(path.with_suffix(".json"), caps)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, ids)
        os.replace(tmp, path)
        log(f"[unet] {k} captions saying where for each of {n} scenes in {time.time() - t0:.0f} s: {path}")
    return torch.from_numpy(np.load(path).astype(np.int64))


def grounding_data(args, latents_dir: Path, ids: torch.Tensor, place_ids) -> tuple[torch.Tensor, torch.Tensor]:
    """(masks [N, O, 16, 16], bits [N, K+1, 77]) of grounding.py for the N train scenes, built once
    into the latents folder. A caption whose ids are not the ones trained on is left ungrounded."""
    k, rate = args.unet_place_captions, args.unet_place_rate
    path = latents_dir / f"grounding-k{k}-r{rate:g}.npz"
    if not path.exists():
        t0 = time.time()
        gr.build_cache(path, len(ids), k, rate, IMAGE_SIZE, args.world_seed, str(TOKENIZER_DIR),
                       workers=max(1, args.threads))
        log(f"[unet] object masks and the words naming them for {len(ids)} scenes in {time.time() - t0:.0f} s: {path}")
    f = np.load(path)
    g_ids, bits = torch.from_numpy(f["ids"].astype(np.int64)), torch.from_numpy(f["bits"])
    trained = ids[:, None] if place_ids is None else torch.cat([ids[:, None], place_ids.transpose(0, 1)], 1)
    same = (g_ids[:, :trained.shape[1]] == trained).all(-1)                 # [N, K+1]
    bits[:, :trained.shape[1]][~same] = 0
    if not bool(same.all()):
        log(f"[unet] grounding: {int((~same).sum())} of {same.numel()} captions tokenized otherwise, left ungrounded")
    return torch.from_numpy(f["masks"].astype(np.float32)), bits


PYRAMID_GRIDS = (8, 4, 2)   # latent grids of the low-frequency noise: object- and cell-sized


def pyramid_noise(noise: torch.Tensor, strength: float, g: torch.Generator) -> torch.Tensor:
    """noise ([B, C, H, W]) plus `strength` x a bilinearly upsampled Gaussian field per grid of
    PYRAMID_GRIDS, scaled back to the white noise's variance (the samplers start from unit noise).

    SD 1.5's schedule leaves an image's layout in x_T: at 16x16 latents the 4x4-pooled x_999
    still correlates 0.095 with the clean latent's (0.16 at t=900), so the model reads where
    things are from the noise and never needs the caption's place words (the same 16 seeds drew
    the same places for "on the left", "on the right" and "at the top"). Strength 0.6 halves
    that correlation (0.047 and 0.080)."""
    b, c, h, w = noise.shape
    out = noise.clone()
    for n in PYRAMID_GRIDS:
        field = torch.randn(b, c, n, n, generator=g)                      # [B, C, n, n]
        out += strength * torch.nn.functional.interpolate(field, size=(h, w), mode="bilinear",
                                                          align_corners=False)  # [B, C, H, W]
    return out / _pyramid_std(strength, h, w)


def _pyramid_std(strength: float, h: int, w: int) -> float:
    """The std of white noise plus the upsampled fields (their variance is below 1: bilinear
    interpolation averages), measured once per shape on a fixed generator."""
    key = (strength, h, w)
    if key not in _PYRAMID_STD:
        g = torch.Generator().manual_seed(0)
        var = 1.0
        for n in PYRAMID_GRIDS:
            f = torch.nn.functional.interpolate(torch.randn(256, 4, n, n, generator=g), size=(h, w),
                                                mode="bilinear", align_corners=False)
            var += strength ** 2 * float(f.var())
        _PYRAMID_STD[key] = float(np.sqrt(var))
    return _PYRAMID_STD[key]


_PYRAMID_STD: dict = {}


def snr_weight(snr: torch.Tensor, gamma: float, floor: float) -> torch.Tensor:
    """min-SNR-gamma weighting of an epsilon loss, with a floor: in x0 terms the weight is
    min(snr, gamma), 0.005 at t = 999, so where the layout is decided a wrong place cost almost
    nothing; the floor raises it there (1: as a v-prediction loss weighs high noise)."""
    if gamma <= 0:
        return torch.ones_like(snr)
    return torch.clamp(snr, min=floor, max=gamma) / snr


def new_unet(args, cross: int, deep: bool, dev, wide: bool = False):
    """A freshly initialised UNet of the stage's layout (see unet_kwargs), plain attention."""
    from diffusers import UNet2DConditionModel
    return plain_attention(UNet2DConditionModel(**unet_kwargs(args, cross, deep, wide)).to(dev), dev)


def unet_deep_at(args, step: int) -> bool:
    """Whether the UNet that has finished `step` steps has transformers at its lowest level:
    they join when step --unet-deep-attention-from begins."""
    return 0 < args.unet_deep_attention_from < step


def unet_wide_at(args, step: int) -> bool:
    """Whether the UNet that has finished `step` steps is the widened one (see --unet-widen)."""
    return bool(args.unet_widen) and 0 < args.unet_widen_from < step


def widen_unet(args, unet, ema, te, token_table, train_text: bool, cross: int, dev):
    """`unet` and its EMA with each level's channels times its --unet-widen factor (widen.py:
    copies of each channel, the same function, apart from the groups that straddle a seam between
    two factors); a fresh optimizer, but the text encoder's Adam moments go on."""
    from toyworld import widen
    deep = unet_deep_at(args, args.unet_widen_from + 1)
    wide = new_unet(args, cross, deep, dev, wide=True)
    config = dict(unet.config)
    seed = tk.derived_seed(args.seed, tk.STAGE_IDS["unet"], 11)
    wide.load_state_dict(widen.widened_state(unet.state_dict(), config, list(args.unet_widen), seed=seed))
    wide_ema = tk.EMA(wide, ema.decay)
    wide_ema.shadow.update(widen.widened_state(ema.shadow, config, list(args.unet_widen), seed=seed))
    opt = unet_optimizer(args, wide, te, token_table, train_text)
    log(f"[unet] widened: channels {list(config['block_out_channels'])} -> "
        f"{list(wide.config['block_out_channels'])}, {sum(p.numel() for p in unet.parameters()) / 1e6:.2f} M -> "
        f"{sum(p.numel() for p in wide.parameters()) / 1e6:.2f} M parameters")
    return wide, wide_ema, opt


def unet_lr(args, opt, s: int, steps: int) -> float:
    """The UNet's cosine (--unet-cosine-steps long, else to the stage's end), cut at each of
    --unet-restart-from by a new one (warm-up, then down to the next restart or the stage's end)
    at that restart's --unet-restart-lr."""
    starts = list(args.unet_restart_from)
    if len(starts) != len(args.unet_restart_lr):
        raise SystemExit("[unet] --unet-restart-from and --unet-restart-lr need one value each per restart")
    for k in range(len(starts) - 1, -1, -1):
        r = starts[k]
        if s >= r:
            end = starts[k + 1] if k + 1 < len(starts) else steps
            return tk.set_lr(opt, s - r, args.unet_restart_lr[k], args.unet_warmup, end - r)
    return tk.set_lr(opt, s, args.unet_lr, args.unet_warmup, args.unet_cosine_steps or steps)


# --unet-repeat's kinds of scene (focus_batch_order), and what its log calls them
SCENE_NAMES = {"two": "two-thing scenes", "characters": "character scenes", "cats": "cat scenes"}
REPEAT_KINDS = tuple(SCENE_NAMES)


def repeat_spec(text: str) -> dict[str, int]:
    """--unet-repeat: 'two=2,characters=3' -> {'two': 2, 'characters': 3}."""
    out = {}
    for part in filter(None, text.split(",")):
        key, _, n = part.partition("=")
        if key not in REPEAT_KINDS or not n.isdigit() or int(n) < 1:
            raise argparse.ArgumentTypeError(f"{part!r}: expected {', '.join(k + '=N' for k in REPEAT_KINDS)} (N ≥ 1)")
        out[key] = int(n)
    return out


def focus_batch_order(args, masks, captions: list[str]) -> tk.BatchOrder | None:
    """The batch order from --unet-repeat-from on: an epoch lists each train scene as many times
    as --unet-repeat asks for its kind (the largest that applies: `two`, a scene with two things,
    by the grounding cache's object masks [N, O, 16, 16]; `characters`, one with a person or cat,
    by its caption's class word; `cats`, one with a cat), others once; None when nothing repeats."""
    if not any(n > 1 for n in args.unet_repeat.values()):
        return None
    things = (masks.flatten(2).sum(-1) > 0).sum(1).numpy()                  # [N]
    kinds = {"two": things >= 2,
             "characters": np.array([bool(CHARACTER_WORDS.search(c)) for c in captions]),
             "cats": np.array([bool(CAT_WORDS.search(c)) for c in captions])}
    repeat = np.max([np.where(kinds[k], args.unet_repeat.get(k, 1), 1) for k in REPEAT_KINDS], axis=0)   # [N]
    pool = np.repeat(np.arange(len(repeat)), repeat)
    log(f"[unet] from step {args.unet_repeat_from}: scenes repeated {args.unet_repeat}; an epoch draws "
        + ", ".join(f"{SCENE_NAMES[k]} {int(repeat[m].sum())} of {len(pool)}" for k, m in kinds.items()))
    return tk.BatchOrder(pool, args.unet_batch, args.seed, "unet", sub=1)


def object_weighted_mean(err: torch.Tensor, masks: torch.Tensor, weight: float) -> torch.Tensor:
    """Each sample's mean of err [B, h, w] with the pixels inside any of its objects (masks
    [B, O, h, w], coverage 0..1) weighing 1 + weight, the others 1 (--unet-object-weight): a
    character's ears, stripes and hat brim are a few latent pixels of 256, and the plain mean
    spends most of the loss on background."""
    w = 1.0 + weight * masks.amax(dim=1)                                   # [B, h, w]
    return (err * w).sum(dim=(1, 2)) / w.sum(dim=(1, 2))                   # [B]


def ground_weights(args, s: int) -> tuple[float, float] | None:
    """(token, pixel) weights of the grounding losses at step s: the last of --unet-ground-from
    at or before s picks them from --unet-ground-weight and --unet-ground-pixel-weight; None
    before the first or where both are 0."""
    starts = list(args.unet_ground_from)
    if not (len(starts) == len(args.unet_ground_weight) == len(args.unet_ground_pixel_weight)):
        raise SystemExit("[unet] --unet-ground-from, --unet-ground-weight and --unet-ground-pixel-weight "
                         "need one value each per change")
    for k in range(len(starts) - 1, -1, -1):
        if s >= starts[k]:
            w = (args.unet_ground_weight[k], args.unet_ground_pixel_weight[k])
            return w if any(w) else None
    return None


def unet_optimizer(args, unet, te, token_table, train_text: bool):
    groups = [{"params": list(unet.parameters())}]
    if train_text:
        groups.append({"params": [p for p in te.parameters() if p is not token_table],
                       "lr_ratio": args.unet_text_lr_ratio, "weight_decay": 0.0})
    return torch.optim.AdamW(groups, lr=args.unet_lr, betas=(0.9, 0.999), weight_decay=1e-2)


def grow_unet(args, unet, ema, opt, te, token_table, train_text: bool, cross: int, dev):
    """`unet` with transformers at its lowest level too (down and up), their output convs
    (proj_out) zero so the grown UNet predicts exactly what `unet` did; the EMA and the Adam
    moments of every old weight go on."""
    deep = new_unet(args, cross, True, dev)
    missing, unexpected = deep.load_state_dict(unet.state_dict(), strict=False)
    if unexpected or not missing or any(".attentions." not in k for k in missing):
        raise SystemExit(f"[unet] growing: unexpected keys {unexpected}, missing {missing}")
    new_blocks = sorted({k.split(".attentions.")[0] for k in missing})
    with torch.no_grad():
        for name, m in deep.named_modules():
            if name.endswith(".proj_out") and name.split(".attentions.")[0] in new_blocks:
                m.weight.zero_()
                m.bias.zero_()
    grown_ema = tk.EMA(deep, ema.decay)
    grown_ema.shadow.update(ema.shadow)            # the old weights' averages; new ones start at init
    grown_opt = unet_optimizer(args, deep, te, token_table, train_text)
    old = dict(unet.named_parameters())
    for name, p in deep.named_parameters():
        if name in old and old[name] in opt.state:
            grown_opt.state[p] = opt.state[old[name]]
    if train_text:
        for p in te.parameters():
            if p in opt.state:
                grown_opt.state[p] = opt.state[p]
    added = sum(p.numel() for n, p in deep.named_parameters() if n not in old)
    log(f"[unet] grown: transformers in {', '.join(new_blocks)} ({added / 1e6:.2f} M parameters, "
        f"output zero); {sum(p.numel() for p in deep.parameters()) / 1e6:.2f} M in all")
    return deep, grown_ema, grown_opt
