"""Global optimality by growing subnetworks (issue 5, THEORY.md §4): time to a *certified* global optimum.

* Matrix factorization, low rank + noise, at 500 × 300 and 5000 × 2000: ``MatrixFactorization(lam).fit(Y,
  algorithm="grow")`` against the closed form (one full SVD + soft-thresholding: the physical limit),
  plain alternating minimization at the SVT rank known in advance (same closed-form blocks, same driver,
  seeded random start), and Adam (torch, same objective, same rank) — time for each to reach the
  certified objective within 1e-6 (and 1e-3) relative.
* Two-layer ReLU units, scalar output, small data (d = 2 + bias, N = 20..80): grow with exact patterns
  against the full convex reformulation over every pattern with the same backend (Clarabel), and
  against Adam (64 units) reaching within 1e-3 relative of the optimum; how the subnetwork count,
  rounds, patterns and polar time grow with N.
* diabetes (d = 10 + bias): what is proven where patterns cannot be enumerated (polar interval, gap).

Run: ``python benchmarks/bench_global.py [--quick]`` -> ``benchmarks/results/global.json`` and
``global.png``. One run each, on whatever machine runs it (recorded in the JSON).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import platform
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.utils.extmath import randomized_svd  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from multiconvex.drivers import DriverOptions, run  # noqa: E402
from multiconvex.globalopt.mf_problem import MFForm  # noqa: E402
from multiconvex.globalopt.relu_convex import convex_relu_regression  # noqa: E402
from multiconvex.models import MatrixFactorization, ParallelReLUNetwork, datasets  # noqa: E402

OUT = pathlib.Path(__file__).parent / "results"


def _time_to(history: list[tuple[float, float]], target: float) -> float:
    for t, f in history:
        if f <= target:
            return t
    return math.inf


def low_rank(m: int, n: int, r: int, noise: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, r)) @ rng.standard_normal((r, n)) + noise * rng.standard_normal((m, n))


def adam_mf(Y: np.ndarray, k: int, lam: float, *, time_limit: float, lr: float, seed: int = 0):
    """Adam on ½‖Y − U Vᵀ‖² + (λ/2)(‖U‖² + ‖V‖²) at rank k; [(time, best objective)]."""
    rng = np.random.default_rng(seed)
    Yt = torch.as_tensor(Y)
    scale = math.sqrt(math.sqrt(float(np.mean(Y**2))) / k)
    U = torch.tensor(scale * rng.standard_normal((Y.shape[0], k)), requires_grad=True)
    V = torch.tensor(scale * rng.standard_normal((Y.shape[1], k)), requires_grad=True)
    opt = torch.optim.Adam([U, V], lr=lr)
    hist, best, t0 = [], math.inf, time.perf_counter()
    while time.perf_counter() - t0 < time_limit:
        opt.zero_grad()
        f = 0.5 * ((Yt - U @ V.T) ** 2).sum() + 0.5 * lam * ((U**2).sum() + (V**2).sum())
        best = min(best, float(f.detach()))
        hist.append((time.perf_counter() - t0, best))
        f.backward()
        opt.step()
    return hist


def bench_mf(m: int, n: int, rank: int, noise: float, *, adam_time: float, adam_lr: float) -> dict:
    Y = low_rank(m, n, rank, noise, seed=m)
    t0 = time.perf_counter()
    s = np.linalg.svd(Y, compute_uv=False)
    t_svd = time.perf_counter() - t0
    lam = float(0.5 * (s[rank - 1] + s[rank]))  # between the signal and the noise singular values
    shrunk = np.maximum(s - lam, 0)
    f_star = 0.5 * float(np.sum(np.minimum(s, lam) ** 2)) + lam * float(shrunk.sum())
    k_star = int((shrunk > 0).sum())
    out: dict = {"shape": [m, n], "true_rank": rank, "noise": noise, "lam": lam, "svt_rank": k_star,
                 "closed_form": {"time": t_svd, "objective": f_star, "method": "full SVD (LAPACK) + soft-threshold"}}
    t0 = time.perf_counter()
    mf = MatrixFactorization(lam=lam, algorithm="grow", random_state=0).fit(Y, n_maximisers=8)
    t_grow = time.perf_counter() - t0
    g = mf.result_.certificate.globalopt
    out["grow"] = {"time": t_grow, "objective": mf.objective_, "rel_err": (mf.objective_ - f_star) / f_star,
                   "global_optimal": mf.result_.certificate.global_optimal, "subnetworks": mf.result_.subnetworks,
                   "rounds": mf.result_.info["rounds"], "als_iterations": mf.result_.iterations,
                   "polar": g.polar, "polar_method": g.method, "gap_bound": g.gap_bound,
                   "polar_checks": mf.result_.info["polar_checks"], "status": mf.result_.status}
    # plain alternating minimization at the SVT rank, known in advance (the grow run does not need it)
    rng = np.random.default_rng(1)
    scale = math.sqrt(math.sqrt(float(np.mean(Y**2))) / k_star)
    x0 = {"U": scale * rng.standard_normal((m, k_star)), "V": scale * rng.standard_normal((n, k_star))}
    res = run(MFForm(Y, lam), x0, DriverOptions(algorithm="gauss-seidel", max_iters=5000, tol=1e-12, progress=False))
    hist = [(h.time, h.objective) for h in res.history]
    out["alternating"] = {"rank": k_star, "final_objective": res.objective, "iterations": res.iterations,
                          "total_time": res.total_time,
                          "time_to_1e-6": _time_to(hist, f_star * (1 + 1e-6)),
                          "time_to_1e-3": _time_to(hist, f_star * (1 + 1e-3))}
    hist = adam_mf(Y, k_star, lam, time_limit=adam_time, lr=adam_lr)
    out["adam"] = {"rank": k_star, "lr": adam_lr, "time_budget": adam_time, "steps": len(hist),
                   "final_objective": hist[-1][1], "final_rel_err": (hist[-1][1] - f_star) / f_star,
                   "time_to_1e-6": _time_to(hist, f_star * (1 + 1e-6)),
                   "time_to_1e-3": _time_to(hist, f_star * (1 + 1e-3))}
    return out


def relu_data(n: int, d: int, seed: int):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = np.abs(X[:, 0]) - X[:, -1] + 0.5 * np.maximum(X.sum(1), 0) + 0.1 * rng.standard_normal(n)
    return X, y


def bench_relu(n: int, d: int, lam: float, *, adam_time: float) -> dict:
    X, y = relu_data(n, d, seed=n)
    Xa = np.hstack([X, np.ones((n, 1))])
    t0 = time.perf_counter()
    net = ParallelReLUNetwork(lam=lam, solver="clarabel", patterns="exact", random_state=0).fit(X, y)
    t_grow = time.perf_counter() - t0
    g = net.result_.certificate.globalopt
    t0 = time.perf_counter()
    cvx = convex_relu_regression(Xa, y, lam, patterns="exact", solver="clarabel")
    t_cvx = time.perf_counter() - t0
    f_star = min(cvx.objective, net.objective_)
    adam = ParallelReLUNetwork(lam=lam, n_subnetworks=64, algorithm="adam", time_limit=adam_time, random_state=0)
    t0 = time.perf_counter()
    adam.fit(X, y, epochs=10**7, lr=1e-2)
    hist = [(h.time, h.objective) for h in adam.result_.history]
    polar_time = sum(c["time"] for c in net.result_.info["polar_checks"])
    return {
        "n": n, "d": d + 1, "lam": lam, "patterns": g.patterns_total,
        "grow": {"time": t_grow, "objective": net.objective_, "global_optimal": net.result_.certificate.global_optimal,
                 "subnetworks": net.result_.subnetworks, "rounds": net.result_.info["rounds"],
                 "polar_time": polar_time, "polar_checks": len(net.result_.info["polar_checks"]),
                 "gap_bound": g.gap_bound, "status": net.result_.status},
        "convex_full": {"time": t_cvx, "objective": cvx.objective, "solver_time": cvx.solver_time,
                        "status": cvx.status, "units": len(cvx.units)},
        "rel_diff_grow_vs_convex": (net.objective_ - cvx.objective) / cvx.objective,
        "adam": {"units": 64, "lr": 1e-2, "time_budget": adam_time, "final_objective": adam.objective_,
                 "final_rel_err": (adam.objective_ - f_star) / f_star,
                 "time_to_1e-3": _time_to(hist, f_star * (1 + 1e-3))},
    }


def bench_relu_speedup(n: int, lam: float, seed: int | None = None) -> dict:
    """Issue 11: grow (exact patterns) against the convex reformulation over every pattern, same backend.

    ``seed``: the data generator's seed (default ``n``, the benchmark's data set). Wall and CPU (``process_time``,
    all threads) seconds of each side are recorded: on a shared machine the CPU ratio is the steadier one."""
    seed = n if seed is None else seed
    X, y = relu_data(n, 2, seed=seed)
    Xa = np.hstack([X, np.ones((n, 1))])
    c0, t0 = time.process_time(), time.perf_counter()
    net = ParallelReLUNetwork(lam=lam, solver="clarabel", patterns="exact", random_state=0).fit(X, y)
    t_grow, c_grow = time.perf_counter() - t0, time.process_time() - c0   # includes enumerating the patterns
    g = net.result_.certificate.globalopt
    c0, t0 = time.process_time(), time.perf_counter()
    cvx = convex_relu_regression(Xa, y, lam, patterns="exact", solver="clarabel")
    t_cvx, c_cvx = time.perf_counter() - t0, time.process_time() - c0   # the enumeration is cached by then
    rel = (net.objective_ - cvx.objective) / cvx.objective
    return {"n": n, "d": 3, "lam": lam, "seed": seed, "patterns": g.patterns_total, "grow_time": t_grow,
            "convex_time": t_cvx,
            "speedup": t_cvx / t_grow, "grow_cpu": c_grow, "convex_cpu": c_cvx, "cpu_speedup": c_cvx / c_grow,
            "grow_objective": net.objective_, "convex_objective": cvx.objective,
            "rel_diff": rel, "same_optimum_1e-6": abs(rel) <= 1e-6,
            "global_optimal": net.result_.certificate.global_optimal, "polar_method": g.method,
            "subnetworks": net.result_.subnetworks, "rounds": net.result_.info["rounds"],
            "polar_time": sum(c["time"] for c in net.result_.info["polar_checks"]),
            "full_polars": sum(not c["screened"] for c in net.result_.info["polar_checks"])}


def _seed_summary(rows: list[dict]) -> list[dict]:
    """Per (N, λ) over the data seeds: the CPU ratios' minimum and median, and whether every case certified at the
    reformulation's optimum (1e-6 relative)."""
    out = []
    for key in sorted({(r["n"], r["lam"]) for r in rows}, key=lambda k: (k[0], -k[1])):
        part = [r for r in rows if (r["n"], r["lam"]) == key]
        cpu = [r["cpu_speedup"] for r in part]
        out.append({"n": key[0], "lam": key[1], "seeds": [r["seed"] for r in part], "min_cpu_speedup": min(cpu),
                    "median_cpu_speedup": float(np.median(cpu)), "rounds": [r["rounds"] for r in part],
                    "all_certified_same_optimum": all(r["global_optimal"] and r["same_optimum_1e-6"] for r in part)})
    return out


