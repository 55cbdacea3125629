"""Infeasibility and unboundedness are reported only when proven in exact arithmetic (solvers/exact_rays.py).

The pathological cases of the review: a feasible system whose every solution is ~10¹⁶ times the data (with
inequality rows), and strictly convex QPs whose smallest eigenvalue is below rounding of the largest. No backend
may call them infeasible / unbounded; genuinely infeasible / unbounded blocks still are, and the proof is named.
"""

from __future__ import annotations

import time
from fractions import Fraction

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import linprog

from multiconvex.errors import InvalidInputError
from multiconvex.solvers import status as st
from multiconvex.solvers.closed_form import ClosedForm
from multiconvex.solvers.dispatch import MATRIX_SOLVERS, make_plan, solve
from multiconvex.solvers.exact_rays import (
    crossed_pair,
    feasible_exactly,
    infeasible_exactly,
    interval_ray,
    interval_rows,
    settle_unbounded_claim,
    unbounded_exactly,
)
from multiconvex.solvers.proxqp_qp import DEFAULT_MAX_ITER, ProxqpQP
from multiconvex.solvers.registry import get_backend
from multiconvex.subproblem import BlockSubproblem

pytestmark = [
    pytest.mark.filterwarnings(r"ignore:(?s).*infeasible or unbounded:UserWarning"),
    pytest.mark.filterwarnings(r"ignore:Solution may be inaccurate:UserWarning"),
]

QP_BACKENDS = ["clarabel", "osqp", "daqp", "auto"]
EPS = 2.0**-52


def _need(name: str) -> None:
    if name != "auto" and not get_backend(name).installed():
        pytest.skip(f"{name} is not installed")


def huge_solution_system(with_bounds: bool) -> BlockSubproblem:
    """``x₁ + x₂ ≤ 1`` and ``x₁ + (1 + 2⁻⁵²) x₂ ≥ 2``: feasible, every solution has ``x₂ ≥ 2⁵²``; its float
    ray ``(1, −1)`` has ``‖Aᵀy‖ = 2⁻⁵²`` against ``uᵀy₊ − lᵀy₋ = −1`` (the old relative test took it)."""
    A = np.array([[1.0, 1.0], [1.0, 1.0 + EPS]])
    bounds = {"lb": np.array([-2.0**60, 0.0]), "ub": np.array([np.inf, 2.0**60])} if with_bounds else {}
    return BlockSubproblem.from_dense(np.eye(2), np.zeros(2), A=A, l=np.array([-np.inf, 2.0]),
                                      u=np.array([1.0, np.inf]), **bounds)


def test_the_huge_solution_system_is_feasible_in_exact_arithmetic():
    x1, x2 = Fraction(1) - Fraction(2) ** 52, Fraction(2) ** 52
    assert x1 + x2 <= 1 and x1 + (1 + Fraction(EPS)) * x2 >= 2
    assert abs(x1) <= 2**60 and 0 <= x2 <= 2**60  # inside the bounds of the bounded variant


@pytest.mark.parametrize("with_bounds", [False, True])
@pytest.mark.parametrize("backend", QP_BACKENDS)
def test_a_feasible_system_with_huge_solutions_is_never_proved_infeasible(backend, with_bounds):
    _need(backend)
    sol = solve(huge_solution_system(with_bounds), make_plan(backend))
    assert sol.status != st.INFEASIBLE, sol.attempts


@pytest.mark.parametrize("backend", ["clarabel", "osqp", "daqp"])
def test_no_backend_module_calls_the_huge_solution_system_a_proof(backend):
    _need(backend)
    out = MATRIX_SOLVERS[backend].solve(huge_solution_system(False), {}, None, {})
    assert not (out.status == st.INFEASIBLE and out.proof), out.native_status


def test_the_float_ray_of_the_huge_solution_system_is_refused_exactly():
    A = np.array([[1.0, 1.0], [1.0, 1.0 + EPS]])
    lo, hi = np.array([-np.inf, 2.0]), np.array([1.0, np.inf])
    M, b, n_zero = interval_rows(A, lo, hi)
    y = interval_ray(lo, hi, np.array([1.0, -1.0]))
    assert np.abs(M.T @ y).max() <= 1e-15 and b @ y == -1.0   # passes any relative float test
    assert infeasible_exactly(M, b, n_zero, (), y) is False


