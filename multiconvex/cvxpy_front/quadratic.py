"""A cvxpy block whose subproblem is a QP, compiled to a :class:`~multiconvex.subproblem.BlockSubproblem`.

cvxpy's own QP form of ``sum_squares(Y − U @ V)`` adds one auxiliary variable per residual
(38,400 for the U block of a 600×64 factorization). Here the objective is read as what it is:
a sum of weighted squares of affine expressions plus affine terms, each affine expression in
the block written as ``Σ_t α_t L_t X_t R_t + C`` (``X_t`` a block variable, ``L_t``, ``R_t`` and
``C`` numbers at the current point). The Gram matrix of a residual is then a sum of Kronecker
products ``kron(R_t R_sᵀ, L_tᵀ L_s)``: for the U block of a factorization that is one ``k × k``
matrix shared by every row of ``U``. Linear constraints and variable attributes become rows and
bounds in the same variables.

The walk of the expression tree decides the *structure* once (:func:`compile_block` returns
``None`` with the reason when a block does not fit: a ``relu`` of the block, a norm, a product
of two block variables, a transpose or index of a block variable...); such blocks stay on the
cvxpy-level path (:class:`~multiconvex.cvxpy_front.cross_section.CrossSection`). At each point
only numbers are computed (:meth:`QuadraticBlock.subproblem`). The affine expressions come from the
walk in :mod:`.affine`.

Examples
--------
>>> import cvxpy as cp, numpy as np
>>> Y = np.arange(6.0).reshape(3, 2)
>>> U, V = cp.Variable((3, 1), name="U"), cp.Variable((1, 2), name="V")
>>> U.value, V.value = np.ones((3, 1)), np.ones((1, 2))
>>> qb, why = compile_block(cp.sum_squares(Y - U @ V) + cp.sum_squares(U), [], [U])
>>> sub = qb.subproblem()
>>> sub.shared_gram()[0], sub.n
('rows', 3)
>>> bool(np.isclose(sub.value(np.ones(3)), (cp.sum_squares(Y - U @ V) + cp.sum_squares(U)).value))
True
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import cvxpy as cp
import numpy as np
import scipy.sparse as sp
from cvxpy.atoms.affine.add_expr import AddExpression
from cvxpy.atoms.affine.binary_operators import DivExpression, multiply
from cvxpy.atoms.affine.sum import Sum
from cvxpy.atoms.affine.unary_operators import NegExpression
from cvxpy.atoms.elementwise.power import Power
from cvxpy.atoms.pnorm import Pnorm
from cvxpy.atoms.quad_over_lin import quad_over_lin
from cvxpy.constraints import Equality, Inequality, NonNeg, NonPos, Zero
from cvxpy.expressions.variable import Variable

from ..subproblem import BlockSubproblem, KronTerm, Slot, make_slots
from .affine import Affine, AffineCompiler, Unsupported, as2d, is_static, matmul

__all__ = ["BlockWalk", "QuadraticBlock", "Unsupported", "compile_block", "walk_block", "zero_filled"]

#: Variable attributes the compiled form expresses (as bounds); any other keeps the cvxpy path.
_BOUND_ATTRIBUTES = frozenset({"nonneg", "nonpos", "bounds"})


@dataclass
class QuadraticBlock:
    """One block's compiled subproblem: structure fixed at build, numbers per point."""

    name: str
    objective: Any
    constraints: list
    block_vars: list[Variable]
    slots: tuple[Slot, ...] = ()
    _norm_cache: dict[int, tuple[np.ndarray, float]] = field(default_factory=dict)
    _transposed_cache: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    problem_class: str = "QP"

    @property
    def n(self) -> int:
        """Number of scalar variables of the block."""
        return self._n

    def __post_init__(self) -> None:
        self.slots = make_slots([(v.id, v.shape) for v in self.block_vars])
        self._n = sum(s.size for s in self.slots)
        self._square_norms2: tuple[list, list[float]] = ([], [])  # subproblem's squares and their ‖C‖²
        self._point_norms2: dict[int, tuple[np.ndarray, float]] = {}  # subproblem's arrays and their ‖·‖²
        self._compiler = AffineCompiler(self.block_vars)  # the walk of block-affine expressions, and its caches
        self._prox = False
        self._depth: int | None = None  # rounding_bound's count of products, fixed by the structure
        #: ``‖values‖²`` of other blocks' new values, by ``id`` (``(array, norm²)``), kept by the form
        #: (:meth:`CvxpyForm.receive`): this block reads them for another block's square instead of a new pass
        self.known_norms2: dict[int, tuple[np.ndarray, float]] = {}
        #: ``(x, ‖x‖²)`` of the last :meth:`rounding_bound` of a one-slot block
        self.last_norm2: tuple[np.ndarray, float] | None = None
        self._bounds = self._variable_bounds()
        # the walk of the objective and of each constraint, once: at each point only numbers are computed
        self._objective: list = []
        self._objective_program(self.objective, 1.0, (), self._objective)
        self._cons = [(self._compiler.program(expr), kind) for expr, kind in
                      (self._constraint_form(c) for c in self.constraints if self._compiler.touches(c))]

    # -- structure -------------------------------------------------------------------------------
    @staticmethod
    def _constraint_form(con) -> tuple[Any, str]:
        """``(expr, "le")`` for ``expr <= 0`` or ``(expr, "eq")`` for ``expr == 0``."""
        if isinstance(con, Inequality):
            return con.args[0] - con.args[1], "le"
        if isinstance(con, Equality):
            return con.args[0] - con.args[1], "eq"
        if isinstance(con, Zero):
            return con.args[0], "eq"
        if isinstance(con, NonNeg):
            return -con.args[0], "le"
        if isinstance(con, NonPos):
            return con.args[0], "le"
        raise Unsupported(f"a {type(con).__name__} constraint on the block")

    def _variable_bounds(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        given = []
        for v in self.block_vars:
            attrs = {k for k, val in v.attributes.items() if val is not None and val is not False}
            extra = attrs - _BOUND_ATTRIBUTES - {"real", "name"}
            if extra:
                raise Unsupported(f"variable '{v.name()}' has attribute(s) {sorted(extra)}")
            given.append(attrs)
        if not any(attrs & _BOUND_ATTRIBUTES for attrs in given):
            return None, None  # no bound: no arrays of infinities to build
        lbs, ubs, any_bound = [], [], False
        for v, slot, attrs in zip(self.block_vars, self.slots, given):
            lb, ub = np.full(slot.size, -np.inf), np.full(slot.size, np.inf)
            if "nonneg" in attrs:
                lb[:] = 0.0
            if "nonpos" in attrs:
                ub[:] = 0.0
            if "bounds" in attrs:
                low, high = (_bound_value(b, default) for b, default in zip(v.attributes["bounds"], (-np.inf, np.inf)))
                lb = np.maximum(lb, as2d(np.broadcast_to(low, v.shape), v.shape).ravel(order="F"))
                ub = np.minimum(ub, as2d(np.broadcast_to(high, v.shape), v.shape).ravel(order="F"))
            any_bound = any_bound or bool(attrs & _BOUND_ATTRIBUTES)
            lbs.append(lb)
            ubs.append(ub)
        if not any_bound:
            return None, None
        return np.concatenate(lbs), np.concatenate(ubs)

    # -- the objective as weighted squares + affine, compiled once -----------------------------------
    def _objective_program(self, expr, k: float, dyn: tuple, out: list) -> None:
        """Append ``(kind, k, dyn, f, expr)`` items: the term's weight is ``k`` times the values of the
        functions ``dyn`` (weights read from the point), ``f`` computes its numbers; ``kind`` is ``"const"``
        (``f`` a float), ``"square"`` (``w‖E‖²``, ``f`` the affine ``E``) or ``"linear"`` (``f`` a scalar ``E``)."""
        if not self._compiler.touches(expr):
            if isinstance(expr, quad_over_lin) and is_static(expr.args[1]) and float(
                    self._compiler.getter(expr.args[1])().ravel()[0]) > 0:
                # another block's square: its ‖C‖² in the same arithmetic as the block's residual
                y = float(self._compiler.getter(expr.args[1])().ravel()[0])
                out.append(("square", k / y, dyn, self._compiler.program(expr.args[0]), expr))
                return
            out.append(("const", k, dyn, self._compiler.scalar(expr), expr))
            return
        if isinstance(expr, AddExpression):
            for a in expr.args:
                self._objective_program(a, k, dyn, out)
            return
        if isinstance(expr, NegExpression):
            self._objective_program(expr.args[0], -k, dyn, out)
            return
        if isinstance(expr, multiply) and expr.size == 1 and \
                any(a.size == 1 and not self._compiler.touches(a) for a in expr.args):
            # (not by is_affine: cvxpy calls 0 * sum_squares(x) affine)
            const, inner = (expr.args[0], expr.args[1]) if not self._compiler.touches(expr.args[0]) else \
                (expr.args[1], expr.args[0])
            if not (const.is_nonneg() or const.is_nonpos()) and not inner.is_affine():  # the cheap test first
                # a weight whose sign depends on the point (another block's variable): convexity is not
                # structural, as in cvxpy's DCP analysis; the cvxpy path names the term
                raise Unsupported(f"a weight of unknown sign in `{expr}`")
            if is_static(const):
                self._objective_program(inner, k * self._compiler.scalar(const)(), dyn, out)
            else:
                self._objective_program(inner, k, dyn + (self._compiler.scalar(const),), out)
            return
        if isinstance(expr, DivExpression) and expr.size == 1:
            num, den = expr.args
            if den.variables() or den.size != 1 or not (num.is_affine() or den.is_nonneg() or den.is_nonpos()):
                raise Unsupported(f"division by a variable or by a term of unknown sign in `{expr}`")
            self._objective_program(num, k, dyn + (self._compiler.reciprocal(den, expr),), out)
            return
        if isinstance(expr, quad_over_lin):  # before is_affine (a walk of the subtree): it involves the block, so
            x, y = expr.args                # it is not affine
            if y.variables() or not y.is_nonneg():
                raise Unsupported(f"a variable or a term of unknown sign in a denominator (`{expr}`)")
            rec = self._compiler.reciprocal(y, expr)
            if not dyn and is_static(y):  # k · (1/y) once: what the weight's product gives at every point
                out.append(("square", k * rec(), (), self._compiler.program(x), expr))
            else:
                out.append(("square", k, dyn + (rec,), self._compiler.program(x), expr))
            return
        if expr.is_affine():
            if expr.size != 1:
                raise Unsupported(f"a non-scalar objective term `{expr}`")
            out.append(("linear", k, dyn, self._compiler.program(expr), expr))
            return
        if isinstance(expr, Sum) and expr.axis is None and isinstance(expr.args[0], Power):
            p = expr.args[0]
            if float(p.p.value) != 2.0:
                raise Unsupported(f"a power other than 2 (`{expr}`)")
            out.append(("square", k, dyn, self._compiler.program(p.args[0]), expr))
            return
        if isinstance(expr, Power) and float(expr.p.value) == 2.0:
            base = expr.args[0]
            if isinstance(base, Pnorm) and float(base.p) == 2 and base.axis is None:
                out.append(("square", k, dyn, self._compiler.program(base.args[0]), expr))
                return
            if base.size == 1:
                out.append(("square", k, dyn, self._compiler.program(base), expr))
                return
        raise Unsupported(f"`{type(expr).__name__}` of the block (in `{expr}`)")

    def _objective_parts(self) -> tuple[list, list, list]:
        """The objective's squares ``(w, E)``, affine terms ``(w, E)`` and constants at the point."""
        squares: list = []
        linear: list = []
        consts: list = []
        for kind, k, dyn, f, expr in self._objective:
            w = k
            for d in dyn:
                w *= d()
            if kind == "const":
                consts.append(w * f())
            elif kind == "linear":
                linear.append((w, f()))
            elif w < 0:
                raise Unsupported(f"a square with a negative weight (`{expr}`): not convex as a QP")
            else:
                squares.append((w, f()))
        return squares, linear, consts

    def structural_class(self) -> str | None:
        """The class of the block's subproblem read from the structure, without building its numbers: for a block
        without constraint rows or bounds ``"EQP"`` when some square involves the block (a quadratic term, as
        :meth:`subproblem` writes one for every such square), else ``"LP"``; ``None`` when rows or bounds make the
        class depend on their numbers (:meth:`subproblem` decides). The objective's parts are evaluated, so the
        checks of their numbers (a weight's sign) run as in :meth:`subproblem`."""
        if self._cons or self._bounds[0] is not None:
            return None
        squares, _, _ = self._objective_parts()
        return "EQP" if any(aff.terms for _, aff in squares) else "LP"

    # -- numbers at the point ------------------------------------------------------------------------
    def subproblem(self, prox: float = 0.0, anchor: dict[int, np.ndarray] | None = None) -> BlockSubproblem:
        """The block's subproblem at the point the user's variables hold now.

        With ``prox`` the proximal term ``(ρ/2)‖x − anchor‖²`` is added (certificates use ``prox=0``).
        """
        squares, linear, consts = self._objective_parts()
        self._parts = (squares, linear, consts)  # for objective_at: the same numbers, in residual form
        self._prox = bool(prox)  # the expanded value has a proximal term then
        n = self._n
        q = np.empty(n)  # each slot's part is written by its first linear part, or zeroed below
        written: set[int] = set()  # slots whose part of q holds a linear part already
        c = float(sum(consts))
        quad: list[KronTerm] = []
        norms2: list[float] = []  # ‖C‖² of each square, for rounding_bound at this point
        self._square_norms2 = (squares, norms2)
        seen: dict[int, tuple[np.ndarray, float]] = {}  # ‖A‖² of the arrays met here, by id (rounding_bound)
        self._point_norms2 = seen
        slots, transposed, squared_norm = self.slots, self._transposed, self._squared_norm
        for w, aff in squares:
            C = aff.C
            if C is None:
                norms2.append(0.0)
            else:
                if (C.shape if type(C) is np.ndarray else np.shape(C)) == aff.shape:
                    norm2 = squared_norm(C)
                    seen[id(C)] = (C, norm2)  # another block's values, as a factor of a term too (‖V‖, ‖U‖)
                else:
                    C = aff.constant()
                    norm2 = float(np.vdot(C, C))
                c += w * norm2
                norms2.append(norm2)
            terms = aff.terms
            if len(terms) == 1:  # the common square of one term: the loops below, unrolled
                s, al, L, R = terms[0]
                if C is not None:
                    _linear_part(q, slots[s], 2 * w * al, C, transposed, L, R, s in written)
                    written.add(s)
                shape = slots[s].shape
                quad.append(KronTerm(s, s, None if L is None else _gram(L, L, shape[0]),
                                     None if R is None else _gram_r(R, R, shape[1]), 2 * w * al * al))
                continue
            for ti, (s, al, L, R) in enumerate(terms):
                slot = slots[s]
                if C is not None:  # linear part 2w α Lᵀ C Rᵀ, built transposed: R Cᵀ L in C order is its F order
                    _linear_part(q, slot, 2 * w * al, C, transposed, L, R, s in written)
                    written.add(s)
                for tj, (s2, al2, L2, R2) in enumerate(terms):
                    if s != s2 and tj <= ti:
                        continue  # a cross term between two slots adds its transpose itself
                    left = None if L is None and L2 is None else _gram(L, L2, slots[s].shape[0])
                    right = None if R is None and R2 is None else _gram_r(R, R2, slots[s].shape[1])
                    quad.append(KronTerm(s, s2, left, right, 2 * w * al * al2))
        if len(written) < len(self.slots):
            for s, slot in enumerate(self.slots):
                if s not in written:
                    q[slot.span] = 0.0
        for w, aff in linear:
            C = aff.constant()
            c += w * float(C.ravel()[0])
            for s, al, L, R in aff.terms:
                slot = self.slots[s]
                ones = np.ones((1, 1))
                G = ones if L is None else L.T @ ones
                G = G if R is None else G @ R.T
                q[slot.span] += w * al * np.broadcast_to(G, slot.shape).ravel(order="F")
        if prox:
            for i, slot in enumerate(self.slots):
                quad.append(KronTerm(i, i, None, None, float(prox)))
                x_k = np.asarray(anchor[slot.key], dtype=float).reshape(slot.shape, order="F").ravel(order="F")
                q[slot.span] -= prox * x_k
                c += 0.5 * prox * float(x_k @ x_k)
        if not self._cons and self._bounds[0] is None:  # nothing to build: the common unconstrained block
            return BlockSubproblem(self.slots, quad, q, c)
        A, low, up, lb, ub = self._constraint_rows(n)
        return BlockSubproblem(self.slots, quad, q, c, A=A, l=low, u=up, lb=lb, ub=ub)

    def objective_at(self, x: np.ndarray, sub: BlockSubproblem | None = None, rtol: float = 0.0,
                     value: float | None = None) -> float:
        """The objective at block values ``x`` (stacked as the slots), the other blocks as at the last
        :meth:`subproblem`.

        With ``sub`` (that subproblem, built without a proximal term) and ``rtol > 0`` the expanded
        ``½xᵀPx + qᵀx + c`` (``value`` when the caller has it, else ``sub.value(x)``) is returned when its
        rounding error is provably at most ``rtol`` relative (:meth:`rounding_bound`). Otherwise, and always
        near a perfect fit, where the expanded form cancels to rounding noise of ``‖C‖²`` (an objective of
        1e-20 came out as −6e-5), it is computed from the residuals ``Σ w‖E(x)‖²``."""
        if sub is not None and rtol > 0.0 and not self._prox:
            expanded = sub.value(x) if value is None else float(value)
            if math.isfinite(expanded) and self.rounding_bound(x) <= rtol * abs(expanded):
                return expanded
        return self._residual_objective(self._parts, [np.asarray(x[s.span]).reshape(s.shape, order="F")
                                                      for s in self.slots])

    def objective_here(self) -> float:
        """The objective at the point the user's variables hold (the block's own included), from the
        residuals: what cvxpy's ``objective.value`` gives, without its expression walk."""
        mats = [self._compiler.value(v) for v in self.block_vars]
        return self._residual_objective(self._objective_parts(), mats)

    def _residual_objective(self, parts: tuple[list, list, list], mats: list[np.ndarray]) -> float:
        squares, linear, consts = parts
        total = float(sum(consts))
        for w, aff in squares:
            E = self._residual(aff, mats)
            total += w * float(np.vdot(E, E))
        for w, aff in linear:
            total += w * float(self._residual(aff, mats).ravel()[0])
        return total

    def rounding_bound(self, x: np.ndarray) -> float:
        """A bound on the rounding error of the expanded value ``½xᵀPx + qᵀx + c`` at ``x``.

        Every number in it is a sum of products of the data ``L_t``, ``X_t``, ``R_t``, ``C`` of the squares
        ``w‖Σ α_t L_t X_t R_t + C‖²`` and of the affine terms, each of at most ``D`` products (``D``: the
        block's size plus the lengths of every inner dimension); by the standard bound for sums of
        products (Higham, *Accuracy and Stability*, §3.1) its error is at most ``γ_D = D·u/(1 − D·u)``
        times the same sums taken in absolute values, which Cauchy–Schwarz and ``‖|A||B|‖_F ≤
        ‖A‖_F‖B‖_F`` bound by ``w(‖C‖_F + Σ|α_t|‖L_t‖_F‖X_t‖_F‖R_t‖_F)²`` per square (``|w|`` times the
        first power per affine term, ``|c|`` per constant)."""
        squares, linear, consts = self._parts
        slots = self.slots
        if len(slots) == 1:  # one slot: x is its span; ‖x‖² kept for the form (last_norm2)
            flat = x.ravel(order="K")
            norm2 = float(flat @ flat)
            self.last_norm2 = (x, norm2)
            norms = [math.sqrt(norm2)]  # _fro(x)
        else:
            norms = [_fro(x[s.span]) for s in slots]
        total = float(sum([abs(c) for c in consts])) if consts else 0.0
        # ‖C‖ of the squares as subproblem computed them for these parts, of the affine terms here
        known = self._square_norms2[1] if self._square_norms2[0] is squares and \
            len(self._square_norms2[1]) == len(squares) else None
        norm_here, sqrt = self._norm_here, math.sqrt
        for group, power in ((squares, 2), (linear, 1)) if linear else ((squares, 2),):
            i = 0
            for w, aff in group:
                if aff.C is None:
                    size = 0.0
                elif power == 2 and known is not None:
                    size = sqrt(known[i])
                else:
                    size = sqrt(self._constant_norm2(aff))
                i += 1
                for s, al, L, R in aff.terms:
                    size += abs(al) * norms[s] * (1.0 if L is None else norm_here(L)) * (
                        1.0 if R is None else norm_here(R))
                total += abs(w) * size ** power
        if self._depth is None:
            self._depth = x.size + 8 + sum(
                (0 if aff.C is None else int(np.size(aff.C))) + sum(
                    (0 if L is None else L.shape[0] + L.shape[1]) + (0 if R is None else R.shape[0] + R.shape[1])
                    for _, _, L, R in aff.terms) for _, aff in squares + linear)
        depth = self._depth
        u = _UNIT_ROUNDOFF
        return depth * u / (1.0 - depth * u) * total

    def _norm_here(self, A: np.ndarray) -> float:
        """``‖A‖_F`` (:func:`_fro`), read from the squared norms the last :meth:`subproblem` computed when ``A`` is
        one of those arrays (the same dot product: the same number)."""
        hit = self._point_norms2.get(id(A))
        if hit is not None and hit[0] is A:
            return math.sqrt(hit[1])
        return _fro(A)

    @staticmethod
    def _residual(aff: Affine, mats: list[np.ndarray]) -> np.ndarray:
        E: np.ndarray | None = None
        terms, C = aff.terms, aff.C
        if len(terms) == 1 and terms[0][1] == -1.0 and C is not None:
            s, _, L, R = terms[0]
            E = C - matmul(matmul(L, mats[s]), R)  # (−T) + C in one pass: the same numbers (a negation is exact)
        else:
            for s, al, L, R in terms:
                T = matmul(matmul(L, mats[s]), R)
                T = T if al == 1.0 else (-T if al == -1.0 else al * T)
                E = T if E is None else E + T
            if C is not None:
                E = C if E is None else E + C  # broadcasts as the expression does
        if E is None:
            return np.zeros(aff.shape)
        return E if np.shape(E) == aff.shape else np.broadcast_to(E, aff.shape)

    def _constant_norm2(self, aff: Affine) -> float:
        """``‖C‖²`` of ``aff``'s constant as broadcast to its shape."""
        C = aff.C
        if (C.shape if type(C) is np.ndarray else np.shape(C)) == aff.shape:
            return self._squared_norm(aff.C)
        C = aff.constant()
        return float(np.vdot(C, C))

    def _transposed(self, C: np.ndarray) -> np.ndarray:
        """``C.T``: for a data constant (the same array at every point) a C-ordered copy, made once; for the
        other constants (numbers of the point) the transposed view."""
        key = id(C)
        hit = self._transposed_cache.get(key)
        if hit is not None and hit[0] is C:
            return hit[1]
        if not self._compiler.is_data(C) or C.ndim != 2:
            return C.T
        CT = np.ascontiguousarray(C.T)
        self._transposed_cache[key] = (C, CT)
        return CT

    def _squared_norm(self, C: np.ndarray) -> float:
        """``‖C‖²``, remembered when ``C`` is one of the data constants (the same array at every point); read from
        :attr:`known_norms2` when ``C`` is a block's values whose norm the form has already (the same dot product
        over the same memory: the same number)."""
        key = id(C)
        hit = self._norm_cache.get(key)
        if hit is not None and hit[0] is C:
            return hit[1]
        hit = self.known_norms2.get(key)
        if hit is not None and hit[0] is C:
            return hit[1]
        flat = (C if type(C) is np.ndarray and C.dtype == np.float64 else np.asarray(C, dtype=float)).ravel(order="K")
        value = float(flat @ flat)
        if self._compiler.is_data(C):
            self._norm_cache[key] = (C, value)
        return value

    def _constraint_rows(self, n: int):
        lb, ub = (None, None) if self._bounds[0] is None else (self._bounds[0].copy(), self._bounds[1].copy())
        rows, lows, ups = [], [], []
        for program, kind in self._cons:
            aff = program()
            rhs = -aff.constant().ravel(order="F")
            if len(aff.terms) == 1 and aff.terms[0][2] is None and aff.terms[0][3] is None and kind == "le" \
                    and aff.shape == self.slots[aff.terms[0][0]].shape:
                s, al, _, _ = aff.terms[0]  # al * X <= rhs: a bound
                if lb is None:
                    lb, ub = np.full(n, -np.inf), np.full(n, np.inf)
                span = self.slots[s].span
                if al > 0:
                    ub[span] = np.minimum(ub[span], rhs / al)
                else:
                    lb[span] = np.maximum(lb[span], rhs / al)
                continue
            M = sp.csr_matrix((aff.shape[0] * aff.shape[1], n))
            for s, al, L, R in aff.terms:
                slot = self.slots[s]
                Lm = sp.identity(slot.shape[0]) if L is None else sp.csr_matrix(L)
                Rm = sp.identity(slot.shape[1]) if R is None else sp.csr_matrix(R)
                block = al * sp.kron(Rm.T, Lm, format="csr")
                M = M + sp.hstack([sp.csr_matrix((block.shape[0], slot.offset)), block,
                                   sp.csr_matrix((block.shape[0], n - slot.offset - slot.size))], format="csr")
            rows.append(M)
            lows.append(rhs if kind == "eq" else np.full(rhs.size, -np.inf))
            ups.append(rhs)
        if not rows:
            return None, None, None, lb, ub
        return sp.vstack(rows, format="csr"), np.concatenate(lows), np.concatenate(ups), lb, ub


def _linear_part(q: np.ndarray, slot: Slot, k: float, C: np.ndarray, transposed: Callable[[np.ndarray], np.ndarray],
                 L: np.ndarray | None, R: np.ndarray | None, add: bool) -> None:
    """Write (``add``: add) ``k · Lᵀ C Rᵀ`` into ``slot``'s part of ``q``, built transposed: ``k · R Cᵀ L`` in C order
    is its F order. ``transposed(C)`` is ``C.T`` (:meth:`QuadraticBlock._transposed`: a C-ordered copy for a data
    constant, made once; the product with it runs about twice as fast as with the transposed view, and gives the
    same numbers), asked only where ``Cᵀ`` is a factor. ``k`` goes into a factor before the product (one pass fewer
    over the result); ``k = ±1`` needs no scaled copy: the product is written straight into ``q`` and negated
    there (exact, so the numbers are those of the scaled factor bit for bit)."""
    shape = slot.shape[::-1]
    unit = k == 1.0 or k == -1.0
    target = q[slot.span].reshape(shape)  # a view: the span is contiguous
    if R is None and L is not None and unit and not add and (C.shape[1], L.shape[1]) == shape:
        # Cᵀ L as (Lᵀ C)ᵀ: both operands read in their own order (the same dot products)
        if k == -1.0:
            np.negative((L.T @ C).T, out=target)
        else:
            target[...] = (L.T @ C).T
        return
    if R is not None:
        if k == -1.0 and L is None and not add and R.size < target.size and R.ndim == C.ndim == 2 \
                and (R.shape[0], C.shape[0]) == shape and R.shape[1] == C.shape[1]:
            # −R Cᵀ: the smaller factor negated instead of the product (exact either way: the same numbers)
            np.matmul(np.negative(R), transposed(C), out=target)
            return
        kR = R if unit else k * R
        a, b = (kR, transposed(C)) if L is None else (kR @ transposed(C), L)
    elif L is not None:
        a, b = C.T, (L if unit else k * L)
    else:
        a, b = (C.T if unit else k * C.T), None
    if b is not None and not add and (a.shape[0], b.shape[1]) == shape:
        np.matmul(a, b, out=target)
        if k == -1.0:
            np.negative(target, out=target)
        return
    Gt = a if b is None else a @ b
    if k == -1.0:
        Gt = -Gt
    if Gt.shape != shape:
        Gt = np.broadcast_to(Gt, shape)
    if add:
        target += Gt
    else:
        target[...] = Gt


def _bound_value(bound, default: float):
    """A variable's ``bounds`` entry as numbers: ``None`` is unbounded; a Parameter or expression its value."""
    if bound is None:
        return default
    if isinstance(bound, cp.Expression):
        if bound.value is None:
            raise Unsupported(f"a bound `{bound}` without a value")
        return np.asarray(bound.value, dtype=float)
    return bound


_UNIT_ROUNDOFF = np.finfo(float).eps / 2


def _fro(A: np.ndarray) -> float:
    """``‖A‖_F`` by one dot product (``np.linalg.norm``'s checks cost more than the sum at these sizes)."""
    a = A.ravel(order="K")  # no copy for an array contiguous in either order
    return math.sqrt(float(a @ a))


def _gram(L1: np.ndarray | None, L2: np.ndarray | None, m: int) -> np.ndarray:
    a = np.eye(m) if L1 is None else L1
    return a.T @ (L2 if L2 is not None else np.eye(a.shape[0]))


def _gram_r(R1: np.ndarray | None, R2: np.ndarray | None, k: int) -> np.ndarray:
    a = np.eye(k) if R1 is None else R1
    return a @ (R2.T if R2 is not None else np.eye(a.shape[1]))


@dataclass
class BlockWalk:
    """One block's expressions walked once (:func:`walk_block`): the compiled structure, or why there is none.

    The front door walks each block once and hands the walk to the memory check
    (:func:`~multiconvex.cvxpy_front.sizes.check_block_sizes`) and to the form (:func:`compile_block`).
    """

    qb: QuadraticBlock | None
    why: str = ""  # why the block is not compiled ("" when it is)
    error: Exception | None = None  # what the walk raised besides Unsupported (the structure could not be read)

    @property
    def path(self) -> str:
        """``"compiled"``, ``"cvxpy"`` (the walk refused the block), or ``"unknown"`` (the walk failed)."""
        return "compiled" if self.qb is not None else "cvxpy" if self.error is None else "unknown"


@contextmanager
def zero_filled(objective, constraints: list, variables: list[Variable] | None = None) -> Iterator[None]:
    """Variables without a value hold zeros (a value their attributes allow) inside, ``None`` again after.
    ``variables``: those of ``objective`` and ``constraints`` when the caller has them (a problem's, which cvxpy
    keeps), else found here."""
    found = variables if variables is not None else _variables(objective, constraints)
    missing = [v for v in {v.id: v for v in found}.values() if v.value is None]
    try:
        for v in missing:
            v.save_value(np.asarray(v.project(np.zeros(v.shape)), dtype=float))
        yield
    finally:
        for v in missing:
            v.save_value(None)


def walk_block(objective, constraints: list, block_vars: list[Variable], name: str = "block", *,
               filled: bool = False) -> BlockWalk:
    """The structure of the block's subproblem (:class:`QuadraticBlock`, no numbers yet), or the reason it
    has none. Read with the variables' current values (zeros where a variable has none), which only decide
    numbers, never the structure. ``filled``: every variable has a value already (the caller filled them)."""
    with contextlib.nullcontext() if filled else zero_filled(objective, constraints):
        try:
            return BlockWalk(QuadraticBlock(name, objective, list(constraints), list(block_vars)))
        except Unsupported as exc:
            return BlockWalk(None, str(exc))
        except Exception as exc:  # noqa: BLE001 - kept: compile_block decides what it means (block_memory: unknown)
            return BlockWalk(None, f"the compiled form could not be built ({type(exc).__name__}: {exc})", exc)


def compile_block(objective, constraints: list, block_vars: list[Variable], name: str = "block",
                  walk: BlockWalk | None = None, *, filled: bool = False) -> tuple[QuadraticBlock | None, str]:
    """``(QuadraticBlock, "")`` when the block's subproblem is a QP in the compiled class, else
    ``(None, reason)``. The structure is checked with the variables' current values (zeros where
    a variable has none), which only decide numbers, never the structure. ``walk``: the block's
    :func:`walk_block` of the same expressions, done already (not walked again); ``filled``: every variable
    has a value already (the caller filled them, see :func:`zero_filled`)."""
    walk = walk if walk is not None else walk_block(objective, constraints, block_vars, name, filled=filled)
    if walk.error is not None and not isinstance(walk.error, (ValueError, TypeError, ArithmeticError)):
        raise walk.error  # not a number the compiled form cannot take: a real error, raised as it was
    if walk.qb is None:
        return None, walk.why
    qb = walk.qb
    with contextlib.nullcontext() if filled else zero_filled(objective, constraints):
        try:
            # fixed by the structure: read from it where it can be, else from the subproblem at these values
            qb.problem_class = qb.structural_class() or qb.subproblem().problem_class
            return qb, ""
        except Unsupported as exc:
            return None, str(exc)
        except (ValueError, TypeError, ArithmeticError) as exc:  # numbers the compiled form cannot take
            return None, f"the compiled form could not be built ({type(exc).__name__}: {exc})"


def _variables(objective, constraints) -> list[Variable]:
    out = list(objective.variables())
    for c in constraints:
        out.extend(c.variables())
    return out
