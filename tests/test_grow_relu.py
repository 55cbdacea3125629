"""Parallel two-layer ReLU units grown to a certified global optimum (THEORY.md §4; issue 5)."""

import time

import numpy as np
import pyomo.environ as pyo
import pytest
from conftest import kinked_regression_data

import multiconvex as mc
from multiconvex.errors import InvalidInputError
from multiconvex.globalopt import null_combination, rescale
from multiconvex.globalopt.grow import GrowOptions, grow
from multiconvex.globalopt.patterns import PatternLimitError
from multiconvex.globalopt.relu_convex import convex_relu_regression, two_layer_objective
from multiconvex.globalopt.relu_problem import ReLUGrowProblem, ReLUState
from multiconvex.models import ParallelReLUNetwork, datasets


def toy(n, d, seed, noise=0.1):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = np.abs(X[:, 0]) - X[:, -1] + 0.5 * np.maximum(X.sum(1), 0) + noise * rng.standard_normal(n)
    return X, y


def with_bias(X):
    return np.hstack([X, np.ones((len(X), 1))])


@pytest.mark.parametrize("n, d, lam", [(24, 2, 0.5), (40, 1, 0.2), (16, 2, 2.0)])
def test_exact_patterns_certify_the_convex_reformulation_optimum(n, d, lam):
    X, y = toy(n, d, seed=n + d)
    net = ParallelReLUNetwork(lam=lam, random_state=0, algorithm="grow", solver="clarabel", patterns="exact")
    net.fit(X, y)
    cert = net.result_.certificate
    assert cert.global_optimal is True, str(cert)
    g = cert.globalopt
    assert g.polar_exact and g.patterns_checked == g.patterns_total and g.stationary
    assert g.polar <= lam * (1 + 1e-5) and g.lam == lam
    convex = convex_relu_regression(with_bias(X), y, lam, patterns="exact", solver="clarabel")
    assert convex.exact
    assert net.objective_ == pytest.approx(convex.objective, rel=1e-4)
    assert g.lower_bound <= convex.objective * (1 + 1e-6)
    # the reported objective is the documented one (sums over samples, ½(‖u‖² + α²) per unit)
    units = list(zip(net.U_, net.alpha_))
    assert net.objective_ == pytest.approx(two_layer_objective(with_bias(X), y, units, lam), rel=1e-10)
    assert net.objective(X, y) == pytest.approx(net.objective_, rel=1e-10)


@pytest.mark.slow
def test_sampled_patterns_are_reported_as_unproven():
    X, y = toy(40, 2, seed=3)
    net = ParallelReLUNetwork(lam=0.3, random_state=0, patterns=6)
    net.fit(X, y, max_rounds=3)
    g = net.result_.certificate.globalopt
    assert not g.polar_exact
    assert g.patterns_total is None or g.patterns_checked < g.patterns_total
    assert net.result_.certificate.global_optimal is False
    assert g.polar <= g.polar_upper  # an interval, not a verdict
    assert "not" in str(g).lower()


def test_a_sample_that_covers_every_pattern_is_exact():
    X, y = toy(6, 1, seed=4)  # 6 samples on a line with a bias column: 12 patterns
    net = ParallelReLUNetwork(lam=0.1, random_state=0, patterns=400).fit(X, y)
    g = net.result_.certificate.globalopt
    assert g.polar_exact
    assert net.result_.certificate.global_optimal is True
    convex = convex_relu_regression(with_bias(X), y, 0.1, patterns="exact", solver="clarabel")
    assert net.objective_ == pytest.approx(convex.objective, rel=1e-4)


def test_rescaling_keeps_the_output_and_does_not_increase_the_objective():
    X, y = toy(20, 2, seed=5)
    Xa = with_bias(X)
    rng = np.random.default_rng(0)
    u = rng.standard_normal(3)
    # units 0 and 1 share a direction, so their outputs are parallel: a null combination exists
    U = np.vstack([u, 0.5 * u, rng.standard_normal(3)])
    alpha = np.array([1.0, -3.0, 0.7])
    problem = ReLUGrowProblem(Xa, y, lam=0.4)
    s = ReLUState(U, alpha)
    beta = null_combination(**problem.outputs_for_rescale(s))
    assert beta is not None
    step = rescale(beta, problem.thetas(s), degree=problem.degree)
    new = problem.scale(s, step.factors)
    assert np.abs(problem.output(new) - problem.output(s)).max() <= 1e-9
    assert problem.objective(new) <= problem.objective(s)
    assert abs(new.alpha[step.zeroed]) * np.linalg.norm(new.U[step.zeroed]) <= 1e-12


