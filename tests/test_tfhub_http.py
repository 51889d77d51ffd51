"""tensorflow_hub's own downloader against a local server answering like tfhub.dev, faults included.

What these tests pin down (tensorflow_hub 0.16.1) is summarised in helpers/downloads.py's module
docstring; helpers.downloads.hub_load and explain_hub_error build on it.
"""

import hashlib
import os
import time
import urllib.error
from pathlib import Path

import pytest
from httpserver_fixture import (
    LocalServer,
    cut_between_files,
    dead_pid,
    leave_hub_download_state,
    tfhub_tarball,
)

from helpers import downloads
from helpers.downloads import DownloadError

HANDLE_PATH = "/deepmind/mil-nce/s3d/1"
SIGNED_PATH = "/kaggle-models-data/1234/5678/bundle/archive.tar.gz?X-Goog-Signature=abc"

@pytest.fixture(scope="module")
def hub_env(tmp_path_factory):
    """A module-wide server and a SavedModel with a MIL-NCE-like ``video`` signature."""
    root = tmp_path_factory.mktemp("hub")
    server = LocalServer(lifetime=300).start()
    try:
        import tensorflow as tf

        class Module(tf.Module):
            def __init__(self):
                super().__init__()
                rng = tf.random.Generator.from_seed(0)
                self.projection = tf.Variable(rng.normal([3, 8]))
                self.padding = tf.Variable(rng.normal([2000, 100]))  # ~0.8 MB, poorly compressible

            @tf.function(input_signature=[tf.TensorSpec([None, None, None, None, 3], tf.float32,
                                                        name="images")])
            def video(self, images):
                pooled = tf.reduce_mean(images, axis=[1, 2, 3])
                return {"video_embedding": pooled @ self.projection, "mixed_5c": pooled}

        module = Module()
        saved = root / "saved_model"
        tf.saved_model.save(module, str(saved), signatures={"video": module.video})
        yield {"server": server, "saved": saved, "archive": tfhub_tarball(saved), "root": root}
    finally:
        server.stop()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh TF-Hub cache, set as tensorflow_hub reads it (the environment, at each load)."""
    folder = tmp_path / "tfhub_modules"
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(folder))
    monkeypatch.setenv("TFHUB_MODEL_LOAD_FORMAT", "COMPRESSED")
    return folder


def _entries(cache_dir: Path) -> list[str]:
    return sorted(p.name for p in cache_dir.iterdir()) if cache_dir.exists() else []


def _check_module(module):
    import numpy as np
    import tensorflow as tf

    out = module.signatures["video"](images=tf.zeros([2, 4, 8, 8, 3]))
    assert out["video_embedding"].shape == (2, 8) and out["mixed_5c"].shape == (2, 3)
    assert np.allclose(out["video_embedding"].numpy(), 0.0)


def test_hub_load_fetches_the_compressed_module_into_sha1_folder(hub_env, cache):
    import tensorflow_hub as hub

    server = hub_env["server"]
    handle = server.add_tfhub_module("/ok" + HANDLE_PATH, hub_env["saved"], signed_path="/ok" + SIGNED_PATH)
    module = hub.load(handle)
    _check_module(module)
    sha1 = hashlib.sha1(handle.encode()).hexdigest()
    assert _entries(cache) == [sha1, f"{sha1}.descriptor.txt"]
    assert downloads.hub_cache_folder(handle, cache) == cache / sha1
    assert downloads.hub_cache_entry_ok(handle, cache, deep=True)
    assert downloads.hub_cache_problems(handle, cache) == []
    # tfhub.dev's way: the handle + ?tf-hub-format=compressed, redirected to a signed link.
    assert server.stats(f"/ok{HANDLE_PATH}?tf-hub-format=compressed").statuses == [302]
    assert server.stats("/ok" + SIGNED_PATH).statuses == [200]
    # A cached module loads without asking the server again.
    hub.load(handle)
    assert server.stats("/ok" + SIGNED_PATH).requests == 1


def test_hub_load_helper_loads_and_reuses_the_cache(hub_env, tmp_path):
    server = hub_env["server"]
    handle = server.add_tfhub_module("/helper" + HANDLE_PATH, hub_env["saved"])
    cache_dir = tmp_path / "course-cache"
    _check_module(downloads.hub_load(handle, cache_dir, timeout=5, progress=False))
    _check_module(downloads.hub_load(handle, cache_dir, timeout=5, progress=False))
    assert server.stats(f"/helper{HANDLE_PATH}?tf-hub-format=compressed").requests == 1
    assert downloads.hub_cache_entry_ok(handle, cache_dir)


def test_403_from_the_signed_link_leaves_nothing_and_is_explained(hub_env, cache):
    import tensorflow_hub as hub

    server = hub_env["server"]
    handle = server.add_tfhub_module("/403" + HANDLE_PATH, hub_env["saved"],
                                     signed_path="/403" + SIGNED_PATH, status=403)
    with pytest.raises(urllib.error.HTTPError) as raw:
        hub.load(handle)
    assert raw.value.code == 403
    assert _entries(cache) == []  # no entry, no lock, no temporary folder
    error = downloads.explain_hub_error(handle, raw.value, cache)
    message = str(error)
    assert handle in message and "HTTP 403" in message and "signed" in message
    assert "?tf-hub-format=compressed" in message
    assert str(downloads.hub_cache_folder(handle, cache)) in message  # where to unpack by hand

    with pytest.raises(DownloadError, match="HTTP 403") as info:
        downloads.hub_load(handle, cache, timeout=5, progress=False)
    assert isinstance(info.value.__cause__, urllib.error.HTTPError)
    assert server.stats("/403" + SIGNED_PATH).requests == 2  # a refusal is not retried


def test_404_is_explained(hub_env, cache):
    handle = hub_env["server"].url("/missing/module/1")
    with pytest.raises(DownloadError, match="HTTP 404.*moved") as info:
        downloads.hub_load(handle, cache, timeout=5, progress=False)
    assert handle in str(info.value)


def test_busy_server_is_retried_then_reported(hub_env, cache):
    server = hub_env["server"]
    handle = server.add_tfhub_module("/busy503" + HANDLE_PATH, hub_env["saved"], status=503)
    with pytest.raises(DownloadError, match="HTTP 503.*busy") as info:
        downloads.hub_load(handle, cache, timeout=5, retries=1, progress=False)
    assert isinstance(info.value.__cause__, urllib.error.HTTPError)
    assert server.stats(f"/busy503{HANDLE_PATH}?tf-hub-format=compressed").requests == 2
    assert _entries(cache) == []


def test_drop_inside_a_file_of_the_archive(hub_env, cache):
    import tensorflow_hub as hub

    server = hub_env["server"]
    archive = hub_env["archive"]
    handle = server.add_tfhub_module("/drop" + HANDLE_PATH, hub_env["saved"],
                                     drop_after=len(archive) // 2)
    with pytest.raises(OSError, match="does not appear to be a valid module") as raw:
        hub.load(handle)
    assert _entries(cache) == []  # hub cleaned up: nothing half-written is left
    message = str(downloads.explain_hub_error(handle, raw.value, cache))
    assert "incomplete" in message and "nothing was cached" in message

    # The helper tries again (hub restarts the archive from the start).
    server.set(f"/drop{HANDLE_PATH}?tf-hub-format=compressed", drop_times=2)  # drop once more
    hub_cache = cache.parent / "helper-cache"
    _check_module(downloads.hub_load(handle, hub_cache, timeout=5, progress=False))
    assert server.stats(f"/drop{HANDLE_PATH}?tf-hub-format=compressed").requests == 3


@pytest.mark.parametrize("first_missing", ["variables", "variables/variables.index"])
def test_drop_between_files_caches_a_broken_module_that_the_helper_repairs(hub_env, cache,
                                                                           first_missing):
    import tensorflow_hub as hub

    server = hub_env["server"]
    archive = hub_env["archive"]
    cut = cut_between_files(archive, first_missing)
    prefix = f"/cut-{first_missing.replace('/', '-')}"
    handle = server.add_tfhub_module(prefix + HANDLE_PATH, hub_env["saved"], drop_after=cut)
    query = f"{prefix}{HANDLE_PATH}?tf-hub-format=compressed"
    # tensorflow_hub takes the early end for the end of the archive and caches what it got...
    with pytest.raises(FileNotFoundError, match="Unsuccessful TensorSliceReader") as raw:
        hub.load(handle)
    folder = downloads.hub_cache_folder(handle, cache)
    assert (folder / "saved_model.pb").exists() and not (folder / "variables/variables.index").exists()
    # ...and a second load fails the same way, without asking the server: the entry is stuck.
    with pytest.raises(type(raw.value)):
        hub.load(handle)
    assert server.stats(query).requests == 1

    assert not downloads.hub_cache_entry_ok(handle, cache)
    problems = downloads.hub_cache_problems(handle, cache)
    assert len(problems) == 1 and str(folder) in problems[0] and "variables" in problems[0]
    message = str(downloads.explain_hub_error(handle, raw.value, cache))
    assert str(folder) in message and "delete the folder" in message

    # hub_load removes the broken entry first and downloads it again.
    server.set(query, drop_after=None)
    _check_module(downloads.hub_load(handle, cache, timeout=5, progress=False))
    assert server.stats(query).requests == 2
    assert downloads.hub_cache_entry_ok(handle, cache, deep=True)


def test_truncated_download_inside_hub_load_is_repaired_and_retried(hub_env, tmp_path):
    server = hub_env["server"]
    cut = cut_between_files(hub_env["archive"], "variables/variables.index")
    handle = server.add_tfhub_module("/cut2" + HANDLE_PATH, hub_env["saved"], drop_after=cut,
                                     drop_times=1)
    _check_module(downloads.hub_load(handle, tmp_path / "c", timeout=5, progress=False))
    assert server.stats(f"/cut2{HANDLE_PATH}?tf-hub-format=compressed").requests == 2


def test_stalled_server_is_a_reported_timeout(hub_env, cache):
    server = hub_env["server"]
    handle = server.add_tfhub_module("/stall" + HANDLE_PATH, hub_env["saved"], stall_at=100_000,
                                     stall_seconds=5)
    started = time.monotonic()
    with pytest.raises(DownloadError, match="sent no data for 0.3 s") as info:
        downloads.hub_load(handle, cache, timeout=0.3, retries=1, progress=False)
    assert time.monotonic() - started < 3
    assert isinstance(info.value.__cause__, TimeoutError)
    assert _entries(cache) == []
    assert server.stats(f"/stall{HANDLE_PATH}?tf-hub-format=compressed").requests == 2
    import socket

    assert socket.getdefaulttimeout() is None  # restored


def test_offline_errors_are_explained():
    import socket

    offline = urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))
    error = downloads.explain_hub_error("https://tfhub.dev/deepmind/mil-nce/s3d/1", offline)
    assert "cannot reach the host" in str(error) and "COURSE_MODE=tiny" in str(error)


def test_killed_download_leaves_a_lock_that_hub_load_clears(hub_env, tmp_path):
    server = hub_env["server"]
    handle = server.add_tfhub_module("/killed" + HANDLE_PATH, hub_env["saved"])
    cache_dir = tmp_path / "cache"
    folder = downloads.hub_cache_folder(handle, cache_dir)
    lock, tmp = leave_hub_download_state(handle, cache_dir, dead_pid())
    problems = downloads.hub_cache_problems(handle, cache_dir)
    assert len(problems) == 2
    assert str(lock) in problems[0] and "no longer runs" in problems[0] and "20 minutes" in problems[0]
    assert str(tmp) in problems[1]
    assert not downloads.hub_cache_entry_ok(handle, cache_dir)

    # tensorflow_hub alone would now wait ~20 minutes for the dead process; hub_load does not.
    started = time.monotonic()
    _check_module(downloads.hub_load(handle, cache_dir, timeout=5, progress=False))
    assert time.monotonic() - started < 5
    assert _entries(cache_dir) == sorted([folder.name, folder.name + ".descriptor.txt"])


def test_a_live_download_is_left_alone(hub_env, tmp_path):
    handle = hub_env["server"].url("/busy/module/1")
    cache_dir = tmp_path / "cache"
    lock, tmp = leave_hub_download_state(handle, cache_dir, os.getpid())  # a running process
    problems = downloads.hub_cache_problems(handle, cache_dir)
    assert len(problems) == 1 and "is downloading the module now" in problems[0]
    assert downloads.repair_hub_cache(handle, cache_dir) == []
    assert lock.exists() and tmp.exists()


def _cached_copy(saved: Path, handle: str, cache_dir: Path) -> Path:
    import shutil

    folder = downloads.hub_cache_folder(handle, cache_dir)
    shutil.copytree(saved, folder)
    return folder


def test_damaged_variables_are_found_by_the_deep_check(hub_env, tmp_path):
    handle = "https://tfhub.dev/deepmind/mil-nce/s3d/1"
    folder = _cached_copy(hub_env["saved"], handle, tmp_path)
    assert folder.name == "1cfdb3e6a79e82c0addc6f5fdec5126c65eca965"  # as in the course's notes
    assert downloads.hub_cache_entry_ok(handle, tmp_path, deep=True)
    data = folder / "variables" / "variables.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:-1000])  # cut short, as a failed copy would
    assert downloads.hub_cache_entry_ok(handle, tmp_path)  # every file is there...
    assert not downloads.hub_cache_entry_ok(handle, tmp_path, deep=True)  # ...but not every byte
    error = downloads.explain_hub_error(handle, FileNotFoundError("whatever TF said"), tmp_path)
    assert str(folder) in str(error) and "variables cannot be read" in str(error)
    assert downloads.repair_hub_cache(handle, tmp_path, deep=True) == [folder]
    assert not folder.exists()


def test_tf1_hub_format_modules_are_checked_too(tmp_path):
    # The real MIL-NCE module is a TF1 hub-format SavedModel (a graph with a Saver).
    import tensorflow as tf

    saved = tmp_path / "tf1"
    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        words = tf.compat.v1.placeholder(tf.string, [None], name="words")
        table = tf.compat.v1.get_variable("embedding", [4, 2])
        length = tf.cast(tf.strings.length(words), tf.int32) % 4
        embedding = tf.gather(table, length)
        session.run(tf.compat.v1.global_variables_initializer())
        builder = tf.compat.v1.saved_model.Builder(str(saved))
        signature = tf.compat.v1.saved_model.predict_signature_def({"words": words},
                                                                   {"text_embedding": embedding})
        builder.add_meta_graph_and_variables(session, [], signature_def_map={"text": signature})
        builder.save()
    (saved / "tfhub_module.pb").write_bytes(b"")  # the hub-format marker
    handle = "https://tfhub.dev/deepmind/mil-nce/s3d/1"
    folder = _cached_copy(saved, handle, tmp_path / "cache")
    assert downloads.hub_cache_entry_ok(handle, tmp_path / "cache", deep=True)
    import shutil

    shutil.rmtree(folder / "variables")
    problems = downloads.hub_cache_problems(handle, tmp_path / "cache")
    assert len(problems) == 1 and "has variables but variables/ is missing" in problems[0]


def test_config_base_url_points_a_tfhub_handle_at_the_local_server(hub_env, tmp_path):
    # How a later test serves the MIL-NCE stand-in through the course's loader.
    from helpers import config

    server = hub_env["server"]
    with server.use_for("tfhub"):
        handle = config.url("tfhub", "deepmind/mil-nce/s3d/1")
        assert handle == server.url("/tfhub/deepmind/mil-nce/s3d/1")
        server.add_tfhub_module("/tfhub/deepmind/mil-nce/s3d/1", hub_env["saved"])
        _check_module(downloads.hub_load(handle, tmp_path, timeout=5, progress=False))
    assert config.url("tfhub", "deepmind/mil-nce/s3d/1") == "https://tfhub.dev/deepmind/mil-nce/s3d/1"
