"""Activation patterns of a two-layer ReLU unit: the cells of the data's hyperplane arrangement.

A unit ``u ∈ R^d`` applied to data ``X`` (N × d) is active on the samples in its **activation
pattern** ``D(u) = 1[X u ≥ 0]`` (a boolean vector of length N). The patterns that some ``u``
realises are the cells of the central hyperplane arrangement ``{x_iᵀ u = 0}`` (THEORY.md §4).
On the closed cone ``K_D = {u : (2D − I) X u ≥ 0}`` the unit's output ``(X u)_+ = D X u`` is
linear in ``u``; every program over patterns (the polar, the convex reformulation) uses these
closed cones.

:func:`enumerate_patterns` returns the patterns of the full-dimensional cells (chambers). Their
closed cones cover ``R^d`` (every ``u`` lies in the closure of a chamber), so a maximum or a union
over them is a maximum or a union over all of ``R^d``; the patterns of lower-dimensional faces
(``u`` with ties ``x_iᵀ u = 0``) are never needed: such a ``u`` lies in the closed cone of every
adjacent chamber, whichever way its ties are broken.

Examples
--------
>>> import numpy as np
>>> X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
>>> enumerate_patterns(X).shape          # 3 lines through the origin of R^2: 6 sectors
(6, 3)
>>> count_patterns_upper_bound(3, 2)
6
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from typing import Any

import numpy as np

from multiconvex.errors import InvalidInputError

from .checks import check_array
from .pattern_proof import prove_complete

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MAX_PATTERNS",
    "DeadlinePassed",
    "check_deadline",
    "PatternLimitError",
    "count_patterns_upper_bound",
    "enumerate_chambers",
    "enumerate_patterns",
    "patterns_complete",
    "sample_patterns",
]

#: Default cap on the number of exactly enumerated patterns (each costs two small SOCPs in a polar
#: check and 2·d variables in the convex reformulation).
DEFAULT_MAX_PATTERNS = 50_000

_ZERO_ROW_TOL = 1e-12   # relative to the largest row norm
_PARALLEL_SIN_TOL = 1e-10  # rows whose directions differ by a smaller sine are one hyperplane
# Inside the recursion only lines that coincide up to rounding are merged: merging two distinct
# restricted lines drops the sliver chamber between them, so the old chamber it stands for is not
# recognised as cut and one of its halves (possibly a fat one) is lost (regression test
# test_near_concurrent_hyperplanes_lose_no_chamber).
_RESTRICT_SIN_TOL = 1e-13


class DeadlinePassed(Exception):  # noqa: N818 - a signal to the caller's limit handling, not an error
    """A long phase (pattern enumeration, a polar check) stopped because the run's deadline passed.

    Raised between units of work so that a run with a ``time_limit`` (the grow meta-algorithm) returns
    its best point at once; it carries no partial result (nothing half computed is ever claimed).
    """


def check_deadline(deadline: float | None, where: str) -> None:
    """Raise :class:`DeadlinePassed` when ``deadline`` (``time.perf_counter()`` seconds) has passed."""
    if deadline is not None and time.perf_counter() > deadline:
        raise DeadlinePassed(f"{where}: the time limit passed")


class PatternLimitError(InvalidInputError):
    """The exact hyperplane arrangement has more cells than ``max_patterns``.

    Attributes
    ----------
    limit : int
        The ``max_patterns`` that was exceeded.
    bound : int
        The classical upper bound on the number of patterns for this data.
    """

    def __init__(self, message: str, *, limit: int, bound: int):
        super().__init__(message)
        self.limit = limit
        self.bound = bound


def count_patterns_upper_bound(N: int, d: int) -> int:
    """The classical bound ``2 Σ_{k<d} C(N−1, k)`` on the number of activation patterns.

    It counts the chambers of ``N`` hyperplanes through the origin of ``R^d`` in general position
    (Cover 1965; Zaslavsky); any other arrangement of ``N`` hyperplanes in ``R^d`` has at most as
    many. It is ``O(N^(d−1))`` for fixed ``d`` and ``2^N`` when ``N ≤ d``.

    Parameters
    ----------
    N : int
        Number of (distinct, non-zero) hyperplanes, i.e. samples.
    d : int
        Dimension (rank of the data).

    Returns
    -------
    int
        An exact Python integer (no overflow).

    Examples
    --------
    >>> count_patterns_upper_bound(40, 3)
    1562
    >>> count_patterns_upper_bound(5, 8)
    32
    """
    N, d = int(N), int(d)
    if N < 0 or d < 0:
        raise InvalidInputError(f"count_patterns_upper_bound: N={N} and d={d} must be >= 0.")
    if N == 0 or d == 0:
        return 1
    return 2 * sum(math.comb(N - 1, k) for k in range(d))


# --------------------------------------------------------------------------- input handling


def _check_X(X: Any, where: str) -> np.ndarray:
    return check_array(X, name="X", where=where, ndim=2)


def _unique_lines(V: np.ndarray, tol: float = _PARALLEL_SIN_TOL) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group non-zero rows of ``V`` by the hyperplane ``{v·u = 0}`` they define.

    Returns ``(reps, group, sign)``: the row indices of one representative per hyperplane, for
    each row the index (into ``reps``) of its hyperplane, and ``+1``/``−1`` when the row points
    the same/opposite way as its representative.
    """
    m = V.shape[0]
    A = V / np.linalg.norm(V, axis=1, keepdims=True)
    C = A @ A.T
    near = np.abs(C) > 1.0 - 1e-6
    if near.diagonal().all() and int(near.sum()) == m:
        # no two rows near parallel (data in general position): each row is its own hyperplane — what the loop
        # below returns then, without its m Python iterations (called once per hyperplane of the enumeration)
        return np.arange(m, dtype=np.int64), np.arange(m, dtype=np.int64), np.ones(m)
    group = np.full(m, -1, dtype=np.int64)
    sign = np.ones(m)
    reps: list[int] = []
    for i in range(m):
        if group[i] >= 0:
            continue
        cand = np.flatnonzero((group < 0) & near[i])
        # sine of the angle, computed without the cancellation of 1 − cos
        sines = np.linalg.norm(A[cand] - np.sign(C[i, cand])[:, None] * A[i], axis=1)
        same = cand[sines <= tol * 2]
        group[same] = len(reps)
        sign[same] = np.sign(C[i, same])
        reps.append(i)
    return np.asarray(reps, dtype=np.int64), group, sign


