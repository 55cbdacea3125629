"""Declarations of the cvxpy-reachable backends, one small class each.

Each class is data plus, for the commercial solvers, licence detection and
error translation. Defaults for first-order solvers (OSQP, SCS) are tight on
purpose: at their own defaults they stop far from the optimum of the block
subproblems of a matrix factorization.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from pathlib import Path
from typing import Any

from multiconvex.errors import LicenceError

from .base import Backend, LicenceStatus

logger = logging.getLogger(__name__)

_ALL_CONIC = frozenset({"EQP", "LP", "QP", "SOCP", "EXP", "SDP"})


class ClarabelBackend(Backend):
    """Clarabel: interior point, LP/QP/SOCP/EXP/SDP, no licence."""

    name = "clarabel"
    cvxpy_name = "CLARABEL"
    pyomo_name = None
    modules = ("clarabel",)
    distribution = "clarabel"
    classes = _ALL_CONIC


class OsqpBackend(Backend):
    """OSQP: ADMM for QP; tight tolerances and polishing by default."""

    name = "osqp"
    cvxpy_name = "OSQP"
    pyomo_name = None
    modules = ("osqp",)
    distribution = "osqp"
    classes = frozenset({"EQP", "LP", "QP"})
    defaults = {"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iter": 200_000, "polishing": True}

    def options(self, user_options: dict[str, Any] | None = None) -> dict[str, Any]:
        merged = super().options(user_options)
        version = self.version() or "1"
        if version.split(".")[0] == "0" and "polishing" in merged:  # OSQP < 1 calls it polish
            merged["polish"] = merged.pop("polishing")
        return merged


class ScsBackend(Backend):
    """SCS: first-order conic solver; tight tolerances by default."""

    name = "scs"
    cvxpy_name = "SCS"
    pyomo_name = None
    modules = ("scs",)
    distribution = "scs"
    classes = _ALL_CONIC
    defaults = {"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iters": 200_000}


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


class HighsBackend(Backend):
    """HiGHS: LP (simplex/IPM) and convex QP (active set, small/medium only).

    Through cvxpy's QP interface HiGHS takes convex QPs, but its active-set
    QP solver declares "Solve error" on large equality-constrained QPs (e.g. a
    21000-column ridge QP ended with primal infeasibility 6e-5). It is
    preferred for LP only.
    """

    name = "highs"
    cvxpy_name = "HIGHS"
    pyomo_name = "highs"
    modules = ("highspy",)
    distribution = "highspy"
    classes = frozenset({"EQP", "LP", "QP"})

    def options(self, user_options: dict[str, Any] | None = None) -> dict[str, Any]:
        silence_highs_banner()
        return super().options(user_options)


@functools.lru_cache(maxsize=1)
def silence_highs_banner() -> None:
    """Create the process's first ``highspy.Highs()`` with file descriptor 1 sent to /dev/null.

    HiGHS prints a copyright banner on stdout when the first solver object of a process is made, from
    C++ and before any option (``output_flag``) can apply; it would break ``--quiet`` and any stdout a
    user parses. Later objects print nothing. Does nothing when highspy is missing.
    """
    try:
        import highspy  # lazy and optional: only when the banner must be silenced
    except ImportError:
        return

    sys.stdout.flush()
    saved, null = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(null)
        os.close(saved)


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
        "solver=['gurobi', 'clarabel'] to fall back"
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
        for err in _chain(exc):
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


def _mosek_licence_paths() -> list[Path]:
    paths = [p for p in os.environ.get("MOSEKLM_LICENSE_FILE", "").split(os.pathsep) if p]
    return [Path(p).expanduser() for p in paths] + [Path.home() / "mosek" / "mosek.lic"]


@functools.lru_cache(maxsize=1)
def _mosek_licence() -> LicenceStatus:
    import mosek  # lazy: optional commercial solver, imported only to check its licence

    searched = ", ".join(str(p) for p in _mosek_licence_paths())
    try:
        with mosek.Env() as env:  # checking out a licence costs a few ms, no solve
            env.checkoutlicense(mosek.feature.pts)
    except mosek.Error as exc:
        if "license" in str(exc).lower() or "licence" in str(exc).lower():
            return LicenceStatus("missing", f"MOSEK licence checkout failed ({exc}); searched {searched}")
        return LicenceStatus("unknown", f"licence check failed: {exc}")
    return LicenceStatus("ok", "licence checked out")


class MosekBackend(Backend):
    """MOSEK: interior point for LP/QP/SOCP/EXP/SDP; needs a licence file."""

    name = "mosek"
    cvxpy_name = "MOSEK"
    pyomo_name = "mosek_persistent"
    modules = ("mosek",)
    distribution = "mosek"
    classes = _ALL_CONIC

    def licence(self) -> LicenceStatus:
        if not self.installed():
            return LicenceStatus("unknown", "mosek not installed")
        try:
            return _mosek_licence()
        except Exception as exc:
            logger.debug("mosek licence check failed", exc_info=True)
            found = any(p.is_file() for p in _mosek_licence_paths())
            return LicenceStatus("unknown" if found else "missing", f"licence check failed: {exc}")

    def licence_error(self, limit: str | None = None) -> LicenceError:
        return LicenceError(
            "MOSEK needs a licence file and none was found "
            f"({self.licence().detail}); put one at ~/mosek/mosek.lic or point "
            "MOSEKLM_LICENSE_FILE at it, or pass solver=['mosek', 'clarabel'] to fall back",
            solver=self.name,
            limit=limit,
        )

    def translate(self, exc: BaseException, **context: Any) -> Exception:
        for err in _chain(exc):
            text = str(err).lower()
            if type(err).__module__.startswith("mosek") and "license" in text:
                return self.licence_error()
        return super().translate(exc, **context)


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


def _chain(exc: BaseException | None) -> list[BaseException]:
    """The exception and its ``__cause__``/``__context__`` ancestors."""
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


__all__ = [
    "ClarabelBackend",
    "OsqpBackend",
    "ScsBackend",
    "EcosBackend",
    "HighsBackend",
    "GurobiBackend",
    "MosekBackend",
    "ScipBackend",
    "IpoptBackend",
]
