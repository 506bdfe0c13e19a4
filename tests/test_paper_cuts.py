"""Paper cuts from issue #13: several photos through /distribution's GAN head, benchmarks that
leave the committed results alone unless told to write them, a clean stop that exits 0."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import torch
from service_helpers import REPO, ServerProcess, ThreadedServer, jpeg

from emojinet.backends import TorchBackend
from emojinet.checkpoint import load_release
from emojinet.gan import EmojiGAN, GanConfig
from emojinet.gan_io import save_gan
from emojinet.predictor import Predictor
from service.app import create_app
from service.settings import Settings


@pytest.fixture(scope="module")
def gan_client(
    tiny_release: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    """A real server with the tiny model and a random EmojiGAN over its features."""
    model, meta = load_release(tiny_release)
    torch.manual_seed(0)
    cfg = GanConfig(
        feature_dim=model.backbone.num_features, embed_dim=16, noise_dim=8, cond_dim=16, hidden=32
    )
    gan = EmojiGAN(cfg, model.vocab, torch.randn(len(model.vocab), 16))
    gan_path = tmp_path_factory.mktemp("gan") / "tiny-gan"
    save_gan(gan, gan_path, backbone_sha256=meta["sha256"])
    predictor = Predictor(model, TorchBackend(model, "cpu"), sha256=meta["sha256"])
    settings = Settings(max_body_bytes=1_000_000, max_pixels=1_000_000, gan_model=str(gan_path))
    with (
        ThreadedServer(create_app(settings, predictor=predictor)) as srv,
        httpx.Client(base_url=srv.url, timeout=30) as c,
    ):
        yield c


def test_gan_head_draws_for_each_of_several_images(gan_client: httpx.Client, photo: bytes) -> None:
    images = [photo, jpeg((20, 200, 40), (64, 48))]
    url = "/distribution?head=gan&n=40&seed=2"
    singles = [gan_client.post(url, files={"image": ("x.jpg", b)}).json() for b in images]
    files = [("images", (f"{i}.jpg", b)) for i, b in enumerate(images)]
    r = gan_client.post(url, files=files)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["head"] == "gan" and body["temperature"] == 1.0 and body["n"] == 40
    assert [res["samples"] for res in body["results"]] == [s["samples"] for s in singles]
    assert all(sum(h["count"] for h in res["histogram"]) == 40 for res in body["results"])


# -- benchmarks write under runs/ unless told to update the committed figures -----------------

BENCHMARKS = {
    "bench_model": "model",
    "bench_serve": "serve",
    "bench_floor": "floor",
    "profile_idle": "profile_idle",
    "bench_loader": "loader",
    "bench_decode": "decode",
    "bench_overload": "overload",
    "bench_soak": "soak",
    "held_out": "held_out",
}


@pytest.mark.parametrize(("script", "name"), BENCHMARKS.items())
def test_benchmarks_default_to_runs_not_the_committed_results(script: str, name: str) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / f"{script}.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    help_text = " ".join(result.stdout.split())
    assert f"(default: runs/bench/{name}.json)" in help_text
    assert f"--out benchmarks/results/{name}.json updates the committed figures" in help_text


@pytest.mark.slow
def test_bench_model_leaves_the_committed_results_alone(tmp_path: Path) -> None:
    committed = REPO / "benchmarks" / "results" / "model.json"
    before = hashlib.sha256(committed.read_bytes()).hexdigest(), committed.stat().st_mtime_ns
    script = REPO / "benchmarks" / "bench_model.py"
    result = subprocess.run(
        [sys.executable, str(script), "--repeats", "1", "--batch", "2"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    written = tmp_path / "runs" / "bench" / "model.json"
    assert f"wrote {written.relative_to(tmp_path)}" in result.stdout
    rows = json.loads(written.read_text())["rows"]
    assert [r["backend"] for r in rows] == ["torch-eager", "onnxruntime"]
    assert (
        hashlib.sha256(committed.read_bytes()).hexdigest(),
        committed.stat().st_mtime_ns,
    ) == before


# -- a clean stop is a success: `make serve` must not report "Terminated" ---------------------


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_server_exits_0_after_draining_on_a_signal(
    tiny_release: Path, tmp_path: Path, photo: bytes, sig: signal.Signals
) -> None:
    env = {
        "EMOJINET_MODEL": str(tiny_release),
        "EMOJINET_BACKEND": "torch",
        "EMOJINET_DEVICE": "cpu",
        "EMOJINET_PREPROCESS_WORKERS": "1",
    }
    srv = ServerProcess(env, tmp_path / "server.log").wait_ready()
    try:
        r = httpx.post(f"{srv.url}/suggest", files={"image": ("c.jpg", photo)}, timeout=30)
        assert r.status_code == 200, r.text
        srv.proc.send_signal(sig)
        code = srv.proc.wait(30)
    finally:
        srv.stop()
    log = srv.log()
    assert "draining before shutdown" in log and "shut down cleanly" in log, log[-3000:]
    assert code == 0, log[-3000:]  # not -15 / -2: uvicorn must not re-raise the signal
