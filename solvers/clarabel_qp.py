"""Clarabel on block subproblems: the QP in the block's own variables, as Clarabel's cone form.

``l ≤ Ax ≤ u`` and the bounds become zero-cone rows (``l == u``) and nonnegative-cone rows
(``u − Ax ≥ 0``, ``Ax − l ≥ 0``); a block's second-order cones (``soc_A x + soc_b ∈ Q``, class
``SOCP``) follow as Clarabel's ``SecondOrderConeT`` rows (``soc_b − (−soc_A) x``). The solver is
kept in the caller's workspace and updated in
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

from multiconvex.subproblem import BlockSubproblem, soc_gaps

from . import status as st
from .clarabel_native import ClarabelProblem, nonneg, second_order
from .closed_form import inconsistent_exactly
from .matrix import MatrixOutcome, MatrixSolver


def zero(m: int):
    import clarabel  # where used: availability checks must not load the solver

    return clarabel.ZeroConeT(int(m))


def cone_rows(sub: BlockSubproblem) -> tuple[sp.csc_matrix, np.ndarray, int, int]:
    """``(A, b, n_zero, n_nonneg)`` with ``b − Ax`` in (zero cone) × (nonnegative cone).

    Shared by the conic backends (Clarabel here; the same rows suit SCS/ECOS-style forms). The block's
    second-order cones are not included (:func:`soc_cone_rows`).
    """
    blocks, rhs, n_zero, n_nonneg = _linear_rows(sub)
    A = sp.vstack(blocks, format="csc") if blocks else sp.csc_matrix((0, sub.n))
    b = np.concatenate(rhs) if blocks else np.zeros(0)
    return sp.csc_matrix(A), b, n_zero, n_nonneg


def soc_cone_rows(sub: BlockSubproblem) -> tuple[sp.csc_matrix, np.ndarray, int, int]:
    """:func:`cone_rows` followed by the block's second-order cone rows: ``b − Ax ∈ Q`` is
    ``soc_A x + soc_b ∈ Q``, so they are ``−soc_A``, ``soc_b`` (the last ``sub.n_soc`` rows). Explicit zeros
    of ``soc_A`` are kept, so a fixed pattern stays fixed; stacked as CSR and converted once (2.6x faster
    than a CSC stack at 40 samples)."""
    blocks, rhs, n_zero, n_nonneg = _linear_rows(sub)
    soc = sp.csr_matrix(sub.soc_A)
    blocks.append(sp.csr_matrix((-soc.data, soc.indices, soc.indptr), shape=soc.shape))
    rhs.append(sub.soc_b)
    return sp.vstack(blocks, format="csr").tocsc(), np.concatenate(rhs), n_zero, n_nonneg


def _linear_rows(sub: BlockSubproblem) -> tuple[list[sp.csr_matrix], list[np.ndarray], int, int]:
    """The zero-cone then nonnegative-cone row blocks (CSR) and right-hand sides of ``l ≤ Ax ≤ u`` and the
    bounds, with the two counts."""
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
    return eq_rows + rows, eq_rhs + rhs, n_zero, n_nonneg


#: Clarabel's tolerances on (quadratic and linear) programs without cones: tight, for block gaps near 1e-10.
QP_TOLERANCES: dict[str, float] = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10}
#: With second-order cones, Clarabel's own (1e-8): at 1e-10, 3 of 4 random SOCPs with a linear objective ended
#: ``AlmostSolved`` (tests/test_subproblem_soc.py), and ReLU grow's piece programs ran at 1e-8 before.
SOCP_TOLERANCES: dict[str, float] = {}


class ClarabelQP(MatrixSolver):
    name = "clarabel"
    classes = frozenset({"EQP", "QP", "LP", "SOCP"})

    def solve(self, sub: BlockSubproblem, options: dict[str, Any], warm: np.ndarray | None,
              state: dict | None = None) -> MatrixOutcome:
        state = {} if state is None else state
        # the time limit changes on every solve of a run with a deadline: it is set on the kept solver, not
        # part of the options that decide whether the solver is rebuilt
        settings = {k: v for k, v in options.items() if k != "time_limit"}
        problem = state.get("clarabel")
        if problem is None or state.get("clarabel_options") != settings:
            defaults = SOCP_TOLERANCES if sub.soc_dims else QP_TOLERANCES
            problem = state["clarabel"] = ClarabelProblem({**defaults, **settings})
            state["clarabel_options"] = dict(settings)
        _set_time_limit(problem, options.get("time_limit"))
        A, b, n_zero, n_nonneg = soc_cone_rows(sub) if sub.soc_dims else cone_rows(sub)
        cones = ([zero(n_zero)] if n_zero else []) + ([nonneg(n_nonneg)] if n_nonneg else [])
        if sub.soc_dims:
            cones += [second_order(d) for d in sub.soc_dims]
        P = sp.triu(sub.P_sparse(), format="csc")
        sol = problem.solve(P, sub.q, A, b, cones)
        proof = not sol.native_status.startswith("Almost") and _certificate_holds(sub, A, b, n_zero, sol)
        return MatrixOutcome(sol.status, sol.x, min(sol.solve_time, sol.wall_time), sol.native_status,
                             sol.iterations, {"reused": sol.reused}, proof=proof)


def _set_time_limit(problem: ClarabelProblem, seconds: float | None) -> None:
    """Clarabel's ``time_limit`` on ``problem``'s settings (``inf``: none), and on its kept solver, whose
    settings are a copy taken when it was built (``update(settings=...)`` leaves the data update allowed)."""
    limit = float("inf") if seconds is None else float(seconds)
    if problem.settings.time_limit == limit:
        return
    problem.settings.time_limit = limit
    solver = getattr(problem, "_solver", None)  # ClarabelProblem has no setter for one setting of a kept solver
    if solver is not None:
        solver.update(settings=problem.settings)


#: Relative tolerances of the re-checked certificates: no curvature along a ray of unboundedness (relative to
#: ‖P‖), and ‖Aᵀy‖ against |bᵀy| for a dual ray (Clarabel's own test is of the same kind).
CERTIFICATE_RTOL = 1e-9
INFEASIBLE_RTOL = 1e-6


def descends_without_curvature(sub: BlockSubproblem, d: np.ndarray) -> bool:
    """The objective part of a ray of unboundedness: no curvature along ``d`` (``dᵀPd ≤ rtol·‖P‖·‖d‖²``, ``‖P‖``
    read as the largest entry of ``P·1``) and descent (``qᵀd < 0``); the constraints' recession cone is the
    caller's, in its own form."""
    p_scale = max(float(np.abs(sub.Px(np.ones(sub.n))).max(initial=0.0)), np.finfo(float).tiny)
    return bool(float(d @ sub.Px(d)) <= CERTIFICATE_RTOL * p_scale * float(d @ d) and float(sub.q @ d) < 0)


