"""Extrapolation between the drivers' steps (:mod:`multiconvex.extrapolation`): kept only when strictly better, so
the objective never rises and the certificate is the returned point's; fewer iterations where the blocks are coupled;
projected onto simple bounds (NMF, cvxpy attributes, Pyomo bounds); clear errors for a flag that is not one."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pyomo.environ as pyo
import pytest
import torch

import multiconvex as mc
from models import NonnegativeMatrixFactorization, ReLURegressor
from multiconvex.drivers import DriverOptions, run
from multiconvex.errors import InvalidInputError
from multiconvex.extrapolation import CAP, FLOOR, Extrapolation
from multiconvex.nets import Architecture, NetForm


def _factorization(nonneg: bool):
    rng = np.random.default_rng(0)
    Y = rng.standard_normal((40, 5)) @ rng.standard_normal((5, 30)) + 0.1 * rng.standard_normal((40, 30))
    Y = np.abs(Y) if nonneg else Y
    U, V = cp.Variable((40, 5), nonneg=nonneg), cp.Variable((5, 30), nonneg=nonneg)
    reg = 0.1 * (cp.sum_squares(U) + cp.sum_squares(V))
    return cp.Problem(cp.Minimize(cp.sum_squares(Y - U @ V) + reg)), U, V


def _never_rises(res) -> bool:
    objectives = [h.objective for h in res.history]
    return all(b <= a for a, b in zip(objectives, objectives[1:]))


@pytest.mark.parametrize("nonneg", [False, True])
def test_a_factorization_converges_in_fewer_sweeps_to_the_same_objective(nonneg):
    """Measured: 567 → 167 sweeps (free factors), 498 → 187 (nonnegative, each try projected by cvxpy's
    ``Variable.project``); the same objective to the tolerance, never rising."""
    runs = {}
    for extrapolate in (False, True):
        prob, U, V = _factorization(nonneg)
        runs[extrapolate] = mc.solve(prob, [[U], [V]], max_iters=2000, tol=1e-8, seed=0, extrapolate=extrapolate)
        if nonneg:
            assert U.value.min() >= 0 and V.value.min() >= 0
    plain, fast = runs[False], runs[True]
    assert plain.status == fast.status == "converged"
    assert fast.iterations < 0.6 * plain.iterations
    assert fast.objective == pytest.approx(plain.objective, rel=1e-5)
    assert fast.certificate.is_partial_minimum and _never_rises(fast)
    info = fast.info["extrapolation"]
    assert 0 < info["kept"] <= info["tried"] <= fast.iterations
    # the history shows each kept try (the last sweep's entry is its certifying pass's, which moves nothing)
    assert 0 < sum("extrapolation" in (h.accepted_block or "") for h in fast.history) <= info["kept"]
    assert "extrapolation" not in plain.info


def test_nmf_projects_each_try_onto_the_nonnegative_factors():
    """Ang & Gillis clip the extrapolated factors at 0: without it almost every try is infeasible (13 of 380 kept
    on digits); with it 98 of 151 (380 iterations without extrapolation)."""
    X = np.abs(np.random.default_rng(1).standard_normal((120, 30))) @ np.abs(
        np.random.default_rng(2).standard_normal((30, 40)))
    kw = dict(n_components=6, max_iter=3000, tol=1e-7, random_state=0)
    plain = NonnegativeMatrixFactorization(**kw).fit(X)
    fast = NonnegativeMatrixFactorization(**kw, extrapolate=True).fit(X)
    info = fast.result_.info["extrapolation"]
    assert info["kept"] > 0.3 * info["tried"]
    assert fast.n_iter_ < plain.n_iter_
    assert fast.reconstruction_err_ <= plain.reconstruction_err_ * (1 + 1e-3)
    assert fast.components_.min() >= 0 and fast.transform(X).min() >= 0
    assert _never_rises(fast.result_)
    with pytest.raises(InvalidInputError, match="extrapolate"):
        NonnegativeMatrixFactorization(**kw, extrapolate="yes").fit(X)


@pytest.mark.filterwarnings("ignore:.*without a certified end point")
def test_a_relu_network_keeps_only_better_points_and_is_certified_at_the_returned_one():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 3))
    y = np.sin(X[:, 0]) + X[:, 1] * X[:, 2]
    arch = Architecture((3, 8, 1))
    form = NetForm(arch, torch.as_tensor(X), torch.as_tensor(y[:, None]), 1e-3)
    res = run(form, form.initial_point(0, None), DriverOptions(max_iters=40, extrapolate=True))
    assert res.info["extrapolation"]["kept"] > 0 and _never_rises(res)
    assert res.objective == pytest.approx(form.evaluate(form.final_point)[0], rel=1e-12)
    net = ReLURegressor([6], max_iter=20, random_state=0).fit(X, y, extrapolate=True)
    assert net.result_.info["extrapolation"]["tried"] > 0
    assert _never_rises(net.result_)
    rounds = ReLURegressor([6], max_iter=20, random_state=0).fit(X, y, extrapolate=True, layer_steps=True)
    info = rounds.result_.info
    shown = sum("extrapolation" in (h.accepted_block or "") for h in rounds.result_.history)
    assert info["rounds"] > 1 and shown > 0
    assert info["extrapolation"]["kept"] >= shown  # every round's count (a review: the last round's alone)
    with pytest.raises(InvalidInputError, match="extrapolate"):
        ReLURegressor([6], algorithm="adam", max_iter=2).fit(X, y, extrapolate=True)
    with pytest.raises(InvalidInputError, match="extrapolate"):
        ReLURegressor([6], max_iter=2).fit(X, y, extrapolate=1)


def test_mc_solve_refuses_a_flag_that_is_not_one_before_any_solve():
    prob, U, V = _factorization(False)
    with pytest.raises(InvalidInputError, match="extrapolate"):
        mc.solve(prob, [[U], [V]], extrapolate="yes")
    assert U.value is None


def test_pyomo_clips_each_try_to_the_variables_bounds():
    rng = np.random.default_rng(3)
    Y = np.abs(rng.standard_normal((6, 2)) @ rng.standard_normal((2, 5)))
    m = pyo.ConcreteModel()
    m.U = pyo.Var(range(6), range(2), bounds=(0, None), initialize=lambda m, i, a: rng.random())
    m.V = pyo.Var(range(2), range(5), bounds=(0, None), initialize=lambda m, a, j: rng.random())
    fit = sum((Y[i, j] - sum(m.U[i, a] * m.V[a, j] for a in range(2))) ** 2 for i in range(6) for j in range(5))
    m.obj = pyo.Objective(expr=fit + 0.01 * (sum(v ** 2 for v in m.U.values()) + sum(v ** 2 for v in m.V.values())))
    opt = pyo.SolverFactory("multiconvex", subsolver="highs", blocks=[[m.U], [m.V]], max_iters=40, tol=1e-9,
                            extrapolate=True)
    opt.solve(m)
    assert opt.result.info["extrapolation"]["kept"] > 0
    assert min(v.value for v in m.U.values()) >= 0 and min(v.value for v in m.V.values()) >= 0
    assert pyo.value(m.obj) == pytest.approx(opt.result.objective, rel=1e-12)
    with pytest.raises(mc.InvalidInputError, match="extrapolate='yes' is a str"):  # before any solve
        pyo.SolverFactory("multiconvex", subsolver="highs", blocks=[[m.U], [m.V]], extrapolate="yes").solve(m)


def test_beta_grows_when_kept_and_shrinks_when_refused_within_its_limits():
    ex = Extrapolation()
    for _ in range(20):
        ex.update(True)
    assert ex.beta == CAP
    for _ in range(20):
        ex.update(False)
    assert ex.beta == FLOOR
    assert ex.summary() == {"tried": 0, "kept": 20, "last_beta": FLOOR}
