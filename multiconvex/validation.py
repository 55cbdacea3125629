"""Checks on user input that run before any solve: one place for types, ranges, finiteness and names.

Every public entry point (``mc.solve``, the estimators, the command line) checks its arguments
here, so the same mistake gets the same message everywhere. The rules:

- numbers: Python and numpy integer / float scalars are accepted (``np.int64(5)``, ``np.float32(0.1)``),
  ``bool`` is refused where a number is meant (``tol=True`` is a mistake, not ``1``), strings are
  refused (the command line converts its strings with :func:`parse_int` / :func:`parse_number`);
- integers are never truncated: ``3.7`` where an integer is meant is refused, ``3.0`` too;
- every message names the argument, shows the value and says what to give instead.

Examples
--------
>>> check_number(np.float64(1e-6), "tol", minimum=0.0)
1e-06
>>> check_int(np.int64(5), "max_iters", minimum=1)
5
>>> check_number(True, "tol")
Traceback (most recent call last):
...
multiconvex.errors.InvalidInputError: tol=True is a bool, not a number: give a finite number.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import cvxpy as cp
import numpy as np

from .errors import InvalidInputError

__all__ = ["check_number", "check_int", "check_seed", "check_random_state", "check_choice", "check_flag",
           "check_mapping", "check_solver_spec", "parse_number", "parse_int", "parse_int_list", "check_options",
           "check_finite_data", "check_variables", "as_float_array"]


def _prefix(where: str | None) -> str:
    return f"{where}: " if where else ""


def _bound_text(minimum: float | None, maximum: float | None, strict: bool) -> str:
    parts = []
    if minimum is not None:
        parts.append(f"{'>' if strict else '>='} {minimum:g}")
    if maximum is not None:
        parts.append(f"<= {maximum:g}")
    return " and ".join(parts)


def _want(kind: str, minimum: float | None, maximum: float | None, strict: bool, allow_none: bool) -> str:
    """What to give, for the messages: ``"a finite number >= 0, or None"``."""
    bounds = f" {_bound_text(minimum, maximum, strict)}" if minimum is not None or maximum is not None else ""
    return kind + bounds + (", or None" if allow_none else "")


def _none_or_refused(value: Any, name: str, p: str, want: str, allow_none: bool, types: tuple[type, ...],
                     noun: str) -> bool:
    """True for an allowed ``None``; raise for a refused ``None``, a bool or a value not of ``types``."""
    if value is None:
        if allow_none:
            return True
        raise InvalidInputError(f"{p}{name}=None: give {want}.")
    if isinstance(value, (bool, np.bool_)):
        raise InvalidInputError(f"{p}{name}={value!r} is a bool, not {noun}: give {want}.")
    if not isinstance(value, types):
        raise InvalidInputError(f"{p}{name}={value!r} is a {type(value).__name__}, not {noun}: give {want}.")
    return False


def check_number(value: Any, name: str, *, minimum: float | None = None, maximum: float | None = None,
                 strict: bool = False, allow_none: bool = False, where: str | None = None) -> float | None:
    """A finite real number in range, as a Python float.

    Parameters
    ----------
    value : any
        What the user passed.
    name : str
        The argument's name, as the user spelled it (``"tol"``, ``"--time-limit"``).
    minimum, maximum : float, optional
        Bounds; ``strict=True`` makes the lower bound strict (``> minimum``).
    allow_none : bool
        Accept ``None`` (returned unchanged), e.g. ``time_limit=None``.
    where : str, optional
        The entry point, prefixed to the message (``"MatrixFactorization.fit"``).

    Raises
    ------
    InvalidInputError
        For bools, non-numbers, NaN / inf and values out of range.
    """
    p = _prefix(where)
    want = _want("a finite number", minimum, maximum, strict, allow_none)
    if _none_or_refused(value, name, p, want, allow_none, (int, float, np.integer, np.floating), "a number"):
        return None
    x = float(value)
    if not math.isfinite(x):
        raise InvalidInputError(f"{p}{name}={value!r} is not finite: give {want}.")
    if minimum is not None and (x <= minimum if strict else x < minimum):
        raise InvalidInputError(f"{p}{name}={value!r} is out of range: give {want}.")
    if maximum is not None and x > maximum:
        raise InvalidInputError(f"{p}{name}={value!r} is out of range: give {want}.")
    return x


def check_int(value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None,
              allow_none: bool = False, where: str | None = None) -> int | None:
    """An integer in range, as a Python int; floats (even ``3.0``) and bools are refused, never truncated."""
    p = _prefix(where)
    want = _want("an integer", minimum, maximum, False, allow_none)
    if _none_or_refused(value, name, p, want, allow_none, (int, np.integer), "an integer"):
        return None
    n = int(value)
    if (minimum is not None and n < minimum) or (maximum is not None and n > maximum):
        raise InvalidInputError(f"{p}{name}={value!r} is out of range: give {want}.")
    return n


def check_seed(value: Any, name: str = "seed", *, where: str | None = None) -> int | None:
    """``None`` or an integer ``>= 0`` (what :func:`numpy.random.default_rng` accepts, named)."""
    return check_int(value, name, minimum=0, allow_none=True, where=where)


def check_random_state(value: Any, name: str = "random_state", *, where: str | None = None) -> int | None:
    """What scikit-learn's estimators take as ``random_state``: ``None``, an integer ``>= 0``, or a numpy
    ``RandomState`` / ``Generator``, which gives a seed drawn from it (so it advances, as a scikit-learn estimator
    advances it: two fits from one generator differ, a fixed integer repeats)."""
    if isinstance(value, np.random.RandomState):
        return int(value.randint(0, 2**31 - 1))
    if isinstance(value, np.random.Generator):
        return int(value.integers(0, 2**31 - 1))
    return check_seed(value, name, where=where)


def check_choice(value: Any, name: str, choices: Iterable[str], *, where: str | None = None) -> str:
    """One of ``choices`` (exact string match); the message lists them."""
    options = list(choices)
    if not isinstance(value, str) or value not in options:
        raise InvalidInputError(f"{_prefix(where)}{name}={value!r} is not known: use one of {', '.join(options)}.")
    return value


def check_flag(value: Any, name: str, *, where: str | None = None) -> bool:
    """``True`` or ``False`` (numpy's ``bool_`` too); ``"yes"`` or ``1`` is refused, not read as true."""
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidInputError(f"{_prefix(where)}{name}={value!r} is a {type(value).__name__}: give True or False.")
    return bool(value)


def check_mapping(value: Any, name: str, *, allow_none: bool = True, what: str = "values",
                  where: str | None = None) -> Mapping[Any, Any] | None:
    """A mapping (``dict``) or, with ``allow_none``, ``None``; ``what`` says what it maps to in the message."""
    if value is None and allow_none:
        return None
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"{_prefix(where)}{name}={_short(repr(value), 60)} is a {type(value).__name__}, not "
                                f"a mapping: give a dict of {what}{', or None' if allow_none else ''}.")
    return value


