"""Clip sampling and preprocessing of the MMV UCF101 linear evaluation, number for number.

Training (``train_passes`` = 10 passes over the training videos, one clip per video per pass)::

    start  uniform in [0, L - (T-1)*stride)    (in [0, L) when L <= (T-1)*stride)
    frames start, start + stride, ...          T frames, looping (index mod L) when short
    flip   left-right with probability 1/2
    resize short side to ``min_resize``        bilinear, half-pixel centres, no antialias,
                                               then cast back to uint8 (truncation):
                                               240x320 -> 224x298
    crop   ``crop_size`` square at a uniform random offset
    scale  /255 -> float32 in [0, 1]

Test (``test_windows`` = 10 windows per video, every window of every test video)::

    starts int(linspace(0, max(0, L - T*stride), windows))   (float32 arithmetic, as TF)
    frames T frames at ``stride`` from each start, looping
    resize as above; central ``crop_size`` crop (offset floor((size - crop) / 2)); /255

with T = ``num_frames`` = 32, stride 2, ``min_resize`` = ``crop_size`` = 224 in the published
protocol. The resize reproduces ``tf.image.resize(frames, size, 'bilinear')`` (TF2, antialias
off) bit for bit in numpy; ``tests/test_ucf101_sampling.py`` checks it against TensorFlow.

Randomness is drawn from a generator seeded by (protocol seed, pass, video name), so a clip is
the same whatever order or thread computes it. Nothing here imports TensorFlow or JAX.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import threading
import zlib

import numpy as np

from helpers.ucf101 import kernels


@dataclasses.dataclass(frozen=True)
class Protocol:
    """Parameters of the linear evaluation. The defaults are the published ones."""

    num_frames: int = 32
    stride: int = 2
    train_passes: int = 10
    test_windows: int = 10
    min_resize: int = 224
    crop_size: int = 224
    seed: int = 0

    def __post_init__(self):
        for field in ("num_frames", "stride", "train_passes", "test_windows", "min_resize",
                      "crop_size"):
            if getattr(self, field) < 1:
                raise ValueError(f"Protocol.{field} must be >= 1, got {getattr(self, field)}")
        if self.crop_size > self.min_resize:
            raise ValueError(f"crop_size {self.crop_size} is larger than min_resize "
                             f"{self.min_resize}: the crop would not fit")

    def asdict(self) -> dict:
        return dataclasses.asdict(self)

    def clip_shape(self) -> tuple[int, int, int, int]:
        """Shape of one clip: ``(T, crop, crop, 3)``."""
        return (self.num_frames, self.crop_size, self.crop_size, 3)

    def replace(self, **changes) -> Protocol:
        return dataclasses.replace(self, **changes)


#: The protocol of the MMV paper's UCF101 linear evaluation (eval_ucf101.py defaults).
MMV_PROTOCOL = Protocol()


# --- frame indices -----------------------------------------------------------------------------

def train_start_limit(num_video_frames: int, num_frames: int = 32, stride: int = 2) -> int:
    """Exclusive upper bound of the random training start: ``L - (T-1)*stride`` or ``L``."""
    if num_video_frames < 1:
        raise ValueError("a video needs at least one frame")
    span = (num_frames - 1) * stride
    return num_video_frames - span if num_video_frames > span else num_video_frames


def clip_indices(num_video_frames: int, start: int, num_frames: int = 32,
                 stride: int = 2) -> np.ndarray:
    """Frame indices ``start + stride * k`` for k < T, looping past the end: ``[T] int64``."""
    return (start + stride * np.arange(num_frames, dtype=np.int64)) % num_video_frames


def test_window_starts(num_video_frames: int, num_windows: int = 10, num_frames: int = 32,
                       stride: int = 2) -> np.ndarray:
    """``int(linspace(0, max(0, L - T*stride), num_windows))``, computed like TensorFlow.

    ``tf.linspace`` works in float32 (``i * step`` with ``step = stop / (n - 1)``, last value
    exactly ``stop``) and the cast truncates; the same arithmetic here. ``[W] int64``.
    """
    stop = max(0, num_video_frames - num_frames * stride)
    if num_windows == 1:
        return np.zeros(1, dtype=np.int64)
    step = np.float32(stop) / np.float32(num_windows - 1)
    starts = (np.arange(num_windows, dtype=np.float32) * step).astype(np.int64)
    starts[-1] = stop
    return starts


def test_window_indices(num_video_frames: int, num_windows: int = 10, num_frames: int = 32,
                        stride: int = 2) -> np.ndarray:
    """Frame indices of every test window: ``[W, T] int64``."""
    starts = test_window_starts(num_video_frames, num_windows, num_frames, stride)
    return np.stack([clip_indices(num_video_frames, s, num_frames, stride) for s in starts])


# --- resize and crop ---------------------------------------------------------------------------

def resized_size(height: int, width: int, min_resize: int = 224) -> tuple[int, int]:
    """Output size of the short-side resize, with the protocol's integer arithmetic.

    ``(max(m, h*m // w), max(m, w*m // h))``: 240x320 -> 224x298.
    """
    return (max(min_resize, (height * min_resize) // width),
            max(min_resize, (width * min_resize) // height))


def _bilinear_weights(in_size: int, out_size: int, positions=None):
    """Source rows (low, high) and weights of TF's half-pixel bilinear resize, in float32."""
    scale = np.float32(in_size) / np.float32(out_size)
    out = np.arange(out_size, dtype=np.float32) if positions is None \
        else np.asarray(positions, dtype=np.float32)
    x = (out + np.float32(0.5)) * scale - np.float32(0.5)
    floor = np.floor(x)
    low = np.maximum(floor.astype(np.int64), 0)
    high = np.minimum(np.ceil(x).astype(np.int64), in_size - 1)
    return low, high, (x - floor).astype(np.float32)


def resize_bilinear(frames: np.ndarray, size: tuple[int, int], rows=None, cols=None) -> np.ndarray:
    """``tf.image.resize(frames, size, 'bilinear', antialias=False)`` in numpy, float32.

    ``frames``: ``[T, H, W, C]`` (any real dtype). ``size``: ``(out_h, out_w)``. ``rows`` /
    ``cols``: optional output positions to compute (e.g. only a crop); default all. Returns
    ``[T, len(rows), len(cols), C] float32``, bit-identical to TensorFlow's CPU kernel (the
    same float32 operations in the same order: along width first, then along height).
    """
    frames = np.asarray(frames)
    if frames.ndim != 4:
        raise ValueError(f"frames must be [T, H, W, C], got shape {frames.shape}")
    out_h, out_w = size
    y_low, y_high, y_lerp = _bilinear_weights(frames.shape[1], out_h, rows)
    x_low, x_high, x_lerp = _bilinear_weights(frames.shape[2], out_w, cols)
    # Only the source rows the output needs take part. Frame by frame, so the intermediates
    # stay in the CPU cache (3x faster than whole-clip arrays); gather in uint8, then update in
    # place. a + b == b + a exactly in IEEE arithmetic, so ``(r - l) * w + l`` computed in
    # place is TF's ``l + (r - l) * w``.
    needed = np.unique(np.concatenate([y_low, y_high]))
    top_rows = np.searchsorted(needed, y_low)
    bottom_rows = np.searchsorted(needed, y_high)
    x_weight = x_lerp[:, None]
    y_weight = y_lerp[:, None, None]
    channels = frames.shape[3]
    out = np.empty((frames.shape[0], len(y_low), len(x_low), channels), dtype=np.float32)
    left = np.empty((len(needed), len(x_low), channels), dtype=np.float32)
    horizontal = np.empty_like(left)
    top = np.empty(out.shape[1:], dtype=np.float32)
    for t in range(frames.shape[0]):
        source = frames[t, needed]
        np.copyto(left, np.take(source, x_low, axis=1), casting="unsafe")
        np.copyto(horizontal, np.take(source, x_high, axis=1), casting="unsafe")
        horizontal -= left
        horizontal *= x_weight
        horizontal += left
        np.take(horizontal, top_rows, axis=0, out=top)
        frame = out[t]
        np.take(horizontal, bottom_rows, axis=0, out=frame)
        frame -= top
        frame *= y_weight
        frame += top
    return out


def resize_smallest(frames: np.ndarray, min_resize: int = 224) -> np.ndarray:
    """Resize ``[T, H, W, 3] uint8`` so the short side is ``min_resize``; uint8 out.

    As the protocol: bilinear without antialias, then a cast back to uint8 (truncation, as
    ``tf.cast``); frames already at the target size are returned unchanged.
    """
    height, width = frames.shape[1:3]
    size = resized_size(height, width, min_resize)
    if size == (height, width):
        return frames
    return resize_bilinear(frames, size).astype(np.uint8)


def central_crop_offsets(height: int, width: int, crop_size: int) -> tuple[int, int]:
    """Top-left offset of the central crop (``tf.image.resize_with_crop_or_pad``)."""
    return max((height - crop_size) // 2, 0), max((width - crop_size) // 2, 0)


@functools.lru_cache(maxsize=512)
def _kernel_geometry(height: int, width: int, channels: int, size: tuple, offset: tuple,
                     crop_h: int, crop_w: int) -> tuple:
    """:func:`kernels.plan` for one crop of one frame size, computed once (a 240x320 frame
    has 75 training crops and one test crop)."""
    oy, ox = offset
    rows = _bilinear_weights(height, size[0], np.arange(oy, oy + crop_h))
    cols = _bilinear_weights(width, size[1], np.arange(ox, ox + crop_w))
    return kernels.plan(rows, cols, channels, width)


def resize_and_crop(frames: np.ndarray, min_resize: int, crop_size: int,
                    offset: tuple[int, int], flip: bool = False, dtype=np.float32,
                    fast: bool | None = None, width: int | None = None, index=None,
                    out=None) -> np.ndarray:
    """Short-side resize to uint8, then the ``crop_size`` square at ``offset``; float32 /255.

    Equal to cropping the output of :func:`resize_smallest`, but computes only the cropped
    pixels (each output pixel of a bilinear resize depends only on its own position).
    ``flip``: mirror the frames left-right first (``frames[:, :, ::-1]``). ``dtype``:
    ``float32`` (``[0, 1]``, the default) or ``uint8`` (the resized grey levels).
    ``fast``: use the fused Numba kernel (:mod:`helpers.ucf101.kernels`, the same pixels bit for
    bit); default: when Numba is installed. ``width``: the crop's width, if not ``crop_size``
    (``crop_size`` is then its height). ``index``: use frames ``frames[index]`` (the kernel
    reads them in place instead of gathering a copy). ``out``: a C-contiguous array of the
    result's shape and ``dtype`` to write into. ``frames`` may also be a list of ``[H, W, 3]``
    arrays (as a decoder returns them). Returns ``[T, crop, crop (or width), 3]``.
    """
    crop_w = crop_size if width is None else width
    height, width, channels = frames[0].shape
    size = resized_size(height, width, min_resize)
    oy, ox = offset
    if oy < 0 or ox < 0 or oy + crop_size > size[0] or ox + crop_w > size[1]:
        raise ValueError(f"crop {crop_size}x{crop_w} at {offset} does not fit in the resized "
                         f"{size}")
    if size != (height, width) and (kernels.AVAILABLE if fast is None else fast):
        geometry = _kernel_geometry(height, width, channels, size, (int(oy), int(ox)),
                                    crop_size, crop_w)
        if np.dtype(dtype) == np.uint8:
            return kernels.crop_resize(frames, flip=flip, dtype=np.uint8, index=index, out=out,
                                       geometry=geometry)
        greys = kernels.crop_resize(frames, flip=flip, dtype=np.uint8, index=index,
                                    geometry=geometry)
        return to_unit_float(greys, out=out)
    if not isinstance(frames, np.ndarray):  # a list: the numpy path wants one array
        frames = np.stack(frames)
    if index is not None:
        frames = frames[np.asarray(index)]
    source = frames[:, :, ::-1] if flip else frames
    if size == (height, width):
        cropped = source[:, oy:oy + crop_size, ox:ox + crop_w]
    else:
        cropped = resize_bilinear(source, size, rows=np.arange(oy, oy + crop_size),
                                  cols=np.arange(ox, ox + crop_w)).astype(np.uint8)
    if np.dtype(dtype) == np.uint8:
        return _into(out, np.ascontiguousarray(cropped, dtype=np.uint8))
    if out is None:
        return to_unit_float(cropped)
    return to_unit_float(np.ascontiguousarray(cropped), out=out)


#: ``uint8 -> float32 / 255``, as a lookup table (the same values as the division).
_UNIT = (np.arange(256, dtype=np.float32) / np.float32(255.0))


def to_unit_float(frames: np.ndarray, index=None, out=None) -> np.ndarray:
    """``frames.astype(float32) / 255`` for uint8 frames, optionally of ``frames[index]``.

    A table lookup: one pass writing float32, instead of a cast then a division (the same
    values, since the table holds exactly ``float32(v) / 255``). ``out``: write there.
    """
    if kernels.AVAILABLE:
        return kernels.to_unit_float(frames, index, out=out)
    if index is not None:
        frames = frames[index]
    if out is None:
        return _UNIT[frames]
    np.take(_UNIT, frames, out=out)
    return out


# --- seeded draws ------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class TrainDraw:
    """The random choices of one training clip."""

    start: int
    flip: bool
    crop_offset: tuple[int, int]
    indices: np.ndarray = dataclasses.field(compare=False, repr=False)


def clip_rng(seed: int, pass_index: int, video_name: str) -> np.random.Generator:
    """The generator of one (pass, video): independent of order and of other videos."""
    name_key = zlib.crc32(video_name.encode("utf-8"))
    return np.random.default_rng([seed, pass_index, name_key, len(video_name)])


def train_draw(video_name: str, pass_index: int, num_video_frames: int,
               frame_size: tuple[int, int], protocol: Protocol = MMV_PROTOCOL) -> TrainDraw:
    """Start frame, flip and crop offset of training clip ``pass_index`` of a video."""
    rng = clip_rng(protocol.seed, pass_index, video_name)
    limit = train_start_limit(num_video_frames, protocol.num_frames, protocol.stride)
    start = int(rng.integers(0, limit))
    flip = bool(rng.integers(0, 2))
    out_h, out_w = resized_size(*frame_size, protocol.min_resize)
    crop = (int(rng.integers(0, out_h - protocol.crop_size + 1)),
            int(rng.integers(0, out_w - protocol.crop_size + 1)))
    indices = clip_indices(num_video_frames, start, protocol.num_frames, protocol.stride)
    return TrainDraw(start, flip, crop, indices)


def train_clip(video, pass_index: int, protocol: Protocol = MMV_PROTOCOL,
               return_draw: bool = False):
    """Training clip ``pass_index`` of a stored video -> ``[T, crop, crop, 3] float32 [0, 1]``.

    ``video``: anything with ``name``, ``num_frames``, ``height``, ``width`` and
    ``frames(indices) -> [N, H, W, 3] uint8`` (a :class:`helpers.ucf101.store.StoredVideo`).
    With ``return_draw``, also returns the :class:`TrainDraw`.
    """
    draw = train_draw(video.name, pass_index, video.num_frames, (video.height, video.width),
                      protocol)
    frames = video.frames(draw.indices)
    clip = resize_and_crop(frames, protocol.min_resize, protocol.crop_size, draw.crop_offset,
                           flip=draw.flip)
    return (clip, draw) if return_draw else clip


#: What clip builders return. ``float``: ``[n, T, crop, crop, 3] float32`` in [0, 1] (the
#: protocol's clips). ``uint8``: the same clips' grey levels (``float == uint8 / 255`` exactly),
#: for an encoder that divides by 255 itself. ``raw``: the decoded frames ``[n, T, H, W, 3]
#: uint8`` and per clip ``(crop top, crop left, flip)`` as ``[n, 3] int32``, for an encoder that
#: resizes, crops and flips on its accelerator (:mod:`helpers.ucf101.device`).
OUTPUTS = ("float", "uint8", "raw")


def _check_output(output: str) -> str:
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    return output


#: :func:`train_clips` resizes the shared frames whole when that computes fewer than this
#: fraction of the pixels that resizing each clip's crop would (the slices then cost a copy).
SHARED_COST_RATIO = 0.8


def train_clips(video, passes, protocol: Protocol = MMV_PROTOCOL, output: str = "float",
                out=None):
    """Training clips ``passes`` of one video -> ``[len(passes), T, crop, crop, 3] float32``.

    The same clips as :func:`train_clip` one by one, but the frames the clips share are
    decoded once. ``output``: see :data:`OUTPUTS`. ``out``: arrays to write into (as returned;
    for ``raw`` a pair), e.g. slices of a reused batch.
    """
    _check_output(output)
    draws = [train_draw(video.name, k, video.num_frames, (video.height, video.width), protocol)
             for k in passes]
    unique, inverse = np.unique(np.concatenate([d.indices for d in draws]), return_inverse=True)
    inverse = inverse.reshape(len(draws), -1)
    if output == "raw":
        frames = video.frames(unique)
        params = np.array([[d.crop_offset[0], d.crop_offset[1], int(d.flip)] for d in draws],
                          dtype=np.int32)
        return _into(out, (frames, params), inverse)
    # Each output pixel of the resize depends only on its own position, so a crop is a slice
    # of the whole resized frame. When the clips share many frames (short videos), resizing
    # each distinct frame once per flip and slicing the crops costs less than resizing every
    # clip's crop; otherwise (clips spread over a long video) it costs more (wider frames,
    # one more copy). Pick the cheaper by the number of output pixels. Same pixels either way.
    frames = _decoded(video, unique)
    # uint8 clips are built straight into ``out`` (a batch's slice), float ones then divided.
    greys = out if output == "uint8" and out is not None \
        else np.empty((len(draws),) + protocol.clip_shape(), dtype=np.uint8)
    size = resized_size(video.height, video.width, protocol.min_resize)
    crop = protocol.crop_size
    by_flip = {flip: [row for row, draw in enumerate(draws) if draw.flip == flip]
               for flip in (False, True)}
    used = {flip: np.unique(inverse[rows]) for flip, rows in by_flip.items() if rows}
    shared_cost = sum(len(u) for u in used.values()) * size[0] * size[1]
    if shared_cost < SHARED_COST_RATIO * len(draws) * protocol.num_frames * crop * crop:
        for flip, frame_ids in used.items():
            rows = by_flip[flip]
            local = np.searchsorted(frame_ids, inverse[rows])
            resized = resize_and_crop(frames, protocol.min_resize, size[0], (0, 0), flip=flip,
                                      dtype=np.uint8, width=size[1], index=frame_ids)
            for row, frame_rows in zip(rows, local):
                oy, ox = draws[row].crop_offset
                window = resized[:, oy:oy + crop, ox:ox + crop]
                target = greys[row]
                for t, frame_row in enumerate(frame_rows):  # 6x faster than np.take on a view
                    target[t] = window[frame_row]
    else:
        for row, draw in enumerate(draws):
            resize_and_crop(frames, protocol.min_resize, crop, draw.crop_offset, flip=draw.flip,
                            dtype=np.uint8, index=inverse[row], out=greys[row])
    if output == "uint8":
        return greys
    return to_unit_float(greys, out=out)


def _into(out, value, index=None):
    """``value[index]`` (or for a pair, ``(frames[index], params)``), written into ``out``."""
    if isinstance(value, tuple):
        frames, params = value
        if out is None:
            return (frames if index is None else frames[index]), params
        np.take(frames, index, axis=0, out=out[0], mode="clip") if index is not None \
            else np.copyto(out[0], frames)
        np.copyto(out[1], params)
        return out
    if out is None:
        return value if index is None else value[index]
    if index is None:
        np.copyto(out, value)
    else:
        # mode="clip" (the indices are in range by construction): with the default "raise",
        # np.take buffers ``out`` in a temporary as large (a fresh 40 MB per batch, whose page
        # faults were three quarters of the pipeline's, measured), then copies it.
        np.take(value, index, axis=0, out=out, mode="clip")
    return out


def test_clips(video, protocol: Protocol = MMV_PROTOCOL, windows=None, output: str = "float",
               out=None):
    """Test windows of a stored video -> ``[W, T, crop, crop, 3] float32 [0, 1]``.

    ``windows``: which of the ``protocol.test_windows`` windows (default all). Frames shared
    by several windows are decoded and resized once; the resized frames of the last few
    videos are kept, so asking for a video's windows in several calls (as batched extraction
    does) decodes each frame once. ``output``: see :data:`OUTPUTS`; ``out``: as for
    :func:`train_clips`.
    """
    _check_output(output)
    build, inverse = test_clip_frames(video, protocol, windows, raw=output == "raw")
    try:  # the frames are read here only (every result below is a copy), then handed back
        processed = build.processed
        if output == "raw":
            size = resized_size(video.height, video.width, protocol.min_resize)
            offset = central_crop_offsets(*size, protocol.crop_size)
            params = np.tile(np.array([offset[0], offset[1], 0], np.int32), (len(inverse), 1))
            return _into(out, (processed, params), inverse)
        if output == "uint8":
            return _into(out, processed, inverse)
        return to_unit_float(processed, inverse, out=out)
    finally:
        _release(build)


def test_clip_frames(video, protocol: Protocol = MMV_PROTOCOL, windows=None, raw: bool = False):
    """The frames of :func:`test_clips` without gathering the clips: ``(frames, index)`` with
    ``frames.processed[index]`` the clips' uint8 grey levels (``raw``: decoded frames),
    ``index`` ``[W, T]``. Hand ``frames`` back with :func:`release_test_frames` once read (its
    array is then reused); e.g. ``to_unit_float(frames.processed, index, out=...)`` gathers
    and divides in one pass.
    """
    indices = test_window_indices(video.num_frames, protocol.test_windows, protocol.num_frames,
                                  protocol.stride)
    unique, inverse = np.unique(indices, return_inverse=True)
    inverse = inverse.reshape(indices.shape)
    if windows is not None:
        inverse = inverse[np.asarray(windows)]
    return _test_frames(video, protocol, unique, raw=raw), inverse


def release_test_frames(frames) -> None:
    """Hand back what :func:`test_clip_frames` returned (once per call)."""
    _release(frames)


_recent_lock = threading.Lock()
_recent: collections.OrderedDict = collections.OrderedDict()
#: key -> the :class:`_TestBuild` of a video's test frames while threads compute them.
_building: dict = {}
#: Videos whose test frames are kept (resized: about 25 MB each at the published protocol).
RECENT_VIDEOS = 8
#: Frames per piece of work when threads share the building of one video's test frames.
CHUNK_FRAMES = 16
#: Arrays of test frames no longer kept nor read, reused for the next videos' (at most
#: ``SPARE_ARRAYS``): a fresh 25-75 MB array page-faults on first write, which on the
#: benchmark machine cost up to half as much as decoding the video (measured).
_spares: list = []
SPARE_ARRAYS = 2


def _test_frames(video, protocol: Protocol, unique: np.ndarray, raw: bool = False):
    """The :class:`_TestBuild` holding the central crops of ``unique`` frames (or, ``raw``, the
    decoded frames) in ``processed``, uint8, cached for the last few videos. Hand it back with
    :func:`_release` once read."""
    # Keyed by the video object itself (kept alive by the entry, so its id is not reused): a
    # store opened again, or a container rewritten since, is a new object and decodes afresh.
    key = (id(video), dataclasses.astuple(protocol), raw)
    with _recent_lock:
        found = _recent.get(key)
        if found is not None and found.video is video:
            _recent.move_to_end(key)
            found.readers += 1
            return found
        build = _building.get(key)
        if build is None or build.video is not video:
            stale = build is not None  # an id reused while a stale entry lingers: just decode
            build = _TestBuild(video, protocol, unique, raw)
            if not stale:
                _building[key] = build
        build.readers += 1
    try:
        build.run()
    except BaseException:
        _release(build)
        raise
    finally:
        with _recent_lock:
            if _building.get(key) is build:
                del _building[key]
                if build.error is None and hasattr(video, "path"):  # stored videos only
                    _recent[key] = build
                    build.kept = True
                    while len(_recent) > RECENT_VIDEOS:
                        _, old = _recent.popitem(last=False)
                        old.kept = False
                        old.recycle()
    return build


def forget_test_frames(spares: int = SPARE_ARRAYS) -> None:
    """Drop the kept test frames; up to ``spares`` of their arrays are kept for reuse."""
    with _recent_lock:
        while _recent:
            _, old = _recent.popitem(last=False)
            old.kept = False
            old.recycle(max(spares, SPARE_ARRAYS))


def _release(build) -> None:
    """Hand back a :class:`_TestBuild` from :func:`_test_frames`."""
    with _recent_lock:
        build.readers -= 1
        build.recycle()


class _TestBuild:
    """One video's test frames, computed in chunks by every thread that wants them.

    Batches of 8 clips straddle videos of 10 windows, so the two threads building consecutive
    batches usually want the same video first: waiting for the other thread's frames left one
    thread idle while the other decoded (measured: two threads extracted the test clips no
    faster than one). Here a thread that wants a video being built takes the next chunk of
    its frames instead, and the last to finish hands back the whole.
    """

    def __init__(self, video, protocol: Protocol, unique: np.ndarray, raw: bool):
        self.video, self.protocol, self.unique, self.raw = video, protocol, unique, raw
        size = resized_size(video.height, video.width, protocol.min_resize)
        self.offset = central_crop_offsets(*size, protocol.crop_size)
        shape = (len(unique),) + ((video.height, video.width) if raw
                                  else (protocol.crop_size,) * 2) + (3,)
        self.base = _spare(int(np.prod(shape)))
        self.processed = self.base[:int(np.prod(shape))].reshape(shape)
        self.chunks = [slice(i, i + CHUNK_FRAMES) for i in range(0, len(unique), CHUNK_FRAMES)]
        self.taken = self.finished = 0
        self.error = None
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.readers = 0  # threads between _test_frames and _release (under _recent_lock)
        self.kept = False  # in _recent

    def recycle(self, spares: int = SPARE_ARRAYS) -> None:
        """Give the array to the next video once nobody keeps or reads it (under
        ``_recent_lock``); at most ``spares`` arrays wait for one."""
        if self.readers == 0 and not self.kept and self.base is not None \
                and self.error is None and self.done.is_set():
            _spares.append(self.base)
            del _spares[:-spares]
            self.base = self.processed = None

    def run(self) -> np.ndarray:
        """Compute chunks until none is left, wait for the others', return the frames."""
        while True:
            with self.lock:
                if self.taken >= len(self.chunks) or self.error is not None:
                    break
                chunk = self.chunks[self.taken]
                self.taken += 1
            try:
                self._compute(chunk)
            except BaseException as err:
                with self.lock:
                    self.error = err
                self.done.set()
                raise
            with self.lock:
                self.finished += 1
                if self.finished == len(self.chunks):
                    self.done.set()
        self.done.wait()
        if self.error is not None:
            raise self.error
        return self.processed

    def _compute(self, chunk: slice) -> None:
        target = self.processed[chunk]
        if self.raw:
            _decode(self.video, self.unique[chunk], target)
            return
        resize_and_crop(_decoded(self.video, self.unique[chunk]), self.protocol.min_resize,
                        self.protocol.crop_size, self.offset, dtype=np.uint8, out=target)


def _spare(size: int) -> np.ndarray:
    """A flat uint8 array of at least ``size``: a spare one if large enough (under
    ``_recent_lock``), else a new one with room for the next videos' (an eighth more)."""
    for i, base in enumerate(_spares):
        if base.size >= size:
            return _spares.pop(i)
    return np.empty(size + size // 8, dtype=np.uint8)


def _decode(video, indices: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``video.frames(indices)`` (distinct, sorted) written into ``out``: in place for a stored
    video, copied for other video-like objects."""
    from helpers.ucf101.store import StoredVideo

    if isinstance(video, StoredVideo):
        return video.frames(indices, out=out)
    np.copyto(out, video.frames(indices))
    return out


def _decoded(video, indices: np.ndarray):
    """``video.frames(indices)`` (distinct, sorted) for the resize: a stored video's decoded
    frames as a list when the kernel reads them in place, else one array."""
    from helpers.ucf101.store import StoredVideo

    if isinstance(video, StoredVideo) and kernels.AVAILABLE:
        return video.decoded(indices)
    return video.frames(indices)
