"""The GPU path, measured: the model at batch 1/8/32 and decoding on the CPU vs on the device.

    python benchmarks/bench_gpu.py                 # CUDA when there is one, else the CPU
    python benchmarks/bench_gpu.py --device cpu --repeats 3     # a quick run on a CPU

Prints two tables and writes JSON (runs/bench/gpu.json unless --out):

1. **The model**: ResNet-50 and EfficientNet-Lite0 with the zero-shot head (what the server's
   torch backend runs: fp16 autocast and channels_last on CUDA), images/s and p50/p99 of one
   pass at batch 1, 8 and 32. Weights do not change the speed, so the architectures are built
   without downloading any (ResNet-50's ImageNet weights are not on any registry here).
2. **Decoding a batch of real photos** into the model's input: with Pillow in the decode threads
   as served on a CPU (``Predictor.preprocess``, one photo after another in one thread: multiply
   by the decode threads for a server) and with ``JpegBatchDecoder`` on the device in one call
   (nvJPEG on CUDA), for 451x300 and 1080x720 photos.

On a CPU the second table compares Pillow with libjpeg-turbo through torchvision: it checks that
the code runs, not what a GPU gains.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from emojinet.backends import TorchBackend, select_device
from emojinet.checkpoint import load
from emojinet.gpu_decode import EncodedJpeg, JpegBatchDecoder, encoded_jpeg
from emojinet.model import EmojiNetConfig, build_model
from emojinet.predictor import Predictor
from emojinet.vocab import Vocabulary

BATCHES = (1, 8, 32)


def _timed(fn: Callable[[], Any], repeats: int, sync: Callable[[], None]) -> list[float]:
    fn()  # warm-up (cuDNN picks its kernels, caches fill)
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return times


def _row(times: list[float], images: int) -> dict[str, float]:
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {
        "images_per_s": images / statistics.mean(times),
        "p50_ms": 1000 * statistics.median(times),
        "p99_ms": 1000 * p99,
    }


def bench_models(device: torch.device, repeats: int) -> dict[str, dict[int, dict[str, float]]]:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    out: dict[str, dict[int, dict[str, float]]] = {}
    for backbone in ("resnet50", "efficientnet_lite0"):
        cfg = EmojiNetConfig(backbone=backbone, head="zeroshot")
        backend = TorchBackend(build_model(cfg, Vocabulary.all(), pretrained=False), device)
        out[backbone] = {}
        for n in BATCHES:
            x = np.random.default_rng(0).standard_normal((n, 3, 224, 224), dtype=np.float32)
            out[backbone][n] = _row(_timed(partial(backend.run, x), repeats, sync), n)
    return out


def _each(fn: Callable[[bytes], Any], blobs: list[bytes]) -> list[Any]:
    return [fn(b) for b in blobs]


def _batch(decoder: JpegBatchDecoder, jpegs: list[EncodedJpeg]) -> torch.Tensor:
    return torch.stack(decoder(jpegs))


def photos(size: tuple[int, int]) -> list[bytes]:
    import skimage.data as sd

    out = []
    for name in ("chelsea", "coffee", "rocket", "astronaut"):
        buf = io.BytesIO()
        Image.fromarray(getattr(sd, name)()).resize(size).save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def bench_decode(device: torch.device, repeats: int) -> dict[str, dict[str, dict[str, float]]]:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    model, _ = load(None)
    cpu = Predictor(model, TorchBackend(model, "cpu"))
    gpu = JpegBatchDecoder(model.preprocess, device, cpu.preprocess)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for size in ((451, 300), (1080, 720)):
        blobs = photos(size) * 8  # a batch of 32
        jpegs = [j for j in map(encoded_jpeg, blobs) if j is not None]
        key = f"{size[0]}x{size[1]}"
        out[key] = {
            "pillow, one thread": _row(
                _timed(partial(_each, cpu.preprocess, blobs), repeats, sync), len(blobs)
            ),
            f"batched on {device.type}": _row(
                _timed(partial(_batch, gpu, jpegs), repeats, sync), len(blobs)
            ),
        }
    return out


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--out", default="runs/bench/gpu.json", help="(default: %(default)s)")
    args = p.parse_args()
    device = select_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    models = bench_models(device, args.repeats)
    print(f"\nthe model on {name} (torch {torch.__version__})\n")
    print(f"{'backbone':<20}{'batch':>6}{'images/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
    for backbone, rows in models.items():
        for n, r in rows.items():
            print(
                f"{backbone:<20}{n:>6}{r['images_per_s']:>10.0f}{r['p50_ms']:>9.2f}"
                f"{r['p99_ms']:>9.2f}"
            )
    decode = bench_decode(device, max(3, args.repeats // 5))
    print(f"\ndecoding 32 real photos into the model's input on {name}\n")
    print(f"{'photo':<10}{'how':<22}{'images/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
    for key, ways in decode.items():
        for how, r in ways.items():
            print(
                f"{key:<10}{how:<22}{r['images_per_s']:>10.0f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}"
            )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {"device": name, "torch": torch.__version__, "model": models, "decode": decode}
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
