"""helpers.video: decoding, writing, sampling, preprocessing and bad input, on generated files."""

import itertools
import struct
import subprocess
import sys
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest

from helpers import video
from helpers.video import VideoError

ROOT = Path(__file__).resolve().parent.parent  # subprocesses import helpers from here
CONTAINERS = [".gif", ".mp4", ".avi", ".webm"]


def smooth_frames(n, height, width, seed=0):
    """Smooth moving gradients: little coding loss in any codec."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rng = np.random.default_rng(seed)
    phase = rng.random(3) * 6.28
    frames = np.empty((n, height, width, 3), np.uint8)
    for t in range(n):
        for c in range(3):
            wave = np.sin(x / width * 3.0 + y / height * 2.0 * (c + 1) + phase[c] + t * 0.2)
            frames[t, ..., c] = np.round(127.5 + 100 * wave)
    return frames


def indexed_frames(n, height=24, width=32, step=6):
    """Frame t is a flat grey of level step * t: the decoded level tells the frame index."""
    levels = (np.arange(n) * step).astype(np.uint8)
    return np.broadcast_to(levels[:, None, None, None], (n, height, width, 3)).copy()


def frame_index(clip_frames, step=6):
    """Inverse of indexed_frames for decoded float [0,1] or uint8 frames (nearest level)."""
    frames = np.asarray(clip_frames, dtype=np.float64)
    if frames.max() <= 1.0:
        frames = frames * 255.0
    means = frames.reshape(frames.shape[0], -1).mean(axis=1)
    return np.round(means / step).astype(int).tolist()


# ------------------------------------------------------------------------------------------
# Preprocessing, pinned numerically
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape, box", [
    ((5, 7), (0, 1, 5)),
    ((7, 5), (1, 0, 5)),
    ((6, 3), (2, 0, 3)),  # colab rounding: 6 // 2 - 3 // 2 = 2, not (6 - 3) // 2 = 1
    ((10, 6), (2, 0, 6)),
    ((7, 10), (0, 2, 7)),
    ((224, 224), (0, 0, 224)),
    ((240, 320), (0, 40, 240)),
])
def test_center_crop_box_follows_the_colab(shape, box):
    assert video.center_crop_box(*shape) == box


def test_crop_takes_the_pixels_of_the_box():
    height, width = 6, 9
    y, x = np.mgrid[0:height, 0:width]
    frame = np.stack([y * 10, x * 10, np.zeros_like(x)], axis=-1).astype(np.uint8)[None]
    out = video.center_crop_resize_uint8(frame, size=6)  # side 6: crop only, no resize
    top, left, side = video.center_crop_box(height, width)
    assert (top, left, side) == (0, 1, 6)
    np.testing.assert_array_equal(out[0], frame[0, :, 1:7])


def test_resize_downscale_by_two_averages_pixel_pairs():
    row = np.array([0, 100, 200, 250], np.uint8)
    frame = np.broadcast_to(row[None, :, None], (4, 4, 3)).copy()
    out = video.resize_bilinear(frame, 2)
    # Centres of the two output pixels fall half-way between source pixels 0|1 and 2|3.
    np.testing.assert_array_equal(out[..., 0], [[50, 225], [50, 225]])


def test_resize_upscale_clamps_at_the_edges():
    row = np.array([0, 200], np.uint8)
    frame = np.broadcast_to(row[None, :, None], (2, 2, 3)).copy()
    out = video.resize_bilinear(frame, 2, 4)
    # x = (i + 0.5) / 2 - 0.5 = -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1).
    np.testing.assert_array_equal(out[0, :, 0], [0, 50, 150, 200])


def test_resize_keeps_size_unchanged_and_rejects_floats():
    frames = smooth_frames(2, 16, 16)
    np.testing.assert_array_equal(video.resize_bilinear(frames, 16), frames)
    with pytest.raises(ValueError, match="uint8"):
        video.resize_bilinear(frames.astype(np.float32), 8)


def _numpy_bilinear(frames, height, width):
    """Independent float reference of the sampling grid: half-pixel centres, edges clamped."""
    def taps(src, dst):
        x = np.maximum((np.arange(dst) + 0.5) * (src / dst) - 0.5, 0.0)
        x0 = np.minimum(np.floor(x).astype(int), src - 1)
        return x0, np.minimum(x0 + 1, src - 1), np.where(x0 >= src - 1, 0.0, x - x0)

    y0, y1, fy = taps(frames.shape[1], height)
    x0, x1, fx = taps(frames.shape[2], width)
    f = frames.astype(np.float64)
    rows = f[:, y0] + (f[:, y1] - f[:, y0]) * fy[None, :, None, None]
    out = rows[:, :, x0] + (rows[:, :, x1] - rows[:, :, x0]) * fx[None, None, :, None]
    return np.floor(out + 0.5).astype(int)


@pytest.mark.parametrize("shape, size", [((37, 53), (16, 21)), ((48, 64), (224, 224)),
                                         ((300, 200), (224, 224)), ((240, 240), (224, 224))])
def test_resize_is_opencv_and_matches_an_independent_bilinear(shape, size):
    """resize_bilinear is cv2.resize (INTER_LINEAR) exactly, and that grid is the float one.

    OpenCV's 8-bit INTER_LINEAR works in fixed point (weights and the intermediate row sums are
    rounded), so against an exact float bilinear it is at most one grey level off. On these
    random-noise frames (the worst case: every pixel sits near a rounding boundary equally often)
    12.7-12.9 % of the values differ by one, measured for all four shapes; the bound is 15 %.
    """
    import cv2

    rng = np.random.default_rng(3)
    frames = (rng.random((2, *shape, 3)) * 255).astype(np.uint8)
    ours = video.resize_bilinear(frames, *size)
    opencv = np.stack([cv2.resize(f, size[::-1], interpolation=cv2.INTER_LINEAR) for f in frames])
    np.testing.assert_array_equal(ours, opencv)
    ref = _numpy_bilinear(frames, *size)
    assert np.abs(ours.astype(int) - ref).max() <= 1
    assert (ours != ref).mean() < 0.15


def test_resize_matches_tensorflow_half_pixel_bilinear():
    """Independent check of the sampling grid: tf.image.resize (no antialias) uses the same one."""
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(3)
    for (h, w), (oh, ow) in [((37, 53), (16, 21)), ((48, 64), (224, 224)), ((300, 200), (224, 224))]:
        frames = (rng.random((2, h, w, 3)) * 255).astype(np.uint8)
        ours = video.resize_bilinear(frames, oh, ow).astype(int)
        ref = tf.image.resize(frames.astype(np.float32), (oh, ow), method="bilinear",
                              antialias=False).numpy()
        ref = np.floor(ref + 0.5).astype(int)
        # OpenCV's fixed point (see the test above): at most 1 level off, on 12.7-12.9 % of
        # these noise values (TF's float resize agrees with the float reference on >= 99.3 %).
        assert np.abs(ours - ref).max() <= 1
        assert (ours != ref).mean() < 0.15


def test_center_crop_resize_contract():
    frames = smooth_frames(3, 30, 50)
    clip = video.center_crop_resize(frames, size=20)
    assert clip.shape == (3, 20, 20, 3) and clip.dtype == np.float32
    assert 0.0 <= clip.min() and clip.max() <= 1.0
    expected = video.resize_bilinear(frames[:, :, 10:40], 20).astype(np.float32) / 255
    np.testing.assert_array_equal(clip, expected)
    single = video.center_crop_resize(frames[0], size=20)
    np.testing.assert_array_equal(single, clip[0])
    with pytest.raises(ValueError, match="uint8"):
        video.center_crop_resize(frames / 255.0)
    with pytest.raises(ValueError, match=r"\[N, H, W, 3\]"):
        video.center_crop_resize(frames[..., :2])


# ------------------------------------------------------------------------------------------
# Sampling, pinned
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("available, wanted, expected", [
    (3, 8, [0, 0, 0, 1, 1, 1, 2, 2]),
    (5, 8, [0, 0, 1, 1, 2, 2, 3, 3]),
    (1, 4, [0, 0, 0, 0]),
    (4, 4, [0, 1, 2, 3]),
    (40, 5, [0, 1, 2, 3, 4]),
])
def test_colab_indices_repeat_each_frame_in_place(available, wanted, expected):
    assert video.colab_indices(available, wanted).tolist() == expected


def test_resample_indices_pick_the_frame_on_screen():
    times_10fps = np.arange(25) / 10.0
    assert video.resample_indices(times_10fps, 5.0).tolist() == list(range(0, 25, 2))
    up = video.resample_indices(times_10fps, 25.0)
    assert len(up) == 63 and up[:6].tolist() == [0, 0, 0, 1, 1, 2]
    # Variable frame rate: 0, 0.5, 0.6, 2.0 s; the last frame lasts the median interval 0.5 s.
    vfr = np.array([0.0, 0.5, 0.6, 2.0])
    assert video.resample_indices(vfr, 2.0).tolist() == [0, 1, 2, 2, 3]


def test_window_starts_are_evenly_spaced():
    assert video.window_starts(100, 10, 16).tolist() == [0, 9, 19, 28, 37, 47, 56, 65, 75, 84]
    assert video.window_starts(16, 3, 16).tolist() == [0, 0, 0]
    assert video.window_starts(5, 2, 16).tolist() == [0, 0]


def test_window_indices_loop_when_short():
    times = np.arange(10) / 5.0  # 10 frames at 5 fps = 10 resampled frames
    windows = video.window_indices(times, num_windows=3, num_frames=16, fps=5.0)
    expected = list(range(10)) + list(range(6))
    assert windows.tolist() == [expected] * 3


def test_window_indices_resample_then_window():
    times = np.arange(40) / 10.0  # 4 s at 10 fps -> 20 frames at 5 fps (source 0, 2, ..., 38)
    windows = video.window_indices(times, num_windows=3, num_frames=4, fps=5.0)
    assert windows.tolist() == [[0, 2, 4, 6], [16, 18, 20, 22], [32, 34, 36, 38]]


# ------------------------------------------------------------------------------------------
# Decoding real files (generated)
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", CONTAINERS)
@pytest.mark.parametrize("height, width", [(48, 64), (33, 47)])
def test_write_then_read_round_trip(tmp_path, suffix, height, width):
    frames = smooth_frames(12, height, width)
    path = video.write_video(tmp_path / f"clip{suffix}", frames, fps=10)
    info = video.video_info(path)
    assert (info.height, info.width) == (height, width)
    assert info.fps == pytest.approx(10.0, rel=0.01)
    assert info.num_frames == 12
    decoded = np.stack(list(video.iter_frames(path)))
    assert decoded.shape == frames.shape and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - frames.astype(int)).mean() < 4.0
    assert video.video_info(path, exact=True).num_frames == 12
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_gif_with_few_colours_is_exact(tmp_path):
    frames = indexed_frames(7, 9, 13)
    frames[:, 2:5, 3:8] = [255, 0, 0]
    path = video.write_video(tmp_path / "exact.gif", frames, fps=25)
    np.testing.assert_array_equal(np.stack(list(video.iter_frames(path))), frames)


def _pillow_gif(path, images, **save):
    images[0].save(path, save_all=True, append_images=images[1:], duration=100, loop=0,
                   optimize=False, disposal=1, **save)
    return path


def test_grey_palette_and_rgba_gifs_become_rgb(tmp_path):
    from PIL import Image

    grey = [Image.fromarray(np.full((11, 15), level, np.uint8), mode="L") for level in (30, 90, 200)]
    path = _pillow_gif(tmp_path / "grey.gif", grey)
    decoded = np.stack(list(video.iter_frames(path)))
    assert decoded.shape == (3, 11, 15, 3)
    assert decoded[:, 0, 0].tolist() == [[30] * 3, [90] * 3, [200] * 3]

    # (Pillow merges identical consecutive frames, so each frame differs a little.)
    palettes = []
    for right in (7, 9):
        image = Image.new("P", (15, 11))
        image.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
        image.paste(1, (0, 0, right, 11))
        palettes.append(image)
    decoded = np.stack(list(video.iter_frames(_pillow_gif(tmp_path / "pal.gif", palettes))))
    assert decoded.shape == (2, 11, 15, 3)
    assert decoded[0, 5, 2].tolist() == [10, 200, 30] and decoded[0, 5, 12].tolist() == [0, 0, 0]
    assert decoded[1, 5, 8].tolist() == [10, 200, 30]

    images = []
    for right in (8, 10):
        rgba = np.zeros((11, 15, 4), np.uint8)
        rgba[:, :right] = [250, 120, 0, 255]  # opaque orange left part, transparent right part
        images.append(Image.fromarray(rgba, mode="RGBA"))
    decoded = np.stack(list(video.iter_frames(_pillow_gif(tmp_path / "rgba.gif", images))))
    assert decoded.shape == (2, 11, 15, 3) and decoded.dtype == np.uint8
    assert decoded[0, 5, 2].tolist() == [250, 120, 0] and decoded[1, 5, 9].tolist() == [250, 120, 0]


def test_colab_clip_takes_first_frames_and_pads_in_place(tmp_path):
    long_path = video.write_video(tmp_path / "long.gif", indexed_frames(40), fps=10)
    clip = video.colab_clip(long_path, num_frames=8, size=16)
    assert clip.shape == (8, 16, 16, 3) and clip.dtype == np.float32
    assert frame_index(clip) == list(range(8))
    short_path = video.write_video(tmp_path / "short.gif", indexed_frames(3), fps=10)
    assert frame_index(video.colab_clip(short_path, num_frames=8, size=16)) == [0, 0, 0, 1, 1, 1, 2, 2]


def textured_pan(n, height, width, seed=0):
    """A scene of random 3x3 blocks panning right by 2 pixels a frame: every crop offset,
    resize weight and frame order shows in the pixels."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (height // 3 + 1, (width + 2 * n) // 3 + 1, 3), np.uint8)
    scene = np.kron(blocks, np.ones((3, 3, 1), np.uint8))
    return np.stack([scene[:height, 2 * t:2 * t + width] for t in range(n)])


