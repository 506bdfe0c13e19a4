"""Downloading an image for the Slack app: bounded in bytes and time, and never to a private
address unless told to.

Files shared in Slack come from Slack (``url_private_download``) and need the bot token. An
image URL given to ``/emojinet`` comes from a user: it is fetched without the token (unless it
is on one of Slack's file hosts) and only from public addresses, checked by the resolver the
connection itself uses (so a DNS answer cannot change between the check and the connection,
and redirects are checked too); ``EMOJINET_SLACK_ALLOW_PRIVATE_URLS`` lifts that check for a
Slack stand-in on a private network (and the tests).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

__all__ = ["FetchError", "Fetcher", "token_hosts"]

_CHUNK = 64 * 1024


class FetchError(Exception):
    """Why an image was not downloaded: said to the user or logged, never raised to Slack."""


class _PublicOnlyResolver(AbstractResolver):
    """Resolves like aiohttp does and refuses any answer that is not a global address."""

    def __init__(self) -> None:
        self._resolver = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = await self._resolver.resolve(host, port, family)
        for answer in answers:
            address = ipaddress.ip_address(answer["host"])
            if not address.is_global:
                raise FetchError(f"{host} is a private address ({address}): not fetched")
        return answers

    async def close(self) -> None:
        await self._resolver.close()


@dataclass(frozen=True)
class Fetcher:
    """Downloads at most ``max_bytes`` within ``timeout_s``.

    Args:
        token: the bot token, sent only to ``token_hosts`` (Slack's API and file hosts).
        allow_private: fetch user-given URLs from private addresses too.
    """

    token: str
    token_hosts: frozenset[str]
    max_bytes: int
    timeout_s: float
    allow_private: bool = False

    async def slack_file(self, url: str) -> bytes:
        """A file's bytes from the URL Slack gave for it (with the bot token)."""
        return await self._get(url, with_token=True, public_only=False)

    async def user_url(self, url: str) -> bytes:
        """An image from a URL a user typed (the token only if it is a Slack file URL)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchError(f"not an http(s) URL: {url[:200]}")
        slack_host = parts.hostname.lower() in self.token_hosts
        return await self._get(
            url, with_token=slack_host, public_only=not (slack_host or self.allow_private)
        )

    async def _get(self, url: str, *, with_token: bool, public_only: bool) -> bytes:
        headers = {"Authorization": f"Bearer {self.token}"} if with_token else {}
        connector = aiohttp.TCPConnector(resolver=_PublicOnlyResolver() if public_only else None)
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        try:
            async with (
                aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
                session.get(url, headers=headers, max_redirects=3) as response,
            ):
                return await self._body(response)
        except TimeoutError:
            raise FetchError(f"the download took over {self.timeout_s:g} s") from None
        except aiohttp.ClientError as exc:
            raise FetchError(f"the download failed: {exc}") from None

    async def _body(self, response: aiohttp.ClientResponse) -> bytes:
        if response.status != 200:
            raise FetchError(f"the download answered HTTP {response.status}")
        length = response.content_length
        if length is not None and length > self.max_bytes:
            raise FetchError(_too_large(length, self.max_bytes))
        chunks: list[bytes] = []
        got = 0
        async for chunk in response.content.iter_chunked(_CHUNK):
            got += len(chunk)
            if got > self.max_bytes:
                raise FetchError(_too_large(got, self.max_bytes, streaming=True))
            chunks.append(chunk)
        return b"".join(chunks)


def _too_large(size: int, limit: int, *, streaming: bool = False) -> str:
    where = "over" if streaming else "of"
    return f"the file is {where} {size / 2**20:.1f} MiB; the limit is {limit / 2**20:.0f} MiB"


def token_hosts(api_url: str) -> frozenset[str]:
    """Where the bot token may go: the Web API's host and Slack's file hosts."""
    hosts = {"files.slack.com", "slack-files.com", urlsplit(api_url).hostname or ""}
    return frozenset(h.lower() for h in hosts if h)
