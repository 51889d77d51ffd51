"""pytest set-up for the executed notebooks (nbval collects them from notebooks/).

Every cell's outputs are checked by tests/notebook_output_checks.py: no TF/XLA log lines, one
banner, no frozen widgets, no cache hashes, and in tiny mode the stand-in label on every figure
and printed number. (tests/conftest.py holds the unit tests' set-up.)
"""

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

_TESTS = Path(__file__).resolve().parent / "tests"
sys.path.insert(0, str(_TESTS))

os.environ.setdefault("COURSE_MODE", "tiny")
if "COURSE_KEEP_IPYTHONDIR" not in os.environ:
    # Kernels that nbval starts inherit this environment: a profile of our own whose start-up
    # file makes figures describe their texts, and no user profile leaks into the tests.
    _ipython_dir = Path(tempfile.mkdtemp(prefix="course-ipython-"))
    shutil.copytree(_TESTS / "ipython_startup", _ipython_dir / "profile_default" / "startup")
    os.environ["IPYTHONDIR"] = str(_ipython_dir)


#: The notebooks' order in the test run (see pytest_collection_modifyitems); any other notebook
#: runs after these, the unit tests last.
NOTEBOOK_ORDER = ("06", "03", "04", "05", "07", "02", "01", "00")


def pytest_collection_modifyitems(items):
    """Run the notebooks first, longest and the one that trains the tiny-mode model first; the
    unit tests after them.

    ``dev.py test`` hands whole files to its two workers in collection order (pytest-xdist's
    ``--dist loadfile --no-loadscope-reorder``; by default xdist puts the files with the most
    tests first, which put test_milnce.py first, and it waited about a minute on the lock of the
    tiny-mode model that notebook 06 was training on the other worker). The notebooks are the
    longest files (06 alone is about 80 s of cells on 2 idle cores): started last, one worker ran
    06 while the other had nothing left to do. Now 06 trains the tiny-mode model in its second
    cell while the other worker runs 03 and then 04, which do not need it until 04's last
    solution; 05, 07, 02 and 01 need it from their first cells, so they come after. The many short
    unit-test files fill both workers at the end. Within a file the order is unchanged (a stable
    sort).
    """
    def rank(item):
        path = Path(str(item.fspath))
        if path.suffix != ".ipynb":
            return (2, 0)
        number = path.name[:2]
        return (0, NOTEBOOK_ORDER.index(number)) if number in NOTEBOOK_ORDER else (1, 0)

    items.sort(key=rank)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield
    outputs = getattr(item, "test_outputs", None)
    cell = getattr(item, "cell", None)
    if outputs is None or cell is None:  # not a notebook cell
        return result
    from notebook_output_checks import BANNER_MARK, check_cell, output_texts

    from helpers import config

    # Every note starts so (config.DEFAULT_STANDIN_NOTE, or a resource's own note).
    label = "tiny stand-in" if config.requested_mode() == "tiny" else ""
    tags = cell.get("metadata", {}).get("tags", [])
    problems = check_cell(outputs, tags, label)
    notebook = item.parent
    if any(BANNER_MARK in text for text in output_texts(outputs)):
        notebook._course_banners = getattr(notebook, "_course_banners", 0) + 1
        if notebook._course_banners > 1:
            problems.append("the tiny-mode banner shows again: once per notebook is enough")
    if problems:
        raise AssertionError(f"cell {getattr(item, 'cell_num', '?')}: " + "; ".join(problems) + (repr(outputs)[:3000] if os.environ.get("COURSE_DEBUG_OUTPUTS") else ""))
    return result
