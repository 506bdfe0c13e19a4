"""Screenshots of the web page for the README: the default model, a real photo, Debian's Chromium.

    python scripts/screenshots.py                 # docs/screenshot-{desktop,phone}.png
    python scripts/screenshots.py --photo my.jpg --out /tmp/shots

Starts the service in this process on a free loopback port, uploads the photo at desktop
(1280x800) and phone (390x844) sizes, and saves full-page PNGs (palette-quantised to stay small).
"""

from __future__ import annotations

import argparse
import io
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from PIL import Image

from service.app import create_app
from service.settings import Settings

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}


def default_photo() -> tuple[str, bytes]:
    import skimage.data

    buf = io.BytesIO()
    Image.fromarray(skimage.data.chelsea()).save(buf, format="JPEG", quality=90)
    return "chelsea.jpg", buf.getvalue()


def start_server() -> tuple[uvicorn.Server, threading.Thread, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    app = create_app(Settings(backend="torch", device="cpu"))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws="none")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    end = time.monotonic() + 180
    while time.monotonic() < end:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return server, thread, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the server at {url} did not become ready")


def shoot(browser: Any, url: str, viewport: dict[str, int], photo: tuple[str, bytes]) -> bytes:
    from playwright.sync_api import expect

    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.goto(url + "/")
    expect(page.locator("#model-info")).to_contain_text("Model", timeout=30_000)
    name, data = photo
    page.set_input_files("#file", files=[{"name": name, "mimeType": "image/jpeg", "buffer": data}])
    expect(page.locator("#suggestions li")).to_have_count(5, timeout=30_000)
    expect(page.locator("#dist-summary .meta")).to_contain_text("draws", timeout=30_000)
    page.wait_for_timeout(500)  # the score bars' width transition
    wide = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    if wide:
        raise SystemExit(f"the page overflows horizontally at {viewport}")
    png: bytes = page.screenshot(full_page=True)
    context.close()
    return png


def save_small(png: bytes, path: Path) -> None:
    """Quantise to a 256-colour palette: a quarter of the size, hard to tell apart."""
    img = Image.open(io.BytesIO(png)).convert("RGB")
    img.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        path, optimize=True
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--photo", type=Path, default=None, help="default: scikit-image's cat")
    parser.add_argument("--out", type=Path, default=REPO / "docs")
    args = parser.parse_args()
    photo = (args.photo.name, args.photo.read_bytes()) if args.photo else default_photo()
    args.out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    server, thread, url = start_server()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for label, viewport in SIZES.items():
                path = args.out / f"screenshot-{label}.png"
                save_small(shoot(browser, url, viewport, photo), path)
                print(f"wrote {path} ({path.stat().st_size / 1000:.0f} kB)")
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
