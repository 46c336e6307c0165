"""Make a trained gan run the built-in `shapes-gan`: its EMA generator and tokenizer, the built-in `shapes` model's
prompt rewriter (the lexicon reads the same caption words), and the sampling defaults it ships with.

    python scripts/ship-shapes-gan.py runs/gan-shapes-objects [wordbrush/models/shapes-gan]

The run's discriminator is left behind (reranking by it did not help: docs/gan.md); the folder is written beside
the destination and renamed into place, so a failed copy leaves the old model as it was.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import replace
from pathlib import Path

from wordbrush import TextToImagePipeline
from wordbrush.checkpoint import builtin_path
from wordbrush.text.rewriter import PromptRewriter

CANDIDATES, RERANK = 8, "clip"  # the best of 8 by its own (order-aware) CLIP: docs/gan.md, sessions 25 and 27
TEMPERATURE = 1.5  # the noise scaled up: 16 seeds spread >= 0.55x the real images', not 0.39x (session 27)


def main() -> None:
    run = Path(sys.argv[1])
    dest = Path(sys.argv[2]) if len(sys.argv) > 2 else builtin_path("shapes-gan")
    pipe = TextToImagePipeline.from_pretrained(run)
    pipe.critic = None
    pipe.rewriter = PromptRewriter.from_pretrained(builtin_path("shapes") / "rewriter")
    pipe.sampling = replace(pipe.sampling, candidates=CANDIDATES, rerank=RERANK,
                           temperature=TEMPERATURE, rewrite=True)
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    pipe.save_pretrained(tmp)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    print(f"wrote {dest}: {', '.join(sorted(p.name for p in dest.iterdir()))}")


if __name__ == "__main__":
    main()
