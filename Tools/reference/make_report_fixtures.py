#!/usr/bin/env python3
"""Goldens for the DAAM heat maps of Sources/Reports (HeatMap.swift, BicubicResize.swift, ColorMap.swift).

Usage (from the repository root; needs matplotlib for the colour maps: pip install matplotlib):

    /work/venv/bin/python Tools/reference/make_report_fixtures.py

Writes
  Tests/Fixtures/report/heatmaps.safetensors   (about 200 KB) and
  Sources/Reports/ColorMapTables.swift        (matplotlib's viridis table, 256 RGB entries; CC0).

The input is a synthetic trace: `cross` float32 [E=3, T=8, h=8, w=8] (as attention.safetensors holds it)
and the token rows of its run.json (metadata "tokens", JSON): 0 BOS, 1 "a", 2-3 "witch" (two sub-tokens),
4 "cat", 5 EOS, 6-7 padding. Hot spots: witch around latent pixel (row 2, col 5), cat around (6, 1),
"a" a flat low map; BOS takes most of the attention, as in real traces (and must not count).

DAAM's display recipe, computed here with numpy in float64 (rounded once to float32):
  word map   = mean over the word's sub-token positions of cross[e, t]       [h, w] per evaluation
  heat       = sum of the word maps over the evaluation window               [h, w]
  upsampled  = bicubic(heat, H, W), clamped at 0                             [H, W]
  perword    = (u - min u) / (max u - min u) per word (0 where max == min)
  global     = (u - min) / (max - min), min and max over all words' upsampled maps
The bicubic resize is our own numpy implementation of torch.nn.functional.interpolate(mode="bicubic",
align_corners=False) semantics: source coordinate s = (in/out)·(o + 0.5) − 0.5 (not clamped), taps
floor(s) − 1 … floor(s) + 2 clamped to [0, in − 1], Keys cubic convolution with A = −0.75; separable (rows
of the output = Wy · X · Wxᵀ). The script asserts it equals torch's within 1e-5 (float32) for every case.

Keys (all float32 unless said):
  cross                       [3, 8, 8, 8]  the input
  perword.64x64, global.64x64 [3, 64, 64]   all evaluations, H = W = 64
  perword.48x80, global.48x80 [3, 48, 80]   all evaluations, H = 48, W = 80 (non-square)
  window.perword.12x10        [3, 12, 10]   evaluations 1..<3 only, H = 12, W = 10
  strip.4x6                   [3, 3, 4, 6]  [word, evaluation, H, W]: each evaluation's word map upsampled
                                            (here downsampled: 8x8 -> 4x6) and clamped, normalised per word
                                            over all its evaluations (one min and max per word)
  shares                      [3, 3]        [evaluation, word]: sum over pixels of the word map / sum over
                                            all words' maps (latent resolution)
  jet_bytes, viridis_bytes    U8 [256, 3]   matplotlib's cmap(i / 255 ... ) lookup tables as bytes
                                            (cmap(x, bytes=True) for the 256 bins)

Deterministic: seeded numpy generator, our own writer with a sorted header; re-running gives byte-identical files.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps

torch.set_num_threads(2)

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "Tests" / "Fixtures" / "report" / "heatmaps.safetensors"
TABLES = REPO / "Sources" / "Reports" / "ColorMapTables.swift"

A = -0.75  # PyTorch's cubic convolution coefficient


def save_safetensors(path: Path, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    """A safetensors file with a sorted, compact header (safetensors' own writer orders the metadata
    differently from run to run); data 8-byte aligned, little-endian, tensors in name order."""
    dtypes = {np.dtype(np.float32): "F32", np.dtype(np.uint8): "U8"}
    header: dict = {"__metadata__": metadata}
    offset, blobs = 0, []
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        data = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtypes[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


# ---------------------------------------------------------------- bicubic (torch semantics, numpy)

def cubic_weights(t: float) -> list[float]:
    """Weights of the taps floor(s)-1 … floor(s)+2 for the fractional part t of the source coordinate."""
    def near(x):  # |x| <= 1
        return ((A + 2) * x - (A + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A

    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in] matrix of one axis' bicubic resampling; clamped taps add onto the border sample."""
    m = np.zeros((n_out, n_in))
    scale = n_in / n_out
    for o in range(n_out):
        s = scale * (o + 0.5) - 0.5
        i0 = math.floor(s)
        for k, wk in enumerate(cubic_weights(s - i0)):
            m[o, min(max(i0 - 1 + k, 0), n_in - 1)] += wk
    return m


