"""One pure-ASGI middleware for every request: request id, body limits, admission, metrics,
security headers, last-resort 500.

Body limits are enforced *before* a body is read whole: a ``Content-Length`` over the limit is
answered 413 without reading a byte of it, and a chunked body is counted as it streams in and
refused the moment it crosses the limit. Inference requests are admitted here too
(:mod:`service.admission`), so a refusal (429) costs a header block and never reaches routing,
dependencies or the body: a flood of refused clients leaves the event loop to the work. The
refusal waits ``Settings.refusal_delay_s`` after the request arrived
(:class:`~service.refusals.RefusalHold`).

A client that stops sending its body for ``body_read_timeout_s`` gets 408; one still sending
when the shutdown drain ends gets 503. A client that disconnects before its body is in, or
before its answer (its photo's decoding and forward pass are then dropped if not yet started,
``service.inputs.unless_gone``), is counted as status 499 and logged in one INFO line: it is not
a server error. (Slow or missing
*headers* are cut by :mod:`service.protocol`.)
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.admission import ADMITTED_PATHS, Admission
from service.drain import Drain
from service.errors import BodyReadTimeoutError, BodyTooLargeError, hold_refusal
from service.logs import REQUEST_ID
from service.metrics import ServiceMetrics
from service.refusals import Overloaded, RefusalHold, ShuttingDown

__all__ = ["CLIENT_CLOSED", "PAGE_CSP", "RequestMiddleware"]

log = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# A request without an id of its own gets this process's random prefix and a count, 32 hex
# digits like a UUID's (uuid4 reads the system's random source every time: 2% of the loop's CPU).
_ID_PREFIX = secrets.token_hex(8)
_ID_COUNT = itertools.count()
# nginx's code for "the client closed the connection before the answer": metrics only.
CLIENT_CLOSED = 499
# Every answer that sets no policy of its own gets the web page's (the page and its static files
# included; JSON answers are not rendered, so it costs nothing there).
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


# Answers an admitted request without the app's routing if it takes it (service.direct).
Direct = Callable[[Scope, Receive, Send], Awaitable[bool]]


class _ClientGone(Exception):
    """The client closed the connection before its body was in."""


class RequestMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: ServiceMetrics,
        max_body_bytes: int,
        body_read_timeout_s: float,
        drain: Drain | None = None,
        admission: Admission | None = None,
        refusal_hold: RefusalHold | None = None,
        direct: Direct | None = None,
    ) -> None:
        self.app = app
        self.direct = direct
        self.refusal_hold = refusal_hold
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.body_read_timeout_s = body_read_timeout_s
        self.drain = drain or Drain()
        self.admission = admission

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        rid = headers.get("x-request-id", "")
        if not _REQUEST_ID.match(rid):
            rid = f"{_ID_PREFIX}{next(_ID_COUNT):016x}"
        scope.setdefault("state", {})["request_id"] = rid
        # How long an overload refusal waits, from the arrival (service.errors.hold_refusal).
        scope["state"]["arrived"] = started
        scope["state"]["refusal_hold"] = self.refusal_hold
        # On every log line from here on, uvicorn's access line included. Not reset: uvicorn runs
        # each request in a task of its own, and its lines after the app returns belong here too.
        REQUEST_ID.set(rid)
        status = 500
        response_started = False
        endpoint: str | None = None  # known before routing for admitted paths

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = int(message["status"])
                message["headers"] = _with_standard_headers(message.get("headers", []), rid)
            await send(message)

        try:
            length = headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
                await self._reject(send_wrapper, length)
                return
            if scope["method"] == "POST" and scope["path"] in ADMITTED_PATHS:
                endpoint = scope["path"]
                nbytes = self.max_body_bytes if length is None else int(length)
                await self._admitted(scope, receive, send_wrapper, nbytes)
            else:
                await self.app(scope, self._limited(receive), send_wrapper)
        except (_ClientGone, ClientDisconnect):
            status = CLIENT_CLOSED
            log.info(
                "client disconnected before its answer: %s %s",
                _printable(scope.get("method")),
                scope.get("path"),
            )
        except Exception:
            log.exception(
                "unexpected error answering %s %s",
                _printable(scope.get("method")),
                scope.get("path"),
            )
            if response_started:
                raise  # too late for a clean answer; the server closes the connection
            await _send_json(
                send_wrapper,
                500,
                {"detail": f"internal server error; quote request id {rid} when reporting it"},
            )
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or endpoint or "unmatched"
            self.metrics.observe_request(
                endpoint, str(scope.get("method", "")), status, time.perf_counter() - started
            )

    async def _admitted(self, scope: Scope, receive: Receive, send: Send, nbytes: int) -> None:
        """Run an inference request if the admission budget has room, else answer 429 now."""
        if self.admission is None:
            await self.app(scope, self._limited(receive), send)
            return
        try:
            ticket = self.admission.admit(1, nbytes)
        except Overloaded as exc:
            retry = {"retry-after": str(exc.retry_after_s)}
            await hold_refusal(scope)
            await _send_json(send, 429, {"detail": str(exc)}, headers=retry)
            return
        scope["state"]["admission_ticket"] = ticket
        try:
            limited = self._limited(receive)
            if self.direct is None or not await self.direct(scope, limited, send):
                await self.app(scope, limited, send)
        finally:
            ticket.release()

    async def _reject(self, send: Send, length: str) -> None:
        if not length.isdigit():
            await _send_json(send, 400, {"detail": f"invalid Content-Length {length[:40]!r}"})
            return
        await _send_json(
            send,
            413,
            {
                "detail": f"the request body is {int(length):,} bytes; the limit is "
                f"{self.max_body_bytes:,} bytes: send a smaller image"
            },
            close=True,
        )

    def _limited(self, receive: Receive) -> Receive:
        received = 0
        body_done = False
        limit, timeout, drain = self.max_body_bytes, self.body_read_timeout_s, self.drain

        async def limited() -> Message:
            nonlocal received, body_done
            if body_done:  # after the body, receive() only waits for a disconnect
                return await receive()
            try:
                async with drain.cuttable(timeout):
                    message = await receive()
            except TimeoutError:
                if drain.cut_done:
                    raise ShuttingDown(
                        "the server shut down before the request body arrived; send it again "
                        "(another instance will take it)"
                    ) from None
                raise BodyReadTimeoutError(
                    f"no request body data for {timeout:g} s; send the whole body promptly"
                ) from None
            if message["type"] == "http.disconnect":
                raise _ClientGone
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError(
                        f"the request body is over the limit of {limit:,} bytes: "
                        "send a smaller image"
                    )
                body_done = not message.get("more_body", False)
            return message

        return limited


def _with_standard_headers(headers: Iterable[tuple[bytes, bytes]], rid: str) -> list[Any]:
    out = [*headers, (b"x-request-id", rid.encode()), (b"x-content-type-options", b"nosniff")]
    if not any(k.lower() == b"content-security-policy" for k, _ in out):
        out.append((b"content-security-policy", PAGE_CSP.encode()))
    return out


def _printable(method: object) -> str:
    """A method for a log line: at most 20 characters of it."""
    text = str(method or "")
    return text if len(text) <= 20 else f"{text[:20]}… ({len(text)} chars)"


async def _send_json(
    send: Send,
    status: int,
    body: dict[str, str],
    *,
    close: bool = False,
    headers: dict[str, str] | None = None,
) -> None:
    data = json.dumps(body).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    head += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    if close:
        head.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": data})
