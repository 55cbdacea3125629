"""``lstsq`` on block subproblems: equality-constrained quadratics in closed form.

Unconstrained blocks are solved by one Cholesky factorisation; when every row (or
column) of a matrix variable shares one Gram matrix (``P = kron(G, I)``, the factor
blocks of a least-squares factorization) that is a single ``k × k`` factorisation and
one product with its inverse for all rows. Equality constraints go through the KKT system;
inconsistent ones are proven so by a Farkas ray checked here (:func:`farkas_certificate`), so
``infeasible`` from this backend is a proof. A singular ``P`` gets the least-norm minimiser when
the gradient can vanish and ``unbounded`` when it cannot (checked on the residual, not assumed).

Examples
--------
>>> import numpy as np
>>> from multiconvex.subproblem import BlockSubproblem, half_quadratic
>>> sub = BlockSubproblem.from_dense(np.diag([2.0, 4.0]), np.array([-2.0, -4.0]))
>>> ClosedForm().solve(sub, {}, None).x.round(12).tolist()
[1.0, 1.0]
"""

from __future__ import annotations

import math
import threading
import time
from fractions import Fraction
from typing import Any, ClassVar

import numpy as np
import scipy.linalg as la
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from multiconvex.subproblem import BlockSubproblem, half_quadratic

from . import status as st
from .exact_rays import unbounded_exactly
from .matrix import MatrixOutcome, MatrixSolver

#: Dense factorisations up to this many variables; sparse LU above.
DENSE_LIMIT = 3000

#: A Cholesky factor whose reciprocal condition estimate is below this goes to the
#: eigendecomposition: rounding can let Cholesky "succeed" on a singular PSD matrix with a
#: tiny pivot, and its answer is then an arbitrary (often huge) minimiser, not the least-norm one.
RCOND_SCREEN = 1e-10

#: Margin of a Farkas ray of inconsistent equalities (:func:`farkas_certificate`): ``‖Aᵀy‖_∞ · max(1, ‖x_ls‖_1)``
#: at most this fraction of ``bᵀy``.
FARKAS_RTOL = 1e-6

#: Largest ``rows² · columns`` for which :func:`inconsistent_exactly` settles a Farkas ray in exact arithmetic
#: (rational Gaussian elimination; beyond it no proof is claimed and the fallback list runs).
EXACT_WORK = 50_000

_POTRF, _POCON, _POTRS = la.get_lapack_funcs(("potrf", "pocon", "potrs"), dtype=np.float64)

#: Eigenvalues at most ``SINGULAR_RTOL * n * λmax`` count as zero (those of a singular ``BᵀB``
#: formed in floating point stay below ``n·eps·λmax``).
SINGULAR_RTOL = 16 * np.finfo(float).eps

_UNIT_ROUNDOFF = np.finfo(float).eps / 2

#: ``2⁻¹⁰⁷⁴``, the smallest subnormal double: twice the absolute error a product may lose to gradual underflow.
_UNDERFLOW = 2.0 ** -1074


