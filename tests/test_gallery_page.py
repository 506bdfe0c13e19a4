"""The gallery's ``index.html`` in Debian's real Chromium (headless, via playwright), opened from
disk as a person would: the built-in model on real photos (scikit-image, scikit-learn)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import CHROMIUM, CHROMIUM_ARGS, PAGE_TEST, TIMEOUT_MS
from playwright.sync_api import expect

from emojinet.gallery import GalleryConfig, build_gallery
from emojinet.predictor import Predictor

pytestmark = PAGE_TEST


@pytest.fixture(scope="module")
def index(photo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report for 6 real photos (chelsea, coffee, rocket, astronaut, china, flower)."""
    predictor = Predictor.load(None, backend="torch", device="cpu")
    out = tmp_path_factory.mktemp("gallery")
    build_gallery(photo_dir, predictor, out, GalleryConfig(top_n=4, progress=False))
    return out / "index.html"


@pytest.fixture
def page(index: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        errors: list[str] = []
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(index.as_uri())
        expect(page.locator("#meta")).to_contain_text("6 images")
        yield page
        assert errors == []
        browser.close()


def search(page: Any, term: str) -> None:
    page.fill("#q", term)


def row_emojis(page: Any) -> list[str]:
    return [t.strip() for t in page.locator("section.row .head .emoji").all_inner_texts()]


def test_the_page_states_the_minimum_score_and_shows_nothing_under_it(page: Any) -> None:
    expect(page.locator("#min-score")).to_contain_text("Only scores of 5% or more are shown")
    scores = page.locator("#view figure .score").all_inner_texts()
    assert scores and all(float(s.rstrip("%")) >= 5 for s in scores)
    cat = page.locator('section[id="emoji-🐈"]')
    expect(cat.locator("figure")).to_have_count(1)  # the cat photo alone, no padding
    expect(cat.locator("figcaption")).to_contain_text("chelsea.jpg")
    page.click("#tab-images")
    scores = page.locator(".card li .score").all_inner_texts()
    assert scores and all(float(s.rstrip("%")) >= 5 for s in scores)


def test_search_finds_file_names_in_both_tabs(page: Any) -> None:
    search(page, "chelsea")
    expect(page.locator("section.row").first).to_be_visible()
    assert "🐈" in row_emojis(page)
    rows = page.locator("section.row")
    for i in range(rows.count()):  # every row found holds the photo, marked
        expect(rows.nth(i).locator("figure.hit figcaption")).to_contain_text("chelsea.jpg")
    page.click("#tab-images")
    expect(page.locator("article.card")).to_have_count(1)
    expect(page.locator("article.card.hit .path")).to_have_text("chelsea.jpg")
    # Case does not matter; typed in the image tab, then back to the emoji tab.
    search(page, "CHINA.jpg")
    expect(page.locator("article.card .path")).to_have_text(["china.jpg"])
    page.click("#tab-emojis")
    expect(page.locator("section.row figure.hit").first).to_contain_text("china.jpg")
    assert "🏯" in row_emojis(page)
    search(page, "no-such-photo.jpg")
    expect(page.locator("#view")).to_have_text("Nothing matches.")
    page.click("#tab-images")
    expect(page.locator("#view")).to_have_text("Nothing matches.")
    # Emojis and their names are still found too.
    search(page, "Castle")
    expect(page.locator("article.card .path")).to_have_text(["china.jpg"])
    page.click("#tab-emojis")
    assert "🏯" in row_emojis(page)
    search(page, "☕")
    assert row_emojis(page) == ["☕"]
