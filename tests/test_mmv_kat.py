"""Known-answer tests: our Haiku MMV models reproduce DeepMind's original code.

For each backbone, a checkpoint is built by rule ``mmv-kat-v1`` (seed 0) with some audio/text
arrays and extra top-level keys, pickled in the official layout (plain dicts with numpy 2 array
names, and Haiku FlatMapping with numpy 1 names), read back through ``load_checkpoint`` (both
forms must give the rule's arrays bit for bit) and run on the rule's input clip. Every output
must match ``tests/data/mmv_kat/<backbone>.npz``.

Tolerance: ``|x - ref| <= 2e-5 * max(1, max|ref|)`` per array. Measured worst case on XLA:CPU
(jax 0.10.2): 5.3e-6 relative for S3D-G ``vid_repr`` (deep Inception sums of values ~30),
< 6e-7 for both TSM-ResNets; the reference's own spread between two compilations is ~1e-6.
"""

from pathlib import Path

import numpy as np
import pytest

from helpers import mmv
from helpers.mmv import checkpoint as mmv_checkpoint
from helpers.standins import mmv as standin

DATA = Path(__file__).parent / "data" / "mmv_kat"
RTOL = 2e-5
SEED, INPUT_SEED, CLIP_SHAPE = 0, 0, (2, 8, 64, 64, 3)

# A few arrays of the audio and text networks (paths and shapes from the official listing):
# a loader must skip them.
NON_VISUAL = (
    mmv_checkpoint.TreeEntry("params", "text_audio_video/text_module/~/text_conv1", "w",
                             (1, 300, 2048), "float32"),
    mmv_checkpoint.TreeEntry("params", "text_audio_video/~_get_pair_embedding_heads/txt_embd/"
                             "final_projection", "b", (256,), "float32"),
    mmv_checkpoint.TreeEntry("params", "text_audio_video/audio_module/~/res_net_v2/"
                             "__cross_replica_batch_norm", "scale", (1, 1, 1, 2048), "float32"),
    mmv_checkpoint.TreeEntry("state", "text_audio_video/audio_module/~/res_net_v2/"
                             "__cross_replica_batch_norm/~/var_ema", "average", (1, 1, 1, 2048),
                             "float32"),
)
EXTRA_TOP_LEVEL = {"step": np.asarray(500000, np.int64), "config": {"name": "mmv"}}


def _close(name, got, ref):
    got, ref = np.asarray(got), np.asarray(ref)
    assert got.shape == ref.shape, f"{name}: shape {got.shape} != {ref.shape}"
    assert got.dtype == np.float32, f"{name}: dtype {got.dtype}"
    err = float(np.abs(got - ref).max())
    bound = RTOL * max(1.0, float(np.abs(ref).max()))
    assert err <= bound, f"{name}: max |x - ref| = {err:.3g} > {bound:.3g}"


@pytest.fixture(scope="module")
def clip():
    return np.random.default_rng(INPUT_SEED).uniform(0, 1, size=CLIP_SHAPE).astype(np.float32)


@pytest.fixture(scope="module", params=mmv.BACKBONES)
def case(request, tmp_path_factory):
    """(backbone, reference arrays, rule tree, encoders loaded from the two pickle forms)."""
    backbone = request.param
    ref = dict(np.load(DATA / f"{backbone}.npz"))
    tree = standin.make_checkpoint(backbone, SEED, extra_entries=NON_VISUAL)
    folder = tmp_path_factory.mktemp(backbone)
    loaded = {}
    for form, kwargs in {"dict": dict(container="dict"),
                         "flatmapping": dict(container="flatmapping", numpy1_names=True)}.items():
        path = standin.write_checkpoint(tree, folder / f"mmv_{backbone}.{form}.pkl",
                                        extra_top_level=EXTRA_TOP_LEVEL, **kwargs)
        loaded[form] = mmv.load_checkpoint(path, backbone)
        path.unlink()  # x2 is ~400 MB a file
    return backbone, ref, tree, loaded


