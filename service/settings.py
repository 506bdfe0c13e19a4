"""Service settings: one pydantic-settings class, every field overridable as ``EMOJINET_<NAME>``."""

from __future__ import annotations

import json
import os
import re
from typing import Annotated, Any, Literal, Self

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# RFC 6750's b64token: what a bearer token may contain.
_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


class Settings(BaseSettings):
    """Everything the service can be told.

    ``EMOJINET_MAX_BATCH_SIZE=16`` sets ``max_batch_size``.
    """

    model_config = SettingsConfigDict(env_prefix="EMOJINET_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    # Release artifact (a .safetensors file with its .json metadata);
    # empty = the built-in zero-shot model.
    model: str = ""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    backend: Literal["auto", "torch", "onnx"] = "auto"
    # EmojiGAN release for POST /distribution?head=gan (empty: no GAN head). It must have been
    # trained on this model's features (`emojinet train-gan --model MODEL`); otherwise it is
    # refused at start-up and head=gan answers 400 saying why.
    gan_model: str = ""

    # Input limits. Images are also refused, from their header, over 20,000 px on a side, beyond
    # 20:1, or in a format other than JPEG, PNG, GIF, WebP, BMP, TIFF (emojinet.preprocess).
    max_body_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    max_pixels: int = Field(default=40_000_000, gt=0)
    max_images_per_request: int = Field(default=16, gt=0)

    # Admission, batching and backpressure. max_queue: images admitted and not yet answered,
    # whether their body is being read, they wait for or are in the decode pool, or wait for or
    # run on the device (0: 256 on a GPU; on a CPU 24 per model lane, about half a second of
    # work, so that what is admitted is answered well within the deadline); max_pending_bytes:
    # the body bytes those requests hold. Beyond either, 429 before the body is read.
    # queue_deadline_s counts from the body's arrival and covers decoding. refusal_delay_s: an
    # overload refusal (429, or a 503 decided before the work) is answered this long after the
    # request arrived, so that clients which retry at once without heeding Retry-After cannot
    # turn cheap refusals into a flood that starves the admitted work (0: at once).
    # 0: 32 on a GPU; 8 on a CPU, where a pass costs the same per image at any batch size and
    # smaller batches cut the slowest answers (benchmarks/bench_serve.py).
    max_batch_size: int = Field(default=0, ge=0)
    max_batch_delay_ms: float = Field(default=2.0, ge=0)
    max_queue: int = Field(default=0, ge=0)
    max_pending_bytes: int = Field(default=128 * 1024 * 1024, gt=0)
    queue_deadline_s: float = Field(default=1.0, gt=0)
    refusal_delay_s: float = Field(default=1.0, ge=0, le=60)
    preprocess_workers: int = Field(default=2, gt=0)
    # Forward passes that may run at once. 0: one per CPU core on a CPU, each pass on one thread
    # (more photos a second than one pass on every core: benchmarks/bench_serve.py), and one on
    # a GPU.
    model_lanes: int = Field(default=0, ge=0)

    # CloudWatch: disabled unless a namespace and region are set.
    cloudwatch_enabled: bool = False
    cloudwatch_namespace: str = "EmojiNet"
    cloudwatch_region: str = ""
    cloudwatch_endpoint_url: str = ""  # for moto or a VPC endpoint
    cloudwatch_interval_s: float = Field(default=60.0, gt=0)
    cloudwatch_high_resolution: bool = False
    cloudwatch_dimensions: dict[str, str] = Field(default_factory=dict)
    cloudwatch_use_instance_metadata: bool = True
    cloudwatch_max_buffer: int = Field(default=10_000, gt=0)

    # Optional bearer-token auth: comma-separated or a JSON list. When set, every endpoint that
    # returns data (/suggest, /distribution, /model, /emojis, /metrics) needs a key; the probes
    # (/healthz, /readyz), the page and the docs stay open. Set but empty refuses to start.
    # Secret: the start-up settings line shows each key as "***".
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list, json_schema_extra={"secret": True}
    )
    # Emojis never suggested or sampled by any head or endpoint (comma-separated or JSON list).
    deny_list: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # After SIGTERM the process exits within drain_timeout_s (+ about 1 s): accepted requests
    # finish until then, and whatever still waits (a body still arriving, an image not yet
    # decoded or run) is answered 503. The first drain_grace_s of it the listener stays open
    # (readyz 503) so a load balancer sees the instance leave.
    drain_timeout_s: float = Field(default=30.0, gt=0)
    drain_grace_s: float = Field(default=0.0, ge=0)
    # Slow clients: a request body must keep arriving (408 otherwise); a connection must send
    # its request headers within header_timeout_s of opening (or of its previous answer) or it is
    # closed; idle keep-alive connections close after timeout_keep_alive_s; more than
    # max_connections at once → 503.
    body_read_timeout_s: float = Field(default=30.0, gt=0)
    header_timeout_s: float = Field(default=10.0, gt=0)
    timeout_keep_alive_s: float = Field(default=5.0, gt=0)
    max_connections: int = Field(default=1024, gt=0)
    # The Slack app (service/slack, needs the `slack` extra): on when both of these are set, and
    # POST /slack/events exists only then. Secrets: the settings line masks them.
    slack_signing_secret: str = Field(default="", json_schema_extra={"secret": True})
    slack_bot_token: str = Field(default="", json_schema_extra={"secret": True})
    slack_api_url: str = "https://slack.com/api/"  # Slack's Web API (a stand-in for tests)
    # Reactions on a shared photo: the best slack_reactions emojis scoring slack_min_score or
    # more (a score is the chance a person accepts the emoji); optionally a thread reply too.
    slack_reactions: int = Field(default=3, ge=0, le=10)
    slack_min_score: float = Field(default=0.2, ge=0.0, le=1.0)
    slack_reply_in_thread: bool = False
    slack_download_timeout_s: float = Field(default=10.0, gt=0)
    # /emojinet <url> fetches only from public addresses unless this is set.
    slack_allow_private_urls: bool = False
    # With the torch backend on CUDA: decode JPEGs on the GPU, a batch at a time (nvJPEG),
    # instead of in the decode threads (other formats always decode on the CPU).
    gpu_decode: bool = True
    log_level: str = "info"
    # json: one JSON object a line (time, level, logger, message, request_id in a request), what
    # CloudWatch Logs Insights reads field by field; text: one plain line, for a terminal.
    log_format: Literal["json", "text"] = "json"

    @property
    def slack_enabled(self) -> bool:
        return bool(self.slack_signing_secret and self.slack_bot_token)

    def for_log(self) -> dict[str, Any]:
        """The settings as JSON-ready values, every secret field's values masked as "***"."""
        out = self.model_dump(mode="json")
        for name, field in type(self).model_fields.items():
            extra = field.json_schema_extra
            if isinstance(extra, dict) and extra.get("secret"):
                value = out[name]
                out[name] = ["***"] * len(value) if isinstance(value, list) else "***" * bool(value)
        return out

    @field_validator("api_keys", "deny_list", mode="before")
    @classmethod
    def _split_keys(cls, v: object, info: ValidationInfo) -> object:
        if not isinstance(v, str):
            return v
        if v.strip().startswith("["):
            try:
                items = json.loads(v)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not a valid JSON list ({exc.msg})") from None
        else:
            items = [k.strip() for k in v.split(",") if k.strip()]
        if info.field_name == "api_keys" and not items:  # blank would silently turn auth off
            raise ValueError(
                "it is set but holds no key: give comma-separated keys, "
                "or unset EMOJINET_API_KEYS to run without authentication"
            )
        return items

    @field_validator("api_keys")
    @classmethod
    def _keys_sendable(cls, v: list[str]) -> list[str]:
        bad = [i for i, k in enumerate(v) if not _TOKEN.fullmatch(k)]
        if bad:
            raise ValueError(
                f"key(s) number {', '.join(str(i + 1) for i in bad)} cannot be sent as "
                "'Authorization: Bearer <key>': use letters, digits and -._~+/= only"
            )
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.max_pending_bytes < self.max_body_bytes:
            raise ValueError(
                "max_pending_bytes must be at least max_body_bytes, or no body of the maximum "
                "size could ever be admitted"
            )
        if bool(self.slack_signing_secret) != bool(self.slack_bot_token):
            raise ValueError(
                "the Slack app needs both EMOJINET_SLACK_SIGNING_SECRET and "
                "EMOJINET_SLACK_BOT_TOKEN (or neither, to leave it off)"
            )
        if self.drain_grace_s >= self.drain_timeout_s:
            raise ValueError("drain_grace_s must be shorter than drain_timeout_s")
        return self

    @field_validator("deny_list")
    @classmethod
    def _emojis_only(cls, v: list[str]) -> list[str]:
        from emojinet.vocab import normalize_emoji

        bad = [e for e in v if normalize_emoji(e) is None]
        if bad:
            raise ValueError(f"deny_list entries must be emojis; not emojis: {bad}")
        return v


