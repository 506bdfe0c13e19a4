"""The residual head (zero-shot head + a trained correction) and ``--vocab all``: it starts as
the zero-shot model, trains only its correction, and ships without the parts the package has."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from training_data import fashion_dataset, run_trainer

from emojinet.checkpoint import load, load_checkpoint
from emojinet.errors import CheckpointError
from emojinet.model import EmojiNetConfig, build_model
from emojinet.vocab import Vocabulary
from emojinet.zeroshot import concept_map_digest
from training.datasets import check_vocabulary
from training.errors import DataError
from training.evaluate import evaluate_model

REPO = Path(__file__).resolve().parents[1]
VOCAB = Vocabulary(("🐈", "☕", "🏠", "🎈"))


def test_an_untrained_residual_head_is_the_zero_shot_model() -> None:
    zero = build_model(EmojiNetConfig(head="zeroshot"), VOCAB).eval()
    residual = build_model(EmojiNetConfig(head="residual"), VOCAB).eval()
    assert residual.preprocess == zero.preprocess  # the view the concept map was tuned for
    # Only the correction trains: the zero-shot part is buffers.
    names = {n for n, _ in residual.head.named_parameters()}
    assert names == {"fc.weight", "fc.bias"}
    x = torch.randn(3, 3, 224, 224)
    with torch.no_grad():
        np.testing.assert_allclose(residual(x), zero(x), atol=1e-5)
        residual.head.fc.bias.fill_(1.0)
        np.testing.assert_allclose(residual(x), zero(x) + 1.0, atol=1e-5)


def test_a_model_scores_a_data_set_whose_emojis_lead_its_vocabulary() -> None:
    check_vocabulary(VOCAB, Vocabulary(("🐈", "☕")))
    with pytest.raises(DataError, match="differs from the data set"):
        check_vocabulary(VOCAB, Vocabulary(("☕", "🐈")))


@pytest.fixture(scope="module")
def residual_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One epoch of a residual head over every emoji, on the frozen Lite0 backbone, exported."""
    tmp = tmp_path_factory.mktemp("residual")
    data = fashion_dataset(tmp, n_train=40, n_test=10, val_fraction=0.25)
    out = tmp / "run"
    args = [
        "--data", str(data), "--output-dir", str(out), "--epochs", "1", "--head", "residual",
        "--vocab", "all", "--freeze-stages", "7", "--cache-features", "--distill-weight", "0.3",
        "--view", "full", "--batch-size", "16", "--workers", "0", "--no-progress",
        "--export", str(out / "release"),
    ]  # fmt: skip
    run_trainer(args)
    return data, out


def test_the_release_holds_only_the_correction(residual_run: tuple[Path, Path]) -> None:
    data, out = residual_run
    release = out / "release"
    keys = set(load_file(str(release.with_suffix(".safetensors"))))
    assert keys == {"head.fc.weight", "head.fc.bias"}
    meta = json.loads(release.with_suffix(".json").read_text())
    assert meta["base"]["concept_map_sha256"] == concept_map_digest()
    model, _ = load(release)
    data_vocab = Vocabulary.from_file(data / "vocab.json")
    # The data's emojis first, then every other emoji the built-in model knows.
    assert model.vocab.emojis[: len(data_vocab)] == data_vocab.emojis
    assert set(model.vocab) == set(Vocabulary.all()) | set(data_vocab)
    trained, _ = load_checkpoint(out / "best.pt")
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        np.testing.assert_allclose(model.eval()(x), trained.eval()(x), atol=1e-5)
        assert model.head.fc.weight.abs().sum() > 0  # it did learn a correction


def test_it_is_evaluated_on_its_data_set(residual_run: tuple[Path, Path], tmp_path: Path) -> None:
    data, out = residual_run
    metrics = evaluate_model(out / "release", data, tmp_path, split="test", plots=False)
    assert metrics["n_images"] == 10 and 0.0 <= metrics["top5"] <= 1.0


def test_a_release_refuses_another_concept_map(
    residual_run: tuple[Path, Path], tmp_path: Path
) -> None:
    release = residual_run[1] / "release"
    meta = json.loads(release.with_suffix(".json").read_text())
    meta["base"]["concept_map_sha256"] = "0" * 64
    (tmp_path / "other.json").write_text(json.dumps(meta))
    (tmp_path / "other.safetensors").write_bytes(release.with_suffix(".safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="another zero-shot concept map"):
        load(tmp_path / "other")
