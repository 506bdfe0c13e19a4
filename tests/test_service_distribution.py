"""POST /distribution and the deny-list, over real HTTP (uvicorn on loopback, a real tiny model)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_helpers import EMOJIS, ThreadedServer, jpeg

from emojinet.backends import TorchBackend
from emojinet.checkpoint import load_release
from emojinet.predictor import Predictor
from service.app import create_app
from service.settings import Settings

DENIED = EMOJIS[0]


@pytest.fixture(scope="module")
def client(tiny_release: Path) -> Iterator[httpx.Client]:
    model, meta = load_release(tiny_release)
    predictor = Predictor(model, TorchBackend(model, "cpu"), sha256=meta["sha256"], deny=[DENIED])
    settings = Settings(max_body_bytes=1_000_000, max_pixels=1_000_000)
    with (
        ThreadedServer(create_app(settings, predictor=predictor)) as srv,
        httpx.Client(base_url=srv.url, timeout=30) as c,
    ):
        yield c


def test_distribution_answers_histogram_mode_and_stability(
    client: httpx.Client, photo: bytes
) -> None:
    r = client.post("/distribution?n=200&seed=3", files={"image": ("cat.jpg", photo)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["samples"]) == body["n"] == 200
    assert sum(h["count"] for h in body["histogram"]) == 200
    assert body["mode"] == body["histogram"][0]["emoji"]
    assert 0.0 <= body["mode_stability"] <= 1.0
    assert 0.0 < body["entropy"] <= 2.0 + 1e-9  # 4 allowed emojis → at most 2 bits
    assert body["head"] == "classifier" and body["model"] == "test-tiny"
    assert body["timing"]["total_ms"] > 0
    again = client.post("/distribution?n=200&seed=3", files={"image": ("cat.jpg", photo)})
    assert again.json()["samples"] == body["samples"]  # the seed makes draws reproducible


def test_temperature_changes_the_spread(client: httpx.Client, photo: bytes) -> None:
    def entropy(t: float) -> float:
        r = client.post(f"/distribution?n=10&temperature={t}", files={"image": ("c.jpg", photo)})
        assert r.status_code == 200, r.text
        return float(r.json()["entropy"])

    assert entropy(0.05) < entropy(1.0) < entropy(50.0)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("n=0", "n"),
        ("n=1001", "n"),
        ("temperature=0", "temperature"),
        ("seed=-1", "seed"),
        ("head=vae", "head"),
        ("n=many", "n"),
    ],
)
def test_bad_query_values_are_422(
    client: httpx.Client, photo: bytes, query: str, field: str
) -> None:
    r = client.post(f"/distribution?{query}", files={"image": ("c.jpg", photo)})
    assert r.status_code == 422
    assert f"query parameter '{field}'" in r.json()["detail"]


def test_bad_images_get_the_same_errors_as_suggest(client: httpx.Client) -> None:
    r = client.post("/distribution", content=b"not an image", headers={"Content-Type": "image/png"})
    assert r.status_code == 400 and "not an image" in r.json()["detail"]
    r = client.post("/distribution", content=b"", headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 400 and "empty" in r.json()["detail"]
    r = client.post("/distribution", content=b"{}", headers={"Content-Type": "application/json"})
    assert r.status_code == 415 and "unsupported Content-Type" in r.json()["detail"]
    r = client.post("/distribution", files={"photo": ("c.jpg", b"x")})
    assert r.status_code == 422 and "no 'image' file field" in r.json()["detail"]


def test_several_images_get_one_distribution_each(client: httpx.Client, photo: bytes) -> None:
    images = [photo, jpeg((20, 200, 40), (64, 48))]
    singles = [
        client.post("/distribution?n=30&seed=5", files={"image": ("x.jpg", b)}).json()
        for b in images
    ]
    files = [("images", (f"{i}.jpg", b)) for i, b in enumerate(images)]
    r = client.post("/distribution?n=30&seed=5", files=files)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["n"] == 30 and body["head"] == "classifier" and body["model"] == "test-tiny"
    assert body["timing"]["total_ms"] > 0 and len(body["results"]) == 2
    for got, single in zip(body["results"], singles, strict=True):
        for key in ("samples", "histogram", "mode", "mode_stability", "top_k"):
            assert got[key] == single[key], key  # in order, each as if sent alone
        assert got["entropy"] == pytest.approx(single["entropy"], rel=1e-5)  # batched floats
        assert got["inference_ms"] > 0
    one = client.post("/distribution?n=30&seed=5", files=[("images", ("a.jpg", photo))])
    assert one.status_code == 200 and one.json()["results"][0]["samples"] == singles[0]["samples"]


BAD_INPUTS: list[tuple[str, dict[str, Any]]] = [
    ("image and images", {"files": [("image", ("a.jpg", b"x")), ("images", ("b.jpg", b"x"))]}),
    ("two image fields", {"files": [("image", ("a.jpg", b"x")), ("image", ("b.jpg", b"x"))]}),
    ("too many images", {"files": [("images", (f"{i}.jpg", b"x")) for i in range(17)]}),
    ("a text field", {"data": {"images": "not a file"}, "files": {"other": ("o.txt", b"o")}}),
    ("no image field", {"files": {"photo": ("c.jpg", b"x")}}),
    ("one bad image of two", {"files": [("images", ("a.jpg", b"x")), ("images", ("b", b"y"))]}),
    ("not an image", {"content": b"nope", "headers": {"Content-Type": "image/png"}}),
    ("empty body", {"content": b"", "headers": {"Content-Type": "image/jpeg"}}),
    ("JSON", {"content": b"{}", "headers": {"Content-Type": "application/json"}}),
    ("no Content-Type", {"content": b"x", "headers": {"Content-Type": ""}}),
]


@pytest.mark.parametrize(("case", "request_kw"), BAD_INPUTS, ids=[c for c, _ in BAD_INPUTS])
def test_bad_input_gets_the_same_error_as_suggest(
    client: httpx.Client, case: str, request_kw: dict[str, Any]
) -> None:
    suggest = client.post("/suggest", **request_kw)
    dist = client.post("/distribution", **request_kw)
    assert 400 <= suggest.status_code < 500, (case, suggest.text)
    assert (dist.status_code, dist.json()["detail"]) == (
        suggest.status_code,
        suggest.json()["detail"],
    )


def test_gan_head_without_a_gan_is_a_clear_error(client: httpx.Client, photo: bytes) -> None:
    r = client.post("/distribution?head=gan", files={"image": ("c.jpg", photo)})
    assert r.status_code == 400 and "GAN head is not loaded" in r.json()["detail"]


def test_deny_list_applies_to_every_endpoint(client: httpx.Client, photo: bytes) -> None:
    r = client.post("/suggest?top_k=50", files={"image": ("c.jpg", photo)})
    assert r.status_code == 200
    suggested = [e["emoji"] for e in r.json()["emojis"]]
    assert DENIED not in suggested and len(suggested) == len(EMOJIS) - 1
    r = client.post(
        "/suggest?top_k=5", files=[("images", ("a.jpg", photo)), ("images", ("b.jpg", photo))]
    )
    assert all(DENIED not in [e["emoji"] for e in res["emojis"]] for res in r.json()["results"])
    # A very flat distribution would draw every emoji of the vocabulary in 1,000 draws.
    r = client.post("/distribution?n=1000&temperature=100", files={"image": ("c.jpg", photo)})
    body = r.json()
    assert DENIED not in body["samples"]
    assert {h["emoji"] for h in body["histogram"]} == set(EMOJIS) - {DENIED}


def test_emojis_leaves_out_the_deny_list(client: httpx.Client) -> None:
    r = client.get("/emojis")
    assert r.status_code == 200, r.text
    body = r.json()
    listed = [e["emoji"] for e in body["emojis"]]
    assert listed == [e for e in EMOJIS if e != DENIED]  # vocabulary order, the denied one out
    assert body["count"] == len(EMOJIS) - 1 and all(e["name"] for e in body["emojis"])
