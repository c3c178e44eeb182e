"""Attention grounding for the demo UNet: TokenCompose's token and pixel losses.

A caption word that names an object (its shape or class word, its colour, its size) should draw
that object, and its cross-attention should fall on it: that is what a DAAM heat map shows on
SD 1.5. The demo UNet, trained on denoising alone, did not learn it: its maps for "star" were
flat (4-9 of 9 everywhere) and peaked outside the star in 17 of 19 held-out captions; the
16x16 layers attended to the padding tokens, which the causal text encoder fills with the whole
caption, and two objects' places and colours came out unbound (2 of 23 captions placing two
objects). The world knows every object's mask and which words name it, so the UNet is taught
grounding directly, as TokenCompose (Wang et al., CVPR 2024) teaches SD 1.4 from COCO masks:

- token loss: for each grounded token, (1 - its attention mass inside the object / its whole
  mass)^2, in every cross-attention layer, heads averaged;
- pixel loss: binary cross-entropy of each pixel's attention on the token against the mask.

The cache holds, for each train scene, its objects' masks at 16x16 (area fractions) and, for its
own caption and each of --unet-place-captions more, which objects each of the 77 token positions
names (a bit per object).
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import torch

MAX_OBJECTS = 4                                   # scenes hold at most two; bits of a uint8
GROUND_KINDS = ("shape", "class", "colour", "size")  # mentions that name a whole object
LATENT = 16


def word_token_positions(tok, text: str) -> tuple[list[int], list[list[int]]]:
    """(SD 1.x ids of `text`, the token positions of each whitespace word). CLIP's pre-tokenizer
    never joins across whitespace, so the words' tokens, concatenated, are the caption's."""
    ids, positions = [tok.bos_token_id], []
    for word in text.split():
        w = tok(word, add_special_tokens=False).input_ids
        positions.append(list(range(len(ids), len(ids) + len(w))))
        ids += w
    ids = ids[:tok.model_max_length - 1] + [tok.eos_token_id]
    ids += [tok.pad_token_id] * (tok.model_max_length - len(ids))
    return ids, positions


def caption_bits(tok, text: str, mentions) -> tuple[np.ndarray, np.ndarray]:
    """([77] ids, [77] uint8: bit o set where the token names object o)."""
    ids, positions = word_token_positions(tok, text)
    bits = np.zeros(tok.model_max_length, np.uint8)
    for m in mentions:
        if m.kind not in GROUND_KINDS:
            continue
        for p in positions[m.word_index]:
            if p < tok.model_max_length - 1:
                for o in m.object_ids:
                    bits[p] |= 1 << o
    return np.array(ids, np.int32), bits


def _chunk(job):
    start, n, k, rate, size, seed, tokenizer_dir = job
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from transformers import CLIPTokenizer
    from toyworld import world
    tok = CLIPTokenizer.from_pretrained(tokenizer_dir)
    f = size // LATENT
    masks = np.zeros((n, MAX_OBJECTS, LATENT, LATENT), np.float16)
    ids = np.zeros((n, k + 1, tok.model_max_length), np.int32)
    bits = np.zeros((n, k + 1, tok.model_max_length), np.uint8)
    for j in range(n):
        s = world.scene("train", start + j, size, seed)
        assert len(s.objects) <= MAX_OBJECTS and all(o.id < MAX_OBJECTS for o in s.objects)
        for o in s.objects:
            masks[j, o.id] = o.mask.reshape(LATENT, f, LATENT, f).mean(axis=(1, 3))   # [16, 16] area
        texts = [(s.caption, s.mentions), *world.place_caption_variants(s, k, rate, seed)]
        for v, (text, mentions) in enumerate(texts):
            ids[j, v], bits[j, v] = caption_bits(tok, text, mentions)
    return start, (masks, ids, bits)


def build_cache(path: Path, n: int, k: int, rate: float, size: int, seed: int, tokenizer_dir: str,
                workers: int, chunk: int = 500) -> None:
    """Writes path (.npz): masks [N, MAX_OBJECTS, 16, 16] fp16, ids and bits [N, K+1, 77]."""
    from toyworld import trainkit as tk
    jobs = [(s, min(chunk, n - s), k, rate, size, seed, tokenizer_dir) for s in range(0, n, chunk)]
    parts = dict(tk.in_workers(_chunk, jobs, workers))
    masks, ids, bits = (np.concatenate([parts[s][i] for s in sorted(parts)]) for i in range(3))
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, masks=masks, ids=ids, bits=bits)
    tmp.replace(path)


class AttentionCapture:
    """Keeps the cross-attention probabilities of every attn2 layer of a diffusers UNet while
    `active` (wrapping each layer's get_attention_scores, which the plain processor calls)."""

    def __init__(self, unet):
        self.active, self.maps = False, []
        for name, m in unet.named_modules():
            if name.endswith("attn2"):
                m.get_attention_scores = self._wrap(m)

    def _wrap(self, attn):
        scores = type(attn).get_attention_scores.__get__(attn)

        def get_attention_scores(query, key, attention_mask=None):
            probs = scores(query, key, attention_mask)   # [B * heads, HW, 77]
            if self.active:
                self.maps.append((attn.heads, probs))
            return probs
        return get_attention_scores

    def take(self) -> list:
        maps, self.maps = self.maps, []
        return maps


def grounding_losses(maps, masks: torch.Tensor, bits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(token loss, pixel loss), means over the grounded tokens of every layer.

    maps: [(heads, probs [B * heads, HW, 77])]; masks: [B, MAX_OBJECTS, 16, 16] area fractions;
    bits: [B, 77] uint8, zero rows for captions not grounded (dropped to the empty prompt)."""
    b = masks.shape[0]
    names = ((bits[:, :, None].long() >> torch.arange(MAX_OBJECTS)) & 1).bool()   # [B, 77, O]
    grounded = names.any(-1)                                                        # [B, 77]
    zero = masks.new_zeros(())
    if not bool(grounded.any()):
        return zero, zero
    targets: dict[int, torch.Tensor] = {}   # per resolution: layers at one share it
    token_losses, pixel_losses = [], []
    for heads, probs in maps:
        hw = probs.shape[1]
        if hw not in targets:
            m = torch.nn.functional.adaptive_avg_pool2d(masks.float(), math.isqrt(hw))  # [B, O, r, r]
            # each object's mask relative to its fullest cell: where at this resolution it is most
            m = (m / m.flatten(2).amax(-1).clamp_min(1e-6)[..., None, None]).flatten(2)  # [B, O, HW]
            targets[hw] = (names[..., None] * m[:, None]).amax(2)[grounded]          # [G, HW]
        a = probs.float().view(b, heads, hw, -1).mean(1).transpose(1, 2)[grounded]  # [G, HW]
        target = targets[hw]
        inside = (a * target).sum(-1) / a.sum(-1).clamp_min(1e-8)                   # [G]
        token_losses.append(((1 - inside) ** 2).mean())
        pixel_losses.append(torch.nn.functional.binary_cross_entropy(a.clamp(1e-6, 1 - 1e-6), target))
    return torch.stack(token_losses).mean(), torch.stack(pixel_losses).mean()
