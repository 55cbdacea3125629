"""Pyomo sub-solvers by name: any Pyomo solver, persistent where it can be.

One :class:`SubSolver` per block keeps its solver instance between solves:

* new-style (``pyomo.contrib.solver``) solvers such as ``highs``, ``gurobi_persistent``
  (v2 names) update mutable parameters themselves;
* legacy persistent solvers (``gurobi_persistent``, ``mosek_persistent``...) are given
  the objective again and the constraints that hold parameters — otherwise they
  re-solve a stale model;
* APPSI solvers (``appsi_highs``...) are kept and detect the changed parameters themselves;
* every other legacy solver (``ipopt``, ``cyipopt``, ``scip``...) rebuilds each time.

Termination conditions of both result families are normalised to the statuses of
:mod:`multiconvex.solvers.status`.

Blocks whose subproblem is a QP in their own variables skip Pyomo's solver interfaces
when the sub-solver is named by registry names (``"auto"``, ``"clarabel"``, ``"highs"``...):
:func:`matrix_plan` resolves the names once into the dispatcher's plan.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyomo.environ as pyo
from pyomo.common.log import LoggingIntercept
from pyomo.contrib.solver.common.factory import SolverFactory as SolverFactoryV2
from pyomo.contrib.solver.common.results import SolutionStatus
from pyomo.contrib.solver.common.results import TerminationCondition as TCv2
from pyomo.opt import TerminationCondition as TC
from pyomo.solvers.plugins.solvers.persistent_solver import PersistentSolver

from ..errors import InvalidInputError, LicenceError, SolverUnavailableError
from ..solvers import dispatch, get_backend, known_names, require_usable
from ..solvers.backends import silence_highs_banner
from ..solvers.options import check_solver_options
from ..subproblem import BlockSubproblem

logger = logging.getLogger("multiconvex")

_LEGACY = {
    TC.optimal: "optimal", TC.globallyOptimal: "optimal", TC.locallyOptimal: "optimal",
    TC.feasible: "optimal_inaccurate", TC.maxIterations: "iteration_limit", TC.maxTimeLimit: "time_limit",
    TC.maxEvaluations: "iteration_limit", TC.minStepLength: "numerical_error",
    TC.infeasible: "infeasible", TC.invalidProblem: "numerical_error", TC.unbounded: "unbounded",
    TC.infeasibleOrUnbounded: "numerical_error", TC.licensingProblems: "licence_error",
}
_V2 = {
    TCv2.convergenceCriteriaSatisfied: "optimal", TCv2.maxTimeLimit: "time_limit",
    TCv2.iterationLimit: "iteration_limit", TCv2.objectiveLimit: "iteration_limit",
    TCv2.minStepLength: "numerical_error", TCv2.unbounded: "unbounded", TCv2.provenInfeasible: "infeasible",
    TCv2.locallyInfeasible: "numerical_error",  # a local NLP method's verdict, not a proof
    TCv2.infeasibleOrUnbounded: "numerical_error",
    TCv2.licensingProblems: "licence_error",
}

#: Pyomo names checked when telling a user what is available (any other name is accepted too).
COMMON_NAMES = ("highs", "gurobi_persistent", "gurobi_direct", "scip_direct", "mosek_persistent", "cyipopt",
                "ipopt", "appsi_highs", "cplex_persistent", "xpress_persistent", "glpk", "cbc", "scip")


#: Legacy Pyomo solver name (prefix) -> the solver's own time-limit option in seconds. New-style (v2)
#: solvers take Pyomo's ``time_limit`` config instead; a solver not listed gets none (the driver still
#: starts no block solve after the deadline).
LEGACY_TIME_LIMIT_OPTION: dict[str, str] = {
    "gurobi": "TimeLimit",
    "appsi_highs": "time_limit",
    "highs": "time_limit",
    "scip": "limits/time",
    "cbc": "sec",
    "glpk": "tmlim",
}



def _licence_error(backend) -> LicenceError:
    """The backend's :class:`LicenceError`, worded for this front end: its option is ``subsolver``, not ``solver``."""
    exc = backend.licence_error()
    return LicenceError(str(exc).replace("pass solver=", "pass subsolver="), solver=exc.solver, limit=exc.limit)

