"""Known-answer tests: the Haiku audio and text towers reproduce DeepMind's original code.

``tests/data/mmv_kat/audio_text.npz`` holds the outputs of the original MMV code (eval mode,
FAC graph) for the **full** ``mmv_s3d`` checkpoint of rule ``mmv-kat-v1``, seed 0, on the
spectrogram ``default_rng(0).standard_normal((2, 96, 40, 1))`` and the word ids
``default_rng(1000).integers(1, 65536, (2, 16))`` (row b keeps its first 4 + 3b ids, the rest 0).
The audio and text arrays have the same paths and values in all three checkpoints.

Here a full checkpoint (every array of the official listing, extra top-level keys) is pickled
both ways the official files may be (plain dicts / numpy 2 names; Haiku FlatMapping / numpy 1
names), read back with ``load_checkpoint(parts=("audio", "text"))`` and run.

Tolerance: ``|x - ref| <= 2e-5 * max(1, max|ref|)`` per array, as for the video towers. Measured
on XLA:CPU (jax 0.10.2): at most 7.6e-7 of max|ref| for the audio outputs (``aud_totxt``;
``aud_repr`` 5.0e-7), 2.1e-7 absolute for the text outputs (values < 0.6); the same on jax 0.7.2.
The reference's own spread between two XLA compilations of one model is ~1e-6 of max|ref|.
"""

from pathlib import Path

import numpy as np
import pytest

from helpers import mmv
from helpers.mmv import checkpoint as mmv_checkpoint
from helpers.standins import mmv as standin

DATA = Path(__file__).parent / "data" / "mmv_kat"
RTOL = 2e-5
EXTRA_TOP_LEVEL = {"step": np.asarray(500000, np.int64), "config": {"name": "mmv"}}
KEYS = {"aud_repr": ("audio", "aud_repr"), "aud_tovid": ("audio", "va"),
        "aud_totxt": ("audio", "vat"), "txt_tovid": ("text", "vat"), "txt_toaud": ("text", "va")}


def _err(got, ref):
    got, ref = np.asarray(got), np.asarray(ref)
    assert got.shape == ref.shape and got.dtype == np.float32
    return float(np.abs(got - ref).max()), RTOL * max(1.0, float(np.abs(ref).max()))


def _close(name, got, ref):
    err, bound = _err(got, ref)
    assert err <= bound, f"{name}: max |x - ref| = {err:.3g} > {bound:.3g}"


def kat_inputs():
    spectrogram = np.random.default_rng(0).standard_normal((2, 96, 40, 1)).astype(np.float32)
    ids = np.random.default_rng(1000).integers(1, 65536, (2, 16))
    for row in range(2):
        ids[row, 4 + 3 * row:] = 0
    return spectrogram, ids.astype(np.int32)


@pytest.fixture(scope="module")
def ref():
    return dict(np.load(DATA / "audio_text.npz"))


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """(rule tree, {form: checkpoint loaded with parts audio+text}) from full official pickles."""
    tree = standin.make_checkpoint("s3d", 0, parts="full")
    folder = tmp_path_factory.mktemp("full")
    out = {}
    for form, kwargs in {"dict": dict(container="dict"),
                         "flatmapping": dict(container="flatmapping", numpy1_names=True)}.items():
        path = standin.write_checkpoint(tree, folder / f"{form}.pkl",
                                        extra_top_level=EXTRA_TOP_LEVEL, **kwargs)
        out[form] = mmv.load_checkpoint(path, "s3d", parts=("audio", "text"))
        path.unlink()
    return tree, out


def test_inputs_regenerate_from_their_seeds(ref):
    spectrogram, ids = kat_inputs()
    np.testing.assert_array_equal(spectrogram.reshape(-1)[:16], ref["input_spectrogram_head"])
    np.testing.assert_array_equal(ids, ref["input_word_ids"])


