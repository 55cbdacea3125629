"""Matrix factorization grown to a certified global optimum (THEORY.md §4; issue 5)."""

import dataclasses
import math

import numpy as np
import pytest

from multiconvex.errors import InvalidInputError
from multiconvex.globalopt import dual_lower_bound, make_certificate, mf_polar, null_combination, rescale
from multiconvex.globalopt.grow import GrowOptions, grow
from multiconvex.globalopt.mf_problem import MFGrowProblem, MFState
from multiconvex.models import MatrixFactorization, svt_optimum


def low_rank(m, n, r, noise, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, r)) @ rng.standard_normal((r, n)) + noise * rng.standard_normal((m, n))


def lam_for_rank(Y, k):
    """A λ halfway between σ_k and σ_{k+1}: the SVT optimum has rank exactly k."""
    s = np.linalg.svd(Y, compute_uv=False)
    return float(0.5 * (s[k - 1] + s[k]))


@pytest.mark.parametrize("shape", [(30, 30), (60, 12)], ids=["square", "tall"])
@pytest.mark.parametrize("target_rank", [1, 4])
def test_grow_reaches_the_soft_thresholding_optimum_with_a_certificate(shape, target_rank):
    Y = low_rank(*shape, 5, 0.5, seed=sum(shape) + target_rank)
    lam = lam_for_rank(Y, target_rank)
    mf = MatrixFactorization(n_components=2, lam=lam, random_state=1, algorithm="grow", solver="clarabel").fit(Y)
    _, value = svt_optimum(Y, lam)
    cert = mf.result_.certificate
    assert cert.global_optimal is True
    assert mf.result_.status == "converged"
    assert abs(mf.objective_ - value) <= 1e-6 * value
    assert mf.result_.subnetworks >= target_rank
    assert np.linalg.matrix_rank(mf.X_, tol=1e-6 * np.linalg.norm(Y, 2)) == target_rank
    assert cert.polar == pytest.approx(lam, rel=1e-5)  # at the optimum σ_max(Y − X*) = λ
    g = cert.globalopt
    assert g.polar_exact and g.stationary and g.lam == lam
    assert g.lower_bound <= value + 1e-9 * value <= mf.objective_ + 2e-9 * value
    assert g.gap_bound <= 1e-6 * value
    # the gap rests on a proven upper bound of the objective, not on its rounded value
    assert 0 < g.objective_error <= 1e-12 * value
    assert g.gap_bound >= g.objective + g.objective_error - g.lower_bound


def test_grow_objective_is_the_documented_convention():
    Y = low_rank(15, 10, 3, 0.3, seed=0)
    mf = MatrixFactorization(lam=1.0, random_state=0, algorithm="grow").fit(Y)
    U, V = mf.U_, mf.V_
    by_columns = 0.5 * np.sum((Y - U @ V.T) ** 2) + 1.0 * sum(
        0.5 * (U[:, j] @ U[:, j] + V[:, j] @ V[:, j]) for j in range(U.shape[1]))
    assert mf.objective_ == pytest.approx(by_columns, rel=1e-12)
    assert mf.objective_ == pytest.approx(mf.objective_at(Y, U, V), rel=1e-12)


def test_a_stopped_run_is_not_certified():
    Y = low_rank(30, 20, 5, 0.5, seed=3)
    lam = lam_for_rank(Y, 4)
    mf = MatrixFactorization(n_components=1, lam=lam, random_state=0, algorithm="grow", max_iter=2).fit(Y, max_rounds=1)
    cert = mf.result_.certificate
    assert cert.global_optimal is False
    assert mf.result_.status == "iteration_limit"
    assert "max_rounds" in mf.result_.message
    assert cert.globalopt.gap_bound > 0 and np.isfinite(cert.globalopt.gap_bound)  # still a proven bound
    assert cert.globalopt.lower_bound <= svt_optimum(Y, lam)[1]


def test_the_dual_lower_bound_holds_at_any_point():
    Y = low_rank(12, 9, 3, 0.5, seed=4)
    rng = np.random.default_rng(0)
    for lam in (0.3, 2.0, 10.0):
        _, value = svt_optimum(Y, lam)
        for r in (1, 3, 6):
            U, V = rng.standard_normal((12, r)), rng.standard_normal((9, r))
            G = Y - U @ V.T
            lb = dual_lower_bound(G, Y, lam, np.linalg.norm(G, 2))
            assert lb <= value + 1e-10 * value
        assert dual_lower_bound(Y, Y, lam, np.inf) == -np.inf


