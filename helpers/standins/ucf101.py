"""A generated mini-UCF101 in the official formats, for tiny mode and the tests.

Layout (like the real thing)::

    <root>/UCF-101/<Class>/v_<Class>_gGG_cCC.avi    layout="official" (the UCF101.rar release)
    <root>/UCF101/v_<Class>_gGG_cCC.avi             layout="flat" (the zip mirror)
    <root>/ucfTrainTestlist/classInd.txt            "<index> <Class>", 1-based
    <root>/ucfTrainTestlist/trainlist0N.txt         "<Class>/v_..._gGG_cCC.avi <index>"
    <root>/ucfTrainTestlist/testlist0N.txt          "<Class>/v_..._gGG_cCC.avi"

Split files use CRLF line endings (as some circulating copies do) unless ``crlf=False``.
Splits follow the official group rule: split N tests on groups 7N-6..7N, so with the default
groups (1, 8, 15, 22) every split tests on one group and trains on the other three.

The videos are MPEG-4 AVIs (UCF101 is Xvid in AVI), a couple of seconds long at 25 or 30 fps
(so the re-encoding to 25 fps has something to do). Each class is one coloured shape with its
own motion (a red disc moving right, a green square moving left, ...); groups vary the
background, size and speed, clips the position and noise. The classes are so different that
even features of a randomly initialised network separate them: this data checks that the
pipeline runs and is wired correctly, it says nothing about a model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from helpers import atomic

#: (class name, RGB colour, shape, motion). Names are CamelCase like UCF101's.
CLASS_SPECS = (
    ("RedDiscRight", (225, 40, 40), "disc", "right"),
    ("GreenSquareLeft", (40, 200, 60), "square", "left"),
    ("BlueBarDown", (50, 80, 235), "bar", "down"),
    ("YellowTriangleUp", (235, 220, 40), "triangle", "up"),
    ("MagentaRingSpin", (220, 50, 220), "ring", "spin"),
    ("CyanCrossPulse", (40, 220, 225), "cross", "pulse"),
    ("WhiteDiscLeft", (240, 240, 240), "disc", "left"),
    ("OrangeSquareDown", (245, 140, 30), "square", "down"),
)
DEFAULT_GROUPS = (1, 8, 15, 22)
MARKER = ".mini_ucf101.json"
SPLITS_FOLDER = "ucfTrainTestlist"
LAYOUT_FOLDERS = {"official": "UCF-101", "flat": "UCF101"}


@dataclasses.dataclass(frozen=True)
class MiniUCF101:
    """Where a generated mini-UCF101 lives and what it holds."""

    root: Path
    videos_dir: Path
    splits_dir: Path
    classes: tuple[str, ...]
    videos: tuple[str, ...]  # names without extension
    layout: str


def _test_groups(split: int) -> range:
    return range(7 * (split - 1) + 1, 7 * split + 1)


def _shape_mask(shape: str, yy, xx, cy, cx, r):
    dy, dx = yy - cy, xx - cx
    if shape == "disc":
        return dy * dy + dx * dx <= r * r
    if shape == "square":
        return (np.abs(dy) <= r) & (np.abs(dx) <= r)
    if shape == "bar":
        return (np.abs(dy) <= r / 3) & (np.abs(dx) <= 2 * r)
    if shape == "triangle":
        return (dy >= -r) & (dy <= r) & (np.abs(dx) <= (dy + r) / 2)
    if shape == "ring":
        d2 = dy * dy + dx * dx
        return (d2 <= r * r) & (d2 >= (0.55 * r) ** 2)
    if shape == "cross":
        vertical = (np.abs(dx) <= r / 3) & (np.abs(dy) <= r)
        return vertical | ((np.abs(dy) <= r / 3) & (np.abs(dx) <= r))
    raise ValueError(f"unknown shape {shape!r}")


def render_video(spec, num_frames: int, frame_size=(120, 160), group: int = 1, clip: int = 1,
                 seed: int = 0) -> np.ndarray:
    """Frames of one video of class ``spec`` (an entry of :data:`CLASS_SPECS`).

    Returns ``[num_frames, H, W, 3] uint8``. Deterministic in (spec, group, clip, seed).
    """
    name, colour, shape, motion = spec
    height, width = frame_size
    group_rng = np.random.default_rng([seed, group, 7])  # the "actor": shared by a group
    rng = np.random.default_rng([seed, group, clip, sum(map(ord, name))])
    # A dark grey background with a slight tint, and a large object: the class (colour, shape,
    # motion) dominates each frame, the group (background, size, speed) varies it.
    background = group_rng.integers(30, 70) + group_rng.integers(-8, 9, size=3)
    radius = min(height, width) * group_rng.uniform(0.18, 0.26)
    speed = group_rng.uniform(0.6, 1.0) * width / 40.0  # pixels per frame
    cy, cx = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    noise_rng = np.random.default_rng([seed, group, clip, 99])
    # Sensor-like noise: a few noise images cycled (drawing fresh noise per frame is slow).
    noise = noise_rng.normal(0, 6, size=(4, height, width, 3)).astype(np.float32)
    base = background.astype(np.float32)
    for t in range(num_frames):
        y, x, r = cy, cx, radius
        if motion == "right":
            x = (cx + speed * t) % width
        elif motion == "left":
            x = (cx - speed * t) % width
        elif motion == "down":
            y = (cy + speed * t) % height
        elif motion == "up":
            y = (cy - speed * t) % height
        elif motion == "spin":
            angle = 0.25 * t * speed / 4
            y = height / 2 + 0.25 * height * np.sin(angle)
            x = width / 2 + 0.25 * width * np.cos(angle)
        elif motion == "pulse":
            r = radius * (1.0 + 0.45 * np.sin(0.4 * t))
        frame = base + noise[t % len(noise)]
        frame[_shape_mask(shape, yy, xx, y, x, r)] = colour
        np.clip(frame, 0, 255, out=frame)
        frames[t] = frame
    return frames


def write_avi(path: str | os.PathLike, frames: np.ndarray, fps: int = 25) -> Path:
    """Write ``[N, H, W, 3] uint8`` frames as an MPEG-4 AVI (atomically: temp name, rename)."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    try:
        with av.open(str(tmp), "w", format="avi") as container:
            stream = container.add_stream("mpeg4", rate=fps)
            stream.width = frames.shape[2]
            stream.height = frames.shape[1]
            stream.pix_fmt = "yuv420p"
            stream.bit_rate = 1_500_000
            for frame in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _settings(**kwargs) -> dict:
    return {key: list(v) if isinstance(v, tuple) else v for key, v in sorted(kwargs.items())}


