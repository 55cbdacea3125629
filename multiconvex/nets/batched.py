"""Every unit block of a layer at once: Grams, linear terms and per-sample intervals as stacked tensors.

A unit block is one row of ``W_k`` with its bias, ``θ_u ∈ R^c`` (``c = n_{k-1} + 1``). On the
cross-section and piece of a point, everything after unit ``u`` is affine in its own
pre-activation ``z_u = θ_u · ã_i`` (``ã_i = [a_{k-1,i}; 1]``), with forward-mode Jacobians
``V_j[i, :, u]`` that are columns of the layer's Jacobians ``V_j`` (``N × n_j × n_k``): one batched
product per later layer serves every unit of the layer (THEORY §1; the per-block version is
:func:`multiconvex.nets.blocks.block_data`). From them, for every unit ``u`` at once:

* the Gram ``Σ_i ‖V_L[i, :, u]‖² ã_i ã_iᵀ`` and the linear term of the squared loss;
* the piece as **one interval per sample** on the unit's pre-activation ``z_iu``: its own row
  (``z ≥ 0`` alive, ``≤ 0`` dead) and every later row ``s_j z_j ≥ 0``, ``z_j = z_j⁰ + V_j (z_u − z_u⁰)``,
  collapse to ``L_iu ≤ z_iu ≤ U_iu`` (on the rows ``ã_i`` that every unit of the layer shares; in
  the sign-folded form of :func:`multiconvex.nets.subproblems.piece_rows` through
  :attr:`UnitBatch.lower`/:attr:`UnitBatch.upper`). The bounds are written as ``z⁰ − slack/β`` with
  ``slack = s_j z_j⁰ ≥ 0`` on the point's own piece, so the point is inside its own intervals exactly
  (no rounding can make its own piece look empty).

The same data for the neighbouring piece across a boundary (``flip_boundary``) flips the sign of
every constrained unit with ``z ≈ 0`` (:func:`multiconvex.nets.network.boundary_mask`) that the
block can move; flipping every unit of layer ``k`` at once equals flipping each unit's own,
because unit ``u``'s data reads only column ``u`` of layer ``k``'s pattern. When the own piece's batch of
the same units at the same point was built first (a Gauss–Seidel step, a certifying pass), the neighbour's
is derived from it: only the samples where a flipped unit lies (:func:`_flipped_samples`) are rebuilt on
the neighbouring piece, their terms replace the own piece's in the Gram and the linear term, and their
intervals replace the own piece's rows (equal to a full build to rounding).

A Gauss–Seidel step builds one unit: its columns of the layer's tensors are read through slices (views, no
gathered copies; :func:`unit_columns`), and a ReLU unit on its own piece builds its later layers' rows and terms
from the samples where it is alive only (:func:`_alive_rows_terms`; where it is dead it moves no later unit).
Both give the full build's numbers to the last bit. What every unit block at one point shares (signs, slopes
and slacks of the later layers, ``|z|`` and its reductions, ``[a, 1]``, the boundary flags) is computed once per
point in :mod:`multiconvex.nets.piece_context` (re-exported here).

Work is chunked over samples (sums over samples, intervals per sample), so memory stays at
``chunk · Σ_j n_j · g`` entries; everything runs on the tensors' device (CPU or CUDA).

Examples
--------
>>> import torch
>>> from multiconvex.nets import Architecture, forward, init_params
>>> arch = Architecture((2, 3, 1))
>>> params = init_params(arch, 0, torch.device("cpu"))
>>> X = torch.randn(20, 2, dtype=torch.float64); T = torch.randn(20, 1, dtype=torch.float64)
>>> _, pre, inputs = forward(arch, params, X)
>>> batch = unit_batch(arch, params, T, 0, pre, inputs)
>>> batch.gram.shape, batch.lower.shape, bool((batch.lower <= batch.w0.T).all())
(torch.Size([3, 3, 3]), torch.Size([3, 20]), True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InvalidInputError
from .network import Architecture, Params, check_layer_units
from .piece_context import AbsStats, PieceContext, _own_side, abs_stats, boundary_units, piece_context, with_ones
from .torch_threads import one_torch_thread

#: Largest number of entries of one chunk's Jacobians ``V_j`` (samples × units × later units).
CHUNK_ENTRIES = 131_072  # ~1 MiB of float64: a chunk's passes stay in cache


@dataclass
class UnitBatch:
    """The unit blocks ``units`` of layer ``layer`` at one point (torch, float64, on the point's device).

    Attributes
    ----------
    theta0 : (g, c)
        Each unit's weight row with its bias appended (the block's variables at the point).
    gram, lin : (g, c, c), (g, c)
        Squared loss: ``½‖f(θ_u) − t‖²`` summed over samples is ``½θᵀ gram θ − linᵀθ + const``. Empty,
        (g, 0, 0) and (g, 0), for a batch built with ``gram=False`` (:attr:`has_gram`).
    inputs : (N, c)
        ``ã``: the layer's inputs with a column of ones (shared by every unit's rows).
    sign : (N, g) or None
        Each unit's own sign ``s = ±1`` on the piece (``None`` for the output layer: no piece rows).
    zlo, zhi : (g, N) or None
        The piece as intervals on each unit's pre-activation ``z_i = ã_i · θ_u`` (its own row and every later
        row; ``∓inf`` where a side is free). :attr:`lower`, :attr:`upper` give them on ``w = s z``.
    z0 : (N, g)
        ``z`` at the point.
    parts : SampleParts or None
        The per-sample terms the sums were made of (own piece only, when small enough to keep): the
        neighbouring piece's batch is this one with the boundary samples' terms replaced
        (:func:`unit_batch` with ``flip_boundary``).
    source : (UnitBatch, positions) or None
        For a neighbouring piece derived that way: the own piece's batch and the positions of these units in it.
    active : int8 array (g, N) or None
        After an exact solve (:func:`multiconvex.nets.unit_blocks.solve_units`): each unit's final working set
        (``-1`` lower, ``1`` upper side), a warm start for the neighbouring piece's solve.
    neighbour : bool
        Whether this is the neighbouring piece across a boundary (``flip_boundary``), which may be empty, rather
        than the point's own piece, which contains the point.
    """

    layer: int
    units: torch.Tensor
    theta0: torch.Tensor
    gram: torch.Tensor
    lin: torch.Tensor
    inputs: torch.Tensor
    sign: torch.Tensor | None
    zlo: torch.Tensor | None
    zhi: torch.Tensor | None
    z0: torch.Tensor
    parts: SampleParts | None = None
    source: tuple[UnitBatch, torch.Tensor | None] | None = None
    active: np.ndarray | None = None
    neighbour: bool = False

    @property
    def has_gram(self) -> bool:
        """Whether :attr:`gram` and :attr:`lin` were built (``unit_batch(..., gram=True)``)."""
        return self.gram.shape[-1] > 0

    @property
    def size(self) -> int:
        return int(self.units.numel())

    def own_rows(self, i: int) -> torch.Tensor:
        """Unit ``i``'s (position in the batch) rows ``s_j ã_j`` (N, c): ``w = rows @ θ``."""
        assert self.sign is not None
        return self.sign[:, i, None] * self.inputs

    def z_bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The intervals on ``z = ã · θ`` (the rows are then ``ã``, shared by every unit), (g, N)."""
        assert self.zlo is not None and self.zhi is not None
        return self.zlo, self.zhi

    @property
    def w0(self) -> torch.Tensor:
        """``w = s z`` at the point, (N, g) (``z`` for the output layer)."""
        return self.sign * self.z0 if self.sign is not None else self.z0

    @property
    def lower(self) -> torch.Tensor | None:
        """The piece as ``lower ≤ w ≤ upper`` on ``w_i = s_i ã_i · θ_u`` (the rows of
        :func:`multiconvex.nets.subproblems.piece_rows`), (g, N); ``None`` for the output layer."""
        if self.sign is None or self.zlo is None or self.zhi is None:
            return None
        return torch.where(self.sign.T > 0, self.zlo, -self.zhi)

    @property
    def upper(self) -> torch.Tensor | None:
        """See :attr:`lower` (``inf`` where free)."""
        if self.sign is None or self.zlo is None or self.zhi is None:
            return None
        return torch.where(self.sign.T > 0, self.zhi, -self.zlo)


@dataclass
class SampleParts:
    """Per-sample terms of a :class:`UnitBatch` (N, g): ``m = ‖V_L[i, :, u]‖²`` (the Gram is ``Σ_i m_i ã_i ã_iᵀ``),
    ``beta`` (the linear term is ``Σ_i beta_i ã_i``), and the later rows' intervals ``lz ≤ z ≤ uz`` (``None``
    without later hidden layers); ``params`` is the point's parameter list they were built from."""

    m: torch.Tensor
    beta: torch.Tensor
    lz: torch.Tensor | None
    uz: torch.Tensor | None
    params: Params


