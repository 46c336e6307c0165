"""Object phrases at the token level: which tokens of a tokenizer's vocabulary are content words, which break a
caption into phrases, and which belong to every phrase.

A caption's objects are its runs of content words, as text/negatives.py chunks it for the swaps: "a [purple
diamond] to the left of a [white circle]". The gan's object slots (generators/gan_slots.py) read each run encoded
on its own, so that one object's words cannot lend their colour to another's. The gan reads token ids, not text,
so the split is a table over the vocabulary, built once from the tokenizer and saved in the gan's weights:

    ROLE_CONTENT  a content word, or a piece of one (BPE pieces without the end-of-word mark, WordPiece "##" pieces)
    ROLE_BREAK    a whole-word function word (negatives.FUNCTION_WORDS) or punctuation: ends a phrase
    ROLE_EVERY    a special token other than [PAD] and [UNK] (WordPiece's [CLS], [SEP]): kept in every phrase

A word the tokenizer splits into pieces whose first piece spells a function word ("an ##gle") would break early;
the scratch BPE knows each training word as one token, and all-MiniLM-L6-v2's vocabulary holds the common words.
"""

from __future__ import annotations

import torch

from .negatives import FUNCTION_WORDS
from .tokenizer import EOW, PAD, UNK, TextTokenizer

ROLE_CONTENT, ROLE_BREAK, ROLE_EVERY = 0, 1, 2


def token_role(token: str, special: bool, bpe: bool) -> int:
    """One vocabulary entry's role (see the top of the file); bpe: the scratch BPE's pieces (a word's last piece
    ends with EOW), else WordPiece's (a continuation starts with "##")."""
    if special:
        return ROLE_CONTENT if token == UNK else ROLE_BREAK if token == PAD else ROLE_EVERY
    if bpe and not token.endswith(EOW) or not bpe and token.startswith("##"):
        return ROLE_CONTENT  # a piece inside a word
    word = token[: -len(EOW)] if bpe else token
    return ROLE_BREAK if word.lower() in FUNCTION_WORDS or (word and not word[0].isalnum()) else ROLE_CONTENT


def token_roles(tokenizer: TextTokenizer) -> torch.Tensor:
    """(vocab_size,) int64: each token id's role."""
    specials = {t.content for t in tokenizer.tok.get_added_tokens_decoder().values() if t.special}
    specials |= {PAD, UNK}
    roles = torch.zeros(tokenizer.vocab_size, dtype=torch.long)
    for token, i in tokenizer.tok.get_vocab().items():
        roles[i] = token_role(token, token in specials, not tokenizer.pretrained)
    return roles
