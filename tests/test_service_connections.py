"""``emojinet serve`` as the container runs it (a subprocess, a tiny real model, loopback):
silent and malformed connections, security headers, settings refused at start, SIGTERM with a
stalled upload."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError
from service_helpers import REPO, ServerProcess

from service.settings import Settings

pytestmark = pytest.mark.slow


def env_for(release: Path, **extra: str) -> dict[str, str]:
    return {
        "EMOJINET_MODEL": str(release),
        "EMOJINET_BACKEND": "torch",
        "EMOJINET_DEVICE": "cpu",
        **{f"EMOJINET_{k.upper()}": v for k, v in extra.items()},
    }


@pytest.fixture(scope="module")
def server(tiny_release: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    limits = {
        "max_connections": "8",
        "header_timeout_s": "1",
        "max_queue": "1",
        "timeout_keep_alive_s": "1",
    }
    env = env_for(tiny_release, **limits, refusal_delay_s="0.3")
    srv = ServerProcess(env, tmp_path_factory.mktemp("logs") / "server.log").wait_ready()
    yield srv
    srv.stop()


def connect(srv: ServerProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", srv.port), timeout=10)


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_silent_connections_are_closed_so_health_checks_get_through(
    server: ServerProcess,
) -> None:
    silent = [connect(server) for _ in range(8)]  # as many as EMOJINET_MAX_CONNECTIONS
    try:
        time.sleep(1.5)  # past EMOJINET_HEADER_TIMEOUT_S
        assert all(read_all(s) == b"" for s in silent), "the server closes them, answering nothing"
        r = httpx.get(f"{server.url}/healthz", timeout=5)
        assert r.status_code == 200, r.text
    finally:
        for s in silent:
            s.close()


def test_headers_that_never_finish_get_a_json_408(server: ServerProcess) -> None:
    with connect(server) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        t0 = time.monotonic()
        answer = read_all(s)
    assert 0.8 < time.monotonic() - t0 < 5
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ") and b"content-type: application/json" in head
    assert json.loads(body)["detail"] == "the request headers did not arrive within 1 s"


def test_malformed_http_gets_a_json_400(server: ServerProcess) -> None:
    with connect(server) as s:
        s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        head, _, body = read_all(s).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ") and b"content-type: application/json" in head
    assert json.loads(body)["detail"].startswith("malformed HTTP request")


@pytest.mark.parametrize(
    ("request_bytes", "detail"),
    [
        (
            b"POST /suggest HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "Duplicate Content-Length",
        ),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", "Invalid header value char"),
        (b"GET /healthz HTTP/1.1\nHost: x\n\n", "Expected CRLF after version"),
    ],
)
def test_what_the_parser_refuses_gets_its_reason_as_json(
    server: ServerProcess, request_bytes: bytes, detail: str
) -> None:
    with connect(server) as s:
        s.sendall(request_bytes)
        head, _, body = read_all(s).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), head
    assert json.loads(body)["detail"] == (
        f"malformed HTTP request: {detail}; send a valid HTTP/1.1 request"
    )


@pytest.mark.parametrize("chunks", [1, 40], ids=["at-once", "trickled"])
def test_a_header_block_over_16_kib_gets_a_json_431(server: ServerProcess, chunks: int) -> None:
    block = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n"
    size = -(-len(block) // chunks)
    with connect(server) as s:
        with contextlib.suppress(OSError):  # the server closes the connection at 16 KiB
            for i in range(0, len(block), size):
                s.sendall(block[i : i + size])
                time.sleep(0.005 if chunks > 1 else 0)
        head, _, body = read_all(s).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 "), head
    assert json.loads(body)["detail"] == "the request headers are over 16 KiB"
    with connect(server) as s:  # 15 KiB of headers is still a request
        s.sendall(block.replace(b"a" * 40_000, b"a" * 15_000).replace(b"1.1", b"1.0", 1))
        assert read_all(s).startswith(b"HTTP/1.1 200 ")


def test_an_upgrade_is_ignored_and_the_request_answered(server: ServerProcess) -> None:
    """curl --http2 on http:// asks for h2c on every request: answered in HTTP/1.1, body and all."""
    body = b"not a photo"
    with connect(server) as s:
        s.sendall(
            b"POST /suggest HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"
            b"Content-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        )
        ((status, _, answer),) = read_answers(s, 1)
    assert status == 400  # the body arrived and was read: not an image
    assert json.loads(answer)["detail"].startswith("the data is not an image")


def _recv(sock: socket.socket) -> bytes:
    chunk = sock.recv(65536)
    if not chunk:
        raise AssertionError("the server closed the connection before the answer")
    return chunk


def read_answers(sock: socket.socket, n: int) -> list[tuple[int, dict[str, str], bytes]]:
    """``n`` answers read off one keep-alive connection: status, headers, body."""
    data, out = b"", []
    while len(out) < n:
        while b"\r\n\r\n" not in data:
            data += _recv(sock)
        head, _, data = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:])
        length = int(headers["content-length"])
        while len(data) < length:
            data += _recv(sock)
        out.append((int(lines[0].split()[1]), headers, data[:length]))
        data = data[length:]
    return out


