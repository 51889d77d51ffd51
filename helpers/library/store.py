"""The on-disk index of a video library: a folder (local or any Beam file system, e.g. gs://).

Layout::

    INDEX/manifest.json            model, handle, weights digest, windows (written first, atomically)
    INDEX/shards/part-*.parquet    one row per window (each shard written to a .tmp- name, then renamed)
    INDEX/failures.jsonl           the last run's unreadable videos: {"path", "reason"} per line

Row columns (:data:`COLUMNS`): ``video`` (path as listed), ``file_sha256``, ``start_s``,
``end_s``, ``embedding`` (float32 ``[dim]``), ``model``, ``weights_sha256``. A row's key is
(file digest, weights digest, start, end): the same file under two names is one video, kept
under the first name read.

Exactly once: a shard appears whole or not at all (temp name, then rename; readers match only
``part-*.parquet``, so a partial ``.tmp-`` file of a killed run is never read), and
:func:`load` keeps the first row of each key, so a shard written twice (a retried bundle)
cannot duplicate a window.
"""

from __future__ import annotations

import dataclasses
import glob
import io
import json
import os
import types
import uuid

import numpy as np

MANIFEST = "manifest.json"
SHARDS = "shards"
FAILURES = "failures.jsonl"
SHARD_GLOB = "part-*.parquet"
FORMAT = 1
COLUMNS = ("video", "file_sha256", "start_s", "end_s", "embedding", "model", "weights_sha256")


class LibraryError(ValueError):
    """Bad input to the library: a folder without videos, an index that cannot be read or
    written. The message names the file or folder."""


class _LocalFileSystems:
    """The few calls of Beam's ``FileSystems`` this module makes, on local files, for when Beam
    is not installed (Colab: see :mod:`helpers.library.pipeline`). A remote path (``gs://``)
    is refused with the fix."""

    @staticmethod
    def _local(path) -> str:
        path = str(path)
        if "://" in path and not path.startswith("file://"):
            raise LibraryError(f"{path}: a remote path needs Apache Beam's file systems "
                               f"(pip install 'apache-beam[gcp]')")
        return path.removeprefix("file://")

    @classmethod
    def join(cls, base, *parts):
        return os.path.join(cls._local(base), *parts)

    @classmethod
    def split(cls, path):
        return os.path.split(cls._local(path))

    @classmethod
    def exists(cls, path) -> bool:
        return os.path.exists(cls._local(path))

    @classmethod
    def mkdirs(cls, path) -> None:
        os.makedirs(cls._local(path))  # raises OSError when it exists, as Beam's does

    @classmethod
    def open(cls, path):
        return open(cls._local(path), "rb")

    @classmethod
    def create(cls, path):
        return open(cls._local(path), "wb")

    @classmethod
    def delete(cls, paths) -> None:
        for path in paths:
            os.remove(cls._local(path))

    @classmethod
    def rename(cls, sources, targets) -> None:
        for source, target in zip(sources, targets):
            os.replace(cls._local(source), cls._local(target))

    @classmethod
    def match(cls, patterns):
        """Like Beam's: one result per pattern, ``.metadata_list`` of items with ``.path``."""
        return [types.SimpleNamespace(metadata_list=[
            types.SimpleNamespace(path=os.path.abspath(p))
            for p in sorted(glob.glob(cls._local(pattern), recursive=True))
            if os.path.isfile(p)]) for pattern in patterns]


class _QuietBeam:
    """Drops Beam's log lines that say nothing about this pipeline: optional clients it lacks
    (BigQuery's apitools, at import; torch for RunInference's memory figures; neither is used
    here) and the note that the failures file of the previous run is replaced."""

    NOISE = ("apitools not found", "Resource module is not available",
             "Deleting 1 existing files in target path")

    @classmethod
    def filter(cls, record) -> bool:
        return not record.getMessage().startswith(cls.NOISE)


def quiet_beam() -> None:
    """Install :class:`_QuietBeam` on the loggers Beam writes those lines to (call it before
    importing Beam: the apitools line comes at import time)."""
    import logging

    for name in ("", "apache_beam.io.filebasedsink"):
        logger = logging.getLogger(name)
        if _QuietBeam not in logger.filters:
            logger.addFilter(_QuietBeam)


def _fs():
    """Beam's ``FileSystems`` (local, ``gs://``, ...) when Beam is installed, else the local
    file system through the same calls."""
    quiet_beam()
    try:
        from apache_beam.io.filesystems import FileSystems
    except ImportError:
        return _LocalFileSystems
    return FileSystems


