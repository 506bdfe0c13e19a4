"""The simulator's outputs: a printed table, JSON, and PNG plots over the day."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deploy.sim.fleet import FleetResult

__all__ = ["plot_day", "plot_shed", "table", "write_json"]

COLUMNS = (
    ("p50_ms", "p50 ms", "{:.0f}"),
    ("p99_ms", "p99 ms", "{:.0f}"),
    ("shed_share", "shed", "{:.2%}"),
    ("shed_429 admission", "429", "{:.2%}"),
    ("shed_503 deadline", "503 dl", "{:.2%}"),
    ("shed_503 no instance", "503 none", "{:.2%}"),
    ("bad_minutes", "bad min", "{:.0f}"),
    ("max_instances", "max inst", "{:.0f}"),
    ("instance_hours", "inst-h", "{:.0f}"),
    ("cost_usd", "cost $", "{:.0f}"),
)


def table(results: Sequence[FleetResult]) -> str:
    """One row per run: the day's latency, shed share by cause, instances and cost."""
    width = max(len(r.name) for r in results)
    head = f"{'policy':<{width}} " + " ".join(f"{h:>9}" for _, h, _ in COLUMNS)
    lines = [head, "-" * len(head)]
    for r in results:
        tot = r.totals()
        cells = " ".join(f"{fmt.format(tot[k]):>9}" for k, _, fmt in COLUMNS)
        lines.append(f"{r.name:<{width}} {cells}")
    return "\n".join(lines)


def _clean(x: float) -> float | None:
    return None if math.isnan(x) else round(float(x), 4)


def write_json(path: Path, results: Sequence[FleetResult], settings: dict[str, Any]) -> None:
    """Totals and per-minute series of every run, with the settings that produced them."""
    runs = []
    for r in results:
        runs.append(
            {
                "name": r.name,
                "totals": {k: _clean(v) for k, v in r.totals().items()},
                "per_minute": {
                    "offered_per_s": [_clean(v) for v in r.offered],
                    "in_service": r.in_service.tolist(),
                    "billed": r.billed.tolist(),
                    "p50_ms": [_clean(v) for v in r.p50_ms],
                    "p99_ms": [_clean(v) for v in r.p99_ms],
                    "shed": {k: [_clean(x) for x in v] for k, v in r.shed.items()},
                    "metrics": {k: [_clean(x) for x in v] for k, v in r.metrics.items()},
                },
                "actions": [
                    {"t_s": t, "action": a, "desired": d, "reason": why}
                    for t, a, d, why in r.actions
                ],
            }
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"settings": settings, "runs": runs}))


def _hours(r: FleetResult) -> np.ndarray:
    return np.asarray(r.minutes / 60.0)


def plot_day(path: Path, results: Sequence[FleetResult], title: str) -> None:
    """Offered load, instances in service, p99 latency and shed share per minute, one line a run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(4, 1, figsize=(11, 11), sharex=True)
    axes[0].plot(_hours(results[0]), results[0].offered, color="black")
    axes[0].set_ylabel("offered req/s")
    for r in results:
        h = _hours(r)
        axes[1].plot(h, r.in_service, label=r.name, lw=1)
        axes[2].plot(h, r.p99_ms, lw=1)
        shed = sum(r.shed.values()) / np.maximum(r.offered * 60, 1.0)
        axes[3].plot(h, 100 * shed, lw=1)
    axes[1].set_ylabel("instances in service")
    axes[2].set_ylabel("p99 latency, ms")
    axes[2].set_yscale("log")
    axes[3].set_ylabel("shed, % of requests")
    axes[3].set_xlabel("hour of the day (UTC)")
    axes[1].legend(fontsize=8, loc="upper left")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_shed(path: Path, result: FleetResult, window_h: tuple[float, float]) -> None:
    """One run around the burst: offered vs answered, shed by cause, instances."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = _hours(result)
    keep = (h >= window_h[0]) & (h <= window_h[1])
    fig, (top, mid, low) = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
    top.plot(h[keep], result.offered[keep], label="offered", color="black")
    top.plot(h[keep], result.answered[keep] / 60, label="answered")
    top.set_ylabel("req/s")
    top.legend(fontsize=8)
    for cause, series in result.shed.items():
        mid.plot(h[keep], series[keep] / 60, label=cause)
    mid.set_ylabel("shed req/s")
    mid.legend(fontsize=8)
    low.plot(h[keep], result.in_service[keep], label="in service")
    low.plot(h[keep], result.billed[keep], label="running (billed)")
    low.set_ylabel("instances")
    low.set_xlabel("hour of the day (UTC)")
    low.legend(fontsize=8)
    fig.suptitle(f"Around the burst: {result.name}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
