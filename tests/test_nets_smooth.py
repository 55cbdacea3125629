"""Logistic/softmax unit blocks without cones: Newton steps on DAQP (solvers/newton_qp.py) and the network
blocks built on them (multiconvex/nets/smooth_units.py). The lower bound is checked against Clarabel's
optimum of the same problem over many random instances: a gap must never be smaller than the true one."""

from __future__ import annotations

from fractions import Fraction

import cvxpy as cp
import numpy as np
import pytest
import torch
from conftest import logistic_rows as _logistic_rows

from multiconvex.models import ReLUClassifier
from multiconvex.nets import Architecture, forward, init_params
from multiconvex.nets.network import encode_targets
from multiconvex.nets.piece_context import PieceContext
from multiconvex.nets.smooth_units import scalar_loss, smooth_batch, solve_smooth_units
from multiconvex.solvers import newton_qp, whitened
from multiconvex.solvers.matrix import finite_or_big
from multiconvex.solvers.newton_qp import (
    _bound_at,
    _on_working_set,
    _qp,
    _ScaledRows,
    _ScreenedRows,
    _working_set,
    dual_bound,
    solve_separable,
)
from multiconvex.standard_form import replace

N_INSTANCES = 25




def _random_instance(rng: np.random.Generator):
    m, n = int(rng.integers(5, 40)), int(rng.integers(2, 6))
    C = rng.standard_normal((m, n))
    a, v = rng.standard_normal(m), rng.standard_normal(m) * rng.uniform(0.5, 4)
    x_feas = rng.standard_normal(n)
    z = C @ x_feas
    lower = np.where(rng.random(m) < 0.5, z - rng.exponential(0.3, m), -np.inf)
    upper = np.where(rng.random(m) < 0.5, z + rng.exponential(0.3, m), np.inf)
    mu, b = float(10 ** rng.uniform(-3, 0)), rng.standard_normal(n) * 0.1
    return C, lower, upper, mu, b, a, v, 1.0 / m


def _clarabel_optimum(C, lower, upper, mu, b, a, v, w, tol: float = 1e-10) -> float:
    x = cp.Variable(C.shape[1])
    z = C @ x
    cons = [z[i] >= lower[i] for i in np.flatnonzero(np.isfinite(lower))]
    cons += [z[i] <= upper[i] for i in np.flatnonzero(np.isfinite(upper))]
    prob = cp.Problem(cp.Minimize(w * cp.sum(cp.logistic(a + cp.multiply(v, z))) + mu / 2 * cp.sum_squares(x)
                                  - b @ x), cons)
    prob.solve(solver="CLARABEL", tol_gap_abs=tol, tol_gap_rel=tol, tol_feas=tol)
    assert prob.status == "optimal"
    return float(prob.value)


def test_newton_bound_never_exceeds_clarabels_optimum_on_random_instances():
    rng = np.random.default_rng(0)
    for _ in range(N_INSTANCES):
        C, lower, upper, mu, b, a, v, w = _random_instance(rng)
        phi = _logistic_rows(a, v, w)
        out = solve_separable(C, lower, upper, mu, b, phi, np.zeros(C.shape[1]), target=1e-11)
        ref = _clarabel_optimum(C, lower, upper, mu, b, a, v, w)
        scale = max(1.0, abs(ref))
        assert out.status == "optimal"
        assert out.bound <= ref + 1e-8 * scale  # a valid bound (Clarabel's own accuracy is the slack)
        assert out.value <= ref + 1e-8 * scale  # and the point is optimal
        assert 0 <= out.value - out.bound <= 1e-11
        z = C @ out.x  # on the intervals (an active row to rounding)
        slack = 1e-12 * (1 + np.abs(z))
        assert np.all(z >= lower - slack) and np.all(z <= upper + slack)


def test_dual_bound_holds_for_arbitrary_multipliers():
    rng = np.random.default_rng(1)
    for _ in range(N_INSTANCES):
        C, lower, upper, mu, b, a, v, w = _random_instance(rng)
        phi = _logistic_rows(a, v, w)
        best = solve_separable(C, lower, upper, mu, b, phi, np.zeros(C.shape[1]), target=1e-12).value
        for _ in range(5):  # any z, any signed ν: still below the optimum
            z, nu = rng.standard_normal(C.shape[0]) * 3, rng.standard_normal(C.shape[0])
            assert dual_bound(phi, C, lower, upper, mu, b, z, nu) <= best + 1e-12
            # at z̄ = z itself, off the intervals (a Newton step's z̄): the tangent bound holds at any z̄
            val, d1, _ = phi(z)
            assert _bound_at(C, lower, upper, mu, b, z, val, d1, nu) <= best + 1e-12


