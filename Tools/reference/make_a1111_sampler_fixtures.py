#!/usr/bin/env python3
"""Goldens for A1111's samplers on Tests/Fixtures/tiny-sd: k-diffusion driven the way AUTOMATIC1111 v1.10
drives it, the oracle of Pareidolia's `--sampler "Euler a" --schedule karras` and the rest.

Usage (from the repository root; needs `pip install --no-deps k-diffusion==0.0.16` (A1111's pin) and scipy,
torchsde, torchdiffeq; torchvision is stubbed out, k-diffusion only imports it for image utilities):

    /work/venv/bin/python Tools/reference/make_a1111_sampler_fixtures.py --unipc PATH/uni_pc.py [--only SUBSTRING]

`--only`: write only the goldens whose file name contains SUBSTRING (e.g. `SDE`), leaving the others as they are.

`--unipc`: UniPC's own implementation, the file A1111 vendors as modules/models/diffusion/uni_pc/uni_pc.py
(the same algorithm as github.com/wl-zhao/UniPC, example/stable-diffusion/ldm/models/diffusion/uni_pc/uni_pc.py;
A1111's copy adds only hooks). Not in this repository; without it the UniPC goldens are left as they are.

Writes Tests/Fixtures/a1111/{sampler}-{schedule}-{rng}.safetensors: `final` [1, 4, 8, 8] and `sigmas`; for
A1111's timestep samplers (DDIM, PLMS, UniPC) `timesteps`, the timestep of every model call, instead of `sigmas`.

What A1111 does, reproduced here (its modules sd_samplers_kdiffusion, sd_schedulers, sd_samplers_cfg_denoiser,
rng; k-diffusion's sampling and external):
- the model's noise levels: LDM's linear schedule in float64 (sqrt(beta) linspace, squared, cumprod), stored
  float32; sigmas = sqrt((1 - a) / a), k-diffusion's DiscreteEpsDDPMDenoiser (fractional t by log-sigma
  interpolation, c_in = 1 / sqrt(sigma^2 + 1), denoised = x - sigma * eps);
- the sigma list: the schedule type, or the sampler's automatic one (Karras for DPM2, DPM2 a, DPM++ 2S a,
  DPM++ 2M, DPM++ SDE; Exponential for DPM++ 2M SDE (and Heun) and DPM++ 3M SDE; the model's own `get_sigmas` for
  Euler, Euler a, Heun, LMS), sigma_min/max the model's, rho 7 (Karras) or 1 (polyexponential); DPM2, DPM2 a and
  DPM++ 3M SDE compute steps + 1 and drop the next-to-last;
- the start x = noise * sigma_0; CFG in one batch [cond, uncond], denoised = uncond + (cond - uncond) * scale;
- noise: one generator per image seeded with the seed (CPU: torch's; GPU: A1111's philox, here its numpy port
  from make_pipeline_fixtures.py); the first draw is the initial noise; with ENSD the generator is reseeded with
  seed + ENSD right after it; every randn_like inside k-diffusion is the next draw;
- the SDE samplers (eta 1): A1111's create_noise_sampler, BrownianTreeNoiseSampler(x, sigma_min, sigma_max,
  seed=[seed]) over the sigma list (sigma_min its smallest above 0), torchsde's _randn replaced by A1111's
  randn_local (a fresh generator of the RNG source seeded with each node's seed); "DPM++ 2M SDE Heun" is
  sample_dpmpp_2m_sde with solver_type 'heun'. The (sigma, sigma_next) of every noise-sampler call is written
  as `noise_times` [calls, 2].
  DPM++ SDE asks its noise sampler for exp(-t) and exp(-(t + h/2)), t = -log(sigma), computed on 0-d tensors: on
  the CPU torch takes exp and log from MKL, whose last bit is at times not the correctly rounded one (glibc's,
  the engine's; CUDA has its own), and the tree rounds times to 6 decimals, so an ulp can move a time to the next
  point of the tree. Where a time of this oracle rounds apart from the correctly rounded one, a second golden
  `{name}-crexp` is the same run with the correctly rounded times (metadata `times`).

And its timestep samplers (modules sd_samplers_timesteps, sd_samplers_timesteps_impl): timesteps
range(0, 1000, 1000 // steps) + 1; the start x is the noise itself; the CFG denoiser guides the UNet's eps;
DDIM (eta 0) and PLMS are restated below from A1111's functions; UniPC is UniPC's own code (--unipc) on
NoiseScheduleVP('discrete', alphas_cumprod), predicting x0, multistep, the model at (t - 1/N) * 1000.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import io
import json
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
import torchsde

torch.set_num_threads(2)
torch.use_deterministic_algorithms(True)

from diffusers import StableDiffusionPipeline  # noqa: E402  (before torchvision is stubbed below)

# k-diffusion's package __init__ imports training utilities (torchvision, clean-fid, ...): load the two
# modules A1111 uses without it.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from kdiffusion_loader import load_k_diffusion  # noqa: E402
K, KE = load_k_diffusion()

sys.path.insert(0, str(Path(__file__).resolve().parent))
from f32_safetensors import to_np32, write_safetensors  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TINY_SD = REPO / "Tests" / "Fixtures" / "tiny-sd"
OUT = REPO / "Tests" / "Fixtures" / "a1111"
PROMPT, NEGATIVE = "photo of a witch and a robot dancing", "blurry"
SEED, STEPS, SCALE = 1887838105, 6, 7.5

# A1111 name: (k-diffusion function, automatic schedule, discard penultimate sigma)
SAMPLERS = {
    "Euler": ("sample_euler", None, False), "Euler a": ("sample_euler_ancestral", None, False),
    "Heun": ("sample_heun", None, False), "LMS": ("sample_lms", None, False), "DPM2": ("sample_dpm_2", "karras", True),
    "DPM2 a": ("sample_dpm_2_ancestral", "karras", True), "DPM++ 2S a": ("sample_dpmpp_2s_ancestral", "karras", False),
    "DPM++ 2M": ("sample_dpmpp_2m", "karras", False), "DPM++ SDE": ("sample_dpmpp_sde", "karras", False),
    "DPM++ 2M SDE": ("sample_dpmpp_2m_sde", "exponential", False),
    "DPM++ 2M SDE Heun": ("sample_dpmpp_2m_sde", "exponential", False),
    "DPM++ 3M SDE": ("sample_dpmpp_3m_sde", "exponential", True),
}
SDE = {"DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 3M SDE"}
SCHEDULES = ["automatic", "uniform", "karras", "exponential", "polyexponential", "sgm_uniform", "simple", "normal"]


def philox_randn(seed: int, offset: int, shape) -> np.ndarray:
    from make_pipeline_fixtures import philox_randn as p  # A1111's rng_philox.py, ported to numpy
    return p(seed, tuple(shape), offset)


class ImageRNG:
    """A1111's per-image generator: first() the initial noise, next() every later draw; ENSD reseeds."""
    def __init__(self, seed, source, ensd=0):
        self.seed, self.source, self.ensd, self.first_done = seed, source, ensd, False
        self.reseed(seed)

    def reseed(self, seed):
        self.current = seed
        self.offset = 0
        self.g = torch.Generator("cpu").manual_seed(seed) if self.source == "cpu" else None

    def draw(self, shape):
        if self.source == "cpu":
            return torch.randn(shape, generator=self.g)
        x = torch.from_numpy(philox_randn(self.current, self.offset, shape).astype(np.float32))
        self.offset += 1
        return x

    def next(self, shape):
        x = self.draw(shape)
        if not self.first_done:
            self.first_done = True
            if self.ensd:
                self.reseed(self.seed + self.ensd)
        return x


