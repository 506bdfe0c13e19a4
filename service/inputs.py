"""Reading a request's images: raw body or multipart fields, with the input budget in mind."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from fastapi import HTTPException, Request
from starlette.requests import ClientDisconnect

from service.admission import Ticket
from service.multipart import read_parts
from service.settings import Settings

__all__ = ["body_bytes", "read_images", "ticket_of", "unless_gone"]

T = TypeVar("T")

_ACCEPTED = (
    "send multipart/form-data with an 'image' file field (curl -F image=@photo.jpg), "
    "or the raw image bytes with an image/* Content-Type"
)


def ticket_of(request: Request) -> Ticket | None:
    """The admission ticket the request middleware took for this request, if it did."""
    ticket: Ticket | None = getattr(request.state, "admission_ticket", None)
    return ticket


def body_bytes(request: Request, settings: Settings) -> int:
    """What the body will cost the byte budget: its ``Content-Length``, or the body limit.

    (The middleware has already refused a malformed or too large ``Content-Length``.)
    """
    length = request.headers.get("content-length", "")
    return int(length) if length.isdigit() else settings.max_body_bytes


async def read_images(request: Request, max_images: int) -> tuple[list[bytes], bool]:
    """The image bytes in the request, and whether they came as ``images`` fields."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media == "multipart/form-data":
        return await _read_multipart(request, max_images)
    if media.startswith("image/") or media == "application/octet-stream":
        body = await request.body()
        if not body:
            raise HTTPException(400, f"the request body is empty: {_ACCEPTED}")
        return [body], False
    if not media:
        raise HTTPException(415, f"the request has no Content-Type: {_ACCEPTED}")
    raise HTTPException(415, f"unsupported Content-Type {media[:80]!r}: {_ACCEPTED}")


async def _read_multipart(request: Request, max_images: int) -> tuple[list[bytes], bool]:
    parts = await read_parts(request, max_parts=max_images + 16)
    single = [p for p in parts if p.name == "image"]
    many = [p for p in parts if p.name == "images"]
    if single and many:
        raise HTTPException(400, "send one 'image' field or several 'images' fields, not both")
    if len(single) > 1:
        raise HTTPException(400, "several 'image' fields: send several photos as 'images' fields")
    name, fields = ("images", many) if many else ("image", single)
    if not fields:
        got = ", ".join(repr(k[:40]) for k in sorted({p.name for p in parts})[:10])
        raise HTTPException(
            422,
            "the multipart body has no 'image' file field"
            + (f" (it has {got})" if got else "")
            + ": send the photo as -F image=@photo.jpg",
        )
    if len(fields) > max_images:
        raise HTTPException(400, f"{len(fields)} images in one request; the limit is {max_images}")
    if any(p.filename is None for p in fields):
        raise HTTPException(
            400,
            f"the {name!r} field must be a file upload (curl -F {name}=@photo.jpg), "
            "not a text value",
        )
    return [p.data for p in fields], name == "images"


async def unless_gone(request: Request, work: Awaitable[T]) -> T:
    """``work``'s result; cancelled if the client disconnects first, since its answer would go
    nowhere (its images not yet decoded or run never are: the decode stage and the gate drop
    cancelled work). Call it once the body is read: ``receive()`` then only waits for a
    disconnect. ``work`` runs in the calling task, which a disconnect cancels.

    Raises:
        ClientDisconnect: the client went away (the middleware counts it as 499).
    """
    task = asyncio.current_task()
    assert task is not None
    gone = asyncio.ensure_future(request.receive())
    left = False

    def leave(done: asyncio.Future[Any]) -> None:
        nonlocal left
        left = True
        done.exception()  # retrieved (receive() should not raise; if it did, this ends the same)
        task.cancel()

    gone.add_done_callback(leave)
    try:
        return await work
    except asyncio.CancelledError:
        if not left:
            raise
        task.uncancel()
        raise ClientDisconnect() from None
    finally:
        gone.remove_done_callback(leave)
        gone.cancel()
