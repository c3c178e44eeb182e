"""Measured quality of the embedded demo model, with images and traces made by Pareidolia.

Every figure of the model card's targets, from one sampler setting (ddim 20, guidance 5, 128×128):

- held-out captions (seeds 20000..): `pareidolia generate` draws each with a trace; the world's
  detector checks every captioned object — shapes by shape and colour, and where the caption says
  where (a cell, a row or column, or a relation to another object: "left of", "above", "side by
  side"), by the detections' cells and centroids — people and cats by class and by their
  captioned attributes (hat colour, fur colour, stripes; skin from world version 5) — and whether
  the DAAM map of each object's noun peaks inside the region where that object was drawn;
- alex, cora and koko alone (4 templates × 4 seeds each, their textual-inversion files): how
  often the detector finds that very individual;
- "alex and cora side by side", "alex and koko side by side", "alexcora side by side" over
  --pair-seeds seeds: both, one, a merged character or none;
- the two-word pairs again with the merge remedy (`--separate a,b`, regions in halves) and each of
  its cumulative stages (text: each subject encoded alone; cross: + regional cross-attention;
  full: + bounded self-attention), on the same seeds: the same four outcomes;
- with --diffusers, the held-out captions again through diffusers' StableDiffusionPipeline on the
  same files and seeds: how far its object count is from Pareidolia's.

Results go to quality.json, the pair outcomes also to pairs.tsv (the demo page shows them), and
into the model card between the `<!-- pareidolia-quality -->` markers.

    /work/venv/bin/python Tools/toyworld/measure_pareidolia.py --n 200 --diffusers
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.numpy import load_file

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "Tools"))
from toyworld import detect, palette, world  # noqa: E402

# (a, b, prompt, embeddings): the look-alike people, a person and a cat, the pair token.
PAIRS = (("alex", "cora", "alex and cora side by side", ("alex", "cora")),
         ("alex", "koko", "alex and koko side by side", ("alex", "koko")),
         ("alex", "cora", "alexcora side by side", ("alexcora",)))
SOLO_TEMPLATES = ("a photo of {} on grass", "{} on a plain background", "a picture of {} in the centre",
                  "{} on the left")
SOLO_NAMES = ("alex", "cora", "koko")
TARGETS = {"objects": 0.85, "objects_with_place": 0.75, "characters_class": 0.90, "characters_attribute": 0.75,
           "daam_peak_in_region": 0.85, "individual_found": 12 / 16, "diffusers_objects_apart": 2}
MARK_START, MARK_END = "<!-- pareidolia-quality -->", "<!-- /pareidolia-quality -->"


def word_map(trace: Path, word: str, occurrence: int, size: int) -> np.ndarray | None:
    """DAAM map of the `occurrence`-th prompt word `word` (sum over evaluations, sub-tokens
    averaged, bicubic to image size, clamped at 0), or None when the word is not in the trace."""
    run = json.loads((trace / "run.json").read_text())
    cross = load_file(str(trace / "attention.safetensors"))["cross"]  # [E, T, h, w]
    groups: dict[int, list[int]] = {}
    for t in run["tokens"]:
        if t.get("word", "").lower() == word.lower():
            groups.setdefault(t["word_index"], []).append(t["position"])
    keys = sorted(groups)
    if occurrence >= len(keys):
        return None
    m = cross.sum(axis=0)[groups[keys[occurrence]]].mean(axis=0)  # [h, w]
    up = torch.nn.functional.interpolate(torch.from_numpy(m)[None, None], size=(size, size), mode="bicubic",
                                         align_corners=False).clamp_(min=0)
    return up[0, 0].numpy()


def captioned_attributes(scene, obj) -> dict[str, object]:
    """The attributes of a character that its caption states and the detector can read."""
    said = {m.kind for m in scene.mentions if obj.id in m.object_ids}
    ch, out = obj.character, {}
    if "hat" in said and ch.hat_colour:
        out["hat_colour"] = ch.hat_colour
    if "colour" in said:  # a cat's fur; a person's skin (world version 5 on)
        out["colour"] = ch.colour
    if ch.kind == "cat" and "pattern" in said:
        out["striped"] = ch.pattern == "stripes"
    return out


def has_attributes(det, want: dict[str, object]) -> bool:
    """Whether a character detection shows every attribute in `want` (captioned_attributes)."""
    return det is not None and all(getattr(det, k) == v for k, v in want.items())


def character_read(scene, obj, det) -> tuple[dict, bool | None]:
    """A person's or cat's captioned attributes and whether its detection (or None) shows them
    all (None where the caption names none): what the measurement, the probe and the VAE's
    checks count."""
    want = captioned_attributes(scene, obj)
    return want, (has_attributes(det, want) if want else None)


def match(scene, chars, dets) -> dict[int, object]:
    """Object id -> the detection that shows it: shapes by shape and colour, characters by class,
    preferring one with the captioned attributes; among equals the nearest (two red circles are
    not swapped). Each detection is used once."""
    used, out = set(), {}

    def distance(d, o):
        x0, y0, x1, y1 = d.bbox
        return np.hypot((x0 + x1) / 2 - o.centre[0], (y0 + y1) / 2 - o.centre[1])

    for o in scene.objects:
        if o.kind == "shape":
            cands = [d for d in dets if id(d) not in used and d.shape == o.shape and d.colour == o.colour]
            cands.sort(key=lambda d: distance(d, o))
        else:
            want = captioned_attributes(scene, o)
            cands = [c for c in chars if id(c) not in used and c.kind == o.kind]
            cands.sort(key=lambda c: (-sum(getattr(c, k) == v for k, v in want.items()), distance(c, o)))
        if cands:
            used.add(id(cands[0]))
            out[o.id] = cands[0]
    return out


def generate(binary, args, prompts, seeds, out: Path, trace: Path, embeddings=(), extra=()) -> None:
    cmd = [binary, "generate", *extra, "--seeds", ",".join(map(str, seeds)), "--steps", str(args.steps),
           "--guidance", str(args.guidance), "--sampler", args.sampler, "--output", str(out), "--trace", str(trace)]
    for p in prompts:
        cmd += ["--prompt", p]
    if args.model:
        cmd += ["--model", args.model]
    for e in embeddings:
        cmd += ["--embedding", str(Path(args.embeddings) / f"{e}.pt") if args.embeddings else e]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def traced_images(trace: Path) -> dict[tuple[str, int], Path]:
    """(prompt, seed) -> image.png of each run a multi-run trace folder lists (runs.json)."""
    index = json.loads((trace / "runs.json").read_text())
    return {(r["prompt"], r["seed"]): trace / r["trace"] / "image.png" for r in index["runs"]}


def remedy_until(trace: Path) -> float:
    """The share of evaluations the remedy bounded (`--separate-until`, the engine's default here),
    as the first run of a multi-run trace folder records it."""
    first = json.loads((trace / "runs.json").read_text())["runs"][0]["trace"]
    return float(json.loads((trace / first / "run.json").read_text())["remedy"]["until"])


def rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def claim_honoured(claim: tuple, found: dict) -> bool:
    """Whether the detections honour one placement claim of a caption (captions.caption's facts):
    ("position", ids, cell | "row R" | "column C") or ("relation", a, "left of" | "right of" |
    "above" | "below" | "side by side", b), by the detections' cells and centroids."""
    if claim[0] == "position":
        dets = [found.get(i) for i in claim[1]]
        if any(d is None for d in dets):
            return False
        fact = claim[2]
        if fact.startswith("row "):
            return all(palette.row_col(d.position)[0] == fact[4:] for d in dets)
        if fact.startswith("column "):
            return all(palette.row_col(d.position)[1] == fact[7:] for d in dets)
        return all(d.position == fact for d in dets)
    _, a, rel, b = claim
    da, db = found.get(a), found.get(b)
    if da is None or db is None:
        return False
    (ax, ay), (bx, by) = da.centroid, db.centroid
    return {"left of": ax < bx, "right of": ax > bx, "above": ay < by, "below": ay > by,
            "side by side": abs(ax - bx) > abs(ay - by)}[rel]


def placement_claims(scene) -> dict[int, list[tuple]]:
    """Object id -> the caption's claims about where that object is (none: the caption leaves its
    place free, as in "a small blue star", and any place honours it)."""
    out: dict[int, list[tuple]] = {}
    for f in scene.facts:
        ids = f[1] if f[0] == "position" else (f[1], f[3]) if f[0] == "relation" else ()
        for i in ids:
            out.setdefault(i, []).append(f)
    return out


CAPTION_KINDS = {"one": "one thing", "two": "two things", "related": "two things, one placed by the other"}


def caption_kind(scene) -> str:
    """'related' when the caption places one thing by another ("left of", "above"), 'two' when
    it names two things, else 'one'."""
    if any(f[0] == "relation" for f in scene.facts):
        return "related"
    return "two" if len(scene.objects) > 1 else "one"


def measure_heldout(binary, args, work: Path) -> dict:
    c = dict(objects=0, recognised=0, placed=0, claimed=0, claimed_ok=0, chars=0, chars_class=0, attrs=0,
             attrs_ok=0, daam_objects=0, daam_detected=0, daam_in=0)
    per = []
    # the same figures by what the caption asks for: one thing, two, or two it relates
    kinds = {k: dict(objects=0, recognised=0, claimed=0, claimed_ok=0) for k in CAPTION_KINDS}
    t0 = time.time()
    for i, scene in enumerate(world.dataset("heldout", args.n)):
        d = work / "heldout" / f"{i:04d}"
        seed = 20000 + i
        if not (d / "trace" / "image.png").exists():
            d.mkdir(parents=True, exist_ok=True)
            generate(binary, args, [scene.caption], [seed], d / "image.png", d / "trace")
        image = rgb(d / "image.png")
        chars, dets = detect.analyse(image)
        found = match(scene, chars, dets)
        claims = placement_claims(scene)
        kind = kinds[caption_kind(scene)]
        row = {"caption": scene.caption, "seed": seed, "objects": [], "daam": []}
        for o in scene.objects:
            det = found.get(o.id)
            if o.kind == "shape":
                c["objects"] += 1
                c["recognised"] += det is not None
                c["placed"] += det is not None and det.position == o.position
                kind["objects"] += 1
                kind["recognised"] += det is not None
                claimed_ok = None
                if claims.get(o.id):
                    claimed_ok = det is not None and all(claim_honoured(f, found) for f in claims[o.id])
                    c["claimed"] += 1
                    c["claimed_ok"] += claimed_ok
                    kind["claimed"] += 1
                    kind["claimed_ok"] += claimed_ok
                row["objects"].append({"shape": o.shape, "colour": o.colour, "found": det is not None,
                                       "cell_ok": det is not None and det.position == o.position,
                                       "captioned_place_ok": claimed_ok})
            else:
                want, ok = character_read(scene, o, det)
                c["chars"] += 1
                c["chars_class"] += det is not None
                if want:
                    c["attrs"] += 1
                    c["attrs_ok"] += ok
                row["objects"].append({"kind": o.kind, "found": det is not None, "attributes": want})
        # DAAM: each object's noun (shape word, or person/cat) against where that object was drawn.
        seen: dict[str, int] = {}
        for m in scene.mentions:
            if m.kind not in ("shape", "class"):
                continue
            occ = seen.get(m.word, 0)
            seen[m.word] = occ + 1
            heat = None
            region = np.zeros(image.shape[:2], bool)
            for oid in m.object_ids:
                if oid in found:
                    region |= found[oid].mask
            for oid in m.object_ids:
                c["daam_objects"] += 1
                if oid not in found:
                    continue
                if heat is None:
                    heat = word_map(d / "trace", m.word, occ, image.shape[0])
                if heat is None:
                    continue
                c["daam_detected"] += 1
                ok = bool(detect.peak_in_region(heat, region))
                c["daam_in"] += ok
                row["daam"].append({"word": m.word, "in_region": ok})
        per.append(row)
        if (i + 1) % 20 == 0:
            print(f"{i + 1}/{args.n}: objects {c['recognised'] / max(1, c['objects']):.3f}, "
                  f"captioned place {c['claimed_ok']}/{c['claimed']}, characters {c['chars_class']}/{c['chars']}, "
                  f"DAAM {c['daam_in']}/{c['daam_detected']} ({time.time() - t0:.0f} s)", flush=True)
    f = lambda a, b: c[a] / max(1, c[b])  # noqa: E731
    return {"captions": args.n, "seeds": f"20000..{20000 + args.n - 1}", "counts": c,
            "objects": f("recognised", "objects"), "objects_with_place": f("claimed_ok", "claimed"),
            "objects_in_scene_cell": f("placed", "objects"),
            "characters_class": f("chars_class", "chars"), "characters_attribute": f("attrs_ok", "attrs"),
            "daam_peak_in_region": f("daam_in", "daam_detected"),
            "daam_peak_in_region_of_all": f("daam_in", "daam_objects"), "by_caption_kind": kinds,
            "per_caption": per}


def measure_individuals(binary, args, work: Path) -> dict:
    out = {}
    per_template = max(1, args.solo_seeds // len(SOLO_TEMPLATES))
    seeds = [40000 + k for k in range(per_template)]
    for name in SOLO_NAMES:
        d = work / f"solo-{name}"
        prompts = [t.format(name) for t in SOLO_TEMPLATES]
        if not (d / "trace" / "runs.json").exists():
            d.mkdir(parents=True, exist_ok=True)
            generate(binary, args, prompts, seeds, d / "image.png", d / "trace", embeddings=(name,))
        images = traced_images(d / "trace")
        found = [any(ch.name == name for ch in detect.detect_characters(rgb(p))) for p in images.values()]
        out[name] = {"images": len(found), "found": int(sum(found)), "prompts": prompts, "seeds": seeds}
        print(f"{name} alone: found in {sum(found)} of {len(found)}", flush=True)
    return out


OUTCOMES = ("both", "one", "merged", "none")
REMEDY_STAGES = ("text", "cross", "full")
PARTS = ("heldout", "individuals", "pairs", "remedy")


def pair_outcomes(binary, args, d: Path, prompt: str, a: str, b: str, embs, extra=()) -> dict:
    """Both / one / merged / none over the pair seeds (30000..) of one prompt and one setting."""
    seeds = [30000 + k for k in range(args.pair_seeds)]
    if not (d / "trace" / "runs.json").exists():
        d.mkdir(parents=True, exist_ok=True)
        generate(binary, args, [prompt], seeds, d / "image.png", d / "trace", embeddings=embs, extra=extra)
    images = [rgb(traced_images(d / "trace")[(prompt, s)]) for s in seeds]
    outcomes = [detect.pair_outcome(im, a, b) for im in images]
    # Two characters of any identity: did the pair stay two things (a merge makes one), however
    # faithfully each was drawn?
    two = sum(len(detect.detect_characters(im)) >= 2 for im in images)
    # Of the merged: how many show a true mix (each attribute one of theirs, one from each).
    mixed = sum(o == "merged" and detect.mixes_pair(im, a, b) for o, im in zip(outcomes, images))
    return {"a": a, "b": b, "seeds": len(seeds), **{o: outcomes.count(o) for o in OUTCOMES},
            "mixed": int(mixed), "two_characters": int(two), "per_seed": dict(zip(map(str, seeds), outcomes))}


def brief(v: dict) -> dict:
    return {k: v.get(k) for k in ("seeds", *OUTCOMES, "mixed", "two_characters")}


def measure_pairs(binary, args, work: Path) -> dict:
    pairs = {}
    for a, b, prompt, embs in PAIRS:
        pairs[prompt] = pair_outcomes(binary, args, work / ("pair-" + prompt.replace(" ", "_")), prompt, a, b, embs)
        print(f"{prompt!r}: {brief(pairs[prompt])}", flush=True)
    return pairs


def measure_remedy(binary, args, work: Path) -> dict:
    """The pairs whose subjects are two prompt words, with `--separate a,b` at each cumulative stage."""
    out = {}
    for a, b, prompt, embs in PAIRS:
        if a not in prompt.split() or b not in prompt.split():
            continue  # the pair token is one word: nothing to separate
        stages = {}
        for stage in REMEDY_STAGES:
            d = work / (f"remedy-{stage}-" + prompt.replace(" ", "_"))
            extra = ("--separate", f"{a},{b}", "--separate-stage", stage)
            stages[stage] = pair_outcomes(binary, args, d, prompt, a, b, embs, extra)
            print(f"{prompt!r} --separate {a},{b} --separate-stage {stage}: {brief(stages[stage])}", flush=True)
        out[prompt] = {"separate": f"{a},{b}", "regions": "halves", "until": remedy_until(d / "trace"), "stages": stages}
    return out


def pairs_table(r: dict) -> list[tuple[str, str, dict]]:
    """(prompt, setting, outcome counts) rows: each pair as drawn, then with the remedy's stages."""
    rows = [(p, "as drawn", v) for p, v in r["pairs"].items()]
    for p, v in r.get("remedy", {}).items():
        rows += [(p, f"--separate {v['separate']} --separate-stage {st}", c) for st, c in v["stages"].items()]
    return rows


def measure_diffusers(args, heldout: dict) -> dict:
    """The held-out captions through diffusers on the same folder, seeds and sampler."""
    from toyworld import stagekit as sk
    from diffusers import StableDiffusionPipeline
    model = args.model or str(REPO / "Assets" / "demo-model")
    pipe = StableDiffusionPipeline.from_pretrained(model, dtype=torch.float32, safety_checker=None,
                                                   requires_safety_checker=False)
    pipe.scheduler = sk.make_scheduler(args.sampler)
    pipe.set_progress_bar_config(disable=True)
    scenes = list(world.dataset("heldout", args.n))
    images = sk.generate(pipe, [s.caption for s in scenes], [20000 + i for i in range(args.n)], args.steps, args.guidance)
    recognised = 0
    for s, im in zip(scenes, images):
        chars, dets = detect.analyse(im)
        found = match(s, chars, dets)
        recognised += sum(o.id in found for o in s.objects if o.kind == "shape")
    ours = heldout["counts"]["recognised"]
    return {"objects": heldout["counts"]["objects"], "recognised": recognised, "pareidolia_recognised": ours,
            "apart": abs(recognised - ours)}


def card_summary(r: dict, args) -> str:
    h, t = r["heldout"], TARGETS
    c = h["counts"]

    def mark(v, target, more=True):
        return "✅" if (v >= target if more else v <= target) else "❌"

    rows = [("objects recognised (shape and colour)", f"{h['objects']:.1%} of {c['objects']}", f"≥ {t['objects']:.0%}",
             mark(h["objects"], t["objects"])),
            ("… and where the caption places it (of the objects whose caption says where)",
             f"{h['objects_with_place']:.1%} of {c['claimed']}", f"≥ {t['objects_with_place']:.0%}",
             mark(h["objects_with_place"], t["objects_with_place"])),
            ("(… in the training scene's own cell, which the caption need not name)",
             f"{h['objects_in_scene_cell']:.1%}", "–", ""),
            ("people and cats recognised as their class", f"{h['characters_class']:.1%} of {c['chars']}",
             f"≥ {t['characters_class']:.0%}", mark(h["characters_class"], t["characters_class"])),
            (f"… with every captioned attribute ({'skin, ' if world.WORLD_VERSION >= 5 else ''}hat colour, fur, stripes)",
             f"{h['characters_attribute']:.1%} of {c['attrs']}",
             f"≥ {t['characters_attribute']:.0%}", mark(h["characters_attribute"], t["characters_attribute"])),
            ("DAAM map of an object's noun peaks inside it", f"{h['daam_peak_in_region']:.1%} of {c['daam_detected']} drawn "
             f"({h['daam_peak_in_region_of_all']:.1%} of all {c['daam_objects']})", f"≥ {t['daam_peak_in_region']:.0%}",
             mark(h["daam_peak_in_region"], t["daam_peak_in_region"]))]
    for name, v in r["individuals"].items():
        rows.append((f"{name} alone: that individual found", f"{v['found']} of {v['images']}", "≥ 12 of 16",
                     mark(v["found"] / max(1, v["images"]), t["individual_found"])))
    if r.get("diffusers"):
        dv = r["diffusers"]
        rows.append(("diffusers on the same files: objects recognised", f"{dv['recognised']} vs Pareidolia's "
                     f"{dv['pareidolia_recognised']} of {dv['objects']}", "within 2",
                     mark(dv["apart"], t["diffusers_objects_apart"], more=False)))
    table = "| figure | measured | target | |\n|---|---|---|---|\n" + "".join(f"| {a} | {b} | {c_} | {d} |\n" for a, b, c_, d in rows)
    kinds = h.get("by_caption_kind")
    if kinds:
        table += ("\nThe shapes by what their caption asks for:\n\n| caption | shapes | recognised | placed as captioned |\n"
                  "|---|---|---|---|\n" + "".join(
                      f"| {CAPTION_KINDS[k]} | {v['objects']} | {v['recognised'] / max(1, v['objects']):.1%} | "
                      f"{v['claimed_ok'] / max(1, v['claimed']):.1%} of {v['claimed']} |\n" for k, v in kinds.items()))
    pairs = ("| prompt | setting | both | one | merged (a true mix) | none | two characters drawn |\n|---|---|---|---|---|---|---|\n"
             + "".join(f"| `{p}` | {st} | {v['both']} | {v['one']} | {v['merged']} ({v.get('mixed', '–')}) | {v['none']} | "
                       f"{v.get('two_characters', '–')} |\n" for p, st, v in pairs_table(r)))
    until = {v.get("until", 1.0) for v in r.get("remedy", {}).values()}   # as the engine recorded it
    bounded = ("every evaluation bounded" if until == {1.0} else
               "the first " + " / ".join(f"{u:.0%}" for u in sorted(until)) + " of evaluations bounded")
    return (f"{MARK_START}\n**Measured with Pareidolia** (`Tools/toyworld/measure_pareidolia.py`, {'the release build' if not args.bin else args.bin}; "
            f"{args.n} held-out captions, seeds {h['seeds']}; {args.sampler} {args.steps} steps, guidance {args.guidance}, "
            f"128×128; the world's detector):\n\n{table}\nTwo individuals in one prompt, over {args.pair_seeds} seeds each "
            f"(the detector's outcome: both individuals / only one / a merged character, in brackets how many of "
            f"those are a true mix, each attribute one of theirs and one from each / none; and in how many "
            f"images it found at least two characters of any identity), as drawn and with the "
            f"merge remedy (bounded regional attention, halves, {bounded}; `text`: each "
            f"subject encoded alone, `cross`: + regional cross-attention, `full`: + bounded self-attention):"
            f"\n\n{pairs}\n{MARK_END}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200, help="held-out captions")
    ap.add_argument("--bin", default=None, help="the pareidolia binary (default: the release build)")
    ap.add_argument("--model", default=None, help="a diffusers folder (default: the embedded demo model)")
    ap.add_argument("--embeddings", default=None, help="folder of alex.pt, cora.pt, koko.pt, alexcora.pt (default: the model's own)")
    ap.add_argument("--work", default="/tmp/pareidolia-measure")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--guidance", type=float, default=5.0)
    ap.add_argument("--sampler", default="ddim")
    ap.add_argument("--solo-seeds", type=int, default=16, help="images per named individual (4 templates)")
    ap.add_argument("--pair-seeds", type=int, default=32)
    ap.add_argument("--diffusers", action="store_true", help="also run the held-out captions through diffusers")
    ap.add_argument("--parts", default=",".join(PARTS),
                    help="measure only these (the others are kept from --out): " + ", ".join(PARTS))
    ap.add_argument("--out", default=str(REPO / "Assets" / "demo-model" / "quality.json"))
    ap.add_argument("--card", default=str(REPO / "Assets" / "demo-model" / "MODEL_CARD.md"))
    ap.add_argument("--pairs-tsv", default=str(REPO / "Assets" / "demo-model" / "pairs.tsv"),
                    help="the pair outcomes as a table the demo page shows")
    args = ap.parse_args(argv)
    binary = args.bin or subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=REPO,
                                        capture_output=True, text=True, check=True).stdout.strip() + "/pareidolia"
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    parts = [x for x in args.parts.split(",") if x]
    if unknown := set(parts) - set(PARTS):
        ap.error(f"--parts: unknown {', '.join(sorted(unknown))}; expected some of {', '.join(PARTS)}")
    result = {"made_by": "Pareidolia (pareidolia generate, the release build), detector Tools/toyworld/detect.py",
              "sampler": args.sampler, "steps": args.steps, "guidance": args.guidance, "targets": TARGETS}
    if set(parts) != set(PARTS):
        # a partial run updates the last full one (same sampler settings), not a fresh file
        old = json.loads(Path(args.out).read_text())
        if (old["sampler"], old["steps"], old["guidance"]) != (args.sampler, args.steps, args.guidance):
            ap.error(f"--parts: {args.out} was measured with other sampler settings")
        result = {**old, **{k: v for k, v in result.items() if k != "wall_s"}}
    measure = {"heldout": measure_heldout, "individuals": measure_individuals, "pairs": measure_pairs,
               "remedy": measure_remedy}
    for part in parts:
        result[part] = measure[part](binary, args, work)
    if args.diffusers and "heldout" in parts:
        result["diffusers"] = measure_diffusers(args, result["heldout"])
        print(f"diffusers: {result['diffusers']}", flush=True)
    result["wall_s"] = round(time.time() - t0, 1)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    cols = (*OUTCOMES, "mixed", "two_characters")
    Path(args.pairs_tsv).write_text("prompt\tsetting\tseeds\t" + "\t".join(cols) + "\n" + "".join(
        f"{p}\t{st}\t{v['seeds']}\t" + "\t".join(str(v.get(o, "–")) for o in cols) + "\n" for p, st, v in pairs_table(result)))
    summary = card_summary(result, args)
    card = Path(args.card)
    if card.exists():
        text = card.read_text()
        if MARK_START in text:
            text = re.sub(re.escape(MARK_START) + ".*?" + re.escape(MARK_END), lambda _: summary, text, flags=re.S)
        else:
            text = text.rstrip() + "\n\n## Quality, measured with Pareidolia\n\n" + summary + "\n"
        card.write_text(text)
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