#: Largest ``N · g`` for which a batch keeps its :class:`SampleParts` (four such tensors: 16 MiB at most; a point's
#: own-piece context keeps the last batch of each layer).
PARTS_ENTRIES = 500_000

def _later_intervals(ctx: PieceContext, j: int, sl: slice, V: torch.Tensor, z0: torch.Tensor):
    """The rows ``s_j z_j ≥ 0`` of the later layer ``j`` (samples ``sl``), ``z_j = z_j⁰ + V (z − z⁰)``, as
    ``lower ≤ z ≤ upper`` (n, g).

    With ``β = s_j V``: ``z ≥ z⁰ − slack/β`` where ``β > 0``, ``z ≤ z⁰ − slack/β`` where ``β < 0``. When every
    slack is ≥ 0 (the point's own piece) the bounds come from the extreme ratios ``β/slack`` (four passes
    over the ``n × n_j × g`` Jacobian); otherwise (a flipped piece) from ``slack/β`` directly.

    A row with ``β = 0`` does not involve the block: on the point's own piece its slack is ≥ 0. On the
    neighbouring piece a flipped boundary unit's slack is ``−|z| ≈ 0``; such a row (the block cannot move it)
    is left out: the neighbouring piece taken is the one where the units that do not depend on the block
    keep their side (the point lies on both sides of each boundary unit, so that piece contains it too,
    and the unit's slope does not enter the block's Jacobians at that sample, where ``V = 0``).
    """
    sign, _, inv = ctx.parts(j)
    if inv is not None:
        rho = V * inv[sl][:, :, None]
        if ctx._zero_slack[j]:
            rho = torch.nan_to_num(rho, nan=0.0, posinf=torch.inf, neginf=-torch.inf)
        lo, hi = torch.aminmax(rho, dim=1)  # (n, g): one pass, the same numbers as amin and amax
        # 1/x as x.reciprocal(): what ``1.0 / x`` computes (torch's reciprocal times 1.0), one operation fewer
        lower = torch.where(hi > 0, z0 - hi.reciprocal(), -torch.inf)
        upper = torch.where(lo < 0, z0 - lo.reciprocal(), torch.inf)
        return lower, upper
    slack = ctx.slack(j)[sl]
    beta = sign[sl][:, :, None] * V
    t = slack[:, :, None] / beta  # inf/nan where β = 0: masked
    lower = z0 - torch.where(beta > 0, t, torch.inf).amin(dim=1)
    upper = z0 - torch.where(beta < 0, t, -torch.inf).amax(dim=1)
    return lower, upper


