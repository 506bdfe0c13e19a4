"""Train the EmojiGAN head: a conditional WGAN-GP on cached backbone features of a classifier.

After Barbieri et al. ("EmojiGAN"): the generator G(z, f(x)) learns to draw the embedding of
one of the image's emojis; the critic D(e, f(x)) scores (embedding, image) pairs. Real samples:
for each image, an emoji drawn uniformly from its label set, ``e`` = its text embedding.

Features come from the classifier's *own* backbone (``--model``, a release or checkpoint), run
once over each split and cached; the release records that model's sha256 so the service can
refuse a GAN trained on another backbone.

Run folder (``--output-dir``)::

    config.json     the resolved configuration
    summary.csv     one row per epoch: critic loss, generator loss, gradient penalty,
                    Wasserstein estimate, validation mode hit rate and distinct emojis
    checkpoint.pt   the latest full checkpoint (every epoch)
    best.pt         the checkpoint with the best validation mode hit rate
    metrics.json    the final validation metrics
    cache/          backbone features per split
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from emojinet.checkpoint import atomic_write
from emojinet.errors import CheckpointError, EmojiNetError
from emojinet.gan import Critic, EmojiGAN, GanConfig, gradient_penalty, save_gan
from emojinet.model import EmojiNet
from emojinet.preprocess import eval_preset
from emojinet.vocab import Vocabulary
from training.datasets import EmojiImageDataset, prescaled_index, targets_matrix
from training.distributed import DistInfo
from training.distribution_metrics import distribution_metrics
from training.prepare import DatasetRecord, read_dataset
from training.summary import append_row, truncate_rows
from training.train import _cached_features, compute_features
from training.weights import WEIGHT_SCHEMES, emoji_loss_weights

__all__ = [
    "FeatureSet",
    "GanHParams",
    "backbone_features",
    "get_args_parser",
    "load_classifier",
    "main",
    "train_gan",
    "train_one_epoch",
]

log = logging.getLogger(__name__)

SUMMARY_FIELDS = (
    "epoch", "step", "critic_loss", "generator_loss", "gradient_penalty", "wasserstein",
    "val_mode_hit_rate", "val_distinct_mean", "val_js", "epoch_s",
)  # fmt: skip


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Train the EmojiGAN head (conditional WGAN-GP) on a classifier's features",
        add_help=add_help,
    )
    p.add_argument(
        "--model", required=True, help="the classifier (release or checkpoint) whose features"
    )
    p.add_argument("--data", required=True, help="a folder written by `emojinet prepare`")
    p.add_argument("--output-dir", default="runs/emojigan", help="run folder")
    p.add_argument("--epochs", type=int, default=10, help="passes of the critic over the data")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--n-critic", type=int, default=5, help="critic steps per generator step")
    p.add_argument("--gp-lambda", type=float, default=10.0, help="gradient penalty weight λ")
    p.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (the paper's)")
    p.add_argument("--beta1", type=float, default=0.1)
    p.add_argument("--beta2", type=float, default=0.9)
    p.add_argument(
        "--sample-weights",
        default="exp",
        choices=WEIGHT_SCHEMES,
        help="per-sample weights from the real emoji's frequency (EmojiGAN eq. 2: exp)",
    )
    p.add_argument("--exp-k", type=float, default=10.0, help="k of the exp-smoothed weights")
    p.add_argument("--noise-dim", type=int, default=64)
    p.add_argument("--cond-dim", type=int, default=256)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--val-split", default="val", choices=["val", "test"])
    p.add_argument("--val-limit", type=int, default=1000, help="validation images per epoch")
    p.add_argument("--val-draws", type=int, default=50, help="draws per validation image")
    p.add_argument("--limit-train", type=int, default=None, help="the first N training images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--feature-batch-size", type=int, default=256)
    p.add_argument("--workers", type=int, default=2, help="data-loading processes (features)")
    p.add_argument(
        "--resume", default=None, help="a checkpoint, or 'auto' for OUTPUT_DIR/checkpoint.pt"
    )
    p.add_argument(
        "--export", default=None, metavar="PATH", help="export best.pt as a GAN release at the end"
    )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bars (default: when stderr is a terminal)",
    )
    return p


# -- data -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureSet:
    """Backbone features with their multi-hot emoji labels."""

    features: torch.Tensor  # (N, D), fp16 or fp32
    targets: torch.Tensor  # (N, V) multi-hot, every row with at least one 1

    def __post_init__(self) -> None:
        if self.features.shape[0] != self.targets.shape[0]:
            raise ValueError("features and targets must have the same number of rows")
        if (self.targets.sum(1) <= 0).any():
            raise ValueError("every example needs at least one emoji")

    def __len__(self) -> int:
        return int(self.features.shape[0])


def load_classifier(path: str | Path) -> tuple[EmojiNet, str]:
    """The classifier and the sha256 the service reports for it (``ModelInfo.sha256``)."""
    from emojinet.backends import model_digest
    from training.evaluate import load_trained

    model, meta = load_trained(path)
    digest = meta.get("sha256") if Path(path).suffix not in (".pt", ".pth", ".ckpt") else None
    return model.eval(), str(digest or model_digest(model))


def backbone_features(
    model: EmojiNet,
    model_sha256: str,
    data: str | Path,
    records: Sequence[DatasetRecord],
    vocab: Vocabulary,
    cache_dir: Path,
    split: str,
    *,
    batch_size: int = 256,
    workers: int = 2,
    progress: bool = False,
) -> torch.Tensor:
    """(N, D) fp16 pooled backbone features of ``records``, computed once and cached.

    The cache key covers the model's sha256, its preprocessing and the records' ids and paths.
    """
    pre = model.preprocess
    h = hashlib.sha256()
    h.update(json.dumps([model_sha256, pre.to_dict()]).encode())
    for r in records:
        h.update(f"{r.id}\t{r.image}\n".encode())
    key = f"features-{split}-{h.hexdigest()[:16]}"
    dataset = EmojiImageDataset(
        data,
        records,
        vocab,
        eval_preset(pre),
        prescaled=prescaled_index(data, pre.resize_size),
        draft_size=pre.resize_size,
    )
    n_stages = len(model.backbone.stages())
    cache_dir.mkdir(parents=True, exist_ok=True)
    return _cached_features(
        cache_dir,
        key,
        lambda: compute_features(
            model,
            dataset,
            n_stages,
            torch.device("cpu"),
            batch_size,
            workers,
            progress,
            f"features {split}",
        ),
        DistInfo(),
    )


# -- training ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class GanHParams:
    """The optimisation settings of one GAN run (saved in checkpoints and config.json)."""

    epochs: int = 10
    batch_size: int = 64
    n_critic: int = 5
    gp_lambda: float = 10.0
    lr: float = 1e-4
    beta1: float = 0.1
    beta2: float = 0.9
    sample_weights: str = "exp"
    exp_k: float = 10.0
    seed: int = 0
    val_draws: int = 50

    def __post_init__(self) -> None:
        if self.sample_weights not in WEIGHT_SCHEMES:
            raise ValueError(
                f"unknown sample weighting {self.sample_weights!r}; "
                f"choose one of {', '.join(WEIGHT_SCHEMES)}"
            )
        if self.n_critic < 1 or self.batch_size < 1 or self.epochs < 0:
            raise ValueError("n_critic and batch_size must be >= 1 and epochs >= 0")


@dataclass
class GanState:
    epoch: int = 0
    step: int = 0  # critic steps so far
    best: float = -1.0


def emoji_sample_weights(hp: GanHParams, targets: torch.Tensor) -> torch.Tensor:
    """(V,) weight of a real sample whose drawn emoji is e (mean 1 over the vocabulary)."""
    doc_freq = [int(v) for v in targets.sum(0).tolist()]
    w = emoji_loss_weights(hp.sample_weights, doc_freq, int(targets.shape[0]), k=hp.exp_k)
    return torch.tensor(w, dtype=torch.float32)


def train_one_epoch(
    gan: EmojiGAN,
    critic: Critic,
    opt_g: torch.optim.Optimizer,
    opt_c: torch.optim.Optimizer,
    data: FeatureSet,
    weights: torch.Tensor,
    hp: GanHParams,
    state: GanState,
    *,
    progress: bool = False,
) -> dict[str, float]:
    """One pass of the critic over the data, a generator step every ``n_critic`` critic steps.

    Critic loss: −Σ w·(D(real) − D(fake)) / B + λ·GP; generator loss: −Σ w·D(G(z, f)) / B,
    with w the weight of each row's real emoji. The gradient penalty is not weighted: it
    keeps the critic 1-Lipschitz everywhere, whatever the emoji. All randomness comes from a
    generator seeded by (seed, epoch), so a run resumed at an epoch boundary repeats exactly.

    Returns:
        Means over the epoch's steps: ``critic_loss``, ``generator_loss``,
        ``gradient_penalty`` and ``wasserstein`` (the critic's estimate, weighted like the loss).
    """
    g = gan.generator
    rng = torch.Generator().manual_seed(hp.seed * 1_000_003 + state.epoch)
    emb = gan.emoji_embeddings  # (V, E) unit vectors
    order = torch.randperm(len(data), generator=rng)
    batches = torch.split(order, hp.batch_size)
    sums = {"critic_loss": 0.0, "gradient_penalty": 0.0, "wasserstein": 0.0}
    g_sum, g_steps = 0.0, 0
    bar = tqdm(batches, desc=f"gan epoch {state.epoch}", unit="batch", disable=not progress)
    g.train()
    critic.train()
    for idx in bar:
        f = data.features[idx].float()  # (B, D)
        k = torch.multinomial(data.targets[idx].float(), 1, generator=rng).squeeze(1)  # (B,)
        real, w = emb[k], weights[k]  # (B, E), (B,)
        z = torch.randn(len(idx), gan.cfg.noise_dim, generator=rng)  # (B, Z)
        alpha = torch.rand(len(idx), 1, generator=rng)  # (B, 1)
        with torch.no_grad():
            fake = g(z, f)  # (B, E)
        wasserstein = (w * (critic(real, f) - critic(fake, f))).mean()
        gp = gradient_penalty(critic, real, fake, f, alpha)
        loss_c = -wasserstein + hp.gp_lambda * gp
        opt_c.zero_grad(set_to_none=True)
        loss_c.backward()
        opt_c.step()
        state.step += 1
        sums["critic_loss"] += float(loss_c.detach())
        sums["gradient_penalty"] += float(gp.detach())
        sums["wasserstein"] += float(wasserstein.detach())
        if state.step % hp.n_critic == 0:
            z = torch.randn(len(idx), gan.cfg.noise_dim, generator=rng)
            critic.requires_grad_(False)
            loss_g = -(w * critic(g(z, f), f)).mean()
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            critic.requires_grad_(True)
            g_sum += float(loss_g.detach())
            g_steps += 1
        if progress:
            bar.set_postfix(
                W=f"{float(wasserstein.detach()):.3f}",
                gp=f"{float(gp.detach()):.3f}",
                g=f"{g_sum / max(g_steps, 1):.3f}",
            )
    n = max(len(batches), 1)
    out = {k: v / n for k, v in sums.items()}
    out["generator_loss"] = g_sum / g_steps if g_steps else float("nan")
    return out


@torch.no_grad()
def evaluate_gan(
    gan: EmojiGAN, data: FeatureSet, n: int, *, seed: int = 0, batch: int = 256
) -> dict[str, float]:
    """Draw ``n`` emojis per image; the distribution metrics against the labels."""
    gan.eval()
    rng = torch.Generator().manual_seed(seed)
    draws = torch.cat(
        [gan.sample(f, n, generator=rng) for f in torch.split(data.features.float(), batch)]
    )  # (N, n)
    return distribution_metrics(draws.numpy(), data.targets.numpy())


def save_gan_checkpoint(
    path: Path,
    gan: EmojiGAN,
    critic: Critic,
    opt_g: torch.optim.Optimizer,
    opt_c: torch.optim.Optimizer,
    hp: GanHParams,
    state: GanState,
    *,
    backbone_sha256: str,
    metrics: dict[str, float],
) -> None:
    """Atomically write everything needed to resume (and to export the generator)."""
    ckpt = {
        "format": "emojinet-gan-checkpoint/1",
        "gan": {k: v.detach().cpu() for k, v in gan.state_dict().items()},
        "critic": {k: v.detach().cpu() for k, v in critic.state_dict().items()},
        "opt_g": opt_g.state_dict(),
        "opt_c": opt_c.state_dict(),
        "config": gan.cfg.to_dict(),
        "vocab": gan.vocab.to_dict(),
        "hparams": asdict(hp),
        "epoch": state.epoch,
        "step": state.step,
        "best": state.best,
        "backbone_sha256": backbone_sha256,
        "metrics": dict(metrics),
    }
    atomic_write(path, lambda tmp: torch.save(ckpt, tmp))


def load_gan_checkpoint(path: str | Path) -> tuple[EmojiGAN, dict[str, Any]]:
    """The generator (as an :class:`EmojiGAN`) and the raw checkpoint dictionary."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable GAN checkpoint: {exc}") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != "emojinet-gan-checkpoint/1":
        raise CheckpointError(f"{path} is not an EmojiGAN training checkpoint")
    cfg = GanConfig(**ckpt["config"])
    vocab = Vocabulary(tuple(ckpt["vocab"]["emojis"]), tuple(ckpt["vocab"]["counts"]))
    gan = EmojiGAN(cfg, vocab, ckpt["gan"]["emoji_embeddings"])
    gan.load_state_dict(ckpt["gan"])
    return gan, ckpt


