"""ProxQP (proxsuite, dense backend) on block subproblems: medium dense QPs.

ProxQP's form is ``min ½xᵀHx + gᵀx  s.t.  Ax = b, l ≤ Cx ≤ u``; equality rows
(``l == u``) go to ``A``, the rest and the bounds to ``C``. ProxQP's infeasibility and unboundedness
statuses are heuristics (it has called feasible QPs ``PRIMAL_INFEASIBLE``): never proofs. On an empty piece
it can run for minutes (53,753 inner iterations, 8 s, on one 11-variable ReLU unit with 585 rows under its own
``max_iter`` of 10,000 outer iterations), so :data:`DEFAULT_MAX_ITER` bounds its outer iterations unless the
user sets ``max_iter``: at the limit the status is ``iteration_limit`` with no point, and the dispatcher tries
the next backend (Clarabel under ``"auto"``), whose certificate is then checked exactly.

ProxQP has no time limit of its own, and one outer iteration can run 1,500 inner ones (0.1–0.7 s each on a
24-variable layer block with 1,650 rows, where 100 outer iterations took 84 s). Under a time limit
(``time_limit``, the run's remaining time from the dispatcher) the solve therefore runs in chunks of outer
iterations (:data:`FIRST_CHUNK`, then as many as half the remaining time allows if each ran ProxQP's full
:data:`INNER_PER_OUTER` inner iterations at the cost measured so far), each continuing from the previous one's
primal and dual point and proximal parameters. It ends with status ``time_limit`` when the next outer iteration
would not fit at the average cost so far: the overrun is at most the first chunk, whose cost is not known before it
runs, or one outer iteration after it. Without a time limit it is one call, as before; with one that does not bind,
the restarts can still change the outcome now and then (a review: 1 of 200 hard QPs solved at the 100th outer
iteration in one call ended at the iteration limit in chunks).

Rows whose largest entry is below 1 are scaled by powers of two, exactly, as for DAQP (:func:`~.matrix.row_scales`):
ProxQP's tolerances are absolute on each row's value, and a chunk warm-started from a point 2e-11 outside two
contradicting rows of norm 1e-13 (140 units away in distance) called it optimal.

Examples
--------
>>> import numpy as np
>>> from multiconvex.subproblem import BlockSubproblem
>>> sub = BlockSubproblem.from_dense(np.eye(2), np.array([1.0, -1.0]), lb=np.zeros(2))
>>> (ProxqpQP().solve(sub, {}, None).x.round(6) + 0.0).tolist()
[0.0, 1.0]
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from multiconvex.subproblem import BlockSubproblem

from . import status as st
from .base import Backend
from .matrix import MatrixOutcome, MatrixSolver, finite_or_big, scaled_rows

#: ProxQP's outer (proximal) iterations unless ``max_iter`` is given: solved block QPs took 7–12 here
#: (10–300 variables, up to 900 rows, condition numbers up to 1e8); ProxQP's own default is 10,000.
DEFAULT_MAX_ITER = 100

#: Outer iterations of the first chunk under a time limit (see the module docstring): most solves end in it.
FIRST_CHUNK = 5

#: ProxQP's default ``max_iter_in``: the most inner iterations one outer iteration runs (chunks are sized by it).
INNER_PER_OUTER = 1500


class ProxqpBackend(Backend):
    """Registry entry for ProxQP (also reachable through cvxpy as ``PROXQP``)."""

    name = "proxqp"
    cvxpy_name = "PROXQP"
    modules = ("proxsuite",)
    distribution = "proxsuite"
    classes = frozenset({"EQP", "QP", "LP"})
    defaults = {"eps_abs": 1e-9, "eps_rel": 0.0, "max_iter": DEFAULT_MAX_ITER}
    time_limit_option = "time_limit"  # kept by ProxqpQP, which runs in chunks under it (ProxQP has none)



def _status_map() -> dict[Any, str]:
    from proxsuite import proxqp  # imported where used: availability checks must not load it

    return {
        proxqp.PROXQP_SOLVED: st.OPTIMAL,
        proxqp.PROXQP_SOLVED_CLOSEST_PRIMAL_FEASIBLE: st.OPTIMAL_INACCURATE,
        proxqp.PROXQP_MAX_ITER_REACHED: st.ITERATION_LIMIT,
        proxqp.PROXQP_PRIMAL_INFEASIBLE: st.INFEASIBLE,
        proxqp.PROXQP_DUAL_INFEASIBLE: st.UNBOUNDED,
        proxqp.PROXQP_NOT_RUN: st.SOLVER_ERROR,
    }


class ProxqpQP(MatrixSolver):
    name = "proxqp"
    classes = frozenset({"EQP", "QP"})
    max_auto_size: ClassVar[int | None] = 1000
    #: the dense backend allocates about (n + rows)² numbers: 5,000 rows ≈ 0.2 GB; 100,000 aborted the process
    max_auto_rows: ClassVar[int | None] = 5_000
    min_auto_density: ClassVar[float] = 0.2

    def solve(self, sub: BlockSubproblem, options: dict[str, Any], warm: np.ndarray | None,
              state: dict | None = None) -> MatrixOutcome:
        from proxsuite import proxqp

        opts = {**ProxqpBackend.defaults, **options}
        # ProxQP's own test is on the primal and dual residuals only: with active bounds it stops at a
        # point that is ~1e-6 inside them, the objective ~1e-6 high (complementarity unchecked); the
        # duality-gap test at the same absolute tolerance brings it to the vertex
        opts.setdefault("check_duality_gap", True)
        opts.setdefault("eps_duality_gap_abs", opts.get("eps_abs"))
        opts.setdefault("eps_duality_gap_rel", opts.get("eps_rel"))
        H = sub.P_dense()
        rows = [] if sub.A is None else [sub.A]
        lows = [] if sub.A is None else [sub.l]
        ups = [] if sub.A is None else [sub.u]
        eq = np.zeros(0, dtype=bool) if sub.A is None else (sub.l == sub.u)
        lb, ub = sub.box()
        if sub.has_bounds:
            rows.append(sp.identity(sub.n, format="csr"))
            lows.append(lb)
            ups.append(ub)
            eq = np.concatenate([eq, np.zeros(sub.n, dtype=bool)])
        M = sp.vstack(rows, format="csr").toarray() if rows else np.zeros((0, sub.n))
        low = np.concatenate(lows) if lows else np.zeros(0)
        up = np.concatenate(ups) if ups else np.zeros(0)
        # exact, as for DAQP: ProxQP's tolerances are absolute on each row's value too (the bounds are not scaled)
        M[:sub.m], low[:sub.m], up[:sub.m] = scaled_rows(M[:sub.m], low[:sub.m], up[:sub.m])
        A_eq, b_eq = M[eq], low[eq]
        C, cl, cu = M[~eq], finite_or_big(low[~eq]), finite_or_big(up[~eq])
        limit = opts.pop("time_limit", None)
        data = (H, sub.q, A_eq if A_eq.size else None, b_eq if A_eq.size else None, C if C.size else None,
                cl if C.size else None, cu if C.size else None)
        x0 = None if warm is None else np.asarray(warm, dtype=float)
        t0 = time.perf_counter()
        if limit is None:
            res = proxqp.dense.solve(*data, x=x0, **opts)
            status, iterations = _status_map().get(res.info.status, st.SOLVER_ERROR), int(res.info.iter)
        else:
            res, status, iterations = _solve_in_chunks(data, x0, opts, t0 + float(limit))
        wall = time.perf_counter() - t0
        return MatrixOutcome(status, np.asarray(res.x, dtype=float) if st.has_solution(status) else None,
                             wall, str(res.info.status), iterations,
                             proof=False)  # ProxQP's infeasibility detection is a heuristic


def _solve_in_chunks(data: tuple, x0: np.ndarray | None, opts: dict[str, Any],
                     deadline: float) -> tuple[Any, str, int]:
    """ProxQP's dense solve of ``data`` within ``opts["max_iter"]`` outer iterations and before ``deadline``
    (``time.perf_counter()`` seconds): chunks of outer iterations, each from the previous one's ``x, y, z``,
    ``ρ`` and ``μ``; the status is ``time_limit`` when the next iteration would not fit. Returns ProxQP's last
    results, the normalised status and the inner iterations of every chunk."""
    from proxsuite import proxqp

    budget = int(opts.get("max_iter", DEFAULT_MAX_ITER))
    chunk = min(budget, FIRST_CHUNK)
    start: dict[str, Any] = {"x": x0}
    spent = 0.0
    outer = inner = 0
    while True:
        t = time.perf_counter()
        res = proxqp.dense.solve(*data, **{**opts, **start, "max_iter": chunk})
        spent += time.perf_counter() - t
        outer += max(1, int(res.info.iter_ext))
        inner += int(res.info.iter)
        left = budget - outer
        if res.info.status != proxqp.PROXQP_MAX_ITER_REACHED or left <= 0:
            return res, _status_map().get(res.info.status, st.SOLVER_ERROR), inner
        remaining = deadline - time.perf_counter()
        if remaining <= spent / outer:  # the next outer iteration, at the average cost so far, would not fit
            return res, st.TIME_LIMIT, inner
        worst = INNER_PER_OUTER * spent / max(1, inner)  # one outer iteration that runs every inner one
        chunk = int(min(left, max(1.0, 0.5 * remaining / worst)))
        start = {"x": res.x, "y": res.y, "z": res.z, "rho": res.info.rho, "mu_eq": res.info.mu_eq,
                 "mu_in": res.info.mu_in}
