"""The numpy sampling against TensorFlow itself (what the release's eval_ucf101.py ran).

Kept in its own file because importing TensorFlow takes seconds; skipped where it is absent.
"""

import numpy as np
import pytest

from helpers.ucf101 import sampling as sm

tf = pytest.importorskip("tensorflow")


def test_resize_is_bit_identical_to_tf_image_resize():
    rng = np.random.default_rng(0)
    cases = [((2, 240, 320), 224), ((1, 320, 240), 224), ((1, 226, 400), 224),
             ((2, 120, 160), 64), ((1, 97, 131), 112), ((1, 100, 100), 224)]
    for (t, h, w), min_resize in cases:
        frames = rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8)
        size = sm.resized_size(h, w, min_resize)
        want = tf.image.resize(frames, size).numpy()  # bilinear, antialias=False (TF2 default)
        got = sm.resize_bilinear(frames, size)
        # Exact on purpose, and on any CPU: both sides do the same elementwise float32 operations
        # in the same order (no sums, no CPU-dispatched kernels), and only bit-identity makes the
        # cast to uint8 below agree everywhere.
        np.testing.assert_array_equal(got, want)
        # The protocol's resize_smallest: the same, cast back to uint8 with tf.cast.
        want_uint8 = tf.cast(tf.image.resize(frames, size), tf.uint8).numpy()
        if size != (h, w):
            np.testing.assert_array_equal(sm.resize_smallest(frames, min_resize), want_uint8)


def test_central_crop_matches_resize_with_crop_or_pad():
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (2, 240, 320, 3), dtype=np.uint8)
    resized = tf.cast(tf.image.resize(frames, (224, 298)), tf.uint8)
    want = tf.cast(tf.image.resize_with_crop_or_pad(resized, 224, 224), tf.float32) / 255.0
    offset = sm.central_crop_offsets(224, 298, 224)
    np.testing.assert_array_equal(sm.resize_and_crop(frames, 224, 224, offset), want.numpy())


def test_window_starts_match_tf_linspace():
    lengths = np.arange(1, 1500)
    for windows in (10, 3, 7):
        # One scalar tf.linspace per length, as the release calls it (batched through map_fn).
        stops = tf.constant(np.maximum(0, lengths - 64), tf.float32)
        scalar_calls = tf.function(lambda s: tf.map_fn(
            lambda stop: tf.cast(tf.linspace(0.0, stop, windows), tf.int32), s,
            fn_output_signature=tf.int32))
        want = scalar_calls(stops).numpy()
        got = np.stack([sm.test_window_starts(int(n), windows) for n in lengths])
        np.testing.assert_array_equal(got, want, err_msg=f"windows={windows}")


def test_jpeg_decoders(tmp_path):
    """OpenCV and Pillow decode like TF's accurate DCT; decoder='tensorflow' like the release
    (TF's default)."""
    from helpers.ucf101 import store as st
    from helpers.standins.ucf101 import CLASS_SPECS, render_video, write_avi

    avi = write_avi(tmp_path / "v_A_g01_c01.avi", render_video(CLASS_SPECS[4], 6, (48, 64)), 25)
    jpegs = st.reencode_video(avi)
    store_video = st.write_container(tmp_path / "v.jpgs", jpegs)
    pillow = st.StoredVideo(store_video, decoder="pillow").frames()
    opencv = st.StoredVideo(store_video).frames()  # the default
    released = st.StoredVideo(store_video, decoder="tensorflow").frames()
    for i, jpeg in enumerate(jpegs):
        accurate = tf.io.decode_jpeg(jpeg, channels=3, dct_method="INTEGER_ACCURATE").numpy()
        np.testing.assert_array_equal(pillow[i], accurate)
        np.testing.assert_array_equal(opencv[i], accurate)
        np.testing.assert_array_equal(released[i], tf.image.decode_image(jpeg, channels=3).numpy())
    assert np.any(pillow != released)  # the two DCTs really differ
    assert np.abs(pillow.astype(int) - released.astype(int)).max() <= 8
    with pytest.raises(ValueError, match="decoder must be one of"):
        st.StoredVideo(store_video, decoder="turbojpeg")
