"""The serving path needs no torch: ONNX Runtime, numpy and Pillow suggest and serve.

Each test runs a fresh interpreter with a ``sitecustomize`` that makes ``import torch`` and
``import torchvision`` fail as if they were not installed, then suggests from the command line,
the library and the HTTP service with the built-in model (its ONNX file ships in the package).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from service_helpers import REPO, ServerProcess

from emojinet.errors import CheckpointError
from emojinet.onnx_release import builtin_onnx, meta_path, read_onnx_model

# ``None`` in sys.modules: ``import torch`` raises ModuleNotFoundError and find_spec says None.
SHIM = "import sys\nsys.modules.update(torch=None, torchvision=None)\n"
PHOTO = str(REPO / "emojinet" / "data" / "sample.jpg")


@pytest.fixture(scope="module")
def no_torch(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment variables for a subprocess in which torch cannot be imported."""
    shim = tmp_path_factory.mktemp("no_torch")
    (shim / "sitecustomize.py").write_text(SHIM)
    return {
        "PYTHONPATH": os.pathsep.join([str(shim), str(REPO)]),
        "EMOJINET_CACHE_DIR": str(shim / "cache"),  # an export would land here: checked empty
        "PYTHONUNBUFFERED": "1",
    }


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )


def test_the_shim_makes_torch_unimportable(no_torch: dict[str, str]) -> None:
    code = "import importlib.util as u\ntry:\n import torch\nexcept ImportError:\n print('no')\n"
    r = run(["-c", code + "print(u.find_spec('torch'))"], no_torch)
    assert r.stdout.split() == ["no", "None"], r.stderr


def test_cli_suggests_without_torch(no_torch: dict[str, str]) -> None:
    r = run(["-m", "emojinet", "suggest", PHOTO], no_torch)
    assert r.returncode == 0, r.stderr
    assert "🐈" in r.stdout and "cat" in r.stdout
    assert not Path(no_torch["EMOJINET_CACHE_DIR"]).exists()  # nothing was exported


def test_library_suggests_and_draws_without_torch(no_torch: dict[str, str]) -> None:
    code = (
        "import emojinet\n"
        "s = emojinet.load()\n"
        "top = s.suggest(emojinet.sample_photo(), top_k=3)\n"
        "d = emojinet.distribution(emojinet.sample_photo(), n=50, temperature=0.1, seed=0)\n"
        "again = emojinet.distribution(emojinet.sample_photo(), n=50, temperature=0.1, seed=0)\n"
        "print(s.info.backend, s.info.vocab_size, top.emojis[0], d.mode, d == again)\n"
    )
    r = run(["-c", code], no_torch)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [
        "onnx",
        str(len(read_onnx_model(builtin_onnx()).vocab)),
        "🐈",
        "🐈",
        "True",
    ]


def test_service_serves_without_torch(no_torch: dict[str, str], tmp_path: Path) -> None:
    env = {**no_torch, "EMOJINET_GAN_MODEL": "emoji500-gan"}  # refused (no torch), not fatal
    server = ServerProcess(env, tmp_path / "serve.log").wait_ready(timeout_s=90)
    try:
        photo = Path(PHOTO).read_bytes()
        with httpx.Client(base_url=server.url, timeout=30) as client:
            r = client.post("/suggest", files={"image": ("cat.jpg", photo, "image/jpeg")})
            assert r.status_code == 200, r.text
            assert r.json()["emojis"][0]["emoji"] == "🐈"
            headers = {"Content-Type": "image/jpeg"}
            r = client.post(
                "/distribution?n=40&seed=3&temperature=0.1", content=photo, headers=headers
            )
            assert r.status_code == 200, r.text
            assert r.json()["mode"] == "🐈" and len(r.json()["samples"]) == 40
            model = client.get("/model").json()
            assert model["backend"] == "onnx" and model["head"] == "zeroshot"
            assert model["gan"]["loaded"] is False and "needs torch" in model["gan"]["reason"]
    finally:
        server.stop()
    assert "Traceback" not in server.log(), server.log()


def test_onnx_path_imports_no_torch_where_torch_is_installed() -> None:
    """In a normal environment, the ONNX serving path leaves torch unimported."""
    code = (
        "import sys\n"
        "import emojinet, service.app\n"
        "from emojinet.sampling import sample_distribution\n"
        "from emojinet.predictor import Predictor\n"
        "p = Predictor.load(None, backend='onnx')\n"
        "[r] = p.predict([emojinet.sample_photo().read_bytes()])\n"
        "sample_distribution(r.probs, p.vocab, n=50, seed=0)\n"
        "print(r.suggestions[0].emoji, sorted(m for m in sys.modules if m.startswith('torch')))\n"
    )
    r = run(["-c", code], {})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["🐈", "[]"]


def test_the_shipped_onnx_file_is_checked_by_sha256(tmp_path: Path) -> None:
    src = builtin_onnx()
    copy = tmp_path / "builtin.onnx"
    data = bytearray(src.read_bytes())
    data[-1] ^= 1
    copy.write_bytes(bytes(data))
    meta_path(copy).write_bytes(meta_path(src).read_bytes())
    with pytest.raises(CheckpointError, match="does not match the sha256"):
        read_onnx_model(copy)
    meta_path(copy).unlink()
    with pytest.raises(CheckpointError, match="are needed to serve it"):
        read_onnx_model(copy)
