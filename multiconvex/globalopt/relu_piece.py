"""The convex programs of two-layer ReLU local descent as matrices, built without a modeling layer.

:class:`.relu_problem.ReLUGrowProblem` solves two convex programs per local-descent iteration on the
current pieces (activation patterns ``D_j``, output signs ``s_j``), at unit scale (``y/σ``, ``λ/σ``):

* the **piece program** (group lasso, an SOCP; the loss by its second-order-cone epigraph):
  ``min ½‖y − Σ_j s_j D_j X w_j‖² + λ Σ_j ‖w_j‖  s.t.  (2D_j − I) X w_j ≥ 0``;
* the **hidden block** (a QP, α fixed): ``min ½‖y − Σ_j α_j D_j X u_j‖² + (λ/2)‖u‖²`` on the same cones.

Through cvxpy every call re-compiled the problem (the patterns change the data, and with them the
canonicalisation): most of grow's time at N ≤ 100. Here both programs are
:class:`multiconvex.subproblem.BlockSubproblem` values for the dispatcher
(:func:`multiconvex.solvers.solve_subproblem`): the piece program with second-order cone rows (class
``SOCP``: Clarabel keeps one solver per number of units in the plan's workspace; the sparsity pattern
depends on the shapes only, so later solves re-use the KKT structure through Clarabel's ``update``),
the hidden block a QP, for which the dispatcher picks the active-set solver on small dense blocks.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

from multiconvex.errors import InvalidInputError
from multiconvex.solvers import solve_subproblem
from multiconvex.solvers.clarabel_native import ClarabelProblem
from multiconvex.solvers.dispatch import Plan, make_plan
from multiconvex.subproblem import BlockSubproblem, make_slots

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
    piece_plan : Plan, optional
        The dispatcher's plan for the piece program (an SOCP); default Clarabel with ``options``.
    """

    def __init__(self, X: np.ndarray, plan: Plan, options: dict | None = None, piece_plan: Plan | None = None):
        self.X = X
        self.plan = plan
        self.options = dict(options or {})
        try:   # refuse unknown Clarabel settings before any solve
            ClarabelProblem(self.options)
        except ValueError as exc:
            raise InvalidInputError(f"solver_options={self.options!r} for Clarabel's matrix interface: {exc}") from None
        self.piece_plan = piece_plan if piece_plan is not None else make_plan("clarabel", "SOCP", self.options)
        self._structure: dict = {}   # r -> the piece program's fixed sparsity

    def _piece_structure(self, r: int) -> tuple:
        """The piece program's fixed parts for ``r`` units: ``(slots, C's CSR index arrays, the cone rows' CSR
        index arrays and fixed values, soc_dims)``; each solve only fills data vectors (no sparse assembly)."""
        if r not in self._structure:
            N, d = self.X.shape
            n = r * d + r + 1
            slots = make_slots([("w", (r * d,)), ("t", (r,)), ("s", (1,))])
            # cone rows (2D_j − I) X w_j ≥ 0: row j·N + i, columns j·d + c
            c_indices = (np.arange(r)[:, None, None] * d + np.arange(d)[None, None, :]).repeat(N, axis=1).reshape(-1)
            c_indptr = np.arange(0, r * N * d + 1, d, dtype=np.int64)
            # second-order cones: (t_j, w_j) per unit, then ((s+1)/√2, (s−1)/√2, y − A w)
            norm_cols = np.concatenate([np.concatenate([[r * d + j], np.arange(j * d, (j + 1) * d)]) for j in range(r)])
            s_indices = np.concatenate([norm_cols, [n - 1, n - 1], np.tile(np.arange(r * d), N)]).astype(np.int64)
            n_fixed = r * (d + 1) + 2
            s_indptr = np.concatenate([np.arange(n_fixed + 1), n_fixed + r * d * np.arange(1, N + 1)]).astype(np.int64)
            h = 1.0 / np.sqrt(2.0)
            fixed = np.concatenate([np.ones(r * (d + 1)), [h, h]])
            dims = (d + 1,) * r + (N + 2,)
            self._structure[r] = (slots, c_indices, c_indptr, s_indices, s_indptr, fixed, dims)
        return self._structure[r]

    def piece_subproblem(self, y: np.ndarray, lam: float, D: np.ndarray, sign: np.ndarray) -> BlockSubproblem:
        """The group-lasso piece program as an SOCP block subproblem in ``x = (w, t, s)``: ``min s + λ Σ t_j``
        with ``(2D_j − I) X w_j ≥ 0``, ``‖w_j‖ ≤ t_j`` and the squared loss by its epigraph
        ``‖y − A w‖² ≤ 2s``, i.e. ``((s+1)/√2, (s−1)/√2, y − A w)`` in a second-order cone. No ``AᵀA`` is
        formed: its squared condition number cost the interior-point method digits a near-interpolating fit
        needs."""
        X = self.X
        r = D.shape[0]
        N, d = X.shape
        slots, c_indices, c_indptr, s_indices, s_indptr, fixed, dims = self._piece_structure(r)
        n = r * d + r + 1
        A = (sign[:, None, None] * D[:, :, None] * X[None, :, :]).transpose(1, 0, 2).reshape(N, r * d)
        C = sp.csr_matrix(((np.where(D, 1.0, -1.0)[:, :, None] * X[None, :, :]).reshape(-1), c_indices, c_indptr),
                          shape=(r * N, n))
        S = sp.csr_matrix((np.concatenate([fixed, -A.reshape(-1)]), s_indices, s_indptr), shape=(s_indptr.size - 1, n))
        h = 1.0 / np.sqrt(2.0)
        b = np.concatenate([np.zeros(r * (d + 1)), [h, -h], y])
        q = np.concatenate([np.zeros(r * d), np.full(r, lam), [1.0]])
        return BlockSubproblem(slots, [], q, 0.0, A=C, l=np.zeros(r * N), u=np.full(r * N, np.inf),
                               soc_A=S, soc_b=b, soc_dims=dims)

    def piece(self, y: np.ndarray, lam: float, D: np.ndarray, sign: np.ndarray
              ) -> tuple[np.ndarray | None, str, float]:
        """Solve the group-lasso piece program (:meth:`piece_subproblem`); ``(W (r × d) or None, status, solve
        time)``."""
        r, d = D.shape[0], self.X.shape[1]
        sol = solve_subproblem(self.piece_subproblem(y, lam, D, sign), self.piece_plan, key=("piece", r))
        if sol.x is None or sol.status != "optimal":
            return None, sol.status, sol.solve_time
        return sol.x[: r * d].reshape(r, d), sol.status, sol.solve_time

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
