"""A block's convex subproblem as a Pyomo sub-model, built once.

The block's variables (and the auxiliary variables that are free in every block)
become the sub-model's variables; every other variable becomes a mutable
``Param`` set at each point; every :class:`ReLURelation` that touches the
sub-model's variables is fixed to its piece by a 0/1 mutable ``Param``. An
auxiliary variable that multiplies a block variable is held at its value too
(in a full-space network it is determined by the fixed layers), so each
sub-model is a convex program: checked once at build time, with the component
and the term named when it is not.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pyomo.environ as pyo
from pyomo.core.expr.numeric_expr import DivisionExpression, PowExpression, ProductExpression, SumExpression
from pyomo.core.expr.numvalue import is_constant, is_fixed
from pyomo.core.expr.visitor import identify_mutable_parameters, identify_variables, replace_expressions
from pyomo.repn import generate_standard_repn

from ..errors import LicenceError, NotMulticonvexError
from ..pieces import on_boundary
from .matrix_section import psd
from .subsolver import SubSolver

logger = logging.getLogger("multiconvex")


def _terms(expr) -> list:
    if isinstance(expr, SumExpression):
        return list(expr.args)
    return [expr]


def _vars_of(expr) -> set[int]:
    return {id(v) for v in identify_variables(expr, include_fixed=True)}


class PyomoCrossSection:
    """Block subproblem: a Pyomo sub-model with the other blocks and the piece as mutable Params."""

    def __init__(self, name: str, objective, constraints: list, relations: list, block_vars: list,
                 free_vars: list, all_vars: list, *, held_free: set[int], prox: bool = False):
        self.name = name
        own = list(block_vars) + [v for v in free_vars if id(v) not in held_free]
        own_ids = {id(v) for v in own}
        self.own = own
        self.held = [v for v in all_vars if id(v) not in own_ids]
        sub = pyo.ConcreteModel(name=f"block_{name}")
        sub.x = pyo.Var(range(len(own)))
        for i, v in enumerate(own):
            sub.x[i].setlb(v.lb)
            sub.x[i].setub(v.ub)
        sub.p = pyo.Param(range(len(self.held)), mutable=True, initialize=0.0)
        smap = {id(v): sub.x[i] for i, v in enumerate(own)}
        smap.update({id(v): sub.p[j] for j, v in enumerate(self.held)})
        self.sub, self._smap = sub, smap

        sense = objective.sense
        self.sense = 1 if sense == pyo.minimize else -1
        obj_expr = replace_expressions(objective.expr, smap, remove_named_expressions=True)
        self._objective_terms = [(t, replace_expressions(t, smap)) for t in _terms(objective.expr)]
        cons = []
        for c in constraints:
            if _vars_of(c.body) & own_ids:
                cons.append((c, (c.lower, replace_expressions(c.body, smap), c.upper)))
        sub.c = pyo.ConstraintList()
        self._constraints = []
        for orig, (lo, body, up) in cons:
            self._constraints.append((orig, sub.c.add((lo, body, up))))
        # pieces
        self.relations = [r for r in relations if (_vars_of(r.input) | {id(r.output)}) & own_ids]
        sub.s = pyo.Param(range(len(self.relations)), mutable=True, initialize=1.0)
        sub.piece_eq = pyo.ConstraintList()
        sub.piece_side = pyo.ConstraintList()
        for k, r in enumerate(self.relations):
            z = replace_expressions(r.input, smap)
            if id(r.output) in own_ids:
                sub.piece_eq.add(smap[id(r.output)] - sub.s[k] * z == 0)
            # an output held at its value needs no equality: it would repeat, up to round-off, what fixes
            # the input already (HiGHS fails on such nearly dependent rows); the sign keeps the piece
            sub.piece_side.add((2 * sub.s[k] - 1) * z >= 0)
        if prox:
            sub.rho = pyo.Param(mutable=True, initialize=0.0)
            sub.anchor = pyo.Param(range(len(block_vars)), mutable=True, initialize=0.0)
            obj_expr = obj_expr + self.sense * sub.rho / 2 * sum(
                (sub.x[i] - sub.anchor[i]) ** 2 for i in range(len(block_vars)))
        sub.obj = pyo.Objective(expr=obj_expr, sense=sense)
        self.n_block = len(block_vars)
        self.param_constraints = [c for c in sub.component_data_objects(pyo.Constraint)
                                  if list(identify_mutable_parameters(c.body))]
        self._plan_recheck()
        self.subsolvers: list[SubSolver] = []

    def _plan_recheck(self) -> None:
        """Find what :meth:`recheck_convex` must look at again at every point.

        A term whose curvature in the block cannot change with the held values — affine in the block, a
        square of an affine expression, a nonnegative constant times such terms (when minimising) — is convex
        at every point. Only the other objective terms, and constraints whose quadratic coefficients hold
        parameters, are checked again at each point.
        """
        self._recheck_terms = [t for _, t in self._objective_terms
                               if not (self.sense == 1 and _convex_for_any_params(t))]
        self._recheck_constraints = []
        for orig, c in self._constraints:
            repn = generate_standard_repn(c.body, quadratic=True, compute_values=False)
            if any(not is_constant(q) for q in repn.quadratic_coefs):
                self._recheck_constraints.append((orig, c))

    # -- convexity ------------------------------------------------------------------------------
    def check_convex(self) -> None:
        """Raise NotMulticonvexError naming the term or constraint that is not convex in the block.

        Run after :meth:`set_point` (quadratic coefficients depend on the fixed blocks).
        """
        n = len(self.own)
        index = {id(self.sub.x[i]): i for i in range(n)}
        Q = self._quadratic(self.sub.obj.expr, index, n)
        if Q is None or not psd(self.sense * Q):
            for orig, term in self._objective_terms:
                q = self._quadratic(term, index, n)
                if q is None or not psd(self.sense * q):
                    raise not_convex_term(self.name, orig, beyond_quadratic=q is None, sense=self.sense)
            raise not_convex_objective(self.name)
        for orig, c in self._constraints:
            q = self._quadratic(c.body, index, n)
            ok = q is not None and (not np.any(q) or (
                not c.equality and ((c.has_ub() and not c.has_lb() and psd(q))
                                    or (c.has_lb() and not c.has_ub() and psd(-q)))))
            if q is None:
                raise NotMulticonvexError(
                    f"block '{self.name}': the constraint {orig.name} `{_short(orig.expr)}` {BEYOND_QUADRATIC}",
                    block=self.name, term=orig.name)
            if not ok:
                raise NotMulticonvexError(
                    f"block '{self.name}' is not convex when the other blocks are fixed: the constraint "
                    f"{orig.name} `{_short(orig.expr)}` does not define a convex set in the block.",
                    block=self.name, term=orig.name)

    @staticmethod
    def _quadratic(expr, index: dict[int, int], n: int) -> np.ndarray | None:
        repn = generate_standard_repn(expr, quadratic=True, compute_values=True)
        if repn.nonlinear_expr is not None:
            return None
        Q = np.zeros((n, n))
        for (a, b), coef in zip(repn.quadratic_vars, repn.quadratic_coefs):
            i, j = index[id(a)], index[id(b)]
            Q[i, j] += coef / 2
            Q[j, i] += coef / 2
        return Q

    def recheck_convex(self) -> None:
        """Raise NotMulticonvexError if the block subproblem at the current point is not convex.

        Cheap when every term is convex whatever the other blocks hold (nothing to do); otherwise the terms
        that depend on them are checked numerically, and only if their sum is not convex is the whole
        subproblem checked (:meth:`check_convex`, which names the term).
        """
        n = len(self.own)
        if self._recheck_terms:
            index = {id(self.sub.x[i]): i for i in range(n)}
            Q = np.zeros((n, n))
            for t in self._recheck_terms:
                q = self._quadratic(t, index, n)
                if q is None:
                    Q = None
                    break
                Q += q
            if Q is None or not psd(self.sense * Q):
                self.check_convex()
                return
        if self._recheck_constraints:
            self.check_convex()

    def quadratic_parts(self) -> tuple[bool, bool]:
        """Whether the sub-model's objective, and whether one of its constraints, has a quadratic term (what a
        sub-solver must take)."""
        def quadratic(expr) -> bool:
            return bool(generate_standard_repn(expr, quadratic=True, compute_values=False).quadratic_vars)

        return (quadratic(self.sub.obj.expr),
                any(quadratic(c.body) for c in self.sub.component_data_objects(pyo.Constraint, active=True)))

    def n_quadratic(self) -> int:
        """Variables in quadratic terms of the objective or the constraints (for licence size limits)."""
        seen: set[int] = set()
        for expr in [self.sub.obj.expr] + [c.body for c in self.sub.component_data_objects(pyo.Constraint)]:
            repn = generate_standard_repn(expr, quadratic=True, compute_values=False)
            seen |= {id(v) for pair in repn.quadratic_vars for v in pair}
        return len(seen)

    # -- per solve ------------------------------------------------------------------------------
    def set_point(self, prox: float = 0.0, flip_boundary: bool = False) -> bool:
        """Fix the held variables and the piece at the values the user's model holds now."""
        sub = self.sub
        for j, v in enumerate(self.held):
            sub.p[j] = v.value if v.value is not None else 0.0
        z = np.array([pyo.value(r.input) for r in self.relations], dtype=float)
        edge = on_boundary(z)
        s = (z >= 0).astype(float)
        if flip_boundary:
            s = np.where(edge, 1.0 - s, s)
        for k in range(len(self.relations)):
            sub.s[k] = float(s[k])
        for i, v in enumerate(self.own):
            sub.x[i].set_value(v.value, skip_validation=True)  # warm start
        if prox:
            sub.rho = float(prox)
            for i in range(self.n_block):
                sub.anchor[i] = self.own[i].value
        elif hasattr(sub, "rho"):
            sub.rho = 0.0
        return bool(edge.any())

    def solve(self, deadline: float | None = None) -> tuple[str, bool, float, str, str | None]:
        """Try the sub-solvers in order: (status, has_solution, solve time, message, solver used).

        ``deadline`` (``time.time()`` seconds): none starts after it, each gets the time left as its own
        time limit, and one stopped there ends the block ``time_limit`` (no fallback after the time is up).

        A sub-solver's ``infeasible`` or ``unbounded`` here is a claim, not a proof: it comes without the ray that
        the matrix path checks exactly (README, "Every proof is exact"). When no sub-solver solves the sub-model,
        the block ends ``solver_error`` and the message says so.
        """
        total, messages, claimed = 0.0, [], False
        for ss in self.subsolvers:
            if deadline is not None and time.time() >= deadline:
                messages.append("the time limit had passed: no solve started")
                return "time_limit", False, total, "; ".join(messages), None
            try:
                r = ss.solve(self.sub, deadline=deadline)
            except LicenceError:
                if len(self.subsolvers) == 1:
                    raise
                messages.append(f"{ss.name}: licence")
                continue
            total += r.solve_time
            if r.has_solution:
                return r.status, True, total, r.message, ss.name
            messages.append(f"{ss.name}: {r.status} {r.message}")
            claimed = claimed or r.status in ("infeasible", "unbounded")
            if deadline is not None and time.time() >= deadline:
                return "time_limit", False, total, "; ".join(messages + _unchecked(claimed)), None
        return "solver_error", False, total, "; ".join(messages + _unchecked(claimed)), None

    def objective_value(self) -> float:
        """The sub-model's objective at its solution, without any proximal term."""
        val = float(pyo.value(self.sub.obj.expr))
        if hasattr(self.sub, "rho") and pyo.value(self.sub.rho):
            rho = pyo.value(self.sub.rho)
            val -= self.sense * rho / 2 * sum((self.sub.x[i].value - pyo.value(self.sub.anchor[i])) ** 2
                                              for i in range(self.n_block))
        return val

    def solution(self) -> list[float]:
        return [self.sub.x[i].value for i in range(len(self.own))]


