"""The per-unit work of a Gauss–Seidel sweep (issue 14, item 1): the cheaper paths compute exactly what the
plain definitions do — boundary flags, a unit's own columns, the cached ``[a, 1]``, the incremental objective.
"""

from __future__ import annotations

import gc

import numpy as np
import pytest
import torch

import multiconvex.nets.piece_context as piece_context_module
from multiconvex.nets import Architecture, batched, forward, init_params, objective
from multiconvex.nets.batched import boundary_units, piece_context, unit_batch, with_ones
from multiconvex.nets.incremental import ForwardCache
from multiconvex.nets.network import boundary_mask


def _reference_boundary_units(arch: Architecture, layer: int, pre: list[torch.Tensor]) -> torch.Tensor:
    """The definition with boolean masks (the implementation before the min/max reductions)."""
    n = pre[layer].shape[1]
    if layer >= arch.n_layers - 1:
        return torch.zeros(n, dtype=torch.bool)
    own = boundary_mask(pre[layer]).any(dim=0)
    later = torch.zeros(pre[layer].shape[0], dtype=torch.bool)
    for j in range(layer + 1, arch.n_layers - 1):
        later |= boundary_mask(pre[j]).any(dim=1)
    if arch.negative_slope != 0:
        return own | bool(later.any())
    return own | ((pre[layer] >= 0) & later[:, None]).any(dim=0)


def _net(sizes=(3, 6, 5, 4, 1), negative_slope: float = 0.0, seed: int = 0, n: int = 50):
    arch = Architecture(sizes, negative_slope=negative_slope)
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, sizes[0], generator=g, dtype=torch.float64)
    T = torch.randn(n, sizes[-1], generator=g, dtype=torch.float64)
    params = [(W.clone(), b.clone()) for W, b in init_params(arch, seed, X.device)]
    return arch, params, X, T


def _pin(arch, params, X, at: list[tuple[int, int, int]], zero: float = 0.0):
    """Biases changed so that unit ``u`` of layer ``k`` has pre-activation ``zero`` at sample ``i``."""
    for k, u, i in at:
        _, pre, inputs = forward(arch, params, X)
        W, b = params[k]
        b[u] = b[u] - pre[k][i, u] + zero
    return forward(arch, params, X)


@pytest.mark.parametrize("negative_slope", [0.0, 0.1])
@pytest.mark.parametrize("zero", [0.0, -0.0, 3e-9])
def test_boundary_units_equal_the_mask_definition(negative_slope, zero):
    arch, params, X, _ = _net(negative_slope=negative_slope)
    _, pre, _ = _pin(arch, params, X, [(0, 1, 0), (1, 2, 3), (2, 0, 7)], zero)
    flagged_somewhere = False
    for layer in range(arch.n_layers):
        got, want = boundary_units(arch, layer, pre), _reference_boundary_units(arch, layer, pre)
        assert torch.equal(got, want), (layer, got, want)
        flagged_somewhere |= bool(got.any())
    assert flagged_somewhere
    _, pre_free, _ = forward(arch, _net(negative_slope=negative_slope, seed=5)[1], X)
    for layer in range(arch.n_layers):
        assert torch.equal(boundary_units(arch, layer, pre_free), _reference_boundary_units(arch, layer, pre_free))


@pytest.mark.parametrize("flip", [False, True])
def test_a_units_own_batch_equals_its_row_of_the_layers_batch(flip):
    """A Gauss–Seidel step builds one unit (its own columns only); a Jacobi pass the whole layer."""
    arch, params, X, T = _net()
    _, pre, inputs = _pin(arch, params, X, [(0, 1, 0), (1, 2, 3), (1, 2, 9), (2, 0, 7)], -0.0)
    for k in range(arch.n_layers):
        full = unit_batch(arch, params, T, k, pre, inputs, flip_boundary=flip)
        for u in range(arch.sizes[k + 1]):
            one = unit_batch(arch, params, T, k, pre, inputs, [u], flip_boundary=flip,
                             context=piece_context(arch, T, pre, inputs, flip))  # a fresh context: columns only
            # the same sums; a batched product's blocking (its rounding) may depend on the batch size (OpenBLAS on
            # AMD EPYC differs in the last bits)
            torch.testing.assert_close(one.gram[0], full.gram[u], rtol=1e-13, atol=1e-15)
            torch.testing.assert_close(one.lin[0], full.lin[u], rtol=1e-13, atol=1e-15)
            if full.sign is None:
                assert one.sign is None
                continue
            assert one.sign is not None and torch.equal(one.sign[:, 0], full.sign[:, u])
            assert torch.equal(one.zlo[0], full.zlo[u]) and torch.equal(one.zhi[0], full.zhi[u])