class ClosedForm(MatrixSolver):
    name = "lstsq"
    classes = frozenset({"EQP"})
    uses_warm = False  # one factorisation: nothing to start from
    #: "auto" takes equality-constrained blocks only up to this size (their KKT system is solved densely:
    #: 3.7 s for a 2,500-variable factor block with one equality, where Clarabel took 5 ms)
    max_auto_kkt: ClassVar[int] = 400

    def accepts(self, sub: BlockSubproblem, *, auto: bool) -> bool:
        if auto and sub.m and sub.n + sub.m > self.max_auto_kkt:
            return False
        return super().accepts(sub, auto=auto)

    def solve(self, sub: BlockSubproblem, options: dict[str, Any], warm: np.ndarray | None,
              state: dict | None = None) -> MatrixOutcome:
        t0 = time.perf_counter()
        tol = float(options.get("tol", 1e-8))
        shared = sub.shared_gram() if sub.m == 0 else None
        if shared is not None:
            fused = self._shared_gram_solve(sub, shared, tol, t0)
            if fused is not None:
                return fused
        if sub.m == 0:
            x, how = self._unconstrained(sub)
        else:
            x, how = self._kkt(sub)
        # the residual of the optimality conditions decides, whatever the factorisation said
        px = sub.Px(x)
        grad = px + sub.q
        if sub.m:
            lam = self._multipliers(sub, grad)
            grad = grad + sub.A.T @ lam
            feas = _abs_max(sub.A @ x - sub.l)
            feas_scale = max(1.0, _abs_max(sub.l))
        else:
            feas, feas_scale = 0.0, 1.0
        resid = _abs_max(grad)
        proof = True
        value = float(half_quadratic(x, px) + sub.q @ x + sub.c)  # sub.value(x), P x reused
        # the residual against tol · max(1, |q|, |Px|), the scale found only as far as the test needs it;
        # (NaN fails every comparison, and any inf or NaN in x makes the value inf or NaN)
        if feas <= tol * feas_scale and np.isfinite(value) and (
                resid <= tol or resid <= tol * max(_abs_max(sub.q), _abs_max(px))):
            status = st.OPTIMAL
        elif not np.all(np.isfinite(x)):
            status = st.NUMERICAL_ERROR
        elif sub.m and farkas_certificate(sub) is not None:
            status = st.INFEASIBLE  # proven: a verified Farkas ray of the inconsistent equalities
        elif sub.m:
            # inconsistent equalities without a verified ray, or an inaccurate KKT solve: not a proof either way
            status, proof = (st.INFEASIBLE, False) if feas > 1e-6 else (st.NUMERICAL_ERROR, True)
        elif self._unbounded_direction(sub, grad):
            status = st.UNBOUNDED  # proven exactly: P d = 0 and qᵀd < 0 along d = −(Px + q), projected
        else:
            status = st.NUMERICAL_ERROR  # ill-conditioned, not unbounded: let a fallback try
        ok = status == st.OPTIMAL
        return MatrixOutcome(status, x if ok else None, time.perf_counter() - t0, how, info={"residual": resid},
                             value=value if ok else None, value_exact=True, proof=proof)

    @staticmethod
    def _shared_gram_solve(sub: BlockSubproblem, shared: tuple[str, np.ndarray], tol: float,
                           t0: float) -> MatrixOutcome | None:
        """An unconstrained block with one Gram matrix ``G`` (``k × k``) shared by every row (column) of its
        one slot: ``X = −G⁻¹Qᵀ`` through the inverse from the Cholesky factor (as :func:`solve_psd` does
        for many right-hand sides), verified on ``k × k`` numbers only (:func:`inverse_residual_bound`):
        the residual ``G X + Qᵀ`` of the optimality conditions is at most ``β · max|q|`` entrywise, and
        ``β ≤ tol`` passes the test :meth:`solve` applies to the residual it computes (``≤ tol · max|q|``).
        It also proves ``G`` nonsingular (``β`` bounds ``‖G·Minv − I‖_∞`` for the computed inverse ``Minv``, and
        a matrix within distance ``< 1`` of ``I`` is invertible), so the minimiser is
        unique: the condition screen of :func:`solve_psd`, which keeps singular matrices off the Cholesky
        route so that they get the least-norm minimiser, is not needed here.
        The value is ``½ xᵀPx + qᵀx + c`` from ``P x = G X``, as ``sub.value(x)`` computes it.
        ``None`` (the general path decides, with its own residual check) when the Cholesky factorisation
        fails, there are no more right-hand sides than ``k``, or the bound is above ``tol`` (or ``½``).
        ``P x`` goes into a scratch array kept per thread (:func:`_scratch`): the same numbers as a fresh array, and
        the next step finds it warm in the cache."""
        side, G = shared
        slot = sub.slots[0]
        Q = sub.q.reshape(slot.shape, order="F")
        Qt = Q.T if side == "rows" else Q  # the right-hand sides' layout: k × m (a view of q, no copy)
        k = G.shape[0]
        if Qt.shape[1] <= k:
            return None
        Minv = _cholesky_inverse(G)
        if Minv is None:
            return None  # not positive definite: the general path finds the least-norm point or the proof
        # any entry of q is a lower bound of max|q|, which is enough for the bound (no pass over q; the last one
        # too, as a row or column of zeros in the data makes the first one 0)
        enough = min(tol, 0.5)
        beta = inverse_residual_bound(G, Minv, abs(float(Qt[0, 0])) or abs(float(Qt[-1, -1])) or _abs_max(sub.q),
                                      enough)
        if not beta <= enough:  # (NaN fails) ill-conditioned or singular: the general path decides
            return None
        np.negative(Minv, out=Minv)  # (−Minv) Qᵀ = Minv (−Qᵀ) in the same rounding: a negation is exact
        Xt = Minv @ Qt
        GX = np.matmul(G, Xt, out=_scratch(Xt.shape))
        if side == "rows":  # Xt and GX are C-ordered k × m: their C order is x's (F order of the m × k X)
            x, px = Xt.ravel(), GX.ravel()
        else:
            x, px = Xt.ravel(order="F"), GX.ravel(order="F")
        value = float(half_quadratic(x, px) + sub.q @ x + sub.c)  # as sub.value(x) computes it
        if not math.isfinite(value):
            return None
        return MatrixOutcome(st.OPTIMAL, x, time.perf_counter() - t0, _shared_how(k, side),
                             info={"residual_bound": beta}, value=value, value_exact=True, proof=True)

    @staticmethod
    def _unbounded_direction(sub: BlockSubproblem, grad: np.ndarray) -> bool:
        """Whether ``d = −grad`` (the residual of a least-norm solve) proves the quadratic unbounded below, decided
        in exact arithmetic (:func:`.exact_rays.unbounded_exactly`): ``d`` moved exactly into the null space of
        ``P`` must have ``qᵀd < 0``. A strictly convex block whose smallest eigenvalue is below rounding of the
        largest fails it and is reported as a numerical error instead; so is one too large to decide exactly.

        A direction proves unboundedness only beside a feasible point: here the block has no constraints (every
        point is feasible), and a block with equality rows or bounds is refused (its equalities may contradict
        each other: :func:`farkas_certificate` decides those)."""
        if sub.m or sub.has_bounds:
            return False
        return bool(unbounded_exactly(sub.P_sparse(), sub.q, None, 0, (), -grad))

    @staticmethod
    def _unconstrained(sub: BlockSubproblem) -> tuple[np.ndarray, str]:
        shared = sub.shared_gram()
        if shared is not None:
            side, G = shared
            slot = sub.slots[0]
            Q = sub.q.reshape(slot.shape, order="F")
            rhs = -Q.T if side == "rows" else -Q
            X, how = solve_psd(G, rhs)
            X = X.T if side == "rows" else X
            return X.ravel(order="F"), f"{how} of the shared {G.shape[0]}x{G.shape[0]} Gram matrix ({side})"
        if sub.n <= DENSE_LIMIT:
            return solve_psd(sub.P_dense(), -sub.q)
        P = sub.P_sparse()
        return np.asarray(spla.spsolve(P.tocsc(), -sub.q)).ravel(), "sparse LU"

    @staticmethod
    def _kkt(sub: BlockSubproblem) -> tuple[np.ndarray, str]:
        n, m = sub.n, sub.m
        K = sp.bmat([[sub.P_sparse(), sub.A.T], [sub.A, None]], format="csc")
        rhs = np.concatenate([-sub.q, sub.l])
        if n + m <= DENSE_LIMIT:
            # the least-norm solution of the KKT system has the least-norm x among the minimisers
            # (null(P) ∩ null(A) is part of null(K)); the cutoff must drop rounding-level singular values
            sol, _, rank, _ = la.lstsq(K.toarray(), rhs, cond=SINGULAR_RTOL * (n + m), check_finite=False)
            how = "KKT system (dense)" if rank == n + m else "KKT system (dense, least-norm: singular)"
        else:
            sol = np.asarray(spla.spsolve(K, rhs)).ravel()
            how = "KKT system (sparse LU)"
        return sol[:n], how

    @staticmethod
    def _multipliers(sub: BlockSubproblem, grad: np.ndarray) -> np.ndarray:
        # least-squares multipliers: the best Aᵀλ against the gradient
        At = sub.A.T.toarray() if sub.n * sub.m <= 4e6 else None
        if At is None:
            return np.asarray(spla.lsqr(sub.A.T, -grad, atol=1e-14, btol=1e-14)[0])
        return la.lstsq(At, -grad, check_finite=False)[0]


