"""Saving and loading models: the one loader, training checkpoints and release artifacts.

:func:`load` is how every caller (service, CLI, evaluation, the GAN binding, training) gets a
model from a path, or the built-in zero-shot model, with its identity (:class:`ModelMeta`).

A training checkpoint is one ``torch.save`` file of plain containers and tensors::

    {model, optimizer, scheduler, epoch, step, config, vocab, version, metrics, extra}

A release artifact is two files side by side: ``NAME.safetensors`` (the state dict) and
``NAME.json`` (config, vocabulary, preprocessing, sha256 of the weights, metrics). Neither
path ever unpickles arbitrary objects: checkpoints load with ``weights_only=True``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from emojinet import __version__
from emojinet.errors import CheckpointError, VocabularyError
from emojinet.model import EmojiNet, EmojiNetConfig, build_model
from emojinet.preprocess import PreprocessConfig
from emojinet.vocab import Vocabulary

__all__ = [
    "BUILTIN_VOCAB",
    "ModelMeta",
    "atomic_write",
    "export_release",
    "file_sha256",
    "load",
    "load_checkpoint",
    "load_release",
    "model_digest",
    "read_release",
    "release_paths",
    "save_checkpoint",
    "write_safetensors_release",
]

FORMAT = "emojinet-release/1"
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
#: The built-in zero-shot model suggests from every current emoji (a trained classifier keeps
#: the vocabulary it was trained on).
BUILTIN_VOCAB = "all"


@dataclass(frozen=True)
class ModelMeta:
    """Where a loaded model came from, and its identity.

    Attributes:
        digest: sha256 hex that identifies the model: the release's weights file digest, else
            :func:`model_digest` of the config, vocabulary and weights.
        source: ``"release"``, ``"checkpoint"`` or ``"builtin"``.
        path: the file it was loaded from (None for the built-in model).
        metrics: the metrics stored with it.
        raw: the release metadata or the checkpoint dictionary as stored.
    """

    digest: str
    source: Literal["release", "checkpoint", "builtin"]
    path: Path | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)


def load(
    path: str | Path | None = None,
    *,
    vocab: str | None = None,
    map_location: str | torch.device = "cpu",
) -> tuple[EmojiNet, ModelMeta]:
    """A training checkpoint (``.pt``/``.pth``/``.ckpt``), a release artifact (``NAME``,
    ``NAME.json`` or ``NAME.safetensors``) or, with no path, the built-in zero-shot model.

    ``vocab`` picks the built-in model's vocabulary (``"all"``, its default: every current
    emoji; ``"default"``: the 500 most used; or a file); a saved model keeps its own.
    Raises :class:`CheckpointError` for anything missing, corrupt or mismatched.
    """
    if path is None or str(path) == "":
        spec = vocab or BUILTIN_VOCAB
        model = build_model(EmojiNetConfig(vocab=spec), Vocabulary.resolve(spec))
        return model, ModelMeta(model_digest(model), "builtin")
    p = Path(path)
    if p.suffix in CHECKPOINT_SUFFIXES:
        model, ckpt = load_checkpoint(p, map_location=map_location)
        meta = ModelMeta(model_digest(model), "checkpoint", p, dict(ckpt.get("metrics", {})), ckpt)
        return model, meta
    model, info = load_release(p)
    return model, ModelMeta(str(info["sha256"]), "release", p, dict(info["metrics"]), info)


def model_digest(model: EmojiNet) -> str:
    """sha256 over the config, vocabulary and weights: identifies a model independent of files."""
    h = hashlib.sha256()
    h.update(repr(sorted(model.cfg.to_dict().items())).encode())
    h.update("".join(model.vocab.emojis).encode())
    for key, tensor in model.state_dict().items():
        h.update(key.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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


def _rebuild(
    cfg: EmojiNetConfig,
    vocab: Vocabulary,
    state: dict[str, torch.Tensor],
    source: Path,
    preprocess: dict[str, Any] | None,
) -> EmojiNet:
    """``build_model(cfg, vocab, pretrained=False)`` + ``load_state_dict(state)``.

    Artifacts written before preprocessing moved into the config store it beside the config
    (``preprocess``); older ones also kept the backbone's ImageNet classifier, which a built
    model no longer holds.
    """
    if cfg.preprocess is None and preprocess:
        cfg = replace(cfg, preprocess=PreprocessConfig.from_dict(preprocess))
    state = {k: v for k, v in state.items() if not k.startswith("backbone.imagenet_head.")}
    model = build_model(cfg, vocab, pretrained=False)
    _load_state(model, state, source)
    return model


def _load_state(model: EmojiNet, state: dict[str, torch.Tensor], source: Path) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        msg = str(exc).split("\n")
        detail = "; ".join(line.strip() for line in msg[1:4] if line.strip())
        raise CheckpointError(
            f"{source}: weights do not match backbone {model.cfg.backbone!r} with "
            f"{model.num_classes} emojis ({detail})"
        ) from exc


def _vocab_from(data: Any, source: Path) -> Vocabulary:
    try:
        return Vocabulary(tuple(data["emojis"]), tuple(data["counts"]))
    except (KeyError, TypeError, VocabularyError) as exc:
        raise CheckpointError(f"{source}: the stored vocabulary is invalid ({exc})") from exc


def _config_from(data: Any, source: Path) -> EmojiNetConfig:
    try:
        return EmojiNetConfig.from_dict(dict(data))
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{source}: the stored config is invalid ({exc})") from exc


def _check_head_size(state: dict[str, torch.Tensor], vocab: Vocabulary, source: Path) -> None:
    for key in ("head.fc.weight", "head.affinity"):
        if key in state:
            size = state[key].shape[0] if key.endswith("weight") else state[key].shape[-1]
            if size != len(vocab):
                raise CheckpointError(
                    f"{source}: the head has {size} outputs but the vocabulary has "
                    f"{len(vocab)} emojis"
                )


# -- training checkpoints ---------------------------------------------------------------------


def save_checkpoint(
    path: str | Path,
    model: EmojiNet,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    epoch: int = 0,
    step: int = 0,
    metrics: dict[str, float] | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Atomically write a full training checkpoint (model, optimizer, scheduler, progress)."""
    ckpt = {
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "epoch": int(epoch),
        "step": int(step),
        "config": model.cfg.to_dict(),
        "vocab": model.vocab.to_dict(),
        "version": __version__,
        "metrics": dict(metrics or {}),
        "extra": dict(extra or {}),
    }
    atomic_write(path, lambda tmp: torch.save(ckpt, tmp))


