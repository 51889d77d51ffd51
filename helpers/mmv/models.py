"""Haiku S3D-G and TSM-ResNet50 v2 (width 1 and 2) with MMV's two video heads, in eval mode.

Written from the architecture description in the course's notes (notebook 03) so that the
parameter and state trees are exactly those of DeepMind's MMV checkpoints: the same module
paths (``text_audio_video/visual_module/~/S3D/...``,
``text_audio_video/~_get_pair_embedding_heads/vid2audio_embd/...``), names, shapes and dtypes.
Haiku derives a path from where a module is built: inside ``__call__`` gives ``parent/child``,
inside ``__init__`` gives ``parent/~/child``, inside another method ``m`` gives
``parent/~m/child``; the modules below are built where the official ones were.

Batch norm is evaluation-only: ``y = (x - mean_ema.average) * scale * rsqrt(var_ema.average
+ 1e-5) + offset``. This module imports JAX and Haiku; ``helpers.mmv`` imports it lazily.
"""

from __future__ import annotations

import functools

import haiku as hk
import jax
import jax.numpy as jnp

from helpers.mmv.checkpoint import BACKBONES
from helpers.mmv.inputs import space_to_depth

BN_EPS = 1e-5
#: TSM shifts 1/8 of the channels one frame forward and 1/8 one frame back.
TSM_SHIFT_FRACTION = 0.125


# --------------------------------------------------------------------------- shared pieces


class _EmaAverage(hk.Module):
    """The state one moving average keeps (``hidden``, ``average``, ``counter``); returns ``average``."""

    def __call__(self, shape, init):
        hk.get_state("hidden", shape, jnp.float32, init=init)
        hk.get_state("counter", (), jnp.int32, init=jnp.zeros)
        return hk.get_state("average", shape, jnp.float32, init=init)


class _CrossReplicaBatchNorm(hk.Module):
    """Eval-mode batch norm named like the original (Haiku turns the class name into
    ``__cross_replica_batch_norm``, then ``_1``, ``_2``... within one parent)."""

    def __init__(self, name=None):
        super().__init__(name=name)
        self._mean_ema = _EmaAverage(name="mean_ema")
        self._var_ema = _EmaAverage(name="var_ema")

    def __call__(self, x):
        shape = (1,) * (x.ndim - 1) + (x.shape[-1],)  # keepdims shapes, as stored
        scale = hk.get_parameter("scale", shape, jnp.float32, init=jnp.ones)
        offset = hk.get_parameter("offset", shape, jnp.float32, init=jnp.zeros)
        mean = self._mean_ema(shape, jnp.zeros)
        var = self._var_ema(shape, jnp.ones)
        return (x - mean) * (scale * jax.lax.rsqrt(var + BN_EPS)) + offset


def _bn_relu(x):
    return jax.nn.relu(_CrossReplicaBatchNorm()(x))


def _max_pool(x, window, strides):
    """SAME max-pool over the middle axes of a channels-last tensor."""
    return hk.max_pool(x, window_shape=(1, *window, 1), strides=(1, *strides, 1), padding="SAME")


# --------------------------------------------------------------------------- S3D-G


class _Unit3D(hk.Module):
    """conv3d -> BN -> ReLU; ``separable``: (1,k,k) conv -> BN -> ReLU -> (k,1,1) conv -> BN -> ReLU.
    ``gating``: then multiply by ``sigmoid(Linear(mean over T, H, W))`` (S3D-G's self-gating)."""

    def __init__(self, channels, kernel, separable=False, gating=False, name=None):
        super().__init__(name=name)
        if separable:
            self._convs = [
                hk.Conv3D(channels, (1, kernel, kernel), padding="SAME", with_bias=False),
                hk.Conv3D(channels, (kernel, 1, 1), padding="SAME", with_bias=False),
            ]
        else:
            self._convs = [hk.Conv3D(channels, kernel, padding="SAME", with_bias=False)]
        self._gating = gating

    def __call__(self, x):
        for conv in self._convs:
            x = _bn_relu(conv(x))
        if self._gating:
            gate = hk.Linear(x.shape[-1], name="self_gating")(jnp.mean(x, axis=(1, 2, 3)))
            x = x * jax.nn.sigmoid(gate)[:, None, None, None, :]
        return x


