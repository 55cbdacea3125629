"""Fully connected ReLU networks trained by iterated convex optimization over layer blocks, or by the
gradient baselines, with certificates (THEORY §1–3, §5) — as scikit-learn estimators.

`ReLUNetwork` is the general model, with an explicit ``loss``; `ReLURegressor` and `ReLUClassifier`
(:mod:`.relu_estimators`) fix it, shaped like ``MLPRegressor`` / ``MLPClassifier``. The architecture and
targets are read from the data by :class:`._relu_network_data.ReLUData`. The forward and backward passes, the block
subproblems' matrices, the baselines and the diagnostics run in torch on the model's ``device``; the
convex block subproblems go to the backend named by ``solver`` (see :mod:`multiconvex.nets`).
"""

from __future__ import annotations

import contextlib
import logging
import time as _time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.metrics import accuracy_score, r2_score
from sklearn.utils.metaestimators import available_if

from multiconvex.cvxpy_front.solve import _configure_logging
from multiconvex.drivers import DriverOptions, run
from multiconvex.errors import InvalidInputError
from multiconvex.executor import make_executor
from multiconvex.nets import (
    ENTRY_BUDGET,
    GRADIENT_ALGORITHMS,
    HYBRID_ALGORITHMS,
    LOSSES,
    GradientOptions,
    NetForm,
    forward,
    gradient_basis_gap,
    init_params,
    normalised_curvature,
    objective,
    params_from_named,
    parse_hybrid,
    region_test,
    run_gradient,
    run_hybrid,
)
from multiconvex.nets.certificates import partial_minimum_certificate
from multiconvex.nets.hybrid import as_layer_steps, run_rounds
from multiconvex.result import LimitWords
from multiconvex.solvers import dispatch, problem_class, resolve
from multiconvex.solvers.options import check_solver_options
from multiconvex.validation import check_choice, check_flag, check_int, check_number, check_solver_spec

from ._base import DEPRECATED, CvxpyModel, unchanged_on_error
from ._relu_network_data import ReLUData, is_classification
from ._relu_network_forms import cvxpy_form, pyomo_form, read_sequential, sequential

__all__ = ["ReLUNetwork"]

logger = logging.getLogger("multiconvex")

BLOCK_ALGORITHMS = ("jacobi", "gauss-seidel")
#: block drivers, gradient baselines, and "<gradient>+<block driver>" (the gradient phase, then certifying sweeps)
ALGORITHMS = BLOCK_ALGORITHMS + GRADIENT_ALGORITHMS + HYBRID_ALGORITHMS
# fit-time spellings of what are constructor parameters now (kept for one release)
_FIT_TIME = {"algorithm": "algorithm", "solver": "solver", "max_iters": "max_iter", "tol": "tol",
             "time_limit": "time_limit", "warm_start": "warm_start"}


@contextlib.contextmanager
def _torch_threads(n: int | None):
    """Limit torch's intra-op threads for the duration (restored after).

    With small block subproblems the backend and torch alternate many times a second; torch's
    OpenMP workers spin-wait after each op and steal the cores the solver needs (measured: 2× the
    wall time of a [5, 8, 8, 1] run on 2 cores). ``None`` leaves torch alone.
    """
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


