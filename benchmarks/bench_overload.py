"""Overload benchmark: what refusing costs, and whether accepted requests stay on time.

Starts ``emojinet serve`` (the container's command line) and drives ``POST /suggest`` with
real photos. First closed-loop clients (each sends its next request as soon as it has an answer)
find the saturated throughput, the most 200s per second. Then requests arrive open-loop at 10x
that rate (Poisson), which is what 10x overload means: ten times the work the server can do.
Then, as a stress figure, 10x the saturating number of closed-loop clients that ignore
``Retry-After`` and retry at once. Reported: useful throughput (200s per second), refusals per
second and the latency of the accepted (200) requests, against the goals: useful throughput under
10x overload ≥ 90% of saturation, accepted p99 ≤ queue deadline + one batch. A last part sends
pixel-heavy PNGs (small files of many pixels: decoding is the bottleneck).

    python benchmarks/bench_overload.py                      # built-in model, ONNX Runtime
    python benchmarks/bench_overload.py --max-queue 256 --seconds 10

Everything runs on this machine: clients, server and model share its cores.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
from bench_serve import free_port, launch_server, photos
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,  # EMOJINET_REFUSAL_DELAY_S and other settings pass through
        "EMOJINET_BACKEND": args.backend,
        "EMOJINET_DEVICE": "cpu",
        "EMOJINET_MAX_QUEUE": str(args.max_queue),
        "EMOJINET_MAX_BATCH_SIZE": str(args.batch_size),
        "EMOJINET_QUEUE_DEADLINE_S": str(args.deadline),
        "EMOJINET_LOG_LEVEL": "warning",
    }
    if args.model:
        env["EMOJINET_MODEL"] = args.model
    return launch_server(env, port)


def multipart_request(
    data: bytes, mime: str, *, path: str = "/suggest", field: str = "image", copies: int = 1
) -> bytes:
    """A whole ``POST`` with the image as multipart field(s) ``field``, ready to send."""
    boundary = "emojinet-bench-boundary"
    part = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="x"\r\n'
            f"Content-Type: {mime}\r\n\r\n"
        ).encode()
        + data
        + b"\r\n"
    )
    body = part * copies + f"--{boundary}--\r\n".encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: bench\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


# What a keep-alive connection the server closed while it sat idle in the pool looks like.
_STALE = ("ConnectionResetError", "IncompleteReadError", "BrokenPipeError")


async def _exchange(
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None, port: int, request: bytes
) -> tuple[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None, str]:
    """One request on a keep-alive connection (opened if needed); the status, or the error."""
    try:
        if conn is None:
            conn = await asyncio.open_connection("127.0.0.1", port)
        reader, writer = conn
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = head[9:12].decode()
        length = 0
        for line in head.lower().split(b"\r\n"):
            if line.startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        if b"connection: close" in head.lower():
            writer.close()
            conn = None
        return conn, status
    except (OSError, asyncio.IncompleteReadError) as exc:
        if conn is not None:
            conn[1].close()
        return None, type(exc).__name__


async def drive(
    url: str, images: list[tuple[bytes, str]], clients: int, seconds: float
) -> dict[str, Any]:
    """``clients`` closed-loop clients for ``seconds`` (after 1 s of warm-up).

    Each client holds one keep-alive connection and sends prepared bytes, so the load generator
    costs little CPU next to the server (httpx would take a core here at 80 clients).
    """
    port = int(url.rsplit(":", 1)[1])
    requests = [multipart_request(data, mime) for data, mime in images]
    latencies: list[float] = []
    codes: dict[str, int] = {}

    async def one(worker: int, stop: float) -> None:
        conn = None
        i = worker
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            conn, code = await _exchange(conn, port, requests[i % len(requests)])
            i += clients
            if code == "200":
                latencies.append(time.perf_counter() - t0)
            codes[code] = codes.get(code, 0) + 1
        if conn is not None:
            conn[1].close()

    await asyncio.gather(*(one(w, time.perf_counter() + 1.0) for w in range(clients)))
    latencies.clear()
    codes.clear()
    t0 = time.perf_counter()
    await asyncio.gather(*(one(w, t0 + seconds) for w in range(clients)))
    wall = time.perf_counter() - t0
    lat = np.array(latencies) * 1000 if latencies else np.array([float("nan")])
    refused = sum(v for k, v in codes.items() if k in ("429", "503"))
    return {
        "clients": clients,
        "ok_per_s": len(latencies) / wall,
        "refused_per_s": refused / wall,
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "status_counts": dict(sorted(codes.items())),
    }


async def offer(
    url: str, images: list[tuple[bytes, str]], rate: float, seconds: float, seed: int = 0
) -> dict[str, Any]:
    """Open loop: requests arrive at ``rate`` per second (Poisson), whatever the answers.

    This is what "10x overload" means for a service: ten times more work offered than it can do.
    Each arrival takes an idle keep-alive connection or opens one.
    """
    port = int(url.rsplit(":", 1)[1])
    requests = [multipart_request(data, mime) for data, mime in images]
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    latencies: list[float] = []
    codes: dict[str, int] = {}
    rng = np.random.default_rng(seed)

    async def fire(i: int, record: bool) -> None:
        conn = idle.pop() if idle else None
        t0 = time.perf_counter()
        reused = conn is not None
        conn, code = await _exchange(conn, port, requests[i % len(requests)])
        if reused and conn is None and code in _STALE:  # closed while idle: as HTTP clients do,
            conn, code = await _exchange(None, port, requests[i % len(requests)])  # retry once
        if conn is not None:
            idle.append(conn)
        if record:
            codes[code] = codes.get(code, 0) + 1
            if code == "200":
                latencies.append(time.perf_counter() - t0)

    tasks = []
    start = time.perf_counter()
    t, i = 0.0, 0
    while t < seconds + 1.0:  # the first second warms up and is not counted
        t += float(rng.exponential(1.0 / rate))
        await asyncio.sleep(max(0.0, start + t - time.perf_counter()))
        tasks.append(asyncio.ensure_future(fire(i, record=t >= 1.0)))
        i += 1
    await asyncio.gather(*tasks)
    for _, writer in idle:
        writer.close()
    lat = np.array(latencies) * 1000 if latencies else np.array([float("nan")])
    refused = sum(v for k, v in codes.items() if k in ("429", "503"))
    return {
        "offered_per_s": rate,
        "ok_per_s": len(latencies) / seconds,
        "refused_per_s": refused / seconds,
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "status_counts": dict(sorted(codes.items())),
    }


def max_batch_ms(url: str) -> float:
    """The slowest forward pass so far, from the server's histogram (an upper bucket bound)."""
    text = httpx.get(f"{url}/metrics").text
    count = float(text.split("emojinet_inference_seconds_count ")[1].split()[0])
    for line in text.splitlines():
        if line.startswith("emojinet_inference_seconds_bucket{le="):
            le, value = line.split('le="')[1].split('"')[0], float(line.split()[-1])
            if value >= count:
                return float(le) * 1000
    return float("nan")


