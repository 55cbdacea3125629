"""Many small dense QPs with one interval per row, solved together in torch on the data's device.

The same batch as :func:`multiconvex.solvers.batched_qp.solve_interval_qps` (the unit blocks of a
ReLU layer): ``min ½xᵀP_b x + q_bᵀx  s.t.  lower_b ≤ C x ≤ upper_b`` with dense positive definite
``P_b`` (c × c) and one shared ``C`` (N × c). Every step is a batched tensor operation, so the batch
runs on a GPU where the block matrices already are:

1. **Active-set polish** (a primal–dual active-set step): guess the tight rows, solve the
   equality-constrained KKT system of every QP at once through its dual (``G = C_A P⁻¹ C_Aᵀ``, padded
   to the largest active set), re-guess from the signs and violations, a few rounds. From the caller's
   ``active`` guess (or the rows tight at ``warm``) this alone usually finishes a sweep near convergence.
2. **ADMM** (OSQP's iteration) for the QPs the polish did not certify: one Cholesky of
   ``P_b + σI + ρ_b CᵀC`` per QP and ρ, two ``(B, N) × (N, c)`` products per iteration; every
   ``check_every`` iterations the residuals adapt ρ, and a polish from ADMM's active set is tried.
3. **A certified lower bound** per QP from any dual vector ``y`` (:func:`dual_bound`):
   ``g(y) = min_x ½xᵀPx + (q + Cᵀy)ᵀx − Σ_i (u_i y_i⁺ − l_i y_i⁻) ≤ optimum``, ``y`` first projected on
   the signs the bounds allow. The inner minimum is bounded from below at a computed point ``v`` by
   ``φ(v) − ½‖Pv + w‖²/λ_min(P)`` with a rigorous lower estimate of ``λ_min``, and a rounding
   allowance ``γ_n·Σ|terms|`` is subtracted, so the bound holds for the floating-point data as given.

A QP is ``"optimal"`` when its returned ``x`` is feasible (to ``primal_tol``) and
``objective − lower_bound ≤ eps_rel · max(|objective|, |lower_bound|, objective_scale) + eps_abs``: the gap is then a
proof, as DAQP's exact active set is. Otherwise ``"optimal_inaccurate"`` (feasible, gap ≤
``eps_inaccurate`` relative), or ``"iteration_limit"`` / ``"time_limit"`` without a solution.

Examples
--------
>>> import numpy as np
>>> P = np.stack([np.eye(2), 2 * np.eye(2)])
>>> q = np.array([[-1.0, -1.0], [2.0, 0.0]])
>>> C = np.array([[1.0, 1.0]])
>>> out = solve_interval_qps_torch(P, q, C, np.array([[-np.inf], [0.0]]), np.array([[1.0], [np.inf]]))
>>> out.status, np.round(out.x, 9).tolist(), bool(np.all(out.lower_bound <= out.objective))
(['optimal', 'optimal'], [[0.5, 0.5], [-0.5, 0.5]], True)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from multiconvex.errors import InvalidInputError

from . import status as st
from .batched_qp import BatchOutcome

#: Settings (``options=``) and their defaults.
DEFAULTS: dict[str, Any] = {
    "eps_rel": 1e-9,  # certified relative gap for "optimal"
    "eps_abs": 0.0,  # absolute part of that test (the codebase's gaps are relative)
    "eps_inaccurate": 1e-5,  # relative gap for "optimal_inaccurate" when a limit ends the run
    "primal_tol": 1e-9,  # row violation allowed, relative to max(1, |bound|)
    "max_iter": 4000,  # ADMM iterations
    "check_every": 25,  # ADMM iterations between residual checks, ρ updates and polishes
    "alpha": 1.6,  # ADMM relaxation
    "sigma": 1e-8,  # ADMM proximal weight, relative to trace(P)/c
    "polish_rounds": 6,  # primal–dual active-set rounds per polish
    "max_active": None,  # largest active set the polish pads to (default c: a vertex's)
}


@dataclass
class TorchBatchOutcome(BatchOutcome):
    """:class:`~multiconvex.solvers.batched_qp.BatchOutcome` plus, per QP, the objective at ``x`` and a
    certified lower bound on the optimum (``+inf`` for a QP proven infeasible, ``-inf`` where none was found).

    ``solve_time`` is the batch's wall time shared equally (the QPs are solved together).
    """

    objective: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (B,); nan without a solution
    lower_bound: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (B,)


def _gamma(n: int, dtype: torch.dtype) -> float:
    """``γ_n = n·u/(1 − n·u)``: the relative error bound of an ``n``-term dot product or sum."""
    u = torch.finfo(dtype).eps / 2
    return n * u / (1 - n * u)


def _mv(A: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``A_b x_b`` for every ``b``: (B, m, n), (B, n) -> (B, m)."""
    return torch.bmm(A, x[:, :, None])[:, :, 0]


