"""OSQP on block subproblems (``l ≤ Ax ≤ u`` is OSQP's own form; bounds become identity rows).

Rows whose largest entry is below 1 are scaled, with their sides, by a power of two (:func:`~.matrix.row_scales`,
exact; the rays are checked on the scaled rows, the same set): OSQP's ``eps_abs`` is absolute on each row's value.

Examples
--------
>>> import numpy as np
>>> from multiconvex.subproblem import BlockSubproblem
>>> sub = BlockSubproblem.from_dense(np.eye(2), np.array([1.0, -1.0]), lb=np.zeros(2))
>>> (OsqpQP().solve(sub, {}, None).x.round(4) + 0.0).tolist()
[0.0, 1.0]
"""

from __future__ import annotations

import functools
import importlib.metadata
import time
from typing import Any

import numpy as np
import scipy.sparse as sp

from multiconvex.subproblem import BlockSubproblem

from . import status as st
from .exact_rays import crossed_pair, infeasible_exactly, interval_ray, interval_rows, settle_unbounded_claim
from .matrix import MatrixOutcome, MatrixSolver, scaled_rows

#: OSQP's status strings -> normalised status.
STATUS_MAP: dict[str, str] = {
    "solved": st.OPTIMAL,
    "solved inaccurate": st.OPTIMAL_INACCURATE,
    "primal infeasible": st.INFEASIBLE,
    "primal infeasible inaccurate": st.INFEASIBLE,
    "dual infeasible": st.UNBOUNDED,
    "dual infeasible inaccurate": st.UNBOUNDED,
    "maximum iterations reached": st.ITERATION_LIMIT,
    "run time limit reached": st.TIME_LIMIT,
    "problem non convex": st.NUMERICAL_ERROR,
    "interrupted": st.SOLVER_ERROR,
    "unsolved": st.SOLVER_ERROR,
}

#: OSQP's infinity (``OSQP_INFTY``): a side beyond it on the wrong side makes its setup refuse the data.
OSQP_INFINITY = 1e30

#: Tight defaults: block gaps are measured on the solution.
DEFAULTS = {"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iter": 100000, "polishing": True, "verbose": False}


class OsqpQP(MatrixSolver):
    name = "osqp"
    classes = frozenset({"EQP", "QP", "LP"})

    def solve(self, sub: BlockSubproblem, options: dict[str, Any], warm: np.ndarray | None,
              state: dict | None = None) -> MatrixOutcome:
        import osqp  # where used: availability checks must not load the solver

        rows, low, up = [], [], []
        if sub.m:
            A, lo_rows, hi_rows = scaled_rows(sp.csr_matrix(sub.A), sub.l, sub.u)  # eps_abs is absolute on a row
            rows.append(A)
            low.append(lo_rows)
            up.append(hi_rows)
        if sub.has_bounds:
            lb, ub = sub.box()
            rows.append(sp.identity(sub.n, format="csr"))
            low.append(lb)
            up.append(ub)
        A = sp.vstack(rows, format="csc") if rows else sp.csc_matrix((0, sub.n))
        lo = np.concatenate(low) if low else np.zeros(0)
        hi = np.concatenate(up) if up else np.zeros(0)
        settings = {**DEFAULTS, **options}
        if not rows and "polishing" not in options:
            # nothing to polish against, and OSQP 1.x prints "Polishing not needed" on stdout whatever
            # `verbose` says when it finds no active set (osqp/osqp#785)
            settings["polishing"] = False
        legacy = _osqp_major() == 0
        if legacy and "polishing" in settings:  # OSQP < 1 calls it polish
            settings["polish"] = settings.pop("polishing")
        if np.any(lo >= OSQP_INFINITY) or np.any(hi <= -OSQP_INFINITY):
            # a side beyond OSQP's infinity (a row of a nearly flat unit, z >= 3e186): OSQP's setup refuses the
            # data and prints an error; nothing to solve here, the next backend is tried
            return MatrixOutcome(st.NUMERICAL_ERROR, None, 0.0, f"a finite bound beyond ±{OSQP_INFINITY:g}, OSQP's "
                                 "infinity (not set up)", 0)
        t0 = time.perf_counter()
        solver = osqp.OSQP()
        solver.setup(sp.triu(sub.P_sparse(), format="csc"), sub.q, A, lo, hi, **settings)
        if warm is not None:
            solver.warm_start(x=np.asarray(warm, dtype=float))
        res = solver.solve() if legacy else solver.solve(raise_error=False)
        native = str(res.info.status).lower()
        status = STATUS_MAP.get(native, st.SOLVER_ERROR)
        x = np.asarray(res.x, dtype=float) if st.has_solution(status) else None
        proof = True
        if status == st.INFEASIBLE:
            proof = "inaccurate" not in native and _infeasibility_holds(A, lo, hi, res.prim_inf_cert)
            native += " (ray checked exactly)" if proof else " (not a proof: the ray fails the exact check)"
        elif status == st.UNBOUNDED:
            settled, why = _settle_unbounded(sub, A, lo, hi, res.dual_inf_cert, settings, legacy)
            proof, status = settled is not None, settled or status
            native += f" ({why})"
        return MatrixOutcome(status, x, time.perf_counter() - t0, native, int(res.info.iter), proof=proof)


