"""The cvxpy expression compiler: an expression affine in a block, walked once, as a function of the point.

An expression affine in the block's variables is written ``E = Σ_t α_t L_t X_t R_t + C`` (:class:`Affine`:
``X_t`` a block variable, ``L_t``, ``R_t`` and ``C`` numbers at the current point). :meth:`AffineCompiler.program`
walks the cvxpy expression tree once and decides the *structure* there (which block variable each term holds,
which data multiplies it on which side); it returns a function that computes only the *numbers* ``L_t``,
``R_t``, ``C`` from the values the user's variables hold. An expression outside this class (a product of two
block variables, an elementwise product with an array, a ``relu`` of the block...) raises :class:`Unsupported`
with the reason. :mod:`.quadratic` builds a block's QP from these affine pieces.

Examples
--------
>>> import cvxpy as cp, numpy as np
>>> X = cp.Variable((2, 2), name="X")
>>> A = np.array([[1.0, 2.0], [3.0, 4.0]])
>>> aff = AffineCompiler([X]).program(A @ X - 1.0)()  # walked once; each call computes the numbers
>>> aff.shape, len(aff.terms), aff.constant().tolist()
((2, 2), 1, [[-1.0, -1.0], [-1.0, -1.0]])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cvxpy as cp
import numpy as np
import scipy.sparse as sp
from cvxpy.atoms.affine.add_expr import AddExpression
from cvxpy.atoms.affine.binary_operators import DivExpression, MulExpression, multiply
from cvxpy.atoms.affine.sum import Sum
from cvxpy.atoms.affine.transpose import transpose
from cvxpy.atoms.affine.unary_operators import NegExpression
from cvxpy.expressions.leaf import Leaf
from cvxpy.expressions.variable import Variable

__all__ = ["Affine", "AffineCompiler", "Unsupported", "as2d", "is_static", "matmul"]


class Unsupported(Exception):
    """The block's subproblem is not in the compiled class; the message says why."""


@dataclass(slots=True)
class Affine:
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

    def scaled(self, k: float) -> Affine:
        return Affine(self.shape, [(s, k * al, L, R) for s, al, L, R in self.terms],
                      None if self.C is None else k * self.constant(), self.t)


