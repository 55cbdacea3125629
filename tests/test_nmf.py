"""Specification of NMF: the batched NNLS backend, the NMF standard form, the scikit-learn-native estimator."""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import nnls
from sklearn.datasets import load_digits
from sklearn.decomposition import NMF
from sklearn.decomposition._nmf import _initialize_nmf
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import parametrize_with_checks

from multiconvex import nmf_form
from multiconvex.drivers import DriverOptions, run
from multiconvex.errors import InvalidInputError, UnknownSolverError
from multiconvex.models import NonnegativeMatrixFactorization
from multiconvex.nmf_form import NMFForm, nmf_objective
from multiconvex.solvers import make_plan, solve_subproblem
from multiconvex.solvers.nnls import NnlsQP, nnls_shared_gram
from multiconvex.subproblem import BlockSubproblem, KronTerm, make_slots


# -- data ------------------------------------------------------------------------------------------
def nonneg_low_rank(m: int, n: int, r: int, seed: int, noise: float = 0.05) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(size=(m, r)) @ rng.uniform(size=(r, n)) + noise * rng.uniform(size=(m, n))


def nnls_problem(seed: int, k: int, n_obs: int, rows: int, *, rank: int | None = None):
    """``G = AᵀA``, ``Q = −(Aᵀ B)ᵀ``: row i is ``min ½‖A x − b_i‖²`` up to a constant (scipy's NNLS)."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n_obs, k))
    if rank is not None:
        A = A[:, :rank] @ rng.standard_normal((rank, k))
    B = rng.standard_normal((n_obs, rows))
    return A, B, A.T @ A, -(A.T @ B).T


def kkt_violation(G: np.ndarray, Q: np.ndarray, X: np.ndarray) -> float:
    """Largest violation of x ≥ 0, ∇ ≥ 0 and xᵀ∇ = 0 per coordinate, relative to the data's scale."""
    grad = X @ G + Q
    scale = max(np.abs(Q).max(), np.abs(G).max() * np.abs(X).max(), 1e-300)
    return max(float(np.max(-X, initial=0.0)), float(np.max(-grad, initial=0.0)),
               float(np.max(np.abs(X * grad), initial=0.0)) / max(np.abs(X).max(), 1e-300)) / scale


def factor_block(G: np.ndarray, Q: np.ndarray, side: str, lb: np.ndarray | None = None) -> BlockSubproblem:
    """Rows of ``Q`` as a "rows" slot (r × k), or as the columns of a "cols" slot (k × r)."""
    r, k = Q.shape
    if side == "rows":
        slots, term, q = make_slots([("W", (r, k))]), KronTerm(0, 0, None, G), Q.ravel(order="F")
    else:
        slots, term, q = make_slots([("H", (k, r))]), KronTerm(0, 0, G, None), Q.T.ravel(order="F")
    return BlockSubproblem(slots, [term], q, 0.0, lb=np.zeros(r * k) if lb is None else lb)


def as_rows(x: np.ndarray, r: int, k: int, side: str) -> np.ndarray:
    return x.reshape((r, k), order="F") if side == "rows" else x.reshape((k, r), order="F").T


# -- the batched NNLS backend ----------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(12))
def test_nnls_matches_scipy_on_random_rows(seed):
    rng = np.random.default_rng(100 + seed)
    k, n_obs, rows = int(rng.integers(1, 14)), int(rng.integers(15, 30)), int(rng.integers(1, 300))
    A, B, G, Q = nnls_problem(seed, k, n_obs, rows)
    rep = nnls_shared_gram(G, Q)
    assert rep.status == "optimal", rep.how
    ref = np.array([nnls(A, B[:, i])[0] for i in range(rows)])
    np.testing.assert_allclose(rep.X, ref, atol=1e-9 * max(1.0, np.abs(ref).max()))
    assert kkt_violation(G, Q, rep.X) <= 1e-10


@pytest.mark.parametrize("seed", range(6))
def test_nnls_on_a_rank_deficient_gram_reaches_scipys_value(seed):
    A, B, G, Q = nnls_problem(seed, k=8, n_obs=20, rows=60, rank=3)
    rep = nnls_shared_gram(G, Q)
    assert rep.status == "optimal", rep.how
    for i in range(B.shape[1]):  # minimisers are not unique: compare the values
        ref = nnls(A, B[:, i])[0]
        ours = 0.5 * np.sum((A @ rep.X[i] - B[:, i]) ** 2)
        assert ours <= 0.5 * np.sum((A @ ref - B[:, i]) ** 2) + 1e-9 * max(1.0, float(B[:, i] @ B[:, i]))
    assert kkt_violation(G, Q, rep.X) <= 1e-9


