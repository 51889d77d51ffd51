"""A fused crop-resize-flip kernel for the protocol's CPU path, bit-identical to the numpy one.

:func:`helpers.ucf101.sampling.resize_bilinear` computes TF's bilinear resize with whole-array
numpy operations: about ten passes over float32 intermediates per frame, which cost as much as
decoding the JPEG. :func:`crop_resize` does the same arithmetic in one pass per output pixel,
compiled with Numba: for each output pixel the four source pixels, ``top = tl + (tr - tl) *
x_lerp``, ``bottom = bl + (br - bl) * x_lerp``, ``out = top + (bottom - top) * y_lerp`` in
float32 (TF's CPU kernel's expression and order) and the cast to uint8 (truncation); the float
output is ``float32(uint8) / 255``, an exactly rounded division. Numba compiles without fast-math, so LLVM neither
reassociates nor fuses a multiply and an add into an FMA: every operation rounds as numpy's
does, and the pixels are the same bit for bit (``tests/test_ucf101_device.py`` compares them
with the numpy path, and ``tests/test_ucf101_tf_reference.py`` the numpy path with TensorFlow).

Written here rather than taken from a library, because no library's pixels are TF's (checked
on random 240x320 frames resized to 224x298): ``cv2.resize`` on float32 differs in 98 % of the
values (by up to 0.005: other weights or another expression), on uint8 (fixed point) 37 % of
the truncated grey levels differ, ``INTER_LINEAR_EXACT`` 50 %, Pillow's bilinear (antialiased)
89 %. Where the time goes (measured on the 2-core benchmark machine, one 240x320 frame
to a 224x224 crop): gathering each output column's two source pixels cost 210 us per frame and
did not vectorise; reading the source row in *runs* of consecutive columns (a downscale by less
than 2 advances one source column per output column except every ~14th) turns the gathers into
contiguous loops that do, 30 us; the vertical pass is contiguous already (15 us). Indices are
unsigned inside the loops, because numba adds a negative-index wraparound to signed ones that
stops LLVM from vectorising (measured 585 us with signed indices, the same loop).

A left-right flip before the resize reverses the pixels of each source row (vectorised) into a
one-row scratch just before the row is interpolated, so the run tables read it as any row.
Reversing the whole frame into a frame-sized scratch first, as before, cost more: 57 against
52 us per flipped output frame (median of 30 alternated rounds, ratio 1.13, range 0.82-1.31;
unflipped frames unchanged); the row stays in the first-level cache between its reversal and
its use.

Numba is optional: without it (:data:`AVAILABLE` false) the caller uses the numpy path.
"""

from __future__ import annotations

import numpy as np

try:  # pragma: no cover - which branch runs depends on the environment
    import numba
    import numba.extending
except ImportError:  # pragma: no cover
    numba = None

AVAILABLE = numba is not None


