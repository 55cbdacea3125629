"""``SolverFactory("multiconvex")``: the Pyomo meta-solver (like MindtPy and GDPopt).

Registered with both of Pyomo's factories when this package (:mod:`multiconvex.pyomo_front`) is
imported; ``import multiconvex`` does that as soon as Pyomo is imported (before or after it)::

    opt = pyo.SolverFactory("multiconvex", subsolver="highs", algorithm="jacobi", max_iters=100)
    results = opt.solve(m, tee=True)          # legacy results
    results.solver.termination_condition

The legacy wrapper's ``solve()`` has a fixed signature (tee, timelimit, options...),
so the driver's options go through the constructor, or ``opt.config`` between
solves (``opt.config.max_iters = 50``). The new-style interface
(``pyomo.contrib.solver.common.factory.SolverFactory("multiconvex")``) takes them
in ``solve(model, **options)`` too.

Statuses follow Pyomo's new interface and its local NLP solvers (Ipopt reports a converged KKT
point as ``optimal``): a run that converged — every block gap within tolerance, a partial minimum
(R&R Def 5.8) — is ``TerminationCondition.convergenceCriteriaSatisfied`` with
``SolutionStatus.optimal``, so ``pyo.assert_optimal_termination`` passes. What that certifies is
local: no single block can improve the objective (``results.extra_info.block_gaps``); global
optimality is not claimed (the legacy results say ``locallyOptimal``). Any other stop with a
feasible point is ``SolutionStatus.feasible``; a block proven unbounded is
``TerminationCondition.unbounded``; a cross-section proven infeasible with no feasible point found
is ``locallyInfeasible``. As Pyomo's own new-interface solvers do, ``solve`` raises
``NoOptimalSolutionError`` when ``raise_exception_on_nonoptimal_result`` (default True in the new
interface, False in the legacy one) and the solution is not optimal, and (new interface only)
``NoSolutionError`` when ``load_solutions`` is set and there is no feasible point; in both cases the
model's variables are left as they were before the solve, and ``opt.result`` holds the run's
:class:`~multiconvex.Result`. The legacy interface reports a run without a feasible point in its
termination condition and leaves the least-violating point in the model, as classic Pyomo solvers do.
"""

from __future__ import annotations

import datetime
import logging
import sys
import time
from typing import Any

import numpy as np
import pyomo.environ as pyo
from pyomo.common.collections import ComponentMap
from pyomo.common.config import ConfigValue
from pyomo.contrib.solver.common.base import Availability, LegacySolverWrapper, SolverBase
from pyomo.contrib.solver.common.config import SolverConfig
from pyomo.contrib.solver.common.factory import SolverFactory
from pyomo.contrib.solver.common.results import Results, SolutionStatus, TerminationCondition
from pyomo.contrib.solver.common.solution_loader import SolutionLoader
from pyomo.contrib.solver.common.util import NoOptimalSolutionError, NoSolutionError
from pyomo.opt import TerminationCondition as LegacyTC
from threadpoolctl import threadpool_limits

from .. import __version__
from ..drivers import ALGORITHMS, DriverOptions, check_callback, run
from ..errors import InvalidInputError
from ..executor import make_executor
from ..result import LimitWords, Result
from ..validation import check_choice, check_flag, check_int, check_mapping, check_number, check_seed, check_solver_spec
from .form import PyomoForm
from .subsolver import check_subsolver_options

logger = logging.getLogger("multiconvex")

_TERMINATION = {
    "converged": TerminationCondition.convergenceCriteriaSatisfied,
    "stalled": TerminationCondition.minStepLength,
    "iteration_limit": TerminationCondition.iterationLimit,
    "time_limit": TerminationCondition.maxTimeLimit,
    "interrupted": TerminationCondition.interrupted,
    "solver_failure": TerminationCondition.error,
    "infeasible": TerminationCondition.locallyInfeasible,  # a cross-section, not the whole model (see result.py)
    "unbounded": TerminationCondition.unbounded,
}


def _domain(check, name: str, **limits):
    """A ConfigValue domain from one of :mod:`multiconvex.validation`'s checks (its message names the option)."""
    def domain(value):
        return check(value, name, where="SolverFactory('multiconvex')", **limits)
    domain.__name__ = check.__name__
    return domain


def _subsolver_domain(value):
    out = check_solver_spec(value, "subsolver", where="SolverFactory('multiconvex')")
    return "auto" if out is None else out


