"""The meta-algorithm that grows parallel subnetworks until the polar certificate holds
(THEORY.md §4, H&V Thm 2 and its proof).

One round:

1. **local descent** on the current subnetworks by iterated convex optimization (the
   subnetwork problem's own convex block / piece solves, monotone);
2. drop subnetworks that are entirely zero;
3. **rescaling** (:mod:`.rescale`): while the outputs are linearly dependent, move along the flat
   path ``W_i ← (1 + β_i)^{1/p} W_i`` until one subnetwork is zero (output unchanged, objective
   not increased), drop it, and go back to 1;
4. **certificate** (:mod:`.certificate`): block gaps (stationarity), the polar of
   ``G = −∇_X ℓ``, the dual lower bound; stop when it proves global optimality. In a round whose
   polar is only a cheap screen that found units to append, the block gaps are not measured (such a
   certificate cannot pass, and the gaps cost one QP per piece): it says "stationarity not checked";
5. otherwise **append several subnetworks** along the best polar maximisers whose value exceeds λ,
   each scaled by an exact line search on the objective (so the objective decreases), and repeat.

Stops at the certificate, ``max_subnetworks``, ``max_rounds``, ``time_limit``, or when the polar
is only bounded (sampled patterns) and no maximiser found exceeds λ; the Result's ``status`` and
``message`` say which.

Limits: ``time_limit`` is a deadline checked between phases and handed to the local descent (its own
block solves) and to the polar (which checks it between its pattern programs and inside the pattern
enumeration, and raises :class:`~.patterns.DeadlinePassed`). After it, and after Ctrl-C, no polar,
block-gap or certificate pass runs: the best point found is returned with status ``"time_limit"`` /
``"interrupted"``, and a certificate only if one was already computed at that very point (else none:
block gaps ``nan``, ``global_optimal`` None, and the message says "certificate not computed").

Any start works (a warm start from a network trained elsewhere, e.g. by Adam): the algorithm
certifies it or improves it.

The model-specific parts live behind :class:`SubnetworkProblem` (matrix factorization:
:mod:`.mf_problem`; two-layer ReLU units: :mod:`.relu_problem`).

The certificate's gap rests on the objective *with* a proven bound on its rounding: a problem that has
``objective_bound(state) -> (f̂, e)`` (``|f̂ − f| ≤ e``) is valued by it at every certified point; one that
has not gets ``e = inf`` there, and so no proven gap (:mod:`.certificate`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..drivers import check_callback
from ..result import Certificate, HistoryEntry, Result
from .certificate import GlobalCertificate, make_certificate
from .patterns import DeadlinePassed
from .rescale import null_combination, rescale

logger = logging.getLogger("multiconvex")

__all__ = ["GrowOptions", "PolarInfo", "LocalDescent", "SubnetworkProblem", "bounded_objective", "grow"]


@dataclass(frozen=True)
class PolarInfo:
    """What a polar computation returned, model-independently.

    ``maximisers`` are model-specific directions (a unit-θ subnetwork each) with ``values`` their
    ``⟨G, φ(w)⟩``, best first.
    """

    value: float
    upper: float
    exact: bool
    method: str
    maximisers: list[Any]
    values: list[float]
    patterns_checked: int | None = None
    patterns_total: int | None = None
    wall_time: float = 0.0
    solver_time: float = 0.0
    screened: bool = False  # a cheap screen found these; the full polar was not computed


@dataclass(frozen=True)
class LocalDescent:
    """One local-descent phase: where it ended and whether its own convergence test passed."""

    state: Any
    iterations: int
    converged: bool
    solver_time: float
    block_gaps: dict[str, float] | None = None  # measured at the returned state, when available
    interrupted: bool = False  # Ctrl-C stopped it (a driver that catches KeyboardInterrupt says so here)


class SubnetworkProblem(Protocol):
    """What the meta-algorithm needs from a model with output ``Σ_i φ(W_i)``."""

    degree: int
    lam: float
    Y: np.ndarray

    def objective(self, state: Any) -> float: ...
    # optional: objective_bound(state) -> (f̂, e) with |f̂ − f(state)| ≤ e proven (see bounded_objective)
    def n_subnetworks(self, state: Any) -> int: ...
    def local_descent(self, state: Any, *, max_iters: int, tol: float, deadline: float | None) -> LocalDescent: ...
    def block_gaps(self, state: Any) -> dict[str, float]: ...
    def drop_zero(self, state: Any) -> Any: ...
    def outputs_for_rescale(self, state: Any) -> dict[str, np.ndarray]: ...  # {"outputs": ...} or {"gram": ...}
    def thetas(self, state: Any) -> np.ndarray: ...
    def scale(self, state: Any, factors: np.ndarray) -> Any: ...
    def residual(self, state: Any) -> np.ndarray: ...  # G = Y − X̂ (negative gradient of ½‖Y − X̂‖²)
    # full: no cheap screen; deadline (time.perf_counter() seconds): raise DeadlinePassed once it has passed
    def polar(self, state: Any, k: int, full: bool = False, deadline: float | None = None) -> PolarInfo: ...
    def append(self, state: Any, polar: PolarInfo, k: int) -> Any: ...
    def values(self, state: Any) -> dict[str, np.ndarray]: ...


@dataclass
class GrowOptions:
    """Options of :func:`grow`.

    Attributes
    ----------
    max_subnetworks : int
        Never hold more subnetworks than this.
    max_rounds : int
        Rounds of (local descent, certificate, append).
    max_iters : int
        Local-descent iterations per round.
    time_limit : float | None
        Seconds for the whole run: checked between phases and inside the local descent and the polar;
        no polar or certificate pass starts after it (see the module docstring).
    tol : float
        Relative tolerance of the local descent and of the block gaps (× |f|: scale-equivariant).
    polar_tol : float
        The certificate accepts ``polar ≤ λ (1 + polar_tol)``.
    gap_tol : float
        ...and a proven relative gap ``≤ gap_tol``.
    n_maximisers : int
        Subnetworks appended per round (the best polar maximisers above λ).
    rescale_rtol : float
        Linear-dependence threshold of the rescaling step.
    callback : callable, optional
        Called as ``callback(entry)`` with each round's :class:`~multiconvex.result.HistoryEntry` once
        that round's certificate is computed (the drivers' contract, :mod:`multiconvex.drivers`): a
        truthy return stops the run as ``"interrupted"`` with the last certified state (a round that
        proves global optimality still ends ``"converged"``); an exception propagates.
    """

    max_subnetworks: int = 200
    max_rounds: int = 50
    max_iters: int = 500
    time_limit: float | None = None
    tol: float = 1e-9
    polar_tol: float = 1e-6
    gap_tol: float = 1e-6
    n_maximisers: int = 5
    rescale_rtol: float = 1e-10
    info: dict[str, Any] = field(default_factory=dict)
    callback: Callable[[HistoryEntry], Any] | None = None


def _rescale_all(problem: SubnetworkProblem, state: Any, rtol: float) -> tuple[Any, int]:
    """Apply the rescaling step while the outputs are dependent; returns (state, steps)."""
    steps = 0
    while problem.n_subnetworks(state) > 1:
        beta = null_combination(**problem.outputs_for_rescale(state), rtol=rtol)
        if beta is None:
            break
        f_before = problem.objective(state)
        step = rescale(beta, problem.thetas(state), problem.degree)
        new = problem.drop_zero(problem.scale(state, step.factors))
        f_after = problem.objective(new)
        if f_after > f_before + 1e-12 * abs(f_before):  # numerically dependent only: keep state (relative)
            logger.debug("rescale: objective would rise %.3g -> %.3g; skipped", f_before, f_after)
            break
        state = new
        steps += 1
    return state, steps


def _check_record(rnd: int, problem: SubnetworkProblem, state: Any, pol: PolarInfo, f: float) -> dict[str, Any]:
    return {"round": rnd, "subnetworks": problem.n_subnetworks(state), "polar": pol.value, "upper": pol.upper,
            "exact": pol.exact, "screened": pol.screened, "time": pol.wall_time,
            "patterns_checked": pol.patterns_checked, "objective": f}


def bounded_objective(problem: SubnetworkProblem, state: Any) -> tuple[float, float]:
    """``(f̂, e)``: the objective at ``state`` and a proven bound ``|f̂ − f| ≤ e`` on its rounding — what a global
    certificate's gap rests on (``make_certificate(objective=f̂, objective_error=e, ...)``).

    Parameters
    ----------
    problem : SubnetworkProblem
        Its optional ``objective_bound(state)`` gives the pair; without it ``e = inf`` (no gap can be proven).
    state : Any
        The point.

    Examples
    --------
    >>> from multiconvex.globalopt.mf_problem import MFGrowProblem, MFState
    >>> Y = np.arange(12.0).reshape(4, 3)
    >>> f, e = bounded_objective(MFGrowProblem(Y, 1.0), MFState(np.ones((4, 1)), np.ones((3, 1))))
    >>> f, 0 < e < 1e-12 * f          # ½‖Y − 1‖² + ½(4 + 3)
    (196.5, True)
    """
    bound = getattr(problem, "objective_bound", None)
    if bound is None:
        return problem.objective(state), math.inf
    f, err = bound(state)
    return float(f), float(err)


def _certify(problem: SubnetworkProblem, state: Any, pol: PolarInfo, f: tuple[float, float],
             gaps: dict[str, float] | None, opts: GrowOptions) -> GlobalCertificate:
    """The certificate at ``state`` valued ``f = (f̂, e)`` (:func:`bounded_objective`)."""
    value, err = f
    return make_certificate(
        G=problem.residual(state), Y=problem.Y, lam=problem.lam, objective=value, objective_error=err,
        polar=pol.value, polar_upper=pol.upper, polar_exact=pol.exact, method=pol.method, block_gaps=gaps,
        block_tol=opts.tol * abs(value), n_subnetworks=problem.n_subnetworks(state),
        patterns_checked=pol.patterns_checked, patterns_total=pol.patterns_total,
        polar_tol=opts.polar_tol, gap_tol=opts.gap_tol)


def _past(deadline: float | None) -> bool:
    """Whether the run's deadline (``time.perf_counter()`` seconds) has passed."""
    return deadline is not None and time.perf_counter() > deadline


