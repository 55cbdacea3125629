"""``clarabel-native``: Clarabel called with matrices, no cvxpy in between (classes EQP, QP, SOCP, EXP).

The block subproblems of a ReLU network (:class:`multiconvex.nets.NetForm`) are built in torch
as dense matrices. Through cvxpy they are Parameters of a DPP problem whose compilation
allocates a dense ``(variables) × (parameter entries)`` tensor and re-canonicalises on every
solve; on ``[10, 64, 64, 1]`` / diabetes one Gauss–Seidel sweep did not finish in 10 minutes.
This backend takes Clarabel's own standard form

    minimise ½ xᵀPx + qᵀx   subject to   b − A x ∈ K,

with ``K`` a product of zero, nonnegative and exponential cones, and hands it straight to
``clarabel.DefaultSolver``. A :class:`ClarabelProblem` keeps its solver between calls and
uses Clarabel's ``update`` (numeric data only, same pattern: KKT structure and ordering are
re-used) whenever the new data has the sparsity pattern and cones of the last solve; dense
blocks are passed with a full pattern for that reason (``dense_csc``).

Availability is checked without importing Clarabel (``find_spec``); a missing Clarabel raises
:class:`multiconvex.errors.SolverUnavailableError` with the pip command.

Examples
--------
>>> import numpy as np, scipy.sparse as sp
>>> from multiconvex.solvers.clarabel_native import ClarabelProblem, nonneg
>>> prob = ClarabelProblem()
>>> sol = prob.solve(sp.identity(2, format="csc"), np.array([1.0, -1.0]),
...                  sp.csc_array(-np.eye(2)), np.zeros(2), [nonneg(2)])
>>> sol.status, np.round(sol.x, 6).tolist()
('optimal', [0.0, 1.0])
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from multiconvex.errors import SolverUnavailableError

from . import status as st
from .base import Backend

logger = logging.getLogger(__name__)

#: Clarabel's ``SolverStatus`` names -> normalised status (as cvxpy maps them).
STATUS_MAP: dict[str, str] = {
    "Solved": st.OPTIMAL,
    "AlmostSolved": st.OPTIMAL_INACCURATE,
    "PrimalInfeasible": st.INFEASIBLE,
    "AlmostPrimalInfeasible": st.INFEASIBLE,
    "DualInfeasible": st.UNBOUNDED,
    "AlmostDualInfeasible": st.UNBOUNDED,
    "MaxIterations": st.ITERATION_LIMIT,
    "MaxTime": st.TIME_LIMIT,
    "NumericalError": st.NUMERICAL_ERROR,
    "InsufficientProgress": st.SOLVER_ERROR,
    "CallbackTerminated": st.SOLVER_ERROR,
    "Unsolved": st.SOLVER_ERROR,
}


class ClarabelNativeBackend(Backend):
    """Registry entry: Clarabel fed matrices directly (models that build matrices, e.g. ReLU blocks).

    :class:`multiconvex.nets.NetForm` checks :attr:`matrix_level` and builds the matrices itself.
    A cvxpy problem sent here (``mc.solve(..., solver="clarabel-native")``) has no matrices of its
    own to hand over, so it goes through cvxpy's Clarabel interface: the same solver as
    ``"clarabel"``, which keeps the backend usable in every front end and on the shared battery.
    """

    name = "clarabel-native"
    cvxpy_name = "CLARABEL"
    pyomo_name = None
    modules = ("clarabel", "scipy")
    time_limit_option = "time_limit"
    distribution = "clarabel"
    classes = frozenset({"EQP", "QP", "SOCP", "EXP"})
    status_map = STATUS_MAP
    #: Takes matrices (``ClarabelProblem``), not cvxpy problems.
    matrix_level: ClassVar[bool] = True

    def problem(self, options: dict[str, Any] | None = None) -> ClarabelProblem:
        """A re-usable :class:`ClarabelProblem` with the default options merged with ``options``."""
        if not self.installed():
            raise SolverUnavailableError(
                f"solver {self.name!r} needs Clarabel, which is not installed here; "
                f"`{self.install_hint()}` or pick another solver (e.g. 'scs' through cvxpy)")
        return ClarabelProblem(self.options(options))


def nonneg(m: int):
    """Clarabel's nonnegative cone of dimension ``m`` (``b − Ax ≥ 0``)."""
    import clarabel  # lazy: the registry checks availability without importing the backend

    return clarabel.NonnegativeConeT(int(m))


