"""``SolverFactory("multiconvex")``: the Pyomo meta-solver (like MindtPy and GDPopt).

Registered with both of Pyomo's factories on ``import multiconvex``::

    opt = pyo.SolverFactory("multiconvex", subsolver="highs", algorithm="jacobi", max_iters=100)
    results = opt.solve(m, tee=True)          # legacy results
    results.solver.termination_condition

The legacy wrapper's ``solve()`` has a fixed signature (tee, timelimit, options...),
so the driver's options go through the constructor, or ``opt.config`` between
solves (``opt.config.max_iters = 50``). The new-style interface
(``pyomo.contrib.solver.common.factory.SolverFactory("multiconvex")``) takes them
in ``solve(model, **options)`` too.
"""

from __future__ import annotations

import datetime
import logging
import sys
from typing import Any

import numpy as np
import pyomo.environ as pyo
from pyomo.common.collections import ComponentMap
from pyomo.common.config import ConfigValue, In, NonNegativeFloat, PositiveInt
from pyomo.contrib.solver.common.base import Availability, LegacySolverWrapper, SolverBase
from pyomo.contrib.solver.common.config import SolverConfig
from pyomo.contrib.solver.common.factory import SolverFactory
from pyomo.contrib.solver.common.results import Results, SolutionStatus, TerminationCondition
from pyomo.contrib.solver.common.solution_loader import SolutionLoader
from pyomo.opt import TerminationCondition as LegacyTC

from ..drivers import ALGORITHMS, DriverOptions, run
from ..executor import make_executor

logger = logging.getLogger("multiconvex")

_TERMINATION = {
    "converged": TerminationCondition.convergenceCriteriaSatisfied,
    "stalled": TerminationCondition.minStepLength,
    "iteration_limit": TerminationCondition.iterationLimit,
    "time_limit": TerminationCondition.maxTimeLimit,
    "interrupted": TerminationCondition.interrupted,
    "solver_failure": TerminationCondition.error,
}


def _subsolver_domain(value):
    if isinstance(value, str):
        return value
    value = list(value)
    if not value or not all(isinstance(v, str) for v in value):
        raise ValueError("subsolver must be a solver name or a list of names (a fallback list)")
    return value


def _check_executor(value) -> None:
    if value in (None, "inprocess"):
        return
    from ..errors import InvalidInputError

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
            default=None, domain=dict, description="Options passed through to the sub-solver."))
        self.algorithm = self.declare("algorithm", ConfigValue(
            default="gauss-seidel", domain=In(ALGORITHMS), description="Block driver."))
        self.max_iters = self.declare("max_iters", ConfigValue(default=100, domain=PositiveInt,
                                                               description="Outer iterations at most."))
        self.tol = self.declare("tol", ConfigValue(default=1e-6, domain=NonNegativeFloat,
                                                   description="Relative tolerance on every block gap."))
        self.seed = self.declare("seed", ConfigValue(default=None, description="Seed for random starts."))
        self.blocks = self.declare("blocks", ConfigValue(
            default=None, description="Blocks of variables (lists of Var components or Blocks); None: each "
                                       "top-level Block of the model."))
        self.init = self.declare("init", ConfigValue(default=None, description="Start values by variable."))
        self.prox = self.declare("prox", ConfigValue(default=0.0, domain=NonNegativeFloat,
                                                     description="Proximal weight in every block step."))
        self.reuse_subsolver = self.declare("reuse_subsolver", ConfigValue(
            default=True, domain=bool, description="Keep one (persistent) sub-solver per block; False builds a "
                                                   "fresh one at every solve (slow: a baseline)."))
        self.executor = self.declare("executor", ConfigValue(
            default=None,
            description="Where block solves run: only 'inprocess' (None) for Pyomo models, whose expression "
                        "system and solver interfaces are not thread-safe; the cvxpy front end runs Jacobi "
                        "blocks on threads."))


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

    def available(self) -> Availability:
        return Availability.FullLicense

    def version(self) -> tuple:
        from .. import __version__

        return tuple(int(p) for p in __version__.split(".")[:3])

    def is_persistent(self) -> bool:
        return False

    def solve(self, model, **kwds) -> Results:
        from .form import PyomoForm

        config = self.config(value=kwds, preserve_implicit=True)
        start = datetime.datetime.now(datetime.UTC)
        original = {id(vd): vd.value for vd in model.component_data_objects(pyo.Var)}
        all_vars = list(model.component_data_objects(pyo.Var))

        def restore():
            for vd in all_vars:
                vd.set_value(original[id(vd)], skip_validation=True)

        _check_executor(config.executor)
        try:  # bad input is refused before any solve, with the user's model left as it was
            form = PyomoForm(model, config.blocks, subsolver=config.subsolver,
                             subsolver_options=config.subsolver_options, prox=config.prox > 0,
                             reuse_subsolver=config.reuse_subsolver)
            x0 = form.initial_point(config.seed, config.init)
            form.load(x0)
            form.attach()
        except BaseException:
            restore()
            raise
        handler = None
        if config.tee:
            handler = logging.StreamHandler(sys.stdout)
            handler.setFormatter(logging.Formatter("%(message)s"))
            logger.addHandler(handler)
            old_level = logger.level
            logger.setLevel(logging.INFO)
        ex = make_executor(config.executor)
        try:  # the driver loads the best point on any exit: an error midway leaves it in the model
            res = run(form, x0, DriverOptions(algorithm=config.algorithm, max_iters=config.max_iters,
                                              tol=config.tol, time_limit=config.time_limit, prox=config.prox,
                                              executor=ex, verbose=bool(config.tee), progress=False))
        finally:
            ex.close()
            if handler is not None:
                logger.removeHandler(handler)
                logger.setLevel(old_level)
        res.info["forms"] = dict(form.forms)  # per block: "matrix" (BlockSubproblem, dispatcher) or "pyomo"
        best = [(c, np.array([vd.value for vd in c.values()], dtype=float)) for c in form.components]
        if not config.load_solutions:
            restore()
        results = Results()
        results.solver_name = "multiconvex"
        results.solver_version = self.version()
        results.termination_condition = _TERMINATION[res.status]
        results.solution_status = SolutionStatus.feasible if np.isfinite(res.objective) \
            else SolutionStatus.noSolution
        results.incumbent_objective = res.objective if np.isfinite(res.objective) else None
        results.objective_bound = None
        results.timing_info.start_timestamp = start
        results.timing_info.wall_time = res.total_time + form.build_time
        results.timing_info.solver_time = res.solver_time
        results.timing_info.build_time = form.build_time
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
        self.result = res
        return results


class LegacyMulticonvexSolver(LegacySolverWrapper, MulticonvexSolver):
    """``pyo.SolverFactory("multiconvex")``: legacy results with the certificate in ``results.solver``."""

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
