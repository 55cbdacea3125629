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

import math
import weakref
from dataclasses import dataclass

import numpy as np
import torch

from .network import BOUNDARY_TOL, Architecture, Params

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
        Squared loss: ``½‖f(θ_u) − t‖²`` summed over samples is ``½θᵀ gram θ − linᵀθ + const``.
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

#: The last few ``[a, 1]`` built, by the identity of ``a`` (``id`` with a weak reference that proves it is still
#: that tensor): a Gauss–Seidel sweep over layer ``k`` meets the same layer inputs at every point.
_WITH_ONES: dict[int, tuple[weakref.ref, torch.Tensor]] = {}
_WITH_ONES_SIZE = 8


def with_ones(a: torch.Tensor) -> torch.Tensor:
    """``[a, 1]``: the inputs ``a`` (N, n) with a column of ones, reused while ``a`` is the same tensor."""
    hit = _WITH_ONES.get(id(a))
    if hit is not None and hit[0]() is a:
        return hit[1]
    out = torch.cat([a, torch.ones(a.shape[0], 1, dtype=a.dtype, device=a.device)], dim=1)
    _WITH_ONES[id(a)] = (weakref.ref(a), out)
    while len(_WITH_ONES) > _WITH_ONES_SIZE:  # dicts keep insertion order: drop the oldest
        _WITH_ONES.pop(next(iter(_WITH_ONES)), None)
    return out


