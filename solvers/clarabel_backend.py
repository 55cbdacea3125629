"""Clarabel through cvxpy: interior point for LP/QP/SOCP/EXP/SDP, no licence."""

from __future__ import annotations

from .base import Backend

__all__ = ["ClarabelBackend"]


class ClarabelBackend(Backend):
    """Clarabel: interior point, LP/QP/SOCP/EXP/SDP, no licence."""

    name = "clarabel"
    cvxpy_name = "CLARABEL"
    pyomo_name = None
    modules = ("clarabel",)
    distribution = "clarabel"
    classes = frozenset({"EQP", "LP", "QP", "SOCP", "EXP", "SDP"})
    time_limit_option = "time_limit"