def _reduce(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Data -> distinct hyperplanes in the row space of ``X``.

    Returns ``(Z, basis, nonzero, group, sign)``: ``Z`` (m × r) the representative normals in
    coordinates of an orthonormal ``basis`` (d × r) of the row space, ``nonzero`` the indices of
    the rows that are not zero, and their ``group``/``sign`` as in :func:`_unique_lines`.
    """
    norms = np.linalg.norm(X, axis=1)
    scale = norms.max() if norms.size else 0.0
    nonzero = np.flatnonzero(norms > _ZERO_ROW_TOL * max(scale, 1e-300))
    if nonzero.size == 0:
        d = X.shape[1]
        return np.zeros((0, 0)), np.zeros((d, 0)), nonzero, np.zeros(0, np.int64), np.zeros(0)
    _, s, Vt = np.linalg.svd(X[nonzero], full_matrices=False)
    r = int((s > s[0] * max(X.shape) * np.finfo(float).eps * 10).sum())
    basis = Vt[:r].T
    Y = X[nonzero] @ basis
    reps, group, sign = _unique_lines(Y)
    return Y[reps], basis, nonzero, group, sign


# --------------------------------------------------------------------------- chamber construction


def _chambers_2d(V: np.ndarray) -> np.ndarray:
    """Interior points of the chambers of distinct lines through the origin of R^2 (2m sectors)."""
    ang = np.arctan2(V[:, 0], -V[:, 1])  # direction of the line {v·u = 0} is (−v1, v0)
    ang = np.sort(np.mod(np.concatenate([ang, ang + np.pi]), 2 * np.pi))
    gaps = np.diff(np.concatenate([ang, ang[:1] + 2 * np.pi]))
    mid = ang + gaps / 2
    return np.stack([np.cos(mid), np.sin(mid)], axis=1)


def _null_basis(h: np.ndarray) -> np.ndarray:
    """Orthonormal basis (k × (k−1)) of the hyperplane ``h⊥``."""
    k = h.size
    Q, _ = np.linalg.qr(np.concatenate([h[:, None], np.eye(k)], axis=1))
    return Q[:, 1:k]


def _chamber_points(V: np.ndarray, limit: int, deadline: float | None = None) -> np.ndarray:
    """One interior point per chamber of the central arrangement with distinct normals ``V``.

    ``V`` is (m × k), rows non-zero and pairwise non-parallel. Incremental construction by
    deletion–restriction: inserting hyperplane ``H`` splits exactly the chambers of the
    arrangement so far that meet ``H``, and those correspond one-to-one to the chambers of the
    restricted arrangement inside ``H`` (one dimension lower, enumerated recursively). A chamber
    cut by ``H`` is replaced by the two points ``v ± ε h`` around an interior point ``v`` of its
    restriction; a chamber not cut keeps its point. Raises ``_Overflow`` past ``limit`` chambers and
    :class:`DeadlinePassed` once ``deadline`` has passed (checked per hyperplane, at every depth).
    """
    m, k = V.shape
    if m == 0:
        return np.eye(1, k)
    if k == 1:
        return np.array([[1.0], [-1.0]])
    if k == 2:
        pts = _chambers_2d(V)
        if len(pts) > limit:
            raise _Overflow(len(pts))
        return pts
    V = V / np.linalg.norm(V, axis=1, keepdims=True)
    pts = np.eye(1, k)  # no hyperplane yet: one chamber
    for j in range(m):
        check_deadline(deadline, "enumerate_patterns")
        h, prev = V[j], V[:j]
        # chambers of the restriction to H = h⊥ (the earlier hyperplanes seen inside H)
        B = _null_basis(h)
        if j == 0:
            sub = np.eye(1, k - 1)
        else:
            W = prev @ B
            reps, _, _ = _unique_lines(W, _RESTRICT_SIN_TOL)
            sub = _chamber_points(W[reps], limit) if deadline is None else _chamber_points(W[reps], limit, deadline)
        v = sub @ B.T  # points of H, inside chambers of the earlier arrangement
        # step off H without crossing an earlier hyperplane
        if j:
            num = np.abs(v @ prev.T)                       # distance to each earlier hyperplane
            den = np.abs(prev @ h)[None, :] + 1e-300
            eps = 0.5 * np.minimum(1.0, (num / den).min(axis=1))
        else:
            eps = np.full(len(v), 0.5)
        cut_pts = np.concatenate([v + eps[:, None] * h, v - eps[:, None] * h])
        if j:
            keys_cut = {s.tobytes() for s in np.packbits(v @ prev.T > 0, axis=1)}
            old_keys = np.packbits(pts @ prev.T > 0, axis=1)
            keep = np.fromiter((s.tobytes() not in keys_cut for s in old_keys), bool, len(pts))
            pts = np.concatenate([pts[keep], cut_pts])
        else:
            pts = cut_pts
        if len(pts) > limit:
            raise _Overflow(len(pts))
    return pts


class _Overflow(Exception):
    def __init__(self, count: int):
        super().__init__(count)
        self.count = count


# Exact enumerations keyed by a digest of the data's bytes; an entry also holds a copy of X that a
# hit must equal exactly, so a digest collision or an array mutated in place can never return
# another X's patterns. The polar check of a growing network re-runs on the same X every round, and
# relu_polar recognises an array that holds every enumerated pattern.
_CACHE: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray, bool]] = {}
_CACHE_SIZE = 8


def _key(X: np.ndarray) -> tuple:
    X = np.ascontiguousarray(X, dtype=float)
    return (X.shape, hashlib.sha256(X.tobytes()).hexdigest())


def _cached(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool] | None:
    """``(patterns, points, verified)`` of an enumeration of exactly this ``X``, or None."""
    entry = _CACHE.get(_key(X))
    if entry is None or not np.array_equal(entry[0], np.asarray(X, dtype=float)):
        return None
    return entry[1], entry[2], entry[3]


def _verify(X: np.ndarray, pats: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """Safety net for the construction's floating-point decisions: the tie-free patterns of many
    sampled directions (Gaussian and boundary draws, seeded) must all be among ``pats``. Missing
    ones are added (with their directions) and the enumeration is marked unverified, so it is
    never reported as exact. Cost: a few matrix products of (≤ 200 000) × N."""
    N = X.shape[0]
    norms = np.linalg.norm(X, axis=1)
    nz = norms > _ZERO_ROW_TOL * max(norms.max() if norms.size else 0.0, 1e-300)
    if not nz.any():
        return pats, pts, True
    have = {p.tobytes() for p in np.packbits(pats[:, nz], axis=1)}
    U = _sample_points(X, int(min(max(20_000, 4 * len(pats)), 200_000)), np.random.default_rng(12345))
    U /= np.linalg.norm(U, axis=1, keepdims=True)
    extra_p, extra_u = [], []
    for k in range(0, len(U), 8192):
        Uk = U[k:k + 8192]
        S = (Uk @ X[nz].T) / norms[nz]
        Uk, S = Uk[(np.abs(S) > 1e-9).all(axis=1)], S[(np.abs(S) > 1e-9).all(axis=1)]
        for u, b in zip(Uk, np.packbits(S > 0, axis=1)):
            key = b.tobytes()
            if key not in have:
                have.add(key)
                extra_u.append(u)
                row = np.ones(N, dtype=bool)
                row[nz] = X[nz] @ u > 0
                extra_p.append(row)
    if not extra_p:
        return pats, pts, True
    logger.warning(
        "enumerate_patterns: the chamber construction missed %d activation patterns that sampling found "
        "(near-degenerate data); they were added, and the enumeration is not reported as exact.", len(extra_p))
    return np.concatenate([pats, np.array(extra_p)]), np.concatenate([pts, np.array(extra_u)]), False


def enumerate_chambers(X: Any, *, max_patterns: int = DEFAULT_MAX_PATTERNS,
                       deadline: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Every activation pattern of ``X`` with one strictly interior ``u`` each.

    Same as :func:`enumerate_patterns` and also returns ``points`` (P × d), ``points[p]`` a unit
    vector with ``1[X u ≥ 0] = patterns[p]`` and no ties on non-zero rows. ``deadline``
    (``time.perf_counter()`` seconds): raise :class:`DeadlinePassed` once it has passed (checked per
    hyperplane of the construction and between its phases; nothing is cached then).
    """
    X = _check_X(X, "enumerate_patterns")
    max_patterns = int(max_patterns)
    hit = _cached(X)
    if hit is not None and len(hit[0]) <= max_patterns:
        return hit[0].copy(), hit[1].copy()
    N, d = X.shape
    Z, basis, nonzero, group, sign = _reduce(X)
    m, r = Z.shape
    bound = count_patterns_upper_bound(m, r)
    try:
        if not m:
            pts_r = np.zeros((1, max(r, 0)))
        elif deadline is None:  # the two-argument call, as before deadlines (a test replaces it by one taking two)
            pts_r = _chamber_points(Z, max_patterns)
        else:
            pts_r = _chamber_points(Z, max_patterns, deadline)
    except _Overflow as exc:
        raise PatternLimitError(
            f"enumerate_patterns: the hyperplane arrangement of X ({N} samples, rank {r}, {m} distinct "
            f"hyperplanes) has more than max_patterns={max_patterns} activation patterns (at least "
            f"{exc.count}; the bound 2·Σ_(k<{r}) C({m - 1}, k) is {bound:.3g}). Use sampled patterns "
            f"(patterns=<number>) for a lower bound, or raise max_patterns.",
            limit=max_patterns, bound=bound,
        ) from None
    if len(pts_r) > max_patterns:
        raise PatternLimitError(
            f"enumerate_patterns: {len(pts_r)} activation patterns exceed max_patterns={max_patterns}; "
            "use sampled patterns (patterns=<number>) or raise max_patterns.",
            limit=max_patterns, bound=bound,
        )
    P = len(pts_r)
    pats = np.ones((P, N), dtype=bool)  # zero rows: x_iᵀu = 0 ≥ 0, always active (and irrelevant)
    if m:
        S = pts_r @ Z.T > 0                      # P × m signs on the distinct hyperplanes
        pats[:, nonzero] = np.where(sign[None, :] > 0, S[:, group], ~S[:, group])
    pts = pts_r @ basis.T if r else np.eye(1, d).repeat(P, 0)
    pts /= np.linalg.norm(pts, axis=1, keepdims=True)
    check_deadline(deadline, "enumerate_patterns")
    pats, verified, why = prove_complete(X, nonzero, pats, pts)
    sampled_ok = True
    if not verified:  # look for the missing chambers by sampling, then try the proof again
        check_deadline(deadline, "enumerate_patterns")
        pats, pts, sampled_ok = _verify(X, pats, pts)
        check_deadline(deadline, "enumerate_patterns")
        pats, verified, why = prove_complete(X, nonzero, pats, pts)
    if not verified:
        logger.warning("enumerate_patterns: the enumeration is not proven complete (%s); the polar over it is not "
                       "reported exact.", why)
    _, first = np.unique(np.packbits(pats, axis=1), axis=0, return_index=True)
    if len(first) < len(pats):  # a point certified another point's pattern: keep one of each
        keep = np.sort(first)
        pats, pts = pats[keep], pts[keep]
    logger.debug("enumerate_patterns: %s (sampling cross-check %s)", why, "agreed" if sampled_ok else "added patterns")
    key = _key(X)
    _CACHE.pop(key, None)
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = (X.copy(), pats, pts, verified)
    logger.debug("enumerated %d activation patterns (N=%d, rank %d, %d distinct hyperplanes)", P, N, r, m)
    return pats.copy(), pts.copy()


def enumerate_patterns(X: Any, *, max_patterns: int = DEFAULT_MAX_PATTERNS,
                       deadline: float | None = None) -> np.ndarray:
    """All activation patterns ``1[X u ≥ 0]`` of the chambers of the data's hyperplane arrangement.

    Exact, with no LP and no sampling: the rows of ``X`` are reduced to their distinct hyperplanes
    in the row space (zero rows are always active; parallel rows share a hyperplane), then the
    chambers are built incrementally by deletion–restriction (each new hyperplane splits exactly
    the chambers met by it, found by enumerating the arrangement inside the new hyperplane, one
    dimension lower; in 2-D the sectors are read off sorted angles). The closed cones
    ``(2D − I) X u ≥ 0`` of the returned patterns cover ``R^d``.

    The construction's decisions are floating-point sign tests, so the result is then *proven*
    complete or not (:mod:`.pattern_proof`): every chamber point's signs are certified (error bound,
    exact rational arithmetic where the bound cannot decide) and the distinct certified patterns are
    compared with the chamber count computed in exact integer arithmetic. When they fall short, the
    tie-free patterns of 20 000 to 200 000 seeded sampled directions are added (with a warning) and
    the proof is tried again. Only a proven enumeration
    is complete for :func:`patterns_complete` (so only then is the polar reported exact); rows that
    are parallel only up to rounding, or rank deficiency that holds only up to rounding, leave thin
    chambers the construction does not build, and the proof says so.

    Complexity: with ``m`` distinct hyperplanes and rank ``r`` the count is at most
    ``P ≤ 2 Σ_{k<r} C(m−1, k) = O(m^(r−1))`` (:func:`count_patterns_upper_bound`); the
    construction costs ``O(m · P · m)`` arithmetic plus the recursive enumerations, ``O(m^(r+1))``
    overall for fixed ``r ≥ 3`` (``O(m log m)`` for ``r = 2``). Feasible for rank ≤ 4 or so at a
    few hundred samples; use :func:`sample_patterns` beyond.

    Parameters
    ----------
    X : array (N, d)
        Data; a bias is a constant column the caller adds.
    max_patterns : int
        Stop and raise :class:`PatternLimitError` once more patterns than this are found.
    deadline : float, optional
        ``time.perf_counter()`` seconds: raise :class:`DeadlinePassed` once passed (a run's time limit).

    Returns
    -------
    numpy.ndarray of bool, shape (P, N)
        Distinct patterns, one per chamber. Near-parallel rows (sine of the angle below 1e-10) are
        treated as one hyperplane; the sliver between them is not a separate pattern.

    Raises
    ------
    InvalidInputError
        ``X`` not a finite 2-D array.
    PatternLimitError
        More than ``max_patterns`` patterns (the message says to use sampled patterns).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).standard_normal((10, 3))
    >>> len(enumerate_patterns(X)) == count_patterns_upper_bound(10, 3)   # general position
    True
    """
    return enumerate_chambers(X, max_patterns=max_patterns, deadline=deadline)[0]


def patterns_complete(X: np.ndarray, patterns: np.ndarray) -> bool:
    """Whether ``patterns`` provably holds every activation pattern of ``X``.

    True when an enumeration of exactly this ``X`` is cached (it was enumerated in this process),
    was proven complete (:mod:`.pattern_proof`: certified chamber points as many as the exact chamber
    count), and every enumerated pattern is among ``patterns``. Never enumerates.
    """
    X = np.asarray(X, dtype=float)
    patterns = np.asarray(patterns, dtype=bool)
    cached = _cached(X)
    if cached is None or not cached[2]:
        return False
    have = {p.tobytes() for p in np.packbits(patterns, axis=1)}
    return all(p.tobytes() in have for p in np.packbits(cached[0], axis=1))


def _sampled_complete(X: np.ndarray, U: np.ndarray) -> bool:
    """Patterns of the generic points ``U`` reach the count bound: then they are all the patterns."""
    Z, basis, *_ = _reduce(X)
    m, r = Z.shape
    if m == 0:
        return True
    bound = count_patterns_upper_bound(m, r)
    if bound > 10 * len(U):
        return False
    S = (U @ basis) @ Z.T
    S = S[(np.abs(S) > 1e-12 * np.abs(S).max(axis=1, keepdims=True)).all(axis=1)] > 0  # no ties
    return len(np.unique(S, axis=0)) >= bound


def _sample_points(X: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """About ``n`` generic directions: Gaussian ones, and pairs straddling a sample's hyperplane."""
    d = X.shape[1]
    n_gauss = max(1, n // 2)
    U = rng.standard_normal((n_gauss, d))
    norms = np.linalg.norm(X, axis=1)
    nz = np.flatnonzero(norms > _ZERO_ROW_TOL * max(norms.max(), 1e-300))
    n_bd = max(0, (n - n_gauss) // 2) if nz.size else 0
    if not n_bd:
        return U
    rows = rng.choice(nz, size=n_bd)
    xr = X[rows] / norms[rows, None]
    W = rng.standard_normal((n_bd, d))
    W -= (W * xr).sum(1)[:, None] * xr              # on the hyperplane of sample `rows`
    wn = np.linalg.norm(W, axis=1)
    ok = wn > 1e-12                                  # d = 1: the hyperplane is {0}, no boundary draw
    if not ok.any():
        return U
    W, xr = W[ok] / wn[ok, None], xr[ok]
    num = np.abs(W @ X.T)                            # distance of W to every hyperplane
    den = np.abs(xr @ X.T)
    tied = num <= 1e-9 * norms[None, :]              # the chosen row and rows parallel to it
    ratio = np.where(tied | (den == 0), np.inf, num / np.maximum(den, 1e-300))
    eps = 0.5 * np.minimum(1.0, ratio.min(axis=1))
    return np.concatenate([U, W + eps[:, None] * xr, W - eps[:, None] * xr])


def sample_patterns(X: Any, n: int, *, seed: int | None = None) -> np.ndarray:
    """Distinct activation patterns from about ``n`` sampled directions.

    Half of the draws are Gaussian directions ``u ~ N(0, I)`` (patterns with probability
    proportional to their cone's solid angle). The other half are *boundary draws*: a random
    sample ``x_k`` and a Gaussian direction projected onto its hyperplane ``x_kᵀ u = 0``; each gives
    the two patterns on either side of that hyperplane (the pattern of ``u`` with sample ``k``
    active, and inactive). They reach the thin cells whose walls are data hyperplanes — with a
    bias column, units whose kink passes through a data point — which Gaussian draws rarely hit.
    Every returned pattern is realised (its closed cone contains the drawn ``u``).

    Parameters
    ----------
    X : array (N, d)
    n : int
        Number of draws (≥ 1); the result has at most ``n`` rows after deduplication.
    seed : int, optional

    Returns
    -------
    numpy.ndarray of bool, shape (P, N)

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).standard_normal((30, 3))
    >>> P = sample_patterns(X, 200, seed=0)
    >>> P.dtype, P.shape[1], len(P) <= 200
    (dtype('bool'), 30, True)
    """
    X = _check_X(X, "sample_patterns")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InvalidInputError(f"sample_patterns: n must be an integer >= 1, got {n!r}.")
    rng = np.random.default_rng(seed)
    U = _sample_points(X, int(n), rng)
    return np.unique(U @ X.T >= 0, axis=0)
