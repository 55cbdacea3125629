"""Backend adapters: one registry name per solver, the same in every front end.

Examples
--------
>>> import cvxpy as cp
>>> from multiconvex import solvers
>>> x = cp.Variable(3)
>>> prob = cp.Problem(cp.Minimize(cp.sum_squares(x - 2)), [cp.sum(x) == 3])
>>> cls = solvers.problem_class(prob)
>>> report = solvers.solve_cvxpy(prob, solvers.resolve("auto", cls))
>>> cls, report.backend, round(report.value, 9)
('EQP', 'lstsq', 3.0)
"""

from .base import PROBLEM_CLASSES, Backend, LicenceStatus, SolverInfo
from .cvxpy_adapter import SolveReport, compiled_size, solve_cvxpy
from .dispatch import Plan, SubSolution, make_plan
from .dispatch import solve as solve_subproblem
from .lstsq import LstsqSolver, solve_eqp
from .registry import (
    AUTO_ORDER,
    available_solvers,
    get_backend,
    known_names,
    problem_class,
    require_usable,
    resolve,
)
from .status import STATUSES, from_cvxpy, has_solution

__all__ = [
    "AUTO_ORDER",
    "PROBLEM_CLASSES",
    "STATUSES",
    "Backend",
    "LicenceStatus",
    "LstsqSolver",
    "Plan",
    "SolveReport",
    "SolverInfo",
    "SubSolution",
    "available_solvers",
    "compiled_size",
    "from_cvxpy",
    "get_backend",
    "has_solution",
    "known_names",
    "make_plan",
    "problem_class",
    "require_usable",
    "resolve",
    "solve_cvxpy",
    "solve_eqp",
    "solve_subproblem",
]
