"""The book's sources: every chapter in the table of contents, paired Colab notebooks in sync."""

from __future__ import annotations

from pathlib import Path

import jupytext
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("0*.md"))


def _toc_files() -> set[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = {toc["root"]}
    for part in toc.get("parts", []):
        files |= {chapter["file"] for chapter in part["chapters"]}
    return files


def test_every_chapter_is_in_the_table_of_contents() -> None:
    listed = _toc_files()
    missing = [c.name for c in CHAPTERS if f"book/{c.stem}" not in listed]
    assert not missing, f"chapters missing from _toc.yml: {missing}"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_colab_notebook_matches_its_chapter(chapter: Path) -> None:
    """Colab opens book/<chapter>.ipynb: it must hold the .md's cells (`make notebooks`)."""
    paired = chapter.with_suffix(".ipynb")
    assert paired.exists(), f"{paired.name} is missing: run `make notebooks`"
    source = [(c.cell_type, c.source) for c in jupytext.read(chapter).cells]
    colab = [(c.cell_type, c.source) for c in jupytext.read(paired).cells]
    assert source == colab, f"{paired.name} is stale against {chapter.name}: run `make notebooks`"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_states_its_runtime_and_imports_timbrelab(chapter: Path) -> None:
    text = chapter.read_text()
    assert "import timbrelab" in text or "from timbrelab" in text
    assert "untime" in text, f"{chapter.name} should state its runtime at the end"
