"""A block's convex subproblem on the cross-section through a point, on its piece.

Built **once** per block: every maximal sub-expression that does not involve the
block's variables becomes one cvxpy :class:`~cvxpy.Parameter` whose value is
computed numerically at the current point ("folding"), and every ``relu`` whose
argument involves the block is fixed to its current piece through 0/1 mask
Parameters. The block's own variables are private copies, so the subproblems
of different blocks never share state and can be solved concurrently. When the
folded problem is DPP, cvxpy compiles it once and re-solves it with new
parameter values; otherwise (e.g. a product of three blocks, or a ReLU inside
another ReLU) it is recompiled at each solve and this is logged once.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from dataclasses import dataclass

import cvxpy as cp
import numpy as np
from cvxpy.atoms.affine.add_expr import AddExpression
from cvxpy.atoms.affine.unary_operators import NegExpression
from cvxpy.constraints.constraint import Constraint
from cvxpy.expressions.expression import Expression
from cvxpy.expressions.variable import Variable

from ..errors import NotMulticonvexError
from ..pieces import on_boundary
from .atoms import piece_of, relu

logger = logging.getLogger("multiconvex")


_COPIED_ATTRIBUTES = ("nonneg", "nonpos", "pos", "neg", "symmetric", "diag", "PSD", "NSD", "bounds")


@dataclass
class _Fold:
    param: cp.Parameter
    expr: Expression
    clip: str | None  # "nonneg" / "nonpos": project tiny sign violations away


@dataclass
class _Lift:
    """An affine (in the block) sub-expression that is not DPP, replaced by ``A vec(x) + c``."""

    A: cp.Parameter
    c: cp.Parameter
    expr: Expression  # in the block's private variables and the fold/piece Parameters
    xs: list[Variable]


@dataclass
class _PieceFix:
    mask: cp.Parameter  # S in {0, 1}: alive units
    sign: cp.Parameter  # 2S - 1
    arg: Expression  # the pre-activation, in the user's variables


def clone_variable(v: Variable) -> Variable:
    """A fresh variable with ``v``'s shape, name and value-set attributes."""
    attrs = {k: v.attributes[k] for k in _COPIED_ATTRIBUTES if v.attributes.get(k) is not None
             and v.attributes.get(k) is not False}
    return cp.Variable(v.shape, name=v.name(), **attrs)


def objective_terms(expr: Expression) -> list[Expression]:
    """Top-level summands of ``expr`` (for naming the term that breaks convexity)."""
    if isinstance(expr, AddExpression):
        return [t for a in expr.args for t in objective_terms(a)]
    if isinstance(expr, NegExpression):  # −(a + b): the terms −a, −b (a maximised objective, minimised)
        return [-t for t in objective_terms(expr.args[0])]
    return [expr]


