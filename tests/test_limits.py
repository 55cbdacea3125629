"""Limits that hold: the remaining time handed to backends, no solve after the deadline, Ctrl-C at once.

Issue 12, item 4. A run's ``time_limit`` is a deadline on the dispatcher's plan: each backend gets the
remaining time as its own time limit, none starts after it, and the driver returns the best point with
its block gaps not computed. Ctrl-C (SIGINT) returns the best point as ``"interrupted"`` without a
certificate pass (which is a whole round of block solves).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time

import cvxpy as cp
import numpy as np
import pytest
import scipy.sparse as sp

import multiconvex as mc
from multiconvex.solvers.dispatch import TIME_LIMIT_OPTION, make_plan, solve, with_time_limit
from multiconvex.solvers.registry import get_backend
from multiconvex.subproblem import BlockSubproblem


def big_sparse_qp(n: int = 3000, per_row: int = 4) -> BlockSubproblem:
    """A nonnegative least-squares-like sparse QP whose interior-point solve takes about a second here."""
    A = sp.random(n, n, density=per_row / n, random_state=1, format="csc")
    P = (A.T @ A + sp.identity(n)).tocsc()
    q = np.random.default_rng(0).standard_normal(n)
    return BlockSubproblem.from_dense(P, q, lb=np.zeros(n))


# -- the dispatcher ------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["clarabel", "osqp"])
def test_a_backend_stops_at_the_plans_deadline_with_no_point(backend):
    sub = big_sparse_qp()
    full = solve(sub, make_plan(backend))
    assert full.status == "optimal"
    plan = make_plan(backend)
    limit = min(0.2, full.wall_time / 5)
    plan.deadline = time.time() + limit
    cut = solve(sub, plan)
    assert cut.status == "time_limit" and cut.x is None, cut.attempts
    assert cut.attempts[0][0] == backend and "time_limit" in cut.attempts[0][1]
    # the backend's own limit stopped it: far less than the whole solve (measured: clarabel 0.29 s and
    # osqp 0.38 s against 1.2-1.3 s unlimited, with a 0.2 s limit)
    assert cut.wall_time < 0.6 * full.wall_time, (cut.wall_time, full.wall_time)


def test_no_backend_starts_once_the_deadline_has_passed():
    sub = BlockSubproblem.from_dense(np.eye(2), np.array([1.0, -1.0]), lb=np.zeros(2))
    plan = make_plan(["clarabel", "osqp"])
    plan.deadline = time.time() - 1.0
    sol = solve(sub, plan)
    assert sol.status == "time_limit" and sol.x is None and sol.backend is None
    assert sol.solve_time == 0.0
    assert [name for name, _ in sol.attempts] == ["-"] and "no solve started" in sol.message


def test_a_plan_without_deadline_solves_as_before():
    sub = BlockSubproblem.from_dense(np.eye(2), np.array([1.0, -1.0]), lb=np.zeros(2))
    plan = make_plan("clarabel")
    assert plan.deadline is None and plan.remaining() is None
    assert solve(sub, plan).x.round(6).tolist() == [0.0, 1.0]


def test_the_remaining_time_goes_to_the_backends_own_option_and_a_users_option_is_kept():
    assert with_time_limit(get_backend("clarabel"), {}, 2.5) == {"time_limit": 2.5}
    assert with_time_limit(get_backend("osqp"), {"eps_abs": 1e-6}, 2.5) == {"eps_abs": 1e-6, "time_limit": 2.5}
    assert with_time_limit(get_backend("clarabel"), {"time_limit": 7.0}, 2.5) == {"time_limit": 7.0}
    assert with_time_limit(get_backend("gurobi"), {"timelimit": 9}, 2.5) == {"timelimit": 9}  # Gurobi: any case
    assert with_time_limit(get_backend("gurobi"), {}, 2.5) == {TIME_LIMIT_OPTION["gurobi"]: 2.5}
    assert with_time_limit(get_backend("proxqp"), {}, 2.5) == {}  # ProxQP has no time limit
    assert with_time_limit(get_backend("clarabel"), {}, None) == {}  # no deadline
    assert with_time_limit(get_backend("osqp"), {}, 0.0)["time_limit"] > 0  # OSQP reads 0 as "no limit"


def test_clarabels_kept_solver_is_reused_when_only_the_time_limit_changes():
    rng = np.random.default_rng(0)
    plan = make_plan("clarabel")
    for _ in range(3):
        plan.deadline = time.time() + 100.0 * rng.uniform(1, 2)  # a different remaining time each solve
        sub = BlockSubproblem.from_dense(np.eye(3), rng.standard_normal(3), lb=np.zeros(3))
        assert solve(sub, plan, key="b").status == "optimal"
    problem = plan.workspaces["b"]["clarabel"]["clarabel"]
    assert (problem.solves, problem.rebuilds) == (3, 1)
    assert math.isfinite(problem.settings.time_limit)


# -- the driver ------------------------------------------------------------------------------------------

def nonnegative_factorization(m: int, n: int, k: int, seed: int = 7):
    rng = np.random.default_rng(seed)
    Y = np.abs(rng.standard_normal((m, k))) @ np.abs(rng.standard_normal((k, n))) + 0.1 * rng.standard_normal((m, n))
    U, V = cp.Variable((m, k), nonneg=True, name="U"), cp.Variable((k, n), nonneg=True, name="V")
    return cp.Problem(cp.Minimize(cp.sum_squares(Y - U @ V))), U, V


@pytest.mark.parametrize("algorithm", ["gauss-seidel", "jacobi"])
def test_a_time_limit_keeps_the_best_point_and_claims_no_gaps(algorithm):
    prob, U, V = nonnegative_factorization(60, 40, 4)
    res = mc.solve(prob, [[U], [V]], algorithm=algorithm, solver="clarabel", seed=0, max_iters=100_000, tol=0.0,
                   time_limit=0.3)
    assert res.status == "time_limit"
    assert res.objective <= min(h.objective for h in res.history)
    assert prob.objective.value == pytest.approx(res.objective, rel=1e-9)
    assert set(res.certificate.block_gaps) == {"U", "V"}
    assert all(math.isnan(g) for g in res.certificate.block_gaps.values())
    assert not res.certificate.is_partial_minimum and "not computed" in res.message


@pytest.mark.slow
def test_a_time_limit_inside_a_long_block_solve_returns_within_one_block_solve():
    """The issue's target: within max(5% of the limit, one block solve) over the limit. The U block (160k
    nonnegative variables) takes ~2.5 s in Clarabel here; with a 0.3 s limit the run returned after ~1.0 s
    total (the block's subproblem is built before Clarabel starts; Clarabel stopped at the limit)."""
    prob, U, V = nonnegative_factorization(8000, 200, 20)
    probe = mc.solve(prob, [[U], [V]], solver="clarabel", seed=0, max_iters=1, tol=0.0)
    one_sweep = probe.history[1].time  # the U and the V block solves of one Gauss-Seidel sweep
    limit = 0.3
    res = mc.solve(prob, [[U], [V]], solver="clarabel", seed=0, max_iters=100, tol=0.0, time_limit=limit)
    assert res.status == "time_limit"
    assert res.total_time <= limit + max(0.05 * limit, one_sweep), (res.total_time, one_sweep)
    assert res.info["failed_block_solves"] >= 1  # Clarabel stopped at its time limit: no point from it
    assert res.objective == pytest.approx(res.history[0].objective)  # nothing was accepted: the start is kept
    assert prob.objective.value == pytest.approx(res.objective, rel=1e-9)


# -- Ctrl-C ----------------------------------------------------------------------------------------------

CHILD = textwrap.dedent("""
    import json, math, pathlib, sys, time
    import cvxpy as cp
    import numpy as np
    import multiconvex as mc

    ready = pathlib.Path(sys.argv[1])
    rng = np.random.default_rng(7)
    Y = np.abs(rng.standard_normal((300, 8))) @ np.abs(rng.standard_normal((8, 200)))
    U, V = cp.Variable((300, 8), nonneg=True, name="U"), cp.Variable((8, 200), nonneg=True, name="V")
    prob = cp.Problem(cp.Minimize(cp.sum_squares(Y - U @ V)))

    def callback(entry):
        if entry.iteration == 2:
            ready.write_text("iterating")

    res = mc.solve(prob, [[U], [V]], algorithm=sys.argv[2], solver="clarabel", seed=0, max_iters=100_000,
                   tol=0.0, callback=callback, time_limit=120)
    print(json.dumps({"returned_at": time.time(), "status": res.status, "message": res.message,
                      "objective": res.objective, "history": [h.objective for h in res.history],
                      "loaded": float(prob.objective.value),
                      "gaps_nan": [math.isnan(g) for g in res.certificate.block_gaps.values()],
                      "partial": res.certificate.is_partial_minimum}))
""")


@pytest.mark.parametrize("algorithm", ["gauss-seidel", "jacobi"])
def test_ctrl_c_returns_the_best_point_at_once_as_interrupted(tmp_path, algorithm):
    ready = tmp_path / "ready"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(ready), algorithm], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the child never started iterating"
            time.sleep(0.01)
        time.sleep(0.3)  # well inside the iterations (each ~25 ms here)
        sent = time.time()
        os.kill(child.pid, signal.SIGINT)
        out, err = child.communicate(timeout=60)
        exited = time.time()
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    # measured here: the fit returned 0.01 s after SIGINT, the process exited after 0.15 s (interpreter
    # teardown included); 5 s leaves room for a loaded CI machine
    assert report["returned_at"] - sent < 5.0 and exited - sent < 10.0
    assert report["status"] == "interrupted" and "Ctrl-C" in report["message"], report["message"]
    assert report["objective"] <= min(report["history"])  # the best point, even mid-sweep
    assert report["loaded"] == pytest.approx(report["objective"], rel=1e-9)  # and it is in the variables
    # no certificate pass after Ctrl-C: the gaps are not computed, and nothing is claimed
    assert report["gaps_nan"] == [True, True] and not report["partial"]
    assert "not computed" in report["message"]
