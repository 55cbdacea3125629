"""Limits inside a Gauss–Seidel sweep of batched unit blocks (issue 14, item 6).

The batched path (:func:`multiconvex.nets.unit_blocks.solve_units`, DAQP per unit without the
dispatcher) honours the run's deadline like the dispatcher does: no unit solve starts after it, each
DAQP solve gets the time left as its own limit, and a run with ``time_limit`` returns within one unit
solve of it. Ctrl-C during a sweep returns the best point at once.
"""

from __future__ import annotations

import json
import math
import textwrap
import time

import numpy as np
import pytest
import torch

from multiconvex.drivers import DriverOptions, run
from multiconvex.nets import Architecture, NetForm, init_params
from multiconvex.nets.network import objective as net_objective
from multiconvex.solvers.batched_qp import solve_interval_qps


def interval_qps(B: int = 3, n: int = 4, m: int = 30, seed: int = 0):
    rng = np.random.default_rng(seed)
    G = rng.standard_normal((B, n, n))
    P = G @ G.transpose(0, 2, 1) + np.eye(n)
    q = rng.standard_normal((B, n)) * 5
    C = rng.standard_normal((m, n))
    return P, q, C, np.full((B, m), -1.0), np.full((B, m), 1.0)


def test_no_interval_qp_starts_after_the_deadline():
    P, q, C, lo, up = interval_qps()
    out = solve_interval_qps(P, q, C, lo, up, deadline=time.time() - 1.0)
    assert out.status == ["time_limit"] * 3
    assert np.isnan(out.x).all() and not out.solve_time.any() and not out.iterations.any()


def test_interval_qps_before_the_deadline_are_solved_exactly_as_without_one():
    P, q, C, lo, up = interval_qps()
    free = solve_interval_qps(P, q, C, lo, up)
    timed = solve_interval_qps(P, q, C, lo, up, deadline=time.time() + 60.0)
    assert free.status == timed.status == ["optimal"] * 3
    np.testing.assert_array_equal(free.x, timed.x)
    assert (np.abs(C @ timed.x.T) <= 1 + 1e-9).all()


def net_problem(N: int = 300, sizes=(5, 16, 16, 1)):
    g = torch.Generator().manual_seed(3)
    X = torch.randn(N, sizes[0], generator=g, dtype=torch.float64)
    T = torch.sin(X[:, :1]) + X[:, 1:2] * X[:, 2:3]
    return Architecture(sizes), X, T


def test_a_unit_block_prepared_after_the_deadline_ends_time_limit_with_no_point():
    arch, X, T = net_problem()
    form = NetForm(arch, X, T, 1e-3)
    x0 = form.point_from_params(init_params(arch, 0, X.device))
    form.set_deadline(time.time() - 1.0)
    form.prepare(0, x0)
    sol = form.solve_prepared(0)
    assert sol.status == "time_limit" and sol.values is None and not sol.ok
    form.set_deadline(None)
    form.prepare(0, x0)
    assert form.solve_prepared(0).status == "optimal"


@pytest.mark.slow
def test_a_time_limit_inside_a_sweep_returns_within_a_few_unit_solves_with_the_best_point():
    arch, X, T = net_problem(N=600, sizes=(5, 32, 32, 1))
    form = NetForm(arch, X, T, 1e-3)
    x0 = form.point_from_params(init_params(arch, 0, X.device))
    probe = run(form, x0, DriverOptions(max_iters=1))
    sweep = probe.history[1].time
    limit = sweep / 3  # stops inside the first sweep
    form = NetForm(arch, X, T, 1e-3)
    res = run(form, x0, DriverOptions(max_iters=100, tol=0.0, time_limit=limit))
    assert res.status == "time_limit"
    # within a few unit solves (each ~sweep / 65) of the limit; 0.5 s of room for a loaded machine
    assert res.total_time <= limit + 0.5, (res.total_time, limit, sweep)
    assert res.objective <= res.history[0].objective
    params = form.params_from_point(form.final_point)
    assert float(net_objective(arch, params, X, T, 1e-3)) == pytest.approx(res.objective, rel=1e-12)
    assert all(math.isnan(g) for g in res.certificate.block_gaps.values())


CHILD = textwrap.dedent("""
    import json, math, pathlib, sys, time
    import numpy as np
    from multiconvex.models import ReLUNetwork, datasets

    ready = pathlib.Path(sys.argv[1])
    X, y = datasets.load("diabetes")
    X = np.vstack([X, X + 0.01]); y = np.concatenate([y, y])  # ~1-2 s per sweep of [10, 64, 64, 1] here
    net = ReLUNetwork(hidden_layer_sizes=[64, 64], weight_decay=1e-4, random_state=0, algorithm="gauss-seidel",
                      max_iter=10_000, time_limit=300)

    def callback(entry):
        if entry.iteration == 1:
            ready.write_text("sweeping")

    net.fit(X, y, callback=callback)
    res = net.result_
    print(json.dumps({"returned_at": time.time(), "status": res.status, "message": res.message,
                      "objective": res.objective, "history": [h.objective for h in res.history],
                      "loaded": float(net.objective(X, y)),
                      "gaps_nan": all(math.isnan(g) for g in res.certificate.block_gaps.values())}))
""")


@pytest.mark.slow
def test_ctrl_c_during_a_sweep_of_unit_blocks_returns_the_best_point_within_a_second(interrupt_child):
    returncode, out, err, sent, _ = interrupt_child(CHILD, after=0.3, start_timeout=240)  # inside the second sweep
    assert returncode == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    # the target is one second; measured here (2 shared cores, load ~10): 0.006 s
    assert report["returned_at"] - sent < 1.0, report["returned_at"] - sent
    assert report["status"] == "interrupted" and "Ctrl-C" in report["message"], report["message"]
    assert report["objective"] <= min(report["history"])  # the best point, even mid-sweep
    assert report["loaded"] == pytest.approx(report["objective"], rel=1e-9)  # and it is the network's weights
    assert report["gaps_nan"]
