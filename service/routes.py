"""The HTTP endpoints. Only this layer (with :mod:`service.errors`) knows about HTTP."""

from __future__ import annotations

import asyncio
import functools
import time
from importlib import resources
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from emojinet.gan_head import GanHead
from emojinet.sampling import Distribution, sample_distribution
from service.deps import Authorized, StateDep
from service.gate import GateResult
from service.inputs import body_bytes, read_images, ticket_of, unless_gone
from service.schemas import (
    DistributionResponse,
    EmojiCount,
    EmojiEntry,
    EmojiFrequency,
    EmojiScore,
    ImageDistribution,
    ImageResult,
    MultiDistributionResponse,
    MultiSuggestResponse,
    SuggestResponse,
    Timing,
    VocabularyResponse,
)
from service.state import Accepted, PredictorLike, ServiceState

__all__ = ["DEFAULT_TOP_K", "MAX_TOP_K", "answer_suggest", "router"]

router = APIRouter()

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
        413: "Body over the size limit; too many pixels, a side over 20,000 px or beyond 20:1; "
        "more images than the server ever takes at once",
        415: "Not multipart and not an image content type, or an image format other than JPEG, "
        "PNG, GIF, WebP, BMP, TIFF",
        422: "Bad query values, or no 'image' field",
        429: "Busy: the admission budget is full (refused before the body is read); "
        "see Retry-After",
        503: "Queue deadline passed, model loading, or shutting down; see Retry-After",
    }
    return {c: {"description": text[c], "content": {"application/json": {}}} for c in codes}


DEFAULT_TOP_K = 5
MAX_TOP_K = 50


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
    top_k: Annotated[
        int, Query(ge=1, le=MAX_TOP_K, description="How many emojis per image.")
    ] = DEFAULT_TOP_K,
    threshold: Annotated[
        float | None, Query(ge=0.0, le=1.0, description="Drop emojis scoring below this.")
    ] = None,
) -> SuggestResponse | MultiSuggestResponse:
    """One photo as the multipart field ``image`` or the raw body; several as ``images`` fields.

    Most requests are answered by :mod:`service.direct` with the same code, without routing."""
    return await answer_suggest(request, state, top_k, threshold)


async def answer_suggest(
    request: Request, state: ServiceState, top_k: int, threshold: float | None
) -> SuggestResponse | MultiSuggestResponse:
    """``/suggest``'s work once the request is authorised and its query valid."""
    started = time.perf_counter()
    settings = state.settings
    # Admitted (or refused 429/503) before a byte of the body is read.
    async with state.accept(ticket_of(request), body_bytes(request, settings)) as work:
        predictor = work.predictor
        images, multi = await read_images(request, settings.max_images_per_request)
        work.ticket.resize(len(images))  # 413 if they could never fit, 429 if not now
        deadline = time.perf_counter() + settings.queue_deadline_s  # covers decoding too
        results = await unless_gone(request, _decode_and_run(work, images, deadline, multi))
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
    response_model=DistributionResponse | MultiDistributionResponse,
    summary="Draw many emojis for one photo (or several): histogram, mode and how stable it is",
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
) -> DistributionResponse | MultiDistributionResponse:
    """The same image input, limits and errors as ``/suggest``: one photo as the multipart field
    ``image`` or the raw body, several as ``images`` fields (one distribution each)."""
    started = time.perf_counter()
    settings = state.settings
    async with state.accept(ticket_of(request), body_bytes(request, settings)) as work:
        predictor = work.predictor
        gan = state.gan if head == "gan" else None
        if head == "gan" and gan is None:  # before reading the body or using the device
            raise HTTPException(400, state.gan_error or "the GAN head is not loaded")
        images, multi = await read_images(request, settings.max_images_per_request)
        work.ticket.resize(len(images))  # 413 if they could never fit, 429 if not now
        deadline = time.perf_counter() + settings.queue_deadline_s  # covers decoding too
        run = _decode_and_run(work, images, deadline, multi, features=gan is not None)
        results = await unless_gone(request, run)
    state.metrics.images.inc(len(results))
    # Sampling and resampling for the mode's stability are CPU work: off the event loop.
    dists = [
        await asyncio.to_thread(_draw, predictor, gan, r, n=n, temperature=temperature, seed=seed)
        for r in results
    ]
    common: dict[str, Any] = {
        "n": n,
        "temperature": dists[0].temperature,
        "head": head,
        "model": predictor.info.name,
        "timing": Timing(
            queue_ms=_ms(max(r.queue_s for r in results)),
            inference_ms=_ms(max(r.inference_s for r in results)),
            total_ms=_ms(time.perf_counter() - started),
        ),
    }
    if not multi:
        return DistributionResponse(**_described(dists[0]), **common)
    items = [
        ImageDistribution(**_described(d), queue_ms=_ms(r.queue_s), inference_ms=_ms(r.inference_s))
        for d, r in zip(dists, results, strict=True)
    ]
    return MultiDistributionResponse(results=items, **common)


