"""Soak benchmark: the real server for 10 minutes of good and bad traffic; does anything grow?

Starts ``emojinet serve`` (built-in model, ONNX Runtime) on loopback and keeps a steady load of
real photos (``/suggest`` with one or three images, ``/distribution``) mixed with bad requests:
not an image, truncated JPEG, PSD, a 4000x1 strip, pixel-heavy PNGs, a body over the limit,
clients that disconnect mid-upload, made-up methods, malformed HTTP and silent connections.
Every minute a burst of extra clients overloads it for a few seconds (429/503). The server's
resident memory, thread count and open file descriptors are sampled every few seconds.

Goal: after the warm-up (the first two minutes), RSS grows by at most 5% and the thread count
stays flat; no answer is a 500, every request gets an answer. Prints a table and writes JSON.

    python benchmarks/bench_soak.py                 # 10 minutes
    python benchmarks/bench_soak.py --minutes 3 --clients 4
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import random
import struct
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from bench_overload import _exchange, multipart_request, start_server
from bench_serve import photos
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
MiB = 1024 * 1024


def png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, format="PNG")
    return buf.getvalue()


def psd() -> bytes:
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, 3, 4, 8, 3)
    return header + struct.pack(">IIIH", 0, 0, 0, 0) + bytes(36)


def requests_by_kind(images: list[bytes]) -> dict[str, tuple[float, list[bytes]]]:
    """kind → (weight, the prepared requests to choose from)."""
    jpeg = [multipart_request(b, "image/jpeg") for b in images]
    return {
        "photo": (60, jpeg),
        "distribution": (5, [multipart_request(images[0], "image/jpeg", path="/distribution")]),
        "three photos": (
            5,
            [multipart_request(images[1], "image/jpeg", field="images", copies=3)],
        ),
        "not an image": (4, [multipart_request(b"hello, I am text", "image/png")]),
        "truncated JPEG": (3, [multipart_request(images[2][:5000], "image/jpeg")]),
        "PSD": (3, [multipart_request(psd(), "image/vnd.adobe.photoshop")]),
        "4000x1 strip": (3, [multipart_request(png((4000, 1), "L"), "image/png")]),
        "12 MP PNG": (2, [multipart_request(png((4000, 3000)), "image/png")]),
        # The parser refuses a method it does not know (400); the others reach the app (405).
        "made-up method": (
            3,
            [m + b" /suggest HTTP/1.1\r\nHost: soak\r\n\r\n" for m in METHODS],
        ),
    }


async def raw_probe(port: int, kind: str) -> str:
    """The requests that are not a plain exchange: they end the connection on purpose."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        head = b"POST /suggest HTTP/1.1\r\nHost: soak\r\nContent-Type: image/jpeg\r\n"
        if kind == "body over limit":
            writer.write(head + b"Content-Length: 999999999\r\n\r\n")
        elif kind == "malformed HTTP":
            writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        elif kind == "disconnect mid-upload":
            writer.write(head + b"Content-Length: 100000\r\n\r\n" + b"\xff" * 2000)
            await writer.drain()
            return "closed by client"
        else:  # a silent connection: the server closes it after EMOJINET_HEADER_TIMEOUT_S
            data = await asyncio.wait_for(reader.read(), 30)
            return "closed by server" if not data else data[9:12].decode()
        await writer.drain()
        data = await asyncio.wait_for(reader.read(65536), 30)
        return data[9:12].decode() if data else "no answer"
    finally:
        writer.close()


METHODS = (b"X" * 300, b"PROPFIND", b"PURGE", b"SEARCH", b"MKCOL")
RAW = {"body over limit": 2, "malformed HTTP": 2, "disconnect mid-upload": 3, "silent": 1}


async def client(
    port: int, table: dict[str, tuple[float, list[bytes]]], stop: float, counts: dict[str, Any]
) -> None:
    rng = random.Random(os.getpid() ^ id(counts) ^ time.perf_counter_ns())
    kinds = list(table) + list(RAW)
    weights = [table[k][0] for k in table] + list(RAW.values())
    conn = None
    while time.perf_counter() < stop:
        kind = rng.choices(kinds, weights)[0]
        try:
            if kind in RAW:
                outcome = await raw_probe(port, kind)
            else:
                conn, outcome = await _exchange(conn, port, rng.choice(table[kind][1]))
        except (OSError, TimeoutError) as exc:
            conn, outcome = None, type(exc).__name__
        per_kind = counts.setdefault(kind, {})
        per_kind[outcome] = per_kind.get(outcome, 0) + 1
    if conn is not None:
        conn[1].close()