def _say(message: str) -> None:
    print(message, flush=True)  # noqa: T201


def train_gan(
    train: FeatureSet,
    val: FeatureSet | None,
    vocab: Vocabulary,
    embeddings: torch.Tensor,
    cfg: GanConfig,
    hp: GanHParams,
    out: str | Path,
    *,
    backbone_sha256: str,
    resume: str | Path | None = None,
    progress: bool = False,
    quiet: bool = False,
) -> dict[str, Any]:
    """Train on cached features; writes the run folder and returns the last epoch's row.

    Args:
        train, val: features (N, D) with multi-hot labels (N, V); ``val`` may be None.
        embeddings: (V, E) emoji embeddings (normalised to unit length by :class:`EmojiGAN`).
        backbone_sha256: the classifier whose features these are (travels to the release).
        resume: a checkpoint written by an earlier run with the same settings.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(hp.seed)
    gan = EmojiGAN(cfg, vocab, embeddings)
    critic = Critic(cfg)
    betas = (hp.beta1, hp.beta2)
    opt_g = torch.optim.Adam(gan.generator.parameters(), lr=hp.lr, betas=betas)
    opt_c = torch.optim.Adam(critic.parameters(), lr=hp.lr, betas=betas)
    state = GanState()
    summary = out / "summary.csv"
    if resume is not None:
        _, ckpt = load_gan_checkpoint(resume)
        if ckpt["backbone_sha256"] != backbone_sha256:
            raise CheckpointError(
                f"{resume} was trained on the features of model {ckpt['backbone_sha256'][:12]}…, "
                f"not {backbone_sha256[:12]}…"
            )
        if ckpt["config"] != cfg.to_dict():
            raise CheckpointError(f"{resume} has GAN config {ckpt['config']}, not {cfg.to_dict()}")
        gan.load_state_dict(ckpt["gan"])
        critic.load_state_dict(ckpt["critic"])
        opt_g.load_state_dict(ckpt["opt_g"])
        opt_c.load_state_dict(ckpt["opt_c"])
        state = GanState(int(ckpt["epoch"]), int(ckpt["step"]), float(ckpt["best"]))
        truncate_rows(summary, state.epoch, SUMMARY_FIELDS)
        if not quiet:
            _say(f"resumed from {resume} at epoch {state.epoch} (step {state.step})")
    weights = emoji_sample_weights(hp, train.targets)
    (out / "config.json").write_text(
        json.dumps(
            {
                "gan": cfg.to_dict(),
                "hparams": asdict(hp),
                "backbone_sha256": backbone_sha256,
                "vocab": vocab.to_list(),
                "sample_weights": weights.tolist(),
                "train_examples": len(train),
                "val_examples": len(val) if val is not None else 0,
            },
            ensure_ascii=False,
            indent=1,
        )
        + "\n",
        encoding="utf-8",
    )
    row: dict[str, Any] = {}
    while state.epoch < hp.epochs:
        t0 = time.time()
        stats = train_one_epoch(
            gan, critic, opt_g, opt_c, train, weights, hp, state, progress=progress
        )
        epoch_s = time.time() - t0
        val_m = evaluate_gan(gan, val, hp.val_draws, seed=hp.seed) if val is not None else {}
        row = {
            "epoch": state.epoch,
            "step": state.step,
            **stats,
            "val_mode_hit_rate": val_m.get("mode_hit_rate", float("nan")),
            "val_distinct_mean": val_m.get("distinct_mean", float("nan")),
            "val_js": val_m.get("js", float("nan")),
            "epoch_s": epoch_s,
        }
        state.epoch += 1
        append_row(summary, row, SUMMARY_FIELDS)
        log.info("gan epoch %d: %s", row["epoch"], row)
        if not quiet:
            _say(
                f"epoch {row['epoch']}: critic {row['critic_loss']:.4f}  "
                f"generator {row['generator_loss']:.4f}  GP {row['gradient_penalty']:.4f}  "
                f"W {row['wasserstein']:.4f}  val mode hit {row['val_mode_hit_rate']:.4f}  "
                f"distinct {row['val_distinct_mean']:.2f}  ({epoch_s:.0f} s)"
            )
        metrics = {k: float(v) for k, v in row.items() if isinstance(v, float | int)}
        score = float(row["val_mode_hit_rate"]) if val is not None else float(state.epoch)
        improved = score > state.best
        if improved:
            state.best = score
        args = (gan, critic, opt_g, opt_c, hp, state)
        save_gan_checkpoint(
            out / "checkpoint.pt", *args, backbone_sha256=backbone_sha256, metrics=metrics
        )
        if improved:
            save_gan_checkpoint(
                out / "best.pt", *args, backbone_sha256=backbone_sha256, metrics=metrics
            )
    if not row and (out / "checkpoint.pt").is_file():  # resumed after the last epoch
        row = dict(load_gan_checkpoint(out / "checkpoint.pt")[1]["metrics"])
    (out / "metrics.json").write_text(json.dumps(row, indent=1) + "\n", encoding="utf-8")
    return row


def export_gan(checkpoint: str | Path, path: str | Path) -> dict[str, Any]:
    """Write a GAN training checkpoint's generator as a release artifact (:func:`save_gan`)."""
    gan, ckpt = load_gan_checkpoint(checkpoint)
    metrics = {
        k: float(v) for k, v in ckpt["metrics"].items() if k.startswith("val_") or k == "epoch"
    }
    return save_gan(gan, path, backbone_sha256=ckpt["backbone_sha256"], metrics=metrics)


