"""The Python API: ``emojinet.suggest``, ``emojinet.distribution`` and ``emojinet.load``.

A thin layer over :class:`~emojinet.predictor.Predictor` for scripts and notebooks. It takes
photos as a file path, image bytes, a PIL image or a numpy array, one or a list of them, and
answers with the library's own typed results. Importing it (and ``emojinet``) is cheap: torch,
ONNX Runtime, numpy and Pillow are imported the first time a photo is looked at.

>>> import emojinet
>>> photo = emojinet.sample_photo()  # Chelsea the cat, shipped with the package
>>> suggestions = emojinet.suggest(photo, top_k=5)
>>> "🐈" in suggestions.emojis
True
>>> suggestions[0].name
'cat'
>>> [len(s) for s in emojinet.suggest([photo, photo.read_bytes()], top_k=3)]  # one per photo
[3, 3]

Every input goes through the decode path of the service and the command line: file contents and
bytes are decoded with its format, size and shape limits; a PIL image or an array is first
written losslessly (PNG) and then decoded the same way, so the same limits and preprocessing
apply. An input that is not an image raises :class:`~emojinet.errors.InvalidImageError`; one
over the limits, :class:`~emojinet.errors.ImageTooLargeError`.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, cast, overload

from emojinet.errors import InvalidImageError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from PIL import Image

    from emojinet.backends import BackendName
    from emojinet.predictor import ModelInfo, Predictor, Suggestion
    from emojinet.sampling import Distribution

    #: One photo: a file path, encoded image bytes, a PIL image, or an H×W×3 (RGB), H×W×4
    #: (RGBA) or H×W (grayscale) uint8 array.
    ImageInput: TypeAlias = (
        str | os.PathLike[str] | bytes | bytearray | memoryview | Image.Image | npt.NDArray[Any]
    )

__all__ = ["Suggester", "Suggestions", "distribution", "load", "sample_photo", "suggest"]

#: Photos decoded and run through the model at a time (bounds memory for long lists).
BATCH_SIZE = 16
SAMPLE_PHOTO = "data/sample.jpg"


def sample_photo() -> Path:
    """The photo shipped with the package: scikit-image's "Chelsea the cat" (CC0), a JPEG.

    >>> sample_photo().suffix
    '.jpg'
    """
    return Path(str(resources.files("emojinet").joinpath(SAMPLE_PHOTO)))


class Suggestions(list["Suggestion"]):
    """One photo's suggested emojis, best first: a list of
    :class:`~emojinet.predictor.Suggestion` (``emoji``, ``name``, ``score``) that prints briefly.
    """

    @property
    def emojis(self) -> list[str]:
        """The emojis alone, best first."""
        return [s.emoji for s in self]

    def __repr__(self) -> str:
        return "[" + ", ".join(f"{s.emoji} {s.name} {s.score:.3f}" for s in self) + "]"


class Suggester:
    """A loaded model, reusable for any number of photos (see :func:`load`).

    >>> suggester = load()
    >>> suggester.suggest(sample_photo(), top_k=1).emojis
    ['🐈']
    >>> d = suggester.distribution(sample_photo(), n=50, temperature=0.1, seed=0)  # sharpened
    >>> d.mode, sum(count for _, count in d.histogram)
    ('🐈', 50)
    """

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor  # the underlying Predictor, for bytes and raw probabilities

    @property
    def info(self) -> ModelInfo:
        """The model's name, backbone, head, vocabulary size, backend and device."""
        return self.predictor.info

    @property
    def vocab(self) -> list[str]:
        """Every emoji the model can suggest, in its score order."""
        return list(self.predictor.vocab)

    def __repr__(self) -> str:
        i = self.info
        return f"<emojinet.Suggester {i.name!r}: {i.vocab_size} emojis, {i.backend} on {i.device}>"

    @overload
    def suggest(  # type: ignore[overload-overlap]  # str, bytes: one photo, not many
        self, images: ImageInput, top_k: int = ..., *, threshold: float | None = ...
    ) -> Suggestions: ...
    @overload
    def suggest(
        self, images: Sequence[ImageInput], top_k: int = ..., *, threshold: float | None = ...
    ) -> list[Suggestions]: ...

    def suggest(
        self,
        images: ImageInput | Sequence[ImageInput],
        top_k: int = 5,
        *,
        threshold: float | None = None,
    ) -> Suggestions | list[Suggestions]:
        """The ``top_k`` best emojis for a photo (a list of photos: one result per photo).

        Args:
            images: a path, bytes, a PIL image or a uint8 array; or a list or tuple of them.
            top_k: at most this many emojis per photo.
            threshold: also drop emojis scored under this.

        Raises:
            InvalidImageError: an input is not a readable image.
            ImageTooLargeError: an image is over the decoding limits.
        """
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        many, items = _as_list(images)
        out = [
            Suggestions(self.predictor.top_k(row, top_k, threshold)) for row in self._probs(items)
        ]
        return out if many else out[0]

    @overload
    def distribution(  # type: ignore[overload-overlap]  # str, bytes: one photo, not many
        self, images: ImageInput, *, n: int = ..., temperature: float = ..., seed: int | None = ...
    ) -> Distribution: ...
    @overload
    def distribution(
        self,
        images: Sequence[ImageInput],
        *,
        n: int = ...,
        temperature: float = ...,
        seed: int | None = ...,
    ) -> list[Distribution]: ...

    def distribution(
        self,
        images: ImageInput | Sequence[ImageInput],
        *,
        n: int = 50,
        temperature: float = 1.0,
        seed: int | None = None,
    ) -> Distribution | list[Distribution]:
        """Draw ``n`` emojis from each photo's emoji distribution (as ``/distribution`` does).

        A :class:`~emojinet.sampling.Distribution` per photo: the draws, their histogram, the
        mode and how stable it is, the entropy; ``.format()`` renders it as text.

        Args:
            n: draws per photo.
            temperature: below 1 sharpens the distribution, above 1 flattens it.
            seed: makes the draws reproducible.

        Raises:
            InvalidImageError, ImageTooLargeError: as :meth:`suggest`.
            SamplingError: a bad ``n`` or ``temperature``.
        """
        from emojinet.sampling import check_draws, sample_distribution

        check_draws(n)
        many, items = _as_list(images)
        vocab = self.predictor.vocab
        out = [
            sample_distribution(row, vocab, n=n, temperature=temperature, seed=seed)
            for row in self._probs(items)
        ]
        return out if many else out[0]

    def _probs(self, items: list[ImageInput]) -> list[npt.NDArray[np.float32]]:
        """(V,) probabilities per photo, deny-listed emojis 0; in batches of BATCH_SIZE."""
        import numpy as np

        rows: list[npt.NDArray[np.float32]] = []
        for start in range(0, len(items), BATCH_SIZE):
            chunk = items[start : start + BATCH_SIZE]
            batch = np.stack([self.predictor.preprocess(_to_bytes(x)) for x in chunk])
            rows.extend(self.predictor.run_batch(batch).probs)
        return rows


