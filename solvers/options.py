"""Backend option names, checked before the first solve.

A misspelt option (``solver_options={"max_iters": 5}`` for Clarabel, which calls it ``max_iter``)
used to fail at the first block solve, deep inside cvxpy or the backend. :func:`check_solver_options`
refuses it up front, naming the option, the backend, close matches (:mod:`difflib`) and the
accepted names.

The accepted names come from the backend libraries themselves, read once per process:

- Clarabel (``clarabel``, ``clarabel-native``): the attributes of ``clarabel.DefaultSettings()``;
- OSQP: the fields of ``osqp``'s settings object (``ext_builtin.OSQPSettings``, OSQP >= 1);
- DAQP: the keyword arguments of ``daqp.solve``;
- ProxQP: the keyword arguments of ``proxsuite.proxqp.dense.solve`` (from its signature text), and ``time_limit``;
- HiGHS: the attributes of ``highspy.HighsOptions()`` (plus cvxpy's ``highs_options`` / ``write_model_file``),
  and any further name one kept ``highspy.Highs()`` knows (``getOptionType``: HiGHS's full option list);
- Gurobi: ``gurobipy.GRB.Param`` (case-insensitive, as Gurobi reads them; plus cvxpy's ``env``,
  ``save_file``, ``reoptimize``);
- the closed form (``lstsq``) and NNLS are ours: ``tol`` and ``tol``/``max_iter``.

Backends reached through cvxpy's ``problem.solve`` (every backend with a cvxpy name except the matrix-only
modules DAQP, ProxQP and ``clarabel-native``) also take cvxpy's own keywords, :data:`CVXPY_KEYWORDS`
(``verbose``, ``ignore_dpp``, ``enforce_dpp``, ``canon_backend``). OSQP also takes the names OSQP < 1
used (``polish``, ``warm_start``), which its backend maps.

SCS and ECOS take their settings as C keyword arguments that neither the library nor cvxpy
lists; MOSEK, SCIP and Ipopt take nested parameter dictionaries through cvxpy. Their options
cannot be enumerated here and pass through unchecked (the backend's own error still names a bad
one, at the first solve). :func:`accepted_options` says which case a backend is in.

Examples
--------
>>> "max_iter" in accepted_options("clarabel")
True
>>> accepted_options("scs") is None
True
>>> check_solver_options({"max_iters": 5}, "clarabel")
Traceback (most recent call last):
...
multiconvex.errors.InvalidInputError: solver_options: 'max_iters' is not an option of clarabel (did you mean ...
"""

from __future__ import annotations

import difflib
import functools
import inspect
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from multiconvex.errors import InvalidInputError

from .highs_backend import silence_highs_banner
from .registry import AUTO_ORDER, MATRIX_AUTO_ORDER, get_backend, known_names

__all__ = ["accepted_options", "check_solver_options", "CVXPY_KEYWORDS", "NOT_ENUMERABLE"]

#: Keywords of cvxpy's ``problem.solve`` itself, taken by every backend reached through it.
CVXPY_KEYWORDS = frozenset({"verbose", "ignore_dpp", "enforce_dpp", "canon_backend"})
#: Backends with a cvxpy name that are only ever called as matrix modules (their ``solve`` refuses cvxpy's
#: keywords: ``daqp.solve() got an unexpected keyword argument 'verbose'``).
_MATRIX_ONLY = frozenset({"daqp", "proxqp", "clarabel-native"})

#: Backends whose option names cannot be read from the library: why, for the docs and :func:`describe`.
NOT_ENUMERABLE: dict[str, str] = {
    "scs": "SCS takes its settings as C keyword arguments that neither scs nor cvxpy lists",
    "ecos": "ECOS takes its settings as C keyword arguments that neither ecos nor cvxpy lists",
    "mosek": "MOSEK's parameters go through cvxpy's nested mosek_params dictionary",
    "scip": "SCIP's parameters go through cvxpy's nested scip_params dictionary",
    "ipopt": "Ipopt's options go through cvxpy's nested dictionaries",
}

#: Options of our own matrix-level modules (they read these keys and ignore no other: see their ``solve``).
_OWN: dict[str, frozenset[str]] = {
    "lstsq": frozenset({"tol"}),
    "nnls": frozenset({"tol", "max_iter"}),
}

#: Backends that "auto" may pick (cvxpy path, matrix path and the dispatcher's value path).
_AUTO_NAMES = ("lstsq", "nnls", "daqp", "proxqp", "clarabel", "clarabel-native", "osqp", "highs", "scs", "ecos")

#: Names shown in full in a message up to this many; beyond, the close matches and a count.
_LIST_AT_MOST = 50