def test_a_full_budget_refuses_at_the_door_and_keeps_the_connection(
    server: ServerProcess,
) -> None:
    post = (
        b"POST /suggest?top_k=3 HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
        b"Content-Length: 5000\r\n\r\n"
    )
    with connect(server) as holder, connect(server) as client:
        holder.sendall(
            post + b"\xff" * 10
        )  # admitted: holds the one image EMOJINET_MAX_QUEUE allows
        time.sleep(0.3)
        # Two refused uploads, pipelined with a health check: their bodies must be skipped exactly,
        # and each refusal waits out the refusal delay (0.3 s) with the requests behind it.
        t0 = time.monotonic()
        client.sendall(post + b"\xff" * 5000 + post + b"\xff" * 5000 + b"GET /healthz HTTP/1.1\r\n")
        client.sendall(b"Host: x\r\n\r\n")
        answers = read_answers(client, 3)
        assert time.monotonic() - t0 >= 0.6
        # Refused again and again past the 1 s header timeout: each refusal is a whole request.
        for _ in range(4):
            time.sleep(0.4)
            client.sendall(post + b"\xff" * 5000)
            answers += read_answers(client, 1)
        with connect(server) as huge:  # over the body limit: 413 from the middleware, not 429
            huge.sendall(post.replace(b"5000", b"30000000"))
            answers += read_answers(huge, 1)
    assert [status for status, _, _ in answers] == [429, 429, 200, 429, 429, 429, 429, 413]
    for _, headers, body in answers[:2]:
        assert int(headers["retry-after"]) >= 1 and headers["x-content-type-options"] == "nosniff"
        assert json.loads(body)["detail"].startswith("the server is busy: 1 images are already")
    text = httpx.get(f"{server.url}/metrics", timeout=5).text
    assert 'emojinet_requests_total{endpoint="/suggest",method="POST",status="429"} 6.0' in text
    assert 'emojinet_gate_rejections_total{reason="overloaded"} 6.0' in text


def test_at_most_a_quarter_of_the_connections_wait_out_the_refusal_delay(
    server: ServerProcess,
) -> None:
    """EMOJINET_MAX_CONNECTIONS=8: two refusals wait 0.3 s at once; a third is answered now."""
    post = (
        b"POST /suggest HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
        b"Content-Length: 100\r\n\r\n" + b"\xff" * 100
    )
    with connect(server) as holder:
        holder.sendall(post[:-90])  # admitted: holds the one image EMOJINET_MAX_QUEUE allows
        time.sleep(0.3)
        clients = [connect(server) for _ in range(3)]
        t0 = time.monotonic()
        for c in clients:
            c.sendall(post)
        took: list[float] = []

        def answer(c: socket.socket) -> None:
            if read_answers(c, 1)[0][0] == 429:
                took.append(time.monotonic() - t0)

        readers = [threading.Thread(target=answer, args=(c,)) for c in clients]
        for r in readers:
            r.start()
        for r, c in zip(readers, clients, strict=True):
            r.join(10)
            c.close()
    assert len(took) == 3, took
    first, *held = sorted(took)
    assert first < 0.25 and all(t >= 0.3 for t in held), took


