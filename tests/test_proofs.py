"""Global certificates that are proofs (issue 11; THEORY.md §6): the MF polar's Cholesky bound.

Every certified answer is checked against an independent one (a dense SVD, the closed-form
soft-thresholding optimum). The generators are adversarial: scales 1e-8…1e8, low rank, repeated
singular values, λ exactly at a singular value, shapes up to 1000 × 800.
"""

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from scipy.optimize import linprog

from multiconvex.errors import InvalidInputError
from multiconvex.globalopt import patterns as pm
from multiconvex.globalopt.certificate import dual_lower_bound
from multiconvex.globalopt.mf_polar import mf_polar
from multiconvex.globalopt.pattern_proof import (
    CountBudgetExceeded,
    certified_signs,
    count_chambers,
    integer_rows,
    prove_complete,
)
from multiconvex.globalopt.patterns import count_patterns_upper_bound, enumerate_patterns
from multiconvex.globalopt.spectral_bound import UNIT_ROUNDOFF, prove_spectral_bound
from multiconvex.models import MatrixFactorization, svt_optimum

KINDS = ("noise", "low_rank", "repeated", "spiked", "tiny_rank_one")


def adversarial_matrix(kind: str, m: int, n: int, scale: float, seed: int) -> np.ndarray:
    """A matrix whose top singular values are hard for Lanczos or for a rounding analysis."""
    rng = np.random.default_rng(seed)
    q = min(m, n)
    if kind == "noise":
        A = rng.standard_normal((m, n))
    elif kind == "low_rank":
        r = int(rng.integers(1, 6))
        A = rng.standard_normal((m, r)) @ rng.standard_normal((r, n)) + 1e-3 * rng.standard_normal((m, n))
    elif kind in ("repeated", "spiked"):
        Qu, _ = np.linalg.qr(rng.standard_normal((m, q)))
        Qv, _ = np.linalg.qr(rng.standard_normal((n, q)))
        if kind == "repeated":  # the top value repeated 7 times, a second cluster just below it
            s = np.concatenate([np.full(7, 5.0), np.full(5, 5.0 * (1 - 1e-7)), rng.uniform(0, 4, q - 12)])
        else:  # one value a hair above a large cluster: Lanczos' hardest case for "is it the largest"
            s = np.concatenate([[1.0 + 1e-9], np.ones(q // 3), rng.uniform(0, 0.5, q - 1 - q // 3)])
        A = (Qu * s) @ Qv.T
    else:  # rank one plus entries at the rounding level
        A = np.outer(rng.standard_normal(m), rng.standard_normal(n)) + 1e-15 * rng.standard_normal((m, n))
    return scale * A


def cases(count: int, max_m: int, max_n: int, seed: int):
    rng = np.random.default_rng(seed)
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        m, n = int(rng.integers(12, max_m + 1)), int(rng.integers(12, max_n + 1))
        if rng.random() < 0.5:
            m, n = n, m
        scale = 10.0 ** float(rng.uniform(-8, 8))
        yield kind, m, n, scale, int(rng.integers(1 << 30))


def check_polar(G: np.ndarray, k: int, **kw) -> str:
    """The proven bound is above the dense SVD's σ_max and close to it; the value is attained. Returns the method."""
    p = mf_polar(G, k=k, **kw)
    s = np.linalg.svd(G, compute_uv=False)
    slack = 8 * min(G.shape) * UNIT_ROUNDOFF  # the dense SVD's own error, relative
    assert p.exact and p.method.endswith("+cholesky"), p.method
    assert p.upper >= s[0] * (1 - slack), (p.upper, s[0])   # a false proof would be caught here
    assert p.upper <= s[0] * (1 + 1e-6)
    assert p.value <= s[0] * (1 + slack)
    assert p.sigmas == pytest.approx(s[:len(p.sigmas)], rel=1e-6, abs=1e-9 * s[0])  # the rest: to rounding of σ_max
    return p.method


@pytest.mark.parametrize("kind,m,n,scale,seed", list(cases(25, 260, 200, seed=0)))
def test_mf_polar_is_a_proof_on_adversarial_matrices(kind, m, n, scale, seed):
    check_polar(adversarial_matrix(kind, m, n, scale, seed), k=3)


@pytest.mark.slow
@pytest.mark.parametrize("kind,m,n,scale,seed", list(cases(200, 1000, 800, seed=1)))
def test_mf_polar_is_a_proof_on_200_adversarial_matrices_up_to_1000_by_800(kind, m, n, scale, seed):
    check_polar(adversarial_matrix(kind, m, n, scale, seed), k=5)


@pytest.mark.parametrize("shape", [(300, 200), (200, 300)])
def test_gaussian_matrices_that_crashed_arpack_are_proven(shape):
    """Regression: ``svds(tol=1e-12)`` raised ArpackNoConvergence inside MF grow on Gaussian 300×200 / 200×300."""
    for seed in range(4):
        check_polar(np.random.default_rng(seed).standard_normal(shape), k=5)


@pytest.mark.parametrize("kind,m,n,scale,seed", [c if i < 3 else pytest.param(*c, marks=pytest.mark.slow)
                                                 for i, c in enumerate(cases(10, 240, 200, seed=5))])
def test_a_start_block_saves_steps_and_never_decides_the_proof(kind, m, n, scale, seed):
    """grow passes its factor ``V`` as ``start``: the top right singular vectors converge in one step; a start
    that misses the top value (the next ones) or random vectors only cost steps — the bound stays a proof."""
    G = adversarial_matrix(kind, max(m, 120), max(n, 120), scale, seed)
    k = 3
    Vt = np.linalg.svd(G, full_matrices=False)[2]
    top = mf_polar(G, k=k, method="svds", start=Vt[:k].T)
    assert top.method == "subspace+cholesky" and top.steps == 1
    for start in (Vt[:k].T, Vt[1:k + 2].T, np.random.default_rng(seed).standard_normal((G.shape[1], 2))):
        check_polar(G, k, method="svds", start=start)


def test_a_start_above_prove_below_is_not_proven_and_bad_starts_are_refused():
    G = adversarial_matrix("low_rank", 300, 200, 1.0, seed=1)
    V = np.linalg.svd(G, full_matrices=False)[2][:2].T
    p = mf_polar(G, k=2, method="svds", prove_below=0.0, start=V)
    assert not p.exact and p.method == "subspace" and p.upper == math.inf and p.steps == 1
    with pytest.raises(InvalidInputError, match="start"):
        mf_polar(G, k=2, start=np.ones((300, 2)))


def test_an_estimate_below_the_largest_singular_value_is_refuted():
    G = adversarial_matrix("spiked", 150, 120, 1.0, seed=3)
    top = np.linalg.svd(G, compute_uv=False)[0]
    assert prove_spectral_bound(G, top * (1 - 1e-6)).proven is False
    assert prove_spectral_bound(G, 1.0).proven is False   # the cluster below the spike: refuted, 1e-9 apart
    ok = prove_spectral_bound(G, top)
    assert ok.proven and top <= ok.upper <= top * (1 + 1e-9)


@pytest.mark.parametrize("scale", [1e-150, 1e-8, 1.0, 1e8, 1e150])
def test_the_bound_is_scale_equivariant_and_never_overflows(scale):
    G = scale * np.random.default_rng(0).standard_normal((40, 30))
    top = np.linalg.svd(G, compute_uv=False)[0]
    b = prove_spectral_bound(G, top)
    assert b.proven and top * (1 - 1e-14) <= b.upper <= top * (1 + 1e-9)


def test_zero_and_nonfinite_matrices():
    assert prove_spectral_bound(np.zeros((5, 3)), 0.0).upper == 0.0
    bad = np.ones((4, 3))
    bad[0, 0] = math.nan
    assert prove_spectral_bound(bad, 1.0).proven is False
    assert mf_polar(np.zeros((200, 150)), k=2, method="svds").upper == 0.0


def lam_at_singular_value(Y: np.ndarray, j: int) -> float:
    return float(np.linalg.svd(Y, compute_uv=False)[j])


def grow_cases(count: int, max_m: int, max_n: int, seed: int):
    rng = np.random.default_rng(seed)
    for i in range(count):
        kind = ("noise", "low_rank", "repeated")[i % 3]
        m, n = int(rng.integers(20, max_m + 1)), int(rng.integers(20, max_n + 1))
        yield kind, m, n, 10.0 ** float(rng.uniform(-8, 8)), int(rng.integers(1 << 30)), bool(i % 2)


def check_grow(kind, m, n, scale, seed, at_singular_value):
    Y = adversarial_matrix(kind, m, n, scale, seed)
    s = np.linalg.svd(Y, compute_uv=False)
    j = 1 + seed % 4
    lam = float(s[j]) if at_singular_value else float(0.5 * (s[j] + s[j + 1]))
    _, value = svt_optimum(Y, lam)
    mf = MatrixFactorization(lam=lam, algorithm="grow", random_state=0).fit(Y, max_rounds=60)
    g = mf.result_.certificate.globalopt
    assert g.lower_bound <= value * (1 + 1e-12)          # the proven lower bound is below the true optimum
    if g.global_optimal:                                  # a certificate is never false
        assert g.method.endswith("+cholesky")
        assert mf.objective_ <= value * (1 + 2e-6)
    return g.global_optimal


@pytest.mark.parametrize("kind,m,n,scale,seed,at_sv", list(grow_cases(6, 120, 90, seed=2)))
def test_grow_certificates_match_the_closed_form(kind, m, n, scale, seed, at_sv):
    assert check_grow(kind, m, n, scale, seed, at_sv)


@pytest.mark.slow
@pytest.mark.parametrize("kind,m,n,scale,seed,at_sv", list(grow_cases(30, 400, 300, seed=3)))
def test_grow_never_crashes_or_certifies_falsely_on_adversarial_data(kind, m, n, scale, seed, at_sv):
    check_grow(kind, m, n, scale, seed, at_sv)


# ----------------------------------------------------------------------------------- pattern enumeration


def feasible_signs_by_lp(X):
    """Brute force: every sign vector σ with {u : σ_i x_iᵀu > 0 for all non-zero rows} non-empty (one LP each)."""
    N, d = X.shape
    found = set()
    for sigma in itertools.product((1.0, -1.0), repeat=N):
        A = -np.asarray(sigma)[:, None] * X
        res = linprog(c=np.r_[np.zeros(d), -1.0], A_ub=np.c_[A, np.ones(N)], b_ub=np.zeros(N),
                      bounds=[(-1, 1)] * d + [(None, 1)], method="highs")
        if res.status == 0 and -res.fun > 1e-9:
            found.add(tuple(s > 0 for s in sigma))
    return found


def with_bias(points):
    P = np.asarray(points, dtype=float)
    return np.c_[P, np.ones(len(P))]


DEGENERATE = {
    "collinear": with_bias([[k, 2 * k + 1] for k in range(-3, 4)]),                  # rank 2
    "grid": with_bias([[a, b] for a in (-1, 0, 1) for b in (-1, 0, 1)][:8]),         # concurrent triples
    "duplicates": with_bias([[0, 0], [1, 2], [1, 2], [-1, 3], [2, -1], [2, -1], [0.5, 0.25]]),
    "on_a_hyperplane": np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [1, -1, 0], [0, 0, 1], [1, 1, 1.0]]),
    "opposite_and_zero": np.array([[1, 2, 3], [-2, -4, -6], [0, 0, 0], [3, -1, 2], [1, 1, 1], [2, 1, 5.0]]),
}


@pytest.mark.parametrize("name", list(DEGENERATE))
def test_exact_chamber_count_and_proven_enumeration_on_degenerate_data(name):
    X = DEGENERATE[name]
    nz = np.any(X != 0, axis=1)
    brute = feasible_signs_by_lp(X[nz])
    assert count_chambers(integer_rows(X)) == len(brute)
    pats = enumerate_patterns(X)
    assert {tuple(p[nz]) for p in pats} == brute
    assert pm.patterns_complete(X, pats)                      # proven: certified points = exact count


def test_rows_parallel_only_up_to_rounding_are_not_proven_complete():
    """Rows 1e-12 apart in angle are one hyperplane for the construction; the sliver between them is a real
    chamber, so the exact count exceeds what was built and the enumeration is not called complete."""
    X = np.vstack([with_bias([[0.3, -1.2], [1.1, 0.4], [-0.7, 0.9]]), [0.3, -1.2 + 1e-12, 1.0]])
    assert count_chambers(integer_rows(X)) == count_patterns_upper_bound(4, 3) == 14   # 4 planes, general position
    pats = enumerate_patterns(X)
    assert not pm.patterns_complete(X, pats)


def test_certified_signs_agree_with_exact_rational_arithmetic_at_ties():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 3))
    U = rng.standard_normal((30, 3))
    U -= (np.sum(U * X, axis=1) / np.sum(X * X, axis=1))[:, None] * X   # u_p ⟂ x_p up to rounding
    S = certified_signs(X, U)
    for p in range(30):
        exact = sum(Fraction(float(a)) * Fraction(float(b)) for a, b in zip(U[p], X[p]))
        assert S[p, p] == (exact > 0) - (exact < 0)
    assert np.array_equal(certified_signs(X, np.eye(3)), np.sign(X.T).astype(np.int8))


