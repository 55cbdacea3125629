"""The ReLU-network functions and estimators refuse what they would misread, say what a certificate did not
compute, keep a certificate inside ``time_limit``, and prove a neighbouring piece empty only when it is (a review of
``multiconvex.nets``)."""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pytest
import torch

from multiconvex.drivers import DriverOptions, run
from multiconvex.errors import InvalidInputError
from multiconvex.models import ReLUClassifier, ReLUNetwork, ReLURegressor
from multiconvex.nets import (
    Architecture,
    GradientOptions,
    NetForm,
    adjacent_bounds,
    certificate,
    forward,
    gradient_basis_gap,
    init_params,
    lambda_threshold,
    objective,
    parameter_jacobian,
    region_test,
    run_gradient,
    unit_batch,
)
from multiconvex.nets.certificates import partial_minimum_certificate
from multiconvex.result import Certificate

ARCH = Architecture((3, 4, 1))
rng = np.random.default_rng(0)
X = torch.tensor(rng.standard_normal((30, 3)))
T = torch.tensor(rng.standard_normal((30, 1)))
P = init_params(ARCH, 0, X.device)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unconverged tiny fits
        yield


# -- targets of the wrong shape used to broadcast into an (N, N) loss --------------------------------------------
@pytest.mark.parametrize("call", [
    lambda t: objective(ARCH, P, X, t, 1e-2),
    lambda t: certificate(ARCH, P, X, t, 1e-2),
    lambda t: run_gradient(ARCH, P, X, t, 1e-2, GradientOptions("gd", max_iters=5)),
    lambda t: NetForm(ARCH, X, t, 1e-2),
    lambda t: region_test(ARCH, P, X, t, 1e-2),
    lambda t: gradient_basis_gap(ARCH, P, X, t),
], ids=["objective", "certificate", "run_gradient", "NetForm", "region_test", "gradient_basis_gap"])
def test_targets_of_shape_n_are_refused_not_broadcast(call):
    with pytest.raises(InvalidInputError, match=r"\(30,\)"):
        call(T[:, 0])


@pytest.mark.parametrize("x, match", [
    (X.float(), "float64"), (X.numpy(), "torch tensor"), (X[:, :2], r"expected \(N, 3\)"), (X[:0], "N >= 1"),
    (torch.where(X > 1, torch.nan, X), "NaN"),
])
def test_certificate_refuses_inputs_it_would_misread(x, match):
    t = T[: len(x)] if len(x) else T[:0]
    with pytest.raises(InvalidInputError, match=match):
        certificate(ARCH, P, x, t, 1e-2)


@pytest.mark.parametrize("params, match", [
    (P[:1], "list of 2"), ([(P[0][0].T, P[0][1]), P[1]], r"expected \(4, 3\)"),
    ([(P[0][0].float(), P[0][1]), P[1]], "float64"), ([P[0][0], P[1]], r"\(W, b\) pair"),
])
def test_certificate_refuses_weights_of_another_shape(params, match):
    with pytest.raises(InvalidInputError, match=match):
        certificate(ARCH, params, X, T, 1e-2)


