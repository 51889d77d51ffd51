"""Embed a library of videos: list, digest, cut into windows, embed, write Parquet shards.

Two engines run the same steps (:mod:`helpers.library.steps`) into the same index format:

* **Beam** (:mod:`helpers.library.beam_pipeline`, when ``apache-beam`` is installed: the
  ``[scale]`` extra, and requirements.txt)::

    paths ──Reshuffle──▶ CutWindows (sha256, plan, skip rows already written, decode) ──┬─▶ failures.jsonl
                          └─▶ ((video, digest, start, end), uint8 window)                 │
        ──RunInference(KeyedModelHandler(EncoderHandler))──▶ embedding [512 | 1024]       │
        ──WriteShards──▶ INDEX/shards/part-<run>-<id>.parquet (temp name, then rename)    ┘

* **in-process** (when Beam cannot be imported, or ``engine="in-process"``): the same
  functions in a loop in this process, batches of ``batch_size`` windows, local files only.
  Colab has no Beam, and installing it there would replace Colab's preinstalled pillow and
  protobuf (Beam 2.77 pins both), so the course's Colab install leaves it out and notebook 07
  runs this engine there. Same rows, same embeddings (``tests/test_library.py`` checks it).

The files are listed on the driver (:func:`list_videos`, through Beam's ``FileSystems`` when
Beam is there, so a ``gs://`` folder or glob works like a local one), which lets a bad
``--videos`` fail at once. :class:`~helpers.library.beam_pipeline.EncoderHandler` is the model
handler RunInference calls: ``load_model`` once per worker process (threads of one process
share it, Beam's ``shared.Shared``), batches of up to ``batch_size`` windows
(``batch_elements_kwargs``), and each batch through :func:`helpers.milnce.embed_videos`, the
function ``python -m helpers.milnce embed`` calls, so the numbers are the same (or, for
``--model mmv-s3d``, through :func:`helpers.mmv.load_model`'s encoder).

Resumable: before the run the driver reads the keys already written (file digest, weights
digest, window); windows already written are skipped without being decoded, so a rerun after a
crash or a kill embeds only what is missing, and a rerun of a finished index writes nothing.
Rows are written in shards of ``rows_per_shard`` as they come (a kill loses at most the shards
being filled), each shard atomically (:mod:`helpers.library.store`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import uuid
from pathlib import Path
from typing import Iterable

from helpers.library import encoders, steps, store
from helpers.library.encoders import weights_digest  # noqa: F401 - public here too
from helpers.library.store import LibraryError
from helpers.library.windows import Windows

#: File name endings listed as videos (FFmpeg reads more; name them with a glob).
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".webm", ".mkv", ".gif", ".mpg", ".mpeg")
#: The models ``--model`` accepts (:mod:`helpers.library.encoders`): MIL-NCE's module, and
#: MMV's S3D-G backbone (video features only: no text search on its indexes).
MODELS = encoders.NAMES
#: How the DirectRunner runs its workers by default: threads in this process (measured in
#: benchmarks/library_bench.py: see the module docstring of helpers.library). The same value
#: as helpers.library.beam_pipeline's, kept here so the command line needs no Beam to start.
DEFAULT_RUNNING_MODE = "multi_threading"
#: Rows per Parquet shard by default: a few MB of 512-d float32 per file, few files per index;
#: a kill loses at most the shards being filled (``--rows-per-shard`` sets it).
DEFAULT_ROWS_PER_SHARD = 512
#: The engines :func:`build_index` runs: ``auto`` is Beam when it can be imported, else
#: in-process.
ENGINES = ("auto", "beam", "in-process")
#: Why the course's Colab install has no Beam (printed when the in-process engine runs).
NO_BEAM_ON_COLAB = ("apache-beam is the course's [scale] extra, not part of its Colab install: "
                    "Beam 2.77 pins pillow<13 and protobuf<7 and would replace Colab's "
                    "preinstalled versions")


def beam_status() -> tuple[bool, str]:
    """``(True, "apache-beam X is installed")`` or ``(False, why it cannot be imported)``."""
    store.quiet_beam()
    try:
        import apache_beam
    except ImportError as err:
        return False, f"apache-beam cannot be imported here ({err}); {NO_BEAM_ON_COLAB}"
    return True, f"apache-beam {apache_beam.__version__} is installed"


def list_videos(source) -> list[str]:
    """Video files of ``source``: a folder (searched recursively) or a glob, local or on any
    Beam file system (``gs://``: install ``apache-beam[gcp]``). Sorted; local paths absolute.

    Files whose names start with ``.`` are left out. Raises :class:`LibraryError` naming
    ``source`` when it does not exist or holds no video file.
    """
    fs = store._fs()  # Beam's FileSystems, or the local file system without Beam
    source = str(source)
    is_glob = any(c in source for c in "*?[")
    if not steps.is_remote(source):
        source = source.removeprefix("file://")
        if not is_glob:
            folder = Path(source)
            if not folder.exists():
                raise LibraryError(f"{source}: no such folder")
            if not folder.is_dir():
                raise LibraryError(f"{source}: not a folder (give a folder of videos or a glob)")
            source = os.path.abspath(source)
        else:
            source = os.path.abspath(source)
    pattern = source if is_glob else fs.join(source.rstrip("/"), "**")
    try:
        found = fs.match([pattern])[0].metadata_list
    except Exception as err:  # noqa: BLE001 - Beam raises BeamIOError, or OSError for local
        raise LibraryError(f"{source}: cannot list it ({str(err)[:200]})") from None
    paths = sorted(m.path for m in found
                   if m.path.lower().endswith(VIDEO_SUFFIXES)
                   and not fs.split(m.path)[1].startswith("."))
    if not paths:
        raise LibraryError(f"{source}: no video files there (looked for "
                           f"{', '.join(VIDEO_SUFFIXES)})")
    return paths


# ------------------------------------------------------------------------------ the run

@dataclasses.dataclass
class RunSummary:
    """What one :func:`build_index` run did."""

    index: str
    videos: int             # video files listed
    rows_written: int       # windows embedded and written by this run
    rows_before: int        # rows the index held before (skipped when they were listed again)
    failures: list          # [{"path", "reason"}]: unreadable videos of this run
    seconds: float
    run_id: str
    engine: str = "beam"    # "beam" or "in-process"
    why: str = ""           # why that engine ran

    def __str__(self) -> str:
        return (f"{self.index}: {self.rows_written} windows embedded from {self.videos} videos "
                f"in {self.seconds:.1f} s ({self.rows_before} rows were already there); "
                f"{len(self.failures)} unreadable; engine: {self.engine}")


def choose_engine(engine: str = "auto", runner: str = "DirectRunner") -> tuple[str, str]:
    """``("beam" | "in-process", why)`` for the ``engine`` asked for. Raises
    :class:`LibraryError` when Beam is asked for (by name, or by a runner other than the
    DirectRunner) and cannot be imported."""
    if engine not in ENGINES:
        raise LibraryError(f"engine {engine!r}: use one of {', '.join(ENGINES)}")
    available, status = beam_status()
    if engine == "in-process":
        return "in-process", "asked for (engine='in-process')"
    if engine == "beam" or runner not in ("DirectRunner", "direct"):
        if not available:
            raise LibraryError(f"the Beam engine (runner {runner}) needs Apache Beam: {status}; "
                               f"pip install 'apache-beam[gcp]'")
        return "beam", f"asked for; {status}"
    if available:
        return "beam", status
    return "in-process", status


def build_index(videos, out, *, model: str = "milnce", handle: str | None = None,
                windows: Windows = Windows(), runner: str = "DirectRunner", workers: int = 2,
                running_mode: str = DEFAULT_RUNNING_MODE, batch_size: int = 8,
                rows_per_shard: int = DEFAULT_ROWS_PER_SHARD, pipeline_args: Iterable = (),
                paths: list[str] | None = None, engine: str = "auto",
                module=None) -> RunSummary:
    """Embed every window of the videos in ``videos`` (a folder or glob) into the index ``out``.

    Windows already in ``out`` are skipped (same file digest, weights and window); unreadable
    videos are listed in ``out/failures.jsonl`` and the others embedded. ``paths``: the files
    to embed, instead of listing ``videos``. ``model``: ``milnce`` or ``mmv-s3d``
    (:mod:`helpers.library.encoders`); ``handle``: its weights (a TF-Hub handle or SavedModel
    folder for MIL-NCE, a checkpoint pickle for MMV; default: the mode's). ``engine``:
    ``auto`` (Beam when it can be imported, else in-process), ``beam`` or ``in-process``
    (:func:`choose_engine`); the summary says which ran and why. ``module``: the loaded model
    of ``handle``, for the in-process engine (saves loading it again; Beam's workers load
    their own). Returns a :class:`RunSummary`. Raises :class:`LibraryError` for a missing
    folder, no videos, an index made otherwise, windows the model cannot take, or Beam asked
    for where it is not installed.
    """
    encoder = encoders.get(model)
    encoder.check_windows(windows)
    engine, why = choose_engine(engine, runner)
    started = time.perf_counter()
    paths = list(paths) if paths is not None else list_videos(videos)
    handle = str(handle) if handle else None  # None: the model's default (each worker's own)
    weights, mode = encoder.weights(handle)
    out = str(out) if steps.is_remote(str(out)) else os.path.abspath(str(out))
    store.open_for_writing(out, {"format": store.FORMAT, "model": model,
                                 "handle": encoder.resolve(handle), "mode": mode,
                                 "weights_sha256": weights, "windows": windows.to_dict(),
                                 "embedding_dim": encoder.dim})
    done_all = store.written_keys(out)
    done = {digest: {(s, e) for w, s, e in keys if w == weights}
            for digest, keys in done_all.items()}
    rows_before = sum(len(v) for v in done.values())
    run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]

    if engine == "beam":
        from helpers.library import beam_pipeline

        beam_pipeline.run(paths, out, model=model, handle=handle, weights=weights, done=done,
                          run_id=run_id, windows=windows, runner=runner, workers=workers,
                          running_mode=running_mode, batch_size=batch_size,
                          rows_per_shard=rows_per_shard, pipeline_args=pipeline_args)
    else:
        _run_in_process(paths, out, module if module is not None else encoder.load(handle),
                        model=model, weights=weights, done=done, run_id=run_id,
                        windows=windows, batch_size=batch_size, rows_per_shard=rows_per_shard)
    written = sum(_row_count(p) for p in store.shard_paths(out) if f"part-{run_id}-" in p)
    return RunSummary(out, len(paths), written, rows_before, store.read_failures(out),
                      time.perf_counter() - started, run_id, engine, why)


def _run_in_process(paths, out, module, *, model, weights, done, run_id, windows, batch_size,
                    rows_per_shard) -> None:
    """The Beam pipeline's steps as a loop in this process: cut, embed ``batch_size`` windows
    at a time, write shards of ``rows_per_shard`` rows, then the failures file."""
    rows, batch, keys, failures = [], [], [], []

    def embed():
        if batch:
            for key, embedding in zip(keys, steps.embed_windows(module, batch, model)):
                rows.append(steps.row(key, embedding, model, weights))
            batch.clear()
            keys.clear()

    def write(at_least: int):
        while rows and len(rows) >= at_least:
            store.write_shard(out, rows[:rows_per_shard], run_id)
            del rows[:rows_per_shard]

    for path in paths:
        for key, value in steps.cut_windows(path, windows, done):
            if key is None:
                failures.append(value)
                continue
            batch.append(value)
            keys.append(key)
            if len(batch) == batch_size:
                embed()
                write(rows_per_shard)
    embed()
    write(1)
    lines = "".join(json.dumps(f, sort_keys=True) + "\n" for f in failures)
    store.write_atomically(store.join(out, store.FAILURES), lines.encode())


def _row_count(path: str) -> int:
    pa, pq = store.pyarrow()
    return pq.read_metadata(pa.BufferReader(store.read_bytes(path))).num_rows
