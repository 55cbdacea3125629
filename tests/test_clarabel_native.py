"""Specification of the ``clarabel-native`` backend: Clarabel fed matrices, checked against cvxpy's path."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
import scipy.sparse as sp

from multiconvex.errors import SolverUnavailableError
from multiconvex.models import ReLUNetwork, datasets
from multiconvex.solvers import from_cvxpy, get_backend, resolve
from multiconvex.solvers.clarabel_native import (
    ClarabelNativeBackend,
    ClarabelProblem,
    dense_csc,
    nonneg,
)

pytest.importorskip("clarabel")


def _qp(seed=0, n=6, m=8):
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((n + 2, n))
    P = M.T @ M + 0.1 * np.eye(n)
    q = rng.standard_normal(n)
    G = rng.standard_normal((m, n))
    h = rng.random(m)
    return P, q, G, h


def _cvxpy_qp(P, q, G, h):
    x = cp.Variable(P.shape[0])
    prob = cp.Problem(cp.Minimize(0.5 * cp.quad_form(x, cp.psd_wrap(P)) + q @ x), [G @ x <= h])
    prob.solve(solver="CLARABEL")
    return prob, x


# -- the matrix-level solver itself --------------------------------------------------------------
def test_native_qp_has_the_optimum_of_the_cvxpy_path():
    P, q, G, h = _qp()
    sol = ClarabelProblem().solve(sp.triu(sp.csc_array(P), format="csc"), q, dense_csc(G), h, [nonneg(len(h))])
    prob, x = _cvxpy_qp(P, q, G, h)
    assert sol.status == from_cvxpy(prob.status) == "optimal"
    np.testing.assert_allclose(sol.x, x.value, atol=1e-7)
    assert sol.value == pytest.approx(prob.value, rel=1e-7, abs=1e-9)


def test_same_pattern_updates_the_solver_in_place_and_agrees_with_a_fresh_one():
    prob = ClarabelProblem()
    P, q, G, h = _qp(0)
    first = prob.solve(sp.triu(sp.csc_array(P), format="csc"), q, dense_csc(G), h, [nonneg(8)])
    P2, q2, G2, h2 = _qp(1)
    P2u = sp.triu(sp.csc_array(P2), format="csc")
    again = prob.solve(P2u, q2, dense_csc(G2), h2, [nonneg(8)])
    fresh = ClarabelProblem().solve(P2u, q2, dense_csc(G2), h2, [nonneg(8)])
    assert not first.reused and again.reused and prob.rebuilds == 1
    np.testing.assert_allclose(again.x, fresh.x, atol=1e-9)


def test_a_changed_pattern_rebuilds_instead_of_updating():
    prob = ClarabelProblem()
    P, q, G, h = _qp(0)
    prob.solve(sp.triu(sp.csc_array(P), format="csc"), q, dense_csc(G), h, [nonneg(8)])
    sol = prob.solve(sp.triu(sp.csc_array(P), format="csc"), q, dense_csc(G[:5]), h[:5], [nonneg(5)])
    assert not sol.reused and prob.rebuilds == 2 and sol.status == "optimal"


def test_infeasible_unbounded_and_iteration_limit_match_the_cvxpy_statuses():
    x = cp.Variable(2)
    # infeasible: x0 >= 1 and x0 <= -1
    A = dense_csc(np.array([[-1.0, 0.0], [1.0, 0.0]]))
    native = ClarabelProblem().solve(sp.identity(2, format="csc"), np.zeros(2), A, np.array([-1.0, -1.0]), [nonneg(2)])
    prob = cp.Problem(cp.Minimize(cp.sum_squares(x)), [x[0] >= 1, x[0] <= -1])
    prob.solve(solver="CLARABEL")
    assert native.status == from_cvxpy(prob.status) == "infeasible" and native.x is None
    # unbounded: minimise x0 with x0 free
    native = ClarabelProblem().solve(sp.csc_array((2, 2)), np.array([1.0, 0.0]), sp.csc_array((0, 2)),
                                     np.zeros(0), [])
    prob = cp.Problem(cp.Minimize(x[0]), [x[1] == 0])
    prob.solve(solver="CLARABEL")
    assert native.status == from_cvxpy(prob.status) == "unbounded"
    # an iteration limit is a status without a point, as through cvxpy
    P, q, G, h = _qp()
    native = ClarabelProblem({"max_iter": 1}).solve(sp.triu(sp.csc_array(P), format="csc"), q, dense_csc(G), h,
                                                    [nonneg(8)])
    y = cp.Variable(6)
    prob = cp.Problem(cp.Minimize(0.5 * cp.quad_form(y, cp.psd_wrap(P)) + q @ y), [G @ y <= h])
    prob.solve(solver="CLARABEL", max_iter=1)
    assert native.status == from_cvxpy(prob.status) == "iteration_limit"


def test_unknown_setting_is_named():
    with pytest.raises(ValueError, match="unknown Clarabel setting 'tolerance'"):
        ClarabelProblem({"tolerance": 1e-3})


def test_missing_clarabel_is_a_clear_error(monkeypatch):
    backend = get_backend("clarabel-native")
    monkeypatch.setattr(backend, "modules", ("clarabel_is_not_installed_here",))
    assert not backend.installed()
    with pytest.raises(SolverUnavailableError, match="pip install clarabel"):
        backend.problem()
    with pytest.raises(SolverUnavailableError, match="pip install clarabel"):
        resolve("clarabel-native", "QP")
    net = ReLUNetwork(hidden_layer_sizes=[4], random_state=0, device="cpu", solver="clarabel-native", max_iter=1)
    X = np.random.default_rng(0).standard_normal((20, 3))
    with pytest.raises(SolverUnavailableError, match="clarabel"):
        net.fit(X, X[:, 0])


# -- the registry ------------------------------------------------------------------------------------
def test_auto_tries_native_first_only_for_matrix_level_callers():
    assert isinstance(resolve("auto", "QP", matrix_level=True)[0], ClarabelNativeBackend)
    assert [b.name for b in resolve("auto", "QP", matrix_level=True)][1] == "clarabel"  # the cvxpy fallback
    assert "clarabel-native" not in [b.name for b in resolve("auto", "QP")]
    assert "clarabel-native" not in [b.name for b in resolve("auto", "SOCP", matrix_level=True)]


# -- ReLU blocks: the dispatcher's subproblem is the block's, whichever backend solves it --------------
def _regression(n=80, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    return X, np.abs(X[:, 0]) - X[:, 1] + 0.1 * rng.standard_normal(n)


def _every_block(net, X, y, block_size, solvers, point=None):
    """Solve every block from the same point with each of ``solvers``; yields ``(form, index, point, sols)``."""
    arch, Xt, Tt = net._tensors(X, y, "test", fit=True)
    forms = [net._form(arch, Xt, Tt, s, block_size, None, None) for s in solvers]
    x0 = forms[0].point_from_params(net.initial_params()) if point is None else point
    for i in range(len(forms[0].blocks)):
        sols = []
        for form in forms:
            form.prepare(i, x0)
            sols.append(form.solve_prepared(i))
        yield forms[0], i, x0, sols


def _cvxpy_block(form, index, point):
    """The squared-loss block written from its torch data in cvxpy, unreduced (every piece row),
    solved by Clarabel through cvxpy: the reference for the dispatcher's reduced value."""
    data = form.block_data(index, point)
    N, wd = form.X.shape[0], form.weight_decay
    R, d = data.R.numpy(), data.d.numpy()
    theta0 = data.theta0.numpy()
    th = cp.Variable(theta0.size)
    main = cp.sum_squares(R @ th - d) / (2 * N) + wd / 2 * cp.sum_squares(th)
    cons = []
    if data.own is not None:
        c = data.own.shape[2]
        cons += [data.own[u].numpy() @ th[u * c:(u + 1) * c] >= 0 for u in range(data.own.shape[0])]
    if data.G is not None:
        cons.append(data.G.numpy() @ th + data.h.numpy() >= 0)
    prob = cp.Problem(cp.Minimize(main), cons)
    th.value = theta0
    const = form.evaluate(point)[0] - float(main.value)
    prob.solve(solver="CLARABEL")
    return from_cvxpy(prob.status), th.value, prob.value + const