def check_solver_spec(value: Any, name: str = "solver", *, where: str | None = None) -> str | list[str] | None:
    """A backend name, ``"auto"``, ``None`` (the same as ``"auto"``), or a non-empty list / tuple of names (a
    fallback list); the names are checked against the registry later, by :func:`multiconvex.solvers.resolve`."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise InvalidInputError(f"{_prefix(where)}{name}={_short(repr(value), 60)}: give a backend name such as "
                            "'clarabel', 'auto', or a non-empty list of names such as ['gurobi', 'clarabel'] "
                            "(mc.available_solvers() lists them).")


# -- strings from the command line ---------------------------------------------------------------
def parse_number(text: str, name: str, **bounds: Any) -> float:
    """``float(text)`` checked by :func:`check_number` (``"nan"``, ``"inf"`` and ``"1e-3x"`` refused)."""
    try:
        value = float(text)
    except ValueError:
        raise InvalidInputError(f"{name}={text!r} is not a number: give a finite number.") from None
    out = check_number(value, name, **bounds)
    assert out is not None  # allow_none is not passed: a float came back
    return out


def parse_int(text: str, name: str, **bounds: Any) -> int:
    """``int(text)`` checked by :func:`check_int` (``"3.5"``, ``"a"`` refused)."""
    try:
        value = int(text.strip())
    except ValueError:
        raise InvalidInputError(f"{name}={text!r} is not an integer: give a whole number such as 3.") from None
    out = check_int(value, name, **bounds)
    assert out is not None
    return out


def parse_int_list(text: str, name: str, **bounds: Any) -> list[int]:
    """A comma-separated list of integers (``"0,1,7"``), none missing, no duplicates."""
    parts = [s.strip() for s in text.split(",")]
    if not text.strip() or any(not s for s in parts):
        raise InvalidInputError(f"{name}={text!r} has an empty entry: give comma-separated integers such as 0,1,2.")
    values = []
    for s in parts:
        try:
            values.append(parse_int(s, name, **bounds))
        except InvalidInputError:
            rng = _bound_text(bounds.get("minimum"), bounds.get("maximum"), False)
            raise InvalidInputError(f"{name}={text!r}: {s!r} is not an integer{' ' + rng if rng else ''}; "
                                    "give comma-separated integers such as 0,1,2.") from None
    if len(set(values)) != len(values):
        raise InvalidInputError(f"{name}={text!r} repeats a value: list each integer once.")
    return values


# -- solve options ---------------------------------------------------------------------------------
def as_float_array(value: Any, what: str) -> np.ndarray:
    """``value`` as a float array, or an :class:`InvalidInputError` naming ``what`` (a string, a dict...: numpy's own
    "could not convert string to float" named neither the argument nor the fix)."""
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{what} is {_short(repr(value), 60)}, not a number or an array of numbers.") from exc


def check_options(*, max_iters: Any, tol: Any, time_limit: Any, reg: Any, prox: Any,
                  where: str | None = None) -> None:
    """The stopping rules and weights every algorithm takes (``mc.solve``, ``fit``)."""
    check_int(max_iters, "max_iters", minimum=1, where=where)
    for name, val in (("tol", tol), ("reg", reg), ("prox", prox)):
        check_number(val, name, minimum=0.0, where=where)
    check_number(time_limit, "time_limit", minimum=0.0, strict=True, allow_none=True, where=where)


# -- cvxpy problems -----------------------------------------------------------------------------
def check_finite_data(problem: cp.Problem) -> None:
    """Raise if any constant or parameter value in ``problem`` is NaN or infinite, naming where."""
    places = [("objective", problem.objective.expr)] + [
        (f"constraint {i} `{_short(c)}`", c) for i, c in enumerate(problem.constraints)]
    for where, obj in places:
        leaves = list(obj.constants()) + list(obj.parameters())
        for leaf in leaves:
            val = leaf.value
            if val is None:
                if isinstance(leaf, cp.Parameter):
                    raise InvalidInputError(
                        f"parameter '{leaf.name()}' in the {where} has no value: set it before solving.")
                continue
            arr = val.toarray() if hasattr(val, "toarray") else np.asarray(val)
            if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
                bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
                raise InvalidInputError(
                    f"the {where} contains data with {bad} NaN/inf entr{'y' if bad == 1 else 'ies'} "
                    f"(a {'parameter' if isinstance(leaf, cp.Parameter) else 'constant'} of shape "
                    f"{np.shape(arr)}): remove or impute them before solving.")


def check_variables(problem: cp.Problem) -> None:
    """Continuous, real variables with at least one entry each."""
    variables = problem.variables()
    if not variables:
        raise InvalidInputError("the problem has no variables: there is nothing to optimise.")
    for v in variables:
        if v.attributes.get("integer") or v.attributes.get("boolean"):
            raise InvalidInputError(
                f"variable '{v.name()}' is integer/boolean: multiconvex solves continuous problems only. "
                "Use a mixed-integer solver directly (e.g. prob.solve(solver='SCIP')).")
        if v.is_complex():
            raise InvalidInputError(f"variable '{v.name()}' is complex: multiconvex supports real variables only.")
        if v.attributes.get("diag"):  # its value is a sparse matrix, which the block paths do not read (a review)
            raise InvalidInputError(f"variable '{v.name()}' is declared diag=True, which multiconvex does not take: "
                                    f"declare its diagonal, d = cp.Variable({v.shape[0]}), and use cp.diag(d).")
        pattern = v.attributes.get("sparsity")  # False when not declared
        if pattern is not None and pattern is not False:  # the block copies drop it: a dense solve, never converging
            raise InvalidInputError(f"variable '{v.name()}' is declared with sparsity=..., which multiconvex does not "
                                    "take: declare its nonzero entries as a vector variable and build the matrix from "
                                    "it (a constant 0/1 matrix that places them), or fix the other entries at zero "
                                    "with constraints.")
        if v.size == 0:
            raise InvalidInputError(f"variable '{v.name()}' has shape {v.shape} with no entries: give every "
                                    "variable at least one entry, or remove it from the problem.")


def _short(obj: object, n: int = 120) -> str:
    s = str(obj)
    return s if len(s) <= n else s[: n - 3] + "..."
