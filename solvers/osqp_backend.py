"""OSQP through cvxpy: ADMM for QP, with tight tolerances by default.

At its own defaults OSQP stops far from the optimum of the block subproblems of a matrix factorization.
"""

from __future__ import annotations

from typing import Any

from .base import Backend

__all__ = ["OsqpBackend"]


class OsqpBackend(Backend):
    """OSQP: ADMM for QP; tight tolerances and polishing by default."""

    name = "osqp"
    cvxpy_name = "OSQP"
    pyomo_name = None
    modules = ("osqp",)
    distribution = "osqp"
    classes = frozenset({"EQP", "LP", "QP"})
    time_limit_option = "time_limit"
    defaults = {"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iter": 200_000, "polishing": True}

    def options(self, user_options: dict[str, Any] | None = None) -> dict[str, Any]:
        merged = super().options(user_options)
        version = self.version() or "1"
        if version.split(".")[0] == "0" and "polishing" in merged:  # OSQP < 1 calls it polish
            merged["polish"] = merged.pop("polishing")
        return merged
