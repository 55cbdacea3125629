"""cvxpy blocks compiled to subproblem values: the same subproblem as cvxpy's, in the block's own variables."""

import re

import cvxpy as cp
import numpy as np
import pytest
import scipy.sparse as sp
from threadpoolctl import threadpool_info, threadpool_limits

import multiconvex as mc
from multiconvex.cvxpy_front.cross_section import CrossSection
from multiconvex.cvxpy_front.form import CvxpyForm, walk_form
from multiconvex.cvxpy_front.quadratic import compile_block
from multiconvex.cvxpy_front.sizes import block_memory, check_block_sizes
from multiconvex.solvers import dispatch


def _problem(rng):
    Y = rng.standard_normal((12, 9))
    A, B = rng.standard_normal((4, 9)), rng.standard_normal((12, 9))
    U, V = cp.Variable((12, 3), name="U"), cp.Variable((3, 9), name="V", nonneg=True)
    x, t = cp.Variable(9, name="x"), cp.Variable(name="t")
    for var in (U, V, x, t):
        var.value = np.abs(rng.standard_normal(var.shape)) if var is V else rng.standard_normal(var.shape)
    obj = (0.5 * cp.sum_squares(Y - U @ V) + 0.3 * (cp.sum_squares(U) + cp.sum_squares(V))
           + cp.sum_squares(A @ x - 1) / 4 + 2 * cp.sum(V) + x @ np.ones(9) + cp.square(cp.sum(x) - t)
           + cp.power(cp.norm(U @ np.ones(3) + B @ x, 2), 2) + 0.1 * cp.sum_squares(V @ x) + 3 * t + cp.square(t))
    return obj, U, V, x, t, A


CASES = [
    ("U", lambda U, V, x, t, A: ([U], [])),
    ("V", lambda U, V, x, t, A: ([V], [])),
    ("x with rows", lambda U, V, x, t, A: ([x], [cp.sum(x) == 1, x <= 0.5, A @ x >= -3])),
    ("U and x", lambda U, V, x, t, A: ([U, x], [x >= -1])),
    ("scalar t", lambda U, V, x, t, A: ([t], [t >= -0.25])),
]


@pytest.mark.parametrize("name,make", CASES, ids=[c[0] for c in CASES])
def test_compiled_block_is_cvxpys_subproblem(rng, name, make):
    obj, U, V, x, t, A = _problem(rng)
    block, cons = make(U, V, x, t, A)
    qb, why = compile_block(obj, cons, block)
    assert qb is not None, why
    sub = qb.subproblem()
    here = sub.stack({v.id: v.value for v in block})
    assert sub.value(here) == pytest.approx(obj.value, rel=1e-12)  # the same function, constant included
    np.testing.assert_allclose(sub.Px(here), sub.P_sparse() @ here, rtol=1e-10, atol=1e-10)
    sol = dispatch.solve(sub, dispatch.make_plan("auto"))
    ref = CrossSection("b", obj, cons, block)
    ref.set_point({v.id: v.value for v in block})
    ref.problem.solve(solver="CLARABEL")
    assert sol.status == "optimal"
    assert sol.value == pytest.approx(ref.problem.value, rel=1e-6, abs=1e-6)
    assert sub.violation(sol.x) <= 1e-8


@pytest.mark.parametrize("name,make", CASES, ids=[c[0] for c in CASES])
def test_the_class_read_from_the_structure_is_the_subproblems(rng, name, make):
    obj, U, V, x, t, A = _problem(rng)
    block, cons = make(U, V, x, t, A)
    qb, _ = compile_block(obj, cons, block)
    read = qb.structural_class()
    assert qb.problem_class == qb.subproblem().problem_class
    # read without numbers only where no row and no bound is involved ("V" is nonneg: a bound)
    assert read == (qb.problem_class if name in ("U", "U and x") and not cons else None)
    linear = compile_block(2 * cp.sum(V) + cp.sum_squares(U @ V), [], [U])[0]
    assert linear.structural_class() == linear.subproblem().problem_class == "EQP"
    affine_only = compile_block(cp.sum(U) + 3 * cp.sum(V), [], [U])[0]
    assert affine_only.structural_class() == affine_only.subproblem().problem_class == "LP"


