"""Clarabel on block subproblems: the QP in the block's own variables, as Clarabel's cone form.

``l ≤ Ax ≤ u`` and the bounds become zero-cone rows (``l == u``) and nonnegative-cone rows
(``u − Ax ≥ 0``, ``Ax − l ≥ 0``). The solver is kept in the caller's workspace and updated in
place while the sparsity pattern stays the same (:class:`ClarabelProblem`).

Examples
--------
>>> import numpy as np
>>> from multiconvex.subproblem import BlockSubproblem
>>> sub = BlockSubproblem.from_dense(np.eye(2), np.array([1.0, -1.0]), lb=np.zeros(2))
>>> ClarabelQP().solve(sub, {}, None).x.round(6).tolist()
[0.0, 1.0]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from multiconvex.subproblem import BlockSubproblem

from .clarabel_native import ClarabelProblem, nonneg
from .matrix import MatrixOutcome, MatrixSolver


def zero(m: int):
    import clarabel  # where used: availability checks must not load the solver

    return clarabel.ZeroConeT(int(m))


def cone_rows(sub: BlockSubproblem) -> tuple[sp.csc_matrix, np.ndarray, int, int]:
    """``(A, b, n_zero, n_nonneg)`` with ``b − Ax`` in (zero cone) × (nonnegative cone).

    Shared by the conic backends (Clarabel here; the same rows suit SCS/ECOS-style forms).
    """
    rows, rhs, eq_rows, eq_rhs = [], [], [], []
    mats = []
    if sub.m:
        mats.append((sub.A, sub.l, sub.u))
    if sub.has_bounds:
        lb, ub = sub.box()
        mats.append((sp.identity(sub.n, format="csr"), lb, ub))
    for M, low, up in mats:
        M = sp.csr_matrix(M)
        eq = low == up
        if eq.any():
            eq_rows.append(M[eq])
            eq_rhs.append(up[eq])
        fu = ~eq & np.isfinite(up)
        fl = ~eq & np.isfinite(low)
        if fu.any():
            rows.append(M[fu])
            rhs.append(up[fu])
        if fl.any():
            rows.append(-M[fl])
            rhs.append(-low[fl])
    n_zero = int(sum(r.shape[0] for r in eq_rows))
    n_nonneg = int(sum(r.shape[0] for r in rows))
    blocks = eq_rows + rows
    A = sp.vstack(blocks, format="csc") if blocks else sp.csc_matrix((0, sub.n))
    b = np.concatenate(eq_rhs + rhs) if blocks else np.zeros(0)
    return sp.csc_matrix(A), b, n_zero, n_nonneg


class ClarabelQP(MatrixSolver):
    name = "clarabel"
    classes = frozenset({"EQP", "QP", "LP"})

    def solve(self, sub: BlockSubproblem, options: dict[str, Any], warm: np.ndarray | None,
              state: dict | None = None) -> MatrixOutcome:
        state = {} if state is None else state
        problem = state.get("clarabel")
        if problem is None or state.get("clarabel_options") != options:
            problem = state["clarabel"] = ClarabelProblem({"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10,
                                                           "tol_feas": 1e-10, **options})
            state["clarabel_options"] = dict(options)
        A, b, n_zero, n_nonneg = cone_rows(sub)
        cones = ([zero(n_zero)] if n_zero else []) + ([nonneg(n_nonneg)] if n_nonneg else [])
        P = sp.triu(sub.P_sparse(), format="csc")
        sol = problem.solve(P, sub.q, A, b, cones)
        return MatrixOutcome(sol.status, sol.x, min(sol.solve_time, sol.wall_time), sol.native_status,
                             sol.iterations, {"reused": sol.reused}, proof=not sol.native_status.startswith("Almost"))
