"""DAQP (dual active-set) on block subproblems: small dense QPs, solved exactly.

DAQP's answer is a vertex of the active set, not an interior-point approximation, so
block gaps measured with it reach rounding level. It takes the dense ``P`` and the
bounds as its "simple bounds" (no rows for them); equality rows get sense 5.

Examples
--------
>>> import numpy as np
>>> from multiconvex.subproblem import BlockSubproblem
>>> sub = BlockSubproblem.from_dense(np.eye(2), np.array([1.0, -1.0]), lb=np.zeros(2))
>>> DaqpQP().solve(sub, {}, None).x.round(9).tolist()
[0.0, 1.0]
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np

from multiconvex.subproblem import BlockSubproblem

from . import status as st
from .base import Backend
from .closed_form import inconsistent_exactly
from .matrix import MatrixOutcome, MatrixSolver, finite_or_big

#: DAQP's exit flags -> normalised status.
STATUS_MAP: dict[int, str] = {
    1: st.OPTIMAL,
    2: st.OPTIMAL,  # soft constraints relaxed (we pass none)
    -1: st.INFEASIBLE,
    -2: st.NUMERICAL_ERROR,  # cycling
    -3: st.UNBOUNDED,
    -4: st.ITERATION_LIMIT,
    -5: st.NUMERICAL_ERROR,  # not convex
    -6: st.NUMERICAL_ERROR,  # overdetermined initial active set (infeasible when the equalities contradict)
    -7: st.TIME_LIMIT,
}

_EQUALITY = 5
_OVERDETERMINED = -6


def _inconsistent(E: np.ndarray, e: np.ndarray) -> bool:
    """Whether ``E x = e`` provably has no solution: a least-squares residual above rounding, confirmed in exact
    arithmetic (a float residual alone misses huge solutions; too large to decide exactly: no proof)."""
    if not e.size:
        return False
    x = np.linalg.lstsq(E, e, rcond=None)[0]
    if not np.abs(E @ x - e).max() > 1e-9 * max(1.0, float(np.abs(e).max())):
        return False
    return bool(inconsistent_exactly(E, e))  # undecided (too large): no proof


class DaqpBackend(Backend):
    """Registry entry for DAQP (also reachable through cvxpy as ``DAQP``)."""

    name = "daqp"
    cvxpy_name = "DAQP"
    modules = ("daqp",)
    distribution = "daqp"
    classes = frozenset({"EQP", "QP", "LP"})
    time_limit_option = "time_limit"


class DaqpQP(MatrixSolver):
    name = "daqp"
    classes = frozenset({"EQP", "QP"})
    #: "auto" uses it up to this size (a dense factorisation of P per solve).
    max_auto_size: ClassVar[int | None] = 400
    min_auto_density: ClassVar[float] = 0.2

    def solve(self, sub: BlockSubproblem, options: dict[str, Any], warm: np.ndarray | None,
              state: dict | None = None) -> MatrixOutcome:
        import daqp  # the solver's module is imported where it is used: checking availability must not load it

        H = np.ascontiguousarray(sub.P_dense())
        lb, ub = sub.box()
        if sub.m:
            A = np.ascontiguousarray(sub.A.toarray())
            lower, upper = np.concatenate([lb, sub.l]), np.concatenate([ub, sub.u])
        else:
            A = np.zeros((0, sub.n))
            lower, upper = lb, ub
        sense = np.zeros(lower.size, dtype=np.int32)
        sense[lower == upper] = _EQUALITY
        opts = {"eps_prox": -1e-6, **options}  # negative: regularise only when P is singular
        if warm is not None:
            opts.setdefault("primal_start", np.asarray(warm, dtype=float))
        t0 = time.perf_counter()
        x, _fval, flag, info = daqp.solve(H, np.asarray(sub.q, dtype=float), A, finite_or_big(upper),
                                          finite_or_big(lower), sense, **opts)
        wall = time.perf_counter() - t0
        status = STATUS_MAP.get(int(flag), st.SOLVER_ERROR)
        # DAQP's -1 / -3 come without a certificate we could re-check: trusted as proofs, a known limit (README
        # "Proofs end the run"); only -6 is decided here, exactly
        proof = int(flag) in (-1, -3)
        if int(flag) == _OVERDETERMINED and _inconsistent(np.vstack([np.eye(sub.n), A])[sense == _EQUALITY],
                                                          upper[sense == _EQUALITY]):
            status, proof = st.INFEASIBLE, True  # -6 on equalities that contradict each other, decided exactly
        return MatrixOutcome(status, np.asarray(x, dtype=float) if st.has_solution(status) else None,
                             min(wall, float(info.get("solve_time", wall)) + float(info.get("setup_time", 0.0))),
                             f"exitflag {flag}", int(info.get("iterations", 0)), proof=proof)
