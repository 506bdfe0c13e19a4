"""The gallery: which photos a model associates most strongly with each emoji.

``build_gallery(images_dir, predictor, out)`` scores every image under ``images_dir`` (batched,
with a progress bar), caches the scores in ``out/scores.npz`` keyed by each file's path, mtime
and size and by the model's sha256 (a second run only scores new or changed files), and writes:

* ``index.html``: per emoji its top-N images, per image its top emojis, only scores of at least
  ``GalleryConfig.min_score`` (a row is never padded with images the model barely ties to the
  emoji; an emoji with none is not listed); thumbnails, a search box (emojis, names and file
  names, in both views) and sorting by emoji frequency; self-contained (no network; thumbnails
  in ``thumbs/``);
* ``gallery.json``: the same data for scripts;
* ``cards/*.png``: per emoji that leads some image a shareable card of its images above the
  minimum score (drawn by :mod:`emojinet.gallery_cards`).
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from PIL import Image

from emojinet.backends import Outputs
from emojinet.errors import ConfigError, EmojiNetError
from emojinet.gallery_cards import EMOJI_FONT, card_name, write_cards
from emojinet.preprocess import decode_image
from emojinet.vocab import Vocabulary

__all__ = [
    "GalleryConfig",
    "GalleryResult",
    "build_gallery",
    "find_images",
    "score_images",
]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"})
CACHE_FILE = "scores.npz"
_CACHE_VERSION = 1


class PredictorLike(Protocol):
    """What the gallery needs of :class:`emojinet.predictor.Predictor`."""

    vocab: Vocabulary

    @property
    def info(self) -> Any: ...

    def preprocess(self, data: bytes) -> npt.NDArray[np.float32]: ...

    def run_batch(self, batch: npt.NDArray[np.float32], *, features: bool = False) -> Outputs: ...


@dataclass(frozen=True)
class GalleryConfig:
    """What the report shows. ``min_score``: the least score shown anywhere (rows, image lists,
    cards); 5% by default: the built-in model's calibrated score for an emoji a person would
    take is far above it, while the images a row was padded with score well under 1%."""

    top_n: int = 8  # images shown per emoji, at most
    per_image: int = 5  # emojis shown per image, at most
    min_score: float = 0.05
    batch_size: int = 32
    workers: int = 2  # threads decoding images
    thumb_size: int = 160
    card_images: int = 4  # images on each emoji's PNG card, at most
    max_cards: int = 100
    progress: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_score <= 1.0:
            raise ConfigError(f"min_score must be in [0, 1], got {self.min_score}")


@dataclass
class GalleryResult:
    out: Path
    images: list[Path]
    scores: npt.NDArray[np.float32]  # (N, V); NaN rows for images that could not be read
    scored: int  # images scored in this run (the rest came from the cache)
    cached: int
    unreadable: list[Path] = field(default_factory=list)
    cards: list[Path] = field(default_factory=list)


def find_images(root: str | Path) -> list[Path]:
    """Image files under ``root``, recursively, in a stable order."""
    root = Path(root)
    if not root.is_dir():
        raise EmojiNetError(f"{root} is not a directory of images")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _file_key(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}|{st.st_mtime_ns}|{st.st_size}"


def _thumb_name(key: str) -> str:
    return hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()[:16] + ".jpg"


def _load_cache(path: Path, sha256: str, vocab: Vocabulary) -> dict[str, npt.NDArray[np.float32]]:
    """Cached rows by file key; empty when missing, unreadable, or from another model."""
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as data:
            if (
                int(data["version"]) != _CACHE_VERSION
                or str(data["sha256"]) != sha256
                or list(data["vocab"]) != vocab.to_list()
            ):
                log.info("score cache %s is for another model: rescoring", path)
                return {}
            keys, scores = data["keys"], data["scores"]
            return {str(k): scores[i] for i, k in enumerate(keys)}
    except (OSError, ValueError, KeyError) as exc:
        log.warning("ignoring unreadable score cache %s: %s", path, exc)
        return {}


def _save_cache(
    path: Path,
    sha256: str,
    vocab: Vocabulary,
    keys: Sequence[str],
    scores: npt.NDArray[np.float32],
) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(
        tmp,
        version=np.int64(_CACHE_VERSION),
        sha256=np.str_(sha256),
        vocab=np.array(vocab.to_list()),
        keys=np.array(list(keys), dtype=str),
        scores=scores,
    )
    os.replace(tmp, path)


def _batches(items: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def score_images(
    predictor: PredictorLike,
    paths: Sequence[Path],
    *,
    cache: Path | None = None,
    thumbs: Path | None = None,
    cfg: GalleryConfig = GalleryConfig(),
) -> tuple[npt.NDArray[np.float32], int]:
    """(N, V) scores for ``paths`` (NaN rows for unreadable files) and how many were computed.

    Rows come from ``cache`` when the file (path, mtime, size) and the model's sha256 match;
    the rest are scored in batches. Missing thumbnails are written to ``thumbs`` on the way.
    """
    from tqdm import tqdm

    vocab = predictor.vocab
    sha256 = str(predictor.info.sha256)
    keys = [_file_key(p) for p in paths]
    cached = _load_cache(cache, sha256, vocab) if cache else {}
    scores = np.full((len(paths), len(vocab)), np.nan, dtype=np.float32)
    todo = []
    for i, key in enumerate(keys):
        row = cached.get(key)
        if row is not None and row.shape == (len(vocab),):
            scores[i] = row
        else:
            todo.append(i)

    def load(i: int) -> npt.NDArray[np.float32] | None:
        try:
            data = paths[i].read_bytes()
            x = predictor.preprocess(data)
            if thumbs is not None:
                _write_thumb(data, thumbs / _thumb_name(keys[i]), cfg.thumb_size)
        except (OSError, EmojiNetError) as exc:
            log.warning("skipping %s: %s", paths[i], exc)
            return None
        return x

    with (
        ThreadPoolExecutor(max_workers=cfg.workers) as pool,
        tqdm(
            total=len(todo), unit="img", desc="scoring", disable=not cfg.progress or not todo
        ) as bar,
    ):
        for batch in _batches(todo, cfg.batch_size):
            arrays = list(pool.map(load, batch))
            ok = [(i, x) for i, x in zip(batch, arrays, strict=True) if x is not None]
            if ok:
                probs = predictor.run_batch(np.stack([x for _, x in ok])).probs
                for (i, _), row in zip(ok, probs, strict=True):
                    scores[i] = row
            bar.update(len(batch))
    if cache is not None and todo:
        _save_cache(cache, sha256, vocab, keys, scores)
    if thumbs is not None:  # thumbnails deleted by hand, or from a run without them
        for i, key in enumerate(keys):
            if not (thumbs / _thumb_name(key)).exists() and not np.isnan(scores[i, 0]):
                _write_thumb(paths[i].read_bytes(), thumbs / _thumb_name(key), cfg.thumb_size)
    return scores, len(todo)


def _write_thumb(data: bytes, path: Path, size: int) -> None:
    if path.exists():
        return
    img = decode_image(data, draft_size=size)
    img.thumbnail((size, size), Image.Resampling.LANCZOS)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="JPEG", quality=82, optimize=True)


# -- the report -------------------------------------------------------------------------------


def _summaries(
    scores: npt.NDArray[np.float32], vocab: Vocabulary, cfg: GalleryConfig
) -> tuple[list[dict[str, Any]], list[list[tuple[int, float]]]]:
    """Per emoji: top images, frequency; per image: top emojis (index, score).

    Only scores of at least ``cfg.min_score`` are kept: an emoji's row holds up to ``top_n``
    images, none below it (possibly none at all), and an image's list up to ``per_image``
    emojis. ``in_top_k`` and ``leads`` count those lists.
    """
    valid = np.asarray(~np.isnan(scores).any(axis=1), dtype=bool)
    safe = np.where(valid[:, None], scores, -np.inf)
    k = min(cfg.per_image, len(vocab))
    per_image: list[list[tuple[int, float]]] = []
    in_top_k = np.zeros(len(vocab), dtype=np.int64)
    leads = np.zeros(len(vocab), dtype=np.int64)
    for i in range(len(scores)):
        order = [int(j) for j in np.argsort(-safe[i], kind="stable")[:k]]
        shown = [j for j in order if safe[i, j] >= cfg.min_score]
        per_image.append([(j, float(scores[i, j])) for j in shown])
        in_top_k[shown] += 1
        if shown:
            leads[shown[0]] += 1
    names = vocab.names()
    counts = list(vocab.counts) or [0] * len(vocab)
    n = min(cfg.top_n, int(valid.sum()))
    emojis = []
    for j, e in enumerate(vocab):
        top = np.argsort(-safe[:, j], kind="stable")[:n] if n else np.array([], dtype=np.int64)
        emojis.append(
            {
                "emoji": e,
                "name": names[j],
                "images": [
                    (int(i), float(scores[i, j])) for i in top if safe[i, j] >= cfg.min_score
                ],
                "in_top_k": int(in_top_k[j]),
                "leads": int(leads[j]),
                "prior": int(counts[j]),
            }
        )
    return emojis, per_image


def build_gallery(
    images_dir: str | Path,
    predictor: PredictorLike,
    out: str | Path,
    cfg: GalleryConfig = GalleryConfig(),
    *,
    font_path: Path = EMOJI_FONT,
) -> GalleryResult:
    """Score the images, write ``index.html``, ``gallery.json`` and the emoji cards to ``out``."""
    root = Path(images_dir)
    paths = find_images(root)
    if not paths:
        raise EmojiNetError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {root}")
    out = Path(out)
    thumbs = out / "thumbs"
    thumbs.mkdir(parents=True, exist_ok=True)
    scores, scored = score_images(predictor, paths, cache=out / CACHE_FILE, thumbs=thumbs, cfg=cfg)
    vocab = predictor.vocab
    emojis, per_image = _summaries(scores, vocab, cfg)
    unreadable = [p for p, s in zip(paths, scores, strict=True) if np.isnan(s).any()]
    keys = [_file_key(p) for p in paths]
    images = [
        {
            "path": str(p.relative_to(root)),
            "thumb": f"thumbs/{_thumb_name(key)}",
            "readable": not bool(np.isnan(row).any()),
            "emojis": [{"emoji": vocab[j], "score": round(s, 5)} for j, s in top],
        }
        for p, key, top, row in zip(paths, keys, per_image, scores, strict=True)
    ]
    cards = write_cards(
        out / "cards",
        emojis,
        paths,
        min_score=cfg.min_score,
        max_cards=cfg.max_cards,
        per_card=cfg.card_images,
        font_path=font_path,
    )
    card_names = {c.name for c in cards}
    report = {
        "model": {"name": predictor.info.name, "sha256": predictor.info.sha256},
        "images_dir": str(root),
        "top_n": cfg.top_n,
        "per_image": cfg.per_image,
        "min_score": cfg.min_score,
        "images": images,
        "emojis": [
            {
                "emoji": e["emoji"],
                "name": e["name"],
                "in_top_k": e["in_top_k"],
                "leads": e["leads"],
                "prior": e["prior"],
                "card": (
                    f"cards/{card}"
                    if (card := card_name(e["emoji"], e["name"])) in card_names
                    else None
                ),
                "top": [{"image": i, "score": round(s, 5)} for i, s in e["images"]],
            }
            for e in emojis
        ],
    }
    (out / "gallery.json").write_text(json.dumps(report, ensure_ascii=False), encoding="utf-8")
    (out / "index.html").write_text(_html(report), encoding="utf-8")
    return GalleryResult(
        out=out,
        images=paths,
        scores=scores,
        scored=scored,
        cached=len(paths) - scored,
        unreadable=unreadable,
        cards=cards,
    )


def _html(report: dict[str, Any]) -> str:
    data = json.dumps(report, ensure_ascii=False).replace("</", "<\\/")
    title = f"EmojiNet gallery: {report['model']['name']}"
    return (
        resources.files("emojinet")
        .joinpath("data/gallery.html")
        .read_text(encoding="utf-8")
        .replace("__TITLE__", html.escape(title))
        .replace("__DATA__", data)
    )
