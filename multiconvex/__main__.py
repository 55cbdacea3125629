"""``multiconvex`` / ``python -m multiconvex``: the command line.

``demo`` runs the README's main job; ``solvers`` lists the backend registry.
"""

from __future__ import annotations

import argparse
import logging
import sys


def _demo(args: argparse.Namespace) -> int:
    import cvxpy as cp
    import numpy as np
    from sklearn.datasets import load_digits

    import multiconvex as mc

    Y = load_digits().data[: args.samples] / 16.0  # bundled with scikit-learn: no download
    Y = Y - Y.mean(axis=0)
    m, n = Y.shape
    k, lam = args.rank, args.lam
    U, V = cp.Variable((m, k), name="U"), cp.Variable((k, n), name="V")
    prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(Y - U @ V) + lam / 2 * (cp.sum_squares(U) + cp.sum_squares(V))))
    print(f"matrix factorization of scikit-learn's digits: Y {m}x{n}, rank {k}, lambda {lam}")
    print(f"  objective ½‖Y − UV‖² + (λ/2)(‖U‖² + ‖V‖²), blocks [U], [V], solver={args.solver!r}, "
          f"algorithm={args.algorithm!r}")
    res = mc.solve(prob, [[U], [V]], algorithm=args.algorithm, solver=args.solver, seed=0, tol=args.tol,
                   max_iters=args.max_iters, verbose=args.verbose)
    s = np.linalg.svd(Y, compute_uv=False)
    t = np.maximum(s - lam, 0)
    exact = 0.5 * np.sum((s - t) ** 2) + lam * t.sum()
    print(res.summary())
    print(f"  block solves per backend: {res.backends_used}")
    print(f"  closed-form global optimum (singular value soft-thresholding, rank {int((t > 0).sum())}): "
          f"{exact:.10g}; relative gap {(res.objective - exact) / abs(exact):.2e}")
    return 0 if res.status in ("converged", "iteration_limit") else 1


def _solvers(args: argparse.Namespace) -> int:
    import multiconvex as mc

    rows = mc.available_solvers()
    print(f"{'solver':<10} {'installed':<10} {'licence':<14} {'available':<10} {'version':<12} classes")
    for r in rows:
        print(f"{r.name:<10} {str(r.installed):<10} {r.licence:<14} {str(r.available):<10} "
              f"{(r.version or '-'):<12} {','.join(sorted(r.classes))}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="multiconvex", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="factorize the bundled digits data and print result and certificate")
    demo.add_argument("--samples", type=int, default=600)
    demo.add_argument("--rank", type=int, default=12)
    demo.add_argument("--lam", type=float, default=8.0)
    demo.add_argument("--solver", default="auto")
    demo.add_argument("--algorithm", default="gauss-seidel", choices=["gauss-seidel", "jacobi"])
    demo.add_argument("--tol", type=float, default=1e-8)
    demo.add_argument("--max-iters", type=int, default=500)
    demo.add_argument("--verbose", action="store_true")
    demo.set_defaults(func=_demo)
    sol = sub.add_parser("solvers", help="list every backend: installed, licence, version")
    sol.set_defaults(func=_solvers)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
