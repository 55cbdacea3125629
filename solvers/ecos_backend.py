"""ECOS through cvxpy: interior point for LP/SOCP/EXP (no SDP)."""

from __future__ import annotations

from .base import Backend

__all__ = ["EcosBackend"]


class EcosBackend(Backend):
    """ECOS: interior point for LP/SOCP/EXP (no SDP).

    Not for large quadratics: on a 21000-column ridge QP (one 20000-dim cone)
    it ended "infeasible_inaccurate" where Clarabel solved it.
    """

    name = "ecos"
    cvxpy_name = "ECOS"
    pyomo_name = None
    modules = ("ecos",)
    distribution = "ecos"
    classes = frozenset({"EQP", "LP", "QP", "SOCP", "EXP"})
