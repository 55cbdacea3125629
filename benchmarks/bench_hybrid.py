"""Joint layer steps in the block phase (issue 14): ``adam+gauss-seidel`` and the pure Gauss–Seidel driver with and
without :class:`multiconvex.nets.hybrid.LayerSteps`, against Adam, on diabetes ``[10, 64, 64, 1]``, weight
decay 1e-4, seed 0 (the setup of ``bench_relu.py --only hybrid``: Adam lr 1e-3, minibatches of 64, 300 epochs).

The variants with ``+ balance`` open every round by rescaling the hidden units
(:func:`multiconvex.nets.balance.balance_units`, ``LayerSteps(balance=True)``, the default); the one without is the
previous default. Every run gets ``--factor`` × Adam's time (the whole run, gradient phase included); the hybrid's
block phases all start from the same Adam end point. Reported per run: the
objective at 2× and at the end, the time to Adam's objective (as a multiple of Adam's time), the status and
the certificate of the end point (the run's own, or one certifying pass afterwards when the time limit cut
the run before its own): its largest computed gap, how many blocks are above the tolerance and how many gaps were
not computed (a neighbouring piece neither solved nor proven empty).

Run (from the repository root): ``python -m benchmarks.bench_hybrid [--quick] [--factor 5] [--only hybrid|pure]``
-> ``benchmarks/results/hybrid_layer_steps.json``; ``--only long [--long-seconds 240]`` (not in ``all``): rounds with
the default layer steps from Adam's end point for minutes, and the end point's gaps per layer
(``hybrid_layer_steps_long.json``); ``--only lbfgs [--long-seconds 60]`` (not in ``all``): torch's L-BFGS as a
peer and as the first phase (:func:`lbfgs_runs`, ``hybrid_lbfgs.json``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import pathlib
import platform

import torch

from multiconvex.drivers import DriverOptions, run
from multiconvex.nets import GradientOptions, NetForm, init_params, run_gradient
from multiconvex.nets.certificates import certificate
from multiconvex.nets.hybrid import LayerSteps, run_hybrid, run_rounds

from .bench_relu import _adam, _diabetes, _time_to, warm_up  # the README rows' setup (data, Adam), reused

OUT = pathlib.Path(os.environ.get("MULTICONVEX_RESULTS", pathlib.Path(__file__).parent / "results"))

#: the block phases compared: label -> (layer steps (None: the driver alone), extrapolation between the driver's
#: sweeps: ``DriverOptions.extrapolate``, :mod:`multiconvex.extrapolation`)
VARIANTS: dict[str, tuple[LayerSteps | None, bool]] = {
    "sweeps only": (None, False),
    "sweeps only + extrapolation": (None, True),
    "layer steps (5 passes / 2 sweeps), no balance": (LayerSteps(passes=5, sweeps=2, balance=False), False),
    "layer steps (5 passes / 2 sweeps) + balance": (LayerSteps(passes=5, sweeps=2), False),
    "layer steps (5 passes / 2 sweeps) + balance + extrapolation": (LayerSteps(passes=5, sweeps=2), True),
    "layer steps (2 passes / 4 sweeps) + balance": (LayerSteps(passes=2, sweeps=4), False),
    "network + layer steps (3 Gauss–Newton, 2 passes / 4 sweeps) + balance": (
        LayerSteps(passes=2, sweeps=4, network=3), False),
}

#: the layer steps of the one end-to-end :func:`run_hybrid` run
END_TO_END = LayerSteps()  # the defaults (5 passes / 2 sweeps, balance)


def _objective_at(history: list[tuple[float, float]], t: float) -> float:
    """The objective of the last entry at or before ``t`` seconds."""
    best = math.inf
    for ti, f in history:
        if ti <= t:
            best = f
    return best


def _largest(cert) -> float:
    """The largest block gap that was computed (``Certificate.max_gap`` is ``max`` over a list that may hold nan)."""
    return max((g for g in cert.block_gaps.values() if not math.isnan(g)), default=math.nan)


def _summary(res, params, arch, Xt, Tt, t_adam: float, f_adam: float) -> dict:
    hist = [(h.time, h.objective) for h in res.history]
    cert = res.certificate
    if cert is None or not cert.block_gaps or any(math.isnan(g) for g in cert.block_gaps.values()):
        # the run's time limit came before its certifying pass, or a gradient run (which certifies nothing itself)
        cert = certificate(arch, params, Xt, Tt, 1e-4)
    layer_steps = res.info.get("layer_steps", [])
    return {"seconds": res.total_time, "ratio_to_adam": res.total_time / t_adam, "objective": res.objective,
            "objective_at_2x_adam": _objective_at(hist, 2 * t_adam), "status": res.status,
            "time_to_adam_objective_ratio": _time_to(hist, f_adam) / t_adam,
            "end_point_partial_minimum": bool(cert.is_partial_minimum), "end_point_max_block_gap": _largest(cert),
            "end_point_gap_tolerance": float(cert.tolerance),
            "end_point_blocks_above_tolerance": sum(g > cert.tolerance for g in cert.block_gaps.values()),
            "end_point_blocks_not_computed": sum(math.isnan(g) for g in cert.block_gaps.values()),
            "layer_steps_taken": len(layer_steps),
            "layer_step_seconds": sum(s["seconds"] for s in layer_steps), "iterations": res.iterations}


def _block_phase(arch, Xt, Tt, params0, variant: tuple[LayerSteps | None, bool], seconds: float):
    steps, extrapolate = variant
    form = NetForm(arch, Xt, Tt, 1e-4)
    opts = DriverOptions("gauss-seidel", max_iters=100_000, time_limit=seconds, extrapolate=extrapolate)
    res = run(form, form.point_from_params(params0), opts) if steps is None else run_rounds(form, params0, opts, steps)
    return res, form.params_from_point(form.final_point)


def _shifted(res, seconds: float):
    """``res`` with its history's times shifted by ``seconds`` (the gradient phase before it)."""
    res.history = [dataclasses.replace(h, time=h.time + seconds) for h in res.history]
    res.total_time += seconds
    return res


