"""EmojiNet: suggest emojis for photos."""

__version__ = "0.1.0"
