"""Two bare ASGI apps for ``benchmarks/bench_floor.py``: what serving costs with nothing else.

Both run under the same uvicorn as ``emojinet serve`` (httptools, the asyncio loop) and take the
same ``POST /suggest`` multipart upload from the same ``wrk`` script:

- ``empty``: reads the body and answers a fixed JSON, after holding each request for
  ``FLOOR_HOLD_S`` seconds so that it can be measured at the rate the real server reached (the
  event loop's cost per request depends on how many requests each of its wake-ups finds).
- ``Minimal`` (an app factory): the same design as ``emojinet serve`` and nothing else: the
  multipart body parsed with python-multipart (``service.multipart``), the photo decoded in a
  pool of two threads, batches of up to 8 in two single-threaded lanes of the same ONNX model,
  the top 5 and their JSON. No admission, deadlines, limits, metrics, logs, request ids,
  disconnect checks, FastAPI or Starlette routing: every guarantee the service gives is left
  out, so it is a floor, not a server to run.

    python -m uvicorn --app-dir benchmarks --factory floor_apps:Minimal --http httptools \
        --loop asyncio
"""

from __future__ import annotations

import asyncio
import json
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from emojinet.predictor import Predictor
from service.multipart import read_parts

BATCH = 8
LANES = 2
_FIXED = json.dumps({"emojis": [{"emoji": "\N{CAT}", "score": 0.368}] * 5}).encode()


async def _answer(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send, startup: Any = None) -> None:
    while (await receive())["type"] != "lifespan.shutdown":
        if startup is not None:
            startup()
        await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})


async def empty(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    while (await receive()).get("more_body"):
        pass
    if scope["path"] == "/suggest":
        await asyncio.sleep(float(os.environ.get("FLOOR_HOLD_S", "0")))
    await _answer(send, 200, _FIXED)


class Minimal:
    def __init__(self) -> None:
        self.predictor = Predictor.load(None, backend="onnx", device="cpu", threads=1)
        self.decoders = ThreadPoolExecutor(2, thread_name_prefix="preprocess")
        self.lanes = ThreadPoolExecutor(LANES, thread_name_prefix="device")
        self.waiting: list[tuple[np.ndarray, asyncio.Future[np.ndarray]]] = []

    def start(self) -> None:
        self.arrived = asyncio.Event()
        self.free = asyncio.Semaphore(LANES)
        self.batcher = asyncio.get_running_loop().create_task(self._batcher())

    async def _batcher(self) -> None:
        while True:
            await self.free.acquire()
            while not self.waiting:
                self.arrived.clear()
                await self.arrived.wait()
            jobs, self.waiting = self.waiting[:BATCH], self.waiting[BATCH:]
            asyncio.get_running_loop().create_task(self._run(jobs))

    async def _run(self, jobs: list[tuple[np.ndarray, asyncio.Future[np.ndarray]]]) -> None:
        try:
            batch = np.stack([x for x, _ in jobs])
            loop = asyncio.get_running_loop()
            out = await loop.run_in_executor(self.lanes, self.predictor.run_batch, batch)
            for (_, future), probs in zip(jobs, out.probs, strict=True):
                future.set_result(probs)
        finally:
            self.free.release()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send, self.start)
            return
        if scope["path"] != "/suggest":
            await _answer(send, 200, b"{}")
            return
        parts = await read_parts(Request(scope, receive), max_parts=16)
        loop = asyncio.get_running_loop()
        x = await loop.run_in_executor(self.decoders, self.predictor.preprocess, parts[0].data)
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self.waiting.append((x, future))
        self.arrived.set()
        probs = await future
        emojis = [
            {"emoji": s.emoji, "score": round(s.score, 6)} for s in self.predictor.top_k(probs, 5)
        ]
        await _answer(send, 200, json.dumps({"emojis": emojis}).encode())
