"""The two bottlenecks of the discrete VAE.

- `VectorQuantizerEMA` (VQ-VAE): nearest code, straight-through gradient, commitment loss
  beta * ||z_e - sg[z_q]||^2, codebook learnt by exponential moving averages of the vectors assigned to
  each code, and codes that fall out of use restarted on encoder outputs of the current batch.
- `GumbelQuantizer` (DALL·E's dVAE): the encoder gives logits over the codes; a relaxed one-hot sample
  (Gumbel-softmax at temperature tau, annealed towards 0) mixes the codebook; the prior is uniform and the
  ELBO's KL term is KL(q(z|x) || U(K)) = sum_k q_k log(q_k K).

Both return `QuantizerOutput` with the quantized map, the code indices and their loss term.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from einops import rearrange
from torch import nn


@dataclass
class QuantizerOutput:
    z_q: torch.Tensor  # (B, D, h, w) quantized vectors fed to the decoder
    indices: torch.Tensor  # (B, h, w) int64 code ids
    loss: torch.Tensor  # scalar: commitment (vq) or weighted KL (gumbel)
    kl: torch.Tensor | None = None  # gumbel: KL(q || uniform), nats per token


def _world() -> int:
    """Processes training together (torchrun); 1 otherwise."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class VectorQuantizerEMA(nn.Module):
    """Under torchrun the codebook statistics are summed over every rank's share of the batch, and the codes that
    are (re)started from encoder outputs take rank 0's, so every rank holds the same codebook."""

    def __init__(self, num_codes: int, dim: int, commitment: float = 0.25, decay: float = 0.99,
                 restart_threshold: float = 0.03, eps: float = 1e-5):
        super().__init__()
        self.num_codes, self.dim = num_codes, dim
        self.commitment, self.decay, self.restart_threshold, self.eps = commitment, decay, restart_threshold, eps
        embed = torch.randn(num_codes, dim) / math.sqrt(dim)
        self.register_buffer("codebook", embed.clone())  # (K, D)
        self.register_buffer("ema_count", torch.ones(num_codes))  # EMA of assignments per batch
        self.register_buffer("ema_sum", embed.clone())  # EMA of summed vectors assigned to each code
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (N,) index of the nearest code in squared L2."""
        cb = self.codebook
        d = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ cb.t() + cb.pow(2).sum(1)[None]  # (N, K)
        return d.argmin(1)

    def embed(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, h, w) ids -> (B, D, h, w) vectors."""
        return rearrange(F.embedding(indices, self.codebook), "b h w d -> b d h w")

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        z = z.float()  # distances and EMA statistics in float32 even under autocast
        b, _, h, w = z.shape
        flat = rearrange(z, "b d h w -> (b h w) d")
        if self.training and not bool(self.initialised):
            self._init_from(flat)
        idx = self.nearest(flat)
        if self.training:
            self._ema_update(flat, idx)
        z_q = self.embed(idx.view(b, h, w))
        loss = self.commitment * F.mse_loss(z, z_q.detach())
        z_q = z + (z_q - z).detach()  # straight-through estimator
        return QuantizerOutput(z_q=z_q, indices=idx.view(b, h, w), loss=loss)

    @torch.no_grad()
    def _init_from(self, flat: torch.Tensor) -> None:
        pick = torch.randint(0, flat.shape[0], (self.num_codes,), device=flat.device)
        self.codebook.copy_(flat[pick])
        if _world() > 1:
            dist.broadcast(self.codebook, 0)
        self.ema_sum.copy_(self.codebook)
        self.ema_count.fill_(1.0)
        self.initialised.fill_(True)

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, idx: torch.Tensor) -> None:
        onehot = F.one_hot(idx, self.num_codes).type_as(flat)  # (N, K)
        count = onehot.sum(0)  # (K,)
        total = onehot.t() @ flat  # (K, D)
        if _world() > 1:  # the global batch's statistics
            dist.all_reduce(count)
            dist.all_reduce(total)
        self.ema_count.mul_(self.decay).add_(count, alpha=1 - self.decay)
        self.ema_sum.mul_(self.decay).add_(total, alpha=1 - self.decay)
        n = self.ema_count.sum()
        smoothed = (self.ema_count + self.eps) / (n + self.num_codes * self.eps) * n  # Laplace smoothing
        self.codebook.copy_(self.ema_sum / smoothed[:, None])
        dead = self.ema_count < self.restart_threshold
        if dead.any():  # restart unused codes on random encoder outputs of this batch
            k = int(dead.sum())
            pick = torch.randint(0, flat.shape[0], (k,), device=flat.device)
            noise = torch.randn(k, self.dim, device=flat.device) * flat.std() * 0.01
            fresh = flat[pick] + noise
            if _world() > 1:
                dist.broadcast(fresh, 0)
            self.codebook[dead] = fresh
            self.ema_sum[dead] = fresh
            self.ema_count[dead] = 1.0


class GumbelQuantizer(nn.Module):
    def __init__(self, num_codes: int, dim: int, kl_weight: float = 1e-3, straight_through: bool = False):
        super().__init__()
        self.num_codes, self.dim = num_codes, dim
        self.kl_weight, self.straight_through = kl_weight, straight_through
        self.codebook = nn.Parameter(torch.randn(num_codes, dim) / math.sqrt(dim))  # (K, D)
        self.temperature = 1.0  # set by the training loop (annealed); not a hyperparameter of the weights

    def embed(self, indices: torch.Tensor) -> torch.Tensor:
        return rearrange(F.embedding(indices, self.codebook), "b h w d -> b d h w")

    def forward(self, logits: torch.Tensor) -> QuantizerOutput:
        logits = logits.float()  # (B, K, h, w)
        if self.training:
            soft = F.gumbel_softmax(logits, tau=self.temperature, hard=self.straight_through, dim=1)
            z_q = torch.einsum("bkhw,kd->bdhw", soft, self.codebook)
        else:
            z_q = self.embed(logits.argmax(1))
        logq = F.log_softmax(logits, dim=1)
        kl = (logq.exp() * (logq + math.log(self.num_codes))).sum(1).mean()  # KL(q || uniform) per token
        return QuantizerOutput(z_q=z_q, indices=logits.argmax(1), loss=self.kl_weight * kl, kl=kl)
