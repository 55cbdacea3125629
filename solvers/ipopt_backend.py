"""IPOPT through cyipopt: reached from Pyomo only (cvxpy has no conic/QP interface to it)."""

from __future__ import annotations

from .base import Backend

__all__ = ["IpoptBackend"]


class IpoptBackend(Backend):
    """IPOPT through cyipopt: cvxpy reaches it only via its NLP path (``nlp=True``).

    cvxpy has no IPOPT conic/QP interface, so ``cvxpy_name`` is None; Pyomo
    reaches it as ``cyipopt``.
    """

    name = "ipopt"
    cvxpy_name = None
    pyomo_name = "cyipopt"
    modules = ("cyipopt",)
    distribution = "cyipopt"
    classes = frozenset({"EQP", "LP", "QP", "SOCP"})
