"""The torch standard form of a ReLU network: layer blocks whose subproblems are built in torch.

:class:`NetForm` implements the seam (:class:`multiconvex.standard_form.StandardForm`), so the
Jacobi and Gauss–Seidel drivers run on it unchanged. Points are keyed by unit: ``(k, u)`` is
row ``u`` of ``W_{k+1}`` with its bias appended. ``prepare`` runs one forward pass per point
(cached) and records what to build; ``solve_prepared`` builds the block's matrices in torch
(:func:`multiconvex.nets.blocks.block_data`) and hands them to a backend:

* squared loss in unit blocks (``block_size="auto"``): every unit block of a layer prepared at one
  point is built as one batch when the first of them is solved (:func:`multiconvex.nets.batched.unit_batch`:
  Grams, linear terms, one interval per sample) and solved exactly
  (:func:`multiconvex.nets.unit_blocks.solve_units`: DAQP per unit for ``"auto"``, the dispatcher for
  a named solver); a Jacobi pass or a certificate thus builds each layer's data once, a Gauss–Seidel
  step one unit's. Forward passes of nearby points are derived from each other
  (:class:`multiconvex.nets.incremental.ForwardCache`);
* squared loss in larger blocks: the block is a :class:`~multiconvex.subproblem.BlockSubproblem` (dense Gram,
  the piece as rows, one interval per sample for a unit;
  :func:`multiconvex.nets.subproblems.squared_subproblem`) solved by the one dispatcher
  (:func:`multiconvex.solvers.dispatch.solve`) with the :class:`~multiconvex.solvers.dispatch.Plan`
  resolved from the user's ``solver=`` at the front door: ``"auto"`` takes the closed form for an
  unconstrained output-layer block and DAQP (dense active set, exact) for small piece-constrained
  ones; any registry name works;
* logistic/softmax with ``solver="auto"`` in unit blocks: the unit blocks of a layer prepared at one
  point are built as one batch (:func:`multiconvex.nets.smooth_units.smooth_batch`: each sample's outputs
  affine in the unit's pre-activation, one interval per sample) and solved by Newton steps on DAQP with a
  proven lower bound (:func:`multiconvex.nets.smooth_units.solve_smooth_units`): no cones, and a
  gap-measuring solve reports the bound, so every block gap is a proof;
* logistic/softmax otherwise (a named solver, blocks of several units, or neither weight decay nor
  prox): exponential-cone programs (:class:`multiconvex.nets.smooth_conic.ConicBlocks`), straight to
  ``clarabel-native`` as matrices or through a cvxpy problem compiled once per block shape.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch

from ..errors import InvalidInputError
from ..solvers import dispatch
from ..solvers.cvxpy_adapter import options_for
from ..solvers.registry import get_backend
from ..standard_form import Block, BlockSolution, Point, StandardForm
from ..subproblem import BlockSubproblem
from .adjacent import layer_kinks
from .batched import boundary_units, piece_context, unit_batch
from .blocks import ENTRY_BUDGET, BlockData, block_boundary, block_data, make_blocks
from .incremental import ForwardCache
from .network import DTYPE, Architecture, Params, check_data, init_params
from .smooth_conic import ConicBlocks
from .smooth_units import WarmStarts, smooth_batch, solve_smooth_units
from .subproblems import block_problem_class, block_values, squared_subproblem
from .unit_blocks import solve_units

logger = logging.getLogger("multiconvex")


class NetForm(StandardForm):
    """Standard form of ``F(θ)`` (see :mod:`multiconvex.nets.network`) with layer/unit-group blocks.

    Parameters
    ----------
    arch : Architecture
    X, T : torch.Tensor
        Inputs ``(N, d)`` and encoded targets ``(N, n_out)`` on the model's device, float64.
    weight_decay : float
    plan : multiconvex.solvers.dispatch.Plan, optional
        The user's ``solver=`` resolved once (:func:`multiconvex.solvers.dispatch.make_plan`): the
        squared-loss blocks' subproblems go to :func:`multiconvex.solvers.dispatch.solve` with it.
        Default: ``"auto"`` with ``solver_options``.
    backends_for : callable
        ``(cvxpy problem, block name) -> list of backends`` (``solvers.resolve`` per problem class), for
        logistic/softmax blocks when ``resolve_class`` is not given.
    resolve_class : callable, optional
        ``(problem class, block name) -> list of backends`` for logistic/softmax blocks. When given, the
        class comes from :func:`block_problem_class` and no cvxpy problem is built unless a cvxpy backend
        is needed; a matrix-level backend first in the list (``clarabel-native``) gets the matrices
        directly, the cvxpy backends after it are the fallback.
    block_size : "auto", "layer", "unit" or int
        See :func:`multiconvex.nets.blocks.make_blocks`; ``"auto"`` means ``"unit"`` for squared loss
        (every backend then gets the block in its own variables) and for logistic/softmax with
        ``solver="auto"`` (the Newton path) or when the first backend is matrix-level (``clarabel-native``).
    solver_options : dict, optional
        Passed through to the backend.

    Attributes
    ----------
    smooth_batches : bool
        Logistic/softmax with ``solver="auto"`` in unit blocks: solved as batches like ``unit_batches`` by
        Newton steps on DAQP (:mod:`multiconvex.nets.smooth_units`) whenever ``weight_decay + prox > 0``; a
        gap-measuring solve reports its proven lower bound as the block's value.
    unit_batches : bool
        Squared loss in unit blocks: the unit blocks of a layer prepared at one point are built and solved as
        one batch (:mod:`multiconvex.nets.batched`, :mod:`multiconvex.nets.unit_blocks`). Set it to False for
        the per-block path (:func:`~multiconvex.nets.blocks.block_data`, then the dispatcher for each unit).
    """

    def __init__(self, arch: Architecture, X: torch.Tensor, T: torch.Tensor, weight_decay: float, *,
                 backends_for=None, block_size: int | str | None = "auto", budget: int = ENTRY_BUDGET,
                 solver_options: Mapping[str, Any] | None = None, resolve_class=None,
                 plan: dispatch.Plan | None = None):
        check_data(arch, X, T, where="NetForm", weight_decay=weight_decay)
        self.arch, self.X, self.T = arch, X, T
        self.weight_decay = float(weight_decay)
        self.device = X.device
        self.T_np = T.detach().cpu().numpy()
        self._resolve_class = resolve_class
        self.solver_options = dict(solver_options or {})
        self.plan = plan if plan is not None else dispatch.make_plan("auto", options=self.solver_options)
        if arch.loss == "squared":  # those blocks go to the dispatcher: a named backend must take their class
            for layer in range(arch.n_layers):
                self.plan.check_class(block_problem_class(arch, layer), f"the layer-{layer + 1} blocks")
        smooth_auto = arch.loss != "squared" and self.plan.auto
        if block_size == "auto" and (arch.loss == "squared" or smooth_auto or resolve_class is not None and getattr(
                resolve_class(block_problem_class(arch, 0), "layer1")[0], "matrix_level", False)):
            # measured (benchmarks/results/relu.json): in the block's own variables a unit's piece
            # is one interval per sample, so unit blocks are far cheaper than groups (on diabetes
            # [10, 64, 64, 1]: ~5 s per sweep against minutes for the groups of 7)
            block_size = "unit"
        self.layer_blocks = make_blocks(arch, X.shape[0], block_size, budget)
        self.blocks = [Block(b.name, tuple((b.layer, u) for u in b.units)) for b in self.layer_blocks]
        self._backends_for = backends_for
        self._conic = ConicBlocks(self)
        self._prepared: dict[int, tuple[Point, float, bool]] = {}
        self._shipped: dict[int, tuple[BlockSubproblem, np.ndarray, float]] = {}
        self._fwd = ForwardCache(arch, X, T, self.weight_decay)
        # the adjacent-piece lower models of the last point asked (outside the size-3 forward cache, which a step's
        # halvings cycle through): (point, F, {layer: (kinks, {(unit, tol): AdjacentBound})})
        self._adjacent_kept: tuple[Point, float, dict] | None = None
        # squared loss in unit blocks: every unit block of a layer prepared at one point is built and
        # solved as one batch (multiconvex.nets.batched, .unit_blocks) when the first of them is solved
        units = all(len(b.units) == 1 for b in self.layer_blocks)
        self.unit_batches = arch.loss == "squared" and units
        # logistic/softmax with "auto" in unit blocks: Newton steps on DAQP with a dual bound, batched likewise
        # (a solve with weight_decay + prox = 0 has no bound of that kind: it takes the cone path)
        self.smooth_batches = smooth_auto and units
        self._smooth_prepared: set[int] = set()  # blocks prepared for that path (prepare runs in the driver's thread)
        self._smooth_warm = WarmStarts()  # this problem's own-piece working sets, for its neighbouring-piece solves
        self._unit_done: dict[int, BlockSolution] = {}
        self._unit_lock = threading.Lock()
        self.build_time = 0.0
        self.build_seconds = 0.0  # torch and numpy time building block subproblems (outside the backend)

    # -- points ------------------------------------------------------------------------------
    def keys(self) -> list[Hashable]:
        return [(k, u) for k in range(self.arch.n_layers) for u in range(self.arch.sizes[k + 1])]

    def initial_point(self, seed: int | None, init: Mapping[Any, Any] | None) -> Point:
        params = init_params(self.arch, seed, self.device) if init is None else init
        return self.point_from_params(params)

    def point_from_params(self, params: Params) -> Point:
        point: Point = {}
        for k, (W, b) in enumerate(params):
            rows = torch.cat([W] + ([b[:, None]] if b is not None else []), dim=1).detach().cpu().numpy()
            for u in range(rows.shape[0]):
                point[(k, u)] = rows[u].copy()
        return point

    def params_from_point(self, point: Point) -> Params:
        params: Params = []
        for k in range(self.arch.n_layers):
            rows = np.stack([point[(k, u)] for u in range(self.arch.sizes[k + 1])])
            t = torch.as_tensor(rows, dtype=DTYPE, device=self.device)
            params.append((t[:, :-1], t[:, -1]) if self.arch.bias else (t, None))
        return params

    def evaluate(self, point: Point) -> tuple[float, float]:
        val = self._fwd.get(point).f
        return (val, 0.0) if np.isfinite(val) else (float("inf"), float("inf"))

    def _forward(self, point: Point):
        e = self._fwd.get(point)
        return e.params, e.pre, e.inputs, e.f

    def piece(self, point: Point) -> tuple[np.ndarray, ...]:
        _, pre, _, _ = self._forward(point)
        return tuple((z >= 0).cpu().numpy() for z in pre[:-1])

    # -- block subproblems -------------------------------------------------------------------
    def prepare(self, index: int, point: Point, *, prox: float = 0.0, flip_boundary: bool = False) -> bool:
        entry = self._fwd.get(point)
        smooth_here = self.smooth_batches and self.weight_decay + prox > 0
        if self.arch.loss != "squared" and not smooth_here:
            self._conic.shape(index)
        self._prepared[index] = (point, float(prox), flip_boundary)
        if smooth_here:
            self._smooth_prepared.add(index)
        else:
            self._smooth_prepared.discard(index)
        block = self.layer_blocks[index]
        if not (self.unit_batches or smooth_here):
            return block_boundary(self.arch, block, entry.pre)
        self._unit_done.pop(index, None)
        key = ("boundary", block.layer)
        if key not in entry.extra:
            entry.extra[key] = boundary_units(self.arch, block.layer, entry.pre).cpu().numpy()
        return bool(entry.extra[key][block.units[0]])

    def _solve_unit_batch(self, index: int) -> BlockSolution:
        """Block ``index`` and every other unit block of its layer prepared at the same point (same prox and
        piece side), built as one batch (:func:`~multiconvex.nets.batched.unit_batch` for squared loss,
        :func:`~multiconvex.nets.smooth_units.smooth_batch` for logistic/softmax) and solved together; the
        others' solutions wait for their own :meth:`solve_prepared` call."""
        with self._unit_lock:
            done = self._unit_done.pop(index, None)
            if done is not None:
                return done
            t0 = time.perf_counter()
            point, prox, flip = prep = self._prepared.pop(index)
            layer = self.layer_blocks[index].layer
            group = [index] + [j for j, p in list(self._prepared.items())
                               if p[0] is point and p[1:] == prep[1:] and self.layer_blocks[j].layer == layer]
            for j in group[1:]:
                del self._prepared[j]
            entry = self._fwd.get(point)
            units = [self.layer_blocks[j].units[0] for j in group]
            with torch.no_grad():
                key = ("piece", flip)
                if key not in entry.extra:
                    entry.extra[key] = piece_context(self.arch, self.T, entry.pre, entry.inputs, flip)
                if self.unit_batches:
                    batch = unit_batch(self.arch, entry.params, self.T, layer, entry.pre, entry.inputs, units,
                                       flip_boundary=flip, context=entry.extra[key])
                else:
                    smooth = smooth_batch(self.arch, entry.params, self.T, layer, entry.pre, entry.inputs, units,
                                          flip_boundary=flip, context=entry.extra[key])
            self.build_seconds += time.perf_counter() - t0
            if self.unit_batches:
                sols = solve_units(self.arch, batch, entry.f, self.X.shape[0], self.weight_decay, prox, self.plan,
                                   [self.blocks[j].name for j in group])
                theta0 = batch.theta0.detach().cpu().numpy()
            else:
                sols = solve_smooth_units(self.arch, smooth, entry.f, self.X.shape[0], self.weight_decay, prox,
                                          options_for(get_backend("daqp"), self.plan.options), warm=self._smooth_warm)
                theta0 = smooth.theta0
            for n, (j, sol) in enumerate(zip(group, sols)):
                self._unit_done[j] = self._block_solution(j, None, theta0[n], prox, sol)
            return self._unit_done.pop(index)

    def block_data(self, index: int, point: Point, flip_boundary: bool = False) -> BlockData:
        """The matrices of block ``index``'s subproblem at ``point`` (torch, on the model's device)."""
        params, pre, inputs, _ = _forward_uncached(self, point)
        with torch.no_grad():
            return block_data(self.arch, params, self.T, self.layer_blocks[index], pre, inputs,
                              flip_boundary=flip_boundary)

    def subproblem(self, index: int, point: Point, *, prox: float = 0.0,
                   flip_boundary: bool = False) -> BlockSubproblem:
        """Squared loss: block ``index``'s subproblem at ``point`` as a value (its ``value`` at ``θ`` is
        ``F`` with the block at ``θ``, on the piece, plus ``prox/2 ‖θ − θ⁰‖²``)."""
        if self.arch.loss != "squared":
            raise InvalidInputError(f"NetForm.subproblem: {self.arch.loss} blocks are exponential-cone "
                                    f"programs, not BlockSubproblem values yet; use solve_prepared.")
        params, pre, inputs, f0 = _forward_uncached(self, point)
        block = self.layer_blocks[index]
        with torch.no_grad():
            data = block_data(self.arch, params, self.T, block, pre, inputs, flip_boundary=flip_boundary,
                              factor=False)
        return squared_subproblem(self.arch, block, data, f0, self.X.shape[0], self.weight_decay, prox)

    def solve_prepared(self, index: int) -> BlockSolution:
        if self.unit_batches or index in self._smooth_prepared:
            return self._solve_unit_batch(index)
        point, prox, flip = self._prepared[index]
        if self.arch.loss == "squared":
            t0 = time.perf_counter()
            sub = self.subproblem(index, point, prox=prox, flip_boundary=flip)
            theta0 = np.concatenate([point[key] for key in self.blocks[index].keys])
            self.build_seconds += time.perf_counter() - t0
            sol = dispatch.solve(sub, self.plan, warm=theta0, key=self.blocks[index].name,
                                 cutoff=self._cutoff(point, prox, flip))
            out = self._block_solution(index, sub, theta0, prox, sol)
            out.wall_time = time.perf_counter() - t0
            return out
        return self._conic.solve(index, point, prox, flip)

    def set_deadline(self, deadline: float | None) -> None:
        """The run's deadline on the dispatcher's plan (see :meth:`StandardForm.set_deadline`)."""
        self.plan.deadline = deadline

    def ship(self, index: int) -> tuple[Any, Any] | None:
        """Squared loss: the prepared block's subproblem and plan as plain data for a process pool or
        a Dask worker (built here, solved there); logistic/softmax blocks stay in this process."""
        if self.arch.loss != "squared":
            return None
        point, prox, flip = self._prepared[index]
        t0 = time.perf_counter()
        sub = self.subproblem(index, point, prox=prox, flip_boundary=flip)
        theta0 = np.concatenate([point[key] for key in self.blocks[index].keys])
        self.build_seconds += time.perf_counter() - t0
        self._shipped[index] = (sub, theta0, prox)
        return dispatch.solve_task, (sub, self.plan.portable(), theta0, self.blocks[index].name,
                                     self._cutoff(point, prox, flip))

    def _cutoff(self, point: Point, prox: float, flip: bool) -> float | None:
        """The objective at ``point`` for a solve on the neighbouring piece without prox, else ``None``.

        Such a piece matters to the driver only if it holds a lower value than the point, which the own piece
        already offers. So a lower bound above the point's value ends its solve (status ``"cutoff"``). With
        prox, the driver compares the solutions' values without it, so nothing is cut off there."""
        return self._fwd.get(point).f if flip and prox == 0 else None

    def receive(self, index: int, result: dispatch.SubSolution) -> BlockSolution:
        sub, theta0, prox = self._shipped.pop(index)
        return self._block_solution(index, sub, theta0, prox, result)

    def _block_solution(self, index: int, sub: BlockSubproblem | None, theta0: np.ndarray, prox: float,
                        sol: dispatch.SubSolution) -> BlockSolution:
        """The dispatcher's answer as the driver's: new values and the true objective (prox taken off)."""
        block = self.layer_blocks[index]
        out = BlockSolution(block=index, status=sol.status, backend=sol.backend, solve_time=sol.solve_time,
                            wall_time=sol.wall_time, attempts=list(sol.attempts))
        if sol.ok:
            out.values = block_values(block, sol.x)
            out.value = sol.value - prox / 2 * float(np.sum((sol.x - theta0) ** 2))
        else:
            out.message = sol.message or f"block {block.name}: {sol.status}"
        return out

    def load(self, point: Point) -> None:
        self.final_point = point

    def named_values(self, point: Point) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for k, (W, b) in enumerate(self.params_from_point(point)):
            out[f"W{k + 1}"] = W.cpu().numpy().copy()
            if b is not None:
                out[f"b{k + 1}"] = b.cpu().numpy().copy()
        return out

    def adjacent_gap_bound(self, index: int, point: Point, tol: float | None = None) -> float | None:
        """A unit block (any loss): an upper bound of unit block ``index``'s gap over every piece containing
        ``point`` (:mod:`multiconvex.nets.adjacent`: the layer's lower models built at once and kept with the point's
        forward pass; with ``tol``, no bounded least squares once a bound is ``≤ tol``), at most ``F`` (``F ≥ 0``);
        ``None`` where the own and neighbouring pieces are all of them, and for layer blocks (their claim stays the
        two-piece one). Logistic/softmax blocks get the linear lower model (``P = λI``: a proof, looser the
        smaller the weight decay), refined with tangents at trial steps where it is above ``tol``
        (:mod:`multiconvex.nets.adjacent_smooth`)."""
        found = self._adjacent(index, point, tol)
        if found is None or found.bound is None or math.isnan(found.bound):
            return None if found is None else found.bound
        return min(found.bound, self._adjacent_state(point)[1])  # no block lowers F ≥ 0 by more than F

    def adjacent_step(self, index: int, point: Point, tol: float | None = None) -> dict[Hashable, np.ndarray] | None:
        """Unit block ``index`` moved along its bound's worst direction (:attr:`AdjacentBound.direction`, where the
        one-sided derivative is ``−2·first_order``), halving the step from the lower model's minimiser until ``F``
        falls; ``None`` without a positive bound, when 40 halvings find no lower ``F``, or once the run's deadline
        (:meth:`set_deadline`) has passed (checked before each halving's forward pass). The point's lower models are
        kept outside the forward cache (:meth:`_adjacent`), so the halvings' passes do not make the next block's step
        rebuild them."""
        found = self._adjacent(index, point, tol)
        if found is None or found.direction is None or not (found.bound or 0.0) > 0:
            return None
        key = self.blocks[index].keys[0]
        f0 = self._adjacent_state(point)[1]
        theta0, d = point[key], found.direction
        for halving in range(40):
            left = self.plan.remaining()
            if left is not None and left <= 0:  # the run's time is up: no more forward passes
                return None
            values = {key: theta0 + 0.5 ** halving * d}
            if self.evaluate({**point, **values})[0] < f0:
                return values
        return None

    def _adjacent_state(self, point: Point) -> tuple[Point, float, dict]:
        """``(point, F, lower models per layer)`` of ``point``: kept for the last point asked, replaced by a new one
        (the driver asks every block at one point, then moves on). Compared by identity, as the forward cache."""
        kept = self._adjacent_kept
        if kept is None or kept[0] is not point:
            kept = (point, self._fwd.get(point).f, {})
            self._adjacent_kept = kept
        return kept

    def _adjacent(self, index: int, point: Point, tol: float | None):
        """The :class:`~multiconvex.nets.adjacent_unit.AdjacentBound` of unit block ``index`` (``None``: no bound), the
        layer's :class:`~multiconvex.nets.adjacent_unit.UnitKinks` built once per point (:meth:`_adjacent_state`); every
        loss, unit blocks only (a layer block keeps the two-piece claim)."""
        block = self.layer_blocks[index]
        if len(block.units) != 1:
            return None
        layers = self._adjacent_state(point)[2]
        if block.layer not in layers:
            entry = self._fwd.get(point)
            layers[block.layer] = (layer_kinks(self.arch, entry.params, self.T, block.layer, entry.pre, entry.inputs,
                                               self.weight_decay), {})
        kinks, found = layers[block.layer]
        unit = block.units[0]
        if kinks[unit] is None:
            return None
        if (unit, tol) not in found:
            found[(unit, tol)] = kinks[unit].bound(tol)
        return found[(unit, tol)]


