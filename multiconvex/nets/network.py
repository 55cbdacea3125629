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
from typing import Any

import numpy as np
import torch

from ..errors import InvalidInputError
from ..pieces import BOUNDARY_TOL  # one tolerance for every front end; the test itself stays in torch below
from ..validation import check_flag, check_number, check_seed

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

    def __post_init__(self) -> None:
        where = "Architecture"
        sizes = self.sizes
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__") or len(sizes) < 2 or any(
                isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 1 for n in sizes):
            raise InvalidInputError(f"{where}: sizes={sizes!r}: give the layer sizes (d, n_1, ..., n_L) as at least "
                                    "two positive integers.")
        object.__setattr__(self, "sizes", tuple(int(n) for n in sizes))
        if self.loss not in LOSSES:
            raise InvalidInputError(f"{where}: loss={self.loss!r}; use one of {', '.join(LOSSES)}.")
        if self.activation not in ACTIVATIONS:
            raise InvalidInputError(f"{where}: activation={self.activation!r}; use one of {', '.join(ACTIVATIONS)} "
                                    "(the network must be piecewise linear in its pre-activations).")
        # the slope below 0 is ``negative_slope`` whatever the activation's name (the estimators pass 0 for "relu")
        object.__setattr__(self, "negative_slope", check_number(self.negative_slope, "negative_slope", where=where))
        object.__setattr__(self, "bias", as_flag(self.bias, "bias", where=where))
        if self.loss == "logistic" and self.sizes[-1] != 1:
            raise InvalidInputError(f"{where}: logistic loss needs one output, got sizes[-1]={self.sizes[-1]}.")

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


def as_flag(value: Any, name: str, *, where: str) -> bool:
    """A bool, or the integers 0 / 1 (what a config file or ``nn.Linear(bias=1)``-style code passes), as a bool;
    anything else (``"no"`` was taken as True) refused by name."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)) and value in (0, 1):
        return bool(value)
    return check_flag(value, name, where=where)


def check_data(arch: Architecture, X: Any, T: Any, *, where: str, params: Params | None = None,
               weight_decay: Any = None) -> None:
    """Refuse, before any work, data the network functions would misread: ``X`` ``(N, d)`` and ``T`` ``(N, n_out)``
    float64 torch tensors on one device, finite, ``N >= 1`` (a ``T`` of shape ``(N,)`` would broadcast against the
    ``(N, 1)`` output into an ``(N, N)`` loss); ``params`` of the architecture's shapes on that device;
    ``weight_decay`` a finite number ``>= 0``."""
    d, n_out = arch.sizes[0], arch.sizes[-1]
    for name, t, cols in (("X", X, d), ("T", T, n_out)):
        if not isinstance(t, torch.Tensor):
            raise InvalidInputError(f"{where}: {name} is a {type(t).__name__}: give a torch tensor "
                                    f"(torch.as_tensor({name}, dtype=torch.float64)).")
        if t.dtype != DTYPE:
            raise InvalidInputError(f"{where}: {name} has dtype {t.dtype}: give float64 ({name}.double()); the "
                                    "certificates' rounding bounds are for float64.")
        if t.ndim != 2 or t.shape[1] != cols or t.shape[0] < 1:
            what = "encoded targets (encode_targets(arch, y))" if name == "T" else "inputs"
            raise InvalidInputError(f"{where}: {name} has shape {tuple(t.shape)}; expected (N, {cols}) {what}, "
                                    f"N >= 1, for sizes {arch.sizes}.")
        if t.device != X.device:
            raise InvalidInputError(f"{where}: T is on {t.device}, X on {X.device}: put both on one device.")
        if not bool(torch.isfinite(t).all()):
            raise InvalidInputError(f"{where}: {name} has NaN or infinite entries.")
    if T.shape[0] != X.shape[0]:
        raise InvalidInputError(f"{where}: X has {X.shape[0]} rows, T {T.shape[0]}: give one target row per sample.")
    if weight_decay is not None:
        check_number(weight_decay, "weight_decay", minimum=0.0, where=where)
    if params is not None:
        check_params(arch, params, X.device, where=where)


def check_params(arch: Architecture, params: Params, device: torch.device, *, where: str) -> None:
    """``params`` as the architecture has them: ``(W_k, b_k)`` per layer, shapes ``(n_k, n_{k-1})`` and ``(n_k,)`` (or
    ``None`` without biases), float64 on ``device``, finite."""
    if not isinstance(params, (list, tuple)) or len(params) != arch.n_layers:
        got = f"{type(params).__name__} of length {len(params)}" if hasattr(params, "__len__") else \
            type(params).__name__
        raise InvalidInputError(f"{where}: params must be a list of {arch.n_layers} (W, b) pairs for sizes "
                                f"{arch.sizes}, got a {got}.")
    for k, (pair, m, n) in enumerate(zip(params, arch.sizes[:-1], arch.sizes[1:]), 1):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise InvalidInputError(f"{where}: layer {k} of params is not a (W, b) pair (b None without biases).")
        W, b = pair
        shapes = (("W", W, (n, m)), ("b", b, (n,))) if arch.bias else (("W", W, (n, m)),)
        if not arch.bias and b is not None:
            raise InvalidInputError(f"{where}: layer {k} has a bias but the architecture has bias=False.")
        for name, t, shape in shapes:
            if not isinstance(t, torch.Tensor) or tuple(t.shape) != shape or t.dtype != DTYPE or t.device != device:
                got = f"{tuple(t.shape)} {t.dtype} on {t.device}" if isinstance(t, torch.Tensor) else type(t).__name__
                raise InvalidInputError(f"{where}: layer {k}'s {name} is {got}; expected {shape} float64 on {device}.")
            if not bool(torch.isfinite(t).all()):
                raise InvalidInputError(f"{where}: layer {k}'s {name} has NaN or infinite entries.")


def check_layer_units(arch: Architecture, layer: Any, units: Any, *, where: str) -> None:
    """``layer`` a layer index ``0..L-1`` and ``units`` (a list of unit indices; tensors are not read, they stay on
    their device) within it: an index outside used to give an empty batch or an ``IndexError``."""
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 0 <= layer < arch.n_layers:
        raise InvalidInputError(f"{where}: layer={layer!r}: give a layer index 0..{arch.n_layers - 1} (0-based).")
    if isinstance(units, (list, tuple)):
        n = arch.sizes[int(layer) + 1]
        bad = [u for u in units if isinstance(u, bool) or not isinstance(u, (int, np.integer)) or not 0 <= u < n]
        if bad:
            raise InvalidInputError(f"{where}: units {bad} are not units of layer {layer} (0..{n - 1}).")


def init_params(arch: Architecture, seed: int | None, device: torch.device) -> Params:
    """torch's ``nn.Linear`` default scale: ``U(−1/√fan_in, 1/√fan_in)``, seeded with numpy (device-independent)."""
    rng = np.random.default_rng(check_seed(seed, where="init_params"))
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
    if out.shape != T.shape:  # (N, 1) against (N,) would broadcast to an (N, N) loss: a wrong number, no error
        raise InvalidInputError(f"the targets have shape {tuple(T.shape)} and the outputs {tuple(out.shape)}: give "
                                "targets of the outputs' shape (N, n_out), e.g. encode_targets(arch, y).")
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
           "as_flag", "check_data", "check_params", "check_layer_units", "init_params", "forward", "sample_losses",
           "data_loss", "objective", "sq_norm", "patterns_at", "boundary_mask", "flatten", "unflatten",
           "encode_targets", "softplus"]
