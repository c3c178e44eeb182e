"""Plumbing for train.py: seeds, data order, the scene cache, checkpoints, logs, EMA, files.

Nothing here knows about a particular model; the stage_*.py modules hold the stages. Everything
random in training is drawn from a generator derived from (seed, stage, step), so a stage resumed
from a checkpoint sees the same batches, noise and timesteps as one that ran straight through.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import struct
import time
import zipfile
import zlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reference"))
from torchzip import pin_torch_zip_serialization_id  # noqa: E402 (shared with the fixture scripts)

import numpy as np
import torch

# Stage ids for the per-step seeds (never renumber: it would change every run's batches).
STAGE_IDS = {"data": 0, "clip": 1, "vae": 2, "latents": 3, "unet": 4, "ti": 5, "measure": 6}


# --- seeds and data order -------------------------------------------------------------------
def derived_seed(*key: int) -> int:
    """A 63-bit seed from integers (SeedSequence mixing, stable across numpy versions)."""
    return int(np.random.SeedSequence([int(k) for k in key]).generate_state(1, np.uint64)[0] >> 1)


def step_generator(seed: int, stage: str, step: int, sub: int = 0) -> torch.Generator:
    """The CPU torch generator of one training step (noise, timesteps, crops, dropout)."""
    return torch.Generator("cpu").manual_seed(derived_seed(seed, STAGE_IDS[stage], sub, step))


class BatchOrder:
    """Epoch-wise permutations of `items`, stateless: batch(step) depends only on its inputs.
    `items` is n for range(n), or an array of indices (repeats allowed: a scene listed twice is
    drawn twice as often)."""

    def __init__(self, items: int | np.ndarray, batch: int, seed: int, stage: str, sub: int = 0):
        self.pool = None if np.ndim(items) == 0 else np.asarray(items, dtype=np.int64)
        self.n = int(items) if self.pool is None else len(self.pool)
        self.batch, self.key = batch, (seed, STAGE_IDS[stage], sub)
        self._cache: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._cache:
            if len(self._cache) > 4:
                self._cache.clear()
            rng = np.random.default_rng(np.random.SeedSequence([*self.key, 1_000_000 + epoch]))
            perm = rng.permutation(self.n)
            self._cache[epoch] = perm if self.pool is None else self.pool[perm]
        return self._cache[epoch]

    def __call__(self, step: int) -> np.ndarray:
        start = step * self.batch
        out = []
        for pos in range(start, start + self.batch):
            out.append(self._perm(pos // self.n)[pos % self.n])
        return np.array(out, dtype=np.int64)


def lr_at(step: int, base: float, warmup: int, total: int, final_ratio: float = 0.1) -> float:
    """Linear warm-up, then cosine decay to base * final_ratio at `total`."""
    if step < warmup:
        return base * (step + 1) / max(1, warmup)
    p = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * p)))


def set_lr(opt, step: int, base: float, warmup: int, total: int, final_ratio: float = 0.1) -> float:
    """Every parameter group of `opt` at lr_at(step, ...) times its "lr_ratio" (1 if unset);
    returns the rate before the ratio."""
    lr = lr_at(step, base, warmup, total, final_ratio)
    for group in opt.param_groups:
        group["lr"] = lr * group.get("lr_ratio", 1.0)
    return lr


# --- the scene cache ------------------------------------------------------------------------
def _render_chunk(job):
    split, start, n, size, seed, path, total = job
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from toyworld import world
    mm = np.lib.format.open_memmap(path, mode="r+")
    caps = []
    for k, s in enumerate(world.dataset(split, n, size=size, seed=seed, start=start)):
        mm[start + k] = s.image
        caps.append(s.caption)
    mm.flush()
    del mm
    return start, caps


def _place_captions_chunk(job):
    start, n, k, rate, size, seed = job
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from toyworld import world
    return start, [world.place_captions(i, k, rate, size, seed) for i in range(start, start + n)]


def place_captions(n: int, k: int, rate: float, size: int, seed: int, workers: int = 1,
                   chunk: int = 500) -> list[list[str]]:
    """world.place_captions of train scenes 0..n-1 (each renders its scene: ~15 ms), in worker
    processes where there are several: the same captions either way."""
    jobs = [(s, min(chunk, n - s), k, rate, size, seed) for s in range(0, n, chunk)]
    parts = dict(in_workers(_place_captions_chunk, jobs, workers))
    return [c for s in sorted(parts) for c in parts[s]]


def in_workers(fn, jobs: list, workers: int):
    """fn(job) for every job, as each finishes: in `workers` spawned processes where there are
    several (fn must be importable from this module), else here."""
    if workers > 1 and len(jobs) > 1:
        import multiprocessing as mp
        with mp.get_context("spawn").Pool(workers) as pool:
            yield from pool.imap_unordered(fn, jobs)
    else:
        yield from map(fn, jobs)


def scene_cache(work: Path, split: str, n: int, size: int = 128, seed: int = 0,
                workers: int = 1, chunk: int = 500, log=print) -> tuple[np.ndarray, list[str]]:
    """Scenes 0..n-1 of a split as a uint8 (n, size, size, 3) memmap + captions; built once.

    Built in chunks that are recorded as they finish, so an interrupted build continues.
    """
    from toyworld import world   # the version of the world the cache holds
    d = work / "data" / f"{split}-n{n}-s{size}-seed{seed}-w{world.WORLD_VERSION}"
    d.mkdir(parents=True, exist_ok=True)
    img_path, cap_path = d / "images.npy", d / "captions.json"
    if cap_path.exists():
        return np.load(img_path, mmap_mode="r"), json.loads(cap_path.read_text())
    if not img_path.exists():
        np.lib.format.open_memmap(img_path, mode="w+", dtype=np.uint8, shape=(n, size, size, 3)).flush()
    parts = d / "parts"
    parts.mkdir(exist_ok=True)
    jobs = [(split, s, min(chunk, n - s), size, seed, str(img_path), n) for s in range(0, n, chunk)
            if not (parts / f"{s:08d}.json").exists()]
    t0 = time.time()
    if jobs:
        log(f"[data] rendering {sum(j[2] for j in jobs)} {split} scenes ({workers} worker(s)) into {d}")

        def done(res):
            start, caps = res
            write_json_atomic(parts / f"{start:08d}.json", caps)

        for res in in_workers(_render_chunk, jobs, workers):
            done(res)
        log(f"[data] {split}: {time.time() - t0:.1f} s")
    caps = []
    for s in range(0, n, chunk):
        caps += json.loads((parts / f"{s:08d}.json").read_text())
    assert len(caps) == n
    write_json_atomic(cap_path, caps)
    return np.load(img_path, mmap_mode="r"), caps


def to_pixels(images_u8: np.ndarray, device="cpu") -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [-1, 1] (what the VAE and SD pipelines use)."""
    x = torch.from_numpy(np.array(images_u8, dtype=np.uint8, copy=True)).permute(0, 3, 1, 2).float()
    return (x / 127.5 - 1.0).to(device)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """float NCHW in [-1, 1] -> uint8 NHWC (diffusers' rounding: (x/2+0.5)*255, round)."""
    x = (images.detach().float().cpu() / 2 + 0.5).clamp(0, 1)
    return (x.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)


