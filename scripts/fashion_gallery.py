"""The gallery acceptance check on Fashion-MNIST: are each clothing emoji's top images that garment?

    python scripts/fashion_gallery.py --model artifacts/fashion-demo/MODEL --out runs/fg

Writes the official test split (Debian ``dataset-fashion-mnist``) as PNGs in OUT/images/<class>/,
runs the gallery on them, and prints, per emoji, how many of its top-N images are of a class
that maps to that emoji. Exits 1 if any emoji's top images include another garment.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from PIL import Image

from emojinet.gallery import GalleryConfig, build_gallery
from emojinet.predictor import Predictor
from training.fashion_mnist import CLASSES, DEFAULT_ROOT, EMOJIS, read_idx


def export_test_images(out: Path, limit: int | None) -> int:
    images = read_idx(DEFAULT_ROOT / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(DEFAULT_ROOT / "t10k-labels-idx1-ubyte.gz")
    n = len(images) if limit is None else min(limit, len(images))
    for i in range(n):
        folder = out / CLASSES[labels[i]].replace("/", "-")
        path = folder / f"{i:05d}.png"
        if not path.exists():
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i]).save(path)
    return n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--model", required=True, help="the fine-tuned Fashion-MNIST release")
    parser.add_argument("--out", type=Path, default=Path("runs/fashion-gallery"))
    parser.add_argument("--top-n", type=int, default=8)
    parser.add_argument("--limit", type=int, default=None, help="only the first N test images")
    args = parser.parse_args()
    images = args.out / "images"
    n = export_test_images(images, args.limit)
    print(f"{n} Fashion-MNIST test images in {images}")
    predictor = Predictor.load(args.model, backend="auto", device="auto")
    result = build_gallery(images, predictor, args.out / "report", GalleryConfig(top_n=args.top_n))
    print(f"scored {result.scored}, {result.cached} from the cache; {len(result.cards)} cards")
    report = json.loads((args.out / "report" / "gallery.json").read_text(encoding="utf-8"))
    emoji_of = {c.replace("/", "-"): e for c, e in zip(CLASSES, EMOJIS, strict=True)}
    ok = True
    print(f"{'emoji':6} {'name':22} top-{args.top_n} of that garment   top images' classes")
    for entry in (e for e in report["emojis"] if e["emoji"] in EMOJIS):  # the clothing emojis
        classes = [report["images"][t["image"]]["path"].split("/")[0] for t in entry["top"]]
        right = sum(emoji_of[c] == entry["emoji"] for c in classes)
        ok &= right == len(classes)
        print(f"{entry['emoji']:6} {entry['name'][:22]:22} {right}/{len(classes):<20} {classes}")
    print(f"report: {args.out / 'report' / 'index.html'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
