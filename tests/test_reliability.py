"""What a careless or hostile user breaks (issue 10), one test or more per item, all offline.

Each test here failed on the code before the fix: a NaN that scored 100 %, a stale cache key,
a truncated video stored as complete, a raw traceback, a clip list held whole in memory.
Command lines are run in-process through their ``main`` (an uncaught exception would fail the
test, so "no traceback" is checked by getting a return value at all) unless a real second
process is the point.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from helpers import atomic, checks, cli, milnce, mmv, probe, retrieval, ucf101, video
from helpers.standins import mmv as mmv_standin
from helpers.standins.ucf101 import write_avi
from helpers.ucf101 import features, store as store_mod

ROOT = Path(__file__).resolve().parent.parent


def _error_line(capsys) -> str:
    """The single stderr line a command printed for a bad input."""
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "nothing on stderr"
    assert "Traceback" not in "\n".join(err)
    return err[-1]


# ------------------------------------------------------------------------------------------
# Fake MIL-NCE module: the real signatures' interface, outputs from the pixels
# ------------------------------------------------------------------------------------------

class _Out:
    def __init__(self, value):
        self.value = np.asarray(value, np.float32)

    def numpy(self):
        return self.value


class FakeMilnce:
    """``signatures["video"]`` averages pixels (a mean over no frames is NaN, as in S3D's
    pooling); ``signatures["text"]`` hashes the words. ``nan_out`` makes it return NaN."""

    def __init__(self, nan_out: bool = False):
        self.nan_out = nan_out
        self.seen_texts: list[str] = []
        self.signatures = {"video": self._video, "text": self._text}

    def _video(self, images):
        array = np.asarray(images)
        with np.errstate(invalid="ignore", divide="ignore"):
            pooled = array.reshape(array.shape[0], -1, 3).mean(axis=1)  # NaN when T or H is 0
        if self.nan_out:
            pooled = pooled * np.nan
        return {"video_embedding": _Out(np.tile(pooled, (1, 171))[:, :512]),
                "mixed_5c": _Out(np.tile(pooled, (1, 342))[:, :1024])}

    def _text(self, words):
        texts = [w.decode() for w in np.asarray(words).tolist()]
        self.seen_texts += texts
        rows = [np.random.default_rng(abs(hash(t)) % 2**32).random(512) for t in texts]
        out = np.array(rows, np.float32) * (np.nan if self.nan_out else 1.0)
        return {"text_embedding": _Out(out)}


# ------------------------------------------------------------------------------------------
# Item 2: NaN in, perfect score out
# ------------------------------------------------------------------------------------------

def test_metrics_never_rank_nan_as_a_hit():
    nan = np.full((3, 3), np.nan)
    with pytest.raises(checks.NonFiniteError, match="similarity matrix.*9 NaN"):
        retrieval.metrics(nan)
    half = np.eye(3)
    half[1, 2] = np.nan
    with pytest.raises(checks.NonFiniteError, match="at index 1"):
        retrieval.both_directions(half)
    with pytest.raises(checks.NonFiniteError):
        retrieval.zero_shot_accuracy(nan, [0, 1, 2])
    with pytest.raises(checks.NonFiniteError, match="video_embedding"):
        retrieval.similarity(np.ones((2, 4)), np.full((2, 4), np.nan))
    # Finite scores still rank as before (a perfect diagonal is R@1 = 100).
    assert retrieval.metrics(np.eye(3))["R@1"] == 100.0


def test_the_probe_never_scores_nan_as_a_hit():
    labels = np.array([0, 1, 2])
    with pytest.raises(checks.NonFiniteError, match="probe scores"):
        probe.topk_accuracy(np.full((3, 3), np.nan), labels, 1)
    rng = np.random.default_rng(0)
    train = rng.normal(size=(6, 2, 4))
    test = rng.normal(size=(3, 2, 4))
    test[1, 0, 0] = np.nan
    with pytest.raises(checks.NonFiniteError, match="test features"):
        probe.linear_evaluation(train, np.array([0, 0, 1, 1, 2, 2]), test, labels)
    assert probe.topk_accuracy(np.eye(3), labels, 1) == 1.0


@pytest.mark.parametrize("shape, fill, words", [
    ((0, 8, 8, 3), 0.5, "empty axis"),  # T = 0
    ((4, 0, 8, 3), 0.5, "empty axis"),  # H = 0
    ((4, 8, 8, 3), np.nan, "NaN"),
])
def test_embed_videos_refuses_clips_that_would_give_nan(shape, fill, words):
    clips = [np.full(shape, fill, np.float32)]
    with pytest.raises(ValueError, match=words):
        milnce.embed_videos(FakeMilnce(), clips)


def test_non_finite_model_outputs_are_errors_naming_the_source():
    clips = np.full((2, 4, 8, 8, 3), 0.5, np.float32)
    with pytest.raises(checks.NonFiniteError, match="MIL-NCE video signature.*clips 0..1"):
        milnce.embed_videos(FakeMilnce(nan_out=True), clips)
    with pytest.raises(checks.NonFiniteError, match="MIL-NCE text signature"):
        milnce.embed_texts(FakeMilnce(nan_out=True), ["a dog"])


def test_embed_texts_validates_its_arguments():
    model = FakeMilnce()
    with pytest.raises(ValueError, match="batch_size"):
        milnce.embed_texts(model, ["a", "b"], batch_size=0)
    with pytest.raises(TypeError, match="dict"):
        milnce.embed_texts(model, {"a dog": 1, "a cat": 2})
    assert model.seen_texts == []  # nothing was embedded, least of all the dict's keys
    assert milnce.embed_texts(model, ("a dog", "a cat")).shape == (2, 512)


def test_every_text_tower_refuses_a_dict_or_set_of_sentences():
    # One check (helpers.words.sentence_list) for MIL-NCE, MMV's text signature and the tokeniser.
    from helpers import words

    for bad, error in (({"a dog": 1}, TypeError), ({"a dog"}, TypeError),
                       (np.array([["a", "b"]]), ValueError), (["a", 3], TypeError)):
        with pytest.raises(error):
            words.sentence_list(bad)
    assert words.sentence_list("a dog") == ["a dog"]
    assert words.sentence_list(np.array(["a", "b"])) == ["a", "b"]


@pytest.fixture(scope="module")
def s3d_tree():
    return mmv_standin.make_checkpoint("s3d")


def test_mmv_nan_weights_are_named_not_written(tmp_path, s3d_tree, capsys):
    module = next(m for m in s3d_tree["params"] if "/visual_module/" in m)
    name = next(iter(s3d_tree["params"][module]))
    poisoned = {k: {m: dict(a) for m, a in v.items()} if isinstance(v, dict) else v
                for k, v in s3d_tree.items()}
    poisoned["params"][module][name] = np.full_like(s3d_tree["params"][module][name], np.nan)
    ckpt = mmv_standin.write_checkpoint(poisoned, tmp_path / "nan.pkl")
    clips = np.full((1, 4, 32, 32, 3), 0.5, np.float32)
    np.save(tmp_path / "clips.npy", clips)
    out = tmp_path / "emb.npz"
    code = mmv.main(["embed", "--backbone", "s3d", "--checkpoint", str(ckpt), "--clips",
                     str(tmp_path / "clips.npy"), "--out", str(out), "--batch-size", "1"])
    line = _error_line(capsys)
    assert code == 2 and not out.exists()
    assert str(ckpt) in line and "not finite" in line and f"{module}/{name}" in line


# ------------------------------------------------------------------------------------------
# Item 7: arguments validated before the model loads
# ------------------------------------------------------------------------------------------

@pytest.fixture
def no_model(monkeypatch):
    """Loading the model fails the test: validation must come first."""
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(milnce, "load", refuse)
    monkeypatch.setattr(milnce, "resolve_mode", refuse)
    monkeypatch.setattr(mmv, "load_model", refuse)


@pytest.mark.parametrize("flag, value", [
    ("--size", "0"), ("--size", "-5"), ("--batch-size", "0"), ("--fps", "0"), ("--fps", "-1"),
    ("--fps", "nan"), ("--fps", "inf"), ("--windows", "0"), ("--windows", "-2"),
    ("--frames", "0"), ("--frames", "-1"),
])
def test_milnce_cli_refuses_bad_numbers_before_loading(tmp_path, no_model, capsys, flag, value):
    assert milnce.main(["embed", "--text", "a dog", "--out", str(tmp_path / "e.npz"),
                        "--sampling", "windows", flag, value]) == 2
    assert flag in _error_line(capsys)


@pytest.mark.parametrize("content, words", [
    (b"", "empty (0 bytes)"),
    # A valid header claiming 2**40 float32 values (4 TiB), followed by nothing.
    (None, "claims"),
])
def test_mmv_cli_refuses_empty_or_absurd_npy(tmp_path, no_model, capsys, content, words):
    path = tmp_path / "clips.npy"
    if content is None:
        with open(path, "wb") as handle:
            np.lib.format.write_array_header_1_0(
                handle, {"descr": "<f4", "fortran_order": False,
                         "shape": (1024, 32, 224, 224 * 1000, 3)})
    else:
        path.write_bytes(content)
    code = mmv.main(["embed", "--backbone", "s3d", "--clips", str(path), "--out",
                     str(tmp_path / "e.npz")])
    assert code == 2
    line = _error_line(capsys)
    assert str(path) in line and words in line


def test_ucf101_evaluate_checks_its_checkpoint_before_the_work(tmp_path, capsys, monkeypatch,
                                                               tiny_store):
    monkeypatch.setattr(ucf101, "evaluate", lambda *a, **k: pytest.fail("evaluation ran"))
    code = ucf101.main(["evaluate", "--store", str(tiny_store.root), "--backbone", "milnce",
                        "--checkpoint", "/nonexistent"])
    assert code == 2
    line = _error_line(capsys)
    assert "/nonexistent" in line and "not found" in line


def test_a_split_list_that_is_a_folder_is_named(tmp_path, capsys):
    splits = tmp_path / "splits"
    splits.mkdir()
    (splits / "classInd.txt").write_text("1 A\n")
    (splits / "trainlist01.txt").mkdir()
    (splits / "testlist01.txt").write_text("A/v_A_g01_c01.avi\n")
    (tmp_path / "videos").mkdir()
    code = ucf101.main(["prepare", "--videos", str(tmp_path / "videos"), "--splits", str(splits),
                        "--store", str(tmp_path / "store"), "--split", "1"])
    assert code == 2
    line = _error_line(capsys)
    assert str(splits / "trainlist01.txt") in line and "a folder, not a file" in line


# ------------------------------------------------------------------------------------------
# Item 6: OSError on outputs and caches: one line, exit status 2, checked before the work
# ------------------------------------------------------------------------------------------

def test_out_that_is_a_folder_or_unwritable_is_refused_at_parse_time(tmp_path, no_model,
                                                                    capsys):
    folder = tmp_path / "out.npz"
    folder.mkdir()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for out, words in ((folder, "is a folder"), (blocker / "e.npz", "cannot be created")):
        assert milnce.main(["embed", "--text", "a dog", "--out", str(out)]) == 2
        line = _error_line(capsys)
        assert str(out) in line and words in line


@pytest.mark.parametrize("command", ["milnce", "mmv", "ucf101"])
def test_cache_root_that_is_a_file_is_one_line(tmp_path, monkeypatch, capsys, command):
    root = tmp_path / "cache-is-a-file"
    root.write_text("not a folder")
    monkeypatch.setenv("COURSE_CACHE_DIR", str(root))
    clips = tmp_path / "clips.npy"
    np.save(clips, np.full((1, 4, 32, 32, 3), 0.5, np.float32))
    argv = {"milnce": ["embed", "--text", "a dog", "--out", str(tmp_path / "e.npz")],
            "mmv": ["embed", "--backbone", "s3d", "--clips", str(clips), "--out",
                    str(tmp_path / "e.npz")],
            "ucf101": ["download", "--dest", str(tmp_path / "d")]}[command]
    main = {"milnce": milnce.main, "mmv": mmv.main, "ucf101": ucf101.main}[command]
    assert main(argv) == 2
    line = _error_line(capsys)
    assert str(root) in line and "file, not a folder" in line


def test_evaluate_report_unwritable_is_refused_before_the_evaluation(tmp_path, monkeypatch,
                                                                     capsys, tiny_store):
    monkeypatch.setattr(ucf101, "evaluate", lambda *a, **k: pytest.fail("evaluation ran"))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for flag, value in (("--report", blocker / "r.json"), ("--cache", blocker / "cache")):
        assert ucf101.main(["evaluate", "--store", str(tiny_store.root), flag, str(value)]) == 2
        assert str(value) in _error_line(capsys)


@pytest.mark.parametrize("with_name", [True, False], ids=["named", "as-a-real-write-raises"])
def test_prepare_on_a_full_disk_is_one_line(tmp_path, monkeypatch, capsys, source_videos,
                                            with_name):
    # A real write on a full disk raises ENOSPC without a file name (seen on a 64 KiB tmpfs):
    # the line then names the command's outputs, here the store.
    videos, splits = source_videos

    def full(path, jpegs):
        raise OSError(errno.ENOSPC, "No space left on device", *([str(path)] if with_name else []))

    monkeypatch.setattr(store_mod, "write_container", full)
    code = ucf101.main(["prepare", "--videos", str(videos), "--splits", str(splits), "--store",
                        str(tmp_path / "store"), "--workers", "1"])
    assert code == 2
    line = _error_line(capsys)
    assert line.startswith("error: ") and "No space left on device" in line
    assert str(tmp_path / "store") in line


# ------------------------------------------------------------------------------------------
# A small store, and source videos (ffmpeg runs: a second or two in all)
# ------------------------------------------------------------------------------------------

def _frames(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (1, 48, 64, 3))
    shift = np.arange(n)[:, None, None, None] * 3
    return ((base + shift) % 255).astype(np.uint8)


@pytest.fixture(scope="module")
def source_videos(tmp_path_factory):
    """Two AVIs of 29 frames and split files naming them."""
    root = tmp_path_factory.mktemp("sources")
    videos, splits = root / "videos", root / "splits"
    for k, name in enumerate(("v_A_g01_c01", "v_A_g08_c01")):
        write_avi(videos / "A" / f"{name}.avi", _frames(29, k), fps=25)
    splits.mkdir()
    (splits / "classInd.txt").write_text("1 A\n")
    (splits / "trainlist01.txt").write_text("A/v_A_g08_c01.avi 1\n")
    (splits / "testlist01.txt").write_text("A/v_A_g01_c01.avi\n")
    return videos, splits


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory, source_videos):
    videos, splits = source_videos
    root = tmp_path_factory.mktemp("store") / "store"
    ucf101.prepare(videos, splits, root, workers=1, progress=False)
    return ucf101.open_store(root)


# ------------------------------------------------------------------------------------------
# Item 3: prepare and truncated videos
# ------------------------------------------------------------------------------------------

def test_prepare_refuses_a_truncated_source_and_records_it(tmp_path):
    whole = write_avi(tmp_path / "whole.avi", _frames(29), fps=25)
    cut = tmp_path / "cut.avi"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    report = store_mod.prepare_store({"v_cut": cut, "v_whole": whole}, tmp_path / "store",
                                     workers=1, progress=False)
    assert report.encoded == ["v_whole"] and list(report.failed) == ["v_cut"]
    assert "truncated" in report.failed["v_cut"]
    failures = json.loads((tmp_path / "store" / "failures.json").read_text())
    assert "truncated" in failures["v_cut"]
    assert "v_cut" not in store_mod.FrameStore(tmp_path / "store")


def test_prepare_redoes_a_truncated_container(tmp_path, capsys):
    whole = write_avi(tmp_path / "whole.avi", _frames(29), fps=25)
    root = tmp_path / "store"
    store_mod.prepare_store({"v_a": whole}, root, workers=1, progress=False)
    container = store_mod.FrameStore(root).path_for("v_a")
    data = container.read_bytes()
    container.write_bytes(data[: len(data) // 2])
    report = store_mod.prepare_store({"v_a": whole}, root, workers=1, progress=False)
    assert report.encoded == ["v_a"] and report.skipped == []
    err = capsys.readouterr().err
    assert str(container) in err and "re-encoding it" in err and "delete it" not in err
    assert container.read_bytes() == data
    assert store_mod.FrameStore(root).video("v_a").num_frames == 29


# ------------------------------------------------------------------------------------------
# Item 5: damaged cache parts and store records heal or are named
# ------------------------------------------------------------------------------------------

def _mean_encoder(clips):
    return np.asarray(clips, np.float32).mean(axis=(1, 2, 3))  # [B, 3]


def _extract(store, cache, **kwargs):
    return features.extract_features(
        store, store.names(), _mean_encoder, "mean-test", sampling="test",
        protocol=ucf101.TINY_PROTOCOL, cache_dir=cache, batch_size=2, workers=1,
        part_videos=1, progress=False, **kwargs)


def _damage(part: Path, how: str) -> None:
    data = part.read_bytes()
    if how == "truncated":
        part.write_bytes(data[: len(data) // 2])
    elif how == "zero-byte":
        part.write_bytes(b"")
    elif how == "NaN features":  # a valid archive whose features were overwritten with NaN
        with np.load(part) as archive:
            arrays = {key: archive[key] for key in archive.files}
        arrays["features"] = np.full_like(arrays["features"], np.nan)
        np.savez(part, **arrays)
    else:  # flip one byte inside the stored features: the zip's CRC no longer matches
        with zipfile.ZipFile(part) as archive:
            info = archive.getinfo("features.npy")
        offset = info.header_offset + 30 + len(info.filename) + info.compress_size - 1
        damaged = bytearray(data)
        damaged[offset] ^= 0xFF
        part.write_bytes(bytes(damaged))


@pytest.mark.parametrize("how", ["truncated", "zero-byte", "bad CRC", "NaN features"])
def test_a_damaged_feature_part_is_reported_deleted_and_recomputed(tmp_path, tiny_store, how,
                                                                   capsys):
    cache = tmp_path / "features"
    first = _extract(tiny_store, cache)
    parts = sorted(cache.rglob("part-*.npz"))
    assert len(parts) == 2
    _damage(parts[0], how)
    capsys.readouterr()
    again = _extract(tiny_store, cache)
    err = capsys.readouterr().err
    assert err.count(str(parts[0])) == 1 and "damaged" in err
    assert not parts[0].exists()
    np.testing.assert_array_equal(again, first)  # recomputed by the same code on the same clips
    assert len(list(cache.rglob("part-*.npz"))) == 2
    capsys.readouterr()
    _extract(tiny_store, cache)  # healed: nothing more to report
    assert "damaged" not in capsys.readouterr().err


def test_consolidate_tolerates_a_damaged_part(tmp_path, tiny_store):
    cache = tmp_path / "features"
    first = _extract(tiny_store, cache)
    parts = sorted(cache.rglob("part-*.npz"))
    (parts[0].parent / "part-zz-extra.npz").write_bytes(b"PK\x03\x04 cut")
    assert features.consolidate(parts[0].parent) == 3
    assert len(list(parts[0].parent.glob("part-*.npz"))) == 1
    np.testing.assert_array_equal(_extract(tiny_store, cache), first)


@pytest.mark.parametrize("content", ["{\"settings\": {\"cache_ver", "[]"])
def test_a_damaged_meta_json_is_rewritten(tmp_path, tiny_store, content, capsys):
    cache = tmp_path / "features"
    first = _extract(tiny_store, cache)
    meta = next(cache.rglob("meta.json"))
    meta.write_text(content)
    np.testing.assert_array_equal(_extract(tiny_store, cache), first)
    assert str(meta) in capsys.readouterr().err
    assert "settings" in json.loads(meta.read_text())


@pytest.mark.parametrize("content", ["{\"format\": \"ucf101-mm", "[]", "{\"format\": "
                                     "\"ucf101-mmv-jpeg-store\", \"version\": 1}"])
def test_a_damaged_manifest_is_named(tmp_path, tiny_store, content, capsys):
    import shutil

    root = tmp_path / "store"
    shutil.copytree(tiny_store.root, root)
    (root / "manifest.json").write_text(content)
    with pytest.raises(store_mod.StoreError, match="manifest.json: damaged"):
        store_mod.FrameStore(root)
    assert ucf101.main(["evaluate", "--store", str(root), "--protocol", "tiny"]) == 2
    line = _error_line(capsys)
    assert str(root / "manifest.json") in line


# ------------------------------------------------------------------------------------------
# Items 1 and 9: cache keys carry the weights' digest; reports say what the weights are
# ------------------------------------------------------------------------------------------

def test_feature_cache_key_changes_when_the_default_checkpoint_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    path = mmv.checkpoint_path("s3d", "tiny")
    before = ucf101.mmv_encoder("s3d")
    assert before.weights["origin"] == "stand-in" and before.mode == "tiny"
    # Other weights at the same path (a new stand-in rule, a re-download): a new key.
    mmv_standin.write_checkpoint(mmv_standin.make_checkpoint("s3d", seed=1), path)
    after = ucf101.mmv_encoder("s3d")
    assert after.name != before.name
    assert after.weights["sha256"] == checks.file_digest(path) != before.weights["sha256"]


def test_file_digest_is_computed_once_per_size_and_mtime(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    target = tmp_path / "weights.bin"
    target.write_bytes(b"a" * 1000)
    calls = []
    real = checks._sha256
    monkeypatch.setattr(checks, "_sha256", lambda p: calls.append(p) or real(p))
    first = checks.file_digest(target)
    assert checks.file_digest(target) == first and len(calls) == 1  # remembered
    target.write_bytes(b"b" * 1000)
    os.utime(target, ns=(time.time_ns() + 10**9,) * 2)
    assert checks.file_digest(target) != first and len(calls) == 2  # changed: hashed again


def test_a_stand_in_passed_as_checkpoint_is_labelled_as_one(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    standin = mmv.checkpoint_path("s3d", "tiny")
    copy = tmp_path / "my.pkl"
    copy.write_bytes(standin.read_bytes())
    encoder = ucf101.mmv_encoder("s3d", str(copy))
    assert encoder.mode == "tiny" and encoder.weights["origin"] == "stand-in"
    assert encoder.weights["sha256"] == checks.file_digest(standin)
    other = tmp_path / "other.pkl"
    mmv_standin.write_checkpoint(mmv_standin.make_checkpoint("s3d", seed=3), other)
    assert ucf101.mmv_encoder("s3d", str(other)).weights["origin"] == "user file"


# ------------------------------------------------------------------------------------------
# Item 4: one lock for every cached artefact (a second process waits)
# ------------------------------------------------------------------------------------------

def _child_waits_for_lock(lock_target: Path, code: str, env: dict) -> None:
    """Hold ``lock_target``'s lock and start ``code`` in a child, which prints ``start`` just
    before calling a builder made instant (its heavy part patched out): without the lock the
    child ends within milliseconds, with it the child is still blocked a second later. A
    correct builder can only pass (never flaky); a missing lock fails unless the machine
    stalls for a whole second."""
    merged = dict(os.environ, PYTHONPATH=str(ROOT), **env)
    with atomic.locked(lock_target):
        child = subprocess.Popen([sys.executable, "-c", code], env=merged, cwd=ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "start", child.stderr.read()
        time.sleep(1.0)
        waited = child.poll() is None
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert waited, f"the child did not wait for the lock on {lock_target}"
    assert out.strip() == "done"


def test_stand_in_builders_wait_for_the_lock(tmp_path):
    env = {"COURSE_CACHE_DIR": str(tmp_path / "cache"), "COURSE_MODE": "tiny"}
    target = tmp_path / "cache" / "tiny" / "mmv" / f"{mmv_standin.RULE}-seed0" / "mmv_s3d.pkl"
    _child_waits_for_lock(target, (
        "from helpers import atomic\n"
        "from helpers.standins import mmv\n"
        "mmv.make_checkpoint = lambda backbone, seed, **parts: {}\n"
        "mmv.write_checkpoint = lambda tree, path, **kw: atomic.write_bytes(path, b'x')\n"
        "print('start', flush=True)\n"
        "mmv.tiny_checkpoint('s3d')\n"
        "print('done')\n"), env)
    from helpers.standins import clips

    gallery = tmp_path / "gallery"
    _child_waits_for_lock(gallery / clips.CLIPS[0][1], (
        "from pathlib import Path\n"
        "from helpers import video\n"
        "from helpers.standins import clips\n"
        "video.write_video = lambda path, frames, fps: Path(path).write_bytes(b'x')\n"
        "print('start', flush=True)\n"
        f"clips.generate({str(gallery)!r})\n"
        "print('done')\n"), env)
    mini = tmp_path / "mini"
    _child_waits_for_lock(mini, (
        "from pathlib import Path\n"
        "from helpers.standins import ucf101\n"
        "ucf101.render_video = lambda *a, **k: None\n"
        "ucf101.write_avi = lambda path, frames, fps=25: (Path(path).parent.mkdir(parents=True,"
        " exist_ok=True), Path(path).write_bytes(b'x'))\n"
        "print('start', flush=True)\n"
        f"ucf101.make_mini_ucf101({str(mini)!r})\n"
        "print('done')\n"), env)
    hub_cache = tmp_path / "hub"
    _child_waits_for_lock(hub_cache / ".standin-0123", (
        "import json\n"
        "from pathlib import Path\n"
        "from helpers.standins import milnce\n"
        "milnce.cache_folder_name = lambda handle: '0123'\n"
        "def build(dest, tf1_style, seed):\n"
        "    Path(dest).mkdir(parents=True)\n"
        "    (Path(dest) / milnce.MARKER).write_text(json.dumps({'version': milnce.VERSION,"
        " 'seed': seed, 'tf1_style': tf1_style}))\n"
        "milnce.build_module = build\n"
        "print('start', flush=True)\n"
        f"milnce.ensure_in_cache({str(hub_cache)!r}, 'https://example.org/m/1')\n"
        "print('done')\n"), env)


def test_feature_extraction_waits_for_another_run_on_the_same_folder(tmp_path, tiny_store):
    cache = tmp_path / "features"
    folder = features.feature_cache_dir(cache, "mean-test", "test", ucf101.TINY_PROTOCOL,
                                        tiny_store)
    called = threading.Event()

    def encoder(clips):
        called.set()
        return _mean_encoder(clips)

    result = {}
    run = lambda: result.setdefault("x", features.extract_features(  # noqa: E731
        tiny_store, tiny_store.names(), encoder, "mean-test", sampling="test",
        protocol=ucf101.TINY_PROTOCOL, cache_dir=cache, batch_size=2, workers=1,
        progress=False))
    with features.folder_lock(folder):
        worker = threading.Thread(target=run)
        worker.start()
        # Without the lock the encoder runs within milliseconds; with it, never meanwhile.
        assert not called.wait(1.5), "the second run did not wait for the first one's lock"
    worker.join(timeout=60)
    assert called.is_set() and result["x"].shape[:2] == (2, ucf101.TINY_PROTOCOL.test_windows)


# ------------------------------------------------------------------------------------------
# Item 8: milnce embed streams (memory does not grow with the number of videos)
# ------------------------------------------------------------------------------------------

def _peak_bytes(tmp_path, monkeypatch, count: int) -> int:
    folder = tmp_path / f"videos-{count}"
    paths = [video.write_video(folder / f"v{k}.mp4", _frames(12, k), fps=10)
             for k in range(count)]
    monkeypatch.setattr(milnce, "load", lambda handle=None, **kw: FakeMilnce())
    argv = ["embed", "--handle", str(tmp_path), "--out", str(tmp_path / f"e{count}.npz"),
            "--frames", "8", "--size", "64", "--batch-size", "2"]
    for path in paths:
        argv += ["--video", str(path)]
    milnce.import_tensorflow()  # imported before measuring: its import alone peaks at ~200 MB
    tracemalloc.start()  # numpy reports its buffers to tracemalloc: exact, unlike RSS
    try:
        assert milnce.main(argv) == 0
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_milnce_embed_peak_memory_does_not_grow_with_the_videos(tmp_path, monkeypatch):
    small = _peak_bytes(tmp_path, monkeypatch, 4)
    large = _peak_bytes(tmp_path, monkeypatch, 24)
    clip = 8 * 64 * 64 * 3 * 4  # one float32 clip: 393 kB
    # Held whole, 24 videos would take 20 clips more than 4 (7.9 MB). Streaming keeps one batch
    # of 2; what does grow is 20 embeddings (6 kB each) and per-file bookkeeping: far below 4
    # clips, whatever the allocator does.
    assert large - small < 4 * clip, (small, large)


# ------------------------------------------------------------------------------------------
# Item 10: what video_info says about odd files
# ------------------------------------------------------------------------------------------

def test_video_info_says_claimed_for_a_header_count(tmp_path):
    path = write_avi(tmp_path / "v.avi", _frames(10), fps=25)
    data = bytearray(path.read_bytes())
    strh = data.index(b"strh")
    data[strh + 8 + 32: strh + 8 + 36] = (2**31 - 1).to_bytes(4, "little")  # dwLength
    forged = tmp_path / "forged.avi"
    forged.write_bytes(bytes(data))
    info = video.video_info(forged)
    assert info.num_frames_source == "claimed" and not info.num_frames_exact
    counted = video.video_info(path, exact=True)
    assert counted.num_frames_source == "counted" and counted.num_frames_exact
    assert counted.num_frames == 10


def test_symlink_loop_and_fifo_are_named_as_such(tmp_path):
    loop_a, loop_b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    os.symlink(loop_b, loop_a)
    os.symlink(loop_a, loop_b)
    with pytest.raises(video.VideoError, match="symbolic link loop"):
        video.video_info(loop_a)
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    with pytest.raises(video.VideoError, match="FIFO"):
        video.video_info(fifo)


def test_an_error_without_a_file_name_names_the_outputs(tmp_path, capsys):
    parser = cli.ArgumentParser(prog="t")
    sub = parser.add_subparsers(dest="command", required=True)
    write = sub.add_parser("write")
    write.add_argument("--out", type=cli.output_file)
    read = sub.add_parser("read")
    read.add_argument("--out", type=cli.input_file)  # same name, but an input here

    def body(err):
        def run(args):
            raise err
        return run

    full = OSError(errno.ENOSPC, "No space left on device")
    assert cli.main(parser, body(full), ["write", "--out", str(tmp_path / "o.npz")]) == 2
    line = capsys.readouterr().err.strip()
    assert "No space left on device" in line and str(tmp_path / "o.npz") in line and "cache" in line
    (tmp_path / "i.txt").write_text("x")
    assert cli.main(parser, body(full), ["read", "--out", str(tmp_path / "i.txt")]) == 2
    assert str(tmp_path / "i.txt") not in capsys.readouterr().err  # inputs are not outputs
    # An OSError that is no write (a refused connection) is not dressed as one.
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    assert cli.main(parser, body(refused), ["write", "--out", str(tmp_path / "o.npz")]) == 2
    assert "while writing" not in capsys.readouterr().err


def test_cli_types_name_what_a_path_is(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match="FIFO"):
        cli.input_file(str(tmp_path / "pipe"))
    with pytest.raises(argparse.ArgumentTypeError, match="no such file"):
        cli.input_file(str(tmp_path / "missing"))
    assert cli.output_file(str(tmp_path / "new" / "x.npz")) == tmp_path / "new" / "x.npz"
    assert not (tmp_path / "new").exists()  # checked, not created
