"""Data-loader throughput: large original JPEGs vs draft-mode decoding vs prescaled JPEGs.

Reproduces the seed design's speed lesson on this machine. The photos are real (scikit-image and
scikit-learn samples) upscaled to phone-camera size (about 12 MP), saved as JPEG quality 90.

    .venv/bin/python benchmarks/bench_loader.py [--images 48] [--workers 2]

Prints a table and writes JSON (runs/bench/loader.json unless --out says otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from emojinet.preprocess import PreprocessConfig
from emojinet.presets import train_preset
from training.datasets import EmojiImageDataset, prescaled_index
from training.posts import folder_posts
from training.prepare import (
    FilterConfig,
    PrepareReport,
    filter_posts,
    read_dataset,
    write_dataset,
)
from training.prescale import prescale_dataset


def real_photos() -> dict[str, np.ndarray]:  # type: ignore[type-arg]
    import skimage.data as sd
    from sklearn.datasets import load_sample_images

    out = {n: getattr(sd, n)() for n in ("chelsea", "coffee", "astronaut", "rocket")}
    for name, img in zip(load_sample_images().filenames, load_sample_images().images, strict=True):
        out[Path(name).stem] = img
    return out


def build(root: Path, n: int, megapixels: float) -> Path:
    photos = list(real_photos().items())
    tree = root / "tree" / "📷"
    tree.mkdir(parents=True)
    for i in range(n):
        name, arr = photos[i % len(photos)]
        img = Image.fromarray(arr).convert("RGB")
        scale = (megapixels * 1e6 / (img.width * img.height)) ** 0.5
        img = img.resize(
            (round(img.width * scale), round(img.height * scale)), Image.Resampling.BICUBIC
        )
        img.save(tree / f"{i:03d}-{name}.jpg", quality=90)
    report = PrepareReport()
    posts, vocab = filter_posts(folder_posts(root / "tree"), FilterConfig(), report=report)
    write_dataset(root / "ds", posts, vocab, report, val_fraction=0.0, test_fraction=0.0)
    return root / "ds"


def throughput(ds: EmojiImageDataset, workers: int, batch_size: int, repeats: int) -> float:
    loader = DataLoader(ds, batch_size=batch_size, num_workers=workers, shuffle=False)
    next(iter(loader))  # start the workers, warm the page cache
    t = time.perf_counter()
    n = 0
    for _ in range(repeats):
        for x, _, _ in loader:
            n += len(x)
    return n / (time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--megapixels", type=float, default=12.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("runs/bench/loader.json"),
        help="JSON output (default: %(default)s); --out benchmarks/results/loader.json "
        "updates the committed figures",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    pre = PreprocessConfig(224, 256)
    tf = train_preset(pre)
    with tempfile.TemporaryDirectory() as tmp:
        data = build(Path(tmp), args.images, args.megapixels)
        records, vocab = read_dataset(data)
        t = time.perf_counter()
        prescale_dataset(data, pre.resize_size, workers=args.workers, progress=False)
        prescale_s = time.perf_counter() - t
        index = prescaled_index(data, pre.resize_size)
        original_mb = sum((data / r.image).stat().st_size for r in records) / 1e6
        assert index is not None
        prescaled_mb = sum((data / p).stat().st_size for p in index.values()) / 1e6
        variants = {
            "original JPEG, full decode": EmojiImageDataset(data, records, vocab, tf),
            "original JPEG, draft decode": EmojiImageDataset(
                data, records, vocab, tf, draft_size=pre.resize_size
            ),
            "prescaled JPEG (256 px)": EmojiImageDataset(
                data, records, vocab, tf, prescaled=index, draft_size=pre.resize_size
            ),
        }
        rows = []
        for name, ds in variants.items():
            rate = throughput(ds, args.workers, args.batch_size, args.repeats)
            rows.append({"store": name, "images_per_s": round(rate, 1)})
    base = rows[0]["images_per_s"]
    print(
        f"{args.images} photos of ~{args.megapixels:g} MP ({original_mb:.0f} MB; prescaled "
        f"{prescaled_mb:.1f} MB in {prescale_s:.1f} s), train preset 224 px, "
        f"{args.workers} workers, {os.cpu_count()} CPUs"
    )
    print(f"{'store':<30} {'images/s':>9} {'speed-up':>9}")
    for r in rows:
        print(f"{r['store']:<30} {r['images_per_s']:>9.1f} {r['images_per_s'] / base:>8.1f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "images": args.images,
                "megapixels": args.megapixels,
                "workers": args.workers,
                "batch_size": args.batch_size,
                "cpus": os.cpu_count(),
                "machine": platform.machine(),
                "original_mb": round(original_mb, 1),
                "prescaled_mb": round(prescaled_mb, 2),
                "prescale_seconds": round(prescale_s, 2),
                "results": rows,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
