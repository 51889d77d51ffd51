"""MMV's video input: the clip checks every entry point runs, and S3D-G's space-to-depth.

A leaf module (numpy only), so the models, the TF-Hub loader and the package can all use it.
"""

from __future__ import annotations

import numpy as np


def space_to_depth(clip: np.ndarray) -> np.ndarray:
    """``[B, T, H, W, C]`` -> ``[B, T/2, H/2, W/2, 8C]``: each 2x2x2 block of pixels becomes channels.

    Channel ``((dt * 2 + dh) * 2 + dw) * C + c`` holds pixel ``(2t + dt, 2h + dh, 2w + dw)``,
    colour ``c``. S3D-G applies it to its input so that its first convolution (7x7x7 at stride
    2 in the paper) runs as a 2x4x4 convolution at stride 1. Works on numpy and JAX arrays.
    Raises ``ValueError`` for odd T, H or W.
    """
    if clip.ndim != 5:
        raise ValueError(f"space-to-depth needs [B, T, H, W, C], got shape {tuple(clip.shape)}")
    b, t, h, w, c = clip.shape
    if t % 2 or h % 2 or w % 2:
        raise ValueError(f"space-to-depth needs even T, H and W, got shape {tuple(clip.shape)}")
    x = clip.reshape(b, t // 2, 2, h // 2, 2, w // 2, 2, c)
    x = x.transpose(0, 1, 3, 5, 2, 4, 6, 7)
    return x.reshape(b, t // 2, h // 2, w // 2, 8 * c)


class ClipError(ValueError):
    """Clips have the wrong shape, type or value range; the message says which and how to fix it."""


def check_clips(clips, backbone: str, what: str = "clips") -> np.ndarray:
    """Validate clips ``[B, T, H, W, 3]`` in [0, 1]; return them as float32. Raises :class:`ClipError`."""
    array = np.asarray(clips)
    if array.ndim == 4 and array.shape[-1] == 3:
        raise ClipError(f"{what} has shape {array.shape}: that is one clip [T, H, W, 3]; "
                        "add a batch axis (clip[None])")
    if array.ndim != 5 or array.shape[-1] != 3:
        raise ClipError(f"{what} has shape {array.shape}; expected [B, T, H, W, 3] RGB clips")
    if 0 in array.shape:
        raise ClipError(f"{what} has shape {array.shape}: it is empty")
    if array.dtype == np.uint8:
        raise ClipError(f"{what} is uint8 (0..255); convert with clips.astype(np.float32) / 255")
    if not np.issubdtype(array.dtype, np.floating):
        raise ClipError(f"{what} has dtype {array.dtype}; expected float32 in [0, 1]")
    array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        raise ClipError(f"{what} contains NaN or infinite values")
    low, high = float(array.min()), float(array.max())
    if low < -1e-3 or high > 1 + 1e-3:
        hint = " (it looks like 0..255: divide by 255)" if high > 2 else (
            " (it looks like [-1, 1]: use (x + 1) / 2)" if low < -0.5 else "")
        raise ClipError(f"{what} has values in [{low:.3g}, {high:.3g}]; expected [0, 1]{hint}")
    if backbone == "s3d" and any(d % 2 for d in array.shape[1:4]):
        raise ClipError(f"{what} has shape {array.shape}; S3D-G needs even T, H and W "
                        "(its space-to-depth step packs 2x2x2 blocks)")
    return array
