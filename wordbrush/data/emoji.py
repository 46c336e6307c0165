"""The `emoji` dataset: real image-caption pairs built from three npm packages.

- images: `emoji-datasource-google` (Noto Emoji, Apache-2.0) and `emoji-datasource-twitter` (Twemoji,
  CC-BY 4.0), 64x64 RGBA PNGs in ``img/<style>/64/``, listed in ``emoji.json`` (MIT, Cal Henderson);
- labels and keyword tags: `emojibase-data` ``en/data.json`` (MIT, Miles Johnson).

The packages are fetched with ``npm pack`` into a cache folder (pinned versions, so a build is
reproducible) and unpacked with tarfile's ``data`` filter. The two sources are joined by code point
(upper case, FE0F variation selectors removed); where emojibase has no entry, emoji-datasource's own
name and short names stand in. Skin-tone variants are items of their own.

Caption: ``"<label>; <category>; <tag>, <tag>, <tag>"``, plus ``"; twitter style"`` for Twemoji images; the
manifest also lists every tag (`keywords`), from which ``data.everyday_captions`` builds everyday phrasings
("a red apple", "an emoji of a red apple, fruit and ripe": data/phrasings.py).
Transparent pixels are composited on a background colour (white by default).
Split: a concept (the base emoji's code point: both styles and all skin tones of one emoji) is
"heldout" when a SHA-256 hash of its code point falls in the lowest HELDOUT_FRACTION, otherwise "train";
the split never depends on the package version, the style or the order of the files.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from ..errors import WordbrushError
from .reading import to_rgb

STYLES: tuple[str, ...] = ("google", "twitter")
IMAGE_PACKAGES: dict[str, tuple[str, str]] = {  # style -> (npm package, pinned version)
    "google": ("emoji-datasource-google", "16.0.0"),
    "twitter": ("emoji-datasource-twitter", "16.0.0"),
}
LABEL_PACKAGE: tuple[str, str] = ("emojibase-data", "17.0.0")
SOURCE_SIZE = 64  # the per-emoji PNGs in emoji-datasource are 64x64
HELDOUT_FRACTION = 0.10
MAX_TAGS = 3
SPLITS: tuple[str, ...] = ("train", "heldout")
SKIN_TONES: dict[str, str] = {
    "1F3FB": "light skin tone", "1F3FC": "medium-light skin tone", "1F3FD": "medium skin tone",
    "1F3FE": "medium-dark skin tone", "1F3FF": "dark skin tone",
}
NPM_TIMEOUT_S = 900


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "wordbrush" / "npm"


# ---------------------------------------------------------------------------------------------
# Fetching


def _npm_pack(name: str, version: str, cache: Path) -> Path:
    """The package's .tgz in the cache, downloaded with `npm pack` unless it is already there."""
    tgz = cache / f"{name}-{version}.tgz"
    if tgz.is_file() and tgz.stat().st_size > 0:
        return tgz
    npm = shutil.which("npm")
    if npm is None:
        raise WordbrushError(f"npm is not installed; it is needed to download {name} (install Node.js, or put "
                             f"{tgz.name} into the cache folder {cache})")
    cache.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run([npm, "pack", f"{name}@{version}", "--silent"], cwd=cache, capture_output=True,
                              text=True, timeout=NPM_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise WordbrushError(f"npm pack {name}@{version} timed out after {NPM_TIMEOUT_S} s") from None
    except OSError as e:
        raise WordbrushError(f"could not run npm: {e}") from None
    if proc.returncode != 0 or not tgz.is_file():
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip()]
        detail = next((ln for ln in lines if "ERR" in ln and "code" in ln.lower()), lines[-1] if lines else "")
        raise WordbrushError(f"npm pack {name}@{version} failed (network or registry problem?): "
                             f"{detail or f'exit code {proc.returncode}'}")
    return tgz


