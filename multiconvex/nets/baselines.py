"""Gradient baselines in torch: ``gd``, ``sgd``, ``adam``, ``lbfgs`` on the same objective ``F(θ)``.

They return the same :class:`multiconvex.Result` as the drivers (history of the full-batch
objective against wall time, status, certificate), so one call switches algorithms and the
comparison is honest. ``gd`` is full batch with a fixed step or a non-summable decreasing one
(``lr_schedule="sqrt"``: ``η/√(t+1)``, ``"harmonic"``: ``η/(t+1)``), the setting of R&R Thm 6.3.
``lbfgs`` is torch's ``LBFGS`` (full batch, strong-Wolfe line search, torch's history of 100 pairs), one
quasi-Newton iteration per step, the objective and gradient of each iterate reused by its line search (one
function evaluation an iteration when the unit step is accepted). On small data sets it is the stronger
peer (as scikit-learn's MLP documentation says of its ``lbfgs`` solver): diabetes ``[10, 64, 64, 1]`` reaches
Adam's 300-epoch objective in 0.13× Adam's (warm) time (``benchmarks/bench_hybrid.py --only lbfgs``). At a kink
of the piecewise objective its line search can fail; the memory is then cleared once (steepest descent), and a
second failure ends the run ``"stalled"``, saying so (``info["restarts"]`` counts the restarts).
The run stops early when ``‖∇F‖ ≤ grad_tol``. Milne's diagnostics (normalised second derivative
by double backprop, region test) can be recorded along the way (``record_diagnostics=True``).

``GradientOptions.callback`` follows the contract of :mod:`multiconvex.result`: ``callback(entry)``
with each :class:`~multiconvex.result.HistoryEntry` as it is appended (every ``log_every``
iterations); a truthy return stops the run as ``"interrupted"``; an exception propagates.

These methods are not monotone: the returned point is the **best one seen** among the points whose
full-batch objective was computed (the start, every ``log_every``-th iterate, every full-batch
iterate, and the last one), not necessarily the last iterate. The status says how the run ended
(``time_limit``, ``interrupted``, ``iteration_limit``...) and the message says why, of the last iterate;
when the best point is not the last iterate the message says so, ``info["best_iteration"]`` names it,
``info["grad_norm"]`` is the full-batch gradient norm at the returned point (NaN for minibatch runs, which
compute none) and ``info["last_grad_norm"]`` the last iterate's.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..drivers import check_callback
from ..errors import InvalidInputError
from ..result import Callback, Certificate, HistoryEntry, LimitWords, Result
from ..validation import check_choice, check_int, check_number, check_seed
from .diagnostics import normalised_curvature, region_test
from .network import Architecture, Params, check_data, objective

logger = logging.getLogger("multiconvex")

GRADIENT_ALGORITHMS = ("gd", "sgd", "adam", "lbfgs")
#: the methods that always take the full batch (``batch_size`` is ignored, as scikit-learn's ``lbfgs`` solver does)
FULL_BATCH = ("gd", "lbfgs")
SCHEDULES = ("constant", "sqrt", "harmonic")


@dataclass
class GradientOptions:
    """Options of the gradient baselines (validated by the estimator)."""

    algorithm: str = "adam"
    lr: float | None = None  # default: 0.1 for gd/sgd, 1e-3 for adam, 1 for lbfgs (the line search's first trial step)
    lr_schedule: str = "constant"
    batch_size: int | None = None  # None: full batch (always for gd and lbfgs)
    max_iters: int = 1000  # gd: steps; lbfgs: quasi-Newton iterations; sgd/adam: epochs
    grad_tol: float = 0.0
    time_limit: float | None = None
    seed: int | None = None
    log_every: int = 1
    record_diagnostics: bool = False
    callback: Callback | None = None  # callback(entry) per recorded iteration; truthy return: stop
    momentum: float = 0.0
    extra: dict = field(default_factory=dict)
    words: LimitWords = field(default_factory=LimitWords)  # how the messages name the limits
    where: str = "fit"  # what the messages of a refused option name (e.g. "ReLURegressor.fit")


def check_gradient_options(opts: GradientOptions) -> None:
    """Refuse bad gradient options before any step, naming the option (``batch_size=0`` used to fail
    seconds later inside ``range()``, ``lr=-1`` inside torch); the messages name ``opts.where``."""
    where = opts.where
    check_choice(opts.algorithm, "algorithm", GRADIENT_ALGORITHMS, where=where)
    check_number(opts.lr, "lr", minimum=0.0, strict=True, allow_none=True, where=where)
    check_choice(opts.lr_schedule, "lr_schedule", ("constant", "sqrt", "harmonic"), where=where)
    check_int(opts.batch_size, "batch_size", minimum=1, allow_none=True, where=where)
    check_int(opts.max_iters, "max_iter", minimum=0, where=where)
    check_number(opts.grad_tol, "grad_tol", minimum=0.0, where=where)
    check_number(opts.time_limit, "time_limit", minimum=0.0, allow_none=True, where=where)
    check_int(opts.log_every, "log_every", minimum=1, where=where)
    check_number(opts.momentum, "momentum", minimum=0.0, where=where)
    check_seed(opts.seed, "seed", where=where)
    check_callback(opts.callback)
    if opts.algorithm == "lbfgs" and opts.lr_schedule != "constant":
        raise InvalidInputError(f"{where}: lr_schedule={opts.lr_schedule!r} with algorithm='lbfgs': its line search "
                                "chooses every step (lr is only the first trial step); use lr_schedule='constant'.")
    if opts.algorithm == "lbfgs" and opts.momentum:
        raise InvalidInputError(f"{where}: momentum={opts.momentum!r} with algorithm='lbfgs': momentum applies to "
                                "gd and sgd only; drop it.")


def _lr(opts: GradientOptions) -> float:
    if opts.lr is not None:
        return float(opts.lr)
    return {"adam": 1e-3, "lbfgs": 1.0}.get(opts.algorithm, 0.1)


#: Relative objective difference below which the best point seen and the last iterate tie (rounding: near a
#: stationary point gradient descent changes F by less than this, and its values then differ by noise only).
_TIE = 1e-12


class _Best:
    """The best point seen so far: its objective, iteration and a detached copy of its leaves."""

    def __init__(self, f: float, iteration: int, leaves: list[torch.Tensor]) -> None:
        self.f, self.iteration, self.leaves = math.inf, iteration, [t.detach().clone() for t in leaves]
        self.offer(f, iteration, leaves)

    def better_than(self, f: float) -> bool:
        """Whether the kept point beats objective ``f`` by more than rounding (:data:`_TIE`; a tie goes to ``f``'s
        point, the last iterate, which the status describes); a NaN or infinite ``f`` is beaten by any finite one."""
        return math.isfinite(self.f) and not f <= self.f + _TIE * abs(f)

    def offer(self, f: float, iteration: int, leaves: list[torch.Tensor]) -> None:
        """Keep ``leaves`` (copied) if ``f`` is finite and lower than the kept objective."""
        if math.isfinite(f) and f < self.f:
            self.f, self.iteration = f, iteration
            with torch.no_grad():
                for kept, t in zip(self.leaves, leaves):
                    kept.copy_(t)


def run_gradient(arch: Architecture, params0: Params, X: torch.Tensor, T: torch.Tensor, weight_decay: float,
                 opts: GradientOptions, names: list[str] | None = None) -> tuple[Result, Params]:
    """Train from ``params0`` with ``opts.algorithm``; returns the Result (certificate not yet
    computed: ``block_gaps`` empty) and the returned parameters.

    The returned point is the best one seen (gradient methods are not monotone; see the module's
    docstring), whatever ended the run; the history records the full-batch objective every
    ``log_every`` iterations.
    """
    check_gradient_options(opts)
    check_data(arch, X, T, where="run_gradient", params=params0, weight_decay=weight_decay)
    # the clock starts before the optimiser is made: torch imports its compiler stack on the first one (about 2 s,
    # once a process), time the caller's limit covers
    t0 = time.perf_counter()
    deadline = t0 + opts.time_limit if opts.time_limit is not None else None
    leaves = [t.detach().clone().requires_grad_(True) for W, b in params0 for t in ((W, b) if b is not None else (W,))]

    def as_params() -> Params:
        it = iter(leaves)
        return [(next(it), next(it) if arch.bias else None) for _ in params0]

    def evaluate() -> torch.Tensor:  # the full-batch objective at the current point
        return objective(arch, as_params(), X, T, weight_decay)

    lr = _lr(opts)
    optim: torch.optim.Optimizer
    if opts.algorithm == "adam":
        optim = torch.optim.Adam(leaves, lr=lr)
    elif opts.algorithm == "lbfgs":
        # one iteration a step, its line search up to 25 evaluations: torch (2.5 on) passes the line search
        # max_ls = max_eval - evaluations so far, and max_eval defaults to 1.25 × max_iter, 1 here: no line search
        # at all; torch's own stopping rules off (grad_tol is ours)
        optim = torch.optim.LBFGS(leaves, lr=lr, max_iter=1, max_eval=26, tolerance_grad=0.0, tolerance_change=0.0,
                                  line_search_fn="strong_wolfe")
    else:
        optim = torch.optim.SGD(leaves, lr=lr, momentum=opts.momentum)
    if opts.lr_schedule == "sqrt":
        sched = torch.optim.lr_scheduler.LambdaLR(optim, lambda t: 1.0 / math.sqrt(t + 1))
    elif opts.lr_schedule == "harmonic":
        sched = torch.optim.lr_scheduler.LambdaLR(optim, lambda t: 1.0 / (t + 1))
    else:
        sched = None
    N = X.shape[0]
    full = opts.algorithm in FULL_BATCH or opts.batch_size is None or opts.batch_size >= N
    gen = torch.Generator(device="cpu")
    gen.manual_seed(0 if opts.seed is None else int(opts.seed))

    with torch.no_grad():
        f0 = float(objective(arch, as_params(), X, T, weight_decay))
    history = [HistoryEntry(0, 0.0, f0, None, math.nan, 0.0)]
    best = _Best(f0, 0, leaves)
    diag: dict[str, list[float]] = {"iteration": [], "objective": [], "curvature": [], "theta": []}
    status, message = "iteration_limit", opts.words.iterations(opts.max_iters)
    grad_norm = math.nan
    carried: torch.Tensor | None = None  # the objective at the current point, its gradient in .grad (full batch)
    grad_here = False  # grad_norm is the current point's (full batch)
    stop = None  # why a run ended "stalled": "grad_tol", "rounding" (no descent left, ‖∇F‖ at rounding) or "kink"
    restarted, restarts = False, 0  # lbfgs: memory just cleared after a failed line search; how often
    it = 0
    try:
        for it in range(1, opts.max_iters + 1):
            if full:
                if carried is None:
                    optim.zero_grad()
                    F = evaluate()
                    F.backward()
                else:  # evaluated, with its gradient, by the logging or the line search of the iteration before
                    F, carried = carried, None
                best.offer(float(F.detach()), it - 1, leaves)  # the objective of the iterate before this step
                grad_norm, grad_here = _norm_of_grads(leaves), True
                if grad_norm <= opts.grad_tol:
                    status, message, stop = "stalled", f"‖∇F‖ = {grad_norm:.3g} <= grad_tol={opts.grad_tol}", "grad_tol"
                    history.append(HistoryEntry(it, time.perf_counter() - t0, float(F.detach()), None, math.nan, 0.0))
                    break
                if opts.algorithm == "lbfgs":
                    moved, carried = _lbfgs_step(optim, F, evaluate, leaves)
                    if not moved and restarted:  # no step with sufficient decrease, even along -∇F
                        stop = "rounding" if grad_norm <= _ROUNDING * max(1.0, abs(float(F.detach()))) else "kink"
                        status, message = "stalled", _no_descent_message(stop, grad_norm)
                        history.append(HistoryEntry(it, time.perf_counter() - t0, float(F.detach()), None,
                                                    math.nan, 0.0))
                        break
                    if not moved:  # forget the curvature pairs: steepest descent next, once
                        optim.state.clear()
                        restarts += 1
                    restarted = not moved
                else:
                    optim.step()
                grad_here = False
            else:
                perm = torch.randperm(N, generator=gen).to(X.device)
                for s in range(0, N, opts.batch_size):
                    if deadline is not None and time.perf_counter() > deadline:
                        break  # no minibatch step starts after the time limit
                    idx = perm[s:s + opts.batch_size]
                    optim.zero_grad()
                    objective(arch, as_params(), X[idx], T[idx], weight_decay).backward()
                    optim.step()
            if sched is not None:
                sched.step()
            if it % opts.log_every == 0 or it == opts.max_iters:
                if full:  # the next iteration starts from this evaluation (its gradient kept in .grad)
                    if carried is None:
                        optim.zero_grad()
                        carried = evaluate()
                        carried.backward()
                    f = float(carried.detach())
                else:
                    with torch.no_grad():
                        f = float(evaluate())
                history.append(HistoryEntry(it, time.perf_counter() - t0, f, None, math.nan, 0.0))
                best.offer(f, it, leaves)
                if not math.isfinite(f):
                    status, message = "solver_failure", ("the objective is not finite" if opts.algorithm == "lbfgs"
                                                         else "the objective diverged (lower lr)")
                    break
                if opts.record_diagnostics:
                    p = [(W.detach(), b.detach() if b is not None else None) for W, b in as_params()]
                    diag["iteration"].append(it)
                    diag["objective"].append(f)
                    diag["curvature"].append(normalised_curvature(arch, p, X, T, weight_decay))
                    diag["theta"].append(region_test(arch, p, X, T, weight_decay).theta_max)
                if opts.callback is not None and opts.callback(history[-1]):
                    status, message = "interrupted", "stopped by the callback"
                    break
            if deadline is not None and time.perf_counter() > deadline:
                status, message = "time_limit", opts.words.time(opts.time_limit)
                break
    except KeyboardInterrupt:
        status, message = "interrupted", "interrupted by the user (Ctrl-C)"
        carried = None  # an evaluation the interrupt cut short leaves no gradient to trust
    if full and not grad_here:  # the gradient at the last iterate (the loop's is at the point before its last step)
        grad_norm = (_norm_of_grads(leaves) if carried is not None
                     else _grad_norm_at(arch, leaves, len(params0), X, T, weight_decay))
    params = [(W.detach(), b.detach() if b is not None else None) for W, b in as_params()]
    with torch.no_grad():
        f = float(objective(arch, params, X, T, weight_decay))
    if history[-1].iteration != it:
        history.append(HistoryEntry(it, time.perf_counter() - t0, f, None, math.nan, 0.0))
    best_iteration, last_grad_norm = it, grad_norm
    if best.better_than(f):
        it_params = iter(best.leaves)
        params = [(next(it_params), next(it_params) if arch.bias else None) for _ in params0]
        if full:  # the gradient of the point returned, not of the last iterate
            grad_norm = _grad_norm_at(arch, best.leaves, len(params0), X, T, weight_decay)
        message = (f"the last iterate (iteration {it}, objective {f:.6g}) {message}; the best point seen "
                   f"(iteration {best.iteration}, objective {best.f:.6g}"
                   f"{f', ‖∇F‖ = {grad_norm:.3g}' if full else ''}) is returned instead")
        f, best_iteration = best.f, best.iteration
    res = Result(objective=f, status=status, iterations=it, history=history, solver_time=0.0,
                 total_time=time.perf_counter() - t0,
                 certificate=Certificate({}, 0.0, False), algorithm=opts.algorithm, message=message,
                 info={"lr": lr, "lr_schedule": opts.lr_schedule, "batch_size": None if full else opts.batch_size,
                       "grad_norm": grad_norm, "last_grad_norm": last_grad_norm, "best_iteration": best_iteration,
                       "stop": stop, **({"restarts": restarts} if opts.algorithm == "lbfgs" else {})})
    if opts.record_diagnostics:
        res.info["milne"] = {k: np.asarray(v) for k, v in diag.items()}
    return res, params


#: ‖∇F‖ at or below this times ``max(1, |F|)`` is rounding: a line search that finds no descent there has converged
_ROUNDING = math.sqrt(np.finfo(np.float64).eps)


def _norm_of_grads(leaves: list[torch.Tensor]) -> float:
    """‖∇F‖ from the leaves' ``.grad`` (those of the last backward)."""
    return float(torch.sqrt(sum((t.grad ** 2).sum() for t in leaves if t.grad is not None)))


