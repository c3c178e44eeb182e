#!/usr/bin/env python3
"""Cross-attention goldens for Pareidolia's trace (DAAM-style aggregate maps) on Tests/Fixtures/tiny-sd.

Usage (from the repository root):

    /work/venv/bin/python Tools/reference/make_attention_fixtures.py

Writes Tests/Fixtures/attention/{square,wide,negative}.safetensors (about 0.6 MB in all; documented in
Tests/Fixtures/README.md, section X). Runs in a few seconds on 2 cores.

Each case is one txt2img run of diffusers' StableDiffusionPipeline (euler, 4 steps, guidance 7.5,
torch.Generator("cpu").manual_seed(1887838105)) with a recording attention processor on every cross-attention
layer (`attn2`). Per UNet evaluation e the script stores

    cross[e, t, y, x] = sum over attn2 layers l (in call order) of
                        bilinear_upsample_to(h, w)( mean over heads k of P_l[cond, k, (i, j), t] )[y, x]

where P_l[cond, k, q, t] is layer l's post-softmax attention probability of query pixel q = i * w_l + j
(row-major over the layer's h_l x w_l map) on token position t (0..76, BOS at 0), for the conditional half of
the classifier-free-guidance batch (batch index 1; diffusers concatenates [uncond, cond]), and the upsampling
is F.interpolate(mode="bilinear", align_corners=False) from [h_l, w_l] to the latent size [h, w]. The head
mean, upsampling and layer sum are done in float64 from the float32 probabilities and rounded once to float32.

Checks (asserted): every layer's probabilities (both CFG halves) sum to 1 over tokens; the recording
processor gives the same final latent as diffusers' default processor (AttnProcessor2_0) within 1e-5
(the actual max |diff| is printed); the conditioning seen by attn2 is [negative, prompt] as encode_prompt
returns them (so index 1 is the prompt); every layer's spatial size is the UNet's own (from the input of its
Transformer2DModel) and equals ceil-halving of the latent size per level; the 11 layers are called in the
same order at every evaluation; bilinear resizing of a level-0 map to the latent size is the identity; the
aggregate sums to 11 (the layer count) over tokens at every pixel; the recording processor is bit-identical to
diffusers' plain AttnProcessor.

Determinism: torch pinned to 2 threads with deterministic algorithms, an explicitly seeded generator, and a
deterministic safetensors writer (sorted keys, sorted header JSON). Re-running gives byte-identical files.
"""

from __future__ import annotations

import json
import math
import struct
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(2)
torch.use_deterministic_algorithms(True)

import diffusers  # noqa: E402
import transformers  # noqa: E402
from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline  # noqa: E402
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0  # noqa: E402
from diffusers.models.transformers.transformer_2d import Transformer2DModel  # noqa: E402
from diffusers.utils import logging as diffusers_logging  # noqa: E402
from f32_safetensors import to_np32, write_safetensors  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "Tests" / "Fixtures"
TINY_SD = FIXTURES / "tiny-sd"
OUT = FIXTURES / "attention"
GENERATOR_NOTE = "Tools/reference/make_attention_fixtures.py"

PROMPT = "photo of a witch and a robot dancing, contact improvisation"
NEGATIVE = "blurry, low quality"
SEED = 1887838105
STEPS = 4
GUIDANCE = 7.5
SAMPLER = "euler"
SITE = "down_blocks.0.attentions.0.transformer_blocks.0.attn2"   # also stored on its own
COND = 1                                                       # conditional half of the CFG batch

CASES = {
    # name: (width, height, negative prompt)
    "square": (64, 64, ""),
    "wide": (96, 64, ""),
    "negative": (64, 64, NEGATIVE),
}

CROSS_DEFINITION = (
    "cross[e,t,y,x] = sum over attn2 layers l (call order, see sites) of "
    "F.interpolate(mean_heads(P_l[cond]).reshape(T,h_l,w_l)[None], size=(h,w), mode='bilinear', "
    "align_corners=False)[0][t,y,x]; P_l[cond] = softmax(Q K^T / sqrt(d_head)) over the 77 token keys for "
    "CFG batch index 1 (conditional; diffusers orders [uncond, cond]), queries = the layer's pixels row-major; "
    "head mean, upsampling and sum in float64, rounded to float32 once")


# ============================================================================
# Deterministic writer (same layout as make_pipeline_fixtures.py's)
# ============================================================================


