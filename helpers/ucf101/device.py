"""The protocol's resize, crop and flip inside a jitted JAX function: the CPU only decodes.

On an accelerator, the bilinear resize costs the CPU as much as decoding the JPEGs, while the
accelerator does it in microseconds. :func:`preprocess` takes the decoded ``uint8`` frames of a
batch of clips and each clip's (crop top, crop left, flip), as
:func:`helpers.ucf101.sampling.train_clips` / ``test_clips`` return them with ``output="raw"``,
and computes the protocol's clips with the same float32 formulas as the CPU path
(:func:`helpers.ucf101.sampling.resize_bilinear`): TF's half-pixel bilinear resize without
antialias, only at the cropped output pixels, truncation to uint8, ``/ 255``.

It is not bit-identical to the CPU path: XLA may fuse a multiply and an add into one FMA (one
rounding instead of two), which moves a value that lies within a rounding error of an integer
to the other side of the truncation: such pixels differ by exactly one grey level.
``tests/test_ucf101_device.py`` bounds the difference (at most one level, on a small fraction of
pixels) and ``benchmarks/`` measures the fraction and the effect on features.
"""

from __future__ import annotations

import functools

import numpy as np

from helpers.ucf101.sampling import MMV_PROTOCOL, Protocol, resized_size


def _weights(jnp, in_size: int, out_size: int, positions):
    """Source indices (low, high) and weights at ``positions``: the CPU path's float32 steps."""
    scale = jnp.float32(in_size) / jnp.float32(out_size)
    x = (positions.astype(jnp.float32) + jnp.float32(0.5)) * scale - jnp.float32(0.5)
    floor = jnp.floor(x)
    low = jnp.maximum(floor.astype(jnp.int32), 0)
    high = jnp.minimum(jnp.ceil(x).astype(jnp.int32), in_size - 1)
    return low, high, x - floor


def _preprocess(frames, params, *, min_resize: int, crop_size: int, scale: bool):
    import jax
    import jax.numpy as jnp

    height, width = frames.shape[2], frames.shape[3]
    out_h, out_w = resized_size(height, width, min_resize)
    grid = jnp.arange(crop_size, dtype=jnp.int32)

    def one(clip, p):  # clip [T, H, W, C] uint8; p = (top, left, flip)
        if (out_h, out_w) == (height, width):  # no resize: crop (and flip) only
            cols = jnp.where(p[2] == 1, width - 1 - (p[1] + grid), p[1] + grid)
            rows = p[0] + grid
            picked = jnp.take(jnp.take(clip, rows, axis=1), cols, axis=2)
            return picked.astype(jnp.float32) / jnp.float32(255) if scale else picked
        y_low, y_high, y_lerp = _weights(jnp, height, out_h, p[0] + grid)
        x_low, x_high, x_lerp = _weights(jnp, width, out_w, p[1] + grid)
        flip = p[2] == 1
        x_low = jnp.where(flip, width - 1 - x_low, x_low)
        x_high = jnp.where(flip, width - 1 - x_high, x_high)
        source = clip.astype(jnp.float32)
        top_rows = jnp.take(source, y_low, axis=1)
        bottom_rows = jnp.take(source, y_high, axis=1)
        wx = x_lerp[None, None, :, None]
        tl, tr = jnp.take(top_rows, x_low, axis=2), jnp.take(top_rows, x_high, axis=2)
        bl, br = jnp.take(bottom_rows, x_low, axis=2), jnp.take(bottom_rows, x_high, axis=2)
        top = tl + (tr - tl) * wx
        bottom = bl + (br - bl) * wx
        value = top + (bottom - top) * y_lerp[None, :, None, None]
        grey = jnp.clip(jnp.floor(value), 0, 255)  # truncation: values are >= 0
        return grey / jnp.float32(255) if scale else grey.astype(jnp.uint8)

    return jax.vmap(one)(frames, params)


@functools.lru_cache(maxsize=None)
def _jitted(min_resize: int, crop_size: int, scale: bool):
    import jax

    return jax.jit(functools.partial(_preprocess, min_resize=min_resize, crop_size=crop_size,
                                     scale=scale))


def preprocess(frames, params, protocol: Protocol = MMV_PROTOCOL, scale: bool = True):
    """Raw clips -> the protocol's clips, on JAX's default device.

    ``frames``: ``[B, T, H, W, 3] uint8``; ``params``: ``[B, 3] int32`` (crop top, crop left,
    flip). Returns ``[B, T, crop, crop, 3]``: float32 in [0, 1] (``scale``) or uint8.
    """
    return _jitted(protocol.min_resize, protocol.crop_size, bool(scale))(frames, params)


def device_encoder(model_fn, protocol: Protocol = MMV_PROTOCOL):
    """Wrap ``model_fn(clips float32 [B, T, crop, crop, 3]) -> [B, D]`` for ``clip_input="raw"``.

    The returned ``fn(frames, params)`` preprocesses on the device (:func:`preprocess`) and
    hands the result, still on the device, to ``model_fn``.
    """
    def fn(frames, params):
        return model_fn(preprocess(np.asarray(frames), np.asarray(params), protocol))

    return fn
