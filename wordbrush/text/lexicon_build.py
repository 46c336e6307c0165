"""Building a model's Lexicon (text/lexicon.py) from what people know about words, never from the benchmark's lists:

1. colour names: matplotlib's copy of the XKCD colour survey (949 names people gave colours) and the CSS names.
   A name whose last word is one of the model's colour words is that colour ("royal blue" is a blue); any other is
   the model's colour word nearest in CIELAB hue (achromatic ones by lightness: "ivory" is white).
2. WordNet (through nltk): a synonym of a model's word in a sense it heads is that word ("rhomb" -> rhombus,
   "couple" -> two, "beneath" -> below, "snowy" -> white); an adjective's satellites ("tiny" is similar to
   "small"); among figures and numbers (`NOUN_DOMAINS`, `KIND_NAMES`) a kind of a model's word is that word
   ("wedge" is a kind of triangle); "a pair of" is a quantity phrase for "two".
3. For a figure that WordNet ties to none of the model's words ("ball" is a kind of sphere, "box" of rectangle), its
   definition and the model's figures' definitions are read by MiniLM and the nearest is taken when close enough
   (`MIN_GLOSS_SIMILARITY`); a figure that is a kind above some of the model's ("quadrilateral") picks among those.
4. The connecting phrases: the runs of 1-4 words the captions put between what they name (`connecting_phrases`).

Plurals follow their singular ("discs" -> circles). Needs nltk with WordNet 3.0 (`nltk.download("wordnet")`, or
Debian's wordnet-base + wordnet-sense-index, found in /usr/share/wordnet) and the minilm extra; reading a built
lexicon needs none of them.
"""

from __future__ import annotations

import colorsys
import math
import os
import shutil
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import WordbrushError
from .lexicon import MAX_FILL_WORDS, MAX_PHRASE_WORDS, WORD, Lexicon, known_words, words_of
from .tokenizer import TextTokenizer

NOUN_DOMAINS = ("noun.shape", "noun.quantity")  # WordNet lexicographer files whose nouns the lexicon maps
KIND_NAMES = ("figure.n.06", "solid.n.03", "round_shape.n.01", "number.n.02")  # of those, the nouns of these kinds
MIN_GLOSS_SIMILARITY = 0.4  # MiniLM cosine between a shape's definition and the nearest shape word's
WHITE_LIGHTNESS = 0.85  # HLS lightness from which a colour name reads as the achromatic colour nearest in lightness
GREY_CHROMA = 0.15  # below this chroma (max - min of RGB in [0, 1]) a colour is achromatic
ARTICLES = ("a", "an", "the")  # a connecting phrase does not end in one: the prompt brings its own
DEBIAN_WORDNET = Path("/usr/share/wordnet")
LEXNAMES = ("adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
            "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location "
            "noun.motive noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process "
            "noun.quantity noun.relation noun.shape noun.state noun.substance noun.time verb.body verb.change "
            "verb.cognition verb.communication verb.competition verb.consumption verb.contact verb.creation "
            "verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative verb.weather "
            "adj.ppl").split()  # WordNet 3.0's lexicographer files, in their numbering (Debian omits the file)


def plural(phrase: str) -> str:
    """English's regular plural of a phrase's last word: "plus sign" -> "plus signs", "box" -> "boxes"."""
    if phrase.endswith(("s", "x", "z", "ch", "sh")):
        return phrase + "es"
    if phrase.endswith("y") and phrase[-2:-1] not in "aeiou":
        return phrase[:-1] + "ies"
    return phrase + "s"


def phrase_of(lemma: str) -> str | None:
    """A WordNet lemma as prompt words ("plus_sign" -> "plus sign"), None if it is not 1-3 plain words."""
    words = lemma.lower().replace("_", " ").split()
    return " ".join(words) if 1 <= len(words) <= MAX_PHRASE_WORDS and all(WORD.fullmatch(w) for w in words) else None


# ---------------------------------------------------------------------------------------------- colours

def colour_names() -> dict[str, tuple[float, float, float]]:
    """Colour name -> RGB in [0, 1]: the XKCD survey's names, then CSS's one-word names it lacks."""
    from matplotlib import colors

    names = {k.removeprefix("xkcd:"): colors.to_rgb(v) for k, v in colors.XKCD_COLORS.items()}
    for k, v in colors.CSS4_COLORS.items():
        names.setdefault(k, colors.to_rgb(v))
    return {k: v for k, v in names.items() if phrase_of(k) == k}


def _achromatic(rgb) -> bool:
    return colorsys.rgb_to_hls(*rgb)[1] >= WHITE_LIGHTNESS or max(rgb) - min(rgb) < GREY_CHROMA