Cols = torch.Tensor | slice  # units of a layer: an index tensor, or a slice (a view, no gather) when contiguous


def unit_columns(units: torch.Tensor | list[int] | None, n: int) -> slice | None:
    """``units`` (of a layer of ``n`` units) as a slice when they are a contiguous ascending run (every unit for
    ``None``), else ``None``: indexing with it gives views instead of gathered copies (the same numbers)."""
    if units is None:
        return slice(0, n)
    if isinstance(units, torch.Tensor):
        if units.numel() != 1:
            return None
        u = int(units)
        return slice(u, u + 1)
    us = list(units)
    if us and us == list(range(int(us[0]), int(us[0]) + len(us))):
        return slice(int(us[0]), int(us[0]) + len(us))
    return None


def _sample_terms(ctx: PieceContext, params: Params, k: int, idx: Cols, sl: slice, z0: torch.Tensor,
                  own_slope: torch.Tensor | None):
    """The per-sample terms of the samples ``sl`` (see :class:`SampleParts`): ``(m, beta, lz, uz)``, (n, g)
    each (``lz``/``uz`` ``None`` without later hidden layers). ``z0`` are those samples' own pre-activations."""
    L = ctx.arch.n_layers
    lz = uz = None
    if own_slope is not None and k + 1 < L - 1 and not ctx.flip and own_slope.shape[1] == 1 \
            and ctx.arch.negative_slope == 0 and ctx.pre is ctx._scale_pre:  # (not a context over some samples)
        alive = _alive_rows_terms(ctx, params, k, idx, sl, z0, own_slope)
        if alive is not None:
            return alive
    if own_slope is not None:
        V = params[k + 1][0][:, idx][None, :, :] * own_slope[:, None, :]  # (n, n_{k+1}, g)
        for j in range(k + 1, L - 1):  # later hidden layers: their rows collapse to intervals on z
            lo, up = _later_intervals(ctx, j, sl, V, z0)
            lz, uz = (lo, up) if lz is None or uz is None else (torch.maximum(lz, lo), torch.minimum(uz, up))
            V = torch.matmul(params[j + 1][0], V.mul_(ctx.parts(j)[1][sl][:, :, None]))  # V is ours: in place
    else:
        g = z0.shape[1]
        out = idx if isinstance(idx, torch.Tensor) else torch.arange(ctx.arch.sizes[-1], device=z0.device)[idx]
        V = torch.zeros(z0.shape[0], ctx.arch.sizes[-1], g, dtype=z0.dtype, device=z0.device)
        V[:, out, torch.arange(g, device=z0.device)] = 1.0
    m = (V * V).sum(dim=1)  # (n, g): ‖V_L[i, :, u]‖²
    beta = (V * ctx.resid[sl][:, :, None]).sum(dim=1) + m * z0  # Σ_o V (t − f + V z⁰)
    return m, beta, lz, uz


