"""Goldens for the resampling kernels the probes and the UNet use (PyTorch F.interpolate).

Writes Tests/Fixtures/resize.safetensors:
  bilinear_up.x [2,3,4,3] -> bilinear_up.y [2,3,16,12]   (bilinear, align_corners=False)
  bilinear_odd.x [1,2,5,7] -> bilinear_odd.y [1,2,13,9]  (non-integer scales)
  bilinear_down.x [1,2,16,12] -> bilinear_down.y [1,2,5,3]
  nearest_size.x [1,2,9,5] -> nearest_size.y [1,2,17,10] (nearest to an explicit size, as the UNet's
                                                           forward_upsample_size path)
  antialias_*: bilinear with antialias=True (a latent shrunk before a 224-px decode for CLIP):
  antialias_down.x [1,4,64,64] -> [1,4,28,28], antialias_wide.x [1,4,64,96] -> [1,4,28,42],
  antialias_up.x [1,2,5,7] -> [1,2,13,9]
Run: /work/venv/bin/python Tools/reference/make_resize_fixtures.py
"""
import pathlib

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

out = {}
g = torch.Generator().manual_seed(7)


def case(name, shape, size, mode, antialias=False):
    x = torch.randn(shape, generator=g)
    kw = {"align_corners": False, "antialias": antialias} if mode == "bilinear" else {}
    y = F.interpolate(x, size=size, mode=mode, **kw)
    out[f"{name}.x"], out[f"{name}.y"] = x.contiguous(), y.contiguous()


case("bilinear_up", (2, 3, 4, 3), (16, 12), "bilinear")
case("bilinear_odd", (1, 2, 5, 7), (13, 9), "bilinear")
case("bilinear_down", (1, 2, 16, 12), (5, 3), "bilinear")
case("nearest_size", (1, 2, 9, 5), (17, 10), "nearest")
case("antialias_down", (1, 4, 64, 64), (28, 28), "bilinear", antialias=True)
case("antialias_wide", (1, 4, 64, 96), (28, 42), "bilinear", antialias=True)
case("antialias_up", (1, 2, 5, 7), (13, 9), "bilinear", antialias=True)
root = pathlib.Path(__file__).resolve().parents[2]
save_file(out, str(root / "Tests/Fixtures/resize.safetensors"), metadata={"torch": torch.__version__})
