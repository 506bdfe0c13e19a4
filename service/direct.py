"""``POST /suggest`` answered from the request middleware, without the framework's routing.

Every request shares one event loop, and on a CPU server its time is taken from the model.
A py-spy profile of that thread under load (``benchmarks/profile_serve.py``) put a fifth of its
time in FastAPI and Starlette around the endpoint (routing, solving the dependencies, validating
the returned model again, the exception middleware), about as much as the endpoint's own work.
So the request middleware hands the common request straight to :func:`answer_directly`: the
same API key check (:func:`service.deps.check_api_key`), the same code as the route
(:func:`service.routes.answer_suggest`), the app's own exception handlers for its errors and the
same JSON body, in fewer steps.

The FastAPI route stays the endpoint's definition: its OpenAPI entry, and the answer to every
request this module does not take (:func:`direct_query` says which): a query with anything but
``top_k`` and ``threshold`` in their plain forms and ranges goes there, so whatever FastAPI
would coerce or refuse (``top_k=05``, ``threshold=2``: 422) it still does.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import TypeAdapter
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from service.deps import bearer, check_api_key
from service.routes import DEFAULT_TOP_K, MAX_TOP_K, answer_suggest
from service.schemas import MultiSuggestResponse, SuggestResponse
from service.state import ServiceState

__all__ = ["answer_directly", "direct_query"]

_TOP_K = re.compile(rb"[1-9][0-9]?")
_THRESHOLD = re.compile(rb"[01](?:\.[0-9]{1,17})?")
# What FastAPI serialises the route's answer with (its response_model, by alias).
_ANSWER = TypeAdapter(SuggestResponse | MultiSuggestResponse)


def direct_query(query: bytes) -> tuple[int, float | None] | None:
    """``(top_k, threshold)`` from a query string this module answers, else None.

    Taken: no query, or ``top_k`` (1-50, no leading zero) and ``threshold`` (0-1, plain
    decimal) at most once each and nothing else.
    """
    top_k, threshold = DEFAULT_TOP_K, None
    if not query:
        return top_k, threshold
    seen = set()
    for part in query.split(b"&"):
        name, eq, value = part.partition(b"=")
        if not eq or name in seen:
            return None
        seen.add(name)
        if name == b"top_k" and _TOP_K.fullmatch(value) and int(value) <= MAX_TOP_K:
            top_k = int(value)
        elif name == b"threshold" and _THRESHOLD.fullmatch(value) and float(value) <= 1.0:
            threshold = float(value)
        else:
            return None
    return top_k, threshold


async def answer_directly(scope: Scope, receive: Receive, send: Send) -> bool:
    """Answer an admitted ``POST /suggest`` as the route would, if :func:`direct_query` takes
    it; False (nothing sent) if not. ``scope["app"]`` is the FastAPI app.

    Exceptions with a handler in the app are answered by it, as Starlette's exception middleware
    would; the others propagate to the request middleware (499, 500).
    """
    query = direct_query(scope["query_string"]) if scope["path"] == "/suggest" else None
    if query is None:
        return False
    top_k, threshold = query
    app = scope["app"]
    request = Request(scope, receive)
    response: Response
    try:
        state: ServiceState = app.state.service
        if state.settings.api_keys:
            check_api_key(state, await bearer(request))
        result = await answer_suggest(request, state, top_k, threshold)
        body = _ANSWER.dump_json(result, by_alias=True)
        response = Response(body, media_type="application/json")
    except Exception as exc:
        handler = _handler(app.exception_handlers, exc)
        if handler is None:
            raise
        response = await handler(request, exc)
    await response(scope, receive, send)
    return True


def _handler(handlers: dict[Any, Any], exc: Exception) -> Any:
    """The handler Starlette's exception middleware would pick: by status code for an
    ``HTTPException``, else by the exception's class and then its bases. (Starlette's own
    lookup, ``starlette._exception_handler``, is private: these lines are not worth the risk.)"""
    if isinstance(exc, HTTPException) and exc.status_code in handlers:
        return handlers[exc.status_code]
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
    return None