def _wanted(style: str | None):
    if style is None:  # emojibase-data: the English data and the licence
        keep = ("package/en/data.json", "package/en/messages.json", "package/LICENSE", "package/package.json")
        return lambda m: m.name in keep
    keep = ("package/emoji.json", "package/LICENSE", "package/README.md", "package/package.json")
    prefix = f"package/img/{style}/{SOURCE_SIZE}/"
    return lambda m: m.name in keep or (m.name.startswith(prefix) and m.isfile())


def fetch_package(name: str, version: str, cache: str | Path | None = None, style: str | None = None) -> Path:
    """Download (once) and unpack (once) the files of an npm package that the dataset needs; return the
    unpacked ``package/`` folder."""
    cache = Path(cache) if cache is not None else default_cache()
    dest = cache / f"{name}-{version}"
    done = dest / ".complete"
    if done.is_file():
        return dest / "package"
    tgz = _npm_pack(name, version, cache)
    keep = _wanted(style)
    if dest.exists():
        shutil.rmtree(dest)
    try:
        with tarfile.open(tgz, "r:gz") as tf:
            tf.extractall(dest, members=(m for m in tf if keep(m)), filter="data")
    except (tarfile.TarError, OSError, EOFError) as e:
        raise WordbrushError(f"{tgz} is not a readable npm package ({e}); delete it and run again") from None
    done.write_text(f"{name}@{version}\n")
    return dest / "package"


# ---------------------------------------------------------------------------------------------
# Joining and captions


def normalize_hex(code: str) -> str:
    """'1f636-200d-1f32b-fe0f' -> '1F636-200D-1F32B': upper case, FE0F variation selectors removed."""
    return "-".join(p for p in code.strip().upper().split("-") if p and p != "FE0F")


def split_of(concept: str, heldout_fraction: float = HELDOUT_FRACTION) -> str:
    """'heldout' or 'train' for a concept (a base emoji's code point), from a stable hash of it."""
    digest = hashlib.sha256(normalize_hex(concept).encode("ascii")).digest()
    return "heldout" if int.from_bytes(digest[:8], "big") / 2**64 < heldout_fraction else "train"


def category_text(category: str) -> str:
    """'Animals & Nature' -> 'animals and nature'."""
    return " ".join(category.replace("&", "and").lower().split())


@dataclass(frozen=True)
class EmojiItem:
    code_point: str  # normalised code point sequence of this image, e.g. '1F44B-1F3FB'
    concept: str  # normalised code point of the base emoji (shared by skin-tone variants)
    label: str
    category: str  # caption form, e.g. 'people and body'
    tags: tuple[str, ...]  # the caption's (at most MAX_TAGS)
    images: dict[str, str] = field(default_factory=dict, compare=False)  # style -> file name in img/<style>/64/
    keywords: tuple[str, ...] = ()  # every tag (the manifest's `keywords`: everyday phrasings draw on them)

    @property
    def split(self) -> str:
        return split_of(self.concept)

    def caption(self, style: str) -> str:
        parts = [self.label, self.category]
        if self.tags:
            parts.append(", ".join(self.tags))
        if style != "google":
            parts.append(f"{style} style")
        return "; ".join(parts)


def load_emojibase(data: list[dict]) -> dict[str, dict]:
    """Index emojibase entries (and their skin-tone entries, which inherit the base's tags) by code point."""
    index: dict[str, dict] = {}
    for e in data:
        if not isinstance(e, dict) or "hexcode" not in e:
            continue
        index[normalize_hex(e["hexcode"])] = e
        for skin in e.get("skins") or ():
            index[normalize_hex(skin["hexcode"])] = {**skin, "tags": skin.get("tags") or e.get("tags") or []}
    return index


def _pick_tags(tags, label: str, limit: int | None = MAX_TAGS) -> tuple[str, ...]:
    out: list[str] = []
    for t in tags:
        t = " ".join(str(t).replace("_", " ").split())
        if t and t != label and t not in out:
            out.append(t)
        if len(out) == limit:
            break
    return tuple(out)


def _fallback_label(entry: dict, code: str) -> str:
    name = entry.get("name") or (entry.get("short_names") or [code])[0]
    label = " ".join(str(name).replace("_", " ").lower().split())
    tones = [SKIN_TONES[p] for p in code.split("-") if p in SKIN_TONES]
    if tones and normalize_hex(entry.get("unified", "")) != code:
        label += ": " + ", ".join(dict.fromkeys(tones))
    return label


