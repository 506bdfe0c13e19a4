"""Where the cores wait under load: worker occupancy and the latency of each thread hand-off.

``make profile-serve`` says where an answer's CPU goes; this says when the cores have nothing to
run although clients are waiting. It starts ``emojinet serve`` in a child process with two hooks
installed (the service's code is not changed): every ``run_in_executor`` job records when it was
handed to its thread, when that thread started it, when it ended and when the event loop took its
result back. Under ``wrk`` (the same script as ``make bench-serve``) it prints, per cell:

- the share of time the decode threads and model lanes together ran fewer jobs than there are
  cores (a core then idles unless the event loop or the load generator uses it), and the
  machine's idle share from ``/proc/stat``;
- for the model lanes and the decode threads: loop → thread (handed over until the thread
  starts it) and thread → loop (the job ended until the loop runs its completion), p50 / p90 /
  p99.

    python benchmarks/profile_idle.py                       # both photos, 8 and 32 clients
    python benchmarks/profile_idle.py --photos 1080x720 --clients 8 --seconds 5

Needs Debian's ``wrk``; writes ``runs/bench/profile_idle.json`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import runpy
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_serve as bs

KINDS = {"device": "model lane", "preprocess": "decode"}
# (kind, handed over, started, ended, result taken back by the loop): perf_counter seconds
Record = tuple[str, float, float, float, float]


# -- in the server's process ------------------------------------------------------------------


def _install_hooks(out: Path) -> None:
    """Time every executor job; SIGUSR1 starts a recording, the next SIGUSR1 writes it."""
    records: list[Record] = []
    window: list[float] = []
    original = asyncio.BaseEventLoop.run_in_executor

    def run_in_executor(self: Any, executor: Any, func: Callable[..., Any], *args: Any) -> Any:
        handed = time.perf_counter()
        seen: list[Any] = ["other", 0.0, 0.0]

        def timed() -> Any:
            prefix = threading.current_thread().name.split("_")[0]
            seen[:2] = [KINDS.get(prefix, "other"), time.perf_counter()]
            try:
                return func(*args)
            finally:
                seen[2] = time.perf_counter()

        def taken_back(_: Any) -> None:
            if window and seen[1]:
                records.append((seen[0], handed, seen[1], seen[2], time.perf_counter()))

        future = original(self, executor, timed)
        future.add_done_callback(taken_back)
        return future

    def on_signal(_signum: int, _frame: Any) -> None:
        if not window:
            records.clear()
            window.append(time.perf_counter())
            return
        span = [window.pop(), time.perf_counter()]
        out.write_text(json.dumps({"span": span, "records": records}))

    asyncio.BaseEventLoop.run_in_executor = run_in_executor  # type: ignore[method-assign,assignment]
    signal.signal(signal.SIGUSR1, on_signal)


def _child(out: Path, port: int) -> None:
    _install_hooks(out)
    sys.argv = bs.serve_argv("127.0.0.1", port)
    runpy.run_module("emojinet", run_name="__main__", alter_sys=True)


# -- the analysis -----------------------------------------------------------------------------


def occupancy(intervals: Sequence[tuple[float, float]], span: tuple[float, float]) -> list[float]:
    """Share of ``span`` during which 0, 1, 2, ... of ``intervals`` were running at once."""
    start, end = span
    edges = sorted(
        [(max(a, start), 1) for a, b in intervals if b > start and a < end]
        + [(min(b, end), -1) for a, b in intervals if b > start and a < end]
    )
    shares: list[float] = [0.0]
    running, last = 0, start
    for t, step in edges:
        shares += [0.0] * (running + 1 - len(shares))
        shares[running] += t - last
        running, last = running + step, t
    shares += [0.0] * (running + 1 - len(shares))
    shares[running] += end - last
    return [s / (end - start) for s in shares]


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50, p90 and p99 in ms of ``values`` in seconds (nearest rank); empty gives zeros."""
    ranked = sorted(values)
    if not ranked:
        return {"p50_ms": 0.0, "p90_ms": 0.0, "p99_ms": 0.0}
    at = {q: ranked[min(len(ranked) - 1, int(q / 100 * len(ranked)))] for q in (50, 90, 99)}
    return {f"p{q}_ms": round(1000 * v, 3) for q, v in at.items()}


