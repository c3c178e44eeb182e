#!/usr/bin/env python3
"""Training chain for Pareidolia's miniature SD 1.x demo model, on the Shapes world.

Built the way SD 1.x was, with diffusers/transformers classes:
  data     render the training scenes once (uint8 cache in the work dir)
  clip     a small CLIPModel (text + vision towers, projections; the real CLIP tokenizer and its
           49 408-token vocabulary), trained contrastively on the scenes and their captions
  vae      an AutoencoderKL (downsampling 8, 4 latent channels) on 64x64 crops; scaling_factor
           measured as SD's was, 1 / std of the latents, and written into its config
  latents  the training scenes encoded once by the frozen VAE (plus their caption token ids)
  unet     a UNet2DConditionModel conditioned on the frozen CLIP text tower's last_hidden_state,
           SD 1.5's noise schedule, 10% caption dropout (for classifier-free guidance), EMA;
           samples held-out captions every --sample-every steps and scores them with the
           world's detector
  ti       textual inversion (diffusers' recipe) for alex, cora, koko and the pair token alexcora,
           saved as A1111 .pt embeddings
  export   Assets/demo-model (diffusers folder, fp16), Assets/demo-clip (CLIPModel, fp16),
           Assets/demo-embeddings/*.pt, Assets/demo-model/MODEL_CARD.md; loads it back to check
  measure  held-out recognised fraction and "A and B" pair outcomes on the exported model
  card     rewrite MODEL_CARD.md from the logs (export and measure do this too)
  all      every stage in order

    /work/venv/bin/python Tools/toyworld/train.py all                       # ~2.5 h on 2 cores
    /work/venv/bin/python Tools/toyworld/train.py unet --max-minutes 40     # one stage, cut off cleanly
    /work/venv/bin/python Tools/toyworld/train.py all --preset smoke --work /tmp/tw --assets /tmp/tw/assets

Every stage checkpoints into --work (default /work/toyworld-run) every --ckpt-every steps, on
--max-minutes and on Ctrl-C, and resumes from its checkpoint when re-run; a finished stage is
skipped. All randomness comes from --seed and the step number, so a resumed run draws the same
batches, crops, noise and timesteps as an uninterrupted one.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shutil
import signal
import sys
import time
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

HERE = Path(__file__).resolve().parent
TOOLS = HERE.parent
REPO = TOOLS.parent
if str(TOOLS) not in sys.path:
    sys.path.insert(0, str(TOOLS))

import diffusers  # noqa: E402
import transformers  # noqa: E402

diffusers.utils.logging.disable_progress_bar()
diffusers.utils.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()
transformers.utils.logging.set_verbosity_error()

import numpy as np  # noqa: E402
import torch  # noqa: E402

from toyworld import detect, world  # noqa: E402
from toyworld import grounding as gr  # noqa: E402
from toyworld import trainkit as tk  # noqa: E402

TOKENIZER_DIR = REPO / "Tests" / "Fixtures" / "tiny-sd" / "tokenizer"
TOKENIZER_FILES = ("merges.txt", "special_tokens_map.json", "tokenizer_config.json", "vocab.json")
DEFAULT_WORK = Path("/work/toyworld-run")
IMAGE_SIZE = 128
LATENT_SIZE = IMAGE_SIZE // 8
SEED_TEXT_PREFIX = "text_encoder."   # a UNet seed's text-encoder keys (save_seed_weights)
SEED_TOKEN_TABLE = "embeddings.token_embedding.weight"   # (key suffix) left out of UNet seeds

# SD 1.5's scheduler/scheduler_config.json (runwayml/stable-diffusion-v1-5), plus the two keys
# newer diffusers write (prediction_type, timestep_spacing) at SD 1.5's values.
SD15_SCHEDULER = {
    "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000, "prediction_type": "epsilon", "set_alpha_to_one": False,
    "skip_prk_steps": True, "steps_offset": 1, "clip_sample": False, "timestep_spacing": "leading",
    "trained_betas": None,
}

# name -> (class word the token starts from, individuals it shows)
CONCEPTS = {"alex": ("person", ("alex",)), "cora": ("person", ("cora",)),
            "koko": ("cat", ("koko",)), "alexcora": ("people", ("alex", "cora"))}
MEASURE_PAIRS = (("alex", "cora", "<alex> and <cora>"), ("alex", "koko", "<alex> and <koko>"),
                 ("alex", "cora", "<alexcora>"))

STAGES = ("data", "clip", "vae", "latents", "decoder", "unet", "ti", "export", "measure", "card")

# Step targets: an explicit --<stage>-steps wins, then --steps, then the preset's.
PRESETS = {
    # the 2-core CPU budget (2.5 h): see README.md, "Training the demo model"
    # VAE: whole scenes from the first step (crops left GroupNorm and the mid-block attention on
    # crop statistics), 128 channels at the two low resolutions (+17% time for 3x the parameters,
    # measured), lr 1e-3 (the 5e-4 run had barely begun to restore colours when it stopped).
    # Text width 64 (was 96): the vocabulary table (49 408 rows) is stored twice, in the model's
    # text encoder and in the demo CLIP, and at 96 wide those two copies alone took 19 MB of the
    # 40 MB budget the larger VAE needs room in.
    # Then 2 500 refining steps: colours had shifted by up to 13 levels and a speck sat at one
    # fixed place on grass in 59 of 200 held-out decodes after the first 4 000 (after 1 000
    # refining steps: 1 of 200, 97.4% recognised, shifts 6–9 levels; after 1 500: 2 of 200, one
    # faint pixel each at the top centre, 97.1%, 4–8 levels; after 2 500: 1 of 200, 97.7%). The
    # last 500 steps weigh each scene's 4 worst background pixels at 4 (the peak boost): 98.4%,
    # no speck in 200, shifts 5–8 levels. The run these weights come from stretched its refining
    # schedule three times: to 1 500 steps at step 5 000, to 2 500 at 5 500, to 3 000 at 6 500.
    # UNet: 4 500 steps gave blobs (7% of objects recognised); 12 000 steps 38% (64 held-out
    # captions), but the background followed the mean of the starting noise, not the caption
    # (see --unet-offset-noise), so from step 12 000 on, offset noise 0.15 and a cosine over
    # 30 000 steps (the run these weights come from restarted its schedule there: from 12 000 the
    # learning rate is the 30 000-step cosine's).
    # Then the curve stayed flat from ~22 000 to the end at 30 000 (objects 50-57%) and the
    # captions' places were ignored: "a red circle on the left / right / at the top" drew the same
    # 16 pictures, its place decided by the seed. The frozen CLIP text tower gave "left" and
    # "right" (and "circle" and "square") almost the same vectors, so from 30 000 the text
    # encoder learns with the UNet at half its rate, and low-frequency "pyramid" noise hides the
    # layout that x_T otherwise gives away (see pyramid_noise), and 3 of 4 samples take one of 3
    # more captions of their scene that say where things are (90%; the world's own say it for
    # 31% of objects), on a 50 000-step cosine. After 3 257 steps of these the text encoder kept
    # "left" and "right" 0.35 apart (was 0.22) and "square" and "circle" 0.45 (0.19), yet the
    # first x0 estimate (t = 999) of "a red circle on the left / right / at the top" put the red
    # in the centre all the same: min-SNR weighs an x0 error there by 0.005, so from 33 257 the
    # weight has a floor of 1 at high noise (--unet-snr-floor). Shipped at 43 535: objects 56.7 ->
    # 61.8%, placed as captioned 8.1 -> 21.3%, attributes 37.8 -> 51.1%, DAAM peak 53.2 -> 57.6%
    # (200 held-out captions). One object alone was then placed where its caption said in 35 of
    # 40 ("a red circle on the left / ... / in the centre", 8 seeds each), but two were not:
    # found 85% of lone objects against 59% of objects in pairs (37% where the caption relates
    # them: "left of", "above"), colours and shapes swapped between the two, the second one's
    # place ignored. Who goes where is settled at the 4x4 level, which had one transformer (the
    # mid block's), so from 43 535 the lowest level has transformers too, down and up (+1.04 M
    # parameters, their output zero at first: the grown UNet draws the same pictures; diffusers
    # and Pareidolia agree on it to the pixel), and the learning rate is a second cosine from
    # 1.5e-4 to 51 500 (the first, 50 000 long, was at 8.5e-5 there). The run these weights come
    # from went on to 44 461 first, grew there with a restart at 3e-4, and then trained with
    # torch.compile, whose gradients were wrong (see README.md): its objects fell from 68% to 45%
    # (64 held-out captions), so it went back to the 43 535 seed (seeds/unet.safetensors, fresh optimizer).
    # TI: 200 steps drew alex in 4 of 8 and cora in 1 of 8 samples of "a photo of <name>"; 1 000
    # steps on the same UNet (step 19 147) 5 of 8 and 4 of 8, about 2 minutes a token.
    # At 51 500: 200 held-out captions through Pareidolia found 62.6% of objects, 30.9% of those
    # whose caption says where in that place; on 64 train captions 75.8% / 43.8% against 64.8% /
    # 40.6% on held-out ones, so not overfitting much: under-trained. Blue stars and purple
    # squares (world.HOLDOUT_PAIRS, never in train, a ninth of the held-out objects) were found
    # 5 times in 27 (68% of the other shapes), so from 51 500 the world holds them out no more, and a third cosine from
    # 1.5e-4 runs to 61 000.
    # At 61 000 (objects 73.5%) a word's DAAM map peaked inside its object for 48% of objects and
    # fell as training went on (56% at 51 500): the map of "star" in "a large red star in the
    # centre" was flat, 4-9 of 9 everywhere, lowest on the star; the 16x16 layers attended to the
    # padding tokens, which the causal text encoder fills with the whole caption. Two objects each
    # with its place were drawn as captioned in 2 of 23 captions. So from 61 412 (where the run
    # these weights come from switched it on) TokenCompose's grounding losses teach each word that
    # names an object to attend inside it (grounding.py), and a fourth cosine from 1.5e-4 runs to 69 000.
    # There objects had slid on the 8 held-out captions of the learning curve (0.81 at 64 000, 0.56
    # at 69 000) as the token loss fell: from 69 000 the grounding weights are halved (0.025, 0.005),
    # the check takes 32 captions, and a fifth cosine from 1.5e-4 runs to 80 000. The VAE smudged
    # faces (after its round trip alex was found in 4 renders of 16, a character's captioned
    # attribute in 67%): the decoder stage tunes its decoder alone, 1 000 steps, encoder and latents kept.
    "cpu": dict(steps=dict(clip=800, vae=7000, decoder=1000, unet=80000, ti=1500),
                opts=dict(scenes=10000, vae_full_from=0, vae_full_batch=8, vae_lr=1e-3,
                          vae_channels="32,64,128,128", text_hidden=64, vae_refine_from=4000,
                          vae_object_weight=4.0, vae_peak_weight=1.0, vae_peak_boost_from=6500,
                          unet_offset_noise=0.15, unet_offset_noise_from=12000,
                          unet_text_lr_ratio=0.5, unet_text_from=30000,
                          unet_pyramid_noise=0.6, unet_pyramid_from=30000,
                          unet_place_captions=3, unet_place_from=30000,
                          unet_snr_floor=1.0, unet_snr_floor_from=33257, unet_cosine_steps=50000,
                          unet_deep_attention_from=43535, unet_restart_from=(43535, 51500, 61000, 69000),
                          unet_restart_lr=(1.5e-4, 1.5e-4, 1.5e-4, 1.5e-4), unet_ground_weight=(0.05, 0.025),
                          unet_ground_pixel_weight=(0.01, 0.005), unet_ground_from=(61412, 69000),
                          sample_captions=32, sample_every=1000)),
    # a GPU machine: the same shippable architecture, bigger batches and more steps (untested)
    "gpu": dict(steps=dict(clip=6000, vae=6000, decoder=1000, unet=30000, ti=1000),
                opts=dict(scenes=40000, clip_batch=256, vae_batch=32, unet_batch=128,
                          unet_lr=1e-3, sample_every=2000, device="cuda")),
    # seconds: tiny data and a handful of steps per stage, default architectures
    "smoke": dict(steps=dict(clip=3, vae=3, decoder=2, unet=3, ti=2),
                  opts=dict(scenes=48, eval_scenes=8, ckpt_every=2, sample_every=2,
                            sample_captions=2, sample_steps=2, scale_samples=16, ti_images=4,
                            ti_eval=1, measure_captions=2, measure_seeds=1, clip_extra=2)),
}


# ============================================================================================
# helpers
# ============================================================================================
def log(msg: str) -> None:
    print(msg, flush=True)
    if LOG_FILE is not None:
        with open(LOG_FILE, "a") as f:
            f.write(f"{time.strftime('%H:%M:%S')} {msg}\n")


LOG_FILE: Path | None = None


def ints(s: str) -> tuple[int, ...]:
    return tuple(int(x) for x in s.split(",") if x)


def floats(s: str) -> tuple[float, ...]:
    return tuple(float(x) for x in s.split(",") if x)


def stage_steps(args, stage: str) -> int:
    v = getattr(args, f"{stage}_steps")
    if v is None:
        v = args.steps
    if v is None:
        v = PRESETS[args.preset]["steps"][stage]
    return int(v)


def device(args) -> torch.device:
    return torch.device(args.device)


def cpu_has_bf16() -> bool:
    """AVX512-BF16 or AMX: where bf16 matrix products run at twice fp32's rate."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def use_bf16(args) -> bool:
    if args.bf16 == "auto":
        return args.device == "cpu" and cpu_has_bf16() or args.device.startswith("cuda")
    return args.bf16 == "on"


