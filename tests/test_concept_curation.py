"""The curated ImageNet class → emoji list and how the concept map's build uses it."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from emojinet.vocab import current_emojis

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def scripts() -> tuple[ModuleType, ModuleType]:
    mp = pytest.MonkeyPatch()
    mp.syspath_prepend(str(ROOT / "scripts"))  # the build scripts import each other by name
    import concept_data
    import concept_map

    yield concept_data, concept_map  # type: ignore[misc]
    mp.undo()


def test_the_shipped_list_names_current_emojis_for_every_class(
    scripts: tuple[ModuleType, ModuleType],
) -> None:
    concept_data, _ = scripts
    emojis = current_emojis()
    table = concept_data.curated_table(emojis)
    assert table.shape == (1000, len(emojis))
    counts = (table > 0).sum(axis=1)
    assert counts.max() <= 3
    assert (counts > 0).mean() > 0.8  # most classes have an emoji that depicts them
    for row in table:  # positions are 1..k, each once
        assert sorted(row[row > 0].tolist()) == list(range(1, int((row > 0).sum()) + 1))
    col = {e: j for j, e in enumerate(emojis)}
    # Senses that word similarity confuses: 517 the lifting machine, 673 the computer mouse.
    assert table[517, col["🏗️"]] == 1
    assert table[673, col["🖱️"]] == 1


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "list.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_bad_list_is_refused(scripts: tuple[ModuleType, ModuleType], tmp_path: Path) -> None:
    concept_data, _ = scripts
    emojis = current_emojis()
    good = (ROOT / "scripts" / "data" / "imagenet_emojis.tsv").read_text("utf-8").splitlines()
    unknown = [good[0].split("\t")[0] + "\ttench\t🐟 🦄x", *good[1:]]
    with pytest.raises(SystemExit, match="not a current emoji"):
        concept_data.curated_table(emojis, _write(tmp_path, unknown))
    with pytest.raises(SystemExit, match="999 of the 1000"):
        concept_data.curated_table(emojis, _write(tmp_path, good[:-1]))
    with pytest.raises(SystemExit, match="repeated"):
        concept_data.curated_table(emojis, _write(tmp_path, [*good, good[0]]))


def test_curated_knobs_in_the_raw_affinity(scripts: tuple[ModuleType, ModuleType]) -> None:
    """Two classes, each its own synset only; three emojis. Class 0 lists emojis 2 then 1."""
    concept_data, concept_map = scripts
    sim = np.array([[0.6, 0.2, 0.1], [0.3, 0.5, 0.4]], np.float32)  # (S, M), gloss = name
    ing = concept_data.Ingredients(
        emojis=("a", "b", "c"),
        synsets=("s0", "s1"),
        distance=np.array([[0, -1], [-1, 0]], np.int16),
        n_classes_below=np.array([1, 1]),
        sim_name=sim,
        sim_gloss=sim,
        exact=np.zeros((2, 3), np.int8),
        exact_head=np.zeros((2, 3), np.int8),
        curated=np.array([[0, 2, 1], [0, 0, 0]], np.int8),
    )
    off = concept_map.raw_affinity(ing, concept_map.MapKnobs(curated_score=0.0))
    np.testing.assert_allclose(off, sim, atol=1e-6)  # the list is not used
    on = concept_map.raw_affinity(ing, concept_map.MapKnobs(curated_score=1.0, curated_damp=0.5))
    # Class 0: automatic values halved (0.3, 0.1, 0.05), then the listed emojis at least
    # 1.0 (first) and 0.95 (second); class 1 lists nothing and keeps its values.
    np.testing.assert_allclose(on[0], [0.3, 0.95, 1.0], atol=1e-6)
    np.testing.assert_allclose(on[1], sim[1], atol=1e-6)


def test_column_power_divides_an_emoji_many_classes_point_to(
    scripts: tuple[ModuleType, ModuleType],
) -> None:
    """Three classes name emoji a, one names b: with column_power 0.5, a's column is divided
    by sqrt(3) (its column sum), b's by max(1, 1) = 1."""
    concept_data, concept_map = scripts
    sim = np.array([[0.9, 0.1, 0.1]] * 3 + [[0.1, 0.9, 0.1]], np.float32)
    ing = concept_data.Ingredients(
        emojis=("a", "b", "c"),
        synsets=("s0", "s1", "s2", "s3"),
        distance=np.where(np.eye(4, dtype=bool), 0, -1).astype(np.int16),
        n_classes_below=np.ones(4, int),
        sim_name=sim,
        sim_gloss=sim,
        exact=np.zeros((4, 3), np.int8),
        exact_head=np.zeros((4, 3), np.int8),
        curated=np.zeros((4, 3), np.int8),
    )
    plain = concept_map.affinity(ing, concept_map.MapKnobs(temperature=0.1))
    np.testing.assert_allclose(plain[:, :2], [[1, 0], [1, 0], [1, 0], [0, 1]], atol=1e-3)
    spread = concept_map.affinity(ing, concept_map.MapKnobs(temperature=0.1, column_power=0.5))
    np.testing.assert_allclose(spread[:3, 0], 1 / np.sqrt(3), rtol=1e-3)
    np.testing.assert_allclose(spread[3, 1], 1.0, rtol=1e-3)