class PieceContext:
    """What every unit block at one point and one side of its boundaries shares, computed once per layer
    when first asked for (a Gauss–Seidel step on layer ``k`` needs layers ``k..L-1`` only).

    :meth:`hidden` gives, per hidden layer ``j``: signs ``s_j`` (boundary units flipped for the
    neighbouring piece), slopes, ``slack_j = s_j z_j⁰`` and, when every slack is ≥ 0 (always on the
    point's own piece), ``s_j / slack_j`` (``±inf`` at a zero slack); :meth:`inputs` the layer's inputs
    ``ã`` with a column of ones; :attr:`resid` the residual ``t − f``.

    ``scale_pre`` (default ``pre``) are the pre-activations whose per-layer largest magnitude scales the
    boundary tolerance: a context over a subset of the samples keeps the whole point's tolerance.
    :attr:`batches` holds the last own-piece :class:`UnitBatch` built per layer (the neighbouring piece's
    batch is derived from it).
    """

    def __init__(self, arch: Architecture, T: torch.Tensor, pre: list[torch.Tensor], inputs: list[torch.Tensor],
                 flip_boundary: bool = False, scale_pre: list[torch.Tensor] | None = None):
        self.arch, self.pre, self._inputs, self.flip = arch, pre, inputs, flip_boundary
        self._scale_pre = pre if scale_pre is None else scale_pre
        self.resid = T - pre[-1]
        self._hidden: dict[int, tuple] = {}
        self._zero_slack: dict[int, bool] = {}  # a zero slack: V·inv is 0·inf = nan where V = 0
        self._at: dict[int, torch.Tensor] = {}
        self._tol: dict[int, float] = {}
        self.batches: dict[int, UnitBatch] = {}

    def tol(self, j: int, abs_z: torch.Tensor | None = None) -> float:
        """The boundary tolerance of layer ``j``: ``|z| ≤ tol`` is on the boundary (as :func:`boundary_mask`);
        ``abs_z`` is ``|z_j|`` of the whole point when the caller has it."""
        if j not in self._tol:
            a = self._scale_pre[j].abs() if abs_z is None else abs_z
            self._tol[j] = BOUNDARY_TOL * max(1.0, float(a.amax())) if a.numel() else BOUNDARY_TOL
        return self._tol[j]

    def hidden(self, j: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(sign, slope, slack, inv)`` of hidden layer ``j`` (``inv`` is ``None`` when a slack is < 0)."""
        if j not in self._hidden:
            z = self.pre[j]
            sign = self._signs(j, z)
            inv: torch.Tensor | None
            if self.flip:
                slack = sign * z
                # β/slack; a zero slack (signed zeros included) gives ±inf with the sign of β: the bound is z⁰
                # (|slack| turns a −0 into +0, so that the division gives the sign of β)
                inv = sign / slack.abs() if slack.numel() == 0 or float(slack.amin()) >= 0 else None
            else:  # the point's own piece: slack = |z| ≥ 0; at a zero slack the smallest positive float instead,
                # so sign/slack is finite and V·inv is 0 where V = 0 and huge (or ±inf) with β's sign elsewhere:
                # the bound z⁰ − 1/(V·inv) is then z⁰ to the last bit, as the exact ±inf would give
                slack = z.abs()
                inv = sign / slack.clamp_min(torch.finfo(z.dtype).tiny)
            self._hidden[j] = (sign, self.arch.slope(0.5 * (sign + 1)), slack, inv)
            self._zero_slack[j] = (self.flip and inv is not None and inv.numel() > 0
                                   and float(inv.abs().amax()) == math.inf)
        return self._hidden[j]

    def _signs(self, j: int, z: torch.Tensor) -> torch.Tensor:
        """Each unit's sign ``s = ±1`` on the piece for the pre-activations ``z`` (columns of layer ``j``):
        ``+1`` where ``z ≥ 0`` (signed zeros included), boundary units flipped on the neighbouring piece.
        Float arithmetic only (torch's boolean kernels cost ~10× more per element on a CPU)."""
        sign = torch.sign(torch.sign(z) + 0.5)
        if self.flip and z.numel():
            tol = self.tol(j)
            a = z.abs()
            if float(a.amin()) <= tol:  # −1 where |z| ≤ tol (flip), +1 elsewhere
                sign = sign * torch.sign(torch.sign(a - tol) - 0.5)
        return sign

    def own(self, k: int, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(sign, slope)`` of the units ``idx`` of hidden layer ``k`` only, (N, g): a block's own units need
        their columns, not the layer's (the layer's when :meth:`hidden` has them already)."""
        if k in self._hidden:
            sign, slope = self._hidden[k][:2]
            return sign[:, idx], slope[:, idx]
        sign = self._signs(k, self.pre[k][:, idx])
        return sign, self.arch.slope(0.5 * (sign + 1))

    def inputs(self, k: int) -> torch.Tensor:
        """``ã`` of layer ``k``: its inputs with a column of ones (with biases), (N, c)."""
        if k not in self._at:
            self._at[k] = with_ones(self._inputs[k]) if self.arch.bias else self._inputs[k]
        return self._at[k]


#: The own-piece contexts of the last few points, by the identity of their ``pre`` list (``id`` with a weak
#: reference that proves it is still that context): the neighbouring piece's context finds the own piece's
#: batches there (a Gauss–Seidel step builds the own piece first, then the neighbour at the same point).
_OWN_SIDE: dict[int, weakref.ref] = {}
_OWN_SIDE_SIZE = 8


def piece_context(arch: Architecture, T: torch.Tensor, pre: list[torch.Tensor], inputs: list[torch.Tensor],
                  flip_boundary: bool = False) -> PieceContext:
    """The :class:`PieceContext` of the point whose forward pass gave ``pre`` and ``inputs``."""
    ctx = PieceContext(arch, T, pre, inputs, flip_boundary)
    if not flip_boundary:
        _OWN_SIDE[id(pre)] = weakref.ref(ctx)
        while len(_OWN_SIDE) > _OWN_SIDE_SIZE:  # dicts keep insertion order: drop the oldest
            _OWN_SIDE.pop(next(iter(_OWN_SIDE)), None)
    return ctx


def _own_side(ctx: PieceContext) -> PieceContext | None:
    """The own-piece context registered for ``ctx``'s point (``None`` when there is none any more)."""
    ref = _OWN_SIDE.get(id(ctx.pre))
    own = ref() if ref is not None else None
    return own if own is not None and own.pre is ctx.pre and own is not ctx else None


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
    sign, _, slack_j, inv = ctx.hidden(j)
    if inv is not None:
        rho = V * inv[sl][:, :, None]
        if ctx._zero_slack[j]:
            rho = torch.nan_to_num(rho, nan=0.0, posinf=torch.inf, neginf=-torch.inf)
        hi, lo = rho.amax(dim=1), rho.amin(dim=1)  # (n, g)
        lower = torch.where(hi > 0, z0 - 1.0 / hi, -torch.inf)
        upper = torch.where(lo < 0, z0 - 1.0 / lo, torch.inf)
        return lower, upper
    slack = slack_j[sl]
    beta = sign[sl][:, :, None] * V
    t = slack[:, :, None] / beta  # inf/nan where β = 0: masked
    lower = z0 - torch.where(beta > 0, t, torch.inf).amin(dim=1)
    upper = z0 - torch.where(beta < 0, t, -torch.inf).amax(dim=1)
    return lower, upper


def _sample_terms(ctx: PieceContext, params: Params, k: int, idx: torch.Tensor, sl: slice, z0: torch.Tensor,
                  own_slope: torch.Tensor | None):
    """The per-sample terms of the samples ``sl`` (see :class:`SampleParts`): ``(m, beta, lz, uz)``, (n, g)
    each (``lz``/``uz`` ``None`` without later hidden layers). ``z0`` are those samples' own pre-activations."""
    L = ctx.arch.n_layers
    lz = uz = None
    if own_slope is not None:
        V = params[k + 1][0][:, idx][None, :, :] * own_slope[:, None, :]  # (n, n_{k+1}, g)
        for j in range(k + 1, L - 1):  # later hidden layers: their rows collapse to intervals on z
            lo, up = _later_intervals(ctx, j, sl, V, z0)
            lz, uz = (lo, up) if lz is None or uz is None else (torch.maximum(lz, lo), torch.minimum(uz, up))
            V = torch.matmul(params[j + 1][0], ctx.hidden(j)[1][sl][:, :, None] * V)
    else:
        g = int(idx.numel())
        V = torch.zeros(z0.shape[0], ctx.arch.sizes[-1], g, dtype=z0.dtype, device=z0.device)
        V[:, idx, torch.arange(g, device=z0.device)] = 1.0
    m = (V * V).sum(dim=1)  # (n, g): ‖V_L[i, :, u]‖²
    beta = (V * ctx.resid[sl][:, :, None]).sum(dim=1) + m * z0  # Σ_o V (t − f + V z⁰)
    return m, beta, lz, uz


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
               context: PieceContext | None = None) -> UnitBatch:
    """The unit blocks ``units`` (default: all) of ``layer`` at the point whose forward pass gave ``pre``, ``inputs``.

    Squared loss only (the Gram form). ``flip_boundary`` builds the neighbouring piece across a boundary;
    ``context`` is that point's :func:`piece_context` for that side when the caller keeps it (it is built
    otherwise). When the own piece's batch of these units at this point was built last (through
    :func:`piece_context`), the neighbouring piece's is derived from it: only the samples where a unit it
    flips lies on a boundary are rebuilt, and their terms replace the own piece's in the sums (equal to the
    full build to rounding).
    """
    ctx = context if context is not None else piece_context(arch, T, pre, inputs, flip_boundary)
    L, k = arch.n_layers, layer
    dev, dt = T.device, T.dtype
    idx = (torch.arange(arch.sizes[k + 1], device=dev) if units is None
           else torch.as_tensor(units, device=dev, dtype=torch.long))
    hidden = k < L - 1
    if ctx.flip and hidden:
        derived = _neighbour_from_own(ctx, params, T, k, idx)
        if derived is not None:
            return derived
    g = int(idx.numel())
    at = ctx.inputs(k)
    N, c = at.shape
    W, b = params[k]
    theta0 = torch.cat([W[idx]] + ([b[idx, None]] if b is not None else []), dim=1)
    z0 = pre[k][:, idx]  # (N, g)
    sign, own_slope = ctx.own(k, idx) if hidden else (None, None)
    width = max([arch.sizes[j + 1] for j in range(k + 1, L)] + [1])
    step = max(1, int(chunk_entries // max(1, width * g)))
    if step >= N:  # one chunk: no accumulation
        m, beta, lz, uz = _sample_terms(ctx, params, k, idx, slice(0, N), z0, own_slope)
        gram = (at.T[None, :, :] * m.T[:, None, :]) @ at
        lin = beta.T @ at
    else:
        gram = torch.zeros(g, c, c, dtype=dt, device=dev)
        lin = torch.zeros(g, c, dtype=dt, device=dev)
        m = torch.empty(N, g, dtype=dt, device=dev)
        beta = torch.empty(N, g, dtype=dt, device=dev)
        later = hidden and k + 1 < L - 1
        lz = torch.empty(N, g, dtype=dt, device=dev) if later else None
        uz = torch.empty(N, g, dtype=dt, device=dev) if later else None
        for s in range(0, N, step):
            sl = slice(s, min(N, s + step))
            A = at[sl]
            ms, bs, ls, us = _sample_terms(ctx, params, k, idx, sl, z0[sl],
                                           own_slope[sl] if own_slope is not None else None)
            m[sl], beta[sl] = ms, bs
            if lz is not None and uz is not None and ls is not None and us is not None:
                lz[sl], uz[sl] = ls, us
            gram += (A.T[None, :, :] * ms.T[:, None, :]) @ A
            lin += bs.T @ A
    zlo, zhi = _with_own_rows(sign, lz, uz)
    parts = SampleParts(m, beta, lz, uz, params) if not ctx.flip and N * g <= PARTS_ENTRIES else None
    batch = UnitBatch(k, idx, theta0, gram, lin, at, sign, zlo, zhi, z0, parts, neighbour=ctx.flip and hidden)
    if parts is not None:
        ctx.batches[k] = batch
    return batch


def _flipped_samples(ctx: PieceContext, k: int, idx: torch.Tensor) -> torch.Tensor:
    """The samples (indices) where the neighbouring piece of the units ``idx`` of layer ``k`` differs from the own
    piece: one of their own pre-activations, or a later hidden unit's, is on its boundary."""
    pre = ctx.pre
    near = pre[k][:, idx].abs().amin(dim=1) <= ctx.tol(k)
    for j in range(k + 1, ctx.arch.n_layers - 1):
        a = pre[j].abs()
        near = near | (a.amin(dim=1) <= ctx.tol(j, a))
    return torch.nonzero(near).squeeze(1)


def _neighbour_from_own(ctx: PieceContext, params: Params, T: torch.Tensor, k: int,
                        idx: torch.Tensor) -> UnitBatch | None:
    """The neighbouring piece's batch of the units ``idx`` from the own piece's batch at the same point (``None``
    when there is none): the boundary samples' terms are rebuilt on that piece and replace the own piece's."""
    own_ctx = _own_side(ctx)
    own = own_ctx.batches.get(k) if own_ctx is not None else None
    if own is None or own.parts is None or own.parts.params is not params or own.sign is None:
        return None
    if torch.equal(own.units, idx):
        pos = None
    else:
        where = {int(u): n for n, u in enumerate(own.units.tolist())}
        if any(int(u) not in where for u in idx.tolist()):
            return None
        pos = torch.as_tensor([where[int(u)] for u in idx.tolist()], device=idx.device, dtype=torch.long)

    def cols(t: torch.Tensor | None, dim: int = 1) -> torch.Tensor | None:
        return t if t is None or pos is None else t.index_select(dim, pos)

    parts = own.parts
    rows = _flipped_samples(ctx, k, idx)
    sign, lz, uz = cols(own.sign), cols(parts.lz), cols(parts.uz)
    gram, lin = cols(own.gram, 0), cols(own.lin, 0)
    assert sign is not None and gram is not None and lin is not None
    at, z0 = own.inputs, cols(own.z0)
    assert z0 is not None
    if rows.numel():
        # those samples only, from layer k on (the layers before and the inputs are not read: the own batch has ã)
        sub = PieceContext(ctx.arch, T[rows], [p if j < k else p[rows] for j, p in enumerate(ctx.pre)], ctx._inputs,
                           True, scale_pre=ctx.pre)
        sub._tol = ctx._tol  # the whole point's tolerances, computed once
        s_rows, slope_rows = sub.own(k, idx)
        m, beta, lo, up = _sample_terms(sub, params, k, idx, slice(None), z0[rows], slope_rows)
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
    return UnitBatch(k, idx, cols(own.theta0, 0), gram, lin, at, sign, zlo, zhi, z0, source=(own, pos),
                     neighbour=True)


def boundary_units(arch: Architecture, layer: int, pre: list[torch.Tensor]) -> torch.Tensor:
    """Which unit blocks of ``layer`` have a constrained unit on a boundary that involves them, (n_k,) bool:
    their own pre-activation ``≈ 0`` at some sample, or a later hidden unit's at a sample where the unit is
    alive (ReLU; any sample for a leaky ReLU). A later boundary unit that does not depend on the block
    leaves its subproblem unchanged on either side (see :func:`_later_intervals`), so flipping it adds nothing.
    For every unit at once; :func:`multiconvex.nets.blocks.block_boundary` is the per-block test, which
    flags more."""
    z = pre[layer]
    if layer >= arch.n_layers - 1 or z.numel() == 0:
        return torch.zeros(z.shape[1], dtype=torch.bool, device=z.device)
    # min/max reductions rather than boolean masks: the same test as boundary_mask, ~10× cheaper on a CPU
    a = z.abs()
    own = a.amin(dim=0) <= BOUNDARY_TOL * max(1.0, float(a.amax()))
    later: torch.Tensor | None = None  # per sample: a later hidden unit on its boundary
    for j in range(layer + 1, arch.n_layers - 1):
        aj = pre[j].abs()
        near = aj.amin(dim=1) <= BOUNDARY_TOL * max(1.0, float(aj.amax()))
        later = near if later is None else later | near
    if later is None:
        return own
    if arch.negative_slope != 0:
        return own | bool(later.any())
    # ReLU: a later unit depends on unit u at sample i only through u's slope there, 0 where u is dead
    rows = z[later]
    return own | (rows.amax(dim=0) >= 0) if rows.shape[0] else own


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


def unit_qps(batch: UnitBatch, n_samples: int, weight_decay: float, prox: float = 0.0) -> UnitQPs:
    """The batch's QPs in numpy (``P`` symmetrised)."""
    gram = batch.gram.detach().cpu().numpy()
    P = gram + gram.transpose(0, 2, 1)
    P /= 2 * n_samples
    c = P.shape[1]
    P.reshape(P.shape[0], c * c)[:, ::c + 1] += weight_decay + prox  # the diagonals (a view of P)
    theta0 = batch.theta0.detach().cpu().numpy()
    q = -batch.lin.detach().cpu().numpy() / n_samples
    if prox:
        q -= prox * theta0
    grad0 = np.einsum("bcd,bd->bc", P, theta0) + q
    return UnitQPs(P, q, theta0, grad0)


__all__ = ["UnitBatch", "UnitQPs", "PieceContext", "piece_context", "unit_batch", "unit_qps", "boundary_units",
           "CHUNK_ENTRIES"]
