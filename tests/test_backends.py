from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from emojinet.backends import (
    OnnxBackend,
    TorchBackend,
    export_onnx,
    make_backend,
    model_digest,
    select_device,
)
from emojinet.model import EmojiNet
from emojinet.predictor import Predictor


def test_onnx_matches_torch_on_tiny_model(
    tmp_path: Path, tiny_model_factory: Callable[..., EmojiNet]
) -> None:
    model = tiny_model_factory()
    path = export_onnx(model, tmp_path / "tiny.onnx")
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(0)).numpy()
    ref = TorchBackend(model, "cpu").predict(x)
    onnx = OnnxBackend(path)
    got = onnx.predict(x)
    assert got.shape == ref.shape == (3, 5)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    # Dynamic batch: a batch of one and of five go through the same file.
    assert onnx.predict(x[:1]).shape == (1, 5)
    assert onnx.predict(np.concatenate([x, x[:2]])).shape == (5, 5)


def test_onnx_matches_torch_on_default_model(
    default_model: EmojiNet, photos: dict[str, bytes]
) -> None:
    onnx = OnnxBackend.from_model(default_model)
    predictor = Predictor(default_model, onnx)
    batch = np.stack([predictor.preprocess(photos[n]) for n in ("chelsea", "coffee", "rocket")])
    ref = TorchBackend(default_model, "cpu").predict(batch)
    np.testing.assert_allclose(onnx.predict(batch), ref, atol=1e-4)


def test_onnx_export_is_cached_by_model_digest(
    tiny_model_factory: Callable[..., EmojiNet], tmp_path: Path
) -> None:
    a = OnnxBackend.from_model(tiny_model_factory(seed=0), cache_dir=tmp_path)
    mtime = a.path.stat().st_mtime_ns
    again = OnnxBackend.from_model(tiny_model_factory(seed=0), cache_dir=tmp_path)
    assert again.path == a.path and again.path.stat().st_mtime_ns == mtime
    other = OnnxBackend.from_model(tiny_model_factory(seed=1), cache_dir=tmp_path)
    assert other.path != a.path
    assert model_digest(tiny_model_factory(seed=0)) != model_digest(tiny_model_factory(seed=1))


def test_device_selection() -> None:
    assert select_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert select_device("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            select_device("cuda")
    with pytest.raises(ValueError, match="choose auto, cpu or cuda"):
        select_device("tpu")


def test_make_backend_choices(tiny_model_factory: Callable[..., EmojiNet]) -> None:
    model = tiny_model_factory()
    assert make_backend(model, "torch", "cpu").name == "torch"
    auto = make_backend(model, "auto", "cpu")
    assert auto.name == "onnx" and auto.device == "cpu"
    with pytest.raises(ValueError, match="choose auto, torch or onnx"):
        make_backend(model, "tensorrt", "cpu")  # type: ignore[arg-type]
