"""The null-space rescaling step of the meta-algorithm (THEORY.md §4 step 3, H&V proof of Thm 2).

If the subnetwork outputs are linearly dependent, ``Σ β_i φ(W_i) = 0`` for some ``β ≠ 0``.
Choose β's sign so that ``Σ β_i θ(W_i) ≤ 0``, scale it so that ``min β_i = −1`` and set
``W_i ← (1 + β_i)^{1/p} W_i`` (p the common degree of φ and θ). Then
``Σ φ(new W_i) = Σ (1 + β_i) φ(W_i)`` is the old output, the regulariser changes by
``Σ β_i θ(W_i) ≤ 0``, and the subnetwork with ``β_i = −1`` becomes exactly zero — room for a new
one without growing r.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger("multiconvex")

__all__ = ["RescaleStep", "null_combination", "rescale"]


@dataclass(frozen=True)
class RescaleStep:
    """One rescaling: ``beta`` (``min = −1``), the factors ``(1 + β_i)^{1/p}``, the zeroed index,
    and the regulariser change ``Σ β_i θ_i ≤ 0``."""

    beta: np.ndarray
    factors: np.ndarray
    zeroed: int
    theta_change: float


def null_combination(*, outputs: np.ndarray | None = None, gram: np.ndarray | None = None,
                     rtol: float = 1e-10) -> np.ndarray | None:
    """A unit vector β with ``Σ β_i φ_i ≈ 0``, or None when the outputs are independent.

    Parameters
    ----------
    outputs : ndarray (n_outputs, r), optional
        The subnetwork outputs, one flattened ``φ(W_i)`` per column (preferred: SVD, accurate).
    gram : ndarray (r, r), optional
        ``⟨φ_i, φ_j⟩`` when the outputs are too large to stack (e.g. ``(UᵀU) ∘ (VᵀV)`` for a
        factorization); its eigenvalues are squared singular values, so the test is ``√λ_min``.
    rtol : float
        Dependence threshold: smallest singular value ``≤ rtol · largest``.

    Examples
    --------
    >>> import numpy as np
    >>> beta = null_combination(outputs=np.array([[1.0, 2.0], [1.0, 2.0]]))
    >>> np.allclose(np.array([[1.0, 2.0], [1.0, 2.0]]) @ beta, 0)
    True
    """
    if outputs is not None:
        A = np.asarray(outputs, dtype=float)
        r = A.shape[1]
        if r == 0:
            return None
        if r > A.shape[0]:  # more subnetworks than output entries: a null vector exists
            _, _, Vt = np.linalg.svd(A, full_matrices=True)
            return Vt[-1]
        _, s, Vt = np.linalg.svd(A, full_matrices=False)
        if s[0] == 0:
            return Vt[-1]
        return Vt[-1] if s[-1] <= rtol * s[0] else None
    if gram is None:
        raise ValueError("null_combination: pass outputs or gram")
    K = 0.5 * (np.asarray(gram, dtype=float) + np.asarray(gram, dtype=float).T)
    if K.shape[0] == 0:
        return None
    w, Q = np.linalg.eigh(K)
    top = max(w[-1], 0.0)
    if top == 0 or np.sqrt(max(w[0], 0.0)) <= rtol * np.sqrt(top):
        return Q[:, 0]
    return None


def rescale(beta: np.ndarray, thetas: Sequence[float] | np.ndarray, degree: int) -> RescaleStep:
    """Orient and scale a null combination β and return the factors that zero one subnetwork.

    ``thetas`` are the regulariser values ``θ(W_i) ≥ 0``; ``degree`` is p. The sign of β is chosen
    so that ``Σ β_i θ_i ≤ 0`` (with θ > 0 that leaves some ``β_i < 0``); then β is scaled so that
    ``min β_i = −1``, and the factors are ``(1 + β_i)^{1/p}``.

    Examples
    --------
    >>> step = rescale(np.array([1.0, -1.0]) / np.sqrt(2), [2.0, 1.0], degree=2)
    >>> step.beta.tolist(), step.zeroed, step.theta_change
    ([-1.0, 1.0], 0, -1.0)
    """
    beta = np.asarray(beta, dtype=float).copy()
    th = np.asarray(thetas, dtype=float)
    change = float(beta @ th)
    if change > 0 or (change == 0 and beta.min() >= 0):
        beta = -beta
    if beta.min() >= 0:  # β ≥ 0 and Σ β θ ≤ 0 with θ ≥ 0: only possible with θ = 0 where β > 0
        beta = -beta
    beta = beta / (-beta.min())
    zeroed = int(np.argmin(beta))
    beta[zeroed] = -1.0
    factors = np.power(np.maximum(1.0 + beta, 0.0), 1.0 / degree)
    return RescaleStep(beta=beta, factors=factors, zeroed=zeroed, theta_change=float(beta @ th))
