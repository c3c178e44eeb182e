"""Seeds: a stage's weights committed to the repository (Tools/toyworld/seeds/) so that a session
can go on when the work folder is gone. `train.py seed` writes one (save_seed_weights, with
seed_history beside it); `--STAGE-init` starts a stage from one (seed_from_weights); seed_step
reads the step it was written at."""

from __future__ import annotations

import json
import sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[1]
if str(TOOLS) not in sys.path:   # also when imported from Tools/toyworld itself (`import train`)
    sys.path.insert(0, str(TOOLS))

import torch  # noqa: E402

from toyworld import trainkit as tk  # noqa: E402
from toyworld.stagekit import log  # noqa: E402

SEED_TEXT_PREFIX = "text_encoder."   # a UNet seed's text-encoder keys (save_seed_weights)
SEED_TOKEN_TABLE = "embeddings.token_embedding.weight"   # (key suffix) left out of UNet seeds


def seed_from_weights(model, path: Path, run: tk.StageRun, text_encoder=None, parts: tuple[str, ...] = ()) -> int:
    """Continues a stage from committed weights (a work folder lost with its machine): the model's
    weights and the step they were saved at; the optimizer starts afresh (its moments re-estimate
    within a few dozen steps) and the learning-rate schedule goes on from that step. A UNet seed
    may carry its text encoder (loaded into `text_encoder` when given). With `parts`, only the
    weights under those key prefixes come from the seed (a decoder's: the rest is the VAE stage's)."""
    own, text = read_seed(path)
    load_seed_state(model, own, parts, f"[{run.name}] {path}")
    if text_encoder is not None and text:
        missing, unexpected = text_encoder.load_state_dict(text, strict=False)
        if unexpected or [k for k in missing if not k.endswith(SEED_TOKEN_TABLE)]:
            raise SystemExit(f"[{run.name}] {path}: text-encoder keys do not fit (missing {missing}, unused {unexpected})")
        log(f"[{run.name}] the text encoder too, from the same file (its token table: the CLIP's)")
    step = seed_step(path)
    run.step0 = step   # the s/step figure counts from here
    prior = seed_history_path(path)
    if prior.exists():   # the sessions and learning curve that led to the seed go on in this run's log
        h = json.loads(prior.read_text())
        for k in ("sessions", "evals", "loss", "seeded_from"):
            run.history[k] = h.get(k, []) + run.history.get(k, [])
        run.history["wall_s"] = float(h.get("wall_s", 0.0))
        run.adopt_history()
    run.history.setdefault("seeded_from", []).append({"file": str(path), "step": step})
    log(f"[{run.name}] continuing from the weights in {path} (step {step}; fresh optimizer)")
    return step


def load_seed_state(model, state: dict, parts: tuple[str, ...], where: str) -> None:
    """`state` into `model`: every weight, or with `parts` those under these key prefixes (a seed
    holding more, such as a decoder seed that carries the whole VAE, gives only these)."""
    wanted = {k for k in model.state_dict() if not parts or k.startswith(parts)}
    given = {k: v for k, v in state.items() if not parts or k.startswith(parts)}
    missing, unused = sorted(wanted - set(given)), sorted(set(given) - wanted)
    if missing or unused:
        raise SystemExit(f"{where}: the seed's {', '.join(parts) or 'model'} weights do not fit "
                         f"(missing {missing[:4]}, unused {unused[:4]})")
    try:
        model.load_state_dict(given, strict=not parts)
    except RuntimeError as e:   # a weight of another shape (another preset's model)
        raise SystemExit(f"{where}: the seed's weights do not fit ({str(e).splitlines()[-1].strip()})") from None


def read_seed(path) -> tuple[dict, dict]:
    """A seed file's (model state, text-encoder state; {} where it carries none), in float32."""
    from safetensors.torch import load_file
    state = {k: v.float() for k, v in load_file(str(path)).items()}
    n = len(SEED_TEXT_PREFIX)
    return ({k: v for k, v in state.items() if not k.startswith(SEED_TEXT_PREFIX)},
            {k[n:]: v for k, v in state.items() if k.startswith(SEED_TEXT_PREFIX)})


def seed_history_path(seed: Path) -> Path:
    """The history committed beside a seed (unet.safetensors -> unet.history.json)."""
    return seed.with_name(seed.name.split(".")[0] + ".history.json")


def seed_history(history: dict) -> dict:
    """What of a stage's log goes beside its seed, so that a work folder lost with its machine
    does not take the learning curve with it: every session, every evaluation, the loss at
    each evaluation's step (not every 25th), the wall time and earlier seedings."""
    at = {e["step"] for e in history.get("evals", [])}
    loss = history.get("loss", [])
    near = [min(loss, key=lambda r: abs(r["step"] - a)) for a in sorted(at)] if loss else []
    return {"sessions": history.get("sessions", []), "evals": history.get("evals", []),
            "loss": [dict(r) for r in {r["step"]: r for r in near}.values()],
            "wall_s": history.get("wall_s", 0.0), "seeded_from": history.get("seeded_from", [])}


def save_seed_weights(model, path: Path, step: int, text_encoder_state: dict | None = None,
                      parts: tuple[str, ...] = ()) -> None:
    """The model's weights in fp16 with the step, for `--STAGE-init` on another machine (with
    `parts`, only those under these key prefixes); a UNet trained with its text encoder carries
    that too (keys under SEED_TEXT_PREFIX)."""
    from safetensors.torch import save_file
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v for k, v in model.state_dict().items() if not parts or k.startswith(parts)}
    # the token table is the CLIP's (frozen in the UNet stage): 6 MB not stored twice
    state.update({SEED_TEXT_PREFIX + k: v for k, v in (text_encoder_state or {}).items()
                  if not k.endswith(SEED_TOKEN_TABLE)})
    save_file({k: v.detach().to(torch.float16).contiguous() for k, v in state.items()}, str(path),
              metadata={"step": str(step)})


def seed_step(path: Path) -> int:
    """The step a seed file (save_seed_weights) was written at, from its metadata."""
    from safetensors import safe_open
    with safe_open(str(path), "pt") as f:
        return int((f.metadata() or {}).get("step", 0))
