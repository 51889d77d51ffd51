"""A generated narrated-video corpus: scenes of one object, narrated the way people narrate.

Each "video" is a run of consecutive scenes. A scene shows one object, described by a colour
(:data:`COLOURS`), a shape (:data:`SHAPES`) and a motion (:data:`MOTIONS`). Narrations are
emitted like those of an instructional video: often early or late relative to the scene they
describe, in paraphrases ("a ball slides to the left"), sometimes partial ("it gets bigger"),
and mixed with filler lines that describe nothing ("ok so now"). A training clip is a window of
one scene and carries the bag of the ``K`` narrations nearest in time to its centre; the
nearest one is its "time-aligned" narration (the single positive of plain NCE).

Rendering varies per video and per scene (frame size and frame rate, background plain / noisy
/ gradient, object size, start position, speed, colour shade), so a model has to learn the
concepts rather than the pixels of one renderer. The clean held-out set
(:func:`heldout_set`) has one clip per (colour, shape, motion) with the canonical caption
``"a {colour} {shape} {motion}"``.

Frames are rendered at their own size and rate (:func:`render_clip`, uint8 RGB), then brought
to the model's input by :func:`preprocess` (the same sampling and resizing the exported
module's ``video`` signature does in its graph). Everything is deterministic from a seed.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from helpers.words import tokenize  # noqa: F401  (re-exported)

#: Colour names and their nominal RGB (each rendering shifts the shade a little).
COLOURS = {
    "red": (215, 40, 35),
    "green": (40, 185, 55),
    "blue": (40, 70, 225),
    "yellow": (235, 215, 35),
    "white": (242, 242, 242),
}
SHAPES = ("circle", "square", "triangle")
MOTIONS = ("moving left", "moving right", "moving up", "moving down", "growing", "shrinking")

#: New motion word for the fine-tuning lesson; never rendered or narrated in the corpus.
NEW_MOTION = "spinning"

SHAPE_WORDS = {"circle": ("circle", "ball", "disc", "dot", "circle"),
               "square": ("square", "box", "block", "square"),
               "triangle": ("triangle", "triangle shape", "triangle")}
#: Paraphrases of each motion: (as a participle after "is" / a noun, as a verb phrase).
MOTION_WORDS = {
    "moving left": (("moving left", "moving to the left", "sliding left", "going left"),
                    ("moves left", "slides to the left", "goes to the left", "heads left")),
    "moving right": (("moving right", "moving to the right", "sliding right", "going right"),
                     ("moves right", "slides to the right", "goes to the right", "heads right")),
    "moving up": (("moving up", "moving upwards", "rising", "going up"),
                  ("moves up", "rises", "goes up", "floats upwards")),
    "moving down": (("moving down", "moving downwards", "falling", "going down"),
                    ("moves down", "falls", "goes down", "sinks downwards")),
    "growing": (("growing", "getting bigger", "expanding", "growing larger"),
                ("grows", "gets bigger", "expands", "becomes larger")),
    "shrinking": (("shrinking", "getting smaller", "contracting", "shrinking away"),
                  ("shrinks", "gets smaller", "contracts", "becomes tiny")),
}
FILLERS = (
    "ok so now", "don't forget to subscribe", "alright let's get started", "as you can see",
    "hi everyone and welcome back", "so this is the important part", "right so", "um",
    "let me show you something", "like and share if this helps", "and that's it for this one",
    "we will come back to this later", "make sure you watch till the end", "here we go",
    "thanks for watching", "so yeah", "this is really easy", "let's do it again",
)


def canonical_caption(colour: str, shape: str, motion: str) -> str:
    """The held-out set's caption: ``"a {colour} {shape} {motion}"``."""
    return f"a {colour} {shape} {motion}"


def all_concepts() -> list[tuple[str, str, str]]:
    """Every (colour, shape, motion), in a fixed order (90 of them)."""
    return [(c, s, m) for c in COLOURS for s in SHAPES for m in MOTIONS]


