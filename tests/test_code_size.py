"""Files and functions stay small enough to read: no module over ~400 lines, no function over
~80 in the packages (argparse builders, which are one long list of options, excepted)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("emojinet", "service", "training")
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 80


def _is_argparse_builder(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A function whose body is mostly ``add_argument`` calls."""
    calls = [
        node
        for node in ast.walk(fn)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("add_argument", "add_parser", "add_argument_group")
    ]
    return len(calls) >= 10


def _sources() -> list[Path]:
    return [p for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))]


def test_no_module_is_too_long() -> None:
    long = {
        str(p.relative_to(REPO)): n
        for p in _sources()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_FILE_LINES
    }
    assert long == {}


def test_no_function_is_too_long() -> None:
    long = {}
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > MAX_FUNCTION_LINES and not _is_argparse_builder(node):
                    long[f"{path.relative_to(REPO)}:{node.lineno} {node.name}"] = n
    assert long == {}


def test_every_module_says_what_it_owns() -> None:
    missing = [
        str(p.relative_to(REPO))
        for p in _sources()
        if p.read_text(encoding="utf-8").strip()
        and ast.get_docstring(ast.parse(p.read_text())) is None
    ]
    assert missing == []
