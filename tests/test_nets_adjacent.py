"""A unit block's gap over every piece adjacent to the point (issue 14): the bound of
:mod:`multiconvex.nets.adjacent` is checked against every one of the ``2^k`` pieces solved exactly (DAQP through the
dispatcher) and against its quadratic model's minimum (the dual, by Clarabel); ``F`` falls along a positive bound's
direction at slope ``−2·bound``; the review's point where ``F`` still fell along one block is no longer certified and
the driver steps away from it; a converged fit stays certified; the driver's certifying pass and ``certificate()``
agree.
"""

from __future__ import annotations

import itertools
import math
import time
import warnings
from fractions import Fraction

import cvxpy as cp
import numpy as np
import pytest
import torch
from conftest import adjacent_sign_patterns, piece_linearization, unit_theta, with_unit_row
from scipy.optimize import lsq_linear

from multiconvex.drivers import DriverOptions, run
from multiconvex.nets import Architecture, forward, init_params
from multiconvex.nets.adjacent import UnitKinks, adjacent_bounds
from multiconvex.nets.adjacent_lsq import box_solution
from multiconvex.nets.certificates import block_gaps, certificate
from multiconvex.nets.form import NetForm
from multiconvex.nets.network import BOUNDARY_TOL, objective
from multiconvex.solvers import dispatch
from multiconvex.subproblem import BlockSubproblem

DAQP = dispatch.make_plan("daqp")




def _piece_qp(arch, params, X, T, lam, k, u, signs):
    """Block ``(k, u)``'s subproblem on the piece ``signs`` (±1 per hidden entry) at the point: the QP in the step
    ``δ`` (DAQP-ready) and the constant that makes its value ``F`` on the piece. ``None`` when the piece is empty
    around the point (a constraint that the block cannot move is violated)."""
    t0, f0, z0, Jf, Jz, s = piece_linearization(arch, params, X, k, u, signs)
    th0 = torch.as_tensor(t0)
    N = X.shape[0]
    r = f0 - T.reshape(-1).numpy()
    P = Jf.T @ Jf / N + lam * np.eye(t0.size)
    q = Jf.T @ r / N + lam * t0
    moves = np.abs(Jz).sum(axis=1) > 0
    if np.any(s[~moves] * z0[~moves] < -1e-12):
        return None
    params_on_piece = with_unit_row(params, k, u, th0)
    F_piece = 0.5 / N * float(r @ r) + 0.5 * lam * sum(
        float((W ** 2).sum()) + (float((b ** 2).sum()) if b is not None else 0.0) for W, b in params_on_piece)
    A = s[moves, None] * Jz[moves]
    lo = -s[moves] * z0[moves]
    sub = BlockSubproblem.from_dense(P, q, A=A, l=lo, u=np.full(lo.size, np.inf))
    return sub, F_piece


def brute_force_gap(arch, params, X, T, lam, k, u, max_entries=7):
    """``F − min`` over every piece of block ``(k, u)`` containing the point: every sign of every boundary entry
    that the block may move (unit ``u``'s own, every later hidden unit's), each piece solved exactly (DAQP).
    ``None`` when there are more than ``max_entries`` boundary entries."""
    F = float(objective(arch, params, X, T, lam))
    _, pre, _ = forward(arch, params, X)
    patterns = adjacent_sign_patterns(arch, pre, k, u, max_entries)
    if patterns is None:
        return None
    best = math.inf
    for signs in patterns:
        built = _piece_qp(arch, params, X, T, lam, k, u, signs)
        if built is None:
            continue
        sub, F_piece = built
        sol = dispatch.solve(sub, DAQP)
        if sol.status == "infeasible":
            continue
        assert sol.status == "optimal", sol.status
        best = min(best, F_piece + float(sub.value(sol.x)))
    return F - best


def _on_kinks(arch, params, X, k, u, samples):
    """Unit ``(k, u)``'s row turned so that ``samples`` (at most ``c − 1``) sit exactly on its kink, its norm kept."""
    _, _, inputs = forward(arch, params, X)
    a = inputs[k]
    at = torch.cat([a, torch.ones(a.shape[0], 1, dtype=a.dtype)], dim=1) if arch.bias else a
    M = at[samples].numpy()
    _, _, Vt = np.linalg.svd(M)
    null = Vt[len(samples):]
    th0 = unit_theta(params, k, u).numpy()
    th = null.T @ (null @ th0)  # the row's projection on the samples' null space
    th *= np.linalg.norm(th0) / max(np.linalg.norm(th), 1e-300)
    return with_unit_row(params, k, u, torch.as_tensor(th))


