"""The neighbouring piece of a unit batch built from the own piece's batch (issue 14, one sweep ≥ 10×): only the
boundary samples are rebuilt, the result equals the full build to rounding, and the neighbour's exact solve,
started from the own piece's final working set, finds the same optimum as a cold solve.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import random_interval_qps

from multiconvex.nets import Architecture, batched, forward, init_params
from multiconvex.nets.batched import PieceContext, piece_context, unit_batch
from multiconvex.nets.unit_blocks import solve_units
from multiconvex.solvers import dispatch
from multiconvex.solvers.batched_qp import solve_interval_qps


def _net(negative_slope: float = 0.0, sizes=(3, 6, 5, 4, 1), n: int = 50, seed: int = 0):
    arch = Architecture(sizes, negative_slope=negative_slope)
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, sizes[0], generator=g, dtype=torch.float64)
    T = torch.randn(n, sizes[-1], generator=g, dtype=torch.float64)
    params = [(W.clone(), b.clone()) for W, b in init_params(arch, seed, X.device)]
    for k, u, i in [(0, 1, 0), (1, 2, 3), (1, 2, 9), (2, 0, 7), (0, 4, 11)]:  # units exactly on a boundary
        _, pre, _ = forward(arch, params, X)
        params[k][1][u] = params[k][1][u] - pre[k][i, u]
    _, pre, inputs = forward(arch, params, X)
    return arch, params, X, T, pre, inputs


def _full_neighbour(arch, params, T, k, pre, inputs, units):
    """The neighbouring piece built from scratch: the same tensors in another list, for which no own-piece
    context is registered."""
    pre = list(pre)
    ctx = PieceContext(arch, T, pre, inputs, True)
    return unit_batch(arch, params, T, k, pre, inputs, units, flip_boundary=True, context=ctx)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    if b.numel() == 0:
        return 0.0
    return float((a - b).abs().max()) / max(1.0, float(b.abs().max()))


@pytest.mark.parametrize("negative_slope", [0.0, 0.1])
@pytest.mark.parametrize("units", [None, [1], [2, 0]])
def test_the_neighbour_derived_from_the_own_batch_equals_the_full_build(negative_slope, units):
    arch, params, _, T, pre, inputs = _net(negative_slope)
    for k in range(arch.n_layers - 1):
        sel = units if units is None or max(units) < arch.sizes[k + 1] else None
        own_side = piece_context(arch, T, pre, inputs)  # kept, as a form keeps it with the point
        own = unit_batch(arch, params, T, k, pre, inputs, context=own_side)
        assert own.parts is not None
        derived = unit_batch(arch, params, T, k, pre, inputs, sel, flip_boundary=True,
                             context=piece_context(arch, T, pre, inputs, True))
        full = _full_neighbour(arch, params, T, k, pre, inputs, sel)
        assert derived.source is not None and full.source is None
        assert derived.sign is not None and full.sign is not None and torch.equal(derived.sign, full.sign)
        assert torch.equal(derived.units, full.units) and torch.equal(derived.theta0, full.theta0)
        assert _rel(derived.gram, full.gram) <= 1e-13 and _rel(derived.lin, full.lin) <= 1e-13
        assert derived.zlo is not None and derived.zhi is not None and full.zlo is not None and full.zhi is not None
        for a, b in [(derived.zlo, full.zlo), (derived.zhi, full.zhi)]:
            assert torch.equal(torch.isfinite(a), torch.isfinite(b))
            fin = torch.isfinite(b)
            assert _rel(a[fin], b[fin]) <= 1e-13


def test_the_neighbour_differs_from_the_own_piece_where_a_unit_is_on_its_boundary():
    """Not a copy: the flipped samples change the signs and the Gram."""
    arch, params, _, T, pre, inputs = _net()
    own_side = piece_context(arch, T, pre, inputs)
    own = unit_batch(arch, params, T, 0, pre, inputs, [1], context=own_side)
    flip = unit_batch(arch, params, T, 0, pre, inputs, [1], flip_boundary=True,
                      context=piece_context(arch, T, pre, inputs, True))
    assert flip.source is not None and own.sign is not None and flip.sign is not None
    assert float(own.sign[0, 0]) == -float(flip.sign[0, 0])  # unit 1 of layer 1 is at 0 on sample 0
    assert not torch.equal(own.gram, flip.gram)


def test_no_own_batch_at_that_point_means_a_full_build():
    """Other parameters, another point, or an own-piece context no longer kept: the neighbour is built in full."""
    arch, params, _, T, pre, inputs = _net()
    own_side = piece_context(arch, T, pre, inputs)
    unit_batch(arch, params, T, 0, pre, inputs, [1], context=own_side)
    other = [(W.clone(), b.clone()) for W, b in params]  # other parameters: the own batch is not theirs
    flip = unit_batch(arch, other, T, 0, pre, inputs, [1], flip_boundary=True,
                      context=piece_context(arch, T, pre, inputs, True))
    assert flip.source is None
    _, pre2, inputs2 = forward(arch, params, torch.randn(50, 3, dtype=torch.float64))  # another point
    flip2 = unit_batch(arch, params, T, 0, pre2, inputs2, [1], flip_boundary=True,
                       context=piece_context(arch, T, pre2, inputs2, True))
    assert flip2.source is None
    unit_batch(arch, params, T, 0, pre2, inputs2, [1], context=piece_context(arch, T, pre2, inputs2))  # not kept
    flip3 = unit_batch(arch, params, T, 0, pre2, inputs2, [1], flip_boundary=True,
                       context=piece_context(arch, T, pre2, inputs2, True))
    assert flip3.source is None


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_the_neighbours_solve_from_the_own_working_set_finds_the_cold_optimum(layer):
    arch, params, _, T, pre, inputs = _net()
    plan = dispatch.make_plan("auto")
    f0, N = 1.0, T.shape[0]
    own_side = piece_context(arch, T, pre, inputs)
    own = unit_batch(arch, params, T, layer, pre, inputs, context=own_side)
    names = [f"u{u}" for u in range(own.size)]
    solve_units(arch, own, f0, N, 1e-3, 0.0, plan, names)
    assert own.active is not None and np.abs(own.active).sum() > 0
    flip = unit_batch(arch, params, T, layer, pre, inputs, flip_boundary=True,
                      context=piece_context(arch, T, pre, inputs, True))
    assert flip.source is not None
    warm = solve_units(arch, flip, f0, N, 1e-3, 0.0, plan, names)
    cold = solve_units(arch, _full_neighbour(arch, params, T, layer, pre, inputs, None), f0, N, 1e-3, 0.0, plan,
                       names)
    for a, b in zip(warm, cold):
        assert a.status == b.status
        if b.x is not None:
            assert a.x is not None and np.allclose(a.x, b.x, atol=1e-9)
            assert abs(a.value - b.value) <= 1e-12 * max(1.0, abs(b.value))


def test_interval_qps_report_the_final_working_set():
    B, n, m = 3, 4, 25
    P, q, C, lower, upper = random_interval_qps(1, B, n, m)
    out = solve_interval_qps(P, q, C, lower, upper)
    assert out.active is not None and out.active.shape == (B, m)
    z = np.einsum("mn,bn->bm", C, out.x)
    assert np.abs(out.active).sum() > 0
    assert np.allclose(z[out.active > 0], upper[out.active > 0], atol=1e-9)
    assert np.allclose(z[out.active < 0], lower[out.active < 0], atol=1e-9)
    again = solve_interval_qps(P, q, C, lower, upper, active=out.active)
    assert np.allclose(again.x, out.x, atol=1e-10) and again.iterations.sum() <= B


def test_a_batch_too_large_to_keep_its_terms_leaves_the_neighbour_to_a_full_build(monkeypatch):
    arch, params, _, T, pre, inputs = _net()
    monkeypatch.setattr(batched, "PARTS_ENTRIES", 10)  # fewer entries than N · g here
    own_side = piece_context(arch, T, pre, inputs)
    own = unit_batch(arch, params, T, 0, pre, inputs, context=own_side)
    flip = unit_batch(arch, params, T, 0, pre, inputs, flip_boundary=True,
                      context=piece_context(arch, T, pre, inputs, True))
    full = _full_neighbour(arch, params, T, 0, pre, inputs, None)
    assert own.parts is None and flip.source is None
    assert torch.equal(flip.gram, full.gram) and torch.equal(flip.zlo, full.zlo) and torch.equal(flip.zhi, full.zhi)


def test_interval_qps_read_any_signed_active_codes_as_their_sides():
    """``active=`` codes are read by their sign (any negative: lower side, positive: upper side): the same start as
    the codes -1, 0, 1, so the same solve to the last bit."""
    P, q, C, lower, upper = random_interval_qps(5, 3, 4, 20)
    cold = solve_interval_qps(P, q, C, lower, upper)
    z = np.einsum("mn,bn->bm", C, cold.x)
    active = (np.abs(z - upper) < 1e-9).astype(np.int8) - (np.abs(z - lower) < 1e-9).astype(np.int8)
    assert np.count_nonzero(active)
    unit = solve_interval_qps(P, q, C, lower, upper, active=active)
    scaled = solve_interval_qps(P, q, C, lower, upper, active=active.astype(np.int64) * 3)
    assert unit.status == scaled.status and np.array_equal(unit.x, scaled.x)
    assert np.array_equal(unit.iterations, scaled.iterations)