def test_input_clip_generator_matches(clip):
    # Exact: PCG64's stream, its [0, 1) doubles and the cast to float32 are the same on every
    # machine (integer arithmetic and one exact scaling), unlike the network outputs below.
    for backbone in mmv.BACKBONES:
        ref = np.load(DATA / f"{backbone}.npz")
        np.testing.assert_array_equal(clip.reshape(-1)[:16], ref["input_clip_head"])


def test_both_pickle_forms_load_exactly_the_visual_subset(case):
    backbone, _, tree, loaded = case
    expected = mmv_checkpoint.expected_tree(backbone)
    for form, checkpoint in loaded.items():
        got = [(c, m, n) for c in checkpoint for m in checkpoint[c] for n in checkpoint[c][m]]
        assert sorted(got) == sorted((e.collection, e.module, e.name) for e in expected), form
        for collection, module, name in got:
            array = checkpoint[collection][module][name]
            original = tree[collection][module][name]
            assert array.dtype == original.dtype and np.array_equal(array, original), \
                f"{form}: {module}/{name} changed in the round trip"


def test_model_tree_equals_the_official_listing(case):
    from helpers.mmv import models as mmv_models

    backbone = case[0]
    params, state = mmv_models.tree_shapes(backbone)
    got = {("params", m, n, tuple(v.shape), str(v.dtype)) for m, d in params.items() for n, v in d.items()}
    got |= {("state", m, n, tuple(v.shape), str(v.dtype)) for m, d in state.items() for n, v in d.items()}
    want = {(e.collection, e.module, e.name, e.shape, e.dtype)
            for e in mmv_checkpoint.expected_tree(backbone)}
    assert got == want, f"extra: {sorted(got - want)[:3]}, missing: {sorted(want - got)[:3]}"


def test_outputs_match_the_original_code(case, clip):
    # One forward pass per backbone, from the FlatMapping / numpy-1 pickle. The dict pickle loads
    # to bit-identical arrays (test above) and a compiled program is deterministic, so its
    # outputs would be the same bits; running x2 twice would only cost time.
    backbone, ref, _, loaded = case
    out = mmv.load_model(backbone, loaded["flatmapping"]).forward(clip)
    _close("vid_repr", out["vid_repr"], ref["vid_repr"])
    _close("va (toaud)", out["va"], ref["toaud"])
    _close("vat (totxt)", out["vat"], ref["totxt"])
    endpoints = {k[3:] for k in ref if k.startswith("ep_")}
    assert set(out["endpoint_means"]) == endpoints
    for name in endpoints:
        _close(f"endpoint {name}", out["endpoint_means"][name], ref[f"ep_{name}"])
    (slice_key,) = [k for k in ref if k.startswith("slice_")]
    assert slice_key == "slice_" + next(iter(out["endpoint_means"]))
    _close(slice_key, out["first_endpoint_slice"], ref[slice_key])
    assert out["vid_repr"].shape == (CLIP_SHAPE[0], mmv.FEATURE_DIM[backbone])


def test_tolerance_is_tight_enough_to_catch_a_wrong_weight(clip):
    # The comparison above must fail for a model that is only slightly wrong: nudge one BN offset
    # of the vat head by 1e-3 (S3D-G, whose program is already compiled for this clip shape).
    ref = np.load(DATA / "s3d.npz")
    checkpoint = standin.make_checkpoint("s3d", SEED)
    head_bn = "text_audio_video/~_get_pair_embedding_heads/vis_embd/__cross_replica_batch_norm"
    checkpoint["params"][head_bn]["offset"] = checkpoint["params"][head_bn]["offset"] + np.float32(1e-3)
    out = mmv.load_model("s3d", checkpoint)(clip)
    with pytest.raises(AssertionError):
        _close("vat", out["vat"], ref["totxt"])
    _close("vid_repr", out["vid_repr"], ref["vid_repr"])  # the backbone is untouched