@pytest.mark.parametrize("suffix, num_source, height, width, size", [
    (".gif", 40, 63, 90, 32),    # odd side, even width: the colab's rounding puts the crop at 14
    (".mp4", 40, 96, 160, 224),  # yuv420p, upscaled as in the colab
    (".mp4", 40, 75, 50, 32),    # odd sides: yuv444p
    (".mp4", 5, 96, 160, 32),    # shorter than 32 frames: each frame repeats in place
    (".gif", 12, 50, 40, 32),
])
def test_colab_clip_equals_the_official_colab_loop(tmp_path, suffix, num_source, height, width,
                                                   size):
    """colab_clip gives the official colab's pixels (benchmarks/colab_baseline.py: OpenCV's own
    decoder, crop, cv2.resize, BGR->RGB) exactly. Exact by construction: both decode with FFmpeg
    (GIF and H.264 decoding are bit-exact), convert YUV with swscale's integer code and resize
    with cv2.resize's fixed-point weights; only the last step is float (x / 255)."""
    from benchmarks.colab_baseline import opencv_colab_clip

    frames = textured_pan(num_source, height, width)
    path = video.write_video(tmp_path / f"pan{suffix}", frames, fps=10)
    clip = video.colab_clip(path, num_frames=32, size=size)
    assert clip.shape == (32, size, size, 3) and clip.dtype == np.float32
    colab = opencv_colab_clip(path, max_frames=32, size=size)
    levels = np.round(clip * 255.0).astype(np.int16)
    np.testing.assert_array_equal(levels, np.round(colab * 255.0).astype(np.int16))
    # The float step is center_crop_resize's (uint8 -> float32, / 255 in float32), and the
    # frames are the first ones iter_frames yields: identical arithmetic, so identical bits.
    first = list(itertools.islice(video.iter_frames(path), 32))
    expected = video.center_crop_resize(np.stack(first), size)[video.colab_indices(len(first), 32)]
    np.testing.assert_array_equal(clip, expected)
    assert not np.array_equal(clip[0], clip[-1])  # the pan moves: frame order is checked too


