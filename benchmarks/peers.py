"""Peers measured in the same run as multiconvex, on the same objective from the same start.

- ``dmcp_style_alternation``: the loop DMCP (and most hand-written alternating
  schemes) runs: at every block solve it builds a *new* cvxpy problem with the
  other blocks substituted as constants, solves it, and moves on. It is what our
  build-once, re-solve path must beat. ``dmcp_style_factorization`` is the same
  loop written out for matrix factorization (``bench_factorization.py``).
- ``sklearn_nmf``: scikit-learn's ``NMF`` (``cd`` or ``mu``) started from our start.
- ``torch_descent``: Adam or gradient descent (Armijo backtracking, projected on
  ``>= 0`` where the model says so) on the model's torch objective.

Each returns a dict with ``objective``, ``values``, ``iterations``, ``status``,
``total_time``, ``solver_time`` (None where there is no modeling layer to
separate) and ``trajectory`` (``[[time, objective], ...]``).
"""

from __future__ import annotations

import itertools
import time
import warnings
from collections.abc import Callable
from typing import Any

import cvxpy as cp
import numpy as np


def dmcp_style_factorization(Y: np.ndarray, U0: np.ndarray, V0: np.ndarray, lam: float, sweeps: int,
                             solver: str = "CLARABEL") -> dict:
    """Alternating minimisation of ½‖Y − UV‖² + (λ/2)(‖U‖² + ‖V‖²), rebuilding each subproblem."""
    U, V = U0.copy(), V0.copy()
    solver_time = 0.0
    objectives = []
    t0 = time.perf_counter()
    for _ in range(sweeps):
        u = cp.Variable(U.shape)
        p = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(Y - u @ V) + lam / 2 * (cp.sum_squares(u) + np.sum(V ** 2))))
        p.solve(solver=solver)
        solver_time += p.solver_stats.solve_time or 0.0
        U = u.value
        v = cp.Variable(V.shape)
        p = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(Y - U @ v) + lam / 2 * (np.sum(U ** 2) + cp.sum_squares(v))))
        p.solve(solver=solver)
        solver_time += p.solver_stats.solve_time or 0.0
        V = v.value
        objectives.append(0.5 * np.sum((Y - U @ V) ** 2) + lam / 2 * (np.sum(U ** 2) + np.sum(V ** 2)))
    total = time.perf_counter() - t0
    return {"objective": objectives[-1], "objectives": objectives, "total_time": total, "solver_time": solver_time}


# -- the generic DMCP-style loop ---------------------------------------------------------------------
def fix(expr: Any, values: dict[int, np.ndarray]) -> Any:
    """A copy of ``expr`` (expression or constraint) with the variables in ``values`` (by id) as constants.

    This is DMCP's ``fix``: the expression tree is rebuilt, so every call makes a new problem.
    """
    if isinstance(expr, cp.Variable):
        return cp.Constant(values[expr.id]) if expr.id in values else expr
    if not expr.args:
        return expr
    return expr.copy([fix(a, values) for a in expr.args])


def dmcp_style_alternation(model: Any, start: dict[str, np.ndarray], objective: Callable[[dict], float], *,
                           solver: str, max_sweeps: int, tol: float = 1e-6, time_limit: float | None = None) -> dict:
    """Alternate over ``model.blocks``, rebuilding each block problem with the other blocks fixed.

    Stops after ``max_sweeps`` sweeps, at ``time_limit``, or when a sweep lowers the
    objective by at most ``tol * max(1, |f|)`` (DMCP's own stopping rule).
    """
    variables = model.variables
    by_id = {v.id: name for name, v in variables.items()}
    point = {name: np.asarray(val, dtype=float).copy() for name, val in start.items()}
    solver_time = 0.0
    t0 = time.perf_counter()
    f = objective(point)
    trajectory = [[0.0, f]]
    status = "iteration_limit"
    sweeps = 0
    for sweeps in range(1, max_sweeps + 1):  # noqa: B007 - `sweeps` is the sweep count after the loop
        f_before = f
        for block in model.blocks:
            free = {v.id for v in block}
            fixed = {vid: point[name] for vid, name in by_id.items() if vid not in free}
            prob = cp.Problem(cp.Minimize(fix(model.problem.objective.expr, fixed)),
                              [fix(c, fixed) for c in model.problem.constraints])
            prob.solve(solver=solver)
            solver_time += prob.solver_stats.solve_time or 0.0
            if prob.status not in ("optimal", "optimal_inaccurate") or any(v.value is None for v in block):
                status = "solver_failure"
                break
            candidate = {**point, **{by_id[v.id]: np.asarray(v.value, dtype=float) for v in block}}
            f_new = objective(candidate)
            if f_new <= f:
                point, f = candidate, f_new
        trajectory.append([time.perf_counter() - t0, f])
        if status == "solver_failure":
            break
        if f_before - f <= tol * max(1.0, abs(f)):
            status = "converged"
            break
        if time_limit is not None and time.perf_counter() - t0 > time_limit:
            status = "time_limit"
            break
    return {"objective": f, "values": point, "iterations": sweeps, "status": status,
            "total_time": time.perf_counter() - t0, "solver_time": solver_time, "trajectory": trajectory}