class Hijack:
    def __init__(self, rng):
        self.rng = rng

    def __getattr__(self, item):
        return getattr(torch, item)

    def randn_like(self, x):
        return self.rng.next(tuple(x.shape[1:])).unsqueeze(0)


def use_randn_local(source):
    """A1111's sd_samplers_common.torchsde_randn: torchsde's node noise from randn_local(seed, size)."""
    def randn(size, dtype, device, seed):
        if source == "cpu":
            return torch.randn(size, generator=torch.Generator("cpu").manual_seed(int(seed)), dtype=dtype)
        return torch.from_numpy(philox_randn(int(seed), 0, tuple(size)).astype(np.float32))
    torchsde._brownian.brownian_interval._randn = randn


def dpmpp_sde_times_correctly_rounded(sigmas):
    """DPM++ SDE's noise-sampler times with float32 exp and log correctly rounded (via float64)."""
    f = np.float32
    out = []
    for si, sn in zip(sigmas[:-1].tolist(), sigmas[1:].tolist()):
        if sn == 0:
            continue
        t, tn = -f(math.log(f(si))), -f(math.log(f(sn)))
        s = f(t + f(f(tn - t) * f(0.5)))
        e = lambda v: f(math.exp(-float(v)))
        out += [(e(t), e(s)), (e(t), e(tn))]
    return out


