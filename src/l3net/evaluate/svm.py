"""A one-vs-all linear SVM that trains on dense features in seconds: Table 2's classifier.

It minimises exactly scikit-learn ``LinearSVC``'s objective (L2 penalty, squared hinge loss,
one-vs-rest), so ``C`` means the same, for all classes at once:

    0.5 * ||W||^2 + C * sum_i sum_k max(0, 1 - y_ik (x_i . w_k + b_k))^2,   y_ik = +1 if i is in k else -1

but by L-BFGS (``scipy.optimize``) on dense BLAS matrix products instead of liblinear's sparse
coordinate loops. The intercept is not penalised (LinearSVC penalises it as a constant feature).
Why: on this project's 2-core CPU, ``LinearSVC`` took 7 minutes for one ESC-50 fold of 2,000
training subclips of 1536-D features (the small preset) and would take hours on the full 16,000;
this estimator fits the same problem in seconds (benchmarks/eval_sound.py). It is a scikit-learn
estimator (``fit`` / ``decision_function`` / ``predict``, ``get_params``), so it composes with
``make_pipeline`` and ``GridSearchCV``.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import scipy.optimize
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_array, check_is_fitted, check_X_y
from threadpoolctl import threadpool_limits

#: Multiply-adds per matrix product below which BLAS runs on one thread.
SMALL_PRODUCT = 20_000_000


def blas_threads(multiply_adds: int) -> int | None:
    """BLAS threads for products of this size: one for small products or a busy machine, else BLAS's own
    choice. Threaded BLAS on an oversubscribed CPU spins instead of working: on a 2-core machine at load
    10, one 2000 x 1536 x 50 fit took 89 s with 2 threads and 23 s with one; 130 x 1536 x 4 products
    took 3.9 ms instead of 0.12 ms."""
    if multiply_adds < SMALL_PRODUCT:
        return 1
    try:
        busy = os.getloadavg()[0] >= (os.cpu_count() or 1)
    except (AttributeError, OSError):  # no load average on this platform
        busy = False
    return 1 if busy else None


class LinearSVM(ClassifierMixin, BaseEstimator):
    """One-vs-all linear SVM (squared hinge, L2), solved jointly by L-BFGS.

    ``C``: inverse regularisation, as in ``LinearSVC``. ``max_iter``: L-BFGS iterations.
    ``tol``: stop when the objective improves by less than this fraction in an iteration.
    """

    def __init__(self, C: float = 1.0, max_iter: int = 500, tol: float = 1e-6) -> None:
        self.C = C
        self.max_iter = max_iter
        self.tol = tol

    def fit(self, X: np.ndarray, y: np.ndarray) -> "LinearSVM":
        X, y = check_X_y(X, y, dtype=[np.float32, np.float64])
        self.n_features_in_ = X.shape[1]
        if not self.C > 0:
            raise ValueError(f"C must be positive, got {self.C}")
        self.classes_, index = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"need at least two classes to train on, got {len(self.classes_)}")
        n, d = X.shape
        # Two classes are one binary problem (positive = classes_[1]), like LinearSVC.
        k = 1 if len(self.classes_) == 2 else len(self.classes_)
        targets = -np.ones((n, k), dtype=X.dtype)
        if k == 1:
            targets[index == 1, 0] = 1
        else:
            targets[np.arange(n), index] = 1
        C = float(self.C)

        def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
            W = theta[: d * k].reshape(d, k).astype(X.dtype, copy=False)
            b = theta[d * k :].astype(X.dtype, copy=False)
            slack = np.maximum(0.0, 1.0 - targets * (X @ W + b))
            loss = 0.5 * float(np.dot(theta[: d * k], theta[: d * k])) + C * float(np.sum(slack * slack, dtype=np.float64))
            dscores = (-2.0 * C) * targets * slack
            grad_w = W + X.T @ dscores
            return loss, np.concatenate([grad_w.ravel(), dscores.sum(axis=0)]).astype(np.float64)

        with threadpool_limits(limits=blas_threads(n * d * k), user_api="blas"):
            result = scipy.optimize.minimize(
                objective, np.zeros(d * k + k), jac=True, method="L-BFGS-B",
                options={"maxiter": self.max_iter, "ftol": self.tol, "gtol": 1e-8},
            )
        if not result.success and result.nit >= self.max_iter:
            warnings.warn(f"LinearSVM did not converge in {self.max_iter} iterations", ConvergenceWarning)
        self.coef_ = result.x[: d * k].reshape(d, k).T.astype(X.dtype)
        self.intercept_ = result.x[d * k :].astype(X.dtype)
        self.n_iter_ = int(result.nit)
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Scores ``(N, classes)``, or ``(N,)`` for two classes (positive: ``classes_[1]``)."""
        check_is_fitted(self)
        X = check_array(X, dtype=[np.float32, np.float64])
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but this SVM was fitted on {self.n_features_in_}")
        scores = X @ self.coef_.T + self.intercept_
        return scores.ravel() if scores.shape[1] == 1 else scores

    def predict(self, X: np.ndarray) -> np.ndarray:
        scores = self.decision_function(X)
        index = (scores > 0).astype(int) if scores.ndim == 1 else scores.argmax(axis=1)
        return self.classes_[index]
