"""The linear probe of the MMV UCF101 evaluation: scaler + linear SVM, window-averaged scores.

As in the release's ``eval_ucf101.py``: a ``StandardScaler`` fitted on all training clip
features, then ``LinearSVC(C=0.001)`` (scikit-learn's other defaults, one C for every backbone);
at test time ``decision_function`` is computed for every window and averaged over the windows of
a video; top-1 and top-5 accuracy are counted over videos.

Notebook 04 writes these steps out by hand first; the functions here are the same steps, reused
by the command line (``python -m helpers.ucf101 evaluate``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from helpers import checks

#: The regularisation of the published evaluation (``sklearn_reg = 0.001`` in eval_ucf101.py).
DEFAULT_C = 0.001


#: Training sets at least this large (samples x dimensions) fit their per-class SVMs in parallel.
PARALLEL_FROM = 5_000_000

#: ``batched``: every class at once (:mod:`helpers.linear_svm`, liblinear's objective, numpy);
#: ``batched-jax``: the same on JAX's first device (an accelerator when there is one);
#: ``sklearn``: scikit-learn's ``LinearSVC`` (liblinear), the reference.
SOLVERS = ("batched", "batched-jax", "sklearn")
DEFAULT_SOLVER = "batched"


def make_classifier(C: float = DEFAULT_C, random_state: int | None = 0, n_jobs: int | None = 1,
                    solver: str = "sklearn"):
    """``StandardScaler`` then ``LinearSVC(C)`` as one scikit-learn pipeline (not fitted).

    ``solver``: one of :data:`SOLVERS`. ``batched`` fits the same objective as liblinear for all
    classes at once (:class:`helpers.linear_svm.BatchedLinearSVC`); ``n_jobs`` and
    ``random_state`` then do not apply.

    ``n_jobs``: with a value other than 1, the one-vs-rest SVMs (one per class) are fitted in
    parallel processes (``OneVsRestClassifier(LinearSVC(C), n_jobs)``). liblinear solves the
    very same binary problems one after another inside ``LinearSVC``, so both give the same
    decision scores (``tests/test_probe.py`` checks it); parallel is only faster.

    ``random_state`` fixes the order of liblinear's dual solver (used when there are more
    feature dimensions than samples), so reruns give the same numbers; it does not change the
    optimum the solver aims at.
    """
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    if solver != "sklearn":
        from helpers.linear_svm import BatchedLinearSVC

        backend = "jax" if solver == "batched-jax" else "numpy"
        # Named as make_pipeline names LinearSVC, so ``named_steps["linearsvc"]`` works for both.
        return Pipeline([("standardscaler", StandardScaler()),
                         ("linearsvc", BatchedLinearSVC(C, backend=backend))])
    svm = LinearSVC(C=C, random_state=random_state)
    if n_jobs is not None and n_jobs != 1:
        from sklearn.multiclass import OneVsRestClassifier

        svm = OneVsRestClassifier(svm, n_jobs=n_jobs)
    return make_pipeline(StandardScaler(), svm)


def flatten_train(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``[V, P, D]`` per-video clip features and ``[V]`` labels -> ``[V*P, D]``, ``[V*P]``.

    2-D features ``[N, D]`` with ``[N]`` labels pass through unchanged.
    """
    features = np.asarray(features)
    labels = np.asarray(labels)
    if features.ndim == 2:
        if len(labels) != len(features):
            raise ValueError(f"{len(features)} feature rows but {len(labels)} labels")
        return features, labels
    if features.ndim != 3 or len(labels) != features.shape[0]:
        raise ValueError(f"expected features [V, P, D] with [V] labels, got {features.shape} "
                         f"and {labels.shape}")
    return features.reshape(-1, features.shape[-1]), np.repeat(labels, features.shape[1])


