"""DAQP (dual active-set) on block subproblems: small dense QPs, solved exactly.

DAQP's answer is a vertex of the active set, not an interior-point approximation, so
block gaps measured with it reach rounding level. It takes the dense ``P`` and the
bounds as its "simple bounds" (no rows for them); equality rows get sense 5.

DAQP's feasibility tolerance is absolute on each row's value, so a row of small norm means little to it: on
``min ½‖x‖²`` with the row ``1e-6·x₁ ≥ 1e-3`` it said "infeasible", and on rows of norm ~1e-12 it returned points
two units (in distance) outside them. Each row whose largest entry is below 1 is therefore scaled, with its sides,
by the power of two that brings that entry to ``[1, 2)`` (:func:`~.matrix.row_scales`): exact, so the scaled problem
is the same set bit for bit (a row whose side would overflow keeps its scale; larger rows are not scaled down, which
would loosen them). The proofs of infeasibility and unboundedness are checked on the rows as given.

Examples
--------
>>> import numpy as np
>>> from multiconvex.subproblem import BlockSubproblem
>>> sub = BlockSubproblem.from_dense(np.eye(2), np.array([1.0, -1.0]), lb=np.zeros(2))
>>> DaqpQP().solve(sub, {}, None).x.round(9).tolist()
[0.0, 1.0]
"""

from __future__ import annotations

import math
import time
from typing import Any, ClassVar

import numpy as np

from multiconvex.subproblem import BlockSubproblem

from . import interruptible
from . import status as st
from .base import Backend
from .closed_form import inconsistent_exactly
from .exact_rays import crossed_pair, infeasible_exactly, interval_rows, settle_unbounded_claim
from .matrix import BIG, MatrixOutcome, MatrixSolver, finite_or_big, scaled_rows

#: DAQP's exit flag for its time limit; :func:`solve_interruptibly` also returns it for a call it stopped waiting for.
TIME_LIMIT_FLAG = -7

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


def solve_interruptibly(daqp: Any, H: np.ndarray, q: np.ndarray, A: np.ndarray, upper: np.ndarray,
                        lower: np.ndarray, sense: np.ndarray, options: dict[str, Any]) -> tuple:
    """``daqp.solve(H, q, A, upper, lower, sense, **options)``, large ones in a worker thread
    (:mod:`.interruptible`): a Ctrl-C is not kept waiting for the solve, and with a ``time_limit`` option the wait
    ends a little after it (DAQP's own limit leaves out its set-up) with exit flag :data:`TIME_LIMIT_FLAG`, no ``x``
    and empty ``info``."""
    limit = options.get("time_limit")
    # DAQP reads a limit <= 0 as none (its default is 0)
    wait = 1.05 * float(limit) + interruptible.POLL if limit is not None and 0 < float(limit) < math.inf else None
    out = interruptible.call(daqp.solve, (H, q, A, upper, lower, sense), options, work=A.shape[0] * H.shape[0],
                             wait_limit=wait)
    if out is interruptible.ABANDONED:
        return None, float("nan"), TIME_LIMIT_FLAG, {}
    return out

#: The weight ``w`` of ``½w‖x‖²`` in the phase-1 problem (:func:`_phase_one`): small, so that its multipliers
#: are a Farkas ray up to ``w x`` (the exact check moves them onto one on the same active set), and nonzero, so
#: that DAQP solves it exactly without proximal iterations (which stopped ~1e-6 short on 3-row examples).
PHASE_ONE_WEIGHT = 1e-8

#: DAQP's primal tolerance in the phase-1 problem: its default (1e-6) took a gap of 1e-6 between two rows as
#: satisfied, and gave no ray.
PHASE_ONE_TOL = 1e-12
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