#: How a shared-Gram solve is reported (:attr:`MatrixOutcome.native_status`), by ``(k, side)``.
_SHARED_HOW: dict[tuple[int, str], str] = {}

#: Largest scratch array kept (entries); larger solves use fresh arrays.
_SCRATCH_LIMIT = 1 << 20

_scratch_local = threading.local()


def _shared_how(k: int, side: str) -> str:
    how = _SHARED_HOW.get((k, side))
    if how is None:
        how = _SHARED_HOW[(k, side)] = f"cholesky of the shared {k}x{k} Gram matrix ({side}), verified inverse"
    return how


def _scratch(shape: tuple[int, int]) -> np.ndarray:
    """A scratch array of ``shape`` (C order) for a shared-Gram solve's ``P x``: kept per thread for the last two
    shapes (a Gauss–Seidel run alternates between two blocks), fresh above :data:`_SCRATCH_LIMIT` entries. Only
    for numbers that do not leave the solve."""
    if shape[0] * shape[1] > _SCRATCH_LIMIT:
        return np.empty(shape)
    kept = getattr(_scratch_local, "kept", None)
    if kept is None:
        kept = _scratch_local.kept = {}
    buf = kept.get(shape)
    if buf is None:
        if len(kept) >= 2:
            kept.pop(next(iter(kept)))
        buf = kept[shape] = np.empty(shape)
    return buf


