"""Fashion-MNIST (Debian ``dataset-fashion-mnist``) as an emoji data set: the built-in real demo.

The ten classes map to nine emojis: Pullover and Coat are both 🧥 (there is no separate emoji),
so the vocabulary has 9 entries and top-1 is scored on emoji labels: predicting 🧥 for a
pullover is correct. The official 10,000-image test split stays the test split; the 60,000
training images are split into train/val by a seeded hash of their id.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from emojinet.vocab import Vocabulary
from training.errors import ManifestError
from training.posts import Post
from training.prepare import FilterConfig, PrepareReport, filter_posts
from training.sources import Source

__all__ = [
    "CLASSES",
    "DEFAULT_ROOT",
    "EMOJIS",
    "fashion_mnist_posts",
    "fashion_mnist_source",
    "prepare_fashion_mnist",
    "read_idx",
]

DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")
CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
EMOJIS = ("👕", "👖", "🧥", "👗", "🧥", "👡", "👔", "👟", "👜", "👢")
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def read_idx(path: str | Path) -> npt.NDArray[np.uint8]:
    """Read an IDX file (optionally gzipped): uint8 array of the stored shape."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except (OSError, EOFError) as exc:
        raise ManifestError(f"cannot read {path}: {exc} (expected a gzipped IDX file)") from exc
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise ManifestError(f"{path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ManifestError(f"{path}: expected {shape} values, found {data.size} (truncated?)")
    return data.reshape(shape)


def vocabulary() -> Vocabulary:
    """The nine emojis in class order (🧥 once)."""
    return Vocabulary.from_emojis(dict.fromkeys(EMOJIS))


def fashion_mnist_posts(
    out: str | Path,
    *,
    root: str | Path = DEFAULT_ROOT,
    limit: int | None = None,
    per_class: int | None = None,
) -> tuple[list[Post], dict[str, str]]:
    """Write the images as PNGs under ``out/images/`` and return labelled posts plus forced splits.

    ``limit`` keeps the first N images of each official split (for quick runs and tests);
    ``per_class`` the first N of each class in each official split.
    """
    root, out = Path(root), Path(out)
    posts: list[Post] = []
    splits: dict[str, str] = {}
    for split, (img_name, label_name) in _FILES.items():
        img_file, label_file = root / img_name, root / label_name
        if not img_file.is_file() or not label_file.is_file():
            raise ManifestError(
                f"Fashion-MNIST not found in {root} "
                "(install it: apt-get install dataset-fashion-mnist)"
            )
        images, labels = read_idx(img_file), read_idx(label_file)
        if len(images) != len(labels):
            raise ManifestError(f"{img_file} and {label_file} hold different numbers of items")
        if limit is not None:
            images, labels = images[:limit], labels[:limit]
        if per_class is not None:
            first = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(10)])
            keep = np.sort(first)
            images, labels, index = images[keep], labels[keep], keep
        else:
            index = np.arange(len(labels))
        folder = out / "images" / split
        folder.mkdir(parents=True, exist_ok=True)
        for i, img, label in zip(index.tolist(), images, labels, strict=True):
            post_id = f"{split}-{i:05d}"
            path = folder / f"{i:05d}.png"
            if not path.is_file():
                Image.fromarray(img, mode="L").save(path, optimize=False, compress_level=1)
            post = Post(id=post_id, image=path, labels=[EMOJIS[int(label)]])
            if split == "test":
                splits[post_id] = post.split = "test"
            posts.append(post)
    return posts, splits


def fashion_mnist_source(
    out: str | Path,
    *,
    root: str | Path = DEFAULT_ROOT,
    limit: int | None = None,
    per_class: int | None = None,
) -> Source:
    """Fashion-MNIST for :func:`training.sources.mix_sources`: the official test split stays
    test, the training images split train/val by id; not capped (``per_class`` sizes it); its
    nine-emoji vocabulary when it is the only source."""
    posts, _ = fashion_mnist_posts(out, root=root, limit=limit, per_class=per_class)
    return Source.of(
        "fashion-mnist", posts, capped=False, may_test=False, check_images=False, vocab=vocabulary()
    )


def prepare_fashion_mnist(
    out: str | Path, *, root: str | Path = DEFAULT_ROOT, limit: int | None = None
) -> tuple[list[Post], Vocabulary, dict[str, str], PrepareReport]:
    """Posts, vocabulary, forced splits and report for :func:`training.prepare.write_dataset`."""
    posts, splits = fashion_mnist_posts(out, root=root, limit=limit)
    report = PrepareReport()
    cfg = FilterConfig(max_hashtags=None, cap_per_emoji=None, check_images=False)
    kept, vocab = filter_posts(posts, cfg, vocab=vocabulary(), report=report)
    return kept, vocab, splits, report
