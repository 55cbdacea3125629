"""Iterated convex optimization over a :class:`~multiconvex.standard_form.StandardForm`.

Two drivers share one loop:

* ``"jacobi"`` (R&R Def 7.1): from the current point solve *every* block
  subproblem on its cross-section and piece (independent solves, dispatched
  through the executor) and accept the best candidate.
* ``"gauss-seidel"``: solve the blocks one after another, each from the point
  left by the previous one (alternating / block-coordinate descent).

A candidate is accepted only if the true (piecewise) objective does not
increase, so the best point so far is always the current point. The
certificate (block gaps, R&R Def 5.8) is computed at the returned point. A block
whose piece has units on a boundary is solved on the neighbouring piece too; when
that solve fails without proving the piece empty, the block's gap is ``nan`` (the
neighbouring piece might hold a lower optimum). Where the point lies in more pieces of a block
than those two, the gap is ``max(gap, bound)`` with the form's bound over all of them
(:meth:`StandardForm.adjacent_gap_bound`, measured without prox only).

``DriverOptions.callback`` is called as ``callback(entry)`` after each outer iteration's
:class:`~multiconvex.result.HistoryEntry` is appended, with the best point so far loaded into the
user's model (``form.load``); a truthy return stops the run as ``"interrupted"``, an exception
propagates after the best point is loaded (the contract: :mod:`multiconvex.result`). Front ends
call :func:`check_callback` before building anything.

Limits: ``time_limit`` is a deadline. The form gets it (:meth:`StandardForm.set_deadline`) and hands
the remaining time to each backend as its own time limit; the driver starts no block solve after it
and ends ``"time_limit"`` with the best point, its block gaps not computed (a certificate pass is a
whole round of solves). Ctrl-C (``KeyboardInterrupt``) ends the run ``"interrupted"`` at once with the
best point, likewise without a certificate pass: the gaps are ``nan``, never a claim not computed.
However a run ends, the last history entry holds the returned point's objective: an iteration cut
short by Ctrl-C gets its entry too (``accepted_block``: the blocks it had accepted by then).

A backend's proof ends a run with a status of its own: a block subproblem proven unbounded at an incumbent
whose other rows hold exactly (every constraint that does not involve the block, no tolerance:
:meth:`StandardForm.exactly_feasible`) makes the whole problem unbounded (``"unbounded"``: the subproblem's
feasible points are feasible for the problem and the objectives agree on them; the result's objective is the
returned point's, cvxpy's ``problem.value`` is ``-inf``); otherwise it is a failed block solve and the run
goes on (such a claim can come from the other blocks' violation alone, even one within the tolerance). A block
subproblem proven infeasible while no feasible point has been found, and no block step helps, ends as
``"infeasible"`` (that cross-section has no feasible point). A block proven infeasible at a *feasible*
incumbent contradicts itself and is a ``"solver_failure"``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import InvalidInputError
from .executor import Executor, InProcessExecutor
from .extrapolation import Extrapolation
from .result import Callback, Certificate, HistoryEntry, LimitWords, Result
from .standard_form import BlockSolution, Point, StandardForm, gap_over_adjacent_pieces, replace
from .tolerance import gap_tolerance

logger = logging.getLogger("multiconvex")

ALGORITHMS = ("gauss-seidel", "jacobi")

#: Statuses of a solve on a neighbouring piece that prove it holds no point below the incumbent: the piece is
#: empty, or a lower bound is above the incumbent's value (the dispatcher's ``cutoff``).
NOTHING_BELOW = frozenset({"infeasible", "cutoff"})


@dataclass
class DriverOptions:
    """Options shared by the drivers (validated by the front ends)."""

    algorithm: str = "gauss-seidel"
    max_iters: int = 100
    tol: float = 1e-6
    time_limit: float | None = None
    prox: float = 0.0
    executor: Executor = field(default_factory=InProcessExecutor)
    verbose: bool = False
    progress: bool | None = None
    callback: Callback | None = None
    #: try ``x + β(x − x_prev)`` after each step that moved the point, kept only when strictly better
    #: (:mod:`multiconvex.extrapolation`)
    extrapolate: bool = False
    #: how the messages name the limits (the caller's option names, the time limit as the caller gave it)
    words: LimitWords = field(default_factory=LimitWords)


def check_callback(callback: Any) -> Callable[[HistoryEntry], Any] | None:
    """``callback`` if it is ``None`` or callable, else a clear :class:`InvalidInputError` (before any solve)."""
    if callback is None or callable(callback):
        return callback
    raise InvalidInputError(
        f"callback={callback!r} ({type(callback).__name__}) is not callable: pass a function called as "
        "callback(entry) with each iteration's HistoryEntry (return True to stop the run), or None.")


@dataclass
class _State:
    """The incumbent: always the best point found so far.

    Points are compared by merit: a feasible point beats an infeasible one, two
    feasible points by objective, two infeasible points by constraint violation.
    ``f`` is ``inf`` while the incumbent is infeasible.
    """

    x: Point
    f: float
    violation: float = 0.0
    solver_time: float = 0.0
    backends: dict[str, int] = field(default_factory=dict)
    failures: int = 0

    def record(self, sol: BlockSolution, neighbour: bool = False) -> None:
        self.solver_time += sol.solve_time
        if sol.ok and sol.backend:
            self.backends[sol.backend] = self.backends.get(sol.backend, 0) + 1
        # a neighbouring piece across a boundary may be empty, or proven to hold nothing below the point: an
        # answer, not a failure
        if not sol.ok and not (neighbour and sol.status in NOTHING_BELOW):
            self.failures += 1

    def offer(self, candidate: Point, merit: tuple[float, float]) -> bool:
        """Accept ``candidate`` iff its merit is no worse (never a higher objective once feasible)."""
        if not _no_worse(merit, (self.f, self.violation)):
            return False
        self.x, (self.f, self.violation) = candidate, merit
        return True


@dataclass
class _Pass:
    """What one driver step found."""

    gaps: dict[str, float] | None  # block gaps at the point the step started from (None: not measured)
    start_f: float
    accepted: str | None
    n_ok: int
    failed: tuple[str, ...] = ()
    failed_status: tuple[str, ...] = ()  # the normalised status of each failed block solve, as ``failed``
    bound_nan: tuple[str, ...] = ()  # blocks whose gap is nan because the adjacent-piece bound could not be computed
    # blocks whose subproblem a backend proved unbounded where the incumbent it was built at holds every row that
    # does not involve the block exactly (StandardForm.exactly_feasible): a proof that the problem is unbounded;
    # where such a row is broken, even within the tolerance, the claim says nothing
    unbounded: tuple[str, ...] = ()


def _run_task(task: tuple) -> object:
    """Run a shipped ``(function, argument)`` block solve (module level, so it pickles)."""
    fn, arg = task
    return fn(arg)


def _no_worse(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Merit order on (objective, violation); objective is inf for infeasible points."""
    (fa, va), (fb, vb) = a, b
    if math.isfinite(fa):
        return fa <= fb or not math.isfinite(fb)
    return not math.isfinite(fb) and va < vb


