"""Joint steps of whole layers: Newton on the layer's piece, the step length searched on ``F``.

Gauss–Seidel over the units of a layer is coordinate descent on that layer's weights: when the
units are coupled (the second hidden layer's units all feed the same output) it converges linearly
and slowly. With every piece fixed the network's output is affine in one layer's weights
``θ_k`` (rows ``(W_k, b_k)``), so for squared loss ``F`` is a convex quadratic in ``θ_k`` on the
piece. :func:`layer_newton_step` takes that quadratic's minimiser over the moves that keep the
pre-activations of the samples near a unit's boundary (``|z| ≤ pin_tol · max|z|``: the unit
blocks' active rows and the samples that would cross first) where they are — the
equality-constrained Newton step of the whole layer — and then searches the step length on the true objective ``F``
(not on the piece: other samples may cross, the search only compares values of ``F``). The point
moves only when ``F`` decreases. Pinning only the samples exactly on a boundary lets the samples
just off it cross within a small fraction of the step, so the default ``pin_tol`` keeps the near ones
too (the measured effect is in the README).
:func:`network_newton_step` is the damped Gauss–Newton (Levenberg–Marquardt) step of every layer
at once.

Both solve ``(cI + JᵀJ/N) v = −g`` with ``J`` the Jacobian of the ``N·n_out`` outputs in the step's
``p`` free parameters, in whichever form is smaller (:func:`_damped_newton`): the ``p × p`` normal
equations (``JᵀJ`` summed over chunks of samples, so memory stays ``O(p² + chunk·p)``; Cholesky) when
``N·n_out > p``, else the Woodbury identity on the ``N·n_out`` rows. Given a ``deadline`` a step whose
estimated cost exceeds the time left is not started, and one that runs past it stops (between chunks
of samples, before its solve, between the lengths of its search) with the best length found so far.

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
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..errors import InvalidInputError
from .network import Architecture, Params, forward, objective

#: step lengths tried on ``F`` (the full Newton step first); the best one that lowers ``F`` is taken
STEP_LENGTHS = (1.0, 0.5, 0.25, 0.125, 1 / 16, 1 / 64, 1 / 256)
#: a sample whose pre-activation is within this (relative to the layer's largest ``|z|``) keeps it in the step
PIN_TOL = 1e-3
#: how the damped Gauss–Newton system is solved: ``"auto"`` takes the smaller of the two forms
SOLVES = ("auto", "normal", "woodbury")
#: Jacobian elements (samples × outputs × parameters) formed at once when the normal equations are summed
CHUNK_ELEMENTS = 1 << 20


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
    solve : str
        ``"normal"`` (the ``p × p`` normal equations) or ``"woodbury"`` (the ``N·n_out`` rows); ``""`` when the
        step was not started (its estimated cost exceeded the time left) or stopped before its solve.
    out_of_time : bool
        The deadline cut the step short: not started, stopped before its solve, or its search of lengths ended
        early (the best length found by then is taken).
    """

    layer: int
    step: float
    objective_before: float
    objective_after: float
    pinned: int
    seconds: float
    solve: str = ""
    out_of_time: bool = False


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
        if E.shape[0] > p:  # the same null space from E's p × p triangle (a full SVD of E holds an m × m factor)
            E = torch.linalg.qr(E, mode="r").R
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


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.perf_counter() > deadline


def _system(N: int, n_out: int, p: int, solve: str) -> str:
    """The form :func:`_damped_newton` solves: ``"normal"`` (size ``p``) or ``"woodbury"`` (size ``N·n_out``)."""
    if solve not in SOLVES:
        raise InvalidInputError(f"solve={solve!r} is not one of {SOLVES}: use 'auto' (the smaller system), 'normal' "
                                "(the p × p normal equations) or 'woodbury' (the N·n_out sample rows).")
    if solve == "auto":
        return "normal" if N * n_out > p else "woodbury"
    return solve


