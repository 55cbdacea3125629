"""What makes a two-layer ReLU grow round cheap (issue 11): the screen's units are exact chamber maximisers, a round's
local descent walks a bounded number of pieces, and a piece program already at its verified optimum is not solved
again — none of it changes what a certificate proves."""

import numpy as np
import pytest

from multiconvex.errors import InvalidInputError
from multiconvex.globalopt.grow import GrowOptions, grow
from multiconvex.globalopt.polar_search import local_polar_search
from multiconvex.globalopt.relu_polar import relu_polar
from multiconvex.globalopt.relu_problem import SCREEN_ITERS, ReLUGrowProblem, ReLUState


def kinked(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = np.c_[rng.standard_normal((n, 2)), np.ones(n)]
    y = np.abs(X[:, 0]) - X[:, 1] + 0.5 * np.maximum(X[:, :2].sum(1), 0) + 0.1 * rng.standard_normal(n)
    return X, y


def empty() -> ReLUState:
    return ReLUState(np.zeros((0, 3)), np.zeros(0))


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_screen_proposes_each_chambers_exact_maximiser(seed):
    X, y = kinked(30, seed)
    problem = ReLUGrowProblem(X, y, 0.01)
    _, state = grow(problem, empty(), GrowOptions(max_rounds=3))   # a few units: a residual with structure
    G = problem.residual(state)
    screened = problem.screen_polar(state, 5)
    exact = relu_polar(X, G).value
    alone = local_polar_search(X, G, problem.screen, seed=problem.seed, iters=SCREEN_ITERS)[0][0]
    assert alone < exact * (1 - 1e-8)                       # the local search alone stops short of the maximum...
    assert screened.values[0] == pytest.approx(exact, rel=1e-12)   # ...its chamber's exact maximiser does not
    assert screened.screened and screened.upper == np.inf and not screened.exact   # a lower bound, never a verdict
    for (u, s), v in zip(screened.maximisers, screened.values):
        assert np.linalg.norm(u) == pytest.approx(1.0, rel=1e-12)
        assert s * G @ np.maximum(X @ u, 0.0) == pytest.approx(v, rel=1e-12)   # every value is attained
        assert v <= exact * (1 + 1e-12)
    assert screened.values == sorted(screened.values, reverse=True)


def test_walk_caps_a_rounds_local_descent_and_grow_still_certifies():
    X, y = kinked(40, 3)
    start = ReLUState(np.random.default_rng(0).standard_normal((4, 3)), np.ones(4))
    capped = ReLUGrowProblem(X, y, 0.01, walk=2).local_descent(start, max_iters=50, tol=1e-9, deadline=None)
    free = ReLUGrowProblem(X, y, 0.01, walk=0).local_descent(start, max_iters=50, tol=1e-9, deadline=None)
    assert capped.iterations == 2 and not capped.converged
    assert free.iterations > 2
    assert ReLUGrowProblem(X, y, 0.01).walk == 3 and ReLUGrowProblem(X, y, 0.01, patterns=50).walk == 0
    res, _ = grow(ReLUGrowProblem(X, y, 0.01, walk=1), empty(), GrowOptions())
    assert res.certificate.global_optimal is True, res.message


@pytest.mark.parametrize("walk", [-1, 1.5, True])
def test_walk_must_be_a_non_negative_int(walk):
    X, y = kinked(10, 0)
    with pytest.raises(InvalidInputError, match="walk"):
        ReLUGrowProblem(X, y, 0.1, walk=walk)


def test_a_piece_program_at_its_verified_optimum_is_not_solved_again():
    X, y = kinked(40, 5)
    problem = ReLUGrowProblem(X, y, 0.05)
    _, state = grow(problem, empty(), GrowOptions(max_rounds=2))
    first, _ = problem.piece_program(state)
    assert first is not None and problem._native.verified
    solves = problem.solves
    again, t = problem.piece_program(first)
    assert again is None and t == 0.0 and problem.solves == solves       # nothing solved: no descent there
    fresh = ReLUGrowProblem(X, y, 0.05)
    resolved, _ = fresh.piece_program(first)                             # the same program, solved anew
    assert resolved is not None
    assert fresh.objective(resolved) >= problem.objective(first) * (1 - 1e-12)   # ...finds no lower point
