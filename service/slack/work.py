"""What the Slack app does with a photo: fetch it, run it through the service's own pipeline,
and react, reply or answer with the emojis.

Every image goes through the same admission budget, decode stage and device gate as
``POST /suggest`` (so the same limits, the same batches and the same queue-wait metric); a
refusal (the server busy, 429; or the deadline, 503) is retried after its ``Retry-After``, a few
times, then given up with a log line. A file the app will not handle (not an image, over the
body limit by the size Slack reports or while it streams, a failed or slow download, an image
the decoder refuses) is skipped with one INFO line; nothing here raises into Slack's request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

from emojinet.errors import ImageTooLargeError, InvalidImageError
from emojinet.predictor import Suggestion
from service.refusals import DeadlineExceeded, Overloaded, ShuttingDown
from service.settings import Settings
from service.slack.fetch import Fetcher, FetchError
from service.slack.names import reaction_name
from service.state import ModelNotReady, ServiceState

__all__ = ["Recent", "Skipped", "Suggester", "describe", "image_file", "reactions", "share_ts"]

log = logging.getLogger("service.slack")

_ATTEMPTS = 3  # tries through the gate when it is busy


class Skipped(Exception):
    """A photo the app leaves alone, and why (said to the user or logged)."""


class Recent:
    """Keys seen within ``ttl_s`` (the newest ``size`` of them): repeated deliveries drop out."""

    def __init__(self, ttl_s: float = 3600.0, size: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.size = size
        self._seen: OrderedDict[Hashable, float] = OrderedDict()

    def first(self, key: Hashable) -> bool:
        """True the first time ``key`` is seen (and remembers it), False after."""
        now = time.monotonic()
        while self._seen and (
            len(self._seen) >= self.size or next(iter(self._seen.values())) < now - self.ttl_s
        ):
            self._seen.popitem(last=False)
        if key in self._seen:
            return False
        self._seen[key] = now
        return True


class Suggester:
    """Fetches a photo and runs it through the service's pipeline, as ``/suggest`` does."""

    def __init__(
        self, settings: Settings, state: Callable[[], ServiceState | None], fetcher: Fetcher
    ) -> None:
        self.settings = settings
        self.state = state
        self.fetcher = fetcher

    async def for_file(self, file: Mapping[str, Any], k: int) -> list[Suggestion]:
        """Suggestions for a Slack file object (``files.info``), checked before downloading."""
        mimetype = str(file.get("mimetype") or "")
        if not mimetype.startswith("image/"):
            raise Skipped(f"not an image ({mimetype or 'no type'})")
        size, limit = file.get("size"), self.settings.max_body_bytes
        if isinstance(size, int) and size > limit:
            raise Skipped(f"{size / 2**20:.1f} MiB is over the {limit / 2**20:.0f} MiB limit")
        url = file.get("url_private_download") or file.get("url_private")
        if not isinstance(url, str):
            raise Skipped("Slack gave no download URL")
        try:
            data = await self.fetcher.slack_file(url)
        except FetchError as exc:
            raise Skipped(str(exc)) from None
        return await self.for_bytes(data, k)

    async def for_url(self, url: str, k: int) -> list[Suggestion]:
        try:
            data = await self.fetcher.user_url(url)
        except FetchError as exc:
            raise Skipped(str(exc)) from None
        return await self.for_bytes(data, k)

    async def for_bytes(self, data: bytes, k: int) -> list[Suggestion]:
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                return await self._run(data, k)
            except (Overloaded, DeadlineExceeded) as exc:
                if attempt == _ATTEMPTS:
                    raise Skipped(f"the server stayed busy ({exc})") from None
                await asyncio.sleep(exc.retry_after_s)
            except (InvalidImageError, ImageTooLargeError, ShuttingDown, ModelNotReady) as exc:
                raise Skipped(str(exc)) from None
        raise AssertionError("unreachable")

    async def _run(self, data: bytes, k: int) -> list[Suggestion]:
        state = self.state()
        if state is None:
            raise Skipped("the service is not running")
        async with state.accept(None, len(data)) as work:
            deadline = time.perf_counter() + self.settings.queue_deadline_s
            arrays = await work.decoder.decode_all(work.prepare, [data], deadline, multi=False)
            (result,) = await work.gate.submit_many(arrays, deadline=deadline)
        state.metrics.images.inc()
        return work.predictor.top_k(result.output.probs, k, order=result.output.order)


def share_ts(file: Mapping[str, Any], channel: str) -> str | None:
    """The timestamp of the newest message sharing ``file`` in ``channel``, if Slack lists one."""
    shares = file.get("shares") or {}
    stamps = [
        str(entry["ts"])
        for kind in ("public", "private")
        for entry in (shares.get(kind) or {}).get(channel) or []
        if "ts" in entry
    ]
    return max(stamps, key=float) if stamps else None


def image_file(files: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The first image among a message's files."""
    return next((f for f in files if str(f.get("mimetype") or "").startswith("image/")), None)


def reactions(suggestions: Sequence[Suggestion], *, limit: int, min_score: float) -> list[str]:
    """Slack reaction names for the best suggestions scoring ``min_score`` or more; an emoji
    Slack has no name for is skipped (the next one takes its place)."""
    names: list[str] = []
    for s in suggestions:
        if len(names) == limit or s.score < min_score:
            break
        name = reaction_name(s.emoji)
        if name is None:
            log.info("no Slack name for %s (%s): not added as a reaction", s.emoji, s.name)
        elif name not in names:
            names.append(name)
    return names


def describe(suggestions: Sequence[Suggestion]) -> str:
    """One line for people: ``🐈 cat 83% · 🐱 cat face 9%``."""
    if not suggestions:
        return "No emoji fits this photo well enough."
    return " · ".join(f"{s.emoji} {s.name} {100 * s.score:.0f}%" for s in suggestions)
