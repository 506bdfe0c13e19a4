"""The package layering holds literally: the library never reaches into the service or training.

``emojinet`` is the library (model, loading, inference); ``service`` (HTTP) and ``training``
build on it. The library must not import either, by module name or by a string handed to an
import machinery; the service must not import training code (losses, critics, trainers).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    """Top-level package names imported by ``path``, plus dotted names written as strings."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            first = node.value.split(".")[0]
            if "." in node.value and " " not in node.value and first in ("service", "training"):
                names.add(first)
    return names


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [("emojinet", {"service", "training"}), ("service", {"training"})],
)
def test_package_does_not_import(package: str, forbidden: set[str]) -> None:
    offenders = {
        str(path.relative_to(REPO)): sorted(_imports(path) & forbidden)
        for path in sorted((REPO / package).rglob("*.py"))
        if _imports(path) & forbidden
    }
    assert offenders == {}


def test_the_checker_sees_imports_and_import_strings(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import training.train\nfrom service import app\n"
        "import importlib\nimportlib.import_module('training.cli')\n"
        "print('the training data folder')\n"
    )
    assert _imports(probe) == {"training", "service", "importlib"}
