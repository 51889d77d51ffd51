"""What a learner must see in JupyterLab, as rules over one notebook's snapshot.

``tools.browser`` runs a notebook in JupyterLab in a real Chromium and records, for every code
cell, what the notebook model holds (its outputs as the kernel sent them) and what the page shows
for each of them (the rendered output's MIME type, its text, its images, whether a widget view is
there). :func:`check` turns such a snapshot into the list of problems; it needs no browser, so the
unit tests run it on saved snapshots.

Snapshot format (plain JSON)::

    {"notebook": "01_x.ipynb",
     "cells": [{"index": 3, "source": "...", "execution_count": 2,
                "outputs": [{"output_type": "display_data", "mimes": ["image/png", "text/plain"],
                             "text": "<Figure size 640x480 with 1 Axes>"}],
                "shown": [{"mime": "image/png", "text": "", "widget": false,
                           "images": [{"width": 640, "height": 480}], "overflow": 0}]}]}

``outputs[i]`` and ``shown[i]`` are the same output (JupyterLab renders one DOM child per output).
"""

from __future__ import annotations

import re

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
IMAGE_MIMES = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")
# What the ipywidgets front end writes when a view cannot be made or never arrives.
WIDGET_FAILURE_TEXTS = ("Error displaying widget", "Loading widget...", "Failed to load model class",
                        "Could not create a view", "Could not create model",
                        "Click to show javascript error")
# tqdm's text bar ("decoding:  40%|####      | 2/5 [00:01<00:01, ...]") in a stream output means
# the bar fell back to text where a widget should have been drawn.
TEXT_BAR = re.compile(r"\d+%\|[^|\n]*\|")
FIGURE_REPR = re.compile(r"<Figure size \d+(\.\d+)?x\d+(\.\d+)? with \d+ Axes>")
# Wider than the cell by more than this many pixels counts as a table or line cut off.
OVERFLOW_PX = 4


def summarize(snapshot: dict) -> dict:
    """Counts for the summary line: cells run, widget views, images."""
    cells = snapshot["cells"]
    widget_outputs = sum(WIDGET_MIME in o["mimes"] for c in cells for o in c["outputs"])
    widgets_rendered = sum(s["widget"] for c in cells for s in c["shown"])
    widgets_closed = sum(WIDGET_MIME in o["mimes"] and not s["widget"] and not s["text"].strip()
                         for c in cells for o, s in zip(c["outputs"], c["shown"]))
    images_expected = sum(any(m in o["mimes"] for m in IMAGE_MIMES)
                          for c in cells for o in c["outputs"])
    images_shown = sum(any(m in o["mimes"] for m in IMAGE_MIMES) and _drawn(s)
                       for c in cells for o, s in zip(c["outputs"], c["shown"]))
    return {
        "code_cells": sum(1 for c in cells if c["source"].strip()),
        "executed": sum(1 for c in cells if c["source"].strip() and c["execution_count"] is not None),
        "widget_outputs": widget_outputs,
        "widgets_rendered": widgets_rendered,
        "widgets_closed": widgets_closed,
        "images_expected": images_expected,
        "images_shown": images_shown,
    }


def _drawn(item: dict) -> bool:
    """The output shows at least one image that loaded (an SVG figure is inline markup)."""
    return (any(i["complete"] and i["width"] > 0 and i["height"] > 0 for i in item["images"])
            or item["mime"] == "image/svg+xml")


def _where(cell: dict) -> str:
    first = next((line for line in cell["source"].splitlines() if line.strip()), "")
    return f"cell {cell['index']} ({first[:60]!r})"


def check(snapshot: dict) -> tuple[list[str], list[str]]:
    """Return ``(problems, warnings)`` for one notebook's snapshot; no problems means it passed."""
    problems: list[str] = []
    warnings: list[str] = []
    cells = snapshot["cells"]
    errored = False
    not_run = []
    for cell in cells:
        where = _where(cell)
        if cell["source"].strip() and cell["execution_count"] is None:
            not_run.append(cell["index"])
        outputs, shown = cell["outputs"], cell["shown"]
        for out in outputs:
            if out["output_type"] == "error":
                errored = True
                problems.append(f"{where} raised {out.get('ename')}: {out.get('evalue', '')[:200]}")
            if out["output_type"] == "stream" and TEXT_BAR.search(out.get("text", "")):
                problems.append(f"{where} printed a progress bar as text, not as a widget")
            if FIGURE_REPR.search(out.get("text", "")) and not any(m in out["mimes"] for m in IMAGE_MIMES):
                problems.append(f"{where} shows a figure as its text repr "
                                f"({FIGURE_REPR.search(out['text']).group(0)}), not as an image")
        for item in shown:
            if item.get("widget_error"):
                problems.append(f"{where}: a widget failed in the browser (its front-end package "
                                f"is missing or broken): {item['text'][:120]!r}")
            else:
                for text in WIDGET_FAILURE_TEXTS:
                    if text in item["text"]:
                        problems.append(f"{where} shows {text!r} where a widget should be")
            broken = [i for i in item["images"] if i["complete"] and i["width"] == 0]
            if broken:
                problems.append(f"{where}: {len(broken)} image(s) in an output failed to load")
            if item.get("overflow", 0) > OVERFLOW_PX:
                warnings.append(f"{where}: an output is {item['overflow']} px wider than the cell")
        if len(outputs) != len(shown):
            problems.append(f"{where} has {len(outputs)} outputs but the page shows {len(shown)}")
            continue
        for out, item in zip(outputs, shown):
            if WIDGET_MIME in out["mimes"] and not item["widget"] and not item.get("widget_error"):
                # An empty widget output is a view the kernel closed (tqdm with leave=False);
                # anything else is the text/plain fallback, or an error, where a widget belongs.
                if item["text"].strip() or item["mime"] not in (None, WIDGET_MIME):
                    problems.append(f"{where}: a widget is shown as {item['mime'] or 'text'} "
                                    f"({item['text'][:80]!r}), not drawn as a widget")
            image = [m for m in IMAGE_MIMES if m in out["mimes"]]
            if image and not _drawn(item):
                problems.append(f"{where}: a figure ({image[0]}) is not displayed as an image "
                                f"(the page shows {item['mime'] or 'nothing'})")
    if not_run:
        if errored:
            problems.append(f"{len(not_run)} cells did not run after the error")
        else:
            problems.append(f"cells {not_run} never got an execution count")
    return problems, warnings