def join_emoji(datasource: list[dict], emojibase: dict[str, dict], styles=STYLES) -> list[EmojiItem]:
    """One EmojiItem per image (base emoji and each skin-tone variant) that has an image in one of `styles`,
    in emoji-datasource's sort order."""
    items: list[EmojiItem] = []
    for e in sorted(datasource, key=lambda d: (d.get("sort_order", 0), d.get("unified", ""))):
        if "unified" not in e:
            continue
        concept = normalize_hex(e["unified"])
        category = category_text(e.get("category") or "other")
        variants = [e] + [v for _, v in sorted((e.get("skin_variations") or {}).items())]
        for v in variants:
            code = normalize_hex(v["unified"])
            images = {s: v["image"] for s in styles if v.get(f"has_img_{s}") and v.get("image")}
            if not images:
                continue
            eb = emojibase.get(code)
            if eb is not None and eb.get("label"):
                label = " ".join(str(eb["label"]).split())
                source = eb.get("tags") or []
            else:
                label = _fallback_label(e, code)
                source = e.get("short_names") or []
            items.append(EmojiItem(code, concept, label, category, _pick_tags(source, label), images,
                                   _pick_tags(source, label, None)))
    return items


# ---------------------------------------------------------------------------------------------
# Images and writing


def _styles(style: str) -> tuple[str, ...]:
    if style == "both":
        return STYLES
    if style not in STYLES:
        raise WordbrushError(f"unknown emoji style {style!r}; expected google, twitter or both")
    return (style,)


LICENSES_MD = """# Licences and attribution of the `emoji` dataset

Built by `wordbrush data emoji` from these npm packages: {packages}.
Changes made: each image was composited on a {background} background{resized}, and a caption was written for it.

## Images

{image_sections}
## Labels and tags: emojibase-data (MIT)

Labels and keyword tags come from `emojibase-data` {eb_version} (https://emojibase.dev,
https://github.com/milesj/emojibase), licensed under the MIT licence:

```
{eb_license}
```

## Image index: emoji-datasource (MIT)

The list of emoji, categories and file names comes from `emoji-datasource` (https://github.com/iamcal/emoji-data),
whose code and data are licensed under the MIT licence (the images it bundles are licensed as stated above):

```
{ds_license}
```
"""

GOOGLE_SECTION = """### Google Noto Emoji (style "google"), Apache License 2.0

Images from Noto Emoji, Copyright Google Inc. (https://github.com/googlefonts/noto-emoji), as packaged in
`emoji-datasource-google` {version}. Licensed under the Apache License, Version 2.0
(https://www.apache.org/licenses/LICENSE-2.0; the full text is at
https://github.com/googlefonts/noto-emoji/blob/main/LICENSE). Noto's flag images are in the public domain.

"""

TWITTER_SECTION = """### Twemoji (style "twitter"), CC-BY 4.0

Attribution (as Twemoji asks): **Twemoji graphics, Copyright 2019 Twitter, Inc and other contributors;
Copyright 2024 jdecked and other contributors (https://github.com/jdecked/twemoji). Licensed under
CC-BY 4.0: https://creativecommons.org/licenses/by/4.0/** — as packaged in `emoji-datasource-twitter` {version}.
The images in this dataset were changed as described above.

"""


def _licenses_md(styles, versions: dict[str, str], background, size: int, ds_license: str, eb_license: str) -> str:
    sections = {"google": GOOGLE_SECTION, "twitter": TWITTER_SECTION}
    return LICENSES_MD.format(
        packages=", ".join(f"`{n}@{v}`" for n, v in versions.items()),
        background=f"RGB{tuple(background)}",
        resized="" if size == SOURCE_SIZE else f" and resized from {SOURCE_SIZE}x{SOURCE_SIZE} to {size}x{size}",
        image_sections="".join(sections[s].format(version=versions[IMAGE_PACKAGES[s][0]]) for s in styles),
        eb_version=versions[LABEL_PACKAGE[0]], eb_license=eb_license.strip(), ds_license=ds_license.strip())