def _block_optimum(arch, params, X, T, lam, k, u):
    """The point with block ``(k, u)`` at its exact own-piece optimum (a DAQP vertex: samples on kinks)."""
    _, pre, _ = forward(arch, params, X)
    signs = [torch.where(z >= 0, 1.0, -1.0).to(z.dtype) for z in pre[:-1]]
    sub, _ = _piece_qp(arch, params, X, T, lam, k, u, signs)
    sol = dispatch.solve(sub, DAQP)
    assert sol.status == "optimal"
    return with_unit_row(params, k, u, unit_theta(params, k, u) + torch.as_tensor(sol.x))


def _case(seed: int):
    rng = np.random.default_rng(seed)
    sizes = [(2, 3, 1), (2, 3, 2, 1), (2, 4, 3, 1)][seed % 3]
    slope = 0.1 if seed % 4 == 3 else 0.0
    bias = seed % 5 != 4
    arch = Architecture(sizes, negative_slope=slope, activation="leaky_relu" if slope else "relu", bias=bias)
    N = int(rng.integers(10, 17))
    X = torch.as_tensor(rng.standard_normal((N, sizes[0])))
    T = torch.as_tensor(rng.standard_normal((N, 1)))
    lam = [1e-2, 1e-3, 1e-1][seed % 3]
    params = init_params(arch, seed, X.device)
    return arch, params, X, T, lam, rng


def _slope_along(arch, params, X, T, lam, k, u, d, step=1e-7):
    """``(F(θ + step·d) − F(θ)) / step`` along block ``(k, u)``."""
    F = float(objective(arch, params, X, T, lam))
    moved = with_unit_row(params, k, u, unit_theta(params, k, u) + step * torch.as_tensor(d))
    return (float(objective(arch, moved, X, T, lam)) - F) / step


def _check(arch, params, X, T, lam, k, u):
    """The bound of block ``(k, u)`` against the brute force (``None``: the two solved pieces are all); a positive
    first-order bound from the enumerated sides comes with a direction along which ``F`` falls at slope
    ``−2·first_order`` (the walls of the adjacent pieces may lower ``bound`` itself below it)."""
    _, pre, inputs = forward(arch, params, X)
    b = adjacent_bounds(arch, params, T, k, pre, inputs, lam)[u]
    if b.first_order is not None and b.exact and b.first_order > 1e-9:
        assert b.direction is not None and b.bound <= b.first_order
        d = b.direction / np.linalg.norm(b.direction)
        scale = float(np.linalg.norm(b.direction))
        assert _slope_along(arch, params, X, T, lam, k, u, d) == pytest.approx(-2 * b.first_order / scale, rel=1e-3)
    true = brute_force_gap(arch, params, X, T, lam, k, u, max_entries=9)
    if true is None:
        return None
    if b.bound is None:
        form = NetForm(arch, X, T, lam)
        gaps = block_gaps(form, form.point_from_params(params))  # the two solved pieces
        assert true <= gaps[form.blocks[sum(arch.sizes[1:k + 1]) + u].name] + 1e-12
        return "none"
    assert math.isfinite(b.bound)
    assert true <= b.bound * (1 + 1e-9) + 1e-12, (true, b.bound, b)
    return "bound"


SEEDS = [s if s < 4 else pytest.param(s, marks=pytest.mark.slow) for s in range(12)]


@pytest.mark.parametrize("seed", SEEDS)
def test_the_bound_is_above_the_gap_of_every_adjacent_piece_at_block_optima(seed):
    """At a DAQP vertex of one block (samples on its kinks, later units on theirs): every piece solved."""
    arch, params, X, T, lam, rng = _case(seed)
    seen = []
    for k in range(arch.n_layers - 1):
        for u in range(arch.sizes[k + 1]):
            at = _block_optimum(arch, params, X, T, lam, k, u)
            seen.append(_check(arch, at, X, T, lam, k, u))
            if k + 1 < arch.n_layers - 1:  # a later layer's units are moved by this block too
                seen.append(_check(arch, at, X, T, lam, k + 1, 0))
    assert any(s is not None for s in seen)


@pytest.mark.parametrize("seed", SEEDS)
def test_the_bound_is_above_the_gap_of_every_adjacent_piece_with_samples_put_on_kinks(seed):
    """Rows turned so that chosen samples sit exactly on a kink (one or two per unit, several units)."""
    arch, params, X, T, lam, rng = _case(seed)
    c = arch.sizes[0] + int(arch.bias)
    counts = {"bound": 0, "none": 0}
    for k in range(arch.n_layers - 1):
        for u in range(arch.sizes[k + 1]):
            n_on = int(rng.integers(1, c))
            samples = list(rng.choice(X.shape[0], n_on, replace=False)) if k == 0 else [int(rng.integers(X.shape[0]))]
            if k > 0:  # a later layer: its bias puts one sample on the kink
                params = [(W.clone(), None if b is None else b.clone()) for W, b in params]
                _, pre, _ = forward(arch, params, X)
                if params[k][1] is None:
                    continue
                params[k][1][u] -= pre[k][samples[0], u]
            else:
                params = _on_kinks(arch, params, X, k, u, samples)
    for k in range(arch.n_layers - 1):
        for u in range(arch.sizes[k + 1]):
            kind = _check(arch, params, X, T, lam, k, u)
            if kind is not None:
                counts[kind] += 1
    assert counts["bound"] + counts["none"] > 0


