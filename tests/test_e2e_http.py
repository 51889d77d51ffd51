"""End to end over loopback: the course's own real-mode loaders against a local server.

Each test sets ``COURSE_MODE=real`` with a throw-away ``COURSE_CACHE_DIR``, points a
``helpers.config`` base URL at one module-wide server on 127.0.0.1 (under a prefix of its own,
so tests never share a route), and calls exactly what the notebooks and command lines call:
``milnce.load()`` (tensorflow_hub's own downloader, through ``downloads.hub_load``),
``mmv.checkpoint_path`` / ``mmv.load_model`` / ``python -m helpers.mmv embed``, and
``milnce.sample_videos``, ``ucf101.dataset`` / ``download*`` / ``python -m helpers.ucf101
download``. The server serves the generated stand-ins at the official paths,
then fails the way the real hosts do.
"""

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from httpserver_fixture import (
    LocalServer,
    cut_between_files,
    dead_pid,
    leave_hub_download_state,
    tfhub_tarball,
)

from helpers import config, downloads, milnce, mmv, ucf101, video
from helpers.mmv import encoder as mmv_encoder
from helpers.standins import milnce as milnce_standin
from helpers.standins import mmv as mmv_standin
from helpers.standins.ucf101 import make_mini_ucf101

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def server():
    """One server for the whole file (each test uses its own path prefix)."""
    local = LocalServer(max_requests=1000, lifetime=300).start()
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture
def real(tmp_path, monkeypatch):
    """Real mode with a fresh cache root; returns the cache root."""
    cache = tmp_path / "course-cache"
    monkeypatch.setenv("COURSE_CACHE_DIR", str(cache))
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(cache / "unused"))  # restored afterwards
    previous = config.requested_mode()
    config.set_mode("real")
    try:
        yield cache
    finally:
        config.set_mode(previous)


def _entries(folder: Path) -> list[str]:
    """What a cache folder holds, less the (empty) per-file lock files of helpers.atomic.locked."""
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock")) \
        if folder.exists() else []


# ------------------------------------------------------------------------------------------
# MIL-NCE: the stand-in module served as TF-Hub serves modules
# ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def milnce_builds(tmp_path_factory):
    """Both stand-in builds (seed 0) and their ``?tf-hub-format=compressed`` archives."""
    root = tmp_path_factory.mktemp("milnce")
    out = {}
    for kind in ("tf1", "tf2"):
        folder = milnce_standin.build_module(root / kind, tf1_style=kind == "tf1", seed=0)
        out[kind] = {"folder": folder, "archive": tfhub_tarball(folder)}
    return out


@contextlib.contextmanager
def serving_milnce(server, prefix, build, **faults):
    """Serve ``build`` at the default handle below ``<server>/<prefix>/tfhub``; yield the
    archive's path on the server (where the faults apply)."""
    with server.use_for("tfhub", prefix=prefix):
        handle = milnce.default_handle()
        assert handle == server.url(f"/{prefix}/tfhub/{milnce.HANDLE_PATH}")
        signed = faults.pop("signed_path", None)
        server.add_tfhub_module(f"/{prefix}/tfhub/{milnce.HANDLE_PATH}", build["folder"],
                                signed_path=signed, **faults)
        yield signed or f"/{prefix}/tfhub/{milnce.HANDLE_PATH}?tf-hub-format=compressed"


def _milnce_outputs(module):
    clip = np.random.default_rng(4).random((1, 8, 32, 32, 3), dtype=np.float32)
    return (milnce.embed_videos(module, clip)["video_embedding"],
            milnce.embed_texts(module, ["a dog playing guitar"]))


@pytest.mark.parametrize("kind", ["tf1", "tf2"])
def test_milnce_load_downloads_the_default_handle(server, real, milnce_builds, kind):
    build = milnce_builds[kind]
    with serving_milnce(server, f"ok-{kind}", build) as archive:
        module = milnce.load(timeout=10)
        handle = milnce.default_handle()
        video_embedding, text_embedding = _milnce_outputs(module)
        assert video_embedding.shape == (1, 512) and text_embedding.shape == (1, 512)
        # The same numbers as the module loaded from its folder: the download changed nothing.
        for ours, reference in zip((video_embedding, text_embedding),
                                   _milnce_outputs(milnce.load(build["folder"]))):
            np.testing.assert_array_equal(ours, reference)
        # Cached in the real TF-Hub cache under sha1(handle), complete; a second load is local.
        folder = milnce.cache_folder(handle, "real")
        assert folder.parent == real / "real" / "tfhub_modules"
        assert downloads.hub_cache_entry_ok(handle, folder.parent, deep=True)
        milnce.load(timeout=10)
    assert server.stats(archive).statuses == [200]


