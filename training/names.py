"""Picture names → emojis: tokenising a picture's path, the lexicon of emoji names it is matched
against and longest-first phrase matching; and :func:`name_labels`, the weak labeller.

The lexicon holds the ``emoji`` package's CLDR names and aliases (English, plus other languages
it has), the reviewed tables of :mod:`training.name_tables` and, for the weak labeller, the CLDR
keywords of Debian's ``unicode-cldr-core`` when it is installed. Two labellers use it: the strict
one of ``scripts/build_clipart_set.py`` (one thing per picture, for the hand-checked benchmark
set) and :func:`name_labels`, which gives a picture every emoji its path names, like hashtags:
``animals/birds/owl_on_branch.png`` → 🦉 from the file name, 🐦 from the folder.
"""

from __future__ import annotations

import re
import unicodedata
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import emoji

from training.name_tables import (
    AUTHORS,
    CATEGORY_FOLDERS,
    CONJUNCTIONS,
    FALSE_FRIENDS,
    FILLER,
    FOLDER_SENSES,
    LANGUAGES,
    PREPOSITIONS,
    STOP_AT,
    STOPWORDS,
    SYNONYMS_TEXT,
    VETO,
    WEAK_LANGUAGES,
    WEAK_SYNONYMS_TEXT,
)

__all__ = [
    "CLDR_DIR",
    "Lexicon",
    "Match",
    "build_lexicon",
    "cldr_keywords",
    "is_flag",
    "match_words",
    "name_labels",
    "parse_emojis",
    "synonyms",
    "tokenise",
    "under",
    "weak_lexicon",
]

CLDR_DIR = Path("/usr/share/unicode/cldr/common")
MAX_KEYWORD_EMOJIS = 2  # a CLDR keyword shared by more emojis ("bird", "food") names none
_FQ = emoji.STATUS["fully_qualified"]
_MODIFIERS = re.compile("[\U0001f3fb-\U0001f3ff]")
_VS16 = "\ufe0f"
_NEVER_ALONE = STOPWORDS | STOP_AT | CONJUNCTIONS

Lexicon = dict[tuple[str, ...], tuple[str, ...]]


@dataclass(frozen=True)
class Match:
    """A run of words and the emojis it names, most fitting first."""

    words: tuple[str, ...]
    emojis: tuple[str, ...]


