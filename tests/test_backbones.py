import urllib.error
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from emojinet.backbones import get_backbone, list_backbones, register_backbone
from emojinet.errors import CheckpointError, WeightsUnavailableError

EXPECTED_WIDTH = {
    "resnet18": 512,
    "resnet34": 512,
    "resnet50": 2048,
    "resnet101": 2048,
    "efficientnet_lite0": 1280,
    "efficientnet_lite1": 1280,
    "efficientnet_lite2": 1280,
}


def test_registry_lists_all_backbones() -> None:
    assert list_backbones() == sorted(EXPECTED_WIDTH)


@pytest.mark.parametrize("name", sorted(EXPECTED_WIDTH))
def test_random_weights_forward_features(name: str) -> None:
    torch.manual_seed(0)
    backbone = get_backbone(name, weights="none").eval()
    assert backbone.imagenet_head is None
    with torch.no_grad():
        feats = backbone.forward_features(torch.randn(2, 3, 64, 64))
    assert feats.shape == (2, EXPECTED_WIDTH[name]) == (2, backbone.num_features)
    assert torch.isfinite(feats).all()
    assert len(backbone.stages()) >= 4
    n_params = sum(p.numel() for p in backbone.parameters())
    assert n_params == sum(p.numel() for s in backbone.stages() for p in s.parameters())


def test_unknown_backbone_lists_choices() -> None:
    with pytest.raises(
        ValueError,
        match="choose one of efficientnet_lite0, efficientnet_lite1, efficientnet_lite2, resnet101",
    ):
        get_backbone("vgg16")


@pytest.mark.parametrize(
    ("name", "size"), [("efficientnet_lite1", 240), ("efficientnet_lite2", 260)]
)
def test_larger_lites_carry_their_input_size(name: str, size: int) -> None:
    backbone = get_backbone(name, weights="none")
    assert backbone.default_preprocess.input_size == size
    assert backbone.default_preprocess.resize_size == round(size / 0.875)


def test_duplicate_registration_raises() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_backbone("resnet18")(lambda *, weights="imagenet": get_backbone("resnet18"))


def test_resnet_from_local_weights_file(tmp_path: Path) -> None:
    import torchvision

    torch.manual_seed(1)
    reference = torchvision.models.resnet18(weights=None).eval()
    path = tmp_path / "resnet18.pth"
    torch.save({f"module.{k}": v for k, v in reference.state_dict().items()}, path)
    backbone = get_backbone("resnet18", weights=str(path)).eval()
    assert backbone.imagenet_head is not None
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(backbone.imagenet_logits(backbone(x)), reference(x), atol=1e-5)

    # A trunk-only safetensors file (no fc) also loads, without an ImageNet classifier.
    trunk_only = {k: v for k, v in reference.state_dict().items() if not k.startswith("fc.")}
    st = tmp_path / "trunk.safetensors"
    save_file(trunk_only, str(st))
    assert get_backbone("resnet18", weights=str(st)).imagenet_head is None


def test_local_weights_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        get_backbone("resnet18", weights=str(tmp_path / "nope.pth"))
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, wrong)
    with pytest.raises(CheckpointError, match="does not fit resnet18"):
        get_backbone("resnet18", weights=str(wrong))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="cannot read weights file"):
        get_backbone("resnet18", weights=str(garbage))


def test_missing_download_names_offline_options(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsUnavailableError) as info:
        get_backbone("resnet50", weights="imagenet")
    message = str(info.value)
    assert "local state-dict file" in message
    assert "efficientnet_lite0" in message
    assert "resnet50-" in message  # names the file torchvision would have downloaded


def test_efficientnet_lite0_pretrained_classifies_real_photos(photos: dict[str, bytes]) -> None:
    import torchvision

    from emojinet.preprocess import decode_image
    from emojinet.presets import eval_preset

    categories = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
    backbone = get_backbone("efficientnet_lite0").eval()
    transform = eval_preset(backbone.default_preprocess)
    x = torch.stack([transform(decode_image(photos[n])) for n in ("chelsea", "coffee")])
    with torch.no_grad():
        top = backbone.imagenet_logits(backbone(x)).argmax(1).tolist()
    assert categories[top[0]] in {"tabby", "tiger cat", "Egyptian cat"}
    assert categories[top[1]] == "espresso"
