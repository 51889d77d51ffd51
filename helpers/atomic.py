"""Write files so that a reader never sees half of one (temp file in the same folder, then rename),
and let only one process at a time build or download the same cached file (:func:`locked`)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike):
    """Yield a temporary path beside ``dest``; on success it replaces ``dest`` in one step.

    If the body raises (or the process dies), ``dest`` is untouched and the temporary file is
    removed (or, after a crash, left under a ``.tmp-`` name that nothing reads).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{dest.name}-", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, dest)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def locked(dest: str | os.PathLike, timeout: float = -1):
    """Hold the per-file lock ``<dest>.lock`` (between processes and threads) for the block.

    Every cached artefact (download, stand-in, feature part) is made under its own lock, so a
    second process waits and then finds the finished file instead of writing it again. The lock
    is ``filelock``'s (an OS lock, released when its holder dies, so a killed run never leaves a
    stale lock). ``timeout``: seconds to wait (``-1``: as long as it takes); on expiry
    ``filelock.Timeout`` is raised.
    """
    import filelock

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(dest.with_name(dest.name + ".lock")), timeout=timeout):
        yield dest


def write_bytes(dest: str | os.PathLike, data: bytes) -> Path:
    """Atomically write ``data`` to ``dest``."""
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


def save_npz(dest: str | os.PathLike, **arrays) -> Path:
    """Atomically write a compressed ``.npz`` (``numpy.savez_compressed``)."""
    import numpy as np

    with atomic_path(dest) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)
    return Path(dest)
