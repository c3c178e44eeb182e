#!/usr/bin/env python3
"""PyTorch side of `pareidolia-bench clip --python PY`: one CLIP similarity measurement as the
PyTorch ecosystem would make it, timed the same two ways as Pareidolia's.

    /work/venv/bin/python Tools/reference/bench_clip_torch.py --model SD_DIR --clip CLIP_DIR \\
        --latent H,W --reduced h,w [--threads 2] [--repeats 2] [--json OUT.json]

  full     diffusers AutoencoderKL.decode of a [1,4,H,W] latent, the picture to 8 bits
           (as a PNG holds it), transformers' CLIPImageProcessor (Pillow path) and
           CLIPModel.get_image_features, then the cosine with 8 phrase embeddings
  reduced  the same after F.interpolate(bilinear, antialias=True) of the latent to [1,4,h,w]

float32, eval mode, torch.inference_mode(), one warm-up call each, best of --repeats.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_torch import best_of  # noqa: E402


def pair(text: str) -> tuple[int, int]:
    h, w = (int(v) for v in text.split(","))
    return h, w


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="diffusers SD 1.x folder (its vae/)")
    ap.add_argument("--clip", required=True, help="Hugging Face CLIPModel folder")
    ap.add_argument("--latent", type=pair, required=True, help="H,W of the run's latent")
    ap.add_argument("--reduced", type=pair, required=True, help="h,w of the shrunk latent")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", metavar="OUT")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from diffusers import AutoencoderKL
    from transformers import CLIPModel, CLIPTokenizer
    try:
        from transformers import CLIPImageProcessorPil as Processor
    except ImportError:
        from transformers import CLIPImageProcessor as Processor
    vae = AutoencoderKL.from_pretrained(args.model, subfolder="vae", torch_dtype=torch.float32, low_cpu_mem_usage=False).eval()
    clip = CLIPModel.from_pretrained(args.clip, torch_dtype=torch.float32).eval()
    processor, tokenizer = Processor.from_pretrained(args.clip), CLIPTokenizer.from_pretrained(args.clip)
    phrases = [f"phrase number {i}" for i in range(8)]
    with torch.inference_mode():
        ids = tokenizer(phrases, padding="max_length", max_length=77, return_tensors="pt")
        text = clip.get_text_features(input_ids=ids["input_ids"], attention_mask=ids["attention_mask"])
        text = getattr(text, "pooler_output", text)
    z = torch.randn(1, vae.config.latent_channels, *args.latent, generator=torch.Generator().manual_seed(12))
    sf = vae.config.scaling_factor

    def measure(latent: torch.Tensor):
        def run():
            with torch.inference_mode():
                image = vae.decode(latent / sf).sample  # [1, 3, 8h, 8w]
                rgb = ((image[0].permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
                pixels = processor(images=rgb, return_tensors="pt")["pixel_values"]
                emb = clip.get_image_features(pixel_values=pixels)
                emb = getattr(emb, "pooler_output", emb)
                return F.cosine_similarity(emb, text)
        return best_of(run, args.repeats)[0]

    small = F.interpolate(z, size=args.reduced, mode="bilinear", align_corners=False, antialias=True)
    out = {"full_s": measure(z), "reduced_s": measure(small), "torch": torch.__version__,
           "cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads()}
    if args.json:
        Path(args.json).write_text(json.dumps(out))
    else:
        print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