class _Driver:
    def __init__(self, form: StandardForm, opts: DriverOptions):
        self.form = form
        self.opts = opts
        self.names = [b.name for b in form.blocks]
        self._session: contextlib.AbstractContextManager = contextlib.nullcontext()
        self._inline = getattr(opts.executor, "kind", None) == "inprocess"  # solves run here, in order
        self._deadline: float | None = None  # the run's (time.perf_counter() seconds), set by _run
        self._accepted_now: list[str] = []  # blocks accepted so far in the current sweep (for a Ctrl-C inside it)
        # blocks of the last solve_blocks call whose solve on the neighbouring piece failed (not a proof that it is
        # empty): their optimum over the pieces containing the point is not known, so neither is their gap
        self._neighbour_unsolved: dict[int, str] = {}
        self._extrapolation = Extrapolation() if opts.extrapolate else None

    # -- block solves on the piece at the incumbent (and its neighbour across a boundary) -------
    def solve_blocks(self, st: _State, prox: float, indices: list[int]) -> list[BlockSolution]:
        """Solve the blocks ``indices`` from the incumbent, independently (through the executor).

        A block whose piece has units on a boundary (pre-activation ≈ 0) is solved on
        the adjacent piece too (those units flipped): the point belongs to both, and the
        better of the two is the block's solution and its optimum (THEORY §2). A block whose
        solve on the adjacent piece failed without proving it empty is listed in
        ``self._neighbour_unsolved`` (its optimum, and so its gap, is not known).
        """
        form, x = self.form, st.x
        self._neighbour_unsolved = {}
        if len(indices) == 1 and self._inline:
            # one block in this process (a Gauss–Seidel step): no executor round trip
            i = indices[0]
            if not form.prepare(i, x, prox=prox):
                sol = form.solve_prepared(i)
                st.record(sol)
                return [sol]
            boundary = {i: True}
            sols = {i: form.solve_prepared(i)}
        elif self._inline and self._deadline is not None:
            # solved here one after another (a Jacobi round): none is prepared or started after the deadline
            boundary, sols = {}, {}
            for i in indices:
                if _past(self._deadline):
                    break
                boundary[i] = form.prepare(i, x, prox=prox)
            for i in boundary:
                sols[i] = form.solve_prepared(i) if not _past(self._deadline) else _not_started(i)
            for i in indices:
                if i not in sols:
                    boundary[i], sols[i] = False, _not_started(i)
        else:
            boundary = {i: form.prepare(i, x, prox=prox) for i in indices}
            sols = {s.block: s for s in self._map_solves(indices)}
        for s in sols.values():
            if s.message != _NOT_STARTED:  # a solve never started is neither a solve nor a failure
                st.record(s)
        flips = [i for i in indices if boundary[i] and not (self._inline and _past(self._deadline))]
        for i in flips:
            form.prepare(i, x, prox=prox, flip_boundary=True)
        for s in self._map_solves(flips) if flips else ():
            st.record(s, neighbour=True)
            if not s.ok and s.status not in NOTHING_BELOW:  # failed, and no proof that the piece holds nothing
                self._neighbour_unsolved[s.block] = s.status
            if s.ok and (not sols[s.block].ok or s.value < sols[s.block].value):
                sols[s.block] = s
        return [sols[i] for i in indices]

    def _map_solves(self, indices: list[int]) -> list[BlockSolution]:
        """The prepared solves of ``indices`` through the executor; to another process (a pool, Dask) only
        as plain data (:meth:`StandardForm.ship`) — a form whose solves need this process is refused there."""
        ex, form = self.opts.executor, self.form
        if getattr(ex, "kind", None) in ("processes", "dask"):
            tasks = [t for t in (form.ship(i) for i in indices) if t is not None]
            if len(tasks) == len(indices):
                return [form.receive(i, r) for i, r in zip(indices, ex.map(_run_task, tasks))]
        return ex.map(form.solve_prepared, indices)

    # -- one pass: every block solved from the same point ---------------------------------------
    def jacobi_pass(self, st: _State, prox: float, accept: bool = True) -> _Pass:
        form, x, f = self.form, st.x, st.f
        tol = gap_tolerance(self.opts.tol, f)
        sols = self.solve_blocks(st, prox, list(range(len(form.blocks))))
        gaps: dict[str, float] = {}
        best: tuple[tuple[float, float], Point, str] | None = None
        prove = prox == 0 and math.isfinite(f)
        steps: list[tuple[int, float]] = []  # blocks whose gap is above tol through their adjacent bound only
        bound_nan: list[str] = []
        for sol in sols:
            name = self.names[sol.block]
            if not sol.ok:
                if sol.status != "time_limit":  # out of time is the run's status, not a block's failure
                    logger.warning("block %s: solve failed (%s): %s", name, sol.status, sol.message)
                gaps[name] = math.nan
                continue
            # only an accurate optimum of the subproblem without prox measures the gap
            gaps[name] = f - sol.value if prox == 0 and math.isfinite(f) and sol.status == "optimal" else math.nan
            if sol.block in self._neighbour_unsolved:  # the piece across a boundary might hold a lower optimum
                if prox == 0:
                    logger.warning("block %s: its solve on the neighbouring piece across a boundary ended %s: "
                                   "the block gap is not computed", name, self._neighbour_unsolved[sol.block])
                gaps[name] = math.nan
            if gaps[name] < -tol:
                logger.warning("block %s: the backend's optimum %.10g is above the objective %.10g at a point "
                               "feasible for it: the solve is inaccurate (or the point meets a badly scaled row, "
                               "e.g. 1e-7*x >= 5e-7, only to the absolute feasibility tolerance); it certifies "
                               "nothing (gap not computed)", name, sol.value, f)
                gaps[name] = math.nan  # a number from a wrong optimum is no gap
            if prove:  # every piece containing the point, not only the two solved (None: those are all)
                solved = gaps[name]
                gaps[name], bound = gap_over_adjacent_pieces(form, sol.block, x, solved, tol)
                if bound is not None and math.isnan(bound):
                    bound_nan.append(name)
                if solved <= tol < gaps[name]:  # a minimum on the solved pieces, not along the block: a way on
                    steps.append((sol.block, tol))
        if prox == 0 and _all_within(gaps, tol):
            accept = False  # the start point is certified: stay on it
        for sol in sols if accept else ():
            if sol.values is not None:
                cand = replace(x, sol.values)
                merit = form.merit(sol.block, sol) or form.evaluate(cand)
                if best is None or not _no_worse(best[0], merit):
                    best = (merit, cand, self.names[sol.block])
        for i, enough in steps if accept else ():  # a step along the block where an unsolved adjacent piece descends
            if _past(self._deadline):  # each step costs up to 40 forward passes: none starts after the deadline
                break
            values = form.adjacent_step(i, x, enough)
            if values is not None:
                cand = replace(x, values)
                merit = form.evaluate(cand)
                if best is None or not _no_worse(best[0], merit):
                    best = (merit, cand, self.names[i])
        accepted = None
        if best is not None and _strictly_better(best[0], (f, st.violation)) and st.offer(best[1], best[0]):
            accepted = best[2]
        n_ok = sum(s.ok for s in sols)
        failed = tuple(self.names[s.block] for s in sols if not s.ok)
        return _Pass(gaps=gaps if prox == 0 else None, start_f=f, accepted=accepted, n_ok=n_ok, failed=failed,
                     failed_status=tuple(s.status for s in sols if not s.ok), bound_nan=tuple(bound_nan),
                     unbounded=tuple(self.names[s.block] for s in sols
                                     if s.status == "unbounded" and form.exactly_feasible(x, s.block)))
    # -- one sweep: blocks one after another ----------------------------------------------------
    def gauss_seidel_sweep(self, st: _State, prox: float, deadline: float | None) -> _Pass:
        form = self.form
        start_f = st.f
        accepted: list[str] = []
        failed: list[str] = []
        failed_status: list[str] = []
        unbounded: list[str] = []
        n_ok = 0
        self._accepted_now = accepted
        for i, name in enumerate(self.names):
            if _past(deadline):
                break  # no block solve starts after the deadline
            sol = self.solve_blocks(st, prox, [i])[0]
            if not sol.ok:
                if sol.status != "time_limit":  # out of time is the run's status, not a block's failure
                    logger.warning("block %s: solve failed (%s): %s", name, sol.status, sol.message)
                failed.append(name)
                failed_status.append(sol.status)
                if sol.status == "unbounded" and form.exactly_feasible(st.x, i):
                    unbounded.append(name)
                    break  # the other rows hold exactly: a proof that the problem is unbounded, the run ends here
                continue
            n_ok += 1
            assert sol.values is not None  # ok means values
            cand = replace(st.x, sol.values)
            if st.offer(cand, form.merit(i, sol) or form.evaluate(cand)):
                accepted.append(name)
        return _Pass(gaps=None, start_f=start_f, accepted=",".join(accepted) or None, n_ok=n_ok,
                     failed=tuple(failed), failed_status=tuple(failed_status), unbounded=tuple(unbounded))

    # -- the shared loop ------------------------------------------------------------------------
    def run(self, x0: Point) -> Result:
        """:meth:`_run` inside the form's session (:meth:`StandardForm.session`), left around callbacks."""
        self._session = self.form.session()
        self._session.__enter__()
        try:
            return self._run(x0)
        finally:
            self._session.__exit__(None, None, None)

    def _run(self, x0: Point) -> Result:
        opts, form = self.opts, self.form
        t0 = time.perf_counter()
        deadline = t0 + opts.time_limit if opts.time_limit is not None else None
        self._deadline = deadline
        # the form's clock is time.time() (it may travel to worker processes with the plan)
        form.set_deadline(time.time() + opts.time_limit if opts.time_limit is not None else None)
        form.set_tolerance(opts.tol)
        f0, v0 = form.evaluate(x0)
        st = _State(x=x0, f=f0, violation=v0)
        if not np.isfinite(st.f):
            logger.warning("the start point is infeasible (largest constraint violation %.3g): block steps "
                           "first reduce the violation", v0)
        history = [HistoryEntry(0, 0.0, st.f * form.sense, None, math.nan, 0.0)]
        certificate: Certificate | None = None
        status, message = "iteration_limit", opts.words.iterations(opts.max_iters)
        no_gaps = ""  # why the certificate pass is skipped (a limit or Ctrl-C), "" to run it
        reached_limit = False  # the iterations ran out at a point its certificate pass certifies
        bar = _progress_bar(opts)
        self._log_header()
        it = 0
        try:
            for it in range(1, opts.max_iters + 1):
                self._accepted_now = []
                x_prev = st.x
                if opts.algorithm == "jacobi":
                    step = self.jacobi_pass(st, opts.prox)
                else:
                    step = self.gauss_seidel_sweep(st, opts.prox, deadline)
                tol = gap_tolerance(opts.tol, step.start_f)
                proof = _proof(step, st, self.form)
                if proof is not None:
                    status, message = proof
                    self._record(history, it, t0, st, step, bar)
                    break
                if step.accepted is not None and self._extrapolation is not None and not _past(deadline):
                    self._extrapolate(st, x_prev, step)
                progress = step.start_f - st.f
                if step.gaps is not None and step.accepted is None and _all_within(step.gaps, tol):
                    # gaps measured at the incumbent (Jacobi without prox stays put when certified)
                    certificate = Certificate.from_gaps(step.gaps, tol)
                    status, message = "converged", "every block gap is within tolerance"
                    self._record(history, it, t0, st, step, bar)
                    break
                if _past(deadline) or (step.n_ok == 0 and step.failed_status and _nearly_past(deadline, opts)
                                       and all(s == "time_limit" for s in step.failed_status)):
                    # before judging failed solves: after the deadline solves end time_limit or do not start;
                    # a backend handed the time left may stop a moment before the deadline itself (a user's own
                    # per-solve time limit far from the run's deadline is a solver failure, not the run's limit)
                    status, message = "time_limit", opts.words.time(opts.time_limit)
                    no_gaps = "the time limit had passed"
                    self._record(history, it, t0, st, step, bar)
                    break
                if step.n_ok == 0:
                    status, message = "solver_failure", "every block solve of the iteration failed"
                    self._record(history, it, t0, st, step, bar)
                    break
                if step.gaps is None and progress <= tol and not _past(deadline):
                    # the step could not measure gaps at the incumbent: check with one pass, no prox
                    check = self.jacobi_pass(st, 0.0)
                    ctol = gap_tolerance(opts.tol, check.start_f)  # the point the gaps are measured at
                    if check.accepted is None and _all_within(check.gaps or {}, ctol):
                        certificate = Certificate.from_gaps(check.gaps or {}, ctol)
                        status, message = "converged", "every block gap is within tolerance"
                        self._record(history, it, t0, st, check, bar)
                        break
                    step = check
                    if _past(deadline):  # the check pass was cut short: its blocks not solved did not fail
                        status, message = "time_limit", opts.words.time(opts.time_limit)
                        no_gaps = "the time limit had passed"
                        self._record(history, it, t0, st, step, bar)
                        break
                proof = _proof(step, st, self.form)
                if proof is not None:
                    status, message = proof
                    self._record(history, it, t0, st, step, bar)
                    break
                if step.accepted is None and step.failed:
                    status = "solver_failure"
                    message = (f"no block step lowers the objective and the solves of block(s) "
                               f"{', '.join(step.failed)} failed")
                    self._record(history, it, t0, st, step, bar)
                    break
                if step.accepted is None and step.gaps is not None:
                    status = "stalled"
                    message = "no block step lowers the objective, but some block gap exceeds the tolerance"
                    nan_gaps = {n for n, g in step.gaps.items() if math.isnan(g)}
                    if nan_gaps - set(step.bound_nan):
                        message += (" or was not computed (a block solve failed or was inaccurate: its optimum "
                                    "above the objective, or a neighbouring piece's solve failed; see the log)")
                    if step.bound_nan:
                        message += (f"; the bound over every piece adjacent to the point could not be computed "
                                    f"for block(s) {', '.join(step.bound_nan)} (gap nan)")
                    self._record(history, it, t0, st, step, bar)
                    break
                if self._record(history, it, t0, st, step, bar):
                    status = "interrupted"
                    message = "stopped by the callback; the best point so far is returned"
                    logger.info(message)
                    break
                if _past(deadline):
                    status, message = "time_limit", opts.words.time(opts.time_limit)
                    no_gaps = "the time limit had passed"
                    break
        except KeyboardInterrupt:
            status, message = "interrupted", "interrupted by the user (Ctrl-C); the best point so far is returned"
            no_gaps = "the run was interrupted"
            logger.warning(message)
            if history[-1].iteration != it:  # the iteration cut short: its entry holds the point returned
                history.append(HistoryEntry(it, time.perf_counter() - t0, st.f * form.sense,
                                            ",".join(self._accepted_now) or None, math.nan, st.solver_time))
        finally:
            form.set_deadline(None)
            form.load(st.x)  # whatever happened, the user's variables hold the best point
            if bar is not None:
                bar.close()
        if certificate is None and status in ("infeasible", "unbounded"):
            # the backend's proof is the answer; gaps at a point of an infeasible cross-section mean nothing
            certificate = Certificate.from_gaps({n: math.nan for n in self.names}, gap_tolerance(opts.tol, st.f))
        if certificate is None and no_gaps:
            # a certificate pass is a whole round of block solves: not after a limit or Ctrl-C
            certificate = self._no_certificate(st)
            message += f"; block gaps not computed ({no_gaps})"
        if certificate is None:
            certificate = self._certify(st)
            if certificate is None:  # Ctrl-C during the certificate pass
                certificate = self._no_certificate(st)
                message = (f"interrupted by the user (Ctrl-C) while the block gaps were computed, after the run "
                           f"ended {status} ({message}); the best point is returned, its block gaps not computed")
                status = "interrupted"
            elif _past(deadline) and any(math.isnan(g) for g in certificate.block_gaps.values()):
                message += "; block gaps not solved after the time limit are nan (not computed)"
            elif status == "iteration_limit" and certificate.is_partial_minimum:
                # "converged" means every block gap within the tolerance at the returned point: so it is (info says
                # that the iterations ran out first: a caller that alternates runs with other steps goes on)
                status, message = "converged", (f"{message}; every block gap is within tolerance at the returned "
                                                "point (the certificate pass after the last iteration)")
                reached_limit = True
        form.load(st.x)
        total = time.perf_counter() - t0
        res = Result(
            objective=st.f * form.sense,
            status=status,
            iterations=it,
            history=history,
            solver_time=st.solver_time,
            total_time=total,
            certificate=certificate,
            values=form.named_values(st.x),
            algorithm=opts.algorithm,
            backends_used=dict(st.backends),
            message=message,
            info={"failed_block_solves": st.failures, "iteration_limit_reached": reached_limit,
                  **({"extrapolation": self._extrapolation.summary()} if self._extrapolation is not None else {})},
        )
        logger.info("%s: %s", status, message)
        return res

    def _extrapolate(self, st: _State, x_prev: Point, step: _Pass) -> None:
        """Try the extrapolated point after ``step`` moved the incumbent from ``x_prev``; keep it only when its merit
        is strictly better (the history's ``accepted_block`` then ends in ``extrapolation``)."""
        assert self._extrapolation is not None
        y = self._extrapolation.propose(st.x, x_prev)
        try:
            y = self.form.extrapolated(y)
            merit = self.form.evaluate(y)
        except (ArithmeticError, ValueError):  # a point that cannot be projected or evaluated: refused
            merit = (math.inf, math.inf)
        kept = _strictly_better(merit, (st.f, st.violation)) and st.offer(y, merit)
        self._extrapolation.update(kept)
        if kept:
            self._accepted_now.append("extrapolation")
            step.accepted = f"{step.accepted},extrapolation"

    def _certify(self, st: _State) -> Certificate | None:
        """Block gaps at the incumbent, by one pass that does not move (``None`` when Ctrl-C stops it)."""
        try:
            check = self.jacobi_pass(st, 0.0, accept=False)
        except KeyboardInterrupt:
            return None
        return Certificate.from_gaps(check.gaps or {}, gap_tolerance(self.opts.tol, st.f))

    def _no_certificate(self, st: _State) -> Certificate:
        """The certificate of a run whose block gaps were not computed: every gap ``nan``, no claim."""
        return Certificate.from_gaps({n: math.nan for n in self.names}, gap_tolerance(self.opts.tol, st.f))

    def _log_header(self) -> None:
        logger.info("%5s  %18s  %10s  %-14s  %8s", "iter", "objective", "max gap", "accepted", "time")

    def _record(self, history, it, t0, st, step, bar) -> bool:
        """Append the iteration's entry, log it, and call the callback; True when the callback asks to stop."""
        gaps = [g for g in (step.gaps or {}).values() if math.isfinite(g)]
        max_gap = max(gaps) if gaps else math.nan
        elapsed = time.perf_counter() - t0
        entry = HistoryEntry(it, elapsed, st.f * self.form.sense, step.accepted, max_gap, st.solver_time)
        history.append(entry)
        if logger.isEnabledFor(logging.INFO):  # (the line is formatted only when it is logged)
            # a Gauss–Seidel sweep measures no gap: "-" rather than "nan" in the table
            gap_text = f"{max_gap:10.3g}" if math.isfinite(max_gap) else f"{'-':>10}"
            logger.info("%5d  %18.10g  %s  %-14s  %8.3f", it, st.f * self.form.sense, gap_text,
                        step.accepted or "-", elapsed)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(objective=f"{st.f * self.form.sense:.6g}")
        if self.opts.callback is None:
            return False
        self.form.load(st.x)  # the callback reads the best point so far from the user's variables
        self._session.__exit__(None, None, None)  # the user's code runs as the user set things up
        try:
            return bool(self.opts.callback(entry))
        finally:
            self._session = self.form.session()
            self._session.__enter__()


