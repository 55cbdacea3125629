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

from multiconvex.subproblem import BlockSubproblem

from . import status as st
from .clarabel_native import ClarabelProblem, nonneg, second_order
from .exact_rays import infeasible_exactly, settle_unbounded_claim
from .matrix import MatrixOutcome, MatrixSolver, scaled_rows


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
    bounds, with the two counts. Rows of ``A`` whose largest entry is below 1 are scaled, with their sides, by a
    power of two (:func:`~.matrix.row_scales`: exactly the same set; an exact ray of these rows proves it empty):
    on rows of norm ~1e-16 Clarabel had returned "optimal" points 4.8 units (in distance) outside them."""
    rows, rhs, eq_rows, eq_rhs = [], [], [], []
    mats = []
    if sub.m:
        mats.append(scaled_rows(sp.csr_matrix(sub.A), sub.l, sub.u))  # Clarabel's tolerance is absolute on a row
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
            problem = state["clarabel"] = ClarabelProblem({**defaults_for(sub), **settings})
            state["clarabel_options"] = dict(settings)
        set_time_limit(problem, options.get("time_limit"))
        A, b, n_zero, n_nonneg = soc_cone_rows(sub) if sub.soc_dims else cone_rows(sub)
        cones = ([zero(n_zero)] if n_zero else []) + ([nonneg(n_nonneg)] if n_nonneg else [])
        if sub.soc_dims:
            cones += [second_order(d) for d in sub.soc_dims]
        P = sp.triu(sub.P_sparse(), format="csc")
        sol = problem.solve(P, sub.q, A, b, cones)
        status, native, proof = sol.status, sol.native_status, True
        if status == st.INFEASIBLE:
            proof = not native.startswith("Almost") and _certificate_holds(sub, A, b, n_zero, sol)
            native += " (ray checked exactly)" if proof else " (not a proof: the ray fails the exact check)"
        elif status == st.UNBOUNDED:
            settled, why = _settle_unbounded(sub, A, b, n_zero, sol, {**defaults_for(sub), **settings},
                                             options.get("time_limit"))
            proof = settled is not None  # exact whatever Clarabel's accuracy was
            status = settled or status
            native += f" ({why})"
        return MatrixOutcome(status, sol.x if st.has_solution(status) else None, min(sol.solve_time, sol.wall_time),
                             native, sol.iterations, {"reused": sol.reused}, proof=proof)


def defaults_for(sub: BlockSubproblem) -> dict[str, float]:
    """Clarabel's default tolerances for ``sub`` (:data:`SOCP_TOLERANCES` with cones, else :data:`QP_TOLERANCES`)."""
    return SOCP_TOLERANCES if sub.soc_dims else QP_TOLERANCES


def set_time_limit(problem: ClarabelProblem, seconds: float | None) -> None:
    """Clarabel's ``time_limit`` on ``problem``'s settings (``inf``: none), and on its kept solver, whose
    settings are a copy taken when it was built (``update(settings=...)`` leaves the data update allowed)."""
    limit = float("inf") if seconds is None else float(seconds)
    if problem.settings.time_limit == limit:
        return
    problem.settings.time_limit = limit
    solver = getattr(problem, "_solver", None)  # ClarabelProblem has no setter for one setting of a kept solver
    if solver is not None:
        solver.update(settings=problem.settings)


def _certificate_holds(sub: BlockSubproblem, A: sp.csc_matrix, b: np.ndarray, n_zero: int, sol) -> bool:
    """Whether Clarabel's infeasibility or unboundedness claim is a proof, decided in exact arithmetic
    (:mod:`.exact_rays`; True when there is none to check).

    Infeasible: the dual ray ``y`` moved exactly into the null space of ``Aᵀ`` on its support must lie in the dual
    cone with ``bᵀy < 0`` (:func:`.exact_rays.infeasible_exactly`; a huge solution defeats any float test). The
    cones' rows are the last ``sub.n_soc`` rows of ``A`` (:func:`soc_cone_rows`). Unbounded: a direction and a
    feasible point, both exact (:func:`_settle_unbounded`). Too large to settle exactly: not a proof."""
    if sol.status == st.UNBOUNDED:
        return _settle_unbounded(sub, A, b, n_zero, sol, defaults_for(sub))[0] == st.UNBOUNDED
    if sol.status != st.INFEASIBLE:
        return True
    ray = getattr(sol, "ray", None)
    if ray is None or not np.all(np.isfinite(ray)) or not np.any(ray):
        return False
    return bool(infeasible_exactly(A, b, n_zero, sub.soc_dims, ray))


def _settle_unbounded(sub: BlockSubproblem, A: sp.csc_matrix, b: np.ndarray, n_zero: int, sol,
                      settings: dict[str, Any], time_limit: float | None = None) -> tuple[str | None, str]:
    """What Clarabel's ``DualInfeasible`` is worth (:func:`.exact_rays.settle_unbounded_claim`): its direction
    ``d`` checked exactly (``P d = 0``, ``qᵀd < 0``, ``−A d`` in the cones; a strictly convex block once got
    ``DualInfeasible``, and a tiny eigenvalue is curvature all the same) *and* a feasible point, from a
    feasibility solve (zero objective; an interior-point answer lies inside the set) checked exactly. Clarabel
    reports ``DualInfeasible`` on empty sets too: that solve's ``PrimalInfeasible`` ray, checked exactly, proves
    the block infeasible instead. ``(None, why)``: not a proof."""
    ray = getattr(sol, "ray", None)
    if ray is not None and not np.all(np.isfinite(ray)):
        ray = None
    n_nonneg = A.shape[0] - n_zero - sub.n_soc
    cones = ([zero(n_zero)] if n_zero else []) + ([nonneg(n_nonneg)] if n_nonneg else [])
    cones += [second_order(d) for d in sub.soc_dims]
    feasibility = ClarabelProblem(settings)
    set_time_limit(feasibility, time_limit)
    phase = feasibility.solve(sp.csc_matrix((sub.n, sub.n)), np.zeros(sub.n), A, b, cones)
    point = phase.x if phase.status in (st.OPTIMAL, st.OPTIMAL_INACCURATE) else None
    empty = phase.ray if phase.status == st.INFEASIBLE else None
    return settle_unbounded_claim(sub.P_sparse() if sub.is_quadratic else None, sub.q, A, b, n_zero, sub.soc_dims,
                                  ray, point, empty)