def autocast(args):
    """Mixed precision for a training step's forward pass (weights, optimizer and loss stay fp32).
    Measured on Zen 4 (2 threads, VAE (32,64,64,64), batch 8 at 128 px): 1.14 -> 0.81 s a step;
    channels-last gave nothing in fp32 and lost a third of the gain in bf16, so it is not used."""
    dev = "cuda" if args.device.startswith("cuda") else "cpu"
    return torch.autocast(dev, dtype=torch.bfloat16, enabled=use_bf16(args))


def plain_attention(unet, dev):
    """On the CPU, diffusers' default processor calls PyTorch's flash-attention kernel, which is
    slow for heads this narrow (8-32 dims): 43% of a UNet training step. The plain processor
    (bmm, softmax) computes the same attention; measured on Zen 4, 2 threads, (32, 64, 128),
    batch 32: 0.43 s a step (flash, bf16 autocast) -> 0.29 s (plain, bf16); fp32 0.40 -> 0.47."""
    if torch.device(dev).type == "cpu":
        from diffusers.models.attention_processor import AttnProcessor
        unet.set_attn_processor(AttnProcessor())
    return unet


def load_tokenizer(extra_tokens=()):
    from transformers import CLIPTokenizer
    tok = CLIPTokenizer.from_pretrained(str(TOKENIZER_DIR))
    if extra_tokens:
        tok.add_tokens(list(extra_tokens))
    return tok


