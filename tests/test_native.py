"""Feels native: per-iteration callbacks, ``Result.to_dict``, cvxpy's and Pyomo's status conventions, packaging.

Real solvers on small problems; the packaging checks run Python in a subprocess so that what this test
process already imported does not hide what ``import multiconvex`` loads.
"""

import json
import math
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import cvxpy as cp
import numpy as np
import pyomo.environ as pyo
import pytest
import torch
from packaging.requirements import Requirement
from pyomo.contrib.solver.common.factory import SolverFactory as SolverFactoryV2
from pyomo.contrib.solver.common.results import SolutionStatus, TerminationCondition
from pyomo.contrib.solver.common.util import NoOptimalSolutionError, NoSolutionError
from pyomo.opt import TerminationCondition as LegacyTC

import multiconvex as mc
from multiconvex.nets import Architecture, GradientOptions, init_params, run_gradient

ROOT = Path(__file__).resolve().parents[1]


def factorization(rng, m=8, n=6, k=2, lam=0.3):
    Y = rng.standard_normal((m, k)) @ rng.standard_normal((k, n))
    U, V = cp.Variable((m, k), name="U"), cp.Variable((k, n), name="V")
    obj = 0.5 * cp.sum_squares(Y - U @ V) + lam / 2 * (cp.sum_squares(U) + cp.sum_squares(V))
    return cp.Problem(cp.Minimize(obj)), U, V


def bilinear_pyomo(x_bounds=(-1, 1)):
    Q = np.random.default_rng(3).standard_normal((4, 3))
    m = pyo.ConcreteModel()
    m.left, m.right = pyo.Block(), pyo.Block()
    m.left.x = pyo.Var(range(4), bounds=x_bounds, initialize=0.5)
    m.right.y = pyo.Var(range(3), bounds=(-1, 1), initialize=-0.5)
    m.budget = pyo.Constraint(expr=sum(m.left.x[i] for i in range(4)) <= 1.5)
    m.obj = pyo.Objective(expr=sum(Q[i, j] * m.left.x[i] * m.right.y[j] for i in range(4) for j in range(3))
                          + 0.3 * m.left.x[0] - 0.2 * m.right.y[1])
    return m


def model_values(m):
    return [v.value for v in m.component_data_objects(pyo.Var)]


# -- callbacks -------------------------------------------------------------------------------------------------------

def test_solve_calls_the_callback_once_per_iteration_with_the_best_point_loaded(rng):
    prob, U, V = factorization(rng)
    seen = []

    def callback(entry):
        seen.append((entry, prob.objective.value))  # the variables hold the best point when it runs

    res = mc.solve(prob, [[U], [V]], solver="clarabel", seed=0, max_iters=8, callback=callback)
    assert [e for e, _ in seen] == res.history[1:]
    for entry, value in seen:
        assert value == pytest.approx(entry.objective, rel=1e-9)


@pytest.mark.parametrize("algorithm", ["gauss-seidel", "jacobi"])
def test_a_truthy_callback_return_stops_the_run_as_interrupted(rng, algorithm):
    prob, U, V = factorization(rng)
    res = mc.solve(prob, [[U], [V]], algorithm=algorithm, solver="clarabel", seed=0, max_iters=50,
                   callback=lambda entry: entry.iteration >= 2)
    assert res.status == "interrupted" and "callback" in res.message
    assert res.iterations == 2 and len(res.history) == 3
    assert prob.objective.value == pytest.approx(res.objective)
    assert set(res.certificate.block_gaps) == {"U", "V"}  # certified at the returned point like any stop
    assert all(np.isfinite(g) for g in res.certificate.block_gaps.values())


def test_an_exception_in_the_callback_propagates_with_the_best_point_loaded(rng):
    prob, U, V = factorization(rng)
    entries = []

    def callback(entry):
        entries.append(entry)
        if entry.iteration == 3:
            raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        mc.solve(prob, [[U], [V]], solver="clarabel", seed=0, max_iters=50, callback=callback)
    assert prob.objective.value == pytest.approx(entries[-1].objective, rel=1e-9)


def test_a_callback_that_is_not_callable_is_refused_before_any_solve(rng):
    prob, U, V = factorization(rng)
    with pytest.raises(mc.InvalidInputError, match="callback=.*not callable"):
        mc.solve(prob, [[U], [V]], solver="clarabel", callback="print")
    assert U.value is None and V.value is None