def test_the_own_piece_treats_signed_zeros_as_alive_and_the_flip_turns_them():
    arch, params, X, T = _net()
    _, pre, inputs = forward(arch, params, X)
    pre[0][4, 3] = -0.0  # the context reads only the pre-activations
    assert pre[0][4, 3] == 0 and torch.signbit(pre[0][4, 3])
    own, flip = piece_context(arch, T, pre, inputs), piece_context(arch, T, pre, inputs, True)
    assert own.hidden(0)[0][4, 3] == 1.0 and own.hidden(0)[1][4, 3] == 1.0  # z ≥ 0: alive
    assert flip.hidden(0)[0][4, 3] == -1.0 and flip.hidden(0)[1][4, 3] == 0.0
    assert torch.equal(own.hidden(0)[0], torch.where(pre[0] >= 0, 1.0, -1.0).to(pre[0].dtype))


def test_with_ones_is_reused_for_the_same_tensor_and_never_for_another():
    a = torch.randn(7, 3, dtype=torch.float64)
    first = with_ones(a)
    assert with_ones(a) is first and torch.equal(first, torch.cat([a, torch.ones(7, 1, dtype=a.dtype)], dim=1))
    del a, first
    gc.collect()
    for _ in range(20):  # new tensors (possibly at a freed tensor's address) get their own columns
        b = torch.randn(7, 3, dtype=torch.float64)
        assert torch.equal(with_ones(b), torch.cat([b, torch.ones(7, 1, dtype=b.dtype)], dim=1))


def test_the_incremental_objective_is_the_objective_to_the_last_bit():
    arch, params, X, T = _net(sizes=(4, 8, 6, 2))
    cache = ForwardCache(arch, X, T, 1e-3)
    point = {(k, u): np.append(W[u].numpy(), b[u].numpy()) for k, (W, b) in enumerate(params)
             for u in range(W.shape[0])}
    rng = np.random.default_rng(0)
    for _ in range(12):
        key = list(point)[rng.integers(len(point))]
        point = dict(point)
        point[key] = point[key] + 0.1 * rng.standard_normal(point[key].shape)
        entry = cache.get(point)
        want = float(objective(arch, cache.params_from_point(point), X, T, 1e-3))
        assert entry.f == pytest.approx(want, rel=1e-14, abs=0)
    assert cache.incremental_hits >= 11


@pytest.mark.parametrize("zero", [0.0, -0.0, 3e-9])
@pytest.mark.parametrize("chunk", [batched.CHUNK_ENTRIES, 40])
def test_a_units_build_from_its_alive_samples_equals_the_build_from_all(monkeypatch, zero, chunk):
    """One ReLU unit on its own piece: the later layers' rows and terms from the samples where it is alive only
    (batched._alive_rows_terms) are the full build's to the last bit, dead samples free and without terms (in one
    chunk of samples, and chunk by chunk)."""
    arch, params, X, T = _net(n=60)
    _, pre, inputs = _pin(arch, params, X, [(0, 1, 0), (1, 2, 3), (1, 2, 9), (2, 0, 7)], zero)
    calls = []
    real = batched._alive_rows_terms
    monkeypatch.setattr(batched, "_alive_rows_terms", lambda *a: calls.append(1) or real(*a))
    for k in range(arch.n_layers - 2):  # the layers with later hidden layers
        for u in range(arch.sizes[k + 1]):
            restricted = unit_batch(arch, params, T, k, pre, inputs, [u], chunk_entries=chunk,
                                    context=piece_context(arch, T, pre, inputs))
            with monkeypatch.context() as m:
                m.setattr(batched, "ALIVE_SHARE", -1.0)  # never restrict
                full = unit_batch(arch, params, T, k, pre, inputs, [u], chunk_entries=chunk,
                                  context=piece_context(arch, T, pre, inputs))
            assert restricted.parts is not None and full.parts is not None
            for a, b in [(restricted.gram, full.gram), (restricted.lin, full.lin), (restricted.zlo, full.zlo),
                         (restricted.zhi, full.zhi), (restricted.parts.m, full.parts.m),
                         (restricted.parts.beta, full.parts.beta)]:
                assert torch.equal(a, b), (k, u)
    assert any(calls)
    dead = (pre[0][:, 0] < 0).nonzero().squeeze(1)
    one = unit_batch(arch, params, T, 0, pre, inputs, [0], context=piece_context(arch, T, pre, inputs))
    assert dead.numel() and one.parts is not None
    assert bool((one.parts.m[dead] == 0).all()) and bool(torch.isinf(one.parts.lz[dead]).all())