# -- scikit-learn NMF --------------------------------------------------------------------------------
def sklearn_nmf(Y: np.ndarray, rank: int, alpha: float, start: dict[str, np.ndarray], objective: Callable, *,
                solver: str, max_iter: int = 1000, tol: float = 1e-6) -> dict:
    """scikit-learn's NMF from our start (``init="custom"``), same objective.

    Our ``α`` on an ``m × n`` matrix is scikit-learn's ``alpha_W = α / n``, ``alpha_H = α / m``
    with ``l1_ratio = 0`` (see :class:`multiconvex.models.NonnegativeMatrixFactorization`).
    """
    from sklearn.decomposition import NMF  # lazy: scikit-learn takes ~0.5 s to import

    m, n = Y.shape
    est = NMF(n_components=rank, init="custom", solver=solver, beta_loss="frobenius", max_iter=max_iter, tol=tol,
              alpha_W=alpha / n, alpha_H=alpha / m, l1_ratio=0.0)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter: reported as iteration_limit
        W = est.fit_transform(Y, W=start["W"].copy(), H=start["H"].copy())
    total = time.perf_counter() - t0
    values = {"W": W, "H": est.components_}
    f = objective(values)
    return {"objective": f, "values": values, "iterations": int(est.n_iter_),
            "status": "iteration_limit" if est.n_iter_ >= max_iter else "converged",
            "total_time": total, "solver_time": None,
            "trajectory": [[0.0, objective(start)], [total, f]]}


# -- torch gradient methods ----------------------------------------------------------------------------
def torch_descent(torch_objective: Callable, start: dict[str, np.ndarray], *, method: str, max_iters: int = 3000,
                  lr: float = 1e-2, nonneg: tuple[str, ...] = (), tol: float = 1e-10,
                  time_limit: float | None = None, record_every: int = 25, threads: int = 1) -> dict:
    """Minimise ``torch_objective`` from ``start`` by ``"adam"`` or ``"gd"`` (Armijo backtracking).

    Variables named in ``nonneg`` are projected on ``>= 0`` after every step. GD stops
    (``converged``) when a step lowers the objective by at most ``tol * max(1, |f|)``.
    Runs on ``threads`` torch threads (default 1, like the convex backends): on these
    small problems torch's thread pool only adds contention (13x slower on a loaded 2-core machine).
    """
    import torch  # lazy: torch takes ~0.7 s to import

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _descent(torch, torch_objective, start, method, max_iters, lr, nonneg, tol, time_limit, record_every)
    finally:
        torch.set_num_threads(previous)


