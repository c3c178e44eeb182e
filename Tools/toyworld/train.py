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
# This file is the command line (stages, options, presets' use, `main` and the `seed` command).
# The stages: stage_clip.py (data, clip), stage_vae.py, stage_decoder.py (latents, decoder),
# stage_unet.py with unet_parts.py, stage_ti.py, stage_export.py (export, measure, card); what
# they share: stagekit.py (log and LOG_FILE among it), seedweights.py; the presets: presets.py.

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOOLS = HERE.parent
REPO = TOOLS.parent
if str(TOOLS) not in sys.path:
    sys.path.insert(0, str(TOOLS))

from toyworld import stagekit  # noqa: E402  (first: it sets the Hugging Face environment)

import torch  # noqa: E402

from toyworld import trainkit as tk  # noqa: E402
from toyworld.presets import PRESETS  # noqa: E402
from toyworld.seedweights import save_seed_weights, seed_history, seed_history_path  # noqa: E402
from toyworld.stage_clip import stage_clip, stage_data  # noqa: E402
from toyworld.stage_decoder import stage_decoder, stage_latents  # noqa: E402
from toyworld.stage_export import stage_card, stage_export, stage_measure  # noqa: E402
from toyworld.stage_ti import stage_ti  # noqa: E402
from toyworld.stage_unet import stage_unet  # noqa: E402
from toyworld.stage_vae import stage_vae  # noqa: E402
from toyworld.stagekit import clip_config, floats, ints, load_text_encoder, log, unet_kwargs, vae_kwargs  # noqa: E402
from toyworld.unet_parts import repeat_spec, unet_deep_at, unet_wide_at  # noqa: E402

DEFAULT_WORK = Path("/work/toyworld-run")

STAGES = ("data", "clip", "vae", "latents", "decoder", "unet", "ti", "export", "measure", "card")


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
    g.add_argument("--stop-at", type=int, default=None, metavar="STEP",
                   help="per stage: stop cleanly at a checkpoint at STEP, its schedule still the stage's full "
                        "length (a phase of a longer run ended where the next began from its weights)")
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
    g.add_argument("--unet-object-weight", type=float, default=0.0,
                   help="from --unet-object-weight-from, the noise loss at latent pixels inside an object weighs "
                        "1 + this (the others 1; each sample's weighted mean), so detail inside things counts "
                        "more than background")
    from_step(g, "unet-object-weight", "the object-weighted loss")
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
                        "things N times per epoch; characters=N, one with a person or cat; cats=N, one with a "
                        "cat (comma-separated; the largest that applies; others once)")
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
    stagekit.LOG_FILE = work / "train.log"   # the one log every stage's log() writes to
    log(f"== train.py {args.command} (preset {args.preset}, work {work}, device {args.device}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__})")
    if args.command == "seed":
        stage = args.seed_stage
        ck = torch.load(str(work / stage / "ckpt.pt"), map_location="cpu", weights_only=False)
        text_state, parts = None, ()
        if stage in ("vae", "decoder"):   # a decoder's seed holds the decoder alone (the encoder is the VAE's)
            from diffusers import AutoencoderKL
            from toyworld.stage_decoder import DECODER_PARTS
            parts = DECODER_PARTS if stage == "decoder" else ()
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
        save_seed_weights(model, out, int(ck["step"]), text_state, parts)
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