def sample(proc: psutil.Process, t0: float) -> dict[str, float]:
    return {
        "t_s": time.perf_counter() - t0,
        "rss_mib": proc.memory_info().rss / MiB,
        "threads": proc.num_threads(),
        "fds": proc.num_fds(),
    }


async def soak(args: argparse.Namespace, port: int, pid: int) -> dict[str, Any]:
    table = requests_by_kind(photos(640))
    proc = psutil.Process(pid)
    counts: dict[str, Any] = {}
    samples = []
    t0 = time.perf_counter()
    end = t0 + args.minutes * 60
    steady = [asyncio.ensure_future(client(port, table, end, counts)) for _ in range(args.clients)]
    next_burst = t0 + 30
    while time.perf_counter() < end:
        await asyncio.sleep(args.every)
        samples.append(sample(proc, t0))
        s = samples[-1]
        print(
            f"  {s['t_s'] / 60:5.1f} min  RSS {s['rss_mib']:7.1f} MiB  threads {s['threads']:3.0f}"
            f"  fds {s['fds']:4.0f}",
            flush=True,
        )
        if time.perf_counter() >= next_burst and time.perf_counter() + 5 < end:
            stop = time.perf_counter() + 5
            burst = [client(port, table, stop, counts) for _ in range(args.burst_clients)]
            steady.append(asyncio.ensure_future(asyncio.gather(*burst)))
            next_burst += 60
    await asyncio.gather(*steady)
    await asyncio.sleep(2)
    samples.append(sample(proc, t0))
    return {"samples": samples, "counts": counts}


def summary(samples: list[dict[str, float]], warmup_s: float) -> dict[str, float]:
    after = [s for s in samples if s["t_s"] >= warmup_s]
    warm = float(np.median([s["rss_mib"] for s in after[:6]]))
    last = float(np.median([s["rss_mib"] for s in after[-6:]]))
    return {
        "rss_after_warmup_mib": warm,
        "rss_at_end_mib": last,
        "rss_growth_pct": 100 * (last - warm) / warm,
        "rss_max_mib": max(s["rss_mib"] for s in samples),
        "threads_min": min(s["threads"] for s in after),
        "threads_max": max(s["threads"] for s in after),
        "fds_min": min(s["fds"] for s in after),
        "fds_max": max(s["fds"] for s in after),
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--warmup-minutes", type=float, default=2.0)
    p.add_argument("--clients", type=int, default=6, help="steady clients")
    p.add_argument("--burst-clients", type=int, default=40, help="extra clients once a minute")
    p.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    p.add_argument(
        "--out",
        default="runs/bench/soak.json",
        help="JSON output (default: %(default)s); --out benchmarks/results/soak.json "
        "updates the committed figures",
    )
    args = p.parse_args()
    server_args = argparse.Namespace(
        backend="onnx", model="", max_queue=32, batch_size=8, deadline=1.0
    )
    os.environ.setdefault("EMOJINET_HEADER_TIMEOUT_S", "2")
    os.environ.setdefault("EMOJINET_BODY_READ_TIMEOUT_S", "2")
    os.environ.setdefault("EMOJINET_MAX_BODY_BYTES", str(4 * MiB))
    server, url = start_server(server_args)
    try:
        port = int(url.rsplit(":", 1)[1])
        result = asyncio.run(soak(args, port, server.pid))
    finally:
        server.terminate()
        server.wait(60)
    stats = summary(result["samples"], args.warmup_minutes * 60)
    print(f"\n{'request':<24}answers")
    print("-" * 72)
    for kind, outcomes in sorted(result["counts"].items()):
        print(f"{kind:<24}{dict(sorted(outcomes.items()))}")
    errors = sum(o.get("500", 0) for o in result["counts"].values())
    print(
        f"\nRSS after the {args.warmup_minutes:g}-minute warm-up "
        f"{stats['rss_after_warmup_mib']:.0f} MiB, at the end {stats['rss_at_end_mib']:.0f} MiB: "
        f"{stats['rss_growth_pct']:+.1f}% "
        f"(goal ≤ +5%); threads {stats['threads_min']:.0f}-{stats['threads_max']:.0f}, "
        f"fds {stats['fds_min']:.0f}-{stats['fds_max']:.0f}; 500s: {errors}"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "machine": {
                    "platform": platform.platform(),
                    "cpus": os.cpu_count(),
                    "python": sys.version.split()[0],
                    "load_average": os.getloadavg(),
                },
                "settings": vars(args),
                "summary": stats,
                **result,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
