#!/usr/bin/env python3
"""Sampler fixtures for Pareidolia's sampler tests (Tests/DiffusionTests/SamplerTests.swift).

Usage (from the repository root):

    /work/venv/bin/python Tools/reference/make_sampler_fixtures.py

Writes Tests/Fixtures/samplers.safetensors (about 0.6 MB; byte-identical on rerun with the same
torch/diffusers/numpy/scipy build). Keys are documented in Tests/Fixtures/README.md, section S.

Every diffusers scheduler is built the way a diffusers user swaps schedulers on SD 1.5:
`Cls.from_config(PNDMScheduler(**SD15).config, **overrides)`, so it inherits SD 1.5's values
(scaled_linear 0.00085 .. 0.012, 1000 train steps, leading spacing, steps_offset 1,
set_alpha_to_one false, skip_prk_steps true, clip_sample false, epsilon prediction).

Each one is run for N in STEPS on a deterministic fake model in place of the UNet, exactly as
StableDiffusionPipeline drives a scheduler:

    latents = init_noise * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        x_in = scheduler.scale_model_input(latents, t)
        eps = fake_model(x_in, t)
        latents = scheduler.step(eps, t, latents, [generator=g]).prev_sample

fake_model(x, t) = 0.1*x + 0.05*sin(x) + t/1000, elementwise in float32, with sin evaluated in
float64 and rounded once (so a port gets the same bits from any correctly rounded sin), and
t/1000 evaluated in float64 and rounded once to float32.

The initial noise is torch.randn([1,4,8,6], generator=torch.Generator("cpu").manual_seed(0)).
Ancestral noise (euler_a only) comes from torch.Generator("cpu").manual_seed(1234) passed to
step(); the noises it drew are recomputed with a second generator with the same seed and stored,
and the script checks that both generators end in the same state.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import diffusers
import numpy as np
import scipy
import torch
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    LMSDiscreteScheduler,
    PNDMScheduler,
)

from f32_safetensors import write_safetensors

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "Tests" / "Fixtures" / "samplers.safetensors"

torch.set_num_threads(2)

# SD 1.5's scheduler/scheduler_config.json (runwayml/stable-diffusion-v1-5), plus the two values
# PNDMScheduler fills in by default and every from_config copy inherits.
SD15 = dict(
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    num_train_timesteps=1000,
    set_alpha_to_one=False,
    skip_prk_steps=True,
    steps_offset=1,
    trained_betas=None,
    prediction_type="epsilon",
    timestep_spacing="leading",
)
SD15_EXTRA = dict(clip_sample=False)  # in SD 1.5's file; PNDMScheduler has no such parameter

SAMPLERS = {
    "pndm": (PNDMScheduler, {}),
    "ddim": (DDIMScheduler, {}),
    "euler": (EulerDiscreteScheduler, {}),
    "euler_a": (EulerAncestralDiscreteScheduler, {}),
    "dpmpp_2m": (
        DPMSolverMultistepScheduler,
        dict(algorithm_type="dpmsolver++", solver_order=2, solver_type="midpoint", lower_order_final=True),
    ),
    "dpmpp_2m_karras": (
        DPMSolverMultistepScheduler,
        dict(
            algorithm_type="dpmsolver++",
            solver_order=2,
            solver_type="midpoint",
            lower_order_final=True,
            use_karras_sigmas=True,
        ),
    ),
    "lms": (LMSDiscreteScheduler, {}),
    "heun": (HeunDiscreteScheduler, {}),
}
STEPS = [5, 20]
SHAPE = [1, 4, 8, 6]
NOISE_SEED = 0
ANCESTRAL_SEED = 1234


def make_scheduler(cls, overrides: dict):
    base = PNDMScheduler(**SD15)
    config = dict(base.config)
    config.update(SD15_EXTRA)
    config.update(overrides)
    return cls.from_config(config)


def fake_model(x: torch.Tensor, t) -> torch.Tensor:
    s = torch.sin(x.double()).float()
    return 0.1 * x + 0.05 * s + float(t) / 1000.0


def run(name: str, steps: int, init_noise: torch.Tensor) -> dict[str, np.ndarray]:
    cls, overrides = SAMPLERS[name]
    sch = make_scheduler(cls, overrides)
    sch.set_timesteps(steps)
    ancestral = name == "euler_a"
    g = torch.Generator("cpu").manual_seed(ANCESTRAL_SEED)
    init_sigma = sch.init_noise_sigma
    latents = init_noise * init_sigma
    traj = [latents.clone()]
    epss = []
    for t in sch.timesteps:
        x_in = sch.scale_model_input(latents, t)
        eps = fake_model(x_in, t)
        epss.append(eps.clone())
        kwargs = {"generator": g} if ancestral else {}
        latents = sch.step(eps, t, latents, **kwargs).prev_sample
        traj.append(latents.clone())
    out = {
        "timesteps": sch.timesteps.to(torch.float64).numpy().astype(np.float32),
        "init_noise_sigma": np.array([float(init_sigma)], dtype=np.float32),
        "latents": torch.stack(traj).numpy(),
        "eps": torch.stack(epss).numpy(),
    }
    assert np.array_equal(out["timesteps"].astype(np.float64), sch.timesteps.to(torch.float64).numpy()), name
    if name not in ("pndm", "ddim"):
        out["sigmas"] = sch.sigmas.numpy().astype(np.float32)
    if ancestral:
        g2 = torch.Generator("cpu").manual_seed(ANCESTRAL_SEED)
        noises = [torch.randn(SHAPE, generator=g2, dtype=torch.float32) for _ in range(len(sch.timesteps))]
        assert torch.equal(g.get_state(), g2.get_state()), "euler_a drew a different amount of noise"
        out["noise"] = torch.stack(noises).numpy()
    return out


def lms_quad_vs_exact() -> float:
    """Largest relative difference between diffusers' scipy-quad LMS coefficients and exact
    polynomial integration (float64, on the same float32 sigmas), over the fixture runs."""
    worst = 0.0
    for steps in STEPS:
        sch = make_scheduler(LMSDiscreteScheduler, {})
        sch.set_timesteps(steps)
        sig = [float(s) for s in sch.sigmas]
        for i in range(steps):
            order = min(i + 1, 4)
            for j in range(order):
                q = sch.get_lms_coefficient(order, i, j)
                poly = np.poly1d([1.0])
                for k in range(order):
                    if k != j:
                        poly *= np.poly1d([1.0, -sig[i - k]]) / (sig[i - j] - sig[i - k])
                integ = poly.integ()
                exact = integ(sig[i + 1]) - integ(sig[i])
                worst = max(worst, abs(q - exact) / max(abs(exact), 1e-30))
    return worst


def main() -> None:
    init_noise = torch.randn(SHAPE, generator=torch.Generator("cpu").manual_seed(NOISE_SEED), dtype=torch.float32)
    tensors: dict[str, np.ndarray] = {"init_noise": init_noise.numpy()}

    ref = make_scheduler(DDIMScheduler, {})
    tensors["schedule/betas"] = ref.betas.numpy()
    tensors["schedule/alphas_cumprod"] = ref.alphas_cumprod.numpy()
    tensors["schedule/sigmas"] = (((1 - ref.alphas_cumprod) / ref.alphas_cumprod) ** 0.5).numpy()

    runs = {}
    for name in SAMPLERS:
        for steps in STEPS:
            r = run(name, steps, init_noise)
            runs[f"{name}/{steps}"] = {"evaluations": len(r["timesteps"]), "keys": sorted(r)}
            for k, v in r.items():
                tensors[f"{name}/{steps}/{k}"] = v

    metadata = {
        "generator": "Tools/reference/make_sampler_fixtures.py",
        "torch_version": torch.__version__,
        "diffusers_version": diffusers.__version__,
        "numpy_version": np.__version__,
        "scipy_version": scipy.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "sd15_config": json.dumps({**SD15, **SD15_EXTRA}, sort_keys=True),
        "samplers": json.dumps(
            {k: {"class": c.__name__, "overrides": o} for k, (c, o) in SAMPLERS.items()}, sort_keys=True
        ),
        "runs": json.dumps(runs, sort_keys=True),
        "fake_model": "eps = 0.1*x + 0.05*float32(sin(float64(x))) + float32(t/1000), float32 elementwise, "
        "x = scale_model_input(latents, t)",
        "init_noise": f"torch.randn({SHAPE}, generator=torch.Generator('cpu').manual_seed({NOISE_SEED}))",
        "ancestral_noise": f"torch.Generator('cpu').manual_seed({ANCESTRAL_SEED}) passed to step(generator=)",
        "lms_quad_vs_exact_max_rel": f"{lms_quad_vs_exact():.3e}",
    }
    write_safetensors(OUT, tensors, metadata)
    total = sum(v.size * 4 for v in tensors.values())
    print(f"wrote {OUT.relative_to(REPO)}: {len(tensors)} tensors, {total / 1e6:.2f} MB of data")
    print("LMS quad vs exact, max relative difference:", metadata["lms_quad_vs_exact_max_rel"])


if __name__ == "__main__":
    main()
