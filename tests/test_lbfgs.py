"""Specification of the ``lbfgs`` gradient method (torch's ``LBFGS``, full batch, strong-Wolfe line search): the
same iterates as torch's own loop, the baselines' Result contract, the hybrid and the estimators."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

import multiconvex.nets.baselines as baselines
from multiconvex.drivers import DriverOptions
from multiconvex.errors import InvalidInputError
from multiconvex.models import ReLURegressor
from multiconvex.nets import Architecture, GradientOptions, NetForm, init_params, objective, run_gradient
from multiconvex.nets.hybrid import HYBRID_ALGORITHMS, parse_hybrid, run_hybrid
from multiconvex.nets.network import flatten, unflatten


def _problem(n: int = 80, sizes=(3, 8, 8, 1), seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, sizes[0], generator=g, dtype=torch.float64)
    T = torch.sin(2 * X[:, :1]) * X[:, 1:2]
    arch = Architecture(sizes)
    return arch, init_params(arch, seed, torch.device("cpu")), X, T


def _torch_lbfgs(arch, params0, X, T, weight_decay: float, iterations: int) -> torch.Tensor:
    """torch's LBFGS as its documentation runs it: one ``step`` of ``iterations`` iterations on the full batch."""
    theta = flatten(params0).detach().clone().requires_grad_(True)
    optim = torch.optim.LBFGS([theta], lr=1.0, max_iter=iterations, max_eval=25 * iterations + 1,
                              tolerance_grad=0.0, tolerance_change=0.0, history_size=100,
                              line_search_fn="strong_wolfe")

    def closure():
        optim.zero_grad()
        f = objective(arch, unflatten(arch, theta), X, T, weight_decay)
        f.backward()
        return f

    optim.step(closure)
    return theta.detach()


def test_lbfgs_takes_the_iterates_of_torchs_own_loop():
    """Ours runs one torch ``step`` per iteration (limits and the history between them) and reuses the line search's
    last evaluation; the iterates are those of torch's single ``step`` of the same iterations."""
    arch, params0, X, T = _problem()
    res, params = run_gradient(arch, params0, X, T, 1e-3, GradientOptions("lbfgs", max_iters=40))
    assert res.status == "iteration_limit" and res.iterations == 40
    reference = _torch_lbfgs(arch, params0, X, T, 1e-3, 40)
    assert torch.allclose(flatten(params), reference, rtol=1e-9, atol=1e-12)
    assert res.objective < 0.2 * res.history[0].objective


def test_lbfgs_returns_the_baselines_result_and_ignores_the_minibatch():
    arch, params0, X, T = _problem()
    res, params = run_gradient(arch, params0, X, T, 1e-3, GradientOptions("lbfgs", max_iters=25, batch_size=8))
    assert res.algorithm == "lbfgs" and res.info["batch_size"] is None and res.info["lr"] == 1.0
    assert [h.iteration for h in res.history] == list(range(26))  # every iteration logged, the start included
    assert res.objective == pytest.approx(float(objective(arch, params, X, T, 1e-3)), rel=1e-12)
    assert res.info["grad_norm"] > 0 and np.isfinite(res.info["grad_norm"])
    assert min(h.objective for h in res.history) == res.objective


def test_lbfgs_stops_at_grad_tol_and_says_so():
    arch, params0, X, T = _problem()
    res, _ = run_gradient(arch, params0, X, T, 1e-3, GradientOptions("lbfgs", max_iters=10_000, grad_tol=0.05))
    assert res.status == "stalled" and "grad_tol=0.05" in res.message
    assert res.info["grad_norm"] <= 0.05 and res.iterations < 10_000


