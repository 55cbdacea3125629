"""The global certificate's gap rests on a proven upper bound of the objective, not on its rounded value.

``gap = f̂ + e − lower`` with ``|f̂ − f| ≤ e`` proven: the bounds ``e`` of the factorization (from the residual or
the expansion) and of the two-layer ReLU units are checked against exact rational arithmetic
(``fractions.Fraction``) on adversarial data — cancellation, exact and near-exact fits, kinks of the ReLU,
entries from 1e-8 to 1e8 — and a gap within ``e`` of the tolerance is not certified.
"""

import math
from fractions import Fraction

import numpy as np
import pytest

from multiconvex.errors import InvalidInputError
from multiconvex.globalopt import make_certificate
from multiconvex.globalopt.certificate import norm_upper, objective_with_error, sum_of_squares
from multiconvex.globalopt.grow import GrowOptions, grow
from multiconvex.globalopt.mf_problem import MFForm, MFGrowProblem, MFState
from multiconvex.globalopt.relu_problem import ReLUGrowProblem, ReLUState
from multiconvex.models import svt_optimum


def exact(A) -> list:
    """The stored doubles of ``A`` as nested lists of Fractions (rows)."""
    A = np.atleast_2d(np.asarray(A, dtype=float))
    return [[Fraction(float(x)) for x in row] for row in A]


def exact_mf_objective(Y, U, V, lam) -> Fraction:
    """``½‖Y − UVᵀ‖² + (λ/2)(‖U‖² + ‖V‖²)`` of the stored doubles, in rational arithmetic."""
    Yf, Uf, Vf = exact(Y), exact(U), exact(V)
    k = U.shape[1]
    total = Fraction(0)
    for i, urow in enumerate(Uf):
        for j, vrow in enumerate(Vf):
            r = Yf[i][j] - sum((urow[c] * vrow[c] for c in range(k)), Fraction(0))
            total += r * r
    pen = sum(x * x for row in Uf + Vf for x in row)
    return total / 2 + Fraction(float(lam)) / 2 * pen


def exact_relu_objective(X, y, U, alpha, lam) -> Fraction:
    """``½‖y − Σ_j (X u_j)_+ α_j‖² + (λ/2)(‖U‖² + ‖α‖²)`` of the stored doubles, in rational arithmetic."""
    Xf, Uf, af, yf = exact(X), exact(U), exact(alpha)[0], exact(y)[0]
    total = Fraction(0)
    for i, xrow in enumerate(Xf):
        out = Fraction(0)
        for j, urow in enumerate(Uf):
            z = sum((a * b for a, b in zip(xrow, urow)), Fraction(0))
            out += max(z, Fraction(0)) * af[j]
        total += (yf[i] - out) ** 2
    pen = sum(x * x for row in Uf for x in row) + sum(a * a for a in af)
    return total / 2 + Fraction(float(lam)) / 2 * pen


def adversarial_factorization(kind: str, seed: int, lam_zero: bool = False):
    """Small ``(Y, U, V, λ)`` that make the residual's evaluation hard: a global scale 1e-8…1e8, factor columns
    1e-4…1e4 apart, and the kinds below. ``lam_zero``: λ = 0, so that the penalty's rounding cannot hide an
    error of the residual's (at a fit the true loss is then nothing but the product's rounding)."""
    rng = np.random.default_rng(seed)
    m, n, k = int(rng.integers(3, 9)), int(rng.integers(3, 8)), int(rng.integers(1, 4))
    scale = 10.0 ** rng.uniform(-8, 8)
    U = rng.standard_normal((m, k)) * 10.0 ** rng.uniform(-4, 4, k)
    V = rng.standard_normal((n, k)) * 10.0 ** rng.uniform(-4, 4, k)
    P = U @ V.T
    if kind == "exact_fit":            # R̂ = 0 while the exact residual is the product's rounding
        Y = P.copy()
    elif kind == "near_exact_fit":     # the residual is rounding-sized: every digit of it cancels
        Y = P + 1e-15 * np.abs(P).max() * rng.standard_normal((m, n))
    elif kind == "mixed_entries":      # entries of Y from 1e-8 to 1e8 of each other, partly fitted
        Y = P * (1.0 + 1e-10 * rng.standard_normal((m, n))) + rng.standard_normal((m, n)) * 10.0 ** rng.uniform(
            -8, 8, (m, n))
    else:                              # "noise"
        Y = rng.standard_normal((m, n)) * np.abs(P).max()
    lam = 0.0 if lam_zero else float(10.0 ** rng.uniform(-10, 2) * np.abs(Y).max())
    return scale * Y, math.sqrt(scale) * U, math.sqrt(scale) * V, scale * lam


MF_KINDS = ("exact_fit", "near_exact_fit", "mixed_entries", "noise")


