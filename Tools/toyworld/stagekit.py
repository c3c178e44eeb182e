"""What the training stages share (the stages are stage_*.py, the command line train.py):

- the log: log() prints and appends to LOG_FILE, the one training log, which train.main sets;
- option helpers (ints, floats, stage_steps), the device and bf16 autocast, plain attention;
- the tokenizer (load_tokenizer, tokenize), require_done and common_config (a stage's config dict);
- the models' configs (clip_config, vae_kwargs, unet_kwargs) and loading a finished stage's models
  (load_clip, clip_text_encoder, load_text_encoder, load_vae, load_unet);
- sampling: make_scheduler, make_pipeline, generate, contact_sheet;
- train_loop, the train scenes (train_scenes, data_key) and open_stage;
- constants: TOKENIZER_DIR, IMAGE_SIZE, LATENT_SIZE, SD15_SCHEDULER, CHARACTER_WORDS.

Importing it first sets the Hugging Face libraries' environment (offline, quiet) before they load.
"""

from __future__ import annotations

import copy
import json
import os
import re
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

from toyworld import world  # noqa: E402
from toyworld import trainkit as tk  # noqa: E402
from toyworld.presets import PRESETS  # noqa: E402

TOKENIZER_DIR = REPO / "Tests" / "Fixtures" / "tiny-sd" / "tokenizer"
IMAGE_SIZE = 128
LATENT_SIZE = IMAGE_SIZE // 8

# SD 1.5's scheduler/scheduler_config.json (runwayml/stable-diffusion-v1-5), plus the two keys
# newer diffusers write (prediction_type, timestep_spacing) at SD 1.5's values.
SD15_SCHEDULER = {
    "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000, "prediction_type": "epsilon", "set_alpha_to_one": False,
    "skip_prk_steps": True, "steps_offset": 1, "clip_sample": False, "timestep_spacing": "leading",
    "trained_betas": None,
}

# a caption that shows people or cats (the decoder's and the UNet's batches draw them more often)
CHARACTER_WORDS = re.compile(r"\b(person|people|cat|cats)\b")
CAT_WORDS = re.compile(r"\b(cat|cats)\b")


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
    """Runs body(step) -> (loss, extras) until run.steps (or `until`, or --stop-at), with
    checkpoints, time limit, Ctrl-C."""
    end = run.steps if until is None else min(until, run.steps)
    if run.stop_at is not None:
        end = min(end, max(step, run.stop_at))
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
    run.stop_here(step, objects)
    return step


# ============================================================================================
# the train scenes, a stage's run
# ============================================================================================
def train_scenes(args):
    return tk.scene_cache(Path(args.work), "train", args.scenes, IMAGE_SIZE, args.world_seed,
                          workers=max(1, args.threads), log=log)


def data_key(args) -> str:
    """What the train scenes are, for the stages trained on them (a new world version or scene
    count asks them for --restart)."""
    return f"train-n{args.scenes}-seed{args.world_seed}-w{world.WORLD_VERSION}"


def open_stage(args, name: str, steps: int, cfg: dict, upstream: dict, ckpt_every: int | None = None):
    """The stage's run (checkpoints, log, upstream digests), or None when it is already done."""
    run = tk.StageRun(Path(args.work), name, steps, ckpt_every=args.ckpt_every if ckpt_every is None else ckpt_every,
                      max_minutes=args.max_minutes, config=cfg, upstream=upstream, log=log,
                      restart=name in args.restart, stop_at=getattr(args, "stop_at", None))
    if run.is_done():
        log(f"[{name}] already done")
        return None
    return run
