"""The two towers in Haiku: a small S3D-style video tower and MIL-NCE's text tower.

Video (:class:`VideoTower`): input float32 ``[B, T, S, S, 3]`` RGB in [0, 1]. S3D's building
block is a *separable* 3D convolution: a spatial ``1 x k x k`` convolution followed by a temporal
``k x 1 x 1`` one (each with batch norm and ReLU), and S3D-G adds *self-gating*: the channels
of a block are multiplied by ``sigmoid(W mean(x) + b)``, a weight per channel computed from the
block's own global average. Three such blocks, a pointwise convolution to 1024 channels (the
block called ``mixed_5c`` in S3D), global average pooling (the 1024-d ``mixed_5c`` feature) and a
Linear layer to the 512-d ``video_embedding``. As in S3D, whose first convolution has stride 2
in time as well as in space, the first block halves the frames (8 -> 4 -> 2 -> 2 over the three
blocks): every later layer then costs half as much, which buys more training steps for the
same time (see :class:`helpers.training.train.TrainConfig`).

Text (:class:`TextTower`): word ids ``[B, MAX_WORDS]`` (0 = padding) -> word embeddings ->
Linear + ReLU -> max-pool over the word positions (padding included, as in MIL-NCE) -> Linear to
the 512-d ``text_embedding``.

Both towers end by scaling their output to a fixed length (:func:`scaled_unit`), so the plain
dot product of the two is a cosine over a fixed temperature (``1 / embedding_norm**2``).

Similarity is the plain dot product, as in MIL-NCE.
"""

from __future__ import annotations

import haiku as hk
import jax
import jax.numpy as jnp

from helpers.training.settings import ModelConfig, same_padding  # noqa: F401  (re-exported)


class SelfGating(hk.Module):
    """S3D-G feature gating: ``x * sigmoid(Linear(mean over T, H, W of x))`` per channel."""

    def __call__(self, x):
        weights = jax.nn.sigmoid(hk.Linear(x.shape[-1], name="gate")(x.mean(axis=(1, 2, 3))))
        return x * weights[:, None, None, None, :]


class BNReLU(hk.Module):
    """Batch norm (scale and offset) then ReLU."""

    def __init__(self, cfg: ModelConfig, name=None):
        super().__init__(name=name)
        self.cfg = cfg

    def __call__(self, x, is_training):
        x = hk.BatchNorm(True, True, self.cfg.bn_decay, eps=self.cfg.bn_eps, name="bn")(
            x, is_training)
        return jax.nn.relu(x)


class SepConv(hk.Module):
    """Separable 3D convolution: spatial ``1 x 3 x 3`` then temporal ``3 x 1 x 1`` (each
    without bias, then batch norm and ReLU), optionally gated.

    Written as a 2D convolution over every frame and a temporal convolution as one matrix
    product over three shifted copies: the same function as ``conv3d`` with kernels
    ``[1, 3, 3, Cin, C]`` and ``[3, 1, 1, C, C]`` (SAME padding), and several times faster
    to train on a CPU.
    """

    def __init__(self, channels, spatial_stride, temporal_stride, cfg, gating=True, name=None):
        super().__init__(name=name)
        self.channels, self.cfg, self.gating = channels, cfg, gating
        self.spatial_stride, self.temporal_stride = spatial_stride, temporal_stride

    def __call__(self, x, is_training):
        b, t, h, w, c = x.shape
        s, st = self.spatial_stride, self.temporal_stride
        y = hk.Conv2D(self.channels, 3, stride=s, padding="SAME", with_bias=False,
                      name="spatial")(x.reshape(b * t, h, w, c))
        y = y.reshape((b, t) + y.shape[1:])
        y = BNReLU(self.cfg, name="spatial_bn")(y, is_training)
        y = TemporalConv(self.channels, st, name="temporal")(y)
        y = BNReLU(self.cfg, name="temporal_bn")(y, is_training)
        if self.gating:
            y = SelfGating(name="gating")(y)
        return y


