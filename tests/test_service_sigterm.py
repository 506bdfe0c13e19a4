"""SIGTERM under load: the real server stops taking work, answers every accepted request, exits."""

from __future__ import annotations

import re
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
import torch
from service_helpers import EMOJIS, ServerProcess, jpeg

from emojinet.checkpoint import export_release
from emojinet.model import EmojiNetConfig, build_model
from emojinet.vocab import Vocabulary

pytestmark = pytest.mark.slow

N = 24


@pytest.fixture(scope="module")
def slow_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """resnet18 at its full 224 px: tens of ms per image on a CPU, so a queue builds up."""
    torch.manual_seed(0)
    cfg = EmojiNetConfig(backbone="resnet18", head="linear", weights="none", name="test-224")
    model = build_model(cfg, Vocabulary.from_emojis(EMOJIS))
    path = tmp_path_factory.mktemp("release224") / "model"
    export_release(model.eval(), path)
    return path


def inflight(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    m = re.search(r"^emojinet_inflight_requests (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def test_sigterm_during_load_answers_every_accepted_request(
    slow_release: Path, tmp_path: Path
) -> None:
    env = {
        "EMOJINET_MODEL": str(slow_release),
        "EMOJINET_BACKEND": "torch",
        "EMOJINET_DEVICE": "cpu",
        "EMOJINET_MAX_BATCH_SIZE": "1",  # one image per forward pass: the queue grows
        "EMOJINET_QUEUE_DEADLINE_S": "60",
        "EMOJINET_DRAIN_GRACE_S": "0.5",
        "EMOJINET_PREPROCESS_WORKERS": "1",
    }
    srv = ServerProcess(env, tmp_path / "server.log").wait_ready()
    try:
        image = jpeg((120, 60, 200), (400, 300))
        answers: list[int] = []
        lock = threading.Lock()

        def client() -> None:
            with httpx.Client(base_url=srv.url, timeout=60) as c:
                r = c.post("/suggest", files={"image": ("x.jpg", image)})
                with lock:
                    answers.append(r.status_code)

        threads = [threading.Thread(target=client) for _ in range(N)]
        for t in threads:
            t.start()
        end = time.monotonic() + 20
        while inflight(srv.url) + len(answers) < N and time.monotonic() < end:
            time.sleep(0.01)
        accepted_before = inflight(srv.url)
        assert accepted_before >= 4, "the server should still be busy when SIGTERM arrives"

        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.1)
        ready = httpx.get(f"{srv.url}/readyz", timeout=5)  # during the drain grace period
        assert ready.status_code == 503
        assert ready.json()["detail"] == "not ready: the server is shutting down"
        late = httpx.post(f"{srv.url}/suggest", files={"image": ("x.jpg", image)}, timeout=5)
        assert late.status_code == 503 and late.headers["connection"] == "close"
        assert "shutting down" in late.json()["detail"]

        for t in threads:
            t.join(60)
        assert answers == [200] * N, "every accepted request must get its answer"
        code = srv.proc.wait(30)
    finally:
        srv.stop()
    assert code in (0, -signal.SIGTERM)
    log = srv.log()
    assert "SIGTERM: draining before shutdown" in log
    assert "shut down cleanly" in log
