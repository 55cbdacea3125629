"""NMF against scikit-learn in the same run: time to scikit-learn ``cd``'s final objective, final objectives.

Same data, same start (scikit-learn's ``nndsvda``, computed once and handed to every method as
``init="custom"``), same objective ``½‖X − W H‖²_F`` (no penalty), same BLAS thread setting for
every method. For each case and repeat, in one process and interleaved:

* scikit-learn ``NMF(solver="cd")`` and ``NMF(solver="mu")`` at their defaults (``tol=1e-4``) with
  ``max_iter`` large enough that their own criterion stops them: final time and objective;
* their time-to-objective curves: runs with ``max_iter = 1, 2, 4, ...`` from the same start (the wall
  time of a ``j``-iteration run is the time to its objective);
* ours, ``NonnegativeMatrixFactorization(init="custom")`` at its defaults (``tol=1e-6`` relative,
  ``block_steps="auto"``: coordinate steps, then exact block solves and the certificate): the time when
  its history first reaches scikit-learn ``cd``'s final objective (history times plus the fit's set-up time), its final
  objective and time, and its certificate (the run is cut at ``--time-factor`` times ``cd``'s time: a cut
  run says ``time_limit`` and certifies nothing).

The ratio that matters, ours' time to ``cd``'s objective over ``cd``'s time, is taken within one repeat;
the report gives its median and range over repeats.

With ``--sparse`` the data is a scipy CSR matrix (uniform values at random positions, no structure), as both
estimators take it: the same comparison, plus the peak memory each fit allocates (``tracemalloc``, one run after the
timed ones) against the dense matrix's size.

Run: ``python benchmarks/bench_nmf.py [--quick] [--sparse] [--repeats R] [--threads T]``. Writes
``benchmarks/results/nmf.json`` (``nmf_quick.json`` with ``--quick``, ``nmf_sparse*.json`` with ``--sparse``) and a
PNG of the curves.
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.datasets import load_digits
from sklearn.decomposition import NMF
from sklearn.decomposition._nmf import _initialize_nmf  # scikit-learn's own start, shared by every method
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from multiconvex.models import NonnegativeMatrixFactorization
from multiconvex.nmf_form import nmf_objective

try:
    from multiconvex.benchmarks.environment import environment
except ImportError:  # run from a checkout that was not installed
    from environment import environment

RESULTS = Path(__file__).resolve().parent / "results"


def synthetic(m: int, n: int, k: int, seed: int = 0) -> np.ndarray:
    """Nonnegative rank-``k`` data plus 10% uniform noise."""
    rng = np.random.default_rng(seed)
    return rng.uniform(size=(m, k)) @ rng.uniform(size=(k, n)) + 0.1 * rng.uniform(size=(m, n))


def sparse_synthetic(m: int, n: int, density: float, seed: int = 0) -> sp.csr_array:
    """Uniform values in [0.1, 1] at ``density·m·n`` random positions."""
    X = sp.random_array((m, n), density=density, random_state=seed, format="csr")
    X.data = np.random.default_rng(seed).uniform(0.1, 1.0, X.nnz)
    return X


def cases(quick: bool, sparse: bool = False) -> list[tuple[str, np.ndarray | sp.csr_array, int]]:
    if sparse:
        if quick:
            return [("sparse 5000x2000 0.5% k=10", sparse_synthetic(5000, 2000, 0.005), 10)]
        return [("sparse 20000x5000 0.2% k=10", sparse_synthetic(20000, 5000, 0.002), 10),
                ("sparse 20000x5000 0.2% k=30", sparse_synthetic(20000, 5000, 0.002), 30)]
    digits = load_digits().data.astype(float)
    if quick:
        return [("digits[:600] k=10", digits[:600], 10), ("synthetic 2000x200 k=15", synthetic(2000, 200, 15), 15)]
    return [("digits k=10", digits, 10), ("digits k=15", digits, 15), ("digits k=20", digits, 20),
            ("synthetic 20000x500 k=30", synthetic(20000, 500, 30), 30)]


def objective(X: np.ndarray | sp.csr_array, W: np.ndarray, H: np.ndarray) -> float:
    return nmf_objective(X, W, H)  # from the residual (a sparse X's in blocks of rows)


def peak_mib(fit) -> float:
    """The peak memory ``fit()`` allocates through Python's allocators (numpy and scipy included), MiB."""
    tracemalloc.start()
    try:
        fit()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def sklearn_run(X, W0, H0, k, solver, max_iter):
    est = NMF(k, init="custom", solver=solver, max_iter=max_iter, tol=1e-4)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        W = est.fit_transform(X, W=W0.copy(), H=H0.copy())
    return time.perf_counter() - t0, objective(X, W, est.components_), int(est.n_iter_)


