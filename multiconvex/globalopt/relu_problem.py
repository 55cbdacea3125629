"""Two-layer ReLU units with scalar output as a parallel-subnetwork problem for :func:`.grow.grow`.

Subnetwork ``j`` is a unit ``(u_j, α_j)``: ``φ = (X u_j)_+ α_j`` (degree 2), ``θ = ½(‖u_j‖² + α_j²)``,
objective ``½‖y − Σ_j (X u_j)_+ α_j‖² + λ Σ_j θ_j`` (sums over samples; a bias is a constant
column of X).

**Local descent** is iterated convex optimization with two convex programs, accepted only when the
true objective does not increase:

* the **piece program** — all units at once on their current pieces (activation patterns
  ``D_j = 1[X u_j ≥ 0]``) and output signs ``s_j``. With the balanced reparametrisation
  ``w_j = |α_j| u_j`` (``½(‖u‖² + α²) ≥ ‖u‖|α| = ‖w‖``, equality when balanced) the restriction of
  the objective to the piece is the convex group-lasso program
  ``min ½‖y − Σ_j s_j D_j X w_j‖² + λ Σ_j ‖w_j‖`` s.t. ``(2D_j − I) X w_j ≥ 0`` — an SOCP for the
  chosen backend. Its optimum is the minimum of the objective over the whole piece (fixed
  patterns and signs), so it dominates the hidden-layer block step on that piece;
* the **output block** ``α`` (a ridge regression, closed form; it may flip signs).

A piece program whose (patterns, signs) are those of the last one solved to its *verified* optimum, at a point with
that optimum's value, is not solved again (it would return the same optimum): one program less per converging
iteration.

Optionally (``gradient_steps``, default on for sampled patterns, i.e. larger data) a few L-BFGS
iterations start each local-descent iteration: they cross pieces, which the piece-restricted programs
can only do one boundary at a time; they are accepted only when the objective decreases.

With ``solver="clarabel"`` both programs are block subproblems for the dispatcher (:mod:`.relu_piece`:
the piece program an SOCP with second-order cone rows, its sparsity fixed per unit count so later
solves only refill numbers; the hidden block a QP); other backends take the cvxpy route, compiled
per call. On that path the piece program is solved *exactly* — by an active-set method from the current
units, or from Clarabel's solution on the cones' facet rows (the enumeration's chamber points, kept by
:meth:`prepare`, are the interior points the facets need) — so that the last rounds' gains of ~ε² are
realised and grow certifies instead of creeping.

**Block gaps** (stationarity) are those of the two layer blocks: the output block in closed form,
the hidden block ``U`` as a QP on its piece by the backend. **The polar** is
:func:`multiconvex.globalopt.relu_polar.relu_polar` (exact over enumerated patterns, or a lower
bound over sampled ones with an upper bound where it computes one); programs whose bound
(``relu_polar``'s one- or two-row dual bound) is at most λ are skipped while the polar is above λ, and solved where the
result may certify (``settle``, in the same pass), so a reported certificate carries the exact polar.
A cheap multi-start screen (``screen``) proposes units first — each the exact maximiser of the chamber a local
search ended in, so a new unit sits on its chamber's faces and the next piece program starts with its active rows;
the full polar runs whenever the screen finds nothing above λ and always at the returned point, so every reported
certificate comes from the full polar.

With exact patterns a round's local descent takes at most ``walk`` iterations (default 3): each moves the units by
at most one piece, and appending the polar's units gains more per second than walking units across many pieces one
round after another; a round cut short is not stationary and certifies nothing (grow appends, or descends further
next round).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from ..errors import InvalidInputError, MulticonvexError
from ..pieces import on_boundary
from ..solvers import has_solution, problem_class, resolve, solve_cvxpy
from ..solvers.dispatch import make_plan, on_one_blas_thread
from .certificate import norm_upper, objective_with_error, sum_of_squares
from .grow import LocalDescent, PolarInfo
from .pattern_programs import _projection_program
from .patterns import DEFAULT_MAX_PATTERNS, PatternLimitError, check_deadline, enumerate_chambers
from .polar_search import local_polar_search
from .relu_piece import PiecePrograms
from .relu_polar import relu_polar
from .spectral_bound import SUBNORMAL_SPACING, gamma

logger = logging.getLogger("multiconvex")

__all__ = ["ReLUState", "ReLUGrowProblem", "unit_outputs"]

#: ``patterns="auto"`` beyond ``max_patterns`` activation patterns: the polar samples this many directions.
AUTO_SAMPLED_PATTERNS = 200

#: Local-descent iterations per round with exact patterns (:class:`ReLUGrowProblem`'s ``walk``).
WALK = 3

#: Ascent steps of the screen's local search (it only proposes units; the piece programs place them exactly).
SCREEN_ITERS = 30


@dataclass(frozen=True)
class ReLUState:
    """``U`` (r × d) rows ``u_j``; ``alpha`` (r,) output weights ``α_j``."""

    U: np.ndarray
    alpha: np.ndarray


def unit_outputs(X: np.ndarray, s: ReLUState) -> np.ndarray:
    """``(X u_j)_+ α_j`` for every unit, as columns (N × r)."""
    return np.maximum(X @ s.U.T, 0.0) * s.alpha[None, :]


class ReLUGrowProblem:
    """The two-layer ReLU side of the meta-algorithm (see :class:`.grow.SubnetworkProblem`).

    Parameters
    ----------
    X : ndarray (N, d)
        Inputs, bias column included.
    y : ndarray (N,)
        Targets.
    lam : float
        λ > 0.
    solver : str
        Backend for the piece program, the hidden-block gap QP and the polar programs.
    patterns : "exact", "auto", int or ndarray
        Passed to ``relu_polar``; ``"auto"``: exact when the arrangement has at most ``max_patterns`` cells
        (:meth:`prepare` enumerates them), else :data:`AUTO_SAMPLED_PATTERNS` sampled directions (logged).
    solver_options : dict, optional
    polar_options : dict, optional
        Extra keyword arguments of ``relu_polar`` (``executor``, ``n_workers``, ``upper_bound``, ...).
    seed : int or None
    screen : int
        Starts of a cheap multi-start screening of the polar (``local_polar_search``, numpy only) run
        before the full polar: while it finds units whose value exceeds λ, they are appended and the
        full (exact or sampled) polar is skipped for that round — its certificate then says "not
        proven" (a lower bound), which is true. The full polar runs whenever the screen finds nothing,
        so a certificate is never claimed from the screen. 0 disables. Each start ascends ``SCREEN_ITERS`` (30)
        steps and is then replaced by its chamber's exact maximiser (:meth:`screen_polar`).
    gradient_steps : int or None
        L-BFGS iterations (torch, the same objective) at the start of each local-descent iteration:
        gradient steps cross pieces, the convex piece programs then polish and certify within one
        (THEORY.md §2, practical note). Accepted only when the objective decreases. 0 disables;
        None: 0 with exact patterns (small data: measured 2.1 s vs 4.4 s at N=40), 30 otherwise
        (diabetes, 6 rounds: objective 74.0 vs 90.3).
    walk : int or None
        Local-descent iterations per round at most (with the caller's ``max_iters``, the smaller counts). Each
        iteration moves the units by at most one piece; far from the optimum they walk across many pieces one
        round after another while appending the polar's units gains more per second. A round cut short is not
        stationary, so no certificate is claimed from it: grow appends (or, when the polar finds nothing, descends
        further in the next round). 0: no cap beyond ``max_iters``; None: ``WALK`` (3) with exact patterns
        (measured there), no cap otherwise.
    """

    degree = 2

    def __init__(self, X: np.ndarray, y: np.ndarray, lam: float, *, solver: Any = "clarabel",
                 patterns: Any = "exact", solver_options: dict | None = None, polar_options: dict | None = None,
                 seed: int | None = 0, zero_tol: float = 1e-10, screen: int = 32,
                 gradient_steps: int | None = None, walk: int | None = None):
        self.X = np.asarray(X, dtype=float)
        self.Y = np.asarray(y, dtype=float).reshape(-1)
        self.lam = float(lam)
        self.solver = solver
        if isinstance(patterns, str) and patterns not in ("exact", "auto"):
            raise InvalidInputError(f"patterns={patterns!r} is not understood; use 'auto' (the default: exact where "
                                    "the arrangement is small, else sampled), 'exact', a number of sampled patterns, "
                                    "or a boolean array (P, N).")
        self.patterns = patterns
        self.solver_options = dict(solver_options or {})
        self.polar_options = dict(polar_options or {})
        self.seed = seed
        self.zero_tol = zero_tol
        self.screen = int(screen)
        if walk is not None and (isinstance(walk, bool) or not isinstance(walk, (int, np.integer)) or walk < 0):
            raise InvalidInputError(f"ReLUGrowProblem: walk={walk!r}; pass local-descent iterations per round "
                                    "(an int >= 1), 0 for no cap, or None for the default.")
        self._given = (gradient_steps, walk)  # None: the default for the patterns (resolved with "auto")
        self._pattern_defaults()
        # drop_zero's reference size: ‖y‖ itself (a floor of 1 dropped units carrying 1% of the fit at y ~ 1e-8)
        self._scale = float(np.linalg.norm(self.Y)) or 1.0
        self._x_norm: float | None = None  # ‖X‖_F upper bound (objective_bound), on first need
        self.solves = 0
        self._chamber_points: dict[bytes, np.ndarray] = {}   # exact patterns: pattern bytes -> interior point
        # the (patterns, signs) of the last piece program solved to its verified optimum, and that optimum's objective
        self._settled: tuple[tuple[int, ...], bytes, bytes, float] | None = None
        # with Clarabel the programs are block subproblems for the dispatcher (no per-call compile);
        # other backends take the cvxpy route
        self._native = (PiecePrograms(self.X, make_plan(solver, "QP", self.solver_options), self.solver_options,
                                      piece_plan=make_plan(solver, "SOCP", self.solver_options))
                        if resolve(solver, "SOCP")[0].name == "clarabel" else None)

    # -- objective ------------------------------------------------------------------------------
    def output(self, s: ReLUState) -> np.ndarray:
        return np.maximum(self.X @ s.U.T, 0.0) @ s.alpha

    def objective(self, s: ReLUState) -> float:
        r = self.Y - self.output(s)
        return float(0.5 * r @ r + 0.5 * self.lam * (np.sum(s.U**2) + np.sum(s.alpha**2)))

    def objective_bound(self, s: ReLUState) -> tuple[float, float]:
        """``(f̂, e)`` with ``|f̂ − f| ≤ e`` proven: what the certificate's gap uses.

        ``Ẑ = fl(XUᵀ)`` errs by ``γ_d|X||U|ᵀ`` entrywise and the ReLU is 1-Lipschitz, so ``Ĥ = (Ẑ)_+`` does too;
        ``fl(Ĥα)`` adds ``γ_r|Ĥ||α|`` with ``‖Ĥ‖_F ≤ (1 + γ_d)‖X‖_F‖U‖_F``, and the subtraction from ``y`` one
        rounding: ``‖r̂ − r‖ ≤ (γ_d + γ_r(1 + γ_d))‖X‖_F‖U‖_F‖α‖ + γ_1‖r̂‖`` (plus ``2⁻¹⁰⁷⁴`` per product for
        underflow), and :func:`.certificate.objective_with_error` does the rest.
        """
        r = self.Y - self.output(s)
        rr, uu, aa = sum_of_squares(r), sum_of_squares(s.U), sum_of_squares(s.alpha)
        units, d = s.U.shape
        r_err = 0.0
        if units:
            g_d = gamma(d)
            scale = self._x_norm_upper() * norm_upper(uu) * norm_upper(aa)
            underflow = math.sqrt(r.size) * (d * float(np.abs(s.alpha).sum()) + units) * SUBNORMAL_SPACING
            r_err = (g_d + gamma(units) * (1.0 + g_d)) * scale + gamma(1) * norm_upper(rr) + underflow
        return objective_with_error(rr, r_err, (uu, aa), self.lam)

    def _x_norm_upper(self) -> float:
        """A proven upper bound on ``‖X‖_F`` (computed once)."""
        if self._x_norm is None:
            self._x_norm = norm_upper(sum_of_squares(self.X))
        return self._x_norm

    def n_subnetworks(self, s: ReLUState) -> int:
        return s.U.shape[0]

    def residual(self, s: ReLUState) -> np.ndarray:
        return self.Y - self.output(s)

    # -- convex programs ------------------------------------------------------------------------
    @staticmethod
    def _unit(f: float) -> float:
        """The scale ``s`` that poses a program at unit objective: the problem is scale-equivariant
        (``y → y/s``, ``λ → λ/s``: weights ``/ √s``, objective ``/ s²``), and with ``s = √f`` the backends'
        tolerances act relative to the objective at the point — not absolutely on small-scale data
        (``y ~ 1e-8``), nor on a tiny fraction of ``‖y‖²`` when the fit is good."""
        return math.sqrt(f) if f > 0 and math.isfinite(f) else 1.0

    def _solve(self, prob: cp.Problem) -> tuple[str, float]:
        report = solve_cvxpy(prob, resolve(self.solver, problem_class(prob)), self.solver_options)
        self.solves += 1
        return (report.status if has_solution(report.status) else "failed"), report.solve_time

    def _patterns(self, s: ReLUState, flip_boundary: bool = False) -> np.ndarray:
        """Activation patterns ``1[X u_j ≥ 0]`` (r × N); with ``flip_boundary`` the neighbouring piece:
        samples on a unit's boundary (``|x_iᵀu_j| ≈ 0``) take the other side."""
        Z = (self.X @ s.U.T).T
        D = Z >= 0
        if flip_boundary:
            edge = on_boundary(Z, axis=1)  # sample i on unit j's piece boundary
            D = np.where(edge, ~D, D)
        return D

    def _cone_points(self, D: np.ndarray, U: np.ndarray) -> np.ndarray:
        """A point of each unit's cone ``(2D_j − I) X w ≥ 0`` for the facet rows of the piece program: the
        enumeration's interior point of that chamber when the patterns were enumerated, else the unit itself
        (used only where strictly inside, :func:`.pattern_facets.cone_facets`)."""
        if not self._chamber_points:
            return U
        return np.array([self._chamber_points.get(D[j].tobytes(), U[j]) for j in range(D.shape[0])])

    def has_boundary(self, s: ReLUState) -> bool:
        Z = (self.X @ s.U.T).T
        return bool(on_boundary(Z, axis=1).any())

    def piece_program(self, s: ReLUState, flip_boundary: bool = False) -> tuple[ReLUState | None, float]:
        """Solve the group-lasso program on the current pieces and signs; (balanced state, solve time)."""
        r, d = s.U.shape[0], self.X.shape[1]
        if r == 0:
            return s, 0.0
        sign = np.where(s.alpha >= 0, 1.0, -1.0)
        ys = self._unit(self.objective(s))
        if self._native is not None:
            D = self._patterns(s, flip_boundary)
            key = (D.shape, np.packbits(D).tobytes(), np.packbits(sign > 0).tobytes())
            if self._settled is not None and key == self._settled[:3] and self.objective(s) <= self._settled[3]:
                # the same piece and signs as a program solved to its verified optimum, and the point is at that
                # optimum's value: solving it again returns the same optimum (no descent; saves one program per
                # converging local-descent iteration)
                return None, 0.0
            try:
                Wn, status, t = self._native.piece(self.Y / ys, self.lam / ys, D, sign, self._cone_points(D, s.U),
                                                   start=np.abs(s.alpha)[:, None] * s.U / ys)
            except MulticonvexError as exc:  # a failed solve keeps the point (monotone)
                logger.warning("piece program failed: %s", exc)
                return None, 0.0
            self.solves += 1
            if Wn is None:
                return None, t
            got = self._balanced(Wn * ys, sign)
            self._settled = (key + (self.objective(got),)) if self._native.verified else None
            return got, t
        D = self._patterns(s, flip_boundary).astype(float)
        A = np.hstack([sign[j] * D[j][:, None] * self.X for j in range(r)])  # N × rd
        C = sp.block_diag([(2 * D[j] - 1)[:, None] * self.X for j in range(r)], format="csr")
        w = cp.Variable(r * d)  # w / s: posed at unit scale (see _unit)
        W = cp.reshape(w, (r, d), order="C")
        obj = 0.5 * cp.sum_squares(self.Y / ys - A @ w) + (self.lam / ys) * cp.sum(cp.norm(W, 2, axis=1))
        prob = cp.Problem(cp.Minimize(obj), [C @ w >= 0])
        w0 = np.abs(s.alpha)[:, None] * s.U
        w.value = w0.reshape(-1) / ys
        try:
            status, t = self._solve(prob)
        except Exception as exc:  # noqa: BLE001 - a failed solve keeps the point (monotone)
            logger.warning("piece program failed: %s", exc)
            return None, 0.0
        if status == "failed" or w.value is None:
            return None, t
        return self._balanced(np.asarray(w.value, dtype=float).reshape(r, d) * ys, sign), t

    @staticmethod
    def _balanced(Wv: np.ndarray, sign: np.ndarray) -> ReLUState:
        """The balanced units of ``w_j = |α_j| u_j``: ``u_j = w_j / √‖w_j‖``, ``α_j = s_j √‖w_j‖``."""
        norms = np.linalg.norm(Wv, axis=1)
        root = np.sqrt(norms)
        U = np.where(norms[:, None] > 0, Wv / np.where(root > 0, root, 1.0)[:, None], 0.0)
        return ReLUState(U, sign * root)

    def output_block(self, s: ReLUState) -> ReLUState:
        """The output block: ``α = argmin ½‖y − H α‖² + (λ/2)‖α‖²``, ``H = (X Uᵀ)_+`` (closed form)."""
        H = np.maximum(self.X @ s.U.T, 0.0)
        K = H.T @ H + self.lam * np.eye(H.shape[1])
        return ReLUState(s.U, np.linalg.solve(K, H.T @ self.Y))

    def hidden_block_value(self, s: ReLUState, flip_boundary: bool = False) -> tuple[float, float]:
        """Optimum of the hidden block ``U`` on its piece (α fixed), and the solve time."""
        r, d = s.U.shape[0], self.X.shape[1]
        D = self._patterns(s, flip_boundary).astype(float)
        # at unit scale (see _unit): y/s, α/√s, u/√s, λ/s; the value is s² times the scaled one
        ys = self._unit(self.objective(s))
        rs = math.sqrt(ys)
        if self._native is not None:
            val, status, t = self._native.hidden(self.Y / ys, self.lam / ys, D > 0, s.alpha / rs,
                                                 warm=s.U.reshape(-1) / rs)
            self.solves += 1
            if status != "optimal":
                return math.nan, t
            return val * ys * ys + 0.5 * self.lam * float(s.alpha @ s.alpha), t
        A = np.hstack([(s.alpha[j] / rs) * D[j][:, None] * self.X for j in range(r)])
        C = sp.block_diag([(2 * D[j] - 1)[:, None] * self.X for j in range(r)], format="csr")
        u = cp.Variable(r * d)
        prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(self.Y / ys - A @ u)
                                      + 0.5 * (self.lam / ys) * cp.sum_squares(u)), [C @ u >= 0])
        u.value = s.U.reshape(-1) / rs
        status, t = self._solve(prob)
        if status != "optimal":
            return math.nan, t
        return float(prob.value) * ys * ys + 0.5 * self.lam * float(s.alpha @ s.alpha), t

    # -- meta-algorithm hooks --------------------------------------------------------------------
    # the hooks below do small dense algebra (a few hundred columns at most): one BLAS thread — on a loaded machine
    # OpenBLAS's spinning threads made a 144-column Gram product and solve 20-40x slower (N = 80, 48 units)
    @on_one_blas_thread
    def local_descent(self, s: ReLUState, *, max_iters: int, tol: float, deadline: float | None) -> LocalDescent:
        f = self.objective(s)
        solver_time, it, converged = 0.0, 0, False
        if self.walk:
            max_iters = min(max_iters, self.walk)

        def late() -> bool:  # no solve starts after the deadline, also between the solves of one iteration
            return deadline is not None and time.perf_counter() > deadline

        for it in range(1, max_iters + 1):  # noqa: B007 - `it` is the iteration count after the loop
            start = f
            flipped = False
            if s.U.shape[0] and self.gradient_steps and not late():
                cand = self.gradient_polish(s, self.gradient_steps)
                fc = self.objective(cand)
                if fc < f:
                    s, f = cand, fc
            if s.U.shape[0]:
                # the point lies in every piece its boundary samples touch: try the neighbour too (THEORY §2) —
                # needed only when the own piece no longer lowers the objective (the iteration that converges)
                for flip in (False, True):
                    if late() or (flip and (start - f > tol * abs(f) or not self.has_boundary(s))):
                        break
                    got, t = self.piece_program(s, flip_boundary=flip)
                    solver_time += t
                    if got is not None:
                        fc = self.objective(got)
                        if fc <= f:
                            s, f = got, fc
                s = self.drop_zero(s)
                if s.U.shape[0] and not late():
                    cand = self.output_block(s)
                    fc = self.objective(cand)
                    if fc <= f:
                        # a sign change of some α_j changes the next piece program: not converged yet
                        flipped = bool(np.any(np.sign(cand.alpha) != np.sign(s.alpha)))
                        s, f = cand, fc
                    s = self.drop_zero(s)
            f = self.objective(s)
            if late():  # (an iteration cut short by the deadline proves no convergence)
                break
            if start - f <= tol * abs(f) and not flipped:  # relative, like the certificate's gap
                converged = True
                break
        return LocalDescent(s, it, converged, solver_time)

    def gradient_polish(self, s: ReLUState, iters: int) -> ReLUState:
        """L-BFGS on ``(U, α)`` (torch, float64, strong Wolfe line search)."""
        import torch  # lazy: only this optional polish needs torch (~0.7 s to import); the rest of globalopt is numpy

        X, y = torch.as_tensor(self.X), torch.as_tensor(self.Y)
        U = torch.tensor(s.U, requires_grad=True)
        a = torch.tensor(s.alpha, requires_grad=True)
        opt = torch.optim.LBFGS([U, a], lr=1.0, max_iter=iters, history_size=20, line_search_fn="strong_wolfe",
                                tolerance_grad=1e-12, tolerance_change=1e-15)

        def closure():
            opt.zero_grad()
            r = y - torch.relu(X @ U.T) @ a
            f = 0.5 * (r @ r) + 0.5 * self.lam * ((U ** 2).sum() + (a ** 2).sum())
            f.backward()
            return f

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny tensors: torch's worker threads only spin against the solver
        try:
            opt.step(closure)
        finally:
            torch.set_num_threads(threads)
        return ReLUState(U.detach().numpy().copy(), a.detach().numpy().copy())

    @on_one_blas_thread
    def block_gaps(self, s: ReLUState) -> dict[str, float]:
        if s.U.shape[0] == 0:
            return {"hidden": 0.0, "output": 0.0}
        f = self.objective(s)
        out = f - self.objective(self.output_block(s))
        hid_val = math.inf
        for flip in (False, True) if self.has_boundary(s) else (False,):
            try:
                v, _ = self.hidden_block_value(s, flip_boundary=flip)
            except Exception as exc:  # noqa: BLE001 - reported as an unmeasured gap
                logger.warning("hidden-block gap solve failed: %s", exc)
                v = math.nan
            hid_val = v if math.isnan(v) else min(hid_val, v)
            if math.isnan(hid_val):
                break
        return {"hidden": f - hid_val, "output": out}

    def drop_zero(self, s: ReLUState) -> ReLUState:
        size = np.abs(s.alpha) * np.linalg.norm(np.maximum(self.X @ s.U.T, 0.0), axis=0)
        keep = size > self.zero_tol * self._scale
        if keep.all():
            return s
        return ReLUState(s.U[keep].copy(), s.alpha[keep].copy())

    def outputs_for_rescale(self, s: ReLUState) -> dict[str, np.ndarray]:
        return {"outputs": unit_outputs(self.X, s)}

    def thetas(self, s: ReLUState) -> np.ndarray:
        return 0.5 * (np.sum(s.U**2, axis=1) + s.alpha**2)

    def scale(self, s: ReLUState, factors: np.ndarray) -> ReLUState:
        return ReLUState(s.U * factors[:, None], s.alpha * factors)

    def screen_polar(self, s: ReLUState, k: int) -> PolarInfo | None:
        """Cheap multi-start screening; returns up to ``k`` distinct maximisers above λ, or None.

        Each start's end point lies in some chamber; the screen returns that chamber's exact maximiser instead
        (``Π_K(c)/‖Π_K(c)‖``, :func:`.pattern_programs._projection_program`: one small NNLS), which sits exactly
        on the chamber's active faces — so the next piece program starts the new unit with its active rows in
        place. Every value is attained (``s·Gᵀ(X u)_+`` at the returned ``u``): a lower bound on the polar, no
        more; the screen never certifies (:meth:`polar`)."""
        t0 = time.perf_counter()
        G = self.residual(s)
        found = local_polar_search(self.X, G, self.screen, seed=self.seed, iters=SCREEN_ITERS)
        seen: set[tuple[bytes, float]] = set()
        maxi: list[tuple[np.ndarray, float]] = []
        vals: list[float] = []
        for v, u, sgn in found:
            if v <= self.lam * (1.0 + 1e-3):
                break
            D = self.X @ u > 0
            key = (np.packbits(D).tobytes(), sgn)
            if key in seen:
                continue
            seen.add(key)
            u, v = self._chamber_maximiser(G, D, u, sgn, v)
            if any(sgn == s2 and np.linalg.norm(u - u2) <= 1e-9 for u2, s2 in maxi):
                continue   # two chambers' maximisers on their common face: one unit
            maxi.append((u, sgn))
            vals.append(v)
            if len(maxi) >= k:
                break
        if not maxi:
            return None
        order = np.argsort(-np.asarray(vals), kind="stable")
        return PolarInfo(value=vals[order[0]], upper=math.inf, exact=False,
                         method=f"screening by local search ({self.screen} starts): a lower bound",
                         maximisers=[maxi[i] for i in order], values=[vals[i] for i in order],
                         wall_time=time.perf_counter() - t0, screened=True)

    def _chamber_maximiser(self, G: np.ndarray, D: np.ndarray, u: np.ndarray, sgn: float,
                           v: float) -> tuple[np.ndarray, float]:
        """The maximiser of ``sgn·Gᵀ D X w`` over the closed chamber of pattern ``D`` and the unit ball, with its
        attained value ``sgn·Gᵀ(X w)_+``; ``(u, v)`` itself when that is not better (or the projection fails)."""
        c = sgn * (self.X.T @ np.where(D, G, 0.0))
        w, _, _ = _projection_program(np.where(D, 1.0, -1.0)[:, None] * self.X, c)
        nw = float(np.linalg.norm(w)) if w is not None else 0.0
        if w is None or nw <= 0.0:
            return u, float(v)
        w = w / nw
        vw = float(sgn * (G @ np.maximum(self.X @ w, 0.0)))
        return (w, vw) if vw >= v else (u, float(v))

    def _pattern_defaults(self) -> None:
        """``gradient_steps`` and ``walk`` not given: their defaults for exact or sampled patterns."""
        exact = isinstance(self.patterns, str) and self.patterns in ("exact", "auto")
        gradient_steps, walk = self._given
        # small data (exact patterns): torch's per-call overhead outweighs the gradient steps' gain
        self.gradient_steps = int((0 if exact else 30) if gradient_steps is None else gradient_steps)
        self.walk = int((WALK if exact else 0) if walk is None else walk)  # capped with exact patterns (measured)

    def prepare(self, deadline: float | None = None) -> None:
        """Called by :func:`.grow.grow` before its first round: enumerate the exact patterns now (cached for the
        polar checks), so that an arrangement beyond ``max_patterns`` fails before any solve instead of at the
        final polar, after the rounds' work.

        Raises :class:`~.patterns.PatternLimitError` (an ``InvalidInputError`` naming the fix: sampled patterns or
        a larger ``max_patterns``), or :class:`~.patterns.DeadlinePassed` (grow then ends ``time_limit``; Ctrl-C
        ends ``interrupted``); nothing for sampled or given patterns.
        """
        if not (isinstance(self.patterns, str) and self.patterns in ("exact", "auto")) or self._chamber_points:
            return  # sampled or given patterns, or enumerated already
        try:
            pats, pts = enumerate_chambers(self.X, max_patterns=int(self.polar_options.get("max_patterns",
                                                                                          DEFAULT_MAX_PATTERNS)),
                                           deadline=deadline)
        except PatternLimitError as exc:
            if self.patterns == "exact":
                raise
            logger.warning("patterns='auto': %s; the polar takes %d sampled patterns instead (a lower bound: the "
                           "certificate says 'not proven' unless the sample provably covers every pattern)",
                           exc, AUTO_SAMPLED_PATTERNS)
            self.patterns = AUTO_SAMPLED_PATTERNS
            self._pattern_defaults()
            return
        self.patterns = "exact"
        self._chamber_points = {p.tobytes(): u for p, u in zip(pats, pts)}

    @on_one_blas_thread
    def polar(self, s: ReLUState, k: int, full: bool = False, deadline: float | None = None) -> PolarInfo:
        """The screen, else the polar of :func:`.relu_polar.relu_polar` (``deadline``: raise
        :class:`~.patterns.DeadlinePassed` once passed, checked inside the enumeration and between programs)."""
        check_deadline(deadline, "ReLUGrowProblem.polar")
        if isinstance(self.patterns, str) and self.patterns == "auto":
            self.prepare(deadline)  # resolved to exact or sampled patterns (grow does it before its first round)
        if self.screen and not full:
            screened = self.screen_polar(s, k)
            if screened is not None:
                return screened
        opts = {"solver": self.solver, "seed": self.seed, **self.polar_options}
        G = self.residual(s)
        ys = float(np.linalg.norm(G)) or 1.0  # the polar is positively homogeneous in G: solve for G/‖G‖
        tau = self.lam / ys
        # programs whose bound is at most λ can neither add a unit nor fail the certificate: skip them;
        # where the result may certify (the best value is below λ), settle solves the band above it for the exact value
        p = relu_polar(self.X, G / ys, patterns=self.patterns, n_maximisers=k, deadline=deadline,
                       **{"prune_below": tau, "settle": "prune_below" not in self.polar_options, **opts})
        return PolarInfo(value=p.value * ys, upper=p.upper * ys, exact=p.exact, method=p.method,
                         maximisers=list(p.maximisers), values=[v * ys for v in p.values],
                         patterns_checked=p.patterns_checked,
                         patterns_total=p.patterns_total, wall_time=p.wall_time, solver_time=p.solver_time)

    def append(self, s: ReLUState, polar: PolarInfo, k: int) -> ReLUState:
        """Append up to ``k`` units along the polar maximisers, each scaled by the exact line search.

        Along the unit ``(√c u, s√c)`` (``‖u‖ = 1``, ``h = (X u)_+``) the objective is
        ``½‖G − c s h‖² + λc``, minimised at ``c = (s⟨G, h⟩ − λ)/‖h‖²`` when ``s⟨G, h⟩ > λ``; the
        residual is updated after each unit, so every appended unit lowers the objective.
        """
        G = self.residual(s)
        U, a = [s.U], [s.alpha]
        added = 0
        for u, sgn in polar.maximisers:
            if added >= k:
                break
            u = np.asarray(u, dtype=float)
            u = u / np.linalg.norm(u)
            h = np.maximum(self.X @ u, 0.0)
            hh = float(h @ h)
            v = float(sgn * (G @ h))
            if hh <= 0 or v <= self.lam:
                continue
            c = (v - self.lam) / hh
            U.append(math.sqrt(c) * u[None, :])
            a.append(np.array([sgn * math.sqrt(c)]))
            G = G - c * sgn * h
            added += 1
        return ReLUState(np.vstack(U), np.concatenate(a))

    def values(self, s: ReLUState) -> dict[str, np.ndarray]:
        return {"U": s.U.copy(), "alpha": s.alpha.copy()}
