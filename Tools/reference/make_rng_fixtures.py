#!/usr/bin/env python3
"""Random-number fixtures for Pareidolia's RNG tests (Tests/DiffusionTests/RandomTests.swift).

Usage (from the repository root):

    /work/venv/bin/python Tools/reference/make_rng_fixtures.py

Writes

* Tests/Fixtures/rng.safetensors: torch CPU-generator outputs,
  `torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed))`, float32;
* Tests/Fixtures/rng_philox.safetensors: a subset of the CUDA-generator values recorded on an
  H200 (../shared/data/torch_cuda_randn.safetensors, see its README), copied so the tests do not
  depend on the shared folder. Skipped (with a message) when that file is absent.

Keys (SEED is the decimal seed, SHAPE the shape joined with "x"):

rng.safetensors
    SEED/SHAPE              first draw after manual_seed, whole tensor
    SEED/1x4x64x64          whole tensor for seed 0 only; for the other seeds
    SEED/1x4x64x64/head     its first 256 values (flat) and
    SEED/1x4x64x64/tail     its last 256 values (flat)
    SEED/seq/1x4x8x8/0, /1  two consecutive [1,4,8,8] draws from one generator (vector path)
    SEED/seq/3/0, /1        two consecutive [3] draws (scalar path: the second starts with the
                            normal cached by the first)
    SEED/seq/mixed/0, /1, /2  [3], then [17] (vector path, leaves the cache alone), then [1]
                            (returns the normal cached by the [3] draw)

rng_philox.safetensors (values recorded from torch's CUDA generator, not recomputed)
    SEED/SHAPE/first        shapes 5, 16, 17, 1x4x8x8, 1x4x12x8, whole
    SEED/1x4x8x8/second     the second 1x4x8x8 draw
    0/1x4x64x64/first       whole for seed 0; head/tail (256 flat values each) for the others:
    SEED/1x4x64x64/first/head, SEED/1x4x64x64/first/tail
    SEED/1x4x96x64/first/head, SEED/1x4x96x64/first/tail

The files are written with a fixed header order, so reruns are byte-identical on the same torch
build. The CPU values depend on torch's x86 AVX2 Box-Muller kernel (recorded in the metadata:
torch version and CPU capability); ARM builds differ in the last bits.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import torch
from f32_safetensors import write_safetensors

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "Tests" / "Fixtures"
CUDA_SOURCE = REPO.parent / "shared" / "data" / "torch_cuda_randn.safetensors"

SEEDS = [0, 42, 3754952516, 1887838105]
SHAPES = [[1, 4, 8, 8], [5], [15], [16], [17], [3, 4], [1, 4, 9, 7]]
BIG = [1, 4, 64, 64]
EDGE = 256


def shape_name(shape: list[int]) -> str:
    return "x".join(str(d) for d in shape)


def randn_seq(seed: int, shapes: list[list[int]]) -> list[np.ndarray]:
    g = torch.Generator("cpu").manual_seed(seed)
    return [torch.randn(s, generator=g, dtype=torch.float32).numpy() for s in shapes]


def cpu_fixtures() -> None:
    t: dict[str, np.ndarray] = {}
    for seed in SEEDS:
        for shape in SHAPES:
            t[f"{seed}/{shape_name(shape)}"] = randn_seq(seed, [shape])[0]
        big = randn_seq(seed, [BIG])[0]
        if seed == 0:
            t[f"{seed}/{shape_name(BIG)}"] = big
        else:
            flat = big.reshape(-1)
            t[f"{seed}/{shape_name(BIG)}/head"] = flat[:EDGE]
            t[f"{seed}/{shape_name(BIG)}/tail"] = flat[-EDGE:]
        for i, a in enumerate(randn_seq(seed, [[1, 4, 8, 8], [1, 4, 8, 8]])):
            t[f"{seed}/seq/1x4x8x8/{i}"] = a
        for i, a in enumerate(randn_seq(seed, [[3], [3]])):
            t[f"{seed}/seq/3/{i}"] = a
        for i, a in enumerate(randn_seq(seed, [[3], [17], [1]])):
            t[f"{seed}/seq/mixed/{i}"] = a

    # Sanity: the documented test vectors (formats-rng-schedulers.md §1.8).
    first = t["0/1x4x64x64"].reshape(-1)
    assert abs(first[0] - -1.1258) < 1e-4 and abs(first[-1] - -1.0782) < 1e-4, first[[0, -1]]

    meta = {
        "generator": "Tools/reference/make_rng_fixtures.py",
        "torch_version": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "source": "torch.randn(shape, generator=torch.Generator('cpu').manual_seed(seed)), float32",
        "keys": (
            "SEED/SHAPE = first draw after manual_seed; SEED/1x4x64x64 whole for seed 0, "
            "/head and /tail = first and last 256 flat values for the other seeds; "
            "SEED/seq/1x4x8x8/{0,1} and SEED/seq/3/{0,1} = consecutive draws of one generator; "
            "SEED/seq/mixed/{0,1,2} = [3], [17], [1] from one generator"
        ),
        "seeds": json.dumps(SEEDS),
    }
    path = FIXTURES / "rng.safetensors"
    write_safetensors(path, t, meta)
    print(f"wrote {path.relative_to(REPO)} ({path.stat().st_size} bytes, {len(t)} tensors)")


def philox_fixtures() -> None:
    if not CUDA_SOURCE.exists():
        print(f"skipping rng_philox.safetensors: {CUDA_SOURCE} not found")
        return
    from safetensors import safe_open

    t: dict[str, np.ndarray] = {}
    with safe_open(str(CUDA_SOURCE), "np") as f:
        source_meta = f.metadata() or {}
        for seed in SEEDS:
            for shape in ["5", "16", "17", "1x4x8x8", "1x4x12x8"]:
                t[f"{seed}/{shape}/first"] = f.get_tensor(f"{seed}/{shape}/first")
            t[f"{seed}/1x4x8x8/second"] = f.get_tensor(f"{seed}/1x4x8x8/second")
            for shape in ["1x4x64x64", "1x4x96x64"]:
                a = f.get_tensor(f"{seed}/{shape}/first")
                if seed == 0 and shape == "1x4x64x64":
                    t[f"{seed}/{shape}/first"] = a
                else:
                    flat = a.reshape(-1)
                    t[f"{seed}/{shape}/first/head"] = flat[:EDGE]
                    t[f"{seed}/{shape}/first/tail"] = flat[-EDGE:]
    meta = {
        "generator": "Tools/reference/make_rng_fixtures.py",
        "copied_from": "shared/data/torch_cuda_randn.safetensors",
        "source": source_meta.get("source", ""),
        "keys": (
            "SEED/SHAPE/first = first draw after manual_seed (whole), SEED/1x4x8x8/second = second draw; "
            "0/1x4x64x64/first whole; otherwise 1x4x64x64 and 1x4x96x64 as /first/head and "
            "/first/tail = first and last 256 flat values"
        ),
        "seeds": json.dumps(SEEDS),
    }
    path = FIXTURES / "rng_philox.safetensors"
    write_safetensors(path, t, meta)
    print(f"wrote {path.relative_to(REPO)} ({path.stat().st_size} bytes, {len(t)} tensors)")


def main() -> None:
    torch.set_num_threads(2)
    FIXTURES.mkdir(parents=True, exist_ok=True)
    cpu_fixtures()
    philox_fixtures()


if __name__ == "__main__":
    main()
