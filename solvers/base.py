"""The backend protocol: one small class per solver behind the same methods.

A backend declares what it is (registry name, cvxpy and Pyomo names, import
modules, PyPI distribution, problem classes it solves) and answers cheap
questions (installed? version? licence?) without importing the solver when it
can avoid it. Solving goes through :mod:`multiconvex.solvers.cvxpy_adapter`.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

from multiconvex.errors import LicenceError, SolverFailure

from . import status as st

logger = logging.getLogger(__name__)

#: Problem classes a backend may declare.
PROBLEM_CLASSES: tuple[str, ...] = ("EQP", "LP", "QP", "SOCP", "EXP", "SDP")

LICENCE_STATES = frozenset({"not-required", "ok", "size-limited", "missing", "unknown"})


@dataclass(frozen=True)
class LicenceStatus:
    """Licence state of a backend.

    Attributes
    ----------
    state : str
        One of ``"not-required"``, ``"ok"``, ``"size-limited"``, ``"missing"``,
        ``"unknown"``.
    detail : str
        Human-readable explanation (limits, where the licence was looked for).
    """

    state: str
    detail: str = ""


@dataclass(frozen=True)
class SolverInfo:
    """One row of :func:`multiconvex.solvers.available_solvers`."""

    name: str
    installed: bool
    licence: str
    available: bool
    version: str | None
    classes: frozenset[str]
    detail: str = ""
    scope: str = ""


class Backend:
    """Base class of every backend; subclasses mostly set class attributes.

    Attributes
    ----------
    name : str
        Registry name (lower case), the same in every front end.
    cvxpy_name : str or None
        Name cvxpy knows the solver by, or None if cvxpy cannot use it.
    pyomo_name : str or None
        Pyomo ``SolverFactory`` name, or None.
    modules : tuple of str
        Import names that must be importable.
    distribution : str
        PyPI distribution (for versions and the install hint).
    classes : frozenset of str
        Problem classes (see :data:`PROBLEM_CLASSES`) it solves.
    scope : str
        What it solves when that is not whole problems of some classes (a backend for block subproblems only,
        which declares no classes); shown by the listings.
    defaults : dict
        Default solver options, overridden by user options.
    time_limit_option : str or None
        Name of the backend's own time limit in seconds (``"time_limit"``, Gurobi's ``"TimeLimit"``).
    """

    name: ClassVar[str] = ""
    cvxpy_name: ClassVar[str | None] = None
    pyomo_name: ClassVar[str | None] = None
    modules: ClassVar[tuple[str, ...]] = ()
    distribution: ClassVar[str] = ""
    classes: ClassVar[frozenset[str]] = frozenset()
    scope: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    #: The backend's own time-limit option (seconds) as cvxpy passes it through, or None without one.
    time_limit_option: ClassVar[str | None] = None
    #: Native status string -> normalised status (used by native adapters).
    status_map: ClassVar[dict[Any, str]] = {}

    def __repr__(self) -> str:
        return f"<backend {self.name}>"

    # -- cheap questions -------------------------------------------------
    def installed(self) -> bool:
        """Whether every required module can be found (no import of the solver)."""
        try:
            return all(importlib.util.find_spec(m) is not None for m in self.modules)
        except (ImportError, ValueError):
            return False

    def version(self) -> str | None:
        """Installed version of the distribution, or None."""
        if not self.installed():
            return None
        try:
            return importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return None

    def licence(self) -> LicenceStatus:
        """Licence state; open-source backends need none."""
        return LicenceStatus("not-required", "open-source")

    def available(self) -> bool:
        """Installed and not known to lack a licence."""
        return self.installed() and self.licence().state != "missing"

    def install_hint(self) -> str:
        """The command that installs this backend."""
        return f"pip install {self.distribution}"

    def can_solve(self, problem_class: str) -> bool:
        """Whether the backend declares ``problem_class``."""
        return problem_class in self.classes

    def info(self) -> SolverInfo:
        """Summary row for listings."""
        installed = self.installed()
        lic = self.licence() if installed else LicenceStatus("unknown", "not installed")
        return SolverInfo(
            name=self.name,
            installed=installed,
            licence=lic.state,
            available=installed and lic.state != "missing",
            version=self.version(),
            classes=self.classes,
            detail=lic.detail,
            scope=self.scope,
        )

    # -- solving -----------------------------------------------------------
    def cvxpy_target(self) -> Any:
        """What to pass as ``solver=`` to ``cvxpy.Problem.solve``."""
        if self.cvxpy_name is None:
            raise SolverFailure(
                f"backend {self.name!r} has no cvxpy interface; use it through Pyomo "
                f"({self.pyomo_name!r}) or pick another solver",
                solver=self.name,
                status=st.SOLVER_ERROR,
            )
        return self.cvxpy_name

    def options(self, user_options: dict[str, Any] | None = None) -> dict[str, Any]:
        """Default options merged with user pass-through options (user wins)."""
        merged = dict(self.defaults)
        merged.update(user_options or {})
        return merged

    def check_size(
        self, n_variables: int, n_constraints: int, n_quadratic_variables: int = 0
    ) -> None:
        """Raise :class:`LicenceError` before solving if the licence cannot take the problem.

        Parameters
        ----------
        n_variables, n_constraints : int
            Size of the problem as the solver will see it.
        n_quadratic_variables : int
            Number of variables in quadratic terms (objective or constraints).
        """
        if self.licence().state == "missing":
            raise self.licence_error()

    def licence_error(self, limit: str | None = None) -> LicenceError:
        """The error raised when the licence is missing or too small."""
        return LicenceError(
            f"{self.name}: licence missing ({self.licence().detail})",
            solver=self.name,
            limit=limit,
        )

    def translate(self, exc: BaseException, **context: Any) -> Exception:
        """Normalise a native failure into a multiconvex error.

        Parameters
        ----------
        exc : BaseException
            What the solve raised.
        **context
            Optional extras (e.g. ``problem``) that backends may inspect.

        Returns
        -------
        Exception
            A :class:`LicenceError` or :class:`SolverFailure` (others pass through).
        """
        if isinstance(exc, (LicenceError, SolverFailure)):
            return exc
        return SolverFailure(
            f"{self.name} failed: {type(exc).__name__}: {exc}",
            solver=self.name,
            status=st.SOLVER_ERROR,
        )
