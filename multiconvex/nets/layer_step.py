"""Joint steps of whole layers: Newton on the layer's piece, the step length searched on ``F``.

Gauss–Seidel over the units of a layer is coordinate descent on that layer's weights: when the
units are coupled (the second hidden layer's units all feed the same output) it converges linearly
and slowly. With every piece fixed the network's output is affine in one layer's weights
``θ_k`` (rows ``(W_k, b_k)``), so for squared loss ``F`` is a convex quadratic in ``θ_k`` on the
piece. :func:`layer_newton_step` takes that quadratic's minimiser over the moves that keep the
pre-activations of the samples near a unit's boundary (``|z| ≤ pin_tol · max|z|``: the unit
blocks' active rows and the samples that would cross first) where they are — the
equality-constrained Newton step of the whole layer, solved through the ``N``-row Woodbury
identity on ``N·n_out`` rows — and then searches the step length on the true objective ``F``
(not on the piece: other samples may cross, the search only compares values of ``F``). The point
moves only when ``F`` decreases. Pinning only the samples exactly on a boundary lets the samples
just off it cross within a small fraction of the step, so the default ``pin_tol`` keeps the near ones
too (the measured effect is in the README).
:func:`network_newton_step` is the damped Gauss–Newton (Levenberg–Marquardt) step of every layer
at once, on the same Woodbury identity.

The steps certify nothing: block gaps, and so the partial-minimum claim, are still decided by the
unit blocks (the driver's sweeps and its certifying pass) exactly as without it.

Examples
--------
>>> import torch
>>> from multiconvex.nets import Architecture, init_params
>>> from multiconvex.nets.network import objective
>>> arch = Architecture((2, 6, 6, 1))
>>> X = torch.randn(40, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
>>> T = X[:, :1] * X[:, 1:]
>>> params = init_params(arch, 0, X.device)
>>> new, info = layer_newton_step(arch, params, X, T, 1e-3, layer=1)
>>> bool(objective(arch, new, X, T, 1e-3) <= objective(arch, params, X, T, 1e-3)), info.layer
(True, 1)
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from ..errors import InvalidInputError
from .network import Architecture, Params, forward, objective

#: step lengths tried on ``F`` (the full Newton step first); the best one that lowers ``F`` is taken
STEP_LENGTHS = (1.0, 0.5, 0.25, 0.125, 1 / 16, 1 / 64, 1 / 256)
#: a sample whose pre-activation is within this (relative to the layer's largest ``|z|``) keeps it in the step
PIN_TOL = 1e-3


@dataclass(frozen=True)
class LayerStepInfo:
    """What one :func:`layer_newton_step` did.

    Attributes
    ----------
    layer : int
        The hidden layer (0-based index into ``params``).
    step : float
        The step length taken (0: the point did not move).
    objective_before, objective_after : float
        ``F`` before and after.
    pinned : int
        Number of (sample, unit) pairs whose pre-activation the step kept.
    seconds : float
    """

    layer: int
    step: float
    objective_before: float
    objective_after: float
    pinned: int
    seconds: float


def _output_jacobian(arch: Architecture, params: Params, pre: list[torch.Tensor], layer: int) -> torch.Tensor:
    """``∂f_j/∂z_{layer}`` for every sample on the current piece: ``(N, n_out, n_layer)``."""
    W_out = params[-1][0]
    if layer == arch.n_layers - 1:
        return torch.eye(W_out.shape[0], dtype=W_out.dtype, device=W_out.device).expand(pre[0].shape[0], -1, -1)
    M = W_out.expand(pre[0].shape[0], *W_out.shape)  # ∂f/∂a_{L-1}
    for k in range(arch.n_layers - 2, layer, -1):  # through the hidden layers after ``layer``
        M = (M * arch.slope((pre[k] >= 0).to(M.dtype))[:, None, :]) @ params[k][0]
    return M * arch.slope((pre[layer] >= 0).to(M.dtype))[:, None, :]


def _null_spaces(rows: torch.Tensor, pinned: torch.Tensor) -> list[torch.Tensor]:
    """For each unit ``u``, an orthonormal basis ``B_u`` ``(p, p - rank)`` of ``{δ : rows[j]·δ = 0, pinned[j, u]}``:
    the unit's moves that leave its pinned samples' pre-activations where they are."""
    p = rows.shape[1]
    bases = []
    eye = torch.eye(p, dtype=rows.dtype, device=rows.device)
    for u in range(pinned.shape[1]):
        E = rows[pinned[:, u]]
        if E.shape[0] == 0:
            bases.append(eye)
            continue
        _, s, Vh = torch.linalg.svd(E, full_matrices=True)
        rank = int((s > s[0] * 1e-10).sum())
        bases.append(Vh[rank:].T)
    return bases


def _layer_data(arch: Architecture, params: Params, X: torch.Tensor, layer: int):
    out, pre, inputs = forward(arch, params, X)
    A = inputs[layer]
    if arch.bias:
        A = torch.cat([A, torch.ones_like(A[:, :1])], dim=1)
    W, b = params[layer]
    theta = torch.cat([W, b[:, None]], dim=1) if b is not None else W
    return out, pre, A, theta


def _pinned_step(S: torch.Tensor, A: torch.Tensor, R: torch.Tensor, theta: torch.Tensor, weight_decay: float,
                 pinned: torch.Tensor) -> torch.Tensor:
    """Minimiser of the layer's quadratic on the piece over the moves that keep the ``pinned`` pre-activations: the
    step ``δ`` ``(n, p)``. ``S``: ``∂f/∂z`` ``(N, n_out, n)``; ``A``: the layer's inputs ``(N, p)``; ``R = f − t``."""
    N, n_out, _ = S.shape
    bases = _null_spaces(A, pinned)
    # Jacobian of the outputs in v (δ_u = B_u v_u): J[j, o, (u, i)] = S[j, o, u] (A B_u)[j, i]
    J = torch.cat([S[:, :, u:u + 1] * (A @ B)[:, None, :] for u, B in enumerate(bases)], dim=2).reshape(N * n_out, -1)
    g = torch.cat([(weight_decay * theta[u]) @ B for u, B in enumerate(bases)]) + J.T @ R.reshape(-1) / N
    # (λI + JᵀJ/N)⁻¹ g = (g − Jᵀ(NλI + JJᵀ)⁻¹ J g) / λ
    K = J @ J.T
    K.diagonal().add_(N * weight_decay)
    v = -(g - J.T @ torch.linalg.solve(K, J @ g)) / weight_decay
    steps, start = [], 0
    for B in bases:
        steps.append(B @ v[start:start + B.shape[1]])
        start += B.shape[1]
    return torch.stack(steps)