@pytest.mark.parametrize("seed", range(4))
def test_nnls_on_a_large_ill_conditioned_gram_passes_its_kkt_check(seed):
    # a Gram matrix like H Hᵀ late in an NMF run: entries ~1e8, condition ~1e7 (a passive x_j at −1e-9 is
    # a gradient error of ~0.1 there: the exchange test must compare x in x's units)
    rng = np.random.default_rng(seed)
    A = rng.uniform(size=(60, 30)) @ np.diag(np.logspace(0, -3, 30)) * 1e4
    B = A @ rng.uniform(size=(30, 300)) + rng.uniform(size=(60, 300)) * 1e2
    G, Q = A.T @ A, -(A.T @ B).T
    rep = nnls_shared_gram(G, Q)
    assert rep.status == "optimal" and rep.kkt <= 1e-9, rep.how
    for i in range(0, 300, 50):
        ref = nnls(A, B[:, i], maxiter=2000)[0]
        ours = 0.5 * np.sum((A @ rep.X[i] - B[:, i]) ** 2)
        assert ours <= 0.5 * np.sum((A @ ref - B[:, i]) ** 2) * (1 + 1e-9)


@pytest.mark.parametrize("scale", [1.0, 1e-6])
@pytest.mark.parametrize("seed", range(4))
def test_nnls_rows_left_by_pivoting_are_solved_by_lawson_hanson(seed, scale):
    # a Gram matrix H Hᵀ of 24 components of rank 14 (NMF with n_components above the data's rank), a warm start
    # far from the answer, one round of pivoting: every row still infeasible goes to scipy's Lawson-Hanson
    rng = np.random.default_rng(seed)
    k, n, r, rank = 24, 20, 200, 14
    H = rng.uniform(size=(rank, n))
    H = np.vstack([H, rng.uniform(size=(k - rank, rank)) @ H]) * 1e3
    B = rng.uniform(size=(r, n)) * 10
    H, B = H * scale, B * scale  # small magnitudes: SciPy 1.12-1.14's nnls has an absolute tolerance
    G, Q = H @ H.T, -(B @ H.T)
    warm = rng.uniform(size=(r, k)) * (rng.uniform(size=(r, k)) < 0.5)
    rep = nnls_shared_gram(G, Q, warm, max_iter=1)
    assert rep.status == "optimal" and rep.kkt <= 1e-9, rep.how
    assert "by Lawson-Hanson" in rep.how
    for i in range(0, r, 20):  # minimisers are not unique: compare the values
        ref = nnls(H.T, B[i], maxiter=2000)[0]
        ours = 0.5 * np.sum((H.T @ rep.X[i] - B[i]) ** 2)
        assert ours <= 0.5 * np.sum((H.T @ ref - B[i]) ** 2) + 1e-9 * float(B[i] @ B[i])
    assert nnls_shared_gram(G, Q, warm).status == "optimal"  # the default rounds, then whatever is left


def test_nmf_above_the_datas_rank_certifies_its_blocks_by_nnls_without_a_fallback():
    # digits at the default n_components (64 > the data's rank 61): after 100 sweeps G = H Hᵀ is singular and block
    # principal pivoting from the warm start cycled on some rows; the certificate's W block then went to Clarabel
    # (a 19,200-variable QP, 4x this fit's time; 40 s on all of digits)
    X = load_digits().data[:300]
    res = NonnegativeMatrixFactorization(max_iter=100, random_state=0).fit(X).result_
    assert res.backends_used.get("nnls") == 2 and "clarabel" not in res.backends_used, res.backends_used
    assert all(np.isfinite(g) and g >= 0 for g in res.certificate.block_gaps.values())


