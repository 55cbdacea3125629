"""Local search for the two-layer ReLU polar: multi-start ascent on the unit sphere (a lower bound)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["local_polar_search"]


def local_polar_search(X: np.ndarray, G: np.ndarray, starts: int, *, seed: Any = None,
                       iters: int = 60) -> list[tuple[float, np.ndarray, float]]:
    """Multi-start ascent of ``s·Gᵀ(X u)_+`` on the unit sphere, vectorised over starts and both signs.

    Each start moves to ``normalize(u + η g)`` with ``g = s·Xᵀ(G ∘ 1[Xu > 0])`` the gradient (on a
    chamber the objective is linear, and with ``η`` large the step jumps to the chamber's
    unconstrained maximiser ``g/‖g‖``); a step that does not improve halves that start's ``η``.
    Starts: Gaussian directions plus ``±XᵀG``-type directions, each ascended for ``s = +1`` and ``s = −1``
    (one array: the sign's starts stop together once all their steps are below 1e-6). Returns
    ``(value, u, s)`` per start and sign, best first; each value is attained (a valid lower bound on the polar).
    """
    rng = np.random.default_rng(seed)
    d = X.shape[1]
    U0 = rng.standard_normal((max(starts, 1), d))
    extra = [X.T @ G, X.T @ np.maximum(G, 0), X.T @ np.minimum(G, 0)]
    U0 = np.concatenate([U0, np.array(extra), -np.array(extra)])
    U0 /= np.maximum(np.linalg.norm(U0, axis=1, keepdims=True), 1e-300)
    k = len(U0)
    u = np.concatenate([U0, U0])
    s = np.repeat([1.0, -1.0], k)
    sG = s[:, None] * G[None, :]                     # each row's signed residual
    eta = np.full(2 * k, 4.0)
    live = np.ones(2 * k, dtype=bool)                # a sign's rows stop together (as two separate ascents would)
    Z = u @ X.T                                      # X u of each row, kept with u
    val = np.einsum("kn,kn->k", np.maximum(Z, 0), sG)
    for _ in range(iters):
        g = ((Z > 0) * sG) @ X
        gn = np.linalg.norm(g, axis=1, keepdims=True)
        cand = u + eta[:, None] * g / np.maximum(gn, 1e-300)
        cand /= np.maximum(np.linalg.norm(cand, axis=1, keepdims=True), 1e-300)
        Zc = cand @ X.T
        cval = np.einsum("kn,kn->k", np.maximum(Zc, 0), sG)
        better = (cval > val) & live
        u[better], val[better], Z[better] = cand[better], cval[better], Zc[better]
        eta = np.where(live, np.where(better, np.minimum(eta * 1.5, 4.0), eta * 0.5), eta)
        small = eta < 1e-6
        live &= ~np.repeat([small[:k].all(), small[k:].all()], k)
        if not live.any():
            break
    out = [(float(v), uu, float(sg)) for v, uu, sg in zip(val, u, s)]
    out.sort(key=lambda t: -t[0])
    return out
