"""Specification of refused fits and refits: checked before any solve, and a refused fit changes nothing."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from multiconvex.errors import InvalidInputError
from multiconvex.models import (
    MatrixFactorization,
    NonnegativeMatrixFactorization,
    ParallelReLUNetwork,
    ReLUClassifier,
    ReLUNetwork,
    ReLURegressor,
)

rng = np.random.default_rng(0)
X2, X3, X5 = (rng.standard_normal((20, d)) for d in (2, 3, 5))
y = rng.standard_normal(20)
INIT = {"W1": np.ones((2, 2)), "b1": np.zeros(2), "W2": np.ones((1, 2)), "b2": np.zeros(1)}


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unconverged tiny runs
        yield


def test_logistic_loss_refuses_three_classes():
    y3 = np.array(list("abc") * 8)
    net = ReLUNetwork(loss="logistic", hidden_layer_sizes=[3], max_iter=5)
    with pytest.raises(InvalidInputError, match=r"ReLUNetwork.fit: y has 3 classes.*loss='softmax'"):
        net.fit(rng.standard_normal((24, 2)), y3)
    assert not hasattr(net, "coefs_")


@pytest.mark.parametrize("change", [
    {"solver": "nosuch"},
    {"warm_start": True},
    pytest.param({"device": "cuda"}, marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is here")),
])
def test_refused_relu_refit_keeps_the_fitted_network(change):
    net = ReLURegressor([3], max_iter=3, random_state=0).fit(X3, y)
    before, pred = dict(vars(net)), net.predict(X3)
    net.set_params(**change)
    with pytest.raises(InvalidInputError):
        net.fit(X5, y)
    assert (net.n_features_in_, net.sizes_) == (3, (3, 3, 1))
    assert net.result_ is before["result_"] and net.coefs_ is before["coefs_"]
    net.set_params(**{k: ReLURegressor().get_params()[k] for k in change})
    np.testing.assert_array_equal(net.predict(X3), pred)


def test_refused_parallel_refit_keeps_the_fitted_network():
    net = ParallelReLUNetwork(lam=0.1, algorithm="adam").fit(X3, y, epochs=5)
    pred = net.predict(X3)
    with pytest.raises(InvalidInputError, match="nosuch"):
        net.set_params(solver="nosuch").fit(X5, y)
    assert net.n_features_in_ == 3
    np.testing.assert_array_equal(net.predict(X3), pred)


def test_refused_factorization_refit_keeps_the_fitted_factors():
    Y = rng.standard_normal((6, 4))
    mf = MatrixFactorization(n_components=2, random_state=0).fit(Y)
    with pytest.raises(InvalidInputError, match="nosuch"):
        mf.set_params(solver="nosuch").fit(rng.standard_normal((6, 5)))
    assert mf.n_features_in_ == 4 and mf.transform(Y).shape == (6, 2)


def test_a_refit_refused_after_reading_the_data_keeps_the_fitted_factors():
    """The data is read (``n_features_in_`` set) before the start is checked: a refused start changes nothing."""
    Y = rng.standard_normal((6, 4))
    mf = MatrixFactorization(n_components=2, random_state=0).fit(Y)
    with pytest.raises(InvalidInputError, match=r"init\['V'\] has shape"):
        mf.fit(rng.standard_normal((6, 5)), init={"V": np.ones((3, 3))})
    assert mf.n_features_in_ == 4 and mf.V_.shape == (4, 2) and mf.transform(Y).shape == (6, 2)
    nmf = NonnegativeMatrixFactorization(n_components=2, random_state=0, max_iter=20).fit(abs(Y))
    components = nmf.components_.copy()
    with pytest.raises(InvalidInputError, match="H has shape"):
        nmf.set_params(init="custom").fit(abs(rng.standard_normal((6, 5))), W=np.ones((6, 2)), H=np.ones((3, 5)))
    assert nmf.n_features_in_ == 4
    np.testing.assert_array_equal(nmf.components_, components)


@pytest.mark.parametrize("init, match", [
    ({**INIT, "W1": np.full((2, 2), np.nan)}, r"init\['W1'\] has non-finite"),
    ({k: v for k, v in INIT.items() if k != "b1"}, r"init lacks \['b1'\]"),
    ({**INIT, "W9": np.ones(1)}, r"init has unknown keys \['W9'\]"),
])
def test_relu_init_is_checked_before_solving(init, match):
    net = ReLURegressor([2], max_iter=3)
    with pytest.raises(InvalidInputError, match="ReLURegressor.fit: " + match):
        net.fit(X2, y, init=init)
    assert not hasattr(net, "coefs_")


def test_warm_start_refuses_other_classes():
    clf = ReLUClassifier([2], max_iter=3, warm_start=True, random_state=0).fit(X2, np.array(list("ab") * 10))
    with pytest.raises(InvalidInputError, match="warm_start=True but y has the classes"):
        clf.fit(X2, np.array(list("xy") * 10))
    assert list(clf.classes_) == ["a", "b"]


def test_adam_reports_the_time_limit_and_the_epochs_run():
    timed = ParallelReLUNetwork(lam=0.1, algorithm="adam", time_limit=0.05).fit(X2, y, epochs=10**7)
    assert timed.result_.status == "time_limit" and 0 < timed.n_iter_ < 10**7
    assert f"Adam: {timed.n_iter_} epochs" in timed.result_.message
    full = ParallelReLUNetwork(lam=0.1, algorithm="adam").fit(X2, y, epochs=7)
    assert (full.result_.status, full.n_iter_) == ("iteration_limit", 7)


@pytest.mark.parametrize("kw, match", [
    ({"epochs": -5}, "epochs=-5"), ({"epochs": 2.5}, "epochs=2.5"),
    ({"lr": -1.0}, "lr=-1.0"), ({"lr": float("nan")}, "lr=nan"),
])
def test_adam_settings_are_checked(kw, match):
    with pytest.raises(InvalidInputError, match=f"ParallelReLUNetwork.fit: {match}"):
        ParallelReLUNetwork(lam=0.1, algorithm="adam").fit(X2, y, **{"epochs": 3, **kw})


@pytest.mark.parametrize("kw, what", [({"algorithm": "adam", "batch_size": 0}, "batch_size=0"),
                                      ({"algorithm": "adam+gauss-seidel", "lr": -1.0}, "lr=-1.0"),
                                      ({"device": "cuda"}, "device='cuda'")])
def test_a_refused_option_names_the_estimators_fit(kw, what):
    if kw.get("device") == "cuda" and torch.cuda.is_available():
        pytest.skip("CUDA is here")
    with pytest.raises(InvalidInputError, match=rf"^ReLURegressor\.fit: {what}"):
        ReLURegressor([3], max_iter=2, **kw).fit(X3, y)
