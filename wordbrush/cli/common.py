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


def number(kind: type, low: float | None = None, high: float | None = None, what: str = ""):
    """An argparse type: `kind` (int or float) in [low, high]; nan and inf are refused (they would draw black
    images or poison a run)."""
    noun = what or ("a whole number" if kind is int else "a number")

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"in {low:g}..{high:g}" if low is not None and high is not None else f">= {low:g}"
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {value:g}")
        return value

    return parse


positive_int = number(int, 1)
nonneg_int = number(int, 0)
finite_float = number(float)
nonneg_float = number(float, 0)


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
                   help="how candidates are ranked: the model's likelihood, the model's CLIP, a gan's discriminator, or "
                   "the CLIP and one of the others (each standardised over the candidates, summed); default: the "
                   "model's")
    p.add_argument("--no-rewrite", dest="rewrite", action="store_false", default=None,
                   help="draw each prompt as typed, even where the model's prompt rewriter would read it as the "
                   "nearest of the model's own captions")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                   help="the generator's weights; bfloat16 samples faster where the CPU/GPU supports it")
    p.add_argument("--compile", action="store_true",
                   help="sample through torch.compile (needs a C++ compiler on the CPU): faster per image, but each "
                   "batch size pays a compile of seconds to a minute first; worth it for many images")


def sampling_overrides(args: argparse.Namespace) -> dict:
    """The sampling flags as TextToImagePipeline keyword arguments (None = the model's default)."""
    return dict(guidance_scale=args.guidance, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                num_inference_steps=args.steps, candidates=args.candidates, rerank=args.rerank, rewrite=args.rewrite)


def sampling_options(pipe, args: argparse.Namespace):
    """The SampleOptions these flags give with this model's saved defaults, validated."""
    return pipe.sampling_options(guidance_scale=args.guidance, temperature=args.temperature, top_k=args.top_k,
                                 top_p=args.top_p, steps=args.steps, candidates=args.candidates, rerank=args.rerank,
                                 rewrite=args.rewrite)


def one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"wordbrush: warning: {message}", file=sys.stderr)
