"""ONNX files that serve without torch, and the built-in model's one shipped in the package.

An ONNX release is ``NAME.onnx`` (inputs ``images`` (N, 3, H, W); outputs ``probs`` (N, V) and
``features`` (N, D)) beside ``NAME.onnx.json``: the file's sha256, the model's identity
(``model_sha256``, the digest :func:`emojinet.checkpoint.load` gives the same model), its name,
backbone and head, its vocabulary and its preprocessing. Reading one needs the JSON, numpy and
ONNX Runtime only: no torch, and nothing is exported at start.

The built-in zero-shot model (with its default vocabulary) ships as ``data/builtin.onnx``;
:func:`write_builtin` (torch needed) rebuilds it after the model or its tables change.

A release artifact (``NAME.safetensors`` + ``NAME.json``) exported with ``onnx=True`` also
carries ``NAME.onnx``, named with its sha256 in ``NAME.json`` (``"onnx": {"file", "sha256"}``):
:func:`read_release_onnx` reads it the same way, from ``NAME.json`` alone (no torch).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emojinet.errors import CheckpointError, VocabularyError
from emojinet.preprocess import PreprocessConfig
from emojinet.vocab import Vocabulary

if TYPE_CHECKING:
    from emojinet.model import EmojiNet

__all__ = [
    "BUILTIN_ONNX",
    "FORMAT",
    "ModelCard",
    "OnnxModel",
    "builtin_onnx",
    "file_sha256",
    "read_onnx_model",
    "read_release_onnx",
    "release_onnx_meta",
    "write_builtin",
    "write_onnx_model",
]

FORMAT = "emojinet-onnx/1"
#: A classifier release's metadata format (:data:`emojinet.checkpoint.FORMAT`).
RELEASE_FORMAT = "emojinet-release/1"
#: The built-in model's ONNX file, inside the package.
BUILTIN_ONNX = "data/builtin.onnx"
#: The built-in vocabulary the shipped file was exported with (checkpoint.BUILTIN_VOCAB).
BUILTIN_VOCAB = "all"


@dataclass(frozen=True)
class ModelCard:
    """What a served model is called and built from (the parts of its config a client sees)."""

    name: str
    backbone: str
    head: str


@dataclass(frozen=True)
class OnnxModel:
    """An ONNX file with what serving needs beside it; quacks like an EmojiNet for a Predictor."""

    path: Path  # the .onnx file
    sha256: str  # of the .onnx file, checked when read
    model_sha256: str  # the model's identity
    cfg: ModelCard
    vocab: Vocabulary
    preprocess: PreprocessConfig
    vocab_spec: str = ""  # the built-in vocabulary it was exported with ("all"), if any


def meta_path(onnx: str | Path) -> Path:
    """``NAME.onnx`` → ``NAME.onnx.json``."""
    return Path(f"{onnx}.json")


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, read in 1 MiB chunks (every artifact's checksum)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def builtin_onnx() -> Path:
    """Where the shipped built-in model's ONNX file is."""
    return Path(str(resources.files("emojinet").joinpath(BUILTIN_ONNX)))


