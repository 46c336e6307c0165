"""Text tokenizers over Hugging Face `tokenizers`: the `scratch` one is BPE trained on the captions; the `minilm`
encoder brings its own WordPiece tokenizer (text/minilm.py), wrapped by the same class.

Prompts are cleaned first (Unicode NFKC, control characters dropped, whitespace collapsed, lower case), then
split into pieces. Every prompt becomes exactly `length` ids: shorter ones are padded with [PAD] (id 0),
longer ones truncated, and the caller is told (see `Encoded.truncated`). Words the tokenizer cannot read are
reported in `Encoded.unknown_words`: for the scratch BPE a word that is not one token (it never occurred in
training captions), for a pretrained WordPiece vocabulary a word that became [UNK].
"""

from __future__ import annotations

import heapq
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

from ..checkpoint import part_path
from ..errors import CheckpointError
from ..utils.atomic import write_bytes

PAD, UNK = "[PAD]", "[UNK]"
PAD_ID = 0
EOW = "</w>"  # marks a word's last piece, so decoding restores the spaces
FILE = "tokenizer.json"
MAX_FILE_BYTES = 64 << 20  # a tokenizer.json larger than this is not read (all-MiniLM-L6-v2's is 0.7 MB)
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


_WORDS = re.compile(r"\w+|[^\w\s]+")  # what pre_tokenizers.Whitespace splits a prompt into


