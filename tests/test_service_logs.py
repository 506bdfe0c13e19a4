"""``emojinet serve`` logs: one JSON object a line with the request id, or plain text on request.

Real servers on loopback (the command the container runs); each is started, asked once, stopped,
and then its whole output is read, the shutdown lines included.
"""

from __future__ import annotations

import json
import re
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_helpers import ServerProcess, jpeg

KEYS = ("s3cret-key-one", "s3cret-key-two")


@dataclass
class Run:
    log: str  # the server's whole output, start to exit
    request_id: str  # the x-request-id of its one POST /suggest


def run_once(release: Path, log_path: Path, **env: str) -> Run:
    """Start a server, POST /suggest once, stop it (SIGTERM), return its output."""
    full = {
        "EMOJINET_MODEL": str(release),
        "EMOJINET_BACKEND": "torch",
        "EMOJINET_DEVICE": "cpu",
        "EMOJINET_PREPROCESS_WORKERS": "1",
        "EMOJINET_API_KEYS": ",".join(KEYS),
        **env,
    }
    srv = ServerProcess(full, log_path).wait_ready()
    try:
        r = httpx.post(
            f"{srv.url}/suggest",
            files={"image": ("x.jpg", jpeg())},
            headers={"authorization": f"Bearer {KEYS[1]}"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
    finally:
        code = srv.stop()
    assert code in (0, -signal.SIGTERM), srv.log()
    return Run(srv.log(), r.headers["x-request-id"])


@pytest.fixture(scope="module")
def json_run(tiny_release: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    return run_once(tiny_release, tmp_path_factory.mktemp("logs") / "server.log")


@pytest.fixture(scope="module")
def records(json_run: Run) -> list[dict[str, Any]]:
    lines = json_run.log.splitlines()
    assert len(lines) > 5, json_run.log
    return [json.loads(line) for line in lines]  # every line of the output is JSON


def test_every_line_is_one_json_object_with_the_standard_fields(
    records: list[dict[str, Any]],
) -> None:
    for rec in records:
        assert {"time", "level", "logger", "message"} <= rec.keys(), rec
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", rec["time"]), rec
    loggers = {rec["logger"] for rec in records}
    assert {"uvicorn.error", "uvicorn.access", "service.state"} <= loggers, loggers
    assert not any("color_message" in rec for rec in records)


def test_the_request_id_is_on_the_lines_of_its_request_only(
    json_run: Run, records: list[dict[str, Any]]
) -> None:
    mine = [rec for rec in records if rec.get("request_id") == json_run.request_id]
    access = [rec for rec in mine if rec["logger"] == "uvicorn.access"]
    assert len(access) == 1 and '"POST /suggest HTTP/1.1" 200' in access[0]["message"], mine
    # Lines written outside any request carry none.
    startup = next(rec for rec in records if "Application startup complete" in rec["message"])
    drain = next(rec for rec in records if rec["message"] == "SIGTERM: draining before shutdown")
    shutdown = next(rec for rec in records if rec["message"] == "shut down cleanly")
    assert not {"request_id"} & (startup.keys() | drain.keys() | shutdown.keys())


def test_the_effective_settings_are_logged_once_with_the_keys_masked(
    json_run: Run, records: list[dict[str, Any]]
) -> None:
    lines = [rec for rec in records if rec["message"] == "effective settings"]
    assert len(lines) == 1, lines
    settings = lines[0]["settings"]
    assert settings["api_keys"] == ["***", "***"]
    assert settings["log_format"] == "json" and settings["device"] == "cpu"
    assert settings["model"].endswith("tiny") and settings["preprocess_workers"] == 1
    assert all(key not in json_run.log for key in KEYS)


def test_log_format_text_gives_plain_lines(tiny_release: Path, tmp_path: Path) -> None:
    run = run_once(tiny_release, tmp_path / "server.log", EMOJINET_LOG_FORMAT="text")
    lines = run.log.splitlines()
    stamp = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) \S+: ")
    assert lines and all(stamp.match(line) for line in lines), run.log
    assert not any(line.startswith("{") for line in lines)
    access = [line for line in lines if f"[request id {run.request_id}]" in line]
    assert any('"POST /suggest HTTP/1.1" 200' in line for line in access), run.log
    settings = [line for line in lines if "effective settings: " in line]
    assert len(settings) == 1 and '"api_keys": ["***", "***"]' in settings[0], settings
    assert all(key not in run.log for key in KEYS)
