"""A sum of parallel ReLU subnetworks, trained by growing subnetworks until a global certificate holds
(THEORY.md §4, Haeffele & Vidal).

The output is ``Σ_j φ(W_j)(x)`` with each subnetwork a bias-free ReLU net ``[d, n_1, ..., n_K]`` (a bias
is a constant input column). With ``subnetwork=[d, 1, 1]`` the subnetworks are two-layer units
``(u_j, α_j)`` and the objective is

    ½ Σ_i (y_i − Σ_j (x_iᵀu_j)_+ α_j)² + λ Σ_j ½(‖u_j‖² + α_j²)

(sums over samples, not means). Its optimum equals that of the convex reformulation of two-layer ReLU
training (:func:`multiconvex.globalopt.relu_convex.convex_relu_regression`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
import warnings
from collections.abc import Sequence
from typing import Any

import cvxpy as cp
import numpy as np
import torch
from sklearn.base import RegressorMixin

import multiconvex as mc
from multiconvex.errors import InvalidInputError
from multiconvex.globalopt import GrowOptions, grow
from multiconvex.globalopt.certificate import make_certificate
from multiconvex.globalopt.checks import check_array, check_scalar
from multiconvex.globalopt.grow import bounded_objective
from multiconvex.globalopt.relu_problem import ReLUGrowProblem, ReLUState
from multiconvex.globalopt.torch_problem import (
    DTYPE,
    REGULARISERS,
    TorchGrowProblem,
    TorchState,
    adam,
    forward,
    init_weights,
    objective,
    regulariser_degree,
)
from multiconvex.pyomo_front import relu_network_model, set_consistent_activations
from multiconvex.result import Certificate, HistoryEntry, Result
from multiconvex.solvers import get_backend, require_usable
from multiconvex.solvers.options import check_solver_options
from multiconvex.validation import check_int, check_number, check_random_state

from ._base import DEPRECATED, CvxpyModel, Estimator, unchanged_on_error
from ._relu_network_data import check_hidden_sizes

__all__ = ["ParallelReLUNetwork", "MISMATCH_EXPLANATION"]


def _check_usable(solver: Any, runs: bool = True) -> None:
    """Before any solve: an unknown name fails (``get_backend``), and, when the call will ``run`` the solver, so does
    a spec none of whose named backends can run (not installed, or its licence missing: the piece programs would
    each fail and log it, and the fit would end at its iteration limit). ``"auto"`` picks usable backends itself."""
    if solver is None:
        return
    names = [solver] if isinstance(solver, str) else list(solver)
    if any(isinstance(n, str) and n.strip().lower() == "auto" for n in names):
        for name in names:
            if not (isinstance(name, str) and name.strip().lower() == "auto"):
                get_backend(name)
        return
    backends = [get_backend(n) if isinstance(n, str) else n for n in names]
    if runs:
        require_usable(backends)

logger = logging.getLogger("multiconvex")

ALGORITHMS = ("grow", "adam")
# fit-time spellings of what are constructor parameters now (kept for one release)
_FIT_TIME = {"algorithm": "algorithm", "solver": "solver", "patterns": "patterns", "max_iters": "max_iter",
             "tol": "tol", "time_limit": "time_limit"}


def _is_unit(sizes: tuple[int, ...]) -> bool:
    """``[d, 1, 1]``: two-layer units with scalar output (exact polar, convex block/piece descent)."""
    return len(sizes) == 3 and sizes[1] == 1 and sizes[2] == 1

MISMATCH_EXPLANATION = (
    "a subnetwork with {K} layers is positively homogeneous of degree {K} in its weights, but the "
    "regulariser {reg!r} has degree {p}. Haeffele & Vidal (§6) show that with mismatched degrees bad "
    "local minima exist for every number of subnetworks (near zero, the regulariser outweighs any new "
    "subnetwork's effect), so the polar certificate cannot prove anything. Use regulariser='power' "
    "(θ = Σ_k ‖W_k‖_F^{K}/{K}, degree {K}), a two-layer subnetwork [d, h, out] with weight decay, or "
    "pass certify=False to train without a global certificate."
)


class ParallelReLUNetwork(RegressorMixin, Estimator):
    """``r`` parallel ReLU subnetworks, ``r`` chosen by the grow meta-algorithm, with a global certificate.

    A scikit-learn regressor: each subnetwork is ``[d, *hidden_layer_sizes, n_out]`` with ``d`` and
    ``n_out`` read from the data.

    Parameters
    ----------
    subnetwork : deprecated
        The old ``[d, n_1, ..., n_K]`` (a FutureWarning; removed in the next release): pass
        ``hidden_layer_sizes=[n_1, ..., n_{K-1}]``; ``d`` and ``n_K`` are read from the data.
    lam : float
        λ > 0, the weight of the regulariser.
    bias : bool
        Append a constant input column (the bias of the first layer; deeper biases would break
        positive homogeneity).
    regulariser : {"weight_decay", "power"}
        ``θ = ½ Σ_k ‖W_k‖²`` (degree 2, matched to two-layer subnetworks) or ``Σ_k ‖W_k‖_F^K / K``
        (degree K, matched to any depth).
    certify : bool
        True: refuse a regulariser whose degree does not match the subnetwork's (H&V §6) and compute
        the global certificate. False: train anyway; no global certificate (``global_optimal`` None).
    n_subnetworks : int
        Subnetworks of the seeded start (and the width of ``algorithm="adam"``).
    seed : deprecated
        The old spelling of ``random_state``.
    hidden_layer_sizes : sequence of int, default (1,)
        Hidden widths of one subnetwork. ``(1,)`` with one target column: two-layer units ``[d, 1, 1]``
        — exact polar over activation patterns and the convex block/piece local descent. Anything else
        (wider, deeper, several targets) is trained with L-BFGS local descent, and its polar is only
        bounded below: never "proven".
    algorithm : {"grow", "adam"}, default "grow"
        The grow meta-algorithm, or Adam (a baseline; call `certificate` afterwards).
    solver : str, default "clarabel"
        Backend of the convex programs (piece programs, block gaps, polar SOCPs).
    patterns : "auto", "exact", int or bool array, default "auto"
        The polar's activation patterns (two-layer units only): all of them (exact; small ``d``), or a
        sample of that many directions (a lower bound on the polar; the certificate then says
        "not proven" unless the sample provably covered every pattern, and reports the interval
        with the upper bound of a convex relaxation and the implied gap bound). ``"auto"``: exact when the
        arrangement has at most ``max_patterns`` (50,000) cells, else 200 sampled directions (logged;
        ``result_.info["patterns_used"]`` says which); ``"exact"`` raises ``PatternLimitError`` there instead.
    max_rounds : int or None
        Grow rounds (each appends subnetworks, then descends); None: 50 (20 for other architectures).
    max_iter : int or None
        Local-descent iterations per grow round at most (0: none, e.g. to certify a warm start); None: 500 (200
        for other architectures). Two-layer units with exact patterns take at most 3 per round
        (:class:`multiconvex.globalopt.relu_problem.ReLUGrowProblem`'s ``walk``); a round cut short certifies nothing
        and the next one continues.
    tol : float or None
        Relative block-gap tolerance; None: 1e-7 for two-layer units (interior-point accuracy), else 1e-9.
    time_limit : float or None
        Seconds (grow and Adam). A deadline, checked inside the local descent, the pattern enumeration and the
        polar check: the fit keeps the best point with status ``"time_limit"`` and claims no certificate it did
        not compute. Ctrl-C likewise returns the best point as ``"interrupted"``.
    random_state : int or None
        Seeds the start, sampled patterns and Adam.

    Attributes
    ----------
    subnetwork_ : tuple of int
        The architecture of one subnetwork as trained, its input including the bias column.
    n_features_in_ : int
    weights_ : list of ndarray
        ``W_k`` stacked over subnetworks, shape ``(r, n_{k+1}, n_k)`` (first layer includes the bias column).
    U_, alpha_ : ndarray
        For ``[d, 1, 1]``: unit input weights ``(r, d[+1])`` and output weights ``(r,)``.
    result_ : multiconvex.Result
        ``certificate.global_optimal``, ``certificate.polar``, ``certificate.globalopt`` (λ, polar
        interval, how computed, patterns checked, stationarity, proven lower bound and gap),
        ``subnetworks``.
    objective_ : float

    Examples
    --------
    >>> import numpy as np
    >>> from multiconvex.models import ParallelReLUNetwork
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((20, 2)); y = np.abs(X[:, 0]) - X[:, 1]
    >>> net = ParallelReLUNetwork(lam=0.5, solver="clarabel", patterns="exact", random_state=0).fit(X, y)
    >>> net.result_.certificate.global_optimal, net.subnetwork_
    (True, (3, 1, 1))
    """

    def __init__(self, subnetwork: Any = DEPRECATED, lam: float = 0.1, bias: bool = True,
                 regulariser: str = "weight_decay", certify: bool = True, n_subnetworks: int = 1,
                 seed: Any = DEPRECATED, *, hidden_layer_sizes: Sequence[int] = (1,), algorithm: str = "grow",
                 solver: Any = "clarabel", patterns: Any = "auto", max_rounds: int | None = None,
                 max_iter: int | None = None, tol: float | None = None, time_limit: float | None = None,
                 random_state: int | None = None):
        self.subnetwork = subnetwork
        self.lam = lam
        self.bias = bias
        self.regulariser = regulariser
        self.certify = certify
        self.n_subnetworks = n_subnetworks
        self.seed = seed
        self.hidden_layer_sizes = hidden_layer_sizes
        self.algorithm = algorithm
        self.solver = solver
        self.patterns = patterns
        self.max_rounds = max_rounds
        self.max_iter = max_iter
        self.tol = tol
        self.time_limit = time_limit
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    # -- configuration ---------------------------------------------------------------------------
    def _given_subnetwork(self) -> tuple[int, ...] | None:
        """The deprecated full ``subnetwork`` when the user passed it (with a FutureWarning), else None."""
        if isinstance(self.subnetwork, str) and self.subnetwork == DEPRECATED:
            return None
        warnings.warn("ParallelReLUNetwork(subnetwork=[d, n_1, ..., n_out]) is deprecated and will be removed in "
                      "the next release; use ParallelReLUNetwork(hidden_layer_sizes=[n_1, ...]): the input and "
                      "output sizes are read from the data.", FutureWarning, stacklevel=4)
        try:
            sizes = tuple(int(s) for s in self.subnetwork)
        except (TypeError, ValueError):
            sizes = ()
        if len(sizes) < 3 or any(s < 1 for s in sizes) or list(sizes) != list(self.subnetwork):
            raise InvalidInputError(f"ParallelReLUNetwork: subnetwork must be a list [d, n_1, ..., n_out] of at "
                                    f"least 3 positive ints (input, hidden..., output), got {self.subnetwork!r}.")
        return sizes

    def _random_state(self, where: str) -> int | None:
        pinned = self._pinned()
        if pinned is not None:
            return pinned[0]
        value = self.random_state if isinstance(self.seed, str) and self.seed == DEPRECATED else self._renamed(
            "seed", "random_state")
        return check_random_state(value, "random_state", where=where)

    def _hidden(self, where: str) -> tuple[int, ...]:
        return check_hidden_sizes(self.hidden_layer_sizes, where, allow_empty=False,
                                  example="the hidden widths of one subnetwork, e.g. (1,)")

    def _config(self, n_features: int | None, where: str, n_outputs: int = 1) -> tuple[tuple[int, ...], float]:
        """``(sizes, λ)``: one subnetwork's architecture (input with the bias column) and the checked λ."""
        given = self._given_subnetwork()
        sizes = given if given is not None else (n_features or 1, *self._hidden(where), n_outputs)
        lam = check_scalar(self.lam, name="lam", where=where, strict=True)
        if self.regulariser not in REGULARISERS:
            raise InvalidInputError(f"{where}: regulariser={self.regulariser!r}; use one of {REGULARISERS}.")
        if not isinstance(self.n_subnetworks, int) or isinstance(self.n_subnetworks, bool) or self.n_subnetworks < 0:
            raise InvalidInputError(f"{where}: n_subnetworks must be an int >= 0, got {self.n_subnetworks!r}.")
        K = len(sizes) - 1
        p = regulariser_degree(self.regulariser, K)
        if p != K and self.certify:
            raise InvalidInputError(f"{where}: mismatched regulariser: "
                                    + MISMATCH_EXPLANATION.format(K=K, reg=self.regulariser, p=p))
        if n_features is not None:
            d_in = n_features + int(bool(self.bias))
            if sizes[0] not in (n_features, d_in):
                raise InvalidInputError(f"{where}: subnetwork[0]={sizes[0]} but X has {n_features} features"
                                        + (f" ({d_in} with the bias column)" if self.bias else "") + ".")
            sizes = (d_in,) + sizes[1:]
        return sizes, lam

    @property
    def _two_layer_scalar(self) -> bool:
        """Whether the fitted (or configured) subnetwork is a two-layer unit ``[d, 1, 1]``."""
        if hasattr(self, "subnetwork_"):
            return _is_unit(self.subnetwork_)
        given = self._given_subnetwork()
        return _is_unit(given) if given is not None else self._hidden(type(self).__name__) == (1,)

    def _inputs(self, X: Any, where: str, reset: bool = False) -> np.ndarray:
        """X checked (``n_features_in_`` set when ``reset``, compared otherwise), with the bias column."""
        X = self._validate_data(X, reset=reset, where=where)
        return np.hstack([X, np.ones((len(X), 1))]) if self.bias else X

    def _targets(self, y: Any, n: int, where: str, out: int | None = None) -> np.ndarray:
        y = check_array(y, name="y", where=where)
        if y.shape[0] != n:
            raise InvalidInputError(f"{where}: y has {y.shape[0]} rows but X has {n}.")
        Y = y.reshape(n, -1)
        if out is not None and Y.shape[1] != out:
            raise InvalidInputError(f"{where}: y has {Y.shape[1]} output column(s) but the subnetwork's last "
                                    f"size is {out}.")
        return Y

    def _data(self, X: Any, y: Any, where: str, fit: bool = False):
        """``(X with the bias column, Y (N, out), sizes, λ)``; the fitted architecture unless ``fit``."""
        if fit or not hasattr(self, "subnetwork_"):
            X, y = self._validate_data(X, y, reset=fit, where=where, multi_output=True, y_numeric=True)
            Xa = np.hstack([X, np.ones((len(X), 1))]) if self.bias else X
            Y = self._targets(y, len(Xa), where)
            sizes, lam = self._config(X.shape[1], where, Y.shape[1])
            self._targets(Y, len(Xa), where, sizes[-1])
            return Xa, Y, sizes, lam
        Xa = self._inputs(X, where)
        sizes = self.subnetwork_
        _, lam = self._config(None, where)
        return Xa, self._targets(y, len(Xa), where, sizes[-1]), sizes, lam

    def initial_weights(self, X: Any, y: Any = None) -> list[np.ndarray]:
        """The seeded start: ``n_subnetworks`` subnetworks at torch's ``nn.Linear`` scale (``y``: the
        number of outputs; default one, or the deprecated ``subnetwork``'s)."""
        where = f"{type(self).__name__}.initial_weights"
        X = check_array(X, name="X", where=where, ndim=2)
        out = 1 if y is None else check_array(y, name="y", where=where).reshape(len(X), -1).shape[1]
        sizes, _ = self._config(X.shape[1], where, out)
        return self._start(sizes, where)

    def _start(self, sizes: tuple[int, ...], where: str) -> list[np.ndarray]:
        n = check_int(self.n_subnetworks, "n_subnetworks", minimum=0, where=where)
        return init_weights(sizes, n, np.random.default_rng(self._random_state(where)))

    def _init_from(self, init: Any, sizes: tuple[int, ...], where: str) -> list[np.ndarray]:
        if isinstance(init, ParallelReLUNetwork):
            init = init.weights_
        if isinstance(init, dict):
            if set(init) == {"U", "alpha"}:
                U = np.asarray(init["U"], dtype=float)
                a = np.asarray(init["alpha"], dtype=float).reshape(-1)
                init = [U[:, None, :], a[:, None, None]]
            else:
                init = [init[f"W{k + 1}"] for k in range(len(sizes) - 1)]
        Ws = [check_array(W, name=f"init W{k + 1}", where=where, ndim=3) for k, W in enumerate(init)]
        expect = [(n, m) for m, n in zip(sizes[:-1], sizes[1:])]
        if len(Ws) != len(expect) or any(W.shape[1:] != e or W.shape[0] != Ws[0].shape[0] for W, e in zip(Ws, expect)):
            raise InvalidInputError(f"{where}: init weights have shapes {[W.shape for W in Ws]}, expected "
                                    f"(r, n_out, n_in) per layer with {expect}.")
        return Ws

    # -- fitting ------------------------------------------------------------------------------------
    @unchanged_on_error
    def fit(self, X: Any, y: Any, *, init: Any = None, solver_options: dict | None = None,
            polar_options: dict | None = None, epochs: int = 5000, lr: float = 1e-2, **grow_options: Any):
        """Fit by the grow meta-algorithm (default) or by Adam (a baseline; certified afterwards when possible). A fit
        that raises (a refused parameter, solver or ``init``) leaves the estimator as it was.

        Parameters
        ----------
        X : array-like (N, n_features)
        y : array-like (N,) or (N, out)
        init : ParallelReLUNetwork, dict or list of arrays, optional
            A warm start: a fitted network, ``{"U": (r, d), "alpha": (r,)}``, ``{"W1": ..., ...}`` or the
            stacked weights. Any number of subnetworks.
        solver_options, polar_options : dict, optional
            Passed to the backend, and to :func:`multiconvex.globalopt.relu_polar.relu_polar`
            (other architectures: ``{"n_starts": ..., "ascent_steps": ...}`` of the multi-start ascent).
        epochs, lr : Adam's settings (``algorithm="adam"``): epochs at most (an int ``>= 0``; ``time_limit`` may end the
            run sooner) and the step size (``> 0``).
        **grow_options
            :class:`multiconvex.globalopt.GrowOptions` (``max_subnetworks``, ``max_rounds``, ``polar_tol``,
            ``gap_tol``, ``n_maximisers``; ``max_rounds`` overrides the constructor's). Defaults for two-layer
            units: ``polar_tol=gap_tol=1e-5``. ``algorithm``, ``solver``, ``patterns``, ``max_iters``, ``tol`` and
            ``time_limit`` here are deprecated: they are constructor parameters now.

        Returns
        -------
        self
        """
        where = f"{type(self).__name__}.fit"
        opts = self._fit_time_params(grow_options, _FIT_TIME)
        if opts["algorithm"] not in ALGORITHMS:
            raise InvalidInputError(f"{where}: algorithm={opts['algorithm']!r}; use one of {ALGORITHMS}.")
        check_int(opts["max_iter"], "max_iter", minimum=0, allow_none=True, where=where)  # 0: certify the start
        check_int(self.max_rounds, "max_rounds", minimum=1, allow_none=True, where=where)
        check_number(opts["tol"], "tol", minimum=0.0, allow_none=True, where=where)
        check_number(opts["time_limit"], "time_limit", minimum=0.0, strict=True, allow_none=True, where=where)
        known = set(GrowOptions.__dataclass_fields__) - {"info", "max_iters", "tol", "time_limit"}  # max_rounds too
        unknown = sorted(set(grow_options) - known)
        if unknown:
            raise InvalidInputError(f"{where}: unknown option(s) {unknown}; grow options are {sorted(known)} (and "
                                    "the constructor's max_iter, tol, time_limit).")
        epochs = check_int(epochs, "epochs", minimum=0, where=where)
        lr = check_number(lr, "lr", minimum=0.0, strict=True, where=where)
        solver, patterns = opts["solver"], opts["patterns"]
        _check_usable(solver, runs=opts["algorithm"] != "adam")  # Adam's fit solves nothing
        check_solver_options(solver_options, solver, where=where)
        Xa, Y, sizes, lam = self._data(X, y, where, fit=True)
        self._pin_seed(where)
        Ws = self._init_from(init, sizes, where) if init is not None else self._start(sizes, where)
        self.subnetwork_ = sizes
        if opts["algorithm"] == "adam":
            return self._fit_adam(Xa, Y, Ws, sizes, lam, epochs, lr, opts["time_limit"], solver, patterns,
                                  solver_options, polar_options)
        unit = _is_unit(sizes)
        defaults = (dict(max_iters=500, tol=1e-7, polar_tol=1e-5, gap_tol=1e-5) if unit
                    else dict(tol=1e-9, max_rounds=20, max_iters=200))
        chosen = {"max_iters": opts["max_iter"], "tol": opts["tol"], "time_limit": opts["time_limit"],
                  "max_rounds": self.max_rounds}
        grow_opts = GrowOptions(**{**defaults, **{k: v for k, v in chosen.items() if v is not None}, **grow_options})
        return self._fit_grow(Xa, Y, Ws, sizes, lam, solver, patterns, solver_options, polar_options, grow_opts)

    def _problem(self, Xa, Y, sizes, lam, solver, patterns, solver_options, polar_options):
        if self._two_layer_scalar:
            return ReLUGrowProblem(Xa, Y[:, 0], lam, solver=solver, patterns=patterns, solver_options=solver_options,
                                   polar_options=polar_options, seed=self._random_state("ParallelReLUNetwork"))

        extra = {k: v for k, v in (polar_options or {}).items() if k in ("n_starts", "ascent_steps")}
        return TorchGrowProblem(Xa, Y, sizes, lam, self.regulariser, seed=self._random_state("ParallelReLUNetwork"),
                                **extra)

    def _state(self, Ws: list[np.ndarray]):
        if self._two_layer_scalar:
            return ReLUState(Ws[0][:, 0, :].copy(), Ws[1][:, 0, 0].copy())

        return TorchState(tuple(W.copy() for W in Ws))

    def _weights(self, state) -> list[np.ndarray]:
        if self._two_layer_scalar:
            return [state.U[:, None, :].copy(), state.alpha[:, None, None].copy()]
        return [W.copy() for W in state.Ws]

    def _fit_grow(self, Xa, Y, Ws, sizes, lam, solver, patterns, solver_options, polar_options, opts):
        problem = self._problem(Xa, Y, sizes, lam, solver, patterns, solver_options, polar_options)
        opts.info = {"patterns": patterns if isinstance(patterns, (str, int)) else "array"}
        result, state = grow(problem, self._state(Ws), opts)
        used = getattr(problem, "patterns", None)  # "auto" resolved (two-layer units)
        if isinstance(used, (str, int)):
            result.info["patterns_used"] = used
        if not self.certify:
            result.certificate = _uncertified(result.certificate)
        self._store(result, self._weights(state))
        return self

    def _fit_adam(self, Xa, Y, Ws, sizes, lam, epochs, lr, time_limit, solver, patterns, solver_options,
                  polar_options):
        t0 = time.perf_counter()
        Ws, hist, ran, timed_out = adam(Xa, Y, Ws, lam, self.regulariser, epochs=epochs, lr=lr, time_limit=time_limit)
        history = [HistoryEntry(i, t, f, None, math.nan, 0.0) for i, (t, f) in enumerate(hist)]
        problem = self._problem(Xa, Y, sizes, lam, solver, patterns, solver_options, polar_options)
        f = problem.objective(self._state(Ws))
        stop = f", stopped at time_limit={time_limit} s" if timed_out else ""
        result = Result(objective=f, status="time_limit" if timed_out else "iteration_limit", iterations=ran,
                        history=history, solver_time=0.0, total_time=time.perf_counter() - t0,
                        certificate=Certificate({}, 0.0, False), values={f"W{k + 1}": W for k, W in enumerate(Ws)},
                        algorithm="adam",
                        message=f"Adam: {ran} epochs at lr={lr}{stop}; call certificate(X, y) for the global "
                                "certificate",
                        subnetworks=Ws[0].shape[0])
        self._store(result, Ws)
        return self

    def _store(self, result, Ws: list[np.ndarray]) -> None:
        self.result_ = result
        self._warn_unconverged(result)
        self.weights_ = Ws
        self.objective_ = float(result.objective)
        self.n_iter_ = int(result.iterations)
        self.n_subnetworks_ = int(Ws[0].shape[0])
        if self._two_layer_scalar:
            self.U_ = Ws[0][:, 0, :].copy()
            self.alpha_ = Ws[1][:, 0, 0].copy()

    # -- the certificate at the current weights ------------------------------------------------------------
    def certificate(self, X: Any, y: Any, *, solver: Any = None, patterns: Any = None, tol: float = 1e-7,
                    polar_tol: float = 1e-5, gap_tol: float = 1e-5, polar_options: dict | None = None):
        """The global certificate (:class:`multiconvex.globalopt.GlobalCertificate`) at the fitted weights,
        wherever they came from (e.g. Adam). Nothing is trained. ``solver`` and ``patterns`` default to
        the constructor's."""
        where = f"{type(self).__name__}.certificate"
        self._check_fitted("weights_")
        Xa, Y, sizes, lam = self._data(X, y, where)
        solver = self.solver if solver is None else solver
        _check_usable(solver)
        patterns = self.patterns if patterns is None else patterns
        problem = self._problem(Xa, Y, sizes, lam, solver, patterns, None, polar_options)
        if hasattr(problem, "screen"):
            problem.screen = 0  # the full polar: a screen's lower bound would certify nothing here
        state = self._state(self.weights_)
        f, f_err = bounded_objective(problem, state)  # the gap rests on a proven upper bound of F
        pol = problem.polar(state, 1)
        G = problem.residual(state)
        return make_certificate(G=G, Y=problem.Y, lam=lam, objective=f, objective_error=f_err, polar=pol.value,
                                polar_upper=pol.upper,
                                polar_exact=pol.exact, method=pol.method, block_gaps=problem.block_gaps(state),
                                block_tol=tol * abs(f), n_subnetworks=problem.n_subnetworks(state),
                                patterns_checked=pol.patterns_checked, patterns_total=pol.patterns_total,
                                polar_tol=polar_tol, gap_tol=gap_tol)

    # -- the same objective for cvxpy and Pyomo ----------------------------------------------------------
    def _units_for_export(self, X: Any, y: Any, where: str):
        if not self._two_layer_scalar or self.regulariser != "weight_decay":
            raise InvalidInputError(
                f"{where}: the cvxpy/Pyomo forms cover two-layer units (subnetwork [d, 1, 1]) with "
                f"regulariser='weight_decay'; this model has hidden_layer_sizes={self.hidden_layer_sizes!r}, "
                f"regulariser={self.regulariser!r}.")
        Xa, Y, sizes, lam = self._data(X, y, where)
        Ws = self.weights_ if hasattr(self, "weights_") else self._start(sizes, where)
        return Xa, Y[:, 0], lam, Ws[0][:, 0, :], Ws[1][:, 0, 0]

    def to_cvxpy(self, X: Any, y: Any):
        """``½‖y − Σ_j (X u_j)_+ α_j‖² + λ Σ_j ½(‖u_j‖² + α_j²)`` as a cvxpy problem with blocks ``[[U], [alpha]]``.

        The variables hold the fitted weights (or the seeded start); for small data. Two-layer units only.
        """
        Xa, y, lam, U0, a0 = self._units_for_export(X, y, f"{type(self).__name__}.to_cvxpy")
        U = cp.Variable(U0.shape, name="U")
        alpha = cp.Variable((1, len(a0)), name="alpha")
        U.value, alpha.value = U0, a0.reshape(1, -1)
        out = alpha @ mc.relu(U @ Xa.T)  # (1, N)
        obj = 0.5 * cp.sum_squares(out - y.reshape(1, -1)) + lam / 2 * (cp.sum_squares(U) + cp.sum_squares(alpha))
        return CvxpyModel(cp.Problem(cp.Minimize(obj)), [[U], [alpha]], {"U": U, "alpha": alpha})

    def to_pyomo(self, X: Any, y: Any):
        """The same objective as a full-space Pyomo model (a ``[d, r, 1]`` network without layer biases,
        the bias as a constant input column), blocks ``[[W1], [W2]]``, starting at the fitted weights
        (or the seeded start) with consistent activations. Two-layer units only; small data."""
        Xa, y, lam, U0, a0 = self._units_for_export(X, y, f"{type(self).__name__}.to_pyomo")
        pm = relu_network_model(Xa, y, [Xa.shape[1], len(a0), 1], weight_decay=lam / 2, bias=False,
                                weights=[U0, a0.reshape(1, -1)], loss_scale=0.5)
        set_consistent_activations(pm.model)
        return pm

    # -- prediction ----------------------------------------------------------------------------------------
    def predict(self, X: Any) -> np.ndarray:
        """``Σ_j φ(W_j)(x)``: shape (N,) for a scalar output, else (N, out)."""
        self._check_fitted("weights_")
        Xa = self._inputs(X, f"{type(self).__name__}.predict")
        with torch.no_grad():
            out = forward([torch.as_tensor(W, dtype=DTYPE) for W in self.weights_],
                          torch.tensor(Xa, dtype=DTYPE)).numpy()  # a copy: X may be read-only
        return out[:, 0] if out.shape[1] == 1 else out

    def objective(self, X: Any, y: Any) -> float:
        """The training objective (sums, with λ) at the fitted weights on ``(X, y)``."""
        self._check_fitted("weights_")
        Xa, Y, _, lam = self._data(X, y, f"{type(self).__name__}.objective")
        with torch.no_grad():
            return float(objective([torch.as_tensor(W, dtype=DTYPE) for W in self.weights_],
                                   torch.as_tensor(Xa, dtype=DTYPE), torch.as_tensor(Y, dtype=DTYPE), lam,
                                   self.regulariser))


def _uncertified(cert):
    """certify=False: keep the block gaps, drop any global claim (global_optimal None)."""
    return dataclasses.replace(cert, global_optimal=None, globalopt=None)