#: :func:`_alive_rows_terms` works on the samples where the unit is alive when they are at most this share.
ALIVE_SHARE = 0.75


def _alive_rows_terms(ctx: PieceContext, params: Params, k: int, idx: Cols, sl: slice,
                      z0: torch.Tensor, own_slope: torch.Tensor):
    """:func:`_sample_terms` of one ReLU unit on its own piece from the samples where it is alive only (``None`` when
    they are more than :data:`ALIVE_SHARE` of ``sl``). Where the unit is dead its slope is 0: the block moves no
    later unit there (``V = 0``), so those samples have no later rows (``∓inf``) and ``m = beta = 0``; the alive
    samples' terms are computed row by row exactly as over all samples, so the result is the same to the last bit,
    without the later layers' signs, slopes and ratios at the dead samples."""
    n = z0.shape[0]
    rows = torch.nonzero(own_slope[:, 0]).squeeze(1)
    if rows.numel() > ALIVE_SHARE * n:
        return None
    start = sl.start or 0
    sub = _rows_context(ctx, k, rows + start if start else rows)
    # m, beta, lz, uz as the rows of one tensor: 0, 0, −inf, inf where dead, the alive samples' terms written at once
    out = z0.new_zeros(4, n, 1)
    out[2].fill_(-torch.inf)
    out[3].fill_(torch.inf)
    if rows.numel():
        ms, bs, ls, us = _sample_terms(sub, params, k, idx, slice(None), z0[rows], own_slope[rows])
        assert ls is not None and us is not None  # later hidden layers: the caller checked
        out[:, rows] = torch.stack([ms, bs, ls, us])
    return out[0], out[1], out[2], out[3]


def _rows_context(ctx: PieceContext, k: int, rows: torch.Tensor) -> PieceContext:
    """``ctx`` (same side) over the samples ``rows`` for the terms of layer ``k``'s units: the later hidden layers'
    pre-activations and the residual at those samples only (gathered once); the point's tolerances. The other
    layers' tensors are the point's, left whole: a unit's terms do not read them (its own pre-activations and slopes
    are passed in, the residual stands in for the output layer)."""
    last = ctx.arch.n_layers - 1
    sub = PieceContext(ctx.arch, None, [p[rows] if k < j < last else p for j, p in enumerate(ctx.pre)], ctx._inputs,
                       ctx.flip, scale_pre=ctx.pre, resid=ctx.resid[rows], rows=rows)
    sub._tol = ctx._tol  # the whole point's tolerances, computed once
    return sub


