"""Where one answer's CPU goes in ``emojinet serve``: py-spy samples under wrk load, by stage.

Starts the server with its defaults, drives ``POST /suggest`` with wrk (32 clients, one photo),
and meanwhile samples every thread with ``py-spy record --idle`` (sampling, so it slows the
server a little and does not change where its time goes). Each sample is put in the stage of
its innermost recognised frame (HTTP parsing, multipart, routing and admission, JSON, top-k,
decode, resize, normalise, stack, model); samples of threads waiting for work are left out.
The stages' shares of the samples, times the server's measured CPU per answer, give
milliseconds per answer. Prints a table, writes JSON.

    python benchmarks/profile_serve.py                  # the 1080x720 photo, 20 s
    python benchmarks/profile_serve.py --photo 451x300 --seconds 10

Needs wrk and py-spy (``make profile-serve`` installs both).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

from bench_serve import REPO, start_emojinet, test_photos, thread_cpu, write_result, wrk

# Innermost match wins; checked against each frame from the leaf up.
STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("model (ONNX Runtime)", ("Session.run",)),
    ("stack the batch", ("stack (numpy",)),
    ("resize", ("Image.resize",)),
    ("normalise", ("eval_array", "_normalise_table")),
    ("read the header", ("probe_image",)),
    ("decode", ("decode_image", "ImageFile.load", "_reduce", "_to_rgb")),
    ("multipart", ("service/multipart.py", "python_multipart/")),
    ("HTTP parsing (httptools)", ("httptools/", "httptools_impl.py", "service/protocol.py")),
    ("top-k", ("top_k", "_emojis", "ranking")),
    ("JSON answer", ("serialize_response", "jsonable_encoder", "render", "pydantic")),
    ("metrics and logs", ("prometheus_client/", "logging/", "service/logs.py")),
    ("routing, middleware, admission, gate", ("starlette/", "fastapi/", "service/")),
    ("event loop", ("asyncio/", "selectors.py", "uvicorn/")),
]
# Leaves of threads that wait for work.
IDLE = ("_worker (concurrent/futures/thread.py", "EpollSelector.select", "Condition.wait", "wait (")


def stage_of(frames: list[str]) -> str | None:
    if frames[-1].startswith(IDLE):
        return None
    for frame in reversed(frames):
        for stage, keys in STAGES:
            if any(k in frame for k in keys):
                return stage
    return "other"


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--photo", default="1080x720", choices=["451x300", "1080x720"])
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--seconds", type=int, default=20)
    p.add_argument("--out", default="runs/bench/profile.json", help="(default: %(default)s)")
    args = p.parse_args()
    spy = shutil.which("py-spy")
    if spy is None or shutil.which("wrk") is None:
        raise SystemExit("needs py-spy and wrk on PATH: make profile-serve installs them")

    data, _ = test_photos()[args.photo]
    proc, url = start_emojinet({})
    try:
        with tempfile.TemporaryDirectory() as tmp:
            photo, raw = Path(tmp) / "photo.jpg", Path(tmp) / "samples.txt"
            photo.write_bytes(data)
            wrk(url, photo, 8, 3)  # warm-up
            before = thread_cpu(proc.pid, {})
            record = [spy, "record", "-p", str(proc.pid), "--idle", "--nonblocking"]
            record += ["-r", "200", "-d", str(args.seconds), "--format", "raw", "-o", str(raw)]
            spying = subprocess.Popen(record, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            row = wrk(url, photo, args.clients, args.seconds)
            spying.wait(60)
            cpu_ms = 1000 * (thread_cpu(proc.pid, {})["all"] - before["all"]) / row["requests"]
            samples: Counter[str] = Counter()
            for line in raw.read_text().splitlines():
                stack, _, count = line.rpartition(" ")
                if not count.isdigit():  # py-spy leaves a blank line now and then
                    continue
                stage = stage_of(stack.split(";"))
                if stage is not None:
                    samples[stage] += int(count)
    finally:
        proc.terminate()
        proc.wait(60)

    busy = sum(samples.values())
    stages = {s: {"share": n / busy, "ms": cpu_ms * n / busy} for s, n in samples.most_common()}
    print(
        f"\n{args.photo} photo, {args.clients} clients: {row['answers_per_s']:.1f} answers/s "
        f"under py-spy; {cpu_ms:.1f} ms of CPU per answer\n"
    )
    print(f"{'stage':<40}{'share':>7}{'ms/answer':>11}")
    for stage, v in stages.items():
        print(f"{stage:<40}{100 * v['share']:6.1f}%{v['ms']:11.2f}")
    result = {"settings": vars(args), "load": row, "cpu_ms_per_answer": cpu_ms, "stages": stages}
    print(f"\nwrote {write_result(args.out, result)} (repo {REPO.name})")


if __name__ == "__main__":
    main()
