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
* **unboundedness** of ``min ½xᵀPx + qᵀx`` on that set: ``d`` with ``P d = 0`` and ``M d = 0`` on the rows the
  float direction keeps (exactly, in the null space as above), ``M d ≤ 0`` on the other nonnegative rows,
  ``−M d`` in each second-order cone, and ``qᵀd < 0`` — all checked in integers;
* a **crossed pair**: two rows with opposite coefficients whose sides contradict (``a x ≤ u``, ``a x ≥ l > u``;
  a neighbouring piece of a ReLU unit) is a proof by itself (:func:`crossed_pair`), found without a ray.

Refusing is always safe (the dispatcher then tries the next backend), so every screen that refuses may use
floats; only an acceptance is exact. The elimination is budgeted (:data:`EXACT_WORK` big-integer operations,
about rows × columns × rank): beyond it the answer is ``None``, "undecided", and the claim is not a proof.

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
from fractions import Fraction
from math import gcd as _gcd
from typing import TypeAlias, Union

import numpy as np
import scipy.sparse as sp

#: Largest elimination, in big-integer multiply-adds (rows × columns × rank of the system eliminated), done
#: to decide one ray; beyond it the answer is ``None`` (undecided: the backend's status is a claim, not a proof).
EXACT_WORK = 200_000

#: Entries of a normalised float ray below these fractions of its largest are tried as exact zeros, in turn
#: (fewer rows first: cheaper, and an interior-point ray's tiny multipliers are rounding, not support).
SUPPORT_RTOLS = (1e-3, 1e-6, 1e-9)

#: A direction's row ``i`` of ``M d`` above ``−DIRECTION_RTOL · (|M||d|)_i`` (its own terms) is taken as an exact
#: zero (the direction is moved onto it exactly); the other rows must stay strictly inside, exactly.
DIRECTION_RTOL = 1e-7

#: Float screens, loose (an interior-point ray is accurate to ~1e-5): a direction with ``M d`` above this
#: fraction of its terms on some row, or ``‖P d‖_∞`` above this fraction of ``‖P‖_∞ ‖d‖_∞``, is refused without
#: an exact check (refusing is always safe; the exact check decides every acceptance).
SCREEN_RTOL = 1e-3

Matrix: TypeAlias = Union[np.ndarray, sp.spmatrix]  # noqa: UP007 - a runtime alias


# --------------------------------------------------------------------------------------- the row forms

def interval_rows(A: Matrix, lo: np.ndarray, hi: np.ndarray) -> tuple[Matrix, np.ndarray, int]:
    """``lo ≤ A x ≤ hi`` as ``b − M x ∈ {0}^{n_zero} × ℝ₊^{rest}``: ``(M, b, n_zero)`` (``M`` dense when ``A`` is).

    Equality rows (``lo == hi``) first, then ``A_i x ≤ hi_i`` for every finite ``hi_i``, then ``−A_i x ≤ −lo_i``
    for every finite ``lo_i`` (a crossed interval ``lo_i > hi_i`` gives both, which :func:`crossed_pair` finds).
    """
    lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    eq = lo == hi
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


def crossed_pair(M: Matrix, b: np.ndarray, n_zero: int) -> bool:
    """Whether two nonnegative rows of ``b − M x ∈ K`` contradict each other on their own: ``M_j = −M_i`` exactly
    and ``b_i + b_j < 0`` (then ``y = e_i + e_j`` is an exact certificate: ``Mᵀy = 0``, ``bᵀy < 0``), or one row
    is zero with ``b_i < 0``. Exact float comparisons (the rounded sum of two doubles has the sign of the exact
    sum). Candidates are found by one random projection (``h(−r) = −h(r)`` exactly; a pair the projection's
    rounding splits is only missed, never invented), then compared entry by entry."""
    k = M.shape[0] - n_zero
    if k <= 0:
        return False
    R = _dense(M)[n_zero:] + 0.0  # −0.0 → 0.0
    rhs = np.asarray(b, dtype=float)[n_zero:n_zero + k]
    if np.any(~R.any(axis=1) & (rhs < 0)):
        return True
    h = R @ _PROBE[: R.shape[1]] if R.shape[1] <= _PROBE.size else R @ np.resize(_PROBE, R.shape[1])
    order = np.argsort(h, kind="stable")
    hs = h[order]
    j = np.searchsorted(hs, -h)  # the first row whose hash is −h_i
    for i in np.flatnonzero((j < k) & (hs[np.minimum(j, k - 1)] == -h)):
        for jj in range(int(j[i]), k):
            r = order[jj]
            if hs[jj] != -h[i]:
                break
            if rhs[i] + rhs[r] < 0 and np.array_equal(R[r], -R[i] + 0.0):
                return True
    return False