def _certificate_holds(sub: BlockSubproblem, A: sp.csc_matrix, b: np.ndarray, n_zero: int, sol) -> bool:
    """Re-check Clarabel's infeasibility certificate in our own arithmetic (True when there is none to check).

    Unbounded: the ray ``d`` must have no curvature (``dᵀPd ≤ rtol·‖P‖·‖d‖²``), descend (``qᵀd < 0``) and
    stay feasible (``A d`` in the recession cone: 0 on equality rows, ``≤ 0`` on the others, ``soc_A d``
    in each second-order cone, to ``rtol``).
    A strictly convex block (a ReLU unit with weight decay) got ``DualInfeasible`` from Clarabel once, and
    the run ended 'unbounded'. Infeasible: the dual ray ``y`` must lie in the dual cone (nonnegative rows
    ``≥ 0``; second-order cones are self-dual: each cone's part of ``y`` in the cone), ``Aᵀy ≈ 0`` and
    ``bᵀy < 0``. The cones' rows are the last ``sub.n_soc`` rows of ``A`` (:func:`soc_cone_rows`).
    """
    ray = getattr(sol, "ray", None)
    if sol.status not in (st.UNBOUNDED, st.INFEASIBLE):
        return True
    if ray is None or not np.all(np.isfinite(ray)) or not np.any(ray):
        return False
    if sol.status == st.UNBOUNDED:
        d = ray / np.abs(ray).max()
        Ad = A @ d if A.shape[0] else np.zeros(0)
        a_scale = float(abs(A).max()) if A.nnz else 0.0
        tol = CERTIFICATE_RTOL * max(a_scale, 1.0)
        n_lin = A.shape[0] - sub.n_soc
        return bool(descends_without_curvature(sub, d)
                    and np.all(np.abs(Ad[:n_zero]) <= tol)
                    and np.all(Ad[n_zero:n_lin] <= tol)
                    and (not sub.soc_dims or np.all(soc_gaps(-Ad[n_lin:], sub.soc_dims) <= tol)))
    y = ray / np.abs(ray).max()
    n_lin = y.size - sub.n_soc
    if np.any(y[n_zero:n_lin] < -CERTIFICATE_RTOL):
        return False
    if sub.soc_dims and np.any(soc_gaps(y[n_lin:], sub.soc_dims) > CERTIFICATE_RTOL):
        return False
    bty = float(b @ y)  # yᵀ(b − Ax) = bᵀy − (Aᵀy)ᵀx must be ≥ 0 at a feasible x: with bᵀy < 0 and Aᵀy ≈ 0 no x
    if n_zero and np.all(np.abs(y[n_zero:]) <= CERTIFICATE_RTOL):
        # a ray on the equality rows alone: only an exact decision is a proof (they may have a huge solution)
        return bool(inconsistent_exactly(A[:n_zero], b[:n_zero]))
    return bool(bty < 0 and np.all(np.abs(A.T @ y) <= INFEASIBLE_RTOL * abs(bty)))  # of moderate size is
