"""Speed-up of parallel work with 1 and 2 workers on this machine.

1. Benchmark cases: the ``quick`` suite (clarabel) in-process, on a process pool of
   2 workers, and on a Dask ``LocalCluster`` of 2 workers (wall time of the whole
   ``bench`` command, worker start-up included; objectives compared).
2. Jacobi block solves: ``mc.solve(algorithm="jacobi")`` on a matrix factorization with
   ``executor="inprocess"`` vs ``"threads"`` (2 workers), and the cost of shipping one block
   subproblem to a process (pickling the compiled cvxpy problem) against solving it.
3. Polar checks: the exact two-layer-ReLU polar (one small program per activation pattern) in-process,
   on 1 and 2 threads, and on 1 and 2 worker processes.

Run: ``python benchmarks/parallel_speedup.py [--only polar]``; writes ``benchmarks/results/parallel.json``.
"""

from __future__ import annotations

import argparse
import json
import pickle
import tempfile
import time
from pathlib import Path

import numpy as np

import multiconvex as mc
from multiconvex.benchmarks.environment import environment
from multiconvex.benchmarks.problems import _low_rank
from multiconvex.benchmarks.runner import BenchOptions, read_records, run_bench
from multiconvex.cvxpy_front.blocks import normalise_blocks
from multiconvex.cvxpy_front.form import CvxpyForm
from multiconvex.executor import make_executor
from multiconvex.globalopt.patterns import enumerate_patterns
from multiconvex.globalopt.relu_polar import relu_polar
from multiconvex.models import MatrixFactorization
from multiconvex.solvers import problem_class, resolve


def _bench_options(args: list[str]) -> BenchOptions:
    """The ``quick`` suite on clarabel, changed by the ``multiconvex bench`` options in ``args`` that shape a run."""
    ap = argparse.ArgumentParser(prog="--bench-args")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--seed-list")
    ap.add_argument("--methods")
    ap.add_argument("--problems")
    ap.add_argument("--max-iters", type=int)
    ap.add_argument("--time-limit", type=float)
    ap.add_argument("--tol", type=float, default=1e-6)
    ns = ap.parse_args(args)
    seeds = list(range(ns.seeds)) if ns.seed_list is None else [int(s) for s in ns.seed_list.split(",")]

    def csv(spec: str | None) -> list[str] | None:
        return [s.strip() for s in spec.split(",") if s.strip()] if spec else None

    return BenchOptions(suite="quick", solvers=["clarabel"], seeds=seeds, methods=csv(ns.methods),
                        problems=csv(ns.problems), max_iters=ns.max_iters, time_limit=ns.time_limit, tol=ns.tol)


def _bench(out: str, options: BenchOptions, kind: str | None, workers: int | None) -> int:
    """What ``multiconvex bench`` does with these options (``--workers``, ``--dask``): its exit code, 0 or 1."""
    with make_executor(kind, workers) as executor:
        summary = run_bench(out, options, executor=executor)
    return 1 if summary.failed else 0


def bench_cases(args: list[str]) -> dict:
    options = _bench_options(args)
    out = {}
    for name, kind, workers in (("inprocess", None, None), ("processes-1", "processes", 1),
                                ("processes-2", "processes", 2), ("dask-1", "dask", 1), ("dask-2", "dask", 2)):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            code = _bench(f"{tmp}/run", options, kind, workers)
            wall = time.perf_counter() - t0
            recs = read_records(f"{tmp}/run")
        out[name] = {"exit": code, "wall": wall, "cases": len(recs), "sum_case_time": sum(r["wall_time"] for r in recs),
                     "sum_case_cpu_time": sum(r["cpu_time"] for r in recs),
                     "objectives": {r["id"]: r["objective"] for r in recs}}
    ref = out["inprocess"]["objectives"]
    for name in ("processes-1", "processes-2", "dask-1", "dask-2"):
        other = out[name]["objectives"]
        out[name]["max_rel_objective_diff"] = max(abs(other[k] - v) / max(1.0, abs(v)) for k, v in ref.items())
        out[name]["speedup"] = out["inprocess"]["wall"] / out[name]["wall"]
    return out


