"""The one dispatcher: a :class:`~multiconvex.subproblem.BlockSubproblem` and a :class:`Plan` in,
a :class:`SubSolution` out.

Licence and size checks, fallback lists, status normalisation, per-backend options, timing,
warm starts and the value of the returned point are done here once, for every front end.
A front door resolves the user's ``solver=`` once into a :class:`Plan` (:func:`make_plan`)
and passes it down; ``"auto"`` picks, per subproblem, the first backend whose matrix-level
module fits its class and size (closed form, then dense active-set, then conic).

Examples
--------
>>> import numpy as np
>>> from multiconvex.subproblem import BlockSubproblem
>>> sub = BlockSubproblem.from_dense(np.eye(2), np.array([1.0, -1.0]), lb=np.zeros(2))
>>> sol = solve(sub, make_plan("auto"))
>>> sol.status, sol.backend, sol.x.round(9).tolist(), round(sol.value, 9)
('optimal', 'daqp', [0.0, 1.0], -0.5)
>>> solve(sub, make_plan(["mosek", "osqp"])).backend   # MOSEK has no licence here: skipped
'osqp'
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
from threadpoolctl import ThreadpoolController

from multiconvex.errors import InvalidInputError, LicenceError, SolverFailure, SolverUnavailableError
from multiconvex.subproblem import BlockSubproblem

from . import status as st
from .base import Backend
from .clarabel_qp import ClarabelQP
from .closed_form import ClosedForm
from .cutoff import lower_bound
from .cvxpy_adapter import options_for, with_time_limit
from .cvxpy_bridge import solve_via_cvxpy
from .daqp_qp import DaqpQP
from .matrix import MatrixOutcome, MatrixSolver
from .nnls import NnlsQP
from .options import CVXPY_KEYWORDS
from .osqp_qp import OsqpQP
from .proxqp_qp import ProxqpQP
from .registry import get_backend, known_names, resolve

logger = logging.getLogger(__name__)

#: Registry name -> matrix-level module. Backends not listed go through :mod:`.cvxpy_bridge`.
MATRIX_SOLVERS: dict[str, MatrixSolver] = {
    "lstsq": ClosedForm(),
    "daqp": DaqpQP(),
    "proxqp": ProxqpQP(),
    "clarabel": ClarabelQP(),
    "clarabel-native": ClarabelQP(),
    "osqp": OsqpQP(),
    "nnls": NnlsQP(),
}

#: "auto" on block subproblems, per class: exact and dense first, conic for what is large.
#: A dense module is skipped above its ``max_auto_size`` (variables) and ``max_auto_rows`` (constraint rows).
VALUE_AUTO_ORDER: dict[str, tuple[str, ...]] = {
    "EQP": ("lstsq", "daqp", "proxqp", "clarabel", "osqp"),
    "QP": ("nnls", "daqp", "proxqp", "clarabel", "osqp"),  # nnls: shared-Gram blocks with lower bounds only
    "LP": ("clarabel", "highs", "osqp"),
    "SOCP": ("clarabel", "ecos", "scs"),  # cones: only the conic backends (through cvxpy for ECOS/SCS)
}

#: Backends found installed in this process (their modules do not vanish while it runs), keyed by name, the
#: ``installed`` method and the required modules: a stand-in for either (a test's) is asked, never cached over.
_FOUND: set[tuple[Any, ...]] = set()
#: Backends that need no licence (a fixed property of the backend).
_NO_LICENCE: set[str] = set()


@dataclass
class Plan:
    """A user's ``solver=`` resolved once: the backends in order, their options, whether "auto".

    ``workspaces`` keeps per-block solver state (a Clarabel solver updated in place) between
    solves of the same block: pass the block's name as ``key`` to :func:`solve`.

    ``deadline`` (``time.time()`` seconds, so that it means the same in a worker process; ``None``: no
    limit) is the run's time limit: :func:`solve` starts no solve after it and hands each backend the
    remaining time as its own time limit (:attr:`Backend.time_limit_option`) unless the user set that option.
    """

    backends: list[Backend]
    options: dict[str, Any] = field(default_factory=dict)
    auto: bool = False
    workspaces: dict[Any, dict] = field(default_factory=dict, repr=False)
    _installed: dict[str, bool] = field(default_factory=dict, repr=False)
    _licences: dict[str, str] = field(default_factory=dict, repr=False)
    deadline: float | None = None

    def remaining(self) -> float | None:
        """Seconds left before :attr:`deadline` (negative once it has passed), or ``None`` without one."""
        return None if self.deadline is None else self.deadline - time.time()

    def installed(self, backend: Backend) -> bool:
        """``backend.installed()``, asked once per plan (it looks up module specs: too slow for every solve); a
        backend found once stays found for the process (:data:`_FOUND`), one not found is asked again by the next
        plan (the user may install it meanwhile)."""
        if backend.name not in self._installed:
            own = "installed" not in vars(backend)  # not a per-instance replacement (a test's stand-in)
            key = (backend.name, type(backend).installed, tuple(backend.modules))
            found = (own and key in _FOUND) or backend.installed()
            if found and own:
                _FOUND.add(key)
            self._installed[backend.name] = found
        return self._installed[backend.name]

    def licence_state(self, backend: Backend) -> str:
        """``backend.licence().state``, asked once per plan; a backend that needs no licence needs none for the
        process (:data:`_NO_LICENCE`), the others are asked again by the next plan (a licence file may appear)."""
        if backend.name not in self._licences:
            own = "licence" not in vars(backend)  # not a per-instance replacement (a test's stand-in)
            state = "not-required" if own and backend.name in _NO_LICENCE else backend.licence().state
            if state == "not-required" and own:
                _NO_LICENCE.add(backend.name)
            self._licences[backend.name] = state
        return self._licences[backend.name]

    def check_class(self, problem_class: str, where: str = "a block") -> None:
        """Refuse, before any solve, a named backend that cannot take ``problem_class`` subproblems (its
        matrix module does not take the class and it has no cvxpy route to it); the message says who can."""
        if self.auto:
            return
        for backend in self.backends:
            solver = MATRIX_SOLVERS.get(backend.name)
            if (solver is not None and problem_class in solver.classes) or (
                    backend.cvxpy_name is not None and backend.can_solve(problem_class)):
                continue
            raise InvalidInputError(f"solver {backend.name!r} cannot solve {where} ({problem_class} subproblems)"
                                    f"{_why(problem_class)}; use one of: {', '.join(able_for(problem_class))}, "
                                    "or 'auto'")

    def portable(self) -> Plan:
        """The plan without per-block solver state (which cannot leave this process)."""
        return Plan(list(self.backends), dict(self.options), self.auto, {}, dict(self._installed), dict(self._licences),
                    self.deadline)

    @property
    def names(self) -> list[str]:
        return [b.name for b in self.backends]

    def first_choice(self, problem_class: str) -> str | None:
        """The backend :meth:`candidates` considers first for a subproblem of ``problem_class``, whatever
        its size (the first of the list, or of "auto"'s order for the class)."""
        if not self.auto:
            return self.backends[0].name if self.backends else None
        return VALUE_AUTO_ORDER.get(problem_class, VALUE_AUTO_ORDER["QP"])[0]

    def candidates(self, sub: BlockSubproblem) -> Iterator[Backend]:
        """The backends to try for ``sub``, in order; lazily, so that a fit is not judged (a density check
        builds ``P``) beyond the first backend that solves it."""
        if not self.auto:
            yield from self.backends
            return
        for name in VALUE_AUTO_ORDER.get(sub.problem_class, VALUE_AUTO_ORDER["QP"]):
            backend = get_backend(name)
            if not (self.installed(backend) and self.licence_state(backend) in ("not-required", "ok")):
                continue
            solver = MATRIX_SOLVERS.get(name)
            if solver is None or solver.accepts(sub, auto=True):
                yield backend


def solve_task(task: tuple) -> SubSolution:
    """:func:`solve` on one ``(subproblem, plan, warm, key[, cutoff])`` tuple: a picklable task for process pools
    and Dask workers (the subproblem is plain data; the plan travels without its workspaces)."""
    sub, plan, warm, key, *cutoff = task
    return solve(sub, plan, warm=warm, key=key, cutoff=cutoff[0] if cutoff else None)


def make_plan(spec: str | Backend | Sequence[str | Backend] | None = "auto", problem_class: str | None = None,
              options: dict[str, Any] | None = None) -> Plan:
    """Resolve ``spec`` once (unknown names and a single missing backend fail here, before any solve)."""
    auto = spec is None or (isinstance(spec, str) and spec.strip().lower() == "auto")
    backends = [] if auto else resolve(spec, problem_class)
    return Plan(backends, dict(options or {}), auto)


@dataclass
class SubSolution:
    """What :func:`solve` produced.

    ``value`` is the subproblem's objective at ``x`` computed from the subproblem itself (the
    same arithmetic whichever backend ran); ``solve_time`` is the time inside the backend,
    ``wall_time`` the whole call including failed attempts.
    """

    status: str
    x: np.ndarray | None
    value: float
    backend: str | None
    solve_time: float
    wall_time: float
    attempts: list[tuple[str, str]] = field(default_factory=list)
    message: str = ""
    how: str = ""
    value_exact: bool = False  # ``value`` is ``sub.value(x)`` computed as that method computes it

    @property
    def ok(self) -> bool:
        return self.x is not None


def check_licence(backend: Backend, sub: BlockSubproblem, plan: Plan) -> None:
    """Raise the backend's :class:`~multiconvex.errors.LicenceError` when its licence is missing, or
    too small for ``sub`` (a size-limited licence: bound rows count as constraints, and every variable
    as quadratic when the objective is)."""
    state = plan.licence_state(backend)
    if state == "missing":
        raise backend.licence_error()
    if state == "size-limited":
        n_bounds = int(sub.has_bounds) * sub.n
        backend.check_size(sub.n, sub.m + n_bounds + sub.n_soc, sub.n if sub.is_quadratic else 0)


#: Largest dense factor (the shared Gram matrix's side, else n) solved with one BLAS thread: small
#: factorisations gain nothing from threads, and on a loaded machine OpenBLAS's spinning threads made a
#: 12x12 Cholesky solve with 600 right-hand sides 20-100x slower (benchmarks/bench_subproblem.py).
SINGLE_THREAD_FACTOR = 500

_blas_libs: list | None = None  # the loaded BLAS libraries (threadpoolctl controllers), found once
_blas_lock = threading.Lock()
_blas_users = 0  # solves inside the context now (Jacobi blocks on threads share the process-wide setting)
_blas_saved: list = []


class _OneBlasThread:
    """Every loaded BLAS library at one thread while any solve is inside, then back (direct calls:
    threadpoolctl's own ``limit`` context re-inspects the libraries on every entry, ~40 µs, too slow
    around a 12×12 solve). Counted, so that concurrent block solves on threads do not restore the
    setting under each other."""

    def __enter__(self) -> None:
        global _blas_libs, _blas_users, _blas_saved
        with _blas_lock:
            if _blas_libs is None:
                _blas_libs = [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]
            if _blas_users == 0:
                _blas_saved = [(lib, n) for lib in _blas_libs if (n := lib.get_num_threads()) != 1]
                for lib, _ in _blas_saved:
                    lib.set_num_threads(1)
            _blas_users += 1
        _held.depth = getattr(_held, "depth", 0) + 1

    def __exit__(self, *exc: object) -> None:
        global _blas_users
        _held.depth -= 1
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                for lib, n in _blas_saved:
                    lib.set_num_threads(n)


#: Per thread: how many one-BLAS-thread contexts it is inside (the setting holds until the outermost ends).
_held = threading.local()
T = TypeVar("T")
_UNCHANGED = contextlib.nullcontext()


def one_blas_thread() -> contextlib.AbstractContextManager:
    """A context that runs its body with one BLAS thread (for front ends building small subproblems); inside
    another such context on the same thread it changes nothing (the setting holds until that one ends)."""
    return _UNCHANGED if getattr(_held, "depth", 0) else _OneBlasThread()


def on_one_blas_thread(fn: Callable[..., T]) -> Callable[..., T]:
    """A decorator: ``fn`` runs inside :func:`one_blas_thread` (small dense algebra, e.g. a grow problem's hooks)."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        with one_blas_thread():
            return fn(*args, **kwargs)
    return wrapper


def one_blas_thread_held() -> bool:
    """Whether this thread is inside a :func:`one_blas_thread` context (a run's session): a hot loop then skips
    entering another, which would change nothing."""
    return bool(getattr(_held, "depth", 0))


def _one_blas_thread(solver: MatrixSolver, sub: BlockSubproblem) -> contextlib.AbstractContextManager:
    if getattr(_held, "depth", 0):  # this thread holds one BLAS thread already (a run's session)
        return _UNCHANGED
    if solver.name != "lstsq":  # the others factorise in their own C/C++ code, not through BLAS calls from here
        return contextlib.nullcontext()
    shared = sub.shared_gram()
    size = shared[1].shape[0] if shared is not None else sub.n
    if size > SINGLE_THREAD_FACTOR:
        return contextlib.nullcontext()
    return _OneBlasThread()


def _time_is_up(plan: Plan, sub: BlockSubproblem, t0: float, solve_time: float,
                attempts: list[tuple[str, str]]) -> SubSolution:
    """The answer when the plan's deadline has passed before a backend could start: no point."""
    attempts = attempts + [("-", f"{st.TIME_LIMIT}: the time limit had passed; no solve started")]
    return SubSolution(st.TIME_LIMIT, None, float("nan"), None, solve_time, time.perf_counter() - t0, attempts,
                       message=f"the time limit had passed: no solve started on this {sub.problem_class} block "
                               "subproblem")


class ClassMismatch(InvalidInputError):
    """A named backend cannot take the subproblem's class: a configuration error, not a failed solve (the
    next backend of the list is tried; alone, it is raised)."""


def _why(problem_class: str) -> str:
    """Why a class is refused, where a reader may not know (a message fragment; empty otherwise)."""
    if problem_class == "SOCP":
        return "; a SOCP block has second-order cones, which QP-only backends cannot take"
    return ""


def able_for(problem_class: str, sub: BlockSubproblem | None = None, but: str | None = None) -> list[str]:
    """Registry names (``but`` left out) whose matrix module or cvxpy route takes ``problem_class`` subproblems;
    with ``sub``, that subproblem (a matrix module: as its ``accepts`` answers for a named solver)."""
    def takes(name: str) -> bool:
        solver = MATRIX_SOLVERS.get(name)
        if solver is not None and problem_class in solver.classes and (sub is None or solver.accepts(sub, auto=False)):
            return True
        backend = get_backend(name)
        return backend.cvxpy_name is not None and backend.can_solve(problem_class)

    return sorted(name for name in known_names() if name not in ("auto", but) and takes(name))


_CVXPY_ONLY = CVXPY_KEYWORDS - {"verbose"}


#: A warm start, or a function that builds it (called only for a backend that reads warm starts).
Warm = np.ndarray | Callable[[], np.ndarray] | None


def _warm_for(solver: MatrixSolver | None, warm: Warm) -> np.ndarray | None:
    """``warm`` as an array for ``solver`` (``None``: a cvxpy route), built only if the backend reads it."""
    if not callable(warm):
        return warm
    return warm() if solver is None or solver.uses_warm else None


def _solve_one(backend: Backend, sub: BlockSubproblem, options: dict[str, Any], warm: Warm,
               state: dict) -> MatrixOutcome:
    solver = MATRIX_SOLVERS.get(backend.name)
    if solver is not None and solver.accepts(sub, auto=False):
        # cvxpy's own keywords (ignore_dpp, ...) mean nothing to a matrix module; verbose is the backend's own
        options = _matrix_options(options)
        with _one_blas_thread(solver, sub):
            return solver.solve(sub, options, _warm_for(solver, warm), state)
    if backend.cvxpy_name is None or not backend.can_solve(sub.problem_class):
        if solver is not None and sub.problem_class in solver.classes and solver.takes:
            what = f"this {sub.problem_class} block subproblem: it takes {solver.takes}"
        else:
            what = f"a {sub.problem_class} block subproblem{_why(sub.problem_class)}"
        raise ClassMismatch(f"solver {backend.name!r} cannot take {what}; use one of: "
                            f"{', '.join(able_for(sub.problem_class, sub, but=backend.name))}, or 'auto'")
    return solve_via_cvxpy(sub, backend, options, _warm_for(None, warm))


#: Key, in a block's workspace, of the backend that solved the block's last subproblem first time (see
#: :func:`_solve_sticky`); registry names never start with an underscore.
_STICKY = "_sticky"

#: Licence states that need no per-solve size check.
_FREE = ("not-required", "ok")


def _solve_sticky(sticky: tuple[Backend, MatrixSolver, str], sub: BlockSubproblem, plan: Plan,
                  warm: Warm, workspace: dict, t0: float) -> SubSolution | None:
    """The block's remembered backend on ``sub``, without choosing again; ``None`` when it does not apply
    (another class, a size it does not take) or did not return a solution (the caller then runs the full
    search, which records every attempt).

    Remembered only for the plan's first choice for the class (:meth:`Plan.first_choice`), installed and
    with a licence that needs no size check (:data:`_FREE`): while that backend takes the subproblem
    (``accepts``, asked here as the search asks it), the search would try it first again. The deadline,
    options, timing, status and value are handled as in :func:`solve`; a solve stopped by the run's time
    limit is recorded as the search records it (the backend's attempt and its solve time: the search, run
    again after the deadline, would start nothing and report no solve).
    """
    backend, solver, problem_class = sticky
    if sub.problem_class != problem_class or not solver.accepts(sub, auto=plan.auto):
        return None
    remaining = None if plan.deadline is None else plan.remaining()
    if remaining is not None and remaining <= 0:
        return _time_is_up(plan, sub, t0, 0.0, [])
    options = _matrix_options(options_for(backend, plan.options)) if plan.options else {}
    if remaining is not None:
        options = with_time_limit(backend, options, remaining)
    state = workspace.get(backend.name)
    if state is None:
        state = workspace[backend.name] = {}
    if callable(warm):  # (_warm_for) built only for a backend that reads it
        warm = warm() if solver.uses_warm else None
    try:
        if getattr(_held, "depth", 0):  # the run's session holds one BLAS thread: no context to enter
            out = solver.solve(sub, options, warm, state)
        else:
            with _one_blas_thread(solver, sub):
                out = solver.solve(sub, options, warm, state)
    except Exception:  # noqa: BLE001 - the full search runs it again and records the failure as it does
        return None
    if out.x is not None and st.has_solution(out.status):
        return _solved(backend, sub, out, out.solve_time, t0, [(backend.name, out.status)])
    if out.status == st.TIME_LIMIT and remaining is not None:
        # the run's time is up: as the search ends on it (no fallback starts), with this attempt recorded
        return _failed(out, out.solve_time, t0, [(backend.name, _attempt_status(out))])
    return None  # the full search records the failure and tries the others (a rare, repeated solve)


def _matrix_options(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` without cvxpy's own keywords (``ignore_dpp``...), which mean nothing to a matrix module."""
    return {k: v for k, v in options.items() if k not in _CVXPY_ONLY}


def _attempt_status(out: MatrixOutcome) -> str:
    """How an attempt is recorded: the normalised status, with the native one when it says more."""
    if out.x is not None and st.has_solution(out.status) or not out.native_status or out.native_status == out.status:
        return out.status
    return f"{out.status}: {out.native_status}"


def _solved(backend: Backend, sub: BlockSubproblem, out: MatrixOutcome, solve_time: float, t0: float,
            attempts: list[tuple[str, str]]) -> SubSolution:
    """The :class:`SubSolution` of a backend's solution (its value the subproblem's own when it gave none)."""
    assert out.x is not None
    value = out.value if out.value is not None else sub.value(out.x)
    return SubSolution(out.status, out.x, value, backend.name, solve_time, time.perf_counter() - t0, attempts,
                       how=out.native_status, value_exact=out.value is None or out.value_exact)


def _failed(last: MatrixOutcome, solve_time: float, t0: float, attempts: list[tuple[str, str]]) -> SubSolution:
    """The :class:`SubSolution` when no backend returned a solution; ``last`` decides the status (an
    infeasible / unbounded claim without a proof is a numerical error: drivers end runs on proofs only)."""
    status = last.status
    if status in (st.INFEASIBLE, st.UNBOUNDED) and not last.proof:
        status = st.NUMERICAL_ERROR
    return SubSolution(status, None, float("nan"), None, solve_time, time.perf_counter() - t0, attempts,
                       message="every backend failed: " + "; ".join(f"{n}: {m}" for n, m in attempts),
                       how=last.native_status)


def _cut_off(sub: BlockSubproblem, cutoff: float, t0: float, solve_time: float,
             attempts: list[tuple[str, str]]) -> SubSolution | None:
    """Status ``cutoff`` (no point) when :func:`~multiconvex.solvers.cutoff.lower_bound` proves that no point of
    ``sub``'s feasible set has a value below ``cutoff``; ``None`` when it does not."""
    t_bound = time.perf_counter()
    bound = lower_bound(sub)
    if not bound > cutoff:
        return None
    seconds = time.perf_counter() - t_bound
    why = (f"no point below the cutoff {cutoff!r}: the minimum over the feasible set is at least {bound!r} "
           f"(solvers.cutoff: a row's distance from the unconstrained minimum, or the dual along a ray)")
    return SubSolution(st.CUTOFF, None, float("nan"), None, solve_time + seconds, time.perf_counter() - t0,
                       [*attempts, ("cutoff", st.CUTOFF)], message=why, how="proven: a lower bound above the cutoff")


def solve(sub: BlockSubproblem, plan: Plan, *, warm: Warm = None, key: Any = None,
          cutoff: float | None = None) -> SubSolution:
    """Solve ``sub`` with the first backend of ``plan`` that returns a solution.

    A backend that is not installed, unlicensed or too small is skipped (recorded in
    ``attempts``); if no backend could even be tried, the configuration error is raised
    (there is nothing to fall back on). A backend that runs and fails is recorded and the next
    one tried; when all fail, the :class:`SubSolution` has ``x=None`` and the last status.
    Once ``plan.deadline`` has passed no backend starts (status ``time_limit``, no point); before, each
    gets the remaining time as its own time limit (:func:`with_time_limit`), and one that stops there
    ends the call (status ``time_limit``: no fallback after the time is up).
    ``warm`` may be a function that builds the start: it is called only for a backend that reads one.

    ``cutoff``: the caller wants only points whose value is below it (Gurobi's ``Cutoff``). Once a backend
    has failed, and before any fallback starts, :func:`multiconvex.solvers.cutoff.lower_bound` is computed; when
    it is above ``cutoff`` the call ends with status ``cutoff`` and no point, a proof that none exists.
    """
    t0 = time.perf_counter()
    workspace = plan.workspaces.get(key)
    if workspace is None:
        workspace = plan.workspaces[key] = {}
    sticky = workspace.get(_STICKY)
    if sticky is not None:
        fast = _solve_sticky(sticky, sub, plan, warm, workspace, t0)
        if fast is not None:
            return fast
        del workspace[_STICKY]  # it failed here, or no longer fits: the full search below, from the start
    failed_once = False
    attempts: list[tuple[str, str]] = []
    config_errors: list[Exception] = []
    last: MatrixOutcome | None = None
    solve_time = 0.0
    for backend in plan.candidates(sub):
        remaining = plan.remaining()
        if remaining is not None and remaining <= 0:
            return _time_is_up(plan, sub, t0, solve_time, attempts)
        t_try = time.perf_counter()
        try:
            if not plan.installed(backend):
                raise SolverUnavailableError(f"solver {backend.name!r} is not installed; `{backend.install_hint()}`")
            check_licence(backend, sub, plan)
        except (LicenceError, SolverUnavailableError) as exc:
            attempts.append((backend.name, f"{type(exc).__name__}: {exc}"))
            config_errors.append(exc)
            continue
        try:
            out = _solve_one(backend, sub, with_time_limit(backend, options_for(backend, plan.options), remaining),
                             warm, workspace.setdefault(backend.name, {}))
        except (LicenceError, SolverUnavailableError, ClassMismatch) as exc:
            attempts.append((backend.name, f"{type(exc).__name__}: {exc}"))
            config_errors.append(exc)
            continue
        except SolverFailure as exc:  # raised through cvxpy: its exact infeasible/unbounded are the backend's
            # proofs (inaccurate ones are mapped to numerical_error by solvers.status)
            out = MatrixOutcome(exc.status, None, time.perf_counter() - t_try, str(exc),
                                proof=exc.status in (st.INFEASIBLE, st.UNBOUNDED))
        except Exception as exc:  # noqa: BLE001 - any backend failure is normalised; the caller keeps its point
            out = MatrixOutcome(st.SOLVER_ERROR, None, 0.0, f"{type(exc).__name__}: {exc}")
        solve_time += out.solve_time
        attempts.append((backend.name, _attempt_status(out)))
        if out.x is not None and st.has_solution(out.status):
            if len(attempts) == 1 and backend.name == plan.first_choice(sub.problem_class) and \
                    backend.name in MATRIX_SOLVERS and plan.licence_state(backend) in _FREE:
                # the plan's first choice solved it: the block's next solves go straight to it (_solve_sticky)
                workspace[_STICKY] = (backend, MATRIX_SOLVERS[backend.name], sub.problem_class)
            return _solved(backend, sub, out, solve_time, t0, attempts)
        logger.info("backend %s on a %s block subproblem: %s (%s)", backend.name, sub.problem_class, out.status,
                    out.native_status)
        if out.status in (st.INFEASIBLE, st.UNBOUNDED) and out.proof:
            last = out  # a proof about the subproblem: no other backend can do better
            break
        if out.status == st.TIME_LIMIT and remaining is not None:
            last = out  # the run's time is up: no fallback starts
            break
        if last is None or last.status not in (st.INFEASIBLE, st.UNBOUNDED):
            last = out
        if cutoff is not None and not failed_once:
            failed_once = True
            cut = _cut_off(sub, cutoff, t0, solve_time, attempts)
            if cut is not None:
                return cut
    if last is None:
        if len(config_errors) == 1:
            raise config_errors[0]
        if config_errors:
            tried = "; ".join(f"{n}: {m}" for n, m in attempts)
            raise SolverUnavailableError(f"no solver in the list could run ({tried}); install or license one, "
                                         f"or use solver='auto'")
        raise SolverUnavailableError(f"no installed licence-free solver takes this {sub.problem_class} block "
                                     f"subproblem (n={sub.n}); install clarabel or name a solver")
    return _failed(last, solve_time, t0, attempts)
