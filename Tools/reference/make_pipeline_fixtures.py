#!/usr/bin/env python3
"""Whole-pipeline goldens for Pareidolia: diffusers' StableDiffusionPipeline on Tests/Fixtures/tiny-sd.

Usage (from the repository root):

    /work/venv/bin/python Tools/reference/make_pipeline_fixtures.py

Writes Tests/Fixtures/pipeline/ (19 files, about 2.9 MB; documented key by key in Tests/Fixtures/README.md,
section P):

    <sampler>.safetensors            one txt2img run per scheduler (8 schedulers)
    euler_a_negative, ddim_negative  the same with a negative prompt
    ddim_noguidance                  guidance 1.0 (diffusers then skips classifier-free guidance)
    ddim_philox, dpmpp_2m_philox     initial noise from a numpy port of A1111's rng_philox.py (CUDA randn)
    euler_weighted, euler_long       A1111 prompt emphasis / 75-token chunking applied to diffusers'
                                     text encoder, fed to the pipeline as prompt_embeds
    euler_embeddings                 A1111 textual-inversion rule (three embedding files, also written here:
                                     corajr.pt, winniecat.bin, kokocat.safetensors)

Everything runs on the CPU in float32 from `StableDiffusionPipeline.from_pretrained("Tests/Fixtures/tiny-sd",
safety_checker=None)`, with the Python stack pinned in Tools/reference/requirements.txt.

Determinism: torch is pinned to 2 threads with deterministic algorithms (fixed float reduction order);
every random draw comes from an explicitly seeded torch.Generator("cpu") (or the Philox port); the
safetensors files are written by `write_safetensors` below (tensors in sorted key order, header JSON with
sorted keys, no timestamps); the torch .pt/.bin files go through `torch_save_deterministic` (torch.save's
zip with the random half of `.data/serialization_id` zeroed, as Tools/reference/make_fixtures.py does).
Running the script twice gives byte-identical files (checked with sha256sum). Float32 goldens can differ
in the last bits on a CPU with other SIMD kernels.

The script also checks that the references are self-consistent (see `main`): callback counts, the
initial latent against a re-drawn one, euler_a's step noise against a re-drawn sequence, the image
conversion against the pipeline's own PIL output, the A1111 prompt code with weights 1 against the
pipeline's encode_prompt (bit-exact), the prompt_embeds path against the prompt path (bit-exact), the
textual-inversion encoding against diffusers' own load_textual_inversion, and the Philox port against
torch CUDA values recorded on a GPU (../shared/data/torch_cuda_randn.safetensors, when present).
"""

from __future__ import annotations

import functools
import io
import json
import inspect
import re
import struct
import sys
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(2)
torch.use_deterministic_algorithms(True)

import diffusers  # noqa: E402
import transformers  # noqa: E402
from diffusers import (  # noqa: E402
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    LMSDiscreteScheduler,
    PNDMScheduler,
    StableDiffusionPipeline,
)
from diffusers.utils import logging as diffusers_logging  # noqa: E402
from diffusers.utils.torch_utils import randn_tensor  # noqa: E402
from torchzip import pin_torch_zip_serialization_id  # noqa: E402 (this folder is on sys.path)
from f32_safetensors import to_np32, write_safetensors  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "Tests" / "Fixtures"
TINY_SD = FIXTURES / "tiny-sd"
OUT = FIXTURES / "pipeline"
CUDA_RANDN = REPO.parent / "shared" / "data" / "torch_cuda_randn.safetensors"
GENERATOR_NOTE = "Tools/reference/make_pipeline_fixtures.py"

PROMPT = "a burning cyborg skiing down a blue wireframe mountain at top speed, octane render, 8k"
NEGATIVE = "blurry, low quality, watermark"
SEED = 1887838105
HEIGHT, WIDTH = 64, 96          # latent 8 x 12 (tiny-sd's UNet needs latent sides divisible by 4)
STEPS = 6
GUIDANCE = 7.5

WEIGHTED_PROMPT = ("beautiful and striking professional portrait of smiling coralex holding their two cats "
                   "winnieko, a Siberian tabby cat with (pale green eyes:1.1) and a white cat looking "
                   "((serious)), [blurry]")
STORY_LONGEST = ("beautiful and lively portrait of smiling couple coralex with their two cats winnieko, a "
                 "Siberian tabby cat looking angry, a white cat looking serious, oil on canvas, painting with "
                 "round lines and delicate brushwork, cozy, inviting, sketchy trees with Christmas lights in "
                 "background")
LONG_PROMPT = STORY_LONGEST + ", " + STORY_LONGEST
LONG_NEGATIVE = "blurry"
TI_PROMPT = "professional photo of corajr and <winniecat> with kokocat, forest in the background"

# name -> (scheduler class, extra from_config kwargs). All start from the folder's SD 1.5 scheduler config.
# ddim: the folder's config is PNDM's, which has no `clip_sample` entry, so DDIMScheduler.from_config would
# fall back to its own default clip_sample=True; real SD 1.5 folders carry "clip_sample": false (and
# from_config passes it through), so it is set explicitly here.
SAMPLERS: dict[str, tuple[type, dict]] = {
    "pndm": (PNDMScheduler, {"skip_prk_steps": True}),
    "ddim": (DDIMScheduler, {"clip_sample": False}),
    "euler": (EulerDiscreteScheduler, {}),
    "euler_a": (EulerAncestralDiscreteScheduler, {}),
    "dpmpp_2m": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "dpmpp_2m_karras": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2,
                                                      "use_karras_sigmas": True}),
    "lms": (LMSDiscreteScheduler, {}),
    "heun": (HeunDiscreteScheduler, {}),
}
ETA = {"ddim": 0.0}   # passed to the pipeline (only DDIM reads it)

