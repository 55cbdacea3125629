"""A proven bound on ``σ_max(G)`` from an estimated top subspace, without the ``n × n`` Gram matrix (THEORY.md §6).

:mod:`.spectral_bound` proves ``σ_max(G) ≤ ρ`` by a Cholesky test of ``ρ²I − GᵀG``: one ``m n²`` Gram product,
more work than estimating the top of the spectrum. Where the estimate left a *gap* — the top singular values
well above the rest, as at the factorization's optimum, where the top values of the residual equal λ and the
rest is noise — a split proves the same thing with a few products of width ``p``:

Let ``Q`` (``n × p``, nearly orthonormal) span the estimated top right singular vectors, ``Z = fl(GQ)`` and
``H = G − ZQᵀ`` (exactly, with the computed ``Z``), so that ``G = ZQᵀ + H``. With ``Π`` the orthogonal projector
onto ``range(Q)`` and, for a unit ``x``, ``t = ‖Πx‖``, ``r = ‖(I − Π)x‖`` (``t² + r² = 1``),
``Gx = Z(Qᵀx) + Hx`` and

.. math::

    ‖Gx‖² ≤ (z' + h)² t² + 2 (c' + η h) t r + η² r²  ≤  λ_max\\begin{pmatrix} (z' + h)² & c' + ηh \\\\
    c' + ηh & η² \\end{pmatrix}

where ``s ≥ ‖QᵀQ − I‖``, ``z' = ‖Z‖√(1 + s)`` (``‖Qᵀx‖ ≤ ‖Q‖ t``), ``h ≥ ‖HΠ‖`` (``HQ = (GQ − Z) − Z(QᵀQ − I)``
is rounding-sized: ``h ≤ (γ_n‖G‖_F‖Q‖_F + ‖Z‖ s)/√(1 − s)``), ``c' = √(1 + s) c`` with
``c ≥ ‖ZᵀH(I − Π)‖ = ‖ZᵀG(I − Π)‖ ≤ ‖ZᵀG − MQᵀ‖_F`` for any ``M`` (the Rayleigh–Ritz residual: small where
the subspace has converged, and it enters only squared, ``≈ c²/(z² − η²)``), and ``η ≥ ‖H‖``.

* ``‖Z‖`` (``m × p``) is proven by :func:`.spectral_bound.prove_spectral_bound` (a ``p × p`` Cholesky test);
* ``η`` needs only be *well below* ``‖Z‖``: the columns of ``H`` are cut into blocks ``H_j`` of width ``w``,
  ``‖H‖² ≤ Σ_j ‖H_j‖²`` (Cauchy–Schwarz over the blocks), and each ``‖H_j‖² ≤ ‖C_j‖₂ + γ_m ‖H_j‖²_F`` with
  ``C_j = fl(H_jᵀH_j)`` and ``‖C_j‖₂ ≤ √(‖C_j‖₁‖C_j‖_∞)`` — ``m n w`` flops, a fraction ``w/n`` of the Gram;
* every product is bounded by Higham's ``γ_d |A||B|`` (any summation order, with or without fused
  multiply-adds) in Frobenius norms; underflow adds ``2⁻¹⁰⁷⁴`` per product; ``G`` is scaled by a power of
  two when its entries are far from 1 (exact); the final arithmetic is rounded upward.

The result is a theorem about the stored ``G``, whatever ``Q`` is; a poor ``Q`` (no gap below it, an unconverged
subspace) only gives a loose bound, which the caller then replaces by the Gram test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .spectral_bound import SUBNORMAL_SPACING, UNIT_ROUNDOFF, gamma, prove_spectral_bound, round_up

__all__ = ["DeflatedBound", "deflated_spectral_bound", "BLOCK_WIDTHS"]

#: Column-block widths tried for the bound on the deflated rest ``‖H‖`` (wider: tighter, ``m n w`` flops).
BLOCK_WIDTHS = (32, 256)


@dataclass(frozen=True)
class DeflatedBound:
    """Outcome of :func:`deflated_spectral_bound`.

    Attributes
    ----------
    upper : float
        A proven ``≥ σ_max(G)`` (``inf`` when a step failed: ``Q`` far from orthonormal, overflow).
    top : float
        The proven ``‖Z‖`` part (``z' + h``): the bound on the estimated subspace.
    rest : float
        The proven ``η ≥ ‖H‖``: the bound on the rest of the spectrum.
    cross : float
        The coupling ``c' + η h``.
    width : int
        The block width that gave ``rest``.
    """

    upper: float
    top: float
    rest: float
    cross: float
    width: int


def _fro_up(A: np.ndarray) -> float:
    """An upper bound on ``‖A‖_F`` (a sum of squares errs by at most ``γ_{size}`` relatively)."""
    s = float(np.vdot(A, A))
    return round_up(math.sqrt(s * (1.0 + 2.0 * gamma(max(A.size, 1))) + A.size * SUBNORMAL_SPACING))


def _rest_bound(G: np.ndarray, Z: np.ndarray, Q: np.ndarray, w: int) -> tuple[float, float]:
    """``(η₀, F)``: proven ``‖Ĥ‖ ≤ η₀`` and ``‖Ĥ‖_F ≤ F`` for ``Ĥ = fl(G − fl(ZQᵀ))``, by column blocks of width
    ``w`` (module docstring), each block formed on its own (no ``m × n`` array)."""
    m, n = G.shape
    g_m = gamma(max(m, 1))
    total, fro2 = 0.0, 0.0
    for j in range(0, n, w):
        B = Z @ Q[j:j + w].T
        np.subtract(G[:, j:j + w], B, out=B)       # the block of Ĥ: the same roundings as the whole
        C = B.T @ B
        tr = float(np.trace(C)) / (1.0 - g_m) * (1.0 + gamma(w))   # ≥ ‖B‖²_F
        absC = np.abs(C)
        g_w = 1.0 + 2.0 * gamma(C.shape[0])
        norm_c = math.sqrt(float(absC.sum(axis=0).max()) * float(absC.sum(axis=1).max())) * g_w
        total += norm_c + g_m * tr + m * C.shape[0] * SUBNORMAL_SPACING
        fro2 += tr
    scale = 1.0 + 4.0 * gamma(max(n // w + 1, 1))   # the sums over blocks
    return round_up(math.sqrt(total * scale)), round_up(math.sqrt(fro2 * scale))


def _prove_norm(Z: np.ndarray) -> float:
    """A proven ``≥ ‖Z‖`` for a thin ``Z`` (its ``p × p`` Gram and a Cholesky test), ``inf`` if none."""
    est = float(np.linalg.svd(Z, compute_uv=False)[0]) if Z.size else 0.0
    eta = max(1e-14, 16.0 * (max(Z.shape) + min(Z.shape) ** 2) * UNIT_ROUNDOFF)
    for _ in range(3):
        b = prove_spectral_bound(Z, est, eta=eta)
        if b.proven:
            return b.upper
        eta *= 100.0
    return math.inf


def deflated_spectral_bound(G: np.ndarray, Q: np.ndarray, *, widths: tuple[int, ...] = BLOCK_WIDTHS,
                            target: float | None = None, rest_limit: float | None = None,
                            amax: float | None = None) -> DeflatedBound:
    """Prove ``σ_max(G) ≤ upper`` from right vectors ``Q`` spanning (about) the top right singular subspace.

    Parameters
    ----------
    G : ndarray (m, n)
        A finite matrix.
    Q : ndarray (n, p)
        Nearly orthonormal columns (the estimate's top right singular vectors). Only the bound's tightness
        depends on them.
    widths : tuple of int
        Block widths tried in turn for the rest (see the module docstring).
    target : float, optional
        Stop at the first width whose bound is at most this; without it, the first width is used.
    rest_limit : float, optional
        Give up (``upper = inf``, ``rest`` reported) when the bound on the rest exceeds this at every width,
        before the coupling's product is formed.
    amax : float, optional
        ``max |G|`` when the caller has it (saves two passes over ``G``); it must be exact.

    Returns
    -------
    DeflatedBound

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> A, _ = np.linalg.qr(rng.standard_normal((300, 300)))
    >>> B, _ = np.linalg.qr(rng.standard_normal((200, 200)))
    >>> s = np.r_[[5.0, 5.0, 4.0], rng.uniform(0, 0.5, 197)]
    >>> G = (A[:, :200] * s) @ B.T
    >>> b = deflated_spectral_bound(G, B[:, :3])
    >>> bool(5.0 <= b.upper <= 5.0 * (1 + 1e-12)), b.rest < 2.5
    (True, True)
    """
    G = np.asarray(G, dtype=float)
    Q = np.asarray(Q, dtype=float)
    inf = DeflatedBound(math.inf, math.inf, math.inf, math.inf, 0)
    if G.ndim != 2 or Q.ndim != 2 or Q.shape[0] != G.shape[1] or G.size == 0 or Q.shape[1] == 0:
        return inf
    if amax is None:
        amax = max(float(G.max()), -float(G.min()))
    if not math.isfinite(amax) or not np.all(np.isfinite(Q)):
        return inf
    if amax == 0.0:
        return DeflatedBound(0.0, 0.0, 0.0, 0.0, 0)
    e = -math.frexp(amax)[1]
    if abs(e) > 300:   # far from 1: scale (exactly) so that nothing over- or underflows needlessly
        G = np.ldexp(G, e)
    else:
        e = 0
    m, n = G.shape
    p = Q.shape[1]
    # s ≥ ‖QᵀQ − I‖
    S = Q.T @ Q - np.eye(p)
    fq = _fro_up(Q)
    s = round_up(_fro_up(S) * (1.0 + 2.0 * UNIT_ROUNDOFF) + gamma(n) * fq * fq)
    if not s < 0.5:
        return inf
    fg = _fro_up(G)
    Z = G @ Q
    fz = _fro_up(Z)
    z = _prove_norm(Z)
    if not math.isfinite(z):
        return inf
    under = m * n * p * SUBNORMAL_SPACING   # what underflow may cost any of the products below, in Frobenius norm
    h = round_up((gamma(n) * fg * fq + z * s + under) / math.sqrt(1.0 - s))
    top = round_up(z * math.sqrt(1.0 + s) + h)
    c = math.nan
    best = inf
    for w in widths:
        w = max(1, min(int(w), n))
        rest0, fh = _rest_bound(G, Z, Q, w)
        eta = round_up(rest0 + gamma(p) * fz * fq + UNIT_ROUNDOFF * fh / (1.0 - UNIT_ROUNDOFF) + under)
        if rest_limit is not None and math.ldexp(eta, -e) > rest_limit:
            best = DeflatedBound(math.inf, math.ldexp(top, -e), math.ldexp(eta, -e), math.inf, w)
            continue
        if math.isnan(c):
            # c ≥ ‖ZᵀG − MQᵀ‖_F, the Rayleigh–Ritz residual of the subspace
            N = Z.T @ G
            M = N @ Q
            F = N - M @ Q.T
            c = round_up(_fro_up(F) / (1.0 - UNIT_ROUNDOFF) + gamma(m) * fz * fg + gamma(p) * _fro_up(M) * fq
                         + 2.0 * under)
        cross = round_up(c * math.sqrt(1.0 + s) + eta * h)
        # λ_max of [[a, b], [b, d]] grows with a, d and |b|: upper bounds in, an upper bound out (every
        # operation below errs by at most u relatively, the difference included, and all terms are positive)
        a, d = round_up(top * top, 1), round_up(eta * eta, 1)
        half = round_up(0.5 * abs(a - d), 1)
        lam_max = round_up(0.5 * (a + d) + math.sqrt(round_up(half * half + cross * cross, 2)), 6)
        upper = round_up(math.ldexp(round_up(math.sqrt(lam_max)), -e), 2)
        if not math.isfinite(upper):
            continue
        if upper < best.upper:
            best = DeflatedBound(upper, math.ldexp(top, -e), math.ldexp(eta, -e), math.ldexp(cross, -e), w)
        if target is None or upper <= target:
            break
    return best