def test_milnce_cli_in_real_mode_uses_the_download(server, real, milnce_builds, tmp_path):
    build = milnce_builds["tf1"]
    out = tmp_path / "emb.npz"
    with serving_milnce(server, "cli", build) as archive:
        assert milnce.main(["embed", "--text", "a dog playing guitar", "--out", str(out)]) == 0
        handle = milnce.default_handle()
    saved = np.load(out)
    assert str(saved["mode"]) == "real" and str(saved["handle"]) == handle
    np.testing.assert_array_equal(saved["text_embedding"],
                                  _milnce_outputs(milnce.load(build["folder"]))[1])
    assert server.stats(archive).requests == 1


def test_milnce_403_names_the_refused_url_and_the_fix_that_works(server, real, milnce_builds,
                                                                 tmp_path):
    build = milnce_builds["tf1"]
    signed = "/403/kaggle-data/models/123/archive.tar.gz?X-Goog-Signature=abc"
    with serving_milnce(server, "403", build, signed_path=signed, status=403):
        handle = milnce.default_handle()
        with pytest.raises(milnce.MilnceError) as info:
            milnce.load(timeout=10)
        message = str(info.value)
        assert handle in message and server.url(signed) in message  # both addresses
        assert "HTTP 403" in message and "signed" in message
        assert "https://www.kaggle.com/models/deepmind/mil-nce" in message
        assert "helpers.milnce.install_archive(path_to_tar_gz)" in message  # default handle
        assert "COURSE_MODE=tiny" in message
        cause = info.value.__cause__
        assert isinstance(cause, downloads.DownloadError)
        assert isinstance(cause.__cause__, urllib.error.HTTPError) and cause.__cause__.code == 403
        assert server.stats(signed).requests == 1  # a refusal is not retried
        assert _entries(real / "real" / "tfhub_modules") == []  # nothing half-made

        # The advice works: the archive saved by hand, installed, then loaded without a request.
        saved = tmp_path / "mil-nce_s3d.tar.gz"
        saved.write_bytes(build["archive"])
        assert milnce.install_archive(saved) == milnce.cache_folder(handle, "real")
        _milnce_outputs(milnce.load(timeout=10))
        assert server.stats(signed).requests == 1


def test_milnce_drop_mid_archive_is_retried(server, real, milnce_builds):
    build = milnce_builds["tf2"]
    cut = len(build["archive"]) // 2
    with serving_milnce(server, "drop-once", build, drop_after=cut, drop_times=1) as archive:
        _milnce_outputs(milnce.load(timeout=10))
    assert server.stats(archive).statuses == [200, 200]  # hub starts the archive over


@pytest.mark.parametrize("where", ["inside a file", "between files"])
def test_milnce_drop_every_time_is_a_clear_error_leaving_no_cache_entry(server, real,
                                                                        milnce_builds, where):
    build = milnce_builds["tf1"]
    if where == "inside a file":
        cut = len(build["archive"]) // 2
    else:  # tensorflow_hub caches such a module, truncated, as if complete
        cut = cut_between_files(build["archive"], "variables/variables.index")
    prefix = f"drop-always-{where.replace(' ', '-')}"
    with serving_milnce(server, prefix, build, drop_after=cut) as archive:
        started = time.monotonic()
        with pytest.raises(milnce.MilnceError) as info:
            milnce.load(timeout=10, retries=1)
        assert time.monotonic() - started < 15
    message = str(info.value)
    assert server.url(f"/{prefix}/tfhub/{milnce.HANDLE_PATH}") in message  # the handle
    assert "nothing" in message and "cached" in message and "run again" in message
    assert "install_archive" in message  # the way round a network that keeps failing
    assert server.stats(archive).requests == 2  # the first try and one retry
    # No broken entry, lock or temporary folder is left for the next load to trip over.
    assert _entries(real / "real" / "tfhub_modules") == []


