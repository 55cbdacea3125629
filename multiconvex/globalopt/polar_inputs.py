"""Input checks and pattern resolution shared by the two-layer ReLU polar and the convex reformulation.

:func:`~multiconvex.globalopt.relu_polar.relu_polar` and
:func:`~multiconvex.globalopt.relu_convex.convex_relu_regression` take the same ``X``, ``G`` (or ``y``)
and ``patterns=`` argument; this module checks them before any solve and turns ``patterns=`` into a
pattern array with what is known about its completeness.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from multiconvex.errors import InvalidInputError

from .checks import check_array
from .patterns import _cached, _sample_points, _sampled_complete, enumerate_patterns, patterns_complete


def _check_XG(X: Any, G: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    X = check_array(X, name="X", where=where, ndim=2)
    G = check_array(G, name="G", where=where)
    if G.ndim == 2 and G.shape[1] == 1:
        G = G[:, 0]
    if G.ndim != 1:
        raise InvalidInputError(
            f"{where}: G must be a vector of length N={X.shape[0]} (scalar output), got shape {G.shape}; "
            "vector outputs are not supported by the pattern programs."
        )
    if G.shape[0] != X.shape[0]:
        raise InvalidInputError(
            f"{where}: G has {G.shape[0]} entries but X has {X.shape[0]} rows; pass one entry per sample."
        )
    return X, G


def _check_int(value: Any, name: str, low: int, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise InvalidInputError(f"{where}: {name} must be an integer >= {low}, got {value!r}.")
    return int(value)


def _check_patterns(patterns: Any, N: int, where: str) -> Any:
    if isinstance(patterns, str):
        if patterns != "exact":
            raise InvalidInputError(
                f"{where}: patterns={patterns!r} is not understood; use 'exact', a number of sampled "
                "patterns, or a boolean array (P, N)."
            )
        return patterns
    if isinstance(patterns, (int, np.integer)) and not isinstance(patterns, bool):
        return _check_int(patterns, "patterns", 1, where)
    arr = np.asarray(patterns)
    if arr.ndim != 2 or arr.shape[1] != N or arr.shape[0] == 0:
        raise InvalidInputError(
            f"{where}: a pattern array must have shape (P, N={N}) with P >= 1, got {arr.shape}."
        )
    if arr.dtype != bool:
        if not np.isin(arr, (0, 1)).all():
            raise InvalidInputError(f"{where}: a pattern array must hold booleans (or 0/1).")
        arr = arr.astype(bool)
    return np.unique(arr, axis=0)


def _resolve_patterns(X: np.ndarray, patterns: Any, seed: Any, max_patterns: int
                      ) -> tuple[np.ndarray, bool, int | None, str]:
    """(patterns, provably complete, total count if known, description)."""
    if isinstance(patterns, str):
        pats = enumerate_patterns(X, max_patterns=max_patterns)
        if patterns_complete(X, pats):
            return pats, True, len(pats), f"exact patterns (P={len(pats)})"
        return pats, False, None, (f"enumerated patterns (P={len(pats)}; not proven complete: fewer certified "
                                   "chambers than the exact count on this near-degenerate data)")
    if isinstance(patterns, int):
        rng = np.random.default_rng(seed)
        U = _sample_points(X, patterns, rng)
        pats = np.unique(U @ X.T >= 0, axis=0)
        if _sampled_complete(X, U):
            return pats, True, len(pats), f"sampled patterns (P={len(pats)}, provably all)"
        return pats, False, None, f"sampled patterns (P={len(pats)})"
    if patterns_complete(X, patterns):
        total = len(_cached(X)[0])
        return patterns, True, total, f"given patterns (P={len(patterns)}, all {total} enumerated ones)"
    return patterns, False, None, f"given patterns (P={len(patterns)})"
