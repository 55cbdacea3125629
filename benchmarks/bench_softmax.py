"""Logistic and softmax ReLU networks without cones: the Newton/DAQP unit blocks (``solver="auto"``) against
the exponential-cone programs on Clarabel (``clarabel-native``), and against Adam.

Sections (one run each, same machine):

* ``sweep`` — all of digits (1,797 × 64, 10 classes), softmax ``[64, 32, 10]``, weight decay 1e-4, seed 0:
  one Gauss–Seidel sweep over the unit blocks from the seeded start, ``auto`` against ``clarabel-native``
  (same start; the objectives after the sweep are compared), and the certifying pass after it. The
  ``clarabel-native`` sweep stops at ``--native-limit`` seconds (it takes far longer: ``N · 10`` exponential
  cones per unit) and is extrapolated from its seconds per block solve;
* ``logistic`` — the same for a binary problem (digits < 5 against ≥ 5, ``[64, 32, 1]``, logistic loss);
* ``small`` — ``sweep`` on the first 300 samples, where ``clarabel-native`` completes its sweep (same result checked);
* ``adam`` — Adam (lr 1e-3, minibatches of 64) for ``--adam-epochs`` epochs against Gauss–Seidel sweeps with
  ``auto`` for the same wall time (and a few sweeps more): objectives, time to Adam's objective.

Run: ``python benchmarks/bench_softmax.py [--quick] [--only SECTION]`` -> ``benchmarks/results/softmax.json``.
``--quick`` takes 300 samples and fewer epochs (a smoke run, minutes).
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

import numpy as np
import torch

from multiconvex.drivers import DriverOptions, run
from multiconvex.models import datasets
from multiconvex.nets import Architecture, GradientOptions, NetForm, init_params, run_gradient
from multiconvex.nets.network import encode_targets
from multiconvex.solvers import dispatch, problem_class, resolve

OUT = pathlib.Path(os.environ.get("MULTICONVEX_RESULTS", pathlib.Path(__file__).parent / "results"))
NATIVE = "clarabel-native"
WEIGHT_DECAY = 1e-4
warnings.filterwarnings("ignore", message="Solution may be inaccurate")


def _data(loss: str, n: int | None):
    X, y = datasets.load("digits")
    if n is not None:
        X, y = X[:n], y[:n]
    if loss == "logistic":
        y = (y >= 5).astype(int)
    arch = Architecture((X.shape[1], 32, 10 if loss == "softmax" else 1), loss)
    T = encode_targets(arch, y)
    return arch, torch.as_tensor(X, dtype=torch.float64), torch.as_tensor(T, dtype=torch.float64)


def _form(arch, Xt, Tt, solver: str) -> NetForm:
    return NetForm(arch, Xt, Tt, WEIGHT_DECAY, plan=dispatch.make_plan(solver), block_size="unit",
                   resolve_class=lambda cls, name: resolve(solver, cls, matrix_level=True),
                   backends_for=lambda sub, name: resolve(solver, problem_class(sub)))


def one_sweep(loss: str, n: int | None, certify_native: bool, native_limit: float | None = None) -> dict:
    """One Gauss–Seidel sweep from the seeded start, ``auto`` and ``clarabel-native``, and the certifying pass after
    it (for ``clarabel-native`` only with ``certify_native``: on all of digits it takes many minutes).

    ``native_limit`` (seconds) stops the ``clarabel-native`` sweep early: it then reports the blocks it solved and
    its seconds per block, and the sweep time extrapolated to every block."""
    arch, Xt, Tt = _data(loss, n)
    out: dict = {"problem": f"digits N={Xt.shape[0]}, {loss} {list(arch.sizes)}, weight decay {WEIGHT_DECAY}, "
                            "seed 0, unit blocks, one Gauss–Seidel sweep + the certifying pass"}
    for solver in ("auto", NATIVE):
        form = _form(arch, Xt, Tt, solver)
        certify = solver == "auto" or certify_native
        limit = native_limit if solver == NATIVE else None
        res = run(form, form.point_from_params(init_params(arch, 0, Xt.device)),
                  DriverOptions(max_iters=1, time_limit=limit,
                                callback=None if certify else (lambda e: e.iteration >= 1)))
        sweep = res.history[1].time if len(res.history) > 1 else res.total_time
        gaps = np.array([g for g in res.certificate.block_gaps.values() if np.isfinite(g)])
        out[solver] = {"sweep_seconds": sweep, "certify_pass_seconds": res.total_time - sweep if certify else None,
                       "start_objective": res.history[0].objective, "objective_after_sweep": res.history[1].objective,
                       "solver_seconds": res.solver_time, "backends": res.backends_used,
                       "max_block_gap_after_sweep": float(gaps.max()) if gaps.size else math.nan,
                       "gaps_measured": int(gaps.size), "blocks": len(res.certificate.block_gaps),
                       "status": res.status}
        if limit is not None:
            solved = sum(res.backends_used.values())  # block solves, the neighbouring pieces' included
            per = sweep / max(1, solved)
            out[solver].update({"time_limit": limit, "block_solves": solved, "seconds_per_block_solve": per,
                                "auto_block_solves": sum(out["auto"]["backends"].values()),
                                "sweep_seconds_extrapolated": per * sum(out["auto"]["backends"].values())})
        print(loss, solver, out[solver], flush=True)
    a, b = out["auto"]["objective_after_sweep"], out[NATIVE]["objective_after_sweep"]
    out["objective_relative_difference"] = abs(a - b) / abs(b)
    key = "sweep_seconds_extrapolated" if "sweep_seconds_extrapolated" in out[NATIVE] else "sweep_seconds"
    out["sweep_ratio_native_over_auto"] = out[NATIVE][key] / out["auto"]["sweep_seconds"]
    if certify_native:
        out["certify_pass_ratio_native_over_auto"] = (out[NATIVE]["certify_pass_seconds"]
                                                      / out["auto"]["certify_pass_seconds"])
    return out


def against_adam(n: int | None, epochs: int) -> dict:
    """Adam for ``epochs`` epochs, then Gauss–Seidel with ``auto`` from the same start for Adam's time plus a little."""
    arch, Xt, Tt = _data("softmax", n)
    t0 = time.perf_counter()
    opts = GradientOptions("adam", lr=1e-3, batch_size=64, max_iters=epochs, seed=0)
    adam, _ = run_gradient(arch, init_params(arch, 0, Xt.device), Xt, Tt, WEIGHT_DECAY, opts)
    adam_time = time.perf_counter() - t0
    form = _form(arch, Xt, Tt, "auto")
    res = run(form, form.point_from_params(init_params(arch, 0, Xt.device)),
              DriverOptions(max_iters=10_000, time_limit=adam_time * 1.5 + 30, tol=1e-6))
    hist = [(h.time, h.objective) for h in res.history]
    reach = next((t for t, f in hist if f <= adam.objective), math.inf)
    out = {"problem": f"digits N={Xt.shape[0]}, softmax {list(arch.sizes)}, weight decay {WEIGHT_DECAY}, seed 0",
           "adam": {"epochs": epochs, "seconds": adam_time, "objective": adam.objective,
                    "seconds_per_epoch": adam_time / epochs},
           "gauss_seidel_auto": {"sweeps": res.iterations, "seconds": res.total_time, "objective": res.objective,
                                 "status": res.status, "history": hist[:50],
                                 "seconds_to_adam_objective": reach},
           "time_to_adam_objective_over_adam_time": reach / adam_time,
           "first_sweep_over_adam_epoch": (hist[1][0] if len(hist) > 1 else math.nan) / (adam_time / epochs)}
    print({k: v for k, v in out["gauss_seidel_auto"].items() if k != "history"}, out["adam"], flush=True)
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="300 samples, 50 Adam epochs")
    ap.add_argument("--only", default="all", choices=["all", "sweep", "logistic", "small", "adam"])
    ap.add_argument("--native-limit", type=float, default=300.0,
                    help="seconds for the clarabel-native sweep on all of digits (then extrapolated)")
    ap.add_argument("--adam-epochs", type=int, default=None)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    n = 300 if a.quick else None
    torch.set_num_threads(1)
    report: dict = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                                "torch_threads": torch.get_num_threads()}, "quick": a.quick}
    quick_path = pathlib.Path("/tmp/softmax_quick.json")  # a smoke run does not overwrite the recorded results
    path = pathlib.Path(a.out) if a.out else (quick_path if a.quick else OUT / "softmax.json")

    def save():  # after every section: a long run that is stopped keeps what it measured
        path.write_text(json.dumps(report, indent=1, default=float))

    limit = None if a.quick else a.native_limit
    if a.only in ("all", "sweep"):
        report["softmax_sweep"] = one_sweep("softmax", n, a.quick, limit)
        save()
    if a.only in ("all", "logistic"):
        report["logistic_sweep"] = one_sweep("logistic", n, a.quick, limit)
        save()
    if a.only in ("all", "small") and not a.quick:
        report["softmax_sweep_300"] = one_sweep("softmax", 300, False)
        save()
    if a.only in ("all", "adam"):
        report["adam"] = against_adam(n, a.adam_epochs or (50 if a.quick else 100))
        save()
    print("wrote", path)
    return report


if __name__ == "__main__":
    main()