def bicubic(plane: np.ndarray, height: int, width: int) -> np.ndarray:
    """[h, w] -> [height, width]."""
    wy = resize_matrix(plane.shape[0], height)  # [H, h]
    wx = resize_matrix(plane.shape[1], width)   # [W, w]
    return wy @ plane @ wx.T                    # [H, W]


worst_vs_torch = 0.0
worst_vs_torch64 = 0.0


def checked_bicubic(plane: np.ndarray, height: int, width: int) -> np.ndarray:
    """bicubic(), asserted against torch's float32 F.interpolate on the same float32 input."""
    global worst_vs_torch, worst_vs_torch64
    ours = bicubic(plane.astype(np.float64), height, width)
    # torch sees the plane rounded to float32; so does this check's copy of ours.
    x = torch.from_numpy(plane.astype(np.float32))[None, None]  # [1, 1, h, w]
    mine = bicubic(x[0, 0].double().numpy(), height, width)
    ref = F.interpolate(x, size=(height, width), mode="bicubic", align_corners=False)[0, 0].double().numpy()
    diff = float(np.abs(mine - ref).max())
    assert diff < 1e-5, f"numpy bicubic differs from torch by {diff} for {plane.shape} -> {(height, width)}"
    worst_vs_torch = max(worst_vs_torch, diff)
    # In float64 the two must agree to rounding: any difference would be a semantic one.
    ref64 = F.interpolate(x.double(), size=(height, width), mode="bicubic", align_corners=False)[0, 0].numpy()
    worst_vs_torch64 = max(worst_vs_torch64, float(np.abs(mine - ref64).max()))
    assert worst_vs_torch64 < 1e-12, worst_vs_torch64
    return ours


# ---------------------------------------------------------------- the synthetic trace

E, T, H, W = 3, 8, 8, 8
TOKENS = [
    {"position": 0, "id": 49406, "text": "<|startoftext|>", "piece": -1, "weight": 1.0, "chunk": 0},
    {"position": 1, "id": 320, "text": "a", "piece": 0, "word": "a", "word_index": 0, "weight": 1.0, "chunk": 0},
    {"position": 2, "id": 30, "text": "wit", "piece": 0, "word": "witch", "word_index": 1, "weight": 1.0, "chunk": 0},
    {"position": 3, "id": 31, "text": "ch", "piece": 0, "word": "witch", "word_index": 1, "weight": 1.0, "chunk": 0},
    {"position": 4, "id": 2368, "text": "cat", "piece": 0, "word": "cat", "word_index": 2, "weight": 1.0, "chunk": 0},
    {"position": 5, "id": 49407, "text": "<|endoftext|>", "piece": -1, "weight": 1.0, "chunk": 0},
    {"position": 6, "id": 49407, "text": "<|endoftext|>", "piece": -1, "weight": 1.0, "chunk": 0},
    {"position": 7, "id": 49407, "text": "<|endoftext|>", "piece": -1, "weight": 1.0, "chunk": 0},
]
WORDS = [("a", [1]), ("witch", [2, 3]), ("cat", [4])]

rng = np.random.default_rng(20250607)
yy, xx = np.mgrid[0:H, 0:W]


def blob(cy, cx, sigma2):
    return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / sigma2)


cross = np.zeros((E, T, H, W))
for e in range(E):
    cross[e] = 0.01 * rng.random((T, H, W))
    cross[e, 0] += 8.0                                             # BOS soaks up attention
    cross[e, 1] += 0.05                                            # "a": flat
    cross[e, 2] += (0.4 + 0.3 * e) * blob(2, 5, 1.5)               # "wit" sharpens over time
    cross[e, 3] += (0.3 + 0.3 * e) * blob(2.3, 5.2, 2.0)           # "ch"
    cross[e, 4] += (0.9 - 0.2 * e) * blob(6, 1, 2.5)               # "cat" fades
    cross[e, 5:] += 0.2 * rng.random((3, H, W))                    # end / padding
