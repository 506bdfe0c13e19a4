"""uvicorn's httptools protocol with a header deadline and size limit, JSON answers for
malformed HTTP, a door, and one ``send`` an answer.

httptools (llhttp, in C) rather than h11: the event loop's CPU per answer is its share of the
model's cores, and the bare server of ``benchmarks/bench_floor.py`` spent about a fifth less of
it on httptools than on h11 (0.75 → 0.60 ms an answer at 8 clients, 0.52 → 0.42 at 32). h11
also bounded a header block's size; llhttp does not, and httptools gathers a header that has not
ended in Python, so the limit is kept here: a block over 16 KiB is answered 431 and the
connection closed.

uvicorn times out idle keep-alive connections, but not a connection that never sends a complete
request: 32 silent sockets hold 32 of ``max_connections`` forever (``/healthz`` then answers
503). Here a connection must deliver its request headers within ``header_timeout_s`` of opening
(or of its previous answer, once it starts sending the next request); otherwise it is closed,
with a 408 if it had sent part of a request. Requests that are not HTTP get a JSON 400 like
every other error (uvicorn's own answer is plain text).

The door (:func:`service.admission.door`) sees each request's header block before the parser
sees it; while the image budget is full it refuses an inference request 429 and its body is skipped
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

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

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


_MAX_HEAD = 16 * 1024  # the largest header block taken
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d{1,12})[ \t]*(?=\r\n)", re.I)
# An Upgrade header (and its value): taken out of a header block before the parser sees it, as
# a server may ignore it (RFC 9110, 7.8) and h11 did; llhttp would stop at it (curl --http2 asks
# for h2c on every http:// request).
_UPGRADE = re.compile(rb"\r\nupgrade[ \t]*:[^\r\n]*", re.I)
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


class _Protocol(HttpToolsProtocol):
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
        self._between = True  # the parser holds no part of a request
        self._in_head = False  # it holds part of a request's header block
        self._head_bytes = 0  # bytes fed to the parser while that block was incomplete

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
        if self._idle():  # between requests, none in flight: these are headers
            end = data.find(b"\r\n\r\n", 0, _MAX_HEAD)
            if end < 0 and len(data) > _MAX_HEAD:
                self._too_large()
                return
            if end >= 0 and _UPGRADE.search(data, 0, end):
                data = _UPGRADE.sub(b"", data[:end]) + data[end:]
                end = data.find(b"\r\n\r\n", 0, _MAX_HEAD)
            if self.door is not None and end >= 0 and self._at_door(data, end):
                return
            self._got_bytes = True
            self._arm()  # after keep-alive idling uvicorn's own timer stops; ours starts
        head_so_far = self._between or self._in_head  # the chunk is head bytes until it ends
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # one not taken out above: its headers were split
            self.send_400_response("this server speaks HTTP/1.1 only; send it without Upgrade")
        except httptools.HttpParserError as exc:
            self.send_400_response(str(exc) or "not HTTP/1.1")
        else:
            if head_so_far and self._in_head:  # a header block still incomplete
                self._head_bytes += len(data)
                if self._head_bytes > _MAX_HEAD:
                    self._too_large()

    def _idle(self) -> bool:
        """No request is being received, run or answered on this connection."""
        cycle = self.cycle
        return self._between and not self.pipeline and (cycle is None or cycle.response_complete)

    # The parser's callbacks (uvicorn's, with what this class tracks).
    def on_message_begin(self) -> None:
        self._between, self._in_head, self._head_bytes = False, True, 0
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm()
        self._got_bytes = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._between = True
        super().on_message_complete()

    def _arm(self) -> None:
        if self._header_timer is None and not self.transport.is_closing():
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        answering = self.cycle is not None and not self.cycle.response_complete
        if self.transport.is_closing() or answering or not (self._between or self._in_head):
            return
        if self._got_bytes:
            detail = f"the request headers did not arrive within {self.header_timeout_s:g} s"
            self._refuse(408, "Request Timeout", detail)
        else:
            self.transport.close()

    def _too_large(self) -> None:
        detail = f"the request headers are over {_MAX_HEAD // 1024} KiB"
        self._refuse(431, "Request Header Fields Too Large", detail)

    def _refuse(self, status: int, reason: str, detail: str) -> None:
        """Answer ``status`` with a JSON ``detail`` and close the connection."""
        self.transport.write(_raw_response(status, reason, detail))
        self.transport.close()

    def _at_door(self, data: bytes, end: int) -> bool:
        """Answer the request ``data`` starts with (its header block ending at ``end``) if the
        door refuses it; True if it did."""
        assert self.door is not None
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
        self._refuse(400, "Bad Request", detail)


def protocol_class(
    header_timeout_s: float, door: Door | None = None, refusal_hold: RefusalHold | None = None
) -> type[HttpToolsProtocol]:
    """The protocol class for ``uvicorn.Config(http=...)``; the door's refusals wait as
    ``refusal_hold`` says, from their request's headers."""
    attrs = {
        "header_timeout_s": header_timeout_s,
        "door": staticmethod(door) if door else None,
        "refusal_hold": refusal_hold,
    }
    return type("EmojiNetHttpProtocol", (_Protocol,), attrs)