def second_order(dim: int):
    """Clarabel's second-order cone of dimension ``dim``: ``(t, x)`` with ``‖x‖ ≤ t``."""
    import clarabel  # lazy: the registry checks availability without importing the backend

    return clarabel.SecondOrderConeT(int(dim))


def exponential(count: int) -> list:
    """``count`` copies of Clarabel's (primal) exponential cone, each three rows ``(x, y, z)``."""
    import clarabel  # lazy: the registry checks availability without importing the backend

    return [clarabel.ExponentialConeT() for _ in range(int(count))]


def dense_csc(M: np.ndarray) -> sp.csc_array:
    """A dense matrix as CSC with every entry stored (zeros too), so the pattern only depends on the shape."""
    M = np.asarray(M, dtype=float)
    m, n = M.shape
    indptr = np.arange(0, m * n + 1, m, dtype=np.int64)
    indices = np.tile(np.arange(m, dtype=np.int64), n)
    return sp.csc_array((np.asfortranarray(M).ravel(order="F"), indices, indptr), shape=(m, n))


def triu_dense_csc(P: np.ndarray) -> sp.csc_array:
    """The upper triangle of a dense symmetric matrix as CSC, every upper entry stored."""
    P = np.asarray(P, dtype=float)
    n = P.shape[0]
    rows, cols = np.triu_indices(n)
    order = np.lexsort((rows, cols))  # column-major
    rows, cols = rows[order], cols[order]
    indptr = np.concatenate([[0], np.cumsum(np.arange(1, n + 1))]).astype(np.int64)
    return sp.csc_array((P[rows, cols], rows.astype(np.int64), indptr), shape=(n, n))


@dataclass
class NativeSolution:
    """Outcome of one :meth:`ClarabelProblem.solve`.

    Attributes
    ----------
    status : str
        Normalised status; ``x`` is set when it has a solution.
    x : ndarray or None
    value : float or None
        ``½ xᵀPx + qᵀx`` as Clarabel reports it.
    solve_time : float
        Clarabel's own timer (s; it includes the setup when the solver was built in this call).
    setup_time : float
        Building or updating the solver (s).
    wall_time : float
        The whole call: data checks, setup or update, solve (s): the time spent in the backend.
    iterations : int
    reused : bool
        Whether the solver of the previous call was updated in place.
    native_status : str
    ray : ndarray or None
        Clarabel's certificate when it reports infeasibility: ``x`` (a direction of unboundedness) for
        ``DualInfeasible``, ``z`` (a dual ray) for ``PrimalInfeasible`` — for callers that verify it.
    """

    status: str
    x: np.ndarray | None
    value: float | None
    solve_time: float
    setup_time: float
    iterations: int
    reused: bool
    native_status: str
    wall_time: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)
    ray: np.ndarray | None = None


def solve_once(P, q, A, b, cones: Sequence) -> NativeSolution:
    """Minimise ``½ xᵀPx + qᵀx`` s.t. ``b − Ax ∈ cones`` once, with Clarabel's default settings (quiet).

    For many small programs of different shapes (one per activation pattern, say), where keeping a
    solver between calls (:class:`ClarabelProblem`) buys nothing. Unlike :class:`ClarabelProblem`,
    presolve stays on. ``x`` is set when the status has a solution.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> sol = solve_once(sp.csc_matrix((1, 1)), np.array([-1.0]), sp.csc_matrix([[1.0]]), np.array([2.0]),
    ...                  [nonneg(1)])
    >>> sol.native_status, round(float(sol.x[0]), 6)
    ('Solved', 2.0)
    """
    import clarabel  # lazy: the registry checks availability without importing the backend

    t0 = time.perf_counter()
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    solver = clarabel.DefaultSolver(P, q, A, b, list(cones), settings)
    setup = time.perf_counter() - t0
    sol = solver.solve()
    native = str(sol.status)
    status = STATUS_MAP.get(native, st.SOLVER_ERROR)
    x = np.asarray(sol.x) if st.has_solution(status) else None
    return NativeSolution(status=status, x=x, value=float(sol.obj_val) if x is not None else None,
                          solve_time=float(sol.solve_time), setup_time=setup, iterations=int(sol.iterations),
                          reused=False, native_status=native, wall_time=time.perf_counter() - t0)