def grow(problem: SubnetworkProblem, state: Any, opts: GrowOptions) -> tuple[Result, Any]:
    """Run the meta-algorithm from ``state``; returns the :class:`Result` and the final state.

    The Result's ``certificate.globalopt`` is the :class:`GlobalCertificate` computed at the
    returned point (and ``certificate.global_optimal`` its verdict); ``subnetworks`` the count;
    ``iterations`` the local-descent iterations summed over rounds; ``info["rounds"]`` and
    ``info["polar_checks"]`` (per round: subnetworks, polar, upper bound, time, objective).
    Status: ``"converged"`` (certified, or a partial minimum where no polar maximiser found exceeds
    λ but nothing more is proven — the message says which), ``"iteration_limit"`` (``max_rounds``),
    ``"time_limit"``, ``"stalled"`` (``max_subnetworks``), ``"interrupted"``. After ``time_limit`` or
    Ctrl-C the best point is returned without a new certificate (module docstring).
    """
    callback = check_callback(opts.callback)
    t0 = time.perf_counter()
    deadline = t0 + opts.time_limit if opts.time_limit is not None else None
    lam = problem.lam
    history = [HistoryEntry(0, 0.0, problem.objective(state), None, math.nan, 0.0)]
    solver_time = 0.0
    polar_checks: list[dict[str, Any]] = []
    cert: GlobalCertificate | None = None
    gaps: dict[str, float] = {}
    status, message = "iteration_limit", f"stopped after max_rounds={opts.max_rounds} rounds"
    cut = ""  # why no polar or certificate pass may run any more (the time limit, Ctrl-C); "" while they may
    timed_out = f"stopped at time_limit={opts.time_limit:g}s" if opts.time_limit is not None else ""
    total_iters = 0
    rnd = 0
    snapshot = None
    try:
        prepare = getattr(problem, "prepare", None)  # optional: work before any solve (e.g. exact patterns)
        if prepare is not None:
            prepare(deadline)
        for rnd in range(1, opts.max_rounds + 1):
            ld = problem.local_descent(state, max_iters=opts.max_iters, tol=opts.tol, deadline=deadline)
            state, total_iters, solver_time = ld.state, total_iters + ld.iterations, solver_time + ld.solver_time
            if ld.interrupted:
                raise KeyboardInterrupt
            state = problem.drop_zero(state)
            state, n_resc = _rescale_all(problem, state, opts.rescale_rtol)
            if n_resc:
                logger.info("round %d: %d rescaling step(s), %d subnetworks", rnd, n_resc,
                            problem.n_subnetworks(state))
                if not _past(deadline):
                    ld = problem.local_descent(state, max_iters=opts.max_iters, tol=opts.tol, deadline=deadline)
                    state, total_iters = problem.drop_zero(ld.state), total_iters + ld.iterations
                    solver_time += ld.solver_time
                    if ld.interrupted:
                        raise KeyboardInterrupt
            if _past(deadline):
                status, message, cut = "time_limit", f"{timed_out} in round {rnd}", "the time limit had passed"
                break
            f, f_err = bounded_objective(problem, state)
            pol = problem.polar(state, max(1, opts.n_maximisers), deadline=deadline)
            solver_time += pol.solver_time
            polar_checks.append(_check_record(rnd, problem, state, pol, f))
            if pol.screened and any(v > lam * (1.0 + opts.polar_tol) for v in pol.values):
                # a screen's lower bound certifies nothing and the round appends units: the block gaps (one
                # QP per piece) would only be reported, so they are measured where the verdict needs them
                gaps_now: dict[str, float] | None = None
            elif ld.block_gaps is not None and not n_resc:
                gaps_now = ld.block_gaps
            elif _past(deadline):  # the block gaps are a certificate pass: not after the deadline
                status, message, cut = "time_limit", f"{timed_out} in round {rnd}", "the time limit had passed"
                break
            else:
                gaps_now = problem.block_gaps(state)
            gaps = gaps_now if gaps_now is not None else {}
            cert = _certify(problem, state, pol, (f, f_err), gaps_now, opts)
            # the returned point is always one whose certificate was computed
            snapshot = (state, cert, gaps_now, pol.screened)
            max_gap = max([g for g in gaps.values() if np.isfinite(g)], default=math.nan)
            history.append(HistoryEntry(rnd, time.perf_counter() - t0, f, f"r={problem.n_subnetworks(state)}",
                                        max_gap, solver_time))
            logger.info("round %d: objective %.12g, %d subnetworks, polar %.6g (upper %.6g) vs lam %.6g, "
                        "max block gap %.3g", rnd, f, problem.n_subnetworks(state), pol.value, pol.upper, lam,
                        max_gap)
            stop = bool(callback(history[-1])) if callback is not None else False
            if cert.global_optimal:
                status, message = "converged", (f"globally optimal: polar {pol.value:.6g} <= lam {lam:.6g} at a "
                                                f"stationary point, proven gap {cert.gap_bound:.3g}")
                break
            if stop:
                status, message = "interrupted", f"stopped by the callback after round {rnd}: {cert.reason}"
                logger.info(message)
                break
            growable = [v for v in pol.values if v > lam * (1.0 + opts.polar_tol)]
            if not growable:
                if cert.stationary:
                    status = "converged"
                    message = ("partial minimum; no polar maximiser found exceeds lam, but global optimality is "
                               f"not proven: {cert.reason}")
                    break
                if _past(deadline):
                    status, message, cut = "time_limit", timed_out, "the time limit had passed"
                    break
                status, message = "iteration_limit", (f"stopped after max_rounds={opts.max_rounds} rounds before "
                                                      f"the subnetworks were stationary: {cert.reason}")
                continue  # not stationary yet: descend further
            if _past(deadline):
                status, message, cut = "time_limit", timed_out, "the time limit had passed"
                break
            if rnd == opts.max_rounds:
                status, message = "iteration_limit", (f"stopped after max_rounds={opts.max_rounds} rounds: "
                                                      f"{cert.reason}")
                break
            room = opts.max_subnetworks - problem.n_subnetworks(state)
            if room <= 0:
                status, message = "stalled", (f"max_subnetworks={opts.max_subnetworks} reached with polar "
                                              f"{pol.value:.6g} > lam {lam:.6g}")
                break
            state = problem.append(state, pol, min(room, len(growable)))
    except KeyboardInterrupt:
        status, message, cut = "interrupted", "interrupted by the user (Ctrl-C)", "the run was interrupted"
        logger.warning(message)
    except DeadlinePassed:
        status, message, cut = "time_limit", f"{timed_out} in round {rnd}", "the time limit had passed"
    if cut:
        return _cut_result(problem, state, snapshot, gaps, status, message, cut, total_iters, history,
                           solver_time, t0, rnd, polar_checks, opts)
    if snapshot is not None:
        state, cert, snap_gaps, screened = snapshot
        gaps = snap_gaps if snap_gaps is not None else problem.block_gaps(state)
        if screened:  # the last polar was only a screen: compute the full one at the returned point
            pol = problem.polar(state, max(1, opts.n_maximisers), full=True)
            solver_time += pol.solver_time
            polar_checks.append(_check_record(rnd, problem, state, pol, cert.objective))
            cert = _certify(problem, state, pol, (cert.objective, cert.objective_error), gaps, opts)
            if cert.global_optimal and status != "interrupted":
                status, message = "converged", (f"globally optimal: polar {pol.value:.6g} <= lam {lam:.6g} at a "
                                                f"stationary point, proven gap {cert.gap_bound:.3g}")
            elif status != "interrupted":
                message = f"{message.split(': ', 1)[0]}: {cert.reason}"
    f = problem.objective(state) if cert is None else cert.objective  # no certificate: interrupted before any
    return _result(problem, state, f, cert, gaps, status, message, total_iters, history, solver_time, t0, rnd,
                   polar_checks, opts)