def test_a_named_backend_that_refuses_a_qp_of_its_class_says_what_it_takes_and_not_itself():
    """nnls solves QPs of one shape only (a shared Gram matrix, finite lower bounds): given another QP (here with
    upper bounds) its refusal says what it takes, and its list of who can does not name nnls itself."""
    G = np.array([[2.0, 0.5], [0.5, 1.0]])
    sub = BlockSubproblem(make_slots([("W", (2, 2))]), [KronTerm(0, 0, None, G)], np.array([-1.0, 1.0, -2.0, -1.0]),
                          lb=np.zeros(4), ub=np.ones(4))
    assert sub.problem_class == "QP"
    with pytest.raises(InvalidInputError, match=r"'nnls' cannot take this QP block subproblem: it takes .*Gram .*"
                                                r"lower bounds.*use one of: .*daqp") as err:
        solve_subproblem(sub, make_plan("nnls"))
    assert "nnls," not in str(err.value).split("use one of:")[1]
    assert solve_subproblem(sub, make_plan("daqp")).status == "optimal"  # one of those it names does take it


def test_nnls_zero_rows_and_an_all_active_answer_are_exact_zeros():
    A, B, G, Q = nnls_problem(1, k=5, n_obs=12, rows=10)
    Q[3] = 0.0
    Q[5] = np.abs(Q[5]) + 1.0  # every gradient positive at 0: the answer is x = 0
    rep = nnls_shared_gram(G, Q)
    assert rep.status == "optimal"
    assert np.all(rep.X[3] == 0.0) and np.all(rep.X[5] == 0.0)


def test_nnls_dead_component_is_fixed_at_zero_or_proves_unbounded():
    A, B, G, Q = nnls_problem(2, k=4, n_obs=12, rows=20)
    G[2, :] = G[:, 2] = 0.0  # a component with no curvature (a zero row of H in NMF)
    Q[:, 2] = np.abs(Q[:, 2])
    rep = nnls_shared_gram(G, Q)
    assert rep.status == "optimal" and np.all(rep.X[:, 2] == 0.0)
    assert kkt_violation(G, Q, rep.X) <= 1e-10
    Q[7, 2] = -1.0  # linear and decreasing along e_2: unbounded below
    rep = nnls_shared_gram(G, Q)
    assert rep.status == "unbounded" and rep.unbounded_rows.tolist() == [7]


def test_nnls_warm_start_does_not_change_the_answer():
    _, _, G, Q = nnls_problem(3, k=9, n_obs=25, rows=200)
    cold = nnls_shared_gram(G, Q)
    rng = np.random.default_rng(0)
    for warm in (cold.X, rng.uniform(size=cold.X.shape), -np.ones(cold.X.shape)):
        hot = nnls_shared_gram(G, Q, warm)
        np.testing.assert_allclose(hot.X, cold.X, atol=1e-10)
    assert nnls_shared_gram(G, Q, cold.X).iterations == 1  # the right passive sets: one solve, no exchange


def test_nnls_large_k_uses_the_per_size_path_and_stays_exact():
    A, B, G, Q = nnls_problem(4, k=24, n_obs=40, rows=400)
    rep = nnls_shared_gram(G, Q)
    assert rep.status == "optimal"
    ref = np.array([nnls(A, B[:, i])[0] for i in range(0, 400, 37)])
    np.testing.assert_allclose(rep.X[::37], ref, atol=1e-9 * max(1.0, np.abs(ref).max()))


@pytest.mark.parametrize("side", ["rows", "cols"])
def test_auto_picks_nnls_for_a_factor_block_and_reports_its_value(side):
    _, _, G, Q = nnls_problem(5, k=6, n_obs=15, rows=40)
    sub = factor_block(G, Q, side)
    assert sub.shared_gram()[0] == side
    sol = solve_subproblem(sub, make_plan("auto"))
    assert sol.status == "optimal" and sol.backend == "nnls"
    assert sol.value == pytest.approx(sub.value(sol.x), rel=1e-10, abs=1e-10)
    ref = solve_subproblem(sub, make_plan("clarabel"))
    assert sol.value <= ref.value + 1e-7 * abs(ref.value)
    assert kkt_violation(G, Q, as_rows(sol.x, 40, 6, side)) <= 1e-10


def test_nnls_takes_finite_lower_bounds_by_a_shift():
    _, _, G, Q = nnls_problem(6, k=4, n_obs=10, rows=15)
    lb = np.random.default_rng(1).uniform(-1.0, 1.0, 60)
    sub = factor_block(G, Q, "rows", lb=lb)
    ours = solve_subproblem(sub, make_plan("nnls"))
    ref = solve_subproblem(sub, make_plan("daqp"))
    assert ours.status == "optimal" and sub.violation(ours.x) == 0.0
    np.testing.assert_allclose(ours.x, ref.x, atol=1e-8)
    assert ours.value == pytest.approx(sub.value(ours.x), rel=1e-10)


