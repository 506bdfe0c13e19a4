"""Emojis and hashtags from post captions (no torch). Uses the ``emoji`` package's parser."""

from __future__ import annotations

import re
import unicodedata

import emoji as emoji_lib

from emojinet.vocab import normalize_emoji

__all__ = ["extract_emojis", "extract_hashtags"]

# A hashtag starts with # not preceded by a word character, & (HTML entities) or another #.
_HASH = re.compile(r"(?<![\w&#])[#＃]")


def _is_tag_char(ch: str) -> bool:
    # Letters, digits, combining marks (Thai vowels and tone marks, Devanagari signs …) and "_".
    return ch == "_" or unicodedata.category(ch)[0] in "LNM"


def extract_emojis(text: str, *, fold_skin_tone: bool = True) -> list[str]:
    """The distinct emojis of ``text`` in order of first appearance, fully qualified.

    ZWJ sequences (``👨‍👩‍👧``) stay one emoji; variation selectors are normalised (``❤`` → ``❤️``);
    with ``fold_skin_tone`` a toned emoji counts as its base (``👍🏽`` → ``👍``). Lone skin-tone
    modifiers and components the emoji data marks as non-emoji are dropped.
    """
    out: list[str] = []
    for match in emoji_lib.emoji_list(text):
        e = normalize_emoji(match["emoji"], fold_skin_tone=fold_skin_tone)
        if e is None and not fold_skin_tone:
            e = normalize_emoji(match["emoji"], fold_skin_tone=True)
        if e is not None and e not in out:
            out.append(e)
    return out


def extract_hashtags(text: str) -> list[str]:
    """Hashtags of ``text`` without the ``#``, in order (``"#Cat #dog"`` → ``["Cat", "dog"]``)."""
    tags: list[str] = []
    for match in _HASH.finditer(text):
        end = match.end()
        while end < len(text) and _is_tag_char(text[end]):
            end += 1
        tag = text[match.end() : end]
        if tag and not tag.isdigit():  # "#1" is not a hashtag
            tags.append(tag)
    return tags
