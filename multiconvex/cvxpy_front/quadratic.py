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
only numbers are computed (:meth:`QuadraticBlock.subproblem`).

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

from dataclasses import dataclass, field
from typing import Any

import cvxpy as cp
import numpy as np
import scipy.sparse as sp
from cvxpy.atoms.affine.add_expr import AddExpression
from cvxpy.atoms.affine.binary_operators import DivExpression, MulExpression, multiply
from cvxpy.atoms.affine.sum import Sum
from cvxpy.atoms.affine.transpose import transpose
from cvxpy.atoms.affine.unary_operators import NegExpression
from cvxpy.atoms.elementwise.power import Power
from cvxpy.atoms.pnorm import Pnorm
from cvxpy.atoms.quad_over_lin import quad_over_lin
from cvxpy.constraints import Equality, Inequality, NonNeg, NonPos, Zero
from cvxpy.expressions.leaf import Leaf
from cvxpy.expressions.variable import Variable

from ..subproblem import BlockSubproblem, KronTerm, Slot, make_slots

#: Variable attributes the compiled form expresses (as bounds); any other keeps the cvxpy path.
_BOUND_ATTRIBUTES = frozenset({"nonneg", "nonpos", "bounds"})


class Unsupported(Exception):
    """The block's subproblem is not in the compiled class; the message says why."""


@dataclass
class _Affine:
    """``E = Σ_t alpha_t · L_t @ X_{slot_t} @ R_t + C`` as a matrix of ``shape`` (``None``: identity); the
    expression is ``E`` itself, or ``Eᵀ`` when ``t`` (a transposed block variable: ``‖Eᵀ‖ = ‖E‖``, and
    the rows of ``Eᵀ ≤ 0`` are those of ``E ≤ 0``, so every use reads ``E``)."""

    shape: tuple[int, int]
    terms: list[tuple[int, float, np.ndarray | None, np.ndarray | None]]
    C: np.ndarray | None  # (rows, cols), or a scalar to broadcast; None: no constant (skips products of zeros)
    t: bool = False

    @property
    def out(self) -> tuple[int, int]:
        """The shape of the expression (``shape`` transposed when ``t``)."""
        return (self.shape[1], self.shape[0]) if self.t else self.shape

    def constant(self) -> np.ndarray:
        if self.C is None:
            return np.zeros(self.shape)
        return np.broadcast_to(np.asarray(self.C, dtype=float), self.shape)

    def map(self, f) -> np.ndarray | None:
        """``f`` applied to the constant, ``None`` stays ``None``."""
        return None if self.C is None else f(self.constant())

    def scaled(self, k: float) -> _Affine:
        return _Affine(self.shape, [(s, k * al, L, R) for s, al, L, R in self.terms], self.map(lambda C: k * C),
                       self.t)


def _as2d(value: Any, shape: tuple[int, ...]) -> np.ndarray:
    if sp.issparse(value):
        if np.prod(value.shape) > 4_000_000:
            raise Unsupported(f"a sparse data matrix of shape {value.shape} (the compiled form is dense)")
        value = value.toarray()
    arr = np.asarray(value, dtype=float)
    if len(shape) == 0:
        return arr.reshape(1, 1)
    if len(shape) == 1:
        return arr.reshape(-1, 1)
    return arr


def _shape2(shape: tuple[int, ...]) -> tuple[int, int]:
    return (1, 1) if len(shape) == 0 else (int(shape[0]), 1) if len(shape) == 1 else (int(shape[0]), int(shape[1]))