def _lbfgs_step(optim: torch.optim.Optimizer, F: torch.Tensor, evaluate, leaves: list[torch.Tensor]
                ) -> tuple[bool, torch.Tensor | None]:
    """One L-BFGS iteration from the point of ``F`` (its gradient in ``.grad``): whether the point moved, and the
    objective at the new point when the line search's last evaluation was there (gradient in ``.grad``), else
    ``None``. Ctrl-C inside the line search puts the point back where the iteration started (torch leaves it at
    the trial point being evaluated) and propagates."""
    before = [t.detach().clone() for t in leaves]
    closure = _LBFGSClosure(F, evaluate, optim, leaves)
    try:
        optim.step(closure)
    except KeyboardInterrupt:
        with torch.no_grad():
            for t, b in zip(leaves, before):
                t.copy_(b)
        raise
    if all(torch.equal(a, t) for a, t in zip(before, leaves)):
        return False, None
    return True, closure.at()


def _no_descent_message(stop: str, grad_norm: float) -> str:
    said = ("L-BFGS's line search found no step with sufficient decrease along its direction nor, after a restart, "
            f"along -∇F (‖∇F‖ = {grad_norm:.3g}")
    if stop == "rounding":
        return f"{said}: stationary to rounding)"
    return (f"{said}: not a stationary point but a kink of the network's piecewise objective next to it; a block "
            "driver or a hybrid goes on from it)")


