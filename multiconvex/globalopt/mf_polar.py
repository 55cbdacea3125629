"""The polar of matrix factorization: the top singular value(s) of ``G`` (THEORY.md §4).

With ``φ(u, v) = u vᵀ`` and ``θ = ½(‖u‖² + ‖v‖²)`` the induced regulariser is the nuclear
norm and its polar is the spectral norm: ``Ω°(G) = σ_max(G)``, attained at ``u vᵀ`` for the top
singular pair. Small matrices use LAPACK's dense SVD; large ones a few Lanczos iterations
(:func:`scipy.sparse.linalg.svds`, ARPACK) for the top ``k`` singular triplets only — no full SVD.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
from scipy.sparse.linalg import svds

logger = logging.getLogger("multiconvex")

__all__ = ["MFPolar", "mf_polar", "DENSE_LIMIT"]

#: Matrices with ``min(m, n)`` at most this use a dense SVD (faster than Lanczos there).
DENSE_LIMIT = 100


@dataclass(frozen=True)
class MFPolar:
    """Top singular triplets of ``G``.

    Attributes
    ----------
    value : float
        ``σ_max(G)``, the polar.
    upper : float
        A bound ``≥ σ_max(G)``: equal to ``value`` for the dense SVD; for Lanczos ``value``
        plus the residual norm of the computed triplet (the computed σ is within that distance of
        a true singular value; ARPACK's random start finds the top one with probability 1).
    exact : bool
        True: computed to solver accuracy.
    method : {"svd", "svds"}
    sigmas : ndarray (k,)
        Top singular values, descending.
    left, right : ndarray (m, k), (n, k)
        Their unit singular vectors: ``G right[:, i] = sigmas[i] left[:, i]``.
    wall_time : float
    """

    value: float
    upper: float
    exact: bool
    method: str
    sigmas: np.ndarray
    left: np.ndarray
    right: np.ndarray
    wall_time: float


def mf_polar(G: np.ndarray, k: int = 1, *, method: str = "auto", seed: int | None = 0,
             tol: float = 1e-12) -> MFPolar:
    """Top-``k`` singular triplets of ``G``: the MF polar and its maximisers ``u vᵀ``.

    Parameters
    ----------
    G : ndarray (m, n)
        The negative gradient ``Y − U Vᵀ``.
    k : int
        How many maximisers (top singular pairs) to return.
    method : {"auto", "svd", "svds"}
        ``"auto"``: dense SVD when ``min(m, n) <= DENSE_LIMIT`` or ``k`` is close to ``min(m, n)``,
        else Lanczos.
    seed : int or None
        Seeds Lanczos' start vector.
    tol : float
        Lanczos tolerance.

    Examples
    --------
    >>> import numpy as np
    >>> p = mf_polar(np.diag([3.0, 1.0, 0.5]), k=2)
    >>> round(p.value, 12), p.sigmas.round(12).tolist(), p.method
    (3.0, [3.0, 1.0], 'svd')
    """
    t0 = time.perf_counter()
    G = np.asarray(G, dtype=float)
    m, n = G.shape
    q = min(m, n)
    k = max(1, min(int(k), q))
    if method == "auto":
        method = "svd" if q <= DENSE_LIMIT or k >= q // 2 else "svds"
    if method == "svd" or k >= q:
        U, s, Vt = np.linalg.svd(G, full_matrices=False)
        return MFPolar(float(s[0]), float(s[0]), True, "svd", s[:k].copy(), U[:, :k].copy(), Vt[:k].T.copy(),
                       time.perf_counter() - t0)

    rng = np.random.default_rng(seed)
    v0 = rng.standard_normal(min(m, n))
    U, s, Vt = svds(G, k=k, tol=tol, v0=v0, return_singular_vectors=True)
    order = np.argsort(s)[::-1]
    s, U, V = s[order], U[:, order], Vt[order].T
    r1 = G @ V[:, 0] - s[0] * U[:, 0]
    r2 = G.T @ U[:, 0] - s[0] * V[:, 0]
    resid = float(np.sqrt(r1 @ r1 + r2 @ r2))
    logger.debug("svds polar %.12g, residual %.3g", s[0], resid)
    return MFPolar(float(s[0]), float(s[0]) + resid, True, "svds", s.copy(), U.copy(), V.copy(),
                   time.perf_counter() - t0)
