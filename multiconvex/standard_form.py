"""The one seam every part shares: a block subproblem on a piece.

A front end (cvxpy, Pyomo, a torch model) compiles a user's model to a
:class:`StandardForm`: variables split into blocks, the objective at a point,
the piece at a point, and for any block the convex subproblem on the
cross-section through a point restricted to its piece. Drivers and
certificates only ever talk to this interface.
"""

from __future__ import annotations

import contextlib
import math
from abc import ABC, abstractmethod
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Point = dict[Hashable, np.ndarray]


@dataclass(frozen=True)
class Block:
    """A named set of variables (keys of a :data:`Point`). Blocks may overlap."""

    name: str
    keys: tuple[Hashable, ...]


@dataclass
class BlockSolution:
    """What one block subproblem solve produced.

    ``values`` holds the block's new variable values (``None`` when the solve
    failed); ``value`` is the subproblem's optimal value as the backend reports
    it (the true objective restricted to the cross-section and piece, without any
    proximal term). A form may report a proven lower bound of that optimum instead
    (within its solve tolerance of the objective at ``values``), so that the gap
    ``f − value`` is never smaller than the true one.
    """

    block: int
    status: str
    values: dict[Hashable, np.ndarray] | None = None
    value: float = float("nan")
    backend: str | None = None
    solve_time: float = 0.0
    wall_time: float = 0.0
    message: str = ""
    attempts: list[Any] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.values is not None