def bench_mf_vs_randomized_svd(m: int, n: int, rank: int, noise: float, *, blas_threads: int | None = None) -> dict:
    """Issue 11: certified MF grow against a randomized truncated SVD of the top ``k + 1`` triplets.

    Both run in this process under one BLAS thread setting (``blas_threads``; None: the library default),
    the SVD first; wall and CPU (``process_time``, all threads) seconds are recorded — on a shared machine the
    CPU ratio is the steadier one.
    """
    Y = low_rank(m, n, rank, noise, seed=m)
    s_top = randomized_svd(Y, rank + 1, random_state=0)[1]
    lam = float(0.5 * (s_top[rank - 1] + s_top[rank]))
    with threadpool_limits(blas_threads):
        c0, t0 = time.process_time(), time.perf_counter()
        randomized_svd(Y, rank + 1, n_iter="auto", random_state=0)
        t_rsvd, c_rsvd = time.perf_counter() - t0, time.process_time() - c0
        c0, t0 = time.process_time(), time.perf_counter()
        mf = MatrixFactorization(lam=lam, algorithm="grow", random_state=0).fit(Y, n_maximisers=rank + 1)
        t_grow, c_grow = time.perf_counter() - t0, time.process_time() - c0
    g = mf.result_.certificate.globalopt
    return {"shape": [m, n], "rank": rank, "lam": lam, "blas_threads": blas_threads,
            "randomized_svd_time": t_rsvd, "grow_time": t_grow, "ratio": t_grow / t_rsvd,
            "randomized_svd_cpu": c_rsvd, "grow_cpu": c_grow, "cpu_ratio": c_grow / c_rsvd,
            "global_optimal": g.global_optimal, "polar_method": g.method,
            "polar": g.polar, "polar_upper": g.polar_upper, "gap_bound": g.gap_bound,
            "rounds": mf.result_.info["rounds"], "polar_checks": [
                {k: c[k] for k in ("round", "polar", "upper", "time")} for c in mf.result_.info["polar_checks"]]}


