"""The JSON shapes the service answers with (they document themselves in ``/openapi.json``)."""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = [
    "EmojiEntry",
    "EmojiScore",
    "ImageResult",
    "MultiSuggestResponse",
    "SuggestResponse",
    "Timing",
    "VocabularyResponse",
]


class EmojiScore(BaseModel):
    emoji: str = Field(examples=["🐱"])
    name: str = Field(examples=["cat face"])
    score: float = Field(ge=0.0, le=1.0, description="The model's probability for this emoji.")


class Timing(BaseModel):
    queue_ms: float = Field(
        description="Waiting for the device (arrival in the queue → batch start)."
    )
    inference_ms: float = Field(description="The forward pass of the batch this image ran in.")
    total_ms: float = Field(description="The whole request inside the server.")


class SuggestResponse(BaseModel):
    emojis: list[EmojiScore]
    model: str = Field(description="The model's name; GET /model has the details.")
    timing: Timing


class ImageResult(BaseModel):
    emojis: list[EmojiScore]
    queue_ms: float
    inference_ms: float


class MultiSuggestResponse(BaseModel):
    results: list[ImageResult] = Field(description="One result per 'images' field, in order.")
    model: str
    timing: Timing


class EmojiEntry(BaseModel):
    emoji: str
    name: str


class VocabularyResponse(BaseModel):
    count: int
    emojis: list[EmojiEntry]
