"""A working set for a dense QP with many interval rows, found in bulk: a start for DAQP, or its answer.

``min ½yᵀHy + qᵀy  s.t.  lo ≤ Cy ≤ up`` with ``H ≻ 0`` (a Newton step of :mod:`.newton_qp`). DAQP, a dual
active-set method, adds the active rows one at a time, each addition a pass over every row in plain loops: on a
ReLU unit of MNIST's first layer (785 variables, 5,000 rows, about 290 of them active at the answer) that is
about 1 s from an empty working set, against 0.05–0.1 s from the right one.

:func:`guess_working_set` finds the working set in rounds, each a few BLAS products: the rows most violated by the
current point join (at most ``add`` a round, at the side they cross), rows whose multiplier has the wrong sign
leave, and the equality-constrained QP on the set gives the next point. It works in the whitened coordinates
``u = Lᵀy`` (:class:`.whitened.WhitenedRows`: each row whitened once, the rows DAQP would take): the set's Schur
complement is then ``BBᵀ``, ``B`` its whitened rows. It ends when no row outside the set is violated beyond
``tol`` and no multiplier has the wrong sign. It proves nothing: the caller checks the answer of the last round
against the conditions DAQP stops on (:func:`.newton_qp._optimal_on`) or hands the set to DAQP as its start, so
the answer is DAQP's, to its tolerances, whatever this returns.

Examples
--------
>>> import numpy as np
>>> from solvers.whitened import WhitenedRows
>>> H, q = np.eye(2), np.array([-2.0, -2.0])   # the unconstrained minimum (2, 2)
>>> C = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
>>> lo, up = np.full(3, -1e30), np.array([1.0, 5.0, 2.5])
>>> out = guess_working_set(WhitenedRows(H, q, C), C, lo, up, np.ones(3), 1e-9)
>>> out.sense.tolist(), out.y.tolist()  # rows 0 and 2 at their upper sides
([1, 0, 1], [1.0, 1.5])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg.lapack import dpotrf, dpotrs, dtrtrs

from .whitened import WhitenedRows

#: DAQP's constraint sense bits (as :mod:`.newton_qp`): in the working set, at its lower side.
_ACTIVE, _LOWER = 1, 2
#: Rows that join a round at most: ``n // 8`` for ``n`` variables, within these limits (more at once and the rounds,
#: which drop every row of the wrong sign, swing instead of settling: on random QPs with 60 variables and 30–45
#: active rows of 400, 64 a round settled in 3 of 24, 8 or 16 in all).
ADD = (4, 64)


@dataclass
class Guess:
    """The working set found (DAQP's ``sense``, one ``int32`` per row) and the equality-constrained QP's answer on it:
    ``y`` and the rows' multipliers ``nu`` (``> 0`` upper side, ``< 0`` lower, 0 off the set)."""

    sense: np.ndarray
    y: np.ndarray
    nu: np.ndarray


def guess_working_set(white: WhitenedRows, C: np.ndarray, lo: np.ndarray, up: np.ndarray, norms: np.ndarray,
                      tol: float, *, start: np.ndarray | None = None, add: int | None = None,
                      max_rounds: int | None = None) -> Guess | None:
    """The working set found (module docstring) with its answer, or ``None`` when the rounds did not settle: a set
    with more rows than variables, dependent rows (the Schur complement has no Cholesky factor), a non-finite point
    or ``max_rounds`` (default ``2·(n // add) + 10``) spent.

    ``white`` holds ``H``'s factor and ``L⁻¹q`` (a factor is required), ``C`` the rows, ``lo``/``up`` finite sides
    (±BIG for a free side, as DAQP takes them), ``norms`` the rows' norms (the rows farthest from the point in ``y``
    join first), ``tol`` the violation of ``Cy`` that counts (DAQP's ``primal_tol``), ``start`` a working set to
    begin from (DAQP's ``sense``; empty when ``None``), ``add`` the rows that join a round at most (default: from
    :data:`ADD`)."""
    L, h_q = white.L, white.lin
    if L is None or h_q is None:
        raise ValueError("guess_working_set needs H's Cholesky factor")
    m, n = C.shape
    add = min(max(n // 8, ADD[0]), ADD[1]) if add is None else add
    rounds = 2 * (n // add) + 10 if max_rounds is None else max_rounds
    sense = (np.zeros(m, dtype=np.int32) if start is None
             else np.where(start & _ACTIVE, start & (_ACTIVE | _LOWER), 0).astype(np.int32))
    for _ in range(rounds):
        w = np.flatnonzero(sense)
        if w.size > n:
            return None
        lam = np.zeros(w.size)
        u = -h_q
        if w.size:
            at_lower = (sense[w] & _LOWER) != 0
            B = white.rows(w)
            S, info = dpotrf(B @ B.T, lower=1, clean=0)
            if info != 0:
                return None
            lam = dpotrs(S, -(np.where(at_lower, lo[w], up[w]) + B @ h_q), lower=1)[0]
            u = u - B.T @ lam
        y = dtrtrs(L, u, lower=1, trans=1)[0]
        if not np.all(np.isfinite(y)):
            return None
        wrong = np.where(at_lower, lam > 0, lam < 0) if w.size else np.zeros(0, dtype=bool)
        r = C @ y
        beyond = np.maximum(r - up, lo - r)
        beyond[w] = -np.inf
        out = np.flatnonzero(beyond > tol)
        if not out.size and not wrong.any():
            nu = np.zeros(m)
            nu[w] = lam
            return Guess(sense, y, nu)
        sense[w[wrong]] = 0
        join = out[np.argsort(-beyond[out] / norms[out])[:add]] if out.size > add else out
        sense[join] = np.where(r[join] > up[join], _ACTIVE, _ACTIVE | _LOWER)
    return None


__all__ = ["ADD", "Guess", "guess_working_set"]
