"""The last hidden layer's joint QP on its piece, solved exactly: semismooth Newton on the residual's dual.

With every activation pattern fixed, the network's output is affine in the last hidden layer's weights
``θ`` (rows ``θ_u = (W_u, b_u)``, one per unit) and nothing after that layer has a piece of its own, so
for squared loss that layer's subproblem on the piece is

    ``min_θ  λ/2 ‖θ‖² + 1/(2N) ‖Mθ − b‖²   s.t.  ã_i · θ_u ≥ 0 (alive) or ≤ 0 (dead), every sample i, unit u``

(``M`` the map from the layer to the outputs on the piece, ``b = t −`` the output layer's bias). The rows are
separable by unit, the objective is not (every unit feeds the same outputs): Gauss–Seidel over the units is
coordinate descent on it and crawls when they are coupled. With ``ν`` the scaled residual ``(Mθ − b)/N``
each unit's optimum given ``ν`` is a projection, ``θ_u(ν) = argmin_{piece} λ/2‖θ_u‖² + (M_uᵀν)ᵀθ_u`` (a tiny
interval QP: DAQP, batched, :func:`multiconvex.solvers.batched_qp.solve_interval_qps`), and the layer's
optimum is the root of ``∇h(ν) = Nν + b − Mθ(ν)``, the gradient of the convex dual function
``h(ν) = N/2‖ν‖² + νᵀb − φ(ν)``, ``φ(ν) = min_{piece} λ/2‖θ‖² + νᵀMθ``. ``θ(ν)`` is piecewise affine in
``ν``; on the face where each unit's active rows stay active its derivative is ``−B_uB_uᵀM_uᵀ/λ``
(``B_u`` an orthonormal basis of the moves that keep the unit's active rows), so the Newton matrix is
``N·I + Σ_u M_uB_u(M_uB_u)ᵀ/λ`` (``N·n_out`` square, positive definite) and Newton's method with an
Armijo search on ``h`` converges globally and, once the faces settle, in a step or two.

At the root every unit of the layer solves its own block subproblem exactly (its KKT conditions are the
projection's): its own-piece block gap is at rounding level. :func:`last_layer_solve` returns the point
only when the network's objective ``F`` does not increase; it certifies nothing itself (the unit blocks'
gaps do that, as always).

Examples
--------
>>> import torch
>>> from multiconvex.nets import Architecture, init_params
>>> from multiconvex.nets.network import objective
>>> arch = Architecture((2, 6, 6, 1))
>>> X = torch.randn(40, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
>>> T = X[:, :1] * X[:, 1:]
>>> params = init_params(arch, 0, X.device)
>>> new, info = last_layer_solve(arch, params, X, T, 1e-3)
>>> bool(objective(arch, new, X, T, 1e-3) <= objective(arch, params, X, T, 1e-3)), info.converged
(True, True)
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InvalidInputError
from ..solvers import status as st
from ..solvers.batched_qp import solve_interval_qps
from .network import Architecture, Params, forward, objective

#: Relative size of ``‖∇h‖`` (to ``‖b‖ + 1``) at which the Newton iteration stops: the residual is then exact to
#: rounding and every unit's projection is its block's optimum
ROOT_TOL = 1e-13
#: Each sample keeps its side by this much (relative to the layer's largest ``|z|``): an active row then ends
#: strictly on its own side in floating point (a zero ``z`` counts as alive), so the point's own piece is the
#: piece solved on; the optimum moves by ``O(multiplier · MARGIN)``, far below any gap tolerance
MARGIN = 1e-12
#: Armijo's sufficient-decrease fraction and the step lengths tried on ``h``
ARMIJO = 1e-4
STEP_LENGTHS = (1.0, 0.5, 0.25, 0.1, 0.03, 0.01)


@dataclass(frozen=True)
class LayerQPInfo:
    """What one :func:`last_layer_solve` did.

    Attributes
    ----------
    layer : int
        The layer solved (0-based: the last hidden layer).
    newton_steps : int
        Newton steps taken on the dual.
    residual : float
        ``‖∇h(ν)‖`` at the end (0 at the layer's optimum).
    converged : bool
        ``residual <= ROOT_TOL·(‖b‖ + 1)``, or no step length lowered ``h`` any more (rounding).
    objective_before, objective_after : float
        ``F`` before and after (equal when the point did not move).
    seconds : float
    out_of_time : bool
        The deadline stopped the iteration (the best point found by then is returned when it lowers ``F``).
    failed : str
        ``""``, or why a projection could not be solved (the point is then returned unchanged).
    """

    layer: int
    newton_steps: int
    residual: float
    converged: bool
    objective_before: float
    objective_after: float
    seconds: float
    out_of_time: bool = False
    failed: str = ""


class _Layer:
    """The last hidden layer's data on the piece at one point (numpy, float64)."""

    def __init__(self, arch: Architecture, params: Params, X: torch.Tensor, T: torch.Tensor, weight_decay: float):
        k = arch.n_layers - 2
        out, pre, inputs = forward(arch, params, X)
        z = pre[k]
        a = inputs[k]
        self.A = torch.cat([a, torch.ones_like(a[:, :1])], dim=1).cpu().numpy() if arch.bias else a.cpu().numpy()
        alive = (z >= 0).cpu().numpy()
        self.slope = arch.slope(torch.as_tensor(alive, dtype=z.dtype)).numpy()  # (N, n)
        # the piece: alive samples z ≥ 0, dead ones z ≤ 0 (one interval per sample and unit)
        n = z.shape[1]
        margin = MARGIN * max(1.0, float(z.abs().max()))
        # C order: DAQP reads each unit's bounds as one contiguous row
        self.lower = np.ascontiguousarray(np.where(alive.T, margin, -np.inf))
        self.upper = np.ascontiguousarray(np.where(alive.T, np.inf, -margin))
        W_out, b_out = params[-1]
        self.W_out = W_out.cpu().numpy()  # (n_out, n)
        self.b = T.cpu().numpy() - (b_out.cpu().numpy()[None, :] if b_out is not None else 0.0)  # (N, n_out)
        self.lam = float(weight_decay)
        self.N = X.shape[0]
        self.n = n
        W, bias = params[k]
        self.theta0 = (torch.cat([W, bias[:, None]], dim=1) if bias is not None else W).cpu().numpy()
        # each projection divided by λ (the same minimiser): DAQP's tolerances are absolute, and λI with a tiny λ
        # let it stop at θ ≈ 0 far from the optimum
        self.P = np.repeat(np.eye(self.A.shape[1])[None], n, axis=0)

    def gain(self) -> np.ndarray:
        """``G[i, o, u] = W_out[o, u] · slope[i, u]``: output ``o`` of sample ``i`` per unit pre-activation."""
        return self.W_out[None, :, :] * self.slope[:, None, :]

    def outputs(self, theta: np.ndarray) -> np.ndarray:
        """``Mθ`` (N, n_out)."""
        return ((self.A @ theta.T) * self.slope) @ self.W_out.T

    def linear(self, nu: np.ndarray) -> np.ndarray:
        """``M_uᵀν`` for every unit (n, c)."""
        return ((nu @ self.W_out) * self.slope).T @ self.A


def _project(layer: _Layer, nu: np.ndarray, warm: np.ndarray, active: np.ndarray | None,
             deadline: float | None):
    """Every unit's ``θ_u(ν)`` by DAQP (``min ½‖θ_u‖² + (M_uᵀν/λ)ᵀθ_u`` on the piece): ``(theta, active, status
    list)``."""
    q = np.ascontiguousarray(layer.linear(nu) / layer.lam)
    wall = None if deadline is None else time.time() + (deadline - time.perf_counter())  # DAQP's clock: time.time()
    res = solve_interval_qps(layer.P, q, layer.A, layer.lower, layer.upper, warm=warm, active=active, deadline=wall)
    return res.x, res.active, res.status


def _h(layer: _Layer, nu: np.ndarray, theta: np.ndarray) -> float:
    """The dual function ``h(ν) = N/2‖ν‖² + νᵀb − λ/2‖θ‖² − νᵀMθ`` at ``θ = θ(ν)``."""
    return float(0.5 * layer.N * (nu * nu).sum() + (nu * layer.b).sum() - 0.5 * layer.lam * (theta * theta).sum()
                 - (nu * layer.outputs(theta)).sum())


def _newton_matrix(layer: _Layer, active: np.ndarray) -> np.ndarray:
    """``N·I + Σ_u M_uB_u(M_uB_u)ᵀ/λ`` on the ``N·n_out`` residuals (``B_u``: an orthonormal basis of the moves
    keeping unit ``u``'s active rows), all units' ``M_uB_u`` side by side in one product (``Σ_u M_uM_uᵀ`` less each
    unit's active span would cost less but cancels: the Newton steps then stall far above rounding)."""
    N, n_out = layer.b.shape
    G = layer.gain().reshape(N * n_out, layer.n)  # row (i, o): M_u's row is G[(i, o), u] ã_i
    A_rows = np.repeat(layer.A, n_out, axis=0)
    cols = []
    for u in range(layer.n):
        rows = layer.A[active[u] != 0]
        if rows.shape[0]:
            _, s, Vh = np.linalg.svd(rows, full_matrices=True)
            rank = int((s > s[0] * 1e-10).sum())
            basis = Vh[rank:].T
            cols.append(G[:, u, None] * (A_rows @ basis))
        else:
            cols.append(G[:, u, None] * A_rows)
    Z = np.concatenate(cols, axis=1)
    K = Z @ Z.T
    K /= layer.lam
    K[np.diag_indices_from(K)] += N
    return K


def last_layer_solve(arch: Architecture, params: Params, X: torch.Tensor, T: torch.Tensor, weight_decay: float, *,
                     max_steps: int = 30, deadline: float | None = None) -> tuple[Params, LayerQPInfo]:
    """The last hidden layer's QP on the piece at ``params``, solved exactly (module docstring); ``params``
    unchanged unless ``F`` decreases.

    Parameters
    ----------
    arch : Architecture
        Squared loss, at least one hidden layer.
    params : Params
        The point (torch tensors on the data's device); not modified.
    X, T : torch.Tensor
        Inputs ``(N, d)`` and targets ``(N, n_out)``, float64.
    weight_decay : float
        ``> 0`` (each unit's projection is then strictly convex).
    max_steps : int
        Newton steps at most.
    deadline : float, optional
        ``time.perf_counter()`` seconds: no Newton step starts after it.

    Returns
    -------
    (Params, LayerQPInfo)
    """
    if arch.loss != "squared" or not weight_decay > 0 or arch.n_layers < 2:
        raise InvalidInputError(f"last_layer_solve: needs loss='squared', weight_decay > 0 and a hidden layer (got "
                                f"loss={arch.loss!r}, weight_decay={weight_decay!r}, sizes={arch.sizes}).")
    t0 = time.perf_counter()
    k = arch.n_layers - 2
    with torch.no_grad():
        f0 = float(objective(arch, params, X, T, weight_decay))
        layer = _Layer(arch, params, X, T, weight_decay)
    theta = layer.theta0
    nu = (layer.outputs(theta) - layer.b) / layer.N
    theta, active, status = _project(layer, nu, theta, None, deadline)
    steps, converged, cut, failed = 0, False, False, ""
    scale = float(np.linalg.norm(layer.b)) + 1.0
    grad = h = float("nan")
    if not all(s == st.OPTIMAL for s in status):
        failed = f"a unit's projection ended {sorted(set(status) - {st.OPTIMAL})}"
    else:
        h = _h(layer, nu, theta)
        grad = layer.N * nu + layer.b - layer.outputs(theta)
        while steps < max_steps:
            if float(np.linalg.norm(grad)) <= ROOT_TOL * scale:
                converged = True
                break
            if deadline is not None and time.perf_counter() > deadline:
                cut = True
                break
            K = _newton_matrix(layer, active)
            d = -np.linalg.solve(K, grad.reshape(-1)).reshape(grad.shape)
            slope = float((grad * d).sum())
            moved = False
            for a in STEP_LENGTHS:
                trial = nu + a * d
                th, act, stat = _project(layer, trial, theta, active, deadline)
                if not all(s == st.OPTIMAL for s in stat):
                    continue
                h_new = _h(layer, trial, th)
                if h_new <= h + ARMIJO * a * slope:
                    nu, theta, active, h, moved = trial, th, act, h_new, True
                    break
            steps += 1
            grad = layer.N * nu + layer.b - layer.outputs(theta)
            if not moved:  # no length lowers h: ν is optimal to rounding
                converged = True
                break
    new = params
    f1 = f0
    if not failed and np.all(np.isfinite(theta)):
        t = torch.as_tensor(theta, dtype=params[k][0].dtype, device=params[k][0].device)
        cand = list(params)
        cand[k] = (t[:, :-1], t[:, -1]) if arch.bias else (t, None)
        with torch.no_grad():
            f_c = float(objective(arch, cand, X, T, weight_decay))
        if f_c <= f0:
            new, f1 = cand, f_c
    res = float(np.linalg.norm(grad)) if np.all(np.isfinite(grad)) else float("nan")
    return new, LayerQPInfo(k, steps, res, converged, f0, f1, time.perf_counter() - t0, cut, failed)


__all__ = ["ARMIJO", "LayerQPInfo", "MARGIN", "ROOT_TOL", "STEP_LENGTHS", "last_layer_solve"]
