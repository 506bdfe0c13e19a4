# locust's ResponseContextManager.success/failure carry no annotations.
# mypy: disable-error-code="no-untyped-call"
"""Load test: real photos to /suggest (multipart) and /distribution (raw JPEG body).

Answers the service gives on purpose under overload, 429 (queue full) and 503 (queue deadline),
each with a ``Retry-After`` header, are shed load, not failures: they are recorded under their
own names (``/suggest [shed 429]``) so the CSV counts them apart. Anything else that is not a
well-formed 200 is a failure.

    locust -f deploy/loadtest/locustfile.py --host http://127.0.0.1:8000 \\
        --headless -u 32 -r 8 -t 60s --exclude-tags distribution

``deploy/loadtest/run.py`` starts a server and runs this for you. ``/distribution`` is tagged
``distribution`` so a run can leave it out with ``--exclude-tags distribution``.
"""

from __future__ import annotations

import importlib.util
import io
import itertools
import json
import os
import random
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from locust import between, tag, task
from locust.contrib.fasthttp import FastHttpUser, ResponseContextManager
from PIL import Image

SHED_STATUSES = frozenset({429, 503})
# Longest side of the photos sent, in pixels (phone photos are larger; the service resizes).
MAX_SIDE = int(os.environ.get("EMOJINET_LOADTEST_MAX_SIDE", "640"))
API_KEY = os.environ.get("EMOJINET_LOADTEST_API_KEY", "")


def _photos() -> list[tuple[str, np.ndarray]]:
    """Real photos that ship inside installed packages (no download)."""
    import skimage.data

    photos = [
        (name, getattr(skimage.data, name)())
        for name in ("chelsea", "coffee", "rocket", "astronaut")
    ]
    # scikit-learn's sample photos (china, flower), read as files: importing sklearn takes ~2 s.
    spec = importlib.util.find_spec("sklearn")
    if spec is not None and spec.submodule_search_locations:
        images = Path(spec.submodule_search_locations[0]) / "datasets" / "images"
        for path in sorted(images.glob("*.jpg")):
            with Image.open(path) as image:
                photos.append((path.stem, np.asarray(image.convert("RGB"))))
    return photos


def encode_photos(max_side: int = MAX_SIDE) -> list[tuple[str, bytes]]:
    """The photos as JPEG bytes, encoded once at start-up."""
    encoded = []
    for name, array in _photos():
        image = Image.fromarray(array).convert("RGB")
        image.thumbnail((max_side, max_side))
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=90)
        encoded.append((name, buf.getvalue()))
    return encoded


PHOTOS = encode_photos()


def multipart(field: str, filename: str, data: bytes, content_type: str) -> tuple[bytes, str]:
    """A one-file multipart/form-data body and its Content-Type header."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
        f'filename="{filename}"\r\nContent-Type: {content_type}\r\n\r\n'
    ).encode()
    body = head + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def check(
    response: ResponseContextManager, name: str, valid: Callable[[dict[str, Any]], str | None]
) -> None:
    """Mark the response: 200 + valid body passes, intended shedding is renamed, else fails."""
    status = response.status_code
    if status in SHED_STATUSES:
        if response.headers is None or response.headers.get("Retry-After") is None:
            response.failure(f"{status} without Retry-After")
        else:
            response.request_meta["name"] = f"{name} [shed {status}]"
            response.success()
        return
    if status != 200:
        response.failure(f"unexpected {status}: {(response.text or '')[:200]}")
        return
    try:
        problem = valid(json.loads(response.content or b""))
    except (ValueError, TypeError, KeyError) as e:
        problem = f"bad body: {e!r}"
    if problem:
        response.failure(problem)
    else:
        response.success()


def valid_suggest(body: dict[str, Any]) -> str | None:
    emojis = body["emojis"]
    if not isinstance(emojis, list) or not emojis:
        return "no emojis"
    if not all({"emoji", "name", "score"} <= set(e) for e in emojis):
        return f"malformed emoji entry: {emojis[0]}"
    if not {"queue_ms", "inference_ms", "total_ms"} <= set(body["timing"]):
        return "timing missing"
    return None


def valid_distribution(body: dict[str, Any]) -> str | None:
    missing = {"samples", "histogram", "mode", "mode_stability", "entropy"} - set(body)
    return f"missing {sorted(missing)}" if missing else None


class PhotoUser(FastHttpUser):
    """A client that sends one photo at a time, with a short think time."""

    wait_time = between(0.0, 0.05)

    def on_start(self) -> None:
        order = PHOTOS[:]
        random.shuffle(order)
        self._photos: Iterator[tuple[str, bytes]] = itertools.cycle(order)
        self._auth = {"Authorization": f"Bearer {API_KEY}"} if API_KEY else {}

    @task(10)
    def suggest(self) -> None:
        name, jpeg = next(self._photos)
        body, content_type = multipart("image", f"{name}.jpg", jpeg, "image/jpeg")
        with self.client.post(
            "/suggest?top_k=5",
            data=body,  # type: ignore[arg-type]  # bytes work; the stub says str
            headers={"Content-Type": content_type, **self._auth},
            name="/suggest",
            catch_response=True,
        ) as response:
            check(response, "/suggest", valid_suggest)

    @tag("distribution")
    @task(1)
    def distribution(self) -> None:
        _, jpeg = next(self._photos)
        with self.client.post(
            "/distribution?n=32",
            data=jpeg,  # type: ignore[arg-type]
            headers={"Content-Type": "image/jpeg", **self._auth},
            name="/distribution",
            catch_response=True,
        ) as response:
            check(response, "/distribution", valid_distribution)
