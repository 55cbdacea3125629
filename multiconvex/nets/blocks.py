"""Layer-block subproblems built in torch (THEORY §1, R&R eq. 13), vectorised over samples.

A block is a group ``G`` of units of one layer ``k``: the rows ``G`` of ``W_k`` and the
entries ``G`` of ``b_k`` (a whole layer by default; smaller groups keep subproblems small).
With every other parameter and the piece fixed, everything after the block is affine in
the block's parameters ``θ`` (``g × c`` with ``c = n_{k-1} + 1``, flattened row by row):

* the pre-activations of the block's own units ``z_k[i, u] = θ_u · ã_i`` (``ã_i = [a_{k-1,i}; 1]``),
* every later pre-activation ``z_j[i] = z_j⁰[i] + V_j[i] (z_k[i, G] − z_k⁰[i, G])`` where
  ``V_j = W_j S_{j-1} ⋯ W_{k+1} S_k[:, G]`` (forward-mode Jacobians, one batched matmul per layer),
* so the output ``f = A θ + c`` and the piece constraints ``sign ∘ z_j(θ) ≥ 0`` are matrices.

Memory: the piece constraints of the later hidden layers are dense, ``N · Σ_{k<j<L} n_j`` rows by
``g · c`` columns, and (logistic/softmax) the output map ``N · n_out × g · c``; squared loss is
compressed to a ``gc × gc`` Gram factor (``‖Aθ − r‖² = ‖Rθ − d‖² + const``). :func:`make_blocks`
with ``block_size="auto"`` picks the largest group size that keeps one block's matrices under a
budget of entries.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import InvalidInputError
from .network import Architecture, Params, boundary_mask

#: Default largest number of matrix entries of one block subproblem (``block_size="auto"``).
ENTRY_BUDGET = 20_000_000


@dataclass(frozen=True)
class LayerBlock:
    """Units ``units`` of layer ``layer`` (0-based): their weight rows and biases."""

    layer: int
    units: tuple[int, ...]
    whole_layer: bool

    @property
    def name(self) -> str:
        if self.whole_layer:
            return f"layer{self.layer + 1}"
        return f"layer{self.layer + 1}[{self.units[0]}:{self.units[-1] + 1}]"


def block_entries(arch: Architecture, n_samples: int, layer: int, g: int) -> int:
    """Matrix entries of a block of ``g`` units of ``layer``: later-layer constraints, own rows, output map."""
    c = arch.sizes[layer] + int(arch.bias)
    later = sum(arch.sizes[j + 1] for j in range(layer + 1, arch.n_layers - 1))
    own = n_samples * g * c if layer < arch.n_layers - 1 else 0
    out = (g * c) ** 2 if arch.loss == "squared" else n_samples * arch.sizes[-1] * g * c
    return n_samples * later * g * c + own + out


def make_blocks(arch: Architecture, n_samples: int, block_size: int | str | None = "auto",
                budget: int = ENTRY_BUDGET) -> list[LayerBlock]:
    """Blocks for every layer: ``"layer"``/``None`` (one per layer), ``"unit"`` (one per unit),
    an int (groups of that many units), or ``"auto"`` (largest groups within ``budget`` entries)."""
    blocks: list[LayerBlock] = []
    for k in range(arch.n_layers):
        n = arch.sizes[k + 1]
        if block_size in (None, "layer"):
            g = n
        elif block_size == "unit":
            g = 1
        elif block_size == "auto":
            per_unit = max(1, block_entries(arch, n_samples, k, 1))
            g = n
            c = arch.sizes[k] + int(arch.bias)
            # cvxpy's DPP compilation allocates a dense (g·c) × entries array for a block's
            # Parameters (measured: 99 GiB for a 61-unit block on diabetes), so bound both
            while g > 1 and (block_entries(arch, n_samples, k, g) > budget
                             or g * c * block_entries(arch, n_samples, k, g) > 10 * budget):
                g = max(1, min(g - 1, int(budget // per_unit)))
        elif isinstance(block_size, int) and not isinstance(block_size, bool) and block_size >= 1:
            g = min(n, block_size)
        else:
            raise InvalidInputError(f"block_size={block_size!r}: use 'auto', 'layer', 'unit' or a positive int.")
        for start in range(0, n, g):
            units = tuple(range(start, min(n, start + g)))
            blocks.append(LayerBlock(k, units, whole_layer=len(units) == n))
    return blocks


@dataclass
class BlockData:
    """One block subproblem as matrices (float64, on the model's device).

    The block's data loss is ``loss(A θ + c)``; for squared loss it is given as
    ``½‖R θ − d‖² / N`` plus a constant instead. Piece constraints: ``own[u] @ θ_u ≥ 0``
    (the block's own units) and ``G θ + h ≥ 0`` (later hidden layers).
    """

    theta0: torch.Tensor
    A: torch.Tensor | None
    c: torch.Tensor | None
    R: torch.Tensor | None
    d: torch.Tensor | None
    own: torch.Tensor | None  # (g, N, c)
    G: torch.Tensor | None  # (rows, g*c)
    h: torch.Tensor | None
    boundary: bool
    #: squared loss: the Gram matrix ``AᵀA`` and ``Aᵀr`` (``½‖Aθ − r‖² = ½θᵀ gram θ − linᵀθ + const``),
    #: which matrix-level backends take directly (no factorisation needed)
    gram: torch.Tensor | None = None
    lin: torch.Tensor | None = None


def _gram_chunk(n_samples: int, g: int, c: int) -> int:
    return max(1, int(4_000_000 // max(1, g * g * c)))


def block_data(arch: Architecture, params: Params, T: torch.Tensor, block: LayerBlock,
               pre: list[torch.Tensor], inputs: list[torch.Tensor], *, flip_boundary: bool = False,
               factor: bool = True) -> BlockData:
    """The block subproblem at the point whose forward pass gave ``pre`` and ``inputs``.

    ``factor=False`` (squared loss) skips the factor ``R, d`` of the Gram matrix (an eigendecomposition)
    and leaves only ``gram`` and ``lin``.

    With ``flip_boundary`` the piece is the neighbour across the boundary: constrained
    units (the block's own and every later hidden unit) with ``z ≈ 0`` take the other side.
    """
    L = arch.n_layers
    k = block.layer
    idx = torch.as_tensor(block.units, device=T.device)
    g = len(block.units)
    a_prev = inputs[k]
    N = a_prev.shape[0]
    ones = [torch.ones(N, 1, dtype=a_prev.dtype, device=a_prev.device)] if arch.bias else []
    at = torch.cat([a_prev] + ones, dim=1)  # ã: (N, c)
    c_dim = at.shape[1]
    W, b = params[k]
    theta0 = torch.cat([W[idx]] + ([b[idx, None]] if b is not None else []), dim=1).reshape(-1)

    # the piece (optionally flipped on the boundary) of every constrained layer
    alive, boundary = {}, False
    for j in range(k, L - 1):
        S = (pre[j] >= 0).to(at.dtype)
        edge = boundary_mask(pre[j])
        if j == k:
            own_edge = torch.zeros_like(edge)
            own_edge[:, idx] = edge[:, idx]
            edge = own_edge
        boundary = boundary or bool(edge.any())
        if flip_boundary:
            S = torch.where(edge, 1.0 - S, S)
        alive[j] = S

    zk0 = pre[k][:, idx]  # (N, g)
    own = None
    if k < L - 1:
        sign = 2 * alive[k][:, idx] - 1  # (N, g)
        own = sign.T[:, :, None] * at[None, :, :]  # (g, N, c)
        slope = arch.slope(alive[k][:, idx])
        Wn = params[k + 1][0]
        V = Wn[:, idx][None, :, :] * slope[:, None, :]  # (N, n_{k+1}, g)
    else:
        V = torch.zeros(N, arch.sizes[-1], g, dtype=at.dtype, device=at.device)
        V[:, idx, torch.arange(g, device=at.device)] = 1.0
    Gs, hs = [], []
    for j in range(k + 1, L):
        if j < L - 1:  # a later hidden layer: its piece constraints
            sign = 2 * alive[j] - 1  # (N, n_j)
            rows = (sign[:, :, None, None] * V[:, :, :, None] * at[:, None, None, :]).reshape(-1, g * c_dim)
            off = sign * (pre[j] - torch.einsum("iou,iu->io", V, zk0))
            Gs.append(rows)
            hs.append(off.reshape(-1))
            slope = arch.slope(alive[j])
            V = torch.einsum("om,imu->iou", params[j + 1][0], slope[:, :, None] * V)
    G = torch.cat(Gs) if Gs else None
    h = torch.cat(hs) if hs else None
    c_out = pre[L - 1] - torch.einsum("iou,iu->io", V, zk0)  # (N, n_out)
    p = g * c_dim
    if arch.loss == "squared":
        r0 = T - c_out
        gram = torch.zeros(p, p, dtype=at.dtype, device=at.device)
        step = _gram_chunk(N, g, c_dim)
        for s in range(0, N, step):
            Vs, As = V[s:s + step], at[s:s + step]
            M = torch.einsum("iou,iov->iuv", Vs, Vs)
            gram += torch.einsum("iuv,ic,id->ucvd", M, As, As).reshape(p, p)
        lin = torch.einsum("iou,ic,io->uc", V, at, r0).reshape(p)
        if not factor:
            return BlockData(theta0, None, None, None, None, own, G, h, boundary, gram=gram, lin=lin)
        w, Q = torch.linalg.eigh(0.5 * (gram + gram.T))
        keep = w > w.max().clamp_min(0) * p * torch.finfo(w.dtype).eps * 10
        sw = torch.where(keep, w.clamp_min(0).sqrt(), torch.zeros_like(w))
        R = sw[:, None] * Q.T
        d = torch.where(keep, (Q.T @ lin) / torch.where(keep, sw, torch.ones_like(sw)), torch.zeros_like(w))
        return BlockData(theta0, None, None, R, d, own, G, h, boundary, gram=gram, lin=lin)
    A = (V[:, :, :, None] * at[:, None, None, :]).reshape(-1, p)
    return BlockData(theta0, A, c_out.reshape(-1), None, None, own, G, h, boundary)


def block_boundary(arch: Architecture, block: LayerBlock, pre: list[torch.Tensor]) -> bool:
    """Whether any unit constrained by ``block``'s piece lies on a boundary (cheap; no matrices)."""
    k = block.layer
    for j in range(k, arch.n_layers - 1):
        edge = boundary_mask(pre[j])
        if bool((edge[:, list(block.units)] if j == k else edge).any()):
            return True
    return False


__all__ = ["LayerBlock", "BlockData", "make_blocks", "block_data", "block_boundary", "block_entries",
           "ENTRY_BUDGET"]
