"""``create_app(settings)``: the FastAPI app, its lifespan and middleware.

One process serves one device: the device lock lives in this process, so run exactly one
uvicorn worker per GPU (``emojinet serve`` does) and scale with more processes/instances.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from emojinet import __version__
from emojinet.errors import ConfigError
from service.admission import Admission, door
from service.direct import answer_directly
from service.drain import Drain
from service.errors import install_error_handlers
from service.metrics import ServiceMetrics
from service.middleware import RequestMiddleware
from service.refusals import RefusalHold
from service.routes import router
from service.settings import Settings, queue_size_before_load
from service.state import PredictorLike, ServiceState

__all__ = ["create_app"]

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().with_name("static")

DESCRIPTION = """Suggests emojis for photos.

`POST /suggest` with a photo (`curl -F image=@cat.jpg localhost:8000/suggest`) answers the best
emojis with their scores. Requests that arrive while the model is busy wait in a bounded queue
and run together in one batch; a full queue answers 429 and a request that waited past the
queue deadline answers 503, both with `Retry-After`. Images are checked from their header
before they are decoded: JPEG, PNG, GIF, WebP, BMP and TIFF only (415 otherwise), and at most
`EMOJINET_MAX_PIXELS` pixels, 20,000 px on a side and 20:1 (413 otherwise).
"""


def create_app(
    settings: Settings | None = None,
    *,
    predictor: PredictorLike | None = None,
    on_load_failure: Callable[[], None] | None = None,
) -> FastAPI:
    """Build the app. The model loads in the background when the lifespan starts.

    Args:
        predictor: use this instead of loading one (tests pass a fake).
        on_load_failure: called when loading the model fails (``emojinet serve`` exits).
    """
    settings = settings or Settings()
    metrics = ServiceMetrics()
    drain = Drain()  # the shutdown clock: the state runs it, the middleware cuts slow bodies
    # The admission budget: the middleware admits, the state sizes and observes it.
    admission = Admission(
        max_inputs=queue_size_before_load(settings), max_bytes=settings.max_pending_bytes
    )

    # Held refusals take at most a quarter of the connections (service.refusals.RefusalHold).
    refusal_hold = RefusalHold(settings.refusal_delay_s, limit=settings.max_connections // 4)
    metrics.held_refusals.set_function(lambda: refusal_hold.held)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = ServiceState(
            settings,
            metrics=metrics,
            on_load_failure=on_load_failure,
            drain=drain,
            admission=admission,
        )
        app.state.service = state
        await state.start(predictor)
        try:
            yield
        finally:
            await state.shutdown()

    app = FastAPI(
        title="EmojiNet",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # the default page loads Swagger UI from a CDN; /docs is served offline
        redoc_url=None,
    )
    app.add_middleware(
        RequestMiddleware,
        metrics=metrics,
        max_body_bytes=settings.max_body_bytes,
        body_read_timeout_s=settings.body_read_timeout_s,
        drain=drain,
        admission=admission,
        refusal_hold=refusal_hold,
        direct=answer_directly,  # POST /suggest without the routing (service.direct)
    )
    install_error_handlers(app)
    app.include_router(router)
    if settings.slack_enabled:
        _mount_slack(app, settings)
    # The web page's scripts and styles (GET / serves its index.html).
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    # For `emojinet serve`'s protocol: refuses inference requests from their first bytes while
    # the image budget is full (the middleware does it for servers without that protocol).
    app.state.door = door(
        admission,
        lambda path: metrics.observe_request(path, "POST", 429, 0.0),
        max_body_bytes=settings.max_body_bytes,
    )
    app.state.refusal_hold = refusal_hold  # the door's refusals wait too (service.protocol)
    return app


def _mount_slack(app: FastAPI, settings: Settings) -> None:
    try:
        from service.slack.bolt import mount_slack
    except ImportError as exc:
        raise ConfigError(
            f"the Slack app is configured but its packages are missing ({exc.name}): "
            "pip install 'emojinet[slack]'"
        ) from None
    mount_slack(app, settings)
    log.info("the Slack app is on: POST /slack/events")