@pytest.mark.parametrize("form", ["U @ V.T", "(V @ U.T).T", "Y.T - V @ U.T"])
def test_a_transposed_block_is_compiled(rng, form):
    """MatrixFactorization writes U @ V.T: ‖Eᵀ‖ = ‖E‖, so a transposed factor is the same least squares."""
    Y = rng.standard_normal((12, 9))
    U, V = cp.Variable((12, 3), name="U"), cp.Variable((9, 3), name="V", nonneg=True)
    U.value, V.value = rng.standard_normal((12, 3)), np.abs(rng.standard_normal((9, 3)))
    residual = {"U @ V.T": Y - U @ V.T, "(V @ U.T).T": Y - (V @ U.T).T, "Y.T - V @ U.T": Y.T - V @ U.T}[form]
    obj = cp.sum_squares(residual) + 0.5 * cp.sum_squares(V) + cp.sum(V.T @ np.ones((9, 1)))
    for block in ([U], [V]):
        qb, why = compile_block(obj, [V.T <= 2.0], block)
        assert qb is not None, why
        sub = qb.subproblem()
        here = sub.stack({v.id: v.value for v in block})
        assert sub.value(here) == pytest.approx(obj.value, rel=1e-12)
        ref = CrossSection("b", obj, [V.T <= 2.0], block)
        ref.set_point({v.id: v.value for v in block})
        ref.problem.solve(solver="CLARABEL")
        assert dispatch.solve(sub, dispatch.make_plan("auto")).value == pytest.approx(ref.problem.value, rel=1e-6)


def test_factor_blocks_share_one_gram_matrix(rng):
    Y = rng.standard_normal((30, 20))
    U, V = cp.Variable((30, 4), name="U"), cp.Variable((4, 20), name="V")
    prob = cp.Problem(cp.Minimize(cp.sum_squares(Y - U @ V) + cp.sum_squares(U) + cp.sum_squares(V)))
    res = mc.solve(prob, [[U], [V]], seed=0, max_iters=3)
    assert res.info["forms"] == {"U": "matrix", "V": "matrix"}
    assert set(res.backends_used) == {"lstsq"}
    qb, _ = compile_block(prob.objective.expr, [], [U])
    side, G = qb.subproblem().shared_gram()
    assert side == "rows" and G.shape == (4, 4)  # never a 120x120 matrix, never 600 residual variables


@pytest.mark.parametrize("objective,reason", [
    (lambda U, V, Y: cp.sum_squares(Y - U @ V) + cp.norm(U, "fro"), "Pnorm|norm|reshape|vec"),
    (lambda U, V, Y: cp.sum_squares(Y - mc.relu(U @ V)), "relu"),
    (lambda U, V, Y: cp.sum_squares(Y - U @ V) + cp.sum_squares(U[0, :]), "index"),
])
def test_blocks_outside_the_compiled_class_keep_the_cvxpy_path(rng, objective, reason):
    Y = rng.standard_normal((12, 9))
    U, V = cp.Variable((12, 12), name="U"), cp.Variable((12, 9), name="V")
    prob = cp.Problem(cp.Minimize(objective(U, V, Y)))
    res = mc.solve(prob, [[U], [V]], seed=0, max_iters=2, solver="clarabel")
    assert res.info["forms"]["U"] == "cvxpy"
    assert res.info["cvxpy_path_reasons"]["U"]

    assert re.search(reason, res.info["cvxpy_path_reasons"]["U"], re.I)


def test_a_weight_that_turns_negative_is_refused_before_any_solve(rng):
    # x * y**2: the weight of y's square is another block's value; cvxpy's DCP rules refuse it, so do we
    x, y = cp.Variable(name="x"), cp.Variable(name="y")
    with pytest.raises(mc.NotMulticonvexError):
        mc.solve(cp.Problem(cp.Minimize(cp.square(x) + x * y ** 2)), [[x], [y]])