def test_the_bounds_rounding_margin_covers_terms_that_cancel():
    # φ_i(z) = a_i z + z²/2 with a_i ~ 1e8 and b = Σ a_i c_i: in exact arithmetic the linear parts cancel, and
    # αz̄ − φ(z̄) is a difference of two ~1e8 numbers. At the optimum (every row at its lower side) with the tight
    # multipliers the bound equals the optimum exactly, so any rounding upwards is a false bound unless the margin
    # covers it. The margin scaled with Σ|αz̄ − φ(z̄)| alone: the bound exceeded the exact optimum (rational
    # arithmetic) in 1,042 of 2,000 such instances, by up to 2.4e-6
    rng = np.random.default_rng(0)
    for _ in range(300):
        m = int(rng.integers(2, 40))
        a, c = 1e8 * rng.uniform(0.5, 1.5, m), rng.uniform(0.5, 2.0, m)
        lower, upper = c * rng.uniform(0.5, 2.0), np.full(m, np.inf)
        mu = float(rng.uniform(0.1, 1.0))
        b = np.array([float(a @ c)])

        def phi(z, a=a):
            return a * z + 0.5 * z * z, a + z, np.ones_like(z)

        fr = [(Fraction(float(ai)), Fraction(float(ci)), Fraction(float(li))) for ai, ci, li in zip(a, c, lower)]
        x = max(li / ci for _, ci, li in fr)  # the optimum: Φ' ≥ 0 there (b cancels the linear parts)
        exact = (sum(ai * ci * x + (ci * x) ** 2 / 2 for ai, ci, _ in fr) + Fraction(mu) * x * x / 2
                 - Fraction(float(b[0])) * x)
        g = float((c * c).sum() * float(x) + mu * float(x))
        bound = dual_bound(phi, c[:, None], lower, upper, mu, b, c * float(x), -g / (m * c))
        assert Fraction(bound) <= exact, (bound, float(exact))


def _exact_free_optimum(a, c, b, mu):
    """min over x ∈ R of Σ (a_i c_i x + (c_i x)²/2) + μx²/2 − bx, in rational arithmetic."""
    r = sum((Fraction(float(ai)) * Fraction(float(ci)) for ai, ci in zip(a, c)), Fraction(0)) - Fraction(float(b))
    k = sum((Fraction(float(ci)) ** 2 for ci in c), Fraction(0)) + Fraction(mu)
    return -r * r / (2 * k), float(-r / k)


def test_the_bound_allows_for_the_rounding_of_c_transpose_alpha():
    # (found by a review) a computed r = Cᵀα − b of 0 while the exact one is 1: fl(1e16 + 1) = 1e16
    a, c, b = np.array([1e16, 1.0]), np.array([1.0, 1.0]), np.array([1e16])
    free = np.full(2, np.inf)
    exact, _ = _exact_free_optimum(a, c, b[0], 1.0)  # −1/6; the bound was −0.0

    def phi(z, a=a):
        return a * z + 0.5 * z * z, a + z, np.ones_like(z)

    assert Fraction(dual_bound(phi, c[:, None], -free, free, 1.0, b, np.zeros(2), np.zeros(2))) <= exact
    # a BLAS product adds its terms one after another: 30,000 terms just under half an ulp of 2^53 each are lost
    # one by one (computed r off by ~470 in 1.08e6, far beyond a pairwise sum's error); the solver returned a bound
    # above the exact optimum, and a gap of 0
    m = 30_000
    c = np.full(m, m ** -0.6)
    c[0] = 1.0
    a = np.full(m, 0.99 / c[1])
    a[0] = 2.0 ** 53
    b = np.array([2.0 ** 53 - 2.0 ** 20])
    exact, x = _exact_free_optimum(a, c, b[0], 1e6)

    def phi_m(z, a=a):
        return a * z + 0.5 * z * z, a + z, np.ones_like(z)

    free = np.full(m, np.inf)
    assert Fraction(dual_bound(phi_m, c[:, None], -free, free, 1e6, b, c * x, np.zeros(m))) <= exact
    out = solve_separable(c[:, None], -free, free, 1e6, b, phi_m, np.zeros(1), target=0.0, max_iter=30)
    assert Fraction(out.bound) <= exact