def test_two_own_kinks_at_a_block_optimum_and_a_single_kink_keeps_the_two_solved_pieces():
    """One sample on the kink: the own and the neighbouring piece are its two sides, no bound (``None``); two: a
    bound."""
    arch = Architecture((2, 3, 1))
    X = torch.as_tensor(np.random.default_rng(5).standard_normal((12, 2)))
    T = torch.as_tensor(np.random.default_rng(6).standard_normal((12, 1)))
    params = _on_kinks(arch, init_params(arch, 5, X.device), X, 0, 1, [3])
    _, pre, inputs = forward(arch, params, X)
    assert adjacent_bounds(arch, params, T, 0, pre, inputs, 1e-2)[1].bound is None
    params = _on_kinks(arch, params, X, 0, 1, [3, 7])
    _, pre, inputs = forward(arch, params, X)
    b = adjacent_bounds(arch, params, T, 0, pre, inputs, 1e-2)[1]
    assert b.bound is not None and b.n_kinks == 2


def _dual_minimum(kinks, sides):
    """``min_d gᵀd + ½dᵀPd + Σ ψ_i(a_iᵀd)`` over the cone of the concave ``sides``: the lower model's minimum, the
    dual of the bounded least squares, by cvxpy and Clarabel."""
    d = cp.Variable(kinks.P.shape[0])
    t = kinks.a @ d
    concave = np.nonzero(kinks.cminus > kinks.cplus)[0]
    side = dict(zip(concave.tolist(), sides))
    terms, cons = [], []
    for i in range(kinks.a.shape[0]):
        if i in side:
            terms.append((kinks.cplus[i] if side[i] > 0 else kinks.cminus[i]) * t[i])
            cons.append(side[i] * t[i] >= 0)
        else:
            terms.append(cp.maximum(kinks.cplus[i] * t[i], kinks.cminus[i] * t[i]))
    prob = cp.Problem(cp.Minimize(kinks.g @ d + 0.5 * cp.quad_form(d, cp.psd_wrap(kinks.P)) + cp.sum(cp.hstack(terms))),
                      cons)
    prob.solve(solver="CLARABEL")
    return prob.value


@pytest.mark.parametrize("seed", [0, 1] + [pytest.param(s, marks=pytest.mark.slow) for s in range(2, 6)])
def test_the_enumerated_bound_is_the_lower_models_minimum_with_more_kinks_than_weights(seed):
    """With more kink samples than weights (BVLS alone can stop far off there) the bound is ``−min`` of the lower
    model over the worst concave side, to the dual's accuracy."""
    rng = np.random.default_rng(seed)
    c, K = 3, 9
    B = rng.standard_normal((c, c))
    cplus, cminus = rng.standard_normal(K) * 0.1, rng.standard_normal(K) * 0.1
    kinks = UnitKinks(B @ B.T + 0.1 * np.eye(c), rng.standard_normal(c) * 0.01, rng.standard_normal((K, c)),
                      cplus, cminus, K)
    b = kinks.bound(max_concave=K)
    n_conc = int((cminus > cplus).sum())
    worst = max(-_dual_minimum(kinks, sides) for sides in itertools.product((1, -1), repeat=n_conc))
    assert b.exact and b.bound is not None
    assert b.bound == pytest.approx(max(worst, 0.0), rel=1e-6, abs=1e-9)


