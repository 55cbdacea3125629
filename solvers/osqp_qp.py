"""OSQP on block subproblems (``l ≤ Ax ≤ u`` is OSQP's own form; bounds become identity rows).

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
from .exact_rays import crossed_pair, infeasible_exactly, interval_ray, interval_rows, unbounded_exactly
from .matrix import MatrixOutcome, MatrixSolver

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
            rows.append(sub.A)
            low.append(sub.l)
            up.append(sub.u)
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
        t0 = time.perf_counter()
        solver = osqp.OSQP()
        solver.setup(sp.triu(sub.P_sparse(), format="csc"), sub.q, A, lo, hi, **settings)
        if warm is not None:
            solver.warm_start(x=np.asarray(warm, dtype=float))
        res = solver.solve() if legacy else solver.solve(raise_error=False)
        wall = time.perf_counter() - t0
        native = str(res.info.status).lower()
        status = STATUS_MAP.get(native, st.SOLVER_ERROR)
        x = np.asarray(res.x, dtype=float) if st.has_solution(status) else None
        proof = "inaccurate" not in native and _certificate_holds(sub, A, lo, hi, status, res)
        if status in (st.INFEASIBLE, st.UNBOUNDED):
            native += " (ray checked exactly)" if proof else " (not a proof: the ray fails the exact check)"
        return MatrixOutcome(status, x, wall, native, int(res.info.iter), proof=proof)


def _certificate_holds(sub: BlockSubproblem, A: sp.csc_matrix, lo: np.ndarray, hi: np.ndarray, status: str,
                       res: Any) -> bool:
    """Whether OSQP's infeasibility or unboundedness certificate is a proof, decided in exact arithmetic as
    Clarabel's are (:mod:`.exact_rays`; True when there is none to check).

    Infeasible: ``y`` (``y_i > 0`` on ``hi_i``, ``< 0`` on ``lo_i``) moved exactly into the null space of ``Aᵀ``
    on its support, with ``hiᵀy₊ + loᵀy₋ < 0``. Unbounded: ``d`` moved exactly into the null space of ``P`` and
    of the rows it keeps at zero, with ``qᵀd < 0`` and ``A d`` in the recession cone of ``lo ≤ · ≤ hi``.
    OSQP's rays come from ADMM iterates and are often loose: projected, they may fail; then they prove
    nothing and the dispatcher tries the next backend.
    """
    if status not in (st.INFEASIBLE, st.UNBOUNDED):
        return True
    ray = np.asarray(res.prim_inf_cert if status == st.INFEASIBLE else res.dual_inf_cert, dtype=float)
    if ray.size == 0 or not np.all(np.isfinite(ray)) or not np.any(ray):
        return False
    M, b, n_zero = interval_rows(A, lo, hi)
    if status == st.UNBOUNDED:
        return bool(unbounded_exactly(sub.P_sparse() if sub.is_quadratic else None, sub.q, M, n_zero, (), ray))
    y = interval_ray(lo, hi, ray)
    return bool(infeasible_exactly(M, b, n_zero, (), y)) if y is not None else crossed_pair(M, b, n_zero)


@functools.lru_cache(maxsize=1)
def _osqp_major() -> int:
    """OSQP's major version (0.6 spells ``polish`` and has no ``raise_error``; 1.x both)."""
    try:
        return int(importlib.metadata.version("osqp").split(".")[0])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return 1
