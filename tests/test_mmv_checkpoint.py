"""The MMV checkpoint loader: pickle forms, refusal of code-executing pickles, verification, caches.

No JAX here: loading and verifying a checkpoint needs only numpy.
"""

import builtins
import functools
import http.server
import os
import pickle
import subprocess
import threading

import numpy as np
import pytest

from helpers import config, downloads, mmv
from helpers.mmv import checkpoint as mmv_checkpoint
from helpers.mmv.checkpoint import CheckpointError, TreeEntry, UnsafeCheckpointError
from helpers.standins import mmv as standin

EXTRA = (TreeEntry("params", "text_audio_video/text_module/~/text_conv1", "b", (2048,), "float32"),
         TreeEntry("state", "text_audio_video/audio_module/~/res_net_v2/__cross_replica_batch_norm"
                   "/~/mean_ema", "average", (1, 1, 1, 2048), "float32"))


@pytest.fixture(scope="module")
def s3d_tree():
    return standin.make_checkpoint("s3d", seed=3, extra_entries=EXTRA)


def _same(loaded, tree):
    for entry in mmv_checkpoint.expected_tree("s3d"):
        got = loaded[entry.collection][entry.module][entry.name]
        want = tree[entry.collection][entry.module][entry.name]
        if got.dtype != want.dtype or not np.array_equal(got, want):
            return False
    return True


def test_listings_have_the_official_visual_subset_sizes():
    # Numbers from the known-answer rule (RULE.md, section 2).
    for backbone, (params, params_total, state) in {
            "s3d": (313, 10_066_832, 474),
            "tsm_resnet_x1": (162, 24_945_472, 312),
            "tsm_resnet_x2": (162, 96_385_408, 312)}.items():
        tree = mmv_checkpoint.expected_tree(backbone)
        p = [e for e in tree if e.collection == "params"]
        assert len(p) == params and sum(e.size for e in p) == params_total
        assert len([e for e in tree if e.collection == "state"]) == state
        assert all(mmv_checkpoint.is_visual(e.module) for e in tree)


def test_rule_values_do_not_depend_on_the_subset_generated():
    entries = mmv_checkpoint.expected_tree("tsm_resnet_x1")
    few = standin.make_tree(entries[-3:], seed=7)
    for entry in entries[-3:]:
        alone = standin.rule_array(entry.module, entry.name, entry.shape, seed=7)
        assert np.array_equal(few[entry.collection][entry.module][entry.name], alone)
    state = [e for e in entries if e.name == "hidden"][0]
    hidden = standin.rule_array(state.module, "hidden", state.shape, 7)
    assert np.array_equal(hidden, standin.rule_array(state.module, "average", state.shape, 7))
    assert standin.rule_array(state.module, "counter", (), 7).dtype == np.int32


@pytest.mark.parametrize("container,numpy1_names,protocol", [
    ("dict", False, 0), ("dict", False, 4), ("dict", False, 5), ("dict", True, 2), ("dict", True, 4),
    ("flatmapping", False, 5), ("flatmapping", True, 2), ("flatmapping", True, 4),
])
def test_every_official_pickle_form_loads_to_the_same_arrays(s3d_tree, tmp_path, container,
                                                             numpy1_names, protocol):
    path = standin.write_checkpoint(s3d_tree, tmp_path / "mmv_s3d.pkl", container=container,
                                    numpy1_names=numpy1_names, protocol=protocol,
                                    extra_top_level={"step": 12, "note": "extra keys are ignored"})
    raw = path.read_bytes()
    if container == "flatmapping":
        assert b"haiku._src.data_structures\nFlatMapping" in raw
    if numpy1_names:
        assert b"numpy.core.multiarray\n_reconstruct" in raw
    loaded = mmv.load_checkpoint(path, "s3d")
    assert set(loaded) == {"params", "state"}
    assert all(mmv_checkpoint.is_visual(m) for c in loaded.values() for m in c)
    assert _same(loaded, s3d_tree)


# --------------------------------------------------------------------------- hostile pickles


class _Payload:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _marker_code(marker):
    return f"open({str(marker)!r}, 'w').close()"


