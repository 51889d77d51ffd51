"""The probe at UCF101 split-1 size: the batched solver beside scikit-learn's liblinear.

Structured synthetic features (so that accuracy means something): 101 class means in a
64-dimensional latent space, a per-video offset, per-clip noise, a fixed random ReLU layer up
to ``dim`` dimensions and a little noise on top. Split 1's sizes: 9,537 training videos x 10
passes = 95,370 clips, 3,783 test videos x 10 windows.
"""

from __future__ import annotations

import time

import numpy as np

CLASSES = 101
TRAIN_VIDEOS, TEST_VIDEOS, CLIPS = 9_537, 3_783, 10


def structured(n_videos: int, clips: int, dim: int, seed: int, classes: int = CLASSES,
               latent: int = 64, spread: float = 1.8) -> tuple[np.ndarray, np.ndarray]:
    """``[V, clips, dim] float32`` features and ``[V]`` labels (class = video index mod K)."""
    rng = np.random.default_rng(seed)
    means = np.random.default_rng(99).standard_normal((classes, latent)).astype(np.float32)
    mix = (np.random.default_rng(98).standard_normal((latent, dim))
           / np.sqrt(latent)).astype(np.float32)
    labels = np.arange(n_videos) % classes
    out = np.empty((n_videos, clips, dim), dtype=np.float32)
    for start in range(0, n_videos, 512):  # in chunks: the float32 result is the big array
        stop = min(n_videos, start + 512)
        video = means[labels[start:stop]] + spread * rng.standard_normal(
            (stop - start, latent), dtype=np.float32)
        z = video[:, None] + 0.7 * rng.standard_normal((stop - start, clips, latent),
                                                       dtype=np.float32)
        out[start:stop] = np.maximum(z @ mix, 0) + 0.3 * rng.standard_normal(
            (stop - start, clips, dim), dtype=np.float32)
    return out, labels


def compare(record, dim: int, scale: float = 1.0, sklearn: bool = True, solver="batched",
            section: str = "probe", ours_s: float | None = None) -> dict:
    """Fit both solvers on the same features; record times and agreement.

    ``ours_s``: the batched solver's time measured earlier on the same features (it is then
    fitted again for the agreement figures, but its time is not recorded twice).
    """
    from helpers import linear_svm, probe

    n_train, n_test = max(CLASSES, int(TRAIN_VIDEOS * scale)), max(CLASSES, int(TEST_VIDEOS * scale))
    train, train_labels = structured(n_train, CLIPS, dim, seed=0)
    test, test_labels = structured(n_test, CLIPS, dim, seed=1)
    size = f"{n_train * CLIPS:,} x {dim}"
    start = time.perf_counter()
    ours = probe.fit(train, train_labels, solver=solver)
    if ours_s is None:
        ours_s = time.perf_counter() - start
        info = ours[-1].info_
        record(section, f"fit {size}, {CLASSES} classes: {solver} solver", ours_s, "s",
               f"{info['newton_steps']} Newton steps, {info['cg_steps']} CG steps, backend "
               f"{info['backend']}")
    result = {"ours_s": ours_s}
    if not sklearn:
        return result
    start = time.perf_counter()
    ref = probe.fit(train, train_labels, solver="sklearn")
    ref_s = time.perf_counter() - start
    record(section, f"fit {size}: scikit-learn LinearSVC (parallel one-vs-rest)", ref_s, "s")
    record(section, f"fit {size}: speed-up of the {solver} solver", ref_s / ours_s, "x",
           "target >= 5x")
    s_ours = probe.window_scores(ours, test, CLASSES)
    s_ref = probe.window_scores(ref, test, CLASSES)
    top_ours = probe.topk_accuracy(s_ours, test_labels, 1)
    top_ref = probe.topk_accuracy(s_ref, test_labels, 1)
    same = float(np.mean(np.argmax(s_ours, 1) == np.argmax(s_ref, 1)))
    window_ours = probe.class_scores(ours, test.reshape(-1, dim), CLASSES)
    window_ref = probe.class_scores(ref, test.reshape(-1, dim), CLASSES)
    diff = np.abs(window_ours - window_ref)
    x = ref[0].transform(train.reshape(-1, dim))
    signs = np.where(np.repeat(train_labels, CLIPS)[:, None] == np.arange(CLASSES), 1.0, -1.0)
    f_ours = linear_svm.objective(*_weights(ours[-1]), x, signs)
    f_ref = linear_svm.objective(*_weights(ref[-1]), x, signs)
    record(section, f"{size}: test top-1, {solver} / sklearn", 100 * top_ours, "%",
           f"sklearn {100 * top_ref:.2f} %; difference {100 * (top_ours - top_ref):+.2f} points "
           f"(target within 0.2); {n_test:,} test videos x {CLIPS} windows")
    record(section, f"{size}: same top-1 prediction as sklearn", 100 * same, "% of videos",
           "target >= 99.5 %")
    record(section, f"{size}: decision values, max |ours - sklearn|", float(diff.max()), "",
           f"99.9th percentile {np.quantile(diff, 0.999):.2e}; scores' own scale "
           f"(std) {window_ref.std():.3f}")
    record(section, f"{size}: objective, (ours - sklearn) / sklearn",
           float(np.max((f_ours - f_ref) / f_ref)), "max over classes",
           f"median {np.median((f_ours - f_ref) / f_ref):+.1e}; negative = ours lower")
    result.update(ref_s=ref_s, top_ours=top_ours, top_ref=top_ref, same=same)
    return result


def _weights(svm):
    """``coef_ [K, D]``, ``intercept_ [K]`` of a LinearSVC, a OneVsRestClassifier of them, or
    the batched solver."""
    if hasattr(svm, "estimators_"):
        return (np.concatenate([e.coef_ for e in svm.estimators_]),
                np.concatenate([np.atleast_1d(e.intercept_) for e in svm.estimators_]))
    return svm.coef_, svm.intercept_
