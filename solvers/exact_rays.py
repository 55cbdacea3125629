"""Exact re-checks of floating-point infeasibility and unboundedness rays: a proof, a refusal, or "undecided".

A backend's ray is a float vector: ``Aᵀy`` is small, not zero, and "small" cannot tell "no solution" from
"no solution of moderate size" (``x₁ + x₂ ≤ 1``, ``x₁ + (1 + 2⁻⁵²) x₂ ≥ 2`` is feasible, every solution
~10¹⁶), nor "no curvature" from "curvature below rounding" (``P = diag(1, 10⁻¹⁷)`` is strictly convex). Every
float is a rational, so the data are exact; this module turns a float ray into an exact one and checks it in
integer arithmetic:

* **infeasibility** of ``b − M x ∈ K`` (``K`` = zero cone × nonnegative orthant × second-order cones, the form
  of :func:`.clarabel_qp.cone_rows`; :func:`interval_rows` writes ``l ≤ A x ≤ u`` so): the rows ``S`` the ray
  uses are scaled to integers (by powers of 2, exactly), the null space of ``M_Sᵀ`` is found by fraction-free
  (Bareiss) elimination, the float ray is fitted in it and the fit rebuilt exactly; a vector ``z`` with
  ``M_Sᵀ z = 0`` exactly, ``z`` in the dual cone (free / ``≥ 0`` / ``t² ≥ ‖v‖², t ≥ 0``) and ``b_Sᵀ z < 0`` proves
  that no ``x`` exists (``0 = (M_Sᵀz)ᵀx = zᵀ(b_S − s) ≤ b_Sᵀz < 0`` for the slack ``s ∈ K``);
* **unboundedness** of ``min ½xᵀPx + qᵀx`` on that set needs two things (:func:`settle_unbounded_claim`): a
  descent direction of recession, ``d`` with ``P d = 0`` and ``M d = 0`` on the rows the float direction keeps
  (exactly, in the null space as above), ``M d ≤ 0`` on the other nonnegative rows, ``−M d`` in each second-order
  cone, and ``qᵀd < 0`` (:func:`unbounded_exactly`), *and* a feasible point (:func:`feasible_exactly`: a float
  point moved exactly onto its tight rows, every row then checked in integers) — a direction alone only shows the
  dual infeasible, and backends report it on empty sets too;
* a **crossed pair**: two linear inequality rows with opposite coefficients whose sides contradict (``a x ≤ u``,
  ``a x ≥ l > u``; a neighbouring piece of a ReLU unit) is a proof by itself (:func:`crossed_pair`), found
  without a ray.

Refusing is always safe (the dispatcher then tries the next backend), so every screen that refuses may use
floats; only an acceptance is exact. Each call is budgeted (:data:`EXACT_WORK`, charged by the size of the integers,
:mod:`.exact_integers`): beyond it the answer is ``None``, "undecided", and the claim is not a proof. Sparse
matrices stay sparse: only the rows a check eliminates are made dense.

Examples
--------
>>> import numpy as np
>>> A = np.array([[1.0, 1.0], [1.0, 1.0 + 2.0**-52]])          # x₁ + x₂ ≤ 1 and x₁ + (1 + 2⁻⁵²)x₂ ≥ 2
>>> M, b, n_zero = interval_rows(A, np.array([-np.inf, 2.0]), np.array([1.0, np.inf]))
>>> infeasible_exactly(M, b, n_zero, (), np.array([1.0, 1.0]))   # the float ray passes a 1e-6 test
False
>>> M, b, n_zero = interval_rows(A[[0, 0]], np.array([-np.inf, 2.0]), np.array([1.0, np.inf]))
>>> infeasible_exactly(M, b, n_zero, (), np.array([1.0, 1.0])), crossed_pair(M, b, n_zero)
(True, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias, Union

import numpy as np
import scipy.sparse as sp

from multiconvex.errors import InvalidInputError

from . import status as st
from .exact_integers import (
    Budget,
    OverBudget,
    bits_of,
    corrected_point,
    fit,
    ints,
    is_certificate,
    is_direction,
    is_point,
    null_basis,
    scaled_rows,
    scaled_sparse_rows,
)

#: Work of one exact check, in units of ~0.2 µs (charged per big-integer operation by the integers' bit sizes,
#: :class:`.exact_integers.Budget`): about a second at most. Beyond it the answer is ``None`` (undecided: the
#: backend's status is a claim, not a proof).
EXACT_WORK = 5_000_000

#: Rows whose ``|y_i| · ‖(M_i, b_i)‖_∞`` (the row's share of the certificate, whatever its scale) is below these
#: fractions of the largest are tried as exact zeros of a float ray, in turn (fewer rows first: cheaper, and an
#: interior-point ray's tiny multipliers are rounding, not support).
SUPPORT_RTOLS = (1e-3, 1e-6, 1e-9)

#: A direction's row ``i`` of ``M d`` within ``±DIRECTION_RTOL · ‖M_i‖₁ ‖d‖_∞`` is taken as an exact zero (the
#: direction is moved onto it exactly); the other rows must stay strictly inside, exactly.
DIRECTION_RTOL = 1e-7

#: Float screens, loose (an interior-point ray is accurate to ~1e-5): a direction with ``M d`` above this
#: fraction of ``‖M_i‖₁ ‖d‖_∞`` on some row, or ``‖P d‖_∞`` above this fraction of ``‖P‖_∞ ‖d‖_∞``, is refused
#: without an exact check (refusing is always safe; the exact check decides every acceptance); rows between
#: the two bands are flat (moved onto exactly).
SCREEN_RTOL = 1e-3

#: A float point's linear rows with slack below these fractions of ``|b_i| + |M_i||x|`` are made tight exactly
#: (:func:`feasible_exactly`), in turn.
TIGHT_RTOLS = (1e-9, 1e-6)

Matrix: TypeAlias = Union[np.ndarray, sp.spmatrix]  # noqa: UP007 - a runtime alias


# --------------------------------------------------------------------------------------- the row forms


def _unit_scaled(v, size: int) -> np.ndarray | None:
    """A float ray or direction ``v`` of ``size`` entries divided by its largest magnitude (a positive scale changes
    no sign condition), or ``None`` when it is missing, misshapen, zero or not finite."""
    if v is None:
        return None
    v = np.asarray(v, dtype=float)
    scale = float(np.abs(v).max(initial=0.0))
    if v.shape != (size,) or scale == 0.0 or not np.isfinite(scale):
        return None
    return v / scale

def interval_rows(A: Matrix, lo: np.ndarray, hi: np.ndarray) -> tuple[Matrix, np.ndarray, int]:
    """``lo ≤ A x ≤ hi`` as ``b − M x ∈ {0}^{n_zero} × ℝ₊^{rest}``: ``(M, b, n_zero)`` (``M`` dense when ``A`` is).

    Equality rows (``lo == hi``) first, then ``A_i x ≤ hi_i`` for every finite ``hi_i``, then ``−A_i x ≤ −lo_i``
    for every finite ``lo_i`` (a crossed interval ``lo_i > hi_i`` gives both, which :func:`crossed_pair` finds).
    An "equality" ``lo_i == hi_i == ±inf`` is no row at all: :class:`~multiconvex.errors.InvalidInputError`.
    """
    lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    eq = lo == hi
    bad = np.flatnonzero(eq & ~np.isfinite(hi))
    if bad.size:
        raise InvalidInputError(f"interval_rows: lo[{bad[0]}] == hi[{bad[0]}] == {hi[bad[0]]} is not a constraint "
                                "(an equality needs a finite value); drop the row or give finite bounds")
    up, low = ~eq & np.isfinite(hi), ~eq & np.isfinite(lo)
    rhs = np.concatenate([hi[eq], hi[up], -lo[low]])
    if sp.issparse(A):
        A = sp.csr_matrix(A, dtype=float)
        return sp.vstack([A[eq], A[up], -A[low]], format="csr"), rhs, int(eq.sum())
    A = np.asarray(A, dtype=float)
    return np.concatenate([A[eq], A[up], -A[low]]), rhs, int(eq.sum())


def interval_ray(lo: np.ndarray, hi: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """A ray ``y`` of ``lo ≤ A x ≤ hi`` (``y_i > 0`` pairs with ``hi_i``, ``y_i < 0`` with ``lo_i``, OSQP's and
    DAQP's sign) as a ray of :func:`interval_rows`' form; ``None`` when it leans on an infinite side."""
    lo, hi, y = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float), np.asarray(y, dtype=float)
    eq = lo == hi
    up, low = ~eq & np.isfinite(hi), ~eq & np.isfinite(lo)
    scale = float(np.abs(y).max(initial=0.0))
    if scale == 0.0 or not np.isfinite(scale):
        return None
    wrong = ((y > 0) & ~np.isfinite(hi)) | ((y < 0) & ~np.isfinite(lo))
    if np.any(np.abs(y[wrong]) > SUPPORT_RTOLS[-1] * scale):
        return None
    return np.concatenate([y[eq], np.maximum(y[up], 0.0), np.maximum(-y[low], 0.0)])


def _as_matrix(M: Matrix | None, n: int) -> Matrix:
    if M is None:
        return sp.csr_matrix((0, n))
    return sp.csr_matrix(M, dtype=float) if sp.issparse(M) else np.asarray(M, dtype=float)


def _rows(M: Matrix, idx: Sequence[int] | np.ndarray) -> np.ndarray:
    """The rows ``idx`` of ``M``, dense (only those: a sparse ``M`` is never densified whole)."""
    idx = np.asarray(idx, dtype=np.int64)
    return M[idx].toarray() if sp.issparse(M) else np.asarray(M)[idx]


def _row_max(M: Matrix) -> np.ndarray:
    """``‖M_i‖_∞`` per row."""
    if sp.issparse(M):
        return np.asarray(abs(M).max(axis=1).toarray()).ravel() if M.shape[1] else np.zeros(M.shape[0])
    return np.abs(M).max(axis=1, initial=0.0)


def crossed_pair(M: Matrix, b: np.ndarray, n_zero: int, soc_dims: Sequence[int] = ()) -> bool:
    """Whether two linear inequality rows of ``b − M x ∈ K`` (rows ``n_zero`` up to the second-order cones' rows)
    contradict each other on their own: ``M_j = −M_i`` exactly and ``b_i + b_j < 0`` (then ``y = e_i + e_j`` is an
    exact certificate: ``Mᵀy = 0``, ``bᵀy < 0``), or one row is zero with ``b_i < 0``. Second-order cone rows are
    never used (a cone's ``v`` rows are not nonnegative).

    Exact float comparisons (the rounded sum of two doubles has the sign of the exact sum, and is 0 only when
    the exact sum is). Rows are keyed by two random projections (``h(−r) = −h(r)`` exactly); per key only the
    tightest row is kept (duplicated rows cost nothing), and each key is looked up negated once (sorted, no
    Python loop over rows). A pair the projections' rounding splits is only missed, never invented: every
    candidate is compared entry by entry."""
    n_lin = M.shape[0] - int(sum(soc_dims))
    if n_lin - n_zero <= 0:
        return False
    R = M[n_zero:n_lin]
    if sp.issparse(R):
        R = sp.csr_matrix(R, dtype=float)
        R.eliminate_zeros()
        empty = np.diff(R.indptr) == 0
    else:
        R = np.asarray(R, dtype=float)
        empty = ~R.any(axis=1)
    rhs = np.asarray(b, dtype=float)[n_zero:n_lin]
    if np.any(empty & (rhs < 0)):
        return True
    n = R.shape[1]
    h = (R @ np.resize(_PROBE[0], n) + 0.0) + 1j * (R @ np.resize(_PROBE[1], n) + 0.0)  # −0.0 → 0.0
    order = np.lexsort((rhs, h.imag, h.real))
    hs = h[order]
    first = np.r_[True, hs[1:] != hs[:-1]]
    keys, tight, rows = hs[first], rhs[order][first], order[first]
    j = np.minimum(np.searchsorted(keys, -keys), keys.size - 1)
    for i in np.flatnonzero((keys[j] == -keys) & (tight + tight[j] < 0)):
        a, c = int(rows[i]), int(rows[j[i]])
        total = R[a] + R[c]
        if not (total.count_nonzero() if sp.issparse(total) else np.any(total)):
            return True
    return False


#: Fixed random weights of :func:`crossed_pair`'s projections (irrational-looking, so that distinct rows rarely
#: collide; collisions are compared exactly anyway).
_PROBE = np.random.default_rng(20261202).uniform(0.5, 1.5, (2, 256))


# --------------------------------------------------------------------------------------- infeasibility

def infeasible_exactly(M: Matrix, b: np.ndarray, n_zero: int, soc_dims: Sequence[int], y: np.ndarray | None,
                       *, work: int = EXACT_WORK, supports: Sequence[float] = SUPPORT_RTOLS) -> bool | None:
    """Whether the float ray ``y`` yields an exact proof that ``b − M x ∈ K`` has no solution.

    Parameters
    ----------
    M : (m, n) array or sparse matrix
        Rows: ``n_zero`` zero-cone rows, then nonnegative rows, then the second-order cones' rows (last
        ``sum(soc_dims)`` rows, each cone ``(t, v)`` with ``‖v‖ ≤ t``).
    b : (m,) array
    n_zero : int
    soc_dims : sequence of int
    y : (m,) array or None
        The backend's ray (any positive scale; ``Mᵀy ≈ 0``, ``bᵀy < 0``, ``y`` in the dual cone).
    work : int
        Budget of the whole call (:data:`EXACT_WORK`).
    supports : sequence of float
        The supports tried, in turn: the rows whose ``|y_i| · ‖(M_i, b_i)‖_∞`` is above each fraction of the
        largest (:data:`SUPPORT_RTOLS`; ``0.0``: every nonzero, for an active-set solver's exact zeros).

    Returns
    -------
    bool or None
        True: proven (an exact certificate was built from ``y``); False: ``y`` proves nothing (no certificate on
        its support); None: undecided (too large to settle exactly). A crossed pair of rows
        (:func:`crossed_pair`) is a proof whatever ``y`` is.

    Examples
    --------
    >>> M = np.array([[1.0, 1.0], [-1.0, -1.0]])       # x₁ + x₂ ≤ 1, x₁ + x₂ ≥ 2
    >>> infeasible_exactly(M, np.array([1.0, -2.0]), 0, (), np.array([0.7, 0.7000001]))
    True
    """
    M = _as_matrix(M, 0)
    b = np.asarray(b, dtype=float)
    m, n = M.shape
    if crossed_pair(M, b, n_zero, soc_dims):
        return True
    y = _unit_scaled(y, m)
    if y is None:
        return False
    n_soc = int(sum(soc_dims))
    n_lin = m - n_soc
    if np.any(y[n_zero:n_lin] < -1e-6):
        return False  # a clearly negative multiplier on an inequality: not a ray of this system
    cones, start = [], n_lin
    for d in soc_dims:
        cones.append(list(range(start, start + d)))
        start += d
    with np.errstate(divide="ignore"):  # log2(0) = −inf: a zero row or multiplier never joins a support
        weight = np.log2(np.abs(y)) + np.log2(np.maximum(_row_max(M), np.abs(b)))
    top = float(weight.max())
    if not np.isfinite(top):
        return False
    budget = Budget(work)
    undecided = False
    tried: set[tuple[int, ...]] = set()
    for rtol in supports:
        keep = (weight > top + np.log2(rtol)) if rtol > 0 else (y != 0)
        keep[n_zero:n_lin] &= y[n_zero:n_lin] > 0
        for g in cones:
            keep[g] = keep[g].any()
        S = tuple(np.flatnonzero(keep).tolist())
        if not S or S in tried:
            continue
        tried.add(S)
        try:
            if _certify_on_support(M, b, n_zero, n_lin, cones, y, list(S), budget):
                return True
        except OverBudget:
            undecided = True
            break
    return None if undecided else False


def _certify_on_support(M: Matrix, b: np.ndarray, n_zero: int, n_lin: int, cones: list[list[int]],
                        y: np.ndarray, S: list[int], budget: Budget) -> bool:
    """:func:`infeasible_exactly` on the rows ``S`` (the rest of the ray set to zero)."""
    n = M.shape[1]
    s = len(S)
    budget.charge(s * (n + 1), 64)
    pos = {r: i for i, r in enumerate(S)}
    groups = [[pos[r] for r in g] for g in cones if g and g[0] in pos]
    scaled, expo = scaled_rows(np.hstack([_rows(M, S), b[S, None]]), groups)
    Kt = [[scaled[i][j] for i in range(s)] for j in range(n)]  # Kᵀ z = 0: n equations in the s multipliers
    bs = [r[n] for r in scaled]
    kind = [0 if r < n_zero else (1 if r < n_lin else 2) for r in S]
    # integer row i is 2^k_i times float row i, so the float ray in those units is y_i / 2^k_i; exponents are
    # normalised first (the largest entry near 1) so that ldexp neither overflows nor loses the large entries
    mant, ey = np.frexp(y[S])
    e = ey.astype(np.int64) - np.asarray(expo, dtype=np.int64)
    target = np.ldexp(mant, e - int(e[mant != 0].max()))
    rows_bits = max(bits_of(r) for r in scaled)
    direct = ints(target)[0]
    budget.charge(s * n, rows_bits + bits_of(direct))
    if is_certificate(Kt, bs, direct, kind, groups):
        return True  # the float ray itself, read exactly
    basis = null_basis(Kt, s, budget)
    fitted = fit(basis, target, budget)
    if fitted is None:
        return False
    budget.charge(s * n, rows_bits + bits_of(fitted))
    return is_certificate(Kt, bs, fitted, kind, groups)


# --------------------------------------------------------------------------------------- unboundedness

def unbounded_exactly(P: Matrix | None, q: np.ndarray, M: Matrix | None, n_zero: int, soc_dims: Sequence[int],
                      d: np.ndarray | None, *, work: int = EXACT_WORK) -> bool | None:
    """Whether the float direction ``d`` yields an exact descent direction of recession of ``min ½xᵀPx + qᵀx``
    over ``b − M x ∈ K``: ``P d = 0``, ``qᵀd < 0`` and ``−M d ∈ K`` (``M d = 0`` on zero rows, ``≤ 0`` on
    nonnegative rows, ``−M d`` in each second-order cone), all exact. The float ``d`` is moved, exactly, into the
    null space of ``P`` and of the rows where ``M d`` is at rounding level (``|M_i d| ≤ DIRECTION_RTOL ‖M_i‖₁``).

    Such a ``d`` proves the problem unbounded below only together with a feasible point (it shows the dual
    infeasible; an empty set has such directions too): :func:`settle_unbounded_claim` asks for both. With no
    constraints (``M`` None or without rows) every point is feasible.

    Returns
    -------
    bool or None
        True: ``d`` is proven; False: ``d`` proves nothing; None: undecided (too large to settle exactly).

    Examples
    --------
    >>> unbounded_exactly(np.diag([1.0, 1e-17]), np.array([0.0, -1.0]), None, 0, (), np.array([0.0, 1.0]))
    False
    >>> unbounded_exactly(np.diag([1.0, 0.0]), np.array([0.0, -1.0]), None, 0, (), np.array([1e-12, 1.0]))
    True
    """
    q = np.asarray(q, dtype=float)
    n = q.size
    d = _unit_scaled(d, n)
    if d is None:
        return False
    if not float(q @ d) < 0:
        return False
    Ps = sp.csr_matrix((n, n)) if P is None else sp.csr_matrix(P, dtype=float)
    Ms = sp.csr_matrix((0, n)) if M is None else sp.csr_matrix(M, dtype=float)
    n_lin = Ms.shape[0] - int(sum(soc_dims))
    # float screens (a refusal is always safe), against ‖M_i‖₁‖d‖_∞ (‖d‖_∞ = 1): a row's own terms |M_i||d| can
    # be all rounding noise of a ray, so rows inside the band are flat (moved onto exactly), not refused
    Md = Ms @ d
    size = np.asarray(abs(Ms).sum(axis=1)).ravel()
    flat = np.abs(Md) <= DIRECTION_RTOL * size
    flat |= (Md > 0) & (Md <= SCREEN_RTOL * size)  # above zero by a loose ray's error: moved onto the row too
    if np.any(np.abs(Md[:n_zero]) > SCREEN_RTOL * size[:n_zero]) or \
            np.any(Md[n_zero:n_lin] > SCREEN_RTOL * size[n_zero:n_lin]):
        return False  # leaves an equality, or crosses an inequality, by far more than a ray's error
    flat[:n_zero] = True
    p_size = float(np.asarray(abs(Ps).sum(axis=1)).max(initial=0.0))  # ‖P‖_∞; ‖d‖_∞ = 1
    if float(np.abs(Ps @ d).max(initial=0.0)) > SCREEN_RTOL * p_size:
        return False  # curvature far above rounding: the objective grows along d
    keep = np.flatnonzero(flat[:n_lin] & (np.diff(Ms.indptr)[:n_lin] > 0))
    Zs = sp.vstack([Ps, Ms[keep]], format="csr") if keep.size else Ps
    nonzero = np.flatnonzero(np.diff(Zs.indptr) > 0)
    budget = Budget(work)
    try:
        budget.charge(nonzero.size * n + Ms.nnz, 64)
        K = scaled_rows(_rows(Zs, nonzero))[0] if nonzero.size else []
        groups, start = [], n_lin
        for dim in soc_dims:
            groups.append(list(range(start, start + dim)))
            start += dim
        Mi = scaled_sparse_rows(Ms, groups)
        qi = ints(q)[0]
        direct = ints(d)[0]
        if is_direction(K, qi, Mi, n_zero, n_lin, groups, direct, budget):
            return True  # the float direction itself, read exactly
        if not K:
            return False  # nothing to move d onto: d itself was the only candidate
        fitted = fit(null_basis(K, n, budget), d, budget)
        return fitted is not None and is_direction(K, qi, Mi, n_zero, n_lin, groups, fitted, budget)
    except OverBudget:
        return None


# --------------------------------------------------------------------------------------- feasibility

def feasible_exactly(M: Matrix | None, b: np.ndarray, n_zero: int, soc_dims: Sequence[int], x: np.ndarray | None,
                     *, work: int = EXACT_WORK) -> bool | None:
    """Whether the float point ``x`` yields an exact point of ``b − M x ∈ K``.

    The linear rows where ``x`` is tight (slack within :data:`TIGHT_RTOLS` of ``|b_i| + |M_i||x|``) and the
    equality rows are made to hold exactly: ``x`` is corrected by a rational solution of those rows' residual
    system (fraction-free elimination); every row, the cones' included, is then checked in integers at the
    corrected point. A point near a cone's boundary is not moved onto it (an interior point, such as an
    interior-point method's answer to a feasibility problem, passes).

    Returns
    -------
    bool or None
        True: a feasible point is proven; False: ``x`` shows none; None: undecided (too large to settle).

    Examples
    --------
    >>> M = np.array([[1.0, 1.0], [-1.0, -1.0]])            # x₁ + x₂ ≤ 0.1 and x₁ + x₂ ≥ 0.1
    >>> feasible_exactly(M, np.array([0.1, -0.1]), 0, (), np.array([0.05, 0.05]))
    True
    >>> feasible_exactly(M, np.array([0.1, -0.2]), 0, (), np.array([0.05, 0.1]))
    False
    """
    if x is None:
        return False
    x = np.asarray(x, dtype=float)
    b = np.asarray(b, dtype=float)
    if M is None or M.shape[0] == 0:
        return bool(np.all(np.isfinite(x)))
    Ms = sp.csr_matrix(M, dtype=float)
    m, n = Ms.shape
    if x.shape != (n,) or not np.all(np.isfinite(x)):
        return False
    n_lin = m - int(sum(soc_dims))
    slack = b - Ms @ x
    size = np.abs(b) + np.asarray(abs(Ms) @ np.abs(x)).ravel()
    groups, start = [], n_lin
    for dim in soc_dims:
        groups.append(list(range(start, start + dim)))
        start += dim
    budget = Budget(work)
    try:
        budget.charge(Ms.nnz + m, 64)
        rows = scaled_sparse_rows(sp.hstack([Ms, sp.csr_matrix(b[:, None])], format="csr"), groups)
        X, k = ints(x)
        tried: set[tuple[int, ...]] = set()
        row = np.arange(m)
        inequality = (row >= n_zero) & (row < n_lin)
        for rtol in TIGHT_RTOLS:
            if np.any(inequality & (slack < -rtol * size)):
                continue  # a linear row clearly violated: no small correction helps
            tight = np.flatnonzero((row < n_zero) | (inequality & (slack <= rtol * size)))
            key = tuple(tight.tolist())
            if key in tried:
                continue
            tried.add(key)
            point = corrected_point(rows, tight, X, k, n, budget)
            if point is not None and is_point(rows, n, n_zero, n_lin, groups, *point, budget):
                return True
        return False
    except OverBudget:
        return None


# --------------------------------------------------------------------------------------- a backend's claim

def settle_unbounded_claim(P: Matrix | None, q: np.ndarray, M: Matrix, b: np.ndarray, n_zero: int,
                           soc_dims: Sequence[int], d: np.ndarray | None, x: np.ndarray | None,
                           y: np.ndarray | None, *, work: int = EXACT_WORK) -> tuple[str | None, str]:
    """What a backend's "unbounded" (dual infeasible) claim on ``min ½xᵀPx + qᵀx`` over ``b − M x ∈ K`` is worth.

    ``d`` is the backend's direction, ``x`` a float point (from a feasibility solve, say) and ``y`` a float
    infeasibility ray (the same solve's, when it found the set empty); either may be ``None``.

    Returns
    -------
    (status, why)
        ``(status.INFEASIBLE, why)`` when the set is proven empty (a crossed pair, or ``y`` checked exactly: a
        dual-infeasibility claim on an empty set); ``(status.UNBOUNDED, why)`` when ``d`` is proven a descent
        direction of recession *and* ``x`` an exact feasible point; else ``(None, why)``: not a proof.

    Examples
    --------
    >>> M = np.array([[0.0, 1.0], [0.0, -1.0]])            # x₂ ≤ 0 and x₂ ≥ 1, minimise −x₁
    >>> settle_unbounded_claim(None, np.array([-1.0, 0.0]), M, np.array([0.0, -1.0]), 0, (),
    ...                        np.array([1.0, 0.0]), None, None)[0]
    'infeasible'
    """
    M = _as_matrix(M, np.asarray(q).size)
    if crossed_pair(M, b, n_zero, soc_dims):
        return st.INFEASIBLE, "proven infeasible instead: a crossed pair of rows"
    if y is not None and infeasible_exactly(M, b, n_zero, soc_dims, y, work=work):
        return st.INFEASIBLE, "proven infeasible instead: an exact Farkas ray"
    direction = unbounded_exactly(P, q, M, n_zero, soc_dims, d, work=work)
    if direction is None:
        return None, "undecided: the direction is too large to check exactly"
    if not direction:
        return None, "not a proof: the direction fails the exact check"
    point = feasible_exactly(M, b, n_zero, soc_dims, x, work=work)
    if point:
        return st.UNBOUNDED, "proven: an exact direction and an exact feasible point"
    why = "too large to check exactly" if point is None else "none shown exactly"
    return None, f"not a proof: the direction holds but a feasible point is {why}"


__all__ = ["EXACT_WORK", "crossed_pair", "feasible_exactly", "infeasible_exactly", "interval_ray", "interval_rows",
           "settle_unbounded_claim", "unbounded_exactly"]
