"""The shipped EmojiGAN head ``emoji500-gan``: trained on the shipped ``emoji500`` model's
features, it loads by name, is bound to that model, and answers ``/distribution?head=gan``
from the real service over the model's 1,923-emoji vocabulary."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from service_helpers import ServerProcess

from emojinet.checkpoint import load
from emojinet.gan_head import GanHead
from emojinet.gan_io import load_gan
from emojinet.vocab import Vocabulary


def test_emoji500_gan_is_shipped_and_bound_to_emoji500() -> None:
    gan, meta = load_gan("emoji500-gan")  # by name, like emojinet.checkpoint.load("emoji500")
    model, model_meta = load("emoji500")
    assert meta["backbone_sha256"] == model_meta.digest
    assert list(gan.vocab.emojis) == list(model.vocab.emojis)
    assert len(gan.vocab) == len(Vocabulary.all())
    # It draws only the 500 emojis the training pictures are labelled with (the model's first).
    assert int(gan.drawable.sum()) <= 500 and bool(gan.drawable[:500].any())
    assert not bool(gan.drawable[500:].any())
    head = GanHead.load("emoji500-gan", model_sha256=model_meta.digest, vocab=model.vocab)
    assert head.vocab.emojis == model.vocab.emojis


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("emoji500-gan") / "server.log"
    env = {
        "EMOJINET_MODEL": "emoji500",
        "EMOJINET_GAN_MODEL": "emoji500-gan",
        "EMOJINET_DEVICE": "cpu",
    }
    srv = ServerProcess(env, log)
    try:
        yield srv.wait_ready(timeout_s=120)
    finally:
        srv.stop()


def test_the_service_answers_head_gan_with_the_real_vocabulary(
    server: ServerProcess, photo: bytes
) -> None:
    info = httpx.get(f"{server.url}/model", timeout=10).json()
    assert info["name"] == "emoji500" and info["gan"]["loaded"] is True, info.get("gan")
    r = httpx.post(
        f"{server.url}/distribution?head=gan&n=200&seed=0",
        files={"image": ("cat.jpg", photo)},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    vocab = set(Vocabulary.all().emojis)
    assert body["n"] == 200 and len(body["samples"]) == 200
    assert set(body["samples"]) <= vocab
    drawn = {h["emoji"] for h in body["histogram"]}
    assert len(drawn) > 1  # not collapsed to one emoji
    assert sum(h["count"] for h in body["histogram"]) / body["n"] == pytest.approx(1.0)
    freqs = [t["frequency"] for t in body["top_k"]]
    assert all(0 < f <= 1 for f in freqs) and sum(freqs) <= 1 + 1e-9
    if len(drawn) <= len(freqs):  # every drawn emoji is in the top-k: they cover all draws
        assert sum(freqs) == pytest.approx(1.0)
    assert body["mode"] == body["histogram"][0]["emoji"]