@pytest.mark.parametrize("suffix", CONTAINERS)
def test_colab_clip_without_probe_decoding_decodes_the_same_frames(tmp_path, suffix):
    """colab_clip opens files with FFmpeg's probing decoder switched off (skip_frame=all);
    the frames decoded afterwards must be those iter_frames (normal probing) yields."""
    frames = textured_pan(20, 48, 64)
    path = video.write_video(tmp_path / f"pan{suffix}", frames, fps=10)
    first = np.stack(list(itertools.islice(video.iter_frames(path), 8)))
    np.testing.assert_array_equal(video.colab_clip(path, num_frames=8, size=48),
                                  video.center_crop_resize(first, 48))
    container, stream = video._open(path, probe_decode=False)
    container.close()
    assert (stream.codec_context.width, stream.codec_context.height) == (64, 48)


@pytest.mark.parametrize("sampler", ["colab_clip", "iter_frame_groups"])
def test_a_failure_before_the_first_frame_leaves_no_file_open(tmp_path, monkeypatch, sampler):
    """colab_clip and iter_frame_groups decode through a generator that closes the container
    when it is closed; one that never started does not run that. So a failure between opening
    the file and asking for the first frame (here: the RGB converter cannot be made) must not
    leave the container open."""
    path = video.write_video(tmp_path / "pan.mp4", textured_pan(6, 48, 64), fps=10)
    opened = []

    def recording_open(*args, **kwargs):
        container, stream = real_open(*args, **kwargs)
        opened.append(container)
        return container, stream

    def no_converter():
        raise RuntimeError("no swscale here")

    real_open = video._open
    monkeypatch.setattr(video, "_open", recording_open)
    monkeypatch.setattr(video, "_Converter", no_converter)
    with pytest.raises(RuntimeError, match="no swscale"):
        if sampler == "colab_clip":
            video.colab_clip(path, num_frames=4, size=32)
        else:
            list(video.iter_frame_groups(path, np.array([[0, 1, 2]]), size=32))
    for container in opened:  # PyAV asserts on reading a closed container
        with pytest.raises(AssertionError, match="not open"):
            next(container.demux())