def _proof(step: _Pass, st: _State, form: StandardForm) -> tuple[str, str] | None:
    """``(status, message)`` when a failed block solve of ``step`` is a proof that ends the run, else None.

    Unbounded: where the rows that do not involve the block hold exactly (the subproblem holds the others, so
    its feasible points are feasible for the problem, and on the piece the objectives agree); where they do
    not, the other blocks break constraints that the subproblem holds fixed, and its unboundedness says
    nothing (``min x·z`` with ``z ≥ 0, z ≤ 0`` from a start ``z ≠ 0``: the run goes on, the ``z`` block
    restores feasibility). Infeasible: only for a block whose feasible set involves no other block and no
    piece (:meth:`StandardForm.isolated`), while the incumbent is infeasible and the step accepted nothing; a
    coupled block's empty cross-section says nothing about the problem (another start may be feasible), and at
    a feasible incumbent the backend's claim is wrong — both go on to a solver failure.
    """
    if not step.failed:
        return None  # no failed solve: no proof (every iteration of a run without failures asks twice)
    by_status: dict[str, list[str]] = {}
    for name, status in zip(step.failed, step.failed_status):
        by_status.setdefault(status, []).append(name)
    if step.unbounded:
        blocks = ", ".join(step.unbounded)
        return "unbounded", (f"the subproblem of block(s) {blocks} is unbounded below (proof from the backend): "
                             "its feasible points are feasible for the problem, so the problem is unbounded")
    if "infeasible" not in by_status or math.isfinite(st.f) or step.accepted is not None:
        return None
    index = {b.name: i for i, b in enumerate(form.blocks)}
    proven = [n for n in by_status["infeasible"] if form.isolated(index[n])]
    if proven:
        return "infeasible", (f"the constraints of block(s) {', '.join(proven)} involve that block alone and its "
                              "subproblem is infeasible (proof from the backend): the problem has no feasible point")
    return None


