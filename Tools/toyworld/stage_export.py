"""The export stage (Assets/demo-model, demo-clip, demo-embeddings and the model card, loaded back
to check), the measure stage (held-out captions and pair outcomes on the exported model) and the
card stage (the model card rewritten from the logs)."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[1]
if str(TOOLS) not in sys.path:   # also when imported from Tools/toyworld itself (`import train`)
    sys.path.insert(0, str(TOOLS))

from toyworld.stagekit import (IMAGE_SIZE, SD15_SCHEDULER, TOKENIZER_DIR, contact_sheet, device,  # noqa: E402
                               generate, load_text_encoder, load_unet, load_vae, log, make_scheduler,
                               require_done, tokenize)

import diffusers  # noqa: E402  (after stagekit, which sets its environment)
import torch  # noqa: E402

from toyworld import detect  # noqa: E402
from toyworld import trainkit as tk  # noqa: E402
from toyworld.unet_parts import heldout_eval  # noqa: E402

TOKENIZER_FILES = ("merges.txt", "special_tokens_map.json", "tokenizer_config.json", "vocab.json")
MEASURE_PAIRS = (("alex", "cora", "<alex> and <cora>"), ("alex", "koko", "<alex> and <koko>"),
                 ("alex", "cora", "<alexcora>"))


# ============================================================================================
# stage: export
# ============================================================================================
def write_text_encoder(te, out: Path) -> None:
    """fp16 CLIPTextModel, keys with the `text_model.` prefix of real SD 1.x folders (as
    Tools/reference/make_fixtures.py writes tiny-sd; transformers 5 loads both)."""
    from safetensors import safe_open
    from safetensors.torch import save_file
    te.to(torch.float16).save_pretrained(str(out))
    path = out / "model.safetensors"
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {"format": "pt"}
        tensors = {(k if k.startswith("text_model.") else "text_model." + k): f.get_tensor(k) for k in f.keys()}
    save_file(tensors, str(path), metadata=meta)


def copy_tokenizer(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for f in TOKENIZER_FILES:
        shutil.copyfile(TOKENIZER_DIR / f, out / f)


def stage_export(args) -> bool:
    from transformers import CLIPModel
    work = Path(args.work)
    assets = Path(args.assets)
    for s in ("clip", "vae", "unet"):
        require_done(work, s)
    model_dir, clip_dir, emb_dir = assets / "demo-model", assets / "demo-clip", assets / "demo-embeddings"
    for d in (model_dir, clip_dir, emb_dir):
        if d.exists():
            shutil.rmtree(d)
    clip = CLIPModel.from_pretrained(str(work / "clip" / "final"), dtype=torch.float32)
    te = load_text_encoder(work, "cpu")
    write_text_encoder(te, model_dir / "text_encoder")
    copy_tokenizer(model_dir / "tokenizer")
    unet = load_unet(work, "cpu")
    unet.to(torch.float16).save_pretrained(str(model_dir / "unet"))
    vae = load_vae(work, "cpu")
    vae.to(torch.float16).save_pretrained(str(model_dir / "vae"))
    (model_dir / "scheduler").mkdir(parents=True, exist_ok=True)
    tk.write_json_atomic(model_dir / "scheduler" / "scheduler_config.json",
                         {"_class_name": "PNDMScheduler", "_diffusers_version": diffusers.__version__,
                          **SD15_SCHEDULER})
    tk.write_json_atomic(model_dir / "model_index.json", {
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": diffusers.__version__,
        "feature_extractor": [None, None], "image_encoder": [None, None], "requires_safety_checker": False,
        "safety_checker": [None, None], "scheduler": ["diffusers", "PNDMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]})
    clip.to(torch.float16).save_pretrained(str(clip_dir))
    copy_tokenizer(clip_dir)
    # How the CLIP saw images in training (tk.to_pixels: x / 127.5 - 1), as transformers'
    # CLIPImageProcessor reads it: mean = std = 0.5 at the tower's size.
    tk.write_json_atomic(clip_dir / "preprocessor_config.json", {
        "crop_size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE}, "do_center_crop": True, "do_convert_rgb": True,
        "do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": [0.5, 0.5, 0.5],
        "image_processor_type": "CLIPImageProcessor", "image_std": [0.5, 0.5, 0.5], "resample": 3,
        "rescale_factor": 1 / 255, "size": {"shortest_edge": IMAGE_SIZE}})
    emb_dir.mkdir(parents=True, exist_ok=True)
    embs = sorted((work / "ti").glob("*.pt")) if (work / "ti").exists() else []
    unet_digest = require_done(work, "unet")["digest"]
    for p in embs:
        d = work / "ti" / p.stem / "done.json"
        up = json.loads(d.read_text()).get("upstream", {}) if d.exists() else {}
        if up.get("unet") != unet_digest:
            raise SystemExit(f"[export] {p} was trained against another UNet than {work / 'unet'} holds; "
                             f"re-run `train.py ti --restart ti`")
    for p in embs:
        shutil.copyfile(p, emb_dir / p.name)
    if not embs:
        log("[export] warning: no textual-inversion embeddings in the work dir (run `train.py ti`)")
    tidy_export(model_dir, clip_dir)
    check_export(args, model_dir, clip_dir, emb_dir)
    from toyworld import modelcard
    card = modelcard.write_card(args, work, assets, SD15_SCHEDULER)
    total = sum(tk.folder_bytes(d) for d in (model_dir, clip_dir, emb_dir))
    log(f"[export] {model_dir} {tk.folder_bytes(model_dir) / 1e6:.2f} MB, {clip_dir} "
        f"{tk.folder_bytes(clip_dir) / 1e6:.2f} MB, {emb_dir} {tk.folder_bytes(emb_dir) / 1e6:.3f} MB; "
        f"total {total / 1e6:.2f} MB ({total / 2 ** 20:.2f} MiB); card {card}")
    if total > args.max_mb * 1e6:
        msg = f"[export] total {total / 1e6:.2f} MB is over the {args.max_mb} MB budget"
        if args.no_size_limit:
            log(msg + " (--no-size-limit: kept)")
        else:
            log(msg + "; shrink --text-hidden / --unet-channels, or pass --no-size-limit")
            return False
    return True


def tidy_export(*dirs: Path) -> None:
    """No local paths in the shipped configs (diffusers records `_name_or_path`), files 0644."""
    for d in dirs:
        for p in d.rglob("*"):
            if p.is_file():
                p.chmod(0o644)
            if p.name == "config.json":
                c = json.loads(p.read_text())
                if "_name_or_path" in c:
                    del c["_name_or_path"]
                    p.write_text(json.dumps(c, indent=2, sort_keys=True) + "\n")


def check_export(args, model_dir: Path, clip_dir: Path, emb_dir: Path) -> None:
    """Load what was written the way users will, generate once, compare configs with tiny-sd."""
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPModel, CLIPTokenizer
    fixture = TOKENIZER_DIR.parent
    for comp, cfg in (("unet", "config.json"), ("vae", "config.json"), ("text_encoder", "config.json"),
                      ("scheduler", "scheduler_config.json"), (".", "model_index.json")):
        ours = set(json.loads((model_dir / comp / cfg).read_text()))
        theirs = set(json.loads((fixture / comp / cfg).read_text()))
        if theirs - ours:
            log(f"[export] note: {comp}/{cfg} lacks keys the tiny-sd fixture has: {sorted(theirs - ours)}")
    ours_files = sorted(str(p.relative_to(model_dir)) for p in model_dir.rglob("*") if p.is_file())
    fix_files = sorted(str(p.relative_to(fixture)) for p in fixture.rglob("*") if p.is_file())
    missing = set(fix_files) - set(ours_files)
    if missing:
        raise SystemExit(f"[export] files the tiny-sd layout has but the export lacks: {sorted(missing)}")
    pipe = StableDiffusionPipeline.from_pretrained(str(model_dir), dtype=torch.float32,
                                                   safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    for p in sorted(emb_dir.glob("*.pt")):
        pipe.load_textual_inversion(str(p), token=f"<{p.stem}>")
    prompt = "a red circle" + (" and <alex>" if (emb_dir / "alex.pt").exists() else "")
    im = generate(pipe, [prompt], [1], 2, args.guidance)[0]
    assert im.shape == (IMAGE_SIZE, IMAGE_SIZE, 3), im.shape
    clip = CLIPModel.from_pretrained(str(clip_dir), dtype=torch.float32).eval()
    tok = CLIPTokenizer.from_pretrained(str(clip_dir))
    with torch.no_grad():
        e = clip.get_text_features(input_ids=tokenize(tok, ["a red circle", "a cat"]))
        e = getattr(e, "pooler_output", e)
    log(f"[export] reloaded: pipeline made a {im.shape[1]}x{im.shape[0]} image from {prompt!r} in 2 steps; "
        f"CLIP text features {tuple(e.shape)}; files {ours_files}")


# ============================================================================================
# stage: measure
# ============================================================================================
def stage_measure(args) -> bool:
    from diffusers import StableDiffusionPipeline
    work, assets = Path(args.work), Path(args.assets)
    model_dir, emb_dir = assets / "demo-model", assets / "demo-embeddings"
    if not (model_dir / "model_index.json").exists():
        raise SystemExit(f"no exported model at {model_dir}; run `train.py export` first")
    dev = device(args)
    pipe = StableDiffusionPipeline.from_pretrained(str(model_dir), dtype=torch.float32,
                                                   safety_checker=None, requires_safety_checker=False)
    pipe.scheduler = make_scheduler(args.sampler)
    pipe.set_progress_bar_config(disable=True)
    pipe.to(dev)
    t0 = time.time()
    n = args.measure_captions
    frac, frac_pos, images, caps, per = heldout_eval(pipe, n, 20000, args.sample_steps, args.guidance,
                                                     args.world_seed)
    out = {"model": str(model_dir), "weights": "fp16 files, run in fp32", "sampler": args.sampler,
           "steps": args.sample_steps, "guidance": args.guidance, "size": IMAGE_SIZE,
           "heldout": {"n": n, "seeds": f"20000..{20000 + n - 1}", "recognised": frac,
                       "recognised_position": frac_pos,
                       "per_caption": [{"caption": c, "recognised": f} for c, f in zip(caps, per)]}}
    sheet = images[:32]
    embs = {p.stem for p in emb_dir.glob("*.pt")}
    for name in sorted(embs):
        pipe.load_textual_inversion(str(emb_dir / f"{name}.pt"), token=f"<{name}>")
    pairs = {}
    for a, b, prompt in MEASURE_PAIRS:
        needed = {x.strip("<>") for x in prompt.replace(" and ", " ").split()}
        if not needed <= embs:
            log(f"[measure] skipping {prompt!r}: embeddings {sorted(needed - embs)} missing")
            continue
        seeds = [30000 + i for i in range(args.measure_seeds)]
        ims = generate(pipe, [prompt] * len(seeds), seeds, args.sample_steps, args.guidance)
        outs = [detect.pair_outcome(im, a, b) for im in ims]
        pairs[prompt] = {"a": a, "b": b, "seeds": len(seeds),
                         **{o: outs.count(o) for o in ("both", "one", "merged", "none")}}
        sheet += ims[:8]
        log(f"[measure] {prompt!r} over {len(seeds)} seeds: {pairs[prompt]}")
    out["pairs"] = pairs
    out["wall_s"] = round(time.time() - t0, 1)
    out["model_digest"] = tk.file_digest([model_dir / "unet" / "diffusion_pytorch_model.safetensors"])
    (work / "measure").mkdir(parents=True, exist_ok=True)
    tk.write_json_atomic(work / "measure" / "measure.json", out)
    contact_sheet(sheet, work / "measure" / "samples.png")
    log(f"[measure] held-out recognised fraction {frac:.3f} (with position {frac_pos:.3f}) over {n} captions; "
        f"{out['wall_s']} s; {work / 'measure' / 'measure.json'}")
    from toyworld import modelcard
    modelcard.write_card(args, work, assets, SD15_SCHEDULER)
    return True


def stage_card(args) -> bool:
    from toyworld import modelcard
    p = modelcard.write_card(args, Path(args.work), Path(args.assets), SD15_SCHEDULER)
    log(f"[card] {p}")
    return True