def _review_point():
    """The review's end point (``[2, 5, 4, 1]``, λ = 1e-2, a fit with layer steps): the second hidden layer's rows
    nearly zero put every sample on a kink of three of its units, and block (layer 1, unit 2) read a gap of 6.8e-11
    on its two solved pieces while ``F`` fell along it at a slope of −1.9e-6."""
    X = np.array([[-1.103338449065532, -0.7250246402444398], [-0.7818052573180567, 0.2669758563943925],
                  [-0.24858072943889084, 0.12648305151184983], [0.8430425708043379, 0.8579365494757685],
                  [0.47518364194858514, -0.4507685980824168], [0.0, 0.0], [0.0, 0.0],
                  [-0.972273677374357, -1.1344875329570228], [0.30570521940427436, -1.8516850300587613],
                  [-0.1770535081731753, 0.42582566727720134], [-0.9853556064014685, -1.1129541306361368],
                  [-0.7606260324368407, 0.6480245888364551], [-0.12983135641150817, -1.8695972328417114],
                  [-0.42334910981158214, 1.013896799797998], [0.983715344494681, 0.6300419507298725],
                  [-0.23805880511791805, -1.8449398759528108], [0.16957772908778576, -0.17597776424923472],
                  [0.07679986448808807, 1.5423041109956315], [0.18368353864928177, 0.2763338112116042],
                  [0.60509748714115, -0.25656890687358347], [-0.6643563363880756, -0.7373730463555963],
                  [-1.103338449065532, -0.7250246402444398], [-0.7818052573180567, 0.2669758563943925],
                  [-0.24858072943889084, 0.12648305151184983]])
    y = np.array([0.6058789654488664, -0.13948567840174828, -1.3288018246050828, 0.5154848458324957,
                  -0.3448165176946628, -0.3923426027377626, 0.5898959165637815, -2.192496725059042,
                  -1.2773002232819268, -0.424520173132984, 0.2491635754284672, -0.6651072836012581,
                  -0.9967172399235361, -1.05242308652736, -0.11729315387593296, 0.6750199304550224,
                  -1.4500021129549956, -2.0803790092492207, -0.29737617711179, -0.38201813147946434,
                  -0.908980457498656, 0.6117427657792405, 0.8046315867376995, -0.5641675681698397])
    rows = [
        ([[-0.00032974671047514634, 0.0006980855220682888], [-3.167379753469039e-07, -5.743802758470058e-07],
          [-0.005155480575343272, -0.013383025520710351], [0.0, 0.0], [0.0, 0.0]],
         [0.0004713652749285003, 1.5036334766620512e-07, 0.0004111727842935418, 0.0, 0.0]),
        ([[0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0],
          [1.1170016188319874e-49, -2.944033851772772e-54, -4.0529971111632436e-49, 0.0, 0.0],
          [-1.436266552394895e-42, 9.006638394873145e-39, -4.614931207959002e-43, 0.0, 0.0]],
         [0.0, 0.0, 0.0, -4.872984619440091e-46]),
        ([[0.0, 0.0, -1.4935341140085987e-51, 7.9338870522749e-49]],
         [-0.4357430024364559]),
    ]
    params = [(torch.tensor(W, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)) for W, b in rows]
    return Architecture((2, 5, 4, 1)), params, torch.as_tensor(X), torch.as_tensor(y[:, None])


def test_the_reviews_point_is_not_certified_and_its_worst_direction_descends():
    """Block (layer 1, unit 2) is no longer certified, and ``F`` falls along its bound's worst direction at the
    slope the first-order bound predicts (``−2·first_order``)."""
    arch, params, X, T = _review_point()
    cert = certificate(arch, params, X, T, 1e-2)
    F = float(objective(arch, params, X, T, 1e-2))
    assert cert.block_gaps["layer1[2:3]"] > 1e-6 * F
    assert not cert.is_partial_minimum
    _, pre, inputs = forward(arch, params, X)
    b = adjacent_bounds(arch, params, T, 0, pre, inputs, 1e-2)[2]
    assert b.bound is not None and b.direction is not None  # 10 concave kinks, their slopes ~1e-49: the midpoint bound
    scale = float(np.linalg.norm(b.direction))
    slope = _slope_along(arch, params, X, T, 1e-2, 0, 2, b.direction / scale)
    assert slope == pytest.approx(-2 * b.first_order / scale, rel=1e-3)


def test_the_driver_moves_on_along_an_adjacent_piece():
    """One Jacobi pass from the review's point: the exact solves lower ``F`` by 3.5e-9 at most; the step along
    block (layer 1, unit 2)'s worst direction lowers it by far more and is the one accepted."""
    arch, params, X, T = _review_point()
    form = NetForm(arch, X, T, 1e-2)
    x0 = form.point_from_params(params)
    F = form.evaluate(x0)[0]
    res = run(form, x0, DriverOptions(algorithm="jacobi", max_iters=1))
    assert res.history[1].accepted_block == "layer1[2:3]"
    assert F - res.objective > 1e-7


def test_a_dead_unit_at_zero_with_no_outgoing_weight_is_a_minimum_along_its_block():
    """A unit whose row is zero (every sample on its kink) and whose outgoing weight is zero: every kink has the slope
    0 on both sides and ``F`` is smooth along the block with gradient ``λθ = 0``, so the bound is exactly 0."""
    arch = Architecture((2, 3, 1))
    X = torch.as_tensor(np.random.default_rng(1).standard_normal((15, 2)))
    T = torch.as_tensor(np.random.default_rng(2).standard_normal((15, 1)))
    params = [(W.clone(), b.clone()) for W, b in init_params(arch, 1, X.device)]
    params[0][0][0], params[0][1][0] = 0.0, 0.0
    params[1][0][0, 0] = 0.0
    _, pre, inputs = forward(arch, params, X)
    b = adjacent_bounds(arch, params, T, 0, pre, inputs, 1e-2)[0]
    assert b.bound == 0.0 and b.n_kinks == 0


