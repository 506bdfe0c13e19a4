"""Start a local server, load it with locust for a fixed time, and judge the run.

    python -m deploy.loadtest.run --users 16 --run-time 60s --out runs/loadtest

The server is started with ``deploy.launch.serve_cmd_for_tests`` on a free loopback port (its
settings come from the ``EMOJINET_*`` environment, as always) and must answer ``/readyz``
before locust starts. Locust runs headless with fixed users, spawn rate and duration and writes
``locust_stats.csv`` and friends plus ``report.html`` to ``--out``. The run fails (exit 1) when
any request failed unexpectedly (intended 429/503 shedding is not a failure), when no request
succeeded, when ``/healthz`` stopped answering during or after the run, or when the server did
not exit within its drain time after SIGTERM. ``--target URL`` loads an already running server
instead (e.g. the stack's load balancer) and skips the start and stop checks.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from deploy.launch import serve_cmd_for_tests

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
HEALTH_PERIOD_S = 1.0
HEALTH_TIMEOUT_S = 2.0
# Consecutive failed /healthz probes that mean "the server stopped answering".
HEALTH_MAX_MISSES = 3


@dataclass
class Summary:
    """What the run measured; written to ``summary.json``."""

    requests: int = 0
    ok: int = 0
    shed: dict[str, int] = field(default_factory=dict)
    failures: int = 0
    failure_messages: list[str] = field(default_factory=list)
    rps: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    health_probes: int = 0
    health_misses: int = 0
    health_max_consecutive_misses: int = 0
    server_exit_code: int | None = None
    seconds_to_ready: float = 0.0
    seconds_of_load: float = 0.0
    seconds_to_exit: float = 0.0
    problems: list[str] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_status(url: str, timeout: float = HEALTH_TIMEOUT_S) -> int | None:
    """The status code of a GET, or None when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except (OSError, TimeoutError):
        return None


def wait_ready(url: str, server: subprocess.Popen[bytes] | None, timeout_s: float) -> None:
    """Poll ``/readyz`` until 200; raise if the server exits or the time runs out."""
    deadline = time.monotonic() + timeout_s
    while http_status(f"{url}/readyz", timeout=1.0) != 200:
        if server is not None and server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode} before it was ready")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url}/readyz did not answer 200 within {timeout_s:g} s")
        time.sleep(0.2)


class HealthWatch(threading.Thread):
    """Probes ``/healthz`` every second while the load runs."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = f"{url}/healthz"
        self.done = threading.Event()
        self.probes = self.misses = self.consecutive = self.max_consecutive = 0

    def run(self) -> None:
        while not self.done.wait(HEALTH_PERIOD_S):
            self.probes += 1
            if http_status(self.url) == 200:
                self.consecutive = 0
            else:
                self.misses += 1
                self.consecutive += 1
                self.max_consecutive = max(self.max_consecutive, self.consecutive)


def read_stats(prefix: Path, summary: Summary) -> None:
    """Fill ``summary`` from locust's ``<prefix>_stats.csv`` and ``_failures.csv``."""
    with open(f"{prefix}_stats.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    shed_requests = 0
    for row in rows:
        name, count = row["Name"], int(row["Request Count"])
        if "[shed " in name:
            status = name.rsplit(" ", 1)[-1].rstrip("]")
            summary.shed[status] = summary.shed.get(status, 0) + count
            shed_requests += count
        if name == "Aggregated":
            summary.requests = count
            summary.failures = int(row["Failure Count"])
            summary.rps = float(row["Requests/s"])
        if name == "/suggest" and count:
            summary.p50_ms = float(row["50%"])
            summary.p95_ms = float(row["95%"])
            summary.p99_ms = float(row["99%"])
    summary.ok = summary.requests - summary.failures - shed_requests
    failures_csv = Path(f"{prefix}_failures.csv")
    if failures_csv.exists():
        with open(failures_csv, newline="") as f:
            summary.failure_messages = [
                f"{r['Method']} {r['Name']}: {r['Error']} (x{r['Occurrences']})"
                for r in csv.DictReader(f)
            ]


def run_locust(url: str, args: argparse.Namespace, out: Path) -> int:
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        url,
        "-u",
        str(args.users),
        "-r",
        str(args.spawn_rate),
        "-t",
        args.run_time,
        "--stop-timeout",
        "5",
        "--csv",
        str(out / "locust"),
        "--html",
        str(out / "report.html"),
        "--only-summary",
        "--loglevel",
        "WARNING",
    ]
    if not args.distribution:
        cmd += ["--exclude-tags", "distribution"]
    with open(out / "locust.log", "wb") as log:
        proc = subprocess.run(
            cmd, stdout=log, stderr=subprocess.STDOUT, timeout=args.run_seconds + 120, check=False
        )
    return proc.returncode


