"""UCF101 extraction's CPU side against the machine's own JPEG-decode rate for the same frames.

A frame store of 320x240 videos (mini-UCF stand-ins at UCF101's size and length) goes through
``extract_features`` with an encoder that does nothing, so only decoding and the protocol's
sampling are timed, with 2 decoding threads. While it runs, every decoding call is logged;
the decode limit is then the pipeline's own decoder (``store.decode_jpeg_pillow``) decoding
exactly those JPEGs (bytes read beforehand), in the same jobs, on the same number of threads,
each frame dropped once decoded. The machine is shared with other sessions, so the runs
alternate, round by round, and each figure is the median of its rounds: the ratio compares
like with like. (The training frames counted are those decoded: a video's 10 clips fall in two
batches of 8, each decoding the frames of its own clips, so some are decoded twice; that
counts on both sides.)

Rates are steady-state rates. A long extraction reuses its batch arrays (about 350 MB at the
published protocol: the pool of uint8 batches and the float batch); these short runs (15
batches) would pay their first touch in every call, which on the benchmark machine took
0.02-1.4 s per call, depending on the kernel's huge pages (measured), as much as the whole
decoding and at random. So the runs share one pool of batch arrays (:func:`_warm_buffers`),
warmed by a first run, and the cost of fresh arrays is reported on its own row. Everything
the pipeline allocates per video stays in the timing.

Pipelines: ``float`` (the CPU path: float32 clips, bit-identical to tf.image.resize), ``uint8``
(the same clips' grey levels, for an encoder that divides by 255 itself), ``raw`` (decoded
frames only: the accelerator path, resize/crop/flip happen in the jitted forward) and the numpy
path (the same pixels without the Numba kernel).
"""

from __future__ import annotations

import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np


def make_store(quick: bool):
    from helpers import ucf101
    from helpers.standins import ucf101 as mini

    seconds = (2.6, 3.2) if quick else (6.0, 8.0)  # UCF101 averages about 7 s
    data = mini.make_mini_ucf101(num_classes=3, groups=(1, 2), clips_per_group=1 if quick else 2,
                                 frame_size=(240, 320), seconds=seconds)
    store_dir = Path(os.environ["COURSE_CACHE_DIR"]) / f"bench-store-320-{'q' if quick else 'f'}"
    ucf101.prepare(data.videos_dir, data.splits_dir, store_dir, progress=False)
    return ucf101.open_store(store_dir)


def _warm_buffers():
    """extract_features' batch-array pool, shared by every call (see the module docstring)."""
    from helpers.ucf101 import features

    class _WarmBuffers(features._Buffers):
        shared: dict = {}

        def __init__(self, limit):
            super().__init__(limit)
            self._free = _WarmBuffers.shared  # arrays handed back stay for the next call

    return _WarmBuffers


def _pipeline(store, names, sampling, protocol, clip_input, workers, log=None, warm=None):
    from helpers.ucf101 import features
    from helpers.ucf101 import sampling as sm
    from helpers.ucf101.features import extract_features
    from helpers.ucf101.store import StoredVideo

    # Nothing decoded is carried over from the previous round, but (as the batch arrays,
    # with ``warm``) the arrays of the kept test frames are reused, as in a long extraction.
    sm.forget_test_frames(sm.RECENT_VIDEOS + 2 if warm is not None else 0)
    zeros = np.zeros((8, 1), np.float32)
    encoder = (lambda frames, params: zeros) if clip_input == "raw" else (lambda clips: zeros)
    original = StoredVideo.decoded  # what frames() and the resize's reads decode through
    original_buffers = features._Buffers
    if warm is not None:
        features._Buffers = warm
    if log is not None:
        def logged(self, indices):
            log.append((self, np.asarray(indices)))
            return original(self, indices)

        StoredVideo.decoded = logged
    try:
        start = time.perf_counter()
        extract_features(store, names, encoder, "bench-noop", sampling=sampling,
                         protocol=protocol, cache_dir=None, batch_size=8, workers=workers,
                         progress=False, clip_input=clip_input)
        return time.perf_counter() - start
    finally:
        StoredVideo.decoded = original
        features._Buffers = original_buffers


