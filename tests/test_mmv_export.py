"""export-tfhub, the TF-Hub MMV loader, embed --audio/--text, the course's front end and sound clips.

The export is checked on a checkpoint the stand-in never uses (rule seed 5, plain-dict pickle
with numpy 2 names and extra top-level keys), on a clip of another seed: its ``video`` signature
must equal the JAX model on the same pickle, its ``audio`` / ``text`` signatures the Haiku towers
through the course's front end. Tolerance ``1e-4 * max(1, max|jax|)``: TF runs the same StableHLO
through its own XLA build; measured 2.8e-6 relative (S3D-G before_head), 3e-6 (audio va).
"""

import numpy as np
import pytest

from helpers import mmv
from helpers.mmv import frontend, hub
from helpers.standins import mmv as standin

RTOL = 1e-4
SEED = 5


def _close(name, got, ref):
    got, ref = np.asarray(got), np.asarray(ref)
    assert got.shape == ref.shape, f"{name}: {got.shape} != {ref.shape}"
    err, bound = float(np.abs(got - ref).max()), RTOL * max(1.0, float(np.abs(ref).max()))
    assert err <= bound, f"{name}: max |x - ref| = {err:.3g} > {bound:.3g}"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    tree = standin.make_checkpoint("s3d", SEED, parts="full")
    path = standin.write_checkpoint(tree, folder / "mmv_s3d.pkl", container="dict",
                                    extra_top_level={"step": np.asarray(7, np.int64)})
    assert mmv.main(["export-tfhub", "--backbone", "s3d", "--checkpoint", str(path),
                     "--out", str(folder / "hub")]) == 0
    return path, folder / "hub"


def test_export_has_the_official_signatures_and_reproduces_the_jax_video(exported):
    import tensorflow as tf

    path, saved = exported
    module = hub.load("s3d", saved)  # checks video / audio / text by name
    clip = np.random.default_rng(11).uniform(0, 1, (2, 8, 64, 64, 3)).astype(np.float32)
    out = hub.embed_videos(module, clip)
    assert {k: v.shape for k, v in out.items()} == {"before_head": (2, 1024), "va": (2, 512),
                                                    "vat": (2, 256)}
    ref = mmv.load_model("s3d", path)(clip)
    _close("before_head", out["before_head"], ref["vid_repr"])
    _close("va", out["va"], ref["va"])
    _close("vat", out["vat"], ref["vat"])
    # The signatures take their input by position too, as DeepMind's usage code calls them.
    positional = module.signatures["video"](tf.constant(clip))
    np.testing.assert_allclose(positional["vat"].numpy(), out["vat"], rtol=0, atol=1e-6)


def test_export_audio_and_text_follow_the_towers_through_the_course_front_end(exported):
    from helpers.mmv import audio_text

    path, saved = exported
    module = hub.load("s3d", saved)
    towers = audio_text.load("s3d", path)
    wave = np.random.default_rng(12).uniform(-0.5, 0.5, (2, frontend.NUM_SAMPLES)).astype(np.float32)
    audio = hub.embed_audio(module, wave)
    assert audio["last_conv"].shape == (2, 10, 3, 2048)
    ref = towers.embed_waveforms(wave)
    _close("audio va", audio["va"], ref["va"])
    _close("audio vat", audio["vat"], ref["vat"])
    sentences = ["A dog PLAYING the guitar!", "zebra xylophone", "red ball bouncing " * 8]
    text = hub.embed_texts(module, sentences)
    assert text["vat"].shape == (3, 256)
    _close("text vat", text["vat"], towers.embed_texts(sentences)["vat"])
    # Words change the embedding; unknown words are dropped (as padding), and only 16 count.
    assert np.abs(text["vat"][0] - text["vat"][1]).max() > 1e-3
    np.testing.assert_allclose(text["vat"][1], towers.embed_word_ids(np.zeros((1, 16), int))["vat"][0],
                               atol=1e-5)