def test_a_non_stationary_point_with_small_polar_is_not_certified():
    """λ above σ_max(Y): X = 0 is optimal, but a point with nonzero columns is not stationary."""
    Y = low_rank(10, 8, 2, 0.1, seed=5)
    lam = 2.0 * np.linalg.norm(Y, 2)
    problem = MFGrowProblem(Y, lam)
    s = MFState(0.01 * np.ones((10, 1)), 0.01 * np.ones((8, 1)))

    G = problem.residual(s)
    f, f_err = problem.objective_bound(s)
    cert = make_certificate(G=G, Y=Y, lam=lam, objective=f, objective_error=f_err, polar=np.linalg.norm(G, 2),
                            polar_upper=np.linalg.norm(G, 2), polar_exact=True, method="svd",
                            block_gaps=problem.block_gaps(s), block_tol=1e-12, n_subnetworks=1)
    assert np.linalg.norm(G, 2) < lam
    assert cert.global_optimal is False and cert.stationary is False
    assert "not stationary" in cert.reason and "proves nothing" in cert.reason


def test_rescaling_keeps_the_output_and_does_not_increase_the_objective():
    Y = low_rank(9, 7, 2, 0.2, seed=6)
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(9), rng.standard_normal(7)
    # three columns whose outputs are dependent: u3 v3ᵀ = u1 v1ᵀ + u2 v2ᵀ is not rank one, so use
    # parallel outputs: column 2 is a rescaled copy of column 1 (same φ up to a factor)
    U = np.column_stack([a, 2.0 * a, rng.standard_normal(9)])
    V = np.column_stack([b, 0.5 * b, rng.standard_normal(7)])
    problem = MFGrowProblem(Y, lam=0.7)
    s = MFState(U, V)
    beta = null_combination(**problem.outputs_for_rescale(s))
    assert beta is not None
    step = rescale(beta, problem.thetas(s), degree=2)
    new = problem.scale(s, step.factors)
    assert np.abs(new.U @ new.V.T - U @ V.T).max() <= 1e-9
    assert problem.objective(new) <= problem.objective(s) + 1e-12
    assert step.theta_change <= 0 and step.beta.min() == -1.0
    assert np.linalg.norm(new.U[:, step.zeroed]) * np.linalg.norm(new.V[:, step.zeroed]) <= 1e-12
    assert null_combination(outputs=np.eye(3)) is None


def test_warm_start_from_any_factorization_is_certified_or_improved():
    Y = low_rank(25, 15, 4, 0.3, seed=7)
    lam = lam_for_rank(Y, 3)
    # a poor warm start: 6 columns from alternating minimization with a few iterations
    start = MatrixFactorization(n_components=6, lam=lam, random_state=2, solver="clarabel", max_iter=3).fit(Y)
    mf = MatrixFactorization(lam=lam, algorithm="grow").fit(Y, init={"U": start.U_, "V": start.V_})
    assert mf.result_.certificate.global_optimal is True
    assert mf.objective_ <= start.objective_
    assert mf.objective_ == pytest.approx(svt_optimum(Y, lam)[1], rel=1e-6)


def test_large_matrices_use_a_block_iteration_not_a_full_svd():
    Y = low_rank(700, 450, 6, 0.05, seed=8)
    lam = lam_for_rank(Y, 6)
    mf = MatrixFactorization(lam=lam, random_state=0, algorithm="grow").fit(Y, n_maximisers=8)
    g = mf.result_.certificate.globalopt
    # the certifying round: the span of the factor V is proven the top of the residual's spectrum by deflation
    # (its values stand clear of the noise), no block iteration and no full Gram matrix
    assert g.method == "start-ritz+deflation+cholesky" and g.global_optimal
    assert [c["upper"] for c in mf.result_.info["polar_checks"]][:-1] == [np.inf] * (mf.result_.info["rounds"] - 1)
    assert g.polar_upper <= g.polar * (1 + 1e-10)
    assert mf.objective_ == pytest.approx(svt_optimum(Y, lam)[1], rel=1e-6)


def test_mf_polar_lanczos_agrees_with_the_dense_svd():
    G = np.random.default_rng(9).standard_normal((500, 420))
    dense, lanczos = mf_polar(G, k=3, method="svd"), mf_polar(G, k=3, method="svds")
    assert lanczos.sigmas == pytest.approx(dense.sigmas, rel=1e-10)
    assert lanczos.value <= lanczos.upper <= lanczos.value * (1 + 1e-8)
    assert lanczos.method in ("subspace+cholesky", "svds+cholesky") and lanczos.exact
    assert lanczos.upper >= dense.sigmas[0]
    u, v = lanczos.left[:, 0], lanczos.right[:, 0]
    assert u @ G @ v == pytest.approx(lanczos.value, rel=1e-10)


