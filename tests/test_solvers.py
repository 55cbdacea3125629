"""Specification of multiconvex.solvers: registry, selection, licences, lstsq, canned battery."""

from __future__ import annotations

import importlib.util

import cvxpy as cp
import numpy as np
import pytest

from multiconvex.errors import (
    InvalidInputError,
    LicenceError,
    SolverFailure,
    SolverUnavailableError,
    UnknownSolverError,
)
from multiconvex.solvers import (
    LstsqSolver,
    available_solvers,
    get_backend,
    has_solution,
    known_names,
    problem_class,
    resolve,
    solve_cvxpy,
)
from multiconvex.solvers.status import STATUSES, from_cvxpy

RTOL = 1e-6


# --- canned problems: name -> (builder, class) ---------------------------------------
def _rng():
    return np.random.default_rng(0)


def tiny_lp():
    x = cp.Variable(3)
    return cp.Problem(cp.Minimize(np.array([1.0, 2.0, 3.0]) @ x),
                      [x >= 0, cp.sum(x) >= 1, x[0] <= 0.5])


def ridge_qp():
    rng = _rng()
    Y, P = rng.standard_normal((20, 10)), cp.Parameter((3, 10), value=rng.standard_normal((3, 10)))
    U = cp.Variable((20, 3))
    return cp.Problem(cp.Minimize(cp.sum_squares(Y - U @ P) + 0.05 * cp.sum_squares(U)))


def box_qp():
    rng = _rng()
    A, b = rng.standard_normal((15, 6)), rng.standard_normal(15)
    x = cp.Variable(6)
    return cp.Problem(cp.Minimize(cp.sum_squares(A @ x - b)), [x >= -0.2, x <= 0.2])


def socp():
    rng = _rng()
    A, b = rng.standard_normal((8, 4)), rng.standard_normal(8)
    x = cp.Variable(4)
    return cp.Problem(cp.Minimize(cp.norm(A @ x - b, 2) + cp.norm(x, 2)), [cp.sum(x) == 1])


def exp_cone():
    x = cp.Variable(3)
    return cp.Problem(cp.Minimize(cp.sum(cp.exp(x)) - cp.sum(x) * 2), [cp.sum(x) <= 1])


def unconstrained_ls():
    rng = _rng()
    A, b = rng.standard_normal((12, 5)), rng.standard_normal(12)
    x = cp.Variable(5)
    return cp.Problem(cp.Minimize(cp.sum_squares(A @ x - b)))


def equality_ls():
    rng = _rng()
    A, b = rng.standard_normal((12, 5)), rng.standard_normal(12)
    C = rng.standard_normal((2, 5))
    x = cp.Variable(5)
    return cp.Problem(cp.Minimize(cp.sum_squares(A @ x - b) + cp.sum_squares(x)),
                      [C @ x == np.ones(2)])


BATTERY = {
    "tiny_lp": (tiny_lp, "LP"),
    "ridge_qp": (ridge_qp, "EQP"),
    "box_qp": (box_qp, "QP"),
    "socp": (socp, "SOCP"),
    "exp_cone": (exp_cone, "EXP"),
    "unconstrained_ls": (unconstrained_ls, "EQP"),
    "equality_ls": (equality_ls, "EQP"),
}

LICENCE_FREE = [b.name for b in available_solvers() if b.installed and b.licence == "not-required"]


def _reference(builder) -> float:
    prob = builder()
    prob.solve(solver="CLARABEL")
    assert prob.status == "optimal"
    return prob.value


def _close(value: float, ref: float, rtol: float = RTOL) -> bool:
    return abs(value - ref) <= rtol * max(1.0, abs(ref))


CASES = [(b, p) for b in LICENCE_FREE for p, (_, cls) in BATTERY.items()
         if get_backend(b).can_solve(cls)]


@pytest.mark.parametrize(("backend", "problem"), CASES)
def test_every_free_backend_matches_clarabel_on_its_classes(backend, problem):
    builder, _ = BATTERY[problem]
    prob = builder()
    report = solve_cvxpy(prob, [get_backend(backend)])
    assert has_solution(report.status)
    assert report.backend == backend
    assert _close(report.value, _reference(builder)), (report.value, _reference(builder))


