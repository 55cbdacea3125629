"""Pyomo expressions as polynomials, walked once: monomials as index arrays.

A *monomial* is a coefficient times a product of variables with powers; it is stored as
the sorted tuple of the variables' positions in a flat vector, one entry per power
(``x₃² x₇`` is ``(3, 3, 7)``). :func:`polynomial` expands an expression into a
``{monomial: coefficient}`` dict; :func:`objective_parts` keeps the structure that makes
block subproblems cheap — the objective as a sum of weighted squares of polynomials
(least-squares residuals, whose Gram matrix is ``RᵀWR``) plus a polynomial remainder —
and sets aside any term that is not a polynomial. :class:`MonomialTable` packs monomials
into padded index arrays, so that their values at a point are one numpy gather and
product: no expression is walked again.

Fixed variables and parameters are numbers (the values they hold when walked).

Examples
--------
>>> import pyomo.environ as pyo
>>> m = pyo.ConcreteModel()
>>> m.x, m.y = pyo.Var(), pyo.Var()
>>> index = {id(m.x): 0, id(m.y): 1}
>>> sorted(polynomial((m.x + 2 * m.y) ** 2, index).items())
[((0, 0), 1.0), ((0, 1), 4.0), ((1, 1), 4.0)]
>>> parts = objective_parts(3 * (m.x * m.y - 1) ** 2 + m.x + pyo.exp(m.y), index)
>>> [(w, sorted(p.items())) for w, p, _ in parts.squares], parts.remainder, len(parts.opaque)
([(3.0, [((), -1.0), ((0, 1), 1.0)])], {(0,): 1.0}, 1)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyomo.environ as pyo
from pyomo.core.expr import numeric_expr as ne
from pyomo.core.expr.numvalue import native_numeric_types

Monomial = tuple[int, ...]
Poly = dict[Monomial, float]

#: Largest integer power expanded (``x**k`` with a larger ``k`` is not treated as a polynomial).
MAX_POWER = 8


class NotPolynomial(Exception):
    """An expression that is not a polynomial in the model's variables (``exp``, ``x / y``, ``x**0.5``...)."""


def _number(e) -> float | None:
    """``e``'s value when it is a number without walking it (a constant, parameter, expression of
    parameters, or fixed variable); ``None`` otherwise (it may still turn out constant when expanded)."""
    if type(e) in native_numeric_types:
        return float(e)
    if e.is_variable_type():
        return float(e.value) if e.fixed else None
    if not e.is_potentially_variable():
        return float(pyo.value(e))
    return None


def _free_position(e, index: Mapping[int, int]) -> int | None:
    """The position of ``e`` when it is a variable that is not fixed, else ``None``."""
    if type(e) in native_numeric_types or not e.is_variable_type() or e.fixed:
        return None
    return index.get(id(e))


def _constant(p: Poly, what) -> float:
    if any(p_key for p_key in p):
        raise NotPolynomial(f"{what} depends on variables")
    return p.get((), 0.0)


def _add(into: Poly, p: Poly, scale: float = 1.0) -> None:
    for k, v in p.items():
        into[k] = into.get(k, 0.0) + scale * v


def _mul(a: Poly, b: Poly) -> Poly:
    if len(a) == 1 and () in a:
        return {k: a[()] * v for k, v in b.items()}
    if len(b) == 1 and () in b:
        return {k: b[()] * v for k, v in a.items()}
    out: Poly = {}
    for ka, va in a.items():
        for kb, vb in b.items():
            k = tuple(sorted(ka + kb))
            out[k] = out.get(k, 0.0) + va * vb
    return out


def _power(k: float) -> int:
    """An exponent as a small nonnegative integer, or NotPolynomial."""
    if k < 0 or k != int(k) or k > MAX_POWER:
        raise NotPolynomial(f"exponent {k} is not an integer in [0, {MAX_POWER}]")
    return int(k)


def polynomial(expr, index: Mapping[int, int]) -> Poly:
    """``expr`` expanded into ``{monomial: coefficient}``; ``index`` maps ``id(VarData)`` to positions.

    Raises
    ------
    NotPolynomial
        When ``expr`` is not a polynomial in the variables that are not fixed.
    """
    num = _number(expr)
    if num is not None:
        return {(): num}
    if expr.is_variable_type():
        try:
            return {(index[id(expr)],): 1.0}
        except KeyError:
            raise NotPolynomial(f"variable {expr.name} is not one of the model's variables") from None
    if expr.is_named_expression_type():
        return polynomial(expr.expr, index)
    if isinstance(expr, ne.SumExpression):
        out: Poly = {}
        for a in expr.args:
            _add(out, polynomial(a, index))
        return out
    if type(expr) is ne.ProductExpression:  # fast path: a product of two variables (least-squares models)
        a, b = expr.args
        ia, ib = _free_position(a, index), _free_position(b, index)
        if ia is not None and ib is not None:
            return {(ia, ib) if ia <= ib else (ib, ia): 1.0}
    if isinstance(expr, ne.NegationExpression):
        return {k: -v for k, v in polynomial(expr.args[0], index).items()}
    if isinstance(expr, ne.ProductExpression):  # MonomialTermExpression included
        a, b = expr.args
        return _mul(polynomial(a, index), polynomial(b, index))
    if isinstance(expr, ne.DivisionExpression):
        d = _constant(polynomial(expr.args[1], index), f"the denominator of {expr}")
        return {k: v / d for k, v in polynomial(expr.args[0], index).items()}
    if isinstance(expr, ne.PowExpression):
        base, exponent = expr.args
        e = _constant(polynomial(exponent, index), f"the exponent of {expr}")
        p = polynomial(base, index)
        if not any(p_key for p_key in p):
            return {(): p.get((), 0.0) ** e}
        k = _power(e)
        out = {(): 1.0}
        for _ in range(k):
            out = _mul(out, p)
        return out
    raise NotPolynomial(f"{type(expr).__name__} is not a polynomial operation: {expr}")


