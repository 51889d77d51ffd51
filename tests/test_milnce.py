"""helpers.milnce and its stand-in: loading through tensorflow_hub, errors, embedding, CLI."""

import http.server
import subprocess
import sys
import threading
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from helpers import config, downloads, milnce, video
from helpers.standins import milnce as standin

ROOT = Path(__file__).resolve().parent.parent  # subprocesses import helpers from here
tf = milnce.import_tensorflow()
hub = milnce.import_hub()


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """The stand-in in both formats (seed 0), plus a TF2 build with another seed."""
    root = tmp_path_factory.mktemp("standins")
    return {
        "tf2": standin.build_module(root / "tf2", tf1_style=False, seed=0),
        "tf1": standin.build_module(root / "tf1", tf1_style=True, seed=0),
        "tf2_seed1": standin.build_module(root / "tf2_seed1", tf1_style=False, seed=1),
    }


@pytest.fixture(scope="module")
def model(builds):
    return hub.load(str(builds["tf1"]))


@pytest.fixture
def real_mode():
    """Real mode for one test (caches stay in the test's temporary COURSE_CACHE_DIR)."""
    previous = config.requested_mode()
    config.set_mode("real")
    yield
    config.set_mode(previous)


# Equal inputs in two rows of one batch agree to float32 rounding, not bit for bit: the matmul
# kernels (oneDNN, Eigen) choose their vector width by CPU and treat leftover rows apart, so the
# rows take different summation orders. On an AVX2 CPU two equal sentences differed by 3e-7.
# Entries run from ~1e-4 to ~1, so a relative tolerance alone fails on the small ones: atol 1e-5
# is 30x that difference and 100x below the 1e-3 by which different sentences differ
# (test_word_order_and_words_matter). The same holds across batch sizes (other batch shapes,
# other blockings of the same sums).
SAME_INPUT_OTHER_ROW = dict(rtol=1e-5, atol=1e-5)


def random_clips(n, t=8, size=32, seed=0):
    return np.random.default_rng(seed).random((n, t, size, size, 3)).astype(np.float32)


# ------------------------------------------------------------------------------------------
# The stand-in has the real module's interface
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["tf1", "tf2"])
def test_standin_signatures_match_the_real_module(builds, kind):
    module = hub.load(str(builds[kind]))
    assert sorted(module.signatures.keys()) == ["text", "video"]  # and no "default"
    video_sig, text_sig = module.signatures["video"], module.signatures["text"]
    (video_spec,) = video_sig.structured_input_signature[1].values()
    assert list(video_sig.structured_input_signature[1]) == ["images"]
    assert video_spec.dtype == tf.float32 and video_spec.shape.as_list() == [None, None, None, None, 3]
    (text_spec,) = text_sig.structured_input_signature[1].values()
    assert list(text_sig.structured_input_signature[1]) == ["words"]
    assert text_spec.dtype == tf.string and text_spec.shape.as_list() == [None]
    outputs = {k: (v.dtype, v.shape.as_list()) for k, v in video_sig.structured_outputs.items()}
    assert outputs == {"video_embedding": (tf.float32, [None, 512]),
                       "mixed_5c": (tf.float32, [None, 1024])}
    outputs = {k: (v.dtype, v.shape.as_list()) for k, v in text_sig.structured_outputs.items()}
    assert outputs == {"text_embedding": (tf.float32, [None, 512])}
    # Called both ways the reference describes: keyword, and positional with a tf.Tensor.
    clip = tf.constant(random_clips(2))
    by_name = video_sig(images=clip)["video_embedding"].numpy()
    # Exact: the same function on the same tensor, only the calling convention differs.
    np.testing.assert_array_equal(video_sig(clip)["video_embedding"].numpy(), by_name)


def test_tf1_build_is_tf1_hub_format(builds):
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((builds["tf1"] / "saved_model.pb").read_bytes())
    assert sorted(sorted(m.meta_info_def.tags) for m in proto.meta_graphs) == [[], ["train"]]
    assert (builds["tf1"] / "tfhub_module.pb").read_bytes() == b"\x08\x01"
    assert (builds["tf1"] / "assets" / "vocab.txt").exists()
    assert not (builds["tf2"] / "tfhub_module.pb").exists()
    train = hub.load(str(builds["tf1"]), tags={"train"})
    assert sorted(train.signatures.keys()) == ["text", "video"]
    size = sum(f.stat().st_size for f in builds["tf1"].rglob("*") if f.is_file())
    assert size < 8_000_000