def tiny_eigenvalue_qp(eigenvalue: float, constrained: bool) -> BlockSubproblem:
    """``½(x₁² + λ x₂²) − x₂``: strictly convex, minimum at ``x₂ = 1/λ``; ``x₁ ≥ −1`` makes it a QP."""
    extra = {"lb": np.array([-1.0, -np.inf])} if constrained else {}
    return BlockSubproblem.from_dense(np.diag([1.0, eigenvalue]), np.array([0.0, -1.0]), **extra)


@pytest.mark.parametrize("eigenvalue", [1e-12, 1e-17])
@pytest.mark.parametrize("backend", QP_BACKENDS)
def test_a_strictly_convex_qp_with_a_tiny_eigenvalue_is_never_proved_unbounded(backend, eigenvalue):
    _need(backend)
    sol = solve(tiny_eigenvalue_qp(eigenvalue, constrained=True), make_plan(backend))
    assert sol.status != st.UNBOUNDED, sol.attempts


@pytest.mark.parametrize(("backend", "eigenvalue"), [
    *[(b, e) for b in ("clarabel", "osqp", "lstsq", "auto") for e in (1e-12,)],
    *[(b, 1e-17) for b in ("clarabel", "osqp", "lstsq", "auto")],
])
def test_an_unconstrained_tiny_eigenvalue_quadratic_is_never_proved_unbounded(backend, eigenvalue):
    sol = solve(tiny_eigenvalue_qp(eigenvalue, constrained=False), make_plan(backend))
    assert sol.status != st.UNBOUNDED, sol.attempts


def test_a_direction_with_curvature_below_rounding_is_refused_exactly():
    assert unbounded_exactly(np.diag([1.0, 1e-17]), np.array([0.0, -1.0]), None, 0, (), np.array([0.0, 1.0])) is False
    # the same direction against a P that is singular only up to rounding of its entries: refused
    P = np.array([[1.0, 1.0], [1.0, 1.0 + EPS]])
    assert unbounded_exactly(P, np.array([1.0, -1.0]), None, 0, (), np.array([1.0, -1.0])) is False
    assert unbounded_exactly(np.array([[1.0, 1.0], [1.0, 1.0]]), np.array([1.0, -1.0]), None, 0, (),
                             np.array([-1.0, 1.0 + 1e-12])) is True   # projected exactly onto the null space


# ------------------------------------------------------------------------------- genuine proofs, named


def infeasible_triangle() -> BlockSubproblem:
    """``x₁ + x₂ ≤ 1`` with ``x ≥ 0.6``: empty, and no two rows alone contradict each other."""
    return BlockSubproblem.from_dense(np.eye(2), np.zeros(2), A=np.array([[1.0, 1.0]]), l=np.array([-np.inf]),
                                      u=np.array([1.0]), lb=np.array([0.6, 0.6]))


@pytest.mark.parametrize("backend", QP_BACKENDS)
def test_an_empty_polyhedron_is_proved_infeasible_and_the_proof_is_named(backend):
    _need(backend)
    sol = solve(infeasible_triangle(), make_plan(backend))
    assert sol.status == st.INFEASIBLE, sol.attempts
    assert "checked exactly" in sol.how or "exact Farkas ray" in sol.how, sol.how


def crossed_unit_piece(seed: int = 0, n: int = 11, N: int = 400) -> BlockSubproblem:
    """A ReLU unit's block on an empty neighbouring piece: every sample keeps its sign (``s_p c_pᵀθ ≥ 0``) and
    one sample's interval is crossed (``s₀ c₀ᵀθ ≤ −1`` as a second, one-sided row)."""
    rng = np.random.default_rng(seed)
    C = np.c_[rng.standard_normal((N, n - 1)), np.ones(N)]
    s = np.where(C @ rng.standard_normal(n) >= 0, 1.0, -1.0)
    A = np.vstack([s[:, None] * C, s[0] * C[:1]])
    return BlockSubproblem.from_dense(np.eye(n) * 1e-3 + C.T @ C / N, rng.standard_normal(n), A=A,
                                      l=np.r_[np.zeros(N), -np.inf], u=np.r_[np.full(N, np.inf), -1.0])


