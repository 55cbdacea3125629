"""Pieces: which side of its kink each piecewise-affine unit is on, and when it is on the kink itself.

One definition for every front end (cvxpy, Pyomo, torch networks, grow's two-layer problems): a unit
whose pre-activation ``z`` satisfies ``|z| <= BOUNDARY_TOL * max(1, max|z|)`` lies on the boundary of
its piece, so the point belongs to both neighbouring pieces and a block is solved on both (THEORY §2).

Examples
--------
>>> import numpy as np
>>> on_boundary(np.array([[3.0, 1e-9], [0.5, -2.0]]), axis=1).tolist()
[[False, True], [False, False]]
"""

from __future__ import annotations

import numpy as np

#: Relative tolerance of the boundary test (relative to ``max(1, max|z|)`` over the scale's axis).
BOUNDARY_TOL = 1e-7


def on_boundary(z: np.ndarray, axis: int | None = None) -> np.ndarray:
    """Where ``|z| <= BOUNDARY_TOL * max(1, max|z|)``; the scale is taken over ``axis`` (all of ``z`` if None)."""
    z = np.asarray(z, dtype=float)
    scale = np.maximum(1.0, np.abs(z).max(axis=axis, keepdims=axis is not None, initial=0.0))
    return np.abs(z) <= BOUNDARY_TOL * scale
