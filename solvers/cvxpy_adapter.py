"""Solve a cvxpy problem with a list of backends, falling back in order.

Examples
--------
>>> import cvxpy as cp
>>> from multiconvex.solvers import resolve, solve_cvxpy
>>> x = cp.Variable(2)
>>> prob = cp.Problem(cp.Minimize(cp.sum_squares(x - 1)))
>>> report = solve_cvxpy(prob, resolve(["mosek", "clarabel"], "EQP"))
>>> report.backend, report.status
('clarabel', 'optimal')
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cvxpy as cp

from multiconvex.errors import LicenceError, SolverFailure, SolverUnavailableError
from multiconvex.standard_form import BlockSolution

from . import status as st
from .base import Backend
from .registry import known_names

logger = logging.getLogger(__name__)

# (problem -> {backend name: (n_variables, n_constraints, n_quadratic)}); sizes do not
# change when only Parameter values change, so they are computed once per problem.
_SIZES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass
class SolveReport:
    """Outcome of :func:`solve_cvxpy`.

    Attributes
    ----------
    status : str
        Normalised status (see :mod:`multiconvex.solvers.status`).
    backend : str
        Registry name of the backend that produced the result.
    solve_time : float
        Backend-reported solve time if available, else wall time of the solve call.
    wall_time : float
        Wall time of the whole call, failed attempts included.
    value : float | None
        Optimal objective value.
    attempts : list of (str, str)
        (backend name, status or error message) for every backend tried.
    """

    status: str
    backend: str
    solve_time: float
    wall_time: float
    value: float | None
    attempts: list[tuple[str, str]] = field(default_factory=list)


def options_for(backend: Backend, options: dict[str, Any] | None) -> dict[str, Any]:
    """Common pass-through options, then the ``{backend_name: {...}}`` entry for it."""
    if not options:
        return {}
    names = set(known_names())
    common = {k: v for k, v in options.items() if not (k.lower() in names and isinstance(v, dict))}
    specific = next((v for k, v in options.items()
                     if k.lower() == backend.name and isinstance(v, dict)), {})
    return {**common, **specific}


def with_time_limit(backend: Backend, options: dict[str, Any], remaining: float | None) -> dict[str, Any]:
    """``options`` with ``remaining`` seconds as ``backend``'s own time limit (:attr:`Backend.time_limit_option`),
    unless the user set that option (any case) or the backend has none (the closed form and NNLS are one
    factorisation: the driver still starts no solve after the deadline; ProxQP's is ours, see
    :mod:`.proxqp_qp`)."""
    key = backend.time_limit_option
    if remaining is None or key is None or any(k.lower() == key.lower() for k in options):
        return options
    return {**options, key: max(remaining, 1e-3)}  # > 0: OSQP reads 0 as "no limit"


def with_deadline(backend: Backend, options: dict[str, Any], deadline: float | None) -> dict[str, Any]:
    """:func:`with_time_limit` with the time left before ``deadline`` (``time.time()`` seconds)."""
    return with_time_limit(backend, options, None if deadline is None else deadline - time.time())


#: Statuses that are a backend's proof about the problem, kept as they are when the deadline has passed.
_PROOFS = frozenset({st.INFEASIBLE, st.UNBOUNDED})


def _time_is_up(deadline: float | None) -> bool:
    return deadline is not None and time.time() >= deadline


def compiled_size(problem: cp.Problem, backend: Backend) -> tuple[int, int, int]:
    """Size of ``problem`` as ``backend`` sees it after cvxpy's compilation.

    Returns
    -------
    (n_variables, n_constraints, n_quadratic_variables)
        ``n_quadratic_variables`` counts columns of the quadratic objective,
        plus the rows of second-order cones (quadratic constraints).
    """
    per_problem = _SIZES.setdefault(problem, {})
    if backend.name in per_problem:
        return per_problem[backend.name]
    data, _, _ = problem.get_problem_data(backend.cvxpy_target())
    if "n_var" in data:  # QP form
        n_var, n_con = data["n_var"], data["n_eq"] + data["n_ineq"]
        P = data.get("P")
        n_quad = int((abs(P).sum(axis=0) > 0).sum()) if P is not None else 0
    else:  # conic form
        A = data["A"]
        n_var, n_con = A.shape[1], A.shape[0]
        dims = data.get("dims")
        n_quad = int(sum(getattr(dims, "soc", []) or []))
        P = data.get("P")
        if P is not None:
            n_quad += int((abs(P).sum(axis=0) > 0).sum())
    per_problem[backend.name] = (int(n_var), int(n_con), n_quad)
    return per_problem[backend.name]


def _check_size(problem: cp.Problem, backend: Backend) -> None:
    state = backend.licence().state
    if state == "missing":
        raise backend.licence_error()
    if state != "size-limited":
        return
    metrics = problem.size_metrics  # cheap lower bound first
    backend.check_size(metrics.num_scalar_variables,
                       metrics.num_scalar_eq_constr + metrics.num_scalar_leq_constr, 0)
    backend.check_size(*compiled_size(problem, backend))


def _solve_once(problem: cp.Problem, backend: Backend, options: dict[str, Any],
                warm_start: bool) -> tuple[str, float]:
    _check_size(problem, backend)
    target = backend.cvxpy_target()
    opts = backend.options(options)
    start = time.perf_counter()
    try:
        problem.solve(solver=target, warm_start=warm_start, **opts)
    except (cp.error.DCPError, cp.error.DGPError, cp.error.DPPError):
        raise  # the model is wrong, not the solver: no fallback will help
    except Exception as exc:  # native errors (mosek.Error, SolverError, ...) normalised here
        raise backend.translate(exc, problem=problem) from exc
    wall = time.perf_counter() - start
    status = st.from_cvxpy(problem.status)
    if not st.has_solution(status):
        raise SolverFailure(f"{backend.name} ended with status {status}",
                            solver=backend.name, status=status)
    stats = problem.solver_stats
    solve_time = getattr(stats, "solve_time", None) if stats is not None else None
    # a backend's own clock can run past the call that contains it (Clarabel's does, by a few per cent on
    # tiny problems): the time inside the solver is at most the call's wall time
    return status, min(float(solve_time), wall) if solve_time else wall


def solve_cvxpy(problem: cp.Problem, backends: list[Backend],
                options: dict[str, Any] | None = None, warm_start: bool = True, *,
                deadline: float | None = None) -> SolveReport:
    """Solve ``problem`` with the first backend in ``backends`` that succeeds.

    Each backend's licence and size limit are checked before its solve; a
    backend that is not installed, unlicensed, too small, or that ends without
    a solution is recorded in ``attempts`` and the next one is tried.

    Parameters
    ----------
    problem : cvxpy.Problem
        The problem; variable values are set by the successful backend.
    backends : list of Backend
        In order of preference (see :func:`multiconvex.solvers.resolve`).
    options : dict, optional
        Pass-through solver options. Keys that are registry names with a dict
        value apply to that backend only (``{"osqp": {"max_iter": 10}}``);
        every other key applies to every backend. Backend defaults (e.g. tight
        OSQP/SCS tolerances) are kept unless overridden.
    warm_start : bool
        Passed to cvxpy.
    deadline : float, optional
        The run's deadline (``time.time()`` seconds): no backend starts after it, each gets the time
        left as its own time limit (:func:`with_deadline`), and a backend that fails once it has
        passed ends the call with status ``time_limit`` (no fallback after the time is up), unless its
        status is a proof (``infeasible``, ``unbounded``), which is kept.

    A backend's ``infeasible`` or ``unbounded`` (exact as cvxpy reports it, but a first-order method's ray is
    a claim within its tolerances) does not end the list: a later backend may still solve the problem. When
    none does, the failure carries the first such claim's status rather than the last fallback's own failure
    (which used to bury it: ``auto``'s SCS after Clarabel's ``unbounded`` made it a ``solver_error``).

    Returns
    -------
    SolveReport

    Raises
    ------
    LicenceError
        The only backend given is unlicensed or too small for the problem.
    SolverUnavailableError
        The only backend given is not installed.
    SolverFailure
        Every backend failed; the message lists every attempt. Status ``time_limit`` when the
        deadline passed before a backend could start or while one ran.
    """
    if not backends:
        raise SolverFailure("no backend to try", solver="none")
    attempts: list[tuple[str, str]] = []
    errors: list[Exception] = []
    claim: SolverFailure | None = None  # the first backend's infeasible / unbounded, if one made that claim
    start = time.perf_counter()
    for backend in backends:
        if _time_is_up(deadline):
            tried = "".join(f"; {name}: {msg}" for name, msg in attempts)
            raise SolverFailure(f"the time limit had passed: no solve started{tried}", solver=backend.name,
                                status=st.TIME_LIMIT)
        try:
            if not backend.installed():
                raise SolverUnavailableError(
                    f"solver {backend.name!r} is not installed; `{backend.install_hint()}`"
                )
            status, solve_time = _solve_once(problem, backend,
                                             with_deadline(backend, options_for(backend, options), deadline),
                                             warm_start)
        except (LicenceError, SolverFailure, SolverUnavailableError) as exc:
            logger.info("backend %s failed: %s", backend.name, exc)
            attempts.append((backend.name, f"{type(exc).__name__}: {exc}"))
            errors.append(exc)
            if isinstance(exc, SolverFailure) and exc.status in _PROOFS and claim is None:
                claim = exc  # kept: the fallbacks still run (a first-order method's ray is a tolerance claim)
            if isinstance(exc, SolverFailure) and _time_is_up(deadline):
                if exc.status in _PROOFS:
                    raise  # a proof stays what it is; still no fallback starts after the time limit
                raise SolverFailure(f"{backend.name} stopped at the time limit ({exc}); no fallback starts after "
                                    "it", solver=backend.name, status=st.TIME_LIMIT) from exc
            continue
        attempts.append((backend.name, status))
        return SolveReport(status=status, backend=backend.name, solve_time=solve_time,
                           wall_time=time.perf_counter() - start, value=problem.value,
                           attempts=attempts)
    if len(errors) == 1:
        raise errors[0]
    tried = "; ".join(f"{name}: {msg}" for name, msg in attempts)
    if claim is not None:  # no backend solved it, one said why: its status, not the last fallback's own failure
        raise SolverFailure(f"{claim.solver} found the problem {claim.status}, and no fallback solved it ({tried})",
                            solver=claim.solver, status=claim.status) from claim
    last = errors[-1]
    raise SolverFailure(
        f"every solver failed ({tried}); try another solver or relax the options",
        solver=backends[-1].name,
        status=getattr(last, "status", st.LICENCE_ERROR if isinstance(last, LicenceError)
                       else st.SOLVER_ERROR),
    ) from last


def solve_block(index: int, problem: Any, backends: list[Any], options: Mapping[str, Any] | None,
                t0: float, *, deadline: float | None = None) -> tuple[BlockSolution, SolveReport | None]:
    """Solve one block's cvxpy problem through the backend list; ``(BlockSolution, SolveReport | None)``.

    A missing licence or backend is a configuration error and raises; any other failure becomes a
    failed :class:`BlockSolution` (the driver keeps its point). ``t0`` is when the block's work began.
    ``deadline`` (``time.time()`` seconds, the run's time limit: ``plan.deadline``) is handed to each
    backend as its own time limit; a block stopped there, or not started because it had passed, ends
    ``time_limit`` with no point. The caller fills in ``values`` and ``value`` from the report when it
    has a solution.
    """
    try:
        report = solve_cvxpy(problem, backends, dict(options or {}), warm_start=True, deadline=deadline)
    except (LicenceError, SolverUnavailableError):
        raise
    except Exception as exc:  # noqa: BLE001 - any backend failure is normalised; the point is kept
        return BlockSolution(block=index, status=getattr(exc, "status", "solver_error"),
                             wall_time=time.perf_counter() - t0, message=str(exc),
                             solve_time=time.perf_counter() - t0), None
    return BlockSolution(block=index, status=report.status, backend=report.backend, solve_time=report.solve_time,
                         wall_time=time.perf_counter() - t0, attempts=list(report.attempts)), report
