"""The one relative test behind every "converged" and every partial-minimum certificate.

A block gap (or an objective decrease) counts as zero when it is at most ``tol · |f|``. The test is
purely relative — a problem scaled by ``ε`` converges at the same iterate — with no absolute floor:
at ``f = 0`` exactly only a gap of exactly 0 passes (an absolute floor there certified ``min x·y`` at
``x = 0`` although a block could still lower the objective by 1.5e-7). A non-finite ``f`` (no feasible
point yet) gives ``tol``; nothing is certified there anyway.
"""

from __future__ import annotations

import math

__all__ = ["gap_tolerance"]


def gap_tolerance(tol: float, f: float) -> float:
    """``tol · |f|`` (0 at ``f = 0``); ``tol`` when ``f`` is not finite."""
    f = float(f)
    if not math.isfinite(f):
        return float(tol)
    return float(tol) * abs(f)
