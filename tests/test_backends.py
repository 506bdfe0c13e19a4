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
    resolve_backend,
    select_device,
)
from emojinet.errors import ConfigError, FeaturesUnavailableError, VocabularyError
from emojinet.model import EmojiNet
from emojinet.onnx_release import builtin_onnx, read_onnx_model
from emojinet.predictor import Prediction, Predictor


def test_onnx_matches_torch_on_tiny_model(
    tmp_path: Path, tiny_model_factory: Callable[..., EmojiNet]
) -> None:
    model = tiny_model_factory()
    path = export_onnx(model, tmp_path / "tiny.onnx")
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(0)).numpy()
    ref = TorchBackend(model, "cpu").run(x).probs
    onnx = OnnxBackend(path)
    got = onnx.run(x).probs
    assert got.shape == ref.shape == (3, 5)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    # Dynamic batch: a batch of one and of five go through the same file.
    assert onnx.run(x[:1]).probs.shape == (1, 5)
    assert onnx.run(np.concatenate([x, x[:2]])).probs.shape == (5, 5)


def test_onnx_matches_torch_on_default_model(
    default_model: EmojiNet, photos: dict[str, bytes]
) -> None:
    onnx = OnnxBackend.from_model(default_model)
    predictor = Predictor(default_model, onnx)
    batch = np.stack([predictor.preprocess(photos[n]) for n in ("chelsea", "coffee", "rocket")])
    ref = TorchBackend(default_model, "cpu").run(batch).probs
    np.testing.assert_allclose(onnx.run(batch).probs, ref, atol=1e-4)


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
        with pytest.raises(ConfigError, match="CUDA is not available"):
            select_device("cuda")
    with pytest.raises(ConfigError, match="choose auto, cpu or cuda"):
        select_device("tpu")


def test_make_backend_choices(tiny_model_factory: Callable[..., EmojiNet]) -> None:
    model = tiny_model_factory()
    assert make_backend(model, "torch", "cpu").name == "torch"
    auto = make_backend(model, "auto", "cpu")
    assert auto.name == "onnx" and auto.device == "cpu"
    with pytest.raises(ConfigError, match="choose auto, torch or onnx"):
        make_backend(model, "tensorrt", "cpu")  # type: ignore[arg-type]


def test_features_are_returned_only_when_asked_for(
    tmp_path: Path, tiny_model_factory: Callable[..., EmojiNet]
) -> None:
    model = tiny_model_factory()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)).numpy()
    for backend in (TorchBackend(model, "cpu"), OnnxBackend(export_onnx(model, tmp_path / "m"))):
        assert backend.supports_features
        plain = backend.run(x)
        assert plain.probs.shape == (2, 5) and plain.features is None
        both = backend.run(x, features=True)
        assert both.features is not None and both.features.shape == (2, 512)
        np.testing.assert_allclose(both.probs, plain.probs, atol=1e-6)
        rows = both.rows()
        assert len(rows) == len(both) == 2 and rows[1].require_features().shape == (512,)
        with pytest.raises(FeaturesUnavailableError, match="no backbone features"):
            plain.rows()[0].require_features()


def test_an_onnx_file_without_features_says_so(
    tmp_path: Path, tiny_model_factory: Callable[..., EmojiNet]
) -> None:
    import onnx

    model = tiny_model_factory()
    path = export_onnx(model, tmp_path / "m.onnx")
    proto = onnx.load(str(path))
    keep = [o for o in proto.graph.output if o.name == "probs"]
    del proto.graph.output[:]
    proto.graph.output.extend(keep)
    onnx.save(proto, str(tmp_path / "old.onnx"))
    old = OnnxBackend(tmp_path / "old.onnx")
    predictor = Predictor(model, old)
    assert not old.supports_features and not predictor.supports_features
    x = np.zeros((1, 3, 64, 64), np.float32)
    assert predictor.run_batch(x).probs.shape == (1, 5)
    with pytest.raises(FeaturesUnavailableError, match="has no 'features' output"):
        predictor.run_batch(x, features=True)


