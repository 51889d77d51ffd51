"""The lesson code written out in the notebooks behaves like the `helpers` code later lessons use.

Each notebook's cells tagged ``lesson`` hold only imports and definitions; they are read from
the committed notebook, run here, and compared with `helpers` on inputs the notebooks never
show (other sizes, seeds, ties). So the two copies cannot drift apart: change one, and this fails.
"""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import numpy as np
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def lesson_namespace(filename: str, **given) -> dict:
    """Run the ``lesson`` cells of ``filename`` in a fresh namespace (``given``: names the
    notebook imported in other cells, e.g. ``np``); return it."""
    nb = nbformat.read(NOTEBOOKS / filename, as_version=4)
    cells = [c for c in nb.cells if "lesson" in c.metadata.get("tags", [])]
    assert cells, f"{filename} has no cell tagged 'lesson'"
    namespace = dict(given)
    allowed = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef, ast.Assign)
    for cell in cells:
        tree = ast.parse(cell.source)
        for node in tree.body:
            assert isinstance(node, allowed), (
                f"{filename}: a lesson cell may only import and define, found "
                f"{type(node).__name__} at line {node.lineno}")
        exec(compile(tree, f"{filename}:lesson", "exec"), namespace)
    return namespace


# ------------------------------------------------------------------------------ 02: retrieval


def test_notebook_02_ranks_recall_and_median_equal_helpers_retrieval():
    from helpers import retrieval

    lesson = lesson_namespace("02_text_to_video_retrieval.ipynb", np=np)
    rng = np.random.default_rng(7)
    for size in (1, 4, 9, 30):
        # Integer scores make ties common: the rule for ties is what is compared.
        similarity = rng.integers(0, 4, size=(size, size)).astype(np.float64)
        for direction, matrix in (("text_to_video", similarity), ("video_to_text", similarity.T)):
            ours = lesson["ranks_by_hand"](matrix)
            np.testing.assert_array_equal(ours, retrieval.ranks(similarity, direction))
            theirs = retrieval.metrics(similarity, direction)
            for k in (1, 5, 10):
                assert lesson["recall_at_k_by_hand"](ours, k) == theirs[f"R@{k}"]
            assert lesson["median_rank_by_hand"](ours) == theirs["MedR"]
    constant = np.ones((5, 5))
    assert lesson["ranks_by_hand"](constant).tolist() == [5] * 5  # all tied: worst rank


def test_notebook_02_cosine_and_hubs():
    lesson = lesson_namespace("02_text_to_video_retrieval.ipynb", np=np)
    rng = np.random.default_rng(1)
    t, v = rng.normal(size=(6, 8)), rng.normal(size=(5, 8))
    cosine = lesson["cosine_by_hand"](t, v)
    expected = np.array([[a @ b / np.linalg.norm(a) / np.linalg.norm(b) for b in v] for a in t])
    np.testing.assert_allclose(cosine, expected, rtol=1e-12)  # float64, a handful of terms
    loud = v.copy()
    loud[2] *= 100  # one video with a huge norm wins every query by dot product
    counts = lesson["top1_occurrence"](t @ loud.T)
    assert counts.shape == (5,) and counts.sum() == 6
    assert counts[2] == np.sum(t @ loud[2] > 0)  # a hub: it wins wherever its score is positive
    # Cosine ignores norms: the loud video is no hub there.
    np.testing.assert_array_equal(lesson["top1_occurrence"](lesson["cosine_by_hand"](t, loud)),
                                  lesson["top1_occurrence"](cosine))


# ------------------------------------------------------------------------------ 03: Haiku modules


@pytest.fixture(scope="module")
def haiku_lesson():
    hk = pytest.importorskip("haiku")
    import jax
    import jax.numpy as jnp

    return lesson_namespace("03_mmv_backbones.ipynb", np=np, hk=hk, jax=jax, jnp=jnp), hk, jax


def _close(ours, theirs):
    # float32 through separately traced programs (see notebook 03): 1e-5 of the largest value.
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    assert np.abs(ours - theirs).max() <= 1e-5 * max(np.abs(theirs).max(), 1e-12)


def _random_state(tree, rng):
    # Moving averages of a real checkpoint are not 0 and 1: random positive variances.
    return {m: {n: (np.abs(rng.normal(size=a.shape)) + 0.5).astype(a.dtype)
                if a.dtype.kind == "f" else np.zeros(a.shape, a.dtype) for n, a in d.items()}
            for m, d in tree.items()}


