"""Logistic and softmax unit blocks without cones: Newton steps on DAQP, every gap backed by a dual bound.

A unit block is one row of ``W_k`` with its bias, ``θ ∈ R^c``. On the cross-section and piece of a
point every output is affine in the unit's own pre-activation ``z_i = ã_i · θ`` (THEORY §1;
:mod:`multiconvex.nets.batched`): ``f_i(z) = f_i⁰ + v_i (z − z_i⁰)`` with ``v_i = V_L[i, :, u]`` (``e_u``
for an output unit). So the block's objective is

    (1/N) Σ_i ℓ(f_i(ã_i·θ), t_i) + (λ/2)‖θ‖² + (ρ/2)‖θ − θ⁰‖² + const,

a sum of smooth convex *scalar* functions ``φ_i(z_i)`` of one linear form per sample plus a
quadratic, and the piece is one interval per sample on the same form (:func:`~multiconvex.nets.batched.unit_batch`).
:func:`multiconvex.solvers.newton_qp.solve_separable` solves it by Newton steps, each an exact DAQP solve of
a ``c``-variable QP under those intervals, and returns a proven lower bound (a Fenchel dual value) with it.

**What a solution reports.** Without prox (the solves that measure block gaps) ``value`` is the
*lower bound* of the block's optimum on its piece, so the driver's gap ``F(θ⁰) − value`` is never
smaller than the true one; with prox it is the objective ``F`` at the new point plus the prox term
(the driver measures no gap there). The solve stops when the objective at the returned point is
within :data:`GAP_RTOL` ``· |F(θ⁰)|`` of the bound.

Examples
--------
>>> import torch
>>> from multiconvex.nets import Architecture, forward, init_params
>>> arch = Architecture((2, 3, 1), "logistic")
>>> params = init_params(arch, 0, torch.device("cpu"))
>>> X = torch.randn(40, 2, dtype=torch.float64); T = torch.sign(torch.randn(40, 1, dtype=torch.float64))
>>> _, pre, inputs = forward(arch, params, X)
>>> batch = smooth_batch(arch, params, T, 0, pre, inputs)
>>> sols = solve_smooth_units(arch, batch, 0.7, 40, 1e-2, 0.0)
>>> [s.status for s in sols], batch.slope.shape
(['optimal', 'optimal', 'optimal'], (3, 40, 1))
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.special import expit, log_expit

from ..errors import InvalidInputError
from ..solvers import dispatch
from ..solvers import status as st
from ..solvers.newton_qp import Curvature, ScalarLoss, solve_separable
from .batched import PieceContext, piece_context, unit_batch
from .network import Architecture, Params
from .torch_threads import one_torch_thread

#: A block solve stops when the objective at its point is within ``GAP_RTOL · |F(θ⁰)|`` of its lower bound.
GAP_RTOL = 1e-10
#: Newton steps (DAQP solves) per block at most.
MAX_NEWTON = 60
#: The name solutions carry as their backend.
BACKEND = "newton-daqp"


@dataclass
class SmoothUnitBatch:
    """Unit blocks ``units`` of layer ``layer`` at one point, for a logistic/softmax loss (numpy, float64).

    Attributes
    ----------
    theta0 : (g, c)
        Each unit's weight row with its bias appended.
    inputs : (N, c)
        ``ã``: the layer's inputs with a column of ones (the rows of every unit's linear form).
    zlo, zhi : (g, N) or None
        The piece as intervals on ``z = ã · θ`` (``None`` for the output layer).
    z0 : (g, N)
        ``z`` at the point.
    offset, slope : (g, N, K)
        The outputs on the piece: ``f_i(z) = offset_i + slope_i z`` per unit.
    targets : (N, K)
        Encoded targets (±1 for logistic, one-hot for softmax).
    neighbour : bool
        Whether the pieces are the neighbouring ones across a boundary (``flip_boundary``).
    """

    layer: int
    units: list[int]
    theta0: np.ndarray
    inputs: np.ndarray
    zlo: np.ndarray | None
    zhi: np.ndarray | None
    z0: np.ndarray
    offset: np.ndarray
    slope: np.ndarray
    targets: np.ndarray
    neighbour: bool = False

    @property
    def size(self) -> int:
        return len(self.units)


class WarmStarts:
    """The working sets of one problem's own-piece unit solves, for its neighbouring-piece solves at the same point.

    Each unit block's last own-piece solve is kept by ``(layer, unit, samples)``: its point (bytes) and the rows of
    its last Newton step's working set with their DAQP senses. The solve of the same unit from the same point on
    the neighbouring piece (the driver's next solve) starts DAQP there, with the rows its point lies on: that point is
    as a rule just off the flipped samples' rows by rounding (infeasible there), and without these rows the first
    Newton step's QP starts from scratch. Measured on a digits ``[64, 64, 64, 10]`` sweep: 10 % fewer DAQP
    iterations. Only a start: a wrong one costs active-set steps, never the answer.

    The last own-piece solve's first Hessian is kept too, with the ``φ''`` it came from (one: a Gauss–Seidel step
    solves the neighbouring piece right after the own one; each holds ``n² + N`` floats): the neighbouring piece's
    loss differs on its flipped samples' rows only, so its first Hessian is that one corrected on those rows
    (:func:`~multiconvex.solvers.newton_qp.solve_separable`'s ``curvature``).

    One per problem (the form that owns the problem keeps its own), so that two problems of the same
    shape at the same point never read each other's entries and a run's path does not depend on what else ran in
    the process. Safe to share between threads: every access holds a lock. The least recently written entry goes
    first beyond ``size`` entries.

    Examples
    --------
    >>> warm = WarmStarts()
    >>> warm.put((0, 3, 4), b"point", np.array([0, 3, 0, 1], dtype=np.int32))
    >>> warm.get((0, 3, 4), b"point").tolist(), warm.get((0, 3, 4), b"other")
    ([0, 3, 0, 1], None)
    """

    def __init__(self, size: int = 4096):
        if not (isinstance(size, int) and size > 0):
            raise InvalidInputError(f"WarmStarts: size={size!r}; give a positive number of entries")
        self.size = size
        self._entries: OrderedDict[tuple[int, int, int], tuple[bytes, np.ndarray, np.ndarray]] = OrderedDict()
        self._curvature: tuple[tuple[int, int, int], bytes, Curvature] | None = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def put(self, key: tuple[int, int, int], point: bytes, working: np.ndarray | None,
            curvature: Curvature | None = None) -> None:
        """Keep ``working`` (DAQP's ``sense`` per row, ``None`` for none active) of the own-piece solve of ``key``
        at ``point``, as its most recent entry, and its first step's ``curvature`` as the one kept."""
        rows = np.flatnonzero(working) if working is not None else np.zeros(0, dtype=np.int64)
        senses = working[rows] if working is not None else np.zeros(0, dtype=np.int32)
        with self._lock:
            self._entries.pop(key, None)
            self._entries[key] = (point, rows, senses)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
            self._curvature = (key, point, curvature) if curvature is not None else None

    def curvature(self, key: tuple[int, int, int], point: bytes) -> Curvature | None:
        """The first Hessian (with its ``φ''``) of the own-piece solve of ``key`` at ``point``, if that was the
        last own-piece solve kept, else ``None``."""
        with self._lock:
            kept = self._curvature
        return kept[2] if kept is not None and kept[0] == key and kept[1] == point else None

    def get(self, key: tuple[int, int, int], point: bytes) -> np.ndarray | None:
        """The working set (DAQP's ``sense`` per row, over ``key``'s ``samples`` rows) of the own-piece solve of
        ``key`` at ``point``, if that was the last one of that unit, else ``None``."""
        with self._lock:
            entry = self._entries.get(key)
        if entry is None or entry[0] != point or not entry[1].size:
            return None
        sense = np.zeros(key[2], dtype=np.int32)
        sense[entry[1]] = entry[2]
        return sense


def _row_max(f: np.ndarray) -> np.ndarray:
    """``max_o f_o`` per row of ``f`` (m, K), one column at a time (exact, as ``f.max(axis=1)``)."""
    top = f[:, 0].copy()
    for o in range(1, f.shape[1]):
        np.maximum(top, f[:, o], out=top)
    return top


def _logsumexp_rows(f: np.ndarray) -> np.ndarray:
    """``log Σ_o e^{f_o}`` per row of ``f`` (m, K), finite ``f``."""
    top = _row_max(f)
    return top + np.log(np.exp(f - top[:, None]) @ np.ones(f.shape[1]))


def _jacobians(arch: Architecture, params: Params, ctx: PieceContext, layer: int, idx: torch.Tensor,
               n: int) -> torch.Tensor:
    """``V_L[i, :, u]`` for the units ``idx`` of ``layer`` on the context's piece, as (g, N, K)."""
    L, g = arch.n_layers, int(idx.numel())
    if layer == L - 1:  # an output unit moves its own output only
        V = torch.zeros(g, n, arch.sizes[-1], dtype=params[0][0].dtype, device=idx.device)
        V[torch.arange(g, device=idx.device), :, idx] = 1.0
        return V
    slope = ctx.own(layer, idx)[1].T[:, :, None]  # (g, N, 1): the units' own slopes
    w_next = params[layer + 1][0][:, idx].T  # (g, n_{k+1}): their columns of the next layer's weights
    if layer + 1 == L - 1:
        return slope * w_next[:, None, :]
    # samples in rows: each later layer is one (g·N × n_j) @ (n_j × n_{j+1}) product (W_j @ V with samples as the batch
    # dimension is N tiny products, several times slower); the units' columns are folded into the layer after next
    # first, (g, n_{k+1}, n_{k+2}), so that no (g, N, n_{k+1}) tensor is formed. Later layers: their slopes only (own:
    # not their slacks, as hidden() builds).
    fold = w_next[:, :, None] * params[layer + 2][0].T[None, :, :]
    V = slope * torch.matmul(ctx.own(layer + 1, slice(None))[1], fold)
    for j in range(layer + 2, L - 1):
        V = torch.matmul(V * ctx.own(j, slice(None))[1][None, :, :], params[j + 1][0].T)
    return V


def smooth_batch(arch: Architecture, params: Params, T: torch.Tensor, layer: int, pre: list[torch.Tensor],
                 inputs: list[torch.Tensor], units: list[int] | None = None, *, flip_boundary: bool = False,
                 context: PieceContext | None = None) -> SmoothUnitBatch:
    """The unit blocks ``units`` (default: all) of ``layer`` at the point whose forward pass gave ``pre``,
    ``inputs`` (the neighbouring piece across a boundary with ``flip_boundary``; ``context`` is that point's
    :func:`~multiconvex.nets.batched.piece_context` for that side when the caller keeps it)."""
    with one_torch_thread(T.device, T.shape[0] * max(arch.sizes)):  # small tensors: see torch_threads
        return _smooth_batch(arch, params, T, layer, pre, inputs, units, flip_boundary, context)


def _smooth_batch(arch: Architecture, params: Params, T: torch.Tensor, layer: int, pre: list[torch.Tensor],
                  inputs: list[torch.Tensor], units: list[int] | None, flip_boundary: bool,
                  context: PieceContext | None) -> SmoothUnitBatch:
    """:func:`smooth_batch`, inside its torch thread setting."""
    ctx = context if context is not None else piece_context(arch, T, pre, inputs, flip_boundary)
    idx_list = list(range(arch.sizes[layer + 1])) if units is None else [int(u) for u in units]
    batch = unit_batch(arch, params, T, layer, pre, inputs, idx_list, flip_boundary=flip_boundary, context=ctx,
                       gram=False)  # the piece only: a smooth loss has no Gram
    idx = torch.as_tensor(idx_list, device=T.device, dtype=torch.long)
    V = _jacobians(arch, params, ctx, layer, idx, T.shape[0])  # (g, N, K)
    z0 = pre[layer][:, idx].T  # (g, N)
    offset = pre[-1][None, :, :] - V * z0[:, :, None]

    def np_(t: torch.Tensor) -> np.ndarray:
        return t.detach().cpu().numpy()

    zlo = zhi = None
    if batch.sign is not None:
        lo, hi = batch.z_bounds()
        zlo, zhi = np_(lo), np_(hi)
    return SmoothUnitBatch(layer, idx_list, np_(batch.theta0), np_(batch.inputs), zlo, zhi, np_(z0),
                           np.ascontiguousarray(np_(offset)), np.ascontiguousarray(np_(V)), np_(T), flip_boundary)


def scalar_loss(loss: str, offset: np.ndarray, slope: np.ndarray, targets: np.ndarray, n_samples: int) -> ScalarLoss:
    """The rows' ``φ_i(z) = ℓ(offset_i + slope_i z, t_i) / N`` with two derivatives (``"logistic"``:
    ``Σ_o log(1 + e^{−t_o f_o})``; ``"softmax"``: ``logsumexp(f) − tᵀf``), as
    :func:`~multiconvex.solvers.newton_qp.solve_separable` takes them.

    Rows whose outputs do not move (``slope_i = 0``: the unit is dead there, or its path to the output is)
    are constants: they are evaluated once.
    """
    ones = np.ones(offset.shape[1])  # sums over the K outputs as products: see rows() below
    moving = (slope != 0) @ ones > 0
    moves, still = np.flatnonzero(moving), np.flatnonzero(~moving)
    a, v, t = (offset, slope, targets) if still.size == 0 else (offset[moves], slope[moves], targets[moves])
    m = offset.shape[0]
    inv_n = 1.0 / n_samples

    if loss == "logistic":
        def rows(zm):
            u = -t * (a + v * zm[:, None])  # −t f
            val = -log_expit(-u).sum(axis=1)  # log(1 + e^u)
            d1 = (-t * v * expit(u)).sum(axis=1)
            d2 = (v * v * expit(u) * expit(-u)).sum(axis=1)
            return val, d1, d2
        fixed = np.zeros(m)
        fixed[still] = -log_expit(targets[still] * offset[still]).sum(axis=1)
    elif loss == "softmax":
        tv = (t * v) @ ones
        ta = (t * a) @ ones

        def rows(zm):
            # in place, the row maxima over the K classes column by column and the sums as products with ones:
            # numpy's reductions along a short last axis (K = 10) cost several times more
            f = v * zm[:, None]
            f += a
            top = _row_max(f)
            f -= top[:, None]
            e = np.exp(f, out=f)
            tot = e @ ones
            val = top + np.log(tot) - ta - tv * zm  # logsumexp(f) − tᵀf
            e *= v
            pv = (e @ ones) / tot
            e *= v
            return val, pv - tv, np.maximum((e @ ones) / tot - pv * pv, 0.0)
        fixed = np.zeros(m)
        fixed[still] = _logsumexp_rows(offset[still]) - (targets[still] * offset[still]) @ ones
    else:
        raise InvalidInputError(f"scalar_loss: loss={loss!r}; use 'logistic' or 'softmax' (squared-loss unit "
                                "blocks are QPs: multiconvex.nets.unit_blocks.solve_units)")

    def phi(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if moves.size == m:
            val, d1, d2 = rows(z)
            return val * inv_n, d1 * inv_n, d2 * inv_n
        val, d1, d2 = fixed.copy(), np.zeros(m), np.zeros(m)
        if moves.size:
            val[moves], d1[moves], d2[moves] = rows(z[moves])
        return val * inv_n, d1 * inv_n, d2 * inv_n

    return phi


def solve_smooth_units(arch: Architecture, batch: SmoothUnitBatch, f0: float, n_samples: int, weight_decay: float,
                       prox: float, options: dict[str, Any] | None = None, *,
                       warm: WarmStarts | None = None) -> list[dispatch.SubSolution]:
    """Each unit block of ``batch`` on its piece: one :class:`~multiconvex.solvers.dispatch.SubSolution` per unit.

    ``value`` is the proven lower bound of the block's optimum when ``prox == 0`` and the objective plus the
    prox term at ``x`` otherwise (module docstring); ``f0`` is ``F`` at the point. A crossed interval (an
    empty neighbouring piece) is ``"infeasible"``: the sample's rows contradict each other. ``weight_decay +
    prox`` must be positive (the bound divides by it). ``options`` go to DAQP. ``warm``: the problem's
    :class:`WarmStarts` (own-piece solves write to it, neighbouring-piece solves start from it; ``None``: every
    solve starts from its own point).
    """
    if not weight_decay + prox > 0:
        raise InvalidInputError(f"solve_smooth_units: weight_decay + prox = {weight_decay + prox!r}; the dual "
                                "bound needs it > 0 (solve such blocks as cone programs: multiconvex.nets.smooth_conic)"
                                )
    # the products are small (c × c from N × c): one BLAS thread; several spin against each other on a busy
    # machine (measured: 50 ms against 0.4 ms for one Hessian, N = 300, c = 65, two loaded cores). The dispatcher's
    # context sets the count directly (threadpoolctl's own ``limit`` re-inspects the libraries: ~40 µs a call)
    with dispatch.one_blas_thread():
        return [_solve_one(arch, batch, i, f0, n_samples, weight_decay, prox, options, warm)
                for i in range(batch.size)]


def _solve_one(arch: Architecture, batch: SmoothUnitBatch, i: int, f0: float, n_samples: int, weight_decay: float,
               prox: float, options: dict[str, Any] | None, warm: WarmStarts | None) -> dispatch.SubSolution:
    """Unit ``i`` of ``batch`` (see :func:`solve_smooth_units`)."""
    mu = weight_decay + prox
    C = np.ascontiguousarray(batch.inputs)
    N = C.shape[0]
    t0 = time.perf_counter()
    theta0 = batch.theta0[i]
    lo = batch.zlo[i] if batch.zlo is not None else np.full(N, -np.inf)
    hi = batch.zhi[i] if batch.zhi is not None else np.full(N, np.inf)
    if np.any(lo > hi):
        wall = time.perf_counter() - t0
        return dispatch.SubSolution(st.INFEASIBLE, None, float("nan"), BACKEND, wall, wall,
                                    [(BACKEND, st.INFEASIBLE)], "the piece is empty: a sample's interval is crossed")
    phi = scalar_loss(arch.loss, batch.offset[i], batch.slope[i], batch.targets, n_samples)
    b = prox * theta0

    def main(x: np.ndarray) -> float:  # the objective without prox, up to a constant
        return float(phi(C @ x)[0].sum() + 0.5 * weight_decay * (x @ x))

    key, point = (batch.layer, batch.units[i], N), theta0.tobytes()
    start = warm.get(key, point) if warm is not None and batch.neighbour else None
    curvature = warm.curvature(key, point) if warm is not None and batch.neighbour else None
    res = solve_separable(C, lo, hi, mu, b, phi, theta0, target=GAP_RTOL * abs(f0), max_iter=MAX_NEWTON,
                          options=options, working=start, curvature=curvature)
    if warm is not None and not batch.neighbour:
        warm.put(key, point, res.working, res.start_curvature)
    # Φ = main + (ρ/2)‖x‖² − ρθ⁰·x: at θ⁰ main is Φ + (ρ/2)‖θ⁰‖² (the solve evaluated Φ there)
    const = f0 - (res.start_value + 0.5 * prox * float(theta0 @ theta0))
    wall = time.perf_counter() - t0
    attempts = [(BACKEND, res.status)]
    if res.x is None:
        return dispatch.SubSolution(res.status, None, float("nan"), BACKEND, res.qp_time, wall, attempts,
                                    f"{BACKEND}: a Newton step's QP ended {res.status}")
    if prox == 0:
        # Φ = main exactly here: the bound on min Φ, moved by the same constant, bounds the block's optimum
        value = res.bound + const
    else:
        value = main(res.x) + const + 0.5 * prox * float((res.x - theta0) @ (res.x - theta0))
    return dispatch.SubSolution(res.status, res.x, float(value), BACKEND, res.qp_time, wall, attempts,
                                how=f"{res.iterations} Newton steps, gap {res.value - res.bound:.3g}")


__all__ = ["GAP_RTOL", "SmoothUnitBatch", "WarmStarts", "smooth_batch", "scalar_loss", "solve_smooth_units"]
