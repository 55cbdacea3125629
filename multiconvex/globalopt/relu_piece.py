"""The convex programs of two-layer ReLU local descent as matrices, built without a modeling layer.

:class:`.relu_problem.ReLUGrowProblem` solves two convex programs per local-descent iteration on the
current pieces (activation patterns ``D_j``, output signs ``s_j``), at unit scale (``y/σ``, ``λ/σ``):

* the **piece program** (group lasso, an SOCP; the loss by its second-order-cone epigraph):
  ``min ½‖y − Σ_j s_j D_j X w_j‖² + λ Σ_j ‖w_j‖  s.t.  (2D_j − I) X w_j ≥ 0``;
* the **hidden block** (a QP, α fixed): ``min ½‖y − Σ_j α_j D_j X u_j‖² + (λ/2)‖u‖²`` on the same cones.

Through cvxpy every call re-compiled the problem (the patterns change the data, and with them the
canonicalisation): most of grow's time at N ≤ 100. Here each program is written straight into the
backend's standard form. The piece program goes to Clarabel's matrix interface
(:class:`multiconvex.solvers.clarabel_native.ClarabelProblem`, one kept per number of units: the
sparsity pattern depends on the shapes only, so later solves re-use the KKT structure through
Clarabel's ``update``); the hidden block is a :class:`multiconvex.subproblem.BlockSubproblem` for the
dispatcher (:func:`multiconvex.solvers.solve_subproblem`), which picks the active-set QP solver for
small dense blocks.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

from multiconvex.errors import InvalidInputError
from multiconvex.solvers import solve_subproblem
from multiconvex.solvers.clarabel_native import ClarabelProblem, nonneg, second_order
from multiconvex.solvers.dispatch import Plan
from multiconvex.subproblem import BlockSubproblem

__all__ = ["PiecePrograms"]


def _cones(X: np.ndarray, D: np.ndarray) -> sp.csr_matrix:
    """``blockdiag((2D_j − I) X)`` (rN × rd), every entry of X stored so the pattern depends on shapes only."""
    r = D.shape[0]
    N, d = X.shape
    blocks = np.where(D, 1.0, -1.0)[:, :, None] * X[None, :, :]          # r × N × d
    rows = np.repeat(np.arange(r * N), d)
    cols = (np.arange(r)[:, None, None] * d + np.arange(d)[None, None, :]).repeat(N, axis=1).reshape(-1)
    return sp.csr_matrix((blocks.reshape(-1), (rows, cols)), shape=(r * N, r * d))


class PiecePrograms:
    """The piece program and the hidden-block QP of one data set, kept between solves.

    Parameters
    ----------
    X : ndarray (N, d)
    plan : Plan
        The dispatcher's plan for the hidden-block QP (resolved once by the caller).
    options : dict, optional
        Clarabel settings for the piece program.
    """

    def __init__(self, X: np.ndarray, plan: Plan, options: dict | None = None):
        self.X = X
        self.plan = plan
        self.options = dict(options or {})
        try:   # refuse unknown Clarabel settings before any solve
            ClarabelProblem(self.options)
        except ValueError as exc:
            raise InvalidInputError(f"solver_options={self.options!r} for Clarabel's matrix interface: {exc}") from None
        self._clarabel: dict = {}   # r -> ClarabelProblem; ("structure", r) -> the piece program's sparsity

    def _piece_structure(self, r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
        """The constraint matrix's fixed sparsity for ``r`` units: ``(perm, indices, indptr, fixed, shape)``.

        The entries are generated in one fixed order (cone rows, norm rows, loss rows); ``perm`` maps that
        order to CSC order, so each solve only fills a data vector (no sparse-matrix assembly).
        """
        key = ("structure", r)
        if key not in self._clarabel:
            X = self.X
            N, d = X.shape
            n = r * d + r + 1
            # cone rows: row j·N + i, columns j·d + c: value (2D_ji − 1) x_ic (negated)
            cr = np.repeat(np.arange(r * N), d)
            cc = (np.arange(r)[:, None, None] * d + np.arange(d)[None, None, :]).repeat(N, axis=1).reshape(-1)
            # norm rows: (t_j, w_j), value −1 each
            base = r * N
            nr = base + np.arange(r * (d + 1))
            nc = np.concatenate([np.concatenate([[r * d + j], np.arange(j * d, (j + 1) * d)]) for j in range(r)])
            # loss rows: two rows on s, then y − A w (N × rd, dense)
            lb = base + r * (d + 1)
            lr = np.concatenate([[lb, lb + 1], np.repeat(lb + 2 + np.arange(N), r * d)])
            lc = np.concatenate([[n - 1, n - 1], np.tile(np.arange(r * d), N)])
            rows = np.concatenate([cr, nr, lr])
            cols = np.concatenate([cc, nc, lc])
            perm = np.lexsort((rows, cols))
            indptr = np.searchsorted(cols[perm], np.arange(n + 1)).astype(np.int64)
            h = 1.0 / np.sqrt(2.0)
            fixed = np.concatenate([-np.ones(r * (d + 1)), [-h, -h]])
            self._clarabel[key] = (perm, rows[perm].astype(np.int64), indptr, fixed, (lb + 2 + N, n))
        return self._clarabel[key]

    def piece(self, y: np.ndarray, lam: float, D: np.ndarray, sign: np.ndarray
              ) -> tuple[np.ndarray | None, str, float]:
        """Solve the group-lasso piece program; ``(W (r × d) or None, status, solve time)``.

        Written as a pure SOCP in ``x = (w, t, s)``: ``min s + λ Σ t_j`` with ``‖w_j‖ ≤ t_j`` and the
        squared loss by its epigraph ``‖y − A w‖² ≤ 2s``, i.e. ``((s+1)/√2, (s−1)/√2, y − A w)`` in a
        second-order cone. No ``AᵀA`` is formed: its squared condition number cost the interior-point
        method digits a near-interpolating fit needs.
        """
        X = self.X
        r = D.shape[0]
        N, d = X.shape
        perm, indices, indptr, fixed, shape = self._piece_structure(r)
        A = (sign[:, None, None] * D[:, :, None] * X[None, :, :]).transpose(1, 0, 2).reshape(N, r * d)
        cone = -(np.where(D, 1.0, -1.0)[:, :, None] * X[None, :, :]).reshape(-1)   # −C, row-major per unit
        data = np.concatenate([cone, fixed, A.reshape(-1)])[perm]
        Acon = sp.csc_array((data, indices, indptr), shape=shape)
        n = shape[1]
        q = np.concatenate([np.zeros(r * d), np.full(r, lam), [1.0]])
        h = 1.0 / np.sqrt(2.0)
        b = np.concatenate([np.zeros(r * N + r * (d + 1)), [h, -h], y])
        solver = self._clarabel.get(r)
        if solver is None:
            solver = self._clarabel[r] = ClarabelProblem(self.options)
        sol = solver.solve(sp.csc_array((n, n)), q, Acon, b,
                           [nonneg(r * N)] + [second_order(d + 1)] * r + [second_order(N + 2)])
        if sol.x is None or sol.status != "optimal":
            return None, sol.native_status, sol.solve_time
        return sol.x[: r * d].reshape(r, d), sol.native_status, sol.solve_time

    def hidden(self, y: np.ndarray, lam: float, D: np.ndarray, alpha: np.ndarray, warm: np.ndarray | None = None
               ) -> tuple[float, str, float]:
        """Optimum of the hidden-block QP (α fixed) and ``(value, status, solve time)``; ``nan`` on failure."""
        X = self.X
        r = D.shape[0]
        N, d = X.shape
        A = (alpha[:, None, None] * D[:, :, None] * X[None, :, :]).transpose(1, 0, 2).reshape(N, r * d)
        P = A.T @ A + lam * np.eye(r * d)
        sub = BlockSubproblem.from_dense(P, -(A.T @ y), 0.5 * float(y @ y), A=_cones(X, D),
                                         l=np.zeros(r * N), u=np.full(r * N, np.inf))
        t0 = time.perf_counter()
        sol = solve_subproblem(sub, self.plan, warm=warm, key=("hidden", r))
        if sol.x is None or sol.status != "optimal":
            return float("nan"), sol.status, time.perf_counter() - t0
        return float(sol.value), sol.status, sol.solve_time
