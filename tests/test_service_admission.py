"""Admission over the whole pipeline, over real HTTP: a real uvicorn server on loopback running the
real app with a fake predictor whose ``preprocess`` really decodes (so decoding really costs)."""

from __future__ import annotations

import asyncio
import io
import logging
import random
import socket
import string
import threading
import time
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from service_helpers import FakePredictor, ThreadedServer, jpeg

from service.app import create_app
from service.refusals import RefusalHold
from service.settings import Settings


def settings(**kw: Any) -> Settings:
    return Settings(**{"max_batch_delay_ms": 0, "cloudwatch_enabled": False, **kw})


class CountingPredictor(FakePredictor):
    """The fake predictor, counting how many images it was asked to decode."""

    def __init__(self, delay_s: float = 0.0) -> None:
        super().__init__(delay_s)
        self.decoded = 0

    def preprocess(self, data: bytes) -> np.ndarray:
        self.decoded += 1
        return super().preprocess(data)


def big_png() -> bytes:
    """3.6 MP in 14 kB: about 0.1 s to decode here, nearly nothing to send."""
    img = Image.new("RGB", (2_400, 1_500), (200, 30, 30))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def connect(srv: ThreadedServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", srv.port), timeout=10)


def read_answer(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_a_request_that_can_never_fit_gets_413_before_decoding() -> None:
    fake = CountingPredictor()
    app = create_app(settings(max_queue=8, max_images_per_request=16), predictor=fake)
    with ThreadedServer(app) as srv:
        files = [("images", (f"{i}.jpg", jpeg())) for i in range(9)]
        r = httpx.post(f"{srv.url}/suggest", files=files, timeout=10)
        assert r.status_code == 413, r.text
        assert r.json()["detail"] == (
            "9 images in one request can never fit: this server takes at most 8 at once; "
            "send at most 8 per request"
        )
        assert "retry-after" not in r.headers
        assert fake.decoded == 0 and fake.calls == 0
        files = [("images", (f"{i}.jpg", jpeg())) for i in range(8)]
        assert httpx.post(f"{srv.url}/suggest", files=files, timeout=10).status_code == 200


def test_a_full_budget_refuses_before_reading_the_body_after_the_refusal_delay() -> None:
    fake = CountingPredictor()
    app = create_app(
        settings(max_queue=1, body_read_timeout_s=5, refusal_delay_s=0.4), predictor=fake
    )
    with ThreadedServer(app) as srv, connect(srv) as slow, connect(srv) as late:
        head = b"POST /suggest HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
        slow.sendall(head + b"Content-Length: 1000\r\n\r\n" + b"\xff" * 10)  # holds the one slot
        time.sleep(0.3)
        t0 = time.monotonic()
        late.sendall(head + b"Content-Length: 5000\r\n\r\n")  # headers only: no body follows
        answer = read_answer(late)
        # Not before the refusal delay (a client that retries at once cannot flood the server),
        # and without waiting for the body.
        assert 0.4 <= time.monotonic() - t0 < 2
        assert answer.startswith(b"HTTP/1.1 429 "), answer[:200]
        assert b"retry-after: " in answer.lower() and b"the server is busy" in answer
        assert fake.decoded == 0


def test_a_held_refusal_gives_its_budget_back_while_it_waits() -> None:
    """Two images admitted as one, then refused (429) when the second does not fit: while the
    refusal waits out its delay, a photo sent after it is admitted and answered first."""
    app = create_app(
        settings(max_queue=2, body_read_timeout_s=5, refusal_delay_s=1.5),
        predictor=FakePredictor(),
    )
    with ThreadedServer(app) as srv, connect(srv) as slow:
        head = b"POST /suggest HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
        slow.sendall(head + b"Content-Length: 1000\r\n\r\n" + b"\xff" * 10)  # one of two slots
        time.sleep(0.3)

        async def both() -> tuple[tuple[int, float], tuple[int, float]]:
            async with httpx.AsyncClient(base_url=srv.url, timeout=10) as client:

                async def post(n: int) -> tuple[int, float]:
                    files = [("images", (f"{i}.jpg", jpeg())) for i in range(n)]
                    r = await client.post("/suggest", files=files)
                    return r.status_code, time.monotonic()

                two = asyncio.ensure_future(post(2))
                await asyncio.sleep(0.5)  # the pair is read, refused and waiting by now
                one = await post(1)
                return await two, one

        t0 = time.monotonic()
        (two_status, two_done), (one_status, one_done) = asyncio.run(both())
    assert two_status == 429 and two_done - t0 >= 1.5
    assert one_status == 200 and one_done < two_done


def test_refusals_are_held_up_to_their_limit() -> None:
    hold = RefusalHold(1.5, limit=2)
    assert [hold.take(), hold.take(), hold.take()] == [1.5, 1.5, 0.0]  # the third: at once
    hold.give()
    assert hold.take() == 1.5 and hold.held == 2
    assert RefusalHold(0.0, limit=2).take() == 0.0  # no delay configured: nothing held
    with pytest.raises(ValueError, match=">= 0"):
        RefusalHold(-1.0, limit=2)


def test_the_byte_budget_counts_bodies_being_read() -> None:
    app = create_app(
        settings(max_body_bytes=100_000, max_pending_bytes=150_000, body_read_timeout_s=5),
        predictor=FakePredictor(),
    )
    with ThreadedServer(app) as srv, connect(srv) as slow, connect(srv) as late:
        head = b"POST /suggest HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
        slow.sendall(head + b"Content-Length: 90000\r\n\r\n" + b"\xff" * 10)
        time.sleep(0.3)
        late.sendall(head + b"Content-Length: 90000\r\n\r\n")
        answer = read_answer(late)
        assert answer.startswith(b"HTTP/1.1 429 ") and b"180,000 bytes" not in answer
        assert b"(90,000 bytes) are already" in answer
        r = httpx.post(f"{srv.url}/suggest", files={"image": ("x.jpg", jpeg())}, timeout=10)
        assert r.status_code == 200, "a small body still fits beside the slow one"


async def _clients(url: str, n: int, seconds: float, data: bytes) -> list[tuple[int, float, float]]:
    """``n`` clients sending one request after another (at once after a refusal) for ``seconds``:
    (status, seconds seen by the client, seconds the server says it spent: ``timing.total_ms``)."""
    limits = httpx.Limits(max_connections=n)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as c:

        async def one() -> list[tuple[int, float, float]]:
            out = []
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                r = await c.post("/suggest", files={"image": ("x.png", data, "image/png")})
                server_s = r.json()["timing"]["total_ms"] / 1000 if r.status_code == 200 else 0.0
                out.append((r.status_code, time.perf_counter() - t0, server_s))
            return out

        return [x for xs in await asyncio.gather(*(one() for _ in range(n))) for x in xs]


def test_decode_bound_overload_sheds_and_keeps_accepted_latency_bounded() -> None:
    """16 clients sending pixel-heavy PNGs to one decode worker: a 0.5 s deadline holds."""
    deadline = 0.5
    fake = CountingPredictor()
    app = create_app(
        settings(queue_deadline_s=deadline, preprocess_workers=1, max_batch_size=8),
        predictor=fake,
    )
    with ThreadedServer(app) as srv:
        answers = asyncio.run(_clients(srv.url, 16, 2.0, big_png()))
    codes = [code for code, _, _ in answers]
    assert set(codes) <= {200, 429, 503}, codes
    assert codes.count(200) >= 2 and codes.count(429) + codes.count(503) >= 16, codes
    batch_s = 0.01  # the fake's forward pass takes next to no time
    in_server = max(s for code, _, s in answers if code == 200)
    assert in_server <= deadline + batch_s + 0.05, in_server  # the deadline covers decoding
    # Seen by the clients, who share this process (and its GIL) with the server and the
    # decoder: only a sanity bound (before the fix, accepted requests waited seconds).
    seen = max(t for code, t, _ in answers if code == 200)
    assert seen <= deadline + batch_s + 1.5, seen
    assert fake.decoded < len(answers), "requests that could not start were not decoded"


def test_a_many_image_request_does_not_hold_up_a_small_photo_behind_it() -> None:
    deadline = 1.0
    fake = CountingPredictor()
    app = create_app(
        settings(queue_deadline_s=deadline, preprocess_workers=1, max_images_per_request=16),
        predictor=fake,
    )
    with ThreadedServer(app) as srv:
        heavy = [("images", (f"{i}.png", big_png(), "image/png")) for i in range(16)]
        result: dict[str, Any] = {}

        def send_heavy() -> None:
            result["heavy"] = httpx.post(f"{srv.url}/suggest", files=heavy, timeout=30)

        thread = threading.Thread(target=send_heavy)
        thread.start()
        time.sleep(0.15)  # the 16 images are queued and decoding
        t0 = time.monotonic()
        small = httpx.post(f"{srv.url}/suggest", files={"image": ("s.jpg", jpeg())}, timeout=30)
        waited = time.monotonic() - t0
        thread.join(30)
        assert small.status_code == 200, small.text
        assert waited < 0.5, f"the small photo waited {waited:.2f} s behind the 16 images"
        assert result["heavy"].status_code in (200, 503)


def test_a_client_that_disconnects_mid_upload_is_not_a_server_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="service")
    app = create_app(settings(), predictor=FakePredictor())
    with ThreadedServer(app) as srv:
        for _ in range(3):
            with connect(srv) as s:
                s.sendall(
                    b"POST /suggest HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                    b"Content-Length: 100000\r\n\r\n" + b"\xff" * 1000
                )
                time.sleep(0.1)
            time.sleep(0.2)
        text = httpx.get(f"{srv.url}/metrics").text
    assert 'emojinet_requests_total{endpoint="/suggest",method="POST",status="499"} 3.0' in text
    assert 'status="500"' not in text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    gone = [r for r in caplog.records if "client disconnected" in r.getMessage()]
    assert len(gone) == 3 and all(r.levelno == logging.INFO and not r.exc_info for r in gone)


def test_work_for_a_client_that_gave_up_is_dropped() -> None:
    """A client that disconnects while its photo waits for the device: the photo never runs
    (its answer would go nowhere), and it is counted as 499, not as an error."""
    predictor = FakePredictor(delay_s=0.4)
    app = create_app(settings(model_lanes=1, max_batch_size=1), predictor=predictor)
    with ThreadedServer(app) as srv:
        first = threading.Thread(
            target=lambda: httpx.post(f"{srv.url}/suggest", files={"image": ("a.jpg", jpeg())})
        )
        first.start()
        time.sleep(0.1)  # the first photo holds the device for 0.4 s
        with pytest.raises(httpx.ReadTimeout):  # the second gives up while it waits
            httpx.post(f"{srv.url}/suggest", files={"image": ("b.jpg", jpeg())}, timeout=0.15)
        first.join(10)
        time.sleep(0.6)  # time the second would have run in
        text = httpx.get(f"{srv.url}/metrics").text
    assert predictor.calls == 1
    assert 'emojinet_requests_total{endpoint="/suggest",method="POST",status="499"} 1.0' in text
    assert 'emojinet_requests_total{endpoint="/suggest",method="POST",status="200"} 1.0' in text


# Methods the HTTP parser (llhttp) knows, none of them the app's: made-up ones (a random
# 4,000-letter word) it refuses 400 before the app sees them.
_RARE_METHODS = ["PROPFIND", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "SEARCH", "REPORT"]
_RARE_METHODS += ["MERGE", "NOTIFY", "SUBSCRIBE", "PURGE", "MKCALENDAR", "LINK", "UNLINK", "ACL"]


def test_made_up_methods_do_not_grow_the_metrics() -> None:
    app = create_app(settings(), predictor=FakePredictor())
    rng = random.Random(0)
    with ThreadedServer(app) as srv, httpx.Client(base_url=srv.url) as client:
        with connect(srv) as s:
            made_up = "".join(rng.choices(string.ascii_uppercase, k=4000)).encode()
            s.sendall(made_up + b" /suggest HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(65536).startswith(b"HTTP/1.1 400 ")

        def junk(n: int) -> None:
            for _ in range(n):
                with connect(srv) as s:
                    method = rng.choice(_RARE_METHODS).encode()
                    s.sendall(method + b" /suggest HTTP/1.1\r\nHost: x\r\n\r\n")
                    assert s.recv(65536).startswith(b"HTTP/1.1 405 "), method

        junk(1)  # the first one adds its series (and /metrics its own): the next 300 add none
        client.get("/metrics")
        before = len(client.get("/metrics").content)
        junk(300)
        text = client.get("/metrics").text
    assert len(text.encode()) - before < 100, f"/metrics grew from {before} to {len(text)} bytes"
    assert 'emojinet_requests_total{endpoint="/suggest",method="other",status="405"} 301.0' in text


def test_absurd_shapes_and_other_formats_are_refused_over_http() -> None:
    """The issue's images: 413 and 415 with a detail, from the header, and nothing decoded."""
    from crafted_images import OTHER, strip_png

    fake = CountingPredictor()
    with ThreadedServer(create_app(settings(), predictor=fake)) as srv, httpx.Client() as c:

        def post(data: bytes) -> httpx.Response:
            return c.post(f"{srv.url}/suggest", files={"image": ("x", data)}, timeout=10)

        for width, detail in ((4000, "4,000:1 strip"), (100_000, "longest side may be at most")):
            r = post(strip_png(width))
            assert r.status_code == 413 and detail in r.json()["detail"], r.text
        r = post(strip_png(40_000_000))
        assert r.status_code == 413 and "longest side" in r.json()["detail"], r.text
        for fmt in ("PSD", "JPEG2000", "EPS"):
            r = post(OTHER[fmt])
            assert r.status_code == 415, (fmt, r.text)
            assert r.json()["detail"].endswith("send a JPEG, PNG, GIF, WebP, BMP or TIFF image")
        r = post(OTHER["TGA"])  # no signature of its own: it looks like a Windows cursor
        assert r.status_code == 415 and "looks like a CUR image" in r.json()["detail"]
    assert fake.decoded == 0, "refused from the header: nothing was decoded"
