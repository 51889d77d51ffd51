"""The protocol's clip sampling, pinned number by number (see helpers/ucf101/sampling.py)."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from helpers.ucf101 import sampling as sm

P = sm.MMV_PROTOCOL


class FakeVideo:
    """A stored-video look-alike whose pixels say where they come from.

    Red = frame index, green = a left-to-right ramp, blue = a top-to-bottom ramp.
    """

    def __init__(self, name="v_Fake_g01_c01", num_frames=100, height=240, width=320):
        self.name, self.num_frames, self.height, self.width = name, num_frames, height, width
        self.requests = []

    def frames(self, indices):
        indices = np.asarray(indices)
        self.requests.append(indices.copy())
        out = np.empty((len(indices), self.height, self.width, 3), dtype=np.uint8)
        out[..., 0] = (indices % 256)[:, None, None]
        out[..., 1] = np.linspace(0, 255, self.width).astype(np.uint8)[None, None, :]
        out[..., 2] = np.linspace(0, 255, self.height).astype(np.uint8)[None, :, None]
        return out


def test_published_protocol_numbers():
    assert (P.num_frames, P.stride, P.train_passes, P.test_windows, P.min_resize,
            P.crop_size) == (32, 2, 10, 10, 224, 224)
    with pytest.raises(ValueError, match="larger than min_resize"):
        sm.Protocol(min_resize=200, crop_size=224)


def test_training_start_range():
    # [0, L-62) when L > 62, else [0, L)
    assert sm.train_start_limit(100) == 38
    assert sm.train_start_limit(63) == 1
    assert sm.train_start_limit(62) == 62
    assert sm.train_start_limit(10) == 10
    assert sm.train_start_limit(20, num_frames=8, stride=2) == 6


def test_clip_indices_loop():
    np.testing.assert_array_equal(sm.clip_indices(100, 5)[:3], [5, 7, 9])
    assert sm.clip_indices(100, 37)[-1] == 99  # the last start that fits
    np.testing.assert_array_equal(sm.clip_indices(10, 7, num_frames=6, stride=2),
                                  [7, 9, 1, 3, 5, 7])
    np.testing.assert_array_equal(sm.clip_indices(3, 0, num_frames=5, stride=1), [0, 1, 2, 0, 1])


def test_test_window_starts():
    np.testing.assert_array_equal(sm.test_window_starts(300),
                                  [0, 26, 52, 78, 104, 131, 157, 183, 209, 236])
    np.testing.assert_array_equal(sm.test_window_starts(163),
                                  [0, 11, 22, 33, 44, 55, 66, 77, 88, 99])
    np.testing.assert_array_equal(sm.test_window_starts(64), [0] * 10)
    np.testing.assert_array_equal(sm.test_window_starts(65), [0] * 9 + [1])
    np.testing.assert_array_equal(sm.test_window_starts(40), [0] * 10)
    np.testing.assert_array_equal(sm.test_window_starts(300, num_windows=1), [0])
    windows = sm.test_window_indices(40)  # shorter than one window: every window loops
    assert windows.shape == (10, 32)
    np.testing.assert_array_equal(windows[0, 18:22], [36, 38, 0, 2])


def test_resize_sizes_and_crops():
    assert sm.resized_size(240, 320) == (224, 298)
    assert sm.resized_size(320, 240) == (298, 224)
    assert sm.resized_size(224, 224) == (224, 224)
    assert sm.resized_size(226, 400, 224) == (224, 396)
    assert sm.resized_size(120, 160, 64) == (64, 85)
    assert sm.central_crop_offsets(224, 298, 224) == (0, 37)
    assert sm.central_crop_offsets(224, 299, 224) == (0, 37)
    assert sm.central_crop_offsets(64, 85, 64) == (0, 10)


def test_bilinear_half_pixel_by_hand():
    row = np.array([0, 30, 60, 90], dtype=np.uint8).reshape(1, 1, 4, 1)
    out = sm.resize_bilinear(row, (1, 3))
    np.testing.assert_allclose(out.ravel(), [5.0, 45.0, 85.0], rtol=1e-6)
    two = np.array([10, 50], dtype=np.uint8).reshape(1, 1, 2, 1)
    np.testing.assert_allclose(sm.resize_bilinear(two, (1, 4)).ravel(), [10, 20, 40, 50])
    # A cast back to uint8 truncates, as tf.cast does.
    frames = np.array([0, 1], dtype=np.uint8).reshape(1, 1, 2, 1)
    assert sm.resize_bilinear(frames, (1, 3)).ravel()[1] == pytest.approx(0.5)
    assert sm.resize_smallest(np.repeat(np.repeat(frames, 3, 1), 1, 0), 4).dtype == np.uint8


def test_resize_and_crop_equals_crop_of_the_full_resize():
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, (3, 240, 320, 3), dtype=np.uint8)
    full = sm.resize_smallest(frames, 224)
    assert full.shape == (3, 224, 298, 3) and full.dtype == np.uint8
    for offset in [(0, 0), (0, 37), (0, 74)]:
        got = sm.resize_and_crop(frames, 224, 224, offset)
        want = full[:, :, offset[1]:offset[1] + 224].astype(np.float32) / 255
        np.testing.assert_array_equal(got, want)
        assert got.dtype == np.float32
    with pytest.raises(ValueError, match="does not fit"):
        sm.resize_and_crop(frames, 224, 224, (0, 75))
    same = rng.integers(0, 256, (1, 224, 230, 3), dtype=np.uint8)
    assert sm.resize_smallest(same, 224) is same  # already at the target size: untouched


def test_training_clip_follows_its_draw():
    video = FakeVideo(num_frames=100)
    for pass_index in range(3):
        clip, draw = sm.train_clip(video, pass_index, P, return_draw=True)
        assert clip.shape == (32, 224, 224, 3) and clip.dtype == np.float32
        assert 0.0 <= clip.min() and clip.max() <= 1.0
        assert 0 <= draw.start < 38
        np.testing.assert_array_equal(draw.indices, draw.start + 2 * np.arange(32))
        # Red holds the frame index: constant per frame, so the resize keeps it exactly.
        np.testing.assert_array_equal(np.round(clip[:, 0, 0, 0] * 255), draw.indices)
        # Green ramps left to right unless flipped.
        assert (clip[0, 0, -1, 1] < clip[0, 0, 0, 1]) == draw.flip
        # The crop: the same pixels as resizing everything and cropping by hand.
        frames = video.frames(draw.indices)
        if draw.flip:
            frames = frames[:, :, ::-1]
        full = sm.resize_smallest(frames, 224)
        oy, ox = draw.crop_offset
        assert oy == 0 and 0 <= ox <= 74
        np.testing.assert_array_equal(clip, full[:, oy:oy + 224, ox:ox + 224] / np.float32(255))


def test_draws_are_seeded_per_video_and_pass_and_cover_their_ranges():
    video = FakeVideo(num_frames=100)
    draws = [sm.train_draw(video.name, k, 100, (240, 320)) for k in range(400)]
    assert draws == [sm.train_draw(video.name, k, 100, (240, 320)) for k in range(400)]
    assert draws[0] != sm.train_draw("v_Other_g01_c01", 0, 100, (240, 320)) or \
        draws[1] != sm.train_draw("v_Other_g01_c01", 1, 100, (240, 320))
    starts = [d.start for d in draws]
    assert min(starts) == 0 and max(starts) == 37
    assert 0.4 < np.mean([d.flip for d in draws]) < 0.6
    offsets = [d.crop_offset[1] for d in draws]
    assert min(offsets) == 0 and max(offsets) == 74
    assert sm.train_draw(video.name, 3, 100, (240, 320), P.replace(seed=1)) != draws[3]
    # Order and threads do not matter.
    with ThreadPoolExecutor(4) as pool:
        shuffled = list(pool.map(lambda k: sm.train_clip(video, k, P), [5, 2, 9, 0]))
    for k, clip in zip([5, 2, 9, 0], shuffled):
        np.testing.assert_array_equal(clip, sm.train_clip(video, k, P))


def test_short_video_training_clip_loops():
    video = FakeVideo(num_frames=20)
    clip, draw = sm.train_clip(video, 0, P, return_draw=True)
    assert 0 <= draw.start < 20
    np.testing.assert_array_equal(np.round(clip[:, 0, 0, 0] * 255),
                                  (draw.start + 2 * np.arange(32)) % 20)


def test_test_clips_are_central_windows():
    video = FakeVideo(num_frames=120)
    clips = sm.test_clips(video, P)
    assert clips.shape == (10, 32, 224, 224, 3) and clips.dtype == np.float32
    np.testing.assert_array_equal(np.round(clips[:, 0, 0, 0, 0] * 255),
                                  sm.test_window_starts(120))
    # Every distinct frame is decoded once (in chunks that threads can share).
    np.testing.assert_array_equal(np.sort(np.concatenate(video.requests)),
                                  np.unique(sm.test_window_indices(120)))
    frames = video.frames(sm.test_window_indices(120)[4])
    want = sm.resize_smallest(frames, 224)[:, :, 37:261] / np.float32(255)
    np.testing.assert_array_equal(clips[4], want)
    subset = sm.test_clips(video, P, windows=[4, 9])
    np.testing.assert_array_equal(subset, clips[[4, 9]])


def test_tiny_protocol_sizes():
    tiny = P.replace(num_frames=8, min_resize=64, crop_size=64)
    video = FakeVideo(num_frames=30, height=120, width=160)
    assert sm.train_clip(video, 0, tiny).shape == (8, 64, 64, 3)
    assert sm.test_clips(video, tiny).shape == (10, 8, 64, 64, 3)
    np.testing.assert_array_equal(sm.test_window_starts(30, 10, 8, 2),
                                  [0, 1, 3, 4, 6, 7, 9, 10, 12, 14])