def _draw(
    predictor: PredictorLike,
    gan: GanHead | None,
    result: GateResult,
    *,
    n: int,
    temperature: float,
    seed: int | None,
) -> Distribution:
    """One image's ``n`` draws, by the GAN head when given, else from the classifier's scores."""
    row = result.output
    if gan is not None:
        return gan.distribution(row.require_features(), n=n, seed=seed)
    return sample_distribution(row.probs, predictor.vocab, n=n, temperature=temperature, seed=seed)


def _described(dist: Distribution) -> dict[str, Any]:
    """The fields of :class:`DistributionResult` for one image's draws."""
    return {
        "samples": dist.samples,
        "histogram": [EmojiCount(emoji=e, count=c) for e, c in dist.histogram],
        "mode": dist.mode,
        "mode_stability": dist.mode_stability,
        "entropy": dist.entropy,
        "top_k": [EmojiFrequency(emoji=e, frequency=f) for e, f in dist.top_k],
    }


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


async def _decode_and_run(
    work: Accepted, images: list[bytes], deadline: float, multi: bool, *, features: bool = False
) -> list[GateResult]:
    gate, decoder = work.gate, work.decoder
    if not multi and decoder.idle() and gate.idle_for(1):  # a lone request: one thread job
        run = functools.partial(gate.run_made, features=features)
        return [await decoder.decode_in(run, work.prepare, images[0], deadline)]
    arrays = await decoder.decode_all(work.prepare, images, deadline, multi=multi)
    return await gate.submit_many(arrays, deadline=deadline, features=features)


def _emojis(
    predictor: PredictorLike, result: GateResult, k: int, threshold: float | None
) -> list[EmojiScore]:
    return [
        EmojiScore(emoji=s.emoji, name=s.name, score=round(s.score, 6))
        for s in predictor.top_k(result.output.probs, k, threshold, result.output.order)
    ]


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


@router.get("/model", summary="The loaded model", responses=_errors(401, 503))
async def model(state: StateDep, _auth: Authorized) -> dict[str, Any]:
    return state.model_info()


@router.get(
    "/emojis",
    response_model=VocabularyResponse,
    summary="The emojis the model can suggest (the deny-listed ones left out)",
    responses=_errors(401, 503),
)
async def emojis(state: StateDep, _auth: Authorized) -> VocabularyResponse:
    if state.predictor is None:
        state.model_info()  # raises ModelNotReady
    assert state.predictor is not None
    vocab, denied = state.predictor.vocab, state.predictor.denied.tolist()
    entries = [
        EmojiEntry(emoji=e, name=n)
        for e, n, deny in zip(vocab.to_list(), vocab.names(), denied, strict=True)
        if not deny  # the deny-list: never suggested or drawn, so not listed either
    ]
    return VocabularyResponse(count=len(entries), emojis=entries)


@router.get(
    "/metrics", summary="Prometheus metrics", response_class=Response, responses=_errors(401)
)
async def metrics(state: StateDep, _auth: Authorized) -> Response:
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
    return HTMLResponse(_static_text("index.html"))  # the middleware adds the page's CSP
