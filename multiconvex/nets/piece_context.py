"""What every unit block at one point shares: the piece on one side of its boundaries, computed once per layer.

A Gauss–Seidel step builds one unit block at a new point, the neighbouring piece's at the same point when the
unit is on a boundary, and the driver's certifying pass every unit of a layer at one point: they read the same
per-layer numbers of that point — signs, slopes and slacks of the later layers (:class:`PieceContext`), ``|z|``
with its reductions (:func:`abs_stats`), the layer inputs with a column of ones (:func:`with_ones`) — and the
boundary flags of the layer's units (:func:`boundary_units`). Each is computed once, when first asked for, and kept
while the point's tensors are (caches keyed by identity, checked by weak references). What the module-level caches
keep is made as normal tensors, also when first asked for inside a build in ``torch.inference_mode``
(:func:`~multiconvex.nets.batched.unit_batch`): any caller may use it, in an autograd graph too.

Examples
--------
>>> import torch
>>> from multiconvex.nets import Architecture, forward, init_params
>>> arch = Architecture((2, 3, 1))
>>> params = init_params(arch, 0, torch.device("cpu"))
>>> X = torch.randn(20, 2, dtype=torch.float64); T = torch.randn(20, 1, dtype=torch.float64)
>>> _, pre, inputs = forward(arch, params, X)
>>> ctx = piece_context(arch, T, pre, inputs)
>>> sign, slope, slack, inv = ctx.hidden(0)
>>> bool(torch.equal(slack, pre[0].abs())), boundary_units(arch, 0, pre).shape
(True, torch.Size([3]))
"""

from __future__ import annotations

import contextlib
import math
import threading
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from .network import BOUNDARY_TOL, Architecture
from .torch_threads import one_torch_thread

if TYPE_CHECKING:  # for the annotation only: batched imports this module
    from .batched import UnitBatch


#: The last few ``[a, 1]`` built, by the identity of ``a`` (``id`` with a weak reference that proves it is still
#: that tensor): a Gauss–Seidel sweep over layer ``k`` meets the same layer inputs at every point.
_WITH_ONES: dict[int, tuple[weakref.ref, torch.Tensor]] = {}
_WITH_ONES_SIZE = 8


#: Guards the insertion and eviction of both caches (fits may run in several threads); a weak reference's
#: callback drops its own entry with one ``dict.pop`` and takes no lock (it may run inside a locked section).
_CACHE_LOCK = threading.Lock()


def _keep(cache: dict, key: int, value: tuple, size: int) -> None:
    """Store ``value`` under ``key`` and drop the oldest entries beyond ``size`` (dicts keep insertion order)."""
    with _CACHE_LOCK:
        cache[key] = value
        while len(cache) > size:
            try:
                cache.pop(next(iter(cache)), None)
            except RuntimeError:  # a weak reference's callback dropped an entry meanwhile: look again
                continue


_NO_CONTEXT = contextlib.nullcontext()


def _normal_tensors() -> contextlib.AbstractContextManager:
    """A context in which new tensors are normal tensors, also inside ``torch.inference_mode`` (where the unit
    sweep's builds run): what this module keeps is shared with any caller, which may use it anywhere (in an autograd
    graph too, where an inference tensor is refused)."""
    return torch.inference_mode(False) if torch.is_inference_mode_enabled() else _NO_CONTEXT


def with_ones(a: torch.Tensor) -> torch.Tensor:
    """``[a, 1]``: the inputs ``a`` (N, n) with a column of ones, reused while ``a`` is the same tensor."""
    hit = _WITH_ONES.get(id(a))
    if hit is not None and hit[0]() is a:
        return hit[1]
    with _normal_tensors():
        out = torch.cat([a, torch.ones(a.shape[0], 1, dtype=a.dtype, device=a.device)], dim=1)
    key = id(a)
    # dropped with a (its memory is not held after the data is gone)
    _keep(_WITH_ONES, key, (weakref.ref(a, lambda _ref: _WITH_ONES.pop(key, None)), out), _WITH_ONES_SIZE)
    return out


