"""MODEL_CARD.md for the exported demo model, written from train.py's logs (work dir) and files."""

from __future__ import annotations

import json
import time
from pathlib import Path


def characters_sentence() -> str:
    """The people and cats of the world version in use, and the named individuals' looks."""
    from toyworld import characters as ch
    from toyworld import palette

    def look(c) -> str:
        if c.kind == "person":
            return f"{c.colour} skin, {c.hat_colour} {c.hat}" if c.hat != "none" else f"{c.colour} skin, no hat"
        return f"a {c.colour}{' striped' if c.pattern == 'stripes' else ''} cat with {c.eyes} eyes"

    hats = [h for h in ch.HATS if h != "none"]
    return (f"people ({', '.join(ch.HEAD_SHAPES)} heads; skin {', '.join(palette.SKINS)}; no hat, or a "
            f"{', '.join(hats)} in an object colour; face patterns {', '.join(ch.PERSON_PATTERNS)}; eyes {', '.join(ch.EYES)}) "
            f"and cats (fur {', '.join(palette.FURS)}; {', '.join(ch.CAT_PATTERNS)}); the look-alikes "
            + " and ".join(f"{n} ({look(c)})" for n, c in ch.NAMED.items() if c.kind == "person")
            + " and the cat " + ", ".join(f"{n} ({look(c)})" for n, c in ch.NAMED.items() if c.kind == "cat"))