class _MixedBlock(hk.Module):
    """Inception block: 1x1 | 1x1 -> sep 3 | 1x1 -> sep 3 | max-pool 3 -> 1x1, concatenated."""

    def __init__(self, c0, c1a, c1b, c2a, c2b, c3, name=None):
        super().__init__(name=name)
        self._channels = (c0, c1a, c1b, c2a, c2b, c3)

    def __call__(self, x):
        c0, c1a, c1b, c2a, c2b, c3 = self._channels
        branch_0 = _Unit3D(c0, 1, gating=True, name="Branch_0_Conv2d_0a_1x1")(x)
        branch_1 = _Unit3D(c1a, 1, name="Branch_1_Conv2d_0a_1x1")(x)
        branch_1 = _Unit3D(c1b, 3, separable=True, gating=True, name="Branch_1_Conv2d_0b_3x3")(branch_1)
        branch_2 = _Unit3D(c2a, 1, name="Branch_2_Conv2d_0a_1x1")(x)
        branch_2 = _Unit3D(c2b, 3, separable=True, gating=True, name="Branch_2_Conv2d_0b_3x3")(branch_2)
        branch_3 = _max_pool(x, (3, 3, 3), (1, 1, 1))
        branch_3 = _Unit3D(c3, 1, gating=True, name="Branch_3_Conv2d_0b_1x1")(branch_3)
        return jnp.concatenate([branch_0, branch_1, branch_2, branch_3], axis=-1)