LATENT_SHAPE = (1, 4, HEIGHT // 8, WIDTH // 8)


# ============================================================================
# 1. Deterministic writers
# ============================================================================


def torch_save_deterministic(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, str(path))
    pin_torch_zip_serialization_id(path)


def seeded_randn(name: str, *shape: int) -> torch.Tensor:
    """float32 randn from a generator seeded with CRC-32 of `name` (make_fixtures.py's convention)."""
    g = torch.Generator("cpu").manual_seed(zlib.crc32(name.encode("utf-8")))
    return torch.randn(*shape, generator=g, dtype=torch.float32)


def mj(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# ============================================================================
# 2. Philox4x32-10: numpy port of A1111 modules/rng_philox.py (torch CUDA randn emulation)
# ============================================================================

PHILOX_M = (np.uint64(0xD2511F53), np.uint64(0xCD9E8D57))
PHILOX_W = (np.uint32(0x9E3779B9), np.uint32(0xBB67AE85))
# A1111 keeps these as float32 arrays; numpy promotes uint32 x float32 to float64, so Box-Muller runs in
# double with these float32-rounded constants. Written out explicitly so the numpy version does not matter.
TWO_POW32_INV = np.float64(np.float32(2.3283064e-10))
TWO_POW32_INV_2PI = np.float64(np.float32(2.3283064e-10 * 6.2831855))


def philox_randn(seed: int, shape: tuple[int, ...], offset: int = 0) -> np.ndarray:
    """n = prod(shape) standard normals; element i uses counter (offset, 0, i, 0) and key
    (seed & 0xffffffff, seed >> 32), 10 Philox rounds, then the sine branch of Box-Muller on the first
    two output words, in float64, rounded to float32. A1111's Generator uses offset 0 for its first
    randn call and increments it by one per call."""
    n = int(np.prod(shape))
    c0 = np.full(n, offset, dtype=np.uint32)
    c1 = np.zeros(n, dtype=np.uint32)
    c2 = np.arange(n, dtype=np.uint32)
    c3 = np.zeros(n, dtype=np.uint32)
    k0 = np.full(n, seed & 0xFFFFFFFF, dtype=np.uint32)
    k1 = np.full(n, (seed >> 32) & 0xFFFFFFFF, dtype=np.uint32)
    for r in range(10):
        p0 = c0.astype(np.uint64) * PHILOX_M[0]
        p1 = c2.astype(np.uint64) * PHILOX_M[1]
        hi0, lo0 = (p0 >> np.uint64(32)).astype(np.uint32), (p0 & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        hi1, lo1 = (p1 >> np.uint64(32)).astype(np.uint32), (p1 & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        if r < 9:
            k0 = k0 + PHILOX_W[0]      # uint32 wrap-around
            k1 = k1 + PHILOX_W[1]
    u = c0.astype(np.float64) * TWO_POW32_INV + TWO_POW32_INV / 2
    v = c1.astype(np.float64) * TWO_POW32_INV_2PI + TWO_POW32_INV_2PI / 2
    z = np.sqrt(-2.0 * np.log(u)) * np.sin(v)
    return z.astype(np.float32).reshape(shape)


def check_philox() -> dict[str, object]:
    """Compare the port with A1111's docstring values and the GPU-recorded torch CUDA values."""
    doc = np.array([[-0.92466259, -0.42534415, -2.6438457, 0.14518388],
                    [-0.12086647, -0.57972564, -0.62285122, -0.32838709],
                    [-1.07454231, -0.36314407, -1.67105067, 2.26550497]])
    doc_diff = float(np.abs(philox_randn(0, (3, 4)) - doc).max())
    assert doc_diff < 1e-6, doc_diff
    result: dict[str, object] = {"a1111_docstring_max_abs_diff": doc_diff}
    if not CUDA_RANDN.exists():
        print(f"   {CUDA_RANDN} not found: Philox port checked against A1111's docstring only "
              f"(max |diff| {doc_diff:.2e})")
        result["cuda"] = "not checked (recorded values absent)"
        return result
    from safetensors import safe_open
    worst, worst_key, n_values, per_key = 0.0, "", 0, {}
    with safe_open(str(CUDA_RANDN), "np") as f:
        for key in sorted(f.keys()):
            seed_s, shape_s, which = key.split("/")
            shape = tuple(int(x) for x in shape_s.split("x"))
            offset = {"first": 0, "second": 1}[which]
            ref = f.get_tensor(key)
            got = philox_randn(int(seed_s), shape, offset)
            d = float(np.abs(got.astype(np.float64) - ref.astype(np.float64)).max())
            per_key[key] = d
            n_values += ref.size
            if d > worst:
                worst, worst_key = d, key
    assert worst < 1e-4, (worst, worst_key)
    result.update({"cuda_max_abs_diff": worst, "cuda_worst_key": worst_key, "cuda_values": n_values,
                   "cuda_keys": len(per_key)})
    print(f"   Philox port vs torch CUDA ({len(per_key)} keys, {n_values} values): max |diff| {worst:.3e} "
          f"({worst_key}); vs A1111 docstring {doc_diff:.2e}")
    for k in ("1887838105/1x4x8x8/first", "1887838105/1x4x12x8/first", "1887838105/1x4x8x8/second"):
        if k in per_key:
            print(f"      {k}: {per_key[k]:.3e}")
    return result


# ============================================================================
# 3. A1111 prompt handling (modules/prompt_parser.py, sd_hijack_clip.py, sd_emphasis.py,
#    textual_inversion.py, sd_hijack.EmbeddingsWithFixes), applied to diffusers' tokenizer/text encoder
# ============================================================================

RE_ATTENTION = re.compile(r"""
\\\(|
\\\)|
\\\[|
\\]|
\\\\|
\\|
\(|
\[|
:\s*([+-]?[.\d]+)\s*\)|
\)|
]|
[^\\()\[\]:]+|
:
""", re.X)
RE_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)


def parse_prompt_attention(text: str) -> list[list]:
    """A1111's parser: list of [text, weight]; ["BREAK", -1] marks a BREAK."""
    res: list[list] = []
    round_brackets: list[int] = []
    square_brackets: list[int] = []
    round_mult, square_mult = 1.1, 1 / 1.1

    def multiply_range(start, multiplier):
        for p in range(start, len(res)):
            res[p][1] *= multiplier

    for m in RE_ATTENTION.finditer(text):
        piece, weight = m.group(0), m.group(1)
        if piece.startswith("\\"):
            res.append([piece[1:], 1.0])
        elif piece == "(":
            round_brackets.append(len(res))
        elif piece == "[":
            square_brackets.append(len(res))
        elif weight is not None and round_brackets:
            multiply_range(round_brackets.pop(), float(weight))
        elif piece == ")" and round_brackets:
            multiply_range(round_brackets.pop(), round_mult)
        elif piece == "]" and square_brackets:
            multiply_range(square_brackets.pop(), square_mult)
        else:
            for i, part in enumerate(re.split(RE_BREAK, piece)):
                if i > 0:
                    res.append(["BREAK", -1])
                res.append([part, 1.0])
    for pos in round_brackets:
        multiply_range(pos, round_mult)
    for pos in square_brackets:
        multiply_range(pos, square_mult)
    if len(res) == 0:
        res = [["", 1.0]]
    i = 0
    while i + 1 < len(res):
        if res[i][1] == res[i + 1][1]:
            res[i][0] += res[i + 1][0]
            res.pop(i + 1)
        else:
            i += 1
    return res


def check_parser() -> None:
    got = parse_prompt_attention("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).")
    want = [["a ", 1.0], ["house", 1.5730000000000004], [" ", 1.1], ["on", 1.0], [" a ", 1.1], ["hill", 0.55],
            [", sun, ", 1.1], ["sky", 1.4641000000000006], [".", 1.1]]
    assert got == want, got
    assert parse_prompt_attention("normal text") == [["normal text", 1.0]]
    assert parse_prompt_attention("an (important) word") == [["an ", 1.0], ["important", 1.1], [" word", 1.0]]
    assert parse_prompt_attention("(unbalanced") == [["unbalanced", 1.1]]
    assert parse_prompt_attention("\\(literal\\]") == [["(literal]", 1.0]]
    assert parse_prompt_attention("(unnecessary)(parens)") == [["unnecessaryparens", 1.1]]
    assert parse_prompt_attention("a (b : 1.5 ) c") == [["a ", 1.0], ["b ", 1.5], [" c", 1.0]]
    assert parse_prompt_attention("a BREAK b") == [["a", 1.0], ["BREAK", -1], ["b", 1.0]]
    assert parse_prompt_attention("") == [["", 1.0]]


class Embedding:
    def __init__(self, name: str, vec: torch.Tensor, source: str):
        self.name = name          # the trigger text
        self.vec = vec            # [n, hidden] float32
        self.source = source

    @property
    def vectors(self) -> int:
        return int(self.vec.shape[0])


class EmbeddingDatabase:
    """A1111's lookup: the trigger is tokenised (no BOS/EOS); candidates are keyed by their first id and
    tried longest first."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.ids_lookup: dict[int, list] = {}

    def register(self, emb: Embedding) -> list[int]:
        ids = self.tokenizer([emb.name], truncation=False, add_special_tokens=False)["input_ids"][0]
        lst = self.ids_lookup.setdefault(ids[0], [])
        self.ids_lookup[ids[0]] = sorted(lst + [(ids, emb)], key=lambda x: len(x[0]), reverse=True)
        return ids

    def find_embedding_at_position(self, tokens, offset):
        for ids, emb in self.ids_lookup.get(tokens[offset], []):
            if tokens[offset:offset + len(ids)] == ids:
                return emb, len(ids)
        return None, None


class Chunk:
    def __init__(self):
        self.tokens: list[int] = []
        self.multipliers: list[float] = []
        self.fixes: list[tuple[int, Embedding]] = []   # (offset before BOS, embedding)


class A1111TextEncoder:
    """FrozenCLIPEmbedderWithCustomWords on top of diffusers' tokenizer + CLIPTextModel, "Original"
    emphasis, comma_padding_backtrack 20, CLIP skip 1."""

    chunk_length = 75
    comma_padding_backtrack = 20

    def __init__(self, pipe, embedding_db: EmbeddingDatabase | None = None):
        self.tokenizer = pipe.tokenizer
        self.text_encoder = pipe.text_encoder
        self.id_start = self.tokenizer.bos_token_id
        self.id_end = self.tokenizer.eos_token_id
        self.comma_token = self.tokenizer.get_vocab()[",</w>"]
        self.db = embedding_db
        assert (self.id_start, self.id_end, self.comma_token) == (49406, 49407, 267)

    def tokenize(self, texts):
        return self.tokenizer(texts, truncation=False, add_special_tokens=False)["input_ids"]

    def tokenize_line(self, line: str) -> list[Chunk]:
        parsed = parse_prompt_attention(line)
        tokenized = self.tokenize([text for text, _ in parsed])
        chunks: list[Chunk] = []
        chunk = Chunk()
        last_comma = -1

        def next_chunk():
            nonlocal chunk, last_comma
            to_add = self.chunk_length - len(chunk.tokens)
            if to_add > 0:
                chunk.tokens += [self.id_end] * to_add
                chunk.multipliers += [1.0] * to_add
            chunk.tokens = [self.id_start] + chunk.tokens + [self.id_end]
            chunk.multipliers = [1.0] + chunk.multipliers + [1.0]
            last_comma = -1
            chunks.append(chunk)
            chunk = Chunk()

        for tokens, (text, weight) in zip(tokenized, parsed):
            if text == "BREAK" and weight == -1:
                next_chunk()
                continue
            position = 0
            while position < len(tokens):
                token = tokens[position]
                if token == self.comma_token:
                    last_comma = len(chunk.tokens)
                elif (self.comma_padding_backtrack != 0 and len(chunk.tokens) == self.chunk_length
                      and last_comma != -1 and len(chunk.tokens) - last_comma <= self.comma_padding_backtrack):
                    break_location = last_comma + 1
                    reloc_tokens = chunk.tokens[break_location:]
                    reloc_mults = chunk.multipliers[break_location:]
                    chunk.tokens = chunk.tokens[:break_location]
                    chunk.multipliers = chunk.multipliers[:break_location]
                    next_chunk()
                    chunk.tokens = reloc_tokens
                    chunk.multipliers = reloc_mults
                if len(chunk.tokens) == self.chunk_length:
                    next_chunk()
                emb, emb_len_tokens = (self.db.find_embedding_at_position(tokens, position)
                                       if self.db is not None else (None, None))
                if emb is None:
                    chunk.tokens.append(token)
                    chunk.multipliers.append(weight)
                    position += 1
                    continue
                n = emb.vectors
                if len(chunk.tokens) + n > self.chunk_length:
                    next_chunk()
                chunk.fixes.append((len(chunk.tokens), emb))
                chunk.tokens += [0] * n
                chunk.multipliers += [weight] * n
                position += emb_len_tokens
        if chunk.tokens or not chunks:
            next_chunk()
        return chunks

    def encode_chunk(self, chunk: Chunk) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (z after emphasis [1, 77, C], token embeddings after the TI overwrite [1, 77, C])."""
        ids = torch.tensor([chunk.tokens], dtype=torch.long)
        captured = {}

        def hook(module, inputs, output):
            # sd_hijack.EmbeddingsWithFixes: overwrite rows offset+1 ... offset+n (after BOS) of the token
            # embeddings, before the position embeddings are added.
            tensor = output[0]
            for offset, emb in chunk.fixes:
                vec = emb.vec.to(tensor.dtype)
                n = min(tensor.shape[0] - offset - 1, vec.shape[0])
                tensor = torch.cat([tensor[0:offset + 1], vec[0:n], tensor[offset + 1 + n:]])
            out = tensor[None]
            captured["inputs_embeds"] = out.clone()
            return out

        handle = self.text_encoder.embeddings.token_embedding.register_forward_hook(hook)
        try:
            z = self.text_encoder(ids)[0]
        finally:
            handle.remove()
        # sd_emphasis.EmphasisOriginal
        multipliers = torch.asarray([chunk.multipliers])     # python floats -> float32, as A1111
        original_mean = z.mean()
        z = z * multipliers.reshape(multipliers.shape + (1,)).expand(z.shape)
        new_mean = z.mean()
        z = z * (original_mean / new_mean)
        return z, captured["inputs_embeds"]

    def encode(self, line: str) -> dict[str, torch.Tensor | list]:
        chunks = self.tokenize_line(line)
        zs, embeds = zip(*(self.encode_chunk(c) for c in chunks))
        return {"z": torch.hstack(zs), "inputs_embeds": torch.hstack(embeds), "chunks": chunks,
                "ids": torch.tensor([c.tokens for c in chunks], dtype=torch.float32),
                "weights": torch.tensor([c.multipliers for c in chunks], dtype=torch.float32)}


def pad_with_empty(z: torch.Tensor, n_chunks: int, empty: torch.Tensor) -> torch.Tensor:
    """A1111's pad_cond_uncond: append encoded-empty-prompt chunks until n_chunks chunks."""
    have = z.shape[1] // 77
    assert z.shape[1] == 77 * have and have <= n_chunks
    return torch.cat([z] + [empty] * (n_chunks - have), dim=1)


# ============================================================================
# 4. Running the pipeline with recording
# ============================================================================


def load_pipeline() -> StableDiffusionPipeline:
    pipe = StableDiffusionPipeline.from_pretrained(str(TINY_SD), safety_checker=None, requires_safety_checker=False,
                                                   local_files_only=True)
    pipe.to(torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def to_u8_like_diffusers(image: torch.Tensor) -> np.ndarray:
    """VaeImageProcessor.postprocess(output_type="pil") up to the uint8 array: denormalize
    (x * 0.5 + 0.5).clamp(0, 1) in torch float32, pt_to_numpy (NHWC float32), then numpy_to_pil's
    (images * 255).round().astype("uint8") (numpy round = half to even). Returned NCHW."""
    x = (image * 0.5 + 0.5).clamp(0, 1)
    x = x.cpu().permute(0, 2, 3, 1).float().numpy()
    u8 = (x * 255).round().astype("uint8")
    return u8.transpose(0, 3, 1, 2)


class Recorder:
    """Records one pipeline run: the initial latent (output of prepare_latents), every scheduler.step
    input (guided noise prediction) and output, callback_on_step_end calls, and every randn_tensor draw
    made by the pipeline or the scheduler."""

    def __init__(self, pipe, scheduler_module):
        self.pipe = pipe
        self.scheduler_module = scheduler_module
        self.initial = None
        self.callback_latents: list[torch.Tensor] = []
        self.callback_t: list[float] = []
        self.callback_i: list[int] = []
        self.eps: list[torch.Tensor] = []
        self.model_t: list[float] = []
        self.draws: list[tuple[str, torch.Tensor]] = []
        self.step_kwargs: list[list[str]] = []

    def callback(self, pipe, i, t, kwargs):
        self.callback_i.append(int(i))
        self.callback_t.append(float(t))
        self.callback_latents.append(kwargs["latents"].detach().clone())
        return {}

    def __enter__(self):
        pipe, rec = self.pipe, self
        orig_prepare = pipe.prepare_latents

        def prepare_latents(*a, **k):
            out = orig_prepare(*a, **k)
            rec.initial = out.detach().clone()
            return out

        sched = pipe.scheduler
        orig_step = sched.step

        # functools.wraps matters: the pipeline inspects the signature of scheduler.step to decide whether
        # to pass `generator` and `eta` (prepare_extra_step_kwargs); a bare (*a, **k) wrapper would make it
        # drop them and the ancestral noise would come from torch's global RNG.
        @functools.wraps(orig_step)
        def step(model_output, timestep, sample, *a, **k):
            rec.eps.append(model_output.detach().clone())
            rec.model_t.append(float(timestep))
            rec.step_kwargs.append(sorted(k))
            return orig_step(model_output, timestep, sample, *a, **k)

        def wrap_randn(where):
            def _randn(*a, **k):
                out = randn_tensor(*a, **k)
                rec.draws.append((where, out.detach().clone()))
                return out
            return _randn

        import diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion as psd
        self._restore = [(pipe, "prepare_latents", None), (sched, "step", None),
                         (psd, "randn_tensor", psd.randn_tensor),
                         (self.scheduler_module, "randn_tensor", getattr(self.scheduler_module, "randn_tensor", None))]
        pipe.prepare_latents = prepare_latents
        sched.step = step
        psd.randn_tensor = wrap_randn("pipeline")
        if hasattr(self.scheduler_module, "randn_tensor"):
            self.scheduler_module.randn_tensor = wrap_randn("scheduler")
        return self

    def __exit__(self, *exc):
        for obj, attr, old in self._restore:
            if old is None:
                if attr in vars(obj):
                    delattr(obj, attr)
            else:
                setattr(obj, attr, old)
        return False


def make_scheduler(pipe, sampler: str):
    cls, extra = SAMPLERS[sampler]
    return cls.from_config(pipe.scheduler.config, **extra)


def run(pipe, base_config, sampler: str, *, prompt=None, negative_prompt=None, prompt_embeds=None,
        negative_prompt_embeds=None, guidance=GUIDANCE, latents=None) -> tuple[dict, dict]:
    """One txt2img run with output_type="latent"; returns (tensors, metadata)."""
    cls, extra = SAMPLERS[sampler]
    scheduler = cls.from_config(base_config, **extra)
    pipe.scheduler = scheduler
    module = sys.modules[cls.__module__]
    generator = torch.Generator("cpu").manual_seed(SEED)
    kwargs = dict(height=HEIGHT, width=WIDTH, num_inference_steps=STEPS, guidance_scale=guidance,
                  generator=generator, output_type="latent")
    if sampler in ETA:
        kwargs["eta"] = ETA[sampler]
    if prompt_embeds is not None:
        kwargs.update(prompt_embeds=prompt_embeds, negative_prompt_embeds=negative_prompt_embeds)
    else:
        kwargs.update(prompt=prompt, negative_prompt=negative_prompt)
    if latents is not None:
        kwargs["latents"] = latents
    with Recorder(pipe, module) as rec:
        out = pipe(callback_on_step_end=rec.callback, **kwargs)
    final = out.images
    timesteps = scheduler.timesteps.detach().to(torch.float32).clone()
    E = len(rec.callback_latents)

    # --- self-consistency of the recording
    assert E == len(timesteps) == len(rec.eps), (sampler, E, len(timesteps), len(rec.eps))
    assert rec.callback_i == list(range(E))
    assert torch.equal(torch.tensor(rec.callback_t, dtype=torch.float32), timesteps)
    assert rec.model_t == rec.callback_t
    assert torch.equal(final, rec.callback_latents[-1])
    accepted = set(inspect.signature(cls.step).parameters)
    expected_kwargs = sorted(["return_dict"] + [k for k in ("generator", "eta") if k in accepted])
    assert all(k == expected_kwargs for k in rec.step_kwargs), (sampler, rec.step_kwargs[0])
    init_sigma = scheduler.init_noise_sigma
    init_sigma_f = float(init_sigma)
    if latents is None:
        redraw = randn_tensor(LATENT_SHAPE, generator=torch.Generator("cpu").manual_seed(SEED),
                              dtype=torch.float32)
        assert torch.equal(rec.initial, redraw * init_sigma), sampler
        assert rec.draws and rec.draws[0][0] == "pipeline" and torch.equal(rec.draws[0][1], redraw)
        step_draws = [d for w, d in rec.draws[1:]]
    else:
        assert torch.equal(rec.initial, latents * init_sigma), sampler
        step_draws = [d for w, d in rec.draws]
    assert all(w == "scheduler" for w, _ in rec.draws[(0 if latents is not None else 1):])

    with torch.no_grad():
        image = pipe.vae.decode(final / pipe.vae.config.scaling_factor, return_dict=False)[0]
    image_u8 = to_u8_like_diffusers(image)

    tensors = {
        "initial": rec.initial,
        "latents": torch.stack([rec.initial] + rec.callback_latents),
        "timesteps": timesteps,
        "eps": torch.stack(rec.eps),
        "final": final,
        "image": image,
        "image_u8": image_u8.astype(np.float32),
    }
    if hasattr(scheduler, "sigmas") and sampler != "ddim" and sampler != "pndm":
        tensors["sigmas"] = scheduler.sigmas.detach().to(torch.float32).clone()
    if step_draws:
        tensors["step_noise"] = torch.stack(step_draws)
    cfg = {k: v for k, v in scheduler.config.items() if not k.startswith("_")}
    meta = {
        "sampler": sampler,
        "scheduler_class": cls.__name__,
        "scheduler_from_config_extra": mj(extra),
        "scheduler_config": mj(cfg),
        "prompt": prompt if prompt is not None else "",
        "negative_prompt": negative_prompt if negative_prompt is not None else "",
        "prompt_source": "prompt string" if prompt_embeds is None else "prompt_embeds/negative_prompt_embeds",
        "seed": str(SEED),
        "generator": "torch.Generator('cpu').manual_seed(seed), passed to the pipeline"
                     + (" (initial latent given via latents=noise)" if latents is not None else ""),
        "steps": str(STEPS),
        "guidance_scale": repr(float(guidance)),
        "classifier_free_guidance": str(bool(guidance > 1)).lower(),
        "height": str(HEIGHT), "width": str(WIDTH),
        "latent_shape": mj(list(LATENT_SHAPE)),
        "init_noise_sigma": repr(init_sigma_f),
        "unet_evaluations": str(E),
        "timesteps_list": mj([float(x) for x in timesteps.tolist()]),
        "eta": repr(ETA.get(sampler, 0.0)),
        "vae_scaling_factor": repr(float(pipe.vae.config.scaling_factor)),
        "step_noise_draws": str(len(step_draws)),
    }
    return tensors, meta


COMMON_META = {
    "generator_script": GENERATOR_NOTE,
    "model": "Tests/Fixtures/tiny-sd (random weights), StableDiffusionPipeline.from_pretrained, safety_checker=None, "
             "CPU, float32",
    "versions": mj({"torch": torch.__version__, "diffusers": diffusers.__version__,
                    "transformers": transformers.__version__, "numpy": np.__version__}),
    "keys": ("initial [1,4,8,12] = latent before the loop (randn x init_noise_sigma); "
             "latents [E+1,1,4,8,12] = initial then the latent after each UNet evaluation's scheduler.step "
             "(callback_on_step_end); timesteps [E] float32 = scheduler.timesteps (the t given to the UNet); "
             "eps [E,1,4,8,12] = the (guided) noise prediction passed to scheduler.step; final = latents[E]; "
             "image [1,3,64,96] = vae.decode(final / scaling_factor), unclamped; image_u8 [1,3,64,96] = "
             "round((image*0.5+0.5).clamp(0,1)*255) as diffusers' PIL output, stored as float32; "
             "sigmas = scheduler.sigmas (sigma-space schedulers); step_noise [K,1,4,8,12] = randn draws the "
             "scheduler made from the same generator, in order (euler_a)"),
}


def save_run(name: str, tensors: dict, meta: dict, extra_meta: dict | None = None) -> Path:
    path = OUT / f"{name}.safetensors"
    m = {**COMMON_META, **meta, **(extra_meta or {})}
    write_safetensors(path, tensors, m)
    return path


# ============================================================================
# 5. Textual-inversion embedding files
# ============================================================================


def make_embedding_files(hidden: int) -> dict[str, Path]:
    paths = {"corajr": OUT / "corajr.pt", "winniecat": OUT / "winniecat.bin", "kokocat": OUT / "kokocat.safetensors"}
    torch_save_deterministic({"string_to_token": {"*": 265},
                              "string_to_param": {"*": seeded_randn("pipeline.ti.corajr", 2, hidden)},
                              "name": "corajr", "step": 100, "sd_checkpoint": None, "sd_checkpoint_name": None},
                             paths["corajr"])
    torch_save_deterministic({"<winniecat>": seeded_randn("pipeline.ti.winniecat", hidden)}, paths["winniecat"])
    write_safetensors(paths["kokocat"], {"emb_params": seeded_randn("pipeline.ti.kokocat", 3, hidden)}, None)
    return paths


def load_embedding_a1111(path: Path) -> torch.Tensor:
    """A1111 create_embedding_from_data: string_to_param -> its single tensor; otherwise a single-entry dict
    of tensor ("diffusers concept", 1-D unsqueezed)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        data = load_file(str(path))
    else:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    if "string_to_param" in data:
        params = data["string_to_param"]
        assert len(params) == 1
        emb = next(iter(params.values()))
    else:
        assert len(data) == 1
        emb = next(iter(data.values()))
        if emb.ndim == 1:
            emb = emb.unsqueeze(0)
    return emb.detach().to(torch.float32)


# ============================================================================
# main
# ============================================================================


def main() -> None:
    t_start = time.time()
    diffusers_logging.set_verbosity_error()
    transformers.logging.set_verbosity_error()
    OUT.mkdir(parents=True, exist_ok=True)

    print("Philox port", flush=True)
    philox_info = check_philox()
    check_parser()

    pipe = load_pipeline()
    base_config = dict(pipe.scheduler.config)
    assert base_config["_class_name"] == "PNDMScheduler" and base_config["timestep_spacing"] == "leading"
    hidden = pipe.text_encoder.config.hidden_size
    written: list[Path] = []
    results: dict[str, dict] = {}

    # ---- 1. every scheduler
    print("1  schedulers", flush=True)
    for sampler in SAMPLERS:
        tensors, meta = run(pipe, base_config, sampler, prompt=PROMPT, negative_prompt="")
        results[sampler] = tensors
        written.append(save_run(sampler, tensors, meta))
        print(f"   {sampler:16s} E={int(meta['unet_evaluations']):2d} timesteps={meta['timesteps_list']} "
              f"init_sigma={float(meta['init_noise_sigma']):.4f} step_noise_draws={meta['step_noise_draws']}",
              flush=True)

    # euler_a: the scheduler's noise is the continuation of the initial latent's generator.
    g = torch.Generator("cpu").manual_seed(SEED)
    randn_tensor(LATENT_SHAPE, generator=g, dtype=torch.float32)
    redrawn = torch.stack([randn_tensor(LATENT_SHAPE, generator=g, dtype=torch.float32) for _ in range(STEPS)])
    assert torch.equal(results["euler_a"]["step_noise"], redrawn)
    for s in SAMPLERS:
        assert ("step_noise" in results[s]) == (s == "euler_a"), s

    # The image conversion and decode match the pipeline's own output_type="pil" path (euler_a: the decode
    # is also handed the generator, which must not matter).
    pipe.scheduler = make_scheduler(pipe, "euler_a")
    pil = pipe(PROMPT, negative_prompt="", height=HEIGHT, width=WIDTH, num_inference_steps=STEPS,
               guidance_scale=GUIDANCE, generator=torch.Generator("cpu").manual_seed(SEED), output_type="pil").images[0]
    pil_u8 = np.asarray(pil).transpose(2, 0, 1)[None].astype(np.float32)
    assert np.array_equal(pil_u8, results["euler_a"]["image_u8"]), "image_u8 differs from the pipeline's PIL"
    pt = pipe(PROMPT, negative_prompt="", height=HEIGHT, width=WIDTH, num_inference_steps=STEPS,
              guidance_scale=GUIDANCE, generator=torch.Generator("cpu").manual_seed(SEED), output_type="pt").images
    assert torch.equal(pt, (results["euler_a"]["image"] * 0.5 + 0.5).clamp(0, 1))

    # ---- 2. variants
    print("2  variants", flush=True)
    for sampler in ("euler_a", "ddim"):
        tensors, meta = run(pipe, base_config, sampler, prompt=PROMPT, negative_prompt=NEGATIVE)
        written.append(save_run(f"{sampler}_negative", tensors, meta))
    tensors, meta = run(pipe, base_config, "ddim", prompt=PROMPT, negative_prompt="", guidance=1.0)
    written.append(save_run("ddim_noguidance", tensors, meta,
                            {"note": "guidance_scale 1.0: do_classifier_free_guidance is false (it needs > 1), "
                                     "so the UNet runs once per step on the prompt only; the negative prompt is "
                                     "not encoded"}))
    # sanity: the negative prompt and the guidance setting change the result
    assert not torch.equal(tensors["final"], results["ddim"]["final"])

    # ---- 3. Philox initial noise
    print("3  philox", flush=True)
    noise = torch.from_numpy(philox_randn(SEED, LATENT_SHAPE, offset=0))
    for sampler in ("ddim", "dpmpp_2m"):
        # prepare_latents: a user-supplied `latents` is only moved to the device and then multiplied by
        # scheduler.init_noise_sigma like drawn noise, so pass the unscaled noise.
        tensors, meta = run(pipe, base_config, sampler, prompt=PROMPT, negative_prompt="", latents=noise)
        tensors["noise"] = noise
        assert "step_noise" not in tensors
        written.append(save_run(f"{sampler}_philox", tensors, meta, {
            "noise": "A1111 NV source (modules/rng_philox.py, numpy port in this script): Philox4x32-10, "
                     "counter (offset=0, 0, i, 0), key (seed & 0xffffffff, seed >> 32), Box-Muller sine branch "
                     "in float64 -> float32; = torch.randn(shape, generator=torch.Generator('cuda')"
                     ".manual_seed(seed)) on NVIDIA GPUs",
            "latents_argument": "pipe(latents=noise): prepare_latents multiplies it by init_noise_sigma",
            "philox_check": mj(philox_info)}))

    # ---- 4. A1111 prompt handling
    print("4  weighted / long prompts", flush=True)
    enc = A1111TextEncoder(pipe)
    # self-consistency: weights 1, one chunk == the pipeline's encode_prompt, bit for bit
    with torch.no_grad():
        for text in (PROMPT, "", NEGATIVE):
            ref, _ = pipe.encode_prompt(text, "cpu", 1, False)
            mine = enc.encode(text)
            assert mine["z"].shape == (1, 77, hidden) and torch.equal(mine["z"], ref), text
        empty = enc.encode("")["z"]
        # the prompt_embeds path equals the prompt path, bit for bit
        cond = enc.encode(PROMPT)["z"]
    tensors, _ = run(pipe, base_config, "euler", prompt_embeds=cond, negative_prompt_embeds=empty)
    assert torch.equal(tensors["final"], results["euler"]["final"])
    assert torch.equal(tensors["image"], results["euler"]["image"])

    for name, prompt, negative in (("euler_weighted", WEIGHTED_PROMPT, ""),
                                   ("euler_long", LONG_PROMPT, LONG_NEGATIVE)):
        with torch.no_grad():
            c = enc.encode(prompt)
            u = enc.encode(negative)
        n = max(c["ids"].shape[0], u["ids"].shape[0])
        cond = pad_with_empty(c["z"], n, empty)
        uncond = pad_with_empty(u["z"], n, empty)
        tensors, meta = run(pipe, base_config, "euler", prompt_embeds=cond, negative_prompt_embeds=uncond)
        tensors.update({"cond": cond, "uncond": uncond, "cond_ids": c["ids"], "cond_weights": c["weights"],
                        "uncond_ids": u["ids"], "uncond_weights": u["weights"]})
        meta["prompt"], meta["negative_prompt"] = prompt, negative
        parsed = parse_prompt_attention(prompt)
        written.append(save_run(name, tensors, meta, {
            "prompt_rule": "A1111 (modules/prompt_parser.parse_prompt_attention, sd_hijack_clip.tokenize_line: "
                           "75-token chunks, BREAK, comma_padding_backtrack 20; each chunk [BOS]+75+[EOS] padded "
                           "with 49407, encoded by pipe.text_encoder (last_hidden_state, CLIP skip 1); "
                           "Emphasis 'Original' per chunk: z *= w[:,None]; z *= mean(z_before)/mean(z_after); "
                           "chunks concatenated along the sequence; the shorter of cond/uncond padded with "
                           "the encoded empty prompt (A1111 pad_cond_uncond)",
            "parsed": mj(parsed),
            "chunks": str(c["ids"].shape[0]),
            "uncond_chunks_before_padding": str(u["ids"].shape[0]),
            "extra_keys": "cond [1,77k,32], uncond [1,77k,32] = the prompt_embeds/negative_prompt_embeds given to "
                          "the pipeline; cond_ids/uncond_ids [chunks,77] token ids as float32; "
                          "cond_weights/uncond_weights [chunks,77] multipliers (float32)",
        }))
        print(f"   {name}: {c['ids'].shape[0]} cond chunk(s), {u['ids'].shape[0]} uncond chunk(s) before padding; "
              f"parsed {len(parsed)} pieces", flush=True)
        if name == "euler_weighted":
            assert c["ids"].shape[0] == 1 and sorted(set(c["weights"].flatten().tolist())) != [1.0]
        else:
            assert c["ids"].shape[0] == 2 and u["ids"].shape[0] == 1

    # ---- 5. textual inversion
    print("5  textual inversion", flush=True)
    paths = make_embedding_files(hidden)
    db = EmbeddingDatabase(pipe.tokenizer)
    triggers = {"corajr": "corajr", "winniecat": "<winniecat>", "kokocat": "kokocat"}
    trigger_ids = {}
    for key, path in paths.items():
        emb = Embedding(triggers[key], load_embedding_a1111(path), path.name)
        trigger_ids[triggers[key]] = db.register(emb)
    ti_enc = A1111TextEncoder(pipe, db)
    with torch.no_grad():
        c = ti_enc.encode(TI_PROMPT)
    assert c["ids"].shape[0] == 1
    chunk = c["chunks"][0]
    fixes = [{"trigger": e.name, "file": e.source, "vectors": e.vectors, "rows": [off + 1, off + 1 + e.vectors]}
             for off, e in chunk.fixes]
    assert [f["trigger"] for f in fixes] == ["corajr", "<winniecat>", "kokocat"]
    for off, e in chunk.fixes:
        assert torch.equal(c["inputs_embeds"][0, off + 1:off + 1 + e.vectors], e.vec)
    # rows without a fix are the plain token embeddings
    plain = pipe.text_encoder.embeddings.token_embedding(torch.tensor([chunk.tokens]))
    mask = torch.ones(77, dtype=torch.bool)
    for off, e in chunk.fixes:
        mask[off + 1:off + 1 + e.vectors] = False
    assert torch.equal(c["inputs_embeds"][0, mask], plain[0, mask])

    # cross-check with diffusers' own textual-inversion loader (separate pipeline: it adds tokens)
    pipe2 = load_pipeline()
    pipe2.load_textual_inversion(str(paths["corajr"]), token="corajr")
    pipe2.load_textual_inversion(str(paths["winniecat"]))
    pipe2.load_textual_inversion(str(paths["kokocat"]), token="kokocat")
    with torch.no_grad():
        ref, _ = pipe2.encode_prompt(TI_PROMPT, "cpu", 1, False)
    ti_diff = float((ref - c["z"]).abs().max())
    print(f"   A1111-rule cond vs diffusers load_textual_inversion encode_prompt: max |diff| {ti_diff:.3e}",
          flush=True)
    assert ti_diff < 1e-5, ti_diff
    del pipe2

    uncond = empty
    tensors, meta = run(pipe, base_config, "euler", prompt_embeds=c["z"], negative_prompt_embeds=uncond)
    tensors.update({"cond": c["z"], "uncond": uncond, "cond_ids": c["ids"], "cond_weights": c["weights"],
                    "cond_token_embeds": c["inputs_embeds"]})
    meta["prompt"], meta["negative_prompt"] = TI_PROMPT, ""
    written.append(save_run("euler_embeddings", tensors, meta, {
        "prompt_rule": "A1111 textual inversion: the trigger's token ids (tokenised without BOS/EOS) are replaced by "
                       "n placeholder ids 0; the token-embedding rows at those positions (row = chunk offset + 1, "
                       "after BOS) are overwritten with the n vectors before the position embeddings are added "
                       "(sd_hijack.EmbeddingsWithFixes, here a forward hook on text_encoder.embeddings."
                       "token_embedding); then the text encoder and emphasis as usual",
        "embeddings": mj(fixes),
        "trigger_token_ids": mj(trigger_ids),
        "embedding_files": mj({k: f"Tests/Fixtures/pipeline/{p.name}" for k, p in paths.items()}),
        "diffusers_load_textual_inversion_max_abs_diff": repr(ti_diff),
        "extra_keys": "cond [1,77,32] (= prompt_embeds), uncond [1,77,32] (encoded empty prompt), cond_ids [1,77] "
                      "(float32; placeholder positions hold 0 as in A1111), cond_weights [1,77], "
                      "cond_token_embeds [1,77,32] = token embeddings after the overwrite, before position "
                      "embeddings",
    }))
    written += list(paths.values())

    total = 0
    print("files:")
    for p in sorted(set(written)):
        size = p.stat().st_size
        total += size
        print(f"   {p.relative_to(REPO)}  {size:,} bytes")
    print(f"total {total:,} bytes; {time.time() - t_start:.1f} s")


if __name__ == "__main__":
    main()
