"""The simulator against the real server: one local instance at three loads, measured and simulated.

    python -m deploy.validate_sim                 # measure (wrk, ~3 minutes) and simulate
    python -m deploy.validate_sim --simulate-only deploy/results/validation.json

Measuring starts ``emojinet serve`` on a loopback port with the default settings on the CPU (2
lanes, batches of 8, ``max_queue`` 24 per lane, refusals held 1 s, 1 s deadline) and drives it with
``wrk`` (closed loop: each connection sends its next ``POST /suggest`` of
``emojinet/data/sample.jpg`` as soon as the last one is answered) at each client count,
``--repeats`` times. The simulator then runs the same closed loop through
:func:`deploy.sim.exact.closed_loop` with the CPU profile measured from this code
(``benchmarks/results``). Latency is over every answer, shed ones included, as wrk counts it; shed =
non-2xx answers / all answers. Each measured row also records the server's CPU seconds over the run
(all threads, from /proc) and the machine's load average: this machine is shared, and a busy
neighbour shows up as a slower server."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from deploy.launch import serve_cmd_for_tests

REPO = Path(__file__).resolve().parents[1]
WRK_SCRIPT = REPO / "benchmarks" / "wrk_multipart.lua"
PHOTO = REPO / "emojinet" / "data" / "sample.jpg"
CLIENTS = (4, 32, 192)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_server() -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {**os.environ, "EMOJINET_DEVICE": "cpu", "EMOJINET_LOG_LEVEL": "warning"}
    proc = subprocess.Popen(
        serve_cmd_for_tests("127.0.0.1", port), env=env, cwd=REPO, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    end = time.monotonic() + 300
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=1) as r:
                if r.status == 200:
                    return proc, url
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not become ready")


def _cpu_s(pid: int) -> float:
    """CPU seconds the process has used so far, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wrk(url: str, clients: int, seconds: int, pid: int) -> dict[str, Any]:
    cmd = ["wrk", "-t1", f"-c{clients}", f"-d{seconds}s", "--timeout", "30s", "-s"]
    cmd += [str(WRK_SCRIPT), f"{url}/suggest", "--", str(PHOTO)]
    cpu0 = _cpu_s(pid)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    cpu = _cpu_s(pid) - cpu0
    d: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return {
        "server_cpu_s": cpu,  # the server's CPU over the run, every thread
        "clients": clients,
        "answers": d["requests"],
        "answers_per_s": d["requests"] / (d["duration_us"] / 1e6),
        "p50_ms": d["p50_us"] / 1000,
        "p99_ms": d["p99_us"] / 1000,
        "shed": d["non_2xx"] / max(1, d["requests"]),
        "errors": d["connect_errors"] + d["read_errors"] + d["timeouts"],
        "load_average_1m": os.getloadavg()[0],  # the machine is shared: how busy it was
    }


def measure(clients: tuple[int, ...], seconds: int, repeats: int) -> list[dict[str, Any]]:
    """wrk against a fresh local server: ``repeats`` runs at each client count."""
    proc, url = _start_server()
    try:
        _wrk(url, 8, 3, proc.pid)  # warm-up
        rows = []
        for rep in range(repeats):
            for c in clients:
                row = {**_wrk(url, c, seconds, proc.pid), "repeat": rep}
                print(json.dumps(row))
                rows.append(row)
                time.sleep(2)  # let shed clients' backlog clear
        return rows
    finally:
        proc.terminate()
        proc.wait(60)


def simulate(
    clients: tuple[int, ...], seconds: float, seed: int, results: Path | None = None
) -> list[dict[str, Any]]:
    """The exact single-instance simulator in the same closed loop, with the CPU profile from
    ``results``' ``serve.json`` (default: the committed ``benchmarks/results``)."""
    from deploy.sim.exact import closed_loop
    from deploy.sim.service import RESULTS, cpu_profile

    prof = cpu_profile(results or RESULTS)
    return [
        {"clients": c, **closed_loop(prof, clients=c, seconds=seconds, seed=seed + c).summary()}
        for c in clients
    ]


def _within(sim: float, meas: float) -> str:
    if meas == 0:
        return "yes" if sim < 0.005 else "no"
    return "yes" if abs(sim - meas) <= 0.25 * meas else "no"


def table(measured: list[dict[str, Any]], simulated: list[dict[str, Any]]) -> str:
    """Measured (each repeat) beside simulated, per client count."""
    head = (
        f"{'clients':>7} {'source':<10} {'answers/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'shed':>7}  within 25% (p50, p99, shed vs mean measured)"
    )
    lines = [head, "-" * len(head)]
    for sim in simulated:
        c = sim["clients"]
        rows = [m for m in measured if m["clients"] == c]
        for m in rows:
            lines.append(
                f"{c:>7} {'measured':<10} {m['answers_per_s']:>9.1f} {m['p50_ms']:>8.1f} "
                f"{m['p99_ms']:>8.1f} {m['shed']:>7.1%}"
            )
        keys = ("p50_ms", "p99_ms", "shed")
        mean = {k: sum(m[k] for m in rows) / max(1, len(rows)) for k in keys}
        ok = ", ".join(_within(sim[k], mean[k]) for k in keys)
        lines.append(
            f"{c:>7} {'simulated':<10} {sim['answers_per_s']:>9.1f} {sim['p50_ms']:>8.1f} "
            f"{sim['p99_ms']:>8.1f} {sim['shed']:>7.1%}  {ok}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--simulate-only", type=Path, help="measured rows from an earlier run")
    parser.add_argument("--seconds", type=int, default=20, help="seconds per wrk run")
    parser.add_argument("--repeats", type=int, default=2, help="wrk runs per client count")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("runs/simulate/validation.json"))
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help="folder of the serve.json the CPU profile is read from (default: the committed "
        "benchmarks/results; `python benchmarks/bench_serve.py` writes runs/bench/serve.json, "
        "measured on the machine as it is now)",
    )
    args = parser.parse_args(argv)
    if args.simulate_only:
        measured = json.loads(args.simulate_only.read_text())["measured"]
    else:
        measured = measure(CLIENTS, args.seconds, args.repeats)
    clients = tuple(sorted({int(m["clients"]) for m in measured}))
    simulated = simulate(clients, float(args.seconds), args.seed, args.results)
    print(table(measured, simulated))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    profile = str(args.results or "benchmarks/results")
    out = {"measured": measured, "simulated": simulated, "profile_from": profile}
    args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
