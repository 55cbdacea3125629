"""Regularised matrix factorization ``Y ≈ U Vᵀ`` and its closed-form convex optimum.

THEORY.md §4 (H&V): with ``φ(u, v) = u vᵀ`` and ``θ = (‖u‖² + ‖v‖²)/2`` the
induced convex problem is ``min_X ½‖Y − X‖²_F + λ‖X‖_*``, solved by singular
value soft-thresholding (`svt_optimum`); its polar is the largest singular
value, so ``σ_max(Y − U Vᵀ) ≤ λ`` certifies a factorization as global.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import cvxpy as cp
import numpy as np
from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin

from multiconvex.errors import InvalidInputError
from multiconvex.globalopt import GrowOptions, grow, mf_polar
from multiconvex.globalopt.checks import check_array, check_rank, check_scalar
from multiconvex.globalopt.mf_problem import MFForm, MFGrowProblem, MFState
from multiconvex.solvers import get_backend
from multiconvex.validation import check_int, check_number, check_random_state

from ._base import DEPRECATED, CvxpyModel, Estimator, unchanged_on_error
from ._pyomo import factorization, set_values

__all__ = ["MatrixFactorization", "svt_optimum"]

ALGORITHMS = ("gauss-seidel", "jacobi", "grow")
# the defaults of max_iter and tol (None) per algorithm: mc.solve's, and grow's (per round, tighter)
_DEFAULTS = {"gauss-seidel": (100, 1e-6), "jacobi": (100, 1e-6), "grow": (500, 1e-9)}
_FIT_TIME = {"algorithm": "algorithm", "solver": "solver", "max_iters": "max_iter", "tol": "tol",
             "time_limit": "time_limit"}


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


class MatrixFactorization(ClassNamePrefixFeaturesOutMixin, TransformerMixin, Estimator):
    """Low-rank factorization ``Y ≈ U Vᵀ`` with weight decay, fitted by alternating convex solves.

    Minimises ``½‖Y − U Vᵀ‖²_F + (λ/2)(‖U‖²_F + ‖V‖²_F)`` over ``U`` (m × k)
    and ``V`` (n × k) — the same as ``½‖Y − U Vᵀ‖²_F + λ Σ_j ½(‖u_j‖² + ‖v_j‖²)``, a sum of
    ``k`` parallel subnetworks ``u_j v_jᵀ`` (THEORY.md §4). Blocks ``[[U], [V]]``: each block
    subproblem is a least-squares QP. Its global optimum equals `svt_optimum` once
    ``k >= rank`` of the SVT solution.

    A scikit-learn transformer like ``TruncatedSVD``: rows of ``Y`` are samples, ``components_ = Vᵀ``
    is what is learned, `transform` solves the ``U`` block (a ridge regression) for new rows with
    ``V`` fixed, `inverse_transform` maps codes back to ``U Vᵀ``.

    ``algorithm="grow"`` runs the meta-algorithm of :mod:`multiconvex.globalopt`: it
    chooses ``k`` itself (starting from ``n_components`` seeded random columns, or from the zero
    factorization when ``n_components`` is None), and ends with
    a global certificate: ``result_.certificate.global_optimal``, ``.polar`` (``σ_max(Y − U Vᵀ)``,
    exact) and ``.globalopt`` (λ, stationarity, proven lower bound and gap), and
    ``result_.subnetworks`` (the final ``k``).

    Parameters
    ----------
    n_components : int or None, default None
        Number of factors ``k >= 1``; None: ``min(m, n)`` (every component, as ``PCA``). With
        ``algorithm="grow"`` it is the number of columns of the seeded start (None: start from zero
        columns; the first round then appends the top singular pairs of Y).
    lam : float, default 0.0
        Weight decay ``λ >= 0`` (the nuclear-norm weight of the convex problem).
    algorithm : {"gauss-seidel", "jacobi", "grow"}, default "gauss-seidel"
        The blocks in turn, the best of both blocks, or the grow meta-algorithm.
    solver : str or list of str, default "auto"
        Backend of the block subproblems (any registry name, or a fallback list). With
        ``algorithm="grow"`` the blocks (ridge regressions) are solved in closed form, so ``solver``
        is checked but not called.
    max_iter : int or None, default None
        Outer iterations (per round for ``"grow"``); None: 100 (500 per round for ``"grow"``).
    tol : float or None, default None
        Relative block-gap tolerance; None: 1e-6 (1e-9 for ``"grow"``).
    time_limit : float or None, default None
        Seconds. A deadline: no block solve, polar or certificate pass starts after it, and the fit keeps
        the best point with status ``"time_limit"`` (its certificate not computed unless it already was).
    random_state : int or None, default None
        Seed of the random start (standard normal, scaled to the data).
    rank, seed : deprecated
        The old spellings of ``n_components`` and ``random_state`` (a FutureWarning; removed in
        the next release).

    Attributes
    ----------
    U_ : ndarray of shape (m, k)
    V_ : ndarray of shape (n, k)
    components_ : ndarray of shape (k, n)
        ``V_.T``, so that ``Y ≈ U_ @ components_`` (scikit-learn's convention).
    X_ : ndarray of shape (m, n)
        The reconstruction ``U_ @ V_.T`` (formed on first access, then kept).
    objective_ : float
        Final objective value (``result_.objective``).
    polar_ : float
        ``σ_max(Y − X_)``, the polar of the negative gradient (H&V Cor. 1). At a
        partial minimum, ``polar_ <= lam`` (to tolerance) certifies global optimality. ``nan`` when a
        ``time_limit`` or Ctrl-C stopped grow before a polar was computed at the returned point. Computed by
        :func:`~multiconvex.globalopt.mf_polar` (no full SVD past 100 on the smaller side): a Rayleigh quotient,
        so never above ``σ_max``; proven (to rounding) whenever it is ``<= lam``, otherwise as accurate as the
        block iteration or Lanczos converged (two top values within ~1e-7 of each other can be read as the lower).
    n_iter_ : int
        Outer iterations run.
    n_features_in_ : int
        Columns of ``Y`` (``feature_names_in_`` too when ``Y`` was a DataFrame).
    result_ : multiconvex.Result
        The full result (status, history, certificate, timings).
    cvxpy_model_ : CvxpyModel or None
        The problem that was solved; its variables hold the final point (None for ``"grow"``).

    Examples
    --------
    >>> import numpy as np
    >>> from multiconvex.models import MatrixFactorization, svt_optimum
    >>> Y = np.random.default_rng(0).standard_normal((20, 15))
    >>> mf = MatrixFactorization(n_components=3, lam=6.0, solver="clarabel", random_state=0).fit(Y)
    >>> X_star, value = svt_optimum(Y, 6.0)  # rank(X_star) = 2 <= 3, so the optima agree
    >>> abs(mf.objective_ - value) < 1e-5 * value
    True
    >>> g = MatrixFactorization(lam=6.0, algorithm="grow", random_state=0).fit(Y)
    >>> g.result_.certificate.global_optimal, abs(g.objective_ - value) < 1e-8 * value
    (True, True)
    >>> codes = g.transform(Y[:4]); codes.shape == (4, g.components_.shape[0])
    True
    """

    def __init__(self, n_components: int | None = None, lam: float = 0.0, seed: Any = DEPRECATED, *,
                 algorithm: str = "gauss-seidel", solver: str | list[str] = "auto", max_iter: int | None = None,
                 tol: float | None = None, time_limit: float | None = None, random_state: int | None = None,
                 rank: Any = DEPRECATED):
        # ``seed`` stays third positionally: the old ``MatrixFactorization(rank, lam, seed)`` keeps working
        # (with a FutureWarning) for one release
        self.n_components = n_components
        self.lam = lam
        self.algorithm = algorithm
        self.solver = solver
        self.max_iter = max_iter
        self.tol = tol
        self.time_limit = time_limit
        self.random_state = random_state
        self.rank = rank
        self.seed = seed

    # -- parameters ---------------------------------------------------------------------------
    def _k(self, where: str, shape: tuple[int, ...]) -> int:
        """The number of factors: ``n_components``, or ``min(m, n)`` of the data's shape when it is None (as PCA
        keeps every component; ``algorithm="grow"`` starts from zero columns then, without asking here)."""
        k = self._renamed("rank", "n_components")
        if k is None:
            return max(1, min(int(d) for d in shape[:2]))
        passed = "n_components" if isinstance(self.rank, str) and self.rank == DEPRECATED else "rank"
        return check_rank(k, where=where, name=passed)  # named as the user passed it

    def _random_state(self, where: str) -> int | None:
        pinned = self._pinned()
        if pinned is not None:
            return pinned[0]
        return check_random_state(self._renamed("seed", "random_state"), "random_state", where=where)

    def _validate(self, Y: Any, where: str) -> tuple[np.ndarray, int, float]:
        lam = check_scalar(self.lam, name="lam", where=where)
        Y = check_array(Y, name="Y", where=where, ndim=2)
        return Y, self._k(where, Y.shape), lam

    # -- model ---------------------------------------------------------------
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
        (``n_components`` columns; ``min(m, n)`` when it is None)."""
        where = f"{type(self).__name__}.initial_point"
        Y, k, _ = self._validate(Y, where)
        m, n = Y.shape
        rng = np.random.default_rng(self._random_state(where))
        scale = np.sqrt(np.sqrt(np.mean(Y**2)) / k)
        return {
            "U": scale * rng.standard_normal((m, k)),
            "V": scale * rng.standard_normal((n, k)),
        }

    # -- estimator -------------------------------------------------------------
    def _options(self, solve_kwargs: dict[str, Any], where: str) -> dict[str, Any]:
        """The run's algorithm and stopping rules: the constructor's, or the deprecated fit-time ones."""
        opts = self._fit_time_params(solve_kwargs, _FIT_TIME)
        if opts["algorithm"] not in ALGORITHMS:
            raise InvalidInputError(f"{where}: algorithm={opts['algorithm']!r}; use one of {', '.join(ALGORITHMS)}.")
        max_iter, tol = _DEFAULTS[opts["algorithm"]]
        opts["max_iter"] = check_int(max_iter if opts["max_iter"] is None else opts["max_iter"], "max_iter",
                                     minimum=1, where=where)
        opts["tol"] = check_number(tol if opts["tol"] is None else opts["tol"], "tol", minimum=0.0, where=where)
        opts["time_limit"] = check_number(opts["time_limit"], "time_limit", minimum=0.0, strict=True,
                                          allow_none=True, where=where)
        solver = opts["solver"]
        if solver is not None and not (isinstance(solver, str) and solver.lower() == "auto"):
            for name in [solver] if isinstance(solver, str) else list(solver):
                get_backend(name)  # an unknown name is a clear error before any work (and before Y is read)
        return opts

    @unchanged_on_error
    def fit(self, Y: np.ndarray, y: None = None, *, init: Any = None, **solve_kwargs: Any):
        """Fit ``U_``, ``V_`` by :func:`multiconvex.solve` (or by the grow meta-algorithm).

        Parameters
        ----------
        Y : array-like of shape (m, n)
            Data matrix (finite); rows are samples.
        y : None
            Ignored (scikit-learn signature).
        init : None, mapping or any, optional
            None: the seeded start `initial_point`. A mapping ``{"U": ..., "V": ...}``
            (either or both) overrides the seeded start (for ``"grow"``: a warm start with any
            number of columns). Anything else goes to ``mc.solve(..., init=init)`` unchanged.
        **solve_kwargs
            Passed to :func:`multiconvex.solve` (``solver_options``, ``prox``, ``executor``, ...).
            With ``algorithm="grow"``: the further options of
            :class:`multiconvex.globalopt.GrowOptions` (``max_subnetworks``, ``max_rounds``,
            ``polar_tol``, ``gap_tol``, ``n_maximisers``). ``algorithm``, ``solver``, ``max_iters``,
            ``tol`` and ``time_limit`` here are deprecated: they are constructor parameters now.

        Returns
        -------
        self
        """
        where = f"{type(self).__name__}.fit"
        opts = self._options(solve_kwargs, where)
        Y = self._validate_data(Y, reset=True, where=where)
        self._pin_seed(where)
        if opts["algorithm"] == "grow":
            return self._fit_grow(Y, init, opts, solve_kwargs, where)
        Y, _, lam = self._validate(Y, where)
        model = self.to_cvxpy(Y)
        solve_kwargs = {**solve_kwargs, "algorithm": opts["algorithm"], "solver": opts["solver"],
                        "max_iters": opts["max_iter"], "tol": opts["tol"], "time_limit": opts["time_limit"]}
        self._fit_model(model, default_init=self.initial_point(Y), init=init, solve_kwargs=solve_kwargs,
                        where=where)
        U = np.array(model.variables["U"].value, dtype=float)
        V = np.array(model.variables["V"].value, dtype=float)
        # σ_max of the residual as grow computes it (block iteration from V, Lanczos; no full SVD: on 3000 × 2000 that
        # took 5–7 s after a fit stopped by its time_limit); the proof only where it can certify (polar ≤ λ)
        self._store(U, V, float(mf_polar(Y - U @ V.T, 1, start=V, prove_below=lam).value))
        return self

    def _fit_grow(self, Y: np.ndarray, init: Any, opts: dict[str, Any], kwargs: dict[str, Any], where: str):
        Y, _, lam = self._validate(Y, where)
        known = {f.name for f in GrowOptions.__dataclass_fields__.values()} - {"info", "max_iters", "tol",
                                                                               "time_limit"}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise InvalidInputError(f"{where}: algorithm='grow' does not take {unknown}; its options are "
                                    f"{sorted(known)} (and the constructor's max_iter, tol, time_limit).")
        if self._renamed("rank", "n_components") is None:
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
        problem = MFGrowProblem(Y, lam, seed=self._random_state(where))
        grow_opts = GrowOptions(max_iters=opts["max_iter"], tol=opts["tol"], time_limit=opts["time_limit"], **kwargs)
        result, state = grow(problem, MFState(U0.copy(), V0.copy()), grow_opts)
        result.backends_used = {"closed-form": result.iterations}
        self.result_ = result
        self._warn_unconverged(result)
        self.cvxpy_model_ = None
        self.objective_ = float(result.objective)
        self.n_iter_ = int(result.iterations)
        polar = result.certificate.polar  # None when a limit or Ctrl-C cut the run before a polar at this point
        self._store(state.U.copy(), state.V.copy(), math.nan if polar is None else float(polar))
        return self

    def _store(self, U: np.ndarray, V: np.ndarray, polar: float) -> None:
        self.U_, self.V_ = U, V
        self.components_ = V.T
        self._X: np.ndarray | None = None  # X_ is formed on first access
        self.polar_ = polar

    @property
    def X_(self) -> np.ndarray:
        """``U_ @ V_ᵀ``, formed on first access (an ``m × n`` array fit itself never needs)."""
        self._check_fitted("V_")
        if getattr(self, "_X", None) is None:
            self._X = self.U_ @ self.V_.T
        return self._X

    # -- transformer -------------------------------------------------------------
    def transform(self, Y: Any) -> np.ndarray:
        """Codes of new rows: the ``U`` block's optimum with ``V`` fixed at ``V_``.

        Solves ``min_U ½‖Y − U V_ᵀ‖²_F + (λ/2)‖U‖²_F`` — the fit's own ``U``-block subproblem, a
        ridge regression, in closed form (:class:`multiconvex.globalopt.mf_problem.MFForm`). At a
        partial minimum of the fit, ``transform(Y_train)`` equals ``U_``.

        Parameters
        ----------
        Y : array-like of shape (m_new, n)

        Returns
        -------
        ndarray of shape (m_new, k)
        """
        where = f"{type(self).__name__}.transform"
        self._check_fitted("V_")
        Y = self._validate_data(Y, reset=False, where=where)
        lam = check_scalar(self.lam, name="lam", where=where)
        form = MFForm(Y, lam)
        form.prepare(0, {"U": np.zeros((Y.shape[0], self.V_.shape[1])), "V": self.V_})
        return np.asarray(form.solve_prepared(0).values["U"], dtype=float)

    def inverse_transform(self, X: Any) -> np.ndarray:
        """``X @ components_``: rows of the data matrix from their codes (shape ``(m, k)``)."""
        where = f"{type(self).__name__}.inverse_transform"
        self._check_fitted("V_")
        X = check_array(X, name="X", where=where, ndim=2)
        if X.shape[1] != self.components_.shape[0]:
            raise InvalidInputError(f"{where}: X has {X.shape[1]} columns, expected k={self.components_.shape[0]} "
                                    "(the number of components).")
        return X @ self.components_

    @property
    def _n_features_out(self) -> int:
        """Number of codes per row (for ``get_feature_names_out``)."""
        return int(self.components_.shape[0])