def test_nnls_declines_what_it_cannot_solve_exactly():
    _, _, G, Q = nnls_problem(7, k=3, n_obs=8, rows=5)
    solver = NnlsQP()
    assert solver.accepts(factor_block(G, Q, "rows"), auto=True)
    upper = factor_block(G, Q, "rows")
    upper.ub = np.ones(15)
    assert not solver.accepts(upper, auto=True)
    free = factor_block(G, Q, "rows")
    free.lb = np.full(15, -np.inf)
    assert not solver.accepts(free, auto=False)
    dense = BlockSubproblem.from_dense(np.eye(3), np.ones(3), lb=np.zeros(3))  # no shared Gram matrix
    assert not solver.accepts(dense, auto=False)
    assert solve_subproblem(dense, make_plan("auto")).backend != "nnls"


# -- the NMF standard form -------------------------------------------------------------------------
def test_form_block_values_are_the_objective_at_the_candidate():
    Y = nonneg_low_rank(30, 12, 3, seed=1)
    plan = make_plan("auto")
    form = NMFForm(Y, 3, solve=lambda s, w, key: solve_subproblem(s, plan, warm=w, key=key),
                   l1_W=0.3, l2_W=0.2, l1_H=0.1, l2_H=0.5)
    x = form.initial_point(0, None)
    for i, name in enumerate(["W", "H"]):
        form.prepare(i, x)
        sol = form.solve_prepared(i)
        cand = dict(x, **sol.values)
        expected = nmf_objective(Y, cand["W"], cand["H"], 0.3, 0.2, 0.1, 0.5)
        assert sol.value == pytest.approx(expected, rel=1e-12)
        assert form.subproblem(i, x).value(np.asarray(sol.values[name]).ravel(order="F")) == pytest.approx(
            expected, rel=1e-9)


def test_form_coordinate_steps_are_never_taken_for_block_optima():
    Y = nonneg_low_rank(30, 12, 3, seed=2)
    plan = make_plan("auto")
    form = NMFForm(Y, 3, solve=lambda s, w, key: solve_subproblem(s, plan, warm=w, key=key), l2_W=0.1,
                   coordinate_rtol=1e-2)
    x = form.initial_point(0, None)
    form.prepare(0, x)
    sol = form.solve_prepared(0)
    assert sol.backend == "hals" and sol.status == "optimal_inaccurate"  # never enters a block gap
    assert sol.value == pytest.approx(nmf_objective(Y, sol.values["W"], x["H"], 0.0, 0.1), rel=1e-12)
    assert sol.value < form.objective(x)
    res = run(form, x, DriverOptions(max_iters=5000, tol=1e-3))
    assert res.status == "converged" and res.certificate.is_partial_minimum
    assert set(res.backends_used) == {"hals", "nnls"} and not form.coordinate_steps


def test_form_run_near_a_perfect_fit_is_certified_without_cancellation():
    rng = np.random.default_rng(3)
    W, H = rng.uniform(size=(60, 4)), rng.uniform(size=(4, 25))
    W[W < 0.3] = 0.0  # zeros in the factors: active bounds at the optimum
    Y = W @ H + 1e-6 * rng.uniform(size=(60, 25))  # ½‖Y‖² ≈ 1e3, the fit's objective ≈ 1e-11
    plan = make_plan("auto")
    form = NMFForm(Y, 4, solve=lambda s, w, key: solve_subproblem(s, plan, warm=w, key=key))
    start = {"W": W * rng.uniform(0.9, 1.1, W.shape), "H": H}
    res = run(form, start, DriverOptions(max_iters=3000, tol=1e-6))
    # the expanded quadratic ½‖Y‖² − ⟨Y Hᵀ, W⟩ + … carries rounding ≈ 1e-13 here, far above tol · f ≈ 1e-17
    assert res.status == "converged" and res.certificate.is_partial_minimum
    assert 0 < res.objective <= 1e-12 * 0.5 * np.sum(Y**2)
    direct = nmf_objective(Y, res.values["W"], res.values["H"])
    assert res.objective == pytest.approx(direct, rel=1e-6)


# -- the estimator ---------------------------------------------------------------------------------
@parametrize_with_checks([NonnegativeMatrixFactorization(n_components=2)])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