def _proves_infeasible(M: np.ndarray, b: np.ndarray, n_zero: int, crossed: bool,
                       phase: tuple[np.ndarray, np.ndarray] | None) -> tuple[bool, str]:
    """Whether ``b − M x ∈ {0} × ℝ₊`` (:func:`.exact_rays.interval_rows` of the bounds, then the rows, as DAQP took
    them) is proven empty, and by what, for DAQP's exits −1 and −3, which come without a certificate: a crossed
    pair of rows (a neighbouring piece of a ReLU unit), else the multipliers of the phase-1 problem
    (:func:`_phase_one`) checked in exact arithmetic (:func:`.exact_rays.infeasible_exactly`; too large to
    settle exactly: undecided, not a proof)."""
    if crossed:  # crossed_pair(M, b, n_zero), found by the caller
        return True, "proven: a crossed pair of rows"
    if phase is None:
        return False, "not proven: the phase-1 problem gave no ray"
    verdict = infeasible_exactly(M, b, n_zero, (), phase[1], supports=(0.0, 1e-9))  # active-set zeros are exact
    if verdict is None:
        return False, "undecided: the phase-1 ray is too large to check exactly"
    return verdict, "proven: an exact Farkas ray from phase 1" if verdict else "not proven: no exact Farkas ray"


def _descent_direction(H: np.ndarray, q: np.ndarray, M: np.ndarray, n_zero: int,
                       options: dict[str, Any]) -> np.ndarray | None:
    """A candidate direction of unboundedness of ``min ½xᵀHx + qᵀx`` over ``b − M x ∈ {0} × ℝ₊``, for DAQP's exit
    −3 (no ray): with ``N`` a float basis of the near-null space of ``H``, the projection ``c`` of ``−Nᵀq`` onto
    the recession cone (``min ½‖c‖² + qᵀN c`` over ``M N c`` in it, a small QP for DAQP) gives ``d = N c``
    (``qᵀd = −‖c‖² < 0``); only a candidate: :func:`.exact_rays.unbounded_exactly` checks it (a tiny eigenvalue
    is curvature, and refuses it). ``None`` when there is none."""
    import daqp  # where used: availability checks must not load the solver

    w, V = np.linalg.eigh(H)
    N = V[:, w <= 1e-9 * max(float(np.abs(w).max(initial=0.0)), np.finfo(float).tiny)]
    if not N.shape[1]:
        return None
    R = M @ N  # recession cone: R c = 0 on equality rows, ≤ 0 on the others
    sense = np.zeros(R.shape[0], dtype=np.int32)
    sense[:n_zero] = _EQUALITY
    low = np.where(np.arange(R.shape[0]) < n_zero, 0.0, -BIG)
    opts = {k: v for k, v in options.items() if k not in ("primal_start", "eps_prox")}
    c, _f, flag, _info = solve_interruptibly(daqp, np.eye(N.shape[1]), N.T @ q, np.ascontiguousarray(R),
                                             np.zeros(R.shape[0]), low, sense, opts)
    if int(flag) not in (1, 2) or not np.any(c):
        return None
    return N @ np.asarray(c, dtype=float)


def _settle_unbounded(H: np.ndarray, q: np.ndarray, M: np.ndarray, b: np.ndarray, n_zero: int,
                      phase: tuple[np.ndarray, np.ndarray] | None, options: dict[str, Any]) -> tuple[str | None, str]:
    """What DAQP's exit −3 is worth (no crossed pair: the caller looked): infeasible when the phase-1 ray
    proves it (:func:`_proves_infeasible`: −3 occurs on empty sets too), else unbounded when a descent direction
    (:func:`_descent_direction`) *and* the phase-1 point are proven exactly
    (:func:`.exact_rays.settle_unbounded_claim`); ``(None, why)``: not a proof."""
    empty, why = _proves_infeasible(M, b, n_zero, False, phase)
    if empty:
        return st.INFEASIBLE, why.replace("proven:", "proven infeasible instead:")
    d = _descent_direction(H, q, M, n_zero, options)
    if d is None:
        return None, "not proven: no descent direction in the null space of P"
    return settle_unbounded_claim(H, q, M, b, n_zero, (), d, None if phase is None else phase[0], None)