@pytest.mark.parametrize("block_size", ["layer", 3, "unit"])
def test_relu_squared_blocks_match_the_unreduced_cvxpy_block(block_size):
    X, y = _regression()
    net = ReLUNetwork(hidden_layer_sizes=[6, 5], weight_decay=1e-2, random_state=0, device="cpu")
    for form, i, x0, (native, auto) in _every_block(net, X, y, block_size, ["clarabel-native", "auto"]):
        status, theta, value = _cvxpy_block(form, i, x0)
        assert native.backend == "clarabel-native" and auto.backend in ("daqp", "lstsq", "proxqp")
        assert native.status == auto.status == status == "optimal"
        assert native.value == pytest.approx(value, rel=1e-7)
        assert auto.value <= native.value + 1e-12 and auto.value == pytest.approx(value, rel=1e-7)
        got = np.concatenate([auto.values[k] for k in form.blocks[i].keys])
        # interior points stop at a gap tolerance: along flat directions (a dead unit sees only
        # weight decay, value ~1e-9) they stop ~1e-4 from the exact optimum with equal values
        np.testing.assert_allclose(got, theta, atol=1e-3)


@pytest.mark.parametrize("loss,out", [("softmax", 3), ("logistic", 1)])
def test_relu_exponential_cone_blocks_match_the_cvxpy_path(loss, out):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((60, 3))
    y = np.argmax(X @ rng.standard_normal((3, 3)), 1) if loss == "softmax" else (X[:, 0] * X[:, 1] > 0).astype(int)
    net = ReLUNetwork(hidden_layer_sizes=[5, 4], loss=loss, weight_decay=1e-2, random_state=0, device="cpu")
    for _, _, _, (native, via) in _every_block(net, X, y, 2, ["clarabel-native", "clarabel"]):
        assert (native.backend, via.backend) == ("clarabel-native", "clarabel")
        assert native.status == via.status == "optimal"
        assert native.value == pytest.approx(via.value, rel=1e-6)
        for key in native.values:
            np.testing.assert_allclose(native.values[key], via.values[key], atol=1e-4)