def pixel_heavy_pngs() -> list[tuple[bytes, str]]:
    """40 MP in about 120 kB each: the decoder, not the network or the model, is the cost."""
    out = []
    for color in ((200, 30, 30), (30, 200, 30)):
        buf = io.BytesIO()
        Image.new("RGB", (6_400, 6_250), color).save(buf, format="PNG")
        out.append((buf.getvalue(), "image/png"))
    return out


def rate_of(res: dict[str, Any]) -> float:
    return float(res["rounds"][0]["overload"]["offered_per_s"])


def print_rows(title: str, rows: list[dict[str, Any]], base: float, budget_ms: float) -> None:
    print(f"\n{title}")
    head = f"{'load':>16}{'200/s':>8}{'% sat.':>8}{'refused/s':>11}{'p50 ms':>9}{'p99 ms':>9}"
    print(head + f"{'p99 ≤ ' + format(budget_ms, '.0f') + ' ms':>14}  statuses")
    print("-" * (len(head) + 40))
    for r in rows:
        load = f"{r['clients']} clients" if "clients" in r else f"{r['offered_per_s']:.0f} req/s"
        ok = "yes" if r["p99_ms"] <= budget_ms else "NO"
        print(
            f"{load:>16}{r['ok_per_s']:8.1f}{100 * r['ok_per_s'] / base:7.0f}%"
            f"{r['refused_per_s']:11.1f}{r['p50_ms']:9.0f}{r['p99_ms']:9.0f}{ok:>14}  "
            f"{r['status_counts']}"
        )


def _with_cpu(server: psutil.Process, run: Any) -> dict[str, Any]:
    """``run()``'s row, plus the server's CPU seconds per answer it gave meanwhile, and the
    cores this load generator used (it shares the machine with the server)."""
    before, client_before, t0 = server.cpu_times(), time.process_time(), time.perf_counter()
    row: dict[str, Any] = run()
    after, client_after, wall = server.cpu_times(), time.process_time(), time.perf_counter() - t0
    cpu = (after.user + after.system) - (before.user + before.system)
    row["server_cpu_ms_per_answer"] = 1000 * cpu / max(1, sum(row["status_counts"].values()))
    row["server_cores"] = cpu / wall
    row["client_cores"] = (client_after - client_before) / wall
    return row


def storm_refused_share(row: dict[str, Any]) -> float:
    """The share of a run's answers that were refusals (429 or 503)."""
    statuses = row["status_counts"]
    total = sum(statuses.values())
    return sum(n for code, n in statuses.items() if code in ("429", "503")) / max(1, total)


