"""Geometry of the world's shapes, in numpy only.

Each shape is a set of filled polygons minus hole polygons, in unit coordinates: centred on its
bounding box, largest bbox side = 1, y pointing down, upright (no rotation). The renderer (canvas.py) scales these to pixels; the detector rasterises
them with `rasterize` to get its templates, so both sides share one definition.
"""

from __future__ import annotations

import math

import numpy as np

# Five shapes: what a CPU training budget can teach a small model to draw crisply (the first
# world's eight, with ring, diamond and cross, were learnt as blobs; see the model card).
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "heart")
PLURALS: dict[str, str] = {s: s + "s" for s in SHAPES}

# Extent of each shape relative to its size class, so that a "medium square" and a "medium
# circle" look about as big (a full square of the same extent looks heavier than a circle).
SHAPE_SCALE: dict[str, float] = {
    "circle": 1.0, "square": 0.86, "triangle": 1.06, "star": 1.1, "heart": 1.0,
}

STAR_INNER = 0.47  # inner / outer radius: a fat star keeps its tips after a blur

Polygon = np.ndarray  # (N, 2) float array of (x, y)


def _circle(r: float, n: int = 96) -> Polygon:
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def _raw_outline(shape: str) -> tuple[list[Polygon], list[Polygon]]:
    if shape == "circle":
        return [_circle(0.5)], []
    if shape == "square":
        return [np.array([[-.5, -.5], [.5, -.5], [.5, .5], [-.5, .5]])], []
    if shape == "triangle":
        h = math.sqrt(3) / 2
        return [np.array([[0, -h / 2], [.5, h / 2], [-.5, h / 2]])], []
    if shape == "star":
        k = np.arange(10)
        r = np.where(k % 2 == 0, 1.0, STAR_INNER)
        t = -math.pi / 2 + k * math.pi / 5
        return [np.stack([r * np.cos(t), r * np.sin(t)], axis=1)], []
    if shape == "heart":
        t = np.linspace(0, 2 * math.pi, 160, endpoint=False)
        x = 16 * np.sin(t) ** 3
        y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        return [np.stack([x, y], axis=1)], []
    raise ValueError(f"unknown shape {shape!r}")


def outline(shape: str) -> tuple[list[Polygon], list[Polygon]]:
    """(filled polygons, hole polygons) of a shape, bbox-centred with largest side 1."""
    fills, holes = _raw_outline(shape)
    pts = np.concatenate(fills)
    lo, hi = pts.min(0), pts.max(0)
    centre, scale = (lo + hi) / 2, 1.0 / (hi - lo).max()
    norm = lambda p: (p - centre) * scale  # noqa: E731
    return [norm(p) for p in fills], [norm(p) for p in holes]


def aspect(shape: str) -> float:
    """Width / height of the shape's bounding box."""
    pts = np.concatenate(outline(shape)[0])
    w, h = pts.max(0) - pts.min(0)
    return float(w / h)


def placed(shape: str, cx: float, cy: float, extent: float) -> tuple[list[Polygon], list[Polygon]]:
    """The outline scaled to `extent` pixels (largest side) and centred at (cx, cy)."""
    fills, holes = outline(shape)
    off = np.array([cx, cy])
    return [p * extent + off for p in fills], [p * extent + off for p in holes]


def point_in_polygon(xs: np.ndarray, ys: np.ndarray, poly: Polygon) -> np.ndarray:
    """Even-odd test of points (xs, ys) (same shape) against one polygon."""
    inside = np.zeros(xs.shape, dtype=bool)
    x0, y0 = poly[:, 0], poly[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    for ax, ay, bx, by in zip(x0, y0, x1, y1):
        crosses = (ay > ys) != (by > ys)
        with np.errstate(divide="ignore", invalid="ignore"):
            xint = ax + (ys - ay) * (bx - ax) / (by - ay)
        inside ^= crosses & (xs < xint)
    return inside


def rasterize(fills: list[Polygon], holes: list[Polygon], height: int, width: int) -> np.ndarray:
    """Boolean mask of pixel centres inside the fills and outside the holes."""
    ys, xs = np.mgrid[0:height, 0:width].astype(float) + 0.5
    mask = np.zeros((height, width), dtype=bool)
    for p in fills:
        mask |= point_in_polygon(xs, ys, p)
    for p in holes:
        mask &= ~point_in_polygon(xs, ys, p)
    return mask


def template(shape: str, res: int = 32) -> np.ndarray:
    """The shape stretched to fill a res x res box (aspect removed), as a boolean mask."""
    fills, holes = outline(shape)
    pts = np.concatenate(fills)
    lo, hi = pts.min(0), pts.max(0)
    sx, sy = res / (hi[0] - lo[0]), res / (hi[1] - lo[1])
    tf = lambda p: np.stack([(p[:, 0] - lo[0]) * sx, (p[:, 1] - lo[1]) * sy], 1)  # noqa: E731
    return rasterize([tf(p) for p in fills], [tf(p) for p in holes], res, res)