def narration(rng, colour: str, shape: str, motion: str) -> str:
    """One noisy narration of a scene: a paraphrase, sometimes only part of the description."""
    noun = str(rng.choice(SHAPE_WORDS[shape]))
    ing = str(rng.choice(MOTION_WORDS[motion][0]))
    verb = str(rng.choice(MOTION_WORDS[motion][1]))
    templates = (
        f"a {colour} {shape} {motion}",
        f"a {colour} {noun} {ing}",
        f"now the {colour} {noun} {verb}",
        f"here we have a {colour} {noun} that {verb}",
        f"you can see the {noun} is {colour} and it is {ing}",
        f"look the {colour} {noun} {verb} now",
        f"so the {colour} {noun} is {ing} here",
        # partial descriptions: what people actually say
        f"the {colour} {noun}",
        f"it {verb}",
        f"this {noun} is {ing}",
        f"and now it is {colour}",
    )
    weights = np.array([2, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1], np.float64)
    return templates[rng.choice(len(templates), p=weights / weights.sum())]


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Scene:
    """What one scene shows and how it is drawn (positions and sizes are fractions of the
    frame's short side, measured from the frame's centre; speeds are per second)."""

    colour: str
    shape: str
    motion: str
    rgb: tuple
    size: float          # half side / radius
    x: float
    y: float
    speed: float         # moving: displacement per second; growing/shrinking: relative rate
    background: str      # "plain" | "noisy" | "gradient"
    bg_colours: tuple    # two RGB colours
    bg_grain: int        # noise grain in pixels
    bg_static: bool      # noisy background fixed over time or flickering

    @property
    def caption(self) -> str:
        return canonical_caption(self.colour, self.shape, self.motion)


def _background_colours(rng, rgb):
    """Two background colours not too close to the object's colour (else it is invisible)."""
    out = []
    while len(out) < 2:
        if rng.random() < 0.7:
            level = rng.uniform(0, 150)
            tint = rng.uniform(-25, 25, size=3)
            colour = np.clip(level + tint, 0, 255)
        else:
            colour = rng.uniform(0, 255, size=3)
        if np.abs(colour - np.asarray(rgb)).sum() > 150:
            out.append(tuple(float(v) for v in colour))
    return tuple(out)


def random_scene(rng, colour=None, shape=None, motion=None) -> Scene:
    """A scene with every free choice (rendering included) drawn from ``rng``."""
    colour = colour or str(rng.choice(list(COLOURS)))
    shape = shape or str(rng.choice(SHAPES))
    motion = motion or str(rng.choice(MOTIONS))
    rgb = tuple(float(v) for v in np.clip(np.asarray(COLOURS[colour]) + rng.uniform(-25, 25, 3),
                                          0, 255))
    size = rng.uniform(0.09, 0.22)
    if motion in ("growing",):
        size = rng.uniform(0.05, 0.12)
    if motion in ("shrinking",):
        size = rng.uniform(0.2, 0.33)
    # Movement: speed in short sides per second; start so that the clip stays mostly in frame.
    speed = rng.uniform(0.15, 0.5) if motion.startswith("moving") else rng.uniform(0.35, 0.9)
    if motion == NEW_MOTION:
        speed = rng.uniform(0.8, 1.6) * rng.choice((-1, 1))  # radians per second
    x, y = rng.uniform(-0.2, 0.2, size=2)
    background = str(rng.choice(("plain", "noisy", "gradient")))
    return Scene(colour, shape, motion, rgb, float(size), float(x), float(y), float(speed),
                 background, _background_colours(rng, rgb), int(rng.integers(1, 5)),
                 bool(rng.random() < 0.5))


