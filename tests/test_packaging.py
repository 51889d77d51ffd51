"""The pinned stack is stated once (requirements.txt) and mirrored faithfully everywhere else."""

import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

import helpers
from helpers import _project

ROOT = Path(__file__).resolve().parent.parent


def _requirements():
    lines = [l.strip() for l in (ROOT / "requirements.txt").read_text().splitlines()]
    return [l for l in lines if l and not l.startswith("#")]


def test_every_requirement_is_pinned_exactly():
    for line in _requirements():
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][0-9A-Za-z.]*", line), f"not an exact pin: {line}"


def test_the_known_pitfalls_are_pinned_as_the_course_needs():
    pins = dict(line.split("==") for line in _requirements())
    major, minor = (int(x) for x in pins["setuptools"].split(".")[:2])
    assert (major, minor) < (80, 9), "tensorflow_hub needs pkg_resources without a warning"
    assert pins["dm-haiku"] == "0.0.17"
    assert pins["tensorflow-hub"] == "0.16.1"
    assert pins["jax"] == pins["jaxlib"]
    assert "tf-keras" in pins


def test_environment_yml_mirrors_requirements():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    assert "python=3.11" in deps
    pip_section = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    mirrored = [p for p in pip_section if not p.startswith("-e")]
    assert mirrored == _requirements()


def test_pyproject_does_not_force_tensorflow_or_jax_on_colab():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = " ".join(project["dependencies"]).lower()
    for heavy in ("tensorflow", "jax", "tf-keras"):
        assert heavy not in core, f"{heavy} in core dependencies would reinstall Colab's copy"
    assert project["optional-dependencies"]["colab"] == ["dm-haiku==0.0.17"]


def test_version_and_install_cell_come_from_one_place():
    assert helpers.__version__ == _project.__version__
    cell = _project.colab_install_cell()
    assert _project.REPO_URL in cell and _project.REPO_REF in cell
    assert 'if "google.colab" in sys.modules:' in cell
    assert "--force" not in cell and "tensorflow" not in cell.split("%pip", 1)[1]


LIGHT_MODULES = ["helpers", "helpers.config", "helpers.downloads", "helpers.atomic",
                 "helpers.report", "helpers.plots", "helpers.gpu", "helpers.video",
                 "helpers.retrieval", "helpers.probe", "helpers.progress"]


def test_import_helpers_is_quiet_fast_and_framework_free():
    present = [m for m in LIGHT_MODULES
               if (ROOT / (m.replace(".", "/") + ".py")).exists() or m == "helpers"]
    code = (
        "import sys, time; t = time.perf_counter()\n"
        f"for name in {present!r}: __import__(name)\n"
        "elapsed = time.perf_counter() - t\n"
        "heavy = sorted(m for m in ('tensorflow', 'jax', 'haiku', 'tensorflow_hub') if m in sys.modules)\n"
        "print(f'{elapsed:.3f}', ','.join(heavy))\n"
    )
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-W", "default", "-c", code], capture_output=True,
                            text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", f"importing helpers printed to stderr:\n{result.stderr}"
    elapsed, heavy = result.stdout.split(" ")
    assert heavy.strip() == "", f"importing {present} imported {heavy.strip()}"
    assert float(elapsed) < 2.0, f"importing helpers took {elapsed} s"
    assert time.perf_counter() - start < 60