def legacy_time_limit(name: str, options: Mapping[str, Any], remaining: float | None) -> dict[str, Any]:
    """``options`` with ``remaining`` seconds as the legacy solver ``name``'s own time limit, when it has one
    (:data:`LEGACY_TIME_LIMIT_OPTION`) and the user did not set it (any case)."""
    out = dict(options)
    key = next((k for prefix, k in LEGACY_TIME_LIMIT_OPTION.items() if name.lower().startswith(prefix)), None)
    if remaining is None or key is None or any(k.lower() == key.lower() for k in out):
        return out
    out[key] = max(remaining, 1e-3) if key != "tmlim" else max(1, int(remaining))  # GLPK takes whole seconds
    return out


@dataclass
class SubResult:
    status: str
    has_solution: bool
    solve_time: float
    message: str = ""


def pyomo_name(name: str) -> str:
    """A Pyomo solver name passes through; a registry name without one (``"mosek"``) maps to its Pyomo name."""
    if name in SolverFactoryV2._cls or name in pyo.SolverFactory._cls:
        return name
    if name.lower() in known_names():
        b = get_backend(name)
        if b.pyomo_name is None:
            raise SolverUnavailableError(
                f"backend {b.name!r} has no Pyomo interface; Pyomo sub-solvers available here: "
                f"{', '.join(available_pyomo_solvers()) or 'none'}")
        return b.pyomo_name
    return name


def matrix_plan(specs: list[str], options: Mapping[str, Any] | None) -> dispatch.Plan | None:
    """The dispatcher's plan for ``specs`` when every name is a registry name, else ``None``.

    Checked here, before any solve, as :class:`SubSolver` checks Pyomo names: a single backend
    that is not installed or has no licence raises; a fallback list raises only when no entry
    is usable.

    Examples
    --------
    >>> matrix_plan(["auto"], None).auto, matrix_plan(["gurobi_persistent"], None) is None
    (True, True)
    """
    known = set(known_names())
    if not all(isinstance(s, str) and s.strip().lower() in known for s in specs):
        return None
    plan = dispatch.make_plan(specs[0] if len(specs) == 1 else list(specs), options=dict(options or {}))
    if plan.auto:
        return plan
    require_usable(plan.backends, what="sub-solver", licence_error=_licence_error)
    return plan


def check_subsolver_options(options: Mapping[str, Any] | None, specs: list[str], *, where: str | None = None) -> None:
    """Refuse option names the named sub-solvers do not accept, before any solve
    (:func:`multiconvex.solvers.options.check_solver_options`). A Pyomo name is checked as the backend behind
    it (``gurobi_persistent`` as Gurobi, ``appsi_highs`` as HiGHS); options for any other Pyomo solver
    (``ipopt``, ``cyipopt``, ``scip``...) pass through unchecked. Options nested under a Pyomo solver name
    (``{"gurobi_persistent": {"TimeLimit": 5}}``, read by :meth:`PyomoForm._pyomo_subsolvers` for that
    solver only) are checked against the backend behind that name, or not at all when it has none."""
    known = set(known_names())
    names = [b for b in (_backend_for(s) for s in specs) if b is not None]
    rest: dict[Any, Any] = {}
    for key, value in (options or {}).items():
        if isinstance(key, str) and key.strip().lower() not in known and isinstance(value, Mapping):
            backend = _backend_for(key)
            if backend is not None:
                check_solver_options(value, [backend], name=f"subsolver_options[{key!r}]", where=where)
            continue  # one Pyomo solver's own options: checked above, or unchecked when no backend is behind it
        rest[key] = value
    if names:
        check_solver_options(rest, names, name="subsolver_options", where=where)


def _backend_for(spec: str) -> str | None:
    """The registry backend name behind a registry or Pyomo solver name (``appsi_highs`` -> ``highs``,
    ``gurobi_persistent`` -> ``gurobi``); None for a Pyomo solver with none (``ipopt``...)."""
    key = spec.strip().lower()
    if key in set(known_names()):
        return key
    if "highs" in key:
        return "highs"
    backend = _registry_backend(key)
    return None if backend is None else backend.name


