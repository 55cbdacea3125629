"""Floating-point rounding bounds shared by every proof that allows for its own arithmetic.

``u = 2⁻⁵³`` is the unit roundoff of IEEE double precision and ``γ_k = k·u / (1 − k·u)`` the relative error bound of
``k`` floating-point operations in a row (Higham, *Accuracy and Stability of Numerical Algorithms*, §3.1, §3.4): a
dot product of ``k`` terms summed one after another, as BLAS does, is within ``γ_k`` of the exact one relative to the
sum of the terms' magnitudes. Used by the global certificates (:mod:`multiconvex.globalopt.spectral_bound` and its
users), the Newton blocks' dual bound (:mod:`multiconvex.solvers.newton_qp`) and the bound over every adjacent piece
(:mod:`multiconvex.nets.adjacent`).

>>> gamma(2) == 2 * UNIT_ROUNDOFF / (1 - 2 * UNIT_ROUNDOFF)
True
"""

from __future__ import annotations

import math

__all__ = ["UNIT_ROUNDOFF", "gamma"]

#: ``u = 2⁻⁵³``, the unit roundoff of IEEE double precision.
UNIT_ROUNDOFF = 2.0**-53


def gamma(k: int) -> float:
    """``γ_k = k u / (1 − k u)`` (Higham §3.4); ``inf`` when ``k u ≥ 1``."""
    ku = k * UNIT_ROUNDOFF
    return ku / (1.0 - ku) if ku < 1.0 else math.inf