def stop_server(server: subprocess.Popen[bytes], grace_s: float) -> int | None:
    """SIGTERM, then wait for the drain; None if it had to be killed.

    A clean exit is 0 or -SIGTERM: uvicorn re-raises the signal after a graceful shutdown.
    """
    server.send_signal(signal.SIGTERM)
    try:
        return server.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
        return None


def seconds(text: str) -> float:
    """Locust's duration syntax: 90, 90s, 2m, 1h30m."""
    total, number = 0.0, ""
    for ch in text.strip():
        if ch.isdigit() or ch == ".":
            number += ch
        elif ch in "hms" and number:
            total += float(number) * {"h": 3600, "m": 60, "s": 1}[ch]
            number = ""
        else:
            raise argparse.ArgumentTypeError(f"bad duration {text!r}")
    return total + (float(number) if number else 0.0)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--users", "-u", type=int, default=16, help="concurrent users")
    parser.add_argument("--spawn-rate", "-r", type=float, default=8.0, help="users started/s")
    parser.add_argument("--run-time", "-t", default="60s", help="locust duration, e.g. 60s, 5m")
    parser.add_argument("--out", type=Path, default=Path("runs/loadtest"), help="output folder")
    parser.add_argument(
        "--target", default="", help="load this running server instead of starting one"
    )
    parser.add_argument(
        "--no-distribution",
        dest="distribution",
        action="store_false",
        help="leave out /distribution (locust tag 'distribution')",
    )
    parser.add_argument("--ready-timeout", type=float, default=120.0, help="s to wait for /readyz")
    parser.add_argument(
        "--stop-grace", type=float, default=60.0, help="s to wait for exit after SIGTERM"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    args.run_seconds = seconds(args.run_time)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    summary = Summary()

    server: subprocess.Popen[bytes] | None = None
    if args.target:
        url = args.target.rstrip("/")
    else:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server_log = open(out / "server.log", "wb")  # noqa: SIM115 - closed below
        server = subprocess.Popen(
            serve_cmd_for_tests("127.0.0.1", port),
            stdout=server_log,
            stderr=subprocess.STDOUT,
            env=os.environ.copy(),
        )
    try:
        started = time.monotonic()
        wait_ready(url, server, args.ready_timeout)
        summary.seconds_to_ready = round(time.monotonic() - started, 2)
        watch = HealthWatch(url)
        watch.start()
        started = time.monotonic()
        locust_rc = run_locust(url, args, out)
        summary.seconds_of_load = round(time.monotonic() - started, 2)
        watch.done.set()
        watch.join()
        summary.health_probes, summary.health_misses = watch.probes, watch.misses
        summary.health_max_consecutive_misses = watch.max_consecutive
        if locust_rc not in (0, 1):  # 1 only means "some request failed": the CSV says which
            summary.problems.append(f"locust exited with {locust_rc}: see {out / 'locust.log'}")
        else:
            read_stats(out / "locust", summary)
        if http_status(f"{url}/healthz") != 200:
            summary.problems.append("/healthz did not answer 200 after the run")
        if watch.max_consecutive >= HEALTH_MAX_MISSES:
            summary.problems.append(f"/healthz missed {watch.max_consecutive} probes in a row")
    finally:
        if server is not None:
            crashed = server.poll() is not None
            started = time.monotonic()
            summary.server_exit_code = stop_server(server, args.stop_grace)
            summary.seconds_to_exit = round(time.monotonic() - started, 2)
            server_log.close()
            if crashed:
                summary.problems.append(f"the server died during the run: see {out}/server.log")
            elif summary.server_exit_code is None:
                summary.problems.append(f"the server did not exit {args.stop_grace:g} s after TERM")

    if summary.failures:
        summary.problems.append(f"{summary.failures} unexpected failures")
    if summary.ok == 0:
        summary.problems.append("no request succeeded")
    (out / "summary.json").write_text(json.dumps(asdict(summary), indent=2) + "\n")

    print(f"target      {url}  ({args.users} users, {args.run_time})")
    print(f"requests    {summary.requests}  ({summary.rps:.1f}/s)")
    print(f"ok          {summary.ok}")
    print(f"shed        {summary.shed or 0}")
    print(f"failures    {summary.failures}")
    p50, p95, p99 = summary.p50_ms, summary.p95_ms, summary.p99_ms
    print(f"/suggest    p50 {p50:g} ms  p95 {p95:g} ms  p99 {p99:g} ms")
    print(f"/healthz    {summary.health_probes - summary.health_misses}/{summary.health_probes} ok")
    print(f"report      {out / 'report.html'}")
    for message in summary.failure_messages:
        print(f"  {message}")
    for problem in summary.problems:
        print(f"FAIL: {problem}")
    return 1 if summary.problems else 0


if __name__ == "__main__":
    sys.exit(main())
