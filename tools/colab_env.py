"""Colab's runtime, simulated: `python3.11 dev.py test-colab`.

1. A Python 3.13 venv (build/colab/venv) holding Colab's CPU package set: every package of
   requirements.txt that Colab preinstalls, plus Colab's kernel (IPython, ipykernel) and OpenCV,
   at the versions of tests/data/colab/pip-freeze-*.txt (given to pip as constraints). Reused
   between local runs while a stamp (the list, this file, the Python) is unchanged.
2. The course installed on top exactly as the notebooks' install cell does (its `%pip install`
   line, with the git URL replaced by a copy of this checkout), then a check that the install only
   added packages: a changed or removed preinstalled package is listed and fails the run.
3. Every notebook in notebooks/ run in tiny mode on a kernel of that venv.

Standard library only: dev.py imports this before anything is installed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FREEZE = ROOT / "tests" / "data" / "colab" / "pip-freeze-cpu-py313-2026-08-19.txt"
PYTHON = "3.13"
#: What Colab preinstalls that the course relies on without naming it in requirements.txt.
RUNTIME_EXTRAS = ("pip", "ipython", "ipykernel", "jupyter-client", "nbclient", "nbformat",
                  "opencv-python-headless")
WORK = ROOT / "build" / "colab"
VENV = WORK / "venv"
STAMP = VENV / ".colab-stamp"
BEFORE = VENV / ".colab-freeze-before.txt"
KERNEL = "colab-py313"

HOW_TO_GET_PYTHON = (
    f"Python {PYTHON} was not found (tried $COURSE_COLAB_PYTHON, `PYENV_VERSION=3.13.0 python3.13`, "
    f"python3.13 on PATH and $(pyenv root)/versions/3.13.*).\n"
    f"Install it, e.g. `pyenv install 3.13.0` (https://github.com/pyenv/pyenv), or "
    f"`sudo apt-get install python3.13 python3.13-venv` (deadsnakes PPA on Ubuntu), or point "
    f"COURSE_COLAB_PYTHON at a python3.13 binary.")


_START = time.perf_counter()


def say(message: str) -> None:
    print(f"[test-colab {time.perf_counter() - _START:4.0f} s] {message}", flush=True)


class ColabCheckError(RuntimeError):
    """The simulated Colab runtime disagrees with the course; the message says how."""


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(text: str) -> dict[str, tuple[str, str]]:
    """``name==version`` lines of a pip freeze: {normalized name: (name, version)}."""
    pins = {}
    for line in text.splitlines():
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line.strip())
        if match:
            pins[normalize(match[1])] = (match[1], match[2])
    return pins


def requirement_names() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [normalize(re.split(r"[=<>!~\[; ]", l.strip(), maxsplit=1)[0])
            for l in lines if l.strip() and not l.strip().startswith("#")]


def colab_packages() -> tuple[list[str], list[str]]:
    """(what to preinstall as on Colab, what the course pins that Colab lacks)."""
    pins = read_pins(FREEZE.read_text())
    wanted = list(dict.fromkeys(requirement_names() + [normalize(n) for n in RUNTIME_EXTRAS]))
    return [n for n in wanted if n in pins], [n for n in wanted if n not in pins]


def find_python() -> str:
    env = dict(os.environ)
    env.setdefault("PYENV_VERSION", "3.13.0")
    candidates = [os.environ.get("COURSE_COLAB_PYTHON"), "python3.13"]
    pyenv_root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates += sorted(str(p) for p in Path(pyenv_root).glob(f"versions/{PYTHON}.*/bin/python{PYTHON}"))
    for candidate in filter(None, candidates):
        try:
            out = subprocess.run([candidate, "-c", "import sys, venv; print(sys.executable); "
                                  "print('%d.%d' % sys.version_info[:2])"],
                                 capture_output=True, text=True, env=env, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            continue
        lines = out.stdout.split()
        if out.returncode == 0 and len(lines) == 2 and lines[1] == PYTHON:
            return lines[0]
    raise ColabCheckError(HOW_TO_GET_PYTHON)


def venv_python() -> Path:
    return VENV / "bin" / "python"


def pip(*args: str, check: bool = True, capture: bool = False) -> subprocess.CompletedProcess:
    cmd = [str(venv_python()), "-m", "pip", "--disable-pip-version-check", *args]
    return subprocess.run(cmd, check=check, text=True, capture_output=capture, cwd=WORK)


def frozen() -> dict[str, tuple[str, str]]:
    """Every installed distribution of the venv: {normalized name: (name, version or URL)}."""
    out = pip("list", "--format=json", capture=True).stdout
    return {normalize(d["name"]): (d["name"], d["version"]) for d in json.loads(out)}


def _stamp(python: str) -> str:
    digest = hashlib.sha256()
    digest.update(FREEZE.read_bytes())
    digest.update(Path(__file__).read_bytes())
    digest.update(" ".join(colab_packages()[0]).encode())
    digest.update(python.encode())
    return digest.hexdigest()


def build_base_env(python: str) -> None:
    """A fresh venv holding Colab's versions of the packages the course uses, and nothing else."""
    shutil.rmtree(VENV, ignore_errors=True)
    WORK.mkdir(parents=True, exist_ok=True)
    say(f"Creating a Python {PYTHON} venv with Colab's packages in {VENV} ...")
    subprocess.run([python, "-m", "venv", str(VENV)], check=True)
    pins = read_pins(FREEZE.read_text())
    constraints = WORK / "colab-constraints.txt"
    constraints.write_text("".join(f"{n}=={v}\n" for n, v in pins.values()))
    preinstalled, _ = colab_packages()
    if "pip" in preinstalled:  # Colab's own pip first: it is the resolver the install cell meets
        pip("install", "-q", f"pip=={pins['pip'][1]}")
    # --no-compile: byte-compiling every file of TensorFlow costs minutes of CPU on a 2-core CI
    # machine; Python compiles what the notebooks import on first use anyway.
    pip("install", "-q", "--no-compile", "-c", str(constraints),
        *[n for n in preinstalled if n != "pip"])
    installed = frozen()
    # Dependencies Colab does without (IPython 7.34 asks for jedi; Colab's image has none): removed,
    # so that the course is tried on what Colab really holds.
    absent = sorted(name for key, (name, _) in installed.items() if key not in pins)
    if absent:
        say("Not on Colab, so removed again: " + ", ".join(absent))
        pip("uninstall", "-q", "-y", *absent)
        installed = frozen()
    strangers = sorted(f"{name}=={version} (Colab: {pins[key][1] if key in pins else 'absent'})"
                       for key, (name, version) in installed.items()
                       if key not in pins or pins[key][1] != version)
    if strangers:
        raise ColabCheckError("the simulated Colab set holds packages at versions Colab does not "
                              "have:\n  " + "\n  ".join(strangers))
    BEFORE.write_text("".join(f"{n}=={v}\n" for n, v in sorted(installed.values())))
    warm_bytecode()
    STAMP.write_text(_stamp(python))


