"""The emoji pictures themselves as a training source, each labelled with its emoji: one
vendor's 64-px PNGs from an npm ``emoji-datasource-<vendor>`` package (:func:`vendor_source`;
``emoji.json`` maps ``unified`` code points to ``img/<vendor>/64/<image>``, skin-tone variants
fold to their base emoji) or Debian's Noto Color Emoji font rendered (:func:`noto_source`).
They go to train only and do not count as evidence when the vocabulary is ranked: every emoji
has them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from emojinet.errors import EmojiNetError
from emojinet.gallery_cards import EMOJI_FONT, render_emoji
from emojinet.vocab import current_emojis, normalize_emoji
from training.errors import ManifestError
from training.posts import Post
from training.prepare import PrepareReport
from training.sources import Source

__all__ = ["NOTO", "SIZE", "emoji_image_source", "noto_source", "vendor_source"]

NOTO = "noto"  # the --emoji-images name of the rendered font
SIZE = 64  # the vendors' picture size; Noto is rendered at the same size


def _package(folder: Path) -> tuple[Path, str]:
    """The package folder holding ``emoji.json`` and its one vendor's name."""
    for pkg in (folder / "package", folder):
        img = pkg / "img"
        if (pkg / "emoji.json").is_file() and img.is_dir():
            vendors = sorted(d.name for d in img.iterdir() if (d / str(SIZE)).is_dir())
            if len(vendors) != 1:
                raise ManifestError(
                    f"{img} holds pictures of {vendors or 'no vendor'}: expected one vendor's "
                    f"img/<vendor>/{SIZE}/ folder"
                )
            return pkg, vendors[0]
    raise ManifestError(
        f"{folder} is not an unpacked emoji-datasource package (no emoji.json and img/): fetch "
        "one with `npm pack emoji-datasource-apple` and unpack it there, or run "
        "`make data-emoji500`"
    )


def _char(unified: str) -> str:
    return "".join(chr(int(cp, 16)) for cp in unified.split("-"))


def vendor_source(folder: str | Path) -> Source:
    """Every picture of one vendor's package (``FOLDER`` or ``FOLDER/package``), skin-tone
    variants included, each labelled with its (base) emoji; posts are ``<vendor>/<image>``.

    Raises:
        ManifestError: the folder is not an unpacked package, or ``emoji.json`` is malformed.
    """
    pkg, vendor = _package(Path(folder))
    try:
        table: list[dict[str, Any]] = json.loads((pkg / "emoji.json").read_text("utf-8"))
        pictures = [  # (image, the entry's own code points): a variant is labelled as its base
            (str(v["image"]), str(entry["unified"]))
            for entry in table
            for v in [entry, *entry.get("skin_variations", {}).values()]
        ]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ManifestError(f"{pkg / 'emoji.json'} is not emoji-datasource's table: {exc}") from exc
    read = PrepareReport(read=len(pictures))
    posts: list[Post] = []
    for image, unified in pictures:
        post_id = f"{vendor}/{image}"
        try:
            label = normalize_emoji(_char(unified), fold_skin_tone=True)
        except ValueError:
            label = None
        path = pkg / "img" / vendor / str(SIZE) / image
        if label is None:
            read.drop("not_an_emoji", post_id, unified)  # components: the skin-tone swatches
        elif not path.is_file():
            read.drop("missing_image", post_id)  # vendors do not draw every emoji
        else:
            posts.append(Post(post_id, path, labels=[label], split="train"))
    return Source(vendor, posts, read, evidence=False, capped=False, may_test=False)


def noto_source(
    out: str | Path, *, font: Path = EMOJI_FONT, emojis: Sequence[str] | None = None
) -> Source:
    """Every current emoji (no skin-tone variants; or just ``emojis``) drawn with Noto Color
    Emoji at 64 px, written once to ``out/images/noto/``; emojis the font does not have are
    dropped (``no_glyph``).

    Raises:
        ManifestError: the font is not installed.
    """
    if not font.is_file():
        raise ManifestError(f"{font} not found: apt-get install fonts-noto-color-emoji")
    folder = Path(out) / "images" / NOTO
    folder.mkdir(parents=True, exist_ok=True)
    emojis = current_emojis() if emojis is None else emojis
    read = PrepareReport(read=len(emojis))
    posts: list[Post] = []
    for e in emojis:
        name = "-".join(f"{ord(c):x}" for c in e) + ".png"
        path = folder / name
        if not path.is_file():
            try:
                picture = render_emoji(e, SIZE, font_path=font)
            except EmojiNetError:
                read.drop("no_glyph", f"{NOTO}/{name}", e)
                continue
            picture.save(path.with_suffix(".tmp"), format="PNG")
            path.with_suffix(".tmp").replace(path)
        posts.append(Post(f"{NOTO}/{name}", path, labels=[e], split="train"))
    return Source(NOTO, posts, read, evidence=False, capped=False, may_test=False)


def emoji_image_source(spec: str, out: str | Path) -> Source:
    """``noto`` → :func:`noto_source`; anything else is a vendor package folder."""
    return noto_source(out) if spec == NOTO else vendor_source(spec)