def _phase_one(M: np.ndarray, b: np.ndarray, n_zero: int,
               options: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """A float point and a float ray of ``b − M x ∈ {0} × ℝ₊`` from DAQP: ``min ½t² + ½w‖x‖²  s.t.
    −t ≤ M_E x − b_E ≤ t,  M_I x − t ≤ b_I``. At ``t = 0`` its ``x`` is a feasible point; otherwise its multipliers
    (``λ_E = λ_E⁺ − λ_E⁻``, ``λ_I``) satisfy ``Mᵀλ = −w x ≈ 0`` (:data:`PHASE_ONE_WEIGHT`), ``λ_I ≥ 0``,
    ``Σ|λ| = t > 0``: a Farkas ray (equality rows get slack too, so two contradicting equalities give one).
    ``(x, λ)``, or ``None`` when DAQP does not solve it. Only candidates: the caller checks them exactly."""
    import daqp  # where used: availability checks must not load the solver

    m, n = M.shape
    H = np.diag(np.r_[np.full(n, PHASE_ONE_WEIGHT), 1.0])  # strictly convex: DAQP's active set, exactly
    E = M[:n_zero]
    C = np.zeros((m + n_zero, n + 1))
    C[:, :n] = np.vstack([E, -E, M[n_zero:]])
    C[:, n] = -1.0
    rhs = np.concatenate([b[:n_zero], -b[:n_zero], b[n_zero:]])
    opts = {k: v for k, v in options.items() if k not in ("primal_start", "eps_prox")}
    opts["primal_tol"] = min(float(opts.get("primal_tol", PHASE_ONE_TOL)), PHASE_ONE_TOL)  # DAQP's 1e-6 hid a gap
    z, _f, flag, info = solve_interruptibly(daqp, H, np.zeros(n + 1), np.ascontiguousarray(C),
                                            np.ascontiguousarray(rhs), np.full(m + n_zero, -BIG),
                                            np.zeros(m + n_zero, dtype=np.int32), opts)
    lam = np.asarray(info.get("lam", ()), dtype=float)
    if int(flag) not in (1, 2) or lam.shape != (m + n_zero,) or not np.all(np.isfinite(lam)):
        return None
    ray = np.concatenate([lam[:n_zero] - lam[n_zero:2 * n_zero], lam[2 * n_zero:]])
    return np.asarray(z, dtype=float)[:n], ray


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
        A_in, low_rows, up_rows = scaled_rows(A, lower[sub.n:], upper[sub.n:])  # the bounds are not rows
        A_in = np.ascontiguousarray(A_in)
        lower_in, upper_in = np.concatenate([lower[:sub.n], low_rows]), np.concatenate([upper[:sub.n], up_rows])
        t0 = time.perf_counter()
        x, _fval, flag, info = solve_interruptibly(daqp, H, np.asarray(sub.q, dtype=float), A_in,
                                                   finite_or_big(upper_in), finite_or_big(lower_in), sense, opts)
        solved = time.perf_counter() - t0
        status = STATUS_MAP.get(int(flag), st.SOLVER_ERROR)
        proof, native = True, f"exitflag {flag}"
        if int(flag) in (_INFEASIBLE, _UNBOUNDED):
            # DAQP gives no certificate: a crossed pair of rows, else a phase-1 ray or point, checked exactly
            M, b, n_zero = interval_rows(np.vstack([np.eye(sub.n), A]), lower, upper)
            crossed = crossed_pair(M, b, n_zero)
            phase = None if crossed else _phase_one(M, b, n_zero, opts)
            if int(flag) == _INFEASIBLE:
                proof, why = _proves_infeasible(M, b, n_zero, crossed, phase)
            elif crossed:
                proof, status, why = True, st.INFEASIBLE, "proven infeasible instead: a crossed pair of rows"
            else:  # −3 occurs on empty sets too: infeasible first, else a direction and a feasible point
                settled, why = _settle_unbounded(H, np.asarray(sub.q, dtype=float), M, b, n_zero, phase, opts)
                proof, status = settled is not None, settled or status
            native += f" ({why})"
        elif int(flag) == _OVERDETERMINED and _inconsistent(np.vstack([np.eye(sub.n), A])[sense == _EQUALITY],
                                                            upper[sense == _EQUALITY]):
            status = st.INFEASIBLE  # -6 on equalities that contradict each other, decided exactly
        wall = time.perf_counter() - t0
        return MatrixOutcome(status, np.asarray(x, dtype=float) if st.has_solution(status) else None,
                             min(solved, float(info.get("solve_time", solved)) + float(info.get("setup_time", 0.0)))
                             + (wall - solved),
                             native, int(info.get("iterations", 0)), proof=proof)