def lab_hue(rgb) -> float:
    """The CIELAB hue angle of an sRGB colour in degrees (D65): the perceptual hue, where HLS's would put lime
    nearer yellow than green."""
    r, g, b = (u / 12.92 if u <= 0.04045 else ((u + 0.055) / 1.055) ** 2.4 for u in rgb)  # linear light
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883
    fx, fy, fz = (t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116 for t in (x, y, z))
    return math.degrees(math.atan2(200 * (fy - fz), 500 * (fx - fy))) % 360


def nearest_colour(rgb, palette: dict[str, tuple[float, float, float]]) -> str | None:
    """The palette word nearest to rgb: by CIELAB hue among the chromatic ones, by lightness among the
    achromatic ones."""
    if _achromatic(rgb):
        grey = {w: c for w, c in palette.items() if _achromatic(c)}
        light = colorsys.rgb_to_hls(*rgb)[1]
        return min(grey, key=lambda w: abs(colorsys.rgb_to_hls(*grey[w])[1] - light)) if grey else None
    chroma = {w: c for w, c in palette.items() if not _achromatic(c)}
    hue = lab_hue(rgb)

    def distance(w: str) -> float:
        d = abs(lab_hue(chroma[w]) - hue)
        return min(d, 360 - d)
    return min(chroma, key=distance) if chroma else None


def colour_table(known: set[str]) -> dict[str, str]:
    names = colour_names()
    palette = {w: names[w] for w in known if w in names}  # the model's colour words
    table = {}
    for name, rgb in names.items():
        words = name.split()
        if all(w in known for w in words):
            continue
        target = words[-1] if words[-1] in palette else nearest_colour(rgb, palette)
        if target is not None:
            table[name] = target
    return table


# ---------------------------------------------------------------------------------------------- WordNet

def open_wordnet():
    """nltk's WordNet reader: nltk's own data if installed, else Debian's files, copied once into nltk's data folder
    with the lexicographer-file list Debian leaves out. One clear line when neither is there."""
    try:
        import nltk
        from nltk.corpus import wordnet
    except ImportError:
        raise WordbrushError("building a lexicon needs nltk: pip install nltk") from None
    try:
        wordnet.ensure_loaded()
        return wordnet
    except LookupError:
        pass
    if not (DEBIAN_WORDNET / "data.noun").is_file() or not (DEBIAN_WORDNET / "index.sense").is_file():
        raise WordbrushError("WordNet not found: python -m nltk.downloader wordnet, or apt-get install wordnet-base "
                             "wordnet-sense-index")
    root = Path(nltk.data.path[0]).expanduser() / "corpora" / "wordnet"  # ~/nltk_data/corpora/wordnet
    if not (root / "lexnames").is_file():
        tmp = root.with_name(root.name + f".tmp{os.getpid()}")
        shutil.copytree(DEBIAN_WORDNET, tmp, dirs_exist_ok=True)
        pos = {"adj": 3, "adv": 4, "noun": 1, "verb": 2}
        (tmp / "lexnames").write_text("".join(f"{i:02d}\t{n}\t{pos[n.split('.')[0]]}\n" for i, n in enumerate(LEXNAMES)))
        shutil.rmtree(root, ignore_errors=True)
        os.replace(tmp, root)
    wordnet.ensure_loaded()
    return wordnet


def own_senses(wn, word: str, pos: str, head: bool = False) -> list:
    """The WordNet senses of the word itself (not of its stem: "circles"); head: only those it is the first word of."""
    return [s for s in wn.synsets(word, pos=pos) if word in [n.lower() for n in s.lemma_names()[: 1 if head else None]]]


