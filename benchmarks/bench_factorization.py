"""Matrix factorization 200x100, rank 5: our driver against a DMCP-style rebuild loop.

Same data, same start, same number of sweeps, same backend, one run. Reports the
time per sweep of each and their ratio, the final objectives, and our solver
time / total time. Run: ``python benchmarks/bench_factorization.py [--sweeps N]``.
Writes ``benchmarks/results/factorization.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import cvxpy as cp
import numpy as np

import multiconvex as mc

try:
    from multiconvex.benchmarks.peers import dmcp_style_factorization
except ImportError:  # run from a checkout that was not installed
    from peers import dmcp_style_factorization


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--m", type=int, default=200)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--rank", type=int, default=5)
    ap.add_argument("--lam", type=float, default=0.1)
    ap.add_argument("--sweeps", type=int, default=20)
    ap.add_argument("--solvers", default="clarabel,osqp,lstsq")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    Y = rng.standard_normal((args.m, args.rank)) @ rng.standard_normal((args.rank, args.n)) \
        + 0.1 * rng.standard_normal((args.m, args.n))
    U0 = rng.standard_normal((args.m, args.rank))
    V0 = rng.standard_normal((args.rank, args.n))
    rows = []
    for solver in args.solvers.split(","):
        U, V = cp.Variable(U0.shape, name="U"), cp.Variable(V0.shape, name="V")
        prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(Y - U @ V)
                                      + args.lam / 2 * (cp.sum_squares(U) + cp.sum_squares(V))))
        res = mc.solve(prob, [[U], [V]], algorithm="gauss-seidel", solver=solver, init={U: U0, V: V0},
                       max_iters=args.sweeps, tol=0.0)
        # tol=0: never stop early, so both sides run exactly `sweeps` sweeps (+ our final certificate pass)
        sweep_time = res.history[-1].time / res.iterations
        peer_solver = "CLARABEL" if solver == "lstsq" else solver.upper()
        peer = dmcp_style_factorization(Y, U0, V0, args.lam, args.sweeps, solver=peer_solver)
        peer_sweep = peer["total_time"] / args.sweeps
        rows.append({
            "solver": solver, "peer_solver": peer_solver.lower(), "sweeps": args.sweeps,
            "ours_time_per_sweep": sweep_time, "peer_time_per_sweep": peer_sweep,
            "speedup": peer_sweep / sweep_time,
            "ours_objective": res.history[args.sweeps].objective if len(res.history) > args.sweeps else res.objective,
            "peer_objective": peer["objective"],
            "ours_solver_share": res.history[-1].solver_time / res.history[-1].time,
            "peer_solver_share": peer["solver_time"] / peer["total_time"],
            "certificate_max_gap": res.certificate.max_gap,
        })
    print(f"matrix factorization {args.m}x{args.n}, rank {args.rank}, lambda {args.lam}, {args.sweeps} sweeps, "
          "same start (Gauss-Seidel = alternating minimisation)")
    print(f"{'ours':<8} {'peer':<9} {'ours s/sweep':>12} {'peer s/sweep':>12} {'speedup':>8} "
          f"{'ours obj':>14} {'peer obj':>14} {'solver share ours/peer':>22}")
    for r in rows:
        print(f"{r['solver']:<8} {r['peer_solver']:<9} "
              f"{r['ours_time_per_sweep']:12.4f} {r['peer_time_per_sweep']:12.4f} "
              f"{r['speedup']:8.2f} {r['ours_objective']:14.8g} {r['peer_objective']:14.8g} "
              f"{100 * r['ours_solver_share']:10.0f}% / {100 * r['peer_solver_share']:.0f}%")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "factorization.json").write_text(json.dumps({
        "rows": rows, "args": vars(args), "machine": platform.platform(), "cvxpy": cp.__version__,
        "multiconvex": mc.__version__, "when": time.strftime("%Y-%m-%d %H:%M:%S")}, indent=2))


if __name__ == "__main__":
    main()