def test_towers_tree_equals_the_official_listing():
    from helpers.mmv import towers

    params, state = towers.tree_shapes()
    got = {("params", m, n, tuple(v.shape), str(v.dtype)) for m, d in params.items() for n, v in d.items()}
    got |= {("state", m, n, tuple(v.shape), str(v.dtype)) for m, d in state.items() for n, v in d.items()}
    for backbone in mmv.BACKBONES:
        want = {(e.collection, e.module, e.name, e.shape, e.dtype)
                for e in mmv_checkpoint.expected_tree(backbone, ("audio", "text"))}
        assert got == want, f"extra: {sorted(got - want)[:3]}, missing: {sorted(want - got)[:3]}"
    # Only the head FAC leaves unused at evaluation is in the file but not in the model.
    listed = {(e.collection, e.module, e.name) for e in mmv_checkpoint.official_tree("s3d")
              if not mmv_checkpoint.is_visual(e.module)}
    unused = listed - {g[:3] for g in got}
    assert {m.rsplit("/", 2)[-2] for _, m, _ in unused} == {"audio2txt_embd"}


def test_loader_keeps_only_the_parts_asked_for(loaded):
    tree, forms = loaded
    expected = mmv_checkpoint.expected_tree("s3d", ("audio", "text"))
    for form, checkpoint in forms.items():
        got = sorted((c, m, n) for c in checkpoint for m in checkpoint[c] for n in checkpoint[c][m])
        assert got == sorted((e.collection, e.module, e.name) for e in expected), form
        for collection, module, name in got:
            assert np.array_equal(checkpoint[collection][module][name],
                                  tree[collection][module][name]), f"{form}: {module}/{name}"
    assert not any("/visual_module/" in m for m in forms["dict"]["params"])
    assert not any("audio2txt_embd" in m for m in forms["dict"]["params"])


def test_default_load_is_still_video_only(tmp_path):
    tree = standin.make_checkpoint("s3d", 0, parts="full")
    path = standin.write_checkpoint(tree, tmp_path / "full.pkl")
    checkpoint = mmv.load_checkpoint(path, "s3d")
    modules = set(checkpoint["params"]) | set(checkpoint["state"])
    assert all(mmv_checkpoint.is_visual(m) for m in modules)
    assert len(modules) == len({e.module for e in mmv_checkpoint.expected_tree("s3d")})


def test_a_video_only_file_is_refused_for_audio(tmp_path):
    path = standin.write_checkpoint(standin.make_checkpoint("s3d", 0), tmp_path / "video.pkl")
    with pytest.raises(mmv.CheckpointError, match=r"parts: audio.*\n.*missing"):
        mmv.load_checkpoint(path, "s3d", parts="audio")
    with pytest.raises(ValueError, match="unknown checkpoint part"):
        mmv.load_checkpoint(path, "s3d", parts="speech")


def test_outputs_match_the_original_code(loaded, ref):
    from helpers.mmv import audio_text

    spectrogram, ids = kat_inputs()
    for form, checkpoint in loaded[1].items():
        towers = audio_text.AudioTextEncoder(checkpoint)
        out = {"audio": towers.embed_spectrograms(spectrogram), "text": towers.embed_word_ids(ids)}
        for key, (modality, name) in KEYS.items():
            _close(f"{form}: {key}", out[modality][name], ref[key])


def test_tolerance_catches_a_slightly_wrong_model(loaded, ref):
    # Padding positions count in the max (id 0 is a real row): a tower that masked them out,
    # or one whose embedding row 0 is off by a little, must fail the comparison.
    from helpers.mmv import audio_text

    checkpoint = {c: {m: dict(v) for m, v in loaded[1]["dict"][c].items()} for c in ("params", "state")}
    embed = "text_audio_video/text_module/~/embed"
    checkpoint["params"][embed]["embeddings"] = checkpoint["params"][embed]["embeddings"].copy()
    checkpoint["params"][embed]["embeddings"][0] += np.float32(5e-3)
    _, ids = kat_inputs()
    out = audio_text.AudioTextEncoder(checkpoint).embed_word_ids(ids)
    with pytest.raises(AssertionError):
        _close("txt_tovid", out["vat"], ref["txt_tovid"])
    # and a spectrogram transposed (frequency for time) gives other audio embeddings
    spectrogram, _ = kat_inputs()
    flipped = np.ascontiguousarray(spectrogram[:, ::-1])
    audio = audio_text.AudioTextEncoder(loaded[1]["dict"]).embed_spectrograms(flipped)
    with pytest.raises(AssertionError):
        _close("aud_tovid", audio["va"], ref["aud_tovid"])
