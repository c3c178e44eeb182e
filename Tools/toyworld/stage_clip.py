"""The data stage (the train scenes rendered once into the work folder's cache) and the clip stage
(a small CLIPModel trained contrastively on the scenes' captions, with class-word captions of the
named individuals: clip_extras)."""

from __future__ import annotations

import sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[1]
if str(TOOLS) not in sys.path:   # also when imported from Tools/toyworld itself (`import train`)
    sys.path.insert(0, str(TOOLS))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from toyworld import world  # noqa: E402
from toyworld import trainkit as tk  # noqa: E402
from toyworld.seedweights import seed_from_weights  # noqa: E402
from toyworld.stagekit import (IMAGE_SIZE, clip_config, common_config, data_key, device, load_tokenizer,  # noqa: E402
                               log, open_stage, stage_steps, tokenize, train_loop, train_scenes)


# ============================================================================================
# stage: data
# ============================================================================================
def stage_data(args) -> bool:
    imgs, caps = train_scenes(args)
    log(f"[data] {len(caps)} train scenes, {len(set(caps))} distinct captions")
    return True


# ============================================================================================
# stage: clip
# ============================================================================================
def clip_extras(n: int, world_seed: int = 0):
    """Class-word captions of the named individuals and of the alex+cora pair (as the world's
    character captions: 'a photo of a person on grass'); the text tower never sees the names."""
    ims, caps = [], []
    if n <= 0:
        return np.zeros((0, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8), []
    for name in ("alex", "cora", "koko"):
        for s in world.individual_images(name, n, size=IMAGE_SIZE, seed=world_seed):
            ims.append(s.image)
            caps.append(s.caption)
    for s in world.pair_scenes("alex", "cora", max(1, n // 2), size=IMAGE_SIZE, seed=world_seed):
        ims.append(s.image)
        caps.append(s.caption)
    return np.stack(ims), caps


def stage_clip(args) -> bool:
    from transformers import CLIPModel
    work, dev = Path(args.work), device(args)
    steps = stage_steps(args, "clip")
    cfg = common_config(args, "clip", batch=args.clip_batch, lr=args.clip_lr, warmup=args.clip_warmup,
                        model=clip_config(args).to_dict(), scenes=args.scenes, extra_per_name=args.clip_extra)
    run = open_stage(args, "clip", steps, cfg, {"data": data_key(args)})
    if run is None:
        return True
    imgs, caps = train_scenes(args)
    ex_imgs, ex_caps = clip_extras(args.clip_extra, args.world_seed)
    all_caps = list(caps) + ex_caps
    tok = load_tokenizer()
    ids_all = tokenize(tok, all_caps)
    n_train = len(caps)

    torch.manual_seed(tk.derived_seed(args.seed, tk.STAGE_IDS["clip"], 7))
    model = CLIPModel(clip_config(args)).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=args.clip_lr, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.1)
    objects = {"model": model, "opt": opt}
    step = run.resume(objects)
    if step == 0 and args.clip_init:
        step = seed_from_weights(model, Path(args.clip_init), run)
    order = tk.BatchOrder(len(all_caps), args.clip_batch, args.seed, "clip")

    ev = list(world.dataset("heldout", args.eval_scenes, size=IMAGE_SIZE, seed=args.world_seed))
    ev_px = tk.to_pixels(np.stack([s.image for s in ev]), dev)
    ev_caps = [s.caption for s in ev]
    ev_ids = tokenize(tok, ev_caps).to(dev)

    def images_of(idx):
        return np.stack([imgs[i] if i < n_train else ex_imgs[i - n_train] for i in idx])

    @torch.no_grad()
    def evaluate(at):
        model.eval()
        out = model(input_ids=ev_ids, pixel_values=ev_px)
        li = out.logits_per_image
        i2t = np.mean([ev_caps[j] == ev_caps[i] for i, j in enumerate(li.argmax(1).tolist())])
        t2i = np.mean([ev_caps[j] == ev_caps[i] for i, j in enumerate(li.t().argmax(1).tolist())])
        model.train()
        run.add_eval(at, heldout_i2t=float(i2t), heldout_t2i=float(t2i), n=len(ev_caps),
                     chance=1.0 / len(ev_caps))
        return float(i2t), float(t2i)

    def body(s):
        lr = tk.set_lr(opt, s, args.clip_lr, args.clip_warmup, steps)
        idx = order(s)
        px = tk.to_pixels(images_of(idx), dev)
        ids = ids_all[idx]
        # Causal attention: nothing after the first <|endoftext|> reaches the pooled (first-eos)
        # output, so cutting the padding changes no result and saves ~2/3 of the text tower's work.
        cut = int(((ids != tok.eos_token_id).sum(1) + 1).max())
        out = model(input_ids=ids[:, :cut].to(dev), pixel_values=px, return_loss=True)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return out.loss.item(), {"lr": lr, "logit_scale": float(model.logit_scale.detach().exp())}

    model.train()
    step = train_loop(run, objects, step, body, evaluate, args.eval_every)
    if step < steps:
        return False
    i2t, t2i = evaluate(step)
    final = run.dir / "final"
    model.save_pretrained(str(final))
    return run.finish(step, objects, digest=tk.file_digest([final / "model.safetensors"]),
                      heldout_i2t=i2t, heldout_t2i=t2i)
