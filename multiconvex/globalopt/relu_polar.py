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

import heapq
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import cvxpy as cp
import numpy as np
import scipy.sparse as sp
from scipy.optimize import nnls

from multiconvex.errors import InvalidInputError, MulticonvexError
from multiconvex.executor import make_executor
from multiconvex.solvers import get_backend, resolve, solve_cvxpy
from multiconvex.solvers.clarabel_native import nonneg, second_order, solve_once

from .checks import check_array
from .patterns import (
    _ZERO_ROW_TOL,
    DEFAULT_MAX_PATTERNS,
    _cached,
    _sample_points,
    _sampled_complete,
    enumerate_patterns,
    patterns_complete,
)

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
        Patterns accounted for (solved, solved in closed form, or pruned by ``‖Xᵀ D G‖``).
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

    @property
    def gap(self) -> float:
        """``upper − value`` (0 when exact)."""
        return self.upper - self.value


# --------------------------------------------------------------------------- input checks


def _check_XG(X: Any, G: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    X = check_array(X, name="X", where=where, ndim=2)
    G = check_array(G, name="G", where=where)
    if G.ndim == 2 and G.shape[1] == 1:
        G = G[:, 0]
    if G.ndim != 1:
        raise InvalidInputError(
            f"{where}: G must be a vector of length N={X.shape[0]} (scalar output), got shape {G.shape}; "
            "vector outputs are not supported by the pattern programs."
        )
    if G.shape[0] != X.shape[0]:
        raise InvalidInputError(
            f"{where}: G has {G.shape[0]} entries but X has {X.shape[0]} rows; pass one entry per sample."
        )
    return X, G


def _check_int(value: Any, name: str, low: int, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise InvalidInputError(f"{where}: {name} must be an integer >= {low}, got {value!r}.")
    return int(value)


def _check_patterns(patterns: Any, N: int, where: str) -> Any:
    if isinstance(patterns, str):
        if patterns != "exact":
            raise InvalidInputError(
                f"{where}: patterns={patterns!r} is not understood; use 'exact', a number of sampled "
                "patterns, or a boolean array (P, N)."
            )
        return patterns
    if isinstance(patterns, (int, np.integer)) and not isinstance(patterns, bool):
        return _check_int(patterns, "patterns", 1, where)
    arr = np.asarray(patterns)
    if arr.ndim != 2 or arr.shape[1] != N or arr.shape[0] == 0:
        raise InvalidInputError(
            f"{where}: a pattern array must have shape (P, N={N}) with P >= 1, got {arr.shape}."
        )
    if arr.dtype != bool:
        if not np.isin(arr, (0, 1)).all():
            raise InvalidInputError(f"{where}: a pattern array must hold booleans (or 0/1).")
        arr = arr.astype(bool)
    return np.unique(arr, axis=0)


def _resolve_patterns(X: np.ndarray, patterns: Any, seed: Any, max_patterns: int
                      ) -> tuple[np.ndarray, bool, int | None, str]:
    """(patterns, provably complete, total count if known, description)."""
    if isinstance(patterns, str):
        pats = enumerate_patterns(X, max_patterns=max_patterns)
        if patterns_complete(X, pats):
            return pats, True, len(pats), f"exact patterns (P={len(pats)})"
        return pats, False, None, (f"enumerated patterns (P={len(pats)}; not proven complete: the construction "
                                   "disagreed with a sampling cross-check on this near-degenerate data)")
    if isinstance(patterns, int):
        rng = np.random.default_rng(seed)
        U = _sample_points(X, patterns, rng)
        pats = np.unique(U @ X.T >= 0, axis=0)
        if _sampled_complete(X, U):
            return pats, True, len(pats), f"sampled patterns (P={len(pats)}, provably all)"
        return pats, False, None, f"sampled patterns (P={len(pats)})"
    if patterns_complete(X, patterns):
        total = len(_cached(X)[0])
        return patterns, True, total, f"given patterns (P={len(patterns)}, all {total} enumerated ones)"
    return patterns, False, None, f"given patterns (P={len(patterns)})"


# --------------------------------------------------------------------------- local search


def local_polar_search(X: np.ndarray, G: np.ndarray, starts: int, *, seed: Any = None,
                       iters: int = 60) -> list[tuple[float, np.ndarray, float]]:
    """Multi-start ascent of ``s·Gᵀ(X u)_+`` on the unit sphere, vectorised over starts.

    Each start moves to ``normalize(u + η g)`` with ``g = s·Xᵀ(G ∘ 1[Xu > 0])`` the gradient (on a
    chamber the objective is linear, and with ``η`` large the step jumps to the chamber's
    unconstrained maximiser ``g/‖g‖``); a step that does not improve halves that start's ``η``.
    Starts: Gaussian directions plus ``±XᵀG``-type directions. Returns ``(value, u, s)`` per start
    and sign, best first; each value is attained (a valid lower bound on the polar).
    """
    rng = np.random.default_rng(seed)
    d = X.shape[1]
    U0 = rng.standard_normal((max(starts, 1), d))
    extra = [X.T @ G, X.T @ np.maximum(G, 0), X.T @ np.minimum(G, 0)]
    U0 = np.concatenate([U0, np.array(extra), -np.array(extra)])
    U0 /= np.maximum(np.linalg.norm(U0, axis=1, keepdims=True), 1e-300)
    out = []
    for s in (1.0, -1.0):
        u = U0.copy()
        val = s * (np.maximum(u @ X.T, 0) @ G)
        eta = np.full(len(u), 4.0)
        for _ in range(iters):
            g = s * ((u @ X.T > 0) * G) @ X
            gn = np.linalg.norm(g, axis=1, keepdims=True)
            cand = u + eta[:, None] * g / np.maximum(gn, 1e-300)
            cand /= np.maximum(np.linalg.norm(cand, axis=1, keepdims=True), 1e-300)
            cval = s * (np.maximum(cand @ X.T, 0) @ G)
            better = cval > val
            u[better], val[better] = cand[better], cval[better]
            eta = np.where(better, np.minimum(eta * 1.5, 4.0), eta * 0.5)
            if (eta < 1e-6).all():
                break
        out += [(float(v), uu, s) for v, uu in zip(val, u)]
    out.sort(key=lambda t: -t[0])
    return out


# --------------------------------------------------------------------------- per-pattern programs


def _clarabel_program(Xc: np.ndarray, c: np.ndarray) -> tuple[np.ndarray | None, str, float]:
    """``max cᵀu s.t. Xc u ≥ 0, ‖u‖ ≤ 1`` through Clarabel's native matrix interface."""
    n, d = Xc.shape
    P = sp.csc_matrix((d, d))
    A = sp.csc_matrix(np.vstack([-Xc, np.zeros((1, d)), -np.eye(d)]))
    b = np.zeros(n + 1 + d)
    b[n] = 1.0
    sol = solve_once(P, -c, A, b, [nonneg(n), second_order(d + 1)])
    return sol.x, sol.native_status, sol.solve_time


def _projection_program(Xc: np.ndarray, c: np.ndarray) -> tuple[np.ndarray | None, str, float]:
    """The same maximum by projection: ``max_{u∈K, ‖u‖≤1} cᵀu = ‖Π_K(c)‖`` for the cone
    ``K = {u : Xc u ≥ 0}``; by Moreau ``Π_K(c) = c + Xcᵀλ`` with ``λ = argmin_{λ≥0} ‖c + Xcᵀλ‖``
    (a non-negative least-squares problem, d rows, solved exactly by the active-set method)."""
    t = time.perf_counter()
    try:
        lam, _ = nnls(Xc.T, -c, maxiter=50 * max(Xc.shape))
    except RuntimeError as exc:  # iteration limit
        return None, f"nnls: {exc}", time.perf_counter() - t
    return c + Xc.T @ lam, "optimal", time.perf_counter() - t


class _CvxpyProgram:
    """The same program as a DPP cvxpy problem, built once and re-solved with new parameters."""

    def __init__(self, N: int, d: int, solver: str):
        self.u = cp.Variable(d)
        self.A = cp.Parameter((N, d))
        self.c = cp.Parameter(d)
        self.problem = cp.Problem(cp.Maximize(self.c @ self.u), [self.A @ self.u >= 0, cp.norm(self.u, 2) <= 1])
        self.backends = resolve(solver, "SOCP")

    def __call__(self, Xc: np.ndarray, c: np.ndarray) -> tuple[np.ndarray | None, str, float]:
        self.A.value, self.c.value = Xc, c
        try:
            rep = solve_cvxpy(self.problem, self.backends, warm_start=False)
        except MulticonvexError as exc:
            return None, f"{type(exc).__name__}: {exc}", 0.0
        return np.asarray(self.u.value), rep.status, rep.solve_time


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
    out = []
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
        if u is None:
            out.append((-math.inf, None, status, t))
            continue
        nu = np.linalg.norm(u)
        if nu <= 1e-9 * max(np.linalg.norm(c), 1e-300):  # optimum 0 at u = 0: no direction to report
            out.append((0.0, None, "zero", t))
            continue
        u = u / nu
        out.append((float(s * (np.maximum(X @ u, 0) @ G)), u, status, t))
    return out


# --------------------------------------------------------------------------- upper bound


@dataclass(frozen=True)
class RelaxationBound:
    """Outcome of :func:`relaxation_upper_bound`.

    Attributes
    ----------
    upper : float
        Proven upper bound on the polar.
    lower : float
        Best value ``|Gᵀ(X u)_+|`` attained at a point rounded from the relaxations (a lower bound).
    maximiser : (numpy.ndarray, float)
        The ``(u, s)`` attaining ``lower``.
    nodes : int
        Relaxations solved (2 at the root: one per sign).
    solver_time, wall_time : float
    """

    upper: float
    lower: float
    maximiser: tuple
    nodes: int
    solver_time: float
    wall_time: float


def _node_relaxation(X: np.ndarray, g: np.ndarray, fixed: dict[int, int], backends: list,
                     scale: float) -> tuple[float, np.ndarray | None, list[np.ndarray], float]:
    """Relaxation of ``max_{‖u‖≤1, σ_i x_iᵀu ≥ 0 (i ∈ fixed)} gᵀ(X u)_+`` (see relaxation_upper_bound).

    Returns ``(bound, excess, points, solve_time)``: ``excess[i]`` is how much the relaxation
    over-counts sample ``i`` at its solution (the branching score), ``points`` unit-vector
    candidates rounded from the solution. ``bound = inf`` when the backend failed.
    """
    N, d = X.shape
    g = g / scale
    F = np.fromiter(fixed, dtype=np.int64, count=len(fixed))
    sig = np.fromiter((fixed[i] for i in F), dtype=float, count=len(F))
    free = np.ones(N, dtype=bool)
    free[F] = False
    M = cp.Variable((d + 1, d + 1), PSD=True)
    u, U = M[1:, 0], M[1:, 1:]
    cons = [M[0, 0] == 1, cp.trace(U) <= 1]
    obj = 0.5 * (X[free].T @ g[free]) @ u
    if F.size:
        XF = sig[:, None] * X[F]
        cons.append(XF @ u >= 0)
        if F.size > 1:  # RLT: (σ_i x_iᵀu)(σ_j x_jᵀu) ≥ 0
            cons.append(XF @ U @ XF.T >= 0)
        act = F[sig > 0]
        if act.size:
            obj = obj + (X[act].T @ g[act]) @ u   # fixed active samples: (x_iᵀu)_+ = x_iᵀu exactly
    # zero rows contribute exactly 0 (and would divide by ‖x_i‖ = 0 in the secant cut below)
    nzr = np.linalg.norm(X, axis=1) > 0
    pos, neg = free & (g > 0) & nzr, free & (g < 0) & nzr
    if pos.any():
        Xp = X[pos]
        q = cp.sum(cp.multiply(Xp @ U, Xp), axis=1)
        t = cp.Variable(int(pos.sum()))
        cons.append(cp.SOC(q + 1, cp.vstack([2 * t, q - 1]), axis=0))  # t² ≤ q
        obj = obj + 0.5 * g[pos] @ t
    if neg.any():
        Xn = X[neg]
        low = cp.Variable(int(neg.sum()))
        cons += [low >= cp.abs(Xn @ u),
                 low >= cp.sum(cp.multiply(Xn @ U, Xn), axis=1) / np.linalg.norm(Xn, axis=1)]
        obj = obj - 0.5 * (-g[neg]) @ low
    prob = cp.Problem(cp.Maximize(obj), cons)
    try:
        rep = solve_cvxpy(prob, backends)
    except MulticonvexError as exc:
        logger.info("relaxation node failed: %s", exc)
        return math.inf, None, [], 0.0
    if rep.status != "optimal" or rep.value is None or not np.isfinite(rep.value):
        # an inaccurate solve is not covered by the 1e-7 padding: the node proves nothing
        logger.info("relaxation node ended %s: no bound from it", rep.status)
        return math.inf, None, [], rep.solve_time
    uu, UU = np.asarray(u.value), np.asarray(U.value)
    a, qq = X @ uu, np.einsum("ij,jk,ik->i", X, UU, X)
    excess = np.zeros(N)
    excess[pos] = 0.5 * g[pos] * (a[pos] + np.sqrt(np.maximum(qq[pos], 0))) - g[pos] * np.maximum(a[pos], 0)
    lown = np.maximum(np.abs(a[neg]), qq[neg] / np.linalg.norm(X[neg], axis=1))
    excess[neg] = 0.5 * g[neg] * (a[neg] + lown) - g[neg] * np.maximum(a[neg], 0)
    _, vecs = np.linalg.eigh(UU)
    points = [p / np.linalg.norm(p) for p in (uu, vecs[:, -1], -vecs[:, -1]) if np.linalg.norm(p) > 1e-9]
    bound = (max(float(rep.value), 0.0) + 1e-7) * scale   # padded by the solver tolerance
    return bound, excess, points, rep.solve_time


def relaxation_upper_bound(X: Any, G: Any, *, solver: str = "clarabel", time_limit: float = 0.0,
                           lower: float = -math.inf, rtol: float = 1e-3) -> RelaxationBound:
    """A proven upper bound on ``Ω°(G) = sup_{‖u‖≤1} |Gᵀ(X u)_+|``: an SDP relaxation per sign,
    optionally tightened by branch and bound.

    Derivation (root). With ``(t)_+ = ½(t + |t|)`` and ``g = s·G``,
    ``s·Gᵀ(X u)_+ = ½ gᵀX u + ½ Σ_{g_i>0} g_i |x_iᵀu| − ½ Σ_{g_i<0} |g_i| |x_iᵀu|``.
    Lift ``U ≈ u uᵀ`` with ``M = [[1, uᵀ], [u, U]] ⪰ 0`` and ``tr U ≤ 1`` (so ``‖u‖ ≤ 1``), and
    write ``q_i = x_iᵀ U x_i`` (``= (x_iᵀu)²`` when ``U = u uᵀ``). Bound the terms to be maximised,
    ``|x_iᵀu| ≤ t_i`` with ``t_i ≤ √q_i`` (concave: a rotated second-order cone), and the terms to
    be minimised from below by ``l_i ≥ |x_iᵀu|``, ``l_i ≥ q_i/‖x_i‖`` (valid as ``|x_iᵀu| ≤ ‖x_i‖``
    so ``|a| ≥ a²/‖x_i‖``; ``max(|a|, q/R)`` is the convex envelope of ``|a|`` given ``(a, q)``, and
    this secant cut the bound on diabetes' linear-model residual from 3.2× to 2.0× the best lower
    bound). Every unit ``u`` with ``U = u uᵀ`` is feasible with the same objective, so the
    maximum of this convex program is ≥ ``max_{‖u‖≤1} s·Gᵀ(X u)_+``. Size: one (d+1)×(d+1) PSD
    block and N small cones (diabetes, N=442, d=11: ~0.15 s per sign with Clarabel). The full
    Shor lift of ``z = (X u)_+`` (``z ≥ 0, z ≥ X u, z∘(z − X u) = 0``, a (1+d+N)² PSD matrix, even
    with ``Z ≥ 0``) gave the same value as this relaxation without the secant, to 1e-6, on three
    small cases, at 10–300× the time.

    Branch and bound (``time_limit > 0``): best-first over the node with the largest bound; a node
    is split on the free sample its relaxation over-counts most, into the closed cones
    ``x_iᵀu ≥ 0`` and ``x_iᵀu ≤ 0`` (together the whole ball). In a child the sample's term is
    exact (linear or zero), the cone constraints join the relaxation with their RLT products
    ``(σ_i x_iᵀu)(σ_j x_jᵀu) ≥ 0``. The bound is the largest bound among open nodes (nodes whose
    bound is below the best value found are closed); it only decreases with time. On 16 random
    small cases (N ≤ 30, d ≤ 4) the root was 1.00–1.61× the exact polar and 0.5 s of branch and
    bound (2–40 nodes) closed every gap but one (1.06×). Measured on diabetes (442×11 with bias,
    2-core machine under load; lower bounds from 2000–20000 sampled patterns and local search):
    for ``G = y`` the root is tight (318.77 both); for the linear-model residual the root is 66.9
    against 33.7 (2.0×), 49.2 after 90 s (~280 nodes, 1.5×); for the residual of a 100-pattern
    convex fit at λ = 1 the root is 42.4 against 9.60 (4.4×), 36.8 after 60 s (322 nodes, 3.8×).
    So in d ≈ 10 the interval is valid but wide; it tightens with time, slowly.

    Every node value is padded by 1e-7 of the trivial bound ``½‖XᵀG‖ + ½ Σ|G_i|‖x_i‖`` to cover
    the solver's tolerance (tight for the interior-point backends; a solve that ends
    ``optimal_inaccurate`` counts as failed); a node whose solve fails keeps its parent's bound
    and is not split.

    Parameters
    ----------
    X : array (N, d)
    G : array (N,)
    solver : str
        A registry backend that solves SDPs (``clarabel``, ``scs``, ``mosek``); another name falls
        back to the licence-free SDP backends.
    time_limit : float
        Seconds of branch and bound after the root (0: root only).
    lower : float
        A known lower bound on the polar (e.g. from the pattern programs): prunes nodes.
    rtol : float
        Stop when ``upper ≤ (1 + rtol)·lower``.

    Returns
    -------
    RelaxationBound

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X, G = np.c_[rng.standard_normal((30, 2)), np.ones(30)], rng.standard_normal(30)
    >>> rb = relaxation_upper_bound(X, G)
    >>> bool(rb.lower <= relu_polar(X, G).value <= rb.upper)
    True
    """
    start = time.perf_counter()
    X, G = _check_XG(X, G, "relaxation_upper_bound")
    d = X.shape[1]
    trivial = float(0.5 * np.linalg.norm(X.T @ G) + 0.5 * np.abs(G) @ np.linalg.norm(X, axis=1))
    if trivial == 0:
        return RelaxationBound(0.0, 0.0, (np.eye(1, d)[0], 1.0), 0, 0.0, time.perf_counter() - start)
    backends = resolve(solver if get_backend(solver).can_solve("SDP") else "auto", "SDP")
    best_val, best = -math.inf, (np.eye(1, d)[0], 1.0)
    spent, nodes, counter = 0.0, 0, 0
    heap: list = []

    def visit(s: float, fixed: dict, parent_bound: float, parent_excess):
        nonlocal best_val, best, spent, nodes, counter
        bound, excess, points, t = _node_relaxation(X, s * G, fixed, backends, trivial)
        spent += t
        nodes += 1
        for p in points:
            v = float(s * (np.maximum(X @ p, 0) @ G))
            if v > best_val:
                best_val, best = v, (p, s)
        if not np.isfinite(bound):
            bound, excess = parent_bound, None
        bound = min(bound, parent_bound)
        counter += 1
        heapq.heappush(heap, (-bound, counter, s, fixed, excess))

    for s in (1.0, -1.0):
        visit(s, {}, math.inf, None)

    def floor() -> float:
        return max(best_val, lower)

    while heap and time_limit > 0 and time.perf_counter() - start < time_limit:
        neg_bound, _, s, fixed, excess = heap[0]
        if -neg_bound <= floor() * (1 + rtol) or excess is None:
            break
        heapq.heappop(heap)
        score = excess.copy()
        score[list(fixed)] = -math.inf
        i = int(np.argmax(score))
        if not np.isfinite(score[i]):
            heapq.heappush(heap, (neg_bound, _, s, fixed, None))
            break
        for sign in (1, -1):
            visit(s, {**fixed, i: sign}, -neg_bound, excess)
    upper = max(-heap[0][0] if heap else -math.inf, best_val, 0.0)
    return RelaxationBound(upper=float(upper), lower=float(max(best_val, 0.0)), maximiser=best, nodes=nodes,
                           solver_time=float(spent), wall_time=time.perf_counter() - start)


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
) -> PolarResult:
    """The polar ``Ω°(G) = sup_{‖u‖≤1} |Gᵀ(X u)_+|`` of two-layer ReLU units (scalar output).

    For each pattern ``D`` and sign ``s`` the program ``max s·Gᵀ D X u s.t. (2D−I) X u ≥ 0,
    ‖u‖ ≤ 1`` is solved — unless it can be settled without a solve: its value is at most
    ``‖Xᵀ D G‖`` (attained when ``s·XᵀDG/‖XᵀDG‖`` lies in the cone: solved in closed form), and
    patterns whose bound cannot beat the ``n_maximisers``-th best value found so far are pruned
    (processed best bound first, in batches through the executor). Pruning keeps the result exact.

    Parameters
    ----------
    X : array (N, d)
        Data (a bias is a constant column the caller adds).
    G : array (N,)
        ``−∇`` of the loss at the network output (the residual ``y − ŷ`` for ½‖y − ŷ‖²).
    patterns : "exact", int, or bool array (P, N)
        ``"exact"``: every pattern (:func:`~multiconvex.globalopt.patterns.enumerate_patterns`;
        raises ``PatternLimitError`` beyond ``max_patterns``; not exact when the enumeration failed
        its sampling cross-check on near-degenerate data). An int: that many sampled
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
        How each pattern's program is solved. ``"native"``: Clarabel's matrix interface (what
        ``"auto"`` picks for ``solver="clarabel"``); ``"cvxpy"``: one DPP problem per chunk of
        patterns, re-solved with new parameter values, through the registry (any SOCP backend;
        ``"auto"`` for other solvers); ``"nnls"``: no conic solver — the maximum over the cone
        ``K`` and the unit ball is ``‖Π_K(c)‖``, and the projection is a non-negative least-squares
        problem solved exactly by an active-set method. Measured per program (2-core machine under
        load, chunk of 200 patterns): N=40, d=3: native 0.7–0.8 ms, DPP 3.8–4.1 ms, nnls 0.09 ms;
        N=442, d=11: native 4.8–7.2 ms, DPP 6.9–8.5 ms, nnls 0.65 ms. Optimal values agree to the
        SOCP tolerance (≤ 1.3e-7). A whole exact polar at N=40, d=4 (19840 patterns, 22048
        programs): native 8.7 s, nnls 2.4 s.

    Returns
    -------
    PolarResult

    Raises
    ------
    InvalidInputError
        Bad shapes, NaN/inf, unknown options (before any solve).
    PatternLimitError
        ``patterns="exact"`` with more than ``max_patterns`` patterns.

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
        kind = "native" if backend.name == "clarabel" else "cvxpy"
    if kind == "native" and backend.name != "clarabel":
        raise InvalidInputError(f"{_WHERE}: per_pattern='native' needs solver='clarabel', got {solver!r}.")

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
    # bounds and closed forms for every (pattern, sign)
    Cm = (pats * G) @ X                                     # P × d, row p = Xᵀ D_p G
    bound = np.linalg.norm(Cm, axis=1)
    signed = np.where(pats, 1.0, -1.0)
    dirs = Cm / np.maximum(bound, 1e-300)[:, None]
    tol = 1e-12 * max(np.linalg.norm(X, axis=1).max(), 1e-300)
    cand_p, cand_s, cand_b = [], [], []
    n_closed = 0
    for s in (1.0, -1.0):
        inside = (signed * ((s * dirs) @ X.T) >= -tol).all(axis=1) & (bound > 0)
        for p in np.flatnonzero(inside):
            u = s * dirs[p]
            found.append((float(s * (np.maximum(X @ u, 0) @ G)), u, s))
        n_closed += int(inside.sum())
        rest = np.flatnonzero(~inside & (bound > 0))
        cand_p.append(rest)
        cand_s.append(np.full(rest.size, s))
        cand_b.append(bound[rest])
    cand_p, cand_s, cand_b = map(np.concatenate, (cand_p, cand_s, cand_b))
    order = np.argsort(-cand_b, kind="stable")
    cand_p, cand_s, cand_b = cand_p[order], cand_s[order], cand_b[order]

    own = isinstance(executor, str) or executor is None
    ex = make_executor(executor, n_workers) if own else make_executor(executor)
    workers = max(1, int(getattr(ex, "workers", 1) or 1))
    chunk = 16 if workers > 1 else 64
    solver_time, n_solved, failed_bound = 0.0, 0, -math.inf
    failures: list[str] = []
    pos = 0
    try:
        while pos < len(cand_p):
            thr = _threshold(found, n_maximisers, d)
            if cand_b[pos] <= thr:
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
    if failures:
        exact = False
        notes.append(f"{len(failures)} programs failed ({failures[0]}); their bound ‖XᵀDG‖ is used")
    notes.insert(0, f"{n_solved} pattern programs solved ({kind}), {n_closed} in closed form, "
                    f"{n_pruned} pruned by ‖XᵀDG‖")
    if exact:
        upper = value
    elif complete:  # every pattern accounted for; a failed program is bounded by its ‖XᵀDG‖
        upper = max(value, failed_bound)
    elif upper_bound is False:
        upper = math.inf
    else:
        try:
            rb = relaxation_upper_bound(X, G, solver=solver, lower=value,
                                        time_limit=float(bound_time_limit) if upper_bound == "bnb" else 0.0)
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
        solver_time=solver_time, wall_time=time.perf_counter() - start,
    )


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