@pytest.mark.parametrize("lam_zero", [False, True], ids=["lam", "lam0"])
@pytest.mark.parametrize("kind", MF_KINDS)
@pytest.mark.parametrize("seed", range(5))
def test_the_residual_value_bound_is_never_below_the_exact_error(kind, seed, lam_zero):
    Y, U, V, lam = adversarial_factorization(kind, seed, lam_zero)
    form = MFForm(Y, lam)                       # no tolerance set: every value is the residual's
    f, err = form.value_with_error(U, V)
    assert form.counts == {"expanded": 0, "residual": 1}
    assert math.isfinite(err) and f == form.value(U, V)
    assert abs(Fraction(f) - exact_mf_objective(Y, U, V, lam)) <= Fraction(err)


@pytest.mark.parametrize("kind", MF_KINDS)
@pytest.mark.parametrize("seed", range(3))
def test_the_expanded_value_passes_its_own_bound_on(kind, seed):
    """With a loose tolerance the expanded value is used, and its bound (not a smaller one) reaches the certificate."""
    Y, U, V, lam = adversarial_factorization(kind, seed)
    form = MFForm(Y, lam)
    form.set_tolerance(1e6)                     # any proven bound passes the gate
    f, err = form.value_with_error(U, V)
    assert form.counts["expanded"] == 1
    assert abs(Fraction(f) - exact_mf_objective(Y, U, V, lam)) <= Fraction(err)


def test_the_bound_is_rounding_sized_on_ordinary_data():
    rng = np.random.default_rng(1)
    Y = rng.standard_normal((200, 120))
    U, V = rng.standard_normal((200, 6)), rng.standard_normal((120, 6))
    f, err = MFForm(Y, 0.3).value_with_error(U, V)
    assert 0 < err <= 1e-13 * f
    assert MFForm(Y, 0.3).value_with_error(U[:, :0], V[:, :0])[1] <= 1e-13 * 0.5 * np.sum(Y**2)  # R = Y: exact


def adversarial_units(kind: str, seed: int, lam_zero: bool = False):
    """Small ReLU data ``(X, y, U, α, λ)``: scales 1e-8…1e8, samples on or next to a unit's kink (``lam_zero``:
    λ = 0, as for the factorization)."""
    rng = np.random.default_rng(100 + seed)
    N, d, r = int(rng.integers(4, 10)), int(rng.integers(2, 5)), int(rng.integers(1, 4))
    X = rng.standard_normal((N, d)) * 10.0 ** rng.uniform(-3, 3, d)
    U = rng.standard_normal((r, d)) * 10.0 ** rng.uniform(-3, 3, (r, 1))
    alpha = rng.standard_normal(r) * 10.0 ** rng.uniform(-3, 3, r)
    if kind == "kinks":   # x_iᵀu_0 is zero up to rounding: the computed sign may be wrong
        for i in range(0, N, 2):
            X[i, -1] = -(X[i, :-1] @ U[0, :-1]) / U[0, -1]
    H = np.maximum(X @ U.T, 0.0)
    y = H @ alpha
    if kind == "noise":
        y = rng.standard_normal(N) * (np.abs(y).max() or 1.0)
    elif kind != "exact_fit":
        y = y + 1e-13 * (np.abs(y).max() or 1.0) * rng.standard_normal(N)
    scale = 10.0 ** rng.uniform(-8, 8)
    lam = 0.0 if lam_zero else float(10.0 ** rng.uniform(-8, 1) * (np.abs(y).max() or 1.0))
    return X, scale * y, math.sqrt(scale) * U, math.sqrt(scale) * alpha, scale * lam


@pytest.mark.parametrize("lam_zero", [False, True], ids=["lam", "lam0"])
@pytest.mark.parametrize("kind", ["exact_fit", "kinks", "near_fit", "noise"])
@pytest.mark.parametrize("seed", range(5))
def test_the_relu_objective_bound_is_never_below_the_exact_error(kind, seed, lam_zero):
    X, y, U, alpha, lam = adversarial_units(kind, seed, lam_zero)
    problem = ReLUGrowProblem(X, y, lam, solver="clarabel")
    f, err = problem.objective_bound(ReLUState(U, alpha))
    assert math.isfinite(err)
    assert abs(Fraction(f) - exact_relu_objective(X, y, U, alpha, lam)) <= Fraction(err)
    assert f == pytest.approx(problem.objective(ReLUState(U, alpha)), rel=1e-12, abs=err)


@pytest.mark.parametrize("seed", range(6))
def test_sums_of_squares_are_bounded_across_scales(seed):
    rng = np.random.default_rng(seed)
    shape = [(7,), (5, 9), (1, 13), (30,)][seed % 4]
    A = rng.standard_normal(shape) * 10.0 ** rng.uniform(-160, 160, shape)   # underflowing and huge squares
    s, e = sum_of_squares(A)
    true = sum((Fraction(float(x)) ** 2 for x in np.ravel(A)), Fraction(0))
    if math.isfinite(s):
        assert abs(Fraction(s) - true) <= Fraction(e)
        assert Fraction(norm_upper((s, e))) ** 2 >= true
    else:
        assert e == math.inf