@pytest.mark.parametrize("problem", list(BATTERY))
def test_problem_class_of_the_battery(problem):
    builder, cls = BATTERY[problem]
    assert problem_class(builder()) == cls


def test_problem_class_sees_hidden_inequalities_and_attributes():
    x, y = cp.Variable(3), cp.Variable(3, nonneg=True)
    X = cp.Variable((2, 2), PSD=True)
    assert problem_class(cp.Problem(cp.Minimize(cp.sum(cp.huber(x))))) == "QP"
    assert problem_class(cp.Problem(cp.Minimize(cp.sum(cp.power(x, 2))))) == "EQP"
    assert problem_class(cp.Problem(cp.Minimize(cp.sum_squares(y - 1)))) == "QP"
    assert problem_class(cp.Problem(cp.Minimize(cp.trace(X)), [X >> np.eye(2)])) == "SDP"


# --- lstsq ----------------------------------------------------------------------------
@pytest.mark.parametrize("problem", ["ridge_qp", "unconstrained_ls", "equality_ls"])
def test_lstsq_matches_clarabel_tightly_on_eqp(problem):
    builder, _ = BATTERY[problem]
    prob = builder()
    prob.solve(solver=LstsqSolver(device="cpu"))
    assert prob.status == "optimal"
    ref = _reference(builder)
    assert _close(prob.value, ref, 1e-8)


def test_lstsq_recovers_equality_duals_like_clarabel():
    prob = equality_ls()
    prob.solve(solver=LstsqSolver(device="cpu"))
    mine = prob.constraints[0].dual_value
    prob.solve(solver="CLARABEL")
    np.testing.assert_allclose(mine, prob.constraints[0].dual_value, rtol=1e-6, atol=1e-8)


def test_lstsq_resolves_with_new_parameter_values():
    prob = ridge_qp()
    P = prob.parameters()[0]
    prob.solve(solver=LstsqSolver(device="cpu"))
    P.value = P.value * 2.0
    value = prob.solve(solver=LstsqSolver(device="cpu"))
    assert _close(value, prob.solve(solver="CLARABEL"), 1e-8)


def test_lstsq_refuses_inequality_problems():
    with pytest.raises(cp.error.SolverError, match="inequality"):
        box_qp().solve(solver=LstsqSolver(device="cpu"))
    with pytest.raises(InvalidInputError, match="clarabel"):
        resolve("lstsq", "QP")


def test_lstsq_reports_unbounded_singular_problem():
    x = cp.Variable(2)
    prob = cp.Problem(cp.Minimize(cp.square(x[0]) - x[1]))
    prob.solve(solver=LstsqSolver(device="cpu"))
    assert prob.status == "unbounded"


# --- registry and selection -------------------------------------------------------------
def test_unknown_name_lists_known_names():
    with pytest.raises(UnknownSolverError) as info:
        get_backend("cplexx")
    for name in ("clarabel", "gurobi", "lstsq", "auto"):
        assert name in str(info.value)
    assert set(known_names()) >= {"clarabel", "osqp", "scs", "ecos", "highs", "gurobi",
                                  "mosek", "scip", "ipopt", "lstsq", "auto"}


def test_names_are_case_insensitive():
    assert get_backend("CLARABEL") is get_backend("clarabel")


def test_auto_prefers_lstsq_for_eqp_and_highs_for_lp():
    assert [b.name for b in resolve("auto", "EQP")][:2] == ["lstsq", "clarabel"]
    assert resolve(None, "LP")[0].name == "highs"
    assert all(b.licence().state == "not-required" for b in resolve("auto", "SDP"))


def test_ipopt_reports_not_installed_cleanly():
    ipopt = get_backend("ipopt")
    assert ipopt.cvxpy_name is None and ipopt.pyomo_name == "cyipopt"
    if importlib.util.find_spec("cyipopt") is None:
        assert not ipopt.installed() and not ipopt.available() and ipopt.version() is None
        with pytest.raises(SolverUnavailableError, match="pip install cyipopt"):
            resolve("ipopt", "QP")


