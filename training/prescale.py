"""Resize every image of a data set once, in parallel, to the training resolution (on-disk JPEGs).

The seed design's main speed lesson: decoding a 12-megapixel photo per sample per epoch dominates
training time; a pre-scaled JPEG whose short side equals the training resize size decodes in a
fraction of that. Images already no larger than the target are hard-linked (or copied) unchanged.

Idempotent and resumable: each output is written to a temporary file and renamed, finished outputs
are skipped, and ``index.json`` (id → path) is written last, only when every image is done.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from emojinet.errors import EmojiNetError
from emojinet.preprocess import load_image
from training.datasets import PRESCALED_INDEX
from training.prepare import read_dataset

__all__ = ["PrescaleResult", "prescale_dataset", "prescale_image"]

log = logging.getLogger(__name__)


@dataclass
class PrescaleResult:
    total: int = 0
    resized: int = 0
    linked: int = 0
    skipped: int = 0  # already done by an earlier run
    failed: int = 0


def _named(stem: Path, suffix: str) -> Path:
    """``stem`` + ``suffix`` (``with_suffix`` would cut names with dots: ``jr._h_01``)."""
    return stem.with_name(stem.name + suffix)


def prescale_image(src: Path, dst_stem: Path, size: int, quality: int = 90) -> tuple[str, Path]:
    """Resize ``src`` so its short side is ``size`` (never upscaled); returns (action, output path).

    JPEG sources decode in draft mode (DCT scaling), which is what makes large photos cheap.
    """
    for existing in (_named(dst_stem, ".jpg"), _named(dst_stem, src.suffix.lower())):
        if existing.is_file():
            return "skipped", existing
    dst_stem.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(src) as probe:
        w, h = probe.size
    if min(w, h) <= size:
        dst = _named(dst_stem, src.suffix.lower())
        tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
        return "linked", dst
    img = load_image(src, draft_size=size)
    scale = size / min(img.size)
    new = (max(size, round(img.width * scale)), max(size, round(img.height * scale)))
    img = img.resize(new, Image.Resampling.BILINEAR, reducing_gap=2.0)
    dst = _named(dst_stem, ".jpg")
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    img.save(tmp, format="JPEG", quality=quality)
    os.replace(tmp, dst)
    return "resized", dst


def _work(args: tuple[str, str, str, int, int]) -> tuple[str, str, str]:
    post_id, src, dst_stem, size, quality = args
    try:
        action, dst = prescale_image(Path(src), Path(dst_stem), size, quality)
        return post_id, action, str(dst)
    except (EmojiNetError, OSError) as exc:
        return post_id, "failed", str(exc)


def prescale_dataset(
    root: str | Path,
    size: int,
    *,
    workers: int | None = None,
    quality: int = 90,
    progress: bool = True,
) -> PrescaleResult:
    """Prescale every image of a prepared data set into ``ROOT/prescaled/SIZE/``."""
    root = Path(root)
    records, _ = read_dataset(root)
    out = root / "prescaled" / str(size)
    jobs: list[tuple[str, str, str, int, int]] = []
    for r in records:
        src = root / r.image
        rel = (
            Path(r.image)
            if not Path(r.image).is_absolute()
            else Path("abs", *Path(r.image).parts[1:])
        )
        jobs.append((r.id, str(src), str((out / rel).with_suffix("")), size, quality))
    result = PrescaleResult(total=len(jobs))
    index: dict[str, str] = {}
    workers = workers or os.cpu_count() or 1
    chunksize = max(1, min(256, len(jobs) // (workers * 8) or 1))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        results: Sequence[tuple[str, str, str]] = list(
            tqdm(
                pool.map(_work, jobs, chunksize=chunksize),
                total=len(jobs),
                desc="prescale",
                unit="img",
                disable=not progress,
            )
        )
    for post_id, action, detail in results:
        if action == "failed":
            log.warning("could not prescale %s: %s", post_id, detail)
            result.failed += 1
            continue
        setattr(result, action, getattr(result, action) + 1)
        index[post_id] = Path(detail).relative_to(root).as_posix()
    if result.failed:
        log.warning("%d images failed; index not written, rerun to retry", result.failed)
        return result
    tmp = out / f".{PRESCALED_INDEX}.tmp"
    tmp.write_text(json.dumps(index, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, out / PRESCALED_INDEX)
    return result