def join(base: str, *parts: str) -> str:
    return _fs().join(str(base), *parts)


def exists(path: str) -> bool:
    return _fs().exists(str(path))


def mkdirs(path: str) -> None:
    fs = _fs()
    if not fs.exists(str(path)):
        try:
            fs.mkdirs(str(path))
        except OSError:  # a concurrent run made it first; object stores have no folders
            pass


def read_bytes(path: str) -> bytes:
    with _fs().open(str(path)) as handle:
        return handle.read()


def write_atomically(path: str, data: bytes) -> None:
    """Write ``data`` to a ``.tmp-`` name beside ``path``, then rename it onto ``path``."""
    fs = _fs()
    folder, name = fs.split(str(path))
    tmp = fs.join(folder, f".tmp-{uuid.uuid4().hex[:12]}-{name}")
    with fs.create(tmp) as handle:
        handle.write(data)
    if fs.exists(str(path)):
        fs.delete([str(path)])
    fs.rename([tmp], [str(path)])


def row_key(file_sha256: str, weights_sha256: str, start_s: float, end_s: float) -> tuple:
    from helpers.library.windows import TIME_DECIMALS

    return (file_sha256, weights_sha256, round(float(start_s), TIME_DECIMALS),
            round(float(end_s), TIME_DECIMALS))


# ------------------------------------------------------------------------------ manifest