class AffineCompiler:
    """The walk of cvxpy expressions for one block (``block_vars``, slot ``i`` the ``i``-th variable).

    It keeps, keyed by the ``id`` of the cvxpy objects it has seen, whether an expression involves the
    block and the numbers of the data constants (computed once: they are the same at every point)."""

    def __init__(self, block_vars: Sequence[Variable]) -> None:
        self._slot_of = {v.id: i for i, v in enumerate(block_vars)}
        self._ids = frozenset(self._slot_of)
        self._involves: dict[int, bool] = {}
        self._constant_cache: dict[int, np.ndarray] = {}
        self._data_key: dict[int, int] = {}  # id of a data constant's array -> its key in _constant_cache

    # -- structure -------------------------------------------------------------------------------
    def touches(self, expr) -> bool:
        """Whether ``expr`` involves a variable of the block."""
        key = id(expr)
        hit = self._involves.get(key)
        if hit is None:
            # bottom-up, each node once (cvxpy's ``variables()`` walks the whole subtree at every node)
            if isinstance(expr, Variable):
                hit = expr.id in self._ids
            elif isinstance(expr, Leaf):
                hit = False  # a constant or a parameter
            else:
                hit = any([self.touches(a) for a in expr.args])
            self._involves[key] = hit
        return hit

    def is_data(self, C: np.ndarray) -> bool:
        """Whether ``C`` is one of the data constants (the same array at every point)."""
        return self._constant_cache.get(self._data_key.get(id(C), -1)) is C

    # -- numbers of sub-expressions free of the block ---------------------------------------------------
    def value(self, expr) -> np.ndarray:
        """Numbers of a sub-expression that does not involve the block, at the point the user variables hold."""
        if isinstance(expr, Leaf) and not isinstance(expr, Variable):
            key = id(expr)
            if isinstance(expr, cp.Constant):
                if key not in self._constant_cache:
                    self._constant_cache[key] = as2d(expr.value, expr.shape)
                    self._data_key[id(self._constant_cache[key])] = key
                return self._constant_cache[key]
        val = expr.value
        if val is None:
            raise Unsupported(f"`{expr}` has no value at the point")
        return as2d(val, expr.shape)

    def getter(self, expr) -> Callable[[], np.ndarray]:
        """The numbers of a sub-expression free of the block as a function of the point: computed once (and
        kept with the data constants) when it involves no variable and no parameter, else at each call."""
        if is_static(expr):
            value = self.value(expr)
            if id(expr) not in self._constant_cache:
                self._constant_cache[id(expr)] = value
                self._data_key[id(value)] = id(expr)
            return lambda: value
        if isinstance(expr, Variable) and expr.sparse_idx is None:  # another block's variable: read its value
            shape = expr.shape

            def read() -> np.ndarray:
                val = expr.value
                if val is None:
                    raise Unsupported(f"`{expr}` has no value at the point")
                return as2d(val, shape)
            return read
        return lambda: self.value(expr)

    def scalar(self, expr) -> Callable[[], float]:
        """:meth:`getter` of a scalar sub-expression, as a float."""
        get = self.getter(expr)
        return lambda: float(get().ravel()[0])

    def reciprocal(self, den, expr) -> Callable[[], float]:
        """``1 / den`` as a function of the point; a zero or non-finite ``den`` raises :class:`Unsupported`
        naming ``expr``."""
        get = self.getter(den)
        if is_static(den):
            value = 1.0 / _nonzero(get(), expr)
            return lambda: value
        return lambda: 1.0 / _nonzero(get(), expr)

    # -- the walk, once: block-affine expressions compiled to functions of the point ---------------------
    def program(self, expr) -> Callable[[], Affine]:
        """``expr`` (affine in the block) compiled: the walk decides the structure here, once, and returns a
        function that computes the numbers ``L_t``, ``R_t``, ``C`` at the point the user's variables hold."""
        shape = _shape2(expr.shape)
        if not self.touches(expr):
            if is_static(expr):
                fixed = Affine(shape, [], self.getter(expr)())
                return lambda: fixed
            if isinstance(expr, Variable) and expr.sparse_idx is None:  # another block's variable: its value read
                read = self.getter(expr)                                 # directly (no type tests per call)
                return lambda: Affine(shape, [], read())
            return lambda: Affine(shape, [], self.value(expr))
        if isinstance(expr, Variable):
            own = Affine(shape, [(self._slot_of[expr.id], 1.0, None, None)], None)
            return lambda: own
        if isinstance(expr, AddExpression):
            parts = [self.program(a) for a in expr.args]
            layout: list[tuple[bool, bool, bool]] = []  # per argument, found at the first call (structure)

            def added() -> Affine:
                values = [p() for p in parts]
                if not layout:
                    out = self._sum(expr, shape, values)  # checks the structure once
                    layout.extend(self._sum_layout(expr, values))
                    return out
                return _sum_known(shape, values, layout)
            return added
        if isinstance(expr, NegExpression):
            inner = self.program(expr.args[0])
            return lambda: inner().scaled(-1.0)
        if isinstance(expr, multiply):
            return self._scaled(expr)
        if isinstance(expr, DivExpression):
            num, den = expr.args
            if den.variables() or den.size != 1:
                raise Unsupported(f"division by a non-scalar or by a variable in `{expr}`")
            inner, get = self.program(num), self.getter(den)
            return lambda: inner().scaled(1.0 / _nonzero(get(), expr))
        if isinstance(expr, MulExpression):
            return self._matmul(expr, shape)
        if isinstance(expr, Sum) and expr.axis is None:
            inner = self.program(expr.args[0])
            return lambda: _summed(inner())
        if isinstance(expr, transpose) and len(expr.shape) == 2 and expr.axes is None:
            inner = self.program(expr.args[0])

            def transposed() -> Affine:
                aff = inner()
                return Affine(aff.shape, aff.terms, aff.C, not aff.t)
            return transposed
        raise Unsupported(f"`{type(expr).__name__}` of the block (in `{expr}`)")

    @staticmethod
    def _sum(expr, shape: tuple[int, int], parts: list[Affine]) -> Affine:
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
        return Affine((shape[1], shape[0]) if t else shape, [x for p in with_terms for x in p.terms], C, t)

    @staticmethod
    def _sum_layout(expr, parts: list[Affine]) -> list[tuple[bool, bool, bool]]:
        """Per argument of a sum that :meth:`_sum` accepted: whether it has block terms, whether its constant is a
        vector to read as a row, whether its constant is transposed into the sum's frame. All three follow from the
        structure (which arguments involve the block, their shapes, their transposes), so they hold at every point."""
        with_terms = [p for p in parts if p.terms]
        t = bool(with_terms) and with_terms[0].t
        return [(bool(p.terms), not p.terms and len(a.shape) == 1 and len(expr.shape) == 2, t and not p.terms)
                for a, p in zip(expr.args, parts)]

    def _scaled(self, expr) -> Callable[[], Affine]:
        a, b = expr.args
        if self.touches(a) and self.touches(b):
            raise Unsupported(f"a product of block variables in `{expr}`")
        const, var = (a, b) if not self.touches(a) else (b, a)
        if const.size != 1:
            raise Unsupported(f"an elementwise product of the block with an array in `{expr}`")
        inner, k = self.program(var), self.scalar(const)
        out = _shape2(expr.shape)

        def scaled() -> Affine:
            aff = inner()
            if out != aff.out:
                raise Unsupported(f"a block term is broadcast in `{expr}`")
            return aff.scaled(k())
        return scaled

    def _matmul(self, expr, shape: tuple[int, int]) -> Callable[[], Affine]:
        a, b = expr.args
        ta, tb = self.touches(a), self.touches(b)
        if ta and tb:
            raise Unsupported(f"a product of block variables in `{expr}`")
        if ta:  # (Σ L X R + C) @ B
            inner, get_b = self.program(a), self.getter(b)
            both_2d, a_vector = len(a.shape) == 2 and len(b.shape) == 2, len(a.shape) == 1

            def times_b() -> Affine:
                aff, B = inner(), get_b()
                if aff.t:  # Eᵀ B = (Bᵀ E)ᵀ
                    if not both_2d:
                        raise Unsupported(f"a transposed block times a vector in `{expr}`")
                    return Affine((shape[1], shape[0]), [(s, al, matmul(B.T, L) if L is not None else B.T, R)
                                                         for s, al, L, R in aff.terms],
                                  aff.map(lambda C: B.T @ C), True)
                if a_vector:  # a 1-d vector times B: Bᵀ a (a column here)
                    return Affine(shape, [(s, al, matmul(B.T, L) if L is not None else B.T, R)
                                          for s, al, L, R in aff.terms], aff.map(lambda C: B.T @ C))
                return Affine(shape, [(s, al, L, matmul(R, B)) for s, al, L, R in aff.terms],
                              aff.map(lambda C: C @ B))
            return times_b
        # A @ (Σ L X R + C)
        if len(a.shape) == 1 and len(b.shape) == 2:
            raise Unsupported(f"a row vector times the block (a transpose) in `{expr}`")
        inner, get_a = self.program(b), self.getter(a)
        b_2d, a_vector = len(b.shape) == 2, len(a.shape) == 1

        def a_times() -> Affine:
            aff, A = inner(), get_a()
            if aff.t:  # A Eᵀ = (E Aᵀ)ᵀ
                if not b_2d:
                    raise Unsupported(f"a matrix times a transposed block vector in `{expr}`")
                return Affine((shape[1], shape[0]), [(s, al, L, matmul(R, A.T)) for s, al, L, R in aff.terms],
                              aff.map(lambda C: C @ A.T), True)
            if a_vector:  # vector · vector: aᵀ b
                A = A.T
            return Affine(shape, [(s, al, matmul(A, L) if L is not None else A, R) for s, al, L, R in aff.terms],
                          aff.map(lambda C: A @ C))
        return a_times


