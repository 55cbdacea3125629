"""Local search for the two-layer ReLU polar: multi-start ascent on the unit sphere (a lower bound)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["local_polar_search"]


def local_polar_search(X: np.ndarray, G: np.ndarray, starts: int, *, seed: Any = None,
                       iters: int = 60) -> list[tuple[float, np.ndarray, float]]:
    """Multi-start ascent of ``s·Gᵀ(X u)_+`` on the unit sphere, vectorised over starts.

    Each start moves to ``normalize(u + η g)`` with ``g = s·Xᵀ(G ∘ 1[Xu > 0])`` the gradient (on a
    chamber the objective is linear, and with ``η`` large the step jumps to the chamber's
    unconstrained maximiser ``g/‖g‖``); a step that does not improve halves that start's ``η``.
    Starts: Gaussian directions plus ``±XᵀG``-type directions. Returns ``(value, u, s)`` per start
    and sign, best first; each value is attained (a valid lower bound on the polar).
    """
    rng = np.random.default_rng(seed)
    d = X.shape[1]
    U0 = rng.standard_normal((max(starts, 1), d))
    extra = [X.T @ G, X.T @ np.maximum(G, 0), X.T @ np.minimum(G, 0)]
    U0 = np.concatenate([U0, np.array(extra), -np.array(extra)])
    U0 /= np.maximum(np.linalg.norm(U0, axis=1, keepdims=True), 1e-300)
    out = []
    for s in (1.0, -1.0):
        u = U0.copy()
        val = s * (np.maximum(u @ X.T, 0) @ G)
        eta = np.full(len(u), 4.0)
        for _ in range(iters):
            g = s * ((u @ X.T > 0) * G) @ X
            gn = np.linalg.norm(g, axis=1, keepdims=True)
            cand = u + eta[:, None] * g / np.maximum(gn, 1e-300)
            cand /= np.maximum(np.linalg.norm(cand, axis=1, keepdims=True), 1e-300)
            cval = s * (np.maximum(cand @ X.T, 0) @ G)
            better = cval > val
            u[better], val[better] = cand[better], cval[better]
            eta = np.where(better, np.minimum(eta * 1.5, 4.0), eta * 0.5)
            if (eta < 1e-6).all():
                break
        out += [(float(v), uu, s) for v, uu in zip(val, u)]
    out.sort(key=lambda t: -t[0])
    return out
