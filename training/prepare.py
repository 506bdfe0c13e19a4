"""Build a training data set from posts (:mod:`training.posts` reads them): the filters,
the vocabulary, seeded splits and a report → a data set folder; and :func:`read_dataset`.

Output folder layout::

    DIR/manifest.jsonl    one {"id", "image", "emojis", "split"} per kept example
    DIR/vocab.json        the vocabulary (emojis in order, training-split counts)
    DIR/label_counts.json per-split example counts per emoji
    DIR/report.json       what was read, kept and dropped (with reasons and examples)

``image`` paths are absolute or relative to DIR.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from emojinet.vocab import Vocabulary, normalize_emoji
from training.captions import extract_emojis, extract_hashtags
from training.errors import ManifestError
from training.posts import Post

__all__ = [
    "DatasetRecord",
    "FilterConfig",
    "Post",
    "PrepareReport",
    "assign_split",
    "filter_posts",
    "read_dataset",
    "write_dataset",
]

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
_MAX_EXAMPLES = 20  # dropped ids listed per reason in the report


@dataclass
class DatasetRecord:
    id: str
    image: str
    emojis: list[str]
    split: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


@dataclass(frozen=True)
class FilterConfig:
    """The seed design's post filters. ``None`` / 0 switches a filter off."""

    max_hashtags: int | None = 5
    require_emoji_in_caption: bool = True
    cap_per_emoji: int | None = 3000
    fold_skin_tone: bool = True
    top_n: int = 100
    min_count: int = 1
    check_images: bool = True


@dataclass
class PrepareReport:
    read: int = 0
    kept: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    splits: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str, post_id: str, detail: str = "") -> None:
        self.dropped[reason] += 1
        ex = self.examples.setdefault(reason, [])
        if len(ex) < _MAX_EXAMPLES:
            ex.append(f"{post_id}: {detail}" if detail else post_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "kept": self.kept,
            "dropped": dict(sorted(self.dropped.items())),
            "examples": self.examples,
            "splits": self.splits,
        }

    def summary(self) -> str:
        lines = [f"read {self.read} posts, kept {self.kept}"]
        lines += [f"  dropped {n:6d}  {reason}" for reason, n in sorted(self.dropped.items())]
        lines.append("  splits: " + ", ".join(f"{k} {v}" for k, v in self.splits.items()))
        return "\n".join(lines)


# -- filtering --------------------------------------------------------------------------------


