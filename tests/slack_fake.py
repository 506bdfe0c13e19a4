"""A small stand-in for Slack's Web API on a loopback port, for the Slack app's tests.

It answers the methods the app calls (``auth.test``, ``files.info``, ``reactions.add``,
``chat.postMessage``, ``conversations.history``), serves file downloads (only with the bot
token), takes the ``response_url`` posts of slash commands and shortcuts, and records every call.
``rate_limit_next`` makes the next call of a method answer 429 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

TOKEN = "xoxb-test-token"


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    at: float
    status: int = 200


@dataclass
class FakeSlack:
    base_url: str = ""  # set once the server runs
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    downloads: list[str] = field(default_factory=list)
    responses: list[dict[str, Any]] = field(default_factory=list)
    rate_limit_next: dict[str, int] = field(default_factory=dict)  # method -> Retry-After
    slow_downloads: dict[str, float] = field(default_factory=dict)  # file id -> seconds
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_file(
        self, file_id: str, data: bytes, *, mimetype: str = "image/jpeg",
        channel: str = "C1", ts: str = "1700000000.000100", size: int | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Register a file shared in ``channel`` by the message ``ts``."""
        file = {
            "id": file_id,
            "name": f"{file_id}.jpg",
            "mimetype": mimetype,
            "size": len(data) if size is None else size,
            "url_private": f"{self.base_url}/files/{file_id}",
            "url_private_download": f"{self.base_url}/files/{file_id}?download=1",
            "shares": {"public": {channel: [{"ts": ts}]}},
        }
        self.files[file_id] = file
        self.blobs[file_id] = data
        return file

    def called(self, method: str) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.method == method and c.status == 200]

    def wait_for_response(self, timeout_s: float = 20.0) -> dict[str, Any]:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            with self.lock:
                if self.responses:
                    return self.responses[-1]
            time.sleep(0.02)
        raise AssertionError("nothing was posted to the response_url")

    # -- the server ----------------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/health", lambda _: PlainTextResponse("ok")),
                Route("/api/{method}", self._api, methods=["GET", "POST"]),
                Route("/files/{file_id}", self._download),
                Route("/respond/{key}", self._respond, methods=["POST"]),
            ]
        )

    async def _api(self, request: Request) -> Response:
        method = request.path_params["method"]
        args: dict[str, Any] = dict(request.query_params)
        if request.method == "POST":
            if request.headers.get("content-type", "").startswith("application/json"):
                args.update(await request.json())
            else:
                args.update(dict(await request.form()))
        with self.lock:
            retry_after = self.rate_limit_next.pop(method, None)
            status = 429 if retry_after is not None else 200
            self.calls.append(Call(method, args, time.monotonic(), status))
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return JSONResponse({"ok": False, "error": "invalid_auth"})
        if retry_after is not None:
            return JSONResponse(
                {"ok": False, "error": "ratelimited"},
                status_code=429,
                headers={"Retry-After": str(retry_after)},
            )
        return JSONResponse(self._answer(method, args))

    def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {"ok": True, "team_id": "T1", "user_id": "UBOT", "bot_id": "BBOT"}
        if method == "files.info":
            file = self.files.get(str(args.get("file")))
            return {"ok": True, "file": file} if file else {"ok": False, "error": "file_not_found"}
        if method == "conversations.history":
            messages = self.history.get(str(args.get("channel")))
            if messages is None:
                return {"ok": False, "error": "not_in_channel"}
            return {"ok": True, "messages": messages}
        if method in ("reactions.add", "chat.postMessage"):
            return {"ok": True}
        return {"ok": False, "error": "unknown_method"}

    async def _download(self, request: Request) -> Response:
        file_id = request.path_params["file_id"]
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return PlainTextResponse("no token", status_code=403)
        with self.lock:
            self.downloads.append(file_id)
        if file_id not in self.blobs:
            return PlainTextResponse("gone", status_code=404)
        await asyncio.sleep(self.slow_downloads.get(file_id, 0.0))
        return Response(self.blobs[file_id], media_type=self.files[file_id]["mimetype"])

    async def _respond(self, request: Request) -> Response:
        with self.lock:
            self.responses.append(await request.json())
        return PlainTextResponse("ok")