# the default n_components (n_features) on the checks' full-rank data heads for an exact factorization that the
# relative tolerance never certifies: each fit runs to max_iter (12 s for the checks)
@pytest.mark.slow
@parametrize_with_checks([NonnegativeMatrixFactorization()])
def test_scikit_learn_estimator_checks_at_the_defaults(estimator, check):
    check(estimator)


def test_objective_not_worse_than_sklearn_cd_from_the_same_init():
    X = nonneg_low_rank(120, 40, 6, seed=4)
    for init in ("nndsvda", "random"):
        sk = NMF(6, init=init, solver="cd", random_state=0, max_iter=1000, tol=1e-4)
        Wsk = sk.fit_transform(X)
        ours = NonnegativeMatrixFactorization(6, init=init, random_state=0)
        Wo = ours.fit_transform(X)
        sk_value = nmf_objective(X, Wsk, sk.components_)
        assert ours.objective_ <= sk_value * (1 + 1e-9)
        assert ours.objective_ == pytest.approx(nmf_objective(X, Wo, ours.components_), rel=1e-10)


def test_regularisation_has_scikit_learns_meaning_and_scaling():
    X = nonneg_low_rank(50, 20, 3, seed=5)
    m, n = X.shape
    est = NonnegativeMatrixFactorization(3, init="nndsvda", alpha_W=0.01, alpha_H=0.02, l1_ratio=0.4, tol=1e-8)
    W = est.fit_transform(X)
    H = est.components_
    expected = (0.5 * np.sum((X - W @ H) ** 2) + 0.01 * 0.4 * n * W.sum() + 0.5 * 0.01 * 0.6 * n * np.sum(W**2)
                + 0.02 * 0.4 * m * H.sum() + 0.5 * 0.02 * 0.6 * m * np.sum(H**2))
    assert est.objective_ == pytest.approx(expected, rel=1e-10)
    sk = NMF(3, init="nndsvda", solver="cd", alpha_W=0.01, alpha_H=0.02, l1_ratio=0.4, max_iter=2000, tol=1e-6)
    Wsk = sk.fit_transform(X)
    sk_value = est.objective_at(X, Wsk, sk.components_)
    # scikit-learn's converged point is (nearly) stationary for our objective: the same penalties and scaling
    # (the two runs may end in different local minima, so their values are not compared)
    polish = NonnegativeMatrixFactorization(3, init="custom", alpha_W=0.01, alpha_H=0.02, l1_ratio=0.4, tol=1e-8)
    polish.fit_transform(X, W=Wsk, H=sk.components_)
    assert sk_value * (1 - 1e-4) <= polish.objective_ <= sk_value


@pytest.mark.parametrize("block_steps", ["auto", "exact"])
def test_block_steps_reach_a_certified_partial_minimum(block_steps):
    X = nonneg_low_rank(60, 20, 3, seed=12)
    est = NonnegativeMatrixFactorization(3, init="nndsvda", block_steps=block_steps, tol=1e-6).fit(X)
    assert est.result_.status == "converged" and est.result_.certificate.is_partial_minimum
    expected = {"nnls"} if block_steps == "exact" else {"hals", "nnls"}
    assert set(est.result_.backends_used) == expected


def test_certificate_is_honest_about_each_block():
    X = nonneg_low_rank(80, 30, 4, seed=6)
    est = NonnegativeMatrixFactorization(4, init="random", random_state=1, tol=1e-7, max_iter=20000).fit(X)
    cert = est.result_.certificate
    assert est.result_.status == "converged" and cert.is_partial_minimum
    W, H = est.transform(X), est.components_
    # independently: the best W for this H (scipy's NNLS per row) lowers the objective by at most the tolerance
    W_best = np.array([nnls(H.T, x)[0] for x in X])
    H_best = np.array([nnls(est._W_fit, col)[0] for col in X.T]).T
    f = est.objective_
    assert f - nmf_objective(X, W_best, H) <= cert.tolerance
    assert f - nmf_objective(X, est._W_fit, H_best) <= cert.tolerance
    np.testing.assert_allclose(W, W_best, atol=1e-6 * max(1.0, W_best.max()))
    early = NonnegativeMatrixFactorization(4, init="random", random_state=1, max_iter=2).fit(X)
    assert early.result_.status == "iteration_limit" and not early.result_.certificate.is_partial_minimum