def read_manifest(index: str) -> dict | None:
    """The manifest of ``index``, or None when there is none. Raises :class:`LibraryError`
    when it cannot be read."""
    path = join(index, MANIFEST)
    if not exists(path):
        return None
    try:
        manifest = json.loads(read_bytes(path))
    except (OSError, ValueError) as err:
        raise LibraryError(f"{path}: not a readable index manifest ({err})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise LibraryError(f"{path}: not a video-library manifest of format {FORMAT}")
    return manifest


def open_for_writing(index: str, manifest: dict) -> None:
    """Create ``index`` with ``manifest``, or check an existing one was made the same way
    (model, weights and windows): one index holds comparable embeddings only."""
    existing = read_manifest(index)
    if existing is None:
        mkdirs(index)
        mkdirs(join(index, SHARDS))
        write_atomically(join(index, MANIFEST), json.dumps(manifest, indent=1).encode())
        return
    for field in ("model", "weights_sha256", "windows"):
        if existing.get(field) != manifest.get(field):
            raise LibraryError(
                f"{join(index, MANIFEST)}: this index was built with {field} "
                f"{existing.get(field)!r}, not {manifest.get(field)!r}; give another --out "
                f"(one index holds embeddings of one model and one way of cutting windows)")
    mkdirs(join(index, SHARDS))


# ------------------------------------------------------------------------------ shards

def pyarrow():
    """``(pyarrow, pyarrow.parquet)``, imported when a shard is read or written. Colab
    preinstalls pyarrow (tests/data/colab/); elsewhere it comes with requirements.txt or the
    ``[scale]`` extra. Raises :class:`LibraryError` with the fix when it is missing."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as err:
        raise LibraryError(f"the index's shards are Parquet files and need pyarrow ({err}); "
                           f"pip install pyarrow") from None
    return pa, pq


def write_shard(index: str, rows: list[dict], run_id: str) -> str:
    """Write ``rows`` (dicts with :data:`COLUMNS`) as one new Parquet shard; return its path."""
    pa, pq = pyarrow()
    dim = len(rows[0]["embedding"])
    embeddings = np.stack([np.asarray(r["embedding"], np.float32) for r in rows])
    table = pa.table({
        "video": pa.array([r["video"] for r in rows], pa.string()),
        "file_sha256": pa.array([r["file_sha256"] for r in rows], pa.string()),
        "start_s": pa.array([r["start_s"] for r in rows], pa.float64()),
        "end_s": pa.array([r["end_s"] for r in rows], pa.float64()),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(embeddings.reshape(-1)), dim),
        "model": pa.array([r["model"] for r in rows], pa.string()),
        "weights_sha256": pa.array([r["weights_sha256"] for r in rows], pa.string()),
    })
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    path = join(index, SHARDS, f"part-{run_id}-{uuid.uuid4().hex[:12]}.parquet")
    write_atomically(path, buffer.getvalue())
    return path


def shard_paths(index: str) -> list[str]:
    """The complete shards of ``index``, sorted (``.tmp-`` files of killed runs left out)."""
    pattern = join(index, SHARDS, SHARD_GLOB)
    found = _fs().match([pattern])[0].metadata_list
    return sorted(m.path for m in found)


def _read_shard(path: str, columns=None):
    pa, pq = pyarrow()
    try:
        return pq.read_table(pa.BufferReader(read_bytes(path)), columns=columns)
    except (OSError, ValueError, pa.ArrowException) as err:
        raise LibraryError(f"{path}: not a readable Parquet shard ({str(err)[:200]}); delete it "
                          f"and run the index command again to re-embed its windows") from None


def written_keys(index: str) -> dict[str, set]:
    """``{file_sha256: {(weights, start, end), ...}}`` of every row already written."""
    done: dict[str, set] = {}
    for path in shard_paths(index):
        table = _read_shard(path, ["file_sha256", "weights_sha256", "start_s", "end_s"]).to_pydict()
        for digest, weights, start, end in zip(table["file_sha256"], table["weights_sha256"],
                                               table["start_s"], table["end_s"]):
            done.setdefault(digest, set()).add(row_key(digest, weights, start, end)[1:])
    return done


@dataclasses.dataclass
class Library:
    """A loaded index: one entry per distinct window (first row of each key kept).

    ``embeddings``: float32 ``[N, dim]``; ``videos``, ``file_sha256``: ``[N]`` str;
    ``start_s``, ``end_s``: float64 ``[N]`` seconds; ``manifest``: how it was made;
    ``duplicates``: rows dropped because their key was already present.
    """

    embeddings: np.ndarray
    videos: np.ndarray
    file_sha256: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray
    manifest: dict
    duplicates: int = 0

    def __len__(self) -> int:
        return len(self.embeddings)

    def keys(self) -> list[tuple]:
        weights = self.manifest["weights_sha256"]
        return [row_key(d, weights, s, e) for d, s, e in
                zip(self.file_sha256, self.start_s, self.end_s)]


def load(index: str) -> Library:
    """Read every shard of ``index``; de-duplicate by key. Raises :class:`LibraryError` naming
    the file when ``index`` is not an index or a shard is damaged."""
    index = str(index)
    manifest = read_manifest(index)
    if manifest is None:
        what = "does not exist" if not exists(index) else f"has no {MANIFEST}"
        raise LibraryError(f"{index}: not a video-library index ({what}); build one with "
                          f"python -m helpers.library index")
    dim = int(manifest.get("embedding_dim", 512))
    seen: set = set()
    parts = {name: [] for name in ("embeddings", "videos", "file_sha256", "start_s", "end_s")}
    total = 0
    for path in shard_paths(index):
        table = _read_shard(path)
        missing = [c for c in COLUMNS if c not in table.column_names]
        if missing:
            raise LibraryError(f"{path}: a shard without the columns {', '.join(missing)}")
        data = table.to_pydict()
        embedding = np.asarray(table.column("embedding").combine_chunks().flatten(),
                               np.float32).reshape(-1, dim) if len(table) else \
            np.zeros((0, dim), np.float32)
        keep = []
        for i, key in enumerate(zip(data["file_sha256"], data["weights_sha256"],
                                    data["start_s"], data["end_s"])):
            key = row_key(*key)
            if key not in seen:
                seen.add(key)
                keep.append(i)
        total += len(table)
        parts["embeddings"].append(embedding[keep])
        for name, column in (("videos", "video"), ("file_sha256", "file_sha256"),
                             ("start_s", "start_s"), ("end_s", "end_s")):
            parts[name].append(np.asarray(data[column])[keep] if keep else
                               np.zeros(0, np.float64 if name.endswith("_s") else str))
    if not parts["embeddings"]:
        return Library(np.zeros((0, dim), np.float32), np.zeros(0, str), np.zeros(0, str),
                       np.zeros(0), np.zeros(0), manifest, 0)
    return Library(np.concatenate(parts["embeddings"]),
                   np.concatenate(parts["videos"]).astype(str),
                   np.concatenate(parts["file_sha256"]).astype(str),
                   np.concatenate(parts["start_s"]).astype(np.float64),
                   np.concatenate(parts["end_s"]).astype(np.float64),
                   manifest, total - len(seen))


def read_failures(index: str) -> list[dict]:
    """The last run's failures: ``[{"path": ..., "reason": ...}, ...]`` (empty when none)."""
    path = join(index, FAILURES)
    if not exists(path):
        return []
    return [json.loads(line) for line in read_bytes(path).decode().splitlines() if line.strip()]
