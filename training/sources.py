"""Several picture sources → the posts of one data set (:func:`mix_sources`).

Per source: the caption filters (captions) or the labels it comes with (picture names, labelled
folders, Fashion-MNIST, the emoji pictures); the holdout (:func:`read_holdout`: its pictures,
and byte-identical copies of them in any source, are test only); splits, forced or hashed from
the post's key (a content digest where the source gives one); the vocabulary (given, or the
top-N emojis by evidence in train); per-emoji caps in train; image checks; and one report with
a part per source. :func:`training.prepare.write_dataset` then writes the data set.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from emojinet.vocab import Vocabulary, normalize_emoji
from training.errors import DataError, ManifestError
from training.posts import Post
from training.prepare import (
    FilterConfig,
    PrepareReport,
    assign_split,
    caption_labels,
    image_problem,
    stable_hash,
)
from training.suggestions import load_set

__all__ = [
    "MixConfig",
    "Source",
    "content_key",
    "mix_sources",
    "rank_vocabulary",
    "read_holdout",
    "split_caps",
]

log = logging.getLogger(__name__)


@dataclass
class Source:
    """The posts of one source, what reading it counted, and how its posts are treated."""

    name: str
    posts: list[Post]
    read: PrepareReport = field(default_factory=PrepareReport)  # read + dropped while reading
    captions: bool = False  # labels come from captions (the caption filters apply)
    evidence: bool = True  # counts towards the vocabulary's ranking (not the emoji pictures)
    capped: bool = True  # subject to the per-emoji cap in train
    may_test: bool = True  # hashed posts may land in test
    unlabelled: bool = False  # may stay in train with no emoji (clip art, for distillation)
    check_images: bool = True
    vocab: Vocabulary | None = None  # its own vocabulary, used when it is the only source

    @classmethod
    def of(cls, name: str, posts: list[Post], **kw: Any) -> Source:
        """A source whose reading dropped nothing: ``read`` is the number of posts."""
        return cls(name, posts, PrepareReport(read=len(posts)), **kw)


@dataclass(frozen=True)
class MixConfig:
    filters: FilterConfig = field(default_factory=FilterConfig)
    seed: int = 0
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    keep_unlabelled: bool = False


def content_key(path: Path) -> str:
    """The sha256 of a file's bytes: byte-identical copies share it."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_holdout(path: str | Path, *, name: str = "holdout") -> Source:
    """A labelled set (:func:`training.suggestions.load_set`, like
    ``benchmarks/sets/openclipart.json``): test pictures labelled with their accepted emojis.

    Raises:
        ManifestError: not such a list, or an ``accept`` entry that is not an emoji.
    """
    try:
        entries = load_set(path)
    except DataError as exc:
        raise ManifestError(f"cannot read the holdout: {exc}") from exc
    read = PrepareReport(read=len(entries))
    posts: list[Post] = []
    for i, entry in enumerate(entries):
        found = [normalize_emoji(e, fold_skin_tone=True) for e in entry.accept]
        labels = list(dict.fromkeys(e for e in found if e is not None))
        if None in found or not labels:
            raise ManifestError(
                f"{path}: entry {i} accepts {list(entry.accept)}: not all are emojis"
            )
        if not entry.path.is_file():
            read.drop("missing_image", str(entry.path))
            continue
        post = Post(f"{name}/{entry.path}", entry.path, labels=labels, split="test")
        post.key = content_key(entry.path)
        posts.append(post)
    return Source(name, posts, read, capped=False)


def rank_vocabulary(
    posts: Sequence[Post], evidence: set[str], *, top_n: int, min_count: int = 1
) -> Vocabulary:
    """The ``top_n`` emojis with at least ``min_count`` train posts, ranked by the train posts
    of the ``evidence`` sources (not the emoji pictures, which every emoji has), ties broken by
    the usage prior (:meth:`Vocabulary.all` counts), then by the emoji."""
    train = [p for p in posts if p.split == "train"]
    total = Counter(e for p in train for e in p.labels)
    proof = Counter(e for p in train if p.source in evidence for e in p.labels)
    prior = dict(zip(Vocabulary.all().emojis, Vocabulary.all().counts, strict=True))
    ranked = sorted(
        (e for e, n in total.items() if n >= min_count),
        key=lambda e: (-proof[e], -prior.get(e, 0), e),
    )
    if not ranked:
        raise ManifestError("no emoji is left in train: check the sources and the filter flags")
    return Vocabulary(tuple(ranked[:top_n]))


