"""The served EmojiGAN: sampling, decoding, its release files, the emoji space it draws in,
and head=gan through the service's device gate, the CLI and ONNX."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import emoji as emoji_lib
import httpx
import numpy as np
import pytest
import torch
from service_helpers import EMOJIS, ThreadedServer
from torch import nn

from emojinet.backends import OnnxBackend, TorchBackend, export_onnx
from emojinet.checkpoint import load_release
from emojinet.cli import main as cli_main
from emojinet.errors import CheckpointError
from emojinet.gan import EmojiGAN, GanConfig
from emojinet.gan_head import GanHead, GanHeadError
from emojinet.gan_io import load_gan, save_gan
from emojinet.predictor import Predictor
from emojinet.vocab import Vocabulary
from emojinet.zeroshot import emoji_embeddings
from service.app import create_app
from service.settings import Settings
from training.gan_losses import Critic, gradient_penalty

CFG = GanConfig(feature_dim=16, embed_dim=8, noise_dim=4, cond_dim=8, hidden=32)


def test_gradient_penalty_matches_a_per_sample_computation() -> None:
    torch.manual_seed(0)
    critic = Critic(CFG)
    real, fake, feats = torch.randn(5, 8), torch.randn(5, 8), torch.randn(5, 16)
    alpha = torch.rand(5, 1)
    got = gradient_penalty(critic, real, fake, feats, alpha)
    expected = []
    for i in range(5):
        x = (alpha[i] * real[i] + (1 - alpha[i]) * fake[i]).unsqueeze(0).requires_grad_(True)
        (g,) = torch.autograd.grad(critic(x, feats[i : i + 1]).sum(), x)
        expected.append((g.norm() - 1) ** 2)
    assert got.item() == pytest.approx(torch.stack(expected).mean().item(), rel=1e-5)


def test_gradient_penalty_of_a_linear_critic_is_closed_form() -> None:
    critic = Critic(CFG)
    w = torch.randn(1, 8 + 8)
    critic.net = nn.Linear(8 + 8, 1, bias=False)
    critic.net.weight.data = w
    feats = torch.randn(6, 16)
    # D(e, f) = w_e·e + w_c·c(f) + e·P c(f): the gradient in e is w_e + P c(f), whatever e.
    slope = w[0, :8] + critic.proj(critic.cond(feats)).detach()  # (6, 8)
    expected = ((slope.norm(dim=1) - 1) ** 2).mean()
    got = gradient_penalty(critic, torch.randn(6, 8), torch.randn(6, 8), feats)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    assert got.requires_grad  # it is a training loss: it must backpropagate into the critic


def test_the_critics_slope_in_e_depends_on_the_image() -> None:
    # The projection term: two images get different directions in which the critic rises
    # (a concatenation MLP alone learned one slope for all images, and the GAN collapsed).
    torch.manual_seed(0)
    critic = Critic(CFG)
    critic.net = nn.Linear(8 + 8, 1, bias=False)  # no slope that depends on f from the MLP
    e = torch.zeros(2, 8, requires_grad=True)
    (grad,) = torch.autograd.grad(critic(e, torch.randn(2, 16)).sum(), e)
    assert torch.cosine_similarity(grad[0], grad[1], dim=0) < 0.99


def make_gan(vocab: Vocabulary) -> EmojiGAN:
    torch.manual_seed(0)
    return EmojiGAN(CFG, vocab, torch.randn(len(vocab), 8))


def test_sampling_shapes_decoding_and_deny_mask() -> None:
    vocab = Vocabulary.from_emojis(["🐱", "☕", "🚀", "🌸"])
    gan = make_gan(vocab)
    feats = torch.randn(3, 16)
    draws = gan.sample(feats, 50, generator=torch.Generator().manual_seed(0))
    assert draws.shape == (3, 50) and draws.dtype == torch.long
    assert int(draws.min()) >= 0 and int(draws.max()) < 4
    again = gan.sample(feats, 50, generator=torch.Generator().manual_seed(0))
    assert torch.equal(draws, again)
    allowed = torch.tensor([True, False, True, True])
    masked = gan.sample(feats, 200, generator=torch.Generator().manual_seed(1), allowed=allowed)
    assert not (masked == 1).any()
    freqs = gan.scores(draws)
    assert freqs.shape == (3, 4) and freqs.sum(axis=1) == pytest.approx([1, 1, 1])


def test_a_gan_never_decodes_to_an_emoji_it_had_no_real_sample_of() -> None:
    # A --vocab all model: the GAN's vocabulary carries emojis no training image was labelled
    # with (count 0); the generator never saw them as real samples.
    vocab = Vocabulary.from_emojis(["🐱", "☕", "🚀", "🌸"], [5, 0, 2, 0])
    gan = make_gan(vocab)
    draws = gan.sample(torch.randn(20, 16), 50, generator=torch.Generator().manual_seed(0))
    assert set(draws.unique().tolist()) <= {0, 2}
    e = gan.emoji_embeddings[[1, 3]]  # exactly an undrawable emoji's embedding
    assert set(gan.decode(e).tolist()) <= {0, 2}
    only = torch.tensor([False, True, False, False])  # the deny-list leaves only an undrawn one
    assert gan.decode(e, only).tolist() == [1, 1]
    # Decoding picks the nearest embedding by cosine.
    assert gan.decode(gan.emoji_embeddings[[2, 0]]).tolist() == [2, 0]


def test_save_load_round_trip_and_errors(tmp_path: Path) -> None:
    vocab = Vocabulary.from_emojis(["🐱", "☕", "🚀"])
    gan = make_gan(vocab)
    meta = save_gan(gan, tmp_path / "gan", backbone_sha256="abc", metrics={"js": 0.1})
    loaded, meta2 = load_gan(tmp_path / "gan.json")
    assert meta2["backbone_sha256"] == "abc" and meta2["sha256"] == meta["sha256"]
    feats = torch.randn(2, 16)
    a = gan.sample(feats, 10, generator=torch.Generator().manual_seed(0))
    b = loaded.sample(feats, 10, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    with pytest.raises(CheckpointError, match="incomplete"):
        load_gan(tmp_path / "missing")
    (tmp_path / "gan.safetensors").write_bytes(b"broken")
    with pytest.raises(CheckpointError, match="does not match the metadata"):
        load_gan(tmp_path / "gan")


def test_embedding_shape_is_checked() -> None:
    with pytest.raises(ValueError, match=r"emoji_embeddings must be \(2, 8\)"):
        EmojiGAN(CFG, Vocabulary.from_emojis(["🐱", "☕"]), torch.randn(3, 8))


def _reject(token: str) -> None:
    raise ValueError(f"not strict JSON: {token}")


def test_a_metric_that_does_not_exist_is_left_out_of_the_release(tmp_path: Path) -> None:
    gan = make_gan(Vocabulary.from_emojis(["🐱", "☕"]))
    metrics = {"js": 0.1, "generator_loss": float("nan"), "w": float("inf")}
    save_gan(gan, tmp_path / "gan", backbone_sha256="abc", metrics=metrics)
    meta = json.loads((tmp_path / "gan.json").read_text(), parse_constant=_reject)
    assert meta["metrics"] == {"js": 0.1}


def test_every_emoji_a_classifier_can_learn_has_an_embedding() -> None:
    """ZWJ sequences have their own vector; a toned emoji takes its base's, two people with two
    tones their pair emoji's (no toneless ZWJ form exists for those)."""
    fully_qualified = emoji_lib.STATUS["fully_qualified"]
    every = tuple(e for e, d in emoji_lib.EMOJI_DATA.items() if d["status"] == fully_qualified)
    assert len(every) > 3900
    assert emoji_embeddings(Vocabulary(every)).shape == (len(every), 384)
    pairs = {
        "👍🏽": "👍",
        "🧑🏽\u200d🚀": "🧑\u200d🚀",
        "🫱🏿\u200d🫲🏻": "🤝",
        "🧑🏿\u200d❤️\u200d🧑🏻": "💑",
        "👩🏽\u200d🤝\u200d👨🏼": "👫",
    }
    toned = emoji_embeddings(Vocabulary(tuple(pairs)))
    base = emoji_embeddings(Vocabulary(tuple(pairs.values())))
    assert torch.equal(toned, base)
    astronaut, person, rocket = emoji_embeddings(Vocabulary(("🧑\u200d🚀", "🧑", "🚀")))
    assert not torch.equal(astronaut, person) and not torch.equal(astronaut, rocket)