def test_mf_polar_refuses_bad_input_with_the_fix():
    with pytest.raises(InvalidInputError, match="method"):
        mf_polar(np.ones((3, 2)), method="lanczos")
    with pytest.raises(InvalidInputError, match="NaN"):
        mf_polar(np.full((3, 2), np.inf))


# ----------------------------------------------------------------------------------- the dual bound's arithmetic


def exact_dual_bound(G: np.ndarray, Y: np.ndarray, lam: float, rho: float) -> Fraction:
    """``max_{0 ≤ t ≤ λ/ρ} t⟨G, Y⟩ − t²‖G‖²/2`` in rational arithmetic (every double is a rational)."""
    gy = sum((Fraction(float(a)) * Fraction(float(b)) for a, b in zip(G.ravel(), Y.ravel())), Fraction(0))
    gg = sum((Fraction(float(a)) ** 2 for a in G.ravel()), Fraction(0))
    t_max = Fraction(lam) / Fraction(rho)
    t = min(max(gy / gg, Fraction(0)), t_max) if gg else Fraction(0)
    return t * gy - t * t * gg / 2


def test_the_dual_bound_carries_a_rounding_margin_for_its_own_products():
    """⟨G, Y⟩ summed in floating point cancels 1e16 against −1e16 and keeps a rounding error of 1: the
    unguarded formula claimed 8/3 where the bound over t is exactly 3/2."""
    G, Y, lam, rho = np.ones(3), np.array([1e16, 3.0, -1e16]), 1.0, 1e-9
    gy, gg = float(np.vdot(G, Y)), float(np.vdot(G, G))
    naive = (gy / gg) * gy - 0.5 * (gy / gg) ** 2 * gg
    exact = exact_dual_bound(G, Y, lam, rho)
    assert naive > exact                        # what the margin is for: without it the "bound" is violated
    assert Fraction(dual_lower_bound(G, Y, lam, rho)) <= exact


