"""The `emojinet` command line, run as a real subprocess on real photos."""

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from emojinet.checkpoint import export_release
from emojinet.model import EmojiNet

CAT_EMOJIS = {"🐱", "🐈", "😺", "😸", "😹", "😻", "😼", "😽", "🙀", "😿", "😾", "🐈‍⬛"}


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "emojinet", *args],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


@pytest.fixture(scope="module")
def default_run(
    photo_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> list[dict[str, object]]:
    """One CLI run of the default model over real photos plus two bad files."""
    folder = tmp_path_factory.mktemp("cli")  # the shared photo folder stays as it is
    for name in ("chelsea.jpg", "coffee.jpg", "rocket.jpg"):
        (folder / name).write_bytes((photo_dir / name).read_bytes())
    (folder / "notes.txt").write_text("not an image")
    (folder / "empty.jpg").write_bytes(b"")
    files = ["chelsea.jpg", "coffee.jpg", "notes.txt", "rocket.jpg", "empty.jpg", "missing.jpg"]
    result = run_cli("suggest", *(str(folder / f) for f in files), "--json", "--top-k", "5")
    assert result.returncode == 1, result.stderr  # some files failed
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(str(line["image"])).name for line in lines] == files  # one line per file, in order
    assert "notes.txt: the data is not an image" in result.stderr
    return lines


def test_cat_photo_gets_a_cat_emoji_in_top_5(default_run: list[dict[str, object]]) -> None:
    emojis = [e["emoji"] for e in default_run[0]["emojis"]]  # type: ignore[union-attr,index]
    assert len(emojis) == 5
    assert CAT_EMOJIS & set(emojis), emojis


def test_coffee_photo_gets_hot_beverage_in_top_5(default_run: list[dict[str, object]]) -> None:
    emojis = [e["emoji"] for e in default_run[1]["emojis"]]  # type: ignore[union-attr,index]
    assert "☕" in emojis, emojis


def test_scores_are_sorted_probabilities(default_run: list[dict[str, object]]) -> None:
    for line in (default_run[0], default_run[1], default_run[3]):
        scores = [e["score"] for e in line["emojis"]]  # type: ignore[union-attr,index]
        assert scores == sorted(scores, reverse=True)
        assert all(0.0 <= s <= 1.0 for s in scores)
        assert all(e["name"] for e in line["emojis"])  # type: ignore[union-attr,index]


def test_bad_files_are_reported_and_do_not_stop_the_others(
    default_run: list[dict[str, object]],
) -> None:
    errors = {Path(str(line["image"])).name: line.get("error") for line in default_run}
    assert "not an image" in str(errors["notes.txt"])
    assert "empty" in str(errors["empty.jpg"])
    assert "cannot read" in str(errors["missing.jpg"])
    assert errors["rocket.jpg"] is None  # the file after a bad one was still processed


def test_table_output_and_threshold(
    photo_dir: Path, tmp_path: Path, tiny_model_factory: Callable[..., EmojiNet]
) -> None:
    export_release(tiny_model_factory(), tmp_path / "tiny")
    result = run_cli(
        "suggest",
        str(photo_dir / "chelsea.jpg"),
        "--model",
        str(tmp_path / "tiny"),
        "--top-k",
        "3",
        "--threshold",
        "0.0",
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].endswith("chelsea.jpg") and len(lines) == 4
    result = run_cli(
        "suggest",
        str(photo_dir / "chelsea.jpg"),
        "--model",
        str(tmp_path / "tiny"),
        "--threshold",
        "1.0",
        "--json",
    )
    assert json.loads(result.stdout)["emojis"] == []
    deny = ["--deny", "🐱,☕", "--distribution", "-n", "300", "--seed", "1"]
    result = run_cli(
        "suggest", str(photo_dir / "chelsea.jpg"), "--model", str(tmp_path / "tiny"),
        "--top-k", "50", "--json", *deny,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (suggested,) = (json.loads(line) for line in result.stdout.splitlines())  # one line per image
    assert {e["emoji"] for e in suggested["emojis"]} == {"🚀", "🌸", "😂"}
    dist = suggested["distribution"]
    assert dist["n"] == 300 and not {"🐱", "☕"} & set(dist["samples"])


def test_usage_errors_exit_2(photo_dir: Path, tmp_path: Path) -> None:
    result = run_cli("suggest", str(photo_dir / "chelsea.jpg"), "--top-k", "0")
    assert result.returncode == 2 and "must be between 1 and 50" in result.stderr
    result = run_cli("suggest", str(photo_dir / "chelsea.jpg"), "--model", str(tmp_path / "nope"))
    assert result.returncode == 2
    assert "release artifact incomplete" in result.stderr
    assert "Traceback" not in result.stderr


def test_export_onnx_checks_against_torch(
    tmp_path: Path, tiny_model_factory: Callable[..., EmojiNet]
) -> None:
    export_release(tiny_model_factory(), tmp_path / "tiny")
    out = tmp_path / "tiny.onnx"
    result = run_cli("export", "--onnx", str(out), "--model", str(tmp_path / "tiny"))
    assert result.returncode == 0, result.stderr
    assert out.is_file() and "max |onnx - torch|" in result.stdout
