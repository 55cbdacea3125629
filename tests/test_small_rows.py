"""Rows of small norm are the sets they say for every QP backend: DAQP, ProxQP, Clarabel, OSQP and the backends
through cvxpy get rows whose largest entry is below 1 scaled by powers of two (exact), because their feasibility
tolerances are absolute on a row's value. Before, on rows of norm 1e-10 to 1e-12, DAQP and OSQP returned "optimal"
points two units (in distance) outside them (value -0.505 against the true -0.353), Clarabel -0.435; DAQP called
``1e-6·x₁ ≥ 1e-3`` infeasible.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from multiconvex.solvers import dispatch
from multiconvex.solvers.matrix import row_scales, scale_rows
from multiconvex.subproblem import BlockSubproblem

BACKENDS = ["daqp", "proxqp", "clarabel", "osqp"]


def _tiny_rows() -> tuple[BlockSubproblem, BlockSubproblem]:
    """Five rows of norms 1.3, 1.3e-9, 1.3e-10, 1.3e-11, 2.8e-12 (a feasible set), and the same rows divided by their
    norms (the same set up to rounding)."""
    rng = np.random.default_rng(9873)
    n, m = 3, 5
    M = rng.standard_normal((n, n))
    P = M @ M.T / n + 1e-6 * np.eye(n)
    q = rng.standard_normal(n)
    A = rng.standard_normal((m, n)) * 10.0 ** -rng.integers(0, 14, size=(m, 1))
    x_in = rng.standard_normal(n) * 3
    lower = A @ x_in - rng.random(m) * np.abs(A).sum(1)
    norms = np.linalg.norm(A, axis=1)
    upper = np.full(m, np.inf)
    return (BlockSubproblem.from_dense(P, q, A=A, l=lower, u=upper),
            BlockSubproblem.from_dense(P, q, A=A / norms[:, None], l=lower / norms, u=upper))


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_qp_backend_keeps_to_rows_of_small_norm(backend):
    tiny, unit = _tiny_rows()
    reference = dispatch.solve(unit, dispatch.make_plan("clarabel"))
    assert reference.status == "optimal" and reference.value == pytest.approx(-0.3525536972, abs=1e-8)
    sol = dispatch.solve(tiny, dispatch.make_plan(backend))
    assert sol.ok and sol.value == pytest.approx(reference.value, abs=1e-6)
    distance = (tiny.l - tiny.A @ sol.x) / np.linalg.norm(tiny.A.toarray(), axis=1)
    assert distance.max() < 1e-5  # inside every row, in distance (before: up to 1.9 outside)


@pytest.mark.parametrize("backend", ["ecos", "scs", "highs", "scip"])
def test_backends_through_cvxpy_keep_to_rows_of_small_norm(backend):
    """The cvxpy bridge scales the rows as the matrix modules do: ECOS, SCS, HiGHS and SCIP had returned "optimal"
    at -0.505, 1.9 units outside the rows."""
    tiny, _ = _tiny_rows()
    sol = dispatch.solve(tiny, dispatch.make_plan(backend))
    assert sol.ok and sol.value == pytest.approx(-0.3525536972, abs=1e-6)
    distance = (tiny.l - tiny.A @ sol.x) / np.linalg.norm(tiny.A.toarray(), axis=1)
    assert distance.max() < 1e-5


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_far_row_of_norm_1e_minus_6_is_solved(backend):
    far = BlockSubproblem.from_dense(np.eye(2), np.zeros(2), A=np.array([[1e-6, 0.0]]), l=[1e-3], u=[np.inf])
    sol = dispatch.solve(far, dispatch.make_plan(backend))
    assert sol.ok and sol.x[0] == pytest.approx(1000.0, rel=1e-6) and sol.value == pytest.approx(500_000, rel=1e-6)


def test_the_scales_are_powers_of_two_and_only_where_exact():
    A = np.array([[1e-6, 0.0], [3.0, 1.0], [1e-320, 1e-3], [0.0, 0.0]])
    lower = np.array([1e-3, 0.0, 0.0, -1.0])
    upper = np.array([np.inf, 1.0, 1e308, 1.0])
    d = row_scales(A, lower, upper)
    assert d is not None and d.tolist() == [2.0**20, 1.0, 1.0, 1.0]  # 1e308 · 1024 would overflow; zero rows stay
    assert np.all(np.frexp(np.abs(A[0] * d[0]).max())[1] == 1)  # the largest entry now in [1, 2)
    assert row_scales(np.array([[2.0, 1.0]]), np.zeros(1), np.ones(1)) is None  # never scaled down


def test_a_side_scaled_to_the_solvers_infinity_keeps_its_scale_and_a_pattern_keeps_its_zeros():
    """A review's cases: ``1e-20·x₁ ≥ 1e12`` scaled by 2⁶⁷ puts the side at 1.5e32, past the 1e30 at which DAQP, ProxQP
    and OSQP read "no side" (ProxQP had solved it before and then no longer did); and a sparse product dropped the
    explicit zeros of a fixed pattern, so Clarabel's kept solver rebuilt on every such solve."""
    A = np.array([[1e-20, 0.0]])
    assert row_scales(A, np.array([1e12]), np.array([np.inf])) is None
    far = BlockSubproblem.from_dense(np.eye(2), np.zeros(2), A=A, l=[1e12], u=[np.inf])
    sol = dispatch.solve(far, dispatch.make_plan("proxqp"))
    assert sol.ok and sol.x[0] == pytest.approx(1e32, rel=1e-9)
    pattern = sp.csr_matrix((np.array([1e-3, 0.0, 2e-3]), np.array([0, 1, 1]), np.array([0, 2, 3])), shape=(2, 2))
    scaled = scale_rows(pattern, np.array([1024.0, 256.0]))
    assert scaled.nnz == 3 and np.array_equal(scaled.indices, pattern.indices)
    assert np.array_equal(scaled.data, pattern.data * np.array([1024.0, 1024.0, 256.0]))  # exact, zero kept