def test_the_own_pieces_ratios_are_sign_over_slack_to_the_last_bit():
    arch, params, X, T = _net()
    _, pre, inputs = _pin(arch, params, X, [(1, 2, 3)], -0.0)  # an exact zero: the clamped formula
    for z in (pre, forward(arch, _net(seed=4)[1], X)[1]):  # without a zero: 1/z
        ctx = piece_context(arch, T, z, inputs)
        for j in range(arch.n_layers - 1):
            sign, _, slack, inv = ctx.hidden(j)
            assert inv is not None
            assert torch.equal(inv, sign / z[j].abs().clamp_min(torch.finfo(z[j].dtype).tiny))
            assert torch.equal(slack, z[j].abs())


def test_layer_statistics_are_kept_per_tensor_and_match_their_definitions():
    z = torch.randn(30, 5, dtype=torch.float64)
    stats = batched.abs_stats(z)
    assert batched.abs_stats(z) is stats
    assert stats.amax == float(z.abs().amax()) and torch.equal(stats.row_min, z.abs().amin(dim=1))
    assert torch.equal(stats.col_min, z.abs().amin(dim=0))
    assert batched.abs_stats(z.clone()) is not stats


def test_unit_columns_are_a_slice_only_for_a_contiguous_run():
    assert batched.unit_columns([3], 8) == slice(3, 4) and batched.unit_columns([2, 3, 4], 8) == slice(2, 5)
    assert batched.unit_columns(None, 8) == slice(0, 8) and batched.unit_columns(torch.tensor([5]), 8) == slice(5, 6)
    assert batched.unit_columns([1, 3], 8) is None and batched.unit_columns([4, 3], 8) is None


def test_layer_statistics_are_dropped_with_their_tensor():
    z = torch.randn(30, 5, dtype=torch.float64)
    batched.abs_stats(z)
    key = id(z)
    assert key in piece_context_module._ABS
    del z
    gc.collect()
    assert key not in piece_context_module._ABS


def test_the_piece_caches_survive_threads_and_drop_entries_with_their_tensors():
    import sys
    import threading
    import time

    from multiconvex.nets import piece_context as pc

    errors: list[str] = []
    live = [torch.empty(3, 2) for _ in range(12)]  # kept alive: their entries are evicted, not dropped

    def work(fn, seconds=0.3):
        end = time.perf_counter() + seconds
        try:
            while time.perf_counter() < end:
                fn(torch.empty(2, 2))
                for z in live[:6]:
                    fn(z)
        except Exception as exc:  # noqa: BLE001 - any error in a thread is the failure
            errors.append(repr(exc))

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for fn in (pc.abs_stats, pc.with_ones):
            threads = [threading.Thread(target=work, args=(fn,)) for _ in range(3)]
            [t.start() for t in threads]
            [t.join() for t in threads]
    finally:
        sys.setswitchinterval(old)
    assert errors == []
    a = torch.ones(5, 2)
    pc.with_ones(a)
    assert id(a) in pc._WITH_ONES
    key = id(a)
    del a
    assert key not in pc._WITH_ONES  # the [a, 1] copy is not held after a is gone