def _moved(params: Params, layer: int, theta: torch.Tensor, bias: bool) -> Params:
    new = list(params)
    new[layer] = (theta[:, :-1], theta[:, -1]) if bias else (theta, None)
    return new


def layer_newton_step(arch: Architecture, params: Params, X: torch.Tensor, T: torch.Tensor, weight_decay: float,
                      layer: int, *, pin_tol: float = PIN_TOL,
                      step_lengths: tuple[float, ...] = STEP_LENGTHS) -> tuple[Params, LayerStepInfo]:
    """One joint step of layer ``layer``'s weights: the Newton step on its piece (the pre-activations near a boundary
    kept), its length searched on ``F``; ``params`` unchanged unless ``F`` decreases.

    Parameters
    ----------
    arch : Architecture
        Squared loss (the piece's quadratic is then exact); ``weight_decay > 0`` (the Newton matrix is then
        positive definite).
    params : Params
        The point (torch tensors on the data's device); not modified.
    X, T : torch.Tensor
        Inputs ``(N, d)`` and targets ``(N, n_out)``, float64.
    weight_decay : float
    layer : int
        ``0 <= layer < arch.n_layers`` (the output layer has no piece of its own: its step is the ridge solution).
    pin_tol : float
        Samples with ``|z| <= pin_tol · max(1, max|z|)`` keep their pre-activation ``z`` in the step.
    step_lengths : tuple of float
        Step lengths tried; the one with the lowest ``F`` is taken when it is below ``F(params)``.

    Returns
    -------
    (Params, LayerStepInfo)
    """
    if arch.loss != "squared":
        raise InvalidInputError(f"layer_newton_step: loss={arch.loss!r}; the layer step needs loss='squared' (on a "
                                "piece the objective is then a quadratic in the layer's weights).")
    if not weight_decay > 0:
        raise InvalidInputError(f"layer_newton_step: weight_decay={weight_decay!r}; the layer step needs "
                                "weight_decay > 0 (its Newton matrix is then positive definite).")
    if not 0 <= layer < arch.n_layers:
        raise InvalidInputError(f"layer_newton_step: layer={layer!r} is not a layer of {arch.sizes}: use "
                                f"0 <= layer < {arch.n_layers}.")
    t0 = time.perf_counter()
    with torch.no_grad():
        f0 = float(objective(arch, params, X, T, weight_decay))
        out, pre, A, theta = _layer_data(arch, params, X, layer)
        z = pre[layer]
        if layer < arch.n_layers - 1:
            pinned = z.abs() <= pin_tol * max(1.0, float(z.abs().max()))
        else:  # the output layer: no piece of its own
            pinned = torch.zeros(z.shape, dtype=torch.bool, device=X.device)
        step = _pinned_step(_output_jacobian(arch, params, pre, layer), A, out - T, theta, weight_decay, pinned)
        best_f, best_a = f0, 0.0
        for a in step_lengths:
            f = float(objective(arch, _moved(params, layer, theta + a * step, arch.bias), X, T, weight_decay))
            if f < best_f:
                best_f, best_a = f, a
            elif best_a:  # F rose again along the ray: the best length so far stays
                break
    new = _moved(params, layer, theta + best_a * step, arch.bias) if best_a else params
    return new, LayerStepInfo(layer, best_a, f0, best_f, int(pinned.sum()), time.perf_counter() - t0)