def test_a_held_refusal_outlives_the_keep_alive_timer_it_interrupted(
    server: ServerProcess,
) -> None:
    """EMOJINET_TIMEOUT_KEEP_ALIVE_S=1: a request refused 0.8 s after the previous answer is
    held 0.3 s, past when the idle connection would have been closed; it gets its 429."""
    post = (
        b"POST /suggest HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
        b"Content-Length: 100\r\n\r\n" + b"\xff" * 100
    )
    with connect(server) as holder, connect(server) as client:
        client.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_answers(client, 1)[0][0] == 200  # the connection idles from here
        holder.sendall(post[:-90])  # admitted: holds the one image EMOJINET_MAX_QUEUE allows
        time.sleep(0.8)
        client.sendall(post)
        assert read_answers(client, 1)[0][0] == 429


def test_every_answer_carries_nosniff_and_a_csp(server: ServerProcess) -> None:
    for path in ("/", "/static/index.html", "/healthz", "/suggestions"):
        r = httpx.get(server.url + path, timeout=5)
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert "default-src 'self'" in r.headers["content-security-policy"], path
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"], path


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (" ", "it is set but holds no key"),
        ("", "it is set but holds no key"),
        ("[]", "it is set but holds no key"),
        (" , ", "it is set but holds no key"),
        ("[", "not a valid JSON list"),
        ("good-key,bad key", "key(s) number 2 cannot be sent as 'Authorization: Bearer <key>'"),
    ],
)
def test_blank_or_malformed_api_keys_are_refused(
    value: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMOJINET_API_KEYS", value)
    with pytest.raises(ValidationError, match=re.escape(message)):
        Settings()


def test_serve_refuses_to_start_with_blank_api_keys() -> None:
    env = {**os.environ, "EMOJINET_API_KEYS": " ", "EMOJINET_PORT": "0"}
    proc = subprocess.run(
        [sys.executable, "-m", "emojinet", "serve"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == (
        "emojinet serve: EMOJINET_API_KEYS: it is set but holds no key: give comma-separated "
        "keys, or unset EMOJINET_API_KEYS to run without authentication\n"
    )


def test_sigterm_with_a_stalled_upload_exits_within_the_drain_timeout(
    tiny_release: Path, tmp_path: Path
) -> None:
    drain_s = 2.0
    env = env_for(tiny_release, drain_timeout_s=str(drain_s))
    srv = ServerProcess(env, tmp_path / "server.log").wait_ready()
    answer: list[bytes] = []
    try:
        sock = connect(srv)
        sock.sendall(
            b"POST /suggest HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
            b"Content-Length: 1000\r\n\r\n"
        )

        def trickle() -> None:  # one byte every 0.5 s, never stalling long enough for a 408
            try:
                while True:
                    sock.sendall(b"\xff")
                    time.sleep(0.5)
            except OSError:
                pass

        def read() -> None:
            answer.append(read_all(sock))

        threading.Thread(target=trickle, daemon=True).start()
        reader = threading.Thread(target=read)
        reader.start()
        time.sleep(1.0)
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        code = srv.proc.wait(30)
        took = time.monotonic() - t0
        reader.join(10)
        sock.close()
    finally:
        srv.stop()
    assert took <= drain_s + 1.0, f"exited {took:.1f} s after SIGTERM"
    assert code in (0, -signal.SIGTERM)
    head, _, body = answer[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 "), answer[0][:300]
    assert b"connection: close" in head.lower() and b"retry-after: " in head.lower()
    assert "shut down before the request body arrived" in json.loads(body)["detail"]
    log = srv.log()
    assert "Traceback" not in log and "Exception in ASGI" not in log, log