def make_mini_ucf101(root: str | os.PathLike | None = None, *, num_classes: int = 5,
                     groups=DEFAULT_GROUPS, clips_per_group: int = 2, frame_size=(120, 160),
                     seconds=(1.2, 2.0), fps=(25, 30), layout: str = "official",
                     crlf: bool = True, seed: int = 0) -> MiniUCF101:
    """Generate (or reuse) a mini-UCF101 and return where it is.

    ``root``: target folder (default: a folder under ``config.data_dir('mini_ucf101')`` named
    after the settings). ``groups``: group numbers in 1..25 (split N tests on 7N-6..7N).
    ``seconds``: range of video lengths; ``fps``: frame rates cycled over the groups.
    ``layout``: ``official`` (class folders) or ``flat`` (the zip mirror). A folder already
    generated with the same settings is reused (a marker file records them); the dataset is
    built in a temporary folder and renamed, so it is never seen half-made.
    """
    if layout not in LAYOUT_FOLDERS:
        raise ValueError(f"layout must be one of {tuple(LAYOUT_FOLDERS)}, got {layout!r}")
    if not 2 <= num_classes <= len(CLASS_SPECS):
        raise ValueError(f"num_classes must be 2..{len(CLASS_SPECS)}, got {num_classes}")
    groups = tuple(sorted(set(int(g) for g in groups)))
    if not groups or min(groups) < 1 or max(groups) > 25:
        raise ValueError(f"groups must lie in 1..25, got {groups}")
    settings = _settings(num_classes=num_classes, groups=groups, clips_per_group=clips_per_group,
                         frame_size=tuple(frame_size), seconds=tuple(seconds), fps=tuple(fps),
                         layout=layout, crlf=crlf, seed=seed, version=1)
    if root is None:
        from helpers import config

        digest = hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:10]
        root = config.data_dir("mini_ucf101") / f"{layout}-{digest}"
    root = Path(root)
    specs = CLASS_SPECS[:num_classes]
    classes = tuple(sorted(s[0] for s in specs))  # classInd.txt is alphabetical, like UCF101's
    spec_of = {s[0]: s for s in specs}
    names = tuple(f"v_{c}_g{g:02d}_c{k:02d}" for c in classes for g in groups
                  for k in range(1, clips_per_group + 1))
    result = MiniUCF101(root, root / LAYOUT_FOLDERS[layout], root / SPLITS_FOLDER, classes,
                        names, layout)
    # One builder at a time (other processes wait, then find the finished dataset).
    root.parent.mkdir(parents=True, exist_ok=True)
    with atomic.locked(root):
        marker = root / MARKER
        if marker.is_file() and json.loads(marker.read_text()) == settings:
            return result
        if root.exists() and any(root.iterdir()):
            raise FileExistsError(f"{root} exists and is not a mini-UCF101 made with these settings; "
                                  "choose another folder")

        building = root.with_name(f".tmp-{root.name}-{os.getpid()}")
        shutil.rmtree(building, ignore_errors=True)
        videos_dir = building / LAYOUT_FOLDERS[layout]
        low, high = seconds
        jobs = []
        for class_name in classes:
            for gi, group in enumerate(groups):
                rate = fps[gi % len(fps)]
                for clip in range(1, clips_per_group + 1):
                    length_rng = np.random.default_rng([seed, group, clip, len(class_name)])
                    num_frames = max(2, int(round(length_rng.uniform(low, high) * rate)))
                    name = f"v_{class_name}_g{group:02d}_c{clip:02d}.avi"
                    folder = videos_dir / class_name if layout == "official" else videos_dir
                    jobs.append((folder / name, spec_of[class_name], num_frames, group, clip, rate))

        def make(job):
            path, spec, num_frames, group, clip, rate = job
            write_avi(path, render_video(spec, num_frames, tuple(frame_size), group, clip, seed), rate)

        with ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1))) as pool:
            list(pool.map(make, jobs))  # list(): re-raises the first error
        _write_split_files(building / SPLITS_FOLDER, classes, groups, clips_per_group, crlf)
        (building / MARKER).write_text(json.dumps(settings))
        root.parent.mkdir(parents=True, exist_ok=True)
        try:
            if root.exists():
                root.rmdir()  # empty (checked above)
            os.replace(building, root)
        except OSError:
            # Another process (a parallel test worker) finished the same dataset first: use it.
            shutil.rmtree(building, ignore_errors=True)
            if not (marker.is_file() and json.loads(marker.read_text()) == settings):
                raise
        return result


def _write_split_files(folder: Path, classes, groups, clips_per_group: int, crlf: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    newline = "\r\n" if crlf else "\n"

    def write(name, lines):
        (folder / name).write_bytes("".join(line + newline for line in lines).encode("ascii"))

    write("classInd.txt", [f"{i} {c}" for i, c in enumerate(classes, start=1)])
    for split in (1, 2, 3):
        held_out = _test_groups(split)
        train, test = [], []
        for label, class_name in enumerate(classes, start=1):
            for group in groups:
                for clip in range(1, clips_per_group + 1):
                    path = f"{class_name}/v_{class_name}_g{group:02d}_c{clip:02d}.avi"
                    if group in held_out:
                        test.append(path)
                    else:
                        train.append(f"{path} {label}")
        write(f"trainlist{split:02d}.txt", train)
        write(f"testlist{split:02d}.txt", test)