def _read(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


def _params_in(path: Path) -> int:
    """Parameter count of a safetensors file (from its header)."""
    import struct
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    total = 0
    for k, v in header.items():
        if k == "__metadata__":
            continue
        c = 1
        for d in v["shape"]:
            c *= d
        total += c
    return total


def _dur(s: float | None) -> str:
    if s is None:
        return "–"
    s = float(s)
    return f"{s / 60:.1f} min" if s >= 90 else f"{s:.1f} s"


def _last(rows, key):
    for r in reversed(rows or []):
        if key in r:
            return r[key]
    return None


def _sessions(hist) -> str:
    ss = (hist or {}).get("sessions", [])
    if not ss:
        return "–"
    # a session that trained no step (a stage re-run to write its final weights) says nothing
    kept = [s for s in ss if not s.get("rolled_back") and s["end_step"] > s["start_step"]]
    parts = [f"{s['start_step']}→{s['end_step']} ({_dur(s['wall_s'])}, {s.get('device', 'cpu')}, "
             f"{s['threads']} thr)" for s in kept]
    lost = [s for s in ss if s.get("rolled_back")]
    if lost:   # work thrown away (counted in the wall time, not in the weights)
        parts.append(f"and {len(lost)} sessions rolled back ({_dur(sum(s['wall_s'] for s in lost))}: "
                     f"{lost[0].get('why', 'undone')})")
    return "; ".join(parts) or "–"


def grounding_sentence(unet_cfg: dict) -> str:
    """What a reader of its heat maps must know: where they were taught, not only learned."""
    def listed(v):   # one value (older configs) or one per change
        return list(v) if isinstance(v, (list, tuple)) else [v]
    starts, weights, pixels = (listed(unet_cfg.get(k, 0)) for k in ("ground_from", "ground_weight", "ground_pixel_weight"))
    if not (any(weights) or any(pixels)):
        return ""
    steps = lambda n: f"{n:,}".replace(",", " ")
    spans = [f"token loss {w:g} and pixel loss {p:g} from step {steps(s)}" for s, w, p in zip(starts, weights, pixels)]
    return (f" From UNet step {steps(starts[0])} its cross-attention was also taught where each named object is: "
            f"TokenCompose's token and pixel losses on the world's masks (`grounding.py`; {'; '.join(spans)}), "
            "as Wang et al. (CVPR 2024) fine-tuned SD 1.4 on COCO's. So its heat maps show "
            "grounding it was trained to have, where SD 1.x learned it from scale alone; they are a fair test "
            "of the workbench's instruments, not evidence of how grounding emerges.")


def write_card(args, work: Path, assets: Path, scheduler: dict) -> Path:
    model_dir, clip_dir, emb_dir = assets / "demo-model", assets / "demo-clip", assets / "demo-embeddings"
    out = model_dir / "MODEL_CARD.md"
    stages = ("clip", "vae", "latents", "decoder", "unet")
    st = {s: _read(work / s / "done.json") for s in stages}
    hist = {s: _read(work / s / "log.json") for s in stages}
    names = [x for x in args.ti_concepts.split(",") if x]
    ti = {n: (_read(work / "ti" / n / "done.json"), _read(work / "ti" / n / "log.json")) for n in names}
    meas = _read(work / "measure" / "measure.json")
    unet_file = model_dir / "unet" / "diffusion_pytorch_model.safetensors"
    if meas and unet_file.exists():
        from toyworld.trainkit import file_digest
        if meas.get("model_digest") != file_digest([unet_file]):
            meas = None        # measured on an earlier export
    unet_cfg = (hist.get("unet") or {}).get("config", {})
    text_from = unet_cfg.get("text_from") if unet_cfg.get("text_lr_ratio", 0) > 0 else None
    text_how = ("the CLIP text tower, trained on with the UNet from step "
                + f"{text_from:,}".replace(",", " ")
                + f" at {unet_cfg['text_lr_ratio']:g}× its learning rate (token table frozen)"
                if text_from is not None else "the frozen CLIP text tower")
    L = []
    w = L.append
    w("# Pareidolia demo model — Shapes world, SD 1.x layout")
    w("")
    w(f"Generated by `Tools/toyworld/train.py` on {time.strftime('%Y-%m-%d %H:%M')} from the training logs "
      f"in its work folder. Do not edit by hand: `train.py card` rewrites it.")
    w("")
    w("A miniature Stable Diffusion 1.x trained from scratch, the way SD was built, on Pareidolia's procedural "
      "Shapes world (`Tools/toyworld`: 128×128 scenes of flat shapes, pareidolia people and cats, with "
      "captions). It exists so the workbench has a real, small model whose every concept is known: a CLIP "
      "trained contrastively, an AutoencoderKL with downsampling 8 and 4 latent channels, and a "
      f"UNet2DConditionModel with cross-attention, conditioned on {text_how}, with SD 1.5's "
      "noise schedule and scheduler config. It draws 128×128 images (16×16 latents). It knows nothing "
      "outside the Shapes world."
      + grounding_sentence(unet_cfg))
    w("")
    from toyworld import palette, shapes, world
    w("## The world it was trained on")
    w("")
    w(f"{len(shapes.SHAPES)} shapes ({', '.join(shapes.SHAPES)}), {len(palette.COLOURS)} colours ({', '.join(palette.COLOURS)}), "
      f"{len(palette.SIZES)} sizes ({', '.join(f'{k} {v:.0%}' for k, v in palette.SIZES.items())} of the width, every object at least "
      f"3 latent pixels across), {len(palette.PLACES)} places ({', '.join(palette.PLACES)}), backgrounds {', '.join(palette.BACKGROUNDS)}; "
      f"one or two things a scene; {characters_sentence()}. Narrowed from the first world (8 shapes, 8 colours, 3 sizes, "
      "9 places, 4 backgrounds, up to three things), which a CPU budget taught only as blobs: ring, diamond and cross, "
      "orange and pink (each between two others, and the VAE drifted one into the other), the smallest size, the corners "
      "and the sky and stripes backgrounds were dropped. The held-out split stays held out (`world.py`); "
      + (f"colour-shape pairs never shown in train, a probe of compositional generalisation: "
         f"{', '.join(f'{c} {s}' for c, s in world.HOLDOUT_PAIRS)}." if world.HOLDOUT_PAIRS else
         "blue stars and purple squares, never shown in train up to UNet step 51 500 as a probe of compositional "
         "generalisation, are shown since."))
    w("")
    w(f"World version {world.WORLD_VERSION} (`version.py` says what each version changed and why).")
    w("")
    w("## Files")
    w("")
    w("| path | what | size |")
    w("|---|---|---|")
    rows = [("demo-model/", "diffusers folder (StableDiffusionPipeline), fp16 safetensors", model_dir),
            ("demo-model/text_encoder/", f"CLIPTextModel: {text_how}", model_dir / "text_encoder"),
            ("demo-model/unet/", "UNet2DConditionModel (EMA weights)", model_dir / "unet"),
            ("demo-model/vae/", "AutoencoderKL", model_dir / "vae"),
            ("demo-model/tokenizer/", "the real CLIP BPE tokenizer (49 408 tokens)", model_dir / "tokenizer"),
            ("demo-clip/", "the whole CLIPModel (text + vision towers, projections), fp16", clip_dir),
            ("demo-embeddings/", "A1111 textual-inversion .pt files", emb_dir)]
    from toyworld.trainkit import folder_bytes
    for p, what, d in rows:
        if d.exists():
            w(f"| `{p}` | {what} | {_mb(folder_bytes(d))} |")
    total = sum(folder_bytes(d) for d in (model_dir, clip_dir, emb_dir) if d.exists())
    w(f"| **total** | | **{_mb(total)}** ({total / 2 ** 20:.2f} MiB) |")
    w("")
    w("## Architecture")
    w("")
    cfg = lambda p: _read(p) or {}  # noqa: E731
    te_c, u_c, v_c = cfg(model_dir / "text_encoder" / "config.json"), cfg(model_dir / "unet" / "config.json"), \
        cfg(model_dir / "vae" / "config.json")
    clip_c = cfg(clip_dir / "config.json")

    def params(p):
        return f"{_params_in(p) / 1e6:.2f} M" if p.exists() else "–"
    if te_c:
        w(f"- **Text encoder** (`CLIPTextModel`, {params(model_dir / 'text_encoder' / 'model.safetensors')} "
          f"parameters): hidden {te_c.get('hidden_size')}, {te_c.get('num_hidden_layers')} layers, "
          f"{te_c.get('num_attention_heads')} heads, MLP {te_c.get('intermediate_size')}, "
          f"{te_c.get('hidden_act')}, vocabulary {te_c.get('vocab_size')}, {te_c.get('max_position_embeddings')} "
          f"positions. The UNet reads its `last_hidden_state` (77 × {te_c.get('hidden_size')}), as SD 1.x does.")
    if clip_c:
        vc = clip_c.get("vision_config", {})
        w(f"- **CLIP vision tower** (in `demo-clip/` only): {vc.get('image_size')} px, patch {vc.get('patch_size')}, "
          f"hidden {vc.get('hidden_size')}, {vc.get('num_hidden_layers')} layers; projection dim "
          f"{clip_c.get('projection_dim')}.")
    if v_c:
        w(f"- **VAE** (`AutoencoderKL`, {params(model_dir / 'vae' / 'diffusion_pytorch_model.safetensors')}): "
          f"block_out_channels {v_c.get('block_out_channels')}, {v_c.get('layers_per_block')} layer(s) per "
          f"block, {v_c.get('latent_channels')} latent channels, downsampling "
          f"{2 ** (len(v_c.get('block_out_channels', [0])) - 1)}; **scaling_factor "
          f"{v_c.get('scaling_factor'):.5f}** = 1 / std of posterior samples of training scenes "
          f"(SD 1.x's 0.18215 was measured the same way).")
    if u_c:
        w(f"- **UNet** (`UNet2DConditionModel`, {params(model_dir / 'unet' / 'diffusion_pytorch_model.safetensors')}): "
          f"sample_size {u_c.get('sample_size')}, block_out_channels {u_c.get('block_out_channels')}, "
          f"{u_c.get('layers_per_block')} layer(s) per block, down {u_c.get('down_block_types')}, "
          f"mid {u_c.get('mid_block_type')}, cross_attention_dim {u_c.get('cross_attention_dim')}, "
          f"attention_head_dim {u_c.get('attention_head_dim')} (= heads, SD 1.x's naming).")
    w(f"- **Scheduler**: SD 1.5's `scheduler_config.json` (PNDM; {scheduler['beta_schedule']} β "
      f"{scheduler['beta_start']}–{scheduler['beta_end']}, {scheduler['num_train_timesteps']} steps, "
      f"{scheduler['prediction_type']}, steps_offset {scheduler['steps_offset']}), so every SD 1.x sampler applies.")
    w("")
    w("## Training")
    w("")
    w("Seeded and resumable; `train.py all` reruns the whole chain (see *Retraining*). Wall times are as "
      "logged, summed over sessions.")
    w("")
    w("| stage | steps | batch | lr | final loss | held-out check | wall time | sessions |")
    w("|---|---|---|---|---|---|---|---|")

    def stage_row(name, check):
        d, h = st.get(name), hist.get(name)
        if not h:
            w(f"| {name} | not run | | | | | | |")
            return
        c = h.get("config", {})
        loss = _last(h.get("loss"), "loss") if name != "latents" else None
        w(f"| {name} | {d['step'] if d else 'unfinished'} | {c.get('batch', '–')} | {c.get('lr', '–')} | "
          f"{'–' if loss is None else f'{loss:.4f}'} | {check(d) if d else '–'} | {_dur(h.get('wall_s'))} | "
          f"{_sessions(h)} |")
    stage_row("clip", lambda d: f"retrieval top-1 i→t {d.get('heldout_i2t', 0):.2f}, t→i {d.get('heldout_t2i', 0):.2f}")
    stage_row("vae", lambda d: f"PSNR {d.get('heldout_psnr', 0):.1f} dB, detector on reconstructions "
                               f"{d.get('heldout_recognised', 0):.2f}")
    stage_row("latents", lambda d: f"scaled latent std {d.get('scaled_std', 0):.3f}")
    if hist.get("decoder"):
        last = (hist["decoder"].get("evals") or [{}])[-1]
        stage_row("decoder", lambda d: f"PSNR {last.get('heldout_psnr', 0):.1f} dB, detector on reconstructions "
                                       f"{last.get('heldout_recognised', 0):.2f}, characters' attribute "
                                       f"{last.get('characters_attribute', 0):.2f}, alex/cora/koko found "
                                       f"{last.get('alex_found', 0)}/{last.get('cora_found', 0)}/{last.get('koko_found', 0)} "
                                       f"of {last.get('individual_renders', 8)} renders each")
    stage_row("unet", lambda d: f"recognised {d.get('recognised', 0):.2f} (with position "
                                f"{d.get('recognised_position', 0):.2f})")
    w("")
    for name in ("clip", "vae", "decoder", "unet"):
        h = hist.get(name)
        if h:
            c = {k: v for k, v in h.get("config", {}).items() if k not in ("model", "stage", "scheduler")}
            w(f"- **{name}** options: `{json.dumps(c, sort_keys=True)}`")
    w("")
    h = hist.get("unet")
    if h and h.get("evals"):
        w("UNet progress (EMA weights; held-out captions sampled with "
          f"{h['config'].get('sample', {}).get('sampler')}, {h['config'].get('sample', {}).get('steps')} steps, "
          f"guidance {h['config'].get('sample', {}).get('guidance')}, scored by `detect.recognised_fraction`):")
        w("")
        w("| step | loss | recognised | with position |")
        w("|---|---|---|---|")
        losses = {r["step"]: r["loss"] for r in h.get("loss", [])}
        for e in h["evals"]:
            near = min(losses, key=lambda s: abs(s - e["step"])) if losses else None
            w(f"| {e['step']} | {'–' if near is None else f'{losses[near]:.4f}'} | {e.get('recognised', 0):.3f} | "
              f"{e.get('recognised_position', 0):.3f} |")
        w("")
    w("### Textual inversion")
    w("")
    counts = sorted({(h or {}).get("config", {}).get("vectors", 1) for _, h in ti.values() if h})
    many = " or ".join(map(str, counts)) if counts and counts != [1] else "one"
    w(f"diffusers' recipe: the model frozen, {many} new token{'s' if many != 'one' else ''} per embedding "
      "(vectors), each initialised from the class word, only their embedding rows trained with the plain ε-MSE "
      "loss, on renders of the individual(s) with the world's captions (the class phrase replaced by the tokens). "
      "Saved as A1111 `.pt` files "
      "(`string_to_param['*']`, float32 `[n_vectors, dim]`); the trigger word is the file name.")
    w("")
    w("| embedding | shows | init word | images | steps | final loss | wall time | quick check |")
    w("|---|---|---|---|---|---|---|---|")
    for n in names:
        d, h = ti[n]
        if not h:
            w(f"| `{n}` | | | | not run | | | |")
            continue
        c = h.get("config", {})
        loss = _last(h.get("loss"), "loss")
        qc = "–"
        if d and "named_found" in d:
            qc = f"{d['named_found']:.2f} of {d['n']} samples show {', '.join(c.get('shows', []))}"
        elif d and "both" in d:
            qc = f"both {d['both']}, one {d['one']}, merged {d['merged']}, none {d['none']} of {d['n']}"
        w(f"| `{n}` | {' + '.join(c.get('shows', []))} | {c.get('init_word')} | {c.get('images')} | "
          f"{d['step'] if d else 'unfinished'} | {'–' if loss is None else f'{loss:.4f}'} | "
          f"{_dur(h.get('wall_s'))} | {qc} |")
    w("")
    w("## Quality (Python side)")
    w("")
    if meas:
        hd = meas["heldout"]
        w(f"Measured by `train.py measure` with diffusers on the exported folder ({meas['weights']}), "
          f"{meas['sampler']} {meas['steps']} steps, guidance {meas['guidance']}, {meas['size']} px. The "
          f"project's official figures will come from the Swift engine.")
        w("")
        w(f"- Held-out captions (never seen in training; `world.heldout_captions`): **recognised fraction "
          f"{hd['recognised']:.3f}**, {hd['recognised_position']:.3f} with the position checked, over {hd['n']} "
          f"captions (one seed each).")
        for prompt, r in meas.get("pairs", {}).items():
            w(f"- `{prompt}` over {r['seeds']} seeds (`detect.pair_outcome` for {r['a']} + {r['b']}): "
              f"both {r['both']}, one {r['one']}, merged {r['merged']}, none {r['none']}.")
    else:
        w("Not measured on this export yet (`train.py measure`).")
    w("")
    w("## Retraining")
    w("")
    w("```sh")
    w("bash Tools/toyworld/retrain.sh /work/retrain     # this model's whole path, world by world (about 12 h on 2 cores)")
    w("/work/venv/bin/python Tools/toyworld/train.py all                 # one world's chain from scratch (the cpu preset)")
    w("/work/venv/bin/python Tools/toyworld/train.py unet --max-minutes 30   # one stage; re-run to continue")
    w("/work/venv/bin/python Tools/toyworld/train.py all --preset gpu --work /tmp/run   # a CUDA machine")
    w("```")
    w("")
    w("The model was trained across sessions and world versions; `retrain.sh` runs that path: the cpu preset in "
      "world 2 to UNet step 80 000, then each later world from the weights the last one ended with (`train.py seed`), "
      "its UNet stopped where the next took over (`--stop-at`).")
    w("")
    w("Stages: data, clip, vae, latents, decoder (the VAE's decoder alone tuned further on the cached latents, "
      "as SD's ft-MSE VAE was: the encoder and every latent stay), unet, ti, export, measure. Each checkpoints (model, optimizer, step, "
      "RNG, loss history) into the work folder and resumes from it; batches, crops, noise and timesteps are "
      "drawn from generators keyed by (seed, stage, step), so an interrupted run continues exactly. "
      "Bit-for-bit equality across machines is not promised (thread counts and CPU kernels change float "
      "sums).")
    w("")
    w("## Limitations and licence")
    w("")
    vae_rec = (st.get("vae") or {}).get("heldout_recognised")
    unet_rec = (st.get("unet") or {}).get("recognised")
    if vae_rec is not None and vae_rec < 0.8:
        w(f"- **Undertrained (this CPU run).** The VAE's round trip alone keeps only {vae_rec:.0%} of the held-out "
          "scenes' objects recognisable to the detector: it shifts saturated colours (blue and green towards dark teal, "
          "red and yellow towards orange) and softens edges, so colour recognition fails even for a perfect latent. "
          f"The UNet (held-out recognised {unet_rec or 0:.0%}) puts blobs of roughly the right hue at the captioned "
          "positions but draws no crisp shapes. Both need more steps than a 2-core CPU session gives: the VAE's "
          "whole-scene phase and the UNet were still improving when stopped. `train.py all --preset gpu` on a "
          "GPU machine is the intended fix; the attention maps, embeddings and reports are meaningful already.")
    w("- A toy: 128×128, flat colours, a few shapes and characters; small counts and relations are "
      "the weakest. Captions outside the world's vocabulary mean nothing to it.")
    w("- The weights are trained from random initialisation on procedurally generated images; no external "
      "images or models were used. The tokenizer files are OpenAI CLIP's BPE vocabulary (MIT; see "
      "`Assets/README.md`).")
    w("")
    model_dir.mkdir(parents=True, exist_ok=True)
    # Keep the section Tools/toyworld/measure_pareidolia.py writes (the Swift engine's figures).
    start, end = "<!-- pareidolia-quality -->", "<!-- /pareidolia-quality -->"
    old = out.read_text() if out.exists() else ""
    if start in old and end in old:
        block = old[old.index(start):old.index(end) + len(end)]
        L += ["## Quality, measured with Pareidolia", "", block]   # L ends with a blank line
    out.write_text("\n".join(L) + "\n")
    return out
