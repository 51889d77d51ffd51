"""helpers.progress: text bars unless a person's front end is attached, and the override."""

import io

import pytest

from helpers import progress


def test_plain_python_gets_a_text_bar(monkeypatch):
    monkeypatch.delenv("COURSE_PROGRESS", raising=False)
    assert progress.live_frontend() is False  # pytest: no IPython kernel
    stream = io.StringIO()
    bar = progress.bar(range(3), file=stream, desc="work", mininterval=0)
    assert type(bar).__module__ == "tqdm.std"
    list(bar)
    assert "work" in stream.getvalue() and "3/3" in stream.getvalue()


def test_headless_kernel_without_a_session_is_not_live(monkeypatch):
    class ZMQInteractiveShell:  # what ipykernel runs, under nbclient as under JupyterLab
        user_ns = {}

    import IPython

    monkeypatch.setattr(IPython, "get_ipython", lambda: ZMQInteractiveShell())
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.delenv("VSCODE_PID", raising=False)
    assert progress.live_frontend() is False
    monkeypatch.setenv("JPY_SESSION_NAME", "/home/me/02_text_to_video_retrieval.ipynb")
    assert progress.live_frontend() is True  # a Jupyter server started this kernel
    assert progress.style() == "widget"


def test_the_override(monkeypatch):
    monkeypatch.setenv("COURSE_PROGRESS", "off")
    assert progress.bar(range(2)).disable
    monkeypatch.setenv("COURSE_PROGRESS", "sideways")
    with pytest.raises(ValueError, match="COURSE_PROGRESS"):
        progress.style()
