"""Inference backends behind one interface: ``predict(batch) -> probs``.

``predict_with_features(batch) -> (probs, features)`` returns the backbone's pooled features
from the same forward pass (the EmojiGAN head is conditioned on them).

* :class:`TorchBackend` runs the model eagerly (CUDA with fp16 autocast and channels_last
  when available).
* :class:`OnnxBackend` runs an ONNX export with ONNX Runtime; several times faster on a CPU.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import torch

from emojinet.checkpoint import atomic_write, model_digest
from emojinet.model import EmojiNet

__all__ = [
    "InferenceBackend",
    "OnnxBackend",
    "TorchBackend",
    "export_onnx",
    "make_backend",
    "model_digest",
    "select_device",
]

log = logging.getLogger(__name__)

BackendName = Literal["auto", "torch", "onnx"]


class InferenceBackend(Protocol):
    name: str
    device: str

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """(N, 3, H, W) float32 normalised images → (N, V) float32 probabilities."""
        ...

    def predict_with_features(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3, H, W) → ((N, V) probabilities, (N, D) pooled backbone features), one pass."""
        ...


def select_device(spec: str = "auto") -> torch.device:
    """``auto`` → CUDA when available, else CPU. Asking for CUDA without a GPU is an error."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {spec!r} was requested but CUDA is not available here")
    if spec not in ("cpu",) and not spec.startswith("cuda"):
        raise ValueError(f"unknown device {spec!r}; choose auto, cpu or cuda[:N]")
    return torch.device(spec)


class TorchBackend:
    """Eager PyTorch. On CUDA: channels_last memory format and fp16 autocast."""

    def __init__(self, model: EmojiNet, device: str | torch.device = "auto") -> None:
        self.torch_device = select_device(device) if isinstance(device, str) else device
        self.device = str(self.torch_device)
        self.name = "torch"
        self.model = model.eval().to(self.torch_device)
        self._cuda = self.torch_device.type == "cuda"
        if self._cuda:
            self.model = self.model.to(memory_format=torch.channels_last)

    @torch.inference_mode()
    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self.predict_with_features(batch)[0]

    @torch.inference_mode()
    def predict_with_features(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(
            self.torch_device, non_blocking=True
        )
        if self._cuda:
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=torch.float16):
                features = self.model.forward_features(x)  # (N, D)
                logits = self.model.forward_head(features)  # (N, V)
        else:
            features = self.model.forward_features(x)
            logits = self.model.forward_head(features)
        probs = torch.sigmoid(logits.float()).cpu().numpy()
        return probs, features.float().cpu().numpy()


def export_onnx(model: EmojiNet, path: str | Path, *, opset: int = 18) -> Path:
    """Export ``model`` to ONNX with a dynamic batch dimension.

    Input ``images`` (N, 3, H, W); outputs ``probs`` (N, V) and ``features`` (N, D), the pooled
    backbone features of the same pass.
    """
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
    """ONNX Runtime on the CPU (or CUDA when its provider is installed)."""

    def __init__(self, onnx_path: str | Path, *, threads: int | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
        providers = [
            p
            for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
            if p in ort.get_available_providers()
        ]
        self.session = ort.InferenceSession(str(onnx_path), opts, providers=providers)
        self.device = "cuda" if providers[0].startswith("CUDA") else "cpu"
        self.name = "onnx"
        self.path = Path(onnx_path)

    @classmethod
    def from_model(cls, model: EmojiNet, *, cache_dir: str | Path | None = None) -> OnnxBackend:
        """Export once per distinct model (keyed by :func:`model_digest`) and reuse the file."""
        cache = Path(cache_dir) if cache_dir else _cache_dir()
        # "-pf": files with both outputs (probs, features); older single-output files are ignored.
        path = cache / f"{model.cfg.backbone}-{model_digest(model)[:16]}-pf.onnx"
        with _export_lock:
            if not path.is_file():
                log.info("exporting the model to ONNX at %s (once per model)", path)
                export_onnx(model, path)
        return cls(path)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(batch, dtype=np.float32)
        (probs,) = self.session.run(["probs"], {"images": x})
        return np.asarray(probs, dtype=np.float32)

    def predict_with_features(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        outputs = {o.name for o in self.session.get_outputs()}
        if "features" not in outputs:
            raise RuntimeError(
                f"{self.path} has no 'features' output: re-export it with this version "
                "(emojinet export --onnx PATH)"
            )
        x = np.ascontiguousarray(batch, dtype=np.float32)
        probs, features = self.session.run(["probs", "features"], {"images": x})
        return np.asarray(probs, dtype=np.float32), np.asarray(features, dtype=np.float32)


def make_backend(
    model: EmojiNet, backend: BackendName = "auto", device: str = "auto"
) -> InferenceBackend:
    """``auto``: torch on CUDA when a GPU is there, otherwise ONNX Runtime on the CPU."""
    if backend not in ("auto", "torch", "onnx"):
        raise ValueError(f"unknown backend {backend!r}; choose auto, torch or onnx")
    dev = select_device(device)
    if backend == "torch" or (backend == "auto" and dev.type == "cuda"):
        return TorchBackend(model, dev)
    return OnnxBackend.from_model(model)