def _abs_max(v: np.ndarray) -> float:
    """``max |v|`` (0 for an empty ``v``) in two passes without a temporary of ``|v|``."""
    if v.size == 0:
        return 0.0
    return float(max(v.max(), -v.min()))


def farkas_certificate(sub: BlockSubproblem) -> np.ndarray | None:
    """A verified proof that the equalities ``A x = b`` of ``sub`` (``b = l = u``) have no solution, else ``None``.

    The residual ``r = b − A x_ls`` of the least-squares solution is orthogonal to the range of ``A``, so
    ``y = r / max|r|`` has ``Aᵀy = 0`` and ``bᵀy = ‖r‖²/max|r| > 0``: any solution ``x`` would give
    ``bᵀy = (Aᵀy)ᵀx``. In floating point ``Aᵀy`` is small, not zero; the ray is accepted when it is
    small against ``bᵀy`` with a wide margin: ``‖Aᵀy‖_∞ · max(1, ‖x_ls‖_1) ≤ FARKAS_RTOL · bᵀy``. That screen
    alone is not a proof (a solution may exist that is merely huge), so a ray that passes it is returned
    only when exact rational elimination proves there is no solution (:func:`inconsistent_exactly`); beyond
    :data:`EXACT_WORK` nothing is proven (the dispatcher then tries the next backend, else reports a numerical
    error, never 'infeasible').

    Examples
    --------
    >>> sub = BlockSubproblem.from_dense(np.eye(2), np.zeros(2), A=np.array([[1.0, 1.0], [1.0, 1.0]]),
    ...                                  l=np.array([1.0, 2.0]), u=np.array([1.0, 2.0]))
    >>> farkas_certificate(sub).round(12).tolist()
    [-1.0, 1.0]
    """
    if not sub.m or sub.l is None or sub.u is None or not np.array_equal(sub.l, sub.u) or sub.has_bounds:
        return None
    A, b = sub.A, np.asarray(sub.l, dtype=float)
    if not np.all(np.isfinite(b)):
        return None
    if sub.n * sub.m <= 4e6:
        x_ls = la.lstsq(A.toarray(), b, check_finite=False)[0]
    else:
        x_ls = np.asarray(spla.lsqr(A, b, atol=1e-14, btol=1e-14)[0])
    r = b - A @ x_ls
    size = _abs_max(r)
    if not np.isfinite(size) or size == 0.0:
        return None
    y = r / size
    bty = float(b @ y)
    aty = _abs_max(np.asarray(A.T @ y))
    if bty > 0 and aty * max(1.0, float(np.abs(x_ls).sum())) <= FARKAS_RTOL * bty:
        if inconsistent_exactly(A, b):  # only an exact decision is a proof (a huge solution may exist)
            return y
    return None


