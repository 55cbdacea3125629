"""A Pyomo model compiled to the standard form (DESIGN.md, "one seam")."""

from __future__ import annotations

import logging
import time
from typing import Any, Hashable, Mapping, Sequence

import numpy as np
import pyomo.environ as pyo
from pyomo.core.base.block import BlockData
from pyomo.common.collections import ComponentSet
from pyomo.core.base.var import VarData
from pyomo.core.expr.visitor import identify_variables

from ..errors import InvalidInputError, LicenceError, SolverUnavailableError
from ..standard_form import Block, BlockSolution, Point, StandardForm
from .cross_section import PyomoCrossSection
from .relations import ReLURelation
from .subsolver import SubSolver

logger = logging.getLogger("multiconvex")


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


def _model_vars(objective, constraints: list, relations: list) -> ComponentSet:
    """Variables the solve can see: in the active objective, active constraints and active relations."""
    seen = ComponentSet(identify_variables(objective.expr, include_fixed=True))
    for c in constraints:
        seen.update(identify_variables(c.body, include_fixed=True))
    for r in relations:
        seen.update(identify_variables(r.input, include_fixed=True))
        seen.add(r.output)
    return seen


class PyomoForm(StandardForm):
    """Standard form of a Pyomo ``ConcreteModel``.

    Parameters
    ----------
    model : ConcreteModel
    blocks : list of lists of Var/Block components, optional
        ``None``: each top-level ``Block`` of the model is a block of variables.
    subsolver : str or list of str
        Pyomo solver name(s) (``highs``, ``gurobi_persistent``, ``scip_direct``,
        ``cyipopt``...) or registry names; a list is a fallback list.
    """

    def __init__(self, model: pyo.ConcreteModel, blocks: Sequence[Sequence[Any]] | None, *,
                 subsolver: str | Sequence[str], subsolver_options: Mapping[str, Any] | None = None,
                 prox: bool = False, feasibility_tol: float = 1e-6, reuse_subsolver: bool = True):
        t0 = time.perf_counter()
        self.model = model
        objs = list(model.component_data_objects(pyo.Objective, active=True))
        if len(objs) != 1:
            raise InvalidInputError(f"the model has {len(objs)} active objectives: exactly one is needed.")
        self.objective = objs[0]
        self.sense = 1 if self.objective.sense == pyo.minimize else -1
        self.constraints = list(model.component_data_objects(pyo.Constraint, active=True, descend_into=True))
        self.relations = list(model.component_data_objects(ReLURelation, active=True, descend_into=True))
        for r in self.relations:
            if not r.is_set():
                raise InvalidInputError(f"ReLURelation {r.name} was never set: call .set(output, input).")
        block_lists, names = self._block_lists(model, blocks)
        used = _model_vars(self.objective, self.constraints, self.relations)
        for name, b in zip(names, block_lists):
            if not any(vd in used for vd in b):
                raise InvalidInputError(
                    f"block {name} holds no variable of the active objective, constraints or ReLU relations: "
                    "there is nothing to optimise in it; leave it out.")
        in_block = ComponentSet(vd for b in block_lists for vd in b)
        comps = [c for c in model.component_objects(pyo.Var, descend_into=True)
                 if any(vd in used or vd in in_block for vd in c.values())]
        self.vars = [vd for c in comps for vd in c.values()]
        if not self.vars:
            raise InvalidInputError("the model has no variables: there is nothing to optimise.")
        for vd in self.vars:
            self._check_variable(vd)
        self.components = comps
        self._comp = {id(c): c for c in comps}  # points are keyed by id(component): scalar Vars are unhashable
        self._pos = {id(vd): (id(c), k) for c in comps for k, vd in enumerate(c.values())}
        # fixed variables stay fixed: held at their values in every subproblem
        free = [vd for vd in self.vars if vd not in in_block and not vd.fixed and vd in used]
        self.blocks = [Block(n, tuple(dict.fromkeys(id(vd.parent_component()) for vd in b)))
                       for n, b in zip(names, block_lists)]
        specs = [subsolver] if isinstance(subsolver, str) else list(subsolver)
        if not specs:
            raise InvalidInputError("subsolver is empty: name at least one Pyomo solver.")
        self.feasibility_tol = feasibility_tol
        self.sections: list[PyomoCrossSection] = []
        x0 = {id(vd): vd.value for vd in self.vars}
        for name, b in zip(names, block_lists):
            bvars = [vd for vd in b if not vd.fixed and vd in used]
            if not bvars:
                raise InvalidInputError(f"block {name} has no free variables (all are fixed).")
            sec = PyomoCrossSection(name, self.objective, self.constraints, self.relations, bvars, free,
                                    self.vars, prox=prox)
            sec.subsolvers = self._subsolvers(specs, subsolver_options, reuse_subsolver)
            self.sections.append(sec)
        self._check_free_variables_move(free)
        self._x0 = x0
        self.build_time = time.perf_counter() - t0
        self._prepared: dict[int, Point] = {}

    @staticmethod
    def _check_variable(vd: VarData) -> None:
        if vd.fixed:
            if vd.value is None:
                raise InvalidInputError(f"variable {vd.name} is fixed but has no value: give it one or unfix it.")
            lo, hi = vd.lb, vd.ub
            if not np.isfinite(vd.value) or (lo is not None and vd.value < lo) or (hi is not None and vd.value > hi):
                raise InvalidInputError(
                    f"variable {vd.name} is fixed at {vd.value}, outside its bounds [{lo}, {hi}] (or not finite): "
                    "no point is feasible; fix it inside its bounds.")
        elif vd.is_integer() or vd.is_binary():
            raise InvalidInputError(
                f"variable {vd.name} is integer/binary: multiconvex solves continuous problems only; fix it, or "
                "use a mixed-integer solver (e.g. SolverFactory('scip_direct')) directly.")

    def _check_free_variables_move(self, free: list) -> None:
        """A variable outside every block that multiplies block variables in every block would be held at its
        start in every subproblem: it would never move, and the certificate would say nothing about it."""
        held = [{id(h) for h in sec.held} for sec in self.sections]
        stuck = [vd for vd in free if all(id(vd) in ids for ids in held)]
        if stuck:
            names = ", ".join(vd.name for vd in stuck[:5]) + (" ..." if len(stuck) > 5 else "")
            raise InvalidInputError(
                f"variable(s) {names} belong to no block and multiply block variables in every block, so every "
                "block subproblem would hold them at their start values and they would never be optimised. Put "
                "them in a block (e.g. blocks=[[m.U], [m.V, m.s]]) or in a block of their own.")

    @staticmethod
    def _block_lists(model, blocks) -> tuple[list[list[VarData]], list[str]]:
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

    def _subsolvers(self, specs, options, reuse: bool) -> list[SubSolver]:
        out, errors = [], []
        for s in specs:
            per = dict(options or {})
            per = per.get(s, per) if isinstance(per.get(s), Mapping) else {
                k: v for k, v in per.items() if not isinstance(v, Mapping)}
            try:
                out.append(SubSolver(s, per, reuse=reuse))
            except (LicenceError, SolverUnavailableError) as exc:
                if len(specs) == 1:
                    raise
                errors.append(exc)
        if not out:
            text = "no sub-solver in the list is usable here: " + "; ".join(str(e) for e in errors)
            if all(isinstance(e, LicenceError) for e in errors):
                raise LicenceError(text, solver=str(specs))
            raise SolverUnavailableError(text)
        return out

    def attach(self) -> None:
        """Check convexity at the start point and load each sub-model into its sub-solvers."""
        for sec in self.sections:
            sec.set_point()
            sec.check_convex()
            nq = sec.n_quadratic()
            for ss in sec.subsolvers:
                ss.attach(sec.sub, sec.param_constraints, nq)

    # -- points ---------------------------------------------------------------------------------
    def keys(self) -> list[Hashable]:
        return list(self._comp)

    def initial_point(self, seed: int | None, init: Mapping[Any, Any] | None) -> Point:
        rng = np.random.default_rng(seed)
        given = {}
        for k, val in (init or {}).items():
            comp = k.parent_component() if hasattr(k, "parent_component") else self.model.find_component(k)
            if comp is None or id(comp) not in self._comp:
                raise InvalidInputError(f"init names {k!r}, which is not a variable of the model.")
            arr = np.asarray(val, dtype=float).ravel()
            if arr.size != len(comp):
                raise InvalidInputError(f"init for {comp.name} has {arr.size} values, expected {len(comp)}.")
            given[id(comp)] = arr
        point: Point = {}
        for c in self.components:
            if id(c) in given:
                arr = given[id(c)].copy()
            else:
                arr = np.array([vd.value if vd.value is not None else np.nan for vd in c.values()], dtype=float)
                missing = np.isnan(arr)
                arr[missing] = rng.standard_normal(int(missing.sum()))
            for k, vd in enumerate(c.values()):
                if vd.fixed:
                    arr[k] = vd.value
                    continue
                lo, hi = vd.lb, vd.ub
                if lo is not None and lo >= 0 and arr[k] < lo and (id(c) not in given):
                    arr[k] = abs(arr[k]) + lo
                arr[k] = np.clip(arr[k], -np.inf if lo is None else lo, np.inf if hi is None else hi)
            if not np.all(np.isfinite(arr)):
                raise InvalidInputError(f"initial value of {c.name} contains NaN or inf.")
            point[id(c)] = arr
        return point

    def _assign(self, point: Point) -> None:
        for key, arr in point.items():
            for vd, val in zip(self._comp[key].values(), arr):
                vd.set_value(float(val), skip_validation=True)

    def evaluate(self, point: Point) -> tuple[float, float]:
        self._assign(point)
        f = self.sense * float(pyo.value(self.objective.expr))
        viol = 0.0
        for c in self.constraints:
            b = pyo.value(c.body)
            if c.has_lb():
                viol = max(viol, pyo.value(c.lower) - b)
            if c.has_ub():
                viol = max(viol, b - pyo.value(c.upper))
        for r in self.relations:
            viol = max(viol, abs(r.output.value - max(pyo.value(r.input), 0.0)))
        for vd in self.vars:
            if vd.lb is not None:
                viol = max(viol, vd.lb - vd.value)
            if vd.ub is not None:
                viol = max(viol, vd.value - vd.ub)
        if not np.isfinite(f) or viol > self.feasibility_tol:
            return float("inf"), max(viol, 0.0)
        return f, 0.0

    def piece(self, point: Point) -> tuple[np.ndarray, ...]:
        self._assign(point)
        return (np.array([pyo.value(r.input) >= 0 for r in self.relations], dtype=bool),)

    # -- block subproblems ----------------------------------------------------------------------
    def prepare(self, index: int, point: Point, *, prox: float = 0.0, flip_boundary: bool = False) -> bool:
        self._assign(point)
        self._prepared[index] = point
        sec = self.sections[index]
        edge = sec.set_point(prox=prox, flip_boundary=flip_boundary)
        sec.recheck_convex()  # curvature that depends on the other blocks can change from point to point
        return edge

    def solve_prepared(self, index: int) -> BlockSolution:
        sec = self.sections[index]
        t0 = time.perf_counter()
        status, has, solve_time, message, used = sec.solve()
        sol = BlockSolution(block=index, status=status, backend=used, solve_time=solve_time,
                            wall_time=time.perf_counter() - t0, message=message)
        if has:
            point = self._prepared[index]
            values: dict[Hashable, np.ndarray] = {}
            for vd, val in zip(sec.own, sec.solution()):
                if val is None:
                    return BlockSolution(block=index, status="solver_error", backend=used,
                                         solve_time=solve_time, message=f"{used} returned no value for {vd.name}")
                comp, k = self._pos[id(vd)]
                if comp not in values:
                    values[comp] = point[comp].copy()
                values[comp][k] = val
            sol.values = values
            sol.value = self.sense * sec.objective_value()
        return sol

    def load(self, point: Point) -> None:
        self._assign(point)

    def named_values(self, point: Point) -> dict[str, np.ndarray]:
        return {self._comp[key].name: np.array(arr) for key, arr in point.items()}


__all__ = ["PyomoForm", "VarData"]