def main(args: argparse.Namespace) -> dict[str, Any]:
    """Cache features, train, export; returns the last epoch's summary row."""
    from emojinet.zeroshot import emoji_embeddings

    if args.threads:
        torch.set_num_threads(args.threads)
    progress = args.progress if args.progress is not None else sys.stderr.isatty()
    out = Path(args.output_dir)
    model, sha = load_classifier(args.model)
    records, vocab = read_dataset(args.data)
    if list(vocab.emojis) != list(model.vocab.emojis):
        raise EmojiNetError(
            f"the model's vocabulary ({len(model.vocab)} emojis) differs from the data set's "
            f"({len(vocab)}): train the GAN on the data set the classifier was trained on"
        )

    def split(name: str, limit: int | None) -> FeatureSet:
        chosen = [r for r in records if r.split == name][:limit]
        if not chosen:
            raise EmojiNetError(f"the data set has no {name!r} examples")
        feats = backbone_features(
            model,
            sha,
            args.data,
            chosen,
            vocab,
            out / "cache",
            name,
            batch_size=args.feature_batch_size,
            workers=args.workers,
            progress=progress,
        )
        return FeatureSet(feats, targets_matrix(chosen, vocab))

    t0 = time.time()
    train = split("train", args.limit_train)
    val = split(args.val_split, args.val_limit)
    _say(f"features: {len(train)} train, {len(val)} {args.val_split} ({time.time() - t0:.0f} s)")
    counted = Vocabulary(vocab.emojis, tuple(int(v) for v in train.targets.sum(0).tolist()))
    cfg = GanConfig(
        feature_dim=int(train.features.shape[1]),
        noise_dim=args.noise_dim,
        cond_dim=args.cond_dim,
        hidden=args.hidden,
    )
    hp = GanHParams(
        epochs=args.epochs,
        batch_size=args.batch_size,
        n_critic=args.n_critic,
        gp_lambda=args.gp_lambda,
        lr=args.lr,
        beta1=args.beta1,
        beta2=args.beta2,
        sample_weights=args.sample_weights,
        exp_k=args.exp_k,
        seed=args.seed,
        val_draws=args.val_draws,
    )
    resume: Path | None = None
    if args.resume:
        resume = out / "checkpoint.pt" if args.resume == "auto" else Path(args.resume)
        if args.resume == "auto" and not resume.is_file():
            resume = None
    row = train_gan(
        train,
        val,
        counted,
        emoji_embeddings(vocab),
        cfg,
        hp,
        out,
        backbone_sha256=sha,
        resume=resume,
        progress=progress,
    )
    if args.export:
        export_gan(out / "best.pt", args.export)
        _say(f"exported {out / 'best.pt'} to {args.export}")
    return row


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        main(get_args_parser().parse_args())
    except EmojiNetError as exc:
        sys.stderr.write(f"emojinet train-gan: error: {exc}\n")
        sys.exit(2)
