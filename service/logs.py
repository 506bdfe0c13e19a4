"""Logging for ``emojinet serve``: one handler on the root logger, JSON or text, request ids.

Every line (the service's, the library's, uvicorn's own ``uvicorn.error`` and ``uvicorn.access``,
Python warnings) goes through one stderr handler. In JSON mode a line is one object::

    {"time": "2026-11-27T23:30:01.123+00:00", "level": "INFO", "logger": "uvicorn.access",
     "message": "127.0.0.1:50412 - \\"POST /suggest HTTP/1.1\\" 200", "request_id": "9f2c..."}

``request_id`` is there when the line was written while handling a request: the middleware puts
the id in :data:`REQUEST_ID` and :class:`RequestIdFilter` copies it onto each record. The JSON is
python-json-logger's; CloudWatch Logs Insights reads its fields as they are.
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

__all__ = ["REQUEST_ID", "RequestIdFilter", "configure_logging", "log_settings"]

log = logging.getLogger(__name__)

# The id of the request being handled in this context (each uvicorn request runs in its own task,
# so its own copy of the context); None outside requests.
REQUEST_ID: ContextVar[str | None] = ContextVar("emojinet_request_id", default=None)

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RequestIdFilter(logging.Filter):
    """Copies the current request id onto a record as ``request_id`` (only inside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        rid = REQUEST_ID.get()
        if rid is not None:
            record.request_id = rid
        return True


class _JsonFormatter(JsonFormatter):
    """python-json-logger with ISO 8601 UTC times."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


class _TextFormatter(logging.Formatter):
    """The classic one-line format, with ``[request id …]`` after the message in a request."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        rid = getattr(record, "request_id", None)
        return f"{line} [request id {rid}]" if rid else line


def json_formatter() -> logging.Formatter:
    """time, level, logger, message, then any extras (``request_id``, ``settings``)."""
    return _JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        # uvicorn adds a coloured copy of some messages; the plain one is enough.
        reserved_attrs=[*RESERVED_ATTRS, "color_message"],
    )


def configure_logging(log_format: Literal["json", "text"], level: str) -> None:
    """Send every log line to stderr in ``log_format``; service and library at ``level``.

    uvicorn must be given ``log_config=None`` so that its loggers keep no handlers of their own
    and propagate here (it still sets their levels from its ``log_level``).
    """
    handler = logging.StreamHandler()  # stderr
    handler.setFormatter(json_formatter() if log_format == "json" else _TextFormatter(_TEXT_FORMAT))
    handler.addFilter(RequestIdFilter())
    # The server owns the process's logging: this replaces the CLI's basicConfig handler. Other
    # libraries stay at the root's level (WARNING, INFO with ``emojinet -v``).
    logging.basicConfig(handlers=[handler], force=True)
    for name in ("service", "emojinet"):
        logging.getLogger(name).setLevel(level.upper())
    logging.captureWarnings(True)  # a library's warning is a log line too, not a raw stderr one


def log_settings(settings: dict[str, Any], log_format: Literal["json", "text"]) -> None:
    """Log the effective settings (already masked) once, as one line."""
    if log_format == "json":
        log.info("effective settings", extra={"settings": settings})
    else:
        log.info("effective settings: %s", json.dumps(settings, ensure_ascii=False))