def test_the_pyomo_callback_stops_the_run_as_interrupted():
    m = bilinear_pyomo()
    objectives = []

    def callback(entry):
        objectives.append((entry.objective, pyo.value(m.obj)))
        return True

    opt = SolverFactoryV2("multiconvex")
    results = opt.solve(m, subsolver="highs", callback=callback, raise_exception_on_nonoptimal_result=False)
    assert results.termination_condition == TerminationCondition.interrupted
    assert results.solution_status == SolutionStatus.feasible
    assert opt.result.iterations == 1 and len(objectives) == 1
    assert objectives[0][1] == pytest.approx(objectives[0][0])
    assert pyo.value(m.obj) == pytest.approx(results.incumbent_objective)
    with pytest.raises(mc.InvalidInputError, match="callback"):
        SolverFactoryV2("multiconvex").solve(bilinear_pyomo(), subsolver="highs", callback=3)


def test_the_gradient_baselines_call_the_callback_and_stop_on_a_truthy_return():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(30, 3, generator=g, dtype=torch.float64)
    T = torch.randn(30, 1, generator=g, dtype=torch.float64)
    arch = Architecture(sizes=(3, 4, 1))
    seen = []

    def callback(entry):
        seen.append(entry)
        return entry.iteration >= 5

    res, _ = run_gradient(arch, init_params(arch, 0, torch.device("cpu")), X, T, 1e-3,
                          GradientOptions(algorithm="gd", max_iters=100, callback=callback))
    assert res.status == "interrupted" and res.iterations == 5
    assert seen == res.history[1:]
    with pytest.raises(mc.InvalidInputError, match="callback"):
        run_gradient(arch, init_params(arch, 0, torch.device("cpu")), X, T, 1e-3,
                     GradientOptions(algorithm="gd", max_iters=3, callback=1.0))


# -- Result.to_dict ---------------------------------------------------------------------------------------------------

def test_a_result_is_strict_json_and_reads_back(rng):
    prob, U, V = factorization(rng)
    res = mc.solve(prob, [[U], [V]], solver="clarabel", seed=0, max_iters=200)
    res.info["weights"] = np.arange(3.0)
    res.info["opaque"] = object()
    text = json.dumps(res.to_dict(), allow_nan=False)  # strict JSON: no NaN literals
    data = json.loads(text)
    assert data["history"][0]["max_block_gap"] == "NaN"  # the start has no gap
    assert data["info"]["weights"] == [0.0, 1.0, 2.0]
    assert data["info"]["opaque"].startswith("<object object")  # any other object: its repr
    back = mc.Result.from_dict(data)
    assert back.status == res.status and back.objective == res.objective and back.iterations == res.iterations
    assert back.history == res.history
    assert back.certificate.block_gaps == res.certificate.block_gaps
    assert back.certificate.is_partial_minimum == res.certificate.is_partial_minimum
    np.testing.assert_array_equal(back.values["U"], res.values["U"])
    assert "values" not in res.to_dict(values=False)
    with pytest.raises(mc.InvalidInputError, match="format"):
        mc.Result.from_dict({"objective": 1.0})


# -- cvxpy: statuses and solver_stats ---------------------------------------------------------------------------------

def test_a_block_proven_unbounded_makes_the_cvxpy_problem_unbounded():
    u, v = cp.Variable((1, 1), name="u"), cp.Variable((1, 1), name="v")
    prob = cp.Problem(cp.Minimize(cp.sum(u @ v)), [v >= 1])
    value = prob.solve(method="multiconvex", blocks=[[u], [v]], solver="clarabel", init={u: [[1.0]], v: [[2.0]]})
    assert prob.status == cp.UNBOUNDED and value == prob.value == -math.inf
    assert mc.last_result(prob).status == "unbounded"
    maximised = cp.Problem(cp.Maximize(cp.sum(u @ v)), [v >= 1])
    mc.solve(maximised, [[u], [v]], solver="clarabel", init={u: [[1.0]], v: [[2.0]]})
    assert maximised.status == cp.UNBOUNDED and maximised.value == math.inf


