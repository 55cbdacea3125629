"""The rounding primitives of the proofs (:mod:`multiconvex.rounding`) against exact rational arithmetic."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import scipy.linalg

from multiconvex.rounding import (
    MidpointRadius,
    inverse_quadratic_upper,
    inverse_quadratic_upper_rows,
    min_eigenvalue_floor,
    norm_upper,
)


def _exact_solve(P: np.ndarray, v: np.ndarray) -> list[Fraction]:
    """``P⁻¹v`` in rationals (Gaussian elimination with the first nonzero pivot)."""
    n = len(v)
    rows = [[Fraction(float(x)) for x in P[i]] + [Fraction(float(v[i]))] for i in range(n)]
    for j in range(n):
        p = next(i for i in range(j, n) if rows[i][j] != 0)
        rows[j], rows[p] = rows[p], rows[j]
        for i in range(n):
            if i != j and rows[i][j] != 0:
                f = rows[i][j] / rows[j][j]
                rows[i] = [a - f * b for a, b in zip(rows[i], rows[j])]
    return [rows[i][n] / rows[i][i] for i in range(n)]


def _exact_quadratic(P: np.ndarray, v: np.ndarray) -> Fraction:
    return sum((Fraction(float(a)) * b for a, b in zip(v, _exact_solve(P, v))), Fraction(0))


def _exactly_positive_definite(P: np.ndarray, shift: float) -> bool:
    """Whether ``P − shift·I`` is positive definite, in rationals (every pivot of its LDLᵀ above 0)."""
    n = P.shape[0]
    A = [[Fraction(float(P[i, j])) - (Fraction(shift) if i == j else 0) for j in range(n)] for i in range(n)]
    for j in range(n):
        if A[j][j] <= 0:
            return False
        for i in range(j + 1, n):
            f = A[i][j] / A[j][j]
            A[i] = [a - f * b for a, b in zip(A[i], A[j])]
    return True


def _ill_conditioned(rng: np.random.Generator, n: int, cond: float) -> np.ndarray:
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    P = (Q * np.logspace(0, -np.log10(cond), n)) @ Q.T
    return 0.5 * (P + P.T)


def test_the_radius_of_a_moved_vector_covers_its_exact_sum():
    """``g + Aᵀx`` with terms of 1e16 that cancel down to units: the exact sum lies within the radius."""
    rng = np.random.default_rng(0)
    for trial in range(200):
        m, c = int(rng.integers(1, 30)), int(rng.integers(1, 5))
        A = rng.standard_normal((m, c)) * 10.0 ** rng.integers(-8, 17, (m, 1))
        x = rng.standard_normal(m)
        g = -(A.T @ x) + rng.standard_normal(c)  # cancels with Aᵀx up to O(1) and its rounding
        start = MidpointRadius(g, np.abs(g) * (1e-20 if trial % 2 else 0.0))  # and a radius already carried
        moved = start.plus(A, x)
        for j in range(c):
            exact = Fraction(float(g[j])) + sum(Fraction(float(A[i, j])) * Fraction(float(x[i])) for i in range(m))
            # the exact vector is anywhere within the old radius: the new one covers the worst of it
            assert abs(exact - Fraction(float(moved.value[j]))) + Fraction(float(start.radius[j])) \
                <= Fraction(float(moved.radius[j]))


def test_the_inverse_quadratic_bound_is_above_the_exact_value_and_tight_when_well_conditioned():
    rng = np.random.default_rng(1)
    for trial in range(150):
        n = int(rng.integers(1, 5))
        cond = 10.0 ** rng.uniform(0, 15)
        P = _ill_conditioned(rng, n, cond)
        v = rng.standard_normal(n) * 10.0 ** rng.uniform(-5, 5)
        floor = min_eigenvalue_floor(P)
        upper = inverse_quadratic_upper(P, scipy.linalg.cho_factor(P), v, floor) if floor > 0 else None
        if upper is None:
            continue
        exact = _exact_quadratic(P, v)
        assert exact <= Fraction(upper), (trial, cond)
        if cond < 1e6:
            assert upper <= float(exact) * (1 + 1e-9)


def test_the_row_by_row_bound_holds_for_every_row_of_a_batch():
    """:func:`inverse_quadratic_upper_rows` (the triangle terms of every concave kink of a unit in one product): each
    row's bound above its exact value whatever the other rows hold (magnitudes 1e-160 … 1e8 side by side, rows of
    zeros, up to 40 rows through BLAS's matrix products), 0 for a zero row, ``inf`` for a nonzero one without a
    floor."""
    rng = np.random.default_rng(5)
    for trial in range(40):
        n = int(rng.integers(1, 9))
        P = _ill_conditioned(rng, n, 10.0 ** rng.uniform(0, 12)) * 10.0 ** rng.uniform(-6, 6)
        floor = min_eigenvalue_floor(P)
        if not floor > 0:
            continue
        k = int(rng.integers(1, 40))
        V = rng.standard_normal((k, n)) * 10.0 ** rng.choice([-160.0, -8.0, 0.0, 8.0], (k, 1))
        V[rng.random(k) < 0.2] = 0.0
        bounds = inverse_quadratic_upper_rows(P, scipy.linalg.cho_factor(P), V, floor)
        assert bounds.shape == (k,)
        for v, upper in zip(V, bounds):
            if not v.any():
                assert upper == 0.0
                continue
            assert _exact_quadratic(P, v) <= Fraction(float(upper)), trial
    no_floor = inverse_quadratic_upper_rows(np.diag([1.0, 0.0]), (np.eye(2), True), np.array([[1.0, 0.0], [0.0, 0.0]]),
                                            0.0)
    assert no_floor.tolist() == [np.inf, 0.0]


def test_the_inverse_quadratic_bound_does_not_trust_the_factor():
    """A factor of another matrix chooses a poor ``y``: the bound is looser, never below the exact value."""
    rng = np.random.default_rng(2)
    for _ in range(50):
        P = _ill_conditioned(rng, 3, 1e3)
        wrong = scipy.linalg.cho_factor(P + np.diag(rng.random(3)))
        v = rng.standard_normal(3)
        assert _exact_quadratic(P, v) <= Fraction(inverse_quadratic_upper(P, wrong, v, min_eigenvalue_floor(P)))


def test_without_a_floor_the_inverse_quadratic_bound_is_infinite_unless_v_is_zero():
    P = np.diag([1.0, 0.0])
    assert inverse_quadratic_upper(P, (np.eye(2), True), np.array([1.0, 0.0]), 0.0) == np.inf
    assert inverse_quadratic_upper(P, (np.eye(2), True), np.zeros(2), 0.0) == 0.0


def test_the_eigenvalue_floor_is_proven_in_exact_arithmetic():
    """``P − floor·I`` is positive definite in rationals; ``0`` for singular and indefinite ``P``; near the smallest
    eigenvalue when it is far above rounding."""
    rng = np.random.default_rng(3)
    proven = 0
    for _ in range(150):
        n = int(rng.integers(1, 6))
        P = _ill_conditioned(rng, n, 10.0 ** rng.uniform(0, 17)) * 10.0 ** rng.uniform(-10, 10)
        floor = min_eigenvalue_floor(P)
        if floor > 0:
            proven += 1
            assert _exactly_positive_definite(P, floor)
    assert proven > 100
    B = rng.standard_normal((4, 2))
    assert min_eigenvalue_floor(B @ B.T) == 0.0  # rank 2
    assert min_eigenvalue_floor(np.diag([1.0, -1e-3])) == 0.0
    P = _ill_conditioned(rng, 4, 10.0)
    assert 0.85 * np.linalg.eigvalsh(P)[0] < min_eigenvalue_floor(P)


def test_underflow_is_paid_for():
    """(a review's cases) ``vᵀy`` underflowing to 0 (``v = 1e-170``), a result in the subnormal range, and ``e²``
    underflowing where ``P`` is tiny: every bound is above the exact value, never 0 for ``v ≠ 0``; and no floor is
    claimed for a matrix near the underflow threshold (one of scale 1e-310 had a floor above its ``λ_min``)."""
    one = np.eye(1)
    for v in (1e-170, 2.2066314761798312e-156, 3e-148):
        upper = inverse_quadratic_upper(one, scipy.linalg.cho_factor(one), np.array([v]), 1.0)
        assert upper > 0 and Fraction(v) ** 2 <= Fraction(upper)
    P = np.array([[1e13]])
    upper = inverse_quadratic_upper(P, scipy.linalg.cho_factor(P), np.array([3e-148]), min_eigenvalue_floor(P))
    assert Fraction(3e-148) ** 2 / Fraction(1e13) <= Fraction(upper)
    rng = np.random.default_rng(4)
    for _ in range(50):
        assert min_eigenvalue_floor(_ill_conditioned(rng, 3, 10.0) * 1e-310) == 0.0
    assert norm_upper(np.array([3e-170, 4e-170])) >= 5e-170
    assert norm_upper(np.zeros(3)) == 0.0
