"""The deterministic float32 safetensors writer the fixture scripts share: tensors in sorted key
order, a JSON header with sorted keys (and `__metadata__` when there is any), padded with spaces
to a multiple of 8 — the layout safetensors itself produces, byte for byte the same every run."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np


def to_np32(t) -> np.ndarray:
    """A torch tensor or array as contiguous little-endian float32."""
    if hasattr(t, "detach"):
        t = t.detach().float().cpu().numpy()
    return np.ascontiguousarray(t, dtype="<f4")


def write_safetensors(path: Path, tensors: dict, metadata: dict[str, str] | None) -> None:
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = {k: str(metadata[k]) for k in sorted(metadata)}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        a = to_np32(tensors[name])
        b = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