def test_predict_is_typed_and_the_deny_list_applies_once(
    tiny_model_factory: Callable[..., EmojiNet], photos: dict[str, bytes]
) -> None:
    model = tiny_model_factory()
    backend = TorchBackend(model, "cpu")
    images = [photos["chelsea"], photos["coffee"]]
    open_ = Predictor(model, backend).predict(images, k=50, features=True)
    denied = Predictor(model, backend, deny=["🐱", "☕"]).predict(images, k=50)
    assert all(isinstance(p, Prediction) for p in [*open_, *denied])
    assert len(open_[0].suggestions) == 5 and open_[0].features is not None
    assert open_[0].features.shape == (512,) and denied[0].features is None
    for p, d in zip(open_, denied, strict=True):
        assert [s.emoji for s in d.suggestions] == [
            s.emoji for s in p.suggestions if s.emoji not in ("🐱", "☕")
        ]
        assert d.probs[:2].tolist() == [0.0, 0.0]  # 🐱 and ☕ are the first two emojis
        np.testing.assert_allclose(d.probs[2:], p.probs[2:], atol=1e-6)
    cut = open_[0].suggestions[1].score
    above = Predictor(model, backend).predict(images, k=5, threshold=cut)[0].suggestions
    assert above == open_[0].suggestions[:2]
    assert Predictor(model, backend).predict([]) == []
    with pytest.raises(VocabularyError, match="every emoji"):
        Predictor(model, backend, deny=["🐱", "☕", "🚀", "🌸", "😂"])


def test_the_shipped_builtin_onnx_is_the_builtin_model(
    default_model: EmojiNet, photos: dict[str, bytes]
) -> None:
    """The package's ONNX file is today's built-in model: same identity, vocabulary,
    preprocessing and outputs (re-export with ``emojinet.onnx_release.write_builtin`` if not)."""
    from emojinet.checkpoint import load

    spec = read_onnx_model(builtin_onnx())
    assert spec.model_sha256 == load()[1].digest
    assert list(spec.vocab) == list(default_model.vocab)
    assert spec.preprocess == default_model.preprocess
    assert spec.cfg.name == default_model.cfg.name and spec.cfg.head == default_model.cfg.head
    onnx = Predictor.load(None, backend="onnx")
    assert onnx.info.sha256 == spec.model_sha256 and onnx.backend.path == builtin_onnx()  # type: ignore[attr-defined]
    torch_ = Predictor(default_model, TorchBackend(default_model, "cpu"))
    images = [photos[n] for n in ("chelsea", "coffee", "rocket")]
    for a, b in zip(onnx.predict(images, k=5), torch_.predict(images, k=5), strict=True):
        assert [s.emoji for s in a.suggestions] == [s.emoji for s in b.suggestions]
        np.testing.assert_allclose(a.probs, b.probs, atol=1e-4)


def test_resolve_backend() -> None:
    assert resolve_backend("auto", "cpu") == "onnx"
    assert resolve_backend("torch", "cpu") == "torch"
    assert resolve_backend("onnx", "auto") == "onnx"
    assert resolve_backend("auto", "cuda") == "torch"
    assert resolve_backend("auto", "auto") == ("torch" if torch.cuda.is_available() else "onnx")
    with pytest.raises(ConfigError, match="choose auto, cpu or cuda"):
        resolve_backend("onnx", "tpu")


def test_an_unwritable_export_folder_is_a_clear_error(
    tiny_model_factory: Callable[..., EmojiNet], tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(ConfigError, match="set EMOJINET_CACHE_DIR to a writable folder"):
        OnnxBackend.from_model(tiny_model_factory(), cache_dir=tmp_path / "file" / "cache")


def test_onnx_threads_are_set_and_wait_passively(
    tmp_path: Path, tiny_model_factory: Callable[..., EmojiNet]
) -> None:
    path = export_onnx(tiny_model_factory(), tmp_path / "tiny.onnx")
    backend = OnnxBackend(path, threads=1, alone_threads=2)
    opts = backend.session.get_session_options()
    assert opts.intra_op_num_threads == 1
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert opts.get_session_config_entry("session.inter_op.allow_spinning") == "0"
    # The session for a pass alone: every core, spinning between operators; same numbers.
    assert backend._alone is not None
    alone = backend._alone.get_session_options()
    assert alone.intra_op_num_threads == 2
    assert alone.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    np.testing.assert_allclose(backend.run_alone(x).probs, backend.run(x).probs, atol=1e-6)
    assert OnnxBackend(path, threads=2, alone_threads=2)._alone is None  # nothing to add
