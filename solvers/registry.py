"""The one backend registry: names -> backends, problem classes, selection.

Examples
--------
>>> from multiconvex.solvers.registry import get_backend, resolve
>>> get_backend("CLARABEL").name
'clarabel'
>>> [b.name for b in resolve(["osqp", "clarabel"], "QP")]
['osqp', 'clarabel']
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence

import cvxpy as cp

from multiconvex.errors import InvalidInputError, LicenceError, SolverUnavailableError, UnknownSolverError

from .base import PROBLEM_CLASSES, Backend, SolverInfo
from .clarabel_backend import ClarabelBackend
from .clarabel_native import ClarabelNativeBackend
from .daqp_qp import DaqpBackend
from .ecos_backend import EcosBackend
from .gurobi_backend import GurobiBackend
from .highs_backend import HighsBackend
from .ipopt_backend import IpoptBackend
from .lstsq import LstsqBackend
from .mosek_backend import MosekBackend
from .nnls import NnlsBackend
from .osqp_backend import OsqpBackend
from .proxqp_qp import ProxqpBackend
from .scip_backend import ScipBackend
from .scs_backend import ScsBackend

logger = logging.getLogger(__name__)

_BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        ClarabelBackend(),
        OsqpBackend(),
        ScsBackend(),
        EcosBackend(),
        HighsBackend(),
        GurobiBackend(),
        MosekBackend(),
        ScipBackend(),
        IpoptBackend(),
        LstsqBackend(),
        ClarabelNativeBackend(),
        DaqpBackend(),
        ProxqpBackend(),
        NnlsBackend(),
    )
}

#: Preference order of "auto" per problem class (licence-free backends only).
AUTO_ORDER: dict[str, tuple[str, ...]] = {
    "EQP": ("lstsq", "clarabel", "osqp"),
    "LP": ("highs", "clarabel", "scs"),
    "QP": ("clarabel", "osqp", "scs"),
    "SOCP": ("clarabel", "ecos", "scs"),
    "EXP": ("clarabel", "scs", "ecos"),
    "SDP": ("clarabel", "scs"),
}

#: "auto" for models that hand their block subproblems over as matrices (``resolve(...,
#: matrix_level=True)``, e.g. :class:`multiconvex.nets.NetForm`): these go before
#: :data:`AUTO_ORDER`'s cvxpy backends, which stay as the fallback. Measured on ReLU blocks
#: (benchmarks/results/relu.json, "native_vs_cvxpy"): clarabel-native vs Clarabel through cvxpy.
MATRIX_AUTO_ORDER: dict[str, tuple[str, ...]] = {
    "EQP": ("clarabel-native",),
    "QP": ("clarabel-native",),
    "EXP": ("clarabel-native",),
}

#: Atoms that keep a QP objective free of hidden inequality constraints.
_QUADRATIC_ATOMS = frozenset({"quad_form", "quad_over_lin", "SymbolicQuadForm", "QuadForm"})


def known_names() -> list[str]:
    """Every registry name (plus the selector ``"auto"``)."""
    return [*_BACKENDS, "auto"]


def get_backend(name: str) -> Backend:
    """Return the backend registered under ``name`` (case-insensitive).

    Parameters
    ----------
    name : str
        A registry name such as ``"clarabel"`` or ``"GUROBI"``.

    Returns
    -------
    Backend

    Raises
    ------
    UnknownSolverError
        If no backend has that name; the message lists the known names.

    Examples
    --------
    >>> get_backend("Mosek").cvxpy_name
    'MOSEK'
    """
    key = str(name).strip().lower()
    if key not in _BACKENDS:
        raise UnknownSolverError(
            f"unknown solver {name!r}; known solvers: {', '.join(known_names())}"
        )
    return _BACKENDS[key]


def available_solvers() -> list[SolverInfo]:
    """List every backend: installed, licence state, available, version, classes.

    Cheap: no solve; the commercial licence probes run once per process.

    Examples
    --------
    >>> rows = available_solvers()
    >>> any(r.name == "clarabel" and r.available for r in rows)
    True
    """
    return [b.info() for b in _BACKENDS.values()]


def _objective_is_plain_quadratic(expr) -> bool:
    """Only affine atoms and quadratic forms (no abs/huber/max that add inequalities)."""
    from cvxpy.atoms.affine.affine_atom import AffAtom

    stack = [expr]
    while stack:
        e = stack.pop()
        if isinstance(e, cp.atoms.atom.Atom) and not isinstance(e, AffAtom):
            kind = type(e).__name__
            if kind in ("power", "PowerApprox"):
                if float(e.p.value) != 2.0:
                    return False
            elif kind not in _QUADRATIC_ATOMS:
                return False
        stack.extend(e.args)
    return True


def problem_class(problem: cp.Problem) -> str:
    """Classify a cvxpy problem as one of ``EQP, LP, QP, SOCP, EXP, SDP``.

    ``EQP`` is a QP whose only constraints are equalities, with no variable
    attributes (nonneg, bounds, PSD...) and an objective built from affine
    atoms and quadratic forms only. Power cones count as ``EXP`` (they need a
    solver beyond second-order cones).

    Parameters
    ----------
    problem : cvxpy.Problem

    Returns
    -------
    str

    Examples
    --------
    >>> import cvxpy as cp
    >>> x = cp.Variable(2)
    >>> problem_class(cp.Problem(cp.Minimize(cp.sum_squares(x)), [cp.sum(x) == 1]))
    'EQP'
    >>> problem_class(cp.Problem(cp.Minimize(cp.norm(x, 2)), [x >= 1]))
    'SOCP'
    """
    from cvxpy.constraints import PSD, ExpCone, PowCone3D, PowConeND
    from cvxpy.problems.problem_form import ProblemForm

    if problem.is_lp():
        return "LP"
    if problem.is_qp():
        attributed = any(
            any(v for k, v in var.attributes.items() if k not in ("real", "name"))
            for var in problem.variables()
        )
        only_equalities = all(
            isinstance(c, (cp.constraints.Equality, cp.constraints.Zero))
            for c in problem.constraints
        )
        if (not attributed and only_equalities
                and _objective_is_plain_quadratic(problem.objective.expr)):
            return "EQP"
        return "QP"
    cones = ProblemForm(problem).cones(quad_obj=True)
    if PSD in cones or any(v.attributes.get(k) for v in problem.variables()
                           for k in ("PSD", "NSD", "hermitian")):
        return "SDP"
    if cones & {ExpCone, PowCone3D, PowConeND}:
        return "EXP"
    return "SOCP"


def _check_class(backend: Backend, problem_class: str | None) -> None:
    if problem_class is not None and not backend.can_solve(problem_class):
        able = [b.name for b in _BACKENDS.values() if b.can_solve(problem_class)]
        solves = ", ".join(sorted(backend.classes)) or backend.scope or "nothing here"
        raise InvalidInputError(
            f"solver {backend.name!r} cannot solve {problem_class} problems "
            f"(it solves {solves}); use one of: {', '.join(able)}"
        )


def require_usable(backends: Sequence[Backend], *, what: str = "solver",
                   licence_error: Callable[[Backend], LicenceError] | None = None) -> None:
    """Before any solve: raise when none of ``backends`` can run here (not installed, or its licence missing). One
    backend raises its own error; a list raises one error naming every entry's reason (a :class:`LicenceError` when
    every entry lacks a licence). A list with a usable entry passes: the others are skipped as they come.
    ``licence_error`` words a backend's licence error for the caller's front end (default: the backend's own)."""
    errors: list[Exception] = []
    for b in backends:
        if not b.installed():
            errors.append(SolverUnavailableError(f"solver {b.name!r} is not installed; `{b.install_hint()}`"))
        elif b.licence().state == "missing":
            errors.append(licence_error(b) if licence_error is not None else b.licence_error())
    if not backends or len(errors) < len(backends):
        return
    if len(errors) == 1:
        raise errors[0]
    text = f"no {what} in the list is usable here: " + "; ".join(str(e) for e in errors)
    if all(isinstance(e, LicenceError) for e in errors):
        raise LicenceError(text, solver=str([b.name for b in backends]))
    raise SolverUnavailableError(text)


def resolve(spec: str | Backend | Sequence[str | Backend] | None,
            problem_class: str | None = None, *, matrix_level: bool = False) -> list[Backend]:
    """Turn a solver spec into the list of backends to try, in order.

    Parameters
    ----------
    spec : None, "auto", str, Backend, or sequence of those
        ``None``/``"auto"``: the fastest installed licence-free backends for the
        class (see :data:`AUTO_ORDER`). A name: that backend only. A list: a
        fallback list tried in order (unavailable entries are kept; the
        adapter skips them and records why).
    problem_class : str, optional
        One of ``EQP, LP, QP, SOCP, EXP, SDP``; None skips the class check.
    matrix_level : bool
        The caller can hand matrices to a matrix-level backend (``clarabel-native``): "auto"
        puts :data:`MATRIX_AUTO_ORDER` first. Without it "auto" never picks one.

    Returns
    -------
    list of Backend

    Raises
    ------
    UnknownSolverError
        An unknown name.
    SolverUnavailableError
        A single named backend that is not installed (message: pip command).
    InvalidInputError
        A named backend that cannot solve the class (message: who can).

    Examples
    --------
    >>> [b.name for b in resolve("auto", "EQP")][:2]
    ['lstsq', 'clarabel']
    """
    if problem_class is not None and problem_class not in PROBLEM_CLASSES:
        raise InvalidInputError(
            f"unknown problem class {problem_class!r}; expected one of {PROBLEM_CLASSES}"
        )
    if spec is None or (isinstance(spec, str) and spec.strip().lower() == "auto"):
        order = AUTO_ORDER.get(problem_class or "SDP", AUTO_ORDER["SDP"])
        if matrix_level:
            order = MATRIX_AUTO_ORDER.get(problem_class or "SDP", ()) + order
        chosen = [b for b in map(get_backend, order) if b.installed()
                  and b.licence().state in ("not-required", "ok")]
        if not chosen:
            raise SolverUnavailableError(
                f"no installed licence-free solver for {problem_class} problems; "
                f"install one of: {', '.join(get_backend(n).install_hint() for n in order)}"
            )
        logger.debug("auto solver for %s: %s", problem_class, [b.name for b in chosen])
        return chosen
    single = isinstance(spec, (str, Backend))
    items: Iterable[str | Backend] = [spec] if single else list(spec)
    backends = [b if isinstance(b, Backend) else get_backend(b) for b in items]
    if not backends:
        raise InvalidInputError("empty solver list; name at least one solver or use 'auto'")
    for b in backends:
        _check_class(b, problem_class)
    if single and not backends[0].installed():
        b = backends[0]
        raise SolverUnavailableError(
            f"solver {b.name!r} is not installed here; install it with `{b.install_hint()}` "
            f"or pick an installed one"
        )
    return backends