def test_export_refuses_bad_input(tmp_path, capsys):
    video_only = standin.write_checkpoint(standin.make_checkpoint("s3d", 0), tmp_path / "v.pkl")
    assert mmv.main(["export-tfhub", "--backbone", "s3d", "--checkpoint", str(video_only),
                     "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "v.pkl is not a complete s3d checkpoint (parts: video, audio, text)" in err
    assert mmv.main(["export-tfhub", "--backbone", "s3d", "--checkpoint", str(tmp_path / "none.pkl"),
                     "--out", str(tmp_path / "b")]) == 2
    assert "no such checkpoint file" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    assert mmv.main(["export-tfhub", "--backbone", "s3d", "--checkpoint", str(video_only),
                     "--out", str(tmp_path / "full")]) == 2
    assert (tmp_path / "full" / "x").read_text() == "keep me"


def test_embed_needs_an_input_and_names_a_bad_sound_file(tmp_path, capsys):
    # The command line returns its status (helpers.cli.main) rather than raising SystemExit.
    assert mmv.main(["embed", "--backbone", "s3d", "--out", str(tmp_path / "o.npz")]) == 2
    assert "give at least one of --clips, --audio, --text" in capsys.readouterr().err
    assert mmv.main(["embed", "--backbone", "s3d", "--audio", str(tmp_path / "nope.wav"),
                     "--out", str(tmp_path / "o.npz")]) == 2
    assert "nope.wav" in capsys.readouterr().err
    silent = tmp_path / "silent.mp4"
    from helpers import video

    video.write_video(silent, np.zeros((4, 16, 16, 3), np.uint8), fps=4)
    assert mmv.main(["embed", "--backbone", "s3d", "--audio", str(silent),
                     "--out", str(tmp_path / "o.npz")]) == 2
    assert "has no audio stream" in capsys.readouterr().err
    assert not (tmp_path / "o.npz").exists()


def test_sound_clips_decode_through_real_codecs_with_their_motion_in_the_sound():
    from helpers import video
    from helpers.standins import sound_clips

    paths = sound_clips.clip_paths()
    assert sorted(paths) == sorted(sound_clips.CLIPS)
    for path in paths.values():
        assert path.suffix == ".mp4"
        assert video.colab_clip(path, 32, 64).shape == (32, 64, 64, 3)
    wave = hub.fit_length(hub.read_audio(paths["rising_disc"]))
    spec = frontend.log_mel_spectrogram(wave[None])[0, :, :, 0]
    peaks = spec.argmax(axis=1)
    # The disc rises through the clip, so the tone's mel band goes up (AAC keeps pitch).
    assert peaks[-20:].mean() > peaks[:20].mean() + 5
    clicks = np.abs(hub.read_audio(paths["bouncing_ball"]))
    loud = clicks.reshape(-1, 4800).max(axis=1)  # 0.1 s bins: a click every 0.8 s
    assert (loud > 0.3).sum() <= 8 and (loud > 0.3).sum() >= 3


def test_front_end_numpy_and_jax_agree_and_put_a_tone_in_its_band():
    import jax.numpy as jnp

    t = np.arange(frontend.NUM_SAMPLES) / frontend.SAMPLE_RATE
    tones = np.stack([0.5 * np.sin(2 * np.pi * f * t) for f in (440.0, 4000.0)]).astype(np.float32)
    spec = frontend.log_mel_spectrogram(tones)
    assert spec.shape == (2, frontend.num_frames(), frontend.NUM_MEL_BINS, 1) == (2, 318, 80, 1)
    bands = spec[:, 100, :, 0].argmax(axis=1)
    centres = frontend._hz_to_mel(np.array([440.0, 4000.0]))
    edges = np.linspace(frontend._hz_to_mel(frontend.MEL_LOW_HZ),
                        frontend._hz_to_mel(frontend.MEL_HIGH_HZ), frontend.NUM_MEL_BINS + 2)[1:-1]
    assert list(bands) == [int(np.abs(edges - c).argmin()) for c in centres]
    # float32 FFTs in two libraries: log-mel values agree to ~1e-3 where there is energy
    jax_spec = np.asarray(frontend.log_mel_spectrogram(jnp.asarray(tones)))
    loud = spec > np.log(1e-2)
    np.testing.assert_allclose(jax_spec[loud], spec[loud], atol=1e-2)


def test_waveform_checks_name_the_problem():
    with pytest.raises(frontend.AudioError, match="one waveform"):
        frontend.check_waveforms(np.zeros(2000, np.float32))
    with pytest.raises(frontend.AudioError, match="int16 scale"):
        frontend.check_waveforms(np.full((1, 2000), 3000.0))
    with pytest.raises(frontend.AudioError, match="dtype int16"):
        frontend.check_waveforms(np.zeros((1, 2000), np.int16))
    with pytest.raises(frontend.AudioError, match="at least 1200"):
        frontend.check_waveforms(np.zeros((1, 100), np.float32))
    assert frontend.word_ids(["The dog, the DOG!"]).tolist()[0][:4] == [frontend.word_ids("the")[0][0],
                                                                        frontend.word_ids("dog")[0][0]] * 2


def test_the_standin_never_overwrites_a_real_module(tmp_path):
    from helpers.standins.milnce import cache_folder_name

    handle = hub.default_handle("s3d")
    real = tmp_path / cache_folder_name(handle)
    real.mkdir()
    (real / "saved_model.pb").write_bytes(b"a real module")
    with pytest.raises(FileExistsError, match="not the course's stand-in"):
        standin.tfhub_module(tmp_path, handle, "s3d")
    assert (real / "saved_model.pb").read_bytes() == b"a real module"


def test_tsm_export_reproduces_the_jax_video(tmp_path):
    # TSM-ResNet's export takes any B and T, and H, W multiples of 32 (see helpers.mmv.export).
    tree = standin.make_checkpoint("tsm_resnet_x1", SEED + 1, parts="full")
    path = standin.write_checkpoint(tree, tmp_path / "tsm.pkl", container="flatmapping",
                                    numpy1_names=True)
    del tree
    assert mmv.main(["export-tfhub", "--backbone", "tsm_resnet_x1", "--checkpoint", str(path),
                     "--out", str(tmp_path / "hub")]) == 0
    module = hub.load("tsm_resnet_x1", tmp_path / "hub")
    clip = np.random.default_rng(13).uniform(0, 1, (1, 3, 32, 64, 3)).astype(np.float32)
    out = hub.embed_videos(module, clip)
    ref = mmv.load_model("tsm_resnet_x1", path)(clip)
    assert out["before_head"].shape == (1, 2048)
    _close("before_head", out["before_head"], ref["vid_repr"])
    _close("vat", out["vat"], ref["vat"])


def test_compare_outputs_tells_rounding_from_a_different_function():
    from helpers.mmv import commands

    rng = np.random.default_rng(0)
    jax_out = {"vid_repr": rng.normal(size=(3, 1024)).astype(np.float32),
               "va": rng.normal(size=(3, 512)).astype(np.float32),
               "vat": rng.normal(size=(3, 256)).astype(np.float32)}
    rounded = {"before_head": jax_out["vid_repr"] * (1 + 1e-6), "va": jax_out["va"] + 1e-6,
               "vat": jax_out["vat"]}
    same = commands.compare_outputs(rounded, jax_out)
    assert same["match"] and all(same[k]["match"] for k in ("before_head", "va", "vat"))
    assert "compute the same function" in commands.format_comparison(same)
    other = dict(rounded, va=jax_out["va"][::-1])  # the same values for other clips
    differ = commands.compare_outputs(other, jax_out)
    assert not differ["match"] and not differ["va"]["match"] and differ["vat"]["match"]
    assert "MISMATCH" in commands.format_comparison(differ)
    with pytest.raises(ValueError, match="not the same clips"):
        commands.compare_outputs(dict(rounded, vat=jax_out["vat"][:2]), jax_out)
