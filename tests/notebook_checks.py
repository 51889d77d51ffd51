"""The course's rules for a committed notebook, as a function the tests (and you) can call."""

from __future__ import annotations

import re
from pathlib import Path

from helpers._project import colab_badge_url, colab_install_cell

ALLOWED_METADATA = {"kernelspec", "language_info", "colab"}
REQUIRED_INTRO = ("What you'll do", "What you'll learn", "What you'll need")
REQUIRED_SECTIONS = ("## Setup", "## Summary", "## Exercises", "## Further reading")


def _headings(markdown: str) -> list[str]:
    """Markdown ATX headings, skipping fenced code blocks."""
    out, fenced = [], False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced and re.match(r"#{1,6} ", line):
            out.append(line.strip())
    return out


def badge_url(filename: str) -> str:
    return colab_badge_url(filename)


def check_notebook(nb, filename: str) -> list[str]:
    """Return every rule ``nb`` (an nbformat v4 notebook) breaks; empty when it is fine."""
    problems: list[str] = []
    cells = nb.cells
    if not cells or cells[0].cell_type != "markdown":
        return ["the first cell must be markdown with the title"]
    markdown = [c.source for c in cells if c.cell_type == "markdown"]
    headings = [h for source in markdown for h in _headings(source)]
    h1 = [h for h in headings if h.startswith("# ")]
    if len(h1) != 1:
        problems.append(f"expected exactly one H1 title, found {len(h1)}: {h1}")
    if not cells[0].source.lstrip().startswith("# "):
        problems.append("the first cell must start with the H1 title")
    if badge_url(filename) not in cells[0].source:
        problems.append(f"the first cell lacks an Open-in-Colab badge linking to {badge_url(filename)} "
                        "(run `python3.11 dev.py sync-notebooks`)")
    if "colab-badge.svg" not in cells[0].source:
        problems.append("the Colab badge image is missing from the first cell")
    intro = "\n".join(c.source for c in cells[: next((i for i, c in enumerate(cells)
                                                      if "## Setup" in c.source), len(cells))])
    for phrase in REQUIRED_INTRO:
        if phrase not in intro:
            problems.append(f"'{phrase}' is missing before ## Setup")
    positions = {}
    for section in REQUIRED_SECTIONS:
        found = [i for i, h in enumerate(headings) if h == section]
        if not found:
            problems.append(f"section '{section}' is missing")
        else:
            positions[section] = found[0]
    order = [positions[s] for s in REQUIRED_SECTIONS if s in positions]
    if order != sorted(order):
        problems.append("sections must come in the order Setup, Summary, Exercises, Further reading")
    code_cells = [c for c in cells if c.cell_type == "code"]
    if not code_cells or code_cells[0].source != colab_install_cell():
        problems.append("the first code cell must be helpers._project.colab_install_cell() "
                        "(run `python dev.py sync-notebooks`)")
    for index, cell in enumerate(cells):
        if cell.cell_type == "code":
            if cell.get("outputs"):
                problems.append(f"cell {index} has committed outputs")
            if cell.get("execution_count") is not None:
                problems.append(f"cell {index} has an execution count")
    problems += check_exercises(cells)
    if not filename.startswith("00_") and any("report.environment(" in c.source for c in code_cells):
        problems.append("after notebook 00, print the one-line report.environment_line(), not "
                        "report.environment()")
    kernelspec = nb.metadata.get("kernelspec", {})
    if kernelspec.get("name") != "python3":
        problems.append(f"kernelspec must be python3, got {kernelspec.get('name')!r}")
    extra = set(nb.metadata) - ALLOWED_METADATA
    if extra:
        problems.append(f"unexpected notebook metadata: {sorted(extra)}")
    return problems


def notebook_files(root: Path) -> list[Path]:
    return sorted((root / "notebooks").glob("*.ipynb"))


def check_exercises(cells) -> list[str]:
    """Every numbered exercise has a collapsed solution cell, tagged ``solution`` and starting
    ``# Solution N``, after the exercises (the tests execute them with the notebook)."""
    start = next((i for i, c in enumerate(cells) if c.cell_type == "markdown"
                  and "## Exercises" in _headings(c.source)), None)
    if start is None:
        return []
    end = next((i for i in range(start + 1, len(cells)) if cells[i].cell_type == "markdown"
                and any(h.startswith("## ") for h in _headings(cells[i].source))), len(cells))
    text = "\n".join(c.source for c in cells[start:end] if c.cell_type == "markdown")
    numbers = [int(n) for n in re.findall(r"^(\d+)\. ", text, flags=re.M)]
    solutions = {}
    for cell in cells[start:end]:
        found = re.match(r"# Solution (\d+)", cell.source) if cell.cell_type == "code" else None
        if found:
            solutions[int(found.group(1))] = cell
    problems = []
    for number in numbers:
        cell = solutions.get(number)
        if cell is None:
            problems.append(f"exercise {number} has no solution cell ('# Solution {number}')")
            continue
        if "solution" not in cell.metadata.get("tags", []):
            problems.append(f"solution {number} is not tagged 'solution'")
        if not cell.metadata.get("jupyter", {}).get("source_hidden"):
            problems.append(f"solution {number} is not collapsed (metadata jupyter.source_hidden)")
    return problems