def tokenize(tok, texts) -> torch.Tensor:
    """SD 1.x: [bos] ids [eos], padded to 77 with <|endoftext|>, no attention mask."""
    return tok(list(texts), padding="max_length", max_length=tok.model_max_length, truncation=True,
               return_tensors="pt").input_ids


def require_done(work: Path, stage: str) -> dict:
    d = work / stage / "done.json"
    if not d.exists():
        raise SystemExit(f"stage '{stage}' has not finished in {work}; run `train.py {stage}` first")
    return json.loads(d.read_text())


def common_config(args, stage: str, **kw) -> dict:
    return {"stage": stage, "steps": stage_steps(args, stage) if stage in ("clip", "vae", "decoder", "unet", "ti") else None,
            "seed": args.seed, "device": args.device,
            **({"bf16_autocast": use_bf16(args)} if stage in ("vae", "unet") else {}), **kw}


def norm_groups(channels) -> int:
    for g in (32, 16, 8, 4, 2, 1):
        if all(c % g == 0 for c in channels):
            return g
    return 1


# ============================================================================================
# models
# ============================================================================================
def clip_config(args):
    from transformers import CLIPConfig
    h, vh = args.text_hidden, args.vision_hidden
    text = dict(vocab_size=49408, hidden_size=h, intermediate_size=4 * h, num_hidden_layers=args.text_layers,
                num_attention_heads=args.text_heads, max_position_embeddings=77, hidden_act="quick_gelu",
                layer_norm_eps=1e-5, dropout=0.0, attention_dropout=0.0,
                bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)
    vision = dict(image_size=IMAGE_SIZE, patch_size=args.vision_patch, num_channels=3, hidden_size=vh,
                  intermediate_size=4 * vh, num_hidden_layers=args.vision_layers,
                  num_attention_heads=args.vision_heads, hidden_act="quick_gelu", layer_norm_eps=1e-5,
                  dropout=0.0, attention_dropout=0.0)
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=args.clip_proj)


def vae_kwargs(args) -> dict:
    ch = ints(args.vae_channels)
    return dict(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * len(ch),
                up_block_types=["UpDecoderBlock2D"] * len(ch), block_out_channels=list(ch),
                layers_per_block=args.vae_layers, latent_channels=4, norm_num_groups=norm_groups(ch),
                sample_size=IMAGE_SIZE, scaling_factor=1.0)


def unet_kwargs(args, cross_dim: int, deep: bool = False, wide: bool = False) -> dict:
    """SD 1.x's layout; `deep` (see --unet-deep-attention-from): transformers at the lowest
    level too (SD 1.x has them in every block but the lowest); `wide` (see --unet-widen): each
    level's channels times its --unet-widen factor."""
    ch = ints(args.unet_channels)
    if wide:
        ch = tuple(c * f for c, f in zip(ch, args.unet_widen))
    n = len(ch)
    plain = 0 if deep else 1
    down = ["CrossAttnDownBlock2D"] * (n - plain) + ["DownBlock2D"] * plain
    up = ["UpBlock2D"] * plain + ["CrossAttnUpBlock2D"] * (n - plain)
    # attention_head_dim is the number of heads in SD 1.x configs (a diffusers naming quirk)
    return dict(sample_size=LATENT_SIZE, in_channels=4, out_channels=4, block_out_channels=list(ch),
                layers_per_block=args.unet_layers, down_block_types=down, up_block_types=up,
                mid_block_type="UNetMidBlock2DCrossAttn", cross_attention_dim=cross_dim,
                attention_head_dim=args.unet_heads, norm_num_groups=norm_groups(ch),
                use_linear_projection=False, flip_sin_to_cos=True, freq_shift=0)


