"""Cut a video file into windows with their times in seconds: the rows a video library embeds.

Two ways to cut, both on the video resampled to ``fps`` (:func:`helpers.video.resample_indices`):

* **evaluation windows** (the default, ``stride=None``): ``num_windows`` windows of
  ``num_frames`` frames spaced evenly from the start to the end of the video, MIL-NCE's
  evaluation protocol; the very frames ``python -m helpers.milnce embed --sampling windows``
  embeds (it then averages them per video; the library keeps one row per window);
* **sliding windows** (:meth:`Windows.sliding`): windows of ``length`` seconds starting every
  ``stride`` seconds, for finding moments in long videos.

Windows that start at the same frame (a video shorter than ``num_windows`` distinct windows) are
kept once: a row is one distinct window. Decoding streams once through the file and keeps only
the frames the pending windows need (:func:`helpers.video.iter_frame_groups`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterator

import numpy as np

from helpers import video

#: Times are rounded to this many decimals wherever windows are compared (keys of written rows).
TIME_DECIMALS = 6


@dataclasses.dataclass(frozen=True)
class Windows:
    """How to cut a video: ``num_frames`` frames at ``fps`` per window, ``size`` pixels square.

    ``stride`` ``None``: ``num_windows`` evaluation windows; a number: a window every
    ``stride`` seconds (rounded to whole frames at ``fps``) and ``num_windows`` is unused.
    """

    fps: float = 5.0
    num_frames: int = 16
    num_windows: int = 10
    stride: float | None = None
    size: int = 224

    def __post_init__(self):
        for name in ("num_frames", "num_windows", "size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
        for name in ("fps", "stride"):
            value = getattr(self, name)
            if value is None and name == "stride":
                continue
            if not isinstance(value, (int, float, np.number)) or not math.isfinite(value) \
                    or value <= 0:
                raise ValueError(f"{name} must be a finite number above 0, got {value!r}")

    @classmethod
    def sliding(cls, length: float, stride: float, fps: float = 5.0, size: int = 224) -> "Windows":
        """Windows of ``length`` seconds (rounded to whole frames at ``fps``) every ``stride`` s."""
        if not math.isfinite(length) or length <= 0:
            raise ValueError(f"length must be a finite number above 0, got {length!r}")
        return cls(fps=fps, num_frames=max(1, round(length * fps)), stride=stride, size=size)

    @property
    def length(self) -> float:
        """Seconds one window covers (``num_frames / fps``)."""
        return self.num_frames / self.fps

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        scheme = (f"{self.num_windows} evaluation windows" if self.stride is None
                  else f"a window every {self.stride:g} s")
        return (f"{scheme} of {self.num_frames} frames at {self.fps:g} fps "
                f"({self.length:g} s), {self.size} px")

    def plan(self, frame_times) -> "Plan":
        """Where the windows of a video with these frame times (seconds) lie; nothing decoded."""
        resampled = video.resample_indices(frame_times, self.fps)
        count = len(resampled)
        if self.stride is None:
            starts = video.window_starts(count, self.num_windows, self.num_frames)
        else:
            step = max(1, round(self.stride * self.fps))
            starts = np.arange(0, max(count - self.num_frames, 0) + 1, step, dtype=np.int64)
        starts = np.unique(starts)  # sorted; equal windows are one row
        # A window shorter than the video loops its frames (as video.window_indices does).
        positions = (starts[:, None] + np.arange(self.num_frames)[None, :]) % count
        duration = count / self.fps
        # Python's round (correctly rounded, so rounding again changes nothing): these times
        # are keys, compared with the ones read back from written rows.
        start_s = np.array([round(float(s), TIME_DECIMALS) for s in starts / self.fps])
        end_s = np.array([round(float(e), TIME_DECIMALS) for e in
                          np.minimum((starts + self.num_frames) / self.fps, duration)])
        return Plan(resampled[positions], start_s, end_s, len(frame_times))


@dataclasses.dataclass(frozen=True)
class Plan:
    """The windows of one video: source-frame ``indices [W, num_frames]`` and ``start_s`` /
    ``end_s`` ``[W]`` in seconds (rounded to :data:`TIME_DECIMALS`); ``num_source_frames``."""

    indices: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray
    num_source_frames: int

    def __len__(self) -> int:
        return len(self.start_s)

    def spans(self) -> list[tuple[float, float]]:
        return [(float(s), float(e)) for s, e in zip(self.start_s, self.end_s)]


def plan(path, windows: Windows = Windows()) -> Plan:
    """:meth:`Windows.plan` for the file ``path`` (demuxed only: cheap). Raises VideoError."""
    return windows.plan(video.frame_times(path))


def iter_windows(path, windows: Windows = Windows(), only=None, the_plan: Plan | None = None
                 ) -> Iterator[tuple[int, float, float, np.ndarray]]:
    """Yield ``(window index, start_s, end_s, frames)`` for the windows of ``path``.

    ``frames``: uint8 ``[num_frames, size, size, 3]`` RGB, centre-cropped and resized (divide by
    255 for the model: :func:`to_model_input`). ``only``: the window indices wanted (default
    all); the others are not decoded. Windows come as soon as their frames are decoded, in
    order of their last frame; memory holds only the frames of pending windows. Raises
    :class:`helpers.video.VideoError` (possibly after some windows, for a damaged tail).
    """
    the_plan = the_plan or plan(path, windows)
    wanted = np.arange(len(the_plan)) if only is None else np.asarray(list(only), np.int64)
    if len(wanted) == 0:
        return
    groups = video.iter_frame_groups(path, the_plan.indices[wanted], windows.size,
                                     num_announced=the_plan.num_source_frames)
    for row, frames in groups:
        index = int(wanted[row])
        yield index, float(the_plan.start_s[index]), float(the_plan.end_s[index]), frames


def cut(path, windows: Windows = Windows()):
    """Every window of ``path`` at once: ``(clips uint8 [W, T, size, size, 3], start_s [W],
    end_s [W])`` in time order. Raises :class:`helpers.video.VideoError`."""
    the_plan = plan(path, windows)
    clips = np.zeros((len(the_plan), windows.num_frames, windows.size, windows.size, 3), np.uint8)
    for index, _, _, frames in iter_windows(path, windows, the_plan=the_plan):
        clips[index] = frames
    return clips, the_plan.start_s.copy(), the_plan.end_s.copy()


def to_model_input(frames) -> np.ndarray:
    """uint8 frames -> float32 in [0, 1], exactly as :func:`helpers.video.eval_windows` scales."""
    return np.asarray(frames).astype(np.float32) / np.float32(255.0)
