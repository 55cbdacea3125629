"""The shortcuts of the hot block step (issue 10, the demo within 2× of numpy ALS) give the same numbers as the
long way they replace: the summed Gram matrix, the negated linear part, the kept scratch arrays of the shared-Gram
solve, the lower bound of ``max|q|``, the skipped BLAS context, and the memory check that reads the free memory
first."""

from __future__ import annotations

import threading

import cvxpy as cp
import numpy as np
import pytest

import multiconvex as mc
from multiconvex.cvxpy_front import sizes
from multiconvex.cvxpy_front.quadratic import _linear_part, compile_block
from multiconvex.cvxpy_front.sizes import MEMORY_SHARE, UNCHECKED_BYTES, check_block_sizes
from multiconvex.solvers import dispatch
from multiconvex.solvers.closed_form import ClosedForm
from multiconvex.subproblem import BlockSubproblem, KronTerm, _summed_gram, half_quadratic, make_slots


def _summed_from_zero(k: int, parts: list) -> np.ndarray:
    """The sum as it was written before: from a zero matrix, in order, the identity on the diagonal."""
    G = np.zeros((k, k))
    for scale, M in parts:
        if M is None:
            G.flat[:: k + 1] += scale
        else:
            G += scale * M
    return G


@pytest.mark.parametrize("parts_of", [
    lambda M: [(1.0, M), (8.0, None)],  # a factor's Gram matrix and its ridge: the one-addition route
    lambda M: [(8.0, None), (1.0, M)],
    lambda M: [(0.5, M), (3.0, None), (2.0, M.T)],
    lambda M: [(1.0, M)],
])
def test_the_summed_gram_matrix_is_the_sum_from_zero_bit_for_bit(parts_of):
    rng = np.random.default_rng(0)
    B = rng.standard_normal((12, 40))
    M = B @ B.T
    M[0, 1] = M[1, 0] = -0.0  # a negative zero: the sum from +0 drops its sign
    got = _summed_gram(12, parts_of(M))
    want = _summed_from_zero(12, parts_of(M))
    assert got.tobytes() == want.tobytes()


def test_the_summed_gram_matrix_does_not_share_memory_with_its_parts():
    M = np.eye(3) * 2.0
    G = _summed_gram(3, [(1.0, M), (1.0, None)])
    G[0, 0] = 99.0
    assert M[0, 0] == 2.0 and _summed_gram(3, [(1.0, M), (1.0, None)])[0, 0] == 3.0


@pytest.mark.parametrize("m, k, n", [(600, 12, 64), (5, 12, 64), (40, 3, 2)])
def test_a_negated_linear_part_negates_the_smaller_factor_and_gives_the_same_numbers(m, k, n):
    rng = np.random.default_rng(m)
    C, R = rng.standard_normal((m, n)), rng.standard_normal((k, n))
    slot = make_slots([("U", (m, k))])[0]
    q = np.empty(m * k)
    _linear_part(q, slot, -1.0, C, lambda A: np.ascontiguousarray(A.T), None, R, False)
    want = -(R @ np.ascontiguousarray(C.T))  # the product negated: what the long way computes
    assert q.reshape(k, m).tobytes() == want.tobytes()


def test_a_broadcast_constant_keeps_the_general_linear_part():
    # C a scalar broadcast over the residual: R Cᵀ is not the slot's shape, so the general route builds it
    U, V = cp.Variable((4, 2), name="U"), cp.Variable((2, 3), name="V")
    U.value, V.value = np.ones((4, 2)), np.arange(6.0).reshape(2, 3)
    expr = cp.sum_squares(2.0 - U @ V)
    qb, why = compile_block(expr, [], [U])
    assert qb is not None, why
    sub = qb.subproblem()
    x = np.linspace(-1.0, 1.0, 8)
    U.value = x.reshape((4, 2), order="F")
    assert sub.value(x) == pytest.approx(expr.value, rel=1e-12)


def _factor_block(m: int, k: int, seed: int) -> BlockSubproblem:
    rng = np.random.default_rng(seed)
    B = rng.standard_normal((k, 3 * k))
    quad = [KronTerm(0, 0, None, B @ B.T), KronTerm(0, 0, None, None, 0.5)]
    return BlockSubproblem(make_slots([("U", (m, k))]), quad, rng.standard_normal(m * k), 1.25)


def test_shared_gram_solves_of_alternating_blocks_give_the_numbers_of_fresh_solves():
    blocks = [_factor_block(50, 4, 1), _factor_block(30, 6, 2), _factor_block(40, 5, 3)]
    fresh = []
    for sub in blocks:
        out = ClosedForm().solve(sub, {}, None)
        assert "verified inverse" in out.native_status
        fresh.append((out.x.copy(), out.value))
    for _ in range(3):  # three shapes in turn: the kept scratch arrays are replaced and reused
        for sub, (x, value) in zip(blocks, fresh):
            out = ClosedForm().solve(sub, {}, None)
            assert out.x.tobytes() == x.tobytes() and out.value == value
            assert out.value == sub.value(out.x)  # still the subproblem's own arithmetic


