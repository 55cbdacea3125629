"""Pyomo forms of the model zoo (``to_pyomo``): the same objectives and blocks as ``to_cvxpy``."""

from __future__ import annotations

import numpy as np
import pyomo.environ as pyo

from multiconvex.pyomo_front import PyomoModel, ReLURelation


def factorization(Y: np.ndarray, k: int, reg: float, *, nonneg: bool, names=("U", "V"),
                  right_transposed: bool = True) -> PyomoModel:
    """``½‖Y − L R‖² + (reg/2)(‖L‖² + ‖R‖²)``; ``R`` stored as (n, k) when ``right_transposed`` (Y ≈ L Rᵀ)."""
    m, n = Y.shape
    dom = pyo.NonNegativeReals if nonneg else pyo.Reals
    M = pyo.ConcreteModel(name="factorization")
    L = pyo.Var(range(m), range(k), domain=dom, initialize=0.0)
    R = pyo.Var(range(n), range(k), domain=dom, initialize=0.0) if right_transposed else \
        pyo.Var(range(k), range(n), domain=dom, initialize=0.0)
    M.add_component(names[0], L)
    M.add_component(names[1], R)
    r = (lambda a, j: R[j, a]) if right_transposed else (lambda a, j: R[a, j])
    fit = sum((Y[i, j] - sum(L[i, a] * r(a, j) for a in range(k))) ** 2 for i in range(m) for j in range(n))
    penalty = sum(v ** 2 for v in L.values()) + sum(v ** 2 for v in R.values())
    M.obj = pyo.Objective(expr=0.5 * fit + reg / 2 * penalty)
    return PyomoModel(M, [[L], [R]], {names[0]: L, names[1]: R})


def single_neuron(x: np.ndarray, y: np.ndarray) -> PyomoModel:
    """``Σ (y_i − out_i)²`` with ``out_i = relu(a x_i + b)`` as ReLU relations; one block ``[a, b]``."""
    M = pyo.ConcreteModel(name="single_relu_neuron")
    M.a, M.b = pyo.Var(initialize=0.0), pyo.Var(initialize=0.0)
    M.S = pyo.RangeSet(0, len(x) - 1)
    M.out = pyo.Var(M.S, initialize=0.0)
    M.act = ReLURelation(M.S, rule=lambda blk, i: blk.set(M.out[i], M.a * float(x[i]) + M.b))
    M.obj = pyo.Objective(expr=sum((float(y[i]) - M.out[i]) ** 2 for i in M.S))
    return PyomoModel(M, [[M.a, M.b]], {"a": M.a, "b": M.b, "out": M.out})


def bilinear(data: dict) -> PyomoModel:
    """``xᵀQy + cᵀx + dᵀy`` over boxes and ``A1 x ≤ b1``, ``A2 y ≤ b2``; blocks ``[[x], [y]]``."""
    Q = data["Q"]
    n, p = Q.shape
    M = pyo.ConcreteModel(name="bilinear_program")
    M.x = pyo.Var(range(n), bounds=lambda m, i: (data["x_bounds_lo"][i], data["x_bounds_hi"][i]), initialize=0.0)
    M.y = pyo.Var(range(p), bounds=lambda m, j: (data["y_bounds_lo"][j], data["y_bounds_hi"][j]), initialize=0.0)
    M.obj = pyo.Objective(expr=sum(Q[i, j] * M.x[i] * M.y[j] for i in range(n) for j in range(p) if Q[i, j] != 0)
                          + sum(data["c"][i] * M.x[i] for i in range(n)) + sum(data["d"][j] * M.y[j] for j in range(p)))
    A1, b1, A2, b2 = data["A1"], data["b1"], data["A2"], data["b2"]
    M.cx = pyo.Constraint(range(A1.shape[0]), rule=lambda m, r: sum(A1[r, i] * m.x[i] for i in range(n)) <= b1[r])
    M.cy = pyo.Constraint(range(A2.shape[0]), rule=lambda m, r: sum(A2[r, j] * m.y[j] for j in range(p)) <= b2[r])
    return PyomoModel(M, [[M.x], [M.y]], {"x": M.x, "y": M.y})


def set_values(pm: PyomoModel, values: dict) -> PyomoModel:
    """Give the Pyomo variables named in ``values`` those arrays (index order of the Var)."""
    for name, arr in values.items():
        arr = np.asarray(arr, dtype=float)
        var = pm.variables[name]
        for idx, vd in var.items():
            vd.set_value(float(arr[idx] if arr.ndim else arr))
    return pm
