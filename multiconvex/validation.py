"""Checks on user input that run before any solve."""

from __future__ import annotations

import math
from typing import Any

import cvxpy as cp
import numpy as np

from .errors import InvalidInputError


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


def check_options(*, max_iters: Any, tol: Any, time_limit: Any, reg: Any, prox: Any) -> None:
    if isinstance(max_iters, bool) or not isinstance(max_iters, (int, np.integer)) or max_iters < 1:
        raise InvalidInputError(f"max_iters={max_iters!r}: give a positive integer.")
    for name, val in (("tol", tol), ("reg", reg), ("prox", prox)):
        if not isinstance(val, (int, float, np.floating, np.integer)) or not math.isfinite(val) or val < 0:
            raise InvalidInputError(f"{name}={val!r}: give a finite number >= 0.")
    if time_limit is not None and (isinstance(time_limit, bool) or not isinstance(time_limit, (int, float))
                                   or not math.isfinite(time_limit) or time_limit <= 0):
        raise InvalidInputError(f"time_limit={time_limit!r}: give a positive number of seconds, or None.")


def _short(obj: object, n: int = 120) -> str:
    s = str(obj)
    return s if len(s) <= n else s[: n - 3] + "..."
