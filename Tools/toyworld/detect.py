"""The Shapes world's own detector (numpy only), for scoring what a model draws.

1. Pixels (after a 3x3 median against noise) get the nearest reference colour (objects,
   skin/fur, backgrounds; palette.reference_colours); a pixel far from every single colour is
   tried as an edge blend of two colours that can touch and goes to the side it is more than
   half of, so blurred edges land where the renderer's 50%-coverage masks put them.
2. Characters first: large solid skin/fur components (holes filled, a closing seals outlines a
   blur broke); both sides of the top edge rising above its middle make a cat (ears); an
   object-coloured component resting on a head is its hat, and the hat's colour is the main
   colour of the blob of object colours that holds it. Named individuals are read off
   (kind, head colour, hat colour) or (cat, fur colour, forehead stripes).
3. Shapes: components of each object colour with an eroded core (blur fringes, lines and
   specks have none), outside the characters' zones, classified by IoU of the bbox-normalised
   mask with templates of each shape (shapes.template, sharp and pre-blurred at small sizes,
   so a small blurred star still matches "star") less an aspect-ratio term.
Images smaller than WORK_SIZE are upsampled first; results are mapped back.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from . import palette, shapes
from .imageops import (bbox as mask_bbox, components, dilate, erode, fill_holes, gaussian_blur,
                       label_components, median3, upsample)
from .characters import HATS, NAMED

MAX_DIST = 100.0       # beyond this RGB distance from every reference a pixel is unlabelled
TEMPLATE_RES = 32
STRIPE_SCORE = 0.15    # share of dark forehead pixels that makes a head "striped"
EAR_SCORE = 0.045      # how far (share of head height) both ear tips rise above the middle


@dataclass
class Detection:
    colour: str
    shape: str
    size: str
    position: str
    bbox: tuple[int, int, int, int]     # x0, y0, x1, y1 (exclusive)
    centroid: tuple[float, float]       # (x, y)
    mask: np.ndarray
    score: float                        # template match score of the chosen shape


@dataclass
class CharacterDetection:
    kind: str                           # 'person' | 'cat'
    colour: str                         # skin / fur name
    hat: str                            # 'none' | 'top hat' | 'cap' | 'bow'
    hat_colour: str | None
    striped: bool                       # dark stripes on the forehead (tabby)
    name: str | None                    # a named individual whose attributes all match
    closest: str | None                 # the named individual matching the most attributes
    bbox: tuple[int, int, int, int]
    centroid: tuple[float, float]
    mask: np.ndarray                    # head (holes filled) + hat


# --- pixel classes and components ---------------------------------------------------------
@lru_cache(maxsize=1)
def _refs():
    refs = palette.reference_colours()
    names = [r[0] for r in refs]
    kinds = np.array([r[1] for r in refs])
    rgb = np.array([r[2] for r in refs], dtype=np.float32)
    # Pairs of colours that can meet at an edge: a foreground (object, head) colour with a
    # background colour or with another foreground colour (a hat on a head, an eye in it).
    fg = [k for k in range(len(refs)) if kinds[k] in ("object", "head")]
    bg = [k for k in range(len(refs)) if kinds[k] == "background"]
    pairs = [(f, b) for f in fg for b in bg]
    pairs += [(f, g) for i, f in enumerate(fg) for g in fg[i + 1:]]
    return names, kinds, rgb, np.array(pairs)


PAIR_PENALTY = 10.0    # a pixel is read as an edge blend only if that fits this much better
BLEND_CANDIDATE = 18.0  # pixels closer than this to a reference colour are taken as that colour


def classify_pixels(image: np.ndarray, denoise: bool = True) -> np.ndarray:
    """Index into palette.reference_colours() of each pixel's colour, -1 if none near.

    A pixel is either one reference colour (plus noise) or, at an anti-aliased or blurred edge,
    a blend a*F + (1-a)*B of two colours that can touch; a blend goes to F when a >= 0.5,
    which is where the renderer's masks put the edge (coverage >= 50%). Without the blend model
    an edge between, say, green and sky would be read as the grey that lies between them.
    Only pixels that are not close to one reference colour are tried as blends.
    """
    _, _, rgb, pairs = _refs()
    h, w = image.shape[:2]
    x = (median3(image) if denoise else image[..., :3].astype(np.float32)).reshape(-1, 3)
    # Per-channel broadcasting: BLAS is slow for these (N, 3) x (3, K) products.
    d2 = sum((x[:, c:c + 1] - rgb[None, :, c]) ** 2 for c in range(3))
    lab = d2.argmin(1)
    pure_d = np.sqrt(np.take_along_axis(d2, lab[:, None], 1)[:, 0])
    cand = np.nonzero(pure_d > BLEND_CANDIDATE)[0]
    if len(cand):
        fi, bi = pairs[:, 0], pairs[:, 1]
        d = rgb[fi] - rgb[bi]                  # (P, 3)
        dd = (d * d).sum(1)
        xc = x[cand]
        proj = sum((xc[:, c:c + 1] - rgb[bi, c][None]) * d[None, :, c] for c in range(3))
        a = np.clip(proj / dd[None], 0, 1)     # proj = (p - B) . (F - B)
        res2 = d2[cand][:, bi] - 2 * a * proj + a * a * dd[None]
        best = res2.argmin(1)
        pair_d = np.sqrt(np.maximum(np.take_along_axis(res2, best[:, None], 1)[:, 0], 0))
        ab = np.take_along_axis(a, best[:, None], 1)[:, 0]
        blend = np.where(ab >= 0.5, fi[best], bi[best])
        use = pair_d + PAIR_PENALTY < pure_d[cand]
        lab[cand[use]] = blend[use]
        pure_d[cand] = np.minimum(pure_d[cand], pair_d)
    lab[pure_d > MAX_DIST] = -1
    return lab.reshape(h, w)


# --- shapes -------------------------------------------------------------------------------
# Templates are made at a few pixel sizes and blur levels as well as sharp: a small shape under
# a soft model output is no longer the ideal polygon (a small blurred star is a rounded star,
# closer to a circle than to the sharp star template, but closest to a blurred star).
TEMPLATE_EXTENTS = (18, 30)
TEMPLATE_BLURS = (0.0, 1.5, 2.5)


@lru_cache(maxsize=4)
def _templates(res: int = TEMPLATE_RES) -> dict[str, list[tuple[np.ndarray, float]]]:
    out: dict[str, list[tuple[np.ndarray, float]]] = {}
    for s in shapes.SHAPES:
        out[s] = [(shapes.template(s, res), shapes.aspect(s))]
        for e in TEMPLATE_EXTENTS:
            ss, pad = 4, 8
            n = e + 2 * pad
            fills, holes = shapes.placed(s, n * ss / 2, n * ss / 2, e * ss)
            cov = shapes.rasterize(fills, holes, n * ss, n * ss).reshape(n, ss, n, ss).mean((1, 3))
            for sigma in TEMPLATE_BLURS:
                m = (gaussian_blur(cov, sigma) if sigma else cov) >= 0.5
                x0, y0, x1, y1 = mask_bbox(m)
                out[s].append((_stretch(m, (x0, y0, x1, y1), res), (x1 - x0) / (y1 - y0)))
    return out


def _stretch(mask: np.ndarray, bbox, res: int) -> np.ndarray:
    """The bbox of the mask sampled on a res x res grid (aspect removed)."""
    x0, y0, x1, y1 = bbox
    ys = (y0 + (np.arange(res) + 0.5) * (y1 - y0) / res).astype(int)
    xs = (x0 + (np.arange(res) + 0.5) * (x1 - x0) / res).astype(int)
    return mask[np.ix_(ys, xs)]


def robust_bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """The bbox of the mask after a 3x3 opening (so noise spurs do not stretch it)."""
    opened = dilate(erode(mask))
    return mask_bbox(opened if opened.any() else mask)


def classify_shape(mask: np.ndarray) -> tuple[str, float]:
    """(shape, score): best IoU with a template after stretching the mask's bbox to a square,
    less a penalty for a different aspect ratio."""
    x0, y0, x1, y1 = robust_bbox(mask)
    m = _stretch(mask, (x0, y0, x1, y1), TEMPLATE_RES)
    asp = (x1 - x0) / (y1 - y0)
    best, best_score = "circle", -1e9
    for name, tpls in _templates(TEMPLATE_RES).items():
        for tpl, tasp in tpls:
            iou = (m & tpl).sum() / max(1, (m | tpl).sum())
            score = iou - 0.5 * abs(np.log(asp / tasp))
            if score > best_score:
                best, best_score = name, float(score)
    return best, best_score


def _detect_shapes(image: np.ndarray, labels: np.ndarray,
                   characters: list[CharacterDetection]) -> list[Detection]:
    """Shape objects (characters' hats and features are left out)."""
    h, w = image.shape[:2]
    names, kinds = _refs()[:2]
    zone = np.zeros((h, w), bool)
    for c in characters:
        zone |= _character_zone(c, h, w)
    min_area = max(12, int(0.003 * h * w))
    out = []
    for k, name in enumerate(names):
        if kinds[k] != "object":
            continue
        for m in components(labels == k, min_area, 0.15):
            if (m & zone).sum() > 0.3 * m.sum():
                continue
            shape, score = classify_shape(m)
            x0, y0, x1, y1 = mask_bbox(m)
            ys, xs = np.nonzero(m)
            extent = max(x1 - x0, y1 - y0) / (shapes.SHAPE_SCALE[shape] * w)
            out.append(Detection(name, shape, palette.size_class(extent),
                                 palette.cell_of((x0 + x1) / 2, (y0 + y1) / 2, w, h),
                                 (x0, y0, x1, y1), (float(xs.mean()), float(ys.mean())), m,
                                 score))
    return out


# --- characters ---------------------------------------------------------------------------
def _character_zone(c: CharacterDetection, h: int, w: int) -> np.ndarray:
    """Where a character's own parts are: its head and hat box, widened for whiskers."""
    x0, y0, x1, y1 = mask_bbox(c.mask)
    pad = max(3, int(0.15 * (x1 - x0)))
    zone = np.zeros((h, w), bool)
    zone[max(0, y0 - 3):min(h, y1 + 3), max(0, x0 - pad):min(w, x1 + pad)] = True
    return zone


def _top_profile(filled: np.ndarray, bbox) -> np.ndarray:
    """Top edge (0 = bbox top, 1 = bbox bottom) of each column of the head."""
    x0, y0, x1, y1 = bbox
    sub = filled[y0:y1, x0:x1]
    first = np.where(sub.any(0), sub.argmax(0), y1 - y0)
    return first / (y1 - y0)


def _detect_characters(image: np.ndarray, labels: np.ndarray) -> list[CharacterDetection]:
    """People and cats, with the attributes that name the individuals."""
    h, w = image.shape[:2]
    names, kinds = _refs()[:2]
    head_ids = [k for k in range(len(names)) if kinds[k] == "head"]
    obj_ids = [k for k in range(len(names)) if kinds[k] == "object"]
    out = []
    for comp in components(np.isin(labels, head_ids), int(0.025 * h * w), 0.0):
        # A head is solid once its holes (eyes, patterns) are filled, and its own colour covers
        # a fair part of that; a blur fringe around an object fills to a disc it barely covers.
        # A closing first seals an outline that a blur broke open (busy faces, whiskers).
        filled = fill_holes(comp | erode(erode(dilate(comp, 2))))
        if comp.sum() < 0.4 * filled.sum() or erode(erode(filled)).sum() < 0.5 * filled.sum():
            continue
        bbox = mask_bbox(filled)
        x0, y0, x1, y1 = bbox
        prof = _top_profile(filled, bbox)
        n = len(prof)
        mid = prof[int(0.42 * n):int(0.58 * n) + 1].min()
        ears = [prof[int(a * n):int(b * n) + 1].min() for a, b in ((0.08, 0.4), (0.6, 0.92))]
        ear_score = min(mid - e for e in ears)  # both sides rise above the middle
        hat, hat_colour, hat_mask = _hat(labels, filled, bbox, obj_ids, names)
        if hat not in HATS:
            hat, hat_colour, hat_mask = _worlds_hat(hat, hat_colour, hat_mask, bbox, ear_score > EAR_SCORE)
        # Cats wear no hats; a bow beside a person's head can look like one raised side.
        kind = "cat" if ear_score > EAR_SCORE and hat == "none" else "person"
        counts = np.bincount(labels[comp], minlength=len(names))[head_ids]
        order = np.argsort(counts)[::-1]
        colour = names[head_ids[order[0]]]
        if kind == "cat" and colour == "tan":
            colour = "ginger"
        striped = _stripe_score(image, filled, bbox, kind) > STRIPE_SCORE
        mask = filled | hat_mask
        ys, xs = np.nonzero(filled)
        det = CharacterDetection(kind, colour, hat, hat_colour, bool(striped), None, None,
                                 bbox, (float(xs.mean()), float(ys.mean())), mask)
        det.name, det.closest = identify(det)
        out.append(det)
    return out


def _stripe_score(image, filled, bbox, kind) -> float:
    """Share of dark pixels in the forehead window, where stripes are drawn (eyes are below)."""
    x0, y0, x1, y1 = bbox
    bw, bh = x1 - x0, y1 - y0
    top, bottom = (0.28, 0.46) if kind == "cat" else (0.1, 0.3)
    win = (slice(y0 + int(top * bh), y0 + int(bottom * bh) + 1),
           slice(x0 + int(0.35 * bw), x0 + int(0.65 * bw) + 1))
    lum = median3(image).mean(-1)
    head = lum[filled]
    inside = lum[win][filled[win]]
    if len(inside) == 0 or len(head) == 0:
        return 0.0
    return float((inside < 0.85 * np.percentile(head, 75)).mean())


def _hat(labels, filled, bbox, obj_ids, names):
    """The object-coloured component resting on the head's upper half, if any, and its colour.

    It must lie mostly outside the (hole-filled) head, so eyes and mouth never count. Its colour
    is the main colour of the blob of object colours that holds it: a decoder blurs a blue hat
    into the skin below it through a band of purple, and the band is what touches the head.
    """
    h, w = labels.shape
    x0, y0, x1, y1 = bbox
    bw, bh = x1 - x0, y1 - y0
    upper = np.zeros_like(filled)
    upper[:y0 + bh // 2] = True
    touch = dilate(filled, 2) & upper
    # Only look in a window around the head: hats are at most one head high above it.
    win = (slice(max(0, y0 - bh), y1), slice(max(0, x0 - bw // 2), min(w, x1 + bw)))
    best_hits, hat = 0, np.zeros_like(filled)
    for k in obj_ids:
        m = np.zeros_like(filled)
        m[win] = labels[win] == k
        if not (m & touch).any():
            continue
        for comp in components(m, max(6, int(0.0015 * h * w)), 0.1):
            hits = (comp & touch).sum()
            if hits > best_hits and (comp & ~filled).sum() > 0.6 * comp.sum():
                best_hits, hat = hits, comp
    if best_hits == 0:
        return "none", None, hat
    blob = np.zeros_like(filled)
    blob[win] = np.isin(labels[win], obj_ids)
    blob_labels, _ = label_components(blob)
    hat = (blob_labels == blob_labels[hat].max()) & ~filled                  # the whole hat
    counts = np.bincount(labels[hat], minlength=len(names))
    colour = names[max(obj_ids, key=lambda k: counts[k])]
    hx0, hy0, hx1, hy1 = mask_bbox(hat)
    hh, hw = (hy1 - hy0) / bw, (hx1 - hx0) / bw
    kind = "top hat" if hh > 0.5 else ("cap" if hw > 0.95 else "bow")
    return kind, colour, hat


def _worlds_hat(hat, hat_colour, hat_mask, bbox, eared: bool):
    """A hat reading of a kind this world never draws (version 4 on: top hats only): a top hat
    out of shape, or a colour fringe that is no hat. Centred over the head and broad, it is a hat
    (a squat one, on a person whose uneven top would read as ears). Otherwise, on a head with ears
    it is a fringe: a decoder's purple ear tips or smudged whiskers beside a cat had read as a
    "bow", and so as a person, in 4 of the 6 people and cats the shipped model missed by class
    (0.17-0.33 of the head wide, their centres 0.24-0.35 of it off the middle). On a round head it
    is a lopsided hat."""
    x0, _, x1, _ = bbox
    xs = np.nonzero(hat_mask)[1]
    bw = x1 - x0
    centred = len(xs) > 0 and abs(xs.mean() - (x0 + x1) / 2) <= 0.15 * bw and xs.max() - xs.min() + 1 >= 0.4 * bw
    if "top hat" in HATS and (centred or not eared):
        return "top hat", hat_colour, hat_mask
    return "none", None, np.zeros_like(hat_mask)


def identify(det: CharacterDetection) -> tuple[str | None, str | None]:
    """(exact named match or None, closest named individual of the same kind or None).

    The closest is the one agreeing on most of (colour, hat colour) or (fur, stripes): a
    merged render of alex and cora shows up as name None with closest either of them.
    """
    seen = ((det.kind, det.colour, det.hat_colour) if det.kind == "person"
            else (det.kind, det.colour, det.striped))
    best, best_score, exact = None, 0, None
    for name, ch in NAMED.items():
        ident = ch.identity()
        if ident[0] != det.kind:
            continue
        score = sum(a == b for a, b in zip(ident[1:], seen[1:]))
        if score > best_score:
            best, best_score = name, score
        if ident == seen:
            exact = name
    return exact, best


# --- entry points -------------------------------------------------------------------------
WORK_SIZE = 128  # smaller images are upsampled to at least this: thresholds are tuned there


def analyse(image: np.ndarray) -> tuple[list[CharacterDetection], list[Detection]]:
    """(characters, shapes) in an RGB uint8 image of any size."""
    h, w = image.shape[:2]
    k = max(1, -(-WORK_SIZE // min(h, w)))
    work = upsample(image[..., :3], k) if k > 1 else image[..., :3]
    labels = classify_pixels(work)
    chars = _detect_characters(work, labels)
    found = _detect_shapes(work, labels, chars)
    if k > 1:
        for d in chars + found:
            d.mask = d.mask.reshape(h, k, w, k).mean((1, 3)) >= 0.5
            d.bbox = mask_bbox(d.mask) if d.mask.any() else tuple(v // k for v in d.bbox)
            d.centroid = (d.centroid[0] / k, d.centroid[1] / k)
    return chars, found


def detect(image: np.ndarray) -> list[Detection]:
    """Shape objects in an RGB image (characters' hats and features are left out)."""
    return analyse(image)[1]


def detect_characters(image: np.ndarray) -> list[CharacterDetection]:
    """People and cats in an RGB image, with the attributes that name the individuals."""
    return analyse(image)[0]


# --- scoring ------------------------------------------------------------------------------
def recognised_fraction(objects, image: np.ndarray, *, check_position: bool = False,
                        check_name: bool = False) -> float:
    """Share of the caption's objects (scenes.Obj) that the detector finds in the image.

    A shape counts when a distinct detection has its shape and colour (and cell, with
    check_position); a character when one of its kind is found (with the same name, with
    check_name). Each detection is used once.
    """
    if not objects:
        return 1.0
    chars, dets = analyse(image)
    used_d, used_c, hit = set(), set(), 0
    for o in objects:
        if o.kind == "shape":
            for i, d in enumerate(dets):
                if i not in used_d and d.shape == o.shape and d.colour == o.colour and (
                        not check_position or d.position == o.position):
                    used_d.add(i)
                    hit += 1
                    break
        else:
            for i, c in enumerate(chars):
                if i not in used_c and c.kind == o.kind and (
                        not check_name or o.name is None or c.name == o.name):
                    used_c.add(i)
                    hit += 1
                    break
    return hit / len(objects)


def pair_outcome(image: np.ndarray, a: str, b: str) -> str:
    """What became of "A and B" (two named individuals) in an image.

    'both': both found; 'one': only one of them (and nothing resembling the other); 'merged':
    no exact match for one of them, but a character of theirs that mixes their attributes
    (its closest individual is a or b, its attributes match neither fully); 'none': neither.
    """
    chars = detect_characters(image)
    names = {c.name for c in chars}
    if a in names and b in names:
        return "both"
    mixed = [c for c in chars if c.name is None and c.closest in (a, b)]
    if mixed:
        return "merged"
    if a in names or b in names:
        return "one"
    return "none"


def mixes_pair(image: np.ndarray, a: str, b: str) -> bool:
    """Whether a character in the image is a true mix of A and B: each of its identifying
    attributes is A's or B's, at least one from each (alex's skin under cora's hat). A merged
    character that is not a mix is merely imprecise (an attribute neither has)."""
    ia, ib = NAMED[a].identity(), NAMED[b].identity()
    if ia[0] != ib[0]:
        return False          # a person and a cat have no attributes to mix
    for c in detect_characters(image):
        seen = ((c.kind, c.colour, c.hat_colour) if c.kind == "person" else (c.kind, c.colour, c.striped))
        if (seen[0] == ia[0] and seen not in (ia, ib)
                and all(x in (u, v) for x, u, v in zip(seen[1:], ia[1:], ib[1:]))):
            return True
    return False


def peak_in_region(heatmap: np.ndarray, mask: np.ndarray, tolerance: int = 0) -> bool:
    """Whether the heat map's maximum, scaled to the mask's size, falls inside the mask.

    heatmap: any 2D array (e.g. a 16x16 attention map); it is mapped to the mask by nearest
    neighbour. tolerance: pixels by which the mask is grown first.
    """
    h, w = mask.shape
    hy, hx = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    # centre of the heat-map cell, in mask pixels
    y = min(h - 1, int((hy + 0.5) * h / heatmap.shape[0]))
    x = min(w - 1, int((hx + 0.5) * w / heatmap.shape[1]))
    region = dilate(mask, tolerance) if tolerance > 0 else mask
    return bool(region[y, x])
