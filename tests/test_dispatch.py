"""Specification of block subproblems as values and of the one dispatcher that solves them.

A shared battery of canned :class:`BlockSubproblem` values (cvxpy's ``solver_test_helpers`` idea)
that every matrix-level backend and every bridge backend must pass, real solvers, each answer
compared with an exact reference computed here with numpy (a linear solve, a pseudo-inverse, or
an enumeration of active sets); then the dispatcher's own behaviour: "auto", fallback lists,
licences, unknown names, per-backend options.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass

import cvxpy as cp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst
from threadpoolctl import threadpool_info

import multiconvex
from multiconvex.errors import InvalidInputError, LicenceError, UnknownSolverError
from multiconvex.solvers import dispatch
from multiconvex.solvers.clarabel_qp import ClarabelQP
from multiconvex.solvers.closed_form import EXACT_WORK, ClosedForm, inconsistent_exactly, inverse_residual_bound
from multiconvex.solvers.dispatch import make_plan, solve
from multiconvex.solvers.proxqp_qp import ProxqpQP
from multiconvex.solvers.registry import get_backend
from multiconvex.subproblem import BlockSubproblem, KronTerm, make_slots

pytestmark = [
    pytest.mark.filterwarnings(r"ignore:(?s).*infeasible or unbounded:UserWarning"),
    pytest.mark.filterwarnings(r"ignore:Solution may be inaccurate:UserWarning"),
]

#: Backend -> (x tolerance, value tolerance), both relative to max(1, |reference|).
TOLERANCE: dict[str, tuple[float, float]] = {
    "lstsq": (1e-8, 1e-10),  # closed form
    "daqp": (1e-8, 1e-10),  # dense active set: exact up to rounding
    "proxqp": (1e-6, 1e-8),
    "clarabel": (1e-6, 1e-8),  # interior point
    "osqp": (1e-5, 1e-7),  # ADMM, polished
    "highs": (1e-5, 1e-7),
    "gurobi": (1e-5, 1e-7),
    "scs": (1e-4, 1e-6),
    "ecos": (1e-3, 1e-6),  # the quadratic goes in as a second-order cone
    "scip": (1e-3, 1e-6),
}
BACKENDS = list(TOLERANCE)
#: Packages outside the core dependencies: their backends are skipped when missing.
OPTIONAL = {"daqp", "proxqp", "scip"}
#: ProxQP seldom certifies infeasibility or unboundedness; it runs to its iteration limit instead.
#: What a backend without a certificate of infeasibility/unboundedness answers instead (an unproven claim is a
#: numerical error: drivers end runs on proofs only).
NO_CERTIFICATE = {"proxqp": {"iteration_limit", "numerical_error"}, "lstsq": {"numerical_error"}}


def _need(name: str) -> None:
    if name in OPTIONAL and not get_backend(name).installed():
        pytest.skip(f"{name} is not installed")


# --- exact references ---------------------------------------------------------------------------
def _kkt(P: np.ndarray, q: np.ndarray, A: np.ndarray | None = None, b: np.ndarray | None = None) -> np.ndarray:
    """Minimiser of ½xᵀPx + qᵀx s.t. Ax = b (P positive definite on null(A))."""
    n = q.size
    if A is None or A.shape[0] == 0:
        return np.linalg.solve(P, -q)
    K = np.block([[P, A.T], [A, np.zeros((A.shape[0], A.shape[0]))]])
    return np.linalg.solve(K, np.concatenate([-q, b]))[:n]


def _enumerate(P: np.ndarray, q: np.ndarray, rows: np.ndarray, low: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Minimiser of a small strictly convex QP with ``low ≤ rows x ≤ up``: the best feasible KKT point
    over every active set (the optimum is the equality-constrained minimiser of its own active set)."""
    choices = []
    for lo, hi in zip(low, up):
        if lo == hi:
            choices.append(("lo",))
        else:
            choices.append((None,) + (("lo",) if np.isfinite(lo) else ()) + (("up",) if np.isfinite(hi) else ()))
    best, best_value = None, np.inf
    for combo in itertools.product(*choices):
        act = [i for i, s in enumerate(combo) if s]
        if len(act) > q.size:
            continue
        rhs = np.array([low[i] if combo[i] == "lo" else up[i] for i in act])
        try:
            x = _kkt(P, q, rows[act], rhs)
        except np.linalg.LinAlgError:
            continue
        ax = rows @ x
        if np.all(ax >= low - 1e-10) and np.all(ax <= up + 1e-10):
            value = 0.5 * x @ P @ x + q @ x
            if value < best_value:
                best, best_value = x, value
    assert best is not None, "the reference found no feasible active set"
    return best


# --- the battery ----------------------------------------------------------------------------------
@dataclass
class Case:
    """A canned subproblem and what every backend must say about it."""

    sub: BlockSubproblem
    status: str  # "optimal", "infeasible" or "unbounded"
    x: np.ndarray | None = None  # the minimiser (the least-norm one when not unique)
    unique: bool = True  # whether any backend's x must equal ``x`` (else only the value must agree)

    @property
    def value(self) -> float:
        return self.sub.value(self.x)


def _spd(rng: np.random.Generator, n: int, ridge: float = 0.1) -> np.ndarray:
    B = rng.standard_normal((n + 2, n))
    return B.T @ B + ridge * np.eye(n)


