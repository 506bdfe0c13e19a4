"""Emoji cards for the gallery: an emoji drawn with Noto Color Emoji beside its top images."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont, ImageOps

from emojinet.errors import EmojiNetError
from emojinet.preprocess import decode_image

__all__ = ["EMOJI_FONT", "card_name", "make_card", "render_emoji", "write_cards"]

log = logging.getLogger(__name__)

EMOJI_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
_EMOJI_FONT_SIZE = 109  # the only size Noto Color Emoji's bitmaps come in


def render_emoji(emoji: str, size: int, *, font_path: Path = EMOJI_FONT) -> Image.Image:
    """The emoji as an RGBA ``size`` x ``size`` image, drawn with Noto Color Emoji at 109 px."""
    font = ImageFont.truetype(str(font_path), _EMOJI_FONT_SIZE)
    canvas = Image.new("RGBA", (160, 160), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((80, 80), emoji, font=font, embedded_color=True, anchor="mm")
    box = canvas.getbbox()
    if box is None:
        raise EmojiNetError(f"the emoji font has no glyph for {emoji!r}")
    glyph = canvas.crop(box)
    glyph.thumbnail((size, size), Image.Resampling.LANCZOS)
    out = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    out.paste(glyph, ((size - glyph.width) // 2, (size - glyph.height) // 2), glyph)
    return out


def _text_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for path in (
        "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
    ):
        if Path(path).is_file():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size)


def make_card(
    emoji: str,
    name: str,
    images: Sequence[tuple[Path, float]],
    *,
    tile: int = 180,
    font_path: Path = EMOJI_FONT,
) -> Image.Image:
    """One emoji (large, with its name) beside its top images and their scores."""
    pad, label_h, head_w = 16, 30, 220
    width = head_w + len(images) * (tile + pad) + pad
    height = tile + label_h + 2 * pad
    card = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(card)
    glyph = render_emoji(emoji, 136, font_path=font_path)
    card.paste(glyph, ((head_w - 136) // 2, pad + 10), glyph)
    title = _text_font(20)
    words = name if len(name) <= 20 else name[:19] + "…"
    draw.text((head_w // 2, pad + 170), words, fill=(40, 40, 48), font=title, anchor="mm")
    small = _text_font(16)
    for j, (path, score) in enumerate(images):
        x = head_w + j * (tile + pad)
        img = decode_image(path.read_bytes(), draft_size=2 * tile)
        thumb = ImageOps.fit(img, (tile, tile), Image.Resampling.LANCZOS)
        card.paste(thumb, (x, pad))
        draw.text(
            (x + tile // 2, pad + tile + label_h // 2 + 2),
            f"#{j + 1} · {_percent(score)}",
            fill=(90, 90, 100),
            font=small,
            anchor="mm",
        )
    return card


def _percent(score: float) -> str:
    return f"{score:.0%}" if score >= 0.1 else f"{score:.1%}" if score >= 0.001 else "<0.1%"


def card_name(emoji: str, name: str) -> str:
    slug = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
    code = "-".join(f"{ord(c):x}" for c in emoji if c != "\ufe0f")
    return f"{slug}-{code}.png"


def write_cards(
    cards_dir: Path,
    emojis: list[dict[str, Any]],
    paths: Sequence[Path],
    *,
    min_score: float,
    max_cards: int,
    per_card: int,
    font_path: Path = EMOJI_FONT,
) -> list[Path]:
    """PNG cards for the emojis that lead (rank first for) an image scoring ``min_score``+.

    ``emojis`` are the gallery's per-emoji summaries (``emoji``, ``name``, ``leads`` and
    ``images``: (image index, score) pairs, best first); at most ``max_cards`` cards of up to
    ``per_card`` images each, none scoring under ``min_score``, the most confident first.
    """
    if not font_path.is_file():
        log.warning("no emoji font at %s (Debian: fonts-noto-color-emoji): no cards", font_path)
        return []
    confident = [
        e for e in emojis if e["leads"] > 0 and e["images"] and e["images"][0][1] >= min_score
    ]
    confident.sort(key=lambda e: -e["images"][0][1])
    cards_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for e in confident[:max_cards]:
        top = [(paths[i], s) for i, s in e["images"] if s >= min_score][:per_card]
        path = cards_dir / card_name(e["emoji"], e["name"])
        try:
            make_card(e["emoji"], e["name"], top, font_path=font_path).save(path, optimize=True)
        except EmojiNetError as exc:
            log.warning("no card for %s: %s", e["emoji"], exc)
            continue
        written.append(path)
    return written