def test_colab_clip_rejects_empty_requests(tmp_path):
    path = video.write_video(tmp_path / "idx.gif", indexed_frames(3), fps=10)
    with pytest.raises(ValueError, match="at least 1"):
        video.colab_clip(path, num_frames=0)


@pytest.mark.parametrize("fmt", ["rgb24", "bgr24", "rgba", "bgra", "argb", "abgr", "yuv420p",
                                 "yuv444p", "gray"])
@pytest.mark.parametrize("height, width, size", [(21, 34, 8), (34, 21, 50), (16, 16, 16)])
def test_frame_crop_resize_matches_the_rgb_path(fmt, height, width, size):
    """colab_clip's per-frame shortcut (resize packed frames in their own channel order, then
    reorder) gives the pixels of converting to RGB first. Exact by construction: cv2.resize
    weighs each channel alone with the same integer weights."""
    import av

    rng = np.random.default_rng(height * width + size)
    if fmt in ("rgb24", "bgr24"):
        shape = (height, width, 3)
    elif fmt in ("rgba", "bgra", "argb", "abgr"):
        shape = (height, width, 4)
    elif fmt == "yuv420p":
        height, width = height // 2 * 2, width // 2 * 2
        shape = (height * 3 // 2, width)
    else:
        shape = (3, height, width) if fmt == "yuv444p" else (height, width)
    frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, shape, np.uint8), format=fmt)
    dst = np.zeros((size, size, 3), np.uint8)
    video._crop_resize_frame(frame, dst, video._Converter())
    expected = video.center_crop_resize_uint8(video._rgb(frame)[None], size)[0]
    np.testing.assert_array_equal(dst, expected)
    assert dst.std() > 0  # random input: a zero result would hide a missed write


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_eval_windows_on_a_file(tmp_path, suffix):
    path = video.write_video(tmp_path / f"idx{suffix}", indexed_frames(40), fps=10)
    windows = video.eval_windows(path, num_windows=3, num_frames=4, fps=5.0, size=16)
    assert windows.shape == (3, 4, 16, 16, 3) and windows.dtype == np.float32
    assert [frame_index(w) for w in windows] == [[0, 2, 4, 6], [16, 18, 20, 22], [32, 34, 36, 38]]