def load_checkpoint(
    path: str | Path, *, map_location: str | torch.device = "cpu"
) -> tuple[EmojiNet, dict[str, Any]]:
    """Rebuild the model from a training checkpoint alone; returns ``(model, checkpoint dict)``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, not a torch file, pickled objects refused …
        raise CheckpointError(
            f"{path} is not a readable EmojiNet checkpoint (corrupt or truncated?): {exc}"
        ) from exc
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path} does not hold a checkpoint dictionary")
    missing = {"model", "config", "vocab"} - set(ckpt)
    if missing:
        raise CheckpointError(f"{path} is missing {sorted(missing)}: not an EmojiNet checkpoint")
    cfg = _config_from(ckpt["config"], path)
    vocab = _vocab_from(ckpt["vocab"], path)
    _check_head_size(ckpt["model"], vocab, path)
    # Older checkpoints kept the preprocessing beside the config (or in ``extra``).
    legacy = ckpt.get("preprocess") or dict(ckpt.get("extra") or {}).get("preprocess")
    model = _rebuild(cfg, vocab, ckpt["model"], path, legacy)
    return model, ckpt


# -- release artifacts ------------------------------------------------------------------------


def release_paths(path: str | Path) -> tuple[Path, Path]:
    """``model``, ``model.json`` or ``model.safetensors`` → (weights path, metadata path)."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in (".json", ".safetensors") else path
    return stem.with_suffix(".safetensors"), stem.with_suffix(".json")


def export_release(
    model: EmojiNet, path: str | Path, *, metrics: dict[str, float] | None = None
) -> dict[str, Any]:
    """Write ``NAME.safetensors`` + ``NAME.json``; returns the metadata."""
    meta = {
        "format": FORMAT,
        "name": model.cfg.name,
        "version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": model.cfg.to_dict(),
        "vocab": model.vocab.to_dict(),
        "metrics": dict(metrics or {}),
    }
    return write_safetensors_release(path, model.state_dict(), meta)


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
    path: str | Path, *, fmt: str = FORMAT, verify: bool = True
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


def load_release(path: str | Path, *, verify: bool = True) -> tuple[EmojiNet, dict[str, Any]]:
    """Load a classifier release artifact, checking the weights' sha256 against the metadata."""
    state, meta = read_release(path, verify=verify)
    weights_path, meta_path = release_paths(path)
    cfg = _config_from(meta.get("config"), meta_path)
    vocab = _vocab_from(meta.get("vocab"), meta_path)
    _check_head_size(state, vocab, weights_path)
    model = _rebuild(cfg, vocab, state, weights_path, meta.get("preprocess"))
    return model, meta
