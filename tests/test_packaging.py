"""The pinned stack is stated once (requirements.txt) and mirrored faithfully everywhere else."""

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
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
    assert _project.REPO_REF == f"v{_project.__version__}"
    cell = _project.colab_install_cell()
    assert f"git+{_project.REPO_URL}@{_project.REPO_REF}\"" in cell
    assert 'if "google.colab" in sys.modules:' in cell
    assert "--force" not in cell and "tensorflow" not in cell.split("%pip", 1)[1]
    # The badge opens the notebook at the very revision the cell installs.
    badge = _project.colab_badge_url("00_x.ipynb")
    assert badge.endswith(f"/blob/{_project.REPO_REF}/notebooks/00_x.ipynb")
    assert _project.REPO_URL.split("github.com/")[1] in badge
    assert badge in _project.colab_badge("00_x.ipynb")


def test_colab_written_against_names_the_runtime_test_colab_checks():
    from tools import colab_env

    pins = colab_env.read_pins(colab_env.FREEZE.read_text())
    said = _project.COLAB_WRITTEN_AGAINST
    assert f"Python {colab_env.PYTHON}," in said
    for label, name, digits in [("TensorFlow", "tensorflow", 2), ("tf-keras", "tf-keras", 2),
                                ("JAX", "jax", 3), ("NumPy", "numpy", 2), ("IPython", "ipython", 2)]:
        version = ".".join(pins[name][1].split(".")[:digits])
        assert f"{label} {version}" in said, f"COLAB_WRITTEN_AGAINST should say {label} {version}"
    assert said in _project.colab_install_cell()


# --------------------------------------------------------------------------- dev.py test-colab

def test_colab_freeze_copy_is_the_published_list_with_its_source():
    from tools import colab_env

    pins = colab_env.read_pins(colab_env.FREEZE.read_text())
    assert len(pins) > 600  # the whole list, not an excerpt
    assert pins["tensorflow"][1] == "2.20.0" and pins["ipython"][1] == "7.34.0"
    assert "dm-haiku" not in pins and "av" not in pins  # what the [colab] extra must bring
    readme = (colab_env.FREEZE.parent / "README.md").read_text()
    assert colab_env.FREEZE.name in readme and "googlecolab/backend-info" in readme


def test_colab_set_holds_the_course_stack_and_colabs_kernel():
    from tools import colab_env

    preinstalled, lacking = colab_env.colab_packages()
    for name in ("tensorflow", "tf-keras", "tensorflow-hub", "jax", "jaxlib", "optax", "numpy",
                 "scikit-learn", "ipython", "ipykernel", "ipywidgets", "setuptools"):
        assert name in preinstalled
    assert {"dm-haiku", "av"} <= set(lacking)


def test_colab_install_follows_the_notebooks_cell(tmp_path):
    from tools import colab_env

    lines = {line for _, line in colab_env.install_cell_lines()}
    assert len(lines) == 1
    args = colab_env.local_install_args(lines.pop(), tmp_path)
    assert args == ["-q", f"{_project.DIST_NAME}[colab] @ {tmp_path.as_uri()}"]
    for bad in ['%pip install -U "x[colab] @ git+https://h/r@v1"', "%pip install -q numpy"]:
        with pytest.raises(colab_env.ColabCheckError):
            colab_env.local_install_args(bad, tmp_path)


def test_colab_install_check_lists_every_change():
    from tools import colab_env

    before = {"numpy": ("numpy", "2.1.3"), "jax": ("jax", "0.7.2"), "pip": ("pip", "24.1.2")}
    after = {"numpy": ("numpy", "2.4.6"), "pip": ("pip", "24.1.2"), "av": ("av", "18.1.0")}
    added, changed = colab_env.compare(before, after)
    assert added == ["av==18.1.0"]
    assert changed == ["jax: 0.7.2 -> removed", "numpy: 2.1.3 -> 2.4.6"]
    assert colab_env.compare(before, dict(before)) == ([], [])


def test_colab_python_missing_is_an_error_that_says_how_to_get_it(monkeypatch, tmp_path):
    from tools import colab_env

    monkeypatch.setenv("COURSE_COLAB_PYTHON", str(tmp_path / "nothing"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path))
    with pytest.raises(colab_env.ColabCheckError, match="pyenv install 3.13"):
        colab_env.find_python()


