"""``POST /suggest`` without the routing (service.direct): the route's answers, errors and
checks, and the FastAPI route for every query it does not take."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from service_helpers import FakePredictor, ThreadedServer, jpeg

import service.direct
from service.app import create_app
from service.direct import direct_query
from service.protocol import _Coalescing
from service.settings import Settings


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (b"", (5, None)),
        (b"top_k=3", (3, None)),
        (b"top_k=50", (50, None)),
        (b"threshold=0.25", (5, 0.25)),
        (b"threshold=1", (5, 1.0)),
        (b"threshold=0&top_k=12", (12, 0.0)),
        # FastAPI's: out of range, another spelling, other or repeated parameters, encodings.
        (b"top_k=0", None),
        (b"top_k=51", None),
        (b"top_k=05", None),
        (b"top_k=%35", None),
        (b"top_k=five", None),
        (b"top_k=", None),
        (b"threshold=1.5", None),
        (b"threshold=.5", None),
        (b"threshold=1e-3", None),
        (b"top_k=3&top_k=4", None),
        (b"top_k=3&", None),
        (b"top_k", None),
        (b"lang=en", None),
    ],
)
def test_the_direct_path_takes_only_plain_top_k_and_threshold(
    query: bytes, expected: tuple[int, float | None] | None
) -> None:
    assert direct_query(query) == expected


@pytest.fixture()
def calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per request the direct path answered."""
    seen: list[int] = []
    real = service.direct.answer_suggest

    async def counting(*args: Any) -> Any:
        seen.append(1)
        return await real(*args)

    monkeypatch.setattr(service.direct, "answer_suggest", counting)
    return seen


@pytest.fixture()
def server() -> Iterator[ThreadedServer]:
    settings = Settings(max_body_bytes=1_000_000, max_pixels=1_000_000, api_keys=["k1"])
    with ThreadedServer(create_app(settings, predictor=FakePredictor())) as srv:
        yield srv


def _post(srv: ThreadedServer, query: str, data: bytes, key: str | None = "k1") -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    files = {"image": ("p.jpg", data, "image/jpeg")}
    return httpx.post(f"{srv.url}/suggest{query}", files=files, headers=headers, timeout=30)


def _without_timing(r: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = r.json()
    body.pop("timing", None)
    return body


def test_the_direct_path_answers_as_the_route_does(
    server: ThreadedServer, calls: list[int]
) -> None:
    photo = jpeg((20, 200, 30))
    direct = _post(server, "?top_k=3&threshold=0.01", photo)
    assert calls == [1]
    routed = _post(server, "?top_k=03&threshold=0.01", photo)  # FastAPI parses 03 as 3
    assert calls == [1]
    assert direct.status_code == routed.status_code == 200, (direct.text, routed.text)
    assert _without_timing(direct) == _without_timing(routed)
    assert len(direct.json()["emojis"]) == 3
    assert set(direct.json()["timing"]) == set(routed.json()["timing"])
    for name in ("content-type", "x-content-type-options", "content-security-policy"):
        assert direct.headers[name] == routed.headers[name]
    assert direct.headers["x-request-id"] != routed.headers["x-request-id"]
    assert len(direct.headers["x-request-id"]) == 32


@pytest.mark.parametrize(
    ("data", "key", "status"),
    [
        (b"not an image at all", "k1", 400),
        (b"GIF89a" + b"\x00" * 20, "k1", 400),
        (jpeg(), None, 401),
        (jpeg(), "wrong", 401),
    ],
)
def test_the_direct_path_errors_as_the_route_does(
    server: ThreadedServer, calls: list[int], data: bytes, key: str | None, status: int
) -> None:
    direct = _post(server, "", data, key)
    routed = _post(server, "?top_k=05", data, key)
    assert direct.status_code == routed.status_code == status, (direct.text, routed.text)
    assert direct.json() == routed.json()
    assert direct.headers.get("www-authenticate") == routed.headers.get("www-authenticate")
    assert len(calls) == (1 if status != 401 else 0)  # the key is checked before the route


def test_queries_it_does_not_take_get_fastapis_answer(
    server: ThreadedServer, calls: list[int]
) -> None:
    r = _post(server, "?top_k=0", jpeg())
    assert r.status_code == 422
    assert "top_k" in r.json()["detail"]
    assert _post(server, "?top_k=5&lang=en", jpeg()).status_code == 200  # ignored by FastAPI
    assert calls == []


class _Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"info {name}"


def test_an_answer_written_in_one_turn_goes_out_in_one_write() -> None:
    async def main() -> tuple[_Transport, list[list[bytes]]]:
        raw = _Transport()
        transport = _Coalescing(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
        seen = []
        transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        transport.write(b"")
        transport.write(bytearray(b'{"a": 1}'))
        seen.append(list(raw.writes))  # nothing yet: the writer has not yielded
        await asyncio.sleep(0)
        seen.append(list(raw.writes))
        transport.write(b"408")
        transport.close()  # what is pending goes out first
        seen.append(list(raw.writes))
        assert transport.get_extra_info("peername") == "info peername"
        return raw, seen

    raw, seen = asyncio.run(main())
    assert seen[0] == []
    assert seen[1] == [b'HTTP/1.1 200 OK\r\n\r\n{"a": 1}']
    assert seen[2][-1] == b"408" and raw.closed


def test_an_aborted_connection_drops_what_is_pending() -> None:
    async def main() -> _Transport:
        raw = _Transport()
        transport = _Coalescing(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
        transport.write(b"partial")
        transport.abort()
        await asyncio.sleep(0)
        return raw

    raw = asyncio.run(main())
    assert raw.writes == [] and raw.closed
