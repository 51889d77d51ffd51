"""helpers.mmv.hub in real mode against a local server answering like tfhub.dev.

A small SavedModel with the MMV signatures' names and shapes (not the stand-in export, which is
150 MB) is served at the official handle's path; ``hub.load("s3d")`` must download it through
the course's TF-Hub loader and ``embed --audio/--text`` must write every embedding.
"""

import wave

import numpy as np
import pytest
from httpserver_fixture import LocalServer

from helpers import config, mmv
from helpers.mmv import hub


@pytest.fixture(scope="module")
def server():
    local = LocalServer(max_requests=200, lifetime=300).start()
    try:
        yield local
    finally:
        local.stop()


def _module(root, signatures=("video", "audio", "text")):
    import tensorflow as tf

    class Fake(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(tf.random.stateless_normal([3, 512], seed=[1, 2]))

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, None, 3], tf.float32)])
        def video(self, images):
            pooled = tf.reduce_mean(images, axis=[1, 2, 3])
            va = pooled @ self.w
            return {"before_head": tf.tile(pooled, [1, 342])[:, :1024], "va": va, "vat": va[:, :256]}

        @tf.function(input_signature=[tf.TensorSpec([None, 153600], tf.float32)])
        def audio(self, audio):
            energy = tf.reduce_mean(tf.abs(audio), axis=1, keepdims=True)
            va = tf.tile(energy, [1, 512])
            return {"va": va, "vat": va[:, :256], "last_conv": tf.zeros([tf.shape(audio)[0], 10, 3, 8])}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def text(self, words):
            length = tf.cast(tf.strings.length(words), tf.float32)[:, None]
            return {"vat": tf.tile(length, [1, 256])}

    fake = Fake()
    tf.saved_model.save(fake, str(root), signatures={s: getattr(fake, s) for s in signatures})
    return root


@pytest.fixture
def real(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "unused"))
    previous = config.requested_mode()
    config.set_mode("real")
    try:
        yield tmp_path
    finally:
        config.set_mode(previous)


def _write_wav(path, seconds=1.0, rate=44_100, amplitude=0.5):
    t = np.arange(int(seconds * rate)) / rate
    samples = (amplitude * 32767 * np.sin(2 * np.pi * 440 * t)).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(samples.tobytes())
    return path


def test_load_downloads_the_official_handle_and_embeds_all_three(server, real, tmp_path_factory):
    folder = _module(tmp_path_factory.mktemp("fake") / "module")
    with server.use_for("tfhub", prefix="ok"):
        assert hub.default_handle("s3d") == server.url("/ok/tfhub/deepmind/mmv/s3d/1")
        server.add_tfhub_module("/ok/tfhub/deepmind/mmv/s3d/1", folder)
        module = hub.load("s3d", timeout=10)
        assert hub.resolve_mode("s3d") == "real"
        clips = np.random.default_rng(0).uniform(0, 1, (3, 4, 8, 8, 3)).astype(np.float32)
        assert {k: v.shape for k, v in hub.embed_videos(module, clips, batch_size=2).items()} == \
            {"before_head": (3, 1024), "va": (3, 512), "vat": (3, 256)}
        assert hub.embed_texts(module, ["ab", "abcd"])["vat"][:, 0].tolist() == [2.0, 4.0]
        hub.load("s3d", timeout=10)  # cached: no second download
        assert server.stats("/ok/tfhub/deepmind/mmv/s3d/1?tf-hub-format=compressed").requests == 1


def test_embed_cli_writes_audio_and_text_embeddings(server, real, tmp_path, tmp_path_factory):
    folder = _module(tmp_path_factory.mktemp("fake-cli") / "module")
    loud = _write_wav(tmp_path / "loud.wav", amplitude=0.8)
    quiet = _write_wav(tmp_path / "quiet.wav", amplitude=0.1)
    out = tmp_path / "emb.npz"
    with server.use_for("tfhub", prefix="cli"):
        server.add_tfhub_module("/cli/tfhub/deepmind/mmv/s3d/1", folder)
        assert mmv.main(["embed", "--backbone", "s3d", "--audio", str(loud), "--audio", str(quiet),
                         "--text", "a dog", "--out", str(out)]) == 0
    saved = dict(np.load(out))
    assert saved["audio_va"].shape == (2, 512) and saved["audio_vat"].shape == (2, 256)
    assert saved["audio_last_conv"].shape == (2, 10, 3, 8)
    assert saved["text_vat"].shape == (1, 256) and saved["texts"].tolist() == ["a dog"]
    # 1 s of sound resampled to 48 kHz and zero-padded to 3.2 s: mean |x| of a sine is 2/pi of
    # its amplitude, times 1/3.2 of the window. The louder file must come out louder.
    expected = 0.8 * 2 / np.pi / 3.2
    assert abs(saved["audio_va"][0, 0] - expected) < 0.02 * expected
    assert saved["audio_va"][0, 0] > 5 * saved["audio_va"][1, 0]


def test_a_module_without_audio_or_a_missing_handle_is_explained(server, real, tmp_path_factory):
    folder = _module(tmp_path_factory.mktemp("fake-video") / "module", signatures=("video", "text"))
    with server.use_for("tfhub", prefix="partial"):
        server.add_tfhub_module("/partial/tfhub/deepmind/mmv/s3d/1", folder)
        with pytest.raises(hub.MmvHubError, match="missing audio"):
            hub.load("s3d", timeout=10)
    with server.use_for("tfhub", prefix="absent"):
        with pytest.raises(hub.MmvHubError, match="404|not found|Not Found"):
            hub.load("tsm_resnet_x1", timeout=10, retries=0)
    with pytest.raises(hub.MmvHubError, match="does not exist"):
        hub.load("s3d", real / "no-such-folder")


def test_compare_releases_reports_a_module_that_is_not_the_checkpoint(server, real, tmp_path,
                                                                     tmp_path_factory, capsys):
    # The fake module's video outputs have nothing to do with the checkpoint: the check must say
    # MISMATCH and exit 3 (its agreement on the stand-in export runs in notebook 05).
    from helpers.standins import mmv as standin

    folder = _module(tmp_path_factory.mktemp("fake-compare") / "module")
    checkpoint = standin.write_checkpoint(standin.make_checkpoint("s3d", 0), tmp_path / "ckpt.pkl")
    clips = tmp_path / "clips.npy"
    np.save(clips, np.random.default_rng(1).uniform(0, 1, (2, 4, 32, 32, 3)).astype(np.float32))
    with server.use_for("tfhub", prefix="compare"):
        server.add_tfhub_module("/compare/tfhub/deepmind/mmv/s3d/1", folder)
        status = mmv.main(["compare-releases", "--backbone", "s3d", "--checkpoint", str(checkpoint),
                           "--clips", str(clips)])
    out = capsys.readouterr().out
    assert status == 3, out
    assert "MISMATCH" in out and "before_head" in out
