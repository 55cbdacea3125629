"""Solving a batch of unit blocks (:class:`~multiconvex.nets.batched.UnitBatch`) exactly.

* ``solver="auto"``: a hidden unit's block is a dense QP with one interval per sample on the
  rows ``ã`` that every unit of the layer shares; DAQP solves each exactly
  (:func:`multiconvex.solvers.batched_qp.solve_interval_qps`) without a sparse matrix or a dispatcher
  round trip per unit. A neighbouring piece derived from the own piece's batch starts from the own solve's
  final working set (:attr:`~multiconvex.nets.batched.UnitBatch.active`), a few rows from its optimum as a
  rule; any other solve from the rows tight at the point. An output unit's block has no piece rows: one
  batched Cholesky solve for the whole layer (the closed form). A unit DAQP cannot solve goes to the
  dispatcher (ProxQP, Clarabel, ...).
* any other ``solver=``: each unit's block as a :class:`~multiconvex.subproblem.BlockSubproblem`
  through :func:`multiconvex.solvers.dispatch.solve` with the user's plan (``clarabel-native``
  stays the reference it always was).

A piece that is empty by its own rows (a crossed interval ``lower_i > upper_i`` on one row ``ã_i``: possible only
on a neighbouring piece across a boundary) is answered ``"infeasible"`` here, whatever the plan: that one row
is the proof, as the data stand, and no backend can say more (it used to go to the dispatcher as two one-sided
rows, a dense ``(N + crossings) × c`` block per unit, for DAQP's crossed-pair check to find the same row).

A neighbouring piece without a crossed interval that DAQP leaves unsolved (it calls the piece empty, and the
dispatcher's DAQP, which checks its phase-1 ray exactly, proves it or not) gets no fallback backend under
``"auto"`` once it has more than :data:`NEIGHBOUR_FALLBACK_ROWS` rows: such a piece is empty or nearly so (the
point lies on it to within the boundary tolerance), which is where the interior-point and ADMM fallbacks run to
their iteration limits on ``N`` rows without deciding anything (README: a minutes-long sweep). The unit
then ends without a point and without a proof (``"numerical_error"``, the message says "undecided"): a sweep
step takes the own piece's solution, and the block's gap is not proven (the drivers and
:func:`multiconvex.nets.certificates.block_gaps` report ``nan`` for it).

Every solution's value is computed by the same arithmetic (:meth:`~multiconvex.nets.batched.UnitQPs.values`:
``f⁰ + ∇ᵀδ + ½δᵀPδ``), so a gap ``f⁰ − value`` is exact to rounding whichever backend ran.
"""

from __future__ import annotations

import time

import numpy as np

from ..solvers import dispatch
from ..solvers import status as st
from ..solvers.batched_qp import solve_interval_qps
from ..solvers.cvxpy_adapter import options_for
from ..solvers.registry import get_backend
from ..subproblem import BlockSubproblem, make_slots
from .batched import UnitBatch, UnitQPs, to_numpy, unit_qps
from .network import Architecture
from .subproblems import dense_rows

#: Under ``"auto"``, a neighbouring piece's unit block with more rows than this that DAQP (batched, then through
#: the dispatcher with its exact proof of emptiness) leaves undecided is not handed to the slower backends (see
#: the module docstring); the own piece, and smaller neighbours, keep the whole fallback list.
NEIGHBOUR_FALLBACK_ROWS = 5_000


def unit_subproblem(batch: UnitBatch, i: int, qps: UnitQPs, f0: float) -> BlockSubproblem:
    """Unit ``i`` (position in the batch) as a :class:`BlockSubproblem` (its value at ``θ⁰`` is ``f0``), the
    piece as the rows ``s_j ã_j`` with the batch's intervals (as :func:`multiconvex.nets.subproblems.piece_rows`)."""
    unit = int(batch.units[i])
    P, q, theta0 = qps.P[i], qps.q[i], qps.theta0[i]
    c = f0 - (0.5 * theta0 @ (P @ theta0) + q @ theta0)
    slots = make_slots([((batch.layer, unit), (theta0.size,))])
    if batch.sign is None:
        return BlockSubproblem(slots, [], q, float(c), P_extra=P)
    assert batch.lower is not None and batch.upper is not None
    W = batch.own_rows(i).detach().cpu().numpy()
    lower, upper = batch.lower[i].detach().cpu().numpy(), batch.upper[i].detach().cpu().numpy()
    # a crossed interval (an empty piece) as two one-sided rows, which every backend can prove infeasible
    cross = np.flatnonzero(lower > upper)
    lo = np.concatenate([lower, np.full(cross.size, -np.inf)])
    up = np.concatenate([upper, upper[cross]])
    up[cross] = np.inf
    # every entry kept (zeros too): the pattern depends only on the shape, so a backend that updates its data
    # in place between solves of a block (clarabel-native) sees the same pattern at every point
    C = dense_rows(np.vstack([W, W[cross]]), theta0.size)
    return BlockSubproblem(slots, [], q, float(c), P_extra=P, A=C, l=lo, u=up)


