"""The dispatcher's cutoff: a proven lower bound of a subproblem's minimum ends a solve that cannot beat the caller's
value (a neighbouring piece that the block can hardly reach), and ProxQP's solve keeps to a time limit.

Before, a layer block's neighbouring piece with rows of norm ~1e-13 asking for a move of ~2,000 made DAQP say
"infeasible (not proven)", and its fallbacks ran for minutes: ProxQP took 84 s under a 40 s time limit.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as hst

from multiconvex.drivers import DriverOptions, run
from multiconvex.nets import Architecture, NetForm
from multiconvex.nets.form import params_from_named
from multiconvex.solvers import dispatch
from multiconvex.solvers.cutoff import lower_bound
from multiconvex.solvers.proxqp_qp import ProxqpQP
from multiconvex.subproblem import BlockSubproblem, KronTerm, make_slots

#: DAQP stopped after one iteration: it leaves a subproblem whose optimum needs an active row unsolved.
ONE_DAQP_STEP = {"daqp": {"iter_limit": 1}}


def _far(scale: float = 1e-6) -> BlockSubproblem:
    """``min ½‖x‖²`` s.t. ``scale·x₁ ≥ 1e3·scale``: the minimum is ½·1000² = 500,000, at ``x = (1000, 0)``."""
    return BlockSubproblem.from_dense(np.eye(2), np.zeros(2), A=np.array([[scale, 0.0]]), l=[1e3 * scale],
                                      u=[np.inf])


@pytest.mark.parametrize("scale", [1.0, 1e-6, 1e-13, 1e-160])
def test_the_bound_of_one_far_row_is_below_the_exact_minimum_and_close_to_it(scale):
    bound = lower_bound(_far(scale))
    assert 0.85 * 500_000 < bound <= 500_000  # μ's floor keeps a tenth of the eigenvalue for its proof


def test_the_bound_proves_nothing_without_curvature_and_everything_for_an_empty_row():
    singular = BlockSubproblem.from_dense(np.diag([1.0, 0.0]), np.zeros(2), A=np.array([[1.0, 0.0]]), l=[5.0],
                                          u=[np.inf])
    assert lower_bound(singular) == -math.inf
    empty = BlockSubproblem.from_dense(np.eye(2), np.zeros(2), A=np.zeros((1, 2)), l=[1.0], u=[np.inf])
    assert lower_bound(empty) == math.inf  # the "0 ≥ 1" row of an empty piece
    free = BlockSubproblem.from_dense(np.eye(2), np.array([2.0, 0.0]), c=1.0)
    assert -1.0 - 1e-12 < lower_bound(free) <= -1.0  # no rows: the unconstrained minimum, 1 − ½·4


def test_a_nearly_crossed_pair_of_tiny_rows_is_bounded_by_its_dual_ray():
    """``a·x ≥ 1e-11`` and ``−(1 + 2⁻⁵⁰)a·x ≥ 1e-11`` with ``‖a‖ ≈ 3e-13``: empty, but the rows are not exactly
    opposite, so no exact pair proves it, and each row alone is only ~30 away. The nonnegative least squares' ray
    ``y ≈ (1, 1)`` makes the dual bound enormous."""
    a = np.array([1e-13, 3e-13])
    A = np.vstack([a, -a * (1 + 2.0**-50)])
    sub = BlockSubproblem.from_dense(np.eye(2) * 1e-3, np.zeros(2), A=A, l=[1e-11, 1e-11], u=[np.inf, np.inf])
    assert lower_bound(sub) > 1e20
    daqp = dispatch.solve(sub, dispatch.make_plan("daqp"))
    assert not daqp.ok  # DAQP finds no point, and proves nothing
    assert dispatch.solve(sub, dispatch.make_plan("daqp"), cutoff=1e6).status == "cutoff"


def test_the_bound_is_safe_where_its_arithmetic_is_not():
    """A review's cases: ``P`` from Kron terms (their rounded sum can hide an indefinite exact sum), an overflowing
    gain (``inf − inf``), and a ray whose curvature underflows (it divided by zero inside the dispatcher)."""
    kron = BlockSubproblem(make_slots([("x", (2, 1))]), [KronTerm(0, 0, np.eye(2), None)], np.zeros(2),
                           A=sp.csr_matrix(np.array([[1.0, 0.0]])), l=np.array([5.0]), u=np.array([np.inf]))
    assert lower_bound(kron) == -math.inf
    huge = BlockSubproblem.from_dense(np.eye(1), np.zeros(1), -1.7e308, A=np.array([[1.0]]), l=[2.1e154],
                                      u=[np.inf])
    assert lower_bound(huge) <= float(Fraction(-1.7e308) + Fraction(2.1e154) ** 2 / 2)  # not nan, not inf
    P = np.array([[1.406511913749642e290, -2.2532626744532527e289], [-2.2532626744532527e289, 1.1702386990337397e290]])
    tiny = BlockSubproblem.from_dense(P, np.array([1.5913290237894906e-13, -6.842518117047181e-13]), 14200488626.72609,
                                      A=np.array([[-1.2938032739199927e-200, -8.369538055808802e-201],
                                                  [-6.13106475135559e99, 1.2360979681315638e100]]),
                                      l=[8.153812846052037e-196, 1.054185864271946e101],
                                      u=[np.inf, 1.0541858642719463e101], lb=np.array([-51.84197509, -17.18533708]),
                                      ub=np.array([np.inf, 28.23632984]))
    assert not math.isnan(lower_bound(tiny))
    assert dispatch.solve(tiny, dispatch.make_plan("auto", options=ONE_DAQP_STEP), cutoff=0.0).status == "cutoff"


@settings(max_examples=60, deadline=None, derandomize=True)
@given(seed=hst.integers(0, 2**31 - 1), n=hst.integers(1, 6), m=hst.integers(0, 6), tiny=hst.integers(0, 14),
       decay=hst.sampled_from([1e-6, 1e-3, 1.0]), boxed=hst.booleans())
def test_the_bound_is_never_above_the_minimum_a_solver_finds(seed, n, m, tiny, decay, boxed):
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((n, n))
    P = M @ M.T / n + decay * np.eye(n)
    q = rng.standard_normal(n)
    A = rng.standard_normal((m, n)) * 10.0 ** -rng.integers(0, tiny + 1, size=(m, 1))  # some rows tiny
    x_in = rng.standard_normal(n) * 3
    l = A @ x_in - rng.random(m) * np.abs(A).sum(1)  # feasible: x_in satisfies every row
    lb, ub = (x_in - 1 - rng.random(n), x_in + 1 + rng.random(n)) if boxed else (None, None)
    sub = BlockSubproblem.from_dense(P, q, A=A if m else None, l=l if m else None,
                                     u=np.full(m, np.inf) if m else None, lb=lb, ub=ub)
    # the reference on unit rows (the same set): on rows of norm 1e-12 the backends' absolute feasibility
    # tolerances let them return points tens of units outside it, with values below the true minimum
    norms = np.linalg.norm(A, axis=1)
    unit = BlockSubproblem.from_dense(P, q, A=A / norms[:, None] if m else None, l=l / norms if m else None,
                                      u=np.full(m, np.inf) if m else None, lb=lb, ub=ub)
    sol = dispatch.solve(unit, dispatch.make_plan("clarabel"))
    assert sol.ok
    bound = lower_bound(sub)
    assert bound <= sol.value + 1e-7 * (1.0 + abs(sol.value)), (bound, sol.value)


def test_the_dispatcher_ends_a_failed_solve_at_the_cutoff_and_only_then():
    sub = _far()
    plan = dispatch.make_plan("auto", options=ONE_DAQP_STEP)
    cut = dispatch.solve(sub, plan, cutoff=1.0)
    assert cut.status == "cutoff" and cut.x is None and not cut.ok
    assert cut.attempts[0][0] == "daqp" and cut.attempts[-1] == ("cutoff", "cutoff")
    assert "cutoff 1.0" in cut.message and "at least" in cut.message
    # a cutoff above the bound proves nothing: the fallbacks run and solve it
    solved = dispatch.solve(sub, dispatch.make_plan("auto", options=ONE_DAQP_STEP), cutoff=1e9)
    assert solved.status == "optimal" and solved.value == pytest.approx(500_000, rel=1e-6)
    # a backend that solves it returns its point: the bound is computed only after a failure
    first = dispatch.solve(_far(1.0), dispatch.make_plan("auto"), cutoff=1.0)
    assert first.status == "optimal" and first.backend == "daqp" and first.value == pytest.approx(500_000)
    # the picklable task of a process pool carries the cutoff
    task = dispatch.solve_task((sub, dispatch.make_plan("auto", options=ONE_DAQP_STEP).portable(), None, "b", 1.0))
    assert task.status == "cutoff"


def test_proxqp_stops_at_its_time_limit_between_chunks_and_agrees_without_one():
    # far tiny rows that contradict each other: ProxQP does not settle in its first chunk of outer iterations
    a = np.array([[1e-13, 1e-13]])
    sub = BlockSubproblem.from_dense(np.eye(2) * 1e-3, np.ones(2), A=np.vstack([a, -a]), l=[2e-11, 2e-11],
                                     u=[np.inf, np.inf])
    out = ProxqpQP().solve(sub, {"time_limit": 1e-9}, None)
    assert out.status == "time_limit" and out.x is None
    # a chunk warm-started 2e-11 outside both rows (140 units in distance) called the empty set optimal before the
    # rows were scaled
    assert ProxqpQP().solve(sub, {"time_limit": 0.5}, None).x is None
    capped = ProxqpQP().solve(sub, {"max_iter": 5}, None)
    assert capped.status in ("iteration_limit", "infeasible")
    rng = np.random.default_rng(1)
    for _ in range(3):
        M = rng.standard_normal((20, 20))
        A = rng.standard_normal((40, 20))
        qp = BlockSubproblem.from_dense(M @ M.T / 20 + 1e-3 * np.eye(20), rng.standard_normal(20), A=A,
                                        l=-rng.random(40), u=np.full(40, np.inf))
        plain, chunked = ProxqpQP().solve(qp, {}, None), ProxqpQP().solve(qp, {"time_limit": 60.0}, None)
        assert plain.status == chunked.status == "optimal"
        assert np.allclose(plain.x, chunked.x, atol=1e-7) and chunked.iterations >= 1


def test_a_layer_block_run_reaches_no_neighbour_that_fails():
    """The review's run: extrapolated points of a [3, 6, 5, 1] net with layer blocks meet neighbouring pieces whose
    flipped units the block can hardly reach. Their bound is far above the objective, so no solve fails and no
    slow fallback runs (before: 84 s in ProxQP at the third sweep)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((150, 3))
    y = np.sin(X[:, 0]) + X[:, 1] * X[:, 2]
    arch = Architecture((3, 6, 5, 1))

    def form():
        return NetForm(arch, torch.as_tensor(X), torch.as_tensor(y[:, None]), 1e-3, block_size="layer")

    two = run(f := form(), f.initial_point(0, None), DriverOptions(max_iters=2, extrapolate=True))
    value = two.objective
    net = form()
    point = net.point_from_params(params_from_named(arch, two.values, torch.device("cpu")))
    assert net.evaluate(point)[0] == pytest.approx(value, rel=1e-12)
    assert net.prepare(0, point)  # a unit the first layer feeds is on its boundary
    sub = net.subproblem(0, point, flip_boundary=True)
    assert lower_bound(sub) > 1e6 * value  # rows of norm ~1e-13 that ask for moves of hundreds, nearly crossed
    sol = dispatch.solve(sub, net.plan, cutoff=value)
    assert sol.status in ("cutoff", "infeasible") and sol.backend is None
    res = run(f := form(), f.initial_point(0, None), DriverOptions(max_iters=25, extrapolate=True, time_limit=120))
    assert res.info["failed_block_solves"] == 0 and res.status == "iteration_limit"
    assert set(res.backends_used) <= {"daqp", "lstsq"} and res.objective < 0.5 * value