def test_auto_takes_a_dense_method_only_for_dense_blocks(rng):
    """A nonnegative factor block is block-diagonal (one small Gram matrix per row): the batched NNLS backend takes it;
    a small dense QP goes to the active-set solver."""
    Y = np.abs(rng.standard_normal((60, 10)))
    W, H = cp.Variable((60, 3), nonneg=True, name="W"), cp.Variable((3, 10), nonneg=True, name="H")
    W.value, H.value = np.abs(rng.standard_normal((60, 3))), np.abs(rng.standard_normal((3, 10)))
    obj = cp.sum_squares(Y - W @ H)
    plan = dispatch.make_plan("auto")
    sparse_block = compile_block(obj, [], [W])[0].subproblem()
    assert dispatch.solve(sparse_block, plan).backend == "nnls"
    x = cp.Variable(60, name="x", nonneg=True)
    x.value = np.zeros(60)
    nnls_block = compile_block(cp.sum_squares(rng.standard_normal((80, 60)) @ x - 1), [], [x])[0].subproblem()
    assert dispatch.solve(nnls_block, plan).backend == "nnls"  # one dense NNLS: bounds only
    dense_block = compile_block(cp.sum_squares(rng.standard_normal((80, 60)) @ x - 1), [cp.sum(x) == 1],
                                [x])[0].subproblem()
    assert dispatch.solve(dense_block, plan).backend == "daqp"  # a row: the active-set QP solver


def test_nonneg_factorization_through_the_active_set_solver(rng):
    Y = np.abs(rng.standard_normal((15, 3)) @ rng.standard_normal((3, 10)))
    W, H = cp.Variable((15, 3), nonneg=True, name="W"), cp.Variable((3, 10), nonneg=True, name="H")
    prob = cp.Problem(cp.Minimize(cp.sum_squares(Y - W @ H) + 1e-3 * (cp.sum_squares(W) + cp.sum_squares(H))))
    res = mc.solve(prob, [[W], [H]], seed=0, tol=1e-5, max_iters=3000)
    assert res.info["forms"] == {"W": "matrix", "H": "matrix"}
    assert set(res.backends_used) <= {"nnls", "daqp", "clarabel"}
    assert res.status == "converged" and res.certificate.is_partial_minimum
    assert W.value.min() >= 0 and H.value.min() >= 0


@pytest.mark.slow
def test_jacobi_blocks_ship_to_a_process_pool_with_the_same_iterates(rng):
    Y = rng.standard_normal((20, 3)) @ rng.standard_normal((3, 15))

    def run(executor):
        U, V = cp.Variable((20, 3), name="U"), cp.Variable((3, 15), name="V")
        prob = cp.Problem(cp.Minimize(cp.sum_squares(Y - U @ V) + 0.1 * (cp.sum_squares(U) + cp.sum_squares(V))))
        return mc.solve(prob, [[U], [V]], algorithm="jacobi", seed=0, max_iters=6, executor=executor,
                        workers=2 if executor == "processes" else None)

    here, pool = run("inprocess"), run("processes")
    assert [h.objective for h in pool.history] == pytest.approx([h.objective for h in here.history], rel=1e-12)


def test_a_perfect_fit_is_valued_from_the_residuals(rng):
    """Near the optimum ½xᵀPx + qᵀx + c cancels to noise of ‖Y‖²; values come from the residuals instead.

    The gap test is relative (tol·|f|), so at f ≈ 1e-22 rounding decides and nothing is certified; what
    matters is the value: never negative, at the level of the fit, and no certificate claimed wrongly.
    """
    Y = 1e3 * rng.standard_normal((60, 3)) @ rng.standard_normal((3, 40))
    U, V = cp.Variable((60, 3), name="U"), cp.Variable((3, 40), name="V")
    res = mc.solve(cp.Problem(cp.Minimize(cp.sum_squares(Y - U @ V))), [[U], [V]], seed=0, max_iters=500)
    assert res.status in ("converged", "stalled")
    assert 0 <= res.objective < 1e-12
    if res.certificate.is_partial_minimum:
        assert all(0 <= g <= 1e-6 * res.objective for g in res.certificate.block_gaps.values())