def _result(problem: SubnetworkProblem, state: Any, f: float, cert: GlobalCertificate | None,
            gaps: dict[str, float], status: str, message: str, total_iters: int, history: list[HistoryEntry],
            solver_time: float, t0: float, rnd: int, polar_checks: list[dict[str, Any]],
            opts: GrowOptions) -> tuple[Result, Any]:
    """The Result at ``state`` (objective ``f``): the block gaps' certificate, with the global one when computed.

    A run cut short returns the point it reached, as a rule past the last round's entry (or the start's): the history
    then ends with an entry for it (no block gap), so that its last objective is the one returned, as the drivers'."""
    if f != history[-1].objective:
        history = [*history, HistoryEntry(rnd, time.perf_counter() - t0, f, f"r={problem.n_subnetworks(state)}",
                                          math.nan, solver_time)]
    block_cert = Certificate.from_gaps(gaps, opts.tol * abs(f))
    if cert is not None:
        block_cert = dataclasses.replace(block_cert, global_optimal=cert.global_optimal, globalopt=cert)
    res = Result(objective=f, status=status, iterations=total_iters, history=history, solver_time=solver_time,
                 total_time=time.perf_counter() - t0, certificate=block_cert, values=problem.values(state),
                 algorithm="grow", message=message, subnetworks=problem.n_subnetworks(state),
                 info={"rounds": rnd, "polar_checks": polar_checks, **opts.info})
    logger.info("grow: %s: %s", status, message)
    return res, state


