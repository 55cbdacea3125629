"""The protocol of a matrix-level solver: a :class:`~multiconvex.subproblem.BlockSubproblem` in,
an outcome with a normalised status out.

Each backend that can take matrices has one small class in its own module (``closed_form``,
``daqp_qp``, ``proxqp_qp``, ``clarabel_qp``, ``osqp_qp``, ``cvxpy_bridge``) that declares which
subproblems it accepts, keeps its own status map and reads its own options. The dispatcher
(:mod:`multiconvex.solvers.dispatch`) does everything they share: licences, fallback lists,
timing and the value of the returned point.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from multiconvex.subproblem import BlockSubproblem

#: What dense active-set solvers take for "no bound".
BIG = 1e30

#: Below this many variables a dense method is fine whatever the sparsity of ``P``.
SMALL_DENSE = 40


@dataclass
class MatrixOutcome:
    """What one matrix-level solve produced (``x`` is ``None`` without a solution)."""

    status: str
    x: np.ndarray | None
    solve_time: float
    native_status: str = ""
    iterations: int = 0
    info: dict[str, Any] = field(default_factory=dict)
    value: float | None = None  # the subproblem's value at x when the solver computed it exactly on the way
    value_exact: bool = False  # ``value`` is ``sub.value(x)`` itself (the same arithmetic), not an identity
    proof: bool = True  # an ``infeasible`` / ``unbounded`` status is a certificate (not an inaccurate guess)


class MatrixSolver:
    """One backend's matrix-level solve.

    Attributes
    ----------
    name : str
        The registry name it serves.
    classes : frozenset of str
        The subproblem classes (``EQP``, ``QP``, ``LP``, ``SOCP``) it takes; only a conic module lists
        ``SOCP`` (a block with second-order cones), so :meth:`accepts` keeps cones away from QP solvers.
    max_auto_size : int or None
        Largest ``n`` for which ``"auto"`` picks it (dense methods); a solver the user
        named takes any size.
    max_auto_rows : int or None
        Largest number of constraint rows for which ``"auto"`` picks it (``None``: no bound). ProxQP's dense
        backend allocates about ``(n + rows)²`` numbers: a ReLU unit's piece over 100,000 samples aborted the
        process inside it.
    min_auto_density : float
        Dense methods: ``"auto"`` skips a subproblem whose ``P`` has fewer nonzeros than this
        fraction of ``n²`` (beyond a few dozen variables). A factor block of a nonnegative
        factorization is block-diagonal: as a dense QP it took DAQP 205 ms where Clarabel's sparse
        factorisation took 4 ms.
    uses_warm : bool
        Whether :meth:`solve` reads its ``warm`` start (a front end may then skip building one).
    takes : str
        What a subproblem of its classes needs besides for :meth:`accepts` to take it (a message fragment,
        for the error when it is named and refuses one); empty when it takes every subproblem of its classes.
    """

    name: ClassVar[str] = ""
    uses_warm: ClassVar[bool] = True
    classes: ClassVar[frozenset[str]] = frozenset()
    max_auto_size: ClassVar[int | None] = None
    max_auto_rows: ClassVar[int | None] = None
    min_auto_density: ClassVar[float] = 0.0
    takes: ClassVar[str] = ""

    def accepts(self, sub: BlockSubproblem, *, auto: bool) -> bool:
        if sub.problem_class not in self.classes:
            return False
        if not auto:
            return True
        if self.max_auto_size is not None and sub.n > self.max_auto_size:
            return False
        if self.max_auto_rows is not None and sub.m > self.max_auto_rows:
            return False
        if self.min_auto_density <= 0 or sub.n <= SMALL_DENSE:
            return True
        if not sub.quad and isinstance(sub.P_extra, np.ndarray):  # already dense: count, do not convert
            nnz = int(np.count_nonzero(sub.P_extra))
        else:
            nnz = sub.P_sparse().nnz
        return nnz >= self.min_auto_density * sub.n * sub.n

    def solve(self, sub: BlockSubproblem, options: dict[str, Any], warm: np.ndarray | None,
              state: dict | None = None) -> MatrixOutcome:
        raise NotImplementedError


def finite_or_big(v: np.ndarray) -> np.ndarray:
    """±inf replaced by ±:data:`BIG` (for solvers that take no infinities)."""
    return np.clip(np.asarray(v, dtype=float), -BIG, BIG)


def row_scales(A: np.ndarray | sp.spmatrix, lower: np.ndarray, upper: np.ndarray) -> np.ndarray | None:
    """Per row of ``A`` (with its sides ``lower``, ``upper``), the power of two that brings a row whose largest entry
    is below 1 up to ``[1, 2)``; 1 for a larger row (scaled down, its sides would loosen against an absolute
    tolerance), where the product would not be exact (a side that would overflow) and where a finite side would reach
    :data:`BIG` (read as no side by the solvers that clip there); ``None`` when every row keeps 1.

    >>> row_scales(np.array([[1e-6, 0.0], [3.0, 1.0]]), np.array([1e-3, 0.0]), np.array([np.inf, 1.0])).tolist()
    [1048576.0, 1.0]
    """
    if A.shape[0] == 0:
        return None
    csr = sp.csr_matrix(A) if sp.issparse(A) else None
    top = np.asarray(abs(csr).max(axis=1).todense()).ravel() if csr is not None else np.max(np.abs(A), axis=1)
    _, exponent = np.frexp(np.where(top > 0, top, 1.0))  # top = f·2^e with f in [0.5, 1)
    d = np.ldexp(1.0, 1 - exponent)
    d = np.where((top > 0) & np.isfinite(d) & (d > 1.0), d, 1.0)  # only up: a larger row keeps its tolerance
    if np.all(d == 1.0):
        return None
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        if csr is not None:
            row_of = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
            wrong = (csr.data * d[row_of]) / d[row_of] != csr.data
            entries = np.bincount(row_of[wrong], minlength=csr.shape[0]) == 0
        else:
            entries = np.all((A * d[:, None]) / d[:, None] == A, axis=1)
        sides = ((lower * d) / d == lower) & ((upper * d) / d == upper)
        # a finite side pushed to BIG or beyond would read as "no side" to the solvers that clip at BIG
        within = ~(np.isfinite(lower) & (np.abs(lower * d) >= BIG)) & ~(np.isfinite(upper) & (np.abs(upper * d) >= BIG))
        exact = entries & sides & within
    d = np.where(exact, d, 1.0)
    return None if np.all(d == 1.0) else d


def scaled_rows(A: np.ndarray | sp.spmatrix, lower: np.ndarray,
                upper: np.ndarray) -> tuple[np.ndarray | sp.csr_matrix, np.ndarray, np.ndarray]:
    """``A``, ``lower``, ``upper`` with :func:`row_scales` applied (the same objects where no row is scaled): the
    same set bit for bit, at a scale an absolute feasibility tolerance means something at. A dense ``A`` stays
    dense, a sparse one becomes CSR with its pattern (:func:`scale_rows`)."""
    scales = row_scales(A, lower, upper)
    if scales is None:
        return A, lower, upper
    rows = scale_rows(A, scales) if sp.issparse(A) else np.asarray(A) * scales[:, None]
    return rows, lower * scales, upper * scales


def scale_rows(A: sp.spmatrix, scales: np.ndarray) -> sp.csr_matrix:
    """``diag(scales) @ A`` as CSR with every stored entry kept (explicit zeros too: a sparse product would drop
    them, and a backend that updates its data in place while the pattern stays would rebuild)."""
    out = sp.csr_matrix(A, copy=True)
    out.data = out.data * np.repeat(scales, np.diff(out.indptr))
    return out
