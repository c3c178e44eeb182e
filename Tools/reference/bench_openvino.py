#!/usr/bin/env python3
"""OpenVINO (optimum-intel, CPU, f32) side of Pareidolia's model benchmark.

OpenVINO lives in its own virtual environment (optimum-intel pins its own torch, diffusers and
transformers); see docs/PERFORMANCE.md, "OpenVINO as a peer":

    python3.11 -m venv ../ov-venv
    ../ov-venv/bin/pip install openvino==2026.4.0 "optimum-intel[openvino,diffusers]==2.2.0"

Usage (from the repository root):

    ../ov-venv/bin/python Tools/reference/bench_openvino.py --model DIR --export-dir OVDIR \\
        [--threads 2] [--repeats 2] [--latent 64] [--generate STEPS] [--json OUT.json]

DIR is the diffusers SD 1.x folder the other columns load. The first run exports it to OpenVINO
IR in OVDIR (optimum-intel's OVStableDiffusionPipeline, weights kept in fp32, no 8-bit
compression; minutes), later runs reuse OVDIR when its recorded source matches DIR.
`pareidolia-bench report --openvino PY --openvino-export OVDIR` runs this script.

Measured with the models reshaped to static shapes (what OpenVINO pipelines do: batch 2 for the
CFG UNet, 77 tokens, the latent side given), compiled for CPU with INFERENCE_PRECISION_HINT=f32
(read back from each compiled model and checked: OpenVINO would otherwise run bf16 where the CPU
has it), INFERENCE_NUM_THREADS = --threads, after one warm-up call each, best of --repeats:

  text_encoder   2 x 77 tokens (the benchmark prompt and the empty negative)
  unet           batch 2: sample [2,4,L,L], timestep 981, context [2,77,width]
  vae_decode     latents [1,4,L,L] -> [1,3,8L,8L]
  generate       with --generate STEPS: OVStableDiffusionPipeline txt2img (EulerAncestralDiscrete,
                 guidance 7.5, 8L x 8L, seed 1887838105), after a 1-step warm-up

plus the process's peak RSS (VmHWM) after them; the whole pipeline's compiled models are loaded
beside the component ones only when --generate is given.

Then each output is checked against PyTorch fp32 on the same inputs (diffusers' models from DIR,
in this venv): a difference above 1e-3 of the output's range ends the run with status 1 and no
figures. An f32 hint does not make a result f32: with ONEDNN_MAX_CPU_ISA=AVX2 (the cap the AVX2
columns once used) OpenVINO 2026.4 returned a UNet output 0.81 of its range away from PyTorch's
and a text encoding 1.66 away on an AVX-512 machine, in times that looked like any other.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from bench_common import PROMPT, best_of, peak_rss_bytes


def export(model: str, out: Path) -> None:
    """DIR → OpenVINO IR in OUT (fp32 weights), once; a stamp records the source."""
    stamp = out / "pareidolia-source.json"
    source = {"model": str(Path(model).resolve()),
              "unet_mtime": os.path.getmtime(Path(model) / "unet" / "diffusion_pytorch_model.safetensors")}
    if stamp.exists() and json.loads(stamp.read_text()) == source:
        return
    from optimum.intel import OVStableDiffusionPipeline
    print(f"exporting {model} to OpenVINO IR in {out} (once) ...", flush=True)
    t0 = time.perf_counter()
    pipe = OVStableDiffusionPipeline.from_pretrained(model, export=True, compile=False, load_in_8bit=False)
    tmp = out.with_name(out.name + ".partial")
    pipe.save_pretrained(tmp)
    del pipe
    if out.exists():
        import shutil
        shutil.rmtree(out)
    tmp.rename(out)
    stamp.write_text(json.dumps(source))
    print(f"exported in {time.perf_counter() - t0:.0f} s", flush=True)


MAX_REL_DIFF = 1e-3


def check_against_torch(model: str, ids, context, sample, timestep, eps, z, image) -> dict[str, float]:
    """max |OpenVINO - PyTorch fp32| / max |PyTorch| of each output, on the same inputs (the UNet
    given OpenVINO's context); exits with status 1 where one is above MAX_REL_DIFF."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    def rel(ours: np.ndarray, ref: torch.Tensor) -> float:
        ref = ref.float().numpy()
        return float(np.abs(ours - ref).max() / max(np.abs(ref).max(), 1e-30))

    diffs = {}
    with torch.no_grad():
        te = CLIPTextModel.from_pretrained(model, subfolder="text_encoder").eval()
        diffs["text_encoder"] = rel(context, te(torch.from_numpy(ids)).last_hidden_state)
        del te
        unet = UNet2DConditionModel.from_pretrained(model, subfolder="unet").eval()
        t = int(np.asarray(timestep).reshape(-1)[0])
        diffs["unet"] = rel(eps, unet(torch.from_numpy(sample), t, encoder_hidden_states=torch.from_numpy(context)).sample)
        del unet
        vae = AutoencoderKL.from_pretrained(model, subfolder="vae").eval()
        diffs["vae_decode"] = rel(image, vae.decode(torch.from_numpy(z)).sample)
    bad = {k: v for k, v in diffs.items() if not v <= MAX_REL_DIFF}
    if bad:
        caps = " ".join(f"{k}={os.environ[k]}" for k in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA") if k in os.environ)
        sys.exit("OpenVINO's " + ", ".join(f"{k} differs from PyTorch fp32 by {v:.3g} of its range" for k, v in bad.items())
                 + f" (at most {MAX_REL_DIFF:g}): not an f32 result" + (f" under {caps}" if caps else "") + "; no figures")
    return diffs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="diffusers SD 1.x folder")
    ap.add_argument("--export-dir", required=True, help="where the OpenVINO IR is (or is exported to)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--latent", type=int, default=64)
    ap.add_argument("--generate", type=int, default=0, metavar="STEPS")
    ap.add_argument("--json", metavar="OUT")
    args = ap.parse_args()
    if args.repeats < 1 or args.threads < 1 or args.latent < 8 or args.latent % 8:
        ap.error("--repeats and --threads must be >= 1, --latent a multiple of 8")

    out = Path(args.export_dir)
    export(args.model, out)

    import openvino as ov
    from transformers import CLIPTokenizer

    core = ov.Core()
    config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": args.threads,
              "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
    lat = args.latent

    def compiled(sub: str, shapes: dict[str, list[int]]):
        m = core.read_model(out / sub / "openvino_model.xml")
        m.reshape({m.input(name): ov.PartialShape(shape) for name, shape in shapes.items()})
        c = core.compile_model(m, "CPU", config)
        precision = c.get_property("INFERENCE_PRECISION_HINT")
        if precision != ov.Type.f32:
            sys.exit(f"{sub}: compiled with inference precision {precision}, expected f32")
        return c

    t0 = time.perf_counter()
    text_encoder = compiled("text_encoder", {"input_ids": [2, 77]})
    unet_model = core.read_model(out / "unet" / "openvino_model.xml")
    unet_inputs = {i.get_any_name(): i for i in unet_model.inputs}
    unet_config = json.loads((out / "unet" / "config.json").read_text())
    width = unet_config["cross_attention_dim"]
    channels = unet_config["in_channels"]
    unet_shapes = {"sample": [2, channels, lat, lat], "encoder_hidden_states": [2, 77, width]}
    timestep_shape = list(unet_inputs["timestep"].get_partial_shape().get_min_shape()) if "timestep" in unet_inputs else []
    unet_shapes["timestep"] = [1] if timestep_shape else []
    unet = compiled("unet", unet_shapes)
    vae = compiled("vae_decoder", {"latent_sample": [1, channels, lat, lat]})
    load_s = time.perf_counter() - t0

    tokenizer = CLIPTokenizer.from_pretrained(args.model, subfolder="tokenizer")
    ids = tokenizer([PROMPT, ""], padding="max_length", max_length=77, truncation=True, return_tensors="np").input_ids
    rng = np.random.default_rng(0)
    sample = rng.standard_normal((2, channels, lat, lat), dtype=np.float32)
    z = rng.standard_normal((1, channels, lat, lat), dtype=np.float32)
    timestep = np.array([981] if unet_shapes["timestep"] else 981, dtype=np.int64)

    te_req, unet_req, vae_req = text_encoder.create_infer_request(), unet.create_infer_request(), vae.create_infer_request()
    context = te_req.infer({"input_ids": ids.astype(np.int64)})[0].copy()
    assert context.shape == (2, 77, width), context.shape
    text_s, _ = best_of(lambda: te_req.infer({"input_ids": ids.astype(np.int64)}), args.repeats)
    unet_s, eps = best_of(lambda: unet_req.infer({"sample": sample, "timestep": timestep,
                                                  "encoder_hidden_states": context})[0], args.repeats)
    vae_s, image = best_of(lambda: vae_req.infer({"latent_sample": z})[0], args.repeats)
    assert eps.shape == sample.shape, eps.shape
    assert image.shape == (1, 3, lat * 8, lat * 8), image.shape

    generate_s = None
    peak = peak_rss_bytes()
    if args.generate:
        from diffusers import EulerAncestralDiscreteScheduler
        from optimum.intel import OVStableDiffusionPipeline
        pipe = OVStableDiffusionPipeline.from_pretrained(out, compile=False, ov_config=config)
        pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)
        pipe.reshape(batch_size=1, height=lat * 8, width=lat * 8, num_images_per_prompt=1)
        pipe.compile()
        pipe.set_progress_bar_config(disable=True)
        import torch
        run = lambda steps: pipe(PROMPT, num_inference_steps=steps, guidance_scale=7.5, height=lat * 8, width=lat * 8,
                                 generator=torch.Generator().manual_seed(1887838105), output_type="np")
        run(1)
        t0 = time.perf_counter()
        run(args.generate)
        generate_s = time.perf_counter() - t0

    result = {
        "openvino": ov.get_version(),
        "threads": args.threads,
        "text_encoder_s": text_s,
        "unet_s": unet_s,
        "vae_decode_s": vae_s,
        "load_s": load_s,
        "generate_s": generate_s,
        "generate_steps": args.generate,
        "peak_rss_bytes": max(peak, peak_rss_bytes()),
        "inference_precision": "f32",
        "repeats": args.repeats,
        "latent": lat,
    }
    del te_req, unet_req, vae_req, text_encoder, unet, vae
    result["max_rel_diff_torch"] = check_against_torch(args.model, ids, context, sample, timestep, eps, z, image)
    gib = 1024 ** 3
    print(f"OpenVINO {result['openvino']}, {args.threads} threads, f32, best of {args.repeats}: "
          f"text {text_s:.3f} s, UNet {unet_s:.2f} s, VAE {vae_s:.2f} s"
          + (f", txt2img {generate_s:.1f} s" if generate_s is not None else "")
          + f", peak RSS {result['peak_rss_bytes'] / gib:.2f} GiB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
