"""The ti stage: textual inversion (diffusers' recipe: one new token from the class word, only its
embedding row trained) for each of CONCEPTS, saved as A1111 .pt embeddings."""

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
from toyworld.stagekit import (IMAGE_SIZE, SD15_SCHEDULER, common_config, contact_sheet, device,  # noqa: E402
                               generate, load_text_encoder, load_tokenizer, load_unet, load_vae, log,
                               make_pipeline, require_done, stage_steps, tokenize, train_loop)

# name -> (class word the token starts from, individuals it shows)
CONCEPTS = {"alex": ("person", ("alex",)), "cora": ("person", ("cora",)),
            "koko": ("cat", ("koko",)), "alexcora": ("people", ("alex", "cora"))}


# ============================================================================================
# stage: ti
# ============================================================================================
def placeholder_tokens(name: str, n_vectors: int) -> list[str]:
    return [f"<{name}>"] + [f"<{name}>_{i}" for i in range(1, n_vectors)]


class InjectedEmbedding:
    """Replaces the input embeddings of added tokens (ids >= base) with trainable vectors: only
    the new tokens' embedding rows are trained (diffusers' recipe), everything else is frozen."""

    def __init__(self, text_encoder, base: int, vectors: torch.nn.Parameter):
        self.base, self.vectors = base, vectors
        self.handle = text_encoder.get_input_embeddings().register_forward_hook(self)

    def __call__(self, module, inputs, output):
        ids = inputs[0]
        m = ids >= self.base
        if not bool(m.any()):
            return output
        output = output.clone()
        output[m] = self.vectors[ids[m] - self.base].to(output.dtype)
        return output


def ti_data(name: str, n: int, world_seed: int):
    word, who = CONCEPTS[name]
    if len(who) == 1:
        scenes = world.individual_images(who[0], n, size=IMAGE_SIZE, seed=world_seed)
        key = "{%s}" % who[0]
    else:
        scenes = world.pair_scenes(who[0], who[1], n, size=IMAGE_SIZE, seed=world_seed)
        key = "{%s} and {%s}" % who
    return scenes, key, word


def stage_ti(args) -> bool:
    work, dev = Path(args.work), device(args)
    names = [x for x in args.ti_concepts.split(",") if x]
    ok = True
    for name in names:
        if name not in CONCEPTS:
            raise SystemExit(f"unknown concept {name!r}; known: {', '.join(CONCEPTS)}")
        ok = ti_one(args, work, dev, name, list(CONCEPTS).index(name)) and ok
        if not ok:
            return False
    return ok


