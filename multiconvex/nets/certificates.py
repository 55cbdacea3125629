"""Certificates for any weights: the partial-minimum certificate (R&R Def 5.8) and the
gradient-basis gap (K&K Thm 1).

* :func:`partial_minimum_certificate` solves every block subproblem at the given weights, on
  their piece (and on the neighbouring piece where units lie on a boundary), with the same
  machinery the drivers use, and reports the block gaps ``F(θ) − min_block``. It applies to
  weights from anywhere — our drivers, a GD/Adam baseline, a network trained elsewhere
  (R&R Thm 6.3: is gradient descent's limit a partial minimum of its piece?).
* :func:`certificate` does that for weights given as torch parameters (it builds the form; unit blocks
  of a squared-loss network are built a layer at a time and solved exactly: a rounding-level answer).
* :func:`gradient_basis_gap` computes ``L(θ) − L*_θ`` where ``L*_θ`` is the best data loss of
  the linear model whose features are the network's parameter Jacobian (the gradient basis).
  For squared loss it is one least-squares projection: ``‖P_J r‖² / (2N)`` with ``r`` the
  residual; it is 0 at every differentiable critical point of the data loss and > 0 elsewhere.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import cvxpy as cp
import numpy as np
import torch
from torch.func import jacrev, vmap

from ..drivers import NOTHING_BELOW
from ..errors import InvalidInputError
from ..result import Certificate
from ..solvers import dispatch, problem_class, resolve, solve_cvxpy
from ..standard_form import Point, gap_over_adjacent_pieces
from ..tolerance import gap_tolerance
from ..validation import check_int, check_number
from .form import NetForm
from .network import Architecture, Params, check_data, data_loss, flatten, forward, unflatten


def block_gaps(form, point: Point, executor=None, tol: float = 1e-6, deadline: float | None = None) -> dict[str, float]:
    """``F(point) − optimum`` of every block subproblem of ``form`` (``nan`` where a solve failed, the
    neighbouring piece's included unless it was proven empty).

    A block whose piece has boundary units is solved on the neighbouring piece too and the
    better optimum is used (the point belongs to both pieces; THEORY §2). That neighbour flips *every*
    boundary unit: with ``k ≥ 2`` boundary entries the point lies in up to ``2^k`` pieces of the block, so the
    gap is ``max(gap, bound)`` with the form's bound over every piece containing the point
    (:meth:`~multiconvex.standard_form.StandardForm.adjacent_gap_bound`; unit blocks of every loss:
    :mod:`multiconvex.nets.adjacent`, boundary entries taken as exactly on their kink and paid for where they are
    not). Where the form has no bound (layer blocks) the claim stays a partial minimum on the point's own piece and
    its neighbour (R&R Def 5.8; README, "What partial minimum says for a network").

    ``deadline`` (``time.perf_counter()`` seconds): no block is prepared or solved after it (solved here one after
    another; with an ``executor`` the backends get the time left), and the gaps not computed are ``nan``.
    """
    f, _ = form.evaluate(point)
    floor = gap_tolerance(tol, f)  # the certificate's tolerance: a gap below −floor is an inaccurate solve (nan)

    def past() -> bool:
        return deadline is not None and time.perf_counter() > deadline

    def in_time(i: int):  # solve one prepared block, unless the deadline has passed
        return None if past() else form.solve_prepared(i)

    if deadline is not None:  # the backends' own limit: what is left (wall clock, as the drivers hand it)
        form.set_deadline(time.time() + max(0.0, deadline - time.perf_counter()))
    try:
        indices = list(range(len(form.blocks)))
        boundary: dict[int, bool] = {}
        for i in indices:
            if past():
                break
            boundary[i] = form.prepare(i, point)
        prepared = list(boundary)
        if executor is not None:
            best = {s.block: s for s in executor.map(form.solve_prepared, prepared)}
        else:
            best = {s.block: s for s in map(in_time, prepared) if s is not None}
        flips = []
        for i in prepared:
            if boundary[i] and i in best and not past():
                form.prepare(i, point, flip_boundary=True)
                flips.append(i)
        unsolved = {i for i in prepared if boundary[i] and i in best and i not in flips}  # neighbour not solved
        if executor is not None:
            flipped = list(executor.map(form.solve_prepared, flips)) if flips else []
        else:
            flipped = [in_time(i) for i in flips]
        for i, s in zip(flips, flipped):
            if s is None or (not s.ok and s.status not in NOTHING_BELOW):  # proofs (unproven claims: errors)
                unsolved.add(i)
            elif s.ok and (not best[i].ok or s.value < best[i].value):
                best[i] = s
    finally:
        if deadline is not None:
            form.set_deadline(None)
    gaps: dict[str, float] = {}
    for i in indices:
        if i not in best:  # not solved before the deadline
            gaps[form.blocks[i].name] = math.nan
            continue
        s = best[i]
        known = s.ok and s.status == "optimal" and i not in unsolved
        gap = f - s.value if known else math.nan
        if gap < -floor:  # the optimum above the objective: a wrong solve certifies nothing (as the drivers)
            gap = math.nan
        if past() and -floor <= gap <= floor:  # certifying it needs the bound over the adjacent pieces: no time
            gap = math.nan
        gaps[form.blocks[i].name] = gap_over_adjacent_pieces(form, i, point, gap, floor)[0]
    return gaps


def certificate(arch: Architecture, params: Params, X: torch.Tensor, T: torch.Tensor, weight_decay: float, *,
                tol: float = 1e-6, solver="auto", block_size="auto", executor=None) -> Certificate:
    """The partial-minimum certificate of any weights ``params`` (from a gradient run, another library, ...).

    Builds the network's :class:`~multiconvex.nets.form.NetForm` (unit blocks for squared loss: every
    unit block of a layer built as one batch, :mod:`multiconvex.nets.batched`, and solved exactly by
    DAQP with ``solver="auto"``) and calls :func:`partial_minimum_certificate`.

    Parameters
    ----------
    arch : Architecture
    params : Params
        The weights, torch tensors on the data's device.
    X, T : torch.Tensor
        Inputs ``(N, d)`` and encoded targets ``(N, n_out)`` (float64).
    weight_decay : float
    tol : float
        Relative tolerance of the block gaps.
    solver : str or list
        Backend of the block subproblems (``"auto"``, or any registry name).
    block_size : "auto", "layer", "unit" or int
        The blocks the certificate speaks about (see :func:`multiconvex.nets.blocks.make_blocks`).

    Examples
    --------
    >>> import torch
    >>> from multiconvex.nets import Architecture, init_params
    >>> arch = Architecture((2, 3, 1))
    >>> X = torch.randn(30, 2, dtype=torch.float64); T = torch.randn(30, 1, dtype=torch.float64)
    >>> certificate(arch, init_params(arch, 0, X.device), X, T, 1e-3).is_partial_minimum
    False
    """
    check_data(arch, X, T, where="certificate", params=params, weight_decay=weight_decay)
    check_number(tol, "tol", minimum=0.0, where="certificate")
    plan = dispatch.make_plan(solver)
    form = NetForm(arch, X, T, weight_decay, plan=plan, block_size=block_size,
                   resolve_class=lambda cls, name: resolve(solver, cls, matrix_level=True),
                   backends_for=lambda sub, name: resolve(solver, problem_class(sub)))
    return partial_minimum_certificate(form, form.point_from_params(params), tol, executor)


def partial_minimum_certificate(form, point: Point, tol: float = 1e-6, executor=None,
                                deadline: float | None = None) -> Certificate:
    """Block gaps at ``point`` compared with ``tol · |F|`` (the drivers' relative tolerance,
    :func:`multiconvex.tolerance.gap_tolerance`).

    Parameters
    ----------
    form : NetForm (or any StandardForm)
        The blocks and subproblems; :meth:`multiconvex.models.ReLUNetwork.certificate` builds it.
    point : dict
        The weights, as a point of ``form``.
    tol : float
        Relative tolerance.
    deadline : float, optional
        ``time.perf_counter()`` seconds after which no block is solved (its gap ``nan``: not computed).
    """
    check_number(tol, "tol", minimum=0.0, where="partial_minimum_certificate")
    f, _ = form.evaluate(point)
    return Certificate.from_gaps(block_gaps(form, point, executor, tol, deadline), gap_tolerance(tol, f))


@dataclass(frozen=True)
class GradientBasisGap:
    """``loss − best_loss`` of the gradient basis model at θ (K&K Thm 1).

    Attributes
    ----------
    gap : float
        ``L(θ) − L*_θ ≥ 0``; 0 at a differentiable critical point of the data loss.
    loss, best_loss : float
        ``L(θ)`` (mean data loss, no weight decay) and ``L*_θ``.
    rank : int
        Numerical rank of the Jacobian (the number of gradient-basis features that count).
    n_features : int
        Number of parameters (columns of the Jacobian).
    """

    gap: float
    loss: float
    best_loss: float
    rank: int
    n_features: int

    @property
    def relative_gap(self) -> float:
        return self.gap / max(abs(self.loss), 1e-300)


def parameter_jacobian(arch: Architecture, params: Params, X: torch.Tensor, *, trainable: list[int] | None = None,
                       chunk: int = 256):
    """Yield ``(rows, J_chunk)``: per-sample Jacobians of the outputs w.r.t. the flattened parameters.

    ``torch.func.vmap(jacrev)`` over chunks of ``chunk`` samples, so memory stays at
    ``chunk · n_out · n_params`` entries. ``trainable`` (layer indices, 0-based) restricts the
    columns to those layers' parameters (e.g. only the last layer for a fixed-feature model).
    """
    check_int(chunk, "chunk", minimum=1, where="parameter_jacobian")
    if trainable is not None and (isinstance(trainable, (str, bytes)) or not all(
            isinstance(k, int) and not isinstance(k, bool) and 0 <= k < arch.n_layers for k in trainable)):
        raise InvalidInputError(f"parameter_jacobian: trainable={trainable!r}: give layer indices "
                                f"0..{arch.n_layers - 1}"
                                " (0-based).")
    theta = flatten(params).detach()
    sizes = [W.numel() + (b.numel() if b is not None else 0) for W, b in params]
    starts = np.cumsum([0] + sizes)
    cols = torch.arange(theta.numel(), device=theta.device)
    if trainable is not None:
        cols = torch.cat([cols[starts[k]:starts[k + 1]] for k in trainable])

    def f_one(th: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        full = theta.index_put((cols,), th)
        return forward(arch, unflatten(arch, full), x[None, :])[0][0]

    jac = vmap(jacrev(f_one), in_dims=(None, 0))
    for s in range(0, X.shape[0], chunk):
        yield s, jac(theta[cols], X[s:s + chunk])  # (chunk, n_out, n_cols)


def gradient_basis_gap(arch: Architecture, params: Params, X: torch.Tensor, T: torch.Tensor, *,
                       trainable: list[int] | None = None, chunk: int = 256, solver: str = "auto") -> GradientBasisGap:
    """The K&K gradient-basis gap ``L(θ) − L*_θ`` at ``params``.

    Squared loss: ``L*_θ = min_α (1/2N)‖Jα − t‖²``; because the output lies in the span of the
    Jacobian (its last layer is linear), ``L(θ) − L*_θ = ‖P_J r‖² / (2N)`` with ``r = t − f(θ)``,
    computed from the Gram matrix ``JᵀJ`` and ``Jᵀr`` accumulated over sample chunks (memory
    ``n_params²``) and one symmetric eigen-solve: no cancellation, exactly 0 when ``Jᵀr = 0``.
    Logistic/softmax: ``L*_θ`` is one exponential-cone program (cvxpy; small data).

    Examples
    --------
    >>> import torch
    >>> from multiconvex.nets import Architecture, init_params, gradient_basis_gap
    >>> arch = Architecture((2, 3, 1))
    >>> X = torch.randn(10, 2, dtype=torch.float64); T = torch.randn(10, 1, dtype=torch.float64)
    >>> gradient_basis_gap(arch, init_params(arch, 0, X.device), X, T).gap > 0
    True
    """
    check_data(arch, X, T, where="gradient_basis_gap", params=params)
    with torch.no_grad():
        out = forward(arch, params, X)[0]
        loss = float(data_loss(arch, out, T))
    N = X.shape[0]
    if arch.loss == "squared":
        r = (T - out).detach()
        gram = None
        lin = None
        for s, J in parameter_jacobian(arch, params, X, trainable=trainable, chunk=chunk):
            Jm = J.reshape(-1, J.shape[-1])
            rs = r[s:s + J.shape[0]].reshape(-1)
            gram = Jm.T @ Jm if gram is None else gram + Jm.T @ Jm
            lin = Jm.T @ rs if lin is None else lin + Jm.T @ rs
        w, Q = torch.linalg.eigh(0.5 * (gram + gram.T))
        keep = w > w.max().clamp_min(0) * w.numel() * torch.finfo(w.dtype).eps * 10
        proj = (Q.T @ lin)[keep]
        gap = float((proj ** 2 / w[keep]).sum()) / (2 * N)
        return GradientBasisGap(gap, loss, loss - gap, int(keep.sum()), int(w.numel()))

    J = torch.cat([j for _, j in parameter_jacobian(arch, params, X, trainable=trainable, chunk=chunk)])
    K = J.shape[1]
    Jm = J.reshape(N * K, -1).cpu().numpy()
    Tn = T.cpu().numpy()
    alpha = cp.Variable(Jm.shape[1])
    z = Jm @ alpha
    if arch.loss == "logistic":
        obj = cp.sum(cp.logistic(cp.multiply(-Tn.reshape(-1), z))) / N
    else:
        Z = cp.reshape(z, (N, K), order="C")
        obj = (cp.sum(cp.log_sum_exp(Z, axis=1)) - cp.sum(cp.multiply(Tn, Z))) / N
    prob = cp.Problem(cp.Minimize(obj))
    report = solve_cvxpy(prob, resolve(solver, problem_class(prob)))
    best = min(float(report.value), loss)
    rank = int(np.linalg.matrix_rank(Jm))
    return GradientBasisGap(loss - best, loss, best, rank, Jm.shape[1])


__all__ = ["block_gaps", "certificate", "partial_minimum_certificate", "GradientBasisGap", "gradient_basis_gap",
           "parameter_jacobian"]
