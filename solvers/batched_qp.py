"""Many small dense QPs with one interval per row, solved exactly one after another by DAQP.

The unit blocks of a ReLU network (:mod:`multiconvex.nets.batched`) are QPs in ``c`` variables
with a dense, positive definite ``P`` and one interval per sample on one linear form,
``lower ≤ C x ≤ upper``. Every unit of a layer shares ``C`` (the layer's inputs), so the batch
hands DAQP the same contiguous matrix each time: no sparse matrices, no copies, no dispatcher
bookkeeping per unit. DAQP's answer is a vertex of the active set (exact to rounding), so the
block gaps measured with it reach rounding level. A QP of :data:`TRANSFORM_MIN_VARS` or more variables reaches DAQP
whitened (:mod:`.whitened`: the same rows, values and multipliers, DAQP's own row transform done by one BLAS call).

Examples
--------
>>> import numpy as np
>>> P = np.stack([np.eye(2), 2 * np.eye(2)])
>>> q = np.array([[-1.0, -1.0], [2.0, 0.0]])
>>> C = np.array([[1.0, 1.0]])
>>> out = solve_interval_qps(P, q, C, np.array([[-np.inf], [0.0]]), np.array([[1.0], [np.inf]]))
>>> [s for s in out.status], np.round(out.x, 9).tolist()
(['optimal', 'optimal'], [[0.5, 0.5], [-0.5, 0.5]])
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import status as st
from .dispatch import one_blas_thread
from .matrix import BIG
from .whitened import MIN_VARS, solve_daqp

#: DAQP's constraint sense bits: in the working set, at its lower side.
_ACTIVE, _LOWER = 1, 2
#: The sense of a row by its ``active=`` code plus one (``-1`` lower, ``0`` free, ``1`` upper): one table look-up
_SENSE = np.array([_ACTIVE | _LOWER, 0, _ACTIVE], dtype=np.int32)
#: From this many variables on, a QP on a shared ``C`` reaches DAQP whitened (:mod:`.whitened`): ~60% of a
#: 65-variable unit block's solve on 442 rows (diabetes) was DAQP forming ``C L⁻ᵀ`` row by row.
TRANSFORM_MIN_VARS = MIN_VARS


@dataclass
class BatchOutcome:
    """What :func:`solve_interval_qps` found for each QP of the batch (row ``b`` of every array)."""

    status: list[str]
    x: np.ndarray  # (B, n); nan rows where no solution
    solve_time: np.ndarray  # (B,) seconds inside DAQP
    iterations: np.ndarray  # (B,)
    #: the final working set from DAQP's multipliers, coded as ``active=`` (``-1`` lower, ``1`` upper, ``0`` free)
    active: np.ndarray | None = None  # (B, m) int8 for a shared ``C``; None for per-QP rows


def _finite(v: np.ndarray) -> np.ndarray:
    """±inf replaced by ±:data:`~multiconvex.solvers.matrix.BIG` (DAQP takes no infinities): the values of
    :func:`~multiconvex.solvers.matrix.finite_or_big` by two ufuncs, without ``np.clip``'s call overhead."""
    return np.maximum(np.minimum(v, BIG), -BIG)


def _solve_one(daqp: Any, P: np.ndarray, q: np.ndarray, A: np.ndarray, lb: np.ndarray, ub: np.ndarray,
               start: np.ndarray | None, guess: np.ndarray | None, run: dict, whiten: bool,
               times: np.ndarray, iters: np.ndarray, b: int) -> tuple[str, np.ndarray | None, np.ndarray | None]:
    """One QP of the batch by DAQP (:func:`~.whitened.solve_daqp`: whitened when ``whiten`` and ``P`` is fit for it,
    on ``P`` itself again should the whitened solve end neither optimal nor out of time), from the working set
    ``guess`` first and from scratch should that fail: ``(status, x or None, multipliers or None)``; its time (DAQP's
    and the whitening's) and iterations are added to ``times[b]``, ``iters[b]``."""
    if start is not None:
        run = {**run, "primal_start": start}
    senses = [None] if guess is None else [_SENSE[np.sign(guess).astype(np.intp) + 1], None]
    out = solve_daqp(daqp, P, q, A, lb, ub, senses, run, whiten, (st.OPTIMAL, st.TIME_LIMIT))
    times[b] += out.daqp_time
    iters[b] += out.iterations
    if out.x is None:
        return out.status, None, None
    return out.status, out.x, out.info.get("lam")


