"""The working set found in bulk (:mod:`multiconvex.solvers.bulk_active_set`): DAQP's answer where it settles,
``None`` where it cannot, and Newton solves that end where DAQP alone ends."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import logistic_rows

from multiconvex.solvers import bulk_active_set, newton_qp
from multiconvex.solvers.bulk_active_set import guess_working_set
from multiconvex.solvers.matrix import finite_or_big
from multiconvex.solvers.newton_qp import _optimal_on, _qp, _working_set, solve_separable
from multiconvex.solvers.whitened import WhitenedRows

TOL, DUAL_TOL = 1e-6, 1e-12  # DAQP's primal_tol and dual_tol as the Newton steps use them


def _interval_qp(seed: int, n: int, m: int):
    """A strictly convex QP with ``m`` interval rows of mixed norms, their sides about one unit of distance from 0,
    and its unconstrained minimum outside many of them: 20–40 rows bind at the answer for ``n = 60`` (as a ReLU
    unit's Newton step); sides as DAQP takes them (±BIG where free)."""
    rng = np.random.default_rng(seed)
    R = rng.standard_normal((3 * n, n))
    H = R.T @ R / n + 1e-2 * np.eye(n)
    C = rng.standard_normal((m, n)) * rng.uniform(0.2, 5.0, (m, 1))
    norms = np.linalg.norm(C, axis=1)
    lower = np.where(rng.random(m) < 0.6, -norms * rng.exponential(1.0, m), -np.inf)
    upper = np.where(rng.random(m) < 0.6, norms * rng.exponential(1.0, m), np.inf)
    q = -H @ (rng.standard_normal(n) * 0.3)
    return H, q, C, finite_or_big(lower), finite_or_big(upper)


@pytest.mark.parametrize("seed", range(6))
def test_the_guess_is_daqps_answer(seed):
    H, q, C, lo, up = _interval_qp(seed, n=60, m=400)
    out = guess_working_set(WhitenedRows(H, q, C), C, lo, up, np.linalg.norm(C, axis=1), TOL)
    assert out is not None, "settles on these instances"
    status, y, lam, _ = _qp(H, q, C, lo, up, None, {})
    assert status == "optimal" and y is not None
    assert 20 <= np.count_nonzero(out.sense) < 60  # instances where many rows bind
    np.testing.assert_array_equal(out.sense, _working_set(lam))
    np.testing.assert_allclose(out.y, y, atol=1e-8)
    np.testing.assert_allclose(out.nu, lam, rtol=1e-6, atol=1e-9)
    assert _optimal_on(C, lo, up, out.sense, out.y, out.nu, TOL, DUAL_TOL)


def test_a_start_at_the_answer_settles_in_one_round():
    H, q, C, lo, up = _interval_qp(0, n=60, m=400)
    norms = np.linalg.norm(C, axis=1)
    first = guess_working_set(WhitenedRows(H, q, C), C, lo, up, norms, TOL)
    assert first is not None
    again = guess_working_set(WhitenedRows(H, q, C), C, lo, up, norms, TOL, start=first.sense, max_rounds=1)
    assert again is not None
    np.testing.assert_array_equal(again.sense, first.sense)


def test_the_guess_declines_what_it_cannot_settle():
    H, q, C, lo, up = _interval_qp(1, n=60, m=400)
    norms = np.linalg.norm(C, axis=1)
    # rounds spent: one round adds at most `add` rows
    assert guess_working_set(WhitenedRows(H, q, C), C, lo, up, norms, TOL, add=2, max_rounds=3) is None
    # dependent rows: a row twice, both violated, join in one round: the Schur complement is singular
    n = 4
    H2, q2 = np.eye(n), -10.0 * np.ones(n)
    C2 = np.vstack([np.eye(n)[:1], np.eye(n)[:1]])
    lo2, up2 = np.full(2, -1e30), np.ones(2)
    assert guess_working_set(WhitenedRows(H2, q2, C2), C2, lo2, up2, np.ones(2), TOL) is None
    # more rows than variables in the set (a start that holds them)
    C3 = np.vstack([np.eye(n), np.eye(n)[:1] + np.eye(n)[1:2]])
    start = np.ones(5, dtype=np.int32)
    assert guess_working_set(WhitenedRows(H2, q2, C3), C3, np.full(5, -1e30), np.ones(5), np.ones(5), TOL,
                             start=start) is None
    with pytest.raises(ValueError, match="Cholesky"):  # no factor (H not positive definite)
        guess_working_set(WhitenedRows(-np.eye(n), q2, C2), C2, lo2, up2, np.ones(2), TOL)




def _unit_instance(seed: int, n: int, m: int):
    """A logistic unit block's data with ``n`` variables (as a first-layer unit of a wide input)."""
    rng = np.random.default_rng(seed)
    C = rng.standard_normal((m, n))
    a, v = rng.standard_normal(m), rng.standard_normal(m) * 2
    z = C @ rng.standard_normal(n) * 0.1
    lower = np.where(rng.random(m) < 0.6, z - rng.exponential(0.3, m), -np.inf)
    upper = np.where(rng.random(m) < 0.6, z + rng.exponential(0.3, m), np.inf)
    lower, upper = np.minimum(lower, 0.0), np.maximum(upper, 0.0)  # x = 0 inside every interval
    return C, lower, upper, 1e-3, rng.standard_normal(n) * 0.3, logistic_rows(a, v, 1.0 / m)


@pytest.mark.parametrize("screen", [False, True])
@pytest.mark.parametrize("rounds", [None, 1])  # 1: the guess never settles, DAQP starts from what it had
def test_newton_solves_with_bulk_working_sets_end_where_daqp_alone_ends(monkeypatch, screen, rounds):
    n = newton_qp.BULK_VARS + 8
    C, lower, upper, mu, b, phi = _unit_instance(0, n, m=2400)
    x0 = np.zeros(n)
    used: list[bool] = []
    real = bulk_active_set.guess_working_set

    def spy(*args, **kwargs):
        out = real(*args, **kwargs, max_rounds=rounds)
        used.append(out is not None)
        return out

    monkeypatch.setattr(newton_qp, "guess_working_set", spy)
    bulk = solve_separable(C, lower, upper, mu, b, phi, x0, target=1e-11, screen=screen)
    assert used and (any(used) if rounds is None else not all(used))  # 1 round settles only at the answer
    monkeypatch.setattr(newton_qp, "BULK_VARS", 10**9)
    plain = solve_separable(C, lower, upper, mu, b, phi, x0, target=1e-11, screen=screen)
    assert bulk.status == plain.status == "optimal" and bulk.value - bulk.bound <= 1e-11
    assert np.count_nonzero(bulk.working) >= 10  # rows bind at the optimum
    assert bulk.value == pytest.approx(plain.value, abs=1e-10)
    np.testing.assert_allclose(bulk.x, plain.x, atol=1e-6)
    assert bulk.bound <= plain.value + 1e-10 and plain.bound <= bulk.value + 1e-10
    z = C @ bulk.x
    assert np.all(z >= lower - 1e-9) and np.all(z <= upper + 1e-9)


def test_the_check_refuses_each_failed_condition():
    """``_optimal_on`` on rows that do not interact (``H = I``, unit rows): rows 0 and 1 at their upper sides 1 with
    multipliers 2 are the answer of ``min ½‖y‖² − 3y₀ − 3y₁``; each condition broken alone is refused."""
    n = 5
    C = np.eye(n)
    lo, up = np.full(n, -1e30), np.array([1.0, 1.0, 1e30, 1e30, 1e30])
    y, nu = np.array([1.0, 1.0, 0.0, 0.0, 0.0]), np.array([2.0, 2.0, 0.0, 0.0, 0.0])
    sense = _working_set(nu)
    assert _optimal_on(C, lo, up, sense, y, nu, TOL, DUAL_TOL)
    wrong_sign = nu.copy()
    wrong_sign[0] = -2.0
    assert not _optimal_on(C, lo, up, sense, y, wrong_sign, TOL, DUAL_TOL)
    off_side = y.copy()
    off_side[0] -= 10 * TOL  # inside its interval, off the side the set holds it at
    assert not _optimal_on(C, lo, up, sense, off_side, nu, TOL, DUAL_TOL)
    up_violated = up.copy()
    up_violated[2] = -1e-3  # a row off the set that the point violates
    assert not _optimal_on(C, lo, up_violated, sense, y, nu, TOL, DUAL_TOL)
    assert not _optimal_on(C, lo, up, sense, np.where(np.arange(n) == 3, np.nan, y), nu, TOL, DUAL_TOL)


@pytest.mark.parametrize("refuse", [False, True])
def test_a_guess_is_taken_only_where_the_check_accepts_it(monkeypatch, refuse):
    """Every Newton step (rows not screened) either takes a guess that ``_optimal_on`` accepted or asks DAQP once;
    refused guesses (all of them with ``refuse``) leave the answer DAQP's."""
    n = newton_qp.BULK_VARS + 8
    C, lower, upper, mu, b, phi = _unit_instance(1, n, m=2400)
    accepted, daqp_calls = [], []
    real_check, real_qp = newton_qp._optimal_on, newton_qp._qp

    def check(*args):
        ok = False if refuse else real_check(*args)
        accepted.append(ok)
        return ok

    def qp(*args, **kwargs):
        daqp_calls.append(1)
        return real_qp(*args, **kwargs)

    monkeypatch.setattr(newton_qp, "_optimal_on", check)
    monkeypatch.setattr(newton_qp, "_qp", qp)
    out = solve_separable(C, lower, upper, mu, b, phi, np.zeros(n), target=1e-11, screen=False)
    assert out.status == "optimal" and out.value - out.bound <= 1e-11
    assert out.iterations == sum(accepted) + len(daqp_calls)
    assert (sum(accepted) == 0) if refuse else (sum(accepted) >= 1)
    monkeypatch.setattr(newton_qp, "BULK_VARS", 10**9)
    plain = solve_separable(C, lower, upper, mu, b, phi, np.zeros(n), target=1e-11, screen=False)
    assert out.value == pytest.approx(plain.value, abs=1e-10)