@pytest.mark.parametrize("algorithm", ["gauss-seidel", "jacobi"])
def test_a_block_unbounded_at_an_infeasible_point_proves_nothing(algorithm):
    """``min x·z`` with ``z ≥ 0, z ≤ 0``: bounded, optimum 0. From a start with ``z ≠ 0`` the ``x`` block is unbounded,
    but ``z`` breaks constraints that this subproblem holds fixed: not a proof; the ``z`` block restores
    feasibility and the run ends at the optimum (it used to end "unbounded")."""
    x, z = cp.Variable(2, name="x"), cp.Variable(2, name="z")
    prob = cp.Problem(cp.Minimize(x @ z), [z >= 0, z <= 0])
    res = mc.solve(prob, [[x], [z]], solver="highs", algorithm=algorithm, init={x: [1.0, -1.0], z: [0.5, 0.7]})
    assert res.status == "converged" and res.objective == 0.0
    assert np.all(z.value == 0.0)


@pytest.mark.parametrize("algorithm", ["gauss-seidel", "jacobi"])
def test_unbounded_needs_the_other_rows_exactly_not_within_the_tolerance(algorithm):
    """At ``z = ±1e-8`` (feasible within the 1e-6 tolerance) the ``x`` block of ``min x·z, z ≥ 0, z ≤ 0`` is unbounded,
    the problem is not (optimum 0): no proof. From an ``x`` that breaks its own row ``x ≤ 0`` the proof stands: the
    subproblem holds that row, and the rows it holds fixed (``1 ≤ z ≤ 2``) hold exactly (a review found both)."""
    x, z = cp.Variable(2, name="x"), cp.Variable(2, name="z")
    prob = cp.Problem(cp.Minimize(x @ z), [z >= 0, z <= 0])
    res = mc.solve(prob, [[x], [z]], solver="clarabel", algorithm=algorithm, init={x: [1.0, -1.0], z: [1e-8, -1e-8]},
                   max_iters=20)
    assert res.status != "unbounded" and abs(res.objective) < 1e-12
    x, z = cp.Variable(2, name="x"), cp.Variable(2, name="z")
    prob = cp.Problem(cp.Minimize(x @ z), [z >= 1, z <= 2, x <= 0])
    res = mc.solve(prob, [[x], [z]], solver="highs", algorithm=algorithm, init={x: [1.0, 1.0], z: [1.5, 1.5]})
    assert res.status == "unbounded" and prob.value == -math.inf


@pytest.mark.parametrize("solver", ["auto", "clarabel", "highs"])
def test_an_unbounded_proof_survives_the_fallback_chain_and_gives_minus_inf(solver):
    """``min x·z`` with ``1 ≤ z ≤ 2`` is unbounded: with ``auto`` the first backend's proof used to go on to a fallback
    (SCS) whose own failure buried it ("solver_failure"). The result's objective is the returned point's (feasible:
    a proof needs a feasible incumbent), the problem's value ``∓inf``."""
    x, z = cp.Variable(2, name="x"), cp.Variable(2, name="z")
    prob = cp.Problem(cp.Minimize(x @ z), [z >= 1, z <= 2])
    res = mc.solve(prob, [[x], [z]], solver=solver, init={x: [1.0, -1.0], z: [1.5, 1.5]})
    assert res.status == "unbounded" and math.isfinite(res.objective)
    assert prob.status == cp.UNBOUNDED and prob.value == -math.inf
    maximised = cp.Problem(cp.Maximize(x @ z), [z >= 1, z <= 2])
    res = mc.solve(maximised, [[x], [z]], solver=solver, init={x: [1.0, -1.0], z: [1.5, 1.5]})
    assert res.status == "unbounded" and maximised.value == math.inf


def test_a_block_proven_infeasible_without_a_feasible_point_makes_the_cvxpy_problem_infeasible(rng):
    U, V = cp.Variable((3, 2), name="U"), cp.Variable((2, 3), name="V")
    prob = cp.Problem(cp.Minimize(cp.sum_squares(np.ones((3, 3)) - U @ V)), [V >= 1, cp.sum(V) <= 0])
    res = mc.solve(prob, [[U], [V]], solver="clarabel", seed=0)
    assert res.status == "infeasible" and "V" in res.message
    assert prob.status == cp.INFEASIBLE and prob.value == math.inf


