"""The official MIL-NCE colab's video loader, rewritten as the baseline for `helpers.video`.

From tensorflow/docs, site/en/hub/tutorials/text_to_video_retrieval_with_s3d_milnce.ipynb
(`crop_center_square` and `load_video`, without the download). The decode benchmark times it
against :func:`helpers.video.colab_clip`, and tests/test_video.py checks that both give the same
pixels. It imports OpenCV and numpy only.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def crop_center_square(frame: np.ndarray) -> np.ndarray:
    """The colab's centre square crop: start at ``x // 2 - side // 2`` (likewise y)."""
    y, x = frame.shape[0:2]
    min_dim = min(y, x)
    start_x = (x // 2) - (min_dim // 2)
    start_y = (y // 2) - (min_dim // 2)
    return frame[start_y:start_y + min_dim, start_x:start_x + min_dim]


def opencv_colab_clip(path: Path, max_frames: int = 32, size: int = 224) -> np.ndarray:
    """The colab's clip of ``path``: float64 ``[max_frames, size, size, 3]`` RGB in [0, 1].

    OpenCV reads frames one by one; each is centre-cropped to a square, resized with
    ``cv2.resize`` (bilinear), turned from BGR to RGB; the stack is divided by 255 (float64).
    A video shorter than ``max_frames`` repeats each frame in place (f0, f0, f1, f1, ...).
    """
    import cv2

    capture = cv2.VideoCapture(str(path))
    frames = []
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frame = crop_center_square(frame)
            frame = cv2.resize(frame, (size, size))
            frame = frame[:, :, [2, 1, 0]]
            frames.append(frame)
            if len(frames) == max_frames:
                break
    finally:
        capture.release()
    frames = np.array(frames)
    if len(frames) < max_frames:
        n_repeat = int(math.ceil(max_frames / float(len(frames))))
        frames = frames.repeat(n_repeat, axis=0)
    frames = frames[:max_frames]
    return frames / 255.0
