"""Embed a library of videos with Apache Beam: list, digest, cut into windows, embed, write.

::

    paths ──Reshuffle──▶ CutWindows (sha256, plan, skip rows already written, decode) ──┬─▶ failures.jsonl
                          └─▶ ((video, digest, start, end), uint8 window)                 │
        ──RunInference(KeyedModelHandler(MilnceHandler))──▶ embedding [512]               │
        ──WriteShards──▶ INDEX/shards/part-<run>-<id>.parquet (temp name, then rename)    ┘

The files are listed on the driver (:func:`list_videos`, through Beam's ``FileSystems``, so a
``gs://`` folder or glob works like a local one), which lets a bad ``--videos`` fail at once;
the rest runs on the workers. :class:`MilnceHandler` is the model handler RunInference calls:
``load_model`` once per worker process (threads of one process share it, Beam's
``shared.Shared``), batches of up to ``batch_size`` windows (``batch_elements_kwargs``), and
each batch through :func:`helpers.milnce.embed_videos`, the function ``python -m helpers.milnce
embed`` calls, so the numbers are the same. TensorFlow is imported through
:mod:`helpers.gpu` (memory growth on), and places the module on the GPU when there is one.

Resumable: before the run the driver reads the keys already written (file digest, weights
digest, window); :class:`CutWindows` skips those windows without decoding them, so a rerun
after a crash or a kill embeds only what is missing, and a rerun of a finished index writes
nothing. Rows are written in shards of ``rows_per_shard`` as they come (a kill loses at most
the shards being filled), each shard atomically (:mod:`helpers.library.store`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from helpers.library import store
from helpers.library.store import LibraryError
from helpers.library.windows import Windows

#: File name endings listed as videos (FFmpeg reads more; name them with a glob).
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".webm", ".mkv", ".gif", ".mpg", ".mpeg")
#: The models ``--model`` accepts. MMV's backbones are not wired in yet (their clips take
#: another preprocessing: helpers.mmv); only MIL-NCE's module is.
MODELS = ("milnce",)
#: How the DirectRunner runs its workers by default: threads in this process (measured in
#: benchmarks/library_bench.py: see the module docstring of helpers.library).
DEFAULT_RUNNING_MODE = "multi_threading"


def _is_remote(path: str) -> bool:
    return "://" in str(path) and not str(path).startswith("file://")


def list_videos(source) -> list[str]:
    """Video files of ``source``: a folder (searched recursively) or a glob, local or on any
    Beam file system (``gs://``: install ``apache-beam[gcp]``). Sorted; local paths absolute.

    Files whose names start with ``.`` are left out. Raises :class:`LibraryError` naming
    ``source`` when it does not exist or holds no video file.
    """
    from apache_beam.io.filesystems import FileSystems

    source = str(source)
    is_glob = any(c in source for c in "*?[")
    if not _is_remote(source):
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
    pattern = source if is_glob else FileSystems.join(source.rstrip("/"), "**")
    try:
        found = FileSystems.match([pattern])[0].metadata_list
    except Exception as err:  # noqa: BLE001 - Beam raises BeamIOError, or OSError for local
        raise LibraryError(f"{source}: cannot list it ({str(err)[:200]})") from None
    paths = sorted(m.path for m in found
                   if m.path.lower().endswith(VIDEO_SUFFIXES)
                   and not FileSystems.split(m.path)[1].startswith("."))
    if not paths:
        raise LibraryError(f"{source}: no video files there (looked for "
                           f"{', '.join(VIDEO_SUFFIXES)})")
    return paths


@contextlib.contextmanager
def local_copy(path: str):
    """Yield ``(local path, sha256 hex)`` of ``path``; a remote file is copied to a temporary
    file while hashing (the decoder needs a local file) and deleted afterwards."""
    digest = hashlib.sha256()
    if not _is_remote(path):
        local = path.removeprefix("file://")
        with open(local, "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
        yield local, digest.hexdigest()
        return
    from apache_beam.io.filesystems import FileSystems

    folder = tempfile.mkdtemp(prefix="library-")
    local = os.path.join(folder, "video" + os.path.splitext(path)[1])
    try:
        with FileSystems.open(path) as source, open(local, "wb") as target:
            while block := source.read(1 << 20):
                digest.update(block)
                target.write(block)
        yield local, digest.hexdigest()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def weights_digest(handle: str) -> tuple[str, str]:
    """``(sha256 over the module's files, mode)`` for a TF-Hub handle or a local folder.

    The module is resolved (and, the first time in real mode, downloaded) as
    :func:`helpers.milnce.load` does; the digest is :func:`helpers.checks.folder_digest`.
    """
    from helpers import checks, milnce

    handle = str(handle)
    if not _is_remote(handle) or handle.startswith("file://"):
        folder = Path(handle.removeprefix("file://")).expanduser()
        if not folder.is_dir():
            raise LibraryError(f"{folder}: the model folder does not exist")
        return checks.folder_digest(folder), "local"
    mode = milnce.resolve_mode(handle)
    folder = milnce.cache_folder(handle, mode)
    if not (folder.is_dir() and any(folder.iterdir())):
        milnce.load(handle)  # downloads it into the cache
    return checks.folder_digest(folder), mode


# ------------------------------------------------------------------------------ Beam parts

class _QuietBeam:
    """Drops Beam's warnings that say nothing about this pipeline: optional clients it lacks
    (BigQuery's apitools, torch for RunInference's memory figures; neither is used here) and
    the note that the failures file of the previous run is replaced."""

    NOISE = ("apitools not found", "Resource module is not available",
             "Deleting 1 existing files in target path")

    @classmethod
    def filter(cls, record) -> bool:
        return not str(record.msg).startswith(cls.NOISE)


def _beam():
    import logging

    for name in ("", "apache_beam.io.filebasedsink"):
        logger = logging.getLogger(name)
        if _QuietBeam not in logger.filters:
            logger.addFilter(_QuietBeam)
    import apache_beam as beam

    return beam


def _model_handler_base():
    _beam()
    from apache_beam.ml.inference.base import ModelHandler

    return ModelHandler


class MilnceHandler(_model_handler_base()):
    """RunInference's model handler for the MIL-NCE TF-Hub module (or its stand-in).

    Examples are uint8 windows ``[T, size, size, 3]``; each prediction is the window's
    ``video_embedding`` float32 ``[512]`` (in ``PredictionResult.inference``; the example is
    not carried on, to keep frames out of the rest of the pipeline).
    """

    def __init__(self, handle: str, batch_size: int = 8):
        super().__init__(min_batch_size=1, max_batch_size=batch_size)
        self._handle = str(handle)
        self._batch_size = batch_size

    def load_model(self):
        from helpers import milnce

        return milnce.load(self._handle)

    def run_inference(self, batch: Sequence[np.ndarray], model, inference_args=None):
        from apache_beam.ml.inference.base import PredictionResult

        from helpers import milnce
        from helpers.library.windows import to_model_input

        clips = to_model_input(np.stack(batch))
        embedding = milnce.embed_videos(model, clips, batch_size=max(1, len(clips)),
                                        progress=False)["video_embedding"]
        return [PredictionResult(None, row) for row in embedding]

    def get_num_bytes(self, batch) -> int:
        return int(sum(np.asarray(x).nbytes for x in batch))  # the default pickles the batch

    def get_metrics_namespace(self) -> str:
        return "helpers.library.milnce"


class CutWindows(_beam().DoFn):
    """path -> ``((video, file_sha256, start_s, end_s), uint8 window)`` for every window not
    written yet; an unreadable file goes to the ``failures`` output as ``{"path", "reason"}``."""

    FAILURES = "failures"

    def __init__(self, windows: Windows, done: dict):
        self._windows = windows
        self._done = done  # {file_sha256: {(start_s, end_s), ...}} for this model's weights

    def process(self, path: str):
        from apache_beam import pvalue

        from helpers import video
        from helpers.library import windows as cutter

        try:
            with local_copy(path) as (local, digest):
                plan = cutter.plan(local, self._windows)
                done = self._done.get(digest, ())
                todo = [i for i, span in enumerate(plan.spans()) if span not in done]
                for _, start, end, frames in cutter.iter_windows(local, self._windows, todo,
                                                                 the_plan=plan):
                    yield (path, digest, start, end), frames
        except video.VideoError as err:
            yield pvalue.TaggedOutput(self.FAILURES, {"path": path, "reason": err.cause})
        except OSError as err:  # unreadable, vanished, or a storage error
            yield pvalue.TaggedOutput(self.FAILURES, {
                "path": path, "reason": f"cannot read it ({err.strerror or err})"})
        except Exception as err:  # noqa: BLE001 - one odd file must not stop the whole job
            yield pvalue.TaggedOutput(self.FAILURES, {
                "path": path, "reason": f"unexpected error while cutting it "
                                        f"({type(err).__name__}: {str(err)[:200]})"})


class WriteShards(_beam().DoFn):
    """Collect rows and write them as Parquet shards of ``rows_per_shard`` (and at the end of
    each bundle), each atomically (:func:`helpers.library.store.write_shard`)."""

    def __init__(self, index: str, run_id: str, model: str, weights: str,
                 rows_per_shard: int = 512):
        self._index, self._run_id = index, run_id
        self._model, self._weights = model, weights
        self._rows_per_shard = rows_per_shard
        self._rows: list[dict] = []

    def start_bundle(self):
        self._rows = []

    def process(self, element):
        (path, digest, start, end), prediction = element
        self._rows.append({"video": path, "file_sha256": digest, "start_s": start, "end_s": end,
                           "embedding": np.asarray(prediction.inference, np.float32),
                           "model": self._model, "weights_sha256": self._weights})
        if len(self._rows) >= self._rows_per_shard:
            self._flush()

    def finish_bundle(self):
        self._flush()

    def _flush(self):
        if self._rows:
            store.write_shard(self._index, self._rows, self._run_id)
            self._rows = []


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

    def __str__(self) -> str:
        return (f"{self.index}: {self.rows_written} windows embedded from {self.videos} videos "
                f"in {self.seconds:.1f} s ({self.rows_before} rows were already there); "
                f"{len(self.failures)} unreadable")


def pipeline_options(runner: str = "DirectRunner", workers: int = 2,
                     running_mode: str = DEFAULT_RUNNING_MODE, pipeline_args: Iterable = ()):
    """Beam's options: ``pipeline_args`` (e.g. ``--project``, ``--region``, ``--temp_location``,
    ``--requirements_file`` for Dataflow) plus the runner and, for the DirectRunner, its
    ``direct_num_workers`` and ``direct_running_mode``."""
    from apache_beam.options.pipeline_options import PipelineOptions

    extra = {"runner": runner}
    if runner in ("DirectRunner", "direct"):
        extra.update(direct_num_workers=workers, direct_running_mode=running_mode)
    return PipelineOptions(list(pipeline_args), **extra)


def build_index(videos, out, *, model: str = "milnce", handle: str | None = None,
                windows: Windows = Windows(), runner: str = "DirectRunner", workers: int = 2,
                running_mode: str = DEFAULT_RUNNING_MODE, batch_size: int = 8,
                rows_per_shard: int = 512, pipeline_args: Iterable = (),
                paths: list[str] | None = None) -> RunSummary:
    """Embed every window of the videos in ``videos`` (a folder or glob) into the index ``out``.

    Windows already in ``out`` are skipped (same file digest, weights and window); unreadable
    videos are listed in ``out/failures.jsonl`` and the others embedded. ``paths``: the files
    to embed, instead of listing ``videos``. Returns a :class:`RunSummary`. Raises
    :class:`LibraryError` for a missing folder, no videos, or an index made otherwise.
    """
    from helpers import milnce

    beam = _beam()
    from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

    if model not in MODELS:
        raise LibraryError(f"--model {model}: not supported; use one of {', '.join(MODELS)}")
    started = time.perf_counter()
    paths = list(paths) if paths is not None else list_videos(videos)
    handle = str(handle) if handle else milnce.default_handle()
    weights, mode = weights_digest(handle)
    out = str(out) if _is_remote(str(out)) else os.path.abspath(str(out))
    store.open_for_writing(out, {"format": store.FORMAT, "model": model, "handle": handle,
                                 "mode": mode, "weights_sha256": weights,
                                 "windows": windows.to_dict(), "embedding_dim": 512})
    done_all = store.written_keys(out)
    done = {digest: {(s, e) for w, s, e in keys if w == weights}
            for digest, keys in done_all.items()}
    rows_before = sum(len(v) for v in done.values())
    run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]

    options = pipeline_options(runner, workers, running_mode, pipeline_args)
    with beam.Pipeline(options=options) as pipeline:
        cut = (pipeline
               | "List" >> beam.Create(paths)
               | "Spread" >> beam.Reshuffle()
               | "Cut windows" >> beam.ParDo(CutWindows(windows, done)).with_outputs(
                   CutWindows.FAILURES, main="windows"))
        (cut.windows
         | "Embed" >> RunInference(KeyedModelHandler(MilnceHandler(handle, batch_size)))
         | "Write shards" >> beam.ParDo(WriteShards(out, run_id, model, weights,
                                                    rows_per_shard)))
        (cut[CutWindows.FAILURES]
         | "Failure lines" >> beam.Map(lambda f: json.dumps(f, sort_keys=True))
         | "Write failures" >> beam.io.WriteToText(store.join(out, "failures"),
                                                   file_name_suffix=".jsonl", num_shards=1,
                                                   shard_name_template=""))
    written = sum(_row_count(p) for p in store.shard_paths(out) if f"part-{run_id}-" in p)
    return RunSummary(out, len(paths), written, rows_before, store.read_failures(out),
                      time.perf_counter() - started, run_id)


def _row_count(path: str) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pq.read_metadata(pa.BufferReader(store.read_bytes(path))).num_rows