#: What the notebooks' kernels import of Colab's preinstalled packages (the heavy part).
WARM_IMPORTS = ("tensorflow", "tensorflow_hub", "jax", "jax.numpy", "numpy", "scipy", "sklearn.svm",
                "matplotlib.pyplot", "IPython", "ipykernel.kernelapp", "cv2", "PIL.Image")


def warm_bytecode() -> None:
    """Import the heavy preinstalled packages once, so that their bytecode is cached
    (``PYTHONPYCACHEPREFIX``, set by dev.py) before the first notebook's kernel needs it.

    .ci/run builds this venv while ``dev.py test`` installs its own, which takes longer, so one
    core is idle at the end of this step: importing TensorFlow there (compiling about 4,000
    modules) takes that cost off the first notebook, which took 26 s here against 10 s in the
    browser check. Only what is imported is compiled, not every file (see --no-compile above).
    A package that fails to import is left to the notebooks to report.
    """
    code = ("import importlib\n"
            f"for name in {WARM_IMPORTS!r}:\n"
            "    try:\n        importlib.import_module(name)\n"
            "    except Exception as error:\n        print('not warmed:', name, error)\n")
    start = time.perf_counter()
    subprocess.run([str(venv_python()), "-c", code], check=False,
                   env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), stderr=subprocess.DEVNULL)
    say(f"Imported the preinstalled packages once, to cache their bytecode "
        f"({time.perf_counter() - start:.0f} s)")


