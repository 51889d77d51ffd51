"""The model's sizes, in a module without JAX (so cache keys can be computed cheaply)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Sizes of both towers (and the video input the tower is trained at)."""

    frames: int = 8               # T of the model's input
    size: int = 32                # S: frames are S x S
    channels: tuple = (16, 32, 64)
    mixed_5c: int = 1024
    embedding: int = 512
    word_dim: int = 64
    text_hidden: int = 256
    max_words: int = 16
    bn_decay: float = 0.9
    bn_eps: float = 1e-3
    word_init: float = 0.1       # std of the initial word vectors (unseen words stay small)
    embedding_norm: float = 3.8  # length of both embeddings: dot product = cosine / 0.07


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's SAME padding (before, after) of one axis: output ``ceil(size / stride)``."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2
