"""Reading a prompt word by word into a model's own words: "please draw a crimson disc beneath a navy box" ->
"drawing a red circle below a blue square".

A model trained on a small, fixed caption vocabulary (the shapes captions use ~70 words) cannot read a word it
never saw: the scratch BPE splits "crimson" into pieces that mean nothing to it. A person, though, writes the
words they know. A `Lexicon` holds, for every word or short phrase that some knowledge source ties to one of
the model's words, that word: colour names by their colour (the XKCD colour survey's names and CSS's, each
mapped to the nearest of the model's colour words by hue), WordNet's synonyms and kinds of the model's words and,
where those do not decide, definitions read by MiniLM (text/lexicon_build.py builds it; reading needs none of them).
It also holds the model's connecting phrases (the runs of words its captions put between what they name: "and",
"to the left of", "a drawing of").

    prompt -> words -> at each place, the longest phrase (3, 2, 1 words) the table knows -> its word;
              a word the model knows -> itself;
              a run of other words -> with MiniLM: of the SHORTLIST phrases nearest to the run, the one (or none)
                                      that keeps the whole prompt nearest to what was typed ("as well as" -> "and");
                                      without it: dropped (the model reads such words only as noise)

A prompt whose words the model all knows is drawn as typed. The table and the phrases hold only the model's
words, so reading never invents a concept the model was not trained on; PromptRewriter's note says what was drawn.

File: rewriter/lexicon.json, {"known": [the model's words], "table": {phrase: its words}, "phrases": [...]}.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..checkpoint import part_path, read_json
from ..errors import CheckpointError
from ..utils.atomic import write_json
from .tokenizer import EOW, TextTokenizer, clean_prompt

FILE = "lexicon.json"
MAX_BYTES = 16 << 20
MAX_ENTRIES = 500_000
MAX_PHRASE_WORDS = 3  # the longest phrase the table maps ("a pair of")
MAX_FILL_WORDS = 4  # the longest of the model's phrases that a run of unknown words is read as ("to the left of")
MIN_PHRASE_SIMILARITY = 0.5  # MiniLM cosine from which a run of unknown words may be read as one of the phrases
SHORTLIST = 5  # a run's nearest phrases (by themselves) among which the prompt as a whole then chooses, or none
WORD = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")  # a word of a prompt: "left-hand" is one, "don't" is one


def words_of(text: str) -> list[str]:
    return WORD.findall(clean_prompt(text))


def known_words(tokenizer: TextTokenizer, captions: Iterable[str]) -> set[str]:
    """The words of a model's training captions that its scratch BPE tokenizer reads as one token."""
    vocab = tokenizer.tok.get_vocab()
    return {w for c in captions for w in words_of(c) if w + EOW in vocab}


def _join(parts: list) -> str:
    """read()'s parts as a prompt: the model's words, runs of unknown words left out, "together with with" as
    "together with"."""
    words = [w for p in parts if isinstance(p, str) for w in p.split()]
    return " ".join(w for k, w in enumerate(words) if k == 0 or w != words[k - 1])


@dataclass
class Lexicon:
    known: frozenset[str]  # the model's words: kept as they are
    table: dict[str, str] = field(default_factory=dict)  # a phrase of 1-3 words the model does not know -> its words
    phrases: list[str] = field(default_factory=list)  # the model's connecting phrases ("to the left of", "and")

    def __post_init__(self):
        for phrase, word in self.table.items():
            if not 1 <= len(phrase.split()) <= MAX_PHRASE_WORDS or not all(w in self.known for w in word.split()):
                raise CheckpointError(f"lexicon: the entry {phrase!r} -> {word!r} must map a phrase of 1 to "
                                      f"{MAX_PHRASE_WORDS} words to words the model knows")
        for phrase in self.phrases:
            if not 1 <= len(phrase.split()) <= MAX_FILL_WORDS or not all(w in self.known for w in phrase.split()):
                raise CheckpointError(f"lexicon: the phrase {phrase!r} must be 1 to {MAX_FILL_WORDS} words the "
                                      "model knows")
        self._phrase_vectors: torch.Tensor | None = None  # (F, 384), read by MiniLM on first use

    def read(self, prompt: str, sentences: Callable[[list[str]], torch.Tensor] | None = None) -> str:
        """The prompt in the model's words (see the module docstring): the same words, when it knows them all.
        sentences(texts) -> unit sentence vectors (MiniLM; None: drop every run of words the table does not know)."""
        parts: list[str | tuple[str, ...]] = []  # the model's words, and runs of words neither it nor the table knows
        words, i = words_of(prompt), 0
        while i < len(words):
            for n in range(min(MAX_PHRASE_WORDS, len(words) - i), 0, -1):
                phrase = " ".join(words[i:i + n])
                if phrase in self.table:
                    parts.append(self.table[phrase])
                    i += n
                    break
            else:
                if words[i] in self.known:
                    parts.append(words[i])
                elif parts and isinstance(parts[-1], tuple):
                    parts[-1] += (words[i],)
                else:
                    parts.append((words[i],))
                i += 1
        runs = [k for k, p in enumerate(parts) if isinstance(p, tuple)]
        if runs and sentences is not None and self.phrases:
            if self._phrase_vectors is None:
                self._phrase_vectors = sentences(self.phrases)
            sims, idx = (sentences([" ".join(parts[k]) for k in runs]) @ self._phrase_vectors.T).topk(
                min(SHORTLIST, len(self.phrases)), dim=1)  # (R, S): each run's nearest phrases
            target = sentences([prompt])[0]  # (384,)
            for k, row_sims, row_idx in zip(runs, sims.tolist(), idx.tolist()):
                options = [""] + [self.phrases[j] for s, j in zip(row_sims, row_idx) if s >= MIN_PHRASE_SIMILARITY]
                texts = [_join(parts[:k] + [o] + parts[k + 1:]) for o in options]
                parts[k] = options[int((sentences(texts) @ target).argmax())] if len(options) > 1 else ""
        return _join(parts)

    def reads_as_typed(self, prompt: str) -> bool:
        """Does the model know every word of the prompt (so that read() changes nothing but punctuation)?"""
        return all(w in self.known for w in words_of(prompt))

    # ------------------------------------------------------------------------------------------ save / load

    def save(self, folder: str | Path) -> None:
        write_json(Path(folder) / FILE, {"known": sorted(self.known), "table": dict(sorted(self.table.items())),
                                         "phrases": sorted(self.phrases)})

    @classmethod
    def load(cls, folder: str | Path) -> Lexicon:
        path = part_path(folder, FILE, "rewriter")
        data = read_json(path, "rewriter", MAX_BYTES)
        known, table, phrases = data.get("known"), data.get("table"), data.get("phrases")
        if set(data) != {"known", "table", "phrases"} or not isinstance(known, list) or not isinstance(table, dict) \
                or not isinstance(phrases, list) or not all(isinstance(w, str) for w in known + phrases) \
                or not all(isinstance(k, str) and isinstance(v, str) for k, v in table.items()):
            raise CheckpointError(f"{path}: must hold exactly 'known' (a list of words), 'table' (phrases to "
                                  "words) and 'phrases' (a list of the model's phrases)")
        if len(known) + len(table) + len(phrases) > MAX_ENTRIES:
            raise CheckpointError(f"{path}: more than {MAX_ENTRIES:,} words; not read")
        try:
            return cls(frozenset(known), table, phrases)
        except CheckpointError as e:
            raise CheckpointError(f"{path}: {e}") from None