def load_clip(work: Path, dev):
    from transformers import CLIPModel
    return CLIPModel.from_pretrained(str(work / "clip" / "final"), dtype=torch.float32).to(dev).eval()


def text_encoder_from_clip(clip):
    """SD's text_encoder: a CLIPTextModel holding the CLIP text tower's weights."""
    from transformers import CLIPTextModel
    te = CLIPTextModel(copy.deepcopy(clip.config.text_config))
    te.load_state_dict(clip.text_model.state_dict())
    return te.eval()


def clip_text_encoder(work: Path, dev):
    """The CLIP stage's text tower as SD's text_encoder (where the UNet stage starts from)."""
    from transformers import CLIPModel
    clip = CLIPModel.from_pretrained(str(work / "clip" / "final"), dtype=torch.float32)
    te = text_encoder_from_clip(clip).to(dev)
    te.requires_grad_(False)
    return te


def load_text_encoder(work: Path, dev):
    """The text encoder the UNet was trained with: the UNet stage's own (--unet-text-lr-ratio)
    where it wrote one, else the CLIP text tower."""
    from transformers import CLIPTextModel
    own = work / "unet" / "final-text-encoder"
    if not (own / "config.json").exists():
        return clip_text_encoder(work, dev)
    te = CLIPTextModel.from_pretrained(str(own), dtype=torch.float32).to(dev).eval()
    te.requires_grad_(False)
    return te


def load_vae(work: Path, dev):
    """The VAE with the decoder stage's decoder where that stage has finished (its encoder is the
    VAE stage's, so every cached latent holds)."""
    from diffusers import AutoencoderKL
    tuned = work / "decoder" / "final"
    src = tuned if (work / "decoder" / "done.json").exists() else work / "vae" / "final"
    vae = AutoencoderKL.from_pretrained(str(src), dtype=torch.float32).to(dev).eval()
    vae.requires_grad_(False)
    return vae


def load_unet(work: Path, dev):
    from diffusers import UNet2DConditionModel
    unet = UNet2DConditionModel.from_pretrained(str(work / "unet" / "final"), dtype=torch.float32)
    unet = plain_attention(unet.to(dev).eval(), dev)
    unet.requires_grad_(False)
    return unet


def make_scheduler(name: str):
    from diffusers import (DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                           EulerDiscreteScheduler, PNDMScheduler)
    cls = {"ddim": DDIMScheduler, "pndm": PNDMScheduler, "euler": EulerDiscreteScheduler,
           "euler_a": EulerAncestralDiscreteScheduler, "dpmpp_2m": DPMSolverMultistepScheduler}[name]
    cfg = dict(SD15_SCHEDULER)
    if name == "dpmpp_2m":
        cfg.update(algorithm_type="dpmsolver++", solver_order=2)
    return cls.from_config(cfg)


def make_pipeline(vae, text_encoder, tokenizer, unet, sampler: str):
    from diffusers import StableDiffusionPipeline
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=make_scheduler(sampler), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@torch.no_grad()
def generate(pipe, prompts, seeds, steps: int, guidance: float, batch: int = 8) -> list[np.ndarray]:
    """uint8 HxWx3 images; each image from its own torch.Generator('cpu').manual_seed(seed)."""
    out = []
    for i in range(0, len(prompts), batch):
        p, s = list(prompts[i:i + batch]), list(seeds[i:i + batch])
        gens = [torch.Generator("cpu").manual_seed(int(x)) for x in s]
        r = pipe(prompt=p, num_inference_steps=steps, guidance_scale=guidance, generator=gens,
                 height=IMAGE_SIZE, width=IMAGE_SIZE, output_type="np")
        out += [np.clip(np.rint(im * 255), 0, 255).astype(np.uint8) for im in r.images]
    return out


def contact_sheet(images, path: Path, cols: int = 8) -> None:
    from PIL import Image
    if not images:
        return
    h, w = images[0].shape[:2]
    rows = (len(images) + cols - 1) // cols
    sheet = np.full((rows * (h + 2), cols * (w + 2), 3), 255, np.uint8)
    for k, im in enumerate(images):
        r, c = divmod(k, cols)
        sheet[r * (h + 2):r * (h + 2) + h, c * (w + 2):c * (w + 2) + w] = im
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(path)


def train_loop(run: tk.StageRun, objects: dict, step: int, body, evaluate=None, eval_every: int = 0,
               until: int | None = None) -> int:
    """Runs body(step) -> (loss, extras) until run.steps (or `until`), with checkpoints, time
    limit, Ctrl-C."""
    end = run.steps if until is None else min(until, run.steps)
    try:
        while step < end:
            loss, extra = body(step)
            step += 1
            run.record(step, loss, **extra)
            if evaluate is not None and eval_every and step % eval_every == 0 and step < run.steps:
                evaluate(step)
            if run.should_stop(step, objects):
                return step
    except KeyboardInterrupt:
        run.interrupted(step, objects)
        raise SystemExit(130)
    return step


# ============================================================================================
# stage: data
# ============================================================================================
def train_scenes(args):
    return tk.scene_cache(Path(args.work), "train", args.scenes, IMAGE_SIZE, args.world_seed,
                          workers=max(1, args.threads), log=log)


def data_key(args) -> str:
    """What the train scenes are, for the stages trained on them (a new world version or scene
    count asks them for --restart)."""
    return f"train-n{args.scenes}-seed{args.world_seed}-w{world.WORLD_VERSION}"


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


def open_stage(args, name: str, steps: int, cfg: dict, upstream: dict, ckpt_every: int | None = None):
    """The stage's run (checkpoints, log, upstream digests), or None when it is already done."""
    run = tk.StageRun(Path(args.work), name, steps, ckpt_every=args.ckpt_every if ckpt_every is None else ckpt_every,
                      max_minutes=args.max_minutes, config=cfg, upstream=upstream, log=log,
                      restart=name in args.restart)
    if run.is_done():
        log(f"[{name}] already done")
        return None
    return run


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


