"""``nnls`` on block subproblems: many nonnegative least-squares problems that share one Gram matrix.

A factor block of a nonnegative factorization is, row by row (or column by column), the problem

.. math::

    \\min_{x \\ge lb} \\; \\tfrac12 x^\\top G x + q_i^\\top x \\qquad (i = 1, \\dots, r)

with one ``k × k`` positive semidefinite ``G`` shared by every row
(:meth:`~multiconvex.subproblem.BlockSubproblem.shared_gram`). This backend solves all rows exactly
by *block principal pivoting* (Kim & Park, "Fast nonnegative matrix factorization: an active-set-like
method and comparisons", SIAM J. Sci. Comput. 33(6), 2011): each row keeps a passive set ``F`` (the
coordinates free to move), solves ``G_FF x_F = −q_F`` and exchanges every coordinate that violates
``x_F ≥ 0`` or ``∇_A ≥ 0`` at once (with Kim & Park's backup rule against cycling). Rows that share a
passive set are solved together with one Cholesky factor and many right-hand sides; the rest in one
batched solve. Warm starts (the previous value of the block) give the passive sets, so a block near
convergence is solved in one or two exchanges.

The answer is checked, not assumed: primal feasibility, dual feasibility (``∇_A ≥ 0``) and
complementarity (``∇_F = 0``) per row, relative to the row's scale; a block passes only if every row
does. A coordinate with no curvature (``G_jj = 0``: a dead component) is fixed at its bound when its
gradient is nonnegative and proves the block unbounded otherwise. General finite lower bounds are a
shift (``x = lb + z``); upper bounds and linear constraints are not taken (``accepts`` says no).

Examples
--------
>>> import numpy as np
>>> from multiconvex.subproblem import BlockSubproblem, KronTerm, make_slots
>>> G = np.array([[2.0, 0.5], [0.5, 1.0]])
>>> q = np.array([-1.0, 1.0, -2.0, -1.0])     # two rows, column-major: q[:, 0] = (-1, 1), q[:, 1] = (-2, -1)
>>> sub = BlockSubproblem(make_slots([("W", (2, 2))]), [KronTerm(0, 0, None, G)], q, lb=np.zeros(4))
>>> out = NnlsQP().solve(sub, {}, None)
>>> out.status, out.x.reshape(2, 2, order="F").round(6).tolist()
('optimal', [[0.0, 2.0], [0.0, 1.0]])
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np
import scipy.linalg as la
from scipy import optimize

from multiconvex.subproblem import BlockSubproblem

from . import status as st
from .base import Backend
from .closed_form import solve_psd
from .matrix import MatrixOutcome, MatrixSolver

__all__ = ["NnlsBackend", "NnlsQP", "NnlsReport", "nnls_shared_gram"]

#: Rows are solved through the inverses of their distinct passive sets when there are at least this many rows
#: per distinct set (digits, k = 10: 1,797 rows, a few hundred sets); else one solve per row.
SHARED_PATTERNS = 1.5

#: Up to this many components, or this many rows, the rows' systems are embedded in ``k × k`` ones (identity
#: on the active set) and solved in one batched call; beyond, each row solves a system of size
#: ``min(|F|, |A|)``, batched by size.
SMALL_K = 12
SMALL_ROWS = 256

#: The range-space form (through ``G⁻¹``) is used only when ``G``'s reciprocal condition number is above this:
#: its rounding error grows with the condition number, while the passive systems' grows only with theirs.
RCOND_INVERSE = 1e-7

#: Batched solves are done in chunks of this many rows (the embedded systems take ``r·k²`` floats).
CHUNK = 4096

#: Exchange rounds of a pivoting pass before the rows still infeasible go to Lawson and Hanson's method
#: (:func:`_lawson_hanson`): well-conditioned rows finish in 6-10 (cold starts, digits, k = 10-64), while on a
#: singular ``G`` (NMF at ``n_components`` above the data's rank) pivoting can cycle for hundreds of rounds
#: (digits at the defaults: 1,500 of 1,797 rows still infeasible after 330 rounds, 17 s; Lawson-Hanson solved all
#: of them in 0.6 s). A round costs about a tenth of a Lawson-Hanson solve per row.
PIVOT_ROUNDS = 30

#: Relative tolerance of the KKT check (per row, against the row's scale).
KKT_TOL = 1e-9

#: A pivot exchange needs a violation beyond this (relative, per row): rounding must not make rows cycle.
EXCHANGE_TOL = 1e-13


class NnlsReport:
    """What :func:`nnls_shared_gram` found: the solution, whether the KKT check passed, and how."""

    __slots__ = ("X", "status", "kkt", "iterations", "unbounded_rows", "failed_rows", "how")

    def __init__(self, X: np.ndarray, status: str, kkt: float, iterations: int, unbounded_rows: np.ndarray,
                 failed_rows: np.ndarray, how: str):
        self.X = X
        self.status = status
        self.kkt = kkt
        self.iterations = iterations
        self.unbounded_rows = unbounded_rows
        self.failed_rows = failed_rows
        self.how = how


def nnls_shared_gram(G: np.ndarray, Q: np.ndarray, warm: np.ndarray | None = None, *, max_iter: int | None = None,
                     tol: float = KKT_TOL) -> NnlsReport:
    """Solve ``min ½ xᵀ G x + q_iᵀ x  s.t.  x ≥ 0`` for every row ``q_i`` of ``Q`` (block principal pivoting).

    Parameters
    ----------
    G : ndarray of shape (k, k)
        Symmetric positive semidefinite, shared by every row.
    Q : ndarray of shape (r, k)
        One linear term per row.
    warm : ndarray of shape (r, k), optional
        A previous solution: its positive entries start the passive sets.
    max_iter : int, optional
        Exchange rounds of each pivoting pass (default :data:`PIVOT_ROUNDS`); the rows then left infeasible are
        solved by Lawson and Hanson's method, and rows that still fail the KKT check make the block fail.
    tol : float
        Relative tolerance of the final KKT check.

    Returns
    -------
    NnlsReport
        ``X`` (r × k, nonnegative), ``status`` (``optimal``, ``unbounded`` or ``numerical_error``),
        ``kkt`` (the largest relative KKT residual over rows).

    Examples
    --------
    >>> rep = nnls_shared_gram(np.eye(2), np.array([[-1.0, 2.0], [3.0, -4.0]]))
    >>> rep.status, rep.X.tolist()
    ('optimal', [[1.0, 0.0], [0.0, 4.0]])
    """
    G = np.asarray(G, dtype=float)
    Q = np.asarray(Q, dtype=float)
    r, k = Q.shape
    X = np.zeros((r, k))
    empty = np.zeros(0, dtype=np.intp)
    if r == 0 or k == 0:
        return NnlsReport(X, st.OPTIMAL, 0.0, 0, empty, empty, "empty")
    max_iter = PIVOT_ROUNDS if max_iter is None else int(max_iter)
    gmax = float(np.abs(G).max(initial=0.0))
    # coordinates with no curvature: only an exactly zero row/column of G (then e_j with q_j < 0 is an exact
    # direction of unboundedness); a tiny but nonzero diagonal (a near-dead NMF component) is curvature, and its
    # possibly huge solution is left to the pivoting and the KKT check (a failure there is no proof)
    flat = ~(G != 0.0).any(axis=0)
    unbounded_rows = np.flatnonzero((Q[:, flat] < 0).any(axis=1)) if flat.any() else empty
    live = ~flat
    F = (warm > 0) if warm is not None else np.zeros((r, k), dtype=bool)
    F = F & live[None, :]
    row_scale = np.maximum(np.abs(Q).max(axis=1), np.finfo(float).tiny)

    Ginv = _inverse_if_well_conditioned(G) if live.all() else None
    it, n_solves, unfinished = _pivot(G, Ginv, Q, F, np.arange(r), X, live, row_scale, gmax, max_iter)
    kkt_rows = _kkt_residual(G, Q, X, row_scale, gmax, live)
    failed = np.setdiff1d(np.flatnonzero(kkt_rows > tol), unbounded_rows)
    # rows whose pivoting ended but whose answer fails the check: shared inverses or range-space solves lost
    # accuracy; redo them, each on its G_FF (rows still pivoting at the last round go to Lawson-Hanson below)
    redo = np.setdiff1d(failed, unfinished)
    if redo.size:
        it2, n2, _ = _pivot(G, None, Q, F, redo, X, live, row_scale, gmax, max_iter, careful=True)
        it, n_solves = it + it2, n_solves + n2
        kkt_rows[failed] = _kkt_residual(G, Q[failed], X[failed], row_scale[failed], gmax, live)
        failed = np.setdiff1d(np.flatnonzero(kkt_rows > tol), unbounded_rows)
    how = f"block principal pivoting, {it} exchange round(s)"
    how += f" ({n_solves} batched solve(s))"
    if failed.size:  # pivoting cycles (a singular G, from a warm start): Lawson and Hanson's method on those rows
        before, kkt_before = X[failed].copy(), kkt_rows[failed]
        n_lh = _lawson_hanson(G, Q, X, failed, live)
        kkt_rows[failed] = _kkt_residual(G, Q[failed], X[failed], row_scale[failed], gmax, live)
        worse = kkt_rows[failed] > kkt_before  # (a row's least-squares form can be worse: keep the better answer)
        X[failed[worse]], kkt_rows[failed[worse]] = before[worse], kkt_before[worse]
        failed = np.setdiff1d(np.flatnonzero(kkt_rows > tol), unbounded_rows)
        how += f"; {n_lh} row(s) by Lawson-Hanson (scipy.optimize.nnls)"
    if unbounded_rows.size:
        return NnlsReport(X, st.UNBOUNDED, float(kkt_rows.max(initial=0.0)), it, unbounded_rows, failed, how)
    status = st.OPTIMAL if failed.size == 0 else st.NUMERICAL_ERROR
    return NnlsReport(X, status, float(kkt_rows.max(initial=0.0)), it, empty, failed, how)


def _pivot(G: np.ndarray, Ginv: np.ndarray | None, Q: np.ndarray, F: np.ndarray, todo: np.ndarray, X: np.ndarray,
           live: np.ndarray, row_scale: np.ndarray, gmax: float, max_iter: int,
           careful: bool = False) -> tuple[int, int]:
    """Block principal pivoting on the rows ``todo`` (updates ``F`` and ``X`` in place); returns (rounds, solves,
    the rows still infeasible when the rounds ran out)."""
    k = G.shape[0]
    alpha = np.full(Q.shape[0], 3, dtype=np.int64)
    beta = np.full(Q.shape[0], k + 1, dtype=np.int64)
    it = n_solves = 0
    while todo.size and it < max_iter:
        it += 1
        n_solves += _solve_passive(G, Ginv, Q, F, todo, X, careful)
        Xt = X[todo]
        Yt = Xt @ G + Q[todo]
        Ft = F[todo]
        thr = (EXCHANGE_TOL * np.maximum(row_scale[todo], gmax * np.abs(Xt).max(axis=1)))[:, None]
        # x in its own units: clipping a passive x_j = −δ to 0 moves the gradient by at most ‖G‖_max δ
        infeasible = (Ft & (Xt < -thr / max(gmax, np.finfo(float).tiny))) | (~Ft & (Yt < -thr) & live[None, :])
        ninf = infeasible.sum(axis=1)
        keep = ninf > 0
        todo, infeasible, ninf = todo[keep], infeasible[keep], ninf[keep]
        if not todo.size:
            break
        a, b = alpha[todo], beta[todo]
        better = ninf < b
        full = better | (a >= 1)  # Kim & Park: exchange every infeasible coordinate while it helps
        beta[todo] = np.where(better, ninf, b)
        alpha[todo] = np.where(better, 3, np.where(full, a - 1, a))
        flip = infeasible.copy()
        backup = np.flatnonzero(~full)
        if backup.size:  # their backup rule against cycling: flip only the last infeasible coordinate
            last = k - 1 - np.argmax(infeasible[backup, ::-1], axis=1)
            flip[backup] = False
            flip[backup, last] = True
        F[todo] ^= flip
    # the passive sets are final (or out of rounds): x on the active set is exactly its bound, and a passive
    # x_j within rounding below zero is clipped (zero is then optimal for it too; the KKT check judges)
    X[~F] = 0.0
    np.maximum(X, 0.0, out=X)
    return it, n_solves, todo  # todo: empty unless the rounds ran out


def _lawson_hanson(G: np.ndarray, Q: np.ndarray, X: np.ndarray, rows: np.ndarray, live: np.ndarray) -> int:
    """The rows ``rows`` that block principal pivoting left failing, each solved again by Lawson and Hanson's
    active-set method (:func:`scipy.optimize.nnls`, robust where ``G`` is singular and pivoting from a warm start
    cycles: NMF at ``n_components`` above the data's rank) on the same problem as least squares over the live
    coordinates, ``min ½‖A x − b‖²`` with ``AᵀA = G`` and ``Aᵀb = −q`` (``A`` from ``G``'s eigendecomposition, its
    rounding-level eigenvalues dropped); the flat coordinates stay 0. That form leaves out ``q``'s component along the
    dropped directions: where it matters the answer fails the caller's KKT check, which judges every row on the
    true ``G`` and ``q``. Updates ``X`` in place; returns the number of rows solved."""
    idx = np.flatnonzero(live)
    if not idx.size:
        return 0
    s, V = np.linalg.eigh(G[np.ix_(idx, idx)])
    keep = s > idx.size * np.finfo(float).eps * s.max(initial=0.0)  # numpy's matrix_rank tolerance
    if not keep.any():
        return 0
    root = np.sqrt(s[keep])
    scale = 1.0 / float(root.max())  # A and b scaled alike (the same x): SciPy 1.12-1.14's nnls has an absolute
    A = (scale * root)[:, None] * V[:, keep].T  # tolerance, which failed on small-magnitude data
    done = 0
    for i in rows.tolist():
        q = Q[i, idx]
        try:
            x, _ = optimize.nnls(A, -scale * (V[:, keep].T @ q) / root, maxiter=50 * idx.size)
        except RuntimeError:  # its iteration limit (older SciPy raises): the row stays as it was
            continue
        X[i] = 0.0
        X[i, idx] = x
        done += 1
    return done


def _inverse_if_well_conditioned(G: np.ndarray) -> np.ndarray | None:
    """``G⁻¹`` when ``G`` is safely positive definite (reciprocal condition above :data:`RCOND_INVERSE`), else None."""
    try:
        c = la.cho_factor(G, lower=True, check_finite=False)
        rcond, info = la.lapack.dpocon(c[0], float(np.abs(G).sum(axis=0).max(initial=0.0)), uplo="L")
    except la.LinAlgError:
        return None
    if info != 0 or rcond <= RCOND_INVERSE:
        return None
    return la.cho_solve(c, np.eye(G.shape[0]), check_finite=False)


def _kkt_residual(G: np.ndarray, Q: np.ndarray, X: np.ndarray, row_scale: np.ndarray, gmax: float,
                  live: np.ndarray) -> np.ndarray:
    """Per row: the largest of ``|∇_j|`` where ``x_j > 0`` (complementarity) and ``−∇_j`` where ``x_j = 0``
    (dual feasibility), relative to ``max(|q|, ‖G‖_max ‖x‖_∞)``; primal feasibility holds by construction."""
    Y = X @ G + Q
    pos = X > 0
    resid = np.where(pos, np.abs(Y), np.maximum(-Y, 0.0))
    resid[:, ~live] = np.where(pos[:, ~live], resid[:, ~live], 0.0)  # flat coordinates: checked as unbounded
    scale = np.maximum(row_scale, gmax * X.max(axis=1))
    return resid.max(axis=1) / scale


def _solve_passive(G: np.ndarray, Ginv: np.ndarray | None, Q: np.ndarray, F: np.ndarray, rows: np.ndarray,
                   X: np.ndarray, careful: bool = False) -> int:
    """``X[i, F_i] = −G[F_i, F_i]⁻¹ q_i[F_i]`` and ``X[i, ~F_i] = 0`` for every ``i`` in ``rows``.

    Each row costs a solve of size ``min(|F_i|, |A_i|)``: with few free coordinates the passive system
    ``G_FF`` itself; with few active ones (and ``G⁻¹`` known, i.e. ``G`` well conditioned) the range-space
    form ``x = z − (G⁻¹)_{:A} μ``, ``(G⁻¹)_{AA} μ = z_A``, ``z = −G⁻¹ q``. Rows of one size are gathered
    into one batched solve. Returns the number of batched solves."""
    k = G.shape[0]
    Fr = F[rows]
    if k <= 62 and not careful:  # passive sets as integer codes; rows that share one share its inverse
        codes = Fr @ (np.int64(1) << np.arange(k, dtype=np.int64))
        uniq, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
        if k <= SMALL_K or rows.size <= SMALL_ROWS:
            row_cost = float(rows.size * k**3)  # the embedded k × k systems below
        else:
            nf = Fr.sum(axis=1)
            row_cost = float(np.sum((np.minimum(nf, k - nf) if Ginv is not None else nf) ** 3.0))
        # flops, roughly: one k×k inverse per distinct passive set, against one solve per row
        if SHARED_PATTERNS * uniq.size <= rows.size and uniq.size * k**3 <= row_cost:
            Fu = Fr[first]
            Minv = _embedded_inverses(G, Fu)
            rhs = -Q[rows] * Fr
            xs = np.einsum("rij,rj->ri", Minv[inverse.ravel()], rhs)
            xs[~Fr] = 0.0
            X[rows] = xs
            return 1
    if k <= SMALL_K or rows.size <= SMALL_ROWS:  # one batched solve of the embedded k × k systems
        for start in range(0, rows.size, CHUNK):
            idx = rows[start:start + CHUNK]
            f = Fr[start:start + CHUNK]
            Ff = f.astype(float)
            M = G[None, :, :] * Ff[:, :, None] * Ff[:, None, :]
            diag = np.arange(k)
            M[:, diag, diag] += 1.0 - Ff
            xs = _batched_solve(M, -Q[idx] * Ff, careful)
            xs[~f] = 0.0
            X[idx] = xs
        return -(-rows.size // CHUNK)
    nf = Fr.sum(axis=1)
    schur = (k - nf < nf) if Ginv is not None else np.zeros(rows.size, dtype=bool)
    n_solves = 0
    for s in np.unique(nf[~schur]):
        sel = np.flatnonzero(~schur & (nf == s))
        idx = rows[sel]
        X[idx] = 0.0
        if s == 0:
            continue
        cols = np.nonzero(Fr[sel])[1].reshape(-1, s)  # row-major: each row's free coordinates in order
        for start in range(0, idx.size, CHUNK):
            part = slice(start, start + CHUNK)
            c = cols[part]
            M = G[c[:, :, None], c[:, None, :]]
            b = -np.take_along_axis(Q[idx[part]], c, axis=1)
            X[idx[part, None], c] = _batched_solve(M, b, careful)
            n_solves += 1
    if schur.any():
        sel_all = np.flatnonzero(schur)
        assert Ginv is not None
        Z = -Q[rows[sel_all]] @ Ginv
        Mu = np.zeros_like(Z)  # the multipliers μ, scattered to their active coordinates
        na = k - nf[sel_all]
        for a in np.unique(na):
            if a == 0:
                continue
            sub_sel = np.flatnonzero(na == a)
            act = np.nonzero(~Fr[sel_all[sub_sel]])[1].reshape(-1, a)
            for start in range(0, sub_sel.size, CHUNK):
                part = sub_sel[start:start + CHUNK]
                c = act[start:start + CHUNK]
                S = Ginv[c[:, :, None], c[:, None, :]]
                Mu[part[:, None], c] = _batched_solve(S, np.take_along_axis(Z[part], c, axis=1), careful)
                n_solves += 1
        xs = Z - Mu @ Ginv  # x = z − (G⁻¹)_{:A} μ for every row at once (G⁻¹ is symmetric)
        xs[~Fr[sel_all]] = 0.0
        X[rows[sel_all]] = xs
    return n_solves


def _embedded_inverses(G: np.ndarray, Fu: np.ndarray) -> np.ndarray:
    """For each passive set ``f`` (rows of ``Fu``): the inverse of ``G_ff`` embedded in ``k × k`` (identity on
    the active coordinates), batched; a singular one is redone with the least-norm solve."""
    u, k = Fu.shape
    Ff = Fu.astype(float)
    M = G[None, :, :] * Ff[:, :, None] * Ff[:, None, :]
    diag = np.arange(k)
    M[:, diag, diag] += 1.0 - Ff
    eye = np.eye(k)
    # no residual check here (a batched product per set cost as much as the inverses): the rows' KKT check
    # judges the answer, and rows that fail it are solved again one system each, with a residual check
    try:
        Minv = np.linalg.inv(M)
        ok = np.isfinite(Minv).all(axis=(1, 2))
    except np.linalg.LinAlgError:  # some passive block exactly singular: numpy refuses the whole stack
        Minv = np.zeros((u, k, k))
        ok = np.zeros(u, dtype=bool)
    for i in np.flatnonzero(~ok):
        Minv[i] = solve_psd(M[i], eye)[0]
    return Minv


def _batched_solve(M: np.ndarray, b: np.ndarray, careful: bool = False) -> np.ndarray:
    """``M_i⁻¹ b_i`` for a stack of symmetric PSD systems. A singular stack, or with ``careful`` a system
    whose solve leaves a residual above rounding, is redone one system at a time with the least-norm solve
    (the fast path leaves accuracy to the rows' KKT check, which sends failing rows back here carefully)."""
    try:
        x = np.linalg.solve(M, b[:, :, None])[:, :, 0]
        ok = np.isfinite(x).all(axis=1)
        if careful:
            xz = np.where(ok[:, None], x, 0.0)
            resid = np.abs(np.einsum("rij,rj->ri", M, xz) - b).max(axis=1)
            scale = np.maximum(np.abs(b).max(axis=1), np.abs(M).max(axis=(1, 2)) * np.abs(xz).max(axis=1))
            ok &= resid <= 1e-10 * np.maximum(scale, np.finfo(float).tiny)
    except np.linalg.LinAlgError:  # some system exactly singular: numpy refuses the whole stack
        x = np.zeros(b.shape)
        ok = np.zeros(b.shape[0], dtype=bool)
    for i in np.flatnonzero(~ok):
        x[i] = solve_psd(M[i], b[i])[0]
    return x


class NnlsBackend(Backend):
    """Registry entry for :class:`NnlsQP` (numpy and scipy only: always installed).

    It has no cvxpy or Pyomo route, so it declares no whole-problem classes: it solves block
    subproblems only, where the dispatcher asks :class:`NnlsQP` (class ``QP``, shared Gram matrix,
    lower bounds only) whether it fits.
    """

    name = "nnls"
    cvxpy_name = None
    pyomo_name = None
    modules = ("scipy",)
    distribution = "scipy"
    classes: ClassVar[frozenset[str]] = frozenset()
    scope = "block subproblems only: QPs with a shared Gram matrix and finite lower bounds (NMF factor blocks)"


class NnlsQP(MatrixSolver):
    """Block subproblems that are batched NNLS: one slot, a shared Gram matrix, finite lower bounds only."""

    name = "nnls"
    classes = frozenset({"QP"})
    max_auto_size: ClassVar[int | None] = None
    takes: ClassVar[str] = ("one slot whose Hessian is a Gram matrix shared by its rows or columns, finite lower "
                            "bounds and no other constraint (a nonnegative factorization's factor block)")

    def accepts(self, sub: BlockSubproblem, *, auto: bool) -> bool:
        if sub.problem_class != "QP" or sub.m or sub.lb is None or sub.shared_gram() is None:
            return False
        if sub.ub is not None and not bool(np.all(sub.ub == np.inf)):
            return False
        return bool(np.all(np.isfinite(sub.lb)))

    def solve(self, sub: BlockSubproblem, options: dict[str, Any], warm: np.ndarray | None,
              state: dict | None = None) -> MatrixOutcome:
        t0 = time.perf_counter()
        shared = sub.shared_gram()
        assert shared is not None  # accepts() checked it
        side, G = shared
        shape = sub.slots[0].shape
        # to rows: "rows" has gradient X G + Q over the slot's rows; "cols" has G X + Q over its columns
        def rows_of(v: np.ndarray) -> np.ndarray:
            M = np.asarray(v, dtype=float).reshape(shape, order="F")
            return M if side == "rows" else M.T

        Q = rows_of(sub.q)
        LB = rows_of(sub.lb)
        shifted = bool(np.any(LB != 0.0))
        Qz = Q + LB @ G if shifted else Q  # x = lb + z, z >= 0
        Wz = None if warm is None else rows_of(warm) - LB
        rep = nnls_shared_gram(G, Qz, Wz, max_iter=options.get("max_iter"), tol=float(options.get("tol", KKT_TOL)))
        Xr = rep.X + LB if shifted else rep.X
        x = (Xr if side == "rows" else Xr.T).ravel(order="F")
        info = {"kkt": rep.kkt, "failed_rows": rep.failed_rows.size}
        how = f"{rep.how}; shared {G.shape[0]}x{G.shape[0]} Gram matrix ({side}); KKT residual {rep.kkt:.2g}"
        wall = time.perf_counter() - t0
        if rep.status == st.UNBOUNDED:
            return MatrixOutcome(st.UNBOUNDED, None, wall, how, rep.iterations, info)
        if rep.status != st.OPTIMAL:
            return MatrixOutcome(rep.status, None, wall, how + f"; {rep.failed_rows.size} row(s) fail the KKT check",
                                 rep.iterations, info, proof=False)
        # at an NNLS optimum ∇_F = 0 and z_A = 0, so zᵀ G z = −q_zᵀ z: the value needs no product with G
        value = float(0.5 * np.sum(Qz * rep.X) + np.sum(Q * LB) + 0.5 * np.sum(LB * (LB @ G)) + sub.c) if shifted \
            else float(0.5 * np.sum(Q * rep.X) + sub.c)
        return MatrixOutcome(st.OPTIMAL, x, wall, how, rep.iterations, info, value=value)
