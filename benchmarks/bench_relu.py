"""ReLU networks [d, 64, 64, out]: iterated convex optimization (our Gauss–Seidel over layer/unit-group
blocks) against Adam and full-batch GD, same objective, same machine, one run; and the time per
outer iteration as N grows.

Run: ``python benchmarks/bench_relu.py [--quick] [--device cpu|cuda]``
-> ``benchmarks/results/relu_<data>.png``, ``relu_scaling.png`` and ``relu.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from multiconvex.models import ReLUNetwork, datasets  # noqa: E402

OUT = pathlib.Path(__file__).parent / "results"


def _time_to(res, target: float) -> float:
    for h in res.history:
        if h.objective <= target:
            return h.time
    return math.inf


def compare(name: str, sizes, loss: str, X, y, *, ours_time: float, adam_epochs: int, gd_steps: int,
            device: str, certify: bool = True) -> dict:
    runs = {}
    common = dict(loss=loss, weight_decay=1e-4, seed=0, device=device)
    adam = ReLUNetwork(sizes, **common).fit(X, y, algorithm="adam", lr=1e-3, batch_size=64, max_iters=adam_epochs,
                                            certify=certify)
    gd = ReLUNetwork(sizes, **common).fit(X, y, algorithm="gd", lr=0.1 if loss == "squared" else 0.5,
                                          max_iters=gd_steps, log_every=10, certify=certify)
    ours = ReLUNetwork(sizes, **common).fit(X, y, algorithm="gauss-seidel", solver="auto", max_iters=10_000,
                                            time_limit=ours_time)
    target = adam.result_.objective
    for label, net in (("adam", adam), ("gd", gd), ("ours (gauss-seidel)", ours)):
        r = net.result_
        runs[label] = {
            "objective": r.objective, "status": r.status, "iterations": r.iterations,
            "time": r.history[-1].time if label != "ours (gauss-seidel)" else r.total_time,
            "solver_share": r.solver_share if label == "ours (gauss-seidel)" else 0.0,
            "partial_minimum": r.certificate.is_partial_minimum, "max_block_gap": r.certificate.max_gap,
            "certificate_time": r.info.get("certificate_time"), "train_score": net.score(X, y),
            "blocks": len(r.info["blocks"]), "history": [(h.time, h.objective) for h in r.history],
        }
    t_adam = runs["adam"]["time"]
    runs["ours (gauss-seidel)"]["time_to_adam_objective"] = _time_to(ours.result_, target)
    runs["ours (gauss-seidel)"]["ratio_to_adam"] = _time_to(ours.result_, target) / t_adam
    runs["gd"]["ratio_to_adam"] = _time_to(gd.result_, target) / t_adam
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, run in runs.items():
        t, f = zip(*run["history"])
        ax.semilogy(np.maximum(t, 1e-3), f, label=label)
    ax.axhline(target, color="k", ls=":", lw=0.8, label="Adam's final objective")
    ax.set_xscale("log"), ax.set_xlabel("wall time (s)"), ax.set_ylabel("training objective F(θ)")
    ax.set_title(f"{name} {list(sizes)} ({loss}), N={len(X)}"), ax.legend()
    fig.savefig(OUT / f"relu_{name}.png", dpi=120, bbox_inches="tight")
    for run in runs.values():
        run.pop("history")
    return runs


def scaling(ns, *, device: str, per_iteration_cap: float = 120.0) -> list[dict]:
    rows = []
    for n in ns:
        X, y = datasets.teacher(n, sizes=(10, 16, 16, 1), seed=0)
        net = ReLUNetwork([10, 16, 16, 1], weight_decay=1e-4, seed=0, device=device)
        t0 = time.perf_counter()
        net.fit(X, y, algorithm="gauss-seidel", solver="auto", max_iters=2)
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
    ax.set_xlabel("N samples"), ax.set_ylabel("s per Gauss–Seidel sweep"), ax.set_title("[10,16,16,1], squared loss")
    fig.savefig(OUT / "relu_scaling.png", dpi=120, bbox_inches="tight")
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--only", default="all", choices=["all", "compare", "scaling"])
    a = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    report = {"device": a.device, "machine": "2-core CPU, no GPU"}
    path = OUT / ("relu.json" if a.only == "all" else f"relu_{a.only}.json")
    if a.only in ("all", "compare"):
        Xd, yd = datasets.load("diabetes")
        report["diabetes"] = compare("diabetes", [10, 64, 64, 1], "squared", Xd, yd, device=a.device,
                                     ours_time=60 if a.quick else 240, adam_epochs=200, gd_steps=2000)
        print(json.dumps(report["diabetes"], indent=1), flush=True)
        Xg, yg = datasets.load("digits")
        report["digits"] = compare("digits", [64, 64, 64, 10], "softmax", Xg, yg, device=a.device,
                                   ours_time=120 if a.quick else 400, adam_epochs=100, gd_steps=1000)
        print(json.dumps(report["digits"], indent=1), flush=True)
    if a.only in ("all", "scaling"):
        report["scaling"] = scaling([1000, 3000, 10_000] if a.quick else [1000, 3000, 10_000, 30_000, 100_000],
                                    device=a.device)
    path.write_text(json.dumps(report, indent=1, default=float))
