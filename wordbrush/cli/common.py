"""What every command shares: the parser that errs in one line, argument types that refuse bad numbers, the
sampling flags, and warnings shown as one line each. No torch here: `--help` must stay instant."""

from __future__ import annotations

import argparse
import math
import sys

from ..generators.options import RERANKERS


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line instead of usage + message
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    v = _int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def nonneg_int(text: str) -> int:
    v = _int(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return v


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def finite_float(text: str) -> float:
    """A number; nan and inf are refused (they would draw black images or poison a run)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return v


def nonneg_float(text: str) -> float:
    v = finite_float(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v:g}")
    return v


def list_of(kind):
    """`1,16,64` -> (1, 16, 64), each entry parsed by `kind` (an argparse type such as positive_int)."""

    def parse(text: str):
        items = [x.strip() for x in text.split(",") if x.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"expected comma-separated values, got {text!r}")
        return tuple(kind(x) for x in items)

    return parse


def add_sampling_args(p: argparse.ArgumentParser) -> None:
    """The sampling flags of `generate`, `explain` and `eval`; each left out takes the model's saved default."""
    p.add_argument("--guidance", type=finite_float,
                   help="classifier-free guidance scale (1 = off; default: the model's)")
    p.add_argument("--temperature", type=finite_float, help="sampling temperature, > 0 (default: the model's)")
    p.add_argument("--top-k", type=positive_int, help="keep only the k likeliest image tokens at each step")
    p.add_argument("--top-p", type=finite_float, help="keep the smallest set of tokens whose probability reaches p")
    p.add_argument("--steps", type=positive_int, help="maskgit models: parallel decoding steps")
    p.add_argument("--candidates", type=positive_int,
                   help="draw this many per image and keep the best for the prompt (see --rerank)")
    p.add_argument("--rerank", choices=RERANKERS,
                   help="how candidates are ranked: the model's likelihood or the model's CLIP (default: the model's)")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                   help="the generator's weights; bfloat16 samples faster where the CPU/GPU supports it")


def sampling_overrides(args: argparse.Namespace) -> dict:
    """The sampling flags as TextToImagePipeline keyword arguments (None = the model's default)."""
    return dict(guidance_scale=args.guidance, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                num_inference_steps=args.steps, candidates=args.candidates, rerank=args.rerank)


def one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"wordbrush: warning: {message}", file=sys.stderr)
