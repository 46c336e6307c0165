"""The `maskgit` generator: a bidirectional transformer over image tokens with cross-attention to text states,
trained to fill in masked tokens and sampled by parallel decoding (MaskGIT, Chang et al. 2022).

Training: a caption goes through the generator's own text encoder (text/encoder.py) to states (B, L, D). For each
image, a share r = cos(pi/2 * u), u ~ U(0, 1), of its N tokens (at least one) is replaced by [MASK]; the model sees
the rest and the text and is scored by cross-entropy on the masked positions only. Caption dropout (all-[PAD]
captions, done by the training loop) gives the unconditional model for classifier-free guidance.

Sampling in K steps (options.steps): start with every token masked (or a primed prefix known). At each step,
predict every masked token at once, draw one per position (temperature, top-k / top-p, Gumbel-max), score each
draw by its log-probability plus Gumbel noise scaled by a choice temperature that falls linearly to 0, and keep
the most confident ones so that cos(pi/2 * (t+1)/K) of the image stays masked. Known tokens stay fixed. With
guidance, the conditional and unconditional rows run in one batch: u + s * (c - u). All randomness comes from one
torch.Generator per image, so an image depends on its own seed only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import check
from ..nn.compiled import pad_rows
from ..nn.transformer import Block, grid_positions, init_weights, recording
from ..text.encoder import TextEncoder
from ..text.minilm import MiniLMText
from ..text.tokenizer import PAD_ID
from .base import GeneratorLoss, TokenGenerator, check_token_config
from .options import SampleOptions
from .sampling import filter_logits, gumbel


@dataclass
class MaskGITConfig:
    """The `maskgit` generator: a bidirectional transformer over image tokens that cross-attends to text states
    from a small text encoder of its own, trained to fill in masked tokens and sampled in a few parallel steps."""

    text_vocab: int = 1000
    text_len: int = 32
    image_vocab: int = 512  # = the VAE's num_codes; id image_vocab is the [MASK] token
    image_grid: int = 8
    dim: int = 256
    depth: int = 6  # image blocks (self-attention + cross-attention + MLP)
    heads: int = 8
    mlp_ratio: int = 4
    dropout: float = 0.0
    text_depth: int = 2  # blocks of the scratch text encoder (bidirectional self-attention)
    text_encoder: str = "scratch"  # "scratch": the small encoder above; "minilm": pretrained states
    text_encoder_train_layers: int = 0  # minilm: top layers fine-tuned (0 = frozen)

    def __post_init__(self) -> None:
        check_token_config(self)
        check(self.text_depth >= 1, "text_depth must be >= 1")

    @property
    def image_len(self) -> int:
        return self.image_grid**2


class MaskGIT(TokenGenerator):
    kind = "maskgit"  # the registry's name and a saved pipeline's "generator"
    config_class = MaskGITConfig

    def __init__(self, cfg: MaskGITConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        if cfg.text_encoder == "scratch":
            self.text_encoder = TextEncoder(cfg.text_vocab, cfg.text_len, d, cfg.text_depth, cfg.heads, cfg.mlp_ratio,
                                            cfg.dropout)
        self.image_emb = nn.Embedding(cfg.image_vocab + 1, d)  # the last id is [MASK]
        self.row_pos = nn.Parameter(torch.randn(cfg.image_grid, d) * 0.02)
        self.col_pos = nn.Parameter(torch.randn(cfg.image_grid, d) * 0.02)
        self.blocks = nn.ModuleList(Block(d, cfg.heads, cfg.mlp_ratio, cfg.dropout, causal=False, cross=True)
                                    for _ in range(cfg.depth))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, cfg.image_vocab, bias=False)
        self.apply(init_weights)
        if cfg.text_encoder == "minilm":  # after init_weights: its pretrained weights stay as they are
            self.text_encoder = MiniLMText(d, cfg.text_encoder_train_layers)

    @property
    def mask_id(self) -> int:
        return self.cfg.image_vocab

    def logits(self, text_states: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """text states (B, L, D) and image ids (B, N), [MASK] where unknown -> logits (B, N, V)."""
        x = self.image_emb(tokens) + grid_positions(self.row_pos, self.col_pos, 0, self.cfg.image_len)  # (B, N, D)
        for blk in self.blocks:
            x = blk(x, context=text_states)
        return self.head(self.ln_f(x))

    # -------------------------------------------------------------------------------------------- training

    def forward(self, text: torch.Tensor, image: torch.Tensor) -> GeneratorLoss:
        """text (B, L), image (B, N) code ids -> cross-entropy on a cosine-scheduled random share of masked tokens."""
        B, N = image.shape
        ratio = torch.cos(math.pi / 2 * torch.rand(B, device=image.device))  # (B,) share to mask
        n_mask = (ratio * N).ceil().clamp(1, N)
        rank = torch.rand(B, N, device=image.device).argsort(1).argsort(1)  # a random permutation per row
        masked = rank < n_mask[:, None]  # (B, N)
        logits = self.logits(self.text_encoder(text), image.masked_fill(masked, self.mask_id))
        loss = F.cross_entropy(logits[masked].float(), image[masked])
        return GeneratorLoss(loss=loss, text=loss.new_zeros(()), image=loss)

    @torch.no_grad()
    def log_likelihood(self, text: torch.Tensor, image: torch.Tensor, passes: int = 4) -> torch.Tensor:
        """text (B, L), image (B, N) code ids -> a pseudo log-likelihood in nats, (B,): in each of `passes`
        forward passes every passes-th token (a different offset each time) is masked and scored given the
        others. Not log p(image | text), which a masked model does not define, but it ranks candidates alike."""
        context = self.text_encoder(text)
        group = torch.arange(image.shape[1], device=image.device) % passes  # (N,)
        total = torch.zeros(image.shape[0], device=image.device)
        for k in range(passes):
            hidden = group == k
            logp = self.logits(context, image.masked_fill(hidden, self.mask_id)).float().log_softmax(-1)
            total += logp.gather(-1, image[..., None])[..., 0][:, hidden].sum(1)
        return total

    @torch.no_grad()
    def text_attention(self, text: torch.Tensor, image: torch.Tensor, layers: list[int] | None = None) -> torch.Tensor:
        """How much each image token's cross-attention looks at each text position, with the whole image known:
        text (B, L), image (B, N) -> (B, N, L), averaged over heads and the given layers (default all)."""
        which = range(len(self.blocks)) if layers is None else layers
        with recording([self.blocks[i].cross for i in which]) as chosen:
            self.logits(self.text_encoder(text), image)
            return torch.stack([a.last_weights for a in chosen]).mean((0, 2))

    # -------------------------------------------------------------------------------------------- sampling

    @torch.no_grad()
    def sample(self, text: torch.Tensor, rngs: list[torch.Generator], options: SampleOptions | None = None,
               prime: torch.Tensor | None = None, use_cache: bool = True) -> torch.Tensor:
        """text (B, L) ids -> image code ids (B, N) in options.steps parallel steps (the contract: base.py).

        rngs: one random stream per row; prime: (B, n) first image tokens to keep. use_cache changes nothing
        here: the text states are computed once, and nothing else repeats across steps.
        """
        cfg = self.cfg
        N, V = cfg.image_len, cfg.image_vocab
        options = self._start(text, rngs, options, prime, N)
        B, K, n0 = text.shape[0], options.steps, 0 if prime is None else prime.shape[1]
        device = text.device
        guided = options.guidance_scale != 1.0
        rows = torch.cat([text, torch.full_like(text, PAD_ID)]) if guided else text  # (R, L); input untouched
        R = rows.shape[0]
        padded = self.compiled_rows(R)  # R, or more after compile_sampling(): the trunk runs padded, rows never mix
        context = pad_rows(self.text_encoder(rows), padded)  # (R, L, D), once
        tokens = torch.full((B, N), self.mask_id, dtype=torch.long, device=device)
        if prime is not None:
            tokens[:, :n0] = prime
        known = tokens != self.mask_id  # (B, N); every row has the same number known
        # the same shapes every step: after compile_sampling(), on the CPU compiled ahead of time (R1, batch 16,
        # 12 steps: 1.16 s a batch through torch.compile, 0.98 s this way, the same tokens)
        trunk = self.fast("logits", self.logits, ahead_of_time=True)
        for t in range(K):
            unknown = N - int(known[0].sum())
            if unknown == 0:
                break
            x = pad_rows(tokens.repeat(2, 1) if guided else tokens, padded)  # (padded, N)
            logits = trunk(context, x)[:R].float()  # (R, N, V)
            if guided:
                c, u = logits.chunk(2)
                logits = u + options.guidance_scale * (c - u)
            logits = filter_logits(logits, options)
            drawn = (logits + gumbel(rngs, (N, V), device)).argmax(-1)  # (B, N)
            confidence = logits.log_softmax(-1).gather(-1, drawn[..., None])[..., 0]  # (B, N) log p(drawn)
            confidence = confidence + options.choice_temperature * (1 - (t + 1) / K) * gumbel(rngs, (N,), device)
            confidence = confidence.masked_fill(known, float("inf"))
            drawn = torch.where(known, tokens, drawn)
            # how many stay masked after this step: the cosine schedule, but at least one fewer than now
            still = 0 if t == K - 1 else min(int(N * math.cos(math.pi / 2 * (t + 1) / K)), unknown - 1)
            keep = torch.zeros_like(known).scatter_(1, confidence.argsort(1, descending=True)[:, : N - still], True)
            tokens = torch.where(keep, drawn, torch.full_like(drawn, self.mask_id))
            known = keep
        return tokens
