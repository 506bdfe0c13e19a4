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
    "caption_labels",
    "filter_posts",
    "image_problem",
    "read_dataset",
    "stable_hash",
    "write_dataset",
]

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
_MAX_EXAMPLES = 20  # dropped ids listed per reason in the report


@dataclass
class DatasetRecord:
    id: str
    image: str
    emojis: list[str]  # empty: an unlabelled picture (for distillation), never a supervised one
    split: str
    source: str = ""

    def to_json(self) -> str:
        d = asdict(self)
        if not self.source:
            del d["source"]
        return json.dumps(d, ensure_ascii=False)


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
    """What was read, kept (``unlabelled`` of them with no emoji) and dropped, and why; the
    same per source in ``sources`` when several sources were mixed."""

    read: int = 0
    kept: int = 0
    unlabelled: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    splits: dict[str, int] = field(default_factory=dict)
    sources: dict[str, PrepareReport] = field(default_factory=dict)

    def source(self, name: str) -> PrepareReport:
        """The report of one source (created empty on first use)."""
        return self.sources.setdefault(name, PrepareReport())

    def drop(self, reason: str, post_id: str, detail: str = "", *, source: str = "") -> None:
        for report in (self, self.source(source)) if source else (self,):
            report.dropped[reason] += 1
            ex = report.examples.setdefault(reason, [])
            if len(ex) < _MAX_EXAMPLES:
                ex.append(f"{post_id}: {detail}" if detail else post_id)

    def add_source(self, name: str, read: PrepareReport) -> None:
        """Take over what reading a source counted (read, dropped) as its report."""
        self.sources[name] = read
        self.read += read.read
        self.dropped.update(read.dropped)
        for reason, ex in read.examples.items():
            mine = self.examples.setdefault(reason, [])
            mine += ex[: _MAX_EXAMPLES - len(mine)]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"read": self.read, "kept": self.kept}
        if self.unlabelled:
            d["unlabelled"] = self.unlabelled
        d |= {
            "dropped": dict(sorted(self.dropped.items())),
            "examples": self.examples,
            "splits": self.splits,
        }
        if self.sources:
            d["sources"] = {name: r.to_dict() for name, r in self.sources.items()}
        return d

    def summary(self) -> str:
        unlabelled = f" ({self.unlabelled} unlabelled)" if self.unlabelled else ""
        lines = [f"read {self.read} posts, kept {self.kept}{unlabelled}"]
        lines += [f"  dropped {n:6d}  {reason}" for reason, n in sorted(self.dropped.items())]
        lines.append("  splits: " + ", ".join(f"{k} {v}" for k, v in self.splits.items()))
        for name, r in self.sources.items() if len(self.sources) > 1 else ():
            why = ", ".join(f"{reason} {n}" for reason, n in sorted(r.dropped.items()))
            unlabelled = f" ({r.unlabelled} unlabelled)" if r.unlabelled else ""
            lines.append(f"  {name}: read {r.read}, kept {r.kept}{unlabelled}")
            lines.append("    splits: " + ", ".join(f"{k} {v}" for k, v in r.splits.items()))
            if why:
                lines.append(f"    dropped: {why}")
        return "\n".join(lines)


# -- filtering --------------------------------------------------------------------------------


def stable_hash(seed: int, post_id: str) -> int:
    """A seeded 64-bit hash of an id: the order of capping and the split rule use it."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{post_id}".encode()).digest()[:8], "big")


def assign_split(post_id: str, seed: int, val_fraction: float, test_fraction: float) -> str:
    """Deterministic split from a hash of (seed, id): a post always lands in the same split."""
    u = stable_hash(seed, post_id) / 2**64
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


def image_problem(path: Path) -> str | None:
    """``missing_image`` / ``unreadable_image``, or None for a decodable image file."""
    if not path.is_file():
        return "missing_image"
    try:
        with Image.open(path) as img:
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return "unreadable_image"
    return None


def caption_labels(post: Post, cfg: FilterConfig, report: PrepareReport) -> list[str] | None:
    """The emojis of a post's caption, or None after reporting why it is dropped (filters 1-3
    of :func:`filter_posts`)."""
    tags = post.hashtags if post.hashtags is not None else extract_hashtags(post.caption)
    if cfg.max_hashtags is not None and len(tags) > cfg.max_hashtags:
        detail = f"{len(tags)} > {cfg.max_hashtags}"
        report.drop("too_many_hashtags", post.id, detail, source=post.source)
        return None
    found = extract_emojis(post.caption, fold_skin_tone=cfg.fold_skin_tone)
    if not found:
        report.drop("no_emoji", post.id, source=post.source)
        return None
    if cfg.require_emoji_in_caption and post.emoji is not None:
        want = normalize_emoji(post.emoji, fold_skin_tone=cfg.fold_skin_tone)
        if want not in found:
            report.drop("emoji_not_in_caption", post.id, post.emoji, source=post.source)
            return None
    return found


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
            found = caption_labels(post, cfg, report)
            if found is None:
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
    in_vocab.sort(key=lambda p: stable_hash(seed, p.id))
    per_emoji: Counter[str] = Counter()
    kept: list[Post] = []
    for post in in_vocab:
        if cfg.cap_per_emoji and all(per_emoji[e] >= cfg.cap_per_emoji for e in post.labels):
            report.drop("cap_per_emoji", post.id, "".join(post.labels))
            continue
        if cfg.check_images:
            problem = image_problem(post.image)
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

    ``splits`` (or a post's own ``split``) forces the split of some ids (Fashion-MNIST's
    official test set); others are hashed from the post's ``key`` (default: its id).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records: list[DatasetRecord] = []
    for post in sorted(posts, key=lambda p: p.id):
        split = (
            (splits or {}).get(post.id)
            or post.split
            or assign_split(post.key or post.id, seed, val_fraction, test_fraction)
        )
        image = post.image.resolve()
        try:
            rel = image.relative_to(out.resolve()).as_posix()
        except ValueError:
            rel = str(image)
        records.append(DatasetRecord(post.id, rel, list(post.labels), split, post.source))
    counts = {s: Counter(e for r in records if r.split == s for e in r.emojis) for s in SPLITS}
    vocab = Vocabulary(vocab.emojis, tuple(counts["train"].get(e, 0) for e in vocab.emojis))
    report.splits = {s: sum(1 for r in records if r.split == s) for s in SPLITS}
    for name, sub in report.sources.items():
        sub.splits = {
            s: sum(1 for r in records if r.split == s and r.source == name) for s in SPLITS
        }
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
                emojis = d["emojis"]
                if not isinstance(emojis, list):
                    raise TypeError(f"emojis must be a list, not {type(emojis).__name__}")
                record = DatasetRecord(
                    str(d["id"]), str(d["image"]), emojis, str(d["split"]), str(d.get("source", ""))
                )
                records.append(record)
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ManifestError(f"{manifest}:{i}: bad record ({exc})") from exc
    return records, vocab