def _read_json(path: Path, what: str):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise WordbrushError(f"cannot read {what} at {path}: {e}") from None


def write_emoji_dataset(out_dir: str | Path, style: str = "both", size: int = 64, cache: str | Path | None = None,
                        background: tuple[int, int, int] = (255, 255, 255), progress: bool = True,
                        sources: dict[str, Path] | None = None) -> dict:
    """Build the dataset into out_dir; return counts {"images": {style: {split: n}}, "skipped": {reason: n}, ...}.

    sources: already unpacked ``package/`` folders keyed by style and "labels" (tests; skips npm).
    """
    styles = _styles(style)
    if size < 8:
        raise WordbrushError(f"size must be >= 8, got {size}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise WordbrushError(f"output path {str(out)!r} exists and is not a directory")
    if sources is None:
        sources = {s: fetch_package(*IMAGE_PACKAGES[s], cache=cache, style=s) for s in styles}
        sources["labels"] = fetch_package(*LABEL_PACKAGE, cache=cache)
    versions: dict[str, str] = {}
    for key in (*styles, "labels"):
        pkg = IMAGE_PACKAGES[key] if key in IMAGE_PACKAGES else LABEL_PACKAGE
        meta = sources[key] / "package.json"
        versions[pkg[0]] = _read_json(meta, "package.json").get("version", pkg[1]) if meta.is_file() else pkg[1]
    emojibase = load_emojibase(_read_json(sources["labels"] / "en" / "data.json", "emojibase data"))
    # every style's emoji.json lists the same emoji; the first one's is the index
    items = join_emoji(_read_json(sources[styles[0]] / "emoji.json", "emoji.json"), emojibase, styles)

    (out / "images").mkdir(parents=True, exist_ok=True)
    for s in STYLES:  # images of an earlier build (another style or size) would not match metadata.jsonl
        for old in (out / "images").glob(f"{s}_*.*"):
            if old.suffix in (".png", ".txt"):
                old.unlink()
    from tqdm import tqdm

    counts = {s: {sp: 0 for sp in SPLITS} for s in styles}
    skipped: dict[str, int] = {}
    records = []
    jobs = [(it, s) for it in items for s in styles if s in it.images]
    for it, s in tqdm(jobs, desc="emoji", unit="img", disable=not progress):
        src = sources[s] / "img" / s / str(SOURCE_SIZE) / it.images[s]
        try:
            with Image.open(src) as im:
                im.load()
                img = to_rgb(im, background)
        except Exception:  # a missing or broken file in the package: counted, not fatal
            reason = "missing_image" if not src.is_file() else "unreadable_image"
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        if img.size != (size, size):
            img = img.resize((size, size), Image.LANCZOS)
        name = f"{s}_{it.code_point.lower()}"
        caption = it.caption(s)
        img.save(out / "images" / f"{name}.png")
        (out / "images" / f"{name}.txt").write_text(caption + "\n", encoding="utf-8")
        split = it.split
        counts[s][split] += 1
        records.append({"file": f"images/{name}.png", "caption": caption, "code_point": it.code_point,
                        "concept": it.concept, "label": it.label, "category": it.category, "tags": list(it.tags),
                        "keywords": list(it.keywords), "style": s, "split": split})
    with open(out / "metadata.jsonl", "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    lic = {k: (sources[k] / "LICENSE") for k in (styles[0], "labels")}
    texts = {k: p.read_text(encoding="utf-8") if p.is_file() else "(licence file missing from the package)"
             for k, p in lic.items()}
    (out / "LICENSES.md").write_text(_licenses_md(styles, versions, background, size, texts[styles[0]],
                                                  texts["labels"]), encoding="utf-8")
    concepts = {sp: len({it.concept for it in items if it.split == sp}) for sp in SPLITS}
    return {"out": out, "images": counts, "concepts": concepts, "skipped": skipped, "versions": versions,
            "records": records}
