"""The real server (``emojinet serve`` in a subprocess, a tiny real model) over HTTP on loopback."""

from __future__ import annotations

import io
import json
import re
import socket
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from service_helpers import EMOJIS, ServerProcess, jpeg

pytestmark = pytest.mark.slow

MAX_BODY = 1_000_000
MAX_PIXELS = 1_000_000


@pytest.fixture(scope="module")
def server(tiny_release: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {
        "EMOJINET_MODEL": str(tiny_release),
        "EMOJINET_BACKEND": "torch",
        "EMOJINET_DEVICE": "cpu",
        "EMOJINET_MAX_BODY_BYTES": str(MAX_BODY),
        "EMOJINET_MAX_PIXELS": str(MAX_PIXELS),
        "EMOJINET_MAX_IMAGES_PER_REQUEST": "3",
        "EMOJINET_BODY_READ_TIMEOUT_S": "1",
        "EMOJINET_PREPROCESS_WORKERS": "1",
    }
    srv = ServerProcess(env, tmp_path_factory.mktemp("logs") / "server.log").wait_ready()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def test_suggest_multipart_answers_emojis_model_and_timing(
    client: httpx.Client, photo: bytes
) -> None:
    r = client.post("/suggest", files={"image": ("cat.jpg", photo, "image/jpeg")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "test-tiny"
    assert len(body["emojis"]) == 5
    assert {e["emoji"] for e in body["emojis"]} == set(EMOJIS)
    scores = [e["score"] for e in body["emojis"]]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    assert body["emojis"][0]["name"]
    timing = body["timing"]
    assert timing["total_ms"] >= timing["inference_ms"] > 0 and timing["queue_ms"] >= 0
    assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"])


def test_suggest_raw_body_top_k_and_threshold(client: httpx.Client, photo: bytes) -> None:
    ref = client.post("/suggest", files={"image": ("cat.jpg", photo)}).json()["emojis"]
    r = client.post("/suggest?top_k=2", content=photo, headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 200, r.text
    assert r.json()["emojis"] == ref[:2]
    cut = (ref[1]["score"] + ref[2]["score"]) / 2
    r = client.post(
        f"/suggest?threshold={cut}", content=photo, headers={"Content-Type": "image/jpeg"}
    )
    assert r.json()["emojis"] == ref[:2]


def test_several_images_answer_one_result_each_in_order(client: httpx.Client, photo: bytes) -> None:
    images = [photo, jpeg((20, 200, 40)), jpeg((10, 10, 240), (64, 90))]
    singles = [
        client.post("/suggest", files={"image": ("x.jpg", b)}).json()["emojis"] for b in images
    ]
    r = client.post("/suggest", files=[("images", (f"{i}.jpg", b)) for i, b in enumerate(images)])
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert len(results) == 3
    for res, single in zip(results, singles, strict=True):  # batched numerics differ a hair
        assert [e["emoji"] for e in res["emojis"]] == [e["emoji"] for e in single]
        assert [e["score"] for e in res["emojis"]] == pytest.approx(
            [e["score"] for e in single], abs=1e-4
        )
    assert all(res["inference_ms"] > 0 for res in results)


def test_health_ready_model_and_vocabulary(client: httpx.Client, tiny_release: Path) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready", "model": "test-tiny"}
    info = client.get("/model").json()
    meta = json.loads(tiny_release.with_suffix(".json").read_text())
    assert info["sha256"] == meta["sha256"]
    assert (info["name"], info["backbone"], info["vocab_size"]) == ("test-tiny", "resnet18", 5)
    assert info["gan"]["loaded"] is False and "EMOJINET_GAN_MODEL" in info["gan"]["reason"]
    vocab = client.get("/emojis").json()
    assert vocab["count"] == 5 and [e["emoji"] for e in vocab["emojis"]] == list(EMOJIS)
    assert vocab["emojis"][0]["name"] == "cat face"


def metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(want) + r"\}" if want else "") + r" (\S+)"
    m = re.search(r"^" + pattern + "$", text, re.M)
    return float(m.group(1)) if m else 0.0


def test_metrics_are_prometheus_text(client: httpx.Client, photo: bytes) -> None:
    client.post("/suggest", files={"image": ("cat.jpg", photo)})
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    t = r.text
    assert (
        metric(t, "emojinet_requests_total", endpoint="/suggest", method="POST", status="200") >= 1
    )
    assert metric(t, "emojinet_queue_wait_seconds_count") >= 1
    assert metric(t, "emojinet_batch_size_count") >= 1
    assert metric(t, "emojinet_inference_seconds_count") >= 1
    assert "emojinet_queue_depth 0.0" in t
    assert metric(t, "emojinet_ready") == 1.0


def test_docs_work_offline(client: httpx.Client) -> None:
    r = client.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "openapi.json" in r.text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", r.text), "no external resources"
    assert "://" not in r.text, "no absolute URLs: everything is served from here"
    spec = client.get("/openapi.json").json()
    assert {"/suggest", "/healthz", "/readyz", "/emojis", "/metrics", "/model"} <= set(
        spec["paths"]
    )
    body = spec["paths"]["/suggest"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in body and "image/*" in body


def _png(size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("L", size).save(buf, format="PNG")
    return buf.getvalue()


GOOD = jpeg()
# (name, request kwargs, status, a fragment of the detail)
BAD_REQUESTS: list[tuple[str, dict[str, Any], int, str]] = [
    ("no content type", {"content": GOOD}, 415, "no Content-Type"),
    (
        "text/plain",
        {"content": GOOD, "headers": {"Content-Type": "text/plain"}},
        415,
        "'text/plain'",
    ),
    ("json body", {"json": {"image": "x"}}, 415, "'application/json'"),
    ("empty raw body", {"content": b"", "headers": {"Content-Type": "image/jpeg"}}, 400, "empty"),
    (
        "not an image",
        {"content": b"hello", "headers": {"Content-Type": "image/png"}},
        400,
        "not an image",
    ),
    (
        "truncated jpeg",
        {"content": GOOD[: len(GOOD) // 2], "headers": {"Content-Type": "image/jpeg"}},
        400,
        "could not be decoded",
    ),
    (
        "html as image",
        {"files": {"image": ("x.jpg", b"<html></html>", "image/jpeg")}},
        400,
        "not an image",
    ),
    (
        "multipart without image",
        {"files": {"file": ("x.jpg", GOOD)}},
        422,
        "no 'image' file field (it has 'file')",
    ),
    (
        "garbage multipart",
        {"content": b"garbage", "headers": {"Content-Type": "multipart/form-data; boundary=xyz"}},
        400,
        "Invalid multipart data",
    ),
    ("urlencoded form", {"data": {"image": "x"}}, 415, "'application/x-www-form-urlencoded'"),
    (
        "image as text field",
        {"data": {"image": "cat.jpg"}, "files": {"x": ("x", b"1")}},
        400,
        "must be a file upload",
    ),
    (
        "image and images",
        {"files": [("image", ("a.jpg", GOOD)), ("images", ("b.jpg", GOOD))]},
        400,
        "not both",
    ),
    (
        "two image fields",
        {"files": [("image", ("a.jpg", GOOD)), ("image", ("b.jpg", GOOD))]},
        400,
        "as 'images'",
    ),
    ("empty file", {"files": {"image": ("a.jpg", b"")}}, 400, "empty"),
    (
        "too many images",
        {"files": [("images", (f"{i}.jpg", GOOD)) for i in range(4)]},
        400,
        "the limit is 3",
    ),
    (
        "one bad among images",
        {"files": [("images", ("a.jpg", GOOD)), ("images", ("b.jpg", b"junk"))]},
        400,
        "images[1]:",
    ),
    (
        "multipart no boundary",
        {"content": b"x", "headers": {"Content-Type": "multipart/form-data"}},
        400,
        "boundary",
    ),
    (
        "too many pixels",
        {"files": {"image": ("big.png", _png((1200, 1000)))}},
        413,
        "the limit is 1,000,000 pixels",
    ),
    (
        "body over limit",
        {"content": b"\xff" * (MAX_BODY + 1), "headers": {"Content-Type": "image/jpeg"}},
        413,
        "limit is 1,000,000 bytes",
    ),
    (
        "top_k zero",
        {"params": {"top_k": 0}, "files": {"image": ("a.jpg", GOOD)}},
        422,
        "'top_k': Input should be greater than or equal to 1",
    ),
    (
        "top_k too big",
        {"params": {"top_k": 51}, "files": {"image": ("a.jpg", GOOD)}},
        422,
        "'top_k': Input should be less than or equal to 50",
    ),
    (
        "top_k not a number",
        {"params": {"top_k": "five"}, "files": {"image": ("a.jpg", GOOD)}},
        422,
        "'top_k': Input should be a valid integer",
    ),
    (
        "threshold above 1",
        {"params": {"threshold": 1.5}, "files": {"image": ("a.jpg", GOOD)}},
        422,
        "'threshold'",
    ),
    (
        "threshold negative",
        {"params": {"threshold": -0.1}, "files": {"image": ("a.jpg", GOOD)}},
        422,
        "'threshold'",
    ),
    ("GET /suggest", {"method": "GET"}, 405, "Method Not Allowed"),
    ("unknown path", {"path": "/suggestions"}, 404, "Not Found"),
]


@pytest.mark.parametrize(
    ("kwargs", "status", "detail"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_bad_requests_get_a_clear_error(
    client: httpx.Client, kwargs: dict[str, Any], status: int, detail: str
) -> None:
    kwargs = dict(kwargs)
    method, path = kwargs.pop("method", "POST"), kwargs.pop("path", "/suggest")
    r = client.request(method, path, **kwargs)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    assert detail in r.json()["detail"]
    assert "Traceback" not in r.text


def test_server_still_answers_after_the_bad_requests(client: httpx.Client, photo: bytes) -> None:
    assert len(BAD_REQUESTS) >= 20
    assert client.get("/healthz").status_code == 200
    assert client.post("/suggest", files={"image": ("cat.jpg", photo)}).status_code == 200


def raw_http(server: ServerProcess, head: bytes, body_chunks: Sequence[bytes] = ()) -> bytes:
    """Send a hand-made request; return whatever the server answers."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(head)
        try:
            for chunk in body_chunks:
                s.sendall(chunk)
        except OSError:
            pass  # the server answered and closed before taking the whole body
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        return data


def test_content_length_over_limit_is_refused_before_the_body_is_sent(
    server: ServerProcess,
) -> None:
    head = (
        b"POST /suggest HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
        b"Content-Length: 5000000000\r\n\r\n"
    )
    t0 = time.monotonic()
    answer = raw_http(server, head)  # no body at all: the answer must not wait for it
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"5,000,000,000 bytes" in answer and b"connection: close" in answer.lower()
    assert time.monotonic() - t0 < 5


def test_chunked_body_is_cut_off_at_the_limit(server: ServerProcess) -> None:
    head = (
        b"POST /suggest HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"40000\r\n" + b"\xff" * 0x40000 + b"\r\n"  # 256 KiB per chunk, 40 MiB in all
    answer = raw_http(server, head, [chunk] * 160)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"over the limit of 1,000,000 bytes" in answer


def test_a_client_that_stops_sending_its_body_gets_408(server: ServerProcess) -> None:
    head = (
        b"POST /suggest HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
        b"Content-Length: 1000\r\n\r\n"
    )
    t0 = time.monotonic()
    answer = raw_http(server, head, [b"\xff" * 10])
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"no request body data for 1 s" in answer
    assert 0.9 < time.monotonic() - t0 < 10


def test_request_id_is_echoed(client: httpx.Client) -> None:
    r = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert r.headers["x-request-id"] != "bad id\twith spaces"
