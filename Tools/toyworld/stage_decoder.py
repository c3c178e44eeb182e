"""The latents stage (every train scene encoded once by the frozen VAE, with its caption's token ids)
and the decoder stage (the VAE's decoder alone tuned further on those latents): its optimizer,
batches (DecoderBatches, individual_latents), update step and checks (DecoderChecks)."""

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
from toyworld.stage_vae import peak_loss, reconstruction_losses  # noqa: E402
from toyworld.stagekit import (CHARACTER_WORDS, IMAGE_SIZE, LATENT_SIZE, autocast, common_config,  # noqa: E402
                               data_key, device, load_tokenizer, load_vae, log, open_stage, require_done,
                               stage_steps, tokenize, train_loop, train_scenes)


# ============================================================================================
# stage: latents
# ============================================================================================
def stage_latents(args) -> bool:
    work, dev = Path(args.work), device(args)
    vae_done = require_done(work, "vae")
    chunk = 64
    n = args.scenes
    n_chunks = (n + chunk - 1) // chunk
    cfg = common_config(args, "latents", scenes=n, chunk=chunk)
    run = open_stage(args, "latents", n_chunks, cfg, {"vae": vae_done["digest"], "data": data_key(args)}, ckpt_every=max(1, n_chunks // 20))
    if run is None:
        return True
    imgs, caps = train_scenes(args)
    vae = load_vae(work, dev)
    d = run.dir
    shape = (n, 4, LATENT_SIZE, LATENT_SIZE)
    if not (d / "mean.npy").exists() or not run.ckpt.exists():
        np.lib.format.open_memmap(d / "mean.npy", "w+", np.float32, shape).flush()
        np.lib.format.open_memmap(d / "std.npy", "w+", np.float32, shape).flush()
    mean_mm = np.load(d / "mean.npy", mmap_mode="r+")
    std_mm = np.load(d / "std.npy", mmap_mode="r+")

    class Flush:   # the memmaps are the state: flushed before each checkpoint
        def state_dict(self):
            mean_mm.flush()
            std_mm.flush()
            return {}

        def load_state_dict(self, sd):
            pass

    objects = {"memmaps": Flush()}
    step = run.resume(objects)

    @torch.no_grad()
    def body(k):
        a, b = k * chunk, min(n, (k + 1) * chunk)
        post = vae.encode(tk.to_pixels(imgs[a:b], dev)).latent_dist
        mean_mm[a:b] = post.mean.cpu().numpy()
        std_mm[a:b] = post.std.cpu().numpy()
        return float(post.mean.std()), {}

    step = train_loop(run, objects, step, body)
    if step < n_chunks:
        return False
    tok = load_tokenizer()
    ids = tokenize(tok, caps).numpy().astype(np.int32)
    np.save(d / "ids.npy", ids)
    tk.write_json_atomic(d / "captions.json", list(caps))
    sf = float(vae.config.scaling_factor)
    m = np.asarray(mean_mm[:min(n, 4096)])
    log(f"[latents] {n} scenes; std of scaled latent means {float(m.std() * sf):.4f} (target ~1)")
    return run.finish(step, objects, digest=tk.file_digest([d / "mean.npy", d / "std.npy", d / "ids.npy"]),
                      scaled_std=float(m.std() * sf), scaling_factor=sf)


# ============================================================================================
# stage: decoder
# ============================================================================================
def stage_decoder(args) -> bool:
    """The VAE's decoder alone, tuned further on the cached latents (the recipe of SD's ft-MSE
    VAE): the encoder, every latent and the UNet trained on them stay as they are. The VAE drew
    shapes well but smudged faces, so scenes with people or cats are drawn
    --decoder-character-share of the time and non-background pixels weigh more; from
    --decoder-individuals-from, --decoder-individual-share of each batch are renders of the named
    individuals (textual inversion's, seed 0; the checks draw seed 1); from
    --decoder-latent-noise-from, latents get white noise and are to decode to the clean scene.
    What each of these did, and what was tried and dropped (noisy latents, the UNet's own latents,
    an adversarial term; a larger share of the individuals' renders), is in the README's stage
    table and its "Tried" list."""
    from diffusers import AutoencoderKL
    work, dev = Path(args.work), device(args)
    vae_done, lat_done = require_done(work, "vae"), require_done(work, "latents")
    steps = stage_steps(args, "decoder")
    if steps == 0:   # no tuning: load_vae goes on using the VAE stage's decoder
        return True
    cfg = common_config(args, "decoder", batch=args.decoder_batch, lr=args.decoder_lr, warmup=args.decoder_warmup,
                        object_weight=args.decoder_object_weight, character_share=args.decoder_character_share,
                        edge_weight=args.edge_weight, peak_weight=args.vae_peak_weight,
                        individual_share=args.decoder_individual_share, individuals_from=args.decoder_individuals_from,
                        individuals=args.decoder_individuals, latent_noise=args.decoder_latent_noise,
                        latent_noise_from=args.decoder_latent_noise_from)
    run = open_stage(args, "decoder", steps, cfg, {"vae": vae_done["digest"], "latents": lat_done["digest"]})
    if run is None:
        return True
    vae = AutoencoderKL.from_pretrained(str(work / "vae" / "final"), dtype=torch.float32).to(dev)
    tuned, opt = decoder_optimizer(vae, args.decoder_lr)
    objects = {"model": vae, "opt": opt}
    step = run.resume(objects)
    if step == 0 and args.decoder_init:
        step = seed_from_weights(vae, Path(args.decoder_init), run, parts=DECODER_PARTS)
    batches = DecoderBatches(args, work, lat_done, individual_latents(args, vae, dev) if args.decoder_individual_share > 0 else None)
    checks = DecoderChecks(args, noisy=args.decoder_latent_noise > 0)

    def body(s):
        lr = tk.set_lr(opt, s, args.decoder_lr, args.decoder_warmup, steps)
        g = tk.step_generator(args.seed, "vae", s, sub=2)
        z, x = batches.draw(s, args.decoder_batch, g)
        return decoder_update(args, vae, opt, tuned, z, x, lr)

    vae.train()
    step = train_loop(run, objects, step, body, lambda at: run.add_eval(at, **checks(vae)), args.eval_every)
    if step < steps:
        return False
    run.add_eval(step, **checks(vae))
    vae.eval()
    final = run.dir / "final"
    vae.save_pretrained(str(final))
    return run.finish(step, objects, digest=tk.file_digest(sorted(final.glob("*.safetensors"))))


# What the decoder stage tunes (and its seed holds), as state-dict key prefixes of the VAE.
DECODER_PARTS = ("decoder.", "post_quant_conv.")


def decoder_optimizer(vae, lr: float):
    """The decoder and post_quant_conv trainable, the encoder frozen (every cached latent holds)."""
    vae.requires_grad_(False)
    tuned = [p for k, p in vae.named_parameters() if k.startswith(DECODER_PARTS)]
    for p in tuned:
        p.requires_grad_(True)
    return tuned, torch.optim.AdamW(tuned, lr=lr, betas=(0.9, 0.99), weight_decay=0.0)


class DecoderBatches:
    """(latent, scene) batches of posterior samples of the cached train latents: a share with
    people or cats, from --decoder-individuals-from a share of the named individuals' renders,
    from --decoder-latent-noise-from white noise on the latents."""

    def __init__(self, args, work: Path, lat_done: dict, individuals):
        self.args, self.individuals = args, individuals
        self.imgs, caps = train_scenes(args)
        d = work / "latents"
        self.mean, self.std = np.load(d / "mean.npy", mmap_mode="r"), np.load(d / "std.npy", mmap_mode="r")
        with_chars = np.array([bool(CHARACTER_WORDS.search(c)) for c in caps])
        self.pools = (np.nonzero(with_chars)[0], np.nonzero(~with_chars)[0])
        self.spread = 1 / float(lat_done["scaling_factor"])

    def draw(self, s: int, b: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        args, individuals = self.args, self.individuals
        n_ind = (int(round(b * args.decoder_individual_share))
                 if individuals is not None and s >= args.decoder_individuals_from else 0)
        n_chars = int(round((b - n_ind) * args.decoder_character_share))
        idx = np.concatenate([pool[torch.randint(0, len(pool), (k,), generator=g).numpy()]
                              for pool, k in zip(self.pools, (n_chars, b - n_ind - n_chars)) if len(pool)])
        idx = np.sort(idx)   # memmap reads in order
        mean, std = torch.from_numpy(self.mean[idx]), torch.from_numpy(self.std[idx])   # [B, 4, h, w]
        x = tk.to_pixels(self.imgs[idx])                                   # [B, 3, H, W]
        if n_ind:
            pick = torch.randint(0, len(individuals[0]), (n_ind,), generator=g)
            mean, std = torch.cat([mean, individuals[0][pick]]), torch.cat([std, individuals[1][pick]])
            x = torch.cat([x, individuals[2][pick]])
        z = mean + std * torch.randn(mean.shape, generator=g)              # posterior samples, as trained
        if args.decoder_latent_noise > 0 and s >= args.decoder_latent_noise_from:   # see --decoder-latent-noise
            a = torch.rand(len(z), 1, 1, 1, generator=g) * args.decoder_latent_noise * self.spread
            z = z + a * torch.randn(z.shape, generator=g)
        return z, x


def decoder_update(args, vae, opt, tuned, z: torch.Tensor, x: torch.Tensor, lr: float) -> tuple[float, dict]:
    """One step: decode z [B, 4, h, w] towards the scenes x [B, 3, H, W]."""
    dev = next(vae.parameters()).device
    z, x = z.to(dev), x.to(dev)
    with autocast(args):
        rec = vae.decode(z).sample.float()                                 # [B, 3, H, W]
    l_rec, l_edge = reconstruction_losses(x, rec, args.decoder_object_weight)
    l_peak = peak_loss(x, rec - x, 32)
    loss = l_rec + args.edge_weight * l_edge + args.vae_peak_weight * l_peak
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(tuned, 1.0)
    opt.step()
    return loss.item(), {"rec": l_rec.item(), "edge": l_edge.item(), "peak": l_peak.item(), "lr": lr}


class DecoderChecks:
    """Round trip of --eval-scenes held-out scenes: PSNR, objects, characters by class and
    attribute, each named individual in 8 renders of it alone; with `noisy`, the characters
    again after latent noise 0.2 of the spread."""

    def __init__(self, args, noisy: bool):
        self.scenes = list(world.dataset("heldout", args.eval_scenes, size=IMAGE_SIZE, seed=args.world_seed))
        self.images = np.stack([e.image for e in self.scenes])             # [N, H, W, 3]
        self.noisy = noisy

    @torch.no_grad()
    def __call__(self, vae) -> dict:
        from toyworld import vae_check
        was_training = vae.training
        vae.eval()
        ev, ev_images = self.scenes, self.images
        rec = vae_check.round_trip(vae, ev_images)
        mse = float(((rec.astype(np.float64) - ev_images) ** 2).mean() / 255 ** 2)
        frac = float(np.mean([detect.recognised_fraction(e.objects, im) for e, im in zip(ev, rec)]))
        chars = vae_check.characters(vae, ev, rec, per_individual=8)
        out = dict(heldout_psnr=10 * np.log10(1 / max(mse, 1e-12)), heldout_recognised=frac,
                   characters_class=chars["characters_class"], characters_attribute=chars["characters_attribute"],
                   **{f"{k}_found": v["found"] for k, v in chars["individual_found"].items()},
                   individual_renders=8, n=len(ev))
        if self.noisy:
            noisy = vae_check.characters(vae, ev, vae_check.round_trip(vae, ev_images, noise=0.2), per_individual=0)
            out.update(noisy_class=noisy["characters_class"], noisy_attribute=noisy["characters_attribute"])
        vae.train(was_training)
        return out


@torch.no_grad()
def individual_latents(args, vae, dev) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(posterior mean, std [N, 4, h, w], pixels [N, 3, H, W]) of textual inversion's renders of
    the --decoder-individuals (--ti-images each, seed --world-seed), by the VAE's own encoder."""
    names = args.decoder_individuals or list(world.NAMED)
    unknown = sorted(set(names) - set(world.NAMED))
    if unknown:
        raise SystemExit(f"[decoder] --decoder-individuals: no named individual {', '.join(unknown)} "
                         f"(expected some of {', '.join(world.NAMED)})")
    shots = [x.image for name in names for x in world.individual_images(
        name, args.ti_images, size=IMAGE_SIZE, seed=args.world_seed)]
    x = tk.to_pixels(np.stack(shots))                                    # [N, 3, H, W]
    post = vae.encode(x.to(dev)).latent_dist
    return post.mean.cpu(), post.std.cpu(), x
