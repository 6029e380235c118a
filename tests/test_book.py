"""The book's sources: every chapter in the table of contents, paired Colab notebooks in sync."""

from __future__ import annotations

import subprocess
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


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_no_real_recording_is_played(chapter: Path) -> None:
    """The Bach10 recordings are for development only: a chapter may score them and plot
    them, never embed their audio (a ``Bach10Piece`` holds it as ``.mix`` / ``.stems``;
    synthetic mixtures hold ``.audio``)."""
    for cell in jupytext.read(chapter).cells:
        for line in cell.source.splitlines():
            if "audio_player(" in line:
                assert ".mix" not in line, f"{chapter.name}: plays a recording: {line.strip()}"


def _make_book_command() -> list[str]:
    """The build command of the Makefile's `book` target, with its binary resolved."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    recipe = lines[lines.index("book: setup") + 1].strip()
    return recipe.replace("$(BIN)/", str(ROOT / ".venv" / "bin") + "/").split()


@pytest.mark.slow
def test_make_book_re_executes_when_only_the_package_changed(tmp_path: Path) -> None:
    """A page whose source is unchanged shows the new output of changed package code."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    mini = {"title": "probe", "execute": config["execute"], "only_build_toc_files": True}
    (tmp_path / "_config.yml").write_text(yaml.safe_dump(mini))
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: page\n")
    (tmp_path / "page.md").write_text(
        "---\njupytext:\n  text_representation:\n    format_name: myst\n"
        "kernelspec:\n  name: python3\n  display_name: Python 3\n---\n\n# Probe\n\n"
        "```{code-cell} ipython3\nimport probe\n\nprint(probe.VALUE)\n```\n"
    )
    command = _make_book_command()
    if not Path(command[0]).exists():
        pytest.skip(f"{command[0]} not installed (run `make setup`)")
    for value in ("first-version", "second-version"):
        (tmp_path / "probe.py").write_text(f"VALUE = {value!r}\n")
        subprocess.run(command, cwd=tmp_path, check=True, capture_output=True)
        assert value in (tmp_path / "_build" / "html" / "page.html").read_text()


#: Characters of code that fit the code column of a 1280 px wide window (measured in Chromium by
#: tests/pagecheck.py, which checks the built pages; this is the quick check on the sources).
CODE_COLUMN = 76


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_code_fits_the_column(chapter: Path) -> None:
    long = [
        line
        for cell in jupytext.read(chapter).cells
        if cell.cell_type == "code"
        for line in cell.source.splitlines()
        if len(line) > CODE_COLUMN
    ]
    assert not long, f"{chapter.name}: lines over {CODE_COLUMN} characters: {long}"
