"""`emojinet bench`: a timing table per backbone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emojinet.cli import main as cli_main


def test_bench_prints_a_table_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    code = cli_main(
        [
            "bench",
            "--backbones",
            "resnet18",
            "efficientnet_lite0",
            "--batch-size",
            "2",
            "--input-size",
            "32",
            "--iters",
            "1",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "fwd+bwd ms" in text and "resnet18" in text and "efficientnet_lite0" in text
    rows = json.loads(out.read_text())
    assert [r["backbone"] for r in rows] == ["resnet18", "efficientnet_lite0"]
    assert all(r["forward_ms"] > 0 and r["forward_backward_ms"] > 0 for r in rows)


def test_bench_unknown_backbone_lists_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["bench", "--backbones", "vgg", "--iters", "1"]) == 2
    err = capsys.readouterr().err
    assert "unknown backbone 'vgg'; choose one of" in err and "Traceback" not in err
