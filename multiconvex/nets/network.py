"""A fully connected ReLU network in torch: architecture, parameters, forward pass, objective.

One convention everywhere (blocks, baselines, certificates, diagnostics): layers
``k = 1..L`` with ``z_k = W_k a_{k-1} + b_k``, ``a_k = σ(z_k)`` for hidden layers and
a linear output ``f = z_L``; the minimised objective is

    F(θ) = (1/N) Σ_i ℓ(f(x_i; θ), t_i) + (λ/2) ‖θ‖²

with ``ℓ`` = ``½‖f − t‖²`` (``"squared"``, Milne's loss), ``log(1 + exp(−t f))``,
``t ∈ {±1}`` (``"logistic"``) or ``logsumexp(f) − tᵀf``, ``t`` one-hot (``"softmax"``),
and ``λ`` = weight decay on every parameter, biases included (torch's optimizer
convention, and a norm regulariser in the sense of R&R Thm 7.2).

The **piece** is the activation pattern: unit alive where ``z ≥ 0`` (as
:func:`multiconvex.cvxpy_front.atoms.piece_of`); ``σ(z) = s z`` with slope ``s = 1``
alive and ``negative_slope`` (0 for ReLU) dead. ``device`` is only ever a tensor
argument: the same code runs on CPU and CUDA.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InvalidInputError
from ..pieces import BOUNDARY_TOL  # one tolerance for every front end; the test itself stays in torch below

LOSSES = ("squared", "logistic", "softmax")
ACTIVATIONS = ("relu", "leaky_relu")
DTYPE = torch.float64

Params = list[tuple[torch.Tensor, torch.Tensor | None]]  # (W_k (n_k, n_{k-1}), b_k (n_k,) or None)


@dataclass(frozen=True)
class Architecture:
    """Layer sizes ``[d, n_1, ..., n_L]``, loss, activation and whether layers have biases."""

    sizes: tuple[int, ...]
    loss: str = "squared"
    activation: str = "relu"
    negative_slope: float = 0.0
    bias: bool = True

    @property
    def n_layers(self) -> int:
        """``L``: number of affine layers (hidden layers + output)."""
        return len(self.sizes) - 1

    @property
    def hidden(self) -> int:
        """``H``: number of hidden (ReLU) layers."""
        return self.n_layers - 1

    def slope(self, alive: torch.Tensor) -> torch.Tensor:
        """Slope of σ on the piece: 1 where alive, ``negative_slope`` where dead (``alive`` itself for ReLU)."""
        if self.negative_slope == 0:
            return alive
        return alive + (1.0 - alive) * self.negative_slope

    def n_params(self) -> int:
        return sum(n * (m + int(self.bias)) for m, n in zip(self.sizes[:-1], self.sizes[1:]))


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else is passed to :class:`torch.device`."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        out = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InvalidInputError(f"device={device!r} is not a torch device: use 'auto', 'cpu' or 'cuda'.") from exc
    if out.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError(f"device={device!r}: this torch has no CUDA device (torch {torch.__version__}, "
                                "CUDA available: False); use device='auto' (CUDA when present, else CPU) or 'cpu'.")
    return out


def init_params(arch: Architecture, seed: int | None, device: torch.device) -> Params:
    """torch's ``nn.Linear`` default scale: ``U(−1/√fan_in, 1/√fan_in)``, seeded with numpy (device-independent)."""
    rng = np.random.default_rng(seed)
    params: Params = []
    for m, n in zip(arch.sizes[:-1], arch.sizes[1:]):
        bound = 1.0 / np.sqrt(m)
        W = torch.as_tensor(rng.uniform(-bound, bound, (n, m)), dtype=DTYPE, device=device)
        b = torch.as_tensor(rng.uniform(-bound, bound, n), dtype=DTYPE, device=device) if arch.bias else None
        params.append((W, b))
    return params


