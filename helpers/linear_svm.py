"""All one-vs-rest linear SVMs of the probe at once: liblinear's objective, a batched solver.

``LinearSVC(C)`` (scikit-learn, liblinear) with its defaults solves, for each class ``k``
against the rest, the primal problem

    min_w  1/2 |w|^2 + C sum_i max(0, 1 - y_i w . [x_i, 1])^2        y_i = +1 (class k) or -1

with the bias as an extra constant feature (``intercept_scaling = 1``) that is regularised like
every other weight. liblinear solves the classes one after another with a trust-region Newton
method. :class:`BatchedLinearSVC` minimises exactly the same functions, for all classes at once:
each step's work is a few matrix products of the ``[N, D]`` features with ``[D, K]`` weight
matrices, which BLAS (or an accelerator) runs at full speed, instead of ``K`` passes of
sparse-row code over the data.

The method: Newton's method on the (once differentiable, piecewise quadratic) objective. The
generalised Hessian of class ``k`` is ``I + 2C X_Aᵀ X_A`` over its active rows ``A`` (margin
below 1); each Newton direction is found by conjugate gradients, preconditioned with the
Cholesky factor of ``I + 2C XᵀX`` over all rows (one matrix for every class; computed once), and
the step length by an exact line search (Newton's method in one dimension on the piecewise
quadratic). It stops when ``|grad_k| <= tol * |grad_k(0)|`` for every class (liblinear's rule,
with our own ``tol``) or after ``max_iter`` Newton steps.

The optimum is unique (the objective is strictly convex), so the solver and liblinear aim at the
same weights and differ only by how far each is from it; ``tests/test_linear_svm.py`` checks
predictions and objective values against scikit-learn. Backends: numpy (float32 products, float64
for the small things) or JAX (the same steps on ``jax.devices()[0]``, products at full float32
precision: TF32 would cost the accuracy this needs).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

#: The regularisation of the published evaluation.
DEFAULT_C = 0.001


class _NumpyOps:
    name = "numpy"

    def __init__(self):
        import scipy.linalg

        self.xp = np
        self._linalg = scipy.linalg

    def asarray(self, x, dtype=np.float32):
        return np.asarray(x, dtype=dtype)

    def matmul(self, a, b):
        return a @ b

    def tmatmul(self, a, b):  # a.T @ b
        return a.T @ b

    def cholesky(self, matrix):
        return self._linalg.cho_factor(np.asarray(matrix, np.float64), lower=True)

    def cho_solve(self, factor, rhs):
        return self._linalg.cho_solve(factor, np.asarray(rhs, np.float64))

    def host(self, x):
        return np.asarray(x)


class _JaxOps:
    name = "jax"

    def __init__(self, device=None):
        import jax
        import jax.numpy as jnp
        import jax.scipy.linalg as jsl

        self.xp = jnp
        self._jax = jax
        self._jsl = jsl
        self.device = device or jax.devices()[0]
        highest = jax.lax.Precision.HIGHEST
        self._mm = jax.jit(lambda a, b: jnp.matmul(a, b, precision=highest))
        self._tmm = jax.jit(lambda a, b: jnp.matmul(a.T, b, precision=highest))

    def asarray(self, x, dtype=np.float32):
        return self._jax.device_put(np.asarray(x, dtype=dtype) if isinstance(x, np.ndarray)
                                    else self.xp.asarray(x, dtype=dtype), self.device)

    def matmul(self, a, b):
        return self._mm(a, b.astype(a.dtype))

    def tmatmul(self, a, b):
        return self._tmm(a, b.astype(a.dtype))

    def cholesky(self, matrix):
        # float32 on the device is enough: it only preconditions (the gradient decides the answer).
        matrix = self.xp.asarray(matrix, dtype=self.xp.float32)
        return self._jsl.cho_factor(matrix, lower=True)

    def cho_solve(self, factor, rhs):
        return self._jsl.cho_solve(factor, rhs.astype(factor[0].dtype))

    def host(self, x):
        return np.asarray(x)


def _ops(backend: str):
    if backend == "numpy":
        return _NumpyOps()
    if backend == "jax":
        return _JaxOps()
    raise ValueError(f"backend must be 'numpy' or 'jax', got {backend!r}")


def objective(weights: np.ndarray, bias: np.ndarray, x: np.ndarray, signs: np.ndarray,
              C: float = DEFAULT_C) -> np.ndarray:
    """liblinear's primal objective of each problem, float64: ``[K]``.

    ``weights``: ``[K, D]``, ``bias``: ``[K]``, ``x``: ``[N, D]``, ``signs``: ``[N, K]`` of +-1.
    """
    weights = np.asarray(weights, np.float64)
    bias = np.asarray(bias, np.float64)
    margins = np.asarray(x, np.float64) @ weights.T + bias
    slack = np.maximum(0.0, 1.0 - signs * margins)
    return 0.5 * (np.sum(weights ** 2, axis=1) + bias ** 2) + C * np.sum(slack ** 2, axis=0)


def solve(x, signs, C: float = DEFAULT_C, tol: float = 1e-5, max_iter: int = 50,
          max_cg: int = 50, backend: str = "numpy", gram_rows: int | None = 40_000,
          verbose: bool = False):
    """Minimise liblinear's L2-regularised squared-hinge objective for every column of ``signs``.

    ``x``: ``[N, D]`` features (float32 is used); ``signs``: ``[N, K]`` of +-1 (one problem per
    column). ``tol``: stop once each problem's gradient norm is below ``tol`` times its first.
    ``gram_rows``: rows used to build the preconditioner (every ``N / gram_rows``-th one, scaled
    up; ``None``: all); it changes how fast, never where, the solver converges.
    Returns ``(weights [K, D], bias [K], info)`` as float64 numpy arrays; ``info`` has the
    Newton and CG iteration counts and the final relative gradient norms.
    """
    ops = _ops(backend)
    xp = ops.xp
    x_host = np.asarray(x, dtype=np.float32)
    n, d = x_host.shape
    signs_host = np.asarray(signs, dtype=np.float32)
    if signs_host.shape[0] != n:
        raise ValueError(f"{n} feature rows but {signs_host.shape[0]} rows of signs")
    k = signs_host.shape[1]
    X = ops.asarray(x_host)
    Y = ops.asarray(signs_host)
    two_c = 2.0 * C

    # Preconditioner: I + 2C [x, 1]ᵀ[x, 1] over (a regular subset of) all rows.
    step = 1 if gram_rows is None or n <= gram_rows else int(np.ceil(n / gram_rows))
    sub = X[::step]
    scale = n / sub.shape[0]
    gram = ops.host(ops.tmatmul(sub, sub)).astype(np.float64) * scale
    sums = np.asarray(ops.host(xp.sum(sub, axis=0)), np.float64) * scale
    full = np.empty((d + 1, d + 1))
    full[:d, :d] = gram
    full[:d, d] = full[d, :d] = sums
    full[d, d] = n
    full *= two_c
    full[np.diag_indices(d + 1)] += 1.0
    factor = ops.cholesky(full)
    del gram, full

    def precondition(gw, gb):
        stacked = xp.concatenate([gw, gb[None, :]], axis=0)
        solved = ops.cho_solve(factor, stacked).astype(xp.float32)
        return solved[:d], solved[d]

    def hess(vw, vb, mask):  # (I + 2C X_Aᵀ X_A) v, batched over classes
        xv = mask * (ops.matmul(X, vw) + vb)
        return vw + two_c * ops.tmatmul(X, xv), vb + two_c * xp.sum(xv, axis=0)

    W = xp.zeros((d, k), dtype=xp.float32)
    b = xp.zeros((k,), dtype=xp.float32)
    Z = xp.zeros((n, k), dtype=xp.float32)
    g0 = None
    newton_steps, cg_steps = 0, 0
    rel = np.ones(k)
    for newton_steps in range(1, max_iter + 1):
        mask = (Y * Z < 1.0).astype(xp.float32)
        residual = mask * (Z - Y)
        gw = W + two_c * ops.tmatmul(X, residual)
        gb = b + two_c * xp.sum(residual, axis=0)
        gnorm = np.sqrt(np.asarray(ops.host(xp.sum(gw * gw, axis=0) + gb * gb), np.float64))
        if g0 is None:
            g0 = np.maximum(gnorm, 1e-30)
        rel = gnorm / g0
        if verbose:
            print(f"newton {newton_steps}: max relative gradient {rel.max():.2e}, cg {cg_steps}")
        if np.all(rel <= tol):
            newton_steps -= 1
            break
        # Preconditioned CG on H d = -g, to a relative residual of min(0.1, sqrt(|g|/|g0|)).
        forcing = xp.asarray(np.minimum(0.1, np.sqrt(rel)), dtype=xp.float32)
        dw, db = xp.zeros_like(W), xp.zeros_like(b)
        rw, rb = -gw, -gb
        zw, zb = precondition(rw, rb)
        pw, pb = zw, zb
        rz = xp.sum(rw * zw, axis=0) + rb * zb
        r0 = xp.sqrt(xp.sum(rw * rw, axis=0) + rb * rb)
        for _ in range(max_cg):
            cg_steps += 1
            hw, hb = hess(pw, pb, mask)
            php = xp.sum(pw * hw, axis=0) + pb * hb
            alpha = rz / xp.maximum(php, 1e-30)
            dw, db = dw + alpha * pw, db + alpha * pb
            rw, rb = rw - alpha * hw, rb - alpha * hb
            rnorm = xp.sqrt(xp.sum(rw * rw, axis=0) + rb * rb)
            if bool(ops.host(xp.all(rnorm <= forcing * r0))):
                break
            zw, zb = precondition(rw, rb)
            rz_new = xp.sum(rw * zw, axis=0) + rb * zb
            beta = rz_new / xp.maximum(rz, 1e-30)
            rz = rz_new
            pw, pb = zw + beta * pw, zb + beta * pb
        # Exact line search: f(t) is a convex piecewise quadratic in t; Newton in 1-D.
        zd = ops.matmul(X, dw) + db
        wd = xp.sum(W * dw, axis=0) + b * db
        dd = xp.sum(dw * dw, axis=0) + db * db
        t = xp.ones((k,), dtype=xp.float32)
        for _ in range(8):
            zt = Z + t * zd
            act = (Y * zt < 1.0).astype(xp.float32)
            slope = wd + t * dd + two_c * xp.sum(act * (zt - Y) * zd, axis=0)
            curve = dd + two_c * xp.sum(act * zd * zd, axis=0)
            t = t - slope / xp.maximum(curve, 1e-30)
        W, b, Z = W + t * dw, b + t * db, Z + t * zd
    info = {"newton_steps": newton_steps, "cg_steps": cg_steps,
            "relative_gradient": np.asarray(rel), "backend": ops.name}
    return (np.asarray(ops.host(W), np.float64).T, np.asarray(ops.host(b), np.float64), info)


class BatchedLinearSVC(ClassifierMixin, BaseEstimator):
    """A drop-in for ``LinearSVC(C)`` (squared hinge, L2, regularised bias) fitting all classes
    at once with :func:`solve`. ``classes_``, ``coef_``, ``intercept_``, ``decision_function``
    and ``predict`` behave as scikit-learn's (two classes: one problem, positive =
    ``classes_[1]``, a 1-D decision function).
    """

    def __init__(self, C: float = DEFAULT_C, tol: float = 1e-5, max_iter: int = 50,
                 backend: str = "numpy"):
        self.C, self.tol, self.max_iter, self.backend = C, tol, max_iter, backend

    def fit(self, x, y):
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError("at least two classes are needed")
        if len(self.classes_) == 2:
            signs = np.where(y == self.classes_[1], 1.0, -1.0)[:, None]
        else:
            signs = np.where(y[:, None] == self.classes_[None, :], 1.0, -1.0)
        self.coef_, self.intercept_, self.info_ = solve(
            x, signs, self.C, tol=self.tol, max_iter=self.max_iter, backend=self.backend)
        self.n_features_in_ = np.asarray(x).shape[1]
        return self

    def decision_function(self, x):
        scores = np.asarray(x, np.float64) @ self.coef_.T + self.intercept_
        return scores[:, 0] if len(self.classes_) == 2 else scores

    def predict(self, x):
        scores = self.decision_function(x)
        if scores.ndim == 1:
            return self.classes_[(scores > 0).astype(int)]
        return self.classes_[np.argmax(scores, axis=1)]
