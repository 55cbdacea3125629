"""Full-space Pyomo formulations of ReLU networks, for small data.

Each hidden layer ``l`` gets pre-activation variables ``z_l[n, j]`` tied to the
previous layer by linear-in-the-weights constraints, and activation variables
``a_l[n, j]`` tied to them by :class:`ReLURelation`. Weights are the blocks (one
per layer); the per-sample variables belong to no block and are free in every
subproblem (held at their values where they multiply the block's weights).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyomo.environ as pyo

from ..errors import InvalidInputError
from .relations import ReLURelation


@dataclass
class PyomoModel:
    """A Pyomo model with its blocks (lists of Var components) and named variables."""

    model: pyo.ConcreteModel
    blocks: list[list]
    variables: dict[str, pyo.Var] = field(default_factory=dict)


def relu_network_model(X: np.ndarray, y: np.ndarray, layers: Sequence[int], *, weight_decay: float = 0.0,
                       bias: bool = True, weights: Sequence[np.ndarray] | None = None,
                       biases: Sequence[np.ndarray] | None = None, loss_scale: float = 1.0,
                       decay_biases: bool = False) -> PyomoModel:
    """Squared-loss ReLU network ``[d, h1, ..., out]`` in full-space form.

    Objective ``loss_scale · Σ_n ‖f(x_n) − y_n‖² + weight_decay · Σ_l (‖W_l‖² [+ ‖b_l‖²])``
    (sums over samples; biases decayed when ``decay_biases``), no activation after the last
    layer. ``ReLUNetwork.to_pyomo`` uses ``loss_scale = 1/(2N)``, ``weight_decay = λ/2`` and
    ``decay_biases=True``: its own objective. Layer ``l`` has weights ``W{l}[j, i]`` (out × in)
    and biases ``b{l}[j]``; its block is ``[W{l}, b{l}]``.

    Parameters
    ----------
    X : ndarray (N, d)
    y : ndarray (N,) or (N, out)
    weights, biases : optional start values per layer (shapes (out, in) and (out,)).
    """
    X = np.asarray(X, dtype=float)
    Y = np.asarray(y, dtype=float).reshape(len(X), -1)
    layers = list(layers)
    if X.ndim != 2 or X.shape[1] != layers[0] or Y.shape[1] != layers[-1]:
        raise InvalidInputError(
            f"relu_network_model: X is {X.shape} and y is {Y.shape}, but layers {layers} expect (N, {layers[0]}) "
            f"and (N, {layers[-1]}).")
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(Y))):
        raise InvalidInputError("relu_network_model: X or y contains NaN/inf.")
    N = len(X)
    m = pyo.ConcreteModel(name="relu_network")
    m.S = pyo.RangeSet(0, N - 1)
    prev = None  # previous layer's activations (a Var indexed by (n, i)), None for the input
    blocks, names = [], {}
    L = len(layers) - 1
    for l in range(1, L + 1):
        n_in, n_out = layers[l - 1], layers[l]
        W = pyo.Var(range(n_out), range(n_in), initialize=0.0)
        m.add_component(f"W{l}", W)
        comps = [W]
        names[f"W{l}"] = W
        if weights is not None:
            for (j, i), v in W.items():
                v.set_value(float(np.asarray(weights[l - 1])[j, i]))
        b = None
        if bias:
            b = pyo.Var(range(n_out), initialize=0.0)
            m.add_component(f"b{l}", b)
            comps.append(b)
            names[f"b{l}"] = b
            if biases is not None:
                for j, v in b.items():
                    v.set_value(float(np.asarray(biases[l - 1])[j]))
        blocks.append(comps)

        def affine(n, j, W=W, b=b, prev=prev, n_in=n_in):
            inp = (lambda i: X[n, i]) if prev is None else (lambda i: prev[n, i])
            return sum(W[j, i] * inp(i) for i in range(n_in)) + (b[j] if b is not None else 0.0)

        if l < L:
            z = pyo.Var(m.S, range(n_out), initialize=0.0)
            a = pyo.Var(m.S, range(n_out), initialize=0.0)
            m.add_component(f"z{l}", z)
            m.add_component(f"a{l}", a)
            m.add_component(f"pre{l}", pyo.Constraint(m.S, range(n_out), rule=lambda m, n, j, z=z, f=affine:
                                                      z[n, j] == f(n, j)))
            m.add_component(f"relu{l}", ReLURelation(m.S, range(n_out),
                                                     rule=lambda blk, n, j, a=a, z=z: blk.set(a[n, j], z[n, j])))
            prev = a
        else:
            out = affine
    loss = sum((out(n, j) - Y[n, j]) ** 2 for n in range(N) for j in range(layers[-1]))
    decayed = [f"W{l}" for l in range(1, L + 1)] + ([f"b{l}" for l in range(1, L + 1)] if bias and decay_biases else [])
    reg = weight_decay * sum(v ** 2 for name in decayed for v in names[name].values())
    m.obj = pyo.Objective(expr=float(loss_scale) * loss + reg)
    return PyomoModel(m, blocks, names)


def set_consistent_activations(model: pyo.ConcreteModel) -> None:
    """Give every pre-activation and activation variable the value the weights imply (a feasible start)."""
    layers = sorted(int(c.name[3:]) for c in model.component_objects(pyo.Constraint) if c.name.startswith("pre"))
    for l in layers:  # in order: layer l reads layer l-1's activations
        pre = model.find_component(f"pre{l}")
        z, a = model.find_component(f"z{l}"), model.find_component(f"a{l}")
        for idx, con in pre.items():
            val = float(pyo.value(con.expr.args[1]))  # z[idx] == f(previous layer)
            z[idx].set_value(val)
            a[idx].set_value(max(val, 0.0))
