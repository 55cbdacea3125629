"""A cvxpy problem compiled to the standard form (DESIGN.md, "one seam")."""

from __future__ import annotations

import logging
import time
from typing import Any, Hashable, Mapping, Sequence

import cvxpy as cp
import numpy as np
from cvxpy.expressions.variable import Variable

from ..errors import InvalidInputError
from ..standard_form import Block, BlockSolution, Point, StandardForm, solve_block_cvxpy
from .atoms import piece_of, relu
from .blocks import block_names
from .cross_section import CrossSection

logger = logging.getLogger("multiconvex")


class CvxpyForm(StandardForm):
    """Standard form of a cvxpy ``Problem`` split into ``blocks``.

    Each block's :class:`CrossSection` is built once here; ``prepare`` only
    updates Parameter values.
    """

    def __init__(self, problem: cp.Problem, blocks: Sequence[Sequence[Variable]], *, backends_for,
                 solver_options: Mapping[str, Any] | None = None, reg: float = 0.0, prox: bool = False,
                 feasibility_tol: float = 1e-6):
        self.problem = problem
        self.sense = 1 if isinstance(problem.objective, cp.Minimize) else -1
        self.variables = {v.id: v for v in problem.variables()}
        self.reg = float(reg)
        expr = problem.objective.expr if self.sense == 1 else -problem.objective.expr
        if self.reg:
            # R&R Thm 7.2: a norm regulariser keeps the iterates in a compact set.
            # sum of per-variable Frobenius norms is a norm on the whole point.
            expr = expr + self.reg * sum(cp.norm(cp.vec(v, order="F"), 2) for v in problem.variables())
        self.objective_expr = expr
        self.constraints = list(problem.constraints)
        self.feasibility_tol = feasibility_tol
        names = block_names(blocks)
        self.blocks = [Block(n, tuple(v.id for v in b)) for n, b in zip(names, blocks)]
        t0 = time.perf_counter()
        self.sections = [CrossSection(n, expr, self.constraints, list(b), prox=prox) for n, b in zip(names, blocks)]
        self.backends = [backends_for(s.problem, s.name) for s in self.sections]
        self.solver_options = dict(solver_options or {})
        self.build_time = time.perf_counter() - t0
        self._relus = [e for e in _atoms(expr, self.constraints) if isinstance(e, relu)]

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
                val = np.asarray(given[vid], dtype=float)
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
        for v in self.variables.values():
            if v.name() == name:
                return v
        raise InvalidInputError(f"init names variable '{name}', which is not in the problem.")

    def _assign(self, point: Point) -> None:
        for vid, v in self.variables.items():
            v.value = v.project(point[vid])

    def evaluate(self, point: Point) -> tuple[float, float]:
        self._assign(point)
        val = self.objective_expr.value
        if val is None:
            return float("inf"), float("inf")
        violation = 0.0
        for c in self.constraints:
            viol = c.violation()
            if viol is not None:
                violation = max(violation, float(np.max(np.asarray(viol, dtype=float), initial=0.0)))
        if violation > self.feasibility_tol:
            return float("inf"), violation
        return float(np.asarray(val)), 0.0

    def piece(self, point: Point) -> tuple[np.ndarray, ...]:
        self._assign(point)
        return tuple(piece_of(r.args[0].value).astype(bool) for r in self._relus)

    # -- block subproblems ----------------------------------------------------------------------
    def prepare(self, index: int, point: Point, *, prox: float = 0.0, flip_boundary: bool = False) -> bool:
        self._assign(point)
        sec = self.sections[index]
        return sec.set_point({vid: point[vid] for vid in sec.copies}, prox=prox, flip_boundary=flip_boundary)

    def solve_prepared(self, index: int) -> BlockSolution:
        from ..solvers import has_solution

        sec = self.sections[index]
        options = dict(self.solver_options)
        if not sec.dpp:
            options["ignore_dpp"] = True  # recompiled each solve anyway: skip cvxpy's DPP warning
        sol, report = solve_block_cvxpy(index, sec.problem, self.backends[index], options, time.perf_counter())
        if report is None:
            return sol
        if has_solution(report.status) and report.value is not None and all(
                x.value is not None for x in sec.copies.values()):
            sol.values = sec.solution()
            sol.value = float(report.value)
        else:
            sol.message = f"backend {report.backend} ended with status {report.status}"
        return sol

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