def _cut_result(problem: SubnetworkProblem, state: Any, snapshot: tuple | None, gaps: dict[str, float],
                status: str, message: str, cut: str, total_iters: int, history: list[HistoryEntry],
                solver_time: float, t0: float, rnd: int, polar_checks: list[dict[str, Any]],
                opts: GrowOptions) -> tuple[Result, Any]:
    """The Result of a run cut short by the time limit or Ctrl-C: the best point found, no new pass.

    Every phase is monotone (local descent, rescaling, appending along the line search), so the last
    state is the best one; it is compared with the last certified one all the same (rounding). The
    certificate is kept only when the returned point is the certified one; otherwise the block gaps are
    ``nan`` and nothing is claimed (``global_optimal`` None), as the drivers do (:mod:`multiconvex.drivers`).
    """
    f = problem.objective(state)
    cert = None
    if snapshot is not None:
        snap_state, snap_cert, snap_gaps, _ = snapshot
        if snap_state is state or snap_cert.objective < f:
            state, f, cert = snap_state, snap_cert.objective, snap_cert
            gaps = snap_gaps if snap_gaps is not None else {n: math.nan for n in gaps}
    if cert is None:
        gaps = {n: math.nan for n in gaps}
        message += f"; the best point is returned, its certificate not computed ({cut})"
    else:
        message += f"; the best point is the last certified one ({cut}): {cert.reason}"
    return _result(problem, state, f, cert, gaps, status, message, total_iters, history, solver_time, t0, rnd,
                   polar_checks, opts)
