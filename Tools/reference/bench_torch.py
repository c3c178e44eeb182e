#!/usr/bin/env python3
"""PyTorch (diffusers, CPU) side of Pareidolia's model benchmark.

Usage (from the repository root):

    /work/venv/bin/python Tools/reference/bench_torch.py --model DIR \\
        [--threads 2] [--repeats 2] [--latent 64] [--json OUT.json]

DIR is a diffusers SD 1.x folder, e.g. the full-size random-weight one written by
`make_fixtures.py --full-size DIR`.  `pareidolia-bench models --python ...` runs this
script with its own thread count and reads the JSON.

Measured in float32, eval mode, under torch.inference_mode(), with diffusers' default
attention processor (AttnProcessor2_0 = torch scaled_dot_product_attention), after one
warm-up call each, best of --repeats:

  text_encoder   one CLIPTextModel forward of 2 x 77 tokens (a prompt + the empty negative)
  unet           one UNet2DConditionModel evaluation at batch 2: latents [2,4,L,L],
                 timestep 981, context [2,77,768] (the text encoder's output)
  vae_decode     AutoencoderKL.decode of latents [1,4,L,L] -> [1,3,8L,8L]
                 (post_quant_conv + decoder)

  generate       with --generate STEPS: a whole StableDiffusionPipeline txt2img run of the
                 same components (EulerAncestralDiscreteScheduler, guidance 7.5, 8L x 8L,
                 seed 1887838105, the benchmark prompt and an empty negative), after a 1-step warm-up

plus load_s (from_pretrained of the three components; depends on the page cache) and
the process's peak RSS (VmHWM from /proc/self/status; getrusage's ru_maxrss would include the
parent's peak, which Linux carries across fork and exec) at the end.  L = --latent (64 -> 512x512).

The environment is left as it is.  torch's CPU wheel does its matrix products with
MKL and its convolutions with oneDNN, so OPENBLAS_* variables do not affect it;
MKL_*/ONEDNN_*/OMP_* ones may (they are recorded in the JSON under "env").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch

from bench_common import PROMPT, best_of, peak_rss_bytes

ENV_PREFIXES = ("OMP_", "MKL_", "KMP_", "ONEDNN_", "DNNL_", "OPENBLAS_", "GOTO_", "ATEN_", "TORCH_")


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="diffusers SD 1.x folder")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--repeats", type=int, default=2, help="timed repetitions, best reported (default 2)")
    ap.add_argument("--latent", type=int, default=64, help="latent side (default 64 -> 512x512 images)")
    ap.add_argument("--generate", type=int, default=0, metavar="STEPS",
                    help="also time a whole StableDiffusionPipeline txt2img run (euler_a, 8L x 8L, guidance 7.5) of STEPS steps")
    ap.add_argument("--json", metavar="OUT", help="also write the results as JSON to OUT")
    args = ap.parse_args()
    if args.repeats < 1 or args.threads < 1 or args.latent < 8 or args.latent % 8:
        ap.error("--repeats and --threads must be >= 1, --latent a multiple of 8")

    torch.set_num_threads(args.threads)

    import diffusers
    import transformers
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.utils import logging as diffusers_logging
    from transformers import CLIPTextModel, CLIPTokenizer
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    model = args.model

    t0 = time.perf_counter()
    text_encoder = CLIPTextModel.from_pretrained(model, subfolder="text_encoder", torch_dtype=torch.float32)
    unet = UNet2DConditionModel.from_pretrained(model, subfolder="unet", torch_dtype=torch.float32)
    vae = AutoencoderKL.from_pretrained(model, subfolder="vae", torch_dtype=torch.float32)
    load_s = time.perf_counter() - t0
    for m in (text_encoder, unet, vae):
        m.eval()
        m.requires_grad_(False)
    # The tokenizer is not part of the timed load (Pareidolia's load includes its own).
    tokenizer = CLIPTokenizer.from_pretrained(model, subfolder="tokenizer")

    processors = sorted({type(p).__name__ for p in unet.attn_processors.values()}
                        | {type(p).__name__ for p in vae.attn_processors.values()})

    ids = tokenizer([PROMPT, ""], padding="max_length", max_length=tokenizer.model_max_length,
                    truncation=True, return_tensors="pt").input_ids
    assert ids.shape == (2, 77), ids.shape
    gen = torch.Generator().manual_seed(0)
    lat = args.latent
    sample = torch.randn(2, unet.config.in_channels, lat, lat, generator=gen)
    z = torch.randn(1, vae.config.latent_channels, lat, lat, generator=gen)
    timestep = torch.tensor(981)

    with torch.inference_mode():
        context = text_encoder(ids)[0]
        assert context.shape == (2, 77, unet.config.cross_attention_dim), context.shape

        text_s, _ = best_of(lambda: text_encoder(ids), args.repeats)
        unet_s, eps = best_of(lambda: unet(sample, timestep, encoder_hidden_states=context).sample, args.repeats)
        vae_s, image = best_of(lambda: vae.decode(z).sample, args.repeats)
    assert eps.shape == sample.shape, eps.shape
    assert image.shape == (1, 3, lat * 8, lat * 8), image.shape

    generate_s = None
    if args.generate:
        # The same components in diffusers' pipeline; one untimed 1-step run first (warm-up).
        from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionPipeline
        scheduler = EulerAncestralDiscreteScheduler.from_pretrained(model, subfolder="scheduler")
        pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                       scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        run = lambda steps: pipe(PROMPT, num_inference_steps=steps, guidance_scale=7.5, height=lat * 8, width=lat * 8,
                                 generator=torch.Generator().manual_seed(1887838105), output_type="np")
        with torch.inference_mode():
            run(1)
            t0 = time.perf_counter()
            run(args.generate)
            generate_s = time.perf_counter() - t0

    peak_rss = peak_rss_bytes()

    result = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "text_encoder_s": text_s,
        "unet_s": unet_s,
        "vae_decode_s": vae_s,
        "load_s": load_s,
        "generate_s": generate_s,
        "generate_steps": args.generate,
        "peak_rss_bytes": peak_rss,
        # Context (not read by pareidolia-bench):
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "attention_processor": ",".join(processors),
        "repeats": args.repeats,
        "latent": lat,
        "cpu": cpu_name(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "env": {k: v for k, v in sorted(os.environ.items()) if k.startswith(ENV_PREFIXES)},
    }

    gib = 1024 ** 3
    rows = [("load (3 components)", f"{load_s:.2f} s"),
            ("text encoder (2x77 tokens)", f"{text_s:.3f} s"),
            (f"UNet eval (batch 2, {lat}x{lat})", f"{unet_s:.2f} s"),
            (f"VAE decode ({lat * 8}x{lat * 8})", f"{vae_s:.2f} s"),
            ("peak RSS", f"{peak_rss / gib:.2f} GiB")]
    if generate_s is not None:
        rows.append((f"txt2img {args.generate} steps euler_a", f"{generate_s:.1f} s"))
    width = max(len(r[0]) for r in rows)
    print(f"PyTorch {torch.__version__} (diffusers {diffusers.__version__}), {torch.get_num_threads()} threads, "
          f"{result['cpu_capability']}, attention: {result['attention_processor']}, best of {args.repeats}")
    for name, value in rows:
        print(f"  {name:<{width}}  {value:>10}")
    if result["env"]:
        print("  env: " + " ".join(f"{k}={v}" for k, v in result["env"].items()))

    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
