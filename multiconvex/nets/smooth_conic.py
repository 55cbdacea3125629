"""Logistic/softmax blocks as exponential-cone programs: Clarabel on matrices, or a compiled cvxpy problem.

The path of a named solver (``clarabel-native``, ``clarabel``, ``scs``, ...) for the logistic/softmax
blocks of :class:`multiconvex.nets.form.NetForm`, and of ``"auto"`` where the cone-free Newton path
(:mod:`multiconvex.nets.smooth_units`) does not apply (blocks of several units, no weight decay and no prox):

* :class:`NativeSmoothBlock` — straight to ``clarabel-native``: Clarabel's ``P, q, A, b`` and cones
  (:func:`multiconvex.nets.subproblems.conic_matrices`, ``N · classes`` exponential cones), the
  solver's data updated in place between solves;
* :class:`CvxpySmoothBlock` — a cvxpy problem compiled **once** per block shape (layer, group size)
  with Parameters for every matrix (DPP); blocks of the same shape share it, one solve at a time.

:class:`ConicBlocks` keeps one of them per block shape and solves a prepared block with it (the cvxpy
backends after a failed native solve are the fallback).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import cvxpy as cp
import numpy as np
import torch
from scipy.special import logsumexp

from ..errors import InvalidInputError, LicenceError, SolverUnavailableError
from ..solvers import has_solution
from ..solvers.clarabel_qp import set_time_limit
from ..solvers.cvxpy_adapter import options_for
from ..solvers.cvxpy_adapter import solve_block as solve_block_cvxpy
from ..standard_form import BlockSolution
from .blocks import BlockData, block_data
from .network import Architecture
from .subproblems import block_problem_class, block_values, conic_matrices

#: Past this many parameter entries a block's cvxpy problem is compiled with ``ignore_dpp`` (the parameters taken as
#: numbers, compiled at each solve): cvxpy's parametrised compile of the quadratic objective forms a dense
#: ``(variables + rows) × parameter entries`` array — 36.7 GiB for logistic layer blocks of 16 units on 5,000 samples
#: (965,098 entries; a MemoryError, then the process killed), and on 300 samples (58,000) it took 5.4 s for three
#: sweeps against 2.5 s without. On 60 samples (11,700) the parametrised problem is faster (0.63 s against 1.13 s).
DPP_PARAMETERS = 20_000


class CvxpySmoothBlock:
    """One compiled cvxpy problem for every logistic/softmax block of a shape: data loss + weight
    decay, piece kept."""

    def __init__(self, arch: Architecture, n_samples: int, layer: int, g: int, n_later_rows: int,
                 weight_decay: float):
        N, K = n_samples, arch.sizes[-1]
        c = arch.sizes[layer] + int(arch.bias)
        p = g * c
        self.theta = cp.Variable(p, name="theta")
        th = self.theta
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
        self.ignore_dpp = sum(par.size for par in self.problem.parameters()) > DPP_PARAMETERS
        self.lock = threading.Lock()
        self.backends: list | None = None

    def set_data(self, data: BlockData, T: np.ndarray, loss: str, prox: float) -> None:
        def np_(t):
            return t.detach().cpu().numpy()

        if loss == "logistic":
            sign = -T.reshape(-1)
            self.A.value, self.c.value = sign[:, None] * np_(data.A), sign * np_(data.c)
        else:
            A = np_(data.A)
            self.A.value, self.c.value = A, np_(data.c)
            self.q.value = A.T @ T.reshape(-1)
        for P, rows in zip(self.own, data.own if data.own is not None else []):
            P.value = np_(rows)
        if self.G is not None and self.h is not None:
            self.G.value, self.h.value = np_(data.G), np_(data.h)
        theta0 = np_(data.theta0)
        self.rho.value = float(prox)
        self.anchor.value = float(prox) * theta0
        self.theta.value = theta0  # warm start, and the point where the constant is matched


class NativeSmoothBlock:
    """A logistic/softmax block shape's exponential-cone program, handed to Clarabel as matrices
    (:func:`multiconvex.nets.subproblems.conic_matrices`); the solver's data is updated in place
    between solves while the sparsity pattern stays the same, and rebuilt otherwise.
    """

    def __init__(self, arch: Architecture, n_samples: int, layer: int, weight_decay: float, backend, options):
        self.arch, self.N, self.layer, self.weight_decay = arch, n_samples, layer, float(weight_decay)
        self.backend = backend
        self.problem = backend.problem(options)
        self.own_time_limit = float(self.problem.settings.time_limit)  # the caller's Clarabel option (inf: none)
        self.lock = threading.Lock()
        self.fallback: list | None = None  # cvxpy backends after the native one
        self.cvxpy: CvxpySmoothBlock | None = None

    def main(self, theta: np.ndarray, mats: dict) -> float:
        """The model's own objective on the block (no constant), for ``F`` at the new point."""
        z = (mats["Z"] @ theta + mats["zc"]).reshape(self.N, -1)
        return float(logsumexp(z, axis=1).sum() - mats["q"] @ theta) / self.N \
            + self.weight_decay / 2 * float(theta @ theta)

    def matrices(self, data: BlockData, T: np.ndarray, prox: float):
        """Clarabel's ``P, q, A, b, cones`` for the block, and what :meth:`main` needs."""
        return conic_matrices(self.arch, self.layer, data, T, self.weight_decay, prox)


