"""Gurobi through cvxpy and Pyomo: licence detection (the pip licence is size-limited), size checks,
and translation of its licence errors.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from multiconvex.errors import LicenceError

from .base import Backend, LicenceStatus
from .exception_chain import exception_chain

logger = logging.getLogger(__name__)

__all__ = ["GurobiBackend"]


@functools.lru_cache(maxsize=1)
def _gurobi_licence() -> LicenceStatus:
    import gurobipy as gp  # lazy: optional commercial solver, imported only to check its licence

    try:
        env = gp.Env(empty=True)
        env.setParam("OutputFlag", 0)
        env.start()
    except gp.GurobiError as exc:
        return LicenceStatus("missing", f"no usable Gurobi licence: {exc}")
    model = gp.Model(env=env)
    try:
        model.addMVar(GurobiBackend.max_variables + 1)
        try:
            model.optimize()
        except gp.GurobiError as exc:
            if exc.errno == GurobiBackend.SIZE_LIMIT_ERRNO:
                return LicenceStatus("size-limited", GurobiBackend.limit_text)
            return LicenceStatus("unknown", f"licence probe failed: {exc}")
        return LicenceStatus("ok", "full licence")
    finally:
        model.dispose()
        env.dispose()


class GurobiBackend(Backend):
    """Gurobi: LP/QP/SOCP; the pip licence is size-limited."""

    name = "gurobi"
    cvxpy_name = "GUROBI"
    pyomo_name = "gurobi_persistent"
    modules = ("gurobipy",)
    distribution = "gurobipy"
    classes = frozenset({"EQP", "LP", "QP", "SOCP"})
    time_limit_option = "TimeLimit"
    max_variables = 2000
    max_constraints = 2000
    max_quadratic_variables = 200
    SIZE_LIMIT_ERRNO = 10010
    limit_text = (
        "size-limited licence: 2000 variables, 2000 linear constraints, "
        "200 variables when any quadratic term is present"
    )
    _fix = (
        "install a full Gurobi licence (GRB_LICENSE_FILE) or pass "
        "solver=['gurobi', 'clarabel'] (Pyomo: subsolver=[...]) to fall back"
    )

    def licence(self) -> LicenceStatus:
        if not self.installed():
            return LicenceStatus("unknown", "gurobipy not installed")
        try:
            return _gurobi_licence()
        except Exception as exc:  # a broken install must not break listings
            logger.debug("gurobi licence probe failed", exc_info=True)
            return LicenceStatus("unknown", f"licence probe failed: {exc}")

    def licence_error(self, limit: str | None = None) -> LicenceError:
        if limit is None:
            return LicenceError(
                f"Gurobi has no usable licence ({self.licence().detail}); {self._fix}",
                solver=self.name,
            )
        return LicenceError(
            f"Gurobi's licence is too small for this problem ({limit}; {self.limit_text}); "
            f"{self._fix}",
            solver=self.name,
            limit=limit,
        )

    def check_size(
        self, n_variables: int, n_constraints: int, n_quadratic_variables: int = 0
    ) -> None:
        lic = self.licence()
        if lic.state == "missing":
            raise self.licence_error()
        if lic.state != "size-limited":
            return
        if n_variables > self.max_variables:
            raise self.licence_error(f"{n_variables} variables > {self.max_variables}")
        if n_constraints > self.max_constraints:
            raise self.licence_error(f"{n_constraints} constraints > {self.max_constraints}")
        if n_quadratic_variables and n_variables > self.max_quadratic_variables:
            raise self.licence_error(
                f"{n_variables} variables with quadratic terms > {self.max_quadratic_variables}"
            )

    def translate(self, exc: BaseException, **context: Any) -> Exception:
        for err in exception_chain(exc):
            if getattr(err, "errno", None) == self.SIZE_LIMIT_ERRNO:
                return self.licence_error(f"Gurobi error {self.SIZE_LIMIT_ERRNO}: {err}")
        # cvxpy swallows the GurobiError; the model it built is in the solver cache.
        problem = context.get("problem")
        model = getattr(problem, "_solver_cache", {}).get(self.cvxpy_name)
        if model is not None and self.licence().state == "size-limited":
            try:
                n_var, n_con = model.NumVars, model.NumConstrs + model.NumQConstrs
                quad = model.IsQP or model.IsQCP
                self.check_size(n_var, n_con, n_var if quad else 0)
            except LicenceError as lic_exc:
                return lic_exc
            except Exception:  # attribute access on a half-built model
                logger.debug("could not inspect cached Gurobi model", exc_info=True)
        return super().translate(exc, **context)
