"""Train the EmojiGAN head (``emojinet train-gan``): a conditional WGAN-GP on cached backbone
features of a classifier.

After Barbieri et al. ("EmojiGAN"): the generator G(z, f(x)) learns to draw the embedding of
one of the image's emojis; the critic D(e, f(x)) scores (embedding, image) pairs. Real samples:
for each image, an emoji drawn uniformly from its label set, ``e`` = its text embedding. The
GAN's vocabulary is the model's; emojis no training image carries are never decoded to.

Features come from the classifier's *own* backbone (``--model``, a release or checkpoint), run
once over each split and cached (:func:`training.features.backbone_features`); the release
records that model's sha256 so the service can refuse a GAN trained on another backbone.

The run folder is a :class:`~training.run_dir.RunDir`: ``config.json``, ``summary.csv`` (one
row per epoch: critic loss, generator loss, gradient penalty, Wasserstein estimate, validation
mode hit rate, distinct emojis and JS), ``checkpoint.pt`` (every epoch), ``best.pt`` (best
validation mode hit rate), ``metrics.json`` and ``cache/``.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from emojinet.checkpoint import load
from emojinet.errors import VocabularyError
from emojinet.gan import EmojiGAN, GanConfig
from emojinet.vocab import Vocabulary
from training.datasets import check_vocabulary, select_split
from training.distribution_metrics import distribution_metrics
from training.errors import DataError
from training.features import FeatureSet, backbone_features
from training.gan_checkpoint import (
    GanHParams,
    GanNets,
    GanState,
    export_gan,
    restore_gan,
    save_gan_checkpoint,
)
from training.gan_losses import Critic, gradient_penalty
from training.metrics import scalars
from training.options import gan_args_parser as get_args_parser
from training.options import show_progress
from training.prepare import read_dataset
from training.run_dir import RunDir
from training.utils import configure_torch, epoch_seed, run_script, seed_everything
from training.weights import emoji_loss_weights

__all__ = [
    "emoji_sample_weights",
    "evaluate_gan",
    "get_args_parser",
    "main",
    "train_gan",
    "train_one_epoch",
]

log = logging.getLogger(__name__)

VAL_METRICS = ("mode_hit_rate", "distinct_mean", "js")
TRAIN_STATS = ("critic_loss", "generator_loss", "gradient_penalty", "wasserstein")
SUMMARY_FIELDS = ("epoch", "step", *TRAIN_STATS, *(f"val_{k}" for k in VAL_METRICS), "epoch_s")


def emoji_sample_weights(hp: GanHParams, targets: torch.Tensor) -> torch.Tensor:
    """(V,) weight of a real sample whose drawn emoji is e (mean 1 over the vocabulary)."""
    doc_freq = [int(v) for v in targets.sum(0).tolist()]
    w = emoji_loss_weights(hp.sample_weights, doc_freq, int(targets.shape[0]), k=hp.exp_k)
    return torch.tensor(w, dtype=torch.float32)


def train_one_epoch(
    nets: GanNets,
    data: FeatureSet,
    weights: torch.Tensor,
    hp: GanHParams,
    state: GanState,
    *,
    progress: bool = False,
) -> dict[str, float | None]:
    """One pass of the critic over the data, a generator step every ``n_critic`` critic steps.

    Critic loss: −Σ w·(D(real) − D(fake)) / B + λ·GP; generator loss: −Σ w·D(G(z, f)) / B,
    with w the weight of each row's real emoji. The gradient penalty is not weighted: it
    keeps the critic 1-Lipschitz everywhere, whatever the emoji. All randomness comes from a
    generator seeded by (seed, epoch), so a run resumed at an epoch boundary repeats exactly.

    Returns:
        Means over the epoch's steps: ``critic_loss``, ``generator_loss``,
        ``gradient_penalty`` and ``wasserstein`` (the critic's estimate, weighted like the loss).
        ``generator_loss`` is None when the epoch had no generator step (fewer than
        ``n_critic`` batches, counting from the run's last generator step).
    """
    gan, critic, opt_g, opt_c = nets.gan, nets.critic, nets.opt_g, nets.opt_c
    g = gan.generator
    rng = torch.Generator().manual_seed(epoch_seed(hp.seed, state.epoch))
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
    out: dict[str, float | None] = {k: v / n for k, v in sums.items()}
    out["generator_loss"] = g_sum / g_steps if g_steps else None
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


def make_nets(
    cfg: GanConfig, vocab: Vocabulary, embeddings: torch.Tensor, hp: GanHParams
) -> GanNets:
    """A fresh generator and critic (seeded by :func:`seed_everything`), Adam for each."""
    seed_everything(hp.seed)
    gan = EmojiGAN(cfg, vocab, embeddings)
    critic = Critic(cfg)
    betas = (hp.beta1, hp.beta2)
    opt_g = torch.optim.Adam(gan.generator.parameters(), lr=hp.lr, betas=betas)
    opt_c = torch.optim.Adam(critic.parameters(), lr=hp.lr, betas=betas)
    return GanNets(gan, critic, opt_g, opt_c)


def epoch_message(row: dict[str, Any]) -> str:
    """The progress line of one epoch; a metric that does not exist (None) shows as ``-``."""

    def num(key: str, digits: int = 4) -> str:
        v = row.get(key)
        return "-" if v is None else f"{v:.{digits}f}"

    return (
        f"epoch {row['epoch']}: critic {num('critic_loss')}  "
        f"generator {num('generator_loss')}  GP {num('gradient_penalty')}  "
        f"W {num('wasserstein')}  val mode hit {num('val_mode_hit_rate')}  "
        f"distinct {num('val_distinct_mean', 2)}  ({row['epoch_s']:.0f} s)"
    )


def train_gan(
    train: FeatureSet,
    val: FeatureSet | None,
    vocab: Vocabulary,
    embeddings: torch.Tensor,
    cfg: GanConfig,
    hp: GanHParams,
    out: str | Path | RunDir,
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
        out: the run folder.
        backbone_sha256: the classifier whose features these are (travels to the release).
        resume: a checkpoint written by an earlier run with the same settings.
    """
    run = out if isinstance(out, RunDir) else RunDir(out, SUMMARY_FIELDS, quiet=quiet)
    nets = make_nets(cfg, vocab, embeddings, hp)
    state = GanState()
    if resume is not None:
        state = restore_gan(Path(resume), nets, backbone_sha256=backbone_sha256)
        run.resumed(Path(resume), state)
    weights = emoji_sample_weights(hp, train.targets)
    run.write_config(
        {
            "gan": cfg.to_dict(),
            "hparams": asdict(hp),
            "backbone_sha256": backbone_sha256,
            "vocab": vocab.to_list(),
            "sample_weights": weights.tolist(),
            "train_examples": len(train),
            "val_examples": len(val) if val is not None else 0,
        }
    )
    row: dict[str, Any] = {}
    while state.epoch < hp.epochs:
        t0 = time.time()
        stats = train_one_epoch(nets, train, weights, hp, state, progress=progress)
        epoch_s = time.time() - t0
        val_m = evaluate_gan(nets.gan, val, hp.val_draws, seed=hp.seed) if val is not None else {}
        row = {
            "epoch": state.epoch,
            "step": state.step,
            **stats,
            **{f"val_{k}": val_m.get(k) for k in VAL_METRICS},  # None: no validation
            "epoch_s": epoch_s,
        }
        state.epoch += 1
        score = float(row["val_mode_hit_rate"]) if val is not None else float(state.epoch)
        save = partial(
            save_gan_checkpoint, nets=nets, hp=hp, state=state,
            backbone_sha256=backbone_sha256, metrics=scalars(row),
        )  # fmt: skip
        run.end_epoch(row, state, score=score, save=save, message=epoch_message(row))
    return run.finish(row)


def embed_vocabulary(vocab: Vocabulary, data: str | Path) -> torch.Tensor:
    """(V, 384) embeddings of the data set's emojis, the space the generator draws in.

    Raises:
        DataError: naming the emojis that have no embedding (nor a base emoji with one).
    """
    from emojinet.zeroshot import emoji_embeddings

    try:
        return emoji_embeddings(vocab)
    except VocabularyError as exc:
        raise DataError(
            f"cannot train the EmojiGAN on {data}: {exc} (the shipped embeddings cover the "
            "emoji package's emojis they were built from; rebuild them with "
            "scripts/build_text_embeddings.py, or leave those emojis out of the vocabulary)"
        ) from exc


def main(args: argparse.Namespace) -> dict[str, Any]:
    """Cache features, train, export; returns the last epoch's summary row."""
    configure_torch(threads=args.threads)
    progress = show_progress(args)
    run = RunDir(args.output_dir, SUMMARY_FIELDS)
    model, meta = load(args.model)
    model.eval()
    records, data_vocab = read_dataset(args.data)
    check_vocabulary(model.vocab, data_vocab)
    # The model's vocabulary (a --vocab all model answers over more emojis than its data set
    # labels): the service and `evaluate --distribution` pair the GAN with the model by it.
    vocab = model.vocab
    embeddings = embed_vocabulary(vocab, args.data)  # before the (long) feature extraction

    def features(split: str, limit: int | None) -> FeatureSet:
        chosen = select_split(records, split, limit)
        return backbone_features(
            model, meta.digest, args.data, chosen, vocab, run.cache, split,
            batch_size=args.feature_batch_size, workers=args.workers, progress=progress,
        )  # fmt: skip

    t0 = time.time()
    train, val = features("train", args.limit_train), features(args.val_split, args.val_limit)
    run.say(f"features: {len(train)} train, {len(val)} {args.val_split} ({time.time() - t0:.0f} s)")
    counted = Vocabulary(vocab.emojis, tuple(int(v) for v in train.targets.sum(0).tolist()))
    cfg = GanConfig(
        feature_dim=int(train.features.shape[1]),
        noise_dim=args.noise_dim,
        cond_dim=args.cond_dim,
        hidden=args.hidden,
    )
    hp = GanHParams.from_args(args)
    row = train_gan(
        train, val, counted, embeddings, cfg, hp, run,
        backbone_sha256=meta.digest, resume=run.resume_path(args.resume), progress=progress,
    )  # fmt: skip
    run.export(export_gan, args.export)
    return row


if __name__ == "__main__":
    run_script(main, get_args_parser())
