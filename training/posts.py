"""Reading the posts a data set is prepared from: a manifest (JSONL or CSV of image, caption
and optional id, hashtags, emoji) with :func:`read_posts`, or a labelled folder tree
``ROOT/<emoji or emoji name>/*.jpg`` with :func:`folder_posts`; each gives :class:`Post` s."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import emoji as emoji_lib

from emojinet.vocab import normalize_emoji
from training.errors import ManifestError

__all__ = ["IMAGE_SUFFIXES", "Post", "folder_label", "folder_posts", "read_posts"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
_IMAGE_KEYS = ("image", "image_path", "path", "file", "filename")
_CAPTION_KEYS = ("caption", "text")


@dataclass
class Post:
    """One input post. ``emoji`` is the emoji the post was collected for, when known.

    ``source`` names where it came from (the report counts per source); ``split`` forces its
    split; ``key`` is what its split is hashed from (a content digest; default: the id).
    """

    id: str
    image: Path
    caption: str = ""
    hashtags: list[str] | None = None
    emoji: str | None = None
    labels: list[str] = field(default_factory=list)  # set by the filters (or a labelled folder)
    source: str = ""
    split: str | None = None
    key: str | None = None


def _pick(row: dict[str, Any], keys: Sequence[str]) -> Any:
    for k in keys:
        if k in row and row[k] not in (None, ""):
            return row[k]
    return None


def read_posts(path: str | Path) -> list[Post]:
    """Read a posts manifest: JSONL (one object a line) or CSV with a header.

    Columns: ``image`` (or image_path/path/file), ``caption`` (or text); optional ``id``,
    ``hashtags`` (list, or a space/comma separated string) and ``emoji`` (the emoji the post
    was collected for). Relative image paths are relative to the manifest's folder.

    Raises:
        ManifestError: unreadable file, bad JSON, missing columns, duplicate ids.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest {path} does not exist")
    rows: list[tuple[int, dict[str, Any]]] = []
    try:
        with path.open(encoding="utf-8", newline="") as f:
            if path.suffix.lower() == ".csv":
                reader = csv.DictReader(f)
                fields = set(reader.fieldnames or [])
                _check_columns(fields, path, "the CSV header")
                rows = [(i, dict(r)) for i, r in enumerate(reader, 2)]
            else:
                for i, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise ManifestError(f"{path}:{i}: not valid JSON ({exc.msg})") from None
                    if not isinstance(obj, dict):
                        raise ManifestError(f"{path}:{i}: expected a JSON object per line")
                    rows.append((i, obj))
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{path} is not UTF-8 text") from exc
    if not rows:
        raise ManifestError(f"{path} holds no posts")
    posts: list[Post] = []
    seen: dict[str, int] = {}
    for lineno, row in rows:
        if path.suffix.lower() != ".csv":
            _check_columns(
                set(k for k, v in row.items() if v not in (None, "")), path, f"line {lineno}"
            )
        image = Path(str(_pick(row, _IMAGE_KEYS)))
        if not image.is_absolute():
            image = path.parent / image
        post_id = str(row.get("id") or row.get("post_id") or _pick(row, _IMAGE_KEYS))
        if post_id in seen:
            raise ManifestError(
                f"{path}:{lineno}: duplicate id {post_id!r} (first on line {seen[post_id]})"
            )
        seen[post_id] = lineno
        tags = row.get("hashtags")
        if tags == "":
            tags = None  # an empty CSV cell: unknown, parse them from the caption
        if isinstance(tags, str):
            tags = [t.lstrip("#") for t in tags.replace(",", " ").split() if t.strip("#")]
        elif tags is not None and not isinstance(tags, list):
            raise ManifestError(f"{path}:{lineno}: hashtags must be a list or a string")
        posts.append(
            Post(
                id=post_id,
                image=image,
                caption=str(_pick(row, _CAPTION_KEYS) or ""),
                hashtags=[str(t) for t in tags] if tags is not None else None,
                emoji=str(row["emoji"]) if row.get("emoji") else None,
            )
        )
    return posts


def _check_columns(fields: set[str], path: Path, where: str) -> None:
    missing = []
    if not fields & set(_IMAGE_KEYS):
        missing.append("image")
    if not fields & set(_CAPTION_KEYS):
        missing.append("caption")
    if missing:
        raise ManifestError(
            f"{path}: {where} lacks column(s) {', '.join(missing)}; a manifest needs "
            f"image ({'/'.join(_IMAGE_KEYS)}) and caption ({'/'.join(_CAPTION_KEYS)}), "
            "optionally id, hashtags and emoji"
        )


def folder_label(name: str) -> str | None:
    """A folder name as an emoji: an emoji or a CLDR name/alias (``cat_face``, ``cat face``)."""
    e = normalize_emoji(name, fold_skin_tone=True)
    if e is not None:
        return e
    key = ":" + name.strip().lower().replace(" ", "_").replace("-", "_") + ":"
    for lang in ("en", "alias"):
        out = emoji_lib.emojize(key, language=lang)
        if out != key:
            return normalize_emoji(out, fold_skin_tone=True)
    return None


def folder_posts(root: str | Path) -> list[Post]:
    """A labelled tree ``ROOT/<emoji or name>/*.jpg``: one post per image, labelled by folder."""
    root = Path(root)
    if not root.is_dir():
        raise ManifestError(f"image folder {root} does not exist")
    posts: list[Post] = []
    bad: list[str] = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        label = folder_label(sub.name)
        if label is None:
            bad.append(sub.name)
            continue
        for img in sorted(sub.rglob("*")):
            if img.suffix.lower() in IMAGE_SUFFIXES:
                rel = img.relative_to(root).as_posix()
                posts.append(Post(id=rel, image=img, labels=[label]))
    if bad:
        raise ManifestError(
            f"{root}: folder name(s) {bad[:5]} are neither emojis nor emoji names "
            "(use e.g. '🐱', 'cat_face' or 'cat face')"
        )
    if not posts:
        raise ManifestError(f"{root} holds no images in <emoji>/ subfolders")
    return posts