def ti_one(args, work: Path, dev, name: str, sub: int) -> bool:
    steps = stage_steps(args, "ti")
    up = {"unet": require_done(work, "unet")["digest"], "clip": require_done(work, "clip")["digest"],
          "vae": require_done(work, "vae")["digest"]}
    word, who = CONCEPTS[name]
    cfg = common_config(args, "ti", concept=name, init_word=word, shows=list(who), images=args.ti_images,
                        batch=args.ti_batch, lr=args.ti_lr, vectors=args.ti_vectors)
    cfg["steps"] = steps
    run = tk.StageRun(work, f"ti/{name}", steps, ckpt_every=args.ckpt_every, max_minutes=args.max_minutes,
                      config=cfg, upstream=up, log=log, restart="ti" in args.restart or name in args.restart)
    out_pt = work / "ti" / f"{name}.pt"
    if run.is_done() and out_pt.exists():
        log(f"[ti/{name}] already done")
        return True
    scenes, key, word = ti_data(name, args.ti_images, args.world_seed)
    ph = placeholder_tokens(name, args.ti_vectors)
    texts = []
    for s in scenes:
        t = s.template.replace(key, " ".join(ph))
        assert "{" not in t, t
        texts.append(t)
    tok = load_tokenizer(ph)
    base = 49408
    ph_ids = tok.convert_tokens_to_ids(ph)
    assert ph_ids == list(range(base, base + len(ph))), ph_ids
    init_ids = tok(word, add_special_tokens=False).input_ids
    assert len(init_ids) == 1, f"class word {word!r} is not one token: {init_ids}"
    ids = tokenize(tok, texts)

    te = load_text_encoder(work, dev)
    te.resize_token_embeddings(len(tok), mean_resizing=False)
    te.requires_grad_(False)
    init = te.get_input_embeddings().weight[init_ids[0]].detach().clone()
    vec = torch.nn.Parameter(init.repeat(len(ph), 1).to(dev))
    hook = InjectedEmbedding(te, base, vec)
    unet = load_unet(work, dev)
    vae = load_vae(work, dev)
    sf = float(vae.config.scaling_factor)
    with torch.no_grad():
        post = vae.encode(tk.to_pixels(np.stack([s.image for s in scenes]), dev)).latent_dist
        lat_mean, lat_std = post.mean.cpu(), post.std.cpu()
    from diffusers import DDPMScheduler
    sched = DDPMScheduler(**{k: v for k, v in SD15_SCHEDULER.items()
                             if k not in ("skip_prk_steps", "set_alpha_to_one", "steps_offset")})

    class VecState:
        def state_dict(self):
            return {"vectors": vec.detach().cpu().clone()}

        def load_state_dict(self, sd):
            with torch.no_grad():
                vec.copy_(sd["vectors"].to(dev))

    opt = torch.optim.AdamW([vec], lr=args.ti_lr, weight_decay=1e-2)
    objects = {"vectors": VecState(), "opt": opt}
    step = run.resume(objects)
    order = tk.BatchOrder(len(scenes), args.ti_batch, args.seed, "ti", sub)
    log(f"[ti/{name}] {len(scenes)} images, tokens {ph} from {word!r}; e.g. {texts[0]!r}")

    def body(s):
        lr = tk.set_lr(opt, s, args.ti_lr, min(50, steps // 10), steps, final_ratio=1.0)
        g = tk.step_generator(args.seed, "ti", s, sub)
        idx = torch.from_numpy(order(s))
        z = (lat_mean[idx] + lat_std[idx] * torch.randn(lat_mean[idx].shape, generator=g)) * sf
        noise = torch.randn(z.shape, generator=g)
        t = torch.randint(0, sched.config.num_train_timesteps, (len(idx),), generator=g)
        cond = te(ids[idx].to(dev)).last_hidden_state
        pred = unet(sched.add_noise(z, noise, t).to(dev), t.to(dev), encoder_hidden_states=cond).sample
        # plain epsilon MSE: the UNet's weighting (min-SNR with its floor) drew one person more
        # often but found alex in 0 of 32 samples against 5 (step 43 535, 1 500 steps each)
        loss = torch.nn.functional.mse_loss(pred.float(), noise.to(dev))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item(), {"lr": lr, "norm": float(vec.detach().norm(dim=1).mean())}

    step = train_loop(run, objects, step, body)
    if step < steps:
        hook.handle.remove()
        return False
    tk.save_a1111_embedding(out_pt, name, vec.detach().cpu(), step)
    # a quick look: does the token draw its individual(s)?
    summary = {}
    if args.ti_eval > 0:
        pipe = make_pipeline(vae, te, tok, unet, args.sampler)
        prompt = f"a photo of {' '.join(ph)}"
        ims = generate(pipe, [prompt] * args.ti_eval, [7000 + i for i in range(args.ti_eval)],
                       args.sample_steps, args.guidance)
        contact_sheet(ims, run.dir / "samples.png", cols=min(8, len(ims)))
        if len(who) == 1:
            found = [any(c.name == who[0] for c in detect.detect_characters(im)) for im in ims]
            summary = {"eval_prompt": prompt, "named_found": float(np.mean(found)), "n": len(ims)}
        else:
            outs = [detect.pair_outcome(im, *who) for im in ims]
            summary = {"eval_prompt": prompt, "n": len(ims), **{o: outs.count(o) for o in
                                                                ("both", "one", "merged", "none")}}
        run.add_eval(step, **summary)
    hook.handle.remove()
    return run.finish(step, objects, file=str(out_pt), init_word=word, tokens=ph,
                      vector_norm=float(vec.detach().norm(dim=1).mean()), **summary)
