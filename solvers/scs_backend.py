"""SCS through cvxpy: a first-order conic solver, with tight tolerances by default.

At its own defaults SCS stops far from the optimum of the block subproblems of a matrix factorization.
"""

from __future__ import annotations

from typing import Any

from cvxpy.reductions.solvers.conic_solvers.scs_conif import SCS as CvxpyScs

from .base import Backend

__all__ = ["INTERRUPTIBLE_SCS", "InterruptibleScs", "ScsBackend"]

#: SCS's ``status_val`` when its own SIGINT handler stopped it.
SCS_INTERRUPTED = -5


class InterruptibleScs(CvxpyScs):
    """cvxpy's SCS interface, except that a run stopped by Ctrl-C raises ``KeyboardInterrupt``.

    SCS catches SIGINT itself while it runs and returns status ``"interrupted"``; cvxpy reads that as a failed solve
    (``SolverError``), and a driver took it for a failed block solve and went on with the next one, so Ctrl-C never
    ended a run on SCS. A custom solver for cvxpy, hence its own name."""

    def name(self) -> str:
        return "SCS_MULTICONVEX"

    def solve_via_data(self, data: dict, warm_start: bool, verbose: bool, solver_opts: dict,
                       solver_cache: dict | None = None) -> Any:
        results = super().solve_via_data(data, warm_start, verbose, solver_opts, solver_cache)
        if results.get("info", {}).get("status_val") == SCS_INTERRUPTED:
            raise KeyboardInterrupt("SCS was interrupted (Ctrl-C)")
        return results


#: One instance for every solve: cvxpy keys its compile cache (and with it SCS's warm starts) on the solver object, so
#: a new instance per solve recompiled every kept problem and never warm-started (a review: 150–175 SCS iterations
#: a re-solve instead of 125, compiles 0.013 s instead of 0.002 s). It holds no state of its own.
INTERRUPTIBLE_SCS = InterruptibleScs()


class ScsBackend(Backend):
    """SCS: first-order conic solver; tight tolerances by default."""

    name = "scs"
    cvxpy_name = "SCS"
    pyomo_name = None
    modules = ("scs",)
    distribution = "scs"
    classes = frozenset({"EQP", "LP", "QP", "SOCP", "EXP", "SDP"})
    time_limit_option = "time_limit_secs"
    defaults = {"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iters": 200_000}

    def cvxpy_target(self) -> Any:
        """:data:`INTERRUPTIBLE_SCS` (cvxpy takes a solver instance as ``solver=``)."""
        return INTERRUPTIBLE_SCS
