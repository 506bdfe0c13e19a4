"""The JSON shapes the service answers with (they document themselves in ``/openapi.json``)."""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = [
    "DistributionResponse",
    "DistributionResult",
    "EmojiCount",
    "EmojiEntry",
    "EmojiFrequency",
    "EmojiScore",
    "ImageDistribution",
    "ImageResult",
    "MultiDistributionResponse",
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


class EmojiCount(BaseModel):
    emoji: str
    count: int


class EmojiFrequency(BaseModel):
    emoji: str
    frequency: float


class DistributionResult(BaseModel):
    """One photo's draws and what they say."""

    samples: list[str] = Field(description="The n emojis drawn, in draw order.")
    histogram: list[EmojiCount] = Field(description="Counts of the drawn emojis, most drawn first.")
    mode: str = Field(description="The most drawn emoji (ties: the more probable one).")
    mode_stability: float = Field(
        ge=0.0,
        le=1.0,
        description="Probability that another n draws have the same mode (1,000 resamples).",
    )
    entropy: float = Field(description="Entropy of the sampling distribution, in bits.")
    top_k: list[EmojiFrequency] = Field(description="Empirical frequencies of the top draws.")


class DistributionResponse(DistributionResult):
    n: int
    temperature: float
    head: str = Field(description="'classifier' or 'gan'.")
    model: str
    timing: Timing


class ImageDistribution(DistributionResult):
    queue_ms: float
    inference_ms: float


class MultiDistributionResponse(BaseModel):
    results: list[ImageDistribution] = Field(
        description="One distribution per 'images' field, in order (a seed applies to each)."
    )
    n: int
    temperature: float
    head: str = Field(description="'classifier' or 'gan'.")
    model: str
    timing: Timing
