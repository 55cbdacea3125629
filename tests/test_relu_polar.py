"""Activation patterns, the two-layer ReLU polar, its relaxation bound, and the convex reformulation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.optimize import linprog

from multiconvex.errors import InvalidInputError, UnknownSolverError
from multiconvex.globalopt import patterns as pm
from multiconvex.globalopt import relu_polar as rp
from multiconvex.globalopt.patterns import (
    PatternLimitError,
    _cached,
    count_patterns_upper_bound,
    enumerate_patterns,
    sample_patterns,
)
from multiconvex.globalopt.relu_convex import (
    convex_relu_regression,
    two_layer_objective,
)
from multiconvex.globalopt.relu_polar import (
    local_polar_search,
    relaxation_upper_bound,
    relu_polar,
)
from multiconvex.globalopt.relu_problem import ReLUGrowProblem, ReLUState


def _data(n=20, d=3, seed=0):
    """Seeded regression data with a bias column (not in general position: the bias is shared)."""
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n, d - 1))
    X = np.c_[Z, np.ones(n)]
    y = np.sin(2 * Z[:, 0]) + (Z[:, -1] ** 2 if d > 2 else 0)
    return X, y


def _linear_residual(X, y):
    w = np.linalg.lstsq(X, y, rcond=None)[0]
    return y - X @ w


def _feasible_signs_by_lp(X):
    """Brute force: every sign vector σ with {u : σ_i x_iᵀu > 0 for all i} non-empty (one LP each)."""
    N, d = X.shape
    found = set()
    for sigma in itertools.product((1.0, -1.0), repeat=N):
        A = -np.asarray(sigma)[:, None] * X  # −σ_i x_iᵀu + t ≤ 0
        res = linprog(c=np.r_[np.zeros(d), -1.0], A_ub=np.c_[A, np.ones(N)], b_ub=np.zeros(N),
                      bounds=[(-1, 1)] * d + [(None, 1)], method="highs")
        if res.status == 0 and -res.fun > 1e-9:
            found.add(tuple(s > 0 for s in sigma))
    return found


@pytest.fixture(scope="module")
def convex_case():
    X, y = _data(18, 3, seed=3)
    lam = 0.1
    return X, y, lam, convex_relu_regression(X, y, lam, solver="clarabel")


# ----------------------------------------------------------------------------------- patterns


def test_enumerated_patterns_cones_cover_every_direction():
    X, _ = _data(25, 3)
    pats = enumerate_patterns(X)
    have = {p.tobytes() for p in pats}
    rng = np.random.default_rng(1)
    U = rng.standard_normal((20000, 3))
    assert all(p.tobytes() in have for p in np.unique(U @ X.T >= 0, axis=0))
    # directions with ties (on a sample's hyperplane) lie in the closed cone of some pattern
    signed = np.where(pats, 1.0, -1.0)
    for i in range(len(X)):
        u = rng.standard_normal(3)
        u -= (X[i] @ u) / (X[i] @ X[i]) * X[i]
        assert ((signed * (X @ u)[None, :]) >= -1e-9).all(axis=1).any()


def test_enumeration_equals_lp_brute_force_on_tiny_data():
    X = np.random.default_rng(2).standard_normal((7, 3))
    assert {tuple(p) for p in enumerate_patterns(X)} == _feasible_signs_by_lp(X)


def test_enumeration_handles_duplicate_parallel_and_zero_rows():
    rng = np.random.default_rng(4)
    Z = rng.standard_normal((4, 3))
    X = np.vstack([Z, 2 * Z[0], -Z[1], np.zeros(3)])  # a duplicate, an opposite row, a zero row
    expected = {s + (True,) for s in _feasible_signs_by_lp(X[:6])}  # zero row: x_iᵀu = 0 ≥ 0 always
    assert {tuple(p) for p in enumerate_patterns(X)} == expected


def test_enumeration_reaches_the_count_bound_in_general_position():
    X = np.random.default_rng(5).standard_normal((40, 3))
    assert len(enumerate_patterns(X)) == count_patterns_upper_bound(40, 3) == 1562


def test_enumeration_beyond_max_patterns_raises_and_says_to_sample():
    X = np.random.default_rng(6).standard_normal((40, 4))
    with pytest.raises(PatternLimitError, match="sampled patterns"):
        enumerate_patterns(X, max_patterns=100)


def test_sampled_patterns_are_distinct_realised_patterns():
    X, _ = _data(30, 3)
    exact = {p.tobytes() for p in enumerate_patterns(X)}
    sampled = sample_patterns(X, 300, seed=0)
    assert len({p.tobytes() for p in sampled}) == len(sampled) <= 300
    assert all(p.tobytes() in exact for p in sampled)


# ----------------------------------------------------------------------------------- the polar


def test_exact_polar_equals_dense_grid_maximum_in_two_dimensions():
    rng = np.random.default_rng(7)
    X = np.c_[rng.standard_normal(15), np.ones(15)]
    G = rng.standard_normal(15)
    theta = np.linspace(0, 2 * np.pi, 400_001)
    U = np.c_[np.cos(theta), np.sin(theta)]
    grid = np.abs(np.maximum(U @ X.T, 0) @ G).max()
    res = relu_polar(X, G)
    assert res.exact and res.upper == res.value
    assert grid <= res.value + 1e-8
    assert res.value - grid <= 1e-6 * res.value


def test_maximiser_is_a_unit_vector_attaining_the_value():
    X, y = _data(20, 3)
    G = _linear_residual(X, y)
    res = relu_polar(X, G, n_maximisers=3)
    for (u, s), v in zip(res.maximisers, res.values):
        assert np.linalg.norm(u) == pytest.approx(1.0, abs=1e-12)
        assert s * G @ np.maximum(X @ u, 0) == pytest.approx(v, abs=1e-12)
    assert res.values[0] == res.value


def test_several_maximisers_are_distinct_and_best_first():
    X, y = _data(20, 3)
    res = relu_polar(X, _linear_residual(X, y), n_maximisers=4)
    assert len(res.maximisers) == 4 and res.values == sorted(res.values, reverse=True)
    for (u1, s1), (u2, s2) in itertools.combinations(res.maximisers, 2):
        assert s1 != s2 or np.linalg.norm(u1 - u2) >= 1e-3


def test_sampled_polar_is_a_lower_bound_and_not_exact():
    X, y = _data(30, 3, seed=1)
    G = _linear_residual(X, y)
    exact = relu_polar(X, G)
    sampled = relu_polar(X, G, patterns=10, seed=0, upper_bound=False)
    assert not sampled.exact and sampled.upper == math.inf and sampled.patterns_total is None
    assert sampled.value <= exact.value + 1e-8


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_relaxation_upper_bound_contains_the_exact_polar(seed):
    X, y = _data(25, 3, seed=seed)
    for G in (_linear_residual(X, y), np.random.default_rng(seed).standard_normal(25)):
        exact = relu_polar(X, G).value
        rb = relaxation_upper_bound(X, G)
        assert rb.lower <= exact + 1e-9 <= rb.upper + 2e-9
        sampled = relu_polar(X, G, patterns=8, seed=seed)
        assert sampled.value <= exact + 1e-8 <= sampled.upper + 2e-8


@pytest.mark.slow
def test_branch_and_bound_tightens_the_bound_and_still_contains_the_polar():
    X, y = _data(30, 4, seed=1)
    G = _linear_residual(X, y)
    exact = relu_polar(X, G, per_pattern="nnls").value
    root = relaxation_upper_bound(X, G)
    tight = relaxation_upper_bound(X, G, time_limit=1.0)
    assert tight.nodes > root.nodes
    assert exact - 1e-9 <= tight.upper < root.upper
    assert tight.lower <= exact + 1e-9


def test_local_search_values_are_attained_lower_bounds():
    X, y = _data(30, 3, seed=2)
    G = _linear_residual(X, y)
    exact = relu_polar(X, G).value
    found = local_polar_search(X, G, 32, seed=0)
    for v, u, s in found[:10]:
        assert s * G @ np.maximum(X @ u, 0) == pytest.approx(v, abs=1e-12)
        assert v <= exact + 1e-8
    assert found[0][0] >= 0.9 * exact  # many starts on a 3-D problem find (nearly) the maximum


def test_passing_the_enumerated_patterns_back_stays_exact():
    X, y = _data(20, 3)
    pats = enumerate_patterns(X)
    res = relu_polar(X, _linear_residual(X, y), patterns=pats)
    assert res.exact and res.patterns_total == len(pats)


def test_threads_executor_and_every_program_kind_give_the_same_polar():
    X, y = _data(20, 3, seed=4)
    G = _linear_residual(X, y)
    ref = relu_polar(X, G).value
    assert relu_polar(X, G, executor="threads", n_workers=2).value == pytest.approx(ref, rel=1e-9)
    assert relu_polar(X, G, solver="ecos").value == pytest.approx(ref, rel=1e-6)       # cvxpy DPP
    assert relu_polar(X, G, per_pattern="nnls").value == pytest.approx(ref, rel=1e-6)  # projection


def test_zero_gradient_has_zero_polar():
    X, _ = _data(10, 3)
    res = relu_polar(X, np.zeros(10))
    assert res.value == 0.0 and res.exact


# ----------------------------------------------------------------------------------- convex reformulation


def test_convex_units_reproduce_the_convex_objective(convex_case):
    X, y, lam, sol = convex_case
    assert sol.exact and sol.status == "optimal"
    assert two_layer_objective(X, y, sol.units, lam) == pytest.approx(sol.objective, rel=1e-6)


def test_convex_optimum_is_below_every_random_two_layer_network(convex_case):
    X, y, lam, sol = convex_case
    rng = np.random.default_rng(0)
    for r in (1, 2, 5, 20):
        for _ in range(5):
            units = [(rng.standard_normal(3) * 0.7, rng.standard_normal() * 0.7) for _ in range(r)]
            assert two_layer_objective(X, y, units, lam) >= sol.objective - 1e-7


def test_polar_at_the_convex_optimum_is_at_most_lambda(convex_case):
    X, y, lam, sol = convex_case
    pred = sum(np.maximum(X @ u, 0) * a for u, a in sol.units)
    res = relu_polar(X, y - pred)
    assert res.exact and res.value <= lam * (1 + 1e-2)


def test_sampled_convex_program_is_not_exact_and_not_below_the_exact_optimum(convex_case):
    X, y, lam, sol = convex_case
    small = convex_relu_regression(X, y, lam, patterns=6, seed=0)
    assert not small.exact and small.objective >= sol.objective - 1e-7


def test_dual_bound_from_the_relaxation_is_below_the_optimum(convex_case):
    X, y, lam, sol = convex_case
    pred = np.maximum(X @ sol.units[0][0], 0) * sol.units[0][1]  # a poor one-unit network
    G = y - pred
    upper = relaxation_upper_bound(X, G).upper
    t = min(max(G @ y / (G @ G), 0.0), lam / upper)  # Ω°(tG) ≤ λ: a dual-feasible point
    assert 0.0 < t * (G @ y) - 0.5 * t * t * (G @ G) <= sol.objective + 1e-9


# ----------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda X, G: relu_polar(np.where(np.eye(5, 3) > 0, np.nan, X), G), "NaN"),
        (lambda X, G: relu_polar(X, G[:4]), "one entry per sample"),
        (lambda X, G: relu_polar(X, np.c_[G, G]), "scalar output"),
        (lambda X, G: relu_polar(X, G, patterns="all"), "not understood"),
        (lambda X, G: relu_polar(X, G, patterns=np.ones((3, 4), bool)), "shape"),
        (lambda X, G: relu_polar(X, G, n_maximisers=0), "n_maximisers"),
        (lambda X, G: relu_polar(X, G, upper_bound="yes"), "upper_bound"),
        (lambda X, G: convex_relu_regression(X, G, -1.0), "lam"),
        (lambda X, G: two_layer_objective(X, G, [(np.ones(2), 1.0)], 0.1), "length 2"),
        (lambda X, G: sample_patterns(X, 0), "n must be"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call, message):
    X, G = _data(5, 3)
    with pytest.raises(InvalidInputError, match=message):
        call(X, G)


def test_unknown_solver_is_refused_before_any_solve():
    X, G = _data(5, 3)
    with pytest.raises(UnknownSolverError, match="known solvers"):
        relu_polar(X, G, solver="nosuch")


# ----------------------------------------------------------------------------------- review regressions


def _near_concurrent_grid():
    """A 4×4 grid with bias, perturbed by 1e-10: many nearly concurrent hyperplane triples.

    With a 1e-10 merge tolerance inside the recursion, the restricted sliver chamber was dropped, the
    old chamber it stood for was not recognised as cut, and a fat chamber (1.7% of the sphere) was lost.
    """
    a = np.linspace(-1, 1, 4)
    g = np.array(list(itertools.product(a, a)))
    rng = np.random.default_rng(9)
    rng.standard_normal((16, 3))
    rng.standard_normal((3000, 3))
    return np.c_[g, np.ones(16)] + 1e-10 * rng.standard_normal((16, 3))


def test_near_concurrent_hyperplanes_lose_no_chamber():
    X = _near_concurrent_grid()
    pats = enumerate_patterns(X)
    have = {p.tobytes() for p in pats}
    U = np.random.default_rng(0).standard_normal((20000, 3))
    S = U @ X.T
    S = S[(np.abs(S) > 1e-6).all(axis=1)]
    assert all(p.tobytes() in have for p in np.unique(S > 0, axis=0))
    assert len(pats) == count_patterns_upper_bound(16, 3)   # in general position after the perturbation

    assert _cached(X)[2]                                     # the sampling cross-check agreed


def _drop_a_chamber(monkeypatch):
    full = pm._chamber_points

    def drop_one(V, limit):
        pts = full(V, limit)
        return pts[1:] if V.shape[1] == 3 else pts   # lose a chamber at the top level only

    monkeypatch.setattr(pm, "_chamber_points", drop_one)


@pytest.mark.slow
def test_enumeration_that_misses_a_chamber_is_repaired_by_sampling_and_then_proven(monkeypatch):
    X, y = _data(12, 3, seed=11)
    X = X * (1 + 1e-9)  # a fresh array (not cached by other tests)
    _drop_a_chamber(monkeypatch)
    pats = enumerate_patterns(X)
    assert len(pats) == len({p.tobytes() for p in pats})
    assert {tuple(p) for p in pats} == _feasible_signs_by_lp(X)      # the sampled repair found it
    assert pm._cached(X)[2]                                           # and the exact count proves it


@pytest.mark.slow  # ~6 s: an exact chamber count on near-degenerate data
def test_a_missed_chamber_that_sampling_does_not_find_is_caught_by_the_exact_count(monkeypatch):
    X, y = _data(12, 3, seed=11)
    X = X * (1 + 2e-9)
    _drop_a_chamber(monkeypatch)
    monkeypatch.setattr(pm, "_verify", lambda X, pats, pts: (pats, pts, True))   # the sampling net says "fine"
    pats = enumerate_patterns(X)
    assert len({tuple(p) for p in pats}) == len(_feasible_signs_by_lp(X)) - 1
    res = relu_polar(X, _linear_residual(X, y), upper_bound=False)
    assert not res.exact and "not proven complete" in res.method
    assert not relu_polar(X, _linear_residual(X, y), patterns=pats, upper_bound=False).exact


@pytest.mark.slow
def test_cache_is_not_fooled_by_in_place_mutation_or_a_key_collision(monkeypatch):
    X = np.random.default_rng(12).standard_normal((9, 3))
    first = enumerate_patterns(X)
    X[0] = -X[0]                       # same array object, new data
    second = enumerate_patterns(X)
    assert not np.array_equal(first, second)
    assert {tuple(p) for p in second} == _feasible_signs_by_lp(X)
    monkeypatch.setattr(pm, "_key", lambda X: ("collide",))   # every X hashes alike
    Y = np.random.default_rng(13).standard_normal((9, 3))
    enumerate_patterns(X)
    assert {tuple(p) for p in enumerate_patterns(Y)} == _feasible_signs_by_lp(Y)
    assert not pm.patterns_complete(Y, enumerate_patterns(X))


@pytest.mark.parametrize("per_pattern", ["nnls", "native"])
def test_a_tiny_nonzero_row_does_not_cut_every_cone_in_half(per_pattern):
    """A row below the zero-row tolerance is 'always active' in the enumeration; as a constraint it
    halved every cone, and nnls (exact arithmetic) then reported a too-small polar as exact."""
    rng = np.random.default_rng(0)
    theta = np.linspace(0, 2 * np.pi, 200_001)
    U = np.c_[np.cos(theta), np.sin(theta)]
    for _ in range(30):
        X = np.vstack([rng.standard_normal((6, 2)), 1e-13 * rng.standard_normal(2)])
        G = rng.standard_normal(7)
        res = relu_polar(X, G, per_pattern=per_pattern)
        grid = np.abs(np.maximum(U @ X.T, 0) @ G).max()
        delta = abs(G[-1]) * np.linalg.norm(X[-1])        # what the treated-as-zero row can move
        assert grid <= res.value + 1e-8
        assert grid <= res.upper + 1e-8 and res.upper <= res.value * (1 + 1e-12) + 2 * delta * (1 + 1e-9)
        assert not res.exact


def test_a_treated_as_zero_row_with_a_large_residual_widens_the_upper_bound():
    """A row of norm 1e-13 with G_i = 3e12 moves the objective by up to 0.3: the programs drop it, so the
    value over the remaining arrangement can miss the polar by that much; the upper bound must not."""
    rng = np.random.default_rng(3)
    theta = np.linspace(0, 2 * np.pi, 400_001)
    U = np.c_[np.cos(theta), np.sin(theta)]
    misses = 0
    for _ in range(20):
        X = np.vstack([rng.standard_normal((6, 2)), 1e-13 * rng.standard_normal(2)])
        G = np.r_[rng.standard_normal(6), 3e12 * rng.choice([-1.0, 1.0])]
        res = relu_polar(X, G)
        grid = np.abs(np.maximum(U @ X.T, 0) @ G).max()
        misses += grid > res.value + 1e-6                  # the dropped row matters here
        assert grid <= res.upper + 1e-8, (grid, res.value, res.upper)
        assert not res.exact and "treated as zero" in res.method
    assert misses                                          # the case the widened bound exists for occurs


def test_relaxation_with_a_zero_row_is_finite_and_valid():
    """A zero row with a negative G entry: the secant cut divides by ‖x_i‖ = 0 (now skipped)."""
    X, y = _data(12, 3, seed=5)
    X[0] = 0.0
    G = _linear_residual(X, y)
    G[0] = -abs(G[0]) - 1.0
    exact = relu_polar(X, G).value
    rb = relaxation_upper_bound(X, G)
    assert np.isfinite(rb.upper) and exact - 1e-9 <= rb.upper


def test_a_reduced_accuracy_conic_solve_is_settled_exactly(monkeypatch):
    """An 'AlmostSolved' per-pattern solve may be far from optimal; the exact polar must not use it."""
    X, y = _data(20, 3, seed=0)   # its maximum is not attained in closed form
    G = _linear_residual(X, y)
    ref = relu_polar(X, G, per_pattern="nnls").value

    def sloppy(Xc, c):
        return np.zeros_like(c), "AlmostSolved", 0.0   # "optimum 0": would drop every pattern

    monkeypatch.setattr(rp, "_clarabel_program", sloppy)
    res = relu_polar(X, G, per_pattern="native")
    assert res.exact and res.value == pytest.approx(ref, rel=1e-9)


def test_sampling_in_one_dimension_returns_only_realised_patterns():
    X = np.array([[1.0], [-2.0], [0.0]])
    with np.errstate(all="raise"):   # the boundary draws divided 0 by 0 here
        P = sample_patterns(X, 10, seed=0)
    assert {tuple(p) for p in P} == {(True, False, True), (False, True, True)}


def test_pruning_below_a_threshold_gives_a_proven_interval():
    X, y = _data(25, 3, seed=2)
    G = _linear_residual(X, y)
    exact = relu_polar(X, G, upper_bound=False)
    assert exact.exact
    tau = 2.0 * exact.value   # every program whose bound ‖XᵀDG‖ is at most 2·polar is skipped
    pruned = relu_polar(X, G, prune_below=tau, upper_bound=False)
    assert not pruned.exact and "prune_below" in pruned.method
    assert pruned.value <= exact.value * (1 + 1e-12) <= pruned.upper * (1 + 1e-12)
    assert pruned.upper <= tau
    with pytest.raises(InvalidInputError, match="prune_below"):
        relu_polar(X, G, prune_below=math.nan)


def test_the_native_piece_program_reaches_the_cvxpy_program_optimum():
    """The matrix-built SOCP (Clarabel's standard form, no modeling layer) and the cvxpy program are the same
    group lasso: the same backend lands on the same objective."""
    X, y = _data(30, 3, seed=4)
    rng = np.random.default_rng(0)
    s = ReLUState(rng.standard_normal((4, 3)), rng.standard_normal(4))
    native = ReLUGrowProblem(X, y, 0.05, solver="clarabel")
    assert native._native is not None
    via_cvxpy = ReLUGrowProblem(X, y, 0.05, solver="clarabel")
    via_cvxpy._native = None
    a, _ = native.piece_program(s)
    b, _ = via_cvxpy.piece_program(s)
    assert native.objective(a) == pytest.approx(via_cvxpy.objective(b), rel=1e-6)
    assert native.objective(a) < native.objective(s)
    assert native.hidden_block_value(a)[0] == pytest.approx(via_cvxpy.hidden_block_value(a)[0], rel=1e-6)