def test_lbfgs_at_a_kink_restarts_once_then_stops_and_the_claim_holds():
    """This run reaches a kink of the piecewise objective (about 1,000 iterations): the line search fails along the
    quasi-Newton direction and, after the memory is cleared, along -∇F. The message's claim is checked here: along
    -∇F no step lowers F by more than rounding (a kink within rounding distance), though ‖∇F‖ is far from 0 (not
    a stationary point)."""
    arch, params0, X, T = _problem()
    res, params = run_gradient(arch, params0, X, T, 1e-3, GradientOptions("lbfgs", max_iters=3000))
    assert res.status == "stalled" and "a kink" in res.message and res.info["restarts"] >= 1
    assert res.info["stop"] == "kink"
    theta = flatten(params).clone().requires_grad_(True)
    F = objective(arch, unflatten(arch, theta), X, T, 1e-3)
    (g,) = torch.autograd.grad(F, theta)
    F = F.detach()
    assert float(g.norm()) == pytest.approx(res.info["grad_norm"]) and float(g.norm()) > 1e-4
    with torch.no_grad():
        trials = [float(objective(arch, unflatten(arch, theta - t * g), X, T, 1e-3)) for t in np.logspace(-10, 0, 21)]
    assert min(trials) >= float(F) * (1 - 1e-9)


def test_the_lbfgs_hybrid_runs_both_phases_and_certifies_a_small_network():
    assert "lbfgs+gauss-seidel" in HYBRID_ALGORITHMS and parse_hybrid("lbfgs+jacobi") == ("lbfgs", "jacobi")
    arch, params0, X, T = _problem(60, (2, 4, 1))
    form = NetForm(arch, X, T, 1e-2)
    res, params = run_hybrid(form, params0, GradientOptions("lbfgs", max_iters=30),
                             DriverOptions("gauss-seidel", max_iters=500, tol=1e-9))
    assert [p["algorithm"] for p in res.info["phases"]] == ["lbfgs", "gauss-seidel"]
    assert res.info["phases"][0]["iterations"] == 30
    assert res.objective <= res.info["phases"][0]["objective"]
    assert res.status == "converged" and res.certificate.is_partial_minimum


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # both fits end at max_iter
def test_the_regressor_fits_with_lbfgs_and_certifies_its_end_point():
    arch, _, X, T = _problem(60, (2, 4, 1))
    net = ReLURegressor([4], weight_decay=1e-3, algorithm="lbfgs", max_iter=60, random_state=0)
    net.fit(X.numpy(), T.numpy()[:, 0])
    res = net.result_
    assert res.algorithm == "lbfgs" and res.iterations == 60 and res.info["batch_size"] is None
    assert {name.split("[")[0] for name in res.certificate.block_gaps} == {"layer1", "layer2"}
    assert res.objective == pytest.approx(net.objective(X.numpy(), T.numpy()[:, 0]), rel=1e-12)
    adam = ReLURegressor([4], weight_decay=1e-3, algorithm="adam", max_iter=60, random_state=0)
    assert res.objective < adam.fit(X.numpy(), T.numpy()[:, 0]).result_.objective  # 60 iterations against epochs


def _grad_norm(arch, params, X, T, weight_decay: float) -> float:
    theta = flatten(params).clone().requires_grad_(True)
    (g,) = torch.autograd.grad(objective(arch, unflatten(arch, theta), X, T, weight_decay), theta)
    return float(g.norm())


@pytest.mark.parametrize("algorithm,log_every", [("lbfgs", 1), ("lbfgs", 7), ("gd", 1), ("gd", 4), ("adam", 3)])
def test_the_gradient_norm_reported_is_the_returned_points(algorithm, log_every):
    """``info["grad_norm"]`` was the norm at the point before the last step (badly off for an L-BFGS step)."""
    arch, params0, X, T = _problem()
    lr = None if algorithm == "lbfgs" else 0.01  # adam without batch_size: the full batch
    opts = GradientOptions(algorithm, max_iters=60, lr=lr, log_every=log_every)
    res, params = run_gradient(arch, params0, X, T, 1e-3, opts)
    assert res.info["best_iteration"] == res.iterations  # the last iterate is the point returned here
    assert res.info["grad_norm"] == pytest.approx(_grad_norm(arch, params, X, T, 1e-3), rel=1e-9)


