"""Artifact files of any kind, written so that a crash never leaves half a file.

:func:`atomic_write` (write, fsync, rename), :func:`file_sha256`, and the release pair
``NAME.safetensors`` (a state dict) + ``NAME.json`` (metadata with the weights' sha256):
:func:`write_safetensors_release` and :func:`read_release`. What the tensors mean (a classifier,
an EmojiGAN) is the caller's: see :mod:`emojinet.checkpoint` and :mod:`emojinet.gan_io`.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from emojinet.errors import CheckpointError
from emojinet.onnx_release import file_sha256  # the torch-free one, shared

__all__ = [
    "atomic_write",
    "file_sha256",
    "read_release",
    "release_paths",
    "write_safetensors_release",
]


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` then rename onto ``path``: a crash leaves the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        # mkstemp makes the file owner-only; give it the permissions a plain open() would, so a
        # service running as another user (a container) can read what training wrote.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def release_paths(path: str | Path) -> tuple[Path, Path]:
    """``model``, ``model.json`` or ``model.safetensors`` → (weights path, metadata path)."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in (".json", ".safetensors") else path
    return stem.with_suffix(".safetensors"), stem.with_suffix(".json")


def write_safetensors_release(
    path: str | Path, state: dict[str, torch.Tensor], meta: dict[str, Any]
) -> dict[str, Any]:
    """Write ``state`` to ``NAME.safetensors`` and ``meta`` + its sha256 to ``NAME.json``.

    Both writes are atomic; the JSON is written last, so a reader that finds it finds the
    weights it describes. Returns the metadata as written.
    """
    weights_path, meta_path = release_paths(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    atomic_write(weights_path, lambda tmp: save_file(tensors, str(tmp)))
    meta = {**meta, "weights": weights_path.name, "sha256": file_sha256(weights_path)}
    text = json.dumps(meta, ensure_ascii=False, indent=1) + "\n"

    def write_meta(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    atomic_write(meta_path, write_meta)
    return meta


def read_release(
    path: str | Path, *, fmt: str, verify: bool = True
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The state dict and metadata of a ``NAME.safetensors`` + ``NAME.json`` artifact.

    Checks that both files exist, that the metadata is JSON of format ``fmt`` and, with
    ``verify``, that the weights' sha256 matches it. Every artifact kind (classifier, EmojiGAN)
    reads its files here; rebuilding the module from them is the caller's.
    """
    weights_path, meta_path = release_paths(path)
    for p in (meta_path, weights_path):
        if not p.is_file():
            raise CheckpointError(
                f"release artifact incomplete: {p} does not exist "
                "(a release is NAME.safetensors + NAME.json side by side)"
            )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{meta_path} is not valid JSON metadata: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        raise CheckpointError(f"{meta_path} is not EmojiNet release metadata (format {fmt})")
    if verify:
        digest = file_sha256(weights_path)
        if digest != meta.get("sha256"):
            raise CheckpointError(
                f"{weights_path} sha256 {digest[:12]}… does not match the metadata's "
                f"{str(meta.get('sha256'))[:12]}…: the file is corrupt or from another release"
            )
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights_path} is not a readable safetensors file: {exc}") from exc
    return state, meta