def test_a_deliberately_stopped_run_is_not_certified():
    X, y = toy(30, 2, seed=6)
    net = ParallelReLUNetwork(lam=0.2, random_state=0, max_iter=1).fit(X, y, max_rounds=1)
    cert = net.result_.certificate
    assert cert.global_optimal is False
    assert net.result_.status == "iteration_limit" and "max_rounds" in net.result_.message
    assert cert.globalopt.reason  # says why


def test_an_adam_network_is_certified_or_improved_by_a_warm_start():
    X, y = toy(20, 2, seed=7)
    adam = ParallelReLUNetwork(lam=0.5, random_state=1, n_subnetworks=6, algorithm="adam")
    adam.fit(X, y, epochs=400, lr=0.02)
    before = adam.certificate(X, y, patterns="exact")
    assert before.polar_exact and before.lower_bound <= adam.objective_
    warm = ParallelReLUNetwork(lam=0.5).fit(X, y, init=adam)
    assert warm.objective_ <= adam.objective_
    assert warm.result_.certificate.global_optimal is True


def test_mismatched_regulariser_is_refused_with_the_explanation():
    X, y = toy(10, 2, seed=8)
    deep = ParallelReLUNetwork(hidden_layer_sizes=(3, 3), lam=0.1, regulariser="weight_decay")
    with pytest.raises(InvalidInputError, match=r"degree 3.*degree 2.*Haeffele & Vidal \(§6\).*certify=False"):
        deep.fit(X, y)
    net = ParallelReLUNetwork(hidden_layer_sizes=(3, 3), lam=0.1, regulariser="weight_decay", certify=False,
                              random_state=0, max_iter=20)
    net.fit(X, y, max_rounds=2, polar_options={"n_starts": 16, "ascent_steps": 60})
    assert net.result_.certificate.global_optimal is None and net.result_.certificate.globalopt is None
    assert np.isfinite(net.objective_)


@pytest.mark.parametrize("hidden, outputs, regulariser", [((3,), 1, "weight_decay"), ((1,), 2, "weight_decay"),
                                                          ((2, 2), 1, "power")])
def test_other_architectures_fit_but_are_never_proven(hidden, outputs, regulariser):
    X, y = toy(15, 2, seed=9)
    Y = np.column_stack([y, -y]) if outputs == 2 else y
    net = ParallelReLUNetwork(hidden_layer_sizes=hidden, lam=0.3, regulariser=regulariser, random_state=0,
                              max_iter=20)
    net.fit(X, Y, max_rounds=2, polar_options={"n_starts": 16, "ascent_steps": 60})
    g = net.result_.certificate.globalopt
    assert net.result_.certificate.global_optimal is False
    assert not g.polar_exact and g.polar_upper == np.inf and g.gap_bound == np.inf
    assert "lower bound" in g.method
    assert net.objective_ < net.objective(X, Y) + 1e-9 and net.predict(X).shape == np.shape(Y)


def test_bad_input_is_refused_before_any_solve():
    X, y = toy(10, 2, seed=10)
    # the deprecated full subnetwork=[d, n_1, ..., n_out] is still checked (with its FutureWarning)
    with pytest.raises(InvalidInputError, match="subnetwork"), pytest.warns(FutureWarning, match="subnetwork"):
        ParallelReLUNetwork(subnetwork=[2, 1], lam=0.1).fit(X, y)
    with pytest.raises(InvalidInputError, match="features"), pytest.warns(FutureWarning, match="subnetwork"):
        ParallelReLUNetwork(subnetwork=[5, 1, 1], lam=0.1).fit(X, y)
    with pytest.raises(InvalidInputError, match="lam"):
        ParallelReLUNetwork(lam=0.0).fit(X, y)
    with pytest.raises(InvalidInputError, match="NaN"):
        ParallelReLUNetwork(lam=0.1).fit(np.full((10, 2), np.nan), y)
    with pytest.raises(InvalidInputError, match="solver"):
        ParallelReLUNetwork(lam=0.1, solver="no-such-solver").fit(X, y)


