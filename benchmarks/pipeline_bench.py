"""UCF101 extraction's CPU side against the machine's own JPEG-decode rate for the same frames.

Two frame stores of 320x240 videos at UCF101's size and length (:func:`make_store`: pans across
photographs, whose JPEGs are as large as a natural picture's, and the flat mini-UCF stand-ins,
whose JPEGs are a quarter of that) each go through
``extract_features`` with an encoder that does nothing, so only decoding and the protocol's
sampling are timed, with 2 decoding threads. While it runs, every decoding call is logged;
the decode limit is then the pipeline's own decoder (the store's: OpenCV by default) decoding
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


def make_store(quick: bool, content: str = "synthetic", count: int | None = None):
    """A frame store of 320x240 videos as long as UCF101's (about 7 s on average, in both
    settings; the quick one has half as many; ``count``, a multiple of 6, overrides both: a
    longer run, whose start and end weigh less): the ratio depends on the frames decoded per clip
    (a test clip of a 3-s video decodes 7 frames, of a 7-s one 15, for the same 32 frames out),
    so shorter videos would measure another workload.

    ``content``: ``synthetic``, the mini-UCF stand-ins (flat shapes on flat backgrounds, whose
    JPEGs are a few KB), or ``natural``: pans across photographs (the sample pictures that
    scikit-learn and Matplotlib ship), with a little sensor noise, written as MPEG-4 AVIs as
    UCF101's are. A natural 320x240 picture at the store's ``-qscale:v 2`` is a JPEG of 20-35 KB,
    whose decoding takes longer (measured on the benchmark machine: 300-370 us against 230 us a
    frame), so the decoding's share of the work, which the ratio measures, is nearer a real
    video's. (UCF101 itself cannot be downloaded here to measure its frames.)
    """
    from helpers import ucf101
    from helpers.standins import ucf101 as mini
    from helpers.ucf101.store import prepare_store

    count = count or (6 if quick else 12)
    if count % 6:
        raise ValueError(f"the benchmark stores hold a multiple of 6 videos, not {count}")
    store_dir = Path(os.environ["COURSE_CACHE_DIR"]) / f"bench-store-320-{content}-{count}"
    if content == "synthetic":
        data = mini.make_mini_ucf101(num_classes=3, groups=(1, 2), clips_per_group=count // 6,
                                     frame_size=(240, 320), seconds=(6.0, 8.0))
        ucf101.prepare(data.videos_dir, data.splits_dir, store_dir, progress=False)
    else:
        videos_dir = Path(os.environ["COURSE_CACHE_DIR"]) / f"bench-natural-{count}"
        prepare_store(_natural_videos(videos_dir, count), store_dir, progress=False)
    return ucf101.open_store(store_dir)


def _natural_videos(folder: Path, count: int) -> dict:
    """``count`` AVIs of 6-8 s at 25 fps, each a 240x320 window panning in a straight line
    across one of three photographs, with Gaussian noise (sigma 2 grey levels)."""
    import matplotlib.cbook
    from PIL import Image
    from sklearn.datasets import load_sample_images

    from helpers.standins.ucf101 import write_avi

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as handle:
        pictures = list(load_sample_images().images) + [np.asarray(Image.open(handle))]
    rng = np.random.default_rng(0)
    videos = {}
    for i in range(count):
        name = f"v_Pan{i % 3}_g01_c{i // 3 + 1:02d}"
        path = folder / f"{name}.avi"
        if not path.exists():
            picture = pictures[i % len(pictures)]
            length = int(rng.uniform(6.0, 8.0) * 25)
            room = np.array(picture.shape[:2]) - (240, 320)
            ends = rng.integers(0, room + 1, size=(2, 2))
            path_yx = np.linspace(ends[0], ends[1], length).round().astype(int)
            frames = np.stack([picture[y:y + 240, x:x + 320] for y, x in path_yx])
            noisy = frames + rng.normal(0, 2, frames.shape)
            write_avi(path, noisy.clip(0, 255).astype(np.uint8), 25)
        videos[name] = path
    return videos


def _warm_buffers():
    """extract_features' batch-array pool, shared by every call (see the module docstring),
    and per clip input the spare arrays of the test frames (``spares``: a run of another input
    leaves spares of another size, and a long extraction has one input throughout)."""
    from helpers.ucf101 import features

    class _WarmBuffers(features._Buffers):
        shared: dict = {}
        spares: dict = {}

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
    sm.forget_test_frames(0)
    sm._spares[:] = warm.spares.get(clip_input, []) if warm is not None else []
    zeros = np.zeros((8, 1), np.float32)
    encoder = (lambda frames, params: zeros) if clip_input == "raw" else (lambda clips: zeros)
    original = StoredVideo.jpegs  # what every decoding call reads its frames with
    original_buffers = features._Buffers
    if warm is not None:
        features._Buffers = warm
    if log is not None:
        def logged(self, indices):
            log.append((self, np.asarray(indices)))
            return original(self, indices)

        StoredVideo.jpegs = logged
    try:
        start = time.perf_counter()
        extract_features(store, names, encoder, "bench-noop", sampling=sampling,
                         protocol=protocol, cache_dir=None, batch_size=8, workers=workers,
                         progress=False, clip_input=clip_input)
        return time.perf_counter() - start
    finally:
        StoredVideo.jpegs = original
        features._Buffers = original_buffers
        if warm is not None:
            sm.forget_test_frames(sm.RECENT_VIDEOS + 2)
            warm.spares[clip_input] = list(sm._spares)
        sm._spares.clear()


def _decode_limit(jobs, workers, decoder):
    from helpers.ucf101.store import decode_function

    decode_jpeg = decode_function(decoder)

    def decode(jpegs):
        # Each frame dropped once decoded, so the next reuses its memory (as the pipeline's
        # frames reuse one buffer): keeping a job's frames in a list made fresh 4-40 MB each
        # job and slowed this limit by up to 1.5x (measured), in the pipeline's favour.
        for jpeg in jpegs:
            decode_jpeg(jpeg)

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(decode, jobs):
            pass
    return time.perf_counter() - start


def run(record, quick: bool, workers: int = 2, videos: int | None = None) -> dict:
    """Each pipeline run sits between two decode-limit runs and its ratio is theirs (mean) over
    its time: other sessions' load drifts within seconds on the shared machine, so pairs that
    close compare like with like; the figures are medians over the rounds, the ratio's
    range in the note, and beside it the same ratio in CPU time (all threads of the process:
    the work done, whatever share of the 2 cores other sessions leave; wall time also counts
    threads waiting for the GIL or a core). The numpy path (seconds a run) runs in the first
    round only. ``videos``: videos per store (see :func:`make_store`)."""
    rounds = 3 if quick else 5
    warm = _warm_buffers()
    results = {}
    for content in ("natural", "synthetic"):
        results.update(_run_store(record, make_store(quick, content, videos), content, rounds, warm,
                                  workers))
    return results


def _run_store(record, store, content, rounds, warm, workers) -> dict:
    from helpers.ucf101 import kernels
    from helpers.ucf101.sampling import MMV_PROTOCOL

    names = store.names()
    results = {}
    sizes = [len(jpeg) for name in names
             for jpeg in store.video(name).jpegs(range(store.video(name).num_frames))]
    record("pipeline", f"{content} frames: JPEG size", np.mean(sizes) / 1024, "KB",
           f"mean over {len(sizes)} frames of {len(names)} videos")
    for sampling in ("test", "train"):
        log: list = []
        fresh = _pipeline(store, names, sampling, MMV_PROTOCOL, "float", workers, log)  # logged
        jobs = [video.jpegs(unique) for video, unique in log]
        frames = sum(len(j) for j in jobs)
        clips = len(names) * 10
        kinds = ["float", "uint8", "raw"] + (["numpy float"] if kernels.AVAILABLE else [])
        for kind in ("float", "uint8", "raw"):  # the shared pool gets each input's arrays
            _pipeline(store, names, sampling, MMV_PROTOCOL, kind, workers, warm=warm)
        times: dict[str, list] = {k: [] for k in kinds + ["decode", "fresh", "pillow"]}
        ratios: dict[str, list] = {k: [] for k in kinds}
        cpu_ratios: dict[str, list] = {k: [] for k in kinds}
        cpu = time.process_time()
        before = _decode_limit(jobs, workers, store.decoder)
        cpu_before = time.process_time() - cpu
        times["decode"].append(before)
        for round_index in range(rounds):
            for kind in kinds:
                if kind == "numpy float" and round_index:
                    continue
                cpu = time.process_time()
                if kind == "numpy float":
                    kernels.AVAILABLE = False
                    try:
                        spent = _pipeline(store, names, sampling, MMV_PROTOCOL, "float",
                                          workers, warm=warm)
                    finally:
                        kernels.AVAILABLE = True
                else:
                    spent = _pipeline(store, names, sampling, MMV_PROTOCOL, kind, workers,
                                      warm=warm)
                cpu_spent = time.process_time() - cpu
                cpu = time.process_time()
                after = _decode_limit(jobs, workers, store.decoder)
                cpu_after = time.process_time() - cpu
                times[kind].append(spent)
                times["decode"].append(after)
                ratios[kind].append((before + after) / 2 / spent)
                cpu_ratios[kind].append((cpu_before + cpu_after) / 2 / cpu_spent)
                before, cpu_before = after, cpu_after
            times["fresh"].append(_pipeline(store, names, sampling, MMV_PROTOCOL, "float",
                                            workers))
            times["pillow"].append(_decode_limit(jobs, workers, "pillow"))
            cpu = time.process_time()  # the next round's first pipeline pairs with this one
            before = _decode_limit(jobs, workers, store.decoder)
            cpu_before = time.process_time() - cpu
        median = {k: statistics.median(v) for k, v in times.items()}
        label = (f"{content} {sampling}, {len(names)} videos of 320x240, {clips} clips of "
                 f"32x224x224, {workers} threads")
        record("pipeline", f"{content} {sampling}: JPEG-decode limit (the same {frames} frames)",
               clips / median["decode"], "clips/s",
               f"{frames / median['decode']:.0f} frames/s; {store.decoder}, {workers} threads")
        record("pipeline", f"{content} {sampling}: the same frames decoded with Pillow",
               clips / median["pillow"], "clips/s",
               f"{frames / median['pillow']:.0f} frames/s, {workers} threads; Pillow holds the GIL "
               "between frames, OpenCV does not")
        for kind in kinds:
            ratio = statistics.median(ratios[kind])
            spread = (f" (rounds {min(ratios[kind]):.2f}-{max(ratios[kind]):.2f})"
                      if len(ratios[kind]) > 1 else "")
            what = {"float": "CPU path, float32 clips (bit-identical)",
                    "uint8": "CPU path, uint8 clips (encoder divides by 255)",
                    "raw": "accelerator path: decode only, resize on the device",
                    "numpy float": "numpy path (no Numba), float32 clips"}[kind]
            record("pipeline", f"{content} {sampling}: {what}", clips / median[kind], "clips/s",
                   f"ratio to the decode limit {ratio:.2f}{spread}" +
                   (" (target >= 0.7)" if kind == "float" else "") +
                   f"; in CPU time {statistics.median(cpu_ratios[kind]):.2f}")
            results[(content, sampling, kind)] = ratio
        extra = [t - median["float"] for t in times["fresh"] + [fresh]]
        record("pipeline", f"{content} {sampling}: float, fresh batch arrays in the call",
               statistics.median(extra), "s",
               f"first touch, once per extraction call (each run: "
               f"{', '.join(f'{t:.2f}' for t in extra)}); not in the rates above")
        record("pipeline", f"{content} {sampling}: rounds alternated (median of each)", rounds, "",
               label + "; the machine is shared with other sessions")
    return results
