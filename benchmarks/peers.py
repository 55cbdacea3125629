"""Peers measured in the same run as multiconvex.

``dmcp_style_alternation`` is the loop DMCP (and most hand-written alternating
schemes) runs: at every block solve it builds a *new* cvxpy problem with the
other blocks substituted as constants, solves it, and moves on. It is written
here as the peer because it is what our build-once, re-solve path must beat.
"""

from __future__ import annotations

import time

import cvxpy as cp
import numpy as np


def dmcp_style_factorization(Y: np.ndarray, U0: np.ndarray, V0: np.ndarray, lam: float, sweeps: int,
                             solver: str = "CLARABEL") -> dict:
    """Alternating minimisation of ½‖Y − UV‖² + (λ/2)(‖U‖² + ‖V‖²), rebuilding each subproblem."""
    U, V = U0.copy(), V0.copy()
    solver_time = 0.0
    objectives = []
    t0 = time.perf_counter()
    for _ in range(sweeps):
        u = cp.Variable(U.shape)
        p = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(Y - u @ V) + lam / 2 * (cp.sum_squares(u) + np.sum(V ** 2))))
        p.solve(solver=solver)
        solver_time += p.solver_stats.solve_time or 0.0
        U = u.value
        v = cp.Variable(V.shape)
        p = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(Y - U @ v) + lam / 2 * (np.sum(U ** 2) + cp.sum_squares(v))))
        p.solve(solver=solver)
        solver_time += p.solver_stats.solve_time or 0.0
        V = v.value
        objectives.append(0.5 * np.sum((Y - U @ V) ** 2) + lam / 2 * (np.sum(U ** 2) + np.sum(V ** 2)))
    total = time.perf_counter() - t0
    return {"objective": objectives[-1], "objectives": objectives, "total_time": total, "solver_time": solver_time}
