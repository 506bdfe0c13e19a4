"""Serving benchmark: the real server under concurrent clients, beside the raw model.

Starts ``emojinet serve`` (the same command line the container and the tests use) with the
chosen backend, drives ``POST /suggest`` with concurrent async clients at several concurrency
levels, once with batching (``EMOJINET_MAX_BATCH_SIZE``) and once with batching off (1), and
measures in the same run, with the same backend and images, the raw model: batched forward
passes over preprocessed arrays, and the whole in-process pipeline (decode + preprocess +
forward). Prints a table and writes JSON.

    python benchmarks/bench_serve.py                       # built-in model, ONNX Runtime
    python benchmarks/bench_serve.py --model runs/x/release --concurrency 1,8,32 --seconds 10

Everything runs on this machine: clients, server and model share its cores.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import io
import json
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def photos(max_side: int) -> list[bytes]:
    """Real photos that ship with scikit-image and scikit-learn, as JPEG bytes."""
    import skimage.data as sd
    from sklearn.datasets import load_sample_images

    arrays = [getattr(sd, n)() for n in ("chelsea", "coffee", "rocket", "astronaut")]
    arrays += list(load_sample_images().images)
    out = []
    for arr in arrays:
        img = Image.fromarray(arr).convert("RGB")
        img.thumbnail((max_side, max_side))
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def raw_throughput(args: argparse.Namespace, images: list[bytes]) -> dict[str, Any]:
    """The model alone, in this process, same backend and images."""
    from emojinet.predictor import Predictor

    predictor = Predictor.load(args.model or None, backend=args.backend, device=args.device)
    arrays = [predictor.preprocess(b) for b in images]
    out: dict[str, Any] = {"model": predictor.info.to_dict()}
    for size in sorted({1, args.batch_size}):
        batch = np.stack([arrays[i % len(arrays)] for i in range(size)])
        predictor.run_batch(batch)  # warm-up
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < args.seconds / 2:
            predictor.run_batch(batch)
            n += size
        out[f"model_batch_{size}_images_per_s"] = n / (time.perf_counter() - t0)
    # Decode + preprocess + forward, batched, all in this process: the CPU-bound ceiling.
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < args.seconds / 2:
        chunk = [images[(n + i) % len(images)] for i in range(args.batch_size)]
        predictor.run_batch(np.stack([predictor.preprocess(b) for b in chunk]))
        n += len(chunk)
    out["pipeline_images_per_s"] = n / (time.perf_counter() - t0)
    return out


def serve_cmd(host: str, port: int) -> list[str]:
    spec = importlib.util.spec_from_file_location("_launch", REPO / "deploy" / "launch.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cmd: list[str] = module.serve_cmd_for_tests(host, port)
    return cmd


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(args: argparse.Namespace, batch_size: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "EMOJINET_BACKEND": args.backend,
        "EMOJINET_DEVICE": args.device,
        "EMOJINET_MAX_BATCH_SIZE": str(batch_size),
        "EMOJINET_MAX_BATCH_DELAY_MS": str(args.batch_delay_ms),
        "EMOJINET_MAX_QUEUE": "4096",
        "EMOJINET_QUEUE_DEADLINE_S": "60",  # measure throughput, not load shedding
        "EMOJINET_LOG_LEVEL": "warning",
    }
    if args.model:
        env["EMOJINET_MODEL"] = args.model
    return launch_server(env, port)


def launch_server(env: dict[str, str], port: int) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``emojinet serve`` on loopback with ``env``; wait (5 min at most) until ready."""
    proc = subprocess.Popen(serve_cmd("127.0.0.1", port), env=env, cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    end = time.monotonic() + 300
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not become ready")


async def drive(url: str, images: list[bytes], concurrency: int, seconds: float) -> dict[str, Any]:
    """``concurrency`` clients, each sending one request after another, for ``seconds``."""
    latencies: list[float] = []
    codes: dict[int, int] = {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def one(worker: int, stop: float) -> None:
            i = worker
            while time.perf_counter() < stop:
                data = images[i % len(images)]
                i += concurrency
                t0 = time.perf_counter()
                r = await client.post("/suggest", files={"image": ("x.jpg", data, "image/jpeg")})
                if r.status_code == 200:
                    latencies.append(time.perf_counter() - t0)
                codes[r.status_code] = codes.get(r.status_code, 0) + 1

        await asyncio.gather(*(one(w, time.perf_counter() + 1.0) for w in range(concurrency)))
        latencies.clear()
        codes.clear()
        t0 = time.perf_counter()
        await asyncio.gather(*(one(w, t0 + seconds) for w in range(concurrency)))
        wall = time.perf_counter() - t0
    lat = np.array(latencies) * 1000 if latencies else np.array([float("nan")])
    return {
        "concurrency": concurrency,
        "images_per_s": len(latencies) / wall,
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "ok": len(latencies),
        "status_counts": {str(k): v for k, v in sorted(codes.items())},
    }


def batch_stats(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics").text
    values = {}
    for line in text.splitlines():
        for name in ("emojinet_batch_size_sum", "emojinet_batch_size_count"):
            if line.startswith(name + " "):
                values[name] = float(line.split()[1])
    return values


def measure_level(
    url: str, images: list[bytes], c: int, seconds: float, size: int
) -> dict[str, Any]:
    before = batch_stats(url)
    row = asyncio.run(drive(url, images, c, seconds))
    after = batch_stats(url)
    passes = after["emojinet_batch_size_count"] - before["emojinet_batch_size_count"]
    inputs = after["emojinet_batch_size_sum"] - before["emojinet_batch_size_sum"]
    row["mean_batch"] = inputs / passes if passes else 0.0
    row["max_batch_size"] = size
    print(f"  max_batch_size={size:<3} clients={c:<3} {row['images_per_s']:7.1f} img/s")
    return row


def run_servers(
    args: argparse.Namespace, images: list[bytes]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Both servers up at once; levels alternate between them so load drift hits both alike."""
    batched_proc, batched_url = start_server(args, args.batch_size)
    plain_proc, plain_url = start_server(args, 1)
    batched, unbatched = [], []
    try:
        for c in args.concurrency:
            batched.append(measure_level(batched_url, images, c, args.seconds, args.batch_size))
            unbatched.append(measure_level(plain_url, images, c, args.seconds, 1))
    finally:
        for proc in (batched_proc, plain_proc):
            proc.terminate()
            proc.wait(60)
    return batched, unbatched


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default="", help="release artifact (default: the built-in model)")
    p.add_argument("--backend", default="onnx", choices=["auto", "torch", "onnx"])
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    p.add_argument("--batch-size", type=int, default=32, help="the server's max batch size")
    p.add_argument("--batch-delay-ms", type=float, default=2.0)
    p.add_argument("--concurrency", default="1,8,32", help="comma-separated client counts")
    p.add_argument("--seconds", type=float, default=8.0, help="measured time per level")
    p.add_argument("--max-side", type=int, default=640, help="photos are resized to fit this")
    p.add_argument(
        "--out",
        default="runs/bench/serve.json",
        help="JSON output (default: %(default)s); --out benchmarks/results/serve.json "
        "updates the committed figures",
    )
    args = p.parse_args()
    args.concurrency = [int(c) for c in args.concurrency.split(",")]

    images = photos(args.max_side)
    print(f"{len(images)} photos, {sum(map(len, images)) / len(images) / 1e3:.0f} kB on average")
    raw = raw_throughput(args, images)
    print(f"raw model: {raw}")
    batched, unbatched = run_servers(args, images)

    ref = raw[f"model_batch_{args.batch_size}_images_per_s"]
    header = f"{'':<28}{'clients':>8}{'img/s':>9}{'% raw':>7}{'p50 ms':>9}{'p99 ms':>9}{'batch':>7}"
    print()
    print(header)
    print("-" * len(header))
    for size in sorted({1, args.batch_size}, reverse=True):
        v = raw[f"model_batch_{size}_images_per_s"]
        print(f"{f'raw model, batch {size}':<28}{'':>8}{v:9.1f}{100 * v / ref:6.0f}%")
    v = raw["pipeline_images_per_s"]
    print(f"{'raw decode+model, 1 process':<28}{'':>8}{v:9.1f}{100 * v / ref:6.0f}%")
    for label, rows in (
        (f"server, batch ≤ {args.batch_size}", batched),
        ("server, batching off", unbatched),
    ):
        for r in rows:
            print(
                f"{label:<28}{r['concurrency']:>8}{r['images_per_s']:9.1f}"
                f"{100 * r['images_per_s'] / ref:6.0f}%{r['p50_ms']:9.1f}{r['p99_ms']:9.1f}"
                f"{r['mean_batch']:7.1f}"
            )
    result = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
        },
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "raw": raw,
        "server_batched": batched,
        "server_unbatched": unbatched,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
