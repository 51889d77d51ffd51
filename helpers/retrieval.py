"""Text-video retrieval: similarity, ranks, Recall@K and median rank, in both directions.

Conventions (printed in the notebooks too):

* ``similarity[i, j]`` = score of text ``i`` against video ``j`` (rows: texts, columns:
  videos). MIL-NCE scores with the plain dot product.
* A rank is 1-based: rank 1 means the correct item scored highest.
* Ties count against the query: an item whose score equals the correct item's is counted as
  ranked above it. A model that gives every item the same score thus gets the worst rank,
  never a lucky rank 1.
* Recall@K is in **percent** (0-100), as in the MIL-NCE paper's tables; the median rank
  ("MedR") is in ranks (lower is better).

Ground truth: by default text ``i`` belongs to video ``i`` (square matrix). With several
captions per video pass ``text_to_video=[video index of each text]``.
"""

from __future__ import annotations

import numpy as np

from helpers import checks, config

DEFAULT_KS = (1, 5, 10)
DIRECTIONS = ("text_to_video", "video_to_text")


def similarity(text_embedding, video_embedding) -> np.ndarray:
    """Dot products: ``[Nt, D] x [Nv, D] -> [Nt, Nv]`` (float64 for exact ranking)."""
    text_embedding = np.asarray(text_embedding, dtype=np.float64)
    video_embedding = np.asarray(video_embedding, dtype=np.float64)
    if text_embedding.ndim != 2 or video_embedding.ndim != 2:
        raise ValueError(f"expected 2-D embeddings, got {text_embedding.shape} and "
                         f"{video_embedding.shape}")
    if text_embedding.shape[1] != video_embedding.shape[1]:
        raise ValueError(f"embedding sizes differ: texts {text_embedding.shape[1]}, videos "
                         f"{video_embedding.shape[1]}")
    checks.check_finite(text_embedding, "text_embedding (similarity input)")
    checks.check_finite(video_embedding, "video_embedding (similarity input)")
    return text_embedding @ video_embedding.T


def _correct_matrix(shape, text_to_video) -> np.ndarray:
    """Boolean ``[Nt, Nv]``: which video is correct for each text."""
    n_texts, n_videos = shape
    if text_to_video is None:
        if n_texts != n_videos:
            raise ValueError(f"similarity is {n_texts} x {n_videos}: not square, so pass "
                             f"text_to_video (the video index of each text)")
        return np.eye(n_texts, dtype=bool)
    targets = np.asarray(text_to_video, dtype=np.int64)
    if targets.shape != (n_texts,):
        raise ValueError(f"text_to_video needs one video index per text ({n_texts}), got "
                         f"shape {targets.shape}")
    if targets.size and (targets.min() < 0 or targets.max() >= n_videos):
        raise ValueError(f"text_to_video indexes videos 0..{n_videos - 1}, got "
                         f"{targets.min()}..{targets.max()}")
    correct = np.zeros(shape, dtype=bool)
    correct[np.arange(n_texts), targets] = True
    return correct


def ranks_from_correct(scores, correct) -> np.ndarray:
    """1-based rank of the best correct item per query row (ties count against the query).

    ``scores``: ``[Nq, Ng]``; ``correct``: boolean ``[Nq, Ng]`` with at least one True per row.
    rank = 1 + number of wrong items scoring >= the best correct item.
    NaN or infinite scores raise :class:`helpers.checks.NonFiniteError` (a NaN compares false
    with everything, so it would otherwise rank every query first).
    """
    scores = checks.check_finite(np.asarray(scores, dtype=np.float64),
                                 "similarity matrix (rows: queries)")
    correct = np.asarray(correct, dtype=bool)
    if scores.shape != correct.shape:
        raise ValueError(f"scores {scores.shape} and correct {correct.shape} differ in shape")
    if not correct.any(axis=1).all():
        missing = np.flatnonzero(~correct.any(axis=1))
        raise ValueError(f"queries {missing.tolist()} have no correct item")
    best = np.where(correct, scores, -np.inf).max(axis=1, keepdims=True)
    above = (scores >= best) & ~correct
    return 1 + above.sum(axis=1)