def _infeasibility_holds(A: sp.csc_matrix, lo: np.ndarray, hi: np.ndarray, cert: Any) -> bool:
    """Whether OSQP's ``primal infeasible`` ray ``y`` (``y_i > 0`` on ``hi_i``, ``< 0`` on ``lo_i``) is a proof,
    decided in exact arithmetic (:func:`.exact_rays.infeasible_exactly`): moved exactly into the null space of
    ``Aᵀ`` on its support, with ``hiᵀy₊ + loᵀy₋ < 0``. OSQP's rays come from ADMM iterates and are often loose:
    projected, they may fail; then they prove nothing and the dispatcher tries the next backend."""
    ray = np.asarray(cert, dtype=float)
    if ray.size == 0 or not np.all(np.isfinite(ray)) or not np.any(ray):
        return False
    M, b, n_zero = interval_rows(A, lo, hi)
    y = interval_ray(lo, hi, ray)
    return bool(infeasible_exactly(M, b, n_zero, (), y)) if y is not None else crossed_pair(M, b, n_zero)


def _settle_unbounded(sub: BlockSubproblem, A: sp.csc_matrix, lo: np.ndarray, hi: np.ndarray, cert: Any,
                      settings: dict[str, Any], legacy: bool) -> tuple[str | None, str]:
    """What OSQP's ``dual infeasible`` is worth (:func:`.exact_rays.settle_unbounded_claim`): its direction ``d``
    checked exactly (``P d = 0``, ``qᵀd < 0``, ``A d`` in the recession cone of ``lo ≤ · ≤ hi``) *and* a feasible
    point from a feasibility solve (zero objective) checked exactly; OSQP reports dual infeasibility on empty
    sets too, and that solve's infeasibility ray, checked exactly, then proves the block infeasible instead.
    ``(None, why)``: not a proof."""
    import osqp  # where used: availability checks must not load the solver

    ray = np.asarray(cert, dtype=float)
    d = ray if ray.size == sub.n and np.all(np.isfinite(ray)) else None
    phase = osqp.OSQP()
    phase.setup(sp.csc_matrix((sub.n, sub.n)), np.zeros(sub.n), A, lo, hi, **settings)
    res = phase.solve() if legacy else phase.solve(raise_error=False)
    status = STATUS_MAP.get(str(res.info.status).lower(), st.SOLVER_ERROR)
    point = np.asarray(res.x, dtype=float) if st.has_solution(status) else None
    y = interval_ray(lo, hi, np.asarray(res.prim_inf_cert, dtype=float)) if status == st.INFEASIBLE else None
    M, b, n_zero = interval_rows(A, lo, hi)
    return settle_unbounded_claim(sub.P_sparse() if sub.is_quadratic else None, sub.q, M, b, n_zero, (), d, point, y)


@functools.lru_cache(maxsize=1)
def _osqp_major() -> int:
    """OSQP's major version (0.6 spells ``polish`` and has no ``raise_error``; 1.x both)."""
    try:
        return int(importlib.metadata.version("osqp").split(".")[0])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return 1
