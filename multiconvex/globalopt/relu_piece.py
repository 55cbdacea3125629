"""The convex programs of two-layer ReLU local descent as matrices, built without a modeling layer.

:class:`.relu_problem.ReLUGrowProblem` solves two convex programs per local-descent iteration on the
current pieces (activation patterns ``D_j``, output signs ``s_j``), at unit scale (``y/σ``, ``λ/σ``):

* the **piece program** (group lasso, an SOCP; the loss by its second-order-cone epigraph):
  ``min ½‖y − Σ_j s_j D_j X w_j‖² + λ Σ_j ‖w_j‖  s.t.  (2D_j − I) X w_j ≥ 0``;
* the **hidden block** (a QP, α fixed): ``min ½‖y − Σ_j α_j D_j X u_j‖² + (λ/2)‖u‖²`` on the same cones.

Through cvxpy every call re-compiled the problem (the patterns change the data, and with them the
canonicalisation): most of grow's time at N ≤ 100. Here both programs are
:class:`multiconvex.subproblem.BlockSubproblem` values for the dispatcher
(:func:`multiconvex.solvers.solve_subproblem`): the piece program with second-order cone rows (class
``SOCP``: Clarabel keeps one solver per number of units in the plan's workspace; the sparsity pattern
depends on the shapes only, so later solves re-use the KKT structure through Clarabel's ``update``),
the hidden block a QP, for which the dispatcher picks the active-set solver on small dense blocks.

**Exact piece programs.** Near grow's optimum the polar exceeds λ by ε while re-fitting gains only ~ε² of the
objective: below the interior-point method's resolution (≈ 1e-8), and grow crept by line searches without
certifying. So the piece program is solved *exactly* by the active-set method of
:func:`multiconvex.solvers.active_set_polish.polish_group_lasso`, first from the current units (a feasible
point; where it verifies the optimality conditions no interior-point solve is made: most calls), otherwise
from Clarabel's solution. Clarabel's program then keeps only each cone's facet rows (:mod:`.pattern_facets`;
the same feasible set, so the same optimum; about four rows per unit instead of N in ``d = 3``), checked
against every row afterwards (a violated dropped row sends it back to all rows). The hidden block's value
(a block gap) is the active-set optimum (:func:`.polish_cone_qp`) from the current units where that verifies the
KKT conditions (feasible rows, non-negative multipliers, stationarity: the strongly convex QP's optimum, no
interior-point solve); otherwise Clarabel's, lowered to the active-set optimum from Clarabel's point where that
verifies (the measured gap never shrinks by it). The piece program only moves the point; nothing a certificate
proves depends on it.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

from multiconvex.errors import InvalidInputError
from multiconvex.solvers import solve_subproblem
from multiconvex.solvers.active_set_polish import (
    PolishResult,
    group_lasso_objective,
    polish_cone_qp,
    polish_group_lasso,
)
from multiconvex.solvers.clarabel_native import ClarabelProblem
from multiconvex.solvers.dispatch import Plan, make_plan
from multiconvex.subproblem import BlockSubproblem, make_slots

from .pattern_facets import cone_facets

#: What the numpy/scipy linear algebra of the active-set finish may raise on degenerate numbers; the interior-point
#: answer then stands (the finish only ever improves on it).
_POLISH_ERRORS = (np.linalg.LinAlgError, ValueError, RuntimeError, FloatingPointError)

__all__ = ["PiecePrograms"]

#: A dropped (implied) row may be violated by at most this relative amount ``−c_iᵀw_j / (‖c_i‖ max_k ‖w_k‖)`` at
#: the facet program's solution (relative to the largest unit: an interior-point solution leaves units that
#: vanish at a tiny norm, in no particular direction); beyond it the program is solved again with every row.
FACET_CHECK_TOL = 1e-7

#: The polished units sit on their active rows up to rounding (``c_iᵀw ≈ ±1e-16``): a row may be "violated" by at
#: most this relative amount (as in :data:`FACET_CHECK_TOL`) for the polished point to be kept.
POLISH_ROW_TOL = 1e-12

#: The exact methods work on dense arrays of all ``r·N`` cone rows (r units, N samples): above this many they are
#: skipped (the interior-point solutions are used as they are; e.g. sampled patterns on larger data).
MAX_POLISH_ROWS = 20_000

#: Active-set corrections of the exact piece program: a correction costs a fraction of a millisecond, the
#: interior-point route taken when the active-set method does not verify several milliseconds (from the current units
#: after an append, 12 corrections left ~4% of the programs unverified; 30 leave under 1%).
POLISH_ROUNDS = 30


def _cones(X: np.ndarray, D: np.ndarray) -> sp.csr_matrix:
    """``blockdiag((2D_j − I) X)`` (rN × rd), every entry of X stored so the pattern depends on shapes only."""
    r = D.shape[0]
    N, d = X.shape
    blocks = np.where(D, 1.0, -1.0)[:, :, None] * X[None, :, :]          # r × N × d
    rows = np.repeat(np.arange(r * N), d)
    cols = (np.arange(r)[:, None, None] * d + np.arange(d)[None, None, :]).repeat(N, axis=1).reshape(-1)
    return sp.csr_matrix((blocks.reshape(-1), (rows, cols)), shape=(r * N, r * d))


class PiecePrograms:
    """The piece program and the hidden-block QP of one data set, kept between solves.

    Parameters
    ----------
    X : ndarray (N, d)
    plan : Plan
        The dispatcher's plan for the hidden-block QP (resolved once by the caller).
    options : dict, optional
        Clarabel settings for the piece program.
    piece_plan : Plan, optional
        The dispatcher's plan for the piece program (an SOCP); default Clarabel with ``options``.
    polish : bool
        Finish the piece program exactly and value the hidden block exactly (module docstring); False: the
        backend's solutions as they are.
    """

    def __init__(self, X: np.ndarray, plan: Plan, options: dict | None = None, piece_plan: Plan | None = None,
                 polish: bool = True):
        self.X = X
        self.plan = plan
        self.options = dict(options or {})
        try:   # refuse unknown Clarabel settings before any solve
            ClarabelProblem(self.options)
        except ValueError as exc:
            raise InvalidInputError(f"solver_options={self.options!r} for Clarabel's matrix interface: {exc}") from None
        self.piece_plan = piece_plan if piece_plan is not None else make_plan("clarabel", "SOCP", self.options)
        self._structure: dict = {}   # r -> the piece program's fixed sparsity
        self._facets: dict[bytes, np.ndarray] = {}   # pattern bytes -> its cone's facet rows
        self.facet_solves = 0     # piece programs solved on facet rows only
        self.facet_fallbacks = 0  # ... whose solution violated a dropped row (then solved with every row)
        self.polish = polish
        # polish outcomes: "optimal" / "not verified" (each polish), "from start" (no interior-point solve),
        # "used" (an interior-point solution replaced), "hidden optimal" / "hidden not verified"
        self.polish_stats: dict[str, int] = {}
        self.verified = False   # whether the last piece() answer was verified optimal (the program's exact optimum)

    def _piece_structure(self, r: int) -> tuple:
        """The piece program's fixed parts for ``r`` units: ``(slots, C's CSR index arrays, the cone rows' CSR
        index arrays and fixed values, soc_dims)``; each solve only fills data vectors (no sparse assembly)."""
        if r not in self._structure:
            N, d = self.X.shape
            n = r * d + r + 1
            slots = make_slots([("w", (r * d,)), ("t", (r,)), ("s", (1,))])
            # cone rows (2D_j − I) X w_j ≥ 0: row j·N + i, columns j·d + c
            c_indices = (np.arange(r)[:, None, None] * d + np.arange(d)[None, None, :]).repeat(N, axis=1).reshape(-1)
            c_indptr = np.arange(0, r * N * d + 1, d, dtype=np.int64)
            # second-order cones: (t_j, w_j) per unit, then ((s+1)/√2, (s−1)/√2, y − A w)
            norm_cols = np.concatenate([np.concatenate([[r * d + j], np.arange(j * d, (j + 1) * d)]) for j in range(r)])
            s_indices = np.concatenate([norm_cols, [n - 1, n - 1], np.tile(np.arange(r * d), N)]).astype(np.int64)
            n_fixed = r * (d + 1) + 2
            s_indptr = np.concatenate([np.arange(n_fixed + 1), n_fixed + r * d * np.arange(1, N + 1)]).astype(np.int64)
            h = 1.0 / np.sqrt(2.0)
            fixed = np.concatenate([np.ones(r * (d + 1)), [h, h]])
            dims = (d + 1,) * r + (N + 2,)
            self._structure[r] = (slots, c_indices, c_indptr, s_indices, s_indptr, fixed, dims)
        return self._structure[r]

    def facet_rows(self, D: np.ndarray, points: np.ndarray | None) -> list[np.ndarray] | None:
        """Per unit, the rows of its cone ``(2D_j − I) X w ≥ 0`` that are facets (:func:`.cone_facets`), found
        from ``points[j]`` when it is strictly inside (cached per pattern); all rows for a unit where that is
        not decided. None when no unit has fewer rows than N."""
        if points is None:
            return None
        N = self.X.shape[0]
        rows: list[np.ndarray] = []
        for j in range(D.shape[0]):
            key = D[j].tobytes()
            f = self._facets.get(key)
            if f is None:
                f = cone_facets(np.where(D[j], 1.0, -1.0)[:, None] * self.X, points[j])
                if f is not None:
                    self._facets[key] = f
            rows.append(np.arange(N) if f is None else f)
        return rows if sum(len(f) for f in rows) < D.shape[0] * N else None

    def piece_subproblem(self, y: np.ndarray, lam: float, D: np.ndarray, sign: np.ndarray,
                         rows: list[np.ndarray] | None = None) -> BlockSubproblem:
        """The group-lasso piece program as an SOCP block subproblem in ``x = (w, t, s)``: ``min s + λ Σ t_j``
        with ``(2D_j − I) X w_j ≥ 0``, ``‖w_j‖ ≤ t_j`` and the squared loss by its epigraph
        ``‖y − A w‖² ≤ 2s``, i.e. ``((s+1)/√2, (s−1)/√2, y − A w)`` in a second-order cone. No ``AᵀA`` is
        formed: its squared condition number cost the interior-point method digits a near-interpolating fit
        needs. ``rows``: per unit, the cone rows kept (:meth:`facet_rows`; default all N)."""
        X = self.X
        r = D.shape[0]
        N, d = X.shape
        slots, c_indices, c_indptr, _, _, _, dims = self._piece_structure(r)
        n = r * d + r + 1
        A = (sign[:, None, None] * D[:, :, None] * X[None, :, :]).transpose(1, 0, 2).reshape(N, r * d)
        signs = np.where(D, 1.0, -1.0)
        if rows is None:
            C = sp.csr_matrix(((signs[:, :, None] * X[None, :, :]).reshape(-1), c_indices, c_indptr),
                              shape=(r * N, n))
        else:
            data = np.concatenate([(signs[j, f, None] * X[f]).reshape(-1) for j, f in enumerate(rows)])
            m = sum(len(f) for f in rows)
            indices = np.concatenate([np.tile(np.arange(j * d, (j + 1) * d), len(f)) for j, f in enumerate(rows)])
            C = sp.csr_matrix((data, indices, np.arange(0, m * d + 1, d)), shape=(m, n))
        m = C.shape[0]
        return BlockSubproblem(slots, [], self._q(r, lam), 0.0, A=C, l=np.zeros(m), u=np.full(m, np.inf),
                               soc_A=self._soc(r, A), soc_b=self._soc_b(r, y), soc_dims=dims)

    def _soc(self, r: int, A: np.ndarray) -> sp.csr_matrix:
        """The second-order cone rows: ``(t_j, w_j)`` per unit, then ``((s+1)/√2, (s−1)/√2, y − A w)``."""
        _, _, _, s_indices, s_indptr, fixed, _ = self._piece_structure(r)
        n = r * self.X.shape[1] + r + 1
        return sp.csr_matrix((np.concatenate([fixed, -A.reshape(-1)]), s_indices, s_indptr),
                             shape=(s_indptr.size - 1, n))

    def _soc_b(self, r: int, y: np.ndarray) -> np.ndarray:
        h = 1.0 / np.sqrt(2.0)
        return np.concatenate([np.zeros(r * (self.X.shape[1] + 1)), [h, -h], y])

    def _q(self, r: int, lam: float) -> np.ndarray:
        return np.concatenate([np.zeros(r * self.X.shape[1]), np.full(r, lam), [1.0]])

    def piece(self, y: np.ndarray, lam: float, D: np.ndarray, sign: np.ndarray, points: np.ndarray | None = None,
              start: np.ndarray | None = None) -> tuple[np.ndarray | None, str, float]:
        """Solve the group-lasso piece program (:meth:`piece_subproblem`); ``(W (r × d) or None, status, solve
        time)``.

        ``points`` (r × d, optional): a point of each unit's cone, e.g. the current units. Where it is strictly
        inside, only the cone's facet rows enter the program (:meth:`facet_rows`); a solution that violates a
        dropped row by more than ``FACET_CHECK_TOL`` is discarded and the program solved with every row, so the
        result is the full program's.

        With ``polish`` (the default) the solution is finished exactly (:meth:`_polished`); ``start`` (r × d,
        optional, a feasible point such as the current units ``|α_j| u_j``) is tried first: the active-set polish
        from it, taken without any interior-point solve when it verifies the optimality conditions.
        """
        spent = 0.0
        self.verified = False
        exact = self.polish and D.size <= MAX_POLISH_ROWS
        if exact and start is not None:
            t0 = time.perf_counter()
            out = self._polish(y, lam, D, sign, start, None)
            spent += time.perf_counter() - t0
            if out is not None and out.status == "optimal":
                self.polish_stats["from start"] = self.polish_stats.get("from start", 0) + 1
                self.verified = True
                return out.W, "optimal", spent
        rows = self.facet_rows(D, points)   # the interior-point program on the cones' facet rows only
        W, status, t = self._piece_once(y, lam, D, sign, rows, self.piece_plan)
        spent += t
        if W is not None and exact:
            t0 = time.perf_counter()
            W = self._polished(y, lam, D, sign, W, rows)
            spent += time.perf_counter() - t0
        return W, status, spent

    def _polish(self, y: np.ndarray, lam: float, D: np.ndarray, sign: np.ndarray, W: np.ndarray,
                rows: list[np.ndarray] | None) -> PolishResult | None:
        """The active-set polish from ``W``; None when its point leaves a cone (beyond :data:`POLISH_ROW_TOL`)."""
        X = self.X
        signs = np.where(D, 1.0, -1.0)
        C = (signs[:, :, None] * X[None, :, :] if rows is None
             else [signs[j, rows[j], None] * X[rows[j]] for j in range(D.shape[0])])
        try:
            out = polish_group_lasso(self._designs(D, sign), y, lam, C, W, max_rounds=POLISH_ROUNDS)
        except _POLISH_ERRORS:  # degenerate numbers (a singular reduced system, NNLS's iteration cap): keep W
            self.polish_stats["error"] = self.polish_stats.get("error", 0) + 1
            return None
        self.polish_stats[out.status] = self.polish_stats.get(out.status, 0) + 1
        return out if self._within_cones(out.W, D, tol=POLISH_ROW_TOL) else None

    def _designs(self, D: np.ndarray, sign: np.ndarray) -> np.ndarray:
        """The groups' design blocks ``A_j = s_j D_j X`` stacked (r × N × d)."""
        return (sign[:, None] * D)[:, :, None] * self.X[None, :, :]

    def _polished(self, y: np.ndarray, lam: float, D: np.ndarray, sign: np.ndarray, W: np.ndarray,
                  rows: list[np.ndarray] | None) -> np.ndarray:
        """The interior-point solution ``W`` finished by the active-set Newton polish
        (:func:`multiconvex.solvers.active_set_polish.polish_group_lasso`), kept only when it satisfies every
        cone row and is verified optimal or its program objective is not above ``W``'s (the interior-point ``W``
        may violate rows by its tolerance, and so undercut the exact optimum by as much)."""
        out = self._polish(y, lam, D, sign, W, rows)
        if out is None:
            return W
        if out.status == "optimal" or out.objective <= group_lasso_objective(self._designs(D, sign), y, lam, W):
            self.polish_stats["used"] = self.polish_stats.get("used", 0) + 1
            self.verified = out.status == "optimal"
            return out.W
        return W

    def _piece_once(self, y: np.ndarray, lam: float, D: np.ndarray, sign: np.ndarray, rows: list[np.ndarray] | None,
                    plan: Plan) -> tuple[np.ndarray | None, str, float]:
        """One plan's solve: on the facet rows when given (every row if the solution violates a dropped one)."""
        r, d = D.shape[0], self.X.shape[1]
        spent = 0.0
        if rows is not None:
            sol = solve_subproblem(self.piece_subproblem(y, lam, D, sign, rows), plan, key=("piece-facets", r))
            spent = sol.solve_time
            if sol.x is None or sol.status != "optimal":
                return None, sol.status, spent
            W = sol.x[: r * d].reshape(r, d)
            if self._within_cones(W, D):
                self.facet_solves += 1
                return W, sol.status, spent
            self.facet_fallbacks += 1
        sol = solve_subproblem(self.piece_subproblem(y, lam, D, sign), plan, key=("piece", r))
        if sol.x is None or sol.status != "optimal":
            return None, sol.status, spent + sol.solve_time
        return sol.x[: r * d].reshape(r, d), sol.status, spent + sol.solve_time

    def _within_cones(self, W: np.ndarray, D: np.ndarray, tol: float = FACET_CHECK_TOL) -> bool:
        """Whether every unit ``w_j`` satisfies all N rows of its cone to ``tol`` (relative to the largest unit)."""
        Z = np.where(D, 1.0, -1.0) * (W @ self.X.T)                       # r × N
        scale = float(np.linalg.norm(W, axis=1).max(initial=0.0)) * np.linalg.norm(self.X, axis=1)[None, :]
        return bool((Z >= -tol * scale).all())

    def hidden(self, y: np.ndarray, lam: float, D: np.ndarray, alpha: np.ndarray, warm: np.ndarray | None = None
               ) -> tuple[float, str, float]:
        """Optimum of the hidden-block QP (α fixed) and ``(value, status, solve time)``; ``nan`` on failure."""
        X = self.X
        r = D.shape[0]
        N, d = X.shape
        A = (alpha[:, None, None] * D[:, :, None] * X[None, :, :]).transpose(1, 0, 2).reshape(N, r * d)
        t0 = time.perf_counter()
        exact = self.polish and D.size <= MAX_POLISH_ROWS
        if exact and warm is not None:
            # the active-set method from the current units: a verified KKT point is the QP's optimum (the program is
            # strongly convex), so no interior-point solve is needed; otherwise the interior-point route below
            try:
                out = polish_cone_qp(A, y, lam, _cones(X, D), np.asarray(warm, dtype=float), block_size=d)
            except _POLISH_ERRORS:
                out = None
            if out is not None and out.status == "optimal" and self._within_cones(out.W.reshape(r, d), D,
                                                                                 tol=POLISH_ROW_TOL):
                self.polish_stats["hidden from start"] = self.polish_stats.get("hidden from start", 0) + 1
                return out.objective, "optimal", time.perf_counter() - t0
        P = A.T @ A + lam * np.eye(r * d)
        sub = BlockSubproblem.from_dense(P, -(A.T @ y), 0.5 * float(y @ y), A=_cones(X, D),
                                         l=np.zeros(r * N), u=np.full(r * N, np.inf), check=False)  # AᵀA + λI
        sol = solve_subproblem(sub, self.plan, warm=warm, key=("hidden", r))
        if sol.x is None or sol.status != "optimal":
            return float("nan"), sol.status, time.perf_counter() - t0
        value = float(sol.value)
        if exact:
            # the backend's value errs by its tolerance (≈ 1e-9 of f: a block gap of that size reads as
            # "not stationary" either way); the polish re-solves on the active rows. Only a lower value is taken:
            # the measured gap f − value never shrinks by it.
            try:
                out = polish_cone_qp(A, y, lam, _cones(X, D), np.asarray(sol.x, dtype=float), block_size=d)
            except _POLISH_ERRORS:  # e.g. a singular reduced Hessian (λ ≈ 0, collinear features): Clarabel's value
                self.polish_stats["hidden error"] = self.polish_stats.get("hidden error", 0) + 1
                return value, sol.status, sol.solve_time
            self.polish_stats["hidden " + out.status] = self.polish_stats.get("hidden " + out.status, 0) + 1
            if out.status == "optimal" and self._within_cones(out.W.reshape(r, d), D, tol=POLISH_ROW_TOL):
                value = min(value, out.objective)
        return value, sol.status, sol.solve_time
