"""Generated clips with sound for tiny mode (notebook 05): the sound is tied to what moves.

Each clip is an MP4 (H.264 video, AAC audio at 48 kHz) written with PyAV, so reading it back goes
through real codecs (and their small losses), like a learner's own files:

=================  =============================================  =================================
clip               picture                                        sound
=================  =============================================  =================================
``rising_disc``    a red disc moving from bottom to top           a tone whose pitch rises with it
``bouncing_ball``  a blue ball bouncing on the floor              a click at each bounce
``pulsing_ring``   a green ring growing and shrinking 3x a second  noise whose loudness follows it
``sliding_bars``   yellow bars sliding right, steadily             a steady low hum
=================  =============================================  =================================

Deterministic; written once (atomically, under a lock) into ``config.data_dir("sound_clips")``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from helpers import atomic, config

SAMPLE_RATE = 48_000
FPS = 10
SECONDS = 3.2
SIZE = 64
CLIPS = {
    "rising_disc": "a red disc rising",
    "bouncing_ball": "a blue ball bouncing",
    "pulsing_ring": "a green ring pulsing",
    "sliding_bars": "yellow bars sliding",
}
#: Bump when the clips change (the file names carry it, so old copies are not reused).
VERSION = 1


def _frames_and_sound(name: str, rng) -> tuple[np.ndarray, np.ndarray]:
    n_frames, n_samples = int(SECONDS * FPS), int(SECONDS * SAMPLE_RATE)
    t_video = np.arange(n_frames) / FPS
    t_audio = np.arange(n_samples) / SAMPLE_RATE
    y, x = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    frames = np.zeros((n_frames, SIZE, SIZE, 3), np.float32)
    frames[:] = (0.1, 0.1, 0.15)
    if name == "rising_disc":
        height = lambda t: 0.85 - 0.7 * t / SECONDS  # noqa: E731  (image y of the centre)
        for i, t in enumerate(t_video):
            mask = (x - 0.5) ** 2 + (y - height(t)) ** 2 < 0.015
            frames[i][mask] = (0.95, 0.2, 0.1)
        freq = 300 + 1200 * (1 - (height(t_audio) - 0.15) / 0.7)  # higher disc, higher pitch
        sound = 0.4 * np.sin(2 * np.pi * np.cumsum(freq) / SAMPLE_RATE)
    elif name == "bouncing_ball":
        period = 0.8
        phase = lambda t: (t % period) / period  # noqa: E731
        for i, t in enumerate(t_video):
            h = 0.85 - 0.7 * 4 * phase(t) * (1 - phase(t))  # parabola, floor at phase 0
            mask = (x - 0.5) ** 2 + (y - h) ** 2 < 0.01
            frames[i][mask] = (0.2, 0.4, 0.95)
        sound = np.zeros(n_samples)
        for hit in np.arange(0, SECONDS, period):
            start = int(hit * SAMPLE_RATE)
            length = min(2400, n_samples - start)
            decay = np.exp(-np.arange(length) / 300.0)
            sound[start:start + length] += 0.8 * decay * rng.uniform(-1, 1, length)
    elif name == "pulsing_ring":
        radius = lambda t: 0.2 + 0.15 * np.sin(2 * np.pi * 3 * t)  # noqa: E731
        r = np.sqrt((x - 0.5) ** 2 + (y - 0.5) ** 2)
        for i, t in enumerate(t_video):
            frames[i][np.abs(r - radius(t)) < 0.05] = (0.2, 0.9, 0.3)
        loudness = (radius(t_audio) - 0.05) / 0.3
        sound = 0.5 * loudness * rng.uniform(-1, 1, n_samples)
    elif name == "sliding_bars":
        for i, t in enumerate(t_video):
            frames[i][np.sin(2 * np.pi * (4 * x - 0.5 * t)) > 0.5] = (0.95, 0.9, 0.2)
        sound = 0.3 * np.sin(2 * np.pi * 110 * t_audio) + 0.1 * np.sin(2 * np.pi * 220 * t_audio)
    else:
        raise ValueError(f"unknown clip {name!r}; choose one of {', '.join(CLIPS)}")
    return frames, np.clip(sound, -1, 1).astype(np.float32)


def write_clip(path, frames: np.ndarray, sound: np.ndarray, fps: int = FPS,
               sample_rate: int = SAMPLE_RATE) -> Path:
    """Write float frames ``[T, H, W, 3]`` in [0, 1] and mono ``sound`` in [-1, 1] as an MP4
    (H.264 + AAC) with PyAV, atomically."""
    import av

    path = Path(path)
    with atomic.atomic_path(path) as tmp:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            video = container.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4",
                                         rate=fps)
            video.width, video.height, video.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
            audio = container.add_stream("aac", rate=sample_rate)
            audio.layout = "mono"
            for image in (np.clip(frames, 0, 1) * 255).round().astype(np.uint8):
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                container.mux(video.encode(frame))
            container.mux(video.encode())
            chunk = 1024
            for start in range(0, len(sound), chunk):
                piece = sound[start:start + chunk][None, :]
                frame = av.AudioFrame.from_ndarray(piece, format="flt", layout="mono")
                frame.sample_rate, frame.pts = sample_rate, start
                container.mux(audio.encode(frame))
            container.mux(audio.encode())
    return path


def clip_paths() -> dict[str, Path]:
    """``{name: path}`` of the generated clips (written on first use)."""
    folder = config.data_dir("sound_clips")
    out = {}
    for index, name in enumerate(CLIPS):
        path = folder / f"{name}.v{VERSION}.mp4"
        if not path.exists():
            with atomic.locked(path):
                if not path.exists():
                    frames, sound = _frames_and_sound(name, np.random.default_rng(index))
                    write_clip(path, frames, sound)
        out[name] = path
    return out
