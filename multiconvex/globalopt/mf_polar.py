"""The polar of matrix factorization: the top singular value(s) of ``G`` (THEORY.md §4), proven.

With ``φ(u, v) = u vᵀ`` and ``θ = ½(‖u‖² + ‖v‖²)`` the induced regulariser is the nuclear
norm and its polar is the spectral norm: ``Ω°(G) = σ_max(G)``, attained at ``u vᵀ`` for the top
singular pair.

Two steps:

1. **estimate** the top ``k`` singular triplets: LAPACK's dense SVD for small matrices; otherwise a
   randomized block subspace iteration (a block of ``k + 10`` vectors; it resolves the repeated top
   values of the residual at the optimum in a few steps), and where that has not converged after 30
   steps Lanczos (:func:`scipy.sparse.linalg.svds`, ARPACK) — no full SVD. When ARPACK does not
   converge it is retried with more Lanczos vectors, a looser tolerance and a fresh random start, and
   then replaced by a dense SVD; no failure escapes.
2. **prove** ``σ_max(G) ≤ upper`` by a Cholesky test of ``upper²(1 − margin) I − GᵀG`` on the smaller
   side (:mod:`.spectral_bound`, with a documented rounding margin). Lanczos finds *a* singular value;
   the test proves no larger one exists. When it fails (the estimate missed the top of the spectrum)
   the top eigenpairs of the Gram matrix already formed are computed densely and the test re-run.
   With ``proof="auto"`` (grow's choice) the deflated bound of :mod:`.deflated_bound` comes first: where the
   estimated top values stand clear of the rest it proves as tight a bound from a few thin products, without
   the ``m n²`` Gram product; where it is not tight enough the Gram test runs as before.

A caller that holds a guess of the top right singular subspace (grow: the current factor ``V``, whose
span is the top of the residual's at a stationary point) passes it as ``start``: it seeds the block
(with Gaussian columns that find directions outside it), which then converges in one step where the
guess is right — four products with ``G`` instead of a dozen. Only the proof decides that the estimate
is the top of the spectrum; a wrong guess costs steps, never correctness.

``MFPolar.method`` names both steps, e.g. ``"svds+cholesky"``.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import scipy.linalg
from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, svds

from ..errors import InvalidInputError
from .deflated_bound import BLOCK_WIDTHS, deflated_spectral_bound
from .patterns import check_deadline
from .spectral_bound import UNIT_ROUNDOFF, gram_smaller_side, prove_spectral_bound

logger = logging.getLogger("multiconvex")

__all__ = ["MFPolar", "mf_polar", "DENSE_LIMIT"]

#: Matrices with ``min(m, n)`` at most this use a dense SVD (faster than Lanczos there).
DENSE_LIMIT = 100


@dataclass(frozen=True)
class MFPolar:
    """Top singular triplets of ``G`` and what is proven about ``σ_max(G)``.

    Attributes
    ----------
    value : float
        The computed ``σ_max(G)``, the polar (a lower bound on it up to rounding: ``uᵀ G v`` for unit vectors).
    upper : float
        A *proven* bound ``≥ σ_max(G)`` (Cholesky test, :mod:`.spectral_bound`); ``inf`` when no proof
        was run or it failed.
    exact : bool
        True when ``upper`` is proven: ``value ≤ σ_max ≤ upper`` pins the polar down to the test's margin.
    method : str
        How the triplets were estimated and how the bound was proven: ``"svd+cholesky"``,
        ``"subspace+cholesky"``, ``"svds+cholesky"``, ``"gram-eigh+cholesky"`` (the fallback),
        ``"subspace+deflation+cholesky"`` or ``"start-ritz+deflation+cholesky"`` (the deflated bound,
        ``proof="auto"``), or without ``+cholesky`` when unproven.
    sigmas : ndarray (k,)
        Top singular values, descending.
    left, right : ndarray (m, k), (n, k)
        Their unit singular vectors: ``G right[:, i] = sigmas[i] left[:, i]``.
    wall_time : float
    proof : str
        ``"cholesky"``, ``"deflation"``, or why there is no proof.
    steps : int
        Block-iteration steps taken (0 when the block iteration was not run or did not converge).
    """

    value: float
    upper: float
    exact: bool
    method: str
    sigmas: np.ndarray
    left: np.ndarray
    right: np.ndarray
    wall_time: float
    proof: str = "cholesky"
    steps: int = 0


def _finite(G: np.ndarray) -> bool:
    """Every entry finite, without an ``m × n`` temporary (``max``/``min`` propagate NaN)."""
    return math.isfinite(_amax(G))


def _amax(G: np.ndarray) -> float:
    """``max |G|`` without an ``m × n`` temporary; NaN or inf when an entry is not finite."""
    return max(float(G.max()), -float(G.min())) if G.size else 0.0


def _dense(G: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    U, s, Vt = np.linalg.svd(G, full_matrices=False)
    return s[:k].copy(), U[:, :k].copy(), Vt[:k].T.copy()


def _block_subspace(G: np.ndarray, k: int, seed: int | None, relevant_above: float | None, *,
                    start: np.ndarray | None = None, rtol: float = 1e-13, max_iters: int = 12,
                    deadline: float | None = None) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], int] | None:
    """Top-``k`` triplets by randomized block subspace iteration with Rayleigh–Ritz; ``None`` if not converged.

    A block of ``k + 10`` vectors from a Gaussian start, re-orthonormalised every half step (two
    products with ``G`` per step, as in a randomized SVD). A block resolves a repeated or clustered
    top singular value at once (at the factorization's optimum the top values of the residual all
    equal λ, the case where single-vector Lanczos restarts most); it converges like
    ``(σ_{k+11} / σ_i)^(2q)``, so a matrix without a gap below its top values (pure noise) is left to
    Lanczos after ``max_iters`` steps. Converged: the top Ritz value, and every one above
    ``relevant_above`` (the caller's threshold; all ``k`` when None), changed by at most ``rtol``
    relatively in the last step. Ritz values never exceed the singular values they approximate; that
    the top one is the largest singular value is *not* assumed here — :func:`_prove` decides.
    ``start`` (``n × p``, right vectors) takes the first ``p`` columns of the block (then ``max(k, p) + 10``
    wide); returns the triplets and the steps taken.
    """
    m, n = G.shape
    p = 0 if start is None else min(start.shape[1], min(m, n) - 1)
    b = min(min(m, n), max(k, p) + 10)
    rng = np.random.default_rng(seed)
    S = rng.standard_normal((n, b))
    if start is not None and p:
        S[:, :p] = start[:, :p]
    Q, _ = np.linalg.qr(G @ S)
    B = Q.T @ G                                         # Rayleigh–Ritz on span(Q)
    prev = None
    for step in range(max_iters):
        check_deadline(deadline, "mf_polar")
        Ub, s, Vt = np.linalg.svd(B, full_matrices=False)
        if s[0] == 0:
            return (s[:k].copy(), Q @ Ub[:, :k], Vt[:k].T.copy()), step
        if prev is not None:
            need = np.ones(k, dtype=bool) if relevant_above is None else (s[:k] > relevant_above)
            need[0] = True
            if np.all(np.abs(s[:k] - prev)[need] <= rtol * s[0]):
                return (s[:k].copy(), Q @ Ub[:, :k], Vt[:k].T.copy()), step
        prev = s[:k].copy()
        Z, _ = np.linalg.qr(B.T)                        # = orth(Gᵀ Q): no extra product
        Q, _ = np.linalg.qr(G @ Z)
        B = Q.T @ G
    return None


def _lanczos(G: np.ndarray, k: int, seed: int | None, tol: float
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Top-``k`` triplets by ARPACK, retried once with more Lanczos vectors; ``None`` when both fail."""
    q = min(G.shape)
    rng = np.random.default_rng(seed)
    attempts: list[dict] = [{"tol": tol},
                            {"tol": max(tol, 1e-8), "ncv": min(q, max(4 * k + 1, 64)), "maxiter": 50 * q}]
    for i, kw in enumerate(attempts):
        try:
            U, s, Vt = svds(G, k=k, v0=rng.standard_normal(q), return_singular_vectors=True, **kw)
        except (ArpackNoConvergence, ArpackError) as exc:
            logger.info("svds attempt %d on %dx%d (k=%d, %s) failed: %s", i + 1, *G.shape, k, kw, exc)
            continue
        if not (np.all(np.isfinite(s)) and np.all(np.isfinite(U)) and np.all(np.isfinite(Vt))):
            continue
        order = np.argsort(s)[::-1]
        return s[order].copy(), U[:, order].copy(), Vt[order].T.copy()
    return None


def _gram_triplets(G: np.ndarray, C: np.ndarray, e: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-``k`` triplets from the eigenpairs of the (scaled) Gram matrix ``C = Hᵀ H``, ``H = 2ᵉ G`` or ``2ᵉ Gᵀ``."""
    n = C.shape[0]
    w, X = scipy.linalg.eigh(C, subset_by_index=[n - k, n - 1])
    w, X = w[::-1], X[:, ::-1]
    s = np.ldexp(np.sqrt(np.maximum(w, 0.0)), -e)
    tall = G.shape[0] >= G.shape[1]
    other = (G @ X) if tall else (G.T @ X)
    norms = np.linalg.norm(other, axis=0)
    other = other / np.where(norms > 0, norms, 1.0)
    return (s, other, X) if tall else (s, X, other)


def _first_room(n: int) -> float:
    """The relative room above the estimate at which the Cholesky test of an ``n × n`` Gram matrix starts."""
    return max(1e-10, 4.0 * n**1.5 * UNIT_ROUNDOFF)


def _prove(G: np.ndarray, sigma: float, gram: tuple[np.ndarray, int]) -> tuple[float, float]:
    """``(upper, margin)`` from the Cholesky test at growing room above ``sigma``; ``(inf, inf)`` if all fail."""
    n = gram[0].shape[0]
    eta = _first_room(n)
    for _ in range(3):
        b = prove_spectral_bound(G, sigma, eta=eta, gram=gram)
        if b.proven:
            return b.upper, b.margin
        eta *= 100.0
    return math.inf, math.inf


def _start_proof(G: np.ndarray, start: np.ndarray, relevant_above: float, t0: float, amax: float
                 ) -> MFPolar | None:
    """The polar from the span of ``start`` alone, where the deflated bound proves it is the top of the spectrum.

    Rayleigh–Ritz on ``span(start)`` gives Ritz triplets (lower bounds on the top singular values). They are the
    answer when the deflated bound (:mod:`.deflated_bound`) is within the Gram test's first room of the top Ritz
    value *and* bounds everything outside the span by ``relevant_above`` (so no direction above it is missed);
    ``None`` otherwise (the caller then runs the block iteration).
    """
    Q, _ = np.linalg.qr(start)
    Z = G @ Q
    Ub, s, Vbt = np.linalg.svd(Z, full_matrices=False)
    if not s.size or s[0] <= 0:
        return None
    right = Q @ Vbt.T
    value = float(abs(Ub[:, 0] @ (G @ right[:, 0])))
    target = max(value, float(s[0])) * (1.0 + _first_room(min(G.shape)))
    b = deflated_spectral_bound(G, right, widths=BLOCK_WIDTHS[:1], target=target, rest_limit=relevant_above,
                                amax=amax)
    if not (b.upper <= target and b.rest <= relevant_above):
        logger.debug("the start's span is not proven the top (bound %.12g, rest %.3g): block iteration", b.upper,
                     b.rest)
        return None
    return MFPolar(value, b.upper, True, "start-ritz+deflation+cholesky", s, Ub, right, time.perf_counter() - t0,
                   proof="deflation", steps=0)


def mf_polar(G: np.ndarray, k: int = 1, *, method: str = "auto", seed: int | None = 0, tol: float = 1e-10,
             prove_below: float | None = None, relevant_above: float | None = None,
             start: np.ndarray | None = None, deadline: float | None = None, proof: str = "gram") -> MFPolar:
    """Top-``k`` singular triplets of ``G`` (the MF polar and its maximisers ``u vᵀ``) and a proven bound.

    Parameters
    ----------
    G : ndarray (m, n)
        The negative gradient ``Y − U Vᵀ``.
    k : int
        How many maximisers (top singular pairs) to return.
    method : {"auto", "svd", "svds"}
        How to estimate: ``"auto"``: dense SVD when ``min(m, n) <= DENSE_LIMIT`` or ``k`` is close to
        ``min(m, n)``, else ``"svds"``: block subspace iteration, then Lanczos where it did not converge.
    seed : int or None
        Seeds the random starts (block iteration, Lanczos).
    tol : float
        Lanczos tolerance (retries loosen it to ``1e-8``).
    prove_below : float, optional
        Skip the proof (one Gram product and one Cholesky factorization of the smaller side) when the
        estimate already exceeds this value and ``min(m, n) > DENSE_LIMIT``: a caller that compares the
        polar with λ learns nothing from an upper bound above it. ``upper`` is then ``inf``.
    relevant_above : float, optional
        Only the top pair and the pairs whose value exceeds this (λ: the directions a new subnetwork can
        take) must be accurate; the block iteration does not wait for the others. The returned values
        below it are Ritz values (lower bounds), their vectors approximate.
    start : ndarray (n, p), optional
        A guess of the top right singular subspace (grow passes its current factor ``V``): the first columns
        of the block iteration's starting block (``method="svds"``). Right, the iteration converges in one
        step; wrong, it costs steps — the proof decides either way.
    deadline : float, optional
        ``time.perf_counter()`` seconds: :class:`~.patterns.DeadlinePassed` is raised at the next block step, before
        Lanczos or before the proof once it has passed (grow then stops with nothing claimed).
    proof : {"gram", "auto"}
        ``"gram"``: the Cholesky test of the smaller side's Gram matrix. ``"auto"``: where the estimate comes from
        the block iteration or Lanczos, first the deflated bound (:mod:`.deflated_bound`: a few products of the
        width of the top values, no ``m n²`` Gram product), accepted when it is as tight as the Gram test's first
        try would be (method ``"…+deflation+cholesky"``); the Gram test otherwise. With ``start`` and
        ``relevant_above`` the span of ``start`` is tried first on its own: where the
        deflated bound proves it holds the top of the spectrum and nothing outside it exceeds
        ``relevant_above``, its Ritz triplets are the answer (method ``"start-ritz+deflation+cholesky"``; fewer
        than ``k`` of them when ``start`` has fewer columns).

    Examples
    --------
    >>> import numpy as np
    >>> p = mf_polar(np.diag([3.0, 1.0, 0.5]), k=2)
    >>> round(p.value, 12), p.sigmas.round(12).tolist(), p.method
    (3.0, [3.0, 1.0], 'svd+cholesky')
    >>> 3.0 <= p.upper <= 3.0 * (1 + 1e-9)
    True
    """
    t0 = time.perf_counter()
    if method not in ("auto", "svd", "svds"):
        raise InvalidInputError(f"mf_polar: method must be 'auto', 'svd' or 'svds', got {method!r}.")
    if proof not in ("gram", "auto"):
        raise InvalidInputError(f"mf_polar: proof must be 'gram' or 'auto', got {proof!r}.")
    G = np.asarray(G, dtype=float)
    amax = _amax(G) if G.ndim == 2 and G.size else math.nan
    if not math.isfinite(amax):
        raise InvalidInputError(f"mf_polar: G must be a non-empty finite 2-D array, got shape {G.shape}; check the "
                                "targets and factors for NaN/inf.")
    m, n = G.shape
    q = min(m, n)
    k = max(1, min(int(k), q))
    if method == "auto":
        method = "svd" if q <= DENSE_LIMIT or k >= q // 2 else "svds"
    est = None
    steps = 0
    if start is not None:
        start = np.asarray(start, dtype=float)
        if start.ndim != 2 or start.shape[0] != n or (start.size > 0 and not _finite(start)):
            raise InvalidInputError(f"mf_polar: start must be a finite ({n}, p) array of right vectors (G has shape "
                                    f"{G.shape}), got shape {start.shape}; pass the factor V or None.")
    if (method == "svds" and proof == "auto" and start is not None and 0 < start.shape[1] < q
            and relevant_above is not None):
        # the start's own span may already be the top of the spectrum (grow's V at a stationary point): one
        # Rayleigh–Ritz step on it and the deflated bound decide; no block iteration where they do
        check_deadline(deadline, "mf_polar")
        found = _start_proof(G, start, relevant_above, t0, amax)
        if found is not None:
            return found
    if method == "svds" and k < q:
        block = _block_subspace(G, k, seed, relevant_above, start=start if start is not None and start.size else None,
                                deadline=deadline)
        if block is not None:
            (est, steps), method = block, "subspace"
        else:
            check_deadline(deadline, "mf_polar")
            est = _lanczos(G, k, seed, tol)
        if est is None:
            logger.warning("Lanczos did not converge on the %dx%d polar; using a dense SVD", m, n)
            method = "svd"
    if est is None:
        method = "svd"
        est = _dense(G, k)
    s, U, V = est
    # the computed value: a Rayleigh quotient of the returned unit vectors (≤ σ_max up to rounding)
    value = float(abs(U[:, 0] @ (G @ V[:, 0]))) if s[0] > 0 else 0.0
    if prove_below is not None and value > prove_below and q > DENSE_LIMIT:
        return MFPolar(value, math.inf, False, method, s, U, V, time.perf_counter() - t0,
                       proof=f"skipped: the estimate {value:.6g} exceeds {prove_below:.6g}", steps=steps)
    check_deadline(deadline, "mf_polar")  # the proof is one Gram product and a Cholesky factorization
    if proof == "auto" and method in ("subspace", "svds") and s[0] > 0:
        # the top values that stand clear of the rest span the deflated subspace; the rest need only be bounded
        top = max(1, int(np.count_nonzero(s >= 0.5 * s[0])))
        target = max(value, float(s[0])) * (1.0 + _first_room(q))
        b = deflated_spectral_bound(G, V[:, :top], target=target, amax=amax)
        if b.upper <= target:
            logger.debug("%s polar %.12g, deflated bound %.12g (rest %.3g)", method, value, b.upper, b.rest)
            return MFPolar(value, b.upper, True, method + "+deflation+cholesky", s, U, V,
                           time.perf_counter() - t0, proof="deflation", steps=steps)
        logger.debug("the deflated bound %.12g is not tight (rest %.3g, coupling %.3g): Gram test", b.upper,
                     b.rest, b.cross)
    gram = gram_smaller_side(G)
    upper, margin = _prove(G, max(value, float(s[0])), gram)
    if not math.isfinite(upper):
        # the estimate missed the top of the spectrum: the Gram matrix is formed already, so take its top eigenpairs
        logger.warning("the Cholesky test refuted the %s estimate %.12g on %dx%d; recomputing from the Gram matrix",
                       method, float(s[0]), m, n)
        method = "gram-eigh"
        s, U, V = _gram_triplets(G, gram[0], gram[1], k)
        value = float(abs(U[:, 0] @ (G @ V[:, 0])))
        upper, margin = _prove(G, max(value, float(s[0])), gram)
    logger.debug("%s polar %.12g, proven upper %.12g (margin %.3g)", method, value, upper, margin)
    proven = math.isfinite(upper)
    return MFPolar(value, upper, proven, method + ("+cholesky" if proven else ""), s, U, V,
                   time.perf_counter() - t0, proof="cholesky" if proven else "failed: the Cholesky test broke down",
                   steps=steps)
