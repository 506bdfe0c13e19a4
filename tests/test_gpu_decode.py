"""JPEGs decoded a batch at a time on the model's device (emojinet.gpu_decode), run here on the
CPU device (the same torchvision code, libjpeg-turbo instead of nvJPEG): upright like Pillow,
the same answers as the CPU path, other formats and broken JPEGs handled, and the server using
it end to end."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from emojinet import checkpoint
from emojinet.backends import TorchBackend
from emojinet.errors import InvalidImageError
from emojinet.gpu_decode import EncodedJpeg, _upright, encoded_jpeg
from emojinet.predictor import Predictor
from emojinet.preprocess import _ORIENTATIONS
from service.app import create_app
from service.settings import Settings
from tests.service_helpers import ThreadedServer


@pytest.fixture(scope="module")
def predictors() -> tuple[Predictor, Predictor]:
    """The built-in model on torch (CPU): one decoding JPEGs in batches, one with Pillow."""
    model, meta = checkpoint.load(None)
    backend = TorchBackend(model, "cpu")
    batched = Predictor(model, backend, sha256=meta.digest, batch_jpeg=True)
    return batched, Predictor(model, backend, sha256=meta.digest)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_upright_turns_as_pillow_does(orientation: int) -> None:
    pixels = np.random.default_rng(orientation).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    img = Image.fromarray(pixels)
    if orientation in _ORIENTATIONS:
        img = img.transpose(_ORIENTATIONS[orientation])
    got = _upright(torch.from_numpy(pixels).permute(2, 0, 1), orientation).permute(1, 2, 0)
    np.testing.assert_array_equal(got.numpy(), np.asarray(img))


def test_encoded_jpeg_reads_the_orientation_and_leaves_other_formats() -> None:
    img, buf = Image.new("RGB", (32, 16), "red"), io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(buf, "JPEG", exif=exif)
    assert encoded_jpeg(buf.getvalue()) == EncodedJpeg(buf.getvalue(), 6)
    png = io.BytesIO()
    img.save(png, "PNG")
    assert encoded_jpeg(png.getvalue()) is None
    with pytest.raises(InvalidImageError):
        encoded_jpeg(b"\xff\xd8\xff\xe0 not really")


def test_the_answers_match_the_cpu_path(
    predictors: tuple[Predictor, Predictor], photos: dict[str, bytes]
) -> None:
    batched, plain = predictors
    names = sorted(photos)
    inputs = [batched.prepare(photos[n]) for n in names]
    assert all(isinstance(x, EncodedJpeg) for x in inputs)
    got = batched.run_batch(batched.stack(inputs)).probs
    want = plain.run_batch(plain.stack([plain.prepare(photos[n]) for n in names])).probs
    for name, g, w in zip(names, got, want, strict=True):
        top_g, top_w = list(g.argsort()[::-1][:5]), list(w.argsort()[::-1][:5])
        assert top_g[0] == top_w[0], name
        assert len(set(top_g) & set(top_w)) >= 4, name
        assert np.abs(g - w).max() < 0.03, name


def test_a_batch_mixes_jpegs_with_other_formats_and_refuses_a_broken_jpeg(
    predictors: tuple[Predictor, Predictor], photos: dict[str, bytes]
) -> None:
    batched, plain = predictors
    png = io.BytesIO()
    Image.open(io.BytesIO(photos["chelsea"])).save(png, "PNG")
    mixed = [batched.prepare(photos["coffee"]), batched.prepare(png.getvalue())]
    assert isinstance(mixed[0], EncodedJpeg) and isinstance(mixed[1], np.ndarray)
    probs = batched.run_batch(batched.stack(mixed)).probs
    alone = plain.run_batch(plain.preprocess(png.getvalue())[None]).probs[0]
    assert probs[1].argmax() == alone.argmax()
    broken = batched.prepare(photos["rocket"][: len(photos["rocket"]) // 2])
    assert isinstance(broken, EncodedJpeg)  # the header is fine: found out in the batch
    with pytest.raises(InvalidImageError):
        batched.stack([mixed[0], broken])


def test_the_server_decodes_jpegs_in_the_batch(
    predictors: tuple[Predictor, Predictor], photos: dict[str, bytes]
) -> None:
    """Concurrent requests through the real server: the JPEGs decode in the lane, a broken one
    fails alone with 400 (its batch is retried one by one) and the others get their answers."""
    batched, plain = predictors
    bodies = [photos["chelsea"], photos["coffee"], photos["rocket"][:5000], photos["flower"]]
    with ThreadedServer(create_app(Settings(max_batch_delay_ms=20), predictor=batched)) as server:

        def send(body: bytes) -> httpx.Response:
            files = {"image": ("p.jpg", body, "image/jpeg")}
            return httpx.post(f"{server.url}/suggest", files=files, timeout=60)

        with ThreadPoolExecutor(len(bodies)) as pool:
            answers = list(pool.map(send, bodies))
    assert [a.status_code for a in answers] == [200, 200, 400, 200], [a.text for a in answers]
    assert "detail" in answers[2].json()
    for body, answer in zip(bodies, answers, strict=True):
        if answer.status_code == 200:
            best = int(plain.run_batch(plain.preprocess(body)[None]).probs[0].argmax())
            assert answer.json()["emojis"][0]["emoji"] == plain.vocab[best]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (nvJPEG)")
def test_on_cuda_nvjpeg_gives_the_cpu_paths_answers(
    predictors: tuple[Predictor, Predictor], photos: dict[str, bytes]
) -> None:
    on_gpu = Predictor.load(None, backend="torch", device="cuda", gpu_decode=True)
    names = sorted(photos)
    inputs = [on_gpu.prepare(photos[n]) for n in names]
    assert all(isinstance(x, EncodedJpeg) for x in inputs)
    batch = on_gpu.stack(inputs)
    assert isinstance(batch, torch.Tensor) and batch.device.type == "cuda"
    got = on_gpu.run_batch(batch).probs
    _, plain = predictors
    want = plain.run_batch(np.stack([plain.preprocess(photos[n]) for n in names])).probs
    for name, g, w in zip(names, got, want, strict=True):
        assert g.argmax() == w.argmax(), name  # fp16 and nvJPEG: the same best emoji
        assert np.abs(g - w).max() < 0.05, name