def test_an_infeasible_start_is_moved_onto_the_intervals():
    C = np.eye(2)
    phi = _logistic_rows(np.zeros(2), np.ones(2), 0.5)
    out = solve_separable(C, np.array([1.0, -np.inf]), np.array([2.0, -1.0]), 0.1, np.zeros(2), phi,
                          np.array([5.0, 5.0]), target=1e-12)
    assert out.status == "optimal" and out.x[0] == pytest.approx(1.0) and out.x[1] <= -1.0


def _network(loss: str, seed: int, n: int = 60):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 3))
    if loss == "logistic":
        y = (X[:, 0] * X[:, 1] > 0).astype(int)
        arch = Architecture((3, 5, 4, 1), loss)
    else:
        y = np.argmax(X @ rng.standard_normal((3, 3)), 1)
        arch = Architecture((3, 5, 4, 3), loss)
    Xt = torch.as_tensor(X)
    Tt = torch.as_tensor(encode_targets(arch, y))
    return arch, Xt, Tt, X, y


@pytest.mark.parametrize("loss", ["logistic", "softmax"])
def test_block_gaps_are_never_below_clarabel_natives(loss):
    """Every unit block at random points, on its piece and across its boundary: ``auto``'s value (a lower bound)
    is at most Clarabel's optimum, and the point it returns is as good."""
    for seed in range(3):
        arch, Xt, Tt, X, y = _network(loss, seed)
        net = ReLUClassifier([5, 4], weight_decay=1e-2, random_state=seed, device="cpu")
        forms = {s: net._form(arch, Xt, Tt, s, "unit", None, None) for s in ("auto", "clarabel-native")}
        assert forms["auto"].smooth_batches and not forms["clarabel-native"].smooth_batches
        x0 = forms["auto"].point_from_params(init_params(arch, seed, Xt.device))
        f0 = forms["auto"].evaluate(x0)[0]
        for i in range(len(forms["auto"].blocks)):
            for flip in (False, True):
                sols = {}
                for s, form in forms.items():
                    form.prepare(i, x0, flip_boundary=flip)
                    sols[s] = form.solve_prepared(i)
                ours, ref = sols["auto"], sols["clarabel-native"]
                if ref.status == "infeasible":
                    assert ours.status == "infeasible"
                    continue
                assert ours.status == "optimal" and ours.backend == "newton-daqp"
                assert ours.value <= ref.value + 1e-8 * f0  # gap f0 − value ≥ the true gap
                if not flip:
                    ours_at = forms["auto"].evaluate(replace(x0, ours.values))[0]
                    assert ours_at <= ref.value + 1e-8 * f0
                    assert ours_at - ours.value <= 1e-9 * f0


def test_prox_solutions_report_the_objective_and_stay_on_the_piece():
    arch, Xt, Tt, X, y = _network("softmax", 4)
    params = init_params(arch, 4, Xt.device)
    _, pre, inputs = forward(arch, params, Xt)
    batch = smooth_batch(arch, params, Tt, 0, pre, inputs)
    f0 = 1.0
    sols = solve_smooth_units(arch, batch, f0, Xt.shape[0], 1e-2, 1.0)
    for i, sol in enumerate(sols):
        assert sol.status == "optimal"
        z = batch.inputs @ sol.x
        assert np.all(z >= batch.zlo[i] - 1e-12) and np.all(z <= batch.zhi[i] + 1e-12)
        phi = scalar_loss(arch.loss, batch.offset[i], batch.slope[i], batch.targets, Xt.shape[0])

        def main(t, phi=phi):
            return phi(batch.inputs @ t)[0].sum() + 0.5e-2 * t @ t

        d = sol.x - batch.theta0[i]
        expect = f0 + main(sol.x) - main(batch.theta0[i]) + 0.5 * d @ d
        assert sol.value == pytest.approx(expect, rel=1e-12) and sol.value <= f0 + 1e-12


