"""``lstsq``: dense linear algebra for equality-constrained convex quadratics (class EQP).

The block subproblems of ridge-type models (e.g. one factor of a matrix
factorization) are convex quadratics with no inequality constraints; their
physical limit is one Cholesky factorisation. cvxpy's QP form of
``sum_squares(expr)`` adds an auxiliary ``t`` with equality rows
``t = M x + c``; :class:`LstsqSolver` eliminates every variable that is
defined by a single equality row (sparse algebra), forms the reduced
Hessian ``H = E^T P E`` and gradient, and solves ``H z = -g`` with a torch
Cholesky factorisation (float64, GPU when present). Remaining equality rows
are kept in a reduced KKT system (dense torch when small, sparse LU
otherwise).

Examples
--------
>>> import cvxpy as cp
>>> from multiconvex.solvers.lstsq import LstsqSolver
>>> x = cp.Variable(3)
>>> prob = cp.Problem(cp.Minimize(cp.sum_squares(x - 1)))
>>> round(prob.solve(solver=LstsqSolver(device="cpu")), 12)
0.0
"""

from __future__ import annotations

import logging
import time
from typing import Any

import cvxpy.settings as s
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from cvxpy.error import SolverError
from cvxpy.reductions.solution import Solution, failure_solution
from cvxpy.reductions.solvers import utilities
from cvxpy.reductions.solvers.qp_solvers.qp_solver import QpSolver

from .base import Backend

logger = logging.getLogger(__name__)

