"""The model zoo as scikit-learn estimators: its checks, its tools (Pipeline, cross-validation, grid search),
fit-time validation of constructor parameters, and the deprecated spellings of the old API."""

from __future__ import annotations

import logging
import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

from multiconvex.errors import InvalidInputError
from multiconvex.models import (
    BilinearProgram,
    MatrixFactorization,
    NonnegativeMatrixFactorization,
    ParallelReLUNetwork,
    ReLUClassifier,
    ReLUNetwork,
    ReLURegressor,
    svt_optimum,
)


@pytest.fixture(autouse=True)
def _silent_solver_logs():
    # scikit-learn's checks fit exact (zero-residual) data: the block-gap logger is noisy there
    logging.getLogger("multiconvex").setLevel(logging.ERROR)


def regression(n=60, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * [1.0, 10.0, 0.1][:d]  # unscaled columns: a job for StandardScaler
    y = np.abs(X[:, 0]) - 0.1 * X[:, 1] + 0.1 * rng.standard_normal(n)
    return X, y


# -- scikit-learn's own checks ---------------------------------------------------------------------------
FAST = [
    MatrixFactorization(n_components=2, max_iter=5),
    MatrixFactorization(),  # the defaults (n_components=None: min(m, n)) fit too
    ReLURegressor([4], max_iter=3, random_state=0, device="cpu"),
    ReLUNetwork(hidden_layer_sizes=[4], max_iter=3, random_state=0, device="cpu"),
]


@pytest.mark.parametrize("estimator", FAST, ids=lambda e: type(e).__name__)
def test_check_estimator_passes(estimator):
    check_estimator(estimator)


@pytest.mark.slow
@pytest.mark.parametrize("estimator", [
    ReLUClassifier([4], max_iter=3, random_state=0, device="cpu"),  # exponential-cone blocks: ~30 s
    ReLUNetwork(hidden_layer_sizes=[4], loss="softmax", max_iter=3, random_state=0, device="cpu"),
    ParallelReLUNetwork(lam=0.5, patterns=20, max_rounds=2, max_iter=5, random_state=0),  # ~25 s
], ids=lambda e: type(e).__name__)
def test_check_estimator_passes_slow(estimator):
    check_estimator(estimator)


def test_estimator_types_follow_the_loss():
    assert is_regressor(ReLURegressor()) and is_regressor(ReLUNetwork()) and is_regressor(ParallelReLUNetwork())
    assert is_classifier(ReLUClassifier()) and is_classifier(ReLUNetwork(loss="logistic"))
    assert not hasattr(ReLURegressor(), "predict_proba") and hasattr(ReLUClassifier(), "predict_proba")


# -- scikit-learn's tools ---------------------------------------------------------------------------------
def test_pipeline_with_a_scaler_under_cross_validation():
    X, y = regression()
    model = make_pipeline(StandardScaler(), ReLURegressor([4], weight_decay=1e-3, max_iter=20, random_state=0))
    scores = cross_val_score(model, X, y, cv=3)
    assert scores.shape == (3,) and np.all(scores > 0.8)


def test_grid_search_tunes_weight_decay_and_algorithm():
    X, y = regression()
    model = make_pipeline(StandardScaler(), ReLURegressor([4], max_iter=5, random_state=0))
    grid = {"reluregressor__weight_decay": [1e-3, 10.0], "reluregressor__algorithm": ["gauss-seidel", "jacobi"]}
    search = GridSearchCV(model, grid, cv=2).fit(X, y)
    assert search.best_params_["reluregressor__weight_decay"] == 1e-3  # λ = 10 flattens the network
    fitted = search.best_estimator_[-1]
    assert fitted.algorithm == search.best_params_["reluregressor__algorithm"]
    assert fitted.result_.algorithm == fitted.algorithm


def test_classifier_chooses_softmax_for_three_classes_and_gives_probabilities():
    rng = np.random.default_rng(4)
    centres = np.array([[3.0, 0.0], [-3.0, 0.0], [0.0, 3.0]])
    y = np.repeat(["a", "b", "c"], 15)
    X = centres[np.searchsorted(["a", "b", "c"], y)] + 0.5 * rng.standard_normal((45, 2))
    clf = ReLUClassifier([3], weight_decay=1e-3, max_iter=3, random_state=0).fit(X, y)
    assert clf.loss_ == "softmax" and clf.sizes_ == (2, 3, 3) and list(clf.classes_) == ["a", "b", "c"]
    P = clf.predict_proba(X)
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    np.testing.assert_array_equal(clf.classes_[P.argmax(axis=1)], clf.predict(X))
    np.testing.assert_allclose(clf.predict_log_proba(X), np.log(P), rtol=1e-8)  # log(P) rounds where P ~ 1e-6
    assert clf.score(X, y) > 0.9
    binary = ReLUClassifier([3], weight_decay=1e-3, max_iter=3, random_state=0).fit(X, y == "a")
    np.testing.assert_allclose(binary.predict_log_proba(X), np.log(binary.predict_proba(X)), rtol=1e-8)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_gradient_options_are_constructor_parameters_and_sgd_takes_minibatches():
    """``lr``, ``batch_size`` and ``block_iters`` were fit() keywords only, so GridSearchCV could not tune them, and
    ``sgd`` took the full batch by default (the same predictions as ``gd``); ``batch_size="auto"`` is MLP's
    ``min(200, N)``."""
    X, y = regression(n=300)
    kw = dict(hidden_layer_sizes=[3], max_iter=3, random_state=0, lr=0.05)
    gd, sgd = (ReLURegressor(algorithm=a, **kw).fit(X, y) for a in ("gd", "sgd"))
    assert sgd.result_.info["batch_size"] == 200 and gd.result_.info["batch_size"] is None
    assert not np.array_equal(gd.predict(X), sgd.predict(X))
    full = ReLURegressor(algorithm="sgd", batch_size=None, **kw).fit(X, y)
    np.testing.assert_array_equal(full.predict(X), gd.predict(X))  # the full batch: gd's steps
    assert ReLURegressor(algorithm="sgd", **kw).fit(X, y, lr=0.05).result_.info["lr"] == 0.05
    search = GridSearchCV(ReLURegressor(hidden_layer_sizes=[3], algorithm="adam", max_iter=2, random_state=0),
                          {"lr": [1e-3, 1e-2], "batch_size": [32, "auto"]}, cv=2).fit(X, y)
    assert set(search.best_params_) == {"lr", "batch_size"}
    hybrid = ReLURegressor(hidden_layer_sizes=[3], algorithm="adam+gauss-seidel", max_iter=2, block_iters=2,
                           random_state=0).fit(X, y)
    assert hybrid.result_.info["phases"][-1]["iterations"] <= 2
    with pytest.raises(InvalidInputError, match="batch_size"):
        ReLURegressor(algorithm="sgd", batch_size="big", **kw).fit(X, y)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_random_state_takes_scikit_learns_kinds():
    """An int, None, or a numpy RandomState / Generator (a seed drawn from it): "not an integer" before."""
    X, y = regression()
    fits = [ReLURegressor([3], max_iter=2, random_state=np.random.RandomState(5)).fit(X, y) for _ in range(2)]
    np.testing.assert_array_equal(fits[0].coefs_[0], fits[1].coefs_[0])  # equal generators, equal seeds
    rs = np.random.RandomState(5)
    first, second = (ReLURegressor([3], max_iter=2, random_state=rs).fit(X, y) for _ in range(2))
    assert not np.array_equal(first.coefs_[0], second.coefs_[0])  # one generator advances between fits
    MatrixFactorization(n_components=2, max_iter=2, random_state=np.random.default_rng(1)).fit(X)
    with pytest.raises(InvalidInputError, match="random_state"):
        ReLURegressor([3], random_state="seven").fit(X, y)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_generator_is_drawn_once_per_fit_and_not_by_the_fitted_models_certificate():
    """The start and the grow problem of one fit took a seed each from the generator (a review found it), and
    ``certificate()`` drew another; now a fit draws once, like scikit-learn's estimators, and keeps that seed."""
    X, y = regression(n=30, d=2)
    once = np.random.RandomState(3)
    once.randint(0, 2**31 - 1)
    for est, data in [(ParallelReLUNetwork(lam=0.5, max_iter=3, random_state=np.random.RandomState(3)), (X, y)),
                      (MatrixFactorization(n_components=2, algorithm="grow", max_iter=3,
                                           random_state=np.random.RandomState(3)), (X,))]:
        rs = est.random_state
        est.fit(*data)
        assert rs.get_state()[2] == once.get_state()[2]  # one draw
        np.testing.assert_array_equal(rs.get_state()[1], once.get_state()[1])
        if isinstance(est, ParallelReLUNetwork):
            est.certificate(*data)
            np.testing.assert_array_equal(rs.get_state()[1], once.get_state()[1])  # no draw


def test_a_fit_stopped_at_max_iter_warns_like_scikit_learn_and_a_converged_one_does_not():
    X, y = regression()
    for est, data in [(ReLURegressor([4], max_iter=2, random_state=0, device="cpu"), (X, y)),
                      (MatrixFactorization(n_components=2, max_iter=2, random_state=0), (X,)),
                      (NonnegativeMatrixFactorization(n_components=2, max_iter=2, random_state=0), (np.abs(X),))]:
        with pytest.warns(ConvergenceWarning, match="iteration_limit") as caught:
            est.fit(*data)
        assert est.result_.status == "iteration_limit"
        text = str(caught[0].message)  # the estimator's own parameter names, not the drivers' (max_iters)
        assert "max_iters" not in text and "increase max_iter or time_limit" in text
    hybrid = ReLURegressor([4], max_iter=2, algorithm="adam+gauss-seidel", block_iters=2, random_state=0, device="cpu")
    with pytest.warns(ConvergenceWarning, match="increase max_iter, block_iters or time_limit"):
        hybrid.fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        done = MatrixFactorization(n_components=2, max_iter=500, random_state=0).fit(X)
    assert done.result_.status == "converged"


def test_a_model_whose_fit_takes_mc_solves_keywords_names_them_when_it_warns():
    # BilinearProgram has no max_iter: fit(**kw) goes to mc.solve, so its words are mc.solve's (the hint said
    # 'increase max_iter or time_limit', parameters it does not have)
    rng = np.random.default_rng(0)
    bp = BilinearProgram(rng.normal(size=(3, 3)), rng.normal(size=3), rng.normal(size=3), x_bounds=(-1, 1),
                         y_bounds=(-1, 1), seed=0)
    with pytest.warns(ConvergenceWarning, match="increase fit's max_iters or time_limit") as caught:
        bp.fit(solver="highs", time_limit=1e-9)
    assert bp.result_.status == "time_limit"
    assert "(stopped at time_limit=1e-09s (building the blocks took " in str(caught[0].message)


def test_a_grow_fit_stopped_at_max_rounds_says_to_increase_max_rounds():
    # (found by a review) it said "increase max_iter or time_limit" after "stopped after max_rounds=1 rounds"
    Y = np.random.default_rng(0).standard_normal((12, 6))
    with pytest.warns(ConvergenceWarning, match="increase fit's max_rounds or time_limit"):
        mf = MatrixFactorization(3, lam=0.5, algorithm="grow").fit(Y, max_rounds=1)
    assert mf.result_.status == "iteration_limit" and "max_rounds=1" in mf.result_.message


def test_matrix_factorization_is_a_transformer_like_truncated_svd():
    rng = np.random.default_rng(1)
    Y = rng.standard_normal((30, 3)) @ rng.standard_normal((3, 8)) + 0.01 * rng.standard_normal((30, 8))
    mf = MatrixFactorization(n_components=3, lam=0.1, max_iter=200, tol=1e-10, random_state=0)
    codes = mf.fit_transform(Y)
    assert codes.shape == (30, 3) and mf.components_.shape == (3, 8) and mf.n_features_in_ == 8
    np.testing.assert_allclose(codes, mf.U_, atol=1e-3)  # near a partial minimum, transform(Y) is U_
    np.testing.assert_allclose(mf.inverse_transform(codes), Y, atol=0.05)
    # transform is the U block's optimum: the objective with V fixed cannot go lower
    new = rng.standard_normal((5, 3)) @ mf.components_
    U = mf.transform(new)
    base = mf.objective_at(new, U, mf.V_)
    for step in (1e-3, -1e-3):
        assert mf.objective_at(new, U + step, mf.V_) > base
    with pytest.raises(InvalidInputError, match="X has 7 features"):
        mf.transform(new[:, :7])


def test_matrix_factorization_in_a_pipeline_with_a_regressor():
    rng = np.random.default_rng(2)
    Y = rng.standard_normal((40, 2)) @ rng.standard_normal((2, 6))
    target = Y[:, 0] - Y[:, 1]
    model = make_pipeline(MatrixFactorization(n_components=2, max_iter=100, random_state=0), Ridge(alpha=1e-6))
    assert model.fit(Y, target).score(Y, target) > 0.99


def test_grow_is_a_constructor_choice_and_certifies():
    Y = np.random.default_rng(0).standard_normal((12, 9))
    mf = MatrixFactorization(lam=2.0, algorithm="grow", random_state=0).fit(Y)
    assert mf.result_.certificate.global_optimal
    assert mf.objective_ == pytest.approx(svt_optimum(Y, 2.0)[1], rel=1e-8)
    assert mf.transform(Y).shape == (12, mf.components_.shape[0])


def test_clone_and_pickle_keep_parameters_and_fitted_state():
    X, y = regression(30)
    net = ReLURegressor([3], max_iter=3, random_state=0).fit(X, y)
    assert clone(net).get_params() == net.get_params() and not hasattr(clone(net), "coefs_")
    back = pickle.loads(pickle.dumps(net))
    np.testing.assert_array_equal(back.predict(X), net.predict(X))


def test_unfitted_estimators_raise_not_fitted_error():
    X, _ = regression(5)
    for est, method in [(ReLURegressor(), "predict"), (MatrixFactorization(2), "transform"),
                        (ParallelReLUNetwork(), "predict")]:
        with pytest.raises(NotFittedError):
            getattr(est, method)(X)
        with pytest.raises(InvalidInputError):  # also multiconvex's error, as before
            getattr(est, method)(X)


# -- parameters are checked in fit, by name ----------------------------------------------------------------
@pytest.mark.parametrize("estimator, match", [
    (MatrixFactorization(2, max_iter=0), "max_iter=0"),
    (MatrixFactorization(2, tol=-1.0), "tol"),
    (MatrixFactorization(2, algorithm="als"), "algorithm='als'"),
    (MatrixFactorization(2, random_state=-3), "random_state"),
    (MatrixFactorization(0), "n_components must be >= 1"),
    (ReLURegressor([3], time_limit=0), "time_limit"),
    (ReLURegressor("wide"), "hidden_layer_sizes"),
    (ReLURegressor([3], weight_decay=-1.0), "weight_decay"),
    (ParallelReLUNetwork(hidden_layer_sizes=()), "hidden_layer_sizes"),
    (ParallelReLUNetwork(algorithm="sgd"), "algorithm='sgd'"),
    (ParallelReLUNetwork(lam=0.0), "lam"),
])
def test_bad_parameters_are_reported_by_name_at_fit(estimator, match):
    X, y = regression(12)
    with pytest.raises(InvalidInputError, match=match):
        estimator.fit(X, y)


# -- the old spellings still work for one release --------------------------------------------------------
def test_old_matrix_factorization_spellings_warn_and_give_the_same_fit():
    Y = np.random.default_rng(3).standard_normal((10, 6))
    new = MatrixFactorization(n_components=2, lam=0.5, solver="clarabel", max_iter=7, random_state=3).fit(Y)
    with pytest.warns(FutureWarning) as record:
        old = MatrixFactorization(rank=2, lam=0.5, seed=3).fit(Y, solver="clarabel", max_iters=7)
    said = " ".join(str(w.message) for w in record)
    for replacement in ("n_components=", "random_state=", "MatrixFactorization(solver=",
                        "MatrixFactorization(max_iter="):
        assert replacement in said
    np.testing.assert_array_equal(old.U_, new.U_)


def test_an_old_and_a_new_spelling_together_are_refused():
    with pytest.raises(InvalidInputError, match="pass only n_components"):
        MatrixFactorization(n_components=3, rank=2).fit(np.ones((4, 3)))


def test_old_parallel_relu_spellings_warn_and_give_the_same_fit():
    X, y = regression(16, d=2)
    new = ParallelReLUNetwork(lam=0.5, max_iter=3, random_state=0).fit(X, y, max_rounds=1)
    with pytest.warns(FutureWarning, match="hidden_layer_sizes"), pytest.warns(FutureWarning, match="random_state"), \
            pytest.warns(FutureWarning, match=r"fit\(max_iters"):
        old = ParallelReLUNetwork(subnetwork=[2, 1, 1], lam=0.5, seed=0).fit(X, y, max_iters=3, max_rounds=1)
    assert old.subnetwork_ == new.subnetwork_ == (3, 1, 1)
    np.testing.assert_array_equal(old.predict(X), new.predict(X))


def test_old_positional_factorization_calls_warn_and_still_work():
    from multiconvex.models import MatrixFactorization, NonnegativeMatrixFactorization

    Y = np.abs(np.random.default_rng(0).standard_normal((12, 8)))
    for old, new in [(MatrixFactorization(2, 0.1, 0), MatrixFactorization(2, 0.1, random_state=0)),
                     (NonnegativeMatrixFactorization(2, 0.1, 0),
                      NonnegativeMatrixFactorization(2, alpha_W=0.1 / 8, alpha_H=0.1 / 12, random_state=0,
                                                     init="random"))]:
        with pytest.warns(FutureWarning):
            old.fit(Y)
        assert old.objective_ == pytest.approx(new.fit(Y).objective_, rel=1e-9)