def _hostile(marker):
    """(label, pickle bytes, global the loader must name); each would create ``marker``."""
    import numpy.testing._private.utils as np_testing_utils

    code = _marker_code(marker)
    visual = "text_audio_video/visual_module/~/S3D/Conv2d_1a_7x7/~/conv3_d"
    cases = [
        ("os.system at top level", _Payload(os.system, f"touch {marker}"), "system"),
        ("builtins.exec inside params", {"params": {visual: {"w": _Payload(builtins.exec, code)}},
                                         "state": {}}, "exec"),
        ("builtins.eval in a list", {"params": {}, "state": {}, "x": [_Payload(builtins.eval, code)]},
         "eval"),
        ("subprocess.call", {"params": _Payload(subprocess.call, ["touch", str(marker)])},
         "call"),
        ("a numpy function that runs code", _Payload(np_testing_utils.runstring, code, {}),
         "runstring"),
    ]
    out = []
    for label, obj, name in cases:
        for protocol in (0, 2, 4, 5):
            out.append((f"{label}, protocol {protocol}", pickle.dumps(obj, protocol=protocol), name))
    # The same inside Haiku FlatMappings written with numpy 1 names, i.e. mixed with allowed names.
    tree = {"params": {visual: {"w": np.zeros(3, np.float32), "evil": _Payload(builtins.exec, code)}},
            "state": {}}
    out.append(("exec inside a FlatMapping", standin.checkpoint_bytes(
        tree, container="flatmapping", numpy1_names=True), "builtins.exec"))
    return out


def test_the_hostile_payloads_are_live(tmp_path):
    # Proof that the payloads below would really run code under plain pickle.
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(_Payload(builtins.exec, _marker_code(marker))))
    assert marker.exists()


def test_code_executing_pickles_are_refused_and_never_run(tmp_path):
    marker = tmp_path / "payload-ran"
    for label, payload, name in _hostile(marker):
        path = tmp_path / "evil.pkl"
        path.write_bytes(payload)
        with pytest.raises(UnsafeCheckpointError) as info:
            mmv.load_checkpoint(path, "s3d")
        message = str(info.value)
        assert name in message and str(path) in message, (label, message)
        assert "Nothing from the file was executed" in message
        assert not marker.exists(), f"{label}: the payload ran"


def test_zero_size_arrays_and_numpy_scalars_load():
    for protocol in (0, 2, 4, 5):
        raw = pickle.dumps({"a": np.zeros((0, 3), np.float32), "b": np.int32(1)}, protocol=protocol)
        loaded = mmv_checkpoint.safe_unpickle(raw)
        assert loaded["a"].shape == (0, 3) and loaded["b"] == 1 and loaded["b"].dtype == np.int32


def test_allowed_names_cannot_be_abused():
    # numpy's array rebuild asked for a class other than ndarray; _codecs.encode with another codec.
    class Rebuild:
        def __reduce__(self):
            return standin.NUMPY1_RECONSTRUCT, (standin._Global("numpy", "dtype"), (0,), b"b")

    class Codec:
        def __reduce__(self):
            return standin._Global("_codecs", "encode"), ("x", "rot13")

    for obj in (Rebuild(), Codec()):
        with pytest.raises(UnsafeCheckpointError):
            mmv_checkpoint.safe_unpickle(_dumps_python(obj))


def _dumps_python(obj):
    import io

    handle = io.BytesIO()
    standin._CheckpointPickler(handle, 4, False).dump(obj)
    return handle.getvalue()


# --------------------------------------------------------------------------- verification


def test_missing_and_misshapen_arrays_are_all_named(s3d_tree, tmp_path):
    tree = {c: {m: dict(v) for m, v in s3d_tree[c].items()} for c in s3d_tree}
    conv = "text_audio_video/visual_module/~/S3D/Mixed_4b/Branch_1_Conv2d_0b_3x3/~/conv3_d_1"
    bn = "text_audio_video/visual_module/~/S3D/Conv2d_1a_7x7/__cross_replica_batch_norm"
    head = "text_audio_video/~_get_pair_embedding_heads/vis_embd/final_projection"
    ema = bn + "/~/var_ema"
    del tree["params"][conv]["w"]
    del tree["state"][ema]
    tree["params"][head]["w"] = tree["params"][head]["w"].T.copy()
    tree["params"][bn]["scale"] = tree["params"][bn]["scale"].astype(np.float64)
    path = standin.write_checkpoint(tree, tmp_path / "broken.pkl")
    with pytest.raises(CheckpointError) as info:
        mmv.load_checkpoint(path, "s3d")
    message = str(info.value)
    assert str(path) in message
    assert f"params: {conv}/w" in message
    assert f"state: {ema}/average" in message and f"state: {ema}/counter" in message
    assert f"params: {head}/w has shape (256, 512)" in message and "expected (512, 256)" in message
    assert f"params: {bn}/scale" in message and "float64" in message
    assert "4 of 787 expected arrays are missing" in message  # w + average, hidden, counter