def objective_terms(objective) -> list:
    """The top-level terms of an objective (what a convexity error names)."""
    return _terms(objective.expr)


#: What the Pyomo front says of a term or constraint beyond degree 2 in the block's own variables.
BEYOND_QUADRATIC = ("is not a polynomial of degree ≤ 2 in the block's own variables, and the Pyomo front proves "
                    "convexity for such expressions only (any function of the other blocks' variables is fine). "
                    "Reformulate it (an epigraph variable with quadratic rows, say), or give the model to a convex "
                    "NLP solver directly.")


def not_convex_term(block: str, term, beyond_quadratic: bool = False, sense: int = 1) -> NotMulticonvexError:
    if beyond_quadratic:
        return NotMulticonvexError(f"block '{block}': the objective term `{_short(term)}` {BEYOND_QUADRATIC}",
                                   block=block, term=_short(term))
    kind = "a convex" if sense > 0 else "a concave (the objective is maximised)"
    return NotMulticonvexError(
        f"block '{block}' is not convex when the other blocks are fixed: the objective term `{_short(term)}` is not "
        f"{kind} quadratic in the block. Split its variables into other blocks, or reformulate the term.",
        block=block, term=_short(term))


def not_convex_objective(block: str) -> NotMulticonvexError:
    return NotMulticonvexError(
        f"block '{block}' is not convex when the other blocks are fixed: its objective is not a convex quadratic "
        "in the block.", block=block, term="objective")