_NOT_STARTED = "not started: the time limit had passed"


def _not_started(block: int) -> BlockSolution:
    """The solution of a block solve not started because the run's deadline had passed."""
    return BlockSolution(block=block, status="time_limit", message=_NOT_STARTED)


def _past(deadline: float | None) -> bool:
    """Whether the run's deadline (``time.perf_counter()`` seconds) has passed."""
    return deadline is not None and time.perf_counter() > deadline


def _nearly_past(deadline: float | None, opts: DriverOptions) -> bool:
    """Whether the run's deadline is at most 5% of its time limit (or 50 ms) away."""
    if deadline is None or opts.time_limit is None:
        return False
    return deadline - time.perf_counter() <= max(0.05, 0.05 * float(opts.time_limit))


def _strictly_better(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return _no_worse(a, b) and not _no_worse(b, a)


def _all_within(gaps: dict[str, float], tol: float) -> bool:
    """Every gap measured and within ``[-tol, tol]`` (a gap below −tol means the solve was wrong:
    the current point is feasible for every block subproblem)."""
    return bool(gaps) and all(math.isfinite(g) and -tol <= g <= tol for g in gaps.values())


def _progress_bar(opts: DriverOptions):
    show = opts.progress if opts.progress is not None else (not opts.verbose and sys.stderr.isatty())
    if not show:
        return None
    from tqdm.auto import tqdm  # lazy: ~0.1 s of imports (tqdm.auto probes for notebooks), for interactive runs only

    return tqdm(total=opts.max_iters, desc=f"multiconvex {opts.algorithm}", leave=False)


def run(form: StandardForm, x0: Point, opts: DriverOptions) -> Result:
    """Run the driver ``opts.algorithm`` on ``form`` from ``x0`` (``opts.callback``: see the module docstring)."""
    check_callback(opts.callback)
    return _Driver(form, opts).run(x0)


__all__ = ["ALGORITHMS", "DriverOptions", "check_callback", "run", "Hashable"]
