"""Read, write, sample and preprocess videos (GIF, MP4, AVI, WebM) with PyAV.

Data flow::

    file ──iter_frames (streamed)──▶ frames uint8 [H, W, 3] RGB, one at a time
         ──sample (colab_clip: first T frames | eval_windows: N windows at a target fps |
                   iter_frame_groups: any groups of frames, e.g. the library's windows)
         ──center_crop_resize──▶ clip float32 [T, size, size, 3] in [0, 1]

Decoding streams through the file: a sampler keeps only the frames it needs, already cropped and
resized, so a long or high-resolution video never sits in memory whole.

Every problem with an input file (missing, empty, truncated, not a video, no frames) raises
:class:`VideoError`, whose message names the file and the cause. :func:`load_clips` skips such
files with a warning and returns them in a list.

Frames are RGB whatever the source: palette, grey and RGBA GIFs and YUV videos are converted by
FFmpeg's ``swscale`` (alpha is dropped, as OpenCV does).

This module imports neither TensorFlow nor JAX.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

#: Containers :func:`write_video` can write, by file suffix: (FFmpeg format, codec).
CONTAINERS = {
    ".gif": ("gif", "gif"),
    ".mp4": ("mp4", "libx264"),
    ".avi": ("avi", "mpeg4"),  # MPEG-4 Part 2 in AVI, as UCF101 ships (XviD)
    ".webm": ("webm", "libvpx"),
}


class VideoError(Exception):
    """A video file cannot be read. ``.path`` is the file, ``.cause`` says why."""

    def __init__(self, path, cause: str):
        self.path = str(path)
        self.cause = cause
        super().__init__(f"cannot read video {self.path}: {cause}")


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What a video file holds, read from its header (no decoding unless asked).

    ``num_frames_source`` says where ``num_frames`` comes from: ``counted`` (every frame
    decoded: ``video_info(path, exact=True)``), ``claimed`` (the count the container's header
    states, which a damaged or forged header can get wrong), or ``estimated`` (duration x fps).
    ``num_frames_exact`` is true only for ``counted``. ``fps`` is the average frame rate;
    ``duration`` is in seconds.
    """

    path: str
    num_frames: int
    num_frames_exact: bool
    fps: float
    duration: float
    height: int
    width: int
    codec: str
    container: str
    num_frames_source: str = "claimed"


# --------------------------------------------------------------------------------------------
# Opening and decoding
# --------------------------------------------------------------------------------------------

def _av():
    # PyAV keeps FFmpeg's own log lines off by default (av.logging level None); failures reach
    # us as exceptions, which become VideoError. We leave that global setting alone.
    import av

    return av


def _open(path, probe_decode: bool = True):
    """Open ``path`` for reading; return (container, video stream). Raises VideoError.

    ``probe_decode=False`` keeps FFmpeg's stream probing (``avformat_find_stream_info``) from
    decoding frames (codec option ``skip_frame=all`` for the probing decoder only): for H.264
    it decodes several frames to guess the reorder delay, about 10 ms of CPU for a 720p file
    (an eighth of a 32-frame clip), which a sampler that decodes frames anyway does not need.
    The frames decoded afterwards are the same (tests/test_video.py checks every container);
    only ``stream.codec_context.format`` stays unknown until the first frame. For formats whose
    streams only probing reveals (MPEG-TS), FFmpeg probes as usual.
    """
    av = _av()
    from helpers.checks import NOT_FOUND, input_file_problem

    path = Path(path)
    problem = input_file_problem(path)
    if problem == NOT_FOUND:
        raise VideoError(path, "file not found")
    if problem == "a folder, not a file":
        raise VideoError(path, "is a folder, not a video file")
    if problem == "empty (0 bytes)":
        raise VideoError(path, "the file is empty (0 bytes), e.g. an interrupted download")
    if problem:  # a symlink loop, a FIFO, a device, no permission: said as what it is
        raise VideoError(path, problem)
    text_kind = _sniff_text(path)
    if text_kind:
        raise VideoError(path, f"not a video: it is {text_kind}")
    try:
        container = av.open(str(path), mode="r",
                            options=None if probe_decode else {"skip_frame": "all"})
    except av.FFmpegError as err:
        raise VideoError(path, f"not a video file FFmpeg can read ({_describe(err)}); the "
                               f"file may be truncated or of another type") from None
    except (OSError, ValueError) as err:
        raise VideoError(path, f"cannot open ({err})") from None
    kind = container.format.name
    if kind == "image2" or kind.endswith("_pipe"):
        container.close()
        raise VideoError(path, f"not a video: it is a still image ({kind.split('_')[0]} format)")
    if not container.streams.video:
        container.close()
        raise VideoError(path, "contains no video stream (a video without frames, audio only, "
                               "or not a video)")
    stream = container.streams.video[0]
    if stream.codec_context is None or not stream.codec_context.name:
        container.close()
        raise VideoError(path, "its video codec is not supported by this FFmpeg build")
    if container.format.name == "gif" and not _gif_has_trailer(path):
        container.close()
        raise VideoError(path, "truncated: the GIF does not end with its trailer byte (0x3B), "
                               "so its last frames are missing; download it again")
    stream.thread_type = "AUTO"  # frame + slice threads: faster H.264 decoding
    return container, stream


