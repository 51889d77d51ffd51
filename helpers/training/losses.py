"""The three training losses, for a batch of ``B`` clips, each with a bag of ``K`` narrations.

``video``: ``[B, D]`` clip embeddings; ``text``: ``[B * K, D]`` narration embeddings, clip
``i``'s bag at rows ``i * K ... i * K + K - 1``, its time-aligned narration first. Scores are
plain dot products (no temperature inside the loss), as in MIL-NCE.

* :func:`milnce`: MIL-NCE (Miech et al., CVPR 2020). For clip ``i`` the positives are its
  bag, the negatives every other clip's narrations against clip ``i`` *and* clip ``i``'s
  narrations against every other clip; the positives' scores are summed inside the log:
  ``-log(sum_P exp / (sum over the row and the column of i, positives included))``, the
  authors' formulation (the positives appear in both halves of the denominator).
* :func:`nce`: the same with a single positive, the time-aligned narration (``text[::K]``).
* :func:`max_margin`: the ranking loss ``mean over i != j of [m - s_ii + s_ij]_+ +
  [m - s_ii + s_ji]_+`` on the time-aligned pairs.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.scipy.special import logsumexp


def milnce(video, text):
    """MIL-NCE over bags: scalar loss (mean over the ``B`` clips)."""
    batch = video.shape[0]
    scores = (video @ text.T).reshape(batch, batch, -1)  # [clip, bag owner, k]
    positives = logsumexp(jnp.diagonal(scores, axis1=0, axis2=1).T, axis=1)  # [B]
    row = scores.reshape(batch, -1)                                  # clip i vs all narrations
    column = jnp.transpose(scores, (1, 0, 2)).reshape(batch, -1)     # i's narrations vs all clips
    denominator = logsumexp(jnp.concatenate([row, column], axis=1), axis=1)
    return jnp.mean(denominator - positives)


def nce(video, text):
    """NCE with the single time-aligned narration as the positive (``text`` is ``[B*K, D]``
    or already ``[B, D]``)."""
    batch = video.shape[0]
    aligned = text.reshape(batch, -1, text.shape[-1])[:, 0]
    return milnce(video, aligned)


def max_margin(video, text, margin: float = 1.0):
    """Bidirectional max-margin ranking loss on the time-aligned pairs."""
    batch = video.shape[0]
    aligned = text.reshape(batch, -1, text.shape[-1])[:, 0]
    scores = video @ aligned.T                    # [clip, narration]
    positive = jnp.diagonal(scores)
    off = 1.0 - jnp.eye(batch)
    clip_side = jnp.maximum(0.0, margin - positive[:, None] + scores) * off    # wrong narration
    text_side = jnp.maximum(0.0, margin - positive[None, :] + scores) * off    # wrong clip
    return (clip_side.sum() + text_side.sum()) / (batch * (batch - 1))


LOSSES = {"milnce": milnce, "nce": nce, "maxmargin": max_margin}
