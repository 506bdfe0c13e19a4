"""Write the labelled development sets that are not already files: Fashion-MNIST and sample photos.

Each set is a folder under ``data/eval/`` (not in git) with its images and a ``set.json`` in the
quality benchmark's format (a JSON list of ``{file, accept: [emojis], category}``):

  * ``fashion``: a seeded sample of Debian's Fashion-MNIST *test* split (``dataset-fashion-mnist``),
    ``--per-class`` images of each of the 10 classes, stored dark-on-white as the original Zalando
    product photos were (the data set stores them light-on-black);
  * ``samples``: the real photos that ship inside scikit-image and scikit-learn (a cat, a coffee
    cup, a rocket, an astronaut, a motorcycle, a cameraman, coins, the Hubble deep field, a Chinese
    temple, a flower), labelled by eye.

The other development sets are already files: ``../shared/eval-dev/photos.json`` (41 real
photographs) and ``benchmarks/sets/openclipart.json`` (``scripts/build_clipart_set.py``).

    python scripts/build_eval_sets.py [--out data/eval] [--per-class 50]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from training.fashion_mnist import DEFAULT_ROOT as FASHION_DIR
from training.fashion_mnist import read_idx

ROOT = Path(__file__).parents[1]

# Fashion-MNIST class → the emojis a person would accept, most fitting first.
FASHION_CLASSES: list[tuple[str, list[str]]] = [
    ("T-shirt/top", ["👕", "👚"]),
    ("Trouser", ["👖"]),
    ("Pullover", ["🧥", "👕", "👚"]),
    ("Dress", ["👗"]),
    ("Coat", ["🧥"]),
    ("Sandal", ["👡", "🩴"]),
    ("Shirt", ["👔", "👕", "👚"]),
    ("Sneaker", ["👟"]),
    ("Bag", ["👜", "👛", "💼", "🎒"]),
    ("Ankle boot", ["👢", "🥾"]),
]

CAT = ["🐈", "🐱", "😺", "😸", "😹", "😻", "😼", "😽", "🙀", "😿", "😾"]
# Sample photo → (emojis a person would accept, category). Honest labels: what the photo shows.
SAMPLES: dict[str, tuple[list[str], str]] = {
    "chelsea": (CAT, "animals"),
    "coffee": (["☕"], "food & drink"),
    "rocket": (["🚀"], "vehicles & transport"),
    # Eileen Collins in her flight suit before a US flag.
    "astronaut": (["🧑‍🚀", "👩‍🚀", "🚀", "👩", "🇺🇸"], "people"),
    "motorcycle": (["🏍️", "🛵"], "vehicles & transport"),
    "camera": (["📷", "📸", "🎥", "📹"], "people"),
    "coins": (["🪙", "💰"], "objects & indoor scenes"),
    "hubble": (["🌌", "✨", "⭐", "🌟", "🌠", "💫", "🔭"], "space"),
    "china": (["🏯", "⛩️", "🛕", "🏰", "🏛️", "🇨🇳", "🏮"], "buildings, cities & landmarks"),
    "flower": (
        ["🌸", "🌼", "🌺", "🌻", "🌷", "💐", "🌹", "🏵️", "🪷", "🪻", "🥀"],
        "plants & flowers",
    ),
}


def build_fashion(out: Path, per_class: int, seed: int = 0) -> int:
    if not FASHION_DIR.is_dir():
        raise SystemExit(f"{FASHION_DIR} is missing: apt-get install dataset-fashion-mnist")
    images = read_idx(FASHION_DIR / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(FASHION_DIR / "t10k-labels-idx1-ubyte.gz")
    rng = np.random.default_rng(seed)
    (out / "images").mkdir(parents=True, exist_ok=True)
    entries = []
    for cls, (name, accept) in enumerate(FASHION_CLASSES):
        idx = np.sort(rng.choice(np.flatnonzero(labels == cls), size=per_class, replace=False))
        for i in idx:
            file = f"images/t10k-{i:05d}.png"
            Image.fromarray(255 - images[i]).save(out / file)
            entries.append({"file": file, "accept": accept, "category": name})
    _write(out / "set.json", entries)
    return len(entries)


def build_samples(out: Path) -> int:
    import skimage.data as sd
    from sklearn.datasets import load_sample_images

    arrays = {
        "chelsea": sd.chelsea(),
        "coffee": sd.coffee(),
        "rocket": sd.rocket(),
        "astronaut": sd.astronaut(),
        "motorcycle": sd.stereo_motorcycle()[0],
        "camera": sd.camera(),
        "coins": sd.coins(),
        "hubble": sd.hubble_deep_field(),
    }
    sample = load_sample_images()
    for fname, img in zip(sample.filenames, sample.images, strict=True):
        arrays[Path(fname).stem] = img
    (out / "images").mkdir(parents=True, exist_ok=True)
    entries = []
    for name, (accept, category) in SAMPLES.items():
        file = f"images/{name}.jpg"
        Image.fromarray(np.asarray(arrays[name], dtype=np.uint8)).convert("RGB").save(
            out / file, quality=95
        )
        entries.append({"file": file, "accept": accept, "category": category})
    _write(out / "set.json", entries)
    return len(entries)


def _write(path: Path, entries: list[dict[str, object]]) -> None:
    path.write_text(json.dumps(entries, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "eval")
    parser.add_argument("--per-class", type=int, default=50, help="Fashion-MNIST images per class")
    args = parser.parse_args()
    n_fashion = build_fashion(args.out / "fashion", args.per_class)
    n_samples = build_samples(args.out / "samples")
    print(f"wrote {n_fashion} Fashion-MNIST and {n_samples} sample photos under {args.out}")


if __name__ == "__main__":
    main()
