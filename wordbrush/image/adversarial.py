"""The VQGAN terms of the image tokenizer's objective (Esser et al. 2021), beside reconstruction + the bottleneck's:

    L = L_rec + L_quant + w_p * L_perceptual + [step >= start] * lambda * w_a * L_G

- patch discriminator D: stride-2 convolutions to a grid of real/fake logits, one per patch, trained with the
  hinge loss  E[max(0, 1 - D(x))] + E[max(0, 1 + D(x_rec))];  L_G = -E[D(x_rec)]. It is switched on after a warm-up
  (the reconstructions must be reasonable first) and saved beside the run, never inside the tokenizer's weights.
- adaptive weight lambda = ||grad_last L_rec|| / (||grad_last L_G|| + 1e-4), clamped to [0, 1e4], the gradients
  taken at the decoder's last layer: the adversarial pull stays in proportion to the reconstruction's.
- perceptual term: a wordbrush CLIP's image tower stands in for VGG/LPIPS (no such weights exist offline). At each
  of its stages the feature maps of x and x_rec are unit-normalised along channels and their squared distance
  averaged (LPIPS without its learned per-channel weights).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.conv import ResBlock

ADAPTIVE_MAX = 1e4


class PatchDiscriminator(nn.Module):
    """(B, 3, H, W) in [0, 1] -> (B, 1, H/8, W/8) logits (pix2pix's PatchGAN, without norms)."""

    def __init__(self, channels: tuple[int, ...] = (64, 128, 256)):
        super().__init__()
        layers: list[nn.Module] = []
        prev = 3
        for ch in channels:
            layers += [nn.Conv2d(prev, ch, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            prev = ch
        layers.append(nn.Conv2d(prev, 1, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images * 2 - 1)


def d_hinge(d: PatchDiscriminator, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - d(real)).mean() + F.relu(1 + d(fake.detach())).mean()


def adaptive_weight(rec_loss: torch.Tensor, g_loss: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """VQGAN's lambda: the ratio of the two losses' gradient norms at the decoder's last weight (no grad)."""
    g_rec = torch.autograd.grad(rec_loss, last, retain_graph=True)[0]
    g_adv = torch.autograd.grad(g_loss, last, retain_graph=True)[0]
    return (g_rec.norm() / (g_adv.norm() + 1e-4)).clamp(0, ADAPTIVE_MAX).detach()


class PerceptualLoss(nn.Module):
    """Distance between a frozen image tower's normalised feature maps of two images, summed over stages. tower:
    a wordbrush CLIP's `image` (a `net` of stride-2 convolutions, each stage ending in a ResBlock)."""

    def __init__(self, tower: nn.Module):
        super().__init__()
        self.tower = tower
        for p in self.tower.parameters():
            p.requires_grad_(False)
        self.tower.eval()

    def stages(self, images: torch.Tensor) -> list[torch.Tensor]:
        feats, h = [], images * 2 - 1
        for layer in self.tower.net:
            h = layer(h)
            if isinstance(layer, ResBlock):  # the end of a stage
                feats.append(F.normalize(h, dim=1))
        return feats

    def forward(self, recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.tower.eval()
        return sum((a - b).square().sum(1).mean() for a, b in zip(self.stages(recon), self.stages(target)))