def test_starts_are_scikit_learns():
    X = nonneg_low_rank(20, 9, 2, seed=7)
    for init in ("random", "nndsvd", "nndsvda", "nndsvdar"):
        start = NonnegativeMatrixFactorization(3, init=init, random_state=5).initial_point(X)
        W, H = _initialize_nmf(X, 3, init=init, random_state=5)
        np.testing.assert_array_equal(start["W"], W)
        np.testing.assert_array_equal(start["H"], H)


def test_custom_init_and_transform_round_trip():
    X = nonneg_low_rank(40, 15, 3, seed=8)
    W0, H0 = _initialize_nmf(X, 3, init="nndsvda")
    est = NonnegativeMatrixFactorization(init="custom", tol=1e-9, max_iter=2000)
    W = est.fit_transform(X, W=W0, H=H0)
    assert est.result_.status == "converged"
    assert est.n_components_ == 3  # "auto" from the given H
    np.testing.assert_allclose(est.transform(X), W, atol=1e-5 * W.max())  # W is optimal for the H before the last
    np.testing.assert_allclose(est.inverse_transform(W), W @ est.components_)
    assert est.get_feature_names_out().tolist() == [f"nonnegativematrixfactorization{i}" for i in range(3)]


# -- bad input: clear errors before any solve ------------------------------------------------------
@pytest.mark.parametrize(("kwargs", "X", "match"), [
    ({}, -np.ones((3, 4)), r"Negative values.*X\[0, 0\]"),
    ({}, np.array([[1.0, np.nan], [1.0, 2.0]]), "NaN"),
    ({"n_components": 0}, np.ones((3, 4)), "n_components must be an integer >= 1"),
    ({"n_components": 2.5}, np.ones((3, 4)), "n_components"),
    ({"init": "svd"}, np.ones((3, 4)), "init='svd' is not one of"),
    ({"beta_loss": "kullback-leibler"}, np.ones((3, 4)), "beta_loss='kullback-leibler' is not supported"),
    ({"n_components": 9, "init": "nndsvd"}, np.ones((3, 4)), "needs n_components <= min"),
    ({"alpha_W": -1.0}, np.ones((3, 4)), "alpha_W must be >= 0"),
    ({"l1_ratio": 2.0}, np.ones((3, 4)), r"l1_ratio must be in \[0, 1\]"),
    ({"algorithm": "newton"}, np.ones((3, 4)), "algorithm='newton'"),
    ({"block_steps": "hals"}, np.ones((3, 4)), "block_steps='hals' is not one of"),
])
def test_bad_input_is_refused_with_a_clear_error(kwargs, X, match):
    est = NonnegativeMatrixFactorization(**kwargs)
    with pytest.raises(InvalidInputError, match=match):
        est.fit(X)
    assert not hasattr(est, "components_") and not hasattr(est, "result_")


def test_unknown_solver_is_refused_by_name():
    with pytest.raises(UnknownSolverError, match="nope"):
        NonnegativeMatrixFactorization(2, solver="nope").fit(np.ones((3, 4)))


# -- the previous release's spellings --------------------------------------------------------------
def test_old_spellings_warn_and_still_work():
    X = nonneg_low_rank(25, 10, 2, seed=9)
    with pytest.warns(FutureWarning) as record:
        old = NonnegativeMatrixFactorization(rank=2, alpha=0.5, seed=3).fit(X, solver="nnls", max_iters=300)
    said = " ".join(str(w.message) for w in record)
    for new in ("n_components", "alpha_W", "random_state", "solver=", "max_iter="):
        assert new in said
    new_est = NonnegativeMatrixFactorization(2, init="random", random_state=3, alpha_W=0.5 / 10, alpha_H=0.5 / 25,
                                             max_iter=300).fit(X)
    assert old.objective_ == pytest.approx(new_est.objective_, rel=1e-9)
    with pytest.warns(FutureWarning, match="components_"):
        np.testing.assert_array_equal(old.H_, old.components_)
    with pytest.warns(FutureWarning, match="fit_transform"):
        assert old.W_.shape == (25, 2)


def test_old_fit_init_mapping_is_the_custom_start():
    X = nonneg_low_rank(25, 10, 2, seed=10)
    W0, H0 = _initialize_nmf(X, 2, init="nndsvd")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        old = NonnegativeMatrixFactorization(rank=2).fit(X, init={"W": W0, "H": H0})
    new = NonnegativeMatrixFactorization(2, init="custom")
    new.fit_transform(X, W=W0, H=H0)
    assert old.objective_ == pytest.approx(new.objective_, rel=1e-12)


