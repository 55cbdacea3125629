"""Issue 11: the piece program of two-layer ReLU local descent on each cone's facet rows, finished exactly by an
active-set polish; the hidden-block QP valued exactly. Each fast path is checked against the plain program it
replaces (real solvers, no mocks)."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest

from multiconvex.globalopt.pattern_facets import cone_facets
from multiconvex.globalopt.relu_piece import PiecePrograms
from multiconvex.solvers.active_set_polish import group_lasso_objective, polish_cone_qp, polish_group_lasso
from multiconvex.solvers.dispatch import make_plan


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = np.c_[rng.standard_normal((n, 2)), np.ones(n)]
    y = np.abs(X[:, 0]) - X[:, 1] + 0.5 * np.maximum(X[:, :2].sum(1), 0) + 0.1 * rng.standard_normal(n)
    return X, y


def _units(X: np.ndarray, r: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``r`` random units: their patterns ``D``, output signs, and the units themselves (strictly inside)."""
    U = np.random.default_rng(seed).standard_normal((r, X.shape[1]))
    return (X @ U.T).T >= 0, np.where(np.arange(r) % 2 == 0, 1.0, -1.0), U


@pytest.mark.parametrize("seed", range(5))
def test_facet_rows_cut_out_the_same_cone_as_every_row(seed):
    X, _ = _data(40, seed)
    D, _, U = _units(X, 1, seed)
    C = np.where(D[0], 1.0, -1.0)[:, None] * X
    rows = cone_facets(C, U[0])
    assert rows is not None and 3 <= rows.size < 40
    # points in the facets' cone are in the full cone: sample around the unit and across the cone's boundary
    pts = U[0] + np.random.default_rng(seed).standard_normal((20000, 3)) * np.linalg.norm(U[0])
    in_facets = (pts @ C[rows].T >= 0).all(axis=1)
    assert in_facets.any() and not in_facets.all()
    assert ((pts[in_facets] @ C.T) >= -1e-12 * np.linalg.norm(pts[in_facets], axis=1)[:, None]).all()
    # and every facet row is needed: without it some sampled point lies in the rest but outside the full cone
    for k in range(rows.size):
        loose = (pts @ C[np.delete(rows, k)].T >= 0).all(axis=1)
        assert (loose & ~(pts @ C.T >= 0).all(axis=1)).any()


def test_a_point_outside_the_cone_decides_no_facets():
    X, _ = _data(20, 0)
    C = X.copy()
    assert cone_facets(C, -np.array([0.0, 0.0, 1.0])) is None


def _piece_problem(n: int, r: int, seed: int):
    X, y = _data(n, seed)
    D, sign, U = _units(X, r, seed)
    A = [sign[j] * D[j][:, None] * X for j in range(r)]
    C = [np.where(D[j], 1.0, -1.0)[:, None] * X for j in range(r)]
    return X, y, D, sign, U, A, C


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("lam", [0.5, 0.01])
def test_polished_piece_program_is_optimal_and_no_worse_than_the_interior_point_solution(seed, lam):
    X, y, D, sign, U, A, C = _piece_problem(30, 6, seed)
    plain = PiecePrograms(X, make_plan("clarabel", "QP"), polish=False)
    W, status, _ = plain.piece(y, lam, D, sign)
    assert status == "optimal"
    out = polish_group_lasso(A, y, lam, C, W)
    assert out.status == "optimal", out.reason
    # the same optimum, finished: the interior-point point may violate rows by its tolerance (and undercut the
    # optimum by as much), the polished one does not
    assert out.objective == pytest.approx(group_lasso_objective(A, y, lam, W), rel=1e-7)
    assert (np.einsum("jd,jnd->jn", out.W, np.stack(C)) >= -1e-12 * np.linalg.norm(X, axis=1)).all()
    # and it is a minimum: no feasible perturbation on the same supports and active rows does better
    rng = np.random.default_rng(seed)
    for _ in range(100):
        Z = out.W + 1e-4 * rng.standard_normal(out.W.shape) * (np.linalg.norm(out.W, axis=1) > 0)[:, None]
        if (np.einsum("jd,jnd->jn", Z, np.stack(C)) >= 0).all():
            assert group_lasso_objective(A, y, lam, Z) >= out.objective - 1e-13


