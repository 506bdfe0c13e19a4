"""Artifacts written by an older EmojiNet (``tests/data/legacy``, commit bccc78e) still load.

The files were written by the real trainer and exporter of that commit (see
``tests/data/legacy/make_fixtures.py``); each must load with today's loader and give the same
probabilities for the same photos.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from legacy_backbone import registered

from emojinet.checkpoint import load
from emojinet.preprocess import PreprocessConfig, decode_image
from emojinet.presets import eval_preset

LEGACY = Path(__file__).parent / "data" / "legacy"
EXPECTED = json.loads((LEGACY / "expected.json").read_text())


@pytest.fixture(scope="module", autouse=True)
def _tiny_backbone() -> Iterator[None]:
    with registered():
        yield


def _probs(model: torch.nn.Module, name: str) -> list[float]:
    import skimage.data as sd
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(getattr(sd, name)()).save(buf, format="PNG")
    x = eval_preset(model.preprocess)(decode_image(buf.getvalue()))[None]  # type: ignore[arg-type]
    with torch.no_grad():
        return torch.sigmoid(model.eval()(x))[0].tolist()  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("path", "key", "head"),
    [("checkpoint.pt", "checkpoint", "linear"), ("linear", "linear", "linear"),
     ("zeroshot.json", "zeroshot", "zeroshot")],
)  # fmt: skip
def test_legacy_artifact_loads_and_predicts_the_same(path: str, key: str, head: str) -> None:
    model, meta = load(LEGACY / path)
    assert model.cfg.backbone == "legacy_tiny" and model.cfg.head == head
    assert len(meta.digest) == 64
    for photo in ("chelsea", "coffee"):
        np.testing.assert_allclose(_probs(model, photo), EXPECTED[key][photo], rtol=1e-5, atol=1e-6)


def test_legacy_preprocessing_travels_with_the_model() -> None:
    ckpt_model, _ = load(LEGACY / "checkpoint.pt")
    release_model, _ = load(LEGACY / "linear.safetensors")
    assert ckpt_model.preprocess == release_model.preprocess
    assert ckpt_model.preprocess.input_size == 32
    zeroshot, _ = load(LEGACY / "zeroshot")
    assert zeroshot.preprocess == PreprocessConfig.from_dict(EXPECTED["zeroshot_preprocess"])
    assert zeroshot.preprocess.crop == "full"