def _check_executor(value) -> None:
    if value in (None, "inprocess"):
        return
    raise InvalidInputError(
        f"executor={value!r} is not supported for Pyomo models: Pyomo's expression system and solver interfaces "
        "(output capture, persistent solver state) are not thread-safe, and sub-models cannot be shipped to other "
        "processes, so block solves run one after another (executor='inprocess'). For parallel Jacobi blocks, "
        "build the model in cvxpy (multiconvex.solve(..., executor='threads')).")


class MulticonvexConfig(SolverConfig):
    """Options of the multiconvex Pyomo meta-solver (sub-solver by name, driver, limits)."""

    def __init__(self, description=None, doc=None, implicit=False, implicit_domain=None, visibility=0):
        super().__init__(description=description, doc=doc, implicit=implicit, implicit_domain=implicit_domain,
                         visibility=visibility)
        self.subsolver = self.declare("subsolver", ConfigValue(
            default="highs", domain=_subsolver_domain,
            description="Registry name (auto, clarabel, highs, gurobi...: QP blocks compiled to matrices for the "
                        "dispatcher) or Pyomo solver name (any: gurobi_persistent, appsi_highs, scip_direct, "
                        "cyipopt...: Pyomo sub-models), or a fallback list of them, for the block subproblems."))
        self.subsolver_options = self.declare("subsolver_options", ConfigValue(
            default=None, domain=_domain(check_mapping, "subsolver_options", what="sub-solver options by name"),
            description="Options passed through to the sub-solver."))
        self.algorithm = self.declare("algorithm", ConfigValue(
            default="gauss-seidel", domain=_domain(check_choice, "algorithm", choices=ALGORITHMS),
            description="Block driver."))
        self.max_iters = self.declare("max_iters", ConfigValue(
            default=100, domain=_domain(check_int, "max_iters", minimum=1), description="Outer iterations at most."))
        self.tol = self.declare("tol", ConfigValue(default=1e-6, domain=_domain(check_number, "tol", minimum=0),
                                                   description="Relative tolerance on every block gap."))
        self.seed = self.declare("seed", ConfigValue(default=None, domain=_domain(check_seed, "seed"),
                                                    description="Seed for random starts."))
        self.blocks = self.declare("blocks", ConfigValue(
            default=None, description="Blocks of variables (lists of Var components or Blocks); None: each "
                                       "top-level Block of the model."))
        self.init = self.declare("init", ConfigValue(default=None, description="Start values by variable."))
        self.prox = self.declare("prox", ConfigValue(default=0.0, domain=_domain(check_number, "prox", minimum=0),
                                                     description="Proximal weight in every block step."))
        self.extrapolate = self.declare("extrapolate", ConfigValue(
            default=False, domain=_domain(check_flag, "extrapolate"),
            description="After each iteration that moved the point, try x + β(x − x_prev) and keep it only when "
                        "it is feasible and better (multiconvex.extrapolation)."))
        self.reuse_subsolver = self.declare("reuse_subsolver", ConfigValue(
            default=True, domain=_domain(check_flag, "reuse_subsolver"),
            description="Keep one (persistent) sub-solver per block; False builds a fresh one at every solve "
                        "(slow: a baseline)."))
        self.executor = self.declare("executor", ConfigValue(
            default=None,
            description="Where block solves run: only 'inprocess' (None) for Pyomo models, whose expression "
                        "system and solver interfaces are not thread-safe; the cvxpy front end runs Jacobi "
                        "blocks on threads."))
        self.callback = self.declare("callback", ConfigValue(
            default=None,
            description="callback(entry) after every outer iteration with its multiconvex.HistoryEntry, the "
                        "model's variables holding the best point so far; a truthy return stops the run "
                        "(status 'interrupted', TerminationCondition.interrupted). An exception in it "
                        "propagates, with the best point left in the model."))


class _BestPointLoader(SolutionLoader):
    def __init__(self, form, point):
        self._form, self._point = form, point

    def get_number_of_solutions(self) -> int:
        return 1

    def get_vars(self, vars_to_load=None):
        out = ComponentMap()
        for comp, arr in self._point:
            for vd, val in zip(comp.values(), arr):
                out[vd] = float(val)
        if vars_to_load is not None:
            wanted = ComponentMap((v, None) for v in vars_to_load)
            out = ComponentMap((v, val) for v, val in out.items() if v in wanted)
        return out

    def load_import_suffixes(self) -> None:
        pass


