"""Serving benchmark: ``emojinet serve`` under ``wrk``, beside the in-process ceiling and a peer.

For a small (451x300) and a 1080x720 real photo at 1, 8 and 32 clients (each client sends one
``POST /suggest`` multipart upload after another, ``wrk`` with ``benchmarks/wrk_multipart.lua``,
one thread: it costs little CPU), prints and writes as JSON: answers/s, p50, p99, the mean batch,
the server's CPU per answer split by thread (event loop: HTTP, multipart, routing, JSON; decode
pool: decode, resize, normalise; model lanes) and the server's share of the **ceiling**: decode +
preprocess + model in this process with no HTTP, in the best of two arrangements (one pass at a
time on every core, or one single-threaded pass per core), measured just before a photo's cells
and again just after them, and their mean taken (the machine's speed drifts within minutes).

With ``--peer`` it runs the same cells against LitServe (``benchmarks/peer_litserve.py``, same
ONNX file, same preprocessing), cell by cell in turn with ``emojinet serve`` so that load drift
hits both alike. ``make bench-serve`` installs LitServe and py-spy in ``.venv-peer`` (not in the
project's venv: LitServe pulls in uvloop and httptools, which would change what ``emojinet
serve`` runs on) and runs this with ``--peer``.

    python benchmarks/bench_serve.py --peer --peer-python .venv-peer/bin/python
    python benchmarks/bench_serve.py --clients 1,8 --seconds 5     # quicker, no peer

Needs Debian's ``wrk``. Everything runs on this machine: wrk, the server and the model share
its cores.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
WRK_SCRIPT = REPO / "benchmarks" / "wrk_multipart.lua"
EVAL_PHOTO = REPO.parent / "shared" / "eval-dev" / "photos" / "001.jpg"


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


def test_photos() -> dict[str, tuple[bytes, str]]:
    """The two photos: the package's sample (451x300) and a 1080x720 camera photo."""
    small = (REPO / "emojinet" / "data" / "sample.jpg").read_bytes()
    if EVAL_PHOTO.is_file():  # a 1600x1065 camera photo, scaled down
        img, source = Image.open(EVAL_PHOTO).convert("RGB"), f"{EVAL_PHOTO.name} of eval-dev"
    else:  # no eval-dev here: scikit-learn's china.jpg, scaled up
        from sklearn.datasets import load_sample_image

        img, source = Image.fromarray(load_sample_image("china.jpg")), "china.jpg, upscaled"
    buf = io.BytesIO()
    img.resize((1080, 720), Image.Resampling.LANCZOS).save(buf, format="JPEG", quality=90)
    return {"451x300": (small, "emojinet/data/sample.jpg"), "1080x720": (buf.getvalue(), source)}


# -- servers --------------------------------------------------------------------------------


def _launch() -> Any:
    """``deploy/launch.py``, the one place that says how the server is started."""
    spec = importlib.util.spec_from_file_location("_launch", REPO / "deploy" / "launch.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def serve_cmd(host: str, port: int) -> list[str]:
    cmd: list[str] = _launch().serve_cmd_for_tests(host, port)
    return cmd


def serve_argv(host: str, port: int) -> list[str]:
    """The server's command line as the container runs it (``emojinet serve ...``)."""
    argv: list[str] = _launch().serve_argv(host, port)
    return argv


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(proc: subprocess.Popen[bytes], url: str, what: str) -> None:
    end = time.monotonic() + 300
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"{what} did not become ready")


