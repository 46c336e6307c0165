"""The dalle as the GAN's teacher: its next-token likelihood of the code grid the generator writes.

The transformer trunk scores the VAE's codes at each of the 64 grid positions; their softmax q_i is a distribution
over codes at position i. The frozen dalle (trained on the same VAE's codes) reads the caption and the generator's
grid in raster order, each position as the q-weighted mixture of its code embeddings, and predicts every position
from those before it. The term is the expected negative log-likelihood of G's grid under it:

    L_teacher = mean_i  sum_k q_i(k) * -log p_dalle(k | caption, q_<i)            (nats a position)

a one-step student fitted to a slow autoregressive teacher in the reverse direction (q against p). Measured
(docs/gan.md, session 17): on prior samples it seeks the teacher's single likeliest grid, an empty picture, and
G collapses onto it within 500 steps (the per-sample loss has the same optimum for every noise, so nothing in it
asks for variety); objective "pmi" (log p(code | caption) - log p(code | no caption)) has no empty mode but is
unbounded, and G finds grids off the data that the two heads score apart. On the cVAE's redraws (the default)
it does not collapse, but pulls against the cross-entropy. What is missing is the student's own distribution in
the loss (distribution-matching distillation: a second model tracking G's grids).
"""

from __future__ import annotations

import torch

from ..errors import WordbrushError
from ..generators.dalle import DALLE
from ..pipeline import TextToImagePipeline
from ..text.tokenizer import PAD_ID


class DalleTeacher:
    """A frozen dalle pipeline (a built-in name or a folder) that scores a GAN's soft code grids."""

    def __init__(self, name_or_path: str, codebook: torch.Tensor, device: torch.device):
        pipe = TextToImagePipeline.from_pretrained(name_or_path, device=device)
        if not isinstance(pipe.generator, DALLE):
            raise WordbrushError(f"teacher {name_or_path!r} is a {pipe.generator.kind!r} model: the teacher must be a "
                                 f"dalle (its next-token likelihood is the term)")
        vae = pipe.vae
        if vae is None or not torch.equal(vae.quantizer.codebook.to(codebook.device, codebook.dtype), codebook):
            raise WordbrushError(f"teacher {name_or_path!r} was trained on another VAE's codes than the gan's "
                                 f"(set vae to the teacher's: its grid is what the teacher reads)")
        self.dalle: DALLE = pipe.generator.requires_grad_(False).eval()
        self.tokenizer = pipe.tokenizer

    def text(self, captions: list[str]) -> torch.Tensor:
        """Captions -> the dalle's caption ids (B, L)."""
        return self.tokenizer.encode(captions, self.dalle.cfg.text_len).ids.to(self.dalle.image_emb.weight.device)

    def loss(self, text: torch.Tensor, scores: torch.Tensor, objective: str = "likelihood") -> torch.Tensor:
        """text (B, L) from text(), scores (B, N, K) G's logits over the codes in raster order -> a mean over
        positions (nats), differentiable in the scores: "likelihood" the expected negative log-likelihood of G's
        grid given the caption; "pmi" minus its expected pointwise mutual information with the caption,
        log p(code | caption, before) - log p(code | no caption, before) (the dalle's caption-dropout model: the
        direction classifier-free guidance samples along; an empty picture scores 0 on it)."""
        q = scores.float().softmax(-1)  # (B, N, K)
        if objective == "likelihood":
            return -(q * self._log_probs(text, q, scores.dtype)).sum(-1).mean()
        both = self._log_probs(torch.cat([text, torch.full_like(text, PAD_ID)]), torch.cat([q, q]), scores.dtype)
        conditional, unconditional = both.chunk(2)
        return -(q * (conditional - unconditional)).sum(-1).mean()

    def _log_probs(self, text: torch.Tensor, q: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """The dalle's log-probabilities of every code at every position (B, N, K), reading the caption and the
        q-weighted code embeddings of the positions before."""
        dalle, L = self.dalle, text.shape[1]
        soft = (q[:, :-1] @ dalle.image_emb.weight.float()).to(dtype)  # (B, N-1, D): mixture embeddings
        x = torch.cat([dalle.embed(text), soft + dalle.image_pos(0, soft.shape[1])], 1)  # (B, L+N-1, D)
        return dalle.image_head(dalle.trunk(x)[:, L - 1:]).float().log_softmax(-1)  # (B, N, K): predicts position i