def forward(arch: Architecture, params: Params, X: torch.Tensor,
            patterns: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """Outputs, pre-activations ``z_1..z_L`` and inputs ``a_0..a_{L-1}`` of every layer.

    With ``patterns`` (0/1 alive masks of the hidden layers) the activation is the
    affine map of that piece instead of σ (used to evaluate a piece's own function).
    """
    a = X
    pre: list[torch.Tensor] = []
    inputs: list[torch.Tensor] = []
    for k, (W, b) in enumerate(params):
        inputs.append(a)
        z = a @ W.T
        if b is not None:
            z = z + b
        pre.append(z)
        if k < len(params) - 1:
            alive = patterns[k] if patterns is not None else (z >= 0).to(z.dtype)
            a = arch.slope(alive) * z
        else:
            a = z
    return a, pre, inputs


#: Above this input ``softplus`` returns ``x`` itself: ``log(1 + eˣ) − x = log1p(e⁻ˣ) < 4.3e-18`` there, below the
#: rounding of ``x`` (torch's default threshold, 20, drops up to 2.1e-9 per sample: a review found a gap bound that
#: much below a real decrease).
SOFTPLUS_THRESHOLD = 40.0


def softplus(x: torch.Tensor) -> torch.Tensor:
    """``log(1 + eˣ)`` to rounding (:data:`SOFTPLUS_THRESHOLD`)."""
    return torch.nn.functional.softplus(x, threshold=SOFTPLUS_THRESHOLD)


def sample_losses(loss: str, out: torch.Tensor, T: torch.Tensor) -> torch.Tensor:
    """``ℓ(f_i, t_i)`` per sample, ``(N,)`` (targets ``T`` encoded as in :func:`encode_targets`): ``½‖f − t‖²``,
    ``Σ_o log(1 + e^{−t_o f_o})`` or ``logsumexp(f) − tᵀf``."""
    if loss == "squared":
        return 0.5 * ((out - T) ** 2).sum(dim=1)
    if loss == "logistic":
        return softplus(-T * out).sum(dim=1)
    return torch.logsumexp(out, dim=1) - (T * out).sum(dim=1)


def data_loss(arch: Architecture, out: torch.Tensor, T: torch.Tensor) -> torch.Tensor:
    """Mean loss ``(1/N) Σ ℓ(f_i, t_i)`` (:func:`sample_losses`)."""
    return sample_losses(arch.loss, out, T).mean()


def sq_norm(params: Params) -> torch.Tensor:
    return sum((W ** 2).sum() + ((b ** 2).sum() if b is not None else 0.0) for W, b in params)


def objective(arch: Architecture, params: Params, X: torch.Tensor, T: torch.Tensor,
              weight_decay: float) -> torch.Tensor:
    """``F(θ)``: mean loss plus ``(λ/2)‖θ‖²``."""
    out = forward(arch, params, X)[0]
    return data_loss(arch, out, T) + 0.5 * weight_decay * sq_norm(params)


def patterns_at(arch: Architecture, pre: list[torch.Tensor]) -> list[torch.Tensor]:
    """Alive masks (float 0/1) of the hidden layers from their pre-activations."""
    return [(z >= 0).to(z.dtype) for z in pre[:-1]]


def boundary_mask(z: torch.Tensor) -> torch.Tensor:
    """Units whose pre-activation is ≈ 0 relative to the layer's scale (they belong to two pieces):
    :func:`multiconvex.pieces.on_boundary` over the whole tensor, computed in torch on its device."""
    scale = max(1.0, float(z.abs().max())) if z.numel() else 1.0
    return z.abs() <= BOUNDARY_TOL * scale


def flatten(params: Params) -> torch.Tensor:
    return torch.cat([torch.cat([W.reshape(-1)] + ([b] if b is not None else [])) for W, b in params])


def unflatten(arch: Architecture, theta: torch.Tensor) -> Params:
    out: Params = []
    i = 0
    for m, n in zip(arch.sizes[:-1], arch.sizes[1:]):
        W = theta[i:i + n * m].reshape(n, m)
        i += n * m
        b = None
        if arch.bias:
            b = theta[i:i + n]
            i += n
        out.append((W, b))
    return out


def encode_targets(arch: Architecture, y: np.ndarray, classes: np.ndarray | None = None) -> np.ndarray:
    """Targets as an ``(N, n_out)`` float array: values (squared), ±1 (logistic), one-hot (softmax)."""
    y = np.asarray(y)
    if arch.loss == "squared":
        return y.reshape(len(y), -1).astype(float)
    if classes is None:
        classes = np.unique(y)
    idx = np.searchsorted(classes, y)
    if arch.loss == "logistic":
        return np.where(idx == 1, 1.0, -1.0).reshape(-1, 1)
    T = np.zeros((len(y), len(classes)))
    T[np.arange(len(y)), idx] = 1.0
    return T


__all__ = ["Architecture", "Params", "LOSSES", "ACTIVATIONS", "DTYPE", "BOUNDARY_TOL", "resolve_device",
           "init_params", "forward", "sample_losses", "data_loss", "objective", "sq_norm", "patterns_at",
           "boundary_mask", "flatten", "unflatten", "encode_targets", "softplus"]
