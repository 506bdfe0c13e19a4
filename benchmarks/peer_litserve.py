"""A LitServe server running the same ONNX model file as ``emojinet serve``: the peer to beat.

``benchmarks/bench_serve.py --peer`` starts it; it needs the benchmark extra (``pip install
-e '.[bench]'``: LitServe 0.2.19). It is written as a LitServe user would write it, with the
same preprocessing (:meth:`emojinet.predictor.Predictor.preprocess`), the same ONNX Runtime
session options and the same top-5 answer, so that only the serving layer differs.

    python benchmarks/peer_litserve.py --port 8100 --max-batch-size 32
"""

import argparse
from typing import Any

import litserve as ls
import numpy as np
from fastapi import Request

from emojinet.predictor import Predictor


class EmojiAPI(ls.LitAPI):  # type: ignore[misc]
    def __init__(self, model: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.model = model

    def setup(self, device: str) -> None:
        self.predictor = Predictor.load(self.model or None, backend="onnx", device="cpu")

    def decode_request(self, request: Request) -> np.ndarray:
        # LitServe hands a multipart body over as its parsed form (the annotation tells it to).
        data = request["image"].file.read()  # type: ignore[index]
        return self.predictor.preprocess(data)

    def batch(self, inputs: list[np.ndarray]) -> np.ndarray:
        return np.stack(inputs)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.predictor.run_batch(x).probs

    def unbatch(self, output: np.ndarray) -> list[np.ndarray]:
        return list(output)

    def encode_response(self, probs: np.ndarray) -> dict[str, Any]:
        top = np.argsort(-probs)[:5]
        vocab = self.predictor.vocab
        return {"emojis": [{"emoji": vocab[i], "score": float(probs[i])} for i in top]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, default=8100)
    p.add_argument("--model", default="", help="release artifact (default: the built-in model)")
    p.add_argument("--max-batch-size", type=int, default=32)
    p.add_argument("--batch-timeout", type=float, default=0.002, help="seconds")
    args = p.parse_args()
    api = EmojiAPI(
        args.model,
        max_batch_size=args.max_batch_size,
        batch_timeout=args.batch_timeout,
        api_path="/suggest",
    )
    server = ls.LitServer(api, accelerator="cpu", timeout=60)
    server.run(host="127.0.0.1", port=args.port, generate_client_file=False)


if __name__ == "__main__":
    main()
