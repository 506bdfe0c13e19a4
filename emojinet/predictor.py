"""The predictor: bytes in, emoji suggestions out. Knows nothing about HTTP.

Owns a loaded model with its preprocessing, its inference backend and its deny-list, and the
typed results (:class:`Prediction`, :class:`Suggestion`, :class:`ModelInfo`). Split in the steps
a server schedules differently:

* :meth:`Predictor.preprocess` decodes and transforms one image (CPU, thread pool);
* :meth:`Predictor.run_batch` runs one forward pass over a stacked batch (the device) and
  returns :class:`~emojinet.backends.Outputs`: probabilities, and backbone features when asked
  for (:attr:`Predictor.supports_features` says whether they can be);
* :meth:`Predictor.top_k` turns one row of probabilities into suggestions.

:meth:`Predictor.predict` chains the three for scripts and the command line. The built-in model
on ONNX Runtime loads from the ONNX file shipped in the package, a release exported with its
``NAME.onnx`` from that file, and neither imports torch (nor does anything here on that path:
preprocessing is Pillow and numpy). The deny-list is
applied in :meth:`Predictor.run_batch` alone: a deny-listed emoji's probability is 0 there, so
no head and no endpoint ever sees it (the EmojiGAN head reads the same mask,
:attr:`Predictor.denied`, to never draw one).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np
import numpy.typing as npt

from emojinet.backends import (
    BackendName,
    InferenceBackend,
    OnnxBackend,
    Order,
    OutputRow,
    Outputs,
    make_backend,
    model_digest,
    resolve_backend,
    select_device,
)
from emojinet.errors import VocabularyError
from emojinet.gpu_decode import EncodedJpeg, encoded_jpeg
from emojinet.onnx_release import (
    BUILTIN_VOCAB,
    OnnxModel,
    builtin_onnx,
    read_onnx_model,
    read_release_onnx,
    release_onnx_meta,
)
from emojinet.preprocess import DEFAULT_MAX_PIXELS, PreprocessConfig, decode_image, eval_array
from emojinet.vocab import Vocabulary, normalize_emoji

if TYPE_CHECKING:
    import torch

    from emojinet.backends import TorchBackend
    from emojinet.gpu_decode import JpegBatchDecoder
    from emojinet.model import EmojiNet

__all__ = [
    "ModelInfo",
    "OutputRow",
    "Outputs",
    "Prediction",
    "Predictor",
    "ServedModel",
    "Suggestion",
    "deny_mask",
    "ranking",
]

log = logging.getLogger(__name__)

Array = npt.NDArray[np.float32]


class _Card(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def backbone(self) -> str: ...
    @property
    def head(self) -> str: ...


class ServedModel(Protocol):
    """What a predictor needs of a model: an :class:`~emojinet.model.EmojiNet` or an
    :class:`~emojinet.onnx_release.OnnxModel`."""

    @property
    def cfg(self) -> _Card: ...
    @property
    def vocab(self) -> Vocabulary: ...
    @property
    def preprocess(self) -> PreprocessConfig: ...


@dataclass(frozen=True)
class Suggestion:
    emoji: str
    name: str
    score: float


@dataclass(frozen=True)
class Prediction:
    """One image's result from :meth:`Predictor.predict`."""

    suggestions: list[Suggestion]  # the best emojis, best first
    probs: Array  # (V,) per-emoji probabilities, deny-listed ones 0
    features: Array | None = None  # (D,) backbone features, when asked for


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


