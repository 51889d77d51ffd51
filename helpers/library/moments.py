"""Find the moment a sentence describes in one long video: score it against sliding windows.

No pipeline: one video is cut into sliding windows (:meth:`helpers.library.windows.Windows.sliding`),
each window embedded (:func:`helpers.milnce.embed_videos`) and scored against the sentence
(dot product). The score over time is what the notebook plots; the best window is the moment.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from helpers.library import windows as cutter


@dataclasses.dataclass
class Moments:
    """Scores of one sentence over the windows of one video, in time order.

    ``start_s`` / ``end_s`` / ``scores``: ``[W]``; ``best``: the index of the best window.
    """

    video: str
    sentence: str
    start_s: np.ndarray
    end_s: np.ndarray
    scores: np.ndarray

    @property
    def centre_s(self) -> np.ndarray:
        return (self.start_s + self.end_s) / 2

    @property
    def best(self) -> int:
        return int(np.argmax(self.scores))

    @property
    def best_moment(self) -> tuple[float, float, float]:
        """``(start_s, end_s, score)`` of the best window."""
        i = self.best
        return float(self.start_s[i]), float(self.end_s[i]), float(self.scores[i])


def window_embeddings(model, path, windows: cutter.Windows, batch_size: int = 8):
    """Embed every window of ``path``: ``(embeddings [W, 512], start_s [W], end_s [W])``.

    Windows are decoded and embedded ``batch_size`` at a time (memory stays flat over a long
    video). Raises :class:`helpers.video.VideoError`.
    """
    from helpers import milnce

    plan = cutter.plan(path, windows)
    embeddings = np.zeros((len(plan), 512), np.float32)
    batch, rows = [], []

    def flush():
        if batch:
            clips = cutter.to_model_input(np.stack(batch))
            embeddings[rows] = milnce.embed_videos(model, clips, len(clips),
                                                   progress=False)["video_embedding"]
            batch.clear()
            rows.clear()

    for index, _, _, frames in cutter.iter_windows(path, windows, the_plan=plan):
        batch.append(frames)
        rows.append(index)
        if len(batch) == batch_size:
            flush()
    flush()
    return embeddings, plan.start_s.copy(), plan.end_s.copy()


def find_moments(model, path, sentence: str, length: float = 3.2, stride: float = 1.0,
                 fps: float = 5.0, size: int = 224, batch_size: int = 8) -> Moments:
    """Score ``sentence`` against windows of ``length`` seconds every ``stride`` seconds of
    ``path``. Returns :class:`Moments`. Raises :class:`helpers.video.VideoError`."""
    from helpers import milnce

    windows = cutter.Windows.sliding(length, stride, fps=fps, size=size)
    embeddings, start_s, end_s = window_embeddings(model, path, windows, batch_size)
    text = milnce.embed_texts(model, [sentence])[0]
    return Moments(str(path), sentence, start_s, end_s, embeddings @ text)
