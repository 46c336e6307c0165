"""`wordbrush rewriter build|show`: give a model a prompt rewriter built from its training data, or show what a
model reads prompts as (text/rewriter.py)."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from .common import Parser, finite_float, positive_int


def add_parser(sub) -> None:
    rw = sub.add_parser("rewriter", help="read prompts in a person's words as a model's own captions")
    rw_sub = rw.add_subparsers(dest="action", required=True, parser_class=Parser)
    b = rw_sub.add_parser("build", help="build a model folder's rewriter/ from the data it was trained on",
                          description="Read every caption (and, for a manifest with a label column, its everyday "
                          "phrasings) of the training data with MiniLM; one point per caption; written into "
                          "MODEL/rewriter/. Needs the minilm extra.")
    b.add_argument("--model", required=True, help="a saved model folder (a training run folder or a built-in's folder)")
    b.add_argument("--data", required=True, help="the dataset the model was trained on (folder or manifest)")
    b.add_argument("--split", default="train", help="the manifest split it was trained on (default: train)")
    b.add_argument("--min-similarity", type=finite_float, default=None,
                   help="rewrite only prompts at least this close (cosine) to a training caption's point "
                   "(default 0.4)")
    b.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    b.set_defaults(func=run_build)
    lx = rw_sub.add_parser("lexicon", help="give a model folder's rewriter/ a lexicon: words it never saw read as "
                           "words it knows", description="Map colour names (XKCD survey, CSS) and WordNet's "
                           "synonyms and kinds of the model's words to those words (text/lexicon_build.py), so that "
                           "'a crimson disc beneath a navy box' is drawn as 'a red circle below a blue square'. "
                           "Needs nltk with WordNet (python -m nltk.downloader wordnet, or Debian's wordnet-base "
                           "and wordnet-sense-index) and the minilm extra; drawing with it needs neither.")
    lx.add_argument("--model", required=True, help="a saved model folder with a scratch BPE tokenizer")
    lx.add_argument("--data", required=True, help="what the model was trained on: 'shapes' (the built-in dataset) "
                    "or a dataset folder or manifest; its captions' words are the words the model knows")
    lx.add_argument("--captions", type=positive_int, default=20_000,
                    help="shapes captions to read the words from (default 20,000)")
    lx.set_defaults(func=run_lexicon)
    s = rw_sub.add_parser("show", help="print what a model reads each prompt as")
    s.add_argument("prompts", nargs="+", help="prompts, each in quotes")
    s.add_argument("--model", default="emoji", help="built-in model name or folder (default: emoji)")
    s.set_defaults(func=run_show)


def run_build(args: argparse.Namespace) -> None:
    from ..pipeline import TextToImagePipeline
    from ..text.rewriter import PromptRewriter

    folder = Path(args.model)
    TextToImagePipeline.from_pretrained(folder)  # a folder that is not a model fails here, before the long part
    low = {} if args.min_similarity is None else {"min_similarity": args.min_similarity}
    rw = PromptRewriter.from_dataset(args.data, split=args.split, progress=not args.quiet, **low)
    path = write_rewriter(rw, folder)
    print(f"wrote {path}: {rw.cfg.points} captions from {args.data} "
          f"(each drawn as typed; a prompt near one is read as it: min similarity {rw.cfg.min_similarity:g})")


def write_rewriter(rw, folder: Path) -> Path:
    """Save rw as folder/rewriter/, swapping out the old one (if any) in one rename."""
    from ..errors import WordbrushError
    from ..text.rewriter import REWRITER_FOLDER
    from ..utils.atomic import replace_into

    try:
        staging = Path(tempfile.mkdtemp(prefix=".rewriter-", dir=folder))
    except OSError as e:
        raise WordbrushError(f"cannot write into {folder}: {e.strerror}") from None
    rw.save_pretrained(staging / REWRITER_FOLDER)
    replace_into(staging, folder)
    return folder / REWRITER_FOLDER


def training_captions(data: str, n: int) -> list[str]:
    """The captions a model was trained on: n of the shapes dataset's, or every caption of a dataset."""
    if data == "shapes":
        from ..data.shapes import ShapesDataset

        ds = ShapesDataset(n, seed=1, split="train")
        return [ds.item_arrays(i)[1] for i in range(n)]
    from ..data.folder import open_dataset

    ds = open_dataset(data, split="all")
    return [c for _, caps in getattr(ds, "items", []) for c in caps]


def run_lexicon(args: argparse.Namespace) -> None:
    from ..errors import WordbrushError
    from ..pipeline import TextToImagePipeline
    from ..text.lexicon_build import build_lexicon
    from ..text.rewriter import PromptRewriter

    folder = Path(args.model)
    pipe = TextToImagePipeline.from_pretrained(folder)  # a folder that is not a model fails here
    captions = training_captions(args.data, args.captions)
    if not captions:
        raise WordbrushError(f"{args.data}: no captions to read the model's words from")
    lexicon = build_lexicon(pipe.tokenizer, captions)
    path = write_rewriter(PromptRewriter.reading_through(lexicon, pipe.rewriter), folder)  # an index stays
    print(f"wrote {path / 'lexicon.json'}: {len(lexicon.table):,} words and phrases read as the model's "
          f"{len(lexicon.known)} words, {len(lexicon.phrases)} of its phrases for the runs of words it does not know")


def run_show(args: argparse.Namespace) -> None:
    from ..errors import WordbrushError
    from ..pipeline import TextToImagePipeline

    pipe = TextToImagePipeline.from_pretrained(args.model)
    if pipe.rewriter is None:
        raise WordbrushError(f"{args.model} has no prompt rewriter: it draws every prompt as typed "
                             "(wordbrush rewriter build adds one)")
    prompts, _ = pipe.check_prompts(args.prompts)
    for r in pipe.rewriter.rewrite(prompts):
        what = f"-> {r.drawn}" if r.revised else "(drawn as typed)"
        print(f"{r.similarity:5.2f}  {r.prompt}  {what}")
