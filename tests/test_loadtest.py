"""The load-test runner: a short real run against the real server, and how it judges a run."""

from __future__ import annotations

import csv
import json
import signal
from pathlib import Path

import pytest

from deploy.loadtest import run

STATS_HEADER = [
    "Type",
    "Name",
    "Request Count",
    "Failure Count",
    "Median Response Time",
    "Requests/s",
    "50%",
    "95%",
    "99%",
]


@pytest.mark.slow
def test_smoke_run_against_the_real_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """~8 s of locust with 4 users on loopback: no failures, /healthz up, clean SIGTERM exit."""
    monkeypatch.setenv("EMOJINET_DEVICE", "cpu")
    monkeypatch.delenv("EMOJINET_API_KEYS", raising=False)
    rc = run.main(["-u", "4", "-r", "4", "-t", "8s", "--out", str(tmp_path)])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert rc == 0, summary["problems"] + summary["failure_messages"]
    assert summary["failures"] == 0
    assert summary["ok"] >= 20  # the CPU model answers ~30/s here; a stalled server does not
    assert summary["health_misses"] == 0
    # Drained and exited on SIGTERM (uvicorn re-raises the signal after a clean shutdown).
    assert summary["server_exit_code"] in (0, -signal.SIGTERM)
    assert (tmp_path / "report.html").stat().st_size > 0
    assert (tmp_path / "locust_stats.csv").exists()


def _write_stats(prefix: Path, rows: list[list[object]]) -> None:
    with open(f"{prefix}_stats.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(STATS_HEADER)
        writer.writerows(rows)


def test_shed_load_is_counted_apart_from_failures(tmp_path: Path) -> None:
    prefix = tmp_path / "locust"
    _write_stats(
        prefix,
        [
            ["POST", "/suggest", 90, 2, 40, 9.0, 40, 120, 300],
            ["POST", "/suggest [shed 429]", 6, 0, 1, 0.6, 1, 2, 3],
            ["POST", "/suggest [shed 503]", 3, 0, 1000, 0.3, 1000, 1000, 1000],
            ["POST", "/distribution [shed 429]", 1, 0, 1, 0.1, 1, 1, 1],
            ["", "Aggregated", 100, 2, 40, 10.0, 40, 150, 1000],
        ],
    )
    with open(f"{prefix}_failures.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["Method", "Name", "Error", "Occurrences"])
        writer.writerow(["POST", "/suggest", "unexpected 500: boom", 2])
    summary = run.Summary()
    run.read_stats(prefix, summary)
    assert summary.requests == 100
    assert summary.shed == {"429": 7, "503": 3}
    assert summary.failures == 2
    assert summary.ok == 100 - 2 - 10
    assert (summary.p50_ms, summary.p95_ms, summary.p99_ms) == (40, 120, 300)
    assert summary.rps == 10.0
    assert summary.failure_messages == ["POST /suggest: unexpected 500: boom (x2)"]


def test_a_dead_target_fails_fast(tmp_path: Path) -> None:
    port = run.free_port()  # nothing listens there
    with pytest.raises(RuntimeError, match="did not answer 200"):
        run.main(
            ["--target", f"http://127.0.0.1:{port}", "--ready-timeout", "1", "--out", str(tmp_path)]
        )


@pytest.mark.parametrize(
    ("text", "expected"), [("90", 90), ("15s", 15), ("2m", 120), ("1h30m", 5400), ("1m30s", 90)]
)
def test_durations(text: str, expected: float) -> None:
    assert run.seconds(text) == expected


def test_bad_duration() -> None:
    with pytest.raises(Exception, match="bad duration"):
        run.seconds("ten seconds")