def tokenise(text: str) -> list[str]:
    """Split on ``_ - .``, digits and camelCase; strip accents; lowercase."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = re.sub(r"([a-z])([A-Z])", r"\1 \2", text)
    return [w for w in re.split(r"[^a-z]+", text.lower()) if w]


def _name_words(name: str) -> tuple[str, ...] | None:
    """Words of an emoji name like ``:dog_face:``; None for names with digits."""
    if re.search(r"\d", name):
        return None
    words = tokenise(name.replace("’", "").replace("'", "").replace("&", " and "))
    return tuple(words) or None


def parse_emojis(emojis: str) -> tuple[str, ...]:
    """``"🐕 🐶"`` → ``("🐕", "🐶")``."""
    return tuple(emojis.split())


def synonyms(text: str = SYNONYMS_TEXT) -> Lexicon:
    """A reviewed table ``"words | words: emojis; ..."`` as word tuples → emojis (VETO: "!")."""
    table: Lexicon = {}
    for entry in re.split(r"[;\n]", text.strip()):
        keys, _, value = entry.rpartition(":")
        for key in keys.split("|"):
            table[tuple(key.split())] = parse_emojis(value)
    return table


def build_lexicon(languages: tuple[str, ...] = LANGUAGES) -> Lexicon:
    """Map word tuples to emojis: emoji names and aliases, then the reviewed synonyms."""
    for language in languages:
        emoji.config.load_language(language)
    ranked: dict[tuple[str, ...], dict[str, int]] = defaultdict(dict)
    english: dict[tuple[str, ...], str] = {}
    for char, data in emoji.EMOJI_DATA.items():
        if data["status"] != _FQ or _MODIFIERS.search(char):
            continue
        names = [(0, data["en"])] + [(1, a) for a in data.get("alias", [])]
        names += [(3, data[lang]) for lang in languages if lang in data]
        for rank, name in names:
            words = _name_words(name)
            if words and (len(words) > 1 or len(words[0]) > 2):
                ranked[words][char] = min(rank, ranked[words].get(char, rank))
                if rank == 0:
                    english[words] = char
    for words, char in english.items():  # "dog face" also answers "dog"; "oncoming bus" "bus"
        base = words[:-1] if words[-1] == "face" else words[1:] if words[0] == "oncoming" else ()
        if base in english:
            ranked[base].setdefault(char, 2)
    lexicon = {
        words: tuple(sorted(chars, key=lambda c: chars[c]))
        for words, chars in ranked.items()
        if not (len(words) == 1 and words[0] in STOPWORDS | STOP_AT)
    }
    lexicon.update(synonyms())
    return lexicon


@cache
def cldr_keywords(languages: tuple[str, ...] = ("en",)) -> Lexicon:
    """CLDR keywords (Debian ``unicode-cldr-core``) that name at most two emojis, as word
    tuples → emojis; empty when CLDR is not installed. English only by default: in other
    languages a general word ("Symbol") is often the keyword of just one or two emojis."""
    found: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for lang in languages:
        for name in (f"annotations/{lang}.xml", f"annotationsDerived/{lang}.xml"):
            path = CLDR_DIR / name
            if not path.is_file():
                continue
            for node in ET.parse(path).getroot().iter("annotation"):
                char = _qualified(node.get("cp", ""))
                if node.get("type") == "tts" or not node.text or char is None:
                    continue
                for keyword in node.text.split("|"):
                    words = _name_words(keyword.strip())
                    if words and (len(words) > 1 or len(words[0]) > 2) and char not in found[words]:
                        found[words].append(char)
    return {w: tuple(c) for w, c in found.items() if len(c) <= MAX_KEYWORD_EMOJIS}


def _qualified(cp: str) -> str | None:
    """The fully-qualified, tone-free form of a CLDR code point string, or None."""
    for char in (cp, cp + _VS16, cp.replace(_VS16, "")):
        data = emoji.EMOJI_DATA.get(char)
        if data is not None and data["status"] == _FQ and not _MODIFIERS.search(char):
            return char
    return None


@cache
def weak_lexicon() -> Lexicon:
    """The weak labeller's lexicon: CLDR keywords, then names in more languages, then the
    reviewed synonyms (later entries win); false friends removed."""
    lexicon = dict(cldr_keywords())
    lexicon.update(build_lexicon(WEAK_LANGUAGES))
    lexicon.update(synonyms(WEAK_SYNONYMS_TEXT))
    for word in FALSE_FRIENDS:
        for form in _singulars(word):
            lexicon.pop((form,), None)
    return {w: e for w, e in lexicon.items() if not (len(w) == 1 and w[0] in _NEVER_ALONE)}


def _singulars(word: str) -> list[str]:
    forms = [word]
    if word.endswith("ies"):
        forms.append(word[:-3] + "y")
    if word.endswith("es"):
        forms.append(word[:-2])
    if word.endswith("s") and not word.endswith("ss"):
        forms.append(word[:-1])
    return forms


def under(folder: str, prefix: str) -> bool:
    """``folder`` is ``prefix`` or inside it."""
    return folder == prefix or folder.startswith(prefix + "/")


def _sense(word: str, folder: str) -> tuple[str, ...] | None:
    senses = FOLDER_SENSES.get(word, {})
    return next((parse_emojis(e) for prefix, e in senses.items() if under(folder, prefix)), None)


def match_words(
    tokens: list[str], lexicon: Lexicon, folder: str, stop_at: frozenset[str] = STOP_AT
) -> tuple[list[Match], list[str]]:
    """Greedy longest matches (up to four words) of the tokens against the lexicon.

    Matching stops at the first word of ``stop_at`` that is not inside a phrase. Returns the
    matches and the words read before stopping that no match covers.
    """
    matches: list[Match] = []
    unmatched: list[str] = []
    i = 0
    while i < len(tokens):
        found = None
        for n in range(min(4, len(tokens) - i), 0, -1):
            head, last = tuple(tokens[i : i + n - 1]), tokens[i + n - 1]
            for form in _singulars(last):
                found = lexicon.get((*head, form)) or (_sense(form, folder) if n == 1 else None)
                if found:
                    break
            if found:
                matches.append(Match(tuple(tokens[i : i + n]), found))
                i += n
                break
        if not found:
            if tokens[i] in stop_at:
                break
            unmatched.append(tokens[i])
            i += 1
    return matches, unmatched


def is_flag(char: str) -> bool:
    """A country or region flag (not the pirate or rainbow flag)."""
    if "\u200d" in char:
        return False
    return char.startswith("🏴") or all(0x1F1E6 <= ord(c) <= 0x1F1FF for c in char)


def name_labels(rel_path: str, lexicon: Lexicon | None = None) -> Match:
    """Every emoji a picture's relative path names: its file name's words (up to an author's
    name), then each folder's, nearest first. ``Match.emojis`` is empty when it names none.

    Category folders ("computer") and "x and y" folders name nothing; a vetoed phrase in the
    file name makes the whole file name name nothing ("signalflag_golf" is no ⛳). A country
    flag needs a ``flags`` folder and a file name that is the place's whole name: a country's
    folder of regional flags does not label them with the country's flag.
    """
    lexicon = weak_lexicon() if lexicon is None else lexicon
    folder, _, name = rel_path.rpartition("/")
    own, unmatched = match_words(tokenise(Path(name).stem), lexicon, folder, AUTHORS)
    if any(m.emojis == VETO for m in own):
        own = []
    whole_place = not set(unmatched) - FILLER - PREPOSITIONS and "/flags" in f"/{folder}"
    found = [m for m in own if whole_place or not is_flag(m.emojis[0])]
    parts = folder.split("/") if folder else []
    for i in range(len(parts), 0, -1):
        tokens = tokenise(parts[i - 1])
        if parts[i - 1] in CATEGORY_FOLDERS or CONJUNCTIONS & set(tokens):
            continue
        matches = match_words(tokens, lexicon, "/".join(parts[:i]), frozenset())[0]
        found += [m for m in matches if m.emojis != VETO and not is_flag(m.emojis[0])]
    words: list[str] = []
    emojis: list[str] = []
    for m in found:
        new = [e for e in m.emojis if e not in emojis]
        if new:
            emojis += new
            words += [w for w in m.words if w not in words]
    return Match(tuple(words), tuple(emojis))
