"""Decoding cost benchmark: peak extra memory and time of one image, at the service's limits.

For each case an image is written at the largest size the service accepts (40 MP by default;
10 MP for WebP), or at an absurd shape, then decoded and preprocessed exactly as a request is
(``decode_image(draft_size=resize_size)`` + the eval preset), each in a fresh process so the
peak resident memory (``ru_maxrss``) above the process's warm baseline is this image's alone.
The last cases are small pictures with padded headers (what Pillow reads in Python, one piece at
a time). Prints a table and writes JSON.

    python benchmarks/bench_decode.py
    python benchmarks/bench_decode.py --max-pixels 12000000
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
MiB = 1024 * 1024

MEASURE = """
import io, json, resource, sys, time
from pathlib import Path
from PIL import Image
from emojinet.errors import EmojiNetError
from emojinet.preprocess import PreprocessConfig, decode_image
from emojinet.presets import eval_preset

cfg = PreprocessConfig()
transform = eval_preset(cfg)
warm = io.BytesIO()
Image.new("RGB", (640, 480), (1, 2, 3)).save(warm, "PNG")
transform(decode_image(warm.getvalue(), draft_size=cfg.resize_size))  # warm every code path
data = Path(sys.argv[1]).read_bytes()
max_pixels = int(sys.argv[2])
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
try:
    transform(decode_image(data, max_pixels=max_pixels, draft_size=cfg.resize_size))
    outcome = "decoded"
except EmojiNetError as exc:
    outcome = type(exc).__name__
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"extra_bytes": (peak - base) * 1024, "seconds": seconds, "outcome": outcome}))
"""


def side(pixels: int) -> tuple[int, int]:
    """A 32:25 image of at most ``pixels`` pixels (6400x6250 for 40 MP)."""
    h = int((pixels * 25 / 32) ** 0.5)
    return pixels // h, h


def encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def cases(max_pixels: int) -> dict[str, bytes]:
    """Worst cases per decoder at the limit (noise for JPEG: nothing compresses away)."""
    size = side(max_pixels)
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    palette = Image.new("P", size, 0)
    palette.putpalette([10, 20, 30] * 256)
    palette.info["transparency"] = 0
    return {
        "JPEG, noise": encode(noise, "JPEG", quality=90),
        "PNG, RGB": encode(Image.new("RGB", size, (10, 20, 30)), "PNG"),
        "PNG, RGBA": encode(Image.new("RGBA", size, (10, 20, 30, 128)), "PNG"),
        "PNG, palette + transparency": encode(palette, "PNG"),
        "PNG, 16-bit grey": encode(Image.new("I;16", size, 1000), "PNG"),
        "TIFF, RGB deflate": encode(
            Image.new("RGB", size, (1, 2, 3)), "TIFF", compression="tiff_deflate"
        ),
        "GIF": encode(Image.new("P", size, 3), "GIF"),
        "BMP, RGB": encode(Image.new("RGB", size, (1, 2, 3)), "BMP"),
        "WebP, lossless (limit / 4)": encode(
            Image.new("RGB", side(max_pixels // 4), (1, 2, 3)), "WEBP", lossless=True
        ),
        "PNG 4000x1": encode(Image.new("L", (4_000, 1)), "PNG"),
        "PNG 100000x1": encode(Image.new("L", (100_000, 1)), "PNG"),
        "PNG 40000000x1": encode(Image.new("L", (40_000_000, 1)), "PNG"),
        **padded_headers(),
    }


def padded_headers() -> dict[str, bytes]:
    """64x64 pictures whose headers are padded with legal filler (cheap to send, read by
    Pillow one piece at a time): 4 MB for JPEG, 1 MB for PNG and GIF."""
    small = Image.new("RGB", (64, 64), (1, 2, 3))
    jpeg, png, gif = (encode(small, fmt) for fmt in ("JPEG", "PNG", "GIF"))
    empty_png_chunk = b"\0\0\0\0abCd" + zlib.crc32(b"abCd").to_bytes(4, "big")
    image_block = gif.index(b"\x2c")
    return {
        "JPEG, 4 MB of empty segments": jpeg[:2] + b"\xff\xfe\0\2" * (1 << 20) + jpeg[2:],
        "JPEG, 4 MB of fill bytes": jpeg[:2] + b"\xff" * (4 << 20) + jpeg[2:],
        "PNG, 1 MB of empty chunks": png[:33] + empty_png_chunk * ((1 << 20) // 12) + png[33:],
        "GIF, 1 MB of 1-byte blocks": gif[:image_block]
        + b"\x21\xfe"
        + b"\x01a" * (1 << 19)
        + b"\0"
        + gif[image_block:],
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--max-pixels", type=int, default=40_000_000, help="EMOJINET_MAX_PIXELS")
    p.add_argument(
        "--out",
        default="runs/bench/decode.json",
        help="JSON output (default: %(default)s); --out benchmarks/results/decode.json "
        "updates the committed figures",
    )
    args = p.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in cases(args.max_pixels).items():
            path = Path(tmp) / "image"
            path.write_bytes(data)
            run = subprocess.run(
                [sys.executable, "-c", MEASURE, str(path), str(args.max_pixels)],
                capture_output=True,
                text=True,
                check=True,
                cwd=REPO,
            )
            row = {"case": name, "file_bytes": len(data), **json.loads(run.stdout)}
            rows.append(row)
            print(f"  {name}: {row['outcome']}", flush=True)
    bound = 4 * args.max_pixels + 32 * MiB
    print(
        f"\nOne image at EMOJINET_MAX_PIXELS={args.max_pixels:,} (bound 4 B x max_pixels + 32 MiB"
    )
    print(f" = {bound / MiB:.0f} MiB)\n")
    head = f"{'case':<30}{'file':>10}{'outcome':>22}{'extra RSS':>12}{'time':>9}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['case']:<30}{r['file_bytes'] / 1000:8.0f}kB{r['outcome']:>22}"
            f"{r['extra_bytes'] / MiB:8.0f} MiB{r['seconds'] * 1000:7.0f}ms"
        )
    worst = max(r["extra_bytes"] for r in rows)
    print(f"\nworst: {worst / MiB:.0f} MiB ({'within' if worst <= bound else 'OVER'} the bound)")
    result = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "load_average": os.getloadavg(),
        },
        "max_pixels": args.max_pixels,
        "bound_bytes": bound,
        "rows": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
