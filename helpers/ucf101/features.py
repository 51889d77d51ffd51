"""Feature extraction over the frame store, batched, prefetched, cached and resumable.

:func:`extract_features` turns stored videos into features with any encoder, a callable
``clips [B, T, H, W, 3] float32 in [0, 1] -> features [B, D]`` (MMV ``vid_repr``, MIL-NCE
``mixed_5c``, or a test encoder). While the encoder runs on one batch, a background thread (with
a pool of decoding threads) already builds the next ones, so decoding overlaps compute.

Cache
-----
Features are cached per video, under::

    <cache_dir>/<encoder name>/<sampling>-<key>/meta.json
    <cache_dir>/<encoder name>/<sampling>-<key>/part-<id>.npz   (names, features, fingerprints)
    <cache_dir>/<encoder name>/<sampling>-<key>/parts.lock      (one run at a time per folder)

``key`` hashes everything the features depend on: the encoder name, ``train``/``test``, the
protocol parameters, and the store (its id, re-encoding parameters and JPEG decoder). Caching
per video rather than per split means splits 1-3 share their work (every video is a training video in two splits
and a test video in one) and a subset of classes reuses what a full run computed. A part is
written atomically once all clips of its videos are done, so a run killed at any moment leaves
only complete parts; the next run loads them and computes only the rest. Each cached video
carries a fingerprint (frame count, container size): if the store's copy changes, the video is
recomputed. When many parts pile up they are merged into one, so the file count stays small.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import json
import os
import queue
import re
import sys
import threading
import uuid
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from helpers import atomic, checks
from helpers.ucf101.sampling import (MMV_PROTOCOL, Protocol, release_test_frames, test_clip_frames,
                                     test_clips, to_unit_float, train_clips)

SAMPLINGS = ("train", "test")
CACHE_VERSION = 1
#: Merge the parts of a cache folder into one when there are more than this many.
MAX_PARTS = 32


class FeatureError(RuntimeError):
    """Extraction cannot go on: the encoder returned something unusable, a video is missing
    from the store, or a cache folder belongs to other settings."""


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", text).strip("_") or "encoder"


def clips_per_video(sampling: str, protocol: Protocol) -> int:
    """Clips one video gives: ``train_passes`` (train) or ``test_windows`` (test)."""
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
    return protocol.train_passes if sampling == "train" else protocol.test_windows


def cache_settings(encoder_name: str, sampling: str, protocol: Protocol, store,
                   clip_input: str = "float") -> dict:
    """Everything cached features depend on (written to ``meta.json``)."""
    clips_per_video(sampling, protocol)
    extra = {} if clip_input == "float" else {"clip_input": clip_input}
    return {**extra,
        "cache_version": CACHE_VERSION,
        "encoder": encoder_name,
        "sampling": sampling,
        "protocol": protocol.asdict(),
        "store_id": store.store_id,
        "store_encoding": dataclasses.asdict(store.params),
        "jpeg_decoder": getattr(store, "decoder", "pillow"),
    }


def feature_cache_dir(cache_dir: str | os.PathLike, encoder_name: str, sampling: str,
                      protocol: Protocol, store, clip_input: str = "float") -> Path:
    """The folder holding cached features for these settings (see the module docstring)."""
    settings = cache_settings(encoder_name, sampling, protocol, store, clip_input)
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    return Path(cache_dir) / _safe(encoder_name) / f"{sampling}-{digest}"


def folder_lock(folder: str | os.PathLike):
    """The lock of one cache folder (``<folder>/parts.lock``), held while a run reads and writes
    its parts: a second run on the same folder waits, then finds the parts the first one wrote
    (instead of computing them again, or consolidating them under its feet)."""
    return atomic.locked(Path(folder) / "parts")


def _fingerprint(video) -> tuple[int, int]:
    return (video.num_frames, video.file_size)


#: What reading a damaged ``.npz`` raises: truncated or zero-byte (``BadZipFile``,
#: ``EOFError``), a bad CRC (``BadZipFile``), a missing or malformed array (``KeyError``,
#: ``ValueError``), unreadable (``OSError``).
_DAMAGED = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)


def _read_part(part: Path):
    """``(names, features [n, ...], fingerprints [n, 2])`` of one part; raises on damage."""
    with np.load(part, allow_pickle=False) as data:
        names = [str(n) for n in data["names"]]
        features, prints = data["features"], data["fingerprints"]  # each read (and CRC-checked) once
    if len(features) != len(names) or prints.shape != (len(names), 2):
        raise ValueError(f"{len(names)} names, features {features.shape}, fingerprints "
                         f"{prints.shape}")
    # Parts are checked finite when written; NaN here came from outside, and would be scored
    # as a class (a probe fed NaN still predicts): damaged like a bad CRC (a ValueError).
    checks.check_finite(features, "features")
    return names, features, prints


def _drop_damaged(part: Path, err: BaseException) -> None:
    """Report a damaged part once and delete it, so its videos are recomputed and no later run
    trips over it again."""
    print(f"warning: {part}: damaged feature-cache part ({type(err).__name__}: "
          f"{str(err).splitlines()[0] if str(err) else 'no detail'}); deleted, its videos are "
          "recomputed", file=sys.stderr)
    part.unlink(missing_ok=True)


def _load_parts(folder: Path, wanted: set[str], fingerprints: dict[str, tuple[int, int]]):
    """Cached features of ``wanted`` videos whose fingerprint still matches.

    Parts are written atomically, so a damaged one was damaged from outside (a full disk, a
    copy cut short, bit rot): it is reported, deleted and its videos are recomputed.
    """
    found: dict[str, np.ndarray] = {}
    parts = sorted(folder.glob("part-*.npz"))
    for part in parts:
        try:
            names, features, prints = _read_part(part)
        except _DAMAGED as err:
            _drop_damaged(part, err)
            continue
        for i, name in enumerate(names):
            if name in wanted and name not in found \
                    and tuple(int(v) for v in prints[i]) == fingerprints[name]:
                found[name] = features[i]
    return found, len(parts)


def _write_part(folder: Path, names: list[str], features: np.ndarray,
                fingerprints: list[tuple[int, int]]) -> Path:
    """One part file, written atomically (uncompressed: float features barely compress)."""
    path = folder / f"part-{uuid.uuid4().hex}.npz"
    with atomic.atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, names=np.asarray(names, dtype=str),
                     features=np.asarray(features, dtype=np.float32),
                     fingerprints=np.asarray(fingerprints, dtype=np.int64).reshape(-1, 2))
    return path


def consolidate(folder: str | os.PathLike) -> int:
    """Merge every part of a cache folder into one (atomically); return the part count before."""
    folder = Path(folder)
    parts = sorted(folder.glob("part-*.npz"))
    if len(parts) <= 1:
        return len(parts)
    names, features, prints, seen = [], [], [], set()
    readable = []
    for part in parts:
        try:
            part_names, part_features, part_prints = _read_part(part)
        except _DAMAGED as err:  # tolerated as the loader tolerates it
            _drop_damaged(part, err)
            continue
        readable.append(part)
        keep = [i for i, name in enumerate(part_names) if name not in seen]
        seen.update(part_names)
        names += [part_names[i] for i in keep]
        features.append(part_features[keep])
        prints += [tuple(int(v) for v in part_prints[i]) for i in keep]
    if len(readable) <= 1:
        return len(parts)
    _write_part(folder, names, np.concatenate(features), prints)
    for part in readable:  # after the merged part exists: a crash here only leaves duplicates
        part.unlink(missing_ok=True)
    return len(parts)


def _check_meta(folder: Path, settings: dict) -> None:
    meta = folder / "meta.json"
    stored = None
    if meta.exists():
        try:
            stored = json.loads(meta.read_text())
            if not isinstance(stored, dict):
                raise ValueError(f"a JSON {type(stored).__name__}, not an object")
        except (OSError, ValueError) as err:
            # The folder's name is the digest of the settings, so meta.json only repeats them:
            # a damaged copy is rewritten (the parts stay, each checked when read).
            print(f"warning: {meta}: damaged ({str(err).splitlines()[0]}); rewritten",
                  file=sys.stderr)
            stored = None
    if stored is not None:
        if stored.get("settings") != settings:
            raise FeatureError(f"{folder} holds features for other settings "
                               f"({stored.get('settings')}); delete it")
    else:
        folder.mkdir(parents=True, exist_ok=True)
        atomic.write_bytes(meta, json.dumps({"settings": settings}, indent=2).encode())


def extract_features(store, names, encoder_fn, encoder_name: str, *, sampling: str,
                     protocol: Protocol = MMV_PROTOCOL, cache_dir: str | os.PathLike | None,
                     batch_size: int = 8, workers: int | None = None, prefetch: int = 2,
                     part_videos: int | None = None, progress: bool = True,
                     clip_input: str = "float") -> np.ndarray:
    """Features of every clip of ``names``: ``[V, n, D] float32``.

    ``store``: a :class:`helpers.ucf101.store.FrameStore`. ``names``: video names in the store.
    ``encoder_fn``: ``clips [B, T, S, S, 3] float32 in [0, 1] -> [B, D]`` (numpy or JAX
    array); always called with exactly ``batch_size`` clips (the last batch is padded by
    repeating its last clip and the extra rows dropped), so a jitted encoder compiles once.
    The clip arrays are reused for later batches: ``encoder_fn`` must not keep them.
    ``encoder_name``: names the encoder *and its weights* in the cache key (say which
    checkpoint). ``sampling``: ``train`` (``n = protocol.train_passes`` augmented clips per video;
    axis 1 is the pass) or ``test`` (``n = protocol.test_windows`` windows). ``cache_dir``:
    root of the feature cache (``None``: no caching). ``workers``: decoding threads (default:
    CPU count). ``part_videos``: videos per cache part (default: about 512 clips' worth).
    ``clip_input``: what ``encoder_fn`` is given (:data:`helpers.ucf101.sampling.OUTPUTS`):
    ``float`` clips (above), ``uint8`` clips (the same grey levels; the encoder divides by 255),
    or ``raw``: ``encoder_fn(frames [B, T, H, W, 3] uint8, params [B, 3] int32)`` with the
    decoded frames and each clip's (crop top, crop left, flip), for an encoder that resizes on
    its accelerator (:func:`helpers.ucf101.device.device_encoder`).

    Raises :class:`FeatureError` for a video not in the store or an encoder output of the
    wrong shape; an exception from the encoder propagates after the finished parts are saved.
    """
    n = clips_per_video(sampling, protocol)
    names = list(names)
    if not names:
        raise FeatureError("no videos to extract features for")
    if len(set(names)) != len(names):
        raise FeatureError("the same video is listed twice")
    missing = [name for name in names if name not in store]
    if missing:
        raise FeatureError(f"{len(missing)} videos are not in the store {store.root} (first: "
                           f"{', '.join(missing[:5])}); run prepare again or leave them out")
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    videos = {name: store.video(name) for name in names}
    fingerprints = {name: _fingerprint(v) for name, v in videos.items()}

    done: dict[str, np.ndarray] = {}
    folder = None
    lock = contextlib.nullcontext()
    if cache_dir is not None:
        folder = feature_cache_dir(cache_dir, encoder_name, sampling, protocol, store,
                                   clip_input)
        lock = folder_lock(folder)
    with lock:
        if folder is not None:
            _check_meta(folder, cache_settings(encoder_name, sampling, protocol, store,
                                                       clip_input))
            done, _ = _load_parts(folder, set(names), fingerprints)
        pending = [name for name in names if name not in done]
        if pending:
            part_videos = part_videos or max(1, 512 // n)
            computed = _run(videos, pending, n, sampling, protocol, encoder_fn, batch_size,
                            workers, prefetch, part_videos, folder, fingerprints, progress,
                            encoder_name, clip_input)
            done.update(computed)
            if folder is not None and len(list(folder.glob("part-*.npz"))) > MAX_PARTS:
                consolidate(folder)
    dims = {done[name].shape for name in names}
    if len(dims) != 1:
        raise FeatureError(f"cached features of {encoder_name} have different shapes {dims}; "
                           f"delete {folder}")
    return np.stack([done[name] for name in names]).astype(np.float32, copy=False)


def _build(video, ks, sampling, protocol, clip_input, out):
    if sampling == "train":
        return train_clips(video, ks, protocol, output=clip_input, out=out)
    return test_clips(video, protocol, windows=ks, output=clip_input, out=out)


class _Buffers:
    """Batch arrays handed back by the consumer and filled again by the producer.

    A batch is 50-150 MB; allocating a fresh one per batch costs a page fault per 4 KB on first
    write (measured on the 2-core benchmark machine: writing fresh memory took 5-15x as long as
    writing reused memory), as much as decoding the batch's JPEGs. ``limit`` arrays per shape
    are allocated at most; ``take`` waits for one to come back when all are in use.
    """

    def __init__(self, limit: int):
        self._free: dict = {}
        self._count: dict = {}
        self._cond = threading.Condition()
        self._limit = limit

    def take(self, shape, dtype, stop: threading.Event):
        key = (tuple(shape), np.dtype(dtype).str)
        with self._cond:
            while not stop.is_set():
                free = self._free.setdefault(key, [])
                if free:
                    return free.pop()
                if self._count.get(key, 0) < self._limit:
                    self._count[key] = self._count.get(key, 0) + 1
                    return np.empty(shape, dtype)
                self._cond.wait(0.1)
        return None

    def give(self, arrays):
        with self._cond:
            for array in arrays:
                self._free.setdefault((array.shape, array.dtype.str), []).append(array)
            self._cond.notify_all()


_STOP = object()


def _batch_arrays(batch, videos, protocol, clip_input, batch_size, buffers, stop):
    """The arrays one batch is built into: clips, or (frames, params) for raw input."""
    if clip_input == "frames":  # nothing: the consumer gathers from the test frames
        return ()
    if clip_input != "raw":
        dtype = np.uint8 if clip_input == "uint8" else np.float32
        return (buffers.take((batch_size,) + protocol.clip_shape(), dtype, stop),)
    sizes = {(videos[name].height, videos[name].width) for name, _ in batch}
    if len(sizes) != 1:
        raise FeatureError(f"raw clip input needs videos of one frame size in a batch, got "
                           f"{sorted(sizes)}; use clip_input='float'")
    height, width = sizes.pop()
    return (buffers.take((batch_size, protocol.num_frames, height, width, 3), np.uint8, stop),
            buffers.take((batch_size, 3), np.int32, stop))


def _producer(batches, videos, sampling, protocol, workers, out_queue, stop, clip_input,
              batch_size, buffers):
    """Build the clips of each batch (grouped by video) and queue them; runs in a thread."""

    def put(item) -> bool:
        while not stop.is_set():  # never block once the consumer has stopped listening
            try:
                out_queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def fill(batch, arrays):
        groups: dict[str, list[int]] = {}
        for name, k in batch:
            groups.setdefault(name, []).append(k)
        if clip_input == "frames":
            return [test_clip_frames(videos[name], protocol, windows=ks)
                    for name, ks in groups.items()]
        start = 0
        for name, ks in groups.items():
            out = tuple(a[start:start + len(ks)] for a in arrays)
            _build(videos[name], ks, sampling, protocol, clip_input,
                   out if clip_input == "raw" else out[0])
            start += len(ks)
        for array in arrays:  # pad: the encoder always sees the same shape
            array[len(batch):] = array[len(batch) - 1]

    # One thread builds one whole batch; ``threads`` batches are built at once and queued in
    # order. (Splitting a batch by video instead left a thread idle whenever a batch held
    # one video's clips, as most do: 8 clips of 10 per video.) Decoding and the kernels
    # release the GIL.
    threads = max(1, workers or os.cpu_count() or 1)
    try:
        with ThreadPoolExecutor(threads) as pool:
            building: collections.deque = collections.deque()
            for batch in batches:
                arrays = _batch_arrays(batch, videos, protocol, clip_input, batch_size, buffers,
                                       stop)
                if any(a is None for a in arrays):
                    return
                building.append((batch, arrays, pool.submit(fill, batch, arrays)))
                while len(building) >= threads:
                    done_batch, done_arrays, future = building.popleft()
                    parts = future.result()
                    if not put((done_batch, parts if clip_input == "frames" else done_arrays)):
                        return
            while building:
                done_batch, done_arrays, future = building.popleft()
                parts = future.result()
                if not put((done_batch, parts if clip_input == "frames" else done_arrays)):
                    return
    except BaseException as err:  # handed to the consumer, which re-raises it
        put(err)
        return
    put(_STOP)


def _run(videos, pending, n, sampling, protocol, encoder_fn, batch_size, workers, prefetch,
         part_videos, folder, fingerprints, progress, encoder_name, clip_input="float"):
    from helpers.progress import bar as tqdm

    items = [(name, k) for name in pending for k in range(n)]
    batches = [items[i:i + batch_size] for i in range(0, len(items), batch_size)]
    out_queue: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
    stop = threading.Event()
    # ``threads`` batches being built (or one waiting to be queued), ``prefetch`` queued, one
    # with the encoder (or being divided by 255).
    threads = max(1, workers or os.cpu_count() or 1)
    buffers = _Buffers(max(1, prefetch) + threads + 1)
    # Float clips are built and queued as their uint8 grey levels (a quarter of the memory)
    # and divided by 255 here into one reused float32 batch: fresh memory costs a page fault
    # per 4 KB on first write, and a float batch (150 MB at the published protocol) in each of
    # the pool's slots cost more than decoding while the pool filled (measured, benchmarks/).
    # Float test clips are not even gathered as uint8: the batch's test frames come here and
    # are gathered and divided in one pass (the uint8 gather was a tenth of the CPU time of
    # test extraction, measured).
    built = ("frames" if sampling == "test" else "uint8") if clip_input == "float" else clip_input
    unit_batch = None
    thread = threading.Thread(target=_producer, name="clip-prefetch", daemon=True,
                              args=(batches, videos, sampling, protocol, workers, out_queue, stop,
                                    built, batch_size, buffers))
    rows: dict[str, list] = {}
    finished: list[str] = []  # complete videos not yet written to a part
    results: dict[str, np.ndarray] = {}
    dim = None

    def flush():
        if not finished:
            return
        if folder is not None:
            _write_part(folder, finished, np.stack([results[f] for f in finished]),
                        [fingerprints[f] for f in finished])
        finished.clear()

    bar = tqdm(total=len(items), desc=f"{sampling} clips ({encoder_name})", unit="clip",
               disable=not progress)
    thread.start()
    try:
        while True:
            got = out_queue.get()
            if got is _STOP:
                break
            if isinstance(got, BaseException):
                raise got
            batch, arrays = got
            count = len(batch)
            if clip_input == "float":
                if unit_batch is None:  # from the pool too: reused as the batch arrays are
                    unit_batch = buffers.take((batch_size,) + protocol.clip_shape(),
                                              np.float32, stop)
                if built == "frames":
                    row = 0
                    for frames, index in arrays:
                        try:
                            to_unit_float(frames.processed, index,
                                          out=unit_batch[row:row + len(index)])
                        finally:
                            release_test_frames(frames)
                        row += len(index)
                    unit_batch[row:] = unit_batch[row - 1]  # pad, as the producer does
                else:
                    to_unit_float(arrays[0], out=unit_batch)
                    buffers.give(arrays)
                arrays = (unit_batch,)
            # np.asarray waits for an asynchronous (JAX) encoder, so the arrays are free after.
            features = np.asarray(encoder_fn(*arrays), dtype=np.float32)
            if clip_input != "float":
                buffers.give(arrays)
            if features.ndim != 2 or features.shape[0] != batch_size:
                raise FeatureError(f"encoder {encoder_name} returned shape {features.shape} for "
                                   f"{batch_size} clips; expected [{batch_size}, D]")
            if dim is None:
                dim = features.shape[1]
            elif features.shape[1] != dim:
                raise FeatureError(f"encoder {encoder_name} changed its feature size from {dim} "
                                   f"to {features.shape[1]}")
            if not np.all(np.isfinite(features[:count])):
                bad = sorted({name for (name, _), row in zip(batch, features[:count])
                              if not np.isfinite(row).all()})
                raise FeatureError(f"encoder {encoder_name} returned NaN or infinite features "
                                   f"for videos {', '.join(bad[:5])} (finite clips in [0, 1]; "
                                   "check the weights)")
            for (name, k), feature in zip(batch, features[:count]):
                slots = rows.setdefault(name, [None] * n)
                slots[k] = feature
                if all(s is not None for s in slots):
                    results[name] = np.stack(slots)
                    del rows[name]
                    finished.append(name)
            if len(finished) >= part_videos:
                flush()
            bar.update(count)
    finally:
        stop.set()
        bar.close()
        flush()  # videos completed before an error are kept
        thread.join(timeout=30)
        if unit_batch is not None:
            buffers.give([unit_batch])
    return results