def _descent(torch, torch_objective, start, method, max_iters, lr, nonneg, tol, time_limit, record_every) -> dict:

    params = {k: torch.tensor(np.asarray(v, dtype=float), dtype=torch.float64, requires_grad=True)
              for k, v in start.items()}

    def project():
        with torch.no_grad():
            for k in nonneg:
                params[k].clamp_(min=0.0)

    def value() -> float:
        with torch.no_grad():
            return float(torch_objective(params))

    t0 = time.perf_counter()
    f = value()
    trajectory = [[0.0, f]]
    best, best_f = {k: p.detach().clone() for k, p in params.items()}, f
    status = "iteration_limit"
    step = 1.0
    opt = torch.optim.Adam(list(params.values()), lr=lr) if method == "adam" else None
    it = 0
    for it in range(1, max_iters + 1):
        for p in params.values():
            p.grad = None
        loss = torch_objective(params)
        loss.backward()
        if opt is not None:
            opt.step()
            project()
            f = value()
        else:
            old = {k: p.detach().clone() for k, p in params.items()}
            f0 = loss.item()
            while True:  # Armijo backtracking on the projected step
                with torch.no_grad():
                    for k, p in params.items():
                        p.copy_(old[k] - step * p.grad)
                project()
                with torch.no_grad():
                    decrease = sum(float((p.grad * (old[k] - p)).sum()) for k, p in params.items())
                f = value()
                if f <= f0 - 1e-4 * decrease or step < 1e-16:
                    break
                step /= 2
            step *= 2
            if f0 - f <= tol * max(1.0, abs(f)):
                status = "converged"
        if f < best_f:
            best, best_f = {k: p.detach().clone() for k, p in params.items()}, f
        if it % record_every == 0 or status == "converged":
            trajectory.append([time.perf_counter() - t0, best_f])
        if status == "converged":
            break
        if not np.isfinite(f):
            status = "diverged"
            break
        if time_limit is not None and time.perf_counter() - t0 > time_limit:
            status = "time_limit"
            break
    total = time.perf_counter() - t0
    if trajectory[-1][0] != total:
        trajectory.append([total, best_f])
    return {"objective": best_f, "values": {k: v.numpy() for k, v in best.items()}, "iterations": it,
            "status": status, "total_time": total, "solver_time": None, "trajectory": trajectory}


# -- global: big-M MIQPs for tiny unregularised ReLU networks -------------------------------------------
def bigm_miqp(x: np.ndarray, y: np.ndarray, hidden: int, *, solver: str, bound: float = 10.0) -> dict:
    """Global optimum of ``(1/n) Σ (y − Σ_j v_j relu(w_j x + b_j))²`` (one input) by big-M MIQPs.

    Positive homogeneity (``v relu(z) = sign(v) relu(|v| z)``) lets the output weights be
    fixed to signs ``±1``; units are interchangeable, so one MIQP per sign multiset
    (``hidden + 1`` of them) covers every network. Each MIQP has per sample and unit a
    binary ``z`` (active or not) and ``h = relu(w x + b)`` through big-M constraints,
    with ``|w|, |b| <= bound``. The result is global only if no bound is active at the
    optimum; ``status`` says ``converged`` then and ``bound_active`` otherwise.
    """
    n = len(x)
    big_m = bound * (np.abs(x).max() + 1.0)
    t0 = time.perf_counter()
    solver_time = 0.0
    best: dict | None = None
    for signs in itertools.combinations_with_replacement((1.0, -1.0), hidden):
        w, b = cp.Variable(hidden), cp.Variable(hidden)
        h = cp.Variable((n, hidden), nonneg=True)
        z = cp.Variable((n, hidden), boolean=True)
        pre = np.reshape(x, (n, 1)) @ cp.reshape(w, (1, hidden), order="C") \
            + np.ones((n, 1)) @ cp.reshape(b, (1, hidden), order="C")
        prob = cp.Problem(cp.Minimize(cp.sum_squares(y - h @ np.array(signs)) / n),
                          [h >= pre, h <= pre + big_m * (1 - z), h <= big_m * z, cp.abs(w) <= bound,
                           cp.abs(b) <= bound])
        prob.solve(solver=solver)
        solver_time += prob.solver_stats.solve_time or 0.0
        if prob.status in ("optimal", "optimal_inaccurate") and (best is None or prob.value < best["objective"]):
            best = {"objective": float(prob.value), "W1": np.column_stack([w.value, b.value]),
                    "w2": np.array(signs),
                    "active": max(np.abs(w.value).max(), np.abs(b.value).max()) >= bound * (1 - 1e-6)}
    total = time.perf_counter() - t0
    if best is None:
        return {"objective": None, "iterations": 0, "status": "solver_failure", "total_time": total,
                "solver_time": solver_time, "trajectory": []}
    return {"objective": best["objective"], "values": {"W1": best["W1"], "w2": best["w2"]},
            "iterations": hidden + 1, "status": "bound_active" if best["active"] else "converged",
            "total_time": total, "solver_time": solver_time, "trajectory": [[total, best["objective"]]]}