def measure(args: argparse.Namespace, url: str, server: psutil.Process) -> dict[str, Any]:
    """The sweep; saturation and 10x offered load in alternation (so drift in the machine's
    load hits both alike); the retry storm; the pixel-heavy part. All on one server."""
    images = [(b, "image/jpeg") for b in photos(640)]
    sweep = []
    for c in (int(x) for x in args.sweep.split(",")):
        sweep.append(asyncio.run(drive(url, images, c, args.seconds)))
        print(f"  {c:>3} clients: {sweep[-1]['ok_per_s']:6.1f} 200/s", flush=True)
    best = max(sweep, key=lambda r: r["ok_per_s"])
    rate = args.factor * best["ok_per_s"]
    pairs = []
    for _ in range(args.rounds):
        sat = _with_cpu(
            server, lambda: asyncio.run(drive(url, images, best["clients"], args.seconds))
        )
        over = _with_cpu(server, lambda: asyncio.run(offer(url, images, rate, args.seconds)))
        pairs.append(
            {"saturation": sat, "overload": over, "ratio": over["ok_per_s"] / sat["ok_per_s"]}
        )
        print(
            f"  {best['clients']} clients {sat['ok_per_s']:6.1f} 200/s, then {rate:.0f} req/s "
            f"offered {over['ok_per_s']:6.1f} 200/s: {100 * pairs[-1]['ratio']:.0f}%",
            flush=True,
        )
    storm = _with_cpu(
        server, lambda: asyncio.run(drive(url, images, args.factor * best["clients"], args.seconds))
    )
    pngs = pixel_heavy_pngs()
    heavy = asyncio.run(drive(url, pngs, args.pixel_heavy_clients, args.seconds))
    return {
        "sweep": sweep,
        "saturation": best,
        "rounds": pairs,
        "overload_useful_ratio": float(np.median([pr["ratio"] for pr in pairs])),
        "storm": storm,
        "pixel_heavy": heavy,
        "pixel_heavy_png_bytes": len(pngs[0][0]),
        "slowest_batch_ms": max_batch_ms(url),
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default="", help="release artifact (default: the built-in model)")
    p.add_argument("--backend", default="onnx", choices=["auto", "torch", "onnx"])
    p.add_argument("--max-queue", type=int, default=8, help="EMOJINET_MAX_QUEUE")
    p.add_argument("--batch-size", type=int, default=8, help="EMOJINET_MAX_BATCH_SIZE")
    p.add_argument("--deadline", type=float, default=1.0, help="EMOJINET_QUEUE_DEADLINE_S")
    p.add_argument("--sweep", default="1,2,4,6,8", help="client counts to find saturation")
    p.add_argument("--factor", type=int, default=10, help="overload = factor x saturation")
    p.add_argument("--seconds", type=float, default=8.0, help="measured time per level")
    p.add_argument("--rounds", type=int, default=3, help="saturation/overload pairs")
    p.add_argument("--pixel-heavy-clients", type=int, default=16)
    p.add_argument(
        "--out",
        default="runs/bench/overload.json",
        help="JSON output (default: %(default)s); --out benchmarks/results/overload.json "
        "updates the committed figures",
    )
    args = p.parse_args()

    proc, url = start_server(args)
    try:
        res = measure(args, url, psutil.Process(proc.pid))
    finally:
        proc.terminate()
        proc.wait(60)
    budget_ms = args.deadline * 1000 + res["slowest_batch_ms"]
    base = res["saturation"]["ok_per_s"]
    rows = [*res["sweep"]]
    for pair in res["rounds"]:
        rows += [pair["saturation"], pair["overload"]]
    print_rows(
        f"Photos ≤ 640 px, EMOJINET_MAX_QUEUE={args.max_queue}, deadline {args.deadline:g} s, "
        f"slowest batch ≤ {res['slowest_batch_ms']:.0f} ms",
        [*rows, res["storm"]],
        base,
        budget_ms,
    )
    cpu = [(p["saturation"], p["overload"]) for p in res["rounds"]]
    print(
        f"\n{args.factor}x overload (open loop, {rate_of(res):.0f} req/s offered): "
        f"{100 * res['overload_useful_ratio']:.0f}% of the throughput at saturation measured "
        "just before it (median of the rounds; goal ≥ 90%). Server CPU per answer: "
        f"{np.median([s['server_cpu_ms_per_answer'] for s, _ in cpu]):.1f} ms at saturation, "
        f"{np.median([o['server_cpu_ms_per_answer'] for _, o in cpu]):.2f} ms under overload, "
        f"{res['storm']['server_cpu_ms_per_answer']:.2f} ms in the retry storm "
        f"({100 * storm_refused_share(res['storm']):.0f}% of its answers refusals). "
        "Cores used by the server / by this load generator: "
        f"{np.median([s['server_cores'] for s, _ in cpu]):.2f} / "
        f"{np.median([s['client_cores'] for s, _ in cpu]):.2f} at saturation, "
        f"{np.median([o['server_cores'] for _, o in cpu]):.2f} / "
        f"{np.median([o['client_cores'] for _, o in cpu]):.2f} under overload. "
        "The last row: clients that ignore Retry-After and retry at once."
    )
    print_rows(
        f"40 MP PNGs ({res['pixel_heavy_png_bytes'] // 1000} kB each): decode-bound",
        [res["pixel_heavy"]],
        base,
        budget_ms,
    )
    result = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "load_average": os.getloadavg(),
        },
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "accepted_p99_budget_ms": budget_ms,
        **res,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
