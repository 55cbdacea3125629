"""The walls of the adjacent pieces in the adjacent-piece bound: the samples whose piece rows every such piece shares.

The lower model of :mod:`multiconvex.nets.adjacent` bounds ``F`` on every piece containing the point from below, but
its minimum is taken over all steps ``d`` of the block, across every wall of those pieces. A sample none of whose
boundary entries the block moves (not on a kink of the block) keeps the point's piece rows on every adjacent piece:
an interval ``t_i = ã_iᵀd ∈ [lo_i, hi_i]`` around 0, from the unit's own entry and every later entry it moves (the
own piece's rows, :func:`multiconvex.nets.batched.unit_batch`). Where such a wall is near (an entry just outside the
boundary tolerance, say), the pieces end there and the model's minimiser lies beyond it: the bound stays far above
the gap (measured: 1.1e-6 and 1.7e-5 against true gaps of 1.0e-9, at the end points of two softmax fits).

Each wall ``s_i t_i ≤ e_i`` (``s_i = ±1``, ``e_i ≥ 0`` the distance to it) enters by its Lagrange multiplier: for
every ``ν ≥ 0``, ``min`` of the model over the walls ``≥ min_d model(d) + Σ ν_i (s_i ã_iᵀd − e_i)``, the same model
with ``g`` moved by ``Σ ν_i s_i ã_i`` less the constant ``eᵀν``. So::

    gap ≤ eᵀν + bound(g + Wᵀν)      for every ν ≥ 0,  W = [s_i ã_iᵀ],

with ``bound`` the whole bound at another ``g`` (the kinks' sides, the conjugate refinement). :func:`walled_bound`
chooses ``ν`` one wall at a time, for the walls that the bound's direction crosses (``s_i ã_iᵀd* > e_i``): ``ν_i``
minimises that expression along its axis (bracketed where the direction stops crossing it, then Brent's method),
keeping the smallest value it evaluated. Any ``ν ≥ 0`` gives a valid bound: the search only makes it tight.

Examples
--------
>>> import numpy as np
>>> from multiconvex.rounding import MidpointRadius
>>> P, g = np.eye(1), MidpointRadius.exact(np.array([-1.0]))  # the model −d + ½d²: bound ½ at d = 1
>>> def value_at(g2):
...     return 0.5 * float(g2.value @ g2.value), -g2.value  # ½‖g‖²/1 and the model's minimiser
>>> walls = Walls(np.array([[1.0]]), np.array([0.1]))  # d ≤ 0.1: the model's least value −0.1 + 0.005
>>> import scipy.linalg
>>> round(walled_bound(value_at, walls, scipy.linalg.cho_factor(P), g, 0.5, np.array([1.0]), None), 6)
0.095
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch
from scipy.optimize import minimize_scalar

from ..rounding import MidpointRadius, gamma
from .batched import unit_batch
from .network import Architecture, Params
from .piece_context import PieceContext, with_ones

#: Walls that one round takes (those the direction crosses farthest first), rounds, and evaluations of the bound per
#: block at most: each evaluation is a whole bound at another ``g`` (the kinks' sides, the refinement).
MAX_WALLS = 4
ROUNDS = 2
MAX_EVALS = 48

#: Walls are searched (with a ``tol``) only where the model, followed along its step up to the nearest wall that step
#: crosses (the fraction ``τ`` of it), falls by at most this many times ``tol``: ``2τ·bound`` (a quadratic model
#: falls by ``(2τ − τ²)·bound`` there). The step is where the bound's model puts the block (the refinement's trial
#: step for a smooth loss: the first model's direction, ``λ⁻¹`` long, crosses some wall almost at once). Where the
#: walls are farther they do not bring the bound to ``tol``: a digits softmax ``[64, 64, 64, 10]`` certifying pass
#: (bounds ~F) took 75 s instead of 4 s with every block searched. It is a cost gate, not a proof: on a digits
#: ``[64, 32, 10]`` fit after 30 iterations (bounds ~5e-4, tolerance 2.2e-8) the walls are near and most blocks pass
#: it; :data:`MAX_KINKS` and :data:`PROGRESS` bound the cost there.
GATE = 4.0

#: Blocks with more samples on kinks than this are not searched: there the kinks' relaxation decides the bound, and
#: each evaluation (a bounded least squares per side over that many columns, then the refinement) is costly.
MAX_KINKS = 32

#: A wall whose first evaluations do not bring the bound to a tenth is given up, and the search with it (with a
#: ``tol`` only): where a wall decides, the bound falls by orders of magnitude along it (1e-6 to 1e-9 at the fits'
#: end points of ``tests/test_nets_adjacent_walls.py``). On the ``[64, 32, 10]`` fit above: 27 undecided blocks in
#: 0.78 s against 0.45 s without walls (9.7 s searching each to the budget; bounds 2 % lower, none decided).
PROGRESS = 0.1
TRIES = 4

#: Doublings of the bracket's upper end at most, from the wall's own estimate.
_GROWTHS = 12


@dataclass(frozen=True)
class Walls:
    """A unit block's walls ``s_i ã_iᵀd ≤ e_i``: ``rows`` ``(m, c)`` (``s_i ã_i``) and ``e`` ``(m,)`` (``≥ 0``)."""

    rows: np.ndarray
    e: np.ndarray