def test_milnce_killed_download_does_not_block_the_next_load(server, real, milnce_builds):
    build = milnce_builds["tf1"]
    with serving_milnce(server, "killed", build) as archive:
        handle = milnce.default_handle()
        cache = config.tfhub_cache_dir("real")
        lock, tmp = leave_hub_download_state(handle, cache, dead_pid())
        assert len(downloads.hub_cache_problems(handle, cache)) == 2
        started = time.monotonic()
        _milnce_outputs(milnce.load(timeout=10))  # hub alone would wait ~20 minutes
        assert time.monotonic() - started < 10
    assert not lock.exists() and not tmp.exists()
    assert server.stats(archive).requests == 1
    assert downloads.hub_cache_problems(handle, cache) == []


# ------------------------------------------------------------------------------------------
# MMV: stand-in pickles at the official file names
# ------------------------------------------------------------------------------------------

MMV_CLIPS = np.random.default_rng(7).random((2, 8, 64, 64, 3), dtype=np.float32)


@pytest.fixture(scope="module")
def mmv_pickle(tmp_path_factory):
    """An S3D-G stand-in in the official pickle layout (seed 3, not the tiny-mode seed)."""
    path = tmp_path_factory.mktemp("mmv") / "mmv_s3d.pkl"
    mmv_standin.write_checkpoint(mmv_standin.make_checkpoint("s3d", seed=3), path,
                                 container="flatmapping", numpy1_names=True)
    return {"path": path, "data": path.read_bytes()}


@pytest.fixture(scope="module")
def mmv_reference(mmv_pickle):
    """Outputs of the local file on MMV_CLIPS."""
    return mmv.load_model("s3d", mmv_pickle["path"], batch_size=2)(MMV_CLIPS)


@contextlib.contextmanager
def serving_mmv(server, prefix, content, **faults):
    """Serve ``content`` as ``mmv_s3d.pkl`` below ``<server>/<prefix>/mmv``; yield its path."""
    path = f"/{prefix}/mmv/mmv_s3d.pkl"
    server.add(path, content, **faults)
    with server.use_for("mmv", prefix=prefix):
        assert mmv.RESOURCES["s3d"].url == server.url(path)
        yield path


def _cached_mmv(cache: Path) -> list[str]:
    return _entries(cache / "real" / "mmv")


def test_mmv_checkpoint_downloads_and_loads_like_the_local_file(server, real, mmv_pickle,
                                                                mmv_reference, capsys):
    with serving_mmv(server, "mmv-ok", mmv_pickle["data"]) as path:
        assert mmv.resolve_mode("s3d") == "real"
        local = mmv.checkpoint_path("s3d")
        assert local == real / "real" / "mmv" / "mmv_s3d.pkl"
        assert local.read_bytes() == mmv_pickle["data"]
        assert "CC BY-NC 4.0" in capsys.readouterr().out  # the licence, before the download
        out = mmv.load_model("s3d", batch_size=2)(MMV_CLIPS)  # checkpoint=None: the download
        for key in ("vid_repr", "va", "vat"):
            np.testing.assert_array_equal(out[key], mmv_reference[key])
        assert mmv.checkpoint_path("s3d") == local  # cached: no second transfer
    stats = server.stats(path)
    assert stats.requests == 1 and stats.bytes_served == len(mmv_pickle["data"])


def test_mmv_dropped_download_resumes_and_is_verified(server, real, mmv_pickle):
    data = mmv_pickle["data"]
    cut = len(data) // 3
    with serving_mmv(server, "mmv-drop", data, drop_after=cut, drop_times=1, reset=True) as path:
        local = mmv.checkpoint_path("s3d")
    assert local.read_bytes() == data
    stats = server.stats(path)
    assert stats.statuses == [200, 206] and stats.ranges[0] is None
    # A reset loses what was in flight: the client resumes after the bytes it did receive.
    kept = int(stats.ranges[1].removeprefix("bytes=").removesuffix("-"))
    assert 0 < kept <= cut and stats.ranges[1] == f"bytes={kept}-"
    assert stats.bytes_served == cut + len(data) - kept  # the start was not sent again
    assert _cached_mmv(real) == ["mmv_s3d.pkl"]  # no .part left