# -- serving: features through the gate, head=gan, the backbone check, the deny-list ------------

DENIED = EMOJIS[0]


def _gan_for(model_release: Path, out: Path, *, backbone_sha256: str | None = None) -> Path:
    model, meta = load_release(model_release)
    torch.manual_seed(0)
    cfg = GanConfig(
        feature_dim=model.backbone.num_features, embed_dim=16, noise_dim=8, cond_dim=16, hidden=32
    )
    gan = EmojiGAN(cfg, model.vocab, torch.randn(len(model.vocab), 16))
    save_gan(gan, out, backbone_sha256=backbone_sha256 or meta["sha256"])
    return out


@pytest.fixture(scope="module")
def gan_release(tiny_release: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _gan_for(tiny_release, tmp_path_factory.mktemp("gan") / "tiny-gan")


def _predictor(release: Path) -> Predictor:
    model, meta = load_release(release)
    return Predictor(model, TorchBackend(model, "cpu"), sha256=meta["sha256"], deny=[DENIED])


@pytest.fixture(scope="module")
def client(tiny_release: Path, gan_release: Path) -> Iterator[httpx.Client]:
    settings = Settings(max_body_bytes=1_000_000, max_pixels=1_000_000, gan_model=str(gan_release))
    with (
        ThreadedServer(create_app(settings, predictor=_predictor(tiny_release))) as srv,
        httpx.Client(base_url=srv.url, timeout=30) as c,
    ):
        yield c


def test_gan_head_over_http(client: httpx.Client, photo: bytes) -> None:
    r = client.post("/distribution?head=gan&n=300&seed=5", files={"image": ("c.jpg", photo)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["head"] == "gan" and body["temperature"] == 1.0 and body["model"] == "test-tiny"
    assert len(body["samples"]) == 300 and sum(h["count"] for h in body["histogram"]) == 300
    assert body["mode"] == body["histogram"][0]["emoji"]
    assert 0.0 <= body["mode_stability"] <= 1.0 and 0.0 <= body["entropy"] <= math.log2(4)
    again = client.post("/distribution?head=gan&n=300&seed=5", files={"image": ("c.jpg", photo)})
    assert again.json()["samples"] == body["samples"]
    # The classifier head and /suggest still work with (probs, features) rows in the gate.
    r = client.post("/distribution?n=20&seed=1", files={"image": ("c.jpg", photo)})
    assert r.status_code == 200 and r.json()["head"] == "classifier"
    r = client.post("/suggest?top_k=50", files={"image": ("c.jpg", photo)})
    assert r.status_code == 200 and len(r.json()["emojis"]) == len(EMOJIS) - 1
    gan = client.get("/model").json()["gan"]
    assert gan["loaded"] is True and len(gan["sha256"]) == 64


def test_gan_draws_respect_the_deny_list(
    client: httpx.Client, photo: bytes, tiny_release: Path, gan_release: Path
) -> None:
    r = client.post("/distribution?head=gan&n=1000&seed=0", files={"image": ("c.jpg", photo)})
    assert r.status_code == 200
    assert DENIED not in r.json()["samples"]
    # Not vacuous: without the deny-list the same generator draws the denied emoji here.
    predictor = _predictor(tiny_release)
    features = predictor.run_batch(predictor.preprocess(photo)[None], features=True).features
    assert features is not None
    model, meta = load_release(tiny_release)
    open_head = GanHead.load(gan_release, model_sha256=meta["sha256"], vocab=model.vocab)
    assert DENIED in open_head.distribution(features[0], n=1000, seed=0).samples


def test_a_gan_for_another_backbone_is_refused_but_the_server_stays_ready(
    tiny_release: Path, tmp_path: Path, photo: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    other = _gan_for(tiny_release, tmp_path / "other-gan", backbone_sha256="f" * 64)
    settings = Settings(gan_model=str(other))
    with (
        caplog.at_level("ERROR", logger="service.state"),
        ThreadedServer(create_app(settings, predictor=_predictor(tiny_release))) as srv,
        httpx.Client(base_url=srv.url, timeout=30) as c,
    ):
        assert c.get("/readyz").status_code == 200
        r = c.post("/distribution?head=gan", files={"image": ("c.jpg", photo)})
        assert r.status_code == 400
        detail = r.json()["detail"]
        assert "GAN head is not available" in detail
        assert "trained on the features of model ffffffffffff" in detail
        r = c.post("/distribution?head=classifier", files={"image": ("c.jpg", photo)})
        assert r.status_code == 200
        gan = c.get("/model").json()["gan"]
        assert gan["loaded"] is False and "trained on the features of model" in gan["reason"]
    assert any("refusing the GAN release" in rec.message for rec in caplog.records)


def test_onnx_export_carries_the_features(tiny_release: Path, tmp_path: Path) -> None:
    model, _ = load_release(tiny_release)
    onnx = OnnxBackend(export_onnx(model, tmp_path / "tiny.onnx"))
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)).numpy()
    ref = TorchBackend(model, "cpu").run(x, features=True)
    got = onnx.run(x, features=True)
    ref_p, ref_f, got_p, got_f = ref.probs, ref.features, got.probs, got.features
    assert ref_f is not None and got_f is not None
    assert got_f.shape == ref_f.shape == (2, model.backbone.num_features)
    np.testing.assert_allclose(got_p, ref_p, atol=1e-5)
    np.testing.assert_allclose(got_f, ref_f, atol=1e-4)
    np.testing.assert_allclose(onnx.run(x).probs, ref_p, atol=1e-5)


def test_suggest_cli_with_a_gan(
    tiny_release: Path, gan_release: Path, tmp_path: Path, photo: bytes,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    img = tmp_path / "cat.jpg"
    img.write_bytes(photo)
    model = str(tiny_release.with_suffix(".json"))
    args = ["suggest", str(img), "--model", model, "--distribution", "-n", "40", "--seed", "1"]
    assert cli_main([*args, "--gan", str(gan_release), "--json", "--deny", DENIED]) == 0
    (line,) = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    dist = line["distribution"]  # one object per image: its emojis and its distribution
    assert dist["n"] == 40 and len(dist["samples"]) == 40 and DENIED not in dist["samples"]
    other = _gan_for(tiny_release, tmp_path / "other-gan", backbone_sha256="f" * 64)
    assert cli_main([*args, "--gan", str(other)]) == 2
    assert "trained on the features of model ffffffffffff" in capsys.readouterr().err
    with pytest.raises(GanHeadError, match="cannot load the GAN release"):
        GanHead.load(
            tmp_path / "missing",
            model_sha256="f" * 64,
            vocab=Vocabulary.from_emojis(["🐱", "☕", "🚀"]),
        )