@dataclass
class ObjectiveParts:
    """An objective as ``Σ wₖ pₖ² + remainder + Σ opaque``, in the minimised sense.

    ``squares`` holds ``(w, p, term)`` with ``w > 0`` (a square with a negative weight is
    expanded into the remainder: only nonnegative squares are convex whatever the other
    blocks hold); ``opaque`` holds ``(scale, expr)`` for the terms that are not polynomials.
    """

    squares: list[tuple[float, Poly, Any]] = field(default_factory=list)
    remainder: Poly = field(default_factory=dict)
    opaque: list[tuple[float, Any]] = field(default_factory=list)


def objective_parts(expr, index: Mapping[int, int], scale: float = 1.0) -> ObjectiveParts:
    """Split ``scale * expr`` into weighted squares, a polynomial remainder and opaque terms.

    Sums, negations, products with and divisions by numbers are distributed; a power 2 of
    a polynomial is kept as a square (never expanded into its cross products).
    """
    parts = ObjectiveParts()
    stack = [(expr, float(scale))]
    while stack:
        e, s = stack.pop()
        if s == 0.0:
            continue
        if _number(e) is None:
            if e.is_named_expression_type():
                stack.append((e.expr, s))
                continue
            if isinstance(e, ne.SumExpression):
                stack.extend((a, s) for a in reversed(e.args))
                continue
            if isinstance(e, ne.NegationExpression):
                stack.append((e.args[0], -s))
                continue
            if isinstance(e, ne.ProductExpression):
                a, b = e.args
                va, vb = _number(a), _number(b)
                if va is not None or vb is not None:
                    stack.append((b, s * va) if va is not None else (a, s * vb))
                    continue
            if isinstance(e, ne.DivisionExpression) and _number(e.args[1]) is not None:
                stack.append((e.args[0], s / _number(e.args[1])))
                continue
            if isinstance(e, ne.PowExpression) and _number(e.args[1]) == 2:
                try:
                    p = polynomial(e.args[0], index)
                except NotPolynomial:
                    parts.opaque.append((s, e))
                    continue
                if s > 0 and any(p_key for p_key in p):
                    parts.squares.append((s, p, e))
                else:
                    _add(parts.remainder, _mul(p, p), s)
                continue
        try:
            _add(parts.remainder, polynomial(e, index), s)
        except NotPolynomial:
            parts.opaque.append((s, e))
    return parts


class MonomialTable:
    """Monomials of many polynomials (rows) as padded arrays.

    ``row[i]`` is the polynomial monomial ``i`` belongs to, ``coef[i]`` its coefficient and
    ``vars[i]`` its variables' positions, padded with ``pad`` (the position of a constant 1
    appended to the point: see :meth:`values`).
    """

    def __init__(self, polys: list[Poly], n_vars: int):
        self.n_rows = len(polys)
        self.pad = n_vars
        rows, coefs, monos = [], [], []
        for r, p in enumerate(polys):
            for k, v in p.items():
                rows.append(r)
                coefs.append(v)
                monos.append(k)
        width = max((len(k) for k in monos), default=0)
        self.row = np.asarray(rows, dtype=np.int64)
        self.coef = np.asarray(coefs, dtype=float)
        self.vars = np.full((len(monos), width), n_vars, dtype=np.int64)
        for i, k in enumerate(monos):
            self.vars[i, : len(k)] = k
        self._columns = [np.ascontiguousarray(col) for col in self.vars.T]

    def __len__(self) -> int:
        return int(self.row.size)

    def values(self, xe: np.ndarray) -> np.ndarray:
        """Each monomial's value at the point ``xe`` (the flat point with a trailing 1)."""
        return products(self.coef, self._columns, xe)

    def evaluate(self, xe: np.ndarray) -> np.ndarray:
        """Each polynomial's value at ``xe``."""
        return np.bincount(self.row, self.values(xe), minlength=self.n_rows)


def products(coef: np.ndarray, columns: list[np.ndarray], xe: np.ndarray) -> np.ndarray:
    """``coef * Π xe[column]``: monomial values, one gather and multiply per factor (faster than a
    ``prod`` over a short axis)."""
    out = coef.copy()
    for col in columns:
        out *= xe[col]
    return out


def extend(x: np.ndarray) -> np.ndarray:
    """The flat point with the constant 1 that pads monomials appended."""
    return np.append(np.asarray(x, dtype=float), 1.0)


__all__ = ["Monomial", "Poly", "NotPolynomial", "polynomial", "ObjectiveParts", "objective_parts", "MonomialTable",
           "products", "extend"]
