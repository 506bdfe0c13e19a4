"""Helpers for the service tests: a fake predictor, real servers on loopback (in a thread or a
process), a moto server, small images. Fixtures live in ``conftest.py``; these are imported."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from deploy.launch import serve_cmd_for_tests
from emojinet.backends import Outputs
from emojinet.errors import InvalidImageError
from emojinet.predictor import ModelInfo, Suggestion
from emojinet.preprocess import decode_image
from emojinet.vocab import Vocabulary

REPO = Path(__file__).resolve().parents[1]
EMOJIS = ("🐱", "☕", "🚀", "🌸", "😂")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def jpeg(color: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (48, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="JPEG")
    return buf.getvalue()


class FakePredictor:
    """The predictor interface with a configurable delay, call counters and a poison input.

    ``preprocess`` really decodes the image (so bad images fail as in production) and returns a
    (3, 2, 2) array filled with a *marker*: the index of the image's dominant colour channel,
    or -1 for a pure white image (the poison). ``run_batch`` answers row i with 0.9 on
    emoji ``marker_i`` (so each caller can check it got its own row) and raises if the batch
    holds the poison. With ``features_dim`` it also returns (N, features_dim) features filled
    with each row's marker, and records in ``feature_calls`` whether each pass asked for them.
    """

    def __init__(
        self, delay_s: float = 0.0, *, emojis: tuple[str, ...] = EMOJIS, features_dim: int = 0
    ) -> None:
        self.delay_s = delay_s
        self.vocab = Vocabulary.from_emojis(emojis)
        self.denied = np.zeros(len(self.vocab), bool)
        self.features_dim = features_dim
        self._names = self.vocab.names()
        self.info = ModelInfo(
            name="fake",
            backbone="none",
            head="linear",
            vocab_size=len(self.vocab),
            version="0",
            sha256="0" * 64,
            backend="fake",
            device="cpu",
        )
        self.calls = 0
        self.batch_sizes: list[int] = []
        self.feature_calls: list[bool] = []
        self.max_concurrent = 0
        self._concurrent = 0
        self._lock = threading.Lock()

    @property
    def supports_features(self) -> bool:
        return self.features_dim > 0

    def preprocess(self, data: bytes) -> np.ndarray:
        img = np.asarray(decode_image(data, max_pixels=4_000_000), dtype=np.float32)
        mean = img.reshape(-1, 3).mean(axis=0)
        marker = -1.0 if mean.min() > 250 else float(np.argmax(mean))
        return np.full((3, 2, 2), marker, np.float32)

    def run_batch(self, batch: np.ndarray, *, features: bool = False) -> Outputs:
        with self._lock:
            self.calls += 1
            self.batch_sizes.append(len(batch))
            self.feature_calls.append(features)
            self._concurrent += 1
            self.max_concurrent = max(self.max_concurrent, self._concurrent)
        try:
            if self.delay_s:
                time.sleep(self.delay_s)
            markers = batch[:, 0, 0, 0].astype(int)
            if (markers < 0).any():
                raise ValueError("poisoned input in the batch")
            if features and not self.supports_features:
                raise AssertionError("features asked of a fake without them")
            out = np.full((len(batch), len(self.vocab)), 0.05, np.float32)
            out[np.arange(len(batch)), markers % len(self.vocab)] = 0.9
            feats = np.repeat(markers[:, None], self.features_dim, 1).astype(np.float32)
            return Outputs(out, feats if features else None)
        finally:
            with self._lock:
                self._concurrent -= 1

    def top_k(
        self,
        probs: np.ndarray,
        k: int = 5,
        threshold: float | None = None,
        order: np.ndarray | None = None,
    ) -> list[Suggestion]:
        idx = (np.argsort(-probs, kind="stable") if order is None else order)[:k]
        out = [Suggestion(self.vocab[i], self._names[i], float(probs[i])) for i in idx]
        return [s for s in out if threshold is None or s.score >= threshold]


def bad_preprocess(data: bytes) -> np.ndarray:
    raise InvalidImageError("never")


class ThreadedServer:
    """A real uvicorn server on a loopback port, in a thread of this process (for fake models)."""

    def __init__(self, app: Any, *, ready_path: str = "/readyz") -> None:
        import uvicorn

        self.ready_path = ready_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", ws="none", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        wait_ready(self.url, timeout_s=20, path=self.ready_path)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def wait_ready(
    url: str,
    *,
    timeout_s: float,
    proc: subprocess.Popen[bytes] | None = None,
    path: str = "/readyz",
) -> None:
    """Poll ``path`` until 200 (fail early if ``proc`` exits)."""
    end = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            r = httpx.get(f"{url}{path}", timeout=1.0)
            if r.status_code == 200:
                return
            last = r.text
        time.sleep(0.05)
    raise TimeoutError(f"{url} not ready after {timeout_s} s: {last}")


class ServerProcess:
    """``emojinet serve`` as the container runs it, in a subprocess on a free loopback port."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
        self.proc = subprocess.Popen(
            serve_cmd_for_tests("127.0.0.1", self.port),
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )

    def wait_ready(self, timeout_s: float = 60.0) -> ServerProcess:
        try:
            wait_ready(self.url, timeout_s=timeout_s, proc=self.proc)
        except Exception:
            self.stop()
            raise RuntimeError(f"server did not start:\n{self.log()}") from None
        return self

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout_s: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return int(self.proc.returncode)


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    exe = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen(
        [str(exe), "-p", str(port), "-H", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    end = time.monotonic() + 30
    while time.monotonic() < end:
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(f"{url}/moto-api/", timeout=1.0)
            return proc, url
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("moto_server did not start")


def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(key, value)


def run(coro_fn: Callable[[], Any]) -> Any:
    """Run an async test body on a fresh event loop."""
    import asyncio

    return asyncio.run(coro_fn())
