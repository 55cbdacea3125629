"""The facets of an activation pattern's cone: the few rows that cut out a piece.

A pattern ``D`` fixes the cone ``K = {w : C w ≥ 0}``, ``C = (2D − I) X``: N half-spaces, but a chamber
of a hyperplane arrangement has few facets (about four on average in ``d = 3``), and every other row is
implied by them. A convex program over ``K`` has the same feasible set, hence the same optimum, with
only the facet rows — for an interior-point method N rows per unit become a handful
(:class:`.relu_piece.PiecePrograms`).

Given a strictly interior point ``e`` (``C e > 0``), the rows are the generators of the dual cone
``K* = cone(c_1, …, c_N)``, and its extreme rays are the vertices of the convex hull of the points
``c_i / (c_iᵀe)``, which lie on the hyperplane ``pᵀe = 1`` (a ``(d − 1)``-dimensional hull:
sorted ends for ``d = 2``, Qhull for ``d ≥ 3``). A row is a facet of ``K`` iff its point is a vertex.

The hull is computed in floating point: a vertex that is nearly on an edge could be dropped. Callers
therefore check the solution against every row and fall back to all rows when one is violated, so the
reduction never changes a program's optimum (``PiecePrograms.piece`` does).

Examples
--------
>>> import numpy as np
>>> X = np.array([[1.0, 0, 1], [0, 1, 1], [-1, 0, 1], [0, -1, 1], [0.5, 0.5, 1], [0.0, 0.0, 1.0]])
>>> e = np.array([0.0, 0.0, 1.0])                    # every x_iᵀe = 1 > 0: inside the all-active cone
>>> cone_facets(X, e).tolist()                       # the last two rows are implied by the first four
[0, 1, 2, 3]
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import ConvexHull, QhullError

__all__ = ["MAX_FACET_DIM", "cone_facets", "interior_margin"]

#: The hull is computed up to this dimension ``d`` (Qhull's cost grows quickly with the dimension beyond);
#: larger ``d`` keeps every row.
MAX_FACET_DIM = 5
#: A point is used as interior only when every row's normalised slack exceeds this.
_INTERIOR_TOL = 1e-9
#: Rows of norm at most this times the largest are ignored (they constrain nothing).
_ZERO_TOL = 1e-12


def interior_margin(C: np.ndarray, e: np.ndarray) -> float:
    """The smallest normalised slack ``min_i c_iᵀe / (‖c_i‖ ‖e‖)`` over the non-zero rows (``inf`` if none)."""
    norms = np.linalg.norm(C, axis=1)
    ne = float(np.linalg.norm(e))
    big = norms > _ZERO_TOL * max(float(norms.max(initial=0.0)), 1e-300)
    if not big.any():
        return float("inf")
    if ne == 0.0:
        return -float("inf")
    return float(((C[big] @ e) / (norms[big] * ne)).min())


def cone_facets(C: np.ndarray, e: np.ndarray) -> np.ndarray | None:
    """Rows of ``C`` that are facets of ``{w : C w ≥ 0}``, given a point ``e`` strictly inside it.

    Parameters
    ----------
    C : ndarray (N, d)
        The cone's rows (``(2D − I) X`` for a pattern ``D``).
    e : ndarray (d,)
        A strictly interior point (every normalised slack above 1e-9).

    Returns
    -------
    ndarray of int or None
        Sorted row indices (rows parallel to a facet row are represented once), or None when it cannot
        be decided here: ``e`` not strictly interior, ``d`` outside ``2..MAX_FACET_DIM``, or a degenerate
        hull. None means "keep every row".
    """
    C = np.asarray(C, dtype=float)
    e = np.asarray(e, dtype=float)
    N, d = C.shape
    if not 2 <= d <= MAX_FACET_DIM or N == 0:
        return None
    norms = np.linalg.norm(C, axis=1)
    big = np.flatnonzero(norms > _ZERO_TOL * max(float(norms.max()), 1e-300))
    if big.size == 0:
        return big
    ne = float(np.linalg.norm(e))
    if not ne > 0:
        return None
    e = e / ne
    slack = C[big] @ e
    if not (slack / norms[big]).min() > _INTERIOR_TOL:
        return None
    P = C[big] / slack[:, None]                  # on the hyperplane pᵀe = 1
    Q = np.linalg.svd(e[None, :])[2][1:].T       # d × (d − 1): an orthonormal basis of e⊥
    Z = P @ Q
    if d == 2:
        z = Z[:, 0]
        return np.unique(big[[int(np.argmin(z)), int(np.argmax(z))]])
    if big.size <= d:   # no hull to compute: every row may be a facet
        return big
    try:
        hull = ConvexHull(Z)
    except (QhullError, ValueError):   # flat (all points in a lower-dimensional set): keep every row
        return None
    return np.sort(big[hull.vertices])
