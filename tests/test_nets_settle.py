"""Moves that help the block phase settle (issue 14): the units' balance (:mod:`multiconvex.nets.balance`) keeps the
function and lowers the weight decay. The balance opens every round of :func:`multiconvex.nets.hybrid.run_rounds`
(``LayerSteps(balance=True)``, the default).
"""

from __future__ import annotations

import pytest
import torch
from conftest import small_relu_net

from multiconvex.drivers import DriverOptions
from multiconvex.errors import InvalidInputError
from multiconvex.nets import NetForm, forward, objective
from multiconvex.nets.balance import balance_units
from multiconvex.nets.hybrid import LayerSteps, run_rounds

WD = 1e-3


_net = small_relu_net


def _own_gaps(form: NetForm, params, layer: int) -> list[float]:
    """The own-piece block gaps of every unit of ``layer`` (the unit blocks' exact solves, no neighbouring piece)."""
    point = form.point_from_params(params)
    f, _ = form.evaluate(point)
    indices = [i for i, b in enumerate(form.layer_blocks) if b.layer == layer]
    for i in indices:
        form.prepare(i, point)
    sols = [form.solve_prepared(i) for i in indices]
    assert all(s.status == "optimal" for s in sols)
    return [f - s.value for s in sols]


def test_balance_keeps_every_output_and_piece_and_equalises_the_norms():
    arch, params, X, T = _net((3, 5, 4, 2))
    params = [(W * s, b * s) for (W, b), s in zip(params, (3.0, 0.2, 5.0))]  # unbalanced on purpose
    new = balance_units(params)
    out0, pre0, _ = forward(arch, params, X)
    out1, pre1, _ = forward(arch, new, X)
    assert torch.allclose(out1, out0, rtol=1e-12, atol=1e-12)
    for z0, z1 in zip(pre0[:-1], pre1[:-1]):
        assert torch.equal(z0 >= 0, z1 >= 0)
    assert float(objective(arch, new, X, T, WD)) < float(objective(arch, params, X, T, WD))
    # the last hidden layer is balanced against the output layer (the earlier ones were, before it was rescaled)
    W, b = new[-2]
    row = (W ** 2).sum(dim=1) + b ** 2
    assert torch.allclose(row, (new[-1][0] ** 2).sum(dim=0), rtol=1e-12)


def test_balance_leaves_a_unit_without_outgoing_weights_alone():
    arch, params, X, T = _net((2, 6, 1))
    W_out, b_out = params[-1]
    W_out = W_out.clone()
    W_out[:, 2] = 0.0
    params[-1] = (W_out, b_out)
    new = balance_units(params)
    assert torch.equal(new[0][0][2], params[0][0][2]) and torch.isfinite(new[0][0]).all()
    assert torch.isfinite(new[1][0]).all() and float(new[1][0][0, 2]) == 0.0


def test_rounds_record_the_balance():
    arch, params, X, T = _net()
    form = NetForm(arch, X, T, WD)
    res = run_rounds(form, params, DriverOptions("gauss-seidel", max_iters=4), LayerSteps(passes=1, sweeps=2))
    names = [s["name"] for s in res.info["layer_steps"] if "name" in s]
    assert "balance" in names
    first = res.info["layer_steps"][0]  # round 1 opens with the balance of the start point: its F is the record's
    assert first["name"] == "balance"
    assert first["objective_before"] == pytest.approx(float(objective(arch, params, X, T, WD)), rel=1e-12)
    assert first["objective_after"] == pytest.approx(float(objective(arch, balance_units(params), X, T, WD)),
                                                     rel=1e-12)
    objectives = [h.objective for h in res.history]
    assert all(b <= a for a, b in zip(objectives, objectives[1:]))
    assert any(h.accepted_block and "balance" in h.accepted_block for h in res.history)


def test_rounds_without_balance_take_none():
    arch, params, X, T = _net()
    form = NetForm(arch, X, T, WD)
    res = run_rounds(form, params, DriverOptions("gauss-seidel", max_iters=2), LayerSteps(passes=1, sweeps=2,
                                                                                         balance=False))
    assert not any(s.get("name") == "balance" for s in res.info["layer_steps"])


def test_layer_steps_name_a_bad_balance():
    with pytest.raises(InvalidInputError, match="balance must be True or False"):
        LayerSteps(balance=1)  # type: ignore[arg-type]


@pytest.mark.slow
def test_a_deadline_right_after_a_small_balance_returns_the_balanced_point_without_an_older_certificate(monkeypatch):
    import time

    from multiconvex.nets import hybrid

    arch, params, X, T = _net(n=40)
    form = NetForm(arch, X, T, WD)
    limit, calls, t0 = 1.0, [], time.perf_counter()
    balance = hybrid.balance_units

    def late_balance(p):  # round 2's balance ends after the deadline (a layer pass could use it up as well)
        calls.append(1)
        if len(calls) == 2:
            time.sleep(max(0.0, limit - (time.perf_counter() - t0)) + 0.05)
        return balance(p)

    monkeypatch.setattr(hybrid, "balance_units", late_balance)
    res = run_rounds(form, params, DriverOptions("gauss-seidel", max_iters=50, tol=0.3, time_limit=limit),
                     LayerSteps(passes=1, sweeps=2))
    assert len(calls) == 2 and res.status == "time_limit"
    assert res.objective == res.history[-1].objective  # the balanced point, not the round before it
    returned = form.named_values(form.final_point)
    assert all(torch.equal(torch.as_tensor(res.values[k]), torch.as_tensor(v)) for k, v in returned.items())
    assert not res.certificate.is_partial_minimum  # no certificate computed at this point
