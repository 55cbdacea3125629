"""The torch, Pyomo and cvxpy forms of a :class:`~multiconvex.models.ReLUNetwork`'s weights.

What ``to_torch`` / ``from_torch`` / ``to_pyomo`` / ``to_cvxpy`` build, as plain functions of the
architecture and the parameters (torch tensors ``[(W_k, b_k), ...]``, torch layout); the estimator
checks its inputs and picks the weights (current or the seeded start), these build the object.
"""

from __future__ import annotations

from typing import Any

import cvxpy as cp
import numpy as np
import torch

import multiconvex as mc
from multiconvex.errors import InvalidInputError
from multiconvex.nets import Architecture
from multiconvex.pyomo_front import relu_network_model, set_consistent_activations

from ._base import CvxpyModel

__all__ = ["cvxpy_form", "pyomo_form", "read_sequential", "sequential"]


def sequential(arch: Architecture, params) -> torch.nn.Sequential:
    """``nn.Sequential`` of ``Linear`` and ``ReLU``/``LeakyReLU`` layers holding ``params``."""
    layers: list[torch.nn.Module] = []
    for k, (W, b) in enumerate(params):
        lin = torch.nn.Linear(W.shape[1], W.shape[0], bias=b is not None, dtype=W.dtype, device=W.device)
        with torch.no_grad():
            lin.weight.copy_(W)
            if b is not None:
                lin.bias.copy_(b)
        layers.append(lin)
        if k < len(params) - 1:
            layers.append(torch.nn.ReLU() if arch.activation == "relu" else
                          torch.nn.LeakyReLU(arch.negative_slope))
    return torch.nn.Sequential(*layers)


def read_sequential(module: torch.nn.Module) -> tuple[dict[str, Any], list[np.ndarray], list[np.ndarray] | None]:
    """``(constructor arguments, coefs, intercepts)`` read from an ``nn.Sequential`` of Linear and
    ReLU/LeakyReLU layers: ``sizes``, ``activation``, ``negative_slope`` and ``bias``, then the weights
    as float64 arrays (``intercepts`` None without biases).

    Raises
    ------
    InvalidInputError
        Not ``Linear, act, Linear, ..., Linear`` with one kind of activation, or biases on some layers only.
    """
    mods = list(module.children()) if isinstance(module, torch.nn.Sequential) else [module]
    linears = [m for m in mods if isinstance(m, torch.nn.Linear)]
    acts = [m for m in mods if not isinstance(m, torch.nn.Linear)]
    pattern_ok = bool(mods) and all(isinstance(m, torch.nn.Linear) == (i % 2 == 0) for i, m in enumerate(mods)) \
        and isinstance(mods[-1], torch.nn.Linear)
    if not linears or not pattern_ok or not all(isinstance(a, (torch.nn.ReLU, torch.nn.LeakyReLU)) for a in acts):
        raise InvalidInputError("from_torch: expected nn.Sequential(Linear, ReLU, Linear, ..., Linear) "
                                "with ReLU or LeakyReLU between the Linear layers.")
    if len({type(a) for a in acts}) > 1 or len({getattr(a, "negative_slope", 0.0) for a in acts}) > 1:
        raise InvalidInputError("from_torch: every activation must be the same (one ReLU or LeakyReLU kind).")
    bias = {lin.bias is not None for lin in linears}
    if len(bias) > 1:
        raise InvalidInputError("from_torch: either every Linear layer has a bias or none does.")
    for k, (a, b) in enumerate(zip(linears, linears[1:]), 1):
        if b.in_features != a.out_features:
            raise InvalidInputError(f"from_torch: Linear layer {k} has {a.out_features} outputs but layer {k + 1} "
                                    f"takes {b.in_features} inputs: the layers do not chain.")
    sizes = [linears[0].in_features] + [lin.out_features for lin in linears]
    leaky = bool(acts) and isinstance(acts[0], torch.nn.LeakyReLU)
    has_bias = bias.pop()
    spec = {"sizes": sizes, "activation": "leaky_relu" if leaky else "relu",
            "negative_slope": float(acts[0].negative_slope) if leaky else 0.01, "bias": has_bias}
    coefs = [lin.weight.detach().cpu().numpy().astype(float).copy() for lin in linears]
    intercepts = [lin.bias.detach().cpu().numpy().astype(float).copy() for lin in linears] if has_bias else None
    return spec, coefs, intercepts


def pyomo_form(arch: Architecture, params, Xn: np.ndarray, Tn: np.ndarray, weight_decay: float):
    """The full-space Pyomo model of ``F(θ)`` (squared loss, plain ReLU) started at ``params``, the
    per-sample variables at the values they imply (see ``ReLUNetwork.to_pyomo``)."""
    weights = [W.detach().cpu().numpy() for W, _ in params]
    biases = [b.detach().cpu().numpy() for _, b in params] if arch.bias else None
    pm = relu_network_model(Xn, Tn, list(arch.sizes), weight_decay=float(weight_decay) / 2,
                            bias=bool(arch.bias), weights=weights, biases=biases,
                            loss_scale=1.0 / (2 * len(Xn)), decay_biases=True)
    set_consistent_activations(pm.model)
    return pm


def cvxpy_form(arch: Architecture, params, Xn: np.ndarray, Tn: np.ndarray, weight_decay: float) -> CvxpyModel:
    """``F(θ)`` as a cvxpy problem with :func:`multiconvex.relu`, one block per layer, the variables
    holding ``params`` (see ``ReLUNetwork.to_cvxpy``)."""
    N = Xn.shape[0]
    variables: dict[str, cp.Variable] = {}
    blocks = []
    A = Xn.T  # (d, N): samples as columns
    for k, (W0, b0) in enumerate(params):
        W = cp.Variable(tuple(W0.shape), name=f"W{k + 1}")
        W.value = W0.cpu().numpy()
        variables[W.name()] = W
        block = [W]
        Z = W @ A
        if b0 is not None:
            b = cp.Variable(b0.shape[0], name=f"b{k + 1}")
            b.value = b0.cpu().numpy()
            variables[b.name()] = b
            block.append(b)
            Z = Z + cp.reshape(b, (b0.shape[0], 1), order="F") @ np.ones((1, N))
        blocks.append(block)
        if k < len(params) - 1:
            A = mc.relu(Z) if arch.activation == "relu" else \
                arch.negative_slope * Z + (1 - arch.negative_slope) * mc.relu(Z)
        else:
            A = Z
    if arch.loss == "squared":
        loss = cp.sum_squares(A - Tn.T) / (2 * N)
    elif arch.loss == "logistic":
        loss = cp.sum(cp.logistic(cp.multiply(-Tn.T, A))) / N
    else:
        loss = (cp.sum(cp.log_sum_exp(A, axis=0)) - cp.sum(cp.multiply(Tn.T, A))) / N
    reg = sum(cp.sum_squares(v) for v in variables.values())
    obj = loss + (float(weight_decay) / 2) * reg if weight_decay else loss
    return CvxpyModel(cp.Problem(cp.Minimize(obj)), blocks, variables)