def fit(train_features: np.ndarray, train_labels: np.ndarray, C: float = DEFAULT_C,
        random_state: int | None = 0, n_jobs: int | None = None,
        solver: str = DEFAULT_SOLVER):
    """Fit the probe on training clips. ``train_features``: ``[N, D]`` or ``[V, P, D]``.

    ``solver``: see :data:`SOLVERS` (default: all classes at once; ``sklearn`` for liblinear).

    ``n_jobs``: processes for the per-class SVMs (see :func:`make_classifier`); default: all
    cores for training sets of at least :data:`PARALLEL_FROM` values with more than two
    classes (UCF101's 95k x 4096 fits about twice as fast on two cores), else one.
    Returns the fitted pipeline. Raises ``ValueError`` for fewer than two classes.
    """
    x, y = flatten_train(train_features, train_labels)
    num_classes = len(np.unique(y))
    if num_classes < 2:
        raise ValueError("the probe needs training clips of at least two classes")
    if n_jobs is None:
        n_jobs = -1 if x.size >= PARALLEL_FROM and num_classes > 2 else 1
    return make_classifier(C, random_state, n_jobs, solver).fit(x, y)


def class_scores(classifier, features: np.ndarray, num_classes: int | None = None) -> np.ndarray:
    """``decision_function`` as ``[N, K]`` with column ``j`` = class ``j``.

    scikit-learn returns one column per class it saw, in ``classes_`` order, and a single
    column for two classes; both become ``[N, K]`` here (classes never seen get ``-inf``).
    """
    scores = np.asarray(classifier.decision_function(features), dtype=np.float64)
    classes = np.asarray(classifier.classes_)
    if scores.ndim == 1:  # binary: positive means classes_[1]
        scores = np.stack([-scores, scores], axis=1)
    k = int(num_classes if num_classes is not None else classes.max() + 1)
    out = np.full((scores.shape[0], k), -np.inf)
    out[:, classes.astype(int)] = scores
    return out