def _public_attributes(obj: Any) -> frozenset[str]:
    return frozenset(a for a in dir(obj) if not a.startswith("_") and not callable(getattr(obj, a, None)))


def _clarabel() -> frozenset[str]:
    import clarabel  # lazy: the solver is imported only when its option names are asked for

    return _public_attributes(clarabel.DefaultSettings()) | {"use_quad_obj", "accept_unknown"}  # cvxpy's own


def _osqp() -> frozenset[str] | None:
    try:
        from osqp import ext_builtin  # lazy: the solver is imported only when its option names are asked for
    except ImportError:  # OSQP < 1 has no settings object to read
        return None
    # OSQP < 1's names (polish, warm_start), mapped by the backend and by cvxpy
    return _public_attributes(ext_builtin.OSQPSettings()) | {"polish", "warm_start"}


def _daqp() -> frozenset[str]:
    import daqp  # lazy: the solver is imported only when its option names are asked for

    positional = {"H", "f", "A", "bupper", "blower", "sense", "break_points", "is_avi"}
    return frozenset(inspect.signature(daqp.solve).parameters) - positional


def _proxqp() -> frozenset[str] | None:
    from proxsuite import proxqp  # lazy: the solver is imported only when its option names are asked for

    first = (proxqp.dense.solve.__doc__ or "").splitlines()[0] if proxqp.dense.solve.__doc__ else ""
    names = re.findall(r"[(,]\s*(\w+):", first)
    data = {"H", "g", "A", "b", "C", "l", "u", "x", "y", "z"}
    found = frozenset(names) - data
    return found | {"time_limit"} if found else None  # time_limit: ours (solvers.proxqp_qp runs in chunks under it)


def _highs() -> frozenset[str]:
    import highspy  # lazy: the solver is imported only when its option names are asked for

    return _public_attributes(highspy.HighsOptions()) | {"highs_options", "write_model_file"}  # cvxpy's own


@functools.cache
def _highs_instance() -> Any:
    """One silent ``highspy.Highs()`` per process, asked for option names ``HighsOptions()`` does not list."""
    import highspy  # lazy: the solver is imported only when its option names are asked for

    silence_highs_banner()
    highs = highspy.Highs()
    highs.setOptionValue("output_flag", False)  # else an unknown name prints "ERROR: getOptionIndex" on stdout
    return highs


def _highs_knows(key: str) -> bool:
    """Whether HiGHS itself knows the option ``key`` (``Highs.getOptionType``; its full list)."""
    try:
        status, _ = _highs_instance().getOptionType(key)
        return str(status).endswith("kOk")
    except Exception:  # noqa: BLE001 - a library that cannot be asked is not checked, never a crash
        return True


def _gurobi() -> frozenset[str]:
    import gurobipy  # lazy: optional commercial solver, imported only when its option names are asked for

    return frozenset(a for a in dir(gurobipy.GRB.Param) if not a.startswith("_")) | {"env", "save_file",
                                                                                     "reoptimize"}


_READERS = {"clarabel": _clarabel, "clarabel-native": _clarabel, "osqp": _osqp, "daqp": _daqp, "proxqp": _proxqp,
            "highs": _highs, "gurobi": _gurobi}
#: Backends whose library reads option names without regard to case.
_CASE_INSENSITIVE = frozenset({"gurobi"})


@functools.cache
def accepted_options(backend: str) -> frozenset[str] | None:
    """The option names ``backend`` accepts, read from its library; ``None`` when they cannot be enumerated
    (not installed, or a backend of :data:`NOT_ENUMERABLE`): such options pass through unchecked."""
    name = get_backend(backend).name
    if name in _OWN:
        return _OWN[name]
    reader = _READERS.get(name)
    if reader is None or not get_backend(name).installed():
        return None
    try:
        names = reader()
    except Exception:  # noqa: BLE001 - a library that cannot be read is not checked, never a crash
        return None
    if names is not None and get_backend(name).cvxpy_name is not None and name not in _MATRIX_ONLY:
        names = names | CVXPY_KEYWORDS  # reached through cvxpy's problem.solve, which reads these itself
    return names


def _accepts(backend: str, key: str, names: frozenset[str]) -> bool:
    if backend in _CASE_INSENSITIVE:
        return key.lower() in {n.lower() for n in names}
    if backend == "highs" and key not in names:
        return _highs_knows(key)
    return key in names


