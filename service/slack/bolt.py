"""The Slack app on Bolt: the listeners, and the one route Slack sends everything to.

Slack posts Events API callbacks, the ``/emojinet`` slash command and the "Suggest emojis"
message shortcut to ``POST /slack/events``. The route checks the request's signature first (HMAC
of the body with the signing secret, timestamp within 5 minutes: 401 with a JSON ``detail``
otherwise, before anything runs), then hands it to Bolt, which answers the URL-verification
handshake, acknowledges at once (Slack allows 3 seconds) and runs the listener in the background:

- ``file_shared``: a photo shared in a channel the app is in gets its best emojis as reactions
  (and, with ``EMOJINET_SLACK_REPLY_IN_THREAD``, a thread reply with the scores). A delivery Slack
  repeats (``X-Slack-Retry-Num``, or the same file announced twice) reacts once.
- ``/emojinet [image URL]``: suggestions for the URL, or for the newest image in the channel,
  answered only to the user who asked (ephemeral).
- the message shortcut ``suggest_emojis``: the same for the message's image.

Web API calls go through ``slack_sdk``'s client, which waits out a rate limit (HTTP 429 and its
``Retry-After``) with ``asyncio.sleep`` and tries again, up to three times.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from slack_bolt.adapter.fastapi.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from emojinet.predictor import Suggestion
from service.settings import Settings
from service.slack.fetch import Fetcher, token_hosts
from service.slack.work import (
    Recent,
    Skipped,
    Suggester,
    describe,
    image_file,
    reactions,
    share_ts,
)
from service.state import ServiceState

__all__ = ["SHORTCUT_ID", "SLASH_COMMAND", "mount_slack"]

log = logging.getLogger("service.slack")

SLASH_COMMAND = "/emojinet"
SHORTCUT_ID = "suggest_emojis"
REPLAY_WINDOW_S = 300
_SHOWN = 5  # suggestions in a reply or an answer
_SHARE_WAITS_S = (1.0, 2.0, 4.0)  # a new upload's share can take a moment to be listed

Respond = Callable[..., Awaitable[Any]]
Ack = Callable[[], Awaitable[None]]


def mount_slack(app: FastAPI, settings: Settings) -> None:
    """Add ``POST /slack/events``, served by the Slack app (settings must enable it)."""
    bolt = build_app(settings, lambda: getattr(app.state, "service", None))
    handler = AsyncSlackRequestHandler(bolt)
    verifier = SignatureVerifier(settings.slack_signing_secret)

    async def slack_events(request: Request) -> Response:
        body = await request.body()
        refusal = _refuse(verifier, request, body)
        if refusal is not None:
            log.warning("Slack request refused: %s", refusal)
            return JSONResponse({"detail": refusal}, status_code=401)
        return await handler.handle(request)

    app.add_api_route(
        "/slack/events",
        slack_events,
        methods=["POST"],
        summary="Slack's Events API, slash command and shortcut requests (signed by Slack)",
        response_class=JSONResponse,
    )


def _refuse(verifier: SignatureVerifier, request: Request, body: bytes) -> str | None:
    """Why a request is not from Slack, or None when it is signed and fresh."""
    stamp = request.headers.get("x-slack-request-timestamp", "")
    signature = request.headers.get("x-slack-signature", "")
    if not stamp or not signature:
        return "no X-Slack-Signature and X-Slack-Request-Timestamp: only Slack may call this"
    if not stamp.isdigit() or abs(time.time() - int(stamp)) > REPLAY_WINDOW_S:
        return "the request timestamp is over 5 minutes from now (a replayed request?)"
    if not verifier.is_valid(body, stamp, signature):
        return "the signature does not match the body and the signing secret"
    return None


def build_app(settings: Settings, state: Callable[[], ServiceState | None]) -> AsyncApp:
    """The Bolt app with its three listeners."""
    client = AsyncWebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url)
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=3))
    fetcher = Fetcher(
        token=settings.slack_bot_token,
        token_hosts=token_hosts(settings.slack_api_url),
        max_bytes=settings.max_body_bytes,
        timeout_s=settings.slack_download_timeout_s,
        allow_private=settings.slack_allow_private_urls,
    )
    listeners = _Listeners(settings, Suggester(settings, state, fetcher))
    bolt = AsyncApp(client=client, signing_secret=settings.slack_signing_secret, logger=log)
    bolt.event("file_shared")(listeners.file_shared)
    bolt.command(SLASH_COMMAND)(listeners.command)
    bolt.message_shortcut(SHORTCUT_ID)(listeners.shortcut)
    return bolt


class _Listeners:
    def __init__(self, settings: Settings, suggester: Suggester) -> None:
        self.settings = settings
        self.suggester = suggester
        self.recent = Recent()

    async def file_shared(self, event: dict[str, Any], client: AsyncWebClient) -> None:
        file_id, channel = str(event.get("file_id") or ""), str(event.get("channel_id") or "")
        if not file_id or not channel:
            return
        if not self.recent.first((channel, file_id)):
            log.info("file %s in %s: a repeated delivery, already handled", file_id, channel)
            return
        try:
            file, ts = await self._shared_file(client, file_id, channel)
            suggestions = await self.suggester.for_file(file, _SHOWN)
            s = self.settings
            for name in reactions(
                suggestions, limit=s.slack_reactions, min_score=s.slack_min_score
            ):
                await _react(client, channel, ts, name)
            if s.slack_reply_in_thread:
                await client.chat_postMessage(
                    channel=channel, thread_ts=ts, text=describe(suggestions)
                )
        except Skipped as why:
            log.info("file %s in %s skipped: %s", file_id, channel, why)
            return
        except SlackApiError as exc:
            log.warning("file %s in %s: Slack answered %s", file_id, channel, _error(exc))
            return
        log.info("file %s in %s: %s", file_id, channel, describe(suggestions))

    async def _shared_file(
        self, client: AsyncWebClient, file_id: str, channel: str
    ) -> tuple[dict[str, Any], str]:
        """The file and the message that shared it (listed a moment after a fresh upload)."""
        for wait_s in (*_SHARE_WAITS_S, None):
            file: dict[str, Any] = (await client.files_info(file=file_id))["file"]
            ts = share_ts(file, channel)
            if ts is not None:
                return file, ts
            if wait_s is None or not str(file.get("mimetype") or "").startswith("image/"):
                break
            await asyncio.sleep(wait_s)
        raise Skipped("Slack lists no message sharing it in the channel")

    async def command(
        self, ack: Ack, command: dict[str, Any], respond: Respond, client: AsyncWebClient
    ) -> None:
        await ack()
        await _answer(respond, self._for_command(command, client))

    async def _for_command(
        self, command: dict[str, Any], client: AsyncWebClient
    ) -> list[Suggestion]:
        text = str(command.get("text") or "").strip()
        if text:
            url = text.strip("<>").split("|", 1)[0]  # Slack sends links as <url|label>
            return await self.suggester.for_url(url, _SHOWN)
        file = await _newest_image(client, str(command.get("channel_id") or ""))
        return await self.suggester.for_file(file, _SHOWN)

    async def shortcut(
        self, ack: Ack, shortcut: dict[str, Any], respond: Respond, client: AsyncWebClient
    ) -> None:
        await ack()
        await _answer(respond, self._for_shortcut(shortcut, client))

    async def _for_shortcut(
        self, shortcut: dict[str, Any], client: AsyncWebClient
    ) -> list[Suggestion]:
        found = image_file((shortcut.get("message") or {}).get("files") or [])
        if found is None:
            raise Skipped("that message has no image")
        file = (await client.files_info(file=str(found.get("id"))))["file"]
        return await self.suggester.for_file(file, _SHOWN)


async def _answer(respond: Respond, work: Awaitable[list[Suggestion]]) -> None:
    """Tell the user who asked, and only them, the suggestions or why there are none."""
    try:
        text = describe(await work)
    except Skipped as why:
        text = f"No suggestions: {why}."
    except SlackApiError as exc:
        text = f"No suggestions: Slack answered {_error(exc)}."
    await respond(text=text, response_type="ephemeral")


async def _newest_image(client: AsyncWebClient, channel: str) -> dict[str, Any]:
    try:
        history = await client.conversations_history(channel=channel, limit=50)
    except SlackApiError as exc:
        raise Skipped(f"cannot read this channel ({_error(exc)}): invite me to it") from None
    for message in history.get("messages") or []:
        found = image_file(message.get("files") or [])
        if found is not None:
            return dict(found)
    raise Skipped("no image among the channel's last 50 messages: give an image URL")


async def _react(client: AsyncWebClient, channel: str, ts: str, name: str) -> None:
    try:
        await client.reactions_add(channel=channel, timestamp=ts, name=name)
    except SlackApiError as exc:
        if _error(exc) != "already_reacted":
            raise


def _error(exc: SlackApiError) -> str:
    return str(exc.response.get("error") or exc.response.status_code)
