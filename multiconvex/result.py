"""What a run hands back: :class:`Result`, its :class:`Certificate` and history."""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Status = Literal["converged", "stalled", "iteration_limit", "time_limit", "interrupted", "solver_failure"]

STATUSES: tuple[str, ...] = (
    "converged",  # every block gap <= tolerance at the returned point: a partial minimum
    "stalled",  # no block step lowers the objective, yet some gap exceeds the tolerance
    "iteration_limit",
    "time_limit",
    "interrupted",  # Ctrl-C: the best point so far is returned
    "solver_failure",  # every block solve of an iteration failed: the best point so far is returned
)


@dataclass(frozen=True)
class HistoryEntry:
    """One outer iteration: when it ended, the objective reached, what was accepted."""

    iteration: int
    time: float
    objective: float
    accepted_block: str | None
    max_block_gap: float
    solver_time: float


@dataclass(frozen=True)
class Certificate:
    """Optimality evidence computed at the returned point.

    Attributes
    ----------
    block_gaps : dict[str, float]
        For each block, objective at the point minus the optimum of that block's
        convex subproblem on the cross-section through the point, restricted to its
        piece (R&R Def 5.8). Nonnegative up to solver accuracy (a gap below
        ``-tolerance`` means the backend's optimum is wrong and certifies nothing);
        ``nan`` where the block solve failed or was only ``optimal_inaccurate``.
    tolerance : float
        Absolute tolerance the gaps were compared with.
    is_partial_minimum : bool
        True when every block gap was computed and is <= ``tolerance``.
    global_optimal : bool | None
        ``None``: no global certificate was computed (the theory gives none for a
        general multi-convex problem). Never set without a computation behind it.
    globalopt : multiconvex.globalopt.GlobalCertificate | None
        For parallel-subnetwork models (``algorithm="grow"``): the polar value or
        interval, λ, how the polar was computed, stationarity, and the proven lower
        bound on the global optimum with its gap bound. ``None`` when not computed.
    """

    block_gaps: dict[str, float]
    tolerance: float
    is_partial_minimum: bool
    global_optimal: bool | None = None
    globalopt: Any = None

    @property
    def polar(self) -> float | None:
        """The polar ``Ω°(−∇ℓ)`` (exact, or a lower bound: see ``globalopt.polar_exact``); None if not computed."""
        return None if self.globalopt is None else self.globalopt.polar

    @property
    def max_gap(self) -> float:
        gaps = list(self.block_gaps.values())
        return max(gaps) if gaps else math.nan

    @classmethod
    def from_gaps(cls, gaps: dict[str, float], tolerance: float) -> Certificate:
        ok = bool(gaps) and all(np.isfinite(g) and -tolerance <= g <= tolerance for g in gaps.values())
        return cls(block_gaps=dict(gaps), tolerance=float(tolerance), is_partial_minimum=ok)

    def __str__(self) -> str:
        gaps = ", ".join(f"{k}: {v:.3g}" for k, v in self.block_gaps.items())
        verdict = "partial minimum" if self.is_partial_minimum else "NOT a partial minimum"
        glob = "not computed" if self.global_optimal is None else str(self.global_optimal)
        text = f"{verdict} (block gaps {{{gaps}}} vs tol {self.tolerance:.3g}); global optimality: {glob}"
        if self.globalopt is not None:
            text += f"\n  {self.globalopt}"
        return text


@dataclass
class Result:
    """The outcome of a multiconvex run.

    Attributes
    ----------
    objective : float
        Objective at the returned (best) point, in the user's sense (a
        ``Maximize`` problem reports the maximised value), including a norm
        regulariser ``reg`` when one was asked for.
    status : str
        How the run ended: one of :data:`STATUSES`.
    iterations : int
        Outer iterations carried out.
    history : list[HistoryEntry]
        Time and objective after each iteration (entry 0 is the start).
    solver_time, total_time, build_time : float
        Seconds inside backend solvers, wall time of the whole run, and time spent
        building the block subproblems (once).
    certificate : Certificate
        Per-block gaps at the returned point.
    values : dict
        Best point, keyed by variable name.
    message : str
        One line explaining the status.
    subnetworks : int | None
        Number of (nonzero) parallel subnetworks at the returned point, for models grown by
        ``algorithm="grow"``; None otherwise.
    """

    objective: float
    status: str
    iterations: int
    history: list[HistoryEntry]
    solver_time: float
    total_time: float
    certificate: Certificate
    values: dict[str, np.ndarray] = field(default_factory=dict)
    build_time: float = 0.0
    algorithm: str = ""
    backends_used: dict[str, int] = field(default_factory=dict)
    message: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    subnetworks: int | None = None

    @property
    def solver_share(self) -> float:
        """Fraction of wall time spent inside backend solvers."""
        return self.solver_time / self.total_time if self.total_time > 0 else math.nan

    @property
    def objectives(self) -> np.ndarray:
        return np.array([h.objective for h in self.history])

    def summary(self) -> str:
        return (
            f"status={self.status} objective={self.objective:.10g} iterations={self.iterations} "
            f"time={self.total_time:.3f}s (solver {self.solver_time:.3f}s, {100 * self.solver_share:.0f}%)\n"
            f"certificate: {self.certificate}"
        )

    def __repr__(self) -> str:  # keep reprs short: values may be large
        return (
            f"Result(status={self.status!r}, objective={self.objective!r}, iterations={self.iterations}, "
            f"is_partial_minimum={self.certificate.is_partial_minimum})"
        )


Key = Hashable