def test_shared_gram_solves_on_two_threads_at_once_give_the_numbers_of_solves_in_turn():
    subs = [_factor_block(200, 6, s) for s in range(8)]
    want = [ClosedForm().solve(sub, {}, None) for sub in subs]
    got: dict[int, list] = {0: [], 1: []}

    def work(t: int) -> None:
        for _ in range(20):
            for i in range(t, len(subs), 2):
                got[t].append((i, ClosedForm().solve(subs[i], {}, None)))

    threads = [threading.Thread(target=work, args=(t,)) for t in (0, 1)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for t in (0, 1):
        for i, out in got[t]:
            assert out.x.tobytes() == want[i].x.tobytes() and out.value == want[i].value


def test_a_zero_first_entry_of_q_keeps_the_verified_shared_gram_route():
    sub = _factor_block(40, 4, 5)
    sub.q[0] = 0.0  # a column of zeros in the data makes the first entry 0 (the demo's digits: pixel 0)
    out = ClosedForm().solve(sub, {}, None)
    assert out.status == "optimal" and "verified inverse" in out.native_status
    assert out.info["residual_bound"] <= 1e-8


def test_the_one_blas_thread_context_is_known_to_be_held_inside_and_not_outside():
    held = []
    th = threading.Thread(target=lambda: held.append(dispatch.one_blas_thread_held()))
    with dispatch.one_blas_thread():
        assert dispatch.one_blas_thread_held()
        th.start()
        th.join()
    assert held == [False]  # per thread
    assert not dispatch.one_blas_thread_held()


def _unread():
    raise AssertionError("the available memory was read")


def test_small_blocks_skip_reading_the_memory_and_large_ones_are_checked_against_it(monkeypatch):
    U, V = cp.Variable((30, 3)), cp.Variable((3, 20))
    prob = cp.Problem(cp.Minimize(cp.sum_squares(np.ones((30, 20)) - U @ V)))
    monkeypatch.setattr(sizes, "available_memory", _unread)
    check_block_sizes(prob, [[U], [V]])  # tiny blocks: the available memory is not asked
    with pytest.raises(mc.InvalidInputError, match="more than the"):
        check_block_sizes(prob, [[U], [V]], available=64)  # a budget given is still the budget
    # a block over UNCHECKED_BYTES is checked against the memory available now: refused when it is short
    x = cp.Variable(2000)  # a dense 2000 x 2000 quadratic: 32 MB
    big = cp.Problem(cp.Minimize(cp.sum_squares(np.ones((2000, 2000)) @ x - 1.0)))
    monkeypatch.setattr(sizes, "available_memory", lambda: UNCHECKED_BYTES)
    with pytest.raises(mc.InvalidInputError, match="more than the"):
        check_block_sizes(big, [[x]])
    assert 0 < MEMORY_SHARE < 1


def test_the_demo_factorization_keeps_its_iterates_certificate_and_objective():
    rng = np.random.default_rng(0)
    Y = rng.standard_normal((60, 8))
    Y[:, 0] = 0.0  # a zero column, as in the digits
    U, V = cp.Variable((60, 3), name="U"), cp.Variable((3, 8), name="V")
    prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(Y - U @ V) + 4.0 * (cp.sum_squares(U) + cp.sum_squares(V))))
    res = mc.solve(prob, [[U], [V]], solver="auto", seed=0, tol=1e-6, progress=False)
    start = np.random.default_rng(0)
    Ua, Va = start.standard_normal((60, 3)), start.standard_normal((3, 8))
    for _ in range(res.iterations):  # numpy ALS doing the same sweeps from the same start
        Ua = np.linalg.solve(Va @ Va.T + 8.0 * np.eye(3), Va @ Y.T).T
        Va = np.linalg.solve(Ua.T @ Ua + 8.0 * np.eye(3), Ua.T @ Y)
    f_als = 0.5 * np.sum((Y - Ua @ Va) ** 2) + 4.0 * (np.sum(Ua ** 2) + np.sum(Va ** 2))
    assert res.status == "converged" and res.certificate.is_partial_minimum
    assert res.backends_used == {"lstsq": 2 * res.iterations + 2}
    assert res.objective == pytest.approx(f_als, rel=1e-12)
    np.testing.assert_allclose(res.values["U"], Ua, atol=1e-10)


def test_the_halved_quadratic_survives_a_dot_product_just_past_the_largest_float():
    x = np.array([1.5e154, 1.5e154])
    px = np.array([6e153, 6e153])  # x·px = 1.8e308 > max float; halved it is 9e307
    assert not np.isfinite(x @ px)
    assert half_quadratic(x, px) == float((0.5 * x) @ px) and np.isfinite(half_quadratic(x, px))
    y = np.array([3.0, -1.0])
    assert half_quadratic(y, np.array([2.0, 5.0])) == 0.5
