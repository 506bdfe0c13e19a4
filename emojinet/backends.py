"""Inference backends: one forward pass over a batch, typed :class:`Outputs` back.

Owns the backend interface (:class:`InferenceBackend`: ``run(batch, features=...)`` and the
``supports_features`` capability), the :class:`Outputs` of a pass, and its two implementations:

* :class:`TorchBackend` runs the model eagerly (CUDA with fp16 autocast and channels_last
  when available).
* :class:`OnnxBackend` runs an ONNX export with ONNX Runtime; several times faster on a CPU.

Backbone features (what the EmojiGAN head is conditioned on) come from the same pass as the
probabilities, and are copied to the host only when a caller asks for them.

Importing this module, and :class:`OnnxBackend`, need no torch: it is imported by what needs it
(the torch backend, exporting, choosing ``auto`` on a machine with a GPU).
"""

from __future__ import annotations

import glob
import importlib.util
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np
import numpy.typing as npt

from emojinet.errors import ConfigError, FeaturesUnavailableError

if TYPE_CHECKING:
    import onnxruntime as ort
    import torch

    from emojinet.model import EmojiNet

__all__ = [
    "InferenceBackend",
    "OnnxBackend",
    "OutputRow",
    "Outputs",
    "TorchBackend",
    "export_onnx",
    "make_backend",
    "model_digest",
    "resolve_backend",
    "select_device",
]

log = logging.getLogger(__name__)

BackendName = Literal["auto", "torch", "onnx"]
BackendChoice = Literal["torch", "onnx"]
Array = npt.NDArray[np.float32]
Order = npt.NDArray[np.intp]


@dataclass(frozen=True)
class OutputRow:
    """One input's share of a forward pass."""

    probs: Array  # (V,) per-emoji probabilities
    features: Array | None = None  # (D,) pooled backbone features, when they were asked for
    order: Order | None = None  # (V,) emoji indices, best first (Predictor.run_batch ranks them)

    def require_features(self) -> Array:
        """The (D,) features; :class:`FeaturesUnavailableError` if the pass did not return them."""
        if self.features is None:
            raise FeaturesUnavailableError("this result has no backbone features")
        return self.features


@dataclass(frozen=True)
class Outputs:
    """What one forward pass over N inputs returns."""

    probs: Array  # (N, V) per-emoji probabilities
    features: Array | None = None  # (N, D) pooled backbone features, only when asked for
    order: Order | None = None  # (N, V) each row's emoji indices, best first

    def __len__(self) -> int:
        return len(self.probs)

    def rows(self) -> list[OutputRow]:
        """One :class:`OutputRow` per input, in batch order."""
        n = len(self.probs)
        features = self.features if self.features is not None else [None] * n
        order = self.order if self.order is not None else [None] * n
        return [OutputRow(*row) for row in zip(self.probs, features, order, strict=True)]


class InferenceBackend(Protocol):
    name: str
    device: str
    supports_features: bool  # run(..., features=True) returns them

    def run(self, batch: Array, *, features: bool = False) -> Outputs:
        """(N, 3, H, W) float32 normalised images → (N, V) probabilities and, with
        ``features``, the (N, D) pooled backbone features of the same pass.

        Raises:
            FeaturesUnavailableError: ``features`` asked of a backend without them.
        """
        ...


def model_digest(model: EmojiNet) -> str:
    """:func:`emojinet.checkpoint.model_digest` (imports torch)."""
    from emojinet.checkpoint import model_digest as digest

    return digest(model)


def _check_device(spec: str) -> None:
    if spec not in ("auto", "cpu") and not spec.startswith("cuda"):
        raise ConfigError(f"unknown device {spec!r}; choose auto, cpu or cuda[:N]")


def _cuda_available() -> bool:
    """torch sees a GPU. Without torch, or without a GPU device node, torch is not imported."""
    if importlib.util.find_spec("torch") is None:
        return False
    if not any(glob.glob(p) for p in ("/dev/nvidia[0-9]*", "/dev/kfd", "/dev/dxg")):
        return False  # no NVIDIA, ROCm or WSL GPU here: torch would say the same, slower
    import torch

    return bool(torch.cuda.is_available())


def resolve_backend(backend: BackendName = "auto", device: str = "auto") -> BackendChoice:
    """The backend ``backend`` and ``device`` pick: ``auto`` is torch on a GPU, else ONNX."""
    if backend not in ("auto", "torch", "onnx"):
        raise ConfigError(f"unknown backend {backend!r}; choose auto, torch or onnx")
    _check_device(device)
    if backend != "auto":
        return backend
    if device == "auto":
        return "torch" if _cuda_available() else "onnx"
    return "onnx" if device == "cpu" else "torch"