class ConicBlocks:
    """The exponential-cone path of a :class:`~multiconvex.nets.form.NetForm`'s logistic/softmax blocks: one
    solver state per block shape, built on first use and shared by the blocks of that shape.

    ``form`` supplies the architecture, data, blocks, forward passes and the backend resolution
    (``resolve_class`` / ``backends_for``, see :class:`~multiconvex.nets.form.NetForm`).
    """

    def __init__(self, form: Any):
        self.form = form
        self._shapes: dict[tuple[int, int], CvxpySmoothBlock | NativeSmoothBlock] = {}
        self._lock = threading.Lock()

    def _cvxpy(self, layer: int, g: int) -> CvxpySmoothBlock:
        f = self.form
        later = f.X.shape[0] * sum(f.arch.sizes[j + 1] for j in range(layer + 1, f.arch.n_layers - 1))
        return CvxpySmoothBlock(f.arch, f.X.shape[0], layer, g, later, f.weight_decay)

    def shape(self, index: int) -> CvxpySmoothBlock | NativeSmoothBlock:
        """Block ``index``'s shape's solver state (built once)."""
        f = self.form
        b = f.layer_blocks[index]
        key = (b.layer, len(b.units))
        with self._lock:
            if key not in self._shapes:
                t0 = time.perf_counter()
                if f._resolve_class is not None:
                    backends = list(f._resolve_class(block_problem_class(f.arch, b.layer), b.name))
                    native = [x for x in backends if getattr(x, "matrix_level", False)]
                    rest = [x for x in backends if not getattr(x, "matrix_level", False)]
                else:
                    native, rest = [], None
                sub: CvxpySmoothBlock | NativeSmoothBlock
                if native:
                    sub = NativeSmoothBlock(f.arch, f.X.shape[0], b.layer, f.weight_decay, native[0],
                                            options_for(native[0], f.solver_options))
                    sub.fallback = rest
                else:
                    sub = self._cvxpy(b.layer, len(b.units))
                    if rest is None and f._backends_for is None:
                        raise InvalidInputError(
                            f"NetForm: block {b.name} ({f.arch.loss} loss) needs a cone solver, but the form has "
                            "neither resolve_class nor backends_for; pass one (see NetForm), or use solver='auto' "
                            "with weight_decay > 0 or prox > 0 (the cone-free Newton path).")
                    sub.backends = rest if rest is not None else f._backends_for(sub.problem, b.name)
                self._shapes[key] = sub
                f.build_time += time.perf_counter() - t0
            return self._shapes[key]

    def solve(self, index: int, point, prox: float, flip: bool) -> BlockSolution:
        """Block ``index`` on its piece at ``point`` (the neighbouring piece with ``flip``)."""
        f = self.form
        block = f.layer_blocks[index]
        t0 = time.perf_counter()
        sub = self.shape(index)
        params, pre, inputs, f0 = f._forward(point)
        with torch.no_grad():
            data = block_data(f.arch, params, f.T, block, pre, inputs, flip_boundary=flip)
        with sub.lock:
            if isinstance(sub, NativeSmoothBlock):
                sol = self._solve_native(index, sub, data, prox, f0, t0)
                # a proof of infeasibility (a neighbouring piece that is empty) is an answer: no fallback
                if sol.ok or not sub.fallback or sol.status in ("infeasible", "unbounded"):
                    return sol
                if sub.cvxpy is None:  # the native solve failed: the cvxpy backends after it
                    sub.cvxpy = self._cvxpy(block.layer, len(block.units))
                    sub.cvxpy.backends = sub.fallback
                fallback = self._solve_cvxpy(index, sub.cvxpy, data, prox, f0, time.perf_counter())
                fallback.attempts = sol.attempts + fallback.attempts
                fallback.wall_time = time.perf_counter() - t0
                return fallback
            return self._solve_cvxpy(index, sub, data, prox, f0, t0)

    def _solve_native(self, index: int, sub: NativeSmoothBlock, data: BlockData, prox: float, f0: float,
                      t0: float) -> BlockSolution:
        f = self.form
        block = f.layer_blocks[index]
        name = sub.backend.name
        try:
            P, q, A, b, cones, mats = sub.matrices(data, f.T_np, prox)
            theta0 = data.theta0.detach().cpu().numpy()
            const = f0 - sub.main(theta0, mats)
            f.build_seconds += time.perf_counter() - t0
            # the run's time left, as the dispatcher's Clarabel QPs get it (the kept solver keeps its settings: a
            # solve after the run, or in a run without a limit, gets the caller's own option back)
            left = f.plan.remaining()
            set_time_limit(sub.problem, sub.own_time_limit if left is None else min(sub.own_time_limit, max(0.0, left)))
            res = sub.problem.solve(P, q, A, b, cones)
        except (LicenceError, SolverUnavailableError):
            raise
        except Exception as exc:  # noqa: BLE001 - normalised; the driver keeps the point
            return BlockSolution(block=index, status="solver_error", backend=name,
                                 wall_time=time.perf_counter() - t0, solve_time=time.perf_counter() - t0,
                                 message=f"{name}: {type(exc).__name__}: {exc}",
                                 attempts=[(name, f"{type(exc).__name__}: {exc}")])
        sol = BlockSolution(block=index, status=res.status, backend=name, solve_time=res.wall_time,
                            wall_time=time.perf_counter() - t0, attempts=[(name, res.status)])
        if res.x is not None:
            theta = res.x[:theta0.size]
            sol.values = block_values(block, theta)
            sol.value = sub.main(theta, mats) + const
        else:
            sol.message = f"backend {name} ended with status {res.status} (Clarabel: {res.native_status})"
        return sol

    def _solve_cvxpy(self, index: int, sub: CvxpySmoothBlock, data: BlockData, prox: float, f0: float,
                     t0: float) -> BlockSolution:
        f = self.form
        block = f.layer_blocks[index]
        sub.set_data(data, f.T_np, f.arch.loss, prox)
        # the subproblem's objective drops constants: match it to F at the point (on its piece)
        const = f0 - float(sub.main.value)
        f.build_seconds += time.perf_counter() - t0
        options = {**f.solver_options, "ignore_dpp": True} if sub.ignore_dpp else f.solver_options
        sol, report = solve_block_cvxpy(index, sub.problem, sub.backends, options, t0, deadline=f.plan.deadline)
        if report is None:
            return sol
        if has_solution(report.status) and sub.theta.value is not None:
            sol.values = block_values(block, sub.theta.value)
            main = float(report.value) if prox == 0 else float(sub.main.value)
            sol.value = main + const
        else:
            sol.message = f"backend {report.backend} ended with status {report.status}"
        return sol


__all__ = ["ConicBlocks", "CvxpySmoothBlock", "NativeSmoothBlock"]
