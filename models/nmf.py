"""Nonnegative matrix factorization ``X ≈ W H``, scikit-learn's estimator with a certificate.

`NonnegativeMatrixFactorization` takes scikit-learn's hyper-parameters (``n_components``, ``init``,
``alpha_W``, ``alpha_H``, ``l1_ratio``, ``max_iter``, ``tol``, ``random_state``) and minimises the same
objective as :class:`sklearn.decomposition.NMF` with ``beta_loss="frobenius"``::

    ½‖X − W H‖²_F + l1_W ΣW + ½ l2_W ‖W‖²_F + l1_H ΣH + ½ l2_H ‖H‖²_F,
    l1_W = alpha_W · l1_ratio · n_features,   l2_W = alpha_W · (1 − l1_ratio) · n_features,
    l1_H = alpha_H · l1_ratio · n_samples,    l2_H = alpha_H · (1 − l1_ratio) · n_samples,

by alternating block steps through multiconvex's drivers (:class:`multiconvex.nmf_form.NMFForm`):
cheap coordinate-descent passes (HALS, scikit-learn's ``cd`` step) while they make progress, then
*exact* block solves — every row of ``W`` (every column of ``H``) is a nonnegative least-squares
problem sharing one ``k × k`` Gram matrix, solved by the batched ``nnls`` backend (block principal
pivoting, KKT conditions checked) through the dispatcher. So a converged fit is a certified *partial
minimum*: no block can lower the objective by more than ``tol · objective`` (``result_.certificate``).
"""

from __future__ import annotations

import contextlib
import math
import numbers
import time
import warnings
from collections.abc import Mapping
from typing import Any

import cvxpy as cp
import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.decomposition._nmf import _initialize_nmf  # private: no public API gives scikit-learn's start
from sklearn.utils.validation import check_is_fitted, validate_data

from multiconvex.drivers import ALGORITHMS, DriverOptions, run
from multiconvex.errors import InvalidInputError
from multiconvex.nmf_form import NMFForm, canonical_csr, nmf_objective
from multiconvex.result import LimitWords, Result
from multiconvex.solvers import make_plan, solve_subproblem
from multiconvex.solvers.dispatch import Plan, one_blas_thread
from multiconvex.validation import check_flag

from ._base import CvxpyModel, unchanged_on_error, warn_unconverged
from ._pyomo import factorization, set_values

__all__ = ["NonnegativeMatrixFactorization"]

#: Default of a renamed parameter: tells "not given" from any value a user may pass.
DEPRECATED = "deprecated"

INITS = ("random", "nndsvd", "nndsvda", "nndsvdar", "custom")
BLOCK_STEPS = ("auto", "exact")

#: With ``block_steps="auto"``: coordinate steps while a block step lowers the objective by more than this many
#: times ``tol`` of it; then exact solves until a sweep gains at most ``tol`` (so the last sweeps and the
#: certificate are exact). Below 1: the cheap steps run about as long as scikit-learn's ``cd`` would.
COORDINATE_FACTOR = 0.1

#: Problems with at most this many ``m·n·k`` multiply-adds per product run with one BLAS thread: their
#: matrices are small, and idle BLAS threads spinning on a loaded machine made a digits fit 8x slower.
SINGLE_THREAD_WORK = 5e7

#: fit(..., **kwargs) of the previous release -> (constructor parameter, what to say).
_OLD_FIT_KWARGS = {"solver": "solver", "max_iters": "max_iter", "tol": "tol", "algorithm": "algorithm",
                   "time_limit": "time_limit", "verbose": "verbose"}
_DRIVER_ONLY = ("prox", "progress", "executor")


