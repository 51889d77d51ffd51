"""The batched probe solver against scikit-learn's liblinear, on the same objective."""

import numpy as np
import pytest

from helpers import linear_svm, probe


def blobs(num_classes=7, n=700, dim=24, seed=0, spread=2.5):
    """Overlapping Gaussian classes with correlated coordinates and an offset: a probe problem
    where some points sit inside the margin (so the hinge matters) and accuracy is not 100 %."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % num_classes
    centres = rng.standard_normal((num_classes, dim))
    mix = rng.standard_normal((dim, dim)) / np.sqrt(dim)
    x = (centres[labels] + spread * rng.standard_normal((n, dim))) @ mix + 3.0
    return x.astype(np.float32), labels


def signs_of(labels, classes):
    signs = np.where(labels[:, None] == classes[None, :], 1.0, -1.0)
    return signs[:, 1:] if len(classes) == 2 else signs


@pytest.mark.parametrize("num_classes", [2, 7])
def test_same_predictions_and_objective_as_liblinear(num_classes):
    x, y = blobs(num_classes)
    ours = probe.fit(x, y, solver="batched")
    ref = probe.fit(x, y, solver="sklearn")
    scaled = ref[0].transform(x)
    np.testing.assert_allclose(ours[0].transform(x), scaled, rtol=1e-6, atol=1e-6)  # same scaler
    signs = signs_of(y, np.unique(y))
    f_ours = linear_svm.objective(ours[-1].coef_, ours[-1].intercept_, scaled, signs)
    f_ref = linear_svm.objective(ref[-1].coef_, ref[-1].intercept_, scaled, signs)
    # Both minimise the same strictly convex function to a relative gradient of 1e-5 (ours) or
    # liblinear's tol 1e-4 scaled by the class balance: the objectives agree to ~1e-7 relative;
    # 1e-5 leaves room for float32 products over 700 rows.
    np.testing.assert_allclose(f_ours, f_ref, rtol=1e-5)
    a = probe.class_scores(ours, x, num_classes)
    b = probe.class_scores(ref, x, num_classes)
    # Decision values near 1 in size; the two optima differ by the solvers' tolerances.
    np.testing.assert_allclose(a, b, atol=1e-3)
    np.testing.assert_array_equal(np.argmax(a, 1), np.argmax(b, 1))
    accuracy = np.mean(np.argmax(a, 1) == y)
    assert 0.5 < accuracy < 1.0  # a problem where the margin matters, not a trivial one


def test_solver_reaches_the_optimum_not_just_the_same_labels():
    x, y = blobs(5, n=500, dim=16, seed=1)
    signs = signs_of(y, np.unique(y))
    w, b, info = linear_svm.solve(x, signs, tol=1e-6)
    assert info["relative_gradient"].max() <= 1e-6
    best = linear_svm.objective(w, b, x, signs)
    rng = np.random.default_rng(0)
    for _ in range(5):  # any nearby point is worse
        dw = 1e-3 * rng.standard_normal(w.shape)
        assert np.all(linear_svm.objective(w + dw, b, x, signs) > best)
    # A broken solver (one Newton step) stops short of it.
    w1, b1, _ = linear_svm.solve(x, signs, max_iter=1)
    assert np.all(linear_svm.objective(w1, b1, x, signs) >= best)
    assert np.any(linear_svm.objective(w1, b1, x, signs) > best * (1 + 1e-4))


def test_jax_backend_matches_numpy():
    x, y = blobs(4, n=300, dim=12, seed=2)
    signs = signs_of(y, np.unique(y))
    w_np, b_np, _ = linear_svm.solve(x, signs, backend="numpy")
    w_jx, b_jx, info = linear_svm.solve(x, signs, backend="jax")
    assert info["backend"] == "jax"
    # float32 products in a different order (XLA vs BLAS): equal to the solvers' tolerance.
    np.testing.assert_allclose(w_jx, w_np, atol=1e-4)
    np.testing.assert_allclose(b_jx, b_np, atol=1e-4)


def test_bad_solver_name():
    with pytest.raises(ValueError, match="solver must be one of"):
        probe.make_classifier(solver="liblinear")