def inconsistent_exactly(A: np.ndarray | sp.spmatrix, b: np.ndarray) -> bool | None:
    """Whether ``A x = b`` has no solution, decided in exact rational arithmetic (every float is a rational);
    ``None`` when the system is too large for that (:data:`EXACT_WORK`).

    A float screen cannot decide it: ``A = [[1, 1], [1, 1 + 2⁻⁵²]]``, ``b = (1, 2)`` has the exact solution
    ``(1 − 2⁵², 2⁵²)`` while its least-squares residual looks like a Farkas ray.

    >>> inconsistent_exactly(np.array([[1.0, 1.0], [1.0, 1.0 + 2.0**-52]]), np.array([1.0, 2.0]))
    False
    >>> inconsistent_exactly(np.array([[1.0, 1.0], [1.0, 1.0]]), np.array([1.0, 2.0]))
    True
    """
    m, n = A.shape
    if m * m * n > EXACT_WORK:
        return None
    A = A.toarray() if sp.issparse(A) else np.asarray(A)  # densified only within the size limit
    rows = [[Fraction(float(v)) for v in A[i]] + [Fraction(float(b[i]))] for i in range(m)]
    r = 0
    for c in range(n):
        piv = next((i for i in range(r, m) if rows[i][c] != 0), None)
        if piv is None:
            continue
        rows[r], rows[piv] = rows[piv], rows[r]
        p = rows[r]
        for i in range(r + 1, m):
            f = rows[i][c] / p[c]
            if f:
                rows[i] = [x - f * y for x, y in zip(rows[i], p)]
        r += 1
        if r == m:
            break
    return any(rows[i][n] != 0 for i in range(r, m))  # a zero row of A whose right-hand side is not zero


def _cholesky_inverse(M: np.ndarray) -> np.ndarray | None:
    """``M⁻¹`` from the Cholesky factor, ``None`` when the factorisation fails. No condition screen: the caller
    verifies the inverse (:func:`inverse_residual_bound`), and a bound below 1 proves ``M`` nonsingular."""
    c, info = _POTRF(M, lower=False, clean=False)
    if info != 0:
        return None
    k = M.shape[0]
    eye = _IDENTITY.get(k)  # (_identity, without the calls: this runs at every block step)
    Minv, info = _POTRS(c, eye[0] if eye is not None else _identity(k))  # potrs copies its right-hand side
    return Minv if info == 0 else None


_IDENTITY: dict[int, tuple[np.ndarray, np.ndarray]] = {}

#: The largest entry along an axis (a NaN anywhere gives NaN), without the Python wrapper of ``ndarray.max``.
_MAX = np.maximum.reduce


def _identity(k: int) -> np.ndarray:
    """The ``k × k`` identity, read-only and made once per ``k`` (a block solves with the same ``k`` every step)."""
    return _constants(k)[0]