def test_a_crossed_interval_is_reported_infeasible():
    arch, Xt, Tt, X, y = _network("logistic", 5)
    params = init_params(arch, 5, Xt.device)
    _, pre, inputs = forward(arch, params, Xt)
    batch = smooth_batch(arch, params, Tt, 0, pre, inputs, [0])
    batch.zlo[0, 0], batch.zhi[0, 0] = 1.0, -1.0
    (sol,) = solve_smooth_units(arch, batch, 1.0, Xt.shape[0], 1e-2, 0.0)
    assert sol.status == "infeasible" and sol.x is None


class _ThreadsSeen(PieceContext):
    """A piece context that notes torch's thread count each time a block's own units are read from it."""

    seen: list[int]

    def own(self, k, idx):
        self.seen.append(torch.get_num_threads())
        return super().own(k, idx)


def test_a_smooth_batch_is_built_on_one_torch_thread_and_the_users_setting_is_given_back():
    """Torch's worker threads only spin on a unit block's small tensors (several times the CPU time on a loaded
    machine): the build runs on one thread, whatever the user set, and leaves the user's setting as it was."""
    arch, Xt, Tt, X, y = _network("softmax", 6)
    params = init_params(arch, 6, Xt.device)
    _, pre, inputs = forward(arch, params, Xt)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        ctx = _ThreadsSeen(arch, Tt, pre, inputs)
        ctx.seen = []
        batch = smooth_batch(arch, params, Tt, 0, pre, inputs, context=ctx)
        assert ctx.seen and set(ctx.seen) == {1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    again = smooth_batch(arch, params, Tt, 0, pre, inputs)  # the same numbers at the user's setting
    np.testing.assert_array_equal(batch.slope, again.slope)
    np.testing.assert_array_equal(batch.offset, again.offset)


def _three_classes(n: int):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, 2))
    return X, np.argmax(X @ rng.standard_normal((2, 3)), 1)


def test_classifier_with_auto_solves_its_blocks_without_cones():
    X, y = _three_classes(60)
    clf = ReLUClassifier([4], weight_decay=1e-2, random_state=0, max_iter=3, device="cpu").fit(X, y)
    res = clf.result_
    assert set(res.backends_used) == {"newton-daqp"}
    assert res.objective < res.history[0].objective
    gaps = np.array(list(res.certificate.block_gaps.values()))
    assert np.all(np.isfinite(gaps)) and np.all(gaps >= -1e-9 * res.objective)


@pytest.mark.slow
def test_classifier_with_auto_converges_to_a_certified_partial_minimum():
    X, y = _three_classes(80)
    clf = ReLUClassifier([4], weight_decay=1e-2, random_state=0, max_iter=300, tol=1e-4, device="cpu").fit(X, y)
    res = clf.result_
    assert res.status == "converged" and res.certificate.is_partial_minimum


def test_without_weight_decay_the_blocks_take_the_cone_path():
    arch, Xt, Tt, X, y = _network("logistic", 6, n=30)
    net = ReLUClassifier([5, 4], weight_decay=0.0, random_state=0, device="cpu")
    form = net._form(arch, Xt, Tt, "auto", "unit", None, None)
    x0 = form.point_from_params(init_params(arch, 0, Xt.device))
    form.prepare(0, x0)
    assert form.solve_prepared(0).backend == "clarabel-native"
    form.prepare(0, x0, prox=1.0)  # a prox term gives the Newton path its bound
    assert form.solve_prepared(0).backend == "newton-daqp"


def _large_instance(seed: int, m: int = 600, n: int = 8):
    """An instance with many rows, most of them with a finite side near the start (as a ReLU unit's piece):
    large enough that :func:`solve_separable` screens its rows by default."""
    rng = np.random.default_rng(seed)
    C = rng.standard_normal((m, n))
    a, v = rng.standard_normal(m), rng.standard_normal(m) * 2
    z = C @ rng.standard_normal(n)
    lower = np.where(rng.random(m) < 0.6, z - rng.exponential(0.5, m), -np.inf)
    upper = np.where(rng.random(m) < 0.6, z + rng.exponential(0.5, m), np.inf)
    return C, lower, upper, 1e-3, rng.standard_normal(n) * 0.1, a, v, 1.0 / m


