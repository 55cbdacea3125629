"""A cvxpy problem compiled to the standard form (DESIGN.md, "one seam")."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cvxpy as cp
import numpy as np
from cvxpy.expressions.variable import Variable

from ..errors import InvalidInputError, NotMulticonvexError
from ..solvers import dispatch, has_solution
from ..solvers.cvxpy_adapter import solve_block as solve_block_cvxpy
from ..standard_form import Block, BlockSolution, Point, StandardForm
from ..subproblem import BlockSubproblem
from ..validation import as_float_array
from .atoms import piece_of, relu
from .blocks import _short, block_names
from .cross_section import CrossSection
from .quadratic import BlockWalk, QuadraticBlock, Unsupported, compile_block, walk_block, zero_filled

logger = logging.getLogger("multiconvex")

#: Blocks of up to this many variables build their subproblem's numbers with one BLAS thread.
SMALL_BLOCK = 20000


def form_objective(problem: cp.Problem, reg: float = 0.0):
    """The expression :class:`CvxpyForm` minimises: the objective (negated for ``Maximize``), plus
    ``reg · Σ_v ‖vec(v)‖₂`` when ``reg`` (R&R Thm 7.2: a norm regulariser keeps the iterates in a compact set;
    the sum of per-variable Frobenius norms is a norm on the whole point)."""
    expr = problem.objective.expr if isinstance(problem.objective, cp.Minimize) else -problem.objective.expr
    if reg:
        expr = expr + float(reg) * sum(cp.norm(cp.vec(v, order="F"), 2) for v in problem.variables())
    return expr


@dataclass
class FormWalk:
    """The blocks of ``problem`` walked once (:func:`walk_form`), for the memory check and for the form."""

    problem: cp.Problem
    reg: float
    objective: Any  # form_objective(problem, reg), the expression the walks read
    blocks: list[BlockWalk]
    walk_time: float  # seconds the walk took (part of the form's build time)


def walk_form(problem: cp.Problem, blocks: Sequence[Sequence[Variable]], reg: float = 0.0) -> FormWalk:
    """Each block's structure (:func:`~multiconvex.cvxpy_front.quadratic.walk_block`), once: the front door
    hands it to :func:`~multiconvex.cvxpy_front.sizes.check_block_sizes` (``built=``) and to
    :class:`CvxpyForm` (``precompiled=``), so the expressions are not walked again."""
    t0 = time.perf_counter()
    expr = form_objective(problem, reg)
    constraints = list(problem.constraints)
    with zero_filled(expr, constraints, problem.variables()):  # once for every block
        walks = [walk_block(expr, constraints, list(b), n, filled=True) for n, b in zip(block_names(blocks), blocks)]
    return FormWalk(problem, float(reg), expr, walks, time.perf_counter() - t0)


def worst_violation(c: cp.Constraint) -> float | None:
    """The largest violation of ``c`` at its variables' values (``None``: cvxpy cannot evaluate it)."""
    viol = c.violation()
    return None if viol is None else float(np.max(np.asarray(viol, dtype=float), initial=0.0))


def check_constant_rows(constraints: Sequence[cp.Constraint], tol: float) -> None:
    """Refuse a constraint without variables that does not hold (``cp.Constant(0) >= 1``, ``p >= 0`` with a
    parameter ``p < 0``): no point is feasible, so no solve can do anything (it used to run to the iteration
    limit and end with ``inf``). Violations up to ``tol`` pass, as in the form's evaluation of a point."""
    for i, c in enumerate(constraints):
        if c.variables():
            continue
        worst = worst_violation(c)
        if worst is not None and worst > tol:
            raise InvalidInputError(
                f"constraint {i} `{_short(c)}` involves no variable and does not hold (violated by {worst:.3g}): "
                "no point is feasible. Correct its data or parameter values, or remove it.")


