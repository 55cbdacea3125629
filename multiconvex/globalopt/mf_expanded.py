"""The factorization objective from its expansion, with a proven rounding bound (THEORY.md §6).

.. math::

    f(U, V) = ½‖Y − UVᵀ‖² + (λ/2)(‖U‖² + ‖V‖²)
            = ½‖Y‖² − ⟨U, YV⟩ + ½⟨UᵀU, VᵀV⟩ + (λ/2)(tr UᵀU + tr VᵀV)

needs no ``m × n`` pass once ``YV`` (or ``YᵀU``, since ``⟨U, YV⟩ = ⟨V, YᵀU⟩``) is known — and a block step
computes it anyway, as the right-hand side of its ridge regression. It cancels where the fit is good
(``f ≪ ½‖Y‖²``), so :class:`FactorizationValues` returns it *with* a proven bound on its rounding error, and the
caller uses it only where that bound is far below its tolerance (the residual otherwise).

**Error analysis** (``u = 2⁻⁵³``, ``γ_d = d u / (1 − d u)``; Higham, *Accuracy and Stability*, §3.1–3.5). A sum
of products in which every term passes through at most ``d`` roundings (its own product and the additions
that carry it), in any order and with or without fused multiply-adds, errs by at most ``γ_d`` times the same
sum in absolute values. The depths are kept short on purpose: long sums are cut into chunks
(:data:`CHUNK` terms, then sums of chunk sums, …: :func:`tree_sum`), and the products with ``Y`` and the Gram
matrices accumulate chunks of :data:`PRODUCT_CHUNK` of the inner dimension (:func:`chunked_product`), so ``d``
is a few hundred where one BLAS call would give ``m`` or ``m k``.

1. ``c = ½‖Y‖²`` (once): dot products of :data:`CHUNK` entries, then a tree of their sums,
   ``|ĉ − c| ≤ γ_{CHUNK+d} c``.
2. ``W = fl(YV)`` with ``|W − YV| ≤ γ_{d_W} |Y||V|``, so ``|⟨U, W⟩ − ⟨U, YV⟩| ≤ γ_{d_W} ⟨|U|, |Y||V|⟩ ≤
   γ_{d_W} ‖|Y|‖₂ Σ_c ‖u_c‖‖v_c‖`` with ``‖|Y|‖₂ ≤ min(‖Y‖_F, √(‖Y‖₁‖Y‖_∞))``; the sum ``⟨U, W⟩`` itself (a
   tree over the ``m k`` products) adds ``γ_{1+d} Σ|U ∘ W|`` (the same for ``⟨V, YᵀU⟩``).
3. ``A = fl(UᵀU)``, ``B = fl(VᵀV)`` (chunked, depths ``d_A``, ``d_B``) and ``fl⟨A, B⟩`` (``k²`` terms):
   ``|fl⟨A, B⟩ − ⟨UᵀU, VᵀV⟩| ≤ γ_{d_A}⟨|U|ᵀ|U|, |B|⟩ + γ_{d_B}⟨|A|, |V|ᵀ|V|⟩ + γ_{k²}⟨|A|, |B|⟩ +
   γ_{d_A}γ_{d_B}⟨|U|ᵀ|U|, |V|ᵀ|V|⟩``, with the absolute Grams computed (non-negative sums: relative error
   ``γ_m``).
4. The traces: ``(γ_{d_A} + γ_k) tr(|U|ᵀ|U|)`` and likewise for ``V``.
5. The last few operations (``ĉ − p̂ + ½ĝ + (λ/2)(â + b̂)``): ``8 u`` times the sum of the magnitudes.

Underflow adds at most ``2⁻¹⁰⁷⁴`` per product (an absolute term over every product formed); the bound's
own arithmetic and every second-order term (``γ²``, computed Grams in place of exact ones) are covered by
a factor 1.01 on the total. Overflow or NaN anywhere gives an infinite bound (the caller then uses the
residual).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .spectral_bound import BOUND_SAFETY, SUBNORMAL_SPACING, UNIT_ROUNDOFF, gamma, round_up

__all__ = ["CHUNK", "GRAM_CHUNK", "PRODUCT_CHUNK", "FactorGram", "FactorizationValues", "chunked_product", "tree_sum"]

#: Terms per reduction of :func:`tree_sum` (each level adds at most ``CHUNK − 1`` roundings to a term).
CHUNK = 32
#: Inner-dimension chunk of :func:`chunked_product` for the products with ``Y`` (one BLAS call per chunk,
#: accumulated in order); the Gram matrices of the thin factors use :data:`GRAM_CHUNK`.
PRODUCT_CHUNK = 128
GRAM_CHUNK = 32


def tree_sum(x: np.ndarray) -> tuple[float, int]:
    """``Σ x`` by reductions over chunks of :data:`CHUNK`, repeated; returns ``(sum, depth)``.

    Every term passes through at most ``depth`` additions, so ``|ŝ − Σ x| ≤ γ_depth Σ|x|`` whatever
    order numpy adds a chunk in.

    Examples
    --------
    >>> tree_sum(np.ones(1000))
    (1000.0, 62)
    """
    v = np.ravel(x)
    depth = 0
    while v.size > 1:
        full = v.size - v.size % CHUNK
        parts = v[:full].reshape(-1, CHUNK).sum(axis=1)
        if full < v.size:
            parts = np.append(parts, v[full:].sum())
        v = parts
        depth += CHUNK - 1
    return (float(v[0]) if v.size else 0.0), depth


def chunked_product(A: np.ndarray, B: np.ndarray, chunk: int = PRODUCT_CHUNK) -> tuple[np.ndarray, int]:
    """``A @ B`` accumulated over chunks of ``chunk`` of the inner dimension; returns ``(product, depth)`` with
    ``|fl(AB) − AB| ≤ γ_depth |A||B|`` entrywise (``depth`` = chunk + chunks − 1)."""
    K = A.shape[1]
    if K <= chunk:
        return A @ B, max(K, 1)
    out = A[:, :chunk] @ B[:chunk]
    for j in range(chunk, K, chunk):
        out += A[:, j:j + chunk] @ B[j:j + chunk]
    return out, chunk + math.ceil(K / chunk) - 1


@dataclass(frozen=True)
class FactorGram:
    """``FᵀF`` of one factor as the values need it.

    Attributes
    ----------
    gram : ndarray (k, k)
        ``fl(FᵀF)`` by :func:`chunked_product` (also the ridge regression's matrix).
    depth : int
        Its rounding depth: ``|gram − FᵀF| ≤ γ_depth |F|ᵀ|F|``.
    abs_gram : ndarray (k, k)
        An upper bound on ``|F|ᵀ|F|`` (computed, then divided by ``1 − γ_rows``).
    trace : float
        ``fl(tr gram)``.
    trace_err : float
        A bound on ``|trace − ‖F‖²_F|``.
    """

    gram: np.ndarray
    depth: int
    abs_gram: np.ndarray
    trace: float
    trace_err: float

    @staticmethod
    def of(F: np.ndarray) -> FactorGram:
        gram, depth = chunked_product(F.T, F, GRAM_CHUNK)
        absF = np.abs(F)
        abs_gram = (absF.T @ absF) / (1.0 - gamma(max(F.shape[0], 1)))
        k = F.shape[1]
        trace = float(np.trace(gram))
        trace_err = (gamma(depth) + gamma(max(k, 1))) * float(np.trace(abs_gram)) * BOUND_SAFETY
        return FactorGram(gram, depth, abs_gram, trace, trace_err)

    @property
    def fro_up(self) -> float:
        """An upper bound on ``‖F‖_F``."""
        return round_up(math.sqrt(max(self.trace + self.trace_err, 0.0)))


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a is b or (a.shape == b.shape and np.array_equal(a, b))


class FactorizationValues:
    """``f(U, V)`` from the expansion, with a proven bound on its rounding error; remembers ``YV``, ``YᵀU`` and
    the Gram matrices of the last factors, which the ridge regressions of the block steps share.

    Parameters
    ----------
    Y : ndarray (m, n)
    lam : float

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> Y, U, V = rng.standard_normal((40, 30)), rng.standard_normal((40, 3)), rng.standard_normal((30, 3))
    >>> vals = FactorizationValues(Y, 0.5)
    >>> f, err = vals.value(U, V)
    >>> exact = 0.5 * np.sum((Y - U @ V.T) ** 2) + 0.25 * (np.sum(U**2) + np.sum(V**2))
    >>> bool(abs(f - exact) <= err < 1e-10 * exact)
    True
    """

    def __init__(self, Y: np.ndarray, lam: float):
        self.Y = Y
        self.lam = float(lam)
        self._norms: tuple[float, float, float] | None = None
        self._abs_norm: float | None = None
        self._yv: tuple[np.ndarray, np.ndarray, int] | None = None    # (V, fl(YV), depth)
        self._ytu: tuple[np.ndarray, np.ndarray, int] | None = None   # (U, fl(YᵀU), depth)
        self._grams: list[tuple[np.ndarray, FactorGram]] = []

    # -- what the block steps share -------------------------------------------------------------
    def YV(self, V: np.ndarray) -> tuple[np.ndarray, int]:
        """``(fl(YV), depth)``, remembered for the last ``V``."""
        if self._yv is not None and _same(self._yv[0], V):
            return self._yv[1], self._yv[2]
        W, d = chunked_product(self.Y, V)
        self._yv = (V.copy(), W, d)
        return W, d

    def YtU(self, U: np.ndarray) -> tuple[np.ndarray, int]:
        """``(fl(YᵀU), depth)``, remembered for the last ``U``."""
        if self._ytu is not None and _same(self._ytu[0], U):
            return self._ytu[1], self._ytu[2]
        W, d = chunked_product(self.Y.T, U)
        self._ytu = (U.copy(), W, d)
        return W, d

    def gram(self, F: np.ndarray) -> FactorGram:
        """:class:`FactorGram` of ``F``, remembered for the last four factors."""
        for G, g in self._grams:
            if _same(G, F):
                return g
        g = FactorGram.of(F)
        self._grams = [(F.copy(), g)] + self._grams[:3]
        return g

    def data_norms(self) -> tuple[float, float, float]:
        """``(fl(½‖Y‖²), its error bound, ‖Y‖_F upper bound)``, computed once: dot products of :data:`CHUNK`
        entries (by row chunks, no ``m × n`` temporary), then a tree of their sums."""
        if self._norms is None:
            Y = self.Y
            rows = max(1, (1 << 20) // max(Y.shape[1], 1))
            parts = []
            for i in range(0, Y.shape[0], rows):
                flat = np.ravel(Y[i:i + rows])
                full = flat.size - flat.size % CHUNK
                block = flat[:full].reshape(-1, CHUNK)
                parts.append(np.einsum("ij,ij->i", block, block))
                parts.append(np.array([float(np.dot(flat[full:], flat[full:]))]))
            s, depth = tree_sum(np.concatenate(parts))
            err = gamma(depth + CHUNK) * s * BOUND_SAFETY + Y.size * SUBNORMAL_SPACING
            self._norms = (0.5 * s, 0.5 * err, round_up(math.sqrt(s + err)))
        return self._norms

    def abs_norm(self) -> float:
        """An upper bound on ``‖|Y|‖₂``: ``min(‖Y‖_F, √(‖Y‖₁‖Y‖_∞))``, computed once (on first need)."""
        if self._abs_norm is None:
            Y = self.Y
            m, n = Y.shape
            rows = max(1, (1 << 20) // max(n, 1))
            col_abs = np.zeros(n)
            row_abs_max = 0.0
            for i in range(0, m, rows):
                A = np.abs(Y[i:i + rows])
                col_abs += A.sum(axis=0)
                row_abs_max = max(row_abs_max, float(A.sum(axis=1).max()))
            # non-negative sums: relative error at most γ_{m+n}
            holder = math.sqrt(float(col_abs.max()) * row_abs_max) * (1.0 + 2.0 * gamma(m + n))
            self._abs_norm = round_up(min(self.data_norms()[2], holder))
        return self._abs_norm

    # -- the value --------------------------------------------------------------------------------
    def value(self, U: np.ndarray, V: np.ndarray, need: float | None = None) -> tuple[float, float]:
        """``(f̂, bound)`` with ``|f̂ − f(U, V)| ≤ bound`` (``bound = inf`` on overflow or NaN).

        Uses ``YᵀU`` when it is remembered for this ``U``, else ``YV`` (computed and remembered: the next
        ``U`` step needs it). ``‖|Y|‖₂`` is bounded by ``‖Y‖_F``; where that bound exceeds ``need × |f̂|``
        the tighter :meth:`abs_norm` (one more pass over ``Y``, once) is tried.
        """
        m, n = self.Y.shape
        k = U.shape[1]
        c, c_err, nu = self.data_norms()
        if self._ytu is not None and _same(self._ytu[0], U):
            F, (W, w_depth) = V, self.YtU(U)
        else:
            F, (W, w_depth) = U, self.YV(V)
        gu, gv = self.gram(U), self.gram(V)
        prod = F * W
        p, p_depth = tree_sum(prod)
        p_abs = tree_sum(np.abs(prod))[0] / (1.0 - gamma(p_depth + 1))
        g = float(np.vdot(gu.gram, gv.gram))
        abs_a, abs_b = np.abs(gu.gram), np.abs(gv.gram)
        g_k2 = 1.0 / (1.0 - gamma(k * k + 1))   # non-negative k² sums
        cross = (gamma(gu.depth) * float(np.vdot(gu.abs_gram, abs_b))
                 + gamma(gv.depth) * float(np.vdot(abs_a, gv.abs_gram))
                 + gamma(k * k) * float(np.vdot(abs_a, abs_b))
                 + gamma(gu.depth) * gamma(gv.depth) * float(np.vdot(gu.abs_gram, gv.abs_gram))) * g_k2
        cross_abs = float(np.vdot(gu.abs_gram, gv.abs_gram)) * g_k2
        # Σ_c ‖u_c‖‖v_c‖ ≥ ⟨|U|, |Y||V|⟩ / ‖|Y|‖₂ (Cauchy–Schwarz per column)
        uv = float(np.sqrt(np.diagonal(gu.abs_gram) * np.diagonal(gv.abs_gram)).sum()) * (1.0 + gamma(k + 1))
        pen = gu.trace + gv.trace
        f = c - p + 0.5 * g + (0.5 * self.lam) * pen
        rest = (c_err + gamma(p_depth + 1) * p_abs + 0.5 * cross
                + 0.5 * abs(self.lam) * (gu.trace_err + gv.trace_err)
                + 8 * UNIT_ROUNDOFF * (abs(c) + p_abs + cross_abs + abs(self.lam) * pen)
                + 4.0 * (m * n * k + (m + n) * k * k) * SUBNORMAL_SPACING)
        err = round_up((rest + gamma(w_depth) * nu * uv) * BOUND_SAFETY)
        if need is not None and err > need * abs(f):
            err = round_up((rest + gamma(w_depth) * self.abs_norm() * uv) * BOUND_SAFETY)
        if not (math.isfinite(f) and math.isfinite(err)):
            return f, math.inf
        return f, err
