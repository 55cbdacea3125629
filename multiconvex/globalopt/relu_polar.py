"""The polar of two-layer ReLU units with scalar output: exact over patterns, or a certified interval.

For data ``X`` (N × d) and ``G ∈ R^N`` (``G = −∇`` of the loss at the network output; the residual
``y − ŷ`` for the squared loss with sums) the polar of the unit regulariser
``θ(u, α) = ½(‖u‖² + α²)`` is (THEORY.md §4)::

    Ω°(G) = sup_{‖u‖≤1, |α|≤1} α Gᵀ(X u)_+ = sup_{‖u‖≤1} |Gᵀ(X u)_+|
          = max_{s=±1} max_D  max { s·Gᵀ D X u : (2D − I) X u ≥ 0, ‖u‖ ≤ 1 },

the inner maximum being one small SOCP per activation pattern ``D`` (see
:mod:`multiconvex.globalopt.patterns`). :func:`relu_polar` solves those SOCPs over every pattern
(exact) or over sampled and locally found patterns (a lower bound), and then bounds the polar from
above by a convex relaxation (:func:`relaxation_upper_bound`), so a result is an interval
``[value, upper]`` that contains the polar; through the convex dual an upper bound on the polar
gives a proven lower bound on the global optimum of the training objective
(:func:`multiconvex.globalopt.certificate.dual_lower_bound`).

This module runs the pattern programs in chunks through an executor, prunes them by their one-row
bound (below ``‖Xᵀ D G‖``) and their two-row dual bound, and assembles the :class:`PolarResult`; the parts
live beside it: :mod:`.pattern_programs` (one pattern's program, three ways), :mod:`.polar_bounds` (the two-row
dual bounds and closed forms), :mod:`.polar_inputs` (input checks,
``patterns=``), :mod:`.polar_search` (:func:`local_polar_search`) and :mod:`.polar_relaxation`
(:func:`relaxation_upper_bound`).

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = np.c_[rng.standard_normal((20, 2)), np.ones(20)]
>>> G = rng.standard_normal(20)
>>> res = relu_polar(X, G)                          # exact: every pattern of the arrangement
>>> res.exact, res.value == res.upper
(True, True)
>>> u, s = res.maximisers[0]
>>> bool(np.isclose(s * G @ np.maximum(X @ u, 0), res.value))
True
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from multiconvex.errors import InvalidInputError, MulticonvexError
from multiconvex.executor import make_executor
from multiconvex.solvers import resolve

# _solve_chunk looks the per-pattern programs up in this module's namespace (a test replaces one here)
from .pattern_programs import _clarabel_program, _CvxpyProgram, _projection_program
from .patterns import _ZERO_ROW_TOL, DEFAULT_MAX_PATTERNS, check_deadline, enumerate_patterns
from .polar_bounds import refine_bounds
from .polar_inputs import _check_int, _check_patterns, _check_XG, _resolve_patterns
from .polar_relaxation import RelaxationBound, relaxation_upper_bound
from .polar_search import local_polar_search

logger = logging.getLogger(__name__)

__all__ = [
    "PolarResult",
    "RelaxationBound",
    "local_polar_search",
    "relaxation_upper_bound",
    "relu_polar",
]

_WHERE = "relu_polar"


@dataclass(frozen=True)
class PolarResult:
    """The polar ``Ω°(G) = sup_{‖u‖≤1} |Gᵀ(X u)_+|``, or an interval that contains it.

    Attributes
    ----------
    value : float
        Best value found: the polar when ``exact``, else a lower bound on it (it is attained by
        ``maximisers[0]``; solver tolerances ~1e-8 apply when exact).
    upper : float
        A proven upper bound on the polar (``== value`` when exact; ``math.inf`` when none was
        computed).
    exact : bool
        True only when every activation pattern was checked (exact enumeration, or a sample that
        provably holds every pattern) and every per-pattern program was solved or pruned.
    method : str
        How the value and the bound were obtained.
    patterns_checked : int
        Patterns accounted for (solved, solved in closed form, or pruned by their bound).
    patterns_total : int or None
        The number of patterns of the data's arrangement when known, else None.
    maximisers : list of (numpy.ndarray, float)
        ``(u, s)`` with ``‖u‖ = 1`` and ``s ∈ {+1, −1}``, best first, distinct; the unit
        ``(u, α = s)`` has ``s·Gᵀ(X u)_+ = values[k]``.
    values : list of float
        ``s·Gᵀ(X u)_+`` of each maximiser, same order.
    solver_time : float
        Backend time summed over the per-pattern programs and the relaxation.
    wall_time : float
    pruned : bool
        Whether ``prune_below`` left programs unsolved whose bound exceeds ``value`` (then ``upper``
        carries their bound; a call without ``prune_below`` may tighten it).
    """

    value: float
    upper: float
    exact: bool
    method: str
    patterns_checked: int
    patterns_total: int | None
    maximisers: list = field(default_factory=list)
    values: list = field(default_factory=list)
    solver_time: float = 0.0
    wall_time: float = 0.0
    pruned: bool = False

    @property
    def gap(self) -> float:
        """``upper − value`` (0 when exact)."""
        return self.upper - self.value


# --------------------------------------------------------------------------- per-pattern programs, by chunk


def _solve_chunk(task: tuple) -> list[tuple[float, np.ndarray | None, str, float]]:
    """Solve the per-pattern programs of one chunk: ``(X, G, patterns, signs, solver, kind)``.

    Module level and plain data in, plain data out: safe for process pools and Dask.
    """
    X, G, pats, signs, solver, kind = task
    N, d = X.shape
    # Rows the enumeration treats as zero (norm ≤ _ZERO_ROW_TOL of the largest) carry no cone
    # constraint: their pattern bit is arbitrary (always "active" there), and the half-space
    # constraint of a tiny non-zero row would cut every cone in half (a false "exact" maximum).
    # Dropping it changes each program's value by at most |G_i|·‖x_i‖; the reported value is
    # re-evaluated at the solution.
    norms = np.linalg.norm(X, axis=1)
    keep = norms > _ZERO_ROW_TOL * max(norms.max(), 1e-300)
    program = {"native": _clarabel_program, "nnls": _projection_program}.get(kind) or _CvxpyProgram(N, d, solver)
    out: list[tuple[float, np.ndarray | None, str, float]] = []
    for D, s in zip(pats, signs):
        c = s * (X.T @ (D * G))
        Xc = np.where(D, 1.0, -1.0)[:, None] * X
        if kind == "cvxpy":
            Xc[~keep] = 0.0  # fixed parameter shape: a zero row is the constraint 0 ≥ 0
        u, status, t = program(Xc[keep], c) if kind != "cvxpy" else program(Xc, c)
        if kind != "nnls" and status not in ("Solved", "optimal"):
            # failed or reduced-accuracy conic solve (an "AlmostSolved" point may be suboptimal by far
            # more than the tolerance the exact polar promises): settle it by the exact projection
            u2, status2, t2 = _projection_program(Xc[keep], c)
            t += t2
            if u2 is not None:
                u, status = u2, f"{status2} (nnls after {status})"
        elif u is None:
            # the active-set iteration limit: settle it by the conic program instead
            u, status2, t2 = _clarabel_program(Xc[keep], c)
            t += t2
            status = f"{status2} (Clarabel after {status})"
            if status2 != "Solved":
                u = None
        if u is None:
            out.append((-math.inf, None, status, t))
            continue
        nu = np.linalg.norm(u)
        if nu <= 1e-9 * max(float(np.linalg.norm(c)), 1e-300):  # optimum 0 at u = 0: no direction to report
            out.append((0.0, None, "zero", t))
            continue
        u = u / nu
        out.append((float(s * (np.maximum(X @ u, 0) @ G)), u, status, t))
    return out


# --------------------------------------------------------------------------- the polar


def relu_polar(
    X: Any,
    G: Any,
    *,
    patterns: Any = "exact",
    solver: str = "clarabel",
    n_maximisers: int = 1,
    upper_bound: bool | str = "auto",
    seed: Any = None,
    executor: Any = "inprocess",
    n_workers: int | None = None,
    local_starts: int = 0,
    max_patterns: int = DEFAULT_MAX_PATTERNS,
    per_pattern: str = "auto",
    bound_time_limit: float = 30.0,
    prune_below: float | None = None,
    settle: bool = False,
    deadline: float | None = None,
) -> PolarResult:
    """The polar ``Ω°(G) = sup_{‖u‖≤1} |Gᵀ(X u)_+|`` of two-layer ReLU units (scalar output).

    For each pattern ``D`` and sign ``s`` the program ``max s·Gᵀ D X u s.t. (2D−I) X u ≥ 0,
    ‖u‖ ≤ 1`` is solved — unless it can be settled without a solve. With ``c = s·XᵀDG`` its value is
    ``‖Π_K(c)‖`` for the cone ``K``; it is at most ``‖c‖`` (attained when ``c`` lies in ``K``), and at most
    the norm of ``c``'s projection onto the hyperplane of the row it violates most — the **one-row bound**
    ``‖c‖·√(1 − cos²)`` — which is attained when that projection lies in ``K`` (then it is ``Π_K(c)``: solved in
    closed form). Where that does not decide a program, the **two-row dual bound**
    (:func:`.polar_bounds.refine_bounds`: ``‖c + Cᵀμ‖`` for a ``μ ≥ 0`` on two rows, found by a short walk over
    pairs of rows; weak duality makes it a bound for any such ``μ``) tightens it, and settles the program in
    closed form when its projection lies in ``K`` (the per-pattern program routes but ``"cvxpy"``). Programs whose
    bound cannot beat the ``n_maximisers``-th best value found so far are pruned (processed best bound first, in
    batches through the executor). Pruning keeps the result exact.

    Parameters
    ----------
    X : array (N, d)
        Data (a bias is a constant column the caller adds).
    G : array (N,)
        ``−∇`` of the loss at the network output (the residual ``y − ŷ`` for ½‖y − ŷ‖²).
    patterns : "exact", int, or bool array (P, N)
        ``"exact"``: every pattern (:func:`~multiconvex.globalopt.patterns.enumerate_patterns`;
        raises ``PatternLimitError`` beyond ``max_patterns``; not exact when the enumeration is not
        proven complete, :mod:`~multiconvex.globalopt.pattern_proof`). An int: that many sampled
        directions (:func:`~multiconvex.globalopt.patterns.sample_patterns`): a lower bound, unless
        the sample provably holds every pattern. An array: those patterns; exact only when it holds
        every pattern of an enumeration of the same ``X`` made in this process (so passing
        ``enumerate_patterns(X)`` back in each round stays exact).
    solver : str
        Registry backend for the per-pattern SOCPs and the relaxation (``clarabel``, ``scs``,
        ``ecos``, ``mosek``, ``gurobi``, ...).
    n_maximisers : int
        How many distinct maximisers ``(u, s)`` (different ``u`` or sign) to return, best first.
    upper_bound : bool, "auto", or "bnb"
        ``"auto"`` / ``True``: when not exact, also compute the root relaxation of
        :func:`relaxation_upper_bound` (about 0.3 s at N=442, d=11). ``"bnb"``: tighten it by
        branch and bound for up to ``bound_time_limit`` seconds. When exact the bound is the value
        itself. ``False``: ``upper = inf`` when not exact.
    seed : int, optional
        Seeds the sampled patterns and the local search.
    executor, n_workers
        Where the per-pattern programs run (:func:`multiconvex.executor.make_executor`:
        ``"inprocess"``, ``"threads"``, ``"processes"``, ``"dask"`` or an executor object).
    bound_time_limit : float
        Seconds of branch and bound for ``upper_bound="bnb"``.
    local_starts : int
        Starts of :func:`local_polar_search` (0: none). Their values seed the pruning threshold
        (fewer solves, also when exact) and, when not exact, their patterns join the checked ones.
    max_patterns : int
        Cap for ``patterns="exact"``.
    per_pattern : "auto", "native", "cvxpy", or "nnls"
        How each pattern's program is solved. ``"nnls"`` (what ``"auto"`` picks): no conic solver —
        the maximum over the cone ``K`` and the unit ball is ``‖Π_K(c)‖``, and the projection is a
        non-negative least-squares problem solved exactly by an active-set method (a vertex of the
        KKT system, so the value is exact to rounding, not to an interior-point tolerance); where
        its iteration limit is hit, Clarabel's matrix interface solves that program.
        ``"native"``: Clarabel's matrix interface for every program; ``"cvxpy"``: one DPP problem per
        chunk of patterns, re-solved with new parameter values, through the registry (any SOCP
        backend). Measured per program (2-core machine under
        load, chunk of 200 patterns): N=40, d=3: native 0.7–0.8 ms, DPP 3.8–4.1 ms, nnls 0.09 ms;
        N=442, d=11: native 4.8–7.2 ms, DPP 6.9–8.5 ms, nnls 0.65 ms. Optimal values agree to the
        SOCP tolerance (≤ 1.3e-7). A whole exact polar at N=40, d=4 (19840 patterns, 22048
        programs): native 8.7 s, nnls 2.4 s.

    prune_below : float, optional
        A caller that only compares the polar with a threshold ``τ`` (λ, for the certificate) and grows
        along maximisers above it: programs whose bound (one-row or two-row) is at most ``τ`` are not solved.
        The result is then ``value`` (the best program solved) and ``upper = max(value, largest pruned
        bound)`` — a proven interval, exact only when no pruned bound exceeds ``value``.
    settle : bool
        With ``prune_below``: when the best value found is below ``τ`` while programs with a bound between it
        and ``τ`` are left, solve those too (largest bound first, until no bound exceeds the best value), so
        the result is exact where it may certify — one pass, instead of a second call without
        ``prune_below`` that would solve every program again.
    deadline : float, optional
        A run's deadline (``time.perf_counter()`` seconds): checked inside the pattern enumeration, between
        chunks of pattern programs and before the relaxation bound (whose branch and bound gets at most the
        time left); once passed, :class:`~.patterns.DeadlinePassed` is raised and nothing is returned.

    Returns
    -------
    PolarResult

    Raises
    ------
    InvalidInputError
        Bad shapes, NaN/inf, unknown options (before any solve).
    PatternLimitError
        ``patterns="exact"`` with more than ``max_patterns`` patterns.
    DeadlinePassed
        ``deadline`` passed before the polar was computed.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> X = np.c_[rng.standard_normal((30, 2)), np.ones(30)]
    >>> G = rng.standard_normal(30)
    >>> exact = relu_polar(X, G)
    >>> sampled = relu_polar(X, G, patterns=20, seed=0)
    >>> bool(sampled.value <= exact.value + 1e-9 <= sampled.upper + 2e-9), sampled.exact
    (True, False)
    """
    start = time.perf_counter()
    X, G = _check_XG(X, G, _WHERE)
    N, d = X.shape
    patterns = _check_patterns(patterns, N, _WHERE)
    n_maximisers = _check_int(n_maximisers, "n_maximisers", 1, _WHERE)
    local_starts = _check_int(local_starts, "local_starts", 0, _WHERE)
    max_patterns = _check_int(max_patterns, "max_patterns", 1, _WHERE)
    if upper_bound not in (True, False, "auto", "bnb"):
        raise InvalidInputError(
            f"{_WHERE}: upper_bound must be True, False, 'auto' or 'bnb', got {upper_bound!r}."
        )
    if isinstance(bound_time_limit, bool) or not isinstance(bound_time_limit, (int, float)) or not (
            bound_time_limit >= 0):
        raise InvalidInputError(f"{_WHERE}: bound_time_limit must be seconds >= 0, got {bound_time_limit!r}.")
    if per_pattern not in ("auto", "native", "cvxpy", "nnls"):
        raise InvalidInputError(
            f"{_WHERE}: per_pattern must be 'auto', 'native', 'cvxpy' or 'nnls', got {per_pattern!r}."
        )

    backend = resolve(solver, "SOCP")[0]   # unknown / unavailable / unable: raised here, before any solve
    kind = per_pattern
    if kind == "auto":
        kind = "nnls"
    if prune_below is not None and not (isinstance(prune_below, (int, float)) and math.isfinite(prune_below)):
        raise InvalidInputError(f"{_WHERE}: prune_below must be a finite number or None, got {prune_below!r}.")
    tau = -math.inf if prune_below is None else float(prune_below)
    if kind == "native" and backend.name != "clarabel":
        raise InvalidInputError(f"{_WHERE}: per_pattern='native' needs solver='clarabel', got {solver!r}.")

    if isinstance(patterns, str) and deadline is not None:
        # the enumeration with the deadline checked inside it; _resolve_patterns then finds it in the cache
        enumerate_patterns(X, max_patterns=max_patterns, deadline=deadline)
    pats, exact, total, how = _resolve_patterns(X, patterns, seed, max_patterns)
    found: list[tuple[float, np.ndarray, float]] = []   # (value, u, s): every attained point
    notes = []
    if local_starts:
        local = local_polar_search(X, G, local_starts, seed=seed)
        found += local
        if not exact:
            extra = np.array([X @ u >= 0 for _, u, _ in local[: max(local_starts, 1)]])
            before = len(pats)
            pats = np.unique(np.concatenate([pats, extra]), axis=0)
            notes.append(f"{len(pats) - before} patterns from {local_starts} local starts")
    # bounds and closed forms for every (pattern, sign), by rows of patterns (the deadline is checked between
    # them: at P ~ 300 000 this takes seconds). With c = s·XᵀDG the program's value is ‖Π_K(c)‖ for the cone
    # K = {u : (2D − I) X u ≥ 0}. K lies in each half-space c_iᵀu ≥ 0, so for a row with c_iᵀc < 0 the value is
    # at most the norm of c's projection onto that row's hyperplane, ‖c‖·√(1 − cos²) (the most negative cosine
    # gives the least bound: the "one-row bound", tighter than ‖c‖); when that projection lies in K it *is*
    # Π_K(c), and the program is solved in closed form. Rows treated as zero carry no constraint (_solve_chunk).
    P = len(pats)
    xn = np.linalg.norm(X, axis=1)
    keep = xn > _ZERO_ROW_TOL * max(float(xn.max()), 1e-300)
    Xk, xk = X[keep], xn[keep]
    tol = 1e-12 * max(float(xn.max()), 1e-300)
    bound = {1.0: np.zeros(P), -1.0: np.zeros(P)}
    two_rows = kind != "cvxpy"   # (the DPP route stays the plain reference path)
    n_two = 0
    for first in range(0, P, _BOUND_ROWS):
        check_deadline(deadline, _WHERE)
        rows = slice(first, first + _BOUND_ROWS)
        C = (pats[rows] * G) @ X
        b_rows = np.linalg.norm(C, axis=1)
        dirs = C / np.maximum(b_rows, 1e-300)[:, None]
        sg = np.where(pats[rows][:, keep], 1.0, -1.0)
        proj = sg * (dirs @ Xk.T)                            # ĉᵀ(2D − I)x_i
        cos = proj / xk
        for s in (1.0, -1.0):
            inside = (s * proj >= -tol).all(axis=1) & (b_rows > 0)
            if not xk.size:   # every row treated as zero: no constraint, c itself is the maximiser
                m, U, nU, facet = np.zeros(len(cos)), dirs, b_rows, np.zeros(len(cos), dtype=bool)
            else:
                worst = np.argmin(s * cos, axis=1)
                m = (s * cos)[np.arange(len(cos)), worst]    # the most negative cosine of s·ĉ with a row
                # the projection of s·ĉ onto the worst row's hyperplane; in K: the program's maximiser
                U = s * dirs - m[:, None] * sg[np.arange(len(cos)), worst][:, None] * (Xk[worst] / xk[worst, None])
                nU = np.linalg.norm(U, axis=1)
                facet = ~inside & (b_rows > 0) & (nU > 1e-9) & (
                    (sg * (U @ Xk.T)) >= -tol * np.maximum(nU, 1e-300)[:, None]).all(axis=1)
            for q in np.flatnonzero(inside | facet):
                u = s * dirs[q] if inside[q] else U[q] / nU[q]
                found.append((float(s * (np.maximum(X @ u, 0) @ G)), u, s))
            # (1e-14 under the root and 1e-12: the cancellation in 1 − m² and the rounding of the cosines)
            b = np.where(inside, b_rows, b_rows * np.sqrt(np.clip(1.0 - m * m, 0.0, 1.0) + 1e-14) * (1.0 + 1e-12))
            settled = inside | facet
            if two_rows and xk.size:
                # the dual bound on two rows at a time (polar_bounds), where the one-row bound does not decide
                floor = min(max(tau, _threshold(found, n_maximisers, d)),
                            _threshold(found, 1, d) if settle else math.inf)
                open_ = np.flatnonzero(~settled & (b_rows > 0) & (b > floor))
                b[open_], closed, pts = refine_bounds(s * C[open_], sg[open_], Xk, worst[open_], b[open_], floor)
                for q in np.flatnonzero(closed):
                    size = float(np.linalg.norm(pts[q]))
                    u = pts[q] / size
                    val = float(s * (np.maximum(X @ u, 0) @ G))
                    found.append((val, u, s))
                    # settled only where the closed form's value ‖point‖ (an upper bound) is attained at its point to
                    # 1e-12: a point feasible only to the tolerance can fall short; such a program keeps its bound
                    closed[q] = val >= size * (1.0 - 1e-12)
                settled[open_[closed]] = True
                n_two += int(closed.sum())
            bound[s][rows] = np.where(settled, -math.inf, b)   # -inf: settled in closed form
    n_closed = sum(int(np.isneginf(bound[s]).sum()) for s in (1.0, -1.0))
    rest = {s: np.flatnonzero(bound[s] > 0) for s in (1.0, -1.0)}
    cand_p = np.concatenate([rest[1.0], rest[-1.0]])
    cand_s = np.concatenate([np.full(rest[1.0].size, 1.0), np.full(rest[-1.0].size, -1.0)])
    cand_b = np.concatenate([bound[1.0][rest[1.0]], bound[-1.0][rest[-1.0]]])
    order = np.argsort(-cand_b, kind="stable")
    cand_p, cand_s, cand_b = cand_p[order], cand_s[order], cand_b[order]

    own = isinstance(executor, str) or executor is None
    ex = make_executor(executor, n_workers) if own else make_executor(executor)
    workers = max(1, int(getattr(ex, "workers", 1) or 1))
    chunk = 16 if workers > 1 else 64
    solver_time, n_solved, failed_bound = 0.0, 0, -math.inf
    failures: list[str] = []
    pos = 0
    settling = False   # settle: past τ, only the value matters (the maximisers found so far are all below τ)
    try:
        while pos < len(cand_p):
            check_deadline(deadline, _WHERE)  # between rounds of chunks: at most one round past it
            thr = (_threshold(found, 1, d) if settling else max(_threshold(found, n_maximisers, d), tau))
            if cand_b[pos] <= thr:
                if settle and not settling and cand_b[pos] > _threshold(found, 1, d):
                    settling = True
                    continue
                break
            stop = pos
            limit = pos + chunk * workers
            while stop < min(limit, len(cand_p)) and cand_b[stop] > thr:
                stop += 1
            tasks = [(X, G, pats[cand_p[i:min(i + chunk, stop)]], cand_s[i:min(i + chunk, stop)], solver, kind)
                     for i in range(pos, stop, chunk)]
            for k, res in enumerate(ex.map(_solve_chunk, tasks)):
                for j, (val, u, status, t) in enumerate(res):
                    idx = pos + k * chunk + j
                    solver_time += t
                    n_solved += 1
                    if u is None and status == "zero":
                        continue
                    if u is None:
                        failed_bound = max(failed_bound, float(cand_b[idx]))
                        failures.append(status)
                        continue
                    found.append((val, u, float(cand_s[idx])))
            pos = stop
    finally:
        if own:
            ex.close()
    n_pruned = len(cand_p) - pos

    best = _distinct_best(found, n_maximisers, d)
    if not best:  # every program had optimum 0: the polar is 0 and every direction attains it
        best = [(0.0, np.eye(1, d)[0], 1.0)]
    value = max(0.0, best[0][0])
    complete = exact
    pruned_above = float(cand_b[pos]) if pos < len(cand_p) else -math.inf   # the largest bound not solved
    if pruned_above > value:   # pruned by prune_below, not by the values found: a proven interval
        exact = False
        failed_bound = max(failed_bound, pruned_above)
        notes.append(f"programs with bound <= prune_below={tau:.6g} not solved (largest {pruned_above:.6g})")
    if failures:
        exact = False
        notes.append(f"{len(failures)} programs failed ({failures[0]}); their dual bound is used")
    # Rows the enumeration and the programs treat as zero (_solve_chunk) still enter the true objective:
    # each moves it by at most |G_i|·‖x_i‖ for ‖u‖ ≤ 1, so with δ their sum a program's optimum is at most
    # value + δ at its solution and the polar on its chamber at most that + δ (failed or pruned: bound + δ)
    norms = np.linalg.norm(X, axis=1)
    tiny = norms <= _ZERO_ROW_TOL * max(float(norms.max()), 1e-300)
    delta = float(np.abs(G[tiny]) @ norms[tiny]) * (1.0 + 1e-10) if complete else 0.0
    if delta > 0:
        exact = False
        failed_bound = max(value + delta, failed_bound) + delta
        notes.append(f"{int(tiny.sum())} rows of norm <= {_ZERO_ROW_TOL:g} x the largest treated as zero: "
                     f"the bound carries their contribution {delta:.3g} twice")
    notes.insert(0, f"{n_solved} pattern programs solved ({kind}), {n_closed} in closed form ({n_two} by two rows), "
                    f"{n_pruned} pruned by their dual bound (one or two rows)")
    if exact:
        upper = value
    elif complete:  # every pattern accounted for; a failed or pruned program is bounded by its dual bound
        upper = max(value, failed_bound)
    elif upper_bound is False:
        upper = math.inf
    else:
        check_deadline(deadline, _WHERE)
        bnb_time = float(bound_time_limit) if upper_bound == "bnb" else 0.0
        if deadline is not None:
            bnb_time = min(bnb_time, max(0.0, deadline - time.perf_counter()))
        try:
            rb = relaxation_upper_bound(X, G, solver=solver, lower=value, time_limit=bnb_time)
        except MulticonvexError as exc:
            logger.warning("relu_polar: the relaxation upper bound failed: %s", exc)
            upper = math.inf
            notes.append(f"upper bound failed ({exc})")
        else:
            solver_time += rb.solver_time
            if rb.lower > value:  # a point rounded from the relaxation beat the patterns
                found.append((rb.lower, rb.maximiser[0], rb.maximiser[1]))
                best = _distinct_best(found, n_maximisers, d)
                value = max(0.0, best[0][0])
            upper = max(rb.upper, value)
            notes.append("+ SDP-relaxation upper bound" + (f" (branch and bound, {rb.nodes} nodes)"
                                                           if upper_bound == "bnb" else ""))
    method = f"{how}: " + "; ".join(notes)
    logger.debug("relu_polar: %s -> [%g, %g]", method, value, upper)
    return PolarResult(
        value=value, upper=float(upper), exact=bool(exact), method=method,
        patterns_checked=len(pats), patterns_total=total,
        maximisers=[(u, s) for _, u, s in best], values=[v for v, _, _ in best],
        solver_time=solver_time, wall_time=time.perf_counter() - start, pruned=pruned_above > value,
    )


#: Patterns per row block of the bounds and closed forms (the deadline is checked between blocks). 16384 made a
#: block ~0.3 s on 200 samples, and a run with ``time_limit=0.8`` end ~0.5 s late; 4096 checks 4× as often and is
#: faster too (100,000 sampled patterns on 200 × 6: 1.7 s against 2.1–2.6 s; the same polar).
_BOUND_ROWS = 4096


def _threshold(found: list, n: int, d: int) -> float:
    """The value of the n-th best *distinct* maximiser found so far (−inf while fewer): a program
    whose bound is not above it can change neither the polar nor the returned maximisers."""
    if n == 1:
        return max((v for v, _, _ in found), default=-math.inf)
    best = _distinct_best(found, n, d)
    return best[-1][0] if len(best) == n else -math.inf


def _distinct_best(found: list, n: int, d: int) -> list[tuple[float, np.ndarray, float]]:
    """Best ``n`` of ``(value, u, s)`` with distinct ``(u, s)`` (the same ``u`` from adjacent patterns merges)."""
    out: list[tuple[float, np.ndarray, float]] = []
    for v, u, s in sorted(found, key=lambda t: -t[0]):
        if not np.isfinite(v):
            continue
        if any(s == s2 and np.linalg.norm(u - u2) < 1e-3 for _, u2, s2 in out):
            continue
        nu = np.linalg.norm(u)
        out.append((v, u / nu if nu > 0 else np.eye(1, d)[0], s))
        if len(out) == n:
            break
    return out
