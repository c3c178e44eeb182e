"""Golden figures for `pareidolia embeddings` (Tests/Fixtures/embedding_neighbours.json), in numpy
float64 on the tiny-sd fixture: each fixture embedding vector's norm, its norm percentile in the
vocabulary (share of rows with a smaller norm), its top-10 vocabulary tokens by cosine, and the
cosine matrix of all vectors.

    /work/venv/bin/python Tools/reference/make_embedding_fixtures.py
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file

REPO = Path(__file__).resolve().parents[2]
FIX = REPO / "Tests" / "Fixtures"
TOP = 10


def vectors() -> list[tuple[str, np.ndarray]]:
    """(label, vector) for every vector of the three pipeline-fixture embeddings, as the CLI labels them."""
    out: list[tuple[str, np.ndarray]] = []
    pt = torch.load(FIX / "pipeline" / "corajr.pt", weights_only=True)["string_to_param"]["*"].numpy()
    out += [(f"corajr[{i}]", v) for i, v in enumerate(pt)]
    binary = torch.load(FIX / "pipeline" / "winniecat.bin", weights_only=True)
    out += [("<winniecat>", next(iter(binary.values())).numpy().reshape(-1))]
    st = load_file(str(FIX / "pipeline" / "kokocat.safetensors"))
    kv = next(iter(st.values()))
    out += [(f"kokocat[{i}]", v) for i, v in enumerate(kv)]
    return out


def main() -> None:
    table = load_file(str(FIX / "tiny-sd" / "text_encoder" / "model.safetensors"))[
        "text_model.embeddings.token_embedding.weight"].astype(np.float64)  # [V, D]
    norms = np.linalg.norm(table, axis=1)
    unit = table / np.where(norms > 0, norms, 1)[:, None]
    sorted_norms = np.sort(norms.astype(np.float32))
    entries = []
    labelled = vectors()
    for label, v in labelled:
        v = v.astype(np.float64)
        n = np.linalg.norm(v)
        cos = unit @ (v / n)
        top = np.argsort(-cos, kind="stable")[:TOP]
        entries.append({
            "label": label, "norm": float(n),
            "norm_percentile": float(np.searchsorted(sorted_norms, np.float32(n), side="left") / len(sorted_norms)),
            "top_ids": [int(i) for i in top], "top_cosines": [float(cos[i]) for i in top],
        })
    m = np.stack([v.astype(np.float64) / np.linalg.norm(v) for _, v in labelled])
    out = {"top": TOP, "vectors": entries, "cosine": (m @ m.T).tolist(),
           "source": "Tools/reference/make_embedding_fixtures.py (numpy float64)"}
    (FIX / "embedding_neighbours.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {FIX / 'embedding_neighbours.json'}: {len(entries)} vectors")


if __name__ == "__main__":
    main()
