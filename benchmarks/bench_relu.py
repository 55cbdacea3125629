"""ReLU networks [d, 64, 64, out]: iterated convex optimization (Gauss–Seidel over unit blocks, the
block QPs / exponential-cone programs sent to Clarabel as matrices) against Adam and full-batch GD,
same objective, same machine, one run; the native adapter against the cvxpy path; and the time per
outer iteration as N grows.

Run: ``python benchmarks/bench_relu.py [--quick] [--device cpu|cuda] [--only SECTION]``
-> ``benchmarks/results/relu.json`` (or ``relu_<section>.json``), ``relu_diabetes.png``,
``relu_digits.png``, ``relu_scaling.png``. Sections: ``native`` (clarabel-native vs Clarabel through
cvxpy, per block and per sweep), ``compare`` (ours vs Adam vs GD), ``scaling`` (N = 1k … 30k).

Sizes are chosen to finish in about 10 minutes on a 2-core machine: unit blocks (``block_size="unit"``:
a unit's piece is one interval per sample, so its QP has at most 2N rows) and digits subsampled to
``--digits-n`` samples (every unit block of a softmax network is an exponential-cone program with
N·10 cones).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import platform
import time
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from multiconvex.models import ReLUNetwork, datasets

OUT = pathlib.Path(os.environ.get("MULTICONVEX_RESULTS", pathlib.Path(__file__).parent / "results"))
NATIVE = "clarabel-native"
warnings.filterwarnings("ignore", message="Solution may be inaccurate")


def _time_to(history, target: float) -> float:
    for t, f in history:
        if f <= target * (1 + 1e-9):
            return t
    return math.inf


def _cert(r) -> dict:
    c = r.certificate
    return {"partial_minimum": None if c is None else bool(c.is_partial_minimum),
            "max_block_gap": None if c is None else float(c.max_gap)}


# -- clarabel-native against Clarabel through cvxpy ------------------------------------------------
def native_vs_cvxpy(*, device: str, digits_n: int) -> dict:
    """Per-block solve times (first solve of a shape, which includes cvxpy's compilation, and a
    second block of the same shape) and one Gauss–Seidel sweep, both paths on the same blocks."""
    out: dict = {"blocks": [], "sweep": []}
    Xd, yd = datasets.load("diabetes")
    Xg, yg = datasets.load("digits")
    cases = [("diabetes", [10, 64, 64, 1], "squared", Xd, yd),
             ("digits", [64, 64, 64, 10], "softmax", Xg[:digits_n], yg[:digits_n])]
    for name, sizes, loss, X, y in cases:
        net = ReLUNetwork(sizes, loss=loss, weight_decay=1e-4, seed=0, device=device)
        arch, Xt, Tt = net._tensors(X, y, "bench", fit=True)
        picks = [0, 1, sizes[1], sizes[1] + 1, sizes[1] + sizes[2], sizes[1] + sizes[2] + (1 if sizes[-1] > 1 else 0)]
        for solver in (NATIVE, "clarabel"):
            form = net._form(arch, Xt, Tt, solver, "unit", None, None)
            x0 = form.point_from_params(net.initial_params())
            for i in dict.fromkeys(picks):
                t0 = time.perf_counter()
                form.prepare(i, x0)
                sol = form.solve_prepared(i)
                row = {"data": name, "N": len(X), "solver": solver, "block": form.blocks[i].name, "status": sol.status,
                       "wall": time.perf_counter() - t0, "solve_time": sol.solve_time, "value": sol.value,
                       "message": sol.message[:300]}
                out["blocks"].append(row)
                print(row, flush=True)
    # one sweep on a network small enough for the cvxpy path to finish
    X, y = datasets.teacher(1000, sizes=(10, 16, 16, 1), seed=0)
    for solver in (NATIVE, "clarabel"):
        net = ReLUNetwork([10, 16, 16, 1], weight_decay=1e-4, seed=0, device=device)
        t0 = time.perf_counter()
        net.fit(X, y, algorithm="gauss-seidel", solver=solver, block_size="unit", max_iters=1, certify=False)
        r = net.result_
        row = {"solver": solver, "N": 1000, "sizes": [10, 16, 16, 1], "blocks": len(r.info["blocks"]),
               "seconds_per_iteration": r.history[-1].time - r.history[0].time, "build_time": r.build_time,
               "solver_share": r.solver_share, "objective_after_1": r.objective, "wall": time.perf_counter() - t0}
        out["sweep"].append(row)
        print(row, flush=True)
    nat = {(b["data"], b["block"]): b for b in out["blocks"] if b["solver"] == NATIVE}
    out["ratios"] = [{"data": b["data"], "block": b["block"],
                      "cvxpy_over_native_wall": b["wall"] / nat[(b["data"], b["block"])]["wall"],
                      "same_value_rel": abs(b["value"] - nat[(b["data"], b["block"])]["value"])
                      / max(1.0, abs(b["value"]))}
                     for b in out["blocks"] if b["solver"] == "clarabel"]
    s = {r["solver"]: r["seconds_per_iteration"] for r in out["sweep"]}
    out["sweep_ratio_cvxpy_over_native"] = s["clarabel"] / s[NATIVE]
    return out


# -- ours against Adam and GD ----------------------------------------------------------------------
def compare(name: str, sizes, loss: str, X, y, *, ours_time: float, adam_epochs: int, gd_steps: int,
            gd_lr: float, device: str) -> dict:
    common = dict(loss=loss, weight_decay=1e-4, seed=0, device=device)
    cert = dict(solver=NATIVE, block_size="unit")
    runs, nets = {}, {}
    nets["adam"] = ReLUNetwork(sizes, **common).fit(X, y, algorithm="adam", lr=1e-3, batch_size=64,
                                                    max_iters=adam_epochs, **cert)
    nets["gd"] = ReLUNetwork(sizes, **common).fit(X, y, algorithm="gd", lr=gd_lr, max_iters=gd_steps,
                                                  log_every=10, **cert)
    nets["ours (gauss-seidel)"] = ReLUNetwork(sizes, **common).fit(
        X, y, algorithm="gauss-seidel", max_iters=10_000, time_limit=ours_time, **cert)
    target = nets["adam"].result_.objective
    for label, net in nets.items():
        r = net.result_
        ours = label.startswith("ours")
        hist = [(h.time, h.objective) for h in r.history]
        runs[label] = {
            "objective": r.objective, "status": r.status, "iterations": r.iterations,
            "time": r.total_time if ours else r.history[-1].time,
            "solver_share": r.solver_share if ours else 0.0,
            **_cert(r), "certificate_time": r.info.get("certificate_time"),
            "train_score": net.score(X, y), "blocks": len(r.info["blocks"]),
            "time_to_adam_objective": _time_to(hist, target), "history": hist,
        }
    t_adam = runs["adam"]["time"]
    for label in ("gd", "ours (gauss-seidel)"):
        runs[label]["ratio_to_adam"] = runs[label]["time_to_adam_objective"] / t_adam
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, run in runs.items():
        t, f = zip(*run["history"])
        ax.semilogy(np.maximum(t, 1e-3), f, label=label)
    ax.axhline(target, color="k", ls=":", lw=0.8, label="Adam's final objective")
    ax.set_xscale("log"), ax.set_xlabel("wall time (s)"), ax.set_ylabel("training objective F(θ)")
    ax.set_title(f"{name} {list(sizes)} ({loss}), N={len(X)}, {device}"), ax.legend(fontsize=8)
    fig.savefig(OUT / f"relu_{name}{'' if device == 'cpu' else '_' + device}.png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    for run in runs.values():
        run["history"] = run["history"][:: max(1, len(run["history"]) // 200)]
    return runs


def scaling(ns, *, device: str, per_iteration_cap: float = 90.0) -> list[dict]:
    rows = []
    for n in ns:
        X, y = datasets.teacher(n, sizes=(10, 16, 16, 1), seed=0)
        net = ReLUNetwork([10, 16, 16, 1], weight_decay=1e-4, seed=0, device=device)
        t0 = time.perf_counter()
        net.fit(X, y, algorithm="gauss-seidel", solver=NATIVE, block_size="unit", max_iters=1, certify=False)
        r = net.result_
        per_it = (r.history[-1].time - r.history[0].time) / max(1, r.iterations)
        rows.append({"N": n, "seconds_per_iteration": per_it, "solver_share": r.solver_share,
                     "blocks": len(r.info["blocks"]), "build_time": r.build_time,
                     "block_matrix_time": r.info["block_build_time"], "wall": time.perf_counter() - t0})
        print(rows[-1], flush=True)
        if per_it > per_iteration_cap:
            break
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.loglog([r["N"] for r in rows], [r["seconds_per_iteration"] for r in rows], "o-")
    ax.set_xlabel("N samples"), ax.set_ylabel("s per Gauss–Seidel sweep")
    ax.set_title(f"[10,16,16,1] unit blocks, squared loss, {device}")
    fig.savefig(OUT / f"relu_scaling{'' if device == 'cpu' else '_' + device}.png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return rows


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--digits-n", type=int, default=128)
    ap.add_argument("--only", default="all", choices=["all", "native", "compare", "scaling"])
    ap.add_argument("--out", default=None, help="JSON path (default: results/relu.json or relu_<only>.json)")
    a = ap.parse_args(argv)
    OUT.mkdir(exist_ok=True)
    torch.set_num_threads(1 if a.device == "cpu" else torch.get_num_threads())
    report = {"device": a.device, "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
              + (f", {torch.cuda.get_device_name()}" if a.device.startswith("cuda") else ""),
              "load_average_start": os.getloadavg(), "torch": torch.__version__}
    path = pathlib.Path(a.out) if a.out else OUT / ("relu.json" if a.only == "all" else f"relu_{a.only}.json")
    t0 = time.perf_counter()
    if a.only in ("all", "native"):
        report["native_vs_cvxpy"] = native_vs_cvxpy(device=a.device, digits_n=a.digits_n)
    if a.only in ("all", "compare"):
        Xd, yd = datasets.load("diabetes")
        report["diabetes"] = compare("diabetes", [10, 64, 64, 1], "squared", Xd, yd, device=a.device,
                                     ours_time=40 if a.quick else 90, adam_epochs=300, gd_steps=3000, gd_lr=0.1)
        print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "history"}
                          for k, v in report["diabetes"].items()}, indent=1, default=float), flush=True)
        Xg, yg = datasets.load("digits")
        Xg, yg = Xg[:a.digits_n], yg[:a.digits_n]
        report["digits"] = compare("digits", [64, 64, 64, 10], "softmax", Xg, yg, device=a.device,
                                   ours_time=60 if a.quick else 120, adam_epochs=200, gd_steps=2000, gd_lr=0.5)
        print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "history"}
                          for k, v in report["digits"].items()}, indent=1, default=float), flush=True)
    if a.only in ("all", "scaling"):
        report["scaling"] = scaling([1000, 3000, 10_000] if a.quick else [1000, 3000, 10_000, 30_000],
                                    device=a.device)
    report["load_average_end"] = os.getloadavg()
    report["total_seconds"] = time.perf_counter() - t0
    path.write_text(json.dumps(report, indent=1, default=float))
    return report


if __name__ == "__main__":
    main()