def load(
    model: str | os.PathLike[str] | None = None,
    *,
    backend: BackendName | None = None,
    device: str | None = None,
) -> Suggester:
    """Load a model once, to suggest emojis for many photos.

    Args:
        model: a shipped model's name (``"emoji500"``), a release artifact or a training
            checkpoint; ``None``: the built-in zero-shot model.
        backend: ``"onnx"``, ``"torch"`` or ``None`` (``"auto"``): torch on a GPU, otherwise
            ONNX Runtime (the built-in model's ONNX file ships in the package; other models
            are exported once and cached).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``None`` (``"auto"``).

    Raises:
        CheckpointError: the model is missing, corrupt or does not match.
        ConfigError: an unknown backend or device.
    """
    from emojinet.predictor import Predictor

    path = None if model is None else os.fspath(model)
    predictor = Predictor.load(path, backend=backend or "auto", device=device or "auto")
    return Suggester(predictor)


_defaults: dict[tuple[str | None, str | None, str | None], Suggester] = {}
_defaults_lock = threading.Lock()


def _default(
    model: str | os.PathLike[str] | None, backend: BackendName | None, device: str | None
) -> Suggester:
    """The one :class:`Suggester` the module-level functions share per (model, backend, device)."""
    key = (None if model is None else os.fspath(model), backend, device)
    with _defaults_lock:
        if key not in _defaults:
            _defaults[key] = load(model, backend=backend, device=device)
        return _defaults[key]


