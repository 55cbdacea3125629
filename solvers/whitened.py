"""A dense QP in whitened coordinates, for DAQP: ``u = Lᵀx`` with ``P = LLᵀ``.

``min ½xᵀPx + qᵀx  s.t.  lower ≤ Cx ≤ upper`` is ``min ½‖u‖² + (L⁻¹q)ᵀu  s.t.  lower ≤ (C L⁻ᵀ) u ≤ upper``: the same
rows (their values ``Cx``, their sides, their multipliers), an identity Hessian. DAQP works in these coordinates
anyway; given ``P`` it forms ``C L⁻ᵀ`` itself, one row at a time in plain loops, which on a unit block of a ReLU
network (65 variables, 442 rows, diabetes) is about 60% of the solve. One BLAS triangular solve forms it in a fifth
of the time, and DAQP, given the identity, skips its own. Below :data:`MIN_VARS` variables the few extra calls cost
more than they save. A nearly singular ``P`` is not whitened (:data:`MIN_PIVOT`), and the callers solve a QP again on
``P`` itself when its whitened solve ends neither optimal nor out of time: whitening changes the work, never the
answer DAQP would give.

Examples
--------
>>> import numpy as np, daqp
>>> P, q, C = np.array([[4.0, 1.0], [1.0, 2.0]]), np.array([-1.0, -1.0]), np.array([[1.0, 1.0]])
>>> w = Whitened.of(P, q, C)
>>> u, *_ = daqp.solve(w.eye(), w.lin, w.rows, np.array([0.1]), np.array([-1e30]), np.zeros(1, dtype=np.int32))
>>> x = w.to_x(u)
>>> bool(abs((C @ x)[0] - 0.1) < 1e-12)  # the row is active: x on it
True
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.linalg.blas import dtrsm
from scipy.linalg.lapack import dpotrf, dtrtrs

from . import status as st
from .daqp_qp import STATUS_MAP, solve_interruptibly

#: From this many variables on, the unit blocks' QPs reach DAQP whitened (measured on 442 rows: 11 variables slower,
#: 24 even, 48 and up faster).
MIN_VARS = 32
#: A factor whose smallest pivot² is below this times ``P``'s largest diagonal entry is not used: on a nearly singular
#: ``P`` the whitened rows have norms ~1/pivot and DAQP, which recognises such a ``P`` itself and regularises it,
#: cycles or calls a feasible piece empty there (a review found both at condition numbers ≳ 1e11).
MIN_PIVOT = 1e-10

_EYE: dict[int, np.ndarray] = {}


class Whitened:
    """One QP's whitened data: the Cholesky factor ``L`` (lower), the rows ``C L⁻ᵀ`` (C order, as DAQP reads them)
    and the linear term ``L⁻¹q``. Make it with :meth:`of`."""

    def __init__(self, L: np.ndarray, rows: np.ndarray, lin: np.ndarray):
        self.L, self.rows, self.lin = L, rows, lin

    @classmethod
    def of(cls, P: np.ndarray, q: np.ndarray, C: np.ndarray) -> Whitened | None:
        """The QP ``(P, q, C)`` whitened; ``None`` when ``P`` or ``q`` is not finite or ``P`` has no Cholesky factor
        with pivots above :data:`MIN_PIVOT` (relative): DAQP then gets ``P`` itself (and decides, regularises or
        fails as it always did)."""
        factor = cls.factor(P, q)
        if factor is None:
            return None
        return cls(factor[0], whiten_rows(factor[0], C), factor[1])

    @staticmethod
    def factor(P: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """``(L, L⁻¹q)`` as :meth:`of` makes them (``None`` where it returns ``None``), for rows whitened later."""
        if not (np.isfinite(P).all() and np.isfinite(q).all()):
            return None
        L, info = dpotrf(P, lower=1, clean=1)
        if info != 0 or np.diagonal(L).min() ** 2 < MIN_PIVOT * np.diagonal(P).max():
            return None
        return L, dtrtrs(L, q, lower=1)[0]

    def eye(self) -> np.ndarray:
        """The identity Hessian (one array per size, shared: DAQP only reads it)."""
        n = self.L.shape[0]
        if n not in _EYE:
            _EYE[n] = np.eye(n)
        return _EYE[n]

    def to_u(self, x: np.ndarray) -> np.ndarray:
        """A point ``x`` (a primal start) in the whitened coordinates."""
        return self.L.T @ x

    def to_x(self, u: np.ndarray) -> np.ndarray:
        """A whitened solution back in the QP's coordinates."""
        return dtrtrs(self.L, u, lower=1, trans=1)[0]


def whiten_rows(L: np.ndarray, C: np.ndarray) -> np.ndarray:
    """The rows ``C L⁻ᵀ`` (C order), one BLAS triangular solve; each row's own (a row's numbers do not depend
    on which other rows are solved with it)."""
    return np.ascontiguousarray(dtrsm(1.0, L, C, side=1, lower=1, trans_a=1))