@pytest.mark.parametrize("status, words", [
    (404, ["HTTP 404", "moved"]),
    (403, ["HTTP 403", "signed", "browser"]),
])
def test_mmv_refusals_are_clear_and_leave_nothing(server, real, status, words):
    with serving_mmv(server, f"mmv-{status}", b"", status=status) as path:
        with pytest.raises(downloads.DownloadError) as info:
            mmv.checkpoint_path("s3d")
    message = str(info.value)
    assert server.url(path) in message and "What to do:" in message
    for word in words:
        assert word in message
    assert _cached_mmv(real) == []


HTML_ERROR_PAGE = (b"<!DOCTYPE html><html><head><title>Error</title></head><body>"
                   b"<h1>We're sorry, but something went wrong.</h1></body></html>\n")


@pytest.mark.parametrize("served", ["html error page", "cut short"])
def test_mmv_wrong_content_with_200_is_refused_and_not_cached(server, real, mmv_pickle, served):
    data = mmv_pickle["data"]
    # A captive portal's page, or a copy cut short by a proxy (its size announced truthfully).
    body = HTML_ERROR_PAGE if served == "html error page" else data[: len(data) * 9 // 10]
    prefix = f"mmv-{served.replace(' ', '-')}"
    with serving_mmv(server, prefix, body, content_type="text/html") as path:
        with pytest.raises(downloads.DownloadError) as info:
            mmv.checkpoint_path("s3d")
        message = str(info.value)
        assert server.url(path) in message and f"got {len(body)} bytes" in message
        assert _cached_mmv(real) == []  # neither the file nor a .part
        assert mmv.resolve_mode("s3d") == "real" and not mmv_encoder._real_path("s3d").exists()
        # Once the host serves the file again, the next call downloads it: nothing is stuck.
        server.set(path, body=data, content_type="application/octet-stream")
        assert mmv.checkpoint_path("s3d").read_bytes() == data


def test_mmv_truncated_copy_above_the_size_floor_fails_at_load_naming_the_file(server, real,
                                                                             mmv_pickle):
    # No size or hash is published for the checkpoints: a copy cut short by less than the
    # audio/text part passes the size floor, and the safe unpickler is what catches it.
    body = mmv_pickle["data"][:-50_000]
    assert len(body) > mmv.tree_bytes("s3d")
    with serving_mmv(server, "mmv-short-tail", body):
        with pytest.raises(mmv.CheckpointError) as info:
            mmv.load_model("s3d")
    cached = real / "real" / "mmv" / "mmv_s3d.pkl"
    assert str(cached) in str(info.value) and "truncated" in str(info.value)
    assert "deleted from the course's cache" in str(info.value)
    assert not cached.exists(), "the damaged download must not stay in the cache"
    # Once the host serves the whole file, the next run downloads it afresh and loads it.
    with serving_mmv(server, "mmv-whole-again", mmv_pickle["data"]):
        assert mmv.load_model("s3d").feature_dim == 1024


def test_a_damaged_checkpoint_named_by_the_user_is_never_deleted(tmp_path):
    damaged = tmp_path / "mine.pkl"
    damaged.write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(mmv.CheckpointError):
        mmv.load_model("s3d", damaged)
    assert damaged.exists()


_MMV_CHILD = "from helpers import mmv; mmv.checkpoint_path('s3d')"


def _child_env(cache: Path, **bases: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), COURSE_MODE="real", COURSE_CACHE_DIR=str(cache))
    env["COURSE_BASE_URLS"] = ",".join(f"{key}={url}" for key, url in bases.items())
    env.pop("TFHUB_CACHE_DIR", None)
    return env


