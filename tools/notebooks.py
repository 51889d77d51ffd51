"""Notebook chores: execute every notebook headless, and keep the Colab install cells in sync.

    python -m tools.notebooks execute --out build/notebooks [--timeout 1200] [NOTEBOOK ...]
    python -m tools.notebooks sync [--check]
"""

from __future__ import annotations

import argparse
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


def sync(check: bool) -> int:
    from helpers._project import colab_install_cell

    wanted = colab_install_cell()
    stale = []
    for path in notebook_paths():
        nb = nbformat.read(path, as_version=4)
        index = install_cell_index(nb)
        if index is None:
            stale.append(f"{path.name}: no Colab install cell as its first code cell")
            continue
        if nb.cells[index].source != wanted:
            stale.append(path.name)
            if not check:
                nb.cells[index].source = wanted
                nbformat.write(nb, path)
    for item in stale:
        print(("stale: " if check else "updated: ") + item)
    return 1 if (check and stale) else 0


def _offline_banner() -> None:
    from helpers import config

    mode = config.requested_mode()
    online = config.reachable(config.url("mmv")) and config.reachable(config.url("tfhub"))
    if mode == "tiny" or (mode == "auto" and not online):
        line = "!" * 78
        why = "COURSE_MODE=tiny" if mode == "tiny" else "the model hosts cannot be reached (offline?)"
        print(f"{line}\n!! TINY MODE: {why}.\n!! Notebooks run on generated stand-ins with random "
              f"weights: every number they print is\n!! meaningless and is NOT a result of the real "
              f"models.\n{line}", flush=True)


def execute(out: Path, timeout: int, names: list[str]) -> int:
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
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
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
    p_exec.add_argument("notebooks", nargs="*")
    p_sync = sub.add_parser("sync", help="rewrite the Colab install cell of every notebook")
    p_sync.add_argument("--check", action="store_true", help="only report stale cells")
    args = parser.parse_args(argv)
    if args.command == "execute":
        return execute(args.out, args.timeout, args.notebooks)
    return sync(args.check)


if __name__ == "__main__":
    sys.exit(main())
