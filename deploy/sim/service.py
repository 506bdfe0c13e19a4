"""Service-time model of one instance: what a request costs, measured from this code or cited.

A request costs host CPU on the event loop (HTTP, multipart, admission, routing, the answer) and
in the decode pool (decode, resize, normalise), then a share of one forward pass. Two committed
measurements of this code on this repository's 2-core machine (451x300 photo) give them:
``benchmarks/results/serve.json`` (``make bench-serve``: CPU per answer of each thread under wrk
at 1, 8 and 32 clients, and the in-process ceiling) for the CPU server, and
``benchmarks/results/profile.json`` (``make profile-serve``: py-spy by stage at 32 clients) for
the host side of a GPU instance, whose stages are named there one by one.

GPU forward passes were not measured here (no GPU on this machine; issue #17's GPU part measures
them). :data:`GPU_PASS` holds **estimates**, stated as such, for EfficientNet-Lite0 (0.4 GMAC at
224 px, the model EmojiNet serves) on each single-GPU instance type the template allows. They are
not taken from a benchmark of this model: NVIDIA's published inference tables are for ResNet-50
(about 10x the MACs), and the estimates assume a fixed launch overhead plus a per-image cost well
below ResNet-50's. What the simulation concludes must not hinge on them: at these estimates and
any within 3x of them, the GPU is not the bottleneck of an instance; the single-threaded event
loop is (measured).

Prices: on-demand Linux, us-east-1, per hour; see :data:`PRICE_PER_HOUR`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from service.settings import Settings, batch_size, model_lanes, queue_size

__all__ = ["GPU_PASS", "PRICE_PER_HOUR", "Profile", "cpu_profile", "gpu_profile", "serving"]

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"

# Stages of profile.json that run on the event loop, and those in the decode pool.
LOOP_STAGES = (
    "event loop",
    "routing, middleware, admission, gate",
    "HTTP parsing (h11)",
    "multipart",
    "read the header",
    "top-k",
    "JSON answer",
    "metrics and logs",
    "other",
)
DECODE_STAGES = ("decode", "resize", "normalise")

# GPU forward pass of EfficientNet-Lite0, batch b: fixed_ms + per_image_ms * b. ESTIMATES (see
# the module docstring), to be replaced by issue #17's measurement on the instance.
GPU_PASS: dict[str, tuple[str, float, float]] = {
    "g4dn.xlarge": ("T4", 3.0, 0.50),
    "g5.xlarge": ("A10G", 2.0, 0.25),
    "g6.xlarge": ("L4", 2.0, 0.30),
}

# On-demand $/h, Linux, us-east-1. g5.xlarge: $1.006, the figure quoted in issue #17 from AWS's
# EC2 on-demand pricing page (https://aws.amazon.com/ec2/pricing/on-demand/); g4dn.xlarge and
# g6.xlarge: the same page's figures as remembered ($0.526, $0.8048), not re-checked here (no
# network on this machine). Check the page before quoting a cost.
PRICE_PER_HOUR: dict[str, float] = {"g5.xlarge": 1.006, "g4dn.xlarge": 0.526, "g6.xlarge": 0.8048}


@dataclass(frozen=True)
class Profile:
    """What one request costs on one instance, and the instance's serving settings.

    Times are seconds. ``pass_fixed_s + pass_per_image_s * b`` is one forward pass of ``b``
    images; on a CPU it holds one core (``lanes`` passes at once), or every core when it runs
    alone (``alone_efficiency``: the speed-up per core of one pass spread over all cores).
    """

    name: str
    loop_s: float  # event-loop CPU per request (single thread)
    decode_s: float  # decode-pool CPU per image
    stack_s: float  # stacking the batch, per image, in the device thread
    pass_fixed_s: float
    pass_per_image_s: float
    cores: int  # host cores every CPU stage shares
    lanes: int  # forward passes at once (EMOJINET_MODEL_LANES)
    pass_on_cpu: bool  # the forward pass holds a host core
    alone_efficiency: float = 1.0
    spread: float = 0.0  # sigma of a lognormal factor (mean 1) on every piece of work
    decode_workers: int = 2  # EMOJINET_PREPROCESS_WORKERS
    max_batch: int = 32  # EMOJINET_MAX_BATCH_SIZE (0 = 32 on a GPU, 8 on a CPU)
    batch_delay_s: float = 0.002  # EMOJINET_MAX_BATCH_DELAY_MS
    max_queue: int = 256  # EMOJINET_MAX_QUEUE (0 = 256 on a GPU, 24 per lane on a CPU)
    deadline_s: float = 1.0  # EMOJINET_QUEUE_DEADLINE_S
    refusal_delay_s: float = 0.0  # EMOJINET_REFUSAL_DELAY_S: a refusal's answer waits so long
    price_per_hour: float = 0.0

    def pass_s(self, batch: int, *, alone: bool = False) -> float:
        """One forward pass of ``batch`` inputs (stacking included)."""
        t = self.pass_fixed_s + (self.pass_per_image_s + self.stack_s) * batch
        if alone and self.pass_on_cpu and self.cores > 1:
            t /= self.cores * self.alone_efficiency
        return t

    def stage_rates(self) -> dict[str, float]:
        """Requests per second each stage can take at full batches."""
        b = self.max_batch
        rates = {
            "device": self.lanes * b / self.pass_s(b),
            "event loop": 1.0 / self.loop_s,
            "decode": self.decode_workers / self.decode_s,
        }
        if self.pass_on_cpu:  # every stage shares the cores
            rates["cores"] = self.cores / (self.loop_s + self.decode_s + self.pass_s(b) / b)
        return rates

    def capacity_per_s(self) -> float:
        """Requests per second at full batches: the slowest stage's rate."""
        return min(self.stage_rates().values())

    def bottleneck(self) -> str:
        """The slowest stage: where the queue of an overloaded instance forms."""
        rates = self.stage_rates()
        return min(rates, key=rates.__getitem__)

    def with_settings(self, **changes: float | int) -> Profile:
        """The same costs with other serving settings (e.g. ``max_queue``)."""
        return replace(self, **changes)  # type: ignore[arg-type]


