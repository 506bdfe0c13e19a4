"""The decode stage on an idle server: the header read and the decode in one thread job."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from PIL import Image
from service_helpers import jpeg

from emojinet.errors import InvalidImageError
from service import decoding
from service.decoding import DecodeStage
from service.refusals import DeadlineExceeded


class CountingExecutor(ThreadPoolExecutor):
    def __init__(self, workers: int) -> None:
        super().__init__(workers)
        self.jobs = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.jobs += 1
        return super().submit(fn, *args, **kwargs)


def _png(size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size).save(buf, "PNG")
    return buf.getvalue()


class Preprocess:
    """Counts its calls; sleeps ``delay_s`` in each."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.calls = 0

    def __call__(self, data: bytes) -> np.ndarray:
        self.calls += 1
        time.sleep(self.delay_s)
        return np.full((3, 2, 2), len(data), np.float32)


def _stage(workers: int = 1) -> tuple[DecodeStage, CountingExecutor]:
    executor = CountingExecutor(workers)
    return DecodeStage(executor, workers=workers, max_pixels=40_000_000), executor


def test_one_photo_on_an_idle_stage_is_one_job_header_included() -> None:
    stage, executor = _stage()
    pre = Preprocess()
    photo = jpeg()

    async def main() -> list[Any]:
        return await stage.decode_all(pre, [photo], time.perf_counter() + 5, multi=False)

    with executor:
        (out,) = asyncio.run(main())
    assert executor.jobs == 1 and pre.calls == 1
    assert out[0, 0, 0] == len(photo)
    assert stage.running == 0 and stage.waiting == 0


def test_an_unreadable_photo_on_an_idle_stage_fails_alone_and_frees_its_slot() -> None:
    stage, executor = _stage()
    pre = Preprocess()

    async def main() -> list[Any]:
        with pytest.raises(InvalidImageError):
            await stage.decode_all(pre, [b"not an image"], time.perf_counter() + 5, multi=False)
        # The slot is free again: the next photo is decoded.
        return await stage.decode_all(pre, [jpeg()], time.perf_counter() + 5, multi=False)

    with executor:
        assert len(asyncio.run(main())) == 1
    assert pre.calls == 1  # never called for the unreadable one


def test_a_photo_read_in_the_job_is_priced_for_the_requests_behind_it() -> None:
    """The first photo's header (16 MP) is read in its job; a photo arriving while it decodes
    sees that cost and is refused at once when it cannot be decoded by its deadline."""
    stage, executor = _stage()
    pre = Preprocess(delay_s=1.0)
    big = _png((4000, 4000))

    async def main() -> float:
        first = asyncio.ensure_future(
            stage.decode_all(pre, [big], time.perf_counter() + 10, multi=False)
        )
        while not pre.calls:  # the header is read and the decode has started
            await asyncio.sleep(0.01)
        started = time.perf_counter()
        with pytest.raises(DeadlineExceeded):
            await stage.decode_all(pre, [jpeg()], time.perf_counter() + 0.1, multi=False)
        refused_after = time.perf_counter() - started
        await first
        return refused_after

    with executor:
        refused_after = asyncio.run(main())
    assert refused_after < 0.05, refused_after
    assert pre.calls == 1


def _image(fmt: str, segments: int = 0) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buf, fmt)
    data = buf.getvalue()
    return data[:2] + b"\xff\xfe\x00\x02" * segments + data[2:]  # (JPEG: empty comments)


@pytest.mark.parametrize(
    ("fmt", "segments", "by_pillow"),
    [
        ("JPEG", 0, False),
        ("PNG", 0, False),
        ("GIF", 0, False),
        ("WEBP", 0, True),
        ("JPEG", 100, True),
    ],
    ids=["jpeg", "png", "gif", "webp", "jpeg-long-header"],
)
def test_several_photos_are_priced_from_headers_read_on_the_loop_when_short(
    monkeypatch: pytest.MonkeyPatch, fmt: str, segments: int, by_pillow: bool
) -> None:
    """Short JPEG, PNG and GIF headers are read on the event loop (microseconds); any other
    is read by Pillow in a thread, never on the loop."""
    pillow_threads: list[str] = []
    probe = decoding.probe_image

    def probe_image(data: bytes, **kw: Any) -> Any:
        pillow_threads.append(threading.current_thread().name)
        return probe(data, **kw)

    monkeypatch.setattr(decoding, "probe_image", probe_image)
    stage, executor = _stage(workers=2)
    pre = Preprocess()
    images = [_image(fmt, segments), _image(fmt, segments)]

    async def main() -> list[Any]:
        return await stage.decode_all(pre, images, time.perf_counter() + 5, multi=True)

    with executor:
        assert len(asyncio.run(main())) == 2
    assert executor.jobs == 2 and pre.calls == 2  # one decode job per photo
    assert len(pillow_threads) == (2 if by_pillow else 0)
    assert threading.main_thread().name not in pillow_threads


def _second_photo_while_one_decodes(
    device_wait_s: float,
) -> tuple[Exception | None, CountingExecutor, Preprocess, list[str]]:
    """Two slots; a slow photo takes one, then a small photo comes: its header is read in its
    own decode job (the slot is free at once), and checked against its deadline there."""
    executor = CountingExecutor(2)
    refused: list[str] = []

    class Observer:
        def rejected(self, reason: str) -> None:
            refused.append(reason)

    stage = DecodeStage(
        executor,
        workers=2,
        max_pixels=40_000_000,
        expected_device_wait_s=lambda: device_wait_s,
        observers=[Observer()],  # type: ignore[list-item]
    )
    pre = Preprocess(delay_s=0.3)

    async def main() -> Exception | None:
        first = asyncio.ensure_future(
            stage.decode_all(pre, [jpeg()], time.perf_counter() + 10, multi=False)
        )
        while not pre.calls:
            await asyncio.sleep(0.01)
        assert not stage.idle() and stage.running == 1
        try:
            await stage.decode_all(pre, [jpeg()], time.perf_counter() + 1.0, multi=False)
            error = None
        except DeadlineExceeded as exc:
            error = exc
        await first
        return error

    with executor:
        error = asyncio.run(main())
    return error, executor, pre, refused


def test_a_photo_with_a_slot_free_is_read_and_decoded_in_one_job() -> None:
    error, executor, pre, refused = _second_photo_while_one_decodes(device_wait_s=0.0)
    assert error is None and refused == []
    assert executor.jobs == 2 and pre.calls == 2  # one job each, no header job


def test_a_photo_with_a_slot_free_is_refused_in_its_job_before_decoding_when_late() -> None:
    error, executor, pre, refused = _second_photo_while_one_decodes(device_wait_s=5.0)
    assert error is not None and "queue deadline" in str(error)
    assert executor.jobs == 2 and pre.calls == 1  # read, found late, not decoded
    assert refused == ["deadline"]