def test_n_components_none_keeps_every_component_as_pca_does():
    """(an audit's finding: ``MatrixFactorization()`` could not fit, so scikit-learn's ``check_estimator`` failed 22
    of its checks) None is ``min(m, n)`` factors; with ``lam = 0`` they reproduce the data."""
    Y = np.random.default_rng(0).standard_normal((4, 3))
    mf = MatrixFactorization().fit(Y)
    assert mf.components_.shape == (3, 3) and mf.U_.shape == (4, 3)
    assert np.allclose(mf.U_ @ mf.components_, Y, atol=1e-4)
    with pytest.raises(InvalidInputError, match="does not take"):
        MatrixFactorization(lam=0.1, algorithm="grow").fit(np.ones((4, 3)), bogus=1)


@pytest.mark.parametrize("bad", [0, -2, 2.5, "3", True])
def test_a_bad_n_components_is_named_in_the_error(bad):
    """The error names the argument the user passed (``n_components``), not the internal "rank"."""
    want = r"MatrixFactorization\.fit: n_components must be .*>= 1.*n_components=3"
    with pytest.raises(InvalidInputError, match=want):
        MatrixFactorization(n_components=bad).fit(np.ones((5, 4)))


def test_certificate_reads_well_and_is_absent_unless_computed():
    Y = low_rank(10, 8, 2, 0.1, seed=10)
    plain = MatrixFactorization(n_components=2, lam=0.5, random_state=0, solver="clarabel").fit(Y)
    assert plain.result_.certificate.polar is None and plain.result_.certificate.globalopt is None
    assert plain.result_.certificate.global_optimal is None and plain.result_.subnetworks is None
    grown = MatrixFactorization(lam=0.5, random_state=0, algorithm="grow").fit(Y)
    text = str(grown.result_.certificate)
    assert "globally optimal (proven)" in text and "polar" in text and "lam 0.5" in text
    assert "global optimality: True" in grown.result_.summary()
    assert dataclasses.asdict(grown.result_.certificate.globalopt)["lam"] == 0.5


@pytest.mark.parametrize("eps", [1e-4, 1e-6])
def test_small_scale_data_gets_no_absolute_tolerance(eps):
    """Regression: the gap test was gap / max(1, |f|), absolute below |f| = 1, so on data of size 1e-4 a
    warm start at 2·X* (f/f* − 1 ≈ 2e-3) stopped after one sweep was 'proven globally optimal', and a
    default run certified points 3e-4 above the optimum. The problem is scale-equivariant: so is the test."""
    Y = eps * np.random.default_rng(0).standard_normal((8, 6))
    lam = lam_for_rank(Y, 2)
    X, value = svt_optimum(Y, lam)
    L, S, Rt = np.linalg.svd(X)
    U0, V0 = L[:, :2] * np.sqrt(2 * S[:2]), Rt[:2].T * np.sqrt(2 * S[:2])
    stopped = MatrixFactorization(lam=lam, random_state=0, algorithm="grow", max_iter=1).fit(
        Y, init={"U": U0, "V": V0}, max_rounds=1)
    assert stopped.objective_ > value * (1 + 1e-4)
    assert stopped.result_.certificate.global_optimal is False
    full = MatrixFactorization(n_components=3, lam=lam, random_state=1, algorithm="grow").fit(Y)
    assert full.result_.certificate.global_optimal is True
    assert full.objective_ == pytest.approx(value, rel=1e-6, abs=0)
    assert full.result_.certificate.globalopt.relative_gap <= 1e-6


def test_relative_gap_is_purely_relative():
    # Y = diag(3, 1)·1e-4, λ = 2e-4: X* = diag(1, 0)·1e-4, f* = 4.5e-8; the point X = 2 X* (balanced) has
    # polar σ_max(Y − X) = 1e-4 <= λ and f = 5e-8, 11% above f*, an absolute gap of only 5e-9
    Y = np.diag([3e-4, 1e-4])
    X = np.diag([2e-4, 0.0])
    cert = make_certificate(G=Y - X, Y=Y, lam=2e-4, objective=5e-8, polar=1e-4, polar_upper=1e-4, polar_exact=True,
                            method="svd", block_gaps={"U": 0.0, "V": 0.0}, block_tol=0.0, n_subnetworks=1)
    assert cert.lower_bound <= 4.5e-8 * (1 + 1e-12)
    assert cert.relative_gap == pytest.approx(cert.gap_bound / 5e-8) and cert.relative_gap > 0.05
    assert cert.global_optimal is False and "relative gap" in cert.reason


