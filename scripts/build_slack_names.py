"""Regenerate service/slack/names.json: each emoji's Slack reaction name.

Slack names its emojis by the short names of iamcal's emoji-data, which the
``emoji-datasource-*`` npm packages ship as ``emoji.json`` (``make npm-emoji`` unpacks them
into ``data/npm/<vendor>/package/``). Every emoji there is written under its fully-qualified
spelling, the one the model's vocabularies use (``emojinet.vocab.normalize_emoji``), with its
first short name (``cat2`` for 🐈, ``cat`` for 🐱). Skin-tone variants are left out: the model
never suggests them.

    python scripts/build_slack_names.py [--source data/npm/apple/package/emoji.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from emojinet.vocab import normalize_emoji

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "data" / "npm" / "apple" / "package" / "emoji.json"
OUT = REPO / "service" / "slack" / "names.json"


def _chars(codepoints: str) -> str:
    return "".join(chr(int(c, 16)) for c in codepoints.split("-"))


def build(source: Path) -> dict[str, str]:
    """``{emoji: slack short name}``, sorted by emoji."""
    names: dict[str, str] = {}
    for row in json.loads(source.read_text(encoding="utf-8")):
        emoji = normalize_emoji(_chars(row["unified"])) or _chars(row["unified"])
        names.setdefault(emoji, row["short_name"])
    return dict(sorted(names.items()))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--source", type=Path, default=SOURCE)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    names = build(args.source)
    args.out.write_text(json.dumps(names, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    print(f"wrote {len(names)} names to {args.out}")


if __name__ == "__main__":
    main()
