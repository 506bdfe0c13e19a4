"""`emojinet` starts fast and answers every user error with one line and an exit code.

The command line runs as a real subprocess: ``--help`` must not import torch, the help shows
defaults, a training command alone sets ``OMP_WAIT_POLICY``, ``suggest`` runs on ONNX Runtime on
a CPU, and bad options, absent CUDA, another vocabulary or a missing plotting extra give one
line on stderr, never a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from training_data import fashion_dataset

from emojinet import __version__
from emojinet.checkpoint import export_release
from emojinet.model import EmojiNet
from emojinet.vocab import Vocabulary

REPO = Path(__file__).resolve().parents[1]

# Makes matplotlib unimportable, as on an install without the `train` extra.
NO_MATPLOTLIB = """
import sys

class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "matplotlib":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
"""


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "emojinet", *args],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )


def one_line_error(result: subprocess.CompletedProcess[str], message: str) -> None:
    """Exit 2 and ``message`` on stderr's only line."""
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


# -- starting fast ----------------------------------------------------------------------------


# `python -m emojinet --help`, then the modules it loaded, as JSON on stderr.
HELP_THEN_MODULES = """
import json, runpy, sys
sys.argv = ["emojinet", "--help"]
try:
    runpy.run_module("emojinet", run_name="__main__")
except SystemExit as exc:
    print(json.dumps({"code": exc.code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def test_help_imports_neither_torch_nor_the_training_or_serving_code() -> None:
    result = subprocess.run(
        [sys.executable, "-c", HELP_THEN_MODULES],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    assert "train-gan" in result.stdout and "serve" in result.stdout  # every command is listed
    report = json.loads(result.stderr.strip().splitlines()[-1])
    assert report["code"] == 0
    imported = set(report["modules"])
    assert {"emojinet.cli", "training.cli", "service.cli"} <= imported
    heavy = {"torch", "torchvision", "numpy", "onnxruntime", "uvicorn", "pydantic"}
    assert heavy & imported == set()
    assert not {m for m in imported if m.startswith("training.") and m != "training.cli"} - {
        "training.errors",
        "training.options",
        "training.weights",
    }


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"emojinet {__version__}"


def test_help_shows_the_defaults() -> None:
    suggest = run_cli("suggest", "--help").stdout
    assert "suggestions per image (default: 5)" in suggest
    for command in ("suggest", "gallery"):  # ONNX Runtime on a CPU, as the service
        usage = suggest if command == "suggest" else run_cli(command, "--help").stdout
        assert "(default: auto)" in usage.split("--backend {")[-1].split("--device")[0]
    train = run_cli("train", "--help").stdout  # the trainer's options, built without torch
    assert "--backbone BACKBONE" in train and "(default: efficientnet_lite0)" in train
    evaluate = run_cli("evaluate", "--help").stdout
    assert "draws per image (default: 50)" in evaluate  # options in a group too


@pytest.mark.parametrize("user", [None, "ACTIVE"])
def test_only_training_commands_set_omp_wait_policy(tmp_path: Path, user: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if user:
        env["OMP_WAIT_POLICY"] = user
    code = (
        "import os, sys; from emojinet.cli import build_parser, main\n"
        "build_parser(); print(os.environ.get('OMP_WAIT_POLICY'))\n"
        f"print(main(['prepare', '--out', {str(tmp_path / 'ds')!r}]), "
        "os.environ.get('OMP_WAIT_POLICY'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, check=False
    )
    assert result.returncode == 0, result.stderr
    # The parser (as `emojinet serve` builds it) leaves it alone; `prepare` (no sources: 2)
    # sets PASSIVE unless the user chose.
    assert result.stdout.splitlines() == [str(user), f"2 {user or 'PASSIVE'}"]


# -- suggest ----------------------------------------------------------------------------------


@pytest.fixture
def tiny(tmp_path: Path, tiny_model_factory: Callable[..., EmojiNet]) -> Path:
    export_release(tiny_model_factory(), tmp_path / "tiny")
    return tmp_path / "tiny"


def test_suggest_runs_on_onnx_runtime_on_a_cpu_by_default(
    tiny: Path, photo_dir: Path, tmp_path: Path
) -> None:
    photo = str(photo_dir / "chelsea.jpg")
    cache = tmp_path / "cache"
    args = ["suggest", photo, "--model", str(tiny), "--json"]
    torch_run = run_cli(*args, "--backend", "torch", env={"EMOJINET_CACHE_DIR": str(cache)})
    assert torch_run.returncode == 0, torch_run.stderr
    assert not list(cache.glob("*.onnx"))
    default = run_cli(*args, env={"EMOJINET_CACHE_DIR": str(cache)})
    assert default.returncode == 0, default.stderr
    assert len(list(cache.glob("resnet18-*-pf.onnx"))) == 1  # the model was exported for ORT
    got, want = (json.loads(r.stdout)["emojis"] for r in (default, torch_run))
    assert [e["emoji"] for e in got] == [e["emoji"] for e in want]  # the same suggestions
    assert [e["score"] for e in got] == pytest.approx([e["score"] for e in want], abs=1e-4)


def test_suggest_json_distribution_is_one_line_per_image(tiny: Path, photo_dir: Path) -> None:
    photos = [str(photo_dir / "chelsea.jpg"), str(photo_dir / "coffee.jpg")]
    result = run_cli(
        "suggest", *photos, "--model", str(tiny), "--json", "--distribution", "-n", "20",
        "--seed", "1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["image"] for line in lines] == photos
    for line in lines:
        assert len(line["emojis"]) == 5
        assert line["distribution"]["n"] == 20 and len(line["distribution"]["samples"]) == 20


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_suggest_on_cuda_without_cuda_is_one_line(tiny: Path, photo_dir: Path) -> None:
    result = run_cli(
        "suggest", str(photo_dir / "chelsea.jpg"), "--model", str(tiny), "--device", "cuda"
    )
    one_line_error(result, "device 'cuda' was requested but CUDA is not available here")


# -- train and evaluate -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fashion_dataset(tmp_path_factory.mktemp("fm"), n_train=40, n_test=20, val_fraction=0.25)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--cache-features"], "--cache-features needs --freeze-stages >= 1"),
        (["--freeze-stages", "9"], "--freeze-stages must be between 0 and 5, got 9"),
        (["--backbone", "nosuch"], "unknown backbone 'nosuch'; choose one of"),
        # Checked before the data set is read: the last --data wins, and it does not exist.
        (["--backbone", "nosuch", "--data", "/nonexistent"], "unknown backbone 'nosuch'"),
        (["--batch-size", "0"], "argument --batch-size: must be between 1 and 65536, got 0"),
        (["--epochs", "x"], "argument --epochs: invalid int value: 'x'"),
    ],
)
def test_bad_train_options_are_one_line(
    dataset: Path, tmp_path: Path, extra: list[str], message: str
) -> None:
    tiny = ["--weights", "none", "--input-size", "16", "--resize-size", "16", "--workers", "0"]
    args = ["train", "--data", str(dataset), "--output-dir", str(tmp_path / "o"), "--epochs", "1"]
    result = run_cli(*args, "--backbone", "resnet18", *tiny, *extra)
    if message.startswith("argument"):  # argparse: the usage, then the one-line error
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert result.stderr.splitlines()[-1].endswith(message), result.stderr
    else:
        one_line_error(result, message)


def test_an_unwritable_output_folder_is_one_line(dataset: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    out = tmp_path / "file" / "run"
    args = ["train", "--data", str(dataset), "--output-dir", str(out), "--backbone", "resnet18"]
    result = run_cli(*args, "--weights", "none")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"emojinet train: error: [Errno 20] Not a directory: '{out}'"
    ]


def _release_for(
    dataset: Path, tmp_path: Path, factory: Callable[..., EmojiNet], *, flip: bool
) -> Path:
    emojis = Vocabulary.from_file(dataset / "vocab.json").emojis
    export_release(factory(tuple(reversed(emojis)) if flip else tuple(emojis)), tmp_path / "m")
    return tmp_path / "m"


def test_evaluating_on_another_vocabulary_is_one_line(
    dataset: Path, tmp_path: Path, tiny_model_factory: Callable[..., EmojiNet]
) -> None:
    model = _release_for(dataset, tmp_path, tiny_model_factory, flip=True)
    out = tmp_path / "eval"
    result = run_cli(
        "evaluate",
        "--model",
        str(model),
        "--data",
        str(dataset),
        "--out",
        str(out),
        "--workers",
        "0",
    )
    one_line_error(result, "the model's vocabulary (9 emojis) differs from the data set's (9)")
    assert not out.exists()


@pytest.mark.parametrize("distribution", [False, True])
def test_evaluate_without_matplotlib_writes_metrics_and_says_why_no_plots(
    dataset: Path, tmp_path: Path, tiny_model_factory: Callable[..., EmojiNet], distribution: bool
) -> None:
    model = _release_for(dataset, tmp_path, tiny_model_factory, flip=False)
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(NO_MATPLOTLIB)
    out = tmp_path / "eval"
    args = ["evaluate", "--model", str(model), "--data", str(dataset), "--out", str(out)]
    extra = ["--distribution", "-n", "5"] if distribution else []
    result = run_cli(*args, "--workers", "0", *extra, env={"PYTHONPATH": f"{shim}:{REPO}"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        "emojinet evaluate: no plots: matplotlib not installed (pip install 'emojinet[train]')"
    )
    written = "distribution.json" if distribution else "metrics.json"
    assert result.stdout.strip().endswith(f"wrote {out / written}")
    assert json.loads((out / written).read_text())
    assert not list(out.glob("*.png"))
