"""The factorization objective from its expansion: the rounding bound is never below the true error (issue 11).

The true error is measured against exact rational arithmetic (``fractions.Fraction``) on adversarial data:
scales 1e-8…1e8, factor columns of very different sizes, near-exact fits (where the expansion cancels),
tiny and huge λ. The block steps use the expansion only where its bound is ≤ 1e-3 of the gap tolerance.
"""

import math
from fractions import Fraction

import numpy as np
import pytest

from multiconvex.drivers import DriverOptions, run
from multiconvex.globalopt import mf_problem
from multiconvex.globalopt.grow import GrowOptions, grow
from multiconvex.globalopt.mf_expanded import CHUNK, FactorizationValues, chunked_product, tree_sum
from multiconvex.globalopt.mf_problem import MFForm, MFGrowProblem, MFState
from multiconvex.globalopt.spectral_bound import gamma
from multiconvex.models import svt_optimum


def exact_objective(Y, U, V, lam) -> Fraction:
    """``½‖Y − UVᵀ‖² + (λ/2)(‖U‖² + ‖V‖²)`` of the stored doubles, in rational arithmetic."""
    Yf = [[Fraction(float(x)) for x in row] for row in Y]
    Uf = [[Fraction(float(x)) for x in row] for row in U]
    Vf = [[Fraction(float(x)) for x in row] for row in V]
    k = U.shape[1]
    total = Fraction(0)
    for i, urow in enumerate(Uf):
        for j, vrow in enumerate(Vf):
            r = Yf[i][j] - sum(urow[c] * vrow[c] for c in range(k))
            total += r * r
    pen = sum(x * x for row in Uf for x in row) + sum(x * x for row in Vf for x in row)
    return total / 2 + Fraction(float(lam)) / 2 * pen


def adversarial_factorization(kind: str, seed: int):
    rng = np.random.default_rng(seed)
    m, n, k = int(rng.integers(5, 14)), int(rng.integers(4, 12)), int(rng.integers(1, 4))
    scale = 10.0 ** rng.uniform(-8, 8)
    U = rng.standard_normal((m, k)) * 10.0 ** rng.uniform(-4, 4, k)      # columns of very different sizes
    V = rng.standard_normal((n, k)) * 10.0 ** rng.uniform(-4, 4, k)
    if kind == "near_exact_fit":   # Y = UVᵀ up to rounding-level noise: the expansion cancels almost entirely
        Y = U @ V.T + 1e-14 * np.abs(U @ V.T).max() * rng.standard_normal((m, n))
    elif kind == "exact_fit":
        Y = U @ V.T
    elif kind == "noise":
        Y = rng.standard_normal((m, n)) * np.abs(U @ V.T).max()
    else:                          # "signal_plus_noise"
        Y = U @ V.T + 0.1 * np.abs(U @ V.T).max() * rng.standard_normal((m, n))
    lam = float(10.0 ** rng.uniform(-10, 2) * np.abs(Y).max())
    return scale * Y, math.sqrt(scale) * U, math.sqrt(scale) * V, scale * lam


KINDS = ("near_exact_fit", "exact_fit", "noise", "signal_plus_noise")


