"""A bilinear program with disjoint polyhedral constraints: every block subproblem is an LP.

``min_{x, y}  xᵀ Q y + cᵀ x + dᵀ y``  s.t.  ``A1 x ≤ b1``, ``A2 y ≤ b2``,
``lx ≤ x ≤ ux``, ``ly ≤ y ≤ uy``.

With ``y`` fixed the problem is an LP in ``x`` and vice versa, so LP backends
(HiGHS, ...) can run the blocks. Alternating LPs decrease the objective
monotonically and stop at a **partial minimum** (each block optimal with the
other fixed, R&R Def 5.8), typically a pair of vertices. That point is *not*
necessarily a global (or even local) minimum: bilinear programming is NP-hard
in general, and different starts reach different partial minima.
"""

from __future__ import annotations

from typing import Any

import cvxpy as cp
import numpy as np
from scipy.optimize import linprog

from multiconvex.errors import InvalidInputError
from multiconvex.globalopt.checks import check_array

from ._base import CvxpyModel, Estimator
from ._pyomo import bilinear, set_values

__all__ = ["BilinearProgram"]

Bounds = tuple[Any, Any]


class BilinearProgram(Estimator):
    """The bilinear program ``min xᵀQy + cᵀx + dᵀy`` over two polytopes; blocks ``[[x], [y]]``.

    The data ``Q, c, d, A1, b1, A2, b2`` are constructor parameters, so ``fit`` takes no ``X``: it has
    scikit-learn's parameter manners (``get_params``, ``clone``) but is not a data estimator, and
    scikit-learn's estimator checks, which fit on generated data, do not apply.

    Parameters
    ----------
    Q : ndarray of shape (n, p)
    c : ndarray of shape (n,)
    d : ndarray of shape (p,)
    A1 : ndarray of shape (m1, n) or None
    b1 : ndarray of shape (m1,) or None
        Constraints ``A1 x ≤ b1`` (None: only the box).
    A2 : ndarray of shape (m2, p) or None
    b2 : ndarray of shape (m2,) or None
        Constraints ``A2 y ≤ b2`` (None: only the box).
    x_bounds, y_bounds : (lower, upper), default (0.0, 1.0)
        Finite box bounds, scalars or vectors; they keep every LP bounded.
    seed : int or None, default None
        Seed of the random feasible start used when ``fit`` gets no ``init``.

    Attributes
    ----------
    x_ : ndarray of shape (n,)
    y_ : ndarray of shape (p,)
    objective_ : float
    n_iter_ : int
    result_ : multiconvex.Result
        ``result_.certificate.is_partial_minimum`` says whether each block is
        optimal with the other fixed; it says nothing about global optimality.
    cvxpy_model_ : CvxpyModel

    Examples
    --------
    >>> from multiconvex.models import BilinearProgram
    >>> bp = BilinearProgram.random(n=5, m=3, seed=0)
    >>> bp.Q.shape, bp.A1.shape
    ((5, 5), (3, 5))
    >>> bp.fit(solver="highs").result_.certificate.is_partial_minimum
    True
    """

    def __init__(
        self,
        Q: np.ndarray,
        c: np.ndarray,
        d: np.ndarray,
        A1: np.ndarray | None = None,
        b1: np.ndarray | None = None,
        A2: np.ndarray | None = None,
        b2: np.ndarray | None = None,
        x_bounds: Bounds = (0.0, 1.0),
        y_bounds: Bounds = (0.0, 1.0),
        seed: int | None = None,
    ):
        self.Q = Q
        self.c = c
        self.d = d
        self.A1 = A1
        self.b1 = b1
        self.A2 = A2
        self.b2 = b2
        self.x_bounds = x_bounds
        self.y_bounds = y_bounds
        self.seed = seed

    @classmethod
    def random(cls, n: int, m: int, seed: int | None = None) -> BilinearProgram:
        """A random bounded, feasible instance with ``x, y ∈ [0, 1]^n`` and ``m`` rows per block.

        Q, c, d and the constraint matrices are standard normal; each ``b``
        is ``A z + s`` for a point ``z`` inside the box and a slack
        ``s ∈ [0.1, 1]^m``, so ``z`` is strictly feasible.
        """
        for name, val, low in (("n", n, 1), ("m", m, 0)):
            if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < low:
                raise InvalidInputError(
                    f"BilinearProgram.random: {name} must be an integer >= {low}, got {val!r}."
                )
        rng = np.random.default_rng(seed)
        Q = rng.standard_normal((n, n))
        c = rng.standard_normal(n)
        d = rng.standard_normal(n)
        A1 = rng.standard_normal((m, n))
        A2 = rng.standard_normal((m, n))
        x0 = rng.uniform(0.25, 0.75, n)
        y0 = rng.uniform(0.25, 0.75, n)
        b1 = A1 @ x0 + rng.uniform(0.1, 1.0, m)
        b2 = A2 @ y0 + rng.uniform(0.1, 1.0, m)
        return cls(Q, c, d, A1, b1, A2, b2, (0.0, 1.0), (0.0, 1.0), seed=seed)

    # -- validation ------------------------------------------------------------
    def _data(self, where: str) -> dict[str, np.ndarray]:
        Q = check_array(self.Q, name="Q", where=where, ndim=2)
        n, p = Q.shape
        data = {
            "Q": Q,
            "c": check_array(self.c, name="c", where=where, shape=(n,)),
            "d": check_array(self.d, name="d", where=where, shape=(p,)),
        }
        for A_name, b_name, size, bounds_name in (
            ("A1", "b1", n, "x_bounds"),
            ("A2", "b2", p, "y_bounds"),
        ):
            A, b = getattr(self, A_name), getattr(self, b_name)
            if (A is None) != (b is None):
                raise InvalidInputError(
                    f"{where}: give both {A_name} and {b_name} or neither "
                    f"(got {A_name}={'None' if A is None else 'array'}, "
                    f"{b_name}={'None' if b is None else 'array'})."
                )
            if A is None:
                A, b = np.zeros((0, size)), np.zeros(0)
            else:
                A = check_array(A, name=A_name, where=where, ndim=2)
                if A.shape[1] != size:
                    raise InvalidInputError(
                        f"{where}: {A_name} has {A.shape[1]} columns, expected {size} "
                        f"(the length of {'x' if A_name == 'A1' else 'y'}, from Q's shape {Q.shape})."
                    )
                b = check_array(b, name=b_name, where=where, shape=(A.shape[0],))
            data[A_name], data[b_name] = A, b
            lo, hi = self._bounds(getattr(self, bounds_name), bounds_name, size, where)
            data[bounds_name + "_lo"], data[bounds_name + "_hi"] = lo, hi
        return data

    @staticmethod
    def _bounds(bounds: Any, name: str, size: int, where: str) -> tuple[np.ndarray, np.ndarray]:
        try:
            lo, hi = bounds
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"{where}: {name} must be a pair (lower, upper), got {bounds!r}."
            ) from exc
        lo = np.broadcast_to(check_array(lo, name=f"{name}[0]", where=where), (size,)).copy()
        hi = np.broadcast_to(check_array(hi, name=f"{name}[1]", where=where), (size,)).copy()
        if (lo > hi).any():
            i = int(np.argmax(lo > hi))
            raise InvalidInputError(
                f"{where}: {name} is empty at index {i} (lower {lo[i]:g} > upper {hi[i]:g})."
            )
        return lo, hi

    # -- model -------------------------------------------------------------------
    def to_cvxpy(self) -> CvxpyModel:
        """The program in cvxpy with blocks ``[[x], [y]]`` (each an LP when the other is fixed)."""
        data = self._data(f"{type(self).__name__}.to_cvxpy")
        n, p = data["Q"].shape
        x = cp.Variable(n, name="x")
        y = cp.Variable(p, name="y")
        objective = x @ data["Q"] @ y + data["c"] @ x + data["d"] @ y
        constraints = [
            x >= data["x_bounds_lo"],
            x <= data["x_bounds_hi"],
            y >= data["y_bounds_lo"],
            y <= data["y_bounds_hi"],
        ]
        if data["A1"].shape[0]:
            constraints.append(data["A1"] @ x <= data["b1"])
        if data["A2"].shape[0]:
            constraints.append(data["A2"] @ y <= data["b2"])
        problem = cp.Problem(cp.Minimize(objective), constraints)
        return CvxpyModel(problem, [[x], [y]], {"x": x, "y": y})

    def to_pyomo(self):
        """The same program as a Pyomo model with blocks ``[[x], [y]]`` (bounds on the variables).

        The variables start at the seeded `feasible_point`.
        """
        return set_values(bilinear(self._data(f"{type(self).__name__}.to_pyomo")), self.feasible_point())

    def objective_at(self, x: np.ndarray, y: np.ndarray) -> float:
        """``xᵀ Q y + cᵀ x + dᵀ y`` in numpy (feasibility is not checked)."""
        data = self._data(f"{type(self).__name__}.objective_at")
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        return float(x @ data["Q"] @ y + data["c"] @ x + data["d"] @ y)

    def feasible_point(self) -> dict[str, np.ndarray]:
        """A seeded feasible start: a vertex of each polytope for a random linear objective.

        Uses :func:`scipy.optimize.linprog` (HiGHS). Raises InvalidInputError
        if either polytope is empty.
        """
        where = f"{type(self).__name__}.feasible_point"
        data = self._data(where)
        rng = np.random.default_rng(self.seed)
        point = {}
        for name, A, b, bounds in (
            ("x", data["A1"], data["b1"], "x_bounds"),
            ("y", data["A2"], data["b2"], "y_bounds"),
        ):
            lo, hi = data[bounds + "_lo"], data[bounds + "_hi"]
            res = linprog(
                rng.standard_normal(lo.size),
                A_ub=A if A.shape[0] else None,
                b_ub=b if A.shape[0] else None,
                bounds=np.column_stack([lo, hi]),
                method="highs",
            )
            if res.status != 0:
                raise InvalidInputError(
                    f"{where}: no feasible {name} found ({res.message.strip()}); "
                    f"check {'A1, b1' if name == 'x' else 'A2, b2'} and {bounds}."
                )
            point[name] = np.clip(res.x, lo, hi)
        return point

    def fit(self, *, init: Any = None, **solve_kwargs: Any):
        """Alternate the two LPs by :func:`multiconvex.solve` until a partial minimum.

        Parameters
        ----------
        init : None, mapping or any, optional
            None: the seeded `feasible_point`. A mapping ``{"x": ..., "y": ...}``
            (either or both) overrides it. Anything else goes to ``mc.solve``.
        **solve_kwargs
            Passed to :func:`multiconvex.solve` (e.g. ``solver="highs"``).

        Returns
        -------
        self
        """
        where = f"{type(self).__name__}.fit"
        self._data(where)
        model = self.to_cvxpy()
        self._fit_model(model, default_init=self.feasible_point(), init=init, solve_kwargs=solve_kwargs,
                        where=where)
        self.x_ = np.array(model.variables["x"].value, dtype=float)
        self.y_ = np.array(model.variables["y"].value, dtype=float)
        return self