@dataclass
class AbsStats:
    """``|z|`` of one layer's pre-activations at one point and its reductions, each computed at most once: the
    boundary flags (:func:`boundary_units`), the boundary tolerance (:meth:`PieceContext.tol`), the samples of a
    neighbouring piece (:func:`_flipped_samples`) and the own piece's slacks read the same numbers."""

    abs: torch.Tensor
    _amax: float | None = None
    _row_min: torch.Tensor | None = None
    _col_min: torch.Tensor | None = None

    @property
    def amax(self) -> float:
        """``max |z|`` (0 for an empty tensor)."""
        if self._amax is None:
            self._amax = float(self.abs.amax()) if self.abs.numel() else 0.0
        return self._amax

    @property
    def row_min(self) -> torch.Tensor:
        """``min_u |z_iu|`` per sample, (N,)."""
        if self._row_min is None:
            with _normal_tensors():
                self._row_min = self.abs.amin(dim=1)
        return self._row_min

    @property
    def col_min(self) -> torch.Tensor:
        """``min_i |z_iu|`` per unit, (n,)."""
        if self._col_min is None:
            with _normal_tensors():
                self._col_min = self.abs.amin(dim=0)
        return self._col_min

    def tol(self) -> float:
        """The boundary tolerance of this layer (as :func:`multiconvex.nets.network.boundary_mask`)."""
        return BOUNDARY_TOL * max(1.0, self.amax) if self.abs.numel() else BOUNDARY_TOL


#: The :class:`AbsStats` of the last few pre-activation tensors, by identity (``id`` with a weak reference that proves
#: it is still that tensor): a Gauss–Seidel step asks for the same layer's ``|z|`` in its boundary test, its own
#: piece and its neighbouring piece, and the layers before the moved one are the same tensors at every point.
_ABS: dict[int, tuple[weakref.ref, AbsStats]] = {}
_ABS_SIZE = 4


def _kept_abs_stats(z: torch.Tensor) -> AbsStats | None:
    """The :class:`AbsStats` of ``z`` when they are kept, else ``None`` (nothing is computed)."""
    hit = _ABS.get(id(z))
    return hit[1] if hit is not None and hit[0]() is z else None


def abs_stats(z: torch.Tensor) -> AbsStats:
    """The :class:`AbsStats` of ``z`` (cached while ``z`` is one of the last few tensors asked for)."""
    hit = _ABS.get(id(z))
    if hit is not None and hit[0]() is z:
        return hit[1]
    with _normal_tensors():
        out = AbsStats(z.abs())
    key = id(z)
    # dropped with z (CPython frees z, and so runs this, before its id can name another tensor)
    _keep(_ABS, key, (weakref.ref(z, lambda _ref: _ABS.pop(key, None)), out), _ABS_SIZE)
    return out


def piece_sign(z: torch.Tensor) -> torch.Tensor:
    """``+1`` where ``z ≥ 0`` (signed zeros included), ``−1`` elsewhere: a pre-activation's side on the point's own
    piece. ``sign(sign(z) + 1/2)``, each step in place on one new tensor: a layer's tensors are a few hundred kB, and
    a fresh one per step costs more than the arithmetic (memory out of cache); the same numbers."""
    sign = torch.sign(z)
    return sign.add_(0.5).sign_()