class CvxpyForm(StandardForm):
    """Standard form of a cvxpy ``Problem`` split into ``blocks``.

    A block whose subproblem is a QP in its own variables (weighted squares of affine
    expressions, affine terms, linear constraints, bounds) is compiled once to a
    :class:`~multiconvex.cvxpy_front.quadratic.QuadraticBlock`: each ``prepare`` computes the
    numbers of its :class:`~multiconvex.subproblem.BlockSubproblem` and the dispatcher solves
    it with ``plan``. Any other block keeps a :class:`CrossSection` (a cvxpy problem built once,
    re-solved with new Parameter values) and its backend list from ``backends_for``.
    ``forms`` says which form each block uses, ``compile_notes`` why a block was not compiled.
    ``precompiled``: the :func:`walk_form` of this ``problem``, ``blocks`` and ``reg``, done already by the
    caller (its time counts in ``build_time``); the blocks are then not walked again.
    """

    def __init__(self, problem: cp.Problem, blocks: Sequence[Sequence[Variable]], *, backends_for,
                 plan: dispatch.Plan | None = None, solver_options: Mapping[str, Any] | None = None,
                 reg: float = 0.0, prox: bool = False, feasibility_tol: float = 1e-6,
                 precompiled: FormWalk | None = None):
        t0 = time.perf_counter()
        self.problem = problem
        self.sense = 1 if isinstance(problem.objective, cp.Minimize) else -1
        self.variables = {v.id: v for v in problem.variables()}
        self.reg = float(reg)
        if precompiled is not None and (precompiled.problem is not problem or precompiled.reg != self.reg
                                        or len(precompiled.blocks) != len(blocks)):
            raise ValueError("precompiled is the walk of another problem, reg or list of blocks")
        expr = form_objective(problem, self.reg) if precompiled is None else precompiled.objective
        walks: list[BlockWalk | None] = [None] * len(blocks) if precompiled is None else list(precompiled.blocks)
        self.objective_expr = expr
        self.constraints = list(problem.constraints)
        self.feasibility_tol = feasibility_tol
        check_constant_rows(self.constraints, feasibility_tol)
        names = block_names(blocks)
        self.blocks = [Block(n, tuple(v.id for v in b)) for n, b in zip(names, blocks)]
        self.plan = plan if plan is not None else dispatch.make_plan("auto", options=dict(solver_options or {}))
        self.compiled: list[QuadraticBlock | None] = []
        self.compile_notes: dict[str, str] = {}
        with zero_filled(expr, self.constraints, list(self.variables.values())):  # once for every block
            compiled = []
            for n, b, walk in zip(names, blocks, walks):
                # a small block's first numbers are built with one BLAS thread, as its every step (see prepare)
                with dispatch.one_blas_thread() if sum(v.size for v in b) <= SMALL_BLOCK else \
                        contextlib.nullcontext():
                    compiled.append(compile_block(expr, self.constraints, list(b), n, walk=walk, filled=True))
        for n, (qb, why) in zip(names, compiled):
            self.compiled.append(qb)
            if qb is not None:
                self.plan.check_class(qb.problem_class, f"block '{n}'")
            if why:
                self.compile_notes[n] = why
                logger.info("block '%s' stays on the cvxpy path: %s", n, why)
        self.sections = [None if qb is not None else CrossSection(n, expr, self.constraints, list(b), prox=prox,
                                                                  maximise=self.sense == -1)
                         for n, b, qb in zip(names, blocks, self.compiled)]
        self.backends = [None if s is None else backends_for(s.problem, s.name) for s in self.sections]
        self.forms = {n: "matrix" if qb is not None else "cvxpy" for n, qb in zip(names, self.compiled)}
        # the subproblem and its anchor (the point it was built at: the block's values are read from it by key)
        self._prepared: dict[int, tuple[BlockSubproblem, Point]] = {}
        # blocks whose variables no attribute projects: the solver's point is the user's as it is
        self._plain = [all(not v.attributes.get(k) for v in b for k in v.attributes) and
                       all(v.sparse_idx is None for v in b) for b in blocks]
        self.objective_rtol = 0.0  # set_tolerance: the accuracy objective values need
        self._loaded: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # _assign: what each variable holds from us
        # variables that cvxpy's project leaves as they are (real, no attributes)
        self._bare = frozenset(vid for vid, v in self.variables.items()
                               if v.num_attributes == 0 and not v.is_complex() and v.sparse_idx is None)
        self.solver_options = dict(solver_options or {})
        self.build_time = time.perf_counter() - t0 + (0.0 if precompiled is None else precompiled.walk_time)
        self._relus = [e for e in _atoms(expr, self.constraints) if isinstance(e, relu)]
        # the norms of the blocks' latest values (_remember_norm), shared by every compiled block
        self._known_norms2: dict[int, tuple[np.ndarray, float]] = {}
        self._norm_ids: dict[int, int] = {}
        for qb in self.compiled:
            if qb is not None:
                qb.known_norms2 = self._known_norms2

    # -- points ---------------------------------------------------------------------------------
    def keys(self) -> list[Hashable]:
        return list(self.variables)

    def initial_point(self, seed: int | None, init: Mapping[Any, Any] | None) -> Point:
        rng = np.random.default_rng(seed)
        given: dict[int, Any] = {}
        for k, val in (init or {}).items():
            v = k if isinstance(k, Variable) else self._by_name(k)
            if v.id not in self.variables:
                raise InvalidInputError(f"init gives a value for variable '{v.name()}', which is not in the problem.")
            given[v.id] = val
        point: Point = {}
        for vid, v in self.variables.items():
            if vid in given:
                val = as_float_array(given[vid], f"init for variable '{v.name()}'")
            elif v.value is not None:
                val = np.asarray(v.value, dtype=float)
            else:
                val = rng.standard_normal(v.shape)
                if v.is_nonneg():
                    val = np.abs(val)
                elif v.is_nonpos():
                    val = -np.abs(val)
            val = np.asarray(val, dtype=float)
            if val.shape != v.shape:
                if val.size == 1 and not v.shape:
                    val = val.reshape(())
                else:
                    raise InvalidInputError(
                        f"initial value of variable '{v.name()}' has shape {val.shape}, expected {v.shape}.")
            if not np.all(np.isfinite(val)):
                raise InvalidInputError(f"initial value of variable '{v.name()}' contains NaN or inf.")
            point[vid] = np.asarray(v.project(val), dtype=float).reshape(v.shape)
        return point

    def _by_name(self, name: str) -> Variable:
        hits = [v for v in self.variables.values() if v.name() == name]
        if len(hits) > 1:
            raise InvalidInputError(f"init names variable '{name}', but {len(hits)} variables of the problem have "
                                    "that name: key init by the variable objects themselves.")
        if not hits:
            raise InvalidInputError(f"init names variable '{name}', which is not in the problem.")
        return hits[0]

    def _assign(self, point: Point) -> None:
        loaded = self._loaded
        for vid, v in self.variables.items():
            given = point[vid]
            if v.sparse_idx is None:
                hit = loaded.get(vid)
                if hit is not None and hit[0] is given and v.value is hit[1]:
                    continue  # this very array is loaded, and nobody has set the variable since
                # the point's values were checked when it was made (initial_point) or come shaped from a
                # block solve: skip cvxpy's validation, a third of the time of a small block step (and its
                # projection where it is the identity: a real variable without attributes)
                if vid in self._bare and type(given) is np.ndarray and given.dtype == np.float64:
                    saved = given  # what np.asarray(v.project(given), dtype=float) returns for it
                else:
                    saved = np.asarray(v.project(given), dtype=float)
                v.save_value(saved)
                loaded[vid] = (given, saved)
            else:
                v.value = v.project(given)

    def evaluate(self, point: Point) -> tuple[float, float]:
        return self._evaluate(point, self.feasibility_tol)

    def extrapolated(self, point: Point) -> Point:
        """``point`` projected onto each variable's attributes (``nonneg``, ``symmetric``, ...: cvxpy's
        ``Variable.project``)."""
        return {vid: np.asarray(self.variables[vid].project(val), dtype=float) for vid, val in point.items()}

    def exactly_feasible(self, point: Point, block: int | None = None) -> bool:
        if not self.constraints:
            return True
        self._assign(point)
        own = set(self.blocks[block].keys) if block is not None else set()
        for c in self.constraints:
            if own and {v.id for v in c.variables()} & own:
                continue  # one of the block's own rows: its subproblem holds it
            worst = worst_violation(c)
            if worst is None or worst > 0.0:
                return False
        return True

    def _evaluate(self, point: Point, feasibility_tol: float) -> tuple[float, float]:
        self._assign(point)
        if not self.constraints and self.compiled and all(qb is not None for qb in self.compiled):
            try:  # every block compiled: any of them has the whole objective in residual form
                return self.compiled[0].objective_here(), 0.0
            except Unsupported:  # a weight whose sign moved: cvxpy's evaluation below
                pass
        val = self.objective_expr.value
        if val is None:
            return float("inf"), float("inf")
        violation = 0.0
        for c in self.constraints:
            worst = worst_violation(c)
            if worst is not None:
                violation = max(violation, worst)
        if violation > feasibility_tol:
            return float("inf"), violation
        return float(np.asarray(val)), 0.0

    def piece(self, point: Point) -> tuple[np.ndarray, ...]:
        self._assign(point)
        return tuple(piece_of(r.args[0].value).astype(bool) for r in self._relus)

    # -- block subproblems ----------------------------------------------------------------------
    def prepare(self, index: int, point: Point, *, prox: float = 0.0, flip_boundary: bool = False) -> bool:
        self._assign(point)
        qb = self.compiled[index]
        if qb is not None:  # no piece of this block: no boundary to flip
            anchor = point  # the block's values at the point: read by their keys (the point is not changed later)
            try:
                # small blocks: the products that build the numbers are tiny, and BLAS threads spinning on
                # busy cores cost far more than they save (inside the run's session, which holds one BLAS
                # thread already, no context is entered: it would change nothing)
                if qb.n > SMALL_BLOCK or dispatch.one_blas_thread_held():
                    sub = qb.subproblem(prox, anchor)
                else:
                    with dispatch.one_blas_thread():
                        sub = qb.subproblem(prox, anchor)
            except Unsupported as exc:  # structure was checked at build; only a sign that moved gets here
                raise NotMulticonvexError(f"block '{self.blocks[index].name}' is not convex at this point: {exc}",
                                          block=self.blocks[index].name) from exc
            self._prepared[index] = (sub, anchor)  # the warm start is stacked only for a backend that reads it
            return False
        sec = self.sections[index]
        return sec.set_point({vid: point[vid] for vid in sec.copies}, prox=prox, flip_boundary=flip_boundary)

    def solve_prepared(self, index: int) -> BlockSolution:
        if self.compiled[index] is not None:
            return self._solve_compiled(index)
        sec = self.sections[index]
        options = dict(self.solver_options)
        if not sec.dpp:
            options["ignore_dpp"] = True  # recompiled each solve anyway: skip cvxpy's DPP warning
        sol, report = solve_block_cvxpy(index, sec.problem, self.backends[index], options, time.perf_counter(),
                                        deadline=self.plan.deadline)
        if report is None:
            return sol
        if has_solution(report.status) and report.value is not None and all(
                x.value is not None for x in sec.copies.values()):
            sol.values = sec.solution()
            sol.value = float(report.value)
        else:
            sol.message = f"backend {report.backend} ended with status {report.status}"
        return sol

    def merit(self, index: int, sol: BlockSolution) -> tuple[float, float] | None:
        """A compiled block's solution carries the objective at the candidate (computed from the residuals
        at the projected point, without the proximal term): no evaluation through cvxpy is needed when the
        problem has no constraints (attributes are projected, so nothing can be violated)."""
        if self.compiled[index] is None or self.constraints:
            return None
        return (sol.value, 0.0) if sol.ok and math.isfinite(sol.value) else None

    def _solve_compiled(self, index: int) -> BlockSolution:
        sub, anchor = self._prepared[index]
        return self.receive(index, dispatch.solve(sub, self.plan, warm=lambda: sub.stack(anchor),
                                                  key=self.blocks[index].name))

    def isolated(self, index: int) -> bool:
        """True when every constraint that involves block ``index`` involves no other variable, and no
        ``relu`` (a piece row) involves the block: its cross-section's feasible set is the problem's."""
        own = set(self.blocks[index].keys)
        for c in self.constraints:
            ids = {v.id for v in c.variables()}
            if ids & own and not ids <= own:
                return False
        return not any({v.id for v in r.variables()} & own for r in self._relus)

    def set_tolerance(self, tol: float) -> None:
        """Objective values of compiled blocks to ``10⁻³·tol`` relative: the expanded quadratic where its
        rounding bound allows, the residuals elsewhere (``tol = 0``: always the residuals)."""
        self.objective_rtol = 1e-3 * float(tol)

    def session(self) -> contextlib.AbstractContextManager:
        """One BLAS thread for the run when every block is compiled and small: its products and solves are
        tiny, and BLAS threads spinning on busy cores cost far more than they save."""
        if all(qb is not None and qb.n <= SMALL_BLOCK for qb in self.compiled):
            return dispatch.one_blas_thread()
        return contextlib.nullcontext()

    def set_deadline(self, deadline: float | None) -> None:
        """The run's deadline on the dispatcher's plan (see :meth:`StandardForm.set_deadline`)."""
        self.plan.deadline = deadline

    def ship(self, index: int) -> tuple[Any, Any] | None:
        if self.compiled[index] is None:
            return None  # a compiled cvxpy problem lives in this process
        sub, anchor = self._prepared[index]
        return dispatch.solve_task, (sub, self.plan.portable(), sub.stack(anchor), self.blocks[index].name)

    def receive(self, index: int, sol: dispatch.SubSolution) -> BlockSolution:
        sub, _ = self._prepared[index]
        name = self.blocks[index].name
        out = BlockSolution(block=index, status=sol.status, backend=sol.backend, solve_time=sol.solve_time,
                            wall_time=sol.wall_time, attempts=list(sol.attempts))
        if sol.ok:
            # the point the user will get (attributes projected), and the objective there
            if self._plain[index]:
                x = sol.x
                if len(sub.slots) == 1:  # sub.split(x), one slot: x itself, shaped (a view)
                    slot = sub.slots[0]
                    shaped = x.reshape(slot.shape, order="F")
                    out.values = {slot.key: shaped if slot.shape == slot.value_shape else
                                  shaped.reshape(slot.value_shape, order="F")}
                else:
                    out.values = sub.split(x)
            else:
                out.values = {vid: np.asarray(self.variables[vid].project(val), dtype=float)
                              for vid, val in sub.split(sol.x).items()}
                x = sub.stack(out.values)
            qb = self.compiled[index]
            qb.last_norm2 = None
            out.value = qb.objective_at(x, sub, self.objective_rtol,
                                        sol.value if x is sol.x and sol.value_exact else None)
            if qb.last_norm2 is not None and qb.last_norm2[0] is x and len(out.values) == 1:
                self._remember_norm(index, next(iter(out.values.values())), qb.last_norm2[1])
        else:
            out.message = sol.message or f"block {name}: {sol.status}"
        return out

    def _remember_norm(self, index: int, values: np.ndarray, norm2: float) -> None:
        """``‖values‖²`` of block ``index``'s new values (a view of the solution ``x``, whose norm the rounding bound
        computed), for the other compiled blocks: their subproblems read it for this block's square
        (:attr:`QuadraticBlock.known_norms2`) instead of another pass; only the block's latest values are kept."""
        old = self._norm_ids.get(index)
        if old is not None:
            self._known_norms2.pop(old, None)
        self._known_norms2[id(values)] = (values, norm2)
        self._norm_ids[index] = id(values)

    def load(self, point: Point) -> None:
        self._assign(point)

    def named_values(self, point: Point) -> dict[str, np.ndarray]:
        return {self.variables[vid].name(): np.array(val) for vid, val in point.items()}


def _atoms(expr, constraints):
    stack = [expr] + [a for c in constraints for a in c.args]
    seen = set()
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        stack.extend(getattr(e, "args", []))