@pytest.mark.parametrize("suffix", CONTAINERS)
def test_frames_at_gives_the_pixels_of_iter_frames(tmp_path, suffix):
    """frames_at (eval_windows, the library's windows) converts only the frames a row needs,
    each cropped and resized before its channels are reordered, and opens the file without
    probe decoding: the pixels of center_crop_resize_uint8 over iter_frames' frames."""
    frames = textured_pan(30, 45, 70)
    path = video.write_video(tmp_path / f"pan{suffix}", frames, fps=10)
    decoded = np.stack(list(video.iter_frames(path)))
    indices = np.array([[0, 3, 3, 7], [12, 5, 29, 1], [29, 29, 28, 0]])
    got = video.frames_at(path, indices, size=24)
    expected = video.center_crop_resize_uint8(decoded, 24)[indices]
    np.testing.assert_array_equal(got, expected)
    assert not np.array_equal(got[0, 0], got[0, 1])  # the pan moves: frame order is checked


def test_frame_times_follow_variable_gif_delays(tmp_path):
    from PIL import Image

    images = [Image.fromarray(np.full((8, 8, 3), level, np.uint8)) for level in (10, 120, 240)]
    path = tmp_path / "vfr.gif"
    images[0].save(path, save_all=True, append_images=images[1:], duration=[100, 300, 50], loop=0)
    np.testing.assert_allclose(video.frame_times(path), [0.0, 0.1, 0.4])
    # At 10 fps the second frame is on screen for three samples (0.1, 0.2, 0.3 s).
    windows = video.eval_windows(path, num_windows=1, num_frames=5, fps=10.0, size=8)
    levels = np.round(windows[0, :, 0, 0, 0] * 255).astype(int).tolist()
    assert levels == [10, 120, 120, 120, 240]


