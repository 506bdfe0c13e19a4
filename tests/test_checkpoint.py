import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from emojinet.checkpoint import (
    export_release,
    load_checkpoint,
    load_release,
    release_paths,
    save_checkpoint,
)
from emojinet.errors import CheckpointError
from emojinet.model import EmojiNet, EmojiNetConfig, build_model
from emojinet.vocab import Vocabulary

ModelFactory = Callable[..., EmojiNet]


def same_outputs(a: EmojiNet, b: EmojiNet) -> bool:
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return torch.allclose(a.eval()(x), b.eval()(x), atol=1e-6)


def test_training_checkpoint_round_trip(tmp_path: Path, tiny_model_factory: ModelFactory) -> None:
    model = tiny_model_factory()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1)
    model.train()
    model(torch.randn(2, 3, 64, 64)).sum().backward()
    opt.step()
    sched.step()
    path = tmp_path / "ckpt.pt"
    save_checkpoint(
        path,
        model,
        optimizer=opt,
        scheduler=sched,
        epoch=3,
        step=42,
        metrics={"map": 0.5},
        extra={"rng": torch.get_rng_state()},
    )
    loaded, ckpt = load_checkpoint(path)
    assert same_outputs(model, loaded)
    assert loaded.vocab == model.vocab and loaded.cfg == model.cfg
    assert loaded.preprocess.input_size == 64  # the size it was trained at travels with it
    assert ckpt["epoch"] == 3 and ckpt["step"] == 42 and ckpt["metrics"] == {"map": 0.5}
    assert set(ckpt) >= {
        "model",
        "optimizer",
        "scheduler",
        "epoch",
        "config",
        "vocab",
        "version",
        "metrics",
    }
    opt2 = torch.optim.AdamW(loaded.parameters(), lr=1e-3)
    opt2.load_state_dict(ckpt["optimizer"])
    assert opt2.state_dict()["state"].keys() == opt.state_dict()["state"].keys()
    assert not list(tmp_path.glob("*.tmp"))  # the temp file was renamed away
    assert path.stat().st_mode & 0o044 == 0o044  # readable by a server running as another user


def test_release_round_trip(tmp_path: Path, tiny_model_factory: ModelFactory) -> None:
    model = tiny_model_factory()
    meta = export_release(model, tmp_path / "tiny", metrics={"map": 0.25})
    weights, meta_path = release_paths(tmp_path / "tiny")
    assert weights.is_file() and meta_path.is_file()
    assert len(meta["sha256"]) == 64 and meta["metrics"] == {"map": 0.25}
    for spelling in ("tiny", "tiny.json", "tiny.safetensors"):
        loaded, meta2 = load_release(tmp_path / spelling)
        assert same_outputs(model, loaded)
        assert meta2["sha256"] == meta["sha256"]
        assert loaded.preprocess.input_size == 64  # preprocessing travels with the weights


def test_zeroshot_release_round_trip(tmp_path: Path) -> None:
    vocab = Vocabulary.from_emojis(["🐱", "☕", "🚀"])
    model = build_model(EmojiNetConfig(), vocab)
    export_release(model, tmp_path / "zs")
    loaded, _ = load_release(tmp_path / "zs")
    assert loaded.cfg.head == "zeroshot"
    assert same_outputs(model, loaded)


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="release artifact incomplete"):
        load_release(tmp_path / "nope")


def test_truncated_and_garbage_checkpoint(tmp_path: Path, tiny_model_factory: ModelFactory) -> None:
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, tiny_model_factory())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(path)
    path.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="not a readable EmojiNet checkpoint"):
        load_checkpoint(path)


class Evil:
    """An arbitrary class: unpickling it would run code a checkpoint must never run."""


def test_checkpoint_refuses_pickled_objects(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "config": {}, "vocab": Evil()}, path)
    with pytest.raises(CheckpointError, match="not a readable EmojiNet checkpoint"):
        load_checkpoint(path)


def test_checkpoint_missing_keys(tmp_path: Path) -> None:
    path = tmp_path / "partial.pt"
    torch.save({"model": {}}, path)
    with pytest.raises(CheckpointError, match=r"missing \['config', 'vocab'\]"):
        load_checkpoint(path)


def test_vocab_size_mismatch(tmp_path: Path, tiny_model_factory: ModelFactory) -> None:
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, tiny_model_factory())
    ckpt = torch.load(path, weights_only=True)
    ckpt["vocab"] = {"emojis": ["🐱", "☕"], "counts": [1, 1]}
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="head has 5 outputs but the vocabulary has 2 emojis"):
        load_checkpoint(path)


def test_wrong_backbone(tmp_path: Path, tiny_model_factory: ModelFactory) -> None:
    export_release(tiny_model_factory(), tmp_path / "tiny")
    meta_path = tmp_path / "tiny.json"
    meta = json.loads(meta_path.read_text())
    meta["config"]["backbone"] = "resnet50"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="weights do not match backbone 'resnet50'"):
        load_release(tmp_path / "tiny")


def test_release_corrupt_weights_and_metadata(
    tmp_path: Path, tiny_model_factory: ModelFactory
) -> None:
    export_release(tiny_model_factory(), tmp_path / "tiny")
    weights = tmp_path / "tiny.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"sha256 .* does not match"):
        load_release(tmp_path / "tiny")
    weights.write_bytes(bytes(data[:100]))
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_release(tmp_path / "tiny", verify=False)
    (tmp_path / "tiny.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON metadata"):
        load_release(tmp_path / "tiny")
    (tmp_path / "tiny.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(CheckpointError, match="not EmojiNet release metadata"):
        load_release(tmp_path / "tiny")


def test_bad_config_in_metadata(tmp_path: Path, tiny_model_factory: ModelFactory) -> None:
    export_release(tiny_model_factory(), tmp_path / "tiny")
    meta_path = tmp_path / "tiny.json"
    meta = json.loads(meta_path.read_text())
    meta["config"]["layers"] = 3
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(
        CheckpointError, match=r"stored config is invalid \(unknown config keys \['layers'\]"
    ):
        load_release(tmp_path / "tiny")