class _LBFGSClosure:
    """The closure of one L-BFGS step. Its first call returns ``F`` (evaluated, with its gradient in ``.grad``, at
    the point the step starts from); the line search's calls evaluate afresh, and the last of them is kept
    (objective and point): when the step ends on that point, as it does whenever the line search accepts its
    last trial, :meth:`at` hands it over, gradient in ``.grad``, and the next iteration evaluates nothing again."""

    def __init__(self, F: torch.Tensor, evaluate, optim: torch.optim.Optimizer, leaves: list[torch.Tensor]) -> None:
        self.F, self.evaluate, self.optim, self.leaves = F, evaluate, optim, leaves
        self.first = True
        self.last: tuple[torch.Tensor, list[torch.Tensor]] | None = None

    def __call__(self) -> torch.Tensor:
        if self.first:
            self.first = False
            return self.F.detach()
        self.optim.zero_grad()
        f = self.evaluate()
        f.backward()
        self.last = (f.detach(), [t.detach().clone() for t in self.leaves])
        return f.detach()

    def at(self) -> torch.Tensor | None:
        """The objective at the current point when the last evaluation was there (its gradient in ``.grad``)."""
        if self.last is None or not all(torch.equal(a, t) for a, t in zip(self.last[1], self.leaves)):
            return None
        return self.last[0]


def _grad_norm_at(arch, leaves: list[torch.Tensor], n_layers: int, X, T, weight_decay) -> float:
    """‖∇F‖ over the full data at the point ``leaves`` (``(W, b)`` per layer, flattened as the run keeps them)."""
    point = [t.detach().clone().requires_grad_(True) for t in leaves]
    it_point = iter(point)
    params = [(next(it_point), next(it_point) if arch.bias else None) for _ in range(n_layers)]
    grads = torch.autograd.grad(objective(arch, params, X, T, weight_decay), point, allow_unused=True)
    return float(torch.sqrt(sum((g ** 2).sum() for g in grads if g is not None)))


__all__ = ["GRADIENT_ALGORITHMS", "FULL_BATCH", "SCHEDULES", "GradientOptions", "run_gradient"]