def ensure_base_env(python: str) -> None:
    """Build the venv, or reuse it: undo what the last run's course install added."""
    if not (venv_python().exists() and STAMP.exists() and STAMP.read_text() == _stamp(python)):
        build_base_env(python)
        return
    before, now = read_pins(BEFORE.read_text()), frozen()
    added = sorted(name for key, (name, _) in now.items() if key not in before)
    if added:
        pip("uninstall", "-q", "-y", *added)
        now = frozen()
    if {k: v[1] for k, v in now.items()} != {k: v[1] for k, v in before.items()}:
        say("The reused venv no longer matches Colab's set; rebuilding it.")
        build_base_env(python)
    else:
        say(f"Reusing {VENV} (Colab's set, unchanged).")


def install_cell_lines() -> list[tuple[str, str]]:
    """(notebook, `%pip install ...` line) of each notebook's Colab install cell."""
    found = []
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        code = next((c for c in cells if c["cell_type"] == "code"), None)
        source = "".join(code["source"]) if code else ""
        lines = [l.strip() for l in source.splitlines() if l.strip().startswith("%pip install")]
        if "google.colab" not in source or len(lines) != 1:
            raise ColabCheckError(f"{path.name}: the first code cell is not the Colab install cell "
                                  "with one `%pip install` line (run `python3.11 dev.py sync-notebooks`)")
        found.append((path.name, lines[0]))
    if not found:
        raise ColabCheckError("no notebooks found in notebooks/")
    return found


def local_install_args(line: str, checkout: Path) -> list[str]:
    """The cell's pip arguments, with the course's ``git+URL@REF`` replaced by ``checkout``."""
    args = shlex.split(line)[2:]  # drop "%pip install"
    replaced = []
    for arg in args:
        match = re.fullmatch(r"([A-Za-z0-9._-]+(?:\[[^\]]*\])?)\s*@\s*git\+\S+", arg)
        replaced.append(f"{match[1]} @ {checkout.as_uri()}" if match else arg)
    if replaced == args:
        raise ColabCheckError(f"the install cell installs nothing from git: {line}")
    if "-U" in args or "--upgrade" in args or any(a.startswith("--force") for a in args):
        raise ColabCheckError(f"the install cell must not upgrade Colab's packages: {line}")
    return replaced


def copy_checkout() -> Path:
    """What a git clone of this working tree holds (tracked and new, unignored files)."""
    target = WORK / "checkout"
    shutil.rmtree(target, ignore_errors=True)
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def compare(before: dict, after: dict) -> tuple[list[str], list[str]]:
    """(packages added, preinstalled packages changed or removed) between two freezes."""
    added = sorted(f"{n}=={v}" for k, (n, v) in after.items() if k not in before)
    changed = sorted(f"{n}: {v} -> {after[k][1] if k in after else 'removed'}"
                     for k, (n, v) in before.items() if k not in after or after[k][1] != v)
    return added, changed


