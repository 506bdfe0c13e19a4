"""A release exported with ``onnx=True`` carries ``NAME.onnx`` (sha256 in ``NAME.json``) and
serves from it on ONNX Runtime without torch: the same suggestions as the torch backend."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from service_helpers import REPO
from test_no_torch import PHOTO, SHIM, run

from emojinet.checkpoint import export_release, load_release
from emojinet.errors import CheckpointError
from emojinet.model import EmojiNetConfig, build_model
from emojinet.onnx_release import file_sha256, read_release_onnx, release_onnx_meta
from emojinet.predictor import Predictor
from emojinet.preprocess import PreprocessConfig
from emojinet.vocab import Vocabulary

EMOJIS = ("🐱", "☕", "🚀", "🌸", "😂")


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny release (random resnet18 at 64 px, 5 emojis) with its ONNX file."""
    torch.manual_seed(0)
    cfg = EmojiNetConfig(
        backbone="resnet18",
        head="linear",
        weights="none",
        name="tiny-onnx",
        preprocess=PreprocessConfig(input_size=64, resize_size=72),
    )
    model = build_model(cfg, Vocabulary.from_emojis(EMOJIS, counts=range(5, 0, -1)))
    path = tmp_path_factory.mktemp("release-onnx") / "tiny"
    export_release(model.eval(), path, onnx=True)
    return path


@pytest.fixture(scope="module")
def torch_top(release: Path) -> list[tuple[str, float]]:
    """What the torch backend suggests for the sample photo."""
    p = Predictor.load(release, backend="torch", device="cpu")
    [pred] = p.predict([Path(PHOTO).read_bytes()], k=5)
    return [(s.emoji, s.score) for s in pred.suggestions]


@pytest.fixture
def no_torch(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "sitecustomize.py").write_text(SHIM)
    return {
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)]),
        "EMOJINET_CACHE_DIR": str(tmp_path / "cache"),  # an export would land here
        "PYTHONUNBUFFERED": "1",
    }


def test_the_release_names_its_onnx_file(release: Path) -> None:
    meta = json.loads(release.with_suffix(".json").read_text(encoding="utf-8"))
    onnx = release.with_suffix(".onnx")
    assert meta["onnx"] == {"file": "tiny.onnx", "sha256": file_sha256(onnx)}
    _, again = load_release(release)  # the torch loader reads it as before
    assert again["onnx"] == meta["onnx"]
    spec = read_release_onnx(release.with_suffix(".json"))
    assert spec.model_sha256 == meta["sha256"] and spec.cfg.name == "tiny-onnx"
    assert spec.vocab.emojis == EMOJIS and spec.preprocess.input_size == 64


def test_onnx_backend_serves_the_release_file(release: Path) -> None:
    p = Predictor.load(release.with_suffix(".safetensors"), backend="onnx")
    assert p.backend.path == release.with_suffix(".onnx")  # type: ignore[attr-defined]
    assert p.info.sha256 == json.loads(release.with_suffix(".json").read_text())["sha256"]


def test_library_and_cli_suggest_from_it_without_torch(
    release: Path, torch_top: list[tuple[str, float]], no_torch: dict[str, str]
) -> None:
    code = (
        "import emojinet, json\n"
        f"s = emojinet.load({str(release)!r})\n"
        f"r = s.suggest({PHOTO!r}, top_k=5)\n"
        "print(json.dumps([s.info.backend, r.emojis]))\n"
    )
    lib = run(["-c", code], no_torch)
    assert lib.returncode == 0, lib.stderr
    backend, emojis = json.loads(lib.stdout)
    assert backend == "onnx" and emojis == [e for e, _ in torch_top]
    cli = run(["-m", "emojinet", "suggest", "--model", str(release), PHOTO, "--json"], no_torch)
    assert cli.returncode == 0, cli.stderr
    got = [(e["emoji"], e["score"]) for e in json.loads(cli.stdout)["emojis"]]
    assert [e for e, _ in got] == [e for e, _ in torch_top]
    assert [s for _, s in got] == pytest.approx([s for _, s in torch_top], abs=1e-4)
    assert not Path(no_torch["EMOJINET_CACHE_DIR"]).exists()  # nothing was exported


def test_a_corrupt_onnx_file_is_refused(
    release: Path, tmp_path: Path, no_torch: dict[str, str]
) -> None:
    for suffix in (".json", ".safetensors", ".onnx"):
        shutil.copy(release.with_suffix(suffix), tmp_path / f"tiny{suffix}")
    onnx = tmp_path / "tiny.onnx"
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 1
    onnx.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"does not match the sha256 in tiny\.json"):
        Predictor.load(tmp_path / "tiny", backend="onnx")
    r = run(["-m", "emojinet", "suggest", "--model", str(tmp_path / "tiny"), PHOTO], no_torch)
    assert r.returncode != 0 and "does not match the sha256" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    onnx.unlink()
    with pytest.raises(CheckpointError, match=r"names tiny\.onnx, but .* does not exist"):
        Predictor.load(tmp_path / "tiny", backend="onnx")


def test_a_release_without_onnx_loads_as_before(release: Path, tmp_path: Path) -> None:
    meta = json.loads(release.with_suffix(".json").read_text(encoding="utf-8"))
    del meta["onnx"]
    (tmp_path / "plain.json").write_text(json.dumps(meta), encoding="utf-8")
    assert release_onnx_meta(tmp_path / "plain") is None
    assert release_onnx_meta(tmp_path / "plain.pt") is None
    assert release_onnx_meta(release) == release.with_suffix(".json")
