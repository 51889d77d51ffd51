"""Feature extraction: batching, padding, caching, and resuming after an interruption."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from helpers.ucf101 import features as uf
from helpers.ucf101 import store as st
from helpers.standins.ucf101 import make_mini_ucf101
from helpers.ucf101.sampling import Protocol

PROTOCOL = Protocol(num_frames=4, stride=2, train_passes=3, test_windows=2, min_resize=32,
                    crop_size=32)
ROOT = Path(__file__).resolve().parent.parent


def colour_encoder(clips):
    """Deterministic test features, [B, 8]: mean colour and a few pooled statistics.

    Computed one clip at a time, so a clip's features are the same bits in whatever batch, batch
    position or thread it is encoded (a batched reduction may sum in another order for another
    batch shape): that is what lets the tests below compare features exactly across batchings,
    caches and resumes, where a mix-up of videos or passes must not hide inside a tolerance.
    """
    return np.stack([_clip_features(clip) for clip in np.asarray(clips, dtype=np.float32)])


def _clip_features(clip):
    mean = clip.mean(axis=(0, 1, 2))
    spread = clip.std(axis=(0, 1, 2))
    motion = np.abs(np.diff(clip, axis=0)).mean()[None]
    bright = clip.max()[None]
    return np.concatenate([mean, spread, motion, bright])


class Counting:
    """Wraps an encoder: counts calls and batch shapes; can fail after ``fail_after`` calls."""

    def __init__(self, fn=colour_encoder, fail_after=None):
        self.fn, self.fail_after, self.calls, self.shapes = fn, fail_after, 0, []

    def __call__(self, clips):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        self.calls += 1
        self.shapes.append(clips.shape)
        return self.fn(clips)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    mini = make_mini_ucf101(tmp_path_factory.mktemp("mini") / "ucf", num_classes=3,
                            groups=(1, 8, 22), clips_per_group=2, frame_size=(48, 64),
                            seconds=(0.6, 1.0), layout="flat")
    root = tmp_path_factory.mktemp("store")
    sources = {n: mini.videos_dir / f"{n}.avi" for n in mini.videos}
    st.prepare_store(sources, root, workers=2, progress=False)
    return st.FrameStore(root)


def extract(store, names, encoder, cache, sampling="train", **kwargs):
    options = dict(protocol=PROTOCOL, cache_dir=cache, batch_size=4, workers=2, progress=False,
                   part_videos=2)
    options.update(kwargs)
    return uf.extract_features(store, names, encoder, "colour-v1", sampling=sampling, **options)


def test_shapes_padding_and_cache(store, tmp_path):
    names = store.names()  # 18 videos
    encoder = Counting()
    train = extract(store, names, encoder, tmp_path)
    assert train.shape == (18, 3, 8) and train.dtype == np.float32
    assert encoder.calls == -(-18 * 3 // 4)  # ceil(54 / 4) batches
    assert set(encoder.shapes) == {(4, 4, 32, 32, 3)}  # the last batch was padded
    test = extract(store, names, encoder, tmp_path, sampling="test")
    assert test.shape == (18, 2, 8)
    # Rerun: everything comes from the cache, in the order asked for.
    again = Counting()
    np.testing.assert_array_equal(extract(store, names[::-1], again, tmp_path), train[::-1])
    assert again.calls == 0
    # A subset is served from the same cache; no cache means no files.
    np.testing.assert_array_equal(extract(store, names[3:5], again, tmp_path), train[3:5])
    assert again.calls == 0
    np.testing.assert_array_equal(extract(store, names, Counting(), None), train)
    # Row k of axis 1 is training pass k: fewer passes are a prefix of more passes.
    fewer = extract(store, names, Counting(), tmp_path, protocol=PROTOCOL.replace(train_passes=2))
    np.testing.assert_array_equal(fewer, train[:, :2])


def test_features_do_not_depend_on_batching_or_threads(store, tmp_path):
    names = store.names()[:6]
    a = extract(store, names, Counting(), None, batch_size=1, workers=1)
    b = extract(store, names, Counting(), None, batch_size=5, workers=3, prefetch=1)
    np.testing.assert_array_equal(a, b)


def test_resume_after_an_exception_gives_the_same_features(store, tmp_path):
    names = store.names()
    reference = extract(store, names, Counting(), None)
    failing = Counting(fail_after=5)
    with pytest.raises(KeyboardInterrupt):
        extract(store, names, failing, tmp_path)
    folder = next((tmp_path / "colour-v1").iterdir())
    parts = list(folder.glob("part-*.npz"))
    assert parts and not list(folder.glob(".tmp-*"))  # only complete parts
    finished = sum(len(np.load(p)["names"]) for p in parts)
    assert 0 < finished < len(names)
    resumed = Counting()
    np.testing.assert_array_equal(extract(store, names, resumed, tmp_path), reference)
    assert resumed.calls == -(-(len(names) - finished) * 3 // 4)  # only the rest


def test_resume_after_the_process_is_killed(store, tmp_path):
    """SIGKILL in the middle (no cleanup runs at all), then rerun: the same features."""
    names = store.names()
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_ucf101_features import colour_encoder, extract
        from helpers.ucf101 import store as st
        calls = 0
        def encoder(clips):
            global calls
            calls += 1
            if calls == 9:
                os.kill(os.getpid(), signal.SIGKILL)
            return colour_encoder(clips)
        extract(st.FrameStore({str(store.root)!r}), {names!r}, encoder, {str(tmp_path)!r})
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                            env=dict(os.environ), timeout=120)
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()[-2000:]
    folder = next((tmp_path / "colour-v1").iterdir())
    killed_parts = list(folder.glob("part-*.npz"))
    assert killed_parts  # some work survived
    resumed = Counting()
    features = extract(store, names, resumed, tmp_path)
    np.testing.assert_array_equal(features, extract(store, names, Counting(), None))
    assert 0 < resumed.calls < -(-len(names) * 3 // 4)


def test_changed_video_is_recomputed(store, tmp_path):
    names = store.names()[:4]
    first = extract(store, names, Counting(), tmp_path)
    fake = dict(zip(names, [(1, 1)] * 4))  # pretend the store's copies changed
    folder = uf.feature_cache_dir(tmp_path, "colour-v1", "train", PROTOCOL, store)
    found, _ = uf._load_parts(folder, set(names), fake)
    assert found == {}
    found, _ = uf._load_parts(folder, set(names),
                              {n: (store.video(n).num_frames, store.video(n).file_size)
                               for n in names})
    assert sorted(found) == sorted(names)
    np.testing.assert_array_equal(np.stack([found[n] for n in names]), first)


def test_consolidate_merges_parts(store, tmp_path):
    names = store.names()
    features = extract(store, names, Counting(), tmp_path, part_videos=1)
    folder = uf.feature_cache_dir(tmp_path, "colour-v1", "train", PROTOCOL, store)
    count = len(list(folder.glob("part-*.npz")))
    assert 1 < count <= len(names)  # a part is written after each batch that finishes a video
    assert uf.consolidate(folder) == count
    assert len(list(folder.glob("part-*.npz"))) == 1
    counting = Counting()
    np.testing.assert_array_equal(extract(store, names, counting, tmp_path), features)
    assert counting.calls == 0


def test_cache_key_depends_on_the_settings(store, tmp_path):
    a = uf.feature_cache_dir(tmp_path, "enc", "train", PROTOCOL, store)
    assert a == uf.feature_cache_dir(tmp_path, "enc", "train", PROTOCOL, store)
    assert a != uf.feature_cache_dir(tmp_path, "enc", "test", PROTOCOL, store)
    assert a != uf.feature_cache_dir(tmp_path, "enc2", "train", PROTOCOL, store)
    assert a != uf.feature_cache_dir(tmp_path, "enc", "train", PROTOCOL.replace(seed=1), store)
    assert a != uf.feature_cache_dir(tmp_path, "enc", "train", PROTOCOL.replace(crop_size=16),
                                     store)
    tf_decoded = st.FrameStore(store.root, decoder="tensorflow")
    assert a != uf.feature_cache_dir(tmp_path, "enc", "train", PROTOCOL, tf_decoded)


def test_bad_inputs_and_encoders(store, tmp_path):
    names = store.names()[:2]
    with pytest.raises(uf.FeatureError, match="not in the store"):
        extract(store, names + ["v_Nope_g01_c01"], Counting(), tmp_path)
    with pytest.raises(uf.FeatureError, match=r"returned shape \(3, 8\) for 4 clips"):
        extract(store, names, lambda clips: colour_encoder(clips)[:3], None)
    with pytest.raises(uf.FeatureError, match="NaN"):
        extract(store, names, lambda clips: colour_encoder(clips) * np.nan, None)
    with pytest.raises(uf.FeatureError, match="listed twice"):
        extract(store, names + names[:1], Counting(), None)
    with pytest.raises(uf.FeatureError, match="no videos"):
        extract(store, [], Counting(), None)
    with pytest.raises(ValueError, match="sampling"):
        extract(store, names, Counting(), None, sampling="val")