def jacobi(m: int = 200, n: int = 100, rank: int = 8, iters: int = 15) -> dict:
    Y = _low_rank(m, n, 5, 0.1, seed=1)
    out = {"problem": f"matrix factorization {m}x{n}, rank {rank}, {iters} Jacobi iterations, clarabel"}
    for name, kw in (("inprocess", {}), ("threads-2", {"executor": "threads", "workers": 2})):
        times, objs = [], []
        for _ in range(3):
            mf = MatrixFactorization(n_components=rank, lam=3.0, random_state=0)
            model = mf.to_cvxpy(Y)
            model.set_values(mf.initial_point(Y), where="jacobi")
            res = mc.solve(model.problem, model.blocks, algorithm="jacobi", solver="clarabel", max_iters=iters, tol=0.0,
                           progress=False, **kw)
            times.append(res.history[-1].time / res.iterations)
            objs.append(res.objective)
        out[name] = {"s_per_iteration": float(np.median(times)), "objective": objs[0]}
    out["threads_speedup"] = out["inprocess"]["s_per_iteration"] / out["threads-2"]["s_per_iteration"]

    # what a process pool pays per block solve: the block's subproblem value travels as plain data
    mf = MatrixFactorization(n_components=rank, lam=3.0, random_state=0)
    model = mf.to_cvxpy(Y)
    model.set_values(mf.initial_point(Y), where="jacobi")
    form = CvxpyForm(model.problem, normalise_blocks(model.problem, model.blocks),
                     backends_for=lambda p, name: resolve("clarabel", problem_class(p)))
    x = form.initial_point(0, None)
    form.prepare(0, x)
    t0 = time.perf_counter()
    form.solve_prepared(0)
    pp = {"solve_s": time.perf_counter() - t0, "form": form.forms[form.blocks[0].name]}
    task = form.ship(0)
    if task is None:
        pp["shipped"] = "no: the block stays on the cvxpy path"
    else:
        t0 = time.perf_counter()
        blob = pickle.dumps(task)
        fn, arg = pickle.loads(blob)
        pp["pickle_roundtrip_s"] = time.perf_counter() - t0
        pp["pickled_mb"] = len(blob) / 2**20
        t0 = time.perf_counter()
        fn(arg)
        pp["solve_after_unpickle_s"] = time.perf_counter() - t0
    out["process_pool"] = pp
    return out


def polar(n: int = 40, d: int = 4, repeats: int = 3) -> dict:
    """The exact two-layer-ReLU polar (every activation pattern) on 1 and 2 thread / process workers."""
    rng = np.random.default_rng(0)
    X = np.hstack([rng.standard_normal((n, d - 1)), np.ones((n, 1))])
    G = rng.standard_normal(n)
    pats = enumerate_patterns(X)
    out: dict = {"problem": f"exact polar, N={n}, d={d} incl. bias, {len(pats)} patterns, native Clarabel per pattern"}
    for name, executor, workers in [("inprocess", "inprocess", None), ("threads-1", "threads", 1),
                                    ("threads-2", "threads", 2), ("processes-1", "processes", 1),
                                    ("processes-2", "processes", 2)]:
        times, value = [], None
        for _ in range(repeats):
            t0 = time.perf_counter()
            res = relu_polar(X, G, patterns=pats, solver="clarabel", per_pattern="native", executor=executor,
                             n_workers=workers)
            times.append(time.perf_counter() - t0)
            value = res.value
        out[name] = {"seconds": min(times), "value": value, "programs": res.patterns_checked}
    base = out["inprocess"]["seconds"]
    for k in ("threads-1", "threads-2", "processes-1", "processes-2"):
        out[k]["speedup"] = base / out[k]["seconds"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench-args", default="", help="extra arguments for the bench runs (e.g. '--max-iters 15')")
    ap.add_argument("--only", choices=["jacobi", "bench_quick", "polar"], action="append",
                    help="run only these parts (repeatable); the others keep their stored results")
    args = ap.parse_args()
    path = Path(__file__).parent / "results" / "parallel.json"
    parts = {"jacobi": jacobi, "bench_quick": lambda: bench_cases(args.bench_args.split()), "polar": polar}
    results = json.loads(path.read_text()) if args.only and path.exists() else {}
    for name in args.only or parts:
        results[name] = parts[name]()

    results["environment"] = environment()
    results["when"] = time.strftime("%Y-%m-%d %H:%M:%S")
    for r in results.get("bench_quick", {}).values():
        r.pop("objectives", None)
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str))
    print(json.dumps({k: v for k, v in results.items() if k != "environment"}, indent=2, default=str))


if __name__ == "__main__":
    main()