def test_available_solvers_lists_every_backend():
    rows = {r.name: r for r in available_solvers()}
    assert set(rows) == set(known_names()) - {"auto"}
    assert rows["clarabel"].available and rows["clarabel"].version


def test_status_normalisation():
    assert from_cvxpy("user_limit") == "iteration_limit"
    assert from_cvxpy("infeasible_inaccurate") == "numerical_error"  # a guess, not a proof
    assert from_cvxpy(None) == "solver_error"
    assert {"licence_error", "time_limit", "numerical_error"} <= STATUSES


@pytest.mark.filterwarnings("ignore:Solution may be inaccurate")
def test_per_backend_options_reach_only_that_backend():
    prob = box_qp()
    report = solve_cvxpy(prob, resolve(["osqp", "clarabel"], "QP"),
                         options={"osqp": {"max_iter": 1, "polishing": False}})
    assert report.backend == "clarabel"
    assert report.attempts[0][0] == "osqp" and "iteration_limit" in report.attempts[0][1]


def test_failure_of_every_backend_lists_every_attempt_and_keeps_the_first_claim():
    """An infeasible or unbounded claim does not end the list (a later backend may still solve it: a first-order
    method's ray is a claim within its tolerances); when none solves it, the failure has that claim's status, not the
    last fallback's own failure (auto's SCS after Clarabel's "unbounded" used to make it a solver_error)."""
    x = cp.Variable(2)
    prob = cp.Problem(cp.Minimize(cp.sum(x)), [x >= 1, cp.sum(x) <= 0])
    with pytest.raises(SolverFailure) as info:
        solve_cvxpy(prob, resolve(["highs", "clarabel"], "LP"))
    assert "highs" in str(info.value) and "clarabel" in str(info.value)
    assert info.value.status == "infeasible"
    y = cp.Variable(2)
    unbounded = cp.Problem(cp.Minimize(y[0] - y[1]), [y[1] >= y[0]])
    with pytest.raises(SolverFailure) as info:
        solve_cvxpy(unbounded, resolve(["clarabel", "scs"], "LP"), options={"scs": {"no_such_option": 1}})
    assert info.value.status == "unbounded" and "clarabel" in str(info.value) and "scs" in str(info.value)


def test_a_tolerance_claim_of_unboundedness_goes_on_to_the_fallback():
    """A bounded, badly scaled QP that OSQP calls unbounded (its ray test works within tolerances): Clarabel, the
    fallback, solves it (found by a review of the change that first ended the list at any such claim)."""
    x = cp.Variable(2)
    prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(cp.multiply([1.0, 1e-4], x)) - x[1] + x[0]))
    report = solve_cvxpy(prob, resolve(["osqp", "clarabel"], "QP"))
    assert report.status == "optimal" and x.value[1] == pytest.approx(1e8, rel=1e-4)
    assert report.attempts[0][0] == "osqp" and "unbounded" in report.attempts[0][1] and report.backend == "clarabel"


# --- MOSEK without a licence ---------------------------------------------------------------
mosek_unlicensed = pytest.mark.skipif(
    not get_backend("mosek").installed() or get_backend("mosek").licence().state != "missing",
    reason="needs mosek installed without a licence file",
)


@mosek_unlicensed
def test_mosek_without_licence_is_unavailable():
    mosek = get_backend("mosek")
    assert not mosek.available()
    assert mosek.licence().state == "missing"


@mosek_unlicensed
def test_mosek_alone_raises_a_clear_licence_error():
    with pytest.raises(LicenceError) as info:
        solve_cvxpy(tiny_lp(), resolve("mosek", "LP"))
    message = str(info.value)
    assert "MOSEK" in message and "MOSEKLM_LICENSE_FILE" in message and "clarabel" in message
    assert info.value.solver == "mosek"


