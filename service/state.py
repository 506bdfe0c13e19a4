"""What one running service holds: settings, the predictor, the device gate, the metric sinks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from emojinet.backends import Order, Outputs
from emojinet.errors import EmojiNetError
from emojinet.gan_head import GanHead, GanHeadError
from emojinet.predictor import ModelInfo, Predictor, Suggestion
from emojinet.vocab import Vocabulary
from service.admission import Admission, Ticket
from service.batching import Input
from service.cloudwatch import CloudWatchPublisher
from service.decoding import DecodeStage
from service.drain import Drain, ShuttingDown
from service.gate import DeviceGate, GateObserver
from service.metrics import ServiceMetrics
from service.settings import (
    Settings,
    batch_size,
    cpu_cores,
    cpu_threads_per_lane,
    model_lanes,
    queue_size,
    queue_size_before_load,
)

__all__ = ["Accepted", "ModelNotReady", "PredictorLike", "ServiceState", "ShuttingDown"]

log = logging.getLogger(__name__)

# After the drain deadline: how long the requests cut then get to send their 503.
_CUT_ANSWER_S = 0.5


class ModelNotReady(EmojiNetError):
    """The model is still loading (or failed to load)."""


class PredictorLike(Protocol):
    """What the service needs from :class:`emojinet.predictor.Predictor` (fakes implement it)."""

    info: ModelInfo
    vocab: Vocabulary
    denied: npt.NDArray[np.bool_]  # (V,) the deny-list (the GAN head never draws those)

    @property
    def supports_features(self) -> bool:
        """Whether :meth:`run_batch` can return backbone features (the GAN head needs them)."""
        ...

    def preprocess(self, data: bytes) -> npt.NDArray[np.float32]: ...

    def run_batch(self, batch: npt.NDArray[np.float32], *, features: bool = False) -> Outputs: ...

    def top_k(
        self,
        probs: npt.NDArray[np.float32],
        k: int = 5,
        threshold: float | None = None,
        order: Order | None = None,
    ) -> list[Suggestion]: ...


@dataclass(frozen=True)
class Accepted:
    """What an admitted request works with."""

    predictor: PredictorLike
    gate: DeviceGate
    decoder: DecodeStage
    ticket: Ticket
    # bytes → what the gate takes: the predictor's ``prepare`` (which may leave JPEGs for the
    # GPU to decode in the batch) or its ``preprocess``.
    prepare: Callable[[bytes], Input]


@dataclass
class ServiceState:
    """Built by the lifespan; routes reach it through :mod:`service.deps`."""

    settings: Settings
    metrics: ServiceMetrics = field(default_factory=ServiceMetrics)
    predictor: PredictorLike | None = None
    gate: DeviceGate | None = None
    cloudwatch: CloudWatchPublisher | None = None
    load_error: str | None = None
    # The EmojiGAN head (settings.gan_model), or why there is none (head=gan answers 400 with it).
    gan: GanHead | None = None
    gan_error: str | None = None
    draining: bool = False
    inflight: int = 0  # /suggest requests accepted and not yet answered
    on_load_failure: Callable[[], None] | None = None
    preprocess_pool: ThreadPoolExecutor | None = None
    decoder: DecodeStage | None = None
    admission: Admission | None = None  # given by the app: the request middleware admits
    drain: Drain = field(default_factory=Drain)  # shared with the request middleware
    _loader: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self, predictor: PredictorLike | None = None) -> None:
        """Start the metric sinks and load the model in the background (``/readyz`` says when)."""
        s = self.settings
        self.preprocess_pool = ThreadPoolExecutor(
            s.preprocess_workers, thread_name_prefix="preprocess"
        )
        if s.cloudwatch_enabled:
            self.cloudwatch = CloudWatchPublisher.from_settings(s, self.metrics)
            self.metrics.request_observers.append(self.cloudwatch)
            await self.cloudwatch.start()
            log.info("publishing queue wait to CloudWatch namespace %s", s.cloudwatch_namespace)
        self._start_pipeline()
        if predictor is not None:
            await self._load_gan(predictor)
            self._ready(predictor)
        else:
            self._loader = asyncio.get_running_loop().create_task(self._load(), name="load-model")

    async def _load(self) -> None:
        s = self.settings
        t0 = time.perf_counter()
        try:
            predictor = await asyncio.to_thread(
                Predictor.load,
                s.model or None,
                backend=s.backend,
                device=s.device,
                max_pixels=s.max_pixels,
                deny=s.deny_list,
                threads=cpu_threads_per_lane(s.model_lanes),
                alone_threads=cpu_cores(),
                gpu_decode=s.gpu_decode,
            )
            x = np.zeros((1, *predictor.input_shape), np.float32)
            await asyncio.to_thread(predictor.run_batch, x)  # warm-up before taking traffic
            await asyncio.to_thread(predictor.run_batch_alone, x)  # (its own session on a CPU)
            await self._load_gan(predictor)
        except Exception as exc:
            self.load_error = f"{type(exc).__name__}: {exc}"
            log.exception("could not load the model %r", s.model or "(built-in default)")
            if self.on_load_failure is not None:
                self.on_load_failure()
            return
        info = predictor.info
        log.info(
            "model %s (%s, %d emojis, %s on %s) ready in %.1f s",
            info.name,
            info.backbone,
            info.vocab_size,
            info.backend,
            info.device,
            time.perf_counter() - t0,
        )
        self._ready(predictor)

    async def _load_gan(self, predictor: PredictorLike) -> None:
        """Load the GAN head if configured; a GAN that cannot serve this model is refused.

        A refused GAN does not stop the service: ``/readyz`` stays fine and ``head=gan``
        answers 400 with :attr:`gan_error`.
        """
        path = self.settings.gan_model
        if not path:
            self.gan_error = (
                "the GAN head is not loaded on this server: use head=classifier "
                "(or start it with EMOJINET_GAN_MODEL set to a GAN release)"
            )
            return
        if not predictor.supports_features:
            self.gan_error = (
                f"the GAN head is not available: the {predictor.info.backend} backend of this "
                "model does not return its backbone features"
            )
            return
        try:
            self.gan = await asyncio.to_thread(
                GanHead.load,
                path,
                model_sha256=predictor.info.sha256,
                vocab=predictor.vocab,
                denied=predictor.denied,
            )
        except ImportError as exc:  # the GAN head runs on torch; the classifier does not
            self.gan_error = f"the GAN head is not available: it needs torch ({exc})"
            log.error("cannot load the GAN release %s without torch: %s", path, exc)
            return
        except GanHeadError as exc:
            self.gan_error = f"the GAN head is not available: {exc}"
            log.error("refusing the GAN release %s: %s", path, exc)
            return
        log.info("GAN head %s loaded (trained on this model's features)", path)

    def _observers(self) -> list[GateObserver]:
        return [self.metrics] if self.cloudwatch is None else [self.metrics, self.cloudwatch]

    def _start_pipeline(self) -> None:
        """The admission budget and the decode stage in front of the gate."""
        s = self.settings
        assert self.preprocess_pool is not None
        if self.admission is None:
            queue = queue_size_before_load(s)
            self.admission = Admission(max_inputs=queue, max_bytes=s.max_pending_bytes)
        self.admission.retry_after_s = lambda: self.gate.retry_after_s() if self.gate else 1
        self.admission.observers = self._observers()
        self.decoder = DecodeStage(
            self.preprocess_pool,
            workers=s.preprocess_workers,
            max_pixels=s.max_pixels,
            expected_device_wait_s=lambda: self.gate.expected_wait_s() if self.gate else 0.0,
            observers=self._observers(),
            drain=self.drain,
        )
        adm, dec = self.admission, self.decoder
        self.metrics.admitted_inputs.set_function(lambda: adm.inputs)
        self.metrics.admitted_bytes.set_function(lambda: adm.bytes)
        self.metrics.decode_waiting.set_function(lambda: dec.waiting)

    def _ready(self, predictor: PredictorLike) -> None:
        s = self.settings
        observers = self._observers()
        lanes, decoder = model_lanes(s.model_lanes, predictor.info.device), self.decoder
        admission = self.admission
        assert decoder is not None and admission is not None  # (_start_pipeline ran first)
        queue = queue_size(s.max_queue, predictor.info.device, lanes)
        admission.max_inputs = queue
        self.gate = DeviceGate(
            predictor.run_batch,
            max_batch_size=batch_size(s.max_batch_size, predictor.info.device),
            max_batch_delay_s=s.max_batch_delay_ms / 1000.0,
            max_queue=queue,
            queue_deadline_s=s.queue_deadline_s,
            observers=observers,
            lanes=lanes,
            predict_alone=getattr(predictor, "run_batch_alone", None) if lanes > 1 else None,
            incoming=lambda: decoder.running + decoder.waiting,
            held=lambda: admission.inputs,
            stack=getattr(predictor, "stack", None),
        )
        self.gate.start()
        log.info(
            "serving with %d model lane(s), batches of up to %d, up to %d images admitted",
            lanes,
            self.gate.max_batch_size,
            queue,
        )
        if self.cloudwatch is not None:
            gate = self.gate
            self.cloudwatch.backlog_source = lambda: gate.depth + gate.in_flight
        self.predictor = predictor
        self.metrics.ready.set(0 if self.draining else 1)

    @property
    def ready(self) -> bool:
        return self.predictor is not None and self.gate is not None and not self.draining

    def begin_drain(self) -> None:
        """Refuse new work from now on; requests already accepted still finish."""
        if not self.draining:
            log.info("draining: refusing new requests, finishing %d accepted ones", self.inflight)
        self.draining = True
        self.drain.start(self.settings.drain_timeout_s)
        self.metrics.ready.set(0)

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait until every accepted request is answered; False on timeout."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while self.inflight:
            if loop.time() >= end:
                return False
            await asyncio.sleep(0.01)
        return True

    async def drain_then_cut(self) -> None:
        """Finish accepted requests until the drain deadline, then answer the rest 503.

        What is cut: bodies still arriving, images still waiting to be decoded, inputs still
        waiting for the device. A decode or forward pass already running is let finish.
        """
        self.begin_drain()
        if await self.wait_idle(self.drain.left_s()):
            return
        log.warning(
            "drain timeout: answering the %d requests still unfinished with 503", self.inflight
        )
        self.drain.cut()
        if self.gate is not None:
            self.gate.shed(lambda: ShuttingDown("the server shut down before this ran"))
        if not await self.wait_idle(_CUT_ANSWER_S):
            log.warning("%d requests still unanswered after the cut", self.inflight)

    async def shutdown(self) -> None:
        """Drain (if SIGTERM has not already), flush the metrics, stop the gate and threads."""
        if self._loader is not None and not self._loader.done():
            self._loader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loader
        await self.drain_then_cut()
        if self.gate is not None:
            await self.gate.stop()
        if self.cloudwatch is not None:  # within the second the drain leaves for exiting
            self.cloudwatch.flush_timeout_s = min(self.cloudwatch.flush_timeout_s, 0.4)
            await self.cloudwatch.stop(flush=True)
        if self.preprocess_pool is not None:
            self.preprocess_pool.shutdown(wait=False, cancel_futures=True)
        log.info("shut down cleanly")

    # -- per request ----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def accept(self, ticket: Ticket | None, body_bytes: int) -> AsyncIterator[Accepted]:
        """Take an inference request in, before its body is read.

        ``ticket`` is its share of the admission budget when the request middleware has already
        admitted it (the cheap path for refusals); otherwise it is admitted here.

        Raises:
            ShuttingDown, ModelNotReady: 503.
            Overloaded: the admission budget is full (429).
        """
        if self.draining:
            raise ShuttingDown("the server is shutting down; retry on another instance", 1)
        if self.predictor is None or self.gate is None:
            raise ModelNotReady(self.not_ready_reason())
        assert self.admission is not None and self.decoder is not None
        ticket = ticket or self.admission.admit(1, body_bytes)
        self.inflight += 1
        self.metrics.inflight.inc()
        try:
            prepare = getattr(self.predictor, "prepare", self.predictor.preprocess)
            yield Accepted(self.predictor, self.gate, self.decoder, ticket, prepare)
        finally:
            ticket.release()
            self.inflight -= 1
            self.metrics.inflight.dec()

    def not_ready_reason(self) -> str:
        if self.draining:
            return "the server is shutting down"
        if self.load_error:
            return f"the model failed to load: {self.load_error}"
        return "the model is still loading; retry in a few seconds"

    def model_info(self) -> dict[str, Any]:
        if self.predictor is None:
            raise ModelNotReady(self.not_ready_reason())
        info = self.predictor.info.to_dict()
        info["gan"] = (
            {"loaded": True, "sha256": str(self.gan.meta.get("sha256", ""))}
            if self.gan is not None
            else {"loaded": False, "reason": self.gan_error or "the model is still loading"}
        )
        return info