def mj(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# ============================================================================
# Recording
# ============================================================================


class AttentionRecorder:
    """Holds per-evaluation records of the attn2 layers. The spatial size of each layer comes from a forward
    pre-hook on its Transformer2DModel (input [B, C, h_l, w_l]); the processor only sees [B, h_l*w_l, C]."""

    def __init__(self, latent_hw: tuple[int, int]):
        self.latent_hw = latent_hw
        self.spatial: dict[str, tuple[int, int]] = {}     # transformer name -> (h_l, w_l), current call
        self.evaluations: list[list[tuple]] = []   # per UNet call: (site, probs [B,H,N,T], (h_l, w_l))
        self.context_first: torch.Tensor | None = None     # encoder_hidden_states seen by the first attn2 call
        self.max_sum_err = 0.0

    def unet_pre_hook(self, module, args, kwargs):
        self.evaluations.append([])

    def transformer_pre_hook(self, name):
        def hook(module, args, kwargs):
            x = args[0] if args else kwargs["hidden_states"]
            assert x.ndim == 4, x.shape
            self.spatial[name] = (int(x.shape[2]), int(x.shape[3]))
        return hook


class RecordingAttnProcessor:
    """diffusers' plain AttnProcessor path (to_q/to_k/to_v, head_to_batch_dim, attn.get_attention_scores,
    bmm, batch_to_head_dim, to_out) that also records the probabilities. Only the branches SD 1.x's attn2 uses
    are implemented; the others are asserted absent."""

    def __init__(self, recorder: AttentionRecorder, site: str, transformer: str):
        self.recorder = recorder
        self.site = site
        self.transformer = transformer

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 *args, **kwargs):
        assert attn.spatial_norm is None and attn.group_norm is None and not attn.norm_cross
        assert not attn.residual_connection and attn.rescale_output_factor == 1.0
        assert attention_mask is None and encoder_hidden_states is not None
        assert hidden_states.ndim == 3
        batch, n, _ = hidden_states.shape
        query = attn.head_to_batch_dim(attn.to_q(hidden_states))
        key = attn.head_to_batch_dim(attn.to_k(encoder_hidden_states))
        value = attn.head_to_batch_dim(attn.to_v(encoder_hidden_states))
        probs = attn.get_attention_scores(query, key, None)          # [B*heads, N, T], index b*heads + k
        out = torch.bmm(probs, value)
        out = attn.batch_to_head_dim(out)
        out = attn.to_out[0](out)
        out = attn.to_out[1](out)

        rec = self.recorder
        if rec.context_first is None:
            rec.context_first = encoder_hidden_states.detach().clone()
        heads = attn.heads
        p = probs.detach().reshape(batch, heads, n, probs.shape[-1]).clone()
        rec.max_sum_err = max(rec.max_sum_err, float((p.double().sum(-1) - 1).abs().max()))
        h_l, w_l = rec.spatial[self.transformer]
        assert h_l * w_l == n, (self.site, h_l, w_l, n)
        rec.evaluations[-1].append((self.site, p, (h_l, w_l)))
        return out


