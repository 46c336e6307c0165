"""Prompts on their way into a model: validated (one clear line for a bad one), read as the model's tokenizer reads
them (the warnings a user should see: truncation, words it never saw), and, where the model has a prompt rewriter
(text/rewriter.py), rewritten into one of its own captions. TextToImagePipeline's check_prompts, revise and
read_prompts are these functions with the pipeline's tokenizer, text length and rewriter (None when its sampling
options say rewrite=False)."""

from __future__ import annotations

from ..errors import WordbrushError
from .rewriter import PromptRewriter
from .tokenizer import TextTokenizer, clean_prompt

MAX_PROMPT_CHARS = 100_000  # longer input is refused outright rather than tokenised


def short(prompt: str) -> str:
    """A prompt cut to 40 characters, for a message."""
    p = clean_prompt(prompt)
    return p[:40] + ("…" if len(p) > 40 else "")


def check_prompts(tokenizer: TextTokenizer, text_len: int, prompts: str | list[str]) -> tuple[list[str], list[str]]:
    """Validate prompts; return them as a list plus the warnings a user should see."""
    if isinstance(prompts, str):
        prompts = [prompts]
    if not isinstance(prompts, (list, tuple)) or not prompts:
        raise WordbrushError("prompts must be a string or a non-empty list of strings")
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise WordbrushError(f"prompt {i} is a {type(p).__name__}, not a string")
        if len(p) > MAX_PROMPT_CHARS:
            raise WordbrushError(f"prompt {i} has {len(p):,} characters; the limit is {MAX_PROMPT_CHARS:,}")
        if not clean_prompt(p):
            raise WordbrushError(f"prompt {i} is empty (or only whitespace / control characters)")
    notes = []
    enc = tokenizer.encode(list(prompts), text_len)
    for i, p in enumerate(prompts):
        if enc.truncated[i]:
            notes.append(f"prompt {i} ({short(p)!r}) is longer than {text_len} tokens and was truncated")
        if enc.unknown_words[i]:
            words = ", ".join(dict.fromkeys(enc.unknown_words[i]))
            what = ("its text encoder cannot read" if tokenizer.pretrained
                    else "the model never saw in training as whole words (it reads them in pieces)")
            notes.append(f"prompt {i} has words {what}: {words}")
    return list(prompts), notes


def revise(rewriter: PromptRewriter | None, prompts: list[str]) -> tuple[list[str], list[str]]:
    """What the model draws for each (validated) prompt, and a note for each one rewritten: with a rewriter, a
    prompt in a person's words becomes the nearest of the model's own captions when it is close enough; without
    one, every prompt is drawn as typed."""
    if rewriter is None:
        return list(prompts), []
    drawn, notes = [], []
    for i, r in enumerate(rewriter.rewrite(list(prompts))):
        drawn.append(r.drawn)
        if r.revised:
            how = (f"the model's caption {r.drawn!r} (similarity {r.similarity:.2f}" if rewriter.cfg.points
                   else f"{r.drawn!r} (in the words the model knows")
            notes.append(f"prompt {i} ({short(r.prompt)!r}) was read as {how}; rewrite=False draws it as typed)")
    return drawn, notes


def read_prompts(tokenizer: TextTokenizer, text_len: int, rewriter: PromptRewriter | None,
                 prompts: str | list[str]) -> tuple[list[str], list[str], list[str], list[str]]:
    """check_prompts, then revise: the prompts as a list, what the model draws for each, the warnings about what it
    draws (words it never saw, truncation) and a note for each prompt rewritten."""
    prompts, notes = check_prompts(tokenizer, text_len, prompts)
    drawn, revisions = revise(rewriter, prompts)
    if revisions:
        notes = check_prompts(tokenizer, text_len, drawn)[1]  # the words that matter are the ones drawn
    return prompts, drawn, notes, revisions
