"""The batched torch QP solver (:mod:`multiconvex.solvers.torch_qp`) against DAQP, one QP at a time:
same optima, a lower bound that never exceeds DAQP's optimum, statuses that claim "optimal" only with a
certified gap, clear errors, and the same answers on every device.

Tests that take ``device`` run on CPU always and on CUDA when a device is present (skipped otherwise).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from multiconvex.errors import InvalidInputError
from multiconvex.nets import Architecture, forward, init_params
from multiconvex.nets.batched import unit_batch, unit_qps
from multiconvex.solvers import status as st
from multiconvex.solvers.batched_qp import solve_interval_qps
from multiconvex.solvers.torch_qp import dual_bound, solve_interval_qps_torch

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                 reason="no CUDA device"))]


def random_batch(seed: int, B: int = 8, n: int = 6, N: int = 40, cond: float = 10.0, inf_frac: float = 0.3,
                 eq_frac: float = 0.0, width: float = 1.0):
    """``B`` QPs with ``P`` of condition ``cond``, random rows, intervals around a feasible point (some sides
    infinite, some rows equalities); ``width`` large makes every row inactive."""
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((B, n, n)))[0]
    ev = np.exp(rng.uniform(0, np.log(cond), (B, n)))
    ev[:, 0], ev[:, -1] = 1.0, cond
    P = np.einsum("bij,bj,bkj->bik", U, ev, U)
    P = 0.5 * (P + P.transpose(0, 2, 1))
    q = 3 * rng.standard_normal((B, n))
    C = rng.standard_normal((N, n))
    z0 = (0.3 * rng.standard_normal((B, n))) @ C.T
    lower = z0 - width * rng.exponential(1.0, (B, N))
    upper = z0 + width * rng.exponential(1.0, (B, N))
    lower[rng.random((B, N)) < inf_frac] = -np.inf
    upper[rng.random((B, N)) < inf_frac] = np.inf
    eq = rng.random((B, N)) < eq_frac
    lower[eq] = upper[eq] = z0[eq]
    return P, q, C, lower, upper


def objective(P, q, x):
    return 0.5 * np.einsum("bi,bij,bj->b", x, P, x) + np.einsum("bi,bi->b", q, x)


def daqp_optimum(P, q, C, lower, upper):
    ref = solve_interval_qps(P, q, C, lower, upper)
    assert ref.status == [st.OPTIMAL] * len(ref.status)
    return ref.x, objective(P, q, ref.x)


CASES = {
    "active rows": dict(),
    "no active row": dict(width=1e3),
    "no infinite side": dict(inf_frac=0.0),
    "mostly infinite": dict(inf_frac=0.8),
    "equality rows": dict(eq_frac=0.05),
    "ill-conditioned P": dict(cond=1e7),
    "more rows than samples of the space": dict(n=3, N=120),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_daqp_with_a_certified_gap(case, seed):
    P, q, C, lower, upper = random_batch(seed, **CASES[case])
    x_ref, f_ref = daqp_optimum(P, q, C, lower, upper)
    out = solve_interval_qps_torch(P, q, C, lower, upper)
    assert out.status == [st.OPTIMAL] * len(out.status)
    scale = np.maximum(1.0, np.abs(f_ref))
    assert np.all(np.abs(out.objective - f_ref) <= 1e-8 * scale)
    assert np.all(out.lower_bound <= f_ref + 1e-10 * scale)
    assert np.all(out.objective - out.lower_bound <= 1e-9 * np.maximum(np.abs(out.objective), np.abs(out.lower_bound)))
    z = out.x @ C.T
    assert np.all(z >= lower - 1e-9 * np.maximum(1, np.abs(lower)))
    assert np.all(z <= upper + 1e-9 * np.maximum(1, np.abs(upper)))
    np.testing.assert_allclose(out.x, x_ref, atol=1e-5 * np.sqrt(CASES[case].get("cond", 10.0)))


def test_lower_bound_never_exceeds_the_optimum_for_any_multipliers():
    """Random multipliers (either sign, on rows with an infinite side too) give bounds below DAQP's optimum;
    DAQP's active rows with the right multipliers give the optimum itself (the bound is tight, not just valid)."""
    P, q, C, lower, upper = random_batch(3, B=6, n=5, N=30)
    _, f_ref = daqp_optimum(P, q, C, lower, upper)
    T = [torch.as_tensor(a) for a in (P, q, C, lower, upper)]
    rng = np.random.default_rng(0)
    for scale in (1e-3, 1.0, 1e3):
        y = torch.as_tensor(scale * rng.standard_normal(lower.shape))
        bound = dual_bound(*T, y).numpy()
        assert np.all(bound <= f_ref + 1e-12 * np.maximum(1, np.abs(f_ref)))
    out = solve_interval_qps_torch(P, q, C, lower, upper)
    assert np.all(np.abs(out.lower_bound - f_ref) <= 1e-9 * np.maximum(1, np.abs(f_ref)))


