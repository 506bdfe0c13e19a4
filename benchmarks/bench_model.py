"""Latency and throughput of the default model: torch eager vs ONNX Runtime, on this machine.

    python benchmarks/bench_model.py [--repeats 20] [--batch 32] [--out PATH]

Prints a table and writes JSON: runs/bench/model.json, or the committed
benchmarks/results/model.json (the README's figures) only when --out names it.
Inputs are real photos (scikit-image), preprocessed once.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from emojinet.backends import InferenceBackend, OnnxBackend, TorchBackend
from emojinet.checkpoint import load
from emojinet.predictor import Predictor


def real_photos() -> list[bytes]:
    import skimage.data as sd

    out = []
    for name in ("chelsea", "coffee", "rocket", "astronaut"):
        buf = io.BytesIO()
        Image.fromarray(getattr(sd, name)()).save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def time_calls(fn: object, repeats: int, warmup: int = 3) -> list[float]:
    assert callable(fn)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("runs/bench/model.json"),
        help="JSON output (default: %(default)s); --out benchmarks/results/model.json "
        "updates the committed figures",
    )
    args = parser.parse_args()

    model, _ = load()
    backends: dict[str, InferenceBackend] = {
        "torch-eager": TorchBackend(model, "cpu"),
        "onnxruntime": OnnxBackend.from_model(model),
    }
    predictor = Predictor(model, backends["torch-eager"])
    photos = [predictor.preprocess(b) for b in real_photos()]
    single = photos[0][None]
    batch = np.stack([photos[i % len(photos)] for i in range(args.batch)])
    t0 = time.perf_counter()
    for b in real_photos() * 5:
        predictor.preprocess(b)
    preprocess_ms = (time.perf_counter() - t0) / 20 * 1000

    rows = []
    for name, backend in backends.items():
        one = time_calls(lambda b=backend: b.run(single).probs, args.repeats)
        many = time_calls(lambda b=backend: b.run(batch).probs, max(3, args.repeats // 4))
        rows.append(
            {
                "backend": name,
                "single_p50_ms": statistics.median(one) * 1000,
                "single_p90_ms": float(np.percentile(one, 90)) * 1000,
                "single_images_per_s": 1 / statistics.median(one),
                f"batch{args.batch}_ms": statistics.median(many) * 1000,
                "batch_images_per_s": args.batch / statistics.median(many),
            }
        )

    header = f"{'backend':<13} {'1 image p50':>12} {'p90':>9} {'img/s':>7} "
    header += f"{'batch ' + str(args.batch):>11} {'img/s':>7}"
    print(f"default model: {model.cfg.backbone} + {model.cfg.head} head, {len(model.vocab)} emojis")
    print(f"CPU: {os.cpu_count()} cores, torch threads {torch.get_num_threads()}")
    print(header)
    for r in rows:
        print(
            f"{r['backend']:<13} {r['single_p50_ms']:>10.1f}ms {r['single_p90_ms']:>7.1f}ms "
            f"{r['single_images_per_s']:>7.1f} {r[f'batch{args.batch}_ms']:>9.0f}ms "
            f"{r['batch_images_per_s']:>7.1f}"
        )
    speedup = rows[0]["single_p50_ms"] / rows[1]["single_p50_ms"]
    print(f"ONNX Runtime vs torch eager, single image: {speedup:.1f}x faster")
    print(f"decode + preprocess (JPEG, about 0.2-0.4 MP): {preprocess_ms:.1f} ms per image")
    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "torch": torch.__version__,
        },
        "model": {
            "backbone": model.cfg.backbone,
            "head": model.cfg.head,
            "vocab": len(model.vocab),
        },
        "batch_size": args.batch,
        "rows": rows,
        "onnx_speedup_single": speedup,
        "preprocess_ms": preprocess_ms,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