def analyse(recording: dict[str, Any], cores: int) -> dict[str, Any]:
    span = (recording["span"][0], recording["span"][1])
    records: list[Record] = [tuple(r) for r in recording["records"]]  # type: ignore[misc]
    workers = [(r[2], r[3]) for r in records if r[0] in KINDS.values()]
    shares = occupancy(workers, span)
    out: dict[str, Any] = {
        "workers_running_share": [round(s, 4) for s in shares],
        "fewer_workers_than_cores_share": round(sum(shares[:cores]), 4),
    }
    for kind in KINDS.values():
        mine = [r for r in records if r[0] == kind]
        out[kind] = {
            "jobs": len(mine),
            "loop_to_thread": percentiles([r[2] - r[1] for r in mine]),
            "thread_to_loop": percentiles([r[4] - r[3] for r in mine]),
        }
    return out


# -- the run ----------------------------------------------------------------------------------


def _proc_stat() -> tuple[int, int]:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields), fields[3] + fields[4]


def cell(proc: subprocess.Popen[bytes], url: str, photo: Path, clients: int, seconds: float,
         out: Path) -> dict[str, Any]:  # fmt: skip
    out.unlink(missing_ok=True)
    total0, idle0 = _proc_stat()
    os.kill(proc.pid, signal.SIGUSR1)
    row = bs.wrk(url, photo, clients, seconds)
    os.kill(proc.pid, signal.SIGUSR1)
    total1, idle1 = _proc_stat()
    end = time.monotonic() + 10
    while not out.exists() and time.monotonic() < end:
        time.sleep(0.05)
    row["machine_idle_share"] = round((idle1 - idle0) / max(total1 - total0, 1), 4)
    row |= analyse(json.loads(out.read_text()), os.cpu_count() or 1)
    return row


def print_rows(rows: list[dict[str, Any]]) -> None:
    def lat(d: dict[str, float]) -> str:
        return f"{d['p50_ms']:.2f} / {d['p90_ms']:.2f} / {d['p99_ms']:.2f}"

    print(
        "| clients | answers/s | machine idle | fewer jobs than cores | "
        "loop → lane | lane → loop | loop → decode | decode → loop |  (ms: p50 / p90 / p99)"
    )
    print("|---:|---:|---:|---:|---|---|---|---|")
    for r in rows:
        lane, dec = r["model lane"], r["decode"]
        print(
            f"| {r['clients']} | {r['answers_per_s']:.1f} | {100 * r['machine_idle_share']:.1f}% "
            f"| {100 * r['fewer_workers_than_cores_share']:.1f}% | {lat(lane['loop_to_thread'])} "
            f"| {lat(lane['thread_to_loop'])} | {lat(dec['loop_to_thread'])} "
            f"| {lat(dec['thread_to_loop'])} |"
        )


def profile_photo(data: bytes, clients: list[int], seconds: float) -> list[dict[str, Any]]:
    """The cells of one photo on one server started for it (with the hooks) and warmed up."""
    with tempfile.TemporaryDirectory() as tmp:
        photo, record = Path(tmp) / "photo.jpg", Path(tmp) / "record.json"
        photo.write_bytes(data)
        port = bs.free_port()
        cmd = [sys.executable, __file__, "--child", str(port), "--record", str(record)]
        proc = subprocess.Popen(cmd, env=bs.serve_env({}), cwd=bs.REPO, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            bs.wait_ready(proc, f"{url}/readyz", "the server")
            bs.wrk(url, photo, 8, 2)  # warm-up
            return [cell(proc, url, photo, c, seconds, record) for c in clients]
        finally:
            bs.stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", default="451x300,1080x720", help="default: %(default)s")
    parser.add_argument("--clients", default="8,32", help="default: %(default)s")
    parser.add_argument("--seconds", type=float, default=10.0, help="a cell (default: %(default)s)")
    parser.add_argument(
        "--out",
        default="runs/bench/profile_idle.json",
        help="JSON output (default: %(default)s); --out benchmarks/results/profile_idle.json "
        "updates the committed figures",
    )
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)  # the server, on this port
    parser.add_argument("--record", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.record, args.child)
        return
    photos = bs.test_photos()
    clients = [int(c) for c in args.clients.split(",")]
    result: dict[str, Any] = {"machine": bs.machine(), "seconds": args.seconds, "photos": {}}
    for name in args.photos.split(","):
        rows = profile_photo(photos[name][0], clients, args.seconds)
        result["photos"][name] = rows
        print(f"\n{name} photo, {args.seconds:g} s cells, {os.cpu_count()} cores")
        print_rows(rows)
    print(f"wrote {bs.write_result(args.out, result)}")


if __name__ == "__main__":
    main()
