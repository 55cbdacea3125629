"""Specification of ReLUNetwork and multiconvex.nets: layer blocks in torch, baselines, certificates."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import multiconvex as mc
from multiconvex.errors import InvalidInputError
from multiconvex.models import ReLUClassifier, ReLUNetwork, ReLURegressor
from multiconvex.nets import (
    Architecture,
    LayerBlock,
    block_data,
    forward,
    gradient_basis_gap,
    init_params,
    lambda_threshold,
    loss_change_fraction,
    normalised_curvature,
    objective,
    region_test,
)
from multiconvex.nets.network import flatten, unflatten

#: Every device-parametrised test runs on the CPU, and on CUDA where there is one.
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                reason="no CUDA device here"))]


def teacher_data(n: int, sizes=(5, 8, 8, 1), seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, sizes[0]))
    arch = Architecture(tuple(sizes))
    with torch.no_grad():  # a seeded random network as the teacher
        f = forward(arch, init_params(arch, 99, torch.device("cpu")), torch.as_tensor(X))[0].numpy()[:, 0]
    y = 3 * f + 0.1 * rng.standard_normal(n)
    return X, y


# -- the block subproblem is the network on its piece ----------------------------------------------
@pytest.mark.parametrize("loss,activation", [("squared", "relu"), ("softmax", "leaky_relu")])
def test_block_affine_map_reproduces_the_network_on_its_piece(loss, activation):
    arch = Architecture((3, 4, 5, 2), loss=loss, activation=activation,
                        negative_slope=0.1 if activation == "leaky_relu" else 0.0)
    gen = torch.Generator().manual_seed(2)
    X = torch.randn(30, 3, dtype=torch.float64, generator=gen)
    params = init_params(arch, 1, X.device)
    out, pre, inputs = forward(arch, params, X)
    T = torch.zeros(30, 2, dtype=torch.float64)
    T[:, 0] = 1

    block = LayerBlock(0, (1, 3), whole_layer=False)
    data = block_data(arch, params, T, block, pre, inputs)
    # move the block a little: outputs on the fixed piece are A θ + c, pre-activations G θ + h keep their sign
    theta = data.theta0 + 1e-3 * torch.randn(data.theta0.shape, dtype=torch.float64, generator=gen)
    W, b = params[0]
    W2, b2 = W.clone(), b.clone()
    rows = theta.reshape(2, -1)
    W2[[1, 3]], b2[[1, 3]] = rows[:, :-1], rows[:, -1]
    moved = [(W2, b2)] + params[1:]
    new_out = forward(arch, moved, X, patterns=[(z >= 0).double() for z in pre[:-1]])[0]
    if loss == "squared":
        # ½‖Aθ − r‖² = ½‖Rθ − d‖² + const: compare differences between two points
        def sq(p):
            return 0.5 * ((forward(arch, p, X, patterns=[(z >= 0).double() for z in pre[:-1]])[0] - T) ** 2).sum()
        lhs = sq(moved) - sq(params)
        rhs = 0.5 * ((data.R @ theta - data.d) ** 2).sum() - 0.5 * ((data.R @ data.theta0 - data.d) ** 2).sum()
        assert float(lhs) == pytest.approx(float(rhs), rel=1e-8, abs=1e-12)
    else:
        torch.testing.assert_close((data.A @ theta + data.c).reshape(30, 2), new_out)
    sign_rows = data.G @ data.theta0 + data.h
    assert bool((sign_rows >= -1e-12).all())  # the current point is on its own piece


# -- drivers on the torch form -------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("algorithm", ["jacobi", "gauss-seidel"])
def test_block_drivers_reach_a_partial_minimum(algorithm, device):
    X, y = teacher_data(60)
    tol = 1e-6 if algorithm == "gauss-seidel" else 1e-4  # relative (tol·|f|, f ≈ 0.015); Jacobi is slower
    # Gauss–Seidel with the default solver (DAQP: exact vertices, samples exactly on their kinks). With Clarabel the
    # two-piece test stopped it after 196 sweeps at F = 0.02028, a point from which F still falls; certified over every
    # adjacent piece, Clarabel's points (samples within the boundary tolerance but off their kinks, which the bound
    # pays for) stall at F = 0.01484 after ~800 sweeps, not proven. DAQP converges after 183 at F = 0.01457.
    net = ReLURegressor([8, 8], weight_decay=1e-2, random_state=0, device=device, algorithm=algorithm,
                        solver="auto" if algorithm == "gauss-seidel" else "clarabel", max_iter=300, tol=tol)
    net.fit(X, y)
    res = net.result_
    assert res.status == "converged"
    assert res.certificate.is_partial_minimum
    assert res.certificate.max_gap <= tol * abs(res.objective)
    assert np.all(np.diff(res.objectives) <= 1e-12)  # monotone
    assert res.objective == pytest.approx(net.objective(X, y), rel=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["jacobi", "gauss-seidel"])
def test_block_drivers_reach_a_partial_minimum_on_200_samples(algorithm):
    X, y = teacher_data(200)
    # tol is relative (tol·|F|, F ≈ 0.006 here): 1e-4 is the old absolute 1e-6 in scale. The default solver (DAQP):
    # with Clarabel the neighbouring-piece solves end numerical_error at N = 200 and Jacobi (one block a pass) needs
    # well over 500 passes to certify every adjacent piece (the two-piece test stopped it at F = 0.005973; DAQP's
    # run converges at 0.005716, Gauss–Seidel at 0.005655)
    net = ReLURegressor([8, 8], weight_decay=1e-3, random_state=0, algorithm=algorithm, solver="auto",
                        max_iter=500, tol=1e-4)
    net.fit(X, y)
    assert net.result_.status == "converged"
    assert net.result_.certificate.max_gap <= 1e-4 * abs(net.result_.objective)


def test_to_cvxpy_gives_the_same_first_iterate():
    X, y = teacher_data(40, sizes=(3, 4, 4, 1))
    net = ReLURegressor([4, 4], weight_decay=1e-2, random_state=0, algorithm="jacobi", solver="clarabel", max_iter=1)
    cm = net.to_cvxpy(X, y)  # before fit: the architecture is read from (X, y)
    res = mc.solve(cm.problem, cm.blocks, algorithm="jacobi", solver="clarabel", max_iters=1)
    ours = net.fit(X, y, block_size="layer").result_
    assert ours.history[0].objective == pytest.approx(res.history[0].objective, rel=1e-10)
    assert ours.history[1].accepted_block == res.history[1].accepted_block.replace("W", "layer").split(",")[0] \
        or ours.objective == pytest.approx(res.objective, rel=1e-6)
    assert ours.objective == pytest.approx(res.objective, rel=1e-6)
    for name, val in res.values.items():
        np.testing.assert_allclose(ours.values[name], val, atol=1e-5)


@pytest.mark.parametrize("loss", ["logistic", "softmax"])
def test_classification_blocks_are_exponential_cone_programs_and_certify(loss):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((40, 2))
    y = (X[:, 0] * X[:, 1] > 0).astype(int) if loss == "logistic" else (np.argmax(X @ rng.standard_normal((2, 3)), 1))
    net = ReLUClassifier([5], weight_decay=1e-2, random_state=0, solver="clarabel", max_iter=100, tol=1e-5)
    net.fit(X, y)
    assert net.loss_ == loss and net.sizes_ == (2, 5, 1 if loss == "logistic" else 3)
    assert net.result_.certificate.is_partial_minimum
    assert net.result_.backends_used == {"clarabel": net.result_.backends_used["clarabel"]}
    assert net.score(X, y) > 0.6
    assert set(net.predict(X)) <= set(y)


# -- baselines share the Result format; certificates apply to them --------------------------------
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("algorithm", ["gd", "sgd", "adam", "lbfgs"])
def test_gradient_baselines_return_the_same_result_format(algorithm, device):
    X, y = teacher_data(50, sizes=(3, 6, 1))
    net = ReLURegressor([6], weight_decay=1e-2, random_state=0, device=device, algorithm=algorithm, max_iter=50)
    net.fit(X, y, batch_size=16, lr=0.05 if algorithm != "adam" else 0.01)
    res = net.result_
    assert res.algorithm == algorithm and res.iterations == 50
    assert res.history[0].iteration == 0 and res.history[-1].iteration == 50
    assert res.objectives[-1] < res.objectives[0]
    assert {name.split("[")[0] for name in res.certificate.block_gaps} == {"layer1", "layer2"}  # every layer certified
    assert res.objective == pytest.approx(net.objective(X, y), rel=1e-12)


def test_gd_limit_certified_by_block_solves():
    X, y = teacher_data(20, sizes=(2, 3, 1), seed=2)
    net = ReLURegressor([3], weight_decay=0.0, random_state=2, algorithm="gd", max_iter=3000, solver="clarabel")
    net.fit(X, y, lr=0.3, grad_tol=1e-9)
    assert net.result_.info["grad_norm"] <= 1e-9
    assert net.result_.certificate.is_partial_minimum  # R&R Thm 6.3: a stationary limit is a partial minimum


def test_certificate_takes_the_estimators_tolerance_and_agrees_with_the_fits():
    """``net.certificate(X, y)`` used tol=1e-6 and "auto" whatever the estimator's: a fit with tol=1e-3 ended a
    certified partial minimum and its certificate() said it was not. Both now measure at the returned point with the
    estimator's tolerance (the fit's was also taken at the sweep's start objective, not the returned point's)."""
    X, y = teacher_data(40, sizes=(2, 4, 1), seed=1)
    net = ReLURegressor([4], weight_decay=1e-3, random_state=0, tol=1e-3, max_iter=400).fit(X, y)
    fit = net.result_.certificate
    again = net.certificate(X, y)
    assert net.result_.status == "converged" and fit.is_partial_minimum and again.is_partial_minimum
    assert again.tolerance == pytest.approx(1e-3 * net.result_.objective, rel=1e-12)
    assert fit.tolerance == pytest.approx(again.tolerance, rel=1e-12)
    assert net.certificate(X, y, tol=0.0).tolerance == 0.0


# -- torch round trip --------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("activation,bias", [("relu", True), ("leaky_relu", False)])
def test_from_torch_to_torch_round_trips_exactly(activation, bias, device):
    X, y = teacher_data(30, sizes=(4, 5, 3, 2))
    net = ReLURegressor([5, 3], activation=activation, negative_slope=0.2, bias=bias, random_state=3,
                        device=device, algorithm="gd", max_iter=3)
    net.fit(X, np.c_[y, -y], certify=False)
    module = net.to_torch(dtype=torch.float64)
    back = ReLURegressor.from_torch(module, device=device)
    assert back.hidden_layer_sizes == (5, 3) and back.sizes_ == (4, 5, 3, 2) and back.n_features_in_ == 4
    for a, b in zip(net.coefs_, back.coefs_):
        assert np.array_equal(a, b)
    assert back.activation == activation and back.bias == bias
    with torch.no_grad():
        out = module(torch.as_tensor(X, device=device)).cpu().numpy()
    if device == "cpu":
        np.testing.assert_array_equal(out, net.predict(X))
    else:  # cuBLAS's fused addmm and our matmul + add may round differently
        np.testing.assert_allclose(out, net.predict(X), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(back.predict(X), net.predict(X))


def test_to_torch_defaults_to_torchs_dtype_and_takes_float32_inputs():
    X, y = teacher_data(30, sizes=(3, 4, 1))
    net = ReLURegressor([4], weight_decay=1e-2, random_state=0, max_iter=5).fit(X, y)
    module = net.to_torch()
    assert all(p.dtype == torch.get_default_dtype() == torch.float32 for p in module.parameters())
    with torch.no_grad():
        out = module(torch.as_tensor(X, dtype=torch.float32)).numpy()[:, 0]
    np.testing.assert_allclose(out, net.predict(X), rtol=1e-4, atol=1e-5)  # float32 rounding only
    assert all(p.dtype == torch.float64 for p in net.to_torch(dtype=torch.float64).parameters())
    with pytest.raises(InvalidInputError, match="dtype"):
        net.to_torch(dtype=torch.int32)


def test_from_torch_rejects_other_modules():
    with pytest.raises(InvalidInputError, match="Sequential"):
        ReLUNetwork.from_torch(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Tanh(), torch.nn.Linear(2, 1)))


def test_bad_input_is_rejected_before_any_solve():
    X, y = teacher_data(10, sizes=(3, 2, 1))
    with pytest.raises(InvalidInputError, match="loss='hinge'"):
        ReLUNetwork(hidden_layer_sizes=[2], loss="hinge").fit(X, y)
    with pytest.raises(InvalidInputError, match="algorithm='rmsprop'"):
        ReLURegressor([2], algorithm="rmsprop").fit(X, y)
    with pytest.raises(InvalidInputError, match="hidden_layer_sizes"):
        ReLURegressor([2, 0]).fit(X, y)
    with pytest.raises(InvalidInputError, match="max_iter=0"):
        ReLURegressor([2], max_iter=0).fit(X, y)
    with pytest.raises(InvalidInputError, match="NaN"):
        ReLURegressor([2]).fit(np.where(X > 1, np.nan, X), y)
    with pytest.raises(mc.UnknownSolverError):
        ReLURegressor([2], solver="cplexx").fit(X, y)
    fitted = ReLURegressor([2], max_iter=1).fit(X, y)
    with pytest.raises(InvalidInputError, match="X has 4 features"):
        fitted.predict(np.c_[X, X[:, 0]])


def test_the_deprecated_spellings_still_fit_the_same_network_with_a_warning():
    X, y = teacher_data(20, sizes=(3, 2, 1))
    with pytest.warns(FutureWarning) as record:
        old = ReLUNetwork([3, 4, 1], weight_decay=1e-2, seed=0).fit(X, y, algorithm="jacobi", max_iters=2)
    said = " ".join(str(w.message) for w in record)
    for replacement in ("hidden_layer_sizes=", "random_state=", "ReLUNetwork(algorithm=", "ReLUNetwork(max_iter="):
        assert replacement in said
    new = ReLUNetwork(hidden_layer_sizes=[4], weight_decay=1e-2, random_state=0, algorithm="jacobi", max_iter=2)
    np.testing.assert_array_equal(new.fit(X, y).predict(X), old.predict(X))
    with pytest.warns(FutureWarning), pytest.raises(InvalidInputError, match="features"):
        ReLUNetwork([4, 2, 1]).fit(X, y)  # the old sizes still fix the input dimension


# -- K&K gradient-basis gap ----------------------------------------------------------------------
def test_gradient_basis_gap_vanishes_at_converged_gd_and_not_at_start():
    X, y = teacher_data(20, sizes=(2, 3, 1), seed=2)
    net = ReLURegressor([3], weight_decay=0.0, random_state=2, algorithm="gd", max_iter=1)
    start = net.fit(X, y, lr=1e-12, certify=False).gradient_basis_gap(X, y)
    net.set_params(max_iter=3000).fit(X, y, lr=0.3, grad_tol=1e-9, certify=False)
    assert net.result_.info["grad_norm"] <= 1e-9  # full-batch GD has converged
    end = net.gradient_basis_gap(X, y)
    assert start.relative_gap > 1e-2
    assert end.relative_gap <= 1e-6


def test_gradient_basis_gap_of_a_fixed_feature_model_is_zero_at_its_critical_point():
    arch = Architecture((3, 6, 1))
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(25, 3, dtype=torch.float64, generator=gen)
    T = torch.randn(25, 1, dtype=torch.float64, generator=gen)
    params = init_params(arch, 0, X.device)
    _, pre, inputs = forward(arch, params, X)
    feats = torch.cat([inputs[1], torch.ones(25, 1, dtype=torch.float64)], 1)
    # the critical point of the last layer (basis-function model)
    coef = torch.linalg.lstsq(feats, T, driver="gelsd").solution
    params = [params[0], (coef[:-1].T.contiguous(), coef[-1].clone())]
    gap = gradient_basis_gap(arch, params, X, T, trainable=[1])
    assert gap.gap <= 1e-10 * gap.loss
    moved = [params[0], (params[1][0] + 0.1, params[1][1])]
    assert gradient_basis_gap(arch, moved, X, T, trainable=[1]).gap > 1e-4


# -- Milne ---------------------------------------------------------------------------------------
def test_region_test_matches_the_bound_by_hand():
    arch = Architecture((2, 2, 2, 1), bias=False)  # H = 2
    W1 = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=torch.float64)  # ‖W1‖₂ = 2
    W2 = torch.tensor([[1.0, 0.0], [0.0, 0.5]], dtype=torch.float64)  # ‖W2‖₂ = 1
    W3 = torch.tensor([[1.0, 1.0]], dtype=torch.float64)  # ‖W3‖₂ = √2
    X = torch.tensor([[1.0, 0.0], [0.0, 3.0]], dtype=torch.float64)  # r = 3
    # outputs: x1 -> relu([2,0]) -> relu([2,0]) -> 2 ; x2 -> [0,3] -> [0,1.5] -> 1.5
    T = torch.tensor([[1.0], [1.5]], dtype=torch.float64)
    rt = region_test(arch, [(W1, None), (W2, None), (W3, None)], X, T, weight_decay=100.0)
    loss = 0.5 * ((2 - 1) ** 2 + 0) / 2  # ℓ = (1/2N) Σ (f − y)² = 1/4
    assert rt.loss == pytest.approx(loss) and rt.r == pytest.approx(3.0) and rt.H == 2
    assert rt.w_norm == pytest.approx(2.0)
    expected = 100.0 - np.sqrt(2) * 2 * 3 * 3.0 * np.sqrt(loss) * 2.0 ** (2 - 1)
    assert rt.theta_max == pytest.approx(expected)
    assert rt.in_region == (expected > 0) and rt.assumptions_hold
    assert not region_test(arch, [(W1, None), (W2, None), (W3, None)], X, T, weight_decay=1.0).in_region


def test_lambda_threshold_is_where_eq10_turns():
    X = np.array([[3.0, 4.0], [0.0, 1.0]])  # r = 5
    T = np.array([[1.0], [2.0]])  # ℓ(0) = (1 + 4)/4
    t = lambda_threshold(X, T, H=2)

    def rhs(lam):
        return lam ** 1.5 / (2 * (2 * 3 * 5.0) ** 1.0)

    assert rhs(t.threshold) == pytest.approx(t.loss_at_zero)
    assert t.holds(t.threshold * 1.01) and not t.holds(t.threshold * 0.99)


def test_normalised_curvature_equals_explicit_hessian_quotient():
    arch = Architecture((2, 3, 2), activation="leaky_relu", negative_slope=0.1)
    gen = torch.Generator().manual_seed(1)
    X = torch.randn(12, 2, dtype=torch.float64, generator=gen)
    T = torch.randn(12, 2, dtype=torch.float64, generator=gen)
    params = init_params(arch, 5, X.device)
    theta = flatten(params)
    F = lambda th: objective(arch, unflatten(arch, th), X, T, 0.3)  # noqa: E731
    H = torch.autograd.functional.hessian(F, theta)
    g = torch.autograd.functional.jacobian(F, theta)
    expected = float(2 * g @ H @ g / (g @ g))
    assert normalised_curvature(arch, params, X, T, 0.3) == pytest.approx(expected, rel=1e-10)


def test_loss_change_fraction_modes():
    g = [10.0, 8.0, 5.0, 4.0, 2.0]
    inside = [False, True, False, True, True]
    assert loss_change_fraction(g, inside, mode="stays") == pytest.approx((4 - 2) / 8)
    assert loss_change_fraction(g, inside, mode="first") == pytest.approx((8 - 2) / 8)
    assert loss_change_fraction(g, [False] * 5) == 0.0


@pytest.mark.parametrize("device", DEVICES)
def test_device_is_a_parameter_not_a_branch(device):
    X, y = teacher_data(20, sizes=(3, 4, 1))
    net = ReLURegressor([4], device="cpu", random_state=0, max_iter=3).fit(X, y)
    assert net.result_.iterations >= 1
    other = ReLURegressor([4], device=device, random_state=0, max_iter=3).fit(X, y)
    assert other.objective_ == pytest.approx(net.objective_, rel=1e-8)
    np.testing.assert_allclose(other.coefs_[0], net.coefs_[0], atol=1e-8)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_auto_device_picks_cuda_and_agrees_with_the_cpu():
    X, y = teacher_data(100)
    kw = dict(weight_decay=1e-3, random_state=0, solver="clarabel-native", max_iter=3)
    net = ReLURegressor([8, 8], device="auto", **kw)
    assert net._device().type == "cuda"
    on_gpu = net.fit(X, y, block_size="unit")
    on_cpu = ReLURegressor([8, 8], device="cpu", **kw).fit(X, y, block_size="unit")
    assert on_gpu.objective_ == pytest.approx(on_cpu.objective_, rel=1e-8)
    gd = [ReLURegressor([8, 8], weight_decay=1e-3, random_state=0, device=d, algorithm="gd", max_iter=100)
          .fit(X, y, lr=0.1) for d in ("auto", "cpu")]
    assert gd[0].objective_ == pytest.approx(gd[1].objective_, rel=1e-10)
    assert gd[0].result_.certificate.max_gap == pytest.approx(gd[1].result_.certificate.max_gap, rel=1e-5, abs=1e-9)


# -- squared-loss blocks are BlockSubproblem values for the dispatcher ---------------------------------
def _small_regression():
    return teacher_data(60, sizes=(3, 8, 1))


def test_auto_sends_unit_blocks_to_daqp_and_the_output_layer_to_the_closed_form():
    X, y = _small_regression()
    net = ReLURegressor([8], weight_decay=1e-2, random_state=0, device="cpu", max_iter=3)
    net.fit(X, y, certify=False)
    res = net.result_
    assert res.info["blocks"][:2] == ["layer1[0:1]", "layer1[1:2]"]  # "auto" block size: units
    assert set(res.backends_used) == {"daqp", "lstsq"} and res.info["failed_block_solves"] == 0
    assert res.solver_time > 0


def test_the_block_subproblem_value_is_the_objective_on_the_piece():
    X, y = _small_regression()
    net = ReLURegressor([8], weight_decay=1e-2, random_state=0, device="cpu")
    arch, Xt, Tt = net._tensors(X, y, "test", fit=True)
    form = net._form(arch, Xt, Tt, "auto", "auto", None, None)
    x = form.point_from_params(net.initial_params())
    f = form.evaluate(x)[0]
    for i, block in enumerate(form.blocks):
        sub = form.subproblem(i, x, prox=0.5)
        theta0 = sub.stack({k: x[k] for k in block.keys})
        assert sub.value(theta0) == pytest.approx(f, rel=1e-13) and sub.violation(theta0) <= 1e-12
        # a step that keeps the piece: the value is F there, plus the prox term
        step = theta0 + 1e-7 * np.random.default_rng(i).standard_normal(theta0.size)
        if sub.violation(step) == 0:
            moved = {**x, **sub.split(step)}
            assert sub.value(step) == pytest.approx(form.evaluate(moved)[0] + 0.25 * np.sum((step - theta0) ** 2),
                                                    rel=1e-12)


def test_auto_and_clarabel_give_the_same_block_solutions_along_a_run():
    # Each block from the same point, on the same piece (and across a boundary), over three sweeps. Whole runs
    # part ways once DAQP's exact vertices put samples on a boundary (z = 0 up to rounding): the piece read
    # there by `z >= 0` is then decided by rounding, where Clarabel's interior points sit ~1e-9 inside.
    X, y = _small_regression()
    net = ReLURegressor([8], weight_decay=1e-2, random_state=0, device="cpu")
    arch, Xt, Tt = net._tensors(X, y, "test", fit=True)
    forms = {s: net._form(arch, Xt, Tt, s, "auto", None, None) for s in ("auto", "clarabel")}
    x = forms["auto"].point_from_params(net.initial_params())
    compared = 0
    for _ in range(3):
        for i, block in enumerate(forms["auto"].blocks):
            best = None
            for flip in (False, True):
                sols = {}
                for s, form in forms.items():
                    if form.prepare(i, x, flip_boundary=flip) or not flip:
                        sols[s] = form.solve_prepared(i)
                if not sols:
                    continue
                exact, ipm = sols["auto"], sols["clarabel"]
                assert exact.status == ipm.status
                if not exact.ok:
                    continue
                compared += 1
                assert exact.value == pytest.approx(ipm.value, rel=1e-9) and exact.value <= ipm.value + 1e-12
                for key in block.keys:
                    np.testing.assert_allclose(exact.values[key], ipm.values[key], atol=1e-3)
                if best is None or exact.value < best.value:
                    best = exact
            cand = {**x, **best.values}
            if forms["auto"].evaluate(cand)[0] <= forms["auto"].evaluate(x)[0]:
                x = cand
    assert compared > 27  # boundaries were crossed
    runs = [ReLURegressor([8], weight_decay=1e-2, random_state=0, device="cpu", solver=s, max_iter=1)
            .fit(X, y, certify=False).result_
            for s in ("auto", "clarabel")]
    np.testing.assert_allclose(runs[0].objectives, runs[1].objectives, rtol=1e-8)


def test_a_named_backend_goes_through_the_dispatcher():
    X, y = _small_regression()
    net = ReLURegressor([8], weight_decay=1e-2, random_state=0, device="cpu", solver="osqp", max_iter=3)
    net.fit(X, y, certify=False)
    res = net.result_
    assert set(res.backends_used) == {"osqp"} and res.info["failed_block_solves"] == 0
    assert np.all(np.diff(res.objectives) <= 1e-12) and res.objectives[-1] < 0.5 * res.objectives[0]


def test_block_gaps_reach_rounding_level_with_daqp():
    X, y = _small_regression()
    net = ReLURegressor([8], weight_decay=1e-2, random_state=0, device="cpu", max_iter=500, tol=1e-12)
    net.fit(X, y)
    cert = net.result_.certificate
    assert net.result_.status == "converged" and cert.is_partial_minimum
    assert abs(cert.max_gap) <= 1e-12 * max(1.0, net.objective_)  # Clarabel: ±4e-11, never certified at 1e-12


@pytest.mark.slow
def test_squared_blocks_ship_to_a_process_pool_and_agree_with_in_process():
    X, y = _small_regression()
    kw = dict(weight_decay=1e-2, random_state=0, device="cpu", algorithm="jacobi", max_iter=2)
    here = ReLURegressor([8], **kw).fit(X, y, certify=False)
    there = ReLURegressor([8], **kw).fit(X, y, executor="processes", workers=2, certify=False)
    np.testing.assert_allclose(there.result_.objectives, here.result_.objectives, rtol=1e-12)
    assert there.result_.backends_used == here.result_.backends_used


def test_the_hybrid_runs_both_phases_in_one_result_and_never_ends_above_the_gradient_phase():
    X, y = teacher_data(80)
    seen = []
    net = ReLURegressor(hidden_layer_sizes=(4,), weight_decay=1e-2, algorithm="adam+gauss-seidel", max_iter=30,
                        random_state=0)
    net.fit(X, y, lr=1e-2, block_iters=400, callback=lambda e: seen.append(e.iteration))
    res = net.result_
    adam, gs = res.info["phases"]
    assert (adam["algorithm"], adam["iterations"], gs["algorithm"]) == ("adam", 30, "gauss-seidel")
    assert res.objective <= adam["objective"] and res.iterations == 30 + gs["iterations"]
    assert seen == [h.iteration for h in res.history[1:]]  # one callback per epoch and per sweep
    assert res.status == "converged" and res.certificate.is_partial_minimum
    assert res.objective == pytest.approx(net.objective(X, y), rel=1e-12)


def test_a_callback_stops_a_block_fit_with_the_best_point():
    X, y = teacher_data(40)
    net = ReLURegressor(hidden_layer_sizes=(4,), algorithm="gauss-seidel", max_iter=50, random_state=0)
    net.fit(X, y, callback=lambda e: e.iteration >= 2)
    assert (net.result_.status, net.result_.iterations) == ("interrupted", 2)
    assert net.result_.objective == pytest.approx(net.objective(X, y), rel=1e-12)
    with pytest.raises(mc.InvalidInputError, match="block_iters"):
        net.fit(X, y, block_iters=0)


def test_a_callback_that_stops_the_gradient_phase_stops_the_hybrid():
    X, y = teacher_data(40)
    net = ReLURegressor(hidden_layer_sizes=(4,), algorithm="adam+gauss-seidel", max_iter=50, random_state=0)
    net.fit(X, y, callback=lambda e: e.iteration >= 5)
    assert (net.result_.status, net.result_.iterations) == ("interrupted", 5)
    assert [p["algorithm"] for p in net.result_.info["phases"]] == ["adam"]
