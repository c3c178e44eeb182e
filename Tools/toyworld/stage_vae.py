"""The vae stage: an AutoencoderKL trained on crops and whole scenes, then refined (object and peak
terms), its scaling_factor measured as SD's was; and its losses (reconstruction_losses, peak_loss,
object_pixels), which the decoder stage uses too."""

from __future__ import annotations

import sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[1]
if str(TOOLS) not in sys.path:   # also when imported from Tools/toyworld itself (`import train`)
    sys.path.insert(0, str(TOOLS))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from toyworld import detect, world  # noqa: E402
from toyworld import trainkit as tk  # noqa: E402
from toyworld.seedweights import seed_from_weights  # noqa: E402
from toyworld.stagekit import (IMAGE_SIZE, autocast, common_config, data_key, device, log, open_stage,  # noqa: E402
                               stage_steps, train_loop, train_scenes, vae_kwargs)


# ============================================================================================
# stage: vae
# ============================================================================================
def stage_vae(args) -> bool:
    from diffusers import AutoencoderKL
    work, dev = Path(args.work), device(args)
    steps = stage_steps(args, "vae")
    cfg = common_config(args, "vae", batch=args.vae_batch, crop=args.vae_crop, full_from=args.vae_full_from,
                        full_batch=args.vae_full_batch, lr=args.vae_lr,
                        warmup=args.vae_warmup, kl_weight=args.kl_weight, edge_weight=args.edge_weight,
                        object_weight=args.vae_object_weight, peak_weight=args.vae_peak_weight,
                        peak_boost=(args.vae_peak_boost_from, args.vae_peak_boost_weight, args.vae_peak_boost_k),
                        refine_from=args.vae_refine_from, refine_lr=args.vae_refine_lr,
                        model=vae_kwargs(args), scenes=args.scenes, scale_samples=args.scale_samples)
    run = open_stage(args, "vae", steps, cfg, {"data": data_key(args)})
    if run is None:
        return True
    imgs, _ = train_scenes(args)
    torch.manual_seed(tk.derived_seed(args.seed, tk.STAGE_IDS["vae"], 7))
    vae = AutoencoderKL(**vae_kwargs(args)).to(dev)
    opt = torch.optim.AdamW(vae.parameters(), lr=args.vae_lr, betas=(0.9, 0.99), weight_decay=0.0)
    objects = {"model": vae, "opt": opt}
    step = run.resume(objects)
    if step == 0 and args.vae_init:
        step = seed_from_weights(vae, Path(args.vae_init), run)
    order = tk.BatchOrder(len(imgs), args.vae_batch, args.seed, "vae")
    # Crops teach detail cheaply, but GroupNorm and the mid-block attention see whole-image
    # statistics: a VAE trained on 64x64 crops only shifts colours on 128x128 scenes (measured:
    # half the L1 error on crops of the same images), so the last steps train on whole scenes.
    full_order = tk.BatchOrder(len(imgs), args.vae_full_batch, args.seed, "vae", sub=1)
    ev = list(world.dataset("heldout", args.eval_scenes, size=IMAGE_SIZE, seed=args.world_seed))
    ev_px = tk.to_pixels(np.stack([s.image for s in ev]), dev)

    @torch.no_grad()
    def evaluate(at):
        vae.eval()
        rec = vae.decode(vae.encode(ev_px).latent_dist.mode()).sample
        vae.train()
        mse = float(((rec.clamp(-1, 1) - ev_px) ** 2).mean() / 4)   # on [0, 1]
        psnr = 10 * np.log10(1 / max(mse, 1e-12))
        u8 = tk.to_uint8(rec)
        frac = float(np.mean([detect.recognised_fraction(s.objects, im) for s, im in zip(ev, u8)]))
        run.add_eval(at, heldout_psnr=psnr, heldout_recognised=frac, n=len(ev))
        return psnr, frac

    refine_from = args.vae_refine_from if args.vae_refine_from is not None else steps

    def body(s):
        # Two phases: the main cosine schedule up to refine_from, then a restart at
        # --vae-refine-lr with the object and peak terms (fine-tuning a VAE that already draws).
        refining = s >= refine_from
        if refining:
            lr = tk.set_lr(opt, s - refine_from, args.vae_refine_lr, 50, steps - refine_from)
        else:
            lr = tk.set_lr(opt, s, args.vae_lr, args.vae_warmup, refine_from)
        g = tk.step_generator(args.seed, "vae", s)
        full = args.vae_full_from is not None and s >= args.vae_full_from
        c = IMAGE_SIZE if full else args.vae_crop
        idx = full_order(s) if full else order(s)
        off = torch.randint(0, IMAGE_SIZE - c + 1, (len(idx), 2), generator=g).tolist()
        batch = np.stack([imgs[i][oy:oy + c, ox:ox + c] for i, (oy, ox) in zip(idx, off)])
        x = tk.to_pixels(batch, dev)
        with autocast(args):
            post = vae.encode(x).latent_dist
            z = post.mean + post.std * torch.randn(post.mean.shape, generator=g).to(dev)
            rec = vae.decode(z).sample.float()
        d = rec - x
        l_rec, l_edge = reconstruction_losses(x, rec, args.vae_object_weight if refining else 0.0)
        # LDM's ratio: KL summed over the latent vs reconstruction summed over pixels
        l_kl = post.kl().float().mean() / (3 * c * c)
        loss = l_rec + args.edge_weight * l_edge + args.kl_weight * l_kl
        extra = {}
        if refining and args.vae_peak_weight > 0:
            # The boost, late: a speck left in 1 scene of 200 weighs 1/32 of one scene's term
            # with k = 32; fewer, heavier worst pixels aim at it.
            boosted = args.vae_peak_boost_from is not None and s >= args.vae_peak_boost_from
            k, weight = (args.vae_peak_boost_k, args.vae_peak_boost_weight) if boosted else (32, args.vae_peak_weight)
            l_peak = peak_loss(x, d, k)
            loss = loss + weight * l_peak
            extra["peak"] = l_peak.item()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        return loss.item(), {"rec": l_rec.item(), "edge": l_edge.item(), "kl": l_kl.item(), **extra, "lr": lr}

    vae.train()
    step = train_loop(run, objects, step, body, evaluate, args.eval_every)
    if step < steps:
        return False
    psnr, frac = evaluate(step)
    # scaling factor as LDM's scale_by_std: 1 / std of posterior samples of training images
    vae.eval()
    g = torch.Generator("cpu").manual_seed(tk.derived_seed(args.seed, tk.STAGE_IDS["vae"], 99))
    zs = []
    with torch.no_grad():
        for i in range(0, min(args.scale_samples, len(imgs)), 32):
            post = vae.encode(tk.to_pixels(imgs[i:min(i + 32, args.scale_samples)], dev)).latent_dist
            zs.append((post.mean + post.std * torch.randn(post.mean.shape, generator=g).to(dev)).cpu())
    z = torch.cat(zs)
    std = float(z.flatten().std())
    sf = 1.0 / std
    vae.register_to_config(scaling_factor=sf)
    log(f"[vae] latents of {len(z)} training scenes: mean {float(z.mean()):.4f}, std {std:.4f} "
        f"-> scaling_factor {sf:.5f} (SD 1.x: 0.18215)")
    final = run.dir / "final"
    vae.save_pretrained(str(final))
    return run.finish(step, objects, digest=tk.file_digest([final / "diffusion_pytorch_model.safetensors"]),
                      scaling_factor=sf, latent_std=std, latent_mean=float(z.mean()),
                      heldout_psnr=psnr, heldout_recognised=frac)


