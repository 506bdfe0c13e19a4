"""Extract real tweet texts from Debian's r-cran-rtweet test fixtures into a JSONL file.

    apt-get download r-cran-rtweet && dpkg-deb -x r-cran-rtweet_*.deb /tmp/rtweet
    python scripts/extract_rtweet_captions.py \
        /tmp/rtweet/usr/share/doc/r-cran-rtweet/tests/fixtures \
        tests/data/rtweet_captions.jsonl

Each recorded HTTP response body is parsed as JSON and every tweet object in it (statuses,
timelines, search results, embedded retweets and quotes) is collected once by id. The output keeps
the id, the full text, the hashtags Twitter itself parsed (``entities.hashtags``, a reference for
our own hashtag parser), whether the tweet is a retweet, and the fixture file it came from. All
tweets with an emoji are kept, plus the first ``--without-emoji`` tweets without one.
"""

from __future__ import annotations

import argparse
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import emoji


def _bodies(path: Path) -> Iterator[Any]:
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    try:
        cassette = json.loads(raw)
    except json.JSONDecodeError:
        return
    for interaction in cassette.get("http_interactions", []):
        body = interaction.get("response", {}).get("body", {}).get("string", "")
        if not body:
            continue
        try:
            yield json.loads(body)
        except json.JSONDecodeError:
            continue


def _tweets(obj: Any) -> Iterator[dict[str, Any]]:
    if isinstance(obj, dict):
        text = obj.get("full_text") or obj.get("text")
        if "id_str" in obj and isinstance(text, str) and "entities" in obj:
            yield obj
        for value in obj.values():
            yield from _tweets(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _tweets(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("fixtures", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--without-emoji", type=int, default=100)
    args = parser.parse_args()

    seen: set[str] = set()
    with_emoji: list[dict[str, Any]] = []
    without: list[dict[str, Any]] = []
    for path in sorted(args.fixtures.glob("*.json*")):
        for body in _bodies(path):
            for tweet in _tweets(body):
                if tweet["id_str"] in seen:
                    continue
                seen.add(tweet["id_str"])
                text = tweet.get("full_text") or tweet["text"]
                row = {
                    "id": tweet["id_str"],
                    "caption": text,
                    "hashtags": [h["text"] for h in tweet["entities"].get("hashtags", [])],
                    "retweet": "retweeted_status" in tweet or text.startswith("RT @"),
                    "fixture": path.name,
                }
                (with_emoji if emoji.emoji_count(text) else without).append(row)
    rows = with_emoji + without[: args.without_emoji]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(
        f"{len(seen)} tweets, {len(with_emoji)} with emojis; wrote {len(rows)} rows to {args.out}"
    )


if __name__ == "__main__":
    main()