def ranks(similarity_matrix, direction: str = "text_to_video", text_to_video=None) -> np.ndarray:
    """Ranks of the correct items.

    ``text_to_video``: rows are queries (texts), one rank per text. ``video_to_text``: columns
    are queries (videos), one rank per video, of its best-ranked caption.
    """
    scores = np.asarray(similarity_matrix, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"similarity must be 2-D [texts, videos], got shape {scores.shape}")
    correct = _correct_matrix(scores.shape, text_to_video)
    if direction == "text_to_video":
        return ranks_from_correct(scores, correct)
    if direction == "video_to_text":
        return ranks_from_correct(scores.T, correct.T)
    raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")


def recall_at_k(rank_values, k: int) -> float:
    """Percent (0-100) of queries whose correct item is within the top ``k``."""
    rank_values = np.asarray(rank_values)
    if rank_values.size == 0:
        raise ValueError("no ranks given")
    return float(100.0 * np.mean(rank_values <= k))


def metrics(similarity_matrix, direction: str = "text_to_video", text_to_video=None,
            ks=DEFAULT_KS) -> dict[str, float]:
    """``{"R@1", "R@5", "R@10"}`` in percent and ``"MedR"`` (median rank) for one direction."""
    rank_values = ranks(similarity_matrix, direction, text_to_video)
    out = {f"R@{k}": recall_at_k(rank_values, k) for k in ks}
    out["MedR"] = float(np.median(rank_values))
    return out


def both_directions(similarity_matrix, text_to_video=None, ks=DEFAULT_KS) -> dict[str, dict]:
    """``{"text_to_video": metrics(...), "video_to_text": metrics(...)}``."""
    return {direction: metrics(similarity_matrix, direction, text_to_video, ks)
            for direction in DIRECTIONS}


def format_metrics(results: dict[str, dict], title: str | None = None, standin=None) -> str:
    """A small text table of :func:`both_directions` output (recalls in %, MedR in ranks).

    Its first line is the stand-in label (:func:`helpers.config.standin_label`, from ``standin``:
    resource names or a name -> mode dict; by default every resource resolved to tiny) whenever
    stand-ins made the numbers.
    """
    keys = list(next(iter(results.values())).keys())
    header = f"{'direction':<16}" + "".join(f"{k:>8}" for k in keys)
    label = config.standin_label(standin)
    lines = [f"[{label.upper()}]"] if label else []
    lines += [title] if title else []
    lines.append(header)
    for direction, values in results.items():
        lines.append(f"{direction:<16}" + "".join(f"{values[k]:>8.1f}" for k in keys))
    lines.append("(R@K in percent of queries; MedR = median rank, 1 is best)")
    return "\n".join(lines)


def top_k(similarity_matrix, k: int = 5, axis: int = 1):
    """Indices and scores of the ``k`` best items per query, best first.

    ``axis=1``: for each text (row), the best videos; ``axis=0``: for each video, the best texts.
    Returns ``(indices [Nq, k], scores [Nq, k])``; a stable sort keeps earlier items first on ties.
    """
    scores = np.asarray(similarity_matrix, dtype=np.float64)
    if axis == 0:
        scores = scores.T
    k = min(k, scores.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(scores, order, axis=1)


def zero_shot_accuracy(similarity_matrix, labels) -> float:
    """Zero-shot classification: ``similarity [classes, videos]`` of class prompts vs videos.

    Each video gets the class whose prompt scores highest; returns the percent that match
    ``labels`` (the true class index of each video).
    """
    scores = checks.check_finite(np.asarray(similarity_matrix, dtype=np.float64),
                                 "similarity matrix (rows: class prompts)")
    labels = np.asarray(labels)
    if labels.shape != (scores.shape[1],):
        raise ValueError(f"need one label per video ({scores.shape[1]}), got {labels.shape}")
    return float(100.0 * np.mean(np.argmax(scores, axis=0) == labels))