def hybrid(arch, Xt, Tt, adam_params, t_adam: float, f_adam: float, factor: float) -> dict:
    """``adam+gauss-seidel`` with each block phase of :data:`VARIANTS`: every block phase from the same Adam end
    point with ``(factor - 1)`` × Adam's time, so the ratios do not move with the load during a re-run of Adam
    (:func:`run_hybrid` runs exactly this; ``hybrid_end_to_end`` below times it once)."""
    out = {}
    for label, variant in VARIANTS.items():
        res, params = _block_phase(arch, Xt, Tt, adam_params, variant, (factor - 1) * t_adam)
        out[label] = _summary(_shifted(res, t_adam), params, arch, Xt, Tt, t_adam, f_adam)
        print("adam+gauss-seidel,", label, out[label], flush=True)
    return out


def hybrid_end_to_end(arch, Xt, Tt, dev, t_adam: float, f_adam: float, factor: float, epochs: int,
                      steps: LayerSteps) -> dict:
    """One :func:`run_hybrid` run (Adam re-run inside it) with ``steps``, ``factor`` × Adam's time in all."""
    form = NetForm(arch, Xt, Tt, 1e-4)
    res, params = run_hybrid(form, init_params(arch, 0, dev),
                             GradientOptions("adam", lr=1e-3, batch_size=64, max_iters=epochs, seed=0),
                             DriverOptions("gauss-seidel", max_iters=100_000, time_limit=factor * t_adam), steps)
    out = {**_summary(res, params, arch, Xt, Tt, t_adam, f_adam), "layer_steps": str(steps),
           "gradient_phase_seconds": res.info["phases"][0]["time"]}
    print("run_hybrid end to end", out, flush=True)
    return out


