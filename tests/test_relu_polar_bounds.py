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


# rows of norms 1e-7 ... 9e7 (review): a feasibility test scaled by the largest row let a closed form violate the
# small rows at cosines ~ -0.2 and claim a value ‖point‖ above the program's maximum, not attained at its point
_SPREAD_X = np.array([
    [-48749129.89397211, -60220238.32987421, -19603599.47461119, -19505240.33892431, 35532462.19382722],
    [-1531.8775132183378, -8637.638648333943, -4864.515192989179, -1296.4045676260334, 2433.9569852171976],
    [257323.43825076966, -518913.86766668607, -786178.1544695499, -2069651.156342488, 896545.4036746018],
    [0.0004510211996414678, -0.0002456714154341176, 0.0003755864120480046, 0.000348208147010826,
     0.00022311225033772492],
    [119.43519119984894, -249.66212895869185, 57.646994101948195, -502.73521788537096, 436.00773363365147],
    [1715928.8930387213, 19428.808844557407, 3501013.6063391073, 6255057.941522882, 6581245.193143013],
    [9.0037290501475e-08, -2.0176667273185287e-08, 5.4213861683050774e-08, -4.113469577807396e-08,
     5.195942446771372e-08],
    [-121563.85336352815, -83988.6719032928, -133440.8746052483, 133209.6771528163, 135891.5903203763]])
_SPREAD_G = np.array([0.9232411384617251, 1.27231174703939, -0.025300329264120056, 0.27438159608727786,
                      -0.5784269986000683, -1.1509612478497493, 0.44701815053155675, 0.26837311131653563])


def test_closed_forms_hold_every_row_in_its_own_scale_and_the_polar_matches_every_program_solved():
    X, G = _SPREAD_X, _SPREAD_G
    pats = enumerate_patterns(X)
    sg = np.where(pats, 1.0, -1.0)
    nr = np.linalg.norm(X, axis=1)
    for s in (1.0, -1.0):
        C = s * (pats * G) @ X
        worst = np.argmin(sg * (C @ X.T) / nr, axis=1)
        _, closed, point = refine_bounds(C, sg, X, worst, np.full(len(C), np.inf), -np.inf, iters=6)
        for p in np.flatnonzero(closed):
            u = point[p] / np.linalg.norm(point[p])
            assert (sg[p] * (X @ u) / nr).min() >= -1e-9   # every row, as a cosine
    res = relu_polar(X, G)
    ref = relu_polar(X, G, per_pattern="native")   # every program solved by Clarabel
    assert res.value == pytest.approx(ref.value, rel=1e-7) and res.upper >= ref.value * (1 - 1e-7)
