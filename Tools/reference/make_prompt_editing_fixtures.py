#!/usr/bin/env python3
"""Goldens for prompt editing, alternation and AND (A1111's composable diffusion) on Tests/Fixtures/tiny-sd.

Usage (from the repository root):

    /work/venv/bin/python Tools/reference/make_prompt_editing_fixtures.py

Writes Tests/Fixtures/editing/{edit,alternate,and,negative}.safetensors (a few kB each). Seconds on 2 cores.

A plain diffusers denoising loop (the pipeline's scheduler, its initial noise from
torch.Generator("cpu").manual_seed(seed), classifier-free guidance) in which model call k is conditioned on
the texts A1111's rules give that call. The texts per call are written out below, from A1111's schedule
(`get_learned_conditioning_prompt_schedules`: entries (end step, text); call k takes the first entry with
k <= end): they are checked against A1111's parser in Tests/Fixtures/prompt_schedules.json, so this script
tests the engine's use of them — each text encoded once, the batch [negative, part 1, ..., part K], parts of
different lengths made equal by repeating their last row (A1111's stack_conds), and the guidance
eps = eps_u + sum_k w_k * scale * (eps_k - eps_u) (A1111's combine_denoised, which is affine in eps).

Stored per case: `final` [1, 4, h, w] and `latents` [E+1, 4, h, w]; metadata: prompt, negative prompt,
sampler, steps, guidance, seed, size.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

torch.set_num_threads(2)
torch.use_deterministic_algorithms(True)

from diffusers import DDIMScheduler, EulerDiscreteScheduler, StableDiffusionPipeline  # noqa: E402
from f32_safetensors import to_np32, write_safetensors  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TINY_SD = REPO / "Tests" / "Fixtures" / "tiny-sd"
OUT = REPO / "Tests" / "Fixtures" / "editing"
SEED = 1887838105

# name: (prompt, negative, sampler, steps, [(weight, [text of call 0, 1, ...])], [negative text per call])
W = "photo of a witch dancing"
R = "photo of a robot dancing"
CASES = {
    # [witch:robot:2] at 4 steps: entries (2, witch), (4, robot) -> calls 0-2 witch, call 3 robot
    "edit": ("photo of a [witch:robot:2] dancing", "", "ddim", 4, [(1.0, [W, W, W, R])], [""] * 4),
    # [witch|robot]: entries (1, witch), (2, robot), (3, witch), (4, robot) -> calls 0,1 witch; 2 robot; 3 witch
    "alternate": ("photo of a [witch|robot] dancing", "", "euler", 4, [(1.0, [W, W, R, W])], [""] * 4),
    # two parts; the second is longer (two chunks), so the first is lengthened by repeating its last row
    # (no commas in it: A1111's chunker would move a chunk's end back to a comma)
    "and": ("a witch AND a robot " + " ".join(["metal"] * 80) + " :0.6", "", "euler", 3,
            [(1.0, ["a witch "] * 3), (0.6, [" a robot " + " ".join(["metal"] * 80)] * 3)], [""] * 3),
    # the negative prompt edits too: [blurry::0.5] at 4 steps -> (2, blurry), (4, '') -> calls 0-2 blurry
    "negative": ("photo of a witch dancing", "[blurry::0.5]", "ddim", 4, [(1.0, [W] * 4)], ["blurry", "blurry", "blurry", ""]),
}


@torch.no_grad()
def encode(pipe, text: str) -> torch.Tensor:
    """A1111's chunks of 75 tokens, each [BOS] ids [EOS] padded to 77 with EOS, encoded and concatenated."""
    tok = pipe.tokenizer
    ids = tok(text, add_special_tokens=False).input_ids
    chunks = [ids[i:i + 75] for i in range(0, max(1, len(ids)), 75)] or [[]]
    outs = []
    for c in chunks:
        row = [tok.bos_token_id] + c + [tok.eos_token_id] * (76 - len(c))
        outs.append(pipe.text_encoder(torch.tensor([row]))[0])
    return torch.cat(outs, dim=1)                                     # [1, 77*n, D]


@torch.no_grad()
def run(pipe, sampler, steps, parts, negatives):
    if sampler == "ddim":
        pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config, clip_sample=False)
    else:
        pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    sched = pipe.scheduler
    sched.set_timesteps(steps)
    cache = {}

    def enc(t):
        if t not in cache:
            cache[t] = encode(pipe, t)
        return cache[t]

    empty = enc("")
    g = torch.Generator("cpu").manual_seed(SEED)
    x = torch.randn((1, 4, 8, 8), generator=g) * sched.init_noise_sigma
    latents = [x.clone()]
    for k, t in enumerate(sched.timesteps):
        conds = [enc(texts[k]) for _, texts in parts]
        longest = max(c.shape[1] for c in conds)
        conds = [torch.cat([c, c[:, -1:].repeat(1, longest - c.shape[1], 1)], dim=1) for c in conds]
        u = enc(negatives[k])
        while u.shape[1] < longest:
            u = torch.cat([u, empty], dim=1)
        while conds[0].shape[1] < u.shape[1]:
            conds = [torch.cat([c, empty], dim=1) for c in conds]
        ctx = torch.cat([u] + conds)                                    # [1+K, T, D]
        inp = sched.scale_model_input(x, t)
        out = pipe.unet(inp.repeat(len(ctx), 1, 1, 1), t, encoder_hidden_states=ctx).sample  # [1+K, 4, h, w]
        eps = out[:1].clone()
        for i, (w, _) in enumerate(parts):
            eps += w * 7.5 * (out[i + 1:i + 2] - out[:1])
        x = sched.step(eps, t, x).prev_sample
        latents.append(x.clone())
    return x, torch.cat(latents)


def main() -> None:
    pipe = StableDiffusionPipeline.from_pretrained(str(TINY_SD), safety_checker=None, requires_safety_checker=False,
                                                   local_files_only=True)
    pipe.to(torch.float32)
    OUT.mkdir(parents=True, exist_ok=True)
    for name, (prompt, negative, sampler, steps, parts, negatives) in CASES.items():
        final, latents = run(pipe, sampler, steps, parts, negatives)
        meta = {"prompt": prompt, "negative_prompt": negative, "sampler": sampler, "steps": str(steps), "guidance": "7.5",
                "seed": str(SEED), "width": "64", "height": "64", "texts": json.dumps([t for _, t in parts]),
                "generator": "Tools/reference/make_prompt_editing_fixtures.py"}
        write_safetensors(OUT / f"{name}.safetensors", {"final": to_np32(final), "latents": to_np32(latents)}, meta)
        print(f"{name}: {sampler} {steps} steps, final max |x| {float(final.abs().max()):.3f}")


if __name__ == "__main__":
    main()
