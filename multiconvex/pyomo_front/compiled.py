"""A Pyomo model's objective, constraints and ReLU relations compiled once into monomial tables.

Every active expression is walked once (:mod:`.polynomial`) over the *flat point*: the
values of the model's variables in the order of :attr:`PyomoForm.vars`. From then on the
objective, the constraint bodies and the relations' inputs at any point are numpy gathers
and products (:meth:`CompiledModel.evaluate`, :meth:`CompiledModel.piece`), and each
block's subproblem is cut from the same tables (:mod:`.matrix_section`).

Terms that are not polynomials are kept as they are (``opaque``): a block that touches
one is solved through Pyomo, and the objective is then evaluated by Pyomo too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyomo.environ as pyo
from pyomo.core.expr.visitor import identify_variables

from .polynomial import MonomialTable, NotPolynomial, Poly, extend, objective_parts, polynomial


def _var_positions(expr, index: Mapping[int, int]) -> frozenset[int]:
    """Positions of the variables (not fixed) in ``expr``."""
    return frozenset(index[id(v)] for v in identify_variables(expr, include_fixed=False) if id(v) in index)


def _polynomials(exprs: list, index: Mapping[int, int]) -> tuple[list[Poly], dict[int, Opaque]]:
    """Each expression as a polynomial (an empty one where it is not), and the others by position."""
    polys: list[Poly] = []
    opaque: dict[int, Opaque] = {}
    for k, expr in enumerate(exprs):
        try:
            polys.append(polynomial(expr, index))
        except NotPolynomial:
            polys.append({})
            opaque[k] = Opaque(expr, _var_positions(expr, index))
    return polys, opaque


@dataclass
class Opaque:
    """A part of the model that is not a polynomial: the expression and the variables in it."""

    expr: Any
    positions: frozenset[int]
    scale: float = 1.0


class CompiledModel:
    """Objective (minimised sense), constraints and relations of a model as monomial tables.

    Parameters
    ----------
    objective : ObjectiveData
    sense : int
        +1 to minimise, -1 to maximise (the tables hold ``sense * objective``).
    constraints, relations : the model's active constraints and ReLU relations.
    index : mapping ``id(VarData) -> position`` in the flat point.
    n_vars : length of the flat point.
    lower, upper : every flat position's bounds (±inf where none).
    """

    def __init__(self, objective, sense: int, constraints: list, relations: list, index: Mapping[int, int],
                 n_vars: int, lower: np.ndarray, upper: np.ndarray):
        self.n_vars = n_vars
        parts = objective_parts(objective.expr, index, scale=sense)
        self.weights = np.array([w for w, _, _ in parts.squares], dtype=float)
        self.squares = MonomialTable([p for _, p, _ in parts.squares], n_vars)
        self.remainder = MonomialTable([parts.remainder], n_vars)
        self.opaque = [Opaque(e, _var_positions(e, index), s) for s, e in parts.opaque]

        polys, self.constraint_opaque = _polynomials([c.body for c in constraints], index)
        self.constraints = MonomialTable(polys, n_vars)
        self.constraint_names = [c.name for c in constraints]
        self.con_lower = np.array([pyo.value(c.lower) if c.has_lb() else -np.inf for c in constraints], dtype=float)
        self.con_upper = np.array([pyo.value(c.upper) if c.has_ub() else np.inf for c in constraints], dtype=float)

        polys, self.relation_opaque = _polynomials([r.input for r in relations], index)
        self.relations = MonomialTable(polys, n_vars)
        self.relation_names = [r.name for r in relations]
        self.outputs = np.array([index[id(r.output)] for r in relations], dtype=np.int64)
        self.lower, self.upper = lower, upper

    @property
    def exact(self) -> bool:
        """Everything is a polynomial: the objective, violations and pieces are computed here."""
        return not (self.opaque or self.constraint_opaque or self.relation_opaque)

    def objective(self, xe: np.ndarray) -> float:
        """The minimised objective at the extended flat point ``xe`` (polynomial parts only)."""
        r = self.squares.evaluate(xe)
        rem = self.remainder.evaluate(xe)
        return float((self.weights * r * r).sum() + rem.sum())  # sums, not BLAS dots (threads cost ms)

    def evaluate(self, x: np.ndarray, feasibility_tol: float) -> tuple[float, float]:
        """``(objective, violation)`` as :meth:`PyomoForm.evaluate` defines them (only when :attr:`exact`)."""
        xe = extend(x)
        f = self.objective(xe)
        viol = 0.0
        if self.constraints.n_rows:
            body = self.constraints.evaluate(xe)
            viol = max(viol, float(np.max(self.con_lower - body)), float(np.max(body - self.con_upper)))
        if self.relations.n_rows:
            z = self.relations.evaluate(xe)
            viol = max(viol, float(np.max(np.abs(x[self.outputs] - np.maximum(z, 0.0)))))
        if x.size:
            viol = max(viol, float(np.max(self.lower - x)), float(np.max(x - self.upper)))
        if not np.isfinite(f) or viol > feasibility_tol:
            return float("inf"), max(viol, 0.0)
        return f, 0.0

    def piece(self, x: np.ndarray) -> np.ndarray:
        """Which relations are on their live side (input ≥ 0) at the flat point ``x``."""
        return self.relations.evaluate(extend(x)) >= 0


__all__ = ["CompiledModel", "Opaque"]
