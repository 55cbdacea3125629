"""A Pyomo model compiled to the standard form (DESIGN.md, "one seam").

Each block is solved in one of two forms, chosen once at build time and reported in
``Result.info["forms"]``:

* ``"matrix"``: the model's expressions are walked once into monomial tables
  (:mod:`.compiled`); at each point the block's subproblem is a
  :class:`~multiconvex.subproblem.BlockSubproblem` computed by numpy (:mod:`.matrix_section`)
  and solved by the one dispatcher. Used when the sub-solver is given by registry names
  (``"auto"``, ``"clarabel"``, ``"highs"``, ``["gurobi", "clarabel"]``...) and the block's
  subproblem is a QP in its own variables.
* ``"pyomo"``: the block's Pyomo sub-model with mutable parameters (:mod:`.cross_section`),
  solved by a Pyomo solver (:mod:`.subsolver`): Pyomo-only names (``gurobi_persistent``,
  ``appsi_highs``, ``cyipopt``...) and blocks that are not QPs (a quadratic constraint, a
  term that is not a polynomial).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import pyomo.environ as pyo
from pyomo.common.collections import ComponentSet
from pyomo.core.base.var import VarData
from pyomo.core.expr.visitor import identify_variables

from ..errors import InvalidInputError, LicenceError, SolverUnavailableError
from ..solvers import dispatch
from ..standard_form import Block, BlockSolution, Point, StandardForm
from ..validation import as_float_array
from .blocks import check_constant_rows, check_finite_data, model_vars, row_violation, variable_blocks
from .compiled import CompiledModel
from .cross_section import (
    PyomoCrossSection,
    free_var_links,
    held_free_vars,
    not_convex_objective,
    not_convex_term,
    objective_terms,
)
from .matrix_section import MatrixCrossSection, NotQuadraticProgram, psd, term_curvature
from .polynomial import NotPolynomial, extend, polynomial
from .relations import ReLURelation
from .subsolver import SubSolver, check_plan, matrix_plan

logger = logging.getLogger("multiconvex")


#: What ``subsolver="auto"`` means for a block kept as a Pyomo sub-model (a quadratic constraint): free SCIP first,
#: then Gurobi (its pip licence is size-limited).
AUTO_SUBMODEL = ("scip_direct", "gurobi_persistent")

#: Pyomo solvers that refuse what a sub-model may hold: a quadratic objective (APPSI's HiGHS takes linear models
#: only) and quadratic constraints (HiGHS). Each raised at its first solve, and the run ended ``solver_failure``.
NO_QUADRATIC_OBJECTIVE = frozenset({"appsi_highs"})
NO_QUADRATIC_CONSTRAINTS = frozenset({"highs", "appsi_highs"})


def _check_takes(sec) -> None:
    """Refuse, before any solve, a block whose sub-model no sub-solver of its list can take (see the sets above)."""
    objective, constraints = sec.quadratic_parts()
    need = ("a quadratic objective" if objective and all(ss.name in NO_QUADRATIC_OBJECTIVE for ss in sec.subsolvers)
            else "a quadratic constraint" if constraints and all(ss.name in NO_QUADRATIC_CONSTRAINTS
                                                                  for ss in sec.subsolvers)
            else None)
    if need is not None:
        names = ", ".join(ss.name for ss in sec.subsolvers)
        fix = ("pass subsolver='auto' (a block that is a QP in its own variables then goes to the dispatcher's QP "
               "backends) or a Pyomo solver that takes quadratic objectives (highs, gurobi_persistent, scip_direct)"
               if need == "a quadratic objective" else
               f"pass subsolver='auto' (the first usable of {', '.join(AUTO_SUBMODEL)}) or a Pyomo solver that takes "
               "a convex quadratically constrained program (scip_direct, gurobi_persistent, mosek_persistent, "
               "cyipopt)")
        raise InvalidInputError(f"block '{sec.name}' has {need} in its own variables, which the sub-solver(s) "
                                f"{names} cannot take; {fix}.")


class PyomoForm(StandardForm):
    """Standard form of a Pyomo ``ConcreteModel``.

    Parameters
    ----------
    model : ConcreteModel
    blocks : list of lists of Var/Block components, optional
        ``None``: each top-level ``Block`` of the model is a block of variables.
    subsolver : str or list of str
        Registry names (``"auto"``, ``"clarabel"``, ``"highs"``, ``"gurobi"``...: blocks that are
        QPs in their own variables are compiled to matrices and solved by the dispatcher) or
        Pyomo solver names (``gurobi_persistent``, ``appsi_highs``, ``scip_direct``, ``cyipopt``...:
        every block through its Pyomo sub-model); a list is a fallback list.

    Attributes
    ----------
    forms : dict
        Per block name: ``"matrix"`` or ``"pyomo"`` (the form its subproblem is solved in).

    Examples
    --------
    >>> m = pyo.ConcreteModel()
    >>> m.x, m.y = pyo.Var(initialize=1.0), pyo.Var(bounds=(0, 2), initialize=1.0)
    >>> m.obj = pyo.Objective(expr=(m.x * m.y - 1) ** 2 + 0.1 * m.x ** 2)
    >>> PyomoForm(m, [[m.x], [m.y]], subsolver="auto").forms
    {'x': 'matrix', 'y': 'matrix'}
    >>> PyomoForm(m, [[m.x], [m.y]], subsolver="gurobi_persistent").forms  # doctest: +SKIP
    {'x': 'pyomo', 'y': 'pyomo'}
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
        check_finite_data(self.objective, self.constraints, self.relations)
        check_constant_rows(self.constraints, feasibility_tol)
        block_lists, names = variable_blocks(model, blocks)
        used = model_vars(self.objective, self.constraints, self.relations)
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
        self.reuse_subsolver = reuse_subsolver
        # the flat point: every component's values one after another; a variable's position is that of the
        # component its new values are written to (a Reference repeats variables)
        offsets, start = {}, 0
        for c in comps:
            offsets[id(c)] = start
            start += len(c)
        self.index = {id(vd): offsets[key] + k for vd in self.vars for key, k in [self._pos[id(vd)]]}
        self.plan = matrix_plan(specs, subsolver_options)
        self.compiled = self._compile() if self.plan is not None else None
        free_ids = {id(vd) for vd in free}
        links = free_var_links(self.objective, self.constraints) if free else []
        self.sections: list[PyomoCrossSection | MatrixCrossSection] = []
        self.forms: dict[str, str] = {}
        self._held: list[set[int]] = []
        self._own_ids: list[set[int]] = []
        x0 = {id(vd): vd.value for vd in self.vars}
        for name, b in zip(names, block_lists):
            bvars = [vd for vd in b if not vd.fixed and vd in used]
            if not bvars:
                raise InvalidInputError(f"block {name} has no free variables (all are fixed).")
            self._own_ids.append({id(vd) for vd in bvars})
            held_free = held_free_vars(links, {id(vd) for vd in bvars}, free_ids) if free else set()
            own = bvars + [vd for vd in free if id(vd) not in held_free]
            sec = self._matrix_section(name, own, len(bvars))
            if sec is None:
                sec = PyomoCrossSection(name, self.objective, self.constraints, self.relations, bvars, free,
                                        self.vars, held_free=held_free, prox=prox)
                sec.subsolvers = self._subsolvers(specs, subsolver_options, reuse_subsolver, block=name)
            sec.targets = self._targets([own[i] for i in sec.order] if isinstance(sec, MatrixCrossSection) else own)
            self.sections.append(sec)
            self.forms[name] = "matrix" if isinstance(sec, MatrixCrossSection) else "pyomo"
            self._held.append(held_free)
        self._check_free_variables_move(free)
        self._x0 = x0
        self.build_time = time.perf_counter() - t0
        self._prepared: dict[int, Point] = {}
        self._loaded: Point | None = None
        self._deadline: float | None = None

    def set_deadline(self, deadline: float | None) -> None:
        """The run's deadline on the dispatcher's plan (see :meth:`StandardForm.set_deadline`) and for the
        Pyomo sub-solvers, which get the time left as their own time limit (:meth:`SubSolver.solve`)."""
        self._deadline = deadline
        if self.plan is not None:
            self.plan.deadline = deadline

    def isolated(self, index: int) -> bool:
        """True when every active constraint with a variable of block ``index`` has no other free variable,
        and no ReLU relation touches the block: its cross-section's feasible set is the model's."""
        own = self._own_ids[index]
        for c in self.constraints:
            ids = {id(v) for v in identify_variables(c.body, include_fixed=False)}
            if ids & own and not ids <= own:
                return False
        for r in self.relations:
            if ({id(v) for v in identify_variables(r.input, include_fixed=False)} | {id(r.output)}) & own:
                return False
        return True

    def _compile(self) -> CompiledModel:
        lower = np.array([-np.inf if vd.lb is None else vd.lb for vd in self.vars], dtype=float)
        upper = np.array([np.inf if vd.ub is None else vd.ub for vd in self.vars], dtype=float)
        return CompiledModel(self.objective, self.sense, self.constraints, self.relations, self.index,
                             len(lower), lower, upper)

    def _matrix_section(self, name: str, own: list[VarData], n_block: int) -> MatrixCrossSection | None:
        """The block's subproblem as matrices, or ``None`` (solve it through Pyomo) when the sub-solver is a
        Pyomo name or the subproblem is not a QP in its own variables."""
        if self.compiled is None:
            return None
        positions = np.array([self.index[id(vd)] for vd in own], dtype=np.int64)
        try:
            return MatrixCrossSection(name, self.compiled, positions, n_block, self.compiled.lower[positions],
                                      self.compiled.upper[positions])
        except NotQuadraticProgram as exc:
            logger.info("block %s is solved through Pyomo: %s", name, exc)
            return None

    def _targets(self, own: list[VarData]) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """Where a block's solution goes in a point: ``(component key, entries, slots)`` per component."""
        by_comp: dict[int, tuple[list[int], list[int]]] = {}
        for slot, vd in enumerate(own):
            comp, k = self._pos[id(vd)]
            ks, slots = by_comp.setdefault(comp, ([], []))
            ks.append(k)
            slots.append(slot)
        return [(comp, np.array(ks, dtype=np.int64), np.array(sl, dtype=np.int64))
                for comp, (ks, sl) in by_comp.items()]

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
        stuck = [vd for vd in free if all(id(vd) in ids for ids in self._held)]
        if stuck:
            names = ", ".join(vd.name for vd in stuck[:5]) + (" ..." if len(stuck) > 5 else "")
            raise InvalidInputError(
                f"variable(s) {names} belong to no block and multiply block variables in every block, so every "
                "block subproblem would hold them at their start values and they would never be optimised. Put "
                "them in a block (e.g. blocks=[[m.U], [m.V, m.s]]) or in a block of their own.")

    def _subsolvers(self, specs, options, reuse: bool, block: str) -> list[SubSolver]:
        # "auto" on a block that needs a Pyomo sub-model: the Pyomo solvers here that take a convex quadratically
        # constrained program, in this order (the first usable one solves; Pyomo has no solver named "auto")
        specs = [name for s in specs
                 for name in (AUTO_SUBMODEL if isinstance(s, str) and s.strip().lower() == "auto" else (s,))]
        try:
            return self._pyomo_subsolvers(specs, options, reuse)
        except SolverUnavailableError as exc:
            if self.plan is None:
                raise
            raise SolverUnavailableError(
                f"block {block} is not a quadratic program in its own variables (see the log), so it is solved "
                f"through Pyomo, which {specs} cannot do: {exc} Name a Pyomo solver that takes it (e.g. "
                "gurobi_persistent, scip_direct) or reformulate the block.") from exc

    def _pyomo_subsolvers(self, specs, options, reuse: bool) -> list[SubSolver]:
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
        """Check convexity at the start point and load each sub-model into its sub-solvers (matrix blocks: check
        their size against a size-limited licence)."""
        point = self._loaded if self._loaded is not None else self._model_point()
        for sec in self.sections:
            if isinstance(sec, MatrixCrossSection):
                self._set_matrix_point(sec, point)
                if not sec.moving_curvature_is_convex():
                    self._check_matrix_convex(sec, point)
                check_plan(self.plan, sec.sub, sec.name)
                continue
            sec.set_point()
            sec.check_convex()
            _check_takes(sec)
            nq = sec.n_quadratic()
            usable, refused = [], []
            for ss in sec.subsolvers:
                try:
                    ss.attach(sec.sub, sec.param_constraints, nq)
                except LicenceError as exc:  # a size-limited licence: the next entry of a fallback list, if any
                    if len(sec.subsolvers) == 1:
                        raise
                    refused.append(f"{ss.name}: {exc}")
                    continue
                usable.append(ss)
            if not usable:
                raise LicenceError(f"block '{sec.name}': no sub-solver of the list can take it: " + "; ".join(refused),
                                   solver=", ".join(ss.name for ss in sec.subsolvers))
            sec.subsolvers = usable

    def _model_point(self) -> Point:
        return {id(c): np.array([vd.value for vd in c.values()], dtype=float) for c in self.components}

    def _flat(self, point: Point) -> np.ndarray:
        return np.concatenate([np.asarray(point[id(c)], dtype=float) for c in self.components])

    def _set_matrix_point(self, sec: MatrixCrossSection, point: Point, prox: float = 0.0,
                          flip_boundary: bool = False) -> bool:
        constant = 0.0
        if self.compiled.opaque:  # terms that are not polynomials (in other blocks' variables): Pyomo evaluates them
            self._assign(point)
            constant = sum(op.scale * float(pyo.value(op.expr)) for op in self.compiled.opaque)
        sec.opaque_constant = constant
        return sec.set_point(self._flat(point), prox=prox, flip_boundary=flip_boundary, constant=constant)

    def _check_matrix_convex(self, sec: MatrixCrossSection, point: Point) -> None:
        """Raise NotMulticonvexError naming the objective term when the block's ``P`` is not PSD at ``point``."""
        if sec.curvature_is_convex():
            return
        x = self._flat(point)
        for term in objective_terms(self.objective):
            try:
                Q = term_curvature(polynomial(term, self.index), sec.slot_of, x)
            except NotPolynomial:
                Q = None
            if Q is None or not psd(self.sense * Q):
                raise not_convex_term(sec.name, term, sense=self.sense)
        raise not_convex_objective(sec.name)

    # -- points ---------------------------------------------------------------------------------
    def keys(self) -> list[Hashable]:
        return list(self._comp)

    def extrapolated(self, point: Point) -> Point:
        """``point`` clipped to the variables' bounds (``lb``, ``ub``; a fixed variable does not move)."""
        out: Point = {}
        for key, val in point.items():
            values = list(self._comp[key].values())
            lo = np.array([-np.inf if vd.lb is None else vd.lb for vd in values], dtype=float)
            hi = np.array([np.inf if vd.ub is None else vd.ub for vd in values], dtype=float)
            out[key] = np.clip(np.asarray(val, dtype=float), lo, hi)
        return out

    def initial_point(self, seed: int | None, init: Mapping[Any, Any] | None) -> Point:
        rng = np.random.default_rng(seed)
        given: dict[int, np.ndarray] = {}  # whole components
        entries: dict[int, dict[int, float]] = {}  # single entries (``"b.y[0]"``, a VarData): position -> value
        for k, val in (init or {}).items():
            obj = k if hasattr(k, "parent_component") else self.model.find_component(k)
            comp = obj.parent_component() if obj is not None and hasattr(obj, "parent_component") else None
            if comp is None or id(comp) not in self._comp:
                raise InvalidInputError(f"init names {k!r}, which is not a variable of the model.")
            arr = as_float_array(val, f"init for {obj.name}").ravel()
            if obj is not comp and not (getattr(obj, "is_indexed", lambda: True)() or comp.dim() == 0):
                if arr.size != 1:  # one entry of an indexed variable
                    raise InvalidInputError(f"init for {obj.name} has {arr.size} values, expected 1.")
                pos = next(p for p, vd in enumerate(comp.values()) if vd is obj)
                entries.setdefault(id(comp), {})[pos] = float(arr[0])
                continue
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
            for pos, value in entries.get(id(c), {}).items():  # a single entry overrides its whole variable's
                arr[pos] = value
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
        return self._evaluate(point, self.feasibility_tol)

    def exactly_feasible(self, point: Point, block: int | None = None) -> bool:
        return self._evaluate(point, 0.0)[1] == 0.0  # every row, the block's own too (the safe answer)

    def _evaluate(self, point: Point, feasibility_tol: float) -> tuple[float, float]:
        if self.compiled is not None and self.compiled.exact:
            return self.compiled.evaluate(self._flat(point), feasibility_tol)
        self._assign(point)
        f = self.sense * float(pyo.value(self.objective.expr))
        viol = 0.0
        for c in self.constraints:
            viol = max(viol, row_violation(c, pyo.value(c.body)))
        for r in self.relations:
            viol = max(viol, abs(r.output.value - max(pyo.value(r.input), 0.0)))
        for vd in self.vars:
            if vd.lb is not None:
                viol = max(viol, vd.lb - vd.value)
            if vd.ub is not None:
                viol = max(viol, vd.value - vd.ub)
        if not np.isfinite(f) or viol > feasibility_tol:
            return float("inf"), max(viol, 0.0)
        return f, 0.0

    def piece(self, point: Point) -> tuple[np.ndarray, ...]:
        if self.compiled is not None and self.compiled.exact:
            return (self.compiled.piece(self._flat(point)),)
        self._assign(point)
        return (np.array([pyo.value(r.input) >= 0 for r in self.relations], dtype=bool),)

    # -- block subproblems ----------------------------------------------------------------------
    def prepare(self, index: int, point: Point, *, prox: float = 0.0, flip_boundary: bool = False) -> bool:
        self._prepared[index] = point
        sec = self.sections[index]
        if isinstance(sec, MatrixCrossSection):
            edge = self._set_matrix_point(sec, point, prox, flip_boundary)
            if sec.curvature_moves and not sec.moving_curvature_is_convex():
                self._check_matrix_convex(sec, point)
            return edge
        self._assign(point)
        edge = sec.set_point(prox=prox, flip_boundary=flip_boundary)
        sec.recheck_convex()  # curvature that depends on the other blocks can change from point to point
        return edge

    def solve_prepared(self, index: int) -> BlockSolution:
        sec = self.sections[index]
        if isinstance(sec, MatrixCrossSection):
            return self._solve_matrix(index, sec)
        t0 = time.perf_counter()
        status, has, solve_time, message, used = sec.solve(deadline=self._deadline)
        sol = BlockSolution(block=index, status=status, backend=used, solve_time=solve_time,
                            wall_time=time.perf_counter() - t0, message=message)
        if has:
            x = sec.solution()
            for vd, val in zip(sec.own, x):
                if val is None:
                    return BlockSolution(block=index, status="solver_error", backend=used,
                                         solve_time=solve_time, message=f"{used} returned no value for {vd.name}")
            sol.values = self._values(index, sec, np.asarray(x, dtype=float))
            sol.value = self.sense * sec.objective_value()
        return sol

    def _solve_matrix(self, index: int, sec: MatrixCrossSection) -> BlockSolution:
        if not self.reuse_subsolver:  # a fresh backend state per solve (the baseline)
            self.plan.workspaces.pop(sec.name, None)
        out = dispatch.solve(sec.sub, self.plan, warm=sec.x0, key=sec.name)
        sol = BlockSolution(block=index, status=out.status, backend=out.backend, solve_time=out.solve_time,
                            wall_time=out.wall_time, message=out.message, attempts=list(out.attempts))
        if out.ok:
            sol.values = self._values(index, sec, out.x)
            # the objective at the candidate from the residuals (the expanded ½xᵀPx + qᵀx + c cancels to
            # rounding noise of bᵀWb near a perfect fit, and the gaps would certify nothing)
            candidate = {**self._prepared[index], **sol.values}
            sol.value = self.compiled.objective(extend(self._flat(candidate))) + sec.opaque_constant
        return sol

    def _values(self, index: int, sec, x: np.ndarray) -> dict[Hashable, np.ndarray]:
        point = self._prepared[index]
        values: dict[Hashable, np.ndarray] = {}
        for comp, ks, slots in sec.targets:
            arr = np.array(point[comp], dtype=float)
            arr[ks] = x[slots]
            values[comp] = arr
        return values

    def load(self, point: Point) -> None:
        self._assign(point)
        self._loaded = point

    def named_values(self, point: Point) -> dict[str, np.ndarray]:
        return {self._comp[key].name: np.array(arr) for key, arr in point.items()}


__all__ = ["PyomoForm", "VarData"]
