"""helpers.mmv's public API: clip checks, batching, space-to-depth, temporal shift, command line.

Clips are [*, 8, 64, 64, 3] and batches of 2 throughout, the shapes the known-answer tests
compile, so S3D-G is compiled once per test process.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import mmv
from helpers.standins import mmv as standin

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def encoder():
    return mmv.load_model("s3d", batch_size=2)  # tiny mode (conftest): the generated stand-in


def _clips(n, seed=1):
    return np.random.default_rng(seed).uniform(0, 1, size=(n, 8, 64, 64, 3)).astype(np.float32)


def test_importing_helpers_mmv_does_not_import_jax():
    code = "import sys, helpers.mmv; print(sorted(m for m in ('jax', 'haiku') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                            env={"PYTHONPATH": str(ROOT), "PATH": ""}, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_encoder_describes_itself(encoder):
    assert encoder.backbone == "s3d" and encoder.feature_dim == 1024
    assert encoder.num_params == sum(e.size for e in mmv.expected_tree("s3d") if e.collection == "params")
    assert "S3D-G" in repr(encoder) and "tiny" in encoder.source


def test_batches_are_split_and_padded_without_changing_results(encoder):
    clips = _clips(5)
    out = encoder(clips)
    assert {k: v.shape for k, v in out.items()} == {"vid_repr": (5, 1024), "va": (5, 512),
                                                   "vat": (5, 256)}
    assert all(v.dtype == np.float32 for v in out.values())
    # Batch 1 is clips 0-1 as they are; the last batch is clip 4 padded with a copy of itself.
    # Exact on purpose: each comparison is the same compiled program on the same [2, ...] batch
    # (that is the point of padding), so any difference means the batching changed an input.
    first = encoder(clips[:2])
    last = encoder(np.stack([clips[4], clips[4]]))
    for key in out:
        np.testing.assert_array_equal(out[key][:2], first[key])
        np.testing.assert_array_equal(out[key][4], last[key][0])
    assert not np.allclose(out["vid_repr"][0], out["vid_repr"][1])  # the clips do matter


@pytest.mark.parametrize("clips,message", [
    (np.zeros((2, 8, 64, 64, 3), np.uint8), "uint8"),
    (np.zeros((8, 64, 64, 3), np.float32), "add a batch axis"),
    (np.zeros((2, 8, 64, 64), np.float32), "expected \\[B, T, H, W, 3\\]"),
    (np.zeros((0, 8, 64, 64, 3), np.float32), "empty"),
    (np.full((1, 8, 64, 64, 3), 255.0, np.float32), "divide by 255"),
    (np.full((1, 8, 64, 64, 3), -1.0, np.float32), "\\(x \\+ 1\\) / 2"),
    (np.full((1, 8, 64, 64, 3), np.nan, np.float32), "NaN"),
    (np.zeros((1, 7, 64, 64, 3), np.float32), "even T, H and W"),
    (np.zeros((1, 8, 64, 64, 3), np.int32), "dtype int32"),
])
def test_bad_clips_get_one_clear_error(encoder, clips, message):
    with pytest.raises(mmv.ClipError, match=message):
        encoder(clips)


def test_odd_sizes_are_fine_for_tsm():
    checked = mmv.check_clips(np.zeros((1, 7, 63, 65, 3), np.float64), "tsm_resnet_x1")
    assert checked.dtype == np.float32


def test_space_to_depth_packs_each_2x2x2_block_into_channels():
    clip = np.random.default_rng(0).uniform(size=(2, 6, 8, 10, 3)).astype(np.float32)
    packed = mmv.space_to_depth(clip)
    assert packed.shape == (2, 3, 4, 5, 24)
    for b, t, h, w, dt, dh, dw, c in [(0, 0, 0, 0, 0, 0, 0, 0), (1, 2, 3, 4, 1, 1, 1, 2),
                                      (1, 1, 2, 0, 1, 0, 1, 1), (0, 2, 1, 3, 0, 1, 0, 2)]:
        channel = ((dt * 2 + dh) * 2 + dw) * 3 + c
        assert packed[b, t, h, w, channel] == clip[b, 2 * t + dt, 2 * h + dh, 2 * w + dw, c]
    with pytest.raises(ValueError, match="even"):
        mmv.space_to_depth(clip[:, :5])


def test_temporal_shift_moves_an_eighth_of_the_channels_each_way():
    from helpers.mmv import models as mmv_models

    frames, channels = 4, 16  # n = 2 channels each way
    x = np.arange(frames * channels, dtype=np.float32).reshape(frames, 1, 1, channels) + 1
    y = np.asarray(mmv_models.temporal_shift(x, frames))[:, 0, 0]
    x = x[:, 0, 0]
    for t in range(frames):
        np.testing.assert_array_equal(y[t, :2], x[t + 1, 14:] if t + 1 < frames else 0)
        np.testing.assert_array_equal(y[t, 2:14], x[t, 2:14])
        np.testing.assert_array_equal(y[t, 14:], x[t - 1, :2] if t > 0 else 0)


def test_load_model_rejects_a_wrong_checkpoint(tmp_path):
    tree = standin.make_checkpoint("s3d")
    with pytest.raises(mmv.CheckpointError, match="looks like a s3d checkpoint"):
        mmv.load_model("tsm_resnet_x1", tree)
    with pytest.raises(mmv.CheckpointError, match="path or a dict"):
        mmv.load_model("s3d", [1, 2])


# --------------------------------------------------------------------------- command line


def test_cli_embeds_clips_like_the_python_api(encoder, tmp_path, capsys):
    clips = _clips(3, seed=5)
    np.save(tmp_path / "clips.npy", clips)
    status = mmv.main(["embed", "--backbone", "s3d", "--clips", str(tmp_path / "clips.npy"),
                       "--out", str(tmp_path / "emb.npz"), "--batch-size", "2"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "RANDOM weights" in captured.err  # tiny mode says so
    saved = np.load(tmp_path / "emb.npz")
    assert sorted(saved.files) == ["va", "vat", "vid_repr"]
    expected = encoder(clips)
    for key in saved.files:
        np.testing.assert_array_equal(saved[key], expected[key])


def test_cli_takes_an_explicit_checkpoint(tmp_path, capsys):
    path = standin.write_checkpoint(standin.make_checkpoint("s3d", seed=9), tmp_path / "mine.pkl",
                                    container="dict")
    np.save(tmp_path / "clips.npy", _clips(2))
    status = mmv.main(["embed", "--backbone", "s3d", "--checkpoint", str(path),
                       "--clips", str(tmp_path / "clips.npy"), "--out", str(tmp_path / "o.npz")])
    assert status == 0, capsys.readouterr().err
    reference = mmv.load_model("s3d", mmv.load_checkpoint(path, "s3d"))(_clips(2))
    np.testing.assert_array_equal(np.load(tmp_path / "o.npz")["va"], reference["va"])


def _cli_error(tmp_path, capsys, clips_file, *extra):
    status = mmv.main(["embed", "--backbone", "s3d", "--clips", str(clips_file),
                       "--out", str(tmp_path / "never.npz"), *extra])
    err = capsys.readouterr().err
    assert status == 2
    assert not (tmp_path / "never.npz").exists()
    return err


def test_cli_reports_bad_inputs(tmp_path, capsys):
    np.save(tmp_path / "u8.npy", np.zeros((1, 8, 64, 64, 3), np.uint8))
    assert "uint8" in _cli_error(tmp_path, capsys, tmp_path / "u8.npy")
    np.save(tmp_path / "big.npy", np.full((1, 8, 64, 64, 3), 200.0, np.float32))
    assert "divide by 255" in _cli_error(tmp_path, capsys, tmp_path / "big.npy")
    np.save(tmp_path / "shape.npy", np.zeros((4, 64, 64), np.float32))
    assert "expected [B, T, H, W, 3]" in _cli_error(tmp_path, capsys, tmp_path / "shape.npy")
    np.savez(tmp_path / "archive.npz", clips=np.zeros((1, 8, 64, 64, 3), np.float32))
    assert "expected one .npy array" in _cli_error(tmp_path, capsys, tmp_path / "archive.npz")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert "not a plain .npy array" in _cli_error(tmp_path, capsys, tmp_path / "objects.npy")
    assert "no such file" in _cli_error(tmp_path, capsys, tmp_path / "absent.npy")
    np.save(tmp_path / "ok.npy", _clips(1))
    (tmp_path / "evil.pkl").write_bytes(b"cos\nsystem\n(S'true'\ntR.")
    err = _cli_error(tmp_path, capsys, tmp_path / "ok.npy", "--checkpoint", str(tmp_path / "evil.pkl"))
    assert "refused to load" in err and "os.system" in err


def test_cli_runs_as_a_module():
    result = subprocess.run([sys.executable, "-m", "helpers.mmv", "embed", "--help"],
                            capture_output=True, text=True, cwd=ROOT, timeout=60,
                            env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert result.returncode == 0, result.stderr
    assert "--backbone" in result.stdout and "tsm_resnet_x2" in result.stdout


# --------------------------------------------------------------------------- notebook 03's clips and picture


def test_synthetic_clips_move_and_are_in_range():
    from helpers.mmv import clips as mmv_clips

    clips, names = mmv_clips.demo_clips(num_frames=6, size=32, mode="tiny")
    assert clips.shape == (3, 6, 32, 32, 3) and clips.dtype == np.float32
    assert names == list(mmv_clips.SYNTHETIC)
    assert 0.0 <= clips.min() and clips.max() <= 1.0
    for clip in clips:
        assert np.abs(clip[-1] - clip[0]).max() > 0.3  # something moves


def test_real_mode_clips_come_from_the_gallery_gifs(tmp_path, monkeypatch):
    import functools
    import http.server
    import threading

    from helpers import config, milnce, video

    # A cache of its own: other tests may have cached different GIFs under the same names.
    from helpers.mmv import clips as mmv_clips
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))

    served = tmp_path / "commons"
    for resource, _ in milnce.COLAB_VIDEOS:
        frames = np.stack([np.full((30, 40, 3), 40 * i, np.uint8) for i in range(5)])
        target = served / resource.path
        target.parent.mkdir(parents=True, exist_ok=True)
        video.write_video(target, frames, fps=10)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config.set_base_url("wikimedia", f"http://127.0.0.1:{server.server_address[1]}")
    try:
        clips, names = mmv_clips.demo_clips(num_frames=8, size=16, mode="real")
    finally:
        config.set_base_url("wikimedia", None)
        server.shutdown()
    assert names == list(milnce.COLAB_QUERIES) and clips.shape == (3, 8, 16, 16, 3)
    levels = clips[0, :, 8, 8, 0] * 255
    # The colab's padding of a 5-frame GIF to 8 frames: each frame twice, then cut.
    np.testing.assert_allclose(levels, [0, 0, 40, 40, 80, 80, 120, 120], atol=2)


def test_space_to_depth_picture_shows_the_packed_groups():
    import matplotlib

    matplotlib.use("Agg")
    from helpers import plots
    from helpers.mmv import clips as mmv_clips

    clip = mmv_clips.synthetic_clip("moving disc", 4, 32)
    fig = plots.space_to_depth(clip, step=1, patch=4)
    images = [ax.images[0].get_array() for ax in fig.axes]
    assert len(images) == 12  # 2 frames, 2 zooms, 8 groups
    packed = mmv.space_to_depth(clip[None])[0, 1]
    for k in range(8):
        np.testing.assert_array_equal(np.asarray(images[4 + k]), packed[:, :, 3 * k:3 * k + 3])
    with pytest.raises(ValueError, match="even"):
        plots.space_to_depth(clip[:3])


def test_batch_size_defaults_per_device_and_must_be_positive(monkeypatch):
    import jax

    tree = standin.make_checkpoint("s3d")
    assert jax.default_backend() == "cpu"  # this suite runs on CPUs
    assert mmv.load_model("s3d", tree).batch_size == 1
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert mmv.default_batch_size("tsm_resnet_x1") == mmv.DEFAULT_BATCH_SIZE["tsm_resnet_x1"] == 4
    assert mmv.load_model("s3d", tree, batch_size=3).batch_size == 3
    with pytest.raises(ValueError, match="at least 1"):
        mmv.load_model("s3d", tree, batch_size=0)