class CrossSection:
    """Block subproblem: the objective in one block's variables, others fixed, piece fixed.

    Parameters
    ----------
    name : str
        Block name (used in messages).
    objective : Expression
        The minimised objective, in the user's variables.
    constraints : list[Constraint]
        The user's constraints; those not involving the block are dropped.
    block_vars : list[Variable]
        The block's variables.
    prox : bool
        Whether to include a proximal term ``(ρ/2)‖x − x_k‖²`` (ρ set per solve).
    maximise : bool
        The user maximises (``objective`` is the negated one): messages show the user's terms.
    """

    def __init__(self, name: str, objective: Expression, constraints: list[Constraint],
                 block_vars: list[Variable], *, prox: bool = False, maximise: bool = False):
        self.name = name
        self.block_vars = list(block_vars)
        self._ids = {v.id for v in block_vars}
        self.copies: dict[int, Variable] = {v.id: clone_variable(v) for v in block_vars}
        self.folds: list[_Fold] = []
        self.pieces: list[_PieceFix] = []
        self.lifts: list[_Lift] = []
        self._fold_cache: dict[int, Expression] = {}
        piece_constraints: list[Constraint] = []

        terms = objective_terms(objective)
        built_terms = [self._build(t, piece_constraints) for t in terms]
        built_terms = [self._lift(t) for t in built_terms]
        for term, built in zip(terms, built_terms):
            if not built.is_convex():
                curvature = built.curvature.lower()
                if maximise:  # the user's term is the negated one: its curvature flips
                    term = term.args[0] if isinstance(term, NegExpression) else -term
                    curvature = {"convex": "concave", "concave": "convex"}.get(curvature, curvature)
                if curvature == "unknown":
                    curvature = "neither convex nor concave (by cvxpy's rules)"
                raise NotMulticonvexError(
                    f"block '{name}' is not convex when the other blocks are fixed: the objective term "
                    f"`{_short(term)}` is {curvature} in the block "
                    f"({'maximising needs a concave' if maximise else 'minimising needs a convex'} term). Split its "
                    f"variables into other blocks, or reformulate the term.", block=name, term=_short(term))
        built_cons = []
        for c in constraints:
            if not ({v.id for v in c.variables()} & self._ids):
                continue
            bc = c.copy([self._lift(self._build(a, piece_constraints)) for a in c.args])
            if not bc.is_dcp():
                raise NotMulticonvexError(
                    f"block '{name}' is not convex when the other blocks are fixed: the constraint "
                    f"`{_short(c)}` does not define a convex set in the block. Split its variables into "
                    f"other blocks, or reformulate it.", block=name, term=_short(c))
            built_cons.append(bc)
        obj = built_terms[0]
        for t in built_terms[1:]:
            obj = obj + t
        self.rho: cp.Parameter | None = None
        self.anchors: dict[int, cp.Parameter] = {}
        if prox:
            self.rho = cp.Parameter(nonneg=True, value=0.0, name="rho")
            for vid, x in self.copies.items():
                a = cp.Parameter(x.shape, value=np.zeros(x.shape), name=f"rho_anchor_{x.name()}")
                self.anchors[vid] = a
                obj = obj + self.rho / 2 * cp.sum_squares(x) - cp.sum(cp.multiply(a, x))
        piece_constraints = [pc.copy([self._lift(a) for a in pc.args]) for pc in piece_constraints]
        self.problem = cp.Problem(cp.Minimize(obj), built_cons + piece_constraints)
        self.dpp = self.problem.is_dcp(dpp=True)
        if not self.dpp:
            logger.info("block '%s': the subproblem is not DPP (e.g. a product of three blocks or a "
                        "ReLU inside a ReLU); cvxpy recompiles it at every solve", name)

    # -- building --------------------------------------------------------------------------------
    def _build(self, expr: Expression, piece_constraints: list[Constraint]) -> Expression:
        var_ids = {v.id for v in expr.variables()}
        if not var_ids:
            return expr
        if not (var_ids & self._ids):
            return self._fold(expr)
        if isinstance(expr, Variable):
            return self.copies[expr.id]
        if isinstance(expr, relu):
            z = self._build(expr.args[0], piece_constraints)
            mask = cp.Parameter(expr.shape, nonneg=True, value=np.ones(expr.shape), name="piece")
            sign = cp.Parameter(expr.shape, value=np.ones(expr.shape), name="piece_sign")
            self.pieces.append(_PieceFix(mask, sign, expr.args[0]))
            piece_constraints.append(cp.multiply(sign, z) >= 0)
            return cp.multiply(mask, z)
        return expr.copy([self._build(a, piece_constraints) for a in expr.args])

    def _lift(self, expr: Expression) -> Expression:
        """Replace maximal affine, non-DPP sub-expressions by a Jacobian Parameter (set per solve).

        A product of Parameters around the block (e.g. the next layer's weights times
        a piece mask, ``P @ (S ∘ (W X))``) is affine in the block but not DPP; its
        Jacobian in the block is computed numerically at each point instead.
        """
        if not expr.variables() or expr.is_dpp():
            return expr
        if expr.is_affine():
            xs = [x for x in expr.variables()]
            n = sum(x.size for x in xs)
            A = cp.Parameter((expr.size, n), name="jacobian")
            c = cp.Parameter(expr.size, name="offset")
            self.lifts.append(_Lift(A, c, expr, xs))
            stacked = cp.hstack([cp.reshape(x, (x.size,), order="F") for x in xs])
            flat = A @ stacked + c
            return cp.reshape(flat, expr.shape, order="F") if expr.shape != flat.shape else flat
        return expr.copy([self._lift(a) for a in expr.args])

    def _fold(self, expr: Expression) -> cp.Parameter:
        key = id(expr)
        if key in self._fold_cache:
            return self._fold_cache[key]
        clip = "nonneg" if expr.is_nonneg() else "nonpos" if expr.is_nonpos() else None
        kwargs = {clip: True} if clip else {}
        p = cp.Parameter(expr.shape, **kwargs)
        self.folds.append(_Fold(p, expr, clip))
        self._fold_cache[key] = p
        return p

    # -- per solve --------------------------------------------------------------------------------
    def set_point(self, values: dict[int, np.ndarray], prox: float = 0.0, flip_boundary: bool = False) -> bool:
        """Fix the other blocks and the piece at the point the user variables hold now.

        ``values`` are the block's own variable values at the point (proximal anchor
        and warm start). Units whose pre-activation is within ``BOUNDARY_TOL`` (relative)
        of 0 lie on the boundary of the piece; ``flip_boundary`` puts them on the other
        side. Returns whether any unit lies on a boundary.
        """
        for fold in self.folds:
            val = np.asarray(fold.expr.value, dtype=float).reshape(fold.param.shape, order="F") \
                if fold.param.shape else float(np.asarray(fold.expr.value))
            if fold.clip == "nonneg":
                val = np.maximum(val, 0.0)
            elif fold.clip == "nonpos":
                val = np.minimum(val, 0.0)
            fold.param.value = val
        any_edge = False
        for pf in self.pieces:
            z = np.asarray(pf.arg.value, dtype=float).reshape(pf.mask.shape, order="F")
            s = piece_of(z)
            edge = on_boundary(z)
            any_edge = any_edge or bool(edge.any())
            if flip_boundary:
                s = np.where(edge, 1.0 - s, s)
            pf.mask.value = s
            pf.sign.value = 2 * s - 1
        for vid, x in self.copies.items():
            x.value = x.project(values[vid])  # warm start
        for lift in self.lifts:
            J = np.hstack([_dense(lift.expr.grad[x]).T for x in lift.xs]) if lift.xs else None
            xv = np.concatenate([np.asarray(x.value, dtype=float).ravel(order="F") for x in lift.xs])
            lift.A.value = J
            lift.c.value = np.asarray(lift.expr.value, dtype=float).ravel(order="F") - J @ xv
        if self.rho is not None:
            self.rho.value = float(prox)
            for vid, a in self.anchors.items():
                a.value = float(prox) * np.asarray(values[vid], dtype=float)
        elif prox:
            raise ValueError("this subproblem was built without a proximal term")
        return any_edge

    def solution(self) -> dict[int, np.ndarray]:
        return {vid: np.asarray(x.value, dtype=float).reshape(x.shape) for vid, x in self.copies.items()}


def _dense(g) -> np.ndarray:
    return g.toarray() if hasattr(g, "toarray") else np.atleast_2d(np.asarray(g, dtype=float))


def _short(obj: object, n: int = 160) -> str:
    s = str(obj)
    return s if len(s) <= n else s[: n - 3] + "..."


__all__ = ["CrossSection", "clone_variable", "objective_terms", "Hashable"]