def _with_own_rows(sign: torch.Tensor | None, lz: torch.Tensor | None, uz: torch.Tensor | None):
    """The intervals ``(zlo, zhi)`` (g, N) with each unit's own row: ``z ≥ 0`` where alive (s = 1), ``≤ 0`` where
    dead; ``(None, None)`` for the output layer."""
    if sign is None:
        return None, None
    if lz is None or uz is None:  # no later rows: the own row alone
        side = sign.T * torch.inf  # +inf alive, −inf dead
        return side.clamp_max(0.0), side.clamp_min(0.0)
    lzT, uzT, pos = lz.T, uz.T, sign.T > 0
    return torch.where(pos, lzT.clamp_min(0.0), lzT), torch.where(pos, uzT, uzT.clamp_max(0.0))


def unit_batch(arch: Architecture, params: Params, T: torch.Tensor, layer: int, pre: list[torch.Tensor],
               inputs: list[torch.Tensor], units: torch.Tensor | list[int] | None = None, *,
               flip_boundary: bool = False, chunk_entries: int = CHUNK_ENTRIES,
               context: PieceContext | None = None, gram: bool = True) -> UnitBatch:
    """The unit blocks ``units`` (default: all) of ``layer`` at the point whose forward pass gave ``pre``, ``inputs``.

    Squared loss only (the Gram form). ``flip_boundary`` builds the neighbouring piece across a boundary;
    ``context`` is that point's :func:`piece_context` for that side when the caller keeps it (it is built
    otherwise). When the own piece's batch of these units at this point was built last (through
    :func:`piece_context`), the neighbouring piece's is derived from it: only the samples where a unit it
    flips lies on a boundary are rebuilt, and their terms replace the own piece's in the sums (equal to the
    full build to rounding).

    ``gram=False`` leaves out the squared loss's Gram and linear term (:attr:`UnitBatch.has_gram`): a smooth loss's
    blocks (:func:`multiconvex.nets.smooth_units.smooth_batch`) use the piece's intervals only.

    The build runs in ``torch.inference_mode`` (no autograd bookkeeping on its few hundred small operations, views
    above all: ~8% of a Gauss–Seidel sweep's CPU time), so the batch's tensors, and what ``context`` keeps from it,
    are inference tensors: read them anywhere; clone one to change it in place or to use it in an autograd graph.
    What :mod:`~multiconvex.nets.piece_context` keeps for every caller (``[a, 1]``, ``|z|`` statistics) is made as
    normal tensors.
    """
    check_layer_units(arch, layer, units, where="unit_batch")
    # one torch thread for small tensors: see torch_threads
    with one_torch_thread(T.device, T.shape[0] * max(arch.sizes)), torch.inference_mode():
        return _unit_batch(arch, params, T, layer, pre, inputs, units, flip_boundary, chunk_entries, context, gram)