def min_eigenvalue_bound(P: torch.Tensor) -> torch.Tensor:
    """A lower estimate of ``λ_min(P_b)`` for each ``b``, (B,): the computed eigenvalue minus the eigensolver's
    backward error ``2c·ε·‖P‖_F`` (a backward-stable symmetric solver's perturbation bound)."""
    lam = torch.linalg.eigvalsh(P)[:, 0]
    c = P.shape[-1]
    return lam - 2 * c * torch.finfo(P.dtype).eps * torch.linalg.matrix_norm(P)


def dual_bound(P: torch.Tensor, q: torch.Tensor, C: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor,
               y: torch.Tensor, chol: torch.Tensor | None = None, lam_min: torch.Tensor | None = None) -> torch.Tensor:
    """A lower bound on each QP's optimum from any dual vector ``y`` (B, N), valid in floating point.

    ``y`` is projected on the signs the bounds allow (``y_i > 0`` only where ``upper_i`` is finite,
    ``< 0`` only where ``lower_i`` is). With ``w = q + Cᵀy`` and ``v ≈ −P⁻¹w`` (Cholesky), the dual value
    ``−½wᵀP⁻¹w − σ(y)`` is bounded below by ``φ(v) − ½‖Pv + w‖²/λ_min − σ(y)``, ``φ(v) = ½vᵀPv + wᵀv``, minus
    a rounding allowance. ``-inf`` where ``λ_min`` cannot be certified positive and the residual is not 0.

    Parameters
    ----------
    P, q, C, lower, upper
        The batch, as :func:`solve_interval_qps_torch` takes it (tensors of one dtype and device).
    y : (B, N)
        Any multipliers (positive at the upper side).
    chol, lam_min : optional
        ``cholesky(P)`` and :func:`min_eigenvalue_bound` when the caller has them.
    """
    dt = P.dtype
    N, c = C.shape
    y = torch.where(torch.isfinite(upper), y.clamp_min(0), 0) + torch.where(torch.isfinite(lower), y.clamp_max(0), 0)
    L = torch.linalg.cholesky(P) if chol is None else chol
    lam = min_eigenvalue_bound(P) if lam_min is None else lam_min
    w = q + y @ C
    v = -torch.cholesky_solve(w[:, :, None], L)[:, :, 0]
    v = v - torch.cholesky_solve((_mv(P, v) + w)[:, :, None], L)[:, :, 0]  # one refinement
    Pv = _mv(P, v)
    Cv = v @ C.T
    yp, ym = y.clamp_min(0), (-y).clamp_min(0)
    sup_terms = torch.where(yp > 0, upper, 0) * yp - torch.where(ym > 0, lower, 0) * ym  # σ(y), inf·0 avoided
    phi = 0.5 * (v * Pv).sum(1) + (q * v).sum(1) + (y * Cv).sum(1) - sup_terms.sum(1)
    gam = _gamma(N + c + 2, dt)
    absP, absC = P.abs(), C.abs()
    av = v.abs()
    allowance = gam * (0.5 * (av * _mv(absP, av)).sum(1) + (q.abs() * av).sum(1)
                       + (y.abs() * (av @ absC.T)).sum(1) + sup_terms.abs().sum(1))
    resid = torch.linalg.vector_norm(Pv + w, dim=1)
    resid = resid + gam * torch.linalg.vector_norm(_mv(absP, av) + q.abs() + y.abs() @ absC,
                                                   dim=1)
    penalty = torch.where(resid == 0, torch.zeros_like(resid),
                          torch.where(lam > 0, 0.5 * resid**2 / lam.clamp_min(torch.finfo(dt).tiny),
                                      torch.full_like(resid, math.inf)))
    return phi - penalty - allowance


