"""The web page at ``GET /`` in Debian's real Chromium (headless, via playwright) on loopback.

A real uvicorn server with a tiny real model; a real photo (scikit-image's cat).
"""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np
import pytest
from browser import CHROMIUM, CHROMIUM_ARGS, PAGE_TEST, TIMEOUT_MS
from PIL import Image
from playwright.sync_api import expect
from service_helpers import EMOJIS, ThreadedServer

from emojinet.backends import TorchBackend
from emojinet.checkpoint import load_release
from emojinet.predictor import Predictor
from service.app import create_app
from service.settings import Settings

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
MAX_BODY = 300_000

pytestmark = PAGE_TEST


@pytest.fixture(scope="module")
def server(tiny_release: Path) -> Iterator[ThreadedServer]:
    model, meta = load_release(tiny_release)
    predictor = Predictor(model, TorchBackend(model, "cpu"), sha256=meta["sha256"])
    settings = Settings(max_body_bytes=MAX_BODY, max_pixels=1_000_000)
    with ThreadedServer(create_app(settings, predictor=predictor)) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


def open_page(browser: Any, server: ThreadedServer, viewport: dict[str, int]) -> Any:
    """A fresh page on ``/`` that records console errors (CSP violations, script errors)."""
    context = browser.new_context(viewport=viewport)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.console_errors = []
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
    page.on("pageerror", lambda exc: page.console_errors.append(str(exc)))
    page.goto(server.url + "/")
    expect(page.locator("#model-info")).to_contain_text("test-tiny")
    return page


@pytest.fixture
def desktop(browser: Any, server: ThreadedServer) -> Iterator[Any]:
    page = open_page(browser, server, DESKTOP)
    yield page
    page.context.close()


@pytest.fixture
def phone(browser: Any, server: ThreadedServer) -> Iterator[Any]:
    page = open_page(browser, server, PHONE)
    yield page
    page.context.close()


def upload(page: Any, name: str, data: bytes, mime: str) -> None:
    page.set_input_files("#file", files=[{"name": name, "mimeType": mime, "buffer": data}])


def api_default_draws(url: str) -> int:
    """The default ``n`` of ``POST /distribution``, from the server's OpenAPI schema."""
    params = httpx.get(url + "/openapi.json").json()["paths"]["/distribution"]["post"]["parameters"]
    (n,) = (p["schema"]["default"] for p in params if p["name"] == "n")
    return int(n)


#: The number of draws the page asks for unless told otherwise: the API's default.
DEFAULT_DRAWS = 50


def wait_for_results(page: Any, n: int = DEFAULT_DRAWS) -> None:
    expect(page.locator("#suggestions li")).to_have_count(5)
    expect(page.locator("#dist-summary .meta")).to_contain_text(f"{n} draws")