def _fit_data(n: int, seed: int):
    rng = np.random.default_rng(seed)
    X = torch.as_tensor(rng.standard_normal((n, 3)))
    return X, torch.as_tensor(np.sin(X.numpy() @ np.array([1.0, -2.0, 0.5]))[:, None])


def test_the_drivers_certifying_pass_and_certificate_agree_where_bounds_apply():
    """After one Gauss–Seidel sweep (DAQP vertices: samples on kinks) the driver's certificate and
    ``certificate()`` at the returned point decide every block alike and give the same gaps where they are within
    the tolerance (where the bound decides), and some gap is an adjacent bound. Above the tolerance each reports its
    solved pieces' gap, and which two pieces those are depends on the rounding of a sample exactly on a kink (the
    driver's incremental forward pass gives −1e-17 where a full pass gives 0: a different own piece)."""
    arch = Architecture((3, 8, 4, 1))
    X, T = _fit_data(30, 3)
    form = NetForm(arch, X, T, 1e-2)
    res = run(form, form.initial_point(0, None), DriverOptions(algorithm="gauss-seidel", tol=1e-9, max_iters=1))
    point = form.final_point
    cert = certificate(arch, form.params_from_point(point), X, T, 1e-2, tol=1e-9)
    assert res.certificate is not None
    assert res.certificate.block_gaps.keys() == cert.block_gaps.keys()
    tol = cert.tolerance
    assert res.certificate.tolerance == pytest.approx(tol, rel=1e-12)
    for name, g in res.certificate.block_gaps.items():
        assert (g <= tol) == (cert.block_gaps[name] <= tol), name
        if g <= tol:
            assert g == pytest.approx(cert.block_gaps[name], rel=1e-9, abs=1e-15)
    per_block = NetForm(arch, X, T, 1e-2)
    per_block.unit_batches = False  # the per-block path (block_data and the dispatcher per unit): the same bounds
    for name, g in block_gaps(per_block, point, tol=1e-9).items():  # (a full forward pass, as certificate()'s)
        assert (g <= tol) == (cert.block_gaps[name] <= tol), name
        if g <= tol:  # above it, which pieces were solved depends on the rounding at the kinks, as above (the
            # per-block path's products round differently on some BLAS: OpenBLAS on AMD EPYC)
            assert g == pytest.approx(cert.block_gaps[name], rel=1e-6, abs=1e-12)
    solved = block_gaps(TwoPieceForm(arch, X, T, 1e-2), point, tol=1e-9)  # the own and neighbouring pieces only
    assert any(cert.block_gaps[name] > solved[name] for name in solved)
    assert all(cert.block_gaps[name] >= solved[name] for name in solved)


class TwoPieceForm(NetForm):
    """The form without the adjacent bound: the certificate's two solved pieces only (the claim before it)."""

    def adjacent_gap_bound(self, index, point, tol=None):
        return None


@pytest.mark.slow
def test_a_converged_small_fit_keeps_its_certificate():
    """``[3, 8, 1]`` run by Gauss–Seidel to tol 1e-9 (15–90 s): its certificate, adjacent bounds included, still
    says partial minimum, and ``certificate()`` at the returned point agrees. The sweeps it takes depend on the
    rounding at the kinks its path crosses: under 3,000 on one machine, 4,511 on another (AMD EPYC, OpenBLAS)."""
    arch = Architecture((3, 8, 1))
    X, T = _fit_data(60, 1)
    form = NetForm(arch, X, T, 1e-3)
    res = run(form, form.initial_point(0, None), DriverOptions(algorithm="gauss-seidel", tol=1e-9, max_iters=8000))
    assert res.status == "converged" and res.certificate is not None and res.certificate.is_partial_minimum
    cert = certificate(arch, form.params_from_point(form.final_point), X, T, 1e-3, tol=1e-9)
    assert cert.is_partial_minimum


def _dead_unit_case(sign: float):
    """``[2, 3, 1]``, weight decay 0, unit 0's row zero (every sample on its kink, ``P`` singular: the unit's
    curvature is 0 on its dead side and nothing else curves the block) with outgoing weight 1, and every residual
    ``f − y`` of sign ``sign`` in size (1, 2)."""
    rng = np.random.default_rng(0)
    arch = Architecture((2, 3, 1))
    X = torch.as_tensor(rng.standard_normal((8, 2)))
    params = [(W.clone(), b.clone()) for W, b in init_params(arch, 0, X.device)]
    params[0][0][0], params[0][1][0] = 0.0, 0.0
    params[1][0][0, 0] = 1.0
    out, _, _ = forward(arch, params, X)
    T = out - sign * (1.0 + torch.as_tensor(rng.random((8, 1))))
    return arch, params, X, T