@pytest.mark.parametrize("kwargs, match", [
    ({"sizes": (3, 4, 1), "activation": "tanh"}, "activation='tanh'"), ({"sizes": (3, 0, 1)}, "sizes"),
    ({"sizes": (3,)}, "sizes"), ({"sizes": (3, 4, 1), "loss": "bogus"}, "loss='bogus'"),
    ({"sizes": (3, 4, 2), "loss": "logistic"}, "one output"), ({"sizes": (3, 4, 1), "bias": "no"}, "bias"),
    ({"sizes": (3, 4, 1), "negative_slope": math.nan}, "negative_slope"),
])
def test_an_architecture_the_network_cannot_be_is_refused(kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        Architecture(**kwargs)


@pytest.mark.parametrize("call, match", [
    (lambda: init_params(ARCH, "abc", X.device), "seed"),
    (lambda: run_gradient(ARCH, P, X, T, 1e-2, GradientOptions("gd", seed="abc")), "seed"),
    (lambda: lambda_threshold(X, T, 0), "H=0"),
    (lambda: certificate(ARCH, P, X, T, 1e-2, tol=-1), "tol=-1"),
    (lambda: certificate(ARCH, P, X, T, 1e-2, tol=math.nan), "tol=nan"),
    (lambda: certificate(ARCH, P, X, T, -1.0), "weight_decay=-1"),
    (lambda: list(parameter_jacobian(ARCH, P, X, trainable=[5])), "trainable"),
    (lambda: list(parameter_jacobian(ARCH, P, X, chunk=0)), "chunk"),
    (lambda: unit_batch(ARCH, P, T, 0, *forward(ARCH, P, X)[1:], units=[9]), r"units \[9\]"),
    (lambda: adjacent_bounds(ARCH, P, T, 5, *forward(ARCH, P, X)[1:], 1e-2), "layer=5"),
])
def test_bad_arguments_of_the_network_functions_are_refused_by_name(call, match):
    with pytest.raises(InvalidInputError, match=match):
        call()


def test_region_test_of_a_network_without_hidden_layers():
    arch = Architecture((3, 1))
    rt = region_test(arch, [(torch.zeros(1, 3, dtype=torch.float64), torch.zeros(1, dtype=torch.float64))], X, T,
                     0.1)
    assert rt.in_region and rt.theta_max == 0.1  # a linear model: convex, nothing to test


# -- the estimators -----------------------------------------------------------------------------------------------
Xn, yn = X.numpy(), T.numpy()[:, 0]


@pytest.mark.parametrize("make, fit_kwargs, match", [
    (lambda: ReLURegressor([2], max_iter=2, solver=5), {}, "solver=5"),
    (lambda: ReLURegressor([2], max_iter=2), {"torch_threads": 0}, "torch_threads=0"),
    (lambda: ReLURegressor([2], max_iter=2), {"budget": -5}, "budget=-5"),
    (lambda: ReLURegressor([2], max_iter=2), {"lr_schedule": "bogus"}, "lr_schedule='bogus'"),
    (lambda: ReLURegressor([2], max_iter=2, bias="no"), {}, "bias='no'"),
])
def test_estimator_options_are_checked_before_any_solve(make, fit_kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        make().fit(Xn, yn, **fit_kwargs)


def test_bias_takes_bools_and_the_integers_0_and_1():
    assert ReLURegressor([2], max_iter=2, bias=1, random_state=0).fit(Xn, yn).intercepts_ is not None
    assert ReLURegressor([2], max_iter=2, bias=0, random_state=0).fit(Xn, yn).intercepts_ is None
    assert Architecture((3, 4, 1), bias=np.int64(0)).bias is False


def test_a_regressor_refuses_labels_that_are_not_numbers():
    with pytest.raises(InvalidInputError, match="not numbers"):
        ReLURegressor([2], max_iter=2).fit(Xn, np.array(list("ab" * 15)))


def test_the_estimators_certificate_checks_its_tolerance_and_solver():
    net = ReLURegressor([2], max_iter=2, random_state=0).fit(Xn, yn)
    for kwargs, match in (({"tol": -1}, "tol=-1"), ({"tol": "a"}, "tol='a'"), ({"solver": 5}, "solver=5")):
        with pytest.raises(InvalidInputError, match=match):
            net.certificate(Xn, yn, **kwargs)


@pytest.mark.parametrize("module, match", [
    (torch.nn.Sequential(), "expected nn.Sequential"),
    (torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(5, 1)), "do not chain"),
])
def test_from_torch_refuses_a_module_that_is_not_a_network(module, match):
    with pytest.raises(InvalidInputError, match=match):
        ReLUNetwork.from_torch(module)


# -- what a certificate says -----------------------------------------------------------------------------------------
def test_a_certificate_not_computed_does_not_say_not_a_partial_minimum():
    assert str(Certificate.from_gaps({}, 0.0)).startswith("partial minimum not computed")
    assert str(Certificate.from_gaps({"a": math.nan, "b": 0.0}, 1e-6)).startswith(
        "partial minimum not proven (1 of 2 block gaps not computed)")
    assert str(Certificate.from_gaps({"a": math.nan, "b": 1.0}, 1e-6)).startswith("NOT a partial minimum")
    assert str(Certificate.from_gaps({"a": 0.0}, 1e-6)).startswith("partial minimum (")
    net = ReLURegressor([2], algorithm="adam", max_iter=2, random_state=0).fit(Xn, yn, certify=False)
    assert str(net.result_.certificate).startswith("partial minimum not computed")


def test_a_certificate_past_its_deadline_solves_nothing_and_claims_nothing():
    form = NetForm(ARCH, X, T, 1e-2)
    point = form.point_from_params(P)
    cert = partial_minimum_certificate(form, point, deadline=time.perf_counter() - 1.0)
    assert cert.block_gaps and all(math.isnan(g) for g in cert.block_gaps.values())
    assert not cert.is_partial_minimum and str(cert).startswith("partial minimum not proven")
    full = partial_minimum_certificate(form, point)  # no deadline: every gap
    assert not any(math.isnan(g) for g in full.block_gaps.values())


def test_a_gradient_fits_certificate_is_counted_in_its_time():
    net = ReLURegressor([3], algorithm="adam", max_iter=3, random_state=0, time_limit=60.0).fit(Xn, yn)
    res = net.result_
    assert res.info["certificate_time"] > 0
    assert res.total_time >= res.info["certificate_time"]
    assert not any(math.isnan(g) for g in res.certificate.block_gaps.values())  # 60 s is plenty here


def test_a_gradient_fit_with_no_time_left_does_not_certify():
    X2 = np.random.default_rng(1).standard_normal((300, 10))
    y2 = (X2[:, 0] + X2[:, 1] ** 2 > 1).astype(int) + (X2[:, 2] > 0.5)
    net = ReLUClassifier([16, 16], algorithm="adam", max_iter=2, random_state=0, time_limit=1e-9).fit(X2, y2)
    res = net.result_
    assert "certificate_time" not in res.info and "not computed" in res.message
    assert not res.certificate.is_partial_minimum


# -- the per-block path proves a neighbouring piece empty only when it is ---------------------------------------------
def test_the_per_block_path_and_the_batched_path_agree_on_a_neighbouring_piece():
    """A review's case: at this point a later unit has ``z = 2.2e-16``; the per-block path's exact ``h < 0`` test
    proved the neighbouring piece of ``layer1[2:3]`` empty where the batched path solved it (F 0.2122 < 0.2216), so
    ``executor="processes"`` (per-block) and in-process runs parted."""
    r = np.random.default_rng(0)
    Xr = r.standard_normal((60, 4))
    yr = np.abs(Xr[:, 0]) - Xr[:, 1]
    arch, Xt, Tt = ReLURegressor([5, 4])._tensors(Xr, yr, "test", fit=True)
    form = NetForm(arch, Xt, Tt, 1e-4)
    run(form, form.point_from_params(init_params(arch, 0, Xt.device)), DriverOptions(algorithm="jacobi", max_iters=2))
    point = form.final_point
    solved = {}
    for batched in (True, False):
        f = NetForm(arch, Xt, Tt, 1e-4)
        f.unit_batches = batched
        i = [b.name for b in f.blocks].index("layer1[2:3]")
        assert f.prepare(i, point, flip_boundary=True)
        solved[batched] = f.solve_prepared(i)
    assert solved[False].status == solved[True].status == "optimal"
    assert solved[False].value == pytest.approx(solved[True].value, rel=1e-12)
    assert solved[True].value < form.evaluate(point)[0]