#: Fixed random weights of :func:`crossed_pair`'s projection (irrational-looking, so that distinct rows rarely
#: collide; collisions are compared exactly anyway).
_PROBE = np.random.default_rng(20261202).uniform(0.5, 1.5, 256)


# --------------------------------------------------------------------------------------- exact integers

def _int_rows(rows: np.ndarray, groups: Sequence[Sequence[int]] | None = None) -> list[list[int]]:
    """Each row of ``rows`` (floats) times the smallest power of two that makes it integral: exact. Rows in one
    of ``groups`` share one power (a second-order cone's rows: a common positive scale keeps cone membership)."""
    return _scaled_rows(rows, groups)[0]


def _scaled_rows(rows: np.ndarray, groups: Sequence[Sequence[int]] | None = None) -> tuple[list[list[int]], list[int]]:
    """:func:`_int_rows` and, per row, the ``k`` with integer row ``= 2^k ·`` float row."""
    mant, expo = np.frexp(rows)
    m53 = (mant * 2.0**53).astype(np.int64)  # exact: |mant| < 1, 53 bits
    e = expo.astype(np.int64) - 53
    big = np.iinfo(np.int64).max
    e = np.where(m53 == 0, big, e)
    low = e.min(axis=1) if rows.shape[1] else np.zeros(rows.shape[0], dtype=np.int64)
    low = np.where(low == big, 0, low)
    for g in groups or ():
        idx = list(g)
        if idx:
            low[idx] = low[idx].min()
    out = []
    for mi, ei, li in zip(m53.tolist(), e.tolist(), low.tolist()):
        out.append([m << (x - li) if m else 0 for m, x in zip(mi, ei)])
    return out, [-int(v) for v in low]