def test_eval_windows_loop_a_short_file(tmp_path):
    path = video.write_video(tmp_path / "short.mp4", indexed_frames(6), fps=5)
    windows = video.eval_windows(path, num_windows=2, num_frames=8, fps=5.0, size=8)
    assert [frame_index(w) for w in windows] == [[0, 1, 2, 3, 4, 5, 0, 1]] * 2


def test_decoding_streams_instead_of_loading_everything(tmp_path):
    frames = smooth_frames(120, 120, 160)  # 6.9 MB decoded
    path = video.write_video(tmp_path / "long.mp4", frames, fps=25)
    del frames
    tracemalloc.start()
    try:
        video.colab_clip(path, num_frames=4, size=32)
        _, peak_colab = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        video.eval_windows(path, num_windows=3, num_frames=4, fps=5.0, size=32)
        _, peak_windows = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak_colab < 2_000_000 and peak_windows < 2_000_000


def test_video_module_imports_no_framework():
    code = "import sys, helpers.video; print('tensorflow' in sys.modules or 'jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT)
    assert out.stdout.strip() == "False"


def test_write_video_rejects_bad_arguments(tmp_path):
    frames = smooth_frames(2, 8, 8)
    with pytest.raises(ValueError, match="unknown video suffix"):
        video.write_video(tmp_path / "x.mov", frames, 10)
    with pytest.raises(ValueError, match="uint8"):
        video.write_video(tmp_path / "x.mp4", frames.astype(np.float32), 10)
    with pytest.raises(ValueError, match="fps"):
        video.write_video(tmp_path / "x.mp4", frames, 0)
    assert not list(tmp_path.iterdir())


