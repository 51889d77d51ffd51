"""The UCF101 pipeline end to end on the mini-UCF101: command line, report, accuracy, downloads."""

import dataclasses
import functools
import http.server
import io
import json
import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from helpers import config, ucf101
from helpers.standins.ucf101 import make_mini_ucf101

ROOT = Path(__file__).resolve().parent.parent


def object_encoder(clips):
    """Deterministic test features: colour histogram of the moving object, [B, 64].

    The object is whatever differs from the clip's median colour (the background); its pixels
    are counted in 4 x 4 x 4 RGB bins. (Plain colour means would also separate the classes, but
    3-d features underfit with the protocol's C = 0.001 on a hundred training clips.)
    """
    clips = np.asarray(clips, dtype=np.float32)
    batch = clips.shape[0]
    background = np.median(clips.reshape(batch, -1, 3), axis=1)
    salient = np.abs(clips - background[:, None, None, None]).sum(-1) > 0.25  # [B, T, H, W]
    levels = np.minimum((clips * 4).astype(np.int64), 3)
    bins = (levels[..., 0] * 4 + levels[..., 1]) * 4 + levels[..., 2]
    hist = np.stack([np.bincount(bins[i][salient[i]], minlength=64) for i in range(batch)])
    return (hist / (hist.sum(axis=1, keepdims=True) + 1.0)).astype(np.float32)


def object_encoder_factory(checkpoint=None):
    return ucf101.Encoder(object_encoder, "object-colours-v1", 64, "tiny", "test encoder")


@pytest.fixture(scope="module")
def mini():
    return make_mini_ucf101()  # the notebook's tiny dataset (cached in COURSE_DATA_DIR)


@pytest.fixture(scope="module")
def store_dir(mini, tmp_path_factory):
    store = tmp_path_factory.mktemp("store")
    report = ucf101.prepare(mini.videos_dir, mini.splits_dir, store, progress=False)
    assert not report.failed
    return store


def test_tiny_accuracy_is_well_above_chance(store_dir, tmp_path):
    """The notebook's path from the store on: clips, features, probe, on every split."""
    encoder = object_encoder_factory()
    store = ucf101.open_store(store_dir)
    for number in (1, 2, 3):
        split = ucf101.store_split(store, number)
        chance = 1 / split.num_classes
        feats = ucf101.split_features(store, split, encoder, protocol=ucf101.TINY_PROTOCOL,
                                      cache_dir=tmp_path, batch_size=8, progress=False)
        assert feats.train.shape == (len(split.train), 4, 64)
        assert feats.test.shape == (len(split.test), 4, 64)
        result = ucf101.probe.linear_evaluation(feats.train, feats.train_labels, feats.test,
                                                feats.test_labels,
                                                num_classes=split.num_classes)
        assert result.top1 >= max(0.8, 3 * chance), (number, result.summary())


def test_random_conv_features_separate_the_classes(store_dir, tmp_path):
    """Like the tiny MMV stand-in: a network with random weights already separates them."""
    jax = pytest.importorskip("jax")
    rng = np.random.default_rng(0)  # numpy weights: jax.random would compile for seconds
    w1 = rng.normal(0, 0.3, (3, 3, 3, 3, 8)).astype(np.float32)
    w2 = rng.normal(0, 0.1, (3, 3, 3, 8, 32)).astype(np.float32)
    numbers = ("NDHWC", "DHWIO", "NDHWC")

    @jax.jit
    def forward(clips):
        h = jax.nn.relu(jax.lax.conv_general_dilated(clips, w1, (2, 2, 2), "SAME",
                                                     dimension_numbers=numbers))
        h = jax.nn.relu(jax.lax.conv_general_dilated(h, w2, (2, 2, 2), "SAME",
                                                     dimension_numbers=numbers))
        return h.mean(axis=(1, 2, 3))

    encoder = ucf101.Encoder(lambda clips: np.asarray(forward(clips)), "random-conv-v1", 32,
                             "tiny")
    report = ucf101.evaluate(store_dir, 1, "random-conv", encoder=encoder, cache_dir=tmp_path,
                             protocol=ucf101.TINY_PROTOCOL, progress=False)
    assert report["top1"] >= 0.8 and report["feature_dim"] == 32


