"""Second-order cones in block subproblems: class ``SOCP``, solved by the conic backends only.

Each answer is checked against the same program written in cvxpy and solved directly (Clarabel), or
against the ReLU grow piece program as :mod:`multiconvex.globalopt.relu_piece` solves it with Clarabel's
matrix interface; QP-only backends are refused with a message that names who can; Clarabel's
infeasibility and unboundedness certificates are re-checked against the second-order (self-dual) cone.
"""

from __future__ import annotations

from types import SimpleNamespace

import cvxpy as cp
import numpy as np
import pytest
import scipy.sparse as sp

from multiconvex.errors import InvalidInputError
from multiconvex.globalopt.relu_piece import PiecePrograms
from multiconvex.solvers import status as st
from multiconvex.solvers.clarabel_qp import _certificate_holds, cone_rows, soc_cone_rows
from multiconvex.solvers.cvxpy_bridge import as_cvxpy
from multiconvex.solvers.dispatch import make_plan, solve
from multiconvex.subproblem import BlockSubproblem, check_soc, soc_gaps, soc_rows

pytestmark = [
    pytest.mark.filterwarnings(r"ignore:(?s).*infeasible or unbounded:UserWarning"),
    pytest.mark.filterwarnings(r"ignore:Solution may be inaccurate:UserWarning"),
]

CONIC = ("clarabel", "ecos", "scs", "auto")
QP_ONLY = ("daqp", "osqp", "proxqp", "lstsq", "nnls")