def _unit_batch(arch: Architecture, params: Params, T: torch.Tensor, layer: int, pre: list[torch.Tensor],
                inputs: list[torch.Tensor], units: torch.Tensor | list[int] | None, flip_boundary: bool,
                chunk_entries: int, context: PieceContext | None, with_gram: bool = True) -> UnitBatch:
    """:func:`unit_batch` (its arguments, in order)."""
    ctx = context if context is not None else piece_context(arch, T, pre, inputs, flip_boundary)
    L, k = arch.n_layers, layer
    dev, dt = T.device, T.dtype
    idx = (torch.arange(arch.sizes[k + 1], device=dev) if units is None
           else torch.as_tensor(units, device=dev, dtype=torch.long))
    hidden = k < L - 1
    if ctx.flip and hidden:
        derived = _neighbour_from_own(ctx, params, k, idx, unit_columns(units, arch.sizes[k + 1]), with_gram)
        if derived is not None:
            return derived
    g = int(idx.numel())
    cols: Cols = unit_columns(units, arch.sizes[k + 1]) or idx  # a slice: views of the layer's tensors
    at = ctx.inputs(k)
    N, c = at.shape
    W, b = params[k]
    theta0 = torch.cat([W[cols]] + ([b[cols, None]] if b is not None else []), dim=1)
    z0 = pre[k][:, cols]  # (N, g)
    sign, own_slope = ctx.own(k, cols) if hidden else (None, None)
    width = max([arch.sizes[j + 1] for j in range(k + 1, L)] + [1])
    step = max(1, int(chunk_entries // max(1, width * g)))
    if step >= N:  # one chunk: no accumulation
        m, beta, lz, uz = _sample_terms(ctx, params, k, cols, slice(0, N), z0, own_slope)
        if with_gram:
            gram = (at.T[None, :, :] * m.T[:, None, :]) @ at
            lin = beta.T @ at
        else:
            gram, lin = at.new_zeros(g, 0, 0), at.new_zeros(g, 0)
    else:
        cg = c if with_gram else 0
        gram = torch.zeros(g, cg, cg, dtype=dt, device=dev)
        lin = torch.zeros(g, cg, dtype=dt, device=dev)
        m = torch.empty(N, g, dtype=dt, device=dev)
        beta = torch.empty(N, g, dtype=dt, device=dev)
        later = hidden and k + 1 < L - 1
        lz = torch.empty(N, g, dtype=dt, device=dev) if later else None
        uz = torch.empty(N, g, dtype=dt, device=dev) if later else None
        for s in range(0, N, step):
            sl = slice(s, min(N, s + step))
            A = at[sl]
            ms, bs, ls, us = _sample_terms(ctx, params, k, cols, sl, z0[sl],
                                           own_slope[sl] if own_slope is not None else None)
            m[sl], beta[sl] = ms, bs
            if lz is not None and uz is not None and ls is not None and us is not None:
                lz[sl], uz[sl] = ls, us
            if with_gram:
                gram += (A.T[None, :, :] * ms.T[:, None, :]) @ A
                lin += bs.T @ A
    zlo, zhi = _with_own_rows(sign, lz, uz)
    parts = SampleParts(m, beta, lz, uz, params) if not ctx.flip and N * g <= PARTS_ENTRIES else None
    batch = UnitBatch(k, idx, theta0, gram, lin, at, sign, zlo, zhi, z0, parts, neighbour=ctx.flip and hidden)
    if parts is not None:
        ctx.batches[k] = batch
    return batch


def _flipped_samples(ctx: PieceContext, k: int, idx: Cols) -> torch.Tensor:
    """The samples (indices) where the neighbouring piece of the units ``idx`` of layer ``k`` differs from the own
    piece: one of their own pre-activations, or a later hidden unit's, is on its boundary."""
    pre = ctx.pre
    near = pre[k][:, idx].abs().amin(dim=1) <= ctx.tol(k)
    for j in range(k + 1, ctx.arch.n_layers - 1):
        stats = abs_stats(pre[j])
        near = near | (stats.row_min <= ctx.tol(j))
    return torch.nonzero(near).squeeze(1)


def _neighbour_from_own(ctx: PieceContext, params: Params, k: int, idx: torch.Tensor,
                        columns: slice | None = None, with_gram: bool = True) -> UnitBatch | None:
    """The neighbouring piece's batch of the units ``idx`` from the own piece's batch at the same point (``None``
    when there is none, or when ``with_gram`` asks for the Gram that it was built without): the boundary samples'
    terms are rebuilt on that piece and replace the own piece's (the Gram's and linear term's only ``with_gram``)."""
    own_ctx = _own_side(ctx)
    own = own_ctx.batches.get(k) if own_ctx is not None else None
    if own is None or own.parts is None or own.parts.params is not params or own.sign is None \
            or with_gram and not own.has_gram:
        return None
    if own.units.tolist() == idx.tolist():  # (a list compare: cheaper than a tensor op on a few entries)
        pos = None
    else:
        where = {int(u): n for n, u in enumerate(own.units.tolist())}
        if any(int(u) not in where for u in idx.tolist()):
            return None
        pos = torch.as_tensor([where[int(u)] for u in idx.tolist()], device=idx.device, dtype=torch.long)

    def cols(t: torch.Tensor | None, dim: int = 1) -> torch.Tensor | None:
        return t if t is None or pos is None else t.index_select(dim, pos)

    parts = own.parts
    c_idx: Cols = idx if columns is None else columns  # the layer's columns of these units (a slice: views)
    rows = _flipped_samples(ctx, k, c_idx)
    sign, lz, uz = cols(own.sign), cols(parts.lz), cols(parts.uz)
    gram, lin = cols(own.gram, 0), cols(own.lin, 0)
    assert sign is not None and gram is not None and lin is not None
    if not with_gram:
        gram, lin = gram[:, :0, :0], lin[:, :0]
    at, z0 = own.inputs, cols(own.z0)
    assert z0 is not None
    if rows.numel():
        # those samples only (the layers before and the inputs are not read: the own batch has ã)
        sub = _rows_context(ctx, k, rows)
        z_rows = z0[rows]
        s_rows, slope_rows = sub.side(k, z_rows)
        m, beta, lo, up = _sample_terms(sub, params, k, c_idx, slice(None), z_rows, slope_rows)
        if with_gram:
            m_own, beta_own = cols(parts.m), cols(parts.beta)
            assert m_own is not None and beta_own is not None
            A = at[rows]
            gram = gram + (A.T[None, :, :] * (m - m_own[rows]).T[:, None, :]) @ A
            lin = lin + (beta - beta_own[rows]).T @ A
        sign = sign.clone()
        sign[rows] = s_rows
        if lz is not None and uz is not None and lo is not None and up is not None:
            lz, uz = lz.clone(), uz.clone()
            lz[rows], uz[rows] = lo, up
    zlo, zhi = _with_own_rows(sign, lz, uz)
    theta0 = cols(own.theta0, 0)
    assert theta0 is not None
    return UnitBatch(k, idx, theta0, gram, lin, at, sign, zlo, zhi, z0, source=(own, pos), neighbour=True)


@dataclass
class UnitQPs:
    """The unit blocks as QPs ``min ½θᵀPθ + qᵀθ`` (numpy): ``P = gram/N + (λ+ρ)I``, ``q = −lin/N − ρθ⁰``;
    ``grad0 = Pθ⁰ + q`` (the value of a solution is ``f⁰ + grad0ᵀδ + ½δᵀPδ``, ``δ = θ − θ⁰``: no
    cancellation against ``f⁰`` when ``θ ≈ θ⁰``)."""

    P: np.ndarray
    q: np.ndarray
    theta0: np.ndarray
    grad0: np.ndarray

    def values(self, theta: np.ndarray, f0: float) -> np.ndarray:
        """The subproblem's value at each row of ``theta`` (the objective on the piece, plus the prox term)."""
        d = theta - self.theta0
        return f0 + np.einsum("bc,bc->b", self.grad0, d) + 0.5 * np.einsum("bc,bcd,bd->b", d, self.P, d)

    def value(self, i: int, theta: np.ndarray, f0: float) -> float:
        """The value of unit ``i``'s subproblem at ``theta``."""
        d = theta - self.theta0[i]
        return float(f0 + self.grad0[i] @ d + 0.5 * d @ (self.P[i] @ d))


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """``t`` as a numpy array: a view of a CPU tensor (one call instead of ``detach().cpu().numpy()``), a copy from
    another device."""
    return t.numpy() if t.device.type == "cpu" and not t.requires_grad else t.detach().cpu().numpy()


def unit_qps(batch: UnitBatch, n_samples: int, weight_decay: float, prox: float = 0.0) -> UnitQPs:
    """The batch's QPs in numpy (``P`` symmetrised)."""
    if not batch.has_gram:
        raise InvalidInputError("unit_qps: the batch was built with unit_batch(..., gram=False); build it with "
                                "gram=True (the default) for squared-loss QPs")
    gram = to_numpy(batch.gram)
    P = gram + gram.transpose(0, 2, 1)
    P /= 2 * n_samples
    c = P.shape[1]
    P.reshape(P.shape[0], c * c)[:, ::c + 1] += weight_decay + prox  # the diagonals (a view of P)
    theta0 = to_numpy(batch.theta0)
    q = -to_numpy(batch.lin) / n_samples
    if prox:
        q -= prox * theta0
    grad0 = np.einsum("bcd,bd->bc", P, theta0) + q
    return UnitQPs(P, q, theta0, grad0)


# PieceContext, piece_context, boundary_units, with_ones, AbsStats, abs_stats live in .piece_context; re-exported here
__all__ = ["UnitBatch", "UnitQPs", "PieceContext", "piece_context", "unit_batch", "unit_qps", "boundary_units",
           "CHUNK_ENTRIES", "AbsStats", "abs_stats", "unit_columns", "to_numpy", "with_ones"]