@pytest.mark.parametrize("seed", [1, 2])  # instances on which Clarabel reports "optimal" at 1e-8
def test_screened_rows_give_the_optimum_of_all_rows(seed):
    """The Newton QPs solved on a growing subset of the rows end where the solve on every row ends, at
    Clarabel's optimum, with a valid bound."""
    C, lower, upper, mu, b, a, v, w = _large_instance(seed)
    phi = _logistic_rows(a, v, w)
    start = np.zeros(C.shape[1])  # need not be feasible: the first step goes onto the intervals
    screened = solve_separable(C, lower, upper, mu, b, phi, start, target=1e-11, screen=True)
    full = solve_separable(C, lower, upper, mu, b, phi, start, target=1e-11, screen=False)
    ref = _clarabel_optimum(C, lower, upper, mu, b, a, v, w, tol=1e-8)  # 600 rows: 1e-10 is beyond Clarabel
    for out in (screened, full):
        assert out.status == "optimal"
        assert out.bound <= ref + 1e-7 * max(1.0, abs(ref)) and out.value <= ref + 1e-7 * max(1.0, abs(ref))
        z = C @ out.x
        assert np.all(z >= lower - 1e-9) and np.all(z <= upper + 1e-9)
    assert screened.value == pytest.approx(full.value, abs=1e-10)
    np.testing.assert_allclose(screened.x, full.x, atol=1e-4)  # the optimum to the stopping tolerance


def test_screening_solves_a_newton_qp_on_fewer_rows_with_the_same_answer():
    C, lower, upper, mu, b, a, v, w = _large_instance(2)
    lo, up = finite_or_big(lower), finite_or_big(upper)
    rng = np.random.default_rng(3)
    A = rng.standard_normal((C.shape[1], C.shape[1]))
    H, q = A @ A.T + np.eye(C.shape[1]), rng.standard_normal(C.shape[1]) * 20  # a step that hits many rows
    start = np.linalg.lstsq(C, np.clip(np.zeros(C.shape[0]), lower, upper), rcond=None)[0]
    rows = _ScreenedRows(_ScaledRows.of(C, lower, upper), C @ start, {}, 1e-6)  # rows of norm > 1: as given
    status, y, nu, _ = rows.solve(H, q, None)
    ref_status, y_ref, nu_ref, _ = _qp(H, q, C, lo, up, None, {})
    assert status == ref_status == "optimal"
    assert rows.rows.sum() < C.shape[0]  # it did screen
    np.testing.assert_allclose(y, y_ref, atol=1e-8)
    np.testing.assert_allclose(H @ y + q + C.T @ nu, 0.0, atol=1e-8)  # stationary with its multipliers


def test_the_working_set_shortcut_is_the_qp_answer_or_declines():
    """Given DAQP's own active set the equality-constrained solve returns DAQP's answer; given a wrong one it
    declines (``None``) rather than return a point that is not the QP's optimum."""
    C, lower, upper, mu, b, a, v, w = _large_instance(4, m=300, n=6)
    lo, up = finite_or_big(lower), finite_or_big(upper)
    rng = np.random.default_rng(5)
    H, q = np.eye(6) * 0.5, rng.standard_normal(6) * 20
    tol = 1e-6
    status, y, nu, _ = _qp(H, q, C, lo, up, None, {})
    assert status == "optimal" and np.count_nonzero(nu) >= 2
    sense = _working_set(nu)
    got = _on_working_set(H, q, C, lo, up, sense, tol, 1e-12)
    assert got is not None
    np.testing.assert_allclose(got[0], y, atol=1e-9)
    wrong = sense.copy()
    wrong[np.flatnonzero(sense)[0]] = 0  # one active row left out: the answer violates it
    assert _on_working_set(H, q, C, lo, up, wrong, tol, 1e-12) is None


