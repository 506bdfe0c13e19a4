"""The emoji vocabulary: an ordered, immutable list of fully-qualified emojis with counts."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

import emoji as emoji_lib

from emojinet.errors import VocabularyError

__all__ = [
    "DEFAULT_VOCAB_FILE",
    "Vocabulary",
    "all_emojis",
    "current_emojis",
    "emoji_name",
    "normalize_emoji",
]

DEFAULT_VOCAB_FILE = "vocab_top500.json"
_FULLY_QUALIFIED = emoji_lib.STATUS["fully_qualified"]
_VS16 = "\ufe0f"
_SKIN_TONES = frozenset(chr(c) for c in range(0x1F3FB, 0x1F400))


def normalize_emoji(text: str, *, fold_skin_tone: bool = False) -> str | None:
    """Return the fully-qualified form of one emoji, or None if ``text`` is not a single emoji.

    ``❤`` (unqualified) and ``❤️`` both give ``❤️``. With ``fold_skin_tone`` a skin-toned emoji
    is mapped to its base form (``👍🏽`` → ``👍``).
    """
    text = text.strip()
    if fold_skin_tone:
        folded = "".join(ch for ch in text if ch not in _SKIN_TONES)
        if folded != text and folded:
            text = folded
    candidates = [text, text + _VS16, text.replace(_VS16, "")]
    for candidate in candidates:
        data = emoji_lib.EMOJI_DATA.get(candidate)
        if data is not None and data["status"] == _FULLY_QUALIFIED:
            return candidate
    # Unqualified forms whose fully-qualified spelling adds VS16 after the first code point.
    if text and text[0] + _VS16 + text[1:] in emoji_lib.EMOJI_DATA:
        return text[0] + _VS16 + text[1:]
    return None


def emoji_name(e: str) -> str:
    """CLDR short name of a fully-qualified emoji, e.g. ``"cat face"``."""
    data = emoji_lib.EMOJI_DATA[e]
    return str(data["en"]).strip(":").replace("_", " ")


def emoji_aliases(e: str) -> list[str]:
    """GitHub/Slack-style aliases of an emoji, as words (``":joy:"`` → ``"joy"``)."""
    data = emoji_lib.EMOJI_DATA[e]
    return [str(a).strip(":").replace("_", " ") for a in data.get("alias", [])]


@cache
def all_emojis() -> tuple[str, ...]:
    """Every fully-qualified single emoji: no skin-tone variants, no ZWJ sequences (1,674)."""
    out = [
        e
        for e, data in emoji_lib.EMOJI_DATA.items()
        if data["status"] == _FULLY_QUALIFIED
        and "\u200d" not in e
        and not any(ch in _SKIN_TONES for ch in e)
    ]
    return tuple(sorted(out))


@cache
def current_emojis() -> tuple[str, ...]:
    """Every fully-qualified emoji of the ``emoji`` package without skin-tone variants: the single
    emojis of :func:`all_emojis` plus ZWJ sequences such as 🍋‍🟩 lime or 🧑‍🚀 astronaut (1,923)."""
    out = [
        e
        for e, data in emoji_lib.EMOJI_DATA.items()
        if data["status"] == _FULLY_QUALIFIED and not any(ch in _SKIN_TONES for ch in e)
    ]
    return tuple(sorted(out))


@dataclass(frozen=True)
class Vocabulary(Sequence[str]):
    """An ordered, immutable vocabulary of fully-qualified emojis.

    ``counts`` holds real usage counts (the frequency prior); emojis without a known count get 0.
    """

    emojis: tuple[str, ...]
    counts: tuple[int, ...] = ()
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.emojis:
            raise VocabularyError("a vocabulary needs at least one emoji")
        counts = self.counts or (0,) * len(self.emojis)
        if len(counts) != len(self.emojis):
            raise VocabularyError(
                f"{len(self.emojis)} emojis but {len(counts)} counts: give one count per emoji"
            )
        if any(c < 0 for c in counts):
            raise VocabularyError("counts must be non-negative")
        index: dict[str, int] = {}
        for i, e in enumerate(self.emojis):
            if normalize_emoji(e) != e:
                fixed = normalize_emoji(e)
                hint = f" (did you mean {fixed!r}?)" if fixed else ""
                raise VocabularyError(
                    f"entry {i} ({e!r}) is not a fully-qualified single emoji{hint}"
                )
            if e in index:
                raise VocabularyError(f"duplicate emoji {e!r} at positions {index[e]} and {i}")
            index[e] = i
        object.__setattr__(self, "counts", tuple(int(c) for c in counts))
        object.__setattr__(self, "_index", index)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_emojis(cls, emojis: Iterable[str], counts: Iterable[int] | None = None) -> Vocabulary:
        """Build from emojis in any qualification (``❤`` is accepted as ``❤️``)."""
        normalized: list[str] = []
        for i, raw in enumerate(emojis):
            e = normalize_emoji(raw)
            if e is None:
                raise VocabularyError(f"entry {i} ({raw!r}) is not an emoji")
            normalized.append(e)
        return cls(tuple(normalized), tuple(counts) if counts is not None else ())

    @classmethod
    def from_file(cls, path: str | Path) -> Vocabulary:
        """Read a vocabulary file: JSON (``{"emojis": [...], "counts": [...]}``) or text.

        A text file has one emoji per line, optionally followed by a tab and a count;
        blank lines and lines starting with ``#`` are ignored.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise VocabularyError(f"cannot read vocabulary file {path}: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise VocabularyError(f"vocabulary file {path} is not UTF-8 text") from exc
        if path.suffix == ".json":
            try:
                data = json.loads(text)
                return cls.from_emojis(data["emojis"], data.get("counts"))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise VocabularyError(
                    f'{path}: expected JSON like {{"emojis": [...], "counts": [...]}}'
                ) from exc
        emojis: list[str] = []
        counts: list[int] = []
        for lineno, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split("\t")
            emojis.append(parts[0])
            try:
                counts.append(int(parts[1]) if len(parts) > 1 and parts[1] else 0)
            except ValueError as exc:
                raise VocabularyError(
                    f"{path}:{lineno}: count {parts[1]!r} is not an integer"
                ) from exc
        return cls.from_emojis(emojis, counts)

    @classmethod
    def default(cls) -> Vocabulary:
        """The built-in vocabulary: the 500 most-used emojis of the Emoji Sentiment Ranking."""
        return _default_vocab()

    @classmethod
    def all(cls) -> Vocabulary:
        """Every current emoji (:func:`current_emojis`: ZWJ sequences included, no skin-tone
        variants); counts from the default vocabulary where known."""
        known = dict(zip(_default_vocab().emojis, _default_vocab().counts, strict=True))
        emojis = current_emojis()
        return cls(emojis, tuple(known.get(e, 0) for e in emojis))

    @classmethod
    def resolve(cls, spec: str | None) -> Vocabulary:
        """``None``/``"default"`` → default (top 500), ``"all"`` → :meth:`all`, else a file."""
        if spec in (None, "", "default"):
            return cls.default()
        if spec == "all":
            return cls.all()
        return cls.from_file(spec)

    # -- access -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.emojis)

    def __getitem__(self, i: int) -> str:  # type: ignore[override]
        return self.emojis[i]

    def __iter__(self) -> Iterator[str]:
        return iter(self.emojis)

    def __contains__(self, e: object) -> bool:
        return e in self._index

    def index(self, e: str, start: int = 0, stop: int | None = None) -> int:
        """Position of an emoji (any qualification accepted)."""
        key = normalize_emoji(e) or e
        try:
            return self._index[key]
        except KeyError:
            raise VocabularyError(f"{e!r} is not in this vocabulary") from None

    def name(self, i: int) -> str:
        return emoji_name(self.emojis[i])

    def names(self) -> list[str]:
        return [emoji_name(e) for e in self.emojis]

    def to_list(self) -> list[str]:
        return list(self.emojis)

    def to_dict(self) -> dict[str, list[str] | list[int]]:
        return {"emojis": list(self.emojis), "counts": list(self.counts)}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(
            json.dumps(self.to_dict(), ensure_ascii=False, indent=0) + "\n", encoding="utf-8"
        )

    def frequencies(self, smoothing: float = 1.0) -> list[float]:
        """Add-``smoothing`` relative frequencies, so emojis newer than the counts are not zero."""
        total = sum(self.counts) + smoothing * len(self)
        return [(c + smoothing) / total for c in self.counts]

    def __hash__(self) -> int:
        return hash(self.emojis)


@cache
def _default_vocab() -> Vocabulary:
    text = resources.files("emojinet.data").joinpath(DEFAULT_VOCAB_FILE).read_text("utf-8")
    data = json.loads(text)
    return Vocabulary(tuple(data["emojis"]), tuple(data["counts"]))
