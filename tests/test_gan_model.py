"""The served EmojiGAN: sampling, decoding, its release files, the emoji space it draws in."""

import json
from pathlib import Path

import emoji as emoji_lib
import pytest
import torch
from torch import nn

from emojinet.errors import CheckpointError
from emojinet.gan import EmojiGAN, GanConfig
from emojinet.gan_io import load_gan, save_gan
from emojinet.vocab import Vocabulary
from emojinet.zeroshot import emoji_embeddings
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
    # D(e, f) = w_e·e + w_c·c(f): the gradient in e is w_e everywhere.
    expected = (w[0, :8].norm() - 1) ** 2
    got = gradient_penalty(critic, torch.randn(6, 8), torch.randn(6, 8), torch.randn(6, 16))
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    assert got.requires_grad  # it is a training loss: it must backpropagate into the critic


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
