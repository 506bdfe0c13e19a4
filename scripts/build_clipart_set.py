"""Build the labelled clip-art development set from Debian's ``openclipart-png``.

    python scripts/build_clipart_set.py [--root /usr/share/openclipart/png] [--out PATH]

Each picture's file name is split into words (``_ - .``, digits, camelCase) and the words are
matched, longest phrase first, against the emoji names of the ``emoji`` package (CLDR names,
GitHub aliases, Italian/French/Spanish names) and a short reviewed table of synonyms and
folder senses (``training/names.py``, ``training/name_tables.py``; the tree's own tables,
shared with the weak labeller that makes training data, are in ``training/clipart.py``).
Words after an author's name or a preposition ("owl on branch") only qualify the picture and
are not matched. This labeller is strict: a picture is kept when its words name exactly one
emoji-able thing; it lists the emojis a person would accept for it, most fitting first.
Non-depiction folders are skipped, byte-identical copies are kept once, and at most
``MAX_PER_EMOJI`` pictures share a first emoji (``MAX_FLAGS`` for all flags together), chosen
with a seeded RNG. Writes ``benchmarks/sets/openclipart.json``: a list of
``{file, accept, category, words}`` sorted by file; the output depends only on the installed
package and ``emoji==2.16.0``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from collections import defaultdict
from pathlib import Path

from training.clipart import DROP_NAMES, FILE_LABELS, ROOT, size_problem, skipped_names
from training.name_tables import CONJUNCTIONS, FILLER, VETO
from training.names import (
    Lexicon,
    Match,
    build_lexicon,
    is_flag,
    match_words,
    parse_emojis,
    tokenise,
    under,
)

__all__ = ["ROOT", "build_lexicon", "collect", "label", "tokenise"]

OUT = Path(__file__).resolve().parents[1] / "benchmarks" / "sets" / "openclipart.json"
MAX_PER_EMOJI = 12
MAX_FLAGS = 36
SEED = 20240611


def _words(text: str, sep: str | None = None) -> list[str]:
    """Split a table written as one string."""
    return text.split(sep)


# Folders where every picture shows the same thing: used when no word matched.
FOLDER_DEFAULTS = {
    "animals/birds/penguin": "🐧",
    "animals/dinosaurs": "🦕 🦖",
    "animals/mammals/bears": "🐻",
    "animals/mammals/dogs": "🐕 🐶",
    "animals/mammals/housecats": "🐈 🐱",
    "buildings/homes": "🏠 🏡",
    "transportation/vehicles/hummers": "🚙",
}

# Related emojis accepted after the first one of a group that is matched.
GROUPS = _words("🍎 🍏|🐇 🐰|🫍 🐋|📖 📕 📗 📘 📙 📚|☘️ 🍀|❤️ ♥️|📫 📪 📬 📭|🐪 🐫|🦅 🐦|🦉 🐦", "|")
GROUPS += _words("🐓 🐔|🐁 🐭 🐀", "|")


def label(rel_path: str, lexicon: Lexicon) -> Match | None:
    """The one thing a picture's path names, or None when it names none or several."""
    if rel_path in FILE_LABELS:
        emojis = parse_emojis(FILE_LABELS[rel_path])
        return Match(("(by eye)",), emojis) if emojis else None
    if rel_path.rsplit("/", 1)[-1] in DROP_NAMES:
        return None
    folder, _, name = rel_path.rpartition("/")
    tokens = tokenise(name.removesuffix(".png"))
    matches, unmatched = match_words(tokens, lexicon, folder)
    if "/flags" not in f"/{folder}":  # a country's name elsewhere names a map, not a flag
        matches = [m for m in matches if not is_flag(m.emojis[0])]
    if any(m.emojis == VETO for m in matches) or CONJUNCTIONS & set(unmatched):
        return None  # vetoed, or "x and y": several things
    if not matches:
        for prefix, default in FOLDER_DEFAULTS.items():
            if under(folder, prefix):
                return Match(tuple(tokenise(folder.rsplit("/", 1)[-1])), parse_emojis(default))
        return None
    accept = list(matches[0].emojis)
    for group in map(parse_emojis, GROUPS):
        if accept[0] == group[0]:
            accept += [e for e in group if e not in accept]
    if any(m.emojis[0] not in accept for m in matches[1:]):
        return None
    if is_flag(accept[0]) and set(unmatched) - FILLER:
        return None  # a flag's file name must be the place's whole name
    words = tuple(w for m in matches for w in m.words)
    return Match(words, tuple(accept))


def collect(root: Path) -> list[dict[str, object]]:
    """Label every picture under root, drop copies and specks, cap each first emoji."""
    lexicon = build_lexicon()
    skipped = skipped_names(root)
    seen: set[str] = set()
    by_key: dict[str, list[dict[str, object]]] = defaultdict(list)
    for path in sorted(root.rglob("*.png")):
        rel = path.relative_to(root).as_posix()
        if path.name in skipped:
            continue
        found = label(rel, lexicon)
        if found is None or size_problem(path) is not None:
            continue
        digest = hashlib.sha1(path.read_bytes()).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        first = found.emojis[0]
        by_key["flags" if is_flag(first) else first].append(
            {
                "file": str(path),
                "accept": list(found.emojis),
                "category": rel.split("/", 1)[0],
                "words": " ".join(found.words),
            }
        )
    chosen: list[dict[str, object]] = []
    for key, entries in sorted(by_key.items()):
        cap = MAX_FLAGS if key == "flags" else MAX_PER_EMOJI
        if len(entries) > cap:
            entries = random.Random(f"{SEED}:{key}").sample(entries, cap)
        chosen += entries
    return sorted(chosen, key=lambda e: str(e["file"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="openclipart-png's PNG folder")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if not args.root.is_dir():
        parser.error(f"{args.root} not found: apt-get install openclipart-png")
    entries = collect(args.root)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(entries, ensure_ascii=False, indent=1)
    args.out.write_text(text + "\n", encoding="utf-8")
    emojis = {e for entry in entries for e in entry["accept"]}  # type: ignore[attr-defined]
    categories = {entry["category"] for entry in entries}
    print(f"{len(entries)} pictures, {len(emojis)} emojis, {len(categories)} categories")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
