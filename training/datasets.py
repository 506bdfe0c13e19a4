"""Examples of a prepared data set: which records a split holds (:func:`select_split`), their
targets, the torch data set over their images, and a resumable, shardable epoch sampler."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset, Sampler

from emojinet.preprocess import PreprocessConfig, load_image
from emojinet.presets import eval_preset
from emojinet.vocab import Vocabulary
from training.errors import DataError
from training.prepare import DatasetRecord
from training.utils import epoch_seed

__all__ = [
    "EmojiImageDataset",
    "EpochSampler",
    "check_vocabulary",
    "image_dataset",
    "prescaled_index",
    "select_split",
    "targets_matrix",
]

PRESCALED_INDEX = "index.json"


def select_split(
    records: Sequence[DatasetRecord],
    split: str,
    limit: int | None = None,
    *,
    unlabelled: bool = False,
) -> list[DatasetRecord]:
    """The records of ``split`` in manifest order, the first ``limit`` of them when given.

    Records with no emoji (``"emojis": []``, kept by ``prepare --keep-unlabelled`` for
    distillation from a teacher) are left out unless ``unlabelled``: as supervised examples
    their all-zero targets would teach that no emoji fits.

    Raises:
        DataError: the split is empty.
    """
    chosen = [r for r in records if r.split == split and (unlabelled or r.emojis)]
    if not chosen:
        raise DataError(
            f"the data set has no {split!r} examples (re-run prepare with a {split} fraction)"
        )
    return chosen[:limit] if limit else chosen


def check_vocabulary(model_vocab: Vocabulary, data_vocab: Vocabulary) -> None:
    """A model only scores the data set it was trained on: its emojis first, in order (a model
    trained with ``--vocab all`` answers over more emojis after them)."""
    if list(model_vocab.emojis[: len(data_vocab)]) != list(data_vocab.emojis):
        raise DataError(
            f"the model's vocabulary ({len(model_vocab)} emojis) differs from the data set's "
            f"({len(data_vocab)}): use the data set the model was trained on"
        )


def targets_matrix(records: Sequence[DatasetRecord], vocab: Vocabulary) -> torch.Tensor:
    """Multi-hot (N, V) float targets."""
    y = torch.zeros(len(records), len(vocab))
    for i, r in enumerate(records):
        for e in r.emojis:
            y[i, vocab.index(e)] = 1.0
    return y


def prescaled_index(root: str | Path, size: int) -> dict[str, str] | None:
    """``{id: path}`` of a finished ``emojinet prescale --size SIZE`` run, or None."""
    index = Path(root) / "prescaled" / str(size) / PRESCALED_INDEX
    if not index.is_file():
        return None
    data: dict[str, str] = json.loads(index.read_text(encoding="utf-8"))
    return data


class EmojiImageDataset(Dataset[tuple[torch.Tensor, torch.Tensor, int]]):
    """Images of one split with multi-hot targets; items are ``(image, target, index)``.

    Augmentation randomness is seeded per (seed, epoch, index), so a sample is transformed the
    same way whichever worker loads it and whether or not the run was resumed.
    """

    def __init__(
        self,
        root: str | Path,
        records: Sequence[DatasetRecord],
        vocab: Vocabulary,
        transform: Callable[[object], torch.Tensor],
        *,
        prescaled: dict[str, str] | None = None,
        seed: int = 0,
        draft_size: int | None = None,
    ) -> None:
        self.root = Path(root)
        self.records = list(records)
        self.targets = targets_matrix(self.records, vocab)
        self.transform = transform
        self.prescaled = prescaled
        self.seed = seed
        self.epoch = 0
        self.draft_size = draft_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    def path(self, i: int) -> Path:
        r = self.records[i]
        rel = self.prescaled.get(r.id) if self.prescaled else None
        return self.root / (rel if rel is not None else r.image)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        img = load_image(self.path(i), draft_size=self.draft_size)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(epoch_seed(self.seed, self.epoch) * 10_000_019 + i)
            x = self.transform(img)
        return x, self.targets[i], i


def image_dataset(
    root: str | Path,
    records: Sequence[DatasetRecord],
    vocab: Vocabulary,
    pre: PreprocessConfig,
    *,
    transform: Callable[[object], torch.Tensor] | None = None,
    seed: int = 0,
) -> EmojiImageDataset:
    """``records`` through ``transform`` (default: the shared eval preset of ``pre``), read from
    ``emojinet prescale``'s copies when they exist for ``pre.resize_size``."""
    return EmojiImageDataset(
        root,
        records,
        vocab,
        transform or eval_preset(pre),
        prescaled=prescaled_index(root, pre.resize_size),
        seed=seed,
        draft_size=pre.resize_size,
    )


class EpochSampler(Sampler[int]):
    """A seeded permutation per epoch, sharded across ranks, that can start part-way.

    ``set_epoch(e, start=k)`` skips this rank's first ``k`` indices: resuming after ``k`` seen
    samples yields exactly the rest of the epoch. Shards are padded to equal length (as
    ``DistributedSampler`` does) so every rank runs the same number of steps.
    """

    def __init__(
        self, n: int, *, seed: int = 0, shuffle: bool = True, rank: int = 0, world_size: int = 1
    ) -> None:
        self.n, self.seed, self.shuffle = n, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def shard_size(self) -> int:
        return -(-self.n // self.world_size)

    def indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 7919 + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        total = self.shard_size() * self.world_size
        order += order[: total - len(order)]
        return order[self.rank : total : self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices()[self.start :])

    def __len__(self) -> int:
        return self.shard_size() - self.start