def test_the_objective_error_is_infinite_on_overflow():
    f, err = objective_with_error(sum_of_squares(np.array([1e200, 1e200])), 0.0, (), 1.0)
    assert err == math.inf


# -- the verdict ---------------------------------------------------------------------------------------------------

def svt_point(seed: int = 5):
    """``Y`` and balanced factors of its soft-thresholding optimum at a λ between two singular values."""
    rng = np.random.default_rng(seed)
    Y = rng.standard_normal((12, 3)) @ rng.standard_normal((3, 9)) + 0.3 * rng.standard_normal((12, 9))
    s = np.linalg.svd(Y, compute_uv=False)
    lam = float(0.5 * (s[1] + s[2]))
    W, S, Vt = np.linalg.svd(Y, full_matrices=False)
    keep = S > lam
    root = np.sqrt(S[keep] - lam)
    return Y, lam, W[:, keep] * root, Vt[keep].T * root


def certificate_at(Y, lam, U, V, objective, objective_error, gap_tol):
    G = Y - U @ V.T
    return make_certificate(G=G, Y=Y, lam=lam, objective=objective, objective_error=objective_error,
                            polar=lam, polar_upper=lam, polar_exact=True, method="test",
                            block_gaps={"U": 0.0, "V": 0.0}, block_tol=1e-9, n_subnetworks=U.shape[1],
                            gap_tol=gap_tol)


def test_a_gap_within_the_objective_error_of_the_tolerance_is_not_certified():
    Y, lam, U, V = svt_point()
    f, _ = MFForm(Y, lam).value_with_error(U, V)
    plain = certificate_at(Y, lam, U, V, f, 0.0, 1.0)
    err = 1e-8 * f                                   # a (pretend) rounding bound far above the gap itself
    gap_tol = (plain.gap_bound + 0.5 * err) / f      # the rounded value passes, its proven upper end does not
    assert certificate_at(Y, lam, U, V, f, 0.0, gap_tol).global_optimal is True
    cert = certificate_at(Y, lam, U, V, f, err, gap_tol)
    assert cert.global_optimal is False and "relative gap" in cert.reason
    assert cert.gap_bound >= f + err - cert.lower_bound and cert.objective_error == err
    assert cert.objective_upper >= f + err and cert.relative_gap > gap_tol
    assert f"± {err:.2g}" in str(cert)


def test_an_unbounded_objective_error_proves_no_gap():
    Y, lam, U, V = svt_point()
    f = MFForm(Y, lam).value(U, V)
    cert = certificate_at(Y, lam, U, V, f, math.inf, 1.0)
    assert cert.global_optimal is False and cert.gap_bound == math.inf and "not bounded" in cert.reason


@pytest.mark.parametrize("bad", [-1e-12, math.nan])
def test_a_negative_or_nan_objective_error_is_rejected(bad):
    Y, lam, U, V = svt_point()
    with pytest.raises(InvalidInputError, match="objective_error"):
        certificate_at(Y, lam, U, V, 1.0, bad, 1e-6)


def test_grow_certifies_with_a_proven_upper_bound_of_the_objective():
    Y, lam, _, _ = svt_point(7)
    problem = MFGrowProblem(Y, lam, seed=0)
    res, state = grow(problem, MFState(np.zeros((12, 0)), np.zeros((9, 0))), GrowOptions())
    g = res.certificate.globalopt
    assert g.global_optimal is True
    true = exact_mf_objective(Y, state.U, state.V, lam)
    assert 0 < g.objective_error <= 1e-12 * g.objective
    assert Fraction(g.objective_upper) >= true >= Fraction(g.objective) - Fraction(g.objective_error)
    assert Fraction(g.gap_bound) >= true - Fraction(g.lower_bound)
    assert g.lower_bound <= svt_optimum(Y, lam)[1] <= g.objective_upper


class NoObjectiveBound(MFGrowProblem):
    """A subnetwork problem that gives no bound on its objective's rounding (the hook is optional)."""

    objective_bound = None


def test_a_problem_without_an_objective_bound_is_never_certified():
    Y, lam, _, _ = svt_point(7)
    res, _ = grow(NoObjectiveBound(Y, lam, seed=0), MFState(np.zeros((12, 0)), np.zeros((9, 0))), GrowOptions())
    g = res.certificate.globalopt
    assert g.global_optimal is False and g.objective_error == math.inf and "not bounded" in g.reason
    assert g.polar_upper <= lam * (1 + 1e-6)           # everything else would have certified
