"""How the files in this folder were made (kept for the record; ran once, at commit bccc78e;
the registration helper it uses was renamed since, and newer code cannot write "old" files).

It writes, with the EmojiNet code of that commit: a training checkpoint and a release written
by the real trainer (``training.train``, 1 epoch on 48 Fashion-MNIST images, the tiny test
backbone of ``tests/legacy_backbone.py``), a zero-shot release, and ``expected.json``: each
model's probabilities for two real photos, to compare after loading with newer code.
Run from the repository root: ``python tests/data/legacy/make_fixtures.py``.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import legacy_backbone  # noqa: E402
from training_data import fashion_dataset  # noqa: E402

from emojinet import checkpoint  # noqa: E402
from emojinet.model import EmojiNetConfig, build_model  # noqa: E402
from emojinet.preprocess import decode_image  # noqa: E402
from emojinet.presets import eval_preset  # noqa: E402
from emojinet.vocab import Vocabulary  # noqa: E402


def _photos() -> dict[str, np.ndarray]:
    import skimage.data as sd

    return {"chelsea": sd.chelsea(), "coffee": sd.coffee()}


def _probs(model: torch.nn.Module, images: dict[str, np.ndarray]) -> dict[str, list[float]]:
    from PIL import Image

    transform = eval_preset(model.preprocess)  # type: ignore[arg-type]
    out = {}
    for name, arr in images.items():
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="PNG")
        x = transform(decode_image(buf.getvalue()))[None]
        with torch.no_grad():
            out[name] = torch.sigmoid(model.eval()(x))[0].tolist()
    return out


def main() -> None:
    with legacy_backbone.registered():
        _write_all()


def _write_all() -> None:
    torch.manual_seed(0)
    images = _photos()
    expected: dict[str, object] = {"commit": "bccc78e"}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data = fashion_dataset(tmp, n_train=48, n_test=12, val_fraction=0.25)
        run = tmp / "run"
        paths = [str(REPO), str(REPO / "tests")]
        code = (
            f"import sys; sys.path[:0] = {paths!r}; import legacy_backbone; "
            "legacy_backbone.registered().__enter__(); "
            "from training.train import get_args_parser, main; "
            "main(get_args_parser().parse_args(sys.argv[1:]))"
        )
        args = [
            "--data", str(data), "--output-dir", str(run), "--epochs", "1",
            "--backbone", "legacy_tiny", "--weights", "none", "--batch-size", "8",
            "--workers", "0", "--no-progress", "--seed", "1", "--lr", "0.01",
            "--export", str(run / "release"), "--name", "legacy-linear",
        ]  # fmt: skip
        subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, check=True)
        shutil.copy(run / "checkpoint.pt", HERE / "checkpoint.pt")
        for suffix in (".safetensors", ".json"):
            shutil.copy(run / f"release{suffix}", HERE / f"linear{suffix}")
    ckpt_model, _ = checkpoint.load_checkpoint(HERE / "checkpoint.pt")
    expected["checkpoint"] = _probs(ckpt_model, images)
    linear, _ = checkpoint.load_release(HERE / "linear")
    expected["linear"] = _probs(linear, images)
    vocab = Vocabulary.from_emojis(("🐱", "☕", "🚀", "🌸", "😂"), counts=(5, 4, 3, 2, 1))
    cfg = EmojiNetConfig(backbone="legacy_tiny", head="zeroshot", name="legacy-zeroshot")
    zeroshot = build_model(cfg, vocab).eval()
    checkpoint.export_release(zeroshot, HERE / "zeroshot")
    expected["zeroshot"] = _probs(zeroshot, images)
    expected["zeroshot_preprocess"] = zeroshot.preprocess.to_dict()
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")


if __name__ == "__main__":
    main()