class NonnegativeMatrixFactorization(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """NMF by exact alternating nonnegative least squares, with a partial-minimum certificate.

    Parameters
    ----------
    n_components : int, "auto" or None, default "auto"
        Number of components ``k``. ``"auto"``: from ``W``/``H`` given to ``fit_transform`` with
        ``init="custom"``, else ``n_features`` (scikit-learn's meaning); None: ``n_features``.
    init : {"random", "nndsvd", "nndsvda", "nndsvdar", "custom"} or None, default None
        scikit-learn's starts (the same arrays, from scikit-learn's own code); None: ``"nndsvda"``
        when ``n_components <= min(n_samples, n_features)``, else ``"random"``.
    beta_loss : "frobenius", default "frobenius"
        Only the Frobenius loss: a Kullback–Leibler block is convex but not a least-squares problem,
        so its exact solves and gaps need another backend (refused with an error).
    tol : float, default 1e-6
        Relative tolerance (not scikit-learn's projected-gradient one): a sweep that lowers the objective
        by at most ``tol · objective`` stops the run, which is then certified when every block gap is at
        most ``tol · objective``.
    max_iter : int, default 1000
        Outer iterations (sweeps over the two blocks).
    random_state : int, RandomState or None, default None
        Seed of the ``"random"`` and ``"nndsvdar"`` starts.
    alpha_W, alpha_H, l1_ratio : float, default 0.0, "same", 0.0
        Regularisation with scikit-learn's meaning and scaling (see the module docstring).
    solver : str or list of str, default "auto"
        Backend for the block subproblems, by registry name; ``"auto"`` takes the batched ``nnls``.
    algorithm : {"gauss-seidel", "jacobi"}, default "gauss-seidel"
        Driver: blocks one after another, or both from the same point and the best kept.
    block_steps : {"auto", "exact"}, default "auto"
        ``"exact"``: every block step is the block's exact optimum (the ``nnls`` backend). ``"auto"``: while
        one pass of coordinate descent over a block (HALS, scikit-learn's ``cd`` step) lowers the objective
        by more than ``tol / 10`` of it, take that cheap step; from the first that does not, exact solves
        to the end. Either way the certificate comes from exact solves only.
    extrapolate : bool, default False
        After each iteration that moved the factors, try ``(W, H) + β((W, H) − (W, H)_prev)`` clipped at 0, and keep
        it only when it lowers the objective: Ang & Gillis's extrapolation for NMF, ``β`` adapted in their manner
        (:mod:`multiconvex.extrapolation`). One objective evaluation per iteration.
    time_limit : float or None, default None
        Seconds; the best point so far is returned when it runs out.
    verbose : int, default 0
        Log every iteration through the ``multiconvex`` logger when positive.
    rank, alpha, seed
        Deprecated spellings of ``n_components``, the l2 penalty ``α`` on both factors (now
        ``alpha_W = α / n_features``, ``alpha_H = α / n_samples``, ``l1_ratio = 0``) and ``random_state``.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        ``H``.
    n_components_ : int
    reconstruction_err_ : float
        ``‖X − W H‖_F`` at the end of the fit (scikit-learn's).
    n_iter_ : int
        Outer iterations run.
    objective_ : float
        The objective above at the fitted ``W``, ``H``.
    result_ : multiconvex.Result
        History, status, solver time, and the certificate (``result_.certificate.is_partial_minimum``).
    n_features_in_, feature_names_in_
        As in scikit-learn.

    Examples
    --------
    >>> import numpy as np
    >>> from multiconvex.models import NonnegativeMatrixFactorization
    >>> X = np.abs(np.random.default_rng(0).standard_normal((20, 10)))
    >>> nmf = NonnegativeMatrixFactorization(n_components=3, init="nndsvda", tol=1e-8)
    >>> W = nmf.fit_transform(X)
    >>> bool(W.min() >= 0), nmf.components_.shape, nmf.result_.certificate.is_partial_minimum
    (True, (3, 10), True)
    """

    def __init__(self, n_components: Any = "auto", alpha: Any = DEPRECATED, seed: Any = DEPRECATED, *,
                 init: str | None = None, beta_loss: str = "frobenius",
                 tol: float = 1e-6, max_iter: int = 1000, random_state: Any = None, alpha_W: float = 0.0,
                 alpha_H: Any = "same", l1_ratio: float = 0.0, solver: Any = "auto",
                 algorithm: str = "gauss-seidel", block_steps: str = "auto", extrapolate: bool = False,
                 time_limit: float | None = None, verbose: int = 0, rank: Any = DEPRECATED):
        # ``alpha`` and ``seed`` stay positional: the old ``NonnegativeMatrixFactorization(rank, alpha, seed)``
        # keeps working (with a FutureWarning) for one release
        self.n_components = n_components
        self.init = init
        self.beta_loss = beta_loss
        self.tol = tol
        self.max_iter = max_iter
        self.random_state = random_state
        self.alpha_W = alpha_W
        self.alpha_H = alpha_H
        self.l1_ratio = l1_ratio
        self.solver = solver
        self.algorithm = algorithm
        self.block_steps = block_steps
        self.extrapolate = extrapolate
        self.time_limit = time_limit
        self.verbose = verbose
        self.rank = rank
        self.alpha = alpha
        self.seed = seed

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        tags.input_tags.sparse = True  # CSR, CSC and COO data, as scikit-learn's NMF
        tags.transformer_tags.preserves_dtype = ["float64"]  # computed in float64
        return tags

    @property
    def _n_features_out(self) -> int:
        return self.components_.shape[0]

    # -- hyper-parameters, resolved once per call ----------------------------------------------------
    def _params(self, where: str, *, warn: bool = True) -> dict[str, Any]:
        """Every hyper-parameter checked (no data needed), the deprecated spellings mapped with a warning."""
        p: dict[str, Any] = {}
        k = self.n_components
        if self.rank is not DEPRECATED and not _is_deprecated(self.rank):
            _deprecated(warn, "rank", "n_components")
            if k != "auto":
                raise InvalidInputError(f"{where}: give n_components or rank (deprecated), not both")
            k = self.rank
            if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
                raise InvalidInputError(f"{where}: rank (now n_components) must be an integer >= 1, got {k!r}")
        if not (k is None or (isinstance(k, str) and k == "auto")):
            if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
                raise InvalidInputError(f"{where}: n_components must be an integer >= 1, 'auto' or None, got {k!r}; "
                                        f"e.g. n_components=10")
            k = int(k)
        p["k"] = k
        init = self.init
        if init is not None and init not in INITS:
            raise InvalidInputError(f"{where}: init={init!r} is not one of {', '.join(map(repr, INITS))} or None")
        old = any(not _is_deprecated(v) for v in (self.rank, self.alpha, self.seed))
        p["init"] = "random" if init is None and old else init  # the previous release started from "random"
        if self.beta_loss not in ("frobenius", 2, 2.0):
            raise InvalidInputError(
                f"{where}: beta_loss={self.beta_loss!r} is not supported; only 'frobenius' is: its blocks are "
                f"nonnegative least-squares problems, solved exactly (a Kullback-Leibler block is convex but "
                f"needs an exact exponential-cone solve per row, not implemented). Use beta_loss='frobenius', "
                f"or sklearn.decomposition.NMF(beta_loss='kullback-leibler', solver='mu') without a certificate")
        p["tol"] = _real(self.tol, "tol", where)  # 0 as scikit-learn's NMF takes it: stop at max_iter
        if isinstance(self.max_iter, bool) or not isinstance(self.max_iter, numbers.Integral) or self.max_iter < 1:
            raise InvalidInputError(f"{where}: max_iter must be an integer >= 1, got {self.max_iter!r}")
        p["max_iter"] = int(self.max_iter)
        p["random_state"] = self.random_state
        if not _is_deprecated(self.seed):
            _deprecated(warn, "seed", "random_state")
            if self.random_state is not None:
                raise InvalidInputError(f"{where}: give random_state or seed (deprecated), not both")
            p["random_state"] = self.seed
        a_W = _real(self.alpha_W, "alpha_W", where)
        a_H = a_W if isinstance(self.alpha_H, str) and self.alpha_H == "same" else _real(self.alpha_H, "alpha_H",
                                                                                           where)
        l1_ratio = _real(self.l1_ratio, "l1_ratio", where)
        if l1_ratio > 1:
            raise InvalidInputError(f"{where}: l1_ratio must be in [0, 1], got {l1_ratio}")
        p["alpha_W"], p["alpha_H"], p["l1_ratio"], p["alpha"] = a_W, a_H, l1_ratio, None
        if not _is_deprecated(self.alpha):
            _deprecated(warn, "alpha", "alpha_W = alpha / n_features and alpha_H = alpha / n_samples")
            if a_W or (a_H and self.alpha_H != "same") or l1_ratio:
                raise InvalidInputError(f"{where}: give alpha_W/alpha_H/l1_ratio or alpha (deprecated), not both")
            p["alpha"] = _real(self.alpha, "alpha", where)
        if self.algorithm not in ALGORITHMS:
            raise InvalidInputError(f"{where}: algorithm={self.algorithm!r} is not one of {', '.join(ALGORITHMS)}")
        p["algorithm"] = self.algorithm
        if self.block_steps not in BLOCK_STEPS:
            raise InvalidInputError(f"{where}: block_steps={self.block_steps!r} is not one of "
                                    f"{', '.join(map(repr, BLOCK_STEPS))}")
        p["block_steps"] = self.block_steps
        p["extrapolate"] = check_flag(self.extrapolate, "extrapolate", where=where)
        p["time_limit"] = None if self.time_limit is None else _real(self.time_limit, "time_limit", where,
                                                                      positive=True)
        p["solver"] = self.solver
        p["verbose"] = bool(self.verbose)
        return p

    @staticmethod
    def _penalties(p: dict[str, Any], shape: tuple[int, int]) -> tuple[float, float, float, float]:
        """(l1_W, l2_W, l1_H, l2_H) for data of ``shape`` (scikit-learn's ``_compute_regularization``)."""
        m, n = shape
        if p["alpha"] is not None:
            return 0.0, p["alpha"], 0.0, p["alpha"]
        a_W, a_H, r = p["alpha_W"], p["alpha_H"], p["l1_ratio"]
        return n * a_W * r, n * a_W * (1 - r), m * a_H * r, m * a_H * (1 - r)

    def _check_X(self, X: Any, where: str, *, reset: bool) -> np.ndarray | sp.csr_array:
        try:
            X = validate_data(self, X, dtype=np.float64, reset=reset, accept_sparse=("csr", "csc", "coo"))
        except ValueError as exc:
            if isinstance(exc, InvalidInputError):
                raise
            raise InvalidInputError(f"{where}: {exc}") from exc
        if sp.issparse(X):
            X = canonical_csr(X)
        neg = _negative_entries(X)
        if neg.size:
            i, j = (int(v) for v in neg[0])
            raise InvalidInputError(f"{where}: Negative values in data passed to {type(self).__name__}: X[{i}, {j}] "
                                    f"= {X[i, j]:g} is negative ({neg.shape[0]} negative entries, first at ({i}, "
                                    f"{j})); NMF needs X >= 0")
        return X

    @staticmethod
    def _resolve_k(p: dict[str, Any], X: np.ndarray | sp.csr_array, H: np.ndarray | None) -> int:
        if isinstance(p["k"], int):
            return p["k"]
        if p["k"] == "auto" and H is not None:
            return int(np.shape(H)[0])
        return int(X.shape[1])

    def _start(self, X: np.ndarray | sp.csr_array, k: int, p: dict[str, Any], W: Any, H: Any,
               where: str) -> tuple[np.ndarray, np.ndarray]:
        init = p["init"]
        if init is None:
            init = "nndsvda" if k <= min(X.shape) else "random"
        if init == "custom":
            if W is None or H is None:
                raise InvalidInputError(f"{where}: init='custom' needs both W and H: fit_transform(X, W=..., H=...)")
            return (_check_factor(W, (X.shape[0], k), "W", where), _check_factor(H, (k, X.shape[1]), "H", where))
        if W is not None or H is not None:
            warnings.warn(f"{where}: W and H are used only with init='custom'; init={init!r} ignores them",
                          RuntimeWarning, stacklevel=3)
        if init in ("nndsvd", "nndsvda", "nndsvdar") and k > min(X.shape):
            raise InvalidInputError(f"{where}: init={init!r} needs n_components <= min(n_samples, n_features) = "
                                    f"{min(X.shape)}, got {k}; use init='random'")
        W0, H0 = _initialize_nmf(X, k, init=init, random_state=p["random_state"])
        return np.asarray(W0, dtype=float), np.asarray(H0, dtype=float)

    # -- fitting ------------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None, **params: Any) -> NonnegativeMatrixFactorization:
        """Learn ``components_`` (and ``W``) from ``X``; see :meth:`fit_transform`.

        Returns
        -------
        self
        """
        self.fit_transform(X, y, **params)
        return self

    @unchanged_on_error
    def fit_transform(self, X: Any, y: Any = None, W: Any = None, H: Any = None, **params: Any) -> np.ndarray:
        """Fit and return ``W``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Nonnegative, finite data. Sparse data stays sparse in the block products (as scikit-learn's); the
            objective's residual ``X − W H`` is formed a block of rows at a time.
        y : None
            Ignored.
        W, H : array-like, optional
            The start with ``init="custom"``.
        **params
            Deprecated: the previous release's ``fit(X, init={"W": ..., "H": ...}, solver=..., max_iters=...,
            tol=..., algorithm=..., time_limit=...)``; use the constructor's parameters.

        Returns
        -------
        W : ndarray of shape (n_samples, n_components)
        """
        where = f"{type(self).__name__}.fit"
        p = self._params(where)
        p, driver_extra, W, H, custom = _old_fit_kwargs(p, params, W, H, where)
        plan = make_plan(p["solver"])  # an unknown or missing backend fails here, before any data work
        plan.check_class("QP", where="an NMF factor block")
        t0 = time.perf_counter()  # the time limit covers the whole fit: the data check and the start count
        X = self._check_X(X, where, reset=True)
        k = self._resolve_k(p, X, H)
        if custom:
            p["init"] = "custom"
        W0, H0 = self._start(X, k, p, W, H, where)
        penalties = self._penalties(p, X.shape)
        res = _run(X, k, W0, H0, penalties, plan, p, driver_extra, time.perf_counter() - t0)
        Wf, Hf = res.values["W"], res.values["H"]
        self.components_ = Hf
        self.n_components_ = k
        self._W_fit = Wf
        self.reconstruction_err_ = _reconstruction_error(X, res, penalties)
        self.n_iter_ = int(max(res.iterations, 1))
        self.objective_ = float(res.objective)
        self.result_ = res
        warn_unconverged(self, res)
        return Wf

    def transform(self, X: Any) -> np.ndarray:
        """``W`` for new data: each row's exact nonnegative least-squares fit with ``components_`` fixed
        (including the ``W`` penalties), through the same backend as the fit."""
        check_is_fitted(self, "components_")
        where = f"{type(self).__name__}.transform"
        p = self._params(where, warn=False)
        X = self._check_X(X, where, reset=False)
        H = self.components_
        k = H.shape[0]
        l1_W, l2_W, _, _ = self._penalties(p, X.shape)
        plan = make_plan(p["solver"])
        form = NMFForm(X, k, solve=_bind(plan), l1_W=l1_W, l2_W=l2_W)
        point = {"W": np.zeros((X.shape[0], k)), "H": H}
        with _blas_threads(X.shape, k):
            form.prepare(0, point)
            sol = form.solve_prepared(0)
        if sol.values is None:
            raise InvalidInputError(f"{where}: the W block solve failed ({sol.status}): {sol.message}")
        return sol.values["W"]

    def inverse_transform(self, X: Any) -> np.ndarray:
        """``X @ components_``: data back from ``W``."""
        check_is_fitted(self, "components_")
        W = np.asarray(X, dtype=float)
        if W.ndim != 2 or W.shape[1] != self.components_.shape[0]:
            raise InvalidInputError(f"{type(self).__name__}.inverse_transform: W must have shape (n, "
                                    f"{self.components_.shape[0]}), got {W.shape}")
        if not np.all(np.isfinite(W)):
            raise InvalidInputError(f"{type(self).__name__}.inverse_transform: W contains NaN or inf "
                                    f"({int(np.size(W) - np.count_nonzero(np.isfinite(W)))} entries)")
        return W @ self.components_

    # -- the previous release's attributes ---------------------------------------------------------
    @property
    def W_(self) -> np.ndarray:
        """Deprecated: the fitted ``W``; use the return value of ``fit_transform`` (or ``transform(X)``)."""
        warnings.warn("W_ is deprecated and will be removed in the next release; use W = fit_transform(X) or "
                      "transform(X)", FutureWarning, stacklevel=2)
        check_is_fitted(self, "components_")
        return self._W_fit

    @property
    def H_(self) -> np.ndarray:
        """Deprecated: ``components_``."""
        warnings.warn("H_ is deprecated and will be removed in the next release; use components_", FutureWarning,
                      stacklevel=2)
        check_is_fitted(self, "components_")
        return self.components_

    # -- the same problem elsewhere ----------------------------------------------------------------
    def _problem_data(self, Y: Any, where: str, *, dense: bool = False
                      ) -> tuple[np.ndarray | sp.csr_array, int, tuple[float, float, float, float]]:
        """``Y`` checked (finite, 2-D, nonnegative), ``k`` and the penalties; sparse ``Y`` stays sparse (canonical
        CSR) unless ``dense`` (the cvxpy and Pyomo models take the values as a dense matrix)."""
        p = self._params(where)
        if sp.issparse(Y):
            Y = Y.toarray() if dense else canonical_csr(Y)
        elif not isinstance(Y, np.ndarray):
            Y = np.asarray(Y, dtype=float)
        values = Y.data if isinstance(Y, sp.csr_array) else Y
        if Y.ndim != 2 or not np.all(np.isfinite(values)):
            raise InvalidInputError(f"{where}: Y must be a finite 2-D matrix, got shape {Y.shape}")
        neg = _negative_entries(Y)
        if neg.size:
            i, j = (int(v) for v in neg[0])
            raise InvalidInputError(f"{where}: Y has negative entries, first at ({i}, {j}); NMF needs Y >= 0")
        return Y, self._resolve_k(p, Y, None), self._penalties(p, Y.shape)

    def objective_at(self, Y: Any, W: Any, H: Any) -> float:
        """This estimator's objective at ``W``, ``H`` (from the residual)."""
        Y, _, (l1_W, l2_W, l1_H, l2_H) = self._problem_data(Y, f"{type(self).__name__}.objective_at")
        W, H = np.asarray(W, dtype=float), np.asarray(H, dtype=float)
        return nmf_objective(Y, W, H, l1_W, l2_W, l1_H, l2_H)

    def initial_point(self, Y: Any) -> dict[str, np.ndarray]:
        """The start ``fit`` takes (``init`` and ``random_state``), as ``{"W": ..., "H": ...}``."""
        where = f"{type(self).__name__}.initial_point"
        Y, k, _ = self._problem_data(Y, where)
        W, H = self._start(Y, k, self._params(where, warn=False), None, None, where)
        return {"W": W, "H": H}

    def to_cvxpy(self, Y: Any) -> CvxpyModel:
        """The same problem in cvxpy, ``W`` and ``H`` declared ``nonneg=True``; blocks ``[[W], [H]]``."""
        Y, k, (l1_W, l2_W, l1_H, l2_H) = self._problem_data(Y, f"{type(self).__name__}.to_cvxpy", dense=True)
        m, n = Y.shape
        W = cp.Variable((m, k), nonneg=True, name="W")
        H = cp.Variable((k, n), nonneg=True, name="H")
        objective = 0.5 * cp.sum_squares(Y - W @ H)
        for var, l1, l2 in ((W, l1_W, l2_W), (H, l1_H, l2_H)):
            if l1:
                objective = objective + l1 * cp.sum(var)
            if l2:
                objective = objective + (l2 / 2) * cp.sum_squares(var)
        return CvxpyModel(cp.Problem(cp.Minimize(objective)), [[W], [H]], {"W": W, "H": H})

    def to_pyomo(self, Y: Any):
        """The same problem as a Pyomo model (``W``, ``H`` in ``NonNegativeReals``, at `initial_point`).

        Only an equal l2 penalty on both factors and no l1 term (what the previous release's ``alpha`` was).
        """
        where = f"{type(self).__name__}.to_pyomo"
        Y, k, (l1_W, l2_W, l1_H, l2_H) = self._problem_data(Y, where, dense=True)
        if l1_W or l1_H or l2_W != l2_H:
            raise InvalidInputError(f"{where}: the Pyomo model takes one l2 penalty on both factors and no l1 term; "
                                    f"got l1=({l1_W:g}, {l1_H:g}), l2=({l2_W:g}, {l2_H:g}); use to_cvxpy")
        pm = factorization(Y, k, l2_W, nonneg=True, names=("W", "H"), right_transposed=False)
        return set_values(pm, self.initial_point(Y))


# -- helpers ----------------------------------------------------------------------------------------
def _reconstruction_error(X: np.ndarray | sp.csr_array, res: Result,
                          penalties: tuple[float, float, float, float]) -> float:
    """``‖X − W H‖_F`` at the fit's point. Sparse ``X``: without penalties ``√(2·objective)`` (the run's value, from
    the residual and exact decreases); with them one pass over the residual in blocks of rows, its seconds counted
    in ``res.total_time`` (the time limit does not cover it)."""
    W, H = res.values["W"], res.values["H"]
    if not sp.issparse(X):
        return float(np.linalg.norm(X - W @ H, "fro"))
    if not any(penalties):
        return math.sqrt(max(0.0, 2.0 * float(res.objective)))
    t0 = time.perf_counter()
    value = math.sqrt(2.0 * nmf_objective(X, W, H))
    res.total_time += time.perf_counter() - t0
    return value


def _negative_entries(X: np.ndarray | sp.csr_array) -> np.ndarray:
    """The ``(i, j)`` of ``X``'s negative entries in row-major order (a canonical CSR array: its stored values)."""
    if isinstance(X, sp.csr_array):
        coo = X.tocoo()
        return np.column_stack((coo.row, coo.col))[coo.data < 0]
    return np.argwhere(X < 0)


def _is_deprecated(value: Any) -> bool:
    return isinstance(value, str) and value == DEPRECATED


def _deprecated(warn: bool, old: str, new: str) -> None:
    if warn:
        warnings.warn(f"NonnegativeMatrixFactorization({old}=...) is deprecated and will be removed in the next "
                      f"release; use {new}", FutureWarning, stacklevel=4)


def _real(value: Any, name: str, where: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(float(value)):
        raise InvalidInputError(f"{where}: {name} must be a finite real number, got {value!r}")
    if float(value) < 0 or (positive and float(value) == 0):
        raise InvalidInputError(f"{where}: {name} must be {'>' if positive else '>='} 0, got {value!r}")
    return float(value)


def _check_factor(A: Any, shape: tuple[int, int], name: str, where: str) -> np.ndarray:
    A = np.asarray(A, dtype=float)
    if A.shape != shape:
        raise InvalidInputError(f"{where}: {name} has shape {A.shape}; expected {shape}")
    if not np.all(np.isfinite(A)) or (A < 0).any():
        raise InvalidInputError(f"{where}: {name} must be finite and nonnegative")
    return A.copy()


def _old_fit_kwargs(p: dict[str, Any], params: dict[str, Any], W: Any, H: Any,
                    where: str) -> tuple[dict[str, Any], dict[str, Any], Any, Any, bool]:
    """The previous release's ``fit(X, init=..., solver=..., max_iters=..., ...)``, mapped with a warning."""
    p = dict(p)
    extra: dict[str, Any] = {}
    custom = False
    for key, value in params.items():
        if key == "init":
            if value is None:
                continue
            if not isinstance(value, Mapping):
                raise InvalidInputError(f"{where}: init= at fit time takes a mapping {{'W': ..., 'H': ...}}; use "
                                        f"init='custom' and fit_transform(X, W=..., H=...)")
            warnings.warn("fit(X, init={...}) is deprecated; use NonnegativeMatrixFactorization(init='custom') and "
                          "fit_transform(X, W=..., H=...)", FutureWarning, stacklevel=4)
            W = value.get("W", W)
            H = value.get("H", H)
            custom = W is not None or H is not None
        elif key in _OLD_FIT_KWARGS:
            new = _OLD_FIT_KWARGS[key]
            warnings.warn(f"fit(X, {key}=...) is deprecated; use NonnegativeMatrixFactorization({new}=...)",
                          FutureWarning, stacklevel=4)
            p[new] = bool(value) if key == "verbose" else value
        elif key in _DRIVER_ONLY:
            extra[key] = value
        else:
            raise InvalidInputError(f"{where}: unknown fit argument {key!r}; hyper-parameters go to the "
                                    f"constructor ({', '.join(sorted(set(_OLD_FIT_KWARGS.values())))})")
    if custom and (W is None or H is None):
        raise InvalidInputError(f"{where}: init={{...}} at fit time needs both 'W' and 'H'")
    return p, extra, W, H, custom


def _bind(plan: Plan):
    def solve(sub, warm, key):
        return solve_subproblem(sub, plan, warm=warm, key=key)
    return solve


def _deadline_setter(plan: Plan):
    """``on_deadline`` for :class:`NMFForm`: the run's deadline goes on the plan its ``solve`` is bound to."""
    def set_deadline(deadline: float | None) -> None:
        plan.deadline = deadline
    return set_deadline


def _blas_threads(shape: tuple[int, int], k: int) -> contextlib.AbstractContextManager:
    if shape[0] * shape[1] * k <= SINGLE_THREAD_WORK:
        return one_blas_thread()
    return contextlib.nullcontext()


def _run(X: np.ndarray | sp.csr_array, k: int, W0: np.ndarray, H0: np.ndarray,
         penalties: tuple[float, float, float, float], plan: Plan, p: dict[str, Any], extra: dict[str, Any],
         start_seconds: float = 0.0) -> Result:
    """The fit from ``(W0, H0)``; ``start_seconds``: what checking the data and finding the start took, counted in
    the time limit and in the result's ``total_time`` (as ``build_time``)."""
    l1_W, l2_W, l1_H, l2_H = penalties
    left, words = LimitWords("max_iter").after_building(p["time_limit"], start_seconds,
                                                        "checking X and the initialisation")
    coordinate_rtol = COORDINATE_FACTOR * float(p["tol"]) if p["block_steps"] == "auto" else 0.0
    form = NMFForm(X, k, solve=_bind(plan), l1_W=l1_W, l2_W=l2_W, l1_H=l1_H, l2_H=l2_H,
                   coordinate_rtol=coordinate_rtol, on_deadline=_deadline_setter(plan))
    opts = DriverOptions(algorithm=p["algorithm"], max_iters=int(p["max_iter"]), tol=float(p["tol"]),
                         time_limit=left, verbose=p["verbose"], prox=float(extra.get("prox", 0.0)),
                         progress=extra.get("progress", False), extrapolate=p["extrapolate"], words=words)
    if extra.get("executor") is not None:
        opts.executor = extra["executor"]
    with _blas_threads(X.shape, k):
        res = run(form, {"W": W0, "H": H0}, opts)
    res.build_time = start_seconds
    res.total_time += start_seconds
    return res
