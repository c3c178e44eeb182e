#!/usr/bin/env python3
"""Reference-fixture generator for Pareidolia's test suite.

Usage (from the repository root):

    /work/venv/bin/python Tools/reference/make_fixtures.py
        Writes the committed test fixtures into Tests/Fixtures/ (about 16 MB).

    /work/venv/bin/python Tools/reference/make_fixtures.py --full-size DIR
        Writes a full-size Stable Diffusion 1.5-architecture diffusers folder with
        *random* weights (fp32 safetensors, about 4.3 GB) into DIR.  Used for
        benchmarks only; never commit it.

Everything is built from configs written out in this file: nothing is downloaded.
Weights are random but seeded, and the script is deterministic: running it twice
on the same machine with the same package versions (Tools/reference/requirements.txt)
gives byte-identical files.  (Golden outputs of float32 model forwards can differ in
the last bits on a CPU with different SIMD kernels or with a different thread count;
the script pins torch to 2 threads.)

What is generated, key by key, is documented in Tests/Fixtures/README.md.

Sections of this file:
  1. common helpers (seeded random tensors, safetensors writing, zip patching)
  2. A  kernels.safetensors       single-op goldens (float64 reference)
  3. B  tiny-sd/                  tiny SD-architecture diffusers folder
     plus the CLIP BPE vocabulary / reference tokenizers it needs
  4. C  blocks.safetensors        goldens for blocks of the tiny model
  5. D  tokenizer_cases.json      tokenizer goldens
  6. E  checkpoints/              torch pickle / safetensors reader fixtures
  7. F  tiny-sd-single.*          tiny-sd as single-file LDM checkpoints
  8. full-size mode
"""

from __future__ import annotations

import argparse
import collections
import gzip
import importlib.util
import io
import json
import pickle
import shutil
import struct
import subprocess  # only referenced (never called) by a hostile-pickle fixture
import tempfile
import zipfile
import zlib
from pathlib import Path

import ftfy
import numpy as np
import regex
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torchzip import pin_torch_zip_serialization_id  # noqa: E402 (this folder is on sys.path)

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "Tests" / "Fixtures"
BPE_GZ = REPO / "Assets" / "bpe_simple_vocab_16e6.txt.gz"
STORY = Path("/work/shared/seed/story.txt")

# Two threads everywhere: fixed thread count -> fixed float reduction order.
torch.set_num_threads(2)
torch.use_deterministic_algorithms(True)

GENERATOR_NOTE = "Tools/reference/make_fixtures.py"


# ============================================================================
# 1. Common helpers
# ============================================================================


def seed_for(name: str) -> int:
    """A stable per-fixture seed: CRC-32 of the fixture name.

    Each fixture draws from its own generator, so adding or reordering fixtures
    never changes the values of the others.
    """
    return zlib.crc32(name.encode("utf-8"))


def randn(name: str, *shape: int, scale: float = 1.0) -> torch.Tensor:
    """float32 standard-normal tensor drawn from the generator of `name`."""
    g = torch.Generator().manual_seed(seed_for(name))
    return torch.randn(*shape, generator=g, dtype=torch.float32) * scale


def uniform(name: str, *shape: int, low: float = -1.0, high: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed_for(name))
    return torch.rand(*shape, generator=g, dtype=torch.float32) * (high - low) + low


def f32(t: torch.Tensor) -> torch.Tensor:
    """Contiguous float32 copy (how every golden output is stored)."""
    return t.detach().to(torch.float32).contiguous().clone()


def save_safetensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    """safetensors.torch.save_file with contiguous tensors and string metadata.

    safetensors orders the header by (dtype alignment, name), so the output only
    depends on the contents, not on dict insertion order.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = {k: v.detach().contiguous().clone() for k, v in tensors.items()}
    save_file(clean, str(path), metadata={k: str(v) for k, v in metadata.items()})
    sort_safetensors_metadata(path)


def sort_safetensors_metadata(path: Path) -> None:
    """safetensors (Rust) writes `__metadata__` from a hash map, in a random order
    per process.  Re-emit the JSON header with the metadata keys sorted (tensor
    entries and the data section are untouched) so the file is reproducible."""
    raw = path.read_bytes()
    (n,) = struct.unpack_from("<Q", raw)
    header = json.loads(raw[8:8 + n], object_pairs_hook=collections.OrderedDict)
    if "__metadata__" not in header:
        return
    header["__metadata__"] = collections.OrderedDict(sorted(header["__metadata__"].items()))
    hjson = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    path.write_bytes(struct.pack("<Q", len(hjson)) + hjson + raw[8 + n:])


def meta_json(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def torch_save_deterministic(obj, path: Path) -> None:
    """torch.save (default zip format) + pinned serialization id."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, str(path))
    pin_torch_zip_serialization_id(path)


# ============================================================================
# 2. A: kernels.safetensors -- single-op goldens
# ============================================================================
#
# Inputs are float32 (random normal unless stated); the reference is computed by
# torch.nn.functional in float64 from those exact float32 values, and the result
# is rounded once to float32.


def d(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.float64)


def mha_reference(q, k, v, heads: int, causal: bool = False):
    """Multi-head attention exactly as diffusers' Attention / CLIP's attention do it.

    q: [B, Nq, heads*dh], k/v: [B, Nk, heads*dh].  Heads are interleaved the
    diffusers way: reshape [B, N, heads, dh] then transpose to [B, heads, N, dh],
    i.e. head h owns channels h*dh ..< (h+1)*dh.  Scale 1/sqrt(dh).
    Returns (output [B, Nq, heads*dh], probabilities [B, heads, Nq, Nk]).
    """
    b, nq, c = q.shape
    nk = k.shape[1]
    dh = c // heads
    qh = q.reshape(b, nq, heads, dh).transpose(1, 2)
    kh = k.reshape(b, nk, heads, dh).transpose(1, 2)
    vh = v.reshape(b, nk, heads, dh).transpose(1, 2)
    scores = qh @ kh.transpose(-1, -2) / (dh ** 0.5)
    if causal:
        # CLIP text encoder: position i attends to positions j <= i.
        mask = torch.triu(torch.ones(nq, nk, dtype=torch.bool), diagonal=1)
        scores = scores.masked_fill(mask, float("-inf"))
    probs = scores.softmax(dim=-1)
    out = (probs @ vh).transpose(1, 2).reshape(b, nq, c)
    return out, probs


def special_bit_patterns_16(exp_bits: int) -> list[int]:
    """Interesting 16-bit patterns for a sign/exp/mantissa format (F16 or BF16)."""
    man_bits = 15 - exp_bits
    exp_all = ((1 << exp_bits) - 1) << man_bits
    man_all = (1 << man_bits) - 1
    pats = [
        0x0000, 0x8000,                  # +0, -0
        0x0001, 0x8001,                  # smallest subnormal, negative
        man_all, 0x8000 | man_all,       # largest subnormal
        1 << man_bits, 0x8000 | (1 << man_bits),  # smallest normal
        exp_all - 1, 0x8000 | (exp_all - 1),      # largest finite
        exp_all, 0x8000 | exp_all,       # +inf, -inf
    ]
    # 1.0, -1.0, 0.5, 2.0 and neighbours.
    bias = (1 << (exp_bits - 1)) - 1
    one = bias << man_bits
    pats += [one, one + 1, one - 1, 0x8000 | one, one - (1 << man_bits), one + (1 << man_bits)]
    return pats


def conversion_values(exp_bits: int, stride: int, offset: int) -> list[int]:
    """~2000 non-NaN bit patterns: specials first, then every `stride`-th pattern."""
    man_bits = 15 - exp_bits
    exp_all = ((1 << exp_bits) - 1) << man_bits

    def is_nan(p: int) -> bool:
        return (p & exp_all) == exp_all and (p & ((1 << man_bits) - 1)) != 0

    seen: set[int] = set()
    out: list[int] = []
    for p in special_bit_patterns_16(exp_bits) + list(range(offset, 1 << 16, stride)):
        if not is_nan(p) and p not in seen:
            seen.add(p)
            out.append(p)
    return out