def own_piece_walls(arch: Architecture, params: Params, T: torch.Tensor, pre: list[torch.Tensor],
                    inputs: list[torch.Tensor], k: int, unit: int, keep: torch.Tensor) -> Walls | None:
    """The walls of unit ``unit`` of layer ``k`` at the samples ``keep`` (``(N,)`` bool: those whose piece rows every
    adjacent piece shares), from the own piece's intervals on the unit's pre-activation; ``None`` without any.

    A side beyond the point by rounding (``e < 0``) is taken at ``e = 0`` (a larger set: still a lower bound), and a
    sample whose interval is crossed gives no wall."""
    with torch.no_grad():
        # a context of its own (not registered for the point): the forms' own-piece contexts stay theirs
        ctx = PieceContext(arch, T, pre, inputs, False)
        batch = unit_batch(arch, params, T, k, pre, inputs, [unit], context=ctx, gram=False)
        if batch.zlo is None or batch.zhi is None:
            return None
        idx = torch.nonzero(keep).squeeze(1)
        lo, hi = batch.zlo[0, idx], batch.zhi[0, idx]
        z0 = pre[k][idx, unit]
        a = (with_ones(inputs[k]) if arch.bias else inputs[k])[idx]
        ok = lo <= hi
        up, down = ok & torch.isfinite(hi), ok & torch.isfinite(lo)
        rows = torch.cat([a[up], -a[down]])
        e = torch.cat([hi[up] - z0[up], z0[down] - lo[down]]).clamp_min(0.0)
    if rows.shape[0] == 0:
        return None
    return Walls(rows.cpu().numpy(), e.cpu().numpy())