@mosek_unlicensed
def test_mosek_native_error_is_translated():
    try:
        tiny_lp().solve(solver="MOSEK")
    except Exception as exc:  # raw mosek.Error
        assert isinstance(get_backend("mosek").translate(exc), LicenceError)
    else:
        pytest.fail("MOSEK solved without a licence")


@mosek_unlicensed
def test_mosek_falls_back_to_clarabel():
    report = solve_cvxpy(tiny_lp(), resolve(["mosek", "clarabel"], "LP"))
    assert report.backend == "clarabel" and report.attempts[0][0] == "mosek"
    assert _close(report.value, _reference(tiny_lp))


# --- Gurobi's size-limited pip licence ------------------------------------------------------
gurobi_present = pytest.mark.skipif(importlib.util.find_spec("gurobipy") is None,
                                     reason="gurobipy not importable")


def big_lp(n: int = 2500):
    x = cp.Variable(n)
    return cp.Problem(cp.Minimize(cp.sum(x)), [x >= np.arange(n) / n])


def _gurobi_size_limited() -> bool:
    return get_backend("gurobi").licence().state == "size-limited"


@gurobi_present
def test_gurobi_over_the_size_limit_raises_licence_error_before_solving():
    if not _gurobi_size_limited():
        pytest.skip("full Gurobi licence")
    with pytest.raises(LicenceError) as info:
        solve_cvxpy(big_lp(), resolve("gurobi", "LP"))
    assert "2000" in str(info.value) and "GRB_LICENSE_FILE" in str(info.value)
    assert info.value.limit and "2000" in info.value.limit


@gurobi_present
def test_gurobi_native_size_error_is_translated():
    if not _gurobi_size_limited():
        pytest.skip("full Gurobi licence")
    prob = big_lp()
    with pytest.raises(cp.error.SolverError) as info:
        prob.solve(solver="GUROBI")
    assert isinstance(get_backend("gurobi").translate(info.value, problem=prob), LicenceError)


@gurobi_present
def test_gurobi_falls_back_to_clarabel_over_the_limit():
    report = solve_cvxpy(big_lp(), resolve(["gurobi", "clarabel"], "LP"))
    expected = "clarabel" if _gurobi_size_limited() else "gurobi"
    assert report.backend == expected
    assert _close(report.value, (2500 - 1) / 2)


@gurobi_present
def test_gurobi_solves_a_small_qp():
    report = solve_cvxpy(box_qp(), resolve("gurobi", "QP"))
    assert report.backend == "gurobi" and has_solution(report.status)
    assert _close(report.value, _reference(box_qp))


@pytest.mark.slow
def test_highs_prints_no_banner_on_stdout():
    # HiGHS writes a copyright banner from C++ when a process makes its first solver object; it would
    # break `--quiet` and any stdout a user parses. Needs a fresh process to see the first object.
    import subprocess
    import sys

    pytest.importorskip("highspy")
    code = ("import cvxpy as cp, multiconvex as mc\n"
            "x, y = cp.Variable(2), cp.Variable(2)\n"
            "p = cp.Problem(cp.Minimize(cp.sum_squares(x - 1) + x @ y + cp.sum_squares(y)), [x >= 0])\n"
            "mc.solve(p, [[x], [y]], solver='highs')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""


def test_osqp_does_not_set_up_a_bound_beyond_its_infinity(capfd):
    """A side beyond ±1e30 (a nearly flat unit's row asks z >= 3e186) makes OSQP's setup print an error and refuse:
    the backend says so without calling it, and the dispatcher's next backend takes the block."""
    from multiconvex.solvers.osqp_qp import OsqpQP
    from multiconvex.subproblem import BlockSubproblem

    sub = BlockSubproblem.from_dense(np.eye(2), np.zeros(2), A=np.ones((1, 2)), l=np.array([3e186]),
                                     u=np.array([7e202]))
    out = OsqpQP().solve(sub, {}, None)
    assert out.status == "numerical_error" and out.x is None and "infinity" in out.native_status
    assert "ERROR" not in capfd.readouterr().err
