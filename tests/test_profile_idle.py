"""``benchmarks/profile_idle.py``: its hooks time real executor jobs, its sums are right."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from benchmarks.profile_idle import _install_hooks, analyse, occupancy, percentiles


def test_occupancy_splits_the_span_by_how_many_jobs_ran() -> None:
    # one job over [0, 1), another over [0.5, 2): 0.5 s with one, 0.5 with two, 1 with one
    assert occupancy([(0.0, 1.0), (0.5, 2.0)], (0.0, 2.0)) == pytest.approx([0.0, 0.75, 0.25])
    # jobs are clipped to the span; time with nothing running counts as 0
    assert occupancy([(-1.0, 1.0), (3.0, 9.0)], (0.0, 4.0)) == pytest.approx([0.5, 0.5])
    assert occupancy([], (0.0, 1.0)) == [1.0]


def test_percentiles_are_nearest_rank_in_ms() -> None:
    values = [i / 1000 for i in range(1, 101)]  # 1 ... 100 ms
    assert percentiles(values) == {"p50_ms": 51.0, "p90_ms": 91.0, "p99_ms": 100.0}
    assert percentiles([]) == {"p50_ms": 0.0, "p90_ms": 0.0, "p99_ms": 0.0}


def test_analyse_counts_lanes_and_decodes_as_workers() -> None:
    records = [
        ["model lane", 0.0, 1.0, 3.0, 3.5],  # handed over at 0, ran 1-3, taken back at 3.5
        ["decode", 0.0, 0.5, 1.5, 1.6],
        ["other", 0.0, 0.0, 4.0, 4.0],  # not a worker: ignored by the occupancy
    ]
    got = analyse({"span": [0.0, 4.0], "records": records}, cores=2)
    # running: 0-0.5 none, 0.5-1 one, 1-1.5 two, 1.5-3 one, 3-4 none
    assert got["workers_running_share"] == pytest.approx([0.375, 0.5, 0.125])
    assert got["fewer_workers_than_cores_share"] == pytest.approx(0.875)
    assert got["model lane"]["loop_to_thread"]["p50_ms"] == pytest.approx(1000.0)
    assert got["model lane"]["thread_to_loop"]["p50_ms"] == pytest.approx(500.0)
    assert got["decode"]["jobs"] == 1


def test_hooks_time_jobs_between_two_signals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # restored after the test: the hooks patch asyncio and take SIGUSR1
    monkeypatch.setattr(
        asyncio.BaseEventLoop, "run_in_executor", asyncio.BaseEventLoop.run_in_executor
    )
    previous = signal.getsignal(signal.SIGUSR1)
    out = tmp_path / "record.json"
    _install_hooks(out)
    lanes = ThreadPoolExecutor(1, thread_name_prefix="device")
    decoders = ThreadPoolExecutor(1, thread_name_prefix="preprocess")

    async def jobs() -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(lanes, time.sleep, 0.01)  # before the recording: not kept
        os.kill(os.getpid(), signal.SIGUSR1)
        await asyncio.sleep(0)
        await loop.run_in_executor(lanes, time.sleep, 0.02)
        await loop.run_in_executor(decoders, time.sleep, 0.01)
        os.kill(os.getpid(), signal.SIGUSR1)
        await asyncio.sleep(0)

    try:
        asyncio.run(jobs())
    finally:
        signal.signal(signal.SIGUSR1, previous)
        lanes.shutdown()
        decoders.shutdown()
    recording = json.loads(out.read_text())
    kinds = [r[0] for r in recording["records"]]
    assert kinds == ["model lane", "decode"]
    start, end = recording["span"]
    for _, handed, started, ended, back in recording["records"]:
        assert start <= handed <= started < ended <= back <= end
    lane = recording["records"][0]
    assert lane[3] - lane[2] >= 0.02  # the thread's own time is the job's