def _reference_signs(z: torch.Tensor, tol: float | None) -> torch.Tensor:
    """The signs by their formula with fresh tensors (``tol``: the neighbouring piece's flip at that tolerance)."""
    sign = torch.sign(torch.sign(z) + 0.5)
    if tol is not None and float(z.abs().amin()) <= tol:
        sign = sign * torch.sign(torch.sign(z.abs() - tol) - 0.5)
    return sign


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("at_tol", [False, True])
def test_signs_slopes_and_ratios_computed_in_place_are_their_formulas_to_the_last_bit(flip, at_tol):
    """The signs, slopes (max(s, 0) for (s + 1)/2) and the neighbouring piece's ratios s/|s z| made in place equal the
    formulas with fresh tensors bit for bit, signed zeros and pre-activations exactly at the tolerance included (on
    the neighbouring piece those have negative slacks: no ratios)."""
    for negative_slope in (0.0, 0.1):
        arch, params, X, T = _net(negative_slope=negative_slope)
        _, pre, inputs = forward(arch, params, X)
        tol = piece_context(arch, T, pre, inputs, flip).tol(1)
        pre[1] = pre[1].clone()  # a new tensor: the statistics kept for the old one are not its own
        pre[1][0, 0], pre[1][1, 1] = 0.0, -0.0
        if at_tol:
            pre[1][2, 2], pre[1][3, 3] = tol, -tol
        ctx = piece_context(arch, T, pre, inputs, flip)
        assert ctx.tol(1) == tol
        for j in range(arch.n_layers - 1):
            sign, slope, slack, inv = ctx.hidden(j)
            want = _reference_signs(pre[j], ctx.tol(j) if flip else None)
            want_slope = arch.slope(0.5 * (want + 1))
            assert torch.equal(sign, want) and torch.equal(slope, want_slope)
            assert torch.equal(torch.signbit(slope), torch.signbit(want_slope))
            assert torch.equal(slack, want * pre[j] if flip else pre[j].abs())
            if flip and float(slack.amin()) >= 0:
                assert inv is not None and torch.equal(inv, want / (want * pre[j]).abs())
                assert ctx._zero_slack[j] == (float(inv.abs().amax()) == float("inf"))
            elif flip:
                assert inv is None
        if flip:
            assert ctx.parts(1)[2] is None if at_tol else ctx._zero_slack[1]  # layer 1's zeros: infinite ratios


@pytest.mark.parametrize("zero", [None, 0.0, -0.0])
def test_a_context_over_some_samples_reads_the_points_kept_minima(zero):
    """A unit's context over some samples takes the smallest |z| of its rows from the point's kept statistics (no |z|
    of the rows made) and makes the slack only when asked: its signs, slopes, ratios and slacks are a plain context's
    over the same rows, bit for bit (an exact zero among the rows takes the clamped formula in both)."""
    arch, params, X, T = _net()
    _, pre, inputs = forward(arch, params, X) if zero is None else _pin(arch, params, X, [(1, 2, 3)], zero)
    ctx = piece_context(arch, T, pre, inputs)
    rows = torch.tensor([1, 3, 4, 8, 20, 33])
    for j in range(1, arch.n_layers - 1):
        assert batched.abs_stats(pre[j]).row_min.numel() == X.shape[0]  # kept, as a sweep's boundary flags keep them
    sub = batched._rows_context(ctx, 0, rows)
    plain = piece_context_module.PieceContext(arch, None, [p[rows] for p in pre], inputs, resid=ctx.resid[rows])
    for j in range(1, arch.n_layers - 1):
        assert piece_context_module._kept_abs_stats(pre[j]) is not None
        sub.parts(j)
        clamped = zero is not None and j == 1  # layer 1's exact zero (sample 3) takes the clamped formula: |z| made
        assert (sub._hidden[j][2] is None) != clamped  # otherwise no |z| of the rows made
        got, want = sub.hidden(j), plain.hidden(j)
        assert all(a is not None and b is not None and torch.equal(a, b) for a, b in zip(got, want)), j
    assert torch.equal(sub.resid, ctx.resid[rows])


def test_a_build_runs_in_inference_mode_and_keeps_normal_tensors_for_every_caller():
    """A batch's tensors are inference tensors (no autograd bookkeeping in the build); what the piece context module
    keeps for every caller, made first inside a build ([a, 1], |z| statistics), is normal: usable in a graph."""
    arch, params, X, T = _net()
    _, pre, inputs = forward(arch, params, X)
    pre, inputs = [p.clone() for p in pre], [a.clone() for a in inputs]  # new tensors: nothing kept for them yet
    assert piece_context_module._kept_abs_stats(pre[1]) is None
    ctx = piece_context(arch, T, pre, inputs, True)  # the neighbouring piece reads the layers' tolerances
    batch = unit_batch(arch, params, T, 1, pre, inputs, [2], flip_boundary=True, context=ctx)
    assert batch.gram.is_inference() and not torch.is_inference_mode_enabled()
    kept = [with_ones(inputs[1]), batched.abs_stats(pre[1]).abs, batched.abs_stats(pre[1]).row_min]
    assert piece_context_module._kept_abs_stats(pre[1]) is not None
    assert not any(t.is_inference() for t in kept)
    w = torch.ones(kept[0].shape[1], dtype=kept[0].dtype, requires_grad=True)
    (kept[0] @ w).square().sum().backward()  # a kept tensor saved for backward: refused were it an inference tensor
    assert w.grad is not None and torch.equal(w.grad, 2 * kept[0].T @ (kept[0] @ w.detach()))