def seed_from_weights(model, path: Path, run: tk.StageRun, text_encoder=None) -> int:
    """Continues a stage from committed weights (a work folder lost with its machine): the model's
    weights and the step they were saved at; the optimizer starts afresh (its moments re-estimate
    within a few dozen steps) and the learning-rate schedule goes on from that step. A UNet seed
    may carry its text encoder (loaded into `text_encoder` when given)."""
    from safetensors.torch import load_file
    state = {k: v.float() for k, v in load_file(str(path)).items()}
    own = {k: v for k, v in state.items() if not k.startswith(SEED_TEXT_PREFIX)}
    model.load_state_dict(own, strict=True)
    if text_encoder is not None and len(own) < len(state):
        n = len(SEED_TEXT_PREFIX)
        text = {k[n:]: v for k, v in state.items() if k.startswith(SEED_TEXT_PREFIX)}
        missing, unexpected = text_encoder.load_state_dict(text, strict=False)
        if unexpected or [k for k in missing if not k.endswith(SEED_TOKEN_TABLE)]:
            raise SystemExit(f"[{run.name}] {path}: text-encoder keys do not fit (missing {missing}, unused {unexpected})")
        log(f"[{run.name}] the text encoder too, from the same file (its token table: the CLIP's)")
    step = seed_step(path)
    run.step0 = step   # the s/step figure counts from here
    prior = seed_history_path(path)
    if prior.exists():   # the sessions and learning curve that led to the seed go on in this run's log
        h = json.loads(prior.read_text())
        for k in ("sessions", "evals", "loss", "seeded_from"):
            run.history[k] = h.get(k, []) + run.history.get(k, [])
        run.history["wall_s"] = float(h.get("wall_s", 0.0))
        run.adopt_history()
    run.history.setdefault("seeded_from", []).append({"file": str(path), "step": step})
    log(f"[{run.name}] continuing from the weights in {path} (step {step}; fresh optimizer)")
    return step


def seed_history_path(seed: Path) -> Path:
    """The history committed beside a seed (unet.safetensors -> unet.history.json)."""
    return seed.with_name(seed.name.split(".")[0] + ".history.json")


def seed_history(history: dict) -> dict:
    """What of a stage's log goes beside its seed, so that a work folder lost with its machine
    does not take the learning curve with it: every session, every evaluation, the loss at
    each evaluation's step (not every 25th), the wall time and earlier seedings."""
    at = {e["step"] for e in history.get("evals", [])}
    loss = history.get("loss", [])
    near = [min(loss, key=lambda r: abs(r["step"] - a)) for a in sorted(at)] if loss else []
    return {"sessions": history.get("sessions", []), "evals": history.get("evals", []),
            "loss": [dict(r) for r in {r["step"]: r for r in near}.values()],
            "wall_s": history.get("wall_s", 0.0), "seeded_from": history.get("seeded_from", [])}


def save_seed_weights(model, path: Path, step: int, text_encoder_state: dict | None = None) -> None:
    """The model's weights in fp16 with the step, for `--STAGE-init` on another machine; a UNet
    trained with its text encoder carries that too (keys under SEED_TEXT_PREFIX)."""
    from safetensors.torch import save_file
    path.parent.mkdir(parents=True, exist_ok=True)
    state = dict(model.state_dict())
    # the token table is the CLIP's (frozen in the UNet stage): 6 MB not stored twice
    state.update({SEED_TEXT_PREFIX + k: v for k, v in (text_encoder_state or {}).items()
                  if not k.endswith(SEED_TOKEN_TABLE)})
    save_file({k: v.detach().to(torch.float16).contiguous() for k, v in state.items()}, str(path),
              metadata={"step": str(step)})


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
CHARACTER_WORDS = re.compile(r"\b(person|people|cat|cats)\b")


def stage_decoder(args) -> bool:
    """The VAE's decoder alone, tuned further on the cached latents (the recipe of SD's ft-MSE
    VAE): the encoder, every latent and the UNet trained on them stay as they are. The VAE drew
    shapes well (98.7% recognised after a round trip) but smudged faces: after the round trip the
    detector found alex in 4 renders of 16 (his top hat lost its brim), and a cat's or hat's
    captioned attribute in 67% of held-out characters. So scenes with people or cats are drawn
    --decoder-character-share of the time, and non-background pixels weigh more. Alex on a plain
    background still lost the top of his face (so his hat no longer rested on it) although the
    latent holds it (100 steps on his renders alone: found in 26 of 26 others, from 0): from
    --decoder-individuals-from, --decoder-individual-share of each batch are renders of the named
    individuals (textual inversion's, seed 0; the checks draw seed 1). The UNet's cats came out as
    blobs (brown with red ears, grey turned lavender) that the round trip of a clean latent never
    showed, and the same blobs came from a clean latent plus white noise of 0.2-0.3 of its spread:
    from --decoder-latent-noise-from, latents get such noise and are to decode to the clean scene
    (the checks add 0.2: noisy_class, noisy_attribute). 1 000 such steps (up to 0.3) kept 19 cats of
    24 under noise 0.3 (was 13), yet the UNet's own held-out characters came out no better (57 of
    69 by class, 27 of 45 with their attribute, before and after): its errors are not white noise.
    Nor did the UNet's own latents help: train scenes' latents redrawn by the UNet (img2img, their
    caption, DDIM 20 g5), each paired with its clean scene, as a share of each batch made every
    figure worse (2 400 pairs at strength 0.3-0.8, half of each batch, 250 steps: the UNet's 69
    held-out people and cats by class 57 -> 49, with their attribute 27 -> 16 of 45, the round
    trip's objects 98.4 -> 91.4%; 1 200 pairs at 0.15-0.45, a quarter, 200 steps: 57 -> 55 and
    27 -> 22, 98.4 -> 95.3%), while the same 200 steps on posterior samples alone left them as they
    were (56 and 28; 98.4%): the UNet redraws what it is given (a hat's colour, a cat's place), and
    a decoder taught to map that back to the scene learns to blur. Decoded from clean latents the
    characters are soft too (a brown cat a blob with ears), so LDM's adversarial term was tried (a
    PatchGAN, hinge loss, weighed by the gradients at the last layer, 0.5): 400 steps from this
    decoder drew halos, specks and rainbow edges, and the UNet's held-out people and cats by class
    57 -> 45 of 69, with their attribute 27 -> 21 (shapes 207 -> 210 of 238)."""
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
        step = seed_from_weights(vae, Path(args.decoder_init), run)
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


def decoder_optimizer(vae, lr: float):
    """The decoder and post_quant_conv trainable, the encoder frozen (every cached latent holds)."""
    vae.requires_grad_(False)
    tuned = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
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