def test_one_jacobi_sweep_of_layer_blocks_is_the_same_with_every_backend():
    X, y = _regression()
    kw = dict(hidden_layer_sizes=[6, 5], weight_decay=1e-2, random_state=0, device="cpu", algorithm="jacobi",
              max_iter=1)
    runs = {s: ReLUNetwork(solver=s, **kw).fit(X, y, block_size="layer").result_
            for s in ("clarabel-native", "auto", "ecos")}  # ecos: through a small cvxpy problem
    assert set(runs["clarabel-native"].backends_used) == {"clarabel-native"}
    assert set(runs["ecos"].backends_used) == {"ecos"}
    for s in ("auto", "ecos"):
        np.testing.assert_allclose(runs[s].objectives, runs["clarabel-native"].objectives, rtol=1e-7)


@pytest.mark.slow
def test_native_reaches_a_certified_partial_minimum():
    X, y = _regression(60)
    net = ReLUNetwork(hidden_layer_sizes=[5], weight_decay=1e-2, random_state=0, device="cpu",
                      algorithm="gauss-seidel", solver="clarabel-native", max_iter=300, tol=1e-6)
    net.fit(X, y)
    res = net.result_
    assert res.status == "converged" and res.certificate.is_partial_minimum
    assert np.all(np.diff(res.objectives) <= 1e-12)
    assert res.objective == pytest.approx(net.objective(X, y), rel=1e-12)


def test_a_failed_solve_falls_back_to_the_next_backend_in_the_list():
    X, y = _regression(40)
    net = ReLUNetwork(hidden_layer_sizes=[5], weight_decay=1e-2, random_state=0, device="cpu",
                      algorithm="gauss-seidel", solver=["clarabel-native", "clarabel"], max_iter=1)
    net.fit(X, y, solver_options={"clarabel-native": {"max_iter": 1}})
    assert net.result_.backends_used.get("clarabel", 0) >= 1  # blocks whose native solve hit the limit
    alone = ReLUNetwork(hidden_layer_sizes=[5], weight_decay=1e-2, random_state=0, device="cpu",
                        algorithm="gauss-seidel", solver="clarabel-native", max_iter=1)
    alone.fit(X, y, solver_options={"clarabel-native": {"max_iter": 1}})
    assert "clarabel" not in alone.result_.backends_used and alone.result_.info["failed_block_solves"]


@pytest.mark.parametrize("solver", ["auto", "osqp"])
def test_an_empty_neighbouring_piece_is_an_answer_not_a_failure(solver):
    # Units on a piece boundary are also solved on the piece across it; that piece is often empty. Its proof of
    # emptiness (here a crossed interval) must neither send the block to a backend nor count as a failure.
    X, y = datasets.load("diabetes")
    X, y = X[:100], y[:100]
    net = ReLUNetwork(hidden_layer_sizes=[8, 8], weight_decay=1e-4, random_state=0, algorithm="gauss-seidel",
                      solver="auto", max_iter=3)
    net.fit(X, y, certify=False)
    assert net.result_.info["failed_block_solves"] == 0
    arch, Xt, Tt = net._tensors(X, y, "test", fit=True)
    form = net._form(arch, Xt, Tt, solver, "auto", None, None)
    x = form.point_from_params(net._params())
    empty = []
    for i in range(len(form.blocks)):
        if form.prepare(i, x, flip_boundary=True):
            sol = form.solve_prepared(i)
            if sol.status == "infeasible":
                empty.append(sol)
    assert empty, "the start should have empty neighbouring pieces"
    # a crossed interval on one row is the proof by itself: no backend runs, whatever the plan
    assert all(sol.attempts == [] and "crossed" in sol.message and not sol.ok for sol in empty)