def serving(device: str, cores: int) -> dict[str, Any]:
    """The gate's and admission's settings as ``emojinet serve`` resolves them (``Settings()``:
    the defaults, or the ``EMOJINET_*`` environment) for ``device`` with ``cores`` cores."""
    s = Settings()
    lanes = s.model_lanes or (cores if device == "cpu" else model_lanes(0, device))
    return {
        "lanes": lanes,
        "max_batch": batch_size(s.max_batch_size, device),
        "batch_delay_s": s.max_batch_delay_ms / 1000,
        "max_queue": queue_size(s.max_queue, device, lanes),
        "deadline_s": s.queue_deadline_s,
        "refusal_delay_s": s.refusal_delay_s,
        "decode_workers": s.preprocess_workers,
    }


def _stage_ms(profile: dict[str, object], names: tuple[str, ...]) -> float:
    stages = profile["stages"]
    assert isinstance(stages, dict)
    return sum(float(stages[n]["ms"]) for n in names if n in stages)


def _pass_fit(rows: list[dict[str, Any]]) -> tuple[float, float]:
    """Fixed and per-image device-thread CPU of a pass (s), from two loads' mean batches.

    The device thread's CPU per answer is ``fixed / batch + per_image``; two rows with different
    mean batches give both.
    """
    (b1, d1), (b2, d2) = [(r["mean_batch"], r["cpu_ms_per_answer"]["device"]) for r in rows]
    fixed = (d1 - d2) / (1 / b1 - 1 / b2)
    return fixed / 1000, (d2 - fixed / b2) / 1000


def _spread(one_client: dict[str, Any]) -> float:
    """Lognormal sigma of a request's work, from p99 / p50 with one client (nothing queues):
    p99 / p50 = exp(2.326 sigma)."""
    return math.log(float(one_client["p99_ms"]) / float(one_client["p50_ms"])) / 2.326


def cpu_profile(results: Path = RESULTS) -> Profile:
    """This repository's CPU server on its 2-core machine, from the committed measurements.

    ``serve.json`` (``make bench-serve``, wrk, 451x300 photo) gives the CPU per answer of each
    thread at 8 and 32 clients: the event loop and the decode pool at 32 clients, the pass fitted
    to the device thread at both (mean batch 2.4 and 7.9); its ceiling gives how much slower per
    core one pass on every core runs than one pass per core.
    """
    serve = json.loads((results / "serve.json").read_text())
    rows = serve["emojinet"]["451x300"]
    by_clients = {int(r["clients"]): r for r in rows}
    fixed, per_image = _pass_fit([by_clients[8], by_clients[32]])
    busy = by_clients[32]["cpu_ms_per_answer"]
    ceiling = serve["ceiling"]["451x300"]
    cores = int(serve["machine"]["cpus"])
    return Profile(
        name="cpu (this machine, measured)",
        loop_s=float(busy["event loop"]) / 1000,
        decode_s=float(busy["preprocess"]) / 1000,
        stack_s=0.0,  # in the device thread's figure
        pass_fixed_s=fixed,
        pass_per_image_s=per_image,
        cores=cores,
        pass_on_cpu=True,
        alone_efficiency=float(ceiling["one_pass_all_cores"]) / float(ceiling["pass_per_core"]),
        spread=_spread(by_clients[1]),
        **serving("cpu", cores),
    )


def gpu_profile(instance_type: str = "g5.xlarge", results: Path = RESULTS) -> Profile:
    """One GPU instance: host costs measured here, the forward pass estimated (GPU_PASS).

    The host's vCPUs (4 on the .xlarge types) run the event loop, two decode workers and the
    device thread without sharing a core; their per-request costs are assumed equal to this
    machine's (an estimate: the instance's cores may be faster or slower).
    """
    if instance_type not in GPU_PASS:
        raise ValueError(f"unknown instance type {instance_type!r}; choose from {list(GPU_PASS)}")
    gpu, fixed_ms, per_image_ms = GPU_PASS[instance_type]
    prof = json.loads((results / "profile.json").read_text())
    one = json.loads((results / "serve.json").read_text())["emojinet"]["451x300"][0]
    return Profile(
        name=f"{instance_type} ({gpu}; host measured, GPU pass estimated)",
        loop_s=_stage_ms(prof, LOOP_STAGES) / 1000,
        decode_s=_stage_ms(prof, DECODE_STAGES) / 1000,
        stack_s=_stage_ms(prof, ("stack the batch",)) / 1000,
        pass_fixed_s=fixed_ms / 1000,
        pass_per_image_s=per_image_ms / 1000,
        cores=4,
        pass_on_cpu=False,
        spread=_spread(one),  # the host's spread, measured on the CPU server (an estimate here)
        **serving("cuda", 4),
        price_per_hour=PRICE_PER_HOUR[instance_type],
    )