def bench_diabetes(*, rounds: int, adam_time: float) -> dict:
    X, y = datasets.load("diabetes")
    lam = 1.0
    t0 = time.perf_counter()
    net = ParallelReLUNetwork(lam=lam, patterns=200, max_rounds=rounds, max_iter=10, random_state=0).fit(
        X, y, n_maximisers=10)
    t_grow = time.perf_counter() - t0
    g = net.result_.certificate.globalopt
    adam = ParallelReLUNetwork(lam=lam, n_subnetworks=64, algorithm="adam", time_limit=adam_time, random_state=0)
    adam.fit(X, y, epochs=10**7, lr=5e-3)
    t0 = time.perf_counter()
    warm = ParallelReLUNetwork(lam=lam, patterns=200, max_rounds=3, max_iter=10, random_state=0).fit(
        X, y, init=adam, n_maximisers=10)
    t_warm = time.perf_counter() - t0
    w = warm.result_.certificate.globalopt
    return {"n": len(X), "d": 11, "lam": lam,
            "grow_from_zero": {"time": t_grow, "rounds": rounds, "objective": net.objective_,
                               "subnetworks": net.result_.subnetworks, "polar_lower": g.polar,
                               "polar_upper": g.polar_upper, "polar_method": g.method,
                               "lower_bound_on_optimum": g.lower_bound, "gap_bound": g.gap_bound,
                               "status": net.result_.status, "message": net.result_.message},
            "adam": {"units": 64, "lr": 5e-3, "time": adam_time, "objective": adam.objective_},
            "grow_warm_from_adam": {"time": t_warm, "objective": warm.objective_,
                                    "subnetworks": warm.result_.subnetworks, "polar_lower": w.polar,
                                    "polar_upper": w.polar_upper, "lower_bound_on_optimum": w.lower_bound,
                                    "gap_bound": w.gap_bound, "status": warm.result_.status,
                                    "message": warm.result_.message}}