def make_kernels(out_dir: Path) -> None:
    t: dict[str, torch.Tensor] = {}
    meta: dict[str, str] = {"generator": GENERATOR_NOTE,
                            "reference": "torch.nn.functional in float64, outputs rounded to float32",
                            "torch": torch.__version__}

    # --- linear: y = x W^T + b
    x, w, b = randn("linear.x", 2, 5, 24), randn("linear.weight", 16, 24, scale=0.2), randn("linear.bias", 16)
    t.update({"linear.x": x, "linear.weight": w, "linear.bias": b, "linear.y": f32(F.linear(d(x), d(w), d(b)))})
    meta["linear"] = meta_json({"op": "torch.nn.functional.linear", "y": "x @ weight.T + bias"})

    # --- convolutions (NCHW, weight [out, in, kh, kw])
    for name, xs, ws, stride, padding in [
        ("conv3x3", (2, 8, 10, 12), (16, 8, 3, 3), 1, 1),
        ("conv3x3s2", (2, 8, 11, 12), (16, 8, 3, 3), 2, 1),
        ("conv1x1", (2, 8, 7, 5), (12, 8, 1, 1), 1, 0),
    ]:
        x = randn(f"{name}.x", *xs)
        w = randn(f"{name}.weight", *ws, scale=0.2)
        b = randn(f"{name}.bias", ws[0])
        y = F.conv2d(d(x), d(w), d(b), stride=stride, padding=padding)
        t.update({f"{name}.x": x, f"{name}.weight": w, f"{name}.bias": b, f"{name}.y": f32(y)})
        meta[name] = meta_json({"op": "torch.nn.functional.conv2d", "stride": stride, "padding": padding,
                                "dilation": 1, "groups": 1, "y_shape": list(y.shape)})

    # --- group norm (affine weight/bias far from 1/0 so a dropped affine is caught)
    for name, groups, eps in [("groupnorm", 8, 1e-5), ("groupnorm_eps6", 4, 1e-6)]:
        x = randn(f"{name}.x", 2, 32, 6, 5, scale=2.0) + 0.5
        w = 1.0 + randn(f"{name}.weight", 32, scale=0.5)
        b = randn(f"{name}.bias", 32, scale=0.5)
        y = F.group_norm(d(x), groups, d(w), d(b), eps=eps)
        t.update({f"{name}.x": x, f"{name}.weight": w, f"{name}.bias": b, f"{name}.y": f32(y)})
        meta[name] = meta_json({"op": "torch.nn.functional.group_norm", "num_channels": 32,
                                "num_groups": groups, "eps": eps})

    # --- layer norm over the last dimension
    x = randn("layernorm.x", 3, 7, 24, scale=2.0) + 0.5
    w = 1.0 + randn("layernorm.weight", 24, scale=0.5)
    b = randn("layernorm.bias", 24, scale=0.5)
    t.update({"layernorm.x": x, "layernorm.weight": w, "layernorm.bias": b,
              "layernorm.y": f32(F.layer_norm(d(x), (24,), d(w), d(b), eps=1e-5))})
    meta["layernorm"] = meta_json({"op": "torch.nn.functional.layer_norm", "normalized_shape": [24], "eps": 1e-5})

    # --- softmax over the last dim; inputs scaled x10 so rows are peaky (tests max-subtraction)
    x = randn("softmax.x", 5, 33, scale=10.0)
    t.update({"softmax.x": x, "softmax.y": f32(F.softmax(d(x), dim=-1))})
    meta["softmax"] = meta_json({"op": "torch.nn.functional.softmax", "dim": -1, "input": "10 * randn"})

    # --- attention
    q, k, v = randn("attention.q", 2, 37, 32), randn("attention.k", 2, 29, 32), randn("attention.v", 2, 29, 32)
    y, p = mha_reference(d(q), d(k), d(v), heads=4)
    t.update({"attention.q": q, "attention.k": k, "attention.v": v, "attention.y": f32(y), "attention.probs": f32(p)})
    meta["attention"] = meta_json({"op": "multi-head attention (diffusers head layout)", "heads": 4, "head_dim": 8,
                                   "scale": "1/sqrt(8)", "mask": None,
                                   "layout": "[B,N,heads*d] -> reshape [B,N,heads,d] -> transpose(1,2)",
                                   "probs_shape": [2, 4, 37, 29]})

    q, k, v = (randn(f"attention_causal.{n}", 2, 13, 32) for n in "qkv")
    y, _ = mha_reference(d(q), d(k), d(v), heads=4, causal=True)
    t.update({"attention_causal.q": q, "attention_causal.k": k, "attention_causal.v": v,
              "attention_causal.y": f32(y)})
    meta["attention_causal"] = meta_json({"op": "multi-head self-attention, causal mask (CLIP text encoder)",
                                          "heads": 4, "head_dim": 8, "scale": "1/sqrt(8)",
                                          "mask": "query i attends keys j <= i"})

    q, k, v = (randn(f"attention_long.{n}", 1, 300, 80) for n in "qkv")
    y, _ = mha_reference(d(q), d(k), d(v), heads=2)
    t.update({"attention_long.q": q, "attention_long.k": k, "attention_long.v": v, "attention_long.y": f32(y)})
    meta["attention_long"] = meta_json({"op": "multi-head attention, long sequence (for query slicing)",
                                        "heads": 2, "head_dim": 40, "scale": "1/sqrt(40)", "mask": None})

    # --- activations, x ~ 3 * randn
    x = randn("silu.x", 4, 50, scale=3.0)
    t.update({"silu.x": x, "silu.y": f32(F.silu(d(x)))})
    x = randn("gelu.x", 4, 50, scale=3.0)
    t.update({"gelu.x": x, "gelu.y": f32(F.gelu(d(x), approximate="none"))})
    x = randn("quick_gelu.x", 4, 50, scale=3.0)
    t.update({"quick_gelu.x": x, "quick_gelu.y": f32(d(x) * torch.sigmoid(1.702 * d(x)))})
    meta["silu"] = meta_json({"op": "x * sigmoid(x)"})
    meta["gelu"] = meta_json({"op": "torch.nn.functional.gelu", "approximate": "none",
                              "formula": "0.5 * x * (1 + erf(x / sqrt(2)))"})
    meta["quick_gelu"] = meta_json({"op": "x * sigmoid(1.702 * x)"})

    # --- GEGLU after the projection: hidden, gate = x.chunk(2, -1); y = hidden * gelu(gate)
    x = randn("geglu.x", 2, 6, 32, scale=2.0)
    hidden, gate = d(x).chunk(2, dim=-1)
    t.update({"geglu.x": x, "geglu.y": f32(hidden * F.gelu(gate))})
    meta["geglu"] = meta_json({"op": "diffusers GEGLU (after proj)", "formula":
                               "hidden, gate = x.chunk(2, dim=-1); y = hidden * gelu_erf(gate)",
                               "hidden": "x[..., :16]", "gate": "x[..., 16:]"})

    # --- nearest upsampling x2 and channel concat
    x = randn("upsample_nearest.x", 2, 3, 4, 5)
    t.update({"upsample_nearest.x": x,
              "upsample_nearest.y": f32(F.interpolate(d(x), scale_factor=2.0, mode="nearest"))})
    meta["upsample_nearest"] = meta_json({"op": "torch.nn.functional.interpolate", "scale_factor": 2,
                                          "mode": "nearest"})
    a, b = randn("concat.a", 2, 3, 4, 5), randn("concat.b", 2, 6, 4, 5)
    t.update({"concat.a": a, "concat.b": b, "concat.y": torch.cat([a, b], dim=1)})
    meta["concat"] = meta_json({"op": "torch.cat", "dim": 1})

    # --- dtype conversion (exact): F16 -> F32 and BF16 -> F32 over ~2000 bit patterns
    f16_bits = np.array(conversion_values(exp_bits=5, stride=31, offset=0), dtype=np.uint16)
    f16 = torch.from_numpy(f16_bits.view(np.float16).copy())
    bf16_bits = np.array(conversion_values(exp_bits=8, stride=31, offset=7), dtype=np.uint16)
    bf16 = torch.from_numpy(bf16_bits.view(np.int16).copy()).view(torch.bfloat16)
    t.update({"convert.f16": f16, "convert.f16_as_f32": f16.to(torch.float32),
              "convert.bf16": bf16, "convert.bf16_as_f32": bf16.to(torch.float32)})
    meta["convert"] = meta_json({"op": "exact widening to float32", "nan": "excluded",
                                 "f16_count": len(f16_bits), "bf16_count": len(bf16_bits),
                                 "patterns": "+-0, subnormals, smallest/largest normal, largest finite, +-inf, "
                                             "around 1.0, then every 31st bit pattern (bf16: offset 7)"})

    # Sanity: the float64 paths agree with the float32 library ops.
    assert torch.allclose(t["attention.y"], F.scaled_dot_product_attention(
        t["attention.q"].reshape(2, 37, 4, 8).transpose(1, 2),
        t["attention.k"].reshape(2, 29, 4, 8).transpose(1, 2),
        t["attention.v"].reshape(2, 29, 4, 8).transpose(1, 2)).transpose(1, 2).reshape(2, 37, 32), atol=1e-5)
    assert torch.allclose(t["quick_gelu.y"], F.silu(1.702 * t["quick_gelu.x"]) / 1.702, atol=1e-5)

    save_safetensors(t, out_dir / "kernels.safetensors", meta)


# ============================================================================
# 3. B: the CLIP BPE vocabulary and the tiny SD-architecture model
# ============================================================================


def bytes_to_unicode() -> dict[int, str]:
    """OpenAI CLIP's reversible byte -> printable-unicode-character table.

    Printable Latin-1 bytes map to themselves; the remaining 68 bytes map to
    U+0100 and up, in byte order.  Dict order is the vocabulary order.
    """
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(2 ** 8):
        if b not in bs:
            bs.append(b)
            cs.append(2 ** 8 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def load_clip_bpe() -> tuple[dict[str, int], list[str]]:
    """Vocabulary and merges exactly as openai/CLIP's SimpleTokenizer builds them.

    The gz file has a header line then 262 144 merges; CLIP uses the first
    49152 - 256 - 2 = 48 894.  Vocabulary: the 256 byte symbols in
    bytes_to_unicode order, the same 256 with "</w>", one token per merge
    (concatenation of the pair), then <|startoftext|> (49406), <|endoftext|> (49407).
    """
    lines = gzip.open(BPE_GZ).read().decode("utf-8").split("\n")
    merges = lines[1:49152 - 256 - 2 + 1]
    assert len(merges) == 48894
    vocab_list = list(bytes_to_unicode().values())
    vocab_list = vocab_list + [v + "</w>" for v in vocab_list]
    vocab_list += ["".join(m.split()) for m in merges]
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(vocab_list)}
    assert len(vocab) == 49408 and vocab["<|endoftext|>"] == 49407
    return vocab, merges