# --------------------------------------------------------------------------- dev.py release

def _git(cwd, *args):
    env = {"GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(cwd),
           "PATH": os.environ["PATH"], "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)


def test_release_bumps_the_version_rewrites_the_cells_commits_and_tags(tmp_path, monkeypatch,
                                                                      capsys):
    """In a throw-away repository made from this checkout (a clone may carry no tags at all)."""
    repo = tmp_path / "repo"
    for folder in ("helpers", "tools", "notebooks"):
        shutil.copytree(ROOT / folder, repo / folder, ignore=shutil.ignore_patterns("__pycache__"))
    assert _git(repo, "init", "-q").returncode == 0
    _git(repo, "add", ".")
    assert _git(repo, "commit", "-q", "-m", "start").returncode == 0
    env = dict(os.environ, **{k: v for k, v in [("GIT_CONFIG_GLOBAL", "/dev/null"),
               ("GIT_CONFIG_NOSYSTEM", "1"), ("GIT_AUTHOR_NAME", "t"),
               ("GIT_AUTHOR_EMAIL", "t@example.com"), ("GIT_COMMITTER_NAME", "t"),
               ("GIT_COMMITTER_EMAIL", "t@example.com")]})
    env.pop("PYTHONPATH", None)

    def release(version):
        return subprocess.run([sys.executable, "-m", "tools.notebooks", "release", version],
                              cwd=repo, env=env, capture_output=True, text=True, timeout=120)

    done = release("99.1.0")
    assert done.returncode == 0, done.stderr
    assert _git(repo, "cat-file", "-t", "v99.1.0").stdout.strip() == "tag"  # annotated
    assert _git(repo, "status", "--porcelain").stdout == ""
    at_tag = _git(repo, "show", "v99.1.0:helpers/_project.py").stdout
    assert '__version__ = "99.1.0"' in at_tag
    names = sorted(p.name for p in (repo / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert names
    for name in names:
        text = _git(repo, "show", f"v99.1.0:notebooks/{name}").stdout
        assert "@v99.1.0\\\"" in text, name  # the install cell (JSON-escaped quote)
        assert f"/blob/v99.1.0/notebooks/{name})" in text, name  # the badge
        assert f"@{_project.REPO_REF}" not in text and "/blob/main/" not in text
    # Refused, with one line and exit code 2: an existing tag, an older version, a dirty tree.
    # (In this process, on the throw-away repository, to spare the slow interpreter starts.)
    from tools import notebooks

    monkeypatch.setattr(notebooks, "ROOT", repo)
    monkeypatch.setattr(notebooks, "PROJECT", repo / "helpers" / "_project.py")
    for key, value in env.items():
        if key.startswith("GIT_"):
            monkeypatch.setenv(key, value)
    for version, why in [("99.1.0", "exists already"), ("1.0.0", "older than"), ("1.2", "1.2.3"),
                         ("99.2.0", "uncommitted")]:
        if why == "uncommitted":
            (repo / "notebooks" / "new.txt").write_text("x")
        assert notebooks.release(version) == 2
        err = capsys.readouterr().err
        assert why in err and len(err.strip().splitlines()) == 1, err
    assert _git(repo, "tag", "-l").stdout.split() == ["v99.1.0"]


LIGHT_MODULES = ["helpers", "helpers.config", "helpers.downloads", "helpers.atomic",
                 "helpers.report", "helpers.plots", "helpers.gpu", "helpers.video",
                 "helpers.retrieval", "helpers.probe", "helpers.progress"]


def test_import_helpers_is_quiet_fast_and_framework_free():
    present = [m for m in LIGHT_MODULES
               if (ROOT / (m.replace(".", "/") + ".py")).exists() or m == "helpers"]
    code = (
        # CPU time, not wall time: on a shared CI machine the wall clock measures the neighbours
        # (it read 2.6 s at a load of 11 on 2 cores); importing TF or JAX costs seconds of CPU.
        "import sys, time; t = time.process_time()\n"
        f"for name in {present!r}: __import__(name)\n"
        "elapsed = time.process_time() - t\n"
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
    assert float(elapsed) < 2.0, f"importing helpers took {elapsed} s of CPU"
    assert time.perf_counter() - start < 60
