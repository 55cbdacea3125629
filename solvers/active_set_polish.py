"""Two convex programs solved exactly by active-set methods, from an interior-point solution or a feasible point.

An interior-point solution is accurate to the backend's tolerance (≈ 1e-8 relative): enough for the objective,
not for the *point* (nor the value to 1e-10) when a caller needs more. Both methods guess the active set from
a given point, solve the problem reduced to it exactly, verify the optimality conditions and correct the
guess (a few rounds); they only move a point (or re-value a program), and prove nothing a caller's certificate
relies on. Pure numpy/scipy: no backend.

**Cone-constrained group lasso** (:func:`polish_group_lasso`; the piece program of two-layer ReLU local
descent, :mod:`multiconvex.globalopt.relu_piece`)::

    minimise  F(w) = ½‖y − Σ_j A_j w_j‖² + λ Σ_j ‖w_j‖    subject to  C_j w_j ≥ 0  (every group j)

From a start (an interior-point solution, or any feasible point such as the current units):

1. the **zero groups** (``‖w_j‖`` tiny against the largest group) and, for the others, the **active rows**
   (``c_iᵀw_j`` tiny against ``‖c_i‖‖w_j‖``) are guessed;
2. every non-zero group is written ``w_j = B_j z_j``, ``B_j`` an orthonormal basis of the null space of its
   active rows (so ``‖w_j‖ = ‖z_j‖``), and the then **smooth** reduced objective minimised by Newton steps
   (Hessian ``MᵀM + Σ_j λ/‖z_j‖ (I − ẑ_j ẑ_jᵀ)``, backtracking line search) that stay feasible: a step that
   reaches an inactive row stops there and the row joins the active set; a group whose steps stall at its
   kink while zero is its own minimum (the others fixed) is set to zero;
3. the result is **verified**: every row holds; on each non-zero group the stationarity condition
   ``∇_j F = C_actᵀ μ`` holds (residual ≤ 1e-7 relative) with ``μ ≥ 0``; each zero group satisfies
   ``‖Π_{K_j}(A_jᵀ r)‖ ≤ λ`` (``K_j`` its cone, ``r`` the residual; the projection by non-negative least
   squares). A failed condition moves the row or group to the other side and the method goes on.

Status ``"optimal"`` when every check passed (relative ``tol``), else ``"not verified"`` — the point may still
be better than the start; the caller compares objectives.

**Strongly convex QP under homogeneous rows** (:func:`polish_cone_qp`; the hidden block of the same local
descent): ``min ½‖b − A u‖² + (μ/2)‖u‖²`` s.t. ``C u ≥ 0``. On the active rows' null space the optimum is one
linear solve; it is verified by the rows' feasibility and the multipliers by non-negative least squares
(degenerate active sets included); rows violated join the active set, rows the NNLS residual points away
from leave it.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.standard_normal((30, 3))
>>> y = np.maximum(X @ np.array([1.0, -0.5, 0.2]), 0.0)
>>> D = X @ np.array([1.0, -0.5, 0.2]) >= 0
>>> A = [D[:, None] * X]
>>> C = [np.where(D, 1.0, -1.0)[:, None] * X]
>>> out = polish_group_lasso(A, y, 0.1, C, np.array([[0.9, -0.45, 0.2]]))
>>> out.status, bool(out.objective <= group_lasso_objective(A, y, 0.1, np.array([[0.9, -0.45, 0.2]])))
('optimal', True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import nnls

__all__ = ["PolishResult", "group_lasso_objective", "polish_cone_qp", "polish_group_lasso"]


@dataclass(frozen=True)
class PolishResult:
    """``W`` (r × d) the polished groups, ``objective`` its ``F``, ``status`` ``"optimal"`` or ``"not verified"``,
    ``newton_steps`` spent, ``reason`` what failed to verify (empty when optimal)."""

    W: np.ndarray
    objective: float
    status: str
    newton_steps: int
    reason: str = ""


def group_lasso_objective(A: list[np.ndarray], y: np.ndarray, lam: float, W: np.ndarray) -> float:
    """``F(W) = ½‖y − Σ_j A_j w_j‖² + λ Σ_j ‖w_j‖``."""
    r = y - sum((A[j] @ W[j] for j in range(len(A))), np.zeros_like(y))
    return float(0.5 * r @ r + lam * np.linalg.norm(W, axis=1).sum())


def _null_basis(rows: np.ndarray, d: int) -> np.ndarray:
    """Orthonormal basis (d × k) of ``{w : rows w = 0}``."""
    if rows.shape[0] == 0:
        return np.eye(d)
    _, sv, Vt = np.linalg.svd(rows, full_matrices=True)
    rank = int((sv > 1e-10 * max(float(sv[0]), 1e-300)).sum())
    return Vt[rank:].T


def _newton(M: np.ndarray, y: np.ndarray, lam: float, z: np.ndarray, sizes: list[int], G: np.ndarray,
            max_steps: int) -> tuple[np.ndarray, int, int | None]:
    """Minimise ``½‖y − M z‖² + λ Σ_j ‖z_j‖`` (groups of ``sizes``, all non-zero) from ``z`` by damped Newton,
    keeping ``G z ≥ 0`` (the inactive rows): a step that reaches one stops there and returns its index ``i ≥ 0``;
    a group set to zero (the steps stalled at its kink and zero is its own minimum) returns ``−1 − k``."""
    sizes_a = np.asarray(sizes)
    starts = np.concatenate([[0], np.cumsum(sizes_a)[:-1]])
    owner = np.repeat(np.arange(sizes_a.size), sizes_a)           # the group of each coordinate
    # the (row, column) pairs of the block-diagonal curvature term, and their group
    sq = sizes_a * sizes_a
    pg = np.repeat(np.arange(sizes_a.size), sq)
    t = np.arange(int(sq.sum())) - np.repeat(np.cumsum(sq) - sq, sq)
    pr, pc = starts[pg] + t // sizes_a[pg], starts[pg] + t % sizes_a[pg]
    eye = (pr == pc).astype(float)
    MtM, Mty = M.T @ M, M.T @ y

    def norms(v: np.ndarray) -> np.ndarray:
        return np.sqrt(np.add.reduceat(v * v, starts))

    def value(v: np.ndarray) -> float:
        res = y - M @ v
        return float(0.5 * res @ res + lam * norms(v).sum())

    f = value(z)
    steps = 0
    for steps in range(1, max_steps + 1):  # noqa: B007 - the count is returned
        nz = norms(z)
        u = z / nz[owner]
        grad = MtM @ z - Mty + lam * u
        H = MtM.copy()
        H[pr, pc] += (lam / nz[pg]) * (eye - u[pr] * u[pc])
        try:
            p = -np.linalg.solve(H, grad)
        except np.linalg.LinAlgError:
            p = -np.linalg.lstsq(H, grad, rcond=None)[0]
        slope = float(grad @ p)
        if not slope < 0:
            break
        rate = G @ p
        falling = np.flatnonzero(rate < 0)
        t_max, block = 1.0, None
        if falling.size:
            reach = np.maximum(G[falling] @ z, 0.0) / -rate[falling]
            k = int(np.argmin(reach))
            if reach[k] < 1.0:
                t_max, block = float(reach[k]), int(falling[k])
        t, improved = t_max, False
        while t > 1e-12 * t_max and t > 0:
            cand = z + t * p
            if (norms(cand) > 0).all():
                fc = value(cand)
                if fc <= f + 1e-4 * t * slope:
                    improved = fc < f
                    z, f = cand, fc
                    break
            t *= 0.5
        if block is not None and t == t_max and improved:
            return z, steps, block
        if t_max == 0.0:
            return z, steps, block
        if not improved:
            # a group whose own minimum (the others fixed) is zero blocks the steps at the kink: zero it
            res = y - M @ z
            for k in range(sizes_a.size):
                g = slice(int(starts[k]), int(starts[k] + sizes_a[k]))
                if float(np.linalg.norm(M[:, g].T @ (res + M[:, g] @ z[g]))) <= lam:
                    z = z.copy()
                    z[g] = 0.0
                    return z, steps, -1 - k
            break
        if np.linalg.norm(t * p) <= 1e-15 * max(float(np.linalg.norm(z)), 1e-300):
            break
    return z, steps, None


def polish_group_lasso(A: list[np.ndarray], y: np.ndarray, lam: float, C: list[np.ndarray], W0: np.ndarray, *,
                       zero_tol: float = 1e-6, active_tol: float = 1e-6, tol: float = 1e-9, max_newton: int = 30,
                       max_rounds: int = 12) -> PolishResult:
    """Polish an approximate solution ``W0`` of the cone-constrained group lasso (module docstring).

    Parameters
    ----------
    A : list of ndarray (N, d)
        Each group's design block ``A_j``.
    y : ndarray (N,)
    lam : float
        λ > 0.
    C : list of ndarray (m_j, d)
        Each group's cone rows (``C_j w_j ≥ 0``); facet rows suffice.
    W0 : ndarray (r, d)
        The approximate solution (e.g. an interior-point method's).
    zero_tol, active_tol : float
        A group with ``‖w_j‖ ≤ zero_tol·max_k ‖w_k‖`` starts as zero; a row with
        ``c_iᵀw_j ≤ active_tol·‖c_i‖‖w_j‖`` starts as active.
    tol : float
        Relative tolerance of the checks (multipliers against the gradient's size, rows against
        ``‖c_i‖‖w_j‖``, the zero groups' condition against λ).
    max_newton, max_rounds : int
        Newton steps per reduced problem; corrections of the active set.

    Returns
    -------
    PolishResult
    """
    W0 = np.asarray(W0, dtype=float)
    r, d = W0.shape
    norms = np.linalg.norm(W0, axis=1)
    top = float(norms.max(initial=0.0))
    zero = norms <= zero_tol * top if top > 0 else np.ones(r, dtype=bool)
    cn = [np.sqrt(np.einsum("id,id->i", Cj, Cj)) for Cj in C]
    active = [C[j] @ W0[j] <= active_tol * cn[j] * norms[j] for j in range(r)]
    W = np.where(zero[:, None], 0.0, W0)
    steps, reason = 0, "no round"
    reduced: dict[tuple[int, bytes], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}

    def group(j: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Group j on its active set: (B_j, A_j B_j, its inactive rows C B_j, their indices), kept per active set."""
        key = (j, active[j].tobytes())
        if key not in reduced:
            B = _null_basis(C[j][active[j]], d)
            rows = np.flatnonzero(~active[j])
            reduced[key] = (B, A[j] @ B, C[j][rows] @ B, rows)
        return reduced[key]

    for _ in range(max_rounds):
        support = []
        for j in np.flatnonzero(~zero).tolist():   # a group whose active rows leave no direction is zero
            if group(j)[0].shape[1] == 0:
                zero[j] = True
            else:
                support.append(j)
        Wr = np.zeros((r, d))
        blocked = None
        if support:
            parts = [group(j) for j in support]
            M = np.hstack([p[1] for p in parts])
            z = np.concatenate([p[0].T @ W[j] for j, p in zip(support, parts)])
            sizes = [p[0].shape[1] for p in parts]
            cuts = np.cumsum([0, *sizes])
            # the inactive rows in the reduced variables, and which (group, row) each is
            G = np.zeros((sum(p[3].size for p in parts), int(cuts[-1])))
            owner_j = np.repeat(support, [p[3].size for p in parts])
            owner_i = np.concatenate([p[3] for p in parts])
            at = 0
            for k, p in enumerate(parts):
                G[at:at + p[3].size, cuts[k]:cuts[k + 1]] = p[2]
                at += p[3].size
            if (np.add.reduceat(z * z, cuts[:-1]) > 0).all():
                z, n, blocked = _newton(M, y, lam, z, sizes, G, max_newton)
                steps += n
            for k, (j, p) in enumerate(zip(support, parts)):
                Wr[j] = p[0] @ z[cuts[k]:cuts[k + 1]]
        W = Wr
        if blocked is not None and blocked < 0:   # a group went to zero
            j = support[-1 - blocked]
            zero[j] = True
            reason = f"group {j} went to zero"
            continue
        if blocked is not None:   # a row stopped the step: it joins the active set, and the descent goes on
            j, i = int(owner_j[blocked]), int(owner_i[blocked])
            active[j][i] = True
            reason = f"group {j} reached row {i}"
            continue
        reason = _verify(A, y, lam, C, cn, W, zero, active, tol)
        if not reason:
            return PolishResult(W, group_lasso_objective(A, y, lam, W), "optimal", steps)
    return PolishResult(W, group_lasso_objective(A, y, lam, W), "not verified", steps, reason)


def _verify(A: list[np.ndarray], y: np.ndarray, lam: float, C: list[np.ndarray], cn: list[np.ndarray], W: np.ndarray,
            zero: np.ndarray, active: list[np.ndarray], tol: float, stat_tol: float = 1e-7) -> str:
    """Check the KKT conditions at ``W``; where one fails, update ``zero``/``active`` in place and say which
    (``cn``: the rows' norms; ``stat_tol``: the stationarity residual on a group's free directions, relative to
    ``‖A_jᵀr‖ + λ``)."""
    r = y - sum((A[j] @ W[j] for j in range(len(A))), np.zeros_like(y))
    G = np.array([A[j].T @ r for j in range(len(A))])             # −∇ of the smooth part, per group
    nw = np.sqrt(np.einsum("jd,jd->j", W, W))
    scale = np.sqrt(np.einsum("jd,jd->j", G, G)) + lam
    reasons = []
    for j in range(W.shape[0]):
        g = G[j]
        if zero[j]:
            if C[j].shape[0]:
                mu = nnls(C[j].T, -g)[0]   # Π_K(g) = g + Cᵀμ*, μ* = argmin_{μ ≥ 0} ‖g + Cᵀμ‖
                proj = g + C[j].T @ mu
            else:
                proj = g
            size = float(np.linalg.norm(proj))
            if size > lam * (1.0 + tol):
                zero[j] = False
                active[j] = C[j] @ proj <= 1e-12 * cn[j] * size   # the face of K the projection lies on
                step = float(np.linalg.norm(A[j] @ proj)) ** 2
                W[j] = proj * ((size - lam) / size / step if step > 0 else 1e-8)   # the exact line search along it
                reasons.append(f"group {j} should not be zero")
            continue
        bad = (~active[j]) & (C[j] @ W[j] < -tol * cn[j] * nw[j])
        if bad.any():
            active[j] = active[j] | bad
            reasons.append(f"group {j} violates {int(bad.sum())} rows")
            continue
        grad = -g + lam * W[j] / nw[j]          # = C_actᵀ μ at a KKT point
        act = np.flatnonzero(active[j])
        if not act.size:
            if float(grad @ grad) > (stat_tol * scale[j]) ** 2:
                reasons.append(f"group {j} not stationary")   # the Newton steps stopped short: nothing to correct
            continue
        Ca = C[j][act]
        try:   # ≤ d − 1 independent rows (a group on more is zero): the normal equations of the least squares
            mu = np.linalg.solve(Ca @ Ca.T, Ca @ grad)
        except np.linalg.LinAlgError:
            mu = np.linalg.lstsq(Ca.T, grad, rcond=None)[0]
        res = grad - Ca.T @ mu
        if float(res @ res) > (stat_tol * scale[j]) ** 2:
            reasons.append(f"group {j} not stationary")
            continue
        neg = mu < -tol * scale[j] / np.maximum(cn[j][act], 1e-300)
        if neg.any():
            active[j][act[neg]] = False
            reasons.append(f"group {j} has {int(neg.sum())} negative multipliers")
    return "; ".join(reasons)


def polish_cone_qp(A: np.ndarray, b: np.ndarray, mu: float, C: np.ndarray, u0: np.ndarray, *,
                   block_size: int | None = None, active_tol: float = 1e-6, tol: float = 1e-9,
                   max_rounds: int = 6) -> PolishResult:
    """Polish an approximate solution ``u0`` of ``min ½‖b − A u‖² + (μ/2)‖u‖²`` s.t. ``C u ≥ 0`` (``μ > 0``).

    Parameters
    ----------
    A : ndarray (N, n)
    b : ndarray (N,)
    mu : float
        μ > 0 (the program is strongly convex: one optimum).
    C : ndarray (m, n) or sparse
        The rows.
    u0 : ndarray (n,)
        The approximate solution; rows with ``c_iᵀu0 ≤ active_tol·‖c_i‖‖u0‖`` start as active.
    block_size : int, optional
        When every row of ``C`` touches one block of ``block_size`` consecutive variables only (block-diagonal
        rows, one block per ReLU unit), the active rows' null space is assembled block by block (small SVDs
        instead of one of size n).
    tol : float
        Relative tolerance of the checks (rows against ``‖c_i‖‖u‖``, multipliers against the gradient's size).
    max_rounds : int
        Corrections of the active set.

    Returns
    -------
    PolishResult
        ``W`` the point (n,), ``objective`` its value, ``status`` ``"optimal"`` when feasible with non-negative
        multipliers, else ``"not verified"`` (``newton_steps``: KKT systems solved).
    """
    C = np.asarray(C.toarray() if hasattr(C, "toarray") else C, dtype=float)
    u0 = np.asarray(u0, dtype=float)
    n = u0.size
    cn = np.linalg.norm(C, axis=1)
    P = A.T @ A + mu * np.eye(n)
    q = A.T @ b
    active = C @ u0 <= active_tol * cn * float(np.linalg.norm(u0))
    u, reason, rounds = u0, "no round", 0
    for rounds in range(1, max_rounds + 1):  # noqa: B007 - the count is returned
        Nb = _null_basis(C[active], n) if block_size is None else _block_null_basis(C[active], n, block_size)
        # u = Nb v on the active rows' null space
        u = Nb @ np.linalg.solve(Nb.T @ P @ Nb, Nb.T @ q) if Nb.shape[1] else np.zeros(n)
        nu = float(np.linalg.norm(u))
        bad = (~active) & (C @ u < -tol * cn * nu)
        if bad.any():
            reason = f"{int(bad.sum())} rows violated"
            active |= bad
            continue
        grad = P @ u - q                               # = C_actᵀ λ, λ ≥ 0, at the optimum
        Ca = C[active]
        lam_a = nnls(Ca.T, grad)[0] if Ca.shape[0] else np.zeros(0)
        rho = grad - Ca.T @ lam_a
        if float(np.linalg.norm(rho)) <= tol * (float(np.linalg.norm(q)) + float(np.linalg.norm(P @ u))):
            return PolishResult(u, _qp_value(A, b, mu, u), "optimal", rounds)
        # −ρ is a feasible descent direction (C_act(−ρ) ≥ 0 by the NNLS conditions): free the rows it leaves
        leave = np.flatnonzero(active)[Ca @ rho < 0]
        reason = f"{leave.size} rows with negative multipliers"
        if not leave.size:
            break
        active[leave] = False
    return PolishResult(u, _qp_value(A, b, mu, u), "not verified", rounds, reason)


def _block_null_basis(rows: np.ndarray, n: int, size: int) -> np.ndarray:
    """:func:`_null_basis` of rows that each touch one block of ``size`` consecutive columns: block-diagonal."""
    owner = np.argmax(rows != 0, axis=1) // size if rows.shape[0] else np.zeros(0, dtype=int)
    parts = []
    for k in range(n // size):
        B = _null_basis(rows[owner == k][:, k * size:(k + 1) * size], size)
        full = np.zeros((n, B.shape[1]))
        full[k * size:(k + 1) * size] = B
        parts.append(full)
    return np.hstack(parts) if parts else np.zeros((n, 0))


def _qp_value(A: np.ndarray, b: np.ndarray, mu: float, u: np.ndarray) -> float:
    res = b - A @ u
    return float(0.5 * res @ res + 0.5 * mu * u @ u)