def test_a_warm_working_set_changes_the_work_not_the_answer():
    C, lower, upper, mu, b, a, v, w = _large_instance(6)
    phi = _logistic_rows(a, v, w)
    x0 = np.zeros(C.shape[1])
    lower, upper = np.minimum(lower, 0.0), np.maximum(upper, 0.0)  # x0 = 0 inside every interval
    cold = solve_separable(C, lower, upper, mu, b, phi, x0, target=1e-11)
    garbage = np.random.default_rng(7).choice([0, 1, 3], size=C.shape[0]).astype(np.int32)
    for working in (cold.working, garbage):
        warm = solve_separable(C, lower, upper, mu, b, phi, x0, target=1e-11, working=working)
        assert warm.status == "optimal"
        assert warm.value == pytest.approx(cold.value, abs=1e-10)
        assert warm.bound <= cold.value + 1e-10 and cold.bound <= warm.value + 1e-10


def test_a_given_working_set_joins_the_rows_the_start_lies_on(monkeypatch):
    """A neighbouring-piece solve starts on a few rows (its flipped samples'): the given working set's rows join
    them in the first step's working set (those rows keep their own side), and the answer is the cold solve's."""
    C, lower, upper, mu, b, a, v, w = _large_instance(6)
    phi = _logistic_rows(a, v, w)
    x0 = np.zeros(C.shape[1])
    lower, upper = np.minimum(lower, -0.5), np.maximum(upper, 0.5)  # x0 = 0 inside every interval
    lower[0], upper[1] = 0.0, 0.0  # but on row 0 (at its lower side) and row 1 (at its upper)
    cold = solve_separable(C, lower, upper, mu, b, phi, x0, target=1e-11)
    assert cold.working is not None
    given = np.zeros_like(cold.working)
    keep = [i for i in np.flatnonzero(cold.working) if i > 2][:4]  # some of the cold solve's active rows
    given[keep] = cold.working[keep]
    given[0] = 1  # the other side of row 0: the start's side wins
    given[2] = 2  # a side bit without the active bit: not a working row
    calls = []  # ("shortcut" | "daqp", sense) in order
    real_short, real_solve = newton_qp._on_working_set, newton_qp._ScreenedRows.solve

    def spy_short(H, q, C_, lo, up, sense, *rest):
        calls.append(("shortcut", sense.copy()))
        return real_short(H, q, C_, lo, up, sense, *rest)

    def spy_solve(self, H, q, sense, *rest):
        calls.append(("daqp", None if sense is None else sense.copy()))
        return real_solve(self, H, q, sense, *rest)

    monkeypatch.setattr(newton_qp, "_on_working_set", spy_short)
    monkeypatch.setattr(newton_qp._ScreenedRows, "solve", spy_solve)
    warm = solve_separable(C, lower, upper, mu, b, phi, x0, target=1e-11, working=given)
    rows = set(np.flatnonzero(given & 1)) | {0, 1}
    assert len(rows) <= C.shape[1]  # the instance's union fits (else the first step would start from scratch)
    kind, first = calls[0]
    assert kind == "daqp"  # the first step's working set only starts DAQP: no shortcut try
    assert set(np.flatnonzero(first)) == rows
    assert first[0] == 3 and first[1] == 1  # the start's sides: lower for row 0, upper for row 1
    assert warm.status == cold.status == "optimal"
    assert warm.value == pytest.approx(cold.value, abs=1e-10)


@pytest.mark.parametrize("screen", [True, False])
def test_whitened_newton_qps_end_where_daqp_on_the_hessian_ends(monkeypatch, screen):
    """From ``MIN_VARS`` variables on, each Newton QP reaches DAQP whitened (``u = Lᵀy``, rows ``C L⁻ᵀ``): the solve
    ends at the same point, value and bound as with DAQP given the Hessian itself, screened rows or all rows."""
    C, lower, upper, mu, b, a, v, w = _large_instance(3, m=500, n=newton_qp.MIN_VARS + 4)
    phi = _logistic_rows(a, v, w)
    x0 = np.zeros(C.shape[1])
    lower, upper = np.minimum(lower, 0.0), np.maximum(upper, 0.0)  # x0 = 0 inside every interval
    outs = []
    for smallest in (newton_qp.MIN_VARS, 10**9):
        monkeypatch.setattr(newton_qp, "MIN_VARS", smallest)
        outs.append(solve_separable(C, lower, upper, mu, b, phi, x0, target=1e-11, screen=screen))
    white, plain = outs
    assert white.status == plain.status == "optimal"
    assert white.value == pytest.approx(plain.value, abs=1e-10)
    np.testing.assert_allclose(white.x, plain.x, atol=1e-7)
    assert white.bound <= plain.value + 1e-10 and plain.bound <= white.value + 1e-10


