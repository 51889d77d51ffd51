"""Checks shared by the Python API and the command lines: arrays, input files, file digests.

Arrays (:func:`check_array`, :func:`check_finite`)
    shape, dtype, value range and finiteness, with one message style: ``<what>: <problem>``,
    where ``what`` says where the array came from (a file, a model output, a similarity matrix).
    A non-finite value raises :class:`NonFiniteError`, so NaN never travels on into a score.
Files (:func:`input_file_problem`, :func:`load_npy`)
    what is wrong with a path given as input, in words: missing, a folder, a FIFO, a symlink
    loop, empty, unreadable; a ``.npy`` whose header claims more bytes than the file holds.
Digests (:func:`file_digest`, :func:`folder_digest`)
    SHA-256 of a file, computed once and remembered by (size, mtime) in
    ``<cache root>/file-digests.json``, so keying caches by the weights costs one read per file.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from pathlib import Path

import numpy as np


#: How a missing path is described (the words of ``FileNotFoundError``, kept short).
NOT_FOUND = "not found (no such file or folder)"


class CheckError(ValueError):
    """An input or a result is unusable; the message names where it came from and the problem."""


class NonFiniteError(CheckError):
    """An array that must be finite holds NaN or infinite values."""


# --- arrays ----------------------------------------------------------------------------------

def _positions(mask: np.ndarray, limit: int = 3) -> str:
    """Where ``mask`` is true, as ``row 0, row 3`` (first axis) for a short message."""
    if mask.ndim == 0:
        return ""
    rows = np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1))
    shown = ", ".join(str(int(r)) for r in rows[:limit])
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return f" (at index {shown}{more} of axis 0)"


def check_finite(array, what: str) -> np.ndarray:
    """Return ``array`` (as numpy) if every value is finite; else raise :class:`NonFiniteError`."""
    array = np.asarray(array)
    if array.dtype.kind in "fc" and array.size:
        bad = ~np.isfinite(array)
        if bad.any():
            nan = int(np.isnan(array).sum())
            inf = int(bad.sum()) - nan
            kinds = " and ".join(part for part in (f"{nan} NaN" if nan else "",
                                                   f"{inf} infinite" if inf else "") if part)
            raise NonFiniteError(f"{what}: {kinds} value{'s' if bad.sum() > 1 else ''} of "
                                 f"{array.size}{_positions(bad)}")
    return array


def check_array(array, what: str, *, ndim: int | None = None, last_dim: int | None = None,
                kind: str | None = None, value_range: tuple[float, float] | None = None,
                tolerance: float = 1e-3, finite: bool = True, nonempty: bool = True,
                layout: str = "") -> np.ndarray:
    """Validate an array; return it as numpy. Raises :class:`CheckError` naming ``what``.

    ``ndim`` / ``last_dim``: required rank and size of the last axis (``layout`` describes the
    expected layout in the message, e.g. ``[B, T, H, W, 3]``). ``kind``: numpy dtype kinds
    allowed (``"f"`` float, ``"iu"`` integers). ``value_range``: inclusive bounds, with
    ``tolerance``. ``nonempty``: no axis of size 0. ``finite``: no NaN or infinity.
    """
    try:
        array = np.asarray(array)
    except (TypeError, ValueError) as err:
        raise CheckError(f"{what}: not an array ({err})") from None
    expected = f"; expected {layout}" if layout else ""
    if array.dtype == object:
        raise CheckError(f"{what}: an array of Python objects (ragged or mixed input){expected}")
    if ndim is not None and array.ndim != ndim:
        raise CheckError(f"{what}: shape {array.shape} has {array.ndim} axes{expected}")
    if last_dim is not None and (array.ndim == 0 or array.shape[-1] != last_dim):
        raise CheckError(f"{what}: shape {array.shape}, last axis must be {last_dim}{expected}")
    if nonempty and 0 in array.shape:
        raise CheckError(f"{what}: shape {array.shape} has an empty axis{expected}")
    if kind is not None and array.dtype.kind not in kind:
        raise CheckError(f"{what}: dtype {array.dtype} is not allowed here{expected}")
    if finite:
        check_finite(array, what)
    if value_range is not None and array.size:
        low, high = float(array.min()), float(array.max())
        if low < value_range[0] - tolerance or high > value_range[1] + tolerance:
            raise CheckError(f"{what}: values in [{low:.3g}, {high:.3g}], expected "
                             f"[{value_range[0]:g}, {value_range[1]:g}]")
    return array


# --- input files -------------------------------------------------------------------------------

def input_file_problem(path, *, folder: bool = False) -> str | None:
    """What keeps ``path`` from being read as an input file (or folder); ``None`` if nothing.

    Says what the path is when it is not a regular file: a symlink loop, a dangling link, a
    FIFO, a socket or device, a folder (or a file where a folder is wanted), an empty file, one
    without read permission.
    """
    path = Path(path)
    try:
        info = os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "a symbolic link loop (the link points, directly or not, to itself)"
        if os.path.islink(path):
            return f"a broken symbolic link (to {os.readlink(path)}, which does not exist)"
        if err.errno == errno.ENOTDIR:
            return "not found (a part of the path is a file, not a folder)"
        if err.errno == errno.ENOENT:
            return NOT_FOUND
        return err.strerror or str(err)
    mode = info.st_mode
    if folder:
        if not stat.S_ISDIR(mode):
            return "not a folder"
        if not os.access(path, os.R_OK | os.X_OK):
            return "folder not readable (permission denied)"
        return None
    if stat.S_ISDIR(mode):
        return "a folder, not a file"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe), not a regular file"
    if stat.S_ISSOCK(mode):
        return "a socket, not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device, not a regular file"
    if not os.access(path, os.R_OK):
        return "not readable (permission denied)"
    if info.st_size == 0:
        return "empty (0 bytes)"
    return None


def check_input_file(path, what: str = "file") -> Path:
    """Return ``path`` if it is a readable, non-empty regular file; else raise :class:`CheckError`."""
    problem = input_file_problem(path)
    if problem:
        raise CheckError(f"{path}: {problem}")
    return Path(path)


def load_npy(path, what: str | None = None) -> np.ndarray:
    """Load one plain ``.npy`` array safely (no pickles), checking the file first.

    A zero-byte file, a file that is not ``.npy`` (an ``.npz``, text), a header that is
    damaged or that claims more bytes than the file holds (a cut copy, or a header forged to
    make numpy allocate terabytes) raise :class:`CheckError` naming the file, before any large
    allocation.
    """
    path = check_input_file(path)
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(6)
        if head[:4] == b"PK\x03\x04":
            raise CheckError(f"{path}: expected one .npy array, found an .npz archive")
        if head != b"\x93NUMPY":
            raise CheckError(f"{path}: not a .npy file (no numpy magic at the start)")
        handle.seek(0)
        try:
            version = np.lib.format.read_magic(handle)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _fortran, dtype = read_header(handle)
        except (ValueError, SyntaxError, OSError) as err:
            raise CheckError(f"{path}: damaged .npy header ({str(err).splitlines()[0]})") from None
        data_start = handle.tell()
    if dtype.hasobject:
        raise CheckError(f"{path}: not a plain .npy array (it holds Python objects, a pickle; "
                         "only plain arrays are read)")
    claimed = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize if shape else dtype.itemsize
    held = size - data_start
    if claimed > held:
        raise CheckError(f"{path}: the header claims {claimed:,} bytes of data "
                         f"(shape {shape}, {dtype}), the file holds {held:,}; it is truncated "
                         "or damaged")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise CheckError(f"{path}: cannot be read as .npy ({str(err).splitlines()[0]})") from None


# --- digests -----------------------------------------------------------------------------------

DIGEST_CACHE = "file-digests.json"


def _digest_cache_path() -> Path:
    from helpers import config

    return config.cache_root() / DIGEST_CACHE


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _read_memo(memo_path: Path) -> dict:
    try:
        memo = json.loads(memo_path.read_text()) if memo_path.is_file() else {}
    except (OSError, ValueError):
        return {}
    return memo if isinstance(memo, dict) else {}


def file_digest(path) -> str:
    """Hex SHA-256 of a file, remembered by (resolved path, size, mtime) across runs.

    The memo lives in ``<cache root>/file-digests.json`` (locked, written atomically); a cache
    root that cannot be written only costs re-hashing next time.
    """
    from helpers import atomic

    path = Path(path).resolve()
    info = path.stat()
    key, stamp = str(path), [info.st_size, info.st_mtime_ns]
    memo_path = _digest_cache_path()
    entry = _read_memo(memo_path).get(key)
    if isinstance(entry, dict) and entry.get("stamp") == stamp and entry.get("sha256"):
        return entry["sha256"]
    digest = _sha256(path)
    try:
        with atomic.locked(memo_path):
            memo = _read_memo(memo_path)
            memo[key] = {"stamp": stamp, "sha256": digest}
            atomic.write_bytes(memo_path, json.dumps(memo, indent=0, sort_keys=True).encode())
    except OSError:
        pass  # a read-only cache root: the digest is still right, only not remembered
    return digest


def folder_digest(folder) -> str:
    """SHA-256 over the relative names and :func:`file_digest` of every file below ``folder``."""
    folder = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(folder).as_posix()}\0{file_digest(path)}\n".encode())
    return digest.hexdigest()