class MulticonvexSolver(SolverBase):
    """Iterated convex optimization over a block-structured Pyomo model."""

    CONFIG = MulticonvexConfig()
    #: new interface: ``load_solutions`` without a feasible point raises ``NoSolutionError`` (as Pyomo's own
    #: new-interface solvers); the legacy interface reports it in the status and loads the least-violating point
    _raise_without_solution = True

    def __init__(self, **kwds) -> None:
        # Pyomo's SolverFactory turns an exception raised while constructing a solver into a logged warning
        # and an "unavailable solver"; a bad option is kept here and refused by solve(), before any solve,
        # with the message that names it
        self._config_error: InvalidInputError | None = None
        try:
            super().__init__(**kwds)
        except ValueError as exc:
            super().__init__(**{k: v for k, v in kwds.items() if k == "name"})
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, InvalidInputError):  # our check's message names the option and the fix
                self._config_error = InvalidInputError(str(cause))
            else:
                options = ", ".join(sorted(str(k) for k in self.CONFIG.keys()))
                self._config_error = InvalidInputError(
                    f"SolverFactory('multiconvex', ...): {str(exc).strip()}; the options are: {options}.")

    def available(self) -> Availability:
        return Availability.FullLicense

    def version(self) -> tuple:
        return _version_tuple()

    def is_persistent(self) -> bool:
        return False

    def solve(self, model, **kwds) -> Results:
        """Run the block driver on ``model`` (options: :class:`MulticonvexConfig`, by keyword here or in
        ``self.config``); see the module docstring for statuses, exceptions and what is loaded."""
        if self._config_error is not None:
            raise self._config_error
        config = self.config(value=kwds, preserve_implicit=True)
        given = dict(config.solver_options.value()) if config.solver_options is not None else {}
        if given:  # legacy solve(m, options={...}) or opt.options[...]: the driver's options by name
            unknown = sorted(str(k) for k in given if k not in config or k == "solver_options")
            if unknown:
                names = ", ".join(sorted(str(k) for k in config.keys() if k != "solver_options"))
                raise InvalidInputError(
                    f"SolverFactory('multiconvex').solve: solver option(s) {', '.join(unknown)} not known; "
                    f"multiconvex's options are: {names}. A backend's options go in subsolver_options={{...}}.")
            rest = {k: v for k, v in kwds.items() if k != "solver_options"}
            try:  # a keyword wins over options
                config = self.config(value={**given, **rest}, preserve_implicit=True)
            except ValueError as exc:  # Pyomo's wrapping of our check: its message names the option and the fix
                cause = exc.__cause__ or exc.__context__
                raise (InvalidInputError(str(cause)) if isinstance(cause, InvalidInputError) else exc) from exc
        start = datetime.datetime.now(datetime.UTC)
        original = {id(vd): vd.value for vd in model.component_data_objects(pyo.Var)}
        all_vars = list(model.component_data_objects(pyo.Var))

        def restore():
            for vd in all_vars:
                vd.set_value(original[id(vd)], skip_validation=True)

        _check_executor(config.executor)
        check_callback(config.callback)
        t_build = time.perf_counter()
        try:  # bad input is refused before any solve, with the user's model left as it was
            specs = [config.subsolver] if isinstance(config.subsolver, str) else list(config.subsolver)
            check_subsolver_options(config.subsolver_options, specs, where="SolverFactory('multiconvex')")
            form = PyomoForm(model, config.blocks, subsolver=config.subsolver,
                             subsolver_options=config.subsolver_options, prox=config.prox > 0,
                             reuse_subsolver=config.reuse_subsolver)
            x0 = form.initial_point(config.seed, config.init)
            form.load(x0)
            form.attach()
        except BaseException:
            restore()
            raise
        # the limit covers the whole call, as mc.solve's: building the blocks counts
        built = time.perf_counter() - t_build
        left, words = LimitWords().after_building(config.time_limit, built)
        handler = None
        if config.tee:
            handler = logging.StreamHandler(sys.stdout)
            handler.setFormatter(logging.Formatter("%(message)s"))
            logger.addHandler(handler)
            old_level = logger.level
            logger.setLevel(logging.INFO)
        ex = make_executor(config.executor)
        try:  # the driver loads the best point on any exit: an error midway leaves it in the model
            # Pyomo's `threads`: the BLAS/OpenMP threads of the whole run (block solves and the numpy around them)
            with threadpool_limits(limits=config.threads or None):  # 0: as many as there are (Gurobi's 0)
                res = run(form, x0, DriverOptions(algorithm=config.algorithm, max_iters=config.max_iters,
                                                  tol=config.tol, time_limit=left, prox=config.prox,
                                                  extrapolate=config.extrapolate, executor=ex,
                                                  verbose=bool(config.tee), progress=False,
                                                  callback=config.callback, words=words))
        finally:
            ex.close()
            if handler is not None:
                logger.removeHandler(handler)
                logger.setLevel(old_level)
        res.build_time = built
        res.total_time += built
        res.info["forms"] = dict(form.forms)  # per block: "matrix" (BlockSubproblem, dispatcher) or "pyomo"
        self.result = res
        best = [(c, np.array([vd.value for vd in c.values()], dtype=float)) for c in form.components]
        solution_status = _solution_status(res)
        if config.raise_exception_on_nonoptimal_result and solution_status != SolutionStatus.optimal:
            restore()
            raise NoOptimalSolutionError(
                f"multiconvex ended with status {res.status!r} ({res.message}), not a converged partial minimum. "
                "Set raise_exception_on_nonoptimal_result=False (opt.config or solve()) to get the results; "
                "opt.result holds this run's multiconvex.Result.")
        if config.load_solutions and solution_status == SolutionStatus.noSolution and self._raise_without_solution:
            restore()
            raise NoSolutionError(
                f"multiconvex found no feasible point (status {res.status!r}: {res.message}). Set "
                "load_solutions=False to get the results; opt.result holds this run's multiconvex.Result.")
        if not config.load_solutions:
            restore()
        results = Results()
        results.solver_name = "multiconvex"
        results.solver_version = self.version()
        results.termination_condition = _TERMINATION[res.status]
        results.solution_status = solution_status
        results.incumbent_objective = res.objective if np.isfinite(res.objective) else None
        results.objective_bound = None
        results.timing_info.start_timestamp = start
        results.timing_info.wall_time = res.total_time  # the build included (as the time limit counts it)
        results.timing_info.solver_time = res.solver_time
        results.timing_info.build_time = res.build_time
        results.extra_info.status = res.status
        results.extra_info.message = res.message
        results.extra_info.iterations = res.iterations
        results.extra_info.forms = dict(form.forms)
        results.extra_info.block_gaps = dict(res.certificate.block_gaps)
        results.extra_info.is_partial_minimum = res.certificate.is_partial_minimum
        results.extra_info.certificate = res.certificate
        results.extra_info.result = res
        results.solution_loader = _BestPointLoader(form, best)
        results.solver_config = config
        return results


