#!/usr/bin/env python3
"""Set up and run the course with nothing but Python 3.11 and the package registries.

    python3.11 dev.py course          # make .venv if needed, run every notebook into build/notebooks/
    python3.11 dev.py test            # make .venv if needed, run the unit tests and every notebook (tiny)
    python3.11 dev.py bench           # the benchmark table (benchmarks/)
    python3.11 dev.py test-browser    # every notebook run in JupyterLab in headless Chromium (tiny)
    python3.11 dev.py sync-notebooks  # rewrite each notebook's Colab badge and install cell from helpers/_project.py
    python3.11 dev.py test-colab      # run every notebook (tiny) on Colab's Python 3.13 package set
                                      # (or only the notebooks named after it;
                                      # --prepare: only build that environment)
    python3.11 dev.py release X.Y.Z   # bump the version, regenerate the cells, commit, tag vX.Y.Z

The environment is rebuilt when requirements.txt or pyproject.toml change (a hash stamp in .venv).
Only the standard library is used here, so this file runs before anything is installed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("COURSE_VENV", ROOT / ".venv"))
STAMP = VENV / ".course-stamp"
BUILD = ROOT / "build"


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _stamp() -> str:
    digest = hashlib.sha256()
    for name in ("requirements.txt", "pyproject.toml"):
        digest.update((ROOT / name).read_bytes())
    digest.update(sys.version.encode())
    return digest.hexdigest()


def ensure_env() -> Path:
    """Create .venv and install the pinned stack plus `helpers` (editable), unless up to date."""
    py = venv_python()
    if py.exists() and STAMP.exists() and STAMP.read_text() == _stamp():
        return py
    if sys.version_info[:2] != (3, 11):
        print(f"note: the verified stack is for Python 3.11; this is {sys.version.split()[0]}",
              file=sys.stderr)
    if not py.exists():
        print(f"Creating the environment in {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip = [str(py), "-m", "pip", "--disable-pip-version-check"]
    print("Installing the pinned stack (requirements.txt) ...", flush=True)
    # --no-compile: byte-compiling all of TensorFlow, JAX and SciPy up front costs minutes of CPU
    # on a 2-core CI machine; Python compiles (and caches) what is imported on first use.
    subprocess.run(pip + ["install", "-q", "--no-compile", "-r", str(ROOT / "requirements.txt")],
                   check=True)
    subprocess.run(pip + ["install", "-q", "--no-deps", "--no-build-isolation", "-e", str(ROOT)],
                   check=True)
    STAMP.write_text(_stamp())
    return py


def run(py: Path, *args: str, env: dict | None = None) -> int:
    merged = dict(os.environ)
    merged.update(env or {})
    return subprocess.run([str(py), *args], cwd=ROOT, env=merged).returncode


def ensure_chromium() -> str | None:
    """The system Chromium (Debian package ``chromium``), installed with apt when missing and root."""
    found = shutil.which("chromium")
    if found:
        return found
    if os.name == "posix" and os.geteuid() == 0 and shutil.which("apt-get"):
        print("Installing Chromium (apt-get install chromium) ...", flush=True)
        apt = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], env=apt, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], env=apt,
                       stdout=subprocess.DEVNULL)
        found = shutil.which("chromium")
    if not found:
        print("error: test-browser needs the Debian/Ubuntu package 'chromium' (no browser is "
              "downloaded): run `sudo apt-get install chromium`, or pass --chromium PATH",
              file=sys.stderr)
    return found


def keep_bytecode() -> None:
    """Let every process started from here cache its compiled bytecode, in build/pycache/.

    Importing TensorFlow compiles about 4,000 modules: 12 s on a 2-core machine when nothing may
    be cached (PYTHONDONTWRITEBYTECODE=1, set in some sandboxes and CI images), 6 s once the
    bytecode is cached. A test run imports it in dozens of processes (notebook kernels, the
    command-line tests), so that setting alone cost minutes. The bytecode goes to one folder under
    build/ (PYTHONPYCACHEPREFIX), so nothing is written beside the sources, which is what that
    setting usually protects.
    """
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ.setdefault("PYTHONPYCACHEPREFIX", str(BUILD / "pycache"))


def reuse_test_cache(dest: Path) -> bool:
    """Start ``dest`` as a copy of ``dev.py test``'s cache (hard links where the file system
    allows, else copies); False when there is none.

    The browser check runs the notebooks on the same stack as ``dev.py test``, which has just
    built every stand-in, dataset and feature cache from nothing and checked them: building them
    again in the browser tested nothing new and cost .ci/run minutes. Partial writes
    (``.tmp-*``, ``*.tmp``) and locks are left behind; hidden markers are copied. The course replaces cache files by atomic renames
    (helpers.atomic), which give the renamed path a new file and leave the other link alone;
    and ``dev.py test`` deletes its cache before each run anyway.
    """
    source = BUILD / "test-cache"
    if not source.is_dir():
        return False

    def link(src, dst):
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    def leftovers(_folder, names):  # partial writes and locks; markers such as .mini_ucf101.json stay
        return [n for n in names
                if n.startswith(".tmp") or n.endswith((".lock", ".tmp")) or ".tmp-" in n]

    shutil.copytree(source, dest, copy_function=link, ignore=leftovers)
    return True


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "help"
    keep_bytecode()
    rest = argv[1:]
    if command in ("help", "-h", "--help"):
        print(__doc__)
        return 0
    if command == "sync-notebooks":
        py = ensure_env()
        return run(py, "-m", "tools.notebooks", "sync", *rest)
    if command == "course":
        py = ensure_env()
        return run(py, "-m", "tools.notebooks", "execute", "--out", str(BUILD / "notebooks"), *rest)
    if command == "test":
        py = ensure_env()
        # A fresh cache every run, as on CI: nothing cached by an earlier run can hide a bug.
        shutil.rmtree(BUILD / "test-cache", ignore_errors=True)
        # Tiny mode and a cache of its own: tests never touch a user's real caches.
        env = {
            "COURSE_MODE": "tiny",
            "COURSE_CACHE_DIR": str(BUILD / "test-cache"),
            "COURSE_DATA_DIR": str(BUILD / "test-cache" / "data"),
            "PYTHONUNBUFFERED": "1",
        }
        args = ["-m", "pytest", "-n", "2", "--dist", "loadfile", "--no-loadscope-reorder", "--nbval-lax",
                "--nbval-cell-timeout=300", "-q", *rest]
        return run(py, *args, env=env)
    if command == "bench" and "--device" in rest:
        # The accelerator benchmark (benchmarks/device_bench.py). --wheels DIR: first install
        # jax[cuda12]==0.10.2 from wheels in DIR (a machine without internet).
        py = ensure_env()
        rest = [a for a in rest if a != "--device"]
        if "--wheels" in rest:
            i = rest.index("--wheels")
            wheels, rest = rest[i + 1], rest[:i] + rest[i + 2:]
            subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-index", "--find-links",
                            wheels, "jax[cuda12]==0.10.2"], check=True)
        return run(py, "-m", "benchmarks.device_bench", *rest)
    if command == "test-colab":
        # Colab's runtime, simulated in build/colab/ (tools/colab_env.py); needs Python 3.13.
        from tools import colab_env

        return colab_env.main(rest)
    if command == "release":
        py = ensure_env()
        return run(py, "-m", "tools.notebooks", "release", *rest)
    if command == "bench":
        py = ensure_env()
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        "-r", str(ROOT / "benchmarks" / "requirements.txt")], check=True)
        return run(py, "-m", "benchmarks.run", *rest)
    if command == "test-browser":
        py = ensure_env()
        given = any(a == "--chromium" or a.startswith("--chromium=") for a in rest)
        chromium = "given" if given else ensure_chromium()
        if chromium is None:
            return 2
        # Tiny mode and a fresh cache of its own, like `test`.
        shutil.rmtree(BUILD / "browser-cache", ignore_errors=True)
        if reuse_test_cache(BUILD / "browser-cache"):
            print("test-browser: starting from `dev.py test`'s tiny-mode cache (same stack: its "
                  "stand-ins, generated data and features are what this stack builds)", flush=True)
        env = {
            "COURSE_MODE": "tiny",
            "COURSE_CACHE_DIR": str(BUILD / "browser-cache"),
            "COURSE_DATA_DIR": str(BUILD / "browser-cache" / "data"),
            "PYTHONUNBUFFERED": "1",
        }
        extra = [] if chromium == "given" else ["--chromium", chromium]
        return run(py, "-m", "tools.browser", *extra, *rest, env=env)
    print(f"unknown command {command!r}\n{__doc__}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
