"""Caffe-style timing: milliseconds per forward and forward+backward of a batch, per backbone."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import torch

from emojinet.model import EmojiNetConfig, build_model
from emojinet.vocab import Vocabulary

__all__ = ["BenchResult", "bench_backbone", "format_table"]


@dataclass(frozen=True)
class BenchResult:
    backbone: str
    batch_size: int
    input_size: int
    forward_ms: float
    forward_backward_ms: float
    threads: int
    device: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _median_ms(fn: Any, iters: int, warmup: int, device: torch.device) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return times[len(times) // 2]


def bench_backbone(
    name: str,
    *,
    batch_size: int = 16,
    input_size: int = 224,
    iters: int = 5,
    warmup: int = 1,
    vocab_size: int = 100,
    device: str = "cpu",
    weights: str = "none",
) -> BenchResult:
    """Median time of ``iters`` forwards (inference mode) and forward+backward (train mode)."""
    dev = torch.device(device)
    vocab = Vocabulary(Vocabulary.default().emojis[:vocab_size])
    model = build_model(EmojiNetConfig(backbone=name, head="linear", weights=weights), vocab).to(
        dev
    )
    x = torch.randn(batch_size, 3, input_size, input_size, device=dev)
    y = torch.zeros(batch_size, vocab_size, device=dev)
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def forward() -> None:
        with torch.inference_mode():
            model(x)

    def forward_backward() -> None:
        model.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()

    model.eval()
    fwd = _median_ms(forward, iters, warmup, dev)
    model.train()
    fb = _median_ms(forward_backward, iters, warmup, dev)
    return BenchResult(name, batch_size, input_size, fwd, fb, torch.get_num_threads(), str(dev))


def format_table(results: list[BenchResult]) -> str:
    head = (
        f"{'backbone':<20} {'batch':>5} {'size':>5} {'fwd ms':>9} {'fwd+bwd ms':>11} "
        f"{'ms/img fwd':>10}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(
            f"{r.backbone:<20} {r.batch_size:>5} {r.input_size:>5} {r.forward_ms:>9.1f} "
            f"{r.forward_backward_ms:>11.1f} {r.forward_ms / r.batch_size:>10.2f}"
        )
    return "\n".join(lines)
