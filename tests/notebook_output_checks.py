"""What an executed notebook cell may show: the checks `conftest.py` runs on every nbval cell.

A learner must never see TensorFlow/XLA start-up logs, a banner printed twice, a frozen progress
widget or a cache folder's hash; in tiny mode every figure and every printed number a model made
carries the stand-in label. Figures are read through the text the kernel's hook
(``tests/ipython_startup/course_figures.py``) gives them: ``<Figure texts=[...]>``.
"""

from __future__ import annotations

import re

#: Log lines of TensorFlow's and XLA's C++ side (and JAX's CUDA probe) that must not show.
LOG_PATTERNS = ("cuInit", "absl::InitializeLog", "cpu_feature_guard", "oneDNN custom operations",
                "Could not find cuda drivers", "Unable to register cu")
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
BANNER_MARK = "TINY MODE:"
#: A printed number a model made: a percentage, a recall, a top-k accuracy or a score.
METRIC_RE = re.compile(r"(\d+(\.\d+)?\s?%|R@\d|top-[15]\b|score)")
HASH_RE = re.compile(r"\b[0-9a-f]{40}\b")
#: Tags a cell may carry: ``metric`` (its numbers come from a model: the label must be in its
#: text), ``no-model-output`` (its figures show inputs or indices only, not model outputs),
#: ``widget`` (it shows an interactive widget on purpose, e.g. notebook 07's search box: not a
#: progress bar, which would be saved frozen; what the widget shows carries its own label).
METRIC_TAG, NO_MODEL_TAG, WIDGET_TAG = "metric", "no-model-output", "widget"


def output_texts(outputs) -> list[str]:
    """The plain text of every output: streams, text/plain of displays and results, errors."""
    texts = []
    for out in outputs:
        kind = out.get("output_type")
        if kind == "stream":
            texts.append(out.get("text", ""))
        elif kind in ("display_data", "execute_result"):
            data = out.get("data", {})
            plain = data.get("text/plain", "")
            texts.append("".join(plain) if isinstance(plain, list) else plain)
        elif kind == "error":
            texts.append("\n".join(out.get("traceback", [])))
    return texts


def figure_texts(outputs) -> list[str]:
    """The ``<Figure texts=...>`` text of every figure among the outputs."""
    return [text for out in outputs if out.get("output_type") == "display_data"
            and "image/png" in out.get("data", {})
            for text in output_texts([out]) if text.startswith("<Figure")]


def check_cell(outputs, tags=(), label: str = "") -> list[str]:
    """Every rule the outputs of one cell break (``label``: the stand-in label, "" if real)."""
    problems = []
    texts = output_texts(outputs)
    joined = "\n".join(texts)
    for pattern in LOG_PATTERNS:
        if pattern in joined:
            line = next(l for l in joined.splitlines() if pattern in l)
            problems.append(f"a TensorFlow/XLA log line shows: {line.strip()[:120]!r}")
    if WIDGET_TAG not in tags and any(WIDGET_MIME in out.get("data", {}) for out in outputs):
        problems.append("a progress widget was saved (frozen when run headless): use text bars")
    if joined.count(BANNER_MARK) > 1:
        problems.append(f"the tiny-mode banner shows {joined.count(BANNER_MARK)} times")
    if HASH_RE.search(joined):
        problems.append(f"a cache hash is listed: {HASH_RE.search(joined).group(0)}")
    if label:
        mark = label.upper()
        if NO_MODEL_TAG not in tags:
            for text in figure_texts(outputs):
                if mark not in text:
                    problems.append(f"a figure lacks the stand-in label: {text[:120]}")
        streams = "".join(out.get("text", "") for out in outputs
                          if out.get("output_type") == "stream" and out.get("name") == "stdout")
        if METRIC_TAG in tags and mark not in streams:
            problems.append("a metric cell printed no stand-in label")
        elif METRIC_TAG not in tags and METRIC_RE.search(streams) and mark not in streams:
            problems.append(f"numbers are printed without the stand-in label (tag the cell "
                            f"'{METRIC_TAG}' and print through report.labelled): "
                            f"{METRIC_RE.search(streams).group(0)!r}")
    return problems
