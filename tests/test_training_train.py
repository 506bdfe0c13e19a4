"""`emojinet train`: atomic checkpoints, SIGKILL-resume equality, cached features, evaluate."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from training_data import fashion_dataset

from emojinet.checkpoint import load_checkpoint, load_release, save_checkpoint
from emojinet.cli import main as cli_main

REPO = Path(__file__).resolve().parents[1]
# A random resnet18 at 16 px on real Fashion-MNIST images: seconds per epoch on one thread.
TINY = [
    "--backbone", "resnet18", "--weights", "none", "--input-size", "16", "--resize-size", "16",
    "--batch-size", "8", "--workers", "0", "--deterministic", "--no-progress", "--seed", "3",
    "--crop-scale", "0.6", "--lr", "0.003",
]  # fmt: skip


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONUNBUFFERED": "1"}


def _train(args: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "training.train", *args],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=240,
        **kw,  # type: ignore[call-overload]
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fashion_dataset(tmp_path_factory.mktemp("fm"), n_train=240, n_test=60, val_fraction=0.2)


@pytest.fixture(scope="module")
def full_run(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("full")
    r = _train(["--data", str(dataset), "--output-dir", str(out), "--epochs", "2", *TINY])
    assert r.returncode == 0, r.stderr[-3000:]
    return out


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_run_folder_contents(full_run: Path) -> None:
    assert {"config.json", "summary.csv", "checkpoint.pt", "best.pt", "metrics.json"} <= {
        p.name for p in full_run.iterdir()
    }
    rows = _rows(full_run / "summary.csv")
    assert [r["epoch"] for r in rows] == ["0", "1"]
    assert float(rows[1]["train_loss"]) < float(rows[0]["train_loss"])
    config = json.loads((full_run / "config.json").read_text())
    assert config["preprocess"]["input_size"] == 16 and config["vocab_size"] == 9
    assert config["args"]["optimizer"] == "adamw" and config["steps_per_epoch"] > 10
    model, ckpt = load_checkpoint(full_run / "checkpoint.pt")
    assert ckpt["epoch"] == 2 and ckpt["extra"]["position"] == 0
    assert model.vocab.emojis[2] == "🧥"


def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(
    dataset: Path, full_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "killed"
    args = [
        "--data",
        str(dataset),
        "--output-dir",
        str(out),
        "--epochs",
        "2",
        "--checkpoint-every",
        "4",
        *TINY,
    ]
    with subprocess.Popen(
        [sys.executable, "-m", "training.train", *args],
        cwd=REPO,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("checkpoint epoch 1 "):  # a step checkpoint in the second epoch
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "metrics.json").exists()
    _, ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt["epoch"] == 1 and ckpt["extra"]["position"] > 0  # killed mid-epoch
    assert not list(out.glob(".*.tmp"))  # the atomic writer left no half file behind

    r = _train([*args, "--resume", "auto"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"resumed from {out / 'checkpoint.pt'} at epoch 1" in r.stdout
    assert json.loads((out / "metrics.json").read_text()) == json.loads(
        (full_run / "metrics.json").read_text()
    )
    assert (
        _rows(out / "summary.csv")[1]["train_loss"]
        == _rows(full_run / "summary.csv")[1]["train_loss"]
    )
    a, _ = load_checkpoint(out / "checkpoint.pt")
    b, _ = load_checkpoint(full_run / "checkpoint.pt")
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k


def test_checkpoints_are_atomic(
    full_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, _ = load_checkpoint(full_run / "checkpoint.pt")
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, model, epoch=1, step=10)
    before = path.read_bytes()

    def crash(obj: object, f: object) -> None:
        Path(str(f)).write_bytes(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, epoch=2, step=20)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_checkpoint(path)[1]["step"] == 10
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_evaluate_writes_metrics_plots_and_a_release(
    dataset: Path, full_run: Path, tmp_path: Path
) -> None:
    release = tmp_path / "release" / "fashion"
    code = cli_main(
        [
            "evaluate",
            "--model",
            str(full_run / "best.pt"),
            "--data",
            str(dataset),
            "--split",
            "test",
            "--out",
            str(tmp_path / "eval"),
            "--workers",
            "0",
            "--export",
            str(release),
        ]
    )
    assert code == 0
    m = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert m["n_images"] == 60 and m["split"] == "test"
    assert {"mAP_macro", "mAP_micro", "top1", "top5", "P@1", "R@5", "per_emoji_AP"} <= set(m)
    assert 0.0 <= m["top1"] <= m["top5"] <= 1.0
    for png in ("per_emoji_ap.png", "precision_recall.png"):
        assert (tmp_path / "eval" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    model, meta = load_release(release)
    assert model.preprocess.input_size == 16 and meta["metrics"]["test_top1"] == pytest.approx(
        m["top1"]
    )


def test_cached_features_train_only_the_unfrozen_tail(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "cached"
    args = [
        "--data",
        str(dataset),
        "--output-dir",
        str(out),
        "--epochs",
        "1",
        "--freeze-stages",
        "4",
        "--cache-features",
        "--loss-weights",
        "exp",
        "--exp-k",
        "5",
        *TINY,
    ]
    r = _train(args)
    assert r.returncode == 0, r.stderr[-3000:]
    caches = sorted((out / "cache").glob("*.pt"))
    assert [p.name.split("-")[0] for p in caches] == ["train", "val"]
    feats = torch.load(caches[0], weights_only=True)
    assert feats.dtype == torch.float16 and feats.shape[1:] == (256, 1, 1)  # layer3 output at 16 px
    config = json.loads((out / "config.json").read_text())
    assert sum(config["loss_weights"]) == pytest.approx(9.0)
    mtime = caches[0].stat().st_mtime_ns
    r = _train(args)
    assert r.returncode == 0 and caches[0].stat().st_mtime_ns == mtime  # the cache was reused
    # Frozen stages keep their (seeded) initial weights; the tail and head moved.
    from emojinet.model import EmojiNetConfig, build_model

    trained, _ = load_checkpoint(out / "checkpoint.pt")
    torch.manual_seed(3)
    fresh = build_model(
        EmojiNetConfig(backbone="resnet18", head="linear", weights="none"), trained.vocab
    )
    for i in range(5):
        same = all(
            torch.equal(a, b)
            for a, b in zip(
                fresh.backbone.stages()[i].state_dict().values(),
                trained.backbone.stages()[i].state_dict().values(),
                strict=True,
            )
        )
        assert same == (i < 4), i


def test_layer_wise_learning_rates_and_frozen_stages() -> None:
    from emojinet.model import EmojiNetConfig, build_model
    from emojinet.vocab import Vocabulary
    from training.errors import OptionsError
    from training.optim import param_groups

    model = build_model(
        EmojiNetConfig(backbone="resnet18", head="linear", weights="none"),
        Vocabulary.from_emojis(["🐱", "🐶"]),
    )
    groups = param_groups(model, 0.1, 0.5, freeze=2)
    assert [g["name"] for g in groups] == ["stage2", "stage3", "stage4", "head"]
    assert [g["lr"] for g in groups] == pytest.approx([0.1 * 0.5**3, 0.1 * 0.5**2, 0.1 * 0.5, 0.1])
    stages = model.backbone.stages()
    assert not any(p.requires_grad for s in stages[:2] for p in s.parameters())
    assert all(p.requires_grad for p in stages[2].parameters())
    with pytest.raises(OptionsError, match="between 0 and 5"):
        param_groups(model, 0.1, 0.5, freeze=9)


def test_bad_options_fail_fast(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        cli_main(["train", "--data", str(dataset), "--optimizer", "lamb"])
    assert "invalid choice: 'lamb' (choose from 'adamw', 'sgd')" in capsys.readouterr().err
    assert cli_main(["train", "--data", str(tmp_path), "--output-dir", str(tmp_path / "o")]) == 2
    assert "manifest.jsonl is missing (run `emojinet prepare`)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--cache-features"], "--cache-features needs --freeze-stages >= 1"),
        (["--input-size", "32", "--resize-size", "16"], "--resize-size (16) must be at least"),
        (["--val-split", "test", "--limit-val", "5"], "the data set has no 'test' examples"),
        (["--resume", "missing.pt"], "cannot resume: checkpoint missing.pt does not exist"),
        (["--device", "tpu"], "unknown device 'tpu'; choose auto, cpu or cuda[:N]"),
    ],
)
def test_bad_input_is_one_line_on_stderr_not_a_traceback(
    train_only: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    extra: list[str], message: str,
) -> None:  # fmt: skip
    args = ["train", "--data", str(train_only), "--output-dir", str(tmp_path / "o")]
    assert cli_main([*args, "--backbone", "resnet18", "--weights", "none", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_resuming_another_run_is_refused(
    dataset: Path, full_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["train", "--data", str(dataset), "--output-dir", str(tmp_path / "o"), "--no-progress"]
    resume = ["--resume", str(full_run / "checkpoint.pt")]
    assert cli_main([*args, *resume, "--backbone", "resnet34"]) == 2
    assert "holds a resnet18 model, not resnet34" in capsys.readouterr().err
    other = tmp_path / "other"
    other.mkdir()
    (other / "manifest.jsonl").write_text((dataset / "manifest.jsonl").read_text())
    vocab = json.loads((dataset / "vocab.json").read_text())
    vocab["emojis"] = vocab["emojis"][::-1]
    (other / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    assert cli_main([*args, "--data", str(other), *resume, "--backbone", "resnet18"]) == 2
    assert "was trained on another vocabulary" in capsys.readouterr().err


@pytest.fixture(scope="module")
def train_only(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data set without its test split (the manifest and vocabulary only)."""
    out = tmp_path_factory.mktemp("train-only")
    lines = (dataset / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if json.loads(line)["split"] != "test"]
    (out / "manifest.jsonl").write_text("\n".join(kept) + "\n", encoding="utf-8")
    (out / "vocab.json").write_text((dataset / "vocab.json").read_text(encoding="utf-8"))
    return out