def dense_unconstrained() -> Case:
    rng = np.random.default_rng(1)
    P, q = _spd(rng, 5), rng.standard_normal(5)
    return Case(BlockSubproblem.from_dense(P, q, c=1.5), "optimal", _kkt(P, q))


def shared_gram(side: str) -> Case:
    """One 7×3 slot; P = kron(G, I) + 0.1 I ("rows") or kron(I, H) + 0.1 I ("cols")."""
    rng = np.random.default_rng(2)
    m, k = 7, 3
    if side == "rows":
        G = _spd(rng, k, 0.0)
        quad = [KronTerm(0, 0, None, G), KronTerm(0, 0, None, None, 0.1)]
        P = np.kron(G, np.eye(m)) + 0.1 * np.eye(m * k)
    else:
        H = _spd(rng, m, 0.0)
        quad = [KronTerm(0, 0, H, None), KronTerm(0, 0, None, None, 0.1)]
        P = np.kron(np.eye(k), H) + 0.1 * np.eye(m * k)
    q = rng.standard_normal(m * k)
    sub = BlockSubproblem(make_slots([("U", (m, k))]), quad, q, 0.3)
    np.testing.assert_allclose(sub.P_dense(), P, atol=1e-12)
    return Case(sub, "optimal", _kkt(P, q))


def equality() -> Case:
    rng = np.random.default_rng(3)
    P, q = _spd(rng, 6), rng.standard_normal(6)
    A, b = rng.standard_normal((2, 6)), rng.standard_normal(2)
    return Case(BlockSubproblem.from_dense(P, q, A=A, l=b, u=b), "optimal", _kkt(P, q, A, b))


def box() -> Case:
    """Nonnegativity, two upper bounds, one fixed variable; several bounds active at the optimum."""
    rng = np.random.default_rng(9)
    P, q = _spd(rng, 6), 3.0 * rng.standard_normal(6)
    lb = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.2])
    ub = np.array([np.inf, 0.5, np.inf, 0.5, np.inf, 0.2])
    x = _enumerate(P, q, np.eye(6), lb, ub)
    assert np.isclose(x[:5], 0.0).sum() >= 2 and np.isclose(x[:5], ub[:5]).sum() >= 1  # the bounds matter
    return Case(BlockSubproblem.from_dense(P, q, lb=lb, ub=ub), "optimal", x)


def inequality_rows() -> Case:
    """``l ≤ Ax ≤ u`` with one-sided (±inf), two-sided and equality rows."""
    rng = np.random.default_rng(5)
    P, q = _spd(rng, 6), 3.0 * rng.standard_normal(6)
    A = rng.standard_normal((4, 6))
    l, u = np.array([-np.inf, -0.2, 0.1, 0.3]), np.array([0.2, np.inf, 0.4, 0.3])
    return Case(BlockSubproblem.from_dense(P, q, A=A, l=l, u=u), "optimal", _enumerate(P, q, A, l, u))