def free_var_links(objective, constraints: list) -> list[tuple[list[tuple[int, int]], set[int]]]:
    """For the objective and each constraint: the variable pairs of its quadratic terms and the variables
    of its nonlinear part (what decides which free variables a block holds; see :func:`held_free_vars`)."""
    out = []
    for expr in [objective.expr] + [c.body for c in constraints]:
        repn = generate_standard_repn(expr, quadratic=True, compute_values=False)
        out.append(([(id(a), id(b)) for a, b in repn.quadratic_vars], {id(v) for v in (repn.nonlinear_vars or ())}))
    return out


def held_free_vars(links: list, block_ids: set[int], free_ids: set[int]) -> set[int]:
    """Free variables that meet a block variable in a product: held at their values in the block's subproblem."""
    hold: set[int] = set()
    for pairs, nl in links:
        for a, b in pairs:
            if a in block_ids and b in free_ids:
                hold.add(b)
            if b in block_ids and a in free_ids:
                hold.add(a)
        if nl & block_ids:
            hold |= nl & free_ids
    return hold


def _affine(expr) -> bool:
    repn = generate_standard_repn(expr, quadratic=False, compute_values=False)
    return repn.nonlinear_expr is None


def _convex_for_any_params(expr) -> bool:
    """True when ``expr`` is convex in the variables whatever values its mutable parameters take.

    Recognised structurally: affine terms, squares of affine expressions, sums of such, and products with
    and divisions by nonnegative numbers. Anything else returns False (checked numerically instead).
    """
    if _affine(expr):
        return True
    if isinstance(expr, SumExpression):
        return all(_convex_for_any_params(a) for a in expr.args)
    if isinstance(expr, PowExpression):
        base, exponent = expr.args
        return is_fixed(exponent) and not list(identify_mutable_parameters(exponent)) \
            and pyo.value(exponent) == 2 and _affine(base)
    if isinstance(expr, ProductExpression):
        a, b = expr.args
        for c, rest in ((a, b), (b, a)):
            if _nonnegative_number(c):
                return _convex_for_any_params(rest)
        return False
    if isinstance(expr, DivisionExpression):
        num, den = expr.args
        return _nonnegative_number(den) and pyo.value(den) > 0 and _convex_for_any_params(num)
    return False


def _nonnegative_number(e) -> bool:
    """A number (no variables, no mutable parameters) that is >= 0."""
    if isinstance(e, (int, float)):
        return e >= 0
    return is_fixed(e) and not list(identify_mutable_parameters(e)) and not list(identify_variables(e)) \
        and pyo.value(e) >= 0


def _short(obj: Any, n: int = 160) -> str:
    s = str(obj)
    return s if len(s) <= n else s[: n - 3] + "..."


def _unchecked(claimed: bool) -> list[str]:
    """The note for a failed block whose sub-solvers said infeasible or unbounded (none, otherwise)."""
    if not claimed:
        return []
    return ["a Pyomo sub-solver's infeasible/unbounded is not checked exactly here, so it proves nothing; a registry "
            "name ('highs', 'gurobi', ...) on a block that compiles to matrices gets its verdict checked"]
