"""A few short clips for notebook 03: three Wikimedia GIFs (real mode) or generated ones (tiny mode).

Real mode uses the GIFs of the official MIL-NCE colab (first ``num_frames`` frames, looped when
shorter, centre square crop, bilinear resize, /255). Tiny mode draws three synthetic clips with
numpy (a moving disc, sliding stripes, a growing ring), so that pictures of the pipeline still
show motion without any download. Decoding here is deliberately minimal (Pillow reads GIFs);
the course's full video pipeline is ``helpers.video``.
"""

from __future__ import annotations

import numpy as np

from helpers import config, downloads

#: name -> path under https://upload.wikimedia.org/wikipedia/commons
GIFS = {
    "waterfall": "b/b0/YosriAirTerjun.gif",
    "playing guitar": "e/e6/Guitar_solo_gif.gif",
    "car drifting": "3/30/2009-08-16-autodrift-by-RalfR-gif-by-wau.gif",
}
RESOURCES = {
    name: downloads.Resource(name=f"Wikimedia GIF '{name}'", base="wikimedia", path=path,
                             filename=path.rsplit("/", 1)[1], browser_user_agent=True,
                             licence="Wikimedia Commons file: see its page on commons.wikimedia.org "
                                     "for author and licence")
    for name, path in GIFS.items()
}
SYNTHETIC = ("moving disc", "sliding stripes", "growing ring")


def resolve_mode() -> str:
    """``"real"`` (the GIFs, cached or reachable) or ``"tiny"`` (generated clips)."""
    folder = config.cache_root() / "real" / "gifs"
    cached = all((folder / r.filename).is_file() for r in RESOURCES.values())
    return config.resolve("wikimedia_gifs", is_cached=cached, probe_url=config.url("wikimedia"))


def _read_gif(path, num_frames: int, size: int) -> np.ndarray:
    from PIL import Image, ImageSequence

    frames = []
    with Image.open(path) as image:
        for frame in ImageSequence.Iterator(image):
            rgb = frame.convert("RGB")
            width, height = rgb.size
            side = min(width, height)
            left, top = (width - side) // 2, (height - side) // 2
            rgb = rgb.crop((left, top, left + side, top + side)).resize((size, size),
                                                                        Image.BILINEAR)
            frames.append(np.asarray(rgb))
            if len(frames) == num_frames:
                break
    if not frames:
        raise ValueError(f"{path}: no frames could be read")
    index = np.arange(num_frames) % len(frames)  # loop a short GIF
    return np.stack([frames[i] for i in index]).astype(np.float32) / 255.0


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

    ``mode``: ``"real"`` downloads the Wikimedia GIFs (cached in ``<cache>/real/gifs``),
    ``"tiny"`` generates :data:`SYNTHETIC` clips; default :func:`resolve_mode`.
    Raises :class:`helpers.downloads.DownloadError` when a GIF cannot be fetched.
    """
    mode = mode or resolve_mode()
    if mode == "tiny":
        names = list(SYNTHETIC)
        return np.stack([synthetic_clip(n, num_frames, size) for n in names]), names
    folder = config.cache_dir("real", "gifs")
    names = list(GIFS)
    clips = [_read_gif(downloads.fetch(RESOURCES[n], folder), num_frames, size) for n in names]
    return np.stack(clips), names