def launch_server(env: dict[str, str], port: int) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``emojinet serve`` on loopback with ``env``; wait (5 min at most) until ready."""
    proc = subprocess.Popen(serve_cmd("127.0.0.1", port), env=env, cwd=REPO, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_ready(proc, f"{url}/readyz", "the server")
    return proc, url


def serve_env(extra_env: dict[str, str]) -> dict[str, str]:
    """The environment ``emojinet serve`` is measured with, plus ``extra_env``."""
    return {
        **os.environ,
        "EMOJINET_MAX_QUEUE": "4096",  # measure throughput, not load shedding
        "EMOJINET_QUEUE_DEADLINE_S": "60",
        "EMOJINET_LOG_LEVEL": "warning",
        **extra_env,
    }


def start_emojinet(extra_env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    return launch_server(serve_env(extra_env), free_port())


def start_peer(python: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cmd = [python, str(REPO / "benchmarks" / "peer_litserve.py"), "--port", str(port)]
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(proc, f"{url}/health", "LitServe")
    return proc, url


# -- measuring ------------------------------------------------------------------------------


def wrk(url: str, photo: Path, clients: int, seconds: float) -> dict[str, Any]:
    """One cell: ``clients`` connections for ``seconds``; wrk's figures (see the Lua script)."""
    cmd = ["wrk", "-t1", f"-c{clients}", f"-d{round(seconds)}s", "--timeout", "30s", "-s"]
    cmd += [str(WRK_SCRIPT), f"{url}/suggest", "--", str(photo)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    d: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    seconds_run = d["duration_us"] / 1e6
    return {
        "clients": clients,
        "answers_per_s": (d["requests"] - d["non_2xx"]) / seconds_run,
        "p50_ms": d["p50_us"] / 1000,
        "p99_ms": d["p99_us"] / 1000,
        "requests": d["requests"],
        "errors": d["non_2xx"] + d["connect_errors"] + d["read_errors"] + d["timeouts"],
    }


def thread_names(pid: int) -> dict[str, str]:
    """Native thread id → Python thread name (from ``py-spy dump``, where it is installed)."""
    spy = shutil.which("py-spy") or str(REPO / ".venv-peer" / "bin" / "py-spy")
    if not Path(spy).is_file():
        return {}
    out = subprocess.run([spy, "dump", "-p", str(pid)], capture_output=True, text=True).stdout
    return {
        tid: re.sub(r"_\d+$", "", name)
        for tid, name in re.findall(r'Thread (?:0x)?(\d+) \(\w+\): "([^"]*)"', out)
    }


def thread_cpu(pid: int, names: dict[str, str]) -> Counter[str]:
    """CPU seconds so far of each of the process's threads, summed by thread name."""
    tick = os.sysconf("SC_CLK_TCK")
    out: Counter[str] = Counter()
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except FileNotFoundError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        name = names.get(tid, "runtime pool" if names else "all")
        out[{"MainThread": "event loop", "asyncio": "event loop"}.get(name, name)] += (
            int(fields[11]) + int(fields[12])
        ) / tick
    return out


def batch_stats(url: str) -> tuple[float, float]:
    text = httpx.get(f"{url}/metrics").text
    got = dict(re.findall(r"^(emojinet_batch_size_(?:sum|count)) (\S+)$", text, re.M))
    return float(got.get("emojinet_batch_size_sum", 0)), float(
        got.get("emojinet_batch_size_count", 0)
    )


def cpu_cell(
    proc: subprocess.Popen[bytes], url: str, photo: Path, c: int, s: float, names: dict[str, str]
) -> dict[str, Any]:
    """One wrk cell on any server process, with its CPU per answer by thread."""
    before = thread_cpu(proc.pid, names)
    row = wrk(url, photo, c, s)
    after = thread_cpu(proc.pid, names)
    n = max(row["requests"], 1)
    cpu = {k: 1000 * (after[k] - before.get(k, 0.0)) / n for k in after}
    row["cpu_ms_per_answer"] = {k: round(v, 2) for k, v in sorted(cpu.items()) if v >= 0.05}
    row["cpu_ms_per_answer_total"] = round(sum(cpu.values()), 2)
    return row


def emojinet_cell(
    proc: subprocess.Popen[bytes], url: str, photo: Path, c: int, s: float, names: dict[str, str]
) -> dict[str, Any]:
    """:func:`cpu_cell` on ``emojinet serve``, with its mean batch (from /metrics)."""
    bsum, bcount = batch_stats(url)
    row = cpu_cell(proc, url, photo, c, s, names)
    asum, acount = batch_stats(url)
    row["mean_batch"] = (asum - bsum) / (acount - bcount) if acount > bcount else 0.0
    return row


def write_result(out: str | Path, result: dict[str, Any]) -> Path:
    """``result`` as JSON at ``out`` (its folder made if need be); the path written."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    return path


def machine() -> dict[str, Any]:
    python = sys.version.split()[0]
    return {"platform": platform.platform(), "cpus": os.cpu_count(), "python": python}


def ceiling(data: bytes, seconds: float) -> dict[str, float]:
    """Photos/s for decode + preprocess + model in this process, no HTTP, two arrangements."""
    from emojinet.predictor import Predictor
    from service.settings import cpu_cores

    cores = cpu_cores()
    out: dict[str, float] = {}
    for label, lanes, threads in (("one_pass_all_cores", 1, None), ("pass_per_core", cores, 1)):
        predictor = Predictor.load(None, backend="onnx", device="cpu", threads=threads)
        predictor.run_batch(np.stack([predictor.preprocess(data)] * 8))  # warm-up
        done = [0] * lanes
        stop = time.perf_counter() + seconds

        def lane(
            i: int, p: Predictor = predictor, until: float = stop, n: list[int] = done
        ) -> None:
            while time.perf_counter() < until:
                p.run_batch(np.stack([p.preprocess(data) for _ in range(8)]))
                n[i] += 8

        t0 = time.perf_counter()
        workers = [threading.Thread(target=lane, args=(i,)) for i in range(lanes)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        out[label] = sum(done) / (time.perf_counter() - t0)
    out["ceiling"] = max(out.values())
    return out


# -- the run --------------------------------------------------------------------------------


def peer_cell(python: str, photo: Path, c: int, s: float) -> dict[str, Any]:
    """One cell on a LitServe started for it (and warmed up), stopped after it."""
    proc, url = start_peer(python)
    try:
        wrk(url, photo, 8, 2)
        return wrk(url, photo, c, s)
    finally:
        stop(proc)


def ceiling_around(data: bytes, seconds: float, before: dict[str, float]) -> dict[str, float]:
    """The ceiling measured ``before`` a photo's cells and again now, after them: their mean
    is what the cells are compared with (this machine's speed drifts by minutes)."""
    after = ceiling(data, seconds)
    out = {f"{k}_before": v for k, v in before.items()} | {
        f"{k}_after": v for k, v in after.items()
    }
    for k in before:
        out[k] = (before[k] + after[k]) / 2
    return out


def run_cells(
    args: argparse.Namespace, files: dict[str, Path]
) -> tuple[
    dict[str, dict[str, float]], dict[str, list[dict[str, Any]]], dict[str, list[dict[str, Any]]]
]:
    """Photo by photo: the ceiling, each cell on ``emojinet serve`` and on the peer back to
    back (in turn first), and the ceiling again.

    The peer runs only for its own cells: an idle LitServe keeps about half a core busy (its
    worker polls its queue), which would be taken from the server being measured. An idle
    ``emojinet serve`` uses next to none, so it stays up.
    """
    ceilings: dict[str, dict[str, float]] = {}
    ours: dict[str, list[dict[str, Any]]] = {name: [] for name in files}
    peer: dict[str, list[dict[str, Any]]] = {name: [] for name in files}
    proc, url = start_emojinet({})
    try:
        for path in files.values():  # warm-up, and the thread names once every pool runs
            wrk(url, path, 8, 2)
        names = thread_names(proc.pid)
        for name, path in files.items():
            data, seconds = path.read_bytes(), min(args.seconds, 10.0)
            before = ceiling(data, seconds)
            for i, c in enumerate(args.clients):
                # The two servers back to back, in turn first, so that drift hits both alike.
                sides = ("emojinet", "litserve") if args.peer else ("emojinet",)
                for side in sides if i % 2 == 0 else sides[::-1]:
                    if side == "emojinet":
                        row = emojinet_cell(proc, url, path, c, args.seconds, names)
                        ours[name].append(row)
                    else:
                        row = peer_cell(args.peer_python, path, c, args.seconds)
                        peer[name].append(row)
                    print(f"  {side} {name} c={c}: {row['answers_per_s']:.1f}/s")
            ceilings[name] = ceiling_around(data, seconds, before)
            print(f"  ceiling {name}: {ceilings[name]}")
    finally:
        stop(proc)
    return ceilings, ours, peer


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group, then wait until every process of it is gone (LitServe's
    workers are child processes that outlive their parent for a while, still using CPU)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.monotonic() + 60
    while time.monotonic() < end:
        proc.poll()
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def print_table(
    ceilings: dict[str, dict[str, float]],
    ours: dict[str, list[dict[str, Any]]],
    peer: dict[str, list[dict[str, Any]]],
) -> None:
    head = (
        f"{'photo':<10}{'clients':>8}{'answers/s':>11}{'p50 ms':>8}{'p99 ms':>8}{'batch':>7}"
        f"{'% ceiling':>10}{'CPU ms':>8}"
    )
    if any(peer.values()):
        head += f"{'LitServe/s':>12}{'p50 ms':>8}{'p99 ms':>8}{'ratio':>7}"
    print("\n" + head + "\n" + "-" * len(head))
    for name, rows in ours.items():
        for i, r in enumerate(rows):
            line = (
                f"{name:<10}{r['clients']:>8}{r['answers_per_s']:11.1f}{r['p50_ms']:8.0f}"
                f"{r['p99_ms']:8.0f}{r['mean_batch']:7.1f}"
                f"{100 * r['answers_per_s'] / ceilings[name]['ceiling']:9.0f}%"
                f"{r['cpu_ms_per_answer_total']:8.1f}"
            )
            if peer[name]:
                q = peer[name][i]
                line += (
                    f"{q['answers_per_s']:12.1f}{q['p50_ms']:8.0f}{q['p99_ms']:8.0f}"
                    f"{r['answers_per_s'] / q['answers_per_s']:6.2f}x"
                )
            print(line)
    for name, c in ceilings.items():
        print(
            f"ceiling {name}: {c['ceiling']:.1f} photos/s, the mean of before and after the "
            f"cells (one pass on all cores {c['one_pass_all_cores_before']:.1f} / "
            f"{c['one_pass_all_cores_after']:.1f}, one single-threaded pass per core "
            f"{c['pass_per_core_before']:.1f} / {c['pass_per_core_after']:.1f})"
        )
    print("\nCPU ms per answer, by thread (32 clients):")
    for name, rows in ours.items():
        print(f"  {name}: {rows[-1]['cpu_ms_per_answer']}")


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--clients", default="1,8,32", help="comma-separated connection counts")
    p.add_argument("--seconds", type=float, default=15.0, help="measured time per cell")
    p.add_argument("--peer", action="store_true", help="also run LitServe (see above)")
    p.add_argument("--peer-python", default=str(REPO / ".venv-peer" / "bin" / "python"))
    p.add_argument(
        "--out",
        default="runs/bench/serve.json",
        help="JSON output (default: %(default)s); --out benchmarks/results/serve.json "
        "updates the committed figures",
    )
    args = p.parse_args()
    args.clients = [int(c) for c in args.clients.split(",")]
    if shutil.which("wrk") is None:
        raise SystemExit("needs wrk: sudo apt-get install wrk (make bench-serve does)")

    test = test_photos()
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for name, (data, _) in test.items():
            files[name] = Path(tmp) / f"{name}.jpg"
            files[name].write_bytes(data)
        ceilings, ours, peer = run_cells(args, files)
    print_table(ceilings, ours, peer)
    result = {
        "machine": machine(),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "photos": {name: {"bytes": len(d), "source": src} for name, (d, src) in test.items()},
        "ceiling": ceilings,
        "emojinet": ours,
        "litserve": peer if args.peer else None,
    }
    print(f"\nwrote {write_result(args.out, result)}")


if __name__ == "__main__":
    main()