class ReplacedTimesNoiseSampler:
    """The same noise sampler asked for given times instead of the ones the sampler computed."""
    def __init__(self, x, sigmas, seed, times):
        self.inner = K.BrownianTreeNoiseSampler(x, sigmas[sigmas > 0].min(), sigmas.max(), seed=[seed])
        self.times = iter(times)

    def __call__(self, sigma, sigma_next):
        a, b = next(self.times)
        return self.inner(torch.tensor(a), torch.tensor(b))


class RecordingNoiseSampler:
    """A1111's create_noise_sampler for one image, recording every call's (sigma, sigma_next)."""
    def __init__(self, x, sigmas, seed):
        self.inner = K.BrownianTreeNoiseSampler(x, sigmas[sigmas > 0].min(), sigmas.max(), seed=[seed])
        self.calls = []

    def __call__(self, sigma, sigma_next):
        self.calls.append((float(sigma), float(sigma_next)))
        return self.inner(sigma, sigma_next)


def ldm_alphas_cumprod():
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0).to(torch.float32)


def schedule_sigmas(model_wrap, name, n):
    smin, smax = model_wrap.sigmas[0].item(), model_wrap.sigmas[-1].item()
    if name in (None, "uniform"):
        return model_wrap.get_sigmas(n)
    if name == "karras":
        return K.get_sigmas_karras(n=n, sigma_min=smin, sigma_max=smax, rho=7.0)
    if name == "exponential":
        return K.get_sigmas_exponential(n=n, sigma_min=smin, sigma_max=smax)
    if name == "polyexponential":
        return K.get_sigmas_polyexponential(n=n, sigma_min=smin, sigma_max=smax, rho=1.0)
    if name == "simple":
        ss = len(model_wrap.sigmas) / n
        return torch.FloatTensor([float(model_wrap.sigmas[-(1 + int(x * ss))]) for x in range(n)] + [0.0])
    if name == "sgm_uniform":
        start, end = model_wrap.sigma_to_t(torch.tensor(smax)), model_wrap.sigma_to_t(torch.tensor(smin))
        return torch.FloatTensor([model_wrap.t_to_sigma(ts) for ts in torch.linspace(start, end, n + 1)[:-1]] + [0.0])
    if name == "normal":
        start, end = model_wrap.sigma_to_t(torch.tensor(smax)), model_wrap.sigma_to_t(torch.tensor(smin))
        return torch.FloatTensor([model_wrap.t_to_sigma(ts) for ts in torch.linspace(start, end, n)] + [0.0])
    raise ValueError(name)


