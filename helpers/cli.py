"""The one validation and error layer of the course's command lines.

``python -m helpers.milnce``, ``helpers.mmv`` and ``helpers.ucf101`` all

* check their arguments with the argparse types below (positive counts, finite positive
  numbers, readable input files and folders, writable outputs) while parsing, so a bad value
  stops the run before any model loads or any long work starts;
* run through :func:`run`, which checks the cache root (``COURSE_CACHE_DIR``) and turns the
  course's own errors and ``OSError`` on outputs and caches into one line on stderr,
  ``error: <path>: <problem>``, with exit status 2 and no traceback (1 when a download
  failed: the host or the network, where running again later may help).

Argparse reports its own usage errors with status 2 too, so every bad input ends the same way.
"""

from __future__ import annotations

import argparse
import errno
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable

from helpers import checks

EXIT_BAD_INPUT = 2
#: A download failed (the host, the network): running again later may help.
EXIT_DOWNLOAD_FAILED = 1


class CLIError(Exception):
    """A problem the command line reports in one line (path and problem) with status 2."""


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are one line: ``<prog>: error: <problem>``
    (the usage is one ``--help`` away), exit status 2. Sub-parsers inherit the class."""

    def error(self, message):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def main(parser: argparse.ArgumentParser, body: Callable, argv=None, *, also: tuple = ()) -> int:
    """Parse ``argv`` with ``parser``, then :func:`run` ``body(args)``; always return the status.

    A parse error or ``--help`` returns argparse's status (2 or 0) instead of raising
    ``SystemExit``, so calling a command's ``main`` from Python behaves like running it.
    """
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else EXIT_BAD_INPUT
    return run(lambda: body(args), also=also, outputs=_outputs(parser, args))


def _outputs(parser: argparse.ArgumentParser, args) -> list[str]:
    """The paths given to ``args``' output arguments (those typed ``output_file`` or
    ``output_folder``, in any sub-command), to name where an error without a file name (a
    full disk) happened."""
    found, parsers = [], [parser]
    while parsers:
        for action in parsers.pop()._actions:
            if isinstance(action, argparse._SubParsersAction):  # the sub-command that ran
                chosen = getattr(args, action.dest, None)
                parsers += ([action.choices[chosen]] if chosen in action.choices
                            else list(action.choices.values()))
            elif getattr(action.type, "__name__", "") in ("output_file", "output_folder"):
                value = getattr(args, action.dest, None)
                if value is not None and str(value) not in found:
                    found.append(str(value))
    return found


# --- argparse types ----------------------------------------------------------------------------

def _int_at_least(minimum: int, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (frames, sizes, batch sizes, windows, workers)."""
    return _int_at_least(1, text)


def nonnegative_int(text: str) -> int:
    """An integer >= 0 (seeds)."""
    return _int_at_least(0, text)


def positive_float(text: str) -> float:
    """A finite number > 0 (frame rates, C); ``nan`` and ``inf`` are refused."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return value


def input_file(text: str) -> Path:
    """An existing, readable, non-empty regular file."""
    problem = checks.input_file_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(f"{text}: {problem}")
    return Path(text)


def input_folder(text: str) -> Path:
    """An existing, readable folder."""
    problem = checks.input_file_problem(text, folder=True)
    if problem:
        raise argparse.ArgumentTypeError(f"{text}: {problem}")
    return Path(text)


def _nearest_existing(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _can_create_in(folder: Path, *, named: bool = True) -> str | None:
    """Why nothing can be created in ``folder`` (``None``: a probe file was created).
    ``named``: start with the folder's path (leave it out where the caller names it)."""
    if not folder.is_dir():
        return f"{folder} is a file, not a folder" if named else "is a file, not a folder"
    try:  # a real probe: os.access is fooled by root and by read-only mounts
        with tempfile.TemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as err:
        return f"{folder}: {err.strerror or err}" if named else \
            f"cannot be written ({err.strerror or err})"
    return None


def output_problem(path, *, folder: bool = False) -> str | None:
    """Why ``path`` cannot be written as an output file (or folder), checked without writing it.

    ``None`` when it can: the path (a file, or with ``folder`` a folder) may exist, and it or
    its nearest existing parent folder accepts a new file.
    """
    path = Path(path)
    if path.exists() or path.is_symlink():
        if folder:
            if not path.is_dir():
                return "exists and is not a folder"
            return _can_create_in(path, named=False)  # output_folder names the path
        if path.is_dir():
            return "is a folder; give a file name"
        if not os.access(path, os.W_OK):
            return "exists and is not writable"
        return _can_create_in(path.parent)
    parent = _nearest_existing(path.parent if not folder else path)
    problem = _can_create_in(parent)
    return f"cannot be created ({problem})" if problem else None