def select_device(spec: str = "auto") -> torch.device:
    """``auto`` → CUDA when available, else CPU. Asking for CUDA without a GPU is an error."""
    import torch

    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {spec!r} was requested but CUDA is not available here")
    if spec not in ("cpu",) and not spec.startswith("cuda"):
        raise ConfigError(f"unknown device {spec!r}; choose auto, cpu or cuda[:N]")
    return torch.device(spec)


class TorchBackend:
    """Eager PyTorch. On CUDA: channels_last memory format, fp16 autocast, and batches copied
    from pinned host memory without blocking (one staging buffer per calling thread).

    ``threads``: intra-op threads on a CPU (``torch.set_num_threads``, for the whole process);
    None keeps torch's default.
    """

    supports_features = True

    def __init__(
        self, model: EmojiNet, device: str | torch.device = "auto", *, threads: int | None = None
    ) -> None:
        import torch

        self.torch_device = select_device(device) if isinstance(device, str) else device
        self.device = str(self.torch_device)
        self.name = "torch"
        self.model = model.eval().to(self.torch_device)
        self._cuda = self.torch_device.type == "cuda"
        self._staging = threading.local()
        if self._cuda:
            self.model = self.model.to(memory_format=torch.channels_last)
        elif threads:
            torch.set_num_threads(threads)

    def _to_device(self, batch: Array | torch.Tensor) -> torch.Tensor:
        import torch

        if isinstance(batch, torch.Tensor):  # already there (JPEGs decoded on the device)
            return batch.to(self.torch_device)
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        if not self._cuda:
            return x
        pinned: torch.Tensor | None = getattr(self._staging, "buffer", None)
        if pinned is None or pinned.numel() < x.numel():
            pinned = torch.empty(x.numel(), dtype=torch.float32, pin_memory=True)
            self._staging.buffer = pinned
        host = pinned[: x.numel()].view(x.shape)
        host.copy_(x)
        # The copy is queued on the stream; the .cpu() of the result waits for it before this
        # thread can reuse the buffer.
        return host.to(self.torch_device, non_blocking=True)

    def run(self, batch: Array | torch.Tensor, *, features: bool = False) -> Outputs:
        import torch

        with torch.inference_mode():
            x = self._to_device(batch)
            if self._cuda:
                x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast("cuda", dtype=torch.float16):
                    f = self.model.forward_features(x)  # (N, D)
                    logits = self.model.forward_head(f)  # (N, V)
            else:
                f = self.model.forward_features(x)
                logits = self.model.forward_head(f)
            probs = torch.sigmoid(logits.float()).cpu().numpy()
            # The features stay on the device unless asked for: no copy for the classifier head.
            return Outputs(probs, f.float().cpu().numpy() if features else None)


def export_onnx(model: EmojiNet, path: str | Path, *, opset: int = 18) -> Path:
    """Export ``model`` to ONNX with a dynamic batch dimension.

    Input ``images`` (N, 3, H, W); outputs ``probs`` (N, V) and ``features`` (N, D), the pooled
    backbone features of the same pass.
    """
    import torch

    from emojinet.artifacts import atomic_write

    path = Path(path)
    model = model.eval().cpu()
    size = model.preprocess.input_size

    class _Probs(torch.nn.Module):
        def __init__(self, inner: EmojiNet) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            features = self.inner.forward_features(images)  # (N, D)
            return torch.sigmoid(self.inner.forward_head(features)), features

    example = torch.zeros(2, 3, size, size)
    batch = torch.export.Dim("batch", min=1, max=4096)

    def write(tmp: Path) -> None:
        program = torch.onnx.export(
            _Probs(model).eval(),
            (example,),
            dynamo=True,
            input_names=["images"],
            output_names=["probs", "features"],
            dynamic_shapes={"images": {0: batch}},
            opset_version=opset,
            verbose=False,
        )
        assert program is not None
        program.save(str(tmp), external_data=False)

    atomic_write(path, write)
    return path


def _cache_dir() -> Path:
    base = os.environ.get("EMOJINET_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "emojinet"
    )
    return Path(base)


_export_lock = threading.Lock()