def test_weight_decay_zero_and_a_dead_unit_whose_activation_only_raises_the_loss_keeps_its_certificate():
    """``P`` singular (``λ = 0``): the bound on its range with ``Nᵀr = 0`` solved over the box is 0 (every residual
    positive, the unit can only raise the loss), as the brute force over the ``2^8`` pieces; the block stays
    certified (the Cholesky route gave ``nan``)."""
    arch, params, X, T = _dead_unit_case(1.0)
    _, pre, inputs = forward(arch, params, X)
    b = adjacent_bounds(arch, params, T, 0, pre, inputs, 0.0)[0]
    assert b.bound is not None and 0.0 <= b.bound <= 1e-15 and b.n_kinks == 8
    assert brute_force_gap(arch, params, X, T, 0.0, 0, 0, max_entries=8) <= 1e-12
    form = NetForm(arch, X, T, 0.0)
    assert block_gaps(form, form.point_from_params(params))["layer1[0:1]"] <= 1e-15


def test_weight_decay_zero_and_a_dead_unit_whose_activation_lowers_the_loss_is_not_certified():
    """Every residual negative: switching the unit on lowers ``F`` on the pieces where its samples are alive, and
    the lower model (its curvature the dead side's 0) is unbounded below there: the bound is ``inf`` (not ``nan``),
    above the brute-force gap, and the form's bound is ``F`` (no block lowers ``F ≥ 0`` by more); its direction
    descends. The certificate's gap is the solved pieces' (above the tolerance already: no bound asked for), at most
    the brute-force gap over every adjacent piece."""
    arch, params, X, T = _dead_unit_case(-1.0)
    _, pre, inputs = forward(arch, params, X)
    b = adjacent_bounds(arch, params, T, 0, pre, inputs, 0.0)[0]
    assert b.bound == math.inf and b.direction is not None
    F = float(objective(arch, params, X, T, 0.0))
    true = brute_force_gap(arch, params, X, T, 0.0, 0, 0, max_entries=8)
    assert 0.1 * F < true <= F
    form = NetForm(arch, X, T, 0.0)
    x = form.point_from_params(params)
    assert form.adjacent_gap_bound(0, x) == pytest.approx(F, rel=1e-12)
    assert 0.1 * F < block_gaps(form, x)["layer1[0:1]"] <= true * (1 + 1e-9)
    assert _slope_along(arch, params, X, T, 0.0, 0, 0, b.direction / np.linalg.norm(b.direction)) < 0
    form.set_deadline(time.time() - 1.0)  # the run's time is up: no halving's forward pass starts
    assert form.adjacent_step(0, x, math.inf) is None
    form.set_deadline(None)
    step = form.adjacent_step(0, x, math.inf)
    assert step is not None and form.evaluate({**x, **step})[0] < F


def _off_kink_point():
    """``[2, 3, 2]``, weight decay 1e-8, units 0, 1, 2 of layer 1 moved to their own-piece DAQP optima in turn: unit 2's
    samples sit within the boundary tolerance of its kink, but at ``|z|`` up to 1.4e-9, not 0 (the review's case)."""
    rng = np.random.default_rng(160)
    arch = Architecture((2, 3, 2))
    N = int(rng.integers(8, 14))
    X = torch.as_tensor(rng.standard_normal((N, 2)))
    T = torch.as_tensor(rng.standard_normal((N, 2)))
    params = init_params(arch, 160, X.device)
    for u in range(3):
        params = _block_optimum(arch, params, X, T, 1e-8, 0, u)
    return arch, params, X, T


def test_entries_off_their_kink_within_the_tolerance_are_paid_for_in_the_bound():
    """A piece that flips entries at ``0 < |z| ≤ tol`` is ``F − 1.32e-10`` low while the exact-kink model's bound
    was 1.6e-27: the bound alone (its slack ``Σ E_i`` and narrowed slopes) is now above every piece's gap."""
    arch, params, X, T = _off_kink_point()
    _, pre, inputs = forward(arch, params, X)
    assert 0 < float(pre[0][:, 2].abs().max()) <= BOUNDARY_TOL * float(pre[0].abs().max())
    b = adjacent_bounds(arch, params, T, 0, pre, inputs, 1e-8)[2]
    true = brute_force_gap(arch, params, X, T, 1e-8, 0, 2, max_entries=9)
    assert true > 1e-10
    assert b.bound is not None and true <= b.bound


