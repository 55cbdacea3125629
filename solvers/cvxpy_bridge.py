"""Any cvxpy-capable backend on a block subproblem: the value rebuilt as a small cvxpy problem.

For backends without a matrix-level module (Gurobi, MOSEK, SCIP, HiGHS, ECOS, SCS, Ipopt
through cvxpy) the subproblem is written as ``½ xᵀPx + qᵀx + c`` over one vector variable of
the block's own size — never the auxiliary variables of the user's expression — with the block's
second-order cones as ``cp.SOC`` constraints (class ``SOCP``: ECOS, SCS, MOSEK, Gurobi, ...), and solved
through :func:`~multiconvex.solvers.cvxpy_adapter.solve_cvxpy` (licence and size checks,
status map).

Examples
--------
>>> import numpy as np
>>> from multiconvex.subproblem import BlockSubproblem
>>> from multiconvex.solvers.registry import get_backend
>>> sub = BlockSubproblem.from_dense(np.eye(2), np.array([1.0, -1.0]), lb=np.zeros(2))
>>> out = solve_via_cvxpy(sub, get_backend("ecos"), {})
>>> out.status, out.x.round(5).tolist()
('optimal', [0.0, 1.0])
"""

from __future__ import annotations

from typing import Any

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from multiconvex.errors import SolverFailure
from multiconvex.subproblem import BlockSubproblem

from . import status as st
from .base import Backend
from .cvxpy_adapter import solve_cvxpy
from .matrix import MatrixOutcome, scaled_rows


def as_cvxpy(sub: BlockSubproblem) -> tuple[cp.Problem, cp.Variable]:
    """The subproblem as a cvxpy problem in one vector variable of size ``n``."""
    x = cp.Variable(sub.n, name="x")
    objective = sub.q @ x + sub.c
    if sub.is_quadratic:
        objective = objective + 0.5 * cp.quad_form(x, cp.psd_wrap(sub.P_sparse()))
    constraints = []
    if sub.m:
        # rows whose largest entry is below 1 scaled up by powers of two (exact, the same set): the backends'
        # feasibility tolerances are absolute on a row's value (ECOS, SCS, HiGHS and SCIP returned "optimal" points
        # up to 1.9 units outside rows of norm 1e-9 … 1e-12)
        A, lower, upper = scaled_rows(sub.A, sub.l, sub.u)
        A = sp.csr_matrix(A)
        eq = lower == upper
        if eq.any():
            constraints.append(A[eq] @ x == lower[eq])
        up = ~eq & np.isfinite(upper)
        low = ~eq & np.isfinite(lower)
        if up.any():
            constraints.append(A[up] @ x <= upper[up])
        if low.any():
            constraints.append(A[low] @ x >= lower[low])
    lb, ub = sub.box()
    if np.isfinite(lb).any():
        fin = np.flatnonzero(np.isfinite(lb))
        constraints.append(x[fin] >= lb[fin])
    if np.isfinite(ub).any():
        fin = np.flatnonzero(np.isfinite(ub))
        constraints.append(x[fin] <= ub[fin])
    if sub.soc_dims:
        constraints += soc_constraints(sub, x)
    return cp.Problem(cp.Minimize(objective), constraints), x


def soc_constraints(sub: BlockSubproblem, x: cp.Variable) -> list[cp.Constraint]:
    """The block's cones ``soc_A x + soc_b ∈ Q(d_1) × …`` as ``cp.SOC(t, v)`` (a 1-row cone: ``t ≥ 0``)."""
    out: list[cp.Constraint] = []
    start = 0
    for d in sub.soc_dims:
        rows = sub.soc_A[start:start + d]
        expr = rows @ x + sub.soc_b[start:start + d]
        out.append(expr[0] >= 0 if d == 1 else cp.SOC(expr[0], expr[1:]))
        start += d
    return out


#: Backends that refuse a problem without constraint rows (SCS: "m must be a positive integer").
NEED_A_ROW = frozenset({"scs"})


def solve_via_cvxpy(sub: BlockSubproblem, backend: Backend, options: dict[str, Any],
                    warm: np.ndarray | None = None) -> MatrixOutcome:
    """Solve ``sub`` with ``backend`` through cvxpy; configuration errors (licence) propagate.

    A backend that ends without a solution raises :class:`SolverFailure` with the normalised
    status; "infeasible or unbounded" (Gurobi's and SCIP's presolve) is settled into one of the
    two by a feasibility solve with the same backend.
    """
    problem, x = as_cvxpy(sub)
    if not problem.constraints and backend.name in NEED_A_ROW:
        problem = cp.Problem(problem.objective, [0 * x[0] == 0])  # a vacuous row
    if warm is not None:
        x.value = np.asarray(warm, dtype=float)
    try:
        report = solve_cvxpy(problem, [backend], options, warm_start=warm is not None)
    except SolverFailure as exc:
        if problem.status != cp.settings.INFEASIBLE_OR_UNBOUNDED:
            raise
        status = _infeasible_or_unbounded(problem, backend, options)
        raise SolverFailure(f"{backend.name} ended {problem.status}; a feasibility solve says {status}",
                            solver=backend.name, status=status) from exc
    ok = st.has_solution(report.status) and x.value is not None
    return MatrixOutcome(report.status, np.asarray(x.value, dtype=float) if ok else None, report.solve_time,
                         report.status, proof=False)  # cvxpy's statuses do not say how the backend knew


def _infeasible_or_unbounded(problem: cp.Problem, backend: Backend, options: dict[str, Any]) -> str:
    """``infeasible`` or ``unbounded``: whether the constraints of ``problem`` have a point — or
    ``numerical_error`` when the feasibility solve settles nothing (a limit, an error: not a proof)."""
    if not problem.constraints:
        return st.UNBOUNDED
    feasibility = cp.Problem(cp.Minimize(0), problem.constraints)
    try:
        solve_cvxpy(feasibility, [backend], options, warm_start=False)
    except SolverFailure as exc:
        return st.INFEASIBLE if exc.status == st.INFEASIBLE else st.NUMERICAL_ERROR
    return st.UNBOUNDED