def test_solver_stats_are_set_like_cvxpys(rng):
    prob, U, V = factorization(rng)
    res = mc.solve(prob, [[U], [V]], solver="clarabel", seed=0, max_iters=200)
    stats = prob.solver_stats
    assert stats.solver_name == "multiconvex"
    assert stats.num_iters == res.iterations and stats.solve_time == res.total_time
    assert stats.extra_stats is res
    assert prob.status == res.status and prob.value == res.objective


# -- Pyomo's new interface --------------------------------------------------------------------------------------------

def test_a_converged_new_interface_solve_passes_assert_optimal_termination():
    m = bilinear_pyomo()
    results = SolverFactoryV2("multiconvex").solve(m, subsolver="highs", algorithm="jacobi")
    assert results.termination_condition == TerminationCondition.convergenceCriteriaSatisfied
    assert results.solution_status == SolutionStatus.optimal
    pyo.assert_optimal_termination(results)
    assert results.extra_info.is_partial_minimum
    legacy = pyo.SolverFactory("multiconvex", subsolver="highs", algorithm="jacobi").solve(bilinear_pyomo())
    pyo.assert_optimal_termination(legacy)
    assert legacy.solver.termination_condition == LegacyTC.locallyOptimal  # a partial minimum, not global


def test_a_nonoptimal_new_interface_solve_raises_by_default_and_leaves_the_model():
    m = bilinear_pyomo()
    before = model_values(m)
    opt = SolverFactoryV2("multiconvex")
    # one Jacobi pass moves one block: the other's gap is left (one Gauss-Seidel sweep of these LP blocks already
    # ends at a partial minimum, and a run whose last certificate pass finds that ends "converged")
    with pytest.raises(NoOptimalSolutionError, match="iteration_limit"):
        opt.solve(m, subsolver="highs", max_iters=1, tol=0.0, algorithm="jacobi")
    assert model_values(m) == before
    assert opt.result.status == "iteration_limit"  # the run is still there to read
    results = opt.solve(m, subsolver="highs", max_iters=1, tol=0.0, algorithm="jacobi",
                        raise_exception_on_nonoptimal_result=False)
    assert results.termination_condition == TerminationCondition.iterationLimit
    assert results.solution_status == SolutionStatus.feasible
    assert pyo.value(m.obj) == pytest.approx(results.incumbent_objective)


def test_a_run_whose_last_certificate_pass_certifies_it_ends_converged():
    """"converged" means every block gap within the tolerance at the returned point: a run stopped by max_iters whose
    certificate pass finds that says so (it said "iteration_limit" with is_partial_minimum True)."""
    opt = SolverFactoryV2("multiconvex")
    results = opt.solve(bilinear_pyomo(), subsolver="highs", max_iters=1, tol=0.0)
    assert opt.result.status == "converged" and opt.result.certificate.is_partial_minimum
    assert "certificate pass after the last iteration" in opt.result.message
    assert results.termination_condition == TerminationCondition.convergenceCriteriaSatisfied


def test_load_solutions_false_leaves_the_model_and_the_loader_has_the_best_point():
    m = bilinear_pyomo()
    before = model_values(m)
    results = SolverFactoryV2("multiconvex").solve(m, subsolver="highs", load_solutions=False)
    assert model_values(m) == before
    results.solution_loader.load_vars()
    assert pyo.value(m.obj) == pytest.approx(results.incumbent_objective)


def test_a_pyomo_block_proven_unbounded_reports_unbounded():
    m = bilinear_pyomo(x_bounds=(None, None))
    m.budget.deactivate()
    opt = SolverFactoryV2("multiconvex")
    results = opt.solve(m, subsolver="highs", raise_exception_on_nonoptimal_result=False)
    assert results.termination_condition == TerminationCondition.unbounded
    assert opt.result.status == "unbounded"


def bilinear_pyomo_infeasible():
    m = bilinear_pyomo()
    for i in range(4):
        m.left.x[i].setlb(1.0)  # sum(x) >= 4 > 1.5 = the budget: block left has no feasible point
    return m