def random_socp(seed: int, *, quadratic: bool = True) -> tuple[BlockSubproblem, cp.Problem]:
    """A feasible, bounded SOCP (a strictly feasible point ``x0``; ``P ≻ 0``, or a norm ball) and the
    same program in cvxpy."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 9))
    x0 = rng.standard_normal(n)
    cones = []
    for dim in rng.integers(1, 5, size=3):  # a 1-row cone is t ≥ 0
        g, G, h = 0.3 * rng.standard_normal(n), rng.standard_normal((dim - 1, n)), rng.standard_normal(dim - 1)
        e = float(np.linalg.norm(G @ x0 + h) - g @ x0 + 0.5)
        cones.append((g, e, G, h))
    if not quadratic:  # a linear objective is bounded by a ball around x0
        cones.append((np.zeros(n), 3.0, np.eye(n), -x0))
    M = rng.standard_normal((n, n))
    P = M @ M.T + 0.1 * np.eye(n) if quadratic else None
    q, c = rng.standard_normal(n), float(rng.standard_normal())
    A = rng.standard_normal((2, n))
    l, u = A @ x0 - np.array([1.0, np.inf]), A @ x0 + np.array([1.0, 1.0])
    S, s = soc_rows(cones)
    dims = tuple(1 + G.shape[0] for _, _, G, _ in cones)
    sub = BlockSubproblem.from_dense(P, q, c, A=A, l=l, u=u, soc_A=S, soc_b=s, soc_dims=dims,
                                     lb=np.full(n, -10.0))
    x = cp.Variable(n)
    objective = q @ x + c + (0.5 * cp.quad_form(x, P) if quadratic else 0)
    constraints = [A @ x <= u, A[:1] @ x >= l[:1], x >= -10]
    constraints += [cp.SOC(g @ x + e, G @ x + h) for g, e, G, h in cones]
    return sub, cp.Problem(cp.Minimize(objective), constraints)


@pytest.mark.parametrize("quadratic", [True, False])
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("backend", CONIC)
def test_random_socps_match_cvxpy_solved_directly(backend, seed, quadratic):
    sub, reference = random_socp(seed, quadratic=quadratic)
    reference.solve(solver=cp.CLARABEL)
    assert reference.status == cp.OPTIMAL
    sol = solve(sub, make_plan(backend))
    assert sol.status == st.OPTIMAL, sol.attempts
    assert sub.problem_class == "SOCP"
    assert abs(sol.value - reference.value) <= 1e-6 * max(1.0, abs(reference.value))
    assert sub.violation(sol.x) <= 1e-6
    assert sol.backend in ("clarabel", "ecos", "scs")


def test_auto_tries_only_conic_backends():
    sub, _ = random_socp(0)
    plan = make_plan("auto")
    assert {b.name for b in plan.candidates(sub)} <= {"clarabel", "ecos", "scs"}
    assert solve(sub, plan).backend == "clarabel"


@pytest.mark.parametrize("backend", QP_ONLY)
def test_a_named_qp_only_backend_is_refused_with_a_message_that_names_who_can(backend):
    sub, _ = random_socp(1)
    with pytest.raises(InvalidInputError, match=rf"'{backend}' cannot take a SOCP.*second-order cones.*clarabel"):
        solve(sub, make_plan(backend))
    with pytest.raises(InvalidInputError, match=r"SOCP.*clarabel"):
        make_plan(backend).check_class("SOCP")


def test_a_fallback_list_passes_over_a_qp_only_backend_to_a_conic_one():
    sub, _ = random_socp(2)
    sol = solve(sub, make_plan(["daqp", "clarabel"]))
    assert sol.backend == "clarabel"
    assert sol.attempts[0][0] == "daqp" and "cannot take a SOCP" in sol.attempts[0][1]


def test_value_and_violation_include_the_cones():
    G, h = soc_rows([(np.zeros(2), 1.0, np.eye(2), np.zeros(2))])  # ‖x‖ ≤ 1
    sub = BlockSubproblem.from_dense(np.eye(2), np.zeros(2), soc_A=G, soc_b=h, soc_dims=(3,))
    assert sub.violation(np.array([0.6, 0.8])) == pytest.approx(0.0, abs=1e-15)
    assert sub.violation(np.array([3.0, 4.0])) == pytest.approx(4.0)
    assert sub.value(np.array([3.0, 4.0])) == pytest.approx(12.5)
    assert soc_gaps(np.array([1.0, 3.0, 4.0, -2.0]), (3, 1)).tolist() == pytest.approx([4.0, 2.0])


@pytest.mark.parametrize(("dims", "rows", "match"), [((3, 0), 3, "at least 1 row"), ((2, 2), 3, r"needs \(4, 2\)")])
def test_inconsistent_cone_data_is_refused_naming_the_argument(dims, rows, match):
    with pytest.raises(InvalidInputError, match=match):
        check_soc(2, np.ones((rows, 2)), np.ones(rows), dims)


def test_a_qp_block_is_unchanged_by_the_cone_fields():
    sub = BlockSubproblem.from_dense(np.eye(2), np.array([1.0, -1.0]), lb=np.zeros(2))
    assert sub.problem_class == "QP" and sub.n_soc == 0 and sub.soc_dims == ()
    A, b, n_zero, n_nonneg = cone_rows(sub)
    assert (A.shape, n_zero, n_nonneg) == ((2, 2), 0, 2)


def test_an_infeasible_socp_is_proved_infeasible():
    G, h = soc_rows([(np.zeros(2), 1.0, np.eye(2), np.zeros(2))])  # ‖x‖ ≤ 1 and x₀ ≥ 2
    sub = BlockSubproblem.from_dense(np.eye(2), np.zeros(2), soc_A=G, soc_b=h, soc_dims=(3,), lb=[2.0, -np.inf])
    sol = solve(sub, make_plan("clarabel"))
    assert sol.status == st.INFEASIBLE and sol.x is None


def test_an_unbounded_socp_is_proved_unbounded():
    G, h = soc_rows([(np.array([1.0, 0.0]), 0.0, np.array([[0.0, 1.0]]), np.zeros(1))])  # |x₁| ≤ x₀
    sub = BlockSubproblem.from_dense(None, np.array([-1.0, 0.5]), soc_A=G, soc_b=h, soc_dims=(2,))
    sol = solve(sub, make_plan("clarabel"))
    assert sol.status == st.UNBOUNDED and sol.x is None


def test_a_certificate_outside_the_second_order_cone_is_not_a_proof():
    G, h = soc_rows([(np.zeros(2), 1.0, np.eye(2), np.zeros(2))])
    sub = BlockSubproblem.from_dense(np.eye(2), np.zeros(2), soc_A=G, soc_b=h, soc_dims=(3,), lb=[2.0, -np.inf])
    A, b, n_zero, _ = soc_cone_rows(sub)  # rows: −x₀ ≤ −2, then (1, x₀, x₁) ∈ Q
    good = SimpleNamespace(status=st.INFEASIBLE, ray=np.array([1.0, 1.0, -1.0, 0.0]))  # Aᵀy = 0, bᵀy = −1
    bad = SimpleNamespace(status=st.INFEASIBLE, ray=np.array([1.0, 0.5, -1.0, 0.0]))  # Aᵀy = 0, bᵀy < 0, y ∉ Q
    assert _certificate_holds(sub, A, b, n_zero, good)
    assert not _certificate_holds(sub, A, b, n_zero, bad)
    ray_out = SimpleNamespace(status=st.UNBOUNDED, ray=np.array([1.0, 0.0]))  # leaves the ball
    lin = BlockSubproblem.from_dense(None, np.array([-1.0, 0.0]), soc_A=G, soc_b=h, soc_dims=(3,))
    A, b, n_zero, _ = soc_cone_rows(lin)
    assert not _certificate_holds(lin, A, b, n_zero, ray_out)


def test_the_cvxpy_form_carries_the_cones():
    sub, reference = random_socp(3)
    problem, _ = as_cvxpy(sub)
    assert sum(isinstance(c, cp.SOC) for c in problem.constraints) == sum(d > 1 for d in sub.soc_dims)
    reference.solve(solver=cp.CLARABEL)
    problem.solve(solver=cp.CLARABEL)
    assert problem.value == pytest.approx(reference.value, rel=1e-6, abs=1e-6)


# -- the ReLU grow piece program (group lasso) --------------------------------------------------------


def piece_subproblem(X, y, lam, D, sign):
    """The piece program of :class:`PiecePrograms` as a block subproblem in ``x = (w, t, s)``:
    ``min s + λ Σ t_j`` s.t. ``(2D_j − I) X w_j ≥ 0``, ``‖w_j‖ ≤ t_j``, ``‖y − A w‖² ≤ 2s`` (a cone on
    ``((s+1)/√2, (s−1)/√2, y − A w)``). Returns the subproblem and ``A``."""
    r = D.shape[0]
    N, d = X.shape
    n = r * d + r + 1
    A = (sign[:, None, None] * D[:, :, None] * X[None, :, :]).transpose(1, 0, 2).reshape(N, r * d)
    C = sp.block_diag([np.where(D[j], 1.0, -1.0)[:, None] * X for j in range(r)] + [sp.csr_matrix((0, r + 1))],
                      format="csr")
    h = 1 / np.sqrt(2)
    norms = [(np.eye(1, n, r * d + j).ravel(), 0.0, sp.eye(d, n, j * d), np.zeros(d)) for j in range(r)]
    G_loss = sp.vstack([sp.csr_matrix(np.eye(1, n, n - 1) * h), sp.csr_matrix(np.hstack([-A, np.zeros((N, r + 1))]))])
    S, s = soc_rows(norms + [(np.eye(1, n, n - 1).ravel() * h, h, G_loss, np.concatenate([[-h], y]))])
    q = np.concatenate([np.zeros(r * d), np.full(r, lam), [1.0]])
    sub = BlockSubproblem.from_dense(None, q, A=C, l=np.zeros(r * N), u=np.full(r * N, np.inf), soc_A=S,
                                     soc_b=s, soc_dims=(d + 1,) * r + (N + 2,))
    return sub, A


def group_lasso(A, y, lam, W):
    res = y - A @ W.reshape(-1)
    return 0.5 * float(res @ res) + lam * float(np.linalg.norm(W, axis=1).sum())


@pytest.mark.parametrize("seed", range(3))
def test_the_relu_piece_program_matches_relu_piece(seed):
    rng = np.random.default_rng(seed)
    N, d, r, lam = 30, 4, 3, 0.2
    X, y = rng.standard_normal((N, d)), rng.standard_normal(N)
    D = (X @ rng.standard_normal((r, d)).T).T >= 0
    sign = np.where(rng.random(r) < 0.5, -1.0, 1.0)
    W_direct, native, _ = PiecePrograms(X, make_plan("clarabel", "QP")).piece(y, lam, D, sign)
    assert native == st.OPTIMAL  # relu_piece goes through the dispatcher: normalised statuses
    sub, A = piece_subproblem(X, y, lam, D, sign)
    plan = make_plan("clarabel", "SOCP")
    sol = solve(sub, plan, key="piece")
    assert sol.status == st.OPTIMAL and sol.backend == "clarabel"
    W = sol.x[: r * d].reshape(r, d)
    assert group_lasso(A, y, lam, W) == pytest.approx(group_lasso(A, y, lam, W_direct), rel=1e-6)
    assert sol.value == pytest.approx(group_lasso(A, y, lam, W), rel=1e-6)  # s and t are tight at the optimum
    assert sub.violation(sol.x) <= 1e-7
    # new numbers, the same pattern: the kept Clarabel solver is updated in place, not rebuilt
    sub2, A2 = piece_subproblem(X, y + 0.1, lam, D, sign)
    sol2 = solve(sub2, plan, key="piece")
    W2_direct, _, _ = PiecePrograms(X, make_plan("clarabel", "QP")).piece(y + 0.1, lam, D, sign)
    assert plan.workspaces["piece"]["clarabel"]["clarabel"].rebuilds == 1
    W2 = sol2.x[: r * d].reshape(r, d)
    assert group_lasso(A2, y + 0.1, lam, W2) == pytest.approx(group_lasso(A2, y + 0.1, lam, W2_direct), rel=1e-6)
