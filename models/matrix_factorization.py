"""Regularised matrix factorization ``Y ≈ U Vᵀ`` and its closed-form convex optimum.

THEORY.md §4 (H&V): with ``φ(u, v) = u vᵀ`` and ``θ = (‖u‖² + ‖v‖²)/2`` the
induced convex problem is ``min_X ½‖Y − X‖²_F + λ‖X‖_*``, solved by singular
value soft-thresholding (`svt_optimum`); its polar is the largest singular
value, so ``σ_max(Y − U Vᵀ) ≤ λ`` certifies a factorization as global.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cvxpy as cp
import numpy as np

from multiconvex.errors import InvalidInputError
from multiconvex.globalopt import GrowOptions, grow
from multiconvex.globalopt.checks import check_array, check_rank, check_scalar
from multiconvex.globalopt.mf_problem import MFGrowProblem, MFState
from multiconvex.solvers import get_backend

from ._base import CvxpyModel, Estimator
from ._pyomo import factorization, set_values

__all__ = ["MatrixFactorization", "svt_optimum"]


def svt_optimum(Y: np.ndarray, lam: float) -> tuple[np.ndarray, float]:
    """Global optimum of ``½‖Y − X‖²_F + λ‖X‖_*`` by singular value soft-thresholding.

    Parameters
    ----------
    Y : ndarray of shape (m, n)
        Data matrix (finite).
    lam : float
        Nuclear-norm weight, ``lam >= 0``.

    Returns
    -------
    X : ndarray of shape (m, n)
        The minimiser ``U diag(max(σ − λ, 0)) Vᵀ`` from the SVD ``Y = U diag(σ) Vᵀ``.
    value : float
        The optimal value. It equals the optimum of `MatrixFactorization` with
        the same ``lam`` whenever its rank is at least ``rank(X)``.

    Examples
    --------
    >>> import numpy as np
    >>> X, value = svt_optimum(np.diag([3.0, 1.0]), lam=2.0)
    >>> X.round(6).tolist(), round(value, 6)
    ([[1.0, 0.0], [0.0, 0.0]], 4.5)
    """
    where = "svt_optimum"
    Y = check_array(Y, name="Y", where=where, ndim=2)
    lam = check_scalar(lam, name="lam", where=where)
    left, sigma, right_t = np.linalg.svd(Y, full_matrices=False)
    shrunk = np.maximum(sigma - lam, 0.0)
    X = (left * shrunk) @ right_t
    # ½‖Y − X‖² = ½ Σ min(σ, λ)² because Y − X has singular values min(σ, λ).
    value = 0.5 * float(np.sum(np.minimum(sigma, lam) ** 2)) + lam * float(shrunk.sum())
    return X, value


class MatrixFactorization(Estimator):
    """Low-rank factorization ``Y ≈ U Vᵀ`` with weight decay, fitted by alternating convex solves.

    Minimises ``½‖Y − U Vᵀ‖²_F + (λ/2)(‖U‖²_F + ‖V‖²_F)`` over ``U`` (m × k)
    and ``V`` (n × k) — the same as ``½‖Y − U Vᵀ‖²_F + λ Σ_j ½(‖u_j‖² + ‖v_j‖²)``, a sum of
    ``k`` parallel subnetworks ``u_j v_jᵀ`` (THEORY.md §4). Blocks ``[[U], [V]]``: each block
    subproblem is a least-squares QP. Its global optimum equals `svt_optimum` once
    ``k >= rank`` of the SVT solution.

    ``fit(Y, algorithm="grow")`` runs the meta-algorithm of :mod:`multiconvex.globalopt`: it
    chooses ``k`` itself (starting from ``rank`` seeded random columns, or from the zero
    factorization when ``rank`` is None), and ends with
    a global certificate: ``result_.certificate.global_optimal``, ``.polar`` (``σ_max(Y − U Vᵀ)``,
    exact) and ``.globalopt`` (λ, stationarity, proven lower bound and gap), and
    ``result_.subnetworks`` (the final ``k``).

    Parameters
    ----------
    rank : int or None
        Number of factors ``k >= 1``; required except for ``algorithm="grow"``, where it is the
        number of columns of the seeded start (None: start from zero columns; the first round
        then appends the top singular pairs of Y).
    lam : float, default 0.0
        Weight decay ``λ >= 0`` (the nuclear-norm weight of the convex problem).
    seed : int or None, default None
        Seed of the random start (standard normal, scaled to the data).

    Attributes
    ----------
    U_ : ndarray of shape (m, k)
    V_ : ndarray of shape (n, k)
    components_ : ndarray of shape (k, n)
        ``V_.T``, so that ``Y ≈ U_ @ components_`` (scikit-learn's convention).
    X_ : ndarray of shape (m, n)
        The reconstruction ``U_ @ V_.T``.
    objective_ : float
        Final objective value (``result_.objective``).
    polar_ : float
        ``σ_max(Y − X_)``, the polar of the negative gradient (H&V Cor. 1). At a
        partial minimum, ``polar_ <= lam`` (to tolerance) certifies global optimality.
    n_iter_ : int
        Outer iterations run.
    result_ : multiconvex.Result
        The full result (status, history, certificate, timings).
    cvxpy_model_ : CvxpyModel
        The problem that was solved; its variables hold the final point.

    Examples
    --------
    >>> import numpy as np
    >>> from multiconvex.models import MatrixFactorization, svt_optimum
    >>> Y = np.random.default_rng(0).standard_normal((20, 15))
    >>> mf = MatrixFactorization(rank=3, lam=6.0, seed=0).fit(Y, solver="clarabel")
    >>> X_star, value = svt_optimum(Y, 6.0)  # rank(X_star) = 2 <= 3, so the optima agree
    >>> abs(mf.objective_ - value) < 1e-5 * value
    True
    >>> g = MatrixFactorization(lam=6.0, seed=0).fit(Y, algorithm="grow")
    >>> g.result_.certificate.global_optimal, abs(g.objective_ - value) < 1e-8 * value
    (True, True)
    """

    def __init__(self, rank: int | None = None, lam: float = 0.0, seed: int | None = None):
        self.rank = rank
        self.lam = lam
        self.seed = seed

    # -- model ---------------------------------------------------------------
    def _validate(self, Y: Any, where: str, grow: bool = False) -> tuple[np.ndarray, int, float]:
        if self.rank is None and not grow:
            raise InvalidInputError(f"{where}: rank must be an integer >= 1, got None; pass rank=k, or use "
                                    "fit(Y, algorithm='grow'), which chooses the number of factors itself.")
        rank = 1 if self.rank is None else check_rank(self.rank, where=where)
        lam = check_scalar(self.lam, name="lam", where=where)
        Y = check_array(Y, name="Y", where=where, ndim=2)
        return Y, rank, lam

    def to_cvxpy(self, Y: np.ndarray) -> CvxpyModel:
        """The factorization as a cvxpy problem with blocks ``[[U], [V]]``.

        The objective is written so that fixing either block leaves a DPP
        problem (a parameter times a parameter-free expression).
        """
        Y, k, lam = self._validate(Y, f"{type(self).__name__}.to_cvxpy")
        m, n = Y.shape
        U = cp.Variable((m, k), name="U")
        V = cp.Variable((n, k), name="V")
        objective = 0.5 * cp.sum_squares(Y - U @ V.T) + (lam / 2) * (
            cp.sum_squares(U) + cp.sum_squares(V)
        )
        return CvxpyModel(cp.Problem(cp.Minimize(objective)), [[U], [V]], {"U": U, "V": V})

    def to_pyomo(self, Y: np.ndarray):
        """The same problem as a Pyomo model (``multiconvex.pyomo_front.PyomoModel``), blocks ``[[U], [V]]``.

        ``V`` is indexed ``V[j, a]`` (n × k), as in ``to_cvxpy``. The variables start at the
        seeded `initial_point` (all-zero factors are a stationary point).
        """
        Y, k, lam = self._validate(Y, f"{type(self).__name__}.to_pyomo")
        pm = factorization(Y, k, lam, nonneg=False, names=("U", "V"), right_transposed=True)
        return set_values(pm, self.initial_point(Y))

    def objective_at(self, Y: np.ndarray, U: np.ndarray, V: np.ndarray) -> float:
        """``½‖Y − U Vᵀ‖²_F + (λ/2)(‖U‖²_F + ‖V‖²_F)`` in numpy, with this model's λ."""
        lam = check_scalar(self.lam, name="lam", where=f"{type(self).__name__}.objective_at")
        Y, U, V = (np.asarray(a, dtype=float) for a in (Y, U, V))
        return float(
            0.5 * np.sum((Y - U @ V.T) ** 2) + 0.5 * lam * (np.sum(U**2) + np.sum(V**2))
        )

    def initial_point(self, Y: np.ndarray) -> dict[str, np.ndarray]:
        """The seeded start: standard normal factors scaled so ``U Vᵀ`` matches Y's size
        (``rank`` columns; 1 when ``rank`` is None)."""
        Y, k, _ = self._validate(Y, f"{type(self).__name__}.initial_point", grow=True)
        m, n = Y.shape
        rng = np.random.default_rng(self.seed)
        scale = np.sqrt(np.sqrt(np.mean(Y**2)) / k)
        return {
            "U": scale * rng.standard_normal((m, k)),
            "V": scale * rng.standard_normal((n, k)),
        }

    # -- estimator -------------------------------------------------------------
    def fit(self, Y: np.ndarray, y: None = None, *, init: Any = None, **solve_kwargs: Any):
        """Fit ``U_``, ``V_`` by :func:`multiconvex.solve`.

        Parameters
        ----------
        Y : ndarray of shape (m, n)
            Data matrix (finite).
        y : None
            Ignored (scikit-learn signature).
        init : None, mapping or any, optional
            None: the seeded start `initial_point`. A mapping ``{"U": ..., "V": ...}``
            (either or both) overrides the seeded start. Anything else goes to
            ``mc.solve(..., init=init)`` unchanged.
        **solve_kwargs
            Passed to :func:`multiconvex.solve` (``algorithm``, ``solver``,
            ``max_iters``, ``tol``, ...). With ``algorithm="grow"``: the options of
            :class:`multiconvex.globalopt.GrowOptions` (``max_subnetworks``, ``max_rounds``,
            ``max_iters`` per round, ``time_limit``, ``tol``, ``polar_tol``, ``gap_tol``,
            ``n_maximisers``). Its block subproblems (ridge regressions) are solved in closed
            form, so ``solver`` is checked but not called; ``cvxpy_model_`` is None then.

        Returns
        -------
        self
        """
        where = f"{type(self).__name__}.fit"
        if solve_kwargs.get("algorithm") == "grow":
            return self._fit_grow(Y, init, dict(solve_kwargs), where)
        Y, _, lam = self._validate(Y, where)
        model = self.to_cvxpy(Y)
        self._fit_model(model, default_init=self.initial_point(Y), init=init, solve_kwargs=solve_kwargs,
                        where=where)
        self.U_ = np.array(model.variables["U"].value, dtype=float)
        self.V_ = np.array(model.variables["V"].value, dtype=float)
        self.components_ = self.V_.T
        self.X_ = self.U_ @ self.V_.T
        self.polar_ = float(np.linalg.norm(Y - self.X_, ord=2))
        return self

    def _fit_grow(self, Y: Any, init: Any, kwargs: dict[str, Any], where: str):
        Y, _, lam = self._validate(Y, where, grow=True)
        kwargs.pop("algorithm")
        solver = kwargs.pop("solver", None)
        if solver is not None and not (isinstance(solver, str) and solver.lower() == "auto"):
            for name in [solver] if isinstance(solver, str) else list(solver):
                get_backend(name)  # an unknown name is a clear error before any work
        known = {f.name for f in GrowOptions.__dataclass_fields__.values()} - {"info"}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise InvalidInputError(f"{where}: algorithm='grow' does not take {unknown}; its options are "
                                    f"{sorted(known)}.")
        if self.rank is None:
            start = {"U": np.zeros((Y.shape[0], 0)), "V": np.zeros((Y.shape[1], 0))}
        else:
            start = self.initial_point(Y)
        if init is not None:
            if not (isinstance(init, Mapping) and set(init) <= {"U", "V"}):
                raise InvalidInputError(f"{where}: with algorithm='grow', init must be a mapping with keys 'U' "
                                        "and/or 'V' (a warm start, any number of columns).")
            start.update({k: check_array(v, name=f"init[{k!r}]", where=where, ndim=2) for k, v in init.items()})
        U0, V0 = start["U"], start["V"]
        if U0.shape[0] != Y.shape[0] or V0.shape[0] != Y.shape[1] or U0.shape[1] != V0.shape[1]:
            raise InvalidInputError(f"{where}: init U {U0.shape} and V {V0.shape} do not fit Y {Y.shape}: "
                                    f"expected ({Y.shape[0]}, k) and ({Y.shape[1]}, k).")
        problem = MFGrowProblem(Y, lam, seed=self.seed)
        result, state = grow(problem, MFState(U0.copy(), V0.copy()), GrowOptions(**kwargs))
        result.backends_used = {"closed-form": result.iterations}
        self.result_ = result
        self.cvxpy_model_ = None
        self.objective_ = float(result.objective)
        self.n_iter_ = int(result.iterations)
        self.U_, self.V_ = state.U.copy(), state.V.copy()
        self.components_ = self.V_.T
        self.X_ = self.U_ @ self.V_.T
        self.polar_ = float(result.certificate.polar)
        return self
