"""uvicorn's h11 protocol with a header deadline and JSON answers for malformed HTTP.

uvicorn times out idle keep-alive connections, but not a connection that never sends a complete
request: 32 silent sockets hold 32 of ``max_connections`` forever (``/healthz`` then answers
503). Here a connection must deliver its request headers within ``header_timeout_s`` of opening
(or of its previous answer, once it starts sending the next request); otherwise it is closed,
with a 408 if it had sent part of a request. Requests that are not HTTP get a JSON 400 like
every other error (uvicorn's own answer is plain text).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["protocol_class"]


def _raw_response(status: int, reason: str, detail: str) -> bytes:
    body = json.dumps({"detail": detail}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


class _Protocol(H11Protocol):
    header_timeout_s = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._got_bytes = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        waiting = self.conn.their_state is h11.IDLE  # between requests: these are headers
        if waiting:
            self._got_bytes = True
            self._arm()  # after keep-alive idling uvicorn's own timer stops; ours starts
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the headers are complete
            self._disarm()
            self._got_bytes = False

    def _arm(self) -> None:
        if self._header_timer is None and not self.transport.is_closing():
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self._got_bytes:
            detail = f"the request headers did not arrive within {self.header_timeout_s:g} s"
            self.transport.write(_raw_response(408, "Request Timeout", detail))
        self.transport.close()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Idle now: uvicorn's keep-alive timer runs; ours starts again with the next bytes.
        self._disarm()

    def send_400_response(self, msg: str) -> None:
        detail = f"malformed HTTP request: {msg.rstrip('.')}; send a valid HTTP/1.1 request"
        self.transport.write(_raw_response(400, "Bad Request", detail))
        self.transport.close()


def protocol_class(header_timeout_s: float) -> type[H11Protocol]:
    """The protocol class for ``uvicorn.Config(http=...)``."""
    return type("EmojiNetH11Protocol", (_Protocol,), {"header_timeout_s": header_timeout_s})