@pytest.mark.parametrize("seed", range(4))
def test_polish_from_far_with_duplicated_samples_and_units_sharing_a_direction_reaches_the_optimum(seed):
    # a singular Newton system (duplicated samples, units on one ray) and rows active to rounding used to stall
    # the vectorised method at its start (review: 15.10 instead of 6.03, 482.8 instead of 4.73)
    X, y = _data(24, seed)
    X[12:], y[12:] = X[:12], y[:12]
    rng = np.random.default_rng(seed)
    u = rng.standard_normal(3)
    U = u * rng.uniform(0.5, 2.0, (4, 1))
    D, sign = np.broadcast_to((X @ u) >= 0, (4, len(y))), np.array([1.0, 1.0, -1.0, 1.0])
    A = [sign[j] * D[j][:, None] * X for j in range(4)]
    C = [np.where(D[j], 1.0, -1.0)[:, None] * X for j in range(4)]
    W, status, _ = PiecePrograms(X, make_plan("clarabel", "QP"), polish=False).piece(y, 0.05, D, sign)
    assert status == "optimal"
    out = polish_group_lasso(A, y, 0.05, C, 3.0 * U, max_rounds=30)
    assert out.status == "optimal", out.reason
    assert out.objective == pytest.approx(group_lasso_objective(A, y, 0.05, W), rel=1e-7)


def test_polish_releases_a_group_wrongly_set_to_zero():
    X, y, D, sign, U, A, C = _piece_problem(30, 4, 1)
    W, status, _ = PiecePrograms(X, make_plan("clarabel", "QP"), polish=False).piece(y, 0.01, D, sign)
    assert status == "optimal"
    j = int(np.argmax(np.linalg.norm(W, axis=1)))
    start = W.copy()
    start[j] = 0.0
    out = polish_group_lasso(A, y, 0.01, C, start)
    assert out.status == "optimal", out.reason
    assert np.linalg.norm(out.W[j]) > 0
    assert out.objective == pytest.approx(group_lasso_objective(A, y, 0.01, W), rel=1e-7)


@pytest.mark.parametrize("seed", range(3))
def test_facet_piece_program_has_the_full_programs_optimum(seed):
    X, y, D, sign, U, _, _ = _piece_problem(40, 5, seed)
    full = PiecePrograms(X, make_plan("clarabel", "QP"))
    W_full, s1, _ = full.piece(y, 0.05, D, sign)
    facets = PiecePrograms(X, make_plan("clarabel", "QP"))
    W_fac, s2, _ = facets.piece(y, 0.05, D, sign, points=U)
    assert s1 == s2 == "optimal" and facets.facet_solves == 1
    A = [sign[j] * D[j][:, None] * X for j in range(5)]
    assert group_lasso_objective(A, y, 0.05, W_fac) == pytest.approx(group_lasso_objective(A, y, 0.05, W_full),
                                                                     rel=1e-12)
    assert np.allclose(W_fac, W_full, atol=1e-7)


@pytest.mark.parametrize("seed", range(3))
def test_polished_hidden_block_value_is_the_qp_optimum(seed):
    X, y, D, _, U, _, _ = _piece_problem(30, 5, seed)
    alpha = np.linspace(-1.0, 1.5, 5)
    polished = PiecePrograms(X, make_plan("clarabel", "QP"))
    v, status, _ = polished.hidden(y, 0.1, D, alpha)
    v_ipm, _, _ = PiecePrograms(X, make_plan("clarabel", "QP"), polish=False).hidden(y, 0.1, D, alpha)
    assert status == "optimal" and polished.polish_stats.get("hidden optimal") == 1
    assert v <= v_ipm and v == pytest.approx(v_ipm, rel=1e-6)
    # the same value from an exact active-set QP solver (DAQP through the dispatcher)
    v_daqp, status, _ = PiecePrograms(X, make_plan("daqp", "QP"), polish=False).hidden(y, 0.1, D, alpha)
    assert status == "optimal" and v == pytest.approx(v_daqp, rel=1e-11)


