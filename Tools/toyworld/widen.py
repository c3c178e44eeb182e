"""Net2Net widening of a diffusers UNet2DConditionModel: each level's channels times a whole
factor f (1 keeps it), starting from the trained narrower UNet instead of from scratch.

A widened channel becomes f adjacent copies of itself ([c0, c0', c1, c1', ...] for f = 2): a
GroupNorm's group then holds the copies of the same channels it held before (so its statistics do
not move), a LayerNorm sees the same mean and variance, and a layer reading a widened input splits
each old weight between the copies, as w(1/f + d_k) with small random d_k summing to 0, so the sum
is the old weight (the same output) and the copies get different gradients (they grow apart). The
query of an attention whose head width grows f times is scaled by 1/sqrt(f) (q.k grows f times,
the softmax's 1/sqrt(head width) shrinks by sqrt(f) only). The sinusoidal timestep features at f
times the width hold the old frequencies at every f-th position; the new ones start at weight 0.

Exact where every level widens by the same factor. Otherwise the up-block resnets that concatenate
inputs of two factors normalise groups that straddle the seam differently, so the widened UNet
starts close to, not at, the old one (test_train.py measures how close). A resnet whose input and
output widths become equal would lose its shortcut conv (diffusers then adds the input as it is),
so such factors are refused."""

from __future__ import annotations

import math
import re

import torch

Segment = tuple[int, int]        # (old channels, factor)


def _layouts(config: dict, factors: list[int]) -> dict[str, tuple[list[Segment], list[Segment]]]:
    """(output layout, input layout) of every module whose weights carry channel axes, by name
    prefix; a layout lists the concatenated segments of that axis."""
    ch = list(config["block_out_channels"])
    n, layers = len(ch), config["layers_per_block"]
    seg = lambda l: [(ch[l], factors[l])]                                # noqa: E731
    temb = [(4 * ch[0], factors[0])]
    cross = [(config["cross_attention_dim"], 1)]
    out: dict[str, tuple[list[Segment], list[Segment]]] = {
        "conv_in": (seg(0), [(config["in_channels"], 1)]),
        "time_embedding.linear_2": (temb, temb),
        "conv_norm_out": (seg(0), seg(0)),
        "conv_out": ([(config["out_channels"], 1)], seg(0)),
    }

    def resnet(prefix, lin: list[Segment], l: int):
        out[f"{prefix}.norm1"] = (lin, lin)
        out[f"{prefix}.conv1"] = (seg(l), lin)
        out[f"{prefix}.conv_shortcut"] = (seg(l), lin)
        out[f"{prefix}.time_emb_proj"] = (seg(l), temb)
        for k in ("norm2", "conv2"):
            out[f"{prefix}.{k}"] = (seg(l), seg(l))

    def attention(prefix, l: int):
        ff = [(4 * ch[l], factors[l])]
        for k in ("norm", "proj_in", "proj_out"):
            out[f"{prefix}.{k}"] = (seg(l), seg(l))
        t = f"{prefix}.transformer_blocks.0"
        for k in ("norm1", "norm2", "norm3", "attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0",
                  "attn2.to_q", "attn2.to_out.0"):
            out[f"{t}.{k}"] = (seg(l), seg(l))
        for k in ("attn2.to_k", "attn2.to_v"):
            out[f"{t}.{k}"] = (seg(l), cross)
        out[f"{t}.ff.net.0.proj"] = (ff + ff, seg(l))                   # GEGLU: [value, gate]
        out[f"{t}.ff.net.2"] = (seg(l), ff)

    for i in range(n):
        for j in range(layers):
            resnet(f"down_blocks.{i}.resnets.{j}", seg(i - 1 if i > 0 and j == 0 else i), i)
            attention(f"down_blocks.{i}.attentions.{j}", i)
        out[f"down_blocks.{i}.downsamplers.0.conv"] = (seg(i), seg(i))
    for j in range(2):
        resnet(f"mid_block.resnets.{j}", seg(n - 1), n - 1)
    attention("mid_block.attentions.0", n - 1)
    for u in range(n):
        l = n - 1 - u
        for j in range(layers + 1):
            # diffusers' up block: the first resnet reads the level below's output, the last one
            # the skip of the level above (the down path's downsampler or conv_in)
            first = min(l + 1, n - 1) if j == 0 else l
            skip = max(l - 1, 0) if j == layers else l
            resnet(f"up_blocks.{u}.resnets.{j}", seg(first) + seg(skip), l)
            attention(f"up_blocks.{u}.attentions.{j}", l)
        out[f"up_blocks.{u}.upsamplers.0.conv"] = (seg(l), seg(l))
    return out