def _matmul(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    if a is None:
        return b
    if b is None:
        return a
    return a @ b


@dataclass
class QuadraticBlock:
    """One block's compiled subproblem: structure fixed at build, numbers per point."""

    name: str
    objective: Any
    constraints: list
    block_vars: list[Variable]
    slots: tuple[Slot, ...] = ()
    _slot_of: dict[int, int] = field(default_factory=dict)
    _involves: dict[int, bool] = field(default_factory=dict)
    _constant_cache: dict[int, np.ndarray] = field(default_factory=dict)
    _norm_cache: dict[int, tuple[np.ndarray, float]] = field(default_factory=dict)
    problem_class: str = "QP"

    @property
    def n(self) -> int:
        """Number of scalar variables of the block."""
        return sum(s.size for s in self.slots)

    def __post_init__(self) -> None:
        self.slots = make_slots([(v.id, v.shape) for v in self.block_vars])
        self._slot_of = {v.id: i for i, v in enumerate(self.block_vars)}
        self._ids = frozenset(self._slot_of)
        self._bounds = self._variable_bounds()
        # the affine expression of each constraint, built once and kept (the caches are keyed by id)
        self._cons = [self._constraint_form(c) for c in self.constraints if self._touches(c)]

    # -- structure -------------------------------------------------------------------------------
    def _touches(self, expr) -> bool:
        key = id(expr)
        hit = self._involves.get(key)
        if hit is None:
            hit = self._involves[key] = bool({v.id for v in expr.variables()} & self._ids)
        return hit

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
        lbs, ubs, any_bound = [], [], False
        for v, slot in zip(self.block_vars, self.slots):
            attrs = {k for k, val in v.attributes.items() if val is not None and val is not False}
            extra = attrs - _BOUND_ATTRIBUTES - {"real", "name"}
            if extra:
                raise Unsupported(f"variable '{v.name()}' has attribute(s) {sorted(extra)}")
            lb, ub = np.full(slot.size, -np.inf), np.full(slot.size, np.inf)
            if "nonneg" in attrs:
                lb[:] = 0.0
            if "nonpos" in attrs:
                ub[:] = 0.0
            if "bounds" in attrs:
                low, high = (_bound_value(b, default) for b, default in zip(v.attributes["bounds"], (-np.inf, np.inf)))
                lb = np.maximum(lb, _as2d(np.broadcast_to(low, v.shape), v.shape).ravel(order="F"))
                ub = np.minimum(ub, _as2d(np.broadcast_to(high, v.shape), v.shape).ravel(order="F"))
            any_bound = any_bound or bool(attrs & _BOUND_ATTRIBUTES)
            lbs.append(lb)
            ubs.append(ub)
        if not any_bound:
            return None, None
        return np.concatenate(lbs), np.concatenate(ubs)

    def _value(self, expr) -> np.ndarray:
        """Numbers of a sub-expression that does not involve the block, at the point the user variables hold."""
        if isinstance(expr, Leaf) and not isinstance(expr, Variable):
            key = id(expr)
            if isinstance(expr, cp.Constant):
                if key not in self._constant_cache:
                    self._constant_cache[key] = _as2d(expr.value, expr.shape)
                return self._constant_cache[key]
        val = expr.value
        if val is None:
            raise Unsupported(f"`{expr}` has no value at the point")
        return _as2d(val, expr.shape)

    def _affine(self, expr) -> _Affine:
        shape = _shape2(expr.shape)
        if not self._touches(expr):
            return _Affine(shape, [], self._value(expr))
        if isinstance(expr, Variable):
            return _Affine(shape, [(self._slot_of[expr.id], 1.0, None, None)], None)
        if isinstance(expr, AddExpression):
            return self._sum(expr, shape)
        if isinstance(expr, NegExpression):
            return self._affine(expr.args[0]).scaled(-1.0)
        if isinstance(expr, multiply):
            return self._scaled(expr)
        if isinstance(expr, DivExpression):
            num, den = expr.args
            if den.variables() or den.size != 1:
                raise Unsupported(f"division by a non-scalar or by a variable in `{expr}`")
            return self._affine(num).scaled(1.0 / _nonzero(self._value(den), expr))
        if isinstance(expr, MulExpression):
            return self._matmul(expr, shape)
        if isinstance(expr, Sum) and expr.axis is None:
            inner = self._affine(expr.args[0])  # the sum of Eᵀ's entries is the sum of E's
            r, c = inner.shape
            ones_r, ones_c = np.ones((1, r)), np.ones((c, 1))
            terms = [(s, a, _matmul(ones_r, L) if L is not None else ones_r, _matmul(R, ones_c) if R is not None
                      else ones_c) for s, a, L, R in inner.terms]
            return _Affine((1, 1), terms, np.array([[float(inner.constant().sum())]]))
        if isinstance(expr, transpose) and len(expr.shape) == 2 and expr.axes is None:
            inner = self._affine(expr.args[0])
            return _Affine(inner.shape, inner.terms, inner.C, not inner.t)
        raise Unsupported(f"`{type(expr).__name__}` of the block (in `{expr}`)")

    def _sum(self, expr, shape: tuple[int, int]) -> _Affine:
        parts = [self._affine(a) for a in expr.args]
        with_terms = [p for p in parts if p.terms]
        t = bool(with_terms) and with_terms[0].t
        if any(p.t != t or p.out != shape for p in with_terms):
            raise Unsupported(f"a block term is broadcast, or transposed and not, in `{expr}`")
        consts = []
        for a, p in zip(expr.args, parts):
            if p.C is None:
                continue
            C = np.asarray(p.C)
            if not p.terms and len(a.shape) == 1 and len(expr.shape) == 2:
                C = C.reshape(1, -1)  # numpy broadcasting: a vector added to a matrix is a row
            consts.append(C.T if t and not p.terms else C)  # into E's frame
        C = None if not consts else consts[0] if len(consts) == 1 else sum(consts[1:], consts[0])
        return _Affine((shape[1], shape[0]) if t else shape, [x for p in with_terms for x in p.terms], C, t)

    def _scaled(self, expr) -> _Affine:
        a, b = expr.args
        if self._touches(a) and self._touches(b):
            raise Unsupported(f"a product of block variables in `{expr}`")
        const, var = (a, b) if not self._touches(a) else (b, a)
        if const.size != 1:
            raise Unsupported(f"an elementwise product of the block with an array in `{expr}`")
        inner = self._affine(var)
        if _shape2(expr.shape) != inner.out:
            raise Unsupported(f"a block term is broadcast in `{expr}`")
        return inner.scaled(float(self._value(const).ravel()[0]))

    def _matmul(self, expr, shape: tuple[int, int]) -> _Affine:
        a, b = expr.args
        ta, tb = self._touches(a), self._touches(b)
        if ta and tb:
            raise Unsupported(f"a product of block variables in `{expr}`")
        if ta:  # (Σ L X R + C) @ B
            inner = self._affine(a)
            B = self._value(b)
            if inner.t:  # Eᵀ B = (Bᵀ E)ᵀ
                if len(a.shape) != 2 or len(b.shape) != 2:
                    raise Unsupported(f"a transposed block times a vector in `{expr}`")
                return _Affine((shape[1], shape[0]), [(s, al, _matmul(B.T, L) if L is not None else B.T, R)
                                                      for s, al, L, R in inner.terms],
                               inner.map(lambda C: B.T @ C), True)
            if len(a.shape) == 1:  # a 1-d vector times B: Bᵀ a (a column here)
                return _Affine(shape, [(s, al, _matmul(B.T, L) if L is not None else B.T, R)
                                       for s, al, L, R in inner.terms], inner.map(lambda C: B.T @ C))
            return _Affine(shape, [(s, al, L, _matmul(R, B)) for s, al, L, R in inner.terms],
                           inner.map(lambda C: C @ B))
        # A @ (Σ L X R + C)
        if len(a.shape) == 1 and len(b.shape) == 2:
            raise Unsupported(f"a row vector times the block (a transpose) in `{expr}`")
        inner = self._affine(b)
        A = self._value(a)
        if inner.t:  # A Eᵀ = (E Aᵀ)ᵀ
            if len(b.shape) != 2:
                raise Unsupported(f"a matrix times a transposed block vector in `{expr}`")
            return _Affine((shape[1], shape[0]), [(s, al, L, _matmul(R, A.T)) for s, al, L, R in inner.terms],
                           inner.map(lambda C: C @ A.T), True)
        if len(a.shape) == 1:  # vector · vector: aᵀ b
            A = A.T
        return _Affine(shape, [(s, al, _matmul(A, L) if L is not None else A, R) for s, al, L, R in inner.terms],
                       inner.map(lambda C: A @ C))

    # -- the objective as weighted squares + affine --------------------------------------------------
    def _objective_parts(self, expr, w: float, squares: list, linear: list, consts: list) -> None:
        if not self._touches(expr):
            consts.append(w * float(np.asarray(expr.value, dtype=float)))
            return
        if isinstance(expr, AddExpression):
            for a in expr.args:
                self._objective_parts(a, w, squares, linear, consts)
            return
        if isinstance(expr, NegExpression):
            self._objective_parts(expr.args[0], -w, squares, linear, consts)
            return
        if isinstance(expr, multiply) and expr.size == 1 and \
                any(a.size == 1 and not self._touches(a) for a in expr.args):
            # (not by is_affine: cvxpy calls 0 * sum_squares(x) affine)
            const, inner = (expr.args[0], expr.args[1]) if not self._touches(expr.args[0]) else \
                (expr.args[1], expr.args[0])
            if not inner.is_affine() and not (const.is_nonneg() or const.is_nonpos()):
                # a weight whose sign depends on the point (another block's variable): convexity is not
                # structural, as in cvxpy's DCP analysis; the cvxpy path names the term
                raise Unsupported(f"a weight of unknown sign in `{expr}`")
            self._objective_parts(inner, w * float(self._value(const).ravel()[0]), squares, linear, consts)
            return
        if isinstance(expr, DivExpression) and expr.size == 1:
            num, den = expr.args
            if den.variables() or den.size != 1 or not (num.is_affine() or den.is_nonneg() or den.is_nonpos()):
                raise Unsupported(f"division by a variable or by a term of unknown sign in `{expr}`")
            self._objective_parts(num, w / _nonzero(self._value(den), expr), squares, linear, consts)
            return
        if expr.is_affine():
            if expr.size != 1:
                raise Unsupported(f"a non-scalar objective term `{expr}`")
            linear.append((w, self._affine(expr)))
            return
        if w < 0:
            raise Unsupported(f"a square with a negative weight (`{expr}`): not convex as a QP")
        if isinstance(expr, quad_over_lin):
            x, y = expr.args
            if y.variables() or not y.is_nonneg():
                raise Unsupported(f"a variable or a term of unknown sign in a denominator (`{expr}`)")
            squares.append((w / _nonzero(self._value(y), expr), self._affine(x)))
            return
        if isinstance(expr, Sum) and expr.axis is None and isinstance(expr.args[0], Power):
            p = expr.args[0]
            if float(p.p.value) != 2.0:
                raise Unsupported(f"a power other than 2 (`{expr}`)")
            squares.append((w, self._affine(p.args[0])))
            return
        if isinstance(expr, Power) and float(expr.p.value) == 2.0:
            base = expr.args[0]
            if isinstance(base, Pnorm) and float(base.p) == 2 and base.axis is None:
                squares.append((w, self._affine(base.args[0])))
                return
            if base.size == 1:
                squares.append((w, self._affine(base)))
                return
        raise Unsupported(f"`{type(expr).__name__}` of the block (in `{expr}`)")

    # -- numbers at the point ------------------------------------------------------------------------
    def subproblem(self, prox: float = 0.0, anchor: dict[int, np.ndarray] | None = None) -> BlockSubproblem:
        """The block's subproblem at the point the user's variables hold now.

        With ``prox`` the proximal term ``(ρ/2)‖x − anchor‖²`` is added (certificates use ``prox=0``).
        """
        squares: list = []
        linear: list = []
        consts: list = []
        self._objective_parts(self.objective, 1.0, squares, linear, consts)
        self._parts = (squares, linear, consts)  # for objective_at: the same numbers, in residual form
        n = sum(s.size for s in self.slots)
        q = np.zeros(n)
        c = float(sum(consts))
        quad: list[KronTerm] = []
        for w, aff in squares:
            C = None if aff.C is None else aff.constant()
            if C is not None:
                c += w * (self._squared_norm(aff.C) if np.shape(aff.C) == aff.shape else float(np.vdot(C, C)))
            terms = aff.terms
            for ti, (s, al, L, R) in enumerate(terms):
                slot = self.slots[s]
                if C is not None:  # linear part 2w α Lᵀ C Rᵀ
                    G = C if L is None else L.T @ C
                    G = G if R is None else G @ R.T
                    q[slot.span] += 2 * w * al * np.broadcast_to(G, slot.shape).ravel(order="F")
                for tj, (s2, al2, L2, R2) in enumerate(terms):
                    if s != s2 and tj <= ti:
                        continue  # a cross term between two slots adds its transpose itself
                    left = None if L is None and L2 is None else _gram(L, L2, self.slots[s].shape[0])
                    right = None if R is None and R2 is None else _gram_r(R, R2, self.slots[s].shape[1])
                    quad.append(KronTerm(s, s2, left, right, 2 * w * al * al2))
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
        A, low, up, lb, ub = self._constraint_rows(n)
        return BlockSubproblem(self.slots, quad, q, c, A=A, l=low, u=up, lb=lb, ub=ub)

    def objective_at(self, x: np.ndarray) -> float:
        """The objective at block values ``x`` (stacked as the slots), the other blocks as at the last
        :meth:`subproblem`, computed from the residuals ``Σ w‖E(x)‖²``: the expanded ``½xᵀPx + qᵀx + c``
        cancels to rounding noise of ``‖C‖²`` near a perfect fit (an objective of 1e-20 came out as −6e-5)."""
        squares, linear, consts = self._parts
        mats = [np.asarray(x[s.span]).reshape(s.shape, order="F") for s in self.slots]
        total = float(sum(consts))
        for w, aff in squares:
            E = self._residual(aff, mats)
            total += w * float(np.vdot(E, E))
        for w, aff in linear:
            total += w * float(self._residual(aff, mats).ravel()[0])
        return total

    @staticmethod
    def _residual(aff: _Affine, mats: list[np.ndarray]) -> np.ndarray:
        E: np.ndarray | None = None
        for s, al, L, R in aff.terms:
            T = _matmul(_matmul(L, mats[s]), R)
            T = T if al == 1.0 else (-T if al == -1.0 else al * T)
            E = T if E is None else E + T
        if aff.C is not None:
            E = aff.C if E is None else E + aff.C  # broadcasts as the expression does
        return np.broadcast_to(E, aff.shape) if E is not None else np.zeros(aff.shape)

    def _squared_norm(self, C: np.ndarray) -> float:
        """``‖C‖²``, remembered when ``C`` is one of the data constants (the same array at every point)."""
        key = id(C)
        hit = self._norm_cache.get(key)
        if hit is not None and hit[0] is C:
            return hit[1]
        value = float(np.vdot(C, C))
        if any(C is v for v in self._constant_cache.values()):
            self._norm_cache[key] = (C, value)
        return value

    def _constraint_rows(self, n: int):
        lb, ub = (None, None) if self._bounds[0] is None else (self._bounds[0].copy(), self._bounds[1].copy())
        rows, lows, ups = [], [], []
        for expr, kind in self._cons:
            aff = self._affine(expr)
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


def _bound_value(bound, default: float):
    """A variable's ``bounds`` entry as numbers: ``None`` is unbounded; a Parameter or expression its value."""
    if bound is None:
        return default
    if isinstance(bound, cp.Expression):
        if bound.value is None:
            raise Unsupported(f"a bound `{bound}` without a value")
        return np.asarray(bound.value, dtype=float)
    return bound


def _nonzero(value: np.ndarray, expr) -> float:
    d = float(np.asarray(value).ravel()[0])
    if d == 0.0 or not np.isfinite(d):
        raise Unsupported(f"a denominator equal to {d} in `{expr}`")
    return d


def _gram(L1: np.ndarray | None, L2: np.ndarray | None, m: int) -> np.ndarray:
    a = np.eye(m) if L1 is None else L1
    return a.T @ (L2 if L2 is not None else np.eye(a.shape[0]))


def _gram_r(R1: np.ndarray | None, R2: np.ndarray | None, k: int) -> np.ndarray:
    a = np.eye(k) if R1 is None else R1
    return a @ (R2.T if R2 is not None else np.eye(a.shape[1]))


def compile_block(objective, constraints: list, block_vars: list[Variable],
                  name: str = "block") -> tuple[QuadraticBlock | None, str]:
    """``(QuadraticBlock, "")`` when the block's subproblem is a QP in the compiled class, else
    ``(None, reason)``. The structure is checked with the variables' current values (zeros where
    a variable has none), which only decide numbers, never the structure."""
    missing = [v for v in {v.id: v for v in _variables(objective, constraints)}.values() if v.value is None]
    try:
        for v in missing:
            v.save_value(np.asarray(v.project(np.zeros(v.shape)), dtype=float))  # a value its attributes allow
        qb = QuadraticBlock(name, objective, list(constraints), list(block_vars))
        qb.problem_class = qb.subproblem().problem_class  # fixed by the structure
        return qb, ""
    except Unsupported as exc:
        return None, str(exc)
    except (ValueError, TypeError, ArithmeticError) as exc:  # numbers the compiled form cannot take
        return None, f"the compiled form could not be built ({type(exc).__name__}: {exc})"
    finally:
        for v in missing:
            v.save_value(None)


def _variables(objective, constraints) -> list[Variable]:
    out = list(objective.variables())
    for c in constraints:
        out.extend(c.variables())
    return out
