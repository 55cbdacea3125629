"""Issue 11: the fast paths of the ReLU polar — the one-row bound and its closed form, the polar settled in one
pass — each checked against the slow path it replaces (real solvers, no mocks); grow certifying with them."""

from __future__ import annotations

import numpy as np
import pytest

from multiconvex.globalopt.grow import GrowOptions, grow
from multiconvex.globalopt.pattern_programs import _projection_program
from multiconvex.globalopt.patterns import enumerate_patterns
from multiconvex.globalopt.polar_bounds import refine_bounds
from multiconvex.globalopt.relu_convex import convex_relu_regression
from multiconvex.globalopt.relu_polar import relu_polar
from multiconvex.globalopt.relu_problem import ReLUGrowProblem, ReLUState


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = np.c_[rng.standard_normal((n, 2)), np.ones(n)]
    return X, rng.standard_normal(n)


def _polar_every_program(X: np.ndarray, G: np.ndarray) -> float:
    """The polar by the exact projection on every (pattern, sign): no bound, no pruning, no closed form."""
    best = 0.0
    for D in enumerate_patterns(X):
        Xc = np.where(D, 1.0, -1.0)[:, None] * X
        for s in (1.0, -1.0):
            u, status, _ = _projection_program(Xc, s * (X.T @ (D * G)))
            assert status == "optimal"
            if np.linalg.norm(u) > 0:
                u = u / np.linalg.norm(u)
                best = max(best, float(s * (np.maximum(X @ u, 0) @ G)))
    return best


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("scale", [1e-6, 1.0, 1e5])
def test_polar_with_one_row_bounds_equals_every_program_solved(seed, scale):
    X, G = _data(14, seed)
    res = relu_polar(X, scale * G)
    assert res.exact
    ref = _polar_every_program(X, scale * G)
    assert res.value == pytest.approx(ref, rel=1e-9)


def test_polar_settled_in_one_pass_is_exact_below_the_threshold():
    X, G = _data(25, 3)
    exact = relu_polar(X, G, n_maximisers=5)
    tau = 1.5 * exact.value                       # the polar is below τ: a certifying round
    pruned = relu_polar(X, G, n_maximisers=5, prune_below=tau)
    settled = relu_polar(X, G, n_maximisers=5, prune_below=tau, settle=True)
    assert pruned.pruned and not pruned.exact and pruned.upper <= tau
    assert settled.exact and not settled.pruned
    assert settled.value == pytest.approx(exact.value, rel=1e-12)
    assert settled.upper == settled.value


def test_polar_settle_changes_nothing_above_the_threshold():
    X, G = _data(25, 4)
    exact = relu_polar(X, G, n_maximisers=3)
    tau = 0.5 * exact.value
    a = relu_polar(X, G, n_maximisers=3, prune_below=tau)
    b = relu_polar(X, G, n_maximisers=3, prune_below=tau, settle=True)
    assert a.values == b.values and a.upper == b.upper and a.exact == b.exact


def _relu_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The issue-11 benchmark's data (``benchmarks/bench_global.relu_data``), bias column added."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 2))
    y = np.abs(X[:, 0]) - X[:, -1] + 0.5 * np.maximum(X.sum(1), 0) + 0.1 * rng.standard_normal(n)
    return np.c_[X, np.ones(n)], y


def test_grow_certifies_the_convex_optimum_with_the_settled_polar():
    Xa, y = _relu_data(20, 20)
    problem = ReLUGrowProblem(Xa, y, 0.1)
    res, _ = grow(problem, ReLUState(np.zeros((0, 3)), np.zeros(0)), GrowOptions())
    assert res.certificate.global_optimal and res.certificate.globalopt.polar_exact
    cvx = convex_relu_regression(Xa, y, 0.1)
    assert res.objective == pytest.approx(cvx.objective, rel=1e-6)


@pytest.mark.slow
def test_grow_certifies_the_case_where_a_piece_program_variant_crept():
    # a piece program on the cones' facet rows only (issue 11, not kept) crept here: 50 rounds of line searches
    # along polar maximisers 2e-5 above λ that the piece programs could not turn into a measurable gain
    Xa, y = _relu_data(60, 60)
    problem = ReLUGrowProblem(Xa, y, 0.01)
    res, _ = grow(problem, ReLUState(np.zeros((0, 3)), np.zeros(0)), GrowOptions())
    assert res.certificate.global_optimal
    assert res.info["rounds"] < 40


# -- the two-row dual bound (polar_bounds.refine_bounds) -------------------------------------------------------


def _every_program(X: np.ndarray, G: np.ndarray):
    """Every (pattern, sign) program: its rows' signs, its c, its exact value (NNLS projection), its worst row."""
    pats = enumerate_patterns(X)
    sg = np.where(pats, 1.0, -1.0)
    out = []
    for s in (1.0, -1.0):
        C = s * (pats * G) @ X
        exact = np.array([np.linalg.norm(_projection_program(sg[p][:, None] * X, C[p])[0]) for p in range(len(C))])
        cos = sg * (C @ X.T) / np.linalg.norm(X, axis=1)
        out.append((sg, C, exact, np.argmin(cos, axis=1)))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("d", [3, 5])
@pytest.mark.parametrize("scale", [1e-7, 1.0, 1e6])
def test_two_row_bounds_are_never_below_the_program_value_and_closed_forms_are_exact(seed, d, scale):
    rng = np.random.default_rng(seed)
    X = np.c_[rng.standard_normal((12, d - 1)), np.ones(12)]
    X[5] = X[4]                                   # a repeated sample: parallel rows in every pattern
    G = scale * rng.standard_normal(12)
    closed_total = 0
    for sg, C, exact, worst in _every_program(X, G):
        bound, closed, point = refine_bounds(C, sg, X, worst, np.full(len(C), np.inf), -np.inf, iters=6)
        # weak duality: every bound is proven, whatever μ the walk found
        assert (bound >= exact * (1 - 1e-12) - 1e-14 * scale).all()
        # a closed form is the program's value, attained at a feasible point
        size = np.linalg.norm(point[closed], axis=1)
        assert np.allclose(size, exact[closed], rtol=1e-9, atol=1e-12 * scale)
        u = point[closed] / np.maximum(size, 1e-300)[:, None]
        assert (sg[closed] * (u @ X.T) >= -1e-10).all()
        closed_total += int(closed.sum())
    assert closed_total > 0


def test_two_row_bounds_leave_programs_below_the_floor_alone():
    X, G = _data(12, 5)
    sg, C, exact, worst = _every_program(X, G)[0]
    start = np.full(len(C), 0.5 * exact.max())
    bound, closed, _ = refine_bounds(C, sg, X, worst, start, floor=exact.max())
    assert not closed.any() and (bound == start).all()


def test_exact_polar_solves_few_programs_with_two_row_bounds():
    # the issue-11 benchmark's data: nearly every program is pruned or solved in closed form by the two-row walk
    Xa, y = _relu_data(40, 40)
    G = y - y.mean()
    res = relu_polar(Xa, G, n_maximisers=5)
    ref = relu_polar(Xa, G, n_maximisers=5, per_pattern="native")
    assert res.exact and res.value == pytest.approx(ref.value, rel=1e-7)
    solved = int(res.method.split("pattern programs solved")[0].split(":")[-1])
    assert solved <= 0.1 * 2 * res.patterns_total