def pure(arch, Xt, Tt, dev, t_adam: float, f_adam: float, factor: float) -> dict:
    """The Gauss–Seidel driver from the seeded start with each block phase of :data:`VARIANTS`."""
    out = {}
    for label, variant in VARIANTS.items():
        res, params = _block_phase(arch, Xt, Tt, init_params(arch, 0, dev), variant, factor * t_adam)
        out[label] = _summary(res, params, arch, Xt, Tt, t_adam, f_adam)
        print("gauss-seidel,", label, out[label], flush=True)
    return out


def long_run(arch, Xt, Tt, adam_params, t_adam: float, seconds: float) -> dict:
    """Rounds with the default :class:`LayerSteps` from Adam's end point for ``seconds``: how far the gaps get."""
    res, params = _block_phase(arch, Xt, Tt, adam_params, (LayerSteps(), False), seconds)
    cert = certificate(arch, params, Xt, Tt, 1e-4)
    by_layer: dict[str, list[float]] = {}
    for name, gap in cert.block_gaps.items():
        by_layer.setdefault(name.split("[")[0], []).append(gap)
    out = {"seconds": seconds, "ratio_to_adam": (t_adam + seconds) / t_adam, "status": res.status,
           "objective": res.objective,
           "objective_every_tenth": [(h.time, h.objective) for h in res.history[::max(1, len(res.history) // 10)]],
           "partial_minimum": bool(cert.is_partial_minimum), "max_block_gap": _largest(cert),
           "tolerance": float(cert.tolerance),
           "per_layer": {k: {"max_gap": max((g for g in v if not math.isnan(g)), default=math.nan),
                             "above_tolerance": sum(g > cert.tolerance for g in v),
                             "not_computed": sum(math.isnan(g) for g in v)}
                         for k, v in by_layer.items()}}
    print("long run", out, flush=True)
    return out


def lbfgs_runs(arch, Xt, Tt, dev, adam_params, t_adam: float, f_adam: float, factor: float,
               long_seconds: float) -> dict:
    """torch's L-BFGS (``algorithm="lbfgs"``, full batch, strong Wolfe) as a peer and as a first phase: from the
    seeded start and from Adam's end point with ``factor`` × Adam's time in all; ``lbfgs+gauss-seidel`` (L-BFGS for
    Adam's time, then the Gauss–Seidel driver); and L-BFGS alone for ``long_seconds`` from the seeded start with
    the end point's gradient norm and certificate: how far from a partial minimum the best full-space
    quasi-Newton method still is."""
    out: dict = {}

    def lbfgs(params0, seconds: float):
        return run_gradient(arch, params0, Xt, Tt, 1e-4, GradientOptions("lbfgs", max_iters=10**7, time_limit=seconds))

    for label, params0, shift in (("lbfgs from the seeded start", init_params(arch, 0, dev), 0.0),
                                  ("adam, then lbfgs", adam_params, t_adam)):
        res, params = lbfgs(params0, factor * t_adam - shift)
        out[label] = {**_summary(_shifted(res, shift), params, arch, Xt, Tt, t_adam, f_adam),
                      "objective_at_1x_adam": _objective_at([(h.time, h.objective) for h in res.history], t_adam),
                      "grad_norm": res.info["grad_norm"], "restarts": res.info["restarts"]}
        print(label, out[label], flush=True)
    form = NetForm(arch, Xt, Tt, 1e-4)
    res, params = run_hybrid(form, init_params(arch, 0, dev), GradientOptions("lbfgs", max_iters=10**7,
                                                                               time_limit=t_adam),
                             DriverOptions("gauss-seidel", max_iters=100_000, time_limit=factor * t_adam))
    out["lbfgs+gauss-seidel (lbfgs for Adam's time)"] = {**_summary(res, params, arch, Xt, Tt, t_adam, f_adam),
                                                         "gradient_phase_seconds": res.info["phases"][0]["time"]}
    print("lbfgs+gauss-seidel", out["lbfgs+gauss-seidel (lbfgs for Adam's time)"], flush=True)
    res, params = lbfgs(init_params(arch, 0, dev), long_seconds)
    cert = certificate(arch, params, Xt, Tt, 1e-4)
    hist = [(h.time, h.objective) for h in res.history]
    out["long"] = {"seconds": long_seconds, "ratio_to_adam": long_seconds / t_adam, "status": res.status,
                   "objective": res.objective, "iterations": res.iterations, "restarts": res.info["restarts"],
                   "grad_norm": res.info["grad_norm"],  # at the returned point
                   "objective_every_tenth": hist[::max(1, len(hist) // 10)] + [hist[-1]],
                   "partial_minimum": bool(cert.is_partial_minimum), "max_block_gap": _largest(cert),
                   "tolerance": float(cert.tolerance),
                   "blocks_above_tolerance": sum(g > cert.tolerance for g in cert.block_gaps.values())}
    print("lbfgs long", out["long"], flush=True)
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="2× Adam's time per run instead of --factor")
    ap.add_argument("--factor", type=float, default=5.0, help="each run's time limit as a multiple of Adam's time")
    ap.add_argument("--only", default="all", choices=["all", "hybrid", "pure", "long", "lbfgs"])
    ap.add_argument("--long-seconds", type=float, default=None,
                    help="'long': seconds of rounds after Adam (240); 'lbfgs': seconds of its long L-BFGS run (60)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(1 if a.device == "cpu" else torch.get_num_threads())
    factor = 2.0 if a.quick else a.factor
    warm = warm_up(a.device)  # Adam's time is a warm one (see warm_up)
    arch, Xt, Tt, dev = _diabetes(a.device)
    epochs = 300
    res_a, adam_params = _adam(arch, Xt, Tt, dev, epochs)
    t_adam, f_adam = res_a.history[-1].time, res_a.objective
    report: dict = {"problem": "diabetes [10, 64, 64, 1], weight decay 1e-4, seed 0; Adam lr 1e-3, batch 64, "
                               f"{epochs} epochs", "device": a.device,
                    "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                    "load_average_start": os.getloadavg(), "factor": factor, "warm_up_seconds": warm,
                    "adam": {"seconds": t_adam, "objective": f_adam}}
    print(report, flush=True)
    if a.only in ("all", "hybrid"):
        report["adam+gauss-seidel"] = hybrid(arch, Xt, Tt, adam_params, t_adam, f_adam, factor)
        report["run_hybrid"] = hybrid_end_to_end(arch, Xt, Tt, dev, t_adam, f_adam, factor, epochs, END_TO_END)
    if a.only in ("all", "pure"):
        report["gauss-seidel"] = pure(arch, Xt, Tt, dev, t_adam, f_adam, factor)
    if a.only == "long":  # not part of "all": minutes of rounds
        seconds = 240.0 if a.long_seconds is None else a.long_seconds
        report["long"] = long_run(arch, Xt, Tt, adam_params, t_adam, seconds)
    if a.only == "lbfgs":  # not part of "all" either
        seconds = 60.0 if a.long_seconds is None else a.long_seconds
        report["lbfgs"] = lbfgs_runs(arch, Xt, Tt, dev, adam_params, t_adam, f_adam, factor, seconds)
    report["load_average_end"] = os.getloadavg()
    OUT.mkdir(exist_ok=True)
    name = {"long": "hybrid_layer_steps_long.json", "lbfgs": "hybrid_lbfgs.json"}.get(a.only, "hybrid_layer_steps.json")
    path = pathlib.Path(a.out) if a.out else OUT / name
    path.write_text(json.dumps(report, indent=1, default=float))
    return report


if __name__ == "__main__":
    main()