def walled_bound(value_at: Callable[[MidpointRadius], tuple[float | None, np.ndarray | None]], walls: Walls,
                 curvature: tuple, g: MidpointRadius, best: float, direction: np.ndarray, tol: float | None) -> float:
    """The smallest of ``best`` and ``eᵀν + value_at(g + Wᵀν)`` over the multipliers ``ν ≥ 0`` it tries (module
    docstring); ``value_at(g)`` is the bound at another linear part and where its model puts the block's step
    (``None`` when not computed); ``direction`` is that step at ``g`` itself. Stops at ``≤ tol``, after
    :data:`ROUNDS` rounds or :data:`MAX_EVALS` evaluations; with ``tol``, not started where the nearest wall that
    ``direction`` crosses is too far to decide (:data:`GATE`). ``curvature`` (a ``scipy.linalg.cho_factor`` of the
    model's Hessian: ``P``, or the refinement's at the point) scales each wall's first estimate of ``ν_i``."""
    W, e = walls.rows, walls.e
    slack = e - W @ direction  # the derivative in ν: below 0 where the direction crosses the wall
    crossed = slack < 0
    if not crossed.any():
        return best
    reach = float(np.min(e[crossed] / (W[crossed] @ direction)))  # the step's fraction up to the nearest wall
    if tol is not None and 2.0 * reach * best > GATE * tol:
        return best  # not near enough to bring the bound to tol: not searched
    nu = np.zeros(e.size)
    evals = [0]

    def at(v: np.ndarray) -> tuple[float, np.ndarray | None]:
        evals[0] += 1
        val, d = value_at(g.plus(W, v))  # g + Wᵀν, with the radius of its rounding
        if val is None or not math.isfinite(val):
            return math.inf, None
        return (float(e @ v) + val) * (1.0 + gamma(e.size + 1)), d  # e ≥ 0, ν ≥ 0: rounded up

    for _ in range(ROUNDS):
        order = np.flatnonzero(slack < 0)
        moved = False
        for i in order[np.argsort(slack[order])][:MAX_WALLS]:
            if evals[0] >= MAX_EVALS or tol is not None and best <= tol:
                return best
            found, gave_up = _along_wall(at, nu, i, -slack[i] / float(W[i] @ scipy.linalg.cho_solve(curvature, W[i])),
                                         e[i], W[i], evals, PROGRESS * best if tol is not None else -math.inf)
            if found is not None and found[0] < best:
                best, nu, direction = found[0], found[1], found[2]
                moved = True
            if gave_up:
                return best  # too little progress along the wall the step crosses farthest: the walls do not decide
        if not moved or tol is not None and best <= tol:
            break
        slack = e - W @ direction
    return best


class _GiveUp(Exception):
    """A wall's first evaluations made too little progress (:func:`_along_wall`)."""


def _along_wall(at: Callable[[np.ndarray], tuple[float, np.ndarray | None]], nu: np.ndarray, i: int, guess: float,
                e_i: float, w_i: np.ndarray, evals: list[int], enough: float
                ) -> tuple[tuple[float, np.ndarray, np.ndarray] | None, bool]:
    """``ν_i`` (the others fixed) minimising ``at``: the bracket's upper end doubled from ``nu[i] + guess`` until the
    direction no longer crosses the wall (or :data:`_GROWTHS` times), then Brent's method on ``[0, upper]``. Returns
    the smallest value evaluated with its ``ν`` and direction (``None`` when none was finite), and whether the wall
    was given up: its first :data:`TRIES` evaluations stayed above ``enough``."""
    seen: list[tuple[float, np.ndarray, np.ndarray]] = []
    calls = [0]

    def h(v: float) -> float:
        if calls[0] == TRIES and min((s[0] for s in seen), default=math.inf) > enough:
            raise _GiveUp
        calls[0] += 1
        trial = nu.copy()
        trial[i] = max(v, 0.0)
        val, d = at(trial)
        if d is not None:
            seen.append((val, trial, d))
        return val

    upper = nu[i] + max(guess, 0.0)
    if not (math.isfinite(upper) and upper > 0):
        return None, False
    gave_up = False
    try:
        for _ in range(_GROWTHS):
            if evals[0] >= MAX_EVALS:
                break
            h(upper)
            if not seen or seen[-1][1][i] != upper or e_i - float(w_i @ seen[-1][2]) >= 0:
                break
            upper *= 2.0
        budget = max(0, MAX_EVALS - evals[0])
        if budget:
            minimize_scalar(h, bounds=(0.0, upper), method="bounded",
                            options={"xatol": 1e-6 * upper, "maxiter": min(budget, 24)})
    except _GiveUp:
        gave_up = True
    return (min(seen, key=lambda s: s[0]) if seen else None), gave_up


__all__ = ["GATE", "MAX_EVALS", "MAX_KINKS", "MAX_WALLS", "PROGRESS", "ROUNDS", "TRIES", "Walls", "own_piece_walls",
           "walled_bound"]