def write_kernelspec() -> Path:
    """A kernelspec for the venv's python (Colab's ipykernel and IPython), under its own path."""
    folder = WORK / "jupyter"
    spec = folder / "kernels" / KERNEL / "kernel.json"
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(json.dumps({
        "argv": [str(venv_python()), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python {PYTHON} (Colab's package set)", "language": "python"}))
    return folder


#: Where `dev.py test` keeps its tiny-mode cache (its trained stand-in runs are reused).
TEST_CACHE = ROOT / "build" / "test-cache"


def reuse_trained_standins(cache: Path, source: Path = TEST_CACHE) -> list[str]:
    """Copy the trained MIL-NCE stand-in runs of ``source`` into the fresh ``cache``; their keys.

    A run folder (``tiny/trained_milnce/<key>``) is named by a hash of everything the course
    controls that changes it (code versions, seed, settings, vocabulary) and holds only numpy
    weights, a vocabulary and a report, so any stack can load it. It is not bit for bit what
    this stack would train (float sums follow the thread count and the libraries), but what
    the checks here test is the notebooks on this stack, not the training. Reusing it saves the
    minute of training per check that .ci/run's budget cannot spare; the export to a TF-Hub
    module and everything after it still run here. Folders that
    are not complete runs (no report.json: a training that was interrupted) are not copied.
    """
    runs = source / "tiny" / "trained_milnce"
    copied = []
    for run in sorted(runs.glob("*")) if runs.is_dir() else []:
        if not (run.is_dir() and (run / "report.json").is_file() and not run.name.startswith(".")):
            continue
        target = cache / "tiny" / "trained_milnce" / run.name
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".tmp-copy-{run.name}"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(run, tmp)
        os.rename(tmp, target)
        copied.append(run.name)
    return copied


def run_notebooks(timeout: int, names: list[str]) -> int:
    cache = WORK / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    reused = reuse_trained_standins(cache)
    if reused:
        say(f"Reusing the trained tiny-mode stand-in run(s) of `dev.py test`: {', '.join(reused)}")
    out = WORK / "notebooks"
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, COURSE_MODE="tiny", COURSE_CACHE_DIR=str(cache),
               COURSE_DATA_DIR=str(cache / "data"), JUPYTER_PATH=str(write_kernelspec()),
               PYTHONUNBUFFERED="1")
    env.pop("PYTHONPATH", None)
    code = subprocess.run([str(venv_python()), "-m", "tools.notebooks", "execute", "--kernel", KERNEL,
                           "--out", str(out), "--timeout", str(timeout), *names], cwd=ROOT,
                          env=env).returncode
    for path in sorted(out.glob("*.ipynb")):
        version = json.loads(path.read_text())["metadata"].get("language_info", {}).get("version", "")
        if not version.startswith(PYTHON + "."):
            print(f"{path.name} ran on Python {version or '?'}, not {PYTHON}", file=sys.stderr)
            code = code or 1
    return code


def main(names: list[str] = (), timeout: int = 300) -> int:
    """Build or reuse the venv, install the course as the cell does, run the notebooks (all, or
    ``names``); 0 when everything passed. ``--prepare`` among ``names``: only build the venv
    (.ci/run does that while the first install of `dev.py test` runs, both mostly one core)."""
    names = list(names)
    prepare_only = "--prepare" in names
    names = [n for n in names if n != "--prepare"]
    try:
        python = find_python()
        ensure_base_env(python)
        if prepare_only:
            say("Colab's venv is ready (--prepare: nothing else done).")
            return 0
        pins = read_pins(FREEZE.read_text())
        kernel = {n: pins[n][1] for n in ("ipython", "ipykernel", "ipywidgets") if n in pins}
        say(f"Colab's set from {FREEZE.name}: Python {PYTHON}, "
            + ", ".join(f"{pins[n][0]} {pins[n][1]}" for n in
                        ("tensorflow", "tf-keras", "jax", "numpy", "ipython", "ipykernel")
                        if n in pins))
        say("Pinned in requirements.txt but not preinstalled on Colab (the install cell must "
            "bring what the notebooks need of these): " + ", ".join(colab_packages()[1]))
        lines = {line for _, line in install_cell_lines()}
        if len(lines) != 1:
            raise ColabCheckError("the notebooks' install cells differ:\n  " + "\n  ".join(sorted(lines)))
        (line,) = lines
        args = local_install_args(line, copy_checkout())
        before = frozen()
        say(f"As the install cell does: {line}\n  pip install {shlex.join(args)}")
        pip("install", *args)
        added, changed = compare(before, frozen())
        say("The install added: " + (", ".join(added) or "nothing"))
        if changed:
            raise ColabCheckError("the install cell changed Colab's preinstalled packages (on Colab "
                                  "this means reinstalls and a runtime restart):\n  "
                                  + "\n  ".join(changed))
        now = frozen()
        wrong = [f"{n} {now.get(n, ('', 'absent'))[1]} (Colab: {v})" for n, v in kernel.items()
                 if now.get(n, ("", ""))[1] != v]
        if wrong:
            raise ColabCheckError("the kernel is not Colab's: " + ", ".join(wrong))
        say(f"Running every notebook in tiny mode on the kernel {KERNEL} ...")
        code = run_notebooks(timeout, list(names))
        say("passed" if code == 0 else "FAILED")
        return code
    except ColabCheckError as err:
        print(f"test-colab: {err}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as err:
        print(f"test-colab: {shlex.join(map(str, err.cmd))} failed (exit {err.returncode})",
              file=sys.stderr)
        return 1