# ============================================================================================
# stage: unet
# ============================================================================================
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


def seed_step(path: Path) -> int:
    """The step a seed file (save_seed_weights) was written at, from its metadata."""
    from safetensors import safe_open
    with safe_open(str(path), "pt") as f:
        return int((f.metadata() or {}).get("step", 0))


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


def repeat_spec(text: str) -> dict[str, int]:
    """--unet-repeat: 'two=2,characters=3' -> {'two': 2, 'characters': 3}."""
    out = {}
    for part in filter(None, text.split(",")):
        key, _, n = part.partition("=")
        if key not in ("two", "characters") or not n.isdigit() or int(n) < 1:
            raise argparse.ArgumentTypeError(f"{part!r}: expected two=N or characters=N (N ≥ 1)")
        out[key] = int(n)
    return out


def focus_batch_order(args, masks, captions: list[str]) -> tk.BatchOrder | None:
    """The batch order from --unet-repeat-from on: an epoch lists each train scene as many times
    as --unet-repeat asks for its kind (the largest that applies: `two`, a scene with two things,
    by the grounding cache's object masks [N, O, 16, 16]; `characters`, one with a person or cat,
    by its caption's class word), others once; None when nothing repeats."""
    if not any(n > 1 for n in args.unet_repeat.values()):
        return None
    things = (masks.flatten(2).sum(-1) > 0).sum(1).numpy()                  # [N]
    characters = np.array([bool(CHARACTER_WORDS.search(c)) for c in captions])
    repeat = np.maximum(np.where(things >= 2, args.unet_repeat.get("two", 1), 1),
                        np.where(characters, args.unet_repeat.get("characters", 1), 1))
    pool = np.repeat(np.arange(len(repeat)), repeat)
    log(f"[unet] from step {args.unet_repeat_from}: scenes repeated {args.unet_repeat}; an epoch draws "
        + ", ".join(f"{k} {int(repeat[m].sum())} of {len(pool)}" for k, m in
                    (("two-thing scenes", things >= 2), ("character scenes", characters))))
    return tk.BatchOrder(pool, args.unet_batch, args.seed, "unet", sub=1)


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
    focus_order = focus_batch_order(args, (grounding or grounding_data(args, d, ids, place_ids))[0],
                                    json.loads((d / "captions.json").read_text())) if args.unet_repeat else None
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


# ============================================================================================
# CLI
# ============================================================================================
RUNNERS = {"data": stage_data, "clip": stage_clip, "vae": stage_vae, "latents": stage_latents,
           "decoder": stage_decoder, "unet": stage_unet, "ti": stage_ti, "export": stage_export, "measure": stage_measure,
           "card": stage_card}


def from_step(group, flag: str, what: str) -> None:
    """--FLAG-from: the training step a recipe change starts at (the cpu preset adds them mid-run)."""
    group.add_argument(f"--{flag}-from", type=int, default=0, help=f"first step of {what}")


