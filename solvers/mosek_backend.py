"""MOSEK through cvxpy and Pyomo: licence-file detection and translation of its licence errors."""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path
from typing import Any

from multiconvex.errors import LicenceError

from .base import Backend, LicenceStatus
from .exception_chain import exception_chain

logger = logging.getLogger(__name__)

__all__ = ["MosekBackend"]


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
    classes = frozenset({"EQP", "LP", "QP", "SOCP", "EXP", "SDP"})

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
            "MOSEKLM_LICENSE_FILE at it, or pass solver=['mosek', 'clarabel'] (Pyomo: subsolver=[...]) to fall back",
            solver=self.name,
            limit=limit,
        )

    def translate(self, exc: BaseException, **context: Any) -> Exception:
        for err in exception_chain(exc):
            text = str(err).lower()
            if type(err).__module__.startswith("mosek") and "license" in text:
                return self.licence_error()
        return super().translate(exc, **context)