def test_inputs_the_compiled_form_cannot_take_keep_the_cvxpy_path(rng):

    x, y = cp.Variable(5, name="x"), cp.Variable(5, name="y")
    A = sp.random(8, 5, density=0.5, random_state=0)  # sparse data
    res = mc.solve(cp.Problem(cp.Minimize(cp.sum_squares(A @ x - 1) + cp.sum_squares(x - y))), [[x], [y]])
    assert res.status == "converged" and res.info["forms"] == {"x": "matrix", "y": "matrix"}
    z, w = cp.Variable(3, bounds=[1, 2], name="z"), cp.Variable(3, name="w")  # bounds, no value yet
    # an optimum with f > 0 (z at its bound 2, w = 2.5, f = 0.75): at f = 0 only exactly zero gaps certify
    res = mc.solve(cp.Problem(cp.Minimize(cp.sum_squares(z - 1.5) + cp.sum_squares(z - w) + cp.sum_squares(w - 3))),
                   [[z], [w]], seed=0)
    assert res.status == "converged" and res.info["forms"]["z"] == "matrix"
    t, v = cp.Variable(nonneg=True, name="t"), cp.Variable(2, name="v")  # another block in a denominator
    res = mc.solve(cp.Problem(cp.Minimize(cp.quad_over_lin(v - 1, t) + cp.square(t - 1))), [[v], [t]])
    assert res.info["forms"]["v"] == "cvxpy" and "denominator" in res.info["cvxpy_path_reasons"]["v"]


def test_a_named_backend_that_cannot_take_the_blocks_is_refused_before_any_solve(rng):
    Y = np.abs(rng.standard_normal((10, 8)))
    W, H = cp.Variable((10, 2), nonneg=True, name="W"), cp.Variable((2, 8), nonneg=True, name="H")
    with pytest.raises(mc.InvalidInputError, match="lstsq.*QP.*use one of.*clarabel"):
        mc.solve(cp.Problem(cp.Minimize(cp.sum_squares(Y - W @ H))), [[W], [H]], solver="lstsq")


def test_an_ill_conditioned_block_is_not_called_unbounded():
    """Only a direction with P d = 0 and qᵀd < 0 proves a quadratic unbounded; otherwise a fallback runs."""
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.standard_normal((30, 30)))
    for cond in (1e8, 1e10, 1e12):
        P = Q @ np.diag(np.logspace(0, -np.log10(cond), 30)) @ Q.T
        sol = dispatch.solve(mc.BlockSubproblem.from_dense((P + P.T) / 2, rng.standard_normal(30)),
                             dispatch.make_plan(["lstsq", "clarabel"]))
        assert sol.status != "unbounded", (cond, sol.attempts)
    sol = dispatch.solve(mc.BlockSubproblem.from_dense(np.diag([1.0, 0.0]), np.array([1.0, 1.0])),
                         dispatch.make_plan(["lstsq", "clarabel"]))
    assert sol.status == "unbounded" and [n for n, _ in sol.attempts] == ["lstsq"]  # a proof stops the list


@pytest.mark.parametrize("order", ["x*y", "y*x", "multiply(x, y)"])
def test_a_scalar_product_with_the_block_first_keeps_the_blocks_linear_term(order):
    """Regression: with the block variable first in ``x * y`` the compiled block took its own value as the
    weight and lost its linear term, so ``min x y`` from x = 0 ended 'converged' with a false zero gap."""
    x, y = cp.Variable(name="x", bounds=[-1, 1]), cp.Variable(name="y", bounds=[1, 2])
    x.value, y.value = np.array(0.0), np.array(1.5)
    term = {"x*y": x * y, "y*x": y * x, "multiply(x, y)": cp.multiply(x, y)}[order]
    res = mc.solve(cp.Problem(cp.Minimize(term)), [[x], [y]], max_iters=20)
    assert res.objective == pytest.approx(-2.0) and res.info["forms"]["x"] == "matrix"