def build_parser() -> argparse.ArgumentParser:
    c = argparse.ArgumentParser(add_help=False)
    g = c.add_argument_group("run")
    g.add_argument("--preset", choices=sorted(PRESETS), default="cpu",
                   help="step targets and sizes: cpu (the 2.5 h budget), gpu, smoke")
    g.add_argument("--work", default=str(DEFAULT_WORK), help="checkpoints, caches, logs (outside the repo)")
    g.add_argument("--assets", default=str(REPO / "Assets"), help="where export writes demo-model/ etc.")
    g.add_argument("--device", default="cpu", help="cpu | cuda")
    g.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads, data workers")
    g.add_argument("--bf16", choices=["auto", "on", "off"], default="auto",
                   help="bf16 autocast in vae/unet training steps (auto: CUDA, or a CPU with AVX512-BF16/AMX)")
    g.add_argument("--seed", type=int, default=0, help="training seed (init, batches, noise)")
    g.add_argument("--world-seed", type=int, default=0, help="the Shapes world's seed")
    g.add_argument("--steps", type=int, default=None, help="step target of every training stage")
    g.add_argument("--max-minutes", type=float, default=None, help="per stage: stop cleanly at a checkpoint")
    g.add_argument("--ckpt-every", type=int, default=200, help="checkpoint every K steps")
    g.add_argument("--eval-every", type=int, default=250, help="clip/vae held-out checks every K steps")
    g.add_argument("--restart", action="append", default=[], metavar="STAGE",
                   help="discard STAGE's checkpoint and train it from scratch (repeatable)")
    g.add_argument("--scenes", type=int, default=None, help="training scenes rendered and encoded")
    g.add_argument("--eval-scenes", type=int, default=64, help="held-out scenes for the clip/vae checks")
    g = c.add_argument_group("clip")
    g.add_argument("--clip-steps", type=int)
    g.add_argument("--clip-batch", type=int, default=64)
    g.add_argument("--clip-lr", type=float, default=5e-4)
    g.add_argument("--clip-init", default=None, help="start from these weights (train.py seed --seed-stage clip) when there is no checkpoint")
    g.add_argument("--clip-warmup", type=int, default=100)
    g.add_argument("--clip-extra", type=int, default=50, help="renders per named individual (class words)")
    g.add_argument("--text-hidden", type=int, default=96, help="text width = UNet cross_attention_dim")
    g.add_argument("--text-layers", type=int, default=4)
    g.add_argument("--text-heads", type=int, default=4)
    g.add_argument("--vision-hidden", type=int, default=128)
    g.add_argument("--vision-layers", type=int, default=4)
    g.add_argument("--vision-heads", type=int, default=4)
    g.add_argument("--vision-patch", type=int, default=16)
    g.add_argument("--clip-proj", type=int, default=256)
    g = c.add_argument_group("vae")
    g.add_argument("--vae-steps", type=int)
    g.add_argument("--vae-batch", type=int, default=16)
    g.add_argument("--vae-crop", type=int, default=64)
    g.add_argument("--vae-full-from", type=int, default=None, help="from this step on, whole scenes (not crops)")
    g.add_argument("--vae-full-batch", type=int, default=4, help="batch of whole scenes after --vae-full-from")
    g.add_argument("--vae-lr", type=float, default=5e-4)
    g.add_argument("--vae-warmup", type=int, default=100)
    g.add_argument("--vae-channels", default="32,64,64,64")
    g.add_argument("--vae-init", default=None, help="start from these weights (.safetensors with a 'step' in its metadata) when there is no checkpoint")
    g.add_argument("--seed-stage", choices=["clip", "vae", "decoder", "unet"], default="vae", help="(seed command) whose checkpoint to write")
    g.add_argument("--seed-out", default=None, help="(seed command) where to write the VAE checkpoint's weights, fp16")
    g.add_argument("--vae-layers", type=int, default=1)
    g.add_argument("--kl-weight", type=float, default=1e-6)
    g.add_argument("--vae-object-weight", type=float, default=0.0,
                   help="(refine phase) extra weight of non-background pixels in the reconstruction loss (0: none)")
    g.add_argument("--vae-peak-weight", type=float, default=0.0,
                   help="(refine phase) weight of each scene's 32 worst background pixel errors (0: none); against specks")
    g.add_argument("--vae-peak-boost-from", type=int, default=None,
                   help="from this step on the peak term takes each scene's --vae-peak-boost-k worst pixels at --vae-peak-boost-weight")
    g.add_argument("--vae-peak-boost-weight", type=float, default=4.0)
    g.add_argument("--vae-peak-boost-k", type=int, default=4)
    g.add_argument("--vae-refine-from", type=int, default=None,
                   help="from this step on: lr restarts at --vae-refine-lr, object and peak terms apply")
    g.add_argument("--vae-refine-lr", type=float, default=3e-4)
    g.add_argument("--edge-weight", type=float, default=0.5)
    g.add_argument("--scale-samples", type=int, default=512, help="scenes encoded to measure scaling_factor")
    g = c.add_argument_group("decoder")
    g.add_argument("--decoder-steps", type=int)
    g.add_argument("--decoder-batch", type=int, default=8)
    g.add_argument("--decoder-lr", type=float, default=1e-4)
    g.add_argument("--decoder-warmup", type=int, default=50)
    g.add_argument("--decoder-object-weight", type=float, default=4.0,
                   help="extra weight of non-background pixels (objects, characters) in the reconstruction loss")
    g.add_argument("--decoder-character-share", type=float, default=0.5,
                   help="share of each batch drawn from the train scenes with people or cats")
    g.add_argument("--decoder-individual-share", type=float, default=0.0,
                   help="from --decoder-individuals-from, share of each batch drawn from renders of the named "
                        "individuals (textual inversion's)")
    from_step(g, "decoder-individuals", "the named individuals' renders in the decoder's batches")
    g.add_argument("--decoder-latent-noise", type=float, default=0.0,
                   help="from --decoder-latent-noise-from, each latent gets white noise of a uniform random "
                        "strength up to this (in units of the latents' spread, 1/scaling_factor) and is to "
                        "decode to its clean scene: the UNet's latents are never exact, and 0.3 of noise "
                        "turned half the cats of a round trip into the blobs the UNet draws")
    from_step(g, "decoder-latent-noise", "noisy latents in the decoder's batches")
    g.add_argument("--decoder-individuals", type=lambda v: [n for n in v.split(",") if n], default=None,
                   metavar="NAME,...", help="whose renders --decoder-individual-share draws (default: every named "
                                            "individual)")
    g.add_argument("--decoder-init", default=None,
                   help="start from these weights (train.py seed --seed-stage decoder) when there is no checkpoint")
    g = c.add_argument_group("unet")
    g.add_argument("--unet-steps", type=int)
    g.add_argument("--unet-batch", type=int, default=32)
    g.add_argument("--unet-lr", type=float, default=6e-4)
    g.add_argument("--unet-init", default=None, help="start from these weights (train.py seed --seed-stage unet: the EMA) when there is no checkpoint")
    g.add_argument("--unet-warmup", type=int, default=250)
    g.add_argument("--unet-channels", default="32,64,128", help="e.g. 64,128,256 (over the size budget)")
    g.add_argument("--unet-layers", type=int, default=1)
    g.add_argument("--unet-heads", type=int, default=4)
    g.add_argument("--caption-dropout", type=float, default=0.1)
    g.add_argument("--ema", type=float, default=0.999)
    g.add_argument("--min-snr", type=float, default=5.0, help="min-SNR-gamma loss weight; 0 = plain MSE")
    g.add_argument("--unet-offset-noise", type=float, default=0.0,
                   help="offset noise: std of a per-channel constant added to each training noise. At 16x16 "
                        "latents SD 1.5's schedule leaves the image's mean in x_T (the noise's own mean has std "
                        "1/16): trained without it, the background follows the starting noise's mean, not the "
                        "caption (measured at step 12 000: 'on a plain background' drew grass for 9 of 16 seeds; "
                        "+-0.15 on the noise made it 15/16 and 0/16 whatever the caption)")
    from_step(g, "unet-offset-noise", "offset noise")
    g.add_argument("--unet-text-lr-ratio", type=float, default=0.0,
                   help="train the text encoder with the UNet at this fraction of its learning rate (0: frozen "
                        "CLIP text tower)")
    from_step(g, "unet-text", "the text encoder's learning")
    g.add_argument("--unet-pyramid-noise", type=float, default=0.0,
                   help="add low-frequency noise (grids 8, 4, 2, this strength each, total scaled to unit variance) "
                        "so x_T no longer gives the layout away (see pyramid_noise)")
    from_step(g, "unet-pyramid", "pyramid noise")
    g.add_argument("--unet-place-captions", type=int, default=0,
                   help="K more captions of each train scene that say where its objects are (world.place_captions); "
                        "each sample then uses its own caption or one of these, evenly")
    g.add_argument("--unet-place-rate", type=float, default=0.9, help="how often those captions say where (0.3-0.55 in the world's own)")
    from_step(g, "unet-place", "those captions")
    g.add_argument("--unet-snr-floor", type=float, default=0.0,
                   help="the loss weight in x0 terms is at least this at high noise (min-SNR's min(snr, gamma) "
                        "falls to 0.005 at t=999); 0: plain min-SNR")
    from_step(g, "unet-snr-floor", "that floor")
    g.add_argument("--unet-deep-attention-from", type=int, default=0,
                   help="from this step the lowest level (4x4 latents) gets transformers too, down and up, "
                        "their output zero at first (0: SD 1.x's layout throughout)")
    g.add_argument("--unet-widen", type=ints, default=(),
                   help="whole factors, one per level (e.g. 3,1,1): from --unet-widen-from the UNet's channels "
                        "grow that many times, each channel copied (widen.py), not trained from scratch")
    from_step(g, "unet-widen", "the widened UNet")
    g.add_argument("--unet-restart-from", type=ints, default=(),
                   help="steps (comma-separated) where a new cosine begins (warm-up, then down to the next "
                        "restart or the stage's end), each at its --unet-restart-lr")
    g.add_argument("--unet-restart-lr", type=floats, default=(), help="one learning rate per restart")
    g.add_argument("--unet-cosine-steps", type=int, default=0,
                   help="length of the first cosine (0: the stage's steps); a restart may cut it short")
    g.add_argument("--unet-ground-weight", type=floats, default=(),
                   help="weight of TokenCompose's token loss: each word naming an object attends inside it "
                        "(grounding.py; 0: off); comma-separated, one per --unet-ground-from step")
    g.add_argument("--unet-ground-pixel-weight", type=floats, default=(),
                   help="weight of its pixel loss (each pixel's attention on the word against the mask), "
                        "one per --unet-ground-from step")
    g.add_argument("--unet-ground-from", type=ints, default=(),
                   help="steps (comma-separated) from which the grounding weights of the same position hold")
    g.add_argument("--unet-repeat", type=repeat_spec, default={},
                   help="from --unet-repeat-from, draw some train scenes more often: two=N, a scene with two "
                        "things N times per epoch; characters=N, one with a person or cat (comma-separated; "
                        "the largest that applies; others once)")
    from_step(g, "unet-repeat", "drawing some scenes more often")
    g.add_argument("--sample-every", type=int, default=500)
    g.add_argument("--sample-captions", type=int, default=8)
    g = c.add_argument_group("sampling (unet checks, ti, measure)")
    g.add_argument("--sampler", default="ddim", choices=["ddim", "pndm", "euler", "euler_a", "dpmpp_2m"])
    g.add_argument("--sample-steps", type=int, default=20)
    g.add_argument("--guidance", type=float, default=5.0)
    g = c.add_argument_group("ti")
    g.add_argument("--ti-steps", type=int)
    g.add_argument("--ti-batch", type=int, default=8)
    g.add_argument("--ti-lr", type=float, default=5e-3)
    g.add_argument("--ti-images", type=int, default=50)
    g.add_argument("--ti-vectors", type=int, default=1)
    g.add_argument("--ti-concepts", default="alex,cora,koko,alexcora")
    g.add_argument("--ti-eval", type=int, default=8, help="images sampled per token after training")
    g = c.add_argument_group("measure / export")
    g.add_argument("--measure-captions", type=int, default=64)
    g.add_argument("--measure-seeds", type=int, default=16)
    g.add_argument("--max-mb", type=float, default=40.0)
    g.add_argument("--no-size-limit", action="store_true")

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    for name in (*STAGES, "all"):
        sub.add_parser(name, parents=[c], help=f"run the {name} stage" if name != "all" else "the whole chain")
    sub.add_parser("seed", parents=[c], help="write the --seed-stage checkpoint's weights (fp16, with its step; the UNet's "
                                             "EMA) to --seed-out, for --STAGE-init where the work folder is gone")
    return ap


