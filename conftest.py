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
