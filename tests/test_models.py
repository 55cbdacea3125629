"""Specification of multiconvex.models: ground truths, cvxpy hand-back, input checks, fits."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
from scipy.optimize import linprog
from sklearn.decomposition import NMF
from sklearn.decomposition._nmf import _initialize_nmf

from multiconvex.errors import InvalidInputError
from multiconvex.models import (
    BilinearProgram,
    CvxpyModel,
    MatrixFactorization,
    NonnegativeMatrixFactorization,
    SingleReLUNeuron,
    svt_optimum,
)


# -- data --------------------------------------------------------------------------
def low_rank_plus_noise(m: int, n: int, r: int, noise: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, r)) @ rng.standard_normal((r, n)) + noise * rng.standard_normal(
        (m, n)
    )


def nonneg_low_rank(m: int, n: int, r: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(size=(m, r)) @ rng.uniform(size=(r, n)) + 0.05 * rng.uniform(size=(m, n))


# -- svt_optimum: the closed-form ground truth ---------------------------------------------
def test_svt_optimum_matches_nuclear_norm_program():
    Y = low_rank_plus_noise(12, 8, 2, 0.3, seed=0)
    lam = 1.5
    X_svt, value = svt_optimum(Y, lam)
    X = cp.Variable(Y.shape)
    prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(Y - X) + lam * cp.normNuc(X)))
    prob.solve(solver=cp.CLARABEL)
    assert value == pytest.approx(prob.value, rel=1e-5)
    np.testing.assert_allclose(X_svt, X.value, atol=1e-4)


def test_svt_optimum_value_is_objective_at_its_point():
    Y = low_rank_plus_noise(9, 7, 3, 0.5, seed=1)
    lam = 0.8
    X, value = svt_optimum(Y, lam)
    direct = 0.5 * np.sum((Y - X) ** 2) + lam * np.linalg.norm(X, "nuc")
    assert value == pytest.approx(direct, rel=1e-12)


def test_svt_optimum_is_zero_when_lam_exceeds_largest_singular_value():
    Y = low_rank_plus_noise(6, 5, 2, 0.1, seed=2)
    X, value = svt_optimum(Y, np.linalg.norm(Y, 2) * 1.01)
    assert np.all(X == 0)
    assert value == pytest.approx(0.5 * np.sum(Y**2))


# -- to_cvxpy: the problem handed back is the model ---------------------------------------
def test_matrix_factorization_cvxpy_objective_matches_numpy():
    Y = low_rank_plus_noise(7, 5, 2, 0.1, seed=3)
    mf = MatrixFactorization(n_components=3, lam=0.7, random_state=0)
    cm = mf.to_cvxpy(Y)
    assert isinstance(cm, CvxpyModel)
    assert [[v.name() for v in b] for b in cm.blocks] == [["U"], ["V"]]
    start = mf.initial_point(Y)
    cm.set_values(start, where="test")
    assert cm.problem.objective.value == pytest.approx(
        mf.objective_at(Y, start["U"], start["V"]), rel=1e-12
    )


def test_nmf_cvxpy_objective_matches_numpy_and_variables_are_nonneg():
    Y = nonneg_low_rank(8, 6, 2, seed=5)
    # the l2 penalty 0.3 on both factors: alpha_W = 0.3 / n_features, alpha_H = 0.3 / n_samples
    nmf = NonnegativeMatrixFactorization(n_components=2, init="random", alpha_W=0.3 / 6, alpha_H=0.3 / 8,
                                         random_state=1)
    cm = nmf.to_cvxpy(Y)
    assert all(v.is_nonneg() for v in cm.variables.values())
    start = nmf.initial_point(Y)
    assert min(a.min() for a in start.values()) >= 0
    cm.set_values(start, where="test")
    assert cm.problem.objective.value == pytest.approx(
        nmf.objective_at(Y, start["W"], start["H"]), rel=1e-12
    )


def test_nmf_initial_point_is_scikit_learns_random_init():
    Y = nonneg_low_rank(8, 6, 2, seed=6)
    start = NonnegativeMatrixFactorization(n_components=3, init="random", random_state=7).initial_point(Y)
    W, H = _initialize_nmf(Y, 3, init="random", random_state=7)
    np.testing.assert_allclose(start["W"], W)
    np.testing.assert_allclose(start["H"], H)


def test_bilinear_cvxpy_objective_matches_numpy():
    bp = BilinearProgram.random(n=4, m=3, seed=8)
    cm = bp.to_cvxpy()
    start = bp.feasible_point()
    cm.set_values(start, where="test")
    assert cm.problem.objective.value == pytest.approx(bp.objective_at(start["x"], start["y"]))
    assert all(c.value() for c in cm.problem.constraints)  # the start is feasible


def test_single_neuron_cvxpy_objective_matches_numpy():
    neuron = SingleReLUNeuron(alpha=2.0)
    cm = neuron.to_cvxpy()
    assert [[v.name() for v in b] for b in cm.blocks] == [["a", "b"]]
    for a0, b0 in [(-1.4, 0.6), (3.0, 0.4), (0.3, -0.2), (-5.0, -1.0)]:
        cm.set_values({"a": a0, "b": b0}, where="test")
        assert cm.problem.objective.value == pytest.approx(neuron.objective_at(a0, b0))


# -- the single neuron's closed forms -----------------------------------------------------
@pytest.mark.parametrize("alpha", [1.2, 2.0, 5.0])
def test_single_neuron_local_minima_values(alpha):
    neuron = SingleReLUNeuron(alpha=alpha)
    (p1, v1), (p2, v2) = neuron.local_minima()
    assert p1 == (0.5 - alpha, 0.5) and v1 == 4 * alpha**2
    assert p2 == (2 * alpha - 0.5, 0.5) and v2 == alpha**2
    assert neuron.objective_at(*p1) == pytest.approx(v1)
    assert neuron.objective_at(*p2) == pytest.approx(v2)


@pytest.mark.parametrize(
    "alpha, expected",
    [(3.0, lambda a: a**2), (1.5, lambda a: 1.5 * (a - 1 / 3) ** 2)],
)
def test_single_neuron_global_minimum_switches_near_1_8165(alpha, expected):
    _, value = SingleReLUNeuron(alpha=alpha).global_minimum()
    assert value == pytest.approx(expected(alpha), rel=1e-7)


# -- input checks: before any solve ------------------------------------------------------
@pytest.mark.parametrize(
    "Y, match",
    [
        (np.array([[1.0, np.nan], [0.0, 1.0]]), "NaN"),
        (np.array([[1.0, np.inf], [0.0, 1.0]]), "infinity"),
        (np.ones(5), "Expected 2D array"),
        (np.ones((0, 3)), "0 sample"),
        ("not a matrix", "could not convert"),
    ],
)
def test_matrix_factorization_rejects_bad_data(Y, match):
    with pytest.raises(InvalidInputError, match=match):
        MatrixFactorization(n_components=2, lam=0.1).fit(Y)


@pytest.mark.parametrize("rank", [0, -1, 2.5, True])
def test_factorizations_reject_bad_rank(rank):
    # the deprecated rank= is still checked (with its FutureWarning)
    Y = np.ones((3, 3))
    with pytest.raises(InvalidInputError, match="rank"), pytest.warns(FutureWarning, match="rank"):
        MatrixFactorization(rank=rank).fit(Y)
    with pytest.raises(InvalidInputError, match="rank"), pytest.warns(FutureWarning, match="rank"):
        NonnegativeMatrixFactorization(rank=rank).fit(Y)


def test_factorizations_reject_negative_penalty():
    Y = np.ones((3, 3))
    with pytest.raises(InvalidInputError, match="lam must be >= 0"):
        MatrixFactorization(n_components=1, lam=-0.1).fit(Y)
    with pytest.raises(InvalidInputError, match="alpha must be >= 0"), pytest.warns(FutureWarning, match="alpha"):
        NonnegativeMatrixFactorization(n_components=1, alpha=-1.0).fit(Y)  # the deprecated alpha= is still checked


def test_nmf_rejects_negative_entries_and_says_where():
    Y = np.ones((3, 4))
    Y[1, 2] = -0.5
    with pytest.raises(InvalidInputError, match=r"negative.*\(1, 2\)"):
        NonnegativeMatrixFactorization(n_components=1).fit(Y)


def test_init_with_wrong_shape_is_rejected():
    with pytest.raises(InvalidInputError, match="shape"):
        MatrixFactorization(n_components=2, lam=0.1).fit(np.ones((4, 3)), init={"U": np.ones((3, 2))})


@pytest.mark.parametrize("alpha", [1.0, 0.5, -2.0, np.nan, np.inf, "2"])
def test_single_neuron_rejects_alpha_not_above_one(alpha):
    with pytest.raises(InvalidInputError, match="alpha"):
        SingleReLUNeuron(alpha=alpha).fit(init=(0.0, 0.5))


def test_single_neuron_rejects_bad_init():
    with pytest.raises(InvalidInputError, match="init"):
        SingleReLUNeuron(alpha=2.0).fit(init=(0.0, np.nan))


def test_bilinear_rejects_shape_mismatch_and_empty_box():
    bp = BilinearProgram.random(n=3, m=2, seed=0)
    with pytest.raises(InvalidInputError, match="A1 has 4 columns"):
        bp.set_params(A1=np.ones((2, 4))).fit()
    bp = BilinearProgram.random(n=3, m=2, seed=0).set_params(x_bounds=(1.0, 0.0))
    with pytest.raises(InvalidInputError, match="x_bounds is empty"):
        bp.fit()


def test_bilinear_rejects_infeasible_instance():
    bp = BilinearProgram(np.eye(2), np.zeros(2), np.zeros(2), A1=np.ones((1, 2)), b1=np.array([-1.0]))
    with pytest.raises(InvalidInputError, match="no feasible x"):
        bp.fit()


def test_estimators_store_hyper_parameters_as_given():
    mf = MatrixFactorization(n_components=3, lam=0.5, random_state=4, solver=["daqp", "clarabel"])
    params = mf.get_params()
    assert (params["n_components"], params["lam"], params["random_state"]) == (3, 0.5, 4)
    assert params["solver"] == ["daqp", "clarabel"] and params["max_iter"] is None
    # scikit-learn's repr: the parameters that differ from their defaults
    expected = "MatrixFactorization(lam=0.5,n_components=3,random_state=4,solver=['daqp','clarabel'])"
    assert "".join(repr(mf).split()) == expected
    assert NonnegativeMatrixFactorization(2).set_params(alpha=0.1).alpha == 0.1


# -- fits (real solvers) -------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ["gauss-seidel", "jacobi"])
def test_matrix_factorization_reaches_svt_optimum(algorithm):
    Y = low_rank_plus_noise(30, 20, 3, 0.1, seed=10)
    lam = 2.0
    X_star, value = svt_optimum(Y, lam)
    assert np.linalg.matrix_rank(X_star, tol=1e-8) == 3
    mf = MatrixFactorization(n_components=4, lam=lam, algorithm=algorithm, solver="clarabel", max_iter=500,
                             tol=1e-12, random_state=0).fit(Y)
    assert mf.objective_ == pytest.approx(value, rel=1e-6)
    assert mf.objective_at(Y, mf.U_, mf.V_) == pytest.approx(value, rel=1e-6)
    np.testing.assert_allclose(mf.X_, X_star, atol=1e-3)
    assert mf.polar_ <= lam * (1 + 1e-3)  # H&V global certificate
    assert mf.components_.shape == (4, 20)


def test_nmf_decreases_objective_keeps_factors_nonneg_and_matches_sklearn():
    Y = nonneg_low_rank(25, 15, 3, seed=11)
    m, n = Y.shape
    alpha = 0.5
    nmf = NonnegativeMatrixFactorization(n_components=3, init="random", alpha_W=alpha / n, alpha_H=alpha / m,
                                         random_state=0, solver="clarabel", max_iter=200, tol=1e-9)
    start = nmf.initial_point(Y)
    W, H = nmf.fit_transform(Y), nmf.components_
    assert W.min() >= 0 and H.min() >= 0
    assert nmf.objective_ < nmf.objective_at(Y, start["W"], start["H"])
    assert nmf.reconstruction_err_ == pytest.approx(np.linalg.norm(Y - W @ H))
    history = nmf.result_.objectives
    assert all(b <= a + 1e-9 * abs(a) for a, b in zip(history, history[1:]))

    sk = NMF(
        n_components=3, solver="cd", init="random", random_state=0,
        alpha_W=alpha / n, alpha_H=alpha / m, l1_ratio=0.0, max_iter=2000, tol=1e-8,
    )
    W_sk = sk.fit_transform(Y)
    sk_value = nmf.objective_at(Y, W_sk, sk.components_)
    assert nmf.objective_ <= sk_value * 1.03


@pytest.mark.parametrize("alpha", [1.5, 3.0])
@pytest.mark.parametrize("which", [0, 1])
def test_single_neuron_started_near_a_local_minimum_stops_there(alpha, which):
    neuron = SingleReLUNeuron(alpha=alpha)
    (a_star, b_star), value = neuron.local_minima()[which]
    neuron.fit(init=(a_star + 0.1, b_star + 0.1), solver="clarabel")
    assert neuron.a_ == pytest.approx(a_star, abs=1e-5)
    assert neuron.b_ == pytest.approx(b_star, abs=1e-5)
    assert neuron.objective_ == pytest.approx(value, rel=1e-6)
    assert neuron.result_.certificate.is_partial_minimum


def test_bilinear_program_with_highs_reaches_certified_partial_minimum():
    bp = BilinearProgram.random(n=6, m=4, seed=12)
    bp.fit(solver="highs", max_iters=100)
    cert = bp.result_.certificate
    assert cert.is_partial_minimum
    assert all(abs(g) <= 1e-6 for g in cert.block_gaps.values())
    assert bp.objective_ == pytest.approx(bp.objective_at(bp.x_, bp.y_), abs=1e-7)
    # Independent check: each block is an optimal LP solution with the other fixed.
    box = [(0.0, 1.0)] * 6
    x_lp = linprog(bp.c + bp.Q @ bp.y_, A_ub=bp.A1, b_ub=bp.b1, bounds=box, method="highs")
    y_lp = linprog(bp.d + bp.Q.T @ bp.x_, A_ub=bp.A2, b_ub=bp.b2, bounds=box, method="highs")
    assert x_lp.fun + bp.d @ bp.y_ == pytest.approx(bp.objective_, abs=1e-7)
    assert y_lp.fun + bp.c @ bp.x_ == pytest.approx(bp.objective_, abs=1e-7)


def test_single_neuron_accepts_named_init_and_seeded_start_keeps_unit_alive():
    neuron = SingleReLUNeuron(alpha=3.0)
    neuron.fit(init={"a": -2.4, "b": 0.6}, solver="clarabel")
    assert neuron.objective_ == pytest.approx(36.0, rel=1e-6)
    for seed in range(5):
        assert SingleReLUNeuron(alpha=3.0, seed=seed).initial_point()["b"] >= 0
    seeded = SingleReLUNeuron(alpha=3.0, seed=0).fit(solver="clarabel")
    assert seeded.objective_ < 0.25 + 9.0 + 36.0  # not the all-dead plateau sum(y**2)


def test_fit_is_reproducible_for_a_seed():
    Y = low_rank_plus_noise(10, 8, 2, 0.1, seed=13)
    fits = [MatrixFactorization(n_components=2, lam=0.5, solver="clarabel", random_state=3).fit(Y) for _ in range(2)]
    np.testing.assert_array_equal(fits[0].U_, fits[1].U_)
    np.testing.assert_array_equal(fits[0].V_, fits[1].V_)



def test_the_polar_after_a_block_fit_is_the_residuals_spectral_norm_without_a_full_svd():
    """Past ``mf_polar.DENSE_LIMIT`` (100) on the smaller side ``polar_`` comes from the block iteration / Lanczos:
    LAPACK's 2-norm of the residual to rounding, at a point that is not an optimum (the top values not separated)."""
    rng = np.random.default_rng(0)
    Y = rng.standard_normal((260, 140))
    mf = MatrixFactorization(n_components=3, lam=1.0, max_iter=3, random_state=0).fit(Y)
    assert mf.polar_ == pytest.approx(np.linalg.norm(Y - mf.U_ @ mf.V_.T, ord=2), rel=1e-10)
