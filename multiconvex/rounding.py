"""Floating-point rounding bounds shared by every proof that allows for its own arithmetic.

``u = 2⁻⁵³`` is the unit roundoff of IEEE double precision and ``γ_k = k·u / (1 − k·u)`` the relative error bound of
``k`` floating-point operations in a row (Higham, *Accuracy and Stability of Numerical Algorithms*, §3.1, §3.4): a
dot product of ``k`` terms summed one after another, as BLAS does, is within ``γ_k`` of the exact one relative to the
sum of the terms' magnitudes. Also the pieces such proofs share: a vector with the radius of its rounding
(:class:`MidpointRadius`), an upper bound of ``vᵀP⁻¹v`` that does not trust the computed factor
(:func:`inverse_quadratic_upper`) and a proven lower bound of ``λ_min(P)`` (:func:`min_eigenvalue_floor`).

Used by the global certificates (:mod:`multiconvex.globalopt.spectral_bound` and its users), the Newton blocks' dual
bound (:mod:`multiconvex.solvers.newton_qp`) and the bound over every adjacent piece (:mod:`multiconvex.nets.adjacent`
and the modules it draws on).

>>> gamma(2) == 2 * UNIT_ROUNDOFF / (1 - 2 * UNIT_ROUNDOFF)
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.linalg

__all__ = ["UNDERFLOW", "UNIT_ROUNDOFF", "MidpointRadius", "gamma", "inverse_quadratic_upper",
           "inverse_quadratic_upper_rows", "min_eigenvalue_floor", "norm_upper"]

#: ``u = 2⁻⁵³``, the unit roundoff of IEEE double precision.
UNIT_ROUNDOFF = 2.0**-53

#: ``η = 2⁻¹⁰⁷⁴``, the smallest subnormal: a product's absolute error where it underflows (Higham §2.1).
UNDERFLOW = 2.0**-1074

#: Below this scale (``2⁻⁹⁶²``, 2⁶⁰ above the smallest normal number) :func:`min_eigenvalue_floor` proves nothing: a
#: review found its floor above ``λ_min`` for matrices of scale 1e-310.
_TINY = 2.0**-962


def gamma(k: int) -> float:
    """``γ_k = k u / (1 − k u)`` (Higham §3.4); ``inf`` when ``k u ≥ 1``."""
    ku = k * UNIT_ROUNDOFF
    return ku / (1.0 - ku) if ku < 1.0 else math.inf


@dataclass(frozen=True)
class MidpointRadius:
    """A vector known up to its rounding: the exact vector lies within ``radius`` of ``value``, entry by entry (the
    midpoint-radius form of interval arithmetic).

    >>> import numpy as np
    >>> g = MidpointRadius.exact(np.array([1e16, 1.0]))
    >>> moved = g.plus(np.array([[1.0, 0.0]]), np.array([1.0]))  # 1e16 + 1 rounds to 1e16
    >>> bool(moved.value[0] == 1e16 and moved.radius[0] >= 1.0)
    True
    """

    value: np.ndarray
    radius: np.ndarray

    @classmethod
    def exact(cls, value: np.ndarray) -> MidpointRadius:
        """A vector held exactly (radius 0)."""
        return cls(value, np.zeros_like(value))

    def plus(self, A: np.ndarray, x: np.ndarray) -> MidpointRadius:
        """``value + Aᵀx`` (``A`` (m, c), ``x`` (m,)) with the radius grown by that sum's rounding,
        ``γ_{m+2}·(|value| + |A|ᵀ|x|)`` (a dot product of ``m`` terms plus one addition, in any order), the margins'
        own rounding included, and ``m·η`` where a product is not exactly 0 (it may underflow)."""
        m = A.shape[0]
        abs_A, abs_x = np.abs(A), np.abs(x)
        products = abs_A.T @ abs_x
        moved = (abs_A.T @ (abs_x > 0)) > 0  # some product a_ij·x_i is not exactly 0 (it may underflow to 0)
        bump = gamma(m + 2) * (np.abs(self.value) + products) + np.where(moved, (m + 2) * UNDERFLOW, 0.0)
        return MidpointRadius(self.value + A.T @ x, (self.radius + bump) * (1.0 + gamma(m + 4)))


def inverse_quadratic_upper(P: np.ndarray, factor: tuple, v: np.ndarray, floor: float) -> float:
    """An upper bound of ``vᵀP⁻¹v`` for a symmetric ``P`` whose smallest eigenvalue is at least ``floor > 0``, valid
    in floating point.

    For any ``y`` and ``e = v − Py``, ``vᵀP⁻¹v = vᵀy + yᵀe + eᵀP⁻¹e ≤ vᵀy + |y|ᵀ|e| + ‖e‖²/floor``; ``y`` is the
    solve with ``factor`` (a ``scipy.linalg.cho_factor`` of ``P``), which only chooses it: nothing here takes the
    computed factor for exact. Each term is evaluated with its rounding: ``|e|`` within ``|ê| + γ_{c+1}(|P||y| +
    |v|)``, ``vᵀy`` within ``γ_c|v|ᵀ|y|``, each product with an absolute :data:`UNDERFLOW` besides (a review's
    ``v = 1e-170`` had ``vᵀy`` underflow to 0), and ``‖e‖²/floor`` as ``‖e/√floor‖²`` (``e²`` underflowed where
    ``P`` was subnormal). ``inf`` when ``floor ≤ 0`` and ``v ≠ 0``.

    >>> import numpy as np, scipy.linalg
    >>> P = np.array([[2.0, 1.0], [1.0, 2.0]]); v = np.array([1.0, 0.0])
    >>> exact = 2.0 / 3.0
    >>> exact <= inverse_quadratic_upper(P, scipy.linalg.cho_factor(P), v, 1.0) <= exact * (1 + 1e-14)
    True
    """
    return float(inverse_quadratic_upper_rows(P, factor, np.asarray(v)[None, :], floor)[0])


def inverse_quadratic_upper_rows(P: np.ndarray, factor: tuple, V: np.ndarray, floor: float) -> np.ndarray:
    """:func:`inverse_quadratic_upper` of each row ``v`` of ``V`` (``k × c``), one triangular solve and one product
    with ``P`` for all of them: the same terms and margins per row (each inner product's ``γ`` holds for any order of
    its sums, so for BLAS's matrix products as for one vector's). A row of zeros gives 0, ``inf`` a nonzero row
    when ``floor ≤ 0``.

    >>> import numpy as np, scipy.linalg
    >>> P = np.array([[2.0, 1.0], [1.0, 2.0]])
    >>> bounds = inverse_quadratic_upper_rows(P, scipy.linalg.cho_factor(P), np.array([[1.0, 0.0], [0.0, 0.0]]), 1.0)
    >>> bool(2.0 / 3.0 <= bounds[0] <= 2.0 / 3.0 * (1 + 1e-14)), float(bounds[1])
    (True, 0.0)
    """
    V = np.asarray(V, dtype=float)
    nonzero = np.any(V != 0, axis=1)
    out = np.zeros(V.shape[0])
    if not nonzero.any():
        return out
    if not floor > 0:
        out[nonzero] = math.inf
        return out
    c = V.shape[1]
    eta = (c + 4) * UNDERFLOW
    Vt = V[nonzero].T  # c × k': one column per row to bound
    Y = scipy.linalg.cho_solve(factor, Vt)
    abs_Y, abs_V = np.abs(Y), np.abs(Vt)
    E_hi = (np.abs(Vt - P @ Y) + gamma(c + 1) * (np.abs(P) @ abs_Y + abs_V) + 2 * eta) * (1.0 + gamma(c + 4))
    scaled = E_hi / math.sqrt(floor) * (1.0 + gamma(3))
    vy = np.sum(Vt * Y, axis=0)
    margins = (gamma(c) * np.sum(abs_V * abs_Y, axis=0) + np.sum(abs_Y * E_hi, axis=0) + np.sum(scaled * scaled, axis=0)
               + 3 * eta) * (1.0 + gamma(c + 2))
    out[nonzero] = (vy + margins) + gamma(4) * (np.abs(vy) + margins) + 4 * UNDERFLOW
    return out


def min_eigenvalue_floor(P: np.ndarray) -> float:
    """A proven lower bound of the smallest eigenvalue of a symmetric ``P``; ``0.0`` where none above 0 is proven.

    Rump's verification of positive definiteness (*BIT* 46, 2006): where the floating-point Cholesky factorisation
    of ``A = fl(P − σI)`` runs to completion, ``R̂ᵀR̂ = A + ΔA`` with ``|ΔA_ij| ≤ γ_{c+1}/(1 − γ_{c+1})·√(a_ii a_jj)``
    (Demmel; Higham, *Accuracy and Stability*, Thm 10.5, for any order of the inner products, underflow aside), so
    ``‖ΔA‖₂ ≤ γ_{c+1}/(1 − γ_{c+1})·tr A`` and ``λ_min(P) ≥ σ − ‖ΔA‖₂ − u·max a_ii`` (the shift's own rounding),
    less Rump's underflow term ``4c(2(c + 2) + max a_ii)·η``. ``σ`` is a fraction of the computed smallest
    eigenvalue (0.9, then 0.5); nothing is proven for a ``σ`` within 2⁶⁰ of the underflow threshold.

    >>> import numpy as np
    >>> 0.85 < min_eigenvalue_floor(np.diag([1.0, 3.0])) <= 1.0
    True
    """
    if P.shape[0] == 0 or not np.all(np.isfinite(P)):
        return 0.0
    estimate = float(np.linalg.eigvalsh(P)[0])
    if not estimate > 0:
        return 0.0
    c = P.shape[0]
    g = gamma(c + 1)
    for share in (0.9, 0.5):
        sigma = share * estimate
        if sigma < _TINY:
            break
        A = P - sigma * np.eye(c)
        try:
            scipy.linalg.cholesky(A, lower=True)
        except np.linalg.LinAlgError:
            continue
        diag = np.diagonal(A)
        spread = (g / (1.0 - g) * float(np.sum(diag)) * (1.0 + gamma(c + 2)) + UNIT_ROUNDOFF * float(diag.max())
                  + 4 * c * (2 * (c + 2) + float(diag.max())) * UNDERFLOW)
        floor = sigma * (1.0 - UNIT_ROUNDOFF) - spread * (1.0 + UNIT_ROUNDOFF)
        if floor > 0:
            return floor
    return 0.0


def norm_upper(x: np.ndarray) -> float:
    """An upper bound of the Euclidean norm of ``x``, scaled by its largest entry so that no square underflows
    (``‖x‖ = s·‖x/s‖``, ``s = max|x|``), with the rounding of the sum and the square root.

    >>> norm_upper(np.array([3e-170, 4e-170])) >= 5e-170
    True
    """
    s = float(np.max(np.abs(x))) if x.size else 0.0
    if s == 0.0:
        return 0.0
    scaled = x / s
    n = x.shape[0]
    return s * math.sqrt(float(scaled @ scaled) * (1.0 + gamma(n + 2)) + n * UNDERFLOW) * (1.0 + gamma(4))