def sklearn_curve(X, W0, H0, k, solver, n_final, budget):
    """(time, objective) of runs with max_iter = 1, 2, 4, ... up to its final iteration count."""
    points, j, spent = [], 1, 0.0
    while True:
        t, f, _ = sklearn_run(X, W0, H0, k, solver, j)
        points.append((t, f))
        spent += t
        if j >= n_final or spent > budget:
            return points
        j = min(2 * j, n_final)


def ours_run(X, W0, H0, k, max_iter, target, time_limit, extrapolate=False):
    est = NonnegativeMatrixFactorization(k, init="custom", max_iter=max_iter, time_limit=time_limit,
                                         extrapolate=extrapolate)  # defaults otherwise
    t0 = time.perf_counter()
    W = est.fit_transform(X, W=W0.copy(), H=H0.copy())
    wall = time.perf_counter() - t0
    res = est.result_
    setup = res.build_time  # the history's times start with the driver; the data check and the start come first
    curve = [(h.time + setup, h.objective) for h in res.history]
    hit = next((t for t, f in curve if f <= target), None)
    return {"time": wall, "objective": objective(X, W, est.components_), "iterations": res.iterations,
            "status": res.status, "partial_minimum": res.certificate.is_partial_minimum,
            "max_block_gap": res.certificate.max_gap, "gap_tolerance": res.certificate.tolerance,
            "time_to_cd_objective": hit, "solver_share": res.solver_share, "curve": curve,
            "backends": res.backends_used}


def one_case(name, X, k, repeats, max_iter, curves, time_factor, extrapolate=False):
    W0, H0 = _initialize_nmf(X, k, init="nndsvda")
    reps = []
    for r in range(repeats):
        t_cd, f_cd, it_cd = sklearn_run(X, W0, H0, k, "cd", max_iter)
        ours = ours_run(X, W0, H0, k, max_iter, f_cd, time_limit=max(time_factor * t_cd, 5.0))
        t_mu, f_mu, it_mu = sklearn_run(X, W0, H0, k, "mu", max_iter)
        rep = {"cd": {"time": t_cd, "objective": f_cd, "iterations": it_cd},
               "mu": {"time": t_mu, "objective": f_mu, "iterations": it_mu}, "ours": ours,
               "ratio_time_to_cd_objective": (ours["time_to_cd_objective"] / t_cd
                                              if ours["time_to_cd_objective"] is not None else None),
               "ratio_certified_total_time": ours["time"] / t_cd}
        if extrapolate:  # the same fit with extrapolation between the sweeps (multiconvex.extrapolation)
            fast = ours_run(X, W0, H0, k, max_iter, f_cd, time_limit=max(time_factor * t_cd, 5.0), extrapolate=True)
            rep["ours_extrapolated"] = fast
            rep["ratio_time_to_cd_objective_extrapolated"] = (fast["time_to_cd_objective"] / t_cd
                                                              if fast["time_to_cd_objective"] is not None else None)
            rep["ratio_certified_total_time_extrapolated"] = fast["time"] / t_cd
            print(f"  extrapolated: to cd's f {fast['time_to_cd_objective']}, final {fast['time']:.3f}s "
                  f"f={fast['objective']:.6g} {fast['status']} pm={fast['partial_minimum']} "
                  f"({fast['iterations']} it) | ratio {rep['ratio_time_to_cd_objective_extrapolated']}", flush=True)
        if curves and r == 0:
            rep["cd"]["curve"] = sklearn_curve(X, W0, H0, k, "cd", it_cd, budget=4 * t_cd + 1)
            rep["mu"]["curve"] = sklearn_curve(X, W0, H0, k, "mu", it_mu, budget=4 * t_mu + 1)
        reps.append(rep)
        print(f"{name} [{r + 1}/{repeats}]: cd {t_cd:.3f}s f={f_cd:.6g} ({it_cd} it) | mu {t_mu:.3f}s f={f_mu:.6g} | "
              f"ours to cd's f {ours['time_to_cd_objective']}, final {ours['time']:.3f}s f={ours['objective']:.6g} "
              f"{ours['status']} pm={ours['partial_minimum']} | ratio {rep['ratio_time_to_cd_objective']}",
              flush=True)
    ratios = [r["ratio_time_to_cd_objective"] for r in reps if r["ratio_time_to_cd_objective"] is not None]
    more: dict = {}
    if sp.issparse(X):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            more["peak_mib"] = {
                "ours": peak_mib(lambda: NonnegativeMatrixFactorization(k, init="custom", max_iter=max_iter).fit(
                    X, W=W0.copy(), H=H0.copy())),
                "cd": peak_mib(lambda: NMF(k, init="custom", solver="cd", max_iter=max_iter, tol=1e-4).fit(
                    X, W=W0.copy(), H=H0.copy())),
                "dense_matrix": X.shape[0] * X.shape[1] * 8 / 2**20}
        print(f"  peak memory, MiB: {more['peak_mib']}", flush=True)
    if extrapolate:
        fast = [r["ratio_time_to_cd_objective_extrapolated"] for r in reps
                if r["ratio_time_to_cd_objective_extrapolated"] is not None]
        more = {"ratio_median_extrapolated": float(np.median(fast)) if fast else None,
                "ratio_certified_total_time_median_extrapolated": float(np.median(
                    [r["ratio_certified_total_time_extrapolated"] for r in reps])),
                "ratio_certified_total_time_median": float(np.median([r["ratio_certified_total_time"] for r in reps])),
                "certified_extrapolated": all(r["ours_extrapolated"]["partial_minimum"] for r in reps)}
    return {"case": name, "shape": list(X.shape), "k": k, "repeats": reps,
            "ratio_median": float(np.median(ratios)) if ratios else None,
            "ratio_min": min(ratios) if ratios else None, "ratio_max": max(ratios) if ratios else None,
            "reached_cd_objective": f"{len(ratios)}/{len(reps)}",
            "final_not_worse_than_cd": all(r["ours"]["objective"] <= r["cd"]["objective"] for r in reps),
            "certified": all(r["ours"]["partial_minimum"] for r in reps), **more}


