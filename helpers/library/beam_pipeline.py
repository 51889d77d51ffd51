"""The Beam engine of :func:`helpers.library.pipeline.build_index`: the transforms and the run.

Imported only when Beam is used (``apache-beam`` is the ``[scale]`` extra, absent on Colab):
this module's classes subclass Beam's, so importing it imports Beam. The per-file work is
:mod:`helpers.library.steps`, shared with the in-process engine.
"""

from __future__ import annotations

import contextlib
import json
from typing import Iterable, Sequence

import numpy as np

from helpers.library import steps, store
from helpers.library.windows import Windows

#: How the DirectRunner runs its workers by default: threads in this process (measured in
#: benchmarks/library_bench.py: see the module docstring of helpers.library).
DEFAULT_RUNNING_MODE = "multi_threading"


store.quiet_beam()  # before Beam is imported: some of its notes come at import time
import apache_beam as beam  # noqa: E402 - after quiet_beam
from apache_beam import pvalue  # noqa: E402
from apache_beam.ml.inference.base import (KeyedModelHandler, ModelHandler,  # noqa: E402
                                           PredictionResult, RunInference)


class EncoderHandler(ModelHandler):
    """RunInference's model handler for a library encoder (:mod:`helpers.library.encoders`):
    MIL-NCE's TF-Hub module (or its stand-in), or MMV's S3D-G on its JAX checkpoint.

    Examples are uint8 windows ``[T, size, size, 3]``; each prediction is the window's
    embedding, float32 ``[dim]`` (in ``PredictionResult.inference``; the example is not carried
    on, to keep frames out of the rest of the pipeline). ``handle``: the weights, or None for
    the model's default (each worker resolves it itself).
    """

    def __init__(self, handle: str | None, batch_size: int = 8, model: str = "milnce"):
        super().__init__(min_batch_size=1, max_batch_size=batch_size)
        self._handle = str(handle) if handle else None
        self._batch_size = batch_size
        self._model = model

    def load_model(self):
        from helpers.library import encoders

        return encoders.get(self._model).load(self._handle)

    def run_inference(self, batch: Sequence[np.ndarray], model, inference_args=None):
        return [PredictionResult(None, row)
                for row in steps.embed_windows(model, batch, self._model)]

    def get_num_bytes(self, batch) -> int:
        return int(sum(np.asarray(x).nbytes for x in batch))  # the default pickles the batch

    def get_metrics_namespace(self) -> str:
        return f"helpers.library.{self._model}"


class MilnceHandler(EncoderHandler):
    """:class:`EncoderHandler` for MIL-NCE (the name the docs of the course use)."""

    def __init__(self, handle: str | None, batch_size: int = 8):
        super().__init__(handle, batch_size, "milnce")


class CutWindows(beam.DoFn):
    """path -> ``((video, file_sha256, start_s, end_s), uint8 window)`` for every window not
    written yet (:func:`helpers.library.steps.cut_windows`); an unreadable file goes to the
    ``failures`` output as ``{"path", "reason"}``."""

    FAILURES = "failures"

    def __init__(self, windows: Windows, done: dict):
        self._windows = windows
        self._done = done  # {file_sha256: {(start_s, end_s), ...}} for this model's weights

    def process(self, path: str):
        for key, value in steps.cut_windows(path, self._windows, self._done):
            yield (key, value) if key is not None else pvalue.TaggedOutput(self.FAILURES, value)


class WriteShards(beam.DoFn):
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
        key, prediction = element
        self._rows.append(steps.row(key, prediction.inference, self._model, self._weights))
        if len(self._rows) >= self._rows_per_shard:
            self._flush()

    def finish_bundle(self):
        self._flush()

    def _flush(self):
        if self._rows:
            store.write_shard(self._index, self._rows, self._run_id)
            self._rows = []


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


@contextlib.contextmanager
def _as_a_batch_job():
    """Build and run the pipeline as outside IPython, even in a notebook.

    In IPython Beam takes every pipeline for Interactive Beam's: it relabels each transform
    through ``apache_beam.runners.interactive``, which needs pandas (not a dependency here),
    and leaves the pipeline's temporary folder for Interactive Beam to delete. This one is a
    batch job run to its end; the DirectRunner's own IPython check (it then skips the Prism
    runner and runs the FnApiRunner at once) is left as it is.
    """
    import apache_beam.pipeline as module

    saved = module.alter_label_if_ipython, module.is_in_ipython
    module.alter_label_if_ipython = lambda transform, pvalueish: None
    module.is_in_ipython = lambda: False
    try:
        yield
    finally:
        module.alter_label_if_ipython, module.is_in_ipython = saved


def run(paths: list[str], out: str, *, model: str, handle: str, weights: str, done: dict,
        run_id: str, windows: Windows, runner: str, workers: int, running_mode: str,
        batch_size: int, rows_per_shard: int, pipeline_args: Iterable) -> None:
    """Run the pipeline over ``paths`` into the (already opened) index ``out``."""
    options = pipeline_options(runner, workers, running_mode, pipeline_args)
    with _as_a_batch_job(), beam.Pipeline(options=options) as pipeline:
        cut = (pipeline
               | "List" >> beam.Create(paths)
               | "Spread" >> beam.Reshuffle()
               | "Cut windows" >> beam.ParDo(CutWindows(windows, done)).with_outputs(
                   CutWindows.FAILURES, main="windows"))
        (cut.windows
         | "Embed" >> RunInference(KeyedModelHandler(EncoderHandler(handle, batch_size,
                                                                    model)))
         | "Write shards" >> beam.ParDo(WriteShards(out, run_id, model, weights,
                                                    rows_per_shard)))
        (cut[CutWindows.FAILURES]
         | "Failure lines" >> beam.Map(lambda f: json.dumps(f, sort_keys=True))
         | "Write failures" >> beam.io.WriteToText(store.join(out, "failures"),
                                                   file_name_suffix=".jsonl", num_shards=1,
                                                   shard_name_template=""))
