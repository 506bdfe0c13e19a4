"""Domain errors → HTTP answers. Every error is JSON ``{"detail": "..."}`` saying what to fix."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.responses import Response
from starlette.types import Scope

from emojinet.errors import (
    EmojiNetError,
    ImageTooLargeError,
    InvalidImageError,
    SamplingError,
    UnsupportedImageFormatError,
)
from service.refusals import (
    DeadlineExceeded,
    GateError,
    Overloaded,
    RefusalHold,
    ShuttingDown,
    TooManyInputs,
)
from service.state import ModelNotReady

__all__ = [
    "BodyReadTimeoutError",
    "BodyTooLargeError",
    "error_response",
    "hold_refusal",
    "install_error_handlers",
]

log = logging.getLogger(__name__)


class BodyTooLargeError(EmojiNetError):
    """The request body is larger than ``max_body_bytes``."""


class BodyReadTimeoutError(EmojiNetError):
    """The client stopped sending its body."""


def error_response(
    status: int, detail: str, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse(
        {"detail": detail, **extra}, status_code=status, headers=dict(headers or {})
    )


Handler = Callable[[Request, Exception], Awaitable[Response]]


def _simple(status: int, headers: Mapping[str, str] | None = None) -> Handler:
    async def handle(request: Request, exc: Exception) -> Response:
        return error_response(status, str(exc), headers)

    return handle


async def hold_refusal(scope: Scope) -> None:
    """Wait out the request's refusal delay (:class:`~service.refusals.RefusalHold`, which the
    request middleware puts in the scope with the request's arrival time), if it gets one. A
    waiting refusal holds no admission budget: ``ServiceState.accept`` gave it back as the
    refusal left it."""
    state = scope.get("state", {})
    hold: RefusalHold | None = state.get("refusal_hold")
    if hold is None or not (delay := hold.take()):
        return
    try:
        wait = state["arrived"] + delay - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
    finally:
        hold.give()


def _gate(status: int, *, close: bool = False, hold: bool = False) -> Handler:
    async def handle(request: Request, exc: Exception) -> Response:
        retry = exc.retry_after_s if isinstance(exc, GateError) else 1
        headers = {"Retry-After": str(retry)}
        if close:
            headers["Connection"] = "close"
        if hold:
            await hold_refusal(request.scope)
        return error_response(status, str(exc), headers)

    return handle


async def _validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    parts = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())]
        where = f"{loc[0]} parameter {'.'.join(loc[1:])!r}" if len(loc) > 1 else "request"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return error_response(
        422, "; ".join(parts) or "invalid request", errors=jsonable_encoder(errors)
    )


def install_error_handlers(app: FastAPI) -> None:
    """Map the domain errors; unexpected exceptions are answered 500 by the request middleware."""
    app.add_exception_handler(InvalidImageError, _simple(400))
    app.add_exception_handler(UnsupportedImageFormatError, _simple(415))
    app.add_exception_handler(ImageTooLargeError, _simple(413))
    app.add_exception_handler(SamplingError, _simple(422))  # e.g. every score of the image is 0
    app.add_exception_handler(TooManyInputs, _simple(413))
    app.add_exception_handler(BodyTooLargeError, _simple(413, {"Connection": "close"}))
    app.add_exception_handler(BodyReadTimeoutError, _simple(408, {"Connection": "close"}))
    app.add_exception_handler(Overloaded, _gate(429, hold=True))
    app.add_exception_handler(DeadlineExceeded, _gate(503, hold=True))
    app.add_exception_handler(ShuttingDown, _gate(503, close=True))
    app.add_exception_handler(GateError, _gate(503))
    app.add_exception_handler(ModelNotReady, _simple(503, {"Retry-After": "5"}))
    app.add_exception_handler(RequestValidationError, _validation)