def test_whitened_rows_whiten_each_row_once_and_agree_with_a_whole_whitening(monkeypatch):
    """The screening rounds of one Newton step solve QPs on growing subsets of the same rows: each row is whitened
    the first time a subset holds it (one triangular solve for the new rows), and the subset's whitened QP is the
    one :meth:`Whitened.of` makes of it."""
    rng = np.random.default_rng(3)
    n, m = 40, 120
    R = rng.standard_normal((200, n))
    P, q, C = R.T @ R + 1e-3 * np.eye(n), rng.standard_normal(n), rng.standard_normal((m, n))
    subsets = [np.arange(0, m, 3), np.arange(0, m, 2), np.arange(m)]  # overlapping, growing
    wants = [whitened.Whitened.of(P, q, C[idx]) for idx in subsets]
    whitened_now = []
    real = whitened.whiten_rows
    monkeypatch.setattr(whitened, "whiten_rows", lambda L, rows: whitened_now.append(len(rows)) or real(L, rows))
    rows = whitened.WhitenedRows(P, q, C)
    for idx, want in zip(subsets, wants):
        got = rows.on(idx)
        np.testing.assert_allclose(got.rows, want.rows, rtol=1e-13, atol=1e-13)
        np.testing.assert_array_equal(got.L, want.L)
        np.testing.assert_array_equal(got.lin, want.lin)
    assert whitened_now == [40, 40, 40]  # rows 0, 3, ...; then the even ones not yet whitened; then the rest
    assert whitened.WhitenedRows(np.zeros((n, n)), q, C).on(subsets[0]) is None  # no factor: DAQP gets P itself


def test_a_given_start_hessian_is_corrected_on_the_rows_whose_curvature_differs(monkeypatch):
    """``_corrected_hessian`` is ``_hessian`` (to rounding) from a Hessian of the same rows whose ``φ''`` differs on
    a few rows, without forming it, and forms it anew when many differ; a solve given such a start Hessian ends where
    a cold one does."""
    C, lower, upper, mu, b, a, v, w = _large_instance(5)
    rng = np.random.default_rng(8)
    d0 = rng.uniform(0, 1, C.shape[0]) * (rng.random(C.shape[0]) < 0.8)
    given = (newton_qp._hessian(C, d0, mu), d0)
    real, formed = newton_qp._hessian, []
    monkeypatch.setattr(newton_qp, "_hessian", lambda *args: formed.append(1) or real(*args))
    for share, forms in ((0.02, False), (0.9, True)):
        d2 = d0.copy()
        flip = rng.random(C.shape[0]) < share
        d2[flip] = rng.uniform(0, 1, flip.sum())
        formed.clear()
        got = newton_qp._corrected_hessian(C, d2, mu, given)
        assert bool(formed) == forms  # corrected from the given one, or formed anew
        want = real(C, d2, mu)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())
    formed.clear()  # a μ tiny against H: subtracting terms could leave it indefinite by rounding, so formed anew
    newton_qp._corrected_hessian(C, d0, 1e-14, (real(C, d0, 1e-14), d0))
    assert formed
    monkeypatch.setattr(newton_qp, "_hessian", real)
    phi = _logistic_rows(a, v, w)
    x0 = np.zeros(C.shape[1])
    lower, upper = np.minimum(lower, 0.0), np.maximum(upper, 0.0)
    cold = solve_separable(C, lower, upper, mu, b, phi, x0, target=1e-11)
    assert cold.start_curvature is not None
    other = _logistic_rows(a, v * np.where(np.arange(C.shape[0]) < 5, 2.0, 1.0), w)  # 5 rows' loss differs
    moved = solve_separable(C, lower, upper, mu, b, other, x0, target=1e-11)
    warmed = solve_separable(C, lower, upper, mu, b, other, x0, target=1e-11, curvature=cold.start_curvature)
    assert warmed.status == moved.status == "optimal"
    assert warmed.value == pytest.approx(moved.value, abs=1e-10)
    assert warmed.bound <= moved.value + 1e-10 and moved.bound <= warmed.value + 1e-10


