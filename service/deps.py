"""Dependencies for the routes: the service state and the optional API key check."""

from __future__ import annotations

import hmac
from typing import Annotated, cast

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.state import ServiceState

__all__ = ["Authorized", "StateDep", "bearer", "check_api_key", "get_state", "require_api_key"]

bearer = HTTPBearer(auto_error=False, description="Required only when EMOJINET_API_KEYS is set.")


# Both are async on purpose: FastAPI runs a plain ``def`` dependency in a worker thread, a thread
# hop per request that doubled the cost of a refusal.
async def get_state(request: Request) -> ServiceState:
    return cast(ServiceState, request.app.state.service)


StateDep = Annotated[ServiceState, Depends(get_state)]


async def require_api_key(
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """401 unless ``Authorization: Bearer <key>`` names a configured key (no keys: open).

    Guards every endpoint that returns data: the inference endpoints, ``/model``, ``/emojis``
    and ``/metrics`` (a Prometheus scrape sends the key as ``authorization.credentials``).
    """
    check_api_key(state, credentials)


def check_api_key(state: ServiceState, credentials: HTTPAuthorizationCredentials | None) -> None:
    """:func:`require_api_key`'s check (``service.direct`` calls it too)."""
    keys = state.settings.api_keys
    if not keys:
        return
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None or not credentials.credentials:
        raise HTTPException(
            401, "an API key is required: send the header 'Authorization: Bearer <key>'", challenge
        )
    token = credentials.credentials.encode()
    # Compare against every key, in constant time per key, so timing says nothing about keys.
    if not any([hmac.compare_digest(token, k.encode()) for k in keys]):
        raise HTTPException(401, "the API key is not valid", challenge)


Authorized = Annotated[None, Depends(require_api_key)]
