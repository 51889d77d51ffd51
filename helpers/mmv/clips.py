"""Clips for notebook 03: the MIL-NCE colab's GIFs, or generated ones (input checks: :mod:`helpers.mmv.inputs`).

Real mode reuses notebook 02's gallery (:func:`helpers.milnce.sample_videos`: the three
Wikimedia GIFs of the official MIL-NCE colab, downloaded once into one cache) and the course's
decoder (:func:`helpers.video.colab_clip`: first ``num_frames`` frames, centre square crop,
bilinear resize, /255). Tiny mode draws three synthetic clips with numpy (a moving disc, sliding
stripes, a growing ring), so that pictures of the pipeline still show motion without any
download.
"""

from __future__ import annotations

import numpy as np

SYNTHETIC = ("moving disc", "sliding stripes", "growing ring")


def resolve_mode() -> str:
    """``"real"`` (the GIFs, cached or reachable) or ``"tiny"`` (generated clips)."""
    from helpers import milnce

    return milnce.gallery_mode()


def synthetic_clip(kind: str, num_frames: int, size: int) -> np.ndarray:
    """One generated clip ``[T, S, S, 3]`` float32 in [0, 1]: ``kind`` is one of :data:`SYNTHETIC`."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    clip = np.empty((num_frames, size, size, 3), np.float32)
    for t in range(num_frames):
        phase = t / max(num_frames - 1, 1)
        background = np.stack([0.15 + 0.5 * y, 0.35 + 0.3 * x, 0.6 - 0.3 * y], axis=-1)
        if kind == "moving disc":
            mask = (x - (0.2 + 0.6 * phase)) ** 2 + (y - 0.5) ** 2 < 0.04
            colour = (0.95, 0.2, 0.1)
        elif kind == "sliding stripes":
            mask = np.sin(2 * np.pi * (6 * x - 1.5 * phase)) > 0.3
            colour = (0.95, 0.9, 0.2)
        elif kind == "growing ring":
            radius = np.sqrt((x - 0.5) ** 2 + (y - 0.5) ** 2)
            mask = np.abs(radius - (0.1 + 0.3 * phase)) < 0.04
            colour = (0.2, 0.95, 0.4)
        else:
            raise ValueError(f"unknown synthetic clip {kind!r}; choose one of {SYNTHETIC}")
        clip[t] = np.where(mask[..., None], np.asarray(colour, np.float32), background)
    return clip


def demo_clips(num_frames: int = 32, size: int = 224, mode: str | None = None):
    """Three clips ``[3, T, S, S, 3]`` float32 in [0, 1] and their names.

    ``mode``: ``"real"`` downloads the Wikimedia GIFs (:func:`helpers.milnce.sample_videos`),
    ``"tiny"`` generates :data:`SYNTHETIC` clips; default :func:`resolve_mode`.
    Raises :class:`helpers.downloads.DownloadError` when a GIF cannot be fetched.
    """
    mode = mode or resolve_mode()
    if mode == "tiny":
        names = list(SYNTHETIC)
        return np.stack([synthetic_clip(n, num_frames, size) for n in names]), names
    from helpers import milnce, video

    samples = milnce.sample_videos("real")
    clips = [video.colab_clip(sample.path, num_frames, size) for sample in samples]
    return np.stack(clips), [sample.caption for sample in samples]