class TemporalConv(hk.Module):
    """``conv3d`` with a ``[3, 1, 1, Cin, channels]`` kernel, SAME padding, no bias
    (parameter ``kernel`` of shape ``[3, Cin, channels]``)."""

    def __init__(self, channels: int, stride: int, name=None):
        super().__init__(name=name)
        self.channels, self.stride = channels, stride

    def __call__(self, x):
        b, t, h, w, c = x.shape
        before, after = same_padding(t, 3, self.stride)
        padded = jnp.pad(x, ((0, 0), (before, after), (0, 0), (0, 0), (0, 0)))
        out = -(-t // self.stride)
        init = hk.initializers.TruncatedNormal(1.0 / float(3 * c) ** 0.5)
        kernel = hk.get_parameter("kernel", [3, c, self.channels], init=init)
        return sum(jnp.einsum("bthwc,cd->bthwd",
                              padded[:, k:k + self.stride * (out - 1) + 1:self.stride],
                              kernel[k]) for k in range(3))


class VideoTower(hk.Module):
    """``[B, T, S, S, 3]`` in [0, 1] -> ``{"mixed_5c": [B, 1024], "video_embedding": [B, 512]}``."""

    def __init__(self, cfg: ModelConfig, name="video"):
        super().__init__(name=name)
        self.cfg = cfg

    def __call__(self, images, is_training):
        c1, c2, c3 = self.cfg.channels
        x = SepConv(c1, 2, 2, self.cfg, gating=False, name="conv1")(images, is_training)
        x = SepConv(c2, 2, 2, self.cfg, name="block2")(x, is_training)
        x = SepConv(c3, 2, 1, self.cfg, name="block3")(x, is_training)
        x = hk.Linear(self.cfg.mixed_5c, with_bias=False, name="mixed_5c")(x)  # pointwise conv
        x = BNReLU(self.cfg, name="mixed_5c_bn")(x, is_training)
        x = SelfGating(name="mixed_5c_gating")(x)
        mixed_5c = x.mean(axis=(1, 2, 3))
        embedding = scaled_unit(hk.Linear(self.cfg.embedding, name="embedding")(mixed_5c),
                                self.cfg.embedding_norm)
        return {"mixed_5c": mixed_5c, "video_embedding": embedding}


class TextTower(hk.Module):
    """Word ids ``[B, W]`` (0 = padding) -> ``text_embedding`` ``[B, 512]``."""

    def __init__(self, cfg: ModelConfig, vocab_size: int, name="text"):
        super().__init__(name=name)
        self.cfg, self.vocab_size = cfg, vocab_size

    def __call__(self, ids):
        table = hk.get_parameter("word_embedding", [self.vocab_size, self.cfg.word_dim],
                                 init=hk.initializers.RandomNormal(self.cfg.word_init))
        words = jnp.take(table, ids, axis=0)
        hidden = jax.nn.relu(hk.Linear(self.cfg.text_hidden, name="hidden")(words))
        pooled = hidden.max(axis=1)  # over word positions, padding included (as MIL-NCE)
        return scaled_unit(hk.Linear(self.cfg.embedding, name="embedding")(pooled),
                           self.cfg.embedding_norm)


def scaled_unit(x, norm: float):
    """``x`` rescaled to length ``norm`` (the towers' last step: dot products of two outputs
    are then cosines times ``norm**2``, a fixed temperature; without it the scores start
    almost equal and training stalls for hundreds of steps)."""
    return x * (norm * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True),
                                                 1e-12)))


def make_model(cfg: ModelConfig, vocab_size: int):
    """The Haiku transforms: ``video_fn.apply(params, state, None, images, is_training)`` and
    ``text_fn.apply(params, None, ids)``, sharing one parameter dict."""

    def video(images, is_training):
        return VideoTower(cfg)(images, is_training)

    def text(ids):
        return TextTower(cfg, vocab_size)(ids)

    def both(images, ids, is_training):
        return video(images, is_training), text(ids)

    return hk.transform_with_state(both), hk.transform_with_state(video), hk.transform(text)
