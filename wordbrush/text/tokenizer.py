"""The `scratch` text tokenizer: BPE trained on the captions with Hugging Face `tokenizers`.

Prompts are cleaned first (Unicode NFKC, control characters dropped, whitespace collapsed, lower case), then
split into BPE pieces. Every prompt becomes exactly `length` ids: shorter ones are padded with [PAD] (id 0),
longer ones truncated, and the caller is told (see `Encoded.truncated`). Words made of pieces the tokenizer
never saw become [UNK] (id 1) and are reported in `Encoded.unknown_words`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from ..errors import CheckpointError

PAD, UNK = "[PAD]", "[UNK]"
PAD_ID, UNK_ID = 0, 1
EOW = "</w>"  # marks a word's last piece, so decoding restores the spaces
FILE = "tokenizer.json"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def clean_prompt(text: str) -> str:
    """NFKC, control characters removed, whitespace collapsed, lower case."""
    text = unicodedata.normalize("NFKC", text)
    text = _CONTROL.sub(" ", text)
    return " ".join(text.split()).lower()


@dataclass
class Encoded:
    ids: torch.Tensor  # (B, length) int64
    truncated: list[bool]  # per prompt: did it have more than `length` tokens?
    unknown_words: list[list[str]]  # per prompt: words that became [UNK]


class TextTokenizer:
    def __init__(self, tokenizer: Tokenizer):
        self.tok = tokenizer
        if tokenizer.token_to_id(PAD) != PAD_ID or tokenizer.token_to_id(UNK) != UNK_ID:
            raise CheckpointError("tokenizer: [PAD] must be id 0 and [UNK] id 1")

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size()

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 1000) -> "TextTokenizer":
        tok = Tokenizer(models.BPE(unk_token=UNK, end_of_word_suffix=EOW))
        tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        tok.decoder = decoders.BPEDecoder(suffix=EOW)
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, UNK], end_of_word_suffix=EOW,
                                      show_progress=False)
        tok.train_from_iterator((clean_prompt(t) for t in texts), trainer=trainer)
        return cls(tok)

    def encode(self, texts: list[str], length: int) -> Encoded:
        cleaned = [clean_prompt(t) for t in texts]
        ids = torch.full((len(texts), length), PAD_ID, dtype=torch.long)
        truncated, unknown = [], []
        for i, e in enumerate(self.tok.encode_batch(cleaned)):
            n = min(len(e.ids), length)
            ids[i, :n] = torch.tensor(e.ids[:n], dtype=torch.long)
            truncated.append(len(e.ids) > length)
            # a word the tokenizer knows is one token; one it never saw breaks into pieces or [UNK]
            words: dict[int, list[tuple[int, int, int]]] = {}
            for tid, wid, (a, b) in zip(e.ids, e.word_ids, e.offsets):
                words.setdefault(wid, []).append((tid, a, b))
            unknown.append([cleaned[i][w[0][1]:w[-1][2]] for w in words.values() if len(w) > 1 or w[0][0] == UNK_ID])
        return Encoded(ids=ids, truncated=truncated, unknown_words=unknown)

    def decode(self, ids: torch.Tensor) -> str:
        return self.tok.decode([int(i) for i in ids if int(i) != PAD_ID])

    def save(self, folder: str | Path) -> None:
        self.tok.save(str(Path(folder) / FILE))

    @classmethod
    def load(cls, folder: str | Path) -> "TextTokenizer":
        path = Path(folder) / FILE
        if not path.is_file():
            raise CheckpointError(f"tokenizer: {path} not found")
        try:
            return cls(Tokenizer.from_file(str(path)))
        except Exception as e:  # the tokenizers library raises a plain Exception on a corrupt file
            raise CheckpointError(f"tokenizer: cannot read {path}: {e}") from None
