"""Slack's reaction name for an emoji (``🐈`` → ``cat2``), from ``names.json``.

The table is Slack's own naming (iamcal's emoji-data, shipped by the ``emoji-datasource`` npm
packages), rebuilt by ``scripts/build_slack_names.py``. Emojis newer than that data have no name
Slack would accept; they are skipped, never guessed.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

__all__ = ["reaction_name"]

NAMES_FILE = Path(__file__).with_name("names.json")


@cache
def _names() -> dict[str, str]:
    names: dict[str, str] = json.loads(NAMES_FILE.read_text(encoding="utf-8"))
    return names


def reaction_name(emoji: str) -> str | None:
    """The name ``reactions.add`` takes for ``emoji``, or None when Slack has none."""
    names = _names()
    return names.get(emoji) or names.get(emoji.replace("\ufe0f", ""))