def _candidates(
    sources: Sequence[Source], cfg: MixConfig, report: PrepareReport, held: set[str]
) -> list[Post]:
    """Posts with their labels and splits; drops holdout copies and failed caption filters."""
    out: list[Post] = []
    seen: dict[str, str] = {}
    for src in sources:
        for original in src.posts:
            post = replace(original, labels=list(original.labels), source=src.name)
            if post.id in seen:
                raise ManifestError(
                    f"post id {post.id!r} is in both {seen[post.id]} and {src.name}: "
                    "give the posts of different sources different ids"
                )
            seen[post.id] = src.name
            if held and post.split != "test" and (post.key or content_key(post.image)) in held:
                report.drop("in_holdout", post.id, source=src.name)
                continue
            if src.captions and not post.labels:
                found = caption_labels(post, cfg.filters, report)
                if found is None:
                    continue
                post.labels = found
            if post.split is None:
                test = cfg.test_fraction if src.may_test else 0.0
                post.split = assign_split(post.key or post.id, cfg.seed, cfg.val_fraction, test)
            out.append(post)
    return out


def mix_sources(
    sources: Sequence[Source],
    cfg: MixConfig,
    *,
    vocab: Vocabulary | None = None,
    holdout: Source | None = None,
) -> tuple[list[Post], Vocabulary, PrepareReport]:
    """Filter, split and label the posts of every source; returns kept posts, vocabulary, report.

    Drop reasons besides the caption filters': ``in_holdout`` (a copy of a holdout picture),
    ``names_no_emoji`` (no emoji at all; kept unlabelled with ``keep_unlabelled`` where the
    source allows), ``not_in_vocabulary`` (likewise), ``cap_per_emoji`` (:func:`split_caps`;
    posts are visited in a seeded order; a post goes when all its emojis are at the cap),
    ``missing_image`` / ``unreadable_image``.
    """
    everything = [*sources, holdout] if holdout is not None else list(sources)
    report = PrepareReport()
    for src in everything:
        report.add_source(src.name, src.read)
    held = {p.key or content_key(p.image) for p in holdout.posts} if holdout else set()
    posts = _candidates(everything, cfg, report, held)
    if vocab is None and len(sources) == 1 and sources[0].vocab is not None:
        vocab = sources[0].vocab
    if vocab is None:
        evidence = {s.name for s in everything if s.evidence}
        if not posts:
            raise ManifestError(
                f"no emoji is left after filtering {report.read} posts "
                f"(dropped: {dict(report.dropped)}): check the captions and the filter flags"
            )
        vocab = rank_vocabulary(
            posts, evidence, top_n=cfg.filters.top_n, min_count=cfg.filters.min_count
        )
    by_name = {s.name: s for s in everything}
    kept = _label_cap_check(posts, by_name, vocab, cfg, report)
    report.kept = len(kept)
    report.unlabelled = sum(not p.labels for p in kept)
    for name, sub in report.sources.items():
        sub.kept = sum(p.source == name for p in kept)
        sub.unlabelled = sum(p.source == name and not p.labels for p in kept)
    return kept, vocab, report


def split_caps(cfg: MixConfig) -> dict[str, int]:
    """Examples per emoji allowed in each split: ``cap_per_emoji`` in train, the same share of
    it in val and test as their fractions are of train's (so val is not all one emoji)."""
    cap = cfg.filters.cap_per_emoji or 0
    train = 1.0 - cfg.val_fraction - cfg.test_fraction
    if not cap or train <= 0:
        return {}
    share = {"val": cfg.val_fraction, "test": cfg.test_fraction}
    return {"train": cap} | {s: max(1, math.ceil(cap * f / train)) for s, f in share.items()}


def _label_cap_check(
    posts: list[Post],
    sources: dict[str, Source],
    vocab: Vocabulary,
    cfg: MixConfig,
    report: PrepareReport,
) -> list[Post]:
    """Labels restricted to the vocabulary, the per-emoji caps, the image checks."""
    caps = split_caps(cfg)
    per_emoji: dict[str, Counter[str]] = {split: Counter() for split in caps}
    kept: list[Post] = []
    for post in sorted(posts, key=lambda p: stable_hash(cfg.seed, p.id)):
        src = sources[post.source]
        labels = [e for e in post.labels if e in vocab]
        if not labels:
            if not (src.unlabelled and cfg.keep_unlabelled):
                reason = "not_in_vocabulary" if post.labels else "names_no_emoji"
                report.drop(reason, post.id, "".join(post.labels), source=post.source)
                continue
            post.split = "train"  # only train has a use for a picture without labels
        cap = caps.get(post.split or "", 0) if labels and src.capped else 0
        if cap and all(per_emoji[post.split or ""][e] >= cap for e in labels):
            report.drop("cap_per_emoji", post.id, "".join(labels), source=post.source)
            continue
        if src.check_images and cfg.filters.check_images:
            problem = image_problem(post.image)
            if problem is not None:
                log.warning("skipping %s: %s (%s)", post.id, problem.replace("_", " "), post.image)
                report.drop(problem, post.id, str(post.image), source=post.source)
                continue
        if cap:
            per_emoji[post.split or ""].update(labels)
        post.labels = labels
        kept.append(post)
    return kept