def test_a_pyomo_run_without_a_feasible_point_raises_no_solution_when_loading():
    m = bilinear_pyomo_infeasible()
    before = model_values(m)
    opt = SolverFactoryV2("multiconvex")
    with pytest.raises(NoSolutionError, match="no feasible point"):
        opt.solve(m, subsolver="highs", raise_exception_on_nonoptimal_result=False)
    assert model_values(m) == before
    assert opt.result.status == "infeasible"
    results = opt.solve(m, subsolver="highs", raise_exception_on_nonoptimal_result=False, load_solutions=False)
    assert results.termination_condition == TerminationCondition.locallyInfeasible
    assert results.solution_status == SolutionStatus.noSolution
    legacy = pyo.SolverFactory("multiconvex", subsolver="highs").solve(bilinear_pyomo_infeasible())
    assert legacy.solver.termination_condition == LegacyTC.infeasible  # the legacy name of locallyInfeasible


def test_tee_prints_no_nan_on_gauss_seidel_rows(capsys):
    pyo.SolverFactory("multiconvex", subsolver="highs", algorithm="gauss-seidel").solve(bilinear_pyomo(), tee=True)
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert rows and not any("nan" in row for row in rows)


# -- packaging --------------------------------------------------------------------------------------------------------

def run_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.slow
def test_import_multiconvex_loads_neither_pyomo_nor_torch():
    run_python("import multiconvex, sys; assert 'pyomo' not in sys.modules and 'torch' not in sys.modules, "
               "sorted(m for m in sys.modules if m.startswith(('pyomo', 'torch')))[:5]")


@pytest.mark.parametrize("code", [
    "import pyomo.environ as pyo; import multiconvex",  # the README's order
    "import multiconvex; import pyomo.environ as pyo",  # multiconvex first: registered when Pyomo loads
    "import multiconvex.pyomo_front; import pyomo.environ as pyo",  # explicit
])
@pytest.mark.slow
def test_pyomo_finds_the_solver_in_any_import_order(code):
    out = run_python(code + "\nfrom pyomo.contrib.solver.common.factory import SolverFactory as F\n"
                     "print(type(pyo.SolverFactory('multiconvex')).__name__, type(F('multiconvex')).__name__)")
    assert out == "LegacyMulticonvexSolver MulticonvexSolver"


def test_lazy_names_resolve_on_first_use():
    assert mc.ReLURelation.__name__ == "ReLURelation"
    assert mc.pyomo_front.MulticonvexSolver.__name__ == "MulticonvexSolver"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        mc.nope  # noqa: B018


def test_version_comes_from_the_package_metadata():
    assert mc.__version__ == metadata.version("multiconvex")
    assert SolverFactoryV2("multiconvex").version() == tuple(int(p) for p in mc.__version__.split(".")[:3])


def test_licence_typing_marker_and_torch_range_are_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "Apache-2.0"
    assert project["project"]["license-files"] == ["LICENSE"]
    licence = (ROOT / "LICENSE").read_text()
    assert "Apache License" in licence and "Version 2.0, January 2004" in licence
    assert (ROOT / "multiconvex" / "py.typed").exists()
    assert "py.typed" in project["tool"]["setuptools"]["package-data"]["multiconvex"]
    assert any(c == "Typing :: Typed" for c in project["project"]["classifiers"])
    torch_req = next(Requirement(r) for r in project["project"]["dependencies"] if r.startswith("torch"))
    assert len(torch_req.specifier) >= 2  # a range, not a pin
    assert torch_req.specifier.contains(torch.__version__.split("+")[0])  # the installed torch satisfies it


def test_an_empty_cross_section_of_coupled_blocks_is_no_proof_of_infeasibility():
    """Regression: x + y >= 3 with both blocks at 0 and x, y <= 2: each block's cross-section is empty, but
    the problem is feasible (x = y = 1.5); the run must not say 'infeasible' (nor cvxpy's status)."""
    x, y = cp.Variable(name="x"), cp.Variable(name="y")
    for algorithm in ("jacobi", "gauss-seidel"):
        prob = cp.Problem(cp.Minimize(cp.square(x - y)), [x + y >= 3, x >= 0, x <= 2, y >= 0, y <= 2])
        res = mc.solve(prob, [[x], [y]], init={"x": 0.0, "y": 0.0}, algorithm=algorithm, max_iters=20)
        assert res.status == "solver_failure" and prob.status != cp.INFEASIBLE
    prob = cp.Problem(cp.Minimize(cp.square(x - y)), [x >= 3, x <= 2, y >= 0])  # x's constraints: x alone
    res = mc.solve(prob, [[x], [y]], init={"x": 0.0, "y": 0.0})
    assert res.status == "infeasible" and prob.status == cp.INFEASIBLE
