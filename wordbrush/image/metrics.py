"""Figures of a discrete VAE: reconstruction PSNR and codebook usage."""

from __future__ import annotations

import math

import torch


def psnr(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB for images in [0, 1]: (B, 3, H, W) x2 -> (B,)."""
    mse = (recon.float().clamp(0, 1) - target.float()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


def code_usage(indices: torch.Tensor, num_codes: int) -> dict[str, float]:
    """Perplexity of the code histogram and the share of codes used at least once."""
    counts = torch.bincount(indices.flatten(), minlength=num_codes).float()
    p = counts / counts.sum()
    entropy = -(p[p > 0] * p[p > 0].log()).sum().item()
    return {"perplexity": math.exp(entropy), "used_share": (counts > 0).float().mean().item()}