def test_both_builds_compute_the_same_and_the_seed_matters(builds):
    clips = random_clips(2)
    words = ["a dog playing guitar", "waterfall"]
    out = {}
    for kind in ("tf1", "tf2", "tf2_seed1"):
        module = hub.load(str(builds[kind]))
        out[kind] = (milnce.embed_videos(module, clips)["video_embedding"],
                     milnce.embed_texts(module, words))
    for a, b in zip(out["tf1"], out["tf2"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    for a, b in zip(out["tf1"], out["tf2_seed1"]):
        assert np.abs(a - b).max() > 1e-2


def test_build_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "x").write_text("keep me")
    with pytest.raises(FileExistsError):
        standin.build_module(tmp_path)


@pytest.mark.parametrize("sentence, same_as", [
    ("Playing, GUITAR!!", "playing guitar"),
    ("waterfall xyzzy", "waterfall"),  # unknown words are dropped
    ("  car\tdrifting\n", "car drifting"),
    ("dog's ball", "ball"),  # "dog's" is one token, unknown
    ("red_square moving", "moving"),  # underscores belong to words
    ("Café RED", "red"),
    (" ".join(["red", "blue"] * 10), " ".join(["red", "blue"] * 8)),  # at most 16 words
])
def test_text_is_tokenised_in_the_graph(model, sentence, same_as):
    known = [w for w in standin.tokenize(sentence) if w in standin.VOCABULARY]
    assert known[:16] == standin.tokenize(same_as)
    a, b = milnce.embed_texts(model, [sentence, same_as])
    np.testing.assert_allclose(a, b, **SAME_INPUT_OTHER_ROW)


def test_word_order_and_words_matter(model):
    emb = milnce.embed_texts(model, ["waterfall", "playing guitar", "guitar playing"])
    assert np.abs(emb[0] - emb[1]).max() > 1e-3
    # Max-pooling over words ignores order (as in the real text tower).
    np.testing.assert_allclose(emb[1], emb[2], **SAME_INPUT_OTHER_ROW)


# ------------------------------------------------------------------------------------------
# Loading by handle through the TF-Hub cache
# ------------------------------------------------------------------------------------------

def test_tiny_mode_loads_the_official_handle_from_the_tiny_cache():
    assert config.requested_mode() == "tiny"
    module = milnce.load()
    folder = milnce.cache_folder(milnce.HANDLE, "tiny")
    assert folder.name == "1cfdb3e6a79e82c0addc6f5fdec5126c65eca965"
    assert folder.parent == config.tfhub_cache_dir("tiny")
    assert standin.read_marker(folder)["tf1_style"] is True
    assert (folder / "tfhub_module.pb").exists()
    assert sorted(module.signatures.keys()) == ["text", "video"]
    # The real cache was not touched.
    assert not milnce.cache_folder(milnce.HANDLE, "real").exists()


def test_ensure_in_cache_is_atomic_and_reused(tmp_path, monkeypatch):
    folder = standin.ensure_in_cache(tmp_path, milnce.HANDLE)
    stamp = (folder / "saved_model.pb").stat().st_mtime_ns
    assert standin.ensure_in_cache(tmp_path, milnce.HANDLE) == folder
    assert (folder / "saved_model.pb").stat().st_mtime_ns == stamp  # reused, not rebuilt

    # An older stand-in version is replaced.
    marker = standin.read_marker(folder)
    (folder / standin.MARKER).write_text('{"version": 0}')
    standin.ensure_in_cache(tmp_path, milnce.HANDLE)
    assert standin.read_marker(folder) == marker

    # A build that dies half-way leaves nothing where hub.load would look.
    other = "https://tfhub.dev/some/other/1"

    def dying_build(dest, **kwargs):
        dest.mkdir(parents=True)
        (dest / "saved_model.pb").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(standin, "build_module", dying_build)
    with pytest.raises(KeyboardInterrupt):
        standin.ensure_in_cache(tmp_path, other)
    assert not (tmp_path / standin.cache_folder_name(other)).exists()
    # (the builders' per-file lock files, empty, may stay: helpers.atomic.locked)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == \
        [folder.name]


def test_ensure_in_cache_refuses_to_overwrite_a_real_module(tmp_path):
    real = tmp_path / standin.cache_folder_name(milnce.HANDLE)
    real.mkdir()
    (real / "saved_model.pb").write_bytes(b"real module")
    with pytest.raises(FileExistsError, match="not the course's stand-in"):
        standin.ensure_in_cache(tmp_path, milnce.HANDLE)
    assert (real / "saved_model.pb").read_bytes() == b"real module"


def test_load_a_local_folder(builds):
    module = milnce.load(builds["tf2"])
    assert sorted(module.signatures.keys()) == ["text", "video"]
    with pytest.raises(milnce.MilnceError, match="does not exist"):
        milnce.load(builds["tf2"].parent / "nothing-here")


def test_load_refuses_a_module_without_the_signatures(tmp_path):
    class Other(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def serve(self, x):
            return {"y": x * 2}

    other = Other()
    tf.saved_model.save(other, str(tmp_path / "other"),
                        signatures={"serving_default": other.serve.get_concrete_function()})
    with pytest.raises(milnce.MilnceError, match="not the MIL-NCE module.*serving_default"):
        milnce.load(tmp_path / "other")


# ------------------------------------------------------------------------------------------
# Errors users hit, with the fix
# ------------------------------------------------------------------------------------------

class _Refusing(http.server.BaseHTTPRequestHandler):
    status = 403

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(self.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def refusing_server():
    servers = []

    def start(status):
        handler = type("Handler", (_Refusing,), {"status": status})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_http_403_names_the_cause_and_the_fix(real_mode, refusing_server):
    base = refusing_server(403)
    with pytest.raises(milnce.MilnceError) as info:
        milnce.load(f"{base}/deepmind/mil-nce/s3d/1")
    message = str(info.value)
    assert "403" in message and "Kaggle" in message and "install_archive" in message
    assert "COURSE_MODE=tiny" in message


def test_http_404_names_the_handle(real_mode, refusing_server):
    base = refusing_server(404)
    with pytest.raises(milnce.MilnceError, match="404"):
        milnce.load(f"{base}/deepmind/no-such-model/1")


def test_offline_says_check_the_network_or_use_tiny(real_mode):
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    with pytest.raises(milnce.MilnceError) as info:
        milnce.load("http://127.0.0.1:9/deepmind/mil-nce/s3d/1")
    assert "cannot reach the host" in str(info.value) and "Connection refused" in str(info.value)
    assert "COURSE_MODE=tiny" in str(info.value)
    # The explanation is helpers.downloads' (one place for TF-Hub errors); hub's error is kept.
    assert isinstance(info.value.__cause__, downloads.DownloadError)
    assert isinstance(info.value.__cause__.__cause__, urllib.error.URLError)


def test_broken_cache_folder_is_removed_and_downloaded_again(real_mode, capsys):
    # A half-written entry (saved_model.pb cut short) is found before hub.load would use it.
    handle = "http://127.0.0.1:9/broken/1"
    folder = milnce.cache_folder(handle, "real")
    folder.mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"half a download")
    with pytest.raises(milnce.MilnceError, match="cannot reach the host"):  # nothing serves it
        milnce.load(handle)
    assert not folder.exists()
    assert f"Removed {folder}" in capsys.readouterr().err


def test_unloadable_cache_folder_says_delete_it(real_mode, tmp_path, monkeypatch):
    # A folder the file checks find complete, which TensorFlow still cannot load (a TF1 hub
    # module without the graph for the empty tags hub asks for): named, with "delete it".
    # A cache of its own: the folder is left in place (as the test asserts), so in the shared
    # test cache a second run of this test would find it already made.
    from tensorflow.core.protobuf import saved_model_pb2

    monkeypatch.setenv(config.ENV_CACHE_DIR, str(tmp_path / "cache"))

    handle = "http://127.0.0.1:9/unloadable/1"
    folder = milnce.cache_folder(handle, "real")
    folder.mkdir(parents=True)
    proto = saved_model_pb2.SavedModel(saved_model_schema_version=1)
    proto.meta_graphs.add().meta_info_def.tags.append("train")
    (folder / "saved_model.pb").write_bytes(proto.SerializeToString())
    (folder / "tfhub_module.pb").write_bytes(b"\x08\x01")
    with pytest.raises(milnce.MilnceError) as info:
        milnce.load(handle)
    assert str(folder) in str(info.value) and "delete" in str(info.value)
    assert folder.exists()  # not ours to remove: it may be a hand-made copy


def test_install_archive_puts_a_downloaded_module_in_the_real_cache(real_mode, builds, tmp_path):
    import tarfile

    archive = tmp_path / "s3d.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in builds["tf1"].rglob("*"):
            tar.add(path, arcname=str(path.relative_to(builds["tf1"])), recursive=False)
    handle = "http://127.0.0.1:9/manual/1"
    folder = milnce.install_archive(archive, handle)
    assert folder == milnce.cache_folder(handle, "real")
    module = milnce.load(handle)  # no network: found in the cache
    assert sorted(module.signatures.keys()) == ["text", "video"]


@pytest.mark.parametrize("missing, expected", [
    ("pkg_resources", ["pkg_resources", 'setuptools<80.9', "restart"]),  # setuptools >= 82
    ("tf_keras", ["tf-keras", "Keras 3", "restart"]),  # tf-keras not installed
])
def test_missing_setuptools_or_tf_keras_give_the_fix(monkeypatch, missing, expected):
    # Re-run tensorflow_hub's own import-time checks with the module made unimportable
    # (None in sys.modules); monkeypatch puts everything back afterwards.
    monkeypatch.delitem(sys.modules, "tensorflow_hub")
    monkeypatch.setitem(sys.modules, missing, None)
    with pytest.raises(milnce.MilnceError) as info:
        milnce.import_hub()
    for text in expected:
        assert text in str(info.value)


def test_no_default_signature_is_explained(builds):
    with pytest.raises(milnce.MilnceError, match="no 'default' signature"):
        milnce.keras_layer(builds["tf1"], signature=None)
    with pytest.raises(ValueError) as info:
        hub.KerasLayer(str(builds["tf1"]))
    assert "Unknown signature default" in str(info.value)
    assert "signature='video'" in milnce.explain(info.value)
    layer = milnce.keras_layer(str(builds["tf1"]), signature="text")
    assert layer(tf.constant(["a dog"]))["text_embedding"].shape == (1, 512)


def test_float64_is_cast_by_embed_and_explained_when_called_by_hand(model):
    clips = random_clips(2).astype(np.float64)
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        model.signatures["video"](images=tf.constant(clips))
    assert "float32" in milnce.explain(info.value)
    ours = milnce.embed_videos(model, clips)["video_embedding"]
    as_float32 = milnce.embed_videos(model, clips.astype(np.float32))["video_embedding"]
    # Exact: after the cast both are the same call on the same float32 batch.
    np.testing.assert_array_equal(ours, as_float32)


def test_startup_filter_drops_only_known_noise(capfd):
    import os

    from helpers import gpu

    with gpu.quiet_startup():
        os.write(2, b"I0000 port.cc:153] oneDNN custom operations are on. You may see ...\n")
        os.write(2, b"I0000 device_compiler.h:196] Compiled cluster using XLA!  This line is "
                    b"logged at most once for the lifetime of the process.\n")
        os.write(2, b"E0000 something.cc:1] a real error\n")
    err = capfd.readouterr().err
    assert "a real error" in err and "oneDNN" not in err and "XLA" not in err


# ------------------------------------------------------------------------------------------
# Embedding helpers
# ------------------------------------------------------------------------------------------

def test_embed_videos_batches_give_the_same_result(model):
    clips = random_clips(5)
    whole = milnce.embed_videos(model, clips, batch_size=8)
    assert whole["video_embedding"].shape == (5, 512) and whole["video_embedding"].dtype == np.float32
    assert whole["mixed_5c"].shape == (5, 1024) and whole["mixed_5c"].dtype == np.float32
    assert (whole["mixed_5c"] >= 0).all()  # a pooled ReLU feature, as in S3D
    batched = milnce.embed_videos(model, clips, batch_size=2, progress=True)
    for key in whole:
        np.testing.assert_allclose(batched[key], whole[key], **SAME_INPUT_OTHER_ROW)
    mixed = milnce.embed_videos(model, [clips[0], random_clips(1, t=4, size=24)[0], clips[1]],
                                batch_size=3)
    np.testing.assert_allclose(mixed["video_embedding"][[0, 2]], whole["video_embedding"][:2],
                               **SAME_INPUT_OTHER_ROW)
    empty = milnce.embed_videos(model, np.zeros((0, 4, 8, 8, 3), np.float32))
    assert empty["video_embedding"].shape == (0, 512) and empty["mixed_5c"].shape == (0, 1024)


def test_embed_videos_refuses_wrong_input(model):
    clips = random_clips(1)
    with pytest.raises(ValueError, match="uint8"):
        milnce.embed_videos(model, (clips * 255).astype(np.uint8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        milnce.embed_videos(model, clips * 255)
    with pytest.raises(ValueError, match=r"clips\[None\]"):
        milnce.embed_videos(model, clips[0])
    with pytest.raises(TypeError, match="milnce.load"):
        milnce.embed_videos(object(), clips)


def test_embed_texts_and_window_average(model):
    single = milnce.embed_texts(model, "playing guitar")
    assert single.shape == (1, 512) and single.dtype == np.float32
    assert milnce.embed_texts(model, []).shape == (0, 512)
    with pytest.raises(TypeError, match="not a string"):
        milnce.embed_texts(model, ["ok", 3])
    windows = random_clips(6).reshape(2, 3, 8, 32, 32, 3)
    averaged = milnce.embed_video_windows(model, windows)
    flat = milnce.embed_videos(model, windows.reshape(6, 8, 32, 32, 3))
    np.testing.assert_allclose(averaged["video_embedding"],
                               flat["video_embedding"].reshape(2, 3, 512).mean(axis=1),
                               **SAME_INPUT_OTHER_ROW)


def test_compare_with_published():
    table, ok = milnce.compare_with_published(milnce.PUBLISHED_COLAB_SCORES + 0.05)
    assert ok and "4.71" in table and "tensorflow/docs" in table
    off = milnce.PUBLISHED_COLAB_SCORES.copy()
    off[1, 1] += 0.2
    table, ok = milnce.compare_with_published(off)
    assert not ok and "NO" in table
    swapped = milnce.PUBLISHED_COLAB_SCORES[[1, 0, 2]]
    assert not milnce.compare_with_published(swapped)[1]


def test_colab_videos_point_at_wikimedia_paths():
    import hashlib

    for resource, _ in milnce.COLAB_VIDEOS:
        digest = hashlib.md5(resource.filename.encode()).hexdigest()
        assert resource.path == f"{digest[0]}/{digest[:2]}/{resource.filename}"
        assert resource.url.startswith("https://upload.wikimedia.org/wikipedia/commons/")
    assert milnce.COLAB_QUERIES == ("waterfall", "playing guitar", "car drifting")


def test_tiny_gallery_is_generated_and_readable():
    videos = milnce.sample_videos("tiny")
    assert len(videos) == 6 and len({v.label for v in videos}) == 6
    suffixes = {v.path.suffix for v in videos}
    assert suffixes == {".gif", ".mp4", ".avi", ".webm"}
    for item in videos:
        info = video.video_info(item.path, exact=True)
        assert info.num_frames >= 12
    again = milnce.sample_videos("tiny")
    assert [v.path.stat().st_mtime_ns for v in again] == [v.path.stat().st_mtime_ns for v in videos]


def test_real_gallery_downloads_the_colab_gifs(real_mode, tmp_path):
    """The real-mode path, served from loopback through the `wikimedia` base URL."""
    frames = (np.random.default_rng(2).random((4, 16, 20, 3)) * 255).astype(np.uint8)
    gif = video.write_video(tmp_path / "clip.gif", frames, 10).read_bytes()
    served = {f"/commons/{res.path}": gif for res, _ in milnce.COLAB_VIDEOS}
    agents = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            agents.append(self.headers.get("User-Agent", ""))
            data = served.get(self.path)
            self.send_response(200 if data else 404)
            self.send_header("Content-Length", str(len(data or b"")))
            self.end_headers()
            self.wfile.write(data or b"")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config.set_base_url("wikimedia", f"http://127.0.0.1:{server.server_address[1]}/commons")
    try:
        assert milnce.gallery_mode() == "real"
        videos = milnce.sample_videos("real")
    finally:
        config.set_base_url("wikimedia", None)
        server.shutdown()
        server.server_close()
    assert [v.caption for v in videos] == list(milnce.COLAB_QUERIES)
    assert [v.path.name for v in videos] == [res.filename for res, _ in milnce.COLAB_VIDEOS]
    assert all(v.path.read_bytes() == gif for v in videos)
    assert len(agents) == 3 and all(a.startswith("Mozilla/5.0") for a in agents)


# ------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------

def test_cli_embeds_videos_and_texts_and_skips_bad_files(builds, tmp_path, capsys):
    frames = (np.random.default_rng(0).random((10, 40, 50, 3)) * 255).astype(np.uint8)
    good = [video.write_video(tmp_path / "a.gif", frames, 10),
            video.write_video(tmp_path / "b.mp4", frames[::-1], 10)]
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all")
    out = tmp_path / "emb.npz"
    code = milnce.main(["embed", "--handle", str(builds["tf1"]), "--video", str(good[0]),
                        "--video", str(bad), "--video", str(good[1]), "--text", "a dog",
                        "--text", "waterfall", "--frames", "8", "--size", "32",
                        "--out", str(out)])
    assert code == 0
    data = np.load(out)
    assert data["video_embedding"].shape == (2, 512) and data["mixed_5c"].shape == (2, 1024)
    assert data["text_embedding"].shape == (2, 512)
    assert data["video_files"].tolist() == [str(p) for p in good]
    assert data["texts"].tolist() == ["a dog", "waterfall"]
    assert data["skipped_files"].tolist() == [str(bad)]
    assert str(data["mode"]) == "local"
    err = capsys.readouterr().err
    assert f"skipped {bad}" in err and err.count(str(bad)) == 1  # once: no warning besides
    # The same numbers as the library calls.
    module = hub.load(str(builds["tf1"]))
    clips, _, _ = video.load_clips(good, num_frames=8, size=32)
    np.testing.assert_allclose(data["video_embedding"],
                               milnce.embed_videos(module, clips)["video_embedding"],
                               **SAME_INPUT_OTHER_ROW)


def test_cli_windows_sampling_and_default_handle(tmp_path, capsys):
    frames = (np.random.default_rng(1).random((20, 24, 32, 3)) * 255).astype(np.uint8)
    clip = video.write_video(tmp_path / "c.webm", frames, 10)
    out = tmp_path / "w.npz"
    code = milnce.main(["embed", "--video", str(clip), "--sampling", "windows", "--windows", "3",
                        "--frames", "4", "--size", "32", "--out", str(out)])
    assert code == 0
    data = np.load(out)
    assert data["video_embedding"].shape == (1, 512) and data["text_embedding"].shape == (0, 512)
    assert str(data["mode"]) == "tiny" and str(data["handle"]) == milnce.HANDLE
    out = capsys.readouterr().out
    # The summary line names the stand-in the default handle resolved to (the trained one).
    assert "TINY MODE" in out and "a small model trained here" in out.split("wrote ")[-1]
    assert milnce.main(["embed", "--out", str(out)]) == 2
    bad = tmp_path / "empty.gif"
    bad.write_bytes(b"")
    capsys.readouterr()
    assert milnce.main(["embed", "--video", str(bad), "--out", str(tmp_path / "x.npz")]) == 2
    err = capsys.readouterr().err
    # Bad input, not a result: one line per file (no warning besides), nothing written.
    assert err.count(str(bad)) == 1 and "none of the 1 videos could be read" in err
    assert not (tmp_path / "x.npz").exists()


def test_cli_help_runs_without_tensorflow():
    code = ("import sys, runpy; sys.argv = ['helpers.milnce', 'embed', '--help']\n"
            "try:\n    runpy.run_module('helpers.milnce', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "print('TF_IMPORTED', 'tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=ROOT)
    assert "--sampling" in out.stdout and "TF_IMPORTED False" in out.stdout


def test_a_dropped_download_says_retry(real_mode):
    import socket

    # A server that accepts the connection and closes it without answering.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)

    def close_all():
        for _ in range(4):
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.close()

    threading.Thread(target=close_all, daemon=True).start()
    try:
        with pytest.raises(milnce.MilnceError) as info:
            milnce.load(f"http://127.0.0.1:{listener.getsockname()[1]}/dropped/1")
    finally:
        listener.close()
    assert "broke off" in str(info.value)
    assert "delete the cache folder" not in str(info.value)