def test_daqp_proves_a_crossed_piece_at_once_and_auto_goes_no_further():
    _need("daqp")
    sub = crossed_unit_piece()
    M, b, n_zero = interval_rows(sub.A, sub.l, sub.u)
    assert crossed_pair(M, b, n_zero)
    sol = solve(sub, make_plan("auto"))
    assert sol.status == st.INFEASIBLE and [n for n, _ in sol.attempts] == ["daqp"]
    assert "crossed pair" in sol.how


def separable_but_shifted(seed: int, n: int = 11, N: int = 300) -> BlockSubproblem:
    """``s_p c_pᵀθ ≥ 0.1`` for random signs: empty (with these seeds), and not by a crossed pair."""
    rng = np.random.default_rng(seed)
    C = np.c_[rng.standard_normal((N, n - 1)), np.ones(N)]
    s = rng.choice([-1.0, 1.0], N)
    return BlockSubproblem.from_dense(np.eye(n) * 1e-3 + C.T @ C / N, rng.standard_normal(n), A=s[:, None] * C,
                                      l=np.full(N, 0.1), u=np.full(N, np.inf))


def _empty_by_lp(sub: BlockSubproblem) -> bool:
    A = sub.A.toarray()
    res = linprog(np.zeros(sub.n), A_ub=-A, b_ub=-sub.l, bounds=[(None, None)] * sub.n, method="highs")
    return res.status == 2


@pytest.mark.parametrize("seed", range(3))
def test_daqp_proves_a_non_crossed_empty_piece_by_an_exact_phase_one_ray(seed):
    _need("daqp")
    sub = separable_but_shifted(seed)
    assert _empty_by_lp(sub)
    M, b, n_zero = interval_rows(sub.A, sub.l, sub.u)
    assert not crossed_pair(M, b, n_zero)
    sol = solve(sub, make_plan("daqp"))
    assert sol.status == st.INFEASIBLE and "exact Farkas ray" in sol.how, sol.how


@pytest.mark.parametrize("backend", ["clarabel", "osqp", "daqp"])
def test_an_unbounded_qp_is_proved_unbounded_exactly(backend):
    _need(backend)
    # P singular along (1, −1, 0), q descends along it, the row keeps x₁ + x₂ ≤ 1 (the direction is flat on it)
    P = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 2.0]])
    sub = BlockSubproblem.from_dense(P, np.array([-1.0, 0.5, 0.0]), A=np.array([[1.0, 1.0, 0.0]]),
                                     l=np.array([-np.inf]), u=np.array([1.0]), lb=np.array([-np.inf, -np.inf, -3.0]))
    sol = solve(sub, make_plan(backend))
    assert sol.status == st.UNBOUNDED, sol.attempts
    assert "exactly" in sol.how or "exact direction" in sol.how, sol.how


# ------------------------------------------------------------------------------- the exact check itself


def test_a_ray_off_by_rounding_is_projected_and_proven():
    M = np.array([[1.0, 1.0], [-1.0, -1.0]])            # x₁ + x₂ ≤ 1, x₁ + x₂ ≥ 2
    assert infeasible_exactly(M, np.array([1.0, -2.0]), 0, (), np.array([1.0, 1.0 + 1e-10])) is True
    assert infeasible_exactly(M, np.array([1.0, -0.5]), 0, (), np.array([1.0, 1.0])) is False   # 1 ≥ 0.5: feasible


def test_a_second_order_cone_ray_on_the_cone_boundary_is_proven_and_one_outside_is_not():
    # rows: −x₀ ≤ −2, then (1, x₀, x₁) ∈ Q (‖x‖ ≤ 1) as b − M x: ray (1, 1, −1, 0)
    M = np.array([[-1.0, 0.0], [0.0, 0.0], [-1.0, 0.0], [0.0, -1.0]])
    b = np.array([-2.0, 1.0, 0.0, 0.0])
    assert infeasible_exactly(M, b, 0, (3,), np.array([1.0, 1.0, -1.0, 0.0])) is True
    assert infeasible_exactly(M, b, 0, (3,), np.array([1.0, 0.5, -1.0, 0.0])) is False


