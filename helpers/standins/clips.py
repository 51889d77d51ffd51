"""Generated gallery clips for tiny mode: simple moving shapes, each with a caption and a label.

They stand in for the official colab's Wikimedia GIFs in notebook 02 (and for "real frames" in
notebook 01) when the course runs offline. They come in every container the course reads
(GIF, MP4, AVI, WebM), in odd and even sizes, one shorter than 32 frames (so the colab's
padding is exercised). Deterministic; written once (atomically) and reused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: name, file, caption, label, (height, width), frames, fps
CLIPS = (
    ("red_square", "red_square.mp4", "a red square moving to the right", "red square",
     (96, 128), 40, 10.0),
    ("blue_ball", "blue_ball.gif", "a blue ball bouncing up and down", "blue ball",
     (121, 97), 36, 12.5),
    ("green_stripes", "green_stripes.webm", "green stripes scrolling down", "green stripes",
     (96, 128), 40, 10.0),
    ("checkerboard", "checkerboard.avi", "a flashing black and white checkerboard",
     "checkerboard", (90, 120), 32, 8.0),
    ("yellow_circle", "yellow_circle.gif", "a yellow circle growing", "yellow circle",
     (100, 100), 12, 6.0),
    ("grey_noise", "grey_noise.mp4", "grey noise flickering", "noise", (48, 64), 32, 10.0),
)


def _canvas(n, height, width, colour=(20, 20, 30)):
    frames = np.empty((n, height, width, 3), np.uint8)
    frames[:] = colour
    return frames


def _frames(name: str, height: int, width: int, n: int, rng) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    if name == "red_square":
        frames = _canvas(n, height, width)
        side = height // 3
        for t in range(n):
            left = int(round(t * (width - side) / max(n - 1, 1)))
            top = (height - side) // 2
            frames[t, top:top + side, left:left + side] = (220, 30, 30)
        return frames
    if name == "blue_ball":
        frames = _canvas(n, height, width, (235, 235, 225))
        radius = width // 6
        for t in range(n):
            cy = radius + abs(np.sin(np.pi * t / 12)) * (height - 2 * radius - 1)
            inside = (y - cy) ** 2 + (x - width / 2) ** 2 <= radius ** 2
            frames[t][inside] = (30, 60, 220)
        return frames
    if name == "green_stripes":
        frames = _canvas(n, height, width)
        for t in range(n):
            stripes = ((y + 3 * t) // 8) % 2 == 0
            frames[t][stripes] = (40, 200, 60)
        return frames
    if name == "checkerboard":
        frames = np.empty((n, height, width, 3), np.uint8)
        board = ((y // 15) + (x // 15)) % 2 == 0
        for t in range(n):
            on = board if (t // 4) % 2 == 0 else ~board
            frames[t] = np.where(on[..., None], 250, 10).astype(np.uint8)
        return frames
    if name == "yellow_circle":
        frames = _canvas(n, height, width, (40, 30, 80))
        for t in range(n):
            radius = 5 + t * (min(height, width) / 2 - 8) / max(n - 1, 1)
            inside = (y - height / 2) ** 2 + (x - width / 2) ** 2 <= radius ** 2
            frames[t][inside] = (240, 220, 30)
        return frames
    if name == "grey_noise":
        levels = rng.integers(60, 200, size=(n, height // 4, width // 4), dtype=np.uint8)
        blocks = levels.repeat(4, axis=1).repeat(4, axis=2)
        return np.repeat(blocks[..., None], 3, axis=-1)
    raise KeyError(name)


def generate(folder) -> list[dict]:
    """Write the gallery clips into ``folder`` (only those missing); describe each.

    Returns a list of ``{"name", "path", "caption", "label", "num_frames", "fps"}`` in
    :data:`CLIPS` order.
    """
    from helpers import atomic, video

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for index, (name, filename, caption, label, (height, width), n, fps) in enumerate(CLIPS):
        path = folder / filename
        with atomic.locked(path):  # a second process waits for the first one's file
            if not path.exists():
                rng = np.random.default_rng(index)
                video.write_video(path, _frames(name, height, width, n, rng), fps)
        out.append({"name": name, "path": path, "caption": caption, "label": label,
                    "num_frames": n, "fps": fps})
    return out
