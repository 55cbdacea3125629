"""A ReLU block's subproblem on its piece, as values built from :class:`~multiconvex.nets.blocks.BlockData`.

* :func:`piece_rows` — the piece constraints as rows ``lower ≤ C θ ≤ upper``, reduced first: one
  interval per sample for a unit block, no rows that the block cannot move;
* :func:`squared_subproblem` — a squared-loss block as a :class:`~multiconvex.subproblem.BlockSubproblem`
  (dense Gram, the piece rows, the constant that makes its value the true objective), for
  :func:`multiconvex.solvers.dispatch.solve`;
* :func:`conic_matrices` — a logistic/softmax block in Clarabel's form ``b − Ax ∈ K`` with
  exponential cones (cones are not in ``BlockSubproblem`` yet).

Examples
--------
>>> import numpy as np, torch
>>> from multiconvex.nets import Architecture, LayerBlock, block_data, forward, init_params
>>> arch = Architecture((2, 3, 1), "squared", "relu", 0.0, True)
>>> params = init_params(arch, 0, torch.device("cpu"))
>>> X = torch.as_tensor(np.random.default_rng(0).standard_normal((5, 2)))
>>> T = torch.zeros(5, 1, dtype=X.dtype)
>>> _, pre, inputs = forward(arch, params, X)
>>> data = block_data(arch, params, T, LayerBlock(0, (1,), False), pre, inputs, factor=False)
>>> rows = piece_rows(arch, 0, data)
>>> rows.C.shape, bool(np.all(rows.lower <= rows.C @ data.theta0.numpy() + 1e-12))
((5, 3), True)
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..solvers.clarabel_native import exponential, nonneg
from ..subproblem import BlockSubproblem, make_slots
from .blocks import BlockData, LayerBlock
from .network import BOUNDARY_TOL, Architecture


@dataclass
class PieceRows:
    """Piece constraints ``lower ≤ C θ ≤ upper`` (``C`` CSR, every entry of a dense row kept, so the
    sparsity pattern depends only on the row count); ``lower``/``upper`` may hold ``∓inf``."""

    C: sp.csr_matrix
    lower: np.ndarray
    upper: np.ndarray

    @property
    def m(self) -> int:
        return int(self.C.shape[0])


def _numpy(t):
    return None if t is None else t.detach().cpu().numpy()


def dense_rows(M: np.ndarray, n_cols: int, col0: np.ndarray | None = None) -> sp.csr_matrix:
    """Rows of the dense ``M`` (``r × k``) as CSR with ``n_cols`` columns, row ``i`` starting at column
    ``col0[i]`` (0 when ``None``); zeros are kept as entries."""
    r, k = M.shape
    cols = np.tile(np.arange(k), r) + (0 if col0 is None else np.repeat(col0, k))
    return sp.csr_matrix((M.ravel(), cols, np.arange(r + 1) * k), shape=(r, n_cols))


def piece_rows(arch: Architecture, layer: int, data: BlockData) -> PieceRows | None:
    """The piece constraints of a block of ``layer`` (``None`` for the output layer: it has none).

    Every later pre-activation depends on the block only through the block's own
    pre-activations ``z_k[i, G]`` of the same sample, so:

    * a unit block (``g = 1``) keeps a piece that is an interval per sample: all of sample
      ``i``'s rows ``α_r w_i + h_r ≥ 0`` on the scalar ``w_i = own_i · θ`` collapse to
      ``L_i ≤ w_i ≤ U_i`` — one row per sample instead of ``1 + Σ_j n_j``. An empty interval
      (``L_i > U_i``) is written as two one-sided rows, which every backend can prove infeasible;
    * a larger block drops the later rows that do not involve it (exactly zero: the path from
      the block to that unit is dead at that sample).

    A row that does not involve the block has ``h ≥ 0`` on the point's own piece. On the neighbouring piece a flipped
    boundary unit's row has ``h = −|z| ≈ 0``; the block cannot move it, and it is left out (as the batched path
    does, :func:`multiconvex.nets.batched._later_intervals`): the piece taken keeps the units that do not depend on
    the block on their side, and contains the point too. Only a row violated by more than the boundary tolerance
    makes the piece empty; it is kept as the constant row ``0 ≥ 1``, so the backend's answer is "infeasible" — an
    answer, not a failure. (An exact ``h < 0`` test proved neighbouring pieces empty that were not: a unit at
    ``z = 2.2e-16``.)
    """
    own, G, h = _numpy(data.own), _numpy(data.G), _numpy(data.h)
    if own is None:
        return None
    g, N, c = own.shape
    p = g * c
    # a row the block cannot move is violated only beyond this (a flipped boundary unit's h is −|z|, within it)
    h_tol = BOUNDARY_TOL * max(1.0, float(np.abs(h).max())) if h is not None and h.size else 0.0
    if g == 1:
        W = own[0]
        lower = np.zeros(N)  # own: w_i ≥ 0
        upper = np.full(N, np.inf)
        empty = False
        if G is not None:
            # rows come per later layer j, sample-major: (N, n_j) blocks of α_r and h_r
            norm2 = np.maximum((W * W).sum(1), 1e-300)
            start = 0
            for j in range(layer + 1, arch.n_layers - 1):
                n_j = arch.sizes[j + 1]
                Gj = G[start:start + N * n_j].reshape(N, n_j, c)
                hj = h[start:start + N * n_j].reshape(N, n_j)
                start += N * n_j
                alpha = np.einsum("iuc,ic->iu", Gj, W) / norm2[:, None]
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratio = -hj / alpha
                lower = np.maximum(lower, np.where(alpha > 0, ratio, -np.inf).max(axis=1))
                upper = np.minimum(upper, np.where(alpha < 0, ratio, np.inf).min(axis=1))
                empty = empty or bool(np.any(hj[alpha == 0] < -h_tol))
        crossed = np.flatnonzero(lower > upper)
        C = dense_rows(np.vstack([W, W[crossed]]), p)
        lo = np.concatenate([lower, np.full(crossed.size, -np.inf)])
        up = np.concatenate([upper, upper[crossed]])
        up[crossed] = np.inf
    else:
        u = np.repeat(np.arange(g), N)
        parts = [dense_rows(own.reshape(g * N, c), p, u * c)]
        lo, up = [np.zeros(g * N)], [np.full(g * N, np.inf)]
        empty = False
        if G is not None:
            moves = np.any(G != 0, axis=1)
            keep = np.flatnonzero(moves)
            parts.append(dense_rows(G[keep], p))
            lo.append(-h[keep]), up.append(np.full(keep.size, np.inf))
            empty = bool(np.any(h[~moves] < -h_tol))
        C = sp.vstack(parts, format="csr")
        lo, up = np.concatenate(lo), np.concatenate(up)
    if empty:
        C = sp.vstack([C, sp.csr_matrix(([0.0], [0], [0, 1]), shape=(1, p))], format="csr")
        lo, up = np.append(lo, 1.0), np.append(up, np.inf)
    return PieceRows(C, lo, up)


def squared_subproblem(arch: Architecture, block: LayerBlock, data: BlockData, f0: float, n_samples: int,
                       weight_decay: float, prox: float = 0.0) -> BlockSubproblem:
    """A squared-loss block as ``min ½θᵀPθ + qᵀθ + c`` on its piece, in the block's own variables.

    ``P = gram/N + (λ+ρ)I``, ``q = −lin/N − ρθ⁰`` and ``c`` such that the value at ``θ`` is
    ``F(θ) + ρ/2‖θ − θ⁰‖²`` (``F`` the network's objective on the cross-section and piece; at the
    point itself the value is ``f0``). One slot per unit, keyed ``(layer, unit)`` like the point.
    """
    theta0 = _numpy(data.theta0)
    gram, lin = _numpy(data.gram), _numpy(data.lin)
    P = (gram + gram.T) / (2 * n_samples)
    P[np.diag_indices_from(P)] += weight_decay + prox
    q = -lin / n_samples - prox * theta0
    c = f0 - (0.5 * theta0 @ (P @ theta0) + q @ theta0)
    width = theta0.size // len(block.units)
    slots = make_slots([((block.layer, u), (width,)) for u in block.units])
    rows = piece_rows(arch, block.layer, data)
    if rows is None:
        return BlockSubproblem(slots, [], q, float(c), P_extra=P)
    return BlockSubproblem(slots, [], q, float(c), P_extra=P, A=rows.C, l=rows.lower, u=rows.upper)


def block_problem_class(arch: Architecture, layer: int) -> str:
    """The class of a block subproblem without building it: ``EQP`` (unconstrained squared loss: the
    output layer of a network whose only hidden layers come before it), ``QP`` (squared loss with
    piece constraints) or ``EXP`` (logistic/softmax)."""
    if arch.loss != "squared":
        return "EXP"
    return "EQP" if layer == arch.n_layers - 1 else "QP"


def block_values(block: LayerBlock, theta: np.ndarray) -> dict[Hashable, np.ndarray]:
    """``θ`` (flattened unit by unit) as the point's values ``{(layer, unit): row}``."""
    rows = np.asarray(theta, dtype=float).reshape(len(block.units), -1)
    return {(block.layer, u): rows[i].copy() for i, u in enumerate(block.units)}