def _estimated_seconds(arch: Architecture, N: int, p: int, system: str, forward_seconds: float,
                       searches: int) -> float:
    """Wall time of a step, scaled from one measured objective evaluation (``forward_seconds``, the rate of the
    forward pass's products): the step's Jacobian products and solve, one more forward pass and its search."""
    n_out = arch.sizes[-1]
    forward_flops = 2.0 * N * sum(m * n for m, n in zip(arch.sizes[:-1], arch.sizes[1:]))
    m = N * n_out
    solve_flops = 2.0 * m * p * p + p ** 3 / 3 if system == "normal" else 2.0 * m * m * p + m ** 3 / 3
    jacobian_flops = 2.0 * m * p * max(arch.sizes)
    return forward_seconds * ((solve_flops + jacobian_flops) / max(forward_flops, 1.0) + 1 + searches)


def _damped_newton(rows: Callable[[int, int], torch.Tensor], N: int, n_out: int, p: int, R: torch.Tensor,
                   g0: torch.Tensor, c: float, system: str, deadline: float | None) -> torch.Tensor | None:
    """``v = −(cI + JᵀJ/N)⁻¹ (g0 + JᵀR/N)``, ``J`` ``(N·n_out, p)`` given by ``rows(start, stop)`` (the rows of
    samples ``start:stop``), ``R`` ``(N, n_out)``; ``None`` when the deadline passes first.

    ``system="normal"``: ``JᵀJ`` summed over chunks of samples (:data:`CHUNK_ELEMENTS`), then Cholesky of the
    ``p × p`` matrix; ``"woodbury"``: ``(g − Jᵀ(NcI + JJᵀ)⁻¹Jg)/c`` on the ``N·n_out`` rows (``J`` whole).
    """
    if system == "woodbury":
        if _past(deadline):
            return None
        J = rows(0, N)
        g = g0 + J.T @ R.reshape(-1) / N
        K = J @ J.T
        K.diagonal().add_(N * c)
        return -(g - J.T @ torch.linalg.solve(K, J @ g)) / c
    G = torch.zeros(p, p, dtype=R.dtype, device=R.device)
    JR = torch.zeros(p, dtype=R.dtype, device=R.device)
    chunk = max(1, CHUNK_ELEMENTS // max(1, n_out * p))
    for start in range(0, N, chunk):
        if _past(deadline):
            return None
        stop = min(N, start + chunk)
        Jc = rows(start, stop)
        G.addmm_(Jc.T, Jc)
        JR.addmv_(Jc.T, R[start:stop].reshape(-1))
    H = G / N
    H.diagonal().add_(c)
    g = g0 + JR / N
    L, info = torch.linalg.cholesky_ex(H)
    if int(info) == 0:
        return -torch.cholesky_solve(g[:, None], L)[:, 0]
    return -torch.linalg.solve(H, g)  # c > 0 makes H positive definite; rounding may still defeat Cholesky


def _pinned_step(S: torch.Tensor, A: torch.Tensor, R: torch.Tensor, theta: torch.Tensor, weight_decay: float,
                 bases: list[torch.Tensor], system: str, deadline: float | None) -> torch.Tensor | None:
    """Minimiser of the layer's quadratic on the piece over the moves ``δ_u = B_u v_u`` that keep the pinned
    pre-activations (``bases``: :func:`_null_spaces`): the step ``δ`` ``(n, p)``, or ``None`` when the deadline
    passes first. ``S``: ``∂f/∂z`` ``(N, n_out, n)``; ``A``: the layer's inputs ``(N, p)``; ``R = f − t``."""
    N, n_out, _ = S.shape
    dims = [B.shape[1] for B in bases]

    def rows(start: int, stop: int) -> torch.Tensor:  # J[j, o, (u, i)] = S[j, o, u] (A B_u)[j, i]
        a, s = A[start:stop], S[start:stop]
        return torch.cat([s[:, :, u:u + 1] * (a @ B)[:, None, :] for u, B in enumerate(bases)],
                         dim=2).reshape((stop - start) * n_out, -1)

    g0 = torch.cat([(weight_decay * theta[u]) @ B for u, B in enumerate(bases)])
    v = _damped_newton(rows, N, n_out, sum(dims), R, g0, weight_decay, system, deadline)
    if v is None:
        return None
    steps, start = [], 0
    for B, dim in zip(bases, dims):
        steps.append(B @ v[start:start + dim])
        start += dim
    return torch.stack(steps)


def _moved(params: Params, layer: int, theta: torch.Tensor, bias: bool) -> Params:
    new = list(params)
    new[layer] = (theta[:, :-1], theta[:, -1]) if bias else (theta, None)
    return new


def _search(F, f0: float, step_lengths: tuple[float, ...], deadline: float | None) -> tuple[float, float, bool]:
    """The step length with the lowest ``F(a)`` below ``f0`` (``0.0``: none), ``F`` there, and whether the deadline
    ended the search early."""
    best_f, best_a = f0, 0.0
    for a in step_lengths:
        if _past(deadline):
            return best_f, best_a, True
        f = F(a)
        if f < best_f:
            best_f, best_a = f, a
        elif best_a:  # F rose again along the ray: the best length so far stays
            break
    return best_f, best_a, False


def layer_newton_step(arch: Architecture, params: Params, X: torch.Tensor, T: torch.Tensor, weight_decay: float,
                      layer: int, *, pin_tol: float = PIN_TOL, step_lengths: tuple[float, ...] = STEP_LENGTHS,
                      solve: str = "auto", deadline: float | None = None) -> tuple[Params, LayerStepInfo]:
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
    solve : {"auto", "normal", "woodbury"}
        The form of the Newton system (the same step up to rounding): ``"auto"`` the smaller one, the ``p × p``
        normal equations when the ``N·n_out`` outputs outnumber the layer's ``p`` free parameters, else the Woodbury
        identity on the ``N·n_out`` rows.
    deadline : float, optional
        ``time.perf_counter()`` seconds: the step is not started when its estimated cost exceeds the time left, and
        stops at the deadline (``info.out_of_time``) with the best length found by then.

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
    N, n_out = T.shape
    p = arch.sizes[layer + 1] * (arch.sizes[layer] + int(arch.bias))  # free parameters before any is pinned
    system = _system(N, n_out, p, solve)
    with torch.no_grad():
        f0 = float(objective(arch, params, X, T, weight_decay))
        seconds = _estimated_seconds(arch, N, p, system, time.perf_counter() - t0, len(step_lengths))
        if deadline is not None and time.perf_counter() + seconds > deadline:
            return params, LayerStepInfo(layer, 0.0, f0, f0, 0, time.perf_counter() - t0, "", True)
        out, pre, A, theta = _layer_data(arch, params, X, layer)
        z = pre[layer]
        if layer < arch.n_layers - 1:
            pinned = z.abs() <= pin_tol * max(1.0, float(z.abs().max()))
        else:  # the output layer: no piece of its own
            pinned = torch.zeros(z.shape, dtype=torch.bool, device=X.device)
        bases = _null_spaces(A, pinned)
        if solve == "auto":  # the pinned samples' constraints may have made the normal equations the smaller form
            system = _system(N, n_out, sum(B.shape[1] for B in bases), solve)
        step = _pinned_step(_output_jacobian(arch, params, pre, layer), A, out - T, theta, weight_decay, bases,
                            system, deadline)
        if step is None:
            return params, LayerStepInfo(layer, 0.0, f0, f0, int(pinned.sum()), time.perf_counter() - t0, "", True)
        best_f, best_a, cut = _search(
            lambda a: float(objective(arch, _moved(params, layer, theta + a * step, arch.bias), X, T, weight_decay)),
            f0, step_lengths, deadline)
    new = _moved(params, layer, theta + best_a * step, arch.bias) if best_a else params
    return new, LayerStepInfo(layer, best_a, f0, best_f, int(pinned.sum()), time.perf_counter() - t0, system, cut)


def _all_thetas(params: Params) -> list[torch.Tensor]:
    return [torch.cat([W, b[:, None]], dim=1) if b is not None else W for W, b in params]


def network_newton_step(arch: Architecture, params: Params, X: torch.Tensor, T: torch.Tensor, weight_decay: float,
                        damping: float, *, step_lengths: tuple[float, ...] = STEP_LENGTHS, solve: str = "auto",
                        deadline: float | None = None) -> tuple[Params, LayerStepInfo]:
    """One damped Gauss–Newton (Levenberg–Marquardt) step of every layer at once, its length searched on ``F``.

    On the current piece the outputs are multi-affine in the layers; the step minimises their linearisation's
    squared loss plus ``(λ + damping)/2 ‖δ‖²`` (``λ`` the weight decay's curvature), on the normal equations of
    all ``p`` parameters or the Woodbury identity on the ``N·n_out`` rows, whichever is smaller (``solve``, and
    ``deadline`` as in :func:`layer_newton_step`). ``params`` unchanged unless ``F`` decreases; ``info.layer`` is
    ``-1`` (every layer).
    """
    if arch.loss != "squared" or not weight_decay + damping > 0:
        raise InvalidInputError(f"network_newton_step: needs loss='squared' and weight_decay + damping > 0 (got "
                                f"loss={arch.loss!r}, weight_decay={weight_decay!r}, damping={damping!r}).")
    t0 = time.perf_counter()
    N, n_out = T.shape
    p = arch.n_params()
    system = _system(N, n_out, p, solve)
    with torch.no_grad():
        f0 = float(objective(arch, params, X, T, weight_decay))
        seconds = _estimated_seconds(arch, N, p, system, time.perf_counter() - t0, len(step_lengths))
        if deadline is not None and time.perf_counter() + seconds > deadline:
            return params, LayerStepInfo(-1, 0.0, f0, f0, 0, time.perf_counter() - t0, "", True)
        out, pre, inputs = forward(arch, params, X)
        thetas = _all_thetas(params)
        A = [torch.cat([a, torch.ones_like(a[:, :1])], dim=1) if arch.bias else a for a in inputs[:arch.n_layers]]
        S = [_output_jacobian(arch, params, pre, k) for k in range(arch.n_layers)]

        def rows(start: int, stop: int) -> torch.Tensor:  # J[j, o, (k, u, i)] = S_k[j, o, u] A_k[j, i]
            return torch.cat([(s[start:stop, :, :, None] * a[start:stop, None, None, :]).reshape((stop - start) * n_out,
                                                                                                  -1)
                              for s, a in zip(S, A)], dim=1)

        theta = torch.cat([t.reshape(-1) for t in thetas])
        step = _damped_newton(rows, N, n_out, p, out - T, weight_decay * theta, weight_decay + damping, system,
                              deadline)
        if step is None:
            return params, LayerStepInfo(-1, 0.0, f0, f0, 0, time.perf_counter() - t0, "", True)

        def moved(a: float) -> Params:
            new, start = [], 0
            for t in thetas:
                piece = (theta[start:start + t.numel()] + a * step[start:start + t.numel()]).reshape(t.shape)
                start += t.numel()
                new.append((piece[:, :-1], piece[:, -1]) if arch.bias else (piece, None))
            return new

        best_f, best_a, cut = _search(lambda a: float(objective(arch, moved(a), X, T, weight_decay)), f0,
                                      step_lengths, deadline)
        new = moved(best_a) if best_a else params
    return new, LayerStepInfo(-1, best_a, f0, best_f, 0, time.perf_counter() - t0, system, cut)


__all__ = ["CHUNK_ELEMENTS", "LayerStepInfo", "PIN_TOL", "SOLVES", "STEP_LENGTHS", "layer_newton_step",
           "network_newton_step"]