def reconstruction_losses(x: torch.Tensor, rec: torch.Tensor, object_weight: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(L1 + L2, edge) of a reconstruction rec of x ([B, 3, H, W] in [-1, 1])."""
    d = rec - x
    if object_weight > 0:
        # Objects are a small share of a scene's pixels: weigh the pixels that are none of the
        # backgrounds' colours (objects, characters, their edges) more, where colours shifted.
        w = 1 + object_weight * object_pixels(x)                                   # [B, 1, H, W]
        l_rec = (w * d.abs()).mean() + (w * d ** 2).mean()
    else:
        l_rec = d.abs().mean() + (d ** 2).mean()
    l_edge = ((rec[..., 1:] - rec[..., :-1]) - (x[..., 1:] - x[..., :-1])).abs().mean() + \
             ((rec[..., 1:, :] - rec[..., :-1, :]) - (x[..., 1:, :] - x[..., :-1, :])).abs().mean()
    return l_rec, l_edge


def peak_loss(x: torch.Tensor, d: torch.Tensor, k: int) -> torch.Tensor:
    """Mean of each scene's k worst background pixel errors (3 px clear of any object): a mean
    loss barely sees the speck a decoder learns to draw at one fixed place on grass (a GroupNorm
    artefact, like StyleGAN's droplets), and object edges would fill a plain top-k."""
    near_object = torch.nn.functional.max_pool2d(object_pixels(x), 7, stride=1, padding=3)  # [B, 1, H, W]
    bg_err = d.abs().amax(1, keepdim=True) * (1 - near_object)                    # [B, 1, H, W]
    return bg_err.flatten(1).topk(k, dim=1).values.mean()                          # [B, k] → []


def object_pixels(x: torch.Tensor) -> torch.Tensor:
    """[B, 1, H, W]: 1 where a pixel of x ([B, 3, H, W] in [-1, 1]) is more than ~38 levels from every
    background colour of the world, else 0."""
    from toyworld import palette
    bg = torch.tensor([c for cols in palette.BACKGROUNDS.values() for c in cols], dtype=x.dtype, device=x.device) / 127.5 - 1  # [K, 3]
    dist = (x[:, None] - bg[None, :, :, None, None]).norm(dim=2).min(dim=1, keepdim=True).values  # [B, 1, H, W]
    return (dist > 0.3).to(x.dtype)
