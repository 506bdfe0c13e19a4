"""Backbone outputs of the development sets and of the emoji pictures, computed once and cached.

For every image: the ImageNet logits (1000,) and pooled features (D,) of a backbone, under two
views: ``center`` (short side to resize_size, centre crop) and ``full`` (the whole picture
squashed to the input size). For every current emoji: the same for its pictures by four vendors
(npm ``emoji-datasource-{apple,google,twitter,facebook}``, 64 px PNGs). The knob search of
``scripts/tune_zeroshot.py`` then never runs a backbone again.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from emojinet.backbones import Backbone, get_backbone
from emojinet.preprocess import load_image
from emojinet.presets import eval_preset
from training.suggestions import LabelledImage, load_set

ROOT = Path(__file__).parents[1]
CACHE = ROOT / "data" / "cache"
VIEWS = ("center", "full")
VENDORS = ("apple", "google", "twitter", "facebook")
NPM_DIR = ROOT / "data" / "npm"  # `make concept-map` unpacks emoji-datasource-* here

DEV_SETS: dict[str, Path] = {
    "photos": ROOT.parent / "shared" / "eval-dev" / "photos.json",
    "clipart": ROOT / "benchmarks" / "sets" / "openclipart.json",
    "fashion": ROOT / "data" / "eval" / "fashion" / "set.json",
    "samples": ROOT / "data" / "eval" / "samples" / "set.json",
}


def dev_sets() -> dict[str, list[LabelledImage]]:
    return {name: load_set(path) for name, path in DEV_SETS.items() if path.is_file()}


class _LogitsAndFeatures(torch.nn.Module):
    def __init__(self, backbone: Backbone) -> None:
        super().__init__()
        assert backbone.imagenet_head is not None
        self.backbone, self.head = backbone, backbone.imagenet_head

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.backbone.forward_features(images)  # (N, D)
        return self.head(f), f  # (N, 1000), (N, D)


def _session(backbone_name: str) -> tuple[Any, Backbone]:
    """ONNX Runtime session of the backbone (several times faster than torch eager on a CPU)."""
    import onnxruntime as ort

    backbone = get_backbone(backbone_name).eval()
    path = CACHE / f"{backbone_name}.onnx"
    if not path.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        size = backbone.default_preprocess.input_size
        program = torch.onnx.export(
            _LogitsAndFeatures(backbone).eval(),
            (torch.zeros(2, 3, size, size),),
            dynamo=True,
            input_names=["images"],
            output_names=["logits", "features"],
            dynamic_shapes={"images": {0: torch.export.Dim("batch", min=1, max=4096)}},
            verbose=False,
        )
        assert program is not None
        program.save(str(path), external_data=False)
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]), backbone


def _run(backbone_name: str, images: list[Image.Image], crop: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, 1000) ImageNet logits and (N, D) pooled features, batches of 32."""
    session, backbone = _session(backbone_name)
    transform = eval_preset(replace(backbone.default_preprocess, crop=crop))
    logits, feats = [], []
    for i in range(0, len(images), 32):
        x = torch.stack([transform(im) for im in images[i : i + 32]]).numpy()
        lg, f = session.run(["logits", "features"], {"images": x})
        logits.append(lg)
        feats.append(f)
    return np.concatenate(logits), np.concatenate(feats)


def set_outputs(
    backbone_name: str, set_name: str, images: list[LabelledImage]
) -> dict[str, np.ndarray]:
    """Cached {view}_logits / {view}_feats for one set, recomputed when the set changes."""
    path = CACHE / f"{backbone_name}-{set_name}.npz"
    files = np.array([str(im.path) for im in images])
    if path.is_file():
        with np.load(path) as d:
            if d["files"].shape == files.shape and (d["files"] == files).all():
                return {k: d[k] for k in d.files}
    t0 = time.perf_counter()
    pics = [load_image(im.path) for im in images]
    out: dict[str, np.ndarray] = {"files": files}
    for view in VIEWS:
        out[f"{view}_logits"], out[f"{view}_feats"] = _run(backbone_name, pics, view)
    print(f"{backbone_name} {set_name}: {len(pics)} images in {time.perf_counter() - t0:.0f} s")
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return out


def _emoji_image_files(emojis: tuple[str, ...]) -> dict[str, list[Path]]:
    """Per emoji, the vendor PNGs that exist (matched on the code points without VS16)."""
    table = json.loads((NPM_DIR / "google" / "package" / "emoji.json").read_text())
    by_key = {}
    for entry in table:
        key = "".join(chr(int(c, 16)) for c in entry["unified"].split("-")).replace("\ufe0f", "")
        by_key[key] = entry["image"]
    out: dict[str, list[Path]] = {}
    for e in emojis:
        image = by_key.get(e.replace("\ufe0f", ""))
        files = (
            [NPM_DIR / v / "package" / "img" / v / "64" / image for v in VENDORS] if image else []
        )
        out[e] = [f for f in files if f.is_file()]
    return out


def emoji_outputs(backbone_name: str, emojis: tuple[str, ...]) -> dict[str, np.ndarray]:
    """(M, 1000) mean ImageNet probabilities and (M, D) mean unit features of each emoji's
    pictures (zeros and has_image False where no vendor draws it)."""
    path = CACHE / f"{backbone_name}-emoji-images.npz"
    if path.is_file():
        with np.load(path) as d:
            if tuple(str(e) for e in d["emojis"]) == emojis:
                return {k: d[k] for k in d.files}
    files = _emoji_image_files(emojis)
    flat = [(j, f) for j, e in enumerate(emojis) for f in files[e]]
    t0 = time.perf_counter()
    pics = [load_image(f) for _, f in flat]
    logits, feats = _run(backbone_name, pics, "full")
    owner = np.array([j for j, _ in flat])
    probs = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    unit = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    m = len(emojis)
    count = np.bincount(owner, minlength=m).astype(np.float32)
    mean_probs = np.zeros((m, probs.shape[1]), np.float32)
    mean_feats = np.zeros((m, unit.shape[1]), np.float32)
    np.add.at(mean_probs, owner, probs)
    np.add.at(mean_feats, owner, unit)
    mean_probs /= np.maximum(count, 1)[:, None]
    mean_feats /= np.maximum(count, 1)[:, None]
    print(f"{backbone_name} emoji pictures: {len(pics)} in {time.perf_counter() - t0:.0f} s")
    out = {
        "emojis": np.array(emojis),
        "probs": mean_probs,
        "feats": mean_feats,
        "has_image": count > 0,
    }
    np.savez(path, **out)
    return out