def _sniff_text(path: Path) -> str | None:
    """Describe ``path`` if it is text (an HTML error page saved under a video's name, JSON,
    notes), else None. FFmpeg would otherwise report "invalid data", or even render a .txt
    file as a video (its ``tty`` demuxer)."""
    with open(path, "rb") as handle:
        head = handle.read(1024)
    if b"\x00" in head:
        return None
    text = None
    for cut in range(4 if len(head) == 1024 else 1):  # the 1024-byte cut may split a character
        try:
            text = head[: len(head) - cut].decode("utf-8")
            break
        except UnicodeDecodeError:
            continue
    if text is None:
        return None
    if any(ord(c) < 32 and c not in "\t\n\r\f" for c in text):
        return None
    start = text.lstrip().lower()
    if start.startswith(("<!doctype html", "<html", "<head", "<?xml")):
        return ("an HTML/XML page (often a server's error page saved under the video's name; "
                "check the URL and download again)")
    return f"a text file (starts with {text.strip()[:40]!r})"


def _gif_has_trailer(path: Path) -> bool:
    """Whether a GIF ends with its trailer byte (ignoring NUL padding some writers append).

    GIF has no frame count in its header, so a file cut short still decodes (fewer frames,
    the last one partly garbage); the missing trailer is the one sign of it.
    """
    with open(path, "rb") as handle:
        handle.seek(max(0, path.stat().st_size - 256))
        tail = handle.read().rstrip(b"\x00")
    return tail.endswith(b"\x3b")


def _announced_frames(container, stream) -> tuple[int, bool]:
    """Frames the container announces: ``(count, exact)``; ``(0, False)`` when it does not say.

    ``exact``: a count stored in the header (MP4, AVI, GIF after FFmpeg's scan); otherwise
    estimated from the duration and the average frame rate (WebM).
    """
    if stream.frames:
        return int(stream.frames), True
    rate = stream.average_rate or stream.guessed_rate
    duration = None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000  # AV_TIME_BASE
    if duration and rate:
        return int(round(duration * float(rate))), False
    return 0, False