def test_a_rank_deficient_kink_set_gives_no_linalg_warning():
    """Six kinks whose inputs lie (up to 1e-14) on one line: ``MMᵀ`` is numerically singular; the least squares go
    through ``lstsq`` without a ``LinAlgWarning`` and the bound is the same."""
    rng = np.random.default_rng(0)
    line = rng.standard_normal(3)
    a = np.outer(rng.standard_normal(6), line) + 1e-14 * rng.standard_normal((6, 3))
    g = rng.standard_normal(3)
    cplus = rng.random(6)
    kinks = UnitKinks(np.eye(3), g, a, cplus, cplus - rng.random(6), 6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b = kinks.bound()
    assert b.bound is not None and b.bound > 0


def test_a_pass_builds_each_layers_lower_models_once():
    """The driver's steps along adjacent pieces evaluate halvings that cycle the size-3 forward cache; the lower
    models of the pass's point are kept apart, so asking again after the steps finds the same objects."""
    arch, params, X, T = _review_point()
    form = NetForm(arch, X, T, 1e-2)
    x = form.point_from_params(params)
    names = [b.name for b in form.blocks]
    index = names.index("layer1[2:3]")
    assert form.adjacent_gap_bound(index, x, math.inf) > 0
    kinks = form._adjacent_state(x)[2][0][0]
    for _ in range(3):
        assert form.adjacent_step(index, x, math.inf) is not None
    assert form._adjacent_state(x)[2][0][0] is kinks


class NanBoundForm(NetForm):
    """A form whose adjacent bound cannot be computed (``nan``) for every unit block."""

    def adjacent_gap_bound(self, index, point, tol=None):
        return math.nan


def test_the_driver_names_a_nan_adjacent_bound_when_it_stalls():
    """A run that stalls because a block's adjacent bound is ``nan`` says so, not that a neighbouring-piece solve
    failed."""
    arch = Architecture((2, 2, 1))
    X, T = _fit_data(12, 4)
    X = X[:, :2]
    form = NetForm(arch, X, T, 1e-2)
    res = run(form, form.initial_point(0, None), DriverOptions(algorithm="gauss-seidel", tol=1e-9, max_iters=500))
    nan_form = NanBoundForm(arch, X, T, 1e-2)
    stalled = run(nan_form, form.final_point, DriverOptions(algorithm="jacobi", tol=1e-9, max_iters=5))
    assert res.status == "converged"
    assert stalled.status == "stalled", stalled.message
    assert "bound over every piece adjacent to the point could not be computed" in stalled.message
    assert "neighbouring piece" not in stalled.message


def test_the_box_least_squares_end_on_identical_columns():
    """Two identical kink samples give identical columns; BVLS stops on a stalled cost there (status 2) although at
    its optimum. The second solver must end too (scipy's trust-region method looped for ever on exactly this 4 × 2
    problem, bit for bit from a review's case) and give the optimum's residual."""
    h = float.fromhex
    A = np.array([[0.0, 0.0], [h("0x1.f181de6e4c76dp+4")] * 2, [h("-0x1.a7ad4a31f0819p+6")] * 2,
                  [h("0x1.3c3a4edfa9758p+8")] * 2])
    b = np.array([h("-0x1.6028b9ba10205p+3"), h("-0x1.74cf8d599c6e6p+3"), h("-0x1.9c4e17ca49c2ep+1"),
                  h("-0x1.72f5507495a63p+4")])
    lo, hi = np.array([-np.inf, h("-0x1.949b548db76b3p-7")]), np.array([h("-0x1.949b548db76b3p-6"), np.inf])
    _, r = box_solution(A, b, lo, hi)
    merged = lsq_linear(A[:, :1], b, bounds=([lo.sum()], [hi.sum()]), method="bvls", tol=1e-13)  # the same problem
    assert 0.5 * float(r @ r) == pytest.approx(merged.cost, rel=1e-9)


def test_a_weight_decay_lost_in_the_models_rounding_gives_no_bound_not_a_false_one():
    # (found by an audit) one hidden unit, squared loss, λ = 1e-3 against data curvature 2.5e13 along (1, 1): λ was
    # lost in P's diagonal, P came out singular, its null-space residual (1e-3) was taken for 0, and the block's gap
    # was reported 1.2e-21 while F falls by 5.6e-4 (exact arithmetic) on an adjacent piece. Now not proven.
    arch = Architecture((2, 1, 1), "squared", bias=False)
    big = 4.5e6
    X = torch.tensor([[big, big], [2 * big, 2 * big], [-0.5e8, -1e8], [0.5e-3, 1e-3]], dtype=torch.float64)
    T = torch.tensor([[0.5 * big], [big], [-1.0], [0.0]], dtype=torch.float64)
    params = [(torch.tensor([[1.0, -0.5]], dtype=torch.float64), None), (torch.tensor([[1.0]], dtype=torch.float64),
                                                                         None)]
    _, pre, inputs = forward(arch, params, X)
    assert pre[0][2:].abs().max() == 0  # two samples exactly on the unit's kink
    assert adjacent_bounds(arch, params, T, 0, pre, inputs, 1e-3)[0].bound == math.inf
    form = NetForm(arch, X, T, 1e-3)
    w = np.array([1.0, -0.5]) + 0.75 * np.array([-1.0, 1.0])  # a step onto a mixed adjacent piece
    f0, f1 = (float(objective(arch, [(torch.tensor(np.array([v])), None), params[1]], X, T, 1e-3))
              for v in ([1.0, -0.5], w))
    assert f0 - f1 > 5e-4  # the block can fall that much (5.6e-4 exactly)
    assert block_gaps(form, form.point_from_params(params))["layer1"] >= f0 - f1


def _exact_box_bound(lam: float, g: np.ndarray, a: np.ndarray, lo: float, hi: float) -> Fraction:
    """``min over α ∈ [lo, hi]`` of ``½‖g + αa‖²/λ`` in rationals (one kink, ``P = λI``)."""
    gq, aq = [Fraction(float(v)) for v in g], [Fraction(float(v)) for v in a]
    alpha = -sum(x * y for x, y in zip(gq, aq)) / sum(y * y for y in aq)
    alpha = min(max(alpha, Fraction(lo)), Fraction(hi))
    return sum((x + alpha * y) ** 2 for x, y in zip(gq, aq)) / (2 * Fraction(lam))


def test_the_models_bound_is_evaluated_with_its_rounding():
    """(an audit's instance) ``P = λI``, ``λ = 1.86e-8``, ``g`` two entries an ulp apart near 4e7 and one kink along
    (1, 1): the computed residual at the least-squares ``α`` is 0 and the bound was 0 in about half of the instances,
    against an exact 7.5e-10. The bound is evaluated at the ``α`` found with the rounding of ``r = g + Aᵀα`` and of
    the solve: above the exact optimum in every instance, and not far above it."""
    rng = np.random.default_rng(0)
    lam = 1.86e-8
    for _ in range(200):
        G = float(rng.uniform(1e7, 8e7))
        g = np.array([G, np.nextafter(G, np.inf)])
        a = np.array([1.0, 1.0]) * float(rng.choice([1.0, 3.0, 0.7]))
        lo, hi = -float(rng.uniform(1e8, 1e9)), float(rng.uniform(0, 1e3))
        kinks = UnitKinks(lam * np.eye(2), g, a[None, :], np.array([hi]), np.array([lo]), 1)
        got = kinks.bound().bound
        exact = _exact_box_bound(lam, g, a, lo, hi)
        assert exact <= Fraction(got) <= 1e3 * exact + 1e-6


def test_a_singular_model_whose_linear_part_leaves_its_range_by_rounding_is_not_proven():
    """``P = diag(1, 0)`` (weight decay 0) and ``g = (1, 1e-12)``: the model falls without bound along the second
    axis. A null-space residual below ``1e-9`` of the scale was taken for 0 and the bound was ½; it is ``inf`` now,
    and 0 only where ``g`` is exactly 0."""
    no_kinks = np.zeros((0, 2)), np.zeros(0), np.zeros(0), 0
    assert UnitKinks(np.diag([1.0, 0.0]), np.array([1.0, 1e-12]), *no_kinks).bound().bound == math.inf
    assert UnitKinks(np.diag([1.0, 0.0]), np.zeros(2), *no_kinks).bound().bound == 0.0
    radius = np.array([0.0, 1e-300])  # g exactly 0 as computed, but not proven so
    assert UnitKinks(np.diag([1.0, 0.0]), np.zeros(2), *no_kinks, g_radius=radius).bound().bound == math.inf


def test_a_bound_in_the_underflow_range_is_not_rounded_to_zero():
    """(a review's cases) ``½ rᵀP⁻¹r`` below the smallest subnormal came out 0 (``g = 1e-170``, also through a kink's
    box), which reads as "no descent along the block"; it is a tiny positive bound now. A kink with an infinite box
    end, or a residual that overflows, gives ``nan``/``inf``, not a ``ValueError``."""
    exact = Fraction(1e-170) ** 2 / 2
    got = UnitKinks(np.eye(1), np.array([1e-170]), np.zeros((0, 1)), np.zeros(0), np.zeros(0), 0).bound().bound
    assert 0 < got and exact <= Fraction(got)
    got = UnitKinks(np.eye(1), np.zeros(1), np.ones((1, 1)), np.array([3e-170]), np.array([1e-170]), 1).bound().bound
    assert 0 < got and Fraction(1e-170) ** 2 / 2 <= Fraction(got)
    kinks = UnitKinks(np.eye(1), np.ones(1), np.ones((1, 1)), np.array([0.0]), np.array([np.inf]), 1)
    assert math.isnan(kinks.bound().bound)
    huge = UnitKinks(1e-300 * np.eye(2), np.array([1e200, 1.0]), np.zeros((0, 2)), np.zeros(0), np.zeros(0), 0)
    with np.errstate(over="ignore"):  # r/√P overflows on purpose
        assert huge.bound().bound == math.inf
