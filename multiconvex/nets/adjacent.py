"""A unit block's gap over *every* piece adjacent to a point: one-sided slopes at the kinks and a proven bound.

A unit block ``θ ∈ R^c`` (unit ``u`` of hidden layer ``k``: its weight row with its bias) moves each sample's data
loss only through the scalar ``t_i = ã_iᵀd`` (``ã_i`` the unit's inputs with a 1, ``d = θ − θ⁰``). When ``k ≥ 2``
samples sit on a kink that depends on the block (the unit's own ``z_iu ≈ 0``, or a later hidden unit's ``z_ij ≈ 0``
that the block moves), the point lies in up to ``2^k`` pieces of the block, and the certificate's two exact solves
(the own piece and the neighbouring piece with every boundary unit flipped) check two of them. This module bounds
the gap over all of them.

**The bound.** Forward-mode through the layers after ``k`` on each side of ``t_i = 0`` (on the side ``t > 0`` a
boundary entry's side is the sign of its own ``δz``, nested entries included) gives each sample's output slopes
``v_i⁺``, ``v_i⁻``, hence its one-sided slopes ``c_i^± = ∇ℓ(f_i)ᵀv_i^±/N`` and curvatures ``m_i⁺``, ``m_i⁻ ≥ 0``
(:mod:`multiconvex.nets.adjacent_terms`). On a piece ``σ`` containing the point, every boundary sample keeps one
side (``σ_i t_i ≥ 0``) and its loss is ``ℓ(f_i + v_i^{σ_i} t_i)/N``, convex in ``t_i`` (a convex loss of an affine
map). Squared loss is exactly quadratic there: ``ℓ(f_i) + c_i^{σ_i}t_i + ½m_i^{σ_i}t_i²`` with ``m = ‖v‖²/N``
(``∇ℓ(f) = f − y``). For a logistic or softmax loss the gradient inequality gives ``ℓ(f_i + v t) ≥ ℓ(f_i) +
∇ℓ(f_i)ᵀv t``: the same model with ``m_i = 0``, the only curvature valid for every step of a general convex loss
(its second derivative along a ray falls to 0 far out), so ``P = λI`` (this first-order bound is ``½‖r‖²/λ``:
the smaller the weight decay, the looser; where it is above the tolerance, :mod:`~multiconvex.nets.adjacent_smooth`
takes each one-piece sample's tangent at a trial step instead of at the point, which makes the bound exact at the
minimum of a block without kinks whatever ``λ``, and tighter with them). Either way, for any ``α`` with
``α_i ≤ c_i⁺`` where ``σ_i = +`` and ``α_i ≥ c_i⁻`` where ``σ_i = −``::

    F_σ(θ⁰ + d) ≥ F(θ⁰) + rᵀd + ½ dᵀP d ≥ F(θ⁰) − ½ rᵀP⁻¹r,    r = g + Σ_{i∈B} α_i ã_i,

with ``g = λθ⁰ + Σ_{i∉B} c_i ã_i`` and ``P = λI + Σ_{i∉B} m_i ã_iã_iᵀ + Σ_{i∈B} min(m_i⁺, m_i⁻) ã_iã_iᵀ``. A convex
kink (``c_i⁻ ≤ c_i⁺``) takes ``α_i ∈ [c_i⁻, c_i⁺]``, which serves both sides; the ``K`` concave kinks
(``c_i⁻ > c_i⁺``) are enumerated side by side (``2^K`` bounded least-squares problems on ``L⁻¹[ã_i]``, ``L`` the
Cholesky factor of ``P``) up to :data:`MAX_CONCAVE`; above it one ``α`` with each concave ``α_i`` at its interval's
midpoint, plus the triangle-inequality term ``Σ_i ½(c_i⁻ − c_i⁺) ‖L⁻¹ã_i‖``. Any ``α`` in the box gives a valid
bound (the bounded least squares only make it tight), so the value is evaluated at the ``α`` found, clipped to its
box. Then ``max_σ (F(θ⁰) − min F_σ) ≤ bound``. A first, cheap bound takes one ``α`` (least squares clipped to the
box, concave kinks at their midpoints, plus the triangle term); a caller that only asks whether the gap is ``≤ tol``
gets it when it is (:meth:`UnitKinks.bound`). The bounded least squares run BVLS, and L-BFGS-B from its point as
well when BVLS ends above ``tol`` (BVLS can stop far from the optimum when there are more kinks than weights).

**What a positive bound means.** With the sides enumerated and each bounded least squares at its optimum, the bound
is ``−min`` of the lower model ``gᵀd + Σ_i ψ_i(t_i) + ½dᵀPd`` over the worst side's cone (its dual; ``ψ_i(t)`` is
``max(c_i⁺t, c_i⁻t)`` at a convex kink, ``c_i^{σ_i} t`` at a concave one), whose piecewise-linear part is the
one-sided derivative ``F'(θ⁰; d)``. So the bound is 0 exactly when no step along the block has a negative one-sided
derivative (a first-order local minimum along the block over every adjacent piece), and a positive bound comes with
the direction ``d* = −P⁻¹r*`` (:attr:`AdjacentBound.direction`) along which ``F'(θ⁰; d*) = −2·bound``: ``F`` falls
along the block (``tests/test_nets_adjacent.py`` and ``tests/test_nets_adjacent_smooth.py`` check both; with a
smooth loss the piecewise-linear part is the same one-sided derivative, ``∇ℓ`` being continuous, and the statement is
about the first-order bound, :attr:`AdjacentBound.first_order`, which the refinement may lower).

**Rounding.** Every value is an upper bound in exact arithmetic of the model whose data are the computed ``P``,
``g``, ``ã_i`` and slopes: ``g`` carries the radius of its sums, ``λ_min(P)`` has a proven floor (``λ − 2·lost``, or
Rump's shifted-Cholesky test), and the value at the ``α`` found is evaluated without taking the Cholesky factor
for exact (:meth:`~multiconvex.nets.adjacent_unit.UnitKinks._proven`, :mod:`multiconvex.rounding`).

**Singular P.** With weight decay 0 (a dead unit, say) ``P`` can be singular, or not provably positive definite;
then a side's lower model is bounded below only where ``r`` lies in ``P``'s range exactly, which floating point
cannot show unless ``r`` is 0 itself. The bound is then 0 where ``g`` is exactly 0 and ``α = 0`` is in every side's
box, else ``inf`` (not proven; the form reports ``F`` instead, as no block lowers ``F ≥ 0`` by more), never
``nan``.

**Entries off their kink.** Boundary entries are those within the boundary tolerance (``|z| ≤ BOUNDARY_TOL ·
max(1, max|z|)`` per layer, as :meth:`multiconvex.nets.piece_context.PieceContext.tol`). The model is built as if
they were exactly on their kink; a piece that flips an entry at ``0 < |z| ≤ tol`` is that piece's affine map
extended to the point, whose output differs from ``f`` by at most ``D_i``
(:func:`~multiconvex.nets.adjacent_terms.off_kink_terms`). So each such sample of a squared loss adds
``E_i = ‖f_i − y_i‖D_i/N`` to the bound (:attr:`UnitKinks.slack`) and narrows its slopes by ``κ_i = G D_i/N`` (``G``
bounds ``‖∂f/∂t‖``): the bound alone is a proof over the pieces defined by the true ``z``.
(The certificate's neighbouring-piece solve flips the entries within the tolerance as if on their kink and does
not pay this term; where this module answers ``None`` the two-piece claim, with that approximation, stands.)
For a logistic or softmax loss the gradient inequality at ``f_i`` pays the offset alone: ``E_i = ‖∇ℓ(f_i)‖D_i/N``
and ``κ_i = 0`` (:func:`multiconvex.nets.adjacent_terms.off_kink_terms`).

**Walls.** The model's minimum is over every step of the block; the pieces end at walls, and those of the samples
whose boundary entries the block does not move are the same on every adjacent piece. Where the bound is still above
the tolerance and such a wall is near the model's minimiser, :mod:`multiconvex.nets.adjacent_walls` takes them in by
their Lagrange multipliers (``gap ≤ eᵀν + bound(g + Wᵀν)`` for every ``ν ≥ 0``), which lowers ``bound`` only.

Leaky ReLU: the dead side has the negative slope. Unit blocks of every loss (squared, logistic, softmax); layer
blocks keep the two-piece claim (no bound).

This module builds each layer's lower models from the network (:func:`layer_kinks`: the one-sided slopes, the
curvatures, the samples off their kink, the walls); the model and its bound are :class:`UnitKinks` and
:class:`AdjacentBound` in :mod:`multiconvex.nets.adjacent_unit`.

Examples
--------
>>> import torch
>>> from multiconvex.nets import Architecture, forward, init_params
>>> arch = Architecture((2, 3, 1))
>>> params = init_params(arch, 0, torch.device("cpu"))
>>> X = torch.randn(20, 2, dtype=torch.float64); T = torch.randn(20, 1, dtype=torch.float64)
>>> _, pre, inputs = forward(arch, params, X)
>>> [b.bound for b in adjacent_bounds(arch, params, T, 0, pre, inputs, 1e-3)]  # no sample on a kink
[None, None, None]
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from ..errors import InvalidInputError
from ..rounding import gamma
from .adjacent_smooth import MAX_WORK, SmoothSamples
from .adjacent_terms import keeps_curvature, loss_gradient, off_kink_terms
from .adjacent_unit import MAX_CONCAVE, PER_SIDE_CONCAVE, AdjacentBound, UnitKinks
from .adjacent_walls import own_piece_walls
from .network import LOSSES, Architecture, Params, check_layer_units
from .piece_context import abs_stats, piece_sign, with_ones
from .torch_threads import one_torch_thread

#: Largest number of entries of one chunk's Jacobians (samples × later units × units).
CHUNK_ENTRIES = 262_144


def _jacobians(arch: Architecture, params: Params, pre: list[torch.Tensor], k: int, units: torch.Tensor,
               rows: torch.Tensor | slice, side: int, tols: list[float], checks: bool = False):
    """Forward-mode ``δf`` (n, n_out, g) of the units ``units`` of layer ``k`` at the samples ``rows``, per unit step
    ``δτ = 1`` on the side ``side`` (``+1``: ``t > 0``, ``−1``: ``t < 0``, ``0``: the point's own piece, ``δz = 1``).

    On a side, a boundary entry (``|z| ≤ tol``) takes the side of its own ``δz`` (the unit's own entry the side
    itself); an entry with ``δz = 0`` keeps the point's side (it does not move, so its slope multiplies 0). With
    ``checks``, also returns per (sample, unit): whether a later boundary entry moves (``δz ≠ 0``), whether every
    moving boundary entry's side agrees with the point's own piece, and whether it agrees with the flipped piece.
    """
    z0 = pre[k][rows][:, units]  # (n, g)
    own = piece_sign(z0)
    on_kink = z0.abs() <= tols[k]
    s = own if side == 0 else torch.where(on_kink, torch.full_like(own, float(side)), own)
    step = 1.0 if side == 0 else float(side)
    V = params[k + 1][0][:, units][None, :, :] * (arch.slope(0.5 * (s + 1)) * step)[:, None, :]
    moves = torch.zeros_like(on_kink)
    agree_own = ~on_kink | (own == step)  # the own entry moves by `step`
    agree_flip = ~on_kink | (-own == step)
    for j in range(k + 1, arch.n_layers - 1):
        zj = pre[j][rows]  # (n, n_j)
        sj = piece_sign(zj)[:, :, None]
        bj = (zj.abs() <= tols[j])[:, :, None]
        if side == 0:
            slope = arch.slope(0.5 * (sj + 1))
        else:
            sv = torch.where(bj & (V != 0), torch.sign(V), sj)
            slope = arch.slope(0.5 * (sv + 1))
            if checks:
                moving = bj & (V != 0)
                moves |= moving.any(dim=1)
                agree_own &= ~(moving & (torch.sign(V) != sj)).any(dim=1)
                agree_flip &= ~(moving & (torch.sign(V) != -sj)).any(dim=1)
        V = torch.matmul(params[j + 1][0], slope * V)
    if checks:
        return V, moves, agree_own, agree_flip
    return V


def adjacent_bounds(arch: Architecture, params: Params, T: torch.Tensor, layer: int, pre: list[torch.Tensor],
                    inputs: list[torch.Tensor], weight_decay: float, units: list[int] | None = None, *,
                    tol: float | None = None, max_concave: int = MAX_CONCAVE) -> list[AdjacentBound]:
    """The adjacent-piece gap bound of the unit blocks ``units`` (default: all) of ``layer`` at a point.

    Parameters
    ----------
    arch : Architecture
        Any loss: squared (the model keeps the curvature ``‖δf‖²/N``), logistic or softmax (a linear model per
        sample, ``P = λI``).
    params : Params
        The point's weights (torch).
    T : torch.Tensor
        Targets ``(N, n_out)``, encoded as :func:`multiconvex.nets.network.encode_targets` does.
    layer : int
        The layer ``k`` (0-based) of the units; the output layer has no kinks (every bound ``None``).
    pre, inputs : list of torch.Tensor
        The point's forward pass (:func:`multiconvex.nets.network.forward`).
    weight_decay : float
        ``λ``.
    units : list of int, optional
    tol : float, optional
        A bound ``≤ tol`` is returned without the bounded least squares (it decides a certificate already).
    max_concave : int
        Up to this many concave kinks the sides are enumerated exactly (``2^K`` bounded least squares).

    Returns
    -------
    list of AdjacentBound
        One per unit, in the order of ``units``.

    Examples
    --------
    >>> import torch
    >>> from multiconvex.nets import Architecture, forward, init_params
    >>> arch = Architecture((2, 3, 1))
    >>> params = init_params(arch, 0, torch.device("cpu"))
    >>> X = torch.randn(20, 2, dtype=torch.float64); T = torch.randn(20, 1, dtype=torch.float64)
    >>> a = torch.cat([X[:2], torch.ones(2, 1, dtype=X.dtype)], dim=1)
    >>> th = torch.linalg.cross(a[0], a[1])  # samples 0 and 1 exactly on unit 0's kink
    >>> params[0][0][0], params[0][1][0] = th[:2], th[2]
    >>> _, pre, inputs = forward(arch, params, X)
    >>> b = adjacent_bounds(arch, params, T, 0, pre, inputs, 1e-3)[0]
    >>> b.n_kinks, b.bound >= 0
    (2, True)
    """
    check_layer_units(arch, layer, units, where="adjacent_bounds")
    kinks = layer_kinks(arch, params, T, layer, pre, inputs, weight_decay, units)
    return [AdjacentBound(None) if kk is None else kk.bound(tol, max_concave) for kk in kinks]


def layer_kinks(arch: Architecture, params: Params, T: torch.Tensor, layer: int, pre: list[torch.Tensor],
                inputs: list[torch.Tensor], weight_decay: float, units: list[int] | None = None
                ) -> list[UnitKinks | None]:
    """Each unit block's :class:`UnitKinks` (``None`` where the own and the neighbouring piece are every piece
    containing the point); the arguments as :func:`adjacent_bounds`."""
    if arch.loss not in LOSSES:
        raise InvalidInputError(f"adjacent_bounds: arch.loss={arch.loss!r}; use one of {LOSSES}")
    n_k = arch.sizes[layer + 1]
    sel = list(range(n_k)) if units is None else [int(u) for u in units]
    if layer >= arch.n_layers - 1 or not sel or pre[layer].shape[0] == 0:
        return [None for _ in sel]
    with torch.no_grad(), one_torch_thread(T.device, T.shape[0] * max(arch.sizes)):  # small tensors: torch_threads
        return _layer_kinks(arch, params, T, layer, pre, inputs, float(weight_decay), sel)


def _layer_kinks(arch: Architecture, params: Params, T: torch.Tensor, k: int, pre: list[torch.Tensor],
                 inputs: list[torch.Tensor], lam: float, sel: list[int]) -> list[UnitKinks | None]:
    """:func:`layer_kinks` for a hidden layer with samples."""
    N = pre[k].shape[0]
    dev = pre[k].device
    tols = [abs_stats(pre[j]).tol() for j in range(arch.n_layers - 1)]  # as PieceContext.tol
    idx = torch.as_tensor(sel, device=dev, dtype=torch.long)
    own_kink = pre[k][:, idx].abs() <= tols[k]  # (N, g)
    later = torch.zeros(N, dtype=torch.bool, device=dev)
    for j in range(k + 1, arch.n_layers - 1):
        later |= abs_stats(pre[j]).row_min <= tols[j]
    cand = own_kink | later[:, None]  # (N, g): samples where a boundary entry may depend on the unit
    rows = torch.nonzero(cand.any(dim=1)).squeeze(1)
    out: list[UnitKinks | None] = [None for _ in sel]
    if rows.numel() == 0:
        return out
    resid = loss_gradient(arch, pre[-1], T)  # ∇ℓ(f) per sample (squared: f − t)
    curved = keeps_curvature(arch)  # squared loss: each sample's exact curvature ‖δf‖²/N; else 0 (a linear model)
    width = max(arch.sizes[k + 2:])  # the Jacobians' middle axis: the layers after k (their output included)
    step = max(1, CHUNK_ENTRIES // max(1, width * len(sel)))
    sides = {}
    for side in (1, -1):
        parts = []
        for s in range(0, int(rows.numel()), step):  # chunks of samples: memory stays at CHUNK_ENTRIES per pass
            sl = rows[s:s + step]
            V, moves, agree_own, agree_flip = _jacobians(arch, params, pre, k, idx, sl, side, tols, checks=True)
            c = side * (V * resid[sl][:, :, None]).sum(dim=1) / N  # dφ/dt on that side, (n, g)
            parts.append((c, (V * V).sum(dim=1) / N if curved else torch.zeros_like(c), moves, agree_own,
                          agree_flip))
        sides[side] = tuple(torch.cat(t) for t in zip(*parts))
    (cp, mp, mv_p, own_p, flip_p), (cm, mm, mv_m, own_m, flip_m) = sides[1], sides[-1]
    cand_s = cand[rows]
    depends = cand_s & (own_kink[rows] | mv_p | mv_m)  # a boundary entry that the unit moves
    kink = cand_s & ((cp != cm) | (mp != mm))
    two_sides = (own_p & flip_m) | (own_m & flip_p)  # the own and the neighbouring piece are its two sides
    n_dep = depends.sum(dim=0)
    need = [n for n in range(len(sel)) if int(n_dep[n]) > 1
            or int(n_dep[n]) == 1 and not bool(two_sides[depends[:, n], n].all())]
    if not need:
        return out
    at = with_ones(inputs[k]) if arch.bias else inputs[k]
    need_t = torch.as_tensor(need, device=dev, dtype=torch.long)
    g_idx = idx[need_t]
    cols = at.shape[1]
    P = torch.zeros(len(need), cols, cols, dtype=at.dtype, device=dev)
    g = torch.zeros(len(need), cols, dtype=at.dtype, device=dev)
    # the samples with a candidate: a candidate's curvature is the smaller side's and its slope goes to g only where
    # both sides agree; elsewhere the side t > 0 is the own piece (no boundary entry: the same numbers)
    here = cand_s[:, need_t]
    cp_n, cm_n, mp_n, mm_n = (t[:, need_t] for t in (cp, cm, mp, mm))
    slack, kappa = off_kink_terms(arch, params, pre, resid, k, g_idx, rows, tols, N)
    slack, kappa = (torch.where(depends[:, need_t], t, torch.zeros_like(t)) for t in (slack, kappa))
    boxed = here & ((cp_n != cm_n) | (kappa > 0))  # α in a box (its slopes differ, or an entry is off its kink)
    m = torch.where(here, torch.minimum(mp_n, mm_n), mp_n)
    c = torch.where(boxed, torch.zeros_like(cp_n), cp_n)
    A = at[rows]
    P += (A.T[None, :, :] * m.T[:, None, :]) @ A
    g += c.T @ A
    g_abs = c.abs().T @ A.abs()  # the terms' magnitudes, for g's rounding
    # every other sample on the point's own piece: its slopes and curvatures per chunk of Jacobians (samples ×
    # `need` are small), then P and g at once (one GEMM per unit, not one per chunk into every unit's P)
    others = torch.nonzero(~cand.any(dim=1)).squeeze(1)
    step = max(1, CHUNK_ENTRIES // max(1, width * len(need)))
    c_parts, m_parts = [], []
    for s in range(0, int(others.numel()), step):
        sl = others[s:s + step]
        V = _jacobians(arch, params, pre, k, g_idx, sl, 0, tols)
        c_parts.append((V * resid[sl][:, :, None]).sum(dim=1) / N)  # (n, g')
        m_parts.append((V * V).sum(dim=1) / N if curved else torch.zeros_like(c_parts[-1]))
    if c_parts:
        c, m = torch.cat(c_parts), torch.cat(m_parts)
        A = at[others]
        g += c.T @ A
        g_abs += c.abs().T @ A.abs()
        for n_pos in range(len(need)):
            P[n_pos] += (A.T * m[:, n_pos]) @ A
    W, bias = params[k]
    theta0 = torch.cat([W[g_idx]] + ([bias[g_idx, None]] if bias is not None else []), dim=1)
    g += lam * theta0
    g_abs += lam * theta0.abs()
    P_np = P.cpu().numpy()
    P_np = 0.5 * (P_np + P_np.transpose(0, 2, 1))
    # P's sums carry rounding: each entry within γ_{N+c+1}·(largest diagonal entry), so ‖ΔP‖₂ is within c times that.
    # The model takes that much less curvature (a lower model still), and λ_min(P) ≥ λ − 2·lost is proven (its floor);
    # where that is not above 0 the bound proves its own floor or is not proven (an audit's instance, λ 1e-3 lost
    # against data curvature 2.5e13, had a false certificate)
    lost = gamma(N + cols + 1) * cols * np.abs(np.diagonal(P_np, axis1=1, axis2=2)).max(axis=1, initial=0.0)
    P_np[:, np.arange(cols), np.arange(cols)] += (lam - lost)[:, None]
    floors = np.maximum(lam - 2.0 * lost, 0.0) * (1.0 - gamma(2))
    # g's sums: at most N products and three additions per entry
    g_radius = (gamma(N + 3) * (1.0 + gamma(N + 5)) * g_abs).cpu().numpy()
    g_np = g.cpu().numpy()
    at_np = at.cpu().numpy()
    rows_np = rows.cpu().numpy()
    kink_np = kink.cpu().numpy()
    cp_np, cm_np = cp_n.cpu().numpy(), cm_n.cpu().numpy()
    boxed_np, kappa_np = boxed.cpu().numpy(), kappa.cpu().numpy()
    slack_sum = slack.cpu().numpy().sum(axis=0) * (1.0 + gamma(N + 2))  # rounded up (each term is: off_kink_terms)
    refine = not curved and lam > 0  # a smooth loss: the conjugate refinement (P = λI must be positive definite)
    for n_pos, n in enumerate(need):
        ks = np.nonzero(boxed_np[:, n_pos])[0]  # α in a box, shrunk by κ where an entry is off its kink
        kp = kappa_np[ks, n_pos]
        # the samples with one piece along the block: not a candidate (no boundary entry the unit may move), or a
        # candidate among `rows` whose boundary entries the unit does not move (its slopes on both sides are its own
        # piece's) and whose slope is not boxed; every adjacent piece shares their piece rows
        one = ~cand[:, n]
        one[rows] |= ~depends[:, n] & ~boxed[:, n_pos]
        smooth = (functools.partial(_smooth_samples, arch, params, pre, T, at, k, g_idx[n_pos:n_pos + 1], one, tols, N,
                                    P_np[n_pos]) if refine else None)
        walls = functools.partial(own_piece_walls, arch, params, T, pre, inputs, k, int(g_idx[n_pos]), one)
        out[n] = UnitKinks(P_np[n_pos], g_np[n_pos], at_np[rows_np[ks]], cp_np[ks, n_pos] - kp,
                           cm_np[ks, n_pos] + kp, int(kink_np[:, n].sum()), float(slack_sum[n_pos]), smooth,
                           walls, g_radius=g_radius[n_pos], floor=float(floors[n_pos]))
    return out


def _smooth_samples(arch: Architecture, params: Params, pre: list[torch.Tensor], T: torch.Tensor, at: torch.Tensor,
                    k: int, unit: torch.Tensor, one: torch.Tensor, tols: list[float], N: int,
                    P: np.ndarray) -> SmoothSamples | None:
    """The :class:`~multiconvex.nets.adjacent_smooth.SmoothSamples` of one unit block of a smooth loss: the samples
    ``one`` (``(N,)`` bool) with one piece along the block, with their output slopes on the point's own piece.
    Built when the refinement is first asked for (most bounds decide without it); ``None`` above
    :data:`~multiconvex.nets.adjacent_smooth.MAX_WORK` or where the Hessian at the point has no Cholesky factor."""
    idx = torch.nonzero(one).squeeze(1)
    if idx.numel() * at.shape[1] ** 2 > MAX_WORK:
        return None
    with torch.no_grad(), one_torch_thread(T.device, idx.numel() * max(arch.sizes)):
        V = _jacobians(arch, params, pre, k, unit, idx, 0, tols)[:, :, 0]  # (n, n_out)
        try:
            return SmoothSamples.build(arch.loss, pre[-1][idx], T[idx], V, at[idx].cpu().numpy(), N, P)
        except (np.linalg.LinAlgError, ValueError):  # no Cholesky factor (λ at rounding, data not finite)
            return None


__all__ = ["AdjacentBound", "MAX_CONCAVE", "PER_SIDE_CONCAVE", "UnitKinks", "adjacent_bounds", "layer_kinks"]
