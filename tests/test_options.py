"""Backend option names: cvxpy's own keywords, HiGHS's full option list, OSQP's older names, Pyomo per-solver
options and the estimators' checks (:mod:`multiconvex.solvers.options`)."""

from __future__ import annotations

import cvxpy as cp
import highspy
import numpy as np
import pyomo.environ as pyo
import pytest

import multiconvex as mc
from multiconvex.errors import InvalidInputError
from multiconvex.models import ReLURegressor
from multiconvex.pyomo_front.subsolver import check_subsolver_options
from multiconvex.solvers import get_backend
from multiconvex.solvers.options import CVXPY_KEYWORDS, accepted_options, check_solver_options


def _installed(name: str) -> bool:
    return get_backend(name).installed()


def _l1_mf():
    """A factorization with an L1 loss: its blocks go through cvxpy's ``problem.solve``."""
    Y = np.random.default_rng(0).standard_normal((8, 6))
    U, V = cp.Variable((8, 2), name="U"), cp.Variable((2, 6), name="V")
    U.value, V.value = np.ones((8, 2)), np.ones((2, 6))
    prob = cp.Problem(cp.Minimize(cp.norm(Y - U @ V, 1) + cp.sum_squares(U) + cp.sum_squares(V)))
    return prob, [[U], [V]]


@pytest.mark.parametrize("backend", ["highs", "gurobi", "clarabel", "osqp"])
@pytest.mark.parametrize("keyword", sorted(CVXPY_KEYWORDS))
def test_cvxpys_own_keywords_are_accepted_for_backends_reached_through_cvxpy(backend, keyword):
    if not _installed(backend):
        pytest.skip(f"{backend} is not installed")
    check_solver_options({keyword: False}, backend)
    check_solver_options({backend: {keyword: False}}, "auto")


@pytest.mark.parametrize("backend", ["daqp", "lstsq", "nnls"])
def test_cvxpys_keywords_are_refused_for_matrix_modules_that_fail_on_them(backend):
    if not _installed(backend):
        pytest.skip(f"{backend} is not installed")
    with pytest.raises(InvalidInputError, match=f"'verbose' is not an option of {backend}"):
        check_solver_options({"verbose": False}, backend)


@pytest.mark.parametrize("solver", ["highs", "clarabel"])
def test_a_cvxpy_keyword_runs_end_to_end_on_the_cvxpy_path(solver):
    prob, blocks = _l1_mf()
    res = mc.solve(prob, blocks, solver=solver, solver_options={"verbose": False, "ignore_dpp": True}, max_iters=2)
    assert set(res.info["forms"].values()) == {"cvxpy"} and not res.info.get("failed_block_solves")


def test_highs_accepts_every_name_highs_itself_knows_not_only_highs_options_attributes():
    name = "mip_allow_restart"  # in HiGHS's option list, not an attribute of highspy.HighsOptions()
    if hasattr(highspy.HighsOptions(), name):
        pytest.skip(f"this highspy lists {name} in HighsOptions: nothing beyond it to test")
    check_solver_options({name: True}, "highs")
    check_solver_options({"highs": {"iis_strategy": 0}}, "auto")
    with pytest.raises(InvalidInputError, match="'mip_allow_restartt' is not an option of highs"):
        check_solver_options({"mip_allow_restartt": True}, "highs")
    prob, blocks = _l1_mf()
    res = mc.solve(prob, blocks, solver="highs", solver_options={name: True}, max_iters=2)  # and HiGHS takes it
    assert not res.info.get("failed_block_solves")


def test_osqp_accepts_its_older_setting_names():
    if accepted_options("osqp") is None:
        pytest.skip("this OSQP lists no settings")
    check_solver_options({"warm_start": True, "polish": True}, "osqp")


def _pyomo_model():
    m = pyo.ConcreteModel()
    m.a, m.b = pyo.Block(), pyo.Block()
    m.a.x, m.b.y = pyo.Var(initialize=0.5), pyo.Var(initialize=2.0)
    m.o = pyo.Objective(expr=(m.a.x * m.b.y - 1) ** 2 + (m.a.x - 1) ** 2)
    return m


def test_pyomo_options_nested_under_a_pyomo_solver_name_are_checked_against_its_backend():
    check_subsolver_options({"appsi_highs": {"presolve": "off"}}, ["appsi_highs"])
    with pytest.raises(InvalidInputError, match=r"subsolver_options\['appsi_highs'\]: 'presolv'.*'presolve'"):
        check_subsolver_options({"appsi_highs": {"presolv": "off"}}, ["appsi_highs"])
    check_subsolver_options({"ipopt": {"anything_ipopt_reads": 1}}, ["ipopt", "appsi_highs"])  # no backend: unchecked


def test_pyomo_per_solver_options_for_gurobi_persistent_run():
    if not _installed("gurobi"):
        pytest.skip("gurobi is not installed")
    m = _pyomo_model()
    opt = pyo.SolverFactory("multiconvex", subsolver="gurobi_persistent",
                            subsolver_options={"gurobi_persistent": {"TimeLimit": 5}}, max_iters=3)
    opt.solve(m)
    assert not opt.result.info.get("failed_block_solves")
    with pytest.raises(InvalidInputError, match="'TimeLimt'"):
        pyo.SolverFactory("multiconvex", subsolver="gurobi_persistent",
                          subsolver_options={"gurobi_persistent": {"TimeLimt": 5}}).solve(_pyomo_model())


def test_the_relu_estimator_checks_option_names_before_any_work():
    X = np.random.default_rng(0).standard_normal((30, 3))
    net = ReLURegressor(hidden_layer_sizes=(3,), max_iter=2, solver="clarabel", random_state=0)
    with pytest.raises(InvalidInputError, match=r"ReLURegressor\.fit: solver_options: 'max_iters'.*'max_iter'"):
        net.fit(X, X[:, 0], solver_options={"max_iters": 3})
    assert not hasattr(net, "result_") and not hasattr(net, "coefs_")