def solve_interval_qps(P: np.ndarray, q: np.ndarray, C: np.ndarray | list[np.ndarray], lower: np.ndarray,
                       upper: np.ndarray, *, warm: np.ndarray | None = None, active: np.ndarray | None = None,
                       options: dict[str, Any] | None = None, deadline: float | None = None) -> BatchOutcome:
    """``min ½xᵀP_b x + q_bᵀx  s.t.  lower_b ≤ C_b x ≤ upper_b`` for every ``b``, by DAQP.

    Parameters
    ----------
    P : array (B, n, n)
        Symmetric positive (semi)definite; DAQP regularises only when one is singular.
    q : array (B, n)
    C : array (m, n), or a list of B arrays (m_b, n)
        The rows; one shared matrix when every QP has the same (one unit's layer inputs).
    lower, upper : arrays (B, m) (or lists of (m_b,))
        Intervals; ``∓inf`` for a missing side. A crossed interval (``lower > upper``) makes that QP
        ``"infeasible"`` without a solve (the rows contradict each other).
    warm : array (B, n), optional
        Primal starts.
    active : int array (B, m), optional
        A guess of the active set (the rows tight at a nearby point): ``-1`` at the lower side, ``1`` at the
        upper side, ``0`` free. DAQP starts from that working set (few iterations near a solution) and
        corrects it; should it fail from there, the QP is solved again from scratch.
    options : dict, optional
        DAQP settings, passed through.
    deadline : float, optional
        ``time.time()`` seconds (a run's time limit, :attr:`multiconvex.solvers.dispatch.Plan.deadline`): no QP
        starts after it (status ``"time_limit"``, no point), and each gets the remaining time as DAQP's own
        ``time_limit`` unless ``options`` set one.
    """
    import daqp  # the solver's module is imported where it is used: checking availability must not load it

    B, n = q.shape
    # contiguous float64 once for the batch (DAQP's wrapper copies whatever is not)
    P, q = np.ascontiguousarray(P, dtype=float), np.ascontiguousarray(q, dtype=float)
    warm = None if warm is None else np.ascontiguousarray(warm, dtype=float)
    shared = not isinstance(C, list)
    if shared:
        C = np.ascontiguousarray(C, dtype=float)
        # one pass over the batch's intervals: the crossed check and DAQP's finite bounds (±inf -> ±BIG)
        # C order: DAQP reads each row through a pointer (a transposed view's row is strided)
        lower, upper = np.ascontiguousarray(lower, dtype=float), np.ascontiguousarray(upper, dtype=float)
        crossed = np.any(lower > upper, axis=1)
        lower_big, upper_big = _finite(lower), _finite(upper)  # C order, as their inputs
    x = np.full((B, n), np.nan)
    times, iters = np.zeros(B), np.zeros(B, dtype=int)
    final = np.zeros((B, C.shape[0]), dtype=np.int8) if isinstance(C, np.ndarray) else None
    status: list[str] = []
    opts = {"eps_prox": -1e-6, **(options or {})}  # negative: regularise only when P is singular
    user_limit = any(k.lower() == "time_limit" for k in opts)
    whiten = shared and n >= TRANSFORM_MIN_VARS
    # the triangular solves of the whitened QPs are small: spinning BLAS threads cost more than they save
    with one_blas_thread() if whiten else contextlib.nullcontext():
        for b in range(B):
            if isinstance(C, np.ndarray):  # shared
                A, empty, lb, ub = C, bool(crossed[b]), lower_big[b], upper_big[b]
            else:
                A = np.ascontiguousarray(C[b], dtype=float)
                lo, up = np.ascontiguousarray(lower[b], dtype=float), np.ascontiguousarray(upper[b], dtype=float)
                empty, lb, ub = bool(np.any(lo > up)), _finite(lo), _finite(up)
            if empty:
                status.append(st.INFEASIBLE)
                continue
            run = dict(opts)
            if deadline is not None:
                remaining = deadline - time.time()
                if remaining <= 0:  # the run's time is up: no solve starts
                    status.append(st.TIME_LIMIT)
                    continue
                if not user_limit:
                    run["time_limit"] = max(remaining, 1e-3)
            guess = None if active is None else np.asarray(active[b])
            if guess is not None and (not guess.any() or np.count_nonzero(guess) > n):
                guess = None  # nothing to start from, or more rows than variables: start from scratch
            start = run.pop("primal_start", warm[b] if warm is not None else None)  # the options' start first
            s, xb, lam = _solve_one(daqp, P[b], q[b], A, lb, ub, start, guess, run, whiten, times, iters, b)
            status.append(s)
            if xb is not None:
                x[b] = xb
                if final is not None and lam is not None and len(lam) == final.shape[1]:
                    final[b] = np.sign(lam)
    return BatchOutcome(status, x, times, iters, final)


__all__ = ["BatchOutcome", "solve_interval_qps"]
