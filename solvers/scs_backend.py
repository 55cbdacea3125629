"""SCS through cvxpy: a first-order conic solver, with tight tolerances by default.

At its own defaults SCS stops far from the optimum of the block subproblems of a matrix factorization.
"""

from __future__ import annotations

from .base import Backend

__all__ = ["ScsBackend"]


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
