"""Declarations the cvxpy and Pyomo front ends refuse before any solve (found by a hostile review), and
Pyomo's own way of passing solver options."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pyomo.environ as pyo
import pytest

import multiconvex as mc
from multiconvex.errors import InvalidInputError, NotMulticonvexError


# -- cvxpy -----------------------------------------------------------------------------------------
def test_a_domain_constraint_on_another_variable_of_the_same_name_does_not_admit_an_odd_power():
    # w**3 is convex only for w >= 0; the constraint `other >= 0` prints as `w >= 0` too (both variables are named
    # "w"), and a name match let the block solve stay in w >= 0 and certify w = 1 (F = -2; at w = -3, F = -18)
    w, other = cp.Variable(name="w"), cp.Variable(name="w")
    prob = cp.Problem(cp.Minimize(cp.power(w, 3) - 3 * w + cp.square(other - 1)), [other >= 0])
    w.value = -1.5
    with pytest.raises(NotMulticonvexError, match=r"power\(w, 3\)"):
        mc.solve(prob, [[w], [other]])
    # the same name through parameters: `w - p >= 0` does not cover power(w - q, 3) for another p
    p, q = cp.Parameter(nonneg=True, value=1.0, name="p"), cp.Parameter(value=5.0, name="p")
    prob = cp.Problem(cp.Minimize(cp.power(w - q, 3) - 3 * w + cp.square(other - 1)), [w - p >= 0])
    with pytest.raises(NotMulticonvexError, match="power"):
        mc.solve(prob, [[w], [other]])


def test_the_domain_constraint_on_the_argument_itself_still_admits_the_power():
    w, other = cp.Variable(name="w"), cp.Variable(name="o")
    prob = cp.Problem(cp.Minimize(cp.power(w, 3) - 3 * w + cp.square(other - 1)), [w >= 0])
    w.value = 1.5
    res = mc.solve(prob, [[w], [other]])
    assert res.status == "converged" and res.objective == pytest.approx(-2.0, abs=1e-6)


@pytest.mark.parametrize("row", ["constant", "parameter"])
def test_a_constraint_without_variables_that_does_not_hold_is_refused(row):
    x, y = cp.Variable(name="x"), cp.Variable(name="y")
    bad = cp.Constant(0) >= 1 if row == "constant" else cp.Parameter(value=-1.0, name="p") >= 0
    prob = cp.Problem(cp.Minimize(cp.square(x * y - 1) + cp.square(x)), [x >= -5, bad])
    with pytest.raises(InvalidInputError, match=r"constraint 1 .* involves no variable and does not hold"):
        mc.solve(prob, [[x], [y]])
    ok = cp.Problem(cp.Minimize(cp.square(x * y - 1) + cp.square(x)), [cp.Parameter(value=1.0) >= 0])
    assert mc.solve(ok, [[x], [y]], max_iters=3).objective < np.inf  # one that holds is no obstacle


def test_a_variable_with_a_sparsity_pattern_is_refused():
    # the block copies dropped the pattern: the block was solved dense and projected back, and never converged
    X, y = cp.Variable((2, 2), sparsity=[(0, 1), (0, 1)], name="X"), cp.Variable(2, name="y")
    prob = cp.Problem(cp.Minimize(cp.sum_squares(X @ y - np.array([1.0, 2.0])) + 0.1 * cp.sum_squares(y)))
    with pytest.raises(InvalidInputError, match="'X' is declared with sparsity"):
        mc.solve(prob, [[X], [y]], seed=0)


@pytest.mark.parametrize("blocks", ["given", "found"])
def test_a_maximised_term_that_is_not_concave_is_named_as_the_user_wrote_it(blocks):
    x, y = cp.Variable(name="x"), cp.Variable(name="y")
    prob = cp.Problem(cp.Maximize(cp.square(x) + x * y), [x <= 1, x >= -1, y <= 1, y >= -1])
    # it said `-(square(x) + x*y)` "is concave (minimising needs a convex term)"
    with pytest.raises(NotMulticonvexError, match=r"term `[^`-]*\(x, 2(\.0)?\)` is convex in the block "
                                                  r"\(maximising needs a concave term\)"):
        mc.solve(prob, [[x], [y]] if blocks == "given" else None)


def test_init_by_a_name_that_two_variables_share_is_refused():
    w, other = cp.Variable(name="w"), cp.Variable(name="w")
    prob = cp.Problem(cp.Minimize(cp.square(w * other - 1) + cp.square(w) + cp.square(other)))
    with pytest.raises(InvalidInputError, match="2 variables of the problem have that name"):
        mc.solve(prob, [[w], [other]], init={"w": 1.0})
    assert mc.solve(prob, [[w], [other]], init={w: 1.0, other: 0.5}, max_iters=2).objective < np.inf


# -- Pyomo -----------------------------------------------------------------------------------------
def _bilinear() -> pyo.ConcreteModel:
    m = pyo.ConcreteModel()
    m.a, m.b = pyo.Block(), pyo.Block()
    m.a.x, m.b.y = pyo.Var(initialize=0.3), pyo.Var(initialize=0.2)
    m.o = pyo.Objective(expr=(m.a.x * m.b.y - 1) ** 2 + 0.01 * m.a.x ** 2 + 0.01 * m.b.y ** 2)
    return m


def test_pyomo_a_constraint_whose_variables_are_all_fixed_and_that_does_not_hold_is_refused():
    m = _bilinear()
    m.f = pyo.Var(initialize=0.0)
    m.f.fix(0.0)
    m.c = pyo.Constraint(expr=m.f >= 1)
    with pytest.raises(InvalidInputError, match=r"constraint c involves no free variable .* does not hold"):
        pyo.SolverFactory("multiconvex").solve(m)
    assert m.a.x.value == 0.3  # refused before anything was loaded
    m.f.fix(2.0)  # now it holds
    pyo.SolverFactory("multiconvex", max_iters=2).solve(m)


@pytest.mark.parametrize("how", ["solve", "opt.options"])
def test_pyomo_solver_options_the_pyomo_way_set_the_drivers_options(how):
    m = _bilinear()
    opt = pyo.SolverFactory("multiconvex", subsolver="highs")
    if how == "solve":
        opt.solve(m, options={"max_iters": 2})
    else:
        opt.options["max_iters"] = 2
        opt.solve(m)
    assert opt.result.iterations == 2  # they used to be dropped: the run went to 100 iterations


def test_pyomo_unknown_or_bad_solver_options_are_refused_by_name():
    with pytest.raises(InvalidInputError, match=r"solver option\(s\) bogus not known.*subsolver_options"):
        pyo.SolverFactory("multiconvex").solve(_bilinear(), options={"bogus": 1})
    with pytest.raises(InvalidInputError, match="tol=nan"):
        pyo.SolverFactory("multiconvex").solve(_bilinear(), options={"tol": float("nan")})


def test_pyomo_a_fixed_variable_without_a_value_is_still_refused_by_name():
    m = _bilinear()
    m.f = pyo.Var()
    m.f.fix()
    m.c = pyo.Constraint(expr=m.f >= -10)
    with pytest.raises(InvalidInputError, match="variable f is fixed but has no value"):
        pyo.SolverFactory("multiconvex").solve(m)
