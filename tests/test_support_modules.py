"""helpers.atomic, helpers.report, helpers.plots, helpers.gpu."""

import os
from pathlib import Path

import numpy as np
import pytest

from helpers import atomic, config, gpu, plots, report


def test_atomic_path_replaces_only_on_success(tmp_path):
    dest = tmp_path / "out.bin"
    dest.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(dest) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert dest.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"], "temporary file left behind"
    atomic.write_bytes(dest, b"new")
    assert dest.read_bytes() == b"new"


def test_save_npz_round_trips(tmp_path):
    path = atomic.save_npz(tmp_path / "sub" / "a.npz", x=np.arange(5), y=np.ones((2, 2)))
    with np.load(path) as data:
        assert data["x"].tolist() == [0, 1, 2, 3, 4]
        assert data["y"].shape == (2, 2)


def test_versions_reports_missing_packages():
    out = report.versions(("numpy", "surely-not-installed-package"))
    assert out["numpy"] == np.__version__
    assert out["surely-not-installed-package"] == "missing"
    assert out["python"].count(".") == 2


def test_environment_report_flags_stand_ins():
    text = report.environment({"MIL-NCE": "tiny", "MMV s3d": "real"})
    assert "MIL-NCE" in text and "generated stand-in" in text
    assert text.count("generated stand-in") == 1
    assert str(config.cache_root()) in text


def test_banner_only_when_something_is_tiny(capsys):
    assert report.banner({"MMV": "real"}) is None and report.banner_text({"MMV": "real"}) is None
    assert capsys.readouterr().out == ""
    report.banner({"MMV s3d": "tiny", "MIL-NCE": "tiny"})
    out = capsys.readouterr().out
    assert "MMV s3d, MIL-NCE are generated stand-ins" in out and "NOT a result" in out
    assert out.count("TINY MODE") == 1
    assert "is a generated stand-in " in report.banner_text({"MIL-NCE": "tiny"})


def test_banner_in_a_notebook_is_one_output_not_two(monkeypatch, capsys):
    import IPython
    import IPython.display

    class ZMQInteractiveShell:  # what a notebook kernel runs
        pass

    shown = []
    monkeypatch.setattr(IPython, "get_ipython", lambda: ZMQInteractiveShell())
    monkeypatch.setattr(IPython.display, "display", lambda obj, raw=False: shown.append((obj, raw)))
    assert report.banner({"MIL-NCE": "tiny"}) is None  # nothing for a cell to echo again
    text = report.banner_text({"MIL-NCE": "tiny"})
    assert capsys.readouterr().out == ""  # JupyterLab would show a printed copy under the box
    [(bundle, raw)] = shown
    assert raw and set(bundle) == {"text/html", "text/plain"}
    assert text in bundle["text/html"] and text in bundle["text/plain"]


def test_plots_return_figures_with_the_right_content():
    frames = np.random.default_rng(0).uniform(size=(5, 8, 8, 3)).astype(np.float32)
    fig = plots.frame_grid(frames, ncols=3, titles=list("abcde"))
    assert len(fig.axes) == 6 and fig.axes[4].get_title() == "e"
    fig = plots.heatmap(np.eye(2), ["q1", "q2"], ["v1", "v2"], title="sim")
    assert fig.axes[0].get_title() == "sim"
    assert [t.get_text() for t in fig.axes[0].texts] == ["1.00", "0.00", "0.00", "1.00"]
    fig = plots.confusion_matrix([0, 0, 1, 1], [0, 1, 1, 1], ["a", "b"])
    values = fig.axes[0].images[0].get_array()
    np.testing.assert_allclose(values, [[0.5, 0.5], [0.0, 1.0]])
    with pytest.raises(ValueError):
        plots.frame_grid([])


def test_share_gpu_sets_jax_allocation_before_jax_starts(monkeypatch):
    monkeypatch.delenv("XLA_PYTHON_CLIENT_PREALLOCATE", raising=False)
    monkeypatch.delenv("XLA_PYTHON_CLIENT_MEM_FRACTION", raising=False)
    monkeypatch.setattr(gpu, "_jax_backend_started", lambda: False)
    monkeypatch.setattr(gpu, "_tf_installed", lambda: False)
    monkeypatch.delitem(__import__("sys").modules, "tensorflow", raising=False)
    applied = gpu.share_gpu(0.4)
    assert os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    assert os.environ["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.40"
    assert applied["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.40"
    with pytest.raises(ValueError):
        gpu.share_gpu(1.5)


def test_share_gpu_says_when_jax_already_started(monkeypatch):
    monkeypatch.setattr(gpu, "_jax_backend_started", lambda: True)
    monkeypatch.setattr(gpu, "_tf_installed", lambda: False)
    monkeypatch.delitem(__import__("sys").modules, "tensorflow", raising=False)
    monkeypatch.delenv("XLA_PYTHON_CLIENT_PREALLOCATE", raising=False)
    applied = gpu.share_gpu()
    assert "restart the kernel" in applied["jax"]
    assert "XLA_PYTHON_CLIENT_PREALLOCATE" not in os.environ


def test_locked_makes_a_second_process_wait_for_the_first(tmp_path):
    import subprocess
    import sys
    import time

    from helpers import atomic

    target = tmp_path / "artefact.bin"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from helpers import atomic\n"
        f"with atomic.locked({str(target)!r}):\n"
        "    print('held', flush=True); time.sleep(1.5)\n")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    start = time.monotonic()
    with atomic.locked(target):
        waited = time.monotonic() - start
    holder.wait(timeout=30)
    assert waited > 0.5, "the lock did not make this process wait for the holder"
    import filelock
    import pytest

    holder = subprocess.Popen([sys.executable, "-c", (
        "import time; from helpers import atomic\n"
        f"with atomic.locked({str(target)!r}):\n"
        "    print('held', flush=True); time.sleep(3)\n")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(filelock.Timeout):
        with atomic.locked(target, timeout=0.2):
            pass
    holder.kill()
    holder.wait()
    with atomic.locked(target, timeout=5):  # a killed holder leaves no stale lock
        pass
