"""Which variables a Pyomo model optimises and how they split into blocks (PyomoForm's input checks)."""

from __future__ import annotations

import math

import pyomo.environ as pyo
from pyomo.common.collections import ComponentSet
from pyomo.core.base.block import BlockData
from pyomo.core.base.var import VarData
from pyomo.core.expr.numvalue import native_numeric_types
from pyomo.core.expr.visitor import StreamBasedExpressionVisitor, identify_variables

from ..errors import InvalidInputError


def _entry_vars(item, where: str) -> list[VarData]:
    """Variables named by one block entry: a Var (scalar or indexed), one entry of an indexed Var, or a Block
    (scalar or indexed: every variable inside its active parts)."""
    ctype = getattr(item, "ctype", None)
    if ctype is pyo.Block:
        datas = [item] if isinstance(item, BlockData) else list(item.values())
        out = []
        for b in datas:
            if not b.active:
                raise InvalidInputError(
                    f"{where}: Block {b.name} is deactivated; activate it or leave it out of the blocks.")
            out += list(b.component_data_objects(pyo.Var, descend_into=True, active=True))
        return out
    if ctype is pyo.Var:
        return [item] if isinstance(item, VarData) else list(item.values())
    raise InvalidInputError(
        f"{where}: entry {item!r} is a {type(item).__name__}; give Pyomo Vars (whole, or single entries "
        "such as m.W[1, 2]) or Blocks.")


def model_vars(objective, constraints: list, relations: list) -> ComponentSet:
    """Variables the solve can see: in the active objective, active constraints and active relations."""
    seen = ComponentSet(identify_variables(objective.expr, include_fixed=True))
    for c in constraints:
        seen.update(identify_variables(c.body, include_fixed=True))
    for r in relations:
        seen.update(identify_variables(r.input, include_fixed=True))
        seen.add(r.output)
    return seen


def _nonfinite_data(expr) -> list[str]:
    """The NaN/inf numbers in ``expr``: constants, and the values of the Params it uses."""
    bad: list[str] = []

    def before_child(node, child, child_idx):
        if type(child) in native_numeric_types:
            if not math.isfinite(child):
                bad.append(repr(child))
            return False, None
        if getattr(child, "is_parameter_type", lambda: False)():
            value = pyo.value(child, exception=False)
            if value is not None and not math.isfinite(value):
                bad.append(f"{child.name}={value}")
            return False, None
        return True, None

    if type(expr) in native_numeric_types:
        return [] if math.isfinite(expr) else [repr(expr)]
    StreamBasedExpressionVisitor(beforeChild=before_child).walk_expression(expr)
    return bad


def check_finite_data(objective, constraints: list, relations: list) -> None:
    """Refuse NaN/inf in the objective, a constraint (body or bound) or a relation's input, before any solve."""
    parts = [(f"objective {objective.name}", objective.expr)]
    parts += [(f"constraint {c.name}", c.body) for c in constraints]
    parts += [(f"ReLURelation {r.name}", r.input) for r in relations]
    for where, expr in parts:
        bad = _nonfinite_data(expr)
        if bad:
            raise InvalidInputError(f"{where} contains NaN or inf ({', '.join(bad[:3])}): fix the data (or the Param "
                                    "values) before solving.")
    for c in constraints:
        for side, bound in (("lower", c.lower), ("upper", c.upper)):
            value = None if bound is None else pyo.value(bound, exception=False)
            if value is not None and math.isnan(value):
                raise InvalidInputError(f"constraint {c.name} has a NaN {side} bound: fix the data before solving.")


def row_violation(c, body: float) -> float:
    """How far ``body`` (the value of constraint ``c``'s body) lies outside its bounds; ≤ 0 when it holds."""
    worst = -math.inf
    if c.has_lb():
        worst = pyo.value(c.lower) - body
    if c.has_ub():
        worst = max(worst, body - pyo.value(c.upper))
    return worst


def check_constant_rows(constraints: list, tol: float) -> None:
    """Refuse a constraint whose variables are all fixed (or that has none) and that does not hold: no point is
    feasible (a run used to go to its iteration limit and end with ``inf``). Violations up to ``tol`` pass, as in
    the form's evaluation of a point."""
    for c in constraints:
        if any(True for _ in identify_variables(c.body, include_fixed=False)):
            continue
        body = pyo.value(c.body, exception=False)
        if body is None:  # a fixed variable without a value: refused by name where the start point is read
            continue
        if row_violation(c, body) > tol:
            lo = pyo.value(c.lower) if c.has_lb() else -math.inf
            hi = pyo.value(c.upper) if c.has_ub() else math.inf
            raise InvalidInputError(
                f"constraint {c.name} involves no free variable (its variables are fixed) and does not hold: body "
                f"{body:.6g} outside [{lo:.6g}, {hi:.6g}]; no point is feasible. Unfix a variable, correct the data, "
                "or deactivate the constraint.")


def variable_blocks(model, blocks) -> tuple[list[list[VarData]], list[str]]:
    """The variables of each block and the block's name (see :class:`PyomoForm`'s ``blocks``)."""
    if blocks is None:
        tops = list(model.component_objects(pyo.Block, descend_into=False, active=True))
        if not tops:
            raise InvalidInputError(
                "the model has no active top-level Blocks to take as blocks of variables: put each block's "
                "variables in its own Block (m.layer1 = pyo.Block()), or pass blocks=[[m.U], [m.V]].")
        # each entry of an indexed Block (m.layer[1], m.layer[2]...) is a block of its own
        items = [[bd] for b in tops for bd in ([b] if isinstance(b, BlockData) else b.values()) if bd.active]
    else:
        if isinstance(blocks, (str, bytes)) or not hasattr(blocks, "__iter__"):
            raise InvalidInputError(
                f"blocks must be a list of blocks (each a list of Vars or Blocks), got {type(blocks).__name__}.")
        items = [list(b) if isinstance(b, (list, tuple)) else [b] for b in blocks]
        if not items:
            raise InvalidInputError("blocks is empty: give at least one block, e.g. blocks=[[m.U], [m.V]], or "
                                    "None to take each top-level Block.")
    out, names = [], []
    for i, entries in enumerate(items):
        where = f"block {i}"
        vds = list(ComponentSet(vd for item in entries for vd in _entry_vars(item, where)))
        if not vds:
            raise InvalidInputError(f"{where} has no variables.")
        out.append(vds)
        names.append("+".join(getattr(item, "name", str(item)) for item in entries))
    return out, names


__all__ = ["model_vars", "variable_blocks"]