class ReLUNetwork(ReLUData):
    """A ReLU network ``[d, n_1, ..., n_L]`` with a linear output, scikit-learn style.

    Minimises ``F(θ) = (1/N) Σ ℓ(f(x_i; θ), y_i) + (λ/2)‖θ‖²`` (``λ = weight_decay``, on every
    parameter, biases included). ``algorithm`` picks iterated convex optimization over layer blocks
    (``"jacobi"``: R&R Def 7.1, best of all block solves; ``"gauss-seidel"``: blocks in turn) or a
    torch baseline (``"gd"``, ``"sgd"``, ``"adam"``, ``"lbfgs"``); every algorithm returns the same
    :class:`multiconvex.Result` in ``result_`` with the partial-minimum certificate of its end point.
    A regressor for ``loss="squared"``, a classifier otherwise (scikit-learn's tags follow ``loss``);
    `ReLURegressor` and `ReLUClassifier` fix the loss.

    Parameters
    ----------
    sizes : deprecated
        The old ``[d, n_1, ..., n_out]`` (a FutureWarning; removed in the next release): pass
        ``hidden_layer_sizes=[n_1, ...]``; ``d`` and ``n_out`` are read from the data.
    loss : {"squared", "logistic", "softmax"}
        ``½‖f − y‖²`` (regression, any number of outputs), ``log(1 + e^{−y f})`` (binary, one output),
        cross-entropy (one output per class).
    weight_decay : float
        ``λ ≥ 0``.
    activation : {"relu", "leaky_relu"}
    negative_slope : float
        Slope of leaky ReLU for ``z < 0`` (ignored for ReLU).
    bias : bool
    device : str
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ...: every tensor lives there.
    seed : deprecated
        The old spelling of ``random_state``.
    hidden_layer_sizes : sequence of int, default (16,)
        Widths of the hidden layers (``()``: a linear model). Smaller than ``MLPRegressor``'s (100,):
        every hidden unit (or group of units) is a convex block solve per sweep.
    algorithm : {"gauss-seidel", "jacobi", "gd", "sgd", "adam", "lbfgs", "adam+gauss-seidel", "lbfgs+gauss-seidel", ...}
        A block driver, a gradient baseline, or ``"<gradient>+<block driver>"``: the gradient method for
        ``max_iter`` epochs, then block sweeps from its end point (at most ``block_iters``) until
        the partial-minimum certificate holds (:mod:`multiconvex.nets.hybrid`).
    solver : str or list of str, default "auto"
        Backend for the block subproblems, any registry name or a fallback list. ``"auto"``:
        per block — squared loss: the closed form (``lstsq``) for an unconstrained output-layer
        block, DAQP (dense active set, exact) for a small piece-constrained one, then ProxQP,
        Clarabel, OSQP (:func:`multiconvex.solvers.dispatch.solve`); logistic/softmax: Newton steps on
        DAQP with a proven lower bound per unit block (:mod:`multiconvex.nets.smooth_units`; needs
        ``weight_decay > 0`` or ``prox > 0``), else ``clarabel-native`` on the exponential-cone
        program. Also used for the certificate of a gradient run.
    max_iter : int, default 100
        Outer iterations (block drivers), steps (``gd``), quasi-Newton iterations (``lbfgs``: torch's ``LBFGS``,
        strong-Wolfe line search) or epochs (``sgd``, ``adam``).
    tol : float, default 1e-6
        Relative tolerance of the block gaps (``tol · |F|``, no absolute floor).
    time_limit : float or None
        Seconds.
    random_state : int or None
        Seeds the initial weights (torch's ``nn.Linear`` scale) and the minibatch order.
    warm_start : bool, default False
        Start ``fit`` from the current weights (when fitted) instead of the seeded start.
    lr : float or None, default None
        Step size of the gradient methods (alone or a hybrid's first phase); ``None``: the method's own default
        (:class:`multiconvex.nets.GradientOptions`).
    batch_size : int, "auto" or None, default "auto"
        Minibatch size of ``sgd`` and ``adam``: ``"auto"`` is ``min(200, N)`` as in ``MLPRegressor``; ``None`` the
        full batch; ``gd`` and ``lbfgs`` always take the full batch (as ``MLPRegressor``'s ``lbfgs``).
    block_iters : int, default 1000
        Hybrids (``"adam+gauss-seidel"`` ...): sweeps of the block phase at most (``max_iter`` counts the gradient
        phase's epochs, ``time_limit`` the whole run).

    Attributes
    ----------
    coefs_, intercepts_ : lists of ndarray
        ``W_k`` of shape ``(n_k, n_{k-1})`` and ``b_k`` (scikit-learn's MLP names; torch's layout).
    sizes_ : tuple of int
        ``(d, n_1, ..., n_out)``, the architecture fitted.
    loss_ : str
        The loss fitted.
    classes_ : ndarray
        Class labels (classification).
    n_features_in_ : int
    result_ : multiconvex.Result
    objective_ : float
    n_iter_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from multiconvex.models import ReLUNetwork
    >>> X = np.random.default_rng(0).standard_normal((40, 3)); y = np.abs(X[:, 0]) - X[:, 1]
    >>> net = ReLUNetwork(hidden_layer_sizes=[4], weight_decay=1e-2, max_iter=200, random_state=0).fit(X, y)
    >>> net.result_.certificate.is_partial_minimum, net.score(X, y) > 0.5, net.sizes_
    (True, True, (3, 4, 1))

    Joint steps of whole layers between the unit sweeps (``layer_steps``) move a deeper network much faster;
    the certificate is still the unit blocks':

    >>> kw = dict(hidden_layer_sizes=[8, 8], weight_decay=1e-3, max_iter=20, random_state=0)
    >>> plain, rounds = ReLUNetwork(**kw).fit(X, y), ReLUNetwork(**kw).fit(X, y, layer_steps=True)
    >>> rounds.result_.objective < plain.result_.objective, len(rounds.result_.info["layer_steps"]) > 0
    (True, True)
    """

    def __init__(self, sizes: Any = DEPRECATED, loss: str = "squared", weight_decay: float = 1e-4,
                 activation: str = "relu", negative_slope: float = 0.01, bias: bool = True,
                 device: str = "auto", seed: Any = DEPRECATED, *, hidden_layer_sizes: Sequence[int] = (16,),
                 algorithm: str = "gauss-seidel", solver: str | Sequence[str] = "auto", max_iter: int = 100,
                 tol: float = 1e-6, time_limit: float | None = None, random_state: int | None = None,
                 warm_start: bool = False, lr: float | None = None, batch_size: int | str | None = "auto",
                 block_iters: int = 1000):
        self.sizes = sizes
        self.loss = loss
        self.weight_decay = weight_decay
        self.activation = activation
        self.negative_slope = negative_slope
        self.bias = bias
        self.device = device
        self.seed = seed
        self.hidden_layer_sizes = hidden_layer_sizes
        self.algorithm = algorithm
        self.solver = solver
        self.max_iter = max_iter
        self.tol = tol
        self.time_limit = time_limit
        self.random_state = random_state
        self.warm_start = warm_start
        self.lr = lr
        self.batch_size = batch_size
        self.block_iters = block_iters

    # -- what the subclasses fix ---------------------------------------------------------------
    def _params(self):
        self._check_fitted("coefs_")
        vals = {f"W{k + 1}": W for k, W in enumerate(self.coefs_)}
        vals.update({f"b{k + 1}": b for k, b in enumerate(self.intercepts_ or [])})
        return params_from_named(self._arch(type(self).__name__), vals, self._device(), where=type(self).__name__,
                                 name="the fitted weights", finite=False)

    def _store(self, params) -> None:
        self.coefs_ = [W.detach().cpu().numpy().copy() for W, _ in params]
        self.intercepts_ = [b.detach().cpu().numpy().copy() for _, b in params] if self.bias else None

    def initial_params(self):
        """The seeded start (torch ``nn.Linear`` scale), as torch tensors on the model's device
        (the architecture of the last fit, or of the deprecated ``sizes``)."""
        where = f"{type(self).__name__}.initial_params"
        return init_params(self._arch(where), self._random_state(where), self._device())

    def _form(self, arch, X, T, solver, block_size, solver_options, budget, plan=None):
        # the user's choice resolved once (unknown names and a missing named backend fail here):
        # squared-loss blocks are BlockSubproblem values for the dispatcher's plan
        plan = dispatch.make_plan(solver, options=dict(solver_options or {})) if plan is None else plan

        def backends_for(subproblem, name):
            return resolve(solver, problem_class(subproblem))

        def resolve_class(cls, name):  # exp-cone blocks are matrices: "auto" tries clarabel-native first
            return resolve(solver, cls, matrix_level=True)

        return NetForm(arch, X, T, float(self.weight_decay), backends_for=backends_for, block_size=block_size,
                       budget=budget or ENTRY_BUDGET, solver_options=solver_options, resolve_class=resolve_class,
                       plan=plan)

    def _options(self, deprecated: dict[str, Any], where: str) -> dict[str, Any]:
        """The constructor's algorithm and stopping rules (or their deprecated fit-time spellings), checked."""
        opts = self._fit_time_params(deprecated, _FIT_TIME)
        if deprecated:
            raise TypeError(f"{where}() got unexpected keyword argument(s) {sorted(deprecated)}.")
        loss = self._loss_param()
        if loss != "auto" and loss not in LOSSES:
            raise InvalidInputError(f"{where}: loss={loss!r}; use one of {', '.join(LOSSES)}.")
        if opts["algorithm"] not in ALGORITHMS:
            raise InvalidInputError(f"{where}: algorithm={opts['algorithm']!r}; use one of {', '.join(ALGORITHMS)}.")
        opts["max_iter"] = check_int(opts["max_iter"], "max_iter", minimum=1, where=where)
        opts["tol"] = check_number(opts["tol"], "tol", minimum=0.0, where=where)
        opts["time_limit"] = check_number(opts["time_limit"], "time_limit", minimum=0.0, strict=True,
                                          allow_none=True, where=where)
        opts["solver"] = check_solver_spec(opts["solver"], "solver", where=where)
        return opts

    # -- training ------------------------------------------------------------------------------
    @unchanged_on_error
    def fit(self, X, y, *, init: Any = None, solver_options: dict | None = None,
            block_size: int | str | None = "auto", budget: int | None = None, prox: float = 0.0,
            extrapolate: bool = False, executor: Any = None, workers: int | None = None, certify: bool = True,
            lr: float | None = None, lr_schedule: str = "constant", batch_size: int | str | None = None,
            grad_tol: float = 0.0, log_every: int = 1, record_diagnostics: bool = False,
            torch_threads: int | None = 1, verbose: bool = False, progress: bool | None = None,
            block_iters: int | None = None, callback: Any = None, layer_steps: Any = None, **deprecated: Any):
        """Train the network; returns self. A fit that raises (a refused parameter, solver, device or warm start)
        leaves the estimator as it was.

        Parameters
        ----------
        X : array-like (N, d)
        y : array-like (N,) or (N, n_out)
            Targets (regression) or labels (classification).
        init : dict, optional
            ``{"W1": ..., "b1": ...}`` start (exactly the keys of the architecture read from the data, finite);
            default: the seeded start, or the current weights with ``warm_start=True``.
        block_size : "auto", "layer", "unit" or int
            Blocks: whole layers, single units, or groups of units (``"auto"``: the largest groups
            whose matrices fit in ``budget`` entries; see :mod:`multiconvex.nets.blocks`).
        prox, extrapolate, executor, workers, verbose, progress, solver_options
            As in :func:`multiconvex.solve` (the block drivers and the hybrids' block phase; ``extrapolate``: try
            ``x + β(x − x_prev)`` after each sweep, kept only when the objective is lower).
        certify : bool
            Compute the partial-minimum certificate of a gradient run's end point (block drivers
            always certify).
        lr, lr_schedule, batch_size, grad_tol, log_every, record_diagnostics
            Gradient baselines only (see :class:`multiconvex.nets.GradientOptions`); ``lr`` and ``batch_size``
            given here override the constructor's for this fit (``None``: the constructor's).
        torch_threads : int or None
            torch intra-op threads while the block drivers run (see :func:`_torch_threads`).
        block_iters : int, optional
            Overrides the constructor's ``block_iters`` for this fit.
        callback : callable, optional
            ``callback(entry)`` after every outer iteration (sweep or epoch) with its
            :class:`~multiconvex.HistoryEntry`; a truthy return stops the run (status ``"interrupted"``).
        layer_steps : bool or LayerSteps, default None
            Block drivers and hybrids, squared loss with ``weight_decay > 0``: run the block iterations in rounds
            with joint Newton steps of whole layers between them (:class:`multiconvex.nets.hybrid.LayerSteps`;
            ``True``: its defaults). A layer step only lowers the objective; the certificate is still the unit
            blocks' (:func:`multiconvex.nets.hybrid.run_rounds`). ``None``/``False``: block iterations only.
        **deprecated
            ``algorithm``, ``solver``, ``max_iters``, ``tol``, ``time_limit``, ``warm_start``: constructor
            parameters now (a FutureWarning; removed in the next release).
        """
        where = f"{type(self).__name__}.fit"
        opts = self._options(deprecated, where)
        check_solver_options(solver_options, opts["solver"], where=where)  # misspelt names fail before any work
        plan = dispatch.make_plan(opts["solver"], options=dict(solver_options or {}))  # so do unknown solvers
        self._device(where)  # and a device this machine lacks
        check_number(prox, "prox", minimum=0.0, where=where)
        check_flag(extrapolate, "extrapolate", where=where)
        check_int(torch_threads, "torch_threads", minimum=1, allow_none=True, where=where)
        check_int(budget, "budget", minimum=1, allow_none=True, where=where)
        check_choice(lr_schedule, "lr_schedule", ("constant", "sqrt", "harmonic"), where=where)  # any algorithm
        seed = self._random_state(where)
        lr = self.lr if lr is None else lr
        batch_size = self.batch_size if batch_size is None else batch_size
        block_iters = check_int(self.block_iters if block_iters is None else block_iters, "block_iters", minimum=1,
                                where=where)
        steps = as_layer_steps(layer_steps, where)
        was_fitted = hasattr(self, "coefs_")
        if opts["warm_start"] and was_fitted:
            old_arch, old_params, old_classes = self._arch(where), self._params(), getattr(self, "classes_", None)
        arch, Xt, Tt = self._tensors(X, y, where, fit=True)
        if isinstance(batch_size, str):  # "auto": MLPRegressor's min(200, N) (gd takes the full batch anyway)
            if batch_size != "auto":
                raise InvalidInputError(f"{where}: batch_size={batch_size!r}; give an integer >= 1, 'auto' "
                                        "(min(200, N)) or None (the full batch).")
            batch_size = min(200, int(Xt.shape[0]))
        if init is not None:
            params0 = params_from_named(arch, init, Xt.device, where=where, name="init")
        elif opts["warm_start"] and was_fitted:
            if arch.loss != "squared" and not np.array_equal(old_classes, self.classes_):
                raise InvalidInputError(f"{where}: warm_start=True but y has the classes {self.classes_}, the fitted "
                                        f"network {old_classes}; give y with the same classes or refit with "
                                        "warm_start=False.")
            if old_arch.sizes != arch.sizes:
                raise InvalidInputError(f"{where}: warm_start=True but the data call for sizes {arch.sizes}, the "
                                        f"fitted network has {old_arch.sizes}; refit with warm_start=False.")
            params0 = old_params
        else:
            params0 = init_params(arch, seed, Xt.device)

        algorithm, solver, tol = opts["algorithm"], opts["solver"], opts["tol"]
        if algorithm not in BLOCK_ALGORITHMS and algorithm not in HYBRID_ALGORITHMS:  # a gradient baseline
            for name, value, given in (("layer_steps", layer_steps, steps is not None),
                                       ("extrapolate", extrapolate, bool(extrapolate))):
                if given:
                    raise InvalidInputError(f"{where}: {name}={value!r} applies to the block drivers and the "
                                            f"hybrids, not to algorithm={algorithm!r}: drop {name} or use e.g. "
                                            f"'{algorithm}+gauss-seidel'.")
        _configure_logging(verbose)
        with _torch_threads(torch_threads if Xt.device.type == "cpu" else None):
            form = self._form(arch, Xt, Tt, solver, block_size, solver_options, budget, plan)
            x0 = form.point_from_params(params0)
            ex = make_executor(executor, workers)
            try:
                if algorithm in BLOCK_ALGORITHMS:
                    dopts = DriverOptions(algorithm=algorithm, max_iters=opts["max_iter"], tol=tol,
                                          time_limit=opts["time_limit"], prox=float(prox),
                                          extrapolate=bool(extrapolate), executor=ex,
                                          verbose=verbose, progress=progress, callback=callback,
                                          words=LimitWords("max_iter"))
                    res = run(form, x0, dopts) if steps is None else run_rounds(form, params0, dopts, steps)
                    params = form.params_from_point(form.final_point)
                elif algorithm in HYBRID_ALGORITHMS:
                    grad_alg, block_alg = parse_hybrid(algorithm)
                    gopts = GradientOptions(algorithm=grad_alg, lr=lr, lr_schedule=lr_schedule,
                                            batch_size=batch_size, max_iters=opts["max_iter"], grad_tol=grad_tol,
                                            seed=seed, log_every=log_every, callback=callback,
                                            words=LimitWords("max_iter"), where=where)
                    dopts = DriverOptions(algorithm=block_alg, max_iters=block_iters, tol=tol,
                                          time_limit=opts["time_limit"], prox=float(prox),
                                          extrapolate=bool(extrapolate), executor=ex,
                                          verbose=verbose, progress=progress, callback=callback,
                                          words=LimitWords("block_iters"))
                    res, params = run_hybrid(form, params0, gopts, dopts, steps)
                else:
                    gopts = GradientOptions(algorithm=algorithm, lr=lr, lr_schedule=lr_schedule,
                                            batch_size=batch_size, max_iters=opts["max_iter"], grad_tol=grad_tol,
                                            time_limit=opts["time_limit"], seed=seed, log_every=log_every,
                                            record_diagnostics=record_diagnostics, callback=callback,
                                            words=LimitWords("max_iter"), where=where)
                    with _torch_threads(None):
                        res, params = run_gradient(arch, params0, Xt, Tt, float(self.weight_decay), gopts)
                    res.values = form.named_values(form.point_from_params(params))
                    left = None if opts["time_limit"] is None else opts["time_limit"] - res.total_time
                    if certify and res.status not in ("time_limit", "interrupted") and (left is None or left > 0):
                        t0 = _time.perf_counter()  # the certificate gets what is left of time_limit (a deadline)
                        res.certificate = partial_minimum_certificate(form, form.point_from_params(params), tol, ex,
                                                                      deadline=None if left is None else t0 + left)
                        res.info["certificate_time"] = seconds = _time.perf_counter() - t0
                        res.total_time += seconds  # the whole fit, as the time limit counts it
                        if res.certificate.is_partial_minimum:
                            res.status, res.message = "converged", res.message + "; the end point is a partial minimum"
                        elif left is not None and seconds >= left:
                            res.message += ("; time_limit cut the partial-minimum certificate short (the gaps not "
                                            "computed are nan; .certificate(X, y) computes them)")
                    elif certify:  # a limit or Ctrl-C: return now, claim nothing (certify later with .certificate)
                        ended = f"the run ended {res.status}" if res.status in ("time_limit", "interrupted") else \
                            "no time left of time_limit"
                        res.message += f"; the partial-minimum certificate was not computed ({ended})"
            finally:
                ex.close()
        res.build_time = form.build_time
        res.info["blocks"] = [b.name for b in form.blocks]
        res.info["block_build_time"] = form.build_seconds
        self._store(params)
        self.result_ = res
        self._warn_unconverged(res)
        self.objective_ = float(res.objective)
        self.n_iter_ = int(res.iterations)
        return self

    # -- prediction ----------------------------------------------------------------------------
    def _outputs(self, X) -> np.ndarray:
        """Network outputs ``f(x)``, shape ``(N, n_out)``."""
        self._check_fitted("coefs_")
        arch, Xt, _ = self._tensors(X, None, f"{type(self).__name__}.predict", fit=False)
        with torch.no_grad():
            return forward(arch, self._params(), Xt)[0].cpu().numpy()

    @available_if(is_classification)
    def decision_function(self, X) -> np.ndarray:
        """Logits: shape ``(N,)`` for two classes (``> 0`` means ``classes_[1]``; for softmax the difference
        of the two logits), else ``(N, n_classes)``."""
        out = self._outputs(X)
        if out.shape[1] == 1:
            return out[:, 0]
        out = out[:, :len(self.classes_)]
        return out[:, 1] - out[:, 0] if len(self.classes_) == 2 else out

    @available_if(is_classification)
    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, shape ``(N, n_classes)``."""
        out = self._outputs(X)
        if self.loss_ == "logistic":
            p = 1.0 / (1.0 + np.exp(-out[:, 0]))
            return np.stack([1 - p, p], axis=1)
        out = out[:, :len(self.classes_)]
        e = np.exp(out - out.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    @available_if(is_classification)
    def predict_log_proba(self, X) -> np.ndarray:
        """Logs of :meth:`predict_proba`, computed from the outputs directly (finite where a probability underflows
        to 0), as scikit-learn's ``MLPClassifier`` gives them."""
        out = self._outputs(X)
        if self.loss_ == "logistic":
            o = out[:, 0]
            return np.stack([-np.logaddexp(0.0, o), -np.logaddexp(0.0, -o)], axis=1)
        out = out[:, :len(self.classes_)]
        top = out.max(axis=1, keepdims=True)
        return out - top - np.log(np.exp(out - top).sum(axis=1, keepdims=True))

    def predict(self, X) -> np.ndarray:
        """Regression outputs (``(N,)`` for one output), or class labels."""
        out = self._outputs(X)
        if self.loss_ == "squared":
            return out[:, 0] if out.shape[1] == 1 else out
        if self.loss_ == "logistic":
            return self.classes_[(out[:, 0] > 0).astype(int)]
        return self.classes_[np.argmax(out[:, :len(self.classes_)], axis=1)]

    def score(self, X, y, sample_weight=None) -> float:
        """R² (regression, averaged over outputs as scikit-learn does) or accuracy (classification)."""
        pred = self.predict(X)
        n_y = len(y) if hasattr(y, "__len__") else None
        if n_y != len(pred):
            raise InvalidInputError(f"{type(self).__name__}.score: y has {n_y} entries but X has {len(pred)} rows; "
                                    "give one target (row) per sample of X.")
        if is_classification(self):
            return float(accuracy_score(y, pred, sample_weight=sample_weight))
        return float(r2_score(y, pred, sample_weight=sample_weight))

    def objective(self, X, y) -> float:
        """``F(θ)`` at the current weights on ``(X, y)``."""
        arch, Xt, Tt = self._tensors(X, y, f"{type(self).__name__}.objective", fit=False)
        with torch.no_grad():
            return float(objective(arch, self._params(), Xt, Tt, float(self.weight_decay)))

    # -- certificates and diagnostics ----------------------------------------------------------
    def certificate(self, X, y, *, solver=None, tol: float | None = None, block_size="auto", budget=None,
                    solver_options=None):
        """The partial-minimum certificate of the current weights on ``(X, y)`` (any origin).

        ``solver`` and ``tol`` default to the estimator's (a fit's ``result_.certificate`` used them). A block above
        the tolerance reports its gap over the two pieces solved (its own and the neighbouring one); at a sample on a
        kink which two those are depends on the rounding of its pre-activation, so this and ``result_.certificate``
        can report different gaps there, never a different decision (the README's "What partial minimum says").
        """
        where = f"{type(self).__name__}.certificate"
        solver = check_solver_spec(self.solver if solver is None else solver, "solver", where=where)
        tol = check_number(self.tol if tol is None else tol, "tol", minimum=0.0, where=where)
        check_int(budget, "budget", minimum=1, allow_none=True, where=where)
        check_solver_options(solver_options, solver, where=where)
        arch, Xt, Tt = self._tensors(X, y, f"{type(self).__name__}.certificate", fit=False)
        form = self._form(arch, Xt, Tt, solver, block_size, solver_options, budget)
        return partial_minimum_certificate(form, form.point_from_params(self._params()), tol)

    def gradient_basis_gap(self, X, y, *, trainable: list[int] | None = None, chunk: int = 256):
        """K&K's gradient-basis gap ``L(θ) − L*_θ`` (data loss, no weight decay) at the current weights."""
        arch, Xt, Tt = self._tensors(X, y, f"{type(self).__name__}.gradient_basis_gap", fit=False)
        return gradient_basis_gap(arch, self._params(), Xt, Tt, trainable=trainable, chunk=chunk)

    def region_test(self, X, y):
        """Milne's region test (largest θ with the weights in ``U(λ, θ)``)."""
        arch, Xt, Tt = self._tensors(X, y, f"{type(self).__name__}.region_test", fit=False)
        return region_test(arch, self._params(), Xt, Tt, float(self.weight_decay))

    def normalised_curvature(self, X, y) -> float:
        """Milne's ``2gᵀHg/‖g‖²`` of ``F`` at the current weights (double backprop)."""
        arch, Xt, Tt = self._tensors(X, y, f"{type(self).__name__}.normalised_curvature", fit=False)
        return normalised_curvature(arch, self._params(), Xt, Tt, float(self.weight_decay))

    # -- torch, Pyomo and cvxpy forms (built in ._relu_network_forms) -----------------------------
    def _current_params(self):
        """The fitted weights, or the seeded start of the architecture known so far."""
        return self._params() if hasattr(self, "coefs_") else self.initial_params()

    def to_torch(self, dtype: torch.dtype | None = None) -> torch.nn.Sequential:
        """``nn.Sequential`` of ``Linear`` and ``ReLU``/``LeakyReLU`` layers holding the weights.

        Parameters
        ----------
        dtype : torch.dtype, optional
            The module's dtype; default: torch's default dtype (``torch.get_default_dtype()``,
            float32 unless changed), so it takes the inputs torch users have. The model itself
            trains in float64; ``dtype=torch.float64`` reproduces :meth:`predict` to rounding.
        """
        arch = self._arch(f"{type(self).__name__}.to_torch")
        dtype = torch.get_default_dtype() if dtype is None else dtype
        if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise InvalidInputError(f"{type(self).__name__}.to_torch: dtype must be a floating torch.dtype "
                                    f"(torch.float32, torch.float64, ...), got {dtype!r}.")
        params = [(W.to(dtype), None if b is None else b.to(dtype)) for W, b in self._current_params()]
        return sequential(arch, params)

    @classmethod
    def from_torch(cls, module: torch.nn.Module, **kwargs: Any) -> ReLUNetwork:
        """A fitted-state network from an ``nn.Sequential`` of Linear and ReLU/LeakyReLU layers.

        ``kwargs`` are constructor arguments (``loss``, ``weight_decay``, ``device``, ...);
        ``hidden_layer_sizes``, ``activation``, ``negative_slope`` and ``bias`` are read from the
        module (``sizes_``, ``n_features_in_`` too). For classification set ``classes_`` yourself
        or call :meth:`certificate` with labels.
        """
        spec, coefs, intercepts = read_sequential(module)
        sizes = tuple(spec.pop("sizes"))
        net = cls(hidden_layer_sizes=sizes[1:-1], **spec, **kwargs)
        loss = net._loss_param()
        if loss == "auto":
            loss = "logistic" if sizes[-1] == 1 else "softmax"
        net._arch(f"{cls.__name__}.from_torch", sizes, loss)
        net.sizes_, net.loss_, net.n_features_in_ = sizes, loss, sizes[0]
        net.coefs_ = coefs
        net.intercepts_ = intercepts
        return net

    def to_pyomo(self, X, y):
        """The same objective as a full-space Pyomo model, one block per layer (small data only).

        Pre-activation and activation variables per sample and unit, tied by
        :class:`~multiconvex.pyomo_front.ReLURelation`; weights ``W1, b1, ...`` (torch layout) start at
        the current weights (or the seeded start) and the per-sample variables at the values they imply,
        so ``pyo.SolverFactory("multiconvex", blocks=pm.blocks)`` starts where :meth:`fit` would.
        Squared loss and plain ReLU only (the relation is ``max(z, 0)``).

        Returns
        -------
        PyomoModel
            ``model``, ``blocks`` (``[[W1, b1], [W2, b2], ...]``) and ``variables`` by name.
        """
        where = f"{type(self).__name__}.to_pyomo"
        arch, Xt, Tt = self._tensors(X, y, where, fit=False)
        if arch.loss != "squared" or arch.activation != "relu":
            raise InvalidInputError(
                f"{where}: the Pyomo form covers squared loss with plain ReLU; this network has loss={arch.loss!r}, "
                f"activation={arch.activation!r}. Use to_cvxpy, or fit in torch.")
        return pyomo_form(arch, self._current_params(), Xt.cpu().numpy(), Tt.cpu().numpy(), self.weight_decay)

    def to_cvxpy(self, X, y) -> CvxpyModel:
        """The same objective as a cvxpy problem with :func:`multiconvex.relu`, one block per layer.

        Variables ``W1, b1, ...`` (torch layout) hold the current weights (or the seeded start),
        so ``mc.solve(cm.problem, cm.blocks, ...)`` starts where :meth:`fit` would. Small data only.
        """
        arch, Xt, Tt = self._tensors(X, y, f"{type(self).__name__}.to_cvxpy", fit=False)
        return cvxpy_form(arch, self._current_params(), Xt.cpu().numpy(), Tt.cpu().numpy(), self.weight_decay)