def parse_args(argv=None):
    args = build_parser().parse_args(argv)
    preset = PRESETS[args.preset]["opts"]
    # preset values apply where the option was left at its default
    defaults = vars(build_parser().parse_args([args.command]))
    for k, v in preset.items():
        if getattr(args, k) == defaults.get(k):
            setattr(args, k, v)
    if args.scenes is None:
        args.scenes = 10000
    return args


def main(argv=None) -> int:
    global LOG_FILE
    args = parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    # SIGTERM (a session's end) and SIGINT (ignored by default in a shell's background jobs) both
    # stop at the next step with a checkpoint, as Ctrl-C does.
    def stop(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # Subnormal floats in the backward pass (tiny posterior stds, vanishing gradients) take the
    # x86 slow path: the VAE step went from ~1 s to 3–9 s a thousand steps in. Flushing them to
    # zero (FTZ/DAZ) brought it back to 1.0 s (measured on the step-1000 checkpoint, 2 threads).
    torch.set_flush_denormal(True)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    LOG_FILE = work / "train.log"
    log(f"== train.py {args.command} (preset {args.preset}, work {work}, device {args.device}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__})")
    if args.command == "seed":
        stage = args.seed_stage
        ck = torch.load(str(work / stage / "ckpt.pt"), map_location="cpu", weights_only=False)
        text_state = None
        if stage in ("vae", "decoder"):   # a decoder's seed is the whole VAE, its encoder unchanged
            from diffusers import AutoencoderKL
            model = AutoencoderKL(**vae_kwargs(args))
            model.load_state_dict(ck["objects"]["model"])
        elif stage == "clip":
            from transformers import CLIPModel
            model = CLIPModel(clip_config(args))
            model.load_state_dict(ck["objects"]["model"])
        else:
            from diffusers import UNet2DConditionModel
            cross = load_text_encoder(work, torch.device("cpu")).config.hidden_size
            at = int(ck["step"])
            model = UNet2DConditionModel(**unet_kwargs(args, cross, unet_deep_at(args, at), unet_wide_at(args, at)))
            model.load_state_dict(ck["objects"]["ema"]["shadow"])
            text_state = ck["objects"].get("ema_text", {}).get("shadow")
        out = Path(args.seed_out or work / f"{stage}-seed.safetensors")
        save_seed_weights(model, out, int(ck["step"]), text_state)
        tk.write_json_atomic(seed_history_path(out), seed_history(ck["history"]))
        log(f"[seed] {out}: the {stage} at step {ck['step']}, fp16, with its history ({seed_history_path(out).name})")
        return 0
    order = [s for s in STAGES if s != "card"] if args.command == "all" else [args.command]
    t0 = time.time()
    for s in order:
        ts = time.time()
        if not RUNNERS[s](args):
            log(f"== stopped in stage '{s}' after {time.time() - t0:.1f} s; re-run to continue")
            return 3
        log(f"== {s}: {time.time() - ts:.1f} s")
    log(f"== done in {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