def bpe_merges(texts: Iterable[str], vocab_size: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Byte-pair merges over the words of `texts`, as Hugging Face's BpeTrainer learns them (each word's last
    piece marked with EOW; the most frequent pair merged first) but with every tie broken the same way in every
    process: ids are given in sorted order, and among pairs of equal count the one of the smallest ids is merged
    first. (BpeTrainer numbers the word-final pieces in hash-map order, so two runs on the same captions could give
    different ids.) Returns (vocab: token -> id, merges in order)."""
    counts: dict[str, int] = {}
    for text in texts:
        for w in _WORDS.findall(text):
            counts[w] = counts.get(w, 0) + 1
    words = sorted(counts)
    chars = sorted({c for w in words for c in w})
    finals = sorted({w[-1] + EOW for w in words})
    tokens = [PAD, UNK] + chars + [f for f in finals if f not in chars]
    ids = {t: i for i, t in enumerate(tokens)}
    seqs = [[ids[c] for c in w[:-1]] + [ids[w[-1] + EOW]] for w in words]
    freq = [counts[w] for w in words]
    pairs: dict[tuple[int, int], int] = {}
    where: dict[tuple[int, int], set[int]] = {}

    def add(k: int, sign: int) -> None:
        seq = seqs[k]
        for pair in zip(seq, seq[1:]):
            pairs[pair] = pairs.get(pair, 0) + sign * freq[k]
            if sign > 0:
                where.setdefault(pair, set()).add(k)

    for k in range(len(seqs)):
        add(k, 1)
    heap = [(-c, p) for p, c in pairs.items()]
    heapq.heapify(heap)
    merges: list[tuple[str, str]] = []
    while len(tokens) < vocab_size and heap:
        neg, pair = heapq.heappop(heap)
        if pairs.get(pair, 0) != -neg or neg == 0:
            continue  # a stale entry: the pair's count changed since
        a, b = pair
        new = len(tokens)
        tokens.append(tokens[a] + tokens[b])
        merges.append((tokens[a], tokens[b]))
        touched = set()
        for k in sorted(where.pop(pair, ())):
            seq = seqs[k]
            if not any(x == a and y == b for x, y in zip(seq, seq[1:])):
                continue
            add(k, -1)
            out, i = [], 0
            while i < len(seq):
                if i + 1 < len(seq) and seq[i] == a and seq[i + 1] == b:
                    out.append(new)
                    i += 2
                else:
                    out.append(seq[i])
                    i += 1
            seqs[k] = out
            add(k, 1)
            touched.update(zip(out, out[1:]))
        pairs.pop(pair, None)
        for p in touched:
            if pairs.get(p, 0) > 0:
                heapq.heappush(heap, (-pairs[p], p))
    return {t: i for i, t in enumerate(tokens)}, merges


class TextTokenizer:
    def __init__(self, tokenizer: Tokenizer):
        self.tok = tokenizer
        self.unk_id = tokenizer.token_to_id(UNK)
        if tokenizer.token_to_id(PAD) != PAD_ID or self.unk_id is None:
            raise CheckpointError("tokenizer: [PAD] must be id 0 and there must be an [UNK] token")
        # the scratch BPE knows a training word as one token; a pretrained WordPiece splits known words too
        self.pretrained = isinstance(tokenizer.model, models.WordPiece)

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size()

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 1000) -> "TextTokenizer":
        """BPE learned on `texts` (bpe_merges: the same texts give the same ids, in every process)."""
        vocab, merges = bpe_merges((clean_prompt(t) for t in texts), vocab_size)
        tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=UNK, end_of_word_suffix=EOW))
        tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        tok.decoder = decoders.BPEDecoder(suffix=EOW)
        return cls(tok)

    def encode(self, texts: list[str], length: int) -> Encoded:
        cleaned = [clean_prompt(t) for t in texts]
        ids = torch.full((len(texts), length), PAD_ID, dtype=torch.long)
        truncated, unknown = [], []
        for i, e in enumerate(self.tok.encode_batch(cleaned)):
            n = min(len(e.ids), length)
            ids[i, :n] = torch.tensor(e.ids[:n], dtype=torch.long)
            truncated.append(len(e.ids) > length)
            words: dict[int, list[tuple[int, int, int]]] = {}
            for tid, wid, (a, b) in zip(e.ids, e.word_ids, e.offsets):
                if wid is not None:  # not [CLS] / [SEP]
                    words.setdefault(wid, []).append((tid, a, b))
            unknown.append([cleaned[i][w[0][1]:w[-1][2]] for w in words.values()
                            if any(t == self.unk_id for t, _, _ in w) or (len(w) > 1 and not self.pretrained)])
        return Encoded(ids=ids, truncated=truncated, unknown_words=unknown)

    def words(self, text: str, length: int) -> list[tuple[str, list[int]]]:
        """The words of a (cleaned) prompt with the positions of their tokens among the first `length`:
        what a per-word view of per-token attention sums over. Words cut off by truncation are left out."""
        cleaned = clean_prompt(text)
        e = self.tok.encode(cleaned)
        spans: dict[int, tuple[int, int, list[int]]] = {}
        for pos, (wid, (a, b)) in enumerate(zip(e.word_ids, e.offsets)):
            if wid is not None and pos < length:
                a0, _, ps = spans.get(wid, (a, b, []))
                spans[wid] = (a0, b, ps + [pos])
        return [(cleaned[a:b], ps) for a, b, ps in spans.values()]

    def decode(self, ids: torch.Tensor) -> str:
        return self.tok.decode([int(i) for i in ids if int(i) != PAD_ID])

    def save(self, folder: str | Path) -> None:
        write_bytes(Path(folder) / FILE, self.tok.to_str(pretty=True).encode("utf-8"))  # atomically, like the weights

    @classmethod
    def load(cls, folder: str | Path) -> "TextTokenizer":
        """folder/tokenizer.json, a part of a model folder: it must lie inside the folder (checkpoint.part_path)."""
        path = part_path(folder, FILE, "tokenizer")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise CheckpointError(f"tokenizer: {path} is larger than {MAX_FILE_BYTES:,} bytes; not read")
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as e:  # the tokenizers library raises a plain Exception on a corrupt file
            msg = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise CheckpointError(f"tokenizer: cannot read {path} as a tokenizer: {msg}") from None
        return cls(tok)