@pytest.mark.parametrize("seed", range(40))
def test_the_dual_bound_is_below_its_exact_rational_value(seed):
    """Random G, Y with heavy cancellation and scales 1e-8…1e8: the float bound never exceeds the exact one,
    and stays within a relative 1e-9 of it where there is no cancellation to lose."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 60))
    scale = 10.0 ** rng.uniform(-8, 8)
    Y = scale * rng.standard_normal(n) * 10.0 ** rng.integers(0, 16, n)
    G = scale * rng.standard_normal(n) if seed % 2 else Y - scale * rng.standard_normal(n)
    rho = abs(float(rng.standard_normal())) * float(np.linalg.norm(G))
    lam = float(rng.uniform(0.1, 2.0)) * rho
    exact = exact_dual_bound(G, Y, lam, rho)
    lb = dual_lower_bound(G, Y, lam, rho)
    assert Fraction(lb) <= exact
    if seed % 2 == 0:  # G ≈ Y: no cancellation in ⟨G, Y⟩
        assert lb >= float(exact) * (1 - 1e-9) - 1e-300


def test_the_dual_bound_of_a_large_matrix_keeps_its_digits():
    """The margin is γ_{m+n} ‖G‖‖Y‖ (two-stage sums), not γ_{mn}: at 2000 × 1000 a relative 1e-12."""
    rng = np.random.default_rng(0)
    Y = rng.standard_normal((2000, 1000))
    G = 0.5 * Y
    lb = dual_lower_bound(G, Y, 1.0, 1.0)    # t = 1: ⟨G, Y⟩ − ‖G‖²/2 = 0.375 ‖Y‖²
    ref = 0.375 * float(np.vdot(Y, Y))
    assert ref * (1 - 1e-11) <= lb <= ref


# ----------------------------------------------------------------------------------- the chamber-count budget


def near_rank_deficient_rows(m: int, seed: int) -> np.ndarray:
    """``m`` rows of exact rank 3 whose third coordinate is at the rounding level: floating-point rank 2."""
    rng = np.random.default_rng(seed)
    X = np.c_[rng.standard_normal((m, 2)), 1e-17 * rng.standard_normal(m)]
    assert np.linalg.matrix_rank(X) == 2
    return X


def test_the_chamber_count_stops_at_its_budget_where_the_float_rank_understates_the_cost():
    X = near_rank_deficient_rows(60, 0)
    normals = integer_rows(X)
    assert len(normals) == 60
    exact = count_chambers(normals)                       # rank 3: about m² chambers, ~m²/2 work
    assert exact > 2 * 60                                 # more than the rank-2 count the float rank suggests
    with pytest.raises(CountBudgetExceeded):
        count_chambers(normals, budget=500)
    nz = np.arange(60)
    pats, proven, why = prove_complete(X, nz, np.zeros((1, 60), bool), np.zeros((1, 3)), budget=500)
    assert not proven and "budget" in why                # the float-rank pre-check (60 ≤ 500) let it through
