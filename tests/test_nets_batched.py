"""Batched unit blocks of ReLU networks: the batch equals the per-block subproblems, its gaps equal the
per-block gaps, the drivers stay monotone on it, and a small network is certified at rounding level.

Every test takes ``device``: CPU always, CUDA when a device is present (skipped otherwise).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from conftest import random_interval_qps

from multiconvex.drivers import DriverOptions, run
from multiconvex.errors import InvalidInputError
from multiconvex.nets import Architecture, GradientOptions, NetForm, forward, init_params, objective
from multiconvex.nets.batched import boundary_units, unit_batch
from multiconvex.nets.blocks import LayerBlock, block_boundary, block_data
from multiconvex.nets.certificates import block_gaps, certificate
from multiconvex.nets.hybrid import parse_hybrid, run_hybrid
from multiconvex.nets.incremental import ForwardCache
from multiconvex.nets.subproblems import piece_rows
from multiconvex.solvers import batched_qp, dispatch, whitened
from multiconvex.solvers.batched_qp import solve_interval_qps
from multiconvex.subproblem import BlockSubproblem

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                 reason="no CUDA device"))]


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    return torch.device(request.param)


def _data(n: int, d: int, n_out: int, device, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    Y = np.stack([np.sin(X[:, 0] + j) + X[:, -1] * X[:, 0] for j in range(n_out)], axis=1)
    return torch.as_tensor(X, device=device), torch.as_tensor(Y, device=device)


def _point_on_boundaries(arch: Architecture, params, X):
    """``params`` changed so that unit 1 of layer 1 and unit 0 of layer 2 are exactly 0 at sample 0 (a boundary).

    Each bias is minus the forward pass's own product at that sample (taken with the bias at 0): ``W[u] @ x``
    computed alone may differ from it in the last bit (another summation order, e.g. on AMD's BLAS kernels)."""
    params = [(W.clone(), b.clone()) for W, b in params]
    for layer, unit in ((0, 1), (1, 0)):
        b = params[layer][1]
        b[unit] = 0.0
        _, pre, _ = forward(arch, params, X)
        b[unit] = -pre[layer][0, unit]
    _, pre, _ = forward(arch, params, X)
    assert pre[0][0, 1] == 0 and pre[1][0, 0] == 0
    return params


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max()) / max(1.0, float(b.abs().max()))


@pytest.mark.parametrize("flip", [False, True])
def test_unit_batch_equals_block_data_and_piece_rows(device, flip):
    arch = Architecture((3, 6, 5, 2))
    X, T = _data(40, 3, 2, device)
    params = _point_on_boundaries(arch, init_params(arch, 1, device), X)
    _, pre, inputs = forward(arch, params, X)
    assert bool(boundary_units(arch, 0, pre)[1]) and block_boundary(arch, LayerBlock(0, (1,), False), pre)
    for k in range(arch.n_layers):
        batch = unit_batch(arch, params, T, k, pre, inputs, flip_boundary=flip)
        for u in range(arch.sizes[k + 1]):
            ref = block_data(arch, params, T, LayerBlock(k, (u,), False), pre, inputs, flip_boundary=flip,
                             factor=False)
            c = batch.theta0.shape[1]
            assert _rel(batch.gram[u], ref.gram.reshape(c, c)) <= 1e-12
            assert _rel(batch.lin[u], ref.lin) <= 1e-12
            assert _rel(batch.theta0[u], ref.theta0) == 0.0
            rows = piece_rows(arch, k, ref)
            if rows is None:
                assert batch.sign is None
                continue
            N = X.shape[0]
            assert _rel(batch.own_rows(u), torch.as_tensor(rows.C[:N].toarray(), device=device)) == 0.0
            lo, up = torch.as_tensor(rows.lower[:N], device=device), torch.as_tensor(rows.upper[:N], device=device)
            assert torch.equal(torch.isfinite(batch.upper[u]), torch.isfinite(up))
            fin = torch.isfinite(up)
            assert _rel(batch.lower[u], lo) <= 1e-12
            if fin.any():
                assert _rel(batch.upper[u][fin], up[fin]) <= 1e-12


def test_a_later_boundary_flags_only_the_units_it_depends_on(device):
    """A layer-2 unit at 0 on sample 0 concerns the layer-1 units alive there; for a dead one the
    neighbouring piece is the same subproblem, so it is not flagged and nothing is lost."""
    arch = Architecture((3, 6, 5, 1))
    X, T = _data(30, 3, 1, device)
    params = [(W.clone(), b.clone()) for W, b in init_params(arch, 4, device)]
    _, pre, inputs = forward(arch, params, X)
    params[1][1][0] = -(params[1][0][0] @ inputs[1][0])
    _, pre, inputs = forward(arch, params, X)
    flagged = boundary_units(arch, 0, pre)
    alive0 = pre[0][0] >= 0
    assert torch.equal(flagged, alive0) and 0 < int(alive0.sum()) < arch.sizes[1]
    own = unit_batch(arch, params, T, 0, pre, inputs)
    flip = unit_batch(arch, params, T, 0, pre, inputs, flip_boundary=True)
    dead = ~alive0
    for a, b in [(own.gram, flip.gram), (own.lin, flip.lin), (own.lower, flip.lower), (own.upper, flip.upper)]:
        assert torch.equal(a[dead], b[dead])


