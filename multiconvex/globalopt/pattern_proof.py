"""A proof that an enumeration of activation patterns is complete (THEORY.md §6, "Signs in pattern enumeration").

The chamber construction of :mod:`.patterns` decides signs in floating point; a sign decided wrongly
near zero could lose a thin chamber. This module proves completeness after the fact, with exact
arithmetic where rounding could matter:

1. **every returned point is strictly inside its chamber**: the signs of ``x_iᵀ u`` are certified by
   the floating-point error bound ``|fl(x_iᵀu) − x_iᵀu| ≤ γ_d |x_i|ᵀ|u|`` (Higham §3.1; doubled for the
   rounding of the bound itself), and the few entries the bound cannot decide are evaluated exactly in
   rational arithmetic (every double is a rational number). A point with an exact tie proves nothing.
2. **the number of chambers is computed exactly**: the rows become integer vectors (each row scaled by
   a power of two, which moves no hyperplane), exactly parallel rows are merged by their reduced integer
   form, and the chambers of the central arrangement are counted by deletion–restriction,
   ``r(A) = r(A − H) + r(A^H)`` (Zaslavsky), in integer arithmetic: the restriction to ``H = h⊥`` uses the
   integer basis ``h_p e_q − h_q e_p`` of ``h⊥``, so nothing is rounded.

If the distinct certified patterns are as many as the exact count, they are all the chambers: the
enumeration is **proven** complete. Rows the enumeration treats as zero (norm at most ``1e-12`` times
the largest, :mod:`.patterns`) are excluded from both sides: they are always active there.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

__all__ = ["CountBudgetExceeded", "certified_signs", "count_chambers", "integer_rows", "prove_complete"]

_U = 2.0**-53
#: Exact counting costs about ``m^(rank − 1)`` integer operations; beyond this budget no proof is attempted.
COUNT_BUDGET = 3_000_000


def _canonical(v: tuple[int, ...]) -> tuple[int, ...]:
    """``v`` divided by the gcd of its entries, first non-zero entry positive (one key per hyperplane)."""
    g = math.gcd(*v)
    first = next(x for x in v if x)
    if first < 0:
        g = -g
    return tuple(x // g for x in v)


def integer_rows(X: np.ndarray) -> list[tuple[int, ...]]:
    """The distinct hyperplanes ``{x_iᵀu = 0}`` of the non-zero rows of ``X`` as reduced integer normals (exact)."""
    keys: dict[tuple[int, ...], None] = {}
    for row in np.asarray(X, dtype=float):
        if not np.any(row):
            continue
        ratios = [float(x).as_integer_ratio() for x in row]
        den = max(d for _, d in ratios)  # powers of two: each divides the largest
        keys[_canonical(tuple(n * (den // d) for n, d in ratios))] = None
    return list(keys)


class CountBudgetExceeded(Exception):
    """The exact chamber count needed more integer work than its budget (no proof is attempted)."""


def count_chambers(normals: list[tuple[int, ...]], budget: int | None = None) -> int:
    """Exact number of chambers of the central arrangement with the given distinct integer normals.

    ``budget`` caps the work (restricted normals formed, summed over the recursion): beyond it
    :class:`CountBudgetExceeded` is raised. The cost follows the *exact* rank of the normals, which a
    floating-point rank can understate (near rank-deficient data), so the cap is what bounds it.

    Examples
    --------
    >>> count_chambers([(1, 0), (0, 1), (1, 1)])      # three lines through the origin of R^2
    6
    >>> count_chambers([(1, 0, 0), (0, 1, 0), (0, 0, 1)])   # the coordinate octants
    8
    """
    left = [math.inf if budget is None else int(budget)]
    return _count(normals, left)


def _count(normals: list[tuple[int, ...]], left: list[float]) -> int:
    if not normals:
        return 1
    k = len(normals[0])
    if k == 1:
        return 2
    if k == 2:
        return 2 * len(normals)
    total = 1
    for j, h in enumerate(normals):
        if j == 0:
            total += 1
            continue
        left[0] -= j
        if left[0] < 0:
            raise CountBudgetExceeded("the exact chamber count needs more than its budget of integer work")
        p = min((q for q in range(k) if h[q]), key=lambda q: abs(h[q]))
        restricted = {_canonical(tuple(h[p] * v[q] - h[q] * v[p] for q in range(k) if q != p))
                      for v in normals[:j]}
        total += _count(list(restricted), left)
    return total


def certified_signs(X: np.ndarray, U: np.ndarray) -> np.ndarray:
    """``sign(U Xᵀ)`` (P × N, entries −1, 0, +1) decided without rounding error.

    Entries that the floating-point error bound decides are read from the product; the others are
    computed exactly in rational arithmetic.
    """
    X = np.asarray(X, dtype=float)
    U = np.asarray(U, dtype=float)
    d = X.shape[1]
    S = U @ X.T
    bound = 2.0 * (d + 2) * _U * (np.abs(U) @ np.abs(X).T) + 2.0 * d * 2.0**-1074
    signs = np.sign(S).astype(np.int8)
    for p, i in zip(*np.nonzero(np.abs(S) <= bound)):
        exact = sum((Fraction(float(a)) * Fraction(float(b)) for a, b in zip(U[p], X[i])), Fraction(0))
        signs[p, i] = (exact > 0) - (exact < 0)
    return signs


def prove_complete(X: np.ndarray, nonzero: np.ndarray, pats: np.ndarray, pts: np.ndarray,
                   budget: int = COUNT_BUDGET) -> tuple[np.ndarray, bool, str]:
    """Check ``(pats, pts)`` against the exact chamber count of the rows ``X[nonzero]``.

    Parameters
    ----------
    X : ndarray (N, d)
    nonzero : ndarray of int
        The rows that define hyperplanes (the others are always active).
    pats : ndarray of bool (P, N)
        The enumerated patterns; ``pts[p]`` is meant to lie strictly inside the chamber of ``pats[p]``.
    pts : ndarray (P, d)

    Returns
    -------
    (pats, proven, reason)
        ``pats`` with each row whose point certifies a different pattern replaced by the certified one
        (a point realises its certified pattern exactly); ``proven`` whether the distinct certified
        chamber patterns are as many as the exact count; ``reason`` one line.
    """
    normals = integer_rows(X[nonzero])
    m = len(normals)
    rank = int(np.linalg.matrix_rank(X[nonzero])) if m else 0
    # a quick refusal from the floating-point rank; the count itself stops at the budget, since near
    # rank-deficient data has a larger exact rank (and cost) than the floating-point one says
    if m and float(m) ** max(rank - 1, 1) > budget:
        return pats, False, f"no completeness proof: {m} hyperplanes of rank {rank} exceed the exact-count budget"
    try:
        exact = count_chambers(normals, budget=budget)
    except CountBudgetExceeded:
        return pats, False, (f"no completeness proof: counting the chambers of {m} hyperplanes exceeded the "
                             f"exact-count budget ({budget}; floating-point rank {rank}, the exact rank is larger)")
    pats = pats.copy()
    if not m:
        return pats, len(pats) >= 1, "no hyperplanes: one chamber"
    signs = certified_signs(X[nonzero], pts)
    interior = (signs != 0).all(axis=1)
    certified = signs > 0
    changed = interior & (pats[:, nonzero] != certified).any(axis=1)
    rows = np.flatnonzero(changed)
    for p in rows:
        pats[p, nonzero] = certified[p]
    found = len({c.tobytes() for c in np.packbits(certified[interior], axis=1)})
    if found == exact:
        return pats, True, f"proven: {found} certified chambers = the exact count"
    return pats, False, (f"not proven: {found} certified chambers of {exact} (exact count; "
                         f"{int((~interior).sum())} points on a hyperplane)")