def _forward_uncached(form: NetForm, point: Point):
    """The forward pass of ``point`` (the cache is thread-safe: solves may run in worker threads)."""
    return form._forward(point)


def params_from_named(arch: Architecture, values: Mapping[str, Any], device: torch.device, *,
                      where: str = "params_from_named", name: str = "values", finite: bool = True) -> Params:
    """``{"W1": ..., "b1": ...}`` -> torch parameters: exactly the architecture's keys (no ``b`` without bias), of its
    shapes, finite unless ``finite=False`` (checked; ``where`` and ``name`` for the messages, e.g. ``"ReLUNetwork.fit"``
    and ``"init"``)."""
    keys = [f"{p}{k + 1}" for k in range(len(arch.sizes) - 1) for p in (("W", "b") if arch.bias else ("W",))]
    if not isinstance(values, Mapping):
        raise InvalidInputError(f"{where}: {name} must be a dict {{'W1': ..., 'b1': ...}}, got "
                                f"{type(values).__name__}.")
    missing, unknown = [k for k in keys if k not in values], sorted(map(str, set(values) - set(keys)))
    if missing or unknown:
        what = " and ".join(f"{label} {ks}" for label, ks in (("lacks", missing), ("has unknown keys", unknown)) if ks)
        raise InvalidInputError(f"{where}: {name} {what}; give exactly {keys} for sizes {arch.sizes}.")

    def array(key: str, shape: tuple[int, ...]) -> np.ndarray:
        try:
            a = np.asarray(values[key], dtype=float)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"{where}: {name}[{key!r}] is not an array of numbers ({exc}).") from exc
        a = a.reshape(-1) if key.startswith("b") and a.size == shape[0] else a
        if a.shape != shape:
            raise InvalidInputError(f"{where}: {name}[{key!r}] has shape {a.shape}, expected {shape}.")
        if finite and not np.isfinite(a).all():
            raise InvalidInputError(f"{where}: {name}[{key!r}] has non-finite entries (NaN or inf); give finite "
                                    "weights.")
        return a

    params: Params = []
    for k, (m, n) in enumerate(zip(arch.sizes[:-1], arch.sizes[1:])):
        W = torch.as_tensor(array(f"W{k + 1}", (n, m)), dtype=DTYPE, device=device)
        b = torch.as_tensor(array(f"b{k + 1}", (n,)), dtype=DTYPE, device=device) if arch.bias else None
        params.append((W, b))
    return params


__all__ = ["NetForm", "params_from_named", "block_problem_class"]
