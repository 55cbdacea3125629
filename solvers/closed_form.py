"""``lstsq`` on block subproblems: equality-constrained quadratics in closed form.

Unconstrained blocks are solved by one Cholesky factorisation; when every row (or
column) of a matrix variable shares one Gram matrix (``P = kron(G, I)``, the factor
blocks of a least-squares factorization) that is a single ``k × k`` factorisation and
one batched triangular solve for all rows. Equality constraints go through the KKT
system. A singular ``P`` gets the least-norm minimiser when the gradient can vanish and
``unbounded`` when it cannot (checked on the residual, not assumed).

Examples
--------
>>> import numpy as np
>>> from multiconvex.subproblem import BlockSubproblem
>>> sub = BlockSubproblem.from_dense(np.diag([2.0, 4.0]), np.array([-2.0, -4.0]))
>>> ClosedForm().solve(sub, {}, None).x.round(12).tolist()
[1.0, 1.0]
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np
import scipy.linalg as la
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from multiconvex.subproblem import BlockSubproblem

from . import status as st
from .matrix import MatrixOutcome, MatrixSolver

#: Dense factorisations up to this many variables; sparse LU above.
DENSE_LIMIT = 3000

#: A Cholesky factor whose reciprocal condition estimate is below this goes to the
#: eigendecomposition: rounding can let Cholesky "succeed" on a singular PSD matrix with a
#: tiny pivot, and its answer is then an arbitrary (often huge) minimiser, not the least-norm one.
RCOND_SCREEN = 1e-10

#: Eigenvalues at most ``SINGULAR_RTOL * n * λmax`` count as zero (those of a singular ``BᵀB``
#: formed in floating point stay below ``n·eps·λmax``).
SINGULAR_RTOL = 16 * np.finfo(float).eps


class ClosedForm(MatrixSolver):
    name = "lstsq"
    classes = frozenset({"EQP"})
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
        if sub.m == 0:
            x, how = self._unconstrained(sub)
        else:
            x, how = self._kkt(sub)
        # the residual of the optimality conditions decides, whatever the factorisation said
        px = sub.Px(x)
        scale = max(1.0, float(np.abs(sub.q).max(initial=0.0)), float(np.abs(px).max(initial=0.0)))
        grad = px + sub.q
        if sub.m:
            lam = self._multipliers(sub, grad)
            grad = grad + sub.A.T @ lam
            feas = float(np.abs(sub.A @ x - sub.l).max(initial=0.0))
        else:
            feas = 0.0
        resid = float(np.abs(grad).max(initial=0.0))
        tol = float(options.get("tol", 1e-8))
        proof = True
        if not np.all(np.isfinite(x)):
            status = st.NUMERICAL_ERROR
        elif resid <= tol * scale and feas <= tol * max(1.0, float(np.abs(sub.l).max(initial=0.0)) if sub.m else 1.0):
            status = st.OPTIMAL
        elif sub.m:
            # the equalities may be inconsistent, or the KKT solve inaccurate: not a proof either way
            status, proof = (st.INFEASIBLE, False) if feas > 1e-6 else (st.NUMERICAL_ERROR, True)
        elif self._unbounded_direction(sub, grad):
            status = st.UNBOUNDED  # proven: P d = 0 and qᵀd < 0 along d = −(Px + q)
        else:
            status = st.NUMERICAL_ERROR  # ill-conditioned, not unbounded: let a fallback try
        value = float(0.5 * x @ px + sub.q @ x + sub.c) if status == st.OPTIMAL else None  # sub.value(x), P x reused
        return MatrixOutcome(status, x if status == st.OPTIMAL else None, time.perf_counter() - t0, how,
                             info={"residual": resid}, value=value, proof=proof)

    @staticmethod
    def _unbounded_direction(sub: BlockSubproblem, grad: np.ndarray) -> bool:
        """Whether ``d = −grad`` (the residual of a least-norm solve) proves the quadratic unbounded below:
        ``P d ≈ 0`` relative to ``‖P‖‖d‖`` and ``qᵀd < 0``. A strictly convex but ill-conditioned block fails
        this test and is reported as a numerical error instead."""
        d = -grad
        norm_d = float(np.linalg.norm(d))
        if norm_d == 0.0:
            return False
        pd = sub.Px(d)
        probe = sub.Px(np.ones(sub.n)) if sub.n else pd
        norm_p = max(float(np.linalg.norm(probe)) / np.sqrt(max(sub.n, 1)), float(np.linalg.norm(pd)) / norm_d)
        return float(np.linalg.norm(pd)) <= 1e-9 * max(norm_p, 1e-300) * norm_d and float(sub.q @ d) < -1e-12 * (
            float(np.linalg.norm(sub.q)) * norm_d)

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
    try:
        c, lower = la.cho_factor(M, check_finite=False)
        rcond, info = la.lapack.dpocon(c, float(np.abs(M).sum(axis=0).max(initial=0.0)), uplo="L" if lower else "U")
        if info == 0 and rcond > RCOND_SCREEN:
            if rhs.ndim == 2 and rhs.shape[1] > M.shape[0]:
                # many right-hand sides (the rows of a factor): the inverse of the well-conditioned k×k matrix
                # and one product, 5x faster than LAPACK's triangular solves with 600 columns at k = 12;
                # the caller's residual check still decides
                Minv = la.cho_solve((c, lower), np.eye(M.shape[0]), check_finite=False)
                return Minv @ rhs, "cholesky"
            return la.cho_solve((c, lower), rhs, check_finite=False), "cholesky"
    except la.LinAlgError:
        pass
    w, V = la.eigh(M, check_finite=False)
    keep = w > SINGULAR_RTOL * M.shape[0] * max(float(np.abs(w).max(initial=0.0)), np.finfo(float).tiny)
    Vk = V[:, keep]
    coef = Vk.T @ rhs
    coef = coef / (w[keep][:, None] if coef.ndim == 2 else w[keep])
    how = "eigendecomposition (ill-conditioned)" if keep.all() else "least-norm solve (singular)"
    return Vk @ coef, how