def wordnet_table(wn, known: set[str], read=None) -> dict[str, str]:
    """phrase -> the model's word, from WordNet (see the module docstring). read(texts) -> unit sentence vectors
    (MiniLM) settles the figures that WordNet's relations leave open; None skips that step."""
    table: dict[str, str] = {}
    kinds = {wn.synset(name) for name in KIND_NAMES}

    def add(lemmas, word: str) -> None:
        for lemma in lemmas:
            p = phrase_of(lemma)
            if p and len(p) > 2 and p not in table and not all(w in known for w in p.split()):
                table[p] = word

    # adjectives and adverbs: the synonyms in the senses a model's word heads ("small, little"; "white, snowy"), and
    # the satellites of the first of them ("tiny" is similar to "small")
    for word in sorted(known):
        for pos in ("a", "r"):
            for rank, s in enumerate(own_senses(wn, word, pos, head=True)):
                add(s.lemma_names(), word)
                for sat in s.similar_tos() if pos == "a" and rank == 0 else []:
                    add(sat.lemma_names(), word)
    # nouns: a synonym or a kind of a model's word, among the figures and the numbers
    senses = {s: w for w in sorted(known) for s in own_senses(wn, w, "n") if s.lexname() in NOUN_DOMAINS}
    open_figures = []
    for s in wn.all_synsets("n"):
        if s.lexname() not in NOUN_DOMAINS:
            continue
        above = set(s.closure(lambda x: x.hypernyms()))
        if not above & kinds:  # an angle, a unit of measure: neither a figure nor a number
            continue
        word = next((senses[h] for h in [s, *sorted(above, key=s.shortest_path_distance)] if h in senses), None)
        if word is None:
            open_figures += [s] if s.lexname() == "noun.shape" else []
        elif s.lexname() == "noun.quantity":  # a number's synonyms and kinds, and "a pair of", "a couple of"
            add([f"{a}{lemma} of" for lemma in s.lemma_names() for a in ("a ", "")] + s.lemma_names(), word)
        else:
            add(s.lemma_names(), word)
    if read is not None:
        figures = sorted({w for s, w in senses.items() if s.lexname() == "noun.shape"})
        defs = {w: [f"a {w}"] + [f"{w}: {s.definition()}" for s, v in senses.items() if v == w] for w in figures}
        ref = F.normalize(torch.stack([read(defs[w]).mean(0) for w in figures]), dim=-1)  # (W, 384)
        above_of = {h: set(h.closure(lambda x: x.hypernyms())) for h, w in senses.items() if w in figures}
        queries = {}  # phrase -> (the definition of its first open sense, the figures that are kinds of it)
        for s in open_figures:
            below = {senses[h] for h, up in above_of.items() if s in up}
            for lemma in s.lemma_names():
                p = phrase_of(lemma)
                if p is not None and p not in table:
                    queries.setdefault(p, (s.definition(), below))
        if queries:
            vecs = read([t for p, (d, _) in queries.items() for t in (f"a {p}", f"{p}: {d}")])  # (2Q, 384)
            sims = F.normalize(vecs.view(len(queries), 2, -1).mean(1), dim=-1) @ ref.T  # (Q, W)
            for (p, (_, below)), row in zip(queries.items(), sims):
                if below:  # a quadrilateral is a square or a rhombus: the nearest of the figures of its kind
                    row = row.masked_fill(torch.tensor([w not in below for w in figures]), -1)
                s_, k_ = row.max(0)
                if float(s_) >= MIN_GLOSS_SIMILARITY:
                    table[p] = figures[int(k_)]
    return table


def content_words(wn, known: set[str]) -> set[str]:
    """The model's words that name what it draws (colours, figures, numbers) and their plurals: never filler."""
    names = colour_names()
    content = {w for w in known if w in names or w.isdigit()
               or any(s.lexname() in NOUN_DOMAINS for s in own_senses(wn, w, "n"))}
    return content | {w for w in known if any(plural(c) == w for c in content)}


def connecting_phrases(captions: list[str], known: set[str], content: set[str]) -> list[str]:
    """The phrases of 1 to MAX_FILL_WORDS words that the training captions use between what they name ("to the
    left of", "together with", "a picture of"): every such run of non-content words seen at least once in 2,000
    captions (and at least 5 times), but for those that end in an article (the prompt brings its own)."""
    counts: Counter[str] = Counter()
    for caption in captions:
        words = words_of(caption)
        for n in range(1, MAX_FILL_WORDS + 1):
            for j in range(len(words) - n + 1):
                run = words[j:j + n]
                if all(w in known and w not in content for w in run):
                    counts[" ".join(run)] += 1
    need = max(5, len(captions) // 2000)
    return sorted(p for p, c in counts.items() if c >= need and p.split()[-1] not in ARTICLES)


def build_lexicon(tokenizer: TextTokenizer, captions: Iterable[str], use_minilm: bool = True) -> Lexicon:
    """A model's Lexicon: its words are those of its training captions that its tokenizer reads whole."""
    captions = list(captions)
    known = known_words(tokenizer, captions)
    if not known:
        raise WordbrushError("the model's tokenizer holds no whole words of its captions (a lexicon maps words to "
                             "a scratch BPE's words; a pretrained tokenizer's model reads any word)")
    read = None
    if use_minilm:
        from .rewriter import sentence_reader, sentence_vectors

        tok, reader = sentence_reader()

        def read(texts: list[str]) -> torch.Tensor:
            return sentence_vectors(tok, reader, texts)
    wn = open_wordnet()
    table = colour_table(known)
    for phrase, word in wordnet_table(wn, known, read).items():
        table.setdefault(phrase, word)
    for phrase, word in list(table.items()):  # "discs" -> circles, where the model knows the plural
        many = plural(word)
        if many in known and not phrase.endswith(" of"):
            table.setdefault(plural(phrase), many)
    return Lexicon(frozenset(known), table, connecting_phrases(captions, known, content_words(wn, known)))