class StandardForm(ABC):
    """A piecewise multi-convex problem as drivers see it."""

    blocks: list[Block]
    sense: int = 1  # +1 minimise, -1 maximise (objective() is always the minimised quantity)

    @abstractmethod
    def keys(self) -> list[Hashable]:
        """Every variable key, in a fixed order."""

    @abstractmethod
    def initial_point(self, seed: int | None, init: Mapping[Any, Any] | None) -> Point:
        """Start point: user values where set, seeded random values elsewhere."""

    @abstractmethod
    def evaluate(self, point: Point) -> tuple[float, float]:
        """(objective, violation) at ``point``: the minimised objective, ``inf`` when the point is
        infeasible, and the largest constraint violation beyond tolerance (0 when feasible)."""

    def exactly_feasible(self, point: Point, block: int | None = None) -> bool:
        """Whether every constraint holds at ``point`` exactly, with no tolerance, except (when ``block`` is given,
        and the form knows which rows those are) the rows that involve block ``block``, which its subproblem holds:
        what a proof that the block's subproblem is unbounded needs of the other blocks' values (within a
        tolerance, ``min x·z`` with ``z ≥ 0, z ≤ 0`` at ``z = 1e-8`` has an unbounded ``x`` block and the optimum
        0). The default, for forms whose :meth:`evaluate` applies no tolerance to their constraints (or has none),
        is a violation of 0 there, every row counted; forms with a feasibility tolerance override it."""
        return self.evaluate(point)[1] == 0.0

    def objective(self, point: Point) -> float:
        """The (minimised) objective at ``point``; ``inf`` if ``point`` is infeasible."""
        return self.evaluate(point)[0]

    @abstractmethod
    def piece(self, point: Point) -> tuple[np.ndarray, ...]:
        """The piece (activation pattern of every piecewise-affine atom) at ``point``."""

    @abstractmethod
    def prepare(self, index: int, point: Point, *, prox: float = 0.0, flip_boundary: bool = False) -> bool:
        """Set block ``index``'s subproblem data for the cross-section through ``point``.

        Must run in the driver's thread; :meth:`solve_prepared` may then run elsewhere.
        With ``flip_boundary`` the piece is the neighbour across the boundary: units whose
        pre-activation is ≈ 0 at ``point`` take the other side. Returns whether the
        piece has such boundary units (then the neighbouring piece is worth a solve).
        """

    @abstractmethod
    def solve_prepared(self, index: int) -> BlockSolution:
        """Solve block ``index``'s prepared subproblem (thread-safe across blocks)."""

    def merit(self, index: int, sol: BlockSolution) -> tuple[float, float] | None:
        """``(objective, violation)`` of block ``index``'s candidate when its solve already knows them
        exactly (then the driver need not :meth:`evaluate` it), else ``None``."""
        return None

    def extrapolated(self, point: Point) -> Point:
        """The point the driver's extrapolation (:mod:`multiconvex.extrapolation`) evaluates for ``point``: a form
        whose feasible set has simple bounds returns it projected onto them (NMF: clipped at 0, as Ang & Gillis
        do); the default is ``point`` itself (an infeasible one is refused by its merit)."""
        return point

    def isolated(self, index: int) -> bool:
        """Whether block ``index``'s feasible set does not depend on the other blocks or the piece (its
        constraints involve its own variables only): then a proof that its subproblem is infeasible is a
        proof that the problem is. ``False`` (the safe answer) unless a form knows better."""
        return False

    def adjacent_gap_bound(self, index: int, point: Point, tol: float | None = None) -> float | None:
        """An upper bound of block ``index``'s gap over *every* piece that contains ``point``, or ``None`` when the
        pieces its solves cover (its own piece and the neighbouring piece across a boundary) are all of them.
        With ``tol`` the caller only asks whether the gap is ``≤ tol``: a form may stop refining as soon as that is
        decided and return a looser valid bound (``tol=inf``: any valid bound will do, the block is not certified
        anyway); ``None`` asks for the tightest bound the form computes.

        A point with ``k ≥ 2`` pre-activations on a boundary that a block depends on lies in up to ``2^k`` pieces of
        that block; the drivers and certificates report ``max(gap, bound)`` (``nan`` when either is ``nan``), so a
        certified block is a local minimum along the block, not only on its piece. ``nan``: the bound could not be
        computed. The default (``None``) keeps the two-piece claim; a form that knows its kinks overrides it
        (:meth:`multiconvex.nets.form.NetForm.adjacent_gap_bound`)."""
        return None

    def adjacent_step(self, index: int, point: Point, tol: float | None = None) -> dict[Hashable, np.ndarray] | None:
        """Block ``index``'s new values along a direction where the objective falls, when its
        :meth:`adjacent_gap_bound` (asked with the same ``tol``) is positive because of a piece that its solves do
        not cover; ``None`` otherwise. The driver offers it as one more candidate (accepted only if strictly
        better), so that a run moves on from a point that is a minimum on its solved pieces but not along the
        block. The default has none."""
        return None

    def set_deadline(self, deadline: float | None) -> None:
        """The run's deadline (``time.time()`` seconds; ``None``: no limit), set by the driver before its
        first solve and cleared after its last. A form whose block solves go through the dispatcher
        stores it on its :class:`~multiconvex.solvers.dispatch.Plan`, which then starts no solve after
        it and hands each backend the remaining time as its own time limit. The default does nothing
        (the driver still checks the deadline between block solves)."""
        return None

    def set_tolerance(self, tol: float) -> None:
        """The run's relative gap tolerance ``tol`` (gaps count as zero up to ``tol·|f|``), set by the driver
        before its first solve. A form may then compute objective values in a cheaper arithmetic whose
        rounding error it bounds well below ``tol·|f|``; the default does nothing (values stay exact)."""
        return None

    def session(self) -> contextlib.AbstractContextManager:
        """A context the driver holds around its block solves (not around callbacks): a form whose
        blocks are small runs them with one BLAS thread, say. The default does nothing."""
        return contextlib.nullcontext()

    def ship(self, index: int) -> tuple[Any, Any] | None:
        """Block ``index``'s prepared solve as plain data ``(function, argument)`` that can run in
        another process (a pool or a Dask worker), or ``None`` when the solve needs this process's
        state (a compiled cvxpy problem). :meth:`receive` turns the function's result into a
        :class:`BlockSolution`."""
        return None

    def receive(self, index: int, result: Any) -> BlockSolution:
        """The :class:`BlockSolution` of a shipped solve (see :meth:`ship`)."""
        raise NotImplementedError(f"{type(self).__name__} ships no block solves")

    @abstractmethod
    def load(self, point: Point) -> None:
        """Write ``point`` into the user's model."""

    @abstractmethod
    def named_values(self, point: Point) -> dict[str, np.ndarray]:
        """``point`` keyed by the user's variable names."""


def replace(point: Point, values: Mapping[Hashable, np.ndarray]) -> Point:
    """A new point with ``values`` substituted (the cross-section move)."""
    new = dict(point)
    new.update(values)
    return new


def gap_over_adjacent_pieces(form: StandardForm, index: int, point: Point, solved: float,
                             tol: float) -> tuple[float, float | None]:
    """Block ``index``'s gap for the certificate, from its gap ``solved`` on the pieces its solves covered, and the
    form's bound it took (``None``: none asked for, or the form has none).

    Within ``±tol`` the gap is ``max(solved, bound)`` with the form's bound over every piece containing the point
    (:meth:`StandardForm.adjacent_gap_bound`, asked to decide ``≤ tol`` only; ``nan`` when the bound is ``nan``: the
    block's optimum over those pieces is not known): a certificate needs it. Outside, or
    ``nan``, ``solved`` decides already (the block is not certified; the true gap is at least ``solved``) and is
    reported as it is: no bound is computed, and the number stays the solved pieces' gap rather than an upper bound
    that can be as loose as ``F``."""
    if math.isnan(solved) or not -tol <= solved <= tol:
        return solved, None
    bound = form.adjacent_gap_bound(index, point, tol)
    if bound is None:
        return solved, None
    return (math.nan if math.isnan(bound) else max(solved, bound)), bound