#: (name, kind, arguments) of S3D-G's layers in order; kinds: unit, pool, mixed.
S3D_LAYERS = (
    ("Conv2d_1a_7x7", "unit", dict(channels=64, kernel=(2, 4, 4))),
    ("MaxPool_2a_3x3", "pool", ((1, 3, 3), (1, 2, 2))),
    ("Conv2d_2b_1x1", "unit", dict(channels=64, kernel=1)),
    ("Conv2d_2c_3x3", "unit", dict(channels=192, kernel=3, separable=True, gating=True)),
    ("MaxPool_3a_3x3", "pool", ((1, 3, 3), (1, 2, 2))),
    ("Mixed_3b", "mixed", (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", "mixed", (128, 128, 192, 32, 96, 64)),
    ("MaxPool_4a_3x3", "pool", ((3, 3, 3), (2, 2, 2))),
    ("Mixed_4b", "mixed", (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", "mixed", (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", "mixed", (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", "mixed", (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", "mixed", (256, 160, 320, 32, 128, 128)),
    ("MaxPool_5a_2x2", "pool", ((2, 2, 2), (2, 2, 2))),
    ("Mixed_5b", "mixed", (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", "mixed", (384, 192, 384, 48, 128, 128)),
)


class S3D(hk.Module):
    """S3D-G on a space-to-depth clip ``[B, T/2, H/2, W/2, 24]``; returns (Mixed_5c, endpoints)."""

    def __call__(self, x):
        endpoints = {}
        for name, kind, args in S3D_LAYERS:
            if kind == "unit":
                x = _Unit3D(name=name, **args)(x)
            elif kind == "pool":
                x = _max_pool(x, *args)
            else:
                x = _MixedBlock(*args, name=name)(x)
            endpoints[name] = x
        return x, endpoints


# --------------------------------------------------------------------------- TSM-ResNet50 v2


def temporal_shift(x, num_frames, fraction=TSM_SHIFT_FRACTION):
    """Temporal shift of ``[B*T, H, W, C]`` (frames of a clip are consecutive rows).

    With ``n = int(fraction * C)``, frame ``t`` of the output is the concatenation of
    ``x[t+1][C-n:]``, ``x[t][n:C-n]`` and ``x[t-1][:n]`` (zeros past the clip's ends): a
    2D convolution that follows then sees its neighbours in time at no extra cost.
    """
    bt, h, w, c = x.shape
    n = int(c * fraction)
    x = x.reshape(bt // num_frames, num_frames, h, w, c)
    from_next = jnp.pad(x[:, 1:, :, :, c - n:], ((0, 0), (0, 1), (0, 0), (0, 0), (0, 0)))
    from_prev = jnp.pad(x[:, :-1, :, :, :n], ((0, 0), (1, 0), (0, 0), (0, 0), (0, 0)))
    shifted = jnp.concatenate([from_next, x[:, :, :, :, n:c - n], from_prev], axis=-1)
    return shifted.reshape(bt, h, w, c)


def _conv2d(channels, kernel, stride=1, name=None):
    return hk.Conv2D(channels, kernel, stride=stride, padding="SAME", with_bias=False, name=name)


class _TSMBlock(hk.Module):
    """Pre-activation bottleneck: BN-ReLU, [shortcut conv], shift, 1x1, BN-ReLU, 3x3/s, BN-ReLU, 1x1."""

    def __init__(self, channels, stride, projection, num_frames, name=None):
        super().__init__(name=name)
        self._channels, self._stride = channels, stride
        self._projection, self._num_frames = projection, num_frames

    def __call__(self, x):
        preact = _bn_relu(x)
        shortcut = x
        if self._projection:
            shortcut = _conv2d(self._channels, 1, self._stride, name="shortcut_conv")(preact)
        residual = temporal_shift(preact, self._num_frames)
        residual = _bn_relu(_conv2d(self._channels // 4, 1, name="conv_0")(residual))
        residual = _bn_relu(_conv2d(self._channels // 4, 3, self._stride, name="conv_1")(residual))
        residual = _conv2d(self._channels, 1, name="conv_2")(residual)
        return shortcut + residual


class _TSMUnit(hk.Module):
    def __init__(self, blocks, channels, stride, num_frames, name=None):
        super().__init__(name=name)
        self._blocks, self._channels = blocks, channels
        self._stride, self._num_frames = stride, num_frames

    def __call__(self, x):
        for index in range(self._blocks):
            x = _TSMBlock(self._channels, self._stride if index == 0 else 1, index == 0,
                          self._num_frames, name=f"block_{index}")(x)
        return x


TSM_UNITS = ((3, 256, 1), (4, 512, 2), (6, 1024, 2), (3, 2048, 2))  # (blocks, Cout, stride)


class TSMResNetV2(hk.Module):
    """TSM-ResNet50 v2 on a clip ``[B, T, H, W, 3]``; returns (``[B, 2048 * width]``, endpoints).

    Endpoints are ``[B, T, h, w, C]``: the stem (7x7/2 conv, 3x3/2 max-pool) and the residual
    stream after each unit (before the final BN + ReLU).
    """

    def __init__(self, width_mult=1, name=None):
        super().__init__(name=name)
        self._width = width_mult

    def __call__(self, clip):
        b, t, h, w, c = clip.shape
        to_clip = lambda y: y.reshape(b, t, *y.shape[1:])  # noqa: E731
        x = clip.reshape(b * t, h, w, c)  # frames are images; the shift mixes them in time
        x = _conv2d(64 * self._width, 7, 2, name="tsm_resnet_stem")(x)
        x = _max_pool(x, (3, 3), (2, 2))
        endpoints = {"tsm_resnet_stem": to_clip(x)}
        for index, (blocks, channels, stride) in enumerate(TSM_UNITS):
            name = f"tsm_resnet_unit_{index}"
            x = _TSMUnit(blocks, channels * self._width, stride, t, name=name)(x)
            endpoints[name] = to_clip(x)
        x = _bn_relu(x)
        features = jnp.mean(to_clip(jnp.mean(x, axis=(1, 2))), axis=1)  # space per frame, then time
        return features, endpoints


# --------------------------------------------------------------------------- heads and root


class _VideoToAudioHead(hk.Module):
    """The "va" space (512): Linear+b -> BN -> ReLU -> Linear -> BN."""

    def __call__(self, x):
        x = hk.Linear(512, name="final_projection_inner")(x)
        x = _bn_relu(x)
        x = hk.Linear(512, with_bias=False, name="final_projection")(x)
        return _CrossReplicaBatchNorm()(x)


class _VideoToTextHead(hk.Module):
    """The "vat" space (256), built on top of va: ReLU -> Linear+b -> BN."""

    def __call__(self, va):
        x = hk.Linear(256, name="final_projection")(jax.nn.relu(va))
        return _CrossReplicaBatchNorm()(x)


class _VisualModule(hk.Module):
    def __init__(self, backbone, name="visual_module"):
        super().__init__(name=name)
        self._backbone = backbone
        if backbone == "s3d":
            self._net = S3D(name="S3D")
        else:
            self._net = TSMResNetV2(width_mult=2 if backbone == "tsm_resnet_x2" else 1,
                                    name="TSMResNetV2")

    def __call__(self, clip):
        if self._backbone == "s3d":
            features, endpoints = self._net(space_to_depth(clip))
            return jnp.mean(features, axis=(1, 2, 3)), endpoints
        return self._net(clip)


class TextAudioVideo(hk.Module):
    """The video half of MMV's ``text_audio_video`` model: backbone + va + vat heads."""

    def __init__(self, backbone, name="text_audio_video"):
        super().__init__(name=name)
        self._backbone = backbone

    def _get_pair_embedding_heads(self):
        return _VideoToAudioHead(name="vid2audio_embd"), _VideoToTextHead(name="vis_embd")

    def __call__(self, clip):
        vid_repr, endpoints = _VisualModule(self._backbone)(clip)
        va_head, vat_head = self._get_pair_embedding_heads()
        va = va_head(vid_repr)
        return {
            "vid_repr": vid_repr,
            "va": va,
            "vat": vat_head(va),
            # Cheap diagnostics (a reduction each), used by the known-answer tests:
            "endpoint_means": {k: jnp.mean(v, axis=(1, 2, 3)) for k, v in endpoints.items()},
            "first_endpoint_slice": next(iter(endpoints.values()))[:, :2, :4, :4, :],
        }


@functools.lru_cache(maxsize=None)
def transformed(backbone: str) -> hk.TransformedWithState:
    """``hk.transform_with_state`` of the model: ``apply(params, state, clip) -> (outputs, state)``.

    Cached, so every ``jax.jit(transformed(b).apply)`` shares JAX's compilation cache.

    ``clip``: ``[B, T, H, W, 3]`` float32 in [0, 1] (even T, H, W for S3D). Outputs:
    ``vid_repr [B, D]``, ``va [B, 512]``, ``vat [B, 256]``, ``endpoint_means {name: [B, C]}``,
    ``first_endpoint_slice [B, <=2, <=4, <=4, C]``.
    """
    if backbone not in BACKBONES:
        raise ValueError(f"unknown MMV backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
    return hk.without_apply_rng(hk.transform_with_state(lambda clip: TextAudioVideo(backbone)(clip)))


def tree_shapes(backbone: str, clip_shape=(1, 2, 32, 32, 3)):
    """Shapes/dtypes of the (params, state) trees the model creates, without computing anything."""
    init = transformed(backbone).init
    clip = jax.ShapeDtypeStruct(clip_shape, jnp.float32)
    return jax.eval_shape(init, jax.random.PRNGKey(0), clip)