@pytest.mark.parametrize("need", [None, 0.0], ids=["frobenius", "holder"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", range(6))
def test_the_bound_is_never_below_the_exact_error(kind, seed, need):
    """``need=0`` forces the second bound on ‖|Y|‖₂ (√(‖Y‖₁‖Y‖_∞)) as well."""
    Y, U, V, lam = adversarial_factorization(kind, seed)
    f, err = FactorizationValues(Y, lam).value(U, V, need=need)
    assert math.isfinite(err)
    assert abs(Fraction(f) - exact_objective(Y, U, V, lam)) <= Fraction(err)


@pytest.mark.parametrize("seed", range(4))
def test_the_bound_holds_with_remembered_products_either_way(seed):
    """After a V step the value uses ``YᵀU`` (remembered for this U), after a U step ``YV``."""
    Y, U, V, lam = adversarial_factorization("signal_plus_noise", seed)
    vals = FactorizationValues(Y, lam)
    vals.YtU(U)
    f1, e1 = vals.value(U, V)                  # through YᵀU
    f2, e2 = FactorizationValues(Y, lam).value(U, V)   # through YV
    exact = exact_objective(Y, U, V, lam)
    assert abs(Fraction(f1) - exact) <= Fraction(e1) and abs(Fraction(f2) - exact) <= Fraction(e2)


def test_the_bound_is_far_below_a_realistic_tolerance_and_the_expansion_cancels_near_a_perfect_fit():
    rng = np.random.default_rng(0)
    U, V = rng.standard_normal((300, 5)), rng.standard_normal((200, 5))
    Y = U @ V.T + rng.standard_normal((300, 200))
    f, err = FactorizationValues(Y, 1.0).value(U, V)
    assert err <= 1e-3 * 1e-9 * f                # under 1e-3 of grow's tol·|f|: the block steps use it
    Y_fit = U @ V.T + 1e-9 * rng.standard_normal((300, 200))
    f, err = FactorizationValues(Y_fit, 1e-12).value(U, V)
    assert err > 1e-3 * 1e-9 * abs(f)           # here the form falls back to the residual


def test_tree_sum_depth_bounds_the_error_on_cancelling_sums():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(100_000) * 10.0 ** rng.uniform(-8, 8, 100_000)
    x[::7] = 1e16
    x[3::7] = -1e16
    s, depth = tree_sum(x)
    assert depth <= 4 * (CHUNK - 1)   # 100 000 terms: four levels of chunks
    exact = sum((Fraction(float(v)) for v in x), Fraction(0))
    assert abs(Fraction(s) - exact) <= Fraction(gamma(depth)) * Fraction(math.fsum(np.abs(x)) * (1 + 1e-15))


def test_chunked_product_bound_holds_entrywise():
    rng = np.random.default_rng(2)
    A = rng.standard_normal((3, 700)) * 10.0 ** rng.uniform(-6, 6, 700)
    B = rng.standard_normal((700, 2))
    B[::2] *= -1e6
    P, depth = chunked_product(A, B)
    assert depth < 700
    bound = gamma(depth) * (np.abs(A) @ np.abs(B)) * (1 + 1e-12)
    for i in range(3):
        for j in range(2):
            exact = sum((Fraction(float(a)) * Fraction(float(b)) for a, b in zip(A[i], B[:, j])), Fraction(0))
            assert abs(Fraction(P[i, j]) - exact) <= Fraction(bound[i, j])


def test_block_steps_use_the_expansion_only_within_a_thousandth_of_the_gap_tolerance():
    rng = np.random.default_rng(3)
    Y = rng.standard_normal((120, 80))
    x0 = {"U": rng.standard_normal((120, 3)), "V": rng.standard_normal((80, 3))}
    form = MFForm(Y, 0.5)
    res = run(form, x0, DriverOptions(algorithm="gauss-seidel", max_iters=50, tol=1e-9))
    assert form.counts["expanded"] > 0 and form.counts["residual"] == 0
    assert res.objective == pytest.approx(form.expanded.value(res.values["U"], res.values["V"])[0], rel=1e-14)
    # tol = 0: every value from the residual; a perfect fit with tiny λ: the bound is too large, the residual
    exact = MFForm(Y, 0.5)
    run(exact, x0, DriverOptions(algorithm="gauss-seidel", max_iters=50, tol=0.0))
    assert exact.counts["expanded"] == 0
    U, V = rng.standard_normal((120, 3)), rng.standard_normal((80, 3))
    fit = MFForm(U @ V.T, 1e-14)
    fit.set_tolerance(1e-9)
    fit.value(U, V)
    assert fit.counts == {"expanded": 0, "residual": 1}


def test_grow_results_are_unchanged_by_the_expanded_values(monkeypatch):
    Y = np.random.default_rng(4).standard_normal((150, 110)) + np.outer(np.arange(150.0), np.ones(110)) / 50
    s = np.linalg.svd(Y, compute_uv=False)
    lam = float(0.5 * (s[3] + s[4]))
    start = MFState(np.zeros((150, 0)), np.zeros((110, 0)))
    fast, _ = grow(MFGrowProblem(Y, lam), start, GrowOptions(n_maximisers=5))
    monkeypatch.setattr(mf_problem, "EXPANDED_SHARE", 0.0)     # every value from the residual, as before
    plain_problem = MFGrowProblem(Y, lam)
    plain, _ = grow(plain_problem, start, GrowOptions(n_maximisers=5))
    assert plain_problem.form.counts["expanded"] == 0
    assert fast.certificate.global_optimal and plain.certificate.global_optimal
    assert fast.objective == pytest.approx(plain.objective, rel=1e-13)
    assert fast.objective == pytest.approx(svt_optimum(Y, lam)[1], rel=1e-10)
    assert fast.subnetworks == plain.subnetworks
