"""Distillation from the zero-shot teacher, and head-only releases on a frozen backbone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from training_data import fashion_dataset, run_trainer

from emojinet.checkpoint import load, load_checkpoint
from emojinet.errors import CheckpointError
from training.distill import mix_targets
from training.errors import OptionsError

REPO = Path(__file__).resolve().parents[1]


def test_mix_targets_by_hand() -> None:
    labels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    teacher = torch.tensor([[0.5, 0.25, 0.0], [0.1, 0.2, 0.3]])
    mixed = mix_targets(labels, teacher, 0.2)
    # row 0: 0.8 * label + 0.2 * teacher; row 1 has no label: the teacher's own
    expected = torch.tensor([[0.9, 0.05, 0.0], [0.1, 0.2, 0.3]])
    assert torch.allclose(mixed, expected)
    with pytest.raises(OptionsError, match="distill-weight"):
        mix_targets(labels, teacher, 1.5)


@pytest.fixture(scope="module")
def frozen_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One epoch of a head on the frozen, cached Lite0 backbone, distilled, exported."""
    tmp = tmp_path_factory.mktemp("distill")
    data = fashion_dataset(tmp, n_train=40, n_test=10, val_fraction=0.25)
    out = tmp / "run"
    args = [
        "--data", str(data), "--output-dir", str(out), "--epochs", "1",
        "--backbone", "efficientnet_lite0", "--weights", "imagenet", "--freeze-stages", "7",
        "--cache-features", "--distill-weight", "0.3", "--view", "full", "--batch-size", "16",
        "--workers", "0", "--no-progress", "--export", str(out / "release"),
    ]  # fmt: skip
    run_trainer(args)
    return out


def test_a_frozen_backbone_ships_as_a_head_only_release(frozen_run: Path) -> None:
    release = frozen_run / "release"
    keys = set(load_file(str(release.with_suffix(".safetensors"))))
    assert keys == {"head.fc.weight", "head.fc.bias"}  # no backbone weights: 2.5 MB, not 19
    meta = json.loads(release.with_suffix(".json").read_text())
    assert meta["base"]["weights"] == "imagenet" and len(meta["base"]["sha256"]) == 64
    model, info = load(release)
    assert info.source == "release" and model.preprocess.crop == "full"
    # Validation keeps 0/1 labels: one true emoji per Fashion-MNIST photo, so P@5 <= 1/5.
    metrics = json.loads((frozen_run / "metrics.json").read_text())
    assert 0.0 < metrics["P@5"] <= 0.2
    trained, _ = load_checkpoint(frozen_run / "best.pt")
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        np.testing.assert_allclose(model.eval()(x), trained.eval()(x), atol=1e-5)


def test_a_head_only_release_refuses_other_backbone_weights(
    frozen_run: Path, tmp_path: Path
) -> None:
    meta = json.loads((frozen_run / "release.json").read_text())
    meta["base"]["sha256"] = "0" * 64
    (tmp_path / "other.json").write_text(json.dumps(meta))
    (tmp_path / "other.safetensors").write_bytes((frozen_run / "release.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="other efficientnet_lite0 weights"):
        load(tmp_path / "other")


def test_distillation_needs_cached_features(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "training.train", "--data", str(tmp_path), "--distill-weight",
         "0.5", "--output-dir", str(tmp_path / "run")],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2 and "--distill-weight needs --cache-features" in r.stderr