def _closed_form(qps: UnitQPs) -> np.ndarray | None:
    """``θ = −P⁻¹q`` for every unit by one batched Cholesky solve; ``None`` when a ``P`` is not positive definite."""
    try:
        Lc = np.linalg.cholesky(qps.P)
    except np.linalg.LinAlgError:
        return None
    y = np.linalg.solve(Lc, -qps.q[:, :, None])
    return np.linalg.solve(np.transpose(Lc, (0, 2, 1)), y)[:, :, 0]


def _active_guess(z0: np.ndarray, zlo: np.ndarray, zhi: np.ndarray) -> np.ndarray:
    """The rows tight at the point (``z`` within ``1e-9·(1 + |z|)`` of a bound): DAQP's starting working set,
    ``-1`` lower, ``1`` upper, (g, N). Near a block's optimum it is the optimum's active set or close to it."""
    eps = 1e-9 * (1.0 + np.abs(z0))
    return (zhi - z0 <= eps).view(np.int8) - (z0 - zlo <= eps).view(np.int8)  # booleans read as 0/1 bytes


def _warm_working_set(batch: UnitBatch, sel: np.ndarray | slice, zlo: np.ndarray,
                      zhi: np.ndarray) -> np.ndarray | None:
    """For a neighbouring piece derived from the own piece's batch: the own piece's final working sets (its optima
    are usually a few rows away), each row kept only where that side is still finite; ``None`` otherwise."""
    if batch.source is None or batch.source[0].active is None:
        return None
    own, pos = batch.source
    assert own.active is not None
    act = own.active if pos is None else own.active[pos.cpu().numpy()]
    act = act[sel]
    keep = np.where(act < 0, np.isfinite(zlo), np.isfinite(zhi))
    return np.where(keep, act, 0).astype(np.int8)


def _crossed(zlo: np.ndarray, zhi: np.ndarray) -> dispatch.SubSolution:
    """A unit whose piece is empty by one crossed interval ``zlo_j > zhi_j`` on the row ``ã_j`` (the proof)."""
    j = int(np.flatnonzero(zlo > zhi)[0])
    why = (f"the piece is empty: sample {j}'s interval on its row is crossed "
           f"(lower {float(zlo[j])!r} > upper {float(zhi[j])!r})")
    return dispatch.SubSolution(st.INFEASIBLE, None, float("nan"), None, 0.0, 0.0, [], message=why,
                                how="proven: a crossed interval")


def _neighbour_plan(plan: dispatch.Plan) -> dispatch.Plan:
    """``plan`` (``"auto"``) cut to DAQP alone, with its options and deadline: for a large neighbouring piece
    that the batched solve left undecided (see :data:`NEIGHBOUR_FALLBACK_ROWS`)."""
    return dispatch.Plan([get_backend("daqp")], dict(plan.options), False, deadline=plan.deadline)


def _undecided(sol: dispatch.SubSolution, rows: int) -> dispatch.SubSolution:
    """``sol`` (no point, no proof) marked as a neighbouring piece left undecided on purpose."""
    sol.message = (f"neighbouring piece undecided (no point, no proof that it is empty; {rows} rows: no fallback "
                   f"after DAQP, so the block's gap is not proven): {sol.message}")
    return sol


def _time_is_up(solve_time: float = 0.0) -> dispatch.SubSolution:
    """A unit whose solve did not start (or stopped) because the run's time limit had passed: no point."""
    return dispatch.SubSolution(st.TIME_LIMIT, None, float("nan"), "daqp", solve_time, solve_time,
                                [("daqp", st.TIME_LIMIT)], message="the time limit had passed: no unit block solved")


