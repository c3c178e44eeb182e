"""An adversarial term for the decoder stage, as LDM trained SD's autoencoders (taming-transformers'
recipe): a PatchGAN discriminator judges overlapping patches real or decoded, with a hinge loss,
and the decoder's adversarial loss is weighed against its reconstruction loss by the ratio of
their gradients at the decoder's last layer, so neither swamps the other whatever their scales.

Why: L1/L2 reconstruction draws the average of what a latent might hold, and where a latent
pixel covers a cat's ear, stripes or whiskers (a head is ~5 latent pixels across) the average
is a blur: the decoded cats were brown blobs with smudged faces even from clean latents.
"""

from __future__ import annotations

import torch
from torch import nn


class PatchDiscriminator(nn.Module):
    """Logits [B, 1, h, w], one per overlapping patch of an image [B, 3, H, W] in [-1, 1]
    (pix2pix's 70x70 PatchGAN: 4x4 convolutions, three stride-2; 14x14 logits at 128 px).
    GroupNorm rather than BatchNorm, so a logit does not depend on the rest of its batch."""

    def __init__(self, width: int = 32, layers: int = 3):
        super().__init__()
        mods: list[nn.Module] = [nn.Conv2d(3, width, 4, 2, 1), nn.LeakyReLU(0.2)]
        ch = width
        for k in range(1, layers + 1):
            out = width * min(2 ** k, 8)
            stride = 2 if k < layers else 1
            mods += [nn.Conv2d(ch, out, 4, stride, 1), nn.GroupNorm(8, out), nn.LeakyReLU(0.2)]
            ch = out
        mods.append(nn.Conv2d(ch, 1, 4, 1, 1))
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)                                                  # [B, 1, h, w]


def hinge_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The discriminator's loss: real patches above +1, decoded ones below -1."""
    return 0.5 * (torch.relu(1 - real_logits).mean() + torch.relu(1 + fake_logits).mean())


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The decoder's adversarial loss: its patches judged real."""
    return -fake_logits.mean()


def adaptive_weight(rec_loss: torch.Tensor, adv_loss: torch.Tensor, last_layer: torch.Tensor,
                    limit: float = 1e4) -> torch.Tensor:
    """|d rec / d last| / |d adv / d last| (taming-transformers' calculate_adaptive_weight): the
    adversarial term scaled to pull on the last layer as hard as the reconstruction does."""
    g_rec = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_adv = torch.autograd.grad(adv_loss, last_layer, retain_graph=True)[0]
    return (g_rec.norm() / (g_adv.norm() + 1e-4)).clamp(0.0, limit).detach()