def _diabetes_interval(max_rounds):
    X, y = datasets.load("diabetes")
    net = ParallelReLUNetwork(lam=1.0, random_state=0, patterns=200, max_iter=10)
    net.fit(X, y, max_rounds=max_rounds, n_maximisers=10)
    return X, y, net


def test_input_dimension_ten_reports_a_polar_interval_and_a_proven_gap():
    X, y, net = _diabetes_interval(max_rounds=1)
    g = net.result_.certificate.globalopt
    assert not g.polar_exact and np.isfinite(g.polar_upper) and g.polar <= g.polar_upper
    assert np.isfinite(g.gap_bound) and g.gap_bound > 0 and g.lower_bound < net.objective_
    assert net.result_.certificate.global_optimal is False


@pytest.mark.slow
def test_input_dimension_ten_lower_bound_is_below_a_long_adam_run():
    X, y, net = _diabetes_interval(max_rounds=6)
    g = net.result_.certificate.globalopt
    adam = ParallelReLUNetwork(lam=1.0, random_state=0, n_subnetworks=64, algorithm="adam")
    adam.fit(X, y, epochs=20000, lr=5e-3)
    best = min(net.objective_, adam.objective_)
    assert g.lower_bound <= best
    assert g.relative_gap < np.inf


def test_units_hand_back_the_same_objective_to_cvxpy_and_pyomo():
    rng = np.random.default_rng(1)
    X = rng.uniform(-1, 1, (12, 2))
    y = np.maximum(X[:, 0], 0) - X[:, 1] + 0.05 * rng.standard_normal(12)
    net = ParallelReLUNetwork(lam=0.1, n_subnetworks=3, random_state=0, algorithm="adam")
    net.fit(X, y, epochs=50)
    f = net.objective(X, y)
    cm = net.to_cvxpy(X, y)
    assert cm.problem.objective.value == pytest.approx(f, rel=1e-10)
    pm = net.to_pyomo(X, y)
    assert pyo.value(pm.model.obj) == pytest.approx(f, rel=1e-10)
    res = mc.solve(cm.problem, cm.blocks, solver="clarabel", max_iters=20)
    assert res.objective <= f + 1e-9
    with pytest.raises(mc.InvalidInputError, match="two-layer units"):
        ParallelReLUNetwork(hidden_layer_sizes=(2,), lam=0.1, certify=False).to_cvxpy(X, y)


def test_small_scale_targets_neither_fool_nor_block_the_certificate():
    """Regression: with gap / max(1, |f|), block gaps against tol · max(1, |f|) and an absolute polar slack
    (+ 1e-3 · polar_tol), every test was absolute on small-scale targets: at y ~ 1e-8, optimal weights with
    the outputs × 1.05 (4% above the optimum) were 'proven globally optimal'. Relative tests alone would
    fail correct certificates on the backends' absolute tolerances, so the convex programs are posed at unit
    scale (the problem is scale-equivariant)."""
    X, y = toy(16, 2, seed=11)
    lam, eps = 0.4, 1e-8
    unit = ParallelReLUNetwork(lam=lam, random_state=0).fit(X, y)
    assert unit.result_.certificate.global_optimal is True
    small = ParallelReLUNetwork(lam=eps * lam, random_state=0).fit(X, eps * y)
    assert small.result_.certificate.global_optimal is True, str(small.result_.certificate)
    assert small.objective_ == pytest.approx(eps**2 * unit.objective_, rel=1e-5, abs=0)
    # the unit-scale optimum mapped to the small scale, every unit's output × 1.05
    c = np.sqrt(1.05)
    bad = ParallelReLUNetwork(lam=eps * lam, max_iter=0)
    bad.fit(X, eps * y, init={"U": c * np.sqrt(eps) * unit.U_, "alpha": c * np.sqrt(eps) * unit.alpha_},
            max_rounds=1)
    assert bad.objective(X, eps * y) > 1.02 * small.objective_
    cert = bad.certificate(X, eps * y)
    assert cert.global_optimal is False
    assert bad.result_.certificate.global_optimal is False


