"""The EmojiGAN head at inference time: a GAN release bound to one classifier, and its draws.

Owns :class:`GanHead` (loading a release for one model, drawing emojis from backbone features,
describing the draws with :func:`emojinet.sampling.describe_draws`) and :class:`GanHeadError`.

A GAN release is conditioned on one classifier's backbone features; :meth:`GanHead.load`
refuses a release trained on another model (its ``backbone_sha256`` must equal the loaded
model's sha256) or over another vocabulary. The service and ``emojinet suggest --gan`` share it.
Importing this module needs no torch; loading a release does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from emojinet.errors import EmojiNetError
from emojinet.sampling import Distribution, check_draws, describe_draws
from emojinet.vocab import Vocabulary

if TYPE_CHECKING:
    import torch

    from emojinet.gan import EmojiGAN

__all__ = ["GanHead", "GanHeadError"]


class GanHeadError(EmojiNetError):
    """The GAN release cannot serve the loaded model (other backbone, vocabulary or file)."""


@dataclass(frozen=True)
class GanHead:
    """A loaded generator, its release metadata and the emojis it may decode to."""

    gan: EmojiGAN
    meta: dict[str, Any]
    allowed: torch.Tensor  # (V,) bool: False for deny-listed emojis

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        model_sha256: str,
        vocab: Vocabulary,
        denied: npt.NDArray[np.bool_] | None = None,
    ) -> GanHead:
        """Load ``path`` for the model with ``model_sha256`` and ``vocab``.

        Args:
            denied: (V,) deny-list mask of the predictor; those emojis are never drawn.

        Raises:
            GanHeadError: the release is unreadable or belongs to another model.
            ImportError: torch is not installed.
        """
        import torch

        from emojinet.gan_io import load_gan

        try:
            gan, meta = load_gan(path)
        except EmojiNetError as exc:
            raise GanHeadError(f"cannot load the GAN release {path}: {exc}") from exc
        trained_on = str(meta.get("backbone_sha256", ""))
        if trained_on != model_sha256:
            raise GanHeadError(
                f"the GAN release {Path(path).name} was trained on the features of model "
                f"{trained_on[:12]}…, but the loaded model is {model_sha256[:12]}…: train a GAN "
                "for this model (emojinet train-gan --model MODEL)"
            )
        if list(gan.vocab.emojis) != list(vocab.emojis):
            raise GanHeadError(
                f"the GAN release {Path(path).name} has {len(gan.vocab)} emojis that differ "
                f"from the model's {len(vocab)}"
            )
        mask = np.zeros(len(vocab), bool) if denied is None else np.asarray(denied, bool)
        if mask.all():
            raise GanHeadError("every emoji of the vocabulary is deny-listed")
        return cls(gan, meta, torch.from_numpy(~mask))

    @property
    def vocab(self) -> Vocabulary:
        return self.gan.vocab

    def draw(
        self, features: npt.NDArray[np.float32], n: int, *, seed: int | None = None
    ) -> npt.NDArray[np.int64]:
        """(N, D) backbone features → (N, n) vocabulary indices, never a deny-listed one."""
        import torch

        gen = torch.Generator()
        if seed is None:
            gen.seed()
        else:
            gen.manual_seed(seed)
        f = torch.as_tensor(np.asarray(features, np.float32))
        with torch.no_grad():
            drawn = self.gan.sample(f, n, generator=gen, allowed=self.allowed)  # (N, n)
        out: npt.NDArray[np.int64] = drawn.numpy().astype(np.int64)
        return out

    def distribution(
        self,
        features: npt.NDArray[np.float32],
        *,
        n: int = 50,
        seed: int | None = None,
        k: int = 10,
    ) -> Distribution:
        """Draw ``n`` emojis for one image's (D,) features and describe them.

        The histogram, mode and top-k are those of the draws; ``entropy`` and ``mode_stability``
        are those of the draws' empirical frequencies (the GAN has no closed-form
        distribution). ``temperature`` is reported as 1: it does not apply to the generator.

        Raises:
            SamplingError: ``n`` is under 1.
        """
        check_draws(n)
        draws = self.draw(np.asarray(features, np.float32)[None], n, seed=seed)[0]  # (n,)
        freqs = np.bincount(draws, minlength=len(self.vocab)) / n  # (V,)
        gen = np.random.default_rng(seed)
        return describe_draws(draws.tolist(), freqs, list(self.vocab.emojis), generator=gen, k=k)
