"""How often a model's prompt rewriter reads an unseen synonym as the caption word it means: the synonyms of
benchmarks/minilm_synonyms.py (its own lists, none in the training captions or in eval/paraphrase.py's), each in
the same phrase ("a crimson circle"), read by the model's rewriter (for `shapes`: its lexicon, text/lexicon.py),
counted right when the reading names the caption word (for a relation: its last word, "left" for "to the left of";
"over"/"under" count as above/below, as the captions use them so).

    python benchmarks/lexicon_reading.py [--model shapes]      (a few seconds; MiniLM fills the runs it reads)

Beside it, `python benchmarks/minilm_synonyms.py` gives what MiniLM alone maps right on the same lists.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from minilm_synonyms import COLORS, NUMBERS, RELATIONS, SHAPES  # noqa: E402

from wordbrush import TextToImagePipeline  # noqa: E402

SAME = {"diamond": {"diamond", "rhombus"}, "cross": {"cross", "plus"}, "above": {"above", "over", "top"},
        "below": {"below", "under", "underneath"}}  # caption words that mean the same thing


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="shapes")
    args = ap.parse_args()
    pipe = TextToImagePipeline.from_pretrained(args.model)
    if pipe.rewriter is None:
        sys.exit(f"{args.model} has no prompt rewriter")
    total = right = 0
    for name, frame, table in (("colours", "a {} circle", COLORS), ("shapes", "a red {}", SHAPES),
                               ("numbers", "{} blue triangles", NUMBERS),
                               ("relations", "a red circle {} a blue square", RELATIONS)):
        pairs = [(s, w.removesuffix(" of").split()[-1]) for w, syns in table.items() for s in syns]
        read = [r.drawn for r in pipe.rewriter.rewrite([frame.format(s) for s, _ in pairs])]
        ok = [bool(SAME.get(w, {w}) & set(d.split())) for d, (_, w) in zip(read, pairs)]
        total, right = total + len(ok), right + sum(ok)
        wrong = [f"{s} -> {d!r}" for d, (s, _), o in zip(read, pairs, ok) if not o]
        print(f"{name:9s} {sum(ok) / len(ok):6.1%} right of {len(ok)} ({'; '.join(wrong)})")
    print(f"{'all':9s} {right / total:6.1%} right of {total}")


if __name__ == "__main__":
    main()