def test_unit_batch_contains_its_own_point_exactly(device):
    arch = Architecture((3, 6, 5, 1))
    X, T = _data(60, 3, 1, device)
    params = _point_on_boundaries(arch, init_params(arch, 2, device), X)
    _, pre, inputs = forward(arch, params, X)
    for k in range(arch.n_layers - 1):
        batch = unit_batch(arch, params, T, k, pre, inputs)
        assert bool((batch.lower <= batch.w0.T).all()) and bool((batch.w0.T <= batch.upper).all())


def test_unit_batch_chunks_over_samples_give_the_same_data(device):
    arch = Architecture((3, 6, 5, 1))
    X, T = _data(50, 3, 1, device)
    params = init_params(arch, 3, device)
    _, pre, inputs = forward(arch, params, X)
    whole = unit_batch(arch, params, T, 0, pre, inputs)
    chunked = unit_batch(arch, params, T, 0, pre, inputs, chunk_entries=7 * 5 * 6)
    for a, b in [(whole.gram, chunked.gram), (whole.lin, chunked.lin), (whole.lower, chunked.lower)]:
        assert _rel(a, b) <= 1e-12
    assert torch.equal(torch.isfinite(whole.upper), torch.isfinite(chunked.upper))


def test_incremental_forward_equals_a_full_forward(device):
    arch = Architecture((3, 6, 5, 1))
    X, T = _data(30, 3, 1, device)
    cache = ForwardCache(arch, X, T, 1e-3)
    params = init_params(arch, 0, device)
    point = {(k, u): torch.cat([W[u], b[u:u + 1]]).cpu().numpy() for k, (W, b) in enumerate(params)
             for u in range(W.shape[0])}
    cache.get(point)
    for layer, unit in [(0, 2), (1, 4), (2, 0)]:
        moved = dict(point)
        moved[(layer, unit)] = point[(layer, unit)] + 0.3
        e = cache.get(moved)
        full = cache.params_from_point(moved)
        out, pre, _ = forward(arch, full, X)
        assert all(_rel(a, b) <= 1e-13 for a, b in zip(e.pre, pre))
        assert abs(e.f - float(objective(arch, full, X, T, 1e-3))) <= 1e-13 * abs(e.f)
        point = moved
    assert cache.incremental_hits == 3


def test_interval_qps_match_the_dispatcher_and_the_warm_working_set():
    B, n, m = 4, 5, 30
    P, q, C, lower, upper = random_interval_qps(0, B, n, m)
    cold = solve_interval_qps(P, q, C, lower, upper)
    for b in range(B):
        slots = BlockSubproblem.from_dense(P[b], q[b]).slots
        sub = BlockSubproblem(slots, [], q[b], 0.0, P_extra=P[b], A=sp.csr_matrix(C), l=lower[b], u=upper[b])
        ref = dispatch.solve(sub, dispatch.make_plan("clarabel"))
        assert cold.status[b] == "optimal"
        assert abs(sub.value(cold.x[b]) - ref.value) <= 1e-7 * max(1.0, abs(ref.value))
    z = np.einsum("mn,bn->bm", C, cold.x)
    active = (np.abs(z - upper) < 1e-9).astype(int) - (np.abs(z - lower) < 1e-9).astype(int)
    warm = solve_interval_qps(P, q, C, lower, upper, active=active)
    assert np.allclose(warm.x, cold.x, atol=1e-10) and warm.iterations.sum() < cold.iterations.sum()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_interval_qps_in_whitened_coordinates_are_daqps_answer_on_p(monkeypatch, seed):
    """From TRANSFORM_MIN_VARS variables on, DAQP gets the QP in ``u = Lᵀx`` (identity Hessian, rows ``C L⁻ᵀ``): the
    same optimum, working set and status as DAQP on ``P`` itself, from a cold start, a warm working set, a primal
    start given as a DAQP option, and with a crossed interval (no solve)."""
    B, n, m = 4, batched_qp.TRANSFORM_MIN_VARS + 8, 300
    P, q, C, lower, upper = random_interval_qps(seed, B, n, m)
    lower[1, 7], upper[1, 7] = 1.0, 0.5  # crossed: infeasible without a solve on either path
    runs = {}
    for name, smallest in (("whitened", batched_qp.TRANSFORM_MIN_VARS), ("on P", 10**9)):
        monkeypatch.setattr(batched_qp, "TRANSFORM_MIN_VARS", smallest)
        cold = solve_interval_qps(P, q, C, lower, upper)
        warm = solve_interval_qps(P, q, C, lower, upper, active=cold.active, warm=cold.x + 0.01)
        start = solve_interval_qps(P, q, C, lower, upper, options={"primal_start": np.zeros(n)})
        runs[name] = (cold, warm, start)
    for got, want in zip(runs["whitened"], runs["on P"]):
        assert got.status == want.status and got.status[1] == "infeasible"
        ok = [b for b in range(B) if b != 1]
        assert np.allclose(got.x[ok], want.x[ok], rtol=0, atol=1e-9 * (1 + np.abs(want.x[ok]).max()))
        assert np.array_equal(got.active[ok], want.active[ok])
    cold, warm, _ = runs["whitened"]
    assert warm.iterations.sum() < cold.iterations.sum()  # the working set carries over to the whitened rows