class ClarabelProblem:
    """A Clarabel solver kept between solves of problems with the same structure.

    Parameters
    ----------
    options : dict, optional
        Clarabel settings by name (``tol_gap_rel``, ``max_iter``, ``time_limit``, ...);
        unknown names raise ``ValueError`` listing the known ones.
    """

    def __init__(self, options: dict[str, Any] | None = None):
        try:
            import clarabel  # lazy: the registry checks availability without importing the backend
        except ImportError as exc:  # pragma: no cover - guarded by the backend's installed()
            raise SolverUnavailableError("clarabel-native needs Clarabel: `pip install clarabel`") from exc
        self._clarabel = clarabel
        self.settings = clarabel.DefaultSettings()
        self.settings.verbose = False
        self.settings.presolve_enable = False  # keeps data updates allowed
        known = [a for a in dir(self.settings) if not a.startswith("_")]
        for key, val in (options or {}).items():
            if key not in known:
                raise ValueError(f"unknown Clarabel setting {key!r}; known: {', '.join(known)}")
            setattr(self.settings, key, val)
        self._solver = None
        self._signature: tuple | None = None
        self.solves = 0
        self.rebuilds = 0

    @staticmethod
    def _signature_of(P: sp.csc_array, A: sp.csc_array, cones: Sequence) -> tuple:
        return (P.shape, A.shape, P.indptr.tobytes(), P.indices.tobytes(), A.indptr.tobytes(),
                A.indices.tobytes(), tuple(repr(c) for c in cones))

    def solve(self, P, q, A, b, cones: Sequence) -> NativeSolution:
        """Minimise ``½ xᵀPx + qᵀx`` s.t. ``b − Ax ∈ cones`` (``P``: upper triangle, CSC).

        Re-uses the previous solver through ``update`` when the pattern and cones are unchanged.
        """
        t0 = time.perf_counter()
        P = sp.csc_array(P)
        A = sp.csc_array(A)
        q = np.ascontiguousarray(q, dtype=float)
        b = np.ascontiguousarray(b, dtype=float)
        sig = self._signature_of(P, A, cones)
        reused = False
        if self._solver is not None and sig == self._signature and self._solver.is_data_update_allowed():
            self._solver.update(P=P.data, q=q, A=A.data, b=b)
            reused = True
        else:
            self._solver = self._clarabel.DefaultSolver(sp.csc_matrix(P), q, sp.csc_matrix(A), b, list(cones),
                                                        self.settings)
            self._signature = sig
            self.rebuilds += 1
        setup = time.perf_counter() - t0
        sol = self._solver.solve()
        self.solves += 1
        native = str(sol.status)
        status = STATUS_MAP.get(native, st.SOLVER_ERROR)
        x = np.asarray(sol.x, dtype=float) if st.has_solution(status) else None
        ray = None
        if status == st.UNBOUNDED:
            ray = np.asarray(sol.x, dtype=float)
        elif status == st.INFEASIBLE:
            ray = np.asarray(sol.z, dtype=float)
        return NativeSolution(status=status, x=x, value=float(sol.obj_val) if x is not None else None,
                              solve_time=float(sol.solve_time), setup_time=setup, iterations=int(sol.iterations),
                              reused=reused, native_status=native, wall_time=time.perf_counter() - t0, ray=ray)


__all__ = [
    "STATUS_MAP",
    "ClarabelNativeBackend",
    "ClarabelProblem",
    "NativeSolution",
    "dense_csc",
    "exponential",
    "nonneg",
    "second_order",
    "solve_once",
    "triu_dense_csc",
]
