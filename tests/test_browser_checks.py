"""The rules `dev.py test-browser` applies to what JupyterLab drew, run on saved snapshots.

tests/data/browser_snapshots.json holds cells cut from real snapshots that tools.browser took in
JupyterLab 4.6 + Chromium (sources shortened): a passing run of notebooks 02 and 04 and the
deliberate breaks of the closing note (a widget whose front-end package is missing, the widget
manager disabled, a terminal tqdm bar, a cell raising). The browser run itself is not a unit test.
"""

import copy
import json
from pathlib import Path

import pytest

from tools import browser_checks

SNAPSHOTS = json.loads((Path(__file__).parent / "data" / "browser_snapshots.json").read_text())


def _problems(name):
    return browser_checks.check(SNAPSHOTS[name])[0]


def test_a_passing_run_has_no_problems_and_counts_what_it_saw():
    problems, _ = browser_checks.check(SNAPSHOTS["pass_04"])
    assert problems == []
    counts = browser_checks.summarize(SNAPSHOTS["pass_04"])
    assert counts["widgets_rendered"] >= 1 and counts["widgets_rendered"] == counts["widget_outputs"]
    assert counts["images_expected"] >= 1 and counts["images_shown"] == counts["images_expected"]
    assert counts["executed"] == counts["code_cells"]


def test_a_bar_the_kernel_closed_is_not_a_failure():
    assert _problems("pass_02_closed_bar") == []
    counts = browser_checks.summarize(SNAPSHOTS["pass_02_closed_bar"])
    assert counts["widgets_closed"] == 1 and counts["widgets_rendered"] == 0


def test_a_widget_without_its_front_end_package_fails():
    problems = _problems("break_missing_widget_package")
    assert len(problems) == 1 and "front-end package" in problems[0]


def test_a_disabled_widget_manager_shows_the_bar_as_text_and_fails():
    [problem] = _problems("break_widget_manager_disabled")
    assert "text/plain" in problem and "not drawn as a widget" in problem


def test_a_terminal_tqdm_bar_fails():
    [problem] = _problems("break_text_bar")
    assert "progress bar as text" in problem


def test_a_cell_raising_fails_and_the_cells_after_it_are_counted():
    problems = _problems("break_raise")
    assert any("raised RuntimeError: deliberate break" in p for p in problems)
    assert any("did not run after the error" in p for p in problems)


def _first(snapshot, predicate):
    return next((cell, i) for cell in snapshot["cells"] for i, o in enumerate(cell["outputs"])
                if predicate(o))


def test_a_figure_not_drawn_as_an_image_fails():
    snapshot = copy.deepcopy(SNAPSHOTS["pass_04"])
    cell, i = _first(snapshot, lambda o: "image/png" in o["mimes"])
    cell["shown"][i]["images"] = [{"complete": True, "width": 0, "height": 0}]  # a broken image
    problems = browser_checks.check(snapshot)[0]
    assert any("not displayed as an image" in p for p in problems)
    assert any("failed to load" in p for p in problems)


def test_a_figure_shown_as_its_text_repr_fails():
    snapshot = copy.deepcopy(SNAPSHOTS["pass_04"])
    cell, i = _first(snapshot, lambda o: "image/png" in o["mimes"])
    cell["outputs"][i]["mimes"] = ["text/plain"]
    problems = browser_checks.check(snapshot)[0]
    assert any("<Figure size" in p and "text repr" in p for p in problems)


@pytest.mark.parametrize("text", ["Loading widget...", "Error displaying widget: model not found"])
def test_a_widget_that_never_arrived_fails(text):
    snapshot = copy.deepcopy(SNAPSHOTS["pass_04"])
    cell, i = _first(snapshot, lambda o: browser_checks.WIDGET_MIME in o["mimes"])
    cell["shown"][i].update(text=text, widget=False)
    problems = browser_checks.check(snapshot)[0]
    assert any(text.split(":")[0] in p for p in problems)


def test_outputs_the_page_does_not_show_fail():
    snapshot = copy.deepcopy(SNAPSHOTS["pass_04"])
    cell = next(c for c in snapshot["cells"] if c["shown"])
    cell["shown"].pop()
    assert any("the page shows" in p for p in browser_checks.check(snapshot)[0])


def test_a_wide_output_is_a_warning_not_a_failure():
    snapshot = copy.deepcopy(SNAPSHOTS["pass_04"])
    next(c for c in snapshot["cells"] if c["shown"])["shown"][0]["overflow"] = 300
    problems, warnings = browser_checks.check(snapshot)
    assert problems == [] and any("300 px wider" in w for w in warnings)
