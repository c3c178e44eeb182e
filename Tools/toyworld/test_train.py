"""Checks of train.py's data helpers that need no work folder.

Run with `python -m pytest Tools/toyworld` (needs torch and diffusers; skipped without).
"""

from __future__ import annotations

import os
import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from toyworld import world  # noqa: E402


def test_individual_latents_hold_every_named_individual():
    """The decoder stage's individual renders: --ti-images of each named individual, encoded by the
    VAE given (latents 1/8 of the side) beside their pixels in [-1, 1], in world.NAMED's order."""
    from diffusers import AutoencoderKL
    from toyworld import train
    vae = AutoencoderKL(block_out_channels=(8, 8, 8, 8), down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4, norm_num_groups=4)
    args = train.parse_args(["decoder", "--ti-images", "2"])
    mean, std, x = train.individual_latents(args, vae, "cpu")
    n = 2 * len(world.NAMED)
    assert mean.shape == std.shape == (n, 4, 16, 16) and x.shape == (n, 3, 128, 128)
    assert bool((std > 0).all()) and -1 <= float(x.min()) and float(x.max()) <= 1
    first = world.individual_images(list(world.NAMED)[0], 2)[0].image
    assert torch.allclose(x[0].permute(1, 2, 0), torch.from_numpy(first).float() / 127.5 - 1)