def solve_units(arch: Architecture, batch: UnitBatch, f0: float, n_samples: int, weight_decay: float,
                prox: float, plan: dispatch.Plan, names: list[str]) -> list[dispatch.SubSolution]:
    """Each unit block of ``batch`` solved on its piece: one :class:`~multiconvex.solvers.dispatch.SubSolution`
    per unit, its ``value`` the subproblem's value (objective on the piece plus ``prox/2‖θ − θ⁰‖²``).

    ``names`` are the blocks' names (the dispatcher's per-block workspaces). The plan's deadline
    (:meth:`~multiconvex.solvers.dispatch.Plan.remaining`) holds here too: no unit solve starts after it, and each
    DAQP solve gets the remaining time as its own limit; such a unit ends ``"time_limit"`` without a point.
    """
    t0 = time.perf_counter()
    qps = unit_qps(batch, n_samples, weight_decay, prox)
    g = batch.size
    out: list[dispatch.SubSolution | None] = [None] * g
    zlo = zhi = None
    if batch.sign is not None:
        tlo, thi = batch.z_bounds()
        zlo, zhi = to_numpy(tlo), to_numpy(thi)
        crossed = np.any(zlo > zhi, axis=1)
    else:
        crossed = np.zeros(g, dtype=bool)
    todo = [i for i in range(g) if not crossed[i]]
    for i in np.flatnonzero(crossed).tolist() if crossed.any() else ():  # an empty piece: the crossed row proves it
        assert zlo is not None and zhi is not None
        out[i] = _crossed(zlo[i], zhi[i])
    daqp = get_backend("daqp")
    if plan.auto and todo and zlo is not None and zhi is not None and plan.installed(daqp):
        C = to_numpy(batch.inputs)
        # every unit (a Gauss–Seidel step's one unit, as a rule): the arrays themselves, no fancy-indexed copies
        sel: np.ndarray | slice = slice(None) if len(todo) == g else np.asarray(todo)
        guess = _warm_working_set(batch, sel, zlo[sel], zhi[sel])
        if guess is None:
            guess = _active_guess(to_numpy(batch.z0).T[sel], zlo[sel], zhi[sel])
        res = solve_interval_qps(qps.P[sel], qps.q[sel], C, zlo[sel], zhi[sel], warm=qps.theta0[sel], active=guess,
                                 options=options_for(daqp, plan.options), deadline=plan.deadline)
        if batch.parts is not None and res.active is not None:  # the neighbouring piece's solve starts from these
            batch.active = np.zeros((g, C.shape[0]), dtype=np.int8)
            batch.active[sel] = res.active
        for j, i in enumerate(todo):
            if st.has_solution(res.status[j]):
                out[i] = dispatch.SubSolution(res.status[j], res.x[j], qps.value(i, res.x[j], f0), "daqp",
                                              float(res.solve_time[j]), float(res.solve_time[j]),
                                              [("daqp", res.status[j])])
            elif res.status[j] == st.TIME_LIMIT:  # out of time: no fallback (as the dispatcher)
                out[i] = _time_is_up(float(res.solve_time[j]))
    elif plan.auto and todo and batch.sign is None:
        t1 = time.perf_counter()
        x = _closed_form(qps)
        if x is not None:
            per = (time.perf_counter() - t1) / g
            for i in todo:
                out[i] = dispatch.SubSolution(st.OPTIMAL, x[i], qps.value(i, x[i], f0), "lstsq", per, per,
                                              [("lstsq", st.OPTIMAL)])
    rows = batch.inputs.shape[0]
    cut = batch.neighbour and plan.auto and rows > NEIGHBOUR_FALLBACK_ROWS and plan.installed(daqp)
    # a neighbouring piece without prox matters only below the point's value f0 (NetForm._cutoff)
    cutoff = f0 if batch.neighbour and prox == 0 else None
    for i in range(g):
        if out[i] is None:  # a named solver, or what the fast path could not solve: the dispatcher
            sub = unit_subproblem(batch, i, qps, f0)
            sol = dispatch.solve(sub, _neighbour_plan(plan) if cut else plan, warm=qps.theta0[i], key=names[i],
                                 cutoff=cutoff)
            if cut and sol.x is None and sol.status not in (st.INFEASIBLE, st.CUTOFF, st.TIME_LIMIT):
                sol = _undecided(sol, rows)
            if sol.x is not None:
                sol.value = qps.value(i, sol.x, f0)
            out[i] = sol
    wall = (time.perf_counter() - t0) / max(1, g)
    result: list[dispatch.SubSolution] = []
    for sol in out:
        assert sol is not None
        sol.wall_time = max(sol.wall_time, wall)
        result.append(sol)
    return result


__all__ = ["solve_units", "unit_subproblem"]