def test_to_gif_bytes_accepts_float_clips():
    data = video.to_gif_bytes(smooth_frames(3, 8, 8).astype(np.float32) / 255, fps=5)
    assert data[:6] == b"GIF89a" and data.rstrip(b"\x00").endswith(b";")


# ------------------------------------------------------------------------------------------
# Bad input: one error type, naming the file and the cause
# ------------------------------------------------------------------------------------------

def _truncate(path, fraction):
    data = path.read_bytes()
    bad = path.with_name("cut_" + path.name)
    bad.write_bytes(data[: int(len(data) * fraction)])
    return bad


def _bad_files(tmp_path):
    """(name, path, words the cause must contain) for every kind of bad input."""
    import av

    cases = []
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    cases.append(("zero-byte", empty, "empty"))
    cases.append(("missing", tmp_path / "missing.gif", "not found"))
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    cases.append(("not a video", text, "not a video"))
    html = tmp_path / "error_page.gif"  # what a refused download can leave under the name
    html.write_text("<!DOCTYPE html>\n<html><head><title>403 Forbidden</title></head></html>\n")
    cases.append(("html page", html, "HTML"))
    notes = tmp_path / "notes.txt"  # FFmpeg's tty demuxer would render this as a "video"
    notes.write_text("hello\n" * 50)
    cases.append(("text file", notes, "not a video"))
    accents = tmp_path / "accents.webm"  # a two-byte character straddles the 1024-byte sniff
    accents.write_bytes(("a" + "é" * 600).encode("utf-8"))
    cases.append(("utf-8 text", accents, "text file"))
    noise = tmp_path / "noise.avi"
    noise.write_bytes(np.random.default_rng(0).bytes(4000))
    cases.append(("random bytes", noise, "not a video"))
    from PIL import Image

    picture = (np.random.default_rng(1).random((20, 30, 3)) * 255).astype(np.uint8)
    for fmt, name in (("PNG", "still.mp4"), ("JPEG", "still.gif")):
        still = tmp_path / name
        Image.fromarray(picture).save(still, format=fmt)
        cases.append((f"{fmt} image", still, "still image"))
    image_dir = tmp_path / "folder.avi"
    image_dir.mkdir()
    cases.append(("folder", image_dir, "folder"))
    frames = smooth_frames(30, 32, 48)
    for suffix in CONTAINERS:
        good = video.write_video(tmp_path / f"good{suffix}", frames, fps=10)
        cases.append((f"truncated {suffix}", _truncate(good, 0.5), "truncated"))
    gif_header_only = tmp_path / "noframes.gif"
    gif_header_only.write_bytes(b"GIF89a" + struct.pack("<HH", 16, 8) + bytes([0, 0, 0]) + b";")
    cases.append(("no frames gif", gif_header_only, "no frames"))
    avi_no_frames = tmp_path / "noframes.avi"
    with av.open(str(avi_no_frames), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 16, 8, "yuv420p"
        container.start_encoding()
    cases.append(("no frames avi", avi_no_frames, "no frames"))
    audio = tmp_path / "audio.webm"
    with av.open(str(audio), "w") as container:
        stream = container.add_stream("libopus", rate=48000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 960), np.float32), format="flt",
                                           layout="mono")
        frame.sample_rate = 48000
        for index in range(3):
            frame.pts = index * 960
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    cases.append(("audio only", audio, "no video stream"))
    return cases


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    return _bad_files(tmp_path_factory.mktemp("bad"))


