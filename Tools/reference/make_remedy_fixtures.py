#!/usr/bin/env python3
"""Goldens for Pareidolia's merge remedy (bounded regional attention) on Tests/Fixtures/tiny-sd.

Usage (from the repository root):

    /work/venv/bin/python Tools/reference/make_remedy_fixtures.py

Writes Tests/Fixtures/remedy/{ddim,euler,wide-cross,until}.safetensors (a few kB each; documented in
Tests/Fixtures/README.md). Seconds on 2 cores.

The remedy, as docs/REMEDY.md defines it, applied to diffusers' StableDiffusionPipeline with attention
processors (every attn1 and attn2 layer) and prompt_embeds:

1. Text: the prompt is encoded (CLIP last layer), and so is, for each subject, the prompt with the other
   subjects' words removed ("a witch and a robot dancing" -> "a witch and a dancing"). The subject's token
   rows of the base context are replaced by the same tokens' rows of its own prompt.
2. Cross-attention (attn2), conditional CFG item only (diffusers' batch is [uncond, cond]): with the
   region label of each query pixel (1-based, first box holding the pixel centre, 0 = background) and the
   label of each base-context key (the subject whose token it is, else 0), logits of a subject's key are
   -inf for pixels outside its region; inside region r the attention output (before to_out) is
   0.8 * attention(q; own context r) + 0.2 * attention(q; masked base).
3. Self-attention (attn1), both CFG items: logits (i, j) are -inf where both pixels are labelled and the
   labels differ.
4. Bounded for the first ceil(until * E) evaluations (E = scheduler steps), then plain.

Stored per case: `latents` [E+1, 4, h, w] (initial, then after each step) and `final` [1, 4, h, w]; metadata:
prompt, subjects, boxes, seed, sampler, steps, guidance, width, height, until, stage.
Checks: with the remedy switched off the processors give the pipeline's own latents (the max |diff| is printed);
every softmax row sums to 1 (asserted); the remedy moves each case's final latent (printed).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import torch

torch.set_num_threads(2)
torch.use_deterministic_algorithms(True)

from diffusers import DDIMScheduler, EulerDiscreteScheduler, StableDiffusionPipeline  # noqa: E402
from diffusers.models.transformers.transformer_2d import Transformer2DModel  # noqa: E402
from f32_safetensors import to_np32, write_safetensors  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "Tests" / "Fixtures"
TINY_SD = FIXTURES / "tiny-sd"
OUT = FIXTURES / "remedy"

PROMPT = "photo of a witch and a robot dancing, contact improvisation"
SUBJECTS = ("witch", "robot")
SEED = 1887838105
BASE_BLEND = 0.2

CASES = {
    # name: (sampler, steps, width, height, boxes, until, stage)
    "ddim": ("ddim", 4, 64, 64, [[0, 0, 0.5, 1], [0.5, 0, 1, 1]], 1.0, "full"),
    "euler": ("euler", 4, 64, 64, [[0.05, 0.2, 0.45, 0.8], [0.55, 0.2, 0.95, 0.8]], 1.0, "full"),
    "wide-cross": ("euler", 3, 96, 64, [[0, 0, 0.5, 1], [0.5, 0, 1, 1]], 1.0, "cross"),
    "until": ("ddim", 4, 64, 64, [[0, 0, 0.5, 1], [0.5, 0, 1, 1]], 0.5, "full"),
}


def labels(boxes, h: int, w: int) -> torch.Tensor:
    """[h*w] int64: 1 + index of the first box holding each pixel centre, 0 for none."""
    out = torch.zeros(h * w, dtype=torch.int64)
    for y in range(h):
        cy = (y + 0.5) / h
        for x in range(w):
            cx = (x + 0.5) / w
            for r, b in enumerate(boxes):
                if b[0] <= cx < b[2] and b[1] <= cy < b[3]:
                    out[y * w + x] = r + 1
                    break
    return out


class State:
    def __init__(self, boxes, latent_hw, contexts, key_labels, stage):
        self.boxes, self.latent_hw, self.contexts, self.key_labels, self.stage = boxes, latent_hw, contexts, key_labels, stage
        self.active = True
        self.size: dict[str, tuple[int, int]] = {}   # transformer -> (h_l, w_l) of the current call

    def hook(self, name):
        def pre(module, args, kwargs):
            x = args[0] if args else kwargs["hidden_states"]
            self.size[name] = (int(x.shape[2]), int(x.shape[3]))
        return pre


def attend(attn, q, k, v, blocked=None):
    """Per-head softmax(q k^T / sqrt(d) [+ -inf where blocked]) v; q [B, N, C], k/v [B, T, C] -> [B, N, C]."""
    b, n, c = q.shape
    heads = attn.heads
    d = c // heads
    qh = q.reshape(b, n, heads, d).transpose(1, 2)                     # [B, H, N, d]
    kh = k.reshape(b, k.shape[1], heads, d).transpose(1, 2)            # [B, H, T, d]
    vh = v.reshape(b, v.shape[1], heads, d).transpose(1, 2)
    logits = qh @ kh.transpose(-1, -2) * (1 / math.sqrt(d))           # [B, H, N, T]
    if blocked is not None:
        logits = logits.masked_fill(blocked[None, None], float("-inf"))
    p = logits.softmax(-1)
    assert torch.allclose(p.double().sum(-1), torch.ones((), dtype=torch.float64), atol=1e-5)
    return (p @ vh).transpose(1, 2).reshape(b, n, c)                   # [B, N, C]


class RegionalProcessor:
    def __init__(self, state: State, transformer: str):
        self.state, self.transformer = state, transformer

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *a, **kw):
        assert attention_mask is None and hidden_states.ndim == 3
        st = self.state
        h_l, w_l = st.size[self.transformer]
        lab = labels(st.boxes, h_l, w_l)
        q = attn.to_q(hidden_states)
        if encoder_hidden_states is None:                              # attn1: self-attention
            k, v = attn.to_k(hidden_states), attn.to_v(hidden_states)
            blocked = None
            if st.active and st.stage == "full":
                blocked = (lab[:, None] != 0) & (lab[None, :] != 0) & (lab[:, None] != lab[None, :])
            out = attend(attn, q, k, v, blocked)
        else:                                                          # attn2: cross-attention
            ctx = encoder_hidden_states
            k, v = attn.to_k(ctx), attn.to_v(ctx)
            out = attend(attn, q, k, v)
            if st.active and st.stage in ("cross", "full"):
                cond = 1 if hidden_states.shape[0] == 2 else 0
                kl = st.key_labels
                blocked = (kl[None, :] != 0) & (kl[None, :] != lab[:, None])
                base = attend(attn, q[cond:cond + 1], k[cond:cond + 1], v[cond:cond + 1], blocked)[0]
                for r, own in enumerate(st.contexts):
                    rows = lab == r + 1
                    if rows.any():
                        a = attend(attn, q[cond:cond + 1], attn.to_k(own), attn.to_v(own))[0]
                        base[rows] = (1 - BASE_BLEND) * a[rows] + BASE_BLEND * base[rows]
                out = out.clone()
                out[cond] = base
        out = attn.to_out[0](out)
        return attn.to_out[1](out)


def own_prompt(prompt: str, i: int) -> str:
    p = prompt
    for j, other in enumerate(SUBJECTS):
        if j != i:
            p = re.sub(r"(?i)(?<![\w])" + re.escape(other) + r"(?![\w])", " ", p)
    return re.sub(r"\s+", " ", p).strip()


def positions(tok, prompt: str, word: str) -> list[int]:
    """Rows of the word's tokens in the prompt's 77-row conditioning (BOS at 0)."""
    ids = tok(prompt, padding="max_length", max_length=77, truncation=True).input_ids
    wid = tok(word, add_special_tokens=False).input_ids
    out = []
    for i in range(len(ids) - len(wid) + 1):
        if ids[i:i + len(wid)] == wid:
            out += range(i, i + len(wid))
    return out


@torch.no_grad()
def encode(pipe, prompt: str) -> torch.Tensor:
    ids = pipe.tokenizer(prompt, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    return pipe.text_encoder(ids)[0]                                   # [1, 77, D]


@torch.no_grad()
def run(pipe, sampler, steps, width, height, boxes, until, stage, remedy=True):
    # The folder's config is PNDM's, without `clip_sample`: DDIM would default to clipping x0 (SD 1.5's
    # own config says false, as Pareidolia runs it; see make_pipeline_fixtures.py).
    if sampler == "ddim":
        pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config, clip_sample=False)
    else:
        pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    tok = pipe.tokenizer
    base = encode(pipe, PROMPT).clone()
    contexts, key_labels = [], torch.zeros(77, dtype=torch.int64)
    for i, s in enumerate(SUBJECTS):
        own_text = own_prompt(PROMPT, i)
        own = encode(pipe, own_text)
        at, frm = positions(tok, PROMPT, s), positions(tok, own_text, s)
        assert len(at) == len(frm) > 0, (s, at, frm)
        base[0, at] = own[0, frm]
        key_labels[at] = i + 1
        contexts.append(own)
    negative = encode(pipe, "")
    h, w = height // 8, width // 8
    state = State(boxes, (h, w), contexts, key_labels, stage)
    handles = [m.register_forward_pre_hook(state.hook(n), with_kwargs=True)
               for n, m in pipe.unet.named_modules() if isinstance(m, Transformer2DModel)]
    default = dict(pipe.unet.attn_processors)
    pipe.unet.set_attn_processor({n: RegionalProcessor(state, n.split(".transformer_blocks.")[0]) for n in default})
    bounded = min(steps, max(1, math.ceil(until * steps)))
    state.active = remedy
    latents = []
    orig = pipe.prepare_latents

    def prepare(*a, **k):
        x = orig(*a, **k)
        latents.append(x.clone())
        return x

    def callback(p, i, t, kw):
        latents.append(kw["latents"].clone())
        state.active = remedy and i + 1 < bounded
        return {}

    pipe.prepare_latents = prepare
    try:
        out = pipe(prompt_embeds=base if remedy else encode(pipe, PROMPT), negative_prompt_embeds=negative,
                   height=height, width=width, num_inference_steps=steps, guidance_scale=7.5,
                   generator=torch.Generator("cpu").manual_seed(SEED), output_type="latent", callback_on_step_end=callback)
    finally:
        del pipe.prepare_latents
        for hd in handles:
            hd.remove()
        pipe.unet.set_attn_processor(default)
    return out.images, torch.cat(latents)


def main() -> None:
    pipe = StableDiffusionPipeline.from_pretrained(str(TINY_SD), safety_checker=None, requires_safety_checker=False,
                                                   local_files_only=True)
    pipe.to(torch.float32)
    pipe.set_progress_bar_config(disable=True)
    OUT.mkdir(parents=True, exist_ok=True)
    # The processors with the remedy off are the pipeline itself.
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    plain_default = pipe(prompt=PROMPT, height=64, width=64, num_inference_steps=3, guidance_scale=7.5,
                         generator=torch.Generator("cpu").manual_seed(SEED), output_type="latent").images
    plain_ours, _ = run(pipe, "euler", 3, 64, 64, CASES["ddim"][4], 1.0, "full", remedy=False)
    print("remedy off vs pipeline: max |diff|", float((plain_ours - plain_default).abs().max()))
    for name, (sampler, steps, width, height, boxes, until, stage) in CASES.items():
        final, latents = run(pipe, sampler, steps, width, height, boxes, until, stage)
        plain, _ = run(pipe, sampler, steps, width, height, boxes, until, stage, remedy=False)
        meta = {"prompt": PROMPT, "subjects": ",".join(SUBJECTS), "boxes": json.dumps(boxes), "seed": str(SEED),
                "sampler": sampler, "steps": str(steps), "guidance": "7.5", "width": str(width), "height": str(height),
                "until": str(until), "stage": stage, "base_blend": str(BASE_BLEND),
                "generator": "Tools/reference/make_remedy_fixtures.py"}
        write_safetensors(OUT / f"{name}.safetensors", {"latents": to_np32(latents), "final": to_np32(final)}, meta)
        print(f"{name}: {sampler} {steps} steps {width}x{height} {stage} until {until}: remedy moved the final latent by "
              f"{float((final - plain).abs().max()):.4f} (max |diff|)")


if __name__ == "__main__":
    main()
