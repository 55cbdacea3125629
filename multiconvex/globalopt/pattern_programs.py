"""The per-pattern program of the two-layer ReLU polar, three ways.

For one activation pattern ``D`` and sign ``s``, with ``Xc = (2D − I) X`` and ``c = s·Xᵀ D G``, the
program is ``max cᵀu s.t. Xc u ≥ 0, ‖u‖ ≤ 1`` (see :mod:`multiconvex.globalopt.relu_polar`). Each
solver below returns ``(u, native status, solve time)``, ``u = None`` on failure:
Clarabel's native matrix interface, the exact projection by non-negative least squares, or a DPP
cvxpy problem through the registry (any SOCP backend).
"""

from __future__ import annotations

import time

import cvxpy as cp
import numpy as np
import scipy.sparse as sp
from scipy.optimize import nnls

from multiconvex.errors import MulticonvexError
from multiconvex.solvers import resolve, solve_cvxpy
from multiconvex.solvers.clarabel_native import nonneg, second_order, solve_once


def _clarabel_program(Xc: np.ndarray, c: np.ndarray) -> tuple[np.ndarray | None, str, float]:
    """``max cᵀu s.t. Xc u ≥ 0, ‖u‖ ≤ 1`` through Clarabel's native matrix interface."""
    n, d = Xc.shape
    P = sp.csc_matrix((d, d))
    A = sp.csc_matrix(np.vstack([-Xc, np.zeros((1, d)), -np.eye(d)]))
    b = np.zeros(n + 1 + d)
    b[n] = 1.0
    sol = solve_once(P, -c, A, b, [nonneg(n), second_order(d + 1)])
    return sol.x, sol.native_status, sol.solve_time


def _projection_program(Xc: np.ndarray, c: np.ndarray) -> tuple[np.ndarray | None, str, float]:
    """The same maximum by projection: ``max_{u∈K, ‖u‖≤1} cᵀu = ‖Π_K(c)‖`` for the cone
    ``K = {u : Xc u ≥ 0}``; by Moreau ``Π_K(c) = c + Xcᵀλ`` with ``λ = argmin_{λ≥0} ‖c + Xcᵀλ‖``
    (a non-negative least-squares problem, d rows, solved exactly by the active-set method)."""
    t = time.perf_counter()
    try:
        lam, _ = nnls(Xc.T, -c, maxiter=50 * max(Xc.shape))
    except RuntimeError as exc:  # iteration limit
        return None, f"nnls: {exc}", time.perf_counter() - t
    return c + Xc.T @ lam, "optimal", time.perf_counter() - t


class _CvxpyProgram:
    """The same program as a DPP cvxpy problem, built once and re-solved with new parameters."""

    def __init__(self, N: int, d: int, solver: str):
        self.u = cp.Variable(d)
        self.A = cp.Parameter((N, d))
        self.c = cp.Parameter(d)
        self.problem = cp.Problem(cp.Maximize(self.c @ self.u), [self.A @ self.u >= 0, cp.norm(self.u, 2) <= 1])
        self.backends = resolve(solver, "SOCP")

    def __call__(self, Xc: np.ndarray, c: np.ndarray) -> tuple[np.ndarray | None, str, float]:
        self.A.value, self.c.value = Xc, c
        try:
            rep = solve_cvxpy(self.problem, self.backends, warm_start=False)
        except MulticonvexError as exc:
            return None, f"{type(exc).__name__}: {exc}", 0.0
        return np.asarray(self.u.value), rep.status, rep.solve_time