def test_a_failed_block_solve_is_covered_only_by_a_closed_dual_gap():
    """Every block gap is <= f − f* <= the proven gap bound, so a gap bound within the block tolerance implies
    stationarity where a block solve failed (a near-interpolating ReLU fit made clarabel stop at its iteration
    limit on the hidden-block QP); an open gap does not."""
    Y = np.diag([3.0, 1.0])
    common = dict(Y=Y, lam=2.0, polar_exact=True, method="svd", block_gaps={"U": np.nan, "V": 0.0}, block_tol=1e-9,
                  n_subnetworks=1)
    at_opt = make_certificate(G=Y - np.diag([1.0, 0.0]), objective=4.5, polar=2.0, polar_upper=2.0, **common)
    assert at_opt.gap_bound <= 1e-9 and at_opt.stationary and at_opt.global_optimal
    assert "implied" in at_opt.reason
    off = make_certificate(G=Y - np.diag([2.0, 0.0]), objective=5.0, polar=1.0, polar_upper=1.0, **common)
    assert off.gap_bound > 1e-9 and off.stationary is False and off.global_optimal is False


def test_a_truthy_callback_stops_grow_as_interrupted_with_a_certificate():
    Y = low_rank(40, 30, 6, 0.3, seed=12)
    lam = lam_for_rank(Y, 5)
    seen = []
    problem = MFGrowProblem(Y, lam)
    start = MFState(np.zeros((40, 0)), np.zeros((30, 0)))
    res, _ = grow(problem, start, GrowOptions(n_maximisers=1, callback=lambda e: seen.append(e) or True))
    assert res.status == "interrupted" and "callback" in res.message
    assert len(seen) == 1 and seen[0].iteration == 1 and res.info["rounds"] == 1
    assert res.certificate.globalopt is not None and res.certificate.global_optimal is False
    full, _ = grow(problem, start, GrowOptions(n_maximisers=1, callback=lambda e: False))
    assert full.status == "converged" and full.certificate.global_optimal
    with pytest.raises(InvalidInputError, match="callback"):
        grow(problem, start, GrowOptions(callback=3))


def test_time_limit_reaches_the_block_iterations_of_grow():
    """A local descent that would never converge (tol 1e-300, a million iterations) still ends at the time
    limit: the deadline reaches the driver's block iterations, not only the checks between rounds. After it
    no polar and no certificate pass runs: the best point comes back with its certificate not computed
    (nothing claimed), within max(5% of the limit, one block sweep) over the limit (issue 12)."""
    Y = low_rank(800, 600, 12, 0.5, seed=11)   # large enough that grow cannot finish in 0.3 s on a fast machine
    lam = lam_for_rank(Y, 10)
    problem = MFGrowProblem(Y, lam)
    rng = np.random.default_rng(0)
    start = MFState(rng.standard_normal((800, 2)), rng.standard_normal((600, 2)))
    one = grow(problem, start, GrowOptions(max_iters=1, max_rounds=1, tol=1e-300, n_maximisers=1))[0]
    sweep = one.history[1].time - one.info["polar_checks"][0]["time"]   # one block sweep (and the setup)
    res, state = grow(problem, start, GrowOptions(max_iters=10**6, tol=1e-300, time_limit=0.3))
    assert res.status == "time_limit" and "time_limit=0.3" in res.message
    # measured here (2 shared cores under load): 0.32 s at limit 0.3, 1.03-1.08 s at limit 1.0
    assert res.total_time <= 0.3 + max(0.05 * 0.3, 2 * sweep), (res.total_time, sweep)
    assert res.iterations >= 1
    assert res.info["polar_checks"] == []          # no polar after the deadline
    assert res.certificate.globalopt is None and res.certificate.global_optimal is None
    assert not res.certificate.is_partial_minimum and "certificate not computed" in res.message
    assert res.objective == pytest.approx(problem.objective(state), rel=1e-12)
    assert res.objective <= problem.objective(start)   # the best point: the descent is monotone
    # the history ends at the returned point (it ended at the start: the cut round had no entry)
    assert res.history[-1].objective == res.objective and math.isnan(res.history[-1].max_block_gap)
    assert len(res.history) >= 2 and res.history[0].objective == problem.objective(start)
