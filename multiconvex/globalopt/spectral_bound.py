"""A proven upper bound on the largest singular value of a floating-point matrix (THEORY.md §6).

``σ_max(G) ≤ ρ`` holds iff ``ρ² I − GᵀG ⪰ 0``. Lanczos finds *a* singular value; whether it is the
largest rests on its random start. This module turns an estimate ``σ`` into a proof: it forms the
Gram matrix ``C = GᵀG`` on the smaller side and runs a floating-point Cholesky factorization of
``A = s I − C`` with ``s = σ²(1 + η)``. If the factorization succeeds, rounding error analysis bounds
how far ``A`` may be from positive semidefinite, and the bound is inflated by exactly that much.

**Error analysis** (``u = 2⁻⁵³`` the unit roundoff, ``γ_k = k u / (1 − k u)``; Higham, *Accuracy and
Stability of Numerical Algorithms*, 2nd ed., §3.5 and Thm 10.3). ``G`` is first scaled by a power of
two (exact) so its largest entry lies in ``[½, 1)``: no overflow, and underflow is covered by an
absolute term. With ``B = GᵀG`` exactly (``G`` the array as stored: the certificate uses this very
array) and ``G`` of shape ``m × n``, ``n ≤ m``:

1. *forming the Gram matrix*: every entry is a dot product of length ``m``, so, in any summation
   order and with or without fused multiply-adds, ``|fl(B) − B| ≤ γ_m |G|ᵀ|G|`` entrywise, and
   ``‖C − B‖₂ ≤ γ_m ‖|G|‖₂² ≤ γ_m ‖G‖²_F =: e₁``;
2. *forming the shifted matrix*: only the diagonal is rounded, ``|A_ii − (s − C_ii)| ≤ u|s − C_ii|``,
   so ``‖A − (sI − C)‖₂ ≤ u · maxᵢ |s − C_ii| =: e₂``;
3. *Cholesky*: when it runs to completion the computed factor satisfies ``R̂ᵀR̂ = A + ΔA`` with
   ``|ΔA| ≤ γ_{n+1} |R̂|ᵀ|R̂|`` (Thm 10.3; it holds for LAPACK's blocked factorization, which forms the
   same inner products in another order), so ``‖ΔA‖₂ ≤ γ_{n+1}‖R̂‖²_F``; and since
   ``‖R̂‖²_F = tr(A + ΔA) ≤ tr A + γ_{n+1}‖R̂‖²_F``, ``e₃ := γ_{n+1} tr A / (1 − γ_{n+1})`` bounds it.

``R̂ᵀR̂ ⪰ 0`` then gives ``A ⪰ −ΔA``, i.e. ``C ⪯ (s + e₂ + e₃) I`` and ``B ⪯ (s + e₁ + e₂ + e₃) I``:
``σ_max(G)² ≤ s + e₁ + e₂ + e₃``. The code doubles every error term and rounds the final sum and
square root upward by a few ulps, so the rounding of the bound's own arithmetic is covered too.
The relative size of the margin is ``≈ (m + n²)u`` — ``4e-10`` at ``n = 2000`` — far below any
tolerance a certificate compares with. The cost is one ``n × n`` Gram product and one Cholesky
factorization, a fraction of an SVD.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.linalg import lapack

from ..rounding import UNIT_ROUNDOFF, gamma  # re-exported: the certificates import them from here

__all__ = ["SpectralBound", "prove_spectral_bound", "UNIT_ROUNDOFF", "SUBNORMAL_SPACING", "BOUND_SAFETY", "gamma",
           "round_up"]

#: ``2⁻¹⁰⁷⁴``, the subnormal spacing: what one product may lose absolutely to underflow.
SUBNORMAL_SPACING = 2.0**-1074
#: The factor on a rounding-error bound that covers the bound's own arithmetic and its second-order terms.
BOUND_SAFETY = 1.01
_TINY = 2.0**-1022  # smallest normal number: each product below it may lose this much absolutely


def round_up(x: float, ulps: int = 4) -> float:
    """``x`` rounded upward by ``ulps`` units in the last place (covers the rounding of the bound's own sums)."""
    for _ in range(ulps):
        x = math.nextafter(x, math.inf)
    return x


@dataclass(frozen=True)
class SpectralBound:
    """Outcome of :func:`prove_spectral_bound`.

    Attributes
    ----------
    proven : bool
        True when the Cholesky test succeeded: ``σ_max(G) ≤ upper`` is then a theorem about the stored
        array ``G``.
    upper : float
        The proven bound (``inf`` when not proven).
    shift : float
        The trial value ``√s`` whose Cholesky test was run last (in the scale of ``G``).
    margin : float
        ``upper / √s − 1``: how much the rounding analysis added, relatively.
    """

    proven: bool
    upper: float
    shift: float
    margin: float


def gram_smaller_side(G: np.ndarray) -> tuple[np.ndarray, int]:
    """``(C, e)``: ``C = fl(Hᵀ H)`` for ``H = 2ᵉ G`` (or ``2ᵉ Gᵀ``, whichever gives the smaller ``C``), with
    the power of two ``e`` chosen so that ``max |H| ∈ [½, 1)``; ``σ(G) = 2⁻ᵉ σ(H)`` exactly."""
    H = G if G.shape[0] >= G.shape[1] else G.T
    amax = max(float(H.max()), -float(H.min())) if H.size else 0.0   # = max|H| without an m × n temporary
    e = -math.frexp(amax)[1] if amax > 0 else 0
    H = np.ldexp(H, e) if e else H
    # one call: numpy hands ``Hᵀ H`` of a single buffer to BLAS syrk (half the flops of a general product)
    return H.T @ H, e


def prove_spectral_bound(G: np.ndarray, sigma: float, *, eta: float = 1e-10,
                         gram: tuple[np.ndarray, int] | None = None) -> SpectralBound:
    """Prove ``σ_max(G) ≤ ρ`` with ``ρ ≈ σ √(1 + η)`` by a Cholesky test, or report that it failed.

    Parameters
    ----------
    G : ndarray (m, n)
        A finite matrix.
    sigma : float
        An estimate of ``σ_max(G)`` (e.g. from Lanczos). The test is run at ``s = σ²(1 + η)``.
    eta : float
        Relative room above the estimate; it must exceed the Cholesky rounding level ``≈ n u`` or a
        correct estimate fails the test. The caller may retry with a larger ``eta``.
    gram : (C, e), optional
        :func:`gram_smaller_side` of ``G``, to reuse across retries.

    Returns
    -------
    SpectralBound
        ``proven=False`` when the factorization broke down (the estimate is below ``σ_max`` by more than
        ``η``, or ``η`` is below the rounding level).

    Examples
    --------
    >>> import numpy as np
    >>> b = prove_spectral_bound(np.diag([3.0, 1.0]), 3.0)
    >>> b.proven, 3.0 <= b.upper <= 3.0 * (1 + 1e-9)
    (True, True)
    >>> prove_spectral_bound(np.diag([3.0, 1.0]), 2.9).proven
    False
    """
    G = np.asarray(G, dtype=float)
    if G.size == 0 or not (math.isfinite(float(G.max())) and math.isfinite(float(G.min()))):  # NaN propagates
        return SpectralBound(False, math.inf, float(sigma), math.inf)
    C, e = gram if gram is not None else gram_smaller_side(G)
    n = C.shape[0]
    m = max(G.shape)
    if not np.any(C):
        # max|H| ≥ ½ for a nonzero G: an all-zero Gram means G = 0 (σ_max = 0 exactly)
        if not np.any(G):
            return SpectralBound(True, 0.0, 0.0, 0.0)
        return SpectralBound(False, math.inf, float(sigma), math.inf)
    sig_h = math.ldexp(float(sigma), e)  # the estimate in the scale of H = 2^e G
    s = sig_h * sig_h * (1.0 + eta)
    if not (math.isfinite(s) and s > 0):
        return SpectralBound(False, math.inf, float(sigma), math.inf)
    diag = np.diagonal(C).copy()
    A = np.negative(C.T)   # C is symmetric: its transpose is Fortran-ordered, which LAPACK factors in place
    A[np.diag_indices(n)] = s - diag
    tr_a = float(np.sum(np.abs(np.diagonal(A))))
    _, info = lapack.dpotrf(A, lower=0, overwrite_a=1, clean=0)
    if info != 0:
        return SpectralBound(False, math.inf, math.ldexp(math.sqrt(s), -e), math.inf)
    fro2 = float(np.sum(diag))  # ‖H‖²_F (the diagonal of the Gram: sums of squares, each within γ_m)
    g_n1 = gamma(n + 1)
    e1 = gamma(m) * fro2 * (1.0 + gamma(n)) + m * n * _TINY      # forming C (+ underflow)
    e2 = UNIT_ROUNDOFF * float(np.max(np.abs(s - diag)))            # rounding the diagonal of A
    e3 = g_n1 * tr_a * (1.0 + gamma(n)) / (1.0 - g_n1)             # the Cholesky backward error
    bound2 = round_up(s + 2.0 * (e1 + e2 + e3), 8)
    upper_h = round_up(math.sqrt(bound2), 4)
    upper = round_up(math.ldexp(upper_h, -e), 2)  # ldexp is exact unless the result is subnormal
    return SpectralBound(True, upper, math.ldexp(math.sqrt(s), -e), upper_h / math.sqrt(s) - 1.0)