def _check_complete(path, got: int, announced: tuple[int, bool], what: str) -> None:
    """Raise VideoError when clearly fewer frames arrived than the container announced."""
    expected, exact = announced
    if not expected:
        return
    # A little slack: decoders may drop a damaged frame, and estimates from durations round.
    slack = max(1, expected // 50) if exact else max(2, expected // 20)
    if got < expected - slack:
        plural = "s" if got != 1 else ""
        raise VideoError(path, f"truncated: {got} frame{plural} could be {what}, but the container "
                               f"announces {'' if exact else 'about '}{expected}; the file "
                               f"was probably cut short (download it again)")


# Packed formats whose RGB channels numpy can pick out directly (no FFmpeg conversion needed).
_CHANNELS = {"rgb24": (0, 1, 2), "bgr24": (2, 1, 0), "rgba": (0, 1, 2), "bgra": (2, 1, 0),
             "rgb0": (0, 1, 2), "bgr0": (2, 1, 0), "argb": (1, 2, 3), "abgr": (3, 2, 1)}


def _rgb(frame) -> np.ndarray:
    """One decoded frame as uint8 ``[H, W, 3]`` RGB (alpha dropped, as FFmpeg's conversion does).

    Packed RGB-like frames (GIF decodes to BGRA) are reordered by numpy, far cheaper than a
    conversion; other formats go through ``reformat``, which gives the same pixels as
    ``to_ndarray(format="rgb24")`` in a fraction of its time (see benchmarks/).
    """
    channels = _CHANNELS.get(frame.format.name)
    if channels is not None:
        return np.ascontiguousarray(frame.to_ndarray()[..., list(channels)])
    return frame.reformat(format="rgb24").to_ndarray()


def _describe(err) -> str:
    text = getattr(err, "strerror", None) or str(err)
    return text.strip().rstrip(":") or type(err).__name__


def iter_frames(path) -> Iterator[np.ndarray]:
    """Yield the frames of ``path`` in display order as uint8 ``[H, W, 3]`` RGB, one at a time.

    The file is opened at once (so a missing or unreadable file raises here, not at the first
    ``next``); decoding is lazy. Raises :class:`VideoError` when the file cannot be opened, a
    frame cannot be decoded, or no frame at all could be decoded.
    """
    container, stream = _open(path)
    return _frames(path, container, stream)


def _frames(path, container, stream):
    decoded = _decoded(path, container, stream)
    try:
        for frame in decoded:
            yield _rgb(frame)
    finally:
        decoded.close()  # closes the container at once when the caller stops early


def _decoded(path, container, stream):
    """Yield the decoded PyAV frames of ``stream``; close ``container`` when done or closed.

    The checks of :func:`iter_frames`: a decoding error, no frame at all, or clearly fewer
    frames than announced (only when the stream is read to its end) raise VideoError.
    """
    av = _av()
    count = 0
    try:
        announced = _announced_frames(container, stream)  # inside: the finally closes
        for frame in container.decode(stream):
            yield frame
            count += 1
    except av.FFmpegError as err:
        raise VideoError(path, f"decoding failed after {count} frames ({_describe(err)}); "
                               f"the file is probably truncated or corrupt") from None
    finally:
        container.close()
    if count == 0:
        raise VideoError(path, "contains no frames that can be decoded (empty or truncated "
                               "video stream)")
    _check_complete(path, count, announced, "decoded")


def frame_times(path) -> np.ndarray:
    """Presentation times (seconds, from 0, sorted) of every video frame, by demuxing only.

    Demuxing reads packet headers without decoding, so this is cheap even for long videos.
    Where a container gives no timestamps, frames are spaced by the average frame rate.
    """
    av = _av()
    container, stream = _open(path)
    times = []
    missing = False
    try:
        announced = _announced_frames(container, stream)
        for packet in container.demux(stream):
            if packet.size == 0:  # the flush packet at the end of a stream
                continue
            if packet.pts is None:
                missing = True
                times.append(0.0)
            else:
                times.append(float(packet.pts * packet.time_base))
        rate = stream.average_rate or stream.guessed_rate
    except av.FFmpegError as err:
        raise VideoError(path, f"reading the container failed after {len(times)} frames "
                               f"({_describe(err)}); the file is probably truncated") from None
    finally:
        container.close()
    if not times:
        raise VideoError(path, "contains no frames (empty video stream)")
    _check_complete(path, len(times), announced, "read")
    if missing:
        fps = float(rate) if rate else 25.0
        return np.arange(len(times), dtype=np.float64) / fps
    times = np.sort(np.asarray(times, dtype=np.float64))
    return times - times[0]


def video_info(path, exact: bool = False) -> VideoInfo:
    """Header facts about ``path``; with ``exact=True`` the frames are counted by decoding.

    Without ``exact`` nothing is decoded: ``num_frames`` is the count the container claims, or
    an estimate from duration x fps (``num_frames_source`` says which). Raises :class:`VideoError`
    for unreadable files and files without frames. A file cut short whose header survived
    (AVI and WebM keep no index at the front) is only caught by decoding: ``exact=True`` or
    any sampler.
    """
    container, stream = _open(path)
    try:
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else 0.0
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000  # AV_TIME_BASE
        else:
            duration = 0.0
        num_frames, known = _announced_frames(container, stream)
        codec = stream.codec_context.name
        height, width = stream.codec_context.height, stream.codec_context.width
        container_name = container.format.name
    finally:
        container.close()
    source = "claimed" if known else "estimated"
    if exact:
        num_frames, source = sum(1 for _ in iter_frames(path)), "counted"
    elif num_frames == 0:
        # The container does not say: decoding one frame tells "unknown" from "none".
        next(iter_frames(path))
    if not fps and duration and num_frames:
        fps = num_frames / duration
    return VideoInfo(path=str(path), num_frames=num_frames, num_frames_exact=source == "counted",
                     fps=fps, duration=duration, height=height, width=width, codec=codec,
                     container=container_name, num_frames_source=source)


# --------------------------------------------------------------------------------------------
# Preprocessing: centre square crop, bilinear resize, [0, 1]
# --------------------------------------------------------------------------------------------

def center_crop_box(height: int, width: int) -> tuple[int, int, int]:
    """``(top, left, side)`` of the centred square crop, with the official colab's rounding.

    ``side = min(height, width)``; ``top = height // 2 - side // 2`` (likewise ``left``). For odd
    differences this is one pixel further down/right than ``(height - side) // 2``.
    """
    side = min(height, width)
    return height // 2 - side // 2, width // 2 - side // 2, side


@functools.cache
def _cv2():
    """OpenCV, imported on first use (it is in Colab's runtime and pinned in requirements.txt)."""
    import cv2

    return cv2


def resize_bilinear(frames: np.ndarray, height: int, width: int | None = None) -> np.ndarray:
    """Bilinear resize of uint8 ``[N, H, W, C]`` (or ``[H, W, C]``) to ``[N, height, width, C]``.

    This is ``cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR)`` frame by
    frame, the official MIL-NCE colab's resize, so the pixels are the colab's exactly. Pixel
    centres are aligned (``x = (i + 0.5) * src / dst - 0.5``, clamped at the edges), the weights
    are OpenCV's fixed-point ones (multiples of 1/2048) and there is no anti-aliasing: a large
    downscale samples rather than averages.

    An earlier numpy version of the same grid was within one grey level of OpenCV but slower
    than the colab's loop (OpenCV's resize is SIMD C++ and releases the GIL); nothing else used
    it, so it was dropped. The UCF101 protocol has its own resize (TensorFlow's float bilinear,
    :func:`helpers.ucf101.sampling.resize_bilinear`), which must stay bit-exact with TF.
    """
    width = height if width is None else width
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise ValueError(f"resize_bilinear expects uint8 frames, got {frames.dtype}")
    single = frames.ndim == 3
    if single:
        frames = frames[None]
    if frames.ndim != 4:
        raise ValueError(f"expected frames [N, H, W, C], got shape {frames.shape}")
    if frames.shape[1:3] == (height, width):
        out = frames.copy()
    else:
        cv2 = _cv2()
        out = np.empty((len(frames), height, width, frames.shape[3]), np.uint8)
        for frame, target in zip(frames, out):
            # dst= writes straight into the result; the source may be a cropped view.
            cv2.resize(frame, (width, height), dst=target, interpolation=cv2.INTER_LINEAR)
    return out[0] if single else out


def center_crop_resize_uint8(frames: np.ndarray, size: int = 224) -> np.ndarray:
    """Centre square crop, then bilinear resize: uint8 ``[N, H, W, 3]`` -> ``[N, size, size, 3]``.

    Stays uint8 (what the samplers keep in memory: a quarter of float32's size).
    """
    frames = _check_frames(frames)
    top, left, side = center_crop_box(*frames.shape[1:3])
    return resize_bilinear(frames[:, top:top + side, left:left + side], size)


def center_crop_resize(frames: np.ndarray, size: int = 224) -> np.ndarray:
    """The model's input contract: uint8 RGB ``[N, H, W, 3]`` -> float32 ``[N, size, size, 3]``.

    Output values are in [0, 1].

    Centre square crop (:func:`center_crop_box`), bilinear resize to ``size`` x ``size``
    (:func:`resize_bilinear`), divide by 255. A single frame ``[H, W, 3]`` gives
    ``[size, size, 3]``. Raises ``ValueError`` for other shapes or dtypes.
    """
    single = np.ndim(frames) == 3
    out = center_crop_resize_uint8(frames[None] if single else frames, size)
    out = out.astype(np.float32) / np.float32(255.0)
    return out[0] if single else out


def _check_frames(frames) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected RGB frames [N, H, W, 3], got shape {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames (0..255), got {frames.dtype}; decode with "
                         f"iter_frames, or convert with (x * 255).round().astype(np.uint8)")
    if min(frames.shape[1:3]) == 0:
        raise ValueError(f"frames have an empty side: shape {frames.shape}")
    return frames


# --------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------

def colab_indices(num_available: int, num_frames: int = 32) -> np.ndarray:
    """Frame indices of the official colab's clip: the first ``num_frames`` frames.

    A shorter video repeats each frame in place (``f0, f0, f1, f1, ...``, ``np.repeat`` by
    ``ceil(num_frames / num_available)``) and is cut to ``num_frames``.
    """
    if num_available <= 0:
        raise ValueError("a video needs at least one frame")
    if num_available >= num_frames:
        return np.arange(num_frames)
    repeat = math.ceil(num_frames / num_available)
    return np.repeat(np.arange(num_available), repeat)[:num_frames]


def colab_clip(path, num_frames: int = 32, size: int = 224) -> np.ndarray:
    """The official colab's clip of ``path``: float32 ``[num_frames, size, size, 3]`` in [0, 1].

    Decodes only the first ``num_frames`` frames, in order, with no frame-rate resampling
    (see :func:`colab_indices` for short videos), then :func:`center_crop_resize`: the same
    pixels, computed frame by frame as they are decoded. Raises :class:`VideoError`, and
    ``ValueError`` when ``num_frames`` or ``size`` is below 1.
    """
    if num_frames < 1 or size < 1:
        raise ValueError(f"num_frames and size must be at least 1, got {num_frames} and {size}")
    clip = np.empty((num_frames, size, size, 3), np.uint8)
    count = 0
    # Everything that can fail comes before the open: until the first frame is asked for,
    # closing ``decoded`` (an unstarted generator) would not close the container.
    to_rgb = _Converter()
    container, stream = _open(path, probe_decode=False)
    decoded = _decoded(path, container, stream)
    try:
        for frame in decoded:
            _crop_resize_frame(frame, clip[count], to_rgb)
            count += 1
            if count == num_frames:
                break
    finally:
        decoded.close()  # stops the decoder at once: no frame after the last needed one
    if count < num_frames:
        clip = clip[colab_indices(count, num_frames)]
    # As in center_crop_resize: cast to float32, divide by 255 in float32 (here in place, which
    # numpy does faster than a divide that casts as it goes).
    out = clip.astype(np.float32)
    out /= np.float32(255.0)
    return out


class _Converter:
    """Converts decoded frames that numpy cannot reorder (YUV, palette, ...) to RGB.

    One swscale context for the whole clip: ``VideoFrame.reformat`` would set up a new one
    (and a thread pool) for every frame. One swscale thread: the decoder's threads already
    keep the cores busy. Same pixels as :func:`_rgb`.
    """

    def __init__(self):
        from av.video.reformatter import VideoReformatter

        self._reformatter = VideoReformatter()

    def __call__(self, frame) -> np.ndarray:
        return self._reformatter.reformat(frame, format="rgb24", threads=1).to_ndarray()


# OpenCV's conversions of the packed formats in _CHANNELS to RGB: pure channel reorders.
_TO_RGB_CODES = {"bgra": "COLOR_BGRA2RGB", "bgr0": "COLOR_BGRA2RGB", "rgba": "COLOR_RGBA2RGB",
                 "rgb0": "COLOR_RGBA2RGB", "bgr24": "COLOR_BGR2RGB"}


def _crop_resize_frame(frame, dst: np.ndarray, to_rgb: Callable) -> None:
    """Centre-crop and resize one decoded PyAV frame into ``dst`` (uint8 ``[size, size, 3]``).

    The pixels of ``center_crop_resize_uint8(_rgb(frame)[None], size)[0]``, with less work:
    packed RGB-like frames (GIF decodes to BGRA) are cropped and resized as they are and only
    the small result is put in RGB order. That is exact because ``cv2.resize`` treats each
    channel alone, with the same integer weights, so resizing commutes with reordering
    channels (tests/test_video.py checks it).
    """
    cv2 = _cv2()
    size = dst.shape[0]
    channels = _CHANNELS.get(frame.format.name)
    packed = frame.to_ndarray() if channels is not None else to_rgb(frame)
    top, left, side = center_crop_box(*packed.shape[:2])
    crop = packed[top:top + side, left:left + side]
    if channels is None or frame.format.name == "rgb24":
        cv2.resize(crop, (size, size), dst=dst, interpolation=cv2.INTER_LINEAR)
        return
    small = cv2.resize(crop, (size, size), interpolation=cv2.INTER_LINEAR)
    code = _TO_RGB_CODES.get(frame.format.name)
    if code is not None:
        cv2.cvtColor(small, getattr(cv2, code), dst=dst)
    else:
        dst[...] = small[..., list(channels)]


def resample_indices(frame_times: np.ndarray, fps: float) -> np.ndarray:
    """Indices of the source frames on screen at times ``0, 1/fps, 2/fps, ...``.

    ``frame_times``: sorted presentation times in seconds, starting at 0. The video lasts until
    one frame interval after its last frame (median interval; 1 frame when there is only one).
    Each output time shows the last frame whose time is <= it.
    """
    frame_times = np.asarray(frame_times, dtype=np.float64)
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if len(frame_times) > 1:
        step = float(np.median(np.diff(frame_times)))
        duration = frame_times[-1] + (step if step > 0 else 0.0)
    else:
        duration = 0.0
    count = max(1, math.ceil(duration * fps - 1e-6))
    times = np.arange(count) / fps
    # A tolerance, so a frame stamped 0.19999 s counts as being on screen at 0.2 s.
    index = np.searchsorted(frame_times, times + 1e-6, side="right") - 1
    return np.clip(index, 0, len(frame_times) - 1)


def window_starts(num_resampled: int, num_windows: int, num_frames: int) -> np.ndarray:
    """Start positions of ``num_windows`` windows of ``num_frames``, evenly spaced, rounded.

    The first window starts at 0 and the last ends at the end of the video; a video shorter
    than one window puts every window at 0 (its frames then loop, see :func:`window_indices`).
    """
    last = max(num_resampled - num_frames, 0)
    return np.round(np.linspace(0, last, num_windows)).astype(np.int64)


def window_indices(frame_times: np.ndarray, num_windows: int = 10, num_frames: int = 16,
                   fps: float = 5.0) -> np.ndarray:
    """Source-frame indices ``[num_windows, num_frames]`` of the evaluation protocol.

    The video is resampled to ``fps`` (:func:`resample_indices`); ``num_windows`` windows of
    ``num_frames`` consecutive resampled frames are spaced evenly (:func:`window_starts`);
    a video shorter than one window loops (``0, 1, ..., M-1, 0, 1, ...``).
    """
    resampled = resample_indices(frame_times, fps)
    starts = window_starts(len(resampled), num_windows, num_frames)
    positions = (starts[:, None] + np.arange(num_frames)[None, :]) % len(resampled)
    return resampled[positions]


def eval_windows(path, num_windows: int = 10, num_frames: int = 16, fps: float = 5.0,
                 size: int = 224) -> np.ndarray:
    """Evaluation-protocol windows of ``path``: float32 ``[num_windows, num_frames, size, size, 3]``.

    Frame times come from the container (variable frame rates are honoured); see
    :func:`window_indices`. Decoding streams once through the file and keeps only the needed
    frames, already cropped and resized. Raises :class:`VideoError`.
    """
    times = frame_times(path)
    indices = window_indices(times, num_windows, num_frames, fps)
    clips = frames_at(path, indices, size, num_announced=len(times))
    return clips.astype(np.float32) / np.float32(255.0)


def frames_at(path, indices, size: int = 224, num_announced: int | None = None) -> np.ndarray:
    """Decode the source frames ``indices [R, T]`` (e.g. windows) of ``path``, centre-cropped
    and resized: uint8 ``[R, T, size, size, 3]``.

    Streams once through the file (:func:`iter_frame_groups`). ``num_announced``: the frame
    count to name when the file ends early. Raises :class:`VideoError`. The decoding behind
    :func:`eval_windows` and the library's windows (:mod:`helpers.library.windows`).
    """
    indices = np.asarray(indices, dtype=np.int64)
    out = np.zeros(indices.shape + (size, size, 3), np.uint8)
    for row, frames in iter_frame_groups(path, indices, size, num_announced):
        out[row] = frames
    return out


def iter_frame_groups(path, indices, size: int = 224, num_announced: int | None = None):
    """Yield ``(row, uint8 [T, size, size, 3])`` for each row of ``indices [R, T]`` (source-frame
    indices) as soon as the row's last frame is decoded.

    One pass through the file; only the frames still needed by a pending row are kept (already
    cropped and resized), and decoding stops after the last needed frame, so sliding windows
    over a long video take the memory of a few windows. Rows come in order of their largest
    index. Raises :class:`VideoError` (after the rows already complete) when fewer frames
    decode than a row needs: a damaged tail; ``num_announced`` is the count then named.
    """
    indices = np.asarray(indices, dtype=np.int64)
    if indices.ndim != 2:
        raise ValueError(f"indices must be [rows, frames], got shape {indices.shape}")
    if indices.size == 0:
        return
    row_last = indices.max(axis=1)
    order = np.argsort(row_last, kind="stable")
    last_use: dict[int, int] = {}  # frame -> the last position (in order) of a row using it
    for position, row in enumerate(order.tolist()):
        for frame_index in indices[row].tolist():
            last_use[frame_index] = position
    kept: dict[int, np.ndarray] = {}
    position, decoded = 0, 0
    # As colab_clip: no probe decoding, and only the frames a row needs are converted, each
    # cropped and resized before its channels are put in RGB order (the pixels of
    # center_crop_resize_uint8 of iter_frames' frame); the others are decoded and dropped.
    to_rgb = _Converter()  # before the open, as in colab_clip
    container, stream = _open(path, probe_decode=False)
    frames = _decoded(path, container, stream)
    try:
        for index, frame in enumerate(frames):
            decoded = index + 1
            if index in last_use:
                kept[index] = np.empty((size, size, 3), np.uint8)
                _crop_resize_frame(frame, kept[index], to_rgb)
            while position < len(order) and row_last[order[position]] <= index:
                row = int(order[position])
                yield row, np.stack([kept[i] for i in indices[row].tolist()])
                for i in set(indices[row].tolist()):
                    if last_use[i] == position:
                        del kept[i]
                position += 1
            if position == len(order):
                return
    finally:
        frames.close()
    # Fewer frames decode than the container announced: the tail is damaged.
    total = num_announced if num_announced is not None else f"at least {int(row_last.max()) + 1}"
    raise VideoError(path, f"only {decoded} of {total} frames could be decoded; the "
                           f"file is probably truncated")


def load_clips(paths: Iterable, sampler: Callable = colab_clip, progress: bool | None = None,
               **kwargs):
    """Sample every file in ``paths``; skip unreadable ones with a warning.

    ``sampler``: :func:`colab_clip` (default) or :func:`eval_windows`, called as
    ``sampler(path, **kwargs)``. Returns ``(clips, ok_paths, failures)``: ``clips`` stacks the
    samples of the readable files (``[N, T, size, size, 3]`` for ``colab_clip``), ``ok_paths``
    lists those files in order, ``failures`` the :class:`VideoError` of each skipped file.
    ``progress``: show a progress bar (default: when there is more than one file).
    """
    from helpers.progress import bar as tqdm

    paths = [Path(p) for p in paths]
    show = len(paths) > 1 if progress is None else progress
    clips, ok_paths, failures = [], [], []
    for path in tqdm(paths, desc="decoding", unit="video", disable=not show, leave=False):
        try:
            clips.append(sampler(path, **kwargs))
            ok_paths.append(path)
        except VideoError as err:
            warnings.warn(f"skipping {err}", stacklevel=2)
            failures.append(err)
    stacked = np.stack(clips) if clips else np.zeros((0,), dtype=np.float32)
    return stacked, ok_paths, failures


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------

def _palette_frame(av, frame: np.ndarray):
    """A pal8 frame for the GIF encoder: exact when the frame has <= 256 colours."""
    flat = frame.reshape(-1, 3)
    keys = (flat[:, 0].astype(np.uint32) << 16) | (flat[:, 1].astype(np.uint32) << 8) | flat[:, 2]
    colours, index = np.unique(keys, return_inverse=True)
    if len(colours) > 256:
        from PIL import Image

        quantised = Image.fromarray(frame).quantize(256, method=Image.Quantize.MEDIANCUT,
                                                    dither=Image.Dither.NONE)
        index = np.asarray(quantised, dtype=np.uint8)
        rgb = np.asarray(quantised.getpalette()[:768], dtype=np.uint8).reshape(-1, 3)
    else:
        index = index.reshape(frame.shape[:2]).astype(np.uint8)
        rgb = np.stack([(colours >> 16) & 255, (colours >> 8) & 255, colours & 255], axis=1)
    palette = np.zeros((256, 4), dtype=np.uint8)  # ARGB, as PyAV's pal8 expects
    palette[: len(rgb), 0] = 255
    palette[: len(rgb), 1:] = rgb
    return av.VideoFrame.from_ndarray((np.ascontiguousarray(index), palette), format="pal8")


def write_video(path, frames, fps: float = 25.0) -> Path:
    """Write uint8 RGB ``frames [N, H, W, 3]`` to ``path``; the suffix picks the container.

    ``frames`` may also be any iterable of ``[H, W, 3]`` frames (e.g. a generator), written as
    they come, so a long video never has to fit in memory.

    ``.gif`` (palette per frame: exact for frames of <= 256 colours), ``.mp4`` (H.264, yuv420p;
    yuv444p when a side is odd), ``.avi`` (MPEG-4 Part 2), ``.webm`` (VP8). ``fps`` may be
    fractional (e.g. 29.97). The file appears atomically, complete or not at all. Returns the path.
    Raises ``ValueError`` for an unknown suffix or bad frames.
    """
    from helpers.atomic import atomic_path

    av = _av()
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in CONTAINERS:
        raise ValueError(f"cannot write {path.name}: unknown video suffix {suffix!r}; use one of "
                         f"{', '.join(CONTAINERS)}")
    if isinstance(frames, (np.ndarray, list, tuple)):
        frames = _check_frames(np.asarray(frames))
        first, rest = frames[0], iter(frames[1:])
    else:
        rest = iter(frames)
        first = next(rest, None)
        if first is None:
            raise ValueError(f"cannot write {path.name}: no frames")
        first = _check_frames(np.asarray(first)[None])[0]
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    fmt, codec = CONTAINERS[suffix]
    height, width = first.shape[:2]
    rate = Fraction(fps).limit_denominator(1001)
    with atomic_path(path) as tmp:
        with av.open(str(tmp), mode="w", format=fmt) as container:
            options = {}
            if codec == "libx264":
                options = {"crf": "17", "preset": "veryfast"}
            elif codec == "libvpx":
                options = {"crf": "8", "b": "4M"}
            stream = container.add_stream(codec, rate=rate, options=options)
            stream.width, stream.height = width, height
            if codec == "gif":
                stream.pix_fmt = "pal8"
            elif codec == "libx264":
                stream.pix_fmt = "yuv420p" if height % 2 == 0 and width % 2 == 0 else "yuv444p"
            else:
                stream.pix_fmt = "yuv420p"
            if codec == "mpeg4":
                stream.bit_rate = max(2_000_000, int(width * height * float(rate) * 2))
            for index, frame in enumerate(itertools.chain([first], rest)):
                if np.shape(frame) != first.shape or np.asarray(frame).dtype != np.uint8:
                    raise ValueError(f"cannot write {path.name}: frame {index} has shape "
                                     f"{np.shape(frame)} / dtype {np.asarray(frame).dtype}, "
                                     f"expected {first.shape} uint8 like the first")
                if codec == "gif":
                    av_frame = _palette_frame(av, frame)
                else:
                    av_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame),
                                                          format="rgb24")
                for packet in stream.encode(av_frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return path


def to_gif_bytes(frames, fps: float = 10.0) -> bytes:
    """Encode uint8 ``[N, H, W, 3]`` frames (or float in [0, 1]) as an animated GIF, in memory."""
    import tempfile

    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        frames = np.round(np.clip(frames, 0.0, 1.0) * 255.0).astype(np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "clip.gif"
        write_video(target, frames, fps)
        return target.read_bytes()


__all__ = [
    "CONTAINERS", "VideoError", "VideoInfo", "video_info", "iter_frames", "write_video",
    "center_crop_box", "resize_bilinear", "center_crop_resize", "center_crop_resize_uint8",
    "colab_indices", "colab_clip", "frame_times", "resample_indices", "window_starts",
    "window_indices", "eval_windows", "frames_at", "iter_frame_groups", "load_clips", "to_gif_bytes",
]