def read_onnx_model(path: str | Path, *, verify: bool = True) -> OnnxModel:
    """Read ``NAME.onnx.json`` and check ``NAME.onnx`` against its sha256.

    Raises:
        CheckpointError: a file is missing, the metadata is invalid or the digest differs.
    """
    path = Path(path)
    meta_file = meta_path(path)
    if not path.is_file() or not meta_file.is_file():
        raise CheckpointError(f"{path} and {meta_file.name} beside it are needed to serve it")
    try:
        meta: dict[str, Any] = json.loads(meta_file.read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT:
            raise CheckpointError(f"{meta_file}: format {meta.get('format')!r}, not {FORMAT!r}")
        card = ModelCard(**{k: str(meta["card"][k]) for k in ("name", "backbone", "head")})
        vocab = Vocabulary(tuple(meta["vocab"]["emojis"]), tuple(meta["vocab"]["counts"]))
        pre = PreprocessConfig.from_dict(meta["preprocess"])
        digest, model_digest = str(meta["sha256"]), str(meta["model_sha256"])
    except (OSError, ValueError, KeyError, TypeError, VocabularyError) as exc:
        raise CheckpointError(f"{meta_file} is not valid ONNX model metadata ({exc})") from exc
    if verify:
        _check_digest(path, digest, meta_file)
    return OnnxModel(path, digest, model_digest, card, vocab, pre, str(meta.get("vocab_spec", "")))


def _check_digest(path: Path, digest: str, meta_file: Path) -> None:
    if file_sha256(path) != digest:
        raise CheckpointError(
            f"{path} does not match the sha256 in {meta_file.name}: the file is corrupt or "
            "was replaced; reinstall or re-export it"
        )


def release_onnx_meta(path: str | Path) -> Path | None:
    """``NAME``, ``NAME.json`` or ``NAME.safetensors`` → ``NAME.json`` when it exists and names
    an ONNX file (``"onnx"``); None otherwise (a checkpoint, a shipped model's name, a release
    without one)."""
    p = Path(path)
    if p.suffix in (".pt", ".pth", ".ckpt"):  # a training checkpoint (checkpoint.load)
        return None
    if p.suffix in (".json", ".safetensors"):  # as artifacts.release_paths
        p = p.with_suffix("")
    meta_file = p.with_suffix(".json")
    if not meta_file.is_file():
        return None
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # the torch loader reports what is wrong with it
    ok = isinstance(meta, dict) and meta.get("format") == RELEASE_FORMAT and "onnx" in meta
    return meta_file if ok else None


def read_release_onnx(path: str | Path, *, verify: bool = True) -> OnnxModel:
    """The ONNX file a release's ``NAME.json`` names, checked against its sha256; the model's
    identity (the release's weights digest), card, vocabulary and preprocessing come from
    ``NAME.json``. No torch.

    Raises:
        CheckpointError: the metadata is invalid, the file is missing or its digest differs.
    """
    meta_file = Path(path)
    try:
        meta: dict[str, Any] = json.loads(meta_file.read_text(encoding="utf-8"))
        entry, cfg = dict(meta["onnx"]), dict(meta["config"])
        name = str(entry["file"])
        if Path(name).name != name or not name.endswith(".onnx"):
            raise ValueError(f"onnx file {name!r} is not a .onnx file beside it")
        card = ModelCard(str(cfg["name"]), str(cfg["backbone"]), str(cfg["head"]))
        vocab = Vocabulary(tuple(meta["vocab"]["emojis"]), tuple(meta["vocab"]["counts"]))
        pre = PreprocessConfig.from_dict(cfg.get("preprocess") or meta["preprocess"])
        digest, model_digest = str(entry["sha256"]), str(meta["sha256"])
    except (OSError, ValueError, KeyError, TypeError, VocabularyError) as exc:
        raise CheckpointError(f"{meta_file} is not valid release metadata ({exc})") from exc
    onnx = meta_file.parent / name
    if not onnx.is_file():
        raise CheckpointError(f"{meta_file.name} names {name}, but {onnx} does not exist")
    if verify:
        _check_digest(onnx, digest, meta_file)
    return OnnxModel(onnx, digest, model_digest, card, vocab, pre)


def write_onnx_model(
    model: EmojiNet, path: str | Path, *, model_sha256: str, vocab_spec: str = ""
) -> OnnxModel:
    """Export ``model`` to ``path`` and write its metadata beside it (needs torch)."""
    from emojinet import __version__
    from emojinet.artifacts import atomic_write
    from emojinet.backends import export_onnx

    path = export_onnx(model, path)
    meta = {
        "format": FORMAT,
        "version": __version__,
        "sha256": file_sha256(path),
        "model_sha256": model_sha256,
        "card": {"name": model.cfg.name, "backbone": model.cfg.backbone, "head": model.cfg.head},
        "vocab_spec": vocab_spec,
        "vocab": model.vocab.to_dict(),
        "preprocess": model.preprocess.to_dict(),
    }
    text = json.dumps(meta, ensure_ascii=False, indent=1) + "\n"

    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    atomic_write(meta_path(path), write)
    return read_onnx_model(path)


def write_builtin(path: str | Path | None = None) -> OnnxModel:
    """Re-export the built-in model into the package (or ``path``); needs torch.

    ``python -c "from emojinet.onnx_release import write_builtin; write_builtin()"``
    """
    from emojinet.checkpoint import load

    model, meta = load(None, vocab=BUILTIN_VOCAB)
    out = Path(path) if path is not None else builtin_onnx()
    return write_onnx_model(model, out, model_sha256=meta.digest, vocab_spec=BUILTIN_VOCAB)
