"""The predictor: bytes in, emoji suggestions out. Knows nothing about HTTP.

Split in the steps a server schedules differently:

* :meth:`Predictor.preprocess` decodes and transforms one image (CPU, thread pool);
* :meth:`Predictor.predict_batch` runs one forward pass over a stacked batch (the device);
  :meth:`Predictor.predict_with_features` also returns the backbone features of that pass;
* :meth:`Predictor.top_k` turns one row of probabilities into suggestions.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emojinet.backends import BackendName, InferenceBackend, make_backend, model_digest
from emojinet.errors import VocabularyError
from emojinet.model import EmojiNet, EmojiNetConfig, build_model
from emojinet.preprocess import DEFAULT_MAX_PIXELS, decode_image, eval_preset
from emojinet.vocab import Vocabulary, normalize_emoji

__all__ = ["ModelInfo", "Predictor", "Suggestion", "deny_mask", "load_model"]

log = logging.getLogger(__name__)

#: The built-in zero-shot model suggests from every current emoji (a trained classifier keeps
#: the vocabulary it was trained on).
BUILTIN_VOCAB = "all"


@dataclass(frozen=True)
class Suggestion:
    emoji: str
    name: str
    score: float


@dataclass(frozen=True)
class ModelInfo:
    name: str
    backbone: str
    head: str
    vocab_size: int
    version: str
    sha256: str
    backend: str
    device: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_model(path: str | Path | None = None, *, vocab: str | None = None) -> tuple[EmojiNet, str]:
    """A release artifact or checkpoint at ``path``, else the built-in zero-shot model.

    Returns the model and its sha256 (the release file's digest when there is one).
    ``vocab`` (``"all"``, the built-in model's default: every current emoji; ``"default"``:
    the 500 most used; or a file) picks the zero-shot vocabulary.
    """
    from emojinet.checkpoint import load_checkpoint, load_release

    if path:
        p = Path(path)
        if p.suffix in (".pt", ".pth", ".ckpt"):
            model, _ = load_checkpoint(p)
            return model, model_digest(model)
        model, meta = load_release(p)
        return model, str(meta["sha256"])
    spec = vocab or BUILTIN_VOCAB
    model = build_model(EmojiNetConfig(vocab=spec), Vocabulary.resolve(spec))
    return model, model_digest(model)


class Predictor:
    """A model, its preprocessing and an inference backend."""

    def __init__(
        self,
        model: EmojiNet,
        backend: InferenceBackend,
        *,
        sha256: str = "",
        max_pixels: int = DEFAULT_MAX_PIXELS,
        deny: Iterable[str] = (),
    ) -> None:
        self.model = model
        self.vocab = model.vocab
        self.backend = backend
        self.max_pixels = max_pixels
        self._transform = eval_preset(model.preprocess)
        self._names = model.vocab.names()
        self.denied = deny_mask(model.vocab, deny)
        self.info = ModelInfo(
            name=model.cfg.name,
            backbone=model.cfg.backbone,
            head=model.cfg.head,
            vocab_size=len(model.vocab),
            version=_version(),
            sha256=sha256 or model_digest(model),
            backend=backend.name,
            device=backend.device,
        )

    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        *,
        backend: BackendName = "auto",
        device: str = "auto",
        vocab: str | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        deny: Iterable[str] = (),
    ) -> Predictor:
        model, digest = load_model(path, vocab=vocab)
        backend_impl = make_backend(model, backend, device)
        return cls(model, backend_impl, sha256=digest, max_pixels=max_pixels, deny=deny)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        size = self.model.preprocess.input_size
        return (3, size, size)

    def preprocess(self, data: bytes) -> np.ndarray:
        """Image bytes → (3, H, W) float32. Raises InvalidImageError / ImageTooLargeError."""
        img = decode_image(
            data, max_pixels=self.max_pixels, draft_size=self.model.preprocess.resize_size
        )
        x: torch.Tensor = self._transform(img)
        return x.numpy()

    def predict_batch(self, batch: np.ndarray) -> np.ndarray:
        """(N, 3, H, W) → (N, V) probabilities: one forward pass.

        Deny-listed emojis get probability 0 here, the one place every head, endpoint and
        command goes through, so they are never suggested or sampled.
        """
        return self._deny(self.backend.predict(batch))

    def predict_with_features(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3, H, W) → ((N, V) probabilities, (N, D) pooled backbone features), one pass.

        The features condition the EmojiGAN head; the deny-list applies to the probabilities
        as in :meth:`predict_batch` (and to GAN draws through :attr:`denied`).
        """
        probs, features = self.backend.predict_with_features(batch)
        return self._deny(probs), features

    def _deny(self, probs: np.ndarray) -> np.ndarray:
        if self.denied.any():
            probs = probs.copy()
            probs[:, self.denied] = 0.0
        return probs

    def top_k(
        self, probs: np.ndarray, k: int = 5, threshold: float | None = None
    ) -> list[Suggestion]:
        """One row (V,) → the ``k`` best emojis, dropping those under ``threshold``.

        Deny-listed emojis are never returned, even when ``k`` exceeds the allowed ones.
        """
        scores = np.where(self.denied, -np.inf, probs)
        k = max(1, min(k, int((~self.denied).sum())))
        idx = np.argpartition(-scores, k - 1)[:k]
        idx = idx[np.argsort(-scores[idx], kind="stable")]
        out = [Suggestion(self.vocab[i], self._names[i], float(probs[i])) for i in idx]
        if threshold is not None:
            out = [s for s in out if s.score >= threshold]
        return out

    def suggest(
        self, images: list[bytes], k: int = 5, threshold: float | None = None
    ) -> list[list[Suggestion]]:
        """Convenience for scripts: preprocess, one batch, top-k per image."""
        batch = np.stack([self.preprocess(b) for b in images])
        return [self.top_k(row, k, threshold) for row in self.predict_batch(batch)]


def deny_mask(vocab: Vocabulary, deny: Iterable[str]) -> np.ndarray:
    """(V,) bool mask of deny-listed emojis.

    Entries must be emojis; ones outside ``vocab`` are ignored, so one deny-list can serve
    models with different vocabularies.
    """
    mask = np.zeros(len(vocab), dtype=bool)
    for raw in deny:
        e = normalize_emoji(raw)
        if e is None:
            raise VocabularyError(f"deny-list entry {raw!r} is not an emoji")
        if e in vocab:
            mask[vocab.index(e)] = True
    return mask


def _version() -> str:
    from emojinet import __version__

    return __version__