def cpu_cores() -> int:
    """The cores this process may run on (its affinity mask, which containers narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def model_lanes(configured: int, device: str) -> int:
    """How many forward passes run at once: ``configured``, or (0) one per core on a CPU and
    one on a GPU."""
    if configured:
        return configured
    return 1 if device.startswith("cuda") else cpu_cores()


def cpu_threads_per_lane(configured_lanes: int) -> int:
    """Intra-op threads of one forward pass on a CPU: the cores shared among the lanes."""
    return max(1, cpu_cores() // (configured_lanes or cpu_cores()))


def queue_size(configured: int, device: str, lanes: int) -> int:
    """The most images admitted at once: ``configured``, or (0) 256 on a GPU and 24 per lane on
    a CPU (a CPU lane answers about 50 photos a second: half a second of work each)."""
    if configured:
        return configured
    return 256 if device.startswith("cuda") else 24 * lanes


def queue_size_before_load(s: Settings) -> int:
    """The admission limit until the model's device is known: sized for the CPU (the state
    resizes it for the model's device when the model is loaded)."""
    return queue_size(s.max_queue, "cpu", model_lanes(s.model_lanes, "cpu"))


def batch_size(configured: int, device: str) -> int:
    """The most inputs in one forward pass: ``configured``, or (0) 32 on a GPU and 8 on a CPU."""
    if configured:
        return configured
    return 32 if device.startswith("cuda") else 8
