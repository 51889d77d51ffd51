"""Notebook chores: execute every notebook headless, keep the Colab badges and install cells in
sync with helpers/_project.py, and cut a release (the tag those cells name).

    python -m tools.notebooks execute --out build/notebooks [--timeout 1200] [--kernel NAME] [NOTEBOOK ...]
    python -m tools.notebooks sync [--check]
    python -m tools.notebooks release X.Y.Z
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


def notebook_paths() -> list[Path]:
    """The course's notebooks, in course order (their file names start with the number)."""
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def install_cell_index(nb) -> int | None:
    """Index of the guarded Colab install cell (the first code cell), or None."""
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            return index if "google.colab" in cell.source else None
    return None


BADGE_LINK = re.compile(r"https://colab\.research\.google\.com/github/[^)\s]+")


def sync(check: bool) -> int:
    from helpers._project import colab_badge_url, colab_install_cell

    wanted = colab_install_cell()
    stale = []
    for path in notebook_paths():
        nb = nbformat.read(path, as_version=4)
        index = install_cell_index(nb)
        if index is None:
            stale.append(f"{path.name}: no Colab install cell as its first code cell")
            continue
        title = nb.cells[0]
        links = BADGE_LINK.findall(title.source) if title.cell_type == "markdown" else []
        if not links:
            stale.append(f"{path.name}: no Open-in-Colab badge in the first cell")
            continue
        badge = colab_badge_url(path.name)
        if nb.cells[index].source != wanted or set(links) != {badge}:
            stale.append(path.name)
            if not check:
                nb.cells[index].source = wanted
                title.source = BADGE_LINK.sub(badge, title.source)
                nbformat.write(nb, path)
    for item in stale:
        print(("stale: " if check else "updated: ") + item)
    return 1 if (check and stale) else 0


PROJECT = ROOT / "helpers" / "_project.py"
VERSION_LINE = re.compile(r'^__version__ = "([^"]+)"$', re.M)


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)


def release(version: str) -> int:
    """Set the version, rewrite every badge and install cell, commit, and tag ``v<version>``.

    Afterwards the tag exists for what the cells name; push both (the command says how).
    Releasing the current version again is allowed while its tag is missing (the first tag).
    A clone made without tags cannot tell whether a tag exists upstream: fetch them first
    (``git fetch --tags``); shallow clones are refused.
    """
    def refuse(why: str) -> int:
        print(f"release: {why}", file=sys.stderr)
        return 2

    if not re.fullmatch(r"\d+\.\d+\.\d+", version):
        return refuse(f"the version must look like 1.2.3, got {version!r}")
    status = _git("status", "--porcelain")
    if status.returncode != 0:
        return refuse(f"{ROOT} is not a git working tree: {status.stderr.strip()}")
    if status.stdout.strip():
        return refuse("the working tree has uncommitted changes; commit or stash them first")
    if _git("rev-parse", "--is-shallow-repository").stdout.strip() == "true":
        return refuse("this is a shallow clone, which may lack the repository's tags; "
                      "run `git fetch --unshallow --tags` first")
    tag = f"v{version}"
    if _git("rev-parse", "-q", "--verify", f"refs/tags/{tag}").returncode == 0:
        return refuse(f"the tag {tag} exists already")
    current = VERSION_LINE.search(PROJECT.read_text())[1]
    if tuple(map(int, version.split("."))) < tuple(map(int, current.split("."))):
        return refuse(f"{version} is older than the current version {current}")
    PROJECT.write_text(VERSION_LINE.sub(f'__version__ = "{version}"', PROJECT.read_text(), count=1))
    # A new process, so that the cells are made from the file just written.
    subprocess.run([sys.executable, "-m", "tools.notebooks", "sync"], cwd=ROOT, check=True)
    _git("add", str(PROJECT), *map(str, notebook_paths()))
    if _git("diff", "--cached", "--quiet").returncode != 0:
        done = _git("commit", "-q", "-m", f"Release {version}: the notebooks' Colab badges and "
                    f"install cells name the tag {tag}")
        if done.returncode != 0:
            return refuse(f"git commit failed: {done.stderr.strip()}")
    done = _git("tag", "-a", tag, "-m", f"video-text-course {version}")
    if done.returncode != 0:
        return refuse(f"git tag failed: {done.stderr.strip()}")
    print(f"Tagged {tag} at {_git('rev-parse', '--short', 'HEAD').stdout.strip()}. "
          f"Publish both: git push origin HEAD {tag}")
    return 0


def _offline_banner() -> None:
    from helpers import config

    mode = config.requested_mode()
    online = config.reachable(config.url("mmv")) and config.reachable(config.url("tfhub"))
    if mode == "tiny" or (mode == "auto" and not online):
        line = "!" * 78
        why = "COURSE_MODE=tiny" if mode == "tiny" else "the model hosts cannot be reached (offline?)"
        print(f"{line}\n!! TINY MODE: {why}.\n!! Notebooks run on generated stand-ins (MIL-NCE: a small "
              f"model trained here on\n!! generated clips; MMV: random weights): every number they "
              f"print is NOT a result\n!! of the real models.\n{line}", flush=True)


def execute(out: Path, timeout: int, names: list[str], kernel: str = "python3") -> int:
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    _offline_banner()
    out.mkdir(parents=True, exist_ok=True)
    paths = [NOTEBOOKS / n if not Path(n).exists() else Path(n) for n in names] or notebook_paths()
    failed = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        print(f"running {path.name} ...", flush=True)
        client = NotebookClient(nb, timeout=timeout, kernel_name=kernel,
                                resources={"metadata": {"path": str(NOTEBOOKS)}})
        try:
            client.execute()
            status = "ok"
        except CellExecutionError as err:
            status = "FAILED"
            failed.append(path.name)
            print(str(err)[-3000:], file=sys.stderr)
        nbformat.write(nb, out / path.name)
        print(f"  {status} in {time.perf_counter() - start:.0f} s -> {out / path.name}", flush=True)
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
        return 1
    print(f"all {len(paths)} notebooks executed; executed copies are in {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_exec = sub.add_parser("execute", help="run notebooks headless and save executed copies")
    p_exec.add_argument("--out", type=Path, default=ROOT / "build" / "notebooks")
    p_exec.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    p_exec.add_argument("--kernel", default="python3",
                        help="kernelspec to run them on (dev.py test-colab: Colab's Python 3.13)")
    p_exec.add_argument("notebooks", nargs="*")
    p_sync = sub.add_parser("sync", help="rewrite the Colab badge and install cell of every notebook")
    p_sync.add_argument("--check", action="store_true", help="only report stale cells")
    p_release = sub.add_parser("release", help="bump the version, sync the cells, commit, tag")
    p_release.add_argument("version", help="X.Y.Z")
    args = parser.parse_args(argv)
    if args.command == "execute":
        return execute(args.out, args.timeout, args.notebooks, args.kernel)
    if args.command == "release":
        return release(args.version)
    return sync(args.check)


if __name__ == "__main__":
    sys.exit(main())