def write_clip_tokenizer_files(tok_dir: Path, vocab: dict[str, int], merges: list[str]) -> None:
    """Write a Hugging Face CLIPTokenizer folder in the classic (pre-tokenizer.json) layout.

    vocab.json   {token: id} in id order, UTF-8, no ASCII escaping
    merges.txt   "#version: 0.2" header + one "a b" merge per line, rank order
    tokenizer_config.json / special_tokens_map.json as in SD 1.5's tokenizer/ folder.
    """
    if tok_dir.exists():
        shutil.rmtree(tok_dir)
    tok_dir.mkdir(parents=True)
    (tok_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False) + "\n", encoding="utf-8")
    (tok_dir / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")

    def added(content: str) -> dict:
        return {"__type": "AddedToken", "content": content, "lstrip": False, "normalized": True,
                "rstrip": False, "single_word": False}

    config = {
        "add_prefix_space": False,
        "bos_token": added("<|startoftext|>"),
        "do_lower_case": True,
        "eos_token": added("<|endoftext|>"),
        "errors": "replace",
        "model_max_length": 77,
        "pad_token": "<|endoftext|>",
        "tokenizer_class": "CLIPTokenizer",
        "unk_token": added("<|endoftext|>"),
    }
    special = {
        "bos_token": {k: v for k, v in added("<|startoftext|>").items() if k != "__type"},
        "eos_token": {k: v for k, v in added("<|endoftext|>").items() if k != "__type"},
        "pad_token": "<|endoftext|>",
        "unk_token": {k: v for k, v in added("<|endoftext|>").items() if k != "__type"},
    }
    (tok_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    (tok_dir / "special_tokens_map.json").write_text(json.dumps(special, indent=2, sort_keys=True) + "\n")


class SlowCLIPTokenizer:
    """Port of transformers 4.x `CLIPTokenizer` -- the pure-Python "slow" tokenizer.

    transformers 5 removed the slow CLIP tokenizer (its `CLIPTokenizer` is now the
    Rust `tokenizers` backend, formerly `CLIPTokenizerFast`), so the algorithm of
    transformers 4.x (tokenization_clip.py, itself a copy of openai/CLIP's
    simple_tokenizer.py) is reproduced here verbatim in behaviour:

        text = whitespace_clean(ftfy.fix_text(text)).lower()
        pieces = regex.findall(PAT, text)          # IGNORECASE
        each piece -> UTF-8 bytes -> bytes_to_unicode symbols -> BPE with "</w>"
        ids = [49406] + ids[:max_length-2 if truncating] + [49407] (+ pad 49407)

    (openai/CLIP additionally runs html.unescape twice after ftfy; ftfy.fix_text
    already unescapes HTML entities when the text contains no '<'.)
    """

    PAT = regex.compile(
        r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
        regex.IGNORECASE,
    )

    def __init__(self, vocab: dict[str, int], merges: list[str]):
        self.encoder = vocab
        self.bpe_ranks = {tuple(m.split()): i for i, m in enumerate(merges)}
        self.byte_encoder = bytes_to_unicode()
        self.cache = {"<|startoftext|>": "<|startoftext|>", "<|endoftext|>": "<|endoftext|>"}
        self.bos, self.eos, self.pad = vocab["<|startoftext|>"], vocab["<|endoftext|>"], vocab["<|endoftext|>"]

    @staticmethod
    def whitespace_clean(text: str) -> str:
        return regex.sub(r"\s+", " ", text).strip()

    def bpe(self, token: str) -> str:
        if token in self.cache:
            return self.cache[token]
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        pairs = {(a, b) for a, b in zip(word, word[1:])}
        if not pairs:
            return token + "</w>"
        while True:
            bigram = min(pairs, key=lambda pair: self.bpe_ranks.get(pair, float("inf")))
            if bigram not in self.bpe_ranks:
                break
            first, second = bigram
            new_word: list[str] = []
            i = 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                except ValueError:
                    new_word.extend(word[i:])
                    break
                new_word.extend(word[i:j])
                i = j
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new_word.append(first + second)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            word = tuple(new_word)
            if len(word) == 1:
                break
            pairs = {(a, b) for a, b in zip(word, word[1:])}
        result = " ".join(word)
        self.cache[token] = result
        return result

    def tokenize(self, text: str) -> list[str]:
        text = self.whitespace_clean(ftfy.fix_text(text)).lower()
        out: list[str] = []
        for piece in self.PAT.findall(text):
            piece = "".join(self.byte_encoder[b] for b in piece.encode("utf-8"))
            out.extend(self.bpe(piece).split(" "))
        return out

    def __call__(self, text: str, max_length: int | None = 77, pad: bool = True) -> list[int]:
        ids = [self.encoder.get(tok, self.eos) for tok in self.tokenize(text)]  # unk = <|endoftext|>
        if max_length is not None:
            ids = ids[:max_length - 2]
        ids = [self.bos] + ids + [self.eos]
        if pad and max_length is not None:
            ids += [self.pad] * (max_length - len(ids))
        return ids


def load_openai_simple_tokenizer():
    """open_clip's copy of openai/CLIP's SimpleTokenizer, loaded without importing
    the open_clip package (whose __init__ needs torchvision)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "tokenizer.py"
    mod_spec = importlib.util.spec_from_file_location("_openai_clip_tokenizer", path)
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    return mod.SimpleTokenizer(bpe_path=str(BPE_GZ))


# --- Tiny model configs ------------------------------------------------------

TINY_UNET = dict(
    sample_size=16,
    in_channels=4,
    out_channels=4,
    center_input_sample=False,
    flip_sin_to_cos=True,
    freq_shift=0,
    # Three levels, shaped like SD 1.5's four: cross-attention at 16x16 and 8x8 (+ mid
    # block at 4x4), and a plain DownBlock2D/UpBlock2D at the lowest resolution.
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    block_out_channels=(32, 48, 48),
    layers_per_block=2,
    downsample_padding=1,
    mid_block_scale_factor=1,
    act_fn="silu",
    norm_num_groups=8,
    norm_eps=1e-5,
    cross_attention_dim=32,
    # SD 1.5 quirk kept on purpose: diffusers reads attention_head_dim=8 as *8 heads*
    # (head dim = channels / 8: 4 at 32 channels, 6 at 48 channels).
    attention_head_dim=8,
)

TINY_VAE = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(16, 32, 32, 32),  # 3 downsamples -> factor 8
    layers_per_block=2,
    act_fn="silu",
    latent_channels=4,
    norm_num_groups=8,
    sample_size=64,
    scaling_factor=0.18215,
)

TINY_TEXT = dict(
    vocab_size=49408,
    hidden_size=32,
    intermediate_size=37,
    projection_dim=32,
    num_hidden_layers=3,
    num_attention_heads=4,
    max_position_embeddings=77,
    hidden_act="quick_gelu",
    layer_norm_eps=1e-5,
    attention_dropout=0.0,
    dropout=0.0,
    initializer_range=0.02,
    initializer_factor=1.0,
    # Same special ids as SD 1.5's text_encoder/config.json (legacy values; only
    # the pooled output, which SD does not use, depends on them).
    bos_token_id=0,
    eos_token_id=2,
    pad_token_id=1,
)

SD15_SCHEDULER = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    trained_betas=None,
    skip_prk_steps=True,
    set_alpha_to_one=False,
    prediction_type="epsilon",
    timestep_spacing="leading",
    steps_offset=1,
)


@torch.no_grad()
def perturb_parameters(model: torch.nn.Module, name: str, scale: float = 0.1) -> None:
    """Make every vector parameter non-trivial: norm weights become 1 + 0.1*N(0,1),
    biases (zero-initialised by the libraries) get 0.1*N(0,1) added, so a golden
    test catches a dropped bias or affine.  Matrices/kernels keep the library
    init (torch default / transformers CLIP init)."""
    g = torch.Generator().manual_seed(seed_for(name))
    for _, p in model.named_parameters():
        if p.ndim <= 1:
            p.add_(torch.randn(p.shape, generator=g) * scale)


@torch.no_grad()
def randomize_text_encoder(model, name: str) -> None:
    """CLIP's own init draws embeddings with std 0.02, which would make
    hidden_states[0] tiny (and trivially 'close' to anything).  Use std 1 for the
    token and position embeddings, then perturb the vectors like the others."""
    g = torch.Generator().manual_seed(seed_for(name + ".embeddings"))
    emb = getattr(model, "text_model", model).embeddings  # transformers 4 nests it under text_model
    emb.token_embedding.weight.copy_(torch.randn(emb.token_embedding.weight.shape, generator=g))
    emb.position_embedding.weight.copy_(torch.randn(emb.position_embedding.weight.shape, generator=g))
    perturb_parameters(model, name)


def build_tiny_pipeline(out_dir: Path, vocab, merges):
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed_for("tiny-sd.unet"))
    unet = UNet2DConditionModel(**TINY_UNET)
    perturb_parameters(unet, "tiny-sd.unet")

    torch.manual_seed(seed_for("tiny-sd.vae"))
    vae = AutoencoderKL(**TINY_VAE)
    perturb_parameters(vae, "tiny-sd.vae")

    torch.manual_seed(seed_for("tiny-sd.text_encoder"))
    text_encoder = CLIPTextModel(CLIPTextConfig(**TINY_TEXT))
    randomize_text_encoder(text_encoder, "tiny-sd.text_encoder")

    # The tokenizer object is only needed for the pipeline constructor; its folder
    # is rewritten below in the classic vocab.json + merges.txt layout.
    with tempfile.TemporaryDirectory() as tmp:
        write_clip_tokenizer_files(Path(tmp) / "tokenizer", vocab, merges)
        tokenizer = CLIPTokenizer.from_pretrained(str(Path(tmp) / "tokenizer"))

    scheduler = PNDMScheduler(**SD15_SCHEDULER)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    pipe.save_pretrained(str(out_dir), safe_serialization=True)
    write_clip_tokenizer_files(out_dir / "tokenizer", vocab, merges)
    add_text_model_prefix(out_dir / "text_encoder")
    return pipe


def add_text_model_prefix(te_dir: Path) -> None:
    """Rename text_encoder/model.safetensors keys to the layout of real SD 1.5 folders.

    transformers 5 saves CLIPTextModel weights as "embeddings.token_embedding.weight",
    "encoder.layers.0...", "final_layer_norm...", but every SD 1.x diffusers folder in
    the wild (saved by transformers 4) uses "text_model.embeddings....".  Rewrite to
    the latter so the fixture looks like a real checkpoint; transformers 5 loads both.
    """
    from safetensors import safe_open
    path = te_dir / "model.safetensors"
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        tensors = {k if k.startswith("text_model.") else "text_model." + k: f.get_tensor(k) for k in f.keys()}
    save_safetensors(tensors, path, meta)


def load_pipeline(path: Path):
    from diffusers import StableDiffusionPipeline
    pipe = StableDiffusionPipeline.from_pretrained(str(path), safety_checker=None, feature_extractor=None,
                                                   requires_safety_checker=False, torch_dtype=torch.float32)
    for m in (pipe.unet, pipe.vae, pipe.text_encoder):
        m.eval()
    return pipe


# ============================================================================
# 4. C: blocks.safetensors -- goldens from the tiny model
# ============================================================================

PROMPTS = ["a photo of a cat", ""]


@torch.no_grad()
def make_blocks(pipe, slow_tok: SlowCLIPTokenizer, out_dir: Path) -> None:
    unet, vae, te = pipe.unet, pipe.vae, pipe.text_encoder
    t: dict[str, torch.Tensor] = {}
    meta: dict[str, str] = {"generator": GENERATOR_NOTE, "model": "Tests/Fixtures/tiny-sd (this script)",
                            "precision": "float32, eval mode, torch " + torch.__version__}

    def put(key: str, value: torch.Tensor, desc: str) -> None:
        t[key] = f32(value)
        meta[key] = meta_json({"shape": list(value.shape), "desc": desc})

    H, W = 16, 12  # latent size for the UNet goldens (non-square on purpose: catches H/W mix-ups)
    ch0 = TINY_UNET["block_out_channels"][0]
    temb_dim = ch0 * 4

    # --- UNet time embedding (extra debugging aid for the full-UNet golden)
    timestep = torch.tensor([981.0], dtype=torch.float32)
    tproj = unet.time_proj(timestep)
    put("unet.time_proj.y", tproj, "unet.time_proj(timestep=981): sinusoidal, flip_sin_to_cos=True "
                                   "(cos first), freq_shift=0, 32 channels")
    put("unet.time_embedding.y", unet.time_embedding(tproj.to(torch.float32)),
        "unet.time_embedding(time_proj(981)): linear_1 -> SiLU -> linear_2")

    # --- down_blocks.0.resnets.0 (ResnetBlock2D 32 -> 32, no shortcut conv)
    resnet = unet.down_blocks[0].resnets[0]
    x = randn("unet.resnet.x", 2, ch0, H, W)
    temb = randn("unet.resnet.temb", 2, temb_dim)
    put("unet.resnet.x", x, "input of unet.down_blocks.0.resnets.0")
    put("unet.resnet.temb", temb, "time embedding input (output of unet.time_embedding, BEFORE the resnet's "
                                  "own SiLU + time_emb_proj)")
    put("unet.resnet.y", resnet(x, temb), "unet.down_blocks.0.resnets.0(x, temb): norm1-SiLU-conv1 + "
                                          "time_emb_proj(SiLU(temb))[:,:,None,None], norm2-SiLU-conv2, + x")

    # --- down_blocks.0.attentions.0 (Transformer2DModel incl. norm, proj_in, proj_out, residual)
    tr = unet.down_blocks[0].attentions[0]
    x = randn("unet.transformer.x", 2, ch0, H, W)
    ctx = randn("unet.transformer.context", 2, 77, TINY_UNET["cross_attention_dim"])
    put("unet.transformer.x", x, "input of unet.down_blocks.0.attentions.0")
    put("unet.transformer.context", ctx, "encoder_hidden_states for the cross-attention")
    put("unet.transformer.y", tr(x, encoder_hidden_states=ctx, return_dict=False)[0],
        "unet.down_blocks.0.attentions.0(x, context): GroupNorm(8, eps 1e-6) -> proj_in (1x1 conv) -> "
        "BasicTransformerBlock (LN-selfattn, LN-crossattn, LN-GEGLU FF) -> proj_out (1x1 conv) -> + x; "
        "8 heads of dim 4")

    # --- the whole UNet
    sample = randn("unet.sample", 2, 4, H, W)
    ctx = randn("unet.context", 2, 77, TINY_UNET["cross_attention_dim"])
    put("unet.sample", sample, "UNet input latents")
    put("unet.timestep", timestep, "timestep (float32 [1], broadcast over the batch)")
    put("unet.context", ctx, "encoder_hidden_states")
    put("unet.out", unet(sample, timestep, encoder_hidden_states=ctx, return_dict=False)[0],
        "unet(sample, 981, context) noise prediction")

    # --- VAE (image 64x48 <-> latent 8x6)
    z = randn("vae.decode.z", 1, 4, 8, 6)
    put("vae.decode.z", z, "decoder input: latents ALREADY divided by scaling_factor 0.18215")
    put("vae.decode.y", vae.decode(z, return_dict=False)[0], "vae.decode(z): post_quant_conv -> decoder")
    x = uniform("vae.encode.x", 1, 3, 64, 48)
    posterior = vae.encode(x).latent_dist
    put("vae.encode.x", x, "encoder input image in [-1, 1]")
    put("vae.encode.mean", posterior.mean, "posterior mean: encoder -> quant_conv -> first 4 channels")
    put("vae.encode.logvar", posterior.logvar, "posterior log-variance: last 4 channels of quant_conv output, "
                                               "clamped to [-30, 20]")

    # --- text encoder
    ids = torch.tensor([slow_tok(p) for p in PROMPTS], dtype=torch.long)
    out = te(input_ids=ids, output_hidden_states=True, return_dict=True)
    put("text.ids", ids.to(torch.float32), f"token ids of {PROMPTS!r}, padded to 77 with 49407")
    for n, h in enumerate(out.hidden_states):
        put(f"text.hidden.{n}", h, "embeddings (token + position)" if n == 0 else
            f"output of encoder layer {n - 1} (before final_layer_norm)")
    put("text.last", out.last_hidden_state, "last_hidden_state = final_layer_norm(hidden_states[-1])")
    meta["text.num_hidden_layers"] = str(TINY_TEXT["num_hidden_layers"])

    save_safetensors(t, out_dir / "blocks.safetensors", meta)


# ============================================================================
# 5. D: tokenizer_cases.json
# ============================================================================

EXTRA_PROMPTS = [
    "hello, world!! 123",
    "!!!???...",
    "it's they're we'll I'd",
    "8k 1024x768 f/2.8 3.14159",
    "café naïve Ångström résumé",
    "東京タワー 猫",
    "a cat 🐱🔥 with 👩‍🚀",
    "a   photo\tof\n\n a    cat  ",
    "A PHOTOGRAPH OF AN ASTRONAUT",
    "fish &amp; chips",
    # Extra cases where ftfy (slow / OpenAI) and the Rust fast tokenizer can differ:
    "it\u2019s a \u201cquoted\u201d phrase",           # curly quotes (ftfy uncurls them)
    "\ufb01ne \ufb02ower",                             # Latin ligatures (ftfy expands them)
    "\uff21\uff22\uff23 \uff11\uff12\uff13",           # fullwidth ASCII (ftfy narrows it)
    "cafe\u0301",                                      # decomposed accent (NFC composes it)
    "",
]


def story_prompts() -> list[str]:
    """Lines of the seed story that are image prompts: short, no sentence-ending
    period, lowercase-initial or a known prompt opener, and not a heading."""
    lines = [ln.strip() for ln in STORY.read_text(encoding="utf-8").splitlines()]
    prompts = []
    for ln in lines:
        if not ln or ln[0].isdigit():
            continue  # blank lines, the line of seed numbers
        long_portrait = ln.startswith("beautiful") and "portrait" in ln
        if len(ln) > 200 and not long_portrait:
            continue  # prose paragraphs
        if ln.endswith((".", ":", "?")) or ". " in ln:
            continue  # prose sentences
        if ln[0].isupper() and not long_portrait:
            continue  # headings ("What is Stable Diffusion?", "Random Seeds", ...)
        prompts.append(ln)
    return prompts


def make_tokenizer_cases(tok_dir: Path, slow_tok: SlowCLIPTokenizer, out_dir: Path) -> list[str]:
    from transformers import CLIPTokenizer

    fast = CLIPTokenizer.from_pretrained(str(tok_dir))
    openai_tok = load_openai_simple_tokenizer()
    story = story_prompts()
    long_prompt = ", ".join([max(story, key=len)] * 4)  # ~220 tokens, far past 77
    prompts = story + EXTRA_PROMPTS + [long_prompt]

    assert slow_tok("a photo of a cat", max_length=None) == [49406, 320, 1125, 539, 320, 2368, 49407]

    cases, notes = [], []
    for p in prompts:
        ids = slow_tok(p)
        unpadded = slow_tok(p, max_length=None)
        ids_fast = fast(p, padding="max_length", max_length=77, truncation=True)["input_ids"]
        case = {"prompt": p, "ids": ids, "ids_fast": ids_fast, "unpadded": unpadded}
        if openai_tok is not None:
            case["ids_openai"] = [49406] + openai_tok.encode(p) + [49407]
        diffs = []
        if ids_fast != ids:
            diffs.append("ids_fast != ids")
        if openai_tok is not None and case["ids_openai"] != unpadded:
            diffs.append("ids_openai != unpadded")
        if diffs:
            case["note"] = "; ".join(diffs)
            notes.append(f"{p!r}: {case['note']}")
        cases.append(case)

    # One case per line keeps diffs readable; ensure_ascii=False keeps prompts legible.
    body = ",\n".join("  " + json.dumps(c, ensure_ascii=False, separators=(", ", ": ")) for c in cases)
    (out_dir / "tokenizer_cases.json").write_text("[\n" + body + "\n]\n", encoding="utf-8")
    return notes


# ============================================================================
# 6. E: checkpoints/ -- torch pickle and safetensors reader fixtures
# ============================================================================

# Legacy (non-zip) torch.save keys storages by str(storage._cdata), a memory
# address, which changes run to run.  The writer below is torch 2.13's
# torch.serialization._legacy_save with only that changed: storages get fixed
# address-looking keys, deliberately NOT in sorted order of first appearance
# (real files are like that too), so readers must match by key, not position.
LEGACY_FAKE_KEYS = ["94371226845280", "94371226790912", "140003912884224", "94371226123456",
                    "94371228000064", "140003912880128", "94371226500000", "94371226600000"]


def legacy_save_deterministic(obj, path: Path) -> None:
    from torch.serialization import LONG_SIZE, INT_SIZE, MAGIC_NUMBER, PROTOCOL_VERSION, SHORT_SIZE

    keys: dict[int, str] = {}
    storages: dict[str, tuple] = {}

    class LegacyPickler(pickle.Pickler):
        def persistent_id(self, o):
            if isinstance(o, torch.storage.TypedStorage):
                untyped = o._untyped_storage
                key = keys.setdefault(untyped._cdata, LEGACY_FAKE_KEYS[len(keys)])
                storages.setdefault(key, (untyped, o.dtype))
                storage_type = getattr(torch, o._pickle_storage_type())
                return ("storage", storage_type, key, "cpu", o._size(), None)
            return None

    sys_info = {"protocol_version": PROTOCOL_VERSION, "little_endian": True,
                "type_sizes": {"short": SHORT_SIZE, "int": INT_SIZE, "long": LONG_SIZE}}
    with open(path, "wb") as f:
        pickle.dump(MAGIC_NUMBER, f, protocol=2)
        pickle.dump(PROTOCOL_VERSION, f, protocol=2)
        pickle.dump(sys_info, f, protocol=2)
        LegacyPickler(f, protocol=2).dump(obj)
        serialized_keys = sorted(storages.keys())
        pickle.dump(serialized_keys, f, protocol=2)
        f.flush()
        for key in serialized_keys:
            storage, dtype = storages[key]
            storage._write_file(f, True, True, torch._utils._element_size(dtype))


def safetensors_bytes(header: dict, data: bytes) -> bytes:
    """Hand-rolled safetensors encoder (8-byte LE header length, JSON header padded
    with spaces to a multiple of 8, then the data) for crafting malformed files."""
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    return struct.pack("<Q", len(hjson)) + hjson + data


# Hand-assembled protocol-2 pickles.  Nothing is executed when *writing* them;
# a reader that honours GLOBAL+REDUCE would run `echo pwned`.
def _binunicode(s: str) -> bytes:
    b = s.encode("utf-8")
    return b"X" + struct.pack("<I", len(b)) + b


PICKLE_OS_SYSTEM = (b"\x80\x02"                      # PROTO 2
                    + b"cos\nsystem\n"               # GLOBAL 'os system'
                    + _binunicode("echo pwned")      # BINUNICODE
                    + b"\x85"                        # TUPLE1
                    + b"R"                           # REDUCE  -> os.system("echo pwned")
                    + b".")                          # STOP
PICKLE_BUILTINS_EVAL = (b"\x80\x02" + b"cbuiltins\neval\n"
                        + _binunicode("__import__('os').system('echo pwned')") + b"\x85" + b"R" + b".")


class _PopenMarker:
    """Pickles as subprocess.Popen(['echo', 'pwned']).  Pickling only *records* the
    global and its arguments; Popen is never called here."""

    def __reduce__(self):
        return (subprocess.Popen, (["echo", "pwned"],))


def rewrite_torch_zip_pickle(src: Path, dst: Path, make_pickle) -> None:
    """Copy a torch zip checkpoint, replacing its `<archive>/data.pkl` record by
    make_pickle(old_data_pkl).

    Written with zipfile (ZIP_STORED, fixed timestamps) in torch's record order
    (without torch's 64-byte alignment padding, which readers must not rely on).
    """
    with zipfile.ZipFile(src) as zin:
        records = [(i.filename, zin.read(i)) for i in zin.infolist()]
    with zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_STORED) as zout:
        for name, payload in records:
            if name.endswith("/data.pkl"):
                payload = make_pickle(payload)
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            zout.writestr(info, payload)


def make_checkpoints(out_dir: Path) -> None:
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)

    # --- a state dict with every storage/view layout the reader must handle
    x34 = randn("ckpt.t_base", 3, 4)
    big = torch.arange(10, dtype=torch.float32) * 0.5 - 2.0
    sd = collections.OrderedDict()
    sd["a"] = randn("ckpt.a", 3, 4)
    sd["b"] = randn("ckpt.b", 5).to(torch.float16)
    sd["c"] = randn("ckpt.c", 2, 3).to(torch.bfloat16)
    sd["t"] = x34.t()                      # [4,3], strides (1,4): non-contiguous
    sd["v"] = big[2:6]                     # storage offset 2
    sd["v2"] = big[5:9]                    # same storage as v, offset 5
    sd["i"] = torch.tensor([-3, 0, 1 << 40], dtype=torch.int64)
    sd["s"] = torch.tensor(3.25, dtype=torch.float32)  # 0-dim
    assert sd["t"].stride() == (1, 4) and sd["v"].storage_offset() == 2
    assert sd["v2"].untyped_storage().data_ptr() == sd["v"].untyped_storage().data_ptr()

    torch_save_deterministic(sd, out_dir / "state_dict_zip.pt")
    legacy_save_deterministic(sd, out_dir / "state_dict_legacy.pt")
    save_safetensors({k: v.to(torch.float32).contiguous() for k, v in sd.items()},
                     out_dir / "state_dict_expected.safetensors",
                     {"desc": "every tensor of state_dict_zip.pt / state_dict_legacy.pt as contiguous float32"})

    # Round-trip check with torch's own (safe) loader.
    for name in ("state_dict_zip.pt", "state_dict_legacy.pt"):
        loaded = torch.load(out_dir / name, weights_only=True)
        assert list(loaded.keys()) == list(sd.keys())
        for k in sd:
            assert loaded[k].dtype == sd[k].dtype and torch.equal(loaded[k], sd[k]), (name, k)

    # --- Lightning-style .ckpt
    torch_save_deterministic({"state_dict": {"model.diffusion_model.x": randn("ckpt.nested", 2, 2).half()},
                              "global_step": 7, "epoch": 1}, out_dir / "nested.ckpt")

    # --- textual-inversion embeddings
    def a1111(vec):
        return {"string_to_token": {"*": 265}, "string_to_param": {"*": vec}, "name": "corajr",
                "step": 20000, "sd_checkpoint": "abcdef12", "sd_checkpoint_name": "v1-5-pruned-emaonly"}

    emb = randn("ckpt.a1111", 2, 768, scale=0.01)
    torch_save_deterministic(a1111(emb.clone()), out_dir / "a1111_embedding.pt")
    torch_save_deterministic(a1111(torch.nn.Parameter(emb.clone())), out_dir / "a1111_embedding_param.pt")
    torch_save_deterministic({"<winniecat>": randn("ckpt.diffusers_emb", 768, scale=0.01)},
                             out_dir / "diffusers_embedding.bin")
    save_safetensors({"emb_params": randn("ckpt.kohya", 3, 768, scale=0.01)},
                     out_dir / "kohya_embedding.safetensors", {})

    # --- hostile files (never loaded with an unsafe unpickler here).  Each starts as
    # a genuine torch.save zip (saved under the final file name, so the archive
    # folder inside is named after it), whose data.pkl is then replaced.
    def hostile_zip(name: str, obj, make_pickle) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            carrier = Path(tmp) / name
            torch_save_deterministic(obj, carrier)
            rewrite_torch_zip_pickle(carrier, out_dir / name, make_pickle)

    carrier = {"weight": randn("ckpt.hostile", 2, 2)}
    hostile_zip("hostile_os_system.pt", carrier, lambda _: PICKLE_OS_SYSTEM)
    hostile_zip("hostile_builtins_eval.pt", carrier, lambda _: PICKLE_BUILTINS_EVAL)
    (out_dir / "hostile_raw.pkl").write_bytes(PICKLE_OS_SYSTEM)
    # A valid state dict with one extra value built by subprocess.Popen.  Python's
    # protocol-2 pickler (fix_imports) records that global under its Python 2 name
    # "commands Popen"; we restore the literal "subprocess Popen" (GLOBAL is a
    # newline-terminated text opcode, so the byte swap keeps the pickle valid).
    hostile_zip("hostile_nested_global.pt",
                {"weight": randn("ckpt.hostile_nested", 2, 2), "bias": randn("ckpt.hn_b", 2),
                 "extra": _PopenMarker()},
                lambda pkl: pkl.replace(b"ccommands\nPopen\n", b"csubprocess\nPopen\n"))
    assert b"csubprocess\nPopen\n" in zipfile.ZipFile(out_dir / "hostile_nested_global.pt").read(
        "hostile_nested_global/data.pkl")
    for name in ("hostile_os_system.pt", "hostile_builtins_eval.pt", "hostile_nested_global.pt"):
        try:
            torch.load(out_dir / name, weights_only=True)  # safe unpickler: must refuse
            raise AssertionError(f"{name} was accepted by weights_only loading")
        except pickle.UnpicklingError:
            pass

    # --- malformed files
    zip_bytes = (out_dir / "state_dict_zip.pt").read_bytes()
    (out_dir / "truncated_zip.pt").write_bytes(zip_bytes[:len(zip_bytes) // 2])

    w = struct.pack("<9f", *[0.5 * i for i in range(9)])   # F32 [3,3] = 36 bytes
    bvec = struct.pack("<4f", 1.0, -1.0, 2.0, -2.0)         # F32 [4]   = 16 bytes
    good_header = {"w": {"dtype": "F32", "shape": [3, 3], "data_offsets": [0, 36]},
                   "b": {"dtype": "F32", "shape": [4], "data_offsets": [36, 52]}}
    good = safetensors_bytes(good_header, w + bvec)
    header_len = struct.unpack_from("<Q", good)[0]
    data_start = 8 + header_len
    (out_dir / "truncated.safetensors").write_bytes(good[:data_start + 20])
    (out_dir / "bad_header_len.safetensors").write_bytes(struct.pack("<Q", len(good) + 1000) + good[8:])
    garbage = b'{"w": {"dtype": "F32", "shape": [3, 3], "data_off' + b"\x00\xff not json }}}"
    garbage = (garbage + b"!" * header_len)[:header_len]
    (out_dir / "bad_json.safetensors").write_bytes(struct.pack("<Q", header_len) + garbage + good[data_start:])
    (out_dir / "bad_offsets.safetensors").write_bytes(safetensors_bytes(
        {"w": {"dtype": "F32", "shape": [3, 3], "data_offsets": [0, 36]},
         "b": {"dtype": "F32", "shape": [4], "data_offsets": [36, 1060]}}, w + bvec))
    (out_dir / "overlap.safetensors").write_bytes(safetensors_bytes(
        {"w": {"dtype": "F32", "shape": [3, 3], "data_offsets": [0, 36]},
         "b": {"dtype": "F32", "shape": [4], "data_offsets": [20, 36]}}, w))
    (out_dir / "bad_dtype_shape.safetensors").write_bytes(safetensors_bytes(
        {"w": {"dtype": "F32", "shape": [3, 3], "data_offsets": [0, 20]}}, w[:20]))
    (out_dir / "not_a_checkpoint.txt").write_text(
        "This is not a checkpoint.\nIt is a plain text file that a loader must reject cleanly.\n")

    # The reference safetensors implementation must reject every malformed file.
    from safetensors import safe_open
    for name in ("truncated.safetensors", "bad_header_len.safetensors", "bad_json.safetensors",
                 "bad_offsets.safetensors", "overlap.safetensors", "bad_dtype_shape.safetensors"):
        try:
            with safe_open(str(out_dir / name), framework="pt") as f:
                for k in f.keys():
                    f.get_tensor(k)
            raise AssertionError(f"safetensors accepted {name}")
        except AssertionError:
            raise
        except Exception:
            pass


# ============================================================================
# 7. F: tiny-sd-single.{safetensors,ckpt} -- tiny-sd in the single-file LDM layout
# ============================================================================
#
# Original CompVis/LDM checkpoints (v1-5-pruned.ckpt, the *.safetensors of model
# sites) hold the three models in one flat state dict, each under a prefix and with
# the LDM module names.  The mapping below is written from the two module trees
# (LDM openaimodel.UNetModel / model.Encoder+Decoder vs diffusers
# UNet2DConditionModel / AutoencoderKL); see formats-rng-schedulers.md section 4.4.
# `diffusers_to_ldm_*` is the forward direction.  `ldm_to_diffusers_*` parses LDM
# names on its own (it is not a dictionary inversion), and make_single_file asserts
# that the two compose to the identity on every tensor of tiny-sd.

LDM_UNET_PREFIX = "model.diffusion_model."
LDM_VAE_PREFIX = "first_stage_model."
LDM_TEXT_PREFIX = "cond_stage_model.transformer."

# UNet ResnetBlock2D <-> LDM ResBlock (indices into its nn.Sequentials; the SiLU and
# Dropout entries hold no weights).
UNET_RESNET_TO_LDM = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
                      "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
# VAE ResnetBlock2D <-> LDM ResnetBlock: same names except the shortcut.
VAE_RESNET_TO_LDM = {"norm1": "norm1", "conv1": "conv1", "norm2": "norm2", "conv2": "conv2",
                     "conv_shortcut": "nin_shortcut"}
# VAE mid-block Attention <-> LDM AttnBlock, whose q/k/v/proj_out are 1x1 convs.
VAE_ATTN_TO_LDM = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
VAE_ATTN_CONV_LDM = ("q", "k", "v", "proj_out")


def _rename_head(rest: str, table: dict[str, str]) -> str:
    """`rest` = "<module path>.<param>": rename the module path with `table`."""
    for src in sorted(table, key=len, reverse=True):
        if rest.startswith(src + "."):
            return table[src] + rest[len(src):]
    raise KeyError(rest)


def _rename_prefix(name: str, table: dict[str, str]) -> str | None:
    for src, dst in table.items():
        if name.startswith(src + "."):
            return dst + name[len(src):]
    return None


def _unet_layout(config: dict) -> tuple[int, list[bool]]:
    """(layers_per_block, for each up block: whether it has cross-attention)."""
    lpb = config["layers_per_block"]
    assert isinstance(lpb, int), "SD 1.x uses one layers_per_block for every level"
    return lpb, [t.startswith("CrossAttn") for t in config["up_block_types"]]


UNET_FIXED_TO_LDM = {"conv_in": "input_blocks.0.0", "time_embedding.linear_1": "time_embed.0",
                     "time_embedding.linear_2": "time_embed.2", "conv_norm_out": "out.0", "conv_out": "out.2"}


def diffusers_to_ldm_unet(name: str, config: dict) -> str:
    """diffusers UNet2DConditionModel parameter name -> LDM UNetModel name (no prefix)."""
    L, up_has_attn = _unet_layout(config)
    fixed = _rename_prefix(name, UNET_FIXED_TO_LDM)
    if fixed is not None:
        return fixed
    p = name.split(".")
    if p[0] == "mid_block":
        kind, j, rest = p[1], int(p[2]), ".".join(p[3:])
        if kind == "resnets":                     # resnets.0 -> middle_block.0, resnets.1 -> middle_block.2
            return f"middle_block.{2 * j}.{_rename_head(rest, UNET_RESNET_TO_LDM)}"
        if kind == "attentions" and j == 0:
            return f"middle_block.1.{rest}"       # Transformer2DModel: names identical inside
    elif p[0] in ("down_blocks", "up_blocks"):
        i, kind, j, rest = int(p[1]), p[2], int(p[3]), ".".join(p[4:])
        if p[0] == "down_blocks":
            # input_blocks: [conv_in] then per level L x [resnet, attention?] + [downsampler]
            if kind == "resnets":
                return f"input_blocks.{1 + i * (L + 1) + j}.0.{_rename_head(rest, UNET_RESNET_TO_LDM)}"
            if kind == "attentions":
                return f"input_blocks.{1 + i * (L + 1) + j}.1.{rest}"
            if kind == "downsamplers" and j == 0 and rest.startswith("conv."):
                return f"input_blocks.{(i + 1) * (L + 1)}.0.op.{rest[len('conv.'):]}"
        else:
            # output_blocks: per level (L+1) x [resnet, attention?], the last one + upsampler
            if kind == "resnets":
                return f"output_blocks.{i * (L + 1) + j}.0.{_rename_head(rest, UNET_RESNET_TO_LDM)}"
            if kind == "attentions":
                return f"output_blocks.{i * (L + 1) + j}.1.{rest}"
            if kind == "upsamplers" and j == 0 and rest.startswith("conv."):
                return f"output_blocks.{i * (L + 1) + L}.{2 if up_has_attn[i] else 1}.{rest}"
    raise KeyError(f"no LDM name for diffusers UNet parameter {name}")


def ldm_to_diffusers_unet(name: str, config: dict) -> str:
    """LDM UNetModel parameter name (no prefix) -> diffusers UNet2DConditionModel name."""
    L, _ = _unet_layout(config)
    fixed = _rename_prefix(name, {v: k for k, v in UNET_FIXED_TO_LDM.items()})
    if fixed is not None:
        return fixed
    resnet_back = {v: k for k, v in UNET_RESNET_TO_LDM.items()}
    p = name.split(".")
    if p[0] == "middle_block":
        k, rest = int(p[1]), ".".join(p[2:])
        if k == 1:
            return f"mid_block.attentions.0.{rest}"
        if k in (0, 2):
            return f"mid_block.resnets.{k // 2}.{_rename_head(rest, resnet_back)}"
    elif p[0] in ("input_blocks", "output_blocks"):
        n, m, rest = int(p[1]), int(p[2]), ".".join(p[3:])
        if p[0] == "input_blocks":
            level, j = divmod(n - 1, L + 1)          # j == L: the level's downsampler block
            if j == L and m == 0 and rest.startswith("op."):
                return f"down_blocks.{level}.downsamplers.0.conv.{rest[len('op.'):]}"
            if j < L and m == 0:
                return f"down_blocks.{level}.resnets.{j}.{_rename_head(rest, resnet_back)}"
            if j < L and m == 1:
                return f"down_blocks.{level}.attentions.{j}.{rest}"
        else:
            level, j = divmod(n, L + 1)
            if m == 0:
                return f"up_blocks.{level}.resnets.{j}.{_rename_head(rest, resnet_back)}"
            if j == L and m in (1, 2) and rest.startswith("conv."):   # Upsample module: only `.conv`
                return f"up_blocks.{level}.upsamplers.0.{rest}"
            if m == 1:
                return f"up_blocks.{level}.attentions.{j}.{rest}"
    raise KeyError(f"no diffusers name for LDM UNet parameter {name}")


def diffusers_to_ldm_vae(name: str, config: dict) -> str:
    """diffusers AutoencoderKL parameter name -> LDM AutoencoderKL name (no prefix)."""
    n_levels = len(config["block_out_channels"])
    p = name.split(".")
    if p[0] in ("quant_conv", "post_quant_conv"):
        return name
    coder, sub = p[0], p[1]
    assert coder in ("encoder", "decoder"), name
    if sub in ("conv_in", "conv_out"):
        return name
    if sub == "conv_norm_out":
        return f"{coder}.norm_out.{'.'.join(p[2:])}"
    if sub == "mid_block":
        kind, j, rest = p[2], int(p[3]), ".".join(p[4:])
        if kind == "resnets":
            return f"{coder}.mid.block_{j + 1}.{_rename_head(rest, VAE_RESNET_TO_LDM)}"
        if kind == "attentions" and j == 0:
            return f"{coder}.mid.attn_1.{_rename_head(rest, VAE_ATTN_TO_LDM)}"
    if sub in ("down_blocks", "up_blocks"):
        i, kind, j, rest = int(p[2]), p[3], int(p[4]), ".".join(p[5:])
        # LDM numbers decoder levels from the lowest resolution up, diffusers from the top down.
        ldm_level, ldm_list = (i, "down") if sub == "down_blocks" else (n_levels - 1 - i, "up")
        if kind == "resnets":
            return f"{coder}.{ldm_list}.{ldm_level}.block.{j}.{_rename_head(rest, VAE_RESNET_TO_LDM)}"
        if kind in ("downsamplers", "upsamplers") and j == 0 and rest.startswith("conv."):
            return f"{coder}.{ldm_list}.{ldm_level}.{kind[:-len('rs')]}.{rest}"
    raise KeyError(f"no LDM name for diffusers VAE parameter {name}")


def ldm_to_diffusers_vae(name: str, config: dict) -> str:
    """LDM AutoencoderKL parameter name (no prefix) -> diffusers name."""
    n_levels = len(config["block_out_channels"])
    p = name.split(".")
    if p[0] in ("quant_conv", "post_quant_conv"):
        return name
    coder, sub = p[0], p[1]
    if coder in ("encoder", "decoder"):
        if sub in ("conv_in", "conv_out"):
            return name
        if sub == "norm_out":
            return f"{coder}.conv_norm_out.{'.'.join(p[2:])}"
        if sub == "mid":
            block, rest = p[2], ".".join(p[3:])
            if block in ("block_1", "block_2"):
                j = int(block[-1]) - 1
                return f"{coder}.mid_block.resnets.{j}.{_rename_head(rest, {v: k for k, v in VAE_RESNET_TO_LDM.items()})}"
            if block == "attn_1":
                return f"{coder}.mid_block.attentions.0.{_rename_head(rest, {v: k for k, v in VAE_ATTN_TO_LDM.items()})}"
        if (coder, sub) in (("encoder", "down"), ("decoder", "up")):
            ldm_level, what, rest = int(p[2]), p[3], ".".join(p[4:])
            i = ldm_level if sub == "down" else n_levels - 1 - ldm_level
            blocks = "down_blocks" if sub == "down" else "up_blocks"
            if what == "block":
                j, rest2 = int(p[4]), ".".join(p[5:])
                return (f"{coder}.{blocks}.{i}.resnets.{j}."
                        f"{_rename_head(rest2, {v: k for k, v in VAE_RESNET_TO_LDM.items()})}")
            if what in ("downsample", "upsample") and rest.startswith("conv."):
                return f"{coder}.{blocks}.{i}.{what}rs.0.{rest}"
    raise KeyError(f"no diffusers name for LDM VAE parameter {name}")


def is_vae_attn_conv_ldm(ldm_name: str) -> bool:
    """LDM mid.attn_1.{q,k,v,proj_out}.weight: stored as [C, C, 1, 1]."""
    p = ldm_name.split(".")
    return len(p) == 5 and p[1:3] == ["mid", "attn_1"] and p[3] in VAE_ATTN_CONV_LDM and p[4] == "weight"


def ldm_schedule_buffers() -> dict[str, torch.Tensor]:
    """The schedule buffers LDM's DDPM registers (and every SD 1.x .ckpt carries):
    scaled_linear betas and alphas_cumprod, computed in float64 (make_beta_schedule +
    np.cumprod) and stored as float32."""
    betas = np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=np.float64) ** 2
    alphas_cumprod = np.cumprod(1.0 - betas)
    return {"betas": torch.from_numpy(betas.astype(np.float32)),
            "alphas_cumprod": torch.from_numpy(alphas_cumprod.astype(np.float32))}


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def diffusers_folder_to_ldm(folder: Path) -> dict[str, torch.Tensor]:
    """The three diffusers components of `folder` as one LDM state dict (float32,
    model weights only), keys sorted."""
    unet_cfg = json.loads((folder / "unet" / "config.json").read_text())
    vae_cfg = json.loads((folder / "vae" / "config.json").read_text())
    out: dict[str, torch.Tensor] = {}
    for k, v in read_safetensors(folder / "unet" / "diffusion_pytorch_model.safetensors").items():
        out[LDM_UNET_PREFIX + diffusers_to_ldm_unet(k, unet_cfg)] = v
    for k, v in read_safetensors(folder / "vae" / "diffusion_pytorch_model.safetensors").items():
        ldm = diffusers_to_ldm_vae(k, vae_cfg)
        if is_vae_attn_conv_ldm(ldm):
            assert v.ndim == 2, (k, v.shape)
            v = v[:, :, None, None]               # linear [C, C] -> 1x1 conv [C, C, 1, 1]
        out[LDM_VAE_PREFIX + ldm] = v
    for k, v in read_safetensors(folder / "text_encoder" / "model.safetensors").items():
        assert k.startswith("text_model."), k
        out[LDM_TEXT_PREFIX + k] = v
    assert all(v.dtype == torch.float32 for v in out.values())
    return {k: out[k].contiguous().clone() for k in sorted(out)}


def ldm_to_diffusers_components(sd: dict[str, torch.Tensor], folder: Path) -> dict[str, dict[str, torch.Tensor]]:
    """Split an LDM state dict into {"unet", "vae", "text_encoder"} diffusers state
    dicts, the way a loader would: route by prefix, rename, squeeze the VAE attention
    1x1 convs, and ignore everything else (EMA, schedule buffers, position_ids)."""
    unet_cfg = json.loads((folder / "unet" / "config.json").read_text())
    vae_cfg = json.loads((folder / "vae" / "config.json").read_text())
    comps: dict[str, dict[str, torch.Tensor]] = {"unet": {}, "vae": {}, "text_encoder": {}}
    for k, v in sd.items():
        if k.startswith(LDM_UNET_PREFIX):
            comps["unet"][ldm_to_diffusers_unet(k[len(LDM_UNET_PREFIX):], unet_cfg)] = v
        elif k.startswith(LDM_VAE_PREFIX):
            ldm = k[len(LDM_VAE_PREFIX):]
            if is_vae_attn_conv_ldm(ldm):
                assert v.shape[2:] == (1, 1), (k, v.shape)
                v = v[:, :, 0, 0]
            comps["vae"][ldm_to_diffusers_vae(ldm, vae_cfg)] = v
        elif k.startswith(LDM_TEXT_PREFIX) and not k.endswith(".position_ids"):
            comps["text_encoder"][k[len(LDM_TEXT_PREFIX):]] = v
    return comps


def make_single_file(folder: Path, out_dir: Path) -> None:
    model = diffusers_folder_to_ldm(folder)
    extras = {"model_ema.decay": torch.tensor(0.9999, dtype=torch.float32),
              "model_ema.num_updates": torch.tensor(0, dtype=torch.int32),
              **ldm_schedule_buffers()}
    position_ids = {LDM_TEXT_PREFIX + "text_model.embeddings.position_ids":
                    torch.arange(77, dtype=torch.int64)[None, :]}

    # fp16 safetensors: model weights in F16, the extra buffers keep their dtypes.
    st_path = out_dir / "tiny-sd-single.safetensors"
    save_safetensors({**{k: v.to(torch.float16) for k, v in model.items()}, **extras}, st_path,
                     {"generator": GENERATOR_NOTE, "source": "Tests/Fixtures/tiny-sd (this script)",
                      "layout": "CompVis/LDM single file: model.diffusion_model., first_stage_model., "
                                "cond_stage_model.transformer.text_model.",
                      "dtype": "model weights float16; model_ema.*, betas, alphas_cumprod as written"})

    # fp32 Lightning-style .ckpt (torch.save zip), with position_ids as real SD 1.x files have.
    state_dict = {k: v for k, v in sorted({**model, **extras, **position_ids}.items())}
    ckpt_path = out_dir / "tiny-sd-single.ckpt"
    torch_save_deterministic({"state_dict": state_dict, "global_step": 1, "epoch": 0}, ckpt_path)

    # --- verify: read both files back, convert with the independent inverse, compare
    # with the diffusers folder tensor by tensor.
    reference = {"unet": read_safetensors(folder / "unet" / "diffusion_pytorch_model.safetensors"),
                 "vae": read_safetensors(folder / "vae" / "diffusion_pytorch_model.safetensors"),
                 "text_encoder": read_safetensors(folder / "text_encoder" / "model.safetensors")}
    ckpt = torch.load(ckpt_path, weights_only=True)
    assert set(ckpt) == {"state_dict", "global_step", "epoch"} and ckpt["global_step"] == 1
    from_ckpt = ldm_to_diffusers_components(ckpt["state_dict"], folder)
    from_st = ldm_to_diffusers_components(read_safetensors(st_path), folder)
    for comp, ref in reference.items():
        for got, dtype, what in ((from_ckpt[comp], torch.float32, "ckpt"), (from_st[comp], torch.float16, "st")):
            assert set(got) == set(ref), (what, comp, sorted(set(got) ^ set(ref))[:5])
            for k, v in ref.items():
                assert got[k].dtype == dtype and got[k].shape == v.shape, (what, comp, k)
                assert torch.equal(got[k], v.to(dtype)), (what, comp, k)
    n_model = sum(len(r) for r in reference.values())
    assert len(ckpt["state_dict"]) == n_model + len(extras) + 1

    # Cross-check with diffusers' own single-file converter (configs from the folder).
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import logging as diffusers_logging
    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    for path, dtype in ((st_path, torch.float16), (ckpt_path, torch.float32)):
        pipe = StableDiffusionPipeline.from_single_file(str(path), config=str(folder), local_files_only=True,
                                                        safety_checker=None, torch_dtype=dtype)
        for comp, ref in reference.items():
            got = getattr(pipe, comp).state_dict()
            if comp == "text_encoder":      # transformers 5 names lack the text_model. prefix
                got = {k if k.startswith("text_model.") else "text_model." + k: v for k, v in got.items()}
            assert set(got) == set(ref), (path.name, comp)
            for k, v in ref.items():
                assert torch.equal(got[k], v.to(dtype)), ("diffusers from_single_file", path.name, comp, k)
    print(f"   {n_model} model tensors round-trip exactly (ckpt fp32, safetensors fp16; own inverse and "
          "diffusers from_single_file)", flush=True)


# ============================================================================
# 8. Full-size SD 1.5-architecture folder (random weights, benchmarks only)
# ============================================================================

SD15_UNET = dict(
    sample_size=64,
    in_channels=4,
    out_channels=4,
    center_input_sample=False,
    flip_sin_to_cos=True,
    freq_shift=0,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    block_out_channels=(320, 640, 1280, 1280),
    layers_per_block=2,
    downsample_padding=1,
    mid_block_scale_factor=1,
    act_fn="silu",
    norm_num_groups=32,
    norm_eps=1e-5,
    cross_attention_dim=768,
    attention_head_dim=8,
)

SD15_VAE = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(128, 256, 512, 512),
    layers_per_block=2,
    act_fn="silu",
    latent_channels=4,
    norm_num_groups=32,
    sample_size=512,
    scaling_factor=0.18215,
)

SD15_TEXT = dict(  # openai/clip-vit-large-patch14 text tower, as in SD 1.5's text_encoder/config.json
    vocab_size=49408,
    hidden_size=768,
    intermediate_size=3072,
    projection_dim=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    max_position_embeddings=77,
    hidden_act="quick_gelu",
    layer_norm_eps=1e-5,
    attention_dropout=0.0,
    dropout=0.0,
    initializer_range=0.02,
    initializer_factor=1.0,
    bos_token_id=0,
    eos_token_id=2,
    pad_token_id=1,
)


def make_full_size(out_dir: Path) -> None:
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    vocab, merges = load_clip_bpe()
    print("building SD 1.5 UNet (random init) ...", flush=True)
    torch.manual_seed(seed_for("sd15.unet"))
    unet = UNet2DConditionModel(**SD15_UNET)
    print("building SD 1.5 VAE ...", flush=True)
    torch.manual_seed(seed_for("sd15.vae"))
    vae = AutoencoderKL(**SD15_VAE)
    print("building CLIP ViT-L/14 text encoder ...", flush=True)
    torch.manual_seed(seed_for("sd15.text_encoder"))
    text_encoder = CLIPTextModel(CLIPTextConfig(**SD15_TEXT))

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        write_clip_tokenizer_files(Path(tmp) / "tokenizer", vocab, merges)
        tokenizer = CLIPTokenizer.from_pretrained(str(Path(tmp) / "tokenizer"))

    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=PNDMScheduler(**SD15_SCHEDULER), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    print(f"saving to {out_dir} ...", flush=True)
    pipe.save_pretrained(str(out_dir), safe_serialization=True)
    write_clip_tokenizer_files(out_dir / "tokenizer", vocab, merges)
    add_text_model_prefix(out_dir / "text_encoder")
    for m, name in ((unet, "unet"), (vae, "vae"), (text_encoder, "text_encoder")):
        n = sum(p.numel() for p in m.parameters())
        print(f"  {name}: {n:,} parameters", flush=True)


# ============================================================================
# main
# ============================================================================


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full-size", metavar="DIR", type=Path,
                    help="write a full-size SD 1.5-architecture diffusers folder with random weights into DIR "
                         "(instead of the test fixtures)")
    args = ap.parse_args()

    if args.full_size is not None:
        make_full_size(args.full_size)
        return

    FIXTURES.mkdir(parents=True, exist_ok=True)
    print("A  kernels.safetensors", flush=True)
    make_kernels(FIXTURES)

    print("B  tiny-sd/", flush=True)
    vocab, merges = load_clip_bpe()
    slow_tok = SlowCLIPTokenizer(vocab, merges)
    build_tiny_pipeline(FIXTURES / "tiny-sd", vocab, merges)
    pipe = load_pipeline(FIXTURES / "tiny-sd")  # goldens come from the weights as saved

    print("C  blocks.safetensors", flush=True)
    make_blocks(pipe, slow_tok, FIXTURES)

    print("D  tokenizer_cases.json", flush=True)
    notes = make_tokenizer_cases(FIXTURES / "tiny-sd" / "tokenizer", slow_tok, FIXTURES)
    for n in notes:
        print("   tokenizer difference:", n)

    print("E  checkpoints/", flush=True)
    make_checkpoints(FIXTURES / "checkpoints")

    print("F  tiny-sd-single.safetensors, tiny-sd-single.ckpt", flush=True)
    make_single_file(FIXTURES / "tiny-sd", FIXTURES)
    print("done", flush=True)


if __name__ == "__main__":
    main()
