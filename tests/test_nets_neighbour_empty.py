"""A neighbouring piece that is empty, or that DAQP cannot decide (a 100,000-sample sweep spent minutes in fallbacks):
a crossed interval is the proof without a solve, and a large neighbour DAQP leaves undecided gets no slower
backend after it; the own piece and small neighbours keep the whole fallback list.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from multiconvex.drivers import DriverOptions, run
from multiconvex.nets import Architecture, forward, init_params, unit_blocks
from multiconvex.nets.batched import piece_context, unit_batch, unit_qps
from multiconvex.nets.certificates import block_gaps
from multiconvex.nets.form import NetForm
from multiconvex.nets.unit_blocks import solve_units, unit_subproblem
from multiconvex.solvers import dispatch

#: DAQP stopped after one iteration: it leaves most unit blocks unsolved (no point, no proof), as it leaves a
#: nearly empty neighbouring piece of a large data set.
ONE_DAQP_STEP = {"daqp": {"iter_limit": 1}}


def _crossing_net(offset: float):
    """A [3, 4, 3, 1] net where unit ``u`` of layer 1 is dead by ``offset`` at sample 0 and a later unit ``j``
    that it feeds with a positive weight is alive by ``offset`` there: both on their boundary, and on the
    neighbouring piece (both flipped) unit ``u``'s interval at sample 0 is crossed."""
    arch = Architecture((3, 4, 3, 1))
    g = torch.Generator().manual_seed(0)
    X = torch.randn(30, 3, generator=g, dtype=torch.float64)
    T = torch.randn(30, 1, generator=g, dtype=torch.float64)
    params = [(W.clone(), b.clone()) for W, b in init_params(arch, 0, X.device)]
    u = 1
    j = int(torch.argmax(params[1][0][:, u]))
    assert float(params[1][0][j, u]) > 0
    _, pre, _ = forward(arch, params, X)
    params[0][1][u] -= pre[0][0, u] + offset
    _, pre, _ = forward(arch, params, X)
    params[1][1][j] -= pre[1][0, j] - offset
    _, pre, inputs = forward(arch, params, X)
    piece_context(arch, T, pre, inputs)  # the own side, as a form keeps it
    flip = unit_batch(arch, params, T, 0, pre, inputs, flip_boundary=True,
                      context=piece_context(arch, T, pre, inputs, True))
    return arch, flip, u


def _boundary_net(n: int = 50, with_inputs: bool = False):
    """A [3, 6, 5, 4, 1] net with units exactly on their boundary (as in test_nets_neighbour); ``X`` first when
    ``with_inputs``."""
    arch = Architecture((3, 6, 5, 4, 1))
    g = torch.Generator().manual_seed(0)
    X = torch.randn(n, 3, generator=g, dtype=torch.float64)
    T = torch.randn(n, 1, generator=g, dtype=torch.float64)
    params = [(W.clone(), b.clone()) for W, b in init_params(arch, 0, X.device)]
    for k, u, i in [(0, 1, 0), (1, 2, 3), (1, 2, 9), (2, 0, 7), (0, 4, 11)]:
        _, pre, _ = forward(arch, params, X)
        params[k][1][u] = params[k][1][u] - pre[k][i, u]
    _, pre, inputs = forward(arch, params, X)
    return (X, arch, params, T, pre, inputs) if with_inputs else (arch, params, T, pre, inputs)


@pytest.mark.parametrize("offset", [5e-8, 1e-13])
@pytest.mark.parametrize("solver", ["auto", "clarabel-native"])
def test_a_crossed_interval_is_an_empty_piece_without_a_backend(offset, solver):
    arch, flip, u = _crossing_net(offset)
    assert flip.neighbour and flip.zlo is not None and flip.zhi is not None
    assert bool(flip.zlo[u, 0] > flip.zhi[u, 0])  # the crossed row: sample 0
    sols = solve_units(arch, flip, 1.0, 30, 1e-3, 0.0, dispatch.make_plan(solver),
                       [f"u{i}" for i in range(flip.size)])
    sol = sols[u]
    assert sol.status == "infeasible" and sol.x is None and sol.backend is None and sol.attempts == []
    assert "sample 0" in sol.message and "crossed" in sol.message
    crossed = (flip.zlo > flip.zhi).any(dim=1).tolist()
    assert [s.status == "infeasible" for s in sols] == crossed  # the others are solved as before
    assert all(s.status == "optimal" for s, c in zip(sols, crossed) if not c)


def test_a_clear_crossing_is_what_daqp_proves_on_the_rows():
    """The same piece as rows through the dispatcher: DAQP's own proof agrees (a crossing at rounding level is
    within every backend's feasibility tolerance, so there the row alone decides)."""
    arch, flip, u = _crossing_net(5e-8)
    sub = unit_subproblem(flip, u, unit_qps(flip, 30, 1e-3), 1.0)
    sol = dispatch.solve(sub, dispatch.make_plan("daqp"))
    assert sol.status == "infeasible" and "proven" in sol.attempts[0][1]


def _unsolved(sols):
    return [i for i, s in enumerate(sols) if s.backend != "daqp" or s.x is None]


