"""The torch standard form of a ReLU network: layer blocks whose subproblems are built in torch.

:class:`NetForm` implements the seam (:class:`multiconvex.standard_form.StandardForm`), so the
Jacobi and Gauss–Seidel drivers run on it unchanged. Points are keyed by unit: ``(k, u)`` is
row ``u`` of ``W_{k+1}`` with its bias appended. ``prepare`` runs one forward pass per point
(cached) and records what to build; ``solve_prepared`` builds the block's matrices in torch
(:func:`multiconvex.nets.blocks.block_data`) and hands them to the backend through a cvxpy
problem compiled **once** per block shape (layer, group size) with Parameters for every
matrix (DPP): blocks of the same shape share it, one solve at a time.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Hashable, Mapping

import cvxpy as cp
import numpy as np
import torch

from ..errors import InvalidInputError, LicenceError, SolverUnavailableError
from ..standard_form import Block, BlockSolution, Point, StandardForm
from .blocks import ENTRY_BUDGET, BlockData, LayerBlock, block_boundary, block_data, make_blocks
from .network import DTYPE, Architecture, Params, forward, init_params, objective

logger = logging.getLogger("multiconvex")


class _Subproblem:
    """One compiled cvxpy problem for every block of a shape: data loss + weight decay, piece kept."""

    def __init__(self, arch: Architecture, n_samples: int, layer: int, g: int, n_later_rows: int,
                 weight_decay: float):
        N, K = n_samples, arch.sizes[-1]
        c = arch.sizes[layer] + int(arch.bias)
        p = g * c
        self.theta = cp.Variable(p, name="theta")
        th = self.theta
        if arch.loss == "squared":
            self.R, self.d = cp.Parameter((p, p), name="R"), cp.Parameter(p, name="d")
            loss = cp.sum_squares(self.R @ th - self.d) / (2 * N)
        else:
            self.A, self.c = cp.Parameter((N * K, p), name="A"), cp.Parameter(N * K, name="c")
            z = self.A @ th + self.c
            if arch.loss == "logistic":  # A, c carry the sign −t: loss = log(1 + exp(−t f))
                loss = cp.sum(cp.logistic(z)) / N
            else:
                self.q = cp.Parameter(p, name="q")  # Σ_i A_iᵀ t_i: the linear part −tᵀf
                loss = (cp.sum(cp.log_sum_exp(cp.reshape(z, (N, K), order="C"), axis=1)) - self.q @ th) / N
        self.main = loss + (weight_decay / 2) * cp.sum_squares(th) if weight_decay else loss
        self.rho = cp.Parameter(nonneg=True, value=0.0, name="rho")
        self.anchor = cp.Parameter(p, value=np.zeros(p), name="anchor")
        obj = self.main + self.rho / 2 * cp.sum_squares(th) - self.anchor @ th
        cons = []
        self.own: list[cp.Parameter] = []
        if layer < arch.n_layers - 1:
            for u in range(g):
                P = cp.Parameter((N, c), name=f"own{u}")
                self.own.append(P)
                cons.append(P @ th[u * c:(u + 1) * c] >= 0)
        self.G = self.h = None
        if n_later_rows:
            self.G, self.h = cp.Parameter((n_later_rows, p), name="G"), cp.Parameter(n_later_rows, name="h")
            cons.append(self.G @ th + self.h >= 0)
        self.problem = cp.Problem(cp.Minimize(obj), cons)
        self.lock = threading.Lock()
        self.backends: list | None = None

    def set_data(self, data: BlockData, T: np.ndarray | None, loss: str, prox: float) -> None:
        def np_(t):
            return t.detach().cpu().numpy()

        if loss == "squared":
            self.R.value, self.d.value = np_(data.R), np_(data.d)
        elif loss == "logistic":
            sign = -T.reshape(-1)
            self.A.value, self.c.value = sign[:, None] * np_(data.A), sign * np_(data.c)
        else:
            A = np_(data.A)
            self.A.value, self.c.value = A, np_(data.c)
            self.q.value = A.T @ T.reshape(-1)
        for P, rows in zip(self.own, data.own if data.own is not None else []):
            P.value = np_(rows)
        if self.G is not None:
            self.G.value, self.h.value = np_(data.G), np_(data.h)
        theta0 = np_(data.theta0)
        self.rho.value = float(prox)
        self.anchor.value = float(prox) * theta0
        self.theta.value = theta0  # warm start, and the point where the constant is matched


class NetForm(StandardForm):
    """Standard form of ``F(θ)`` (see :mod:`multiconvex.nets.network`) with layer/unit-group blocks.

    Parameters
    ----------
    arch : Architecture
    X, T : torch.Tensor
        Inputs ``(N, d)`` and encoded targets ``(N, n_out)`` on the model's device, float64.
    weight_decay : float
    backends_for : callable
        ``(cvxpy problem, block name) -> list of backends`` (``solvers.resolve`` per problem class).
    block_size : "auto", "layer", "unit" or int
        See :func:`multiconvex.nets.blocks.make_blocks`.
    solver_options : dict, optional
        Passed through to the backend.
    """

    def __init__(self, arch: Architecture, X: torch.Tensor, T: torch.Tensor, weight_decay: float, *,
                 backends_for, block_size: int | str | None = "auto", budget: int = ENTRY_BUDGET,
                 solver_options: Mapping[str, Any] | None = None):
        self.arch, self.X, self.T = arch, X, T
        self.weight_decay = float(weight_decay)
        self.device = X.device
        self.T_np = T.detach().cpu().numpy()
        self.layer_blocks = make_blocks(arch, X.shape[0], block_size, budget)
        self.blocks = [Block(b.name, tuple((b.layer, u) for u in b.units)) for b in self.layer_blocks]
        self.solver_options = dict(solver_options or {})
        self._backends_for = backends_for
        self._shapes: dict[tuple[int, int], _Subproblem] = {}
        self._shape_lock = threading.Lock()
        self._prepared: dict[int, tuple[Point, float, bool]] = {}
        self._cache: tuple[Point, Any] | None = None
        self.build_time = 0.0
        self.build_seconds = 0.0  # torch time building block matrices (outside the backend)

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
        with torch.no_grad():
            val = float(objective(self.arch, self.params_from_point(point), self.X, self.T, self.weight_decay))
        return (val, 0.0) if np.isfinite(val) else (float("inf"), float("inf"))

    def _forward(self, point: Point):
        if self._cache is not None and self._cache[0] is point:
            return self._cache[1]
        params = self.params_from_point(point)
        with torch.no_grad():
            out, pre, inputs = forward(self.arch, params, self.X)
            f = float(objective(self.arch, params, self.X, self.T, self.weight_decay))
        self._cache = (point, (params, pre, inputs, f))
        return self._cache[1]

    def piece(self, point: Point) -> tuple[np.ndarray, ...]:
        _, pre, _, _ = self._forward(point)
        return tuple((z >= 0).cpu().numpy() for z in pre[:-1])

    # -- block subproblems -------------------------------------------------------------------
    def _shape(self, index: int) -> _Subproblem:
        b = self.layer_blocks[index]
        key = (b.layer, len(b.units))
        with self._shape_lock:
            if key not in self._shapes:
                t0 = time.perf_counter()
                later = self.X.shape[0] * sum(self.arch.sizes[j + 1] for j in range(b.layer + 1, self.arch.n_layers - 1))
                sub = _Subproblem(self.arch, self.X.shape[0], b.layer, len(b.units), later, self.weight_decay)
                sub.backends = self._backends_for(sub.problem, b.name)
                self._shapes[key] = sub
                self.build_time += time.perf_counter() - t0
            return self._shapes[key]

    def prepare(self, index: int, point: Point, *, prox: float = 0.0, flip_boundary: bool = False) -> bool:
        _, pre, _, _ = self._forward(point)
        self._shape(index)
        self._prepared[index] = (point, float(prox), flip_boundary)
        return block_boundary(self.arch, self.layer_blocks[index], pre)

    def block_data(self, index: int, point: Point, flip_boundary: bool = False) -> BlockData:
        """The matrices of block ``index``'s subproblem at ``point`` (torch, on the model's device)."""
        params, pre, inputs, _ = _forward_uncached(self, point)
        with torch.no_grad():
            return block_data(self.arch, params, self.T, self.layer_blocks[index], pre, inputs,
                              flip_boundary=flip_boundary)

    def solve_prepared(self, index: int) -> BlockSolution:
        from ..solvers import has_solution, solve_cvxpy

        point, prox, flip = self._prepared[index]
        block = self.layer_blocks[index]
        t0 = time.perf_counter()
        params, pre, inputs, f0 = _forward_uncached(self, point)
        with torch.no_grad():
            data = block_data(self.arch, params, self.T, block, pre, inputs, flip_boundary=flip)
        sub = self._shapes[(block.layer, len(block.units))]
        with sub.lock:
            sub.set_data(data, self.T_np, self.arch.loss, prox)
            # the subproblem's objective drops constants: match it to F at the point (on its piece)
            const = f0 - float(sub.main.value)
            self.build_seconds += time.perf_counter() - t0
            try:
                report = solve_cvxpy(sub.problem, sub.backends, self.solver_options, warm_start=True)
            except (LicenceError, SolverUnavailableError):
                raise
            except Exception as exc:  # noqa: BLE001 - normalised; the driver keeps the point
                return BlockSolution(block=index, status=getattr(exc, "status", "solver_error"),
                                     wall_time=time.perf_counter() - t0, message=str(exc),
                                     solve_time=time.perf_counter() - t0)
            sol = BlockSolution(block=index, status=report.status, backend=report.backend,
                                solve_time=report.solve_time, wall_time=time.perf_counter() - t0,
                                attempts=list(report.attempts))
            if has_solution(report.status) and sub.theta.value is not None:
                theta = np.asarray(sub.theta.value, dtype=float).reshape(len(block.units), -1)
                sol.values = {(block.layer, u): theta[i].copy() for i, u in enumerate(block.units)}
                main = float(report.value) if prox == 0 else float(sub.main.value)
                sol.value = main + const
            else:
                sol.message = f"backend {report.backend} ended with status {report.status}"
        return sol

    def load(self, point: Point) -> None:
        self.final_point = point

    def named_values(self, point: Point) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for k, (W, b) in enumerate(self.params_from_point(point)):
            out[f"W{k + 1}"] = W.cpu().numpy().copy()
            if b is not None:
                out[f"b{k + 1}"] = b.cpu().numpy().copy()
        return out


def _forward_uncached(form: NetForm, point: Point):
    """Forward pass without touching the driver-thread cache (solves may run in worker threads)."""
    cached = form._cache
    if cached is not None and cached[0] is point:
        return cached[1]
    params = form.params_from_point(point)
    with torch.no_grad():
        _, pre, inputs = forward(form.arch, params, form.X)
        f = float(objective(form.arch, params, form.X, form.T, form.weight_decay))
    return params, pre, inputs, f


def params_from_named(arch: Architecture, values: Mapping[str, Any], device: torch.device) -> Params:
    """``{"W1": ..., "b1": ...}`` -> torch parameters (checked shapes)."""
    params: Params = []
    for k, (m, n) in enumerate(zip(arch.sizes[:-1], arch.sizes[1:])):
        W = np.asarray(values[f"W{k + 1}"], dtype=float)
        if W.shape != (n, m):
            raise InvalidInputError(f"W{k + 1} has shape {W.shape}, expected {(n, m)}.")
        b = None
        if arch.bias:
            b = np.asarray(values[f"b{k + 1}"], dtype=float).reshape(-1)
            if b.shape != (n,):
                raise InvalidInputError(f"b{k + 1} has shape {b.shape}, expected {(n,)}.")
            b = torch.as_tensor(b, dtype=DTYPE, device=device)
        params.append((torch.as_tensor(W, dtype=DTYPE, device=device), b))
    return params


__all__ = ["NetForm", "params_from_named"]