def test_bound_of_a_wrong_sign_multiplier_on_an_open_side_is_projected_not_infinite():
    """``y > 0`` on a row without an upper bound would make the dual ``-inf``; the projection drops it."""
    P = torch.eye(1, dtype=torch.float64)[None]
    q = torch.tensor([[-2.0]], dtype=torch.float64)  # unconstrained minimiser x = 2
    C = torch.tensor([[1.0]], dtype=torch.float64)
    lower, upper = torch.tensor([[-np.inf]], dtype=torch.float64), torch.tensor([[1.0]], dtype=torch.float64)
    f_opt = 0.5 - 2.0  # x = 1
    assert float(dual_bound(P, q, C, lower, upper, torch.tensor([[1.0]], dtype=torch.float64))) == pytest.approx(f_opt)
    below = float(dual_bound(P, q, C, lower, upper, torch.tensor([[-5.0]], dtype=torch.float64)))
    assert below == pytest.approx(-2.0)  # y projected to 0: the unconstrained minimum
    assert below < f_opt


def test_a_stopped_run_claims_nothing_it_has_not_proved():
    """With too few iterations and no polish, statuses are limits or inaccurate, and bounds stay below."""
    P, q, C, lower, upper = random_batch(5, B=8, n=8, N=60, cond=1e4)
    _, f_ref = daqp_optimum(P, q, C, lower, upper)
    out = solve_interval_qps_torch(P, q, C, lower, upper, options=dict(max_iter=25, polish_rounds=0))
    assert np.all(out.lower_bound <= f_ref + 1e-10 * np.maximum(1, np.abs(f_ref)))
    for b, s in enumerate(out.status):
        gap = out.objective[b] - out.lower_bound[b]
        if s == st.OPTIMAL:
            assert gap <= 1e-9 * max(abs(out.objective[b]), abs(out.lower_bound[b]))
        else:
            assert s in (st.OPTIMAL_INACCURATE, st.ITERATION_LIMIT)
            assert np.isnan(out.x[b]).all() == (s == st.ITERATION_LIMIT)


@pytest.mark.parametrize("limit", [dict(time_limit=0.0), dict(deadline=-1.0)])
def test_time_limit_stops_before_any_work(limit):
    P, q, C, lower, upper = random_batch(6)
    if "deadline" in limit:
        limit = dict(deadline=time.time() + limit["deadline"])
    out = solve_interval_qps_torch(P, q, C, lower, upper, **limit)
    assert set(out.status) <= {st.TIME_LIMIT, st.OPTIMAL, st.OPTIMAL_INACCURATE}
    assert st.TIME_LIMIT in out.status


def test_crossed_or_empty_interval_is_infeasible_and_the_rest_solved():
    P, q, C, lower, upper = random_batch(7, B=3)
    lower[1, 4], upper[1, 4] = 1.0, 0.5
    lower[2, 0] = np.inf
    out = solve_interval_qps_torch(P, q, C, lower, upper)
    assert out.status == [st.OPTIMAL, st.INFEASIBLE, st.INFEASIBLE]
    assert np.isnan(out.x[1:]).all() and np.all(out.lower_bound[1:] == np.inf)


def test_warm_active_set_certifies_without_admm():
    """DAQP's active set as the guess: the first polish is the answer, no ADMM iteration."""
    P, q, C, lower, upper = random_batch(8, B=6, n=8, N=50)
    x_ref, f_ref = daqp_optimum(P, q, C, lower, upper)
    z = x_ref @ C.T
    active = (np.abs(z - upper) <= 1e-9).astype(np.int8) - (np.abs(z - lower) <= 1e-9).astype(np.int8)
    out = solve_interval_qps_torch(P, q, C, lower, upper, warm=x_ref, active=active)
    assert out.status == [st.OPTIMAL] * 6 and np.all(out.iterations == 0)
    assert np.all(np.abs(out.objective - f_ref) <= 1e-10 * np.maximum(1, np.abs(f_ref)))