def as2d(value: Any, shape: tuple[int, ...]) -> np.ndarray:
    """``value`` (of a cvxpy expression of ``shape``) as a dense 2-d float array: a scalar is 1×1, a vector a
    column. A sparse matrix larger than the dense compiled form takes raises :class:`Unsupported`."""
    if type(value) is np.ndarray and value.ndim == 2 and value.dtype == np.float64:
        return value  # the common case, first: a variable's matrix value
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


def matmul(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    """``a @ b``, a ``None`` factor read as the identity."""
    if a is None:
        return b
    if b is None:
        return a
    return a @ b


def is_static(expr) -> bool:
    """Whether ``expr``'s numbers are fixed for the run: no variable and no parameter in it."""
    return not expr.variables() and not expr.parameters()


def _shape2(shape: tuple[int, ...]) -> tuple[int, int]:
    return (1, 1) if len(shape) == 0 else (int(shape[0]), 1) if len(shape) == 1 else (int(shape[0]), int(shape[1]))


def _sum_known(shape: tuple[int, int], parts: list[Affine], layout: list[tuple[bool, bool, bool]]) -> Affine:
    """:meth:`AffineCompiler._sum` once its structure has been checked (``layout``: :meth:`AffineCompiler._sum_layout`):
    the same numbers, without the checks."""
    if len(parts) == 2 and layout[0] == (False, False, False) and layout[1][0] and parts[1].C is None \
            and type(parts[0].C) is np.ndarray:
        # data minus (or plus) the block's terms, ``Y − U V``: the constant as it is, the terms of the other part
        return Affine((shape[1], shape[0]) if parts[1].t else shape, list(parts[1].terms), parts[0].C, parts[1].t)
    terms = []
    consts = []
    t = False
    for p, (has_terms, as_row, transposed) in zip(parts, layout):
        if has_terms:
            terms.extend(p.terms)
            t = p.t
        if p.C is None:
            continue
        C = np.asarray(p.C)
        if as_row:
            C = C.reshape(1, -1)  # numpy broadcasting: a vector added to a matrix is a row
        consts.append(C.T if transposed else C)
    C = None if not consts else consts[0] if len(consts) == 1 else sum(consts[1:], consts[0])
    return Affine((shape[1], shape[0]) if t else shape, terms, C, t)


def _summed(inner: Affine) -> Affine:
    """The sum of the entries of ``E`` (of ``Eᵀ``: the same) as a 1×1 affine expression."""
    r, c = inner.shape
    ones_r, ones_c = np.ones((1, r)), np.ones((c, 1))
    terms = [(s, a, matmul(ones_r, L) if L is not None else ones_r, matmul(R, ones_c) if R is not None
              else ones_c) for s, a, L, R in inner.terms]
    return Affine((1, 1), terms, np.array([[float(inner.constant().sum())]]))


def _nonzero(value: np.ndarray, expr) -> float:
    d = float(np.asarray(value).ravel()[0])
    if d == 0.0 or not np.isfinite(d):
        raise Unsupported(f"a denominator equal to {d} in `{expr}`")
    return d