class WhitenedRows:
    """One QP's factor and its rows whitened as QPs on subsets of them ask for them (constraint generation: a
    growing subset, solved again after each growth), each row once.

    ``None`` from :meth:`on` when :meth:`Whitened.factor` refuses ``P`` (DAQP then gets ``P`` itself). ``L`` is the
    factor (``None`` then), for the caller's own solves with ``P``."""

    def __init__(self, P: np.ndarray, q: np.ndarray, C: np.ndarray):
        factor = Whitened.factor(P, q)
        self.L: np.ndarray | None = None if factor is None else factor[0]
        self._lin: np.ndarray | None = None if factor is None else factor[1]
        self._C = C
        self._rows = np.empty_like(C) if factor is not None else None
        self._done = np.zeros(C.shape[0], dtype=bool)

    @property
    def lin(self) -> np.ndarray | None:
        """``L⁻¹q`` (``None`` without a factor)."""
        return self._lin

    def rows(self, idx: np.ndarray) -> np.ndarray:
        """The rows ``idx`` (indices into ``C``) whitened, ``C[idx] L⁻ᵀ`` (a new array); only with a factor."""
        assert self.L is not None and self._rows is not None
        new = idx[~self._done[idx]]
        if new.size:
            self._rows[new] = whiten_rows(self.L, self._C[new])
            self._done[new] = True
        return self._rows[idx]

    def on(self, idx: np.ndarray) -> Whitened | None:
        """The QP on the rows ``idx`` (ascending indices into ``C``) whitened."""
        if self.L is None or self._rows is None or self._lin is None:
            return None
        return Whitened(self.L, np.ascontiguousarray(self.rows(idx)), self._lin)


@dataclass
class DaqpRun:
    """What :func:`solve_daqp` found: the last run's status, ``x`` in the QP's coordinates (``None`` without a
    solution), DAQP's ``info`` of that run (its ``"lam"``: the rows' multipliers, the same whitened or not), the
    seconds (``wall``: every run and the whitening; ``daqp_time``: DAQP's own setup and solve times, each capped by
    its run's wall, plus the whitening) and DAQP's iterations over every run."""

    status: str
    x: np.ndarray | None = None
    info: dict = field(default_factory=dict)
    wall: float = 0.0
    daqp_time: float = 0.0
    iterations: int = 0


def solve_daqp(daqp: Any, P: np.ndarray, q: np.ndarray, C: np.ndarray, lower: np.ndarray, upper: np.ndarray,
               senses: Sequence[np.ndarray | None], options: dict[str, Any], whiten: bool | Whitened | None,
               stop: Collection[str]) -> DaqpRun:
    """``min ½xᵀPx + qᵀx  s.t.  lower ≤ Cx ≤ upper`` (finite bounds) by DAQP, from each working set of ``senses`` in
    turn (DAQP's ``sense`` arrays, copied: DAQP writes into them; ``None``: from scratch) until a run ends in ``stop``.
    Whitened when ``whiten`` is true and :meth:`Whitened.of` takes ``P``, or as given (a :class:`Whitened` of this QP,
    from :class:`WhitenedRows`); a whitened solve that ends neither optimal nor out of time is done again, every start,
    on ``P`` itself. A ``primal_start`` in ``options`` is in ``x``'s coordinates. The one DAQP loop of the unit
    blocks' batches (:mod:`.batched_qp`) and the Newton steps (:mod:`.newton_qp`)."""
    t0 = time.perf_counter()
    white = whiten if isinstance(whiten, Whitened) else Whitened.of(P, q, C) if whiten else None
    out = DaqpRun(st.SOLVER_ERROR)
    out.wall = out.daqp_time = time.perf_counter() - t0
    _runs(daqp, P, q, C, lower, upper, senses, options, white, stop, out)
    if white is not None and out.status not in (st.OPTIMAL, st.TIME_LIMIT):
        white = None
        _runs(daqp, P, q, C, lower, upper, senses, options, None, stop, out)
    if st.has_solution(out.status) and out.x is not None:
        out.x = np.asarray(out.x, dtype=float)
        if white is not None:
            out.x = white.to_x(out.x)
    else:
        out.x = None
    return out


def _runs(daqp: Any, P: np.ndarray, q: np.ndarray, C: np.ndarray, lower: np.ndarray, upper: np.ndarray,
          senses: Sequence[np.ndarray | None], options: dict[str, Any], white: Whitened | None,
          stop: Collection[str], out: DaqpRun) -> None:
    """:func:`solve_daqp`'s runs on one form of the QP (whitened or not), into ``out``."""
    if white is not None:
        P, q, C = white.eye(), white.lin, white.rows
        if options.get("primal_start") is not None:
            options = {**options, "primal_start": white.to_u(np.asarray(options["primal_start"], dtype=float))}
    for sense in senses:
        s0 = np.zeros(C.shape[0], dtype=np.int32) if sense is None else np.array(sense, dtype=np.int32)
        t0 = time.perf_counter()
        x, _f, flag, info = solve_interruptibly(daqp, P, q, C, upper, lower, s0, options)
        wall = time.perf_counter() - t0
        out.wall += wall
        out.daqp_time += min(wall, float(info.get("solve_time", wall)) + float(info.get("setup_time", 0.0)))
        out.iterations += int(info.get("iterations", 0))
        out.status, out.x, out.info = STATUS_MAP.get(int(flag), st.SOLVER_ERROR), x, info
        if out.status in stop:
            break


__all__ = ["MIN_PIVOT", "MIN_VARS", "DaqpRun", "Whitened", "WhitenedRows", "solve_daqp", "whiten_rows"]
