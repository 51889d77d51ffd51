"""Every committed notebook follows the course's structure, and the checker itself bites."""

import copy
import re
from pathlib import Path

import nbformat
import pytest

from helpers._project import REPO_REF
from notebook_checks import check_notebook, notebook_files

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = notebook_files(ROOT)


def test_there_are_notebooks_in_course_order():
    names = [p.name for p in NOTEBOOKS]
    assert names, "no notebooks found"
    assert all(re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", n) for n in names), names
    numbers = [int(n[:2]) for n in names]
    assert numbers == list(range(len(numbers))), f"notebook numbers must be 00, 01, ...: {names}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_follows_the_rules(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert check_notebook(nb, path.name) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_listed_in_the_readme(path):
    readme = (ROOT / "README.md").read_text()
    assert f"notebooks/{path.name}" in readme


def _good():
    return nbformat.read(NOTEBOOKS[0], as_version=4)


def test_checker_rejects_committed_outputs():
    nb = _good()
    cell = next(c for c in nb.cells if c.cell_type == "code")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hi\n")]
    assert any("committed outputs" in p for p in check_notebook(nb, NOTEBOOKS[0].name))


def test_checker_rejects_execution_counts():
    nb = _good()
    next(c for c in nb.cells if c.cell_type == "code").execution_count = 3
    assert any("execution count" in p for p in check_notebook(nb, NOTEBOOKS[0].name))


def test_checker_rejects_a_missing_summary():
    nb = _good()
    for cell in nb.cells:
        cell.source = cell.source.replace("## Summary", "## Recap")
    assert any("## Summary" in p for p in check_notebook(nb, NOTEBOOKS[0].name))


def test_checker_rejects_a_second_title_and_a_wrong_badge():
    nb = _good()
    nb.cells.append(nbformat.v4.new_markdown_cell("# Another title"))
    problems = check_notebook(nb, "99_other.ipynb")
    assert any("exactly one H1" in p for p in problems)
    assert any("badge" in p for p in problems)


def test_checker_rejects_a_stale_install_cell():
    nb = copy.deepcopy(_good())
    cell = next(c for c in nb.cells if c.cell_type == "code")
    cell.source = cell.source.replace("git+", "git+http://elsewhere/")
    assert any("colab_install_cell" in p for p in check_notebook(nb, NOTEBOOKS[0].name))


def test_checker_rejects_a_badge_that_opens_another_revision():
    """The badge must open the revision the install cell installs, not main."""
    nb = copy.deepcopy(_good())
    name = NOTEBOOKS[0].name
    assert f"/blob/{REPO_REF}/notebooks/{name}" in nb.cells[0].source
    nb.cells[0].source = nb.cells[0].source.replace(f"/blob/{REPO_REF}/", "/blob/main/")
    assert any("badge" in p and REPO_REF in p for p in check_notebook(nb, name))


def test_checker_rejects_an_exercise_without_a_solution():
    nb = _good()
    for cell in nb.cells:
        if cell.source.startswith("# Solution 2"):
            cell.source = cell.source.replace("# Solution 2", "# worked example")
    assert any("exercise 2 has no solution" in p for p in check_notebook(nb, NOTEBOOKS[0].name))


def test_checker_rejects_the_long_environment_report_after_notebook_00():
    nb = nbformat.read(NOTEBOOKS[1], as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("print(report.environment())"))
    assert any("environment_line" in p for p in check_notebook(nb, NOTEBOOKS[1].name))
