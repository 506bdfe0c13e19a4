"""The faster serving path gives the answers the old one gave (issue #15's acceptance).

``tests/data/golden_suggestions.json`` holds the built-in model's top-5 emojis and scores for
eight real photos, computed at commit e4b328f, before the serving path was rewritten (table
normalisation, single-threaded lanes, passive ONNX Runtime threads), and recomputed by this
path when the model itself changed (2026-12-07: the curated concept map; the path did not change
in that commit). The server's way of running them must give the same emojis, in the same order,
with scores within 1e-4.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import skimage.data as sd
from conftest import _jpeg
from sklearn.datasets import load_sample_images

from emojinet.predictor import Predictor
from service.settings import cpu_threads_per_lane

GOLDEN = json.loads((Path(__file__).parent / "data" / "golden_suggestions.json").read_text())


@pytest.fixture(scope="module")
def golden_photos() -> dict[str, bytes]:
    names = ("chelsea", "coffee", "rocket", "astronaut", "retina", "hubble_deep_field")
    out = {n: _jpeg(getattr(sd, n)()) for n in names}  # retina: 1411 px, decoded at 1/4 scale
    sample = load_sample_images()
    for name, img in zip(sample.filenames, sample.images, strict=True):
        out[Path(name).stem] = _jpeg(img)
    return out


def test_the_server_path_gives_the_same_top_5_as_before(golden_photos: dict[str, bytes]) -> None:
    assert sorted(golden_photos) == sorted(GOLDEN)
    predictor = Predictor.load(None, backend="onnx", device="cpu", threads=cpu_threads_per_lane(0))
    names = sorted(golden_photos)
    batch = np.stack([predictor.preprocess(golden_photos[n]) for n in names])
    probs = predictor.run_batch(batch).probs
    for name, row in zip(names, probs, strict=True):
        top = row.argsort()[::-1][:5]
        got = [(predictor.vocab[int(i)], float(row[i])) for i in top]
        want = GOLDEN[name]
        assert [e for e, _ in got] == [e for e, _ in want], name
        np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=1e-4)
