"""Prompt rewriting: a prompt in a person's words read as the nearest of the model's own captions.

A model trained on one dataset's captions knows its concepts under the words of those captions ("hot beverage;
food and drink; beverage, cafe, caffeine"), not the words people type ("a cup of hot coffee"). The frozen,
pretrained MiniLM (text/minilm.py) knows that the two mean the same thing: its sentence vectors put them close.
A `PromptRewriter` ships with a model (the `rewriter/` folder beside the weights) and holds, for each caption of
the training data, one point in MiniLM's sentence space: the mean of the sentence vectors of that caption and of
its item's everyday phrasings (data/phrasings.py). A prompt is read by MiniLM and replaced by the caption of the
nearest point when it is close enough (cosine >= min_similarity); a prompt that is itself one of the training
captions (in any case or spacing), or near none, is drawn as typed. DALL·E 3 rewrites every prompt
before drawing it, and the OpenAI Images API returns what was drawn as `revised_prompt`; wordbrush does the
same, with a retrieval in place of a language model, so the revision can only name a concept the model was
trained on (a prompt asking for two of them is read as the nearer one): it suits a model of many fixed concepts
(emoji). A model that composes scenes from a small vocabulary (shapes) instead has a lexicon (text/lexicon.py),
which reads the prompt word by word into the model's words and keeps the scene; with both, the lexicon reads first.

    prompts -> [lexicon: the model's words] -> MiniLM sentence vectors (P, 384), unit length -> cosine with the
            caption points (K, 384) -> best point k, similarity s -> captions[k] where s >= min_similarity, else
            the prompt as read

Folder: rewriter/config.json (kind "rewriter", RewriterConfig); with caption points, rewriter/centroids.safetensors
(the (K, 384) points, float16) and rewriter/captions.json ({"captions": the K captions}); with a lexicon,
rewriter/lexicon.json.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..checkpoint import (
    build_part,
    model_header,
    part_path,
    read_json,
    read_model_config,
    save_part,
)
from ..config import check, to_dict
from ..errors import CheckpointError, WordbrushError
from ..utils.atomic import write_json
from .lexicon import Lexicon
from .tokenizer import PAD_ID, clean_prompt

REWRITER_FOLDER = "rewriter"
READ_TOKENS = 64  # MiniLM reads a prompt's first 64 word pieces (a model's own text_len is often 32)
MAX_CAPTIONS_BYTES = 64 << 20
MAX_POINTS = 100_000  # one per training caption: a retrieval over the data, not over a web-scale corpus
DEFAULT_MIN_SIMILARITY = 0.4  # everyday prompts for emoji concepts: 95% above 0.56; "asdf qwerty" 0.46


@dataclass
class RewriterConfig:
    points: int  # K: how many points (training captions) the index holds; 0: none (a lexicon only)
    width: int = 384  # the sentence vectors' size (all-MiniLM-L6-v2's)
    min_similarity: float = DEFAULT_MIN_SIMILARITY  # rewrite prompts at least this close (cosine) to a point
    lexicon: bool = False  # lexicon.json: read prompts word by word into the model's words first (text/lexicon.py)

    def __post_init__(self):
        check(isinstance(self.points, int) and self.points >= 0, "rewriter.points must be a non-negative integer")
        check(isinstance(self.lexicon, bool), "rewriter.lexicon must be true or false")
        check(self.points >= 1 or self.lexicon, "a rewriter needs caption points, a lexicon or both")
        check(self.width == 384, "rewriter.width must be 384 (all-MiniLM-L6-v2's sentence vectors)")
        check(-1 <= self.min_similarity <= 1, "rewriter.min_similarity must be in [-1, 1]")


@dataclass(frozen=True)
class Rewrite:
    prompt: str  # as typed
    drawn: str  # what the model reads: a training caption, the prompt in the model's words, or the prompt itself
    similarity: float  # cosine to the nearest point (1.0 for a prompt that is a training caption or has no points)

    @property
    def revised(self) -> bool:
        return self.drawn != self.prompt


class CaptionPoints(nn.Module):
    """The (K, 384) caption points as a buffer, so that they are saved and checked like any model part."""

    def __init__(self, cfg: RewriterConfig):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("centroids", torch.zeros(cfg.points, cfg.width, dtype=torch.float16))


class PromptRewriter:
    def __init__(self, points: CaptionPoints, captions: list[str], lexicon: Lexicon | None = None):
        if len(captions) != points.cfg.points:
            raise WordbrushError(f"the rewriter has {points.cfg.points} points but {len(captions)} captions")
        if points.cfg.lexicon != (lexicon is not None):
            raise WordbrushError(f"the rewriter's config says lexicon {str(points.cfg.lexicon).lower()}, but it was "
                                 f"given {'none' if lexicon is None else 'one'}")
        self.points, self.captions, self.lexicon = points, list(captions), lexicon
        self.keep = {clean_prompt(c) for c in captions}  # drawn as typed
        self._reader: tuple | None = None  # (MiniLM tokenizer, MiniLMReader), loaded on first use; () if absent

    @property
    def cfg(self) -> RewriterConfig:
        return self.points.cfg

    # ------------------------------------------------------------------------------------------ reading

    def _sentences(self, texts: list[str], batch: int = 256) -> torch.Tensor:
        """(len(texts), 384) MiniLM sentence vectors, unit length (loads MiniLM on first use)."""
        if not self._reader:
            self._reader = sentence_reader()
        return sentence_vectors(*self._reader, texts, batch)

    def rewrite(self, prompts: list[str], min_similarity: float | None = None) -> list[Rewrite]:
        """Each prompt with what the model should read for it (see the module docstring); min_similarity: this
        call's threshold instead of the saved one."""
        low = self.cfg.min_similarity if min_similarity is None else min_similarity
        lex = self.lexicon
        out: list[Rewrite | None] = [Rewrite(p, p, 1.0) if clean_prompt(p) in self.keep
                                     or (lex is not None and lex.reads_as_typed(p)) else None for p in prompts]
        todo = [i for i, r in enumerate(out) if r is None]
        if not todo:
            return out  # type: ignore[return-value]
        if self._reader is None:
            try:
                self._reader = sentence_reader()
            except (ImportError, WordbrushError) as e:  # the minilm extra is not installed
                what = ("words its lexicon does not know are dropped" if lex is not None and not self.cfg.points
                        else "prompts are drawn as typed")
                warnings.warn(f"{what}: the model's prompt rewriter reads prompts with MiniLM "
                              f"({str(e).splitlines()[0]})", stacklevel=3)
                self._reader = ()  # tried once: not again
        sentences = self._sentences if self._reader else None
        seen = {i: (lex.read(prompts[i], sentences) or prompts[i]) if lex is not None else prompts[i] for i in todo}
        if not self.cfg.points or sentences is None:
            for i in todo:
                out[i] = Rewrite(prompts[i], seen[i], 0.0 if self.cfg.points else 1.0)
            return out  # type: ignore[return-value]
        sims = sentences([seen[i] for i in todo]) @ self.points.centroids.float().T  # (P, K)
        best, k = sims.max(1)
        for i, s, j in zip(todo, best.tolist(), k.tolist()):
            out[i] = Rewrite(prompts[i], self.captions[j] if s >= low else seen[i], s)
        return out  # type: ignore[return-value]

    # ------------------------------------------------------------------------------------------ building

    @classmethod
    def reading_through(cls, lexicon: Lexicon, index: PromptRewriter | None = None) -> PromptRewriter:
        """A rewriter that reads prompts through `lexicon`, then through `index`'s caption points if given."""
        cfg = replace(index.cfg, lexicon=True) if index is not None else RewriterConfig(0, lexicon=True)
        points = CaptionPoints(cfg)
        if index is not None:
            points.centroids.copy_(index.points.centroids)
        return cls(points, index.captions if index is not None else [], lexicon)

    @classmethod
    def build(cls, texts_of: dict[str, list[str]], min_similarity: float = DEFAULT_MIN_SIMILARITY,
              progress: bool = False) -> PromptRewriter:
        """texts_of[caption]: every text that means what the caption does (the caption itself, its item's other
        captions and everyday phrasings); one point per caption, the mean of those texts' sentence vectors."""
        if not texts_of or any(not texts for texts in texts_of.values()):
            raise WordbrushError("a rewriter needs at least one caption, each with at least one text")
        texts = [t for group in texts_of.values() for t in group]
        owner = torch.tensor([k for k, group in enumerate(texts_of.values()) for _ in group])
        rw = cls(CaptionPoints(RewriterConfig(len(texts_of), min_similarity=min_similarity)), list(texts_of))
        vectors = []
        step = 2048
        for s in tqdm(range(0, len(texts), step), desc="reading captions with MiniLM", unit="chunk",
                      disable=not progress):
            vectors.append(rw._sentences(texts[s:s + step]))
        sums = torch.zeros(len(texts_of), 384).index_add_(0, owner, torch.cat(vectors))
        rw.points.centroids.copy_(F.normalize(sums, dim=-1).half())
        return rw

    @classmethod
    def from_dataset(cls, path: str | Path, split: str = "train", min_similarity: float = DEFAULT_MIN_SIMILARITY,
                     progress: bool = False) -> PromptRewriter:
        """The rewriter of a model trained on the dataset at `path` (a folder or a manifest; see data/folder.py):
        one point per item, named by its first caption and read through all its captions and, for a manifest
        with a `label` column, its everyday phrasings (items with the same first caption are one point). Per
        item, not per concept: an emoji's skin-tone variants and its other style each keep their own caption.
        A text shared by several items (the same phrasing of an emoji in two styles) belongs to the first of
        them, so a prompt that names no style is read as the first-listed style, and one that names a style
        ("... in twitter style") as that one."""
        from ..data.folder import open_dataset

        ds = open_dataset(path, split=split, progress=progress, everyday=True)
        if not getattr(ds, "items", None):
            raise WordbrushError(f"{path}: no items to build a rewriter from (it needs a folder or a manifest)")
        texts: dict[str, list[str]] = {}  # first caption -> the texts that mean it
        seen: set[str] = set()
        for _, caps in ds.items:
            group = texts.setdefault(caps[0], [])
            group += [c for c in caps if c not in seen and c != caps[0]]  # a text means the first caption it came
            seen.update(caps)  # with: "a dog face" names the default style, not also the twitter one
            if caps[0] not in group:
                group.insert(0, caps[0])
        if len(texts) > MAX_POINTS:
            raise WordbrushError(f"{path}: {len(texts):,} distinct captions; a rewriter holds at most {MAX_POINTS:,}")
        return cls.build(texts, min_similarity, progress)

    # ------------------------------------------------------------------------------------------ save / load

    def save_pretrained(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / "config.json", model_header("rewriter", to_dict(self.cfg)))
        if self.cfg.points:
            save_part(self.points, folder / "centroids.safetensors")
            write_json(folder / "captions.json", {"captions": self.captions})
        if self.lexicon is not None:
            self.lexicon.save(folder)
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> PromptRewriter:
        """A saved rewriter folder, checked like every model folder (checkpoint.py); every fault is one line."""
        folder = Path(folder)
        cfg = read_model_config(folder, "rewriter", RewriterConfig, "prompt rewriter")
        lexicon = Lexicon.load(folder) if cfg.lexicon else None
        if not cfg.points:
            return cls(CaptionPoints(cfg), [], lexicon)
        points = build_part(lambda: CaptionPoints(cfg), part_path(folder, "centroids.safetensors", "rewriter"),
                            "rewriter")
        path = part_path(folder, "captions.json", "rewriter")
        data = read_json(path, "rewriter", MAX_CAPTIONS_BYTES)
        captions = data.get("captions")
        if set(data) != {"captions"} or not isinstance(captions, list) or not all(isinstance(c, str) for c in captions):
            raise CheckpointError(f"{path}: must hold exactly 'captions', a list of texts")
        if len(captions) != cfg.points:
            raise CheckpointError(f"{path}: {len(captions)} captions for the {cfg.points} points of "
                                  f"{folder / 'config.json'}")
        return cls(points, captions, lexicon)


def sentence_vectors(tok, reader, texts: list[str], batch: int = 256) -> torch.Tensor:
    """(len(texts), 384) unit sentence vectors of texts through sentence_reader()'s tokenizer and reader."""
    out = []
    for s in range(0, len(texts), batch):
        ids = tok.encode(texts[s:s + batch], READ_TOKENS).ids  # (B, READ_TOKENS)
        width = max(1, int((ids != PAD_ID).sum(1).max()))  # BERT masks the padding: past the longest row it is
        out.append(reader(ids[:, :width])[1])  # only cost (a short prompt: 5x less)
    return torch.cat(out)


def sentence_reader():
    """MiniLM's tokenizer and the frozen reader of its sentence vectors (needs the `minilm` extra)."""
    from .minilm import MiniLMReader, load_tokenizer

    return load_tokenizer(), MiniLMReader(memo=10_000)