def a1111_timesteps(steps):
    """CompVisSampler.get_timesteps (no discarded sigma)."""
    return torch.clip(torch.asarray(list(range(0, 1000, 1000 // steps))) + 1, 0, 999)


def ddim_or_plms(eps, x, ts, ac, plms):
    """A1111's ddim (eta 0: its noise term is 0 * randn) and plms: from the last timestep down to the second,
    each step to the previous timestep's noise level, float32 arithmetic on .item() scalars as A1111 does."""
    alphas = ac[ts]
    alphas_prev = ac[torch.nn.functional.pad(ts[:-1], pad=(1, 0))].to(torch.float64)
    sqrt_one_minus = torch.sqrt(1 - alphas)
    s_in = x.new_ones([x.shape[0]])

    def step(x, e, index):
        a_t, a_prev = alphas[index].item() * s_in, alphas_prev[index].item() * s_in
        pred_x0 = (x - sqrt_one_minus[index].item() * s_in * e) / a_t.sqrt()
        return a_prev.sqrt() * pred_x0 + (1. - a_prev).sqrt() * e

    old = []
    for i in range(len(ts) - 1):
        index = len(ts) - 1 - i
        e = eps(x, ts[index].item() * s_in)
        if not plms:
            x = step(x, e, index)
            continue
        if not old:       # pseudo improved Euler
            e_next = eps(step(x, e, index), ts[max(index - 1, 0)].item() * s_in)
            prime = (e + e_next) / 2
        elif len(old) == 1:
            prime = (3 * e - old[-1]) / 2
        elif len(old) == 2:
            prime = (23 * e - 16 * old[-1] + 5 * old[-2]) / 12
        else:
            prime = (55 * e - 59 * old[-1] + 37 * old[-2] - 9 * old[-3]) / 24
        x = step(x, prime, index)
        old.append(e)
        if len(old) >= 4:
            old.pop(0)
    return x


def load_unipc(path):
    spec = importlib.util.spec_from_file_location("uni_pc_reference", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def unipc(U, eps, x, ts, ac, variant="bh1", skip="time_uniform", order=3, lower_order_final=True):
    """A1111's unipc(): UniPC on the discrete schedule, its model the CFG denoiser at (t - 1/N) * 1000."""
    ns = U.NoiseScheduleVP("discrete", alphas_cumprod=ac)
    sampler = U.UniPC(lambda x, t: eps(x, (t - 1. / ns.total_N) * 1000.), ns, predict_x0=True, thresholding=False,
                      variant=variant)
    with contextlib.redirect_stdout(io.StringIO()):   # UniPC prints every step
        return sampler.sample(x, steps=len(ts), skip_type=skip, method="multistep", order=order,
                              lower_order_final=lower_order_final)


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--unipc", help="UniPC's uni_pc.py (see the module's docstring)")
    ap.add_argument("--only", default="", help="write only the goldens whose name contains this")
    args = ap.parse_args()
    pipe = StableDiffusionPipeline.from_pretrained(str(TINY_SD), safety_checker=None, requires_safety_checker=False,
                                                   local_files_only=True)
    pipe.to(torch.float32)
    tok, te, unet = pipe.tokenizer, pipe.text_encoder, pipe.unet

    def enc(t):
        return te(tok(t, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids)[0]

    cond, uncond = enc(PROMPT), enc(NEGATIVE)

    class UNetEps(torch.nn.Module):
        def forward(self, x, t, cond):
            return unet(x, t, encoder_hidden_states=cond).sample

    model_wrap = KE.DiscreteEpsDDPMDenoiser(UNetEps(), ldm_alphas_cumprod(), quantize=False)

    def cfg(x, sigma):
        x_in = torch.cat([x, x])
        s_in = torch.cat([sigma, sigma])
        out = model_wrap(x_in, s_in, cond=torch.cat([cond, uncond]))   # [cond, uncond]
        return out[1:] + (out[:1] - out[1:]) * SCALE

    OUT.mkdir(parents=True, exist_ok=True)
    cases = [(s, sch, "cpu", 0) for s in SAMPLERS for sch in SCHEDULES]
    cases += [(s, "automatic", "philox", 0) for s in SAMPLERS]
    cases += [("Euler a", "automatic", "cpu", 31337), ("DPM++ 2S a", "karras", "philox", 31337)]
    cases += [(s, sch, "philox", 0) for s in sorted(SDE) for sch in SCHEDULES if sch != "automatic"]
    cases += [("DPM++ SDE", "karras", "cpu", 31337)]   # ENSD reseeds the image generator, not the tree
    for sampler, schedule, source, ensd in cases:
        name = f"{sampler.replace(' ', '_').replace('+', 'p')}-{schedule}-{source}" + (f"-ensd{ensd}" if ensd else "")
        if args.only not in name:
            continue
        func, automatic, discard = SAMPLERS[sampler]
        n = STEPS + (1 if discard else 0)
        sigmas = schedule_sigmas(model_wrap, automatic if schedule == "automatic" else schedule, n)
        if discard:
            sigmas = torch.cat([sigmas[:-2], sigmas[-1:]])
        rng = ImageRNG(SEED, source, ensd)
        x = rng.next((4, 8, 8)).unsqueeze(0) * sigmas[0]
        K.torch = Hijack(rng)
        kwargs = {"eta": 1.0} if "ancestral" in func or sampler in SDE else {}
        tensors = {"sigmas": sigmas}
        if sampler in SDE:
            use_randn_local(source)
            kwargs["noise_sampler"] = RecordingNoiseSampler(x, sigmas, SEED)
            if sampler == "DPM++ 2M SDE Heun":
                kwargs["solver_type"] = "heun"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # torchsde warns of the query times it clamps to [sigma_min, sigma_max]
            final = getattr(K, func)(cfg, x, sigmas, disable=True, **kwargs)
        K.torch = torch
        if sampler in SDE:
            tensors["noise_times"] = np.asarray(kwargs["noise_sampler"].calls, dtype=np.float32).reshape(-1, 2)
        meta = {"sampler": sampler, "schedule": schedule, "rng": source, "ensd": str(ensd), "prompt": PROMPT,
                "negative_prompt": NEGATIVE, "seed": str(SEED), "steps": str(STEPS), "guidance": str(SCALE),
                "width": "64", "height": "64", "generator": "Tools/reference/make_a1111_sampler_fixtures.py"}
        write_safetensors(OUT / f"{name}.safetensors", {"final": to_np32(final), **{k: to_np32(v) for k, v in tensors.items()}}, meta)
        if sampler == "DPM++ SDE":
            times = dpmpp_sde_times_correctly_rounded(sigmas)
            if any(round(float(a), 6) != round(float(b), 6) for p, q in zip(kwargs["noise_sampler"].calls, times) for a, b in zip(p, q)):
                kwargs["noise_sampler"] = ReplacedTimesNoiseSampler(x, sigmas, SEED, times)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    final2 = getattr(K, func)(cfg, x, sigmas, disable=True, **kwargs)
                tensors["noise_times"] = np.asarray(times, dtype=np.float32).reshape(-1, 2)
                write_safetensors(OUT / f"{name}-crexp.safetensors", {"final": to_np32(final2), **{k: to_np32(v) for k, v in tensors.items()}},
                                  {**meta, "times": "exp and log correctly rounded"})
                print(f"{name}-crexp: its noise times with correctly rounded exp and log, final max {float(final2.abs().max()):.3f}")
        print(f"{name}: {len(sigmas) - 1} steps, sigmas {float(sigmas[0]):.3f}..{float(sigmas[-2]):.4f}, final max {float(final.abs().max()):.3f}")

    # A1111's timestep samplers: the CFG denoiser on eps, every call's timestep recorded.
    calls = []

    def eps(x, t):
        calls.append(float(t[0]))
        out = UNetEps()(torch.cat([x, x]), torch.cat([t, t]), torch.cat([cond, uncond]))   # [cond, uncond]
        return out[1:] + (out[:1] - out[1:]) * SCALE

    U = load_unipc(args.unipc) if args.unipc else None
    ac = ldm_alphas_cumprod()
    # (sampler, steps, rng, UniPC options): 6 steps (6 timesteps), 30 (31 timesteps: 1000 // 30 = 33), 7 with
    # philox; UniPC's variants, skip types and orders.
    cases = [("DDIM", 6, "cpu", {}), ("DDIM", 30, "cpu", {}), ("DDIM", 7, "philox", {}), ("PLMS", 6, "cpu", {}),
             ("PLMS", 30, "cpu", {}), ("PLMS", 7, "philox", {}), ("UniPC", 6, "cpu", {}), ("UniPC", 30, "cpu", {}),
             ("UniPC", 7, "philox", {}), ("UniPC", 6, "cpu", {"variant": "bh2"}),
             ("UniPC", 6, "cpu", {"skip": "time_quadratic"}), ("UniPC", 6, "cpu", {"skip": "logSNR"}),
             ("UniPC", 6, "cpu", {"order": 2}), ("UniPC", 6, "cpu", {"order": 1}),
             ("UniPC", 6, "cpu", {"order": 4, "lower_order_final": False})]
    for sampler, steps, source, opts in cases:
        tag = "".join(f"-{k}{v}" for k, v in sorted(opts.items()))
        name = f"{sampler}-{steps}steps-{source}{tag}"
        if (sampler == "UniPC" and U is None) or args.only not in name:
            continue
        ts = a1111_timesteps(steps)
        rng = ImageRNG(SEED, source)
        x = rng.next((4, 8, 8)).unsqueeze(0)
        calls.clear()
        final = unipc(U, eps, x, ts, ac, **opts) if sampler == "UniPC" else ddim_or_plms(eps, x, ts, ac, sampler == "PLMS")
        meta = {"sampler": sampler, "schedule": "automatic", "rng": source, "ensd": "0", "prompt": PROMPT,
                "negative_prompt": NEGATIVE, "seed": str(SEED), "steps": str(steps), "guidance": str(SCALE),
                "width": "64", "height": "64", "generator": "Tools/reference/make_a1111_sampler_fixtures.py",
                "unipc": json.dumps(opts)}
        write_safetensors(OUT / f"{name}.safetensors",
                          {"final": to_np32(final), "timesteps": np.asarray(calls, dtype=np.float32)}, meta)
        print(f"{name}: {len(calls)} model calls at t {calls[0]:.2f}..{calls[-1]:.2f}, final max {float(final.abs().max()):.3f}")


if __name__ == "__main__":
    main()