class Predictor:
    """A model, its preprocessing, an inference backend and a deny-list.

    Args:
        sha256: the model's identity (:attr:`emojinet.checkpoint.ModelMeta.digest`); computed
            from the weights when not given.
        max_pixels: images with more pixels are refused before decoding.
        deny: emojis never to suggest or draw; ones outside the vocabulary are ignored.

    Raises:
        VocabularyError: a deny-list entry is not an emoji, or it denies every emoji.
    """

    def __init__(
        self,
        model: ServedModel,
        backend: InferenceBackend,
        *,
        sha256: str = "",
        max_pixels: int = DEFAULT_MAX_PIXELS,
        deny: Iterable[str] = (),
        batch_jpeg: bool = False,
    ) -> None:
        self.model = model
        self.vocab = model.vocab
        self.backend = backend
        self.max_pixels = max_pixels
        self._names = model.vocab.names()
        self.denied = deny_mask(model.vocab, deny)
        if self.denied.all():
            raise VocabularyError("the deny-list holds every emoji of the model's vocabulary")
        # JPEGs decoded a batch at a time on the torch backend's device (emojinet.gpu_decode).
        self._jpegs: JpegBatchDecoder | None = None
        if batch_jpeg:
            from emojinet.gpu_decode import JpegBatchDecoder

            device = cast("TorchBackend", backend).torch_device
            self._jpegs = JpegBatchDecoder(model.preprocess, device, self.preprocess)
        self.info = ModelInfo(
            name=model.cfg.name,
            backbone=model.cfg.backbone,
            head=model.cfg.head,
            vocab_size=len(model.vocab),
            version=_version(),
            sha256=sha256 or _digest(model),
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
        threads: int | None = None,
        alone_threads: int | None = None,
        gpu_decode: bool = False,
    ) -> Predictor:
        """The model at ``path`` (see :func:`emojinet.checkpoint.load`) on ``backend``.

        ``threads``: intra-op threads for a forward pass on a CPU (None: the runtime's default);
        ``alone_threads``: as many for :meth:`run_batch_alone` (ONNX Runtime only);
        ``gpu_decode``: on the torch backend on CUDA, :meth:`prepare` leaves JPEGs for
        :meth:`stack` to decode a batch at a time on the GPU.

        On ONNX Runtime, the built-in model runs the ONNX file shipped in the package and a
        release whose ``NAME.json`` names its ``NAME.onnx`` runs that file (each checked by
        sha256), without torch; any other model is loaded with torch and exported once.
        """
        kw: dict[str, Any] = {"max_pixels": max_pixels, "deny": deny}
        spec = _shipped_onnx(path, vocab) if resolve_backend(backend, device) == "onnx" else None
        if spec is not None:
            if device.startswith("cuda"):
                select_device(device)  # asking for CUDA without a GPU is an error
            backend_ = OnnxBackend(spec.path, threads=threads, alone_threads=alone_threads)
            return cls(spec, backend_, sha256=spec.model_sha256, **kw)
        from emojinet import checkpoint

        model, meta = checkpoint.load(path, vocab=vocab)
        made = make_backend(model, backend, device, threads=threads, alone_threads=alone_threads)
        on_gpu = made.name == "torch" and made.device.startswith("cuda")
        return cls(model, made, sha256=meta.digest, batch_jpeg=gpu_decode and on_gpu, **kw)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        size = self.model.preprocess.input_size
        return (3, size, size)

    @property
    def supports_features(self) -> bool:
        """Whether :meth:`run_batch` can return backbone features (the EmojiGAN head needs them)."""
        return self.backend.supports_features

    def preprocess(self, data: bytes) -> Array:
        """Image bytes → (3, H, W) float32. Raises InvalidImageError / ImageTooLargeError."""
        img = decode_image(
            data, max_pixels=self.max_pixels, draft_size=self.model.preprocess.resize_size
        )
        return eval_array(img, self.model.preprocess)

    def prepare(self, data: bytes) -> Array | EncodedJpeg:
        """:meth:`preprocess`, except that a JPEG is left encoded when :meth:`stack` decodes
        JPEGs on the device (only its header is read here)."""
        if self._jpegs is not None and (jpeg := encoded_jpeg(data)) is not None:
            return jpeg
        return self.preprocess(data)

    def stack(self, inputs: Sequence[Array | EncodedJpeg]) -> Array | torch.Tensor:
        """One batch for :meth:`run_batch` from what :meth:`prepare` gave: a numpy array, or
        with JPEGs among them a tensor on the device, the JPEGs decoded there in one call."""
        jpegs = [x for x in inputs if isinstance(x, EncodedJpeg)]
        if self._jpegs is None or not jpegs:
            return np.stack(cast("list[Array]", inputs))
        import torch

        decoded = iter(self._jpegs(jpegs))
        device = self._jpegs.device
        rows = [
            next(decoded) if isinstance(x, EncodedJpeg) else torch.from_numpy(x).to(device)
            for x in inputs
        ]
        return torch.stack(rows)

    def run_batch(self, batch: Array | torch.Tensor, *, features: bool = False) -> Outputs:
        """(N, 3, H, W) → (N, V) probabilities, and (N, D) features with ``features``: one pass.

        Deny-listed emojis get probability 0 here, the one place every head, endpoint and
        command goes through, so they are never suggested or sampled.

        Raises:
            FeaturesUnavailableError: ``features`` asked of a backend without them.
        """
        # A tensor comes only from stack() with batch_jpeg, which is on the torch backend.
        return self._finished(self.backend.run(cast("Array", batch), features=features))

    def run_batch_alone(self, batch: Array, *, features: bool = False) -> Outputs:
        """:meth:`run_batch` for a pass that has the cores to itself: on ONNX Runtime, with the
        ``alone_threads`` session given to :meth:`load` (same numbers); otherwise the same."""
        run = getattr(self.backend, "run_alone", self.backend.run)
        return self._finished(run(batch, features=features))

    def _finished(self, out: Outputs) -> Outputs:
        """Deny-listed emojis zeroed, and each row ranked (:func:`ranking`) here, in the pass's
        thread: a server's event loop then only slices (sorting 500 scores there took ~30 µs)."""
        probs = out.probs
        if self.denied.any():
            probs = probs.copy()
            probs[:, self.denied] = 0.0
        return Outputs(probs, out.features, ranking(probs))

    def top_k(
        self,
        probs: Array,
        k: int = 5,
        threshold: float | None = None,
        order: Order | None = None,
    ) -> list[Suggestion]:
        """One row (V,) of :meth:`run_batch` → the ``k`` best emojis, dropping those under
        ``threshold``; ``order`` is the row's :func:`ranking` when it has one already.

        Emojis with probability 0 (the deny-listed ones) are never returned, even when ``k``
        exceeds the others. Equal scores keep the vocabulary's order.
        """
        best = (ranking(probs) if order is None else order)[:k]
        best = best[probs[best] > 0]
        out = [Suggestion(self.vocab[i], self._names[i], float(probs[i])) for i in best]
        if threshold is not None:
            out = [s for s in out if s.score >= threshold]
        return out

    def predict(
        self,
        images: Sequence[bytes],
        *,
        k: int = 5,
        threshold: float | None = None,
        features: bool = False,
    ) -> list[Prediction]:
        """Decode, run one batch and rank: one :class:`Prediction` per image, in order.

        Raises:
            InvalidImageError, ImageTooLargeError: an image cannot be decoded.
            FeaturesUnavailableError: ``features`` asked of a backend without them.
        """
        if not images:
            return []
        out = self.run_batch(np.stack([self.preprocess(b) for b in images]), features=features)
        return [
            Prediction(self.top_k(row.probs, k, threshold, row.order), row.probs, row.features)
            for row in out.rows()
        ]


def ranking(probs: Array) -> Order:
    """The emoji indices of each row of ``probs`` (V,) or (N, V), best first; equal scores
    keep the vocabulary's order, so the same scores always rank the same."""
    return np.argsort(-probs, axis=-1, kind="stable")


def deny_mask(vocab: Vocabulary, deny: Iterable[str]) -> npt.NDArray[np.bool_]:
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


def _shipped_onnx(path: str | Path | None, vocab: str | None) -> OnnxModel | None:
    """The ONNX file that serves ``path`` without torch: the built-in model's (default
    vocabulary), a release's ``NAME.onnx``; None when there is none."""
    if not path:
        builtin = (vocab or BUILTIN_VOCAB) == BUILTIN_VOCAB and builtin_onnx().is_file()
        return read_onnx_model(builtin_onnx()) if builtin else None
    meta_file = release_onnx_meta(path)
    return read_release_onnx(meta_file) if meta_file is not None else None


def _digest(model: ServedModel) -> str:
    if isinstance(model, OnnxModel):
        return model.model_sha256
    return model_digest(cast("EmojiNet", model))


def _version() -> str:
    from emojinet import __version__

    return __version__
