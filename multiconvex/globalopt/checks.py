"""Input checks shared by the models and the global-optimality tools: each raises InvalidInputError saying
what, where, and what to do.

They live here, below :mod:`multiconvex.models`, because both packages use them and the models already
depend on :mod:`multiconvex.globalopt` (never the other way round).
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from multiconvex.errors import InvalidInputError


def check_array(
    value: Any,
    *,
    name: str,
    where: str,
    ndim: int | None = None,
    shape: tuple[int, ...] | None = None,
    nonneg: bool = False,
) -> np.ndarray:
    """Return ``value`` as a finite float array, or raise InvalidInputError."""
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"{where}: {name} must be a numeric array, got {type(value).__name__} ({exc})."
        ) from exc
    if ndim is not None and arr.ndim != ndim:
        what = {1: "a 1-D vector", 2: "a 2-D matrix"}.get(ndim, f"{ndim}-D")
        raise InvalidInputError(
            f"{where}: {name} must be {what}, got an array of shape {arr.shape}."
            + (" Use Y.reshape(-1, 1) for a single column." if ndim == 2 and arr.ndim == 1 else "")
        )
    if shape is not None and arr.shape != shape:
        raise InvalidInputError(f"{where}: {name} has shape {arr.shape}, expected {shape}.")
    if arr.size == 0:
        raise InvalidInputError(f"{where}: {name} is empty (shape {arr.shape}); pass some data.")
    bad = ~np.isfinite(arr)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InvalidInputError(
            f"{where}: {name} contains {int(bad.sum())} NaN/inf entr"
            f"{'y' if bad.sum() == 1 else 'ies'} (first at index {first}); "
            "remove or impute them before fitting."
        )
    if nonneg and (arr < 0).any():
        first = tuple(int(i) for i in np.argwhere(arr < 0)[0])
        raise InvalidInputError(
            f"{where}: {name} must be nonnegative but has {int((arr < 0).sum())} negative "
            f"entr{'y' if (arr < 0).sum() == 1 else 'ies'} (first at index {first}, value "
            f"{arr[first]:.6g}); shift or clip the data, or use MatrixFactorization instead."
        )
    return arr


def check_rank(rank: Any, *, where: str, name: str = "rank") -> int:
    """A rank (the argument ``name``) must be an integer >= 1."""
    if isinstance(rank, bool) or not isinstance(rank, numbers.Integral):
        raise InvalidInputError(f"{where}: {name} must be an integer >= 1, got {rank!r}; e.g. {name}=3.")
    if rank < 1:
        raise InvalidInputError(f"{where}: {name} must be >= 1, got {rank}; e.g. {name}=3.")
    return int(rank)


def check_scalar(
    value: Any, *, name: str, where: str, low: float = 0.0, strict: bool = False
) -> float:
    """A finite real scalar >= low (> low when strict)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidInputError(f"{where}: {name} must be a real number, got {value!r}.")
    val = float(value)
    if not np.isfinite(val):
        raise InvalidInputError(f"{where}: {name} must be finite, got {val}.")
    if val < low or (strict and val == low):
        rel = ">" if strict else ">="
        raise InvalidInputError(f"{where}: {name} must be {rel} {low:g}, got {val:g}.")
    return val