#: Above this size the reduced system is solved with sparse LU when sparse enough.
DENSE_LIMIT = 4000
#: On the CPU, a reduced Hessian at most this dense is factorised by sparse LU.
SPARSE_DENSITY = 0.05


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` if available else ``"cpu"``; other values pass through."""
    if device == "auto":
        import torch  # lazy: torch takes ~0.7 s to import; cvxpy-only users of solvers/ never load it

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _eliminate(A: sp.csc_array, b: np.ndarray, n: int):
    """Split variables into kept ``z`` and eliminated ``t`` (one defining row each).

    A column with a single nonzero ``a`` in row ``r`` is eliminated through
    ``t = (b_r - A[r, keep] z) / a`` (at most one column per row). Returns
    ``keep``, ``E`` and ``e`` with ``x = E z + e`` (original variable order),
    ``C, d`` (remaining equality rows, on ``z`` only), and the row and pivot
    data needed to recover the equality duals.
    """
    A = sp.csc_array(A)
    col_nnz = np.diff(A.indptr)
    single = np.flatnonzero(col_nnz == 1)
    rows_of = A.indices[A.indptr[single]]
    piv = A.data[A.indptr[single]]
    ok = np.abs(piv) > 1e-12
    single, rows_of, piv = single[ok], rows_of[ok], piv[ok]
    taken = np.full(A.shape[0], -1)
    taken[rows_of[::-1]] = np.arange(rows_of.size)[::-1]  # first column per row
    first = taken[taken >= 0]
    tcols, trows, tpiv = single[first], rows_of[first], piv[first]
    is_t = np.zeros(n, dtype=bool)
    is_t[tcols] = True
    keep = np.flatnonzero(~is_t)
    col_index = np.full(n, -1)
    col_index[keep] = np.arange(keep.size)
    is_trow = np.zeros(A.shape[0], dtype=bool)
    is_trow[trows] = True
    other_rows = np.flatnonzero(~is_trow)
    A_r = sp.csr_array(A)
    M = sp.coo_array(A_r[trows])  # eliminated rows; their t entries are dropped below
    m_keep = col_index[M.col] >= 0
    dinv = 1.0 / tpiv
    rows = np.concatenate([keep, tcols[M.row[m_keep]]])
    cols = np.concatenate([np.arange(keep.size), col_index[M.col[m_keep]]])
    vals = np.concatenate([np.ones(keep.size), -dinv[M.row[m_keep]] * M.data[m_keep]])
    E = sp.csr_array((vals, (rows, cols)), shape=(n, keep.size))
    e = np.zeros(n)
    e[tcols] = dinv * b[trows]
    C = sp.csr_array(A_r[other_rows][:, keep])
    d = b[other_rows]
    return keep, E, e, C, d, (tcols, trows, tpiv, other_rows)


def _dense_solve(K: np.ndarray, rhs: np.ndarray, device: str, spd: bool):
    """Solve ``K u = rhs``; Cholesky when ``spd``; least squares if singular.

    Returns ``(u, exact)`` where ``exact`` is False when a least-squares
    (pseudo-inverse) solution was used.
    """
    import torch  # lazy: torch takes ~0.7 s to import; cvxpy-only users of solvers/ never load it

    Kt = torch.as_tensor(K, dtype=torch.float64, device=device)
    rt = torch.as_tensor(rhs, dtype=torch.float64, device=device).reshape(-1, 1)
    if spd:
        L, info = torch.linalg.cholesky_ex(Kt)
        if int(info) == 0:
            return torch.cholesky_solve(rt, L).reshape(-1).cpu().numpy(), True
    else:
        LU, pivots, info = torch.linalg.lu_factor_ex(Kt)
        if int(info) == 0:
            u = torch.linalg.lu_solve(LU, pivots, rt).reshape(-1)
            if bool(torch.isfinite(u).all()):
                return u.cpu().numpy(), True
    # Singular: minimum-norm least-squares solution via a symmetric eigendecomposition.
    w, V = torch.linalg.eigh(Kt)
    cut = w.abs().max() * K.shape[0] * np.finfo(float).eps
    winv = torch.where(w.abs() > cut, 1.0 / w, torch.zeros_like(w))
    u = V @ (winv.reshape(-1, 1) * (V.T @ rt))
    return u.reshape(-1).cpu().numpy(), False


def _sparse_solve(K: sp.csc_array, rhs: np.ndarray):
    try:
        u = spla.splu(sp.csc_matrix(K)).solve(rhs)
        if np.all(np.isfinite(u)):
            return u, True
    except RuntimeError:  # exactly singular
        pass
    u = spla.lsqr(K, rhs, atol=1e-14, btol=1e-14, iter_lim=10 * K.shape[0])[0]
    return u, False


def solve_eqp(P, q, A, b, device: str = "cpu", tol: float = 1e-9) -> dict[str, Any]:
    """Minimise ``1/2 x'Px + q'x`` subject to ``Ax = b``.

    Parameters
    ----------
    P : sparse (n, n)
        Symmetric positive semidefinite Hessian.
    q : ndarray (n,)
    A : sparse (m, n)
    b : ndarray (m,)
    device : str
        torch device for the dense factorisation.
    tol : float
        Relative KKT residual accepted as ``"optimal"`` (100x that as inaccurate).

    Returns
    -------
    dict
        ``status`` (cvxpy status string), ``x``, ``y`` (equality duals,
        OSQP sign convention ``Px + q + A'y = 0``), ``obj``, ``residual``.
    """
    n = q.size
    P = sp.csr_array(P)
    keep, E, e, C, d, (tcols, trows, tpiv, other_rows) = _eliminate(A, b, n)
    PE = P @ E
    H = sp.csr_array(E.T @ PE)
    g = E.T @ (P @ e + q)
    nz, mc = H.shape[0], C.shape[0]
    size = nz + mc
    sparse_fits = H.nnz <= SPARSE_DENSITY * nz * nz and nz > 64 and device == "cpu"
    dense = not sparse_fits and (size <= DENSE_LIMIT or H.nnz > SPARSE_DENSITY * nz * nz)
    if mc == 0:
        K, rhs = H, -g
    else:
        K = sp.block_array([[H, C.T], [C, None]], format="csc")
        rhs = np.concatenate([-g, d])
    if dense:
        u, exact = _dense_solve(K.toarray(), rhs, device, spd=(mc == 0))
    else:
        u, exact = _sparse_solve(sp.csc_array(K), rhs)
    z, nu = u[:nz], u[nz:]
    resid = np.linalg.norm(K @ u - rhs) / (1.0 + np.linalg.norm(rhs) + abs(K).max() * np.linalg.norm(u))
    x = E @ z + e
    grad = P @ x + q
    y = np.zeros(A.shape[0])
    y[trows] = -grad[tcols] / tpiv
    y[other_rows] = nu
    obj = 0.5 * float(x @ (P @ x)) + float(q @ x)
    if resid <= tol:
        status = s.OPTIMAL
    elif resid <= 100 * tol:
        status = s.OPTIMAL_INACCURATE
    elif mc and np.linalg.norm(C @ z - d) > 1e3 * tol * (1 + np.linalg.norm(d)):
        status = s.INFEASIBLE
    else:
        status = s.UNBOUNDED  # H singular and -g outside its range: unbounded below
    logger.debug(
        "lstsq: n=%d eliminated=%d reduced=%d kkt_rows=%d dense=%s exact=%s resid=%.2e",
        n, tcols.size, nz, mc, dense, exact, resid,
    )
    return {"status": status, "x": x, "y": y, "obj": obj, "residual": resid}


class LstsqSolver(QpSolver):
    """cvxpy custom solver for convex quadratics with equality constraints only.

    Parameters
    ----------
    device : str
        ``"auto"`` (cuda if available, else cpu), ``"cpu"`` or ``"cuda"``.
    tol : float
        Relative KKT residual accepted as optimal.

    Examples
    --------
    >>> import cvxpy as cp
    >>> x = cp.Variable(2)
    >>> prob = cp.Problem(cp.Minimize(cp.sum_squares(x)), [x[0] + x[1] == 2])
    >>> round(prob.solve(solver=LstsqSolver(device="cpu")), 9)
    2.0
    """

    MIP_CAPABLE = False

    def __init__(self, device: str = "auto", tol: float = 1e-9) -> None:
        self.device = resolve_device(device)
        self.tol = tol

    def name(self) -> str:
        return "MULTICONVEX_LSTSQ"

    def import_solver(self) -> None:
        import torch  # noqa: F401 - cvxpy's availability probe: importing is the check

    def cite(self, data) -> str:
        return "multiconvex lstsq: reduced normal equations solved by torch Cholesky."

    def solve_via_data(self, data, warm_start: bool, verbose: bool, solver_opts, solver_cache=None):
        if data["n_ineq"] > 0:
            raise SolverError(
                f"lstsq solves convex quadratics with equality constraints only; this problem "
                f"has {data['n_ineq']} inequality rows (bounds, nonneg, <=). Use clarabel or osqp."
            )
        for key in (s.LOWER_BOUNDS, s.UPPER_BOUNDS):
            bound = data.get(key)
            if bound is not None and np.any(np.isfinite(bound)):
                raise SolverError("lstsq does not take variable bounds; use clarabel or osqp.")
        start = time.perf_counter()
        device = solver_opts.get("device", self.device)
        tol = solver_opts.get("tol", self.tol)
        result = solve_eqp(data[s.P], np.asarray(data[s.Q], float), data[s.A],
                           np.asarray(data[s.B], float), device=device, tol=tol)
        result["solve_time"] = time.perf_counter() - start
        return result

    def invert(self, solution, inverse_data):
        attr = {s.SOLVE_TIME: solution["solve_time"], s.EXTRA_STATS: {"residual": solution["residual"]}}
        status = solution["status"]
        if status in s.SOLUTION_PRESENT:
            primal = {self.VAR_ID: solution["x"]}
            duals = utilities.get_dual_values(
                solution["y"], utilities.extract_dual_value, inverse_data[self.EQ_CONSTR]
            )
            return Solution(status, solution["obj"] + inverse_data[s.OFFSET], primal, duals, attr)
        return failure_solution(status, attr)


class LstsqBackend(Backend):
    """Registry entry for :class:`LstsqSolver` (class EQP only, needs torch)."""

    name = "lstsq"
    cvxpy_name = None
    pyomo_name = None
    modules = ("torch",)
    distribution = "torch"
    classes = frozenset({"EQP"})

    def __init__(self, device: str = "auto") -> None:
        self.device = device
        self._solver: LstsqSolver | None = None

    def cvxpy_target(self) -> LstsqSolver:
        if self._solver is None:
            self._solver = LstsqSolver(device=self.device)
        return self._solver