def test_a_checkpoint_of_another_backbone_is_recognised(s3d_tree, tmp_path):
    path = standin.write_checkpoint(s3d_tree, tmp_path / "mmv_s3d.pkl")
    with pytest.raises(CheckpointError, match="looks like a s3d checkpoint"):
        mmv.load_checkpoint(path, "tsm_resnet_x1")


@pytest.mark.parametrize("content,problem", [
    (pickle.dumps([1, 2, 3]), "expected a mapping"),
    (pickle.dumps({"params": {}}), "no 'state' entry"),
    (pickle.dumps({"params": [1], "state": {}}), "'params' is a list"),
    (b"", "truncated or corrupt"),
    (b"<html>403 Forbidden</html>", "truncated or corrupt"),
])
def test_files_that_are_not_checkpoints_get_a_clear_error(tmp_path, content, problem):
    path = tmp_path / "bad.pkl"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=problem) as info:
        mmv.load_checkpoint(path, "s3d")
    assert str(path) in str(info.value)


def test_a_truncated_checkpoint_is_reported(s3d_tree, tmp_path):
    raw = standin.checkpoint_bytes(s3d_tree)
    path = tmp_path / "cut.pkl"
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        mmv.load_checkpoint(path, "s3d")
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        mmv.load_checkpoint(tmp_path / "absent.pkl", "s3d")
    with pytest.raises(ValueError, match="unknown MMV backbone"):
        mmv.load_checkpoint(path, "resnet")


# --------------------------------------------------------------------------- caches and downloads


def test_tiny_stand_in_is_generated_once_in_the_tiny_cache():
    path = mmv.checkpoint_path("s3d", mode="tiny")
    assert config.cache_root() / "tiny" in path.parents
    stamp = path.stat().st_mtime_ns
    assert mmv.checkpoint_path("s3d", mode="tiny") == path and path.stat().st_mtime_ns == stamp
    # Only this file's temporaries: the folder is shared with the other backbones' stand-ins,
    # which another test worker (a notebook) may be writing at this moment.
    assert not list(path.parent.glob(f".tmp-{path.name}*"))
    raw = path.read_bytes()
    assert b"haiku._src.data_structures\nFlatMapping" in raw  # the older official layout
    assert mmv.load_checkpoint(path, "s3d")["params"]


def test_resolving_the_mode_does_not_touch_the_real_cache():
    assert mmv.resolve_mode("tsm_resnet_x1") == "tiny"  # conftest: COURSE_MODE=tiny
    assert not (config.cache_root() / "real" / "mmv").exists()


@pytest.fixture
def mmv_server(tmp_path, monkeypatch):
    """A local HTTP server standing in for storage.googleapis.com/deepmind-research-mmv.

    The test gets a cache root of its own, so what it downloads into the real cache is gone
    afterwards and cannot meet other tests.
    """
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    config.set_base_url("mmv", f"http://127.0.0.1:{server.server_address[1]}")
    try:
        yield root
    finally:
        config.set_base_url("mmv", None)
        server.shutdown()


def test_real_mode_downloads_verifies_and_caches(mmv_server, s3d_tree, capsys):
    standin.write_checkpoint(s3d_tree, mmv_server / "mmv_s3d.pkl", container="flatmapping")
    path = mmv.checkpoint_path("s3d", mode="real")
    assert path == config.cache_root() / "real" / "mmv" / "mmv_s3d.pkl"
    assert "CC BY-NC 4.0" in capsys.readouterr().out  # licence notice before the download
    assert _same(mmv.load_checkpoint(path, "s3d"), s3d_tree)
    (mmv_server / "mmv_s3d.pkl").unlink()  # cached now: no second download
    assert mmv.checkpoint_path("s3d", mode="real") == path
    config.set_mode("auto")
    try:
        assert mmv.resolve_mode("s3d") == "real"  # cached, so auto picks the real one
    finally:
        config.set_mode("tiny")


def test_real_mode_rejects_a_download_that_is_too_small(mmv_server):
    (mmv_server / "mmv_tsm_resnet_x1.pkl").write_bytes(b"<html>moved</html>")
    with pytest.raises(downloads.DownloadError, match="the video part alone needs"):
        mmv.checkpoint_path("tsm_resnet_x1", mode="real")
    assert not (config.cache_root() / "real" / "mmv" / "mmv_tsm_resnet_x1.pkl").exists()
    with pytest.raises(downloads.DownloadError, match="404"):
        mmv.checkpoint_path("tsm_resnet_x2", mode="real")
