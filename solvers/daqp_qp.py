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
from .exact_rays import crossed_pair, infeasible_exactly, interval_rows, unbounded_exactly
from .matrix import BIG, MatrixOutcome, MatrixSolver, finite_or_big

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
_INFEASIBLE, _UNBOUNDED, _OVERDETERMINED = -1, -3, -6


def _inconsistent(E: np.ndarray, e: np.ndarray) -> bool:
    """Whether ``E x = e`` provably has no solution: a least-squares residual above rounding, confirmed in exact
    arithmetic (a float residual alone misses huge solutions; too large to decide exactly: no proof)."""
    if not e.size:
        return False
    x = np.linalg.lstsq(E, e, rcond=None)[0]
    if not np.abs(E @ x - e).max() > 1e-9 * max(1.0, float(np.abs(e).max())):
        return False
    return bool(inconsistent_exactly(E, e))  # undecided (too large): no proof


def _proves_infeasible(A: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                       options: dict[str, Any]) -> tuple[bool, str]:
    """Whether ``lower ≤ [I; A] x ≤ upper`` (the bounds, then the rows, as DAQP took them) is proven empty, and
    by what, for DAQP's exit −1, which comes without a certificate: a crossed pair of rows (a neighbouring piece
    of a ReLU unit), else the multipliers of a phase-1 problem checked in exact arithmetic
    (:func:`.exact_rays.infeasible_exactly`; too large to settle exactly: undecided, not a proof)."""
    M, b, n_zero = interval_rows(np.vstack([np.eye(A.shape[1]), A]), lower, upper)
    if crossed_pair(M, b, n_zero):
        return True, "proven: a crossed pair of rows"
    ray = _phase_one_ray(M, b, n_zero, options)
    if ray is None:
        return False, "not proven: the phase-1 problem gave no ray"
    verdict = infeasible_exactly(M, b, n_zero, (), ray, supports=(0.0, 1e-9))  # active-set zeros are exact
    if verdict is None:
        return False, "undecided: the phase-1 ray is too large to check exactly"
    return verdict, "proven: an exact Farkas ray from phase 1" if verdict else "not proven: no exact Farkas ray"


def _proves_unbounded(H: np.ndarray, q: np.ndarray, A: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                      options: dict[str, Any]) -> tuple[bool, str]:
    """Whether ``min ½xᵀHx + qᵀx`` over ``lower ≤ [I; A] x ≤ upper`` is proven unbounded below, and how, for
    DAQP's exit −3 (no ray): with ``N`` a float basis of the near-null space of ``H``, the projection ``c`` of
    ``−Nᵀq`` onto the recession cone (``min ½‖c‖² + qᵀN c`` over ``A N c`` in it, a small QP for DAQP) gives the
    candidate ``d = N c`` (``qᵀd = −‖c‖² < 0``), checked in exact arithmetic
    (:func:`.exact_rays.unbounded_exactly`: a tiny eigenvalue is curvature, and refuses it)."""
    import daqp  # where used: availability checks must not load the solver

    n = H.shape[0]
    w, V = np.linalg.eigh(H)
    N = V[:, w <= 1e-9 * max(float(np.abs(w).max(initial=0.0)), np.finfo(float).tiny)]
    if not N.shape[1]:
        return False, "not proven: P has no null space"
    M, b, n_zero = interval_rows(np.vstack([np.eye(n), A]), lower, upper)
    R = M @ N  # recession cone: R c = 0 on equality rows, ≤ 0 on the others
    sense = np.zeros(R.shape[0], dtype=np.int32)
    sense[:n_zero] = _EQUALITY
    low = np.where(np.arange(R.shape[0]) < n_zero, 0.0, -BIG)
    opts = {k: v for k, v in options.items() if k not in ("primal_start", "eps_prox")}
    c, _f, flag, _info = daqp.solve(np.eye(N.shape[1]), N.T @ q, np.ascontiguousarray(R), np.zeros(R.shape[0]),
                                    low, sense, **opts)
    if int(flag) not in (1, 2) or not np.any(c):
        return False, "not proven: no descent direction in the null space of P"
    verdict = unbounded_exactly(H, q, M, n_zero, (), N @ np.asarray(c, dtype=float))
    if verdict is None:
        return False, "undecided: the direction is too large to check exactly"
    return verdict, "proven: an exact direction of unboundedness" if verdict else "not proven: no exact direction"


def _phase_one_ray(M: np.ndarray, b: np.ndarray, n_zero: int, options: dict[str, Any]) -> np.ndarray | None:
    """A float ray of ``b − M x ∈ {0} × ℝ₊`` from DAQP: the multipliers of ``min ½t²  s.t.  M_E x = b_E,
    M_I x − t ≤ b_I``, whose stationarity in ``x`` is ``Mᵀλ = 0`` (``λ_I ≥ 0``, ``Σλ_I = t > 0`` when the rows
    are inconsistent); ``None`` when DAQP does not solve it. Only a candidate: the caller checks it exactly."""
    import daqp  # where used: availability checks must not load the solver

    m, n = M.shape
    H = np.zeros((n + 1, n + 1))
    H[n, n] = 1.0
    C = np.zeros((m, n + 1))
    C[:, :n] = M
    C[n_zero:, n] = -1.0
    low = np.concatenate([b[:n_zero], np.full(m - n_zero, -BIG)])
    sense = np.zeros(m, dtype=np.int32)
    sense[:n_zero] = _EQUALITY
    opts = {k: v for k, v in options.items() if k != "primal_start"}
    opts["eps_prox"] = abs(float(opts.get("eps_prox", 1e-6))) or 1e-6  # H is singular in x: proximal iterations
    _x, _f, flag, info = daqp.solve(H, np.zeros(n + 1), np.ascontiguousarray(C), np.ascontiguousarray(b),
                                    low, sense, **opts)
    lam = np.asarray(info.get("lam", ()), dtype=float)
    if int(flag) not in (1, 2) or lam.shape != (m,) or not np.all(np.isfinite(lam)):
        return None
    return lam


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
        solved = time.perf_counter() - t0
        status = STATUS_MAP.get(int(flag), st.SOLVER_ERROR)
        proof, native = True, f"exitflag {flag}"
        if int(flag) == _INFEASIBLE:
            # DAQP gives no certificate: a crossed pair of rows, else a phase-1 ray, checked exactly
            proof, why = _proves_infeasible(A, lower, upper, opts)
            native += f" ({why})"
        elif int(flag) == _UNBOUNDED:
            # no ray either: a descent direction in the (float) null space of P, checked exactly
            proof, why = _proves_unbounded(H, np.asarray(sub.q, dtype=float), A, lower, upper, opts)
            native += f" ({why})"
        elif int(flag) == _OVERDETERMINED and _inconsistent(np.vstack([np.eye(sub.n), A])[sense == _EQUALITY],
                                                            upper[sense == _EQUALITY]):
            status = st.INFEASIBLE  # -6 on equalities that contradict each other, decided exactly
        wall = time.perf_counter() - t0
        return MatrixOutcome(status, np.asarray(x, dtype=float) if st.has_solution(status) else None,
                             min(solved, float(info.get("solve_time", solved)) + float(info.get("setup_time", 0.0)))
                             + (wall - solved),
                             native, int(info.get("iterations", 0)), proof=proof)
