"""The HTTP endpoints. Only this layer (with :mod:`service.errors`) knows about HTTP."""

from __future__ import annotations

import asyncio
import functools
import time
from importlib import resources
from typing import Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.datastructures import UploadFile

from emojinet.errors import ImageTooLargeError, InvalidImageError
from emojinet.sampling import sample_distribution
from service.deps import Authorized, StateDep
from service.gate import GateResult
from service.schemas import (
    DistributionResponse,
    EmojiCount,
    EmojiEntry,
    EmojiFrequency,
    EmojiScore,
    ImageResult,
    MultiSuggestResponse,
    SuggestResponse,
    Timing,
    VocabularyResponse,
)
from service.state import PredictorLike, ServiceState

__all__ = ["router"]

router = APIRouter()

_ACCEPTED = (
    "send multipart/form-data with an 'image' file field (curl -F image=@photo.jpg), "
    "or the raw image bytes with an image/* Content-Type"
)

_SUGGEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "image": {"type": "string", "format": "binary", "description": "One photo."},
                    "images": {
                        "type": "array",
                        "items": {"type": "string", "format": "binary"},
                        "description": "Several photos (repeat the field); one result each.",
                    },
                },
            }
        },
        "image/*": {"schema": {"type": "string", "format": "binary"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    },
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {
        400: "Undecodable image, empty body or malformed multipart",
        401: "Missing or invalid API key (only when keys are configured)",
        408: "The client stopped sending the body",
        413: "Body over the size limit, or too many pixels",
        415: "Not multipart and not an image content type",
        422: "Bad query values, or no 'image' field",
        429: "Queue full; see Retry-After",
        503: "Queue deadline passed, model loading, or shutting down; see Retry-After",
    }
    return {c: {"description": text[c], "content": {"application/json": {}}} for c in codes}


@router.post(
    "/suggest",
    response_model=SuggestResponse | MultiSuggestResponse,
    summary="Suggest emojis for one photo (or several)",
    openapi_extra={"requestBody": _SUGGEST_BODY},
    responses=_errors(400, 401, 408, 413, 415, 422, 429, 503),
)
async def suggest(
    request: Request,
    state: StateDep,
    _auth: Authorized,
    top_k: Annotated[int, Query(ge=1, le=50, description="How many emojis per image.")] = 5,
    threshold: Annotated[
        float | None, Query(ge=0.0, le=1.0, description="Drop emojis scoring below this.")
    ] = None,
) -> SuggestResponse | MultiSuggestResponse:
    """One photo as the multipart field ``image`` or the raw body; several as ``images`` fields."""
    started = time.perf_counter()
    if state.cloudwatch is not None:
        state.cloudwatch.count_request()
    async with state.accept() as (predictor, gate):
        gate.check_admission(1)  # refuse early, before reading and decoding the body
        images, multi = await _read_images(request, state.settings.max_images_per_request)
        arrays = await _preprocess(state, predictor, images, multi)
        results = await gate.submit_many(arrays)
    state.metrics.images.inc(len(results))
    emojis = [_emojis(predictor, r, top_k, threshold) for r in results]
    timing = Timing(
        queue_ms=_ms(max(r.queue_s for r in results)),
        inference_ms=_ms(max(r.inference_s for r in results)),
        total_ms=_ms(time.perf_counter() - started),
    )
    name = predictor.info.name
    if not multi:
        return SuggestResponse(emojis=emojis[0], model=name, timing=timing)
    items = [
        ImageResult(emojis=e, queue_ms=_ms(r.queue_s), inference_ms=_ms(r.inference_s))
        for e, r in zip(emojis, results, strict=True)
    ]
    return MultiSuggestResponse(results=items, model=name, timing=timing)


@router.post(
    "/distribution",
    response_model=DistributionResponse,
    summary="Draw many emojis for one photo: histogram, mode and how stable it is",
    openapi_extra={"requestBody": _SUGGEST_BODY},
    responses=_errors(400, 401, 408, 413, 415, 422, 429, 503),
)
async def distribution(
    request: Request,
    state: StateDep,
    _auth: Authorized,
    n: Annotated[int, Query(ge=1, le=1000, description="How many emojis to draw.")] = 50,
    temperature: Annotated[
        float,
        Query(ge=0.01, le=100.0, description="<1 sharpens, >1 flattens (classifier head only)."),
    ] = 1.0,
    seed: Annotated[
        int | None, Query(ge=0, le=2**63 - 1, description="Makes the draws reproducible.")
    ] = None,
    head: Annotated[
        Literal["classifier", "gan"], Query(description="Which head draws the emojis.")
    ] = "classifier",
) -> DistributionResponse:
    """The same image input and errors as ``/suggest``; one image per request."""
    started = time.perf_counter()
    if state.cloudwatch is not None:
        state.cloudwatch.count_request()
    async with state.accept() as (predictor, gate):
        gate.check_admission(1)
        gan = state.gan
        if head == "gan" and gan is None:  # before reading the body or using the device
            raise HTTPException(400, state.gan_error or "the GAN head is not loaded")
        images, multi = await _read_images(request, state.settings.max_images_per_request)
        if multi:
            raise HTTPException(400, "/distribution takes one photo: send it as the 'image' field")
        arrays = await _preprocess(state, predictor, images, multi)
        (result,) = await gate.submit_many(arrays)
    state.metrics.images.inc()
    probs, features = state.split_row(result.output)
    # Sampling and resampling for the mode's stability are CPU work: off the event loop.
    if head == "gan":
        assert gan is not None and features is not None
        dist = await asyncio.to_thread(gan.distribution, features, n=n, seed=seed)
    else:
        dist = await asyncio.to_thread(
            sample_distribution, probs, predictor.vocab, n=n, temperature=temperature, seed=seed
        )
    return DistributionResponse(
        samples=dist.samples,
        histogram=[EmojiCount(emoji=e, count=c) for e, c in dist.histogram],
        mode=dist.mode,
        mode_stability=dist.mode_stability,
        entropy=dist.entropy,
        top_k=[EmojiFrequency(emoji=e, frequency=f) for e, f in dist.top_k],
        n=n,
        temperature=dist.temperature,
        head=head,
        model=predictor.info.name,
        timing=Timing(
            queue_ms=_ms(result.queue_s),
            inference_ms=_ms(result.inference_s),
            total_ms=_ms(time.perf_counter() - started),
        ),
    )


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


def _emojis(
    predictor: PredictorLike, result: GateResult, k: int, threshold: float | None
) -> list[EmojiScore]:
    return [
        EmojiScore(emoji=s.emoji, name=s.name, score=round(s.score, 6))
        for s in predictor.top_k(result.output[: len(predictor.vocab)], k, threshold)
    ]


async def _read_images(request: Request, max_images: int) -> tuple[list[bytes], bool]:
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
    form = await request.form(max_files=max_images + 1, max_fields=max_images + 16)
    try:
        single, many = form.getlist("image"), form.getlist("images")
        if single and many:
            raise HTTPException(400, "send one 'image' field or several 'images' fields, not both")
        if len(single) > 1:
            raise HTTPException(
                400, "several 'image' fields: send several photos as 'images' fields"
            )
        name, fields = ("images", many) if many else ("image", single)
        if not fields:
            got = ", ".join(repr(k[:40]) for k in sorted(set(form.keys()))[:10])
            raise HTTPException(
                422,
                "the multipart body has no 'image' file field"
                + (f" (it has {got})" if got else "")
                + ": send the photo as -F image=@photo.jpg",
            )
        if len(fields) > max_images:
            raise HTTPException(
                400, f"{len(fields)} images in one request; the limit is {max_images}"
            )
        out = []
        for field in fields:
            if not isinstance(field, UploadFile):
                raise HTTPException(
                    400,
                    f"the {name!r} field must be a file upload (curl -F {name}=@photo.jpg), "
                    "not a text value",
                )
            out.append(await field.read())
        return out, name == "images"
    finally:
        await form.close()


async def _preprocess(
    state: ServiceState, predictor: PredictorLike, images: list[bytes], multi: bool
) -> list[npt.NDArray[np.float32]]:
    """Decode and transform every image in the thread pool, in parallel, off the event loop."""
    loop = asyncio.get_running_loop()
    futures = [loop.run_in_executor(state.preprocess_pool, predictor.preprocess, b) for b in images]
    done = await asyncio.gather(*futures, return_exceptions=True)
    arrays: list[npt.NDArray[np.float32]] = []
    for i, item in enumerate(done):
        if isinstance(item, (InvalidImageError, ImageTooLargeError)) and multi:
            raise type(item)(f"images[{i}]: {item}") from item
        if isinstance(item, BaseException):
            raise item
        arrays.append(item)
    return arrays


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: 503 until the model is loaded and while draining",
    responses=_errors(503),
)
async def readyz(state: StateDep) -> Response:
    if not state.ready or state.predictor is None:
        return JSONResponse(
            {"detail": f"not ready: {state.not_ready_reason()}"},
            status_code=503,
            headers={"Retry-After": "5"},
        )
    return JSONResponse({"status": "ready", "model": state.predictor.info.name})


