"""Debian's ``openclipart-png`` as a training source (:func:`clipart_source`): about 8,000
pictures whose authors filed and named them (``food/fruit/tile_orange…``,
``animals/bugs/coccinella…``). Each picture is weakly labelled with every emoji its path names
(:func:`training.names.name_labels`); this module owns what is particular to the tree: folders
of non-depictions, pictures labelled by eye or dropped by eye, the size limits, and byte-identical
copies (kept once, with the labels of all copies). ``scripts/build_clipart_set.py`` shares the
tables for its strict benchmark set.
"""

from __future__ import annotations

import struct
from pathlib import Path

from emojinet.preprocess import MAX_ASPECT_RATIO
from training.errors import ManifestError
from training.names import Lexicon, name_labels, parse_emojis
from training.posts import Post
from training.prepare import PrepareReport
from training.sources import Source, content_key

__all__ = [
    "DROP_NAMES",
    "FILE_LABELS",
    "MAX_PIXELS",
    "MIN_SIDE",
    "ROOT",
    "SKIP_DIRS",
    "clipart_source",
    "size_problem",
    "skipped_names",
]

ROOT = Path("/usr/share/openclipart/png")
MIN_SIDE = 48  # smaller pictures are dots, not depictions
MAX_PIXELS = 16_000_000  # a few posters of 100+ megapixels are too big to decode


def _words(text: str, sep: str | None = None) -> list[str]:
    """Split a table written as one string."""
    return text.split(sep)


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Folders with no depictions: UI icons, patterns, diagrams, card faces, pictogram sets whose
# names say what a sign means. Copies of their files filed elsewhere are skipped too.
SKIP_DIRS = _words(
    "buttons computer/buttons computer/diagrams computer/folders computer/icons logos "
    "recreation/games/cards shapes/arrows shapes/callouts shapes/flowchart shapes/jigsaw "
    "signs_and_symbols/flags/semaphore signs_and_symbols/led "
    "special transportation/roadsigns unsorted/duplicates"
)

# Pictures whose names carry no words, labelled by eye; "" drops the picture.
_CLOCKS = "🕐🕑🕒🕓🕔🕕🕖🕗🕘🕙🕚🕛"
_SMILIES = _words(
    "🙂 😊 ☺️|☹️ 🙁 😞|😐 😑|😛|😛|😢 😥|😁 😀 😃|😈|😮 😯 😲|😎|"
    "🙂 😊 ☺️|😀 😊 🙂|☹️ 🙁 😞|😐 😑|😛|😛|😢 😥|😁 😀 😃|😮 😯 😲|😈|😎||😇|🥰|"
    "😕 🤔|😴|🤥|😉 😏||🤫|🤓",
    "|",
)
FILE_LABELS = {
    **{f"signs_and_symbols/clocks/clock{i:02d}.png": f"{c} 🕰️" for i, c in enumerate(_CLOCKS, 1)},
    **{
        f"people/smilies/smiley{n:03d}.png": label
        for n, label in zip([*range(1, 11), *range(100, 121)], _SMILIES, strict=True)
    },
    "people/smilies/smiley_nicolas_01.png": "😊 😄",
    "people/smilies/smileytwinkle_nicolas_ga_01.png": "😉",
    "people/smilies/base.png": "🙂 😊",
    "people/smilies/smiley_nicolas_gagliani_01.png": "😆 😄",
    "people/clothing/sunglasses_linda_kim_01.png": "👓 🕶️",
    "signs_and_symbols/pen1.png": "✏️ 🖊️",
    "signs_and_symbols/awards/ribbon.png": "🏵️ 🎖️",
    "animals/birds/pollo_architetto_frances_01.png": "🦃",
}
# Pictures that are blank on white, placeholders ("Linked Image Not Found"), specks, or not
# what their name says; found by eye and by a one-off count of non-white pixels.
DROP_NAMES = _wordset(
    """
cloudy03.png bucket_michael_moore_.png clouds_jon_phillips_01.png clouds_jon_phillips_04.png
clouds_jon_phillips_05.png clouds_jon_phillips_06.png clouds_jon_phillips_10.png
moon_jasper_van_de_grond_01.png pear_jean-victor_balin_01r.png generic_ticket_ryan_phil_01.png
corridore.png houses_jon_phillips_01.png house_fudriot_omic.ch_01.png toros_01.png
badminton_racket_brice_b_01.png caterpillar.png tux_didier_fabert_01.png dolphin_01.png
duck_yellow_ii_kurt_cagl_.png tie_-_clothing_nicu_bucu_01.png my_lovely_baby_enrique_m_01.png
my_lovely_baby_enrique_m_02.png angel_01.png teschio_fabio_olivo_01.png galette_01.png
teschio_fabio_olivo_02.png light_bulb_karl_bartel_01.png fire_stefan_bazelkov_01.png
"""
)


def skipped_names(root: Path) -> set[str]:
    """File names found in the non-depiction folders: copies of them elsewhere are skipped too."""
    return {p.name for d in SKIP_DIRS for p in (root / d).rglob("*.png")}


def size_problem(path: Path) -> str | None:
    """``too_small`` / ``too_large`` / ``too_narrow`` / ``unreadable_image`` from the PNG
    header, or None. ``too_narrow``: a strip the product refuses to decode (over 20:1)."""
    try:
        with path.open("rb") as f:
            header = f.read(24)
    except OSError:
        return "unreadable_image"
    if len(header) < 24 or header[:8] != b"\x89PNG\r\n\x1a\n":
        return "unreadable_image"
    width, height = struct.unpack(">II", header[16:24])
    if max(width, height) < MIN_SIDE:
        return "too_small"
    if max(width, height) > MAX_ASPECT_RATIO * max(1, min(width, height)):
        return "too_narrow"
    return "too_large" if width * height > MAX_PIXELS else None


def clipart_source(root: str | Path = ROOT, *, lexicon: Lexicon | None = None) -> Source:
    """Every usable picture under ``root``, labelled by its path (possibly with no emoji).

    Reading drops ``non_depiction_folder``, ``blank_or_misnamed``, ``too_small``,
    ``too_large``, ``too_narrow``, ``unreadable_image`` and ``duplicate`` (a byte-identical
    copy: its labels join the first copy's). Posts are ``clipart/<relative path>``, keyed by
    content.

    Raises:
        ManifestError: ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise ManifestError(f"clip art folder {root} not found: apt-get install openclipart-png")
    read = PrepareReport()
    skipped = skipped_names(root)
    first: dict[str, Post] = {}
    for path in sorted(root.rglob("*.png")):
        rel = path.relative_to(root).as_posix()
        post_id = f"clipart/{rel}"
        read.read += 1
        problem = (
            "non_depiction_folder"
            if path.name in skipped
            else "blank_or_misnamed"
            if path.name in DROP_NAMES
            else size_problem(path)
        )
        if problem is not None:
            read.drop(problem, post_id)
            continue
        if rel in FILE_LABELS:
            labels = list(parse_emojis(FILE_LABELS[rel]))
        else:
            labels = list(name_labels(rel, lexicon).emojis)
        key = content_key(path)
        if key in first:
            kept = first[key]
            kept.labels += [e for e in labels if e not in kept.labels]
            read.drop("duplicate", post_id, kept.id)
            continue
        first[key] = Post(post_id, path, labels=labels, key=key)
    return Source("clipart", list(first.values()), read, unlabelled=True)