cross = cross.astype(np.float32)                                   # [E, T, h, w], as a trace stores it
c64 = cross.astype(np.float64)


def word_maps(evals) -> list[np.ndarray]:
    """Per word: mean over sub-tokens, summed over the evaluations; [h, w] each."""
    return [c64[list(evals)][:, pos].mean(axis=1).sum(axis=0) for _, pos in WORDS]


def minmax(m, lo, hi):
    return np.zeros_like(m) if hi == lo else (m - lo) / (hi - lo)


def heat_maps(evals, height, width):
    up = [np.maximum(checked_bicubic(m, height, width), 0) for m in word_maps(evals)]  # [H, W] each
    perword = np.stack([minmax(u, u.min(), u.max()) for u in up])                       # [words, H, W]
    lo, hi = min(u.min() for u in up), max(u.max() for u in up)
    glob = np.stack([minmax(u, lo, hi) for u in up])                                    # [words, H, W]
    return perword, glob


out: dict[str, np.ndarray] = {"cross": cross}
for (hh, ww) in [(64, 64), (48, 80)]:
    pw, gl = heat_maps(range(E), hh, ww)
    out[f"perword.{hh}x{ww}"], out[f"global.{hh}x{ww}"] = pw, gl
out["window.perword.12x10"] = heat_maps(range(1, 3), 12, 10)[0]

strip = []
for wi in range(len(WORDS)):
    per_eval = [np.maximum(checked_bicubic(word_maps([e])[wi], 4, 6), 0) for e in range(E)]  # [4, 6] each
    lo, hi = min(u.min() for u in per_eval), max(u.max() for u in per_eval)
    strip.append(np.stack([minmax(u, lo, hi) for u in per_eval]))                       # [E, 4, 6]
out["strip.4x6"] = np.stack(strip)                                                      # [words, E, 4, 6]

sums = np.array([[m.sum() for m in word_maps([e])] for e in range(E)])                  # [E, words]
out["shares"] = sums / sums.sum(axis=1, keepdims=True)

# The checks also cover the identity case (same size) and a downsample.
checked_bicubic(cross[0, 2], 8, 8)
checked_bicubic(cross[0, 2], 3, 5)

# ---------------------------------------------------------------- colour maps

for name in ("jet", "viridis"):
    cmap = colormaps[name]
    assert cmap.N == 256
    xs = (np.arange(256) + 0.5) / 256                            # the centre of each bin
    out[f"{name}_bytes"] = cmap(xs, bytes=True)[:, :3].astype(np.uint8)  # [256, 3]

out = {k: (v if v.dtype == np.uint8 else v.astype(np.float32)) for k, v in sorted(out.items())}
OUT.parent.mkdir(parents=True, exist_ok=True)
save_safetensors(OUT, out, metadata={
    "generator": "Tools/reference/make_report_fixtures.py",
    "torch": torch.__version__, "numpy": np.__version__, "matplotlib": matplotlib.__version__,
    "tokens": json.dumps(TOKENS, sort_keys=True),
    "words": json.dumps(WORDS),
    "recipe": "sum over evaluations of the sub-token mean; bicubic (torch, align_corners=False); clamp >= 0; min-max",
})

# matplotlib's viridis as a Swift table (the floats matplotlib stores, so bytes come out as its own).
viridis = colormaps["viridis"].colors
lines = ",\n".join(f"        ({r!r}, {g!r}, {b!r})" for r, g, b in viridis)
TABLES.write_text(f"""// Generated by Tools/reference/make_report_fixtures.py from matplotlib {matplotlib.__version__}; do not edit.
// viridis by Stéfan van der Walt, Nathaniel Smith and Eric Firing, released under CC0.

extension ColorMap {{
    /// matplotlib's `viridis` lookup table: 256 RGB entries in [0, 1].
    static let viridisTable: [(Double, Double, Double)] = [
{lines},
    ]
}}
""")

print(f"wrote {OUT.relative_to(REPO)} ({OUT.stat().st_size} bytes) and {TABLES.relative_to(REPO)}")
print(f"max |numpy bicubic - torch| = {worst_vs_torch:.3g} (torch float32), {worst_vs_torch64:.3g} (torch float64)")
