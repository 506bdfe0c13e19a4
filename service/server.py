"""The server behind ``emojinet serve``: one uvicorn process, one worker, one device.

SIGTERM drains, and the process exits within ``EMOJINET_DRAIN_TIMEOUT_S`` (+ about 1 s):
``/readyz`` turns 503 and new ``/suggest`` requests get 503 at once; the listener stays open for
``EMOJINET_DRAIN_GRACE_S`` so a load balancer sees the instance leave; accepted requests are
answered until the drain timeout, and then whatever still waits (a body still arriving, an image
not yet decoded or run) is answered 503; uvicorn closes the connections, the lifespan flushes
the CloudWatch buffer (for at most 0.4 s), and the process exits with status 0 (1 if the model
had failed to load). A second signal skips the wait, and the process dies of it.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib.util
import logging
import signal
import socket
from types import FrameType

import uvicorn

from service.logs import configure_logging, log_settings
from service.protocol import protocol_class
from service.settings import Settings

__all__ = ["serve"]

log = logging.getLogger("service.server")


def serve(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT; 1 if the model failed to load, else 0."""
    from service.app import create_app

    configure_logging(settings.log_format, settings.log_level)
    log_settings(settings.for_log(), settings.log_format)
    if settings.cloudwatch_enabled and importlib.util.find_spec("boto3") is None:
        log.error("EMOJINET_CLOUDWATCH_ENABLED needs boto3: pip install 'emojinet[aws]'")
        return 2

    server: _DrainingServer | None = None

    def on_load_failure() -> None:
        if server is not None:
            server.should_exit = True

    app = create_app(settings, on_load_failure=on_load_failure)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        workers=1,  # the device lock is per process: one worker per device
        log_config=None,  # uvicorn's loggers propagate to ours (service.logs)
        log_level=settings.log_level.lower(),
        timeout_keep_alive=int(settings.timeout_keep_alive_s),
        limit_concurrency=settings.max_connections,
        # The drain has answered everything by now (see the module docstring); what uvicorn
        # waits for here is connections closing.
        timeout_graceful_shutdown=1,
        http=protocol_class(settings.header_timeout_s, app.state.door, app.state.refusal_hold),
        ws="none",
        # Not uvloop, even where it is installed: measured no faster here (the loop's share of
        # an answer's CPU is ~2 ms either way, benchmarks/bench_serve.py), and one loop to test.
        loop="asyncio",
        lifespan="on",
        server_header=False,
    )
    server = _DrainingServer(config, settings)
    server.run()
    state = getattr(app.state, "service", None)
    if state is not None and state.load_error:
        log.error("exiting: the model failed to load: %s", state.load_error)
        return 1
    return 0


class _DrainingServer(uvicorn.Server):
    """uvicorn's Server with a drain phase before its own shutdown (see the module docstring)."""

    def __init__(self, config: uvicorn.Config, settings: Settings) -> None:
        super().__init__(config)
        self.settings = settings
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain: asyncio.Task[None] | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # A signal handler: runs between bytecodes, so only hand the work to the loop.
        if self._loop is None or self._drain is not None or self.should_exit:
            super().handle_exit(sig, frame)  # a second signal (or no loop yet): stop now
            return
        # A fresh context: the signal may land inside a request's, whose id the drain's lines
        # must not carry.
        self._loop.call_soon_threadsafe(self._start_drain, sig, context=contextvars.Context())

    def _start_drain(self, sig: int) -> None:
        if self._drain is None:
            self._drain = asyncio.get_running_loop().create_task(self._drain_then_exit(sig))

    async def _drain_then_exit(self, sig: int) -> None:
        state = getattr(getattr(self.config.app, "state", None), "service", None)
        try:
            if state is not None:
                log.info("%s: draining before shutdown", signal.Signals(sig).name)
                state.begin_drain()  # the drain timeout counts from here, grace included
                await asyncio.sleep(self.settings.drain_grace_s)
                await state.drain_then_cut()
        finally:
            # Not super().handle_exit(): uvicorn would re-raise the signal once it has shut down,
            # and a process that drained cleanly would die of it (143, "Terminated") instead of
            # returning serve()'s status. A second signal still goes through uvicorn (killed).
            self.should_exit = True
