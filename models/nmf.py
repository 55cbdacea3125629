"""Nonnegative matrix factorization ``Y ≈ W H`` with an l2 penalty, by alternating nonnegative least squares."""

from __future__ import annotations

from typing import Any

import cvxpy as cp
import numpy as np

from multiconvex.globalopt.checks import check_array, check_rank, check_scalar

from ._base import CvxpyModel, Estimator
from ._pyomo import factorization, set_values

__all__ = ["NonnegativeMatrixFactorization"]


class NonnegativeMatrixFactorization(Estimator):
    """NMF fitted by alternating convex (nonnegative least-squares) solves.

    Minimises ``½‖Y − W H‖²_F + (α/2)(‖W‖²_F + ‖H‖²_F)`` over ``W >= 0``
    (m × k) and ``H >= 0`` (k × n); blocks ``[[W], [H]]``.

    Parameters
    ----------
    rank : int
        Number of components ``k >= 1`` (scikit-learn's ``n_components``).
    alpha : float, default 0.0
        l2 penalty ``α >= 0`` on both factors. scikit-learn scales its penalty
        by the data size: ``NMF(alpha_W=a, alpha_H=b, l1_ratio=0)`` on an
        ``m × n`` matrix puts ``a·n`` on W and ``b·m`` on H, so it matches this
        model with ``alpha = a * n_features = b * n_samples``.
    seed : int or None, default None
        Seed of the start, drawn exactly like scikit-learn's ``init="random"``
        with ``random_state=seed``: ``|N(0,1)| * sqrt(Y.mean() / k)``.

    Attributes
    ----------
    W_ : ndarray of shape (m, k)
    H_ : ndarray of shape (k, n)
    components_ : ndarray of shape (k, n)
        ``H_``, as in scikit-learn.
    reconstruction_err_ : float
        ``‖Y − W_ H_‖_F``, as in scikit-learn.
    objective_ : float
        Final objective value (``result_.objective``).
    n_iter_ : int
        Outer iterations run.
    result_ : multiconvex.Result
    cvxpy_model_ : CvxpyModel

    Examples
    --------
    >>> import numpy as np
    >>> from multiconvex.models import NonnegativeMatrixFactorization
    >>> Y = np.abs(np.random.default_rng(0).standard_normal((20, 10)))
    >>> nmf = NonnegativeMatrixFactorization(rank=3, seed=0).fit(Y, solver="clarabel")
    >>> bool(nmf.W_.min() >= 0 and nmf.H_.min() >= 0), nmf.components_.shape
    (True, (3, 10))
    """

    def __init__(self, rank: int, alpha: float = 0.0, seed: int | None = None):
        self.rank = rank
        self.alpha = alpha
        self.seed = seed

    def _validate(self, Y: Any, where: str) -> tuple[np.ndarray, int, float]:
        rank = check_rank(self.rank, where=where)
        alpha = check_scalar(self.alpha, name="alpha", where=where)
        Y = check_array(Y, name="Y", where=where, ndim=2, nonneg=True)
        return Y, rank, alpha

    def to_cvxpy(self, Y: np.ndarray) -> CvxpyModel:
        """The NMF problem in cvxpy, ``W`` and ``H`` declared ``nonneg=True``; blocks ``[[W], [H]]``."""
        Y, k, alpha = self._validate(Y, f"{type(self).__name__}.to_cvxpy")
        m, n = Y.shape
        W = cp.Variable((m, k), nonneg=True, name="W")
        H = cp.Variable((k, n), nonneg=True, name="H")
        objective = 0.5 * cp.sum_squares(Y - W @ H) + (alpha / 2) * (
            cp.sum_squares(W) + cp.sum_squares(H)
        )
        return CvxpyModel(cp.Problem(cp.Minimize(objective)), [[W], [H]], {"W": W, "H": H})

    def to_pyomo(self, Y: np.ndarray):
        """The same problem as a Pyomo model, ``W``, ``H`` in ``NonNegativeReals``; blocks ``[[W], [H]]``.

        The variables start at the seeded `initial_point` (scikit-learn's random init).
        """
        Y, k, alpha = self._validate(Y, f"{type(self).__name__}.to_pyomo")
        pm = factorization(Y, k, alpha, nonneg=True, names=("W", "H"), right_transposed=False)
        return set_values(pm, self.initial_point(Y))

    def objective_at(self, Y: np.ndarray, W: np.ndarray, H: np.ndarray) -> float:
        """``½‖Y − W H‖²_F + (α/2)(‖W‖²_F + ‖H‖²_F)`` in numpy, with this model's α."""
        alpha = check_scalar(self.alpha, name="alpha", where=f"{type(self).__name__}.objective_at")
        Y, W, H = (np.asarray(a, dtype=float) for a in (Y, W, H))
        return float(
            0.5 * np.sum((Y - W @ H) ** 2) + 0.5 * alpha * (np.sum(W**2) + np.sum(H**2))
        )

    def initial_point(self, Y: np.ndarray) -> dict[str, np.ndarray]:
        """scikit-learn's ``init="random"`` start with ``random_state=seed`` (H drawn first)."""
        Y, k, _ = self._validate(Y, f"{type(self).__name__}.initial_point")
        m, n = Y.shape
        rng = np.random.RandomState(self.seed)  # same stream as sklearn's check_random_state
        avg = np.sqrt(Y.mean() / k)
        H = np.abs(avg * rng.standard_normal(size=(k, n)))
        W = np.abs(avg * rng.standard_normal(size=(m, k)))
        return {"W": W, "H": H}

    def fit(self, Y: np.ndarray, y: None = None, *, init: Any = None, **solve_kwargs: Any):
        """Fit ``W_``, ``H_`` by :func:`multiconvex.solve`.

        Parameters
        ----------
        Y : ndarray of shape (m, n)
            Nonnegative, finite data.
        y : None
            Ignored (scikit-learn signature).
        init : None, mapping or any, optional
            None: the seeded start `initial_point`. A mapping ``{"W": ..., "H": ...}``
            (either or both, nonnegative) overrides it. Anything else goes to
            ``mc.solve(..., init=init)`` unchanged.
        **solve_kwargs
            Passed to :func:`multiconvex.solve`.

        Returns
        -------
        self
        """
        where = f"{type(self).__name__}.fit"
        Y, _, _ = self._validate(Y, where)
        model = self.to_cvxpy(Y)
        self._fit_model(model, default_init=self.initial_point(Y), init=init, solve_kwargs=solve_kwargs,
                        where=where)
        # Solver round-off can leave tiny negatives; the model's W, H are nonnegative.
        self.W_ = np.maximum(np.array(model.variables["W"].value, dtype=float), 0.0)
        self.H_ = np.maximum(np.array(model.variables["H"].value, dtype=float), 0.0)
        self.components_ = self.H_
        self.reconstruction_err_ = float(np.linalg.norm(Y - self.W_ @ self.H_, "fro"))
        return self
