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
   (all groups at once: the active rows' null spaces by one batched SVD, one Newton system in every group's
   coordinates, the frozen ones held at zero; a full step that gains only rounding ends the descent);
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
from scipy.linalg import lapack
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


def _rows_times(C3: np.ndarray, W: np.ndarray) -> np.ndarray:
    """``(C3[j] @ W[j])_j`` (r × m) for stacked blocks (r, m, d) and one vector per block (r, d)."""
    return (C3 @ W[:, :, None])[:, :, 0]


def group_lasso_objective(A: list[np.ndarray] | np.ndarray, y: np.ndarray, lam: float, W: np.ndarray) -> float:
    """``F(W) = ½‖y − Σ_j A_j w_j‖² + λ Σ_j ‖w_j‖`` (``A``: the groups' blocks, a list or an (r, N, d) array)."""
    r = y - _rows_times(np.asarray(A, dtype=float), W).sum(axis=0)
    return float(0.5 * r @ r + lam * np.linalg.norm(W, axis=1).sum())


def _stack_rows(C: list[np.ndarray] | np.ndarray, r: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """The groups' rows as one (r, m, d) array padded with zero rows, and which rows are real (r, m)."""
    if isinstance(C, np.ndarray) and C.ndim == 3:
        return np.asarray(C, dtype=float), np.ones(C.shape[:2], dtype=bool)
    m = max((len(Cj) for Cj in C), default=0)
    C3, valid = np.zeros((r, m, d)), np.zeros((r, m), dtype=bool)
    for j, Cj in enumerate(C):
        C3[j, :len(Cj)] = Cj
        valid[j, :len(Cj)] = True
    return C3, valid


@dataclass(frozen=True)
class _Bases:
    """Every group's active rows by SVD (batched): ``V`` (r, d, d) orthonormal columns, the first ``rank_j`` spanning
    group j's active rows and the rest (``free``, r × d) their null space; ``U``, ``sv`` and ``idx`` (the active rows'
    indices, padded) for the multipliers."""

    V: np.ndarray
    free: np.ndarray
    U: np.ndarray
    sv: np.ndarray
    idx: np.ndarray
    count: np.ndarray


def _bases(C3: np.ndarray, active: np.ndarray) -> _Bases:
    r, _, d = C3.shape
    count = active.sum(axis=1)
    kmax = max(int(count.max(initial=0)), 1)
    idx = np.argsort(~active, axis=1, kind="stable")[:, :kmax]
    rows = C3[np.arange(r)[:, None], idx] * (np.arange(kmax)[None, :] < count[:, None])[:, :, None]
    U, sv, Vt = np.linalg.svd(rows, full_matrices=True)
    rank = (sv > 1e-10 * np.maximum(sv[:, :1], 1e-300)).sum(axis=1)
    free = np.arange(d)[None, :] >= rank[:, None]
    return _Bases(Vt.transpose(0, 2, 1), free, U, np.where(np.arange(sv.shape[1]) < rank[:, None], sv, np.inf),
                  idx, count)


def _newton(AV: np.ndarray, y: np.ndarray, lam: float, Z: np.ndarray, free: np.ndarray, CV: np.ndarray,
            inactive: np.ndarray, max_steps: int) -> tuple[np.ndarray, int, tuple[int, int] | None]:
    """Minimise ``½‖y − Σ_j AV_j z_j‖² + λ Σ_j ‖z_j‖`` over the groups' ``free`` coordinates (the others stay 0;
    every group with a free coordinate non-zero) from ``Z`` (r × d) by damped Newton, keeping the ``inactive`` rows
    ``CV_j z_j ≥ 0``: a step that reaches one stops there and returns ``(j, i)``; a group set to zero (the steps
    stalled at its kink and zero is its own minimum) returns ``(j, −1)``."""
    r, N, d = AV.shape
    sup = free.any(axis=1)
    frozen = np.flatnonzero(~free.ravel())
    AVm = AV * free[:, None, :]
    M = AVm.transpose(1, 0, 2).reshape(N, r * d)
    MtM, Mty = M.T @ M, M.T @ y
    ar = np.arange(r)
    eye = free[:, :, None] & free[:, None, :] & np.eye(d, dtype=bool)[None]

    def norms(V: np.ndarray) -> np.ndarray:
        return np.sqrt(np.einsum("rd,rd->r", V, V))

    def value(V: np.ndarray) -> float:
        res = y - M @ V.ravel()
        return float(0.5 * res @ res + lam * norms(V).sum())

    f = value(Z)
    steps = 0
    for steps in range(1, max_steps + 1):  # noqa: B007 - the count is returned
        nz = np.where(sup, norms(Z), 1.0)
        Un = Z / nz[:, None]
        grad = ((MtM @ Z.ravel() - Mty).reshape(r, d) + lam * Un) * free
        H = MtM.copy()
        H.reshape(r, d, r, d)[ar, :, ar, :] += (lam / nz)[:, None, None] * (eye - Un[:, :, None] * Un[:, None, :])
        H[frozen, frozen] = 1.0
        p = _descent_direction(H, grad.ravel())
        P = p.reshape(r, d) * free
        slope = float(grad.ravel() @ P.ravel())
        if not slope < 0:   # no Newton descent (a singular system solved to rounding): steepest descent instead
            P = -grad
            p = P.ravel()
            slope = -float(grad.ravel() @ grad.ravel())
            if not slope < 0:
                break
        rate = _rows_times(CV, P)
        falling = inactive & (rate < 0)
        t_max, block = 1.0, None
        if falling.any():
            slack = np.maximum(_rows_times(CV, Z), 0.0)
            reach = np.where(falling, slack / np.where(falling, -rate, 1.0), np.inf)
            k = int(np.argmin(reach))
            if reach.flat[k] < 1.0:
                t_max, block = float(reach.flat[k]), divmod(k, CV.shape[1])
        if block is not None and t_max * float(np.linalg.norm(p)) <= 1e-14 * max(float(np.linalg.norm(Z)), 1e-300):
            return Z, steps, block   # the row is active to rounding already: it joins the active set, no move
        t, improved, f_before = t_max, False, f
        while t > 1e-12 * t_max and t > 0:
            cand = Z + t * P
            if (norms(cand)[sup] > 0).all():
                fc = value(cand)
                if fc <= f + 1e-4 * t * slope:
                    improved = fc < f
                    Z, f = cand, fc
                    break
            t *= 0.5
        if block is None and improved and t == t_max and f_before - f <= 1e-15 * abs(f_before):
            break   # a full step that gains only rounding: converged (further steps only shuffle the last bits)
        if block is not None and t == t_max and improved:
            return Z, steps, block
        if t_max == 0.0:
            return Z, steps, block
        if not improved:
            # a group whose own minimum (the others fixed) is zero blocks the steps at the kink: zero it
            res = y - M @ Z.ravel()
            own = (AVm.transpose(0, 2, 1) @ (res[None, :] + _rows_times(AVm, Z))[:, :, None])[:, :, 0]
            kink = np.flatnonzero(sup & (norms(own) <= lam))
            if kink.size:
                Z = Z.copy()
                Z[kink[0]] = 0.0
                return Z, steps, (int(kink[0]), -1)
            break
        if np.linalg.norm(t * p) <= 1e-15 * max(float(np.linalg.norm(Z)), 1e-300):
            break
    return Z, steps, None


def _descent_direction(H: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``−H⁻¹g`` by Cholesky; where ``H`` is singular to working precision (duplicated samples, groups sharing a
    direction) ``−(H + δI)⁻¹g`` with the smallest ``δ = 1e-12·tr(H)/n · 1000^k`` that factors, which is still a
    descent direction (``np.linalg.solve`` on the singular ``H`` had returned ‖p‖ ~ 1e16 uphill)."""
    _, p, info = lapack.dposv(H, -g)   # H is symmetric, positive semidefinite; definite unless a group is flat
    if info == 0:
        return p
    delta = 1e-12 * max(float(np.trace(H)) / max(H.shape[0], 1), np.finfo(float).tiny)
    for _ in range(5):
        _, p, info = lapack.dposv(H + delta * np.eye(H.shape[0]), -g)
        if info == 0:
            return p
        delta *= 1e3
    return -g


def polish_group_lasso(A: list[np.ndarray] | np.ndarray, y: np.ndarray, lam: float, C: list[np.ndarray] | np.ndarray,
                       W0: np.ndarray, *, zero_tol: float = 1e-6, active_tol: float = 1e-6, tol: float = 1e-9,
                       max_newton: int = 30, max_rounds: int = 12) -> PolishResult:
    """Polish an approximate solution ``W0`` of the cone-constrained group lasso (module docstring).

    Every step is vectorised over the groups (batched SVDs of the active rows, one Newton system in all the groups'
    coordinates, the checks on stacked arrays): the cost per round does not grow with Python calls per group.

    Parameters
    ----------
    A : list of ndarray (N, d), or ndarray (r, N, d)
        Each group's design block ``A_j``.
    y : ndarray (N,)
    lam : float
        λ > 0.
    C : list of ndarray (m_j, d), or ndarray (r, m, d)
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
    if r == 0:   # no group: nothing to move, F is ½‖y‖²
        return PolishResult(W0, 0.5 * float(y @ y), "optimal", 0)
    A3 = np.asarray(A, dtype=float).reshape(r, -1, d)
    C3, valid = _stack_rows(C, r, d)
    norms = np.linalg.norm(W0, axis=1)
    top = float(norms.max(initial=0.0))
    zero = norms <= zero_tol * top if top > 0 else np.ones(r, dtype=bool)
    cn = np.sqrt(np.einsum("rmd,rmd->rm", C3, C3))
    active = valid & (_rows_times(C3, W0) <= active_tol * cn * norms[:, None])
    W = np.where(zero[:, None], 0.0, W0)
    steps, reason = 0, "no round"
    for _ in range(max_rounds):
        bases = _bases(C3, active)
        AV, CV = A3 @ bases.V, C3 @ bases.V
        zero |= ~bases.free.any(axis=1)   # a group whose active rows leave no direction is zero
        free = bases.free & ~zero[:, None]
        blocked = None
        Z = _rows_times(bases.V.transpose(0, 2, 1), W) * free    # z_j = V_jᵀ w_j on the free coordinates
        if not zero.all() and (np.einsum("rd,rd->r", Z, Z)[~zero] > 0).all():
            Z, n, blocked = _newton(AV, y, lam, Z, free, CV, valid & ~active & ~zero[:, None], max_newton)
            steps += n
        W = _rows_times(bases.V, Z)
        if blocked is not None and blocked[1] < 0:   # a group went to zero
            zero[blocked[0]] = True
            reason = f"group {blocked[0]} went to zero"
            continue
        if blocked is not None:   # a row stopped the step: it joins the active set, and the descent goes on
            j, i = blocked
            active[j, i] = True
            reason = f"group {j} reached row {i}"
            continue
        reason = _verify(A3, y, lam, C3, valid, cn, W, zero, active, bases, tol)
        if not reason:
            return PolishResult(W, group_lasso_objective(A3, y, lam, W), "optimal", steps)
    return PolishResult(W, group_lasso_objective(A3, y, lam, W), "not verified", steps, reason)


def _verify(A3: np.ndarray, y: np.ndarray, lam: float, C3: np.ndarray, valid: np.ndarray, cn: np.ndarray,
            W: np.ndarray, zero: np.ndarray, active: np.ndarray, bases: _Bases, tol: float,
            stat_tol: float = 1e-7) -> str:
    """Check the KKT conditions at ``W``; where one fails, update ``zero``/``active``/``W`` in place and say which
    (``cn``: the rows' norms; ``bases``: the active rows' SVDs; ``stat_tol``: the stationarity residual on a group's
    free directions, relative to ``‖A_jᵀr‖ + λ``)."""
    r = y - _rows_times(A3, W).sum(axis=0)
    G = (A3.transpose(0, 2, 1) @ r)                               # −∇ of the smooth part, per group
    nw = np.sqrt(np.einsum("jd,jd->j", W, W))
    scale = np.sqrt(np.einsum("jd,jd->j", G, G)) + lam
    reasons = []
    nz = ~zero   # (a group released below is checked next round, on its new active set)
    for j in np.flatnonzero(zero).tolist():
        Cj, g = C3[j, valid[j]], G[j]
        if Cj.shape[0]:
            mu = nnls(Cj.T, -g)[0]   # Π_K(g) = g + Cᵀμ*, μ* = argmin_{μ ≥ 0} ‖g + Cᵀμ‖
            proj = g + Cj.T @ mu
        else:
            proj = g
        size = float(np.linalg.norm(proj))
        if size > lam * (1.0 + tol):
            zero[j] = False
            active[j] = valid[j] & (C3[j] @ proj <= 1e-12 * cn[j] * size)   # the face of K the projection lies on
            step = float(np.linalg.norm(A3[j] @ proj)) ** 2
            W[j] = proj * ((size - lam) / size / step if step > 0 else 1e-8)   # the exact line search along it
            reasons.append(f"group {j} should not be zero")
    bad = nz[:, None] & valid & ~active & (_rows_times(C3, W) < -tol * cn * nw[:, None])
    worse = bad.any(axis=1)
    active |= bad
    reasons += [f"group {j} violates {int(bad[j].sum())} rows" for j in np.flatnonzero(worse).tolist()]
    check = nz & ~worse
    grad = -G + lam * W / np.where(nw > 0, nw, 1.0)[:, None]      # = C_actᵀ μ at a KKT point
    coords = _rows_times(bases.V.transpose(0, 2, 1), grad)
    off = np.einsum("rk,rk->r", coords * bases.free, coords)      # its part on the active rows' null space
    still = check & (off > (stat_tol * scale) ** 2)
    reasons += [f"group {j} not stationary" for j in np.flatnonzero(still).tolist()]
    # the multipliers (least squares, minimum norm): μ = U Σ⁺ (V_rowsᵀ grad) on the rank's directions
    k = bases.sv.shape[1]
    mu = _rows_times(bases.U[:, :, :k], coords[:, :k] / bases.sv)
    pad = np.arange(mu.shape[1])[None, :] < bases.count[:, None]
    cn_act = cn[np.arange(cn.shape[0])[:, None], bases.idx]
    neg = pad & (check & ~still)[:, None] & (mu < -tol * scale[:, None] / np.maximum(cn_act, 1e-300))
    for j in np.flatnonzero(neg.any(axis=1)).tolist():
        active[j, bases.idx[j, neg[j]]] = False
        reasons.append(f"group {j} has {int(neg[j].sum())} negative multipliers")
    return "; ".join(reasons)


def _null_basis(rows: np.ndarray, d: int) -> np.ndarray:
    """Orthonormal basis (d × k) of ``{w : rows w = 0}``."""
    if rows.shape[0] == 0:
        return np.eye(d)
    _, sv, Vt = np.linalg.svd(rows, full_matrices=True)
    rank = int((sv > 1e-10 * max(float(sv[0]), 1e-300)).sum())
    return Vt[rank:].T


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