def load_pipeline() -> StableDiffusionPipeline:
    pipe = StableDiffusionPipeline.from_pretrained(str(TINY_SD), safety_checker=None, requires_safety_checker=False,
                                                   local_files_only=True)
    pipe.to(torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def ceil_halvings(n: int, level: int) -> int:
    """Size after `level` stride-2, padding-1, 3x3 convs: n -> floor((n - 1) / 2) + 1 = ceil(n / 2)."""
    for _ in range(level):
        n = (n - 1) // 2 + 1
    return n


def site_level(site: str, n_levels: int) -> int:
    parts = site.split(".")
    if parts[0] == "down_blocks":
        return int(parts[1])
    if parts[0] == "mid_block":
        return n_levels - 1
    if parts[0] == "up_blocks":
        return n_levels - 1 - int(parts[1])
    raise ValueError(site)


def run_case(pipe, base_config, width: int, height: int, negative: str, record: bool, plain: bool = False):
    """record=True: recording processor on attn2; plain=True: diffusers' AttnProcessor on attn2 (the classic
    baddbmm/softmax path); neither: the pipeline's default processors (AttnProcessor2_0 = SDPA)."""
    pipe.scheduler = EulerDiscreteScheduler.from_config(base_config)
    generator = torch.Generator("cpu").manual_seed(SEED)
    latents: list[torch.Tensor] = []

    orig_prepare = pipe.prepare_latents

    def prepare_latents(*a, **k):
        out = orig_prepare(*a, **k)
        latents.append(out.detach().clone())
        return out

    def callback(p, i, t, kw):
        latents.append(kw["latents"].detach().clone())
        return {}

    unet = pipe.unet
    default_procs = dict(unet.attn_processors)
    handles = []
    recorder = AttentionRecorder((height // 8, width // 8))
    if record:
        procs = {}
        for name, proc in default_procs.items():
            if name.endswith(".attn2.processor"):
                site = name[: -len(".processor")]
                transformer = site.split(".transformer_blocks.")[0]
                procs[name] = RecordingAttnProcessor(recorder, site, transformer)
            else:
                procs[name] = proc
        unet.set_attn_processor(procs)
        handles.append(unet.register_forward_pre_hook(recorder.unet_pre_hook, with_kwargs=True))
        for name, mod in unet.named_modules():
            if isinstance(mod, Transformer2DModel):
                handles.append(mod.register_forward_pre_hook(recorder.transformer_pre_hook(name), with_kwargs=True))
    elif plain:
        unet.set_attn_processor({name: (AttnProcessor() if name.endswith(".attn2.processor") else proc)
                                 for name, proc in default_procs.items()})
    pipe.prepare_latents = prepare_latents
    try:
        out = pipe(prompt=PROMPT, negative_prompt=negative, height=height, width=width, num_inference_steps=STEPS,
                   guidance_scale=GUIDANCE, generator=generator, output_type="latent",
                   callback_on_step_end=callback)
    finally:
        del pipe.prepare_latents
        for h in handles:
            h.remove()
        unet.set_attn_processor(dict(default_procs))
    final = out.images
    assert torch.equal(final, latents[-1])
    return final, torch.cat(latents), recorder, pipe.scheduler


def aggregate(recorder: AttentionRecorder, latent_hw: tuple[int, int], n_levels: int):
    """Returns cross [E,T,h,w] float64, the single-site maps [E,T,h_s,w_s] float64, and the site list."""
    h, w = latent_hw
    crosses, site_maps, sites_ref = [], [], None
    for calls in recorder.evaluations:
        sites = [s for s, _, _ in calls]
        if sites_ref is None:
            sites_ref = sites
        assert sites == sites_ref, "attn2 call order changed between evaluations"
        total = None
        for site, p, (h_l, w_l) in calls:
            lvl = site_level(site, n_levels)
            assert (h_l, w_l) == (ceil_halvings(h, lvl), ceil_halvings(w, lvl)), (site, h_l, w_l, lvl)
            B, heads, n, T = p.shape
            assert B == 2, "expected a CFG batch of 2"
            m = p[COND].double().mean(0)                           # [N, T], head mean
            m = m.transpose(0, 1).reshape(1, T, h_l, w_l)          # [1, T, h_l, w_l], query q = i*w_l + j
            up = F.interpolate(m, size=(h, w), mode="bilinear", align_corners=False)[0]
            if (h_l, w_l) == (h, w):
                assert torch.equal(up, m[0])
            total = up if total is None else total + up
            if site == SITE:
                site_maps.append(m[0].clone())
        crosses.append(total)
    return torch.stack(crosses), torch.stack(site_maps), sites_ref


def main() -> None:
    t0 = time.time()
    diffusers_logging.set_verbosity_error()
    transformers.logging.set_verbosity_error()
    pipe = load_pipeline()
    base_config = dict(pipe.scheduler.config)
    assert all(isinstance(p, AttnProcessor2_0) for p in pipe.unet.attn_processors.values())
    n_levels = len(pipe.unet.config.block_out_channels)
    heads_cfg = pipe.unet.config.attention_head_dim   # SD 1.x naming: this is the head count
    OUT.mkdir(parents=True, exist_ok=True)
    tok = pipe.tokenizer(PROMPT, padding="max_length", max_length=pipe.tokenizer.model_max_length,
                         truncation=True)["input_ids"]
    total_bytes = 0

    for case, (width, height, negative) in CASES.items():
        final, latents, rec, sched = run_case(pipe, base_config, width, height, negative, record=True)
        final_plain, latents_plain, _, _ = run_case(pipe, base_config, width, height, negative, record=False,
                                                    plain=True)
        assert torch.equal(latents, latents_plain), case     # bit-identical to diffusers' AttnProcessor
        final_def, latents_def, _, _ = run_case(pipe, base_config, width, height, negative, record=False)
        scale = float(final_def.abs().max())
        diff = float((final - final_def).abs().max())
        diff_all = float((latents - latents_def).abs().max())
        assert diff < 2e-6 * max(1.0, float(latents_def.abs().max())), (case, diff)

        h, w = height // 8, width // 8
        E = len(rec.evaluations)
        assert E == STEPS == latents.shape[0] - 1, (E, latents.shape)
        assert rec.max_sum_err < 1e-5, rec.max_sum_err

        # conditioning order: [negative, prompt] exactly as encode_prompt gives them
        with torch.no_grad():
            pe, ne = pipe.encode_prompt(PROMPT, "cpu", 1, True, negative_prompt=negative)
        assert torch.equal(rec.context_first[COND], pe[0]) and torch.equal(rec.context_first[1 - COND], ne[0])
        assert not torch.equal(pe[0], ne[0])

        cross, site_map, sites = aggregate(rec, (h, w), n_levels)
        assert len(sites) == 11 and SITE in sites
        heads = {int(p.shape[1]) for calls in rec.evaluations for _, p, _ in calls}
        assert heads == {heads_cfg}, heads
        T = cross.shape[1]
        assert T == 77
        # the aggregate is a sum of 11 maps that each sum to 1 over tokens -> cross sums to 11 over tokens
        # (bilinear weights sum to 1 per output pixel), up to float32 rounding of the probabilities
        tok_sum_err = float((cross.sum(1) - len(sites)).abs().max())
        assert tok_sum_err < 1e-5, tok_sum_err
        # independent recomputation of the chosen layer's term from the stored map
        lvl0 = F.interpolate(site_map, size=(h, w), mode="bilinear", align_corners=False)
        assert torch.equal(lvl0, site_map)  # level 0: already at latent size
        layer_shapes = {s: list(hw) for s, _, hw in rec.evaluations[0]}

        tensors = {
            "cross": cross.float(),
            f"cross.{SITE}": site_map.float(),
            "latents": latents.float(),          # [E+1, 4, h, w]
            "final": final[0].float(),           # [4, h, w]
            "timesteps": sched.timesteps.to(torch.float32),
            "sigmas": sched.sigmas.to(torch.float32),
        }
        meta = {
            "generator_script": GENERATOR_NOTE,
            "model": "Tests/Fixtures/tiny-sd (random weights), StableDiffusionPipeline.from_pretrained, "
                     "safety_checker=None, CPU, float32",
            "versions": mj({"torch": torch.__version__, "diffusers": diffusers.__version__,
                            "transformers": transformers.__version__, "numpy": np.__version__}),
            "case": case,
            "prompt": PROMPT,
            "negative_prompt": negative,
            "seed": str(SEED),
            "rng": "torch.Generator('cpu').manual_seed(seed), passed to the pipeline",
            "steps": str(STEPS),
            "guidance_scale": repr(GUIDANCE),
            "sampler": SAMPLER,
            "scheduler": "EulerDiscreteScheduler.from_config(tiny-sd's scheduler config) (leading spacing, "
                         "steps_offset 1)",
            "width": str(width),
            "height": str(height),
            "latent_shape": mj([4, h, w]),
            "evaluations": str(E),
            "conditional_batch_index": str(COND),
            "heads": str(heads_cfg),
            "tokens": str(T),
            "prompt_token_ids": mj(tok),
            "sites": mj(sites),
            "site_shapes": mj(layer_shapes),
            "cross_definition": CROSS_DEFINITION,
            "keys": ("cross [E,77,h,w]: DAAM aggregate (see cross_definition); cross.<site> [E,77,h_l,w_l]: that "
                     "layer's head-mean conditional probabilities at its own resolution (level 0 = latent size); "
                     "latents [E+1,4,h,w]: initial latent (randn x init_noise_sigma) then the latent after each "
                     "evaluation (callback_on_step_end); final [4,h,w] = latents[E]; timesteps [E], sigmas [E+1] "
                     "from the scheduler"),
            "check_final_vs_default_processor_max_abs": repr(diff),
            "check_final_max_abs": repr(scale),
            "check_latents_vs_plain_attnprocessor": "bit-identical",
            "check_latents_vs_default_processor_max_abs": repr(diff_all),
            "check_prob_sum_max_abs_err": repr(rec.max_sum_err),
        }
        path = OUT / f"{case}.safetensors"
        write_safetensors(path, tensors, meta)
        size = path.stat().st_size
        total_bytes += size
        print(f"{case}: latent {h}x{w}, E={E}, {len(sites)} attn2 layers, final vs default processor "
              f"max|diff| {diff:.2e} (all latents {diff_all:.2e}; max|final| {scale:.3g}; vs AttnProcessor: identical), prob-sum err {rec.max_sum_err:.2e}, "
              f"{size} bytes", flush=True)
        if case == "square":
            print("   attn2 call order and spatial sizes:")
            for s in sites:
                print(f"     {s}: {layer_shapes[s]}")
        if case == "wide":
            print("   spatial sizes:", {s: layer_shapes[s] for s in sites})
    assert total_bytes < 2_000_000
    print(f"total {total_bytes} bytes, {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