def _refusal(key: str, backend: str, names: frozenset[str], name: str, where: str | None, hint: str = "") -> str:
    prefix = f"{where}: " if where else ""
    close = difflib.get_close_matches(key, sorted(names), n=3, cutoff=0.6)
    guess = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
    if close or len(names) > _LIST_AT_MOST:
        listing = f"{len(names)} names, listed by multiconvex.solvers.options.accepted_options({backend!r})"
    else:
        listing = ", ".join(sorted(names))
    return f"{prefix}{name}: {key!r} is not an option of {backend}{guess}; {backend} accepts {listing}.{hint}"


def _spec_names(solver: str | Sequence[str] | None) -> tuple[list[str], bool]:
    """Registry names of ``solver`` and whether it is "auto"; names unknown to the registry are skipped."""
    def is_auto(s: Any) -> bool:
        return isinstance(s, str) and s.strip().lower() == "auto"

    if solver is None or is_auto(solver) or (not isinstance(solver, str) and any(is_auto(s) for s in solver)):
        auto = sorted(set(_AUTO_NAMES) | {n for order in (*AUTO_ORDER.values(), *MATRIX_AUTO_ORDER.values())
                                          for n in order})
        return auto, True
    items: Iterable[Any] = [solver] if isinstance(solver, str) else solver
    known = set(known_names()) - {"auto"}
    return [get_backend(s).name for s in items if isinstance(s, str) and s.strip().lower() in known], False


def check_solver_options(options: Mapping[str, Any] | None, solver: str | Sequence[str] | None, *,
                         name: str = "solver_options", where: str | None = None) -> None:
    """Refuse option names the chosen backend(s) do not accept, before any solve.

    Parameters
    ----------
    options : mapping or None
        ``{option: value}`` for every backend, and ``{backend_name: {option: value}}`` for one backend
        only (as :func:`multiconvex.solvers.cvxpy_adapter.options_for` splits them).
    solver : str, list of str or None
        The user's ``solver=`` (registry names, ``"auto"``; names the registry does not know, e.g. Pyomo
        solver names, are not checked).
    name, where : str
        The argument's name and the entry point, for the message.

    Raises
    ------
    InvalidInputError
        A per-backend entry that is not a dict; a per-backend option that backend does not accept;
        an option for every backend that a named backend does not accept (the message says to nest it
        under the backend that takes it), or, with ``"auto"``, that no backend "auto" may pick accepts
        (among those whose names can be read: give SCS's or ECOS's options with ``solver="scs"``).
    """
    if not options:
        return
    prefix = f"{where}: " if where else ""
    registry = {n.lower() for n in known_names()}
    common = {}
    for key, value in options.items():
        if not isinstance(key, str):
            raise InvalidInputError(f"{prefix}{name}: the key {key!r} is a {type(key).__name__}: option names "
                                    "are strings.")
        if key.lower() in registry and key.lower() != "auto":
            if not isinstance(value, Mapping):
                raise InvalidInputError(f"{prefix}{name}[{key!r}]={value!r}: options for one backend are a dict, "
                                        f"such as {{{key!r}: {{'max_iter': 100}}}}.")
            backend = get_backend(key).name
            names = accepted_options(backend)
            for sub in value:
                if names is not None and not (isinstance(sub, str) and _accepts(backend, sub, names)):
                    raise InvalidInputError(_refusal(str(sub), backend, names, f"{name}[{key!r}]", where))
        else:
            common[key] = value
    if not common:
        return
    backends, auto = _spec_names(solver)
    readable = {b: accepted_options(b) for b in backends}
    for key in common:
        takers = [b for b, names in readable.items() if names is not None and _accepts(b, key, names)]
        if auto:
            if not takers:
                union = frozenset().union(*(n for n in readable.values() if n is not None))
                close = difflib.get_close_matches(key, sorted(union), n=3, cutoff=0.6)
                guess = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
                raise InvalidInputError(
                    f"{prefix}{name}: {key!r} is not an option of any backend solver='auto' may pick "
                    f"({', '.join(b for b in backends if readable[b] is not None)}){guess}; name the solver "
                    "(solver='clarabel') and give its own option names.")
            continue
        for b in backends:
            names = readable[b]
            if names is not None and not _accepts(b, key, names):
                nest = f" To pass it to {takers[0]} only, write {{{takers[0]!r}: {{{key!r}: ...}}}}." \
                    if takers else ""
                raise InvalidInputError(_refusal(key, b, names, name, where, nest))


def describe(backend: str) -> str:
    """One line on how ``backend``'s option names are checked (for listings and the README)."""
    name = get_backend(backend).name
    names = accepted_options(name)
    if names is not None:
        return f"{name}: {len(names)} option names, checked"
    why = NOT_ENUMERABLE.get(name, "not installed here" if not get_backend(name).installed()
                             else "its library does not list them")
    return f"{name}: not checked ({why}); options pass through"
