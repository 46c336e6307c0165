"""The `dalle` generator: one decoder-only transformer over [text tokens ; image tokens] (DALL·E, 2021).

Training: the sequence is the padded caption (text_len ids) followed by the image's code ids (grid*grid, row
by row). Causal self-attention lets every image token see the whole caption and the image tokens before it.
The loss is next-token cross-entropy, weighted text_loss_weight : 1 - text_loss_weight between the caption
tokens and the image tokens. Captions are dropped (all [PAD]) with some probability by the training loop,
which teaches the unconditional model that classifier-free guidance needs.

Sampling writes the image tokens one by one with a preallocated KV cache; logits come from the image head
only, so temperature, top-k and top-p act on the image vocabulary alone. With guidance, the conditional and
the unconditional rows run in one batch and the logits are mixed: u + s * (c - u). The prompt tensor is
never modified. Randomness is Gumbel noise drawn up front from one torch.Generator per image, so an image
depends on its own seed only, and the cached and uncached paths draw exactly the same tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import check
from ..nn.compiled import bound, pad_rows
from ..nn.packed import small_linear
from ..nn.transformer import Block, KVCache, grid_positions, init_weights, recording
from ..text.minilm import MiniLMText
from ..text.tokenizer import PAD_ID
from .base import GeneratorLoss, TokenGenerator, check_token_config
from .options import SampleOptions
from .sampling import gumbel, pick, pick_quantile


@dataclass
class DalleConfig:
    """The `dalle` generator: a decoder-only transformer over [text tokens ; image tokens]."""

    text_vocab: int = 1000
    text_len: int = 32
    image_vocab: int = 512  # = the VAE's num_codes
    image_grid: int = 8  # image tokens per side (= the VAE's grid_size)
    dim: int = 256
    depth: int = 6
    heads: int = 8
    mlp_ratio: int = 4
    dropout: float = 0.0
    text_loss_weight: float = 0.125  # DALL·E: 1/8 text, 7/8 image (0 with the minilm encoder: no text head)
    text_encoder: str = "scratch"  # "scratch": embeddings learned with the model; "minilm": pretrained states
    text_encoder_train_layers: int = 0  # minilm: top layers fine-tuned (0 = frozen)

    def __post_init__(self) -> None:
        check_token_config(self)
        check(0.0 <= self.text_loss_weight < 1.0, "text_loss_weight must be in [0, 1)")
        check(self.text_encoder == "scratch" or self.text_loss_weight == 0,
              "text_loss_weight must be 0 with the minilm text encoder (the caption is its input, not a target)")

    @property
    def image_len(self) -> int:
        return self.image_grid**2


class DALLE(TokenGenerator):
    kind = "dalle"  # the registry's name and a saved pipeline's "generator"
    config_class = DalleConfig

    def __init__(self, cfg: DalleConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        if cfg.text_encoder == "scratch":
            self.text_emb = nn.Embedding(cfg.text_vocab, d)
        self.text_pos = nn.Parameter(torch.randn(cfg.text_len, d) * 0.02)
        self.image_emb = nn.Embedding(cfg.image_vocab, d)
        self.row_pos = nn.Parameter(torch.randn(cfg.image_grid, d) * 0.02)  # 2-D position of an image token
        self.col_pos = nn.Parameter(torch.randn(cfg.image_grid, d) * 0.02)
        self.blocks = nn.ModuleList(Block(d, cfg.heads, cfg.mlp_ratio, cfg.dropout) for _ in range(cfg.depth))
        self.ln_f = nn.LayerNorm(d)
        if cfg.text_encoder == "scratch":
            self.text_head = nn.Linear(d, cfg.text_vocab, bias=False)
        self.image_head = nn.Linear(d, cfg.image_vocab, bias=False)
        self.apply(init_weights)
        if cfg.text_encoder == "minilm":  # after init_weights: its pretrained weights stay as they are
            self.text_emb = MiniLMText(d, cfg.text_encoder_train_layers)

    # ------------------------------------------------------------------------------------------- embedding

    def image_pos(self, start: int, n: int) -> torch.Tensor:
        """Positions of image tokens start..start+n-1: row + column embeddings, (n, D)."""
        return grid_positions(self.row_pos, self.col_pos, start, n)

    def embed(self, text: torch.Tensor | None, image: torch.Tensor | None = None, image_start: int = 0) -> torch.Tensor:
        """text (B, L) ids and/or image (B, n) ids starting at grid index image_start -> (B, T, D)."""
        parts = []
        if text is not None:
            parts.append(self.text_emb(text) + self.text_pos[: text.shape[1]])
        if image is not None and image.shape[1] > 0:
            parts.append(self.image_emb(image) + self.image_pos(image_start, image.shape[1]))
        return torch.cat(parts, 1) if len(parts) > 1 else parts[0]

    def trunk(self, x: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        for i, blk in enumerate(self.blocks):
            x = blk(x, cache, i)
        if cache is not None:
            cache.length += x.shape[1]
        return self.ln_f(x)

    # -------------------------------------------------------------------------------------------- training

    def forward(self, text: torch.Tensor, image: torch.Tensor) -> GeneratorLoss:
        """text (B, L), image (B, N) code ids -> weighted next-token loss."""
        L = text.shape[1]
        h = self.trunk(self.embed(text, image[:, :-1]))  # (B, L + N - 1, D)
        image_logits = self.image_head(h[:, L - 1:])  # (B, N, V_img): position L-1+i predicts image[i]
        image_loss = F.cross_entropy(image_logits.float().flatten(0, 1), image.flatten())
        w = self.cfg.text_loss_weight
        if w > 0 and L > 1:
            text_logits = self.text_head(h[:, : L - 1])  # (B, L-1, V_txt) predicts text[1:]
            targets = text[:, 1:]
            if (targets != PAD_ID).any():
                text_loss = F.cross_entropy(text_logits.float().flatten(0, 1), targets.flatten(), ignore_index=PAD_ID)
            else:
                text_loss = text_logits.sum() * 0.0
        else:
            text_loss = image_loss.new_zeros(())
        return GeneratorLoss(loss=w * text_loss + (1 - w) * image_loss, text=text_loss, image=image_loss)

    @torch.no_grad()
    def log_likelihood(self, text: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """text (B, L), image (B, N) code ids -> log p(image | text) in nats, (B,): exact, one forward pass.
        The pipeline ranks candidate images by it."""
        L = text.shape[1]
        h = self.trunk(self.embed(text, image[:, :-1]))  # (B, L + N - 1, D)
        logp = self.image_head(h[:, L - 1:]).float().log_softmax(-1)  # (B, N, V_img)
        return logp.gather(-1, image[..., None])[..., 0].sum(1)

    @torch.no_grad()
    def text_attention(self, text: torch.Tensor, image: torch.Tensor, layers: list[int] | None = None) -> torch.Tensor:
        """How much the query that wrote each image token attended to each text position: text (B, L), image
        (B, N) -> (B, N, L), averaged over heads and the given layers (default all)."""
        L, N = text.shape[1], image.shape[1]
        which = range(len(self.blocks)) if layers is None else layers
        with recording([self.blocks[i].attn for i in which]) as chosen:
            self.trunk(self.embed(text, image[:, :-1]))
            # position L-1+i predicts image token i; its weights over the L text positions
            return torch.stack([a.last_weights[:, :, L - 1 : L - 1 + N, :L] for a in chosen]).mean((0, 2))

    # -------------------------------------------------------------------------------------------- sampling

    @torch.no_grad()
    def sample(self, text: torch.Tensor, rngs: list[torch.Generator], options: SampleOptions | None = None,
               prime: torch.Tensor | None = None, use_cache: bool = True,
               quantiles: torch.Tensor | None = None) -> torch.Tensor:
        """text (B, L) ids -> image code ids (B, N), one token per step (the contract: generators/base.py).

        rngs: one random stream per row (its own seed); prime: (B, n) first image tokens to keep (image priming).
        quantiles: (B, N) uniforms in [0, 1), one per position, drawn by sampling.pick_quantile instead of the
        rows' Gumbel noise: the image then is a fixed function of the caption and these (distillation's data).
        """
        cfg = self.cfg
        N = cfg.image_len
        options = self._start(text, rngs, options, prime, N)
        B, n0 = text.shape[0], 0 if prime is None else prime.shape[1]
        device = text.device
        # Gumbel noise for every (row, step, code), from each row's own generator: sampling = argmax(logits + g)
        if quantiles is None:
            noise = gumbel(rngs, (N, cfg.image_vocab), device)  # (B, N, V)
        else:
            check(quantiles.shape == (B, N), f"quantiles must be (rows, {N}), got {tuple(quantiles.shape)}")
            noise = quantiles.to(device, torch.float32)  # (B, N)
        wanted, B = B, self.compiled_rows(B) if use_cache else B
        if B > wanted:  # rows repeating the last one, dropped at the end (rows never mix)
            text, noise = pad_rows(text, B), pad_rows(noise, B)
            prime = None if prime is None else pad_rows(prime, B)
        guided = options.guidance_scale != 1.0
        rows = torch.cat([text, torch.full_like(text, PAD_ID)]) if guided else text  # (R, L); input untouched
        tokens = torch.empty(B, N, dtype=torch.long, device=device)
        if prime is not None:
            tokens[:, :n0] = prime
        primed = tokens[:, :n0].repeat(2, 1) if guided else tokens[:, :n0]

        cache = None
        if use_cache:
            dh = cfg.dim // cfg.heads
            compute = (torch.get_autocast_dtype(device.type) if torch.is_autocast_enabled(device.type)
                       else self.text_pos.dtype)
            T = cfg.text_len + N
            stored = KVCache.storage_dtype(device, compute, compiled=self._compiled is not None)
            prefix = self._prefix_steps(device)
            cache = KVCache(cfg.depth, rows.shape[0], cfg.heads, T, dh, device, stored, prefix_only=prefix)
            # compiled with the scratch text encoder; a pretrained one (MiniLM's memo of captions) stays eager
            prefill = self.fast("prefill", self.prefill, ahead_of_time=True) if cfg.text_encoder == "scratch" \
                else self.prefill
            logits = self._prefill_distinct(prefill, rows, primed, cache)  # (R, V); the cache holds L + n0 positions
            positions = torch.arange(T, device=device)
            step = self.fast("decode_step", self.decode_step, ahead_of_time=True,
                             dynamic=self._prefix_dims if prefix else None)
            run = None
        for i in range(n0, N):
            if not use_cache:
                so_far = tokens[:, :i].repeat(2, 1) if guided else tokens[:, :i]
                logits = self.image_head(self.trunk(self.embed(rows, so_far))[:, -1]).float()  # (R, V)
            if guided:
                c, u = logits.chunk(2)
                logits = u + options.guidance_scale * (c - u)
            tokens[:, i] = (pick(logits, noise[:, i], options) if quantiles is None
                            else pick_quantile(logits, noise[:, i], options))
            if use_cache and i + 1 < N:
                nxt = tokens[:, i].repeat(2) if guided else tokens[:, i]  # (R,)
                at = cfg.text_len + i  # where token i goes in the cache
                pos = positions[at : at + 1]  # (1,)
                args = ((nxt, positions[i : i + 1], pos, *cache.prefix(at + 1)) if prefix  # the filled prefix
                        else (nxt, positions[i : i + 1], pos, cache.k, cache.v, positions <= pos))
                run = run or bound(step, *args)  # every step of this loop has the first one's layout
                logits = run(*args)
        return tokens[:wanted]

    def _prefill_distinct(self, prefill, rows: torch.Tensor, primed: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """prefill(rows, primed, cache) run once per distinct row: the images of one prompt, and guidance's
        unconditional rows, share one prompt, so its keys and values are computed once and copied to each of its
        rows (R1, batch 16 as 4 prompts x 4 images: the prefill 17 -> 6 ms in bfloat16). Only for the compiled
        steps (eager sampling keeps one prefill per row, as recorded in tests/data/dalle_tokens.json; a row's
        result does not depend on the others, but a smaller batch may round differently in some CPUs' kernels)."""
        if self._compiled is None:
            return prefill(rows, primed, cache.k, cache.v)
        seq = torch.cat([rows, primed], 1)  # (R, L + n0)
        distinct, inverse = torch.unique(seq, dim=0, return_inverse=True)  # (U, L + n0), (R,)
        if len(distinct) == len(seq):
            return prefill(rows, primed, cache.k, cache.v)
        U, L = self.compiled_rows(len(distinct)), rows.shape[1]
        distinct = pad_rows(distinct, U)
        few = cache.with_rows(U)
        logits = prefill(distinct[:, :L], distinct[:, L:], few.k, few.v)  # (U, V)
        cache.copy_rows(few, inverse, seq.shape[1])  # the positions prefilled; the rest of every row as it was
        return logits.index_select(0, inverse)  # (R, V)

    def prefill(self, rows: torch.Tensor, primed: torch.Tensor, ks: list[torch.Tensor],
                vs: list[torch.Tensor]) -> torch.Tensor:
        """The prompt (and primed image tokens) through the trunk at once: rows (R, L) text ids, primed (R, n0)
        image ids -> next-token logits (R, V_img) in float32, with every layer's keys/values of those L + n0
        positions written into ks[i], vs[i] (R, h, T, d)."""
        cache = KVCache.over(ks, vs, prefix_only=self._prefix_steps(rows.device))
        h = self.trunk(self.embed(rows, primed), cache)[:, -1]  # (R, D)
        return self.image_head(h).float()

    def _prefix_steps(self, device: torch.device) -> bool:
        """Whether sampling's decoding steps attend over the filled prefix alone (KVCache prefix_only): the CPU's
        compiled step, one ahead-of-time package with the prefix length as a variable (the average prefix is two
        thirds of the cache, and prefix_attention's scores vectorise over the keys; R1, batch 16, bfloat16: a draw
        130.4 -> 125.0 ms, float32 unchanged: docs/benchmarks.md). Eager steps and the GPU's keep the whole cache
        and a mask (eager tokens are recorded per CPU kind in tests/data/dalle_tokens.json)."""
        return self._compiled is not None and device.type == "cpu"

    def _prefix_dims(self, token, t, pos, ks: list[torch.Tensor], vs: list[torch.Tensor]) -> tuple:
        """decode_step's dynamic_shapes for torch.export over a prefix_only cache's views: their length n,
        2 <= n < the cache's (the last token is never fed back; a view of the whole cache is laid out otherwise)."""
        n = torch.export.Dim("filled", min=2, max=self.cfg.text_len + self.cfg.image_len - 1)
        return None, None, None, [{3: n}] * len(ks), [{2: n}] * len(vs)

    def decode_step(self, token: torch.Tensor, t: torch.Tensor, pos: torch.Tensor, ks: list[torch.Tensor],
                    vs: list[torch.Tensor], keep: torch.Tensor | None = None) -> torch.Tensor:
        """One sampling step (what torch.compile sees after compile_sampling()): image token (R,) at grid index
        t (1,), written at sequence position pos (1,) of every layer's cache ks[i], vs[i] -> next-token logits
        (R, V_img) in float32. With keep (T,) bool: over whole plain caches (R, h, T, d), attending where it is
        set (fixed shapes); with keep None: over views of a prefix_only cache's filled prefix (KVCache.prefix),
        pos its last position, their length a variable of the one compiled package (_prefix_dims)."""
        g = self.cfg.image_grid
        x = self.image_emb(token) + (self.row_pos.index_select(0, t // g) + self.col_pos.index_select(0, t % g))
        for blk, k, v in zip(self.blocks, ks, vs):
            x = blk.decode(x, k, v, pos, keep)  # (R, D)
        return small_linear(self.ln_f(x), self.image_head).float()