def _factor_block(rng, Y, rank=3, lam=0.5):
    U, V = cp.Variable((Y.shape[0], rank), name="U"), cp.Variable((rank, Y.shape[1]), name="V")
    obj = 0.5 * cp.sum_squares(Y - U @ V) + lam * (cp.sum_squares(U) + cp.sum_squares(V))
    V.value = rng.standard_normal(V.shape)
    U.value = rng.standard_normal(U.shape)
    qb, why = compile_block(obj, [], [U])
    assert qb is not None, why
    return qb, U, V, obj


def test_the_expanded_value_is_used_only_within_its_rounding_bound(rng):
    """Away from a perfect fit ½xᵀPx + qᵀx + c is returned, and it agrees with the residual form within the
    proven bound; the bound itself is far below the 10⁻³·tol the driver asks for."""
    qb, U, V, obj = _factor_block(rng, rng.standard_normal((40, 30)))
    sub = qb.subproblem()
    x = rng.standard_normal(sub.n)
    residual = qb.objective_at(x)
    fast = qb.objective_at(x, sub, rtol=1e-9)
    assert fast == sub.value(x)  # the expanded value was taken
    assert abs(fast - residual) <= qb.rounding_bound(x) <= 1e-9 * abs(residual)


def test_near_a_perfect_fit_the_value_comes_from_the_residuals(rng):
    """At an exact factorization the expanded form is rounding noise of ‖Y‖²; the bound sees it and the
    residuals give the value (here a tiny nonnegative number)."""
    U0, V0 = 1e3 * rng.standard_normal((50, 3)), rng.standard_normal((3, 40))
    Y = U0 @ V0
    U, V = cp.Variable((50, 3), name="U"), cp.Variable((3, 40), name="V")
    V.value, U.value = V0, U0
    qb, _ = compile_block(cp.sum_squares(Y - U @ V), [], [U])
    sub = qb.subproblem()
    x = sub.stack({U.id: U0})
    true = qb.objective_at(x)
    assert 0.0 <= true < 1e-12
    assert qb.rounding_bound(x) > 1e-9 * abs(sub.value(x))  # the expanded form cannot be trusted here
    assert qb.objective_at(x, sub, rtol=1e-9) == true


def test_a_compiled_form_evaluates_the_objective_as_cvxpy_does(rng):
    Y = rng.standard_normal((20, 15))
    U, V = cp.Variable((20, 3), name="U"), cp.Variable((3, 15), name="V")
    prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(Y - U @ V) + 0.3 * cp.sum_squares(U) + cp.sum(V) / 7))
    form = CvxpyForm(prob, [[U], [V]], backends_for=lambda p, n: [])
    assert form.forms == {"U": "matrix", "V": "matrix"}
    for seed in range(3):
        point = form.initial_point(seed, None)
        f, violation = form.evaluate(point)
        assert violation == 0.0 and f == pytest.approx(prob.objective.value, rel=1e-13)