def check_plan(plan: dispatch.Plan, sub: BlockSubproblem, block: str) -> None:
    """Refuse, before any solve, a block subproblem that no named backend can take: of a class none of them
    solves (``lstsq`` on a block with bounds), or too large for the only usable one's licence (Gurobi's pip
    licence; with a usable fallback the dispatcher skips it instead)."""
    if plan.auto:
        return
    usable = [b for b in plan.backends if b.installed() and b.licence().state != "missing"]
    if not any(b.can_solve(sub.problem_class) for b in usable):
        raise InvalidInputError(
            f"block {block}'s subproblem is a {sub.problem_class} ({sub.n} variables, {sub.m} rows"
            f"{', bounds' if sub.has_bounds else ''}), which {', '.join(b.name for b in usable)} cannot solve; "
            "name a solver that can (e.g. 'clarabel'), or use 'auto'.")
    if len(usable) == 1:
        dispatch.check_licence(usable[0], sub, plan)


def available_pyomo_solvers() -> list[str]:
    """The names of :data:`COMMON_NAMES` that are available here (a probe: what the plugins log meanwhile, such as
    Gurobi's licence counter when a probe's instance is dropped, is not shown)."""
    out = []
    with LoggingIntercept(io.StringIO(), "pyomo"):
        for n in COMMON_NAMES:
            try:
                if n in SolverFactoryV2._cls:
                    ok = bool(SolverFactoryV2(n).available())
                else:
                    ok = bool(pyo.SolverFactory(n).available(exception_flag=False))
            except Exception:  # noqa: BLE001 - a broken plugin is simply not available
                ok = False
            if ok:
                out.append(n)
    return out


def _registry_backend(name: str):
    """The registry backend behind a Pyomo name, for licence checks (gurobi_*, mosek_*, scip_*)."""
    for prefix in ("gurobi", "mosek", "scip"):
        if name.lower().startswith(prefix):
            return get_backend(prefix)
    return None


