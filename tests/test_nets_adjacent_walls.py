"""The walls that every adjacent piece shares, in the adjacent-piece bound (:mod:`multiconvex.nets.adjacent_walls`):
on a one-wall model the search finds the walled minimum; at the end point of a softmax fit where a layer-2 entry just
outside the boundary tolerance stops every descent, the bound comes down from 40–600 times the tolerance to the true
gap (which exact solves of every adjacent piece find), and the certificate holds."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
import scipy.linalg
import torch
from test_nets_adjacent_smooth import largest_decrease_found

import multiconvex.nets.adjacent as adjacent
from multiconvex.nets import Architecture, forward
from multiconvex.nets.adjacent import adjacent_bounds
from multiconvex.nets.adjacent_walls import Walls, walled_bound
from multiconvex.nets.certificates import certificate
from multiconvex.nets.network import encode_targets, objective
from multiconvex.rounding import MidpointRadius

# The end point of ReLUClassifier([6, 5], weight_decay=1e-3, random_state=1, max_iter=1500) on the data below, fitted
# with the first-order bound only (the refinement switched off): it stopped at its iteration limit, uncertified. Weights
# in torch's layout (n_k, n_{k-1}).
COEFS = [
    np.array([
        [0.9600612574508186, 1.4519150654416038],
        [-0.2557674229278749, 0.2661975869936501],
        [-0.0, -0.0],
        [1.0520518033224142, -0.6997202591681124],
        [-1.6276312556256958, -1.9908817481281138],
        [0.7071330650635851, 1.190833450527457],
    ]),
    np.array([
        [-0.0, -0.0, -0.0, -0.0, -0.0, -0.0],
        [1.5315121789562294, 0.61380551230331, 0.0, -0.29882656213764125, -1.505010692285983, 1.2780729489097653],
        [-0.0408413934299091, -0.22272646129577017, -0.0, 1.1582741131121388, -0.02509454485996035,
         -0.08258340703919222],
        [-0.9253546054846906, 0.5756108258412473, 0.0, -0.5894854143515482, 2.149822627551885, -0.6591799319111513],
        [-0.0, -0.0, -0.0, -0.0, -0.0, -0.0],
    ]),
    np.array([
        [0.0, -0.9616007716098494, 0.9601167056935163, -0.6595725278742809, 0.0],
        [0.0, 2.177387975359133, -0.33019642388575243, -1.4451195870767077, 0.0],
        [0.0, -1.215734847275505, -0.629909994849088, 2.104743603684102, 0.0],
    ]),
]
INTERCEPTS = [
    np.array([0.3608912159381778, 0.8175066889530127, -0.0, -0.4978791759329221, 0.580523941746721,
              0.3745869242220703]),
    np.array([-0.0, 0.65570139646604, 0.1653241367508116, 0.6017107550450271, -0.0]),
    np.array([-0.23902388185915716, 0.16236870690770183, 0.07669206342954821]),
]


LAM = 1e-3


def _end_point():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((100, 2))
    y = np.argmax(X @ rng.standard_normal((2, 3)), 1)
    arch = Architecture((2, 6, 5, 3), "softmax")
    params = [(torch.as_tensor(W), torch.as_tensor(b)) for W, b in zip(COEFS, INTERCEPTS)]
    return arch, params, torch.as_tensor(X), torch.as_tensor(encode_targets(arch, y))


def test_one_wall_gives_the_walled_models_minimum():
    """``gᵀd + ½dᵀPd`` under one wall ``wᵀd ≤ e`` that its minimiser crosses: the search lands on the walled minimum
    (Clarabel), from above."""
    rng = np.random.default_rng(3)
    for _ in range(5):
        B = rng.standard_normal((4, 4))
        P, g = B @ B.T + 0.1 * np.eye(4), rng.standard_normal(4)
        d_star = -np.linalg.solve(P, g)
        w = rng.standard_normal(4)
        w *= np.sign(w @ d_star)  # the minimiser crosses the wall
        e = 0.3 * float(w @ d_star)
        d = cp.Variable(4)
        walled = cp.Problem(cp.Minimize(g @ d + 0.5 * cp.quad_form(d, P)), [w @ d <= e])
        walled.solve(solver="CLARABEL")

        def value_at(g2, P=P):
            return 0.5 * float(g2.value @ np.linalg.solve(P, g2.value)), -np.linalg.solve(P, g2.value)

        first = value_at(MidpointRadius.exact(g))[0]
        got = walled_bound(value_at, Walls(w[None, :], np.array([e])), scipy.linalg.cho_factor(P),
                           MidpointRadius.exact(g), first, d_star, None)
        assert -walled.value * (1 - 1e-9) - 1e-12 <= got <= -walled.value * (1 + 1e-6), (got, -walled.value)
        assert got < first


def test_walls_bring_a_fits_bound_down_to_the_gap_and_certify_its_end_point():
    """Blocks ``layer1[2:3]`` and ``layer1[4:5]``: without the walls their bounds stay 40–600 times the tolerance
    (``F`` falls along the first model's direction, for a step of ~1e-5, until a layer-2 entry at z = −2.6e-6 —
    just outside the boundary tolerance — reaches its kink); with them every bound is within it, and the certificate
    holds."""
    arch, params, X, T = _end_point()
    F = float(objective(arch, params, X, T, LAM))
    tol = 1e-6 * F
    _, pre, inputs = forward(arch, params, X)
    walled = adjacent_bounds(arch, params, T, 0, pre, inputs, LAM, tol=tol)
    real = adjacent.own_piece_walls
    try:
        adjacent.own_piece_walls = lambda *a, **k: None
        open_ = adjacent_bounds(arch, params, T, 0, pre, inputs, LAM, tol=tol)
    finally:
        adjacent.own_piece_walls = real
    for u in (1, 3):
        assert open_[u].bound > 30 * tol
        assert walled[u].bound <= tol
        assert walled[u].first_order == open_[u].first_order  # the first model (and its direction) as before
    cert = certificate(arch, params, X, T, LAM)
    assert cert.is_partial_minimum, cert.block_gaps


@pytest.mark.slow
def test_the_walled_bounds_are_at_least_the_decrease_exact_solves_find():
    """Every adjacent piece of the two blocks solved by Clarabel (``F`` at its answer, a feasible point): the largest
    decrease found is below each walled bound, which is within 10 times it (no ``tol``: the search runs to its budget;
    it lands on 1.0–7.6 times the decrease here, against 1,000–50,000 times without the walls)."""
    arch, params, X, T = _end_point()
    _, pre, inputs = forward(arch, params, X)
    bounds = adjacent_bounds(arch, params, T, 0, pre, inputs, LAM)
    for u in (1, 3):
        found = largest_decrease_found(arch, params, X, T, LAM, 0, u)
        assert found is not None
        assert found <= bounds[u].bound * (1 + 1e-9) + 1e-12 <= 10 * found + 1e-12, (u, found, bounds[u].bound)