def test_command_line_prepare_and_evaluate(mini, tmp_path, capsys):
    ucf101.register_encoder("object-test", object_encoder_factory)
    store = tmp_path / "store"
    # The module runs as a script (python -m), re-encoding the official layout.
    run = subprocess.run([sys.executable, "-m", "helpers.ucf101", "prepare", "--videos",
                          str(mini.videos_dir), "--splits", str(mini.splits_dir), "--store",
                          str(store), "--split", "1", "--workers", "2"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert run.returncode == 0, run.stderr
    assert f"{len(mini.videos)} videos re-encoded" in run.stdout
    report_path = tmp_path / "report.json"
    tiny = ucf101.TINY_PROTOCOL
    code = ucf101.main(["evaluate", "--store", str(store), "--split", "1", "--backbone",
                        "object-test", "--cache", str(tmp_path / "cache"), "--report",
                        str(report_path), "--protocol", "tiny", "--no-progress"])
    assert code == 0
    out = capsys.readouterr().out
    assert "top-1" in out and "top-5" in out and "report:" in out
    report = json.loads(report_path.read_text())
    assert report["split"] == 1 and report["backbone"] == "object-test"
    assert report["protocol"] == dataclasses.asdict(tiny)
    assert report["C"] == 0.001 and report["num_classes"] == 5
    assert report["num_train_clips"] == tiny.train_passes * report["num_train_videos"]
    assert report["store"]["fps"] == 25 and report["store"]["qscale"] == 2
    assert report["top1"] >= 0.8
    assert set(report["per_class_top1"]) == set(mini.classes)
    assert report["published_top1_percent"] is None and report["missing_videos"] == []
    # Rerunning is served from the feature cache.
    again = ucf101.evaluate(store, 1, "object-test", cache_dir=tmp_path / "cache",
                            protocol=tiny, progress=False)
    assert again["top1"] == report["top1"]
    # Flags override the preset.
    code = ucf101.main(["evaluate", "--store", str(store), "--backbone", "object-test",
                        "--protocol", "tiny", "--windows", "2", "--passes", "1", "--report",
                        str(report_path), "--no-progress"])
    assert code == 0
    assert json.loads(report_path.read_text())["protocol"] == dataclasses.asdict(
        tiny.replace(test_windows=2, train_passes=1))


def test_command_line_errors_are_clear(tmp_path, capsys):
    assert ucf101.main(["evaluate", "--store", str(tmp_path), "--backbone", "s3d"]) == 2
    assert "not a frame store" in capsys.readouterr().err
    assert ucf101.main(["prepare", "--videos", str(tmp_path / "v"), "--splits",
                        str(tmp_path), "--store", str(tmp_path / "s")]) == 2
    assert f"{tmp_path / 'v'}: not found" in capsys.readouterr().err  # before any work
    (tmp_path / "v").mkdir()
    assert ucf101.main(["prepare", "--videos", str(tmp_path / "v"), "--splits",
                        str(tmp_path), "--store", str(tmp_path / "s")]) == 2
    assert "classInd.txt" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown backbone"):
        ucf101.get_encoder("resnet9000")


def test_evaluate_skips_and_reports_videos_missing_from_the_store(mini, tmp_path):
    store = tmp_path / "store"
    ucf101.prepare(mini.videos_dir, mini.splits_dir, store, progress=False, splits=[1])
    gone = ucf101.store_split(ucf101.open_store(store), 1).train[0].name
    (store / "videos" / f"{gone}.jpgs").unlink()
    report = ucf101.evaluate(store, 1, "object-test", encoder=object_encoder_factory(),
                             protocol=ucf101.TINY_PROTOCOL, progress=False)
    assert report["missing_videos"] == [gone]


def test_import_is_quiet():
    code = ("import sys, helpers.ucf101, helpers.probe, helpers.standins.ucf101;"
            "heavy = [m for m in ('tensorflow', 'jax', 'sklearn', 'matplotlib', 'av') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def test_mode_and_tiny_dataset():
    assert ucf101.resolve_mode() == "tiny"  # the test suite runs with COURSE_MODE=tiny
    assert ucf101.protocol_for("tiny") == ucf101.TINY_PROTOCOL
    assert ucf101.protocol_for("real") == ucf101.MMV_PROTOCOL == ucf101.Protocol()
    paths = ucf101.dataset("tiny")
    assert paths.mode == "tiny" and (paths.splits_dir / "classInd.txt").is_file()
    assert str(config.cache_root()) in str(ucf101.default_store_dir("tiny"))
    assert "tiny" in ucf101.default_store_dir("tiny").parts


# --- downloads ---------------------------------------------------------------------------------

def make_zip(path: Path, members: dict) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_extract_zip_resumes_and_refuses_unsafe_paths(tmp_path):
    archive = make_zip(tmp_path / "a.zip", {"UCF101/v_A_g01_c01.avi": b"x" * 100,
                                            "UCF101/v_B_g01_c01.avi": b"y" * 50})
    dest = tmp_path / "out"
    ucf101.extract_zip(archive, dest, progress=False)
    assert (dest / "UCF101" / "v_A_g01_c01.avi").read_bytes() == b"x" * 100
    stamp = (dest / "UCF101" / "v_A_g01_c01.avi").stat().st_mtime_ns
    (dest / "UCF101" / "v_B_g01_c01.avi").write_bytes(b"y" * 10)  # a damaged leftover
    ucf101.extract_zip(archive, dest, progress=False)
    assert (dest / "UCF101" / "v_A_g01_c01.avi").stat().st_mtime_ns == stamp  # skipped
    assert (dest / "UCF101" / "v_B_g01_c01.avi").read_bytes() == b"y" * 50  # redone
    ucf101.extract_zip(archive, tmp_path / "one", members=["UCF101/v_B_g01_c01.avi"],
                       progress=False)
    assert [p.name for p in (tmp_path / "one" / "UCF101").iterdir()] == ["v_B_g01_c01.avi"]
    evil = make_zip(tmp_path / "evil.zip", {"../escape.txt": b"no"})
    with pytest.raises(ucf101.UCF101Error, match="unsafe path"):
        ucf101.extract_zip(evil, tmp_path / "e", progress=False)
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(ucf101.UCF101Error, match="not a readable zip"):
        ucf101.extract_zip(tmp_path / "bad.zip", tmp_path / "b", progress=False)


def test_subset_download_hook(tmp_path):
    assert ucf101.zip_member_names(["v_HandStandPushups_g01_c01", "v_YoYo_g02_c03"]) == [
        "UCF101/v_HandstandPushups_g01_c01.avi", "UCF101/v_YoYo_g02_c03.avi"]
    asked = []

    def fetch_members(url, members, dest):
        asked.append((url, list(members)))
        for member in members:
            (Path(dest) / member).parent.mkdir(parents=True, exist_ok=True)
            (Path(dest) / member).write_bytes(b"avi")

    folder = ucf101.download_subset(["v_YoYo_g02_c03"], tmp_path, fetch_members=fetch_members,
                                    progress=False)
    assert folder == tmp_path / "UCF101" and (folder / "v_YoYo_g02_c03.avi").is_file()
    assert asked == [(ucf101.VIDEOS_ZIP.url, ["UCF101/v_YoYo_g02_c03.avi"])]
    ucf101.download_subset(["v_YoYo_g02_c03"], tmp_path, fetch_members=fetch_members)
    assert len(asked) == 1  # already there: nothing fetched
    assert ucf101.VIDEOS_ZIP.url == ("https://storage.googleapis.com/thumos14_files/"
                                     "UCF101_videos.zip")
    assert ucf101.SPLITS_ZIP.url == ("https://www.crcv.ucf.edu/data/UCF101/"
                                     "UCF101TrainTestSplits-RecognitionTask.zip")


def test_download_splits_over_loopback_http(mini, tmp_path, monkeypatch):
    """The real download path (verified fetch, then extraction) against a local server."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(mini.splits_dir.iterdir()):
            archive.writestr(f"ucfTrainTestlist/{path.name}", path.read_bytes())
    payload = buffer.getvalue()
    serve = tmp_path / "served"
    serve.mkdir()
    (serve / ucf101.SPLITS_ZIP.path).write_bytes(payload)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(serve))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        import hashlib

        config.set_base_url("ucf101_splits", f"http://127.0.0.1:{server.server_port}")
        monkeypatch.setattr(ucf101, "SPLITS_ZIP", dataclasses.replace(
            ucf101.SPLITS_ZIP, size=len(payload), sha256=hashlib.sha256(payload).hexdigest()))
        splits_dir = ucf101.download_splits(tmp_path / "data", progress=False)
        assert splits_dir == tmp_path / "data" / "ucfTrainTestlist"
        assert ucf101.load_split(splits_dir, 2).classes == mini.classes
        # A few classes: the split files name the videos, the hook fetches only those members.
        fetched = []

        def fetch_members(url, members, dest):
            fetched.extend(members)
            for member in members:  # copy the generated videos in, as the zip would hold them
                target = Path(dest) / member
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(next(mini.videos_dir.rglob(target.name)).read_bytes())

        paths = ucf101.download([mini.classes[1]], tmp_path / "data", progress=False,
                                fetch_members=fetch_members)
        assert paths.videos_dir == tmp_path / "data" / "UCF101" and paths.mode == "real"
        assert sorted(fetched) == sorted(f"UCF101/{v}.avi" for v in mini.videos
                                         if f"_{mini.classes[1]}_" in v)
        report = ucf101.prepare(paths.videos_dir, paths.splits_dir, tmp_path / "store",
                                classes=[mini.classes[1]], progress=False)
        assert len(report.encoded) == len(fetched) and not report.failed
        # A wrong checksum is caught and the file is not kept.
        monkeypatch.setattr(ucf101, "SPLITS_ZIP", dataclasses.replace(
            ucf101.SPLITS_ZIP, sha256="0" * 64))
        with pytest.raises(ucf101.downloads.DownloadError, match="SHA-256"):
            ucf101.download_splits(tmp_path / "other", progress=False)
        assert not (tmp_path / "other" / "downloads" / ucf101.SPLITS_ZIP.filename).exists()
    finally:
        config.set_base_url("ucf101_splits", None)
        server.shutdown()
        server.server_close()


def test_plots_of_the_lesson():
    import matplotlib

    matplotlib.use("Agg")
    from helpers import plots

    windows = ucf101.test_window_indices(40, 10, 8, 2)
    fig = plots.protocol_timeline(40, windows, [ucf101.clip_indices(40, 30, 8, 2)])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()][-1] == "train pass 0"
    assert len(ax.get_yticklabels()) == 11
    crosses = [c for c in ax.collections if len(c.get_offsets()) == 3]  # the looped frames
    assert crosses and sorted(crosses[0].get_offsets()[:, 0]) == [0, 2, 4]
    fig = plots.accuracy_sweep([1e-3, 1e-2], {"top-1": [0.5, 0.9]}, "C", log_x=True, chance=0.2)
    assert fig.axes[0].get_xscale() == "log"
    fig = plots.per_class_accuracy(["a", "b", "c"], [1.0, np.nan, 0.5])
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["c", "a", "b"]
