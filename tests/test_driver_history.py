"""What the driver records. The history ends at the returned point: however a run stops (Ctrl-C inside a sweep or
inside a layer pass, a time limit), ``history[-1].objective`` is the result's objective and ``history[-1].iteration``
its iteration count. A block gap is a claim about every piece containing the point: a block whose solve on the
neighbouring piece across a boundary failed has no gap.

Ctrl-C is delivered as a ``KeyboardInterrupt`` from inside the ``k``-th block solve (or objective evaluation) of
a real network form: the place a user's SIGINT lands, made deterministic (the real-signal version is
``tests/test_limits.py::test_ctrl_c_returns_the_best_point_at_once_as_interrupted``).
"""

from __future__ import annotations

import math

import pytest
from conftest import small_relu_net

from multiconvex.drivers import DriverOptions, run
from multiconvex.nets import NetForm, forward, objective
from multiconvex.nets.hybrid import LayerSteps, run_rounds
from multiconvex.standard_form import BlockSolution

WD = 1e-3


def _problem(sizes=(2, 6, 6, 1), n: int = 40):
    arch, params, X, T = small_relu_net(sizes, n)  # two inputs: the same data as the other nets tests
    return arch, X, T, params


class _CtrlCInSolve(NetForm):
    """A network form on which Ctrl-C lands inside its ``at``-th block solve."""

    def __init__(self, *args, at: int):
        super().__init__(*args)
        self.at, self.solves = at, 0

    def solve_prepared(self, index):
        self.solves += 1
        if self.solves == self.at:
            raise KeyboardInterrupt
        return super().solve_prepared(index)


class _CtrlCInEvaluate(NetForm):
    """A network form on which Ctrl-C lands inside its ``at``-th objective evaluation."""

    def __init__(self, *args, at: int):
        super().__init__(*args)
        self.at, self.evaluations = at, 0

    def evaluate(self, point):
        self.evaluations += 1
        if self.evaluations == self.at:
            raise KeyboardInterrupt
        return super().evaluate(point)


def _returned_F(form: NetForm, arch, X, T) -> float:
    return float(objective(arch, form.params_from_point(form.final_point), X, T, WD))


def test_ctrl_c_inside_a_sweep_ends_the_history_at_the_returned_objective():
    arch, X, T, params = _problem()
    # 12 unit blocks + 1 output block per sweep: the 25th solve is in the second sweep, after it accepted blocks
    form = _CtrlCInSolve(arch, X, T, WD, at=25)
    res = run(form, form.point_from_params(params), DriverOptions("gauss-seidel", max_iters=10))
    assert res.status == "interrupted"
    last = res.history[-1]
    assert last.objective == res.objective == pytest.approx(_returned_F(form, arch, X, T), rel=1e-12)
    assert last.iteration == res.iterations == 2  # the sweep cut short has its own entry
    assert last.objective < res.history[-2].objective and last.accepted_block  # what it had accepted by then


def test_ctrl_c_before_a_sweep_accepts_anything_still_closes_the_history():
    arch, X, T, params = _problem()
    form = _CtrlCInSolve(arch, X, T, WD, at=1)
    res = run(form, form.point_from_params(params), DriverOptions("gauss-seidel", max_iters=10))
    assert res.status == "interrupted" and res.iterations == 1
    assert [h.objective for h in res.history] == [res.objective, res.objective]
    assert res.history[-1].accepted_block is None


def test_ctrl_c_inside_a_layer_pass_keeps_its_steps_and_records_them():
    arch, X, T, params = _problem()
    f0 = float(objective(arch, params, X, T, WD))
    # evaluation 1: the start; 2: the first layer step's check (kept); 3: the second's, where Ctrl-C lands
    form = _CtrlCInEvaluate(arch, X, T, WD, at=3)
    res = run_rounds(form, params, DriverOptions("gauss-seidel", max_iters=10),
                     LayerSteps(passes=2, sweeps=2, balance=False))  # no balance step: Ctrl-C lands in a layer step
    assert res.status == "interrupted" and len(res.info["layer_steps"]) == 1
    assert res.objective < f0  # the kept step is not lost
    assert res.history[-1].objective == res.objective == pytest.approx(_returned_F(form, arch, X, T), rel=1e-12)
    assert res.history[-1].accepted_block == "layer2-step"


