#!/usr/bin/env python3
"""Goldens for the pieces of the SDE samplers' noise (Tests/Fixtures/brownian.json): numpy's
`SeedSequence(...).generate_state(n)` on many inputs, and torchsde's `BrownianTree` increments and
k-diffusion's `BrownianTreeNoiseSampler` as A1111 v1.10 builds them (one tree per image seed, tol 1e-6,
pool size 24; torchsde's `_randn` replaced by A1111's `randn_local`: a fresh CPU generator seeded with the
node's seed, or for the GPU source philox with offset 0, the numpy port of make_pipeline_fixtures.py).

Usage (from the repository root): /work/venv/bin/python Tools/reference/make_brownian_fixtures.py
Needs numpy, torch, torchsde 0.2.x, k-diffusion 0.0.16 (--no-deps; its sampling module only).
"""
from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
import torchsde

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_pipeline_fixtures import philox_randn  # noqa: E402  (A1111's rng_philox.py in numpy; imports diffusers, so first)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kdiffusion_loader import load_k_diffusion  # noqa: E402
K, _ = load_k_diffusion()

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "Tests" / "Fixtures" / "brownian.json"


def use_source(source):
    """A1111's torchsde_randn: randn_local(seed, size) for the CPU or GPU (philox) RNG source."""
    def randn(size, dtype, device, seed):
        if source == "cpu":
            return torch.randn(size, generator=torch.Generator("cpu").manual_seed(int(seed)), dtype=dtype)
        return torch.from_numpy(philox_randn(int(seed), tuple(size), 0).astype(np.float32))
    torchsde._brownian.brownian_interval._randn = randn


def f32(x):
    return [float(v) for v in np.asarray(x, dtype=np.float32).reshape(-1)]


def seed_sequences():
    cases = []
    entropies = [0, 1, 7, 1887838105, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 5, 2 ** 63 - 1, 2 ** 64 + 3, 3 ** 50]
    keys = [(), (0, 0), (0, 1), (1, 1), (5, 3), (123456, 17), (2 ** 24 + 1, 24), (2 ** 32, 32), (2 ** 40 + 9, 41), (3, 2 ** 33), (7,)]
    for e in entropies:
        for k in keys:
            for pool in (4, 8, 24):
                n = 4 if k else 3
                state = np.random.SeedSequence(entropy=e, spawn_key=k, pool_size=pool).generate_state(n)
                cases.append({"entropy": str(e), "spawn_key": [str(v) for v in k], "pool_size": pool, "n": n,
                              "state": [int(v) for v in state]})
    # More words than the pool holds (the cycle over the pool), a long entropy (more words than the pool).
    for e, k, pool, n in [(1887838105, (9, 4), 4, 11), (2 ** 200 + 17, (), 4, 6), (2 ** 200 + 17, (2, 2), 8, 5)]:
        state = np.random.SeedSequence(entropy=e, spawn_key=k, pool_size=pool).generate_state(n)
        cases.append({"entropy": str(e), "spawn_key": [str(v) for v in k], "pool_size": pool, "n": n,
                      "state": [int(v) for v in state]})
    return cases


def trees():
    """Raw increments W(ta, tb) of one torchsde.BrownianTree, queried in order (the tree's search starts at
    the last queried node, so the order is part of the case), and the noise sampler's normalised draws."""
    out = []
    sigmas = np.array([14.614643, 7.0375986, 3.0649924, 1.2658548, 0.4963216, 0.16447237, 0.029167158],
                      dtype=np.float32)
    qs = [(sigmas[i], sigmas[i + 1]) for i in range(len(sigmas) - 1)]
    mids = [(sigmas[i], np.float32(np.exp(-(-np.log(sigmas[i]) + 0.5 * (np.log(sigmas[i]) - np.log(sigmas[i + 1])))))) for i in range(3)]
    extra = [(np.float32(20.0), np.float32(10.0)), (np.float32(0.01), np.float32(0.02)), (np.float32(3.0), np.float32(3.0)),
             (sigmas[5], sigmas[1]), (np.float32(2.5), np.float32(2.500003))]
    for source in ("cpu", "philox"):
        use_source(source)
        for seed, shape in [(1887838105, (4, 2, 2)), (0, (4, 3, 3)), (2 ** 32 - 1, (3,)), (99, (2, 3, 3))]:
            queries = qs + mids + extra
            t0, t1 = torch.tensor(sigmas[-1]), torch.tensor(sigmas[0])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")   # queries outside [t0, t1]: torchsde warns and clamps
                tree = torchsde.BrownianTree(t0, torch.zeros(shape), t1, entropy=seed, tol=1e-6, pool_size=24)
                inc = [f32(tree(torch.tensor(min(a, b)), torch.tensor(max(a, b)))) for a, b in queries]
                ns = K.BrownianTreeNoiseSampler(torch.zeros((1,) + shape), t0, t1, seed=[seed])
                noise = [f32(ns(torch.tensor(a), torch.tensor(b))) for a, b in queries if a != b]
            out.append({"rng": source, "seed": str(seed), "shape": list(shape), "t0": float(t0), "t1": float(t1),
                        "queries": [[float(a), float(b)] for a, b in queries], "increments": inc,
                        "noise": noise})
    return out


def main():
    data = {"generator": "Tools/reference/make_brownian_fixtures.py", "seed_sequences": seed_sequences(), "trees": trees()}
    OUT.write_text(json.dumps(data, separators=(",", ":")) + "\n")
    print(f"{OUT}: {len(data['seed_sequences'])} seed sequences, {len(data['trees'])} trees, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