def test_lbfgs_evaluates_the_objective_about_once_an_iteration_however_often_it_logs(monkeypatch):
    arch, params0, X, T = _problem()
    calls = {}
    for log_every in (1, 10):
        count = [0]

        def counted(*args, count=count, **kwargs):
            count[0] += 1
            return objective(*args, **kwargs)

        monkeypatch.setattr(baselines, "objective", counted)
        res, _ = run_gradient(arch, params0, X, T, 1e-3, GradientOptions("lbfgs", max_iters=100, log_every=log_every))
        assert res.iterations == 100
        calls[log_every] = count[0]
    assert calls[10] <= 1.3 * 100 and calls[10] <= calls[1], calls  # was ~2 an iteration between the logged ones


def test_ctrl_c_in_the_line_search_leaves_no_trial_point_in_the_history(monkeypatch):
    """lr=30 makes the first trial step overshoot: Ctrl-C while it is evaluated used to leave the parameters there,
    logged as an iterate of objective 44.7 (start 0.229)."""
    arch, params0, X, T = _problem()
    f0 = float(objective(arch, params0, X, T, 1e-3))
    count = [0]

    def interrupted(*args, **kwargs):
        count[0] += 1
        if count[0] == 3:  # the start, the first iteration's F, then the first trial point
            raise KeyboardInterrupt
        return objective(*args, **kwargs)

    monkeypatch.setattr(baselines, "objective", interrupted)
    res, params = run_gradient(arch, params0, X, T, 1e-3, GradientOptions("lbfgs", max_iters=60, lr=30.0))
    monkeypatch.setattr(baselines, "objective", objective)
    assert res.status == "interrupted" and "returned instead" not in res.message
    assert max(h.objective for h in res.history) <= f0 * (1 + 1e-12)
    assert torch.equal(flatten(params), flatten(params0))  # interrupted before its first step ended
    assert res.objective == pytest.approx(float(objective(arch, params, X, T, 1e-3)), rel=1e-12)


def test_a_smooth_optimum_is_stationary_to_rounding_not_a_kink():
    """A model without hidden layers is smooth: L-BFGS ends where its line search finds no descent, and says so
    without claiming a kink; the estimator certifies it and does not warn."""
    arch, params0, X, T = _problem(80, (3, 1))
    res, params = run_gradient(arch, params0, X, T, 1e-3, GradientOptions("lbfgs", max_iters=3000))
    assert res.status == "stalled" and res.info["stop"] == "rounding", res.message
    assert "kink" not in res.message and "stationary to rounding" in res.message
    assert _grad_norm(arch, params, X, T, 1e-3) <= 1e-7
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        net = ReLURegressor((), weight_decay=1e-3, algorithm="lbfgs", max_iter=3000, random_state=0)
        net.fit(X.numpy(), T.numpy()[:, 0])
    assert net.result_.status == "converged" and "kink" not in net.result_.message


def test_an_lbfgs_fit_stopped_at_a_kink_warns():
    """The silence of a gradient run's own stop is for grad_tol and rounding; a kink, uncertified, is a warning."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 3))
    y = np.sin(2 * X[:, 0]) * X[:, 1]
    net = ReLURegressor((4,), weight_decay=1e-3, algorithm="lbfgs", max_iter=3000, random_state=0)
    with pytest.warns(ConvergenceWarning, match="stalled"):
        net.fit(X, y)
    assert net.result_.info["stop"] == "kink" and not net.result_.certificate.is_partial_minimum


@pytest.mark.parametrize("option,value", [("lr_schedule", "harmonic"), ("momentum", 0.9)])
def test_lbfgs_refuses_the_step_options_it_has_no_use_for(option, value):
    arch, params0, X, T = _problem(20, (3, 2, 1))
    with pytest.raises(InvalidInputError, match=f"{option}=.*lbfgs"):
        run_gradient(arch, params0, X, T, 1e-3, GradientOptions("lbfgs", max_iters=5, **{option: value}))