def infeasible_rows() -> Case:
    A = np.array([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    sub = BlockSubproblem.from_dense(np.eye(3), np.ones(3), A=A, l=np.array([1.0, -np.inf]), u=np.array([np.inf, 0.0]),
                                     lb=np.array([-1.0, -np.inf, -np.inf]))
    return Case(sub, "infeasible")


def infeasible_equalities() -> Case:
    A = np.array([[1.0, 1.0], [1.0, 1.0]])
    return Case(BlockSubproblem.from_dense(np.eye(2), np.zeros(2), A=A, l=np.array([0.0, 1.0]),
                                           u=np.array([0.0, 1.0])), "infeasible")


def unbounded_qp() -> Case:
    """PSD singular P, q outside its range along a direction the bounds leave open."""
    return Case(BlockSubproblem.from_dense(np.diag([1.0, 0.0]), np.array([0.0, -1.0]), lb=np.array([-np.inf, 0.0])),
                "unbounded")


def unbounded_eqp() -> Case:
    return Case(BlockSubproblem.from_dense(np.diag([1.0, 0.0]), np.array([1.0, -1.0])), "unbounded")


def unbounded_lp() -> Case:
    return Case(BlockSubproblem(make_slots([("x", (2,))]), [], np.array([1.0, -1.0]), lb=np.zeros(2)), "unbounded")


def singular() -> Case:
    """Rank-3 PSD P in 6 variables with q in its range: a minimum exists, the minimisers are a plane."""
    rng = np.random.default_rng(6)
    B = rng.standard_normal((3, 6))
    P = B.T @ B
    q = -P @ rng.standard_normal(6)
    return Case(BlockSubproblem.from_dense(P, q, c=-2.0), "optimal", np.linalg.pinv(P, rcond=1e-12) @ -q,
                unique=False)


def _two_slots() -> tuple[BlockSubproblem, np.ndarray]:
    """Slots U (3×2) and V (4×2) with diagonal Kronecker terms, a cross term (0, 1) and a P_extra;
    returns the subproblem and its P assembled here with np.kron (independently of P_sparse)."""
    rng = np.random.default_rng(9)
    slots = make_slots([("U", (3, 2)), ("V", (4, 2))])
    L0, R0 = _spd(rng, 3, 1.0), _spd(rng, 2, 1.0)
    L, R = rng.standard_normal((3, 4)), rng.standard_normal((2, 2))
    scale = 0.5 / (np.linalg.norm(L, 2) * np.linalg.norm(R, 2))
    extra = np.diag(rng.uniform(0.0, 1.0, 14))
    quad = [KronTerm(0, 0, L0, R0), KronTerm(1, 1, None, None, 2.0), KronTerm(0, 1, L, R, scale)]
    sub = BlockSubproblem(slots, quad, rng.standard_normal(14), 0.7, P_extra=extra)
    P = np.zeros((14, 14))
    P[:6, :6] = np.kron(R0, L0)
    P[6:, 6:] = 2.0 * np.eye(8)
    P[:6, 6:] = scale * np.kron(R, L)
    P[6:, :6] = P[:6, 6:].T
    P += extra
    assert np.linalg.eigvalsh(P).min() > 0.1
    return sub, P


def cross_terms() -> Case:
    sub, P = _two_slots()
    return Case(sub, "optimal", _kkt(P, sub.q))


def cross_terms_bounded() -> Case:
    sub, P = _two_slots()
    sub.lb = np.concatenate([np.full(6, -np.inf), np.zeros(8)])
    sub.q = sub.q + np.concatenate([np.zeros(6), np.linspace(-1.0, 2.0, 8)])  # some of V's bounds active
    return Case(sub, "optimal", _enumerate(P, sub.q, np.eye(14)[6:], np.zeros(8), np.full(8, np.inf)))


CASES = {
    "dense_unconstrained": dense_unconstrained,
    "shared_gram_rows": lambda: shared_gram("rows"),
    "shared_gram_cols": lambda: shared_gram("cols"),
    "equality": equality,
    "box": box,
    "inequality_rows": inequality_rows,
    "infeasible_rows": infeasible_rows,
    "infeasible_equalities": infeasible_equalities,
    "unbounded_qp": unbounded_qp,
    "unbounded_eqp": unbounded_eqp,
    "unbounded_lp": unbounded_lp,
    "singular_psd": singular,
    "cross_terms": cross_terms,
    "cross_terms_bounded": cross_terms_bounded,
}


#: The closed form takes equality-constrained quadratics only.
BATTERY = [(b, c) for b in BACKENDS for c, build in CASES.items() if b != "lstsq" or build().sub.problem_class == "EQP"]


@pytest.mark.parametrize(("backend", "case_name"), BATTERY)
def test_every_backend_passes_the_battery(backend, case_name):
    _need(backend)
    case = CASES[case_name]()
    sol = solve(case.sub, make_plan(backend))
    if case.status != "optimal":
        assert sol.x is None and sol.status != "optimal"
        assert sol.status in {case.status} | NO_CERTIFICATE.get(backend, set()), sol.attempts
        return
    assert sol.status == "optimal", sol.attempts
    assert sol.backend == backend
    x_tol, v_tol = TOLERANCE[backend]
    assert sol.value == pytest.approx(case.value, abs=v_tol * max(1.0, abs(case.value)))
    assert case.sub.violation(sol.x) <= x_tol
    if case.unique or backend == "lstsq":  # the closed form gives the least-norm minimiser
        np.testing.assert_allclose(sol.x, case.x, rtol=0, atol=x_tol * max(1.0, np.abs(case.x).max()))


@pytest.mark.parametrize("backend", ["daqp", "proxqp", "clarabel", "osqp", "highs"])
def test_a_warm_start_does_not_change_the_answer(backend):
    _need(backend)
    case = box()
    x_tol, _ = TOLERANCE[backend]
    for warm in (case.x, np.zeros(case.sub.n)):
        sol = solve(case.sub, make_plan(backend), warm=warm)
        np.testing.assert_allclose(sol.x, case.x, atol=x_tol * max(1.0, np.abs(case.x).max()))


# --- the closed form --------------------------------------------------------------------------------
def test_closed_form_gives_the_least_norm_minimiser_when_cholesky_accepts_a_singular_p():
    # Rounding lets Cholesky factor some singular BᵀB with a tiny pivot (about one in ten of these, e.g. seeds
    # 190, 197, 201, 219); its solution is then an arbitrary, often huge, minimiser. The least-norm one is pinv(P) (−q).
    for seed in range(180, 300):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(2, 12))
        k = int(rng.integers(1, n))
        B = rng.standard_normal((k, n)) * 10.0 ** rng.integers(-3, 4)
        P = B.T @ B
        q = -P @ rng.standard_normal(n)
        out = ClosedForm().solve(BlockSubproblem.from_dense(P, q), {}, None)
        assert out.status == "optimal"
        ref = np.linalg.pinv(P, rcond=1e-10) @ -q
        np.testing.assert_allclose(out.x, ref, atol=1e-8 * max(1.0, np.abs(ref).max()))


def test_closed_form_gives_the_least_norm_minimiser_with_equalities():
    rng = np.random.default_rng(11)
    B = rng.standard_normal((2, 5))
    P, A, b = B.T @ B, rng.standard_normal((1, 5)), np.array([0.3])
    q = -P @ rng.standard_normal(5) + 0.7 * A[0]  # orthogonal to null(P) ∩ null(A): a minimum exists
    sub = BlockSubproblem.from_dense(P, q, A=A, l=b, u=b)
    out = ClosedForm().solve(sub, {}, None)
    assert out.status == "optimal"
    # the minimisers are x + null([P; A]) (a plane here); the least-norm one is orthogonal to it
    N = np.linalg.svd(np.vstack([P, A]))[2][3:].T
    np.testing.assert_allclose(N.T @ out.x, 0.0, atol=1e-9)
    assert sub.violation(out.x) <= 1e-12
    assert sub.value(out.x) == pytest.approx(solve(sub, make_plan("clarabel")).value, abs=1e-7)


def test_closed_form_uses_the_shared_gram_matrix():
    for side in ("rows", "cols"):
        case = shared_gram(side)
        assert case.sub.shared_gram()[0] == side
        out = ClosedForm().solve(case.sub, {}, None)
        assert f"shared {3 if side == 'rows' else 7}x" in out.native_status
        np.testing.assert_allclose(out.x, case.x, atol=1e-10)


def test_the_shared_gram_solve_is_verified_on_the_k_by_k_inverse_and_matches_the_general_path():
    case = shared_gram("rows")  # 3 x 7 right-hand sides: the inverse route
    out = ClosedForm().solve(case.sub, {}, None)
    assert "verified inverse" in out.native_status and out.info["residual_bound"] <= 1e-8
    assert out.value == case.sub.value(out.x)  # the subproblem's own arithmetic
    x, _ = ClosedForm._unconstrained(case.sub)  # the general path: the same numbers, bit for bit
    np.testing.assert_array_equal(out.x, x)


def test_a_singular_shared_gram_matrix_leaves_the_verified_route_for_the_least_norm_solve():
    m, k = 6, 3
    G = np.ones((k, k))  # rank 1
    Xstar = np.outer(np.arange(1.0, m + 1), np.ones(k)) / k
    q = -(Xstar @ G).ravel(order="F")  # a gradient that can vanish: a least-norm minimiser exists
    sub = BlockSubproblem(make_slots([("U", (m, k))]), [KronTerm(0, 0, None, G)], q)
    out = ClosedForm().solve(sub, {}, None)
    assert out.status == "optimal" and "verified" not in out.native_status and "least-norm" in out.native_status
    np.testing.assert_allclose(out.x, Xstar.ravel(order="F"), atol=1e-10)


@pytest.mark.parametrize("k, cond", [(3, 1e1), (12, 1e4), (30, 1e8)])
def test_the_inverse_residual_bound_covers_the_true_residual(k, cond):
    rng = np.random.default_rng(k)
    Qm, _ = np.linalg.qr(rng.standard_normal((k, k)))
    G = (Qm * np.logspace(0.0, np.log10(cond), k)) @ Qm.T
    G = (G + G.T) / 2
    Minv = np.linalg.inv(G)
    B = rng.standard_normal((k, 200))
    X = Minv @ B
    beta = inverse_residual_bound(G, Minv, float(np.abs(B).max()))
    true = np.abs(G.astype(np.longdouble) @ X.astype(np.longdouble) - B).max()  # in wider arithmetic
    assert true <= beta * np.abs(B).max()
    assert beta <= 1e3 * k * cond * np.finfo(float).eps  # a bound of the size of the rounding, not vacuous
    for enough in (beta / 2, beta, 2 * beta, 1e-8):
        # the quicker, looser bound is taken only when it is enough: the test passes exactly as with the tight one
        quick = inverse_residual_bound(G, Minv, float(np.abs(B).max()), enough)
        assert quick >= beta and (quick <= enough) == (beta <= enough) and true <= quick * np.abs(B).max()


@pytest.mark.parametrize("rhs_scale", [1e-10, 1e-16, 1e-30])
def test_the_inverse_residual_bound_covers_subnormal_products(rhs_scale):
    # G ≈ 1e300: X = G⁻¹B ≈ 1e-300·B is subnormal (1e-310, 1e-316) or underflows to 0 (1e-330)
    rng = np.random.default_rng(7)
    k = 4
    Qm, _ = np.linalg.qr(rng.standard_normal((k, k)))
    G = 1e300 * (Qm * np.linspace(1.0, 3.0, k)) @ Qm.T
    G = (G + G.T) / 2
    Minv = np.linalg.inv(G)
    B = rhs_scale * rng.standard_normal((k, 50))
    X = Minv @ B
    assert np.any((X != 0) & (np.abs(X) < np.finfo(float).tiny)) or not np.any(X)  # subnormal or underflowed
    beta = inverse_residual_bound(G, Minv, float(np.abs(B).max()))
    true = np.abs(G.astype(np.longdouble) @ X.astype(np.longdouble) - B).max()
    assert true <= beta * np.abs(B).max()
    # the case a bound without the underflow term (what rhs_max=0 gives) misses
    assert true > inverse_residual_bound(G, Minv, 0.0) * np.abs(B).max()


def test_a_shared_gram_block_whose_solution_underflows_gets_no_false_proof():
    m, k = 20, 3
    G = 1e300 * np.diag([1.0, 2.0, 3.0])
    Q = 1e-30 * np.random.default_rng(3).standard_normal((m, k))  # X = −Q G⁻¹ ≈ 1e-330: underflows to 0
    sub = BlockSubproblem(make_slots([("U", (m, k))]), [KronTerm(0, 0, None, G)], Q.ravel(order="F"))
    out = ClosedForm().solve(sub, {}, None)
    # the general path decides on the residual it computes, not on the bound
    assert "verified" not in out.native_status and "residual_bound" not in out.info
    assert out.info["residual"] == np.abs(sub.Px(np.zeros(m * k) if out.x is None else out.x) + sub.q).max()


def test_an_inaccurate_inverse_gets_no_proof():
    G = np.array([[4.0, 1.0], [1.0, 3.0]])
    assert inverse_residual_bound(G, np.linalg.inv(G) * (1 + 1e-6), 1.0) > 1e-8


def test_a_block_goes_straight_to_the_backend_that_solved_it_first():
    plan = make_plan("auto")
    first = solve(shared_gram("rows").sub, plan, key="U")
    assert plan.workspaces["U"][dispatch._STICKY][0].name == "lstsq"
    again = solve(shared_gram("rows").sub, plan, key="U")
    assert (again.backend, again.attempts, again.status) == ("lstsq", [("lstsq", "optimal")], "optimal")
    np.testing.assert_array_equal(again.x, first.x)
    assert again.value == first.value and again.value_exact
    # a subproblem of another class on the same key: the remembered backend does not apply, the search runs
    bounded = box().sub
    sol = solve(bounded, plan, key="U")
    assert sol.status == "optimal" and sol.backend != "lstsq"
    assert sol.backend == solve(bounded, make_plan("auto")).backend
    # the deadline holds on the remembered route too
    solve(shared_gram("rows").sub, plan, key="V")
    assert dispatch._STICKY in plan.workspaces["V"]
    plan.deadline = time.time() - 1.0
    late = solve(shared_gram("rows").sub, plan, key="V")
    assert late.x is None and late.status == "time_limit"


def _dense_box_qp(n: int, seed: int = 0) -> BlockSubproblem:
    rng = np.random.default_rng(seed)
    B = rng.standard_normal((n, n))
    return BlockSubproblem.from_dense(B @ B.T / n + np.eye(n), rng.standard_normal(n), lb=-0.1 * np.ones(n),
                                      ub=0.1 * np.ones(n))


def test_a_solve_stopped_by_the_deadline_on_the_remembered_backend_is_recorded_as_the_search_records_it():
    # Clarabel needs well over a second on this dense QP (a 1000-variable KKT system per iteration); the
    # deadline stops it after 0.05 s on either route (0.2 s on a 600-variable one raced a fast solve)
    big = _dense_box_qp(1000)
    remembered = make_plan("clarabel")
    assert solve(_dense_box_qp(5), remembered, key="B").status == "optimal"
    assert dispatch._STICKY in remembered.workspaces["B"]
    remembered.deadline = time.time() + 0.05
    late = solve(big, remembered, key="B")
    searched = make_plan("clarabel")  # nothing remembered: the full search
    searched.deadline = time.time() + 0.05
    normal = solve(big, searched, key="B")
    assert late.x is None and normal.x is None
    assert (late.status, late.backend) == (normal.status, normal.backend) == ("time_limit", None)
    assert late.attempts == normal.attempts and late.attempts[0][0] == "clarabel"  # a solve ran: not "not started"
    assert late.solve_time > 0.0 and normal.solve_time > 0.0
    assert late.message == normal.message


def test_a_warm_start_function_is_called_only_for_a_backend_that_reads_it():
    calls: list[str] = []

    def start(sub: BlockSubproblem, name: str):
        def build() -> np.ndarray:
            calls.append(name)
            return np.zeros(sub.n)
        return build

    eqp = shared_gram("rows").sub
    assert solve(eqp, make_plan("lstsq"), warm=start(eqp, "lstsq")).status == "optimal"
    assert calls == []  # the closed form starts from nothing
    _need("daqp")
    qp = box().sub
    assert solve(qp, make_plan("daqp"), warm=start(qp, "daqp")).status == "optimal"
    assert calls == ["daqp"]


def test_a_named_list_remembers_only_its_first_backend():
    plan = make_plan(["clarabel", "lstsq"])
    solve(shared_gram("rows").sub, plan, key="U")
    assert plan.workspaces["U"][dispatch._STICKY][0].name == "clarabel"
    plan = make_plan(["mosek", "lstsq"])  # MOSEK unlicensed here: lstsq answers, but is not the first choice
    sol = solve(shared_gram("rows").sub, plan, key="U")
    assert sol.backend == "lstsq" and dispatch._STICKY not in plan.workspaces["U"]


# --- the subproblem value -----------------------------------------------------------------------------
def test_kronecker_p_matches_an_explicit_np_kron_construction():
    sub, P = _two_slots()
    np.testing.assert_allclose(sub.P_sparse().toarray(), P, atol=1e-13)
    x = np.random.default_rng(0).standard_normal(sub.n)
    np.testing.assert_allclose(sub.Px(x), P @ x, atol=1e-12)
    np.testing.assert_allclose(sub.Px(x), sub.P_sparse() @ x, atol=1e-12)
    assert sub.value(x) == pytest.approx(0.5 * x @ P @ x + sub.q @ x + sub.c, rel=1e-13)


def test_split_and_stack_round_trip_for_0d_1d_and_2d_slots():
    slots = make_slots([("s", ()), ("v", (4,)), ("M", (3, 2))])
    assert [s.shape for s in slots] == [(1, 1), (4, 1), (3, 2)]
    sub = BlockSubproblem(slots, [], np.zeros(11))
    x = np.arange(11.0)
    parts = sub.split(x)
    assert parts["s"].shape == () and parts["v"].shape == (4,) and parts["M"].shape == (3, 2)
    np.testing.assert_array_equal(parts["M"], x[5:].reshape((3, 2), order="F"))  # column-major, as cvxpy
    np.testing.assert_array_equal(sub.stack(parts), x)


def test_the_solution_value_is_the_subproblems_own_value():
    case = cross_terms_bounded()
    for backend in ("clarabel", "osqp"):
        sol = solve(case.sub, make_plan(backend))
        assert sol.value == case.sub.value(sol.x)


def test_clarabel_updates_its_workspace_in_place_and_stays_right():
    state: dict = {}
    first = box()
    ClarabelQP().solve(first.sub, {}, None, state)
    second = box()
    second.sub.q = second.sub.q[::-1].copy()
    out = ClarabelQP().solve(second.sub, {}, None, state)
    assert out.info["reused"]
    fresh = ClarabelQP().solve(second.sub, {}, None, {})
    np.testing.assert_allclose(out.x, fresh.x, atol=1e-7)


# --- the dispatcher -------------------------------------------------------------------------------
def test_auto_picks_the_closed_form_for_an_unconstrained_quadratic():
    sol = solve(dense_unconstrained().sub, make_plan("auto"))
    assert (sol.status, sol.backend) == ("optimal", "lstsq")


def test_auto_picks_daqp_for_a_small_bounded_qp():
    _need("daqp")
    sol = solve(box().sub, make_plan("auto"))
    assert (sol.status, sol.backend) == ("optimal", "daqp")


def test_auto_skips_daqp_above_its_max_auto_size():
    rng = np.random.default_rng(7)
    n = 500
    B = rng.standard_normal((20, n))
    P = B.T @ B + np.eye(n)
    sub = BlockSubproblem.from_dense(P, rng.standard_normal(n) * 10, lb=np.zeros(n))
    sol = solve(sub, make_plan("auto"))
    assert sol.status == "optimal" and sol.backend in {"proxqp", "clarabel"}
    assert "daqp" not in [name for name, _ in sol.attempts]
    assert sub.violation(sol.x) <= 1e-8


def test_auto_skips_dense_proxqp_above_its_max_auto_rows():
    """ProxQP's dense backend allocates about (n + rows)² numbers: a ReLU unit piece over 100,000 samples
    aborted the process inside it. Under auto a many-row block never reaches it; named, it still does."""
    rng = np.random.default_rng(3)
    n, rows = 11, ProxqpQP.max_auto_rows + 1
    A = rng.standard_normal((rows, n))
    sub = BlockSubproblem.from_dense(np.eye(n), rng.standard_normal(n), A=A, l=-np.ones(rows), u=np.full(rows, np.inf))
    assert not ProxqpQP().accepts(sub, auto=True)
    assert ProxqpQP().accepts(sub, auto=False)
    small = BlockSubproblem.from_dense(np.eye(n), rng.standard_normal(n), A=A[:50], l=-np.ones(50),
                                       u=np.full(50, np.inf))
    assert ProxqpQP().accepts(small, auto=True)


def test_a_fallback_list_skips_an_unlicensed_mosek_and_records_it():
    if get_backend("mosek").licence().state != "missing":
        pytest.skip("MOSEK is licensed here")
    sol = solve(box().sub, make_plan(["mosek", "clarabel"]))
    assert (sol.status, sol.backend) == ("optimal", "clarabel")
    assert sol.attempts[0][0] == "mosek" and "LicenceError" in sol.attempts[0][1]
    assert sol.attempts[-1] == ("clarabel", "optimal")


def test_mosek_alone_without_a_licence_raises_a_clear_licence_error():
    if get_backend("mosek").licence().state != "missing":
        pytest.skip("MOSEK is licensed here")
    plan = make_plan(["mosek"])  # resolving the name is fine; solving is not
    with pytest.raises(LicenceError, match="MOSEK needs a licence") as err:
        solve(box().sub, plan)
    assert err.value.solver == "mosek" and "clarabel" in str(err.value)  # says what to do


def test_an_unknown_solver_name_fails_at_make_plan():
    with pytest.raises(UnknownSolverError, match="known solvers"):
        make_plan("no-such-solver")
    with pytest.raises(UnknownSolverError):
        make_plan(["clarabel", "no-such-solver"])


def test_daqp_and_proxqp_are_listed_by_available_solvers():
    names = {row.name for row in multiconvex.available_solvers()}
    assert {"daqp", "proxqp"} <= names


def test_options_for_one_backend_reach_only_that_backend():
    options = {"osqp": {"max_iter": 5, "polishing": False}}
    case = inequality_rows()
    capped = solve(case.sub, make_plan("osqp", options=options))
    assert capped.status in {"iteration_limit", "optimal_inaccurate"}  # 5 iterations: OSQP saw the option
    # Clarabel knows "max_iter" too and DAQP would reject it: neither may see it (nor a bridge backend)
    for backend in ("clarabel", "daqp", "scs"):
        _need(backend)
        sol = solve(case.sub, make_plan(backend, options=options))
        assert sol.status == "optimal", sol.attempts


def test_a_failed_backend_falls_back_to_the_next():
    sol = solve(inequality_rows().sub, make_plan(["osqp", "clarabel"], options={"osqp": {"max_iter": 5}}))
    assert (sol.status, sol.backend) == ("optimal", "clarabel")
    assert sol.attempts[0][0] == "osqp" and sol.attempts[0][1] != "optimal"


# --- agreement on random problems --------------------------------------------------------------------
@pytest.mark.skipif(not (get_backend("daqp").installed() and get_backend("proxqp").installed()),
                    reason="daqp or proxsuite is not installed")
@settings(max_examples=25, deadline=None, derandomize=True)
@given(seed=hst.integers(0, 2**31 - 1), n=hst.integers(2, 5), rows=hst.integers(0, 2))
def test_daqp_clarabel_and_proxqp_agree_on_random_bounded_qps(seed, n, rows):
    rng = np.random.default_rng(seed)
    P, q = _spd(rng, n, 0.05), 2.0 * rng.standard_normal(n)
    lb, ub = -rng.uniform(0.0, 1.0, n), rng.uniform(0.0, 1.0, n)
    A = rng.standard_normal((rows, n))
    l, u = -rng.uniform(0.0, 0.5, rows), rng.uniform(0.0, 0.5, rows)
    sub = BlockSubproblem.from_dense(P, q, A=A if rows else None, l=l if rows else None, u=u if rows else None,
                                     lb=lb, ub=ub)
    exact = sub.value(_enumerate(P, q, np.vstack([np.eye(n), A]), np.concatenate([lb, l]), np.concatenate([ub, u])))
    for name in ("daqp", "clarabel", "proxqp"):
        sol = solve(sub, make_plan(name))
        assert sol.status == "optimal", (name, sol.attempts)
        assert sol.value == pytest.approx(exact, abs=1e-7 * max(1.0, abs(exact))), name


def test_the_one_blas_thread_context_nests_and_restores_the_setting():
    """Jacobi blocks on threads enter it concurrently: the inner exit must not restore the threads."""
    def blas():
        return [(i["filepath"], i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"]

    before = blas()
    with dispatch.one_blas_thread():
        with dispatch.one_blas_thread():
            pass
        assert all(n == 1 for _, n in blas())
    assert blas() == before


def test_inside_a_one_blas_thread_context_another_on_the_same_thread_changes_nothing_and_other_threads_count():
    def blas():
        return [(i["filepath"], i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"]

    before = blas()
    seen: list = []
    with dispatch.one_blas_thread():
        inner = dispatch.one_blas_thread()
        assert not isinstance(inner, dispatch._OneBlasThread)  # this thread holds the setting already
        with inner:
            pass

        def worker():  # a Jacobi block on a thread pool: counted, so its exit restores nothing under us
            ctx = dispatch.one_blas_thread()
            seen.append(isinstance(ctx, dispatch._OneBlasThread))
            with ctx:
                pass

        t = threading.Thread(target=worker)
        t.start()
        t.join()
        assert seen == [True] and all(n == 1 for _, n in blas())
    assert blas() == before
    assert isinstance(dispatch.one_blas_thread(), dispatch._OneBlasThread)  # outside: the real context again


def _equalities(A, b, n_extra_q=None):
    A = np.asarray(A, dtype=float)
    b = np.asarray(b, dtype=float)
    return BlockSubproblem.from_dense(np.eye(A.shape[1]), np.zeros(A.shape[1]) if n_extra_q is None else n_extra_q,
                                      A=A, l=b, u=b)


def test_inconsistent_equalities_are_proven_infeasible_by_the_closed_form():
    """x₁ + x₂ = 1 and x₁ + x₂ = 2: the least-squares residual is a Farkas ray, checked here, so the claim is a
    proof and no other backend is tried after it."""
    sub = _equalities([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]], [1.0, 2.0, 0.5])
    y = multiconvex.solvers.closed_form.farkas_certificate(sub)
    assert y is not None and abs(sub.A.T @ y).max() <= 1e-12 and sub.l @ y > 0.4
    sol = solve(sub, make_plan(["lstsq", "clarabel"]))
    assert sol.status == "infeasible" and [n for n, _ in sol.attempts] == ["lstsq"]


def test_consistent_rank_deficient_equalities_have_no_farkas_ray():
    """Repeated, consistent rows: the residual is rounding noise, never accepted as a ray; the solve is optimal."""
    rng = np.random.default_rng(3)
    A = rng.standard_normal((3, 6))
    A = np.vstack([A, A[:2] * 3.0])
    b = A @ rng.standard_normal(6)
    sub = _equalities(A, b)
    assert multiconvex.solvers.closed_form.farkas_certificate(sub) is None
    sol = solve(sub, make_plan("lstsq"))
    assert sol.status == "optimal" and sub.violation(sol.x) <= 1e-9


def test_an_inconsistency_at_rounding_level_is_not_a_proof():
    """Rows equal up to 1e-13 and right-hand sides that differ by as little: the margin refuses the ray."""
    A = np.array([[1.0, 2.0], [1.0, 2.0 + 1e-13]])
    sub = _equalities(A, [1.0, 1.0 + 1e-13])
    assert multiconvex.solvers.closed_form.farkas_certificate(sub) is None
    assert solve(sub, make_plan("lstsq")).status != "infeasible"


def test_an_isolated_block_with_inconsistent_equalities_ends_the_run_infeasible():

    x, y = cp.Variable(2, name="x"), cp.Variable(2, name="y")
    prob = cp.Problem(cp.Minimize(cp.sum_squares(x - y) + cp.sum_squares(y)), [cp.sum(x) == 1, cp.sum(x) == 2])
    res = multiconvex.solve(prob, [[x], [y]], solver="lstsq", seed=0)
    assert res.status == "infeasible" and "x" in res.message


# -- infeasibility proofs on equality rows are exact where that is cheap -----------------------------------------

def _equalities(A, b):
    A, b = np.asarray(A, dtype=float), np.asarray(b, dtype=float)
    return BlockSubproblem.from_dense(np.eye(A.shape[1]), np.zeros(A.shape[1]), A=A, l=b, u=b)


@pytest.mark.parametrize("solver", ["lstsq", "daqp", "clarabel", "osqp", "auto"])
def test_consistent_equalities_with_a_huge_solution_are_never_proved_infeasible(solver):
    # A x = b has the exact solution (1 − 2⁵², 2⁵²) in the floats as given; a least-squares residual looks like a
    # Farkas ray (the review that found it: lstsq, DAQP and Clarabel all 'proved' it infeasible)
    sub = _equalities([[1.0, 1.0], [1.0, 1.0 + 2.0**-52]], [1.0, 2.0])
    sol = dispatch.solve(sub, dispatch.make_plan(solver))
    assert sol.status != "infeasible", sol.attempts


@pytest.mark.parametrize("solver", ["lstsq", "daqp", "clarabel", "osqp", "auto"])
def test_contradicting_equalities_are_proved_infeasible_by_every_backend(solver):
    sol = dispatch.solve(_equalities([[1.0, 1.0], [1.0, 1.0]], [1.0, 2.0]), dispatch.make_plan(solver))
    assert sol.status == "infeasible", sol.attempts


def test_the_exact_consistency_check_decides_rank_deficient_systems_and_declines_large_ones():
    rng = np.random.default_rng(0)
    A = rng.integers(-3, 4, (6, 4)).astype(float)
    A[5] = A[0] + 2 * A[1]  # exact in floats: small integers
    x = rng.integers(-5, 6, 4).astype(float)
    assert inconsistent_exactly(A, A @ x) is False
    b = A @ x
    b[5] += 1.0
    assert inconsistent_exactly(A, b) is True
    m = int(np.ceil((EXACT_WORK / 10) ** 0.5)) + 1
    assert inconsistent_exactly(np.ones((m, 10)), np.ones(m)) is None


def test_an_ill_conditioned_consistent_system_too_large_to_decide_exactly_is_never_proved_infeasible():
    # a 40 × 40 system of condition 1e13 with its first row repeated: consistent, but DAQP exits -6 and the
    # least-squares residual looked like a contradiction (the review that found it: 'infeasible' from daqp and auto)
    rng = np.random.default_rng(1)
    n = 40
    U, _ = np.linalg.qr(rng.standard_normal((n, n)))
    V, _ = np.linalg.qr(rng.standard_normal((n, n)))
    A0 = (U * np.logspace(0, -13, n)) @ V.T
    b0 = rng.standard_normal(n)
    A, b = np.vstack([A0, A0[:1]]), np.concatenate([b0, b0[:1]])
    assert inconsistent_exactly(A, b) is None  # too large to decide: no proof either way
    for solver in ("daqp", "auto"):
        sol = dispatch.solve(_equalities(A, b), dispatch.make_plan(solver))
        assert sol.status != "infeasible", (solver, sol.attempts)


def test_a_backend_found_once_is_asked_again_when_its_modules_are_replaced(monkeypatch):
    # the process-wide "found" cache must not answer for a backend whose required modules changed (the
    # missing-package error tests replace them): a review found a later plan still offering clarabel
    backend = get_backend("clarabel")
    assert make_plan("auto").installed(backend)
    monkeypatch.setattr(backend, "modules", ("clarabel_is_not_installed_here",))
    assert not backend.installed()
    assert not make_plan("auto").installed(backend)


@pytest.mark.parametrize("side", [np.inf, -np.inf])
def test_an_equality_at_infinity_is_refused_when_the_subproblem_is_built(side):
    # l_i == u_i == ±inf is no constraint a backend can take (DAQP's proof code raised inside its solve, and the
    # next backend then called the block optimal): it fails at construction, naming the row and the fix
    with pytest.raises(InvalidInputError, match=r"l\[1\] == u\[1\] .*finite"):
        BlockSubproblem.from_dense(np.eye(2), np.ones(2), A=np.eye(2), l=np.array([0.0, side]),
                                   u=np.array([1.0, side]))
    with pytest.raises(InvalidInputError, match=r"lb\[0\] == ub\[0\]"):
        BlockSubproblem.from_dense(np.eye(2), np.ones(2), lb=np.array([side, 0.0]), ub=np.array([side, 1.0]))