def no_horizontal_overflow(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def test_page_is_served_with_a_strict_csp(server: ThreadedServer) -> None:
    r = httpx.get(server.url + "/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert 'src="static/app.js"' in r.text and " onclick=" not in r.text
    for path, kind in (("/static/app.js", "javascript"), ("/static/style.css", "text/css")):
        asset = httpx.get(server.url + path)
        assert asset.status_code == 200 and kind in asset.headers["content-type"], path
    assert "/" not in httpx.get(server.url + "/openapi.json").json()["paths"]


def test_photo_shows_suggestions_histogram_and_copies(
    desktop: Any, photo: bytes, tmp_path: Path
) -> None:
    upload(desktop, "chelsea.jpg", photo, "image/jpeg")
    wait_for_results(desktop)
    rows = desktop.locator("#suggestions li")
    shown = [rows.nth(i).locator(".emoji").inner_text() for i in range(5)]
    assert set(shown) == set(EMOJIS)
    scores = [float(rows.nth(i).locator(".score").inner_text().rstrip("%")) for i in range(5)]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0
    assert desktop.eval_on_selector("#preview", "img => img.naturalWidth") == 320
    # The histogram: one row per drawn emoji, counts add up to n, the mode is marked.
    counts = [int(c) for c in desktop.locator("#histogram .count").all_inner_texts()]
    assert sum(counts) == DEFAULT_DRAWS and counts == sorted(counts, reverse=True)
    mode = desktop.locator("#histogram li.mode .emoji").inner_text()
    assert mode in EMOJIS
    assert mode in desktop.locator("#dist-summary .mode-line").inner_text()
    assert "stays the mode in" in desktop.locator("#dist-summary").inner_text()
    # Fewer draws at a low temperature: the controls redraw without a new upload.
    desktop.fill("#n", "20")
    desktop.eval_on_selector(
        "#temperature", "r => { r.value = '-1'; r.dispatchEvent(new Event('input')); }"
    )
    desktop.click("#resample")
    wait_for_results(desktop, n=20)
    assert "temperature 0.10" in desktop.locator("#dist-summary .meta").inner_text()
    # Copy one emoji, then all of them, through the real clipboard.
    rows.nth(0).get_by_role("button").click()
    assert desktop.evaluate("navigator.clipboard.readText()") == shown[0]
    desktop.click("#copy-all")
    assert desktop.evaluate("navigator.clipboard.readText()") == "".join(shown)
    assert "Copied" in desktop.locator("#copy-status").inner_text()
    assert no_horizontal_overflow(desktop)
    desktop.screenshot(path=str(tmp_path / "desktop.png"), full_page=True)
    assert desktop.console_errors == []


def test_page_draws_the_apis_default_number(
    desktop: Any, server: ThreadedServer, photo: bytes
) -> None:
    default = api_default_draws(server.url)
    assert default == DEFAULT_DRAWS  # the constant the other page tests wait for
    assert desktop.input_value("#n") == str(default)
    with desktop.expect_request(lambda req: "/distribution" in req.url) as sent:
        upload(desktop, "chelsea.jpg", photo, "image/jpeg")
    assert parse_qs(urlsplit(sent.value.url).query)["n"] == [str(default)]
    wait_for_results(desktop, n=default)
    counts = [int(c) for c in desktop.locator("#histogram .count").all_inner_texts()]
    assert sum(counts) == default
    # Cleared, the field falls back to the same default rather than some other number.
    desktop.fill("#n", "")
    with desktop.expect_request(lambda req: "/distribution" in req.url) as sent:
        desktop.click("#resample")
    assert parse_qs(urlsplit(sent.value.url).query)["n"] == [str(default)]
    assert desktop.console_errors == []


def test_phone_layout_does_not_overflow(phone: Any, photo: bytes, tmp_path: Path) -> None:
    upload(phone, "chelsea.jpg", photo, "image/jpeg")
    wait_for_results(phone)
    assert no_horizontal_overflow(phone)
    # One column: the results sit below the photo, not beside it.
    photo_box = phone.locator("#drop").bounding_box()
    results_box = phone.locator("#results").bounding_box()
    assert results_box["y"] >= photo_box["y"] + photo_box["height"]
    assert results_box["x"] + results_box["width"] <= PHONE["width"]
    phone.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
    assert (tmp_path / "phone.png").stat().st_size > 10_000
    assert phone.console_errors == []


def test_non_image_shows_the_servers_error(desktop: Any) -> None:
    upload(desktop, "notes.txt", b"these are not the pixels you are looking for\n", "text/plain")
    desktop.wait_for_selector("#error:not([hidden])")
    text = desktop.locator("#error-text").inner_text()
    assert "doesn't look like an image" in text
    assert "The server said: the data is not an image" in text  # the API's own detail
    assert desktop.locator("#retry").is_hidden()  # nothing to retry: the file is the problem
    assert desktop.locator("#suggestions li").count() == 0


def test_too_large_photo_says_so(desktop: Any) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (400, 400, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, format="PNG")
    assert len(buf.getvalue()) > MAX_BODY
    upload(desktop, "huge.png", buf.getvalue(), "image/png")
    desktop.wait_for_selector("#error:not([hidden])")
    assert "too large" in desktop.locator("#error-text").inner_text()


def test_unsupported_format_and_absurd_shape_say_what_to_send(desktop: Any) -> None:
    from crafted_images import psd, strip_png

    upload(desktop, "layers.psd", psd(), "image/vnd.adobe.photoshop")
    desktop.wait_for_selector("#error:not([hidden])")
    text = desktop.locator("#error-text").inner_text()
    assert "doesn't read that kind of file: send a JPEG, PNG" in text
    assert "The server said: the file looks like a PSD image" in text
    assert desktop.locator("#retry").is_hidden()
    upload(desktop, "strip.png", strip_png(4000), "image/png")
    expect(desktop.locator("#error-text")).to_contain_text("too long and thin")
    expect(desktop.locator("#error-text")).to_contain_text("a 4,000:1 strip")


def test_overloaded_server_is_retried_after_retry_after(desktop: Any, photo: bytes) -> None:
    refused: list[float] = []

    def busy_once(route: Any) -> None:
        if not refused:
            refused.append(time.monotonic())
            route.fulfill(
                status=429,
                headers={"Retry-After": "1", "Content-Type": "application/json"},
                body='{"detail": "the request queue is full"}',
            )
        else:
            route.continue_()

    desktop.route("**/suggest?*", busy_once)
    upload(desktop, "chelsea.jpg", photo, "image/jpeg")
    desktop.wait_for_selector("#error:not([hidden])")
    text = desktop.locator("#error-text").inner_text()
    assert "busy" in text and "queue is full" in text and "Retrying in 1 s" in text
    assert desktop.locator("#retry").is_visible()
    wait_for_results(desktop)
    assert time.monotonic() - refused[0] >= 0.9  # waited for Retry-After
    assert desktop.locator("#error").is_hidden()


def test_drop_and_paste_load_a_photo(desktop: Any, photo: bytes) -> None:
    make_transfer = """([b64, name]) => {
        const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], name, {type: 'image/jpeg'}));
        return dt;
    }"""
    b64 = base64.b64encode(photo).decode()
    dt = desktop.evaluate_handle(make_transfer, [b64, "dropped.jpg"])
    desktop.dispatch_event("#drop", "drop", {"dataTransfer": dt})
    wait_for_results(desktop)
    assert desktop.locator("#file-name").inner_text() == "dropped.jpg"
    desktop.evaluate(
        f"""async () => {{
            const dt = ({make_transfer})(['{b64}', 'pasted.jpg']);
            document.dispatchEvent(new ClipboardEvent('paste', {{clipboardData: dt}}));
        }}"""
    )
    expect(desktop.locator("#file-name")).to_have_text("pasted.jpg")
    wait_for_results(desktop)


def test_keyboard_reaches_every_control(desktop: Any, photo: bytes) -> None:
    focused: list[str] = []
    for _ in range(3):
        desktop.keyboard.press("Tab")
        focused.append(
            desktop.evaluate("document.activeElement.id || document.activeElement.className")
        )
        if focused[-1] == "file":
            break
    assert focused[-1] == "file", focused
    outline = desktop.eval_on_selector(".file-label", "l => getComputedStyle(l).outlineStyle")
    assert outline == "solid"  # the visually hidden input's label shows where the focus is
    upload(desktop, "chelsea.jpg", photo, "image/jpeg")
    wait_for_results(desktop)
    desktop.focus("#file")
    order = []
    for _ in range(12):
        desktop.keyboard.press("Tab")
        order.append(
            desktop.evaluate(
                "document.activeElement.id || document.activeElement.getAttribute('aria-label')"
            )
        )
    copies = [o for o in order if o and o.startswith("Copy ")]
    assert len(copies) == 5, order
    for control in ("copy-all", "n", "temperature", "resample"):
        assert control in order, order
    # Enter on a copy button copies, as a click does.
    desktop.focus("#suggestions li button")
    desktop.keyboard.press("Enter")
    expect(desktop.locator("#copy-status")).to_contain_text("Copied")


def test_head_choice_appears_only_when_a_gan_is_loaded(
    desktop: Any, browser: Any, tiny_release: Path, photo: bytes, tmp_path: Path
) -> None:
    import torch

    from emojinet.gan import EmojiGAN, GanConfig
    from emojinet.gan_io import save_gan
    from emojinet.zeroshot import emoji_embeddings

    expect(desktop.locator("#head-field")).to_be_hidden()  # no GAN on the module's server
    model, meta = load_release(tiny_release)
    torch.manual_seed(0)
    gan = EmojiGAN(GanConfig(feature_dim=model.backbone.num_features), model.vocab,
                   emoji_embeddings(model.vocab))  # fmt: skip
    save_gan(gan, tmp_path / "gan", backbone_sha256=meta["sha256"])
    predictor = Predictor(model, TorchBackend(model, "cpu"), sha256=meta["sha256"])
    settings = Settings(gan_model=str(tmp_path / "gan"), max_pixels=1_000_000)
    with ThreadedServer(create_app(settings, predictor=predictor)) as srv:
        page = open_page(browser, srv, DESKTOP)
        expect(page.locator("#head-field")).to_be_visible()
        upload(page, "chelsea.jpg", photo, "image/jpeg")
        wait_for_results(page)
        page.select_option("#head", "gan")
        expect(page.locator("#temperature")).to_be_disabled()  # the generator has none
        expect(page.locator("#dist-summary .meta")).to_contain_text("EmojiGAN generator")
        counts = [int(c) for c in page.locator("#histogram .count").all_inner_texts()]
        assert sum(counts) == DEFAULT_DRAWS
        assert page.console_errors == []
        page.context.close()