def plot(summary: list[dict], path: Path) -> None:
    """Objective above the best final objective of the case (relative), against time, first repeat."""
    import matplotlib  # lazy: only the report needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(summary), figsize=(4.2 * len(summary), 3.6), squeeze=False)
    for ax, case in zip(axes[0], summary):
        rep = case["repeats"][0]
        best = min(rep["ours"]["objective"], rep["cd"]["objective"], rep["mu"]["objective"])
        for label, pts, style in (("ours (HALS steps, exact NNLS)", rep["ours"]["curve"], "-o"),
                                  ("scikit-learn cd", rep["cd"].get("curve", []), "-s"),
                                  ("scikit-learn mu", rep["mu"].get("curve", []), "-^")):
            if pts:
                t, f = zip(*pts)
                ax.plot(np.maximum(t, 1e-4), np.maximum((np.array(f) - best) / best, 1e-7), style, ms=2.5,
                        label=label)
        ax.axhline(max((rep["cd"]["objective"] - best) / best, 1e-7), color="gray", lw=0.8, ls="--",
                   label="cd's final")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("time (s)")
        ax.set_ylabel("(objective − best final) / best final")
        ax.set_title(case["case"], fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="two small cases, one repeat")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads for every method (default 1)")
    ap.add_argument("--max-iter", type=int, default=2000)
    ap.add_argument("--only", default=None, help="run only cases whose name contains this")
    ap.add_argument("--big-repeats", type=int, default=1, help="repeats of the 20,000 x 500 case")
    ap.add_argument("--plot-only", action="store_true", help="redraw the PNG from the stored JSON")
    ap.add_argument("--extrapolate", action="store_true",
                    help="also fit with extrapolate=True in each repeat (results in nmf*_extrapolate.json)")
    ap.add_argument("--time-factor", type=float, default=20.0,
                    help="our time limit: this many times scikit-learn cd's time (at least 5 s)")
    ap.add_argument("--sparse", action="store_true", help="sparse (CSR) data instead of digits and the dense case")
    args = ap.parse_args()
    repeats = args.repeats or (1 if args.quick else 3)
    stem = ("nmf_quick" if args.quick else "nmf" if not args.only else "nmf_partial") + (
        "_extrapolate" if args.extrapolate else "")
    if args.sparse:
        stem = stem.replace("nmf", "nmf_sparse", 1)
    if args.plot_only:
        plot(json.loads((RESULTS / f"{stem}.json").read_text())["cases"], RESULTS / f"{stem}.png")
        return
    summary = []
    with threadpool_limits(args.threads):
        for name, X, k in cases(args.quick, args.sparse):
            if args.only and args.only not in name:
                continue
            reps = args.big_repeats if X.shape[0] >= 10000 else repeats
            summary.append(one_case(name, X, k, reps, args.max_iter, curves=True, time_factor=args.time_factor,
                                    extrapolate=args.extrapolate))
    out = {"benchmark": "nmf vs scikit-learn", "threads": args.threads, "repeats": repeats,
           "environment": environment(), "cases": summary}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(out, indent=1, default=float))
    plot(summary, RESULTS / f"{stem}.png")
    for c in summary:
        print(f"{c['case']}: time to cd's objective / cd's time = {c['ratio_median']} "
              f"[{c['ratio_min']}, {c['ratio_max']}], reached {c['reached_cd_objective']}, "
              f"final not worse: {c['final_not_worse_than_cd']}, certified: {c['certified']}"
              + (f"; extrapolated: {c['ratio_median_extrapolated']}, certified total "
                 f"{c['ratio_certified_total_time_median_extrapolated']} (plain "
                 f"{c['ratio_certified_total_time_median']})" if args.extrapolate else ""))


if __name__ == "__main__":
    main()
