"""How close can a server of this design get to the ceiling on this machine? Three servers, one run.

For the small and the 1080x720 photo of ``bench_serve.py`` at 8 and 32 clients, back to back in
each cell (in turn first), under the same ``wrk`` script:

- ``emojinet serve`` with its defaults;
- ``minimal`` (``floor_apps.Minimal``): the same design with nothing else (multipart, a
  pool of two decode threads, two single-threaded lanes batching up to 8, top 5, JSON; no
  admission, limits, deadlines, metrics, logs or FastAPI);
- ``empty``: uvicorn answering a fixed JSON after reading the body, held so that it runs at the
  rate ``emojinet serve`` reached in that cell: the CPU an HTTP request costs with no work at all.

Prints answers/s, the share of the ceiling (``bench_serve.ceiling``, measured before and after a
photo's cells, their mean) and the CPU per answer by thread; writes JSON.

    python benchmarks/bench_floor.py --out benchmarks/results/floor.json

Needs Debian's ``wrk`` and py-spy (thread names), as ``make bench-serve`` installs them.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_serve as bs  # a sibling script, not a package

SERVERS = ("emojinet", "minimal", "empty")


def start_floor(app: str, hold_s: float = 0.0) -> tuple[subprocess.Popen[bytes], str]:
    port = bs.free_port()
    env = {**os.environ, "FLOOR_HOLD_S": f"{hold_s:.6f}"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(bs.REPO), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "uvicorn", "--app-dir", str(bs.REPO / "benchmarks")]
    cmd += [f"floor_apps:{app}", "--port", str(port), "--http", "httptools", "--loop", "asyncio"]
    cmd += ["--no-access-log", "--log-level", "warning"]
    cmd += ["--factory"] if app == "Minimal" else []  # a class: uvicorn makes the app
    proc = subprocess.Popen(cmd, env=env, cwd=bs.REPO, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    bs.wait_ready(proc, f"{url}/health", f"the {app} app")
    return proc, url


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    names: dict[str, str] = field(default_factory=dict)  # thread id → name, after a warm-up

    def warm(self, photo: Path) -> None:
        """A short run on ``photo``; the first one starts the thread pools, so names them."""
        bs.wrk(self.url, photo, 8, 2)
        self.names = self.names or bs.thread_names(self.proc.pid)

    def cell(self, photo: Path, c: int, seconds: float) -> dict[str, Any]:
        return bs.cpu_cell(self.proc, self.url, photo, c, seconds, self.names)


def photo_cells(
    args: argparse.Namespace, photo: Path, up: dict[str, Server]
) -> dict[int, dict[str, dict[str, Any]]]:
    out: dict[int, dict[str, dict[str, Any]]] = {}
    for i, c in enumerate(args.clients):
        rows: dict[str, dict[str, Any]] = {}
        for name in SERVERS[:2] if i % 2 == 0 else SERVERS[1::-1]:
            rows[name] = up[name].cell(photo, c, args.seconds)
        empty = Server(*start_floor("empty", hold_s=c / max(rows["emojinet"]["answers_per_s"], 1)))
        try:
            empty.warm(photo)
            rows["empty"] = empty.cell(photo, c, args.seconds)
        finally:
            bs.stop(empty.proc)
        out[c] = {k: rows[k] for k in SERVERS}
    return out


def run(args: argparse.Namespace, tmp: str) -> dict[str, Any]:
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    result: dict[str, Any] = {"machine": bs.machine(), "settings": settings, "photos": {}}
    up: dict[str, Server] = {}
    try:
        up["emojinet"] = Server(*bs.start_emojinet({}))
        up["minimal"] = Server(*start_floor("Minimal"))
        for name, (data, _) in bs.test_photos().items():
            photo = Path(tmp) / f"{name}.jpg"
            photo.write_bytes(data)
            for server in up.values():
                server.warm(photo)
            before = bs.ceiling(data, args.ceiling_seconds)
            cells = photo_cells(args, photo, up)
            ceiling = bs.ceiling_around(data, args.ceiling_seconds, before)
            result["photos"][name] = {"ceiling": ceiling, "cells": cells}
    finally:
        for server in up.values():
            bs.stop(server.proc)
    return result


def print_table(result: dict[str, Any]) -> None:
    print("| photo | clients | ceiling/s | " + " | ".join(SERVERS) + " |")
    print("|---|---:|---:|" + "---|" * len(SERVERS))
    for name, got in result["photos"].items():
        top = got["ceiling"]["ceiling"]
        for c, rows in got["cells"].items():
            shown = []
            for server in SERVERS:
                r = rows[server]
                loop = r["cpu_ms_per_answer"].get("event loop", 0.0)
                share = "" if server == "empty" else f" ({r['answers_per_s'] / top:.0%})"
                shown.append(f"{r['answers_per_s']:.1f}/s{share}, loop {loop:.2f} ms")
            print(f"| {name} | {c} | {top:.1f} | " + " | ".join(shown) + " |")
    print("\nCPU ms per answer by thread, and in all:")
    for name, got in result["photos"].items():
        for c, rows in got["cells"].items():
            for server, r in rows.items():
                print(
                    f"  {name} c={c} {server}: {r['cpu_ms_per_answer']}"
                    f" = {r['cpu_ms_per_answer_total']}"
                )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--clients",
        default="8,32",
        type=lambda s: [int(c) for c in s.split(",")],
        help="comma-separated connection counts",
    )
    p.add_argument("--seconds", type=float, default=10.0, help="measured time per cell")
    p.add_argument("--ceiling-seconds", type=float, default=6.0, help="per arrangement")
    p.add_argument(
        "--out",
        default="runs/bench/floor.json",
        help="JSON output (default: %(default)s); --out benchmarks/results/floor.json "
        "updates the committed figures",
    )
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args, tmp)
    print_table(result)
    print(f"\nwrote {bs.write_result(args.out, result)}")


if __name__ == "__main__":
    main()