def plot(results: dict, path: pathlib.Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    labels, width = [], 0.2
    for i, r in enumerate(results["mf"]):
        vals = [r["closed_form"]["time"], r["grow"]["time"], r["alternating"]["time_to_1e-6"],
                r["adam"]["time_to_1e-6"]]
        for j, v in enumerate(vals):
            ax.bar(i + (j - 1.5) * width, v if math.isfinite(v) else r["adam"]["time_budget"], width,
                   color=f"C{j}", hatch="" if math.isfinite(v) else "//",
                   label=["closed form (SVD)", "grow (certified)", "alternating, rank known", "Adam, rank known"][j]
                   if i == 0 else None)
        labels.append(f"{r['shape'][0]}×{r['shape'][1]}")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yscale("log")
    ax.set_ylabel("seconds to 1e-6 rel (hatched: not reached)")
    ax.set_title("matrix factorization")
    ax.legend(fontsize=8)
    ax = axes[1]
    ns = [r["n"] for r in results["relu"]]
    ax.plot(ns, [r["grow"]["time"] for r in results["relu"]], "o-", label="grow, exact patterns (certified)")
    ax.plot(ns, [r["convex_full"]["time"] for r in results["relu"]], "s-", label="full convex reformulation")
    ax.plot(ns, [r["adam"]["time_to_1e-3"] if math.isfinite(r["adam"]["time_to_1e-3"]) else np.nan
                 for r in results["relu"]], "^-", label="Adam (64 units) to 1e-3 rel")
    ax.set_xlabel("samples N (d = 2 + bias)")
    ax.set_ylabel("seconds")
    ax.set_yscale("log")
    ax.set_title("two-layer ReLU, scalar output")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes only (a smoke run)")
    ap.add_argument("--replot", action="store_true", help="redraw global.png from global.json, run nothing")
    ap.add_argument("--speedup", action="store_true",
                    help="issue 11 only: ReLU grow vs the convex reformulation (N = 40..100, lam 0.1 and 0.01) and "
                         "MF grow vs a randomized SVD -> global_speedup.json")
    ap.add_argument("--skip-mf", action="store_true", help="with --speedup: the ReLU table only")
    ap.add_argument("--mf-repeats", type=int, default=1, help="with --speedup: MF runs (ratios, one process)")
    ap.add_argument("--blas-threads", type=int, default=None,
                    help="with --speedup: BLAS threads for both sides of the MF comparison (default: the library's)")
    ap.add_argument("--relu-n", type=int, nargs="*", default=[40, 60, 80, 100],
                    help="with --speedup: sample counts of the ReLU table")
    ap.add_argument("--relu-seeds", type=int, default=1, metavar="COUNT",
                    help="with --speedup: data sets per sample count N, seeds N, N+1, ..., N+COUNT-1 (default 1: the "
                         "benchmark's own, seed N); with more than one, a per-(N, lam) summary of the CPU ratios")
    ap.add_argument("--name", default="global_speedup", help="with --speedup: results file name (no suffix)")
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    if args.speedup:
        speed: dict = {"environment": {"machine": platform.machine(), "cpus": os.cpu_count(),
                                       "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}, "relu": []}
        path = OUT / f"{args.name}.json"
        if args.relu_seeds < 1:
            ap.error(f"--relu-seeds {args.relu_seeds}: pass a count >= 1 (1: the benchmark's own data set)")
        for n in args.relu_n:
            for seed in range(n, n + args.relu_seeds):
                for lam in (0.1, 0.01):
                    speed["relu"].append(bench_relu_speedup(n, lam, seed))
                    print(json.dumps({k: speed["relu"][-1][k] for k in (
                        "n", "seed", "lam", "grow_cpu", "convex_cpu", "cpu_speedup", "speedup", "rounds", "rel_diff",
                        "global_optimal")}), flush=True)
                    path.write_text(json.dumps(speed, indent=1, default=float))   # each case: a cut run keeps it
        if args.relu_seeds > 1:
            speed["relu_summary"] = _seed_summary(speed["relu"])
            for row in speed["relu_summary"]:
                print(json.dumps(row), flush=True)
        if not args.skip_mf:
            runs = []
            for _ in range(max(1, args.mf_repeats)):
                runs.append(bench_mf_vs_randomized_svd(5000, 2000, 10, 0.5, blas_threads=args.blas_threads))
                print(json.dumps({k: v for k, v in runs[-1].items() if k != "polar_checks"}), flush=True)
            speed["mf"] = runs[0] if len(runs) == 1 else {
                "runs": runs, "median_ratio": float(np.median([r["ratio"] for r in runs])),
                "median_cpu_ratio": float(np.median([r["cpu_ratio"] for r in runs]))}
        path.write_text(json.dumps(speed, indent=1, default=float))
        return
    if args.replot:
        plot(json.loads((OUT / "global.json").read_text()), OUT / "global.png")
        return
    env = {"machine": platform.machine(), "python": platform.python_version(), "cpus": os.cpu_count(),
           "torch_threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    results: dict = {"environment": env, "mf": [], "relu": []}
    mf_sizes = [(500, 300, 10, 0.5, 20.0)] if args.quick else [(500, 300, 10, 0.5, 20.0), (5000, 2000, 10, 0.5, 60.0)]
    for m, n, r, noise, budget in mf_sizes:
        print(f"MF {m}x{n} ...", flush=True)
        results["mf"].append(bench_mf(m, n, r, noise, adam_time=budget, adam_lr=0.01))
        print(json.dumps({k: results["mf"][-1][k] for k in ("closed_form",)}, default=float), flush=True)
    for n in ([20, 40] if args.quick else [20, 40, 60]):
        print(f"ReLU N={n} ...", flush=True)
        results["relu"].append(bench_relu(n, 2, 0.5, adam_time=10.0 if args.quick else 30.0))
    if not args.quick:
        print("diabetes ...", flush=True)
        results["diabetes"] = bench_diabetes(rounds=8, adam_time=60.0)
    name = "global_quick" if args.quick else "global"
    (OUT / f"{name}.json").write_text(json.dumps(results, indent=1, default=float))
    plot(results, OUT / f"{name}.png")
    print(f"wrote {OUT / (name + '.json')} and .png")


if __name__ == "__main__":
    main()
