"""The linear probe: separable data, window averaging by hand, metrics on counted examples."""

import numpy as np
import pytest

from helpers import probe


def separable(num_classes=6, videos_per_class=5, clips=4, dim=32, seed=0):
    """Features whose class is a shifted block of coordinates: linearly separable."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(num_classes), videos_per_class)
    features = rng.normal(0, 0.3, (len(labels), clips, dim))
    for v, label in enumerate(labels):
        features[v, :, label * (dim // num_classes)] += 4.0
    return features.astype(np.float32), labels


def test_separable_features_give_100_percent():
    train, train_labels = separable(seed=0)
    test, test_labels = separable(seed=1)
    result = probe.linear_evaluation(train, train_labels, test, test_labels)
    assert result.top1 == 1.0 and result.top5 == 1.0 and result.train_top1 == 1.0
    assert result.scores.shape == (30, 6)
    np.testing.assert_array_equal(result.per_class, np.ones(6))
    assert result.num_train_clips == 120 and result.num_windows == 4 and result.C == 0.001
    assert "top-1 100.0 %" in result.summary()


def test_window_average_matches_a_hand_computation():
    train, train_labels = separable(num_classes=4, seed=2)
    classifier = probe.fit(train, train_labels)
    scaler, svm = classifier.named_steps["standardscaler"], classifier.named_steps["linearsvc"]
    assert svm.C == 0.001
    rng = np.random.default_rng(5)
    test = rng.normal(0, 1, (3, 7, train.shape[-1])).astype(np.float32)
    by_hand = np.zeros((3, 4))
    for v in range(3):
        for w in range(7):
            x = (test[v, w] - scaler.mean_) / scaler.scale_
            by_hand[v] += (svm.coef_ @ x + svm.intercept_) / 7
    np.testing.assert_allclose(probe.window_scores(classifier, test), by_hand, rtol=1e-5,
                               atol=1e-6)
    # Averaging scores is not predicting each window and voting: check it is the mean.
    per_window = probe.class_scores(classifier, test.reshape(21, -1)).reshape(3, 7, 4)
    np.testing.assert_allclose(probe.window_scores(classifier, test), per_window.mean(axis=1))


def test_scaler_is_fitted_on_training_clips_only():
    train, labels = separable(seed=3)
    classifier = probe.fit(train, labels)
    flat = train.reshape(-1, train.shape[-1])
    np.testing.assert_allclose(classifier.named_steps["standardscaler"].mean_, flat.mean(0),
                               rtol=1e-5, atol=1e-6)


def test_topk_by_hand():
    scores = np.array([[0.9, 0.1, 0.0, 0.3],
                       [0.2, 0.8, 0.5, 0.1],
                       [0.1, 0.2, 0.3, 0.4]])
    labels = np.array([0, 2, 0])
    assert probe.topk_accuracy(scores, labels, 1) == pytest.approx(1 / 3)
    assert probe.topk_accuracy(scores, labels, 2) == pytest.approx(2 / 3)
    assert probe.topk_accuracy(scores, labels, 4) == 1.0
    assert probe.topk_accuracy(scores, labels, 5) == 1.0  # k >= classes


def test_per_class_accuracy_by_hand():
    labels = np.array([0, 0, 1, 1, 1, 3])
    predictions = np.array([0, 1, 1, 1, 0, 3])
    got = probe.per_class_accuracy(labels, predictions, 4)
    np.testing.assert_allclose(got[[0, 1, 3]], [0.5, 2 / 3, 1.0])
    assert np.isnan(got[2])


def test_two_classes_and_unseen_classes():
    train, labels = separable(num_classes=2, seed=4)
    classifier = probe.fit(train, labels)
    scores = probe.class_scores(classifier, train[:, 0], num_classes=3)
    assert scores.shape == (10, 3) and np.all(np.isneginf(scores[:, 2]))
    np.testing.assert_array_equal(np.argmax(scores, 1), labels)
    with pytest.raises(ValueError, match="at least two classes"):
        probe.fit(train[:5], labels[:5])
    with pytest.raises(ValueError, match="labels"):
        probe.fit(train.reshape(-1, train.shape[-1]), labels)


def test_results_table_quotes_the_published_numbers():
    rows = [{"backbone": "s3d", "split": s, "top1": t, "top5": 0.99} for s, t in
            [(1, 0.9), (2, 0.8), (3, 0.7)]]
    rows.append(probe.mean_rows(rows, "s3d"))
    assert rows[-1]["top1"] == pytest.approx(0.8)
    table = probe.results_table(rows)
    assert "S3D-G" in table and "89.6" in table and "80.0" in table and "Table 2" in table
    assert probe.PUBLISHED_TOP1 == {"s3d": 89.6, "tsm_resnet_x1": 91.5, "tsm_resnet_x2": 91.8}


def test_parallel_one_vs_rest_gives_the_same_scores_as_liblinear_alone():
    from helpers import probe

    rng = np.random.default_rng(3)
    labels = np.arange(600) % 6
    features = rng.standard_normal((6, 40))[labels] + 2.0 * rng.standard_normal((600, 40))
    alone = probe.fit(features, labels, n_jobs=1, solver="sklearn")
    parallel = probe.fit(features, labels, n_jobs=2, solver="sklearn")
    assert type(parallel[-1]).__name__ == "OneVsRestClassifier"
    assert type(alone[-1]).__name__ == "LinearSVC"
    a = probe.class_scores(alone, features)
    b = probe.class_scores(parallel, features)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)
    assert np.abs(a).max() > 0.1  # the scores are not trivially zero


def test_fit_goes_parallel_only_for_large_multiclass_sets(monkeypatch):
    from helpers import probe

    chosen = []
    real = probe.make_classifier
    monkeypatch.setattr(probe, "make_classifier",
                        lambda C, rs, n_jobs, solver: chosen.append(n_jobs) or real(C, rs, 1))
    rng = np.random.default_rng(0)
    probe.fit(rng.standard_normal((30, 4)), np.arange(30) % 3)
    monkeypatch.setattr(probe, "PARALLEL_FROM", 100)
    probe.fit(rng.standard_normal((30, 4)), np.arange(30) % 3)
    probe.fit(rng.standard_normal((30, 4)), np.arange(30) % 2)
    assert chosen == [1, -1, 1]
