"""The multipart reader of the image endpoints, on hand-made bodies fed in small chunks."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import HTTPException
from starlette.requests import Request

from service.multipart import Part, read_parts

B = "emojinet-test-boundary"


def body(*parts: tuple[str, str | None, bytes], end: bool = True) -> bytes:
    out = b""
    for name, filename, data in parts:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{B}\r\nContent-Disposition: {disp}\r\n\r\n".encode() + data + b"\r\n"
    return out + (f"--{B}--\r\n".encode() if end else b"")


def parse(raw: bytes, *, chunk: int = 7, max_parts: int = 8, ctype: str = "") -> list[Part]:
    chunks = [raw[i : i + chunk] for i in range(0, len(raw), chunk)] or [b""]

    async def main() -> list[Part]:
        pending = list(chunks)

        async def receive() -> dict[str, object]:
            data = pending.pop(0)
            return {"type": "http.request", "body": data, "more_body": bool(pending)}

        headers = [(b"content-type", (ctype or f"multipart/form-data; boundary={B}").encode())]
        request = Request({"type": "http", "method": "POST", "headers": headers}, receive)
        return await read_parts(request, max_parts)

    return asyncio.run(main())


def test_parts_come_back_whole_whatever_the_chunking() -> None:
    photo = bytes(range(256)) * 40 + b"\r\n--not-the-boundary\r\n"  # binary, boundary-like bytes
    raw = body(("image", "cat.jpg", photo), ("note", None, b"hello"))
    for chunk in (1, 7, 4096, len(raw)):
        parts = parse(raw, chunk=chunk)
        assert parts == [Part("image", "cat.jpg", photo), Part("note", None, b"hello")]


def test_an_empty_file_is_a_part_with_no_bytes() -> None:
    assert parse(body(("image", "a.jpg", b""))) == [Part("image", "a.jpg", b"")]


@pytest.mark.parametrize(
    ("raw", "kw", "detail"),
    [
        (b"garbage", {}, "Invalid multipart data"),
        (body(("image", "a.jpg", b"x" * 100), end=False), {}, "ends before its last boundary"),
        (body(*[("images", f"{i}.jpg", b"x") for i in range(5)]), {"max_parts": 4}, "more than 4"),
        (
            f"--{B}\r\nContent-Type: image/jpeg\r\n\r\nxx\r\n--{B}--\r\n".encode(),
            {},
            "no 'Content-Disposition: form-data; name=...'",
        ),
        (body(("image", "a.jpg", b"x")), {"ctype": "multipart/form-data"}, "no boundary"),
        (
            f"--{B}\r\n".encode() + b"".join(b"X-%d: 1\r\n" % i for i in range(40)) + b"\r\n",
            {},
            "Invalid multipart data",
        ),
    ],
    ids=["garbage", "truncated", "too many parts", "no name", "no boundary", "too many headers"],
)
def test_malformed_bodies_are_a_400_that_says_why(
    raw: bytes, kw: dict[str, object], detail: str
) -> None:
    with pytest.raises(HTTPException) as err:
        parse(raw, **kw)  # type: ignore[arg-type]
    assert err.value.status_code == 400
    assert detail in str(err.value.detail)
