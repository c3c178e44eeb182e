"""The unet stage: a UNet2DConditionModel trained on the cached latents, conditioned on the text
encoder (frozen, or trained with it), with the recipe changes the options switch on mid-run; its
parts are in unet_parts.py."""

from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[1]
if str(TOOLS) not in sys.path:   # also when imported from Tools/toyworld itself (`import train`)
    sys.path.insert(0, str(TOOLS))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from toyworld import grounding as gr  # noqa: E402
from toyworld import trainkit as tk  # noqa: E402
from toyworld.seedweights import seed_from_weights, seed_step  # noqa: E402
from toyworld.stagekit import (SD15_SCHEDULER, autocast, clip_text_encoder, common_config, contact_sheet,  # noqa: E402
                               device, load_tokenizer, load_vae, log, make_pipeline, open_stage,
                               require_done, stage_steps, tokenize, train_loop, unet_kwargs)
from toyworld.unet_parts import (focus_batch_order, ground_weights, grounding_data, grow_unet,  # noqa: E402
                                 heldout_eval, new_unet, object_weighted_mean, place_caption_ids,
                                 pyramid_noise, snr_weight, unet_deep_at, unet_lr, unet_optimizer,
                                 unet_wide_at, widen_unet)


# ============================================================================================
# stage: unet
# ============================================================================================
def stage_unet(args) -> bool:
    from diffusers import DDPMScheduler
    work, dev = Path(args.work), device(args)
    steps = stage_steps(args, "unet")
    clip_done, lat_done = require_done(work, "clip"), require_done(work, "latents")
    te = clip_text_encoder(work, dev)
    cross = te.config.hidden_size
    cfg = common_config(args, "unet", batch=args.unet_batch, lr=args.unet_lr, warmup=args.unet_warmup,
                        caption_dropout=args.caption_dropout, ema=args.ema, min_snr_gamma=args.min_snr,
                        offset_noise=args.unet_offset_noise, offset_noise_from=args.unet_offset_noise_from,
                        text_lr_ratio=args.unet_text_lr_ratio, text_from=args.unet_text_from,
                        pyramid_noise=args.unet_pyramid_noise, pyramid_from=args.unet_pyramid_from,
                        place_captions=args.unet_place_captions, place_rate=args.unet_place_rate,
                        place_from=args.unet_place_from,
                        snr_floor=args.unet_snr_floor, snr_floor_from=args.unet_snr_floor_from,
                        deep_attention_from=args.unet_deep_attention_from,
                        widen=args.unet_widen, widen_from=args.unet_widen_from,
                        ground_weight=args.unet_ground_weight, ground_pixel_weight=args.unet_ground_pixel_weight,
                        ground_from=args.unet_ground_from,
                        repeat=args.unet_repeat, repeat_from=args.unet_repeat_from,
                        object_weight=args.unet_object_weight, object_weight_from=args.unet_object_weight_from,
                        cosine_steps=args.unet_cosine_steps,
                        restart_from=args.unet_restart_from, restart_lr=args.unet_restart_lr,
                        model=unet_kwargs(args, cross), scheduler=SD15_SCHEDULER,
                        sample=dict(every=args.sample_every, captions=args.sample_captions,
                                    sampler=args.sampler, steps=args.sample_steps, guidance=args.guidance))
    run = open_stage(args, "unet", steps, cfg, {"clip": clip_done["digest"], "latents": lat_done["digest"]})
    if run is None:
        return True
    d = work / "latents"
    lat_mean = torch.from_numpy(np.load(d / "mean.npy"))
    lat_std = torch.from_numpy(np.load(d / "std.npy"))
    ids = torch.from_numpy(np.load(d / "ids.npy").astype(np.int64))
    sf = float(lat_done["scaling_factor"])
    tok = load_tokenizer()
    place_ids = place_caption_ids(args, d, tok, len(ids)) if args.unet_place_captions > 0 else None  # [K, N, 77]
    empty = tokenize(tok, [""])[0]
    grounding = (grounding_data(args, d, ids, place_ids)       # (masks, bits) or None
                 if any(args.unet_ground_weight) or any(args.unet_ground_pixel_weight) else None)
    if grounding is None and (args.unet_repeat or args.unet_object_weight > 0):
        masks = grounding_data(args, d, ids, place_ids)[0]                  # [N, O, 16, 16]
    else:
        masks = None if grounding is None else grounding[0]
    focus_order = focus_batch_order(args, masks, json.loads((d / "captions.json").read_text())) if args.unet_repeat else None
    sched = DDPMScheduler(**{k: v for k, v in SD15_SCHEDULER.items()
                             if k not in ("skip_prk_steps", "set_alpha_to_one", "steps_offset")})
    ac = sched.alphas_cumprod
    snr_all = ac / (1 - ac)

    torch.manual_seed(tk.derived_seed(args.seed, tk.STAGE_IDS["unet"], 7))
    side = run.dir / "ckpt.json"
    start = (json.loads(side.read_text())["step"] if side.exists()
             else seed_step(Path(args.unet_init)) if args.unet_init else 0)
    deep, wide = unet_deep_at(args, start), unet_wide_at(args, start)
    unet = new_unet(args, cross, deep, dev, wide)
    # The text encoder learns with the UNet from --unet-text-from on (at a fraction of its rate):
    # the CLIP stage's contrastive loss left "left"/"right" and "circle"/"square" almost the same
    # vectors (relative difference 0.1-0.2 against 1.1 for a colour), so no caption could place
    # or shape an object. Its token table (49 408 x width, as large as the whole UNet) stays
    # frozen: its dense gradient and Adam update made a step 33% slower (0.30 -> 0.40 s); the
    # words already differ there, the layers above learn to keep them apart.
    train_text = args.unet_text_lr_ratio > 0
    token_table = te.get_input_embeddings().weight
    opt = unet_optimizer(args, unet, te, token_table, train_text)
    ema = tk.EMA(unet, args.ema)
    objects = {"model": unet, "opt": opt, "ema": ema}
    if train_text:
        objects.update(text_encoder=te, ema_text=tk.EMA(te, args.ema))
    step = run.resume(objects)
    if step == 0 and args.unet_init:
        # The seed holds the EMA weights: both the model and its average go on from them.
        step = seed_from_weights(unet, Path(args.unet_init), run, te)
        ema = tk.EMA(unet, args.ema)
        objects["ema"] = ema
        if train_text:
            objects["ema_text"] = tk.EMA(te, args.ema)
    ema_text = objects.get("ema_text")
    capture = gr.AttentionCapture(unet) if grounding is not None else None
    order = tk.BatchOrder(len(ids), args.unet_batch, args.seed, "unet")
    log(f"[unet] {sum(p.numel() for p in unet.parameters()) / 1e6:.2f} M parameters, "
        f"{len(ids)} latents, scaling_factor {sf:.5f}")

    vae = None
    ema_unet = new_unet(args, cross, deep, dev, wide).eval()
    ema_te = copy.deepcopy(te).eval().requires_grad_(False) if train_text else te

    def evaluate(at):
        nonlocal vae
        if vae is None:
            vae = load_vae(work, dev)
        ema.copy_to(ema_unet)
        if train_text:
            ema_text.copy_to(ema_te)
        pipe = make_pipeline(vae, ema_te, tok, ema_unet, args.sampler)
        t0 = time.time()
        frac, frac_pos, images, caps, _ = heldout_eval(pipe, args.sample_captions, 5000, args.sample_steps,
                                                       args.guidance, args.world_seed)
        contact_sheet(images, run.dir / "samples" / f"step{at:06d}.png")
        run.add_eval(at, recognised=frac, recognised_position=frac_pos, n=len(caps),
                     sample_s=round(time.time() - t0, 1))
        return frac, frac_pos

    def body(s):
        lr = unet_lr(args, opt, s, steps)
        g = tk.step_generator(args.seed, "unet", s)
        focus = focus_order is not None and s >= args.unet_repeat_from   # see --unet-repeat
        idx = torch.from_numpy(focus_order(s - args.unet_repeat_from) if focus else order(s))
        b = len(idx)
        z = (lat_mean[idx] + lat_std[idx] * torch.randn(lat_mean[idx].shape, generator=g)) * sf
        noise = torch.randn(z.shape, generator=g)
        if args.unet_offset_noise > 0 and s >= args.unet_offset_noise_from:  # see --unet-offset-noise
            noise = noise + args.unet_offset_noise * torch.randn(b, z.shape[1], 1, 1, generator=g)
        if args.unet_pyramid_noise > 0 and s >= args.unet_pyramid_from:   # see --unet-pyramid-noise
            noise = pyramid_noise(noise, args.unet_pyramid_noise, g)
        t = torch.randint(0, sched.config.num_train_timesteps, (b,), generator=g)
        drop = torch.rand(b, generator=g) < args.caption_dropout
        ids_b = ids[idx].clone()                                             # [B, 77]
        v = torch.zeros(b, dtype=torch.long)   # which caption: 0 its own, k the k-th saying where
        if place_ids is not None and s >= args.unet_place_from:
            # each sample: its own caption or one of the K that say where things are
            v = torch.randint(0, len(place_ids) + 1, (b,), generator=g)
            alt = v > 0
            ids_b[alt] = place_ids[v[alt] - 1, idx[alt]]
        ids_b[drop] = empty
        weights = ground_weights(args, s) if capture is not None else None  # (token, pixel) or None
        ground = weights is not None
        text_learns = train_text and s >= args.unet_text_from
        te.requires_grad_(text_learns)
        token_table.requires_grad_(False)
        with torch.set_grad_enabled(text_learns):
            cond = te(ids_b.to(dev)).last_hidden_state   # [B, 77, cross]
        noisy = sched.add_noise(z, noise, t)
        if ground:
            capture.active = True
        with autocast(args):
            pred = unet(noisy.to(dev), t.to(dev), encoder_hidden_states=cond).sample
        if args.unet_object_weight > 0 and s >= args.unet_object_weight_from:   # see --unet-object-weight
            err = ((pred.float() - noise.to(dev)) ** 2).mean(dim=1)           # [B, h, w]
            mse = object_weighted_mean(err, masks[idx].to(dev), args.unet_object_weight)
        else:
            mse = ((pred.float() - noise.to(dev)) ** 2).mean(dim=(1, 2, 3))
        if args.min_snr > 0:
            floor = args.unet_snr_floor if s >= args.unet_snr_floor_from else 0.0
            mse = mse * snr_weight(snr_all[t].to(dev), args.min_snr, floor)
        loss = mse.mean()
        extra = {"lr": lr}
        if ground:
            capture.active = False
            bits = grounding[1][idx, v]                                      # [B, 77]
            bits[drop] = 0
            token_loss, pixel_loss = gr.grounding_losses(capture.take(), grounding[0][idx].to(dev), bits.to(dev))
            loss = loss + weights[0] * token_loss + weights[1] * pixel_loss
            extra.update(ground_token=round(token_loss.item(), 4), ground_pixel=round(pixel_loss.item(), 4))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        if text_learns:
            torch.nn.utils.clip_grad_norm_(te.parameters(), 1.0)
        opt.step()
        ema.update(unet, s)
        if train_text:
            ema_text.update(te, s)
        return loss.item(), extra

    def train_then_change(at: int, change) -> bool:
        """Trains up to step `at`; there (where steps remain) the UNet, its EMA and optimizer
        become change()'s. False where the stage stopped first (time limit)."""
        nonlocal step, unet, ema, opt, capture, ema_unet
        step = train_loop(run, objects, step, body, evaluate, args.sample_every, until=at)
        if step < min(at, steps):
            return False
        if step < steps:
            unet, ema, opt = change()
            unet.train()
            capture = gr.AttentionCapture(unet) if grounding is not None else None
            ema_unet = new_unet(args, cross, unet_deep_at(args, step + 1), dev, unet_wide_at(args, step + 1)).eval()
            objects.update(model=unet, ema=ema, opt=opt)
        return True

    unet.train()
    if args.unet_deep_attention_from and not deep and not train_then_change(   # see --unet-deep-attention-from
            args.unet_deep_attention_from,
            lambda: grow_unet(args, unet, ema, opt, te, token_table, train_text, cross, dev)):
        return False
    if args.unet_widen and args.unet_widen_from and not wide and not train_then_change(   # see --unet-widen
            args.unet_widen_from, lambda: widen_unet(args, unet, ema, te, token_table, train_text, cross, dev)):
        return False
    step = train_loop(run, objects, step, body, evaluate, args.sample_every)
    if step < steps:
        return False
    frac, frac_pos = evaluate(step)
    final = run.dir / "final"
    ema.copy_to(ema_unet).save_pretrained(str(final))
    files = [final / "diffusion_pytorch_model.safetensors"]
    if train_text:   # load_text_encoder finds it there
        final_te = run.dir / "final-text-encoder"
        ema_te.save_pretrained(str(final_te))
        files.append(final_te / "model.safetensors")
    return run.finish(step, objects, digest=tk.file_digest(files),
                      recognised=frac, recognised_position=frac_pos, weights="ema")