def test_mmv_killed_download_is_resumed_never_taken_as_finished(server, real, mmv_pickle):
    data = mmv_pickle["data"]
    path = "/mmv-killed/mmv/mmv_s3d.pkl"
    server.add(path, data, chunk_size=16_000, chunk_delay=0.02)  # slow: ~0.8 MB/s
    env = _child_env(real, mmv=server.url("/mmv-killed/mmv"))
    dest = real / "real" / "mmv" / "mmv_s3d.pkl"
    part = downloads.part_path(dest)
    child = subprocess.Popen([sys.executable, "-c", _MMV_CHILD], env=env, cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (not part.exists() or part.stat().st_size < 100_000):
            assert child.poll() is None, "the child finished before it could be killed"
            time.sleep(0.02)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    kept = part.stat().st_size
    assert 100_000 <= kept < len(data) and part.read_bytes() == data[:kept]
    assert not dest.exists()  # only the .part: nothing looks finished,
    assert not mmv_encoder._real_path("s3d").is_file()  # not even to auto mode's "is it cached?"
    with server.use_for("mmv", prefix="mmv-killed"):
        server.set(path, chunk_delay=0.0)
        assert mmv.checkpoint_path("s3d").read_bytes() == data
    stats = server.stats(path)
    assert stats.ranges[-1] == f"bytes={kept}-" and stats.statuses[-1] == 206
    assert not part.exists()


def test_mmv_cli_downloads_in_real_mode(server, real, mmv_pickle, mmv_reference, tmp_path):
    path = "/mmv-cli/mmv/mmv_s3d.pkl"
    server.add(path, mmv_pickle["data"])
    np.save(tmp_path / "clips.npy", MMV_CLIPS)
    env = _child_env(real, mmv=server.url("/mmv-cli/mmv"))
    command = [sys.executable, "-m", "helpers.mmv", "embed", "--backbone", "s3d",
               "--clips", str(tmp_path / "clips.npy"), "--out", str(tmp_path / "emb.npz"),
               "--batch-size", "2"]
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    cached = real / "real" / "mmv" / "mmv_s3d.pkl"
    assert f"checkpoint: {cached} (real)" in result.stderr
    assert "RANDOM weights" not in result.stderr  # real mode does not call itself tiny
    assert cached.read_bytes() == mmv_pickle["data"]
    saved = np.load(tmp_path / "emb.npz")
    for key in ("vid_repr", "va", "vat"):
        np.testing.assert_allclose(saved[key], mmv_reference[key], rtol=1e-5, atol=1e-6)
    assert server.stats(path).requests == 1

    # A refusal makes the command fail with the explanation (exit status 1).
    server.add("/mmv-cli-404/mmv/mmv_s3d.pkl", b"", status=404)
    env = _child_env(tmp_path / "other-cache", mmv=server.url("/mmv-cli-404/mmv"))
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1
    assert "HTTP 404" in result.stderr and server.url("/mmv-cli-404/mmv/mmv_s3d.pkl") in result.stderr


# ------------------------------------------------------------------------------------------
# The official colab's sample GIFs (Wikimedia refuses clients that are not browser-like)
# ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gifs(tmp_path_factory):
    root = tmp_path_factory.mktemp("gifs")
    rng = np.random.default_rng(11)
    out = {}
    for index, (resource, _) in enumerate(milnce.COLAB_VIDEOS):
        frames = (rng.random((6, 24, 32, 3)) * 255).astype(np.uint8)
        out[resource.filename] = video.write_video(root / f"{index}.gif", frames, 8).read_bytes()
    return out


def test_sample_gifs_download_with_a_browser_user_agent_and_are_cached(server, real, gifs):
    paths = {}
    for resource, _ in milnce.COLAB_VIDEOS:
        paths[resource.filename] = f"/gifs/wikimedia/{resource.path}"
        server.add(paths[resource.filename], gifs[resource.filename], content_type="image/gif",
                   require_user_agent="Mozilla/5.0")
    with server.use_for("wikimedia", prefix="gifs"):
        # The server answers like Wikimedia: a client that does not look like a browser is refused.
        first = milnce.COLAB_VIDEOS[0][0]
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(first.url, timeout=5)
        assert refused.value.code == 403
        assert milnce.gallery_mode() == "real"
        videos = milnce.sample_videos()
        assert [v.caption for v in videos] == list(milnce.COLAB_QUERIES)
        for item in videos:
            assert item.path.parent == real / "real" / "milnce_gallery"
            assert item.path.read_bytes() == gifs[item.path.name]
            assert "commons.wikimedia.org/wiki/File:" in item.credit
            assert video.video_info(item.path, exact=True).num_frames == 6
        before = {name: server.stats(path).requests for name, path in paths.items()}
        again = milnce.sample_videos()  # cached: nothing is transferred
        assert [v.path for v in again] == [v.path for v in videos]
        assert {name: server.stats(path).requests for name, path in paths.items()} == before
    for name, path in paths.items():
        stats = server.stats(path)
        assert stats.statuses[-1] == 200 and stats.user_agents[-1].startswith("Mozilla/5.0")
        assert stats.bytes_served == len(gifs[name])


def test_sample_gif_refused_without_the_browser_user_agent_is_explained(server, real, gifs,
                                                                        tmp_path):
    resource = milnce.COLAB_VIDEOS[1][0]
    server.add(f"/gifs-ua/wikimedia/{resource.path}", gifs[resource.filename],
               require_user_agent="Mozilla/5.0")
    with server.use_for("wikimedia", prefix="gifs-ua"):
        url = resource.url
        with pytest.raises(downloads.DownloadError) as info:
            downloads.fetch(resource, tmp_path, headers={"User-Agent": "Python-urllib/3.11"},
                            progress=False)
    message = str(info.value)
    assert url == server.url(f"/gifs-ua/wikimedia/{resource.path}") and url in message
    assert "HTTP 403" in message and "browser" in message and "Wikimedia" in message
    assert not (tmp_path / resource.filename).exists()


# ------------------------------------------------------------------------------------------
# UCF101: the split archive and the flat video zip, whole or a few classes by range requests
# ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ucf_archives():
    """The mini-UCF101 packed like the official archives: the split zip (``ucfTrainTestlist/``)
    and the mirror's flat video zip (``UCF101/v_*.avi``, stored, in name order)."""
    mini = make_mini_ucf101()  # the notebook's tiny dataset (shared with test_ucf101.py)
    splits, videos, files = io.BytesIO(), io.BytesIO(), {}
    with zipfile.ZipFile(splits, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo("ucfTrainTestlist/"), b"")
        for path in sorted(mini.splits_dir.iterdir()):
            archive.writestr(f"ucfTrainTestlist/{path.name}", path.read_bytes())
    for path in sorted(mini.videos_dir.rglob("*.avi"), key=lambda p: p.name):
        files[f"UCF101/{path.name}"] = path.read_bytes()
    with zipfile.ZipFile(videos, "w", zipfile.ZIP_STORED) as archive:
        for member, data in files.items():
            archive.writestr(member, data)
    return {"mini": mini, "splits": splits.getvalue(), "videos": videos.getvalue(),
            "files": files}


@contextlib.contextmanager
def serving_ucf(server, monkeypatch, prefix, archives, **video_faults):
    """Serve both archives at their official names below ``<server>/<prefix>/<base key>``;
    yield their paths on the server (the faults apply to the video zip)."""
    import dataclasses
    import hashlib

    paths = (f"/{prefix}/ucf101_splits/{ucf101.SPLITS_ZIP.path}",
             f"/{prefix}/ucf101_videos/{ucf101.VIDEOS_ZIP.path}")
    server.add(paths[0], archives["splits"], content_type="application/zip")
    server.add(paths[1], archives["videos"], content_type="application/zip", **video_faults)
    # The registry holds the real archives' sizes and SHA-256; the stand-ins have their own.
    for name, data in (("SPLITS_ZIP", archives["splits"]), ("VIDEOS_ZIP", archives["videos"])):
        monkeypatch.setattr(ucf101, name, dataclasses.replace(
            getattr(ucf101, name), size=len(data), sha256=hashlib.sha256(data).hexdigest()))
    with server.use_for("ucf101_splits", "ucf101_videos", prefix=prefix):
        assert ucf101.VIDEOS_ZIP.url == server.url(paths[1])
        yield paths


def _span(archive: bytes, members) -> tuple[int, int]:
    """``(start, end)`` in the zip of the contiguous run of ``members`` (headers included)."""
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        infos = sorted(zf.infolist(), key=lambda i: i.header_offset)
        directory = zf.start_dir
    chosen = [i for i, info in enumerate(infos) if info.filename in set(members)]
    assert chosen == list(range(chosen[0], chosen[-1] + 1)), "the classes are not neighbours"
    end = infos[chosen[-1] + 1].header_offset if chosen[-1] + 1 < len(infos) else directory
    return infos[chosen[0]].header_offset, end


def _check_videos(folder: Path, archives, members) -> None:
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == sorted(
        m.split("/")[1] for m in members)
    for member in members:
        assert (folder / member.split("/")[1]).read_bytes() == archives["files"][member]


def test_ucf101_dataset_downloads_and_extracts_both_archives(server, real, ucf_archives,
                                                             monkeypatch):
    mini = ucf_archives["mini"]
    with serving_ucf(server, monkeypatch, "ucf-all", ucf_archives) as (splits_path, videos_path):
        assert ucf101.resolve_mode() == "real"
        data = ucf101.dataset()  # notebook 04's call (all classes)
        assert data.mode == "real"
        assert data.videos_dir == real / "real" / "ucf101" / "UCF101"
        assert data.splits_dir == real / "real" / "ucf101" / "ucfTrainTestlist"
        _check_videos(data.videos_dir, ucf_archives, list(ucf_archives["files"]))
        split = ucf101.load_split(data.splits_dir, 1)
        assert split.classes == mini.classes
        assert len(split.train) + len(split.test) == len(mini.videos)
        assert ucf101.dataset() == data  # a rerun transfers nothing
    assert server.stats(splits_path).statuses == [200]
    assert server.stats(videos_path).statuses == [200]
    assert server.stats(videos_path).bytes_served == len(ucf_archives["videos"])


def test_ucf101_video_zip_dropped_midway_resumes_and_is_verified(server, real, ucf_archives,
                                                                 monkeypatch):
    cut = len(ucf_archives["videos"]) // 2
    with serving_ucf(server, monkeypatch, "ucf-drop", ucf_archives, drop_after=cut,
                     drop_times=1) as (_, videos_path):
        folder = ucf101.download_videos()
    _check_videos(folder, ucf_archives, list(ucf_archives["files"]))
    stats = server.stats(videos_path)
    assert stats.ranges == [None, f"bytes={cut}-"] and stats.statuses == [200, 206]
    archive = real / "real" / "ucf101" / "downloads" / ucf101.VIDEOS_ZIP.filename
    assert archive.read_bytes() == ucf_archives["videos"]  # the SHA-256 was checked too


def _class_members(archives, classes) -> list[str]:
    return [m for m in archives["files"] if any(f"/v_{c}_g" in m for c in classes)]


def test_ucf101_cli_fetches_a_few_classes_by_range_requests(server, real, ucf_archives,
                                                            monkeypatch, capsys):
    classes = ucf_archives["mini"].classes[1:3]  # neighbours in the zip: one run of members
    members = _class_members(ucf_archives, classes)
    start, end = _span(ucf_archives["videos"], members)
    with serving_ucf(server, monkeypatch, "ucf-subset", ucf_archives) as (_, videos_path):
        assert ucf101.main(["download", "--classes", ",".join(classes)]) == 0
        assert "videos:" in capsys.readouterr().out
        folder = real / "real" / "ucf101" / "UCF101"
        _check_videos(folder, ucf_archives, members)
        stats = server.stats(videos_path)
        # HEADs for the size, then range requests only: the tail and directory, then the run
        # of members; every byte of the run crossed once, and far less than the whole zip.
        gets = [(r, status) for m, r, status in zip(stats.methods, stats.ranges, stats.statuses)
                if m == "GET"]
        assert gets and all(r is not None and status == 206 for r, status in gets)
        assert (end - start) <= stats.bytes_served < 0.6 * len(ucf_archives["videos"])  # 2 of 5
        requests = stats.requests
        ucf101.download(classes)  # a rerun finds the files: nothing is transferred
        assert server.stats(videos_path).requests == requests


def test_ucf101_subset_dropped_midway_refetches_only_the_cut_member(server, real, ucf_archives,
                                                                    monkeypatch):
    classes = ucf_archives["mini"].classes[3:5]
    members = _class_members(ucf_archives, classes)
    cut = 70_000  # shorter than the first member: the member read is cut
    assert cut < len(ucf_archives["files"][members[0]])
    with serving_ucf(server, monkeypatch, "ucf-subset-drop", ucf_archives, drop_after=cut,
                     drop_times=3) as (_, videos_path):
        data = ucf101.dataset("real", classes=classes)  # notebook 04's call with CLASSES
    _check_videos(data.videos_dir, ucf_archives, members)
    stats = server.stats(videos_path)
    assert stats.requests > 3  # asked again after the cuts
    assert stats.bytes_served < len(ucf_archives["videos"])
    assert not list(data.videos_dir.glob("*.tmp*")) and not list(data.videos_dir.glob(".*"))