# --- files ----------------------------------------------------------------------------------
def write_json_atomic(path: Path, obj) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=False) + "\n")
    os.replace(tmp, path)


def torch_save_atomic(obj, path: Path) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, str(tmp))
    os.replace(tmp, path)


def save_a1111_embedding(path: Path, name: str, vectors: torch.Tensor, step: int) -> None:
    """An A1111 textual-inversion .pt, laid out as Tools/reference/make_pipeline_fixtures.py
    writes its corajr.pt fixture (float32 [n_vectors, dim], the '*' -> 265 token map)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    obj = {"string_to_token": {"*": 265},
           "string_to_param": {"*": vectors.detach().to(torch.float32).cpu().contiguous().clone()},
           "name": name, "step": int(step), "sd_checkpoint": None, "sd_checkpoint_name": None}
    torch.save(obj, str(path))
    pin_torch_zip_serialization_id(Path(path))


def folder_bytes(path: Path) -> int:
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def file_digest(paths) -> str:
    """A short content hash of files (to tie a stage's output to what it was built from)."""
    import hashlib
    h = hashlib.blake2b(digest_size=8)
    for p in sorted(Path(x) for x in paths):
        h.update(p.name.encode())
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


# --- EMA ------------------------------------------------------------------------------------
class EMA:
    """Exponential moving average of a model's float tensors, decay warmed up as
    min(decay, (1 + step) / (10 + step)) (the schedule diffusers' EMAModel uses)."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().clone().float() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for k, v in model.state_dict().items():
            s = self.shadow[k]
            if v.dtype.is_floating_point:
                s.mul_(d).add_(v.detach().float(), alpha=1 - d)
            else:
                s.copy_(v)

    def state_dict(self):
        return {"decay": self.decay, "shadow": self.shadow}

    def load_state_dict(self, sd):
        self.decay = sd["decay"]
        self.shadow = {k: v.clone() for k, v in sd["shadow"].items()}

    def copy_to(self, model: torch.nn.Module) -> torch.nn.Module:
        model.load_state_dict({k: v.to(model.state_dict()[k].dtype) for k, v in self.shadow.items()})
        return model


# --- stage runs: checkpoints, time limits, logs ---------------------------------------------
class StageRun:
    """One stage's work folder: ckpt.pt (model, optimizer, step, RNG, history), log.json (the
    history for the model card), done.json once the stage has reached its step target.

        run = StageRun(work, "unet", steps, args, upstream={...})
        step = run.resume({"model": unet, "opt": opt, "ema": ema})
        while step < run.steps:
            ...; step += 1
            if run.should_stop(step): break            # checkpoint cadence / time limit / Ctrl-C
        run.finish(step, objects)                       # checkpoint; done.json if complete
    """

    def __init__(self, work: Path, name: str, steps: int, *, ckpt_every: int, max_minutes: float | None,
                 config: dict, upstream: dict | None = None, log=print, restart: bool = False,
                 stop_at: int | None = None):
        self.name, self.steps, self.ckpt_every, self.log = name, steps, ckpt_every, log
        self.dir = Path(work) / name
        if restart and self.dir.exists():
            log(f"[{name}] --restart: removing {self.dir}")
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ckpt = self.dir / "ckpt.pt"
        side = self.dir / "ckpt.json"     # small sidecar: checked before any model is loaded
        if side.exists() and json.loads(side.read_text()).get("upstream") != (upstream or {}):
            raise SystemExit(f"[{name}] the checkpoint in {self.dir} was trained on other inputs "
                             f"({json.loads(side.read_text()).get('upstream')} vs now {upstream}); "
                             f"re-run with --restart {name.split('/')[0]} to start this stage over")
        self.config = config
        self.upstream = upstream or {}
        self.max_s = None if max_minutes is None else max_minutes * 60
        self.stop_at = stop_at       # a step short of `steps` to stop at, the schedule still `steps` long
        self.t0 = time.time()
        self.step0 = 0
        self.history = {"stage": name, "config": config, "upstream": self.upstream, "loss": [],
                        "evals": [], "sessions": [], "wall_s": 0.0}
        self.stopped = None          # 'time' | 'step' | 'interrupt' | None
        self._acc = []               # losses since the last log point
        self._extra = {}
        self._wall_before = 0.0      # wall time of earlier sessions (from the checkpoint)
        self._session_index = 0

    # -- status
    def done_info(self) -> dict | None:
        p = self.dir / "done.json"
        return json.loads(p.read_text()) if p.exists() else None

    def is_done(self) -> bool:
        d = self.done_info()
        return bool(d) and d.get("step", -1) >= self.steps and d.get("upstream") == self.upstream

    # -- checkpoints
    def resume(self, objects: dict) -> int:
        if not self.ckpt.exists():
            self.log(f"[{self.name}] starting at step 0 of {self.steps}")
            return 0
        ck = torch.load(str(self.ckpt), map_location="cpu", weights_only=False)
        if ck.get("upstream", {}) != self.upstream:
            raise SystemExit(f"[{self.name}] the checkpoint in {self.dir} was trained on other inputs "
                             f"({ck.get('upstream')} vs now {self.upstream}); "
                             f"re-run with --restart {self.name} to start this stage over")
        for k, obj in objects.items():
            if k in ck["objects"]:
                obj.load_state_dict(ck["objects"][k])
        torch.set_rng_state(ck["torch_rng"])
        np.random.set_state(ck["numpy_rng"])
        self.history = ck["history"]
        self.history["config"] = self.config
        self.step0 = ck["step"]
        self.adopt_history()
        self.log(f"[{self.name}] resuming from {self.ckpt} at step {self.step0} of {self.steps}")
        return self.step0

    def adopt_history(self) -> None:
        """After self.history was given earlier sessions (a checkpoint's or a seed's): this
        session is the next one, and the wall time counts on from theirs."""
        self._wall_before = float(self.history.get("wall_s", 0.0))
        self._session_index = len(self.history["sessions"])

    def save(self, step: int, objects: dict) -> None:
        self._flush_loss(step)
        self._close_session(step)
        ck = {"step": step, "objects": {k: o.state_dict() for k, o in objects.items()},
              "torch_rng": torch.get_rng_state(), "numpy_rng": np.random.get_state(),
              "history": self.history, "upstream": self.upstream}
        torch_save_atomic(ck, self.ckpt)
        write_json_atomic(self.dir / "ckpt.json", {"step": step, "upstream": self.upstream})
        write_json_atomic(self.dir / "log.json", self.history)

    def _close_session(self, step: int) -> None:
        now = time.time()
        entry = {"start_step": self.step0, "end_step": step, "wall_s": round(now - self.t0, 2),
                 "threads": torch.get_num_threads(), "device": self.config.get("device", "cpu"),
                 "when": time.strftime("%Y-%m-%d %H:%M:%S")}
        sess = self.history["sessions"]
        if len(sess) > self._session_index:
            sess[self._session_index] = entry
        else:
            sess.append(entry)
        self.history["wall_s"] = round(self._wall_before + now - self.t0, 2)

    # -- per-step bookkeeping
    def record(self, step: int, loss: float, every: int = 25, **extra) -> None:
        """Record the loss of step `step` (1-based count of finished steps)."""
        self._acc.append(loss)
        self._extra = {k: float(v) for k, v in extra.items()}
        if step % every == 0 or step == self.steps:
            self._flush_loss(step)

    def _flush_loss(self, step: int) -> None:
        if not self._acc:
            return
        elapsed = self._wall_before + time.time() - self.t0
        row = {"step": step, "loss": float(np.mean(self._acc)), "elapsed_s": round(elapsed, 2)}
        row.update({k: (float(v) if isinstance(v, (int, float, np.floating)) else v)
                    for k, v in self._extra.items()})
        self.history["loss"].append(row)
        rate = (time.time() - self.t0) / max(1, step - self.step0)
        self.log(f"[{self.name}] step {step}/{self.steps}  loss {row['loss']:.5f}  "
                 + "  ".join(f"{k} {v:.3g}" for k, v in self._extra.items())
                 + f"  ({rate:.2f} s/step)")
        self._acc = []

    def add_eval(self, step: int, **figures) -> None:
        row = {"step": step, **figures}
        self.history["evals"].append(row)
        self.log(f"[{self.name}] eval @ {step}: " + ", ".join(
            f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in figures.items()))

    def out_of_time(self) -> bool:
        return self.max_s is not None and time.time() - self.t0 >= self.max_s

    def should_stop(self, step: int, objects: dict) -> bool:
        """Checkpoint every ckpt_every steps; True (after checkpointing) when the time is up."""
        if self.out_of_time() and step < self.steps:
            self.stopped = "time"
            self.save(step, objects)
            self.log(f"[{self.name}] --max-minutes reached at step {step}/{self.steps}; "
                     f"checkpoint written, re-run the same command to continue")
            return True
        if step % self.ckpt_every == 0 and step < self.steps:
            self.save(step, objects)
        return False

    def stop_here(self, step: int, objects: dict) -> bool:
        """At --stop-at (short of the stage's end): checkpoint, and True."""
        if self.stop_at is None or step < self.stop_at or step >= self.steps:
            return False
        self.stopped = "step"
        self.save(step, objects)
        self.log(f"[{self.name}] --stop-at reached at step {step}/{self.steps}; checkpoint written")
        return True

    def finish(self, step: int, objects: dict, **summary) -> bool:
        """Final checkpoint; done.json when the step target is reached. True if complete."""
        self.save(step, objects)
        complete = step >= self.steps
        if complete:
            info = {"step": step, "upstream": self.upstream, "wall_s": round(self.history["wall_s"], 2),
                    "finished": time.strftime("%Y-%m-%d %H:%M:%S"), **summary}
            write_json_atomic(self.dir / "done.json", info)
        return complete

    def interrupted(self, step: int, objects: dict) -> None:
        self.stopped = "interrupt"
        self.save(step, objects)
        self.log(f"[{self.name}] interrupted at step {step}; checkpoint written")