@pytest.mark.parametrize("piece", ["unit", "separable_gated", "inception", "heads"])
def test_notebook_03_modules_equal_helpers_mmv(haiku_lesson, piece):
    from helpers.mmv import models

    lesson, hk, jax = haiku_lesson
    rng = np.random.default_rng(3)
    if piece == "heads":
        x = rng.normal(size=(3, 48)).astype(np.float32)

        def ours(v):
            va = lesson["VideoToAudioHead"](name="vid2audio_embd")(v)
            return va, lesson["VideoToTextHead"](name="vis_embd")(va)

        def theirs(v):
            va = models._VideoToAudioHead(name="vid2audio_embd")(v)
            return va, models._VideoToTextHead(name="vis_embd")(va)
    else:
        x = rng.uniform(size=(2, 4, 8, 8, 6)).astype(np.float32)
        ours_cls, theirs_cls, args = {
            "unit": (lesson["Unit3D"], models._Unit3D, dict(channels=5, kernel=(2, 3, 3))),
            "separable_gated": (lesson["Unit3D"], models._Unit3D,
                                dict(channels=7, kernel=3, separable=True, gating=True)),
            "inception": (lesson["InceptionBlock"], models._MixedBlock, (4, 3, 5, 2, 3, 4)),
        }[piece]
        build = (lambda cls: (lambda v: cls(*args, name="block")(v))) if isinstance(args, tuple) \
            else (lambda cls: (lambda v: cls(**args, name="block")(v)))
        ours, theirs = build(ours_cls), build(theirs_cls)
    ours_t = hk.without_apply_rng(hk.transform_with_state(ours))
    theirs_t = hk.without_apply_rng(hk.transform_with_state(theirs))
    # eval_shape: the trees' names, shapes and dtypes without running init (random values are
    # drawn below); jit: one program per model, not one compilation per eager operation.
    params, state = jax.eval_shape(theirs_t.init, jax.random.PRNGKey(0), x)
    our_params, our_state = jax.eval_shape(ours_t.init, jax.random.PRNGKey(0), x)
    shapes = lambda tree: {(m, n, v.shape) for m, d in tree.items() for n, v in d.items()}  # noqa: E731
    assert shapes(our_params) == shapes(params) and shapes(our_state) == shapes(state)
    params = jax.tree_util.tree_map(
        lambda a: rng.normal(size=a.shape).astype(a.dtype) * 0.5, params)
    state = _random_state(state, rng)
    got, _ = jax.jit(ours_t.apply)(params, state, x)
    want, _ = jax.jit(theirs_t.apply)(params, state, x)
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        _close(a, b)


def test_notebook_03_temporal_shift_equals_helpers_exactly(haiku_lesson):
    from helpers.mmv import models

    lesson, _, jax = haiku_lesson
    rng = np.random.default_rng(5)
    for frames, channels, fraction in ((8, 16, 1 / 8), (3, 10, 0.25), (4, 7, 1 / 8)):
        x = rng.normal(size=(2 * frames, 2, 3, channels)).astype(np.float32)
        # Data movement only, no arithmetic: exactly equal.
        np.testing.assert_array_equal(
            lesson["temporal_shift_by_hand"](jax.numpy.asarray(x), frames, fraction),
            models.temporal_shift(jax.numpy.asarray(x), frames, fraction))


# ------------------------------------------------------------------------------ 04: the probe


def test_notebook_04_probe_equals_helpers_probe():
    from helpers import probe

    lesson = lesson_namespace("04_ucf101_linear_evaluation.ipynb", np=np)
    rng = np.random.default_rng(11)
    classes, dim = 7, 12
    centres = rng.normal(size=(classes, dim)) * 0.6
    train_labels = np.repeat(np.arange(classes), 4)
    test_labels = np.repeat(np.arange(classes), 2)
    train = centres[train_labels][:, None] + rng.normal(size=(len(train_labels), 3, dim))
    test = centres[test_labels][:, None] + rng.normal(size=(len(test_labels), 5, dim))
    top1, top5, scores = lesson["linear_probe_by_hand"](train, train_labels, test, test_labels)
    # The notebook writes out sklearn's LinearSVC, so it is compared with helpers' sklearn solver
    # (the default batched solver has the same objective; tests/test_linear_svm.py pins that).
    result = probe.linear_evaluation(train, train_labels, test, test_labels, num_classes=classes,
                                     solver="sklearn")
    assert np.isclose(top1, result.top1) and np.isclose(top5, result.top5)
    assert 0 < top1 < 1  # an informative case: neither trivial nor hopeless
    classifier = probe.fit(train, train_labels, solver="sklearn")
    # The same liblinear problem, solved with the same seed: scores agree to float64 rounding.
    np.testing.assert_allclose(scores, probe.window_scores(classifier, test, classes), atol=1e-8)


# ------------------------------------------------------------------------------ 05: text tower, FAC


def _prefixed(tree, prefix):
    return {prefix + module: {n: np.asarray(a) for n, a in arrays.items()}
            for module, arrays in tree.items()}


def test_notebook_05_text_tower_and_fac_projection_equal_helpers_mmv():
    hk = pytest.importorskip("haiku")
    import jax

    from helpers.mmv import models, towers

    lesson = lesson_namespace("05_mmv_audio_and_text.ipynb", np=np)
    rng = np.random.default_rng(7)
    # The text tower on a small vocabulary, sentences of another length than the notebook's.
    ids = rng.integers(0, 40, size=(5, 9)).astype(np.int32)
    text = towers.transformed(vocab_size=40)
    params, state = text.init(jax.random.PRNGKey(0), word_ids=ids)
    params = jax.tree_util.tree_map(lambda a: rng.normal(size=a.shape).astype(a.dtype) * 0.3, params)
    want = text.apply(params, state, word_ids=ids)[0]["text"]["vat"]
    _close(lesson["text_tower"](jax.tree_util.tree_map(np.asarray, params), ids), want)
    # FAC's vis_embd head, on va with negative entries (the ReLU must act) and real-like BN stats.
    va = rng.normal(size=(4, 512)).astype(np.float32)
    head = hk.without_apply_rng(hk.transform_with_state(
        lambda v: models._VideoToTextHead(name="vis_embd")(v)))
    params, state = head.init(jax.random.PRNGKey(0), va)
    params = jax.tree_util.tree_map(lambda a: rng.normal(size=a.shape).astype(a.dtype) * 0.1, params)
    state = _random_state(state, rng)
    want = head.apply(params, state, va)[0]
    prefix = lesson["HEADS"]
    _close(lesson["fac_projection"](_prefixed(params, prefix), _prefixed(state, prefix), va), want)