def _as_tensor(a: Any, name: str, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    t = torch.as_tensor(a, dtype=dtype, device=device) if not isinstance(a, torch.Tensor) else a.to(device, dtype)
    if torch.isnan(t).any():
        raise InvalidInputError(f"solve_interval_qps_torch: `{name}` contains NaN; pass finite data "
                                f"(±inf only in `lower`/`upper`, for a missing side).")
    if name in ("P", "q", "C", "warm") and not torch.isfinite(t).all():
        raise InvalidInputError(f"solve_interval_qps_torch: `{name}` contains ±inf; only `lower`/`upper` may.")
    return t


class _Batch:
    """The batch's data on the device, the Cholesky factors of ``P`` and the best answer found so far."""

    def __init__(self, P, q, C, lower, upper, feasible_rows: torch.Tensor, opts: dict, scale: torch.Tensor,
                 deadline: float):
        self.P, self.q, self.C, self.lower, self.upper, self.opts = P, q, C, lower, upper, opts
        self.scale, self.deadline = scale, deadline
        B = q.shape[0]
        self.L, info = torch.linalg.cholesky_ex(P)
        self.pd = (info == 0) & feasible_rows
        self.lam = min_eigenvalue_bound(P)
        self.x = torch.full_like(q, math.nan)
        self.obj = torch.full((B,), math.nan, dtype=q.dtype, device=q.device)
        self.lb = torch.full((B,), -math.inf, dtype=q.dtype, device=q.device)
        self.lb[~feasible_rows] = math.inf

    def violation_ok(self, idx: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        z = x @ self.C.T
        lo, up = self.lower[idx], self.upper[idx]
        tol = self.opts["primal_tol"]
        ok_lo = z >= lo - tol * lo.abs().clamp_min(1.0).nan_to_num(posinf=1.0)
        ok_up = z <= up + tol * up.abs().clamp_min(1.0).nan_to_num(posinf=1.0)
        return (ok_lo & ok_up).all(dim=1)

    def offer(self, idx: torch.Tensor, x: torch.Tensor | None, y: torch.Tensor | None) -> None:
        """Keep ``x`` for QPs ``idx`` where it is feasible and better, and the dual bound of ``y`` where higher."""
        if x is not None:
            finite = torch.isfinite(x).all(dim=1)
            x = torch.nan_to_num(x)
            obj = 0.5 * (x * _mv(self.P[idx], x)).sum(1) + (self.q[idx] * x).sum(1)
            take = finite & self.violation_ok(idx, x) & ~(obj >= self.obj[idx])
            self.x[idx[take]], self.obj[idx[take]] = x[take], obj[take]
        if y is not None:
            y = torch.nan_to_num(y)
            lb = dual_bound(self.P[idx], self.q[idx], self.C, self.lower[idx], self.upper[idx], y, self.L[idx],
                            self.lam[idx])
            better = lb > self.lb[idx]
            self.lb[idx[better]] = lb[better]

    def gap_ok(self, idx: torch.Tensor, rel: float) -> torch.Tensor:
        obj, lb = self.obj[idx], self.lb[idx]
        scale = torch.maximum(torch.maximum(obj.abs(), lb.abs()), self.scale[idx])
        return torch.isfinite(obj) & (obj - lb <= rel * scale + self.opts["eps_abs"])


def _sides(y: torch.Tensor, z: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor, kappa: torch.Tensor):
    """The active-set rule ``y + κ(z − bound)``: sides (``-1`` lower, ``1`` upper, ``0`` free) and a score
    (how clearly a row is active; ``-inf`` where free) that ranks the rows when there are too many."""
    ind_up, ind_lo = y + kappa * (z - upper), y + kappa * (z - lower)
    up_side = torch.isfinite(upper) & (ind_up > 0)
    lo_side = torch.isfinite(lower) & (ind_lo < 0) & ~up_side
    score = torch.where(up_side, ind_up, torch.where(lo_side, -ind_lo, -math.inf))
    return up_side.to(torch.int8) - lo_side.to(torch.int8), score


def _polish(batch: _Batch, idx: torch.Tensor, side: torch.Tensor, score: torch.Tensor, kappa: torch.Tensor,
            rounds: int) -> None:
    """Primal–dual active-set rounds for QPs ``idx`` from the active sides ``side`` (B, N) (``-1`` lower,
    ``1`` upper, ``0`` free; at most ``max_active`` rows, the highest ``score`` first): the equality-constrained
    KKT system of every QP through its dual ``G y_A = −C_A P⁻¹ q − b_A`` (padded to the largest active set),
    then the next sides by :func:`_sides`. Each round's point and multipliers are offered to ``batch``."""
    C, c = batch.C, batch.C.shape[1]
    cap = batch.opts["max_active"] or c
    for _ in range(rounds):
        if idx.numel() == 0 or time.perf_counter() > batch.deadline:
            return
        K = int(min(cap, max(1, int((side != 0).sum(1).max()))))
        top = torch.topk(torch.where(side != 0, score.nan_to_num(posinf=1e300), -math.inf), K, dim=1)
        order = top.indices
        s = torch.where(torch.isfinite(top.values), torch.gather(side, 1, order), 0)
        valid = s != 0
        lo, up = batch.lower[idx], batch.upper[idx]
        b = torch.where(s > 0, torch.gather(up, 1, order), torch.gather(lo, 1, order))
        b = torch.where(valid, b, 0)
        CA = C[order] * valid[:, :, None]  # (B, K, c)
        L = batch.L[idx]
        M = torch.linalg.solve_triangular(L, CA.transpose(1, 2), upper=False)  # (B, c, K)
        G = M.transpose(1, 2) @ M
        diag = torch.diagonal(G, dim1=1, dim2=2)
        reg = 1e-13 * diag.amax(dim=1, keepdim=True).clamp_min(torch.finfo(G.dtype).tiny)
        G = G + torch.diag_embed(torch.where(valid, reg, 1.0))
        Lg, info = torch.linalg.cholesky_ex(G)
        sq = torch.linalg.solve_triangular(L, batch.q[idx][:, :, None], upper=False)  # L⁻¹q
        yA = torch.zeros_like(b)
        x = -torch.cholesky_solve(batch.q[idx][:, :, None], L)[:, :, 0]
        for _ in range(3):  # G δ = C_A x − b_A, y_A += δ, x −= P⁻¹C_Aᵀδ: refinement against the true rows
            e = torch.where(valid, _mv(CA, x) - b, 0)
            d = torch.cholesky_solve(e[:, :, None], Lg)[:, :, 0]
            yA = yA + d
            x = -torch.linalg.solve_triangular(L.transpose(1, 2), sq + M @ yA[:, :, None], upper=True)[:, :, 0]
        ok = info == 0
        y = torch.zeros_like(lo).scatter_(1, order, torch.where(valid, yA, 0))
        batch.offer(idx[ok], x[ok], y[ok])
        new, score = _sides(y, x @ C.T, lo, up, kappa)
        done = batch.gap_ok(idx, batch.opts["eps_rel"]) | ~ok | (new == side).all(dim=1)
        idx, side, score, kappa = idx[~done], new[~done], score[~done], kappa[~done]


def solve_interval_qps_torch(P: Any, q: Any, C: Any, lower: Any, upper: Any, *, warm: Any = None,
                             active: Any = None, options: dict[str, Any] | None = None,
                             device: str | torch.device | None = None, dtype: torch.dtype = torch.float64,
                             time_limit: float | None = None, deadline: float | None = None,
                             objective_scale: Any = 0.0) -> TorchBatchOutcome:
    """``min ½xᵀP_b x + q_bᵀx  s.t.  lower_b ≤ C x ≤ upper_b`` for every ``b``, batched in torch.

    Parameters
    ----------
    P : (B, n, n)
        Symmetric positive definite (used as ``½(P + Pᵀ)``); a QP whose ``P`` has no Cholesky factor is
        ``"numerical_error"`` (DAQP's path regularises such QPs).
    q : (B, n)
    C : (m, n)
        The rows every QP shares.
    lower, upper : (B, m)
        Intervals; ``∓inf`` for a missing side. A crossed interval (``lower > upper``), an empty one
        (``lower = +inf`` or ``upper = −inf``) or a zero row outside its interval makes that QP ``"infeasible"``.
    warm : (B, n), optional
        Primal starts (ADMM's start; its tight rows are the first active-set guess).
    active : int (B, m), optional
        An active-set guess: ``-1`` lower, ``1`` upper, ``0`` free (as :func:`solve_interval_qps` takes it).
    options : dict, optional
        See :data:`DEFAULTS`.
    device : optional
        Where to solve; default the device of ``P`` (CPU for numpy input). Arrays or tensors of any float dtype.
    dtype : torch.dtype
        Only ``torch.float64``: in float32 the rounding allowance of the bound (``~N·6e-8`` relative) makes
        certified gaps meaningless.
    time_limit : float, optional
        Seconds; checked between ADMM checks (every ``check_every`` iterations) and polish rounds.
    deadline : float, optional
        ``time.time()`` seconds (as :attr:`multiconvex.solvers.dispatch.Plan.deadline`); the earlier of it and
        ``time_limit`` holds.
    objective_scale : float or (B,), optional
        A magnitude the gap is relative to besides the objective and the bound, e.g. the block's value
        when the QP's objective leaves out a constant: ``gap ≤ eps_rel·max(|obj|, |bound|, scale) + eps_abs``.

    Returns
    -------
    TorchBatchOutcome
        ``status``, ``x`` (nan rows without a solution), ``solve_time``, ``iterations``, ``objective``,
        ``lower_bound`` per QP, as numpy arrays.
    """
    t0 = time.perf_counter()
    stop = math.inf if time_limit is None else t0 + float(time_limit)
    if deadline is not None:
        stop = min(stop, t0 + (float(deadline) - time.time()))
    if dtype != torch.float64:
        raise InvalidInputError(f"solve_interval_qps_torch: dtype={dtype} is not supported; use torch.float64 "
                                f"(float32 inputs are converted exactly). A float32 bound's rounding allowance "
                                f"would exceed the gaps it certifies.")
    unknown = set(options or {}) - set(DEFAULTS)
    if unknown:
        raise InvalidInputError(f"solve_interval_qps_torch: unknown options {sorted(unknown)}; "
                                f"known: {sorted(DEFAULTS)}.")
    opts = {**DEFAULTS, **(options or {})}
    if isinstance(C, list):
        raise InvalidInputError("solve_interval_qps_torch: `C` must be one (m, n) matrix shared by every QP; "
                                "per-QP matrices go to solve_interval_qps (DAQP).")
    dev = torch.device(device) if device is not None else (P.device if isinstance(P, torch.Tensor)
                                                            else torch.device("cpu"))
    P, q, C = (_as_tensor(a, n, dtype, dev) for a, n in ((P, "P"), (q, "q"), (C, "C")))
    lower, upper = _as_tensor(lower, "lower", dtype, dev), _as_tensor(upper, "upper", dtype, dev)
    B, n = q.shape
    N = C.shape[0]
    if P.shape != (B, n, n) or C.shape != (N, n) or lower.shape != (B, N) or upper.shape != (B, N):
        raise InvalidInputError(f"solve_interval_qps_torch: shapes P {tuple(P.shape)}, q {tuple(q.shape)}, "
                                f"C {tuple(C.shape)}, lower {tuple(lower.shape)}, upper {tuple(upper.shape)}; "
                                f"expected (B, n, n), (B, n), (m, n), (B, m), (B, m).")
    P = 0.5 * (P + P.transpose(1, 2))
    zero_row = (C == 0).all(dim=1)
    empty = (lower > upper) | (lower == math.inf) | (upper == -math.inf) | (zero_row & ((lower > 0) | (upper < 0)))
    feasible_rows = ~empty.any(dim=1)
    scale = torch.as_tensor(objective_scale, dtype=dtype, device=dev).abs().expand(B).clone()
    batch = _Batch(P, q, C, lower, upper, feasible_rows, opts, scale, stop)
    iters = torch.zeros(B, dtype=torch.long, device=dev)
    idx = torch.nonzero(batch.pd).flatten()
    # rows scaled to unit norm for ADMM and the active-set rule; the bound uses the data as given
    d = torch.where(zero_row, 1.0, 1.0 / torch.linalg.vector_norm(C, dim=1))
    Cs = C * d[:, None]
    CtC = Cs.T @ Cs
    trP = torch.diagonal(P, dim1=1, dim2=2).sum(1)
    rho = (trP / torch.trace(CtC).clamp_min(torch.finfo(dtype).tiny)).clamp_min(1e-12)  # (B,)
    # a first polish from the caller's guess, the rows tight at ``warm``, or those violated by −P⁻¹q
    x_start = (_as_tensor(warm, "warm", dtype, dev) if warm is not None
               else -torch.cholesky_solve(q[:, :, None], batch.L)[:, :, 0].nan_to_num())
    if active is not None:
        side = torch.as_tensor(active, device=dev).to(torch.int8).sign()
        score = torch.where(side != 0, 0.0, -math.inf).to(dtype)
    else:  # ranked by how far −P⁻¹q violates a row (a warm start's tight rows all rank the same)
        z = x_start @ C.T
        eps = (1e-9 if warm is not None else 0.0) * (1 + z.abs())
        over, under = z - upper, lower - z
        side = (over >= -eps).to(torch.int8) - ((under >= -eps) & (over < -eps)).to(torch.int8)
        score = torch.where(side > 0, over, torch.where(side < 0, under, -math.inf))
    batch.offer(idx, x_start[idx], None)
    _polish(batch, idx, side[idx], score[idx], rho[idx, None] * d**2, opts["polish_rounds"])
    idx = idx[~batch.gap_ok(idx, opts["eps_rel"])]
    # ADMM for the rest (scaled rows: z̃ = d·Cx, bounds d·l, d·u)
    ls, us = lower[idx] * d, upper[idx] * d
    X = x_start[idx].clone()
    Z = torch.minimum(torch.maximum(X @ Cs.T, ls), us)
    Y = torch.zeros_like(Z)
    sig = opts["sigma"] * trP / n
    eye = torch.eye(n, dtype=dtype, device=dev)

    def factor(ix, r):  # (P + σI + ρCᵀC)⁻¹ explicitly: a batched product per iteration is faster than two solves
        Lk = torch.linalg.cholesky_ex(P[ix] + sig[ix, None, None] * eye + r[:, None, None] * CtC)[0]
        return torch.cholesky_solve(eye.expand(ix.numel(), n, n), Lk)

    rb = rho[idx]
    K = factor(idx, rb)
    a, k = opts["alpha"], 0
    last = torch.zeros_like(lower, dtype=torch.int8)
    limit = st.ITERATION_LIMIT
    while idx.numel() and k < opts["max_iter"]:
        if time.perf_counter() > stop:
            limit = st.TIME_LIMIT
            break
        Pi, qi = P[idx], q[idx]
        for _ in range(opts["check_every"]):
            rhs = sig[idx, None] * X - qi + (rb[:, None] * Z - Y) @ Cs
            Xt = torch.bmm(rhs[:, None, :], K)[:, 0, :]
            Zt = Xt @ Cs.T
            X = a * Xt + (1 - a) * X
            Zr = a * Zt + (1 - a) * Z
            Zn = torch.minimum(torch.maximum(Zr + Y / rb[:, None], ls), us)
            Y = Y + rb[:, None] * (Zr - Zn)
            Z = Zn
        k += opts["check_every"]
        iters[idx] += opts["check_every"]
        y = Y * d  # multipliers of the unscaled rows
        if (k // opts["check_every"]) % 4 == 0 or k >= opts["max_iter"]:  # ADMM's own bound, the polish's fallback
            batch.offer(idx, X, y)
        CX, CtY = X @ Cs.T, Y @ Cs
        PX = torch.bmm(Pi, X[:, :, None])[:, :, 0]
        rp = (CX - Z).abs().amax(1) / torch.maximum(CX.abs().amax(1), Z.abs().amax(1)).clamp_min(1e-30)
        rd = (PX + qi + CtY).abs().amax(1) / torch.maximum(torch.maximum(PX.abs().amax(1), CtY.abs().amax(1)),
                                                           qi.abs().amax(1)).clamp_min(1e-30)
        kappa = rb[:, None] * d**2
        side, score = _sides(y, Z / d, lower[idx], upper[idx], kappa)  # ADMM's z: inside its bounds
        fresh = ~(side == last[idx]).all(dim=1)  # a polish from an active set already tried would repeat itself
        last[idx] = side
        _polish(batch, idx[fresh], side[fresh], score[fresh], kappa[fresh], 2)
        live = ~batch.gap_ok(idx, opts["eps_rel"])
        idx, X, Z, Y, ls, us, rb, rp, rd = (t[live] for t in (idx, X, Z, Y, ls, us, rb, rp, rd))
        ratio = torch.sqrt(rp.clamp_min(1e-30) / rd.clamp_min(1e-30)).clamp(1e-3, 1e3)
        change = (ratio > 2) | (ratio < 0.5)
        if idx.numel() and bool(change.any()):
            rb = torch.where(change, rb * ratio, rb)
        if idx.numel():
            K = factor(idx, rb)
    status = _statuses(batch, feasible_rows, limit, opts)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    per = (time.perf_counter() - t0) / max(1, B)
    x = batch.x.cpu().numpy()
    for b, s in enumerate(status):
        if not st.has_solution(s):
            x[b] = np.nan
    return TorchBatchOutcome(status=status, x=x, solve_time=np.full(B, per), iterations=iters.cpu().numpy(),
                             objective=batch.obj.cpu().numpy(), lower_bound=batch.lb.cpu().numpy())


def _statuses(batch: _Batch, feasible_rows: torch.Tensor, limit: str, opts: dict) -> list[str]:
    everyone = torch.arange(batch.q.shape[0], device=batch.q.device)
    exact = batch.gap_ok(everyone, opts["eps_rel"]).cpu().numpy()
    close = batch.gap_ok(everyone, opts["eps_inaccurate"]).cpu().numpy()
    feas, pd = feasible_rows.cpu().numpy(), batch.pd.cpu().numpy()
    out = []
    for b in range(everyone.numel()):
        if not feas[b]:
            out.append(st.INFEASIBLE)
        elif not pd[b]:
            out.append(st.NUMERICAL_ERROR)
        elif exact[b]:
            out.append(st.OPTIMAL)
        elif close[b]:
            out.append(st.OPTIMAL_INACCURATE)
        else:
            out.append(limit)
    return out


__all__ = ["DEFAULTS", "TorchBatchOutcome", "dual_bound", "min_eigenvalue_bound", "solve_interval_qps_torch"]