@overload
def suggest(  # type: ignore[overload-overlap]  # str, bytes: one photo, not many
    images: ImageInput,
    top_k: int = ...,
    *,
    threshold: float | None = ...,
    model: str | os.PathLike[str] | None = ...,
    backend: BackendName | None = ...,
    device: str | None = ...,
) -> Suggestions: ...
@overload
def suggest(
    images: Sequence[ImageInput],
    top_k: int = ...,
    *,
    threshold: float | None = ...,
    model: str | os.PathLike[str] | None = ...,
    backend: BackendName | None = ...,
    device: str | None = ...,
) -> list[Suggestions]: ...


def suggest(
    images: ImageInput | Sequence[ImageInput],
    top_k: int = 5,
    *,
    threshold: float | None = None,
    model: str | os.PathLike[str] | None = None,
    backend: BackendName | None = None,
    device: str | None = None,
) -> Suggestions | list[Suggestions]:
    """:meth:`Suggester.suggest` with a model loaded on first use and kept (see :func:`load`).

    >>> top = suggest(sample_photo(), top_k=3)
    >>> len(top), top[0].emoji, 0.0 < top[0].score <= 1.0
    (3, '🐈', True)
    """
    return _default(model, backend, device).suggest(images, top_k, threshold=threshold)


@overload
def distribution(  # type: ignore[overload-overlap]  # str, bytes: one photo, not many
    images: ImageInput,
    *,
    n: int = ...,
    temperature: float = ...,
    seed: int | None = ...,
    model: str | os.PathLike[str] | None = ...,
    backend: BackendName | None = ...,
    device: str | None = ...,
) -> Distribution: ...
@overload
def distribution(
    images: Sequence[ImageInput],
    *,
    n: int = ...,
    temperature: float = ...,
    seed: int | None = ...,
    model: str | os.PathLike[str] | None = ...,
    backend: BackendName | None = ...,
    device: str | None = ...,
) -> list[Distribution]: ...


def distribution(
    images: ImageInput | Sequence[ImageInput],
    *,
    n: int = 50,
    temperature: float = 1.0,
    seed: int | None = None,
    model: str | os.PathLike[str] | None = None,
    backend: BackendName | None = None,
    device: str | None = None,
) -> Distribution | list[Distribution]:
    """:meth:`Suggester.distribution` with a model loaded on first use and kept.

    >>> d = distribution(sample_photo(), n=100, seed=1)
    >>> d.n, len(d.samples), sum(count for _, count in d.histogram)
    (100, 100, 100)
    """
    return _default(model, backend, device).distribution(
        images, n=n, temperature=temperature, seed=seed
    )


def _as_list(images: ImageInput | Sequence[ImageInput]) -> tuple[bool, list[ImageInput]]:
    """(whether a list was given, the photos as a list): a list or tuple is many photos."""
    if isinstance(images, list | tuple):
        return True, list(images)
    return False, [cast("ImageInput", images)]


def _to_bytes(image: ImageInput) -> bytes:
    """Encoded image bytes for any input, for the predictor's (size-checked) decode path."""
    if isinstance(image, bytes | bytearray | memoryview):
        return bytes(image)
    if isinstance(image, str | os.PathLike):
        try:
            return Path(image).read_bytes()
        except OSError as exc:
            raise InvalidImageError(f"cannot read {image}: {exc.strerror or exc}") from exc
    import numpy as np
    from PIL import Image

    if isinstance(image, np.ndarray):
        return _png(_from_array(image))
    if isinstance(image, Image.Image):
        return _png(image)
    raise InvalidImageError(
        f"cannot read a {type(image).__name__} as a photo: pass a file path, image bytes, "
        "a PIL image or a uint8 numpy array"
    )


def _from_array(array: npt.NDArray[Any]) -> Image.Image:
    """An H×W (grayscale), H×W×3 (RGB) or H×W×4 (RGBA) uint8 array as a PIL image."""
    import numpy as np
    from PIL import Image

    shape_ok = array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))
    if array.dtype != np.uint8 or not shape_ok:
        raise InvalidImageError(
            f"an image array must be uint8 of shape (H, W), (H, W, 3) or (H, W, 4), "
            f"got {array.dtype} {array.shape}"
        )
    return Image.fromarray(np.ascontiguousarray(array))


def _png(img: Image.Image) -> bytes:
    """Lossless, quickly compressed PNG bytes of ``img`` (modes PNG cannot hold become RGB)."""
    if img.mode not in ("1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"):
        img = img.convert("RGB")
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
