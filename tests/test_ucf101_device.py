"""The accelerator path's preprocessing and the raw/uint8 clip inputs against the CPU path."""

import numpy as np
import pytest

from helpers.ucf101 import device, kernels
from test_ucf101_features import store  # noqa: F401 - the fixture (a small frame store)
from helpers.ucf101 import sampling as sm


def textured(num=6, height=240, width=320, seed=0):
    """Smooth gradients plus noise: many resized values land near an integer and the
    truncation is exercised; constant areas would hide a wrong weight."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = (yy * 0.7 + xx * 0.4)[None, :, :, None] + np.arange(3) * 30
    noise = rng.integers(-40, 40, (num, height, width, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("flip", [0, 1])
def test_device_preprocess_within_one_grey_level_of_the_cpu_path(flip):
    frames = textured()
    protocol = sm.MMV_PROTOCOL.replace(num_frames=6)
    offsets = [(0, 0), (0, 37), (0, 74)]
    params = np.array([[oy, ox, flip] for oy, ox in offsets], np.int32)
    batch = np.stack([frames] * len(offsets))
    got = np.asarray(device.preprocess(batch, params, protocol, scale=False)).astype(int)
    want = np.stack([sm.resize_and_crop(frames, 224, 224, o, flip=bool(flip), dtype=np.uint8)
                     for o in offsets]).astype(int)
    diff = np.abs(got - want)
    assert diff.max() <= 1
    # Measured on the CPU (XLA): 0 pixels differ; on an accelerator FMA contraction moves a few.
    assert np.mean(diff > 0) < 1e-3
    scaled = np.asarray(device.preprocess(batch, params, protocol))
    np.testing.assert_allclose(scaled, got / np.float32(255), atol=1e-7)
    # A wrong flip is caught: the check above is not blind.
    wrong = np.asarray(device.preprocess(batch, params ^ np.array([0, 0, 1], np.int32), protocol,
                                         scale=False)).astype(int)
    assert np.mean(np.abs(wrong - want) > 1) > 0.1


def test_numba_kernel_is_bit_identical_to_numpy():
    if not kernels.AVAILABLE:
        pytest.skip("numba not installed")
    frames = textured(num=3, seed=1)
    for flip in (False, True):
        for offset in [(0, 0), (0, 51), (0, 74)]:
            fast = sm.resize_and_crop(frames, 224, 224, offset, flip=flip, fast=True)
            slow = sm.resize_and_crop(frames, 224, 224, offset, flip=flip, fast=False)
            assert fast.dtype == slow.dtype == np.float32
            np.testing.assert_array_equal(fast, slow)
    # Portrait frames and another size too (rows resized, not only columns).
    tall = textured(num=2, height=320, width=240, seed=2)
    np.testing.assert_array_equal(sm.resize_and_crop(tall, 112, 100, (5, 3), fast=True),
                                  sm.resize_and_crop(tall, 112, 100, (5, 3), fast=False))
    np.testing.assert_array_equal(kernels.to_unit_float(frames, [2, 0, 2]),
                                  frames[[2, 0, 2]].astype(np.float32) / np.float32(255))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_numba_kernel_equals_numpy_on_random_geometries(seed):
    """The run-based kernel (runs of consecutive source columns, padded and overwritten)
    against the numpy path on random sizes, crops, flips and frame orders: downscales by
    less and more than 2 (other run lengths), upscales (runs of one column), odd widths."""
    if not kernels.AVAILABLE:
        pytest.skip("numba not installed")
    rng = np.random.default_rng(seed)
    for _ in range(3):
        height, width = (int(v) for v in rng.integers(20, 200, 2))
        frames = rng.integers(0, 256, (4, height, width, 3), dtype=np.uint8)
        min_resize = int(rng.integers(8, 160))
        size = sm.resized_size(height, width, min_resize)
        crop = int(rng.integers(1, min(size) + 1))
        offset = (int(rng.integers(0, size[0] - crop + 1)),
                  int(rng.integers(0, size[1] - crop + 1)))
        flip = bool(rng.integers(0, 2))
        index = rng.integers(0, 4, 5)
        want = sm.resize_and_crop(frames[index], min_resize, crop, offset, flip=flip,
                                  dtype=np.uint8, fast=False)
        got = sm.resize_and_crop(frames[index], min_resize, crop, offset, flip=flip,
                                 dtype=np.uint8, fast=True)
        np.testing.assert_array_equal(got, want)
        if size != (height, width):  # the kernel's own index / out arguments
            rows = sm._bilinear_weights(height, size[0], np.arange(offset[0], offset[0] + crop))
            cols = sm._bilinear_weights(width, size[1], np.arange(offset[1], offset[1] + crop))
            out = np.empty_like(want)
            kernels.crop_resize(frames, rows, cols, flip=flip, dtype=np.uint8, index=index,
                                out=out)
            np.testing.assert_array_equal(out, want)
    grey = rng.integers(0, 256, (2, 50, 90, 1), dtype=np.uint8)  # another channel count
    np.testing.assert_array_equal(
        sm.resize_and_crop(grey, 40, 40, (0, 7), flip=True, dtype=np.uint8, fast=True),
        sm.resize_and_crop(grey, 40, 40, (0, 7), flip=True, dtype=np.uint8, fast=False))


class StoredLike:
    def __init__(self, frames, name="v_X_g01_c01"):
        self._frames, self.name = frames, name
        self.num_frames, self.height, self.width = frames.shape[0], frames.shape[1], frames.shape[2]
        self.path = name  # cached like a stored video
        self.decoded = 0

    def frames(self, indices):
        self.decoded += len(np.unique(indices))
        return self._frames[np.asarray(indices)]


def test_raw_and_uint8_outputs_describe_the_same_clips():
    video = StoredLike(textured(num=40, height=120, width=160, seed=3))
    protocol = sm.MMV_PROTOCOL.replace(num_frames=8, stride=2, min_resize=64, crop_size=56)
    floats = sm.train_clips(video, [0, 1, 2], protocol)
    greys = sm.train_clips(video, [0, 1, 2], protocol, output="uint8")
    np.testing.assert_array_equal(floats, greys / np.float32(255))
    np.testing.assert_array_equal(floats[1], sm.train_clip(video, 1, protocol))
    frames, params = sm.train_clips(video, [0, 1, 2], protocol, output="raw")
    assert frames.shape == (3, 8, 120, 160, 3) and params.shape == (3, 3)
    on_device = np.asarray(device.preprocess(frames, params, protocol))
    assert np.abs(on_device - floats).max() <= 1 / 255 + 1e-7
    tests = sm.test_clips(video, protocol)
    frames, params = sm.test_clips(video, protocol, output="raw")
    assert np.abs(np.asarray(device.preprocess(frames, params, protocol)) - tests).max() \
        <= 1 / 255 + 1e-7
    with pytest.raises(ValueError, match="output must be one of"):
        sm.test_clips(video, protocol, output="bgr")


def test_test_windows_asked_in_parts_decode_each_frame_once():
    video = StoredLike(textured(num=90, height=60, width=80, seed=4), name="v_Y_g01_c01")
    protocol = sm.MMV_PROTOCOL.replace(num_frames=8, min_resize=32, crop_size=32)
    whole = sm.test_clips(video, protocol)
    first = video.decoded
    parts = np.concatenate([sm.test_clips(video, protocol, windows=range(0, 6)),
                            sm.test_clips(video, protocol, windows=range(6, 10))])
    np.testing.assert_array_equal(parts, whole)
    assert video.decoded == first  # the second and third calls decoded nothing


def test_extraction_with_uint8_and_raw_inputs_matches_the_float_path(store, tmp_path):
    from test_ucf101_features import PROTOCOL, colour_encoder, extract

    names = store.names()[:5]
    for sampling in ("train", "test"):
        want = extract(store, names, colour_encoder, None, sampling=sampling)
        greys = extract(store, names, lambda clips: colour_encoder(clips / np.float32(255)),
                        tmp_path, sampling=sampling, clip_input="uint8")
        # The same clips exactly; colour_encoder's means may round differently in another
        # batch layout only, and the layout is the same here.
        np.testing.assert_array_equal(greys, want)
        on_device = device.device_encoder(lambda clips: colour_encoder(np.asarray(clips)),
                                          PROTOCOL)
        raw = extract(store, names, on_device, tmp_path, sampling=sampling, clip_input="raw")
        # Pixels within one grey level (above): means within 1/255, spreads about as close.
        np.testing.assert_allclose(raw, want, atol=2 / 255)
    # The cache keeps the three inputs apart.
    folders = {p.name for p in (tmp_path / "colour-v1").iterdir()}
    assert len(folders) == 4  # uint8 and raw, for train and test


@pytest.mark.parametrize("fast", [True, False] if kernels.AVAILABLE else [False])
@pytest.mark.parametrize("length, shared", [(12, True), (200, False)])
def test_train_clips_equal_clip_by_clip_on_both_strategies(fast, length, shared, monkeypatch):
    """train_clips either resizes each frame once per flip and slices the crops (clips sharing
    frames: a short video) or resizes each clip's crop (a long one): the same pixels, bit for
    bit, as computing every clip on its own (train_clip), on both paths."""
    monkeypatch.setattr(kernels, "AVAILABLE", fast)
    video = StoredLike(textured(num=length, height=120, width=160, seed=5))
    protocol = sm.MMV_PROTOCOL.replace(num_frames=8, stride=2, min_resize=64, crop_size=56)
    passes = range(10)
    flips = {sm.train_draw(video.name, k, length, (120, 160), protocol).flip for k in passes}
    assert flips == {False, True}  # both flips run
    widths = []
    original = sm.resize_and_crop

    def spy(*args, **kwargs):
        widths.append(kwargs.get("width"))
        return original(*args, **kwargs)

    monkeypatch.setattr(sm, "resize_and_crop", spy)
    clips = sm.train_clips(video, passes, protocol)
    assert (widths == [85, 85]) if shared else (widths == [None] * 10)  # 120x160 -> 64x85
    for k in passes:
        np.testing.assert_array_equal(clips[k], sm.train_clip(video, k, protocol))
    for output, dtype in (("float", np.float32), ("uint8", np.uint8)):  # into a batch's slice
        batch = np.zeros((12,) + protocol.clip_shape(), dtype)
        assert sm.train_clips(video, passes, protocol, output=output, out=batch[1:11]) is not None
        want = clips if output == "float" else np.round(clips * 255).astype(np.uint8)
        np.testing.assert_array_equal(batch[1:11], want)
        assert not batch[0].any() and not batch[11].any()


def _jpeg_video(path, frames):
    import io

    from PIL import Image

    from helpers.ucf101 import store as st

    jpegs = []
    for frame in frames:
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="JPEG", quality=90)
        jpegs.append(buffer.getvalue())
    return st.StoredVideo(st.write_container(path, jpegs))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stored_clips_equal_the_numpy_reference_on_both_protocols(seed, tmp_path, monkeypatch):
    """Stored JPEG frames at UCF101's size and the published geometry (240x320 -> 224x298,
    224 crops; 8 frames a clip to stay fast): the kernel path (decoded frames read where the
    decoder left them, test frames built in chunks, float clips gathered and divided in one
    pass) against the numpy path, which tests/test_ucf101_tf_reference.py pins to
    tf.image.resize. Training clips with the protocol seeded three ways (crops, flips)."""
    if not kernels.AVAILABLE:
        pytest.skip("numba not installed")
    video = _jpeg_video(tmp_path / f"v_Seed{seed}_g01_c01.jpgs",
                        textured(num=30 + 9 * seed, seed=seed))
    protocol = sm.MMV_PROTOCOL.replace(num_frames=8, seed=seed)
    draws = [sm.train_draw(video.name, k, video.num_frames, (240, 320), protocol)
             for k in range(10)]
    assert {d.flip for d in draws} == {False, True}

    def clips():
        sm.forget_test_frames()  # nothing kept from the other path
        return [sm.train_clips(video, range(10), protocol, output=output) for output in
                ("float", "uint8")] + [sm.test_clips(video, protocol, output=output) for
                                       output in ("float", "uint8")] + [
                sm.test_clips(video, protocol, windows=[7, 2])]

    fast = clips()
    monkeypatch.setattr(kernels, "AVAILABLE", False)
    for got, want in zip(fast, clips()):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_extraction_clips_equal_the_numpy_reference(store, monkeypatch):
    """What the encoder receives from extract_features (two threads, batches straddling
    videos, the last one padded) equals the clips built one video at a time on the numpy
    path, for both protocols."""
    from test_ucf101_features import PROTOCOL

    from helpers.ucf101.features import extract_features

    if not kernels.AVAILABLE:
        pytest.skip("numba not installed")
    names = store.names()[:5]

    def received(sampling):
        seen = []

        def encoder(clips):
            seen.append(np.array(clips))
            return np.zeros((len(clips), 1), np.float32)

        sm.forget_test_frames()
        extract_features(store, names, encoder, "record", sampling=sampling, protocol=PROTOCOL,
                         cache_dir=None, batch_size=3, workers=2, progress=False)
        return np.concatenate(seen)

    got = {sampling: received(sampling) for sampling in ("train", "test")}
    monkeypatch.setattr(kernels, "AVAILABLE", False)
    sm.forget_test_frames()
    for sampling, build in (("train", lambda v: sm.train_clips(v, range(3), PROTOCOL)),
                            ("test", lambda v: sm.test_clips(v, PROTOCOL))):
        want = np.concatenate([build(store.video(name)) for name in names])
        count = len(want)
        np.testing.assert_array_equal(got[sampling][:count], want)
        np.testing.assert_array_equal(got[sampling][count:], want[-1:].repeat(
            len(got[sampling]) - count, axis=0))  # the padding repeats the last clip