def test_interval_qps_with_a_singular_p_are_left_to_daqps_own_regularisation():
    """``P`` without a Cholesky factor (a unit with no data and no weight decay) is not whitened: DAQP regularises it
    (``eps_prox < 0``) and the bounded QP is still solved."""
    n, m = batched_qp.TRANSFORM_MIN_VARS + 2, 2 * (batched_qp.TRANSFORM_MIN_VARS + 2)
    rng = np.random.default_rng(4)
    R = rng.standard_normal((n - 3, n))
    P = (R.T @ R)[None]  # rank n - 3
    C = np.vstack([np.eye(n), -np.eye(n)])
    out = solve_interval_qps(P, rng.standard_normal((1, n)), C, np.full((1, m), -np.inf), np.ones((1, m)))
    assert out.status == ["optimal"] and np.all(np.abs(out.x) <= 1 + 1e-9)


def test_a_nearly_singular_p_is_not_whitened_and_a_failed_whitened_solve_is_redone_on_p(monkeypatch):
    """A rank-deficient ``P`` whose Cholesky factor LAPACK finishes on rounding-level pivots is refused (whitened rows
    of norm ~1/pivot made DAQP cycle or call a feasible piece empty: a review's reproducer), non-finite data too; and
    where a whitened solve fails anyway (the guard off here), the QP is solved again on ``P`` itself: the answer is
    DAQP's on ``P``, never a failure or an "infeasible" without proof."""
    rng = np.random.default_rng(1)
    n, N = 40, 200
    C = np.vstack([np.eye(n), -np.eye(n), rng.standard_normal((N, n))])
    lo, up = np.full((1, C.shape[0]), -np.inf), np.ones((1, C.shape[0]))  # x = 0 satisfies every row
    cases = []
    for _ in range(25):
        X = rng.standard_normal((int(rng.integers(n - 6, n)), n))
        cases.append((X.T @ X / N, rng.standard_normal(n)))  # rank < n, no weight decay
    assert all(whitened.Whitened.of(P, q, C) is None for P, q in cases)
    assert whitened.Whitened.of(np.diag([1.0, np.inf]), np.zeros(2), np.eye(2)) is None
    monkeypatch.setattr(whitened, "MIN_PIVOT", 0.0)  # whiten whatever LAPACK factors
    tried = [whitened.Whitened.of(P, q, C) is not None for P, q in cases]
    assert any(tried)
    for P, q in cases:
        got = solve_interval_qps(P[None], q[None], C, lo, up)
        monkeypatch.setattr(batched_qp, "TRANSFORM_MIN_VARS", 10**9)
        want = solve_interval_qps(P[None], q[None], C, lo, up)
        monkeypatch.setattr(batched_qp, "TRANSFORM_MIN_VARS", whitened.MIN_VARS)
        assert got.status == want.status == ["optimal"]
        np.testing.assert_allclose(got.x, want.x, atol=1e-9 * (1 + np.abs(want.x).max()))


def test_interval_qps_read_strided_bounds_as_their_values():
    """A batch's intervals as a transposed view (a torch batch's layout) or a list of strided rows solve as the
    same numbers in C order: DAQP reads each row through a pointer."""
    B, n, m = 3, 4, 25
    P, q, C, lower, upper = random_interval_qps(2, B, n, m)
    want = solve_interval_qps(P, q, C, lower, upper)
    lo_t, up_t = np.asfortranarray(lower), np.asfortranarray(upper)  # rows strided
    assert not lo_t[0].flags.c_contiguous
    got = solve_interval_qps(P, q, C, lo_t, up_t)
    assert got.status == want.status and np.array_equal(got.x, want.x)
    rows = solve_interval_qps(P, q, [C] * B, list(lo_t), list(up_t))
    assert rows.status == want.status and np.array_equal(rows.x, want.x)


