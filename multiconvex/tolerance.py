"""The one relative test behind every "converged" and every partial-minimum certificate.

A block gap (or an objective decrease) counts as zero when it is at most ``tol · |f|``. The test is
purely relative — a problem scaled by ``ε`` converges at the same iterate — with one documented
floor: when ``f`` is exactly 0 (or not finite) the threshold is ``tol`` itself.
"""

from __future__ import annotations

import math

__all__ = ["gap_tolerance"]


def gap_tolerance(tol: float, f: float) -> float:
    """``tol · |f|``; ``tol`` when ``f`` is exactly 0 or not finite."""
    f = float(f)
    if not math.isfinite(f) or f == 0.0:
        return float(tol)
    return float(tol) * abs(f)
