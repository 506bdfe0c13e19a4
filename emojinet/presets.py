"""The torchvision presets (training, and checking the numpy path against torch).

Serving uses :func:`emojinet.preprocess.eval_array`, which needs no torch; these import it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PIL import Image

from emojinet.errors import ConfigError
from emojinet.preprocess import PreprocessConfig

if TYPE_CHECKING:
    import torch
    from torchvision.transforms import v2 as T

__all__ = ["eval_preset", "to_tensor_batch", "train_preset"]


def _interpolation(name: str) -> T.InterpolationMode:
    from torchvision.transforms import v2 as T

    try:
        return T.InterpolationMode(name)
    except ValueError:
        choices = ", ".join(m.value for m in T.InterpolationMode)
        raise ConfigError(f"unknown interpolation {name!r}; choose one of {choices}") from None


def eval_preset(cfg: PreprocessConfig) -> T.Compose:
    """Resize and crop as ``cfg.crop`` says (see :class:`PreprocessConfig`), then normalise.

    Input: an RGB PIL image. Output: float tensor (3, input_size, input_size).
    """
    import torch
    from torchvision.transforms import v2 as T

    interpolation = _interpolation(cfg.interpolation)
    resize: list[Any]
    if cfg.crop == "full":
        size = (cfg.input_size, cfg.input_size)
        resize = [T.Resize(size, interpolation=interpolation, antialias=True)]
    else:
        resize = [
            T.Resize(cfg.resize_size, interpolation=interpolation, antialias=True),
            T.CenterCrop(cfg.input_size),
        ]
    return T.Compose(
        [
            T.PILToTensor(),
            *resize,
            T.ToDtype(torch.float32, scale=True),
            T.Normalize(mean=list(cfg.mean), std=list(cfg.std)),
        ]
    )


def train_preset(
    cfg: PreprocessConfig, *, scale: tuple[float, float] = (0.35, 1.0), hflip: bool = True
) -> T.Compose:
    """Random-resized crop, optional horizontal flip, light colour jitter, normalise."""
    import torch
    from torchvision.transforms import v2 as T

    steps: list[Any] = [
        T.PILToTensor(),
        T.RandomResizedCrop(
            cfg.input_size,
            scale=scale,
            interpolation=_interpolation(cfg.interpolation),
            antialias=True,
        ),
    ]
    if hflip:
        steps.append(T.RandomHorizontalFlip())
    steps += [
        T.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2),
        T.ToDtype(torch.float32, scale=True),
        T.Normalize(mean=list(cfg.mean), std=list(cfg.std)),
    ]
    return T.Compose(steps)


def to_tensor_batch(images: list[Image.Image], cfg: PreprocessConfig) -> torch.Tensor:
    """Eval-preprocess several images into one (N, 3, H, W) float tensor."""
    import torch

    transform = eval_preset(cfg)
    return torch.stack([transform(img) for img in images])