def _null_basis(K: list[list[int]], ncols: int, work: int) -> list[list[int]] | None:
    """An integer basis of ``{z : K z = 0}``: fraction-free (Bareiss) elimination to echelon form, every entry a
    minor of ``K``, then back substitution in rationals scaled to integers (the caller verifies the result in
    integers anyway). ``None`` past ``work`` multiply-adds."""
    R = [r for r in K if any(r)]
    pivots: list[int] = []
    prev, k, spent = 1, 0, 0
    for c in range(ncols):
        if k == len(R):
            break
        p = next((i for i in range(k, len(R)) if R[i][c]), None)
        if p is None:
            continue
        spent += (len(R) - k) * (ncols - c)
        if spent > work:
            return None
        R[k], R[p] = R[p], R[k]
        Rk, pk = R[k], R[k][c]
        for i in range(k + 1, len(R)):
            f = R[i][c]
            Ri = R[i]
            R[i] = [0] * (c + 1) + [(pk * Ri[j] - f * Rk[j]) // prev for j in range(c + 1, ncols)]
        prev = pk
        pivots.append(c)
        k += 1
    pivot_set = set(pivots)
    basis = []
    for f in (c for c in range(ncols) if c not in pivot_set):
        basis.append(_back_substitute(R, pivots, f, ncols, prev))
    return basis


def _back_substitute(R: list[list[int]], pivots: list[int], f: int, ncols: int, det: int) -> list[int]:
    """The null vector of the echelon form ``R`` with free column ``f`` set to ``det`` (the last Bareiss pivot,
    which makes the others integers by Cramer's rule) and the other free columns 0; exact divisions in integers,
    rationals where one is not exact (then scaled back to integers)."""
    z = [0] * ncols
    z[f] = det
    for j in range(len(pivots) - 1, -1, -1):
        row, pc = R[j], pivots[j]
        num = -sum(row[t] * z[t] for t in range(pc + 1, ncols) if row[t] and z[t])
        q, r = divmod(num, row[pc])
        if r:
            return _back_substitute_rational(R, pivots, f, ncols)
        z[pc] = q
    return z


def _back_substitute_rational(R: list[list[int]], pivots: list[int], f: int, ncols: int) -> list[int]:
    zf: list[Fraction] = [Fraction(0)] * ncols
    zf[f] = Fraction(1)
    for j in range(len(pivots) - 1, -1, -1):
        row, pc = R[j], pivots[j]
        zf[pc] = -sum((row[t] * zf[t] for t in range(pc + 1, ncols) if row[t] and zf[t]), Fraction(0)) / row[pc]
    den = 1
    for v in zf:
        den = den * v.denominator // _gcd(den, v.denominator)
    return [int(v * den) for v in zf]


def _dense(M: Matrix) -> np.ndarray:
    return sp.csr_matrix(M).toarray() if sp.issparse(M) else np.asarray(M, dtype=float)


def _approx(v: Sequence[int]) -> tuple[np.ndarray, int]:
    """``v`` as floats times ``2^shift`` (big integers overflow a float)."""
    top = max((abs(x).bit_length() for x in v), default=0)
    shift = max(top - 60, 0)
    return np.array([float(x >> shift) if shift else float(x) for x in v]), shift


def _fit(basis: list[list[int]], target: np.ndarray) -> list[int] | None:
    """The exact vector ``Σ c_j basis_j`` (integers: scaled by a positive power of two) with floats ``c`` fitted
    to ``target`` (least squares): in the null space exactly, whatever the rounding of the fit."""
    if not basis:
        return None
    approx = [_approx(z) for z in basis]
    B = np.stack([a for a, _ in approx], axis=1)
    if len(basis) == 1:
        c = np.array([1.0 if float(B[:, 0] @ target) >= 0 else -1.0])
    else:
        c = np.linalg.lstsq(B, target, rcond=None)[0]
    if not np.all(np.isfinite(c)):
        return None
    # c_j / 2^shift_j = num_j / 2^e_j exactly; on the common denominator 2^E every coefficient is an integer
    parts = []
    for cj, (_, s) in zip(c, approx):
        num, den = float(cj).as_integer_ratio()
        parts.append((num, den.bit_length() - 1 + s))
    top = max(e for _, e in parts)
    coef = [num << (top - e) for num, e in parts]
    return [sum(cj * z[i] for cj, z in zip(coef, basis) if cj and z[i]) for i in range(len(basis[0]))]


def _ints(v: np.ndarray) -> list[int]:
    """A float vector times the smallest power of two that makes it integral (exact)."""
    return _int_rows(np.asarray(v, dtype=float)[None, :])[0]


def _dot(a: Sequence[int], b: Sequence[int]) -> int:
    return sum(x * y for x, y in zip(a, b) if x and y)


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
        Budget of the exact elimination (:data:`EXACT_WORK`).
    supports : sequence of float
        The supports tried, in turn: the entries of ``y`` above each fraction of its largest
        (:data:`SUPPORT_RTOLS`; ``0.0``: every nonzero, for an active-set solver's exact zeros).

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
    M = sp.csr_matrix(M, dtype=float) if sp.issparse(M) else np.asarray(M, dtype=float)
    b = np.asarray(b, dtype=float)
    m, n = M.shape
    if crossed_pair(M, b, n_zero):
        return True
    if y is None:
        return False
    y = np.asarray(y, dtype=float)
    scale = float(np.abs(y).max(initial=0.0))
    if y.shape != (m,) or scale == 0.0 or not np.isfinite(scale):
        return False
    y = y / scale
    n_soc = int(sum(soc_dims))
    n_lin = m - n_soc
    if np.any(y[n_zero:n_lin] < -1e-6):
        return False  # a clearly negative multiplier on an inequality: not a ray of this system
    cones, start = [], n_lin
    for d in soc_dims:
        cones.append(list(range(start, start + d)))
        start += d
    undecided = False
    tried: set[tuple[int, ...]] = set()
    for rtol in supports:
        keep = np.abs(y) > rtol
        keep[n_zero:n_lin] &= y[n_zero:n_lin] > 0
        for g in cones:
            keep[g] = keep[g].any()
        S = tuple(np.flatnonzero(keep).tolist())
        if not S or S in tried:
            continue
        tried.add(S)
        verdict = _certify_on_support(M, b, n_zero, n_lin, cones, y, list(S), work)
        if verdict:
            return True
        undecided |= verdict is None
    return None if undecided else False


def _certify_on_support(M: Matrix, b: np.ndarray, n_zero: int, n_lin: int, cones: list[list[int]],
                        y: np.ndarray, S: list[int], work: int) -> bool | None:
    """:func:`infeasible_exactly` on the rows ``S`` (the rest of the ray set to zero)."""
    n = M.shape[1]
    pos = {r: i for i, r in enumerate(S)}
    groups = [[pos[r] for r in g] for g in cones if g and g[0] in pos]
    rows = np.hstack([sp.csr_matrix(M)[S].toarray() if sp.issparse(M) else np.asarray(M)[S], b[S, None]])
    scaled, expo = _scaled_rows(rows, groups)
    s = len(S)
    Kt = [[scaled[i][j] for i in range(s)] for j in range(n)]  # Kᵀ z = 0: n equations in the s multipliers
    bs = [r[n] for r in scaled]
    kind = [0 if r < n_zero else (1 if r < n_lin else 2) for r in S]
    # integer row i is 2^k_i times float row i, so the float ray in those units is y_i / 2^k_i
    target = np.ldexp(y[S], -np.asarray(expo))
    if not np.all(np.isfinite(target)):
        return None
    if _is_certificate(Kt, bs, _ints(target), kind, groups):
        return True  # the float ray itself, read exactly
    if s * n * min(s, n) > work:
        return None
    basis = _null_basis(Kt, s, work)
    if basis is None:
        return None
    fitted = _fit(basis, target)
    return fitted is not None and _is_certificate(Kt, bs, fitted, kind, groups)


def _is_certificate(Kt: list[list[int]], bs: list[int], z: list[int], kind: list[int],
                    groups: list[list[int]]) -> bool:
    """``Kᵀz = 0``, ``z`` in the dual cone (``kind`` 0 free, 1 nonnegative, 2 a cone's row) and ``bᵀz < 0``,
    in integers."""
    if not any(z) or any(k == 1 and zi < 0 for k, zi in zip(kind, z)):
        return False
    for g in groups:
        t = z[g[0]]
        if t < 0 or t * t < sum(z[i] * z[i] for i in g[1:]):
            return False
    if _dot(z, bs) >= 0:
        return False
    return all(_dot(z, row) == 0 for row in Kt)


# --------------------------------------------------------------------------------------- unboundedness

def unbounded_exactly(P: Matrix | None, q: np.ndarray, M: Matrix | None, n_zero: int, soc_dims: Sequence[int],
                      d: np.ndarray | None, *, work: int = EXACT_WORK) -> bool | None:
    """Whether the float direction ``d`` yields an exact proof that ``min ½xᵀPx + qᵀx`` over ``b − M x ∈ K`` is
    unbounded below (given a feasible point, which the caller's status asserts).

    The proof is a ``d`` with ``P d = 0``, ``qᵀd < 0`` and ``−M d ∈ K`` (``M d = 0`` on zero rows, ``≤ 0`` on
    nonnegative rows, ``−M d`` in each second-order cone), all exact. The float ``d`` is moved, exactly, into
    the null space of ``P`` and of the rows where ``M d`` is at rounding level.

    Returns
    -------
    bool or None
        True: proven; False: ``d`` proves nothing; None: undecided (too large to settle exactly).

    Examples
    --------
    >>> unbounded_exactly(np.diag([1.0, 1e-17]), np.array([0.0, -1.0]), None, 0, (), np.array([0.0, 1.0]))
    False
    >>> unbounded_exactly(np.diag([1.0, 0.0]), np.array([0.0, -1.0]), None, 0, (), np.array([1e-12, 1.0]))
    True
    """
    q = np.asarray(q, dtype=float)
    n = q.size
    if d is None:
        return False
    d = np.asarray(d, dtype=float)
    scale = float(np.abs(d).max(initial=0.0))
    if d.shape != (n,) or scale == 0.0 or not np.isfinite(scale):
        return False
    d = d / scale
    if not float(q @ d) < 0:
        return False
    Ps = sp.csr_matrix((n, n)) if P is None else sp.csr_matrix(P, dtype=float)
    Ms = sp.csr_matrix((0, n)) if M is None else sp.csr_matrix(M, dtype=float)
    n_lin = Ms.shape[0] - int(sum(soc_dims))
    # float screens (a refusal is always safe): rows of M d and of P d at rounding level of their own terms are
    # taken as exact zeros; anything else must already have the right sign
    Md = Ms @ d
    size = np.asarray(abs(Ms) @ np.abs(d)).ravel()
    flat = (Md >= -DIRECTION_RTOL * size) & (Md <= SCREEN_RTOL * size)  # at zero, or above it by a loose ray's error
    if np.any(~flat[:n_zero] & (np.abs(Md[:n_zero]) > SCREEN_RTOL * size[:n_zero])) or \
            np.any(Md[n_zero:n_lin] > SCREEN_RTOL * size[n_zero:n_lin]):
        return False  # leaves an equality, or crosses an inequality, by far more than a ray's error
    flat[:n_zero] = True
    p_size = float(np.asarray(abs(Ps).sum(axis=1)).max(initial=0.0))  # ‖P‖_∞; ‖d‖_∞ = 1
    if float(np.abs(Ps @ d).max(initial=0.0)) > SCREEN_RTOL * p_size:
        return False  # curvature far above rounding: the objective grows along d
    keep = [i for i in range(n_lin) if flat[i] and Ms.indptr[i + 1] > Ms.indptr[i]]
    Z = sp.vstack([Ps, Ms[keep]], format="csr").toarray() if keep else Ps.toarray()
    Z = Z[np.any(Z != 0, axis=1)]
    if Z.shape[0] * n * min(Z.shape[0], n) > work:
        return None
    K = _int_rows(Z) if Z.shape[0] else []
    groups, start = [], n_lin
    for dim in soc_dims:
        groups.append(list(range(start, start + dim)))
        start += dim
    Mi = _int_rows(Ms.toarray(), groups) if Ms.shape[0] else []
    qi = _ints(q)
    if _is_direction(K, qi, Mi, n_zero, n_lin, groups, _ints(d)):
        return True  # the float direction itself, read exactly
    basis = _null_basis(K, n, work) if K else [[int(i == j) for i in range(n)] for j in range(n)]
    if basis is None:
        return None
    fitted = _fit(basis, d)
    return fitted is not None and _is_direction(K, qi, Mi, n_zero, n_lin, groups, fitted)


def _is_direction(K: list[list[int]], q: list[int], M: list[list[int]], n_zero: int, n_lin: int,
                  groups: list[list[int]], d: list[int]) -> bool:
    """``K d = 0``, ``qᵀd < 0`` and ``−M d ∈ K``, in integers (rows scaled by positive powers of two)."""
    if not any(d) or _dot(q, d) >= 0 or any(_dot(row, d) for row in K):
        return False
    Md = [_dot(row, d) for row in M]
    if any(Md[:n_zero]) or any(v > 0 for v in Md[n_zero:n_lin]):
        return False
    for g in groups:
        t = -Md[g[0]]
        if t < 0 or t * t < sum(Md[i] * Md[i] for i in g[1:]):
            return False
    return True


__all__ = ["EXACT_WORK", "crossed_pair", "infeasible_exactly", "interval_ray", "interval_rows",
           "unbounded_exactly"]
