"""The single ReLU neuron of Rister & Rubin §8: local minima arbitrarily far apart.

``f(a, b) = Σ (y − [a x + b]_+)²`` on ``D = {(0, 1/2), (−1, α), (1, 2α)}``,
``α > 1`` (THEORY.md §2). Six pieces, cut by the lines ``a x + b = 0``;
strict local minima ``(1/2 − α, 1/2)`` (value ``4α²``) and
``(2α − 1/2, 1/2)`` (value ``α²``). ``α²`` is the global minimum only for
``α > ≈1.8165``; below that the all-active least-squares line
``(α/2, α + 1/6)`` with value ``1.5 (α − 1/3)²`` is better.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import cvxpy as cp
import numpy as np

import multiconvex as mc
from multiconvex.errors import InvalidInputError
from multiconvex.globalopt.checks import check_array, check_scalar

from ._base import CvxpyModel, Estimator
from ._pyomo import set_values, single_neuron

__all__ = ["SingleReLUNeuron"]


class SingleReLUNeuron(Estimator):
    """One ReLU neuron ``x -> [a x + b]_+`` on R&R's three-point data set.

    One layer, so one block ``[[a, b]]``: each solve minimises ``f`` over the
    current piece (activation pattern), a small QP. Started inside the piece
    of a local minimum it stops there with a partial-minimum certificate,
    however bad that minimum is.

    Its data are fixed by ``alpha``, so ``fit`` takes no ``X``: it has scikit-learn's parameter
    manners (``get_params``, ``clone``) but is not a data estimator, and scikit-learn's estimator
    checks, which fit on generated data, do not apply.

    Parameters
    ----------
    alpha : float
        Data parameter ``α > 1``.
    seed : int or None, default None
        Seed of the random start used when ``fit`` gets no ``init``.

    Attributes
    ----------
    a_, b_ : float
        Fitted parameters.
    objective_ : float
        Final objective value (``result_.objective``).
    n_iter_ : int
    result_ : multiconvex.Result
    cvxpy_model_ : CvxpyModel

    Examples
    --------
    >>> from multiconvex.models import SingleReLUNeuron
    >>> neuron = SingleReLUNeuron(alpha=3.0)
    >>> [(ab, v) for ab, v in neuron.local_minima()]
    [((-2.5, 0.5), 36.0), ((5.5, 0.5), 9.0)]
    >>> neuron.objective_at(5.5, 0.5)
    9.0
    >>> neuron.fit(init=(-2.4, 0.6), solver="clarabel").result_.certificate.is_partial_minimum
    True
    >>> round(neuron.objective_, 6)  # stuck at the bad local minimum 4α²
    36.0
    """

    def __init__(self, alpha: float, seed: int | None = None):
        self.alpha = alpha
        self.seed = seed

    def _alpha(self, where: str) -> float:
        alpha = check_scalar(self.alpha, name="alpha", where=where, low=1.0, strict=True)
        return alpha

    # -- the data set and its closed forms -------------------------------------
    def dataset(self) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` = ``([0, −1, 1], [1/2, α, 2α])``."""
        alpha = self._alpha(f"{type(self).__name__}.dataset")
        return np.array([0.0, -1.0, 1.0]), np.array([0.5, alpha, 2.0 * alpha])

    def local_minima(self) -> list[tuple[tuple[float, float], float]]:
        """The two strict local minima ``((a, b), value)`` from R&R §8 (valid for α > 1)."""
        alpha = self._alpha(f"{type(self).__name__}.local_minima")
        return [
            ((0.5 - alpha, 0.5), 4.0 * alpha**2),
            ((2.0 * alpha - 0.5, 0.5), alpha**2),
        ]

    def objective_at(self, a: Any, b: Any) -> float | np.ndarray:
        """``Σ (y − [a x + b]_+)²`` in numpy; ``a`` and ``b`` broadcast (e.g. a grid for a plot)."""
        x, y = self.dataset()
        a = np.asarray(a, dtype=float)[..., None]
        b = np.asarray(b, dtype=float)[..., None]
        value = np.sum((y - np.maximum(a * x + b, 0.0)) ** 2, axis=-1)
        return float(value) if value.ndim == 0 else value

    def global_minimum(self) -> tuple[tuple[float, float], float]:
        """Global minimum ``((a, b), value)``, by solving the QP on each of the 8 sign patterns.

        On a pattern (alive / dead per sample) ``f`` is a convex quadratic and
        the pattern's region a polyhedron; the pieces cover the plane, so the
        best piece minimum is the global one. Uses cvxpy with Clarabel.
        """
        x, y = self.dataset()
        a, b = cp.Variable(), cp.Variable()
        best: tuple[tuple[float, float], float] | None = None
        for pattern in itertools.product((False, True), repeat=len(x)):
            alive = np.array(pattern)
            on, off = np.flatnonzero(alive), np.flatnonzero(~alive)
            pre = a * x + b
            loss = cp.sum_squares(y[on] - pre[on]) if on.size else cp.Constant(0.0)
            loss = loss + float(np.sum(y[off] ** 2))
            cons = [pre[i] >= 0 if alive[i] else pre[i] <= 0 for i in range(len(x))]
            prob = cp.Problem(cp.Minimize(loss), cons)
            prob.solve(solver=cp.CLARABEL)
            if a.value is None:
                continue
            point = (float(a.value), float(b.value))
            value = float(self.objective_at(*point))
            if best is None or value < best[1]:
                best = (point, value)
        assert best is not None  # the all-dead pattern always contains (0, 0)
        return best

    # -- cvxpy -------------------------------------------------------------------
    def to_cvxpy(self) -> CvxpyModel:
        """``Σ (y − mc.relu(a x + b))²`` with scalar ``a``, ``b`` and one block ``[[a, b]]``."""
        x, y = self.dataset()
        a = cp.Variable(name="a")
        b = cp.Variable(name="b")
        objective = cp.sum_squares(y - mc.relu(a * x + b))
        return CvxpyModel(cp.Problem(cp.Minimize(objective)), [[a, b]], {"a": a, "b": b})

    def to_pyomo(self):
        """The same problem as a Pyomo model: outputs tied to ``a x + b`` by ReLU relations; block ``[a, b]``.

        ``a``, ``b`` start at the seeded `initial_point`, the outputs at the values they imply.
        """
        x, y = self.dataset()
        start = self.initial_point()
        a0, b0 = float(start["a"]), float(start["b"])
        return set_values(single_neuron(x, y), {"a": a0, "b": b0, "out": np.maximum(a0 * x + b0, 0.0)})

    def initial_point(self) -> dict[str, np.ndarray]:
        """The seeded start: ``a ~ N(0, α²)``, ``b = |N(0, 1/4)|``.

        ``b >= 0`` keeps the unit alive at ``x = 0``; a start where every sample
        is dead is already a (useless) partial minimum: ``f`` is constant there.
        """
        alpha = self._alpha(f"{type(self).__name__}.initial_point")
        z = np.random.default_rng(self.seed).standard_normal(2)
        return {"a": np.asarray(alpha * z[0]), "b": np.asarray(0.5 * abs(z[1]))}

    def fit(self, X: None = None, y: None = None, *, init: Any = None, **solve_kwargs: Any):
        """Train the neuron from ``init`` by :func:`multiconvex.solve`.

        Parameters
        ----------
        X, y : None
            Ignored: the data set is fixed by ``alpha`` (see `dataset`).
        init : (a0, b0), mapping, or None
            Start point; a pair of numbers, or ``{"a": a0, "b": b0}``. None:
            the seeded `initial_point`. Anything else goes to ``mc.solve``.
        **solve_kwargs
            Passed to :func:`multiconvex.solve`.

        Returns
        -------
        self
        """
        where = f"{type(self).__name__}.fit"
        self._alpha(where)
        if X is not None or y is not None:
            raise InvalidInputError(
                f"{where}: the data set is fixed by alpha; call fit(init=(a0, b0), ...) "
                "without data."
            )
        if init is not None and not isinstance(init, Mapping) and np.ndim(init) == 1:
            ab = check_array(init, name="init", where=where, shape=(2,))
            init = {"a": ab[0], "b": ab[1]}
        model = self.to_cvxpy()
        self._fit_model(model, default_init=self.initial_point(), init=init, solve_kwargs=solve_kwargs,
                        where=where)
        self.a_ = float(model.variables["a"].value)
        self.b_ = float(model.variables["b"].value)
        return self