def test_a_nearly_flat_coordinate_is_curvature_not_a_proof_of_unboundedness():
    """Regression: a diagonal entry below eps·k·max|G| was taken as no curvature, so a strictly convex NNLS
    (and a near-dead NMF component) was 'proven' unbounded and the whole run ended 'unbounded'."""
    rep = nnls_shared_gram(np.diag([1.0, 1e-17]), np.array([[-1.0, -1e-3]]))
    assert rep.status == "optimal" and rep.X[0] == pytest.approx([1.0, 1e14])
    rep = nnls_shared_gram(np.array([[1.0, -3e-9], [-3e-9, 1e-17]]), np.array([[-1.0, 0.0]]))
    assert rep.status == "optimal" and rep.X[0] == pytest.approx([10.0, 3e9], rel=1e-6)
    assert nnls_shared_gram(np.diag([1.0, 0.0]), np.array([[-1.0, -1e-3]])).status == "unbounded"  # exact zero

    rng = np.random.default_rng(0)
    Y = np.abs(rng.standard_normal((20, 15)))
    W, H = np.abs(rng.standard_normal((20, 3))), np.abs(rng.standard_normal((3, 15)))
    H[2] *= 1e-9  # a near-dead component
    form = NMFForm(Y, 3, solve=lambda sub, warm, key: solve_subproblem(sub, make_plan("auto"), warm=warm, key=key))
    res = run(form, {"W": W, "H": H},
              DriverOptions("gauss-seidel", max_iters=200, tol=1e-8))
    assert res.status in ("converged", "iteration_limit") and 0 <= res.objective < nmf_objective(Y, W, H)


# -- sparse data (scikit-learn's NMF takes it) ----------------------------------------------------------------------
def sparse_data(seed: int = 0) -> sp.csr_array:
    rng = np.random.default_rng(seed)
    X = sp.random_array((120, 80), density=0.08, random_state=seed, format="csr")
    X.data = rng.uniform(0.5, 2.0, X.nnz)
    return X


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
def test_sparse_data_fits_as_its_dense_form(fmt):
    X = sparse_data()
    dense = NonnegativeMatrixFactorization(4, init="nndsvda", random_state=0, tol=1e-8)
    W_dense = dense.fit_transform(X.toarray())
    ours = NonnegativeMatrixFactorization(4, init="nndsvda", random_state=0, tol=1e-8)
    W = ours.fit_transform(X.asformat(fmt))
    assert ours.result_.status == dense.result_.status == "converged"
    assert ours.result_.certificate.is_partial_minimum
    assert ours.objective_ == pytest.approx(dense.objective_, rel=1e-9)
    assert ours.reconstruction_err_ == pytest.approx(dense.reconstruction_err_, rel=1e-9)
    np.testing.assert_allclose(W, W_dense, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ours.transform(X.asformat(fmt)), ours.transform(X.toarray()), rtol=1e-9, atol=1e-12)
    assert ours.objective_at(X, W, ours.components_) == pytest.approx(ours.objective_, rel=1e-12)


def test_a_sparse_residual_is_formed_in_blocks_of_rows_with_the_dense_values(monkeypatch):
    X = sparse_data(1)
    rng = np.random.default_rng(1)
    W, H = rng.uniform(size=(120, 3)), rng.uniform(size=(3, 80))
    whole = nmf_objective(X.toarray(), W, H, 0.1, 0.2, 0.3, 0.4)
    monkeypatch.setattr(nmf_form, "RESIDUAL_CHUNK", 7 * 80 + 5)  # blocks of 7 rows, the last one short
    assert nmf_objective(X, W, H, 0.1, 0.2, 0.3, 0.4) == pytest.approx(whole, rel=1e-13)
    assert nmf_objective(sp.coo_matrix(X), W, H, 0.1, 0.2, 0.3, 0.4) == pytest.approx(whole, rel=1e-13)
    # duplicate stored entries count once, summed (scipy's meaning)
    D = sp.coo_array((np.array([1.0, 2.0]), (np.array([0, 0]), np.array([1, 1]))), shape=(2, 2))
    form = NMFForm(D, 1, solve=lambda sub, warm, key: None)
    assert form._half_norm_Y == 0.5 * 9.0


