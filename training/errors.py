"""Training's domain errors: what a person running ``emojinet prepare | train | train-gan |
evaluate`` can get wrong (a data folder, an option, a checkpoint to resume), raised as
:class:`~emojinet.errors.EmojiNetError` so the CLI prints one line instead of a traceback."""

from __future__ import annotations

from emojinet.errors import CheckpointError, EmojiNetError

__all__ = ["DataError", "ManifestError", "OptionsError", "ResumeError", "TrainingError"]


class TrainingError(EmojiNetError):
    """Base class of every error the training package raises on purpose."""


class DataError(TrainingError, ValueError):
    """A data set cannot be used as asked: a missing split, another vocabulary, no labels."""


class ManifestError(DataError):
    """A posts manifest or data set folder is malformed (missing columns, bad rows, no emojis)."""


class OptionsError(TrainingError, ValueError):
    """An option, or a combination of options, that cannot work; the message says which."""


class ResumeError(TrainingError, CheckpointError):
    """The checkpoint to resume from belongs to another run (backbone, vocabulary, features)."""
