"""A fully connected ReLU network trained by iterated convex optimization over layer blocks,
or by the gradient baselines, with certificates (THEORY §1–3, §5).

The forward and backward passes, the block subproblems' matrices, the baselines and the
diagnostics run in torch on the model's ``device``; the convex block subproblems go to the
backend named by ``solver`` (see :mod:`multiconvex.nets`).
"""

from __future__ import annotations

import contextlib
import logging
import time as _time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from multiconvex.cvxpy_front.solve import _configure_logging
from multiconvex.drivers import DriverOptions, run
from multiconvex.errors import InvalidInputError
from multiconvex.executor import make_executor
from multiconvex.globalopt.checks import check_array, check_scalar
from multiconvex.nets import (
    ACTIVATIONS,
    ENTRY_BUDGET,
    GRADIENT_ALGORITHMS,
    LOSSES,
    Architecture,
    GradientOptions,
    NetForm,
    forward,
    gradient_basis_gap,
    init_params,
    normalised_curvature,
    objective,
    params_from_named,
    region_test,
    resolve_device,
    run_gradient,
)
from multiconvex.nets.certificates import partial_minimum_certificate
from multiconvex.nets.network import DTYPE
from multiconvex.solvers import dispatch, problem_class, resolve
from multiconvex.validation import check_options

from ._base import CvxpyModel, Estimator
from ._relu_network_forms import cvxpy_form, pyomo_form, read_sequential, sequential

__all__ = ["ReLUNetwork"]

logger = logging.getLogger("multiconvex")

BLOCK_ALGORITHMS = ("jacobi", "gauss-seidel")


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