def _all_thetas(params: Params) -> list[torch.Tensor]:
    return [torch.cat([W, b[:, None]], dim=1) if b is not None else W for W, b in params]


def network_newton_step(arch: Architecture, params: Params, X: torch.Tensor, T: torch.Tensor, weight_decay: float,
                        damping: float, *,
                        step_lengths: tuple[float, ...] = STEP_LENGTHS) -> tuple[Params, LayerStepInfo]:
    """One damped Gauss–Newton (Levenberg–Marquardt) step of every layer at once, its length searched on ``F``.

    On the current piece the outputs are multi-affine in the layers; the step minimises their linearisation's
    squared loss plus ``(λ + damping)/2 ‖δ‖²`` (``λ`` the weight decay's curvature), by the ``N``-row Woodbury
    identity. ``params`` unchanged unless ``F`` decreases; ``info.layer`` is ``-1`` (every layer).
    """
    if arch.loss != "squared" or not weight_decay + damping > 0:
        raise InvalidInputError(f"network_newton_step: needs loss='squared' and weight_decay + damping > 0 (got "
                                f"loss={arch.loss!r}, weight_decay={weight_decay!r}, damping={damping!r}).")
    t0 = time.perf_counter()
    with torch.no_grad():
        out, pre, inputs = forward(arch, params, X)
        N, n_out = out.shape
        f0 = float(objective(arch, params, X, T, weight_decay))
        thetas = _all_thetas(params)
        blocks = []
        for k in range(arch.n_layers):
            A = torch.cat([inputs[k], torch.ones_like(inputs[k][:, :1])], dim=1) if arch.bias else inputs[k]
            S = _output_jacobian(arch, params, pre, k)
            blocks.append((S[:, :, :, None] * A[:, None, None, :]).reshape(N * n_out, -1))
        J = torch.cat(blocks, dim=1)
        theta = torch.cat([t.reshape(-1) for t in thetas])
        g = J.T @ (out - T).reshape(-1) / N + weight_decay * theta
        c = weight_decay + damping
        K = J @ J.T
        K.diagonal().add_(N * c)
        step = -(g - J.T @ torch.linalg.solve(K, J @ g)) / c

        def moved(a: float) -> Params:
            new, start = [], 0
            for t in thetas:
                piece = (theta[start:start + t.numel()] + a * step[start:start + t.numel()]).reshape(t.shape)
                start += t.numel()
                new.append((piece[:, :-1], piece[:, -1]) if arch.bias else (piece, None))
            return new

        best_f, best_a = f0, 0.0
        for a in step_lengths:
            f = float(objective(arch, moved(a), X, T, weight_decay))
            if f < best_f:
                best_f, best_a = f, a
            elif best_a:
                break
        new = moved(best_a) if best_a else params
    return new, LayerStepInfo(-1, best_a, f0, best_f, 0, time.perf_counter() - t0)


__all__ = ["LayerStepInfo", "PIN_TOL", "STEP_LENGTHS", "layer_newton_step", "network_newton_step"]