def output_file(text: str) -> Path:
    """A file the command may write (checked while parsing, before the long work)."""
    problem = output_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(f"{text}: {problem}")
    return Path(text)


def output_folder(text: str) -> Path:
    """A folder the command may create or write into (checked while parsing)."""
    problem = output_problem(text, folder=True)
    if problem:
        raise argparse.ArgumentTypeError(f"{text}: {problem}")
    return Path(text)


def suffixed(type_: Callable[[str], Path], suffix: str) -> Callable[[str], Path]:
    """``type_`` that also requires the file name to end in ``suffix``."""
    def check(text: str) -> Path:
        if not text.endswith(suffix):
            raise argparse.ArgumentTypeError(f"{text}: must end in {suffix}")
        return type_(text)

    check.__name__ = type_.__name__
    return check


# --- the cache root ----------------------------------------------------------------------------

def check_cache_root() -> None:
    """Raise :class:`CLIError` when the cache root cannot serve: a file, or empty and read-only.

    A read-only cache that already holds files is allowed (a shared, prepared cache); writing
    into it later fails with an ``OSError`` that :func:`run` reports.
    """
    from helpers import config

    root = config.cache_root()
    where = f"{root} ({config.ENV_CACHE_DIR})" if os.environ.get(config.ENV_CACHE_DIR) else str(root)
    if root.exists() and not root.is_dir():
        raise CLIError(f"{where}: the cache root is a file, not a folder")
    if root.is_dir():
        try:
            empty = not any(root.iterdir())
        except OSError as err:
            raise CLIError(f"{where}: cannot list the cache root ({err.strerror})") from None
        if empty and _can_create_in(root):
            raise CLIError(f"{where}: the cache root is empty and not writable "
                           f"({_can_create_in(root)})")
    else:
        problem = _can_create_in(_nearest_existing(root))
        if problem:
            raise CLIError(f"{where}: the cache root cannot be created ({problem})")


# --- one error path ------------------------------------------------------------------------------

def one_line(err: BaseException) -> str:
    """The message of ``err`` on one line: ``<path>: <problem>`` for an ``OSError``."""
    if isinstance(err, OSError) and not type(err).__module__.startswith("helpers"):
        name = err.filename
        problem = err.strerror or str(err) or type(err).__name__
        if name is not None and err.filename2 is not None:
            return f"{name} -> {err.filename2}: {problem}"
        return f"{name}: {problem}" if name is not None else problem
    text = str(err).strip() or type(err).__name__
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def is_course_error(err: BaseException) -> bool:
    """The course's own error classes (defined in ``helpers``), and the checks' ``ValueError``."""
    return any(cls.__module__.startswith("helpers.") or cls.__module__ == "helpers"
               for cls in type(err).__mro__[:-1] if cls not in (Exception, BaseException))


def run(main: Callable[[], int], *, check_cache: bool = True, also: tuple = (),
        outputs: list[str] = ()) -> int:
    """Run a command's body; report the course's errors and ``OSError`` in one line (status 2).

    ``also``: more exception classes that mean bad input here (e.g. ``ValueError`` where the
    command's own functions use it for bad settings). Anything else (a bug) keeps its
    traceback, so it can be reported. ``outputs``: the command's output paths, named when an
    ``OSError`` carries no file name (``ENOSPC`` from a write names none), with the cache root.
    """
    try:
        if check_cache:
            check_cache_root()
        return main()
    except CLIError as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as err:  # noqa: BLE001 - filtered just below, others re-raised
        if isinstance(err, (OSError, *also)) or is_course_error(err):
            message = one_line(err)
            if (isinstance(err, OSError) and err.filename is None and err.errno in _WRITE_ERRNOS
                    and not is_course_error(err)):
                from helpers import config

                message += " (while writing " + ", ".join(
                    [*outputs, f"or the cache {config.cache_root()}"]) + ")"
            print(f"error: {message}", file=sys.stderr)
            return EXIT_DOWNLOAD_FAILED if _is_download_error(err) else EXIT_BAD_INPUT
        raise


#: Errors of a write that the OS reports without a file name (a full disk, a quota, a file
#: too large, a file system gone read-only or failing).
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO}


def _is_download_error(err: BaseException) -> bool:
    from helpers.downloads import DownloadError

    while err is not None:
        if isinstance(err, DownloadError):
            return True
        err = err.__cause__
    return False