class SubSolver:
    """One Pyomo solver instance for one block's sub-model.

    Raises
    ------
    SolverUnavailableError
        The name is unknown to Pyomo or the solver is not available here.
    LicenceError
        The solver's licence is missing (checked before any solve).
    """

    def __init__(self, name: str, options: Mapping[str, Any] | None = None, *, reuse: bool = True):
        self.requested = name
        self.name = pyomo_name(name)
        self.options = dict(options or {})
        if "highs" in self.name:
            silence_highs_banner()
            self.options.setdefault("output_flag", False)  # HiGHS warns on stdout at every coefficient update
        self.reuse = reuse
        self.kind = "v2" if self.name in SolverFactoryV2._cls else "legacy"
        if self.kind == "v2" and self.name.startswith("scip"):
            # Pyomo's scip_direct captures SCIP's log through a pipe that a Python thread empties, while SCIP writes
            # holding the GIL: a log beyond the pipe's buffer (a 6 × 5 factorisation's block) deadlocked the run
            self.options.setdefault("display/verblevel", 0)
        # a name Pyomo has no plugin for goes to its AMPL interface as an executable's name: Pyomo logs a
        # traceback when there is none and returns a stub that is not available; the error below says it instead
        log = io.StringIO()
        with LoggingIntercept(log, "pyomo"):
            self.opt = self._new()
            avail = self.opt.available() if self.kind == "v2" else self.opt.available(exception_flag=False)
            ok = bool(avail)
        if not ok:
            # "asl:ipopt", "gams:cplex": an interface and its solver; Pyomo knows the name by its interface
            known = self.kind == "v2" or self.name.split(":", 1)[0] in pyo.SolverFactory
            said = next((line.strip() for line in log.getvalue().splitlines() if line.strip()), "")
            if not said and self.kind == "v2":  # the new interface logs nothing: its availability says why
                said = f"its availability is {getattr(avail, 'name', avail)}"
            if not known:
                why = (f" (Pyomo has no solver plugin named {self.name!r}, and no executable of that name for its AMPL "
                       "interface was found)")
            else:  # Pyomo's own reason (a missing executable, a library it could not load), first line
                why = f" (Pyomo: {said})" if said else ""
            raise SolverUnavailableError(
                f"Pyomo sub-solver {self.name!r} is not available here{why}; available: "
                f"{', '.join(available_pyomo_solvers()) or 'none'} (any Pyomo solver name is accepted).")
        if log.getvalue().strip():  # an available solver's own warnings are the user's to see
            logger.warning("%s", log.getvalue().strip())
        self.backend = _registry_backend(self.name)
        if self.backend is not None and self.backend.licence().state == "missing":
            raise _licence_error(self.backend)
        if self.kind == "legacy" and isinstance(self.opt, PersistentSolver):
            self.kind = "persistent"
        # APPSI solvers (appsi_highs, appsi_gurobi...) behind the legacy factory take the model at every
        # solve and update what changed themselves: they run through the plain legacy path, kept per block.
        self._attached = None
        self._param_constraints: list = []
        self._broken = False  # the last solve raised: the next one starts from a fresh instance

    def _new(self):
        return SolverFactoryV2(self.name) if self.kind == "v2" else pyo.SolverFactory(self.name)

    def attach(self, sub: pyo.ConcreteModel, param_constraints: list, n_quadratic: int) -> None:
        """Check size limits and, for persistent solvers, load the sub-model once."""
        if self.backend is not None:
            n_vars = sum(1 for _ in sub.component_data_objects(pyo.Var))
            n_cons = sum(1 for _ in sub.component_data_objects(pyo.Constraint, active=True))
            self.backend.check_size(n_vars, n_cons, n_quadratic)
        if self.kind == "persistent":
            self.opt.set_instance(sub)
        self._attached = sub
        self._param_constraints = param_constraints

    def solve(self, sub: pyo.ConcreteModel, deadline: float | None = None) -> SubResult:
        """Solve the sub-model; ``deadline`` (``time.time()`` seconds) gives the solver the time left as its own
        time limit (Pyomo's ``time_limit`` for new-style solvers, :data:`LEGACY_TIME_LIMIT_OPTION` for legacy
        ones); a user's own time-limit option is kept. Past the deadline nothing is solved (``time_limit``)."""
        t0 = time.perf_counter()
        remaining = None if deadline is None else deadline - time.time()
        if remaining is not None and remaining <= 0:
            return SubResult("time_limit", False, 0.0, "the time limit had passed: no solve started")
        if not self.reuse or self._broken:  # a fresh instance: the naive baseline, or after a solve that raised
            self.opt = self._new()
            if self.kind == "persistent":
                self.opt.set_instance(sub)
            self._broken = False
        try:
            if self.kind == "v2":
                limit = {} if remaining is None else {"time_limit": max(remaining, 1e-3)}
                res = self.opt.solve(sub, load_solutions=False, raise_exception_on_nonoptimal_result=False,
                                     solver_options=self.options, **limit)
                status = _V2.get(res.termination_condition, "solver_error")
                has = res.solution_status in (SolutionStatus.optimal, SolutionStatus.feasible)
                if has:
                    res.solution_loader.load_vars()
            elif self.kind == "persistent":
                self.opt.set_objective(sub.obj)  # the legacy interface keeps a stale objective otherwise
                for c in self._param_constraints:
                    self.opt.remove_constraint(c)
                    self.opt.add_constraint(c)
                res = self.opt.solve(load_solutions=False,
                                     options=legacy_time_limit(self.name, self.options, remaining))
                status = _LEGACY.get(res.solver.termination_condition, "solver_error")
                has = False
                if status in ("optimal", "optimal_inaccurate", "iteration_limit", "time_limit"):
                    try:
                        self.opt.load_vars()
                        has = True
                    except Exception:  # noqa: BLE001 - the solver stopped without a point
                        has = False
            else:
                res = self.opt.solve(sub, load_solutions=False,
                                     options=legacy_time_limit(self.name, self.options, remaining))
                status = _LEGACY.get(res.solver.termination_condition, "solver_error")
                has = len(res.solution) > 0
                if has:
                    sub.solutions.load_from(res)
        except Exception as exc:  # noqa: BLE001 - normalised below; the driver keeps its point
            err = self.backend.translate(exc) if self.backend is not None else exc
            if isinstance(err, LicenceError):
                raise err from exc
            # an instance that raised half-way is not reused: appsi_highs, having refused a quadratic objective,
            # answered the next solve "optimal" with a value from nowhere, and HiGHS's own interface then raised
            # AttributeErrors at every solve
            self._broken = True
            return SubResult("solver_error", False, time.perf_counter() - t0, f"{type(exc).__name__}: {exc}")
        return SubResult(status, has, time.perf_counter() - t0,
                         "" if status == "optimal" else f"{self.name} ended with {status}")