def _state(scene: Scene, t: np.ndarray, duration: float):
    """Object centre (x, y) and size at times ``t`` (seconds from the clip's start)."""
    # Centre the motion in the clip so the object crosses the middle of its path.
    tc = t - duration / 2.0
    x = np.full_like(t, scene.x)
    y = np.full_like(t, scene.y)
    size = np.full_like(t, scene.size)
    step = scene.speed * tc
    if scene.motion == "moving left":
        x = x - step
    elif scene.motion == "moving right":
        x = x + step
    elif scene.motion == "moving up":
        y = y - step
    elif scene.motion == "moving down":
        y = y + step
    elif scene.motion == "growing":
        size = scene.size * np.exp(scene.speed * t)
    elif scene.motion == "shrinking":
        size = scene.size * np.exp(-scene.speed * t)
    angle = scene.speed * t if scene.motion == NEW_MOTION else np.zeros_like(t)
    return x, y, size, angle


def render_clip(scene: Scene, times, height: int, width: int, duration: float,
                rng=None) -> np.ndarray:
    """Draw ``scene`` at ``times`` (seconds) into uint8 RGB frames ``[T, height, width, 3]``.

    Shapes are anti-aliased (coverage from a signed distance), so any frame size works.
    ``rng`` draws the noise of a noisy background (default: fixed by the scene).
    """
    times = np.asarray(times, np.float64)
    rng = rng or np.random.default_rng(0)
    short = float(min(height, width))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    xx = (xx + 0.5 - width / 2.0) / short
    yy = (yy + 0.5 - height / 2.0) / short
    cx, cy, size, angle = _state(scene, times, duration)
    dx = xx[None] - cx[:, None, None].astype(np.float32)
    dy = yy[None] - cy[:, None, None].astype(np.float32)
    if scene.motion == NEW_MOTION:  # rotate the frame's coordinates about the object
        cos = np.cos(angle)[:, None, None].astype(np.float32)
        sin = np.sin(angle)[:, None, None].astype(np.float32)
        dx, dy = cos * dx + sin * dy, -sin * dx + cos * dy
    r = size[:, None, None].astype(np.float32)
    if scene.shape == "circle":
        signed = np.sqrt(dx * dx + dy * dy) - r
    elif scene.shape == "square":
        signed = np.maximum(np.abs(dx), np.abs(dy)) - r * 0.9
    else:  # an upward-pointing equilateral triangle: inside its three edges' half-planes
        s3 = np.float32(np.sqrt(3.0) / 2.0)
        reach = r * 1.3  # circumradius; its edges lie at half of it from the centre
        signed = np.maximum(np.maximum(dy, -s3 * dx - 0.5 * dy), s3 * dx - 0.5 * dy) - reach / 2
    coverage = np.clip(0.5 - signed * short, 0.0, 1.0)[..., None]  # 1 px of anti-aliasing

    n = len(times)
    c0 = np.asarray(scene.bg_colours[0], np.float32)
    c1 = np.asarray(scene.bg_colours[1], np.float32)
    if scene.background == "plain":
        background = np.broadcast_to(c0, (n, height, width, 3))
    elif scene.background == "gradient":
        angle = rng.uniform(0, 2 * np.pi) if scene.bg_static else 0.7
        ramp = np.clip(0.5 + (np.cos(angle) * xx + np.sin(angle) * yy), 0, 1)[..., None]
        background = np.broadcast_to(c0 * (1 - ramp) + c1 * ramp, (n, height, width, 3))
    else:
        g = scene.bg_grain
        cells = (1 if scene.bg_static else n, -(-height // g), -(-width // g))
        mix = rng.random(cells, dtype=np.float32)
        mix = mix.repeat(g, axis=1).repeat(g, axis=2)[:, :height, :width, None]
        background = np.broadcast_to(c0 * (1 - mix) + c1 * mix, (n, height, width, 3))
    frames = background * (1 - coverage) + np.asarray(scene.rgb, np.float32) * coverage
    return np.clip(frames + 0.5, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# From raw frames to the model's input (the exported graph does the same in TensorFlow)
# --------------------------------------------------------------------------------------------

def frame_indices(num_frames: int, model_frames: int) -> np.ndarray:
    """Which of ``num_frames`` frames the model sees: ``model_frames`` evenly spaced indices
    (frame ``floor((i + 0.5) * num_frames / model_frames)``; short clips repeat frames)."""
    i = np.arange(model_frames, dtype=np.float64)
    return np.minimum(np.floor((i + 0.5) * num_frames / model_frames).astype(np.int64),
                      num_frames - 1)


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """uint8 or float ``[T, H, W, 3]`` -> float32 ``[T, size, size, 3]`` in [0, 1] (bilinear,
    anti-aliased when shrinking, like ``tf.image.resize(..., antialias=True)``)."""
    from PIL import Image

    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        frames = np.clip(frames * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if frames.shape[1:3] == (size, size):
        return frames.astype(np.float32) / 255.0
    out = np.empty((len(frames), size, size, 3), np.float32)
    for t, frame in enumerate(frames):
        image = Image.fromarray(frame).resize((size, size), Image.BILINEAR)
        out[t] = np.asarray(image, np.float32) / 255.0
    return out


def preprocess(frames: np.ndarray, model_frames: int, size: int) -> np.ndarray:
    """Raw clip ``[T, H, W, 3]`` -> model input float32 ``[model_frames, size, size, 3]``."""
    frames = np.asarray(frames)
    return resize_frames(frames[frame_indices(len(frames), model_frames)], size)


# --------------------------------------------------------------------------------------------
# The corpus
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Corpus:
    """Training clips with their narrations.

    ``clips``: float32 ``[N, T, S, S, 3]`` model inputs in [0, 1]; ``bags``: ``[N, K]`` indices
    into ``narrations`` (nearest first: ``bags[:, 0]`` is the time-aligned one); ``scenes``:
    the :class:`Scene` each clip shows (ground truth, never used in training);
    ``videos``: per video a dict with its scenes' spans and its timed narrations.
    """

    clips: np.ndarray
    bags: np.ndarray
    narrations: list
    scenes: list
    videos: list
    seed: int

    @property
    def bag_size(self) -> int:
        return self.bags.shape[1]

    def bag_texts(self, index: int) -> list[str]:
        return [self.narrations[j] for j in self.bags[index]]


def _render_params(rng):
    """Frame size and frame rate of one video: from thumbnails to small SD, 5 to 30 fps."""
    height = int(rng.integers(40, 161))
    aspect = rng.choice((1.0, 4 / 3, 16 / 9, 3 / 4, rng.uniform(0.6, 1.8)))
    width = int(np.clip(round(height * aspect), 32, 240))
    fps = float(rng.choice((5.0, 8.0, 10.0, 12.5, 15.0, 24.0, 25.0, 30.0, rng.uniform(5, 30))))
    return height, width, fps


#: Frames whose short side is larger are drawn at this short side (2x the model's input
#: or more): what a larger frame adds is lost in the resize to the model's size anyway.
RENDER_SHORT_SIDE = 64


def _clip_to_model(scene, rng, height, width, fps, duration, model_frames, size):
    """Render only the frames the model samples from a ``duration`` s clip at ``fps``, then
    crop (half the time to a centre square, as the notebooks do) and resize.

    A large frame is drawn directly at a smaller scale (short side
    :data:`RENDER_SHORT_SIDE`); its noise grain shrinks with it, and grain finer than a drawn
    pixel is shown as the weaker noise it averages to.
    """
    num_frames = max(1, int(round(duration * fps)))
    times = frame_indices(num_frames, model_frames) / fps
    scale = min(1.0, RENDER_SHORT_SIDE / min(height, width))
    if scale < 1.0:
        grain = scene.bg_grain * scale
        mix = min(1.0, grain)
        c0, c1 = (np.asarray(c) for c in scene.bg_colours)
        middle = (c0 + c1) / 2
        scene = dataclasses.replace(
            scene, bg_grain=max(1, int(round(grain))),
            bg_colours=(tuple(middle + (c0 - middle) * mix), tuple(middle + (c1 - middle) * mix)))
        height, width = max(1, round(height * scale)), max(1, round(width * scale))
    frames = render_clip(scene, times, height, width, duration, rng)
    if rng.random() < 0.5 and height != width:  # the course's centre square crop
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        frames = frames[:, top:top + side, left:left + side]
    return resize_frames(frames, size)


def build_corpus(seed: int, num_videos: int = 200, bag_size: int = 5, model_frames: int = 8,
                 size: int = 32, scenes_per_video=(5, 10), clips_per_scene=(1, 2),
                 early_late: float = 0.6, filler_rate: float = 0.3) -> Corpus:
    """Generate the narrated training corpus (deterministic from ``seed``).

    ``early_late``: fraction of narrations said before or after their scene (the rest during
    it); ``filler_rate``: filler lines per second. Returns a :class:`Corpus`.
    """
    if bag_size < 1:
        raise ValueError(f"bag_size must be >= 1, got {bag_size}")
    rng = np.random.default_rng(seed)
    narrations: list[str] = []
    clips, bags, scenes, videos = [], [], [], []
    for _ in range(num_videos):
        height, width, fps = _render_params(rng)
        n_scenes = int(rng.integers(scenes_per_video[0], scenes_per_video[1] + 1))
        spans, video_scenes, timed = [], [], []
        t = 0.0
        for _ in range(n_scenes):
            duration = float(rng.uniform(2.0, 5.0))
            scene = random_scene(rng)
            spans.append((t, t + duration))
            video_scenes.append(scene)
            # 0-2 narrations per scene, each early, during, or late.
            for _ in range(int(rng.choice((0, 1, 1, 1, 2)))):
                u = rng.random()
                if u < early_late / 2:
                    when = t - rng.uniform(0.5, 4.0)
                elif u < early_late:
                    when = t + duration + rng.uniform(0.5, 4.0)
                else:
                    when = t + rng.uniform(0.1, 0.9) * duration
                timed.append((when, narration(rng, scene.colour, scene.shape, scene.motion)))
            t += duration
        for _ in range(int(rng.poisson(filler_rate * t)) + 1):
            timed.append((rng.uniform(0, t), str(rng.choice(FILLERS))))
        timed.sort()
        first = len(narrations)
        narrations.extend(text for _, text in timed)
        stamps = np.array([when for when, _ in timed])
        while len(stamps) < bag_size:  # a very short video: pad the bag with fillers
            stamps = np.append(stamps, 1e9)
            narrations.append(str(rng.choice(FILLERS)))
        for (start, end), scene in zip(spans, video_scenes):
            for _ in range(int(rng.integers(clips_per_scene[0], clips_per_scene[1] + 1))):
                duration = float(rng.uniform(0.8, min(3.0, end - start)))
                clip_start = float(rng.uniform(start, end - duration))
                centre = clip_start + duration / 2
                nearest = np.argsort(np.abs(stamps - centre), kind="stable")[:bag_size]
                bags.append(first + nearest)
                scenes.append(scene)
                clips.append(_clip_to_model(scene, rng, height, width, fps, duration,
                                            model_frames, size))
        videos.append({"spans": spans, "scenes": video_scenes, "narrations": timed,
                       "height": height, "width": width, "fps": fps})
    return Corpus(np.stack(clips), np.asarray(bags, np.int64), narrations, scenes, videos, seed)


def heldout_set(seed: int, repeats: int = 1, model_frames: int = 8, size: int = 32,
                concepts=None, raw: bool = False):
    """The clean held-out set: ``repeats`` clips of every (colour, shape, motion), rendered
    afresh (new sizes, positions, speeds, backgrounds, frame sizes and rates).

    Returns ``(clips, captions, concepts)``: model inputs ``[N, T, S, S, 3]`` (or, with
    ``raw=True``, a list of raw uint8 clips at their own size and frame count), the
    canonical captions and the (colour, shape, motion) of each clip.
    """
    rng = np.random.default_rng(seed + 1_000_003)
    concepts = list(concepts or all_concepts())
    clips, captions, labels = [], [], []
    for _ in range(repeats):
        for colour, shape, motion in concepts:
            scene = random_scene(rng, colour, shape, motion)
            height, width, fps = _render_params(rng)
            duration = float(rng.uniform(1.0, 3.0))
            if raw:
                num = max(1, int(round(duration * fps)))
                clips.append(render_clip(scene, np.arange(num) / fps, height, width, duration,
                                         rng))
            else:
                clips.append(_clip_to_model(scene, rng, height, width, fps, duration,
                                            model_frames, size))
            captions.append(canonical_caption(colour, shape, motion))
            labels.append((colour, shape, motion))
    return (clips if raw else np.stack(clips)), captions, labels


def long_video(seed: int, concepts, scene_seconds: float = 4.0, height: int = 64,
               width: int = 80, fps: float = 10.0) -> dict:
    """A long video of consecutive scenes, one per (colour, shape, motion) of ``concepts``,
    each ``scene_seconds`` long: a dict laid out like :attr:`Corpus.videos`' entries
    (``spans`` in seconds, ``scenes``, ``height``, ``width``, ``fps``), so where each concept is
    on screen is known. Render it with :func:`render_video`. Deterministic from ``seed``."""
    rng = np.random.default_rng(seed + 2_000_003)
    scenes = [random_scene(rng, colour, shape, motion) for colour, shape, motion in concepts]
    spans = [(i * scene_seconds, (i + 1) * scene_seconds) for i in range(len(scenes))]
    return {"spans": spans, "scenes": scenes, "narrations": [], "height": height,
            "width": width, "fps": fps}


def render_video(video: dict, seed: int = 0):
    """Yield the frames of a corpus video (an entry of :attr:`Corpus.videos`, or
    :func:`long_video`'s) as uint8 ``[height, width, 3]``, scene after scene, at its ``fps``.

    Frame ``i`` shows time ``i / fps``; a scene gets the frames whose times fall in its span.
    A generator: pass it to :func:`helpers.video.write_video` to write a long video without
    holding it in memory.
    """
    rng = np.random.default_rng(seed)
    fps = float(video["fps"])
    for (start, end), scene in zip(video["spans"], video["scenes"]):
        first, last = int(round(start * fps)), int(round(end * fps))
        times = np.arange(first, last) / fps - start
        scene_seed = int(rng.integers(2**32))
        flicker = np.random.default_rng(scene_seed + 1)
        for t in range(0, len(times), 16):  # a few frames at a time: memory stays flat
            # A static background is drawn from the same seed for every chunk of frames.
            draw = np.random.default_rng(scene_seed) if scene.bg_static else flicker
            yield from render_clip(scene, times[t:t + 16], video["height"], video["width"],
                                   end - start, draw)


# --------------------------------------------------------------------------------------------
# Words
# --------------------------------------------------------------------------------------------

def corpus_words() -> set[str]:
    """Every word the corpus can say (narrations, fillers, captions) plus the new motion."""
    words = set()
    texts = list(FILLERS) + [canonical_caption(*c) for c in all_concepts()]
    for shape, nouns in SHAPE_WORDS.items():
        texts.extend(nouns)
    for ings, verbs in MOTION_WORDS.values():
        texts.extend(ings + verbs)
    texts.append("you can see the is and it is here we have a that look now so this the "
                 "and now it is " + NEW_MOTION)
    for text in texts:
        words.update(tokenize(text))
    return words