def test_ctrl_c_inside_a_rounds_driver_run_ends_the_history_at_the_returned_objective():
    arch, X, T, params = _problem()
    form = _CtrlCInSolve(arch, X, T, WD, at=25)
    res = run_rounds(form, params, DriverOptions("gauss-seidel", max_iters=10), LayerSteps(passes=1, sweeps=2))
    assert res.status == "interrupted"
    assert res.history[-1].objective == res.objective == pytest.approx(_returned_F(form, arch, X, T), rel=1e-12)
    assert res.history[-1].iteration == res.iterations


@pytest.mark.parametrize("algorithm", ["gauss-seidel", "jacobi"])
def test_a_time_limited_run_ends_the_history_at_the_returned_objective(algorithm):
    arch, X, T, params = _problem(sizes=(2, 16, 16, 1), n=200)
    form = NetForm(arch, X, T, WD)
    res = run(form, form.point_from_params(params), DriverOptions(algorithm, max_iters=10_000, time_limit=0.2))
    assert res.status == "time_limit"
    assert res.history[-1].objective == res.objective == pytest.approx(_returned_F(form, arch, X, T), rel=1e-12)
    assert res.history[-1].iteration == res.iterations


def test_a_time_limited_run_in_rounds_ends_the_history_at_the_returned_objective():
    arch, X, T, params = _problem(sizes=(2, 16, 16, 1), n=200)
    form = NetForm(arch, X, T, WD)
    res = run_rounds(form, params, DriverOptions("gauss-seidel", max_iters=10_000, time_limit=0.3),
                     LayerSteps(passes=1, sweeps=2))
    assert res.status == "time_limit"
    assert res.history[-1].objective == res.objective == pytest.approx(_returned_F(form, arch, X, T), rel=1e-12)


class _NeighbourFails(NetForm):
    """A network form whose solves on a neighbouring piece across a boundary fail (as a backend's numerical error)."""

    def prepare(self, index, point, *, prox=0.0, flip_boundary=False):
        self.flipped = flip_boundary
        if flip_boundary:
            self.on_a_boundary = {*getattr(self, "on_a_boundary", ()), self.blocks[index].name}
        return super().prepare(index, point, prox=prox, flip_boundary=flip_boundary)

    def solve_prepared(self, index):
        if self.flipped:
            return BlockSolution(block=index, status="numerical_error", message="the neighbour's solve failed")
        return super().solve_prepared(index)


def test_a_block_whose_neighbouring_piece_was_not_solved_has_no_gap():
    arch, X, T, params = _problem()
    _, pre, _ = forward(arch, params, X)
    params[1][1][0] -= pre[1][3, 0]  # unit 1 of the second hidden layer on its boundary at sample 3
    gaps = {}
    for cls in (NetForm, _NeighbourFails):
        form = cls(arch, X, T, WD)
        res = run(form, form.point_from_params(params), DriverOptions("jacobi", max_iters=1))
        gaps[cls.__name__] = res.certificate.block_gaps
    assert res.info["failed_block_solves"] >= 1 and not res.certificate.is_partial_minimum
    assert all(math.isfinite(g) for g in gaps["NetForm"].values())
    # the unit on the boundary and the units of the layer before (whose pieces hold its row) have no gap; the
    # blocks off the boundary keep theirs
    unsolved = {n for n, g in gaps["_NeighbourFails"].items() if math.isnan(g)}
    assert unsolved == form.on_a_boundary and "layer2[0:1]" in unsolved and "layer3" not in unsolved