def _constants(k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k × k`` identity and a vector of ``k`` ones, read-only, made once per ``k``."""
    hit = _IDENTITY.get(k)
    if hit is None:
        eye, ones = np.eye(k), np.ones(k)
        eye.flags.writeable = ones.flags.writeable = False
        hit = _IDENTITY[k] = (eye, ones)
    return hit


def inverse_residual_bound(G: np.ndarray, Minv: np.ndarray, rhs_max: float, enough: float = 0.0) -> float:
    """``β`` such that, for any ``B`` (``k × m``) with ``max|B| ≥ rhs_max`` and ``X = fl(Minv @ B)``, every entry of
    ``G X − B`` is at most ``β · max|B|`` in absolute value: a proof, in our own arithmetic, that the product with a
    computed inverse solves ``G X = B`` to that accuracy (``Minv`` any matrix; nothing is assumed about how it was
    computed). ``rhs_max`` is ``max|B|`` or any positive lower bound of it (a smaller one only loosens ``β``), or 0
    when ``B = 0``.

    With ``X = Minv B + Δ``, ``|Δ| ≤ γ_k |Minv||B| + k·η`` (Higham, *Accuracy and Stability*, §3.5, with gradual
    underflow: each product of a dot product may lose up to ``2⁻¹⁰⁷⁵`` absolute besides its relative rounding,
    and sums of subnormals are exact, so ``η = 2⁻¹⁰⁷⁴`` covers the ``k`` products and the roundings after
    them), the residual is ``(G Minv − I) B + G Δ``, so
    ``|G X − B| ≤ (|G Minv − I| + γ_k |G||Minv|) |B| + k·η·‖G‖_∞``; and ``E = fl(fl(G Minv) − I)`` has
    ``|G Minv − I| ≤ (|E| + γ_k |G||Minv| + k·η) / (1 − u)``. Hence
    ``β = (‖E‖_∞ + k²η + 2γ_k (‖|G||Minv|‖_∞ + k²η) + k·η·‖G‖_∞ / max|B|) / (1 − u)`` (``‖·‖_∞`` the
    largest row sum; the same sum bounds ``‖G Minv − I‖_∞``; ``‖|G||Minv|‖_∞`` is read as ``max |G| (|Minv| 1)``,
    the same number in exact arithmetic; the ``k²η`` terms cover underflow in forming these ``k × k`` numbers),
    doubled here to cover the rounding of the ``k × k`` sums themselves (relative ``≤ γ_{k+1}``, far below 1).
    The last term is the underflow of ``X``: it matters only for data at the edge of the float range
    (``G ≈ 1e300·I`` with ``B ≈ 1e-10``: ``X`` is subnormal and loses digits, ``β ≈ 1e-12``; with ``B ≈ 1e-30``
    ``X`` underflows to 0 and ``β`` is far above any tolerance, so no proof is claimed there). ``max|B| = 0``
    gives ``X = 0`` exactly (no underflow term). Cost: one ``k × k`` product and a few ``k``-vectors,
    independent of ``m``.

    ``enough``: a bound at most this is all the caller needs. The same formula with ``‖|G||Minv|‖_∞`` replaced by
    ``‖G‖_∞ ‖Minv‖_∞`` (never smaller: ``|G|(|Minv| 1) ≤ |G| 1 · max(|Minv| 1)``) takes fewer operations; it is
    returned when it is at most ``enough``, else the bound above is. A test ``β ≤ enough`` therefore passes
    exactly when it passes for the bound above.

    Examples
    --------
    >>> G = np.array([[4.0, 1.0], [1.0, 3.0]])
    >>> bool(inverse_residual_bound(G, np.linalg.inv(G), 1.0) < 1e-14)
    True
    >>> bool(inverse_residual_bound(G, np.eye(2), 1.0) > 1.0)   # not an inverse: no proof
    True
    >>> bool(inverse_residual_bound(1e300 * G, np.linalg.inv(1e300 * G), 1e-30) > 1.0)  # X would underflow
    True
    """
    k = G.shape[0]
    if k == 0:
        return 0.0
    u = _UNIT_ROUNDOFF
    gamma = k * u / (1.0 - k * u)
    eye, ones = _IDENTITY.get(k) or _constants(k)
    E = G @ Minv
    E -= eye
    # the largest row sums of |E|, |G| and |Minv| at once (numpy's max: a NaN anywhere gives NaN, never a proof)
    stacked = np.concatenate((E, G, Minv))
    e_norm, g_norm, m_norm = _MAX((np.absolute(stacked, out=stacked) @ ones).reshape(3, k), axis=1).tolist()
    tiny = k * k * _UNDERFLOW
    fixed = e_norm + tiny
    if rhs_max != 0.0:  # X = Minv·0 is exactly 0: nothing underflows
        # the ratio first: 2⁻¹⁰⁷⁴·‖G‖ rounds to 0 when k‖G‖ < ½ (a review's G = 0.3, B ≈ 1e-320 was 'proven');
        # one step up covers the rounding of the product (an overflow gives inf: no proof)
        fixed += math.nextafter(k * (g_norm / rhs_max) * _UNDERFLOW, math.inf)
    row = k * _UNDERFLOW  # the underflow of one row sum of k entries
    cheap = 2.0 * (fixed + 2.0 * gamma * ((g_norm + row) * (m_norm + row) + tiny)) / (1.0 - u)
    if cheap <= enough:
        return cheap
    size = float((np.abs(G) @ (np.abs(Minv) @ ones)).max())
    return 2.0 * (fixed + 2.0 * gamma * (size + tiny)) / (1.0 - u)


def solve_psd(M: np.ndarray, rhs: np.ndarray) -> tuple[np.ndarray, str]:
    """The least-norm solution of ``M X = rhs`` for a symmetric PSD ``M`` (least squares if none).

    Cholesky when ``M`` is safely nonsingular; otherwise an eigendecomposition that drops the
    eigenvalues at rounding level (:data:`SINGULAR_RTOL`), which gives the least-norm minimiser
    of ``½xᵀMx − rhsᵀx`` when one exists.

    Examples
    --------
    >>> x, how = solve_psd(np.array([[1.0, 1.0], [1.0, 1.0]]), np.array([2.0, 2.0]))
    >>> x.round(12).tolist(), how
    ([1.0, 1.0], 'least-norm solve (singular)')
    """
    M = np.asarray(M, dtype=float)
    # LAPACK directly: scipy's cho_factor/cho_solve wrappers cost more than a 12x12 factorisation
    c, info = _POTRF(M, lower=False, clean=False)
    if info == 0:
        rcond, info = _POCON(c, float(np.abs(M).sum(axis=0).max(initial=0.0)))
        if info == 0 and rcond > RCOND_SCREEN:
            if rhs.ndim == 2 and rhs.shape[1] > M.shape[0]:
                # many right-hand sides (the rows of a factor): the inverse of the well-conditioned k×k matrix
                # and one product, 5x faster than LAPACK's triangular solves with 600 columns at k = 12;
                # the caller's residual check still decides
                Minv, info = _POTRS(c, np.eye(M.shape[0]))
                if info == 0:
                    return Minv @ rhs, "cholesky"
            else:
                sol, info = _POTRS(c, rhs)
                if info == 0:
                    return sol, "cholesky"
    w, V = la.eigh(M, check_finite=False)
    keep = w > SINGULAR_RTOL * M.shape[0] * max(float(np.abs(w).max(initial=0.0)), np.finfo(float).tiny)
    Vk = V[:, keep]
    coef = Vk.T @ rhs
    coef = coef / (w[keep][:, None] if coef.ndim == 2 else w[keep])
    how = "eigendecomposition (ill-conditioned)" if keep.all() else "least-norm solve (singular)"
    return Vk @ coef, how