def _stable_hash(seed: int, post_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{post_id}".encode()).digest()[:8], "big")


def assign_split(post_id: str, seed: int, val_fraction: float, test_fraction: float) -> str:
    """Deterministic split from a hash of (seed, id): a post always lands in the same split."""
    u = _stable_hash(seed, post_id) / 2**64
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


def _image_problem(path: Path) -> str | None:
    if not path.is_file():
        return "missing_image"
    try:
        with Image.open(path) as img:
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return "unreadable_image"
    return None


def filter_posts(
    posts: Iterable[Post],
    cfg: FilterConfig,
    *,
    vocab: Vocabulary | None = None,
    seed: int = 0,
    report: PrepareReport | None = None,
) -> tuple[list[Post], Vocabulary]:
    """Apply the filters in order and pick the vocabulary; returns kept posts and the vocabulary.

    1. ``too_many_hashtags``: more than ``max_hashtags`` hashtags (from the manifest, else parsed).
    2. ``no_emoji``: the caption has no emoji (posts from labelled folders are exempt).
    3. ``emoji_not_in_caption``: the post's collection ``emoji`` is not in its caption.
    4. ``not_in_vocabulary``: none of its emojis is in the vocabulary (given, or the top-N).
    5. ``cap_per_emoji``: all of its emojis already have ``cap_per_emoji`` posts (posts are
       visited in a seeded order, so which ones are capped is deterministic).
    6. ``missing_image`` / ``unreadable_image``: the image file is absent or not decodable.
    """
    report = report if report is not None else PrepareReport()
    candidates: list[Post] = []
    for original in posts:
        post = replace(original, labels=list(original.labels))  # never mutate the caller's posts
        report.read += 1
        if not post.labels:  # labels come from the caption
            tags = post.hashtags if post.hashtags is not None else extract_hashtags(post.caption)
            if cfg.max_hashtags is not None and len(tags) > cfg.max_hashtags:
                report.drop("too_many_hashtags", post.id, f"{len(tags)} > {cfg.max_hashtags}")
                continue
            found = extract_emojis(post.caption, fold_skin_tone=cfg.fold_skin_tone)
            if not found:
                report.drop("no_emoji", post.id)
                continue
            if cfg.require_emoji_in_caption and post.emoji is not None:
                want = normalize_emoji(post.emoji, fold_skin_tone=cfg.fold_skin_tone)
                if want not in found:
                    report.drop("emoji_not_in_caption", post.id, post.emoji)
                    continue
            post.labels = found
        candidates.append(post)
    if vocab is None:
        counts = Counter(e for p in candidates for e in p.labels)
        top = [(e, n) for e, n in counts.most_common() if n >= cfg.min_count][: cfg.top_n]
        if not top:
            raise ManifestError(
                f"no emoji is left after filtering {report.read} posts "
                f"(dropped: {dict(report.dropped)}): check the captions and the filter flags"
            )
        vocab = Vocabulary(tuple(e for e, _ in top), tuple(n for _, n in top))
    in_vocab: list[Post] = []
    for post in candidates:
        labels = [e for e in post.labels if e in vocab]
        if not labels:
            report.drop("not_in_vocabulary", post.id, "".join(post.labels))
            continue
        post.labels = labels
        in_vocab.append(post)
    in_vocab.sort(key=lambda p: _stable_hash(seed, p.id))
    per_emoji: Counter[str] = Counter()
    kept: list[Post] = []
    for post in in_vocab:
        if cfg.cap_per_emoji and all(per_emoji[e] >= cfg.cap_per_emoji for e in post.labels):
            report.drop("cap_per_emoji", post.id, "".join(post.labels))
            continue
        if cfg.check_images:
            problem = _image_problem(post.image)
            if problem is not None:
                log.warning("skipping %s: %s (%s)", post.id, problem.replace("_", " "), post.image)
                report.drop(problem, post.id, str(post.image))
                continue
        per_emoji.update(post.labels)
        kept.append(post)
    report.kept = len(kept)
    return kept, vocab


# -- writing and reading data sets ------------------------------------------------------------


def write_dataset(
    out: str | Path,
    posts: Sequence[Post],
    vocab: Vocabulary,
    report: PrepareReport,
    *,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    splits: dict[str, str] | None = None,
) -> list[DatasetRecord]:
    """Write manifest, vocabulary (with training counts), label counts and report to ``out``.

    ``splits`` forces the split of some ids (Fashion-MNIST's official test set); others are hashed.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records: list[DatasetRecord] = []
    for post in sorted(posts, key=lambda p: p.id):
        split = (splits or {}).get(post.id) or assign_split(
            post.id, seed, val_fraction, test_fraction
        )
        image = post.image.resolve()
        try:
            rel = image.relative_to(out.resolve()).as_posix()
        except ValueError:
            rel = str(image)
        records.append(DatasetRecord(post.id, rel, list(post.labels), split))
    counts = {s: Counter(e for r in records if r.split == s for e in r.emojis) for s in SPLITS}
    vocab = Vocabulary(vocab.emojis, tuple(counts["train"].get(e, 0) for e in vocab.emojis))
    report.splits = {s: sum(1 for r in records if r.split == s) for s in SPLITS}
    tmp = out / "manifest.jsonl.tmp"
    with tmp.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(r.to_json() + "\n")
    os.replace(tmp, out / "manifest.jsonl")
    vocab.save(out / "vocab.json")
    label_counts = {s: {e: counts[s].get(e, 0) for e in vocab.emojis} for s in SPLITS}
    (out / "label_counts.json").write_text(
        json.dumps(label_counts, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    (out / "report.json").write_text(
        json.dumps(report.to_dict(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    return records


def read_dataset(root: str | Path) -> tuple[list[DatasetRecord], Vocabulary]:
    """Read a prepared data set folder (``manifest.jsonl`` + ``vocab.json``)."""
    root = Path(root)
    manifest, vocab_file = root / "manifest.jsonl", root / "vocab.json"
    for p in (manifest, vocab_file):
        if not p.is_file():
            raise ManifestError(
                f"{root} is not a prepared data set: {p.name} is missing (run `emojinet prepare`)"
            )
    vocab = Vocabulary.from_file(vocab_file)
    records: list[DatasetRecord] = []
    with manifest.open(encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            try:
                d = json.loads(line)
                records.append(
                    DatasetRecord(str(d["id"]), str(d["image"]), list(d["emojis"]), str(d["split"]))
                )
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ManifestError(f"{manifest}:{i}: bad record ({exc})") from exc
    return records, vocab
