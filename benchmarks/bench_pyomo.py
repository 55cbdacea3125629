"""The Pyomo front end against the cvxpy front end, and against a fresh Pyomo solver per solve.

Same problems, same start, same number of sweeps (Gauss-Seidel), one run:

* matrix factorization 40x30, rank 3 (blocks U, V): Pyomo + gurobi_persistent, Pyomo + HiGHS, cvxpy +
  Clarabel. (cvxpy + Gurobi is not possible under Gurobi's pip licence: cvxpy's QP form adds one auxiliary
  variable per residual, 1320 variables with quadratic terms > 200, while Pyomo hands Gurobi the expanded
  quadratic in the 120 block variables. cvxpy + HiGHS fails on these QPs.)
* a [3, 4, 1] ReLU network on 30 samples in full-space form (Pyomo: pre-activation and activation
  variables with ReLU relations) and with ``mc.relu`` (cvxpy): Pyomo + HiGHS, cvxpy + Clarabel;
* each Pyomo row also with ``reuse_subsolver=False`` (a fresh solver every solve: the naive baseline).

Reports time per sweep, final objective and solver share. Run: ``python benchmarks/bench_pyomo.py``.
Writes ``benchmarks/results/pyomo.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import cvxpy as cp
import numpy as np
import pyomo.environ as pyo

import multiconvex as mc
from multiconvex.pyomo_front import relu_network_model, set_consistent_activations

SWEEPS = 10


def factorization_rows(rng) -> list[dict]:
    m_, n_, k, lam = 40, 30, 3, 0.5
    Y = rng.standard_normal((m_, k)) @ rng.standard_normal((k, n_)) + 0.1 * rng.standard_normal((m_, n_))
    U0, V0 = rng.standard_normal((m_, k)), rng.standard_normal((k, n_))
    rows = []

    def pyomo_run(sub, reuse):
        m = pyo.ConcreteModel()
        m.U = pyo.Var(range(m_), range(k), initialize=lambda m, i, a: U0[i, a])
        m.V = pyo.Var(range(k), range(n_), initialize=lambda m, a, j: V0[a, j])
        fit = sum((Y[i, j] - sum(m.U[i, a] * m.V[a, j] for a in range(k))) ** 2
                  for i in range(m_) for j in range(n_))
        m.obj = pyo.Objective(expr=0.5 * fit + lam / 2 * (sum(v ** 2 for v in m.U.values())
                                                         + sum(v ** 2 for v in m.V.values())))
        opt = pyo.SolverFactory("multiconvex", subsolver=sub, blocks=[[m.U], [m.V]], max_iters=SWEEPS, tol=0.0,
                                reuse_subsolver=reuse)
        t0 = time.perf_counter()
        opt.solve(m)
        return opt.result, time.perf_counter() - t0

    def cvxpy_run(solver):
        U, V = cp.Variable((m_, k)), cp.Variable((k, n_))
        prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(Y - U @ V) + lam / 2 * (cp.sum_squares(U)
                                                                                 + cp.sum_squares(V))))
        t0 = time.perf_counter()
        res = mc.solve(prob, [[U], [V]], solver=solver, init={U: U0, V: V0}, max_iters=SWEEPS, tol=0.0)
        return res, time.perf_counter() - t0

    for label, fn in [("pyomo gurobi_persistent", lambda: pyomo_run("gurobi_persistent", True)),
                      ("pyomo gurobi_persistent, fresh solver per solve",
                       lambda: pyomo_run("gurobi_persistent", False)),
                      ("pyomo highs", lambda: pyomo_run("highs", True)),
                      ("pyomo highs, fresh solver per solve", lambda: pyomo_run("highs", False)),
                      ("cvxpy clarabel", lambda: cvxpy_run("clarabel"))]:
        res, wall = fn()
        rows.append(_row("factorization 40x30 k=3", label, res, wall))
    return rows


def relu_rows(rng) -> list[dict]:
    N, d, h = 30, 3, 4
    X = rng.standard_normal((N, d))
    y = np.maximum(X @ rng.standard_normal(d), 0) + 0.1 * rng.standard_normal(N)
    W10, W20 = rng.standard_normal((h, d)), rng.standard_normal((1, h))
    rows = []
    for label, reuse in [("pyomo highs (full space)", True),
                         ("pyomo highs (full space), fresh solver per solve", False)]:
        pm = relu_network_model(X, y, [d, h, 1], weight_decay=1e-3, bias=False, weights=[W10, W20])
        set_consistent_activations(pm.model)
        opt = pyo.SolverFactory("multiconvex", subsolver="highs", blocks=pm.blocks, max_iters=SWEEPS, tol=0.0,
                                reuse_subsolver=reuse)
        t0 = time.perf_counter()
        opt.solve(pm.model)
        rows.append(_row("relu [3,4,1] N=30", label, opt.result, time.perf_counter() - t0))
    W1, W2 = cp.Variable((h, d)), cp.Variable((1, h))
    prob = cp.Problem(cp.Minimize(cp.sum_squares((W2 @ mc.relu(W1 @ X.T))[0] - y)
                                  + 1e-3 * (cp.sum_squares(W1) + cp.sum_squares(W2))))
    t0 = time.perf_counter()
    res = mc.solve(prob, [[W1], [W2]], solver="clarabel", init={W1: W10, W2: W20}, max_iters=SWEEPS, tol=0.0)
    rows.append(_row("relu [3,4,1] N=30", "cvxpy clarabel (mc.relu)", res, time.perf_counter() - t0))
    return rows


def _row(problem, label, res, wall) -> dict:
    return {"problem": problem, "path": label, "sweeps": res.iterations,
            "time_per_sweep": wall / max(res.iterations, 1), "objective": res.objective,
            "solver_share": res.solver_time / wall, "status": res.status}


def main() -> None:
    rng = np.random.default_rng(0)
    rows = factorization_rows(rng) + relu_rows(rng)
    print(f"{'problem':<26} {'path':<50} {'s/sweep':>8} {'objective':>16} {'solver share':>12}")
    for r in rows:
        print(f"{r['problem']:<26} {r['path']:<50} {r['time_per_sweep']:8.3f} {r['objective']:16.10g} "
              f"{100 * r['solver_share']:11.0f}%")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "pyomo.json").write_text(json.dumps({"rows": rows, "sweeps": SWEEPS,
                                                "when": time.strftime("%Y-%m-%d %H:%M:%S")}, indent=2))


if __name__ == "__main__":
    main()