def test_cone_qp_polish_corrects_a_wrong_active_set():
    rng = np.random.default_rng(3)
    A, b, C = rng.standard_normal((20, 4)), rng.standard_normal(20), rng.standard_normal((8, 4))
    x_star = polish_cone_qp(A, b, 0.1, C, np.ones(4), active_tol=np.inf)   # start: every row active
    assert x_star.status == "optimal", x_star.reason
    assert (C @ x_star.W >= -1e-12).all()
    # no feasible point nearby is better (random feasible perturbations)
    for _ in range(200):
        z = x_star.W + 1e-3 * rng.standard_normal(4)
        if (C @ z >= 0).all():
            assert 0.5 * np.sum((b - A @ z) ** 2) + 0.05 * z @ z >= x_star.objective - 1e-15


def test_a_singular_finish_keeps_the_interior_point_value_of_the_hidden_block():
    # collinear features and λ ≈ 0: the finish's reduced system is singular (a review's case raised LinAlgError
    # and lost Clarabel's valid value); the block's value must be Clarabel's, as without the finish
    X = 1e4 * np.array([[1.0, 1.0], [2.0, 2.0], [-1.0, -1.0], [3.0, 3.0]])
    y = np.array([1.0, 2.0, 0.5, 3.0])
    D, alpha = np.array([[True, True, False, True]]), np.array([1.0])
    with_finish = PiecePrograms(X, make_plan("clarabel", "QP", {}))
    value, status, _ = with_finish.hidden(y, 1e-9, D, alpha)
    plain, plain_status, _ = PiecePrograms(X, make_plan("clarabel", "QP", {}), polish=False).hidden(y, 1e-9, D, alpha)
    assert (status, plain_status) == ("optimal", "optimal")
    assert value <= plain and value == pytest.approx(plain, rel=1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_hidden_block_from_the_current_units_is_the_qp_optimum_without_an_interior_point_solve(seed):
    X, y, D, _, U, _, _ = _piece_problem(30, 5, seed)
    alpha = np.linspace(-1.0, 1.5, 5)
    v_daqp, status, _ = PiecePrograms(X, make_plan("daqp", "QP"), polish=False).hidden(y, 0.1, D, alpha)
    assert status == "optimal"
    # near the optimum (as grow's units are when it measures the gap): the active-set method alone, exact
    A = (alpha[:, None, None] * D[:, :, None] * X[None, :, :]).transpose(1, 0, 2).reshape(30, 15)
    u = cp.Variable(15)
    cones = [np.where(D[j], 1.0, -1.0)[:, None] * X @ u[3 * j:3 * j + 3] >= 0 for j in range(5)]
    cp.Problem(cp.Minimize(0.5 * cp.sum_squares(y - A @ u) + 0.05 * cp.sum_squares(u)), cones).solve("CLARABEL")
    near = PiecePrograms(X, make_plan("clarabel", "QP"))
    v, status, _ = near.hidden(y, 0.1, D, alpha, warm=u.value)
    assert status == "optimal" and near.polish_stats == {"hidden from start": 1}
    assert v == pytest.approx(v_daqp, rel=1e-11)
    # far from it (random units): the interior-point route, the same value
    far = PiecePrograms(X, make_plan("clarabel", "QP"))
    v, status, _ = far.hidden(y, 0.1, D, alpha, warm=U.reshape(-1))
    assert status == "optimal" and v == pytest.approx(v_daqp, rel=1e-11)


def test_polish_takes_ragged_facet_rows_and_stacked_rows_alike():
    X, y, D, sign, U, A, C = _piece_problem(40, 5, 2)
    W, status, _ = PiecePrograms(X, make_plan("clarabel", "QP"), polish=False).piece(y, 0.05, D, sign)
    assert status == "optimal"
    facets = [C[j][cone_facets(C[j], U[j])] for j in range(5)]
    assert len({len(f) for f in facets}) > 1                 # ragged: the rows are padded inside
    ragged = polish_group_lasso(A, y, 0.05, facets, W)
    stacked = polish_group_lasso(np.stack(A), y, 0.05, np.stack(C), W)
    assert ragged.status == stacked.status == "optimal"
    assert ragged.objective == pytest.approx(stacked.objective, rel=1e-12)
    assert np.allclose(ragged.W, stacked.W, atol=1e-9)