class OnnxBackend:
    """ONNX Runtime on the CPU (or CUDA when its provider is installed).

    ``threads``: intra-op threads (None: one per core, ONNX Runtime's default);
    ``alone_threads``: a second session with that many, for :meth:`run_alone` (a pass that has
    the cores to itself: one request on an idle server then takes every core). Idle pool
    threads wait passively instead of spinning: a spinning pool burns the cores that decode the
    next images (measured in ``benchmarks/bench_serve.py``: about 10% more photos a second
    with spinning off on a 2-core machine).
    """

    def __init__(
        self,
        onnx_path: str | Path,
        *,
        threads: int | None = None,
        alone_threads: int | None = None,
    ) -> None:
        import onnxruntime as ort

        providers = [
            p
            for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
            if p in ort.get_available_providers()
        ]

        def session(n: int | None, spin: bool) -> ort.InferenceSession:
            opts = ort.SessionOptions()
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            if n:
                opts.intra_op_num_threads = n
            opts.add_session_config_entry("session.intra_op.allow_spinning", str(int(spin)))
            opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
            return ort.InferenceSession(str(onnx_path), opts, providers=providers)

        self.session = session(threads, spin=False)
        cpu_only = providers[0] == "CPUExecutionProvider"  # (one session per GPU is enough)
        wanted = cpu_only and alone_threads not in (None, threads)
        # Alone, the pool may spin between operators: nothing else wants the cores then, and
        # waking sleeping threads for each of the model's operators costs more than the pass.
        self._alone = session(alone_threads, spin=True) if wanted else None
        self.device = "cuda" if providers[0].startswith("CUDA") else "cpu"
        self.name = "onnx"
        self.path = Path(onnx_path)
        self.supports_features = "features" in {o.name for o in self.session.get_outputs()}

    @classmethod
    def from_model(
        cls,
        model: EmojiNet,
        *,
        cache_dir: str | Path | None = None,
        threads: int | None = None,
        alone_threads: int | None = None,
    ) -> OnnxBackend:
        """Export once per distinct model (keyed by :func:`model_digest`) and reuse the file.

        Raises:
            ConfigError: the file is not there yet and the cache folder is not writable.
        """
        cache = Path(cache_dir) if cache_dir else _cache_dir()
        # "-pf": files with both outputs (probs, features); older single-output files are ignored.
        path = cache / f"{model.cfg.backbone}-{model_digest(model)[:16]}-pf.onnx"
        with _export_lock:
            if not path.is_file():
                log.info("exporting the model to ONNX at %s (once per model)", path)
                try:
                    cache.mkdir(parents=True, exist_ok=True)
                    export_onnx(model, path)
                except OSError as exc:  # a read-only home or container root
                    raise ConfigError(
                        f"cannot export the model to ONNX in {cache} ({exc.strerror or exc}): set "
                        "EMOJINET_CACHE_DIR to a writable folder, or use backend torch"
                    ) from exc
        return cls(path, threads=threads, alone_threads=alone_threads)

    def run(self, batch: Array, *, features: bool = False) -> Outputs:
        return self._run(self.session, batch, features)

    def run_alone(self, batch: Array, *, features: bool = False) -> Outputs:
        """:meth:`run` on the ``alone_threads`` session (the same numbers, more threads)."""
        return self._run(self._alone or self.session, batch, features)

    def _run(self, session: ort.InferenceSession, batch: Array, features: bool) -> Outputs:
        if features and not self.supports_features:
            raise FeaturesUnavailableError(
                f"{self.path} has no 'features' output: re-export it with this version "
                "(emojinet export --onnx PATH)"
            )
        x = np.ascontiguousarray(batch, dtype=np.float32)
        names = ["probs", "features"] if features else ["probs"]
        got = [np.asarray(a, dtype=np.float32) for a in session.run(names, {"images": x})]
        return Outputs(got[0], got[1] if features else None)


def make_backend(
    model: EmojiNet,
    backend: BackendName = "auto",
    device: str = "auto",
    *,
    threads: int | None = None,
    alone_threads: int | None = None,
) -> InferenceBackend:
    """``auto``: torch on CUDA when a GPU is there, otherwise ONNX Runtime on the CPU.

    ``threads``: intra-op threads on a CPU (None: the runtime's default); ``alone_threads``:
    see :class:`OnnxBackend`.
    """
    if resolve_backend(backend, device) == "torch":
        return TorchBackend(model, select_device(device), threads=threads)
    if device.startswith("cuda"):
        select_device(device)  # asking for CUDA without a GPU is an error
    return OnnxBackend.from_model(model, threads=threads, alone_threads=alone_threads)
