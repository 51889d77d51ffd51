"""Notebook 00's course table is the README's notebook table (one source for the times)."""
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def table_rows(text: str) -> list[str]:
    """The first markdown table in ``text`` that has a 'Notebook' header, row by row."""
    lines = text.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith("| Notebook"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append(line.strip())
    return rows


def test_overview_table_equals_the_readme_table():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    readme_rows = table_rows(readme.split("## The notebooks", 1)[1])
    nb = json.loads((ROOT / "notebooks" / "00_setup_and_overview.ipynb").read_text(encoding="utf-8"))
    cell = next("".join(c["source"]) for c in nb["cells"]
                if c["cell_type"] == "markdown" and "| Notebook" in "".join(c["source"]))
    # the notebook sits in notebooks/, so its links drop that prefix
    assert table_rows(cell) == [row.replace("](notebooks/", "](") for row in readme_rows]
    # every notebook of the course is in the table
    names = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert all(any(f"]({name})" in row for row in table_rows(cell)) for name in names), names
