"""Search a video library: embed many videos with Apache Beam, index them, find moments by text.

The parts, in the order data flows through them:

* :mod:`helpers.library.windows` — cut a video into windows with start / end times in seconds
  (default: MIL-NCE's evaluation windows, the frames of ``python -m helpers.milnce embed
  --sampling windows``; or sliding windows of a length and stride in seconds);
* :mod:`helpers.library.pipeline` — list files (a folder or glob, through Beam's file
  systems), sha256 each, cut windows, embed them, write Parquet shards; with Beam
  (:mod:`helpers.library.beam_pipeline`: RunInference and a model handler of ours,
  :class:`~helpers.library.beam_pipeline.EncoderHandler`), or, where Beam is not installed
  (Colab), the same steps (:mod:`helpers.library.steps`) in this process;
* :mod:`helpers.library.encoders` — the models windows are embedded with (MIL-NCE, MMV S3D-G);
* :mod:`helpers.library.store` — the index folder: manifest, shards written atomically,
  loading with de-duplication (exactly once), the failures file;
* :mod:`helpers.library.search` — exact search with numpy, approximate with usearch;
* :mod:`helpers.library.moments` — score a sentence over the sliding windows of one video;
* :mod:`helpers.library.widgets` — the search box of notebook 07 (ipywidgets);
* :mod:`helpers.library.commands` — ``python -m helpers.library index`` / ``search``.

Importing :mod:`helpers.library` imports neither Beam nor pyarrow: Beam only when its engine
runs, pyarrow when a shard is read or written (Colab preinstalls pyarrow, not Beam).

Two encoders (``--model``, :mod:`helpers.library.encoders`): MIL-NCE's TF-Hub module (or its
tiny stand-in), whose text tower makes the index searchable by text, and MMV's S3D-G backbone
(``mmv-s3d``: the ``vid_repr`` feature of :func:`helpers.mmv.load_model`, DeepMind's JAX
checkpoint or in tiny mode its random-weight stand-in), video features without a text tower
to search them by text (``search --text`` refuses such an index).

Why Beam
--------
Apache Beam is the data-processing engine of the TensorFlow ecosystem these models come from
(TFX runs on it; tensorflow_datasets builds large datasets with it), and RunInference is its
batch-inference API: it loads the model once per worker (``ModelHandler.load_model``), batches
the elements (``batch_elements_kwargs``) and runs them, on the local machine or, unchanged, on
Dataflow, Flink or Spark, chosen by pipeline options. The same code therefore embeds a folder on
a laptop and a bucket of videos on a hundred machines.

Locally the DirectRunner runs ``--workers`` workers as threads of one process
(``direct_running_mode=multi_threading``, the default here) or as processes
(``multi_processing``). Threads won on the 2-core build machine (``benchmarks/library_bench.py
--quick``, 24 generated videos, 240 evaluation windows at 224 px, tiny stand-in, 2026-12-03):
single-process ``milnce embed`` path 22 windows/s, Beam with 1 worker 27, 2 threads 42,
2 processes 5. Decoding (PyAV) and TensorFlow release the GIL in their C++ work, so two threads
use both cores; each worker process first imports TensorFlow and loads the module (about 40 s
of that run on the loaded machine), which only a much longer job would pay back. The
in-process engine (Colab's) kept up with Beam's two threads on the same folder later that day,
with other sessions loading the machine: 30 windows/s vs 22 (load average about 2), 23 vs 22
(about 5); the single-process path 11 and 9.

Running it on Dataflow
----------------------
Untested here (no cloud account on the build machines). Install ``apache-beam[gcp]``, build a
wheel of the course so the workers can import ``helpers``, and pass Dataflow's options after
``--``::

    python -m pip wheel --no-deps -w dist .
    python -m helpers.library index --videos gs://BUCKET/videos --model milnce \\
        --out gs://BUCKET/library --runner DataflowRunner -- \\
        --project PROJECT --region us-central1 --temp_location gs://BUCKET/tmp \\
        --requirements_file requirements.txt \\
        --extra_package dist/video_text_course-0.1.0-py3-none-any.whl

Each worker downloads the MIL-NCE module from TF-Hub itself (``load_model``); the driver
downloads it once too, to record the weights' digest in the index.
"""

from helpers.library.moments import Moments, find_moments
from helpers.library.pipeline import RunSummary, build_index, list_videos
from helpers.library.search import ApproximateIndex, ExactIndex, Hit, search_text
from helpers.library.store import Library, LibraryError, load, read_failures
from helpers.library.windows import Windows

__all__ = ["ApproximateIndex", "ExactIndex", "Hit", "Library", "LibraryError", "Moments",
           "RunSummary", "Windows", "build_index", "find_moments", "list_videos", "load",
           "read_failures", "search_text"]
