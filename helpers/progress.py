"""Progress bars that suit where the code runs: a widget for a person, text for everything else.

``tqdm.auto`` draws an ipywidgets bar whenever it runs inside a Jupyter kernel. That is right
when a person watches (JupyterLab, Notebook, Colab, VS Code), but a notebook executed headless
(``nbclient``, ``nbconvert --execute``, the course's tests) keeps a frozen "0 %" widget in its
saved outputs, because no front end ever updated it. So :func:`bar` chooses:

* a widget (``tqdm.auto``) when :func:`live_frontend` says a front end is attached;
* a text bar (``tqdm.std``, on stderr) otherwise, which reads well in a terminal and in a saved
  notebook alike.

``COURSE_PROGRESS=widget|text|off`` overrides the choice (``off`` disables every bar).
"""

from __future__ import annotations

import os
import sys

CHOICES = ("widget", "text", "off")


def live_frontend() -> bool:
    """Whether a person's front end is attached to this IPython kernel.

    True in Colab, and in a kernel that a Jupyter server started for a browser or an editor:
    the server sets ``JPY_SESSION_NAME`` for the kernel (JupyterLab, Notebook 7, Voila), VS Code
    sets ``VSCODE_PID`` or ``__vsc_ipynb_file__``. A kernel that ``nbclient`` (``nbconvert
    --execute``, nbval) starts on its own has none of these.
    """
    if "google.colab" in sys.modules:
        return True
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None or type(shell).__name__ != "ZMQInteractiveShell":
        return False  # a terminal, or plain Python: text bars
    return bool(os.environ.get("JPY_SESSION_NAME") or os.environ.get("VSCODE_PID")
                or "__vsc_ipynb_file__" in shell.user_ns)


def style() -> str:
    """``"widget"``, ``"text"`` or ``"off"``: ``COURSE_PROGRESS`` if set, else the detection above."""
    chosen = os.environ.get("COURSE_PROGRESS", "").strip().lower()
    if chosen:
        if chosen not in CHOICES:
            raise ValueError(f"COURSE_PROGRESS must be one of {', '.join(CHOICES)}, got {chosen!r}")
        return chosen
    return "widget" if live_frontend() else "text"


def bar(iterable=None, **kwargs):
    """A tqdm bar (same arguments as ``tqdm.tqdm``) in the style of :func:`style`."""
    chosen = style()
    if chosen == "off":
        kwargs["disable"] = True
    if chosen == "widget":
        try:
            from tqdm.auto import tqdm
        except ImportError:  # ipywidgets missing: tqdm.auto itself falls back, but be explicit
            from tqdm import tqdm
    else:
        from tqdm.std import tqdm

        kwargs.setdefault("file", sys.stderr)
        kwargs.setdefault("mininterval", 1.0)  # a saved notebook keeps every redraw: few of them
    return tqdm(iterable, **kwargs)