def _solution_status(res: Result) -> SolutionStatus:
    """``optimal`` for a converged run (a certified partial minimum: the local-NLP convention, see the module
    docstring), ``feasible`` for any other feasible point, ``noSolution`` without one."""
    if not np.isfinite(res.objective):
        return SolutionStatus.noSolution
    if res.status == "converged" and res.certificate.is_partial_minimum:
        return SolutionStatus.optimal
    return SolutionStatus.feasible


def _version_tuple() -> tuple[int, ...]:
    """The installed version as integers (Pyomo's ``version()``); non-numeric parts (``0+unknown``) end it."""
    out: list[int] = []
    for part in __version__.replace("+", ".").split(".")[:3]:
        if not part.isdigit():
            break
        out.append(int(part))
    return tuple(out)


class LegacyMulticonvexSolver(LegacySolverWrapper, MulticonvexSolver):
    """``pyo.SolverFactory("multiconvex")``: legacy results with the certificate in ``results.solver``."""

    _raise_without_solution = False  # classic Pyomo: no exception, the termination condition says it

    def _map_results(self, model, results):
        legacy, soln = super()._map_results(model, results)
        extra = results.extra_info
        if extra.status == "converged":
            legacy.solver.termination_condition = LegacyTC.locallyOptimal
        legacy.solver.termination_message = (
            f"{extra.status}: {extra.message}; partial minimum: {extra.is_partial_minimum}; "
            "global optimality not certified")
        legacy.solver.iterations = extra.iterations
        legacy.solver.block_gaps = dict(extra.block_gaps)
        legacy.solver.is_partial_minimum = extra.is_partial_minimum
        legacy.solver.wallclock_time = results.timing_info.wall_time
        legacy.solver.solver_time = results.timing_info.solver_time
        legacy.solver.multiconvex_status = extra.status
        return legacy, soln


_registered = False


def register() -> None:
    """Register "multiconvex" with Pyomo's new and legacy solver factories (idempotent)."""
    global _registered
    if _registered or "multiconvex" in SolverFactory._cls:
        return
    SolverFactory.register("multiconvex", legacy_name="multiconvex",
                           doc="multiconvex: iterated convex optimization over blocks, with certificates")(
        MulticonvexSolver, LegacyMulticonvexSolver)
    _registered = True


__all__ = ["MulticonvexSolver", "LegacyMulticonvexSolver", "MulticonvexConfig", "register", "Any"]