def test_bad_sparse_input_says_what_and_where():
    X = sparse_data()
    X.data[5] = -1.0
    i, j = (int(v) for v in np.argwhere(X.toarray() < 0)[0])
    with pytest.raises(InvalidInputError, match=rf"X\[{i}, {j}\] = -1 is negative \(1 negative entries"):
        NonnegativeMatrixFactorization(2).fit(X)
    X.data[5] = np.nan
    with pytest.raises(InvalidInputError, match="NaN"):
        NonnegativeMatrixFactorization(2).fit(X)


def test_a_sparse_fit_leaves_the_callers_arrays_as_they_were():
    # unsorted indices and a duplicate: scipy's sum_duplicates sorts and compacts in place, and a CSR input shares
    # its arrays with the CSR array made from it
    data, ind, ptr = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2, 0, 2, 1], dtype=np.int32), np.array([0, 3, 4])
    A = sp.csr_matrix((data, ind, ptr.astype(np.int32)), shape=(2, 3))
    nmf = NonnegativeMatrixFactorization(1, init="random", random_state=0).fit(A)
    nmf.transform(A)
    NMFForm(sp.csr_array(A), 1, solve=lambda sub, warm, key: None)
    assert data.tolist() == [1.0, 2.0, 3.0, 4.0] and ind.tolist() == [2, 0, 2, 1]
    # and the fit is the dense form's: [[2, 0, 4], [0, 4, 0]] (the duplicate summed)
    assert nmf.objective_ == pytest.approx(nmf.objective_at(np.array([[2.0, 0, 4], [0, 4, 0]]), nmf._W_fit,
                                                            nmf.components_), rel=1e-12)


def test_sparse_data_is_not_made_dense_outside_the_models():
    rng = np.random.default_rng(2)
    X = sp.random_array((3000, 2000), density=0.002, random_state=2, format="csr")  # dense: 45.8 MiB
    X.data = rng.uniform(0.5, 2.0, X.nnz)
    nmf = NonnegativeMatrixFactorization(3, init="nndsvda", random_state=0, alpha_W=1e-3, tol=1e-4)
    tracemalloc.start()
    W = nmf.fit_transform(X)
    value = nmf.objective_at(sp.csr_matrix(X), W, nmf.components_)
    got = nmf.initial_point(X)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 24 * 2**20, peak / 2**20  # 2 MiB residual blocks, the factors, the SVD's sketch
    assert value == pytest.approx(nmf.objective_, rel=1e-9)
    assert np.all(np.isfinite(got["W"])) and got["H"].shape == (3, 2000)
    # with penalties reconstruction_err_ is the residual's norm (one pass, counted in total_time)
    assert nmf.reconstruction_err_ == pytest.approx(np.linalg.norm(X.toarray() - W @ nmf.components_), rel=1e-12)


def test_an_exact_fit_reports_a_nonnegative_objective_from_its_residual():
    # ½‖X − WH‖² of a rank-1 matrix fitted exactly: the running value (the start's minus exact decreases) ended
    # at -7e-15, a sum of squares below zero; at its rounding level the candidate's residual gives the value
    res = NonnegativeMatrixFactorization(n_components=2).fit(np.ones((10, 4))).result_
    assert res.objective >= 0.0 and res.objective <= 1e-20
    assert all(v >= 0.0 for _, v in ((h.iteration, h.objective) for h in res.history))
    assert res.status == "converged" and res.certificate.is_partial_minimum  # every block gap exactly 0


def test_a_stalled_fit_warns_that_its_end_point_is_not_certified():
    # an exact rank-2 fit of data whose entries are not representable: F ≈ 1e-29, no relative certificate there
    rng = np.random.default_rng(0)
    X = rng.random((12, 2)) @ rng.random((2, 6))
    with pytest.warns(ConvergenceWarning, match="ended stalled.*not certified"):
        res = NonnegativeMatrixFactorization(n_components=2, random_state=0).fit(X).result_
    assert res.status == "stalled" and not res.certificate.is_partial_minimum


def test_tol_zero_is_taken_as_scikit_learn_takes_it_and_inverse_transform_refuses_nan():
    X = nonneg_low_rank(20, 8, 2, seed=1)
    with pytest.warns(ConvergenceWarning):
        nmf = NonnegativeMatrixFactorization(2, tol=0.0, max_iter=5, random_state=0).fit(X)
    assert nmf.result_.status == "iteration_limit"
    W = nmf.transform(X)
    W[0, 0] = np.nan
    with pytest.raises(InvalidInputError, match="inverse_transform: W contains NaN"):
        nmf.inverse_transform(W)