@router.get("/model", summary="The loaded model", responses=_errors(503))
async def model(state: StateDep) -> dict[str, Any]:
    return state.model_info()


@router.get(
    "/emojis",
    response_model=VocabularyResponse,
    summary="The emojis the model can suggest",
    responses=_errors(503),
)
async def emojis(state: StateDep) -> VocabularyResponse:
    if state.predictor is None:
        state.model_info()  # raises ModelNotReady
    assert state.predictor is not None
    vocab = state.predictor.vocab
    entries = [
        EmojiEntry(emoji=e, name=n) for e, n in zip(vocab.to_list(), vocab.names(), strict=True)
    ]
    return VocabularyResponse(count=len(entries), emojis=entries)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(state: StateDep) -> Response:
    body, content_type = state.metrics.render()
    return Response(body, media_type=content_type)


@functools.cache
def _static_text(name: str) -> str:
    """A page from ``service/static``, read once."""
    return resources.files("service").joinpath(f"static/{name}").read_text("utf-8")


@router.get("/docs", include_in_schema=False)
async def docs() -> HTMLResponse:
    """A self-contained page that renders ``/openapi.json`` (no CDN, works offline)."""
    return HTMLResponse(
        _static_text("docs.html"),
        headers={
            "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline' 'self'; "
            "style-src 'unsafe-inline' 'self'; img-src 'self' data: blob:"
        },
    )


@router.get("/", include_in_schema=False)
async def index() -> HTMLResponse:
    """The web page: pick, drop or paste a photo; its scripts and styles are under ``/static``."""
    return HTMLResponse(
        _static_text("index.html"),
        headers={
            "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
            "img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; "
            "frame-ancestors 'none'"
        },
    )