def _source_index(layout: list[Segment]) -> torch.Tensor:
    """For each new index along an axis, the old index it copies."""
    parts, offset = [], 0
    for size, f in layout:
        parts.append(offset + torch.arange(size * f) // f)
        offset += size
    return torch.cat(parts)


def _input_split(layout: list[Segment], rows: int, noise: float, g: torch.Generator) -> torch.Tensor:
    """[rows, new inputs] factors: 1 for a kept input, 1/f + d_k (d summing to 0) for f copies."""
    parts = []
    for size, f in layout:
        d = (torch.rand(rows, size, f, generator=g) * 2 - 1) * noise / f
        d = d - d.mean(-1, keepdim=True)
        parts.append((1 / f + d).reshape(rows, size * f))
    return torch.cat(parts, 1)


def _time_features(old_width: int, f: int) -> torch.Tensor:
    """New index -> old index (or -1) of the sinusoidal timestep features at f times the width:
    [cos | sin] halves whose frequencies 1e4^(-k/half) at new k = f m are the old m's."""
    half = old_width // 2
    src = torch.full((f * old_width,), -1, dtype=torch.long)
    for part in range(2):                    # cos half, sin half (either order)
        for m in range(half):
            src[part * f * half + f * m] = part * half + m
    return src


def widened_state(old: dict[str, torch.Tensor], config: dict, factors: list[int],
                  noise: float = 0.1, seed: int = 0) -> dict[str, torch.Tensor]:
    """The state dict of the same UNet with level l's channels times factors[l] (a whole number)."""
    ch = config["block_out_channels"]
    if len(factors) != len(ch) or any(int(f) != f or f < 1 for f in factors):
        raise ValueError(f"widen: one whole factor per level, got {factors}")
    new_ch = [c * f for c, f in zip(ch, factors)]
    for l in range(1, len(ch)):
        if ch[l - 1] != ch[l] and new_ch[l - 1] == new_ch[l]:
            raise ValueError(f"widen: levels {l - 1} and {l} would both be {new_ch[l]} wide, and the resnet "
                             f"between them would lose its shortcut conv")
    layouts = _layouts(config, factors)
    g = torch.Generator().manual_seed(seed)
    new = {}
    for name, w in old.items():
        module, kind = name.rsplit(".", 1)
        if module == "time_embedding.linear_1":
            lout = [(4 * config["block_out_channels"][0], factors[0])]
            w = w[_source_index(lout)]                                   # [new out, old in]
            if kind == "weight" and factors[0] > 1:
                src = _time_features(w.shape[1], factors[0])
                w = torch.where(src[None] >= 0, w[:, src.clamp(min=0)], torch.zeros(()))
            new[name] = w.clone()
            continue
        if module not in layouts:
            raise KeyError(f"widen: no channel layout for {name}")
        lout, lin = layouts[module]
        w = w[_source_index(lout)]                                       # rows copied
        if kind == "weight" and w.dim() >= 2:
            rows = w.shape[0]
            w = w[:, _source_index(lin)]                                 # [new out, new in, ...]
            split = _input_split(lin, rows, noise, g)
            w = w * split.reshape(rows, -1, *([1] * (w.dim() - 2)))
            if re.search(r"attn[12]\.to_q$", module):
                w = w / math.sqrt(lout[0][1])                            # head width times f
        new[name] = w.clone()
    return new


def widened_config(config: dict, factors: list[int]) -> dict:
    out = dict(config)
    out["block_out_channels"] = [c * f for c, f in zip(config["block_out_channels"], factors)]
    return out
