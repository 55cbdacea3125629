"""SCIP through cvxpy and Pyomo: LP/QP/SOCP (a global solver; never chosen by "auto")."""

from __future__ import annotations

from .base import Backend

__all__ = ["ScipBackend"]


class ScipBackend(Backend):
    """SCIP: LP/QP/SOCP via cvxpy's conic interface.

    A global (MINLP) solver: correct on small convex problems but did not
    finish a 21000-column ridge QP in minutes; never chosen by "auto".
    """

    name = "scip"
    cvxpy_name = "SCIP"
    pyomo_name = "scip_direct"
    modules = ("pyscipopt",)
    distribution = "PySCIPOpt"
    classes = frozenset({"EQP", "LP", "QP", "SOCP"})