# -- logistic / softmax: exponential cones, in Clarabel's form --------------------------------------------
def _cone_rows(rows: PieceRows | None, row0: int):
    """``lower ≤ Cθ ≤ upper`` as nonnegative-cone rows ``b − Aθ ≥ 0`` (COO triplets of ``A`` from
    ``row0``, ``b``, count): the finite lower sides first, then the finite upper sides."""
    if rows is None:
        return [], [], [], np.zeros(0), 0
    fl, fu = np.flatnonzero(np.isfinite(rows.lower)), np.flatnonzero(np.isfinite(rows.upper))
    parts = sp.vstack([-rows.C[fl], rows.C[fu]], format="coo")
    b = np.concatenate([-rows.lower[fl], rows.upper[fu]])
    return [row0 + parts.row], [parts.col], [parts.data], b, fl.size + fu.size


def _csc(rows: list, cols: list, vals: list, shape: tuple[int, int]):
    """COO triplets -> CSC with sorted indices and every given entry kept (explicit zeros too)."""
    if not rows:
        return sp.csc_array(shape)
    A = sp.coo_array((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=shape).tocsc()
    A.sort_indices()
    return A


def conic_matrices(arch: Architecture, layer: int, data: BlockData, T: np.ndarray, weight_decay: float,
                   prox: float):
    """A logistic/softmax block's ``P, q, A, b, cones`` in Clarabel's form, and what its objective needs.

    ``x = [θ, t, u]`` with ``t_i ≥ LSE(z_i)`` as ``Σ_k u_ik ≤ 1``, ``(z_ik − t_i, 1, u_ik) ∈ K_exp``
    (``z = [0, −yf]`` for logistic), objective ``(Σ t_i − qᵀθ)/N + (λ+ρ)/2‖θ‖² − ρθ⁰ᵀθ``. Row
    order: ``[Σ_k u_ik ≤ 1 (N)] [piece (m)] [exp cones (3 N K)]``.
    """
    theta0 = _numpy(data.theta0)
    p, N = theta0.size, T.shape[0]
    reg = weight_decay + prox
    A_out, c_out = _numpy(data.A), _numpy(data.c)
    if arch.loss == "logistic":  # z = [0, −t f]: LSE = log(1 + e^{−tf})
        sign = -T.reshape(-1)
        K = 2
        Z = np.zeros((N * 2, p))
        Z[1::2] = sign[:, None] * A_out
        zc = np.zeros(N * 2)
        zc[1::2] = sign * c_out
        qlin = np.zeros(p)
    else:
        K = T.shape[1]
        Z, zc = A_out, c_out
        qlin = A_out.T @ T.reshape(-1)
    n_u = N * K
    n = p + N + n_u
    rows, cols, vals, hb, m = _cone_rows(piece_rows(arch, layer, data), N)
    ui = np.arange(n_u)
    rows.append(ui // K), cols.append(p + N + ui), vals.append(np.ones(n_u))
    e0 = N + m + 3 * ui  # first row of cone (i, k)
    r, c = np.meshgrid(e0, np.arange(p), indexing="ij")
    rows.append(r.ravel()), cols.append(c.ravel()), vals.append(-Z.ravel())
    rows.append(e0), cols.append(p + ui // K), vals.append(np.ones(n_u))
    rows.append(e0 + 2), cols.append(p + N + ui), vals.append(-np.ones(n_u))
    A = _csc(rows, cols, vals, (N + m + 3 * n_u, n))
    b = np.concatenate([np.ones(N), hb, np.stack([zc, np.ones(n_u), np.zeros(n_u)], axis=1).ravel()])
    P = sp.csc_array((np.full(p, reg), (np.arange(p), np.arange(p))), shape=(n, n))
    qv = np.concatenate([-qlin / N - prox * theta0, np.full(N, 1.0 / N), np.zeros(n_u)])
    cones = [nonneg(N + m), *exponential(n_u)]
    return P, qv, A, b, cones, {"Z": Z, "zc": zc, "q": qlin}


__all__ = ["PieceRows", "piece_rows", "squared_subproblem", "block_values", "block_problem_class",
           "conic_matrices"]