def test_a_failed_whitened_newton_qp_is_redone_on_the_hessian(monkeypatch):
    """Newton QPs with a nearly singular Hessian (few rows with curvature, weight decay 1e-14) and ``x = 0`` inside
    every interval: with the pivot guard off, some whitened DAQP solves fail; each is solved again on ``H`` itself,
    so every status is DAQP's on ``H`` (never a failure or an "infeasible" that whitening made)."""
    rng = np.random.default_rng(0)
    monkeypatch.setattr(whitened, "MIN_PIVOT", 0.0)
    for _ in range(12):
        n, m, mu = 40, 200, 1e-14
        Ca = rng.standard_normal((int(rng.integers(2, n)), n))
        H = Ca.T @ (Ca * rng.uniform(0, 0.25, Ca.shape[0])[:, None]) / m + mu * np.eye(n)
        C, q = rng.standard_normal((m, n)), rng.standard_normal(n)
        lo = np.where(rng.random(m) < 0.5, -rng.uniform(0.1, 1, m), -1e30)
        up = np.where(lo < -1e29, rng.uniform(0.1, 1, m), 1e30)
        got = _qp(H, q, C, lo, up, None, {"eps_prox": -1e-6})
        monkeypatch.setattr(newton_qp, "MIN_VARS", 10**9)
        want = _qp(H, q, C, lo, up, None, {"eps_prox": -1e-6})
        monkeypatch.setattr(newton_qp, "MIN_VARS", whitened.MIN_VARS)
        assert got[0] == want[0] != "infeasible"


def test_the_same_fit_twice_in_one_process_takes_the_same_path():
    """Warm starts kept between block solves (the neighbouring piece's solve starts from the own piece's working
    set) never carry over from one run to the next: a second identical fit repeats the first exactly."""
    X, y = _three_classes(300)
    runs = [ReLUClassifier([6, 5], weight_decay=1e-3, random_state=1, max_iter=2, device="cpu").fit(X, y).result_
            for _ in range(2)]
    assert [h.objective for h in runs[0].history] == [h.objective for h in runs[1].history]
    assert runs[0].certificate.block_gaps == runs[1].certificate.block_gaps


def _tiny_rows_instance(seed: int, m: int = 400, n: int = 6, scale: float = 1e-7):
    """Rows of norm ~``scale`` (a layer whose inputs are tiny), each with one finite side near a start inside
    every interval (the start on a ReLU unit's piece), as on a network's own piece."""
    rng = np.random.default_rng(seed)
    C = rng.standard_normal((m, n)) * scale
    a, v = rng.standard_normal(m), rng.standard_normal(m) * 2
    x0 = rng.standard_normal(n)
    z0 = C @ x0
    gap = rng.exponential(0.5, m) * np.abs(z0).mean()
    side = rng.random(m) < 0.5
    lower, upper = np.where(side, z0 - gap, -np.inf), np.where(~side, z0 + gap, np.inf)
    return C, lower, upper, 1e-3, rng.standard_normal(n) * 0.1, a, v, 1.0 / m, x0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rows_of_tiny_norm_are_kept_to_within_daqps_tolerance_in_x(seed):
    """Rows of norm 1e-7: DAQP's absolute ``primal_tol`` (1e-6 in ``c_iᵀx``) would take points 10 away from a row
    in ``x`` as on it (review of edffe35: the screened answer off the intervals, unlike the unscreened one). Both
    end on every interval (in ``x``, per row norm), at the same point, at Clarabel's optimum."""
    C, lower, upper, mu, b, a, v, w, x0 = _tiny_rows_instance(seed)
    phi = _logistic_rows(a, v, w)
    ref = _clarabel_optimum(C, lower, upper, mu, b, a, v, w, tol=1e-9)
    norms = np.linalg.norm(C, axis=1)
    outs = [solve_separable(C, lower, upper, mu, b, phi, x0, target=1e-11, screen=s) for s in (True, False)]
    for out in outs:
        z = C @ out.x
        assert np.max(np.maximum(lower - z, z - upper) / norms) <= 1e-9  # DAQP reports rounding only here
        assert out.bound <= ref + 1e-8 and out.value <= ref + 1e-8
    assert outs[0].value == pytest.approx(outs[1].value, abs=1e-12)
    np.testing.assert_allclose(outs[0].x, outs[1].x, atol=1e-6)