def test_beyond_the_budget_the_answer_is_undecided():
    sub = separable_but_shifted(0)
    M, b, n_zero = interval_rows(sub.A, sub.l, sub.u)
    rng = np.random.default_rng(0)
    y = rng.uniform(0.5, 1.0, M.shape[0])  # dense: every row in the support
    assert infeasible_exactly(M, b, n_zero, (), y, work=10) is None


@pytest.mark.parametrize("seed", range(30))
def test_an_exact_proof_is_given_for_every_empty_system_and_never_for_a_feasible_one(seed):
    """Random systems ``A x ≤ hi``: odd seeds feasible (any ray is refused), even seeds made empty by one more row,
    ``−wᵀA x ≤ −wᵀhi − 0.1`` (the LP's vertex ray, perturbed by 1e-9, is proven). Integer ``A`` and ``w``, so that
    the new row is exactly ``−wᵀA`` (a rounded one makes a feasible system with huge solutions: refused, rightly)."""
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(2, 7)), int(rng.integers(3, 14))
    A = rng.integers(-9, 10, (m, n)).astype(float)
    hi = A @ rng.standard_normal(n) + rng.uniform(0, 1, m)
    if seed % 2 == 0:
        w = rng.integers(1, 5, min(m, n + 1)).astype(float)
        A, hi = np.vstack([A, -w @ A[:w.size]]), np.r_[hi, -w @ hi[:w.size] - 0.1]
        m += 1
    M, b, n_zero = interval_rows(A, np.full(m, -np.inf), hi)
    res = linprog(b, A_eq=np.r_[M.T, np.ones((1, m))], b_eq=np.r_[np.zeros(n), 1.0], bounds=[(0, None)] * m,
                  method="highs")  # min bᵀy over the Farkas simplex: negative iff the system is empty
    y = res.x * (1 + 1e-9 * rng.standard_normal(m)) if res.status == 0 else rng.uniform(0, 1, m)
    verdict = infeasible_exactly(M, b, n_zero, (), y)
    assert verdict is (seed % 2 == 0), (res.status, res.fun)


# ------------------------------------------------------------------------------- ProxQP's iteration limit


def test_proxqp_stops_at_its_default_iteration_limit_on_an_empty_piece():
    """ProxQP's own limit (10,000 outer iterations) ran 25 s here on this 11-variable, 300-row empty piece."""
    _need("proxqp")
    sub = separable_but_shifted(0)
    t0 = time.perf_counter()
    out = ProxqpQP().solve(sub, {}, None)
    assert out.status in (st.ITERATION_LIMIT, st.INFEASIBLE) and not out.proof and out.x is None
    assert time.perf_counter() - t0 < 10.0
    assert get_backend("proxqp").defaults["max_iter"] == DEFAULT_MAX_ITER


# ------------------------------------------------------------------------------- review 1: unbounded needs a point


def empty_with_descent(gap: float, quad: bool, q1: float = 1.0) -> BlockSubproblem:
    """``x₂ + x₃ ≤ 1``, ``x₂, x₃ ≥ (1 + gap)/2``: empty; ``x₁`` free with ``q₁ = −q1``: a descent direction of
    recession exists (the dual is infeasible), so backends may call it dual infeasible (DAQP −3, Clarabel
    ``DualInfeasible``, OSQP ``dual infeasible``): never unbounded with a proof."""
    P = np.diag([0.0, 1.0, 1.0]) if quad else np.zeros((3, 3))
    return BlockSubproblem.from_dense(P, np.array([-q1, 0.0, 0.0]),
                                      A=np.array([[0.0, 1.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]),
                                      l=np.array([-np.inf, (1 + gap) / 2, (1 + gap) / 2]),
                                      u=np.array([1.0, np.inf, np.inf]))


def contradicting_equalities_with_descent(q1: float) -> BlockSubproblem:
    """``x₂ + x₃ = 0`` and ``x₂ + x₃ = 10⁻³`` (empty), ``x₁`` free with ``q₁ = −q1`` (a descent direction)."""
    return BlockSubproblem.from_dense(np.zeros((3, 3)), np.array([-q1, 0.0, 0.0]),
                                      A=np.array([[0.0, 1.0, 1.0], [0.0, 1.0, 1.0]]), l=np.array([0.0, 1e-3]),
                                      u=np.array([0.0, 1e-3]))


EMPTY_WITH_DESCENT = [
    *[empty_with_descent(gap, quad, q1) for gap in (1.0, 1e-3, 1e-6) for quad in (False, True) for q1 in (1.0, 1e6)],
    *[contradicting_equalities_with_descent(q1) for q1 in (1e2, 1e6)],
    # x₁ + x₂ ≤ 1 and x₁ + x₂ ≥ 1.001 (a crossed pair), descent along x₁ and x₃
    BlockSubproblem.from_dense(np.zeros((3, 3)), np.array([-100.0, 0.0, -100.0]),
                               A=np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]]), l=np.array([-np.inf, 1.001]),
                               u=np.array([1.0, np.inf])),
]