SAMPLERS = {
    "video_info_exact": lambda p: video.video_info(p, exact=True),
    "iter_frames": lambda p: list(video.iter_frames(p)),
    "colab_clip": lambda p: video.colab_clip(p, num_frames=32, size=16),
    "eval_windows": lambda p: video.eval_windows(p, num_windows=2, num_frames=4, size=16),
}


@pytest.mark.parametrize("reader", sorted(SAMPLERS))
def test_every_bad_input_raises_video_error(bad_files, reader):
    for name, path, cause in bad_files:
        with pytest.raises(VideoError) as info:
            SAMPLERS[reader](path)
            pytest.fail(f"{name}: no VideoError")
        err = info.value
        assert err.path == str(path), name
        assert str(path) in str(err), name
        assert cause in err.cause, f"{name}: {err.cause!r} lacks {cause!r}"


def test_video_info_without_decoding_catches_what_the_header_shows(bad_files):
    # AVI and WebM keep no index at the front: a cut file has an intact header, which only
    # decoding (exact=True, or any sampler) can tell from a whole one.
    hidden = {"truncated .avi", "truncated .webm"}
    for name, path, cause in bad_files:
        if name in hidden:
            continue
        with pytest.raises(VideoError, match=cause):
            video.video_info(path)
            pytest.fail(f"{name}: no VideoError")


def test_exact_count_detects_truncation_the_header_hides(tmp_path):
    good = video.write_video(tmp_path / "good.avi", smooth_frames(30, 16, 16), fps=10)
    bad = _truncate(good, 0.9)
    with pytest.raises(VideoError, match="truncated"):
        video.video_info(bad, exact=True)


def test_load_clips_skips_and_reports_bad_files(tmp_path):
    good = [video.write_video(tmp_path / f"ok{i}.gif", indexed_frames(5 + i), fps=10)
            for i in range(2)]
    empty = tmp_path / "empty.gif"
    empty.write_bytes(b"")
    with pytest.warns(UserWarning, match="empty.gif"):
        clips, ok, failures = video.load_clips([good[0], empty, good[1]], num_frames=4, size=8)
    assert clips.shape == (2, 4, 8, 8, 3)
    assert ok == good
    assert [f.path for f in failures] == [str(empty)] and "empty" in failures[0].cause
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        windows, _, _ = video.load_clips(good, sampler=video.eval_windows, num_windows=2,
                                         num_frames=3, size=8)
    assert windows.shape == (2, 2, 3, 8, 8, 3)


def test_write_video_streams_frames_from_a_generator(tmp_path):
    frames = (np.full((16, 24, 3), 10 * i, np.uint8) for i in range(6))
    path = video.write_video(tmp_path / "streamed.avi", frames, fps=10)
    decoded = list(video.iter_frames(path))
    assert len(decoded) == 6 and decoded[0].shape == (16, 24, 3)
    assert abs(int(decoded[5].mean()) - 50) <= 3
    bad = iter([np.zeros((16, 24, 3), np.uint8), np.zeros((8, 8, 3), np.uint8)])
    with pytest.raises(ValueError, match="frame 1 has shape"):
        video.write_video(tmp_path / "bad.avi", bad)
    assert not (tmp_path / "bad.avi").exists()
    with pytest.raises(ValueError, match="no frames"):
        video.write_video(tmp_path / "empty.avi", iter([]))