def window_scores(classifier, test_features: np.ndarray, num_classes: int | None = None
                  ) -> np.ndarray:
    """Decision scores averaged over each video's windows.

    ``test_features``: ``[V, W, D]`` (W windows per video; ``[V, D]`` means one window).
    Returns ``[V, K]``: ``mean_w decision_function(x[v, w])``.
    """
    test_features = np.asarray(test_features)
    if test_features.ndim == 2:
        test_features = test_features[:, None]
    num_videos, num_windows, dim = test_features.shape
    scores = class_scores(classifier, test_features.reshape(-1, dim), num_classes)
    return scores.reshape(num_videos, num_windows, -1).mean(axis=1)


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of rows whose label is among the ``k`` highest scores (ties: stable order).

    With ``k`` >= the number of classes this is 1.0 by definition.
    """
    # NaN sorts as if it were a score, so an all-NaN row would count as a hit at some rank.
    scores = checks.check_finite(scores, "probe scores")
    labels = np.asarray(labels)
    k = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=1)))


def per_class_accuracy(labels: np.ndarray, predictions: np.ndarray, num_classes: int
                       ) -> np.ndarray:
    """Top-1 accuracy of each class ``[K]`` (NaN for a class with no test video)."""
    labels = np.asarray(labels)
    predictions = np.asarray(predictions)
    correct = np.bincount(labels, weights=(labels == predictions), minlength=num_classes)
    total = np.bincount(labels, minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, correct / np.maximum(total, 1), np.nan)


@dataclasses.dataclass
class ProbeResult:
    """Outcome of :func:`linear_evaluation`. Accuracies are fractions in [0, 1]."""

    top1: float
    top5: float
    train_top1: float
    scores: np.ndarray  # [V, K] window-averaged decision scores
    predictions: np.ndarray  # [V]
    labels: np.ndarray  # [V]
    per_class: np.ndarray  # [K]
    C: float
    num_train_clips: int
    num_test_videos: int
    num_windows: int
    classifier: object = dataclasses.field(repr=False, default=None)

    def summary(self) -> str:
        return (f"top-1 {100 * self.top1:.1f} %, top-5 {100 * self.top5:.1f} % over "
                f"{self.num_test_videos} test videos ({self.num_windows} windows each); "
                f"probe C={self.C:g} fitted on {self.num_train_clips} training clips "
                f"(train top-1 {100 * self.train_top1:.1f} %)")


def linear_evaluation(train_features, train_labels, test_features, test_labels,
                      C: float = DEFAULT_C, num_classes: int | None = None,
                      random_state: int | None = 0, solver: str = DEFAULT_SOLVER
                      ) -> ProbeResult:
    """Fit the probe on training clips, score test videos by window-averaged decisions.

    ``train_features``: ``[V_train, P, D]`` (P clips per video) or ``[N, D]``;
    ``train_labels``: ``[V_train]`` (or ``[N]``). ``test_features``: ``[V_test, W, D]``;
    ``test_labels``: ``[V_test]``. Labels are ints in ``0..K-1``.
    """
    test_features = checks.check_finite(test_features, "test features")
    checks.check_finite(train_features, "training features")
    test_labels = np.asarray(test_labels)
    x, y = flatten_train(train_features, train_labels)
    k = int(num_classes if num_classes is not None
            else max(int(y.max()), int(test_labels.max())) + 1)
    classifier = fit(x, y, C, random_state, solver=solver)
    scores = window_scores(classifier, test_features, k)
    predictions = np.argmax(scores, axis=1)
    train_predictions = np.argmax(class_scores(classifier, x, k), axis=1)
    return ProbeResult(
        top1=topk_accuracy(scores, test_labels, 1),
        top5=topk_accuracy(scores, test_labels, 5),
        train_top1=float(np.mean(train_predictions == y)),
        scores=scores,
        predictions=predictions,
        labels=test_labels,
        per_class=per_class_accuracy(test_labels, predictions, k),
        C=C,
        num_train_clips=len(x),
        num_test_videos=len(test_labels),
        num_windows=1 if test_features.ndim == 2 else test_features.shape[1],
        classifier=classifier,
    )


#: Published UCF101 linear top-1 (%) of the MMV backbones.
PUBLISHED_TOP1 = {"s3d": 89.6, "tsm_resnet_x1": 91.5, "tsm_resnet_x2": 91.8}
PUBLISHED_SOURCE = ("Alayrac et al., Self-Supervised MultiModal Versatile Networks, NeurIPS 2020 "
                    "(arXiv:2006.16228), Table 2, as listed in deepmind-research mmv/README.md "
                    "(UCF101 linear evaluation, top-1 %; the release's script evaluates split 1 "
                    "by default, and does not say whether the table averages the three splits)")
BACKBONE_TITLES = {"s3d": "S3D-G", "tsm_resnet_x1": "TSM-ResNet50",
                   "tsm_resnet_x2": "TSM-ResNet50x2"}


def results_table(rows) -> str:
    """A plain-text table of our numbers beside the published ones.

    ``rows``: dicts with ``backbone``, ``split`` (int or ``"mean"``), ``top1``, ``top5``
    (fractions) and optionally ``note``. Published numbers come from :data:`PUBLISHED_TOP1`.
    """
    header = (f"{'backbone':<16}{'split':>6}{'top-1 %':>9}{'top-5 %':>9}"
              f"{'published top-1 %':>19}  note")
    lines = [header, "-" * len(header)]
    for row in rows:
        published = PUBLISHED_TOP1.get(row["backbone"])
        lines.append(
            f"{BACKBONE_TITLES.get(row['backbone'], row['backbone']):<16}{str(row['split']):>6}"
            f"{100 * row['top1']:>9.1f}{100 * row['top5']:>9.1f}"
            f"{(f'{published:.1f}' if published is not None else '-'):>19}  {row.get('note', '')}")
    lines.append(f"published: {PUBLISHED_SOURCE}")
    return "\n".join(lines)


def mean_rows(rows, backbone: str, note: str = "") -> dict:
    """The mean over splits of ``rows`` of one backbone (a row for :func:`results_table`)."""
    mine = [r for r in rows if r["backbone"] == backbone and r["split"] != "mean"]
    if not mine:
        raise ValueError(f"no rows for {backbone}")
    return {"backbone": backbone, "split": "mean",
            "top1": float(np.mean([r["top1"] for r in mine])),
            "top5": float(np.mean([r["top5"] for r in mine])), "note": note}