def test_interval_qps_call_a_crossed_interval_infeasible():
    out = solve_interval_qps(np.eye(2)[None], np.zeros((1, 2)), np.ones((1, 2)), np.array([[1.0]]), np.array([[0.0]]))
    assert out.status == ["infeasible"] and np.isnan(out.x).all()


@pytest.mark.parametrize("solver, arch", [
    ("auto", Architecture((3, 5, 4, 1))),
    ("osqp", Architecture((3, 5, 4, 1))),
    ("auto", Architecture((3, 5, 4, 1), activation="leaky_relu", negative_slope=0.1)),
    ("auto", Architecture((3, 5, 4, 1), bias=False)),
])
def test_batched_gaps_equal_the_per_block_gaps(device, solver, arch):
    X, T = _data(50, 3, 1, device)
    form = NetForm(arch, X, T, 1e-3, plan=dispatch.make_plan(solver))
    assert form.unit_batches
    x = form.initial_point(0, None)
    batched = block_gaps(form, x)
    form.unit_batches = False  # the per-block path: block_data, piece_rows, the dispatcher
    single = block_gaps(form, x)
    f = form.evaluate(x)[0]
    tol = 1e-9 if solver == "auto" else 1e-5
    assert batched.keys() == single.keys()
    assert all(abs(batched[k] - single[k]) <= tol * abs(f) for k in batched)


@pytest.mark.parametrize("algorithm", ["gauss-seidel", "jacobi"])
def test_drivers_on_batched_units_never_increase_the_objective(device, algorithm):
    arch = Architecture((3, 6, 4, 1))
    X, T = _data(80, 3, 1, device)
    form = NetForm(arch, X, T, 1e-3)
    res = run(form, form.initial_point(1, None), DriverOptions(algorithm=algorithm, max_iters=8))
    f = res.objectives
    assert np.all(np.diff(f) <= 1e-12 * np.abs(f[:-1])) and f[-1] < f[0]


def test_small_network_is_certified_at_rounding_level(device):
    """A converged Gauss–Seidel run over unit blocks says "partial minimum" with gaps ≤ 1e-9 · |F|."""
    arch = Architecture((2, 3, 1))
    X, T = _data(40, 2, 1, device, seed=4)
    form = NetForm(arch, X, T, 1e-2)
    res = run(form, form.initial_point(0, None), DriverOptions(max_iters=3000, tol=1e-9))
    gaps = np.array(list(res.certificate.block_gaps.values()))
    assert res.status == "converged" and res.certificate.is_partial_minimum
    assert np.all(np.isfinite(gaps)) and np.abs(gaps).max() <= 1e-9 * abs(res.objective)


def test_certificate_of_any_weights_agrees_with_the_form(device):
    arch = Architecture((3, 4, 1))
    X, T = _data(40, 3, 1, device)
    params = init_params(arch, 5, device)
    cert = certificate(arch, params, X, T, 1e-3)
    form = NetForm(arch, X, T, 1e-3)
    ref = block_gaps(form, form.point_from_params(params))
    assert not cert.is_partial_minimum
    assert all(math.isclose(cert.block_gaps[k], ref[k], rel_tol=1e-12, abs_tol=1e-15) for k in ref)


def test_hybrid_keeps_both_phases_and_ends_no_worse_than_its_gradient_phase(device):
    arch = Architecture((3, 5, 1))
    X, T = _data(60, 3, 1, device)
    form = NetForm(arch, X, T, 1e-3)
    res, params = run_hybrid(form, init_params(arch, 0, device), GradientOptions("adam", lr=1e-2, max_iters=40),
                             DriverOptions("gauss-seidel", max_iters=3))
    grad, block = res.info["phases"]
    assert (grad["algorithm"], block["algorithm"]) == ("adam", "gauss-seidel")
    assert res.iterations == grad["iterations"] + block["iterations"] == 40 + 3
    assert len(res.history) == 1 + 40 + 3 and res.history[40].objective == pytest.approx(grad["objective"])
    assert res.objective <= grad["objective"] and res.algorithm == "adam+gauss-seidel"
    assert res.objective == pytest.approx(float(objective(arch, params, X, T, 1e-3)), rel=1e-12)
    assert np.all(np.diff([h.time for h in res.history]) >= 0)


def test_parse_hybrid_names_the_parts_and_refuses_others():
    assert parse_hybrid("sgd+jacobi") == ("sgd", "jacobi")
    with pytest.raises(InvalidInputError, match="adam\\+gauss-seidel"):
        parse_hybrid("adam+newton")
