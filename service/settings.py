"""Service settings: one pydantic-settings class, every field overridable as ``EMOJINET_<NAME>``."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


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

    # Input limits.
    max_body_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    max_pixels: int = Field(default=40_000_000, gt=0)
    max_images_per_request: int = Field(default=16, gt=0)

    # The device gate: batching and backpressure.
    max_batch_size: int = Field(default=32, gt=0)
    max_batch_delay_ms: float = Field(default=2.0, ge=0)
    max_queue: int = Field(default=256, gt=0)
    queue_deadline_s: float = Field(default=1.0, gt=0)
    preprocess_workers: int = Field(default=2, gt=0)

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

    # Optional bearer-token auth for the inference endpoints: comma-separated or a JSON list.
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Emojis never suggested or sampled by any head or endpoint (comma-separated or JSON list).
    deny_list: Annotated[list[str], NoDecode] = Field(default_factory=list)

    drain_timeout_s: float = Field(default=30.0, gt=0)
    # Added by the service: after SIGTERM, keep answering (readyz 503) this long before closing
    # the listener, so a load balancer sees the instance leave; then finish the queued requests.
    drain_grace_s: float = Field(default=0.0, ge=0)
    # Slow clients: a request body must keep arriving (408 otherwise); idle keep-alive
    # connections close after timeout_keep_alive_s; more than max_connections at once → 503.
    body_read_timeout_s: float = Field(default=30.0, gt=0)
    timeout_keep_alive_s: float = Field(default=5.0, gt=0)
    max_connections: int = Field(default=1024, gt=0)
    log_level: str = "info"

    @field_validator("api_keys", "deny_list", mode="before")
    @classmethod
    def _split_keys(cls, v: object) -> object:
        if isinstance(v, str):
            if v.strip().startswith("["):
                return json.loads(v)
            return [k.strip() for k in v.split(",") if k.strip()]
        return v

    @field_validator("deny_list")
    @classmethod
    def _emojis_only(cls, v: list[str]) -> list[str]:
        from emojinet.vocab import normalize_emoji

        bad = [e for e in v if normalize_emoji(e) is None]
        if bad:
            raise ValueError(f"deny_list entries must be emojis; not emojis: {bad}")
        return v