def _reverse_pixels(source, target, channels):
    """target = source with its pixels in reverse order (channels kept): a left-right flip.

    Unsigned indices: numba adds no negative-index wraparound to them, so LLVM vectorises.
    """
    width = np.uint64(source.shape[0] // channels)
    one = np.uint64(1)
    if channels == 3:  # the usual RGB: constant strides, vectorised with shuffles
        three = np.uint64(3)
        c = np.uint64(0)
        while c < width:
            s = (width - one - c) * three
            d = c * three
            target[d] = source[s]
            target[d + one] = source[s + one]
            target[d + np.uint64(2)] = source[s + np.uint64(2)]
            c += one
        return
    step = np.uint64(channels)
    c = np.uint64(0)
    while c < width:
        s = (width - one - c) * step
        d = c * step
        k = np.uint64(0)
        while k < step:
            target[d + k] = source[s + k]
            k += one
        c += one


def _resize_kernel(addresses, height, row_bytes, index, y_low, y_high, y_lerp, run_out, run_low,
                   run_high, run_len, x_lerp, flip, channels, out, rows, flipped):
    """Frames ``index`` [T] -> out [T, h, w*C] uint8; frame ``k`` is the C-contiguous
    ``[height, row_bytes]`` uint8 array at address ``addresses[k]`` (the caller keeps it alive).

    ``run_*`` (uint64): the output slots ``[run_out, run_out + run_len)`` of each run read the
    source slots from ``run_low`` (left pixel) and ``run_high`` (right pixel) on, contiguously
    (consecutive output columns of a downscale by less than 2 read consecutive source columns,
    except every ~14th column, where a source column is skipped and a new run starts). A run
    may be padded past its end into the next run's slots (to a multiple of the vector width,
    so no run ends in a scalar remainder loop): the next run overwrites them, as runs are
    computed in order. ``rows``: scratch [2, w*C] float32, the two source rows the current
    output row interpolates between, along the width; ``flipped``: scratch [1, W*C] uint8.
    ``flip``: mirror each source row first (so the run tables are those of the flipped frame).
    """
    count, out_h, slots = out.shape
    runs = run_out.shape[0]
    one = np.uint64(1)
    for t in range(count):
        frame = numba.carray(_pointer(addresses[index[t]]), (height, row_bytes))
        held0 = -1  # the source row in rows[0] / rows[1] (none yet)
        held1 = -1
        for i in range(out_h):
            low = y_low[i]
            high = y_high[i]
            for need in (low, high):
                if need == held0 or need == held1:
                    continue
                # Overwrite the slot that does not hold this output row's other source row.
                other = high if need == low else low
                slot = 1 if held0 == other else 0
                source = frame[need]
                if flip:  # mirrored into scratch, then read as an unflipped row is
                    _reverse_pixels(source, flipped[0], channels)
                    source = flipped[0]
                row = rows[slot]
                for j in range(runs):
                    o = run_out[j]
                    left_at = run_low[j]
                    right_at = run_high[j]
                    n = run_len[j]
                    p = np.uint64(0)
                    while p < n:
                        left = np.float32(source[left_at + p])
                        right = np.float32(source[right_at + p])
                        row[o + p] = left + (right - left) * x_lerp[o + p]
                        p += one
                if slot == 0:
                    held0 = need
                else:
                    held1 = need
            upper = rows[0] if held0 == low else rows[1]
            lower = rows[0] if held0 == high else rows[1]
            wy = y_lerp[i]
            target = out[t, i]
            for q in range(slots):
                target[q] = np.uint8(upper[q] + (lower[q] - upper[q]) * wy)


def _unit_kernel(source, index, out):
    """out[m] = float32(source[index[m]]) / 255: uint8 frames [N, P] -> float32 [M, P].

    A division, not a table lookup: IEEE division rounds exactly, so the values are those of
    numpy's ``float32(v) / float32(255)`` (the numpy path's table), and unlike a gather from a
    table the loop vectorises (measured 3-4x faster per value).
    """
    scale = np.float32(255.0)
    for m in range(index.shape[0]):
        src = source[index[m]]
        dst = out[m]
        for p in range(src.shape[0]):
            dst[p] = np.float32(src[p]) / scale


_compiled = {}


def _jit(function):
    # nogil: decoding threads run them side by side. No fastmath (see the module docstring).
    return numba.njit(nogil=True, cache=True, fastmath=False)(function)


if AVAILABLE:  # called from the resize kernel, so it must be a compiled function too
    _reverse_pixels = _jit(_reverse_pixels)

    @numba.extending.intrinsic
    def _pointer(typingctx, address):
        """int64 address -> uint8 pointer (for ``numba.carray``)."""
        pointer = numba.types.CPointer(numba.types.uint8)

        def codegen(context, builder, signature, args):
            return builder.inttoptr(args[0], context.get_value_type(pointer))

        return pointer(numba.types.int64), codegen


def _get(name):
    if name not in _compiled:
        _compiled[name] = _jit({"resize": _resize_kernel, "unit": _unit_kernel}[name])
    return _compiled[name]


def to_unit_float(frames: np.ndarray, index=None, out=None) -> np.ndarray:
    """``frames[index].astype(float32) / 255`` for ``[N, ...]`` uint8 frames, in one pass.

    ``out``: a C-contiguous float32 array of the result's shape to write into.
    """
    if not AVAILABLE:
        raise RuntimeError("numba is not installed")
    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    flat = frames.reshape(frames.shape[0], -1)
    index = np.arange(len(frames)) if index is None else np.asarray(index)
    shape = index.shape + frames.shape[1:]
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    elif out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(f"out must be C-contiguous float32 {shape}, got {out.dtype} {out.shape}")
    _get("unit")(flat, index.reshape(-1).astype(np.int64), out.reshape(index.size, flat.shape[1]))
    return out


#: Floats per vector register (AVX-512) or a multiple of it: runs are padded to this length.
_RUN_PAD = 16


def _runs(low, high, channels: int, width: int):
    """Split the output columns into runs that read consecutive source columns.

    ``low`` / ``high``: the left / right source column of each output column. A run is a
    stretch where both advance by one per output column, so its slots read the source row
    contiguously. Each run but the last is padded to a multiple of :data:`_RUN_PAD` slots
    (within the row and the source), the padding overwritten by the runs after it. Returns
    ``(out, low, high, length)`` in slots, uint64.
    """
    low = np.asarray(low, np.int64)
    high = np.asarray(high, np.int64)
    breaks = np.flatnonzero((np.diff(low) != 1) | (np.diff(high) != 1)) + 1
    starts = np.concatenate([[0], breaks])
    lengths = np.diff(np.concatenate([starts, [len(low)]])) * channels
    out_at, low_at, high_at = starts * channels, low[starts] * channels, high[starts] * channels
    slots, source = len(low) * channels, width * channels
    padded = -(-lengths // _RUN_PAD) * _RUN_PAD
    limit = np.minimum(np.minimum(slots - out_at, source - low_at), source - high_at)
    lengths[:-1] = np.minimum(padded, limit)[:-1]
    return tuple(v.astype(np.uint64) for v in (out_at, low_at, high_at, lengths))


def plan(rows: tuple, cols: tuple, channels: int, width: int) -> tuple:
    """The kernel's geometry arguments for these output rows / columns (reusable: see
    :func:`crop_resize`). ``width``: the source frames' width."""
    y_low, y_high, y_lerp = rows
    x_low, x_high, x_lerp = cols
    # One slot per (column, channel): the inner loops run along a row of interleaved RGB.
    return (np.ascontiguousarray(y_low, np.int64), np.ascontiguousarray(y_high, np.int64),
            np.ascontiguousarray(y_lerp, np.float32), *_runs(x_low, x_high, channels, width),
            np.repeat(np.asarray(x_lerp, np.float32), channels), channels, width)


def crop_resize(frames, rows: tuple = None, cols: tuple = None, flip: bool = False,
                dtype=np.float32, index=None, out=None, geometry: tuple = None) -> np.ndarray:
    """Resize-and-crop ``[N, H, W, C] uint8`` frames at the given output positions.

    ``frames``: an array, or a list of ``[H, W, C]`` C-contiguous uint8 arrays (the decoder's
    own arrays: read where they are, without copying them into one array first, which cost
    6-8 % of test extraction, measured). ``rows`` / ``cols``: ``(low, high, lerp)`` as
    :func:`helpers.ucf101.sampling._bilinear_weights` returns them for the wanted output rows
    / columns, or ``geometry``: what :func:`plan` returns for them (the same for every call
    with the same crop: computing it costs ~40 us of Python under the GIL, which decoding
    threads compete for). ``flip``: mirror the frames left-right before resizing. ``dtype``:
    ``float32`` (``uint8 / 255``) or ``uint8``. ``index``: resize frames ``frames[index]``
    (without gathering them first); default all. ``out``: a C-contiguous uint8 array
    ``[T, h, w, C]`` to write into (``dtype`` uint8 only).
    """
    if not AVAILABLE:
        raise RuntimeError("numba is not installed: use helpers.ucf101.sampling's numpy path")
    if isinstance(frames, np.ndarray):
        frames = np.ascontiguousarray(frames, dtype=np.uint8)
        count, height, width, channels = frames.shape
        addresses = frames.ctypes.data + np.arange(count, dtype=np.int64) * (frames[0].size
                                                                            if count else 0)
    else:
        count = len(frames)
        height, width, channels = frames[0].shape
        for frame in frames:
            if frame.shape != (height, width, channels) or frame.dtype != np.uint8 \
                    or not frame.flags.c_contiguous:
                raise ValueError(f"frames must be C-contiguous uint8 {(height, width, channels)}"
                                 f", got {frame.dtype} {frame.shape}")
        addresses = np.array([frame.ctypes.data for frame in frames], dtype=np.int64)
    if geometry is None:
        geometry = plan(rows, cols, channels, width)
    *arguments, slot_lerp, plan_channels, plan_width = geometry
    if (plan_channels, plan_width) != (channels, width):
        raise ValueError(f"geometry made for {plan_width} x {plan_channels}-channel frames, "
                         f"got {width} x {channels}")
    index = np.arange(count, dtype=np.int64) if index is None \
        else np.asarray(index, dtype=np.int64).reshape(-1)
    if index.size and (index.min() < 0 or index.max() >= count):
        raise IndexError(f"frame index out of range 0..{count - 1}")
    shape = (len(index), len(arguments[0]), len(slot_lerp) // channels, channels)
    if out is None:
        out = np.empty(shape, dtype=np.uint8)
    elif out.shape != shape or out.dtype != np.uint8 or not out.flags.c_contiguous \
            or np.dtype(dtype) != np.uint8:
        raise ValueError(f"out must be C-contiguous uint8 {shape}, got {out.dtype} {out.shape}")
    _get("resize")(addresses, height, width * channels, index, *arguments, slot_lerp,
                   bool(flip), channels, out.reshape(shape[0], shape[1], -1),
                   np.empty((2, len(slot_lerp)), dtype=np.float32),
                   np.empty((1, width * channels), dtype=np.uint8))
    if np.dtype(dtype) == np.uint8:
        return out
    return to_unit_float(out)