def test_a_large_neighbour_daqp_leaves_undecided_gets_no_fallback(monkeypatch):
    arch, params, T, pre, inputs = _boundary_net()
    monkeypatch.setattr(unit_blocks, "NEIGHBOUR_FALLBACK_ROWS", 10)  # 50 samples: "large"
    piece_context(arch, T, pre, inputs)
    flip = unit_batch(arch, params, T, 0, pre, inputs, flip_boundary=True,
                      context=piece_context(arch, T, pre, inputs, True))
    plan = dispatch.make_plan("auto", options=ONE_DAQP_STEP)
    sols = solve_units(arch, flip, 1.0, 50, 1e-3, 0.0, plan, [f"u{i}" for i in range(flip.size)])
    left = _unsolved(sols)
    assert left  # DAQP's one step leaves some
    for i in left:
        s = sols[i]
        assert s.x is None and s.status == "iteration_limit" and "undecided" in s.message
        assert [name for name, _ in s.attempts] == ["daqp"]  # no ProxQP, Clarabel, OSQP after it


@pytest.mark.parametrize("side", ["own piece", "small neighbour"])
def test_the_own_piece_and_a_small_neighbour_keep_the_fallback_list(monkeypatch, side):
    arch, params, T, pre, inputs = _boundary_net()
    own_side = piece_context(arch, T, pre, inputs)
    if side == "own piece":
        monkeypatch.setattr(unit_blocks, "NEIGHBOUR_FALLBACK_ROWS", 10)
        batch = unit_batch(arch, params, T, 0, pre, inputs, context=own_side)
        assert not batch.neighbour
    else:  # 50 rows, under the default threshold
        unit_batch(arch, params, T, 0, pre, inputs, context=own_side)
        batch = unit_batch(arch, params, T, 0, pre, inputs, flip_boundary=True,
                           context=piece_context(arch, T, pre, inputs, True))
        assert batch.neighbour and batch.inputs.shape[0] <= unit_blocks.NEIGHBOUR_FALLBACK_ROWS
    plan = dispatch.make_plan("auto", options=ONE_DAQP_STEP)
    sols = solve_units(arch, batch, 1.0, 50, 1e-3, 0.0, plan, [f"u{i}" for i in range(batch.size)])
    left = _unsolved(sols)
    assert left
    exact = solve_units(arch, batch, 1.0, 50, 1e-3, 0.0, dispatch.make_plan("auto"),
                        [f"exact{i}" for i in range(batch.size)])
    for i in left:
        assert sols[i].status == "optimal" and sols[i].x is not None and len(sols[i].attempts) >= 2
        assert exact[i].x is not None and np.allclose(sols[i].x, exact[i].x, atol=1e-6)


def test_a_certificate_pass_proves_no_gap_for_a_block_whose_neighbour_is_undecided(monkeypatch):
    """The driver's certificate at the start point: the blocks whose neighbouring piece DAQP left undecided (and,
    being large, got no fallback) have no gap; every other gap is the exact one."""
    monkeypatch.setattr(unit_blocks, "NEIGHBOUR_FALLBACK_ROWS", 10)
    X, arch, params, T, _, _ = _boundary_net(with_inputs=True)
    certificates = {}
    for label, options in [("one step", ONE_DAQP_STEP), ("exact", {})]:
        form = NetForm(arch, X, T, 1e-3, plan=dispatch.make_plan("auto", options=options))
        result = run(form, form.point_from_params(params), DriverOptions(algorithm="jacobi", max_iters=0))
        assert result.certificate is not None
        certificates[label] = result.certificate
    gaps = {label: c.block_gaps for label, c in certificates.items()}
    assert all(math.isfinite(v) for v in gaps["exact"].values())
    unproven = [name for name, v in gaps["one step"].items() if math.isnan(v)]
    assert unproven and not certificates["one step"].is_partial_minimum
    for name, v in gaps["one step"].items():
        if name not in unproven:
            assert abs(v - gaps["exact"][name]) <= 1e-9 * max(1.0, abs(gaps["exact"][name]))


def test_the_partial_minimum_certificate_leaves_an_undecided_neighbours_gap_unproven(monkeypatch):
    """:func:`block_gaps` (the certificate of any weights) likewise: ``nan`` where the neighbour is undecided."""
    monkeypatch.setattr(unit_blocks, "NEIGHBOUR_FALLBACK_ROWS", 10)
    X, arch, params, T, _, _ = _boundary_net(with_inputs=True)
    gaps = {}
    for label, options in [("one step", ONE_DAQP_STEP), ("exact", {})]:
        form = NetForm(arch, X, T, 1e-3, plan=dispatch.make_plan("auto", options=options))
        gaps[label] = block_gaps(form, form.point_from_params(params))
    assert all(math.isfinite(v) for v in gaps["exact"].values())
    unproven = [name for name, v in gaps["one step"].items() if math.isnan(v)]
    assert unproven
    for name, v in gaps["one step"].items():
        if name not in unproven:
            assert abs(v - gaps["exact"][name]) <= 1e-9 * max(1.0, abs(gaps["exact"][name]))