class PieceContext:
    """What every unit block at one point and one side of its boundaries shares, computed once per layer
    when first asked for (a Gauss–Seidel step on layer ``k`` needs layers ``k..L-1`` only).

    :meth:`hidden` gives, per hidden layer ``j``: signs ``s_j`` (boundary units flipped for the
    neighbouring piece), slopes, ``slack_j = s_j z_j⁰`` and, when every slack is ≥ 0 (always on the
    point's own piece), ``s_j / slack_j`` (``±inf`` at a zero slack); :meth:`inputs` the layer's inputs
    ``ã`` with a column of ones; :attr:`resid` the residual ``t − f``.

    ``scale_pre`` (default ``pre``) are the pre-activations whose per-layer largest magnitude scales the
    boundary tolerance: a context over a subset of the samples keeps the whole point's tolerance, and takes its
    rows of the point's residual as ``resid`` (then ``T`` may be ``None``); ``rows``, when given, says which
    samples of ``scale_pre`` they are: its own piece then reads the smallest ``|z|`` of those rows from the point's
    kept statistics (:func:`abs_stats`) and makes the slack only when asked for (:meth:`slack`; :meth:`parts` is
    :meth:`hidden` without it).
    :attr:`batches` holds the last own-piece :class:`UnitBatch` built per layer (the neighbouring piece's
    batch is derived from it).
    """

    def __init__(self, arch: Architecture, T: torch.Tensor | None, pre: list[torch.Tensor], inputs: list[torch.Tensor],
                 flip_boundary: bool = False, scale_pre: list[torch.Tensor] | None = None,
                 resid: torch.Tensor | None = None, rows: torch.Tensor | None = None):
        self.arch, self.pre, self._inputs, self.flip = arch, pre, inputs, flip_boundary
        self._scale_pre = pre if scale_pre is None else scale_pre
        #: for a context over some samples: which samples of the point (``scale_pre``) they are, when known
        self.rows = rows
        if resid is None:
            assert T is not None, "PieceContext needs the targets T or the residual"
            resid = T - pre[-1]
        self.resid = resid
        self._hidden: dict[int, list] = {}
        self._zero_slack: dict[int, bool] = {}  # a zero slack: V·inv is 0·inf = nan where V = 0
        self._at: dict[int, torch.Tensor] = {}
        self._tol: dict[int, float] = {}
        self.batches: dict[int, UnitBatch] = {}

    def tol(self, j: int, abs_z: torch.Tensor | None = None) -> float:
        """The boundary tolerance of layer ``j``: ``|z| ≤ tol`` is on the boundary (as :func:`boundary_mask`);
        ``abs_z`` is ``|z_j|`` of the whole point when the caller has it."""
        if j not in self._tol:
            if abs_z is None:
                self._tol[j] = abs_stats(self._scale_pre[j]).tol()
            else:
                self._tol[j] = BOUNDARY_TOL * max(1.0, float(abs_z.amax())) if abs_z.numel() else BOUNDARY_TOL
        return self._tol[j]

    def hidden(self, j: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(sign, slope, slack, inv)`` of hidden layer ``j`` (``inv`` is ``None`` when a slack is < 0)."""
        sign, slope, inv = self.parts(j)
        return sign, slope, self.slack(j), inv

    def slack(self, j: int) -> torch.Tensor:
        """``slack_j = s_j z_j⁰`` of hidden layer ``j`` (``|z|`` on the point's own piece)."""
        parts = self._parts(j)
        if parts[2] is None:  # the own piece of a context over some samples: made when first asked for
            parts[2] = self.pre[j].abs()
        return parts[2]

    def parts(self, j: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(sign, slope, inv)`` of hidden layer ``j``: :meth:`hidden` without the slack (the bounds of the own
        piece read ``inv`` only)."""
        sign, slope, _, inv = self._parts(j)
        return sign, slope, inv

    def _parts(self, j: int) -> list:
        """``[sign, slope, slack or None, inv]`` of hidden layer ``j``, computed once."""
        if j not in self._hidden:
            z = self.pre[j]
            sign = self._signs(j, z)
            inv: torch.Tensor | None
            slack: torch.Tensor | None
            if self.flip:
                slack = sign * z
                # β/slack; a zero slack (signed zeros included) gives ±inf with the sign of β: the bound is z⁰
                # (|slack| turns a −0 into +0, so that the division gives the sign of β)
                if slack.numel() == 0 or float(slack.amin()) >= 0:
                    inv = slack.abs()
                    torch.div(sign, inv, out=inv)  # sign / |slack|, into |slack|'s memory
                else:
                    inv = None
            else:  # the point's own piece: slack = |z| ≥ 0; at a zero slack the smallest positive float instead,
                # so sign/slack is finite and V·inv is 0 where V = 0 and huge (or ±inf) with β's sign elsewhere:
                # the bound z⁰ − 1/(V·inv) is then z⁰ to the last bit, as the exact ±inf would give
                # the smallest |z|: from the point's |z| statistics when they are kept (for some samples: their rows'
                # minima, no |z| of these rows made; min is exact, so the same number)
                whole = self._scale_pre[j]
                kept = _kept_abs_stats(whole)
                if z is whole:
                    stats = abs_stats(z)
                    slack, zmin = stats.abs, stats.row_min
                elif kept is not None and self.rows is not None:
                    slack, zmin = None, kept.row_min[self.rows]
                else:
                    slack = zmin = z.abs()
                tiny = torch.finfo(z.dtype).tiny
                if z.numel() and float(zmin.amin()) >= tiny:
                    inv = torch.reciprocal(z)  # = sign/|z| to the last bit (IEEE division is exact up to the sign)
                else:
                    slack = z.abs() if slack is None else slack
                    inv = sign / slack.clamp_min(tiny)
            self._hidden[j] = [sign, self._slope(sign), slack, inv]
            # an infinite ratio: |inv|'s largest is inf (two reductions, no |inv| made)
            self._zero_slack[j] = (self.flip and inv is not None and inv.numel() > 0
                                   and (float(inv.amax()) == math.inf or float(inv.amin()) == -math.inf))
        return self._hidden[j]

    def _signs(self, j: int, z: torch.Tensor) -> torch.Tensor:
        """Each unit's sign ``s = ±1`` on the piece for the pre-activations ``z`` (columns of layer ``j``):
        ``+1`` where ``z ≥ 0`` (signed zeros included), boundary units flipped on the neighbouring piece.
        Float arithmetic only (torch's boolean kernels cost ~10× more per element on a CPU)."""
        sign = piece_sign(z)
        if self.flip and z.numel():
            tol = self.tol(j)
            a = z.abs()
            if float(a.amin()) <= tol:  # −1 where |z| ≤ tol (flip), +1 elsewhere
                sign.mul_(a.sub_(tol).sign_().sub_(0.5).sign_())
        return sign

    def _slope(self, sign: torch.Tensor) -> torch.Tensor:
        """The slopes on the piece of the signs ``s = ±1``: the alive mask ``(s + 1)/2`` is ``max(s, 0)`` to the last
        bit (both give +0 and 1), in one pass instead of two."""
        return self.arch.slope(sign.clamp_min(0.0))

    def own(self, k: int, idx: torch.Tensor | slice) -> tuple[torch.Tensor, torch.Tensor]:
        """``(sign, slope)`` of the units ``idx`` of hidden layer ``k`` only, (N, g): a block's own units need
        their columns, not the layer's (the layer's when :meth:`hidden` has them already)."""
        if k in self._hidden:
            sign, slope = self._hidden[k][:2]
            return sign[:, idx], slope[:, idx]
        return self.side(k, self.pre[k][:, idx])

    def side(self, k: int, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(sign, slope)`` on this side of the pre-activations ``z`` of some units of hidden layer ``k`` (any
        samples and columns of it: the layer's tolerance is the point's)."""
        sign = self._signs(k, z)
        return sign, self._slope(sign)

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
    with one_torch_thread(z.device, z.shape[0] * max(arch.sizes)):  # small tensors: see torch_threads
        return _boundary_units(arch, layer, pre)


def _boundary_units(arch: Architecture, layer: int, pre: list[torch.Tensor]) -> torch.Tensor:
    """:func:`boundary_units` of a hidden layer with samples."""
    z = pre[layer]
    # min/max reductions rather than boolean masks: the same test as boundary_mask, ~10× cheaper on a CPU; the
    # |z| of each layer and its reductions are kept for the piece contexts of the same point (abs_stats)
    stats = abs_stats(z)
    own = stats.col_min <= stats.tol()
    later: torch.Tensor | None = None  # per sample: a later hidden unit on its boundary
    for j in range(layer + 1, arch.n_layers - 1):
        sj = abs_stats(pre[j])
        near = sj.row_min <= sj.tol()
        later = near if later is None else later | near
    if later is None:
        return own
    if arch.negative_slope != 0:
        return own | bool(later.any())
    # ReLU: a later unit depends on unit u at sample i only through u's slope there, 0 where u is dead
    at = torch.nonzero(later).squeeze(1)  # rows by index: as fast as a mask for a few, faster for many
    return own | (z.index_select(0, at).amax(dim=0) >= 0) if at.numel() else own


__all__ = ["AbsStats", "PieceContext", "abs_stats", "boundary_units", "piece_context", "piece_sign", "with_ones"]
