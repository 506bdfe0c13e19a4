"""uvicorn's h11 protocol with a header deadline, JSON answers for malformed HTTP, a door, and
one ``send`` an answer.

uvicorn times out idle keep-alive connections, but not a connection that never sends a complete
request: 32 silent sockets hold 32 of ``max_connections`` forever (``/healthz`` then answers
503). Here a connection must deliver its request headers within ``header_timeout_s`` of opening
(or of its previous answer, once it starts sending the next request); otherwise it is closed,
with a 408 if it had sent part of a request. Requests that are not HTTP get a JSON 400 like
every other error (uvicorn's own answer is plain text).

The door (:func:`service.admission.door`) sees each request's header block before h11 parses
it; while the image budget is full it refuses an inference request 429 and its body is skipped
by count, unparsed, keeping the connection. The refusal waits ``Settings.refusal_delay_s`` from
the headers (:class:`~service.refusals.RefusalHold`; a later request on the connection waits
for it): a client that retries at once, heedless of Retry-After, then costs a header block a
second instead of a flood of them. Only plain framing goes through the door (HTTP/1.1, one
``Content-Length``, no ``Transfer-Encoding``, ``Expect`` or ``Connection: close``); anything else
is parsed and refused as usual by the request middleware.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from service.admission import Door
from service.refusals import RefusalHold

__all__ = ["protocol_class"]


def _raw_response(status: int, reason: str, detail: str) -> bytes:
    body = json.dumps({"detail": detail}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


_MAX_HEAD = 16 * 1024  # header blocks larger than this are left to h11
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d{1,12})[ \t]*(?=\r\n)", re.I)
_NOT_AT_DOOR = (b"\r\ntransfer-encoding:", b"\r\nexpect:", b"\r\nconnection: close")


class _Coalescing:
    """The connection's transport, sending what is written in one turn of the event loop in
    one ``send``.

    uvicorn writes an answer's status line and headers, then its body: two system calls and,
    with ``TCP_NODELAY``, two packets an answer. Here they are joined and sent once the writing
    task yields (``close`` sends what is pending first); everything else is the transport's.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(bytes(data))

    def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _Protocol(H11Protocol):
    header_timeout_s = 10.0
    door: Door | None = None
    refusal_hold: RefusalHold | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._got_bytes = False
        self._skip = 0  # body bytes still to drop, of a request refused at the door
        self._held: asyncio.TimerHandle | None = None  # a door refusal not yet sent
        self._stash = bytearray()  # bytes after a held refusal's request: read once it is sent

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = _Coalescing(transport, self.loop)  # type: ignore[assignment]
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._held is not None:
            self._held.cancel()
            self._held = None
            assert self.refusal_hold is not None
            self.refusal_hold.give()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._skip:  # the body of a request refused at the door: dropped unparsed
            dropped = min(self._skip, len(data))
            self._skip -= dropped
            data = data[dropped:]
            if not data:
                return
        if self._held is not None:  # a pipelined request waits for the answer before it
            self._stash += data
            if len(self._stash) > _MAX_HEAD:
                self.transport.pause_reading()
            return
        waiting = self.conn.their_state is h11.IDLE  # between requests: these are headers
        if waiting:
            if self.door is not None and not self.conn.trailing_data[0] and self._at_door(data):
                return
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

    def _at_door(self, data: bytes) -> bool:
        """Answer the request ``data`` starts with if the door refuses it; True if it did."""
        assert self.door is not None
        end = data.find(b"\r\n\r\n", 0, _MAX_HEAD)
        if end < 0:
            return False  # the header block is not all here: h11 takes it
        head = data[: end + 2]
        lowered = head.lower()
        first_line = head[: head.find(b"\r\n")]
        lengths = _CONTENT_LENGTH.findall(head)
        if (
            not first_line.endswith(b" HTTP/1.1")
            or len(lengths) != 1
            or any(h in lowered for h in _NOT_AT_DOOR)
        ):
            return False
        length = int(lengths[0])
        answer = self.door(first_line, length)
        if answer is None:
            return False
        self._disarm()
        self._unset_keepalive_if_required()  # not idle: a refusal is on its way
        self._got_bytes = False
        self._skip = length
        delay = self.refusal_hold.take() if self.refusal_hold is not None else 0.0
        if delay:  # the headers have just arrived: the whole delay is still to wait
            self._held = self.loop.call_later(delay, self._send_held, answer)
        else:
            self._answered(answer)
        rest = data[end + 4 :]
        if rest:
            self.data_received(rest)
        return True

    def _answered(self, answer: bytes) -> None:
        """Send a door refusal; the connection then idles as after any answer (uvicorn's
        keep-alive timeout), and the header timer starts with the next request's first bytes."""
        self.transport.write(answer)
        self._unset_keepalive_if_required()
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def _send_held(self, answer: bytes) -> None:
        self._held = None
        assert self.refusal_hold is not None
        self.refusal_hold.give()
        if self.transport.is_closing():
            return
        self._answered(answer)
        if self._stash:
            data, self._stash = bytes(self._stash), bytearray()
            self.transport.resume_reading()
            self.data_received(data)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Idle now: uvicorn's keep-alive timer runs; ours starts again with the next bytes.
        self._disarm()

    def send_400_response(self, msg: str) -> None:
        detail = f"malformed HTTP request: {msg.rstrip('.')}; send a valid HTTP/1.1 request"
        self.transport.write(_raw_response(400, "Bad Request", detail))
        self.transport.close()


def protocol_class(
    header_timeout_s: float, door: Door | None = None, refusal_hold: RefusalHold | None = None
) -> type[H11Protocol]:
    """The protocol class for ``uvicorn.Config(http=...)``; the door's refusals wait as
    ``refusal_hold`` says, from their request's headers."""
    attrs = {
        "header_timeout_s": header_timeout_s,
        "door": staticmethod(door) if door else None,
        "refusal_hold": refusal_hold,
    }
    return type("EmojiNetH11Protocol", (_Protocol,), attrs)