@pytest.mark.parametrize("case", range(len(EMPTY_WITH_DESCENT)))
@pytest.mark.parametrize("backend", ["clarabel", "osqp", "daqp"])
def test_an_empty_set_with_a_descent_direction_is_never_proved_unbounded(backend, case):
    _need(backend)
    out = MATRIX_SOLVERS[backend].solve(EMPTY_WITH_DESCENT[case], {}, None, {})
    assert not (out.status == st.UNBOUNDED and out.proof), out.native_status


@pytest.mark.parametrize("case", range(len(EMPTY_WITH_DESCENT)))
def test_auto_ends_an_empty_set_with_a_descent_direction_infeasible(case):
    sol = solve(EMPTY_WITH_DESCENT[case], make_plan("auto"))
    assert sol.status == st.INFEASIBLE, sol.attempts


@pytest.mark.parametrize("backend", ["clarabel", "osqp", "daqp"])
def test_a_dual_infeasibility_claim_on_an_empty_set_is_proven_infeasible_instead(backend):
    _need(backend)
    out = MATRIX_SOLVERS[backend].solve(empty_with_descent(1e-3, quad=True, q1=1e6), {}, None, {})
    assert out.status == st.INFEASIBLE and out.proof, out.native_status


def test_a_direction_alone_is_not_settled_as_unbounded():
    M, b, n_zero = interval_rows(np.array([[0.0, 1.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]),
                                 np.array([-np.inf, 1.0, 1.0]), np.array([1.0, np.inf, np.inf]))
    q, d = np.array([-1.0, 0.0, 0.0]), np.array([1.0, 0.0, 0.0])
    assert unbounded_exactly(None, q, M, n_zero, (), d) is True  # the direction is genuine...
    assert settle_unbounded_claim(None, q, M, b, n_zero, (), d, None, None)[0] is None  # ...no point: no proof
    assert settle_unbounded_claim(None, q, M, b, n_zero, (), d, np.array([0.0, 0.6, 0.6]), None)[0] is None
    assert feasible_exactly(M, b, n_zero, (), np.array([0.0, 0.5, 0.5])) is False  # 1 ≥ 1, yet x₂ + x₃ ≤ 1 fails


def test_a_feasible_point_is_moved_exactly_onto_its_tight_rows():
    A = np.array([[1.0, 1.0], [1.0, 1.0 + 2.0**-40]])  # x₁ + x₂ = 0.1, x₁ + (1 + 2⁻⁴⁰)x₂ ≥ 0.1: x₂ ≥ 0
    M, b, n_zero = interval_rows(A, np.array([0.1, 0.1]), np.array([0.1, np.inf]))
    x = np.array([0.1, 0.0]) + np.array([1e-17, -1e-18])  # off both rows by rounding
    assert feasible_exactly(M, b, n_zero, (), x) is True
    M2, b2, _ = interval_rows(A, np.array([0.1, 0.2]), np.array([0.1, np.inf]))  # now x₂ ≥ 0.1·2⁴⁰: far
    assert feasible_exactly(M2, b2, n_zero, (), x) is False


def test_a_second_order_cone_point_is_checked_exactly():
    M, b = np.array([[0.0], [-1.0], [1.0]]), np.array([1.0, -1.0, 0.0])   # (1, x − 1, −x) ∈ Q
    assert feasible_exactly(M, b, 0, (3,), np.array([0.5])) is True
    assert feasible_exactly(M, b, 0, (3,), np.array([3.0])) is False


def r2_feasible_unbounded(quad: bool) -> BlockSubproblem:
    """``min −x₁`` with ``x₂ + x₃ ≤ 1``, ``x₂, x₃ ≥ ¼``: feasible and unbounded (the review's regression: rays
    with ~1e-13 noise on ``x₂, x₃`` were refused)."""
    P = np.diag([0.0, 1.0, 1.0]) if quad else np.zeros((3, 3))
    return BlockSubproblem.from_dense(P, np.array([-1.0, 0.0, 0.0]),
                                      A=np.array([[0.0, 1.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]),
                                      l=np.array([-np.inf, 0.25, 0.25]), u=np.array([1.0, np.inf, np.inf]))


@pytest.mark.parametrize("quad", [False, True])
@pytest.mark.parametrize("backend", ["clarabel", "osqp", "daqp"])
def test_a_feasible_unbounded_block_is_proved_unbounded_with_a_point(backend, quad):
    _need(backend)
    out = MATRIX_SOLVERS[backend].solve(r2_feasible_unbounded(quad), {}, None, {})
    assert out.status == st.UNBOUNDED and out.proof, out.native_status
    assert "feasible point" in out.native_status


def test_clarabel_proves_a_second_order_cone_block_unbounded_with_an_interior_point():
    _need("clarabel")
    # min −x₁ with ‖x₂‖ ≤ 1 as (1, x₂) ∈ Q: x₁ is free, the cone holds at x₂ = 0
    sub = BlockSubproblem.from_dense(np.zeros((2, 2)), np.array([-1.0, 0.0]), soc_A=np.array([[0.0, 0.0], [0.0, 1.0]]),
                                     soc_b=np.array([1.0, 0.0]), soc_dims=(2,))
    out = MATRIX_SOLVERS["clarabel"].solve(sub, {}, None, {})
    assert out.status == st.UNBOUNDED and out.proof, out.native_status


@pytest.mark.parametrize("noise", [-4e-13, 4e-13])
def test_ray_noise_on_rows_the_direction_leaves_alone_is_projected_away(noise):
    M, _, n_zero = interval_rows(np.array([[0.0, 1.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]),
                                 np.array([-np.inf, 0.25, 0.25]), np.array([1.0, np.inf, np.inf]))
    assert unbounded_exactly(None, np.array([-1.0, 0.0, 0.0]), M, n_zero, (), np.array([1.0, noise, noise])) is True


def test_an_unconstrained_block_is_the_only_one_the_closed_form_calls_unbounded():
    grad = np.array([-1.0, 0.0])
    free = BlockSubproblem.from_dense(np.diag([0.0, 1.0]), np.array([-1.0, 0.0]))
    assert ClosedForm._unbounded_direction(free, grad)
    pinned = BlockSubproblem.from_dense(np.diag([0.0, 1.0]), np.array([-1.0, 0.0]), A=np.array([[0.0, 1.0]] * 2),
                                        l=np.array([0.0, 1.0]), u=np.array([0.0, 1.0]))
    assert not ClosedForm._unbounded_direction(pinned, grad)
    assert solve(pinned, make_plan("lstsq")).status != st.UNBOUNDED


# ------------------------------------------------------------------------------- review 1: the other findings


def test_second_order_cone_rows_never_form_a_crossed_pair():
    M, b = np.array([[0.0], [-1.0], [1.0]]), np.array([1.0, -1.0, 0.0])   # feasible at x = 0.5
    assert not crossed_pair(M, b, 0, (3,))
    assert infeasible_exactly(M, b, 0, (3,), None) is False
    assert infeasible_exactly(M, b, 0, (3,), np.array([1.0, 0.0, 0.0])) is False
    assert infeasible_exactly(np.zeros((2, 1)), np.array([1.0, -0.5]), 0, (2,), None) is False  # (1, −½) ∈ Q
    assert crossed_pair(M, b, 0)   # the same rows read as nonnegative rows do cross


@pytest.mark.slow
def test_exponent_spread_is_charged_and_every_call_stays_near_a_second():
    rng = np.random.default_rng(1)
    for spread in (0, 300, 1000):
        M = rng.standard_normal((55, 54)) * 2.0 ** rng.integers(-spread, spread + 1, (55, 54))
        b = rng.standard_normal(55) * 2.0 ** rng.integers(-spread, spread + 1, 55)
        t0 = time.perf_counter()
        verdict = infeasible_exactly(M, b, 0, (), rng.uniform(0.5, 1.5, 55))
        assert verdict is not True and time.perf_counter() - t0 < 3.0, spread   # was 213 s at ±1000


def test_duplicated_rows_cost_no_more_than_distinct_ones():
    a = np.random.default_rng(0).standard_normal(10)
    M, b, n_zero = interval_rows(np.tile(a, (4000, 1)), -np.ones(4000), np.ones(4000))
    t0 = time.perf_counter()
    assert not crossed_pair(M, b, n_zero)
    assert time.perf_counter() - t0 < 0.5   # was 3.5 s at 2,000 copies
    M2, b2, n2 = interval_rows(np.tile(a, (4000, 1)), np.r_[-np.ones(3999), 2.0], np.ones(4000))
    assert crossed_pair(M2, b2, n2)   # one crossed copy among the duplicates is still found


@pytest.mark.slow
def test_a_large_sparse_system_is_never_densified():
    M = sp.random(8000, 2000, density=2e-3, random_state=1, format="lil")
    M[:, 0] = -1.0
    M = M.tocsr()
    q, d = np.zeros(2000), np.zeros(2000)
    q[0], d[0] = -1.0, 1.0
    t0 = time.perf_counter()
    assert unbounded_exactly(None, q, M, 0, (), d) is True
    empty = sp.vstack([M, sp.csr_matrix(([1.0, -1.0], ([0, 1], [5, 5])), shape=(2, 2000))], format="csr")
    y = np.zeros(8002)
    y[-2:] = 1.0
    assert infeasible_exactly(empty, np.r_[np.ones(8000), -1.0, -1.0], 0, (), y) is True
    assert time.perf_counter() - t0 < 1.0   # 5 s when the 16M entries were made Python integers


@pytest.mark.parametrize("k", [0, -600, 600, -1000, 1000, -1070])
def test_scaled_rows_keep_their_infeasibility_proof(k):
    """``x₁ + x₂ ≤ 1``, ``x₁ − x₂ ≤ 1``, ``x₁ ≥ 3`` with one row (or all) scaled by ``2^k``, exactly."""
    A = np.array([[1.0, 1.0], [1.0, -1.0], [1.0, 0.0]])
    lo, hi = np.array([-np.inf, -np.inf, 3.0]), np.array([1.0, 1.0, np.inf])
    for s in (np.full(3, 2.0**k), np.array([2.0**k, 1.0, 1.0])):
        M, b, n_zero = interval_rows(A * s[:, None], lo * s, hi * s)
        log_y = np.log2([0.5, 0.5, 1.0]) - np.log2(s)       # the scaled rows' ray, 0.5/s etc., without overflow
        y = np.exp2(log_y - log_y.max())
        assert infeasible_exactly(M, b, n_zero, (), y) is True, s


def test_two_contradicting_equalities_are_proven_by_daqps_phase_one():
    _need("daqp")
    sub = BlockSubproblem.from_dense(np.eye(2), np.zeros(2), A=np.array([[1.0, 1.0], [1.0, 1.0], [1.0, -1.0]]),
                                     l=np.array([0.0, 1e-3, -np.inf]), u=np.array([0.0, 1e-3, 5.0]))
    out = MATRIX_SOLVERS["daqp"].solve(sub, {}, None, {})
    assert out.status == st.INFEASIBLE and out.proof, out.native_status


@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_an_infinite_equality_is_rejected_by_name(value):
    with pytest.raises(InvalidInputError, match=r"lo\[1\] == hi\[1\]"):
        interval_rows(np.eye(2), np.array([0.0, value]), np.array([1.0, value]))
