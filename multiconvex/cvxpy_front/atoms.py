"""``mc.relu``: the piecewise-affine ReLU atom for cvxpy expressions.

``relu(z)`` evaluates to ``max(z, 0)`` elementwise. On its own it is convex and
nondecreasing (like ``cp.pos``), so problems that use it only convexly stay
DCP. Its role in multiconvex is as a *piece* marker: in every block subproblem
a ``relu`` whose argument depends on the block is fixed to its current piece —
``relu(z) -> S ∘ z`` with the linear constraints ``(2S − 1) ∘ z ≥ 0`` that keep
the piece, where ``S = [z ≥ 0]`` at the current point (R&R §4).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from cvxpy.atoms.elementwise.elementwise import Elementwise
from cvxpy.expressions.expression import Expression


class relu(Elementwise):
    """Elementwise ``max(x, 0)``; fixed to its current piece in block subproblems.

    Examples
    --------
    >>> import cvxpy as cp, numpy as np, multiconvex as mc
    >>> W1, w2 = cp.Variable((3, 2)), cp.Variable(3)
    >>> X = np.ones((2, 5))
    >>> out = w2 @ mc.relu(W1 @ X)        # one hidden layer, 5 samples
    """

    def __init__(self, x: Expression) -> None:
        super().__init__(x)

    def numeric(self, values):
        return np.maximum(values[0], 0)

    def sign_from_args(self) -> tuple[bool, bool]:
        return (True, False)

    def is_atom_convex(self) -> bool:
        return True

    def is_atom_concave(self) -> bool:
        return False

    def is_incr(self, idx: int) -> bool:
        return True

    def is_decr(self, idx: int) -> bool:
        return False

    def _grad(self, values):
        rows = self.args[0].size
        cols = self.size
        d = (np.asarray(values[0]) > 0).astype(float)
        return [sp.diags_array(d.ravel(order="F"), shape=(rows, cols), format="csc")]


def piece_of(z_value: np.ndarray) -> np.ndarray:
    """The piece (0/1 pattern) of a ReLU at pre-activation values ``z_value``: alive where z ≥ 0."""
    return (np.asarray(z_value) >= 0).astype(float)


def _relu_canon(expr, args):
    """Epigraph of ``max(z, 0)``: ``t ≥ z, t ≥ 0``."""
    from cvxpy.expressions.variable import Variable

    t = Variable(expr.shape)
    return t, [t >= args[0], t >= 0]


def _register_canonicalisation() -> None:
    """Let plain cvxpy solve problems that use ``relu`` convexly (like ``pos``)."""
    from cvxpy.reductions.dcp2cone.canonicalizers import CANON_METHODS

    CANON_METHODS[relu] = _relu_canon


try:  # pragma: no branch - best effort across cvxpy versions
    _register_canonicalisation()
except Exception:  # noqa: BLE001
    pass