def test_small_blocks_run_on_one_blas_thread_but_callbacks_see_the_users_setting(rng):
    Y = rng.standard_normal((30, 20))
    U, V = cp.Variable((30, 3), name="U"), cp.Variable((3, 20), name="V")
    prob = cp.Problem(cp.Minimize(cp.sum_squares(Y - U @ V) + cp.sum_squares(U) + cp.sum_squares(V)))
    seen = []

    def blas_threads():
        return sorted(d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas")

    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        res = mc.solve(prob, [[U], [V]], seed=0, max_iters=4, callback=lambda entry: seen.append(blas_threads()))
        after = blas_threads()
    assert before == after and max(before) == 2
    assert seen and all(s == before for s in seen)
    assert res.iterations >= 1


def test_the_front_door_walk_gives_the_form_and_the_memory_check_what_walking_again_gives(rng):
    Y = rng.standard_normal((20, 15))
    U, V, w = cp.Variable((20, 3), name="U"), cp.Variable((3, 15), name="V"), cp.Variable(15, name="w")
    prob = cp.Problem(cp.Maximize(-cp.sum_squares(Y - U @ V) - cp.norm1(w) - cp.sum_squares(V) - w @ np.ones(15)))
    blocks = [[U], [V], [w]]
    walked = walk_form(prob, blocks)  # (reg > 0 would add a norm of every block: no block compiled)
    assert [b.path for b in walked.blocks] == ["compiled", "compiled", "cvxpy"]  # norm1: not a QP term
    assert all(v.value is None for v in (U, V, w))  # the values the walk filled in are taken back
    for block, walk in zip(blocks, walked.blocks):
        assert block_memory(prob.objective.expr, [], block, walk) == block_memory(prob.objective.expr, [], block)
    check_block_sizes(prob, blocks, built=walked.blocks)
    with pytest.raises(mc.InvalidInputError, match="block 'U'"):
        check_block_sizes(prob, blocks, available=1, built=walked.blocks)
    fresh = CvxpyForm(prob, blocks, backends_for=lambda p, n: [])
    reused = CvxpyForm(prob, blocks, backends_for=lambda p, n: [], precompiled=walked)
    assert reused.forms == fresh.forms and reused.compile_notes == fresh.compile_notes
    point = fresh.initial_point(0, None)
    assert reused.evaluate(point) == fresh.evaluate(point)
    assert reused.build_time >= walked.walk_time
    with pytest.raises(ValueError, match="another problem, reg"):
        CvxpyForm(prob, blocks, backends_for=lambda p, n: [], reg=0.1, precompiled=walked)


def test_a_sum_gives_the_same_numbers_after_its_structure_is_checked_once(rng):
    # a vector added to a matrix (a row), a transposed block term and a data constant: the first call checks the
    # structure, the later ones reuse it (the same numbers, bit for bit, at any point)
    Y, b = rng.standard_normal((9, 6)), rng.standard_normal(6)
    U, V = cp.Variable((9, 2), name="U"), cp.Variable((2, 6), name="V")
    obj = cp.sum_squares(Y - U @ V + b) + cp.sum_squares((U @ V).T - Y.T) + cp.sum_squares(U)
    qb, why = compile_block(obj, [], [U])
    assert why == ""
    for seed in range(3):
        U.value, V.value = np.random.default_rng(seed).standard_normal((2, 9, 2))[0], rng.standard_normal((2, 6))
        first, again = qb.subproblem(), qb.subproblem()
        np.testing.assert_array_equal(first.q, again.q)
        assert first.c == again.c
        expected = 2 * (-(Y + b) @ V.value.T) - 2 * Y @ V.value.T  # gradient's linear part of both squares
        np.testing.assert_allclose(first.q, expected.ravel(order="F"), rtol=1e-13, atol=1e-12)
        x = first.stack({U.id: U.value})
        assert first.value(x) == pytest.approx(obj.value, rel=1e-12)


def test_the_linear_part_with_a_data_constant_has_the_numbers_of_the_transposed_product(rng):
    # the data constant's transposed copy (made once) gives what the product with the transposed view gives
    Y = rng.standard_normal((40, 7))
    U, V = cp.Variable((40, 3), name="U"), cp.Variable((3, 7), name="V")
    U.value, V.value = rng.standard_normal((40, 3)), rng.standard_normal((3, 7))
    for block, expected in (([U], -(V.value @ Y.T)), ([V], -(Y.T @ U.value))):
        qb, _ = compile_block(0.5 * cp.sum_squares(Y - U @ V), [], block)
        q = qb.subproblem().q
        np.testing.assert_allclose(q, expected.ravel(), rtol=1e-14, atol=1e-14)
        assert qb.subproblem().q.tobytes() == q.tobytes()  # and again, from the kept copy