def _decode_limit(jobs, workers):
    from helpers.ucf101.store import decode_jpeg_pillow

    def decode(jpegs):
        # Each frame dropped once decoded, so the next reuses its memory (as the pipeline's
        # frames reuse one buffer): keeping a job's frames in a list made fresh 4-40 MB each
        # job and slowed this limit by up to 1.5x (measured), in the pipeline's favour.
        for jpeg in jpegs:
            decode_jpeg_pillow(jpeg)

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(decode, jobs):
            pass
    return time.perf_counter() - start


def run(record, quick: bool, workers: int = 2) -> dict:
    from helpers.ucf101 import kernels
    from helpers.ucf101.sampling import MMV_PROTOCOL

    store = make_store(quick)
    names = store.names()
    rounds = 2 if quick else 3
    warm = _warm_buffers()
    results = {}
    for sampling in ("test", "train"):
        log: list = []
        fresh = _pipeline(store, names, sampling, MMV_PROTOCOL, "float", workers, log)  # logged
        jobs = [video.jpegs(unique) for video, unique in log]
        frames = sum(len(j) for j in jobs)
        clips = len(names) * 10
        kinds = ["decode", "float", "uint8", "raw"] + (["numpy float"] if kernels.AVAILABLE else [])
        for kind in ("float", "uint8", "raw"):  # the shared pool gets each input's arrays
            _pipeline(store, names, sampling, MMV_PROTOCOL, kind, workers, warm=warm)
        times: dict[str, list] = {k: [] for k in kinds}
        for _ in range(rounds):
            for kind in kinds:
                if kind == "decode":
                    times[kind].append(_decode_limit(jobs, workers))
                elif kind == "numpy float":
                    kernels.AVAILABLE = False
                    try:
                        times[kind].append(_pipeline(store, names, sampling, MMV_PROTOCOL,
                                                     "float", workers, warm=warm))
                    finally:
                        kernels.AVAILABLE = True
                else:
                    times[kind].append(_pipeline(store, names, sampling, MMV_PROTOCOL, kind,
                                                 workers, warm=warm))
            times.setdefault("fresh", []).append(
                _pipeline(store, names, sampling, MMV_PROTOCOL, "float", workers))
        median = {k: statistics.median(v) for k, v in times.items()}
        label = (f"{sampling}, {len(names)} videos of 320x240, {clips} clips of 32x224x224, "
                 f"{workers} threads")
        record("pipeline", f"JPEG-decode limit ({sampling}: the same {frames} frames)",
               clips / median["decode"], "clips/s",
               f"{frames / median['decode']:.0f} frames/s; Pillow, {workers} threads")
        for kind in kinds[1:]:
            ratio = median["decode"] / median[kind]
            what = {"float": "CPU path, float32 clips (bit-identical)",
                    "uint8": "CPU path, uint8 clips (encoder divides by 255)",
                    "raw": "accelerator path: decode only, resize on the device",
                    "numpy float": "numpy path (no Numba), float32 clips"}[kind]
            record("pipeline", f"{sampling}: {what}", clips / median[kind], "clips/s",
                   f"ratio to the decode limit {ratio:.2f}" +
                   (" (target >= 0.7)" if kind == "float" else ""))
            results[(sampling, kind)] = ratio
        extra = [t - median["float"] for t in times["fresh"] + [fresh]]
        record("pipeline", f"{sampling}: float, fresh batch arrays in the call",
               statistics.median(extra), "s",
               f"first touch, once per extraction call (each run: "
               f"{', '.join(f'{t:.2f}' for t in extra)}); not in the rates above")
        record("pipeline", f"{sampling}: rounds alternated (median of each)", rounds, "",
               label + "; the machine is shared with other sessions")
    return results