class ReLUNetwork(Estimator):
    """A ReLU network ``[d, n_1, ..., n_L]`` with a linear output, scikit-learn style.

    Minimises ``F(θ) = (1/N) Σ ℓ(f(x_i; θ), y_i) + (λ/2)‖θ‖²`` (``λ = weight_decay``, on every
    parameter, biases included). ``fit(..., algorithm=)`` picks iterated convex optimization over
    layer blocks (``"jacobi"``: R&R Def 7.1, best of all block solves; ``"gauss-seidel"``: blocks
    in turn) or a torch baseline (``"gd"``, ``"sgd"``, ``"adam"``); every algorithm returns the same
    :class:`multiconvex.Result` in ``result_`` with the partial-minimum certificate of its end point.

    Parameters
    ----------
    sizes : sequence of int
        ``[d, n_1, ..., n_L]``: input dimension, hidden widths, outputs (1 for ``"logistic"``, the
        number of classes for ``"softmax"``).
    loss : {"squared", "logistic", "softmax"}
        ``½‖f − y‖²`` (regression), ``log(1 + e^{−y f})`` (binary), cross-entropy (multi-class).
    weight_decay : float
        ``λ ≥ 0``.
    activation : {"relu", "leaky_relu"}
    negative_slope : float
        Slope of leaky ReLU for ``z < 0`` (ignored for ReLU).
    bias : bool
    device : str
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ...: every tensor lives there.
    seed : int or None
        Seeds the initial weights (torch's ``nn.Linear`` scale) and the minibatch order.

    Attributes
    ----------
    coefs_, intercepts_ : lists of ndarray
        ``W_k`` of shape ``(n_k, n_{k-1})`` and ``b_k`` (scikit-learn's MLP names; torch's layout).
    classes_ : ndarray
        Class labels (classification).
    result_ : multiconvex.Result
    objective_ : float
    n_iter_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from multiconvex.models import ReLUNetwork
    >>> X = np.random.default_rng(0).standard_normal((40, 3)); y = np.abs(X[:, 0]) - X[:, 1]
    >>> net = ReLUNetwork([3, 4, 1], weight_decay=1e-2, seed=0).fit(X, y, algorithm="gauss-seidel", max_iters=200)
    >>> net.result_.certificate.is_partial_minimum, net.score(X, y) > 0.5
    (True, True)
    """

    def __init__(self, sizes: Sequence[int], loss: str = "squared", weight_decay: float = 1e-4,
                 activation: str = "relu", negative_slope: float = 0.01, bias: bool = True,
                 device: str = "auto", seed: int | None = None):
        self.sizes = sizes
        self.loss = loss
        self.weight_decay = weight_decay
        self.activation = activation
        self.negative_slope = negative_slope
        self.bias = bias
        self.device = device
        self.seed = seed

    # -- configuration -------------------------------------------------------------------------
    def _arch(self, where: str):
        sizes = tuple(int(s) for s in self.sizes) if isinstance(self.sizes, (list, tuple, np.ndarray)) else None
        if not sizes or len(sizes) < 2 or any(s < 1 for s in sizes):
            raise InvalidInputError(f"{where}: sizes must be a list [d, n_1, ..., n_out] of positive ints, "
                                    f"got {self.sizes!r}.")
        if self.loss not in LOSSES:
            raise InvalidInputError(f"{where}: loss={self.loss!r}; use one of {', '.join(LOSSES)}.")
        if self.activation not in ACTIVATIONS:
            raise InvalidInputError(f"{where}: activation={self.activation!r}; use one of {', '.join(ACTIVATIONS)}.")
        if self.loss == "logistic" and sizes[-1] != 1:
            raise InvalidInputError(f"{where}: logistic loss needs one output, got sizes[-1]={sizes[-1]}.")
        check_scalar(self.weight_decay, name="weight_decay", where=where)
        slope = check_scalar(self.negative_slope, name="negative_slope", where=where) \
            if self.activation == "leaky_relu" else 0.0
        return Architecture(sizes, self.loss, self.activation, slope, bool(self.bias))

    def _device(self) -> torch.device:
        return resolve_device(self.device)

    def _tensors(self, X, y, where: str, fit: bool):
        arch = self._arch(where)
        X = check_array(X, name="X", where=where, ndim=2)
        if X.shape[1] != arch.sizes[0]:
            raise InvalidInputError(
                f"{where}: X has {X.shape[1]} features, the network takes sizes[0]={arch.sizes[0]}.")
        dev = self._device()
        Xt = torch.as_tensor(X, dtype=DTYPE, device=dev)
        if y is None:
            return arch, Xt, None
        y = np.asarray(y)
        if len(y) != len(X):
            raise InvalidInputError(f"{where}: X has {len(X)} rows but y has {len(y)}.")
        if arch.loss == "squared":
            y = check_array(y, name="y", where=where)
            if y.reshape(len(y), -1).shape[1] != arch.sizes[-1]:
                raise InvalidInputError(f"{where}: y has {y.reshape(len(y), -1).shape[1]} columns, "
                                        f"the network has sizes[-1]={arch.sizes[-1]} outputs.")
        else:
            if fit:
                self.classes_ = np.unique(y)
                want = 2 if arch.loss == "logistic" else arch.sizes[-1]
                if len(self.classes_) > want or (arch.loss == "logistic" and len(self.classes_) != 2):
                    raise InvalidInputError(f"{where}: y has {len(self.classes_)} classes; {arch.loss} loss with "
                                            f"sizes[-1]={arch.sizes[-1]} takes {want}.")
            unknown = ~np.isin(y, self.classes_)
            if unknown.any():
                raise InvalidInputError(f"{where}: y has labels not seen in fit: {np.unique(y[unknown])[:5]}.")
        if arch.loss == "squared":
            T = y.reshape(len(y), -1).astype(float)
        elif arch.loss == "logistic":
            T = np.where(y == self.classes_[1], 1.0, -1.0).reshape(-1, 1)
        else:
            T = np.zeros((len(y), arch.sizes[-1]))
            T[np.arange(len(y)), np.searchsorted(self.classes_, y)] = 1.0
        return arch, Xt, torch.as_tensor(T, dtype=DTYPE, device=dev)

    def _params(self):
        self._check_fitted("coefs_")
        vals = {f"W{k + 1}": W for k, W in enumerate(self.coefs_)}
        vals.update({f"b{k + 1}": b for k, b in enumerate(self.intercepts_ or [])})
        return params_from_named(self._arch("ReLUNetwork"), vals, self._device())

    def _store(self, params) -> None:
        self.coefs_ = [W.detach().cpu().numpy().copy() for W, _ in params]
        self.intercepts_ = [b.detach().cpu().numpy().copy() for _, b in params] if self.bias else None

    def initial_params(self):
        """The seeded start (torch ``nn.Linear`` scale), as torch tensors on the model's device."""
        return init_params(self._arch("ReLUNetwork.initial_params"), self.seed, self._device())

    def _form(self, arch, X, T, solver, block_size, solver_options, budget):
        # the user's choice resolved once (unknown names and a missing named backend fail here):
        # squared-loss blocks are BlockSubproblem values for the dispatcher's plan
        plan = dispatch.make_plan(solver, options=dict(solver_options or {}))

        def backends_for(subproblem, name):
            return resolve(solver, problem_class(subproblem))

        def resolve_class(cls, name):  # exp-cone blocks are matrices: "auto" tries clarabel-native first
            return resolve(solver, cls, matrix_level=True)

        return NetForm(arch, X, T, float(self.weight_decay), backends_for=backends_for, block_size=block_size,
                       budget=budget or ENTRY_BUDGET, solver_options=solver_options, resolve_class=resolve_class,
                       plan=plan)

    # -- training ------------------------------------------------------------------------------
    def fit(self, X, y, *, algorithm: str = "gauss-seidel", solver: str | Sequence[str] = "auto",
            solver_options: dict | None = None, max_iters: int = 100, tol: float = 1e-6,
            time_limit: float | None = None, init: Any = None, warm_start: bool = False,
            block_size: int | str | None = "auto", budget: int | None = None, prox: float = 0.0,
            executor: Any = None, workers: int | None = None, certify: bool = True,
            lr: float | None = None, lr_schedule: str = "constant", batch_size: int | None = None,
            grad_tol: float = 0.0, log_every: int = 1, record_diagnostics: bool = False,
            torch_threads: int | None = 1, verbose: bool = False, progress: bool | None = None):
        """Train the network; returns self.

        Parameters
        ----------
        X : array (N, d)
        y : array (N,) or (N, n_out)
            Targets (regression) or labels (classification).
        algorithm : {"gauss-seidel", "jacobi", "gd", "sgd", "adam"}
        solver : str or list of str
            Backend for the block subproblems, any registry name or a fallback list. ``"auto"``:
            per block — squared loss: the closed form (``lstsq``) for an unconstrained output-layer
            block, DAQP (dense active set, exact) for a small piece-constrained one, then ProxQP,
            Clarabel, OSQP (:func:`multiconvex.solvers.dispatch.solve`); logistic/softmax:
            ``clarabel-native`` on the exponential-cone program. Also used for the certificate of a
            gradient run.
        max_iters : int
            Outer iterations (block drivers), steps (``gd``) or epochs (``sgd``, ``adam``).
        tol : float
            Relative tolerance of the block gaps (``tol · max(1, |F|)``).
        init : dict, optional
            ``{"W1": ..., "b1": ...}`` start; default: the seeded start, or the current weights with
            ``warm_start=True``.
        block_size : "auto", "layer", "unit" or int
            Blocks: whole layers, single units, or groups of units (``"auto"``: the largest groups
            whose matrices fit in ``budget`` entries; see :mod:`multiconvex.nets.blocks`).
        prox, executor, workers, verbose, progress, time_limit, solver_options
            As in :func:`multiconvex.solve`.
        certify : bool
            Compute the partial-minimum certificate of a gradient run's end point (block drivers
            always certify).
        lr, lr_schedule, batch_size, grad_tol, log_every, record_diagnostics
            Gradient baselines only (see :class:`multiconvex.nets.GradientOptions`).
        torch_threads : int or None
            torch intra-op threads while the block drivers run (see :func:`_torch_threads`).
        """
        where = f"{type(self).__name__}.fit"
        if algorithm not in BLOCK_ALGORITHMS + GRADIENT_ALGORITHMS:
            raise InvalidInputError(f"{where}: algorithm={algorithm!r}; use one of "
                                    f"{', '.join(BLOCK_ALGORITHMS + GRADIENT_ALGORITHMS)}.")
        check_options(max_iters=max_iters, tol=tol, time_limit=time_limit, reg=0.0, prox=prox)
        arch, Xt, Tt = self._tensors(X, y, where, fit=True)
        if init is not None:
            params0 = params_from_named(arch, init, Xt.device)
        elif warm_start and hasattr(self, "coefs_"):
            params0 = self._params()
        else:
            params0 = self.initial_params()

        _configure_logging(verbose)
        with _torch_threads(torch_threads if Xt.device.type == "cpu" else None):
            form = self._form(arch, Xt, Tt, solver, block_size, solver_options, budget)
            x0 = form.point_from_params(params0)
            ex = make_executor(executor, workers)
            try:
                if algorithm in BLOCK_ALGORITHMS:
                    res = run(form, x0, DriverOptions(algorithm=algorithm, max_iters=int(max_iters), tol=float(tol),
                                                      time_limit=time_limit, prox=float(prox), executor=ex,
                                                      verbose=verbose, progress=progress))
                    params = form.params_from_point(form.final_point)
                else:
                    opts = GradientOptions(algorithm=algorithm, lr=lr, lr_schedule=lr_schedule, batch_size=batch_size,
                                           max_iters=int(max_iters), grad_tol=grad_tol, time_limit=time_limit,
                                           seed=self.seed, log_every=log_every, record_diagnostics=record_diagnostics)
                    with _torch_threads(None):
                        res, params = run_gradient(arch, params0, Xt, Tt, float(self.weight_decay), opts)
                    res.values = form.named_values(form.point_from_params(params))
                    if certify:
                        t0 = _time.perf_counter()
                        res.certificate = partial_minimum_certificate(form, form.point_from_params(params), tol, ex)
                        res.info["certificate_time"] = _time.perf_counter() - t0
                        if res.certificate.is_partial_minimum:
                            res.status, res.message = "converged", res.message + "; the end point is a partial minimum"
            finally:
                ex.close()
        res.build_time = form.build_time
        res.info["blocks"] = [b.name for b in form.blocks]
        res.info["block_build_time"] = form.build_seconds
        self._store(params)
        self.result_ = res
        self.objective_ = float(res.objective)
        self.n_iter_ = int(res.iterations)
        self.n_features_in_ = arch.sizes[0]
        return self

    # -- prediction ----------------------------------------------------------------------------
    def decision_function(self, X) -> np.ndarray:
        """Network outputs ``f(x)`` (logits for classification), shape ``(N, n_out)`` (``(N,)`` for one output)."""
        arch, Xt, _ = self._tensors(X, None, f"{type(self).__name__}.predict", fit=False)
        with torch.no_grad():
            out = forward(arch, self._params(), Xt)[0].cpu().numpy()
        return out[:, 0] if out.shape[1] == 1 else out

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (classification losses)."""
        out = self.decision_function(X)
        if self.loss == "logistic":
            p = 1.0 / (1.0 + np.exp(-out))
            return np.stack([1 - p, p], axis=1)
        if self.loss == "softmax":
            e = np.exp(out - out.max(axis=1, keepdims=True))
            P = e / e.sum(axis=1, keepdims=True)
            return P[:, :len(self.classes_)]
        raise InvalidInputError("predict_proba needs a classification loss (logistic or softmax).")

    def predict(self, X) -> np.ndarray:
        """Regression outputs, or class labels."""
        out = self.decision_function(X)
        if self.loss == "squared":
            return out
        if self.loss == "logistic":
            return self.classes_[(out >= 0).astype(int)]
        return self.classes_[np.argmax(out[:, :len(self.classes_)], axis=1)]

    def score(self, X, y) -> float:
        """R² (regression, averaged over outputs as scikit-learn does) or accuracy (classification)."""
        pred = self.predict(X)
        y = np.asarray(y)
        if self.loss != "squared":
            return float(np.mean(pred == y))
        from sklearn.metrics import r2_score  # lazy: scikit-learn takes ~0.5 s to import; only score() needs it

        return float(r2_score(y, pred))

    def objective(self, X, y) -> float:
        """``F(θ)`` at the current weights on ``(X, y)``."""
        arch, Xt, Tt = self._tensors(X, y, f"{type(self).__name__}.objective", fit=False)
        with torch.no_grad():
            return float(objective(arch, self._params(), Xt, Tt, float(self.weight_decay)))

    # -- certificates and diagnostics ----------------------------------------------------------
    def certificate(self, X, y, *, solver="auto", tol: float = 1e-6, block_size="auto", budget=None,
                    solver_options=None):
        """The partial-minimum certificate of the current weights on ``(X, y)`` (any origin)."""
        arch, Xt, Tt = self._tensors(X, y, f"{type(self).__name__}.certificate", fit=not hasattr(self, "classes_"))
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
    def to_torch(self) -> torch.nn.Sequential:
        """``nn.Sequential`` of ``Linear`` and ``ReLU``/``LeakyReLU`` layers with the weights (float64)."""
        arch = self._arch("ReLUNetwork.to_torch")
        params = self._params() if hasattr(self, "coefs_") else self.initial_params()
        return sequential(arch, params)

    @classmethod
    def from_torch(cls, module: torch.nn.Module, **kwargs: Any) -> ReLUNetwork:
        """A fitted-state network from an ``nn.Sequential`` of Linear and ReLU/LeakyReLU layers.

        ``kwargs`` are constructor arguments (``loss``, ``weight_decay``, ``device``, ...);
        ``sizes``, ``activation``, ``negative_slope`` and ``bias`` are read from the module.
        For classification set ``classes_`` yourself or call :meth:`certificate` with labels.
        """
        spec, coefs, intercepts = read_sequential(module)
        net = cls(**spec, **kwargs)
        net.coefs_ = coefs
        net.intercepts_ = intercepts
        net._arch("ReLUNetwork.from_torch")
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
        arch, Xt, Tt = self._tensors(X, y, where, fit=not hasattr(self, "classes_"))
        if arch.loss != "squared" or arch.activation != "relu":
            raise InvalidInputError(
                f"{where}: the Pyomo form covers squared loss with plain ReLU; this network has loss={arch.loss!r}, "
                f"activation={arch.activation!r}. Use to_cvxpy, or fit in torch.")
        params = self._params() if hasattr(self, "coefs_") else self.initial_params()
        return pyomo_form(arch, params, Xt.cpu().numpy(), Tt.cpu().numpy(), self.weight_decay)

    def to_cvxpy(self, X, y) -> CvxpyModel:
        """The same objective as a cvxpy problem with :func:`multiconvex.relu`, one block per layer.

        Variables ``W1, b1, ...`` (torch layout) hold the current weights (or the seeded start),
        so ``mc.solve(cm.problem, cm.blocks, ...)`` starts where :meth:`fit` would. Small data only.
        """
        arch, Xt, Tt = self._tensors(X, y, f"{type(self).__name__}.to_cvxpy", fit=not hasattr(self, "classes_"))
        params = self._params() if hasattr(self, "coefs_") else self.initial_params()
        return cvxpy_form(arch, params, Xt.cpu().numpy(), Tt.cpu().numpy(), self.weight_decay)