def test_float32_is_refused_and_float32_data_solved_in_float64():
    P, q, C, lower, upper = random_batch(9, B=4)
    with pytest.raises(InvalidInputError, match="float64"):
        solve_interval_qps_torch(P, q, C, lower, upper, dtype=torch.float32)
    T32 = [torch.as_tensor(a, dtype=torch.float32) for a in (P, q, C, lower, upper)]
    P64, q64, C64, l64, u64 = (t.double().numpy() for t in T32)
    _, f_ref = daqp_optimum(P64, q64, C64, l64, u64)
    out = solve_interval_qps_torch(*T32)
    assert out.status == [st.OPTIMAL] * 4
    assert np.all(np.abs(out.objective - f_ref) <= 1e-8 * np.maximum(1, np.abs(f_ref)))


@pytest.mark.parametrize("bad, match", [
    (dict(q=np.full((2, 3), np.nan)), "`q` contains NaN"),
    (dict(C=np.full((4, 3), np.inf)), "`C` contains ±inf"),
    (dict(lower=np.zeros((2, 5))), "shapes"),
    (dict(C=[np.ones((4, 3))] * 2), "one .* matrix shared"),
])
def test_bad_input_is_named(bad, match):
    P, q, C, lower, upper = random_batch(10, B=2, n=3, N=4)
    args = {**dict(P=P, q=q, C=C, lower=lower, upper=upper), **bad}
    with pytest.raises(InvalidInputError, match=match):
        solve_interval_qps_torch(args["P"], args["q"], args["C"], args["lower"], args["upper"])


def test_unknown_option_is_named():
    P, q, C, lower, upper = random_batch(10, B=2, n=3, N=4)
    with pytest.raises(InvalidInputError, match="max_iters"):
        solve_interval_qps_torch(P, q, C, lower, upper, options={"max_iters": 3})


def _unit_batch_qps(device: str):
    arch = Architecture((3, 8, 6, 1))
    params = init_params(arch, 0, torch.device(device))
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(60, 3, dtype=torch.float64, generator=gen).to(device)
    T = torch.randn(60, 1, dtype=torch.float64, generator=gen).to(device)
    _, pre, inputs = forward(arch, params, X)
    batch = unit_batch(arch, params, T, 0, pre, inputs)  # the first layer: intervals from the later layer too
    zlo, zhi = batch.z_bounds()
    return unit_qps(batch, 60, 1e-3, 0.1), batch.inputs, zlo, zhi


@pytest.mark.parametrize("device", DEVICES)
def test_unit_blocks_of_a_relu_layer_match_daqp(device):
    qps, inputs, zlo, zhi = _unit_batch_qps(device)
    C, lo, up = (t.cpu().numpy() for t in (inputs, zlo, zhi))
    _, f_ref = daqp_optimum(qps.P, qps.q, C, lo, up)
    P, q = torch.as_tensor(qps.P, device=device), torch.as_tensor(qps.q, device=device)
    out = solve_interval_qps_torch(P, q, inputs, zlo, zhi, warm=torch.as_tensor(qps.theta0, device=device))
    assert out.status == [st.OPTIMAL] * len(out.status)
    assert np.all(np.abs(out.objective - f_ref) <= 1e-8 * np.maximum(1, np.abs(f_ref)))
    assert np.all(out.lower_bound <= f_ref + 1e-10 * np.maximum(1, np.abs(f_ref)))


@pytest.mark.parametrize("device", DEVICES)
def test_same_answers_on_every_device(device):
    P, q, C, lower, upper = random_batch(11, B=6, n=6, N=50)
    cpu = solve_interval_qps_torch(P, q, C, lower, upper)
    here = solve_interval_qps_torch(*(torch.as_tensor(a, device=device) for a in (P, q, C, lower, upper)))
    assert here.status == cpu.status
    np.testing.assert_allclose(here.x, cpu.x, atol=1e-9)
    np.testing.assert_allclose(here.lower_bound, cpu.lower_bound, rtol=1e-9)