def test_screened_rounds_skip_the_block_gaps_but_the_returned_point_has_them():
    """Rounds whose polar is a screen that found units to append do not measure block gaps (their certificate
    cannot pass); the point returned — here after such a round — gets its gaps and the full polar."""
    X, y = toy(30, 2, seed=7)
    problem = ReLUGrowProblem(with_bias(X), y, 0.05, solver="clarabel")
    res, state = grow(problem, ReLUState(np.zeros((0, 3)), np.zeros(0)), GrowOptions(max_rounds=3))
    checks = res.info["polar_checks"]
    screened_rounds = [c["round"] for c in checks if c["screened"]]
    assert screened_rounds, "no screened round: the case this test is about did not occur"
    gap_of_round = {h.iteration: h.max_block_gap for h in res.history[1:]}
    assert all(np.isnan(gap_of_round[r]) for r in screened_rounds)
    g = res.certificate.globalopt
    assert res.status == "iteration_limit" and g.stationary is not None          # measured at the returned point
    assert set(res.certificate.block_gaps) == {"hidden", "output"}
    assert g.polar_exact and not checks[-1]["screened"]                        # the full polar was computed there
    f = problem.objective(state)
    assert g.objective == pytest.approx(f, rel=1e-12) and g.lower_bound <= f


def test_too_many_exact_patterns_fail_before_any_solve_not_after_the_rounds():
    # the review that found it: the rounds ran on the cheap screen, then the final full polar raised
    # PatternLimitError and the whole fit was lost
    X, y = kinked_regression_data(30)
    net = ParallelReLUNetwork(hidden_layer_sizes=(1,), lam=0.1, random_state=0, solver="clarabel", max_rounds=1,
                              patterns="exact")
    t0 = time.perf_counter()
    with pytest.raises(PatternLimitError, match="max_patterns=100"):
        net.fit(X, y, polar_options={"max_patterns": 100})
    assert time.perf_counter() - t0 < 5.0 and not hasattr(net, "result_")


def test_auto_patterns_sample_beyond_max_patterns_and_say_so():
    """The default ``patterns="auto"``: exact where the arrangement is small, else sampled directions, with a
    certificate that does not claim the exact polar (the defaults had raised PatternLimitError on diabetes and in 8
    of scikit-learn's estimator checks)."""
    X, y = kinked_regression_data(30)
    big = ParallelReLUNetwork(hidden_layer_sizes=(1,), lam=0.1, random_state=0, max_rounds=1).fit(
        X, y, polar_options={"max_patterns": 100})
    assert big.result_.info["patterns_used"] == 200
    g = big.result_.certificate.globalopt
    assert g is None or not g.polar_exact
    small = ParallelReLUNetwork(hidden_layer_sizes=(1,), lam=0.1, random_state=0, max_rounds=1).fit(X[:8], y[:8])
    assert small.result_.info["patterns_used"] == "exact"


def _bench_data(n, seed):
    """The speed-up benchmark's data (``benchmarks/bench_global.relu_data``), bias column appended."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 2))
    y = np.abs(X[:, 0]) - X[:, -1] + 0.5 * np.maximum(X.sum(1), 0) + 0.1 * rng.standard_normal(n)
    return with_bias(X), y


@pytest.mark.parametrize("n, lam, seed", [
    (40, 0.01, 40), (40, 0.01, 41), (40, 0.1, 40),
    pytest.param(60, 0.01, 60, marks=pytest.mark.slow), pytest.param(60, 0.01, 61, marks=pytest.mark.slow),
    pytest.param(80, 0.01, 80, marks=pytest.mark.slow), pytest.param(80, 0.1, 81, marks=pytest.mark.slow)])
def test_grow_called_directly_with_defaults_certifies_small_lambda_without_creeping(n, lam, seed):
    # N = 40, λ = 0.01 crept for 60 rounds without a certificate when the piece programs were left at the
    # interior-point solution: the last rounds' gains (~ε²) were below its resolution
    Xa, y = _bench_data(n, seed)
    problem = ReLUGrowProblem(Xa, y, lam)
    res, _ = grow(problem, ReLUState(np.zeros((0, 3)), np.zeros(0)), GrowOptions(max_rounds=45))
    cert = res.certificate
    assert res.status == "converged" and cert.global_optimal is True, res.message
    g = cert.globalopt
    assert g.polar_exact and g.polar <= lam * (1 + 1e-6) and g.gap_bound <= 1e-6 * res.objective
    # the piece programs were finished exactly: most by the active-set method alone, from the current units
    stats = problem._native.polish_stats
    assert stats.get("from start", 0) > 0.5 * problem.solves
