"""Domain errors. Library code raises these; only the HTTP layer maps them to status codes."""


class EmojiNetError(Exception):
    """Base class for every error EmojiNet raises on purpose."""


class VocabularyError(EmojiNetError, ValueError):
    """A vocabulary is malformed: a duplicate, a non-emoji, an empty list."""


class InvalidImageError(EmojiNetError, ValueError):
    """The bytes are not a decodable image (not an image, truncated, unsupported)."""


class UnsupportedImageFormatError(InvalidImageError):
    """The bytes are an image, but in a format the product does not read (PSD, JPEG 2000 …)."""


class ImageTooLargeError(EmojiNetError, ValueError):
    """The image costs too much to decode: too many pixels, a side too long, an absurd shape."""


class CheckpointError(EmojiNetError, ValueError):
    """A checkpoint or release artifact is missing, corrupt, truncated or does not match."""


class WeightsUnavailableError(EmojiNetError, RuntimeError):
    """Pretrained weights could not be obtained (for instance no network for a download)."""


class ConfigError(EmojiNetError, ValueError):
    """A model or run configuration is invalid: an unknown head, backbone or key."""


class SamplingError(EmojiNetError, ValueError):
    """Emojis cannot be drawn as asked: a bad count, temperature or shape, or all scores zero."""


class FeaturesUnavailableError(EmojiNetError):
    """The inference backend cannot return backbone features (an ONNX file exported without)."""
